//! `QpienAuth`: the Qpien client exported to JS.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::Request;

use super::flight::{self, ensure, Slot, Source};
use super::host::{self, headers_from, now, parse_json, send_with_retries, Options};
use crate::error::{AuthError, ErrorCode};
use crate::qpien::{classify, graphql_headers, Attempts, Envelope, Next, QpienConfig, QpienOptions};

const WHAT: &str = "the Qpien GraphQL endpoint";

struct Inner {
    cfg: QpienConfig,
    slot: Slot,
}

impl Source for Inner {
    fn slot(&mut self) -> &mut Slot {
        &mut self.slot
    }

    async fn acquire(this: Rc<RefCell<Self>>) -> Result<(), AuthError> {
        let started = now();
        let (req, timeout) = {
            let me = this.borrow();
            (me.cfg.mint_request(), me.cfg.timeout_ms)
        };
        let events = std::mem::take(&mut this.borrow_mut().slot.events);
        let r = send_with_retries(&req, timeout, WHAT, &events, |resp| this.borrow().cfg.parse_mint(resp, now()));
        let r = r.await;
        let mut me = this.borrow_mut();
        me.slot.events = events;
        let token = r?;
        if token.expiry_assumed {
            me.slot.events.emit("expiry_assumed", &[("expiresIn", (token.lifetime_ms / 1000.0).into())]);
        }
        me.slot.events.emit("token_acquired", &[("grant", "generateOAuthToken".into()), ("ms", (now() - started).into()), ("expiresIn", (token.lifetime_ms / 1000.0).into())]);
        let pair = [("Authorization", crate::http::cat("Bearer ", token.access.expose()))];
        me.slot.install(token, &pair);
        Ok(())
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

#[wasm_bindgen]
impl QpienAuth {
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<QpienAuth, JsValue> {
        Options::check(&options, "options")?;
        let o = Options(&options);
        let cfg = QpienConfig::new(QpienOptions {
            client_id: o.str("clientId")?,
            client_secret: o.str("clientSecret")?,
            endpoint: o.str("endpoint")?,
            refresh_skew_seconds: o.num("refreshSkewSeconds")?,
            timeout_ms: o.num("timeoutMs")?,
        })?;
        let slot = Slot::new(cfg.refresh_skew_s, o.events()?);
        Ok(QpienAuth { inner: Rc::new(RefCell::new(Inner { cfg, slot })) })
    }

    /// Runs one operation and resolves to its `data`. Re-mints once on TOKEN_EXPIRED /
    /// UNAUTHORIZED, once on INSUFFICIENT_SCOPES; never retries the operation otherwise (a
    /// mutation is not idempotent).
    pub fn graphql(&self, query: String, variables: JsValue, options: JsValue) -> Promise {
        let rc = self.inner.clone();
        future_to_promise(async move {
            let op_opt = if options.is_object() { Options(&options).str("operationName")? } else { None };
            let op = op_opt.clone().unwrap_or_else(|| operation_name(&query));
            let body = Object::new();
            let _ = Reflect::set(&body, &"query".into(), &query.into());
            if !variables.is_undefined() && !variables.is_null() {
                let _ = Reflect::set(&body, &"variables".into(), &variables);
            }
            if let Some(n) = &op_opt {
                let _ = Reflect::set(&body, &"operationName".into(), &n.into());
            }
            let body = JSON::stringify(&body).map_err(|_| AuthError::new(ErrorCode::InvalidRequest, "variables are not JSON-serialisable"))?;
            let (endpoint, timeout) = {
                let me = rc.borrow();
                (me.cfg.endpoint.clone(), me.cfg.timeout_ms)
            };
            let mut attempts = Attempts::default();
            loop {
                ensure(&rc).await?;
                let (auth, generation) = {
                    let me = rc.borrow();
                    let t = me.slot.cache.token().ok_or_else(|| AuthError::new(ErrorCode::Unauthorized, "no token"))?;
                    (crate::http::cat("Bearer ", t.access.expose()), me.slot.cache.generation())
                };
                let mut pairs = graphql_headers();
                pairs.push(("Authorization", auth));
                let i = host::init("POST", &headers_from(&pairs)?, timeout, None);
                i.set_body(&body);
                let req = Request::new_with_str_and_init(&endpoint, &i).map_err(|_| AuthError::new(ErrorCode::InvalidConfig, "endpoint"))?;
                let resp = host::send_raw(&req, WHAT).await?;
                let status = resp.status();
                let text = host::read_text(&resp, WHAT).await?;
                let env = Envelope::parse(&text);
                // The caller gets `data` as a JS object: parsed by the host, only when there is one.
                let data = env.as_ref().filter(|e| e.data.is_some()).and_then(|_| parse_json(&text)).and_then(|p| Reflect::get(&p, &"data".into()).ok());
                let verdict = {
                    let me = rc.borrow();
                    classify(status, env.as_ref(), &op, &me.cfg.secrets())
                };
                match attempts.next(verdict, &op) {
                    Next::Done => return Ok(data.unwrap_or(JsValue::NULL)),
                    Next::Remint => rc.borrow_mut().slot.invalidate_if(generation),
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
