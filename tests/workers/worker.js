// A user's worker: imports the package by name and uses it as the README shows.
import { Hono } from "hono";
import { QflowAuth, QpienAuth, AuthError } from "qauth";

const options = (env, extra = {}) => ({
  clientId: env.QFLOW_CLIENT_ID,
  clientSecret: env.QFLOW_CLIENT_SECRET,
  subscriptionKey: env.QFLOW_SUBSCRIPTION_KEY,
  username: env.QFLOW_USERNAME,
  password: env.QFLOW_PASSWORD,
  identityUrl: env.EMULATOR,
  apiUrl: env.EMULATOR,
  store: env.TOKENS,
  ...extra,
});
// One client per isolate: its cache and single-flight are shared by every request.
let qflow;
const client = (env) => (qflow ??= new QflowAuth(options(env)));

const app = new Hono();

// Hono middleware: proxy /qflow/* to the Qflow API with both headers.
app.all("/qflow/*", async (c) => {
  const auth = client(c.env);
  const upstream = new URL(c.req.path.replace(/^\/qflow/, "") + new URL(c.req.url).search, c.env.EMULATOR);
  const request = new Request(upstream, { method: c.req.method, headers: { accept: "application/json" }, body: c.req.raw.body });
  return fetch(await auth.authorizeRequest(request));
});

app.get("/headers", async (c) => {
  const h = await client(c.env).headers();
  return c.json({ authorization: h.Authorization.replace(/ .*/, " …"), subscriptionKeyPresent: h["Ocp-Apim-Subscription-Key"] === c.env.QFLOW_SUBSCRIPTION_KEY });
});

app.get("/concurrent", async (c) => {
  const n = Number(c.req.query("n"));
  const fresh = new QflowAuth(options(c.env, { storeKey: "concurrent-test" }));
  const all = await Promise.all(Array.from({ length: n }, () => fresh.headers()));
  const stored = (await c.env.TOKENS.get("concurrent-test"))?.startsWith("CANARY-rt-") ?? false;
  return c.json({ distinct: new Set(all.map((h) => h.Authorization)).size, stored });
});

app.get("/comms", async (c) => c.json(await client(c.env).commsAccess(c.req.query("eventId"))));

app.get("/bad-config", (c) => {
  try {
    new QflowAuth({ clientSecret: "x", subscriptionKey: "y", identityUrl: "not a url" });
    return c.json({ constructed: true });
  } catch (e) {
    return c.json({ instanceOfAuthError: e instanceof AuthError, code: e.code, namesOption: /clientId/.test(e.message) });
  }
});

app.get("/qpien", async (c) => {
  const q = new QpienAuth({ clientId: c.env.QPIEN_CLIENT_ID, clientSecret: c.env.QPIEN_CLIENT_SECRET, endpoint: c.env.EMULATOR + "/graphql" });
  await q.headers();
  await fetch(c.env.EMULATOR + "/_emulator/expire", { method: "POST" });
  return c.json(await q.graphql("query Viewer { viewer { id } }"));
});

export default app;
