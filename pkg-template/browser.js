// Browser entry: the sign-in redirect only (beginAuthorization, completeAuthorization, AuthError),
// from its own small wasm built without the secret-holding clients and without wasm-bindgen
// (src/js/browser.rs). This file moves bytes: it writes what it saw of the arguments into wasm
// memory and turns the answer into an object or an AuthError; every rule and message is the
// wasm's. Loaded asynchronously (top-level await); bundlers that understand
// `new URL("./x", import.meta.url)` (Vite, webpack 5) emit the file.
import { AuthError } from "./glue/error.js";
import { ownKeys, urlInput } from "./glue/values.js";
import { wasmLoadFailed } from "./load.js";

let wasm;
try {
  const response = await fetch(new URL("./qauth_browser.wasm", import.meta.url));
  if (!response.ok) throw new TypeError(`fetch answered status ${response.status}`);
  // 1 when the CSPRNG filled the bytes, 0 when there is none: the wasm then refuses to go on.
  const random = (ptr, len) => {
    try {
      crypto.getRandomValues(new Uint8Array(wasm.memory.buffer, ptr, len));
      return 1;
    } catch {
      return 0;
    }
  };
  wasm = (await WebAssembly.instantiate(await response.arrayBuffer(), { qauth: { random } })).instance.exports;
} catch (e) {
  throw wasmLoadFailed("browser", e);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// Item tags (see src/js/browser.rs).
const [OBJECT, NOT_OBJECT, KEY, STRING, MISSING, OTHER, UNREADABLE, ERROR] = [..."ONKSMXUE"].map((c) => c.charCodeAt(0));

/** An options argument as items: its shape, then each own key and what was under it. */
function optionItems(items, o) {
  const keys = ownKeys(o);
  if (keys === null) return items.push([NOT_OBJECT]);
  items.push([OBJECT]);
  for (const k of keys) {
    items.push([KEY, k]);
    let v;
    try {
      v = o[k];
    } catch {
      items.push([UNREADABLE]);
      continue;
    }
    items.push(typeof v === "string" ? [STRING, v] : v === undefined || v === null ? [MISSING] : [OTHER]);
  }
}

/** Calls an export with `items`; its answer's strings, or its AuthError thrown. */
function call(fn, items) {
  const encoded = items.map(([tag, s]) => [tag, s === undefined ? new Uint8Array(0) : encoder.encode(s)]);
  const len = encoded.reduce((n, [, b]) => n + 5 + b.length, 0);
  const ptr = wasm.qauth_alloc(len);
  let mem = new Uint8Array(wasm.memory.buffer);
  let view = new DataView(wasm.memory.buffer);
  let at = ptr;
  for (const [tag, b] of encoded) {
    mem[at] = tag;
    view.setUint32(at + 1, b.length, true);
    mem.set(b, at + 5);
    at += 5 + b.length;
  }
  const out = fn(ptr, len);
  // The call may have grown memory: fresh views.
  mem = new Uint8Array(wasm.memory.buffer);
  view = new DataView(wasm.memory.buffer);
  const total = view.getUint32(out, true);
  const strings = [];
  for (let p = out + 5; p < out + total; ) {
    const n = view.getUint32(p, true);
    strings.push(decoder.decode(mem.subarray(p + 4, p + 4 + n)));
    p += 4 + n;
  }
  const failed = mem[out + 4] === ERROR;
  wasm.qauth_free(out, total);
  if (failed) {
    const [code, message, hint, retryable] = strings;
    throw new AuthError(code, message, hint, retryable === "1");
  }
  return strings;
}

/** `{ url, state, codeVerifier }`: PKCE S256 from the platform CSPRNG. */
export function beginAuthorization(options) {
  try {
    const items = [];
    optionItems(items, options);
    const [url, state, codeVerifier] = call(wasm.qauth_begin, items);
    return Promise.resolve({ url, state, codeVerifier });
  } catch (e) {
    return Promise.reject(e);
  }
}

/** `{ code }` from the callback URL, if its `state` is the expected one. */
export function completeAuthorization(callbackUrl, options) {
  const url = urlInput(callbackUrl);
  const items = [url === undefined ? [OTHER] : [STRING, url]];
  optionItems(items, options);
  const [code] = call(wasm.qauth_complete, items);
  return { code };
}

export { AuthError };

/**
 * The server classes are not in the browser build: they hold a client secret, which must never
 * reach a page. A server bundle that resolved the `browser` condition gets this error, not a
 * silently missing class.
 */
function serverOnly(name) {
  return new AuthError(
    "invalid_config",
    `${name} is not in qauth's browser build: it holds a client secret, which never belongs in a browser`,
    'On a server, import from "qauth/server" (or let the bundler use the node / workerd / edge-light condition); in a page, use beginAuthorization and completeAuthorization and exchange the code on your server.',
    false,
  );
}
export class QflowAuth {
  constructor() {
    throw serverOnly("QflowAuth");
  }
}
export class QpienAuth {
  constructor() {
    throw serverOnly("QpienAuth");
  }
}
