// Test helpers: start the emulator on 127.0.0.1 with a port chosen at run time, read its
// counters, set its faults, and stop it when the test ends.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const EMULATOR_BIN = process.env.QAUTH_EMULATOR_BIN ?? `${ROOT}target/debug/qauth-emulator`;

/** The emulator's demo credentials: distinctive canaries, so any leak is easy to find. */
export const CREDS = {
  clientId: "qauth-demo",
  clientSecret: "CANARY-client-secret-7d1f2a",
  subscriptionKey: "CANARY-subscription-key-5b2e9c",
  joe: { username: "4471/joe.bloggs@example.com", password: "CANARY-password-joe-91c3" },
  ann: { username: "ann@example.com", password: "CANARY-password-ann-44aa" },
  kim: { username: "kim@example.com", password: "CANARY-password-kim-7b7b" },
  qpien: { clientId: "qpien-demo", clientSecret: "CANARY-qpien-secret-0e9d41" },
};

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
  const post = (path, body) =>
    fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) }).then((r) => r.json());
  return {
    url,
    stats: () => fetch(url + "/_emulator/stats").then((r) => r.json()),
    faults: (...faults) => post("/_emulator/faults", { faults }),
    control: (what, body) => post(`/_emulator/${what}`, body),
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await once(child, "exit");
      }
    },
  };
}

export function qflowOptions(emu, extra = {}) {
  return {
    clientId: CREDS.clientId,
    clientSecret: CREDS.clientSecret,
    subscriptionKey: CREDS.subscriptionKey,
    ...CREDS.joe,
    identityUrl: emu.url,
    apiUrl: emu.url,
    ...extra,
  };
}

/** A store that records every put, in order (for rotation tests). */
export function memoryStore() {
  const map = new Map();
  const puts = [];
  return {
    map,
    puts,
    async get(k) {
      return map.has(k) ? map.get(k) : null;
    },
    async put(k, v) {
      await new Promise((r) => setTimeout(r, 5));
      map.set(k, v);
      puts.push(v);
    },
  };
}

/** Asserts no CANARY value (every secret and token the emulator knows) appears in `text`. */
export function assertNoCanary(assert, text, where) {
  assert.ok(!/CANARY/.test(text), `a secret leaked into ${where}: ${text.slice(0, 300)}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
