//! The token broker's wire format: what an isolate's client sends to the `TokenBroker` Durable
//! Object and what comes back, and the access-token record the object keeps in its storage.
//!
//! With a broker, an isolate never refreshes by itself: it asks the one object for its credential
//! (named by the store key, never by a secret), which refreshes or mints single-flight, saves the
//! rotated refresh token before answering, and keeps its current access token in storage so a
//! restarted object hands it out again instead of asking the identity server.

use crate::error::{AuthError, ErrorCode};
use crate::http::push_num;
use crate::json::{self, write_str, Value};
use crate::secret::{Redactor, Secret};
use crate::token::Token;
use alloc::string::String;

/// A field of the lease request's `options` (owned: the request is built while the client is
/// borrowed and sent after the borrow ends).
pub enum Field {
    Str(String),
    Secret(Secret),
    Num(f64),
}

/// The broker's own `timeoutMs`, a little inside the isolate's, so an isolate hears the broker's
/// real error (the identity server is slow, say) rather than its own timeout when one grant fails.
/// A refresh that times out followed by the password fallback takes the object up to twice that:
/// the isolate then answers `timeout` while the object finishes, and the next lease gets its token.
pub fn broker_timeout_ms(timeout_ms: f64) -> f64 {
    (timeout_ms - (timeout_ms / 5.0).min(1000.0)).max(100.0)
}

/// A generation number from JS (a whole number in `u32`), or `None`.
pub fn generation(v: f64) -> Option<u32> {
    ((0.0..=f64::from(u32::MAX)).contains(&v) && f64::from(v as u32) == v).then_some(v as u32)
}

/// One token handed out by the broker: the token as the isolate caches it and the broker's
/// generation for it (sent back as `stale` to drop that token once, for every isolate).
pub fn lease_token(
    access: Option<String>,
    expires_in_ms: Option<f64>,
    lifetime_ms: Option<f64>,
    generation: Option<f64>,
    now_ms: f64,
) -> Result<(Token, u32), AuthError> {
    let bad = || AuthError::new(ErrorCode::BadResponse, "the token broker answered with something that is not a token");
    let access = access.filter(|a| crate::token::header_safe(a)).ok_or_else(bad)?;
    let ok = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
    let (left, lifetime) = ok(expires_in_ms).zip(ok(lifetime_ms)).ok_or_else(bad)?;
    let generation = generation.and_then(self::generation).ok_or_else(bad)?;
    let token = Token { access: Secret::new(access), refresh: None, expires_at_ms: now_ms + left, lifetime_ms: lifetime.max(left), expiry_assumed: false };
    Ok((token, generation))
}

/// An error the broker returned as data (errors thrown across Durable Object RPC lose their
/// fields), rebuilt as the typed error; its text goes through the caller's redaction set too.
pub fn lease_error(code: Option<String>, message: Option<String>, status: Option<f64>, retry_after: Option<f64>, redactor: &Redactor) -> AuthError {
    let code = code.as_deref().and_then(ErrorCode::parse).unwrap_or(ErrorCode::ServerError);
    let mut e = AuthError::new(code, redactor.clean(message.as_deref().unwrap_or("the token broker failed"), 500));
    e.status = status.filter(|s| (100.0..600.0).contains(s)).map(|s| s as u16);
    e.retry_after = retry_after.filter(|s| (0.0..=86400.0).contains(s)).map(|s| s as u32);
    e
}

/// The broker could not be asked or did not answer (`kind` from the bindings: "timeout", else
/// the object threw or is not a `TokenBroker`).
pub fn lease_failed(kind: &str) -> AuthError {
    match kind {
        "timeout" => AuthError::new(ErrorCode::Timeout, "the token broker did not answer within timeoutMs"),
        "invalid" => AuthError::config("broker", "must be a Durable Object namespace bound to the `TokenBroker` class"),
        _ => AuthError::new(ErrorCode::ServerError, "the token broker failed (the Durable Object threw or was reset)"),
    }
}

