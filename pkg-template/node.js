// Node >= 20.19 entry: reads the .wasm next to this file and instantiates it synchronously (so
// `require("qauth")` works where Node loads ES modules with require, from 20.19). `fs` comes from
// `process.getBuiltinModule` (Node >= 20.16): an `import` of "node:fs" costs a cold start ~3 ms
// (Node builds the builtin's ES module wrapper), this costs ~0.1 ms.
import { wasm } from "./client.js";
import { wasmLoadFailed } from "./load.js";

let module;
try {
  const { readFileSync } = process.getBuiltinModule("node:fs");
  module = new WebAssembly.Module(readFileSync(new URL("./qauth_bg.wasm", import.meta.url)));
} catch (e) {
  throw wasmLoadFailed("node", e);
}
wasm.connect(new WebAssembly.Instance(module, wasm.imports));

export { QflowAuth, QpienAuth, beginAuthorization, completeAuthorization, AuthError } from "./client.js";
