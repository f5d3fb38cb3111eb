//! `QflowAuth`: the Qflow client exported to JS.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::{Headers, Request, Response};

use super::flight::{self, ensure, Slot, Source};
use super::host::{self, now, send_with_retries, Options, Store};
use crate::error::{AuthError, ErrorCode};
use crate::pkce::valid_verifier;
use crate::qflow::{api_gate, After, Grant, QflowConfig, QflowOptions, Session};
use crate::secret::Secret;
use crate::token::{parse_token_response, Token};

const WHAT: &str = "the Qflow identity server";
const API: &str = "the Qflow API";

struct Inner {
    cfg: QflowConfig,
    session: Session,
    store: Option<Rc<Store>>,
    slot: Slot,
    /// A token whose rotated refresh token could not be saved yet: held back until it is.
    held: Option<Token>,
}

impl Source for Inner {
    fn slot(&mut self) -> &mut Slot {
        &mut self.slot
    }

    async fn acquire(this: Rc<RefCell<Self>>) -> Result<(), AuthError> {
        let store = this.borrow().store.clone();
        if let Some(store) = &store {
            let load = !this.borrow().session.store_loaded;
            if load {
                let key = this.borrow().cfg.store_key.clone();
                let saved = store.get(&key).await?;
                this.borrow_mut().session.loaded(saved);
            }
            // A rotation whose save failed earlier: save it now, then use the held token.
            let held = this.borrow_mut().held.take();
            if let Some(t) = held {
                persist(&this, store, &t).await.inspect_err(|_| this.borrow_mut().held = Some(t.clone()))?;
                if t.expires_at_ms > now() {
                    install(&this, t);
                    return Ok(());
                }
            }
        }
        let mut grant = {
            let me = this.borrow();
            me.session.next_grant(&me.cfg)?
        };
        loop {
            match run_grant(&this, &grant).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let mut me = this.borrow_mut();
                    let me = &mut *me;
                    match me.session.after_failure(&me.cfg, &grant, e) {
                        After::Fallback(g) => {
                            me.slot.events.emit("fallback_to_password", &[]);
                            grant = g;
                        }
                        After::Fail(e) => return Err(e),
                    }
                }
            }
        }
    }
}

fn install(this: &Rc<RefCell<Inner>>, t: Token) {
    let mut me = this.borrow_mut();
    let pairs = me.cfg.api_headers(&t.access);
    me.slot.install(t, &pairs);
}

/// Saves the token's refresh token; the caller hands out the access token only after this.
async fn persist(this: &Rc<RefCell<Inner>>, store: &Store, t: &Token) -> Result<(), AuthError> {
    let Some(rt) = &t.refresh else { return Ok(()) };
    let key = this.borrow().cfg.store_key.clone();
    store.put(&key, rt.expose()).await?;
    let mut me = this.borrow_mut();
    me.session.unsaved = false;
    me.slot.events.emit("refresh_token_rotated", &[]);
    Ok(())
}

/// One grant with retries, then rotation-safe installation of the new token.
async fn run_grant(this: &Rc<RefCell<Inner>>, grant: &Grant) -> Result<(), AuthError> {
    let started = now();
    let (req, timeout) = {
        let me = this.borrow();
        (me.cfg.token_request(grant), me.cfg.timeout_ms)
    };
    let token = {
        let events = std::mem::take(&mut this.borrow_mut().slot.events);
        let r = send_with_retries(&req, timeout, WHAT, &events, |resp| {
            let me = this.borrow();
            parse_token_response(resp, now(), &me.cfg.secrets())
        })
        .await;
        this.borrow_mut().slot.events = events;
        r?
    };
    let (must_save, store) = {
        let mut me = this.borrow_mut();
        let has_store = me.store.is_some();
        (me.session.on_token(&token, has_store), me.store.clone())
    };
    if let (true, Some(store)) = (must_save, store) {
        if let Err(e) = persist(this, &store, &token).await {
            this.borrow_mut().held = Some(token);
            return Err(e);
        }
    }
    let kind = if matches!(grant, Grant::Refresh(_)) { "token_refreshed" } else { "token_acquired" };
    this.borrow().slot.events.emit(kind, &[("grant", grant.name().into()), ("ms", (now() - started).into()), ("expiresIn", (token.lifetime_ms / 1000.0).into())]);
    install(this, token);
    Ok(())
}

