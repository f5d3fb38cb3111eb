// The TokenBroker Durable Object in real workerd (Miniflare): K separate Worker scripts (separate
// isolates) bound to one broker namespace hosted by another script, against the emulator, whose
// identity server revokes a whole token family when a used refresh token comes back (RFC 9700
// §4.14.2), so a race shows up as it would on a real server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { createServer } from "node:http";
import { once } from "node:events";
import { startEmulator, bundleWorker, workerBindings, authorizationCode, CREDS, ROOT, sleep, assertNoCanary } from "./helpers.mjs";

const K = 4;
let emu, dir, brokerScript, appScript;
/** A server on 127.0.0.1 that records what is sent to it: where a forged lease would send the refresh token. */
let elsewhere;
const received = [];

before(async () => {
  emu = await startEmulator();
  elsewhere = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push(`${req.method} ${req.url} ${body}`);
      res.writeHead(400, { "content-type": "application/json" }).end('{"error":"invalid_client"}');
    });
  });
  elsewhere.listen(0, "127.0.0.1");
  await once(elsewhere, "listening");
  dir = mkdtempSync(join(tmpdir(), "qauth-broker-"));
  brokerScript = await bundleWorker(join(ROOT, "tests/workers/broker.js"), join(dir, "broker"));
  appScript = await bundleWorker(join(ROOT, "tests/workers/broker-app.js"), join(dir, "app"));
});

after(async () => {
  await emu?.stop();
  elsewhere?.close();
  rmSync(dir, { recursive: true, force: true });
});

