//! `QflowAuth`: the Qflow client exported to JS.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{Headers, Request, RequestInit, Response};

use super::flight::{self, ensure, Got, Lease, Slot, Source};
use super::host::{self, bad_arg, now, url_input, Broker, Home, LeaseRequest, Options, Store};
use crate::acquisition::{Acquisition, Ctx};
use crate::error::{AuthError, ErrorCode};
use crate::pkce::valid_verifier;
use crate::qflow::{api_gate, api_next, ApiNext, Grant, QflowConfig, QflowOptions, Session, MAX_GATE_BODY_BYTES};
use crate::secret::{Redactor, Secret};
use crate::token::Token;

const WHAT: &str = "the Qflow identity server";
const API: &str = "the Qflow API";

struct Inner {
    cfg: QflowConfig,
    session: Session,
    store: Option<Rc<Store>>,
    broker: Option<Rc<Broker>>,
    slot: Slot,
    /// A token whose rotated refresh token could not be saved yet: held back until it is.
    held: Option<Token>,
}

impl Source for Inner {
    fn slot(&mut self) -> &mut Slot {
        &mut self.slot
    }

    fn headers_for(&self, access: &Secret) -> Vec<(&'static str, String)> {
        self.cfg.api_headers(access)
    }

    fn lease(&self) -> Option<Lease> {
        let request = LeaseRequest { provider: "qflow", name: self.cfg.broker_name(), options: self.cfg.broker_options(), stale: None, exchange: None };
        self.broker.clone().map(|broker| Lease { broker, request, timeout_ms: self.cfg.timeout_ms })
    }

    fn broker_side(&self) -> Option<(Rc<Store>, String)> {
        self.store.clone().filter(|_| self.cfg.broker_side).map(|s| (s, crate::broker::access_key(&self.cfg.store_key)))
    }

    fn store(&self) -> Option<(Rc<Store>, String)> {
        self.store.clone().map(|s| (s, self.cfg.store_key.clone()))
    }

    async fn acquire(this: Rc<RefCell<Self>>) -> Result<(), AuthError> {
        let at = now();
        let mut acquisition = Acquisition::new(&mut this.borrow_mut().ctx(), at);
        flight::drive(&this, &mut |me, input, now| acquisition.step(&mut me.ctx(), input, now), WHAT).await
    }
}

