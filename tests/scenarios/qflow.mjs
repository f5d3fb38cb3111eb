// QflowAuth scenarios: run in Node (tests/js/qflow.test.mjs) and in workerd (tests/js/workerd.test.mjs).
import { suite, qflowOptions, memoryStore, assertNoCanary, authorizationCode, CREDS, sleep } from "./common.mjs";

const { list, scenario } = suite();
export default list;

scenario("headers() after one password grant", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const h = await q.headers();
  assert.match(h.Authorization, /^Bearer CANARY-at-/);
  assert.equal(h["Ocp-Apim-Subscription-Key"], CREDS.subscriptionKey);
  assert.ok(Object.isFrozen(h));
  const again = await q.headers();
  assert.equal(again, h, "a cache hit returns the cached object");
  assert.equal("Bearer " + (await q.accessToken()), h.Authorization);
  const s = await emu.stats();
  assert.equal(s.token.password, 1);
  assert.equal(s.token.total, 1);
});

scenario("free() and Symbol.dispose forget the cached headers: a freed client hands out no token", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  for (const end of [(q) => q.free(), (q) => q[Symbol.dispose]()]) {
    const q = new QflowAuth(qflowOptions(emu));
    await q.headers();
    await q.headers(); // a cache hit, served from the JS hit path
    end(q);
    end(q); // twice (free() inside a `using` scope): nothing more happens
    const p = q.headers();
    assert.ok(p instanceof Promise, "a rejected Promise, not a throw");
    const out = await p.then((h) => h, (e) => e);
    assert.ok(out instanceof AuthError, `a freed client answered ${JSON.stringify(out)}`);
    assert.equal(out.code, "invalid_request");
    assert.doesNotMatch(JSON.stringify(out), /CANARY/);
  }
});

scenario("free() while a refresh is in flight: the call ends with its token and the rotated refresh token is saved", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const store = memoryStore();
  const q = new QflowAuth(qflowOptions(emu, { store }));
  await q.headers();
  q.invalidate();
  const inFlight = q.headers(); // a refresh grant is sent now; its answer rotates the refresh token
  q.free();
  const h = await inFlight;
  assert.match(h.Authorization, /^Bearer CANARY-at-/, "a call that started before free() runs to its end");
  assert.equal(store.puts.length, 2, "the rotated refresh token was saved, not lost with the client");
  const s = await emu.stats();
  assert.equal(s.token.refresh_token, 1);
  const late = await q.headers().then((x) => x, (e) => e);
  assert.ok(late instanceof AuthError && late.code === "invalid_request", "a new call after free() is refused");
  // The saved chain goes on: a new client on the same store refreshes with the rotated token.
  const q2 = new QflowAuth({ ...qflowOptions(emu), username: undefined, password: undefined, store, storeKey: [...store.map.keys()][0] });
  await q2.headers();
  const after = (await emu.stats()).token;
  assert.equal(after.invalidGrant, 0);
  assert.equal(after.reuseDetected, 0);
  assert.equal(after.refresh_token, 2);
  q2.free();
});

scenario("1,000 concurrent headers() on a cold cache -> exactly 1 token request", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const all = await Promise.all(Array.from({ length: 1000 }, () => q.headers()));
  assert.equal(new Set(all.map((h) => h.Authorization)).size, 1);
  assert.equal((await emu.stats()).token.total, 1);
});

scenario("concurrent callers share one failure too", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu, { password: "CANARY-wrong-password-1" }));
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => q.headers()));
  assert.ok(results.every((r) => r.status === "rejected" && r.reason instanceof AuthError && r.reason.code === "invalid_grant"));
  assert.equal((await emu.stats()).token.total, 1);
});

