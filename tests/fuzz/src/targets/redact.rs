//! `redact`: `secret::Redactor::new` + `add` + `clean` on texts built from the secrets themselves.
//!
//! The output never contains a secret of 4 or more bytes in any form `gen::echo_forms` writes (as
//! is, percent-encoded either way and in either hex case, JSON-escaped either way: what
//! `Redactor` promises to mask) and has at most `max + 1` characters.

use qauth::secret::{Redactor, Secret, MIN_REDACT_LEN};

use super::Target;
use crate::gen;
use crate::rng::Rng;

pub struct Redact;

#[derive(Debug)]
pub struct Case {
    pub configured: Vec<String>,
    /// Added with `Redactor::add` (few enough to stay inside its live-set cap).
    pub live: Vec<String>,
    pub text: String,
    pub max: usize,
}

fn secret(r: &mut Rng) -> String {
    const ALPHABET: &[&str] = &["*", "*", "*", "*", "a", "b", "x", "%", "\"", "/", "+", " ", "\\", "é", "2", "F", "…", "\n", "[", "]", "redacted"];
    let n = if r.one_in(8) { r.range(1, 3) } else { r.range(4, 12) };
    if r.one_in(10) {
        return "*".repeat(n);
    }
    // Long and alike (a server's own tokens sharing a prefix): texts made of them are costly to
    // read through, so the budget runs out and the text is given up.
    if r.one_in(40) {
        return format!("{}{}", "a*".repeat(r.range(50, 250)), r.pick(&["B", "C", "%", "\\"]));
    }
    (0..n).map(|_| r.pick(ALPHABET)).collect()
}

impl Target for Redact {
    const NAME: &'static str = "redact";
    type Input = Case;

    fn generate(&self, r: &mut Rng) -> Case {
        let configured: Vec<String> = (0..r.range(0, 3)).map(|_| secret(r)).collect();
        let live: Vec<String> = (0..r.range(0, 3)).map(|_| secret(r)).collect();
        let all: Vec<&String> = configured.iter().chain(&live).collect();
        let mut text = String::new();
        for _ in 0..r.range(1, 12) {
            match r.below(8) {
                0 | 1 if !all.is_empty() => text.push_str(r.pick::<&String>(&all)),
                2 if !all.is_empty() => {
                    let s = r.pick(&all);
                    let mut forms = gen::echo_forms(s);
                    let n = forms.len();
                    text.push_str(&forms.swap_remove(r.below(n)));
                }
                3 if !all.is_empty() => {
                    let s = r.pick(&all);
                    let (a, b) = (r.below(s.len() + 1), r.below(s.len() + 1));
                    text.push_str(s.get(a.min(b)..a.max(b)).unwrap_or_default());
                }
                4 => text.push_str(&"*".repeat(r.range(1, 6))),
                _ => text.push_str(&gen::text(r, 2)),
            }
        }
        if r.one_in(6) {
            text = gen::mutate(r, &text, &["*", "***", "…"]);
        }
        let chars = text.chars().count();
        let max = if r.coin() { r.range(0, chars + 4) } else { r.pick(&[0, 1, 3, 10, 300]) };
        Case { configured, live, text, max }
    }

    fn check(&self, c: &Case) -> Result<(), String> {
        let configured: Vec<Secret> = c.configured.iter().map(Secret::new).collect();
        let mut redactor = Redactor::new(&configured.iter().collect::<Vec<_>>());
        for s in &c.live {
            redactor.add(&Secret::new(s.as_str()));
        }
        let out = redactor.clean(&c.text, c.max);
        let n = out.chars().count();
        if n > c.max + 1 {
            return Err(format!("output longer than max + 1: {n} characters for max {}: {out:?}", c.max));
        }
        let long = c.configured.iter().chain(&c.live).filter(|s| s.len() >= MIN_REDACT_LEN);
        if let Some(form) = gen::leaked(&out, long.map(String::as_str)) {
            return Err(format!("output holds a secret: {form:?} in {out:?}"));
        }
        Ok(())
    }
}
