// Demo worker: a backend-for-frontend (RFC 10017 §6.1) for Qflow sign-in, running in workerd.
//
// The page (www/public, served as static assets) only does the PKCE redirect. This worker
// exchanges the authorization code with its client secret, keeps the tokens server-side (the
// refresh token in the SESSIONS KV namespace through qauth's `store` option, the access token in
// the isolate's QflowAuth cache), hands the browser an opaque HttpOnly session cookie, and proxies
// an allow-list of Qflow API paths with both auth headers. No token, secret or key is ever in a
// response to the browser.
import { QflowAuth, AuthError } from "qauth";

const COOKIE = "qauth_session";
const SESSION_TTL_S = 8 * 3600; // KV expiry of a session's refresh token: sign in again after 8 h idle

/** What the page may reach through `/api/…`: method + Qflow API path prefix. Nothing else. */
const ALLOW = [
  ["GET", "/checkin/v1/api/events"],
  ["POST", "/checkin/v1/api/event"],
  ["GET", "/comms/v1/api/comms/templates"],
];

/** One client per session and isolate; the refresh token lives in KV, so a new isolate resumes. */
const clients = new Map();
const MAX_CLIENTS = 1000;

const storeKey = (sid) => `session:${sid}`;

/** KV as qauth's store, with an expiry so abandoned sessions disappear. */
const sessionStore = (kv) => ({
  get: (key) => kv.get(key),
  put: (key, value) => kv.put(key, value, { expirationTtl: SESSION_TTL_S }),
});

function clientFor(env, sid) {
  let c = clients.get(sid);
  if (!c) {
    if (clients.size >= MAX_CLIENTS) clients.delete(clients.keys().next().value);
    c = new QflowAuth({
      clientId: env.QFLOW_CLIENT_ID,
      clientSecret: env.QFLOW_CLIENT_SECRET,
      subscriptionKey: env.QFLOW_SUBSCRIPTION_KEY,
      identityUrl: env.QFLOW_IDENTITY_URL,
      apiUrl: env.QFLOW_API_URL,
      store: sessionStore(env.SESSIONS),
      storeKey: storeKey(sid),
    });
    clients.set(sid, c);
  }
  return c;
}

const json = (body, status = 200, headers = {}) =>
  Response.json(body, { status, headers: { "cache-control": "no-store", ...headers } });

/** An error the page can show: a stable code and words, never a secret (AuthError has none). */
const fail = (status, code, message) => json({ code, message }, status);

function sessionId(request) {
  const m = /(?:^|;\s*)qauth_session=([A-Za-z0-9_-]{43})(?:;|$)/.exec(request.headers.get("cookie") ?? "");
  return m?.[1] ?? null;
}

function cookie(request, value, maxAge) {
  const secure = new URL(request.url).protocol === "https:" ? "; Secure" : "";
  return `${COOKIE}=${value}; HttpOnly${secure}; SameSite=Lax; Path=/; Max-Age=${maxAge}`;
}

