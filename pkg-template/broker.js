// TokenBroker: one Durable Object per credential, so every isolate of a Worker shares one refresh
// chain (Qflow) or one minted token (Qpien). Re-export it from your Worker and bind it:
//
//   export { TokenBroker } from "qauth";
//   [[durable_objects.bindings]] name = "TOKEN_BROKER", class_name = "TokenBroker"
//   [[migrations]] tag = "v1", new_sqlite_classes = ["TokenBroker"]
//
// Clients constructed with `broker: env.TOKEN_BROKER` ask `lease()` here over Durable Object RPC.
// The object runs the same qauth client as an isolate would, with this object's storage as its
// store: single-flight refresh inside the object, the rotated refresh token written to storage
// before anyone gets the new access token, the current access token kept in storage for a
// restart. Secrets (client secret, password) arrive with each request and stay in memory; only
// tokens are written to storage. `end()` ends the credential for good (a sign-out), `endAt(ms)`
// at a set time (a session's absolute expiry). Errors come back as data: fields of thrown errors do not
// survive RPC.
import { DurableObject } from "cloudflare:workers";
import { QflowAuth, QpienAuth, TIMEOUT } from "./client.js";
import { AuthError } from "./error.js";

const PROVIDERS = { qflow: QflowAuth, qpien: QpienAuth };
/** Marks the client inside the object (read by the wasm client; not a user option). */
const BROKER_SIDE = Symbol.for("qauth.brokerSide");

/** The storage key of the marker `end()` leaves behind (not a token key: those start with the store key). */
const ENDED_KEY = "qauth:ended";
/** The storage key of the object's own name, kept once proven. */
const NAME_KEY = "qauth:#name";
/** Keys of the object's own: a client's store (a `storeKey` equal to one) may not touch them. */
const OWN_KEYS = [ENDED_KEY, NAME_KEY];
const ENDED = Object.freeze({ code: "invalid_grant", message: "the session was ended" });
const storeFailed = () => new AuthError("store_failed", "a rotated refresh token could not be saved yet", "The object's storage failed; try again.", true);

