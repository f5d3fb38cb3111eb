// Node >= 20.19 entry (also Deno and Bun): reads the .wasm next to this file and instantiates it
// synchronously (so `require("qauth")` works where Node loads ES modules with require, from
// 20.19). `fs` comes from `process.getBuiltinModule` (Node >= 20.16, Deno >= 2.1), or Bun's
// `import.meta.require`: an `import` of "node:fs" costs a Node cold start ~3 ms (it builds the
// builtin's ES module facade), this ~0.1 ms.
import { wasm } from "./client.js";
import { wasmLoadFailed, NO_FS } from "./load.js";

let module;
try {
  const fs = globalThis.process?.getBuiltinModule?.("node:fs") ?? import.meta.require?.("node:fs");
  if (!fs) throw NO_FS;
  module = new WebAssembly.Module(fs.readFileSync(new URL("./qauth_bg.wasm", import.meta.url)));
} catch (e) {
  throw wasmLoadFailed("node", e);
}
wasm.connect(new WebAssembly.Instance(module, wasm.imports));

export { QflowAuth, QpienAuth, beginAuthorization, completeAuthorization, AuthError } from "./client.js";
