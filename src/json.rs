//! The JSON seam: the core says *what* shape it wants, a `Json` implementation decodes it.
//!
//! In wasm the bindings decode with the host's `JSON.parse` + `serde-wasm-bindgen` (no JSON parser
//! shipped in the wasm); native tests decode with `serde_json`. Both go through the same
//! `Deserialize` impls, so the tests exercise the real shapes.

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub trait Json {
    /// `None` when the text is not JSON or does not have the shape of `T`.
    fn decode<T: DeserializeOwned>(&self, text: &str) -> Option<T>;
}

/// A JSON number or a numeric string (`expires_in` is sent both ways in the wild).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum NumOrStr {
    Num(f64),
    Str(String),
}

impl NumOrStr {
    pub fn as_f64(&self) -> Option<f64> {
        let v = match self {
            NumOrStr::Num(n) => *n,
            // Whole seconds only: parsing decimals would pull float parsing tables into the wasm.
            NumOrStr::Str(s) => f64::from(s.trim().parse::<u32>().ok()?),
        };
        v.is_finite().then_some(v)
    }
}

/// Writes `s` as a JSON string literal (quotes included).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
pub mod testing {
    /// The native decoder used by unit tests.
    pub struct SerdeJson;
    impl super::Json for SerdeJson {
        fn decode<T: serde::de::DeserializeOwned>(&self, text: &str) -> Option<T> {
            serde_json::from_str(text).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_str_escapes() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, r#""a\"b\\c\n\u0001é""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }

    #[test]
    fn num_or_str() {
        assert_eq!(NumOrStr::Num(3600.0).as_f64(), Some(3600.0));
        assert_eq!(NumOrStr::Str(" 60 ".into()).as_f64(), Some(60.0));
        assert_eq!(NumOrStr::Str("soon".into()).as_f64(), None);
        assert_eq!(NumOrStr::Str("-5".into()).as_f64(), None);
    }
}
