//! Single-flight token acquisition around the core's `TokenCache`, shared by both providers.
//!
//! The first caller that finds no usable token starts one acquisition (a `Flight`: a Promise to
//! wait on and a cell with its typed outcome) and parks it in the `Slot`; every other caller
//! awaits that same flight and so shares its result or its error. An acquisition is, by configuration: a lease from the
//! `TokenBroker` (`broker` option), the provider's own grants (`Source::acquire`: a core flow,
//! `acquisition::Acquisition` or `qpien::Mint`, performed by `drive`), or, inside the broker, the
//! same grants with the current access token kept in the object's storage (restored after a
//! restart).
//!
//! No `RefCell` borrow is held across a call into JS: events, the `fast.js` mirror, the store and
//! the broker are called after the borrow ends, so a callback may call any method of its client.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::host::{freeze_headers, now, Broker, Events, LeaseRequest, Store};
use crate::broker::{decode_access, encode_access, Generations};
use crate::cache::{Step, TokenCache};
use crate::error::AuthError;
use crate::event::Event;
use crate::flow::{Action, Input};
use crate::secret::{Redactor, Secret};
use crate::token::Token;

pub(super) struct Slot {
    pub cache: TokenCache,
    pending: Option<Flight>,
    /// The frozen headers object for the cached token (`undefined` when there is none).
    headers: JsValue,
    /// A Promise already resolved with `headers`: every cache hit returns this same object, so a
    /// hit costs no Promise allocation (a settled Promise is immutable; sharing it is safe).
    resolved: Option<Promise>,
    /// The JS hit path (`fast.js`): told `(resolvedPromise, usableUntilMs)` on every change of
    /// the cached token, so a hit never enters wasm. It holds a small state object, not the
    /// client wrapper, so no reference cycle keeps a dropped client alive.
    pub mirror: Option<Function>,
    pub events: Events,
    /// Every live credential this client holds or has seen, for redacting server text.
    pub redactor: Redactor,
    /// With a broker: the broker's generation of the cached token, and one reported stale (by
    /// `invalidate()` or a 401) to send with the next lease.
    generations: Generations,
    /// Inside the broker: the stored access token was looked at.
    access_loaded: bool,
    /// What the last install handed out, for the callers waiting on that acquisition: an
    /// `onEvent` callback may `invalidate()` before they resume, and they still get this token.
    last: Option<Got>,
}

/// A token as callers use it: the frozen headers, the access token, the cache generation (for a
/// 401 to drop exactly this one), and its expiry.
#[derive(Clone)]
pub(super) struct Got {
    pub headers: JsValue,
    pub access: Secret,
    pub generation: u32,
    pub expires_at_ms: f64,
    pub lifetime_ms: f64,
}

/// What the mirror is told after a change, sent once the borrow has ended.
pub(super) struct Publish(Option<(Function, JsValue, f64)>);

impl Publish {
    pub(super) fn send(self) {
        if let Some((f, p, until)) = self.0 {
            let _ = f.call2(&JsValue::UNDEFINED, &p, &until.into());
        }
    }
}

impl Slot {
    pub(super) fn new(refresh_skew_s: f64, events: Events, redactor: Redactor) -> Self {
        Slot {
            cache: TokenCache::new(refresh_skew_s),
            pending: None,
            headers: JsValue::UNDEFINED,
            resolved: None,
            mirror: None,
            events,
            redactor,
            generations: Generations::default(),
            access_loaded: false,
            last: None,
        }
    }

    /// The cached token as a `Got`, if there is one.
    fn got(&self) -> Option<Got> {
        let t = self.cache.token()?;
        Some(Got {
            headers: self.headers.clone(),
            access: t.access.clone(),
            generation: self.cache.generation(),
            expires_at_ms: t.expires_at_ms,
            lifetime_ms: t.lifetime_ms,
        })
    }

    /// The hot path of `headers()`: the prebuilt, resolved Promise if the token is fresh.
    pub(super) fn fast(&self, now_ms: f64) -> Option<Promise> {
        self.cache.fresh(now_ms).and(self.resolved.clone())
    }

