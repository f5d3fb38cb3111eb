//! Qpien: tokens minted by the GraphQL mutation `generateOAuthToken`, one-hour lifetime, no
//! refresh token; and how GraphQL answers (errors[].extensions.code) turn into actions.
//!
//! The mutation's exact shape lives in `shape` only, so it can change without touching logic;
//! the emulator implements the same shape. ID and secret travel as variables, never interpolated
//! into the document, so a crafted secret cannot inject GraphQL.

use crate::config::{required, timing};
use crate::error::{AuthError, ErrorCode};
use crate::event::Event;
use crate::flow::{Action, Input, Retrying};
use crate::http::{bad_response, base_url, HttpRequest, HttpResponse};
use crate::json::{self, write_str, Cursor};
use crate::secret::{Redactor, Secret};
use crate::token::Token;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

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

/// Every option `new QpienAuth({...})` reads (`store` only inside the token broker).
pub const OPTIONS: &[&str] = &["clientId", "clientSecret", "endpoint", "broker", "refreshSkewSeconds", "timeoutMs", "onEvent", "store"];

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

/// Largest GraphQL answer read, in bytes (1 MiB): an operation's `data` can be far larger than a
/// token answer, but an unbounded read would let one answer exhaust an isolate's 128 MB (wasm
/// memory never shrinks). A larger answer is `bad_response`; split the query or page through it.
pub const MAX_GRAPHQL_BYTES: usize = 1024 * 1024;

/// How many `errors[].message` values an error keeps, and how many distinct codes are looked at.
const MAX_MESSAGES: usize = 20;
const MAX_CODES: usize = 16;
/// Where one server message is cut (after redaction).
const MAX_MESSAGE_CHARS: usize = 500;

/// What a GraphQL response says, read without building `data` (the host parses that for the
/// caller), so memory does not grow with the answer. `None` from `parse` when the body is not one
/// JSON object, or repeats a key (`JSON.parse` would keep the last, this reader the first).
#[derive(Debug, Default, PartialEq)]
pub struct Envelope {
    /// `data` is present and not `null`.
    pub has_data: bool,
    /// An error names the field it was raised at (`path`): execution had begun (GraphQL spec
    /// §7.1.2), so the operation may have run, in part, even where `data` is `null`.
    at_field: bool,
    /// Distinct error codes, from `errors[].extensions.code` (the usual place) or `errors[].code`
    /// (the first `MAX_CODES`).
    codes: Vec<String>,
    /// The first `MAX_MESSAGES` `errors[].message` values, as sent (redacted when kept).
    messages: Vec<String>,
    pub error_count: usize,
}

impl Envelope {
    pub fn parse(body: &str) -> Option<Envelope> {
        let mut env = Envelope::default();
        json::members(body, |key, c| {
            match key {
                "data" => env.has_data = !c.skip()?,
                "errors" => {
                    c.each(|e| env.error(e))?;
                }
                _ => {
                    c.skip()?;
                }
            }
            Some(())
        })?;
        Some(env)
    }

    /// One entry of `errors`: its `message`, its code and whether it has a `path`; the rest is
    /// only checked.
    fn error(&mut self, e: &mut Cursor<'_, '_>) -> Option<()> {
        self.error_count += 1;
        let (mut message, mut code, mut top_code) = (None, None, None);
        e.members(|k, c| {
            match k {
                "message" => message = c.string()?,
                "code" => top_code = c.string()?,
                "path" => self.at_field |= !c.skip()?,
                "extensions" => {
                    c.members(|k, c| {
                        if k == "code" {
                            code = c.string()?;
                        } else {
                            c.skip()?;
                        }
                        Some(())
                    })?;
                }
                _ => {
                    c.skip()?;
                }
            }
            Some(())
        })?;
        if let Some(code) = code.or(top_code).filter(|c| !self.codes.contains(c)) {
            if self.codes.len() < MAX_CODES {
                self.codes.push(code);
            }
        }
        if let Some(m) = message.filter(|_| self.messages.len() < MAX_MESSAGES) {
            self.messages.push(m);
        }
        Some(())
    }

