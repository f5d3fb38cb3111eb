// The demo under `wrangler dev` (wrangler 4.86.0, a devDependency; the newest that runs on Node 20),
// offline: www/wrangler.toml as is except for where the assets are (a temporary copy, so this
// file can run alongside demo.test.mjs) and the emulator's URL (`--var`, chosen at run time);
// secrets from www/.dev.vars.example. Signs in through Chromium and checks the TokenBroker binding,
// the page's CSP and sign-out.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, prepareDemoAssets, launchChromium, CREDS, ROOT } from "./helpers.mjs";

let emu, dir, wrangler, url, browser;
const log = [];

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

before(async () => {
  emu = await startEmulator();
  dir = mkdtempSync(join(tmpdir(), "qauth-wrangler-"));
  prepareDemoAssets(join(dir, "public"));
  const toml = readFileSync(join(ROOT, "www/wrangler.toml"), "utf8")
    .replace(/^main = .*$/m, `main = ${JSON.stringify(join(ROOT, "www/worker.js"))}`)
    .replace(/^directory = .*$/m, `directory = ${JSON.stringify(join(dir, "public"))}`);
  assert.match(toml, /class_name = "TokenBroker"/);
  assert.match(toml, /run_worker_first = true/);
  writeFileSync(join(dir, "wrangler.toml"), toml);
  const port = await freePort();
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1", CI: "1" };
  // wrangler resolves `import "qauth"` from the repository's node_modules (cwd = ROOT).
  wrangler = spawn(
    join(ROOT, "node_modules/.bin/wrangler"),
    [
      "dev", "--config", join(dir, "wrangler.toml"), "--local", "--ip", "127.0.0.1", "--port", String(port),
      "--persist-to", join(dir, "state"), "--env-file", join(ROOT, "www/.dev.vars.example"),
      "--var", `QFLOW_IDENTITY_URL:${emu.url}`, "--var", `QFLOW_API_URL:${emu.url}`,
      "--show-interactive-dev-session=false",
    ],
    { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let out = "";
  url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("wrangler dev was not ready in 60 s: " + out)), 60_000);
    wrangler.on("exit", (c) => reject(new Error(`wrangler exited (${c}): ${out}`)));
    const onData = (d) => {
      out += d;
      if (/Ready on http:\/\/127\.0\.0\.1:\d+/.test(out)) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${port}/`);
      }
    };
    wrangler.stdout.on("data", onData);
    wrangler.stderr.on("data", onData);
  });
  log.push(out);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (wrangler?.exitCode === null) {
    process.kill(-wrangler.pid, "SIGTERM");
    await once(wrangler, "exit");
  }
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("wrangler dev (offline, www/wrangler.toml): sign in through Chromium, API data through the broker, CSP on the page, sign out", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const violations = [];
  page.on("console", (m) => /Content.Security.Policy|Refused to/i.test(m.text()) && violations.push(m.text()));
  try {
    const first = await page.goto(url);
    assert.match(first.headers()["content-security-policy"], /script-src 'self' 'wasm-unsafe-eval' 'sha256-/);
    assert.equal(first.headers()["x-content-type-options"], "nosniff");
    await page.waitForSelector("body[data-ready=true]");
    await page.click("#sign-in");
    await page.waitForURL((u) => u.href.startsWith(emu.url + "/core/connect/authorize"));
    await page.fill("#username", CREDS.joe.username);
    await page.fill("#password", CREDS.joe.password);
    await page.click("#allow");
    await page.waitForURL((u) => u.href.startsWith(url));
    await page.waitForSelector("body[data-ready=true]");
    assert.equal(await page.locator("#signed-in").isVisible(), true, await page.content());
    assert.match(await page.locator("#events").innerText(), /Spring conference/);
    assert.deepEqual(violations, []);
    const s = await emu.stats();
    assert.equal(s.token.authorization_code, 1);
    assert.equal(s.token.invalidGrant, 0);
    await page.click("#sign-out");
    await page.waitForSelector("#signed-out:not([hidden])");
    const r = await page.evaluate(() => fetch("/api/checkin/v1/api/events").then((x) => x.status));
    assert.equal(r, 401);
  } finally {
    await context.close();
  }
});
