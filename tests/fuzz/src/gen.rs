//! Structure-aware generators (JSON documents, strings with escapes and surrogates, numbers,
//! secrets) and a byte-level mutator applied on top of them.

use crate::rng::Rng;

/// Secrets that must never reach an error message. Built to be awkward: `*` (the mask's own
/// character), `%` and `+` (form encoding), `"` and `/` (JSON escapes), a space, a non-ASCII
/// letter, and one plain alphanumeric value (what most real client secrets look like).
pub const CANARIES: [&str; 6] = ["CANARY-cs-*%\"/+1", "CanaryPassw0rd42", "sk/+*%22x y", "**CANARY**", "pw\\\"é*%2Fz", "rt.CANARY_live.7"];

/// Text spliced into inputs by the mutator: structure, escapes, URL pieces, numbers at the edges.
pub const INTERESTING: &[&str] = &[
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\u0000",
    "\\u0061",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    ",\"data\":null",
    ",\"data\":{}",
    ",\"errors\":[]",
    "\"errors\":[{\"message\":\"m\"}]",
    "null",
    "true",
    "1e999",
    "-0",
    "1e-400",
    "0.",
    "00",
    "%2e",
    "%2E",
    "%",
    "%zz",
    "%C3",
    "%C3%A9",
    "%FF",
    ":443",
    ":80",
    ":0",
    ":",
    "@",
    "..",
    ".",
    "/",
    "./",
    "../",
    "//",
    "#",
    "?",
    "&",
    "=",
    "+",
    "*",
    "***",
    "\t",
    " ",
    "\n",
    "é",
    "😀",
    "\u{0}",
    "\u{7f}",
    "0x",
    "[::1]",
    "127.",
    "localhost",
    "xn--",
    "https://",
    "http://",
    "&code=",
    "&state=",
    "&error=",
    "\"Bearer\"",
    "\"access_token\":",
];

/// Optional JSON whitespace.
pub fn ws(r: &mut Rng, out: &mut String) {
    if r.one_in(4) {
        for _ in 0..r.range(1, 3) {
            out.push(r.pick(&[' ', '\t', '\n', '\r']));
        }
    }
}

/// A random string value: words, punctuation, non-ASCII, controls, sometimes a canary or a piece.
pub fn text(r: &mut Rng, pieces: usize) -> String {
    const WORDS: &[&str] = &[
        "a",
        "ok",
        "token",
        "invalid",
        "refresh",
        "User said no",
        "Bearer",
        "data",
        "null",
        "*",
        "**",
        "%",
        "%2F",
        "+",
        "/",
        "\"",
        "\\",
        ":",
        "@",
        "&",
        "=",
        "?",
        "#",
        "-",
        "_",
        ".",
        " ",
        "é",
        "ß",
        "😀",
        "…",
        "\u{2028}",
        "\u{ffff}",
        "\u{10ffff}",
        "\u{7f}",
        "\n",
        "\t",
        "\u{1}",
        "\u{0}",
    ];
    let mut s = String::new();
    for _ in 0..r.len(pieces, pieces * 8) {
        match r.below(12) {
            0 => s.push_str(r.pick(&CANARIES)),
            1 => {
                let c = r.pick(&CANARIES);
                let (a, b) = (r.below(c.len()), r.below(c.len()));
                s.push_str(c.get(a.min(b)..a.max(b)).unwrap_or("x"));
            }
            2 => {
                for _ in 0..r.range(1, 6) {
                    s.push(char::from(b'a' + r.below(26) as u8));
                }
            }
            _ => s.push_str(r.pick(WORDS)),
        }
    }
    s
}

