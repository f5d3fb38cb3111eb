//! `token`: `qauth::token::parse_token_response` on generated statuses and token answers, some
//! of them echoing the canary secrets the `Redactor` was built with.
//!
//! - Ok ⇒ status 2xx, a non-empty access token (the one serde_json reads from the body), and a
//!   lifetime of at least 1000 ms;
//! - no error message holds a canary (as is, form-encoded or JSON-escaped).

use qauth::http::HttpResponse;
use qauth::secret::{Redactor, Secret};
use qauth::token::parse_token_response;

use super::Target;
use crate::gen::{self, CANARIES};
use crate::rng::Rng;

pub struct TokenAnswers {
    redactor: Redactor,
}

impl TokenAnswers {
    pub fn new() -> Self {
        // The last canary is a live credential (a refresh token the client holds), not configured.
        let fixed: Vec<Secret> = CANARIES[..CANARIES.len() - 1].iter().map(|s| Secret::new(*s)).collect();
        let mut redactor = Redactor::new(&fixed.iter().collect::<Vec<_>>());
        redactor.add(&Secret::new(CANARIES[CANARIES.len() - 1]));
        TokenAnswers { redactor }
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub now_ms: f64,
    pub body: String,
}

pub const STATUSES: &[u16] =
    &[200, 200, 200, 200, 201, 204, 299, 300, 302, 304, 400, 400, 400, 401, 401, 403, 404, 429, 500, 502, 503, 599, 0, 100, 199, 600, 65535];

pub fn status(r: &mut Rng) -> u16 {
    if r.one_in(10) {
        r.below(65536) as u16
    } else {
        r.pick(STATUSES)
    }
}

pub fn retry_after(r: &mut Rng) -> Option<String> {
    if r.coin() {
        return None;
    }
    Some(r.pick(&["7", " 120 ", "0", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999", "-1", "", "4294967295", "1.5"]).to_string())
}

/// A string value: a token-looking word, a canary (whole, cut, or form-encoded), or text.
fn token_string(r: &mut Rng, out: &mut String) {
    let s = match r.below(10) {
        0 => String::new(),
        1 => r.pick(&CANARIES).to_string(),
        2 => gen::echo_forms(r.pick(&CANARIES)).swap_remove(1),
        3 => gen::text(r, 3),
        _ => {
            let n = r.range(1, 40);
            (0..n).map(|_| r.pick(&['a', 'Z', '0', '9', '-', '.', '_', '~', '+', '/', '='])).collect()
        }
    };
    gen::str_lit(r, out, &s);
}

fn member(r: &mut Rng, out: &mut String, key: &str) {
    gen::str_lit(r, out, key);
    gen::ws(r, out);
    out.push(':');
    gen::ws(r, out);
    match key {
        "access_token" | "refresh_token" => match r.below(12) {
            0 => out.push_str("null"),
            1 => gen::number(r, out),
            2 => out.push_str("[\"a\"]"),
            _ => token_string(r, out),
        },
        "token_type" => {
            let t = r.pick(&["Bearer", "bearer", "BEARER", "BeArEr", "mac", "", "Bearer ", "DPoP", "Bearer\u{0}"]);
            match r.below(10) {
                0 => out.push_str(r.pick(&["null", "5", "true", "{}"])),
                _ => gen::str_lit(r, out, t),
            }
        }
        "expires_in" => match r.below(4) {
            0 => {
                let s =
                    r.pick(&["3600", " 60 ", "120", "0", "1", "-5", "soon", "", "4294967295", "4294967296", "1e3", "3600.0", "+60", "315360000", "315360001"]);
                gen::str_lit(r, out, s);
            }
            1 => out.push_str(r.pick(&["null", "true", "[3600]", "1e999", "-1e999"])),
            _ => {
                if r.coin() {
                    out.push_str(r.pick(&[
                        "3600",
                        "1",
                        "0.999",
                        "1.0",
                        "0.5",
                        "1e-9",
                        "0",
                        "-0",
                        "315360000",
                        "315360000.5",
                        "86400",
                        "1e3",
                        "36e2",
                        "2",
                        "1.0000000001",
                    ]));
                } else {
                    gen::number(r, out);
                }
            }
        },
        "error" => {
            let e = if r.one_in(3) {
                r.pick(&CANARIES).to_string()
            } else {
                r.pick(&[
                    "invalid_grant",
                    "invalid_client",
                    "invalid_request",
                    "invalid_scope",
                    "unauthorized_client",
                    "unsupported_grant_type",
                    "temporarily_unavailable",
                    "server_error",
                    "slow_down",
                    "",
                    "x".repeat(65).as_str(),
                ])
                .to_string()
            };
            gen::str_lit(r, out, &e);
        }
        "error_description" => {
            let d = gen::text(r, 6);
            gen::str_lit(r, out, &d);
        }
        _ => gen::value(r, out, 2),
    }
}

/// A token endpoint answer: usually an object of the members a server sends, in any order,
/// sometimes repeated; sometimes not JSON at all.
pub fn body(r: &mut Rng) -> String {
    const KEYS: &[&str] = &["access_token", "token_type", "expires_in", "refresh_token", "scope", "error", "error_description", "id_token"];
    if r.one_in(15) {
        let mut s = r.pick(&["", "<html>oops</html>", "null", "[]", "\"str\"", "1", "{", "{}", "upstream connect error"]).to_string();
        s.push_str(&gen::text(r, 3));
        return s;
    }
    let mut keys: Vec<&str> = Vec::new();
    for (k, p) in KEYS.iter().zip([10, 9, 7, 5, 3, 3, 3, 1]) {
        if r.below(10) < p {
            keys.push(k);
        }
    }
    if r.one_in(15) {
        keys.push(r.pick(KEYS));
    }
    for i in (1..keys.len()).rev() {
        keys.swap(i, r.below(i + 1));
    }
    let mut out = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gen::ws(r, &mut out);
        member(r, &mut out, k);
    }
    if r.one_in(500) {
        out.push_str(if keys.is_empty() { "\"pad\":\"" } else { ",\"pad\":\"" });
        out.push_str(&"x".repeat(70_000));
        out.push('"');
    }
    out.push('}');
    out
}

/// A token answer that is probably a success: the strict parts valid, lifetimes at the edges.
fn success(r: &mut Rng) -> String {
    let mut out = String::from("{");
    let access: String = (0..r.range(1, 40)).map(|_| r.pick(&['a', 'Z', '0', '-', '.', '_', '~', '+', '/', '=', 'é', '"', '\\'])).collect();
    out.push_str("\"access_token\":");
    gen::str_lit(r, &mut out, &access);
    out.push_str(",\"token_type\":");
    let t = r.pick(&["Bearer", "bearer", "BEARER", "bEaReR"]);
    gen::str_lit(r, &mut out, t);
    if r.below(4) != 0 {
        out.push_str(",\"expires_in\":");
        match r.below(3) {
            0 => gen::number(r, &mut out),
            1 => {
                let s = r.pick(&["3600", " 60 ", "1", "0", "315360000", "315360001", "4294967295", "1.5", "01"]);
                gen::str_lit(r, &mut out, s);
            }
            _ => out.push_str(r.pick(&[
                "1",
                "1.0",
                "0.9999999",
                "1.0000001",
                "315360000",
                "315360000.0001",
                "3600",
                "1e0",
                "10e-1",
                "0.1e1",
                "1e-0",
                "100e-2",
                "1000e-3",
            ])),
        }
    }
    if r.coin() {
        out.push_str(",\"refresh_token\":");
        match r.below(6) {
            0 => out.push_str(r.pick(&["null", "1", "\"\"", "[]"])),
            _ => token_string(r, &mut out),
        }
    }
    if r.one_in(3) {
        out.push_str(",\"scope\":\"qflowapi openid\",\"id_token\":");
        gen::value(r, &mut out, 2);
    }
    out.push('}');
    if r.one_in(5) {
        out = gen::mutate(r, &out, &[]);
    }
    out
}

impl Target for TokenAnswers {
    const NAME: &'static str = "token";
    type Input = Answer;

    fn generate(&self, r: &mut Rng) -> Answer {
        let now_ms = r.pick(&[0.0, 1.7e12, 1_000.0, -1.0, 9.007e15, 1e300]);
        if r.one_in(4) {
            return Answer { status: r.pick(&[200, 200, 201, 299]), retry_after: None, now_ms, body: success(r) };
        }
        let mut b = body(r);
        if r.one_in(3) {
            b = gen::mutate(r, &b, &CANARIES);
        }
        Answer { status: status(r), retry_after: retry_after(r), now_ms, body: b }
    }

    fn check(&self, a: &Answer) -> Result<(), String> {
        let resp = HttpResponse { status: a.status, retry_after: a.retry_after.clone(), body: a.body.clone() };
        match parse_token_response(&resp, a.now_ms, &self.redactor) {
            Ok(t) => {
                if !(200..300).contains(&a.status) {
                    return Err(format!("a token from a non-2xx answer: HTTP {}", a.status));
                }
                if t.access.expose().is_empty() {
                    return Err("a token with an empty access token: \"\"".into());
                }
                if t.lifetime_ms.is_nan() || t.lifetime_ms < 1000.0 {
                    return Err(format!("a token living under 1000 ms: {} ms", t.lifetime_ms));
                }
                match serde_json::from_str::<serde_json::Value>(&a.body) {
                    Ok(v) if v.get("access_token").and_then(|t| t.as_str()) != Some(t.access.expose()) => {
                        return Err(format!("access token differs from serde_json's: ours {:?}, serde_json {:?}", t.access.expose(), v.get("access_token")));
                    }
                    Err(e) if !super::json::out_of_range(&e) => return Err(format!("a token from a body serde_json refuses: {e}")),
                    _ => {}
                }
                Ok(())
            }
            Err(e) => {
                for m in std::iter::once(&e.message).chain(&e.messages) {
                    if let Some(form) = gen::leaked(m, CANARIES) {
                        return Err(format!("error message holds a secret: {form:?} in {m:?}"));
                    }
                }
                Ok(())
            }
        }
    }
}
