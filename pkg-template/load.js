// The one place that says what to do when a bundler did not ship qauth_bg.wasm where the entry
// looks for it (esbuild without a `.wasm` loader, a CJS bundle without `import.meta.url`, a file
// copied without its neighbour). Pure JS: it must work when the wasm is exactly what is missing.
import { AuthError } from "./error.js";

const FIX =
  "qauth ships qauth_bg.wasm next to its entry files and the bundler must keep it: " +
  "esbuild: mark qauth external (`--external:qauth`) for Node, or `--loader:.wasm=file` for the browser; " +
  "webpack 5 and Vite emit it on their own; Cloudflare Workers (wrangler) and Next.js edge import it as a module " +
  "(the `workerd` / `edge-light` conditions). See the README's table of bundlers.";

/**
 * For the entries that fetch their wasm by URL (browser, server): fetches `url()`, instantiates
 * it for `wasm` (a wire.js `Wasm`), or throws `wasm_load_failed`. Each entry writes its own
 * `() => new URL("./x.wasm", import.meta.url)`: that expression is what bundlers look for to emit
 * the file, and it is made in here, so a bundle without `import.meta.url` gets this error too.
 */
export async function fetchWasm(wasm, url, entry) {
  try {
    const response = await fetch(url());
    if (!response.ok) throw new TypeError(`fetch answered status ${response.status}`);
    wasm.connect((await WebAssembly.instantiate(await response.arrayBuffer(), wasm.imports)).instance);
  } catch (e) {
    throw wasmLoadFailed(entry, e);
  }
}

/** What the node entry throws when the runtime gives it no way to read a file synchronously. */
export const NO_FS = new Error("no process.getBuiltinModule");

/** `AuthError("wasm_load_failed")` for an entry that could not load the wasm (no path or URL in it). */
export function wasmLoadFailed(entry, cause) {
  let why = "it could not be read";
  try {
    if (cause === NO_FS) why = "this runtime has no process.getBuiltinModule to read it with (Node >= 20.16, Deno >= 2.1)";
    else if (cause && cause.code === "ENOENT") why = "the file is not there";
    else if (cause instanceof TypeError && /URL/i.test(String(cause.message))) why = "its location is not a valid URL (a CommonJS bundle has no import.meta.url)";
    else if (cause instanceof TypeError && /module/i.test(String(cause.message))) why = "the bundler did not import it as a precompiled module";
    else if (cause instanceof TypeError && /status|fetch/i.test(String(cause.message))) why = "fetching it failed (a status that is not OK: the bundler did not emit it)";
    else if (cause instanceof WebAssembly.CompileError) why = "what was found there is not qauth's WebAssembly (an HTML 404 page?)";
  } catch {
    /* keep the general reason */
  }
  return new AuthError("wasm_load_failed", `qauth (${entry} entry) could not load qauth_bg.wasm: ${why}`, FIX, false);
}
