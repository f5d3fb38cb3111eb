// Cold-start baseline: the same refresh round trip as qauth-worker.js in plain JS `fetch`, so the
// workerd figure shows qauth's own share (a first subrequest costs workerd something of its own).
export default {
  async fetch(request, env) {
    const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: env.RT, client_id: env.ID, client_secret: env.SECRET });
    const r = await fetch(env.EMU + "/core/connect/token", { method: "POST", body });
    // A refused refresh throws, as qauth's worker does: the bench stops on a status that is not OK.
    if (!r.ok) throw new Error("refresh failed: HTTP " + r.status);
    const t = await r.json();
    const h = { Authorization: "Bearer " + t.access_token, "Ocp-Apim-Subscription-Key": env.KEY };
    return new Response(String(h.Authorization.length));
  },
};
