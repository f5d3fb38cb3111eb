//! Qflow: identity-server grants, rotating refresh tokens, and the two API headers.
//!
//! Facts from Qflow's documentation: token endpoint `{identity}/core/connect/token` (form body),
//! grants `password`, `refresh_token` (single use: every refresh returns a new one that must be
//! kept before anything else) and `authorization_code`; API calls carry `Authorization: Bearer`
//! and `Ocp-Apim-Subscription-Key`; a 403 `comms_api_not_enabled` / `trust_required` is permanent.

use crate::config::{optional, required, timing};
use crate::error::{AuthError, ErrorCode};
use crate::http::{bad_response, base_url, encode_component, form_encode, origin, HttpRequest, HttpResponse};
use crate::secret::{Redactor, Secret};
use crate::token::Token;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

pub use crate::endpoints::{AUTHORIZE_PATH, DEFAULT_IDENTITY_URL, DEFAULT_SCOPE};
pub const DEFAULT_API_URL: &str = "https://api.qflowhub.io";
pub const TOKEN_PATH: &str = "/core/connect/token";
pub const COMMS_PROBE_PATH: &str = "/comms/v1/api/comms/templates?eventId=";
pub const SUBSCRIPTION_HEADER: &str = "Ocp-Apim-Subscription-Key";

/// Every option `new QflowAuth({...})` reads; anything else is an error naming the closest.
pub const OPTIONS: &[&str] = &[
    "clientId",
    "clientSecret",
    "subscriptionKey",
    "username",
    "password",
    "refreshToken",
    "scope",
    "identityUrl",
    "apiUrl",
    "store",
    "storeKey",
    "broker",
    "refreshSkewSeconds",
    "timeoutMs",
    "onEvent",
];

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
    /// A `store` or a `broker` keeps the refresh token: a saved one can stand in for the password.
    pub persisted: bool,
    /// The client runs inside the token broker: it only gets tokens (no API calls, so no
    /// subscription key is given to it).
    pub broker_side: bool,
}

#[derive(Debug)]
pub struct QflowConfig {
    pub client_id: String,
    client_secret: Secret,
    /// `None` only inside the broker, which makes no API call.
    subscription_key: Option<Secret>,
    pub username: Option<String>,
    password: Option<Secret>,
    pub initial_refresh: Option<Secret>,
    pub scope: String,
    pub identity_url: String,
    pub api_url: String,
    pub store_key: String,
    pub refresh_skew_s: f64,
    pub timeout_ms: f64,
    /// Inside the token broker (see `QflowOptions::broker_side`).
    pub broker_side: bool,
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
    let email = match u.split_once(['/']) {
        Some((pin, email)) => {
            if pin.is_empty() || pin.len() > 16 || !pin.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return false;
            }
            email
        }
        None => u,
    };
    match email.split_once(['@']) {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains(['.'])
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.bytes().any(|b| b <= b' ' || b == b'/')
                && !domain.contains(['@'])
        }
        None => false,
    }
}

