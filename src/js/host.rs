//! Host services for the core: HTTP over the global `fetch`, timers, JSON decoding, option
//! reading, events, the caller's `store`, and `AuthError` → JS.

use js_sys::{Array, Function, Object, Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, RequestRedirect, Response};

use crate::error::{AuthError, ErrorCode};
use crate::http::{HttpRequest, HttpResponse};
use crate::retry;

#[wasm_bindgen(module = "/src/js/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = makeAuthError)]
    fn make_auth_error(code: &str, message: &str, hint: &str, retryable: bool, status: JsValue, retry_after: JsValue, messages: JsValue) -> JsValue;
    #[wasm_bindgen(js_name = isAuthError)]
    pub fn is_auth_error(e: &JsValue) -> bool;
    fn sleep(ms: f64) -> Promise;
    #[wasm_bindgen(js_name = timeoutSignal)]
    fn timeout_signal(ms: f64, other: Option<web_sys::AbortSignal>) -> web_sys::AbortSignal;
    #[wasm_bindgen(js_name = failureKind)]
    fn failure_kind(e: &JsValue) -> String;
    #[wasm_bindgen(js_name = hostFetch)]
    fn host_fetch(r: &Request) -> Promise;
    #[wasm_bindgen(js_name = emit)]
    fn emit_js(callback: &Function, event: &Object);
    #[wasm_bindgen(js_name = randomBytes)]
    pub fn random_bytes(n: u32) -> Vec<u8>;
    #[wasm_bindgen(js_name = sha256)]
    pub fn sha256(text: &str) -> Promise;
    #[wasm_bindgen(js_name = freezeHeaders)]
    pub fn freeze_headers(pairs: &Array) -> JsValue;
}

impl From<AuthError> for JsValue {
    fn from(e: AuthError) -> JsValue {
        let opt = |v: Option<u32>| v.map_or(JsValue::UNDEFINED, JsValue::from);
        let messages = if e.messages.is_empty() {
            JsValue::UNDEFINED
        } else {
            e.messages.iter().map(|m| JsValue::from_str(m)).collect::<Array>().into()
        };
        make_auth_error(e.code.as_str(), &e.message, e.code.hint(), e.retryable(), opt(e.status.map(u32::from)), opt(e.retry_after), messages)
    }
}

pub fn now() -> f64 {
    js_sys::Date::now()
}

pub async fn wait(ms: f64) {
    let _ = JsFuture::from(sleep(ms)).await;
}

pub fn parse_json(text: &str) -> Option<JsValue> {
    JSON::parse(text).ok()
}

/// A fetch rejection or aborted body read as an `AuthError`. The host's message is not kept:
/// it can echo a URL, and we do not put URLs into errors.
fn transport_error(e: &JsValue, what: &str) -> AuthError {
    let (code, text) = match failure_kind(e).as_str() {
        "timeout" => (ErrorCode::Timeout, " did not answer within timeoutMs"),
        "abort" => (ErrorCode::Network, " request was aborted"),
        _ => (ErrorCode::Network, " could not be reached"),
    };
    AuthError::new(code, crate::http::cat(what, text))
}

pub fn headers_from(pairs: &[(&'static str, String)]) -> Result<Headers, AuthError> {
    let h = Headers::new().map_err(|_| AuthError::new(ErrorCode::InvalidRequest, "cannot build headers"))?;
    for (k, v) in pairs {
        h.set(k, v).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "a credential contains characters not allowed in an HTTP header"))?;
    }
    Ok(h)
}

/// Sends a request; its `init` carries the timeout signal, which also covers reading the body.
pub async fn send_raw(req: &Request, what: &str) -> Result<Response, AuthError> {
    let resp = JsFuture::from(host_fetch(req)).await.map_err(|e| transport_error(&e, what))?;
    Ok(resp.unchecked_into())
}

pub async fn read_text(resp: &Response, what: &str) -> Result<String, AuthError> {
    let p = resp.text().map_err(|e| transport_error(&e, what))?;
    let t = JsFuture::from(p).await.map_err(|e| transport_error(&e, what))?;
    Ok(t.as_string().unwrap_or_default())
}

pub fn init(method: &str, headers: &Headers, timeout_ms: f64, user_signal: Option<web_sys::AbortSignal>) -> RequestInit {
    let i = RequestInit::new();
    i.set_method(method);
    i.set_headers(headers);
    // Never follow a redirect with credentials attached (and Workers reject "error").
    i.set_redirect(RequestRedirect::Manual);
    i.set_signal(Some(&timeout_signal(timeout_ms, user_signal)));
    i
}

/// One HTTP exchange for the core.
pub async fn send(r: &HttpRequest, timeout_ms: f64, what: &str) -> Result<HttpResponse, AuthError> {
    let i = init(r.method, &headers_from(&r.headers)?, timeout_ms, None);
    i.set_body(&JsValue::from_str(&r.body));
    let req = Request::new_with_str_and_init(&r.url, &i).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "the endpoint URL is not valid for fetch"))?;
    let resp = send_raw(&req, what).await?;
    let status = resp.status();
    let retry_after = resp.headers().get("retry-after").ok().flatten();
    let body = read_text(&resp, what).await?;
    Ok(HttpResponse { status, retry_after, body })
}

