// The few host calls that are smaller and clearer in JS than through wasm-bindgen imports.
// Part of the bindings layer: nothing here knows about OAuth.

/** Every qauth failure. `code` is stable; `retryable` says whether trying again can help. */
export class AuthError extends Error {
  constructor(code, message, hint, retryable, status, retryAfter, messages) {
    super(message);
    this.name = "AuthError";
    this.code = code;
    this.retryable = retryable;
    this.hint = hint;
    if (status !== undefined) this.status = status;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
    if (messages !== undefined) this.messages = messages;
  }
  toJSON() {
    const { name, code, message, hint, retryable, status, retryAfter, messages } = this;
    return { name, code, message, hint, retryable, status, retryAfter, messages };
  }
}

export function makeAuthError(code, message, hint, retryable, status, retryAfter, messages) {
  return new AuthError(code, message, hint, retryable, status, retryAfter, messages);
}

export function isAuthError(e) {
  return e instanceof AuthError;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A signal that aborts after `ms`, or when `other` (a caller's signal) aborts. */
export function timeoutSignal(ms, other) {
  const t = AbortSignal.timeout(Math.max(1, Math.ceil(ms)));
  return other && typeof AbortSignal.any === "function" ? AbortSignal.any([other, t]) : t;
}

/** "timeout" | "abort" | "network": what a rejected fetch or body read means. */
export function failureKind(e) {
  const name = e && e.name;
  return name === "TimeoutError" ? "timeout" : name === "AbortError" ? "abort" : "network";
}

export function hostFetch(request) {
  return fetch(request);
}

/** Calls a user's `onEvent`; a throwing callback never breaks token work. */
export function emit(callback, event) {
  try {
    callback(event);
  } catch {
    /* the caller's bug, not ours to surface */
  }
}

export function randomBytes(n) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}

export async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

export function freezeHeaders(pairs) {
  return Object.freeze(Object.fromEntries(pairs));
}