impl QflowConfig {
    pub fn new(o: QflowOptions) -> Result<Self, AuthError> {
        let client_id = required("clientId", o.client_id)?;
        let client_secret = Secret::new(required("clientSecret", o.client_secret)?);
        let subscription_key = match o.broker_side {
            true => optional("subscriptionKey", o.subscription_key)?,
            false => Some(required("subscriptionKey", o.subscription_key)?),
        }
        .map(Secret::new);
        let username = optional("username", o.username)?;
        let password = optional("password", o.password)?.map(Secret::new);
        if let Some(u) = &username {
            if !valid_username(u) {
                return Err(AuthError::config("username", "must be an email or `<enterprise pin>/<email>`"));
            }
        }
        let initial_refresh = optional("refreshToken", o.refresh_token)?.map(Secret::new);
        match (&username, &password) {
            // A refresh-only deployment: the password never has to live in the Worker's
            // environment; the chain starts from the saved (or given) refresh token.
            (Some(_), None) if !o.persisted && initial_refresh.is_none() => {
                return Err(AuthError::config("password", "is required with `username` unless a `store`, `broker` or `refreshToken` provides a refresh token"))
            }
            (None, Some(_)) => return Err(AuthError::config("username", "is required with `password`")),
            _ => {}
        }
        let scope = optional("scope", o.scope)?.unwrap_or_else(|| DEFAULT_SCOPE.to_string());
        let identity_url = base_url("identityUrl", o.identity_url.as_deref().unwrap_or(DEFAULT_IDENTITY_URL))?;
        let api_url = base_url("apiUrl", o.api_url.as_deref().unwrap_or(DEFAULT_API_URL))?;
        let (refresh_skew_s, timeout_ms) = timing(o.refresh_skew_seconds, o.timeout_ms)?;
        let explicit_key = optional("storeKey", o.store_key)?;
        let store_key = match explicit_key.clone() {
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
            broker_side: o.broker_side,
        };
        // A key that would carry a secret into a KV dashboard is refused. The default key is built
        // from non-secret parts only, so only a caller's key is checked.
        // Without a username the default key would be the same for every signed-in user.
        if o.persisted && cfg.username.is_none() && explicit_key.is_none() {
            return Err(AuthError::config(
                "storeKey",
                "is required with `store` or `broker` when there is no `username`: each signed-in user needs a key of their own",
            ));
        }
        if explicit_key.is_some_and(|k| crate::secret::Redactor::new(&cfg.secrets()).contains(&k)) {
            return Err(AuthError::config("storeKey", "must not contain a secret"));
        }
        Ok(cfg)
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Whose tokens these are (the token broker keeps its stored access token for this secret).
    pub fn client_secret(&self) -> &Secret {
        &self.client_secret
    }

    /// The type to send an API error's body on with, if it may go on to a proxy's caller:
    /// checkable text (`http::checkable_text`) without NUL (UTF-16 said to be UTF-8 reads with one
    /// between characters), holding neither the access token its request carried (`sent`) nor a
    /// configured secret, in any encoding redaction reads. Nothing else is sent to the API, and a
    /// short list keeps a 64 KiB body within the redaction budget.
    #[inline(never)]
    pub fn relayable(&self, body: &str, content_type: Option<&str>, sent: &Secret) -> Option<&'static str> {
        let mut credentials = Redactor::new(&self.secrets());
        credentials.add(sent);
        content_type.and_then(crate::http::checkable_text).filter(|_| body.bytes().all(|b| b != 0) && !credentials.contains(body))
    }

    /// Every configured secret, for redaction of server text.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut v = vec![&self.client_secret];
        v.extend(self.subscription_key.as_ref());
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

    /// What the token broker gets to refresh with: no subscription key (it makes no API call),
    /// the password only if there is one.
    pub fn broker_options(&self) -> Vec<(&'static str, crate::broker::Field)> {
        use crate::broker::Field::{Num, Secret as Hidden};
        let s = |v: &str| crate::broker::Field::Str(v.to_string());
        let mut o = vec![("clientId", s(&self.client_id)), ("clientSecret", Hidden(self.client_secret.clone())), ("scope", s(&self.scope))];
        o.push(("identityUrl", s(&self.identity_url)));
        o.push(("storeKey", s(&self.store_key)));
        o.push(("refreshSkewSeconds", Num(self.refresh_skew_s)));
        o.push(("timeoutMs", Num(crate::broker::broker_timeout_ms(self.timeout_ms))));
        o.extend(self.username.as_deref().map(|u| ("username", s(u))));
        o.extend(self.password.clone().map(|p| ("password", Hidden(p))));
        o.extend(self.initial_refresh.clone().map(|r| ("refreshToken", Hidden(r))));
        o
    }

    /// The broker object for this credential: provider, identity server and client as well as
    /// the store key, so no other configuration (another identity server, a Qpien client with a
    /// look-alike key) can ever be handed this chain's tokens.
    pub fn broker_name(&self) -> String {
        let mut n = String::from("qflow|");
        for part in [&self.identity_url, &self.client_id, &self.store_key] {
            n.push_str(part);
            n.push('|');
        }
        n
    }

