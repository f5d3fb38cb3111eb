// Vercel / Next.js edge entry (`edge-light` condition): like Workers, edge runtimes only take a
// precompiled module, which their bundlers make from a `?module` import. No top-level await.
import wasmModule from "./qauth_bg.wasm?module";
import { wasm } from "./client.js";
import { wasmLoadFailed } from "./load.js";

// Next's edge sandbox compiles the module outside the sandbox's realm, so it is a real module
// that fails `instanceof WebAssembly.Module` there. Anything else (a bundler that handed over a
// URL or bytes) is the bundler's setup to fix.
if (Object.prototype.toString.call(wasmModule) !== "[object WebAssembly.Module]") {
  throw wasmLoadFailed("edge-light", new TypeError("the .wasm?module import did not give a WebAssembly.Module"));
}
const module = wasmModule instanceof WebAssembly.Module ? wasmModule : Object.setPrototypeOf(wasmModule, WebAssembly.Module.prototype);
wasm.connect(new WebAssembly.Instance(module, wasm.imports));

export { QflowAuth, QpienAuth, beginAuthorization, completeAuthorization, AuthError } from "./client.js";
