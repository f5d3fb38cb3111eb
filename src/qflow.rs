//! Qflow: identity-server grants, rotating refresh tokens, and the two API headers.
//!
//! Facts from Qflow's documentation: token endpoint `{identity}/core/connect/token` (form body),
//! grants `password`, `refresh_token` (single use: every refresh returns a new one that must be
//! kept before anything else) and `authorization_code`; API calls carry `Authorization: Bearer`
//! and `Ocp-Apim-Subscription-Key`; a 403 `comms_api_not_enabled` / `trust_required` is permanent.

use crate::config::{optional, required, timing};
use crate::error::{AuthError, ErrorCode};
use crate::http::{base_url, encode_component, form_encode, origin, HttpRequest};
use crate::secret::Secret;
use crate::token::Token;

pub const DEFAULT_IDENTITY_URL: &str = "https://identity.qflowhub.io";
pub const DEFAULT_API_URL: &str = "https://api.qflowhub.io";
pub const DEFAULT_SCOPE: &str = "qflowapi openid offline_access";
pub const TOKEN_PATH: &str = "/core/connect/token";
pub const AUTHORIZE_PATH: &str = "/core/connect/authorize";
pub const COMMS_PROBE_PATH: &str = "/comms/v1/api/comms/templates?eventId=";
pub const SUBSCRIPTION_HEADER: &str = "Ocp-Apim-Subscription-Key";

/// Options as the caller gave them; the bindings fill this from the JS object.
#[derive(Default)]
pub struct QflowOptions {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub subscription_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub identity_url: Option<String>,
    pub api_url: Option<String>,
    pub store_key: Option<String>,
    pub refresh_skew_seconds: Option<f64>,
    pub timeout_ms: Option<f64>,
}

#[derive(Debug)]
pub struct QflowConfig {
    pub client_id: String,
    client_secret: Secret,
    subscription_key: Secret,
    pub username: Option<String>,
    password: Option<Secret>,
    pub initial_refresh: Option<Secret>,
    pub scope: String,
    pub identity_url: String,
    pub api_url: String,
    pub store_key: String,
    pub refresh_skew_s: f64,
    pub timeout_ms: f64,
}

/// A grant to ask the token endpoint for.
#[derive(Clone, Debug, PartialEq)]
pub enum Grant {
    Password,
    Refresh(Secret),
    Code { code: Secret, verifier: Secret, redirect_uri: String },
}

impl Grant {
    /// The `grant_type` value, also used in events.
    pub fn name(&self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::Refresh(_) => "refresh_token",
            Grant::Code { .. } => "authorization_code",
        }
    }
}

/// `<enterprise_pin>/<email>` or a bare email. Checked loosely: enough to catch a swapped field
/// (a password in `username`) without rejecting real addresses.
pub fn valid_username(u: &str) -> bool {
    let email = match u.split_once('/') {
        Some((pin, email)) => {
            if pin.is_empty() || pin.len() > 16 || !pin.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return false;
            }
            email
        }
        None => u,
    };
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.bytes().any(|b| b <= b' ' || b == b'/')
                && !domain.contains('@')
        }
        None => false,
    }
}

impl QflowConfig {
    pub fn new(o: QflowOptions) -> Result<Self, AuthError> {
        let client_id = required("clientId", o.client_id)?;
        let client_secret = Secret::new(required("clientSecret", o.client_secret)?);
        let subscription_key = Secret::new(required("subscriptionKey", o.subscription_key)?);
        let username = optional("username", o.username)?;
        let password = optional("password", o.password)?.map(Secret::new);
        if let Some(u) = &username {
            if !valid_username(u) {
                return Err(AuthError::config("username", "must be an email or `<enterprise pin>/<email>`"));
            }
        }
        match (&username, &password) {
            (Some(_), None) => return Err(AuthError::config("password", "is required with `username`")),
            (None, Some(_)) => return Err(AuthError::config("username", "is required with `password`")),
            _ => {}
        }
        let initial_refresh = optional("refreshToken", o.refresh_token)?.map(Secret::new);
        let scope = optional("scope", o.scope)?.unwrap_or_else(|| DEFAULT_SCOPE.to_string());
        let identity_url = base_url("identityUrl", o.identity_url.as_deref().unwrap_or(DEFAULT_IDENTITY_URL))?;
        let api_url = base_url("apiUrl", o.api_url.as_deref().unwrap_or(DEFAULT_API_URL))?;
        let (refresh_skew_s, timeout_ms) = timing(o.refresh_skew_seconds, o.timeout_ms)?;
        let store_key = match optional("storeKey", o.store_key)? {
            Some(k) => k,
            None => {
                let mut k = String::from("qauth:qflow:refresh:");
                k.push_str(&identity_url);
                k.push('|');
                k.push_str(&client_id);
                k.push('|');
                k.push_str(username.as_deref().unwrap_or("authorization_code"));
                k
            }
        };
        let cfg = QflowConfig {
            client_id,
            client_secret,
            subscription_key,
            username,
            password,
            initial_refresh,
            scope,
            identity_url,
            api_url,
            store_key,
            refresh_skew_s,
            timeout_ms,
        };
        // A key that would carry a secret into a KV dashboard is refused.
        if cfg.secrets().iter().any(|s| cfg.store_key.contains(s.expose())) {
            return Err(AuthError::config("storeKey", "must not contain a secret"));
        }
        Ok(cfg)
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Every configured secret, for redaction of server text.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut v = vec![&self.client_secret, &self.subscription_key];
        v.extend(self.password.as_ref());
        v.extend(self.initial_refresh.as_ref());
        v
    }

