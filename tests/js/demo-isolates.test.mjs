// The demo worker (www/worker.js) as two isolates: two Worker scripts in one Miniflare, one hosting
// the TokenBroker class (re-exported by the demo worker) and both bound to it and to one SESSIONS
// KV namespace, against the emulator. Sign-in goes over plain HTTP (the emulator's form posted
// directly), so the tests can drive timing: one session under load on both isolates across token
// lifetimes, sign-out while a refresh is delayed at the identity server, the absolute lifetime,
// signing in again, and a non-JSON upstream.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { startEmulator, bundleWorker, CREDS, ROOT, sleep } from "./helpers.mjs";

const BASE = "http://127.0.0.1:8787"; // the emulator accepts loopback redirect URIs only
let emu, dir, script, htmlServer, htmlUrl;

before(async () => {
  emu = await startEmulator();
  dir = mkdtempSync(join(tmpdir(), "qauth-demo-isolates-"));
  script = await bundleWorker(join(ROOT, "www/worker.js"), dir);
  // An "API gateway" that answers with an HTML page (a login or error page), for the proxy test.
  htmlServer = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<html><body><script>alert(document.cookie)</script></body></html>");
  });
  await new Promise((r) => htmlServer.listen(0, "127.0.0.1", r));
  htmlUrl = `http://127.0.0.1:${htmlServer.address().port}`;
});

after(async () => {
  await emu?.stop();
  htmlServer?.close();
  rmSync(dir, { recursive: true, force: true });
});

const rules = [
  { type: "CompiledWasm", include: ["**/*.wasm"] },
  { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
];

/** demo1 hosts the TokenBroker; demo2 binds it by scriptName; demo3 has an HTML "API". */
async function start({ lifetimeS, persist, identityUrl } = {}) {
  const bindings = (apiUrl) => ({
    QFLOW_CLIENT_ID: CREDS.clientId,
    QFLOW_CLIENT_SECRET: CREDS.clientSecret,
    QFLOW_SUBSCRIPTION_KEY: CREDS.subscriptionKey,
    QFLOW_IDENTITY_URL: identityUrl ?? emu.url,
    QFLOW_API_URL: apiUrl,
    ...(lifetimeS ? { SESSION_MAX_AGE_S: String(lifetimeS) } : {}),
  });
  const worker = (name, apiUrl, host) => ({
    name,
    modules: true,
    modulesRules: rules,
    scriptPath: script,
    modulesRoot: dir,
    compatibilityDate: "2026-04-01",
    bindings: bindings(apiUrl),
    // A public host name too (Miniflare refuses an Origin it does not route), for the http/https tests.
    ...(host ? { routes: ["demo.example/*"] } : {}),
    kvNamespaces: { SESSIONS: "demo-sessions" },
    durableObjects: { TOKEN_BROKER: host ? { className: "TokenBroker", useSQLite: true } : { className: "TokenBroker", scriptName: "demo1", useSQLite: true } },
  });
  const mf = new Miniflare({
    cf: false,
    durableObjectsPersist: persist ?? false,
    kvPersist: persist ?? false,
    workers: [worker("demo1", emu.url, true), worker("demo2", emu.url), worker("demo3", htmlUrl)],
  });
  await mf.ready;
  const apps = await Promise.all(["demo1", "demo2", "demo3"].map((n) => mf.getWorker(n)));
  /** One request to isolate `i`: `{ status, body, headers }`. */
  const call = async (i, path, { sid, method = "GET", body, cookie } = {}) => {
    const headers = { origin: BASE };
    if (sid) headers.cookie = `qauth_session=${sid}`;
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) headers["content-type"] = "application/json";
    const r = await apps[i].fetch(BASE + path, { method, headers, body });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: r.status, body: json, text, headers: r.headers };
  };
  return { mf, call, apps };
}

const setCookies = (headers) => (headers.getSetCookie ? headers.getSetCookie() : [headers.get("set-cookie") ?? ""]);
const cookieValue = (headers, name) => {
  for (const c of setCookies(headers)) {
    const m = new RegExp(`^${name}=([^;]*)`).exec(c);
    if (m) return m[1];
  }
  return null;
};
const sha256hex = (s) => createHash("sha256").update(s).digest("hex");

