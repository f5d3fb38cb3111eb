// A browser app's sign-in redirect, as a user writes it, built by each bundler under test.
// `?idp=` names the identity server (the emulator); the callback comes back to this page.
import { beginAuthorization, completeAuthorization, AuthError } from "qauth";

const out = document.querySelector("#out");
const here = location.origin + location.pathname;
const params = new URLSearchParams(location.search);

document.querySelector("#signin").addEventListener("click", async () => {
  const { url, state } = await beginAuthorization({ clientId: "qauth-demo", redirectUri: here, identityUrl: params.get("idp") });
  sessionStorage.setItem("qauth-state", state);
  location.assign(url);
});

if (params.has("code") || params.has("error")) {
  const state = sessionStorage.getItem("qauth-state");
  sessionStorage.removeItem("qauth-state");
  try {
    const { code } = completeAuthorization(location.href, { state });
    out.textContent = `signed-in code-length=${code.length}`;
  } catch (e) {
    out.textContent = e instanceof AuthError ? `error ${e.code}` : `unexpected ${e}`;
  }
}
document.body.dataset.ready = "1";
