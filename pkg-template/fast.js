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
    // The registered function closes over this small object only, never over the client.
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
}

export class QpienAuth extends QpienCore {
  headers() {
    return hit(this) ?? super.headers();
  }
}
