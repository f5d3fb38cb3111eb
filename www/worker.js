// Demo worker: a backend-for-frontend (RFC 10017 §6.1) for Qflow sign-in, running in workerd.
//
// The worker runs the whole authorization-code flow except the user's visit to the identity
// server: `POST /auth/start` makes `state` and the PKCE pair, keeps the verifier server-side,
// binds the flow to this browser with a short-lived pre-login cookie and answers with the
// authorize URL only; `POST /auth/session` accepts `{ code, state }` only from the browser that
// holds that cookie, exchanges the code with its client secret and the stored verifier, and hands
// the browser an opaque HttpOnly session cookie. Each session's tokens live in one TokenBroker
// Durable Object (named by a hash of the session id), so every isolate shares one rotation chain
// and sign-out ends it in one place. KV keeps only session metadata (created, absolute expiry,
// ended) under the hashed id. `/api/…` proxies an allow-list of Qflow API paths with both auth
// headers. No token, verifier, secret or key is ever in a response to the browser.
import { QflowAuth, AuthError, beginAuthorization } from "qauth";
import { proxyPath, relayBody } from "qauth/hono";

export { TokenBroker } from "qauth"; // the Durable Object class (bound as TOKEN_BROKER)

const SCOPE = "qflowapi openid offline_access";
const FLOW_TTL_S = 300; // a sign-in must come back within 5 minutes
const DEFAULT_SESSION_S = 8 * 3600; // absolute session lifetime; rotation does not extend it
const MAX_BODY = 16 * 1024;

/** What the page may reach through `/api/…`: method + Qflow API path prefix. Nothing else. */
const ALLOW = [
  ["GET", "/checkin/v1/api/events"],
  ["POST", "/checkin/v1/api/event"],
  ["GET", "/comms/v1/api/comms/templates"],
];

/**
 * The page's Content-Security-Policy. The inline import map is allowed by its hash (Chromium
 * checks inline import maps against script-src and has no external import maps); the package's
 * browser build compiles its wasm, which needs 'wasm-unsafe-eval' (not 'unsafe-eval').
 */
const IMPORT_MAP_SHA256 = "sha256-/0FhZv6mH5ayN4dphU70sBzZy/6nfDGPio00fCJRtDI=";
const csp = (env) =>
  [
    "default-src 'self'",
    `script-src 'self' 'wasm-unsafe-eval' '${IMPORT_MAP_SHA256}'`,
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
    `form-action ${new URL(env.QFLOW_IDENTITY_URL).origin}`,
  ].join("; ");

// ---------------------------------------------------------------------------------------------
// Small helpers

/** A stable, safe answer: a code the page knows and words; never a secret. */
class Refusal extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const json = (body, status = 200, headers = {}) => Response.json(body, { status, headers: { "cache-control": "no-store", ...headers } });
const fail = (status, code, message) => json({ code, message }, status);

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
/** SHA-256 hex: what KV keys and Durable Object names are made of (never the raw id). */
const hash = async (text) => hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));

function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const isHttps = (request) => new URL(request.url).protocol === "https:";
/** Cookie names: `__Host-` (Secure, Path=/, no Domain: only this origin can set or read it) over https. */
const cookieName = (request, base) => (isHttps(request) ? `__Host-${base}` : base);

function cookie(request, base, value, maxAge) {
  const secure = isHttps(request) ? "; Secure" : "";
  return `${cookieName(request, base)}=${value}; HttpOnly${secure}; SameSite=Lax; Path=/; Max-Age=${maxAge}`;
}

function readCookie(request, base) {
  const name = cookieName(request, base).replace(/[-]/g, "\\-");
  const m = new RegExp(`(?:^|;\\s*)${name}=([A-Za-z0-9_-]{43})(?:;|$)`).exec(request.headers.get("cookie") ?? "");
  return m?.[1] ?? null;
}

/** State-changing requests must come from this origin (SameSite=Lax already blocks most CSRF). */
function sameOrigin(request) {
  if (request.headers.get("origin") !== new URL(request.url).origin) throw new Refusal(403, "forbidden", "Cross-origin request refused.");
}

