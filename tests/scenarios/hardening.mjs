// Hardening scenarios: hostile arguments, re-entrant callbacks, secrets echoed by servers, lying
// Requests. Run in Node (tests/js/hardening.test.mjs) and in workerd (tests/js/workerd-scenarios.test.mjs).
import { suite, qflowOptions, memoryStore, assertNoCanary, CREDS } from "./common.mjs";

const { list, scenario } = suite();
export default list;

const qpienOptions = (emu, extra = {}) => ({ ...CREDS.qpien, endpoint: emu.url + "/graphql", ...extra });
const VIEWER = "query Viewer { viewer { id } }";
const EVENTS = "/checkin/v1/api/events";

/** Queues faults of the API gateway (`echo403`, `big403` with `size`), served after authentication. */
export const apiFaults = (emu, ...faults) => queue(emu, "/_emulator/api-faults", faults);
/** Queues faults of GraphQL operations (`echo`, `echo_cut`, `big` with `size`, `dup_data`). */
export const graphqlFaults = (emu, ...faults) => queue(emu, "/_emulator/graphql-faults", faults);

async function queue(emu, path, faults) {
  const r = await fetch(emu.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ faults }) });
  const body = await r.json();
  if (!r.ok) throw new Error(`${path}: ${JSON.stringify(body)}`);
  return body;
}

/** A printable description of any value (a Symbol cannot go into a template literal). */
function show(v) {
  try {
    if (typeof v === "symbol") return v.toString();
    if (v instanceof Error) return `${v.name}${v.code ? `(${v.code})` : ""}: ${v.message}`;
    if (Array.isArray(v)) return `[${v.map(show).join(", ")}]`;
    if (typeof v === "object" && v !== null) return Object.prototype.toString.call(v);
    return typeof v === "string" ? JSON.stringify(v) : String(v);
  } catch {
    return "<unprintable>";
  }
}

/** Records what console.log/warn/error/info/debug print while a scenario runs. */
function captureConsole() {
  const lines = [];
  const saved = {};
  for (const k of ["log", "warn", "error", "info", "debug"]) {
    saved[k] = console[k];
    console[k] = (...args) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : show(a) + " " + safeJson(a))).join(" "));
      saved[k].apply(console, args);
    };
  }
  return { text: () => lines.join("\n"), restore: () => Object.assign(console, saved) };
}

function safeJson(v) {
  try {
    return JSON.stringify(v) ?? "";
  } catch {
    return "";
  }
}

/** Every place a secret could surface from an error: its JSON, message, messages and stack. */
function errorText(e) {
  return [safeJson(e), String(e?.message), safeJson(e?.messages), String(e?.stack)].join("\n");
}

// ---------------------------------------------------------------------------------------------
// 1. The argument matrix.

/** The wrong values: each stands where a string, an object or a Request belongs. */
const V = {
  undefined: ["undefined", () => undefined],
  null: ["null", () => null],
  number: ["a number", () => 42],
  object: ["an object", () => ({})],
  array: ["an array", () => []],
  symbol: ["a symbol", () => Symbol("bad")],
  string: ["a string", () => "not-an-object"],
  bool: ["true", () => true],
};
const ALL = [V.undefined, V.null, V.number, V.object, V.array, V.symbol];
/** For an optional option, undefined and null mean "not given": only the wrong types. */
const PRESENT = [V.number, V.object, V.array, V.symbol];
/** Where a number belongs. */
const NOT_NUMBER = [V.object, V.array, V.symbol, V.string];
/** Where an object with methods, or a function, belongs. */
const NOT_CALLABLE = [V.number, V.object, V.array, V.symbol, V.string];

/**
 * Calls that must fail with a typed error: `sync` ones throw (constructors,
 * completeAuthorization); `async` ones return a Promise that rejects and never throw.
 * Problems are collected, not thrown, so one run lists every misbehaving call.
 */