/// Sends `request` until `parse` accepts the answer, retrying what `retry::delay_ms` allows
/// inside a `timeout_ms` deadline. Emits a `retry` event before each wait.
pub async fn send_with_retries<T>(
    request: &HttpRequest,
    timeout_ms: f64,
    what: &str,
    events: &Events,
    mut parse: impl FnMut(&HttpResponse) -> Result<T, AuthError>,
) -> Result<T, AuthError> {
    let deadline = now() + timeout_ms;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = deadline - now();
        let result = match send(request, remaining.max(1.0), what).await {
            Ok(resp) => parse(&resp),
            Err(e) => Err(e),
        };
        let err = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(delay) = retry::delay_ms(attempts, &err, deadline - now()) else { return Err(err) };
        events.emit("retry", &[("attempt", attempts.into()), ("delayMs", delay.into()), ("code", err.code.as_str().into())]);
        wait(delay).await;
    }
}

/// The caller's `onEvent`. Events carry names, timings and codes, never a secret.
#[derive(Default)]
pub struct Events(Option<Function>);

impl Events {
    pub fn new(f: Option<Function>) -> Self {
        Events(f)
    }

    pub fn emit(&self, kind: &str, fields: &[(&str, JsValue)]) {
        let Some(f) = &self.0 else { return };
        let o = Object::new();
        let _ = Reflect::set(&o, &"type".into(), &kind.into());
        for (k, v) in fields {
            let _ = Reflect::set(&o, &JsValue::from_str(k), v);
        }
        emit_js(f, &o);
    }
}

/// Reads options from a plain JS object; a wrong type is `invalid_config` naming the option.
pub struct Options<'a>(pub &'a JsValue);

impl Options<'_> {
    pub fn check(v: &JsValue, what: &str) -> Result<(), AuthError> {
        if v.is_object() {
            Ok(())
        } else {
            Err(AuthError::config(what, "must be an object"))
        }
    }

    fn get(&self, name: &str) -> Option<JsValue> {
        let v = Reflect::get(self.0, &JsValue::from_str(name)).ok()?;
        (!v.is_undefined() && !v.is_null()).then_some(v)
    }

    pub fn str(&self, name: &str) -> Result<Option<String>, AuthError> {
        self.get(name).map(|v| v.as_string().ok_or_else(|| AuthError::config(name, "must be a string"))).transpose()
    }

    pub fn num(&self, name: &str) -> Result<Option<f64>, AuthError> {
        self.get(name).map(|v| v.as_f64().filter(|n| n.is_finite()).ok_or_else(|| AuthError::config(name, "must be a finite number"))).transpose()
    }

    pub fn func(&self, name: &str) -> Result<Option<Function>, AuthError> {
        self.get(name).map(|v| v.dyn_into::<Function>().map_err(|_| AuthError::config(name, "must be a function"))).transpose()
    }

    pub fn events(&self) -> Result<Events, AuthError> {
        Ok(Events::new(self.func("onEvent")?))
    }

    /// `store`: any object with `get(key)` and `put(key, value)` (a KV namespace, DO storage).
    pub fn store(&self) -> Result<Option<Store>, AuthError> {
        let Some(obj) = self.get("store") else { return Ok(None) };
        let method = |m: &str| Reflect::get(&obj, &JsValue::from_str(m)).ok().and_then(|f| f.dyn_into::<Function>().ok());
        match (method("get"), method("put")) {
            (Some(get), Some(put)) => Ok(Some(Store { obj, get, put })),
            _ => Err(AuthError::config("store", "must have get(key) and put(key, value) methods")),
        }
    }
}

/// The caller's persistent store for refresh tokens.
pub struct Store {
    obj: JsValue,
    get: Function,
    put: Function,
}

fn store_error(op: &str) -> AuthError {
    AuthError::new(ErrorCode::StoreFailed, crate::http::cat("the store's ", op))
}

impl Store {
    async fn call(&self, f: &Function, args: &[&JsValue], op: &str) -> Result<JsValue, AuthError> {
        let r = match args {
            [k] => f.call1(&self.obj, k),
            [k, v] => f.call2(&self.obj, k, v),
            _ => unreachable_store(),
        }
        .map_err(|_| store_error(op))?;
        JsFuture::from(Promise::resolve(&r)).await.map_err(|_| store_error(op))
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, AuthError> {
        let v = self.call(&self.get, &[&key.into()], "get(key) failed").await?;
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        v.as_string().map(Some).ok_or_else(|| store_error("get(key) returned something that is not a string"))
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<(), AuthError> {
        self.call(&self.put, &[&key.into(), &value.into()], "put(key, value) failed").await.map(|_| ())
    }
}

fn unreachable_store() -> Result<JsValue, JsValue> {
    Err(JsValue::UNDEFINED)
}