    /// Both API headers for an access token (only the bearer inside the broker).
    pub fn api_headers(&self, access: &Secret) -> Vec<(&'static str, String)> {
        let mut h = vec![("Authorization", crate::http::cat("Bearer ", access.expose()))];
        h.extend(self.subscription_key.as_ref().map(|k| (SUBSCRIPTION_HEADER, k.expose().to_string())));
        h
    }

    /// What `fetch()` was given, as the URL string to build the request from: a path is joined to
    /// `apiUrl`; anything with a scheme (RFC 3986 §3.1: a letter, then letters, digits, `+`, `-`,
    /// `.`, before the first `:`) or starting `//` is left for the platform to parse, and
    /// `check_sent` then decides on the URL the platform actually made of it. A `:` later on (in
    /// a query, `events?from=10:00`) is part of a path.
    pub fn target(&self, input: &str) -> String {
        let scheme = input.split_once([':']).is_some_and(|(s, _)| {
            s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        });
        if scheme || input.starts_with("//") {
            return input.to_string();
        }
        let mut u = self.api_url.clone();
        if !input.starts_with('/') {
            u.push('/');
        }
        u.push_str(input);
        u
    }

    /// The check on the request about to be sent (its URL as the platform parsed it): the bearer
    /// token and subscription key only ever go to `apiUrl`'s origin.
    pub fn check_sent(&self, url: &str) -> Result<(), AuthError> {
        if origin(url).is_some() && origin(url) == origin(&self.api_url) {
            return Ok(());
        }
        Err(AuthError::new(ErrorCode::InvalidRequest, "refusing to send Qflow credentials to a URL outside `apiUrl`'s origin"))
    }

    pub fn comms_probe_path(event_id: &str) -> String {
        let mut p = String::from(COMMS_PROBE_PATH);
        encode_component(&mut p, event_id, false);
        p
    }
}

/// What an API answer's status means for a call made through the client.
#[derive(Debug, PartialEq)]
pub enum ApiNext {
    /// Hand the answer back.
    Done,
    /// A 401 to a token not yet refreshed for this call: drop that token (for every caller that
    /// holds it, once), get another, send again.
    RefreshAndRetry,
    /// A 403: read its (small) body for a documented gate (`api_gate`).
    ProbeGate,
    Fail(AuthError),
}

/// The 401 rule: one forced refresh and one retry per call; a second 401 is `unauthorized`.
pub fn api_next(status: u16, refreshed: bool) -> ApiNext {
    match status {
        401 if !refreshed => ApiNext::RefreshAndRetry,
        401 => ApiNext::Fail(AuthError::new(ErrorCode::Unauthorized, "the Qflow API refused a freshly refreshed token (HTTP 401 twice)").with_status(401)),
        403 => ApiNext::ProbeGate,
        _ => ApiNext::Done,
    }
}

/// The `commsAccess()` probe's answer once 401 and 403 are handled (`api_next`): a 2xx is access;
/// 429 and 5xx are the transient errors every answer has (`HttpResponse::transient_error`, with
/// `Retry-After`); anything else is `bad_response`.
pub fn comms_status(status: u16, retry_after: Option<String>) -> Result<(), AuthError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let answer = HttpResponse { status, retry_after, body: String::new() };
    Err(answer.transient_error(API).unwrap_or_else(|| bad_response(API, status, "no access answer")))
}

const API: &str = "the Qflow API";

/// Largest 403 body read to look for a gate; a gate answer is a few hundred bytes.
pub const MAX_GATE_BODY_BYTES: usize = 16 * 1024;

/// How much of an API error a proxy reads to check it before passing it on; a larger error is
/// not passed on.
pub const MAX_RELAY_BODY_BYTES: usize = 64 * 1024;

