// A Worker as the package README shows it: QflowAuth through the TokenBroker, behind qauth/hono.
import { Hono } from "hono";
import { QflowAuth } from "qauth";
import { qflowProxy } from "qauth/hono";
export { TokenBroker } from "qauth";

const app = new Hono();
let proxy;
app.use("/qflow/*", (c, next) => {
  proxy ??= qflowProxy({
    auth: new QflowAuth({
      clientId: c.env.QFLOW_CLIENT_ID, clientSecret: c.env.QFLOW_CLIENT_SECRET, subscriptionKey: c.env.QFLOW_SUBSCRIPTION_KEY,
      username: c.env.QFLOW_USERNAME, password: c.env.QFLOW_PASSWORD, broker: c.env.TOKEN_BROKER,
    }),
    prefix: "/qflow",
    allow: ["GET /checkin/v1/api/events"],
  });
  return proxy(c, next);
});
export default app;
