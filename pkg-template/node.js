// Node >= 20 entry: reads the .wasm next to this file and instantiates it synchronously.
import { readFileSync } from "node:fs";
import { initSync } from "./qauth.js";

initSync({ module: new WebAssembly.Module(readFileSync(new URL("./qauth_bg.wasm", import.meta.url))) });

export { QflowAuth, QpienAuth } from "./fast.js";
export { beginAuthorization, completeAuthorization } from "./qauth.js";
export { AuthError } from "./errors.js";
