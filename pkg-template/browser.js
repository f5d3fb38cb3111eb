// Browser entry: the sign-in redirect only (beginAuthorization, completeAuthorization, AuthError),
// from its own small wasm built without the secret-holding clients. The wasm is fetched and
// instantiated asynchronously (top-level await); bundlers that understand
// `new URL("./x", import.meta.url)` (Vite, webpack 5) emit the file.
import init from "./qauth_browser.js";
import { AuthError } from "./errors.js";
import { wasmLoadFailed } from "./load.js";

try {
  await init({ module_or_path: new URL("./qauth_browser_bg.wasm", import.meta.url) });
} catch (e) {
  throw wasmLoadFailed("browser", e);
}

export { beginAuthorization, completeAuthorization } from "./qauth_browser.js";
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
    "On a server, import from \"qauth/server\" (or let the bundler use the node / workerd / edge-light condition); in a page, use beginAuthorization and completeAuthorization and exchange the code on your server.",
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
