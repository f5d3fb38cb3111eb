// The demo page: the authorization-code redirect, and nothing secret. The worker starts the flow
// (POST /auth/start: state + PKCE pair, the verifier kept server-side, a pre-login cookie binding
// the flow to this browser) and answers with the authorize URL; the page keeps only `state` in
// sessionStorage, for one use, to recognise the callback. The code + state go to the worker
// (POST /auth/session), which answers with an HttpOnly cookie. API data comes through /api/….
import { completeAuthorization, AuthError } from "qauth";

const PENDING = "qauth:pending";
const $ = (id) => document.getElementById(id);
const redirectUri = () => location.origin + "/";

/** What each error means for the person in front of the page. */
const WORDS = {
  access_denied: ["Sign-in cancelled", "You cancelled the sign-in at Qflow, so nothing was shared. You can try again."],
  state_mismatch: [
    "Sign-in response not recognised",
    "This sign-in response does not match a sign-in started in this browser tab (its state is missing or different), or it was already used. Nothing was signed in. Please sign in again.",
  ],
  invalid_grant: ["Sign-in could not be completed", "The sign-in code was already used, has expired, or does not match this browser's request. Please sign in again."],
  session_expired: ["Session expired", "Your session has expired. Please sign in again."],
  network: ["Connection problem", "The demo worker could not be reached. Check your connection and try again."],
};

function showError(code, message) {
  const [title, text] = WORDS[code] ?? ["Something went wrong", message || "Please try again."];
  $("error-title").textContent = title;
  $("error-text").textContent = text;
  $("error-code").textContent = code;
  $("error").hidden = false;
}

function view(name, status) {
  $("signed-out").hidden = name !== "signed-out";
  $("signed-in").hidden = name !== "signed-in";
  $("status").textContent = status;
}

async function call(path, init) {
  try {
    const r = await fetch(path, { credentials: "same-origin", ...init });
    return { status: r.status, body: await r.json().catch(() => ({})) };
  } catch {
    return { status: 0, body: { code: "network" } };
  }
}

async function signIn() {
  $("sign-in").disabled = true;
  const start = await call("/auth/start", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ redirectUri: redirectUri() }),
  });
  if (start.status !== 200 || typeof start.body.url !== "string") {
    $("sign-in").disabled = false;
    return showError(start.body.code, start.body.message);
  }
  const url = new URL(start.body.url);
  sessionStorage.setItem(PENDING, JSON.stringify({ state: url.searchParams.get("state") }));
  location.assign(url.href);
}

/** Back from Qflow: check `state`, hand the code to the worker. Returns false if this is no callback. */
async function finishSignIn() {
  const params = new URLSearchParams(location.search);
  if (!["code", "error", "state"].some((k) => params.has(k))) return false;
  const callbackUrl = location.href;
  const saved = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING); // one use, whatever happens next
  history.replaceState(null, "", "/"); // the code leaves the address bar and the history
  let pending = null;
  try {
    pending = JSON.parse(saved);
  } catch {}
  try {
    const { code } = completeAuthorization(callbackUrl, { state: pending?.state });
    const r = await call("/auth/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code, state: pending.state }),
    });
    if (r.status !== 200) showError(r.body.code, r.body.message);
  } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    showError(e.code, e.message);
  }
  return true;
}

async function load() {
  view("none", "Loading…");
  const events = await call("/api/checkin/v1/api/events");
  if (events.status === 401) {
    if (events.body.code === "session_expired") showError("session_expired");
    return view("signed-out", "You are signed out.");
  }
  if (events.status !== 200) {
    showError(events.body.code, events.body.message);
    return view("signed-out", "Could not load your data.");
  }
  $("user").textContent = events.body.user;
  $("events").replaceChildren(
    ...events.body.events.map((e) => {
      const li = document.createElement("li");
      const id = document.createElement("small");
      id.textContent = ` (${e.id})`;
      li.append(e.name, id);
      return li;
    }),
  );
  const first = events.body.events[0]?.id ?? "";
  const comms = await call(`/api/comms-access?eventId=${encodeURIComponent(first)}`);
  $("comms").textContent =
    comms.status !== 200
      ? "Comms API access could not be checked."
      : comms.body.enabled
        ? "Comms API access is enabled for this account: you can send messages to attendees."
        : "Comms API access is not enabled for this account. Ask Qflow support to add you to the Comms allow-list.";
  view("signed-in", "Signed in.");
}

async function signOut() {
  const r = await call("/auth/logout", { method: "POST" });
  // Only the worker's word ends the session: on a shared machine, "signed out" must be true.
  if (r.status !== 200) return showError(r.body.code ?? "network", r.body.message ?? "Sign-out failed: you are still signed in. Try again.");
  $("error").hidden = true;
  view("signed-out", "You are signed out.");
}

$("sign-in").addEventListener("click", signIn);
$("sign-out").addEventListener("click", signOut);
$("reload").addEventListener("click", () => {
  $("error").hidden = true;
  load();
});
await finishSignIn();
await load();
document.body.dataset.ready = "true";