function matrix(AuthError) {
  let calls = 0;
  let typed = 0;
  const failures = [];
  const judge = (label, code, e, check) => {
    const problems = [];
    if (!(e instanceof AuthError)) {
      problems.push(`not an AuthError: ${show(e)}`);
    } else {
      if (e.code !== code) problems.push(`code ${e.code} (${e.message}), expected ${code}`);
      if (e.retryable !== false) problems.push(`retryable is ${show(e.retryable)}`);
      if (typeof e.hint !== "string" || e.hint.trim() === "") problems.push(`hint is ${show(e.hint)}`);
      if (/CANARY/.test(errorText(e))) problems.push("a secret in the error");
      const extra = check?.(e);
      if (extra) problems.push(extra);
    }
    if (problems.length) failures.push(`${label}: ${problems.join("; ")}`);
    else typed++;
  };
  return {
    sync(label, code, fn, check) {
      calls++;
      let r;
      try {
        r = fn();
      } catch (e) {
        return judge(label, code, e, check);
      }
      failures.push(`${label}: did not throw (returned ${show(r)})`);
    },
    async async(label, code, fn, check) {
      calls++;
      let p;
      try {
        p = fn();
      } catch (e) {
        failures.push(`${label}: threw synchronously instead of returning a rejected Promise: ${show(e)}`);
        return;
      }
      if (!(p instanceof Promise)) {
        failures.push(`${label}: returned ${show(p)}, not a Promise`);
        return;
      }
      let v;
      try {
        v = await p;
      } catch (e) {
        return judge(label, code, e, check);
      }
      failures.push(`${label}: resolved with ${show(v)}`);
      if (v instanceof Response) await v.body?.cancel();
    },
    get calls() {
      return calls;
    },
    get typed() {
      return typed;
    },
    failures,
  };
}

const names = (word) => (e) => (new RegExp(`\\b${word}\\b`).test(e.message) ? undefined : `the message does not name \`${word}\`: ${e.message}`);
const suggests = (typo, right) => (e) => names(typo)(e) ?? names(right)(e);

