// `qauth/server` where no runtime condition matched (a server bundle built for `browser`, a
// worker runtime without its own key): the whole client, its wasm fetched by URL (top-level await).
import { wasm } from "./client.js";
import { wasmLoadFailed } from "./load.js";

try {
  const response = await fetch(new URL("./qauth_bg.wasm", import.meta.url));
  if (!response.ok) throw new TypeError(`fetch answered status ${response.status}`);
  wasm.connect((await WebAssembly.instantiate(await response.arrayBuffer(), wasm.imports)).instance);
} catch (e) {
  throw wasmLoadFailed("server", e);
}

export { QflowAuth, QpienAuth, beginAuthorization, completeAuthorization, AuthError } from "./client.js";
