// The package as a user gets it: `npm pack pkg`, installed from the tarball into throw-away
// projects under target/consumers/ (tools such as tsc, Vite, webpack, Next.js and wrangler come
// from the repository's devDependencies), each checked against the emulator where it runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT, startEmulator, startWorker, workerBindings, launchChromium, serveStatic, CREDS, assertNoCanary } from "../js/helpers.mjs";

const DIR = join(ROOT, "target/consumers");
const FIXTURES = join(ROOT, "tests/consumers");
const BIN = join(ROOT, "node_modules/.bin");
const QUIET = { WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false", NEXT_TELEMETRY_DISABLED: "1" };
const env = (extra = {}) => ({ ...process.env, ...QUIET, ...extra });

let emu, browser, tarball;

/** Runs a command to completion; its output on failure is the assertion message. */
function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: env(), timeout: 300_000, ...opts });
  } catch (e) {
    assert.fail(`${cmd} ${args.join(" ")} failed:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** A fresh project folder under target/consumers with the fixture files of `name` copied in. */
function project(name, from = name) {
  const dir = join(DIR, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(FIXTURES, from), dir, { recursive: true });
  return dir;
}

/** Every file under `dir` (relative paths). */
function files(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name), base) : [join(dir, d.name).slice(base.length + 1)]));
}

/** gzip -9 bytes of the JS and wasm a page loads from `dir`. */
function payload(dir) {
  return files(dir)
    .filter((f) => /\.(m?js|wasm)$/.test(f))
    .reduce((n, f) => n + gzipSync(readFileSync(join(dir, f)), { level: 9 }).length, 0);
}

/**
 * Opens the built page in Chromium, clicks "Sign in", signs in at the emulator's form and checks
 * the page completed the redirect (`completeAuthorization` accepted the code and state).
 */
async function signInThrough(pageUrl) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.goto(`${pageUrl}?idp=${encodeURIComponent(emu.url)}`);
    await page.waitForSelector("body[data-ready='1']", { timeout: 20_000 });
    await Promise.all([page.waitForURL((u) => u.href.startsWith(emu.url + "/core/connect/authorize")), page.click("#signin")]);
    const authorize = new URL(page.url());
    assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
    assert.equal(authorize.searchParams.get("client_id"), CREDS.clientId);
    await page.fill("#username", CREDS.joe.username);
    await page.fill("#password", CREDS.joe.password);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(pageUrl)), page.click("#allow")]);
    await page.waitForFunction(() => document.querySelector("#out").textContent !== "", null, { timeout: 20_000 });
    assert.match(await page.textContent("#out"), /^signed-in code-length=\d+$/);
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
  }
}

/** A bundler's output: no secret in it, its payload printed, and the sign-in works from it. */
async function signInFromBuild(bundler, dist) {
  assertNoCanary(assert, files(dist).map((f) => readFileSync(join(dist, f), "utf8")).join("\n"), `the ${bundler} bundle`);
  console.log(`# ${bundler} page payload (JS + wasm, gzip -9): ${payload(dist)} B`);
  const site = await serveStatic(dist);
  try {
    await signInThrough(site.url);
  } finally {
    await site.stop();
  }
}

before(async () => {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const [packed] = JSON.parse(run("npm", ["pack", join(ROOT, "pkg"), "--pack-destination", DIR, "--json", "--loglevel=error"]));
  tarball = packed;
  writeFileSync(join(DIR, "package.json"), JSON.stringify({ private: true, type: "module" }));
  run("npm", ["install", `./${packed.filename}`, "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"], { cwd: DIR });
  emu = await startEmulator();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await emu?.stop();
});

test("tarball: what ships and what does not", () => {
  const names = tarball.files.map((f) => f.path).sort();
  for (const f of ["package.json", "qauth_bg.wasm", "client.js", "error.js", "qauth.d.ts", "hono.js", "hono.d.ts", "edge-light.js", "workerd.js", "node.js", "browser.js", "server.js", "broker.js", "qauth_browser.wasm", "README.md", "LICENSE"]) {
    assert.ok(names.includes(f), `${f} is in the tarball`);
  }
  assert.ok(!names.some((f) => /\.(png|jpe?g|map|rs|toml)$/.test(f)), `no screenshot, map or source in the tarball: ${names}`);
  const pj = JSON.parse(readFileSync(join(DIR, "node_modules/qauth/package.json"), "utf8"));
  assert.equal(pj.type, "module");
  assert.ok(pj.repository && pj.homepage, "repository and homepage");
  assert.match(pj.description, /ESM only/);
  console.log(`# tarball ${tarball.filename}: ${tarball.size} B packed, ${tarball.unpackedSize} B unpacked, ${names.length} files`);
});

for (const resolution of ["bundler", "node16"]) {
  test(`TypeScript strict, ${resolution} resolution, @cloudflare/workers-types: every option and method; the mistakes fail`, () => {
    const dir = project(`types-${resolution}`, "types");
    const module = resolution === "bundler" ? "esnext" : "node16";
    const compilerOptions = { strict: true, noEmit: true, target: "es2022", lib: ["esnext"], module, moduleResolution: resolution, types: ["@cloudflare/workers-types"], skipLibCheck: false };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files: ["consumer.ts"] }));
    run(join(BIN, "tsc"), ["-p", dir]);
  });
}