scenario("argument matrix: every export refuses undefined, null, numbers, objects, arrays and symbols with a typed error, and the client keeps working", async ({ qauth, emu, assert }) => {
  const { QflowAuth, QpienAuth, AuthError, beginAuthorization, completeAuthorization } = qauth;
  await emu.control("reset");
  const m = matrix(AuthError);
  const CONFIG = "invalid_config";
  const REQUEST = "invalid_request";

  // Constructors: the options object itself, then good options with one option replaced.
  for (const [Class, good] of [
    [QflowAuth, qflowOptions(emu)],
    [QpienAuth, qpienOptions(emu)],
  ]) {
    for (const [what, make] of ALL) m.sync(`new ${Class.name}(${what})`, CONFIG, () => new Class(make()));
    const fields =
      Class === QflowAuth
        ? {
            clientId: ALL, clientSecret: ALL, subscriptionKey: ALL,
            username: PRESENT, password: PRESENT, refreshToken: PRESENT, scope: PRESENT, identityUrl: PRESENT, apiUrl: PRESENT, storeKey: PRESENT,
            refreshSkewSeconds: NOT_NUMBER, timeoutMs: NOT_NUMBER,
            store: NOT_CALLABLE, onEvent: NOT_CALLABLE, broker: NOT_CALLABLE,
          }
        : { clientId: ALL, clientSecret: ALL, endpoint: ALL, refreshSkewSeconds: NOT_NUMBER, timeoutMs: NOT_NUMBER, onEvent: NOT_CALLABLE, broker: NOT_CALLABLE };
    for (const [field, values] of Object.entries(fields)) {
      for (const [what, make] of values) {
        m.sync(`new ${Class.name}({ ...good, ${field}: ${what} })`, CONFIG, () => new Class({ ...good, [field]: make() }), names(field));
      }
    }
  }
  m.sync("new QflowAuth({ ...good, scopes })", CONFIG, () => new QflowAuth({ ...qflowOptions(emu), scopes: "qflowapi" }), suggests("scopes", "scope"));
  m.sync("new QflowAuth({ ...good, clientID })", CONFIG, () => new QflowAuth({ ...qflowOptions(emu), clientID: "x" }), suggests("clientID", "clientId"));
  m.sync("new QpienAuth({ ...good, scopes })", CONFIG, () => new QpienAuth({ ...qpienOptions(emu), scopes: "read" }), names("scopes"));

  // One client of each kind takes every bad method call, then must still work.
  const q = new QflowAuth(qflowOptions(emu));
  const qp = new QpienAuth(qpienOptions(emu));
  await q.headers();
  await qp.graphql(VIEWER);
  const before = await emu.stats();

  for (const [what, make] of ALL) await m.async(`fetch(${what})`, REQUEST, () => q.fetch(make()));
  for (const [what, make] of [V.number, V.symbol, V.string, V.bool]) await m.async(`fetch(path, ${what})`, REQUEST, () => q.fetch(EVENTS, make()));
  for (const [what, make] of ALL) await m.async(`authorizeRequest(${what})`, REQUEST, () => q.authorizeRequest(make()));
  for (const [what, make] of [V.number, V.symbol, V.string, V.bool]) await m.async(`authorizeRequest(path, ${what})`, REQUEST, () => q.authorizeRequest(EVENTS, make()));
  for (const [what, make] of [...ALL, ["an empty string", () => ""]]) await m.async(`commsAccess(${what})`, REQUEST, () => q.commsAccess(make()));

  const exchange = { code: "code-not-sent", codeVerifier: "v".repeat(43), redirectUri: "http://127.0.0.1:9/cb" };
  for (const [what, make] of ALL) await m.async(`exchangeCode(${what})`, REQUEST, () => q.exchangeCode(make()));
  for (const field of Object.keys(exchange)) {
    for (const [what, make] of ALL) await m.async(`exchangeCode({ ...good, ${field}: ${what} })`, REQUEST, () => q.exchangeCode({ ...exchange, [field]: make() }), names(field));
  }
  await m.async("exchangeCode({ ...good, codeVerifier: too short })", REQUEST, () => q.exchangeCode({ ...exchange, codeVerifier: "short" }), names("codeVerifier"));
  await m.async("exchangeCode({ ...good, redirectUri: not a URL })", REQUEST, () => q.exchangeCode({ ...exchange, redirectUri: "not a url" }), names("redirectUri"));
  await m.async("exchangeCode({ ...good, nope })", REQUEST, () => q.exchangeCode({ ...exchange, nope: 1 }), names("nope"));

  for (const [what, make] of [...ALL, ["an empty string", () => ""]]) await m.async(`graphql(${what})`, REQUEST, () => qp.graphql(make()));
  // Only a plain object is sent as written: a Map would go as {}, a Date as a string.
  const notPlain = [["a Map", () => new Map([["id", 1]])], ["a Date", () => new Date(0)], ["a class instance", () => new (class Vars {})()]];
  for (const [what, make] of [V.number, V.array, V.symbol, V.string, V.bool, ...notPlain]) await m.async(`graphql(query, ${what})`, REQUEST, () => qp.graphql(VIEWER, make()));
  for (const [what, make] of [V.number, V.array, V.symbol, V.string, ["{ operationName: 42 }", () => ({ operationName: 42 })], ["{ nope: 1 }", () => ({ nope: 1 })]]) {
    await m.async(`graphql(query, {}, ${what})`, REQUEST, () => qp.graphql(VIEWER, {}, make()));
  }

  const begin = { clientId: CREDS.clientId, redirectUri: "http://127.0.0.1:9/cb", identityUrl: emu.url };
  for (const [what, make] of ALL) await m.async(`beginAuthorization(${what})`, CONFIG, () => beginAuthorization(make()));
  for (const [field, values] of Object.entries({ clientId: ALL, redirectUri: ALL, identityUrl: PRESENT, authorizeUrl: PRESENT, scope: PRESENT })) {
    for (const [what, make] of values) await m.async(`beginAuthorization({ ...good, ${field}: ${what} })`, CONFIG, () => beginAuthorization({ ...begin, [field]: make() }), names(field));
  }
  await m.async("beginAuthorization({ ...good, scopes })", CONFIG, () => beginAuthorization({ ...begin, scopes: "openid" }), suggests("scopes", "scope"));

  const callback = "http://127.0.0.1:9/cb?code=code-1&state=s1";
  for (const [what, make] of ALL) m.sync(`completeAuthorization(${what}, { state })`, REQUEST, () => completeAuthorization(make(), { state: "s1" }));
  for (const [what, make] of [
    ...ALL.filter(([w]) => w !== "an object"),
    V.string,
    ["{ nope: 1 }", () => ({ nope: 1 })],
    ...[V.number, V.object, V.array, V.symbol].map(([w, f]) => [`{ state: ${w} }`, () => ({ state: f() })]),
  ]) {
    m.sync(`completeAuthorization(url, ${what})`, REQUEST, () => completeAuthorization(callback, make()));
  }

  assert.deepEqual(m.failures, [], `${m.failures.length} of ${m.calls} calls misbehaved:\n${m.failures.join("\n")}`);
  assert.equal(m.typed, m.calls);

  // Nothing was sent, and the same clients still work.
  const after = await emu.stats();
  assert.equal(after.api.calls, before.api.calls, "a refused call sent an API request");
  assert.equal(after.token.total, before.token.total, "a refused call sent a token request");
  assert.equal(after.qpien.calls, before.qpien.calls, "a refused call sent a GraphQL request");
  assert.match((await q.headers()).Authorization, /^Bearer CANARY-at-/);
  const r = await q.fetch(EVENTS);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).user, CREDS.joe.username);
  assert.match((await qp.headers()).Authorization, /^Bearer CANARY-qt-/);
  assert.equal((await qp.graphql(VIEWER)).viewer.id, "viewer-1");
  assert.equal((await qp.graphql(VIEWER, Object.create(null))).viewer.id, "viewer-1", "a null-prototype object is plain");
  // The good forms of the calls above work (so the refusals were about the bad value).
  assert.deepEqual({ ...completeAuthorization(callback, { state: "s1" }) }, { code: "code-1" });
  assert.match((await beginAuthorization(begin)).url, /^http:\/\/127\.0\.0\.1:\d+\//);
  return { matrix: { calls: m.calls, typedErrors: m.typed } };
});

