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


/**
 * For the file's tests: one emulator, and every uncaught exception or unhandled rejection the
 * process sees collected in `stray` (a test asserts it stays empty). `ready(emu)` is called with
 * the emulator once it runs.
 */
export function emulatorWatchingStrays(ready) {
  let emu;
  const stray = [];
  const onUncaught = (e) => stray.push(`uncaughtException: ${e?.stack ?? String(e)}`);
  const onUnhandled = (e) => stray.push(`unhandledRejection: ${e?.stack ?? String(e)}`);
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUnhandled);
  before(async () => ready((emu = await startEmulator())));
  after(async () => {
    await emu.stop();
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUnhandled);
  });
  return stray;
}

/** Debian Chromium for the end-to-end tests, with the flags that keep it off the network. */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-domain-reliability", "--disable-sync", "--no-first-run", "--metrics-recording-only"],
  });
}
