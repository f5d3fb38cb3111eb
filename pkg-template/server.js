// `qauth/server` where no runtime condition matched (a server bundle built for `browser`, a
// worker runtime without its own key): the whole client, its wasm fetched by URL (top-level await).
import { wasm } from "./client.js";
import { fetchWasm } from "./load.js";

await fetchWasm(wasm, () => new URL("./qauth_bg.wasm", import.meta.url), "server");

export { QflowAuth, QpienAuth, beginAuthorization, completeAuthorization, AuthError } from "./client.js";