const rules = [
  { type: "CompiledWasm", include: ["**/*.wasm"] },
  { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
];
const common = { modules: true, modulesRules: rules, compatibilityDate: "2026-04-01", compatibilityFlags: ["nodejs_compat"] };

/** One Miniflare: the broker host + K app Workers. `persist`: a directory for DO storage. */
async function start({ persist } = {}) {
  const dos = { TOKEN_BROKER: "TokenBroker", THROWING: "ThrowingBroker", FAILING_STORAGE: "FailingStorageBroker", SILENT: "SilentBroker", FLAKY: "FlakyBroker" };
  const bindings = { ...workerBindings(emu.url), DOWN_URL: "http://127.0.0.1:9" };
  const mf = new Miniflare({
    cf: false,
    durableObjectsPersist: persist ?? false,
    workers: [
      {
        name: "broker",
        ...common,
        scriptPath: brokerScript,
        modulesRoot: join(dir, "broker"),
        // Another binding with an `idFromName` of its own (every service binding has one, as does
        // ASSETS): it must not count as proof of the object's name.
        serviceBindings: { SOMETHING_ELSE: "app1" },
        durableObjects: Object.fromEntries(Object.entries(dos).map(([k, c]) => [k, { className: c, useSQLite: true }])),
      },
      ...Array.from({ length: K }, (_, i) => ({
        name: `app${i + 1}`,
        ...common,
        scriptPath: appScript,
        modulesRoot: join(dir, "app"),
        bindings,
        kvNamespaces: { TOKENS: "shared-tokens" },
        durableObjects: Object.fromEntries(Object.entries(dos).map(([k, c]) => [k, { className: c, scriptName: "broker", useSQLite: true }])),
      })),
    ],
  });
  await mf.ready;
  const apps = await Promise.all(Array.from({ length: K }, (_, i) => mf.getWorker(`app${i + 1}`)));
  const call = async (i, path) => {
    const r = await apps[i].fetch("http://app.test" + path);
    const text = await r.text();
    assert.equal(r.status, 200, text);
    return JSON.parse(text);
  };
  return { mf, call };
}

/** K isolates coming up one after another under load, for about `seconds`. */
async function staggeredLoad(w, mode, seconds) {
  const stagger = 1000;
  const results = await Promise.all(
    Array.from({ length: K }, async (_, i) => {
      await sleep(i * stagger);
      return w.call(i, `/load?mode=${mode}&ms=${seconds * 1000 - i * stagger}&concurrency=4`);
    }),
  );
  const sum = (f) => results.reduce((n, r) => n + f(r), 0);
  return {
    calls: sum((r) => r.calls),
    ok: sum((r) => r.statuses[200] ?? 0),
    refused: sum((r) => r.statuses[401] ?? 0),
    errors: results.reduce((all, r) => {
      for (const [k, v] of Object.entries(r.errors)) all[k] = (all[k] ?? 0) + v;
      return all;
    }, {}),
  };
}

test(`${K} isolates on one broker, token TTL 2 s, 10 s of load: one chain, 1 password grant, 0 invalid_grant, 0 expired`, async () => {
  await emu.control("reset");
  await emu.control("ttl", { token: 2 });
  const w = await start();
  try {
    const t0 = Date.now();
    const load = await staggeredLoad(w, "broker", 10);
    const elapsed = (Date.now() - t0) / 1000;
    const s = await emu.stats();
    console.log(`with broker: ${JSON.stringify({ ...load, elapsedS: elapsed, token: s.token, api: { calls: s.api.calls, rejects: s.api.rejects, rejectsExpired: s.api.rejectsExpired } })}`);
    assert.equal(s.token.password, 1, "one password grant for the whole chain");
    assert.equal(s.token.invalidGrant, 0);
    assert.equal(s.token.reuseDetected, 0);
    assert.equal(s.api.rejectsExpired, 0, "no call with an expired token");
    assert.equal(s.api.rejects, 0);
    assert.equal(load.ok, load.calls, JSON.stringify(load));
    // Skew is capped at half the 2 s lifetime: one refresh about every second, for all isolates.
    assert.ok(s.token.refresh_token >= 3 && s.token.refresh_token <= Math.ceil(elapsed) + 2, `refreshes ${s.token.refresh_token} in ${elapsed} s`);
  } finally {
    await w.mf.dispose();
    await emu.control("reset");
  }
});

test(`the same load with a shared KV store and no broker (a figure, not an assertion)`, async () => {
  await emu.control("reset");
  await emu.control("ttl", { token: 2 });
  const w = await start();
  try {
    const load = await staggeredLoad(w, "kv", 10);
    const s = await emu.stats();
    console.log(
      `KV only, no broker: ${JSON.stringify({ ...load, token: s.token, api: { calls: s.api.calls, rejects: s.api.rejects, rejectsExpired: s.api.rejectsExpired, rejectsRevoked: s.api.rejectsRevoked } })}`,
    );
  } finally {
    await w.mf.dispose();
    await emu.control("reset");
  }
});

test(`Qpien: ${K} isolates x 50 concurrent graphql() through the broker -> 1 mint`, async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const r = await Promise.all(Array.from({ length: K }, (_, i) => w.call(i, "/qpien?n=50")));
    assert.ok(r.every((x) => x.ok));
    assert.equal((await emu.stats()).qpien.mints, 1);
  } finally {
    await w.mf.dispose();
  }
});

test("invalidate() reaches the broker: a stale token is dropped once for everyone", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    for (let i = 0; i < K; i++) assert.deepEqual(await w.call(i, "/headers"), { bearer: true, key: true });
    assert.equal((await emu.stats()).token.total, 1);
    // Every isolate reports the same token stale: one refresh, not K.
    for (let i = 0; i < K; i++) await w.call(i, "/invalidate");
    await Promise.all(Array.from({ length: K }, (_, i) => w.call(i, "/headers")));
    const s = await emu.stats();
    assert.equal(s.token.password, 1);
    assert.equal(s.token.refresh_token, 1);
  } finally {
    await w.mf.dispose();
  }
});