// ---------------------------------------------------------------------------------------------
// 2. onEvent re-entrancy.

scenario("an argument over 16 MiB is a typed invalid_request before anything reaches the wasm, and no client is harmed", async ({ qauth, emu, assert }) => {
  const { QflowAuth, QpienAuth, AuthError, beginAuthorization, completeAuthorization } = qauth;
  await emu.control("reset");
  const live = new QflowAuth(qflowOptions(emu));
  const before = (await live.headers()).Authorization;
  const big = "x".repeat(17 * 1024 * 1024);
  const wide = "\u00e9".repeat(9 * 1024 * 1024); // 9 Mi characters, 18 MiB as UTF-8
  const calls = [
    ["new QflowAuth({ clientId: 17 MiB })", () => new QflowAuth({ ...qflowOptions(emu), clientId: big })],
    ["new QflowAuth(one 18 MiB string under 9 keys)", () => new QflowAuth(Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, wide])))],
    ["new QpienAuth({ endpoint: 17 MiB })", () => new QpienAuth(qpienOptions(emu, { endpoint: big }))],
    ["beginAuthorization({ clientId: 17 MiB })", () => beginAuthorization({ clientId: big, redirectUri: "https://a.example/cb" })],
    ["completeAuthorization(a 17 MiB URL)", () => completeAuthorization(`https://a.example/cb?code=${big}`, { state: "s" })],
    ["fetch(a 17 MiB path)", () => live.fetch(`/${big}`)],
    ["graphql(a 17 MiB document)", () => new QpienAuth(qpienOptions(emu)).graphql(`query Q { ${big} }`)],
  ];
  for (const [label, call] of calls) {
    const e = await (async () => call())().then(() => null, (x) => x);
    assert.ok(e instanceof AuthError && e.code === "invalid_request" && e.retryable === false && e.hint, `${label}: ${show(e)}`);
    assert.match(e.message, /16 MiB/, label);
  }
  // The client that was working still is (its token cached, then a new one), as is a new one.
  assert.equal((await live.headers()).Authorization, before);
  live.invalidate();
  assert.match((await live.headers()).Authorization, /^Bearer /);
  const fresh = new QflowAuth(qflowOptions(emu));
  assert.match((await fresh.headers()).Authorization, /^Bearer /);
  live.free();
  fresh.free();
});

