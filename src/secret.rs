//! `Secret`: a string that must never be printed; `Redactor`: the one place server text is
//! cleaned of every credential a client holds before it can reach an error.
//!
//! Client secrets, passwords, subscription keys and tokens all live in `Secret`, so a stray
//! `{:?}` or `{}` prints `Secret(***)` instead of the value. The only way to read it is `expose()`,
//! which is easy to grep for.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

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

/// What replaces a credential; text that still holds one after masking (and the step back at a
/// cut) is dropped whole, for this word when it fits.
const MASK: &str = "***";
const DROPPED: &str = "[redacted]";

/// The redaction set of one client: its configured secrets plus every live credential it has
/// read, received or sent (refresh and access tokens, codes, verifiers). Each is searched for in
/// every reading of a server's text (`READINGS`), so it is found however the server encoded it.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// The configured secrets first (`fixed` of them), then the live ones, oldest first: one
    /// list, so every search is one plain loop.
    all: Vec<Secret>,
    fixed: usize,
}

impl Redactor {
    pub fn new(configured: &[&Secret]) -> Self {
        let all: Vec<Secret> = configured.iter().filter(|s| s.expose().len() >= MIN_REDACT_LEN).map(|&s| s.clone()).collect();
        Redactor { fixed: all.len(), all }
    }

    /// Remembers a live credential; the oldest falls out past `LIVE_CAP`.
    pub fn add(&mut self, s: &Secret) {
        if s.expose().len() < MIN_REDACT_LEN || self.all.contains(s) {
            return;
        }
        if self.all.len().saturating_sub(self.fixed) >= LIVE_CAP {
            // The oldest live one goes.
            drop_at(&mut self.all, self.fixed);
        }
        self.all.push(s.clone());
    }

    /// Whether `text` holds a credential in any reading (as is, percent-encoded, JSON-escaped);
    /// also when it is too costly to tell, so a caller refusing such a text errs on the safe side.
    pub fn contains(&self, text: &str) -> bool {
        holds(text, self.all(), &mut { BUDGET }) != Some(false)
    }

    fn all(&self) -> impl Iterator<Item = &str> + Clone {
        self.all.iter().map(Secret::expose)
    }

    /// `text` with every credential masked, then cut to `max_chars` characters (and `…` when
    /// there was more). A credential straddling the cut is masked whole: what is kept is settled
    /// before it is cut.
    pub fn clean(&self, text: &str, max_chars: usize) -> String {
        // One budget for masking and every check of what is kept.
        let mut budget = BUDGET;
        if let Some(masked) = mask(text, self.all(), max_chars.saturating_add(1), &mut budget) {
            let cut = masked.char_indices().nth(max_chars).map_or(masked.len(), |(i, _)| i);
            let mut out = String::from(masked.get(..cut).unwrap_or_default());
            if cut == masked.len() {
                // Nothing cut: kept whole, unless the mask's own characters around a credential
                // made of them spell it (then dropped whole).
                if holds(&out, self.all(), &mut budget) == Some(false) {
                    return out;
                }
            } else {
                // Cut: the ellipsis can complete a credential that ends in it, and a cut inside an
                // escape (`%4`, `\u00`) can leave a `%` or `\` that ends one in some reading. Step
                // back past the longest escape (12 characters); the ellipsis goes on if it can.
                for _ in 0..13 {
                    let mut with = out.clone();
                    with.push('…');
                    if holds(&with, self.all(), &mut budget) == Some(false) {
                        return with;
                    }
                    if holds(&out, self.all(), &mut budget) == Some(false) {
                        return out;
                    }
                    out.pop();
                }
            }
        }
        // Nothing readable can be kept: the word that says so, if it fits and is no credential.
        let mut budget = BUDGET;
        match DROPPED.len() <= max_chars && holds(DROPPED, self.all(), &mut budget) == Some(false) {
            true => DROPPED.to_string(),
            false => String::new(),
        }
    }
}

/// The ways a server may have written what it echoes: as is; percent-encoded with `+` for a space
/// (a form body) and without (`encodeURIComponent`, a query); JSON-escaped (any escape, any hex
/// case: `\"`, `\/`, `\u00e9`, surrogate pairs). A credential echoed in one of them reads back
/// as itself when the text is read that way from where the echo starts.
const READINGS: usize = 4;

/// The unit of `text` at byte `i` in reading `how` (an index into `READINGS`' list): the bytes it
/// stands for (written into `buf`, how many) and where it ends.
fn unit(text: &str, i: usize, how: usize, buf: &mut [u8; 4]) -> Option<(usize, usize)> {
    if let Some((c, end)) = (how == 3).then(|| crate::json::unescape(text, i)).flatten() {
        return Some((c.encode_utf8(buf).len(), end));
    }
    let rest = text.as_bytes().get(i..)?;
    let (b, n) = match how {
        1 | 2 => crate::http::percent_unit(rest, how == 1)?,
        _ => (*rest.first()?, 1),
    };
    buf[0] = b;
    Some((1, i + n))
}