    pub fn token_request(&self, grant: &Grant) -> HttpRequest {
        let mut f: Vec<(&str, &str)> = vec![("grant_type", grant.name())];
        match grant {
            Grant::Password => {
                f.push(("username", self.username.as_deref().unwrap_or("")));
                f.push(("password", self.password.as_ref().map_or("", |p| p.expose())));
                f.push(("scope", &self.scope));
            }
            Grant::Refresh(rt) => f.push(("refresh_token", rt.expose())),
            Grant::Code { code, verifier, redirect_uri } => {
                f.push(("code", code.expose()));
                f.push(("redirect_uri", redirect_uri));
                f.push(("code_verifier", verifier.expose()));
            }
        }
        // client_secret_post: the form fields Qflow documents.
        f.push(("client_id", &self.client_id));
        f.push(("client_secret", self.client_secret.expose()));
        HttpRequest {
            method: "POST",
            url: crate::http::cat(&self.identity_url, TOKEN_PATH),
            headers: vec![("Content-Type", "application/x-www-form-urlencoded".into()), ("Accept", "application/json".into())],
            body: form_encode(&f),
        }
    }

    /// Both API headers for an access token.
    pub fn api_headers(&self, access: &Secret) -> [(&'static str, String); 2] {
        [("Authorization", crate::http::cat("Bearer ", access.expose())), (SUBSCRIPTION_HEADER, self.subscription_key.expose().to_string())]
    }

    /// Resolves what `fetch()` was given against `apiUrl`. An absolute URL on another origin is
    /// refused: the bearer token and subscription key only ever go to the API gateway.
    pub fn resolve(&self, input: &str) -> Result<String, AuthError> {
        if origin(input).is_some() {
            if origin(input) == origin(&self.api_url) {
                return Ok(input.to_string());
            }
            return Err(AuthError::new(ErrorCode::InvalidRequest, "refusing to send Qflow credentials to a URL outside `apiUrl`'s origin"));
        }
        if input.contains("://") || input.starts_with("//") {
            return Err(AuthError::new(ErrorCode::InvalidRequest, "only http(s) URLs on `apiUrl`'s origin can be fetched"));
        }
        let mut u = self.api_url.clone();
        if !input.starts_with('/') {
            u.push('/');
        }
        u.push_str(input);
        Ok(u)
    }

    pub fn comms_probe_path(event_id: &str) -> String {
        let mut p = String::from(COMMS_PROBE_PATH);
        encode_component(&mut p, event_id, false);
        p
    }
}

/// A 403 that is a documented, permanent gate rather than a plain failure.
pub fn api_gate(status: u16, body: &str) -> Option<AuthError> {
    if status != 403 {
        return None;
    }
    let (code, msg) = if body.contains("comms_api_not_enabled") {
        (ErrorCode::CommsApiNotEnabled, "the Qflow API refused: Comms API access is not enabled for this account (HTTP 403)")
    } else if body.contains("trust_required") {
        (ErrorCode::TrustRequired, "the Qflow API refused to send: the account has not finished verification (HTTP 403)")
    } else {
        return None;
    };
    Some(AuthError::new(code, msg).with_status(403))
}

/// The refresh-token side of a Qflow client: which grant to ask for next, what to do when one
/// fails, and whether a new refresh token still has to be saved before its access token is used.
#[derive(Debug, Default)]
pub struct Session {
    refresh: Option<Secret>,
    /// The current refresh token is newer than what the store holds.
    pub unsaved: bool,
    /// The store has been read once (a saved token is preferred over the options).
    pub store_loaded: bool,
}

/// What to do after a grant failed.
#[derive(Debug, PartialEq)]
pub enum After {
    /// Try this grant instead (the `fallback_to_password` event).
    Fallback(Grant),
    Fail(AuthError),
}

impl Session {
    pub fn new(cfg: &QflowConfig) -> Self {
        Session { refresh: cfg.initial_refresh.clone(), unsaved: false, store_loaded: false }
    }

