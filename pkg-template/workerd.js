// Cloudflare Workers / workerd entry: Workers cannot compile wasm from bytes at run time, so the
// .wasm is imported as a module (wrangler and esbuild with `conditions: ["workerd"]` keep it one).
import wasmModule from "./qauth_bg.wasm";
import { wasm } from "./client.js";

wasm.connect(new WebAssembly.Instance(wasmModule, wasm.imports));

export { QflowAuth, QpienAuth, beginAuthorization, completeAuthorization, AuthError } from "./client.js";
export { TokenBroker } from "./broker.js";