/// Gets OAuth tokens for the Qflow API and builds both auth headers.
#[wasm_bindgen]
pub struct QflowAuth {
    inner: Rc<RefCell<Inner>>,
}

flight::slot_methods!(QflowAuth);

#[wasm_bindgen]
impl QflowAuth {
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<QflowAuth, JsValue> {
        Options::check(&options, "options")?;
        let o = Options(&options);
        let cfg = QflowConfig::new(QflowOptions {
            client_id: o.str("clientId")?,
            client_secret: o.str("clientSecret")?,
            subscription_key: o.str("subscriptionKey")?,
            username: o.str("username")?,
            password: o.str("password")?,
            refresh_token: o.str("refreshToken")?,
            scope: o.str("scope")?,
            identity_url: o.str("identityUrl")?,
            api_url: o.str("apiUrl")?,
            store_key: o.str("storeKey")?,
            refresh_skew_seconds: o.num("refreshSkewSeconds")?,
            timeout_ms: o.num("timeoutMs")?,
        })?;
        let slot = Slot::new(cfg.refresh_skew_s, o.events()?);
        let store = o.store()?.map(Rc::new);
        let session = Session::new(&cfg);
        Ok(QflowAuth { inner: Rc::new(RefCell::new(Inner { cfg, session, store, slot, held: None })) })
    }

    /// `fetch()` against `apiUrl` with both headers, `redirect: "manual"`, a timeout, and one
    /// forced refresh + retry on 401.
    pub fn fetch(&self, input: JsValue, init: JsValue) -> Promise {
        let rc = self.inner.clone();
        future_to_promise(async move {
            let base = base_request(&rc, &input, &init)?;
            Ok(api_fetch(&rc, &base).await?.into())
        })
    }

    /// `{ enabled: true }` or `{ enabled: false, reason: "comms_api_not_enabled" }`.
    #[wasm_bindgen(js_name = commsAccess)]
    pub fn comms_access(&self, event_id: String) -> Promise {
        let rc = self.inner.clone();
        future_to_promise(async move {
            let url = rc.borrow().cfg.resolve(&QflowConfig::comms_probe_path(&event_id))?;
            let base = Request::new_with_str(&url).map_err(|_| AuthError::new(ErrorCode::InvalidRequest, "bad eventId"))?;
            let o = Object::new();
            match api_fetch(&rc, &base).await {
                Ok(resp) if resp.ok() => {
                    let _ = Reflect::set(&o, &"enabled".into(), &true.into());
                }
                Ok(resp) => return Err(api_status_error(resp.status()).into()),
                Err(e) if Reflect::get(&e, &"code".into()).ok().and_then(|c| c.as_string()).as_deref() == Some("comms_api_not_enabled") => {
                    let _ = Reflect::set(&o, &"enabled".into(), &false.into());
                    let _ = Reflect::set(&o, &"reason".into(), &"comms_api_not_enabled".into());
                }
                Err(e) => return Err(e),
            }
            Ok(o.into())
        })
    }