scenario("invalid config is a typed error naming the option", ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  const cases = [
    [{ ...qflowOptions(emu), clientId: undefined }, "clientId"],
    [{ ...qflowOptions(emu), identityUrl: "not a url" }, "identityUrl"],
    [{ ...qflowOptions(emu), apiUrl: "ftp://x" }, "apiUrl"],
    [{ ...qflowOptions(emu), username: "CANARY-password-joe-91c3" }, "username"],
    [{ ...qflowOptions(emu), timeoutMs: "soon" }, "timeoutMs"],
    [{ ...qflowOptions(emu), store: {} }, "store"],
    [{ ...qflowOptions(emu), onEvent: 5 }, "onEvent"],
  ];
  for (const [opts, name] of cases) {
    assert.throws(() => new QflowAuth(opts), (e) => {
      assert.ok(e instanceof AuthError && e instanceof Error);
      assert.equal(e.code, "invalid_config");
      assert.equal(e.retryable, false);
      assert.match(e.message, new RegExp(name));
      assert.ok(e.hint.length > 10);
      assertNoCanary(assert, JSON.stringify(e) + e.message + e.stack, "a config error");
      return true;
    });
  }
  assert.throws(() => new QflowAuth(null), (e) => e.code === "invalid_config");
});

scenario("rotation: every new refresh token is stored, in order, before its access token is used", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const store = memoryStore();
  const events = [];
  const q = new QflowAuth(qflowOptions(emu, { store, onEvent: (e) => events.push(e) }));
  const seen = [];
  for (let i = 0; i < 4; i++) {
    const h = await q.headers();
    // When a token is handed out, the store already holds the refresh token issued with it.
    seen.push([h.Authorization, store.puts.length]);
    assert.equal(await q.headers(), h, "a hit returns the same frozen object");
    q.invalidate();
  }
  assert.equal(store.puts.length, 4);
  assert.equal(new Set(store.puts).size, 4, "each refresh returns a new refresh token");
  assert.deepEqual(seen.map((s) => s[1]), [1, 2, 3, 4]);
  const s = await emu.stats();
  assert.equal(s.token.password, 1);
  assert.equal(s.token.refresh_token, 3);
  assert.equal(events.filter((e) => e.type === "refresh_token_rotated").length, 4);
  assert.equal(events.filter((e) => e.type === "token_refreshed").length, 3);
  assertNoCanary(assert, JSON.stringify(events), "events");

  // A second client started from the store continues without the password.
  const q2 = new QflowAuth({ ...qflowOptions(emu), username: undefined, password: undefined, store, storeKey: [...store.map.keys()][0] });
  await q2.headers();
  const s2 = await emu.stats();
  assert.equal(s2.token.password, 1);
  assert.equal(s2.token.refresh_token, 4);

  // The first client's refresh token is now used: the emulator refuses it, fallback to password.
  const ev1 = [];
  const q3 = new QflowAuth(qflowOptions(emu, { refreshToken: store.puts[3], onEvent: (e) => ev1.push(e.type) }));
  await q3.headers();
  assert.ok(ev1.includes("fallback_to_password"));
  const s3 = await emu.stats();
  assert.equal(s3.token.errors, 1);
  assert.equal(s3.token.password, 2);
});

scenario("a dead refresh token without a password is invalid_grant with a hint to sign in", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth({ ...qflowOptions(emu), username: undefined, password: undefined, refreshToken: "CANARY-rt-dead" });
  await assert.rejects(q.headers(), (e) => {
    assert.equal(e.code, "invalid_grant");
    assert.match(e.message + e.hint, /sign in/i);
    assertNoCanary(assert, JSON.stringify(e) + e.message, "invalid_grant error");
    return true;
  });
});

/** A client whose refresh (from a password grant's token) got a rotated token its store failed to save: held. */
async function holdingARotation(QflowAuth, emu, assert) {
  const store = memoryStore();
  let fail = false;
  const put = store.put;
  store.put = async (k, v) => {
    if (fail) throw new Error("KV down CANARY-in-store-error");
    return put(k, v);
  };
  const q = new QflowAuth(qflowOptions(emu, { store }));
  await q.headers();
  q.invalidate();
  fail = true;
  await assert.rejects(q.headers(), (e) => e.code === "store_failed" && e.retryable && !/CANARY/.test(e.message));
  fail = false;
  return { q, store, failPuts: (on) => (fail = on) };
}

