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
