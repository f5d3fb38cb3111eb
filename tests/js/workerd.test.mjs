// The assembled package inside real workerd (Miniflare), bundled exactly as a user's worker is:
// `import { QflowAuth } from "qauth"` resolved by esbuild with the workerd condition.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startEmulator, startWorker, workerBindings, CREDS, ROOT } from "./helpers.mjs";

let emu, worker;

before(async () => {
  emu = await startEmulator();
  worker = await startWorker(join(ROOT, "tests/workers/worker.js"), {
    bindings: workerBindings(emu.url),
  });
});

after(async () => {
  await worker?.stop();
  await emu?.stop();
});

const call = (path) => worker.call(path);

test("workerd: headers from the emulator, exactly one password grant", async () => {
  await emu.control("reset");
  const r = await call("/headers");
  assert.equal(r.status, 200, r.text);
  const body = r.json();
  assert.equal(body.authorization, "Bearer …");
  assert.equal(body.subscriptionKeyPresent, true);
  const s = await emu.stats();
  assert.equal(s.token.password, 1);
  assert.equal(s.token.total, 1);
});

test("workerd: 1,000 concurrent headers() cold -> 1 token request; refresh token persisted to KV", async () => {
  await emu.control("reset");
  const r = await call("/concurrent?n=1000");
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { distinct: 1, stored: true });
  assert.equal((await emu.stats()).token.total, 1);
});

test("workerd: API call through fetch() and a Hono proxy with authorizeRequest()", async () => {
  await emu.control("reset");
  const r = await call("/qflow/checkin/v1/api/events");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().user, CREDS.joe.username);
  const c = await call("/comms?eventId=evt-1");
  assert.deepEqual(c.json(), { enabled: true });
});

test("workerd: invalid_config is a typed AuthError, not a crash", async () => {
  const r = await call("/bad-config");
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { instanceOfAuthError: true, code: "invalid_config", namesOption: true });
});

test("workerd: Qpien graphql survives an expired token with one re-mint", async () => {
  await emu.control("reset");
  const r = await call("/qpien");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().viewer.id, "viewer-1");
  assert.equal((await emu.stats()).qpien.mints, 2);
});