    /// A copy of `request` (same method, URL, body, other headers) with both headers set, for
    /// middleware that forwards requests. The URL must be on `apiUrl`'s origin.
    #[wasm_bindgen(js_name = authorizeRequest)]
    pub fn authorize_request(&self, request: Request) -> Promise {
        let rc = self.inner.clone();
        future_to_promise(async move {
            rc.borrow().cfg.resolve(&request.url())?;
            ensure(&rc).await?;
            let h = Headers::new_with_headers(&request.headers()).map_err(|_| bad_request())?;
            set_auth_headers(&rc, &h)?;
            let i = web_sys::RequestInit::new();
            i.set_headers(&h);
            i.set_redirect(web_sys::RequestRedirect::Manual);
            Ok(Request::new_with_request_and_init(&request, &i).map_err(|_| bad_request())?.into())
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens; afterwards the client
    /// refreshes, rotates and stores like any other.
    #[wasm_bindgen(js_name = exchangeCode)]
    pub fn exchange_code(&self, args: JsValue) -> Promise {
        let rc = self.inner.clone();
        future_to_promise(async move {
            Options::check(&args, "exchangeCode argument")?;
            let o = Options(&args);
            let code = o.str("code")?.filter(|c| !c.is_empty()).ok_or_else(|| AuthError::config("code", "is required"))?;
            let verifier = o.str("codeVerifier")?.ok_or_else(|| AuthError::config("codeVerifier", "is required"))?;
            if !valid_verifier(&verifier) {
                return Err(AuthError::config("codeVerifier", "must be 43-128 characters of A-Z a-z 0-9 - . _ ~").into());
            }
            let redirect_uri = o.str("redirectUri")?.ok_or_else(|| AuthError::config("redirectUri", "is required"))?;
            crate::http::base_url("redirectUri", redirect_uri.split('?').next().unwrap_or(""))?;
            let grant = Grant::Code { code: Secret::new(code), verifier: Secret::new(verifier), redirect_uri };
            rc.borrow_mut().session.store_loaded = true;
            run_grant(&rc, &grant).await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

fn bad_request() -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, "the request could not be copied")
}

fn set_auth_headers(rc: &Rc<RefCell<Inner>>, h: &Headers) -> Result<u32, JsValue> {
    let me = rc.borrow();
    let t = me.slot.cache.token().ok_or_else(|| AuthError::new(ErrorCode::Unauthorized, "no token"))?;
    for (k, v) in me.cfg.api_headers(&t.access) {
        h.set(k, &v).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "a credential contains characters not allowed in an HTTP header"))?;
    }
    Ok(me.slot.cache.generation())
}

/// The caller's input as a `Request` on `apiUrl` (not sent yet, no credentials yet).
fn base_request(rc: &Rc<RefCell<Inner>>, input: &JsValue, init: &JsValue) -> Result<Request, JsValue> {
    let init: web_sys::RequestInit = if init.is_undefined() || init.is_null() { web_sys::RequestInit::new() } else { init.clone().unchecked_into() };
    let req = if let Some(r) = input.dyn_ref::<Request>() {
        rc.borrow().cfg.resolve(&r.url())?;
        Request::new_with_request_and_init(r, &init)
    } else {
        // A string, or a URL object (its toString() is the href).
        let s = input.as_string().or_else(|| input.dyn_ref::<Object>().map(|o| String::from(o.to_string())));
        let s = s.ok_or_else(|| AuthError::new(ErrorCode::InvalidRequest, "fetch() takes a path, a URL or a Request"))?;
        let url = rc.borrow().cfg.resolve(&s)?;
        Request::new_with_str_and_init(&url, &init)
    };
    req.map_err(|_| AuthError::new(ErrorCode::InvalidRequest, "fetch() arguments do not make a valid Request").into())
}

fn api_status_error(status: u16) -> AuthError {
    let code = if status >= 500 { ErrorCode::ServerError } else if status == 429 { ErrorCode::RateLimited } else { ErrorCode::BadResponse };
    let mut m = String::from("the Qflow API answered HTTP ");
    crate::http::push_num(&mut m, status.into());
    AuthError::new(code, m).with_status(status)
}

/// Sends `base` with both headers; on 401 forces one refresh (shared with concurrent callers)
/// and retries once. A documented 403 gate becomes its typed error.
async fn api_fetch(rc: &Rc<RefCell<Inner>>, base: &Request) -> Result<Response, JsValue> {
    let timeout = rc.borrow().cfg.timeout_ms;
    for attempt in 0..2 {
        ensure(rc).await?;
        let h = Headers::new_with_headers(&base.headers()).map_err(|_| bad_request())?;
        let generation = set_auth_headers(rc, &h)?;
        let copy = base.clone().map_err(|_| AuthError::new(ErrorCode::InvalidRequest, "the request body was already used"))?;
        let i = host::init(&base.method(), &h, timeout, Some(base.signal()));
        let req = Request::new_with_request_and_init(&copy, &i).map_err(|_| bad_request())?;
        let resp = host::send_raw(&req, API).await?;
        match resp.status() {
            401 if attempt == 0 => {
                rc.borrow_mut().slot.invalidate_if(generation);
                continue;
            }
            401 => return Err(AuthError::new(ErrorCode::Unauthorized, "the Qflow API refused a freshly refreshed token (HTTP 401 twice)").with_status(401).into()),
            403 => {
                let probe = resp.clone().map_err(|_| bad_request())?;
                let body = host::read_text(&probe, API).await?;
                if let Some(e) = api_gate(403, &body) {
                    return Err(e.into());
                }
                return Ok(resp);
            }
            _ => return Ok(resp),
        }
    }
    Err(AuthError::new(ErrorCode::Unauthorized, "unreachable").into())
}

