//! Option validation shared by the providers: every bad option is an `invalid_config` error that
//! names the option, never a panic and never a silent default.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{AuthError, ErrorCode};

/// What the driver found under an option's name (`js::wire` reads it from the bytes the
/// package's `wire.js` wrote); what it means is decided here, once.
pub enum Seen {
    /// `undefined` or `null`: the option is not given.
    Missing,
    Str(String),
    Num(f64),
    /// A function.
    Func,
    /// An object, with the names of its methods.
    Object(Vec<String>),
    /// A value of another type.
    Other,
    /// Reading it threw (a getter, a revoked Proxy).
    Unreadable,
}

/// The argument itself is not a plain object (`what` names it): `code` is `invalid_config` for a
/// constructor's options, `invalid_request` for a method's argument.
pub fn not_an_object(what: &str, code: ErrorCode) -> AuthError {
    in_code(AuthError::config(what, "must be an object"), code)
}

/// A string option.
pub fn read_str(name: &str, seen: Seen, code: ErrorCode) -> Result<Option<String>, AuthError> {
    match seen {
        Seen::Missing => Ok(None),
        Seen::Str(s) => Ok(Some(s)),
        Seen::Unreadable => Err(in_code(AuthError::config(name, "could not be read"), code)),
        _ => Err(in_code(AuthError::config(name, "must be a string"), code)),
    }
}

/// A number option (finite).
pub fn read_num(name: &str, seen: Seen, code: ErrorCode) -> Result<Option<f64>, AuthError> {
    match seen {
        Seen::Missing => Ok(None),
        Seen::Num(n) if n.is_finite() => Ok(Some(n)),
        Seen::Unreadable => Err(in_code(AuthError::config(name, "could not be read"), code)),
        _ => Err(in_code(AuthError::config(name, "must be a finite number"), code)),
    }
}

fn in_code(mut e: AuthError, code: ErrorCode) -> AuthError {
    e.code = code;
    e
}

pub const DEFAULT_SKEW_S: f64 = 60.0;
pub const DEFAULT_TIMEOUT_MS: f64 = 10_000.0;

/// Nothing but white space (Unicode's: a value of only no-break spaces is as empty as one of
/// only spaces).
pub fn blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

pub fn required(name: &str, v: Option<String>) -> Result<String, AuthError> {
    match v {
        Some(s) if !blank(&s) => Ok(s),
        Some(_) => Err(AuthError::config(name, "must not be empty")),
        None => Err(AuthError::config(name, "is required")),
    }
}

/// `Some("")` is treated as an error rather than as absent: an empty password is a mistake.
pub fn optional(name: &str, v: Option<String>) -> Result<Option<String>, AuthError> {
    v.map(|s| required(name, Some(s))).transpose()
}

/// How long a caller waits for an acquisition before giving it up (the driver's watchdog): one
/// acquisition is at most a held token's save, a store read, a refresh, a second read, a refresh
/// of what it found, the password fallback, the store write and, inside the token broker, the
/// access token's save, each bounded by `timeoutMs` (a grant with its retries); eight of them and
/// a second more is past anything but a flight that will never end (in workerd, one whose request
/// was cancelled).
pub fn stall_ms(timeout_ms: f64) -> f64 {
    8.0 * timeout_ms + 1000.0
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

/// `name` is one of `known`, or an error naming it and the closest known name, so a typo
/// (`scopes`, `clientID`) is caught at construction instead of silently ignored.
/// With `code` for the error (see `not_an_object`).
pub fn known_option(name: &str, known: &[&str], what: &str, code: ErrorCode) -> Result<(), AuthError> {
    if known.contains(&name) {
        return Ok(());
    }
    let mut m = String::from("option `");
    m.push_str(name);
    m.push_str("` is not an option of ");
    m.push_str(what);
    if let Some(best) = known.iter().min_by_key(|k| distance(name, k)) {
        m.push_str("; did you mean `");
        m.push_str(best);
        m.push_str("`?");
    }
    Err(AuthError::new(code, m))
}

/// Levenshtein distance, ASCII case ignored, byte by byte: `known` is one of our option names
/// (ASCII, at most 32 bytes are compared), `written` what the caller wrote. One row of the
/// table on the stack, updated in place: `diag` is the cell up-left, `left` the new cell to the
/// left, the slot being overwritten holds the cell above. No indexing, so no panic path.
fn distance(written: &str, known: &str) -> usize {
    let known = known.as_bytes();
    let n = known.len().min(32);
    let mut row = [0usize; 33];
    for (j, slot) in row.iter_mut().enumerate() {
        *slot = j;
    }
    for (i, a) in written.bytes().enumerate() {
        let (mut diag, mut left) = (i, i + 1);
        let Some((first, rest)) = row.split_first_mut() else { break };
        *first = left;
        for (slot, b) in rest.iter_mut().zip(known.iter().take(n)) {
            let up = *slot;
            *slot = (diag + usize::from(!a.eq_ignore_ascii_case(b))).min(left + 1).min(up + 1);
            diag = up;
            left = *slot;
        }
    }
    row.get(n).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_options_name_the_closest() {
        let known = ["clientId", "scope", "storeKey"];
        assert!(known_option("scope", &known, "QflowAuth", ErrorCode::InvalidConfig).is_ok());
        let e = known_option("scopes", &known, "QflowAuth", ErrorCode::InvalidConfig).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.message.contains("`scopes`") && e.message.contains("did you mean `scope`"), "{}", e.message);
        assert!(known_option("clientID", &known, "x", ErrorCode::InvalidConfig).unwrap_err().message.contains("`clientId`"));
    }

    #[test]
    fn option_names_fit_the_distance_row() {
        // `distance` compares at most 32 bytes of a known name.
        for name in crate::qflow::OPTIONS.iter().chain(crate::qpien::OPTIONS).chain(crate::pkce::BEGIN_OPTIONS).chain(crate::pkce::COMPLETE_OPTIONS) {
            assert!(name.len() <= 32, "{name}");
        }
    }

    #[test]
    fn blank_values_are_refused_whatever_the_white_space() {
        for v in ["", " ", "\t\n", "\u{a0}", "\u{3000}\u{3000}", "\u{b}"] {
            assert!(required("clientId", Some(v.into())).is_err(), "{v:?}");
        }
    }

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
