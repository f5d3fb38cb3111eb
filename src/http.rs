//! Plain HTTP values: what the core asks the bindings to send, and what came back.
//!
//! The core never sends anything; it builds an `HttpRequest` and interprets an `HttpResponse`.
//! Also the small URL and form helpers the requests need, hand-written to keep `url` and
//! `serde_urlencoded` (and their size) out of the wasm.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{AuthError, ErrorCode};

/// Largest body the core accepts from a token or GraphQL endpoint; anything bigger is not a
/// token response and is refused as `bad_response` instead of being parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// Request bodies carry credentials: `Debug` never prints them.
    pub body: String,
}

impl core::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(k, _)| *k).collect::<Vec<_>>())
            .field("body", &"***")
            .finish()
    }
}

#[derive(Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Answers carry tokens: `Debug` never prints the body.
impl core::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpResponse").field("status", &self.status).field("retry_after", &self.retry_after).field("body", &"***").finish()
    }
}

impl HttpResponse {
    /// The error for a status that cannot carry a usable answer (429, 5xx), if it is one.
    pub fn transient_error(&self, what: &str) -> Option<AuthError> {
        let (code, text) = match self.status {
            429 => (ErrorCode::RateLimited, " was rate limited (HTTP 429)"),
            500..=599 => (ErrorCode::ServerError, " failed with a server error (HTTP 5xx)"),
            _ => return None,
        };
        let mut e = AuthError::new(code, cat(what, text)).with_status(self.status);
        e.retry_after = self.retry_after.as_deref().and_then(parse_retry_after);
        // The one place that decides a request provably was not processed (RFC 9110 §15.5.30,
        // §15.6.4): a single-use credential in it may be sent again (`retry`, `qflow::Session`).
        // A 503 with a Retry-After in any form (delay-seconds, an HTTP-date, or one we cannot
        // read) is the server saying it is unavailable; only the wait needs a number.
        e.unsent = self.status == 429 || self.status == 503 && self.retry_after.as_deref().is_some_and(|v| !v.trim_ascii().is_empty());
        Some(e)
    }

    pub fn too_big(&self) -> bool {
        self.body.len() > MAX_BODY_BYTES
    }
}

/// `Retry-After` as delay-seconds (RFC 9110 §10.2.3). An HTTP-date is ignored: the backoff applies.
pub fn parse_retry_after(v: &str) -> Option<u32> {
    decimal(v.trim_ascii())
}

/// A run of ASCII digits as a number; `None` for anything else (a sign, a space, nothing) or past
/// `u32::MAX`. Stricter than `str::parse`, and none of `core`'s number parsing in the wasm.
pub fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u32, |n, b| if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u32::from(b - b'0')) } else { None })
}

