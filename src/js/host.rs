//! Host services for the core: HTTP over the global `fetch` (capped body reads), timers, option
//! and argument reading at the boundary, events, the caller's `store` and `broker`, and
//! `AuthError` → JS.
//!
//! Every value from JS is checked here before the core sees it, and every call into JS that can
//! throw goes through an import that catches (or a glue function that cannot throw): an exception
//! unwinding through wasm would leave the client's state half-updated for the isolate's life.

use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, RequestRedirect, Response};

use crate::config::{known_option, not_an_object, read_num, read_str, Seen};
use crate::error::{AuthError, ErrorCode};
use crate::event::{Event, Value};
use crate::http::{bad_response, HttpRequest, HttpResponse};

#[wasm_bindgen(module = "/src/js/error.js")]
extern "C" {
    #[wasm_bindgen(js_name = makeAuthError)]
    fn make_auth_error(code: &str, message: &str, hint: &str, retryable: bool, status: JsValue, retry_after: JsValue, messages: JsValue) -> JsValue;
}

#[wasm_bindgen(module = "/src/js/values.js")]
extern "C" {
    #[wasm_bindgen(js_name = ownKeys)]
    fn own_keys(o: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = urlInput)]
    pub fn url_input(v: &JsValue) -> Option<String>;
}

#[wasm_bindgen(module = "/src/js/glue.js")]
extern "C" {
    fn sleep(ms: f64) -> Promise;
    #[wasm_bindgen(js_name = timeoutSignal)]
    fn timeout_signal(ms: f64, other: Option<web_sys::AbortSignal>) -> web_sys::AbortSignal;
    #[wasm_bindgen(js_name = failureKind)]
    fn failure_kind(e: &JsValue) -> String;
    #[wasm_bindgen(js_name = hostFetch)]
    fn host_fetch(r: &Request) -> Promise;
    #[wasm_bindgen(js_name = readCapped)]
    fn read_capped(r: &Response, cap: f64) -> Promise;
    #[wasm_bindgen(js_name = emit)]
    fn emit_js(callback: &Function, event: &Object);
    #[wasm_bindgen(js_name = randomBytes)]
    pub fn random_bytes(n: u32) -> Vec<u8>;
    #[wasm_bindgen(js_name = freezeHeaders)]
    pub fn freeze_headers(pairs: &Array) -> JsValue;
    #[wasm_bindgen(js_name = callStore)]
    fn call_store(obj: &JsValue, method: &Function, args: &Array, ms: f64) -> Promise;
    #[wasm_bindgen(js_name = brokerLease)]
    fn broker_lease(ns: &JsValue, name: &str, request: &Object, ms: f64) -> Promise;
}

impl From<AuthError> for JsValue {
    fn from(e: AuthError) -> JsValue {
        let opt = |v: Option<u32>| v.map_or(JsValue::UNDEFINED, JsValue::from);
        let messages = if e.messages.is_empty() { JsValue::UNDEFINED } else { e.messages.iter().map(|m| JsValue::from_str(m)).collect::<Array>().into() };
        make_auth_error(e.code.as_str(), &e.message, e.code.hint(), e.retryable(), opt(e.status.map(u32::from)), opt(e.retry_after), messages)
    }
}

/// Runs `work` as a Promise. Every async export goes through this one instantiation of
/// `future_to_promise` (a boxed future), instead of one copy of its machinery per method.
pub(super) fn promise(work: impl core::future::Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let boxed: core::pin::Pin<Box<dyn core::future::Future<Output = Result<JsValue, JsValue>>>> = Box::pin(work);
    wasm_bindgen_futures::future_to_promise(boxed)
}

pub(super) fn now() -> f64 {
    js_sys::Date::now()
}

pub(super) async fn wait(ms: f64) {
    let _ = JsFuture::from(sleep(ms)).await;
}

/// A method argument that is not what the method takes: `invalid_request`, nothing sent.
pub(super) fn bad_arg(what: &str) -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, what)
}

/// A plain object argument (not an array, not a revoked Proxy), checked without user code.
pub(super) fn is_record(v: &JsValue) -> bool {
    own_keys(v).is_object()
}

/// A fetch rejection or aborted body read as an `AuthError`. The host's message is not kept:
/// it can echo a URL, and we do not put URLs into errors.
fn transport_error(e: &JsValue, what: &str) -> AuthError {
    let kind = failure_kind(e);
    let (code, text) = match kind.as_str() {
        "timeout" => (ErrorCode::Timeout, " did not answer within timeoutMs"),
        "abort" => (ErrorCode::Network, " request was aborted"),
        "refused" => (ErrorCode::Network, " refused the connection"),
        _ => (ErrorCode::Network, " could not be reached"),
    };
    let mut err = AuthError::new(code, crate::http::cat(what, text));
    err.unsent = kind == "refused";
    err
}