test("wrangler deploy --dry-run: a Worker with QflowAuth, TokenBroker and qauth/hono bundles; upload size", () => {
  const dir = project("wrangler");
  const out = run(join(BIN, "wrangler"), ["deploy", "--dry-run", "--outdir", "dist"], { cwd: dir });
  const upload = /Total Upload: ([^\n]+)/.exec(out);
  assert.ok(upload, out);
  assert.ok(files(join(dir, "dist")).some((f) => f.endsWith(".wasm")), "the wasm goes up as a module of its own");
  console.log(`# wrangler upload: ${upload[1].trim()}`);
});

test("Vite build: the page signs in through the redirect in Chromium", async () => {
  const dir = project("vite", "page");
  const { build } = await import("vite");
  await build({ root: dir, logLevel: "silent", build: { outDir: join(dir, "dist") } });
  await signInFromBuild("Vite", join(dir, "dist"));
});

test("webpack 5 build: the page signs in through the redirect in Chromium", async () => {
  const dir = project("webpack", "page");
  const { default: webpack } = await import("webpack");
  const dist = join(dir, "dist");
  const stats = await new Promise((resolve, reject) =>
    webpack({ mode: "production", context: dir, entry: "./main.js", output: { path: dist, filename: "main.js" } }, (err, s) => (err ? reject(err) : resolve(s))),
  );
  assert.ok(!stats.hasErrors(), stats.toString("errors-only"));
  assert.ok(!stats.hasWarnings(), stats.toString("errors-warnings"));
  cpSync(join(dir, "index.html"), join(dist, "index.html"));
  await signInFromBuild("webpack", dist);
});

test("esbuild for Node: without the .wasm beside the bundle, the qauth error says what to do; with it, tokens", async () => {
  const dir = project("esbuild");
  const { build } = await import("esbuild");
  const common = { entryPoints: [join(dir, "app.js")], bundle: true, platform: "node", logLevel: "silent" };
  await build({ ...common, format: "esm", outfile: join(dir, "out/app.mjs") });
  await build({ ...common, format: "cjs", outfile: join(dir, "out/app.cjs") });
  const envs = env({ QAUTH_EMULATOR: emu.url, ...workerBindings(emu.url) });
  for (const bundle of ["out/app.mjs", "out/app.cjs"]) {
    const r = await runNode(join(dir, bundle), envs);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /AuthError: qauth \(node entry\) could not load qauth_bg\.wasm/, r.stderr);
    assert.match(r.stderr, /wasm_load_failed/);
    assert.match(r.stderr, /esbuild/, "the message names the bundler setting");
  }
  cpSync(join(DIR, "node_modules/qauth/qauth_bg.wasm"), join(dir, "out/qauth_bg.wasm"));
  const ok = await runNode(join(dir, "out/app.mjs"), envs);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), "Bearer ok");
  await build({ ...common, format: "esm", external: ["qauth"], outfile: join(dir, "ext/app.mjs") });
  const external = await runNode(join(dir, "ext/app.mjs"), envs);
  assert.equal(external.code, 0, external.stderr);
});

