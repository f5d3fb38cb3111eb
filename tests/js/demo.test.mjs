// Runs the README's demo command and checks the page it serves, and that no secret reaches it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { ROOT, assertNoCanary } from "./helpers.mjs";

test("make demo: emulator + worker in workerd serve a page with API data and no secret", async () => {
  const child = spawn("node", ["www/serve.mjs"], { cwd: ROOT, env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "inherit"], detached: false });
  try {
    let out = "";
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("demo did not start: " + out)), 60_000);
      child.on("exit", (c) => reject(new Error(`demo exited (${c}): ${out}`)));
      child.stdout.on("data", (d) => {
        const m = (out += d).match(/open (http:\/\/127\.0\.0\.1:\d+\/)[\s\S]*stop with Ctrl-C/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
    });
    assert.match(out, /demo user: 4471\/joe.bloggs@example.com/);
    const r = await fetch(url);
    assert.equal(r.status, 200);
    const html = await r.text();
    assert.match(html, /Spring conference/);
    assert.match(html, /Comms API access is enabled/);
    assertNoCanary(assert, html, "the demo page");
    const s = await fetch(url + "api/status").then((r) => r.text());
    assertNoCanary(assert, s, "the demo status JSON");
  } finally {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
});
