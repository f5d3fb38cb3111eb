// Cloudflare Workers / workerd entry: Workers cannot compile wasm from bytes at run time, so the
// .wasm is imported as a module (wrangler and esbuild with `conditions: ["workerd"]` keep it one).
import wasmModule from "./qauth_bg.wasm";
import { initSync } from "./qauth.js";

initSync({ module: wasmModule });

export { QflowAuth, QpienAuth } from "./fast.js";
export { beginAuthorization, completeAuthorization } from "./qauth.js";
export { AuthError } from "./glue/error.js";
export { TokenBroker } from "./broker.js";