scenario("onEvent re-entrancy: a callback that calls invalidate() and headers() on its own client, for every event type", async ({ qauth: { QflowAuth, QpienAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const thrown = [];
  const inner = [];
  const events = [];
  const seen = new Set();
  // The first time a client emits a type, its callback re-enters it (only the first, or
  // invalidate-on-token_acquired would loop for ever).
  const reentrant = (name, client) => {
    const firsts = new Set();
    return (e) => {
      events.push({ client: name, ...e });
      seen.add(e.type);
      if (firsts.has(e.type)) return;
      firsts.add(e.type);
      try {
        const c = client();
        c.invalidate();
        const p = c.headers();
        inner.push(p.then((h) => ({ from: `${name} ${e.type}`, h }), (err) => ({ from: `${name} ${e.type}`, err })));
      } catch (err) {
        thrown.push(`${name} ${e.type}: ${show(err)}`);
      }
    };
  };
  const outer = [];
  const settle = (label, p) => p.then((h) => outer.push({ from: label, h }), (err) => outer.push({ from: label, err }));
  const quiesce = async () => {
    for (let n = -1; n !== inner.length; ) {
      n = inner.length;
      await Promise.all(inner);
    }
  };

  // A: a store, and one 503 (no Retry-After) on the password grant, which is retried.
  await emu.faults({ kind: "status", status: 503, count: 1 });
  let a;
  a = new QflowAuth(qflowOptions(emu, { store: memoryStore(), onEvent: reentrant("A", () => a) }));
  await settle("A first headers()", a.headers()); // retry, refresh_token_rotated, token_acquired
  a.invalidate();
  await settle("A headers() after invalidate()", a.headers()); // token_refreshed (+ refresh_token_rotated)

  // B: a dead refresh token with username + password.
  let b;
  b = new QflowAuth(qflowOptions(emu, { refreshToken: "CANARY-rt-dead", onEvent: reentrant("B", () => b) }));
  await settle("B first headers()", b.headers()); // fallback_to_password, token_acquired

  // C: a Qpien token without an expiry. (First let A's and B's re-entered calls finish: a
  // token request still running would take the queued fault.)
  await quiesce();
  await emu.faults({ kind: "no_expiry" });
  let c;
  c = new QpienAuth(qpienOptions(emu, { onEvent: reentrant("C", () => c) }));
  await settle("C first headers()", c.headers()); // expiry_assumed, token_acquired

  await quiesce();
  const settled = [...outer, ...(await Promise.all(inner))];
  for (const type of ["token_acquired", "token_refreshed", "refresh_token_rotated", "fallback_to_password", "retry", "expiry_assumed"]) {
    assert.ok(seen.has(type), `no ${type} event; saw ${[...seen].join(", ")}`);
  }
  assert.deepEqual(thrown, [], "a call made inside onEvent threw");
  // Whatever a re-entered call settled to, it is never a crash (a wasm trap, a TypeError).
  const crashes = settled.filter((s) => "err" in s && !(s.err instanceof AuthError)).map((s) => `${s.from}: ${show(s.err)}`);
  assert.deepEqual(crashes, [], "a call rejected with something other than an AuthError");
  assertNoCanary(assert, safeJson(events), "events");

  // Every client still works.
  for (const [name, q] of [["A", a], ["B", b]]) {
    assert.match((await q.headers()).Authorization, /^Bearer CANARY-at-/, name);
    const r = await q.fetch(EVENTS);
    assert.equal(r.status, 200, name);
    await r.arrayBuffer();
  }
  assert.match((await c.headers()).Authorization, /^Bearer CANARY-qt-/);
  assert.equal((await c.graphql(VIEWER)).viewer.id, "viewer-1");
  const s = await emu.stats();
  assert.equal(s.token.reuseDetected, 0);
});

scenario("onEvent re-entrancy: calls waiting on an acquisition whose token the callback invalidated still get a token", async ({ qauth: { QflowAuth, QpienAuth, AuthError }, emu, assert }) => {
  // token_acquired fires after the token is installed and before the waiting calls read it; a
  // callback that drops it there must not make them hand out `undefined` or fail with "no token".
  const problems = [];
  const calls = [
    [QflowAuth, "headers", (q) => q.headers(), (v) => /^Bearer CANARY-at-/.test(v?.Authorization)],
    [QflowAuth, "accessToken", (q) => q.accessToken(), (v) => /^CANARY-at-/.test(v)],
    [QflowAuth, "fetch", (q) => q.fetch(EVENTS).then((r) => r.status), (v) => v === 200],
    [QflowAuth, "authorizeRequest", (q) => q.authorizeRequest(EVENTS).then((r) => r.headers.get("authorization")), (v) => /^Bearer CANARY-at-/.test(v)],
    [QflowAuth, "commsAccess", (q) => q.commsAccess("evt-1"), (v) => v?.enabled === true],
    [QpienAuth, "headers", (q) => q.headers(), (v) => /^Bearer CANARY-qt-/.test(v?.Authorization)],
    [QpienAuth, "accessToken", (q) => q.accessToken(), (v) => /^CANARY-qt-/.test(v)],
    [QpienAuth, "graphql", (q) => q.graphql(VIEWER), (v) => v?.viewer?.id === "viewer-1"],
  ];
  for (const [Class, name, call, ok] of calls) {
    await emu.control("reset");
    let q;
    let once = false;
    const onEvent = (e) => {
      if (e.type !== "token_acquired" || once) return;
      once = true;
      q.invalidate();
    };
    q = new Class(Class === QflowAuth ? qflowOptions(emu, { onEvent }) : qpienOptions(emu, { onEvent }));
    const label = `${Class.name}.${name}()`;
    try {
      const v = await call(q);
      if (!ok(v)) problems.push(`${label} resolved with ${show(v)}`);
    } catch (e) {
      problems.push(`${label} rejected: ${show(e)}`);
      if (!(e instanceof AuthError)) problems.push(`${label}: not an AuthError`);
    }
    assert.ok(once, `${label}: no token_acquired`);
    // Afterwards the client works again.
    assert.ok(ok(await call(q)), `${label} after the re-entrant invalidate()`);
  }
  assert.deepEqual(problems, [], `invalidate() inside onEvent broke the calls waiting for that token:\n${problems.join("\n")}`);
});

// ---------------------------------------------------------------------------------------------
// 3. Secrets echoed by servers never surface.

for (const kind of ["echo", "echo_cut"]) {
  scenario(`canary: a refresh answered 400 invalid_request echoing the refresh token and client secret (${kind})`, async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
    await emu.control("reset");
    const con = captureConsole();
    const events = [];
    let err;
    try {
      const store = memoryStore();
      const q = new QflowAuth(qflowOptions(emu, { store, onEvent: (e) => events.push(e) }));
      await q.headers();
      assert.equal(store.puts.length, 1, "the store holds a refresh token");
      q.invalidate();
      await emu.faults({ kind });
      await assert.rejects(q.headers(), (e) => {
        err = e;
        return e instanceof AuthError;
      });
    } finally {
      con.restore();
    }
    const s = await emu.stats();
    assert.equal(s.faultsServed, 1, "the echo was served");
    assert.equal(s.token.refresh_token, 1, "it answered the refresh");
    assertNoCanary(assert, errorText(err), `the ${err.code} error`);
    for (const e of events) assertNoCanary(assert, safeJson(e), "an event");
    assertNoCanary(assert, con.text(), "console output");
  });
}

scenario("canary: a 403 echoing the bearer token and subscription key (commsAccess)", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const con = captureConsole();
  const events = [];
  let err;
  try {
    const q = new QflowAuth(qflowOptions(emu, { onEvent: (e) => events.push(e) }));
    await apiFaults(emu, { kind: "echo403" });
    await assert.rejects(q.commsAccess("evt-1"), (e) => {
      err = e;
      return e instanceof AuthError;
    });
  } finally {
    con.restore();
  }
  assert.equal((await emu.stats()).apiFaultsServed, 1, "the echo was served");
  assert.equal(err.status, 403);
  assertNoCanary(assert, errorText(err), `the ${err.code} error`);
  for (const e of events) assertNoCanary(assert, safeJson(e), "an event");
  assertNoCanary(assert, con.text(), "console output");
});