/** The request body, at most MAX_BODY bytes, whatever Content-Length claims. */
async function readBody(request) {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > MAX_BODY) throw new Refusal(413, "too_large", `The request body is over ${MAX_BODY} bytes.`);
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY) {
      reader.cancel().catch(() => {});
      throw new Refusal(413, "too_large", `The request body is over ${MAX_BODY} bytes.`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) all.set(c, (at += c.byteLength) - c.byteLength);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw new Refusal(400, "invalid_request", "The request body is not UTF-8.");
  }
}

/** A JSON object body with string fields `required` (and `optional`, if present). */
async function readJson(request, required, optional = []) {
  const text = await readBody(request);
  let body;
  try {
    body = text === "" && required.length === 0 ? {} : JSON.parse(text);
  } catch {
    throw new Refusal(400, "invalid_request", "The request body is not JSON.");
  }
  const shape = `Expected a JSON object { ${[...required, ...optional.map((k) => k + "?")].join(", ")} } of strings.`;
  if (!body || typeof body !== "object" || Array.isArray(body)) throw new Refusal(400, "invalid_request", shape);
  for (const k of required) if (typeof body[k] !== "string" || body[k].length === 0 || body[k].length > 2048) throw new Refusal(400, "invalid_request", shape);
  for (const k of optional) if (k in body && (typeof body[k] !== "string" || body[k].length > 2048)) throw new Refusal(400, "invalid_request", shape);
  return body;
}

/**
 * Where Qflow sends the browser back: this origin's page, nothing else (another path of the site,
 * such as one under /api/, would carry the code and state there).
 */
function redirectUriFor(request, given) {
  const page = new URL(request.url).origin + "/";
  if (given !== undefined && given !== page) throw new Refusal(400, "invalid_redirect_uri", `redirectUri must be this site's page, ${page}, or left out.`);
  return page;
}

// ---------------------------------------------------------------------------------------------
// Sessions: metadata in KV under a hash of the id, tokens in one TokenBroker object per session

const sessionLifetimeS = (env) => {
  const n = Number(env.SESSION_MAX_AGE_S ?? DEFAULT_SESSION_S);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : DEFAULT_SESSION_S;
};
const sessionKey = (h) => `session:${h}`;
const flowKey = (h) => `flow:${h}`;
const kvTtl = (ms) => Math.max(60, Math.ceil(ms / 1000) + 60); // KV's minimum is 60 s

/**
 * Flows this isolate has taken up (KV's get-then-delete is not atomic): the same callback posted
 * twice at once is refused here before KV is read, so its code is exchanged once. Across isolates,
 * KV's lag still lets a second one through (the README says so).
 */
const claimedFlows = new Map(); // flow key -> when the claim lapses (insertion order is expiry order)
function claimFlow(fk) {
  const now = Date.now();
  for (const [k, until] of claimedFlows) {
    if (until > now) break;
    claimedFlows.delete(k);
  }
  if (claimedFlows.has(fk)) return false;
  if (claimedFlows.size >= 10_000) claimedFlows.delete(claimedFlows.keys().next().value);
  claimedFlows.set(fk, now + FLOW_TTL_S * 1000);
  return true;
}

/** One client per session and isolate (an access-token cache in front of the session's broker object). */
const clients = new Map();
const MAX_CLIENTS = 1000;

const qflowOptions = (env, h) => ({
  clientId: env.QFLOW_CLIENT_ID,
  clientSecret: env.QFLOW_CLIENT_SECRET,
  subscriptionKey: env.QFLOW_SUBSCRIPTION_KEY,
  identityUrl: env.QFLOW_IDENTITY_URL,
  apiUrl: env.QFLOW_API_URL,
  broker: env.TOKEN_BROKER,
  storeKey: sessionKey(h),
});

function clientFor(env, h) {
  let c = clients.get(h);
  if (!c) {
    if (clients.size >= MAX_CLIENTS) dropClient(clients.keys().next().value);
    c = new QflowAuth(qflowOptions(env, h));
    clients.set(h, c);
  }
  return c;
}

function dropClient(h) {
  const c = clients.get(h);
  clients.delete(h);
  try {
    c?.free();
  } catch {}
}

/** The session's TokenBroker object, by the name its client leases from (the library's). */
function brokerObject(env, h) {
  const ns = env.TOKEN_BROKER;
  return ns.get(ns.idFromName(clientFor(env, h).brokerName));
}

/**
 * Ends a session everywhere: its broker object first (the lasting end: its leases are refused
 * for good, also after a restart), then `ended` in KV (checked by every isolate).
 */
