// The Worker that hosts the package's TokenBroker class (as a user's Worker re-exports it), plus
// three broken brokers for the failure tests: one that throws, one whose storage fails, one that
// never answers. Other Workers (separate isolates) bind these by scriptName.
import { TokenBroker } from "qauth";

export { TokenBroker };

export class ThrowingBroker extends TokenBroker {
  async lease() {
    throw new Error("the object broke; CANARY-thrown-secret in its message");
  }
}

export class FailingStorageBroker extends TokenBroker {
  get store() {
    const fail = async () => {
      throw new Error("storage down CANARY-storage-secret");
    };
    return { get: fail, put: fail };
  }
}

/**
 * A store wrapper (as the README invites) whose next refresh-token write fails once, or never
 * ends, on demand; or ("access") whose next write of a kept access token fails.
 */
let nextPut = null; // null | "fail" | "hang" | "access"
export class FlakyBroker extends TokenBroker {
  get store() {
    const inner = super.store;
    return {
      get: (k) => inner.get(k),
      put: async (k, v) => {
        if (nextPut === "access" && k.endsWith("#access") && v !== "") {
          nextPut = null;
          throw new Error("transient");
        }
        if (nextPut && nextPut !== "access" && !k.endsWith("#access")) {
          const mode = nextPut;
          nextPut = null;
          if (mode === "hang") return new Promise(() => {});
          throw new Error("transient");
        }
        return inner.put(k, v);
      },
    };
  }
  async armFailure(mode = "fail") {
    nextPut = mode;
    return true;
  }
}

export class SilentBroker extends TokenBroker {
  lease() {
    return new Promise(() => {});
  }
}

export default {
  fetch() {
    return new Response("token broker host", { status: 404 });
  },
};
