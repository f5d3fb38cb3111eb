//! Bounded retries for token requests: network errors, timeouts of one attempt, 5xx and 429.
//!
//! Never on 4xx answers other than 429 (a refused credential does not get better by asking again),
//! never past the caller's overall `timeoutMs` deadline, and at most `MAX_ATTEMPTS` sends.
//!
//! A request carrying a single-use credential (a refresh token, an authorization code) is resent
//! only when the answer proves the server did not take it: the connection was refused before
//! anything was sent, a 429, or a 503 with `Retry-After` (RFC 9110 §15.6.4: the server says it did
//! not process the request). After a timeout, a dropped connection or any other 5xx the credential
//! may have been consumed; sending it again would be a replay, which RFC 9700 §4.14.2 servers answer
//! by revoking the whole token family. That case goes back to the session (`qflow::Session`).

use crate::error::{AuthError, ErrorCode};

pub const MAX_ATTEMPTS: u32 = 4;
const BASE_DELAY_MS: f64 = 100.0;
const MAX_BACKOFF_MS: f64 = 2_000.0;
/// The least time a resent request gets: less, and the error so far is returned instead.
const MIN_ATTEMPT_MS: f64 = 250.0;
/// A `Retry-After` longer than this is not waited for: the error goes to the caller with it.
const MAX_RETRY_AFTER_MS: f64 = 10_000.0;

/// The delay before the next attempt after `attempts` failed ones, or `None` to give up now.
/// `remaining_ms` is what is left of the deadline.
pub fn delay_ms(attempts: u32, err: &AuthError, remaining_ms: f64, single_use: bool) -> Option<f64> {
    let retry =
        if single_use { err.unsent } else { matches!(err.code, ErrorCode::Network | ErrorCode::Timeout | ErrorCode::ServerError | ErrorCode::RateLimited) };
    if !retry || attempts >= MAX_ATTEMPTS {
        return None;
    }
    let delay = match err.retry_after {
        Some(s) => (s as f64 * 1000.0).max(BASE_DELAY_MS),
        None => (BASE_DELAY_MS * f64::from(1u32 << (attempts - 1).min(10))).min(MAX_BACKOFF_MS),
    };
    // Leave the next attempt time to run: one squeezed into the last few ms can only time out, and
    // its `timeout` would then hide the error that was worth reporting.
    (delay <= MAX_RETRY_AFTER_MS && delay + MIN_ATTEMPT_MS < remaining_ms).then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: ErrorCode) -> AuthError {
        AuthError::new(code, "x")
    }

    #[test]
    fn backs_off_exponentially_and_stops() {
        let e = err(ErrorCode::ServerError);
        assert_eq!(delay_ms(1, &e, 10_000.0, false), Some(100.0));
        assert_eq!(delay_ms(2, &e, 10_000.0, false), Some(200.0));
        assert_eq!(delay_ms(3, &e, 10_000.0, false), Some(400.0));
        assert_eq!(delay_ms(4, &e, 10_000.0, false), None);
    }

    #[test]
    fn never_retries_refusals() {
        for c in [ErrorCode::InvalidGrant, ErrorCode::InvalidClient, ErrorCode::BadResponse, ErrorCode::InvalidScope] {
            assert_eq!(delay_ms(1, &err(c), 10_000.0, false), None);
        }
    }

    #[test]
    fn single_use_requests_are_resent_only_when_provably_not_taken() {
        for code in [ErrorCode::Network, ErrorCode::Timeout, ErrorCode::ServerError, ErrorCode::BadResponse] {
            assert_eq!(delay_ms(1, &err(code), 10_000.0, true), None, "{code:?}");
        }
        let mut refused = err(ErrorCode::Network);
        refused.unsent = true;
        assert!(delay_ms(1, &refused, 10_000.0, true).is_some());
        let answer = |status: u16, retry_after: Option<&str>| {
            crate::http::HttpResponse { status, retry_after: retry_after.map(String::from), body: String::new() }.transient_error("x").unwrap()
        };
        assert!(delay_ms(1, &answer(429, None), 10_000.0, true).is_some());
        assert_eq!(delay_ms(1, &answer(503, None), 10_000.0, true), None, "503 without Retry-After may have been processed");
        assert_eq!(delay_ms(1, &answer(500, Some("1")), 10_000.0, true), None);
        assert_eq!(delay_ms(1, &answer(503, Some("1")), 10_000.0, true), Some(1000.0));
    }

    #[test]
    fn honours_retry_after_within_deadline() {
        let mut e = err(ErrorCode::RateLimited);
        e.retry_after = Some(1);
        assert_eq!(delay_ms(1, &e, 10_000.0, false), Some(1000.0));
        assert_eq!(delay_ms(1, &e, 900.0, false), None, "does not sleep past the deadline");
        assert_eq!(delay_ms(1, &e, 1200.0, false), None, "nor leave the next attempt too little time");
        assert_eq!(delay_ms(1, &e, 1300.0, false), Some(1000.0));
        e.retry_after = Some(120);
        assert_eq!(delay_ms(1, &e, 1e9, false), None, "a long Retry-After goes back to the caller");
    }
}