pub(super) fn headers_from(pairs: &[(&'static str, String)]) -> Result<Headers, AuthError> {
    let h = Headers::new().map_err(|_| AuthError::new(ErrorCode::InvalidRequest, "cannot build headers"))?;
    for (k, v) in pairs {
        h.set(k, v).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "a credential contains characters not allowed in an HTTP header"))?;
    }
    Ok(h)
}

/// Sends a request; its `init` carries the timeout signal, which also covers reading the body.
pub(super) async fn send_raw(req: &Request, what: &str) -> Result<Response, AuthError> {
    let resp = JsFuture::from(host_fetch(req)).await.map_err(|e| transport_error(&e, what))?;
    resp.dyn_into::<Response>().map_err(|_| AuthError::new(ErrorCode::BadResponse, crate::http::cat(what, " answered with something that is not a Response")))
}

/// The body as text, read no further than `cap` bytes: past it, `bad_response` with the status.
pub(super) async fn read_text(resp: &Response, cap: usize, what: &str) -> Result<String, AuthError> {
    let t = JsFuture::from(read_capped(resp, cap as f64)).await.map_err(|e| transport_error(&e, what))?;
    t.as_string().ok_or_else(|| bad_response(what, resp.status(), "a body larger than qauth reads (see the README's limits)"))
}

pub(super) fn init(method: &str, headers: &Headers, timeout_ms: f64, user_signal: Option<web_sys::AbortSignal>) -> RequestInit {
    let i = RequestInit::new();
    i.set_method(method);
    i.set_headers(headers);
    // Never follow a redirect with credentials attached (and Workers reject "error").
    i.set_redirect(RequestRedirect::Manual);
    i.set_signal(Some(&timeout_signal(timeout_ms, user_signal)));
    i
}

/// One exchange with a token endpoint for the core; the body is read up to `MAX_BODY_BYTES`.
pub(super) async fn send(r: &HttpRequest, timeout_ms: f64, what: &str) -> Result<HttpResponse, AuthError> {
    let i = init(r.method, &headers_from(&r.headers)?, timeout_ms, None);
    i.set_body(&JsValue::from_str(&r.body));
    let req = Request::new_with_str_and_init(&r.url, &i).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "the endpoint URL is not valid for fetch"))?;
    let resp = send_raw(&req, what).await?;
    let status = resp.status();
    let retry_after = resp.headers().get("retry-after").ok().flatten();
    let body = read_text(&resp, crate::http::MAX_BODY_BYTES, what).await?;
    Ok(HttpResponse { status, retry_after, body })
}

/// The caller's `onEvent`. Events carry names, timings and codes, never a secret. Cloned out of
/// the client before emitting, so a callback can call any method of its client.
#[derive(Clone, Default)]
pub(super) struct Events(Option<Function>);

impl Events {
    /// The one place an `Event` becomes a JS object.
    pub(super) fn emit(&self, event: Event) {
        let Some(f) = &self.0 else { return };
        let (kind, values) = event.parts();
        let o = Object::new();
        let _ = Reflect::set(&o, &"type".into(), &kind.into());
        for (k, v) in Event::names(kind).iter().zip(values) {
            let v = match v {
                Value::Str(s) => JsValue::from_str(s),
                Value::Num(n) => JsValue::from_f64(n),
            };
            let _ = Reflect::set(&o, &JsValue::from_str(k), &v);
        }
        emit_js(f, &o);
    }
}

/// Reads an options object from JS. A missing or wrong value, an unknown name (with the closest
/// known one) or an object that throws when read is an error naming the option: `invalid_config`
/// for a constructor, `invalid_request` for a method's argument.
pub(super) struct Options<'a> {
    v: &'a JsValue,
    code: ErrorCode,
    /// Its own enumerable keys: an option is one of these, never an inherited property (so a
    /// polluted `Object.prototype.identityUrl` is no option), the same rule as the browser build.
    keys: Vec<String>,
}