/**
 * Signs joe in: /auth/start on isolate `a`, the emulator's form, /auth/session on isolate `b`
 * with the pre-login cookie. `previous`: a session cookie the browser already has.
 */
async function signIn(w, { a = 0, b = 1, previous } = {}) {
  const { cookie, body } = await authorize(w, a, previous);
  const done = await w.call(b, "/auth/session", { method: "POST", body, cookie });
  assert.equal(done.status, 200, done.text);
  const sid = cookieValue(done.headers, "qauth_session");
  assert.match(sid, /^[A-Za-z0-9_-]{43}$/);
  return sid;
}

/** /auth/start on isolate `a` and joe at the emulator's form: the callback's `{ cookie, body }` for /auth/session. */
async function authorize(w, a = 0, previous) {
  const start = await w.call(a, "/auth/start", { method: "POST", body: "{}" });
  assert.equal(start.status, 200, start.text);
  const preLogin = cookieValue(start.headers, "qauth_prelogin");
  assert.match(preLogin, /^[A-Za-z0-9_-]{43}$/);
  const authz = new URL(start.body.url);
  const form = new URLSearchParams({ action: "allow", username: CREDS.joe.username, password: CREDS.joe.password });
  for (const k of ["client_id", "redirect_uri", "scope", "state", "code_challenge"]) form.set(k, authz.searchParams.get(k));
  const r = await fetch(emu.url + "/core/connect/authorize", { method: "POST", body: form, redirect: "manual" });
  const back = new URL(r.headers.get("location"));
  const cookie = `qauth_prelogin=${preLogin}` + (previous ? `; qauth_session=${previous}` : "");
  return { cookie, body: JSON.stringify({ code: back.searchParams.get("code"), state: back.searchParams.get("state") }) };
}

test("two isolates, one session, concurrent load across 5 token lifetimes (TTL 2 s): every call 200, 0 session_expired, 0 invalid_grant", async () => {
  await emu.control("reset");
  await emu.control("ttl", { token: 2 });
  const w = await start();
  try {
    const sid = await signIn(w);
    const statuses = {};
    const codes = {};
    const end = Date.now() + 10_000;
    await Promise.all(
      [0, 1].flatMap((i) =>
        Array.from({ length: 4 }, async () => {
          while (Date.now() < end) {
            const r = await w.call(i, "/api/checkin/v1/api/events", { sid });
            statuses[r.status] = (statuses[r.status] ?? 0) + 1;
            if (r.status !== 200) codes[r.body?.code] = (codes[r.body?.code] ?? 0) + 1;
            await sleep(20);
          }
        }),
      ),
    );
    const s = await emu.stats();
    console.log(`demo, 2 isolates: ${JSON.stringify({ statuses, codes, token: s.token, api: { calls: s.api.calls, rejects: s.api.rejects } })}`);
    assert.deepEqual(Object.keys(statuses), ["200"], JSON.stringify({ statuses, codes }));
    assert.equal(codes.session_expired ?? 0, 0);
    assert.equal(s.token.invalidGrant, 0);
    assert.equal(s.token.reuseDetected, 0);
    assert.equal(s.token.authorization_code, 1);
    assert.equal(s.token.password, 0);
    assert.ok(s.token.refresh_token >= 4, `one rotation chain across the lifetimes: ${s.token.refresh_token} refreshes`);
  } finally {
    await w.mf.dispose();
    await emu.control("reset");
  }
});

