//! A small JSON reader and string writer, enough for token and GraphQL answers.
//!
//! Why not serde: serde's derive + serde-wasm-bindgen (or serde_json) cost tens of KB of wasm
//! (float formatting for error messages, generic visitors), and every KB ships to every isolate.
//! This reader is a plain recursive-descent parser with a nesting limit (so a hostile body cannot
//! exhaust the wasm stack), numbers built by arithmetic (no float-parsing tables), and a
//! `Value` the callers query by key. Objects that are built or walked with a repeated key are
//! refused: `JSON.parse` keeps the last one and a first-wins reader the first, so accepting them
//! would let one answer mean two things. `members` reads an object member by member, so a large
//! answer (a GraphQL `data`) is checked without being built in wasm memory; a skipped value is
//! checked for syntax only (nothing here reads it, and `JSON.parse` builds it for the caller).

use alloc::string::String;
use alloc::vec::Vec;

/// Deeper nesting than any token or GraphQL envelope we read is refused, not recursed into.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    /// Members in document order; keys are unique (the parser refuses repeats).
    Obj(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object; `None` for a missing member, a `null` one, or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v).filter(|v| !matches!(v, Value::Null)),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The string member `key`, if it is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.str()
    }

    pub fn arr(&self) -> Option<&[Value]> {
        match self {
            Value::Arr(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_obj(&self) -> bool {
        matches!(self, Value::Obj(_))
    }

    /// A lifetime in seconds: a JSON number, or a string of whole seconds (`expires_in` is sent
    /// both ways in the wild). `None` for anything else, including non-finite values.
    pub fn seconds(&self) -> Option<f64> {
        let v = match self {
            Value::Num(n) => *n,
            Value::Str(s) => f64::from(crate::http::decimal(s.trim_ascii())?),
            _ => return None,
        };
        v.is_finite().then_some(v)
    }
}

/// Parses one JSON document (surrounding whitespace allowed). `None` if it is not valid JSON.
pub fn parse(text: &str) -> Option<Value> {
    let mut p = Parser { s: text.as_bytes(), i: 0, text };
    let v = p.value(0)?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

/// The JSON escape at byte `at` of `text` (`\n`, `\/`, `\u00e9`, a surrogate pair): the char it
/// stands for and where it ends. The redactor reads server text through it.
pub fn unescape(text: &str, at: usize) -> Option<(char, usize)> {
    if text.as_bytes().get(at) != Some(&b'\\') {
        return None;
    }
    let mut p = Parser { s: text.as_bytes(), i: at, text };
    let c = p.escape()?;
    Some((c, p.i))
}

/// Reads the top-level object of `text` member by member (see `Cursor::members`). `None` when
/// the text is not exactly one JSON object, or a visitor gave up.
pub fn members(text: &str, visit: impl FnMut(&str, &mut Cursor<'_, '_>) -> Option<()>) -> Option<()> {
    let mut p = Parser { s: text.as_bytes(), i: 0, text };
    let is_obj = Cursor { p: &mut p, depth: 0 }.members(visit)?;
    p.ws();
    (is_obj && p.i == p.s.len()).then_some(())
}

/// A position at one value inside a document being read; each method consumes that value.
pub struct Cursor<'p, 'a> {
    p: &'p mut Parser<'a>,
    depth: usize,
}

impl Cursor<'_, '_> {
    /// The value, built.
    pub fn value(&mut self) -> Option<Value> {
        self.p.value(self.depth)
    }

    /// Checks the value without building it; `Some(true)` when it is `null`.
    pub fn skip(&mut self) -> Option<bool> {
        self.p.skip(self.depth)
    }

    /// The value if it is a string (`Some(None)` for any other value, which is skipped).
    pub fn string(&mut self) -> Option<Option<String>> {
        self.p.ws();
        if self.p.peek() == Some(b'"') {
            return self.p.string_into(true).map(Some);
        }
        self.skip().map(|_| None)
    }

    /// An object's members one at a time: `visit(key, cursor)` must consume the member's value.
    /// A repeated key fails the whole read. Any other value is skipped: `Some(false)`.
    pub fn members(&mut self, mut visit: impl FnMut(&str, &mut Cursor<'_, '_>) -> Option<()>) -> Option<bool> {
        self.p.ws();
        if self.p.peek() != Some(b'{') || self.depth > MAX_DEPTH {
            return self.skip().map(|_| false);
        }
        self.p.i += 1;
        let mut keys = Vec::new();
        if !self.p.eat(b'}') {
            loop {
                self.p.ws();
                let k = self.p.string_into(true)?;
                if !self.p.eat(b':') {
                    return None;
                }
                visit(&k, &mut Cursor { p: self.p, depth: self.depth + 1 })?;
                keys.push(k);
                if self.p.eat(b'}') {
                    break;
                }
                if !self.p.eat(b',') {
                    return None;
                }
            }
        }
        unique(keys.iter().map(String::as_str)).then_some(true)
    }

    /// An array's elements one at a time: `visit(cursor)` must consume each. Any other value is
    /// skipped: `Some(false)`.
    pub fn each(&mut self, mut visit: impl FnMut(&mut Cursor<'_, '_>) -> Option<()>) -> Option<bool> {
        self.p.ws();
        if self.p.peek() != Some(b'[') || self.depth > MAX_DEPTH {
            return self.skip().map(|_| false);
        }
        self.p.i += 1;
        if !self.p.eat(b']') {
            loop {
                visit(&mut Cursor { p: self.p, depth: self.depth + 1 })?;
                if self.p.eat(b']') {
                    break;
                }
                if !self.p.eat(b',') {
                    return None;
                }
            }
        }
        Some(true)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn lit(&mut self, word: &str, v: Value) -> Option<Value> {
        let end = self.i + word.len();
        (self.s.get(self.i..end)? == word.as_bytes()).then(|| {
            self.i = end;
            v
        })
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        self.any(depth, true)
    }

    /// Checks one value without building it; `Some(true)` when it is `null`.
    fn skip(&mut self, depth: usize) -> Option<bool> {
        self.any(depth, false).map(|v| matches!(v, Value::Null))
    }

    /// One value; with `build` false it is only checked, and what comes back is `Null` for a
    /// `null` and `Bool(true)` for anything else (no memory grows with the value's size).
    fn any(&mut self, depth: usize, build: bool) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        let scalar = |v: Value| if build { v } else { Value::Bool(true) };
        match self.peek()? {
            b'{' => {
                self.i += 1;
                let mut m = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        let k = self.string_into(build)?;
                        if !self.eat(b':') {
                            return None;
                        }
                        let v = self.any(depth + 1, build)?;
                        if build {
                            m.push((k, v));
                        }
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                unique(m.iter().map(|(k, _)| k.as_str())).then(|| scalar(Value::Obj(m)))
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                if !self.eat(b']') {
                    loop {
                        let v = self.any(depth + 1, build)?;
                        if build {
                            a.push(v);
                        }
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                Some(scalar(Value::Arr(a)))
            }
            b'"' => self.string_into(build).map(|s| scalar(Value::Str(s))),
            b't' => self.lit("true", scalar(Value::Bool(true))),
            b'f' => self.lit("false", scalar(Value::Bool(false))),
            b'n' => self.lit("null", Value::Null),
            _ => self.number().map(|n| scalar(Value::Num(n))),
        }
    }

    /// The escape at `self.i` (a backslash), which it moves past: the char it stands for.
    fn escape(&mut self) -> Option<char> {
        let c = match self.s.get(self.i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.escape_u(),
            _ => return None,
        };
        self.i += 2;
        Some(c)
    }

    /// One `\uXXXX` escape (or a surrogate pair) at `self.i` (the backslash).
    fn escape_u(&mut self) -> Option<char> {
        self.i += 2;
        let hi = self.hex4()?;
        let c = if (0xD800..0xDC00).contains(&hi) {
            if self.s.get(self.i..self.i + 2)? != b"\\u" {
                return None;
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(c)
    }

    /// A run of digits folded into `m` (at most 19 significant digits; later ones only move the
    /// decimal exponent `exp`). `frac`: digits after the point. `None` if there is no digit.
    fn digits(&mut self, m: &mut f64, sig: &mut u32, exp: &mut i64, frac: bool) -> Option<()> {
        let start = self.i;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if *sig < 19 {
                *m = *m * 10.0 + f64::from(d - b'0');
                if *m > 0.0 {
                    *sig += 1;
                }
                if frac {
                    *exp -= 1;
                }
            } else if !frac {
                *exp += 1;
            }
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    /// RFC 8259 number grammar; the value by arithmetic on a 19-digit mantissa and a decimal
    /// exponent (exact for integers below 2^53; out of range becomes 0 or infinity, never NaN).
    fn number(&mut self) -> Option<f64> {
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let leading_zero = self.peek() == Some(b'0');
        let (mut m, mut sig, mut exp) = (0.0, 0u32, 0i64);
        let start = self.i;
        self.digits(&mut m, &mut sig, &mut exp, false)?;
        if leading_zero && self.i - start > 1 {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits(&mut m, &mut sig, &mut exp, true)?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let eneg = match self.peek() {
                Some(b'-') => {
                    self.i += 1;
                    true
                }
                Some(b'+') => {
                    self.i += 1;
                    false
                }
                _ => false,
            };
            let start = self.i;
            let mut e = 0i64;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                e = (e * 10 + i64::from(d - b'0')).min(100_000);
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
            exp += if eneg { -e } else { e };
        }
        let v = match exp {
            _ if m == 0.0 => 0.0,
            0.. => m * pow10(exp),
            ..-308 => m / 1e308 / pow10(-exp - 308),
            _ => m / pow10(-exp),
        };
        Some(if neg { -v } else { v })
    }

    fn hex4(&mut self) -> Option<u32> {
        // Folded by hand: `from_str_radix` is core's whole generic number parser in the wasm.
        let v = self.s.get(self.i..self.i + 4)?.iter().try_fold(0, |n, &b| Some(n << 4 | char::from(b).to_digit(16)?))?;
        self.i += 4;
        Some(v)
    }

    /// A string literal; its value is built only when `build` (else an empty string comes back).
    fn string_into(&mut self, build: bool) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control byte: all ASCII, so the
            // slice boundaries are char boundaries.
            let start = self.i;
            self.i += self.s.get(start..).unwrap_or_default().iter().take_while(|&b| plain(b)).count();
            if build {
                out.push_str(self.text.get(start..self.i)?);
            }
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    let c = self.escape()?;
                    if build {
                        out.push(c);
                    }
                }
                _ => return None, // a raw control character
            }
        }
    }
}

/// Objects with more members than this are refused where they are built or walked (token
/// answers, GraphQL envelopes and errors have a handful); it keeps the repeat check cheap.
const MAX_MEMBERS: usize = 256;

/// Whether the keys are few enough and none repeats.
fn unique<'k>(keys: impl Iterator<Item = &'k str> + Clone) -> bool {
    keys.clone().count() <= MAX_MEMBERS && keys.clone().enumerate().all(|(i, k)| !keys.clone().skip(i + 1).any(|o| o == k))
}

/// 10^e for e >= 0 (infinity past 10^308; the loop stops there).
fn pow10(e: i64) -> f64 {
    let mut r = 1.0;
    for _ in 0..e.min(400) {
        r *= 10.0;
    }
    r
}

/// A byte a JSON string holds as it is: not a quote, a backslash or a control character.
fn plain(b: &u8) -> bool {
    *b >= 0x20 && *b != b'"' && *b != b'\\'
}

/// Writes `s` as a JSON string literal (quotes included).
pub fn write_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        // A run that needs no escape is copied whole: it takes every non-ASCII byte and starts
        // and ends at an ASCII byte or an end, so its cuts are char boundaries.
        let start = i;
        i += bytes.get(start..).unwrap_or_default().iter().take_while(|&b| plain(b)).count();
        debug_assert!(s.get(start..i).is_some());
        out.push_str(s.get(start..i).unwrap_or_default());
        let Some(&b) = bytes.get(i) else { break };
        i += 1;
        out.push('\\');
        match b {
            b'"' | b'\\' => out.push(b as char),
            b'\n' => out.push('n'),
            b'\r' => out.push('r'),
            b'\t' => out.push('t'),
            _ => {
                out.push_str("u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our reader against serde_json's, on valid documents.
    fn same(text: &str) {
        fn conv(v: &serde_json::Value) -> Value {
            match v {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap()),
                serde_json::Value::String(s) => Value::Str(s.clone()),
                serde_json::Value::Array(a) => Value::Arr(a.iter().map(conv).collect()),
                serde_json::Value::Object(o) => Value::Obj(o.iter().map(|(k, v)| (k.clone(), conv(v))).collect()),
            }
        }
        let theirs = conv(&serde_json::from_str(text).unwrap());
        let ours = parse(text).unwrap_or_else(|| panic!("refused {text}"));
        // serde_json sorts keys; compare member sets.
        fn norm(v: Value) -> Value {
            match v {
                Value::Obj(mut m) => {
                    m.sort_by(|a, b| a.0.cmp(&b.0));
                    Value::Obj(m.into_iter().map(|(k, v)| (k, norm(v))).collect())
                }
                Value::Arr(a) => Value::Arr(a.into_iter().map(norm).collect()),
                v => v,
            }
        }
        assert_eq!(norm(ours), norm(theirs), "{text}");
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for t in [
            r#"{"access_token":"a.b-c","token_type":"Bearer","expires_in":3600,"refresh_token":"r","scope":"x y"}"#,
            r#" { "a" : [ 1 , -2 , 0 , 3.5 , 1e3 , 25E-1 , true , false , null , {} , [] ] } "#,
            r#"{"s":"q\"b\\s\/n\n\r\t\b\f \u00e9 \ud83d\ude00 é 😀"}"#,
            r#"{"data":{"viewer":{"id":"viewer-1"},"brokenField":null},"errors":[{"message":"m","path":["brokenField"],"extensions":{"code":"INTERNAL"}}]}"#,
            "0",
            "\"\"",
            "[[[[]]]]",
        ] {
            same(t);
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        for t in [
            "",
            "<html>",
            "{",
            "{\"a\":1",
            "{\"a\" 1}",
            "{a:1}",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "tru",
            "nul",
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"raw \u{1} control\"",
            "\"\\ud800 lone\"",
            "\"\\ud800\\u0041\"",
            "\"\\u+123\"",
            "1 2",
            "{} x",
        ] {
            assert_eq!(parse(t), None, "{t:?}");
        }
        // Nesting past the limit is refused rather than recursed into.
        let deep = "[".repeat(100_000);
        assert_eq!(parse(&deep), None);
        assert!(parse(&format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH))).is_some());
    }

    #[test]
    fn queries() {
        let v = parse(r#"{"a":"x","n":null,"e":"60","k":7}"#).unwrap();
        assert_eq!(v.get_str("a"), Some("x"));
        assert_eq!(v.get("n"), None);
        assert_eq!(v.get("missing"), None);
        assert_eq!(v.get_str("k"), None);
        assert_eq!(v.get("e").and_then(Value::seconds), Some(60.0));
        assert_eq!(v.get("k").and_then(Value::seconds), Some(7.0));
        assert_eq!(Value::Str("soon".into()).seconds(), None);
        assert_eq!(Value::Str("-5".into()).seconds(), None);
        assert_eq!(Value::Num(f64::INFINITY).seconds(), None);
        assert_eq!(parse("1e999").unwrap().seconds(), None);
        // Range edges: never NaN, exact where f64 can be.
        let num = |t: &str| match parse(t) {
            Some(Value::Num(n)) => n,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(num("0e309"), 0.0);
        assert_eq!(num(&format!("1{}e-309", "0".repeat(309))), 1.0);
        assert!((num(&format!("1{}e-1", "0".repeat(309))) / 1e308 - 1.0).abs() < 1e-12);
        assert_eq!(num(&format!("0.1{}", "0".repeat(309))), 0.1);
        assert_eq!(num("9007199254740991"), 9_007_199_254_740_991.0);
        assert_eq!(num("-12.5e1"), -125.0);
        assert!(num("1e-320") >= 0.0);
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        assert_eq!(parse(r#"{"a":1,"a":2}"#), None);
        assert_eq!(parse(r#"{"x":[{"k":1,"b":0,"k":1}]}"#), None);
        assert!(parse(r#"{"a":{"a":1}}"#).is_some());
        assert_eq!(members(r#"{"data":1,"data":null}"#, |_, c| c.skip().map(|_| ())), None);
    }

    #[test]
    fn members_reads_without_building_what_it_skips() {
        let big = format!(r#"{{"data":[{}1],"errors":[{{"message":"m","extensions":{{"code":"C"}}}}],"x":"\u00e9\ud83d\ude00"}}"#, "1,".repeat(10_000));
        let (mut data_null, mut code) = (None, None);
        members(&big, |k, c| {
            match k {
                "data" => data_null = Some(c.skip()?),
                "errors" => {
                    c.each(|e| {
                        e.members(|k, c| {
                            if k == "extensions" {
                                c.members(|k, c| {
                                    if k == "code" {
                                        code = c.string()?;
                                    } else {
                                        c.skip()?;
                                    }
                                    Some(())
                                })
                                .map(|_| ())
                            } else {
                                c.skip().map(|_| ())
                            }
                        })
                        .map(|_| ())
                    })?;
                }
                _ => {
                    c.skip()?;
                }
            }
            Some(())
        })
        .unwrap();
        assert_eq!(data_null, Some(false));
        assert_eq!(code.as_deref(), Some("C"));
        assert_eq!(members("[]", |_, c| c.skip().map(|_| ())), None);
        assert_eq!(members(r#"{"a":1} x"#, |_, c| c.skip().map(|_| ())), None);
        // Skipping checks as strictly as building.
        for bad in [r#"{"a":[1,]}"#, r#"{"a":"\x"}"#, r#"{"a":"\ud800"}"#, r#"{"a":01}"#, r#"{"a":tru}"#] {
            assert_eq!(members(bad, |_, c| c.skip().map(|_| ())), None, "{bad}");
        }
    }

    #[test]
    fn write_str_escapes() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, r#""a\"b\\c\n\u0001é""#);
        assert_eq!(parse(&s).unwrap(), Value::Str("a\"b\\c\n\u{1}é".into()));
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }

    /// The run-copying writer against serde_json, on strings mixing runs, escapes and multi-byte
    /// chars at every position (a run must never be cut inside a char).
    #[test]
    fn write_str_round_trips() {
        let parts = ["", "a", "\"", "\\", "\n", "\u{1f}", "\u{7f}", "é", "€", "😀", "\t\r", "plain-run.of_text~"];
        for a in parts {
            for b in parts {
                for c in parts {
                    let v = format!("{a}{b}{c}{b}");
                    let mut s = String::new();
                    write_str(&mut s, &v);
                    assert_eq!(serde_json::from_str::<String>(&s).unwrap(), v);
                    assert_eq!(s, serde_json::to_string(&v).unwrap(), "{v:?}");
                }
            }
        }
    }
}