async function endSession(env, h, meta) {
  const object = brokerObject(env, h);
  dropClient(h);
  await object.end();
  const now = Date.now();
  const record = { created: meta?.created ?? now, absoluteExpiry: meta?.absoluteExpiry ?? now, ended: true };
  await env.SESSIONS.put(sessionKey(h), JSON.stringify(record), { expirationTtl: kvTtl(Math.max(0, record.absoluteExpiry - now)) });
}

/**
 * Sign-out of the session `h`: a live one is marked `ended` in KV and its object ended. One KV
 * does not show as live gets no KV record (a made-up cookie would otherwise leave one), but its
 * object is still ended: KV takes up to 60 s to show a new session everywhere, and a sign-out
 * must not depend on that (an object that never served anything keeps nothing).
 */
async function endIfLive(env, h) {
  const meta = await readMeta(env, h);
  if (meta && !meta.ended) return endSession(env, h, meta);
  // Ended already, or not shown here: the object is ended again (it is idempotent): a sign-out
  // retried after its `end()` failed must not answer "signed out" with the token still live.
  const object = brokerObject(env, h);
  dropClient(h);
  await object.end();
}

async function readMeta(env, h) {
  try {
    return JSON.parse((await env.SESSIONS.get(sessionKey(h))) ?? "null");
  } catch {
    return null;
  }
}

/** The live session of this request, or a 401 Refusal (no cookie, signed out, or past its lifetime). */
async function session(request, env) {
  const sid = readCookie(request, "qauth_session");
  if (!sid) throw new Refusal(401, "no_session", "Not signed in.");
  const h = await hash(sid);
  const meta = await readMeta(env, h);
  if (!meta || meta.ended) {
    dropClient(h);
    throw new Refusal(401, "no_session", "Not signed in.");
  }
  if (Date.now() >= meta.absoluteExpiry) {
    await endSession(env, h, meta);
    throw new Refusal(401, "session_expired", "Your session has expired. Sign in again.");
  }
  return { h, meta, qflow: clientFor(env, h) };
}

/** Maps a failure while using a session: a dead refresh token (or an ended object) ends the session. */
async function sessionFailure(env, s, e) {
  if (!(e instanceof AuthError)) throw e;
  if (e.code === "invalid_grant" || e.code === "unauthorized") {
    await endSession(env, s.h, s.meta);
    return fail(401, "session_expired", "Your session has expired. Sign in again.");
  }
  if (e.code === "invalid_request" || e.code === "invalid_config") return fail(400, "invalid_request", "The request was not valid.");
  return json({ code: e.code, message: e.message, hint: e.hint, retryable: e.retryable }, e.retryable ? 503 : 502);
}

// ---------------------------------------------------------------------------------------------
// Routes

