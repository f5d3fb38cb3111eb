// What every scenario needs, in plain JS that runs in Node and in workerd alike: the emulator's
// demo credentials, a client for its control endpoints, an instrumented store, a leak check.

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

/** The emulator's credentials as a Worker's environment (the names the test workers read). */
export function workerBindings(url) {
  return {
    QFLOW_CLIENT_ID: CREDS.clientId,
    QFLOW_CLIENT_SECRET: CREDS.clientSecret,
    QFLOW_SUBSCRIPTION_KEY: CREDS.subscriptionKey,
    QFLOW_USERNAME: CREDS.joe.username,
    QFLOW_PASSWORD: CREDS.joe.password,
    QPIEN_CLIENT_ID: CREDS.qpien.clientId,
    QPIEN_CLIENT_SECRET: CREDS.qpien.clientSecret,
    EMULATOR: url,
  };
}

/** The emulator's counters and switches, over HTTP (so a worker can drive it too). */
export function emulatorClient(url) {
  const post = (path, body) =>
    fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) }).then((r) => r.json());
  return {
    url,
    stats: () => fetch(url + "/_emulator/stats").then((r) => r.json()),
    faults: (...faults) => post("/_emulator/faults", { faults }),
    control: (what, body) => post(`/_emulator/${what}`, body),
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

/**
 * A user signing in at the emulator's authorize page, as the browser would: `{ code,
 * codeVerifier, redirectUri }` for `exchangeCode`. `beginAuthorization` from the package under test.
 */
export async function authorizationCode(emu, beginAuthorization) {
  const redirectUri = "http://127.0.0.1:1/callback";
  const { url, state, codeVerifier } = await beginAuthorization({ clientId: CREDS.clientId, redirectUri, identityUrl: emu.url });
  const q = new URL(url).searchParams;
  const form = new URLSearchParams({ client_id: CREDS.clientId, redirect_uri: redirectUri, scope: q.get("scope"), state, code_challenge: q.get("code_challenge"), ...CREDS.joe, action: "allow" });
  const r = await fetch(emu.url + "/core/connect/authorize", { method: "POST", body: form, redirect: "manual" });
  const code = new URL(r.headers.get("location") ?? "http://x/").searchParams.get("code");
  if (!code) throw new Error(`the authorize page answered ${r.status} without a code`);
  return { code, codeVerifier, redirectUri };
}

/** A store that records every put, in order (for rotation tests); puts take a little time. */
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
      await sleep(5);
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

/**
 * A list of named scenarios. Each runs with `{ qauth, emu, assert }`: the package's exports, an
 * emulator client, and `node:assert/strict`. tests/js runs each in Node and again in workerd.
 */
export function suite() {
  const list = [];
  const scenario = (name, run) => list.push({ name, run });
  return { list, scenario };
}
