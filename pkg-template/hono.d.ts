import type { QflowAuth } from "./qauth.js";

export interface QflowProxyOptions {
  /** The client whose `fetch()` sends the requests (both headers, origin check, 401 retry). */
  auth: QflowAuth;
  /**
   * What may be forwarded: `"METHOD /api/path"` entries; a path allows itself and the paths
   * below it. Required and non-empty: the middleware is never an open proxy.
   */
  allow: readonly [`${Uppercase<string>} /${string}`, ...`${Uppercase<string>} /${string}`[]];
  /**
   * The mount path stripped before forwarding, e.g. `"/qflow"`: calls under it that are not on
   * `allow` answer 404. Default `""` (no prefix: calls not on `allow` go to `next()`).
   */
  prefix?: string;
  /** Request headers passed on (default: accept, accept-language, content-type, content-language, the conditionals if-match / if-none-match / if-modified-since / if-unmodified-since, prefer). */
  forwardHeaders?: readonly string[];
}

/** The structural part of Hono's `Context` the middleware reads. */
export interface QflowProxyContext {
  req: { raw: Request };
}

/**
 * A Hono middleware: `app.use("/qflow/*", qflowProxy({ auth, prefix: "/qflow", allow: ["GET /checkin/v1/api/events"] }))`.
 * Allowed calls are forwarded with query and body intact; other paths under `prefix` answer
 * `404 not_allowed`; an `AuthError` becomes `{ error, message, hint }` for the caller's own mistake
 * (400) or a Comms gate (403), `{ error }` alone otherwise (503 / 502); an API redirect is `502`;
 * an API error that `relayBody` does not pass on (one holding a credential, or one it cannot check:
 * not JSON or plain text in UTF-8, over 64 KiB) is `{ error: "withheld", message }` with its status.
 */
export function qflowProxy(options: QflowProxyOptions): (c: QflowProxyContext, next: () => Promise<void>) => Promise<Response | void>;

/**
 * The path below `prefix` of a request URL, decoded once and checked after decoding (the rule
 * `qflowProxy` applies): `null` when the URL is not under `prefix`, `false` when anything about
 * the path is suspicious (encoded `/` `\` `.` `;` `%`, controls, dot or empty segments, bad
 * escapes), else both forms of it.
 */
export function proxyPath(url: string, prefix: string): { encoded: string; decoded: string } | null | false;

/**
 * What of an API answer (from `auth.fetch()`) may go on to a proxy's own, public caller:
 * `{ body, checked, type?, headers }`, or `null`. A success streams on as it is (`checked: false`)
 * with `headers`: those of its headers that describe the body and its caching (content type,
 * caching, validators, `link`, `vary`…) and hold no credential (none when `response` is a clone); an
 * error's body (JSON or plain text in UTF-8, up to 64 KiB, from `auth.fetch()` itself) is read and
 * passed on only if it holds neither the access token its request carried nor a configured secret
 * (a gateway echoing the request's headers): `checked: true`, `type` the content type to send it
 * with (`application/json`, `application/problem+json` or `text/plain`, `; charset=utf-8`).
 * `headers` is then that type, `nosniff`, `no-store` and a Retry-After of seconds, none of its
 * other headers. `qflowProxy` sends `body` with `headers`, and answers `{ error: "withheld",
 * message }` (the API's status) where this is `null`.
 * Throws `invalid_request` when `auth` is not a QflowAuth or `response` not a Response.
 */
export function relayBody(
  auth: QflowAuth,
  response: Response,
): Promise<{ body: ReadableStream<Uint8Array> | null; checked: false; headers: Headers } | { body: string; checked: true; type: string; headers: Headers } | null>;