    /// A refresh token read from the store replaces the one from the options (it is newer).
    pub fn loaded(&mut self, saved: Option<String>) {
        self.store_loaded = true;
        if let Some(s) = saved.filter(|s| !s.is_empty()) {
            self.refresh = Some(Secret::new(s));
        }
    }

    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh.as_ref()
    }

    /// Refresh when there is a refresh token (cheaper, keeps the password out of the wire),
    /// else the password grant.
    pub fn next_grant(&self, cfg: &QflowConfig) -> Result<Grant, AuthError> {
        match (&self.refresh, cfg.has_password()) {
            (Some(rt), _) => Ok(Grant::Refresh(rt.clone())),
            (None, true) => Ok(Grant::Password),
            (None, false) => Err(AuthError::new(
                ErrorCode::InvalidGrant,
                "no refresh token is stored and no password is configured: sign in with `exchangeCode()` or configure username + password",
            )),
        }
    }

    /// After a failed grant (retries already spent). A refresh that was refused, or whose answer
    /// was lost (the server may have consumed the single-use token), falls back to the password.
    pub fn after_failure(&mut self, cfg: &QflowConfig, failed: &Grant, err: AuthError) -> After {
        let Grant::Refresh(_) = failed else { return After::Fail(err) };
        let lost = matches!(err.code, ErrorCode::Network | ErrorCode::Timeout | ErrorCode::ServerError | ErrorCode::BadResponse);
        if err.code == ErrorCode::InvalidGrant {
            self.refresh = None;
            self.unsaved = false;
        } else if !lost {
            return After::Fail(err);
        }
        if cfg.has_password() {
            self.refresh = None;
            return After::Fallback(Grant::Password);
        }
        if err.code == ErrorCode::InvalidGrant {
            let mut e = AuthError::new(ErrorCode::InvalidGrant, "the refresh token was refused and no password is configured: sign in again");
            e.status = err.status;
            return After::Fail(e);
        }
        After::Fail(err)
    }