/** Runs a script with Node; resolves `{ code, stdout, stderr }`. */
async function runNode(file, envs) {
  const child = spawn(process.execPath, [file], { env: envs, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const [code] = await once(child, "exit");
  return { code, stdout, stderr };
}

/** The fenced block after `<!-- snippet: name -->` in the package README: snippets run as written. */
function snippet(name) {
  const readme = readFileSync(join(DIR, "node_modules/qauth/README.md"), "utf8");
  const m = new RegExp(`<!-- snippet: ${name} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(readme);
  assert.ok(m, `README snippet ${name}`);
  return m[1];
}

/** The calls both Hono runs make: query and body intact, nothing off the allow-list. */
async function proxyChecks(call) {
  await emu.control("reset");
  // The identity server refuses the first grant, echoing the request (secrets included): the
  // public caller gets the code only, never the server's words.
  await emu.faults({ kind: "echo" });
  const refused = await call("/qflow/checkin/v1/api/events");
  assert.equal(refused.status, 502, refused.text);
  assert.deepEqual(JSON.parse(refused.text), { error: "invalid_request" });
  const refusedGrants = (await emu.stats()).token.total;
  const events = await call("/qflow/checkin/v1/api/events");
  assert.equal(events.status, 200, events.text);
  assert.equal(JSON.parse(events.text).user, CREDS.joe.username);
  const created = await call("/qflow/checkin/v1/api/event", { method: "POST", headers: { "content-type": "application/json", cookie: "sid=CANARY-cookie" }, body: JSON.stringify({ name: "Launch" }) });
  assert.equal(created.status, 201, created.text);
  assert.equal(JSON.parse(created.text).name, "Launch");
  for (const [method, path] of [
    ["DELETE", "/qflow/checkin/v1/api/events"],
    ["GET", "/qflow/checkin/v1/api/eventsX"],
    ["GET", "/qflow/checkin/v1/api/events/..%2f..%2fcomms/v1/api/comms/send"],
    ["GET", "/qflow/checkin/v1/api/events/%2e%2e/x"],
    ["GET", "/qflow/comms/v1/api/comms/send"],
  ]) {
    const r = await call(path, { method });
    assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
    assert.equal(JSON.parse(r.text).error, "not_allowed");
  }
  assertNoCanary(assert, JSON.stringify(await emu.stats()), "the emulator stats");
  assert.equal((await emu.stats()).token.total - refusedGrants, 1, "one grant for all the calls");
}

test("qauth/hono in workerd: the README's Workers snippet as written, against the emulator", async () => {
  const dir = project("hono-workers", "hono");
  writeFileSync(join(dir, "app.js"), snippet("hono-workers"));
  const b = workerBindings(emu.url);
  const worker = await startWorker(join(dir, "app.js"), { bindings: { ...b, QFLOW_IDENTITY_URL: emu.url, QFLOW_API_URL: emu.url } });
  try {
    await proxyChecks(async (path, init) => worker.call(path, init));
  } finally {
    await worker.stop();
  }
});

test("qauth/hono on Node (@hono/node-server): the README's Node snippet as written, streamed bodies", async () => {
  const dir = project("hono-node", "hono");
  writeFileSync(join(dir, "app.mjs"), snippet("hono-node"));
  const b = workerBindings(emu.url);
  const child = spawn(process.execPath, [join(dir, "app.mjs")], { env: env({ ...b, QFLOW_IDENTITY_URL: emu.url, QFLOW_API_URL: emu.url, PORT: "0" }), stdio: ["ignore", "pipe", "inherit"] });
  try {
    let out = "";
    const base = await new Promise((resolve, reject) => {
      child.on("exit", (c) => reject(new Error(`the Node snippet exited (${c})`)));
      child.stdout.on("data", (d) => {
        out += d;
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolve(m[1]);
      });
    });
    await proxyChecks(async (path, init) => {
      const r = await fetch(base + path, init);
      return { status: r.status, text: await r.text() };
    });
  } finally {
    child.kill("SIGTERM");
  }
});

/** Waits for `next start` to print its URL; resolves the base URL. */
async function started(child) {
  let out = "";
  return new Promise((resolve, reject) => {
    child.on("exit", (c) => reject(new Error(`next start exited (${c}): ${out}`)));
    child.stdout.on("data", (d) => {
      out += d;
      if (/Ready in/.test(out)) resolve();
    });
  });
}

for (const bundler of ["turbopack", "webpack"]) {
  test(`Next.js edge middleware (next build${bundler === "webpack" ? " --webpack" : ""} + next start): requests are served through qauth`, async () => {
    const dir = project(`next-${bundler}`, "next");
    const next = join(BIN, "next");
    const out = run(next, ["build", ...(bundler === "webpack" ? ["--webpack"] : [])], { cwd: dir });
    assert.doesNotMatch(out, /topLevelAwait|top-level await/i, "no top-level await warning");
    const manifest = JSON.parse(readFileSync(join(dir, ".next/server/middleware-manifest.json"), "utf8"));
    assert.ok(Object.values(manifest.middleware).some((m) => m.wasm?.length > 0), "the middleware carries qauth's wasm as a module");
    const port = await freePort();
    const child = spawn(next, ["start", "-p", String(port), "-H", "127.0.0.1"], { cwd: dir, env: env(workerBindings(emu.url)), stdio: ["ignore", "pipe", "pipe"] });
    try {
      await started(child);
      await emu.control("reset");
      const r = await fetch(`http://127.0.0.1:${port}/qflow/events`);
      const text = await r.text();
      assert.equal(r.status, 200, text);
      assert.equal(r.headers.get("x-runtime"), "edge-runtime");
      assert.equal(JSON.parse(text).user, CREDS.joe.username);
      const again = await fetch(`http://127.0.0.1:${port}/qflow/events`);
      assert.equal(again.status, 200);
      await again.text();
      assert.equal((await emu.stats()).token.total, 1, "the token is cached across requests");
    } finally {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
    }
  });
}