for (const kind of ["echo", "echo_cut"]) {
  scenario(`canary: a GraphQL error echoing the bearer token (${kind}) -> graphql_error, messages redacted`, async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
    await emu.control("reset");
    const con = captureConsole();
    const events = [];
    let err;
    try {
      const q = new QpienAuth(qpienOptions(emu, { onEvent: (e) => events.push(e) }));
      await graphqlFaults(emu, { kind });
      await assert.rejects(q.graphql(VIEWER), (e) => {
        err = e;
        return e instanceof AuthError;
      });
    } finally {
      con.restore();
    }
    assert.equal((await emu.stats()).graphqlFaultsServed, 1, "the echo was served");
    assert.equal(err.code, "graphql_error", err.message);
    assert.ok(Array.isArray(err.messages) && err.messages.length > 0, `messages: ${safeJson(err.messages)}`);
    assert.ok(err.messages.some((msg) => /denied for/.test(msg)), `the server's words are kept: ${safeJson(err.messages)}`);
    for (const msg of err.messages) assertNoCanary(assert, msg, "error.messages");
    assertNoCanary(assert, errorText(err), "the graphql_error");
    for (const e of events) assertNoCanary(assert, safeJson(e), "an event");
    assertNoCanary(assert, con.text(), "console output");
  });
}

scenario("a 403 larger than the gate probe (64 KiB) through fetch() is handed back with its body, within timeoutMs", async ({ qauth: { QflowAuth }, emu, assert }) => {
  // fetch() reads a copy of a 403's body (up to 16 KiB) to look for a documented gate; a
  // larger body is not a gate and must reach the caller untouched, without waiting.
  await emu.control("reset");
  const timeoutMs = 3000;
  const q = new QflowAuth(qflowOptions(emu, { timeoutMs }));
  await q.headers();
  await apiFaults(emu, { kind: "big403", size: 64 * 1024 });
  const t0 = Date.now();
  let timer;
  const watchdog = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`fetch() did not settle within ${2 * timeoutMs} ms`)), 2 * timeoutMs)));
  const r = await Promise.race([q.fetch(EVENTS), watchdog]).finally(() => clearTimeout(timer));
  const took = Date.now() - t0;
  assert.equal(r.status, 403);
  assert.equal(r.bodyUsed, false, `fetch() returned after ${took} ms with its body already used`);
  const text = await r.text();
  assert.equal(text.length, 64 * 1024);
  assert.ok(text.startsWith('{"error":"forbidden"'));
  assert.ok(took < timeoutMs, `fetch() took ${took} ms (timeoutMs ${timeoutMs})`);
});

// ---------------------------------------------------------------------------------------------
// 4. A Request that lies about its URL, a Proxy, and URL spellings: refused, nothing sent.

