// Browser / bundler entry: fetches and instantiates the .wasm asynchronously (top-level await).
import init from "./qauth.js";

await init({ module_or_path: new URL("./qauth_bg.wasm", import.meta.url) });

export { QflowAuth, QpienAuth } from "./fast.js";
export { beginAuthorization, completeAuthorization } from "./qauth.js";
export { AuthError } from "./errors.js";
