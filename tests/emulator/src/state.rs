//! The emulator's state: users, clients, live tokens, counters and queued faults.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "qauth-demo";
pub const CLIENT_SECRET: &str = "CANARY-client-secret-7d1f2a";
pub const SUBSCRIPTION_KEY: &str = "CANARY-subscription-key-5b2e9c";
pub const QPIEN_CLIENT_ID: &str = "qpien-demo";
pub const QPIEN_SECRET: &str = "CANARY-qpien-secret-0e9d41";

pub struct User {
    pub username: String,
    pub password: String,
    pub guid: String,
    pub comms_allowed: bool,
    pub verified: bool,
}

#[derive(Clone, Debug)]
pub enum Fault {
    Status {
        status: u16,
        /// Sent as is: delay-seconds, or any text (an HTTP-date, a value a client cannot read).
        retry_after: Option<String>,
    },
    Delay {
        ms: u64,
    },
    Html,
    Malformed,
    Truncated,
    Drop,
    NoExpiry,
    /// 400 invalid_request whose description repeats the raw request body (the grant is not processed).
    Echo,
    /// Like `Echo`, after 290 'x' (490 at the GraphQL mint), so a secret straddles a 300-character cut.
    EchoCut,
    /// 200 with a streamed body of `size` bytes (the grant is not processed).
    Big {
        size: usize,
    },
}

/// Faults of the API gateway, served after authentication succeeded.
#[derive(Clone, Debug)]
pub enum ApiFault {
    /// 403 whose message repeats the Authorization and Ocp-Apim-Subscription-Key headers.
    Echo403,
    /// 403 whose message repeats the Authorization header only.
    Echo403Bearer,
    /// 403 with a streamed body of `size` bytes.
    Big403 { size: usize },
    /// `status` (429, 503…) with a JSON error body and, if given, a Retry-After.
    Status { status: u16, retry_after: Option<String> },
}

/// Faults of the GraphQL endpoint's operations other than the mint, served after authentication.
#[derive(Clone, Debug)]
pub enum GqlFault {
    /// A FORBIDDEN error whose message repeats the Authorization header.
    Echo,
    /// Like `Echo`, after 490 'x'.
    EchoCut,
    /// 200 with a streamed `{"data":{"items":[1,1,…]}}` of `size` bytes.
    Big { size: usize },
    /// 200 with `data` twice in one object.
    DupData,
    /// 200 with `data` (the operation ran) beside a field's UNAUTHORIZED error; with `echo`, the
    /// data repeats the Authorization header (a debug field).
    PartialUnauthorized { echo: bool },
    /// `status` (429, 503…) with an `errors` body, as GraphQL servers answer an overload, and, if
    /// given, a Retry-After.
    Status { status: u16, retry_after: Option<String> },
}

pub const TOKEN_BIG_SIZE: usize = 32 << 20;
pub const API_BIG_SIZE: usize = 4 << 20;
pub const GQL_BIG_SIZE: usize = 4 << 20;

struct Access {
    user: usize,
    family: u64,
    expires: Instant,
    revoked: bool,
}

/// A refresh token. `used`: it was redeemed once (presenting it again is reuse);
/// `revoked`: the server killed it (its family was revoked, or the `revoke` control).
struct Refresh {
    user: usize,
    family: u64,
    used: bool,
    revoked: bool,
}

struct Code {
    user: usize,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
}

#[derive(Default)]
pub struct Stats {
    pub token_password: u64,
    pub token_refresh: u64,
    pub token_code: u64,
    pub token_other: u64,
    pub token_errors: u64,
    /// A used refresh token presented again (each one revokes its family).
    pub token_reuse_detected: u64,
    /// invalid_grant answers of the token endpoint, any cause.
    pub token_invalid_grant: u64,
    pub api_calls: u64,
    pub api_rejects: u64,
    pub api_rejects_expired: u64,
    /// 401s because the access token was revoked (the `revoke` control or a family revocation).
    pub api_rejects_revoked: u64,
    pub events_created: u64,
    pub qpien_mints: u64,
    pub qpien_calls: u64,
    pub qpien_rejects: u64,
    pub faults_served: u64,
    pub api_faults_served: u64,
    pub gql_faults_served: u64,
}

