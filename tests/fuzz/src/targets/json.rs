//! `json`: `qauth::json::parse` against serde_json, and `json::members` against `parse`.
//!
//! - ours accepts ⇒ serde_json accepts, and the values are equal (objects as member sets;
//!   integers below 2^53 exactly, other numbers within a relative error of 1e-9);
//! - serde_json accepts, no object repeats a key, nesting ≤ 64 (and no object over the documented
//!   256 members) ⇒ ours accepts;
//! - `members(text, skip)` succeeds whenever `parse` returns an object, and only on a JSON
//!   object (skipped values are checked for syntax only: a repeat inside a skipped `data` is
//!   `JSON.parse`'s to resolve, not a second meaning for the classifier).
//!
//! serde_json refuses numbers beyond f64 (`1e999`), which `JSON.parse` (and ours) read as ±Infinity;
//! such documents are not compared.

use qauth::json::Value;

use super::{short, Target};
use crate::gen;
use crate::rng::Rng;

pub struct Json;

impl Target for Json {
    const NAME: &'static str = "json";
    type Input = String;

    fn generate(&self, r: &mut Rng) -> String {
        let doc = gen::document(r);
        if r.one_in(3) {
            gen::mutate(r, &doc, &[])
        } else {
            doc
        }
    }

    fn check(&self, text: &String) -> Result<(), String> {
        let ours = qauth::json::parse(text);
        let walked = qauth::json::members(text, |_, c| c.skip().map(|_| ()));
        let theirs = serde_json::from_str::<serde_json::Value>(text);
        let mut problems = Vec::new();
        match (&ours, &theirs) {
            (Some(o), Ok(t)) => {
                if let Err(e) = same(o, t, &mut String::from("$")) {
                    problems.push(e);
                }
            }
            (Some(_), Err(e)) if out_of_range(e) => {}
            (Some(_), Err(e)) => problems.push(format!("parse() accepts what serde_json refuses: {e}")),
            (None, Ok(_)) => {
                let s = shape(text);
                if !s.repeated && s.depth <= 64 && s.max_members <= 256 {
                    problems.push(format!("parse() refuses what serde_json accepts: depth {}, no repeated key, at most {} members", s.depth, s.max_members));
                }
            }
            (None, Err(_)) => {}
        }
        let is_obj = matches!(ours, Some(Value::Obj(_)));
        if is_obj && walked.is_none() {
            problems.push("members() refuses an object parse() accepts".to_string());
        }
        let json_object = matches!(&theirs, Ok(serde_json::Value::Object(_))) || theirs.as_ref().err().is_some_and(out_of_range);
        if walked.is_some() && !json_object {
            problems.push("members() accepts what is not a JSON object".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// serde_json's refusal of a number beyond f64.
pub fn out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

/// Ours against serde_json's value; `path` names where they part.
fn same(a: &Value, b: &serde_json::Value, path: &mut String) -> Result<(), String> {
    use serde_json::Value as S;
    let ok = match (a, b) {
        (Value::Null, S::Null) => true,
        (Value::Bool(x), S::Bool(y)) => x == y,
        (Value::Str(x), S::String(y)) => x == y,
        (Value::Num(x), S::Number(n)) => num_eq(*x, n),
        (Value::Arr(x), S::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                same(v, w, path)?;
                path.truncate(len);
            }
            true
        }
        (Value::Obj(m), S::Object(o)) if m.len() == o.len() => {
            for (k, v) in m {
                let Some(w) = o.get(k) else {
                    return Err(format!("a value differs from serde_json's: at {path}, member {k:?} missing from serde_json's object"));
                };
                let len = path.len();
                path.push_str(&format!(".{k:?}"));
                same(v, w, path)?;
                path.truncate(len);
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let class = if matches!(a, Value::Num(_)) && b.is_number() { "a number differs from serde_json's" } else { "a value differs from serde_json's" };
        Err(format!("{class}: at {path}, ours {}, serde_json {}", short(&format!("{a:?}"), 200), short(&b.to_string(), 200)))
    }
}

fn num_eq(x: f64, n: &serde_json::Number) -> bool {
    let int = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    if let Some(i) = int.filter(|i| i.unsigned_abs() < 1 << 53) {
        return x == i as f64;
    }
    let y = n.as_f64().unwrap_or(f64::NAN);
    // At the edge of the range the reader's arithmetic may round past f64::MAX: infinity there is
    // the documented "out of range" answer, not a wrong value.
    let at_edge = x.is_infinite() && x.signum() == y.signum() && y.abs() >= f64::MAX * (1.0 - 1e-9);
    at_edge || x.is_finite() && (x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()))
}

/// What serde_json's `Value` cannot tell (it keeps the last of repeated keys).
#[derive(Debug, Default)]
pub struct Shape {
    /// Deepest nesting of arrays and objects.
    pub depth: usize,
    /// Some object repeats a key (compared after unescaping).
    pub repeated: bool,
    /// The top-level object repeats a key.
    pub top_repeated: bool,
    pub max_members: usize,
}

/// The shape of a document serde_json accepted (so its strings are well formed).
pub fn shape(text: &str) -> Shape {
    let b = text.as_bytes();
    let mut stack: Vec<Option<Vec<String>>> = Vec::new();
    let mut s = Shape::default();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let lit = text.get(start..=i.min(b.len() - 1)).unwrap_or("\"\"");
                i += 1;
                let next = b[i.min(b.len())..].iter().find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
                if next == Some(&b':') {
                    let depth = stack.len();
                    if let Some(Some(keys)) = stack.last_mut() {
                        let k = if lit.contains('\\') { serde_json::from_str::<String>(lit).unwrap_or_default() } else { lit[1..lit.len() - 1].to_string() };
                        if keys.contains(&k) {
                            s.repeated = true;
                            s.top_repeated |= depth == 1;
                        }
                        keys.push(k);
                    }
                }
                continue;
            }
            b'{' => stack.push(Some(Vec::new())),
            b'[' => stack.push(None),
            b'}' | b']' => {
                if let Some(Some(keys)) = stack.pop() {
                    s.max_members = s.max_members.max(keys.len());
                }
            }
            _ => {}
        }
        s.depth = s.depth.max(stack.len());
        i += 1;
    }
    s
}
