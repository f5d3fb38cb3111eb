//! `Secret`: a string that must never be printed; `Redactor`: the one place server text is
//! cleaned of every credential a client holds before it can reach an error.
//!
//! Client secrets, passwords, subscription keys and tokens all live in `Secret`, so a stray
//! `{:?}` or `{}` prints `Secret(***)` instead of the value. The only way to read it is `expose()`,
//! which is easy to grep for.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::http::encode_component;
use crate::json::write_str;

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

/// Drops the secret at `i` (`retain`, not `remove`: no panic path in the wasm). One body for
/// every list of secrets (the redaction set, a session's spent tokens).
pub fn drop_at(v: &mut Vec<Secret>, i: usize) {
    let mut n = 0;
    v.retain(|_| {
        let keep = n != i;
        n += 1;
        keep
    });
}

/// Drops every copy of `s`.
pub fn forget(v: &mut Vec<Secret>, s: &Secret) {
    v.retain(|x| x != s);
}

/// Values shorter than this are not searched for: they would redact ordinary words, and no
/// credential is that short (config refuses shorter secrets where it can).
pub const MIN_REDACT_LEN: usize = 4;

/// How many live credentials (tokens, codes, verifiers) a client remembers for redaction besides
/// its configured secrets. Old ones are dead after rotation, but a server may still echo the
/// previous refresh token; 24 covers several rotations of every kind without growing forever.
const LIVE_CAP: usize = 24;

/// What replaces a credential; text that still holds one after masking is dropped whole.
const MASK: &str = "***";
const DROPPED: &str = "[redacted]";

/// The redaction set of one client: its configured secrets plus every live credential it has
/// read, received or sent (refresh and access tokens, codes, verifiers), each also in the forms a
/// server echoes it back in (form-encoded, JSON-escaped).
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// The configured secrets' forms first (`fixed` of them), then the live ones, oldest first:
    /// one list, so every search is one plain loop.
    all: Vec<Secret>,
    fixed: usize,
}

impl Redactor {
    pub fn new(configured: &[&Secret]) -> Self {
        let mut r = Redactor::default();
        for s in configured {
            for v in variants(s.expose()) {
                r.all.push(Secret::new(v));
            }
        }
        r.fixed = r.all.len();
        r
    }

    /// Remembers a live credential (and its encoded forms); the oldest falls out past `LIVE_CAP`.
    pub fn add(&mut self, s: &Secret) {
        for v in variants(s.expose()) {
            if !self.all.iter().any(|k| k.expose() == v) {
                if self.all.len().saturating_sub(self.fixed) >= LIVE_CAP {
                    // The oldest live one goes.
                    drop_at(&mut self.all, self.fixed);
                }
                self.all.push(Secret::new(v));
            }
        }
    }

    fn all(&self) -> impl Iterator<Item = &str> + Clone {
        self.all.iter().map(Secret::expose)
    }

    /// `text` with every credential masked, then cut to `max_chars` characters. Masking happens
    /// on the whole text first, so a credential straddling the cut cannot survive in part.
    pub fn clean(&self, text: &str, max_chars: usize) -> String {
        let masked = mask(text, self.all());
        let cut = masked.char_indices().nth(max_chars).map_or(masked.len(), |(i, _)| i);
        let out = String::from(masked.get(..cut).unwrap_or_default());
        // The ellipsis goes on only if it cannot complete a credential that ends in one (a prefix
        // of text with no credential in it has none either).
        if out.len() < masked.len() {
            let mut with = out.clone();
            with.push('…');
            if !self.all().any(|s| s.len() >= MIN_REDACT_LEN && find(&with, s).is_some()) {
                return with;
            }
        }
        out
    }
}

/// Where `needle` first starts in `hay`. A plain byte scan: the texts are short server messages,
/// and it is a fraction of the size of `str::find`'s two-way searcher in the wasm.
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return Some(0);
    }
    h.windows(n.len()).position(|w| w == n)
}