/// `s` as a JSON string literal, each character written in one of the forms JSON allows.
pub fn str_lit(r: &mut Rng, out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let escape_u = |out: &mut String, u: u32, upper: bool| {
        out.push_str("\\u");
        for shift in [12, 8, 4, 0] {
            let h = HEX[((u >> shift) & 15) as usize] as char;
            out.push(if upper { h.to_ascii_uppercase() } else { h });
        }
    };
    let plain = r.one_in(3);
    out.push('"');
    for c in s.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '/' if r.one_in(3) => Some("\\/"),
            _ => None,
        };
        let must = (c as u32) < 0x20 || c == '"' || c == '\\';
        if (must || !plain) && r.one_in(if must { 3 } else { 12 }) {
            let upper = r.coin();
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                escape_u(out, u32::from(*u), upper);
            }
        } else if let Some(e) = short {
            out.push_str(e);
        } else if must {
            escape_u(out, c as u32, false);
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

/// A JSON number, valid or (rarely) not: integers around 2^53, long digit runs, exponents at the
/// edges of f64 (overflow, subnormals, underflow).
pub fn number(r: &mut Rng, out: &mut String) {
    let digits = |r: &mut Rng, out: &mut String, n: usize| {
        for _ in 0..n {
            out.push(char::from(b'0' + r.below(10) as u8));
        }
    };
    match r.below(12) {
        0 => out.push_str(r.pick(&[
            "0",
            "-0",
            "1",
            "-1",
            "9007199254740991",
            "9007199254740992",
            "9007199254740993",
            "-9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "1e308",
            "1.7976931348623157e308",
            "1.8e308",
            "5e-324",
            "2.2250738585072014e-308",
            "1e-320",
            "0.1",
            "3600",
            "3600.0",
            "36e2",
        ])),
        1 if r.one_in(4) => out.push_str(r.pick(&["01", "1.", ".5", "-", "1e", "1e+", "+1", "--1", "0x10", "1_000", "NaN", "Infinity", "-Infinity", "1.e3"])),
        _ => {
            if r.one_in(4) {
                out.push('-');
            }
            let n = match r.below(20) {
                0 => r.range(15, 25),
                1 if r.one_in(4) => r.range(300, 420),
                _ => r.range(1, 6),
            };
            if r.one_in(5) {
                out.push('0');
            } else {
                out.push(char::from(b'1' + r.below(9) as u8));
                digits(r, out, n - 1);
            }
            if r.one_in(3) {
                out.push('.');
                let k = match r.below(20) {
                    0 => r.range(15, 25),
                    1 if r.one_in(4) => r.range(300, 420),
                    _ => r.range(1, 6),
                };
                digits(r, out, k);
            }
            if r.one_in(3) {
                out.push(r.pick(&['e', 'E']));
                match r.below(3) {
                    0 => out.push('-'),
                    1 => out.push('+'),
                    _ => {}
                }
                if r.one_in(4) {
                    out.push_str(r.pick(&["308", "309", "307", "320", "323", "324", "325", "330", "400", "999", "0", "00", "1000000"]));
                } else {
                    let n = r.range(1, 3);
                    digits(r, out, n);
                }
            }
        }
    }
}

/// Object keys: few, so repeats (also through escapes: `a` and `\u0061`) are common.
const KEYS: &[&str] = &["a", "b", "c", "data", "errors", "message", "extensions", "code", "x", "é", "", "a\u{0}", "😀"];

pub fn key(r: &mut Rng, out: &mut String) {
    if r.one_in(8) {
        let t = text(r, 2);
        str_lit(r, out, &t);
    } else {
        let k = r.pick(KEYS);
        str_lit(r, out, k);
    }
}

/// Any JSON value, nesting up to `depth` more levels.
pub fn value(r: &mut Rng, out: &mut String, depth: usize) {
    ws(r, out);
    let kind = if depth == 0 { r.below(5) } else { r.below(8) };
    match kind {
        0 => out.push_str(r.pick(&["null", "true", "false"])),
        1 | 2 => number(r, out),
        3 | 4 => {
            let t = text(r, 4);
            str_lit(r, out, &t);
        }
        5 | 6 => {
            out.push('[');
            let n = r.len(3, 12);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                value(r, out, depth - 1);
            }
            ws(r, out);
            out.push(']');
        }
        _ => {
            let n = r.len(3, 12);
            object(r, out, depth - 1, n)
        }
    }
    ws(r, out);
}

/// An object of `n` members with keys from the small pool (repeats likely).
pub fn object(r: &mut Rng, out: &mut String, depth: usize, n: usize) {
    out.push('{');
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        ws(r, out);
        key(r, out);
        ws(r, out);
        out.push(':');
        value(r, out, depth);
    }
    ws(r, out);
    out.push('}');
}

