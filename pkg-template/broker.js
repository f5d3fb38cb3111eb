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

export class TokenBroker extends DurableObject {
  #clients = new Map();

  /** Where tokens are kept: this object's storage (override to wrap it, e.g. to encrypt). */
  get store() {
    return this.ctx.storage;
  }

  /** `{ provider, options, stale?, exchange? }` → `{ token }` or `{ error }`. */
  async lease(request) {
    try {
      const client = this.#client(request);
      if (request.exchange) await client.exchangeCode(request.exchange);
      return { token: await client.__lease(request.stale) };
    } catch (e) {
      const { code, message, status, retryAfter } = e?.name === "AuthError" ? e : { code: "server_error", message: "the token broker failed" };
      return { error: { code, message, status, retryAfter } };
    }
  }

  /** One client per provider, rebuilt when the options change (a rotated secret, say). */
  #client({ provider, options }) {
    const Client = PROVIDERS[provider];
    if (!Client) throw new TypeError("unknown provider");
    const key = JSON.stringify(options);
    let entry = this.#clients.get(provider);
    if (!entry || entry.key !== key) {
      entry = { key, client: new Client({ ...options, store: this.store, __brokerSide: true }) };
      this.#clients.set(provider, entry);
    }
    return entry.client;
  }
}
