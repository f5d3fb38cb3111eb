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
    Status { status: u16, retry_after: Option<u64> },
    Delay { ms: u64 },
    Html,
    Malformed,
    Truncated,
    Drop,
    NoExpiry,
}

struct Access {
    user: usize,
    expires: Instant,
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
    pub api_calls: u64,
    pub api_rejects: u64,
    pub api_rejects_expired: u64,
    pub events_created: u64,
    pub qpien_mints: u64,
    pub qpien_calls: u64,
    pub qpien_rejects: u64,
    pub faults_served: u64,
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
    /// refresh token → (user, used)
    refresh: HashMap<String, (usize, bool)>,
    codes: HashMap<String, Code>,
    used_codes: HashMap<String, ()>,
    qpien_tokens: HashMap<String, (Instant, Vec<String>)>,
    pub qpien_scopes: Vec<String>,
    pub gql_http_errors: bool,
    faults: VecDeque<Fault>,
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
            codes: HashMap::new(),
            used_codes: HashMap::new(),
            qpien_tokens: HashMap::new(),
            qpien_scopes: vec!["read".into()],
            gql_http_errors: false,
            faults: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn reset(&mut self) {
        self.stats = Stats::default();
        self.faults.clear();
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

    /// `{"faults":[{"kind":"status","status":503,"retryAfter":1,"count":2},{"kind":"delay","ms":500}, …]}`
    pub fn set_faults(&mut self, v: &Value) -> Result<(), String> {
        let list = v["faults"].as_array().ok_or("expected {\"faults\": [...]}")?;
        for f in list {
            let count = f["count"].as_u64().unwrap_or(1);
            let fault = match f["kind"].as_str().unwrap_or("") {
                "status" => Fault::Status { status: f["status"].as_u64().unwrap_or(500) as u16, retry_after: f["retryAfter"].as_u64() },
                "delay" => Fault::Delay { ms: f["ms"].as_u64().unwrap_or(1000) },
                "html" => Fault::Html,
                "malformed" => Fault::Malformed,
                "truncated" => Fault::Truncated,
                "drop" => Fault::Drop,
                "no_expiry" => Fault::NoExpiry,
                k => return Err(format!("unknown fault kind {k}")),
            };
            for _ in 0..count {
                self.faults.push_back(fault.clone());
            }
        }
        Ok(())
    }

    pub fn client_id_known(&self, id: &str) -> bool {
        id == CLIENT_ID
    }

    pub fn client_ok(&self, id: &str, secret: &str) -> bool {
        id == CLIENT_ID && secret == CLIENT_SECRET
    }

    fn issue(&mut self, user: usize) -> TokenGrant {
        let access = random("CANARY-at-");
        let refresh = random("CANARY-rt-");
        self.access.insert(access.clone(), Access { user, expires: Instant::now() + Duration::from_secs(self.ttl), revoked: false });
        self.refresh.insert(refresh.clone(), (user, false));
        TokenGrant { access, refresh, ttl: self.ttl }
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
            Some(u) => Ok(self.issue(u)),
            None => Err(("invalid_grant", "invalid username or password")),
        }
    }

    /// Single use: a used refresh token answers invalid_grant; every refresh returns a new one.
    pub fn refresh_grant(&mut self, token: &str) -> Result<TokenGrant, (&'static str, &'static str)> {
        match self.refresh.get_mut(token) {
            Some((user, used)) if !*used => {
                *used = true;
                let user = *user;
                Ok(self.issue(user))
            }
            Some(_) => Err(("invalid_grant", "refresh token already used")),
            None => Err(("invalid_grant", "unknown refresh token")),
        }
    }

    pub fn issue_code(&mut self, client_id: &str, username: &str, password: &str, redirect_uri: &str, challenge: &str) -> Option<String> {
        let user = self.find_user(username, password)?;
        let code = random("code-");
        self.codes.insert(code.clone(), Code { user, client_id: client_id.into(), redirect_uri: redirect_uri.into(), challenge: challenge.into(), issued: Instant::now() });
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
        Ok(self.issue(c.user))
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
    pub fn revoke_refresh(&mut self) {
        self.refresh.values_mut().for_each(|r| r.1 = true);
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
                       "total": s.token_password + s.token_refresh + s.token_code + s.token_other },
            "api": { "calls": s.api_calls, "rejects": s.api_rejects, "rejectsExpired": s.api_rejects_expired, "eventsCreated": s.events_created },
            "qpien": { "mints": s.qpien_mints, "calls": s.qpien_calls, "rejects": s.qpien_rejects },
            "faultsServed": s.faults_served,
            "faultsQueued": self.faults.len(),
        })
    }
}
