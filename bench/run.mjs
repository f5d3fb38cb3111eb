// Benchmarks (issue 6): figures, not tests. Every figure is measured in this run, on this machine,
// next to its baseline, and reported as a ratio. Prints a table; writes target/bench/results.json.
// Run through `make bench` (builds the release pkg/ and the emulator first).
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { gzipSync, constants as zc } from "node:zlib";
import { tmpdir, cpus, totalmem } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { Bench } from "tinybench";
import * as oauth from "oauth4webapi";
import { QflowAuth } from "qauth";
import { startEmulator, bundleWorker, qflowOptions, CREDS, ROOT } from "../tests/js/harness.mjs";

const OUT = join(ROOT, "target/bench");
mkdirSync(OUT, { recursive: true });
const quick = process.env.BENCH_QUICK === "1"; // fewer iterations, for a smoke run
const results = { machine: machine(), date: new Date().toISOString(), figures: {} };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const gz = (buf) => gzipSync(buf, { level: zc.Z_BEST_COMPRESSION }).length;
const ratio = (a, b) => Math.round((a / b) * 100) / 100;
const log = (s) => process.stdout.write(s + "\n");

function machine() {
  const c = cpus();
  return { cpu: c[0]?.model ?? "unknown", cores: c.length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform };
}

const emu = await startEmulator();
const reset = () => emu.control("reset");

// A password grant straight at the emulator: a fresh refresh token to seed a store with.
async function freshRefreshToken() {
  const body = new URLSearchParams({ grant_type: "password", ...CREDS.joe, scope: "qflowapi openid offline_access", client_id: CREDS.clientId, client_secret: CREDS.clientSecret });
  const r = await fetch(emu.url + "/core/connect/token", { method: "POST", body });
  return (await r.json()).refresh_token;
}

try {
  await size();
  await coldStart();
  await cachedHeaders();
  await acquisition();
  await concurrency();
  await memory();
} finally {
  await emu.stop();
}

writeFileSync(join(OUT, "results.json"), JSON.stringify(results, null, 2));
log(`\nwritten: target/bench/results.json  (machine: ${results.machine.cpu}, ${results.machine.cores} cores, Node ${results.machine.node})`);

// 1. Size: what ships, raw and gzip -9, against the oauth4webapi calls a Qflow client needs.
async function size() {
  const pkg = (f) => readFileSync(join(ROOT, "pkg", f));
  const glueFiles = ["workerd.js", "client.js", "error.js", "broker.js"];
  const wasm = pkg("qauth_bg.wasm");
  const glue = Buffer.concat(glueFiles.map(pkg));
  // The oauth4webapi subset: what a password + refresh client with client_secret_post calls.
  const dir = mkdtempSync(join(tmpdir(), "qauth-bench-"));
  writeFileSync(
    join(dir, "entry.mjs"),
    `export { genericTokenEndpointRequest, processGenericTokenEndpointResponse, refreshTokenGrantRequest, processRefreshTokenResponse, ClientSecretPost, allowInsecureRequests } from "oauth4webapi";`,
  );
  const r = await build({ entryPoints: [join(dir, "entry.mjs")], bundle: true, minify: true, format: "esm", platform: "neutral", write: false, absWorkingDir: ROOT, nodePaths: [join(ROOT, "node_modules")], logLevel: "error" });
  rmSync(dir, { recursive: true, force: true });
  const o4w = Buffer.from(r.outputFiles[0].contents);
  const q = { raw: wasm.length + glue.length, gzip: gz(wasm) + gz(glue), wasmRaw: wasm.length, wasmGzip: gz(wasm), glueRaw: glue.length, glueGzip: gz(glue) };
  const b = { raw: o4w.length, gzip: gz(o4w) };
  results.figures.size = { qauth: q, oauth4webapiSubset: b, ratioGzip: ratio(q.gzip, b.gzip), target: "wasm + glue <= 30 KB gzip; beat oauth4webapi's subset" };
  log("\n1. Size (bytes)                       raw      gzip -9");
  log(`   qauth wasm                     ${String(q.wasmRaw).padStart(9)} ${String(q.wasmGzip).padStart(9)}`);
  log(`   qauth JS (workerd entry)       ${String(q.glueRaw).padStart(9)} ${String(q.glueGzip).padStart(9)}`);
  log(`   qauth total                    ${String(q.raw).padStart(9)} ${String(q.gzip).padStart(9)}`);
  log(`   oauth4webapi subset (esbuild --minify) ${String(b.raw).padStart(5)} ${String(b.gzip).padStart(9)}`);
  log(`   ratio qauth / oauth4webapi (gzip): ${results.figures.size.ratioGzip}  (target total <= 30720 B gzip)`);
  // The browser build a page loads: each file gzipped on its own, as a server sends them.
  const page = ["qauth_browser.wasm", "browser.js", "error.js"].map(pkg);
  const browserGz = page.reduce((n, b) => n + gz(b), 0);
  results.figures.size.browserBuild = { gzip: browserGz, target: "<= 10240 B gzip (JS + wasm a page loads)" };
  log(`   browser build (sign-in redirect: wasm + JS a page loads, gzip -9 per file) ${browserGz}  (target <= 10240 B)`);
  try {
    const top = execFileSync("sh", ["-c", "scripts/size.sh --top 12"], { cwd: ROOT, encoding: "utf8" });
    results.figures.size.twiggyTop = top;
    log("   largest wasm items (twiggy top, on a build that keeps names):\n" + top.replace(/^/gm, "     "));
  } catch (e) {
    log("   (twiggy breakdown unavailable: " + String(e.message).split("\n")[0] + ")");
  }
}

