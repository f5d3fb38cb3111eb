// How a JS argument is looked at before the wasm sees it, without running user code where that
// can be avoided. Shared by both builds (the browser build's entry imports it too).

/** A non-array object's own string keys; null for anything else, or when reading throws (a revoked Proxy). */
export function ownKeys(o) {
  try {
    return o !== null && typeof o === "object" && !Array.isArray(o) ? Object.keys(o) : null;
  } catch {
    return null;
  }
}

/** A string, or a URL object's href; undefined for anything else, or a fake URL. */
export function urlInput(v) {
  if (typeof v === "string") return v;
  try {
    const href = typeof URL === "function" && v instanceof URL ? v.href : undefined;
    return typeof href === "string" ? href : undefined;
  } catch {
    return undefined;
  }
}
