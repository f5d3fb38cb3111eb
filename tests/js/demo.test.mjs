// End to end, in real headless Chromium (Debian chromium + playwright-core): runs the README's demo
// command (`make demo`: emulator + BFF worker in workerd + www page), signs in through the
// emulator's login form, and checks every path a person can take, and that no secret ever
// reaches the browser.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { request as httpRequest } from "node:http";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { ROOT, CREDS, emulatorClient, launchChromium } from "./helpers.mjs";

let demo, url, emu, browser;
const output = [];

before(async () => {
  // The exact README command, in its own process group so everything it started stops with it.
  demo = spawn("make", ["--no-print-directory", "demo"], { cwd: ROOT, env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  demo.stderr.on("data", (d) => output.push(String(d)));
  let out = "";
  [url, emu] = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the demo did not start in 240 s: " + out + output.join(""))), 240_000);
    demo.on("exit", (c) => reject(new Error(`the demo exited (${c}): ${out}${output.join("")}`)));
    demo.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/open (http:\/\/127\.0\.0\.1:\d+\/)\n\s+emulator[^:]*: (http:\/\/127\.0\.0\.1:\d+)[\s\S]*stop with Ctrl-C/);
      if (m) {
        clearTimeout(timer);
        resolve([m[1], emulatorClient(m[2])]);
      }
    });
  });
  assert.match(out, /demo user: 4471\/joe\.bloggs@example\.com\s+password: CANARY-password-joe-91c3/, "the demo prints the credentials");
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (demo?.exitCode === null) {
    process.kill(-demo.pid, "SIGTERM");
    await once(demo, "exit");
  }
});

/** A fresh browser context (own cookies and sessionStorage) that records every response body. */
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  const page = await context.newPage();
  const bodies = [];
  page.on("response", async (r) => {
    try {
      bodies.push({ url: r.url(), text: (await r.body()).toString("latin1") });
    } catch {} // redirects have no body
  });
  page.on("pageerror", (e) => bodies.push({ url: "pageerror", text: String(e) }));
  const violations = [];
  page.on("console", (m) => /Content.Security.Policy|Refused to/i.test(m.text()) && violations.push(m.text()));
  page.violations = violations;
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  return { context, page, bodies };
}

/** Sign in → the emulator's form → back. Returns once the page has settled on a result. */
async function signIn(page, user = CREDS.joe, action = "#allow") {
  await page.click("#sign-in");
  await page.waitForURL((u) => u.href.startsWith(emu.url + "/core/connect/authorize"));
  if (action === "#allow") {
    await page.fill("#username", user.username);
    await page.fill("#password", user.password);
  }
  await page.click(action);
  await page.waitForURL((u) => u.href.startsWith(url));
  await page.waitForSelector("body[data-ready=true]");
}

const visibleText = (page, sel) => page.locator(sel).innerText();
const apiFromPage = (page, path, init) =>
  page.evaluate(([p, i]) => fetch(p, i).then(async (r) => ({ status: r.status, body: await r.json() })), [path, init]);

function assertNoSecret(bodies, where) {
  for (const { url: u, text } of bodies) {
    assert.ok(!/CANARY-(client-secret|subscription-key|at-|rt-)/.test(text), `a secret or token reached the browser in ${where}: ${u}`);
  }
}