scenario("a store whose put fails holds the token back, then saves it on the next call", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const { q, store } = await holdingARotation(QflowAuth, emu, assert);
  const h = await q.headers();
  assert.match(h.Authorization, /^Bearer /);
  assert.equal(store.puts.length, 2);
  const s = await emu.stats();
  assert.equal(s.token.refresh_token, 1, "the held token was used, not a second refresh");
});

scenario("free() after a failed save makes one last save: the next client refreshes from the rotated token, not the spent one", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const { q: a, store, failPuts } = await holdingARotation(QflowAuth, emu, assert);
  const spent = [...store.map.values()][0];
  // The request is over, the client released (one per request): what it held is saved first.
  const freed = a.free();
  assert.equal(a.free(), freed, "a second free() answers the same Promise");
  assert.equal(await freed, undefined);
  assert.notEqual([...store.map.values()][0], spent, "the rotated token is in the store");
  // A refresh-only client (another request, another isolate) goes on from it.
  const c = new QflowAuth(qflowOptions(emu, { store, password: undefined }));
  assert.match((await c.headers()).Authorization, /^Bearer /);
  const t = (await emu.stats()).token;
  assert.deepEqual([t.refresh_token, t.reuseDetected, t.invalidGrant], [2, 0, 0], JSON.stringify(t));
  // Never over a newer token: a client holding one back is freed after another (a new sign-in
  // with the password, here) wrote its own; the store keeps the newer one.
  c.invalidate();
  failPuts(true);
  await assert.rejects(c.headers(), (e) => e.code === "store_failed");
  failPuts(false);
  const d = new QflowAuth(qflowOptions(emu, { store: { get: async () => null, put: (k, v) => store.put(k, v) } }));
  await d.headers();
  const newer = [...store.map.values()][0];
  await c.free();
  assert.equal([...store.map.values()][0], newer, "the held token was not written over the newer one");
  await d.free();
});

scenario("a refresh whose answer is lost falls back to the password", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const events = [];
  const q = new QflowAuth(qflowOptions(emu, { onEvent: (e) => events.push(e.type), timeoutMs: 3000 }));
  await q.headers();
  q.invalidate();
  await emu.faults({ kind: "drop" });
  const h = await q.headers();
  assert.match(h.Authorization, /^Bearer /);
  assert.ok(events.includes("fallback_to_password"), events.join());
  const s = await emu.stats();
  assert.equal(s.token.password, 2);
});

const FAULTS = [
  [{ kind: "status", status: 500, count: 10 }, "server_error", 500],
  [{ kind: "status", status: 503, count: 10 }, "server_error", 503],
  [{ kind: "status", status: 429, retryAfter: 30, count: 10 }, "rate_limited", 429],
  [{ kind: "html", count: 10 }, "bad_response", 200],
  [{ kind: "malformed", count: 10 }, "bad_response", 200],
  [{ kind: "truncated", count: 10 }, "network", undefined],
  [{ kind: "delay", ms: 3000, count: 10 }, "timeout", undefined],
];

for (const [fault, code, status] of FAULTS) {
  scenario(`fault ${fault.kind}${fault.status ?? ""} -> ${code}, no hang past timeoutMs`, async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
    await emu.control("reset");
    await emu.faults(fault);
    const q = new QflowAuth(qflowOptions(emu, { timeoutMs: 1000 }));
    const t0 = Date.now();
    await assert.rejects(q.headers(), (e) => {
      assert.ok(e instanceof AuthError);
      assert.equal(e.code, code);
      assert.equal(e.status, status);
      if (code === "rate_limited") assert.equal(e.retryAfter, 30);
      assertNoCanary(assert, JSON.stringify(e) + e.message, `${code} error`);
      return true;
    });
    assert.ok(Date.now() - t0 < 1000 + 1500, `took ${Date.now() - t0} ms`);
  });
}

scenario("a token answer without expires_in is kept for an hour and says so (expiry_assumed)", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  await emu.faults({ kind: "no_expiry" });
  const events = [];
  const q = new QflowAuth(qflowOptions(emu, { onEvent: (e) => events.push(e) }));
  await q.headers();
  assert.deepEqual(
    events.map((e) => (e.type === "token_acquired" ? [e.type, e.grant, e.expiresIn] : [e.type, e.expiresIn])),
    [
      ["expiry_assumed", 3600],
      ["token_acquired", "password", 3600],
    ],
  );
  q.free();
});