/// How many units one `clean` (or `contains`) compares at most, reading credentials from the
/// positions whose first unit could start one; the scan for those positions is linear in the
/// text and not counted. Masking reads only as far as the kept characters need, so an ordinary
/// text takes a small part of it; a text built to match long prefixes of the credentials at every
/// position (a server choosing its own tokens can send one) is dropped whole when it runs out, in
/// bounded time. (The check of the word `[redacted]` itself has a budget of its own: ten chars.)
const BUDGET: usize = 1 << 18;

/// Reading `text` from byte `at` the way `how` says: where the bytes of `secret` end, if that is
/// what it says there. Each unit read spends one of `budget`.
fn read_from(text: &str, at: usize, how: usize, secret: &[u8], budget: &mut usize) -> Option<usize> {
    let mut want = secret.iter();
    let mut i = at;
    let mut buf = [0; 4];
    while !want.as_slice().is_empty() {
        *budget = budget.checked_sub(1)?;
        let (n, end) = unit(text, i, how, &mut buf)?;
        for b in buf.get(..n)? {
            if want.next() != Some(b) {
                return None;
            }
        }
        i = end;
    }
    Some(i)
}

/// The bytes the credentials start with, as a 256-bit set: the first byte read at a position
/// rules out most positions before any credential is compared.
fn firsts<'a>(secrets: impl Iterator<Item = &'a str>) -> [u64; 4] {
    let mut set = [0u64; 4];
    for b in secrets.filter_map(|s| s.as_bytes().first()) {
        if let Some(w) = set.get_mut(usize::from(b >> 6)) {
            *w |= 1 << (b & 63);
        }
    }
    set
}

/// Where the furthest credential that starts at byte `at` of `text`, in any reading, ends (`at`
/// when none does); `None` when `budget` runs out. Only char starts need asking: a credential
/// starts with an ASCII or a lead byte, and every reading reads a continuation byte as itself.
fn reach<'a>(text: &str, at: usize, secrets: impl Iterator<Item = &'a str> + Clone, firsts: &[u64; 4], budget: &mut usize) -> Option<usize> {
    let mut end = at;
    let mut buf = [0; 4];
    for how in 0..READINGS {
        let Some(_) = unit(text, at, how, &mut buf) else { continue };
        if firsts.get(usize::from(buf[0] >> 6)).map_or(true, |w| w >> (buf[0] & 63) & 1 == 0) {
            continue;
        }
        for s in secrets.clone() {
            if let Some(e) = read_from(text, at, how, s.as_bytes(), budget) {
                end = end.max(e);
            }
            if *budget == 0 {
                return None;
            }
        }
    }
    Some(end)
}

/// Whether `text` holds a credential in some reading (`None`: `budget` ran out first).
fn holds<'a>(text: &str, secrets: impl Iterator<Item = &'a str> + Clone, budget: &mut usize) -> Option<bool> {
    let set = firsts(secrets.clone());
    for (at, _) in text.char_indices() {
        if reach(text, at, secrets.clone(), &set, budget)? > at {
            return Some(true);
        }
    }
    Some(false)
}

