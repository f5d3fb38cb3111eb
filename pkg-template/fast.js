// The cache-hit path of `headers()` in JS, so a hit costs no JS↔wasm crossing: the exported
// classes extend the generated ones (no patching of their prototypes). The core stays the only
// owner of the freshness rule: on every change of the cached token it calls the function
// registered here with (Promise resolved with the frozen headers, the time until which the core
// says it may be handed out) or (undefined, 0); a caller past that time, or with nothing cached,
// goes into wasm as before.
import { QflowAuth as QflowCore, QpienAuth as QpienCore } from "./qauth.js";

const STATE = Symbol("qauth.hit");

/** The cached answer, or undefined (registering the mirror on first use). No allocation on a hit. */
function hit(client) {
  const s = client[STATE];
  if (s !== undefined && Date.now() < s.until) return s.promise;
  if (s === undefined) {
    // First use: register the mirror (a freed client has FREED and never gets here).
    // The registered function closes over this small object only, never over the client.
    const st = (client[STATE] = { promise: undefined, until: 0 });
    client.__mirror((promise, until) => {
      st.promise = promise;
      st.until = until;
    });
  }
  return undefined;
}

/** After `free()`: a state that never hits and never registers again. */
const FREED = Object.freeze({ promise: undefined, until: 0 });

export class QflowAuth extends QflowCore {
  headers() {
    return hit(this) ?? super.headers();
  }
  /** Forgets the cached headers too: a freed client hands out no token. */
  free() {
    this[STATE] = FREED;
    super.free();
  }
}

export class QpienAuth extends QpienCore {
  headers() {
    return hit(this) ?? super.headers();
  }
  free() {
    this[STATE] = FREED;
    super.free();
  }
}

// The generated classes bind `Symbol.dispose` to their own `free`; `using` must forget the cache too.
if (Symbol.dispose) {
  for (const C of [QflowAuth, QpienAuth]) {
    Object.defineProperty(C.prototype, Symbol.dispose, { value: C.prototype.free, writable: true, configurable: true });
  }
}
