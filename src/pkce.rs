//! Authorization-code sign-in with PKCE (RFC 7636) and `state`, as RFC 10017 asks of browser apps.
//!
//! Plain parts only: encoding, URL building, the S256 challenge and callback parsing. Randomness
//! comes from the platform CSPRNG, through the bindings; both builds (server and browser) call
//! `begin` and `parse_callback`, so the rules live here once.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::config::required;
use crate::endpoints::{AUTHORIZE_PATH, DEFAULT_IDENTITY_URL, DEFAULT_SCOPE};
use crate::error::{AuthError, ErrorCode};
use crate::http::{base_url, cat, form_encode};
use crate::secret::{Redactor, Secret};

/// Bytes of randomness `begin` takes: 32 for the verifier (43 characters), 16 for the state (22).
pub const RANDOM_BYTES: usize = 48;

/// `beginAuthorization`'s options as the bindings read them.
#[derive(Default)]
pub struct BeginOptions {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub authorize_url: Option<String>,
    pub identity_url: Option<String>,
    pub scope: Option<String>,
}

impl BeginOptions {
    /// Reads every option through `str` (each binding's reader of one string option), in one
    /// order for both builds, so the first bad option named is the same in both.
    pub fn read(mut str: impl FnMut(&str) -> Result<Option<String>, AuthError>) -> Result<Self, AuthError> {
        Ok(BeginOptions {
            client_id: str("clientId")?,
            redirect_uri: str("redirectUri")?,
            authorize_url: str("authorizeUrl")?,
            identity_url: str("identityUrl")?,
            scope: str("scope")?,
        })
    }
}

/// What `beginAuthorization` hands back: where to send the browser, and what to keep.
pub struct Begun {
    pub url: String,
    pub state: String,
    pub code_verifier: String,
}

/// The authorize URL with a fresh PKCE pair and `state`, from `random` (CSPRNG bytes).
pub fn begin(o: BeginOptions, random: &[u8; RANDOM_BYTES]) -> Result<Begun, AuthError> {
    let client_id = required("clientId", o.client_id)?;
    let redirect_uri = required("redirectUri", o.redirect_uri)?;
    base_url("redirectUri", redirect_uri.split(['?']).next().unwrap_or(""))?;
    let endpoint = match o.authorize_url {
        Some(u) => base_url("authorizeUrl", &u)?,
        None => cat(&base_url("identityUrl", o.identity_url.as_deref().unwrap_or(DEFAULT_IDENTITY_URL))?, AUTHORIZE_PATH),
    };
    let scope = o.scope.unwrap_or_else(|| DEFAULT_SCOPE.to_string());
    let (v, s) = random.split_at(32);
    let code_verifier = base64url(v);
    let state = base64url(s);
    let url = authorize_url(&endpoint, &client_id, &redirect_uri, &scope, &state, &challenge(&code_verifier));
    Ok(Begun { url, state, code_verifier })
}

/// RFC 7636 §4.2 S256: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn challenge(verifier: &str) -> String {
    base64url(&crate::sha256::sha256(verifier.as_bytes()))
}

/// Every option `beginAuthorization({...})` reads.
pub const BEGIN_OPTIONS: &[&str] = &["clientId", "redirectUri", "authorizeUrl", "identityUrl", "scope"];
/// Every option `completeAuthorization(url, {...})` reads.
pub const COMPLETE_OPTIONS: &[&str] = &["state"];
/// The message for a callback URL that is neither a string nor a URL object.
pub const NOT_A_CALLBACK_URL: &str = "completeAuthorization(callbackUrl, { state }) takes the callback URL as a string or URL";

/// base64url without padding (RFC 4648 §5), as PKCE and `state` use it.
pub fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    // Three bytes at a time, by iterator: no index or slice that could panic.
    let mut it = bytes.iter().map(|&b| u32::from(b));
    while let Some(a) = it.next() {
        let (b, c) = (it.next(), it.next());
        let n = a << 16 | b.unwrap_or(0) << 8 | c.unwrap_or(0);
        let chars = 2 + usize::from(b.is_some()) + usize::from(c.is_some());
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.as_bytes().iter().all(crate::http::unreserved)
}

/// The authorize URL with `response_type=code`, PKCE S256 and `state`.
pub fn authorize_url(authorize_endpoint: &str, client_id: &str, redirect_uri: &str, scope: &str, state: &str, challenge: &str) -> String {
    let mut u = String::from(authorize_endpoint);
    u.push(if authorize_endpoint.contains(['?']) { '&' } else { '?' });
    u.push_str(&form_encode(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]));
    u
}

/// Decodes one `application/x-www-form-urlencoded` value; `None` on invalid UTF-8.
fn decode(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut rest = v.as_bytes();
    while let Some((b, n)) = crate::http::percent_unit(rest, true) {
        out.push(b);
        rest = rest.get(n..).unwrap_or_default();
    }
    String::from_utf8(out).ok()
}