const routes = {
  /**
   * Starts a sign-in: `{ redirectUri? }` → `{ url }` (the authorize URL). The verifier never
   * leaves the worker; the flow is bound to this browser by the pre-login cookie.
   */
  async "POST /auth/start"(request, env) {
    sameOrigin(request);
    const body = await readJson(request, [], ["redirectUri"]);
    const redirectUri = redirectUriFor(request, body.redirectUri);
    let begun;
    try {
      begun = await beginAuthorization({ clientId: env.QFLOW_CLIENT_ID, identityUrl: env.QFLOW_IDENTITY_URL, scope: SCOPE, redirectUri });
    } catch (e) {
      // The one argument from the request is the redirect URI (this page's URL): plain http off
      // loopback is refused by qauth (a code must not travel in the clear).
      if (e instanceof AuthError && e.code === "invalid_config" && /redirectUri/.test(e.message)) {
        throw new Refusal(400, "insecure_origin", "Sign-in needs this site over https (http only on localhost).");
      }
      throw e;
    }
    const { url, state, codeVerifier } = begun;
    const preLogin = randomId();
    const flow = { state, verifier: codeVerifier, redirectUri, created: Date.now() };
    await env.SESSIONS.put(flowKey(await hash(preLogin)), JSON.stringify(flow), { expirationTtl: kvTtl(FLOW_TTL_S * 1000) });
    return json({ url }, 200, { "set-cookie": cookie(request, "qauth_prelogin", preLogin, FLOW_TTL_S) });
  },

  /** `{ code, state }` from the browser that started the flow → a session cookie. */
  async "POST /auth/session"(request, env) {
    sameOrigin(request);
    const body = await readJson(request, ["code", "state"]);
    const headers = new Headers({ "cache-control": "no-store" });
    headers.append("set-cookie", cookie(request, "qauth_prelogin", "", 0)); // one use, whatever happens
    const refuse = (status, code, message) => new Response(JSON.stringify({ code, message }), { status, headers: withType(headers) });

    // The pre-login cookie → this browser's flow → the same state: else this is not our sign-in.
    const preLogin = readCookie(request, "qauth_prelogin");
    const notOurs = "This sign-in response does not match a sign-in started in this browser, has expired, or was already used. Sign in again.";
    if (!preLogin) return refuse(400, "state_mismatch", notOurs);
    const fk = flowKey(await hash(preLogin));
    if (!claimFlow(fk)) return refuse(400, "state_mismatch", notOurs);
    const raw = await env.SESSIONS.get(fk);
    if (!raw) return refuse(400, "state_mismatch", notOurs);
    await env.SESSIONS.delete(fk); // one use
    let flow;
    try {
      flow = JSON.parse(raw);
    } catch {
      return refuse(400, "state_mismatch", notOurs);
    }
    if (flow.state !== body.state || Date.now() - flow.created > FLOW_TTL_S * 1000) return refuse(400, "state_mismatch", notOurs);

    const sid = randomId();
    const h = await hash(sid);
    const qflow = clientFor(env, h);
    const lifetime = sessionLifetimeS(env);
    const created = Date.now();
    const absoluteExpiry = created + lifetime * 1000;
    try {
      // First, before the object holds anything: it ends itself at the session's expiry even if
      // this browser never comes back (its cookie is gone by then, so no request would end it),
      // or if anything below fails. No refresh token outlives its session.
      await brokerObject(env, h).endAt(absoluteExpiry);
      await qflow.exchangeCode({ code: body.code, codeVerifier: flow.verifier, redirectUri: flow.redirectUri });
      // Signing in again from this browser ends its previous session.
      const previous = readCookie(request, "qauth_session");
      if (previous) await endIfLive(env, await hash(previous));
      await env.SESSIONS.put(sessionKey(h), JSON.stringify({ created, absoluteExpiry, ended: false }), { expirationTtl: kvTtl(lifetime * 1000) });
    } catch (e) {
      // Whatever failed, the new object ends: no tokens stay stored for a session nobody has.
      const object = brokerObject(env, h);
      dropClient(h);
      await object.end().catch(() => {});
      const [code, message, status] =
        e instanceof AuthError && !e.retryable
          ? [e.code, e.code === "invalid_grant" ? "This sign-in could not be completed: the code was already used, has expired, or does not match this browser's request. Sign in again." : e.message, 400]
          : [e instanceof AuthError ? e.code : "server_error", "This sign-in could not be completed because of a passing fault. Sign in again.", 503];
      return new Response(JSON.stringify({ code, message, retryable: status === 503 }), { status, headers: withType(headers) });
    }
    headers.append("set-cookie", cookie(request, "qauth_session", sid, lifetime));
    return new Response(JSON.stringify({ signedIn: true }), { status: 200, headers: withType(headers) });
  },

  async "POST /auth/logout"(request, env) {
    sameOrigin(request);
    const sid = readCookie(request, "qauth_session");
    try {
      if (sid) await endIfLive(env, await hash(sid));
    } catch {
      return json({ code: "signout_failed", message: "Signing out did not complete: this browser may still be signed in. Try again." }, 503);
    }
    return json({ signedIn: false }, 200, { "set-cookie": cookie(request, "qauth_session", "", 0) });
  },

  /** Comms access for an event, in words the page can show. */
  async "GET /api/comms-access"(request, env) {
    const eventId = new URL(request.url).searchParams.get("eventId") ?? "";
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(eventId)) return fail(400, "invalid_request", "eventId must be an event id.");
    const s = await session(request, env);
    try {
      return json(await s.qflow.commsAccess(eventId));
    } catch (e) {
      return sessionFailure(env, s, e);
    }
  },
};

const withType = (headers) => {
  const h = new Headers(headers);
  h.set("content-type", "application/json");
  return h;
};