impl Inner {
    /// What the core's acquisition works on.
    fn ctx(&mut self) -> Ctx<'_> {
        Ctx { cfg: &self.cfg, session: &mut self.session, held: &mut self.held, redactor: &mut self.slot.redactor }
    }
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
        let o = Options::new(&options, "QflowAuth options", crate::qflow::OPTIONS, ErrorCode::InvalidConfig)?;
        let Home { store, broker, broker_side } = o.home(true)?;
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
            persisted: store.is_some() || broker.is_some(),
            broker_side,
        })?;
        let slot = Slot::new(cfg.refresh_skew_s, o.events()?, Redactor::new(&cfg.secrets()));
        let session = Session::new(&cfg, store.is_some());
        Ok(QflowAuth { inner: Rc::new(RefCell::new(Inner { cfg, session, store, broker, slot, held: None })) })
    }

    /// `fetch()` against `apiUrl` with both headers, `redirect: "manual"`, a timeout, and one
    /// forced refresh + retry on 401.
    pub fn fetch(&self, input: JsValue, init: JsValue) -> Promise {
        let rc = self.inner.clone();
        super::host::promise(async move {
            let base = base_request(&rc, &input, &init, "fetch()")?;
            match api_fetch(&rc, &base).await? {
                Answer::Response(r) => Ok(r.into()),
                Answer::Gate(e) => Err(e.into()),
            }
        })
    }

    /// `{ enabled: true }` or `{ enabled: false, reason: "comms_api_not_enabled" }`.
    #[wasm_bindgen(js_name = commsAccess)]
    pub fn comms_access(&self, event_id: JsValue) -> Promise {
        let rc = self.inner.clone();
        super::host::promise(async move {
            let event_id =
                event_id.as_string().filter(|e| !e.trim().is_empty()).ok_or_else(|| bad_arg("commsAccess(eventId) takes a non-empty event ID string"))?;
            let url = rc.borrow().cfg.target(&QflowConfig::comms_probe_path(&event_id));
            let base = Request::new_with_str(&url).map_err(|_| bad_arg("the eventId does not make a valid URL"))?;
            let o = Object::new();
            match api_fetch(&rc, &base).await? {
                Answer::Response(resp) if resp.ok() => {
                    let _ = Reflect::set(&o, &"enabled".into(), &true.into());
                }
                Answer::Response(resp) => return Err(api_status_error(resp.status()).into()),
                Answer::Gate(e) if e.code == ErrorCode::CommsApiNotEnabled => {
                    let _ = Reflect::set(&o, &"enabled".into(), &false.into());
                    let _ = Reflect::set(&o, &"reason".into(), &"comms_api_not_enabled".into());
                }
                Answer::Gate(e) => return Err(e.into()),
            }
            Ok(o.into())
        })
    }

    /// A copy of the request (same method, URL, body, other headers) with both headers set, for
    /// middleware that forwards requests. Takes what `fetch()` takes; the URL of the copy must be
    /// on `apiUrl`'s origin.
    #[wasm_bindgen(js_name = authorizeRequest)]
    pub fn authorize_request(&self, input: JsValue, init: JsValue) -> Promise {
        let rc = self.inner.clone();
        super::host::promise(async move {
            let base = base_request(&rc, &input, &init, "authorizeRequest()")?;
            let got = ensure(&rc).await?;
            let h = Headers::new_with_headers(&base.headers()).map_err(|_| bad_request())?;
            set_auth_headers(&rc, &h, &got)?;
            let i = RequestInit::new();
            i.set_headers(&h);
            i.set_redirect(web_sys::RequestRedirect::Manual);
            let out = Request::new_with_request_and_init(&base, &i).map_err(|_| bad_request())?;
            rc.borrow().cfg.check_sent(&out.url())?;
            Ok(out.into())
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens; afterwards the client
    /// refreshes, rotates and stores like any other. With a broker, the broker exchanges it.
    #[wasm_bindgen(js_name = exchangeCode)]
    pub fn exchange_code(&self, args: JsValue) -> Promise {
        let rc = self.inner.clone();
        super::host::promise(async move {
            let o = Options::new(&args, "exchangeCode argument", &["code", "codeVerifier", "redirectUri"], ErrorCode::InvalidRequest)?;
            let missing = |name: &str| bad_arg(&crate::http::cat(name, " is required: exchangeCode({ code, codeVerifier, redirectUri })"));
            let code = o.str("code")?.filter(|c| !c.is_empty()).ok_or_else(|| missing("code"))?;
            let verifier = o.str("codeVerifier")?.ok_or_else(|| missing("codeVerifier"))?;
            if !valid_verifier(&verifier) {
                return Err(bad_arg("codeVerifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~").into());
            }
            let redirect_uri = o.str("redirectUri")?.ok_or_else(|| missing("redirectUri"))?;
            crate::http::base_url("redirectUri", redirect_uri.split('?').next().unwrap_or("")).map_err(|mut e| {
                e.code = ErrorCode::InvalidRequest;
                e
            })?;
            let (code, verifier) = (Secret::new(code), Secret::new(verifier));
            flight::remember(&rc, &[&code, &verifier]);
            let lease = rc.borrow().lease();
            let work = rc.clone();
            flight::exclusive(&rc, async move {
                if let Some(mut lease) = lease {
                    lease.request.exchange = Some((code, verifier, redirect_uri));
                    return flight::lease_from(&work, lease).await;
                }
                let at = now();
                let mut exchange = Acquisition::exchange(&mut work.borrow_mut().ctx(), Grant::Code { code, verifier, redirect_uri }, at);
                flight::drive(&work, &mut |me, input, now| exchange.step(&mut me.ctx(), input, now), WHAT).await
            })
            .await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

fn bad_request() -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, "the request could not be copied")
}

fn set_auth_headers(rc: &Rc<RefCell<Inner>>, h: &Headers, got: &Got) -> Result<(), AuthError> {
    let pairs = rc.borrow().cfg.api_headers(&got.access);
    for (k, v) in pairs {
        h.set(k, &v).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "a credential contains characters not allowed in an HTTP header"))?;
    }
    Ok(())
}

/// The caller's input (a path, a URL string or object, or a `Request`, plus an optional init) as
/// a `Request` of our own making, checked to be on `apiUrl`'s origin. The URL checked is the one
/// the platform wrote into that request, not a property of the caller's object (which a
/// subclass or a Proxy can fake).
fn base_request(rc: &Rc<RefCell<Inner>>, input: &JsValue, init: &JsValue, what: &str) -> Result<Request, AuthError> {
    let init: RequestInit = match init {
        v if v.is_undefined() || v.is_null() => RequestInit::new(),
        v if v.is_object() => v.clone().unchecked_into(),
        _ => return Err(bad_arg(&crate::http::cat(what, " takes an init object (or nothing) as its second argument"))),
    };
    let req = if let Some(r) = input.dyn_ref::<Request>() {
        Request::new_with_request_and_init(r, &init)
    } else if let Some(s) = url_input(input) {
        let url = rc.borrow().cfg.target(&s);
        Request::new_with_str_and_init(&url, &init)
    } else {
        return Err(bad_arg(&crate::http::cat(what, " takes a path, a URL or a Request")));
    };
    let req = req.map_err(|_| bad_arg(&crate::http::cat(what, " arguments do not make a valid Request")))?;
    rc.borrow().cfg.check_sent(&req.url())?;
    Ok(req)
}

fn api_status_error(status: u16) -> AuthError {
    let code = if status >= 500 {
        ErrorCode::ServerError
    } else if status == 429 {
        ErrorCode::RateLimited
    } else {
        ErrorCode::BadResponse
    };
    let mut m = String::from("the Qflow API answered HTTP ");
    crate::http::push_num(&mut m, status.into());
    AuthError::new(code, m).with_status(status)
}

/// What the API answered: a response to hand back, or a documented 403 gate.
enum Answer {
    Response(Response),
    Gate(AuthError),
}

/// Sends `base` with both headers; on 401 forces one refresh (shared with concurrent callers)
/// and retries once. A documented 403 gate becomes its typed error.
async fn api_fetch(rc: &Rc<RefCell<Inner>>, base: &Request) -> Result<Answer, AuthError> {
    let timeout = rc.borrow().cfg.timeout_ms;
    let mut refreshed = false;
    loop {
        let got = ensure(rc).await?;
        let h = Headers::new_with_headers(&base.headers()).map_err(|_| bad_request())?;
        set_auth_headers(rc, &h, &got)?;
        let copy = base.clone().map_err(|_| AuthError::new(ErrorCode::InvalidRequest, "the request body was already used"))?;
        let i = host::init(&base.method(), &h, timeout, Some(base.signal()));
        let req = Request::new_with_request_and_init(&copy, &i).map_err(|_| bad_request())?;
        rc.borrow().cfg.check_sent(&req.url())?;
        let resp = host::send_raw(&req, API).await?;
        match api_next(resp.status(), refreshed) {
            ApiNext::Done => return Ok(Answer::Response(resp)),
            ApiNext::RefreshAndRetry => {
                flight::invalidate_if(rc, got.generation);
                refreshed = true;
            }
            ApiNext::ProbeGate => {
                let probe = resp.clone().map_err(|_| bad_request())?;
                // Only a small body can be a gate answer; a larger one is passed on untouched.
                if let Ok(body) = host::read_text(&probe, MAX_GATE_BODY_BYTES, API).await {
                    if let Some(e) = api_gate(403, &body) {
                        return Ok(Answer::Gate(e));
                    }
                }
                return Ok(Answer::Response(resp));
            }
            ApiNext::Fail(e) => return Err(e),
        }
    }
}
