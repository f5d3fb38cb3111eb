// QpienAuth scenarios: run in Node (tests/js/qpien.test.mjs) and in workerd (tests/js/workerd.test.mjs).
import { suite, assertNoCanary, CREDS } from "./common.mjs";

const { list, scenario } = suite();
export default list;
const opts = (emu, extra = {}) => ({ ...CREDS.qpien, endpoint: emu.url + "/graphql", ...extra });
const VIEWER = "query Viewer { viewer { id scopes } }";

scenario("500 concurrent headers() cold -> exactly 1 generateOAuthToken", async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QpienAuth(opts(emu));
  const all = await Promise.all(Array.from({ length: 500 }, () => q.headers()));
  assert.equal(new Set(all.map((h) => h.Authorization)).size, 1);
  assert.match(all[0].Authorization, /^Bearer CANARY-qt-/);
  assert.equal("Bearer " + (await q.accessToken()), all[0].Authorization);
  assert.equal((await emu.stats()).qpien.mints, 1);
});

scenario("graphql() returns data", async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QpienAuth(opts(emu));
  const data = await q.graphql(VIEWER);
  assert.deepEqual(data, { viewer: { id: "viewer-1", scopes: ["read"] } });
});

for (const http of [false, true]) {
  const style = http ? "errors with HTTP 4xx" : "errors with HTTP 200";
  scenario(`${style}: expired token -> exactly one re-mint, call succeeds`, async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
    await emu.control("reset");
    await emu.control("graphql-error-status", { http });
    const q = new QpienAuth(opts(emu));
    await q.graphql(VIEWER);
    const before = await q.headers();
    await emu.control("expire");
    const data = await q.graphql(VIEWER);
    assert.equal(data.viewer.id, "viewer-1");
    // The re-mint also replaced what headers() hands out (its cache-hit path), with no third mint.
    assert.notEqual((await q.headers()).Authorization, before.Authorization);
    const s = await emu.stats();
    assert.equal(s.qpien.mints, 2);
    assert.equal(s.qpien.rejects, 1);
  });

  scenario(`${style}: INSUFFICIENT_SCOPES mints once more, then insufficient_scopes naming the operation`, async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
    await emu.control("reset");
    await emu.control("graphql-error-status", { http });
    const q = new QpienAuth(opts(emu));
    await assert.rejects(q.graphql("mutation CreateEvent($name: String!) { createEvent(name: $name) { id } }", { name: "x" }), (e) => {
      assert.ok(e instanceof AuthError);
      assert.equal(e.code, "insufficient_scopes");
      assert.match(e.message, /CreateEvent/);
      assert.equal(e.retryable, false);
      return true;
    });
    assert.equal((await emu.stats()).qpien.mints, 2);
  });

  scenario(`${style}: wrong secret -> invalid_client after exactly 1 call`, async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
    await emu.control("reset");
    await emu.control("graphql-error-status", { http });
    const q = new QpienAuth(opts(emu, { clientSecret: "CANARY-wrong-qpien-secret" }));
    await assert.rejects(q.graphql(VIEWER), (e) => {
      assert.equal(e.code, "invalid_client");
      assert.equal(e.retryable, false);
      assert.match(e.hint, /dashboard/);
      assertNoCanary(assert, JSON.stringify(e) + e.message + e.stack, "invalid_client");
      return true;
    });
    assert.equal((await emu.stats()).qpien.mints, 1);
  });
}

scenario("scopes changed in the dashboard: re-mint picks them up", async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QpienAuth(opts(emu));
  await q.graphql(VIEWER);
  await emu.control("qpien-scopes", { scopes: ["read", "write"] });
  const data = await q.graphql("mutation CreateEvent($name: String!) { createEvent(name: $name) { id name } }", { name: "Gala" });
  assert.equal(data.createEvent.name, "Gala");
  assert.equal((await emu.stats()).qpien.mints, 2);
});

scenario("other GraphQL errors -> graphql_error with messages and partial data", async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QpienAuth(opts(emu));
  await assert.rejects(q.graphql("query Broken { viewer { id } brokenField }"), (e) => {
    assert.equal(e.code, "graphql_error");
    assert.deepEqual(e.messages, ["brokenField failed"]);
    assert.deepEqual(e.data.viewer, { id: "viewer-1" });
    return true;
  });
});