scenario("a lying Request subclass, a Proxy and URL tricks are refused with nothing sent; HTTP:// on the same origin works", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  const good = emu.url + EVENTS;
  const evilOrigin = emu.url.replace("127.0.0.1", "localhost");
  const evil = evilOrigin + EVENTS;
  assert.notEqual(evilOrigin, emu.url);

  // Control: the evil origin is this same emulator, so its api.calls would count a leak.
  await emu.control("reset");
  let reachable = false;
  try {
    const r = await fetch(evil, { signal: AbortSignal.timeout(3000) });
    await r.arrayBuffer();
    reachable = (await emu.stats()).api.calls === 1;
  } catch {
    /* localhost may not resolve to the emulator's 127.0.0.1 here; the origin check is the same */
  }

  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  await q.headers();
  class Lying extends Request {
    get url() {
      return good;
    }
  }
  const lying = () => new Lying(evil);
  const proxy = () =>
    new Proxy(new Request(evil), {
      get(t, k) {
        if (k === "url") return good;
        const v = Reflect.get(t, k);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
  assert.equal(lying().url, good, "the subclass lies");
  assert.equal(proxy().url, good, "the proxy lies");

  const refused = [
    ["fetch(Lying)", () => q.fetch(lying())],
    ["authorizeRequest(Lying)", () => q.authorizeRequest(lying())],
    ["fetch(Proxy)", () => q.fetch(proxy())],
    ["authorizeRequest(Proxy)", () => q.authorizeRequest(proxy())],
    ["fetch(new URL(evil))", () => q.fetch(new URL(evil))],
    ["authorizeRequest(new Request(evil))", () => q.authorizeRequest(new Request(evil))],
    ...["https:evil.example/x", evilOrigin.replace("http:", "") + "/x", evilOrigin + "/x", evilOrigin.replace("http://", "http:") + "/x", evil, "HTTP://LOCALHOST:" + new URL(emu.url).port + EVENTS].flatMap((u) => [
      [`fetch(${JSON.stringify(u)})`, () => q.fetch(u)],
      [`authorizeRequest(${JSON.stringify(u)})`, () => q.authorizeRequest(u)],
    ]),
  ];
  for (const [label, call] of refused) {
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof AuthError, `${label}: ${show(e)}`);
      assert.equal(e.code, "invalid_request", `${label}: ${e.code} ${e.message}`);
      return true;
    }, label);
  }
  const s = await emu.stats();
  assert.equal(s.api.calls, 0, `something was sent (the evil origin ${reachable ? "is" : "may not be"} this emulator)`);

  // The same origin, spelled differently, is the same origin after normalisation.
  const upper = emu.url.replace("http://", "HTTP://") + EVENTS;
  const r = await q.fetch(upper);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).user, CREDS.joe.username);
  const req = await q.authorizeRequest(upper);
  assert.equal(req.url, good);
  assert.match(req.headers.get("authorization"), /^Bearer /);
  assert.equal((await emu.stats()).api.calls, 1);
});

scenario("relayBody (qauth/hono): a wrong auth or response is a typed invalid_request, and the client keeps working", async ({ qauth: { QflowAuth, AuthError }, hono, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu));
  const good = await q.fetch("/checkin/v1/api/events");
  for (const [what, make] of ALL) {
    for (const [label, call] of [
      [`relayBody(${what}, response)`, () => hono.relayBody(make(), new Response("{}"))],
      [`relayBody(auth, ${what})`, () => hono.relayBody(q, make())],
    ]) {
      const e = await call().then(() => null, (x) => x);
      assert.ok(e instanceof AuthError && e.code === "invalid_request" && e.retryable === false && e.hint, `${label}: ${e}`);
    }
  }
  const relayed = await hono.relayBody(q, good);
  assert.equal(relayed.checked, false);
  assert.equal((await new Response(relayed.body).json()).user, CREDS.joe.username);
  assert.match((await q.headers()).Authorization, /^Bearer /);
  q.free();
});

scenario("hostile stores and fake URLs: a store whose promise throws or never settles is store_failed within timeoutMs; a fake URL object is refused", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const throwing = {
    get() {
      const p = Promise.resolve(null);
      Object.defineProperty(p, "constructor", {
        get() {
          throw new Error("constructor getter CANARY-store-x");
        },
      });
      return p;
    },
    async put() {},
  };
  const hanging = { get: () => new Promise(() => {}), put: () => new Promise(() => {}) };
  for (const store of [throwing, hanging]) {
    const q = new QflowAuth(qflowOptions(emu, { store, timeoutMs: 500 }));
    const t0 = Date.now();
    await assert.rejects(q.headers(), (e) => e instanceof AuthError && e.code === "store_failed" && !/CANARY/.test(JSON.stringify(e) + e.message));
    assert.ok(Date.now() - t0 < 500 + 1500, `took ${Date.now() - t0} ms`);
    // The client is not wedged: a second call runs again (and fails the same way), it does not hang.
    await assert.rejects(q.headers(), (e) => e.code === "store_failed");
  }
  const q = new QflowAuth(qflowOptions(emu));
  const fake = Object.create(URL.prototype, { href: { value: 42 } });
  await assert.rejects(q.fetch(fake), (e) => e instanceof AuthError && e.code === "invalid_request");
  await assert.rejects(q.authorizeRequest(fake), (e) => e instanceof AuthError && e.code === "invalid_request");
  assert.equal((await q.fetch(EVENTS)).status, 200);
});