// 2. Cold start: module import → first headers() from a pre-seeded store. Node: fresh processes;
// workerd: fresh Miniflare instances (a new isolate each). Each against a no-op in the same run.
async function coldStart() {
  const runs = quick ? 5 : 20;
  const child = (code, env) => {
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8" });
    return Number(out.trim());
  };
  const nodeQauth = `const t0 = performance.now();
const { QflowAuth } = await import("qauth");
const store = { get: async () => process.env.RT, put: async () => {} };
const q = new QflowAuth({ clientId: "${CREDS.clientId}", clientSecret: "${CREDS.clientSecret}", subscriptionKey: "${CREDS.subscriptionKey}", identityUrl: process.env.EMU, apiUrl: process.env.EMU, store, storeKey: "bench" });
await q.headers();
console.log(performance.now() - t0);`;
  const nodeNoop = `const t0 = performance.now();
const m = await import("data:text/javascript,export const headers = async () => ({})");
await m.headers();
console.log(performance.now() - t0);`;
  // The same refresh round trip in plain JS: Node loads its fetch implementation (undici) on first
  // use, which every client pays, so this shows qauth's own share of the cold start.
  const nodeFetch = `const t0 = performance.now();
const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: process.env.RT, client_id: "${CREDS.clientId}", client_secret: "${CREDS.clientSecret}" });
const t = await (await fetch(process.env.EMU + "/core/connect/token", { method: "POST", body })).json();
const h = Object.freeze({ Authorization: "Bearer " + t.access_token, "Ocp-Apim-Subscription-Key": "${CREDS.subscriptionKey}" });
console.log(performance.now() - t0);`;
  // The same refresh with oauth4webapi: any package pays for Node's loader reading its files
  // (`import()` of a one-file package alone costs several ms here), which plain JS does not.
  const nodeO4w = `const t0 = performance.now();
const oauth = await import("oauth4webapi");
const as = { issuer: process.env.EMU, token_endpoint: process.env.EMU + "/core/connect/token" };
const client = { client_id: "${CREDS.clientId}" };
const r = await oauth.refreshTokenGrantRequest(as, client, oauth.ClientSecretPost("${CREDS.clientSecret}"), process.env.RT, { [oauth.allowInsecureRequests]: true });
const t = await oauth.processRefreshTokenResponse(as, client, r);
const h = Object.freeze({ Authorization: "Bearer " + t.access_token, "Ocp-Apim-Subscription-Key": "${CREDS.subscriptionKey}" });
console.log(performance.now() - t0);`;
  const nq = [], nn = [], nf = [], no = [];
  for (let i = 0; i < runs; i++) {
    nq.push(child(nodeQauth, { RT: await freshRefreshToken(), EMU: emu.url }));
    nn.push(child(nodeNoop, {}));
    nf.push(child(nodeFetch, { RT: await freshRefreshToken(), EMU: emu.url }));
    no.push(child(nodeO4w, { RT: await freshRefreshToken(), EMU: emu.url }));
  }
  // workerd: bench/workers/qauth-worker.js does the same on its first request; a no-op worker,
  // and fetch-worker.js with the same refresh in plain JS `fetch`.
  const dir = mkdtempSync(join(tmpdir(), "qauth-bench-wd-"));
  const scripts = {};
  for (const name of ["qauth-worker", "noop-worker", "fetch-worker"]) {
    const out = join(dir, name);
    scripts[name] = { path: await bundleWorker(join(ROOT, "bench/workers", name + ".js"), out), root: out };
  }
  const workerd = async (name, bindings) => {
    const t0 = performance.now();
    const mf = new Miniflare({
      modules: true,
      scriptPath: scripts[name].path,
      modulesRoot: scripts[name].root,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
      cf: false,
      compatibilityDate: "2026-04-01",
      bindings,
    });
    const r = await mf.dispatchFetch("http://bench.test/");
    await r.text();
    // A worker that failed (a refused refresh) would time its error path: stop instead.
    if (!r.ok) throw new Error(`${name} answered HTTP ${r.status}`);
    const ms = performance.now() - t0;
    await mf.dispose();
    return ms;
  };
  const wq = [], wn = [], wf = [];
  const env = async () => ({ RT: await freshRefreshToken(), EMU: emu.url, ID: CREDS.clientId, SECRET: CREDS.clientSecret, KEY: CREDS.subscriptionKey });
  for (let i = 0; i < runs; i++) {
    wq.push(await workerd("qauth-worker", await env()));
    wn.push(await workerd("noop-worker", {}));
    wf.push(await workerd("fetch-worker", await env()));
  }
  rmSync(dir, { recursive: true, force: true });
  const f = (q, n) => ({ qauthMs: +median(q).toFixed(2), noopMs: +median(n).toFixed(2), extraMs: +(median(q) - median(n)).toFixed(2), ratio: ratio(median(q), median(n)) });
  results.figures.coldStart = { runs, node: { ...f(nq, nn), plainJsFetchMs: +median(nf).toFixed(2), ratioToPlainJs: ratio(median(nq), median(nf)), oauth4webapiMs: +median(no).toFixed(2), oauth4webapiToPlainJs: ratio(median(no), median(nf)), ratioToOauth4webapi: ratio(median(nq), median(no)) }, workerd: { ...f(wq, wn), plainJsFetchMs: +median(wf).toFixed(2), ratioToPlainJs: ratio(median(wq), median(wf)) }, note: "qauth includes one refresh-token round trip to the local emulator" };
  const c = results.figures.coldStart;
  log(`\n2. Cold start, median of ${runs} fresh isolates (import → first headers() from a seeded store, incl. one refresh round trip)`);
  log(`   Node:    qauth ${c.node.qauthMs} ms   no-op ${c.node.noopMs} ms   (+${c.node.extraMs} ms)   plain JS fetch refresh ${c.node.plainJsFetchMs} ms (qauth ${c.node.ratioToPlainJs}x)`);
  log(`            oauth4webapi, the same refresh: ${c.node.oauth4webapiMs} ms (${c.node.oauth4webapiToPlainJs}x plain JS; qauth ${c.node.ratioToOauth4webapi}x it)`);
  log(`   workerd: qauth ${c.workerd.qauthMs} ms   no-op worker ${c.workerd.noopMs} ms   (+${c.workerd.extraMs} ms; new Miniflare → first response)   plain JS fetch refresh ${c.workerd.plainJsFetchMs} ms (qauth ${c.workerd.ratioToPlainJs}x)`);
}

