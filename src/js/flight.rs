//! Single-flight token acquisition around the core's `TokenCache`.
//!
//! The first caller that finds no usable token starts the provider's `acquire` as a Promise and
//! parks it in the `Slot`; every other caller awaits that same Promise and so shares its result or
//! its error. A cache hit does no token work: it returns a frozen, prebuilt headers object.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::host::{freeze_headers, now, Events};
use crate::cache::{Step, TokenCache};
use crate::error::AuthError;
use crate::token::Token;

pub struct Slot {
    pub cache: TokenCache,
    pending: Option<Promise>,
    /// The frozen headers object for the cached token (`undefined` when there is none).
    headers: JsValue,
    /// A Promise already resolved with `headers`: every cache hit returns this same object, so a
    /// hit costs no Promise allocation (a settled Promise is immutable; sharing it is safe).
    resolved: Option<Promise>,
    /// The JS hit path (`fast.js`): told `(resolvedPromise, usableUntilMs)` on every change of
    /// the cached token, so a hit never enters wasm. It holds a small state object, not the
    /// client wrapper, so no reference cycle keeps a dropped client alive.
    mirror: Option<Function>,
    pub events: Events,
}

impl Slot {
    pub fn new(refresh_skew_s: f64, events: Events) -> Self {
        Slot { cache: TokenCache::new(refresh_skew_s), pending: None, headers: JsValue::UNDEFINED, resolved: None, mirror: None, events }
    }

    /// The hot path of `headers()`: the prebuilt, resolved Promise if the token is fresh.
    pub fn fast(&self) -> Option<Promise> {
        self.cache.fresh(now()).and(self.resolved.clone())
    }

    pub fn headers(&self) -> JsValue {
        self.headers.clone()
    }

    /// Installs a new token and its headers object.
    pub fn install(&mut self, token: Token, pairs: &[(&'static str, String)]) {
        let a = Array::new();
        for (k, v) in pairs {
            a.push(&Array::of2(&JsValue::from_str(k), &JsValue::from_str(v)));
        }
        self.headers = freeze_headers(&a);
        self.resolved = Some(Promise::resolve(&self.headers));
        self.cache.put(token);
        self.publish();
    }

    pub fn invalidate(&mut self) {
        self.cache.invalidate();
        self.headers = JsValue::UNDEFINED;
        self.resolved = None;
        self.publish();
    }

    /// Drops the token only if it is still the one of `generation` (a 401 answered to an old
    /// token must not drop a newer one).
    pub fn invalidate_if(&mut self, generation: u32) {
        if self.cache.generation() == generation {
            self.invalidate();
        }
    }

    pub fn set_mirror(&mut self, f: Function) {
        self.mirror = Some(f);
        self.publish();
    }

    fn publish(&self) {
        if let Some(f) = &self.mirror {
            let until = self.cache.usable_until().filter(|_| self.resolved.is_some()).unwrap_or(0.0);
            let p = self.resolved.as_ref().map_or(JsValue::UNDEFINED, |p| p.into());
            let _ = f.call2(&JsValue::UNDEFINED, &p, &until.into());
        }
    }
}

/// A provider that can get a new token.
pub trait Source: Sized + 'static {
    fn slot(&mut self) -> &mut Slot;
    /// All the network work for one new token; installs it with `Slot::install`.
    /// Only ever running once at a time per client.
    async fn acquire(this: Rc<RefCell<Self>>) -> Result<(), AuthError>;
}

/// Makes sure a usable token is installed, starting or joining the single in-flight request.
pub async fn ensure<S: Source>(this: &Rc<RefCell<S>>) -> Result<(), JsValue> {
    let step = this.borrow_mut().slot().cache.step(now());
    let pending = match step {
        Step::Ready => return Ok(()),
        Step::Join => this.borrow_mut().slot().pending.clone(),
        Step::Start => None,
    };
    let p = match pending {
        Some(p) => p,
        None => {
            let rc = this.clone();
            let p = future_to_promise(async move {
                let r = S::acquire(rc.clone()).await;
                let mut me = rc.borrow_mut();
                let s = me.slot();
                s.cache.finish(None);
                s.pending = None;
                r.map(|_| JsValue::UNDEFINED).map_err(JsValue::from)
            });
            this.borrow_mut().slot().pending = Some(p.clone());
            p
        }
    };
    JsFuture::from(p).await.map(|_| ())
}

/// `headers()`: a resolved Promise of the cached object on a hit, else after `ensure`.
pub fn headers<S: Source>(this: &Rc<RefCell<S>>) -> Promise {
    if let Some(p) = this.borrow_mut().slot().fast() {
        return p;
    }
    let rc = this.clone();
    future_to_promise(async move {
        ensure(&rc).await?;
        Ok(rc.borrow_mut().slot().headers())
    })
}

/// `accessToken()`: the token string, after `ensure`.
pub fn access_token<S: Source>(this: &Rc<RefCell<S>>) -> Promise {
    let rc = this.clone();
    future_to_promise(async move {
        ensure(&rc).await?;
        let mut me = rc.borrow_mut();
        Ok(me.slot().cache.token().map_or(JsValue::UNDEFINED, |t| t.access.expose().into()))
    })
}

/// The methods both provider classes share, all served by their `Slot` (`headers()`,
/// `accessToken()`, `invalidate()` and the internal `__mirror`): defined once here, so a class
/// cannot miss one. Expects the class to hold `inner: Rc<RefCell<T>>` with a `slot` field.
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
            /// scopes in the dashboard).
            pub fn invalidate(&self) {
                self.inner.borrow_mut().slot.invalidate();
            }

            /// Registers the package's JS hit path for `headers()` (pkg-template/fast.js); internal.
            #[wasm_bindgen(js_name = __mirror, skip_typescript)]
            pub fn mirror(&self, f: js_sys::Function) {
                self.inner.borrow_mut().slot.set_mirror(f);
            }
        }
    };
}
pub(crate) use slot_methods;