/// The forms a credential is echoed back in: as is, form-encoded, JSON-escaped.
fn variants(v: &str) -> Vec<String> {
    if v.len() < MIN_REDACT_LEN {
        return Vec::new();
    }
    let mut out = vec![v.to_string()];
    // Most tokens (JWTs, hex, base64url) are all unreserved: every form is the value itself.
    if v.as_bytes().iter().all(crate::http::unreserved) {
        return out;
    }
    let mut form = String::new();
    encode_component(&mut form, v, true);
    let mut json = String::new();
    write_str(&mut json, v);
    let json = json.get(1..json.len() - 1).unwrap_or_default().to_string();
    for w in [form, json] {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Masks every occurrence (overlapping ones included) of every secret in one pass over the
/// original text, so a replacement can never be re-scanned into a new match. If the result still
/// contains a secret (one made of the mask's own characters around it), nothing of it is kept.
pub fn mask<'a>(text: &str, secrets: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut covered = vec![false; text.len()];
    let mut any = false;
    for s in secrets.clone().filter(|s| s.len() >= MIN_REDACT_LEN) {
        let mut from = 0;
        while let Some(i) = text.get(from..).and_then(|t| find(t, s)) {
            let at = from + i;
            covered.iter_mut().skip(at).take(s.len()).for_each(|c| *c = true);
            any = true;
            // Next search one character on, so overlapping occurrences are found too.
            from = at + text.get(at..).and_then(|t| t.chars().next()).map_or(1, char::len_utf8);
        }
    }
    if !any {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for (i, c) in text.char_indices() {
        if covered.get(i) == Some(&true) {
            if !in_run {
                out.push_str(MASK);
            }
            in_run = true;
        } else {
            in_run = false;
            out.push(c);
        }
    }
    if secrets.filter(|s| s.len() >= MIN_REDACT_LEN).any(|s| find(&out, s).is_some()) {
        return DROPPED.to_string();
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
        let r = Redactor::new(&[&a, &b]);
        let out = r.clean("bad CANARY-a-111 and CANARY-b-222 twice CANARY-a-111", 1000);
        assert_eq!(out, "bad *** and *** twice ***");
    }

    #[test]
    fn live_credentials_and_their_encodings_are_redacted() {
        let mut r = Redactor::new(&[]);
        r.add(&Secret::new("rt/with+odd\"chars"));
        let out = r.clean("echo refresh_token=rt%2Fwith%2Bodd%22chars and {\"rt\":\"rt/with+odd\\\"chars\"}", 1000);
        assert!(!out.contains("rt/with") && !out.contains("rt%2Fwith"), "{out}");
    }

    #[test]
    fn secret_straddling_the_cut_is_gone_entirely() {
        let s = Secret::new("CANARY-client-secret");
        let r = Redactor::new(&[&s]);
        let text = format!("{}{}", "x".repeat(290), s.expose());
        let out = r.clean(&text, 300);
        assert!(!out.contains("CANARY"), "{out}");
        assert!(out.starts_with(&"x".repeat(290)));
    }

    #[test]
    fn star_secrets_are_not_recreated() {
        for secret in ["*xyz*", "**xx", "x***", "****"] {
            let r = Redactor::new(&[&Secret::new(secret)]);
            for text in [format!("a{secret}{secret}b"), format!("**{secret}**"), format!("*{secret}x"), secret.repeat(3)] {
                let out = r.clean(&text, 1000);
                assert!(!out.contains(secret), "{secret:?} in {text:?} -> {out:?}");
            }
        }
    }

    #[test]
    fn overlapping_occurrences_are_all_masked() {
        let r = Redactor::new(&[&Secret::new("abab")]);
        assert_eq!(r.clean("xababab y", 100), "x*** y");
    }

    #[test]
    fn live_set_is_bounded() {
        let mut r = Redactor::new(&[&Secret::new("configured-secret")]);
        for i in 0..100 {
            r.add(&Secret::new(format!("token-{i:04}")));
        }
        assert!(r.all.len() - r.fixed <= LIVE_CAP);
        assert_eq!(r.clean("token-0099", 100), "***");
        // The oldest live one went, never a configured one.
        assert_eq!(r.clean("token-0000", 100), "token-0000");
        assert_eq!(r.clean("configured-secret", 100), "***");
    }
}