/// `text` with every occurrence of every secret, in every reading, masked, up to `keep`
/// characters or a little more (the caller cuts, and checks what it keeps with `holds`). One pass
/// over the original text, so a replacement can never be re-scanned into a new match: a byte is
/// masked when a credential found at or before it reaches past it, which is settled once its own
/// position is read. `None` when `budget` runs out first.
fn mask<'a>(text: &str, secrets: impl Iterator<Item = &'a str> + Clone, keep: usize, budget: &mut usize) -> Option<String> {
    let set = firsts(secrets.clone());
    let mut out = String::new();
    let (mut until, mut kept, mut in_run) = (0, 0, false);
    for (at, c) in text.char_indices() {
        if kept > keep {
            break;
        }
        until = until.max(reach(text, at, secrets.clone(), &set, budget)?);
        if at < until {
            if !in_run {
                out.push_str(MASK);
                kept += MASK.len();
            }
            in_run = true;
        } else {
            in_run = false;
            out.push(c);
            kept += 1;
        }
    }
    Some(out)
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

    /// However a server encoded what it echoes (any JSON escape, any hex case, `%20` or `+`), the
    /// credential is masked, and nothing around it is lost.
    #[test]
    fn every_encoding_of_an_echo_is_masked() {
        let pw = Secret::new("p\u{e9}ss w/rd+\"1%41\u{1f600}");
        let r = Redactor::new(&[&pw]);
        for echo in [
            "p\u{e9}ss w/rd+\"1%41\u{1f600}",
            // Form body, `encodeURIComponent`, lowercase hex, a lenient encoder keeping `+` and `/`.
            "p%C3%A9ss+w%2Frd%2B%221%2541%F0%9F%98%80",
            "p%C3%A9ss%20w%2Frd%2B%221%2541%F0%9F%98%80",
            "p%c3%a9ss%20w%2frd%2b%221%2541%f0%9f%98%80",
            "p%C3%A9ss%20w/rd+%221%2541%F0%9F%98%80",
            // JSON: as JS writes it, Python's ASCII escapes with a surrogate pair, PHP's `\/`.
            "p\u{e9}ss w/rd+\\\"1%41\u{1f600}",
            "p\\u00e9ss w/rd+\\\"1%41\\ud83d\\ude00",
            "p\\u00E9ss w\\/rd+\\\"1%41\\uD83D\\uDE00",
        ] {
            let out = r.clean(&format!("said <{echo}> here"), 1000);
            assert_eq!(out, "said <***> here", "{echo:?}");
        }
        // Text that only looks encoded is left alone.
        assert_eq!(r.clean("100%25 sure \\u0041 %zz", 1000), "100%25 sure \\u0041 %zz");
    }

    /// A cut inside an escape leaves a `%` or `\\` that could end a credential in some reading:
    /// the cut steps back over it.
    #[test]
    fn a_cut_escape_never_completes_a_credential() {
        for (secret, text, max) in [
            ("a/b%", "xx a%2Fb%41 tail", 9),
            ("pa ss%", "xx pa+ss%41 tail", 9),
            ("a\"c\\", "xx a\\\"c\\u0041 tail", 8),
            ("ab\u{1f600}cd", "ab\\ud83d\\ude00cd!", 9),
        ] {
            let r = Redactor::new(&[&Secret::new(secret)]);
            for m in 0..=max + 4 {
                let out = r.clean(text, m);
                assert_eq!(holds(&out, r.all(), &mut { BUDGET }), Some(false), "{secret:?} in {text:?} cut at {m}: {out:?}");
            }
        }
    }

    /// A text built to match long prefixes of the credentials everywhere is dropped once the
    /// reading budget runs out, instead of taking seconds.
    #[test]
    fn a_costly_text_is_dropped_within_the_budget() {
        let mut r = Redactor::new(&[]);
        for i in 0..24 {
            r.add(&Secret::new(format!("{}B", "A".repeat(1000 + i))));
        }
        assert_eq!(r.clean(&"A".repeat(64 * 1024), 300), DROPPED);
        assert_eq!(r.clean(&"%41".repeat(21 * 1024), 300), DROPPED);
        // Ordinary text of that size is read through.
        let words = "lorem ipsum dolor sit amet, consectetur ".repeat(1600);
        assert_eq!(r.clean(&words, 11), "lorem ipsum…");
    }

    /// When nothing readable can be kept, the word that says so is itself checked (a credential
    /// may be `redacted`); masking and every check of what is kept share one budget.
    #[test]
    fn giving_up_never_says_a_credential() {
        let configured = [Secret::new("Zq9!"), Secret::new("redacted")];
        let mut r = Redactor::new(&configured.iter().collect::<Vec<_>>());
        for i in 0..24 {
            r.add(&Secret::new(format!("{}B{i:02}", "a***".repeat(500))));
        }
        for text in ["aZq9!".repeat(13_000), "%61Zq9!".repeat(9_000)] {
            for max in [5, 9, 10, 300] {
                let out = r.clean(&text, max);
                assert!(out.chars().count() <= max + 1, "{out:?}");
                assert_eq!(holds(&out, r.all(), &mut { usize::MAX }), Some(false), "{out:?}");
            }
        }
    }

    /// Nothing cut: a text whose masks spell a credential is dropped whole, not trimmed. No
    /// credential at all: however long the text or the cut, it is kept as it is.
    #[test]
    fn whole_texts_are_kept_or_dropped_whole() {
        let r = Redactor::new(&[&Secret::new("x***")]);
        assert_eq!(r.clean("xx***yz", 100), DROPPED);
        let none = Redactor::new(&[]);
        let long = "lorem ipsum ".repeat(10_000);
        assert_eq!(none.clean(&long, 200_000), long);
        let r = Redactor::new(&[&Secret::new("CANARY-secret")]);
        assert!(!r.contains(&"k".repeat(100_000)));
        assert!(r.contains(&format!("{}CANARY%2Dsecret", "k".repeat(100_000))));
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
