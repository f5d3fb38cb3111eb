// The browser build (pkg/browser.js + qauth_browser.wasm, the sign-in ops only, no server classes) in
// headless Chromium against the server build in Node: every sign-in argument case answers the
// same (tests/scenarios/pkce-cases.mjs), nothing secret reaches an answer, and the build carries
// none of the secret-holding clients.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as server from "qauth";
import { outcomes } from "../scenarios/pkce-cases.mjs";
import { ROOT, launchChromium, serveStatic } from "./helpers.mjs";

const IDP = "http://127.0.0.1:9";
let browser, site, page;

before(async () => {
  site = await serveStatic({ "/qauth/": join(ROOT, "pkg"), "/scenarios/": join(ROOT, "tests/scenarios"), "/": join(ROOT, "tests/consumers/page") });
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(site.url + "index.html");
});

after(async () => {
  await browser?.close();
  await site?.stop();
});

/** `outcomes()` run in the page, on the browser build. */
const inPage = (fn, ...args) => page.evaluate(fn, ...args);

test("the browser build answers every sign-in argument case exactly as the server build does", async () => {
  const fromBrowser = await inPage(async (idp) => {
    const api = await import("/qauth/browser.js");
    const { outcomes } = await import("/scenarios/pkce-cases.mjs");
    return outcomes(api, idp);
  }, IDP);
  const fromServer = await outcomes(server, IDP);
  assert.ok(fromServer.length > 90, `${fromServer.length} cases`);
  assert.deepEqual(fromBrowser, fromServer);
  const errors = fromServer.filter((o) => o.shape === "threw" || o.shape === "rejected");
  assert.ok(errors.length > 80 && errors.every((o) => o.authError && o.hint && o.retryable === (o.code === "server_error")), "typed errors with hints");
  assert.ok(fromServer.filter((o) => o.label.startsWith("beginAuthorization")).every((o) => o.shape !== "threw"), "beginAuthorization never throws synchronously");
  assert.doesNotMatch(JSON.stringify(fromBrowser), /CANARY/, "a code or a getter's text reached an answer");
});

test("the browser build's beginAuthorization makes a verifier whose S256 challenge WebCrypto agrees with", async () => {
  const r = await inPage(async () => {
    const { beginAuthorization } = await import("/qauth/browser.js");
    const { url, codeVerifier } = await beginAuthorization({ clientId: "c", redirectUri: "http://127.0.0.1:9/cb", identityUrl: "http://127.0.0.1:9" });
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(codeVerifier)));
    const expected = btoa(String.fromCharCode(...digest)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return { challenge: new URL(url).searchParams.get("code_challenge"), expected, distinct: (await beginAuthorization({ clientId: "c", redirectUri: "http://127.0.0.1:9/cb" })).codeVerifier !== codeVerifier };
  });
  assert.equal(r.challenge, r.expected);
  assert.ok(r.distinct, "a fresh verifier per call");
});

test("the browser build has no secret-holding client: the classes refuse with a pointer to qauth/server", async () => {
  const r = await inPage(async () => {
    const { QflowAuth, QpienAuth, AuthError } = await import("/qauth/browser.js");
    return [QflowAuth, QpienAuth].map((C) => {
      try {
        new C({ clientId: "x", clientSecret: "CANARY-secret" });
        return "constructed";
      } catch (e) {
        return { authError: e instanceof AuthError, code: e.code, message: e.message, hint: e.hint };
      }
    });
  });
  for (const e of r) {
    assert.equal(e.authError, true);
    assert.equal(e.code, "invalid_config");
    assert.match(e.hint, /qauth\/server/);
  }
  const wasm = readFileSync(join(ROOT, "pkg/qauth_browser.wasm"));
  const exports = WebAssembly.Module.exports(new WebAssembly.Module(wasm)).map((e) => e.name);
  assert.deepEqual(exports.filter((n) => !n.startsWith("__")).sort(), ["memory", "qauth_alloc", "qauth_call", "qauth_free"]);
  for (const word of ["Ocp-Apim-Subscription-Key", "generateOAuthToken", "refresh_token", "client_secret"]) {
    assert.ok(!wasm.includes(word), `${word} is not in the browser build`);
  }
});

test("qauth_browser.wasm through its plain exports: memory stops growing after the first calls (the allocator rewinds)", async () => {
  let exports;
  const random = (ptr, len) => (crypto.getRandomValues(new Uint8Array(exports.memory.buffer, ptr, len)), 1);
  ({ exports } = (await WebAssembly.instantiate(readFileSync(join(ROOT, "pkg/qauth_browser.wasm")), { qauth: { random } })).instance);
  const enc = new TextEncoder();
  /** Items as src/js/wire.rs reads them: tag, u32 LE length, bytes; the answer's first record kind. */
  const [BEGIN, COMPLETE] = [1, 2];
  const call = (op, items) => {
    const bytes = items.map(([t, s = ""]) => [t.charCodeAt(0), enc.encode(s)]);
    const len = bytes.reduce((n, [, b]) => n + 5 + b.length, 0);
    const ptr = exports.qauth_alloc(len);
    const mem = new Uint8Array(exports.memory.buffer);
    const view = new DataView(exports.memory.buffer);
    let at = ptr;
    for (const [t, b] of bytes) {
      mem[at] = t;
      view.setUint32(at + 1, b.length, true);
      mem.set(b, at + 5);
      at += 5 + b.length;
    }
    const out = exports.qauth_call(op, 0, Date.now(), ptr, len);
    // length (4), then the record's `k` item: tag, u32 length, the kind byte.
    const answer = new Uint8Array(exports.memory.buffer)[out + 9];
    exports.qauth_free(out, new DataView(exports.memory.buffer).getUint32(out, true));
    return String.fromCharCode(answer);
  };
  const begin = (clientId) => call(BEGIN, [["O"], ["K", "clientId"], ["S", clientId], ["K", "redirectUri"], ["S", "http://127.0.0.1:9/cb"]]);
  const complete = (code, state) => call(COMPLETE, [["S", `http://127.0.0.1:9/cb?code=${code}&state=s`], ["O"], ["K", "state"], ["S", state]]);
  assert.equal(begin("c"), "R");
  assert.equal(complete("x", "s"), "R");
  assert.equal(complete("x", "t"), "E");
  assert.equal(call(BEGIN, [["N"]]), "E");
  assert.equal(call(BEGIN, [["O"], ["K"]]), "E", "malformed input is an error, not a trap");
  const size = () => exports.memory.buffer.byteLength;
  const warm = size();
  for (let i = 0; i < 5000; i++) {
    assert.equal(begin("c".repeat((i % 50) + 1)), "R");
    assert.equal(complete("x".repeat((i % 3000) + 1), "s"), "R");
    assert.equal(complete("y", "t"), "E");
  }
  assert.equal(size(), warm, "wasm memory grew across 15,000 calls");
});