test("sign in: emulator form → back signed in, API data and Comms state shown; no secret in the browser", async () => {
  const { context, page, bodies } = await openPage();
  try {
    assert.equal(await page.locator("#signed-out").isVisible(), true);
    const requests = [];
    page.on("request", (r) => requests.push(r.url()));
    await signIn(page);
    assert.equal(await page.locator("#signed-in").isVisible(), true, await page.content());
    assert.equal(await visibleText(page, "#user"), CREDS.joe.username);
    assert.match(await visibleText(page, "#events"), /Spring conference/);
    assert.match(await visibleText(page, "#comms"), /Comms API access is enabled/);
    assert.equal(new URL(page.url()).search, "", "the code left the address bar");

    // The authorization request carried PKCE S256 and a state; the callback carried a code only.
    const authz = new URL(requests.find((u) => u.startsWith(emu.url + "/core/connect/authorize")));
    assert.equal(authz.searchParams.get("code_challenge_method"), "S256");
    assert.match(authz.searchParams.get("code_challenge"), /^[A-Za-z0-9_-]{43}$/);
    assert.match(authz.searchParams.get("state"), /^[A-Za-z0-9_-]{16,}$/);
    assert.equal(authz.searchParams.get("redirect_uri"), url);

    // Nothing secret in any response body (HTML, JS, wasm, JSON) or in script-readable storage.
    assertNoSecret(bodies, "a response body");
    assert.ok(bodies.some((b) => b.url.endsWith("/qauth/qauth_browser.wasm")), "the page loaded the package's browser build");
    const script = await page.evaluate(() => ({ cookie: document.cookie, session: JSON.stringify(sessionStorage), local: JSON.stringify(localStorage) }));
    assert.equal(script.cookie, "", "the session cookie is not readable by script");
    assert.equal(script.session, "{}", "state and verifier were used once and cleared");
    assert.ok(!/CANARY/.test(script.local));
    const [cookie] = await context.cookies();
    assert.equal(cookie.name, "qauth_session");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Lax");
    assert.equal(cookie.path, "/");
    assert.match(cookie.value, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(!/CANARY/.test(cookie.value));

    assert.deepEqual(page.violations, [], "the page runs under its CSP with nothing refused");

    // The screenshot in the package README is this page, taken here so it stays true.
    await page.screenshot({ path: join(ROOT, "docs/demo-signed-in.png") });
  } finally {
    await context.close();
  }
});

test("code replay: reloading the callback URL shows a clear error; the worker refuses the used code", async () => {
  const { context, page, bodies } = await openPage();
  try {
    let callback, exchange;
    page.on("request", (r) => {
      if (r.url().startsWith(url + "?code=")) callback = r.url();
      if (r.url() === url + "auth/session") exchange = r.postData();
    });
    await signIn(page);
    assert.equal(await page.locator("#signed-in").isVisible(), true);
    assert.ok(callback && exchange);

    await page.goto(callback); // the browser's history or a reload brings the code back
    await page.waitForSelector("body[data-ready=true]");
    assert.equal(await page.locator("#error").isVisible(), true);
    assert.equal(await visibleText(page, "#error-code"), "state_mismatch");
    assert.match(await visibleText(page, "#error-text"), /already used/);

    // The same code and state sent again (an attacker who saw them): refused by the server (the
    // flow was used once and its pre-login cookie is gone), and no verifier was ever in the page.
    assert.deepEqual(Object.keys(JSON.parse(exchange)).sort(), ["code", "state"]);
    const replay = await apiFromPage(page, "/auth/session", { method: "POST", headers: { "content-type": "application/json" }, body: exchange });
    assert.equal(replay.status, 400);
    assert.equal(replay.body.code, "state_mismatch");
    assert.match(replay.body.message, /already used/);
    assertNoSecret(bodies, "the replay answers");
  } finally {
    await context.close();
  }
});

test("tampered state: state_mismatch shown, the code is never sent to the worker", async () => {
  const { context, page } = await openPage();
  try {
    // Rewrite the state in the emulator's redirect back to the page (what an attacker would forge).
    await page.route(emu.url + "/core/connect/authorize", async (route) => {
      if (route.request().method() !== "POST") return route.continue();
      const answer = await route.fetch({ maxRedirects: 0 });
      const back = new URL(answer.headers().location);
      assert.ok(back.searchParams.has("code"));
      back.searchParams.set("state", "tampered-" + back.searchParams.get("state").slice(9));
      return route.fulfill({ status: 303, headers: { location: back.href } });
    });
    const exchanges = [];
    page.on("request", (r) => r.url().endsWith("/auth/session") && exchanges.push(r));
    await signIn(page);
    assert.equal(await visibleText(page, "#error-code"), "state_mismatch");
    assert.match(await visibleText(page, "#error-title"), /not recognised/);
    assert.equal(await page.locator("#signed-out").isVisible(), true);
    assert.equal(exchanges.length, 0);
  } finally {
    await context.close();
  }
});

test("denied at the login form: access_denied explained, still signed out", async () => {
  const { context, page } = await openPage();
  try {
    await signIn(page, CREDS.joe, "#deny");
    assert.equal(await visibleText(page, "#error-code"), "access_denied");
    assert.match(await visibleText(page, "#error-text"), /cancelled/);
    assert.equal(await page.locator("#signed-out").isVisible(), true);
  } finally {
    await context.close();
  }
});

test("PKCE: a code_challenge that does not match the worker's verifier is refused by the emulator, reported as invalid_grant", async () => {
  const { context, page } = await openPage();
  try {
    const before = (await emu.stats()).token;
    // The verifier never reaches the page; swap the challenge on the way to the identity server.
    await page.route((u) => u.href.startsWith(emu.url + "/core/connect/authorize?"), (route) => {
      const u = new URL(route.request().url());
      u.searchParams.set("code_challenge", "W".repeat(43)); // well-formed, wrong
      return route.continue({ url: u.href });
    });
    await signIn(page);
    assert.equal(await visibleText(page, "#error-code"), "invalid_grant");
    assert.equal(await page.locator("#signed-out").isVisible(), true);
    const after = (await emu.stats()).token;
    assert.equal(after.authorization_code - before.authorization_code, 1);
    assert.equal(after.errors - before.errors, 1, "the emulator refused the exchange");
  } finally {
    await context.close();
  }
});

test("sign out: the cookie is dropped and /api/* answers 401 even with the old cookie", async () => {
  const { context, page } = await openPage();
  try {
    await signIn(page, CREDS.ann);
    assert.match(await visibleText(page, "#comms"), /not enabled/, "Comms state in words for a user without access");
    const [old] = await context.cookies();
    // A sign-out the worker did not confirm is not shown as one (on a shared machine it matters).
    await page.route("**/auth/logout", (route) => route.fulfill({ status: 503, contentType: "application/json", body: '{"code":"server_error","message":"down"}' }));
    await page.click("#sign-out");
    await page.waitForSelector("#error:not([hidden])");
    assert.equal(await page.locator("#signed-in").isVisible(), true, "still shown signed in");
    await page.unroute("**/auth/logout");
    await page.click("#sign-out");
    await page.waitForSelector("#signed-out:not([hidden])");
    assert.equal(await page.locator("#error").isHidden(), true);
    assert.deepEqual(await context.cookies(), []);
    const r = await apiFromPage(page, "/api/checkin/v1/api/events");
    assert.equal(r.status, 401);
    await context.addCookies([old]); // a stolen or stale cookie does not bring the session back
    const again = await apiFromPage(page, "/api/checkin/v1/api/events");
    assert.equal(again.status, 401);
    const notAllowed = await apiFromPage(page, "/api/comms/v1/api/comms/send", { method: "POST", body: "{}" });
    assert.equal(notAllowed.status, 404, "paths off the allow-list are not proxied");
  } finally {
    await context.close();
  }
});

test("expired session: the server-side refresh token is dead → 'session expired', signed out", async () => {
  const { context, page } = await openPage();
  try {
    await signIn(page);
    assert.equal(await page.locator("#signed-in").isVisible(), true);
    await emu.control("revoke", { refresh: true }); // access and refresh tokens stop working
    await page.click("#reload");
    await page.waitForSelector("#error:not([hidden])");
    assert.equal(await visibleText(page, "#error-code"), "session_expired");
    assert.match(await visibleText(page, "#error-text"), /expired/);
    assert.equal(await page.locator("#signed-out").isVisible(), true);
  } finally {
    await context.close();
  }
});

/** A request from outside the browser (a script's own server): any Origin it likes, raw path. */
function raw(path, { method = "GET", headers = {}, body } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    // A connection per request (an early 413 leaves a keep-alive socket unusable).
    const req = httpRequest({ agent: false, host: u.hostname, port: u.port, path, method, headers: { origin: u.origin, ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, body: json });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

test("the code exchange is bound to the browser: code + state taken from a finished sign-in are refused outside it", async () => {
  const { context, page } = await openPage();
  try {
    // The injected script's view: the callback's code and state, kept from reaching the worker.
    let stolen;
    await page.route(url + "auth/session", (route) => {
      stolen = route.request().postData();
      return route.abort();
    });
    await signIn(page);
    assert.ok(stolen, "the page tried to exchange");
    assert.deepEqual(Object.keys(JSON.parse(stolen)).sort(), ["code", "state"], "no verifier ever reaches the page");
    const before = (await emu.stats()).token.authorization_code;

    // Posted from outside the browser with the right Origin and no pre-login cookie: refused.
    const headers = { "content-type": "application/json" };
    const bare = await raw("/auth/session", { method: "POST", headers, body: stolen });
    assert.equal(bare.status, 400);
    assert.equal(bare.body.code, "state_mismatch");
    assert.equal(bare.headers["set-cookie"]?.some((c) => /^qauth_session=[^;]/.test(c)) ?? false, false);

    // With a pre-login cookie of the attacker's own flow: refused (its state is another).
    const own = await raw("/auth/start", { method: "POST", headers, body: "{}" });
    assert.equal(own.status, 200);
    const preLogin = own.headers["set-cookie"].find((c) => c.startsWith("qauth_prelogin="));
    assert.match(preLogin, /^qauth_prelogin=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Lax; Path=\/; Max-Age=300$/);
    assert.deepEqual(Object.keys(own.body), ["url"], "/auth/start answers the authorize URL only");
    const other = await raw("/auth/session", { method: "POST", headers: { ...headers, cookie: preLogin.split(";")[0] }, body: stolen });
    assert.equal(other.status, 400);
    assert.equal(other.body.code, "state_mismatch");
    assert.equal((await emu.stats()).token.authorization_code, before, "the stolen code never reached the identity server");

    // The pre-login cookie is HttpOnly and scoped to the flow; the page got no session.
    const cookies = await context.cookies();
    assert.deepEqual(cookies.map((c) => [c.name, c.httpOnly, c.sameSite]), [["qauth_prelogin", true, "Lax"]]);
  } finally {
    await context.close();
  }
});

test("proxy: encoded and double-encoded paths → 404 not_allowed before any session check; response headers", async () => {
  const attempts = [
    "/api/checkin/v1/api/events%2F..%2F..%2Fcomms/v1/api/comms/send",
    "/api/checkin/v1/api/events%2f..%2f..%2fx",
    "/api/checkin/v1/api/events/..;/..;/comms/v1/api/comms/send",
    "/api/checkin/v1/api/events/%2e%2e/%2e%2e/comms/v1/api/comms/send",
    "/api/checkin/v1/api/events/%2E%2E/x",
    "/api/checkin/v1/api/events/%252e%252e/%252e%252e/comms/v1/api/comms/send",
    "/api/checkin/v1/api/events/%252F..",
    "/api/checkin/v1/api/events/..%5C..%5Cx",
    "/api/checkin/v1/api/events/..\\..\\x",
    "/api/checkin/v1/api/events/./../../../comms/v1/api/comms/send",
    "/api/checkin/v1/api/events/../../../comms/v1/api/comms/send",
    "/api/checkin/v1/api/events;jsessionid=x",
    "/api/checkin/v1/api/events/%00",
    "/api/checkin/v1/api/events/%0d%0aX-Injected:%20y",
    "/api/checkin/v1/api/events//x",
    "/api/checkin/v1/api/events/%E0%A4%A",
    "/api//checkin/v1/api/events",
    "/api/checkin%2Fv1/api/events",
  ];
  for (const path of attempts) {
    const r = await raw(path);
    assert.equal(r.status, 404, `${path}: ${r.text}`);
    assert.equal(r.body?.code, "not_allowed", path);
    assert.equal(r.headers["x-content-type-options"], "nosniff");
  }
  // A clean allowed path gets as far as the session check; the query is passed on.
  const clean = await raw("/api/checkin/v1/api/events?page=1");
  assert.equal(clean.status, 401);
  assert.equal(clean.body.code, "no_session");
  assert.equal(clean.headers["cache-control"], "no-store");
  assert.equal(clean.headers["x-content-type-options"], "nosniff");

  // The page: a strict CSP, the import map allowed by its hash, nosniff.
  const page = await raw("/");
  assert.equal(page.status, 200);
  assert.equal(page.headers["x-content-type-options"], "nosniff");
  // The callback URL carries the code: the page is never cached, under any URL.
  for (const p of ["/", "/?code=c&state=s"]) assert.equal((await raw(p)).headers["cache-control"], "no-store", p);
  assert.equal(page.headers["strict-transport-security"], undefined, "no HSTS over http (the demo's loopback)");
  const csp = Object.fromEntries(page.headers["content-security-policy"].split(/;\s*/).map((d) => [d.split(" ")[0], d.split(" ").slice(1).join(" ")]));
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(readFileSync(join(ROOT, "www/public/index.html"), "utf8"))[1];
  const hash = createHash("sha256").update(importMap).digest("base64");
  assert.deepEqual(csp, {
    "default-src": "'self'",
    "script-src": `'self' 'wasm-unsafe-eval' 'sha256-${hash}'`,
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "object-src": "'none'",
    "form-action": emu.url,
  });
  const js = await raw("/app.js");
  assert.equal(js.headers["x-content-type-options"], "nosniff");
});

test("bad input on every endpoint → a 4xx with a stable code, never a 500, never a secret", async () => {
  const json = { "content-type": "application/json" };
  const huge = JSON.stringify({ code: "x".repeat(20_000), state: "y" });
  const cases = [
    ["/auth/start", "{", 400, "invalid_request"],
    ["/auth/start", "[]", 400, "invalid_request"],
    ["/auth/start", '{"redirectUri":5}', 400, "invalid_request"],
    ["/auth/start", '{"redirectUri":"not a url"}', 400, "invalid_redirect_uri"],
    ["/auth/start", '{"redirectUri":"https://evil.example/"}', 400, "invalid_redirect_uri"],
    ["/auth/start", JSON.stringify({ redirectUri: url + "?x=1" }), 400, "invalid_redirect_uri"],
    // Another path of this site would carry the code there (under /api/, to the API's logs).
    ["/auth/start", JSON.stringify({ redirectUri: url + "api/checkin/v1/api/events" }), 400, "invalid_redirect_uri"],
    ["/auth/start", JSON.stringify({ redirectUri: url }), 200, undefined],
    ["/auth/start", huge, 413, "too_large"],
    ["/auth/session", "", 400, "invalid_request"],
    ["/auth/session", "{", 400, "invalid_request"],
    ["/auth/session", "null", 400, "invalid_request"],
    ["/auth/session", '{"code":1,"state":"s"}', 400, "invalid_request"],
    ["/auth/session", '{"code":"c","state":["s"]}', 400, "invalid_request"],
    ["/auth/session", '{"code":"c","state":"s"}', 400, "state_mismatch"],
    ["/auth/session", huge, 413, "too_large"],
    ["/auth/session", "\xff\xfe", 400, "invalid_request"],
    ["/auth/logout", "garbage", 200, undefined],
  ];
  for (const [path, body, status, code] of cases) {
    const r = await raw(path, { method: "POST", headers: json, body });
    assert.equal(r.status, status, `${path} ${body.slice(0, 40)}: ${r.text}`);
    assert.equal(r.body?.code, code, `${path} ${body.slice(0, 40)}`);
    assert.ok(!/CANARY/.test(r.text));
  }
  // Chunked (no Content-Length) oversized body, cross-origin, unknown endpoints, wrong methods.
  const chunked = await raw("/auth/session", { method: "POST", headers: { ...json, "transfer-encoding": "chunked" }, body: huge });
  assert.equal(chunked.status, 413);
  const cross = await raw("/auth/start", { method: "POST", headers: { ...json, origin: "https://evil.example" }, body: "{}" });
  assert.equal(cross.status, 403);
  assert.equal(cross.body.code, "forbidden");
  for (const [method, path, status, code] of [
    ["GET", "/auth/session", 404, "not_found"],
    ["GET", "/auth/config", 404, "not_found"],
    ["PUT", "/api/checkin/v1/api/events", 404, "not_allowed"],
    ["GET", "/api/comms-access?eventId=%3Cscript%3E", 400, "invalid_request"],
    ["GET", "/api/comms-access", 400, "invalid_request"],
  ]) {
    const r = await raw(path, { method });
    assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
    assert.equal(r.body?.code, code);
  }
  const post = await raw("/api/checkin/v1/api/event", { method: "POST", headers: json, body: "x".repeat(17_000) });
  assert.ok(post.status === 401 || post.status === 413, post.text); // no session: refused before the body matters
});

test("signing in again in the same browser ends the previous session", async () => {
  const { context, page } = await openPage();
  try {
    await signIn(page);
    const [a] = await context.cookies();
    // The page is signed in; start another sign-in from it (its session cookie goes along).
    await page.evaluate(() => document.getElementById("sign-in").click());
    await page.waitForURL((u) => u.href.startsWith(emu.url + "/core/connect/authorize"));
    await page.fill("#username", CREDS.joe.username);
    await page.fill("#password", CREDS.joe.password);
    await page.click("#allow");
    await page.waitForURL((u) => u.href.startsWith(url));
    await page.waitForSelector("body[data-ready=true]");
    assert.equal(await page.locator("#signed-in").isVisible(), true);
    const [b] = await context.cookies();
    assert.equal(b.name, "qauth_session");
    assert.notEqual(b.value, a.value);
    const old = await raw("/api/checkin/v1/api/events", { headers: { cookie: `qauth_session=${a.value}` } });
    assert.equal(old.status, 401, "the previous session of this browser is over");
    const current = await raw("/api/checkin/v1/api/events", { headers: { cookie: `qauth_session=${b.value}` } });
    assert.equal(current.status, 200);
  } finally {
    await context.close();
  }
});
