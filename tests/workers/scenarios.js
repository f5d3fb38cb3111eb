// Runs one shared scenario inside workerd: POST /run/{suite}/{index}. The package is imported by
// name, as a user's worker does; assertions use workerd's own node:assert (nodejs_compat).
import assert from "node:assert/strict";
import * as qauth from "qauth";
import * as hono from "qauth/hono";
import qflow from "../scenarios/qflow.mjs";
import qpien from "../scenarios/qpien.mjs";
import hardening from "../scenarios/hardening.mjs";
import { emulatorClient } from "../scenarios/common.mjs";

const suites = { qflow, qpien, hardening };

export default {
  async fetch(request, env) {
    const [, run, suite, index] = new URL(request.url).pathname.split("/");
    const scenario = run === "run" && suites[suite]?.[Number(index)];
    if (!scenario) return new Response("no such scenario", { status: 404 });
    try {
      const result = await scenario.run({ qauth, hono, emu: emulatorClient(env.EMULATOR), assert });
      return Response.json({ ok: true, result });
    } catch (e) {
      return Response.json({ ok: false, error: String(e?.stack ?? e) });
    }
  },
};