/** A port free on 127.0.0.1 right now (for servers that cannot report the one they took). */
async function freePort() {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test("qauth/hono: an API redirect is 502, never relayed; only body and caching headers come back", async () => {
  const { Hono } = await import("hono");
  const { qflowProxy } = await import(join(DIR, "node_modules/qauth/hono.js"));
  const { QflowAuth } = await import(join(DIR, "node_modules/qauth/node.js"));
  const b = workerBindings(emu.url);
  const auth = new QflowAuth({ clientId: b.QFLOW_CLIENT_ID, clientSecret: b.QFLOW_CLIENT_SECRET, subscriptionKey: b.QFLOW_SUBSCRIPTION_KEY, username: b.QFLOW_USERNAME, password: b.QFLOW_PASSWORD, identityUrl: emu.url, apiUrl: emu.url });
  const app = new Hono();
  app.use("/q/*", qflowProxy({ auth, prefix: "/q", allow: ["GET /checkin/v1/api/redirect", "GET /checkin/v1/api/events"] }));
  await emu.control("reset");
  const moved = await app.request("/q/checkin/v1/api/redirect");
  assert.equal(moved.status, 502);
  assert.equal(moved.headers.get("location"), null);
  assert.deepEqual(await moved.json(), { error: "bad_response" });
  const ok = await app.request("/q/checkin/v1/api/events", { headers: { cookie: "sid=CANARY-cookie", authorization: "Bearer CANARY-caller" } });
  assert.equal(ok.status, 200);
  assert.deepEqual([...ok.headers.keys()].filter((k) => !["content-type", "cache-control", "vary"].includes(k)), [], "only allow-listed headers");
  assert.equal((await ok.json()).user, CREDS.joe.username);
  auth.free();
});

test("qauth/hono: an API error goes back only when it holds no credential; an echo of the headers qauth sent is withheld", async () => {
  const { Hono } = await import("hono");
  const { qflowProxy, relayBody } = await import(join(DIR, "node_modules/qauth/hono.js"));
  const { QflowAuth } = await import(join(DIR, "node_modules/qauth/node.js"));
  const b = workerBindings(emu.url);
  const auth = new QflowAuth({ clientId: b.QFLOW_CLIENT_ID, clientSecret: b.QFLOW_CLIENT_SECRET, subscriptionKey: b.QFLOW_SUBSCRIPTION_KEY, username: b.QFLOW_USERNAME, password: b.QFLOW_PASSWORD, identityUrl: emu.url, apiUrl: emu.url });
  const app = new Hono();
  app.use("/q/*", qflowProxy({ auth, prefix: "/q", allow: ["GET /checkin/v1/api"] }));
  await emu.control("reset");
  const apiFaults = (...faults) => fetch(emu.url + "/_emulator/api-faults", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ faults }) });
  // An ordinary error goes back as the API wrote it.
  const missing = await app.request("/q/checkin/v1/api/nope");
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { statusCode: 404, message: "Resource not found" });
  // With it, of its headers only its type (they were not checked) and no-store, and no reason phrase.
  assert.deepEqual([missing.statusText, [...missing.headers.entries()]], ["", [["cache-control", "no-store"], ["content-type", "application/json; charset=utf-8"], ["x-content-type-options", "nosniff"]]]);
  // The gateway repeating the Authorization and subscription key headers: withheld.
  await apiFaults({ kind: "echo403" });
  const echo = await app.request("/q/checkin/v1/api/events");
  const text = await echo.text();
  assert.equal(echo.status, 403);
  assert.equal(JSON.parse(text).error, "withheld");
  assert.ok(!/CANARY/.test(text), text);
  assert.equal((await emu.stats()).apiFaultsServed, 1, "the echo was served");
  // The bearer token alone (what the request carried; the subscription key is not in it).
  await apiFaults({ kind: "echo403bearer" });
  const bearer = await app.request("/q/checkin/v1/api/events");
  const bearerText = await bearer.text();
  assert.deepEqual([bearer.status, JSON.parse(bearerText).error], [403, "withheld"], bearerText);
  assert.ok(!/CANARY/.test(bearerText), bearerText);
  assert.equal((await emu.stats()).apiFaultsServed, 2);
  // A proxy of one's own: fetch()'s answer is checked against the token its request carried,
  // also once that token is dropped; a clone (what its request carried is unknown) is not passed on.
  await apiFaults({ kind: "echo403bearer" });
  const r = await auth.fetch("/checkin/v1/api/events");
  auth.invalidate();
  assert.equal(await relayBody(auth, r.clone()), null, "a clone");
  assert.equal(await relayBody(auth, r), null, "the echo of a token dropped since");
  const fine = await auth.fetch("/checkin/v1/api/nope");
  assert.deepEqual(JSON.parse((await relayBody(auth, fine)).body), { statusCode: 404, message: "Resource not found" });
  // An error too large to check: withheld too (and not held whole).
  await apiFaults({ kind: "big403", size: 256 * 1024 });
  const big = await app.request("/q/checkin/v1/api/events");
  assert.deepEqual([big.status, (await big.json()).error], [403, "withheld"]);
  // Success bodies stream on as they are.
  const ok = await app.request("/q/checkin/v1/api/events");
  assert.deepEqual([ok.status, (await ok.json()).user], [200, CREDS.joe.username]);
  auth.free();
});