/// Where the broker keeps its current access token, beside the refresh token under `store_key`.
pub fn access_key(store_key: &str) -> String {
    crate::http::cat(store_key, "#access")
}

/// Whose the stored access token is: a digest of the client secret that obtained it. A client
/// made from a lease with another secret (anyone holding the Durable Object binding can send
/// one) does not get the stored token: it must get its own, which the identity server checks.
/// The secret is random, so its digest in storage says nothing of it.
pub fn owner(client_secret: &Secret) -> String {
    let mut input = String::from("qauth-broker-access|");
    input.push_str(client_secret.expose());
    crate::pkce::base64url(&crate::sha256::sha256(input.as_bytes()))
}

/// The stored access-token record:
/// `{"t":token,"e":expiresAtMs,"l":lifetimeMs,"g":generation,"o":owner}`.
pub fn encode_access(t: &Token, generation: u32, owner: &str) -> String {
    let mut s = String::from("{\"t\":");
    write_str(&mut s, t.access.expose());
    for (k, v) in [("e", t.expires_at_ms), ("l", t.lifetime_ms), ("g", f64::from(generation))] {
        s.push_str(",\"");
        s.push_str(k);
        s.push_str("\":");
        push_u53(&mut s, v);
    }
    s.push_str(",\"o\":");
    write_str(&mut s, owner);
    s.push('}');
    s
}

/// Reads a record written by `encode_access` for `owner`; anything else is ignored (the broker
/// refreshes).
pub fn decode_access(text: &str, owner: &str) -> Option<(Token, u32)> {
    let v = json::parse(text)?;
    if v.get_str("o")? != owner {
        return None;
    }
    let num = |k: &str| match v.get(k) {
        Some(Value::Num(n)) if n.is_finite() && *n >= 0.0 => Some(*n),
        _ => None,
    };
    let g = num("g").filter(|g| *g <= f64::from(u32::MAX))? as u32;
    let token = Token {
        access: Secret::new(v.get_str("t").filter(|t| !t.is_empty())?),
        refresh: None,
        expires_at_ms: num("e")?,
        lifetime_ms: num("l").filter(|l| *l > 0.0)?,
        expiry_assumed: false,
    };
    Some((token, g))
}

