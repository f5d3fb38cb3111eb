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
// tokens are written to storage. Errors come back as data: fields of thrown errors do not
// survive RPC.
import { DurableObject } from "cloudflare:workers";
import { QflowAuth, QpienAuth } from "./fast.js";

const PROVIDERS = { qflow: QflowAuth, qpien: QpienAuth };
/** Marks the client inside the object (read by the wasm client; not a user option). */
const BROKER_SIDE = Symbol.for("qauth.brokerSide");

/** What names a credential: a change here is another credential, anything else is a setting. */
const IDENTITY = ["clientId", "clientSecret", "username", "password", "identityUrl", "endpoint", "scope", "storeKey"];

export class TokenBroker extends DurableObject {
  #clients = new Map(); // provider -> { key, client, users, drained, release }

  /** Where tokens are kept: this object's storage (override to wrap it, e.g. to encrypt). */
  get store() {
    return this.ctx.storage;
  }

  /** `{ provider, options, stale?, exchange? }` → `{ token }` or `{ error }`. */
  async lease(request) {
    let entry;
    try {
      entry = await this.#enter(request);
      if (request.exchange) await entry.client.exchangeCode(request.exchange);
      return { token: await entry.client.__lease(request.stale) };
    } catch (e) {
      const { code, message, status, retryAfter } = e?.name === "AuthError" ? e : { code: "server_error", message: "the token broker failed" };
      return { error: { code, message, status, retryAfter } };
    } finally {
      if (entry && --entry.users === 0) entry.release();
    }
  }

  /**
   * The provider's one client, counted in use. A request naming another credential (a rotated
   * secret, a deploy with new settings) replaces it only once no lease is using it: the old
   * client may be mid-refresh, and a new one would read the refresh token it is spending.
   */
  async #enter({ provider, options }) {
    const Client = PROVIDERS[provider];
    if (!Client || !options || typeof options !== "object") throw new TypeError("not a lease request");
    const key = JSON.stringify(IDENTITY.map((k) => options[k]));
    for (;;) {
      const entry = this.#clients.get(provider);
      if (entry?.key === key || (entry && entry.users > 0)) {
        if (entry.key === key) {
          if (entry.users++ === 0) entry.drained = new Promise((resolve) => (entry.release = resolve));
          return entry;
        }
        await entry.drained;
        continue;
      }
      const fresh = { key, users: 1, client: new Client({ ...options, store: this.store, [BROKER_SIDE]: true }) };
      fresh.drained = new Promise((resolve) => (fresh.release = resolve));
      this.#clients.set(provider, fresh);
      return fresh;
    }
  }
}