test("qauth/hono: an API answer with a status a Response cannot carry (600+) is 502 bad_response, not a crash", async () => {
  const { Hono } = await import("hono");
  const { qflowProxy } = await import(join(DIR, "node_modules/qauth/hono.js"));
  // An API answering 600 (Node's fetch accepts 600-999).
  const { auth, stop } = await ownApi((req, res) => res.writeHead(600, { "content-type": "application/json" }).end("{}"));
  try {
    const app = new Hono();
    app.use("/q/*", qflowProxy({ auth, prefix: "/q", allow: ["GET /odd"] }));
    const r = await app.request("/q/odd");
    assert.deepEqual([r.status, await r.json()], [502, { error: "bad_response" }]);
  } finally {
    stop();
  }
});

/** An API of `handler`'s on its own port, and a QflowAuth client of it whose tokens come from the emulator. */
async function ownApi(handler) {
  const { QflowAuth } = await import(join(DIR, "node_modules/qauth/node.js"));
  const api = createServer(handler);
  api.listen(0, "127.0.0.1");
  await once(api, "listening");
  const b = workerBindings(emu.url);
  const auth = new QflowAuth({ clientId: b.QFLOW_CLIENT_ID, clientSecret: b.QFLOW_CLIENT_SECRET, subscriptionKey: b.QFLOW_SUBSCRIPTION_KEY, username: b.QFLOW_USERNAME, password: b.QFLOW_PASSWORD, identityUrl: emu.url, apiUrl: `http://127.0.0.1:${api.address().port}` });
  return { auth, key: b.QFLOW_SUBSCRIPTION_KEY, stop: () => (auth.free(), api.close()) };
}

