// The server build's clients: the driver between the wasm's ops (src/js/server.rs) and the host.
// The wasm decides everything (which request, which grant, retries, what to save before a token
// is used, what an answer means, every error); this file performs what it answers (fetch with a
// timeout, the caller's store and broker, timers, onEvent) and keeps the Promises: one in-flight
// acquisition per client, shared by every caller that arrives while it runs.
import { AuthError } from "./error.js";
import { Items, Wasm, toError, kind, probes, urlInput } from "./wire.js";

/** The server build's wasm (the entry instantiates it and calls `wasm.connect`). */
export const wasm = new Wasm();
const call = (op, handle, items) => wasm.call(op, handle, items);
const one = (op, handle, items) => wasm.one(op, handle, items);

export const beginAuthorization = (options) => wasm.beginAuthorization(options);
export const completeAuthorization = (callbackUrl, options) => wasm.completeAuthorization(callbackUrl, options);
export { AuthError };

// Op numbers (src/js/server.rs).
const [NEW_QFLOW, NEW_QPIEN, FREE, STEP, FINISH, INVALIDATE, INVALIDATE_IF, OBTAIN, INPUT, EXCHANGE, RESTORE_KEY, RESTORED, SAVE_ACCESS] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
const [TARGET, CHECK_SENT, API_NEXT, API_GATE, COMMS_URL, COMMS_STATUS, GRAPHQL_ARGS, GRAPHQL_VERDICT, FAIL, PROBES, RELAY, FLUSH] = [23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34];
// FAIL reasons (the wasm owns their text).
const [API_TRANSPORT, QPIEN_TRANSPORT, QPIEN_TOO_BIG, NOT_AN_INPUT, NOT_AN_INIT, NOT_A_REQUEST, BODY_USED, NOT_COPIED, BAD_HEADER, FREED, NOT_JSON, BAD_EVENT_ID, NO_TOKEN, NO_END, BAD_ENDPOINT, STALLED, NOT_A_RESPONSE, PUT_FAILED] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
];

/** The AuthError for a FAIL reason. */
function fail(reason, detail) {
  const items = new Items().num(reason);
  items.value(detail);
  return toError(call(FAIL, 0, items)[0]);
}

// The methods the two classes share but users do not see.
const [ENSURE, ONE, RECORDS, INVALIDATE_TOKEN, EXCHANGE_CODE, WORK] = ["ensure", "one", "records", "invalidateIf", "exchange", "work"].map((n) => Symbol(n));
/** A client's `timeoutMs` as the wasm validated it (the broker bounds its waits for a client by it). */
export const TIMEOUT = Symbol("timeout");

/** qauth/hono's `relayBody` asks a QflowAuth through this (not a public method). */
const RELAY_BODY = Symbol.for("qauth.relay");
const IS_QFLOW = Symbol.for("qauth.isQflow");

/** Marks the client inside TokenBroker (read by the wasm from an own property; not a user option). */
const BROKER_SIDE = Symbol.for("qauth.brokerSide");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A timeout in whole milliseconds, at least 1. */
const delay = (ms) => Math.max(1, Math.ceil(ms));

/**
 * Runs `fn(signal)` (a request whose body this file reads: a token request, a GraphQL operation)
 * within `ms`: past it the signal aborts and the failure is a `TimeoutError`. A timer cleared at
 * the end rather than `AbortSignal.timeout`, which costs Node ~9 µs and a weak reference per signal.
 */
async function within(ms, fn) {
  const c = new AbortController();
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    c.abort();
  }, delay(ms));
  try {
    return await fn(c.signal);
  } catch (e) {
    throw late ? new DOMException("timed out", "TimeoutError") : e;
  } finally {
    clearTimeout(timer);
  }
}

/** A signal that aborts after `ms`, or when `other` (a caller's signal) aborts (the API calls, whose body the caller reads). */
function timeoutSignal(ms, other) {
  const t = AbortSignal.timeout(delay(ms));
  return other && typeof AbortSignal.any === "function" ? AbortSignal.any([other, t]) : t;
}

/**
 * A plain object (of any realm): what `JSON.stringify` sends as written. A Map would go as `{}`,
 * a Date as a string, a class instance without its methods, an object with `toJSON` as whatever
 * that returns.
 */
