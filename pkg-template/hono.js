// `qauth/hono`: a Hono middleware that forwards an allow-list of Qflow API calls with both auth
// headers, on Cloudflare Workers and on Node (`duplex: "half"` for streamed bodies). The origin
// check, the headers, the 401 refresh-and-retry and the 403 gates are `QflowAuth.fetch()`'s; this
// file only decides which incoming requests may reach it, and turns its errors into answers.
// Loads no wasm of its own: `auth` is a client the app made from its runtime's entry.
import { AuthError } from "./error.js";

/** Characters a forwarded path may have once decoded (RFC 3986 pchar minus `%`). */
const PATH_CHARS = /^[A-Za-z0-9\-._~/:@!$&'()*+,=]*$/;
/** Request headers passed on by default: content negotiation and conditionals, never credentials. */
const FORWARD = ["accept", "accept-language", "content-type", "content-language", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "prefer"];
/**
 * Response headers passed back: what describes the body and its caching. Nothing else (the API's
 * cookies, trace or diagnostic headers that may echo a request, CORS, `www-authenticate`), and not
 * `content-encoding` / `content-length`, which the runtime's fetch already undid.
 */
const PASS_BACK = ["content-type", "content-language", "content-disposition", "content-range", "accept-ranges", "cache-control", "etag", "last-modified", "expires", "vary", "retry-after", "link"];
/** The QflowAuth methods behind `relayBody` and the `auth` check (client.js). */
const RELAY_BODY = Symbol.for("qauth.relay");
const IS_QFLOW = Symbol.for("qauth.isQflow");
/** Methods fetch refuses to send (Fetch standard: forbidden methods). */
const FORBIDDEN = ["CONNECT", "TRACE", "TRACK"];
/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Request headers never forwarded: the caller's credentials and routing (qauth sets its own). */
const NEVER = /^(?:authorization|proxy-authorization|cookie|host)$/i;

function configError(problem) {
  return new AuthError("invalid_config", `qflowProxy options: ${problem}`, "Fix the named option and create the middleware again.", false);
}

/** `"GET /checkin/v1/api/events"` → `["GET", "/checkin/v1/api/events"]`, or a config error. */
function rule(entry) {
  const m = typeof entry === "string" ? /^([A-Z]+) (\/[^\s?#%]*)$/.exec(entry) : null;
  const path = m && m[2];
  if (!m || FORBIDDEN.includes(m[1]) || path === "/" || path.endsWith("/") || path.split("/").slice(1).some((s) => s === "" || s === "." || s === "..")) {
    throw configError('each `allow` entry is "METHOD /path" (e.g. "GET /checkin/v1/api/events"): an uppercase method fetch may send (not CONNECT, TRACE or TRACK), one space, an API path without query, trailing slash or dot segments');
  }
  return [m[1], path];
}

/**
 * The path below `prefix` of a request URL, decoded once and checked after decoding: null when it
 * is not under `prefix` (not ours), false when anything about it is suspicious (encoded `/` `\`
 * `.` `;` `%`, controls, dot or empty segments, bad escapes), else `{ encoded, decoded }`. The raw
 * URL is used, not a normalised one. Exported for proxies of one's own (the demo's BFF uses it).
 */
export function proxyPath(url, prefix) {
  if (typeof url !== "string") return false;
  checkPrefix(prefix);
  const raw = url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/, "").replace(/[?#][\s\S]*$/, "");
  if (!raw.startsWith(prefix + "/")) return null;
  const encoded = raw.slice(prefix.length);
  if (/%(?:2f|5c|2e|25|3b|00)/i.test(encoded) || /[\\;\x00-\x20\x7f]/.test(encoded)) return false;
  let decoded;
  try {
    decoded = decodeURIComponent(encoded);
  } catch {
    return false;
  }
  if (!PATH_CHARS.test(decoded) || decoded.split("/").slice(1).some((s) => s === "" || s === "." || s === "..")) return false;
  return { encoded, decoded };
}

function answer(status, code, message, hint, extra) {
  return new Response(JSON.stringify({ error: code, message, hint }), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...extra },
  });
}

/**
 * What of an API answer (from `auth.fetch()`) may go on to a proxy's own, public caller:
 * `{ body, checked, type?, headers }`, or null. A success streams on as it is (`checked: false`)
 * with those of its headers that describe the body and its caching and hold no credential. An
 * error's body is read first (up to 64 KiB) and passed on only if it holds neither the access
 * token the request carried nor a configured secret: a gateway that echoes the request's headers
 * in an error would otherwise hand its caller the bearer token and subscription key. Then
 * `checked: true`, `type`, the fixed type to send it with, and fixed headers: that type,
 * `nosniff`, `no-store`, and a Retry-After that is a number of seconds (no room for a credential).
 * A larger or unreadable error, one in another charset than UTF-8, one that is not JSON or plain
 * text (HTML and XML spell characters by reference), or one that is not `auth.fetch()`'s own
 * answer (a clone: what its request carried is not known) passes no body on.
 * `qflowProxy` uses it; exported for proxies of one's own (the demo's BFF uses it).
 */
export async function relayBody(auth, response) {
  const notAClient = () => new AuthError("invalid_request", "relayBody(auth, response) takes the QflowAuth client whose fetch() answered", "Pass the client the response came from.", false);
  if (!qflowAuth(auth)) throw notAClient();
  let relayed;
  try {
    relayed = await Reflect.apply(auth[RELAY_BODY], auth, [response]);
  } catch (e) {
    throw e instanceof AuthError ? e : notAClient();
  }
  if (!relayed) return null;
  const { body, checked, type, clean } = relayed;
  const headers = new Headers();
  try {
    if (checked) {
      headers.set("content-type", type);
      headers.set("x-content-type-options", "nosniff");
      headers.set("cache-control", "no-store");
      const wait = response.headers.get("retry-after");
      if (wait !== null && /^\d{1,9}$/.test(wait)) headers.set("retry-after", wait);
      return { body, checked, type, headers };
    }
    // A gateway may echo the request's headers in its own (an ETag, a Link), on any status the
    // caller can ask for (a conditional request gets a 304): each goes back only if it holds
    // none of what the request carried, checked all at once and, if that finds one, one by one.
    const found = PASS_BACK.map((k) => [k, response.headers.get(k)]).filter(([, v]) => v !== null);
    const all = found.length > 0 && clean(found.map(([, v]) => v).join("\n"));
    for (const [k, v] of found) if (all || clean(v)) headers.set(k, v);
    return { body, checked, headers };
  } catch (e) {
    // Headers that cannot be read twice the same way: not a Response of the platform's.
    throw e instanceof AuthError ? e : notAClient();
  }
}

/** A QflowAuth client itself, of any of the package's entries (not an object made from one, nor a Proxy). */
function qflowAuth(auth) {
  try {
    return !!auth && typeof auth[IS_QFLOW] === "function" && Reflect.apply(auth[IS_QFLOW], auth, []) === true;
  } catch {
    return false;
  }
}

/** The API's documented refusals (its Comms gates: public `AuthError` codes), passed on as 403. */
const GATES = ["comms_api_not_enabled", "trust_required"];

/**
 * An `AuthError` from `auth.fetch()` as an answer. The caller's own mistake (400) and the API's
 * documented refusals (403) say why; anything else is this server's business (its identity
 * server's words, even redacted, and its configuration) and answers with the code only.
 */
function failure(e) {
  if (!(e instanceof AuthError)) throw e;
  const extra = e.retryAfter !== undefined ? { "retry-after": String(e.retryAfter) } : {};
  // A refusal of the call's own arguments has no HTTP status; an `invalid_request` with one is the
  // identity server's answer, not the caller's business.
  if (e.code === "invalid_request" && e.status === undefined) return answer(400, e.code, e.message, e.hint, extra);
  if (GATES.includes(e.code)) return answer(403, e.code, e.message, e.hint, extra);
  return answer(e.retryable ? 503 : 502, e.code, undefined, undefined, extra);
}

/** A mount path: "" or "/seg…" without a trailing slash, query, fragment, escapes or spaces. */
function checkPrefix(prefix) {
  if (typeof prefix !== "string" || (prefix !== "" && (!prefix.startsWith("/") || prefix.endsWith("/") || /[?#%\s]/.test(prefix)))) {
    throw configError('`prefix` is the mount path to strip, like "/qflow" (no trailing slash), or "" for none');
  }
}

/**
 * Forwards `METHOD {prefix}/{path}?{query}` to `auth`'s `apiUrl` when `METHOD /{path}` is on `allow`
 * (that path or one below it). With a prefix, any other method or path under it is `404
 * not_allowed`; requests outside it (and, without a prefix, calls not on `allow`) go to `next()`.
 * Options are read from the object's own properties, as everywhere in qauth.
 */
export function qflowProxy(options) {
  if (options === null || typeof options !== "object") throw configError("takes `{ auth, allow, prefix?, forwardHeaders? }`");
  const known = ["auth", "allow", "prefix", "forwardHeaders"];
  // Each option read once, into plain copies (a list's holes read as missing entries); a getter
  // or Proxy trap that throws is a config error like any other.
  let auth, allow, prefix, forwardHeaders;
  try {
    for (const k of Object.keys(options)) if (!known.includes(k)) throw configError(`\`${k}\` is not an option (${known.join(", ")})`);
    const own = (k, fallback) => {
      const v = Object.hasOwn(options, k) ? options[k] : undefined;
      return v === undefined ? fallback : v;
    };
    const list = (v) => (Array.isArray(v) ? Array.from(v) : v);
    [auth, allow, prefix, forwardHeaders] = [own("auth"), list(own("allow")), own("prefix", ""), list(own("forwardHeaders", FORWARD))];
  } catch (e) {
    throw e instanceof AuthError ? e : configError("the options could not be read");
  }
  if (!qflowAuth(auth)) throw configError("`auth` must be a QflowAuth client");
  if (!Array.isArray(allow) || allow.length === 0) throw configError("`allow` is required: the methods and API paths this proxy may forward (never an open proxy)");
  checkPrefix(prefix);
  if (!Array.isArray(forwardHeaders) || forwardHeaders.some((h) => typeof h !== "string" || !TOKEN.test(h) || NEVER.test(h))) {
    throw configError("`forwardHeaders` is a list of request header names; the caller's credentials (authorization, cookie) and host are never forwarded");
  }
  const rules = allow.map(rule);
  const pass = forwardHeaders.map((h) => h.toLowerCase());

  return async function qflowProxyMiddleware(c, next) {
    const req = c.req.raw;
    const path = proxyPath(req.url, prefix);
    if (path === null) return next();
    const ok = path && rules.some(([m, p]) => m === req.method && (path.decoded === p || path.decoded.startsWith(p + "/")));
    // Mounted without a prefix, the middleware does not own the whole namespace: others go on.
    if (!ok && prefix === "") return next();
    if (!ok) return answer(404, "not_allowed", "This method and path are not forwarded to the Qflow API.", "Add it to the proxy's `allow` list if it should be.");
    // The query as the path was read: up to a fragment (a `?` after a `#` is not one).
    const query = /\?[^#]*/.exec(req.url.replace(/#[\s\S]*$/, ""));
    const headers = new Headers();
    for (const h of pass) {
      const v = req.headers.get(h);
      if (v !== null) headers.set(h, v);
    }
    const init = { method: req.method, headers, signal: req.signal };
    if (req.method !== "GET" && req.method !== "HEAD" && req.body) {
      init.body = req.body;
      init.duplex = "half"; // Node's fetch needs it for a streamed body; Workers ignore it
    }
    let upstream;
    try {
      upstream = await auth.fetch(path.encoded + (query ? query[0] : ""), init);
    } catch (e) {
      return failure(e);
    }
    // A redirect is never relayed (qauth does not follow one with credentials either): the API
    // moved something, which is this server's business. 304 answers a conditional request.
    // A status a Response cannot carry (600 and up, which Node's fetch accepts) is not relayed either.
    if ((upstream.status >= 300 && upstream.status < 400 && upstream.status !== 304) || upstream.status > 599) {
      await upstream.body?.cancel().catch(() => {});
      return answer(502, "bad_response");
    }
    let relayed;
    try {
      relayed = await relayBody(auth, upstream);
    } catch (e) {
      await upstream.body?.cancel().catch(() => {});
      return failure(e);
    }
    // Only errors are withheld (relayBody cancels what it does not pass on).
    if (!relayed) return answer(upstream.status, "withheld", "The API's answer to this call is not passed on (too large to check, or it held a credential of this server's).");
    // The headers relayBody passed; the reason phrase never goes back (a gateway may echo there
    // too; the runtime writes the standard one).
    return new Response(relayed.body, { status: upstream.status, headers: relayed.headers });
  };
}
