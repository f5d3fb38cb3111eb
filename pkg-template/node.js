// Node >= 20 entry: reads the .wasm next to this file and instantiates it synchronously (so
// `require("qauth")` works where Node loads ES modules with require, from 20.19).
import { readFileSync } from "node:fs";
import { wasm } from "./client.js";
import { wasmLoadFailed } from "./load.js";

let module;
try {
  module = new WebAssembly.Module(readFileSync(new URL("./qauth_bg.wasm", import.meta.url)));
} catch (e) {
  throw wasmLoadFailed("node", e);
}
wasm.connect(new WebAssembly.Instance(module, wasm.imports));

export { QflowAuth, QpienAuth, beginAuthorization, completeAuthorization, AuthError } from "./client.js";