    fn has(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c == code)
    }

    fn messages(&self, redactor: &Redactor) -> Vec<String> {
        self.messages.iter().map(|m| redactor.clean(m, MAX_MESSAGE_CHARS)).collect()
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

    /// Whose tokens these are (the token broker keeps its stored access token for this secret).
    pub fn client_secret(&self) -> &Secret {
        &self.client_secret
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        vec![&self.client_secret]
    }

    /// The token broker's name for this credential (never a secret), and its storage key.
    pub fn store_key(&self) -> String {
        let mut k = String::from("qauth:qpien:");
        k.push_str(&self.endpoint);
        k.push('|');
        k.push_str(&self.client_id);
        k
    }

    /// The broker object for this credential (see `QflowConfig::broker_name`).
    pub fn broker_name(&self) -> String {
        crate::http::cat("qpien|", &self.store_key())
    }

    /// What the token broker gets to mint with.
    pub fn broker_options(&self) -> Vec<(&'static str, crate::broker::Field)> {
        use crate::broker::Field::{Num, Secret as Hidden, Str};
        vec![
            ("clientId", Str(self.client_id.clone())),
            ("clientSecret", Hidden(self.client_secret.clone())),
            ("endpoint", Str(self.endpoint.clone())),
            ("refreshSkewSeconds", Num(self.refresh_skew_s)),
            ("timeoutMs", Num(crate::broker::broker_timeout_ms(self.timeout_ms))),
        ]
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

    /// Interprets the answer to `mint_request`. Only a 2xx answer can carry a token.
    pub fn parse_mint(&self, resp: &HttpResponse, now_ms: f64, redactor: &Redactor) -> Result<Token, AuthError> {
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
        if env.error_count > 0 {
            let mut e = AuthError::new(ErrorCode::GraphqlError, "generateOAuthToken failed").with_status(resp.status);
            e.messages = env.messages(redactor);
            return Err(e);
        }
        if !(200..300).contains(&resp.status) {
            return Err(bad_response(WHAT, resp.status, "a token answer outside 2xx"));
        }
        let mut token = None;
        json::members(&resp.body, |k, c| {
            if k == "data" {
                c.members(|k, c| {
                    if k == shape::FIELD {
                        token = c.value();
                    } else {
                        c.skip()?;
                    }
                    Some(())
                })?;
            } else {
                c.skip()?;
            }
            Some(())
        });
        let m = token.filter(|t| t.is_obj()).ok_or_else(|| bad_response(WHAT, resp.status, "no generateOAuthToken result"))?;
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
    /// TOKEN_EXPIRED / UNAUTHORIZED (or HTTP 401): mint a new token and retry once; the error if
    /// that was done already.
    Remint(AuthError),
    /// INSUFFICIENT_SCOPES: mint once more (the key's scopes may have changed), then give up
    /// with this error (the server's messages say which scope).
    RemintForScopes(AuthError),
    Fail(AuthError),
}

/// Classifies one answer. Handles both GraphQL-over-HTTP styles: errors with HTTP 200, and
/// errors with a 4xx/5xx status (`application/graphql-response+json`).
pub fn classify(status: u16, retry_after: Option<String>, env: Option<&Envelope>, operation: &str, redactor: &Redactor) -> Verdict {
    let resp = HttpResponse { status, retry_after, body: String::new() };
    let refused = |messages: Vec<String>| {
        let mut e = AuthError::new(ErrorCode::Unauthorized, "Qpien refused a freshly minted token").with_status(status);
        e.messages = messages;
        e
    };
    let Some(env) = env else {
        if status == 401 {
            return Verdict::Remint(refused(Vec::new()));
        }
        return Verdict::Fail(resp.transient_error(WHAT).unwrap_or_else(|| bad_response(WHAT, status, "a body that is not a GraphQL response")));
    };
    if env.has("INVALID_CLIENT") {
        return Verdict::Fail(AuthError::new(ErrorCode::InvalidClient, "Qpien refused the client ID or secret (INVALID_CLIENT)").with_status(status));
    }
    let remint = env.has("TOKEN_EXPIRED") || env.has("UNAUTHORIZED") || status == 401;
    let scopes = env.has("INSUFFICIENT_SCOPES");
    // Errors beside `data`, or raised at a field (`path`, also where `data` is `null`), mean the
    // operation ran, at least in part: sending it again could run a mutation twice, so they go
    // to the caller like any other errors. Only a refusal before execution is resent.
    let ran = env.has_data || env.at_field;
    if remint && !ran {
        return Verdict::Remint(refused(env.messages(redactor)));
    }
    if scopes && !ran {
        let mut m = String::from("the API key lacks a scope needed by operation `");
        m.push_str(operation);
        m.push_str("` (INSUFFICIENT_SCOPES after minting a new token)");
        let mut e = AuthError::new(ErrorCode::InsufficientScopes, m).with_status(status);
        e.messages = env.messages(redactor);
        return Verdict::RemintForScopes(e);
    }
    // An overloaded or failing server (429, 5xx) is that, whatever errors its body lists:
    // `rate_limited` / `server_error`, retryable, with its Retry-After.
    if let Some(mut e) = resp.transient_error(WHAT) {
        e.messages = env.messages(redactor);
        return Verdict::Fail(e);
    }
    if env.error_count > 0 {
        let code = match (remint, scopes) {
            (true, _) => ErrorCode::Unauthorized,
            (_, true) => ErrorCode::InsufficientScopes,
            _ => ErrorCode::GraphqlError,
        };
        let mut m = String::from("GraphQL errors in operation `");
        m.push_str(operation);
        m.push_str(if code == ErrorCode::GraphqlError { "`" } else { "`, raised while it ran: it is not sent again" });
        let mut e = AuthError::new(code, m);
        e.status = Some(status);
        e.messages = env.messages(redactor);
        return Verdict::Fail(e);
    }
    if !(200..300).contains(&status) {
        return Verdict::Fail(bad_response(WHAT, status, "an error status without GraphQL errors"));
    }
    if !env.has_data {
        return Verdict::Fail(bad_response(WHAT, status, "neither data nor errors"));
    }
    Verdict::Ok
}

/// `query Name` / `mutation Name` → `Name`, for error messages when no operationName is given:
/// the document's first definition, after comments and commas (GraphQL's ignored tokens); a
/// shorthand `{ … }` or an unnamed operation is `anonymous`.
pub fn operation_name(query: &str) -> String {
    let (b, mut i) = (query.as_bytes(), 0);
    let mut words: [&[u8]; 2] = [b""; 2];
    for word in &mut words {
        loop {
            match b.get(i) {
                Some(c) if c.is_ascii_whitespace() || *c == b',' => i += 1,
                // The byte order mark, U+FEFF.
                Some(0xEF) if b.get(i + 1..i + 3) == Some(&[0xBB, 0xBF]) => i += 3,
                Some(b'#') => i += b.get(i..).unwrap_or_default().iter().take_while(|c| !matches!(c, b'\n' | b'\r')).count(),
                _ => break,
            }
        }
        let n = b.get(i..).unwrap_or_default().iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        *word = b.get(i..i + n).unwrap_or_default();
        i += n;
    }
    match words {
        [b"query" | b"mutation" | b"subscription", name] if name.first().is_some_and(|c| !c.is_ascii_digit()) => name.iter().map(|&c| char::from(c)).collect(),
        _ => "anonymous".into(),
    }
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
    /// The budget as bits, for a driver that keeps it between answers (bit 0: re-minted, bit 1:
    /// re-minted for scopes).
    pub fn bits(&self) -> u8 {
        u8::from(self.reminted) | u8::from(self.reminted_for_scopes) << 1
    }

    pub fn from_bits(b: u8) -> Self {
        Attempts { reminted: b & 1 != 0, reminted_for_scopes: b & 2 != 0 }
    }

    pub fn next(&mut self, v: Verdict) -> Next {
        match v {
            Verdict::Ok => Next::Done,
            Verdict::Fail(e) => Next::Fail(e),
            Verdict::Remint(_) if !self.reminted => {
                self.reminted = true;
                Next::Remint
            }
            Verdict::RemintForScopes(_) if !self.reminted_for_scopes => {
                self.reminted_for_scopes = true;
                Next::Remint
            }
            Verdict::Remint(e) | Verdict::RemintForScopes(e) => Next::Fail(e),
        }
    }
}

/// One mint as a flow (`flow::Action` out, `flow::Input` in): `generateOAuthToken` with retries
/// inside `timeoutMs` (the ID and secret are not single use, so every transient failure may be
/// resent), then the token is installed and reported.
#[derive(Debug)]
pub struct Mint {
    retrying: Retrying,
    started: f64,
    out: VecDeque<Action>,
}

impl Mint {
    pub fn new(cfg: &QpienConfig, now: f64) -> Self {
        let mut m = Mint { retrying: Retrying::new(now, cfg.timeout_ms, false), started: now, out: VecDeque::new() };
        m.send(cfg, now);
        m
    }

    fn send(&mut self, cfg: &QpienConfig, now: f64) {
        // Not single use: every attempt is made.
        let timeout_ms = self.retrying.attempt(now).unwrap_or(1.0);
        self.out.push_back(Action::Send { request: cfg.mint_request(), timeout_ms });
    }

    /// The next action, after `input` (the answer to a `Send` or a `Wait`).
    pub fn step(&mut self, cfg: &QpienConfig, redactor: &Redactor, input: Option<Input>, now: f64) -> Action {
        match input {
            Some(Input::Answer(r)) => match r.and_then(|resp| cfg.parse_mint(&resp, now, redactor)) {
                Ok(token) => {
                    let expires_in_s = token.lifetime_ms / 1000.0;
                    let assumed = token.expiry_assumed;
                    let acquired = Event::TokenAcquired { grant: "generateOAuthToken", ms: crate::event::elapsed_ms(self.started, now), expires_in_s };
                    self.out.push_back(Action::Install(token));
                    if assumed {
                        self.out.push_back(Action::Emit(Event::ExpiryAssumed { expires_in_s }));
                    }
                    self.out.push_back(Action::Emit(acquired));
                    self.out.push_back(Action::Done(Ok(())));
                }
                Err(e) => match self.retrying.after(e, now) {
                    Ok((event, delay)) => {
                        self.out.push_back(Action::Emit(event));
                        self.out.push_back(Action::Wait(delay));
                    }
                    Err(e) => self.out.push_back(Action::Done(Err(e))),
                },
            },
            Some(Input::Waited) => self.send(cfg, now),
            Some(_) => self.out.push_back(Action::Done(Err(AuthError::new(ErrorCode::ServerError, "an unexpected step answer")))),
            None => {}
        }
        self.out.pop_front().unwrap_or_else(|| Action::Done(Err(AuthError::new(ErrorCode::ServerError, "a mint step was skipped"))))
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
        let r = Redactor::new(&c.secrets());
        let ok = |b: &str| c.parse_mint(&HttpResponse { status: 200, retry_after: None, body: b.into() }, 0.0, &r);
        let t = ok(r#"{"data":{"generateOAuthToken":{"accessToken":"t","expiresIn":3600}}}"#).unwrap();
        assert_eq!(t.lifetime_ms, 3_600_000.0);
        let t = ok(r#"{"data":{"generateOAuthToken":{"accessToken":"t"}}}"#).unwrap();
        assert!(t.expiry_assumed);
        assert_eq!(ok(r#"{"errors":[{"message":"bad","extensions":{"code":"INVALID_CLIENT"}}]}"#).unwrap_err().code, ErrorCode::InvalidClient);
        assert_eq!(ok(r#"{"data":null}"#).unwrap_err().code, ErrorCode::BadResponse);
        assert_eq!(ok("<html>").unwrap_err().code, ErrorCode::BadResponse);
        let e = c.parse_mint(&HttpResponse { status: 503, retry_after: None, body: "<html>".into() }, 0.0, &r).unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
        let good = r#"{"data":{"generateOAuthToken":{"accessToken":"t","expiresIn":3600}}}"#;
        let e = c.parse_mint(&HttpResponse { status: 302, retry_after: None, body: good.into() }, 0.0, &r).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadResponse, "a token only from 2xx");
        assert_eq!(ok(r#"{"data":{"generateOAuthToken":{"accessToken":"t","expiresIn":3600}},"data":null}"#).unwrap_err().code, ErrorCode::BadResponse);
    }

    #[test]
    fn classify_each_code_both_http_styles() {
        for status in [200, 400] {
            let v = |code: &str| {
                classify(
                    status,
                    None,
                    env(&format!(r#"{{"errors":[{{"message":"m","extensions":{{"code":"{code}"}}}}]}}"#)).as_ref(),
                    "Op",
                    &Redactor::default(),
                )
            };
            assert!(matches!(v("TOKEN_EXPIRED"), Verdict::Remint(_)));
            assert!(matches!(v("UNAUTHORIZED"), Verdict::Remint(_)));
            let Verdict::RemintForScopes(e) = v("INSUFFICIENT_SCOPES") else { panic!() };
            assert_eq!(
                (e.code, e.status, e.messages.clone()),
                (ErrorCode::InsufficientScopes, Some(status), vec!["m".to_string()]),
                "which scope: the server's words"
            );
            let Verdict::Fail(e) = v("INVALID_CLIENT") else { panic!() };
            assert_eq!(e.code, ErrorCode::InvalidClient);
            let Verdict::Fail(e) = v("BAD_USER_INPUT") else { panic!() };
            assert_eq!(e.code, ErrorCode::GraphqlError);
            assert_eq!(e.messages, vec!["m".to_string()]);
            // Beside data the operation ran: never resent, whatever the code.
            let with_data = |code: &str| {
                let body = format!(r#"{{"data":{{"createEvent":{{"id":"1"}}}},"errors":[{{"message":"m","extensions":{{"code":"{code}"}}}}]}}"#);
                classify(status, None, env(&body).as_ref(), "CreateEvent", &Redactor::default())
            };
            for (code, want) in
                [("TOKEN_EXPIRED", ErrorCode::Unauthorized), ("UNAUTHORIZED", ErrorCode::Unauthorized), ("INSUFFICIENT_SCOPES", ErrorCode::InsufficientScopes)]
            {
                let Verdict::Fail(e) = with_data(code) else { panic!("{code}") };
                assert_eq!((e.code, e.messages.clone()), (want, vec!["m".to_string()]), "{code}");
                assert!(e.message.contains("`CreateEvent`") && e.message.contains("not sent again"), "{}", e.message);
                // `data: null` with the error at a field (a non-null field's error bubbled up):
                // execution had begun, the mutation may have run. Not resent either.
                let at_field = format!(r#"{{"data":null,"errors":[{{"message":"m","path":["createEvent","owner"],"extensions":{{"code":"{code}"}}}}]}}"#);
                let Verdict::Fail(e) = classify(status, None, env(&at_field).as_ref(), "CreateEvent", &Redactor::default()) else { panic!("{code}") };
                assert_eq!(e.code, want, "{code}");
                // Refused before execution (no field named; `data` absent or null): resent after a mint.
                let before = format!(r#"{{"data":null,"errors":[{{"message":"m","path":null,"code":"{code}"}}]}}"#);
                assert!(
                    matches!(
                        classify(status, None, env(&before).as_ref(), "CreateEvent", &Redactor::default()),
                        Verdict::Remint(_) | Verdict::RemintForScopes(_)
                    ),
                    "{code}: the code at errors[].code"
                );
            }
        }
        // A repeated `data` is refused: JSON.parse would hand the caller the last, we classify the first.
        assert!(env(r#"{"data":{"viewer":{"id":"first"}},"data":null}"#).is_none());
        assert!(matches!(classify(401, None, env("{}").as_ref(), "Op", &Redactor::default()), Verdict::Remint(_)));
        assert!(matches!(classify(401, None, None, "Op", &Redactor::default()), Verdict::Remint(_)));
        assert_eq!(classify(200, None, env(r#"{"data":{"a":1}}"#).as_ref(), "Op", &Redactor::default()), Verdict::Ok);
        let Verdict::Fail(e) = classify(200, None, env(r#"{"data":null}"#).as_ref(), "Op", &Redactor::default()) else { panic!() };
        assert_eq!(e.code, ErrorCode::BadResponse);
        // An overloaded or failing server, whatever errors its body lists: transient, with its
        // Retry-After and the messages (GraphQL servers answer 5xx with an errors body).
        let busy = env(r#"{"errors":[{"message":"Service unavailable"}]}"#);
        for (status, ra, code) in [(503, None, ErrorCode::ServerError), (429, Some("5"), ErrorCode::RateLimited), (500, None, ErrorCode::ServerError)] {
            let Verdict::Fail(e) = classify(status, ra.map(String::from), busy.as_ref(), "Op", &Redactor::default()) else { panic!() };
            assert_eq!((e.code, e.retryable(), e.status, e.retry_after), (code, true, Some(status), ra.map(|_| 5)), "{status}");
            assert_eq!(e.messages, vec!["Service unavailable".to_string()]);
        }
        let Verdict::Fail(e) = classify(502, None, None, "Op", &Redactor::default()) else { panic!() };
        assert_eq!(e.code, ErrorCode::ServerError);
    }

    #[test]
    fn operation_names_for_messages() {
        for (doc, name) in [
            ("query Viewer { viewer { id } }", "Viewer"),
            ("mutation CreateEvent($e: E!) { createEvent(e: $e) { id } }", "CreateEvent"),
            ("# creates one\n  mutation CreateEvent { x }", "CreateEvent"),
            ("\u{feff}, query\tQ1{a}", "Q1"),
            ("mutation{ e }", "anonymous"),
            ("mutation ($a: Int) { e }", "anonymous"),
            ("{ viewer { id } }", "anonymous"),
            ("query 1x { a }", "anonymous"),
            ("# only a comment", "anonymous"),
            ("", "anonymous"),
        ] {
            assert_eq!(operation_name(doc), name, "{doc:?}");
        }
    }

    #[test]
    fn attempts_remint_once_each() {
        let expired =
            || classify(200, None, env(r#"{"errors":[{"message":"expired","extensions":{"code":"TOKEN_EXPIRED"}}]}"#).as_ref(), "Op", &Redactor::default());
        let mut a = Attempts::default();
        assert_eq!(a.next(expired()), Next::Remint);
        assert!(matches!(a.next(expired()), Next::Fail(e) if e.code == ErrorCode::Unauthorized && e.messages == ["expired"]));
        let scopes = || {
            let body = r#"{"errors":[{"message":"operation requires scope `events:write`","extensions":{"code":"INSUFFICIENT_SCOPES"}}]}"#;
            classify(403, None, env(body).as_ref(), "CreateEvent", &Redactor::default())
        };
        let mut a = Attempts::default();
        assert_eq!(a.next(scopes()), Next::Remint);
        let Next::Fail(e) = a.next(scopes()) else { panic!() };
        assert_eq!((e.code, e.status), (ErrorCode::InsufficientScopes, Some(403)));
        assert!(e.message.contains("CreateEvent"));
        assert_eq!(e.messages, ["operation requires scope `events:write`"], "which scope is missing, in the server's words");
    }

    #[test]
    fn graphql_messages_are_redacted() {
        let c = cfg();
        let s = Redactor::new(&c.secrets());
        let Verdict::Fail(e) = classify(200, None, env(r#"{"errors":[{"message":"echo CANARY-qs\"}, injected: true"}]}"#).as_ref(), "Op", &s) else { panic!() };
        assert!(!e.messages.join(" ").contains("CANARY"));
    }

    fn mint(cfg: &QpienConfig, mut server: impl FnMut() -> Result<HttpResponse, AuthError>) -> (Result<(), AuthError>, Vec<String>) {
        let redactor = Redactor::new(&cfg.secrets());
        let mut now = 0.0;
        let mut m = Mint::new(cfg, now);
        let mut input = None;
        let mut log = vec![];
        loop {
            match m.step(cfg, &redactor, input.take(), now) {
                Action::Send { .. } => {
                    log.push("send".to_string());
                    input = Some(Input::Answer(server()));
                }
                Action::Wait(ms) => {
                    log.push(format!("wait {ms}"));
                    now += ms;
                    input = Some(Input::Waited);
                }
                Action::Emit(e) => log.push(format!("event {}", e.parts().0)),
                Action::Install(t) => log.push(format!("install {}", t.access.expose())),
                Action::Done(r) => return (r, log),
                other => panic!("a mint never asks for {other:?}"),
            }
        }
    }

    #[test]
    fn a_mint_flow_retries_transient_failures_and_reports_an_assumed_lifetime() {
        let c = cfg();
        let answer = |body: &str| Ok(HttpResponse { status: 200, retry_after: None, body: body.into() });
        let mut n = 0;
        let (r, log) = mint(&c, || {
            n += 1;
            if n == 1 {
                Ok(HttpResponse { status: 502, retry_after: None, body: String::new() })
            } else {
                answer(r#"{"data":{"generateOAuthToken":{"accessToken":"qt-1"}}}"#)
            }
        });
        assert!(r.is_ok());
        assert_eq!(log, ["send", "event retry", "wait 100", "send", "install qt-1", "event expiry_assumed", "event token_acquired"]);
        let (r, log) = mint(&c, || answer(r#"{"errors":[{"message":"bad","extensions":{"code":"INVALID_CLIENT"}}]}"#));
        assert_eq!(r.unwrap_err().code, ErrorCode::InvalidClient);
        assert_eq!(log, ["send"], "a configuration error is not retried");
    }
}