test("restart: the broker's storage survives; one refresh from the stored token, 0 password grants", async () => {
  const persist = mkdtempSync(join(tmpdir(), "qauth-do-"));
  try {
    await emu.control("reset");
    await emu.control("ttl", { token: 2 });
    let w = await start({ persist });
    await w.call(0, "/headers");
    assert.equal((await emu.stats()).token.password, 1);
    await w.mf.dispose();
    await sleep(2500); // past the access token's lifetime
    await emu.control("reset");
    w = await start({ persist });
    try {
      assert.deepEqual(await w.call(1, "/headers"), { bearer: true, key: true });
      const s = await emu.stats();
      assert.equal(s.token.password, 0, "no password grant while the stored refresh token is alive");
      assert.equal(s.token.refresh_token, 1);
      assert.equal(s.token.invalidGrant, 0);
    } finally {
      await w.mf.dispose();
    }
  } finally {
    rmSync(persist, { recursive: true, force: true });
  }
});

test("restart within the access token's lifetime: the stored access token, no grant at all", async () => {
  const persist = mkdtempSync(join(tmpdir(), "qauth-do-"));
  try {
    await emu.control("reset");
    let w = await start({ persist });
    await w.call(0, "/headers");
    await w.mf.dispose();
    await emu.control("reset");
    w = await start({ persist });
    try {
      await w.call(2, "/headers");
      assert.equal((await emu.stats()).token.total, 0);
    } finally {
      await w.mf.dispose();
    }
  } finally {
    rmSync(persist, { recursive: true, force: true });
  }
});

/** The other server, as a lease's identityUrl (URL-encoded for a query). */
const evil = () => encodeURIComponent(`http://127.0.0.1:${elsewhere.address().port}`);

/** A user's sign-in at the emulator: the `/exchange` route's query (code, verifier, redirect). */
async function signIn() {
  const { beginAuthorization } = await import("qauth");
  const { code, codeVerifier, redirectUri } = await authorizationCode(emu, beginAuthorization);
  return new URLSearchParams({ code, verifier: codeVerifier, redirect: redirectUri });
}

/** `first` on a broker whose storage is kept on disk, then `then` on a new one over it (a restart). */
async function acrossRestart(first, then) {
  const persist = mkdtempSync(join(tmpdir(), "qauth-do-"));
  let carried; // what `first` returns, for `then`
  try {
    for (const step of [first, then]) {
      const w = await start({ persist });
      try {
        carried = await step(w, carried);
      } finally {
        await w.mf.dispose();
      }
    }
  } finally {
    rmSync(persist, { recursive: true, force: true });
  }
}

test("exchangeCode through the broker seeds a refresh-only chain every isolate then uses", async () => {
  await emu.control("reset");
  const params = await signIn();
  const code = params.get("code");
  const w = await start();
  try {
    assert.deepEqual(await w.call(0, `/exchange?${params}`), { ok: true });
    // The same code again, from another isolate (a double submit): the broker refuses it unsent
    // (a server that sees a code twice may revoke what it issued for it).
    const again = await w.call(1, `/exchange?${params}`);
    assert.deepEqual([again.ok, again.code, again.retryable], [false, "invalid_request", false], JSON.stringify(again));
    assert.ok(!again.message.includes(code), "the code is not in the message");
    // Another isolate, no password: the broker refreshes from the chain the code started.
    assert.deepEqual(await w.call(3, "/signed-in"), { status: 200, user: CREDS.joe.username });
    const s = await emu.stats();
    assert.equal(s.token.authorization_code, 1);
    assert.equal(s.token.password, 0);
    assert.equal(s.token.refresh_token, 1);
    // Code holding the binding, leasing that object directly: with its own credential's options
    // it is served (so the name below is the object's) ...
    assert.deepEqual(await w.call(2, `/lease-directly?identity=${encodeURIComponent(emu.url)}&stale=-1`), { token: true });
    // ... with another identity server, refused before anything is read or sent: the object's
    // refresh token never goes there.
    const forged = await w.call(2, `/lease-directly?identity=${evil()}&stale=-1`);
    assert.equal(forged.error?.code, "invalid_config", JSON.stringify(forged));
    assert.deepEqual(received, [], "nothing went to the other server");
    // ... with another client secret: not handed the stored access token (it belongs to the
    // secret that obtained it); it has to ask the identity server, which refuses that secret.
    const wrong = await w.call(2, `/lease-directly?identity=${encodeURIComponent(emu.url)}&secret=CANARY-not-the-secret&stale=-1`);
    assert.equal(wrong.token, undefined, JSON.stringify(wrong));
    assert.equal(wrong.error?.code, "invalid_client", JSON.stringify(wrong));
    // The chain is intact: the refused attempt did not spend the refresh token.
    assert.deepEqual(await w.call(3, "/signed-in"), { status: 200, user: CREDS.joe.username });
  } finally {
    await w.mf.dispose();
  }
});