/// Appends `n` in decimal (no `core::fmt`: its machinery is a few KB of wasm).
pub fn push_num(out: &mut String, n: u32) {
    if n >= 10 {
        push_num(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

pub fn bad_response(what: &str, status: u16, problem: &str) -> AuthError {
    let mut m = String::from(what);
    m.push_str(" answered HTTP ");
    push_num(&mut m, status.into());
    m.push_str(" with ");
    m.push_str(problem);
    AuthError::new(ErrorCode::BadResponse, m).with_status(status)
}

pub fn cat(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(a);
    s.push_str(b);
    s
}

/// The byte the percent-encoded unit at the start of `s` stands for, and the unit's length:
/// `%XX` (either case), `+` as a space when `plus_space` (a form body), else the byte itself (a
/// `%` without two hex digits too, as the WHATWG URL parser reads it). `None` on an empty `s`.
pub fn percent_unit(s: &[u8], plus_space: bool) -> Option<(u8, usize)> {
    let hex = |i: usize| s.get(i).and_then(|&h| char::from(h).to_digit(16));
    Some(match *s.first()? {
        b'+' if plus_space => (b' ', 1),
        b'%' => match (hex(1), hex(2)) {
            (Some(h), Some(l)) => ((h << 4 | l) as u8, 3),
            _ => (b'%', 1),
        },
        c => (c, 1),
    })
}

/// The type an answer of this `Content-Type` is checked for credentials as, if it can be checked
/// as the text it is: JSON (`application/json`, `application/…+json`) or `text/plain`, in
/// UTF-8. It goes on as one of three fixed types, so nothing of the API's header does (a
/// parameter or a subtype could carry an echo, or not parse and leave a browser to sniff).
/// HTML and XML cannot be checked (a character reference spells a character the check does not
/// see), nor can an answer that says nothing (a browser may sniff it as HTML) or a header with a
/// comma (a list of types, which a reader may take another one of).
pub fn checkable_text(content_type: &str) -> Option<&'static str> {
    let media = content_type.as_bytes().split(|c| *c == b';').next().unwrap_or_default().trim_ascii();
    let suffix = media.get(media.len().saturating_sub(5)..).unwrap_or_default();
    let application = media.get(..12).is_some_and(|p| p.eq_ignore_ascii_case(b"application/"));
    let sent = if media.eq_ignore_ascii_case(b"text/plain") {
        "text/plain; charset=utf-8"
    } else if media.eq_ignore_ascii_case(b"application/problem+json") {
        "application/problem+json; charset=utf-8"
    } else if media.eq_ignore_ascii_case(b"application/json") || (application && suffix.eq_ignore_ascii_case(b"+json")) {
        "application/json; charset=utf-8"
    } else {
        return None;
    };
    // By bytes, one pass (`contains` would link `memchr`).
    (content_type.bytes().all(|b| b != b',') && utf8_body(content_type)).then_some(sent)
}

/// Whether a `Content-Type` says the body is UTF-8: no `charset` parameter (JSON and most text
/// default to it), `utf-8`, or `us-ascii` (a subset). What is read as UTF-8 and checked must be
/// what goes on: a body in another charset would be checked as something else than what its
/// reader sees.
fn utf8_body(content_type: &str) -> bool {
    // By bytes: `str` patterns and trimming would link searchers and Unicode tables. RFC 9110
    // §5.6.6 allows no white space around a parameter's `=`.
    content_type.as_bytes().split(|c| *c == b';').skip(1).all(|p| {
        let p = p.trim_ascii();
        let (k, v) = p.split_at_checked(8).unwrap_or((p, b""));
        let v = match v {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        };
        !k.eq_ignore_ascii_case(b"charset=") || v.eq_ignore_ascii_case(b"utf-8") || v.eq_ignore_ascii_case(b"utf8") || v.eq_ignore_ascii_case(b"us-ascii")
    })
}

/// application/x-www-form-urlencoded, as the WHATWG URL spec's serializer writes it.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(&mut out, k, true);
        out.push('=');
        encode_component(&mut out, v, true);
    }
    out
}

/// RFC 3986 `unreserved`: the bytes a URL component carries as they are (and a PKCE verifier's alphabet).
pub fn unreserved(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes everything but RFC 3986 unreserved characters; `space_plus` writes ' ' as '+'.
pub fn encode_component(out: &mut String, s: &str, space_plus: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        // A run of unreserved bytes is copied whole (a token is mostly one run). A non-empty run
        // is ASCII after ASCII or after a char's last byte, so its cuts are char boundaries; only
        // an empty one can sit inside a char (after a lead byte), and it copies nothing.
        let start = i;
        i += bytes.get(start..).unwrap_or_default().iter().take_while(|&b| unreserved(b)).count();
        debug_assert!(start == i || s.get(start..i).is_some());
        out.push_str(s.get(start..i).unwrap_or_default());
        let Some(&b) = bytes.get(i) else { return };
        i += 1;
        if b == b' ' && space_plus {
            out.push('+');
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// A base URL (`identityUrl`, `apiUrl`, `endpoint`, `redirectUri`) validated and written the way
/// the WHATWG URL parser serialises it, so the origin compared later is the one `fetch` uses:
/// scheme and host lower-cased, a default port dropped, no trailing slash. What that parser would
/// rewrite in ways that are easy to get wrong (IPv4 shorthands like `127.1`, dot segments,
/// IDNA, user info, tabs) is refused instead. `https://` for any host; `http://` only for
/// loopback (`localhost`, `127.0.0.0/8`, `[::1]`), so no secret crosses a network in cleartext.
pub fn base_url(option: &str, raw: &str) -> Result<String, AuthError> {
    let bad = |why: &str| AuthError::config(option, why);
    if raw.bytes().any(|b| b <= b' ' || matches!(b, b'"' | b'<' | b'>' | b'\\' | b'`' | b'{' | b'}' | b'^' | b'|') || b >= 0x7f) {
        return Err(bad("must be a plain ASCII URL without spaces or control characters"));
    }
    if raw.contains(['?']) || raw.contains(['#']) {
        return Err(bad("must not have a query or fragment"));
    }
    let (https, rest) = match find(raw, "://").and_then(|i| Some((raw.get(..i)?, raw.get(i + 3..)?))) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        _ => return Err(bad("must be an absolute https:// URL (http:// only for loopback)")),
    };
    let cut = rest.find(['/']).unwrap_or(rest.len());
    let (authority, path) = (rest.get(..cut).unwrap_or_default(), rest.get(cut..).unwrap_or_default());
    if authority.contains(['@']) {
        return Err(bad("must not contain credentials"));
    }
    // The last `:` outside an IPv6 literal, found by bytes (a reverse `str` search links a
    // searcher of its own).
    let colon = authority.bytes().rposition(|b| b == b':').filter(|&i| !authority.get(i..).unwrap_or_default().contains([']']));
    let (host, port) = match colon {
        Some(i) => (authority.get(..i).unwrap_or_default(), authority.get(i + 1..)),
        None => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.") && ipv4(&host);
    if host.starts_with('[') {
        if host != "[::1]" {
            return Err(bad("may only use the IPv6 host [::1]"));
        }
    } else if !valid_host(&host) {
        return Err(bad("has an invalid host"));
    }
    if !https && !loopback {
        return Err(bad("must use https:// (http:// is allowed only for localhost and 127.0.0.1)"));
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) if p.len() <= 5 => match decimal(p).and_then(|n| u16::try_from(n).ok()) {
            Some(n) if n == if https { 443 } else { 80 } => None,
            Some(n) => Some(n),
            None => return Err(bad("has an invalid port")),
        },
        Some(_) => return Err(bad("has an invalid port")),
    };
    if path.split(['/']).any(|seg| [".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"].iter().any(|d| seg.eq_ignore_ascii_case(d))) {
        return Err(bad("must not contain `.` or `..` path segments"));
    }
    let mut out = String::from(if https { "https://" } else { "http://" });
    out.push_str(&host);
    if let Some(n) = port {
        out.push(':');
        push_num(&mut out, n.into());
    }
    out.push_str(path.get(..path.bytes().rposition(|b| b != b'/').map_or(0, |i| i + 1)).unwrap_or_default());
    Ok(out)
}

/// A DNS name of letters, digits and hyphens, or a canonical dotted-quad IPv4 address. A name whose
/// last label is numeric would be read as IPv4 by WHATWG (`1.2.3` is `1.2.0.3`), so it must be one.
fn valid_host(h: &str) -> bool {
    let labels: Vec<&str> = h.split(['.']).collect();
    let label_ok = |l: &&str| !l.is_empty() && l.len() <= 63 && !l.starts_with("xn--") && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let last_numeric = labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()) || l.starts_with("0x"));
    h.len() <= 253 && labels.iter().all(label_ok) && (!last_numeric || ipv4(h))
}

