//! What `onEvent` is told: one enum, written as a `V` record in one place (`js::server`) and
//! made a JS object by the driver.
//!
//! Events carry names, timings and codes, never a secret; the `.d.ts` is checked against
//! `Event::SHAPES` by `tests/types.rs`.

use crate::error::ErrorCode;
use alloc::vec;
use alloc::vec::Vec;

/// An event's `ms`: the time from `started` to `now`, never negative (a wall clock stepped back
/// mid-acquisition would make it so).
pub fn elapsed_ms(started: f64, now: f64) -> f64 {
    (now - started).max(0.0)
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A new token from a grant other than refresh (`grant`: `password`, `authorization_code`,
    /// `generateOAuthToken`, or `broker` for a lease).
    TokenAcquired { grant: &'static str, ms: f64, expires_in_s: f64 },
    /// A new token from the refresh grant.
    TokenRefreshed { ms: f64, expires_in_s: f64 },
    /// A rotated refresh token was saved (the store's `put` resolved).
    RefreshTokenRotated,
    /// A refresh failed and the password grant is used instead.
    FallbackToPassword,
    /// A token request is sent again after `delay_ms`.
    Retry { attempt: u32, delay_ms: f64, code: ErrorCode },
    /// The answer had no lifetime; the documented one (an hour) is assumed.
    ExpiryAssumed { expires_in_s: f64 },
}

/// A field value as JS gets it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(&'static str),
    Num(f64),
}

impl Event {
    /// Every event `type` with its field names (besides `type`), in the order they are set.
    pub const SHAPES: &'static [(&'static str, &'static [&'static str])] = &[
        ("token_acquired", &["grant", "ms", "expiresIn"]),
        ("token_refreshed", &["grant", "ms", "expiresIn"]),
        ("refresh_token_rotated", &[]),
        ("fallback_to_password", &[]),
        ("retry", &["attempt", "delayMs", "code"]),
        ("expiry_assumed", &["expiresIn"]),
    ];

    /// The event's `type` and its fields (named as in `SHAPES`).
    pub fn parts(&self) -> (&'static str, Vec<Value>) {
        use Value::{Num, Str};
        match self {
            Event::TokenAcquired { grant, ms, expires_in_s } => ("token_acquired", vec![Str(grant), Num(*ms), Num(*expires_in_s)]),
            Event::TokenRefreshed { ms, expires_in_s } => ("token_refreshed", vec![Str("refresh_token"), Num(*ms), Num(*expires_in_s)]),
            Event::RefreshTokenRotated => ("refresh_token_rotated", vec![]),
            Event::FallbackToPassword => ("fallback_to_password", vec![]),
            Event::Retry { attempt, delay_ms, code } => ("retry", vec![Num(f64::from(*attempt)), Num(*delay_ms), Str(code.as_str())]),
            Event::ExpiryAssumed { expires_in_s } => ("expiry_assumed", vec![Num(*expires_in_s)]),
        }
    }

    /// The field names of this event's type.
    pub fn names(kind: &str) -> &'static [&'static str] {
        Event::SHAPES.iter().find(|(k, _)| *k == kind).map_or(&[], |(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_declared_fields() {
        let all = [
            Event::TokenAcquired { grant: "password", ms: 1.0, expires_in_s: 3600.0 },
            Event::TokenRefreshed { ms: 1.0, expires_in_s: 3600.0 },
            Event::RefreshTokenRotated,
            Event::FallbackToPassword,
            Event::Retry { attempt: 1, delay_ms: 100.0, code: ErrorCode::Timeout },
            Event::ExpiryAssumed { expires_in_s: 3600.0 },
        ];
        assert_eq!(all.len(), Event::SHAPES.len());
        for e in all {
            let (kind, values) = e.parts();
            assert_eq!(values.len(), Event::names(kind).len(), "{kind}");
        }
        assert_eq!(Event::Retry { attempt: 2, delay_ms: 200.0, code: ErrorCode::Timeout }.parts().1[2], Value::Str("timeout"));
    }
}
