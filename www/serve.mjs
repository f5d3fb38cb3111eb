// Runs the demo: the emulator on 127.0.0.1 (Qflow identity server + API gateway), and
// www/worker.js, bundled with the qauth package, in workerd (Miniflare) serving www/public and
// the package's browser build as static assets. Prints the URL and the demo user's credentials.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { cpSync, rmSync, mkdirSync } from "node:fs";
import { build } from "esbuild";
import { Miniflare } from "miniflare";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const port = Number(process.env.PORT ?? 8787);

const emulator = spawn(join(ROOT, "target/debug/qauth-emulator"), ["--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
// However this process ends (Miniflare installs its own signal handlers that call exit),
// the emulator goes with it.
process.on("exit", () => emulator.kill("SIGTERM"));
const emulatorUrl = await new Promise((resolve, reject) => {
  let buf = "";
  emulator.on("exit", (c) => reject(new Error(`emulator exited (${c})`)));
  emulator.stdout.on("data", (d) => {
    const m = (buf += d).match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    if (m) resolve(m[1]);
  });
});

// Static assets: the page, plus the package's browser build under /qauth/ (what a CDN would serve).
const outdir = join(ROOT, "target/demo");
const publicDir = join(outdir, "public");
rmSync(publicDir, { recursive: true, force: true });
mkdirSync(join(publicDir, "qauth"), { recursive: true });
cpSync(join(ROOT, "www/public"), publicDir, { recursive: true });
for (const f of ["browser.js", "fast.js", "qauth.js", "errors.js", "qauth_bg.wasm", "snippets"]) {
  cpSync(join(ROOT, "pkg", f), join(publicDir, "qauth", f), { recursive: true });
}

await build({
  entryPoints: [join(ROOT, "www/worker.js")],
  outdir,
  bundle: true,
  format: "esm",
  platform: "neutral",
  conditions: ["workerd", "worker"],
  loader: { ".wasm": "copy" },
  logLevel: "error",
});

const mf = new Miniflare({
  modules: true,
  scriptPath: join(outdir, "worker.js"),
  modulesRoot: outdir,
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  assets: { directory: publicDir, binding: "ASSETS", routerConfig: { has_user_worker: true } },
  cf: false,
  host: "127.0.0.1",
  port,
  compatibilityDate: "2026-04-01",
  kvNamespaces: ["SESSIONS"],
  bindings: {
    QFLOW_CLIENT_ID: "qauth-demo",
    QFLOW_CLIENT_SECRET: "CANARY-client-secret-7d1f2a",
    QFLOW_SUBSCRIPTION_KEY: "CANARY-subscription-key-5b2e9c",
    QFLOW_IDENTITY_URL: emulatorUrl,
    QFLOW_API_URL: emulatorUrl,
  },
});
const url = await mf.ready;
console.log(`qauth demo ready: open ${url.href}`);
console.log(`  emulator (Qflow identity + API, Qpien GraphQL): ${emulatorUrl}`);
console.log(`  demo user: 4471/joe.bloggs@example.com  password: CANARY-password-joe-91c3`);
console.log(`  other users: ann@example.com / CANARY-password-ann-44aa (no Comms access)`);
console.log(`  stop with Ctrl-C`);

const stop = async () => {
  emulator.kill("SIGTERM");
  await mf.dispose().catch(() => {});
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
