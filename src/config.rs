//! Option validation shared by the providers: every bad option is an `invalid_config` error that
//! names the option, never a panic and never a silent default.

use crate::error::AuthError;

pub const DEFAULT_SKEW_S: f64 = 60.0;
pub const DEFAULT_TIMEOUT_MS: f64 = 10_000.0;

pub fn required(name: &str, v: Option<String>) -> Result<String, AuthError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(AuthError::config(name, "must not be empty")),
        None => Err(AuthError::config(name, "is required")),
    }
}

/// `Some("")` is treated as an error rather than as absent: an empty password is a mistake.
pub fn optional(name: &str, v: Option<String>) -> Result<Option<String>, AuthError> {
    v.map(|s| required(name, Some(s))).transpose()
}

/// Common timing options: `refreshSkewSeconds` (0..=3600) and `timeoutMs` (100..=120000).
pub fn timing(skew_s: Option<f64>, timeout_ms: Option<f64>) -> Result<(f64, f64), AuthError> {
    let skew = skew_s.unwrap_or(DEFAULT_SKEW_S);
    if !(0.0..=3600.0).contains(&skew) {
        return Err(AuthError::config("refreshSkewSeconds", "must be a number of seconds from 0 to 3600"));
    }
    let timeout = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(100.0..=120_000.0).contains(&timeout) {
        return Err(AuthError::config("timeoutMs", "must be a number of milliseconds from 100 to 120000"));
    }
    Ok((skew, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn required_and_optional() {
        assert_eq!(required("clientId", Some("x".into())).unwrap(), "x");
        assert!(required("clientId", None).unwrap_err().message.contains("clientId"));
        assert!(required("clientId", Some(" ".into())).is_err());
        assert_eq!(optional("password", None).unwrap(), None);
        assert!(optional("password", Some("".into())).is_err());
    }

    #[test]
    fn timing_bounds() {
        assert_eq!(timing(None, None).unwrap(), (60.0, 10_000.0));
        assert_eq!(timing(Some(-1.0), None).unwrap_err().code, ErrorCode::InvalidConfig);
        assert!(timing(None, Some(f64::NAN)).unwrap_err().message.contains("timeoutMs"));
    }
}