// ---------------------------------------------------------------------------------------------
// The proxy

/** `/api/{path}` → the decoded Qflow API path, or null when anything about it is suspicious (the
 * rule `qauth/hono` applies: decoded once, checked after decoding, before the allow-list sees it). */
function apiPath(request) {
  const path = proxyPath(request.url, "/api");
  return path ? path.decoded : null;
}

const isJson = (type) => /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type ?? "");

/** `/api/{Qflow API path}` → the Qflow API, if the method + path are on the allow-list. */
async function proxy(request, env) {
  const url = new URL(request.url);
  const path = apiPath(request);
  if (path === null || !ALLOW.some(([m, p]) => m === request.method && (path === p || path.startsWith(p + "/")))) {
    return fail(404, "not_allowed", "This API path is not available through the demo.");
  }
  if (request.method !== "GET") sameOrigin(request);
  const s = await session(request, env);
  const body = request.method === "GET" ? undefined : await readBody(request);
  if (body !== undefined && body !== "") {
    try {
      JSON.parse(body);
    } catch {
      return fail(400, "invalid_request", "The request body is not JSON.");
    }
  }
  let upstream;
  try {
    upstream = await s.qflow.fetch(path + url.search, {
      method: request.method,
      headers: { accept: "application/json", ...(body ? { "content-type": "application/json" } : {}) },
      body: body || undefined,
    });
  } catch (e) {
    return sessionFailure(env, s, e);
  }
  // Only a JSON body goes back (no upstream cookies or headers); anything else (an HTML error page
  // from a gateway, a file) is never rendered on this origin: 502 bad_upstream instead.
  const type = upstream.headers.get("content-type");
  if (upstream.status === 204 || upstream.status === 304) return new Response(null, { status: upstream.status, headers: { "cache-control": "no-store" } });
  if (!isJson(type)) {
    await upstream.body?.cancel().catch(() => {});
    return fail(502, "bad_upstream", "The API answered with something other than JSON.");
  }
  // An API error's body goes back only once read and found free of this server's credentials (a
  // gateway may echo the request's headers in one).
  let relayed;
  try {
    relayed = await relayBody(s.qflow, upstream);
  } catch (e) {
    await upstream.body?.cancel().catch(() => {});
    return sessionFailure(env, s, e);
  }
  if (!relayed) return fail(502, "bad_upstream", "The API's answer was not passed on: too large to check, or it held a credential of this server's.");
  return new Response(relayed.body, { status: upstream.status, headers: { "content-type": "application/json", "cache-control": "no-store" } });
}

// ---------------------------------------------------------------------------------------------

async function handle(request, env) {
  const url = new URL(request.url);
  const route = routes[`${request.method} ${url.pathname}`];
  if (route) return route(request, env);
  if (url.pathname.startsWith("/api/")) return proxy(request, env);
  if (url.pathname.startsWith("/auth/")) return fail(404, "not_found", "No such endpoint.");
  // Everything else is the static page (www/public + the package's browser build).
  if (!env.ASSETS) return new Response("Not found", { status: 404 });
  const asset = await env.ASSETS.fetch(request);
  if (!/^text\/html/i.test(asset.headers.get("content-type") ?? "")) return asset;
  const page = new Response(asset.body, asset);
  page.headers.set("content-security-policy", csp(env));
  page.headers.set("referrer-policy", "no-referrer");
  // The callback URL (?code=…&state=…) is this page's: no cache keeps it.
  page.headers.set("cache-control", "no-store");
  page.headers.set("x-frame-options", "DENY");
  return page;
}

export default {
  async fetch(request, env) {
    let response;
    try {
      response = await handle(request, env);
    } catch (e) {
      // Refusals are the 4xx answers above; anything else is a bug, answered without details.
      response = e instanceof Refusal ? fail(e.status, e.code, e.message) : fail(500, "server_error", "The demo worker failed.");
    }
    // Over https, browsers are told to keep to it (the session cookie is `__Host-`, Secure, there).
    const hsts = isHttps(request) && !response.headers.has("strict-transport-security");
    if (response.headers.get("x-content-type-options") !== "nosniff" || hsts) {
      response = new Response(response.body, response);
      response.headers.set("x-content-type-options", "nosniff");
      if (hsts) response.headers.set("strict-transport-security", "max-age=31536000");
    }
    return response;
  },
};
