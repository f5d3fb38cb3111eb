// Next.js edge middleware (the `edge-light` condition), as a user writes it: one QflowAuth per
// isolate, an API call through it for /qflow/*.
import { QflowAuth, AuthError } from "qauth";

let qflow;
export async function middleware() {
  const env = process.env;
  qflow ??= new QflowAuth({
    clientId: env.QFLOW_CLIENT_ID, clientSecret: env.QFLOW_CLIENT_SECRET, subscriptionKey: env.QFLOW_SUBSCRIPTION_KEY,
    username: env.QFLOW_USERNAME, password: env.QFLOW_PASSWORD, identityUrl: env.EMULATOR, apiUrl: env.EMULATOR,
  });
  try {
    const upstream = await qflow.fetch("/checkin/v1/api/events");
    const runtime = typeof EdgeRuntime === "string" ? EdgeRuntime : "not edge";
    return new Response(upstream.body, { status: upstream.status, headers: { "content-type": "application/json", "x-runtime": runtime } });
  } catch (e) {
    return Response.json({ error: e instanceof AuthError ? e.code : String(e) }, { status: 500 });
  }
}

export const config = { matcher: "/qflow/:path*" };