    /// Installs a token (with the broker's `generation` when restoring one) and its headers.
    fn install(&mut self, token: Token, generation: Option<u32>, pairs: &[(&'static str, String)]) -> Publish {
        let a = Array::new();
        for (k, v) in pairs {
            a.push(&Array::of2(&JsValue::from_str(k), &JsValue::from_str(v)));
        }
        self.redactor.add(&token.access);
        self.headers = freeze_headers(&a);
        self.resolved = Some(Promise::resolve(&self.headers));
        match generation {
            Some(g) => self.cache.restore(token, g),
            None => self.cache.put(token),
        }
        self.last = self.got();
        self.publish()
    }

    fn invalidate(&mut self) -> Publish {
        self.cache.invalidate();
        self.drop_headers()
    }

    fn invalidate_if(&mut self, generation: u32) -> Option<Publish> {
        self.cache.invalidate_if(generation).then(|| self.drop_headers())
    }

    fn drop_headers(&mut self) -> Publish {
        self.headers = JsValue::UNDEFINED;
        self.resolved = None;
        self.generations.dropped();
        self.publish()
    }

    pub(super) fn publish(&self) -> Publish {
        Publish(self.mirror.clone().map(|f| {
            let until = self.cache.usable_until().filter(|_| self.resolved.is_some()).unwrap_or(0.0);
            (f, self.resolved.as_ref().map_or(JsValue::UNDEFINED, |p| p.into()), until)
        }))
    }
}

/// With a `broker`: what to lease and from where.
pub(super) struct Lease {
    pub broker: Rc<Broker>,
    pub request: LeaseRequest,
    pub timeout_ms: f64,
}

/// A provider that can get a new token.
pub(super) trait Source: Sized + 'static {
    fn slot(&mut self) -> &mut Slot;
    /// The auth headers for an access token.
    fn headers_for(&self, access: &Secret) -> Vec<(&'static str, String)>;
    /// With a `broker`: the lease request (a `stale` generation is added by `flight`).
    fn lease(&self) -> Option<Lease>;
    /// Inside the broker: its storage and the key of the stored access token.
    fn broker_side(&self) -> Option<(Rc<Store>, String)>;
    /// The client's store and the key its refresh token lives under, if it has one.
    fn store(&self) -> Option<(Rc<Store>, String)>;
    /// All the network work for one new token (a core flow run by `drive`); installs it with
    /// `install`. Only ever running once at a time per client.
    async fn acquire(this: Rc<RefCell<Self>>) -> Result<(), AuthError>;
}

/// Performs a flow's actions until it is done: the one loop between the core's flows
/// (`acquisition::Acquisition`, `qpien::Mint`) and the host. `step` advances the flow inside a
/// borrow of the client that ends before any call into JS; `what` names the server in errors.
pub(super) async fn drive<S: Source>(rc: &Rc<RefCell<S>>, step: &mut dyn FnMut(&mut S, Option<Input>, f64) -> Action, what: &str) -> Result<(), AuthError> {
    let mut input = None;
    loop {
        let at = now();
        let action = step(&mut rc.borrow_mut(), input.take(), at);
        // Bound first, so no borrow of the client lives across the store's await.
        let store = matches!(action, Action::ReadStore | Action::WriteStore(_)).then(|| rc.borrow().store()).flatten();
        input = match action {
            Action::ReadStore => Some(Input::StoreRead(match store {
                Some((store, key)) => store.get(&key).await,
                None => Err(no_store()),
            })),
            Action::WriteStore(value) => Some(Input::StoreWritten(match store {
                Some((store, key)) => store.put(&key, value.expose()).await,
                None => Err(no_store()),
            })),
            Action::Send { request, timeout_ms } => Some(Input::Answer(super::host::send(&request, timeout_ms, what).await)),
            Action::Wait(ms) => {
                super::host::wait(ms).await;
                Some(Input::Waited)
            }
            Action::Emit(event) => {
                events(rc).emit(event);
                None
            }
            Action::Install(token) => {
                install(rc, token, None);
                None
            }
            Action::Done(r) => return r,
        };
    }
}

fn no_store() -> AuthError {
    AuthError::new(crate::error::ErrorCode::StoreFailed, "there is no store")
}

/// Installs `token` (the borrow ends before the mirror is told).
pub(super) fn install<S: Source>(rc: &Rc<RefCell<S>>, token: Token, generation: Option<u32>) {
    let publish = {
        let mut me = rc.borrow_mut();
        let pairs = me.headers_for(&token.access);
        me.slot().install(token, generation, &pairs)
    };
    publish.send();
}

pub(super) fn invalidate<S: Source>(rc: &Rc<RefCell<S>>) {
    let publish = rc.borrow_mut().slot().invalidate();
    publish.send();
}

/// Drops the token only if it is still the one of `generation` (a 401 answered to an old
/// token must not drop a newer one).
pub(super) fn invalidate_if<S: Source>(rc: &Rc<RefCell<S>>, generation: u32) {
    let publish = rc.borrow_mut().slot().invalidate_if(generation);
    if let Some(p) = publish {
        p.send();
    }
}

pub(super) fn events<S: Source>(rc: &Rc<RefCell<S>>) -> Events {
    rc.borrow_mut().slot().events.clone()
}

/// Adds live credentials (a code, a verifier, a token read from a store) to the redaction set.
pub(super) fn remember<S: Source>(rc: &Rc<RefCell<S>>, secrets: &[&Secret]) {
    let mut me = rc.borrow_mut();
    for s in secrets {
        me.slot().redactor.add(s);
    }
}

/// One lease from the broker, installed (used by `obtain` and by `exchangeCode`).
pub(super) async fn lease_from<S: Source>(rc: &Rc<RefCell<S>>, lease: Lease) -> Result<(), AuthError> {
    let started = now();
    let redactor = rc.borrow_mut().slot().redactor.clone();
    let (token, generation) = lease.broker.lease(lease.request, lease.timeout_ms, &redactor).await?;
    let acquired = Event::TokenAcquired { grant: "broker", ms: now() - started, expires_in_s: token.lifetime_ms / 1000.0 };
    rc.borrow_mut().slot().generations.leased(generation);
    install(rc, token, None);
    events(rc).emit(acquired);
    Ok(())
}

/// Inside the broker, once: the access token kept in storage (with its generation, so a `stale`
/// report from before a restart still names it), installed whether or not it is still fresh.
async fn restore_access<S: Source>(rc: &Rc<RefCell<S>>) {
    let Some((store, key)) = rc.borrow().broker_side() else { return };
    if std::mem::replace(&mut rc.borrow_mut().slot().access_loaded, true) {
        return;
    }
    if let Some((token, generation)) = store.get(&key).await.ok().flatten().and_then(|t| decode_access(&t)) {
        install(rc, token, Some(generation));
    }
}

/// One acquisition, whichever way this client gets tokens.
async fn obtain<S: Source>(rc: &Rc<RefCell<S>>) -> Result<(), AuthError> {
    let lease = rc.borrow().lease();
    if let Some(mut lease) = lease {
        let stale = rc.borrow_mut().slot().generations.take_stale();
        lease.request.stale = stale;
        return lease_from(rc, lease).await.inspect_err(|_| rc.borrow_mut().slot().generations.failed(stale));
    }
    restore_access(rc).await;
    let at = now();
    if rc.borrow_mut().slot().cache.fresh(at).is_some() {
        return Ok(());
    }
    S::acquire(rc.clone()).await?;
    let side = rc.borrow().broker_side();
    if let Some((store, key)) = side {
        let record = {
            let mut me = rc.borrow_mut();
            let generation = me.slot().cache.generation();
            me.slot().cache.token().map(|t| encode_access(t, generation))
        };
        // Only saves a restart a grant: a failure here costs nothing but that.
        if let Some(r) = record {
            let _ = store.put(&key, &r).await;
        }
    }
    Ok(())
}

/// One acquisition, shared by every caller that joined it. Waiters await its JS Promise (in
/// workerd a continuation must be registered by the request that waits, so a Rust waker from
/// another request's task would never run) and then read its outcome here, so the error stays an
/// `AuthError` until an export returns it. The Promise itself always resolves.
#[derive(Clone)]
pub(crate) struct Flight {
    promise: Promise,
    outcome: Rc<RefCell<Option<Result<(), AuthError>>>>,
}

impl Flight {
    async fn land(self) -> Result<(), AuthError> {
        let _ = JsFuture::from(self.promise).await;
        let outcome = self.outcome.borrow().clone();
        outcome.unwrap_or_else(|| Err(AuthError::new(crate::error::ErrorCode::ServerError, "the acquisition did not end")))
    }
}

/// Starts `work` as the client's one acquisition: parked in the slot for joiners, and the cache
/// told when it ends, before the joiners resume.
fn spawn<S: Source>(rc: &Rc<RefCell<S>>, work: Pin<Box<dyn Future<Output = Result<(), AuthError>>>>) -> Flight {
    let outcome = Rc::new(RefCell::new(None));
    let (done, landed) = (rc.clone(), outcome.clone());
    let promise = super::host::promise(async move {
        let r = work.await;
        {
            let mut me = done.borrow_mut();
            let s = me.slot();
            s.cache.finish();
            s.pending = None;
        }
        *landed.borrow_mut() = Some(r);
        Ok(JsValue::UNDEFINED)
    });
    let flight = Flight { promise, outcome };
    rc.borrow_mut().slot().pending = Some(flight.clone());
    flight
}

/// What the acquisition behind `flight` installed.
async fn settled<S: Source>(rc: &Rc<RefCell<S>>, flight: Flight) -> Result<Got, AuthError> {
    flight.land().await?;
    let last = rc.borrow_mut().slot().last.clone();
    last.ok_or_else(|| AuthError::new(crate::error::ErrorCode::ServerError, "no token after acquisition"))
}

/// Runs `work` (an authorization-code exchange) as the client's single flight: after any
/// acquisition in progress has settled, with callers arriving meanwhile joining it, so a refresh
/// cannot finish after the exchange and overwrite the new chain.
pub(super) async fn exclusive<S: Source>(rc: &Rc<RefCell<S>>, work: impl Future<Output = Result<(), AuthError>> + 'static) -> Result<Got, AuthError> {
    loop {
        let pending = rc.borrow_mut().slot().pending.clone();
        match pending {
            Some(f) => {
                let _ = f.land().await;
            }
            None => break,
        }
    }
    rc.borrow_mut().slot().cache.force_start();
    let p = spawn(rc, Box::pin(work));
    settled(rc, p).await
}

/// A usable token: the cached one, or the one the single in-flight acquisition (started here or
/// joined) installed. Callers use what this returns, never a second read of the cache.
pub(super) async fn ensure<S: Source>(this: &Rc<RefCell<S>>) -> Result<Got, AuthError> {
    let at = now();
    let step = this.borrow_mut().slot().cache.step(at);
    let p = match step {
        Step::Ready => match this.borrow_mut().slot().got() {
            Some(got) => return Ok(got),
            None => return Err(AuthError::new(crate::error::ErrorCode::ServerError, "no token")),
        },
        Step::Join => this.borrow_mut().slot().pending.clone(),
        Step::Start => None,
    };
    let p = match p {
        Some(p) => p,
        None => {
            let rc = this.clone();
            spawn(this, Box::pin(async move { obtain(&rc).await }))
        }
    };
    settled(this, p).await
}

/// `headers()`: a resolved Promise of the cached object on a hit, else after `ensure`.
pub(super) fn headers<S: Source>(this: &Rc<RefCell<S>>) -> Promise {
    let at = now();
    if let Some(p) = this.borrow_mut().slot().fast(at) {
        return p;
    }
    let rc = this.clone();
    super::host::promise(async move { Ok(ensure(&rc).await?.headers) })
}

/// `accessToken()`: the token string, after `ensure`.
pub(super) fn access_token<S: Source>(this: &Rc<RefCell<S>>) -> Promise {
    let rc = this.clone();
    super::host::promise(async move { Ok(ensure(&rc).await?.access.expose().into()) })
}

/// The token broker's side of a lease (`TokenBroker.lease` calls this on its own client): drops
/// the token if `stale` names it (once, for every isolate), then the current token, single-flight.
pub(super) fn lease<S: Source>(this: &Rc<RefCell<S>>, stale: JsValue) -> Promise {
    let rc = this.clone();
    super::host::promise(async move {
        // Restored first: after a restart the stale generation may name the stored token.
        restore_access(&rc).await;
        if let Some(g) = stale.as_f64().and_then(crate::broker::generation) {
            invalidate_if(&rc, g);
        }
        let t = ensure(&rc).await?;
        let fields = [
            ("accessToken", JsValue::from_str(t.access.expose())),
            ("expiresInMs", (t.expires_at_ms - now()).into()),
            ("lifetimeMs", t.lifetime_ms.into()),
            ("generation", t.generation.into()),
        ];
        let o = Object::new();
        for (k, v) in fields {
            let _ = Reflect::set(&o, &k.into(), &v);
        }
        Ok(o.into())
    })
}

/// The methods both provider classes share, all served by their `Slot` (`headers()`,
/// `accessToken()`, `invalidate()`, the internal `__mirror` and `__lease`): defined once here, so
/// a class cannot miss one. Expects the class to hold `inner: Rc<RefCell<T>>`.
macro_rules! slot_methods {
    ($class:ident) => {
        #[wasm_bindgen]
        impl $class {
            /// The auth headers, frozen; a cache hit does no token work.
            pub fn headers(&self) -> js_sys::Promise {
                flight::headers(&self.inner)
            }

            #[wasm_bindgen(js_name = accessToken)]
            pub fn access_token(&self) -> js_sys::Promise {
                flight::access_token(&self.inner)
            }

            /// Drops the cached token; the next call gets a new one (e.g. after changing a key's
            /// scopes in the dashboard). With a broker, the broker drops it too (once for all).
            pub fn invalidate(&self) {
                flight::invalidate(&self.inner);
            }

            /// Registers the package's JS hit path for `headers()` (pkg-template/fast.js); internal.
            #[wasm_bindgen(js_name = __mirror, skip_typescript)]
            pub fn mirror(&self, f: js_sys::Function) {
                let publish = {
                    let mut me = self.inner.borrow_mut();
                    me.slot.mirror = Some(f);
                    me.slot.publish()
                };
                publish.send();
            }

            /// The token broker's side of a lease (pkg-template/broker.js); internal.
            #[wasm_bindgen(js_name = __lease, skip_typescript)]
            pub fn lease(&self, stale: JsValue) -> js_sys::Promise {
                flight::lease(&self.inner, stale)
            }
        }
    };
}
pub(crate) use slot_methods;