scenario("a token without an expiry assumes the documented hour and says so", async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  await emu.faults({ kind: "no_expiry" });
  const events = [];
  const q = new QpienAuth(opts(emu, { onEvent: (e) => events.push(e) }));
  await q.headers();
  const e = events.find((e) => e.type === "expiry_assumed");
  assert.equal(e.expiresIn, 3600);
  assertNoCanary(assert, JSON.stringify(events), "events");
});

for (const [fault, code] of [
  [{ kind: "status", status: 503, count: 10 }, "server_error"],
  [{ kind: "status", status: 429, retryAfter: 30, count: 10 }, "rate_limited"],
  [{ kind: "html", count: 10 }, "bad_response"],
  [{ kind: "malformed", count: 10 }, "bad_response"],
  [{ kind: "truncated", count: 10 }, "network"],
  [{ kind: "delay", ms: 3000, count: 10 }, "timeout"],
]) {
  scenario(`mint fault ${fault.kind} -> ${code}`, async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
    await emu.control("reset");
    await emu.faults(fault);
    const q = new QpienAuth(opts(emu, { timeoutMs: 1000 }));
    const t0 = Date.now();
    await assert.rejects(q.headers(), (e) => e.code === code && !/CANARY/.test(JSON.stringify(e) + e.message));
    assert.ok(Date.now() - t0 < 2500);
  });
}

scenario("config errors", ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  assert.throws(() => new QpienAuth({ clientId: "x", clientSecret: "CANARY-s" }), (e) => e.code === "invalid_config" && /endpoint/.test(e.message));
  assert.throws(() => new QpienAuth({ ...opts(emu), endpoint: "graphql" }), (e) => e.code === "invalid_config" && /endpoint/.test(e.message));
});

scenario("data beside a field's UNAUTHORIZED error: the operation ran, so it is not sent again; its data goes on the error only when it holds no credential", async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  const MUTATION = "mutation CreateEvent { createEvent { id audit } }";
  for (const echo of [false, true]) {
    await emu.control("reset");
    const q = new QpienAuth(opts(emu));
    await q.headers();
    await emu.control("graphql-faults", { faults: [{ kind: echo ? "partial_unauthorized_echo" : "partial_unauthorized" }] });
    const e = await q.graphql(MUTATION).then(() => null, (x) => x);
    assert.ok(e instanceof AuthError, String(e));
    assert.equal(e.code, "unauthorized");
    assert.deepEqual(e.messages, ["not allowed to read audit"]);
    const s = await emu.stats();
    assert.deepEqual([s.qpien.calls, s.qpien.mints], [1, 1], `echo ${echo}: sent once, no re-mint`);
    if (echo) assert.equal(e.data, undefined, "data echoing the token stays off the error");
    else assert.deepEqual(e.data, { createEvent: { id: "event-1", audit: null } });
    assertNoCanary(assert, JSON.stringify(e) + e.message + String(e.stack), "the error");
    // The refused token is not kept: the next call mints (a long job gets past TOKEN_EXPIRED).
    assert.equal((await q.graphql(VIEWER)).viewer.id, "viewer-1");
    assert.equal((await emu.stats()).qpien.mints, 2);
    q.free();
  }
});

scenario("an overloaded GraphQL endpoint (503, 429 with Retry-After) answering with an errors body is server_error / rate_limited, retryable, with its retryAfter", async ({ qauth: { QpienAuth, AuthError }, emu, assert }) => {
  await emu.control("reset");
  const q = new QpienAuth(opts(emu));
  await q.headers();
  for (const [status, retryAfter, code] of [
    [503, undefined, "server_error"],
    [429, 5, "rate_limited"],
  ]) {
    await emu.control("graphql-faults", { faults: [{ kind: "status", status, ...(retryAfter ? { retryAfter } : {}) }] });
    const e = await q.graphql(VIEWER).then(() => null, (x) => x);
    assert.ok(e instanceof AuthError, String(e));
    assert.deepEqual([e.code, e.retryable, e.status, e.retryAfter, e.messages], [code, true, status, retryAfter, ["Service unavailable"]]);
  }
  assert.equal((await emu.stats()).qpien.mints, 1, "an overload is not a reason to mint");
  q.free();
});
