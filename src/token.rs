//! Token endpoint answers (RFC 6749 §5.1 / §5.2): strict about what matters, tolerant of the rest.
//!
//! Strict: `access_token` present and fit for a header, `token_type` Bearer (case-insensitive,
//! RFC 6750), a body under `MAX_BODY_BYTES` that is a JSON object with no repeated key. Tolerant:
//! `expires_in` as a number or a numeric string, kept within `MIN_LIFETIME_S` and
//! `MAX_LIFETIME_S`; unknown fields ignored; a missing or unreadable `expires_in` takes the
//! provider's documented lifetime (one hour for both APIs), reported through `expiry_assumed`.

use alloc::string::String;

use crate::error::{AuthError, ErrorCode};
use crate::http::{bad_response, HttpResponse};
use crate::json::{self, Value};
use crate::secret::{Redactor, Secret};

/// Both providers document one-hour tokens.
pub const DOCUMENTED_LIFETIME_S: f64 = 3600.0;

/// The floor on `expires_in`: a server answering less (`0`, `0.001`, `-5`) is taken as 1 s, or
/// every call would become a token request.
pub const MIN_LIFETIME_S: f64 = 1.0;
/// The ceiling on `expires_in` (ten years).
pub const MAX_LIFETIME_S: f64 = 10.0 * 365.0 * 86400.0;

/// Where server text is cut in an error message (after redaction).
pub const MAX_SERVER_TEXT: usize = 300;

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub access: Secret,
    pub refresh: Option<Secret>,
    /// Wall-clock ms (the host's `Date.now()` scale) when the server says the token dies.
    pub expires_at_ms: f64,
    pub lifetime_ms: f64,
    /// True when the answer had no lifetime and `DOCUMENTED_LIFETIME_S` was assumed.
    pub expiry_assumed: bool,
}

impl Token {
    /// Builds a token from a lifetime in seconds as a server sent it.
    pub fn new(access: String, refresh: Option<String>, expires_in: Option<&Value>, now_ms: f64, what: &str, status: u16) -> Result<Token, AuthError> {
        if !header_safe(&access) {
            return Err(bad_response(what, status, "an access token that is empty or has characters an Authorization header cannot carry"));
        }
        // An odd lifetime does not throw the answer away: a refresh answer carries the rotated
        // refresh token, the only one left. A number is kept within 1 s and 10 years (the floor
        // keeps a `0` or `0.001` from making every call a token request); anything else is as
        // if absent (the documented hour, said through `expiry_assumed`).
        let (secs, assumed) = match expires_in.and_then(Value::seconds) {
            Some(s) => (s.clamp(MIN_LIFETIME_S, MAX_LIFETIME_S), false),
            None => (DOCUMENTED_LIFETIME_S, true),
        };
        Ok(Token {
            access: Secret::new(access),
            refresh: refresh.filter(|r| !r.is_empty()).map(Secret::new),
            expires_at_ms: now_ms + secs * 1000.0,
            lifetime_ms: secs * 1000.0,
            expiry_assumed: assumed,
        })
    }
}

/// An access token goes out as `Authorization: Bearer <token>`: one or more visible ASCII
/// characters (RFC 6750 §2.1's b64token is a subset). Anything else is refused when it arrives,
/// not cached to fail every API call with an error that blames the configuration.
pub fn header_safe(access: &str) -> bool {
    !access.is_empty() && access.bytes().all(|b| matches!(b, 0x21..=0x7e))
}

const WHAT: &str = "the token endpoint";

/// Interprets an answer of `POST …/token`. Server text kept in an error goes through `redactor`.
pub fn parse_token_response(resp: &HttpResponse, now_ms: f64, redactor: &Redactor) -> Result<Token, AuthError> {
    if resp.too_big() {
        return Err(bad_response(WHAT, resp.status, "a body larger than 64 KiB"));
    }
    let body = json::parse(&resp.body).filter(Value::is_obj);
    if (200..300).contains(&resp.status) {
        let b = body.ok_or_else(|| bad_response(WHAT, resp.status, "a body that is not a JSON token response"))?;
        let access = b.get_str("access_token").ok_or_else(|| bad_response(WHAT, resp.status, "no access_token"))?;
        match b.get_str("token_type") {
            Some(t) if t.eq_ignore_ascii_case("bearer") => {}
            Some(_) => return Err(bad_response(WHAT, resp.status, "a token_type other than Bearer")),
            None => return Err(bad_response(WHAT, resp.status, "no token_type")),
        }
        let refresh =
            b.get("refresh_token").map(|r| r.str().ok_or_else(|| bad_response(WHAT, resp.status, "a refresh_token that is not a string"))).transpose()?;
        return Token::new(access.into(), refresh.map(String::from), b.get("expires_in"), now_ms, WHAT, resp.status);
    }
    if let Some(e) = resp.transient_error(WHAT) {
        return Err(e);
    }
    match body.as_ref().and_then(|b| Some((b.get_str("error")?, b.get_str("error_description")))) {
        Some((error, description)) => Err(oauth_error(error, description, resp.status, redactor)),
        // RFC 6749 §5.2: 401 is how a server says client authentication failed.
        None if resp.status == 401 => {
            Err(AuthError::new(ErrorCode::InvalidClient, "the token endpoint refused the client credentials (HTTP 401)").with_status(401))
        }
        None => Err(bad_response(WHAT, resp.status, "an error that is not an OAuth error body")),
    }
}

