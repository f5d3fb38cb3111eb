//! `callback`: `qauth::pkce::parse_callback` against `url::form_urlencoded` on the query (what
//! lies between the first `?` and the first `#`).
//!
//! When every pair decodes to valid UTF-8:
//! - `code`, `state` or `error` twice ⇒ Err;
//! - otherwise Ok(code) ⇔ no `error`, a non-empty `code`, and `state` equal to the expected one,
//!   and the code is url's decoded value.
//!
//! The expected state is never empty (`beginAuthorization` makes 32 random bytes of it); an
//! empty one is refused by design and not generated.

use qauth::pkce::parse_callback;
use url::form_urlencoded;

use super::Target;
use crate::gen;
use crate::rng::Rng;

pub struct Callback;

#[derive(Debug)]
pub struct Case {
    pub url: String,
    pub expected_state: String,
}

const STATES: &[&str] = &["s1", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "st/+ é", "a%20b", "x=y&z", "#", "😀", "+", "%"];
const VALUES: &[&str] =
    &["a", "a/b", "SplxlOBeZQQYbYS6WxSbIA", "", " ", "+", "%", "&", "=", "#", "?", "é", "😀", "access_denied", "User said no", "a+b c", "\u{0}", "\u{7f}"];

/// `s` written into a query: each byte as is, percent-encoded (either hex case), or a space as `+`.
fn encode(r: &mut Rng, out: &mut String, s: &str) {
    let style = r.below(3);
    for c in s.chars() {
        let must = matches!(c, '&' | '=' | '#' | '+' | '%') || (c as u32) < 0x20;
        if c == ' ' && (style == 0 || r.coin()) {
            out.push('+');
        } else if must || (style != 2 && r.one_in(if style == 0 { 2 } else { 8 })) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&if r.coin() { format!("%{b:02X}") } else { format!("%{b:02x}") });
            }
        } else {
            out.push(c);
        }
    }
}

fn pair(r: &mut Rng, out: &mut String, key: &str, value: &str) {
    encode(r, out, key);
    if !(value.is_empty() && r.one_in(3)) {
        out.push('=');
    }
    match r.below(25) {
        0 => out.push_str(r.pick(&["%zz", "%C3", "%C3%28", "%FF", "%", "%4", "%E2%82", "%ED%A0%80"])),
        _ => encode(r, out, value),
    }
}

impl Target for Callback {
    const NAME: &'static str = "callback";
    type Input = Case;

    fn generate(&self, r: &mut Rng) -> Case {
        let expected = r.pick(STATES).to_string();
        let mut url = r
            .pick(&["http://x/cb", "https://app.example/auth/callback", "http://127.0.0.1:8080/cb?keep=1", "/cb", "", "cb#x", "https://a/b#frag?"])
            .to_string();
        url.push(if url.contains('?') { '&' } else { '?' });
        let mut pairs: Vec<(String, String)> = Vec::new();
        if r.below(10) < 8 {
            pairs.push(("code".into(), if r.one_in(4) { gen::text(r, 3) } else { r.pick(VALUES).to_string() }));
        }
        if r.below(10) < 8 {
            pairs.push(("state".into(), if r.below(10) < 7 { expected.clone() } else { r.pick(STATES).to_string() }));
        }
        if r.one_in(4) {
            pairs.push(("error".into(), r.pick(&["access_denied", "invalid_request", "server_error", "", "x y", "CanaryPassw0rd42"]).to_string()));
            if r.coin() {
                pairs.push(("error_description".into(), gen::text(r, 4)));
            }
        }
        for _ in 0..r.len(1, 4) {
            pairs.push((
                r.pick(&["x", "code", "state", "error", "session_state", "iss", "", "Code", "code ", "state\u{0}"]).to_string(),
                r.pick(VALUES).to_string(),
            ));
        }
        for i in (1..pairs.len()).rev() {
            pairs.swap(i, r.below(i + 1));
        }
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 || r.one_in(10) {
                url.push_str(if r.one_in(15) { "&&" } else { "&" });
            }
            pair(r, &mut url, k, v);
        }
        if r.one_in(4) {
            url.push('#');
            url.push_str(r.pick(&["", "code=evil&state=s1", "frag?code=x", "#"]));
        }
        if r.one_in(4) {
            url = gen::mutate(r, &url, &["&code=", "&state=s1", "&error=access_denied", "%26", "%3D", "%2B"]);
        }
        Case { url, expected_state: expected }
    }

    fn check(&self, c: &Case) -> Result<(), String> {
        let got = parse_callback(&c.url, Some(&c.expected_state));
        let before_fragment = c.url.split('#').next().unwrap_or_default();
        let query = before_fragment.split_once('?').map_or("", |(_, q)| q);
        let utf8 = query.split('&').filter(|p| !p.is_empty()).all(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            decodes(k) && decodes(v)
        });
        if !utf8 {
            return Ok(());
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let count = |k: &str| pairs.iter().filter(|(n, _)| n == k).count();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if ["code", "state", "error"].iter().any(|k| count(k) > 1) {
            return match got {
                Ok(code) => Err(format!("Ok although `code`, `state` or `error` repeats: {:?}", code.expose())),
                Err(_) => Ok(()),
            };
        }
        let want = get("error").is_none() && get("code").is_some_and(|v| !v.is_empty()) && get("state") == Some(c.expected_state.as_str());
        match (got, want) {
            (Ok(code), true) if Some(code.expose()) == get("code") => Ok(()),
            (Ok(code), true) => Err(format!("code differs from url's: ours {:?}, url {:?}", code.expose(), get("code"))),
            (Ok(code), false) => Err(format!(
                "Ok where url's reading means Err: Ok({:?}), url reads code {:?}, state {:?}, error {:?}",
                code.expose(),
                get("code"),
                get("state"),
                get("error")
            )),
            (Err(e), true) => Err(format!(
                "Err where url's reading means Ok: Err({:?}: {}), url reads code {:?} with the expected state and no error",
                e.code,
                e.message,
                get("code")
            )),
            (Err(_), false) => Ok(()),
        }
    }
}

/// Whether one form-encoded component decodes to valid UTF-8 (`+` is a space; `%` not followed by
/// two hex digits stays as is).
fn decodes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(b.get(i + 1)), hex(b.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).is_ok()
}