pub struct TokenGrant {
    pub access: String,
    pub refresh: String,
    pub ttl: u64,
}

pub struct State {
    pub ttl: u64,
    pub qpien_ttl: u64,
    /// The lifetimes given on the command line; `reset` goes back to them.
    start_ttls: (u64, u64),
    pub users: Vec<User>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    /// Token families: every password or authorization_code grant starts one, refreshes stay in it.
    next_family: u64,
    codes: HashMap<String, Code>,
    used_codes: HashMap<String, ()>,
    qpien_tokens: HashMap<String, (Instant, Vec<String>)>,
    pub qpien_scopes: Vec<String>,
    pub gql_http_errors: bool,
    faults: VecDeque<Fault>,
    api_faults: VecDeque<ApiFault>,
    gql_faults: VecDeque<GqlFault>,
    /// Sleep this long before processing the next refresh_token grant (fault kind `delay_refresh`).
    delay_refresh: Option<u64>,
    pub stats: Stats,
}

fn random(prefix: &str) -> String {
    let mut b = [0u8; 18];
    rand::thread_rng().fill(&mut b);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

pub fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

pub fn basic_auth(h: &HeaderMap) -> Option<(String, String)> {
    let v = h.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let d = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v).ok()?).ok()?;
    let (a, b) = d.split_once(':')?;
    Some((a.to_string(), b.to_string()))
}

/// `{"faults":[{"kind":…,"count":N,…}, …]}` → each fault `count` times (default 1), in order.
/// `make` answers `None` for a kind that is not queued. Nothing is queued if any entry is wrong.
fn fault_list<F: Clone>(v: &Value, mut make: impl FnMut(&str, &Value) -> Result<Option<F>, String>) -> Result<Vec<F>, String> {
    let list = v["faults"].as_array().ok_or("expected {\"faults\": [...]}")?;
    let mut out = Vec::new();
    for f in list {
        let count = f["count"].as_u64().unwrap_or(1);
        if let Some(fault) = make(f["kind"].as_str().unwrap_or(""), f)? {
            for _ in 0..count {
                out.push(fault.clone());
            }
        }
    }
    Ok(out)
}

/// A fault's `size` field, in bytes.
fn size(f: &Value, default: usize) -> usize {
    f["size"].as_u64().map_or(default, |n| n as usize)
}

/// Registered redirect URIs: any loopback http URI (the demo and tests pick their ports at run time).
pub fn redirect_allowed(uri: &str) -> bool {
    uri.starts_with("http://127.0.0.1:") || uri.starts_with("http://localhost:")
}

impl State {
    pub fn new(ttl: u64, qpien_ttl: u64) -> Self {
        let user = |u: &str, p: &str, g: &str, c: bool, v: bool| User { username: u.into(), password: p.into(), guid: g.into(), comms_allowed: c, verified: v };
        State {
            ttl,
            qpien_ttl,
            start_ttls: (ttl, qpien_ttl),
            users: vec![
                // Enterprise user: on the Comms allow-list by PIN 4471, verified.
                user("4471/joe.bloggs@example.com", "CANARY-password-joe-91c3", "5f0c2d1e-0000-4000-8000-000000000001", true, true),
                // Plain email user: not on the allow-list, not verified.
                user("ann@example.com", "CANARY-password-ann-44aa", "5f0c2d1e-0000-4000-8000-000000000002", false, false),
                // Allow-listed by GUID but not verified: sending answers trust_required.
                user("kim@example.com", "CANARY-password-kim-7b7b", "5f0c2d1e-0000-4000-8000-000000000003", true, false),
            ],
            access: HashMap::new(),
            refresh: HashMap::new(),
            next_family: 0,
            codes: HashMap::new(),
            used_codes: HashMap::new(),
            qpien_tokens: HashMap::new(),
            qpien_scopes: vec!["read".into()],
            gql_http_errors: false,
            faults: VecDeque::new(),
            api_faults: VecDeque::new(),
            gql_faults: VecDeque::new(),
            delay_refresh: None,
            stats: Stats::default(),
        }
    }

