// (In a subfolder so cargo does not build it as a test target of its own.)
// Shared by the wasm-bindgen-test suites (Node and headless Chrome); included with `include!`.
use js_sys::{Object, Reflect};
use qauth::js::{begin_authorization, complete_authorization, QflowAuth};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

/// Set by scripts/test.sh, which starts the emulator first; a build without it fails loudly.
const EMULATOR: &str = env!("QAUTH_EMULATOR", "scripts/test.sh sets QAUTH_EMULATOR to the running emulator's URL");

fn obj(pairs: &[(&str, &str)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), &(*v).into()).unwrap();
    }
    o.into()
}

fn get(v: &JsValue, k: &str) -> String {
    Reflect::get(v, &k.into()).unwrap().as_string().unwrap_or_default()
}

fn good() -> Vec<(&'static str, &'static str)> {
    vec![
        ("clientId", "qauth-demo"),
        ("clientSecret", "CANARY-client-secret-7d1f2a"),
        ("subscriptionKey", "CANARY-subscription-key-5b2e9c"),
        ("username", "4471/joe.bloggs@example.com"),
        ("password", "CANARY-password-joe-91c3"),
        ("identityUrl", EMULATOR),
        ("apiUrl", EMULATOR),
    ]
}

#[wasm_bindgen_test]
fn invalid_config_is_typed_and_names_the_option() {
    let mut o = good();
    o.retain(|(k, _)| *k != "clientId");
    let e = QflowAuth::new(obj(&o)).err().expect("missing clientId must fail");
    assert_eq!(get(&e, "code"), "invalid_config");
    assert!(get(&e, "message").contains("clientId"));
    assert_eq!(Reflect::get(&e, &"retryable".into()).unwrap(), JsValue::FALSE);

    let mut o = good();
    o.push(("identityUrl", "not a url"));
    let e = QflowAuth::new(obj(&o)).err().expect("bad identityUrl must fail");
    assert_eq!(get(&e, "code"), "invalid_config");
    assert!(get(&e, "message").contains("identityUrl"));
    assert!(!format!("{e:?}").contains("CANARY"));
}

#[wasm_bindgen_test]
async fn headers_from_the_emulator() {
    let q = QflowAuth::new(obj(&good())).unwrap();
    let h = JsFuture::from(q.headers()).await.unwrap();
    assert!(get(&h, "Authorization").starts_with("Bearer CANARY-at-"));
    assert_eq!(get(&h, "Ocp-Apim-Subscription-Key"), "CANARY-subscription-key-5b2e9c");
}

#[wasm_bindgen_test]
async fn pkce_begin_and_complete() {
    let r = JsFuture::from(begin_authorization(obj(&[("clientId", "qauth-demo"), ("redirectUri", "http://127.0.0.1:1/cb"), ("identityUrl", EMULATOR)]))).await.unwrap();
    let verifier = get(&r, "codeVerifier");
    let state = get(&r, "state");
    let url = get(&r, "url");
    assert!(qauth::pkce::valid_verifier(&verifier));
    assert!(url.starts_with(&format!("{EMULATOR}/core/connect/authorize?response_type=code&")));
    assert!(url.contains("code_challenge_method=S256"));
    assert!(url.contains(&format!("state={state}")));
    let cb = format!("http://127.0.0.1:1/cb?code=abc&state={state}");
    let done = complete_authorization(cb.into(), obj(&[("state", &state)])).unwrap();
    assert_eq!(get(&done, "code"), "abc");
    let e = complete_authorization(JsValue::from_str("http://127.0.0.1:1/cb?code=abc&state=other"), obj(&[("state", &state)])).unwrap_err();
    assert_eq!(get(&e, "code"), "state_mismatch");
}