scenario("exchangeCode() twice with the same code: the second is refused and nothing is sent (a code is single use)", async ({ qauth: { QflowAuth, AuthError, beginAuthorization }, emu, assert }) => {
  await emu.control("reset");
  const args = await authorizationCode(emu, beginAuthorization);
  const { code } = args;
  const c = new QflowAuth(qflowOptions(emu, { username: undefined, password: undefined }));
  await c.exchangeCode(args);
  const first = await c.accessToken();
  const e = await c.exchangeCode(args).then(() => null, (x) => x);
  assert.ok(e instanceof AuthError, String(e));
  assert.deepEqual([e.code, e.retryable], ["invalid_request", false]);
  assert.ok(!e.message.includes(code), "the code is not in the message");
  assert.equal(await c.accessToken(), first, "the refused exchange changed nothing");
  assert.equal((await emu.stats()).token.authorization_code, 1);
  c.free();
});

scenario("transient faults are retried with backoff, then succeed", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  await emu.faults({ kind: "status", status: 503, count: 2 }, { kind: "status", status: 429, retryAfter: 1 });
  const events = [];
  const q = new QflowAuth(qflowOptions(emu, { onEvent: (e) => events.push(e) }));
  await q.headers();
  const retries = events.filter((e) => e.type === "retry");
  assert.equal(retries.length, 3);
  assert.equal(retries[2].delayMs, 1000, "Retry-After honoured");
  assert.equal((await emu.stats()).token.total, 4);
});

scenario("400/401 answers are never retried", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu, { clientSecret: "CANARY-wrong-secret-1" }));
  await assert.rejects(q.headers(), (e) => e.code === "invalid_client" && e.status === 401 && !/CANARY/.test(JSON.stringify(e) + e.message));
  assert.equal((await emu.stats()).token.total, 1);
});

scenario("fetch(): relative path, both headers, created event echoed", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const r = await q.fetch("/checkin/v1/api/event", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "Launch" }) });
  assert.equal(r.status, 201);
  const body = await r.json();
  assert.equal(body.name, "Launch");
  assert.equal(body.createdBy, CREDS.joe.username);
});

scenario("fetch(): 401 -> one forced refresh + one retry, then success", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const before = await q.headers();
  await emu.control("revoke");
  const r = await q.fetch("/checkin/v1/api/event", { method: "POST", body: JSON.stringify({ name: "Again" }) });
  assert.equal(r.status, 201);
  assert.equal((await r.json()).name, "Again", "the body was sent again on the retry");
  // The refresh forced by the 401 also replaced what headers() hands out (its cache-hit path).
  const after = await q.headers();
  assert.notEqual(after.Authorization, before.Authorization);
  const s = await emu.stats();
  assert.equal(s.token.refresh_token, 1);
  assert.equal(s.api.rejects, 1);
});

scenario("fetch(): a persistent 401 is unauthorized", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu, { subscriptionKey: "CANARY-wrong-subscription-key" }));
  await assert.rejects(q.fetch("/checkin/v1/api/events"), (e) => e.code === "unauthorized" && e.status === 401 && !/CANARY/.test(JSON.stringify(e) + e.message));
  const s = await emu.stats();
  assert.equal(s.api.calls, 2);
  assert.equal(s.token.total, 2);
});

scenario("fetch(): never sends credentials to another origin, never follows redirects", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  const q = new QflowAuth(qflowOptions(emu));
  await assert.rejects(q.fetch("https://evil.example/steal"), (e) => e.code === "invalid_request");
  await assert.rejects(q.fetch("//evil.example/steal"), (e) => e.code === "invalid_request");
  const r = await q.fetch("/checkin/v1/api/redirect");
  assert.equal(r.status, 307);
});

