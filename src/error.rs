//! Typed errors: a stable `code`, a `retryable` flag and a `hint` with the next step.
//!
//! Every failure in the crate is an `AuthError`; the bindings turn it into the exported JS class.
//! Messages are built by this crate only from non-secret parts; text that came from a server is
//! passed through the client's `secret::Redactor` before it is stored here.

use alloc::string::String;
use alloc::vec::Vec;

/// Defines `ErrorCode`, its JS strings and the list of all codes from one table.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $code:ident => $name:literal,)*) => {
        /// Stable error codes: the JS `AuthError.code` strings are part of the public contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$doc])* $code,)*
        }

        impl ErrorCode {
            /// Every code, for reading one back by name (a broker's answer) and for checks of the `.d.ts`.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $name,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidConfig => "invalid_config",
    InvalidRequest => "invalid_request",
    InvalidClient => "invalid_client",
    InvalidGrant => "invalid_grant",
    InvalidScope => "invalid_scope",
    UnauthorizedClient => "unauthorized_client",
    UnsupportedGrantType => "unsupported_grant_type",
    Unauthorized => "unauthorized",
    CommsApiNotEnabled => "comms_api_not_enabled",
    TrustRequired => "trust_required",
    InsufficientScopes => "insufficient_scopes",
    GraphqlError => "graphql_error",
    RateLimited => "rate_limited",
    ServerError => "server_error",
    Network => "network",
    Timeout => "timeout",
    BadResponse => "bad_response",
    StoreFailed => "store_failed",
    StateMismatch => "state_mismatch",
    AccessDenied => "access_denied",
    /// An `error=` code from an authorization callback that is none of the above.
    AuthorizationError => "authorization_error",
}

impl ErrorCode {
    /// Whether trying the same thing again later can succeed.
    pub fn retryable(self) -> bool {
        use ErrorCode::*;
        matches!(self, RateLimited | ServerError | Network | Timeout | StoreFailed)
    }

    /// The next step, in words. Never contains a value, only what to do.
    pub fn hint(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidConfig => "Fix the named option and construct the client again.",
            InvalidRequest => "Check the call's arguments: when qauth refuses them nothing is sent; when the server does, the message says so.",
            InvalidClient => "Check the client ID and client secret (Qpien: the API key in the dashboard).",
            InvalidGrant => "The refresh token or password was refused: sign in again (password or authorization code).",
            InvalidScope => "Ask for scopes the client is allowed, e.g. the default `qflowapi openid offline_access`.",
            UnauthorizedClient => "This client is not allowed to use this grant; check its settings with the provider.",
            UnsupportedGrantType => "The identity server does not accept this grant for this client.",
            Unauthorized => "The API refused a fresh token: check the credentials (for Qflow, the subscription key) and the account's access.",
            CommsApiNotEnabled => "This account is not on the Comms API allow-list: request access through Qflow support. Retrying will not help.",
            TrustRequired => "Sending needs a verified account: finish Qflow's verification (KYC). Retrying will not help.",
            InsufficientScopes => "Give the API key the missing scope in the Qpien dashboard; a new token is minted on the next call.",
            GraphqlError => "The GraphQL server reported errors for this operation; see `messages`.",
            RateLimited => "Too many requests: wait `retryAfter` seconds and try again.",
            ServerError => "The server failed; try again later.",
            Network => "The server could not be reached; check the URL and the network, then try again.",
            Timeout => "No answer within `timeoutMs`; try again, or raise `timeoutMs`.",
            BadResponse => "The server answered with something that is not a valid response; check the URL points at the right service.",
            StoreFailed => "The store's get/put failed; the token is kept in memory and the save is retried on the next call.",
            StateMismatch => "The callback's `state` is not the one this browser sent: start sign-in again.",
            AccessDenied => "The user declined to sign in; offer to start sign-in again.",
            AuthorizationError => "The identity server refused the authorization request; see the message and start sign-in again.",
        }
    }

    /// The code named `s` (`as_str` backwards).
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// Maps an RFC 6749 §5.2 `error` value (or an authorization callback's) to a code.
    pub fn from_oauth(error: &str) -> ErrorCode {
        use ErrorCode::*;
        match error {
            "invalid_request" => InvalidRequest,
            "invalid_client" => InvalidClient,
            "invalid_grant" => InvalidGrant,
            "invalid_scope" => InvalidScope,
            "unauthorized_client" => UnauthorizedClient,
            "unsupported_grant_type" => UnsupportedGrantType,
            "access_denied" => AccessDenied,
            "temporarily_unavailable" => ServerError,
            "server_error" => ServerError,
            _ => AuthorizationError,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthError {
    pub code: ErrorCode,
    pub message: String,
    pub status: Option<u16>,
    /// Seconds, from a `Retry-After` header.
    pub retry_after: Option<u32>,
    /// Extra server messages (GraphQL `errors[].message`), already redacted.
    pub messages: Vec<String>,
    /// The request provably never reached the server (connection refused): a single-use
    /// credential in it was not consumed and may be sent again. Not part of the JS error.
    pub unsent: bool,
}

impl AuthError {
    #[inline(never)]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AuthError { code, message: message.into(), status: None, retry_after: None, messages: Vec::new(), unsent: false }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    #[inline(never)]
    pub fn config(option: &str, problem: &str) -> Self {
        let mut m = String::from("option `");
        m.push_str(option);
        m.push_str("` ");
        m.push_str(problem);
        AuthError::new(ErrorCode::InvalidConfig, m)
    }

    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_codes_map() {
        assert_eq!(ErrorCode::from_oauth("invalid_grant"), ErrorCode::InvalidGrant);
        assert_eq!(ErrorCode::from_oauth("invalid_client"), ErrorCode::InvalidClient);
        assert_eq!(ErrorCode::from_oauth("access_denied"), ErrorCode::AccessDenied);
        assert_eq!(ErrorCode::from_oauth("whatever"), ErrorCode::AuthorizationError);
    }

    #[test]
    fn names_round_trip() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn retryable_only_for_transient() {
        assert!(ErrorCode::Network.retryable());
        assert!(ErrorCode::RateLimited.retryable());
        assert!(!ErrorCode::InvalidGrant.retryable());
        assert!(!ErrorCode::CommsApiNotEnabled.retryable());
        assert!(!ErrorCode::BadResponse.retryable());
    }

    #[test]
    fn config_error_names_option() {
        let e = AuthError::config("clientId", "is required");
        assert_eq!(e.code.as_str(), "invalid_config");
        assert_eq!(e.message, "option `clientId` is required");
    }
}
