// Demo worker (runs in workerd): gets a Qflow token with qauth, calls the API, and shows what it
// did. Secrets stay here; the page only ever sees redacted headers and API data.
import { QflowAuth, AuthError } from "qauth";

let qflow;
const client = (env) =>
  (qflow ??= new QflowAuth({
    clientId: env.QFLOW_CLIENT_ID,
    clientSecret: env.QFLOW_CLIENT_SECRET,
    subscriptionKey: env.QFLOW_SUBSCRIPTION_KEY,
    username: env.QFLOW_USERNAME,
    password: env.QFLOW_PASSWORD,
    identityUrl: env.QFLOW_IDENTITY_URL,
    apiUrl: env.QFLOW_API_URL,
    store: env.TOKENS,
  }));

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const redact = (v) => `${v.slice(0, v.indexOf(" ") + 1)}… (${v.length} characters, kept in the worker)`;

async function status(env) {
  const auth = client(env);
  const t0 = Date.now();
  const h = await auth.headers();
  const ms = Date.now() - t0;
  const events = await (await auth.fetch("/checkin/v1/api/events")).json();
  const comms = await auth.commsAccess("evt-100");
  return { ms, headers: { Authorization: redact(h.Authorization), "Ocp-Apim-Subscription-Key": redact("… " + h["Ocp-Apim-Subscription-Key"]) }, events, comms };
}

function page(s) {
  const rows = s.events.events.map((e) => `<li>${esc(e.name)} <small>(${esc(e.id)})</small></li>`).join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>qauth demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.5}code{background:#f3f3f3;padding:0 .2rem}dt{font-weight:600}</style></head>
<body><h1>qauth demo</h1>
<p>This page is served by a Cloudflare Worker running in <strong>workerd</strong>. The worker got a Qflow access token from the local identity-server emulator with <code>QflowAuth</code> (${s.ms} ms for <code>headers()</code> on this request) and called the API gateway with both headers.</p>
<h2>Headers the worker built</h2><dl>${Object.entries(s.headers).map(([k, v]) => `<dt>${esc(k)}</dt><dd><code>${esc(v)}</code></dd>`).join("")}</dl>
<h2>API call: <code>GET /checkin/v1/api/events</code></h2><p id="user">Signed in as ${esc(s.events.user)}</p><ul id="events">${rows}</ul>
<h2>Comms access</h2><p id="comms">${s.comms.enabled ? "Comms API access is enabled for this account." : "Comms API access is not enabled for this account: request it from Qflow support."}</p>
</body></html>`;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/api/status") return Response.json(await status(env));
      if (url.pathname === "/") return new Response(page(await status(env)), { headers: { "content-type": "text/html; charset=utf-8" } });
      return new Response("Not found", { status: 404 });
    } catch (e) {
      const body = e instanceof AuthError ? { code: e.code, message: e.message, hint: e.hint } : { code: "internal", message: "unexpected error" };
      return Response.json(body, { status: 502 });
    }
  },
};
