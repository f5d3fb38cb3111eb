// The hardening scenarios in Node, imported from the assembled package, against the emulator.
// The same scenarios run in workerd from workerd-scenarios.test.mjs. Any uncaught exception or
// unhandled rejection while they run fails the run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as qauth from "qauth";
import scenarios from "../scenarios/hardening.mjs";
import { emulatorWatchingStrays } from "./helpers.mjs";

let emu;
const stray = emulatorWatchingStrays((e) => (emu = e));

/** Lets a late rejection or exception surface (unhandledRejection fires after the microtasks). */
const drain = () => new Promise((r) => setTimeout(r, 20));

for (const s of scenarios) {
  test(s.name, async () => {
    const from = stray.length;
    const result = await s.run({ qauth, emu, assert });
    if (result?.matrix) console.log(`matrix: ${result.matrix.calls} calls, ${result.matrix.typedErrors} typed errors`);
    await drain();
    assert.deepEqual(stray.slice(from), [], "an uncaught exception or unhandled rejection");
  });
}

test("no uncaught exception or unhandled rejection during the whole run", async () => {
  await drain();
  assert.deepEqual(stray, []);
});