/// An RFC 6749 error (`error` + optional `error_description`) as an `AuthError`.
pub fn oauth_error(error: &str, description: Option<&str>, status: u16, redactor: &Redactor) -> AuthError {
    let code = ErrorCode::from_oauth(error);
    let mut m = String::from("the identity server answered `");
    // The error code is a short server token; keep it only if it looks like one.
    // Redacted too: a server may echo an (alphanumeric) credential in `error` itself.
    if error.len() <= 64 && error.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        m.push_str(&redactor.clean(error, 64));
    } else {
        m.push('?');
    }
    m.push('`');
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        m.push_str(": ");
        m.push_str(&redactor.clean(d, MAX_SERVER_TEXT));
    }
    let mut e = AuthError::new(code, m);
    if status != 0 {
        e.status = Some(status);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, retry_after: None, body: body.into() }
    }

    fn parse(status: u16, body: &str) -> Result<Token, AuthError> {
        let s = Secret::new("CANARY-client-secret");
        parse_token_response(&resp(status, body), 1_000.0, &Redactor::new(&[&s]))
    }

    #[test]
    fn success_with_number_or_string_expiry() {
        let t = parse(200, r#"{"access_token":"a","expires_in":3600,"token_type":"Bearer","refresh_token":"r"}"#).unwrap();
        assert_eq!(t.access.expose(), "a");
        assert_eq!(t.refresh.as_ref().unwrap().expose(), "r");
        assert_eq!(t.expires_at_ms, 1_000.0 + 3_600_000.0);
        assert!(!t.expiry_assumed);
        let t = parse(200, r#"{"access_token":"a","expires_in":"120","token_type":"bearer"}"#).unwrap();
        assert_eq!(t.lifetime_ms, 120_000.0);
        assert!(t.refresh.is_none());
    }

    #[test]
    fn missing_expiry_assumes_documented_hour() {
        let t = parse(200, r#"{"access_token":"a","token_type":"BEARER"}"#).unwrap();
        assert!(t.expiry_assumed);
        assert_eq!(t.lifetime_ms, 3_600_000.0);
    }

    #[test]
    fn an_odd_lifetime_keeps_the_answer_and_its_refresh_token() {
        // The answer of a refresh carries the rotated refresh token: refusing it for its
        // `expires_in` would end the chain. Numbers are kept within 1 s and 10 years; anything
        // else is the documented hour, said through `expiry_assumed`.
        for (e, lifetime_s, assumed) in [
            ("0", 1.0, false),
            ("-5", 1.0, false),
            ("1e-9", 1.0, false),
            ("0.5", 1.0, false),
            ("4e8", MAX_LIFETIME_S, false),
            ("\"soon\"", 3600.0, true),
            ("true", 3600.0, true),
        ] {
            let t = parse(200, &format!(r#"{{"access_token":"a","token_type":"Bearer","expires_in":{e},"refresh_token":"rt2"}}"#)).unwrap();
            assert_eq!((t.lifetime_ms, t.expiry_assumed), (lifetime_s * 1000.0, assumed), "{e}");
            assert_eq!(t.refresh.as_ref().map(Secret::expose), Some("rt2"), "{e}");
        }
    }

    #[test]
    fn malformed_successes_are_bad_response() {
        for body in [
            "<html>oops</html>",
            "{\"access_token\":\"a\",\"token_type\":\"Bearer\"",
            r#"{"token_type":"Bearer","expires_in":60}"#,
            r#"{"access_token":"a","token_type":"mac","expires_in":60}"#,
            r#"{"access_token":"a","expires_in":60}"#,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":60,"access_token":"b"}"#,
            r#"{"access_token":"","token_type":"Bearer","expires_in":5}"#,
            r#"{"access_token":7,"token_type":"Bearer","expires_in":5}"#,
            // Characters an Authorization header cannot carry: refused when they arrive.
            r#"{"access_token":"a\nb","token_type":"Bearer","expires_in":5}"#,
            r#"{"access_token":"a b","token_type":"Bearer","expires_in":5}"#,
            r#"{"access_token":"a\u20acb","token_type":"Bearer","expires_in":5}"#,
            r#"{"access_token":"a\u007f","token_type":"Bearer","expires_in":5}"#,
            "[]",
        ] {
            let e = parse(200, body).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadResponse, "{body}");
            assert_eq!(e.status, Some(200));
        }
        let big = format!(r#"{{"access_token":"{}","token_type":"Bearer"}}"#, "x".repeat(70_000));
        assert_eq!(parse(200, &big).unwrap_err().code, ErrorCode::BadResponse);
    }

    #[test]
    fn oauth_errors_map_and_redact() {
        let e = parse(400, r#"{"error":"invalid_grant","error_description":"refresh token used; secret CANARY-client-secret"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidGrant);
        assert_eq!(e.status, Some(400));
        assert!(e.message.contains("invalid_grant"));
        assert!(!e.message.contains("CANARY"));
        let straddle = format!(r#"{{"error":"invalid_request","error_description":"{}CANARY-client-secret"}}"#, "x".repeat(290));
        let e = parse(400, &straddle).unwrap_err();
        assert!(!e.message.contains("CANARY") && !e.message.contains("CANARY-cli"), "{}", e.message);
        assert_eq!(parse(401, r#"{"error":"invalid_client"}"#).unwrap_err().code, ErrorCode::InvalidClient);
        assert_eq!(parse(401, "").unwrap_err().code, ErrorCode::InvalidClient);
        assert_eq!(parse(400, r#"{"error":"invalid_scope"}"#).unwrap_err().code, ErrorCode::InvalidScope);
        assert_eq!(parse(400, "<html>").unwrap_err().code, ErrorCode::BadResponse);
        assert_eq!(parse(503, "<html>").unwrap_err().code, ErrorCode::ServerError);
        assert_eq!(parse(429, r#"{"error":"slow_down"}"#).unwrap_err().code, ErrorCode::RateLimited);
    }
}