/// Exactly four decimal octets without leading zeros (the form WHATWG writes IPv4 in).
fn ipv4(h: &str) -> bool {
    let parts: Vec<&str> = h.split(['.']).collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && (p.len() == 1 || !p.starts_with('0')) && decimal(p).is_some_and(|n| n <= 255))
}

/// Where `needle` first starts in `hay`. A plain byte scan: it is a fraction of the size of
/// `str::find`'s two-way searcher in the wasm.
fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return Some(0);
    }
    h.windows(n.len()).position(|w| w == n)
}

/// `scheme://authority` of a URL (no path), for same-origin checks. `None` if not absolute http(s).
/// Meant for URLs the platform has already parsed (`Request.url`) and for `base_url` output,
/// which are written the same way.
pub fn origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    url.get(..url.len() - rest.len() + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_and_plain_text_in_utf8_can_be_checked() {
        for (ct, sent) in [
            ("application/json", "application/json"),
            ("Application/JSON; charset=utf-8", "application/json"),
            ("APPLICATION/PROBLEM+JSON", "application/problem+json"),
            // Another `+json` goes on as plain JSON: nothing of the API's subtype goes on.
            ("application/vnd.x-3f2a+json", "application/json"),
            ("application/<x>+json", "application/json"),
            ("text/plain", "text/plain"),
            (" text/plain ; charset=\"utf-8\"", "text/plain"),
            ("text/plain; charset=us-ascii", "text/plain"),
            // A parameter of the API's (it may echo anything) does not go on.
            ("text/plain; x=\"Bearer at-1\"", "text/plain"),
        ] {
            assert_eq!(checkable_text(ct).map(String::from), Some(format!("{sent}; charset=utf-8")), "{ct}");
        }
        for ct in [
            "",
            "text/html",
            "text/html; charset=utf-8",
            "application/xml",
            "application/json; charset=utf-16",
            "image/svg+xml",
            "+json",
            "text/plain2",
            "application/jsonx",
            "text/plain; a=b, text/html",
            "text/plain; charset=ISO-8859-1",
        ] {
            assert_eq!(checkable_text(ct), None, "{ct}");
        }
    }

    #[test]
    fn a_body_is_utf8_unless_its_charset_says_otherwise() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain;Charset=\"UTF-8\"",
            "text/html; q=1; charset=utf8",
            "",
            "x/y; charset",
            "x/y; charsets=utf-16",
        ] {
            assert!(utf8_body(ct), "{ct}");
        }
        for ct in ["application/json; charset=utf-16", "text/plain; charset=ISO-8859-1", "text/html;charset=\"utf-16le\"", "a/b; charset=utf-8; charset=utf-16"]
        {
            assert!(!utf8_body(ct), "{ct}");
        }
    }

    #[test]
    fn decimal_is_digits_only_and_never_overflows() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("007"), Some(7));
        assert_eq!(decimal("4294967295"), Some(u32::MAX));
        for bad in ["", "+5", "-5", " 5", "5 ", "4294967296", "99999999999999999999", "1e3", "٣"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
        assert_eq!(parse_retry_after(" 120 "), Some(120));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn push_num_writes_decimal() {
        for n in [0u32, 7, 10, 429, 65535, u32::MAX] {
            let mut s = String::from("x");
            push_num(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn form_encoding_matches_whatwg() {
        assert_eq!(
            form_encode(&[("scope", "qflowapi openid offline_access"), ("username", "4471/joe@example.com")]),
            "scope=qflowapi+openid+offline_access&username=4471%2Fjoe%40example.com"
        );
        assert_eq!(form_encode(&[("p", "a&b=c+d%é")]), "p=a%26b%3Dc%2Bd%25%C3%A9");
    }

    /// The run-copying encoder against the byte-by-byte definition, with multi-byte chars around
    /// every run boundary.
    #[test]
    fn encode_component_matches_bytewise() {
        fn reference(s: &str, space_plus: bool) -> String {
            s.bytes()
                .map(|b| match b {
                    b' ' if space_plus => "+".to_string(),
                    b if unreserved(&b) => (b as char).to_string(),
                    b => format!("%{b:02X}"),
                })
                .collect()
        }
        let parts = ["", "a", "Z9", "-._~", " ", "%", "é", "€", "😀", "+/=", "\u{0}"];
        for a in parts {
            for b in parts {
                for c in parts {
                    let v = format!("{a}{b}{c}{a}");
                    for plus in [false, true] {
                        let mut out = String::new();
                        encode_component(&mut out, &v, plus);
                        assert_eq!(out, reference(&v, plus), "{v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn base_url_validation() {
        assert_eq!(base_url("identityUrl", "https://identity.qflowhub.io/").unwrap(), "https://identity.qflowhub.io");
        assert_eq!(base_url("x", "http://127.0.0.1:8080/base").unwrap(), "http://127.0.0.1:8080/base");
        assert_eq!(base_url("x", "HTTPS://API.EXAMPLE.COM:443/v1/").unwrap(), "https://api.example.com/v1");
        assert_eq!(base_url("x", "http://localhost:80").unwrap(), "http://localhost");
        assert_eq!(base_url("x", "https://h.io:0443").unwrap(), "https://h.io");
        assert_eq!(base_url("x", "http://[::1]:9/").unwrap(), "http://[::1]:9");
        for bad in [
            "identity.qflowhub.io",
            "ftp://x",
            "https://",
            "https://u:p@host",
            "https://h/ x",
            "https://h?x=1",
            "https://h:99999",
            "http://api.example.com",
            "http://127.1",
            "https://0x7f.0.0.1",
            "https://1.2.3",
            "https://h/a/../b",
            "https://h/%2E%2e/b",
            "https://h\\x",
            "https://a..b",
            "https://xn--zz.com",
            "https://[::2]",
            "https://h:+1",
            "https://h:1x",
        ] {
            let e = base_url("identityUrl", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfig, "{bad}");
            assert!(e.message.contains("identityUrl"));
        }
    }

    #[test]
    fn origin_of_urls() {
        assert_eq!(origin("https://api.x.io/a/b?c"), Some("https://api.x.io"));
        assert_eq!(origin("http://127.0.0.1:9/"), Some("http://127.0.0.1:9"));
        assert_eq!(origin("/relative"), None);
    }

    #[test]
    fn transient_statuses() {
        let r = HttpResponse { status: 429, retry_after: Some("7".into()), body: String::new() };
        let e = r.transient_error("token endpoint").unwrap();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.retry_after, Some(7));
        let r = HttpResponse { status: 503, retry_after: None, body: String::new() };
        assert_eq!(r.transient_error("x").unwrap().code, ErrorCode::ServerError);
        let r = HttpResponse { status: 400, retry_after: None, body: String::new() };
        assert!(r.transient_error("x").is_none());
    }

    #[test]
    fn request_debug_hides_body_and_header_values() {
        let r = HttpRequest {
            method: "POST",
            url: "https://x/token".into(),
            headers: vec![("Authorization", "Bearer CANARY-at".into())],
            body: "client_secret=CANARY-cs".into(),
        };
        let d = format!("{r:?}");
        assert!(!d.contains("CANARY"), "{d}");
    }
}
