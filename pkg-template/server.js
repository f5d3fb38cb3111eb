// `qauth/server` where no runtime condition matched (a server bundle built for `browser`, a
// worker runtime without its own key): the whole client, its wasm fetched by URL (top-level await).
import init from "./qauth.js";
import { wasmLoadFailed } from "./load.js";

try {
  await init({ module_or_path: new URL("./qauth_bg.wasm", import.meta.url) });
} catch (e) {
  throw wasmLoadFailed("server", e);
}

export { QflowAuth, QpienAuth } from "./fast.js";
export { beginAuthorization, completeAuthorization } from "./qauth.js";
export { AuthError } from "./glue/error.js";