// 3. Cached headers(): ns per call against the JS floor (a closure returning a cached object) and
// against building the two headers in JS from cached strings.
async function cachedHeaders() {
  await reset();
  const q = new QflowAuth(qflowOptions(emu));
  const h = await q.headers();
  const token = h.Authorization.slice(7), key = h["Ocp-Apim-Subscription-Key"];
  // All three have headers()'s shape: a plain function returning a Promise of the headers.
  const cached = Promise.resolve(Object.freeze({ ...h }));
  const floor = () => cached;
  const build = () => Promise.resolve({ Authorization: "Bearer " + token, "Ocp-Apim-Subscription-Key": key });
  const bench = new Bench({ time: quick ? 200 : 1500, warmupTime: quick ? 50 : 300 });
  bench.add("floor: JS closure returning a cached Promise of the object", floor).add("JS: build both headers from cached strings", build).add("qauth headers() (cache hit)", () => q.headers());
  await bench.run();
  const ns = Object.fromEntries(bench.tasks.map((t) => [t.name, (t.result.latency?.mean ?? t.result.mean) * 1e6]));
  const [fl, bu, qa] = Object.values(ns);
  results.figures.cachedHeaders = { nsPerCall: { floor: +fl.toFixed(1), jsBuild: +bu.toFixed(1), qauth: +qa.toFixed(1) }, ratioToFloor: ratio(qa, fl), ratioToJsBuild: ratio(qa, bu), target: "<= 1.3x the floor (the core/size issue)" };
  log(`\n3. Cached headers(), mean ns per call (tinybench)`);
  log(`   floor ${fl.toFixed(1)} ns   JS build ${bu.toFixed(1)} ns   qauth ${qa.toFixed(1)} ns   → ${ratio(qa, fl)}x the floor, ${ratio(qa, bu)}x JS build (target <= 1.3x floor)`);
}