    pub fn reset(&mut self) {
        self.stats = Stats::default();
        self.faults.clear();
        self.api_faults.clear();
        self.gql_faults.clear();
        self.delay_refresh = None;
        self.gql_http_errors = false;
        self.qpien_scopes = vec!["read".into()];
        (self.ttl, self.qpien_ttl) = self.start_ttls;
    }

    pub fn count_token(&mut self, grant: &str) {
        match grant {
            "password" => self.stats.token_password += 1,
            "refresh_token" => self.stats.token_refresh += 1,
            "authorization_code" => self.stats.token_code += 1,
            _ => self.stats.token_other += 1,
        }
    }

    pub fn next_fault(&mut self) -> Option<Fault> {
        let f = self.faults.pop_front();
        if f.is_some() {
            self.stats.faults_served += 1;
        }
        f
    }

    /// The pending `delay_refresh`, taken by a refresh_token grant about to be processed.
    pub fn take_refresh_delay(&mut self) -> Option<u64> {
        let d = self.delay_refresh.take();
        if d.is_some() {
            self.stats.faults_served += 1;
        }
        d
    }

    pub fn next_api_fault(&mut self) -> Option<ApiFault> {
        let f = self.api_faults.pop_front();
        if f.is_some() {
            self.stats.api_faults_served += 1;
        }
        f
    }

    pub fn next_gql_fault(&mut self) -> Option<GqlFault> {
        let f = self.gql_faults.pop_front();
        if f.is_some() {
            self.stats.gql_faults_served += 1;
        }
        f
    }

    /// `{"faults":[{"kind":"status","status":503,"retryAfter":1,"count":2},{"kind":"delay","ms":500}, …]}`
    /// (`delay_refresh` is not queued: it waits for the next refresh_token grant, `count` ignored).
    pub fn set_faults(&mut self, v: &Value) -> Result<(), String> {
        let mut delay_refresh = None;
        let list = fault_list(v, |kind, f| {
            Ok(Some(match kind {
                "status" => Fault::Status { status: f["status"].as_u64().unwrap_or(500) as u16, retry_after: retry_after(f) },
                "delay" => Fault::Delay { ms: f["ms"].as_u64().unwrap_or(1000) },
                "html" => Fault::Html,
                "malformed" => Fault::Malformed,
                "truncated" => Fault::Truncated,
                "drop" => Fault::Drop,
                "no_expiry" => Fault::NoExpiry,
                "echo" => Fault::Echo,
                "echo_cut" => Fault::EchoCut,
                "big" => Fault::Big { size: size(f, TOKEN_BIG_SIZE) },
                "delay_refresh" => {
                    delay_refresh = Some(f["ms"].as_u64().unwrap_or(1000));
                    return Ok(None);
                }
                k => return Err(format!("unknown fault kind {k}")),
            }))
        })?;
        self.faults.extend(list);
        if delay_refresh.is_some() {
            self.delay_refresh = delay_refresh;
        }
        Ok(())
    }

    /// `{"faults":[{"kind":"echo403","count":1},{"kind":"big403","size":4194304}]}`
    pub fn set_api_faults(&mut self, v: &Value) -> Result<(), String> {
        let list = fault_list(v, |kind, f| match kind {
            "echo403" => Ok(Some(ApiFault::Echo403)),
            "echo403bearer" => Ok(Some(ApiFault::Echo403Bearer)),
            "big403" => Ok(Some(ApiFault::Big403 { size: size(f, API_BIG_SIZE) })),
            "status" => Ok(Some(ApiFault::Status { status: f["status"].as_u64().unwrap_or(503) as u16, retry_after: retry_after(f) })),
            k => Err(format!("unknown api fault kind {k}")),
        })?;
        self.api_faults.extend(list);
        Ok(())
    }