scenario("storeKey is required with a store and no username (each signed-in user needs a key of their own)", ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  const opts = { ...qflowOptions(emu), username: undefined, password: undefined, store: memoryStore() };
  assert.throws(() => new QflowAuth(opts), (e) => e instanceof AuthError && e.code === "invalid_config" && /storeKey/.test(e.message));
  assert.ok(new QflowAuth({ ...opts, storeKey: "session:abc" }));
});

scenario("a flight that never ends (its request cancelled, its I/O gone) is given up: its callers get timeout, the next call starts again", async ({ qauth: { QflowAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QflowAuth(qflowOptions(emu, { timeoutMs: 100 }));
  // A fetch that never settles and ignores its abort signal: what the flight sees in workerd when
  // the request that started it was cancelled (its timers and I/O go with it).
  const realFetch = globalThis.fetch;
  let sent = 0;
  globalThis.fetch = () => {
    sent++;
    return new Promise(() => {});
  };
  let results, waited;
  try {
    const t0 = Date.now();
    results = await Promise.allSettled([q.headers(), q.headers(), q.accessToken()]);
    waited = Date.now() - t0;
  } finally {
    globalThis.fetch = realFetch;
  }
  assert.equal(sent, 1, "one flight for all three callers");
  // The wasm's bound for timeoutMs 100 is 6 × 100 + 1000 ms: not before it, and not forever.
  assert.ok(waited >= 1500 && waited < 30000, `given up after ${waited} ms`);
  for (const r of results) {
    assert.ok(r.status === "rejected" && r.reason instanceof AuthError, `a typed error, got ${r.status} ${r.reason}`);
    assert.equal(r.reason.code, "timeout");
    assert.equal(r.reason.retryable, true);
    assertNoCanary(assert, JSON.stringify(r.reason), "a given-up flight's error");
  }
  const h = await q.headers();
  assert.match(h.Authorization, /^Bearer CANARY-at-/, "the next call starts a new flight and gets a token");
  assert.equal((await emu.stats()).token.total, 1);
  q.free();
});

scenario("onEvent that asks for a token on refresh_token_rotated gets the one just installed (never an error, never the old one)", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const inner = [];
  let q;
  q = new QflowAuth(
    qflowOptions(emu, {
      store: memoryStore(),
      onEvent: (e) => {
        if (e.type === "refresh_token_rotated") inner.push(Promise.all([q.accessToken(), q.headers()]));
      },
    }),
  );
  // The first grant (with a store, its refresh token is saved first), then a refresh after
  // invalidate() (the old token is gone from the cache while it runs).
  const first = await q.accessToken();
  q.invalidate();
  const second = await q.accessToken();
  assert.notEqual(first, second);
  const got = await Promise.all(inner);
  assert.equal(got.length, 2, "one refresh_token_rotated per grant");
  assert.deepEqual(
    got.map(([t, h]) => [t, h.Authorization]),
    [
      [first, `Bearer ${first}`],
      [second, `Bearer ${second}`],
    ],
  );
  assert.equal((await emu.stats()).token.total, 2, "the re-entered calls started no token request");
  q.free();
});

scenario("invalidate() from onEvent while a token is being installed: the next headers() gets a new token, never the dropped one", async ({ qauth: { QflowAuth }, emu, assert }) => {
  await emu.control("reset");
  const store = memoryStore();
  let armed = true;
  const q = new QflowAuth(
    qflowOptions(emu, {
      store,
      onEvent: (e) => {
        // Told once its refresh token is saved, right after the new token is installed.
        if (armed && e.type === "refresh_token_rotated") {
          armed = false;
          q.invalidate();
        }
      },
    }),
  );
  const first = await q.headers(); // the callers of that acquisition still get its token
  const next = await q.headers();
  assert.notEqual(next.Authorization, first.Authorization, "the dropped token is not served from the cache");
  assert.equal((await emu.stats()).token.total, 2);
  q.free();
});
