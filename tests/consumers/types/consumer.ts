// Every option and method of the package's types, under `strict`, as a Workers project writes
// them; the `@ts-expect-error` lines are mistakes the types must catch (tsc fails on an unused one).
import { QflowAuth, QpienAuth, AuthError, beginAuthorization, completeAuthorization } from "qauth";
import type { QauthEvent, AuthErrorCode, QflowAuthOptions, TokenStore, QflowHeaders } from "qauth";
import { qflowProxy, relayBody, proxyPath } from "qauth/hono";
import { Hono } from "hono";

declare const env: { TOKENS: KVNamespace; TOKEN_BROKER: DurableObjectNamespace; SECRET: string };

const onEvent = (e: QauthEvent): void => {
  switch (e.type) {
    case "retry": {
      const code: AuthErrorCode = e.code;
      const n: number = e.attempt + e.delayMs;
      // @ts-expect-error a retry's code is an error code, not any string
      if (e.code === "not_a_code") console.log(code, n);
      break;
    }
    case "token_acquired":
    case "token_refreshed": {
      const grant: "password" | "authorization_code" | "generateOAuthToken" | "broker" | "refresh_token" = e.grant;
      console.log(grant, e.ms, e.expiresIn);
      break;
    }
    case "expiry_assumed":
      console.log(e.expiresIn);
      break;
    case "refresh_token_rotated":
    case "fallback_to_password":
      // @ts-expect-error these events have no fields
      console.log(e.ms);
      break;
  }
};

const store: TokenStore = env.TOKENS; // a KV namespace is a store as it is
const options: QflowAuthOptions = {
  clientId: "id",
  clientSecret: env.SECRET,
  subscriptionKey: env.SECRET,
  username: "4471/joe.bloggs@example.com",
  password: env.SECRET,
  refreshToken: env.SECRET,
  scope: "qflowapi openid offline_access",
  identityUrl: "https://identity.qflowhub.io",
  apiUrl: "https://api.qflowhub.io",
  store,
  storeKey: "qauth:joe",
  refreshSkewSeconds: 60,
  timeoutMs: 10_000,
  onEvent,
};
const qflow = new QflowAuth(options);
const brokered = new QflowAuth({ clientId: "id", clientSecret: env.SECRET, subscriptionKey: env.SECRET, broker: env.TOKEN_BROKER, storeKey: "session:abc" });
// A refresh-only deployment: a username without a password.
new QflowAuth({ clientId: "id", clientSecret: env.SECRET, subscriptionKey: env.SECRET, username: "joe@example.com", store });

// @ts-expect-error a password without a username
new QflowAuth({ clientId: "id", clientSecret: env.SECRET, subscriptionKey: env.SECRET, password: env.SECRET });
// @ts-expect-error an unknown option (the runtime says "did you mean `scope`?")
new QflowAuth({ clientId: "id", clientSecret: env.SECRET, subscriptionKey: env.SECRET, scopes: "x" });
// @ts-expect-error subscriptionKey is required
new QflowAuth({ clientId: "id", clientSecret: env.SECRET });

export async function qflowCalls(request: Request): Promise<Response> {
  const h: QflowHeaders = await qflow.headers();
  const bearer: string = h.Authorization + h["Ocp-Apim-Subscription-Key"];
  // @ts-expect-error the headers are frozen
  h.Authorization = "x";
  const token: string = await qflow.accessToken();
  const access = await qflow.commsAccess("evt-1");
  if (!access.enabled) {
    const reason: "comms_api_not_enabled" = access.reason;
    console.log(reason);
  }
  await qflow.exchangeCode({ code: "c", codeVerifier: "v".repeat(43), redirectUri: "https://app.example/cb" });
  // @ts-expect-error exchangeCode needs the verifier and the redirect URI
  await qflow.exchangeCode({ code: "c" });
  const forwarded: Request = await qflow.authorizeRequest(request);
  qflow.invalidate();
  brokered.free();
  console.log(bearer, token, forwarded.url);
  return qflow.fetch("/checkin/v1/api/events", { method: "GET" });
}

export async function qpienCalls(): Promise<string> {
  using qpien = new QpienAuth({ clientId: "id", clientSecret: env.SECRET, endpoint: "https://api.qpien.example/graphql", broker: env.TOKEN_BROKER, refreshSkewSeconds: 30, timeoutMs: 5000, onEvent });
  const data = await qpien.graphql("query Viewer { viewer { id } }", { first: 1 }, { operationName: "Viewer" });
  // @ts-expect-error graphql() resolves to `unknown` until the caller names its type
  console.log(data.viewer);
  const typed = await qpien.graphql<{ viewer: { id: string } }>("query Viewer { viewer { id } }");
  const h: { readonly Authorization: string } = await qpien.headers();
  qpien.invalidate();
  return typed.viewer.id + h.Authorization + (await qpien.accessToken());
}

export async function signIn(): Promise<string> {
  const { url, state, codeVerifier } = await beginAuthorization({ clientId: "id", redirectUri: "https://app.example/cb", identityUrl: "https://identity.qflowhub.io", scope: "openid" });
  const { code } = completeAuthorization(new URL(url), { state });
  // @ts-expect-error completeAuthorization takes the expected state
  completeAuthorization(url);
  return code + codeVerifier;
}

export function errors(e: unknown): string | undefined {
  if (!(e instanceof AuthError)) return undefined;
  const j = e.toJSON();
  const all: [AuthErrorCode, string, string, boolean, number | undefined, number | undefined, string[] | undefined, unknown] = [
    j.code, j.message, j.hint, j.retryable, j.status, j.retryAfter, j.messages, j.data,
  ];
  // @ts-expect-error an error code is one of the documented ones
  const wrong: AuthErrorCode = "forbidden";
  if (e.code === "wasm_load_failed" || e.code === "invalid_config") return e.hint;
  return String(all) + wrong;
}

const app = new Hono<{ Bindings: typeof env }>();
app.use("/qflow/*", qflowProxy({ auth: qflow, prefix: "/qflow", allow: ["GET /checkin/v1/api/events", "POST /checkin/v1/api/event"] }));
// A proxy of one's own: the path rule and what of an answer may go on.
export async function ownProxy(request: Request): Promise<Response> {
  const where = proxyPath(request.url, "/api");
  if (!where) return new Response(null, { status: 404 });
  const upstream = await qflow.fetch(where.encoded);
  const relayed = await relayBody(qflow, upstream);
  return relayed ? new Response(relayed.body, { status: upstream.status }) : new Response(null, { status: 502 });
}
// @ts-expect-error the allow-list is required: never an open proxy
qflowProxy({ auth: qflow, prefix: "/qflow" });
// @ts-expect-error the allow-list is not empty
qflowProxy({ auth: qflow, allow: [] });
// @ts-expect-error entries are "METHOD /path"
qflowProxy({ auth: qflow, allow: ["/checkin"] });
export default app;