test("after a restart, a lease reaching the object by ID string (not told its name) is still checked against the name it kept", async () => {
  await emu.control("reset");
  await acrossRestart(
    async (w) => assert.deepEqual(await w.call(0, `/exchange?${await signIn()}`), { ok: true }),
    async (w) => {
      const forged = await w.call(1, `/lease-directly?identity=${evil()}&byId=1&stale=-1`);
      assert.equal(forged.error?.code, "invalid_config", JSON.stringify(forged));
      assert.deepEqual(received, [], "the refresh token went nowhere");
      // The same route with the object's own credential is served: it reached that object. The
      // name it claims does not matter once the object knows its own (kept in storage; nothing
      // else could prove the claim here).
      assert.deepEqual(await w.call(1, `/lease-directly?identity=${encodeURIComponent(emu.url)}&byId=1&stale=-1&claim=qflow%7Cx%7Cy%7Cz%7C`), { token: true });
    },
  );
});

test("an object first woken by ID string (not told its name) proves the name a lease claims, or serves nothing", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    // The very first contact, by ID, claiming a name that is not the object's: nothing proves
    // what the object is, so it serves nothing.
    const wrong = await w.call(1, `/lease-directly?identity=${encodeURIComponent(emu.url)}&byId=1&claim=qflow%7Cx%7Cy%7Cz%7C&stale=-1`);
    assert.equal(wrong.error?.code, "invalid_config", JSON.stringify(wrong));
    assert.match(wrong.error.message, /cannot prove its name/);
    // By ID, forged: the claimed name is the object's (its namespace says so, and it is kept),
    // the options name another identity server.
    const forged = await w.call(1, `/lease-directly?identity=${evil()}&byId=1&stale=-1`);
    assert.equal(forged.error?.code, "invalid_config", JSON.stringify(forged));
    assert.match(forged.error.message, /name another credential/);
    assert.deepEqual(received, [], "nothing went to the other server");
    // Its own credential, by ID as well: served (a password grant: nothing was stored yet).
    assert.deepEqual(await w.call(1, `/lease-directly?identity=${encodeURIComponent(emu.url)}&byId=1&stale=-1&password=1`), { token: true });
    // A store key that is one of the object's own storage keys: refused, the key untouched.
    for (const key of ["qauth:#name", "qauth:ended"]) {
      const own = await w.call(2, `/lease-directly?identity=${encodeURIComponent(emu.url)}&key=${encodeURIComponent(key)}&stale=-1&password=1`);
      assert.equal(own.error?.code, "store_failed", JSON.stringify(own));
    }
  } finally {
    await w.mf.dispose();
  }
});

/** A lease on the object for `key` (see broker-app.js `/lease-directly`): `extra` is its query. */
const leaseOn = (w, i, key, extra = "") => w.call(i, `/lease-directly?identity=${encodeURIComponent(emu.url)}&key=${key}&fp=1${extra}`);

