// The cache-hit path of `headers()` in JS, so a hit costs no JS↔wasm crossing. The core stays the
// only owner of the cache: on every change of the cached token it calls the function registered
// here with (Promise resolved with the frozen headers, ms until which it may be handed out) or
// (undefined, 0); a caller past that time, or with nothing cached, goes into wasm as before.
import { QflowAuth, QpienAuth } from "./qauth.js";

const STATE = Symbol("qauth.hit");

for (const C of [QflowAuth, QpienAuth]) {
  const slow = C.prototype.headers;
  C.prototype.headers = function headers() {
    const s = this[STATE];
    if (s !== undefined && Date.now() < s.until) return s.promise;
    if (s === undefined) {
      // The registered function closes over this small object only, never over the client.
      const st = (this[STATE] = { promise: undefined, until: 0 });
      this.__mirror((promise, until) => {
        st.promise = promise;
        st.until = until;
      });
    }
    return slow.call(this);
  };
}

export { QflowAuth, QpienAuth };
