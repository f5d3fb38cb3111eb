// Cold-start benchmark worker: on its first request, a QflowAuth from a store seeded with a
// refresh token (binding RT) answers headers().
import { QflowAuth } from "qauth";

export default {
  async fetch(request, env) {
    const store = { get: async () => env.RT, put: async () => {} };
    const q = new QflowAuth({ clientId: env.ID, clientSecret: env.SECRET, subscriptionKey: env.KEY, identityUrl: env.EMU, apiUrl: env.EMU, store, storeKey: "bench" });
    const h = await q.headers();
    return new Response(String(h.Authorization.length));
  },
};
