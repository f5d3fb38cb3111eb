// Node-side test helpers: the harness (emulator, workers in workerd) plus running the shared
// scenarios as node:test tests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEmulator } from "./harness.mjs";

export * from "./harness.mjs";

/** Registers each scenario as a node:test test, run here in Node against one emulator. */
export function runInNode(scenarios, qauth) {
  let emu;
  before(async () => (emu = await startEmulator()));
  after(() => emu.stop());
  for (const s of scenarios) test(s.name, () => s.run({ qauth, emu, assert }));
}

