// Starts what tests and benchmarks run against: the emulator (127.0.0.1, port chosen at run time)
// and workers in workerd (Miniflare, loopback only). No node:test here, so bench/ can use it.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { mkdtempSync, rmSync, cpSync, mkdirSync, existsSync, statSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, extname } from "node:path";
import { emulatorClient } from "../scenarios/common.mjs";

export * from "../scenarios/common.mjs";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const EMULATOR_BIN = process.env.QAUTH_EMULATOR_BIN ?? `${ROOT}target/debug/qauth-emulator`;

export async function startEmulator(args = []) {
  const child = spawn(EMULATOR_BIN, ["--port", "0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  let buf = "";
  const url = await new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`emulator exited early (${code})`)));
    child.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve(m[1]);
    });
  });
  // However the process ends (Miniflare's signal handlers call exit), the emulator goes with it.
  const onExit = () => child.kill("SIGTERM");
  process.on("exit", onExit);
  return {
    ...emulatorClient(url),
    async stop() {
      process.off("exit", onExit);
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await once(child, "exit");
      }
    },
  };
}

/** Bundles a worker exactly as a user's build does: `import "qauth"` with the workerd condition. */
export async function bundleWorker(entry, outdir) {
  await build({
    entryPoints: [entry],
    outdir,
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker"],
    mainFields: ["module", "main"],
    external: ["node:*", "cloudflare:*"],
    loader: { ".wasm": "copy" },
    logLevel: "error",
  });
  return join(outdir, entry.replace(/.*\//, "").replace(/\.m?js$/, ".js"));
}

/**
 * Starts `entry` (bundled) in workerd through Miniflare: loopback only (`cf: false`), the given
 * bindings, a KV namespace `TOKENS`. Returns `{ mf, call(path, init), stop() }`.
 */
export async function startWorker(entry, { bindings = {}, ...extra } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "qauth-workerd-"));
  const script = await bundleWorker(entry, dir);
  const mf = new Miniflare({
    modules: true,
    scriptPath: script,
    modulesRoot: dir,
    modulesRules: [
      { type: "CompiledWasm", include: ["**/*.wasm"] },
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    ],
    cf: false,
    compatibilityDate: "2026-04-01",
    compatibilityFlags: ["nodejs_compat"],
    kvNamespaces: ["TOKENS"],
    bindings,
    ...extra,
  });
  await mf.ready;
  return {
    mf,
    async call(path, init) {
      const r = await mf.dispatchFetch("http://worker.test" + path, init);
      const text = await r.text();
      return { status: r.status, headers: r.headers, text, json: () => JSON.parse(text) };
    },
    async stop() {
      await mf.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The demo's static assets in target/demo/public: www/public plus the package's browser build
 * under /qauth/ (what a CDN would serve). www/serve.mjs and wrangler (www/wrangler.toml) serve it.
 */
export function prepareDemoAssets(publicDir = join(ROOT, "target/demo/public")) {
  rmSync(publicDir, { recursive: true, force: true });
  mkdirSync(join(publicDir, "qauth"), { recursive: true });
  cpSync(join(ROOT, "www/public"), publicDir, { recursive: true });
  for (const f of ["browser.js", "error.js", "qauth_browser.wasm"]) {
    cpSync(join(ROOT, "pkg", f), join(publicDir, "qauth", f), { recursive: true });
  }
  return publicDir;
}

/**
 * Serves folders on 127.0.0.1 (a port chosen now), as a static host or CDN would: `dir`, or
 * `{ "/prefix/": dir, ... }`. Returns `{ url, stop() }`.
 */
export async function serveStatic(dirs) {
  const mounts = Object.entries(typeof dirs === "string" ? { "/": dirs } : dirs);
  const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const [prefix, dir] = mounts.find(([p]) => path.startsWith(p)) ?? [];
    const file = dir && join(dir, path.slice(prefix.length - 1).replace(/\/$/, "/index.html"));
    if (!file || !file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end("not found");
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${server.address().port}/`, stop: () => new Promise((r) => server.close(r)) };
}