// 4. Token acquisition: password grant + refresh grant round trip, qauth vs oauth4webapi, same
// emulator, alternating runs. qauth bounds every request with a timeout (an aborting signal);
// oauth4webapi sets none unless asked, so it runs twice: as it comes (the target's baseline) and
// with the same 10 s timeout passed as `signal` (like for like).
async function acquisition() {
  const runs = quick ? 5 : 30;
  const as = { issuer: emu.url, token_endpoint: emu.url + "/core/connect/token" };
  const client = { client_id: CREDS.clientId };
  const auth = oauth.ClientSecretPost(CREDS.clientSecret);
  const viaO4w = (opts) => async () => {
    const t0 = performance.now();
    const r1 = await oauth.genericTokenEndpointRequest(as, client, auth, "password", { ...CREDS.joe, scope: "qflowapi openid offline_access" }, opts);
    const t1 = await oauth.processGenericTokenEndpointResponse(as, client, r1);
    const r2 = await oauth.refreshTokenGrantRequest(as, client, auth, t1.refresh_token, opts);
    await oauth.processRefreshTokenResponse(as, client, r2);
    return performance.now() - t0;
  };
  const viaQauth = async () => {
    const t0 = performance.now();
    const q = new QflowAuth(qflowOptions(emu));
    await q.headers(); // password grant
    q.invalidate();
    await q.headers(); // refresh grant
    return performance.now() - t0;
  };
  const ways = {
    qauth: viaQauth,
    o4w: viaO4w({ [oauth.allowInsecureRequests]: true }),
    o4wTimeout: viaO4w({ [oauth.allowInsecureRequests]: true, signal: () => AbortSignal.timeout(10_000) }),
  };
  for (const f of Object.values(ways)) await f(); // warm each
  const ms = { qauth: [], o4w: [], o4wTimeout: [] };
  for (let i = 0; i < runs; i++) for (const k in ways) ms[k].push(await ways[k]());
  const [q, b, t] = [median(ms.qauth), median(ms.o4w), median(ms.o4wTimeout)];
  results.figures.acquisition = {
    runs,
    qauthMs: +q.toFixed(3),
    oauth4webapiMs: +b.toFixed(3),
    ratio: ratio(q, b),
    oauth4webapiWithTimeoutMs: +t.toFixed(3),
    ratioWithTimeout: ratio(q, t),
    target: "<= 1.0x oauth4webapi",
  };
  log(`\n4. Token acquisition (password + refresh round trip), median of ${runs}, alternating`);
  log(`   qauth ${q.toFixed(3)} ms   oauth4webapi ${b.toFixed(3)} ms   → ${ratio(q, b)}x (target <= 1.0x)`);
  log(`   oauth4webapi with a 10 s timeout signal, as qauth has: ${t.toFixed(3)} ms   → ${ratio(q, t)}x`);
}