test("end() while a lease waits for another client to drain: the waiting lease starts no grant (no password sent after sign-out)", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const seed = await leaseOn(w, 0, "end-wait", "&password=1&stale=-1");
    assert.equal(seed.token, true, JSON.stringify(seed));
    await emu.faults({ kind: "delay_refresh", ms: 1500 });
    // A: other options (no password), reports the seed token stale: a refresh that takes 1.5 s.
    const a = leaseOn(w, 1, "end-wait", `&stale=${seed.g}`);
    await sleep(200);
    // B: the password again: another client, so it waits for A's to drain.
    const b = leaseOn(w, 2, "end-wait", "&password=1&stale=-1");
    await sleep(200);
    assert.deepEqual(await leaseOn(w, 3, "end-wait", "&end=1"), { ended: true });
    for (const r of await Promise.all([a, b])) assert.equal(r.error?.message, "the session was ended", JSON.stringify(r));
    await sleep(200);
    assert.equal((await emu.stats()).token.password, 1, "no password grant after end()");
  } finally {
    await w.mf.dispose();
  }
});

test("a client replaced while it holds a rotated refresh token it could not save saves it first: no reuse, the chain goes on", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const flaky = (extra) => leaseOn(w, 0, "flaky-1", `&ns=flaky${extra}`);
    const seed = await flaky("&password=1&stale=-1");
    assert.equal(seed.token, true, JSON.stringify(seed));
    await flaky("&arm=1");
    // The refresh succeeds, its rotated token cannot be saved: held by this client, in memory.
    const held = await flaky(`&password=1&stale=${seed.g}`);
    assert.equal(held.error?.code, "store_failed", JSON.stringify(held));
    // A lease with other options (and the same stale report) replaces the client: the write
    // that failed is made first, so the new client refreshes from the held token, never from
    // the spent one in storage.
    const next = await flaky(`&stale=${seed.g}`);
    assert.equal(next.token, true, JSON.stringify(next));
    const s = await emu.stats();
    assert.deepEqual([s.token.refresh_token, s.token.reuseDetected, s.token.invalidGrant], [2, 0, 0], JSON.stringify(s.token));
  } finally {
    await w.mf.dispose();
  }
});

test("a client whose rotated token's write never ends is not replaced: the next lease with other options is store_failed within that client's timeoutMs, not its own", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const flaky = (extra) => leaseOn(w, 0, "flaky-hang", `&ns=flaky${extra}`);
    const seed = await flaky("&password=1&stale=-1&timeout=300");
    assert.equal(seed.token, true, JSON.stringify(seed));
    await flaky("&arm=hang");
    // The refresh succeeds; its rotated token's write never ends (the client gives up on it after 300 ms).
    const held = await flaky(`&password=1&stale=${seed.g}&timeout=300`);
    assert.equal(held.error?.code, "store_failed", JSON.stringify(held));
    // Other options, and a timeoutMs of a minute: the object waits for the pending write as
    // long as the client that made it would (300 ms), then refuses rather than replacing it.
    const t0 = Date.now();
    const next = await flaky(`&stale=${seed.g}&timeout=60000`);
    const ms = Date.now() - t0;
    assert.equal(next.error?.code, "store_failed", JSON.stringify(next));
    assert.ok(ms < 20000, `answered after ${ms} ms`);
    const s = await emu.stats();
    assert.deepEqual([s.token.refresh_token, s.token.reuseDetected], [1, 0], "no grant from the replaced client: " + JSON.stringify(s.token));
  } finally {
    await w.mf.dispose();
  }
});

