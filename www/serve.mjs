// Runs the demo: the emulator on 127.0.0.1 (Qflow identity server + API gateway), and
// www/worker.js, bundled with the qauth package, in workerd (Miniflare) serving www/public and
// the package's browser build as static assets. Prints the URL and the demo user's credentials.
import { join } from "node:path";
import { Miniflare } from "miniflare";
// The same emulator start and worker bundling the tests use.
import { startEmulator, bundleWorker, prepareDemoAssets, CREDS, ROOT } from "../tests/js/harness.mjs";

const port = Number(process.env.PORT ?? 8787);

const emulator = await startEmulator();
const emulatorUrl = emulator.url;

// Static assets: the page, plus the package's browser build under /qauth/ (what a CDN would serve).
// The worker runs ahead of the assets (invoke_user_worker_ahead_of_assets, wrangler's
// run_worker_first) so it can set the page's CSP and nosniff.
const outdir = join(ROOT, "target/demo");
const publicDir = prepareDemoAssets();

const script = await bundleWorker(join(ROOT, "www/worker.js"), outdir);

const mf = new Miniflare({
  modules: true,
  scriptPath: script,
  modulesRoot: outdir,
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  assets: { directory: publicDir, binding: "ASSETS", routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true } },
  cf: false,
  host: "127.0.0.1",
  port,
  compatibilityDate: "2026-04-01",
  kvNamespaces: ["SESSIONS"],
  // One TokenBroker object per session holds its tokens (the worker re-exports the class).
  durableObjects: { TOKEN_BROKER: { className: "TokenBroker", useSQLite: true } },
  bindings: {
    // The absolute session lifetime in seconds (default 8 h), e.g. SESSION_MAX_AGE_S=60 make demo.
    ...(process.env.SESSION_MAX_AGE_S ? { SESSION_MAX_AGE_S: process.env.SESSION_MAX_AGE_S } : {}),
    QFLOW_CLIENT_ID: CREDS.clientId,
    QFLOW_CLIENT_SECRET: CREDS.clientSecret,
    QFLOW_SUBSCRIPTION_KEY: CREDS.subscriptionKey,
    QFLOW_IDENTITY_URL: emulatorUrl,
    QFLOW_API_URL: emulatorUrl,
  },
});
const url = await mf.ready;
console.log(`qauth demo ready: open ${url.href}`);
console.log(`  emulator (Qflow identity + API, Qpien GraphQL): ${emulatorUrl}`);
console.log(`  demo user: ${CREDS.joe.username}  password: ${CREDS.joe.password}`);
console.log(`  other users: ${CREDS.ann.username} / ${CREDS.ann.password} (no Comms access)`);
console.log(`  stop with Ctrl-C`);

const stop = async () => {
  await emulator.stop();
  await mf.dispose().catch(() => {});
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
