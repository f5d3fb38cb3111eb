//! Browser side of the authorization-code flow: `beginAuthorization` / `completeAuthorization`.
//! No secret is involved: the code is exchanged by the worker (`QflowAuth.exchangeCode`).

use js_sys::{Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::host::{bad_arg, random_bytes, sha256, url_input, Options};
use crate::error::{AuthError, ErrorCode};
use crate::http::{base_url, cat};
use crate::pkce::{authorize_url, base64url, parse_callback};
use crate::qflow::{AUTHORIZE_PATH, DEFAULT_IDENTITY_URL, DEFAULT_SCOPE};

fn set(o: &Object, k: &str, v: &str) {
    let _ = Reflect::set(o, &k.into(), &v.into());
}

/// `{ url, state, codeVerifier }`: PKCE S256 from the platform CSPRNG and WebCrypto.
#[wasm_bindgen(js_name = beginAuthorization)]
pub fn begin_authorization(options: JsValue) -> Promise {
    future_to_promise(async move {
        let o = Options::new(&options, "beginAuthorization options", crate::pkce::BEGIN_OPTIONS, ErrorCode::InvalidConfig)?;
        let client_id = crate::config::required("clientId", o.str("clientId")?)?;
        let redirect_uri = crate::config::required("redirectUri", o.str("redirectUri")?)?;
        base_url("redirectUri", redirect_uri.split('?').next().unwrap_or(""))?;
        let endpoint = match o.str("authorizeUrl")? {
            Some(u) => base_url("authorizeUrl", &u)?,
            None => cat(&base_url("identityUrl", o.str("identityUrl")?.as_deref().unwrap_or(DEFAULT_IDENTITY_URL))?, AUTHORIZE_PATH),
        };
        let scope = o.str("scope")?.unwrap_or_else(|| DEFAULT_SCOPE.to_string());
        // 32 random bytes → a 43-character verifier; 16 → a 22-character state.
        let verifier = base64url(&random_bytes(32));
        let state = base64url(&random_bytes(16));
        let digest = JsFuture::from(sha256(&verifier)).await.map_err(|_| AuthError::config("crypto", "WebCrypto SHA-256 is not available"))?;
        let challenge = base64url(&Uint8Array::new(&digest).to_vec());
        let out = Object::new();
        set(&out, "url", &authorize_url(&endpoint, &client_id, &redirect_uri, &scope, &state, &challenge));
        set(&out, "state", &state);
        set(&out, "codeVerifier", &verifier);
        Ok(out.into())
    })
}

/// `{ code }` from the callback URL, if its `state` is the expected one.
#[wasm_bindgen(js_name = completeAuthorization)]
pub fn complete_authorization(callback_url: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
    let callback_url =
        url_input(&callback_url).ok_or_else(|| bad_arg("completeAuthorization(callbackUrl, { state }) takes the callback URL as a string or URL"))?;
    let o = Options::new(&options, "completeAuthorization options", &["state"], ErrorCode::InvalidRequest)?;
    let code = parse_callback(&callback_url, o.str("state")?.as_deref())?;
    let out = Object::new();
    set(&out, "code", code.expose());
    Ok(out.into())
}