/** How `p` ends within `ms`: "ok", "failed", or "late" (it has not ended). */
function outcome(p, ms) {
  let timer;
  const late = new Promise((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
  return Promise.race([p.then(() => "ok", () => "failed"), late]).finally(() => clearTimeout(timer));
}

/**
 * What names a credential: a change here is another credential, anything else is a setting (the
 * settings of the lease that made the object's client are the ones it keeps: replacing a client
 * for a setting would cost a restore each time two deployments' leases alternate, and a new
 * client does not know which refresh tokens the old one already sent).
 */
const IDENTITY = ["clientId", "clientSecret", "username", "password", "identityUrl", "endpoint", "scope", "storeKey"];

export class TokenBroker extends DurableObject {
  static name = "TokenBroker"; // the shipped file is minified: the class keeps its name

  #clients = new Map(); // provider -> { key, client, users, drained, release }
  #ended = false; // end() ran: every lease is refused, nothing is written again
  #unsaved = new Map(); // store key -> its latest write `{ value, done }`, while pending or failed
  #name; // the object's name, once proven (see #ownName), kept in storage

  constructor(ctx, env) {
    super(ctx, env);
    // The marker survives a restart (eviction, deploy): an ended object stays ended. The name
    // too: an instance first reached by ID string (`idFromString`) is not told its name.
    ctx.blockConcurrencyWhile(async () => {
      if (await ctx.storage.get(ENDED_KEY)) this.#ended = true;
      const stored = await ctx.storage.get(NAME_KEY);
      if (typeof stored === "string") this.#name = stored;
    });
  }

  /**
   * The object's own name, proven: the runtime's word (`ctx.id.name`, which workerd gives an
   * object first reached by name), else the name kept in storage, else `claimed` (the name the
   * lease says it used) if a Durable Object namespace in this Worker's `env` maps it to this
   * object's ID. Undefined when nothing proves it: the lease is then refused (never a lease
   * unchecked). Kept in storage once known.
   */
  async #ownName(claimed) {
    let name = this.ctx.id.name ?? this.#name;
    if (typeof name !== "string" && typeof claimed === "string") {
      for (const ns of Object.values(this.env ?? {})) {
        try {
          // Durable Object namespaces only (a service binding or ASSETS has an `idFromName` too,
          // which would be a call to another Worker; the class name, where an old compatibility
          // date leaves the tag unset), and the runtime's own `equals` saying a real `true`.
          const namespace = Object.prototype.toString.call(ns) === "[object DurableObjectNamespace]" || ns?.constructor?.name === "DurableObjectNamespace";
          if (namespace && this.ctx.id.equals(ns.idFromName(claimed)) === true) name = claimed;
        } catch {
          /* not a namespace */
        }
      }
    }
    if (typeof name === "string" && name !== this.#name) {
      this.#name = name;
      await this.ctx.storage.put(NAME_KEY, name);
    }
    return name;
  }

  /**
   * Where tokens are kept: this object's storage (override to wrap it, e.g. to encrypt). Once
   * `end()` has run, `put` is refused, so a refresh that was in flight cannot write its rotated
   * token back.
   */
  get store() {
    const storage = this.ctx.storage;
    const own = (key) => {
      if (OWN_KEYS.includes(key)) throw new Error("a store key the broker keeps for itself");
    };
    return {
      get: async (key) => {
        own(key);
        return storage.get(key);
      },
      put: async (key, value) => {
        if (this.#ended) throw new Error("the session was ended");
        own(key);
        return storage.put(key, value);
      },
    };
  }

  /**
   * `store`, keeping each key's latest write in `#unsaved` from when it is issued until it
   * succeeds: a write that failed stays there (a client holds the value it could not save); a
   * newer write to the key replaces it, so an older value is never made again over a newer one.
   */
  #tracked(store) {
    return {
      get: (key) => store.get(key),
      put: (key, value) => {
        const write = { value };
        write.done = (async () => store.put(key, value))();
        this.#unsaved.set(key, write);
        return write.done.then(() => {
          if (this.#unsaved.get(key) === write) this.#unsaved.delete(key);
        });
      },
    };
  }

  /** `{ provider, options, stale?, exchange? }` → `{ token }` or `{ error }`. */
  async lease(request) {
    if (this.#ended) return { error: { ...ENDED } };
    let entry;
    let heldBack = false; // the exchange ran and its new token could not be saved
    try {
      entry = await this.#enter(request);
      if (request.exchange) {
        await entry.client.exchangeCode(request.exchange).catch((e) => {
          heldBack = e?.code === "store_failed";
          throw e;
        });
      }
      const token = await entry.client.__lease(request.stale);
      // end() ran while this lease was in flight: what it got must not reach anyone.
      return this.#ended ? { error: { ...ENDED } } : { token };
    } catch (e) {
      if (this.#ended) return { error: { ...ENDED } };
      const { code, message, status, retryAfter } = e?.name === "AuthError" ? e : { code: "server_error", message: "the token broker failed" };
      return { error: { code, message, status, retryAfter, ...(heldBack ? { heldBack } : {}) } };
    } finally {
      if (entry && --entry.users === 0) entry.release();
    }
  }

  /**
   * Ends this credential for good (a user's sign-out): deletes every token in storage, drops the
   * clients, and leaves a marker so that later leases (also after a restart) answer
   * `invalid_grant` ("the session was ended"). A refresh in flight finishes at the identity
   * server, but its rotated token is not stored and its lease is refused.
   */
  async end() {
    this.#ended = true;
    const serving = this.#clients.size > 0;
    this.#clients.clear();
    // An object that never served a lease and holds nothing has nothing to end, and keeps
    // nothing (a sign-out with a made-up session id must not leave a row behind for good).
    if (!serving && (await this.ctx.storage.list({ limit: 1 })).size === 0) return { ended: true };
    await this.ctx.storage.deleteAll();
    await this.ctx.storage.put(ENDED_KEY, true);
    return { ended: true };
  }

  /**
   * Ends this credential at `when` (ms since the epoch: a session's absolute expiry) whether or
   * not anyone asks again, through a Durable Object alarm: a session whose browser never comes
   * back does not keep its refresh token in storage for good. The last call wins.
   */
  async endAt(when) {
    if (typeof when !== "number" || !Number.isFinite(when)) {
      throw new AuthError("invalid_request", "endAt(when) takes a time in ms since the epoch", "Pass a number, e.g. a session's absolute expiry (Date.now() + its lifetime).", false);
    }
    if (this.#ended) return { ended: true };
    await this.ctx.storage.setAlarm(when);
    return { endsAt: when };
  }

  /**
   * The alarm `endAt` set: `end()`, again if it ran already (it is idempotent). A throw has the
   * runtime retry the alarm, so a failed delete is not the last word.
   */
  async alarm() {
    await this.end();
  }

  /**
   * The provider's one client, counted in use. A request naming another credential (a rotated
   * secret, a deploy with new settings) replaces it only once no lease is using it: the old
   * client may be mid-refresh, and a new one would read the refresh token it is spending.
   */
  async #enter(request) {
    const { name: claimed, provider, options } = request ?? {};
    const Client = PROVIDERS[provider];
    if (!Client || !options || typeof options !== "object") {
      throw new AuthError("invalid_request", "not a lease request", "The token broker is reached through the `broker` option of QflowAuth or QpienAuth.", false);
    }
    const name = await this.#ownName(claimed);
    const key = JSON.stringify(IDENTITY.map((k) => options[k]));
    for (;;) {
      // end() ran while this lease waited: no new client, no grant (lease() answers "ended").
      if (this.#ended) throw new Error("ended");
      const entry = this.#clients.get(provider);
      if (entry?.key === key || (entry && entry.users > 0)) {
        if (entry.key === key) {
          if (entry.users++ === 0) entry.drained = new Promise((resolve) => (entry.release = resolve));
          return entry;
        }
        await entry.drained;
        continue;
      }
      // A client about to be replaced may hold a rotated refresh token whose save failed: the
      // only copy. The write that failed is made again first (no grant, nothing sent), so the
      // new client reads that token; if it fails again, this lease is `store_failed`
      // (retryable) and the old client keeps it for the next try.
      if (entry && this.#unsaved.size > 0) {
        // Writes still in flight land first (within the client's time); one that failed, and is
        // still its key's latest, is made again. One that has not ended cannot be made again
        // safely (it could land after the new client's newer writes and put a spent token back),
        // so that, or a rewrite that fails, is `store_failed` (retryable): the old client keeps
        // the token for the next try. Each wait is bounded by the writing client's `timeoutMs`.
        const ms = entry.client[TIMEOUT]();
        for (const [k, w] of [...this.#unsaved]) {
          if ((await outcome(w.done, ms)) === "late") throw storeFailed();
          if (this.#unsaved.get(k) !== w) continue; // it landed, or a newer write took over
          if ((await outcome(this.#tracked(this.store).put(k, w.value), ms)) !== "ok") throw storeFailed();
        }
        continue; // anything may have changed while it waited
      }
      // The object's own name: the client refuses options that name another credential, so a
      // lease cannot point this object's tokens at another identity server.
      const fresh = { key, users: 1, client: new Client({ ...options, store: this.#tracked(this.store), [BROKER_SIDE]: { name } }) };
      fresh.drained = new Promise((resolve) => (fresh.release = resolve));
      this.#clients.set(provider, fresh);
      return fresh;
    }
  }
}
