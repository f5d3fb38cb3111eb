// One user Worker of several (each Miniflare worker is its own isolate), all bound to one
// TokenBroker namespace. Module-level clients are per isolate, as in production.
import { QflowAuth, QpienAuth, AuthError } from "qauth";

let qflow, qflowKv, qpien;

const qflowOptions = (env, extra) => ({
  clientId: env.QFLOW_CLIENT_ID,
  clientSecret: env.QFLOW_CLIENT_SECRET,
  subscriptionKey: env.QFLOW_SUBSCRIPTION_KEY,
  username: env.QFLOW_USERNAME,
  password: env.QFLOW_PASSWORD,
  identityUrl: env.IDENTITY_URL ?? env.EMULATOR,
  apiUrl: env.EMULATOR,
  ...extra,
});

function client(env, mode) {
  if (mode === "kv") return (qflowKv ??= new QflowAuth(qflowOptions(env, { store: env.TOKENS, storeKey: "kv-only" })));
  return (qflow ??= new QflowAuth(qflowOptions(env, { broker: env.TOKEN_BROKER })));
}

/** Which token this is, without the token: its SHA-256's first 4 bytes in hex. */
const fingerprint = async (t) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(t)))].slice(0, 4).map((b) => b.toString(16).padStart(2, "0")).join("");

const describe = (e) => (e instanceof AuthError ? { code: e.code, message: e.message, retryable: e.retryable, isAuthError: true } : { code: "not_auth_error", message: String(e) });

