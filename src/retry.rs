//! Bounded retries for token requests: network errors, timeouts of one attempt, 5xx and 429.
//!
//! Never on 4xx answers other than 429 (a refused credential does not get better by asking again),
//! never past the caller's overall `timeoutMs` deadline, and at most `MAX_ATTEMPTS` sends.

use crate::error::{AuthError, ErrorCode};

pub const MAX_ATTEMPTS: u32 = 4;
const BASE_DELAY_MS: f64 = 100.0;
const MAX_BACKOFF_MS: f64 = 2_000.0;
/// A `Retry-After` longer than this is not waited for: the error goes to the caller with it.
const MAX_RETRY_AFTER_MS: f64 = 10_000.0;

/// The delay before the next attempt after `attempts` failed ones, or `None` to give up now.
/// `remaining_ms` is what is left of the deadline.
pub fn delay_ms(attempts: u32, err: &AuthError, remaining_ms: f64) -> Option<f64> {
    let retry = matches!(err.code, ErrorCode::Network | ErrorCode::Timeout | ErrorCode::ServerError | ErrorCode::RateLimited);
    if !retry || attempts >= MAX_ATTEMPTS {
        return None;
    }
    let delay = match err.retry_after {
        Some(s) => (s as f64 * 1000.0).max(BASE_DELAY_MS),
        None => (BASE_DELAY_MS * f64::from(1u32 << (attempts - 1).min(10))).min(MAX_BACKOFF_MS),
    };
    // Leave the next attempt some time to run, or it can only time out.
    (delay <= MAX_RETRY_AFTER_MS && delay + 50.0 < remaining_ms).then_some(delay)
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
        assert_eq!(delay_ms(1, &e, 10_000.0), Some(100.0));
        assert_eq!(delay_ms(2, &e, 10_000.0), Some(200.0));
        assert_eq!(delay_ms(3, &e, 10_000.0), Some(400.0));
        assert_eq!(delay_ms(4, &e, 10_000.0), None);
    }

    #[test]
    fn never_retries_refusals() {
        for c in [ErrorCode::InvalidGrant, ErrorCode::InvalidClient, ErrorCode::BadResponse, ErrorCode::InvalidScope] {
            assert_eq!(delay_ms(1, &err(c), 10_000.0), None);
        }
    }

    #[test]
    fn honours_retry_after_within_deadline() {
        let mut e = err(ErrorCode::RateLimited);
        e.retry_after = Some(1);
        assert_eq!(delay_ms(1, &e, 10_000.0), Some(1000.0));
        assert_eq!(delay_ms(1, &e, 900.0), None, "does not sleep past the deadline");
        e.retry_after = Some(120);
        assert_eq!(delay_ms(1, &e, 1e9), None, "a long Retry-After goes back to the caller");
    }
}
