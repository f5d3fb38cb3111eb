// The bytes between JS and qauth's wasm (both builds; the format is documented in src/js/wire.rs).
// This file moves bytes: it writes what it saw of the arguments into wasm memory, reads the
// answer's records back, and turns an error record into an AuthError. Every rule and message is
// the wasm's but one that guards the wasm itself: how much one call may carry into its memory
// (`MAX_INPUT`, checked before anything is written there). Also here: the two sign-in functions,
// which are the same in both builds.
import { AuthError } from "./error.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const [O, N, K, S, D, M, X, U, F, J, P] = [..."ONKSDMXUFJP"].map((c) => c.charCodeAt(0));
/** Record kinds in answers. */
export const kind = Object.fromEntries([..."RIVErwszLxdD"].map((c) => [c, c.charCodeAt(0)]));
const EMPTY = new Uint8Array(0);
// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** ASCII strings up to this long are copied by hand: cheaper than a call into the encoder. */
const SHORT = 64;
/**
 * The most one call carries into wasm memory, in bytes: far above anything qauth reads (answers
 * are cut at 1 MiB, GraphQL variables never enter the wasm), far below 2^31, where wasm memory
 * offsets stop fitting the i32 the exports take and an allocation could fail (a trap, which ends
 * the instance for the isolate's life).
 */
const MAX_INPUT = 16 * 1024 * 1024;
/** A call refused before it reaches the wasm: too large, or no memory left for it. */
const refused = (message) => new AuthError("invalid_request", message, "Pass smaller arguments; free() clients no longer used.", false);
/** Method names the server build asks about on an object option (set by client.js from the wasm). */
export const probes = [];

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

/** The input of one call: items appended in order. */
export class Items {
  parts = [];
  size = 0;
  /** For each object value written: the probed methods it has, as read then (`{ name: function }`); made on the first. */
  methods;
  item(tag, bytes = EMPTY) {
    this.parts.push(tag, bytes);
    this.size += 5 + bytes.length;
    return this;
  }
  /** A text item: an ASCII one kept as the string, copied in by `Wasm.call` (no encoder call). */
  text(tag, s) {
    // Too long to be taken whatever its encoding: not encoded at all (`call` refuses the items).
    if (typeof s === "string" && s.length > MAX_INPUT) {
      this.size = Infinity;
      return this;
    }
    if (typeof s !== "string" || !ASCII.test(s)) return this.item(tag, encoder.encode(s));
    this.parts.push(tag, s);
    this.size += 5 + s.length;
    return this;
  }
  str(s) {
    return this.text(S, s);
  }
  /** A number item: kept as the number, written straight into wasm memory by `Wasm.call`. */
  num(n) {
    this.parts.push(D, +n);
    this.size += 13;
    return this;
  }
  missing() {
    return this.item(M);
  }
  /** A value as the wasm classifies it: string, number, missing, function, other. */
  value(v) {
    if (typeof v === "string") return this.str(v);
    if (typeof v === "number") return this.num(v);
    if (v === undefined || v === null) return this.item(M);
    if (typeof v === "function") return this.item(F);
    if (typeof v !== "object") return this.item(X);
    // An object: which of the probed methods it has (reading one may throw: then it has not).
    this.item(J);
    const found = {};
    for (const name of probes) {
      let f;
      try {
        f = v[name];
      } catch {
        /* not a method */
      }
      if (typeof f === "function") {
        found[name] = f;
        this.text(P, name);
      }
    }
    (this.methods ??= new Map()).set(v, found);
    return this;
  }
  /** An options argument: its shape, then each own key and what was under it. Returns what was read. */
  record(o) {
    const keys = ownKeys(o);
    const seen = {};
    if (keys === null) {
      this.item(N);
      return seen;
    }
    this.item(O);
    for (const k of keys) {
      this.text(K, k);
      let v;
      try {
        v = o[k];
      } catch {
        this.item(U);
        continue;
      }
      seen[k] = v;
      this.value(v);
    }
    return seen;
  }
}

