// Browser entry: the sign-in redirect only (beginAuthorization, completeAuthorization, AuthError),
// from its own small wasm built without the secret-holding clients (the crate without its
// `server` feature). wire.js moves the bytes, as for the server build; every rule and message is
// the wasm's. Loaded asynchronously (top-level await); bundlers that understand
// `new URL("./x", import.meta.url)` (Vite, webpack 5) emit the file.
import { AuthError } from "./error.js";
import { Wasm } from "./wire.js";
import { fetchWasm } from "./load.js";

const wasm = new Wasm();
await fetchWasm(wasm, () => new URL("./qauth_browser.wasm", import.meta.url), "browser");

/** `{ url, state, codeVerifier }`: PKCE S256 from the platform CSPRNG. */
export const beginAuthorization = (options) => wasm.beginAuthorization(options);
/** `{ code }` from the callback URL, if its `state` is the expected one. */
export const completeAuthorization = (callbackUrl, options) => wasm.completeAuthorization(callbackUrl, options);
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
  static name = "QflowAuth";
  constructor() {
    throw serverOnly("QflowAuth");
  }
}
export class QpienAuth {
  static name = "QpienAuth";
  constructor() {
    throw serverOnly("QpienAuth");
  }
}