scenario("commsAccess and trust gate", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const joe = new QflowAuth(qflowOptions(emu));
  assert.deepEqual(await joe.commsAccess("evt-1"), { enabled: true });
  const ann = new QflowAuth(qflowOptions(emu, CREDS.ann));
  assert.deepEqual(await ann.commsAccess("evt-1"), { enabled: false, reason: "comms_api_not_enabled" });
  await assert.rejects(ann.fetch("/comms/v1/api/comms/templates?eventId=1"), (e) => e.code === "comms_api_not_enabled" && !e.retryable && /support/i.test(e.hint));
  const kim = new QflowAuth(qflowOptions(emu, CREDS.kim));
  await assert.rejects(kim.fetch("/comms/v1/api/comms/send", { method: "POST", body: "{}" }), (e) => e.code === "trust_required" && e.status === 403 && /verif/i.test(e.hint));
  const s = await emu.stats();
  assert.equal(s.token.refresh_token, 0, "a 403 gate does not refresh the token");
});

scenario("authorizeRequest(): same method, URL, body and headers, plus both auth headers", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const req = new Request(emu.url + "/checkin/v1/api/event", { method: "POST", headers: { "x-trace": "t1", "content-type": "application/json" }, body: '{"name":"Fwd"}' });
  const out = await q.authorizeRequest(req);
  assert.equal(out.method, "POST");
  assert.equal(out.url, req.url);
  assert.equal(out.headers.get("x-trace"), "t1");
  assert.match(out.headers.get("authorization"), /^Bearer /);
  assert.equal(out.headers.get("ocp-apim-subscription-key"), CREDS.subscriptionKey);
  const r = await fetch(out);
  assert.equal((await r.json()).name, "Fwd");
  await assert.rejects(q.authorizeRequest(new Request("https://evil.example/")), (e) => e.code === "invalid_request");
});

scenario("token TTL 2 s: a 10 s loop of API calls never sends an expired token", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  await emu.control("ttl", { token: 2 });
  const q = new QflowAuth(qflowOptions(emu));
  const t0 = Date.now();
  let calls = 0;
  while (Date.now() - t0 < 10_000) {
    const r = await q.fetch("/checkin/v1/api/events");
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    calls++;
    await sleep(20);
  }
  const s = await emu.stats();
  await emu.control("reset");
  assert.equal(s.api.rejectsExpired, 0);
  assert.equal(s.api.rejects, 0);
  // Skew is capped at half the 2 s lifetime: a new token about every second.
  const expected = Math.round((Date.now() - t0) / 1000) - 1; // the first token came from the password grant
  assert.ok(Math.abs(s.token.refresh_token - expected) <= 1, `refreshes ${s.token.refresh_token}, expected ~${expected}, calls ${calls}`);
});

scenario("rotation without a broker: a second client on the same store uses the newer refresh token (0 invalid_grant)", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const store = memoryStore();
  const a = new QflowAuth(qflowOptions(emu, { store }));
  await a.headers();
  a.invalidate();
  await a.headers(); // rt1 -> rt2, saved
  // Started after the first rotated: it reads rt2 from the store, not an older one.
  const b = new QflowAuth(qflowOptions(emu, { store, refreshToken: store.puts[0] }));
  await b.headers();
  // The first client refreshes again: it re-reads the store and uses b's rotation, not its own rt2.
  a.invalidate();
  await a.headers();
  const s = await emu.stats();
  assert.equal(s.token.password, 1);
  assert.equal(s.token.refresh_token, 3);
  assert.equal(s.token.invalidGrant, 0);
  assert.equal(s.token.reuseDetected, 0);
  assert.equal(new Set(store.puts).size, store.puts.length);
});

scenario("a refresh whose answer is lost is never sent again (no reuse), then the password", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const store = memoryStore();
  const events = [];
  const q = new QflowAuth(qflowOptions(emu, { store, onEvent: (e) => events.push(e.type), timeoutMs: 3000 }));
  await q.headers();
  q.invalidate();
  await emu.faults({ kind: "drop" }); // the server rotates, then the connection drops
  const h = await q.headers();
  assert.match(h.Authorization, /^Bearer /);
  const s = await emu.stats();
  assert.equal(s.token.refresh_token, 1, "the possibly-consumed refresh token was sent once");
  assert.equal(s.token.reuseDetected, 0);
  assert.equal(s.token.password, 2);
  assert.ok(events.includes("fallback_to_password"), events.join());
});

