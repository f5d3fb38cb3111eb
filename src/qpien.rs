//! Qpien: tokens minted by the GraphQL mutation `generateOAuthToken`, one-hour lifetime, no
//! refresh token; and how GraphQL answers (errors[].extensions.code) turn into actions.
//!
//! The mutation's exact shape lives in `shape` only, so it can change without touching logic;
//! the emulator implements the same shape. ID and secret travel as variables, never interpolated
//! into the document, so a crafted secret cannot inject GraphQL.

use crate::config::{required, timing};
use crate::error::{AuthError, ErrorCode};
use crate::http::{bad_response, base_url, HttpRequest, HttpResponse};
use crate::json::{self, write_str, Value};
use crate::secret::{redact, Secret};
use crate::token::Token;

/// The one place that knows the mint mutation's names.
pub mod shape {
    pub const OPERATION: &str = "GenerateOAuthToken";
    pub const MUTATION: &str = "mutation GenerateOAuthToken($clientId: String!, $clientSecret: String!) { generateOAuthToken(clientId: $clientId, clientSecret: $clientSecret) { accessToken expiresIn } }";
    pub const FIELD: &str = "generateOAuthToken";
    pub const VAR_ID: &str = "clientId";
    pub const VAR_SECRET: &str = "clientSecret";

    /// Fields of the mutation's result.
    pub const ACCESS_TOKEN: &str = "accessToken";
    pub const EXPIRES_IN: &str = "expiresIn";
}

#[derive(Default)]
pub struct QpienOptions {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub endpoint: Option<String>,
    pub refresh_skew_seconds: Option<f64>,
    pub timeout_ms: Option<f64>,
}

#[derive(Debug)]
pub struct QpienConfig {
    pub client_id: String,
    client_secret: Secret,
    pub endpoint: String,
    pub refresh_skew_s: f64,
    pub timeout_ms: f64,
}

/// One entry of a GraphQL `errors` list: what we use of it.
#[derive(Debug, Default, PartialEq)]
pub struct GqlError {
    pub message: Option<String>,
    /// `extensions.code`
    pub code: Option<String>,
}

/// A GraphQL response: `data` (non-null) and `errors`, as read from the body.
#[derive(Debug, Default)]
pub struct Envelope {
    pub data: Option<Value>,
    pub errors: Vec<GqlError>,
}

impl Envelope {
    /// The envelope of a response body; `None` when the body is not a JSON object.
    pub fn parse(body: &str) -> Option<Envelope> {
        let mut v = json::parse(body).filter(Value::is_obj)?;
        let errors = v
            .get("errors")
            .and_then(Value::arr)
            .unwrap_or_default()
            .iter()
            .map(|e| GqlError { message: e.get_str("message").map(String::from), code: e.get("extensions").and_then(|x| x.get_str("code")).map(String::from) })
            .collect();
        let data = match &mut v {
            Value::Obj(m) => m.iter().position(|(k, _)| k == "data").map(|i| m.swap_remove(i).1).filter(|d| *d != Value::Null),
            _ => None,
        };
        Some(Envelope { data, errors })
    }

    fn has(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code.as_deref() == Some(code))
    }

    fn messages(&self, secrets: &[&Secret]) -> Vec<String> {
        self.errors.iter().filter_map(|e| e.message.as_deref()).map(|m| redact(&m.chars().take(500).collect::<String>(), secrets)).take(20).collect()
    }
}

const WHAT: &str = "the Qpien GraphQL endpoint";

impl QpienConfig {
    pub fn new(o: QpienOptions) -> Result<Self, AuthError> {
        let client_id = required("clientId", o.client_id)?;
        let client_secret = Secret::new(required("clientSecret", o.client_secret)?);
        let endpoint = base_url("endpoint", &required("endpoint", o.endpoint)?)?;
        let (refresh_skew_s, timeout_ms) = timing(o.refresh_skew_seconds, o.timeout_ms)?;
        Ok(QpienConfig { client_id, client_secret, endpoint, refresh_skew_s, timeout_ms })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        vec![&self.client_secret]
    }

    pub fn mint_request(&self) -> HttpRequest {
        let mut b = String::from("{\"operationName\":");
        write_str(&mut b, shape::OPERATION);
        b.push_str(",\"query\":");
        write_str(&mut b, shape::MUTATION);
        b.push_str(",\"variables\":{");
        write_str(&mut b, shape::VAR_ID);
        b.push(':');
        write_str(&mut b, &self.client_id);
        b.push(',');
        write_str(&mut b, shape::VAR_SECRET);
        b.push(':');
        write_str(&mut b, self.client_secret.expose());
        b.push_str("}}");
        HttpRequest { method: "POST", url: self.endpoint.clone(), headers: graphql_headers(), body: b }
    }