function plain(v) {
  try {
    if (v === null || typeof v !== "object" || Object.prototype.toString.call(v) !== "[object Object]") return false;
    const proto = Object.getPrototypeOf(v);
    return (proto === null || Object.getPrototypeOf(proto) === null) && typeof v.toJSON !== "function";
  } catch {
    return false;
  }
}

/**
 * "timeout" | "abort" | "refused" | "unresolved" | "network": what a rejected fetch or body read
 * means. "refused" and "unresolved" only where the runtime proves nothing was sent (Node's
 * ECONNREFUSED; ENOTFOUND and EAI_AGAIN, a host name that did not resolve).
 */
function failureKind(e) {
  try {
    const name = e && e.name;
    if (name === "TimeoutError") return "timeout";
    if (name === "AbortError") return "abort";
    const code = e && e.cause && e.cause.code;
    if (code === "ECONNREFUSED") return "refused";
    return code === "ENOTFOUND" || code === "EAI_AGAIN" ? "unresolved" : "network";
  } catch {
    return "network";
  }
}

/**
 * The body as text, read chunk by chunk and abandoned past `cap` bytes (resolves `null`), so an
 * oversized answer is never held whole.
 */
async function readCapped(response, cap, trustLength = true) {
  // Cancels are not awaited: on a clone (the 403 probe), cancelling one branch of a tee settles
  // only when the other branch is read, which is the caller's business.
  const length = response.headers.get("content-length");
  const declared = Number(length);
  // A declared length within the cap, not compressed (a compressed body's length says nothing
  // of what it inflates to), on an answer from the network (the platform reads no more than
  // declared): read it whole.
  if (trustLength && length !== null && declared <= cap && !response.headers.get("content-encoding")) return response.text();
  if (declared > cap || !response.body) {
    if (response.body) response.body.cancel().catch(() => {});
    return declared > cap ? null : "";
  }
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * Calls a store method (`get`/`put` of a KV namespace, DO storage, or the caller's object) and
 * awaits it within `ms`. A throw, a rejection or a hang all come back as a rejection.
 */
async function callStore(store, method, args, ms) {
  let timer;
  try {
    const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("store timeout")), ms)));
    return await Promise.race([(async () => Reflect.apply(store[method], store.obj, args))(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Asks the TokenBroker Durable Object named `name` for a token. Never rejects: resolves the
 * object's answer (`{ token }` or `{ error }`), or `{ failed: "timeout" | "threw" | "invalid" }`.
 */
async function brokerLease(ns, name, request, ms) {
  let timer;
  try {
    const stub = ns.get(ns.idFromName(name));
    const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve({ failed: "timeout" }), ms)));
    const answer = await Promise.race([stub.lease(request), timeout]);
    return answer && typeof answer === "object" ? answer : { failed: "threw" };
  } catch (e) {
    return { failed: e instanceof TypeError && !e.remote ? "invalid" : "threw" };
  } finally {
    clearTimeout(timer);
  }
}

/** Sets header pairs from the wasm (or a token's headers) on `h`; a value the platform refuses is an error. */
function setAll(h, pairs) {
  for (const [k, v] of pairs) {
    try {
      h.set(k, v);
    } catch {
      throw fail(BAD_HEADER);
    }
  }
  return h;
}

const pairsOf = (record, from) => {
  const out = [];
  for (let i = from; i < record.length; i += 2) out.push([record[i], record[i + 1]]);
  return out;
};

/** Frees the wasm side of clients that were dropped without `free()`. */
const registry = typeof FinalizationRegistry === "function" ? new FinalizationRegistry((h) => call(FREE, h)) : undefined;

class Client {
  #h;
  /** `free()` was called: new calls are refused. */
  #freed = false;
  /** What `free()` answers: settled once released (`#settleFree`). */
  #gone;
  #settleFree;
  /** The wasm side is released (once no call that started before `free()` is running), and
   * being released (its last save). */
  #released = false;
  #releasing = false;
  /** Calls running now: a call that started before `free()` runs to its end (a refresh grant
   * already sent must still save its rotated token). */
  #busy = 0;
  #events;
  #store;
  #broker;
  #brokerName;
  #brokerSide;
  #timeout;
  /** How long a caller waits for a flight before giving it up (the wasm's `stall_ms`). */
  #stall;
  /** The in-flight acquisition: `{ id, promise, outcome }`. */
  #pending;
  #flights = 0;
  /** The cached token as callers use it (`{ headers, access, generation, expiresAt, lifetime }`). */
  #got;
  /** What the last install handed out, for the callers of that acquisition (an onEvent callback may invalidate first). */
  #last;
  /** The hit path: from and until when (the wasm says) `#resolved` may be handed out. */
  #until = 0;
  #since = 0;
  #resolved;
  /** Bumped whenever the cached token is dropped: a batch of records that saw a drop (an
   * onEvent callback called `invalidate()`) caches nothing from the rest of its records. */
  #epoch = 0;
  /** Inside the broker: the one read of the stored access token. */
  #restoring;
  /** The wasm keeps an access token in storage for this client (flag 16). */
  #restores = false;
  /** Inside the broker: storage may hold a kept access token (one was read or written). */
  #kept = false;