scenario("a refresh-only deployment: username + store, no password, starts from the saved refresh token", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const store = memoryStore();
  const seed = new QflowAuth(qflowOptions(emu, { store, storeKey: "refresh-only" }));
  await seed.headers();
  const q = new QflowAuth({ ...qflowOptions(emu, { store, storeKey: "refresh-only" }), password: undefined });
  await q.headers();
  q.invalidate();
  await q.headers();
  const s = await emu.stats();
  assert.equal(s.token.password, 1, "only the seeding client used the password");
  assert.equal(s.token.refresh_token, 2);
  // Nothing saved and no password: invalid_grant telling the user to sign in, nothing sent.
  const empty = new QflowAuth({ ...qflowOptions(emu, { store: memoryStore(), storeKey: "none" }), password: undefined });
  await assert.rejects(empty.headers(), (e) => e instanceof AuthError && e.code === "invalid_grant" && /sign in/i.test(e.message));
  // Neither store nor refresh token: a configuration error.
  assert.throws(() => new QflowAuth({ ...qflowOptions(emu), password: undefined }), (e) => e.code === "invalid_config" && /password/.test(e.message));
  assert.equal((await emu.stats()).token.total, 3);
});

/**
 * A refresh-only client (username + store, no password) on a store seeded with a live refresh
 * token; `get(key, read)`, if given, is the store's `get` from then on (a client takes a store's
 * methods when it is constructed).
 */
async function refreshOnly(QflowAuth, emu, storeKey, extra = {}, get) {
  const store = memoryStore();
  const seed = new QflowAuth(qflowOptions(emu, { store, storeKey }));
  await seed.headers();
  seed.free();
  if (get) {
    const read = store.get.bind(store);
    store.get = (k) => get(k, read);
  }
  return new QflowAuth({ ...qflowOptions(emu, { store, storeKey, ...extra }), password: undefined });
}

scenario("a 503 with a Retry-After in any form (an HTTP-date, a value past reading) keeps the refresh token: the next call refreshes with it", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  for (const retryAfter of ["Mon, 30 Nov 2026 12:00:00 GMT", "-1", "99999999999"]) {
    await emu.control("reset");
    const q = await refreshOnly(QflowAuth, emu, "ra-503", { timeoutMs: 1000 });
    await emu.faults({ kind: "status", status: 503, retryAfter, count: 10 });
    await assert.rejects(q.headers(), (e) => {
      assertNoCanary(assert, JSON.stringify(e) + e.message, "the 503's error");
      return e instanceof AuthError && e.code === "server_error" && e.status === 503;
    });
    await emu.control("reset"); // the faults and counters, not the tokens
    const h = await q.headers();
    assert.match(h.Authorization, /^Bearer /, retryAfter);
    const s = await emu.stats();
    assert.deepEqual([s.token.refresh_token, s.token.reuseDetected], [1, 0], `${retryAfter}: the token the 503 did not take was used once`);
    q.free();
  }
});

scenario("each grant gets the whole timeoutMs: a store read that takes most of it leaves the refresh its full time", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  let reads = 0;
  const q = await refreshOnly(QflowAuth, emu, "slow-read", { timeoutMs: 1200 }, async (k, read) => {
    reads++;
    await sleep(900);
    return read(k);
  });
  // The identity server takes 600 ms: with one deadline for the read and the grant, the refresh
  // would be cut at ~300 ms and its token counted as spent ("sign in again").
  await emu.faults({ kind: "delay", ms: 600 });
  const h = await q.headers();
  assert.match(h.Authorization, /^Bearer /);
  assert.equal(reads, 1);
  assert.equal((await emu.stats()).token.reuseDetected, 0);
  q.free();
});

