// The sign-in redirect's argument cases, run against the browser build (in Chromium) and the
// server build (in Node): both must answer every case the same way (same code, message, hint,
// same sync/async shape), since both call the same core. Plain JS: runs in a page and in Node.

/** Values a caller might pass by mistake, as `[label, make]`. */
function values() {
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  return [
    ["undefined", () => undefined],
    ["null", () => null],
    ["a number", () => 42],
    ["an empty object", () => ({})],
    ["an array", () => ["x"]],
    ["a symbol", () => Symbol("x")],
    ["a string", () => "x"],
    ["an empty string", () => ""],
    ["a blank string", () => "   "],
    ["a revoked Proxy", () => revoked.proxy],
    ["a function", () => () => "x"],
  ];
}

export function cases({ beginAuthorization, completeAuthorization }, idp) {
  const good = { clientId: "qauth-demo", redirectUri: "http://127.0.0.1:9/cb", identityUrl: idp };
  const list = [];
  const begin = (label, make) => list.push([`beginAuthorization(${label})`, () => beginAuthorization(make())]);
  const complete = (label, url, make) => list.push([`completeAuthorization(${label})`, () => completeAuthorization(url(), make())]);

  for (const [what, make] of values()) begin(what, make);
  for (const field of ["clientId", "redirectUri", "identityUrl", "authorizeUrl", "scope"]) {
    for (const [what, make] of values()) begin(`{ ...good, ${field}: ${what} }`, () => ({ ...good, [field]: make() }));
  }
  begin("good", () => good);
  begin("{ ...good, scopes }", () => ({ ...good, scopes: "openid" }));
  begin("{ ...good, clientID }", () => ({ ...good, clientID: "x" }));
  // Options are own properties: an inherited one (or a polluted Object.prototype) is none.
  begin("inherited options", () => Object.create({ ...good }));
  begin("a throwing getter", () => Object.defineProperty({ ...good }, "clientId", { enumerable: true, get: () => { throw new Error("CANARY-getter"); } }));
  for (const u of ["http://evil.example/authz", "https://x.example/authz?x=1", "ftp://x.example/a", "https://user:pw@x.example/a", "https://x.example/a/../b", "https://x.example:99999/a", "https://[::2]/a", "https://x.example/authz"]) {
    begin(`{ ...good, authorizeUrl: ${u} }`, () => ({ ...good, authorizeUrl: u }));
  }
  for (const u of ["http://127.0.0.1:9/cb?from=app", "https://app.example/cb", "http://app.example/cb", "cb"]) {
    begin(`{ ...good, redirectUri: ${u} }`, () => ({ ...good, redirectUri: u }));
  }

  const cb = (q) => () => `http://127.0.0.1:9/cb?${q}`;
  const state = () => ({ state: "s1" });
  complete("good", cb("code=code-1&state=s1"), state);
  complete("a URL object", () => new URL("http://127.0.0.1:9/cb?code=c%2F1&state=s1"), state);
  complete("a fake URL", () => Object.create(URL.prototype, { href: { value: "http://127.0.0.1:9/cb?code=c&state=s1" } }), state);
  for (const [what, make] of values()) complete(`${what}, { state }`, make, state);
  for (const [what, make] of values()) complete(`url, ${what}`, cb("code=c&state=s1"), make);
  for (const [what, make] of values()) complete(`url, { state: ${what} }`, cb("code=c&state=s1"), () => ({ state: make() }));
  complete("url, { nope }", cb("code=c&state=s1"), () => ({ state: "s1", nope: 1 }));
  complete("other state", cb("code=c&state=s2"), state);
  complete("no state", cb("code=c"), state);
  complete("repeated code", cb("code=a&code=b&state=s1"), state);
  complete("neither", cb("state=s1"), state);
  complete("access_denied", cb("error=access_denied&error_description=User+said+no&state=s1"), state);
  complete("an error echoing the code", cb("code=CANARY-code-123&error=server_error&error_description=bad+CANARY-code-123&state=s1"), state);
  complete("an unknown error", cb("error=weird_thing&state=s1"), state);
  complete("an error with a bad state", cb("error=access_denied&state=zz"), state);
  complete("bad escapes", cb("code=%zz&state=s1#frag"), state);
  complete("invalid UTF-8", cb("code=%ff&state=s1"), state);
  return list;
}

/** Runs every case; what each did, comparable across builds (no random values). */
export async function outcomes(api, idp) {
  const out = [];
  for (const [label, fn] of cases(api, idp)) {
    let r;
    let shape = "returned";
    try {
      r = fn();
      if (r instanceof Promise) {
        shape = "resolved";
        r = await r.catch((e) => {
          shape = "rejected";
          return e;
        });
      }
    } catch (e) {
      shape = "threw";
      r = e;
    }
    if (shape === "threw" || shape === "rejected") {
      out.push({ label, shape, authError: r instanceof api.AuthError, name: r?.name, code: r?.code, message: r?.message, hint: r?.hint, retryable: r?.retryable });
    } else {
      const url = typeof r?.url === "string" ? new URL(r.url) : undefined;
      out.push({
        label,
        shape,
        keys: Object.keys(r ?? {}).sort(),
        code: r?.code,
        authorize: url && `${url.origin}${url.pathname}`,
        params: url && [...url.searchParams.keys()].join(","),
        lengths: r?.state !== undefined ? [r.state.length, r.codeVerifier.length] : undefined,
      });
    }
  }
  return out;
}
