//! `Secret`: a string that must never be printed.
//!
//! Client secrets, passwords, subscription keys and tokens all live in this newtype, so a stray
//! `{:?}` or `{}` prints `Secret(***)` instead of the value. The only way to read it is `expose()`,
//! which is easy to grep for.

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value, for the one place that sends it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl core::fmt::Display for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("***")
    }
}

/// Removes every occurrence of any secret from text that came from a server or a user callback
/// (an `error_description`, a GraphQL message), so echoed credentials never reach an error.
/// This is the one redaction point: every server-provided string passes through it.
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = String::from(text);
    for s in secrets {
        let v = s.expose();
        // Short values would redact ordinary words; real credentials are long.
        if v.len() >= 4 && out.contains(v) {
            out = out.replace(v, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("CANARY-secret-123");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "CANARY-secret-123");
    }

    #[test]
    fn redact_removes_every_secret() {
        let a = Secret::new("CANARY-a-111");
        let b = Secret::new("CANARY-b-222");
        let out = redact("bad CANARY-a-111 and CANARY-b-222 twice CANARY-a-111", &[&a, &b]);
        assert_eq!(out, "bad *** and *** twice ***");
        assert!(!out.contains("CANARY"));
    }
}