/// What a proxy (qauth/hono, the demo's BFF) does with an API answer before passing it on to its
/// own, public caller. A gateway may echo the request's headers in an error, so an error's body
/// goes on only once read whole and checked (`QflowConfig::relayable`); a success streams on.
#[derive(Debug, PartialEq)]
pub enum Relay {
    Stream,
    /// Not knowing which token the request carried (not an answer of this client's `fetch()`: a
    /// clone, another client's), or not text the check reads as its reader will
    /// (`http::checkable_text`).
    Withhold,
    /// Read up to this many bytes, then check.
    Read(usize),
}

/// What to do with the body of an answer of `status`; `sent_known`: the token its request
/// carried is known.
pub fn relay(status: u16, content_type: Option<&str>, sent_known: bool) -> Relay {
    if (200..300).contains(&status) || status == 304 {
        Relay::Stream
    } else if !sent_known || content_type.and_then(crate::http::checkable_text).is_none() {
        Relay::Withhold
    } else {
        Relay::Read(MAX_RELAY_BODY_BYTES)
    }
}

/// A 403 that is a documented, permanent gate rather than a plain failure: the JSON body's
/// `error` field, not a word anywhere in the body (a message may quote another code).
pub fn api_gate(status: u16, body: &str) -> Option<AuthError> {
    if status != 403 {
        return None;
    }
    let error = crate::json::parse(body)?.get_str("error")?.to_string();
    let (code, msg) = match error.as_str() {
        "comms_api_not_enabled" => (ErrorCode::CommsApiNotEnabled, "the Qflow API refused: Comms API access is not enabled for this account (HTTP 403)"),
        "trust_required" => (ErrorCode::TrustRequired, "the Qflow API refused to send: the account has not finished verification (HTTP 403)"),
        _ => return None,
    };
    Some(AuthError::new(code, msg).with_status(403))
}

/// How many spent refresh tokens (and, apart, codes) a session remembers: to never send one
/// twice, and never adopt a refresh token from the store again.
const SPENT_CAP: usize = 16;

/// The refresh-token side of a Qflow client: which grant to ask for next, what a failure means,
/// and what the store says. Every rule about single-use refresh tokens lives here:
/// - each refresh token is sent at most once (it is marked spent when the grant is chosen; only an
///   answer proving the request never reached the server gives it back);
/// - before a refresh, the store is read again: a token there that this session did not write and
///   has not spent was rotated by another isolate and is newer than the one in memory;
/// - a refused or possibly-consumed refresh token is dropped only if it is still the current one
///   (a newer token from `exchangeCode` or the store is kept), then the store is read once more,
///   then the password (if configured), else `invalid_grant` telling the user to sign in.
#[derive(Debug, Default)]
pub struct Session {
    refresh: Option<Secret>,
    /// The current refresh token is newer than what the store holds (its save failed).
    pub unsaved: bool,
    has_store: bool,
    /// The store has been read at least once (a failed read before that is an error).
    store_loaded: bool,
    /// The store is read before the next grant (set at the start of each acquisition).
    read_pending: bool,
    /// Refresh tokens already sent, newest last.
    spent: Vec<Secret>,
    /// Authorization codes already sent, newest last (apart: codes never push out a refresh
    /// token).
    codes: Vec<Secret>,
    /// What the store held when the exchange in progress began (`supersede`).
    superseding: Option<Secret>,
    /// In this acquisition: a refresh failed (so a password grant is a fallback), and the store
    /// was re-read after a failure.
    refresh_failed: bool,
    reread: bool,
}

/// Remembers a credential as sent; the oldest goes past `SPENT_CAP`.
fn spend(list: &mut Vec<Secret>, s: Secret) {
    if list.len() >= SPENT_CAP {
        crate::secret::drop_at(list, 0);
    }
    list.push(s);
}

/// What to do after a grant failed.
#[derive(Debug, PartialEq)]
pub enum After {
    /// Read the store if `wants_store_read`, then ask `next_grant` again.
    Again,
    Fail(AuthError),
}