    /// `{"faults":[{"kind":"echo"},{"kind":"echo_cut"},{"kind":"big","size":4194304},{"kind":"dup_data"}]}`
    pub fn set_gql_faults(&mut self, v: &Value) -> Result<(), String> {
        let list = fault_list(v, |kind, f| match kind {
            "echo" => Ok(Some(GqlFault::Echo)),
            "echo_cut" => Ok(Some(GqlFault::EchoCut)),
            "big" => Ok(Some(GqlFault::Big { size: size(f, GQL_BIG_SIZE) })),
            "dup_data" => Ok(Some(GqlFault::DupData)),
            "partial_unauthorized" => Ok(Some(GqlFault::PartialUnauthorized { echo: false })),
            "partial_unauthorized_echo" => Ok(Some(GqlFault::PartialUnauthorized { echo: true })),
            "status" => Ok(Some(GqlFault::Status { status: f["status"].as_u64().unwrap_or(503) as u16, retry_after: retry_after(f) })),
            k => Err(format!("unknown graphql fault kind {k}")),
        })?;
        self.gql_faults.extend(list);
        Ok(())
    }

    pub fn client_id_known(&self, id: &str) -> bool {
        id == CLIENT_ID
    }

    pub fn client_ok(&self, id: &str, secret: &str) -> bool {
        id == CLIENT_ID && secret == CLIENT_SECRET
    }

    fn new_family(&mut self) -> u64 {
        self.next_family += 1;
        self.next_family
    }

    fn issue(&mut self, user: usize, family: u64) -> TokenGrant {
        let access = random("CANARY-at-");
        let refresh = random("CANARY-rt-");
        self.access.insert(access.clone(), Access { user, family, expires: Instant::now() + Duration::from_secs(self.ttl), revoked: false });
        self.refresh.insert(refresh.clone(), Refresh { user, family, used: false, revoked: false });
        TokenGrant { access, refresh, ttl: self.ttl }
    }

    /// Every refresh token and access token of `family` stops working.
    fn revoke_family(&mut self, family: u64) {
        self.refresh.values_mut().filter(|r| r.family == family).for_each(|r| r.revoked = true);
        self.access.values_mut().filter(|a| a.family == family).for_each(|a| a.revoked = true);
    }

    fn find_user(&self, username: &str, password: &str) -> Option<usize> {
        self.users.iter().position(|u| u.username.eq_ignore_ascii_case(username) && u.password == password)
    }

    pub fn password_grant(&mut self, username: &str, password: &str) -> Result<TokenGrant, (&'static str, &'static str)> {
        let shape_ok = match username.split_once('/') {
            Some((pin, email)) => !pin.is_empty() && pin.bytes().all(|b| b.is_ascii_digit()) && email.contains('@'),
            None => username.contains('@'),
        };
        if !shape_ok {
            return Err(("invalid_grant", "username must be an email or <enterprise_pin>/<email>"));
        }
        match self.find_user(username, password) {
            Some(u) => {
                let family = self.new_family();
                Ok(self.issue(u, family))
            }
            None => Err(("invalid_grant", "invalid username or password")),
        }
    }

    /// Single use: every refresh returns a new one, in the same family. A used refresh token
    /// presented again is reuse (RFC 9700 §4.14.2): invalid_grant, and its whole family is revoked.
    pub fn refresh_grant(&mut self, token: &str) -> Result<TokenGrant, (&'static str, &'static str)> {
        let Some(r) = self.refresh.get_mut(token) else { return Err(("invalid_grant", "unknown refresh token")) };
        if r.used {
            let family = r.family;
            self.stats.token_reuse_detected += 1;
            self.revoke_family(family);
            return Err(("invalid_grant", "refresh token already used"));
        }
        if r.revoked {
            return Err(("invalid_grant", "refresh token revoked"));
        }
        r.used = true;
        let (user, family) = (r.user, r.family);
        Ok(self.issue(user, family))
    }

    pub fn issue_code(&mut self, client_id: &str, username: &str, password: &str, redirect_uri: &str, challenge: &str) -> Option<String> {
        let user = self.find_user(username, password)?;
        let code = random("code-");
        self.codes.insert(
            code.clone(),
            Code { user, client_id: client_id.into(), redirect_uri: redirect_uri.into(), challenge: challenge.into(), issued: Instant::now() },
        );
        Some(code)
    }