scenario("a store whose get() calls headers() again (without awaiting it) joins the flight it is part of: both get the token", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  let inner;
  const q = await refreshOnly(QflowAuth, emu, "reenter", {}, (k, read) => {
    inner ??= q.headers();
    return read(k);
  });
  const outer = await q.headers();
  assert.equal((await inner).Authorization, outer.Authorization);
  assert.equal((await emu.stats()).token.refresh_token, 1);
  q.free();
});

scenario("a host name that did not resolve (ENOTFOUND / EAI_AGAIN) sent nothing: the refresh token stays good", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  for (const code of ["ENOTFOUND", "EAI_AGAIN"]) {
    await emu.control("reset");
    const q = await refreshOnly(QflowAuth, emu, "dns", { timeoutMs: 1000 });
    // The platform's own failure, shaped as Node's fetch rejects it: no request left.
    const real = globalThis.fetch;
    globalThis.fetch = (url, init) =>
      String(url).endsWith("/core/connect/token") ? Promise.reject(new TypeError("fetch failed", { cause: Object.assign(new Error(`getaddrinfo ${code}`), { code }) })) : real(url, init);
    let e;
    try {
      e = await q.headers().then(() => null, (x) => x);
    } finally {
      globalThis.fetch = real;
    }
    assert.ok(e instanceof AuthError && e.code === "network" && /did not resolve/.test(e.message), String(e));
    assertNoCanary(assert, JSON.stringify(e) + e.message + e.hint, "the DNS failure's error");
    const h = await q.headers();
    assert.match(h.Authorization, /^Bearer /, `${code}: the refresh token was not counted as spent`);
    assert.equal((await emu.stats()).token.refresh_token, 1);
    q.free();
  }
});

scenario("commsAccess(): a 429 or 503 from the API is rate_limited / server_error with the API's Retry-After", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  for (const [status, code] of [
    [429, "rate_limited"],
    [503, "server_error"],
  ]) {
    await emu.control("api-faults", { faults: [{ kind: "status", status, retryAfter: 7 }] });
    const e = await q.commsAccess("evt-1").then(() => null, (x) => x);
    assert.ok(e instanceof AuthError, String(e));
    assert.deepEqual([e.code, e.retryable, e.status, e.retryAfter], [code, true, status, 7]);
    assertNoCanary(assert, JSON.stringify(e) + e.message, `commsAccess ${status}`);
  }
  q.free();
});

/** Runs `fn` with the wall clock shifted by what `shift()` says (ms), then puts it back. */
async function withClock(shift, fn) {
  const real = Date.now;
  Date.now = () => real() + shift();
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

scenario("a wall clock stepped back past a token's issue does not make it fresh again: one refresh, never a dead token", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  await emu.control("ttl", { token: 2 });
  try {
    const q = new QflowAuth(qflowOptions(emu));
    const first = await q.headers();
    await withClock(
      () => -30_000,
      async () => {
        await sleep(2300); // the token (2 s) is dead at the server; the clock says 30 s earlier
        const h = await q.headers();
        assert.notEqual(h.Authorization, first.Authorization, "a token from before the step is not handed out");
        const r = await fetch(emu.url + "/checkin/v1/api/events", { headers: h });
        assert.equal(r.status, 200);
        await r.arrayBuffer();
      },
    );
    q.free();
  } finally {
    await emu.control("reset");
  }
});

scenario("a wall clock stepped forward during a refresh does not give up the flight: the caller that joins it gets the token", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const q = await refreshOnly(QflowAuth, emu, "clock-forward", { timeoutMs: 1000 });
  await emu.faults({ kind: "delay_refresh", ms: 300 });
  let step = 0;
  await withClock(
    () => step,
    async () => {
      const starter = q.headers();
      await sleep(50);
      step = 20_000; // past the watchdog (8 x timeoutMs + 1 s) on the wall clock
      const joiner = q.headers();
      const [a, b] = await Promise.all([starter, joiner]);
      assert.equal(a.Authorization, b.Authorization);
    },
  );
  assert.deepEqual([(await emu.stats()).token.refresh_token, (await emu.stats()).token.invalidGrant], [1, 0]);
  q.free();
});