function newSessionId() {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** State-changing requests must come from this origin (SameSite=Lax already blocks most CSRF). */
function sameOrigin(request) {
  return request.headers.get("origin") === new URL(request.url).origin;
}

/** The session's client, or null when there is no live session (no cookie, or signed out/expired). */
async function session(request, env) {
  const sid = sessionId(request);
  if (!sid || !(await env.SESSIONS.get(storeKey(sid)))) return null;
  return { sid, qflow: clientFor(env, sid) };
}

async function endSession(env, sid) {
  clients.delete(sid);
  await env.SESSIONS.delete(storeKey(sid));
}

/** Maps a failure while using a session: a dead refresh token ends the session. */
async function sessionFailure(env, s, e) {
  if (!(e instanceof AuthError)) throw e;
  if (e.code === "invalid_grant" || e.code === "unauthorized") {
    await endSession(env, s.sid);
    return fail(401, "session_expired", "Your session has expired. Sign in again.");
  }
  return json({ code: e.code, message: e.message, hint: e.hint, retryable: e.retryable }, e.retryable ? 503 : 502);
}

const routes = {
  /** Public settings the page needs to build the authorization URL. */
  "GET /auth/config": (request, env) =>
    json({ clientId: env.QFLOW_CLIENT_ID, identityUrl: env.QFLOW_IDENTITY_URL, scope: "qflowapi openid offline_access" }),

  /** `{ code, codeVerifier, redirectUri }` → a session cookie. */
  async "POST /auth/session"(request, env) {
    if (!sameOrigin(request)) return fail(403, "forbidden", "Cross-origin request refused.");
    const body = await request.json().catch(() => null);
    if (!body || typeof body.code !== "string" || typeof body.codeVerifier !== "string" || typeof body.redirectUri !== "string") {
      return fail(400, "invalid_request", "Expected JSON { code, codeVerifier, redirectUri }.");
    }
    if (new URL(body.redirectUri, request.url).origin !== new URL(request.url).origin) {
      return fail(400, "invalid_request", "redirectUri must be on this site.");
    }
    const sid = newSessionId();
    const qflow = clientFor(env, sid);
    try {
      await qflow.exchangeCode({ code: body.code, codeVerifier: body.codeVerifier, redirectUri: body.redirectUri });
    } catch (e) {
      clients.delete(sid);
      if (!(e instanceof AuthError)) throw e;
      const message =
        e.code === "invalid_grant"
          ? "This sign-in could not be completed: the code was already used, has expired, or does not match this browser's request. Sign in again."
          : e.message;
      return json({ code: e.code, message, hint: e.hint, retryable: e.retryable }, e.retryable ? 503 : 400);
    }
    return json({ signedIn: true }, 200, { "set-cookie": cookie(request, sid, SESSION_TTL_S) });
  },

  async "POST /auth/logout"(request, env) {
    if (!sameOrigin(request)) return fail(403, "forbidden", "Cross-origin request refused.");
    const sid = sessionId(request);
    if (sid) await endSession(env, sid);
    return json({ signedIn: false }, 200, { "set-cookie": cookie(request, "", 0) });
  },

  /** Comms access for an event, in words the page can show. */
  async "GET /api/comms-access"(request, env) {
    const s = await session(request, env);
    if (!s) return fail(401, "no_session", "Not signed in.");
    try {
      return json(await s.qflow.commsAccess(new URL(request.url).searchParams.get("eventId") ?? ""));
    } catch (e) {
      return sessionFailure(env, s, e);
    }
  },
};

/** `/api/{Qflow API path}` → the Qflow API, if the method + path are on the allow-list. */
async function proxy(request, env) {
  const url = new URL(request.url);
  const path = url.pathname.slice("/api".length);
  if (!ALLOW.some(([m, p]) => m === request.method && (path === p || path.startsWith(p + "/")))) {
    return fail(404, "not_allowed", "This API path is not available through the demo.");
  }
  if (request.method !== "GET" && !sameOrigin(request)) return fail(403, "forbidden", "Cross-origin request refused.");
  const s = await session(request, env);
  if (!s) return fail(401, "no_session", "Not signed in.");
  try {
    const upstream = await s.qflow.fetch(path + url.search, {
      method: request.method,
      headers: { accept: "application/json", "content-type": request.headers.get("content-type") ?? "application/json" },
      body: request.method === "GET" ? undefined : await request.text(),
    });
    // Only the body and its type go back: no upstream cookies or auth-related headers.
    return new Response(upstream.body, {
      status: upstream.status,
      headers: { "content-type": upstream.headers.get("content-type") ?? "application/octet-stream", "cache-control": "no-store" },
    });
  } catch (e) {
    return sessionFailure(env, s, e);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const route = routes[`${request.method} ${url.pathname}`];
    if (route) return route(request, env);
    if (url.pathname.startsWith("/api/")) return proxy(request, env);
    if (url.pathname.startsWith("/auth/")) return fail(404, "not_found", "No such endpoint.");
    // Everything else is the static page (www/public + the package's browser build).
    return env.ASSETS ? env.ASSETS.fetch(request) : new Response("Not found", { status: 404 });
  },
};
