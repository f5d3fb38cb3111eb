// Vercel / Next.js edge entry (`edge-light` condition): like Workers, edge runtimes only take a
// precompiled module, which their bundlers make from a `?module` import. No top-level await.
import wasmModule from "./qauth_bg.wasm?module";
import { initSync } from "./qauth.js";

// Next's edge sandbox compiles the module outside the sandbox's realm, so it is a real module
// that fails `instanceof WebAssembly.Module` there (and initSync would try to compile it again).
const module = wasmModule instanceof WebAssembly.Module ? wasmModule : Object.setPrototypeOf(wasmModule, WebAssembly.Module.prototype);
initSync({ module });

export { QflowAuth, QpienAuth } from "./fast.js";
export { beginAuthorization, completeAuthorization } from "./qauth.js";
export { AuthError } from "./glue/error.js";
