// The hardening scenarios in Node, imported from the assembled package, against the emulator.
// The same scenarios run in workerd from workerd-scenarios.test.mjs. Any uncaught exception or
// unhandled rejection while they run fails the run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as qauth from "qauth";
import * as hono from "qauth/hono";
import scenarios from "../scenarios/hardening.mjs";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { emulatorWatchingStrays } from "./helpers.mjs";
import { ROOT } from "./harness.mjs";

let emu;
const stray = emulatorWatchingStrays((e) => (emu = e));

/** Lets a late rejection or exception surface (unhandledRejection fires after the microtasks). */
const drain = () => new Promise((r) => setTimeout(r, 20));

for (const s of scenarios) {
  test(s.name, async () => {
    const from = stray.length;
    const result = await s.run({ qauth, hono, emu, assert });
    if (result?.matrix) console.log(`matrix: ${result.matrix.calls} calls, ${result.matrix.typedErrors} typed errors`);
    await drain();
    assert.deepEqual(stray.slice(from), [], "an uncaught exception or unhandled rejection");
  });
}

test("no uncaught exception or unhandled rejection during the whole run", async () => {
  await drain();
  assert.deepEqual(stray, []);
});

test("node entry: a runtime without process.getBuiltinModule gets wasm_load_failed saying so, not a TypeError", () => {
  const code = `delete process.getBuiltinModule;
try { await import("qauth"); console.log("loaded"); }
catch (e) { console.log(JSON.stringify({ ctor: e.constructor.name, code: e.code, message: e.message })); }`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, encoding: "utf8" }).trim();
  const e = JSON.parse(out);
  assert.equal(e.ctor, "AuthError");
  assert.equal(e.code, "wasm_load_failed");
  assert.match(e.message, /node entry.*process\.getBuiltinModule/);
});

test("option names reach the wasm intact: non-ASCII, longer than the hand-copied length, a lone surrogate, empty", () => {
  const base = { clientId: "c", clientSecret: "s", subscriptionKey: "k", refreshToken: "r" };
  const cases = [
    ["clïentId", "clïentId"],
    ["x".repeat(100), "x".repeat(100)],
    ["\ud800id", "\ufffdid"],
    ["", ""],
    ["é".repeat(70), "é".repeat(70)],
  ];
  for (const [key, shown] of cases) {
    let err;
    try {
      new qauth.QflowAuth({ ...base, [key]: "v" });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof qauth.AuthError, `key ${JSON.stringify(key)}`);
    assert.equal(err.code, "invalid_config");
    assert.ok(err.message.includes("option `" + shown + "` is not an option"), err.message);
  }
  // Values take the same path: long ASCII and non-ASCII ones arrive as valid UTF-8 (else the
  // wasm would refuse the bytes as malformed).
  for (const storeKey of ["k".repeat(200), "ключ-" + "é".repeat(70)]) new qauth.QflowAuth({ ...base, storeKey }).free();
});

test("graphql(): an answer whose body stalls is a timeout within timeoutMs, and no secret is in the error", async () => {
  const sockets = new Set();
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (body.includes("generateOAuthToken")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ data: { generateOAuthToken: { accessToken: "CANARY-at-stall", expiresIn: 3600 } } }));
        return;
      }
      // Headers and the start of a body, then nothing: only a deadline that covers the body read ends this.
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"data":');
    });
  });
  server.on("connection", (s) => (sockets.add(s), s.on("close", () => sockets.delete(s))));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const endpoint = `http://127.0.0.1:${server.address().port}/graphql`;
    const q = new qauth.QpienAuth({ clientId: "client", clientSecret: "CANARY-cs-stall", endpoint, timeoutMs: 300 });
    const t0 = Date.now();
    await assert.rejects(q.graphql("query Q { me { id } }"), (e) => {
      assert.ok(e instanceof qauth.AuthError);
      assert.equal(e.code, "timeout");
      assert.doesNotMatch(JSON.stringify(e) + e.message + (e.hint ?? ""), /CANARY/);
      return true;
    });
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    q.free();
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
});
