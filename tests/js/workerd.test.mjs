// The assembled package inside real workerd (Miniflare), bundled exactly as a user's worker is:
// `import { QflowAuth } from "qauth"` resolved by esbuild with the workerd condition.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, CREDS, ROOT } from "./helpers.mjs";

let emu, mf, dir;

export async function bundleWorker(entry, outdir) {
  await build({
    entryPoints: [entry],
    outdir,
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker"],
    mainFields: ["module", "main"],
    loader: { ".wasm": "copy" },
    logLevel: "error",
  });
  return join(outdir, "worker.js");
}

before(async () => {
  emu = await startEmulator();
  dir = mkdtempSync(join(tmpdir(), "qauth-workerd-"));
  const script = await bundleWorker(join(ROOT, "tests/workers/worker.js"), dir);
  mf = new Miniflare({
    modules: true,
    scriptPath: script,
    modulesRoot: dir,
    modulesRules: [
      { type: "CompiledWasm", include: ["**/*.wasm"] },
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    ],
    cf: false,
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["TOKENS"],
    bindings: {
      QFLOW_CLIENT_ID: CREDS.clientId,
      QFLOW_CLIENT_SECRET: CREDS.clientSecret,
      QFLOW_SUBSCRIPTION_KEY: CREDS.subscriptionKey,
      QFLOW_USERNAME: CREDS.joe.username,
      QFLOW_PASSWORD: CREDS.joe.password,
      QPIEN_CLIENT_ID: CREDS.qpien.clientId,
      QPIEN_CLIENT_SECRET: CREDS.qpien.clientSecret,
      EMULATOR: emu.url,
    },
  });
  await mf.ready;
});

after(async () => {
  await mf?.dispose();
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const call = async (path) => {
  const r = await mf.dispatchFetch("http://worker.test" + path);
  const text = await r.text();
  return { status: r.status, text, json: () => JSON.parse(text) };
};

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