// 5. Concurrency: N cold callers → token requests counted by the emulator, and wall time; the same
// for a naive JS cache without single-flight.
async function concurrency() {
  const levels = [1, 100, 1000, 10000];
  const naive = () => {
    let cached = null;
    return async () => {
      if (cached && cached.exp > Date.now()) return cached.h;
      const body = new URLSearchParams({ grant_type: "password", ...CREDS.joe, client_id: CREDS.clientId, client_secret: CREDS.clientSecret });
      const t = await (await fetch(emu.url + "/core/connect/token", { method: "POST", body })).json();
      cached = { exp: Date.now() + t.expires_in * 1000, h: { Authorization: "Bearer " + t.access_token, "Ocp-Apim-Subscription-Key": CREDS.subscriptionKey } };
      return cached.h;
    };
  };
  const rows = [];
  for (const n of levels) {
    await reset();
    const q = new QflowAuth(qflowOptions(emu));
    let t0 = performance.now();
    await Promise.all(Array.from({ length: n }, () => q.headers()));
    const qMs = performance.now() - t0;
    const qReq = (await emu.stats()).token.total;
    await reset();
    const get = naive();
    t0 = performance.now();
    // The naive cache sends one request per caller; past a few hundred sockets that is a storm.
    const settled = await Promise.allSettled(Array.from({ length: n }, () => get()));
    const nMs = performance.now() - t0;
    const nReq = (await emu.stats()).token.total;
    rows.push({ callers: n, qauth: { tokenRequests: qReq, ms: +qMs.toFixed(1) }, naive: { tokenRequests: nReq, ms: +nMs.toFixed(1), failed: settled.filter((s) => s.status === "rejected").length } });
  }
  results.figures.concurrency = { rows, target: "exactly 1 token request at every level" };
  log(`\n5. Concurrency: cold callers → token requests (emulator count) and wall time`);
  for (const r of rows) {
    log(`   ${String(r.callers).padStart(6)} callers: qauth ${r.qauth.tokenRequests} request(s), ${r.qauth.ms} ms   naive JS cache ${r.naive.tokenRequests} requests, ${r.naive.ms} ms${r.naive.failed ? `, ${r.naive.failed} failed` : ""}`);
  }
}

// 6. Memory: wasm linear memory after 100,000 headers() and after 1,000 refreshes (a separate
// instance of the same module, so its memory can be read).
async function memory() {
  // The instance the package's driver runs on (the node entry connected it).
  const { wasm, QflowAuth: Q } = await import(join(ROOT, "pkg/client.js"));
  const mem = () => wasm.exports.memory.buffer.byteLength;
  await reset();
  const q = new Q(qflowOptions(emu));
  await q.headers();
  const start = mem();
  const calls = quick ? 10_000 : 100_000;
  for (let i = 0; i < calls; i++) await q.headers();
  const afterHeaders = mem();
  const refreshes = quick ? 100 : 1000;
  for (let i = 0; i < refreshes; i++) {
    q.invalidate();
    await q.headers();
  }
  const afterRefreshes = mem();
  results.figures.memory = { startBytes: start, afterHeadersBytes: afterHeaders, headersCalls: calls, afterRefreshesBytes: afterRefreshes, refreshes, bound: "no growth beyond 1 MiB over the start" };
  log(`\n6. Memory (wasm linear memory)`);
  log(`   start ${start} B   after ${calls} headers() ${afterHeaders} B   after ${refreshes} refreshes ${afterRefreshes} B`);
}