test("sign out while a refresh is delayed at the identity server: the old cookie gets 401 afterwards, for good", async () => {
  await emu.control("reset");
  await emu.control("ttl", { token: 2 });
  const persist = mkdtempSync(join(tmpdir(), "qauth-demo-do-"));
  let w = await start({ persist });
  try {
    const sid = await signIn(w);
    assert.equal((await w.call(0, "/api/checkin/v1/api/events", { sid })).status, 200);
    await sleep(1200); // past the refresh skew (half the 2 s lifetime): the next call refreshes
    await emu.faults({ kind: "delay_refresh", ms: 1500 });
    const refreshesBefore = (await emu.stats()).token.refresh_token;
    const inFlight = w.call(0, "/api/checkin/v1/api/events", { sid });
    await sleep(400); // the refresh is now waiting at the identity server
    const out = await w.call(1, "/auth/logout", { method: "POST", sid });
    assert.equal(out.status, 200);
    assert.match(cookieValue(out.headers, "qauth_session") ?? "x", /^$/, "the cookie is cleared");
    const during = await inFlight;
    assert.equal(during.status, 401, `the call that was refreshing: ${during.text}`);
    await sleep(1500); // the delayed refresh has certainly finished by now
    const s = await emu.stats();
    assert.equal(s.token.refresh_token, refreshesBefore + 1, "the refresh did happen at the identity server");
    for (const i of [0, 1]) {
      const r = await w.call(i, "/api/checkin/v1/api/events", { sid });
      assert.equal(r.status, 401, r.text);
    }
    // Even if KV had not seen the sign-out (eventual consistency): the broker object refuses.
    const kv = await w.mf.getKVNamespace("SESSIONS", "demo1");
    const key = `session:${sha256hex(sid)}`;
    const meta = JSON.parse(await kv.get(key));
    assert.equal(meta.ended, true);
    await kv.put(key, JSON.stringify({ ...meta, ended: false }));
    const viaBroker = await w.call(1, "/api/checkin/v1/api/events", { sid });
    assert.equal(viaBroker.status, 401);
    assert.equal(viaBroker.body.code, "session_expired", "the broker answered invalid_grant: the session was ended");
    // …and after a restart (the ended marker is persisted; the rotated token was never stored).
    await kv.put(key, JSON.stringify({ ...meta, ended: false }));
    await w.mf.dispose();
    w = await start({ persist });
    const afterRestart = await w.call(0, "/api/checkin/v1/api/events", { sid });
    assert.equal(afterRestart.status, 401);
    const t = (await emu.stats()).token;
    assert.equal(t.refresh_token, refreshesBefore + 1, "no refresh after sign-out");
    assert.equal(t.password, 0);
    assert.equal(t.invalidGrant, 0);
  } finally {
    await w.mf.dispose();
    rmSync(persist, { recursive: true, force: true });
    await emu.control("reset");
  }
});

test("absolute lifetime (4 s here): the session ends on time while in use, though rotation goes on", async () => {
  await emu.control("reset");
  await emu.control("ttl", { token: 2 });
  const w = await start({ lifetimeS: 4 });
  try {
    const t0 = Date.now();
    const sid = await signIn(w);
    const seen = [];
    while (Date.now() - t0 < 6000) {
      const i = seen.length % 2;
      const r = await w.call(i, "/api/checkin/v1/api/events", { sid });
      seen.push({ t: Date.now() - t0, status: r.status, code: r.body?.code });
      await sleep(100);
    }
    const early = seen.filter((x) => x.t < 3500);
    const late = seen.filter((x) => x.t > 4600);
    assert.ok(early.length > 10 && early.every((x) => x.status === 200), JSON.stringify(early));
    assert.ok(late.length > 5 && late.every((x) => x.status === 401), JSON.stringify(late));
    assert.equal(seen.find((x) => x.status === 401).code, "session_expired", "the page is told the session expired");
    const s = await emu.stats();
    assert.ok(s.token.refresh_token >= 1, "rotation happened and did not extend the session");
    assert.equal(s.token.invalidGrant, 0);
  } finally {
    await w.mf.dispose();
    await emu.control("reset");
  }
});

test("signing in again from a browser that has a session ends the previous session", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const first = await signIn(w);
    assert.equal((await w.call(0, "/api/checkin/v1/api/events", { sid: first })).status, 200);
    const second = await signIn(w, { a: 1, b: 0, previous: first });
    assert.notEqual(second, first);
    assert.equal((await w.call(1, "/api/checkin/v1/api/events", { sid: first })).status, 401);
    assert.equal((await w.call(1, "/api/checkin/v1/api/events", { sid: second })).status, 200);
    // KV holds metadata only, under hashed ids: no token, no raw session id.
    const kv = await w.mf.getKVNamespace("SESSIONS", "demo1");
    const { keys } = await kv.list();
    for (const { name } of keys) {
      assert.match(name, /^(session|flow):[0-9a-f]{64}$/);
      assert.ok(!name.includes(first) && !name.includes(second));
      const value = await kv.get(name);
      assert.ok(!/CANARY|refresh|access/i.test(value), value);
    }
    const meta = JSON.parse(await kv.get(`session:${sha256hex(second)}`));
    assert.deepEqual(Object.keys(meta).sort(), ["absoluteExpiry", "created", "ended"]);
  } finally {
    await w.mf.dispose();
  }
});

