// A Node service bundled with esbuild: one QflowAuth, one header fetched from the emulator.
import { QflowAuth } from "qauth";

const env = process.env;
const qflow = new QflowAuth({
  clientId: env.QFLOW_CLIENT_ID, clientSecret: env.QFLOW_CLIENT_SECRET, subscriptionKey: env.QFLOW_SUBSCRIPTION_KEY,
  username: env.QFLOW_USERNAME, password: env.QFLOW_PASSWORD, identityUrl: env.EMULATOR, apiUrl: env.EMULATOR,
});
qflow.headers().then((h) => console.log(h.Authorization.startsWith("Bearer ") ? "Bearer ok" : "no bearer"));