test("qauth/hono: an API answer's headers go back only where they hold no credential (a 304 any caller can ask for, echoing the request)", async () => {
  const { Hono } = await import("hono");
  const { qflowProxy, relayBody } = await import(join(DIR, "node_modules/qauth/hono.js"));
  // An API whose validators echo what the request carried: the bearer token in an ETag and the
  // subscription key in a Link, on a 304 (a conditional request) and on a 200.
  const { auth, key, stop } = await ownApi((req, res) => {
    const echo = { etag: `"${req.headers.authorization}"`, link: `<https://x.invalid/?k=${req.headers["ocp-apim-subscription-key"]}>; rel=debug`, "cache-control": "max-age=60", vary: "accept" };
    if (req.headers["if-none-match"]) return res.writeHead(304, echo).end();
    if (req.url.endsWith("/echo")) return res.writeHead(200, { ...echo, "content-type": "application/json" }).end("{}");
    res.writeHead(200, { etag: 'W/"v1"', "cache-control": "max-age=60", "content-type": "application/json" }).end("{}");
  });
  try {
    const app = new Hono();
    app.use("/q/*", qflowProxy({ auth, prefix: "/q", allow: ["GET /v"] }));
    const token = (await auth.headers()).Authorization.slice("Bearer ".length);
    const leaks = (r) => [...r.headers.values()].some((v) => v.includes(token) || v.includes(key));
    const notModified = await app.request("/q/v/x", { headers: { "if-none-match": '"anything"' } });
    assert.equal(notModified.status, 304);
    assert.ok(!leaks(notModified), JSON.stringify([...notModified.headers]));
    assert.deepEqual([notModified.headers.get("etag"), notModified.headers.get("link"), notModified.headers.get("cache-control"), notModified.headers.get("vary")], [null, null, "max-age=60", "accept"]);
    const echoed = await app.request("/q/v/echo");
    assert.equal(echoed.status, 200);
    assert.ok(!leaks(echoed), JSON.stringify([...echoed.headers]));
    await echoed.text();
    // Headers holding nothing of the kind go back as they are.
    const plain = await app.request("/q/v/x");
    assert.deepEqual([plain.status, plain.headers.get("etag"), plain.headers.get("cache-control")], [200, 'W/"v1"', "max-age=60"]);
    await plain.text();
    // relayBody says the same to a proxy of one's own; a clone (its request unknown) passes no header.
    const own = await relayBody(auth, await auth.fetch("/v/echo"));
    assert.deepEqual([own.checked, own.headers.get("etag"), own.headers.get("cache-control")], [false, null, "max-age=60"]);
    const clone = await relayBody(auth, (await auth.fetch("/v/x")).clone());
    assert.deepEqual([...clone.headers.keys()], []);
  } finally {
    stop();
  }
});

