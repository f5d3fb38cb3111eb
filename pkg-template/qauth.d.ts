/** Events passed to `onEvent`. They carry names, timings and codes, never a secret. */
export type QauthEvent =
  | { type: "token_acquired"; grant: "password" | "authorization_code" | "generateOAuthToken" | "broker"; ms: number; expiresIn: number }
  | { type: "token_refreshed"; grant: "refresh_token"; ms: number; expiresIn: number }
  | { type: "refresh_token_rotated" }
  | { type: "fallback_to_password" }
  | { type: "retry"; attempt: number; delayMs: number; code: AuthErrorCode }
  | { type: "expiry_assumed"; expiresIn: number };

/**
 * A Durable Object namespace bound to the package's `TokenBroker` class (`env.TOKEN_BROKER`).
 * Structural, so `@cloudflare/workers-types` is not required.
 */
export interface TokenBrokerNamespace {
  idFromName(name: string): unknown;
  get(id: any): unknown;
}

/** Where refresh tokens persist. A Workers KV namespace or Durable Object storage fits as is. */
export interface TokenStore {
  get(key: string): Promise<string | null | undefined>;
  put(key: string, value: string): Promise<void>;
}

/** The options every `QflowAuth` takes, whichever way it signs in. */
export interface QflowAuthBaseOptions {
  clientId: string;
  clientSecret: string;
  subscriptionKey: string;
  /** Start from a saved refresh token (a token in `store` is preferred: it is newer). */
  refreshToken?: string;
  /** Default `qflowapi openid offline_access`. */
  scope?: string;
  /** Default `https://identity.qflowhub.io`. */
  identityUrl?: string;
  /** Default `https://api.qflowhub.io`. */
  apiUrl?: string;
  /** Where the refresh token persists (one isolate, or a credential used rarely). */
  store?: TokenStore;
  /**
   * The `TokenBroker` Durable Object namespace: every isolate shares one refresh chain through
   * one object per credential (named by `storeKey`). Replaces `store`.
   */
  broker?: TokenBrokerNamespace;
  /** Default derived from identityUrl + clientId + username; never contains a secret. */
  storeKey?: string;
  /** Default 60, from 0 to 3600 (else `invalid_config`); capped at half the token's lifetime. */
  refreshSkewSeconds?: number;
  /**
   * Default 10000, from 100 to 120000 (else `invalid_config`); bounds each token grant (with its
   * retries), each store call, each broker lease and each API call (body included).
   */
  timeoutMs?: number;
  onEvent?: (event: QauthEvent) => void;
}

/**
 * `username` is `<enterprise pin>/<email>` or an email; with `password` it enables the password
 * grant. Without a password (a refresh-only deployment) a `store`, `broker` or `refreshToken` must
 * provide the refresh token. A `password` without a `username` is refused.
 */
export type QflowAuthOptions = QflowAuthBaseOptions & ({ username: string; password: string } | { username?: string; password?: never });

export interface QflowHeaders {
  readonly Authorization: string;
  readonly "Ocp-Apim-Subscription-Key": string;
}

export class QflowAuth {
  constructor(options: QflowAuthOptions);
  accessToken(): Promise<string>;
  /** Frozen object; spread it to add headers. A cache hit does no token work. */
  headers(): Promise<QflowHeaders>;
  /** Relative paths resolve against `apiUrl`; other origins are refused. One refresh + retry on 401. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  commsAccess(eventId: string): Promise<{ enabled: true } | { enabled: false; reason: "comms_api_not_enabled" }>;
  invalidate(): void;
  /**
   * With `broker`: the name of the TokenBroker object this client leases from
   * (`broker.get(broker.idFromName(client.brokerName))` reaches it, e.g. to `end()` a session);
   * `undefined` without one.
   */
  readonly brokerName: string | undefined;
  /** A copy of the request with both headers set; its URL must be on `apiUrl`'s origin. */
  authorizeRequest(input: string | URL | Request, init?: RequestInit): Promise<Request>;
  /** Authorization-code grant (PKCE). A code this client already sent is refused (`invalid_request`), never sent twice. */
  exchangeCode(args: { code: string; codeVerifier: string; redirectUri: string }): Promise<void>;
  /**
   * Releases the wasm memory of this client. Calls already running end first (a refresh in
   * flight still saves its rotated token); later calls reject with `invalid_request` (and
   * `invalidate()` throws it). Settles once released, after one last try (a store read and a
   * write, each within `timeoutMs`)
   * at saving a rotated refresh token whose save had failed (never over a newer token in the
   * store); await it before another client reads the same store. A second `free()` answers the
   * same Promise.
   */
  free(): Promise<void>;
  /** `using qflow = new QflowAuth(...)`: `free()` at the end of the scope. */
  [Symbol.dispose](): void;
  /** `await using qflow = new QflowAuth(...)`: `free()` at the end of the scope, awaited. */
  [Symbol.asyncDispose](): Promise<void>;
}