test("an exchange whose rotated token cannot be saved: the old chain's token is never handed out again, the new one is saved and used", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const flaky = (extra) => leaseOn(w, 0, "flaky-2", `&ns=flaky&password=1${extra}`);
    const old = await flaky("&stale=-1");
    assert.equal(old.token, true, JSON.stringify(old));
    await flaky("&arm=1");
    // Another sign-in on this object: the code is exchanged, its refresh token's save fails.
    const signedIn = await signIn();
    const ex = await flaky(`&stale=-1&${signedIn}`);
    assert.equal(ex.error?.code, "store_failed", JSON.stringify(ex));
    const next = await flaky("&stale=-1");
    assert.equal(next.token, true, JSON.stringify(next));
    assert.notEqual(next.fp, old.fp, "the chain before the exchange is not served");
    const s = await emu.stats();
    assert.deepEqual([s.token.authorization_code, s.token.reuseDetected], [1, 0]);
  } finally {
    await w.mf.dispose();
  }
});

test("an isolate whose exchange's new token the object could not save stops handing out its own cached token of the chain before", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const r = await w.call(0, `/flaky-exchange?${await signIn()}`);
    assert.equal(r.exchange, "store_failed", JSON.stringify(r));
    assert.notEqual(r.after, r.before, "the old chain's token is still handed out");
    assert.match(r.after, /^[0-9a-f]{8}$/, "the next call gets the exchange's token (saved by then)");
  } finally {
    await w.mf.dispose();
  }
});

test("after an exchange on an object, a restart does not bring back the token of the chain before it", async () => {
  await acrossRestart(
    async (w) => {
      await emu.control("reset");
      const old = await leaseOn(w, 0, "exchanged", "&password=1&stale=-1");
      assert.equal(old.token, true, JSON.stringify(old));
      const signedIn = await signIn();
      const ex = await leaseOn(w, 1, "exchanged", `&password=1&stale=-1&${signedIn}`);
      assert.equal(ex.token, true, JSON.stringify(ex));
      assert.notEqual(ex.fp, old.fp);
      return { old: old.fp, exchanged: ex.fp };
    },
    async (w, fps) => {
      const after = await leaseOn(w, 2, "exchanged", "&password=1&stale=-1");
      assert.equal(after.token, true, JSON.stringify(after));
      assert.notEqual(after.fp, fps.old, "the chain before the exchange came back after the restart");
      assert.equal(after.fp, fps.exchanged, "the exchanged token, kept for the restart");
    },
  );
});

test("a restarted object whose exchange's new token could not be saved saves it later over the chain before, never refreshing that chain", async () => {
  await acrossRestart(
    async (w) => {
      await emu.control("reset");
      const before = await leaseOn(w, 0, "resigned", "&ns=flaky&password=1&stale=-1");
      assert.equal(before.token, true, JSON.stringify(before));
    },
    async (w) => {
      // Restarted: the object's new client never read its storage. Another sign-in on the key,
      // whose new refresh token's save fails: held back.
      const signedIn = await signIn();
      await leaseOn(w, 0, "resigned", "&ns=flaky&arm=1");
      const ex = await leaseOn(w, 1, "resigned", `&ns=flaky&password=1&stale=-1&${signedIn}`);
      assert.equal(ex.error?.code, "store_failed", JSON.stringify(ex));
      await emu.control("reset");
      // The next lease saves the held token over the chain before (which the exchange read and
      // counted superseded) and hands it out: no refresh of the chain before.
      const after = await leaseOn(w, 2, "resigned", "&ns=flaky&password=1");
      assert.equal(after.token, true, JSON.stringify(after));
      const t = (await emu.stats()).token;
      assert.deepEqual([t.refresh_token, t.password, t.total], [0, 0, 0], "the exchanged chain's token, not a grant: " + JSON.stringify(t));
    },
  );
});