    /// Interprets the answer to `mint_request`.
    pub fn parse_mint(&self, resp: &HttpResponse, now_ms: f64) -> Result<Token, AuthError> {
        if resp.too_big() {
            return Err(bad_response(WHAT, resp.status, "a body larger than 64 KiB"));
        }
        let Some(env) = Envelope::parse(&resp.body) else {
            return Err(resp.transient_error(WHAT).unwrap_or_else(|| bad_response(WHAT, resp.status, "a body that is not a GraphQL response")));
        };
        if env.has("INVALID_CLIENT") || env.has("UNAUTHORIZED") {
            return Err(AuthError::new(ErrorCode::InvalidClient, "Qpien refused the client ID or secret (INVALID_CLIENT)").with_status(resp.status));
        }
        if let Some(e) = resp.transient_error(WHAT) {
            return Err(e);
        }
        if !env.errors.is_empty() {
            let mut e = AuthError::new(ErrorCode::GraphqlError, "generateOAuthToken failed").with_status(resp.status);
            e.messages = env.messages(&self.secrets());
            return Err(e);
        }
        let m = env.data.as_ref().and_then(|d| d.get(shape::FIELD)).ok_or_else(|| bad_response(WHAT, resp.status, "no generateOAuthToken result"))?;
        let access = m.get_str(shape::ACCESS_TOKEN).ok_or_else(|| bad_response(WHAT, resp.status, "no accessToken"))?;
        Token::new(access.into(), None, m.get(shape::EXPIRES_IN), now_ms, WHAT, resp.status)
    }
}

pub fn graphql_headers() -> Vec<(&'static str, String)> {
    vec![("Content-Type", "application/json".into()), ("Accept", "application/graphql-response+json, application/json".into())]
}

/// What a GraphQL answer to a caller's operation means.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Ok,
    /// TOKEN_EXPIRED / UNAUTHORIZED (or HTTP 401): mint a new token and retry once.
    Remint,
    /// INSUFFICIENT_SCOPES: mint once more (the key's scopes may have changed), then give up.
    RemintForScopes,
    Fail(AuthError),
}

/// Classifies one answer. Handles both GraphQL-over-HTTP styles: errors with HTTP 200, and
/// errors with a 4xx/5xx status (`application/graphql-response+json`).
pub fn classify(status: u16, env: Option<&Envelope>, operation: &str, secrets: &[&Secret]) -> Verdict {
    let Some(env) = env else {
        if status == 401 {
            return Verdict::Remint;
        }
        let resp = HttpResponse { status, retry_after: None, body: String::new() };
        return Verdict::Fail(resp.transient_error(WHAT).unwrap_or_else(|| bad_response(WHAT, status, "a body that is not a GraphQL response")));
    };
    if env.has("INVALID_CLIENT") {
        return Verdict::Fail(AuthError::new(ErrorCode::InvalidClient, "Qpien refused the client ID or secret (INVALID_CLIENT)").with_status(status));
    }
    if env.has("TOKEN_EXPIRED") || env.has("UNAUTHORIZED") || status == 401 {
        return Verdict::Remint;
    }
    if env.has("INSUFFICIENT_SCOPES") {
        return Verdict::RemintForScopes;
    }
    if !env.errors.is_empty() {
        let mut m = String::from("GraphQL errors in operation `");
        m.push_str(operation);
        m.push('`');
        let mut e = AuthError::new(ErrorCode::GraphqlError, m);
        e.status = Some(status);
        e.messages = env.messages(secrets);
        return Verdict::Fail(e);
    }
    if !(200..300).contains(&status) {
        let resp = HttpResponse { status, retry_after: None, body: String::new() };
        return Verdict::Fail(resp.transient_error(WHAT).unwrap_or_else(|| bad_response(WHAT, status, "an error status without GraphQL errors")));
    }
    if env.data.is_none() {
        return Verdict::Fail(bad_response(WHAT, status, "neither data nor errors"));
    }
    Verdict::Ok
}

/// The retry budget of one `graphql()` call: one re-mint for an expired/unknown token, one for
/// scopes. Turns a verdict into what the bindings do next.
#[derive(Debug, Default)]
pub struct Attempts {
    reminted: bool,
    reminted_for_scopes: bool,
}

#[derive(Debug, PartialEq)]
pub enum Next {
    Done,
    Remint,
    Fail(AuthError),
}

