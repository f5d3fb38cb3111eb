//! Server side of the authorization-code redirect (`beginAuthorization` also runs in workerd for a
//! backend-for-frontend; `completeAuthorization` anywhere). The browser build exports the same
//! two functions from `js::browser`; both call `crate::pkce`.

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use super::host::{bad_arg, random_bytes, url_input, Options};
use crate::error::{AuthError, ErrorCode};
use crate::pkce::{begin, parse_callback, BeginOptions, RANDOM_BYTES};

fn set(o: &Object, k: &str, v: &str) {
    let _ = Reflect::set(o, &k.into(), &v.into());
}

/// `{ url, state, codeVerifier }`: PKCE S256 from the platform CSPRNG. One synchronous step,
/// answered as a settled Promise (the public contract is async).
#[wasm_bindgen(js_name = beginAuthorization)]
pub fn begin_authorization(options: JsValue) -> Promise {
    let begun = (|| {
        let o = Options::new(&options, "beginAuthorization options", crate::pkce::BEGIN_OPTIONS, ErrorCode::InvalidConfig)?;
        let opts = BeginOptions::read(|name| o.str(name))?;
        let random: [u8; RANDOM_BYTES] =
            random_bytes(RANDOM_BYTES as u32).try_into().map_err(|_| AuthError::config("crypto", "getRandomValues is not available"))?;
        begin(opts, &random)
    })();
    match begun {
        Ok(b) => {
            let out = Object::new();
            set(&out, "url", &b.url);
            set(&out, "state", &b.state);
            set(&out, "codeVerifier", &b.code_verifier);
            Promise::resolve(&JsValue::from(out))
        }
        Err(e) => Promise::reject(&e.into()),
    }
}

/// `{ code }` from the callback URL, if its `state` is the expected one.
#[wasm_bindgen(js_name = completeAuthorization)]
pub fn complete_authorization(callback_url: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
    let callback_url = url_input(&callback_url).ok_or_else(|| bad_arg(crate::pkce::NOT_A_CALLBACK_URL))?;
    let o = Options::new(&options, "completeAuthorization options", crate::pkce::COMPLETE_OPTIONS, ErrorCode::InvalidRequest)?;
    let code = parse_callback(&callback_url, o.str("state")?.as_deref())?;
    let out = Object::new();
    set(&out, "code", code.expose());
    Ok(out.into())
}
