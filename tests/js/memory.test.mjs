// Node only: oversized answers never land in wasm memory. The token endpoint (32 MiB), a
// GraphQL operation (4 MiB) and a 403 from the API (4 MiB) are read as streams and abandoned
// at qauth's caps (or, for the 403, handed back untouched), so the wasm linear memory (which
// can only grow) stays within 1 MiB of its size after a warm-up.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as qauth from "qauth";
import { emulatorWatchingStrays, qflowOptions, CREDS } from "./helpers.mjs";
import { apiFaults, graphqlFaults } from "../scenarios/hardening.mjs";

const { wasm, QflowAuth: DriverQflowAuth } = await import("../../pkg/client.js");
const { QflowAuth, QpienAuth, AuthError } = qauth;
const MiB = 1 << 20;
const VIEWER = "query Viewer { viewer { id } }";
const qpienOptions = (emu) => ({ ...CREDS.qpien, endpoint: emu.url + "/graphql" });

let emu;
const stray = emulatorWatchingStrays((e) => (emu = e));

/** The memory of the wasm instance the package's driver calls. */
const wasmMemory = () => wasm.exports.memory;

test("the wasm memory measured is the one `import \"qauth\"` runs in", async () => {
  // node_modules/qauth links to pkg/: both imports are one module instance (the entry re-exports
  // client.js's class, whose `wasm` it connected).
  assert.equal(QflowAuth, DriverQflowAuth, "qauth's class is pkg/client.js's own");
  const memory = wasmMemory();
  assert.ok(memory instanceof WebAssembly.Memory);
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  assert.match((await q.headers()).Authorization, /^Bearer CANARY-at-/);
  assert.equal(wasmMemory(), memory, "the same Memory before and after a client from qauth ran");
  assert.equal((await emu.stats()).token.total, 1);
});

test("a 4 MiB GraphQL answer and a 32 MiB token answer are bad_response, and wasm memory grows < 1 MiB", async () => {
  await emu.control("reset");
  // Warm-up: one successful token, headers(), graphql() and fetch() of each kind.
  const q = new QflowAuth(qflowOptions(emu));
  await q.headers();
  await (await q.fetch("/checkin/v1/api/events")).arrayBuffer();
  const qp = new QpienAuth(qpienOptions(emu));
  await qp.headers();
  assert.equal((await qp.graphql(VIEWER)).viewer.id, "viewer-1");

  const memory = wasmMemory();
  const m0 = memory.buffer.byteLength;

  await graphqlFaults(emu, { kind: "big", size: 4 * MiB });
  await assert.rejects(qp.graphql(VIEWER), (e) => {
    assert.ok(e instanceof AuthError, String(e));
    assert.equal(e.code, "bad_response", e.message);
    return true;
  });
  const m1 = memory.buffer.byteLength;

  await emu.faults({ kind: "big", size: 32 * MiB });
  const fresh = new QflowAuth(qflowOptions(emu));
  await assert.rejects(fresh.headers(), (e) => {
    assert.ok(e instanceof AuthError, String(e));
    assert.equal(e.code, "bad_response", e.message);
    return true;
  });
  const m2 = memory.buffer.byteLength;

  const s = await emu.stats();
  assert.equal(s.graphqlFaultsServed, 1);
  assert.equal(s.faultsServed, 1);
  console.log(`wasm memory: ${m0} bytes after warm-up, ${m1} after the 4 MiB GraphQL answer, ${m2} after the 32 MiB token answer`);
  assert.equal(wasmMemory(), memory);
  assert.ok(m2 - m0 < MiB, `wasm memory grew by ${m2 - m0} bytes (${m0} -> ${m1} -> ${m2})`);

  // Both clients still work.
  assert.equal((await qp.graphql(VIEWER)).viewer.id, "viewer-1");
  assert.match((await fresh.headers()).Authorization, /^Bearer CANARY-at-/);
});

test("a 4 MiB 403 through fetch() is handed back untouched, and wasm memory grows < 1 MiB", async () => {
  await emu.control("reset");
  const timeoutMs = 5000;
  const q = new QflowAuth(qflowOptions(emu, { timeoutMs }));
  await q.headers();
  await (await q.fetch("/checkin/v1/api/events")).arrayBuffer();

  const memory = wasmMemory();
  const m0 = memory.buffer.byteLength;
  await apiFaults(emu, { kind: "big403", size: 4 * MiB });
  const t0 = Date.now();
  let timer;
  const watchdog = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`fetch() did not settle within ${2 * timeoutMs} ms (timeoutMs ${timeoutMs})`)), 2 * timeoutMs)));
  const r = await Promise.race([q.fetch("/checkin/v1/api/events"), watchdog]).finally(() => clearTimeout(timer));
  const took = Date.now() - t0;
  assert.equal(r.status, 403);
  const m1 = memory.buffer.byteLength;
  console.log(`wasm memory: ${m0} bytes before the 4 MiB 403, ${m1} after fetch() returned (${took} ms)`);
  assert.ok(m1 - m0 < MiB, `wasm memory grew by ${m1 - m0} bytes (${m0} -> ${m1})`);
  // The caller reads the body in JS: all of it, as the server sent it.
  assert.equal(r.bodyUsed, false, `fetch() returned after ${took} ms with its body already used`);
  const body = new Uint8Array(await r.arrayBuffer());
  assert.ok(Math.abs(body.byteLength - 4 * MiB) < 64, `body of ${body.byteLength} bytes`);
  assert.equal(new TextDecoder().decode(body.subarray(0, 10)), '{"error":"');
  const m2 = memory.buffer.byteLength;
  assert.ok(took < timeoutMs, `fetch() took ${took} ms`);

  assert.equal((await emu.stats()).apiFaultsServed, 1);
  assert.ok(m2 - m0 < MiB, `wasm memory grew by ${m2 - m0} bytes (${m0} -> ${m1} -> ${m2}, after reading the body)`);
  const ok = await q.fetch("/checkin/v1/api/events");
  assert.equal(ok.status, 200);
  await ok.arrayBuffer();
});

test("no uncaught exception or unhandled rejection during the whole run", async () => {
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(stray, []);
});
