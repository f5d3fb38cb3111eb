// Every Qflow, Qpien and hardening scenario that runs in Node, run again inside real workerd (Miniflare):
// same package, same emulator, same assertions, one request per scenario.
import { test, before, after } from "node:test";
import { join } from "node:path";
import qflow from "../scenarios/qflow.mjs";
import qpien from "../scenarios/qpien.mjs";
import hardening from "../scenarios/hardening.mjs";
import { startEmulator, startWorker, ROOT } from "./helpers.mjs";

let emu, worker;
before(async () => {
  emu = await startEmulator();
  worker = await startWorker(join(ROOT, "tests/workers/scenarios.js"), { bindings: { EMULATOR: emu.url } });
});
after(async () => {
  await worker?.stop();
  await emu?.stop();
});

for (const [suite, list] of Object.entries({ qflow, qpien, hardening })) {
  list.forEach((s, i) => {
    test(`workerd ${suite}: ${s.name}`, async () => {
      const r = await worker.call(`/run/${suite}/${i}`, { method: "POST" });
      const result = r.json();
      if (!result.ok) throw new Error(result.error);
      const m = result.result?.matrix;
      if (m) console.log(`workerd matrix: ${m.calls} calls, ${m.typedErrors} typed errors`);
    });
  });
}