impl Session {
    pub fn new(cfg: &QflowConfig, has_store: bool) -> Self {
        Session { refresh: cfg.initial_refresh.clone(), has_store, ..Session::default() }
    }

    /// Starts one token acquisition (the single flight).
    pub fn begin(&mut self) {
        self.read_pending = self.has_store;
        self.refresh_failed = false;
        self.reread = false;
    }

    /// The client keeps its refresh token in a store.
    pub fn has_store(&self) -> bool {
        self.has_store
    }

    pub fn wants_store_read(&self) -> bool {
        self.read_pending && !self.unsaved
    }

    /// What the store holds: adopted unless it is what this session already has or has spent.
    /// Returns the adopted token (so the caller can add it to its redaction set).
    pub fn store_read(&mut self, saved: Option<String>) -> Option<&Secret> {
        self.read_pending = false;
        self.store_loaded = true;
        let saved = Secret::new(saved.filter(|s| !s.is_empty())?);
        if self.refresh.as_ref() == Some(&saved) || self.spent.contains(&saved) {
            return None;
        }
        self.refresh = Some(saved);
        self.refresh.as_ref()
    }

    /// A failed store read: an error before the store was ever read (the saved token may be the
    /// only one), else go on with the token in memory.
    pub fn store_read_failed(&mut self, err: AuthError) -> Result<(), AuthError> {
        self.read_pending = false;
        if self.store_loaded {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// An authorization-code exchange starts a new chain (the store is read first only to learn
    /// the one it ends: `supersede`). A code is
    /// single use like a refresh token (RFC 6749 §4.1.2: a server that sees one twice should
    /// revoke the tokens it issued for it, ending the first exchange's session too), so one this
    /// session already sent is refused, and nothing changes.
    pub fn exchange_started(&mut self, code: &Secret) -> Result<(), AuthError> {
        if self.codes.contains(code) {
            return Err(AuthError::new(
                ErrorCode::InvalidRequest,
                "this authorization code was already sent by this client, and a code is single use: start a new sign-in for a new one",
            ));
        }
        spend(&mut self.codes, code.clone());
        Ok(())
    }

    /// What the store held when an exchange began: once the code is answered that chain is
    /// over for this client, and its token never adopted from the store again (`on_grant`); a
    /// refused code leaves it as it was.
    pub fn supersede(&mut self, saved: Option<String>) {
        self.superseding = saved.filter(|s| !s.is_empty()).map(Secret::new);
        self.store_loaded = true;
    }

    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh.as_ref()
    }

    /// Refresh when there is an unspent refresh token (cheaper, keeps the password off the wire),
    /// else the password grant. The second value is true when the password grant is a fallback
    /// (a refresh failed in this acquisition). A refresh token handed out here is spent.
    pub fn next_grant(&mut self, cfg: &QflowConfig) -> Result<(Grant, bool), AuthError> {
        if let Some(rt) = self.refresh.clone() {
            spend(&mut self.spent, rt.clone());
            return Ok((Grant::Refresh(rt), false));
        }
        if cfg.has_password() {
            return Ok((Grant::Password, self.refresh_failed));
        }
        let message = if self.refresh_failed {
            "the refresh token was refused or may have been used up, and no password is configured: sign in again"
        } else {
            "no refresh token is stored and no password is configured: sign in with `exchangeCode()` or configure username + password"
        };
        Err(AuthError::new(ErrorCode::InvalidGrant, message))
    }

    /// After a failed grant (its own retries spent).
    pub fn after_failure(&mut self, failed: &Grant, err: AuthError) -> After {
        self.superseding = None;
        let rt = match failed {
            Grant::Refresh(rt) => rt,
            // A code that never reached the server may be exchanged again.
            Grant::Code { code, .. } if err.unsent => {
                crate::secret::forget(&mut self.codes, code);
                return After::Fail(err);
            }
            _ => return After::Fail(err),
        };
        if err.unsent {
            // Never reached the server: the token is still good, and still ours.
            crate::secret::forget(&mut self.spent, rt);
            return After::Fail(err);
        }
        if err.code == ErrorCode::StoreFailed {
            // The server took it and answered; its successor is held until it is saved.
            return After::Fail(err);
        }
        let consumed = matches!(err.code, ErrorCode::InvalidGrant | ErrorCode::Network | ErrorCode::Timeout | ErrorCode::ServerError | ErrorCode::BadResponse);
        if !consumed {
            // invalid_client, invalid_scope, …: a configuration problem; the token was not used.
            crate::secret::forget(&mut self.spent, rt);
            return After::Fail(err);
        }
        if self.refresh.as_ref() == Some(rt) {
            self.refresh = None;
        }
        self.refresh_failed = true;
        if self.has_store && !self.reread {
            self.reread = true;
            self.read_pending = true;
        }
        After::Again
    }

    /// Records a new token. Returns true when its refresh token must be saved before use.
    pub fn on_token(&mut self, token: &Token) -> bool {
        self.on_grant(token, false)
    }

    /// `on_token` for a grant's answer; `new_chain`: an authorization code's, which supersedes
    /// the chain before it even without a refresh token of its own (that one is never used
    /// again, nor adopted from the store; the store is written, emptied if need be).
    pub fn on_grant(&mut self, token: &Token, new_chain: bool) -> bool {
        if new_chain {
            for old in [self.refresh.take(), self.superseding.take()].into_iter().flatten() {
                if token.refresh.as_ref() != Some(&old) && !self.spent.contains(&old) {
                    spend(&mut self.spent, old);
                }
            }
            self.refresh = token.refresh.clone();
            self.unsaved = self.has_store;
            return self.unsaved;
        }
        // RFC 6749 §6: without a new refresh token, the old one stays valid.
        if let Some(rt) = &token.refresh {
            if self.refresh.as_ref() != Some(rt) {
                self.refresh = Some(rt.clone());
                self.unsaved = self.has_store;
            }
        }
        self.unsaved
    }

    /// The current refresh token is in the store.
    pub fn saved(&mut self) {
        self.unsaved = false;
        self.store_loaded = true;
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
        // A key carrying a secret, as it is or encoded, is refused; any other key is taken.
        for key in ["k-CANARY-cs-1", "k-CANARY%2Dcs%2d1", "k-CANARY\\u002Dpw-1", "CANARY-sk-1:user"] {
            let mut o = opts();
            o.store_key = Some(key.into());
            let e = QflowConfig::new(o).unwrap_err();
            assert!(e.message.contains("storeKey") && !e.message.contains("CANARY"), "{key}");
        }
        let mut o = opts();
        o.store_key = Some("qauth:user-42".into());
        assert!(QflowConfig::new(o).is_ok());
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
    fn targets_and_the_check_on_what_is_sent() {
        let c = QflowConfig::new(opts()).unwrap();
        assert_eq!(c.target("/checkin/v1/api/event"), "http://127.0.0.1:9/checkin/v1/api/event");
        assert_eq!(c.target("checkin/x"), "http://127.0.0.1:9/checkin/x");
        assert_eq!(c.target("https://evil.example/a"), "https://evil.example/a");
        assert_eq!(c.target("//evil.example/a"), "//evil.example/a");
        for scheme in ["mailto:x", "web+app:x", "a1.b-c:x", "HTTP://evil.example/"] {
            assert_eq!(c.target(scheme), scheme, "left to the platform, then checked");
        }
        // A colon that is not after a scheme is part of a path, joined to apiUrl.
        assert_eq!(c.target("events?from=10:00"), "http://127.0.0.1:9/events?from=10:00");
        assert_eq!(c.target("1x:y"), "http://127.0.0.1:9/1x:y");
        assert_eq!(c.target("a_b:c"), "http://127.0.0.1:9/a_b:c");
        assert!(c.check_sent("http://127.0.0.1:9/a").is_ok());
        for bad in ["https://evil.example/a", "http://127.0.0.1:99/a", "http://127.0.0.1:9.evil/a", "mailto:x", ""] {
            assert_eq!(c.check_sent(bad).unwrap_err().code, ErrorCode::InvalidRequest, "{bad}");
        }
        assert_eq!(QflowConfig::comms_probe_path("ev 1/2"), "/comms/v1/api/comms/templates?eventId=ev%201%2F2");
    }

    #[test]
    fn one_refresh_and_one_retry_on_401() {
        assert_eq!(api_next(200, false), ApiNext::Done);
        assert_eq!(api_next(500, false), ApiNext::Done, "other answers are the caller's");
        assert_eq!(api_next(401, false), ApiNext::RefreshAndRetry);
        assert!(matches!(api_next(401, true), ApiNext::Fail(e) if e.code == ErrorCode::Unauthorized && e.status == Some(401)));
        assert_eq!(api_next(403, true), ApiNext::ProbeGate);
    }

    #[test]
    fn comms_probe_answers() {
        assert!(comms_status(204, None).is_ok());
        let e = comms_status(503, Some("7".into())).unwrap_err();
        assert_eq!((e.code, e.status, e.retry_after, e.retryable()), (ErrorCode::ServerError, Some(503), Some(7), true));
        let e = comms_status(429, Some("soon".into())).unwrap_err();
        assert_eq!((e.code, e.retry_after), (ErrorCode::RateLimited, None), "a Retry-After that is not seconds is no wait");
        let e = comms_status(404, Some("7".into())).unwrap_err();
        assert_eq!((e.code, e.status, e.retry_after, e.retryable()), (ErrorCode::BadResponse, Some(404), None, false));
    }

    #[test]
    fn gates() {
        assert_eq!(api_gate(403, r#"{"error":"comms_api_not_enabled"}"#).unwrap().code, ErrorCode::CommsApiNotEnabled);
        assert_eq!(api_gate(403, r#"{"error":"trust_required"}"#).unwrap().code, ErrorCode::TrustRequired);
        assert!(api_gate(403, "forbidden").is_none());
        assert!(api_gate(403, r#"{"error":"forbidden","message":"not trust_required"}"#).is_none(), "the error field, not a substring");
        assert!(api_gate(200, "comms_api_not_enabled").is_none());
    }

    fn tok(refresh: Option<&str>) -> Token {
        Token::new("a".into(), refresh.map(String::from), Some(&crate::json::Value::Num(60.0)), 0.0, "t", 200).unwrap()
    }

    fn cfg_with(f: impl FnOnce(&mut QflowOptions)) -> QflowConfig {
        let mut o = opts();
        f(&mut o);
        QflowConfig::new(o).unwrap()
    }

    fn refused() -> AuthError {
        AuthError::new(ErrorCode::InvalidGrant, "x").with_status(400)
    }

    #[test]
    fn session_prefers_refresh_then_password_and_falls_back() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c, true);
        s.begin();
        assert!(s.wants_store_read());
        assert!(s.store_read(None).is_none());
        assert_eq!(s.next_grant(&c).unwrap(), (Grant::Password, false));
        assert!(s.on_token(&tok(Some("rt1"))), "a rotated token must be saved");
        s.saved();
        s.begin();
        s.store_read(Some("rt1".into()));
        assert_eq!(s.next_grant(&c).unwrap(), (Grant::Refresh(Secret::new("rt1")), false));
        // Refused: the store is read once more before the password.
        assert_eq!(s.after_failure(&Grant::Refresh(Secret::new("rt1")), refused()), After::Again);
        assert!(s.wants_store_read());
        assert!(s.store_read(Some("rt1".into())).is_none(), "a spent token is never adopted again");
        assert_eq!(s.next_grant(&c).unwrap(), (Grant::Password, true));
    }

    #[test]
    fn a_newer_token_in_the_store_is_used_instead_of_the_one_in_memory() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c, true);
        s.begin();
        s.store_read(Some("rt1".into()));
        s.on_token(&tok(Some("rt2")));
        s.saved();
        // Another isolate rotated rt2 -> rt3 and saved it.
        s.begin();
        assert_eq!(s.store_read(Some("rt3".into())).map(Secret::expose), Some("rt3"));
        assert_eq!(s.next_grant(&c).unwrap().0, Grant::Refresh(Secret::new("rt3")));
    }

    #[test]
    fn a_lost_answer_spends_the_token_and_is_never_resent() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c, true);
        s.begin();
        s.store_read(Some("rt1".into()));
        let (g, _) = s.next_grant(&c).unwrap();
        assert_eq!(s.after_failure(&g, AuthError::new(ErrorCode::Timeout, "x")), After::Again);
        // The store still holds rt1 (the answer with its successor was lost): not sent again.
        s.store_read(Some("rt1".into()));
        assert_eq!(s.next_grant(&c).unwrap(), (Grant::Password, true));
    }

    #[test]
    fn an_unsent_refresh_keeps_its_token() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c, false);
        s.on_token(&tok(Some("rt1")));
        s.begin();
        let (g, _) = s.next_grant(&c).unwrap();
        let mut e = AuthError::new(ErrorCode::Network, "refused");
        e.unsent = true;
        assert!(matches!(s.after_failure(&g, e), After::Fail(e) if e.code == ErrorCode::Network));
        s.begin();
        assert_eq!(s.next_grant(&c).unwrap().0, Grant::Refresh(Secret::new("rt1")));
    }