  constructor(op, options) {
    if (!probes.length) probes.push(...one(PROBES));
    const items = new Items();
    // Inside TokenBroker: `{ name }`, the object's own name as it could prove it (checked by the wasm).
    let side, name;
    try {
      side = Object.getOwnPropertyDescriptor(options, BROKER_SIDE)?.value;
      name = side?.name;
    } catch {
      /* not an object: the wasm says so; a name that cannot be read proves nothing */
    }
    items.num(side ? 1 : 0);
    if (side) items.value(typeof name === "string" ? name : undefined);
    const seen = items.record(options);
    const [h, flags, timeout, stall, brokerName] = one(op, 0, items);
    this.#h = h;
    registry?.register(this, h, this);
    this.#timeout = timeout;
    this.#stall = stall;
    if (flags & 1) {
      // The methods as they were when the wasm looked at them (no second read of a getter).
      const s = seen.store;
      const { get, put } = items.methods.get(s);
      this.#store = { obj: s, get, put };
    }
    if (flags & 2) {
      this.#broker = seen.broker;
      this.#brokerName = brokerName;
    }
    this.#brokerSide = !!(flags & 4);
    this.#restores = !!(flags & 16);
    if (flags & 8) this.#events = seen.onEvent;
  }

  [RECORDS](op, items) {
    if (this.#released) throw fail(FREED);
    return call(op, this.#h, items);
  }

  [ONE](op, items) {
    if (this.#released) throw fail(FREED);
    return one(op, this.#h, items);
  }

  [TIMEOUT]() {
    return this.#timeout;
  }

  /** Runs a public call: refused after `free()`, counted while it runs. */
  async [WORK](fn) {
    if (this.#freed) throw fail(FREED);
    this.#busy++;
    try {
      return await fn();
    } finally {
      if (--this.#busy === 0 && this.#freed) this.#release();
    }
  }

  /**
   * With `broker`: the name of the TokenBroker object this client leases from (`idFromName`
   * of it reaches that object, e.g. to `end()` a session); undefined without one.
   */
  get brokerName() {
    return this.#brokerName;
  }

  /** The auth headers, frozen; a cache hit does no token work and allocates nothing. */
  headers() {
    const now = Date.now();
    if (now < this.#until && now >= this.#since) return this.#resolved;
    return this[WORK](async () => (await this[ENSURE]()).headers);
  }

  accessToken() {
    return this[WORK](async () => (await this[ENSURE]()).access);
  }

  /** Drops the cached token; the next call gets a new one. With a broker, the broker drops it too. */
  invalidate() {
    if (this.#freed) throw fail(FREED);
    this[ONE](INVALIDATE);
    this.#drop();
  }

  /**
   * Releases the wasm memory of this client; afterwards every method fails with
   * `invalid_request`. Calls already running end first (their memory is released after them).
   * Settles once released, after one last try at saving a rotated refresh token whose save had
   * failed (nothing else holds it once the client is gone), as the next call would have: only
   * over what the store holds of this client's own (the wasm's `Acquisition::flush`).
   */
  free() {
    if (!this.#freed) {
      this.#freed = true;
      this.#drop();
      let settle;
      this.#gone = new Promise((resolve) => (settle = resolve));
      this.#settleFree = settle;
      if (this.#busy === 0) this.#release();
    }
    return this.#gone;
  }

  async #release() {
    if (this.#releasing) return;
    this.#releasing = true;
    try {
      const id = ++this.#flights;
      await this.#run(id, this[RECORDS](FLUSH, new Items().num(id)));
    } catch {
      /* kept nothing: nothing more can be done for it */
    }
    this.#released = true;
    registry?.unregister(this);
    try {
      call(FREE, this.#h);
    } catch {
      /* nothing more to release */
    }
    this.#settleFree();
  }

  #drop() {
    this.#epoch++;
    this.#got = undefined;
    this.#resolved = undefined;
    this.#until = 0;
  }

  /** Drops the token only if it is still the one of `generation` (a 401 to an old token keeps a newer one). */
  [INVALIDATE_TOKEN](generation) {
    const [dropped] = this[ONE](INVALIDATE_IF, new Items().num(generation));
    if (dropped) this.#drop();
    return dropped;
  }

  /** A usable token: the cached one, or the one the single in-flight acquisition (started here or joined) installed. */
  async [ENSURE]() {
    // The id a flight started by this caller gets: the wasm learns it now, with the decision.
    const id = this.#flights + 1;
    const [step] = this[ONE](STEP, new Items().num(id));
    if (step === 0) {
      if (this.#got) return this.#got;
      throw fail(this.#freed ? FREED : NO_TOKEN);
    }
    if (step === 1) {
      const joined = this.#pending;
      if (!joined) throw fail(NO_END);
      // An exchange that failed is the caller's of exchangeCode(), not this caller's: the chain
      // before it is still there, and this call asks again (after it, as one of its own).
      if (!joined.exchange) return this.#settled(joined);
      return this.#settled(joined).catch((e) => {
        if (this.#freed) throw e;
        return this[ENSURE]();
      });
    }
    return this.#settled(this.#spawn((flight) => this.#obtain(flight), id));
  }

  /** Starts `work` as the client's one acquisition; the wasm is told when it ends, before anyone resumes. */
  #spawn(work, id = this.#flights + 1) {
    this.#flights = id;
    // One deadline per flight, however late a caller joins, on the monotonic clock: a wall clock
    // stepped forward (a laptop waking, NTP) must not give up a healthy flight, nor one stepped
    // back keep a caller waiting past it.
    const flight = { id, deadline: performance.now() + this.#stall };
    this.#pending = flight;
    flight.promise = (async () => {
      // The work starts a microtask later, once `flight.promise` is set: its first step may call
      // the caller's store, which may join this flight at once (and must find it whole).
      await undefined;
      try {
        await work(flight.id);
        flight.outcome ??= { ok: true };
      } catch (e) {
        flight.outcome ??= { error: e instanceof AuthError ? e : fail(NO_END) };
      }
      this.#end(flight);
    })();
    return flight;
  }

  /** The flight is over (or given up on): the wasm is told, only for the current flight. */
  #end(flight) {
    if (this.#pending !== flight) return;
    this.#pending = undefined;
    if (!this.#released) call(FINISH, this.#h, new Items().num(flight.id));
  }

  /**
   * Waits for `flight`, no longer than the wasm's bound on one acquisition. A flight still
   * running past it will never end (in workerd, its request was cancelled and took its I/O
   * with it): it is given up, its callers get `timeout`, and the next call starts a new one.
   */
  async #wait(flight) {
    let timer;
    const stalled = new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, flight.deadline - performance.now()))));
    try {
      await Promise.race([flight.promise, stalled]);
    } finally {
      clearTimeout(timer);
    }
    if (!flight.outcome) {
      flight.outcome = { error: fail(STALLED) };
      this.#end(flight);
    }
  }

  async #settled(flight) {
    await this.#wait(flight);
    const o = flight.outcome;
    if (!o) throw fail(NO_END);
    if (o.error) throw o.error;
    if (!this.#last) throw fail(NO_TOKEN);
    return this.#last;
  }

  /** One acquisition, whichever way this client gets tokens. */
  async #obtain(id) {
    // Where the wasm keeps an access token in storage (the broker side), it is read first, once.
    if (this.#restores) await this.#restore();
    const installed = await this.#run(id, this[RECORDS](OBTAIN, new Items().num(id)));
    if (installed) await this.#keepAccess();
  }

  /**
   * Inside the broker: the cached access token (or, when none is cached, an empty record) is
   * kept in storage for a restart. Only saves a restarted object a grant: a failure costs that.
   */
  async #keepAccess() {
    if (!this.#brokerSide) return;
    const [key, record] = this[ONE](SAVE_ACCESS);
    if (key === undefined) return;
    // Counted kept from the attempt: a write that failed may still have landed.
    this.#kept ||= record !== "";
    await callStore(this.#store, "put", [key, record], this.#timeout).catch(() => {});
  }

  /** Inside the broker, once (every caller waits for the same read): the access token kept in storage. */
  #restore() {
    return (this.#restoring ??= this.#readStored());
  }

  async #readStored() {
    const [key] = this[ONE](RESTORE_KEY);
    if (key === undefined) return;
    let v;
    try {
      v = await callStore(this.#store, "get", [key], this.#timeout);
    } catch {
      // Unread: it may hold one.
      this.#kept = true;
      return;
    }
    this.#kept ||= typeof v === "string" && v !== "";
    const epoch = this.#epoch;
    for (const r of this[RECORDS](RESTORED, new Items().value(typeof v === "string" ? v : undefined))) {
      if (r[0] === kind.I) this.#install(r, epoch);
    }
  }

  /** Performs a task's records until it is done; how many tokens it installed. */
  async #run(id, records) {
    let installs = 0;
    for (;;) {
      let input;
      const epoch = this.#epoch;
      for (let i = 0; i < records.length; i++) {
        const r = records[i];
        switch (r[0]) {
          case kind.I:
            this.#install(r, epoch);
            installs++;
            break;
          case kind.V:
            this.#emit(r);
            break;
          case kind.E:
            throw toError(r);
          case kind.D:
            this.#drop();
            break;
          case kind.d:
            return installs;
          case kind.r:
            input = await this.#storeGet(id, r[1]);
            break;
          case kind.w:
            input = await this.#storePut(id, r[1], r[2]);
            break;
          case kind.s:
            input = await this.#send(id, r);
            break;
          case kind.z:
            await sleep(r[1]);
            input = new Items().num(id).str("z");
            break;
          case kind.L:
            input = await this.#lease(id, r, records[i + 1]?.[0] === kind.x ? records[++i] : undefined);
            break;
        }
      }
      if (!input) throw fail(NO_END);
      records = this[RECORDS](INPUT, input);
    }
  }

  /** An `I` record of a batch that began at `epoch`. */
  #install(r, epoch) {
    const [, access, generation, until, since, expiresAt, lifetime] = r;
    const headers = Object.freeze(Object.fromEntries(pairsOf(r, 7)));
    this.#last = { headers, access, generation, expiresAt, lifetime };
    // A freed client caches nothing, nor does a batch in which the token was dropped (the wasm
    // dropped it too); the calls waiting on this acquisition still get it.
    if (this.#freed || this.#epoch !== epoch) return;
    this.#got = this.#last;
    this.#resolved = Promise.resolve(headers);
    this.#until = until;
    this.#since = since;
  }

  #emit(r) {
    const f = this.#events;
    if (!f) return;
    const event = { type: r[1] };
    for (const [k, v] of pairsOf(r, 2)) event[k] = v;
    try {
      f(event);
    } catch {
      /* the caller's bug, not ours to surface */
    }
  }

  async #storeGet(id, key) {
    try {
      return new Items().num(id).str("r").value(await callStore(this.#store, "get", [key], this.#timeout));
    } catch {
      return new Items().num(id).str("r!");
    }
  }

  async #storePut(id, key, value) {
    try {
      await callStore(this.#store, "put", [key, value], this.#timeout);
      return new Items().num(id).str("w");
    } catch {
      return new Items().num(id).str("w!");
    }
  }

  /** One exchange with a token endpoint: `[s, method, url, timeout, cap, body, ...header pairs]`. */
  async #send(id, [, method, url, timeout, cap, body, ...pairs]) {
    let headers;
    try {
      headers = setAll(new Headers(), pairsOf(pairs, 0));
    } catch {
      return new Items().num(id).str("af").num(BAD_HEADER).missing();
    }
    try {
      // No Request object of our own: fetch makes one (the URL is the core's, checked when configured).
      const [resp, text] = await within(timeout, async (signal) => {
        const r = await fetch(url, { method, headers, body, redirect: "manual", signal });
        return [r, await readCapped(r, cap)];
      });
      return new Items().num(id).str("a").num(resp.status).value(resp.headers.get("retry-after")).value(text);
    } catch (e) {
      return new Items().num(id).str("a!").str(failureKind(e));
    }
  }

  /** One lease from the broker: `[L, name, timeout, provider, stale, ...option pairs]`, `[x, code, verifier, redirectUri]`. */
  async #lease(id, [, name, timeout, provider, stale, ...fields], exchange) {
    // The object's name goes along: the object checks it is its own, and the options name it.
    const request = { name, provider, options: Object.fromEntries(pairsOf(fields, 0)) };
    if (stale !== undefined) request.stale = stale;
    if (exchange) request.exchange = { code: exchange[1], codeVerifier: exchange[2], redirectUri: exchange[3] };
    const answer = await brokerLease(this.#broker, name, request, timeout);
    const items = new Items().num(id);
    try {
      const { token: t, error: e } = answer;
      if (t != null) items.str("t").value(t.accessToken).value(t.expiresInMs).value(t.lifetimeMs).value(t.generation);
      else if (e != null) items.str("e").value(e.code).value(e.message).value(e.status).value(e.retryAfter).value(e.heldBack === true ? 1 : 0);
      else items.str("f").value(answer.failed);
    } catch {
      return new Items().num(id).str("f").str("threw");
    }
    return items;
  }

  /** Runs an authorization-code exchange as the single flight, after any acquisition in progress. */
  async [EXCHANGE_CODE](args) {
    const checked = new Items().num(0);
    checked.record(args);
    const [code, codeVerifier, redirectUri] = this[ONE](EXCHANGE, checked);
    // Inside the broker: the kept access token is read first (once), so it cannot be read back
    // over what the exchange leaves; and what it leaves is kept (a new chain's token, or none when
    // that token was held back), so a restart does not bring back the chain before it. Then the
    // exchange waits for any flight (one may have started during that read).
    if (this.#restores) {
      await this.#restore();
      // ...and emptied before the code is sent: a kept token of the chain before, left there
      // because the write after the exchange failed, would come back after a restart for the
      // new sign-in. One that cannot be emptied stops the exchange, its code not sent.
      const [key] = this[ONE](SAVE_ACCESS);
      if (key !== undefined && this.#kept) {
        await callStore(this.#store, "put", [key, ""], this.#timeout).catch(() => Promise.reject(fail(PUT_FAILED)));
        this.#kept = false;
      }
    }
    while (this.#pending) await this.#wait(this.#pending);
    // The wasm learns of the flight in the same turn as the driver does (its first records are
    // performed inside it): a call made before the flight's work starts must join it, not
    // start a second one over it.
    const id = this.#flights + 1;
    const start = new Items().num(1).num(id);
    start.record({ code, codeVerifier, redirectUri });
    const first = this[RECORDS](EXCHANGE, start);
    const flight = this.#spawn(async () => {
      try {
        return await this.#run(id, first);
      } finally {
        await this.#keepAccess();
      }
    }, id);
    flight.exchange = true;
    await this.#settled(flight);
  }

  /** The token broker's side of a lease (TokenBroker calls this on its own client); internal. */
  __lease(stale) {
    return this[WORK](async () => {
      // Restored first: after a restart the stale generation may name the stored token.
      await this.#restore();
      // The kept copy goes too: a restart must not bring back a token an API refused.
      if (typeof stale === "number" && this[INVALIDATE_TOKEN](stale)) await this.#keepAccess();
      const t = await this[ENSURE]();
      return { accessToken: t.access, expiresInMs: t.expiresAt - Date.now(), lifetimeMs: t.lifetime, generation: t.generation };
    });
  }
}

// `using client = new QflowAuth(...)`: `free()` at the end of the scope (where the runtime has it).
// `await using` waits for what `free()` settles on.
for (const key of [Symbol.dispose, Symbol.asyncDispose]) {
  if (key) {
    Object.defineProperty(Client.prototype, key, {
      value() {
        return this.free();
      },
      writable: true,
      configurable: true,
    });
  }
}

/** Gets OAuth tokens for the Qflow API and builds both auth headers. */
export class QflowAuth extends Client {
  static name = "QflowAuth"; // the shipped file is minified: the public classes keep their names

  /** The access token each answer of `fetch()` was sent with (what an echo of it would hold). */
  #sentWith = new WeakMap();

  /** For qauth/hono: this is a QflowAuth itself (not an object made from one, nor a Proxy of one). */
  [IS_QFLOW]() {
    return #sentWith in this;
  }

  constructor(options) {
    super(NEW_QFLOW, options);
  }

  /** `fetch()` against `apiUrl` with both headers, `redirect: "manual"`, a timeout, and one forced refresh + retry on 401. */
  fetch(input, init) {
    return this[WORK](async () => (await this.#api(this.#base(input, init, "fetch()"))).response);
  }

  /** `{ enabled: true }` or `{ enabled: false, reason: "comms_api_not_enabled" }`. */
  commsAccess(eventId) {
    return this[WORK](() => this.#comms(eventId));
  }

  async #comms(eventId) {
    const [url] = this[ONE](COMMS_URL, new Items().value(eventId));
    let base;
    try {
      base = new Request(url);
    } catch {
      throw fail(BAD_EVENT_ID);
    }
    const a = await this.#api(base, true);
    if (a.disabled) return { enabled: false, reason: a.disabled };
    this[ONE](COMMS_STATUS, new Items().num(a.response.status).value(a.response.headers.get("retry-after")));
    return { enabled: true };
  }

  /** A copy of the request with both headers set, for middleware; its URL must be on `apiUrl`'s origin. */
  authorizeRequest(input, init) {
    return this[WORK](() => this.#authorize(input, init));
  }

  async #authorize(input, init) {
    const base = this.#base(input, init, "authorizeRequest()");
    const got = await this[ENSURE]();
    let out;
    try {
      out = new Request(base, { headers: setAll(new Headers(base.headers), Object.entries(got.headers)), redirect: "manual" });
    } catch (e) {
      throw e instanceof AuthError ? e : fail(NOT_COPIED);
    }
    this[ONE](CHECK_SENT, new Items().str(out.url));
    return out;
  }

  /**
   * For qauth/hono's `relayBody`: `{ body, checked, type }` of an API answer a proxy may pass on
   * to its own caller, or null. The wasm says which answers stream on as they are and how much of
   * any other to read; what was read goes on only if it holds neither the token its request
   * carried (`#sentWith`) nor a configured secret.
   */
  async [RELAY_BODY](response) {
    if (!(response instanceof Response)) throw fail(NOT_A_RESPONSE);
    const type = response.headers.get("content-type");
    const sent = this.#sentWith.get(response);
    const [cap] = this[ONE](RELAY, new Items().num(response.status).value(type).value(sent).missing());
    // A streamed answer's headers go on only where they hold no credential (`clean`, the same
    // check as an error's body; nothing when the token its request carried is unknown).
    const clean = (text) => this[ONE](RELAY, new Items().num(response.status).value("text/plain").value(sent).str(text))[0] === 1;
    if (cap === 0) return { body: response.body, checked: false, clean };
    let text = null;
    try {
      // Chunk by chunk whatever its Content-Length says (a Response made by hand may lie).
      if (cap > 0) text = await readCapped(response, cap, false);
    } catch {
      /* unreadable: not passed on */
    }
    if (text === null) {
      response.body?.cancel().catch(() => {});
      return null;
    }
    const [ok, checkedAs] = this[ONE](RELAY, new Items().num(response.status).value(type).value(sent).str(text));
    return ok ? { body: text, checked: true, type: checkedAs } : null;
  }

  /** Exchanges an authorization code (with its PKCE verifier) for tokens; with a broker, the broker does. */
  exchangeCode(args) {
    return this[WORK](() => this[EXCHANGE_CODE](args));
  }

  /**
   * The caller's input as a Request of our own making, checked to be on `apiUrl`'s origin. The
   * URL checked is the one the platform wrote into that request, not a property of the caller's
   * object (which a subclass or a Proxy can fake).
   */
  #base(input, init, what) {
    if (init !== undefined && init !== null && typeof init !== "object") throw fail(NOT_AN_INIT, what);
    let req;
    try {
      if (input instanceof Request) req = new Request(input, init ?? {});
      else {
        const s = urlInput(input);
        if (s === undefined) throw fail(NOT_AN_INPUT, what);
        req = new Request(this[ONE](TARGET, new Items().str(s))[0], init ?? {});
      }
    } catch (e) {
      throw e instanceof AuthError ? e : fail(NOT_A_REQUEST, what);
    }
    this[ONE](CHECK_SENT, new Items().str(req.url));
    return req;
  }

  /** Sends `base` with both headers; what the wasm says of the status decides the rest. */
  async #api(base, comms = false) {
    let refreshed = false;
    for (;;) {
      const got = await this[ENSURE]();
      let req;
      try {
        const headers = setAll(new Headers(base.headers), Object.entries(got.headers));
        let copy;
        try {
          copy = base.clone();
        } catch {
          throw fail(BODY_USED);
        }
        req = new Request(copy, { method: base.method, headers, redirect: "manual", signal: timeoutSignal(this[TIMEOUT](), base.signal) });
      } catch (e) {
        throw e instanceof AuthError ? e : fail(NOT_COPIED);
      }
      this[ONE](CHECK_SENT, new Items().str(req.url));
      let resp;
      try {
        resp = await fetch(req);
      } catch (e) {
        throw fail(API_TRANSPORT, failureKind(e));
      }
      if (!(resp instanceof Response)) throw fail(API_TRANSPORT, "network");
      this.#sentWith.set(resp, got.access);
      const [next, cap] = this[ONE](API_NEXT, new Items().num(resp.status).num(refreshed ? 1 : 0));
      if (next === 1) {
        this[INVALIDATE_TOKEN](got.generation);
        refreshed = true;
        continue;
      }
      if (next === 2) {
        // Only a small body can be a gate answer; a larger one is passed on untouched.
        let body = null;
        try {
          body = await readCapped(resp.clone(), cap);
        } catch {
          /* not a gate */
        }
        if (body !== null) {
          const [disabled, reason] = this[ONE](API_GATE, new Items().str(body).num(comms ? 1 : 0));
          if (disabled) return { disabled: reason };
        }
      }
      return { response: resp };
    }
  }
}

/** Mints Qpien tokens with `generateOAuthToken` and runs GraphQL operations with them. */
export class QpienAuth extends Client {
  static name = "QpienAuth";

  constructor(options) {
    super(NEW_QPIEN, options);
  }

  /**
   * Runs one operation and resolves to its `data`. Mints again once on TOKEN_EXPIRED /
   * UNAUTHORIZED, once on INSUFFICIENT_SCOPES; never resends the operation otherwise.
   */
  graphql(query, variables, options) {
    return this[WORK](() => this.#graphql(query, variables, options));
  }

  async #graphql(query, variables, options) {
    const items = new Items().value(query);
    const vars = variables === undefined || variables === null ? 0 : plain(variables) ? 1 : 2;
    items.num(vars);
    if (options === undefined || options === null) items.missing();
    else items.record(options);
    const [op, operationName, endpoint, timeout, cap, ...pairs] = this[ONE](GRAPHQL_ARGS, items);
    const payload = { query };
    if (vars === 1) payload.variables = variables;
    if (operationName !== undefined) payload.operationName = operationName;
    let body;
    try {
      body = JSON.stringify(payload);
    } catch {
      throw fail(NOT_JSON);
    }
    let attempts = 0;
    for (;;) {
      const got = await this[ENSURE]();
      let req;
      try {
        const headers = setAll(setAll(new Headers(), pairsOf(pairs, 0)), Object.entries(got.headers));
        req = new Request(endpoint, { method: "POST", headers, body, redirect: "manual" });
      } catch (e) {
        throw e instanceof AuthError ? e : fail(BAD_ENDPOINT);
      }
      let resp, text;
      try {
        [resp, text] = await within(timeout, async (signal) => {
          const r = await fetch(req, { signal });
          return [r, await readCapped(r, cap)];
        });
      } catch (e) {
        throw fail(QPIEN_TRANSPORT, failureKind(e));
      }
      if (text === null) throw fail(QPIEN_TOO_BIG, resp.status);
      const [verdict, error] = this[RECORDS](GRAPHQL_VERDICT, new Items().num(resp.status).value(resp.headers.get("retry-after")).str(text).str(op).num(attempts));
      if (verdict[0] === kind.E) throw toError(verdict);
      const [, next, bits, hasData] = verdict;
      let data;
      if (hasData) {
        try {
          data = JSON.parse(text).data;
        } catch {
          /* the wasm read it; the host could not */
        }
      }
      if (next === 0) return data === undefined ? null : data;
      if (next === 1) {
        attempts = bits;
        this[INVALIDATE_TOKEN](got.generation);
        continue;
      }
      if (next === 3) this[INVALIDATE_TOKEN](got.generation);
      const err = toError(error);
      if (data !== undefined) err.data = data;
      throw err;
    }
  }
}
