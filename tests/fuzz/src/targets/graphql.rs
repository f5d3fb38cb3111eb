//! `graphql`: `qpien::Envelope::parse` and `qpien::classify` on generated GraphQL answers.
//!
//! - `parse` is Some ⇒ serde_json accepts the body as an object with no repeated top-level key,
//!   and `has_data` ⇔ serde_json's value has a `data` that is not null;
//! - no error message or `messages` entry holds a canary.

use qauth::qpien::{classify, Envelope, Verdict};
use qauth::secret::{Redactor, Secret};

use super::json::{out_of_range, shape};
use super::Target;
use crate::gen::{self, CANARIES};
use crate::rng::Rng;

pub struct Graphql {
    redactor: Redactor,
}

impl Graphql {
    pub fn new() -> Self {
        let fixed: Vec<Secret> = CANARIES.iter().map(|s| Secret::new(*s)).collect();
        Graphql { redactor: Redactor::new(&fixed.iter().collect::<Vec<_>>()) }
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

const CODES: &[&str] =
    &["TOKEN_EXPIRED", "UNAUTHORIZED", "INSUFFICIENT_SCOPES", "INVALID_CLIENT", "BAD_USER_INPUT", "INTERNAL_SERVER_ERROR", "", "token_expired"];

fn error(r: &mut Rng, out: &mut String) {
    if r.one_in(12) {
        gen::value(r, out, 1);
        return;
    }
    let mut parts: Vec<String> = Vec::new();
    if r.below(10) < 8 {
        let mut m = String::from("\"message\":");
        match r.below(10) {
            0 => gen::value(r, &mut m, 1),
            _ => {
                let t = gen::text(r, 6);
                gen::str_lit(r, &mut m, &t);
            }
        }
        parts.push(m);
    }
    if r.below(10) < 7 {
        let mut e = String::from("\"extensions\":");
        if r.one_in(10) {
            gen::value(r, &mut e, 1);
        } else {
            e.push('{');
            let code = if r.one_in(8) { r.pick(&CANARIES).to_string() } else { r.pick(CODES).to_string() };
            e.push_str("\"code\":");
            if r.one_in(10) {
                gen::value(r, &mut e, 1);
            } else {
                gen::str_lit(r, &mut e, &code);
            }
            if r.one_in(4) {
                e.push_str(",\"detail\":");
                gen::value(r, &mut e, 2);
            }
            if r.one_in(30) {
                e.push_str(",\"code\":\"INVALID_CLIENT\"");
            }
            e.push('}');
        }
        parts.push(e);
    }
    if r.coin() {
        parts.push("\"path\":[\"viewer\",0,\"name\"]".into());
    }
    if r.one_in(4) {
        parts.push("\"locations\":[{\"line\":1,\"column\":2}]".into());
    }
    if r.one_in(30) && !parts.is_empty() {
        parts.push(parts[0].clone());
    }
    for i in (1..parts.len()).rev() {
        parts.swap(i, r.below(i + 1));
    }
    out.push('{');
    out.push_str(&parts.join(","));
    out.push('}');
}

pub fn body(r: &mut Rng) -> String {
    if r.one_in(15) {
        let mut s = r.pick(&["", "<html>502 Bad Gateway</html>", "null", "[]", "{", "{}", "\"data\""]).to_string();
        s.push_str(&gen::text(r, 2));
        return s;
    }
    let mut parts: Vec<String> = Vec::new();
    if r.below(10) < 7 {
        let mut d = String::from("\"data\":");
        gen::ws(r, &mut d);
        match r.below(6) {
            0 => d.push_str("null"),
            1 => gen::value(r, &mut d, 3),
            _ => {
                let n = r.len(3, 8);
                gen::object(r, &mut d, 3, n)
            }
        }
        parts.push(d);
    }
    if r.coin() {
        let mut e = String::from("\"errors\":");
        if r.one_in(10) {
            gen::value(r, &mut e, 2);
        } else {
            e.push('[');
            for i in 0..r.len(3, 25) {
                if i > 0 {
                    e.push(',');
                }
                error(r, &mut e);
            }
            e.push(']');
        }
        parts.push(e);
    }
    if r.one_in(6) {
        let mut x = String::from("\"extensions\":");
        gen::value(r, &mut x, 2);
        parts.push(x);
    }
    if r.one_in(15) {
        parts.push(r.pick(&["\"data\":null", "\"data\":{\"a\":1}", "\"errors\":[]", "\"\\u0064ata\":null"]).to_string());
    }
    for i in (1..parts.len()).rev() {
        parts.swap(i, r.below(i + 1));
    }
    let mut out = String::from("{");
    out.push_str(&parts.join(","));
    out.push('}');
    out
}

impl Target for Graphql {
    const NAME: &'static str = "graphql";
    type Input = Answer;

    fn generate(&self, r: &mut Rng) -> Answer {
        let mut b = body(r);
        if r.one_in(3) {
            b = gen::mutate(r, &b, &CANARIES);
        }
        Answer { status: super::token::status(r), body: b }
    }

    fn check(&self, a: &Answer) -> Result<(), String> {
        let env = Envelope::parse(&a.body);
        if let Some(env) = &env {
            match serde_json::from_str::<serde_json::Value>(&a.body) {
                Ok(v) => {
                    if !v.is_object() {
                        return Err("Envelope::parse accepts a body that is not an object: ".into());
                    }
                    if shape(&a.body).top_repeated {
                        return Err("Envelope::parse accepts a repeated top-level key: ".into());
                    }
                    let data = v.get("data").is_some_and(|d| !d.is_null());
                    if env.has_data != data {
                        return Err(format!(
                            "has_data differs from serde_json: has_data {} but serde_json's data is {:?}",
                            env.has_data,
                            v.get("data").map(|d| super::short(&d.to_string(), 80))
                        ));
                    }
                }
                Err(e) if out_of_range(&e) => {}
                Err(e) => return Err(format!("Envelope::parse accepts what serde_json refuses: {e}")),
            }
        }
        if let Verdict::Fail(e) = classify(a.status, None, env.as_ref(), "Op", &self.redactor) {
            for m in std::iter::once(&e.message).chain(&e.messages) {
                if let Some(form) = gen::leaked(m, CANARIES) {
                    return Err(format!("error message holds a secret: {form:?} in {m:?}"));
                }
            }
        }
        Ok(())
    }
}