    /// Records a new token. Returns true when its refresh token must be saved before use.
    pub fn on_token(&mut self, token: &Token, has_store: bool) -> bool {
        // RFC 6749 §6: without a new refresh token, the old one stays valid.
        if let Some(rt) = &token.refresh {
            if self.refresh.as_ref() != Some(rt) {
                self.refresh = Some(rt.clone());
                self.unsaved = has_store;
            }
        }
        self.unsaved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> QflowOptions {
        QflowOptions {
            client_id: Some("client".into()),
            client_secret: Some("CANARY-cs-1".into()),
            subscription_key: Some("CANARY-sk-1".into()),
            username: Some("4471/joe.bloggs@example.com".into()),
            password: Some("CANARY-pw-1".into()),
            identity_url: Some("http://127.0.0.1:9/".into()),
            api_url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        }
    }

    #[test]
    fn usernames() {
        for ok in ["4471/joe.bloggs@example.com", "joe@example.com", "a.b+c@x.co.uk"] {
            assert!(valid_username(ok), "{ok}");
        }
        for bad in ["joe", "4471/joe", "/joe@example.com", "joe@localhost", "jo e@example.com", "12 3/a@b.c", "a@b.c@d.e"] {
            assert!(!valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn config_errors_name_the_option() {
        let mut o = opts();
        o.client_id = None;
        assert!(QflowConfig::new(o).unwrap_err().message.contains("clientId"));
        let mut o = opts();
        o.identity_url = Some("not a url".into());
        let e = QflowConfig::new(o).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.message.contains("identityUrl"));
        let mut o = opts();
        o.password = None;
        assert!(QflowConfig::new(o).unwrap_err().message.contains("password"));
        let mut o = opts();
        o.username = Some("CANARY-pw-1".into());
        let e = QflowConfig::new(o).unwrap_err();
        assert!(e.message.contains("username") && !e.message.contains("CANARY"));
        let mut o = opts();
        o.store_key = Some("k-CANARY-cs-1".into());
        assert!(QflowConfig::new(o).unwrap_err().message.contains("storeKey"));
    }

    #[test]
    fn defaults() {
        let mut o = opts();
        o.identity_url = None;
        o.api_url = None;
        let c = QflowConfig::new(o).unwrap();
        assert_eq!(c.identity_url, DEFAULT_IDENTITY_URL);
        assert_eq!(c.api_url, DEFAULT_API_URL);
        assert_eq!(c.scope, DEFAULT_SCOPE);
        assert_eq!(c.store_key, "qauth:qflow:refresh:https://identity.qflowhub.io|client|4471/joe.bloggs@example.com");
        assert!(!format!("{c:?}").contains("CANARY"));
    }

    #[test]
    fn grant_requests() {
        let c = QflowConfig::new(opts()).unwrap();
        let r = c.token_request(&Grant::Password);
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "http://127.0.0.1:9/core/connect/token");
        assert_eq!(
            r.body,
            "grant_type=password&username=4471%2Fjoe.bloggs%40example.com&password=CANARY-pw-1&scope=qflowapi+openid+offline_access&client_id=client&client_secret=CANARY-cs-1"
        );
        let r = c.token_request(&Grant::Refresh(Secret::new("rt/1")));
        assert_eq!(r.body, "grant_type=refresh_token&refresh_token=rt%2F1&client_id=client&client_secret=CANARY-cs-1");
        let r = c.token_request(&Grant::Code { code: Secret::new("c"), verifier: Secret::new("v"), redirect_uri: "http://127.0.0.1/cb".into() });
        assert!(r.body.starts_with("grant_type=authorization_code&code=c&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_verifier=v&"));
    }

    #[test]
    fn resolve_stays_on_api_origin() {
        let c = QflowConfig::new(opts()).unwrap();
        assert_eq!(c.resolve("/checkin/v1/api/event").unwrap(), "http://127.0.0.1:9/checkin/v1/api/event");
        assert_eq!(c.resolve("checkin/x").unwrap(), "http://127.0.0.1:9/checkin/x");
        assert_eq!(c.resolve("http://127.0.0.1:9/a").unwrap(), "http://127.0.0.1:9/a");
        assert_eq!(c.resolve("https://evil.example/a").unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(c.resolve("//evil.example/a").unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(QflowConfig::comms_probe_path("ev 1/2"), "/comms/v1/api/comms/templates?eventId=ev%201%2F2");
    }

    #[test]
    fn gates() {
        assert_eq!(api_gate(403, r#"{"error":"comms_api_not_enabled"}"#).unwrap().code, ErrorCode::CommsApiNotEnabled);
        assert_eq!(api_gate(403, r#"{"error":"trust_required"}"#).unwrap().code, ErrorCode::TrustRequired);
        assert!(api_gate(403, "forbidden").is_none());
        assert!(api_gate(200, "comms_api_not_enabled").is_none());
    }

    fn tok(refresh: Option<&str>) -> Token {
        Token::new("a".into(), refresh.map(String::from), Some(&crate::json::Value::Num(60.0)), 0.0, "t", 200).unwrap()
    }

    #[test]
    fn session_prefers_refresh_then_password_and_falls_back() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c);
        assert_eq!(s.next_grant(&c).unwrap(), Grant::Password);
        assert!(s.on_token(&tok(Some("rt1")), true), "a rotated token must be saved");
        s.unsaved = false;
        assert_eq!(s.next_grant(&c).unwrap(), Grant::Refresh(Secret::new("rt1")));
        s.loaded(Some("rt-saved".into()));
        assert_eq!(s.next_grant(&c).unwrap(), Grant::Refresh(Secret::new("rt-saved")));
        let refused = AuthError::new(ErrorCode::InvalidGrant, "x").with_status(400);
        assert_eq!(s.after_failure(&c, &Grant::Refresh(Secret::new("rt-saved")), refused), After::Fallback(Grant::Password));
        assert_eq!(s.next_grant(&c).unwrap(), Grant::Password);
    }

    #[test]
    fn lost_refresh_answer_falls_back_and_other_errors_do_not() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c);
        s.on_token(&tok(Some("rt1")), false);
        let g = s.next_grant(&c).unwrap();
        assert_eq!(s.after_failure(&c, &g, AuthError::new(ErrorCode::Network, "x")), After::Fallback(Grant::Password));
        s.on_token(&tok(Some("rt2")), false);
        let g = s.next_grant(&c).unwrap();
        let e = AuthError::new(ErrorCode::InvalidClient, "x");
        assert_eq!(s.after_failure(&c, &g, e.clone()), After::Fail(e));
    }

    #[test]
    fn without_password_a_dead_refresh_token_says_sign_in() {
        let mut o = opts();
        o.username = None;
        o.password = None;
        o.refresh_token = Some("rt0".into());
        let c = QflowConfig::new(o).unwrap();
        let mut s = Session::new(&c);
        let g = s.next_grant(&c).unwrap();
        let After::Fail(e) = s.after_failure(&c, &g, AuthError::new(ErrorCode::InvalidGrant, "x")) else { panic!() };
        assert_eq!(e.code, ErrorCode::InvalidGrant);
        assert!(e.message.contains("sign in"));
        assert_eq!(s.next_grant(&c).unwrap_err().code, ErrorCode::InvalidGrant);
    }

    #[test]
    fn refresh_without_rotation_keeps_the_old_token() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c);
        s.on_token(&tok(Some("rt1")), true);
        s.unsaved = false;
        assert!(!s.on_token(&tok(None), true));
        assert_eq!(s.refresh_token().unwrap().expose(), "rt1");
    }
}
