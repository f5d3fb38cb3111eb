//! `QpienAuth`: the Qpien client exported to JS.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;
use web_sys::Request;

use super::flight::{self, ensure, Lease, Slot, Source};
use super::host::{self, bad_arg, headers_from, is_record, now, Broker, Home, LeaseRequest, Options, Store};
use crate::error::{AuthError, ErrorCode};
use crate::qpien::{classify, graphql_headers, Attempts, Envelope, Mint, Next, QpienConfig, QpienOptions, MAX_GRAPHQL_BYTES};
use crate::secret::{Redactor, Secret};

const WHAT: &str = "the Qpien GraphQL endpoint";

struct Inner {
    cfg: QpienConfig,
    slot: Slot,
    broker: Option<Rc<Broker>>,
    /// Inside the broker: the object's storage (for the current access token).
    store: Option<Rc<Store>>,
}

impl Source for Inner {
    fn slot(&mut self) -> &mut Slot {
        &mut self.slot
    }

    fn headers_for(&self, access: &Secret) -> Vec<(&'static str, String)> {
        vec![("Authorization", crate::http::cat("Bearer ", access.expose()))]
    }

    fn lease(&self) -> Option<Lease> {
        let request = LeaseRequest { provider: "qpien", name: self.cfg.broker_name(), options: self.cfg.broker_options(), stale: None, exchange: None };
        self.broker.clone().map(|broker| Lease { broker, request, timeout_ms: self.cfg.timeout_ms })
    }

    fn broker_side(&self) -> Option<(Rc<Store>, String)> {
        self.store.clone().map(|s| (s, crate::broker::access_key(&self.cfg.store_key())))
    }

    fn store(&self) -> Option<(Rc<Store>, String)> {
        None
    }

    async fn acquire(this: Rc<RefCell<Self>>) -> Result<(), AuthError> {
        let at = now();
        let mut mint = Mint::new(&this.borrow().cfg, at);
        flight::drive(&this, &mut |me, input, now| mint.step(&me.cfg, &me.slot.redactor, input, now), WHAT).await
    }
}

/// Mints Qpien tokens with `generateOAuthToken` and runs GraphQL operations with them.
#[wasm_bindgen]
pub struct QpienAuth {
    inner: Rc<RefCell<Inner>>,
}

flight::slot_methods!(QpienAuth);

/// `query Name` / `mutation Name` → `Name`, for error messages when no operationName is given.
fn operation_name(query: &str) -> String {
    let mut words = query.split(|c: char| c.is_whitespace() || c == '(' || c == '{').filter(|w| !w.is_empty());
    match (words.next(), words.next()) {
        (Some("query" | "mutation" | "subscription"), Some(name)) if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => name.to_string(),
        _ => "anonymous".to_string(),
    }
}

/// The request body of one `graphql()` call, from checked arguments.
fn graphql_body(query: &JsValue, variables: &JsValue, options: &JsValue) -> Result<(String, String), AuthError> {
    let query = query.as_string().filter(|q| !q.trim().is_empty()).ok_or_else(|| bad_arg("graphql(query) takes the GraphQL document as a non-empty string"))?;
    let vars_given = !variables.is_undefined() && !variables.is_null();
    if vars_given && !is_record(variables) {
        return Err(bad_arg("graphql(query, variables) takes the variables as an object"));
    }
    let op_opt = match options {
        v if v.is_undefined() || v.is_null() => None,
        v => Options::new(v, "graphql() options", &["operationName"], ErrorCode::InvalidRequest)?.str("operationName")?,
    };
    let op = op_opt.clone().unwrap_or_else(|| operation_name(&query));
    let body = Object::new();
    let _ = Reflect::set(&body, &"query".into(), &query.into());
    if vars_given {
        let _ = Reflect::set(&body, &"variables".into(), variables);
    }
    if let Some(n) = &op_opt {
        let _ = Reflect::set(&body, &"operationName".into(), &n.into());
    }
    let body = JSON::stringify(&body).ok().and_then(|s| s.as_string()).ok_or_else(|| bad_arg("the variables are not JSON-serialisable"))?;
    Ok((body, op))
}

#[wasm_bindgen]
impl QpienAuth {
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<QpienAuth, JsValue> {
        let o = Options::new(&options, "QpienAuth options", crate::qpien::OPTIONS, ErrorCode::InvalidConfig)?;
        let Home { store, broker, .. } = o.home(false)?;
        let cfg = QpienConfig::new(QpienOptions {
            client_id: o.str("clientId")?,
            client_secret: o.str("clientSecret")?,
            endpoint: o.str("endpoint")?,
            refresh_skew_seconds: o.num("refreshSkewSeconds")?,
            timeout_ms: o.num("timeoutMs")?,
        })?;
        let slot = Slot::new(cfg.refresh_skew_s, o.events()?, Redactor::new(&cfg.secrets()));
        Ok(QpienAuth { inner: Rc::new(RefCell::new(Inner { cfg, slot, broker, store })) })
    }

    /// Runs one operation and resolves to its `data`. Re-mints once on TOKEN_EXPIRED /
    /// UNAUTHORIZED, once on INSUFFICIENT_SCOPES; never retries the operation otherwise (a
    /// mutation is not idempotent).
    pub fn graphql(&self, query: JsValue, variables: JsValue, options: JsValue) -> Promise {
        let rc = self.inner.clone();
        super::host::promise(async move {
            let (body, op) = graphql_body(&query, &variables, &options)?;
            let (endpoint, timeout) = {
                let me = rc.borrow();
                (me.cfg.endpoint.clone(), me.cfg.timeout_ms)
            };
            let mut attempts = Attempts::default();
            loop {
                let got = ensure(&rc).await?;
                let mut pairs = graphql_headers();
                pairs.extend(rc.borrow().headers_for(&got.access));
                let i = host::init("POST", &headers_from(&pairs)?, timeout, None);
                i.set_body(&JsValue::from_str(&body));
                let req = Request::new_with_str_and_init(&endpoint, &i).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "endpoint"))?;
                let resp = host::send_raw(&req, WHAT).await?;
                let status = resp.status();
                let text = host::read_text(&resp, MAX_GRAPHQL_BYTES, WHAT).await?;
                let env = Envelope::parse(&text);
                // The caller gets `data` as a JS object: parsed by the host, only when there is one.
                let data = env.as_ref().filter(|e| e.has_data).and_then(|_| JSON::parse(&text).ok()).and_then(|p| Reflect::get(&p, &"data".into()).ok());
                let verdict = classify(status, env.as_ref(), &op, &rc.borrow().slot.redactor);
                match attempts.next(verdict, &op) {
                    Next::Done => return Ok(data.unwrap_or(JsValue::NULL)),
                    Next::Remint => flight::invalidate_if(&rc, got.generation),
                    Next::Fail(e) => {
                        let err: JsValue = e.into();
                        if let Some(d) = data {
                            let _ = Reflect::set(&err, &"data".into(), &d);
                        }
                        return Err(err);
                    }
                }
            }
        })
    }
}