test("an API error echoing the server's credentials never reaches the page: 502 bad_upstream, nothing of it kept", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const sid = await signIn(w);
    await fetch(emu.url + "/_emulator/api-faults", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ faults: [{ kind: "echo403" }] }) });
    const r = await w.call(0, "/api/checkin/v1/api/events", { sid });
    assert.equal(r.status, 502);
    assert.equal(r.body.code, "bad_upstream");
    assert.ok(!/CANARY|Bearer/.test(r.text), r.text);
    assert.equal((await emu.stats()).apiFaultsServed, 1, "the echo was served");
  } finally {
    await w.mf.dispose();
  }
});

test("an upstream HTML answer is never served on the demo's origin: 502 bad_upstream (JSON, nosniff)", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const sid = await signIn(w);
    const r = await w.call(2, "/api/checkin/v1/api/events", { sid });
    assert.equal(r.status, 502);
    assert.equal(r.body.code, "bad_upstream");
    assert.match(r.headers.get("content-type"), /^application\/json/);
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
    assert.equal(r.headers.get("cache-control"), "no-store");
    assert.ok(!/<script|CANARY/.test(r.text));
  } finally {
    await w.mf.dispose();
  }
});

test("a session never used again still ends at its absolute expiry: its object's alarm deletes the refresh token (lifetime 2 s here)", async () => {
  await emu.control("reset");
  const w = await start({ lifetimeS: 2 });
  try {
    const sid = await signIn(w);
    // The session's object, as code holding the binding would reach it.
    const ns = await w.mf.getDurableObjectNamespace("TOKEN_BROKER", "demo1");
    const storeKey = `session:${sha256hex(sid)}`;
    const name = `qflow|${emu.url}|${CREDS.clientId}|${storeKey}|`;
    const stub = ns.get(ns.idFromName(name));
    const lease = () => stub.lease({ name, provider: "qflow", options: { clientId: CREDS.clientId, clientSecret: CREDS.clientSecret, identityUrl: emu.url, storeKey } });
    assert.ok((await lease()).token, "the live session's object serves");
    await sleep(3500); // no request at all: the browser never came back
    const r = await lease();
    assert.deepEqual([r.token, r.error?.code, r.error?.message], [undefined, "invalid_grant", "the session was ended"], JSON.stringify(r));
  } finally {
    await w.mf.dispose();
  }
});

test("the same callback posted 4 times at once to one isolate: its code is exchanged once, the other posts are refused", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const { cookie, body } = await authorize(w);
    const all = await Promise.all(Array.from({ length: 4 }, () => w.call(1, "/auth/session", { method: "POST", body, cookie })));
    assert.deepEqual(all.map((r) => r.status).sort(), [200, 400, 400, 400], all.map((r) => r.text).join(" | "));
    assert.ok(all.filter((r) => r.status === 400).every((r) => r.body.code === "state_mismatch"));
    assert.equal((await emu.stats()).token.authorization_code, 1);
  } finally {
    await w.mf.dispose();
  }
});

