// The few host calls that are smaller and clearer in JS than through wasm-bindgen imports.
// Part of the bindings layer: nothing here knows about OAuth.

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A signal that aborts after `ms`, or when `other` (a caller's signal) aborts. */
export function timeoutSignal(ms, other) {
  const t = AbortSignal.timeout(Math.max(1, Math.ceil(ms)));
  return other && typeof AbortSignal.any === "function" ? AbortSignal.any([other, t]) : t;
}

/**
 * "timeout" | "abort" | "refused" | "network": what a rejected fetch or body read means.
 * "refused" only where the runtime proves nothing was sent (Node's ECONNREFUSED).
 */
export function failureKind(e) {
  try {
    const name = e && e.name;
    if (name === "TimeoutError") return "timeout";
    if (name === "AbortError") return "abort";
    return e && e.cause && e.cause.code === "ECONNREFUSED" ? "refused" : "network";
  } catch {
    return "network";
  }
}

export function hostFetch(request) {
  try {
    return fetch(request);
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * The body as text, read chunk by chunk and abandoned past `cap` bytes (resolves `null`), so an
 * oversized answer is never held whole, here or in wasm memory.
 */
export async function readCapped(response, cap) {
  // Cancels are not awaited: on a clone (the 403 probe), cancelling one branch of a tee settles
  // only when the other branch is read, which is the caller's business.
  const declared = Number(response.headers.get("content-length"));
  if (declared > cap || !response.body) {
    if (response.body) response.body.cancel().catch(() => {});
    return declared > cap ? null : "";
  }
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * Calls a store method (`get`/`put` of a KV namespace, DO storage, or the caller's object) and
 * awaits it within `ms`. Never throws: a throw, a rejection or a hang all come back as a rejection.
 */
export async function callStore(obj, method, args, ms) {
  let timer;
  try {
    const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("store timeout")), ms)));
    return await Promise.race([(async () => Reflect.apply(method, obj, args))(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Asks the TokenBroker Durable Object named `name` for a token. Never rejects: resolves the
 * object's answer (`{ token }` or `{ error }`), or `{ failed: "timeout" | "threw" | "invalid" }`.
 */
export async function brokerLease(ns, name, request, ms) {
  let timer;
  try {
    const stub = ns.get(ns.idFromName(name));
    const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve({ failed: "timeout" }), ms)));
    const answer = await Promise.race([stub.lease(request), timeout]);
    return answer && typeof answer === "object" ? answer : { failed: "threw" };
  } catch (e) {
    return { failed: e instanceof TypeError && !e.remote ? "invalid" : "threw" };
  } finally {
    clearTimeout(timer);
  }
}

/** Calls a user's `onEvent`; a throwing callback never breaks token work. */
export function emit(callback, event) {
  try {
    callback(event);
  } catch {
    /* the caller's bug, not ours to surface */
  }
}

/** `n` bytes from the platform CSPRNG; empty when there is none (the caller refuses to go on). */
export function randomBytes(n) {
  try {
    const b = new Uint8Array(n);
    crypto.getRandomValues(b);
    return b;
  } catch {
    return new Uint8Array(0);
  }
}


export function freezeHeaders(pairs) {
  return Object.freeze(Object.fromEntries(pairs));
}