impl Attempts {
    pub fn next(&mut self, v: Verdict, operation: &str) -> Next {
        match v {
            Verdict::Ok => Next::Done,
            Verdict::Fail(e) => Next::Fail(e),
            Verdict::Remint if !self.reminted => {
                self.reminted = true;
                Next::Remint
            }
            Verdict::Remint => Next::Fail(AuthError::new(ErrorCode::Unauthorized, "Qpien refused a freshly minted token")),
            Verdict::RemintForScopes if !self.reminted_for_scopes => {
                self.reminted_for_scopes = true;
                Next::Remint
            }
            Verdict::RemintForScopes => {
                let mut m = String::from("the API key lacks a scope needed by operation `");
                m.push_str(operation);
                m.push_str("` (INSUFFICIENT_SCOPES after minting a new token)");
                Next::Fail(AuthError::new(ErrorCode::InsufficientScopes, m))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> QpienConfig {
        QpienConfig::new(QpienOptions {
            client_id: Some("id-1".into()),
            client_secret: Some("CANARY-qs\"}, injected: true".into()),
            endpoint: Some("http://127.0.0.1:9/graphql".into()),
            ..Default::default()
        })
        .unwrap()
    }

    fn env(body: &str) -> Option<Envelope> {
        Envelope::parse(body)
    }

    #[test]
    fn mint_request_uses_variables() {
        let r = cfg().mint_request();
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["variables"]["clientSecret"], "CANARY-qs\"}, injected: true");
        assert_eq!(v["variables"]["clientId"], "id-1");
        assert_eq!(v["query"], shape::MUTATION);
        assert!(!shape::MUTATION.contains("CANARY"));
        assert!(!format!("{:?} {:?}", r, cfg()).contains("CANARY"));
    }

    #[test]
    fn parse_mint_answers() {
        let c = cfg();
        let ok = |b: &str| c.parse_mint(&HttpResponse { status: 200, retry_after: None, body: b.into() }, 0.0);
        let t = ok(r#"{"data":{"generateOAuthToken":{"accessToken":"t","expiresIn":3600}}}"#).unwrap();
        assert_eq!(t.lifetime_ms, 3_600_000.0);
        let t = ok(r#"{"data":{"generateOAuthToken":{"accessToken":"t"}}}"#).unwrap();
        assert!(t.expiry_assumed);
        assert_eq!(ok(r#"{"errors":[{"message":"bad","extensions":{"code":"INVALID_CLIENT"}}]}"#).unwrap_err().code, ErrorCode::InvalidClient);
        assert_eq!(ok(r#"{"data":null}"#).unwrap_err().code, ErrorCode::BadResponse);
        assert_eq!(ok("<html>").unwrap_err().code, ErrorCode::BadResponse);
        let e = c.parse_mint(&HttpResponse { status: 503, retry_after: None, body: "<html>".into() }, 0.0).unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
    }

    #[test]
    fn classify_each_code_both_http_styles() {
        for status in [200, 400] {
            let v = |code: &str| classify(status, env(&format!(r#"{{"errors":[{{"message":"m","extensions":{{"code":"{code}"}}}}]}}"#)).as_ref(), "Op", &[]);
            assert_eq!(v("TOKEN_EXPIRED"), Verdict::Remint);
            assert_eq!(v("UNAUTHORIZED"), Verdict::Remint);
            assert_eq!(v("INSUFFICIENT_SCOPES"), Verdict::RemintForScopes);
            let Verdict::Fail(e) = v("INVALID_CLIENT") else { panic!() };
            assert_eq!(e.code, ErrorCode::InvalidClient);
            let Verdict::Fail(e) = v("BAD_USER_INPUT") else { panic!() };
            assert_eq!(e.code, ErrorCode::GraphqlError);
            assert_eq!(e.messages, vec!["m".to_string()]);
        }
        assert_eq!(classify(401, env("{}").as_ref(), "Op", &[]), Verdict::Remint);
        assert_eq!(classify(401, None, "Op", &[]), Verdict::Remint);
        assert_eq!(classify(200, env(r#"{"data":{"a":1}}"#).as_ref(), "Op", &[]), Verdict::Ok);
        let Verdict::Fail(e) = classify(200, env(r#"{"data":null}"#).as_ref(), "Op", &[]) else { panic!() };
        assert_eq!(e.code, ErrorCode::BadResponse);
        let Verdict::Fail(e) = classify(502, None, "Op", &[]) else { panic!() };
        assert_eq!(e.code, ErrorCode::ServerError);
    }

    #[test]
    fn attempts_remint_once_each() {
        let mut a = Attempts::default();
        assert_eq!(a.next(Verdict::Remint, "Op"), Next::Remint);
        assert!(matches!(a.next(Verdict::Remint, "Op"), Next::Fail(e) if e.code == ErrorCode::Unauthorized));
        let mut a = Attempts::default();
        assert_eq!(a.next(Verdict::RemintForScopes, "CreateEvent"), Next::Remint);
        let Next::Fail(e) = a.next(Verdict::RemintForScopes, "CreateEvent") else { panic!() };
        assert_eq!(e.code, ErrorCode::InsufficientScopes);
        assert!(e.message.contains("CreateEvent"));
    }

    #[test]
    fn graphql_messages_are_redacted() {
        let c = cfg();
        let s = c.secrets();
        let Verdict::Fail(e) = classify(200, env(r#"{"errors":[{"message":"echo CANARY-qs\"}, injected: true"}]}"#).as_ref(), "Op", &s) else { panic!() };
        assert!(!e.messages.join(" ").contains("CANARY"));
    }
}