test("qauth/hono: wrong arguments are typed AuthErrors (invalid_config), never a crash or an open proxy", async () => {
  const { qflowProxy, proxyPath, relayBody } = await import(join(DIR, "node_modules/qauth/hono.js"));
  const { AuthError } = await import(join(DIR, "node_modules/qauth/node.js"));
  const { QflowAuth } = await import(join(DIR, "node_modules/qauth/node.js"));
  const b = workerBindings(emu.url);
  const auth = new QflowAuth({ clientId: b.QFLOW_CLIENT_ID, clientSecret: b.QFLOW_CLIENT_SECRET, subscriptionKey: b.QFLOW_SUBSCRIPTION_KEY, username: b.QFLOW_USERNAME, password: b.QFLOW_PASSWORD, identityUrl: emu.url, apiUrl: emu.url });
  // Something with a fetch() that is not a QflowAuth: the proxy could not check what it passes on.
  const standIn = { fetch: async () => new Response("CANARY-should-not-be-called") };
  const bad = [undefined, null, 42, "x", {}, { auth }, { auth: 42, allow: ["GET /a"] }, { auth: standIn, allow: ["GET /a"] }, { auth, allow: [] }, { auth, allow: "GET /a" }, { auth, allow: [42] },
    { auth, allow: ["get /a"] }, { auth, allow: ["GET /"] }, { auth, allow: ["GET /a/../b"] }, { auth, allow: ["GET /a"], prefix: "q" }, { auth, allow: ["GET /a"], prefix: "/q/" },
    { auth, allow: ["GET /a"], forwardHeaders: ["cookie"] }, { auth, allow: ["GET /a"], forwardHeaders: ["bad header"] }, { auth, allow: ["GET /a"], scopes: 1 },
    // Made from a client without being one (its private state is not there: every call would be a TypeError).
    { auth: Object.create(auth), allow: ["GET /a"] }, { auth: new Proxy(auth, {}), allow: ["GET /a"] },
    // Options that throw when read, lists with holes, a method fetch refuses to send.
    Object.defineProperty({}, "auth", { get() { throw new RangeError("getter"); }, enumerable: true }),
    new Proxy({}, { ownKeys() { throw new TypeError("revoked"); } }),
    // eslint-disable-next-line no-sparse-arrays
    { auth, allow: [, ,] }, { auth, allow: ["GET /a"], forwardHeaders: [, "accept"] }, { auth, allow: ["CONNECT /a"] }, { auth, allow: ["TRACE /a"] }];
  for (const [i, o] of bad.entries()) {
    let e;
    try {
      qflowProxy(o);
    } catch (err) {
      e = err;
    }
    assert.ok(e instanceof AuthError, `qflowProxy(bad[${i}]) threw ${e}`);
    assert.equal(e.code, "invalid_config");
    assert.equal(e.retryable, false);
    assert.ok(e.hint);
  }
  assert.equal(proxyPath(42, "/q"), false);
  assert.throws(() => proxyPath("http://x/q/a", 42), (e) => e instanceof AuthError && e.code === "invalid_config");
  // A good configuration still works after all that.
  assert.equal(typeof qflowProxy({ auth, allow: ["GET /a"] }), "function");
  // relayBody with the wrong arguments: typed, never a TypeError (also a Response whose headers
  // throw when read again).
  class Fickle extends Response {
    reads = 0;
    get headers() {
      if (this.reads++ > 0) throw new TypeError("headers read twice");
      return super.headers;
    }
  }
  for (const [a, r] of [[standIn, new Response("x")], [auth, undefined], [auth, null], [auth, { status: 403 }], [auth, new Fickle("x", { headers: { etag: '"e"' } })]]) {
    const e = await relayBody(a, r).then(() => null, (x) => x);
    assert.ok(e instanceof AuthError && e.code === "invalid_request", String(e));
  }
  auth.free();
});
