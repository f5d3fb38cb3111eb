// Runs the demo: the emulator on 127.0.0.1, and www/worker.js bundled with the qauth package
// and served by workerd (Miniflare). Prints the URL and the demo user's credentials.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
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

const outdir = join(ROOT, "target/demo");
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
  cf: false,
  host: "127.0.0.1",
  port,
  compatibilityDate: "2026-04-01",
  kvNamespaces: ["TOKENS"],
  bindings: {
    QFLOW_CLIENT_ID: "qauth-demo",
    QFLOW_CLIENT_SECRET: "CANARY-client-secret-7d1f2a",
    QFLOW_SUBSCRIPTION_KEY: "CANARY-subscription-key-5b2e9c",
    QFLOW_USERNAME: "4471/joe.bloggs@example.com",
    QFLOW_PASSWORD: "CANARY-password-joe-91c3",
    QFLOW_IDENTITY_URL: emulatorUrl,
    QFLOW_API_URL: emulatorUrl,
  },
});
const url = await mf.ready;
console.log(`qauth demo ready: open ${url.href}`);
console.log(`  emulator (Qflow identity + API, Qpien GraphQL): ${emulatorUrl}`);
console.log(`  demo user: 4471/joe.bloggs@example.com  password: CANARY-password-joe-91c3`);
console.log(`  stop with Ctrl-C`);

const stop = async () => {
  emulator.kill("SIGTERM");
  await mf.dispose().catch(() => {});
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