    #[test]
    fn a_failure_drops_only_the_token_it_used() {
        // initial=rt0; exchangeCode installs rt3; the refresh with rt0 then fails.
        let c = cfg_with(|o| o.refresh_token = Some("rt0".into()));
        let mut s = Session::new(&c, false);
        s.begin();
        let (g, _) = s.next_grant(&c).unwrap();
        s.on_token(&tok(Some("rt3")));
        assert_eq!(s.after_failure(&g, AuthError::new(ErrorCode::Timeout, "x")), After::Again);
        assert_eq!(s.refresh_token().map(Secret::expose), Some("rt3"));
    }

    #[test]
    fn configuration_errors_keep_the_token() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c, false);
        s.on_token(&tok(Some("rt2")));
        s.begin();
        let (g, _) = s.next_grant(&c).unwrap();
        let e = AuthError::new(ErrorCode::InvalidClient, "x");
        assert_eq!(s.after_failure(&g, e.clone()), After::Fail(e));
        assert_eq!(s.next_grant(&c).unwrap().0, Grant::Refresh(Secret::new("rt2")));
    }

    #[test]
    fn without_password_a_dead_refresh_token_says_sign_in() {
        let c = cfg_with(|o| {
            o.username = None;
            o.password = None;
            o.refresh_token = Some("rt0".into());
        });
        let mut s = Session::new(&c, false);
        s.begin();
        let (g, _) = s.next_grant(&c).unwrap();
        assert_eq!(s.after_failure(&g, refused()), After::Again);
        let e = s.next_grant(&c).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidGrant);
        assert!(e.message.contains("sign in"));
    }

    #[test]
    fn refresh_only_deployments_need_no_password() {
        let with_store = cfg_with(|o| {
            o.password = None;
            o.persisted = true;
        });
        assert!(!with_store.has_password());
        let mut o = opts();
        o.password = None;
        assert!(QflowConfig::new(o).unwrap_err().message.contains("password"));
        let mut o = opts();
        o.username = Some("pw@example.com".into());
        o.password = Some("example".into());
        assert!(QflowConfig::new(o).is_ok(), "a default store key is not refused for holding a password-like substring");
    }

    #[test]
    fn refresh_without_rotation_keeps_the_old_token() {
        let c = QflowConfig::new(opts()).unwrap();
        let mut s = Session::new(&c, true);
        s.on_token(&tok(Some("rt1")));
        s.saved();
        assert!(!s.on_token(&tok(None)));
        assert_eq!(s.refresh_token().unwrap().expose(), "rt1");
    }
}