impl<'a> Options<'a> {
    /// `v` must be an object whose own keys are all in `known`. `what` names it in errors.
    pub(super) fn new(v: &'a JsValue, what: &str, known: &[&str], code: ErrorCode) -> Result<Options<'a>, AuthError> {
        let keys = own_keys(v);
        let keys = keys.dyn_ref::<Array>().ok_or_else(|| not_an_object(what, code))?;
        let keys: Vec<String> = keys.iter().map(|k| k.as_string().unwrap_or_default()).collect();
        for k in &keys {
            known_option(k, known, what, code)?;
        }
        Ok(Options { v, code, keys })
    }

    fn err(&self, name: &str, problem: &str) -> AuthError {
        let mut e = AuthError::config(name, problem);
        e.code = self.code;
        e
    }

    /// The value of the own property `name`: `Ok(None)` when it is not one, or is undefined / null.
    fn get(&self, name: &str) -> Result<Option<JsValue>, ()> {
        if !self.keys.iter().any(|k| k == name) {
            return Ok(None);
        }
        let v = Reflect::get(self.v, &JsValue::from_str(name)).map_err(|_| ())?;
        Ok((!v.is_undefined() && !v.is_null()).then_some(v))
    }

    /// What is under `name`, as `config` classifies it.
    fn seen(&self, name: &str) -> Seen {
        match self.get(name) {
            Err(()) => Seen::Unreadable,
            Ok(None) => Seen::Missing,
            Ok(Some(v)) => v.as_string().map(Seen::Str).or_else(|| v.as_f64().map(Seen::Num)).unwrap_or(Seen::Other),
        }
    }

    /// A present value, or the error for one that could not be read.
    fn value(&self, name: &str) -> Result<Option<JsValue>, AuthError> {
        self.get(name).map_err(|()| self.err(name, "could not be read"))
    }

    pub(super) fn str(&self, name: &str) -> Result<Option<String>, AuthError> {
        read_str(name, self.seen(name), self.code)
    }

    pub(super) fn num(&self, name: &str) -> Result<Option<f64>, AuthError> {
        read_num(name, self.seen(name), self.code)
    }

    pub(super) fn func(&self, name: &str) -> Result<Option<Function>, AuthError> {
        self.value(name)?.map(|v| v.dyn_into::<Function>().map_err(|_| self.err(name, "must be a function"))).transpose()
    }

    pub(super) fn events(&self) -> Result<Events, AuthError> {
        Ok(Events(self.func("onEvent")?))
    }

    fn methods(&self, name: &str, methods: &[&str], problem: &str) -> Result<Option<(JsValue, Vec<Function>)>, AuthError> {
        let Some(obj) = self.value(name)? else { return Ok(None) };
        let mut fs = Vec::new();
        for m in methods {
            let f = Reflect::get(&obj, &JsValue::from_str(m)).ok().and_then(|f| f.dyn_into::<Function>().ok());
            fs.push(f.ok_or_else(|| self.err(name, problem))?);
        }
        Ok(Some((obj, fs)))
    }

    /// `store`: any object with `get(key)` and `put(key, value)` (a KV namespace, DO storage);
    /// each call must settle within `timeout_ms`.
    fn store(&self, timeout_ms: f64) -> Result<Option<Store>, AuthError> {
        let Some((obj, mut fs)) = self.methods("store", &["get", "put"], "must have get(key) and put(key, value) methods")? else { return Ok(None) };
        let (put, get) = (fs.pop(), fs.pop());
        Ok(get.zip(put).map(|(get, put)| Store { obj, get, put, timeout_ms }))
    }

    /// The package's internal flag for the client inside `TokenBroker` (a Symbol key, so it is
    /// no option a user can write by mistake, nor one an "unknown option" hint suggests).
    fn broker_side(&self) -> bool {
        // An own property only: a polluted prototype must not turn a user's client into the broker's.
        let key = js_sys::Symbol::for_("qauth.brokerSide");
        let target: &Object = self.v.unchecked_ref();
        Reflect::get_own_property_descriptor(target, &key)
            .ok()
            .filter(|d| d.is_object())
            .and_then(|d| Reflect::get(&d, &"value".into()).ok())
            .is_some_and(|v| v.is_truthy())
    }

    /// `broker`: a Durable Object namespace bound to `TokenBroker` (`idFromName` and `get`).
    fn broker(&self) -> Result<Option<Broker>, AuthError> {
        let problem = "must be a Durable Object namespace bound to the `TokenBroker` class (env.TOKEN_BROKER)";
        Ok(self.methods("broker", &["idFromName", "get"], problem)?.map(|(ns, _)| Broker { ns }))
    }

    /// Where a client's tokens live, one rule for both classes: a `broker` replaces a `store`;
    /// inside the broker the store is the object's storage; `public_store`: whether the class
    /// takes a `store` from its users (QpienAuth has no refresh token to keep).
    pub(super) fn home(&self, public_store: bool) -> Result<Home, AuthError> {
        let broker_side = self.broker_side();
        let (_, timeout_ms) = crate::config::timing(self.num("refreshSkewSeconds")?, self.num("timeoutMs")?)?;
        let store = self.store(timeout_ms)?.map(Rc::new);
        let broker = self.broker()?.map(Rc::new);
        if broker.is_some() && (store.is_some() || broker_side) {
            return Err(self.err("broker", "replaces `store`: the broker keeps the tokens in its own storage"));
        }
        if store.is_some() && !public_store && !broker_side {
            return Err(self.err("store", "is not an option here: to share one token across isolates, use `broker`"));
        }
        Ok(Home { store, broker, broker_side })
    }
}

/// Where a client's tokens live (see `Options::home`).
pub(super) struct Home {
    pub store: Option<Rc<Store>>,
    pub broker: Option<Rc<Broker>>,
    pub broker_side: bool,
}

/// The caller's persistent store for refresh tokens.
pub(super) struct Store {
    obj: JsValue,
    get: Function,
    put: Function,
    timeout_ms: f64,
}

fn store_error(op: &str) -> AuthError {
    AuthError::new(ErrorCode::StoreFailed, crate::http::cat("the store's ", op))
}

impl Store {
    async fn call(&self, f: &Function, args: &Array, op: &str) -> Result<JsValue, AuthError> {
        JsFuture::from(call_store(&self.obj, f, args, self.timeout_ms)).await.map_err(|_| store_error(op))
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<String>, AuthError> {
        let v = self.call(&self.get, &Array::of1(&key.into()), "get(key) failed").await?;
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        v.as_string().map(Some).ok_or_else(|| store_error("get(key) returned something that is not a string"))
    }

    pub(super) async fn put(&self, key: &str, value: &str) -> Result<(), AuthError> {
        self.call(&self.put, &Array::of2(&key.into(), &value.into()), "put(key, value) failed").await.map(|_| ())
    }
}

/// The `TokenBroker` namespace: one object per credential, asked over Durable Object RPC.
pub(super) struct Broker {
    ns: JsValue,
}

/// What a lease request carries (built by the core: `broker_options`).
pub(super) struct LeaseRequest {
    pub provider: &'static str,
    /// The object's name (`broker_name`: never a secret).
    pub name: String,
    pub options: Vec<(&'static str, crate::broker::Field)>,
    pub stale: Option<u32>,
    /// An authorization code to exchange first: `(code, codeVerifier, redirectUri)`.
    pub exchange: Option<(crate::secret::Secret, crate::secret::Secret, String)>,
}

fn obj_of(pairs: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

impl Broker {
    /// One lease: the object's answer as the token (and its generation) or the typed error.
    pub(super) async fn lease(&self, r: LeaseRequest, timeout_ms: f64, redactor: &crate::secret::Redactor) -> Result<(crate::token::Token, u32), AuthError> {
        use crate::broker::{lease_error, lease_failed, lease_token, Field};
        let opts: Vec<(&str, JsValue)> = r
            .options
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Field::Str(s) => JsValue::from_str(s),
                    Field::Secret(s) => JsValue::from_str(s.expose()),
                    Field::Num(n) => JsValue::from_f64(*n),
                };
                (*k, v)
            })
            .collect();
        let mut fields = vec![("provider", JsValue::from_str(r.provider)), ("options", obj_of(&opts).into())];
        fields.extend(r.stale.map(|g| ("stale", JsValue::from(g))));
        if let Some((code, verifier, redirect)) = &r.exchange {
            let x = obj_of(&[("code", code.expose().into()), ("codeVerifier", verifier.expose().into()), ("redirectUri", redirect.into())]);
            fields.push(("exchange", x.into()));
        }
        let answer = JsFuture::from(broker_lease(&self.ns, &r.name, &obj_of(&fields), timeout_ms)).await.unwrap_or(JsValue::NULL);
        let field = |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k)).ok().filter(|v| !v.is_undefined() && !v.is_null());
        if let Some(t) = field(&answer, "token") {
            let num = |k: &str| field(&t, k).and_then(|v| v.as_f64());
            return lease_token(field(&t, "accessToken").and_then(|v| v.as_string()), num("expiresInMs"), num("lifetimeMs"), num("generation"), now());
        }
        if let Some(e) = field(&answer, "error") {
            let s = |k: &str| field(&e, k).and_then(|v| v.as_string());
            let n = |k: &str| field(&e, k).and_then(|v| v.as_f64());
            return Err(lease_error(s("code"), s("message"), n("status"), n("retryAfter"), redactor));
        }
        Err(lease_failed(&field(&answer, "failed").and_then(|v| v.as_string()).unwrap_or_default()))
    }
}