/// The query parameters of a URL (before any `#`).
pub fn query_params(url: &str) -> Vec<(String, String)> {
    let q = url.split(['#']).next().unwrap_or("").split_once(['?']).map_or("", |(_, q)| q);
    q.split(['&'])
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once(['=']).unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Reads an authorization callback URL: the `code` when `state` matches what this browser sent.
/// An `error=` callback becomes an `AuthError` with that code and the server's description.
pub fn parse_callback(url: &str, expected_state: Option<&str>) -> Result<Secret, AuthError> {
    let params = query_params(url);
    // RFC 6749 §3.1: a parameter must not appear twice; which copy is "the" code is ambiguous.
    if ["code", "state", "error"].iter().any(|k| params.iter().filter(|(n, _)| n == k).count() > 1) {
        return Err(AuthError::new(ErrorCode::InvalidRequest, "the callback URL repeats `code`, `state` or `error`"));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let state_ok = matches!((get("state"), expected_state), (Some(got), Some(want)) if !want.is_empty() && got == want);
    if let Some(error) = get("error") {
        if !state_ok {
            return Err(state_mismatch());
        }
        let mut redactor = Redactor::default();
        if let Some(code) = get("code") {
            redactor.add(&Secret::new(code));
        }
        return Err(crate::token::oauth_error(error, get("error_description"), 0, &redactor));
    }
    let Some(code) = get("code").filter(|c| !c.is_empty()) else {
        return Err(AuthError::new(ErrorCode::InvalidRequest, "the callback URL has neither `code` nor `error`"));
    };
    if !state_ok {
        return Err(state_mismatch());
    }
    Ok(Secret::new(code))
}

fn state_mismatch() -> AuthError {
    AuthError::new(ErrorCode::StateMismatch, "the callback's `state` is missing or differs from the one this browser sent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let bytes =
            [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121];
        let verifier = base64url(&bytes);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert!(valid_verifier(&verifier));
        assert_eq!(challenge(&verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn begin_builds_the_redirect() {
        let o = |f: fn(&mut BeginOptions)| {
            let mut o = BeginOptions { client_id: Some("c".into()), redirect_uri: Some("http://127.0.0.1:2/cb".into()), ..BeginOptions::default() };
            f(&mut o);
            o
        };
        let b = begin(o(|_| {}), &[7; RANDOM_BYTES]).unwrap();
        assert_eq!(b.code_verifier.len(), 43);
        assert_eq!(b.state.len(), 22);
        assert!(b.url.starts_with("https://identity.qflowhub.io/core/connect/authorize?response_type=code&client_id=c&"), "{}", b.url);
        assert!(b.url.contains(&cat("code_challenge=", &challenge(&b.code_verifier))));
        assert!(b.url.contains("scope=qflowapi+openid+offline_access"));
        let b = begin(o(|o| o.authorize_url = Some("http://127.0.0.1:5/authz".into())), &[7; RANDOM_BYTES]).unwrap();
        assert!(b.url.starts_with("http://127.0.0.1:5/authz?"));
        assert!(begin(o(|o| o.client_id = None), &[0; RANDOM_BYTES]).err().unwrap().message.contains("clientId"));
        assert!(begin(o(|o| o.redirect_uri = Some("ftp://x/cb".into())), &[0; RANDOM_BYTES]).err().unwrap().message.contains("redirectUri"));
        assert!(begin(o(|o| o.identity_url = Some("http://evil.example".into())), &[0; RANDOM_BYTES]).err().unwrap().message.contains("identityUrl"));
    }

    #[test]
    fn base64url_lengths() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn verifier_bounds() {
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(valid_verifier(&"a".repeat(128)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(50))));
    }

    #[test]
    fn authorize_url_has_pkce_and_state() {
        let u = authorize_url("http://127.0.0.1:1/core/connect/authorize", "c", "http://127.0.0.1:2/cb", "qflowapi openid", "st", "ch");
        assert_eq!(
            u,
            "http://127.0.0.1:1/core/connect/authorize?response_type=code&client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%3A2%2Fcb&scope=qflowapi+openid&state=st&code_challenge=ch&code_challenge_method=S256"
        );
    }

    #[test]
    fn form_values_decode_as_the_url_parser_does() {
        assert_eq!(decode("a+b%2fc%2F%C3%A9").as_deref(), Some("a b/c/é"));
        // A `%` without two hex digits stays itself; a byte that is not UTF-8 is refused.
        assert_eq!(decode("50%+%4").as_deref(), Some("50% %4"));
        assert_eq!(decode("%zz%").as_deref(), Some("%zz%"));
        assert_eq!(decode("%C3"), None);
    }

    #[test]
    fn callbacks() {
        assert_eq!(parse_callback("http://x/cb?code=a%2Fb&state=s1", Some("s1")).unwrap().expose(), "a/b");
        assert_eq!(parse_callback("http://x/cb?code=a&state=s2", Some("s1")).unwrap_err().code, ErrorCode::StateMismatch);
        assert_eq!(parse_callback("http://x/cb?code=a", Some("s1")).unwrap_err().code, ErrorCode::StateMismatch);
        assert_eq!(parse_callback("http://x/cb?code=a&state=s1", None).unwrap_err().code, ErrorCode::StateMismatch);
        let e = parse_callback("http://x/cb?error=access_denied&error_description=User+said+no&state=s1", Some("s1")).unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDenied);
        assert!(e.message.contains("User said no"));
        assert_eq!(parse_callback("http://x/cb?state=s1", Some("s1")).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(parse_callback("http://x/cb?code=%zz&state=s1#frag", Some("s1")).unwrap().expose(), "%zz");
        assert_eq!(parse_callback("http://x/cb?code=a&code=b&state=s1", Some("s1")).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(parse_callback("http://x/cb?code=a&state=s1&state=s1", Some("s1")).unwrap_err().code, ErrorCode::InvalidRequest);
    }
}