scenario("exchangeCode() and headers() started in the same turn on a new client: the call joins the exchange's flight, and the client goes on working", async ({ qauth: { QflowAuth, beginAuthorization }, emu, assert }) => {
  await emu.control("reset");
  const args = await authorizationCode(emu, beginAuthorization);
  const q = new QflowAuth(qflowOptions(emu, { username: undefined, password: undefined }));
  const [exchanged, beside] = await Promise.allSettled([q.exchangeCode(args), q.headers()]);
  assert.equal(exchanged.status, "fulfilled", String(exchanged.reason));
  assert.equal(beside.status, "fulfilled", String(beside.reason));
  assert.equal(beside.value.Authorization, "Bearer " + (await q.accessToken()), "the exchange's token");
  // Later acquisitions start and end as ever (each a refresh of the chain the code started).
  for (let i = 0; i < 3; i++) {
    q.invalidate();
    assert.match((await q.headers()).Authorization, /^Bearer /, `refresh ${i + 1}`);
  }
  const t = (await emu.stats()).token;
  assert.deepEqual([t.authorization_code, t.refresh_token, t.invalidGrant], [1, 3, 0], JSON.stringify(t));
  q.free();
});

scenario("with a broker, an exchange whose lease gets no answer in time drops the token of the chain before: the next call leases again", async ({ qauth: { QflowAuth }, emu, assert }) => {
  // A namespace standing in for the object: slow on the exchange, which it still runs (the key
  // then serves the new sign-in).
  let switched = false;
  const token = (accessToken, generation) => ({ token: { accessToken, expiresInMs: 3.6e6, lifetimeMs: 3.6e6, generation } });
  const broker = {
    idFromName: (name) => ({ name }),
    get: () => ({
      async lease(request) {
        if (!request.exchange) return switched ? token("AT-NEW-SIGN-IN", 2) : token("AT-BEFORE", 1);
        switched = true;
        await sleep(700);
        return token("AT-NEW-SIGN-IN", 2);
      },
    }),
  };
  const c = new QflowAuth({ clientId: CREDS.clientId, clientSecret: CREDS.clientSecret, subscriptionKey: CREDS.subscriptionKey, identityUrl: emu.url, apiUrl: emu.url, storeKey: "session-1", broker, timeoutMs: 300 });
  assert.equal(await c.accessToken(), "AT-BEFORE");
  const e = await c.exchangeCode({ code: "the-code", codeVerifier: "v".repeat(43), redirectUri: emu.url + "/cb" }).then(() => null, (x) => x);
  assert.equal(e?.code, "timeout", String(e));
  assert.equal(await c.accessToken(), "AT-NEW-SIGN-IN", "the token of the chain before the exchange is not handed out");
  await c.free();
});

scenario("a call that joins a failing exchange gets a token of its own, not the exchange's error", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const [ex, beside] = await Promise.allSettled([q.exchangeCode({ code: "not-a-code", codeVerifier: "v".repeat(43), redirectUri: emu.url + "/cb" }), q.headers()]);
  assert.equal(ex.reason?.code, "invalid_grant", String(ex.reason));
  assert.equal(beside.status, "fulfilled", String(beside.reason));
  assert.match(beside.value.Authorization, /^Bearer /);
  const t = (await emu.stats()).token;
  assert.deepEqual([t.authorization_code, t.password], [1, 1], JSON.stringify(t));
  q.free();
});

scenario("a failing exchangeCode() does not fail the calls beside it: they get the token already cached, and it stays", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const before = await q.headers();
  const ex = q.exchangeCode({ code: "not-a-code", codeVerifier: "v".repeat(43), redirectUri: emu.url + "/cb" }).then(() => null, (e) => e);
  const during = await Promise.all([q.headers(), q.accessToken()]);
  assert.equal(during[0].Authorization, before.Authorization);
  const e = await ex;
  assert.ok(e instanceof AuthError && e.code === "invalid_grant", String(e));
  assert.equal((await q.headers()).Authorization, before.Authorization);
  assert.equal((await emu.stats()).token.refresh_token, 0, "nothing refreshed");
  q.free();
});