test("after an exchange whose kept access token could not be written, a restarted object does not bring back the chain before it", async () => {
  await acrossRestart(
    async (w) => {
      await emu.control("reset");
      const before = await leaseOn(w, 0, "kept", "&ns=flaky&password=1&stale=-1");
      assert.equal(before.token, true, JSON.stringify(before));
      const signedIn = await signIn();
      // The exchange works, its refresh token is saved; the write of its kept access token fails.
      await leaseOn(w, 0, "kept", "&ns=flaky&arm=access");
      const ex = await leaseOn(w, 1, "kept", `&ns=flaky&password=1&stale=-1&${signedIn}`);
      assert.equal(ex.token, true, JSON.stringify(ex));
      assert.notEqual(ex.fp, before.fp);
      return { before: before.fp, exchanged: ex.fp };
    },
    async (w, fps) => {
      const after = await leaseOn(w, 2, "kept", "&ns=flaky&password=1");
      assert.equal(after.token, true, JSON.stringify(after));
      assert.notEqual(after.fp, fps.before, "the kept token of the chain before the exchange came back after the restart");
    },
  );
});

test("a token reported stale is not kept in storage: after a restart the object does not hand it out again", async () => {
  await acrossRestart(
    async (w) => {
      await emu.control("reset");
      const seed = await leaseOn(w, 0, "stale-kept", "&password=1&stale=-1");
      assert.equal(seed.token, true, JSON.stringify(seed));
      // Reported stale; its refresh fails (the server errors), so nothing replaces it.
      await emu.faults({ kind: "status", status: 500, count: 40 });
      const r = await leaseOn(w, 1, "stale-kept", `&password=1&stale=${seed.g}`);
      assert.equal(r.error?.code, "server_error", JSON.stringify(r));
      await emu.control("reset");
      return seed.fp;
    },
    async (w, stale) => {
      const after = await leaseOn(w, 2, "stale-kept", "&password=1&stale=-1");
      assert.equal(after.token, true, JSON.stringify(after));
      assert.notEqual(after.fp, stale, "the refused token came back after the restart");
    },
  );
});

test("endAt(): the object ends itself at the time it was given (an alarm), with no one asking; a bad time is refused", async () => {
  await emu.control("reset");
  const w = await start();
  try {
    const lease = (key) => w.call(1, `/lease-directly?identity=${encodeURIComponent(emu.url)}&key=${key}&stale=-1&password=1`);
    assert.deepEqual(await lease("alarm-1"), { token: true });
    assert.deepEqual(await lease("alarm-2"), { token: true });
    // A wrong argument is refused with its reason (an AuthError's fields do not cross RPC, its
    // message does), and the object keeps working.
    for (const bad of ["string", "undefined", "null", "object", "nan"]) {
      assert.match((await w.call(0, `/end-at?key=alarm-1&in=${bad}`)).threw ?? "", /endAt\(when\) takes a time/, bad);
    }
    const set = await w.call(0, "/end-at?key=alarm-1&in=300");
    assert.equal(typeof set.endsAt, "number", JSON.stringify(set));
    await sleep(1500);
    const ended = await lease("alarm-1");
    assert.deepEqual([ended.error?.code, ended.error?.message], ["invalid_grant", "the session was ended"], JSON.stringify(ended));
    assert.deepEqual(await w.call(0, "/end-at?key=alarm-1&in=300"), { ended: true }, "an ended object stays ended");
    assert.deepEqual(await lease("alarm-2"), { token: true }, "another object is untouched");
  } finally {
    await w.mf.dispose();
  }
});

for (const [kind, code] of [
  ["down", "network"],
  ["throwing", "server_error"],
  ["storage", "store_failed"],
  ["silent", "timeout"],
]) {
  test(`broker failure (${kind}): a typed ${code} within timeoutMs, no secret in it`, async () => {
    await emu.control("reset");
    const w = await start();
    try {
      const r = await w.call(0, `/failure?kind=${kind}`);
      assert.equal(r.isAuthError, true, JSON.stringify(r));
      assert.equal(r.code, code, JSON.stringify(r));
      assert.ok(r.ms < 1000 + 1500, `took ${r.ms} ms`);
      assertNoCanary(assert, JSON.stringify(r), `${kind} error`);
    } finally {
      await w.mf.dispose();
    }
  });
}