    pub fn code_grant(&mut self, client_id: &str, code: &str, redirect_uri: &str, verifier: &str) -> Result<TokenGrant, (&'static str, &'static str)> {
        if self.used_codes.contains_key(code) {
            return Err(("invalid_grant", "authorization code already used"));
        }
        let Some(c) = self.codes.remove(code) else { return Err(("invalid_grant", "unknown authorization code")) };
        self.used_codes.insert(code.to_string(), ());
        if c.issued.elapsed() > Duration::from_secs(300) {
            return Err(("invalid_grant", "authorization code expired"));
        }
        if c.client_id != client_id || c.redirect_uri != redirect_uri {
            return Err(("invalid_grant", "client_id or redirect_uri does not match the authorization request"));
        }
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if verifier.len() < 43 || digest != c.challenge {
            return Err(("invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge"));
        }
        let family = self.new_family();
        Ok(self.issue(c.user, family))
    }

    pub fn authenticate_api(&mut self, h: &HeaderMap) -> Result<usize, &'static str> {
        let key_ok = h.get("ocp-apim-subscription-key").and_then(|v| v.to_str().ok()) == Some(SUBSCRIPTION_KEY);
        let bearer = h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !key_ok {
            self.stats.api_rejects += 1;
            return Err("Access denied due to missing or invalid subscription key.");
        }
        let Some(a) = bearer.and_then(|b| self.access.get(b)) else {
            self.stats.api_rejects += 1;
            return Err("Unauthorized. Access token is missing or invalid.");
        };
        if a.revoked {
            self.stats.api_rejects += 1;
            self.stats.api_rejects_revoked += 1;
            return Err("Unauthorized. Access token is missing or invalid.");
        }
        if Instant::now() >= a.expires {
            self.stats.api_rejects += 1;
            self.stats.api_rejects_expired += 1;
            return Err("Unauthorized. Access token has expired.");
        }
        Ok(a.user)
    }

    /// Server-side expiry of every live token (Qflow access + Qpien).
    pub fn expire_all(&mut self) {
        let past = Instant::now() - Duration::from_millis(1);
        self.access.values_mut().for_each(|a| a.expires = past);
        self.qpien_tokens.values_mut().for_each(|t| t.0 = past);
    }

    /// Revokes every Qflow access token (answers 401 without counting as expiry).
    pub fn revoke_access(&mut self) {
        self.access.values_mut().for_each(|a| a.revoked = true);
    }

    /// Every refresh token issued so far stops working (a session that expired server-side).
    /// Not reuse: presenting one of them answers invalid_grant without revoking anything else.
    pub fn revoke_refresh(&mut self) {
        self.refresh.values_mut().for_each(|r| r.revoked = true);
    }

    pub fn qpien_mint(&mut self, id: &str, secret: &str) -> Option<(String, u64)> {
        if id != QPIEN_CLIENT_ID || secret != QPIEN_SECRET {
            return None;
        }
        let t = random("CANARY-qt-");
        self.qpien_tokens.insert(t.clone(), (Instant::now() + Duration::from_secs(self.qpien_ttl), self.qpien_scopes.clone()));
        Some((t, self.qpien_ttl))
    }

    pub fn qpien_authenticate(&mut self, h: &HeaderMap) -> Result<Vec<String>, &'static str> {
        let bearer = h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let r = match bearer.and_then(|b| self.qpien_tokens.get(b)) {
            None => Err("UNAUTHORIZED"),
            Some((exp, _)) if Instant::now() >= *exp => Err("TOKEN_EXPIRED"),
            Some((_, scopes)) => Ok(scopes.clone()),
        };
        if r.is_err() {
            self.stats.qpien_rejects += 1;
        }
        r
    }

    /// A GraphQL error, with HTTP 200 or (in `gql_http_errors` mode) a 4xx status.
    pub fn gql_error(&self, code: &str, message: &str) -> Response {
        let status = if !self.gql_http_errors {
            StatusCode::OK
        } else {
            match code {
                "UNAUTHORIZED" | "TOKEN_EXPIRED" | "INVALID_CLIENT" => StatusCode::UNAUTHORIZED,
                "INSUFFICIENT_SCOPES" => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            }
        };
        (status, Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))).into_response()
    }

    pub fn stats_json(&self) -> Value {
        let s = &self.stats;
        json!({
            "token": { "password": s.token_password, "refresh_token": s.token_refresh, "authorization_code": s.token_code, "other": s.token_other, "errors": s.token_errors,
                       "total": s.token_password + s.token_refresh + s.token_code + s.token_other,
                       "reuseDetected": s.token_reuse_detected, "invalidGrant": s.token_invalid_grant },
            "api": { "calls": s.api_calls, "rejects": s.api_rejects, "rejectsExpired": s.api_rejects_expired, "rejectsRevoked": s.api_rejects_revoked, "eventsCreated": s.events_created },
            "qpien": { "mints": s.qpien_mints, "calls": s.qpien_calls, "rejects": s.qpien_rejects },
            "faultsServed": s.faults_served,
            "faultsQueued": self.faults.len(),
            "delayRefreshQueued": self.delay_refresh.is_some(),
            "apiFaultsServed": s.api_faults_served,
            "apiFaultsQueued": self.api_faults.len(),
            "graphqlFaultsServed": s.gql_faults_served,
            "graphqlFaultsQueued": self.gql_faults.len(),
        })
    }
}