/** API calls in `concurrency` loops for `ms`: counts of statuses and error codes. */
async function load(env, mode, ms, concurrency) {
  const c = client(env, mode);
  const statuses = {};
  const errors = {};
  let calls = 0;
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        calls++;
        try {
          const r = await c.fetch("/checkin/v1/api/events");
          await r.arrayBuffer();
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        } catch (e) {
          const code = describe(e).code;
          errors[code] = (errors[code] ?? 0) + 1;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }),
  );
  return { calls, statuses, errors };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const q = (k) => url.searchParams.get(k);
    try {
      switch (url.pathname) {
        case "/load":
          return Response.json(await load(env, q("mode"), Number(q("ms")), Number(q("concurrency"))));
        case "/headers": {
          const h = await client(env, "broker").headers();
          return Response.json({ bearer: h.Authorization.startsWith("Bearer "), key: h["Ocp-Apim-Subscription-Key"] === env.QFLOW_SUBSCRIPTION_KEY });
        }
        case "/exchange": {
          // A refresh-only client (no password) seeded by an authorization code, through the broker.
          const c = new QflowAuth(qflowOptions(env, { password: undefined, broker: env.TOKEN_BROKER, storeKey: "signed-in" }));
          try {
            await c.exchangeCode({ code: q("code"), codeVerifier: q("verifier"), redirectUri: q("redirect") });
          } catch (e) {
            return Response.json({ ok: false, ...describe(e) });
          }
          return Response.json({ ok: (await c.headers()).Authorization.startsWith("Bearer ") });
        }
        case "/lease-directly": {
          // Code holding the binding leases the "signed-in" object itself, with options of its own.
          const storeKey = q("key") ?? "signed-in";
          const name = `qflow|${env.EMULATOR}|${env.QFLOW_CLIENT_ID}|${storeKey}|`;
          const ns = q("ns") === "flaky" ? env.FLAKY : env.TOKEN_BROKER;
          const id = ns.idFromName(name);
          // `byId`: by its ID string, as code that stored the ID would (the object is not told its name).
          const stub = ns.get(q("byId") ? ns.idFromString(id.toString()) : id);
          if (q("arm")) return Response.json({ armed: await stub.armFailure(["hang", "access"].includes(q("arm")) ? q("arm") : "fail") });
          const options = { clientId: env.QFLOW_CLIENT_ID, clientSecret: q("secret") ?? env.QFLOW_CLIENT_SECRET, identityUrl: q("identity"), storeKey, username: env.QFLOW_USERNAME };
          if (q("password")) options.password = env.QFLOW_PASSWORD;
          if (q("timeout")) options.timeoutMs = Number(q("timeout"));
          if (q("end")) return Response.json(await stub.end());
          const request = { name: q("claim") ?? name, provider: "qflow", options, stale: Number(q("stale")) };
          if (q("code")) request.exchange = { code: q("code"), codeVerifier: q("verifier"), redirectUri: q("redirect") };
          const r = await stub.lease(request);
          // `fp`: which token (see `fingerprint`).
          if (r.token) return Response.json(q("fp") ? { token: true, fp: await fingerprint(r.token.accessToken), g: r.token.generation } : { token: true });
          return Response.json(r);
        }
        case "/flaky-exchange": {
          // An isolate's own client with a cached token; another sign-in through it whose new
          // token the object cannot save: which token does this client hand out then?
          const c = new QflowAuth(qflowOptions(env, { broker: env.FLAKY, storeKey: "flaky-3" }));
          const before = await fingerprint(await c.accessToken());
          const name = `qflow|${env.EMULATOR}|${env.QFLOW_CLIENT_ID}|flaky-3|`;
          await env.FLAKY.get(env.FLAKY.idFromName(name)).armFailure();
          const exchange = await c.exchangeCode({ code: q("code"), codeVerifier: q("verifier"), redirectUri: q("redirect") }).then(() => "ok", (e) => e.code);
          const after = await c.accessToken().then(fingerprint, (e) => e.code);
          return Response.json({ before, exchange, after });
        }
        case "/end-at": {
          // The object for `key` ends itself `in` ms from now (a session's absolute expiry).
          const name = `qflow|${env.EMULATOR}|${env.QFLOW_CLIENT_ID}|${q("key")}|`;
          const stub = env.TOKEN_BROKER.get(env.TOKEN_BROKER.idFromName(name));
          try {
            const bad = { string: "soon", undefined: undefined, null: null, object: {}, nan: NaN };
            return Response.json(await stub.endAt(q("in") in bad ? bad[q("in")] : Date.now() + Number(q("in"))));
          } catch (e) {
            return Response.json({ threw: String(e.message), name: e.name });
          }
        }
        case "/signed-in": {
          const c = new QflowAuth(qflowOptions(env, { password: undefined, broker: env.TOKEN_BROKER, storeKey: "signed-in" }));
          await c.headers();
          c.invalidate(); // reported stale to the broker: it refreshes from the chain the code started
          const r = await c.fetch("/checkin/v1/api/events");
          return Response.json({ status: r.status, user: (await r.json()).user });
        }
        case "/invalidate":
          client(env, "broker").invalidate();
          return Response.json({ ok: true });
        case "/qpien": {
          qpien ??= new QpienAuth({ clientId: env.QPIEN_CLIENT_ID, clientSecret: env.QPIEN_CLIENT_SECRET, endpoint: env.EMULATOR + "/graphql", broker: env.TOKEN_BROKER });
          const n = Number(q("n"));
          const all = await Promise.all(Array.from({ length: n }, () => qpien.graphql("query Viewer { viewer { id } }")));
          return Response.json({ ok: all.every((d) => d.viewer.id === "viewer-1") });
        }
        case "/failure": {
          // A fresh client on a broken broker: the typed error and how long it took.
          const ns = { throwing: env.THROWING, storage: env.FAILING_STORAGE, silent: env.SILENT, down: env.TOKEN_BROKER }[q("kind")];
          const extra = q("kind") === "down" ? { identityUrl: env.DOWN_URL, storeKey: "down-" + Date.now() } : {};
          const c = new QflowAuth(qflowOptions(env, { broker: ns, timeoutMs: 1000, ...extra }));
          const t0 = Date.now();
          try {
            await c.headers();
            return Response.json({ ok: true });
          } catch (e) {
            return Response.json({ ...describe(e), ms: Date.now() - t0, json: JSON.stringify(e) });
          }
        }
      }
      return new Response("not found", { status: 404 });
    } catch (e) {
      return Response.json({ crashed: true, ...describe(e) }, { status: 500 });
    }
  },
};