/** An `E` record as the AuthError it describes. */
export function toError([, code, message, hint, retryable, status, retryAfter, ...messages]) {
  return new AuthError(code, message, hint, retryable === 1, status, retryAfter, messages.length ? messages : undefined);
}

/** One instantiated build of the wasm (the server build, or the browser build), and calls into it. */
export class Wasm {
  exports;
  /** What the wasm imports: `random` fills its memory from the CSPRNG (1) or reports there is none (0). */
  imports = {
    qauth: {
      random: (ptr, len) => {
        try {
          crypto.getRandomValues(new Uint8Array(this.exports.memory.buffer, ptr, len));
          return 1;
        } catch {
          return 0;
        }
      },
    },
  };

  /** Binds to the instantiated wasm (each entry does this once, before any call). */
  connect(instance) {
    this.exports = instance.exports;
  }

  #buffer;
  #mem;
  #view;

  /** Views of wasm memory, made again only when memory grew (its buffer is then a new one). */
  #views() {
    const b = this.exports.memory.buffer;
    if (b !== this.#buffer) {
      this.#buffer = b;
      this.#mem = new Uint8Array(b);
      this.#view = new DataView(b);
    }
  }

  /** Runs op `op` on client `handle`; its answer as records (`[kind, ...values]`). */
  call(op, handle = 0, items = new Items()) {
    if (!(items.size <= MAX_INPUT)) throw refused("an argument is over 16 MiB");
    // Offsets are read unsigned (`>>> 0`); 0 is an allocation that failed (memory could not grow).
    const ptr = this.exports.qauth_alloc(items.size) >>> 0;
    if (ptr === 0) throw refused("qauth's memory is exhausted");
    this.#views();
    let mem = this.#mem;
    let view = this.#view;
    let at = ptr;
    const { parts } = items;
    for (let i = 0; i < parts.length; i += 2) {
      // A part is a number (8 bytes), an ASCII string (one byte per character) or bytes.
      const b = parts[i + 1];
      const n = typeof b === "number" ? 8 : b.length;
      mem[at] = parts[i];
      view.setUint32(at + 1, n, true);
      if (typeof b === "number") view.setFloat64(at + 5, b, true);
      else if (typeof b !== "string") mem.set(b, at + 5);
      else if (n > SHORT) encoder.encodeInto(b, mem.subarray(at + 5, at + 5 + n));
      else for (let j = 0; j < n; j++) mem[at + 5 + j] = b.charCodeAt(j);
      at += 5 + n;
    }
    const out = this.exports.qauth_call(op, handle, Date.now(), ptr, items.size) >>> 0;
    // The call may have grown memory.
    this.#views();
    mem = this.#mem;
    view = this.#view;
    const total = view.getUint32(out, true);
    const records = [];
    let record;
    for (let p = out + 4; p < out + total; ) {
      const tag = mem[p];
      const n = view.getUint32(p + 1, true);
      const body = p + 5;
      if (tag === 107 /* k */) records.push((record = [mem[body]]));
      else record.push(tag === S ? decoder.decode(mem.subarray(body, body + n)) : tag === D ? view.getFloat64(body, true) : undefined);
      p = body + n;
    }
    this.exports.qauth_free(out, total);
    return records;
  }

  /** The first record's values, or its error thrown. */
  one(op, handle, items) {
    const [first] = this.call(op, handle, items);
    if (first[0] === kind.E) throw toError(first);
    return first.slice(1);
  }

  /** `{ url, state, codeVerifier }`: PKCE S256 from the platform CSPRNG. */
  beginAuthorization(options) {
    try {
      const items = new Items();
      items.record(options);
      const [url, state, codeVerifier] = this.one(BEGIN, 0, items);
      return Promise.resolve({ url, state, codeVerifier });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** `{ code }` from the callback URL, if its `state` is the expected one. */
  completeAuthorization(callbackUrl, options) {
    const url = urlInput(callbackUrl);
    const items = url === undefined ? new Items().item(X) : new Items().str(url);
    items.record(options);
    const [code] = this.one(COMPLETE, 0, items);
    return { code };
  }
}

const BEGIN = 1;
const COMPLETE = 2;