/// A fault's `retryAfter`: a number of seconds, or any text (an HTTP-date, a value a client cannot read).
fn retry_after(f: &Value) -> Option<String> {
    f["retryAfter"].as_u64().map(|n| n.to_string()).or_else(|| f["retryAfter"].as_str().map(String::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_headers(access: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("ocp-apim-subscription-key", SUBSCRIPTION_KEY.parse().unwrap());
        h.insert("authorization", format!("Bearer {access}").parse().unwrap());
        h
    }

    fn sign_in(s: &mut State) -> TokenGrant {
        s.password_grant("4471/joe.bloggs@example.com", "CANARY-password-joe-91c3").ok().unwrap()
    }

    fn refresh(s: &mut State, token: &str) -> Result<TokenGrant, &'static str> {
        s.refresh_grant(token).map_err(|(error, description)| {
            assert_eq!(error, "invalid_grant");
            description
        })
    }

    #[test]
    fn reusing_a_used_refresh_token_revokes_its_family_only() {
        let mut s = State::new(3600, 3600);
        let a1 = sign_in(&mut s);
        let a2 = refresh(&mut s, &a1.refresh).unwrap();
        let a3 = refresh(&mut s, &a2.refresh).unwrap();
        let b1 = sign_in(&mut s); // another family, same user
        for a in [&a1, &a2, &a3] {
            assert!(s.authenticate_api(&api_headers(&a.access)).is_ok());
        }
        assert_eq!(s.stats.token_reuse_detected, 0);

        // a1's refresh token was used for a2: presenting it again is reuse.
        assert_eq!(refresh(&mut s, &a1.refresh).err(), Some("refresh token already used"));
        assert_eq!(s.stats.token_reuse_detected, 1);
        // The family's live refresh token and every access token of the family stop working.
        assert_eq!(refresh(&mut s, &a3.refresh).err(), Some("refresh token revoked"));
        for a in [&a1, &a2, &a3] {
            assert!(s.authenticate_api(&api_headers(&a.access)).is_err());
        }
        assert_eq!(s.stats.api_rejects_revoked, 3);
        assert_eq!(s.stats.api_rejects, 3);
        assert_eq!(s.stats.api_rejects_expired, 0);
        // Presenting another used token of the family is reuse again.
        assert!(refresh(&mut s, &a2.refresh).is_err());
        assert_eq!(s.stats.token_reuse_detected, 2);

        // The other family is unaffected.
        assert!(s.authenticate_api(&api_headers(&b1.access)).is_ok());
        let b2 = refresh(&mut s, &b1.refresh).unwrap();
        assert!(s.authenticate_api(&api_headers(&b2.access)).is_ok());
        assert!(s.authenticate_api(&api_headers(&b1.access)).is_ok(), "a refresh does not revoke the access token it replaces");
        assert_eq!(s.stats.api_rejects_revoked, 3);
    }

    #[test]
    fn code_grants_start_a_family_and_refreshes_stay_in_it() {
        let mut s = State::new(3600, 3600);
        let verifier = "v".repeat(43);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let redirect = "http://127.0.0.1:9/cb";
        let code = s.issue_code(CLIENT_ID, "ann@example.com", "CANARY-password-ann-44aa", redirect, &challenge).unwrap();
        let c1 = s.code_grant(CLIENT_ID, &code, redirect, &verifier).ok().unwrap();
        let c2 = refresh(&mut s, &c1.refresh).unwrap();
        let p1 = sign_in(&mut s);
        assert_eq!(s.access[&c1.access].family, s.access[&c2.access].family);
        assert_ne!(s.access[&c1.access].family, s.access[&p1.access].family);
        assert!(refresh(&mut s, &c1.refresh).is_err());
        assert!(refresh(&mut s, &c2.refresh).is_err());
        assert!(refresh(&mut s, &p1.refresh).is_ok());
        assert_eq!(s.stats.token_reuse_detected, 1);
    }

    #[test]
    fn server_side_revocation_is_not_reuse() {
        let mut s = State::new(3600, 3600);
        let a1 = sign_in(&mut s);
        let b1 = sign_in(&mut s);
        s.revoke_refresh();
        assert_eq!(refresh(&mut s, &a1.refresh).err(), Some("refresh token revoked"));
        assert_eq!(refresh(&mut s, &a1.refresh).err(), Some("refresh token revoked"));
        assert_eq!(refresh(&mut s, "CANARY-rt-unknown").err(), Some("unknown refresh token"));
        assert_eq!(s.stats.token_reuse_detected, 0);
        assert!(s.authenticate_api(&api_headers(&b1.access)).is_ok(), "refresh revocation leaves access tokens alone");
        s.revoke_access();
        assert!(s.authenticate_api(&api_headers(&b1.access)).is_err());
        assert_eq!(s.stats.api_rejects_revoked, 1);
    }

    #[test]
    fn fault_lists_and_reset() {
        let mut s = State::new(3600, 3600);
        let bad = json!({ "faults": [{ "kind": "echo" }, { "kind": "nope" }] });
        assert!(s.set_faults(&bad).is_err());
        assert!(s.next_fault().is_none(), "a wrong list queues nothing");
        let v = json!({ "faults": [{ "kind": "big", "count": 2 }, { "kind": "delay_refresh", "ms": 5 }, { "kind": "echo_cut" }] });
        s.set_faults(&v).unwrap();
        assert!(matches!(s.next_fault(), Some(Fault::Big { size: TOKEN_BIG_SIZE })));
        assert!(matches!(s.next_fault(), Some(Fault::Big { size: TOKEN_BIG_SIZE })));
        assert!(matches!(s.next_fault(), Some(Fault::EchoCut)));
        assert!(s.next_fault().is_none());
        assert_eq!(s.take_refresh_delay(), Some(5));
        assert_eq!(s.take_refresh_delay(), None);

        s.set_api_faults(&json!({ "faults": [{ "kind": "big403", "size": 10 }, { "kind": "echo403" }] })).unwrap();
        assert!(matches!(s.next_api_fault(), Some(ApiFault::Big403 { size: 10 })));
        s.set_gql_faults(&json!({ "faults": [{ "kind": "dup_data" }, { "kind": "big" }] })).unwrap();
        assert!(s.set_gql_faults(&json!({ "faults": [{ "kind": "echo403" }] })).is_err());
        s.set_faults(&json!({ "faults": [{ "kind": "delay_refresh" }, { "kind": "html" }] })).unwrap();
        s.stats.token_reuse_detected = 1;
        s.stats.token_invalid_grant = 1;
        s.stats.api_rejects_revoked = 1;
        let st = s.stats_json();
        assert_eq!((st["apiFaultsQueued"].as_u64(), st["graphqlFaultsQueued"].as_u64(), st["delayRefreshQueued"].as_bool()), (Some(1), Some(2), Some(true)));
        s.reset();
        let st = s.stats_json();
        assert_eq!(st["token"]["reuseDetected"], 0);
        assert_eq!(st["token"]["invalidGrant"], 0);
        assert_eq!(st["api"]["rejectsRevoked"], 0);
        assert!(s.next_fault().is_none() && s.next_api_fault().is_none() && s.next_gql_fault().is_none() && s.take_refresh_delay().is_none());
    }
}