/// A whole document: usually a value a few levels deep; sometimes a chain nested around the
/// 64-level limit, or an object around the 256-member limit.
pub fn document(r: &mut Rng) -> String {
    let mut out = String::new();
    match r.below(40) {
        0 => {
            let n = r.pick(&[62, 63, 64, 65, 66, 67]) + r.below(3) * r.below(2);
            let closers: Vec<&str> = (0..n).map(|_| if r.coin() { "]" } else { "}" }).collect();
            for c in &closers {
                out.push_str(if *c == "]" { "[" } else { "{\"k\":" });
            }
            match r.below(3) {
                0 => out.push('1'),
                1 => out.push_str("[]"),
                _ => out.push_str("{}"),
            }
            for c in closers.iter().rev() {
                out.push_str(c);
            }
        }
        1 => {
            let n = r.range(250, 260);
            out.push('{');
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("\"k");
                out.push_str(&i.to_string());
                out.push_str("\":");
                out.push_str(if r.one_in(50) { "{\"a\":1,\"a\":2}" } else { "0" });
            }
            if r.one_in(4) {
                out.push_str(",\"k0\":1");
            }
            out.push('}');
        }
        2..=20 => {
            let n = r.len(4, 16);
            object(r, &mut out, 4, n)
        }
        _ => value(r, &mut out, 4),
    }
    out
}

/// A few random edits: bit flips, interesting bytes, spliced tokens, deleted, duplicated or cut
/// slices. Invalid UTF-8 left behind is replaced with U+FFFD (the APIs take `&str`).
pub fn mutate(r: &mut Rng, s: &str, extra: &[&str]) -> String {
    const BYTES: &[u8] = b"\x00\x01\x1f\x7f\x80\xff\"\\{}[],:%/.@#?&=+* 0-eE";
    let mut b = s.as_bytes().to_vec();
    for _ in 0..r.range(1, 4) {
        let at = r.below(b.len() + 1);
        let span = r.len(4, 64).max(1).min(b.len() - at.min(b.len()));
        match r.below(8) {
            0 if at < b.len() => b[at] ^= 1 << r.below(8),
            1 if at < b.len() => b[at] = r.pick(BYTES),
            2 | 3 => {
                let t = if !extra.is_empty() && r.one_in(3) { r.pick(extra) } else { r.pick(INTERESTING) };
                b.splice(at..at, t.bytes());
            }
            4 => {
                b.drain(at..at + span);
            }
            5 if at < b.len() => {
                let piece = b[at..at + span].to_vec();
                let to = r.below(b.len() + 1);
                b.splice(to..to, piece);
            }
            6 => {
                let t = r.pick(INTERESTING);
                b.splice(at..at + span, t.bytes());
            }
            _ => b.truncate(at),
        }
    }
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Whether `hay` contains any canary, raw or in a form a server echoes it in (form-encoded,
/// JSON-escaped): the forms `Redactor` promises to mask. Returns the offending form.
pub fn leaked<'a>(hay: &str, secrets: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for s in secrets {
        for form in echo_forms(s) {
            if form.len() >= qauth::secret::MIN_REDACT_LEN && hay.contains(&form) {
                return Some(form);
            }
        }
    }
    None
}

/// A secret as a server may echo it: as is, form-encoded (as `http::form_encode` writes it) and
/// JSON-escaped (the first three, in that order), then percent-encoded with `%20` for a space
/// (`encodeURIComponent`), the form encoding in lowercase hex, and JSON with every non-ASCII char
/// as `\u` escapes (lowercase, surrogate pairs) and `/` as `\/` (PHP's `json_encode`).
pub fn echo_forms(s: &str) -> Vec<String> {
    let form = qauth::http::form_encode(&[("", s)]);
    let mut json = String::new();
    qauth::json::write_str(&mut json, s);
    let mut component = String::new();
    qauth::http::encode_component(&mut component, s, false);
    let lower: String = form[1..].split_inclusive('%').enumerate().map(|(i, p)| if i == 0 { p.to_string() } else { lower_first2(p) }).collect();
    let mut ascii = String::new();
    for c in json[1..json.len() - 1].chars() {
        match c {
            '/' => ascii.push_str("\\/"),
            c if c.is_ascii() => ascii.push(c),
            c => c.encode_utf16(&mut [0; 2]).iter().for_each(|u| ascii.push_str(&format!("\\u{u:04x}"))),
        }
    }
    vec![s.to_string(), form[1..].to_string(), json[1..json.len() - 1].to_string(), component, lower, ascii]
}

/// `p` with its first two characters (a `%XX`'s digits) lowercased.
fn lower_first2(p: &str) -> String {
    let (head, tail) = p.split_at(p.char_indices().nth(2).map_or(p.len(), |(i, _)| i));
    head.to_ascii_lowercase() + tail
}