/// A non-negative whole number below 2^53 in decimal (timestamps in ms), without `core::fmt`.
fn push_u53(out: &mut String, v: f64) {
    // `as` truncates toward zero (core has no `f64::trunc` without std).
    let v = v.clamp(0.0, 9_007_199_254_740_991.0) as u64 as f64;
    let high = (v / 1e9) as u64 as f64;
    let low = (v - high * 1e9) as u32;
    if high > 0.0 {
        push_num(out, high as u32);
        let mut digits = String::new();
        push_num(&mut digits, low);
        for _ in digits.len()..9 {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        push_num(out, low);
    }
}

/// An isolate's bookkeeping of the broker's token generations: which one to report stale with
/// the next lease, so the broker drops that token once for every isolate (and never a newer one).
#[derive(Debug, Default)]
pub struct Generations {
    /// The broker's generation of the token this client holds.
    current: Option<u32>,
    /// A dropped token's generation, not yet reported.
    stale: Option<u32>,
}

impl Generations {
    /// A lease installed the broker's token of `generation`.
    pub fn leased(&mut self, generation: u32) {
        self.current = Some(generation);
    }

    /// The held token was dropped (`invalidate()`, a 401): its generation is reported next.
    pub fn dropped(&mut self) {
        self.stale = self.current.take().or(self.stale);
    }

    /// The report for the next lease; `failed` gives it back if that lease fails.
    pub fn take_stale(&mut self) -> Option<u32> {
        self.stale.take()
    }

    /// The lease that carried `stale` failed: report it with the next one (unless a token dropped
    /// meanwhile is already to be reported).
    pub fn failed(&mut self, stale: Option<u32>) {
        self.stale = self.stale.or(stale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_record_round_trips() {
        let t = Token { access: Secret::new("at\"x"), refresh: None, expires_at_ms: 1_764_000_000_123.0, lifetime_ms: 3_600_000.0, expiry_assumed: false };
        let me = owner(&Secret::new("CANARY-cs-1"));
        assert_eq!(me.len(), 43);
        let s = encode_access(&t, 7, &me);
        assert_eq!(s, format!(r#"{{"t":"at\"x","e":1764000000123,"l":3600000,"g":7,"o":"{me}"}}"#));
        assert!(!s.contains("CANARY"));
        let (back, g) = decode_access(&s, &me).unwrap();
        assert_eq!((back, g), (t, 7));
        // Another client secret (a lease from someone holding the binding), or a record from
        // before owners were kept: not handed out.
        assert!(decode_access(&s, &owner(&Secret::new("CANARY-cs-2"))).is_none());
        assert!(decode_access(r#"{"t":"a","e":1,"l":1,"g":1}"#, &me).is_none());
        for bad in ["", "{}", r#"{"t":"","e":1,"l":1,"g":1,"o":"x"}"#, r#"{"t":"a","e":1,"l":0,"g":1,"o":"x"}"#, r#"{"t":"a","e":1,"l":1,"g":-1,"o":"x"}"#] {
            assert!(decode_access(bad, "x").is_none(), "{bad}");
        }
        assert!(decode_access(r#"{"t":"a","e":1,"l":1,"g":1,"o":"x"}"#, "x").is_some());
    }

    #[test]
    fn lease_answers_are_checked() {
        let (t, g) = lease_token(Some("a".into()), Some(1000.0), Some(2000.0), Some(3.0), 10.0).unwrap();
        assert_eq!((t.expires_at_ms, t.lifetime_ms, g), (1010.0, 2000.0, 3));
        for (a, e, l, g) in
            [(None, Some(1.0), Some(1.0), Some(1.0)), (Some("a"), Some(-1.0), Some(1.0), Some(1.0)), (Some("a"), Some(1.0), Some(1.0), Some(1.5))]
        {
            assert_eq!(lease_token(a.map(String::from), e, l, g, 0.0).unwrap_err().code, ErrorCode::BadResponse);
        }
    }

    #[test]
    fn lease_errors_are_rebuilt_typed_and_redacted() {
        let r = Redactor::new(&[&Secret::new("CANARY-secret")]);
        let e = lease_error(Some("invalid_grant".into()), Some("echo CANARY-secret".into()), Some(400.0), None, &r);
        assert_eq!((e.code, e.status), (ErrorCode::InvalidGrant, Some(400)));
        assert!(!e.message.contains("CANARY"));
        assert_eq!(lease_error(Some("made_up".into()), None, None, None, &r).code, ErrorCode::ServerError);
        assert_eq!(lease_failed("timeout").code, ErrorCode::Timeout);
    }

    #[test]
    fn a_dropped_token_is_reported_once_and_a_failed_lease_keeps_the_report() {
        let mut g = Generations::default();
        g.dropped();
        assert_eq!(g.take_stale(), None, "nothing leased, nothing to report");
        g.leased(3);
        g.dropped();
        g.dropped();
        let s = g.take_stale();
        assert_eq!(s, Some(3));
        g.failed(s);
        assert_eq!(g.take_stale(), Some(3), "kept for the next lease");
        assert_eq!(g.take_stale(), None, "reported once");
        g.leased(4);
        assert_eq!(g.take_stale(), None, "a fresh lease is not stale");
        // A proactive lease is out (nothing to report) when a 401 drops the still-cached token;
        // that lease fails: the report made meanwhile is kept.
        let s = g.take_stale();
        g.dropped();
        g.failed(s);
        assert_eq!(g.take_stale(), Some(4));
    }
}
