// The cache-hit path of `headers()` in JS, so a hit costs no JS↔wasm crossing: the exported
// classes extend the generated ones (no patching of their prototypes). The core stays the only
// owner of the freshness rule: on every change of the cached token it calls the function
// registered here with (Promise resolved with the frozen headers, the time until which the core
// says it may be handed out) or (undefined, 0); a caller past that time, or with nothing cached,
// goes into wasm as before.
import { QflowAuth as QflowCore, QpienAuth as QpienCore } from "./qauth.js";
import { AuthError } from "./glue/error.js";

const STATE = Symbol("qauth.hit");
/** After `free()`: a state that never hits and never registers again. */
const FREED = Object.freeze({ promise: undefined, until: 0 });

const freed = () => new AuthError("invalid_request", "this client was freed (free() or the end of a `using` scope)", "Create a new client; a freed one holds no token any more.", false);

/** Frees the wasm side once; a second call (say, `free()` inside a `using` scope) does nothing. */
function release(client, free) {
  if (client[STATE] === FREED) return;
  client[STATE] = FREED;
  free.call(client);
}

/** The cached answer, or undefined (registering the mirror on first use). No allocation on a hit. */
function hit(client) {
  const s = client[STATE];
  if (s !== undefined && Date.now() < s.until) return s.promise;
  if (s === FREED) return Promise.reject(freed());
  if (s === undefined) {
    // First use: register the mirror. The registered function closes over this small object only, never over the client.
    const st = (client[STATE] = { promise: undefined, until: 0 });
    client.__mirror((promise, until) => {
      st.promise = promise;
      st.until = until;
    });
  }
  return undefined;
}

export class QflowAuth extends QflowCore {
  headers() {
    return hit(this) ?? super.headers();
  }
  /** Forgets the cached headers too: a freed client hands out no token. */
  free() {
    release(this, super.free);
  }
}

export class QpienAuth extends QpienCore {
  headers() {
    return hit(this) ?? super.headers();
  }
  free() {
    release(this, super.free);
  }
}

// The generated classes bind `Symbol.dispose` to their own `free`; `using` must forget the cache too.
if (Symbol.dispose) {
  for (const C of [QflowAuth, QpienAuth]) {
    Object.defineProperty(C.prototype, Symbol.dispose, { value: C.prototype.free, writable: true, configurable: true });
  }
}