export interface QpienAuthOptions {
  clientId: string;
  clientSecret: string;
  endpoint: string;
  /** The `TokenBroker` namespace: one mint for all isolates. */
  broker?: TokenBrokerNamespace;
  /** Default 60, from 0 to 3600; capped at half the token's lifetime. */
  refreshSkewSeconds?: number;
  /** Default 10000, from 100 to 120000. */
  timeoutMs?: number;
  onEvent?: (event: QauthEvent) => void;
}

export class QpienAuth {
  constructor(options: QpienAuthOptions);
  accessToken(): Promise<string>;
  headers(): Promise<{ readonly Authorization: string }>;
  /**
   * Resolves to the operation's `data` (describe it with `T`; `unknown` until you do).
   * `variables` must be a plain object (else `invalid_request`).
   */
  graphql<T = unknown>(query: string, variables?: Record<string, unknown>, options?: { operationName?: string }): Promise<T>;
  invalidate(): void;
  /**
   * With `broker`: the name of the TokenBroker object this client leases from
   * (`broker.get(broker.idFromName(client.brokerName))` reaches it, e.g. to `end()` a session);
   * `undefined` without one.
   */
  readonly brokerName: string | undefined;
  /**
   * Releases the wasm memory of this client. Calls already running end first; later calls
   * reject with `invalid_request` (and `invalidate()` throws it). Settles once released; a
   * second `free()` answers the same Promise.
   */
  free(): Promise<void>;
  /** `using qpien = new QpienAuth(...)`: `free()` at the end of the scope. */
  [Symbol.dispose](): void;
  /** `await using qpien = new QpienAuth(...)`: `free()` at the end of the scope, awaited. */
  [Symbol.asyncDispose](): Promise<void>;
}

export function beginAuthorization(options: {
  clientId: string;
  redirectUri: string;
  authorizeUrl?: string;
  identityUrl?: string;
  scope?: string;
}): Promise<{ url: string; state: string; codeVerifier: string }>;

export function completeAuthorization(callbackUrl: string | URL, options: { state: string | null | undefined }): { code: string };

/**
 * The token broker Durable Object (workerd entry only). Re-export it from your Worker
 * (`export { TokenBroker } from "qauth"`) and bind it with a `new_sqlite_classes` migration.
 */
export class TokenBroker {
  constructor(ctx: unknown, env: unknown);
  /** Where tokens are kept: the object's storage (refuses `put` once `end()` ran). Override to wrap it. */
  get store(): TokenStore;
  /**
   * Ends this object's credential for good (e.g. a user's sign-out, with one object per session):
   * deletes all its storage, drops its clients, and makes every later `lease()` (also after a
   * restart) answer `invalid_grant` "the session was ended". A refresh in flight does not write
   * its rotated token back. Call it over RPC: `env.TOKEN_BROKER.get(id).end()`.
   */
  end(): Promise<{ ended: true }>;
  /**
   * Ends this object's credential at `when` (ms since the epoch, e.g. a session's absolute expiry)
   * as `end()` does, through a Durable Object alarm, whether or not anyone asks again: a session
   * whose browser never returns does not keep its refresh token in storage. The last call wins.
   * Already ended: `{ ended: true }`.
   */
  endAt(when: number): Promise<{ endsAt: number } | { ended: true }>;
  /** The alarm `endAt()` set (the runtime calls it). */
  alarm(): Promise<void>;
}

export type AuthErrorCode =
  | "invalid_config" | "invalid_request" | "invalid_client" | "invalid_grant" | "invalid_scope"
  | "unauthorized_client" | "unsupported_grant_type" | "unauthorized" | "comms_api_not_enabled"
  | "trust_required" | "insufficient_scopes" | "graphql_error" | "rate_limited" | "server_error"
  | "network" | "timeout" | "bad_response" | "store_failed" | "state_mismatch" | "access_denied"
  | "authorization_error"
  /** The bundler did not ship `qauth_bg.wasm` where the entry looks for it (see the README's bundler table). */
  | "wasm_load_failed";

export class AuthError extends Error {
  /** qauth makes these; the arguments are its own (catch them, test `code`, do not build one). */
  constructor(code: AuthErrorCode, message: string, hint: string, retryable: boolean, status?: number, retryAfter?: number, messages?: string[]);
  readonly name: "AuthError";
  readonly code: AuthErrorCode;
  readonly retryable: boolean;
  readonly hint: string;
  readonly status?: number;
  /** Seconds, from Retry-After (rate_limited, server_error). */
  readonly retryAfter?: number;
  /** GraphQL error messages (graphql_error), secrets redacted. */
  readonly messages?: string[];
  /** Partial GraphQL data that came with the errors, if any and if it holds no credential. */
  readonly data?: unknown;
  /** Every field, for logging (`JSON.stringify(e)`); no field ever holds a secret. */
  toJSON(): {
    name: "AuthError";
    code: AuthErrorCode;
    message: string;
    hint: string;
    retryable: boolean;
    status?: number;
    retryAfter?: number;
    messages?: string[];
    data?: unknown;
  };
}