test("sign-out with a made-up cookie keeps nothing (no KV record, no object storage); over https the answers carry HSTS; plain http off loopback cannot start a sign-in (400, not a 500)", async () => {
  await emu.control("reset");
  const persist = mkdtempSync(join(tmpdir(), "qauth-demo-fake-"));
  const w = await start({ persist });
  try {
    const kv = await w.mf.getKVNamespace("SESSIONS", "demo1");
    const count = async () => (await kv.list()).keys.length;
    const before = await count();
    const ns = await w.mf.getDurableObjectNamespace("TOKEN_BROKER", "demo1");
    for (let i = 0; i < 5; i++) {
      const sid = "x".repeat(42) + i;
      const r = await w.call(0, "/auth/logout", { method: "POST", sid });
      assert.equal(r.status, 200, r.text);
      // Its object was asked to end; it never served anything, so it keeps no marker: a lease
      // (on this instance) is refused, and once the instance is gone nothing is left of it.
      const storeKey = `session:${sha256hex(sid)}`;
      const name = `qflow|${emu.url}|${CREDS.clientId}|${storeKey}|`;
      const r2 = await ns.get(ns.idFromName(name)).lease({ name, provider: "qflow", options: { clientId: CREDS.clientId, clientSecret: CREDS.clientSecret, identityUrl: emu.url, storeKey } });
      assert.equal(r2.error?.message, "the session was ended");
    }
    assert.equal(await count(), before, "no KV record for a session that never was");
    const post = (origin) => w.apps[0].fetch(origin + "/auth/start", { method: "POST", headers: { origin, "content-type": "application/json" }, body: "{}" });
    const https = await post("https://demo.example");
    assert.equal(https.status, 200, await https.clone().text());
    assert.equal(https.headers.get("strict-transport-security"), "max-age=31536000");
    await https.arrayBuffer();
    const http = await post("http://demo.example");
    assert.deepEqual([http.status, (await http.json()).code], [400, "insecure_origin"]);
    assert.equal(http.headers.get("strict-transport-security"), null);
  } finally {
    await w.mf.dispose();
  }
  // What the objects wrote: nothing but what a lease leaves (none of them holds an ended marker).
  const files = (dir) => readdirSync(dir, { recursive: true }).map(String);
  const markers = files(persist).filter((f) => /\.sqlite/.test(f) && statSync(join(persist, f)).isFile() && readFileSync(join(persist, f)).includes("qauth:ended"));
  rmSync(persist, { recursive: true, force: true });
  assert.deepEqual(markers, [], "no object keeps an ended marker for a session that never was");
});

test("a sign-out retried after its first try ended only the KV record still ends the object", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const sid = await signIn(w);
    // The first sign-out got as far as KV (ended), then failed before the object was ended.
    const kv = await w.mf.getKVNamespace("SESSIONS", "demo1");
    const key = `session:${sha256hex(sid)}`;
    const meta = JSON.parse(await kv.get(key));
    await kv.put(key, JSON.stringify({ ...meta, ended: true }));
    const r = await w.call(1, "/auth/logout", { method: "POST", sid });
    assert.equal(r.status, 200, r.text);
    const ns = await w.mf.getDurableObjectNamespace("TOKEN_BROKER", "demo1");
    const name = `qflow|${emu.url}|${CREDS.clientId}|${key}|`;
    const lease = await ns.get(ns.idFromName(name)).lease({ name, provider: "qflow", options: { clientId: CREDS.clientId, clientSecret: CREDS.clientSecret, identityUrl: emu.url, storeKey: key } });
    assert.deepEqual([lease.token, lease.error?.message], [undefined, "the session was ended"], JSON.stringify(lease));
  } finally {
    await w.mf.dispose();
  }
});

test("sign-out reaches the object that holds the session's tokens, also with the identity URL written another way (HTTP://, the library's name for it)", async () => {
  await emu.control("reset");
  const w = await start({ identityUrl: emu.url.replace("http://", "HTTP://") + "/" });
  try {
    const sid = await signIn(w);
    const r = await w.call(1, "/auth/logout", { method: "POST", sid });
    assert.equal(r.status, 200, r.text);
    // The object QflowAuth leases from (its name carries the identity URL in normal form).
    const ns = await w.mf.getDurableObjectNamespace("TOKEN_BROKER", "demo1");
    const key = `session:${sha256hex(sid)}`;
    const name = `qflow|${emu.url}|${CREDS.clientId}|${key}|`;
    const lease = await ns.get(ns.idFromName(name)).lease({ name, provider: "qflow", options: { clientId: CREDS.clientId, clientSecret: CREDS.clientSecret, identityUrl: emu.url, storeKey: key } });
    assert.deepEqual([lease.token, lease.error?.message], [undefined, "the session was ended"], JSON.stringify(lease));
  } finally {
    await w.mf.dispose();
  }
});
