//! One module per target. A target generates an input from its own `Rng` and checks one
//! property set on it; `Runner` erases the input type so `main` can drive any target.

use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::rng::Rng;

pub mod base_url;
pub mod callback;
pub mod graphql;
pub mod json;
pub mod redact;
pub mod session;
pub mod token;

pub trait Target {
    const NAME: &'static str;
    type Input: Debug;
    fn generate(&self, r: &mut Rng) -> Self::Input;
    /// `Err` describes the violated property.
    fn check(&self, input: &Self::Input) -> Result<(), String>;
}

pub enum Outcome {
    Pass,
    Fail(String),
    Panic(String),
}

pub trait Runner {
    fn name(&self) -> &'static str;
    /// Generates and checks input `index`; a panic is caught (when panics unwind) and reported.
    fn run(&self, seed: u64, index: u64) -> Outcome;
    /// Input `index`, escaped (`Debug`), cut to `max` characters unless `max` is 0.
    fn show(&self, seed: u64, index: u64, max: usize) -> String;
}

impl<T: Target> Runner for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn run(&self, seed: u64, index: u64) -> Outcome {
        let mut r = Rng::for_input(seed, T::NAME, index);
        match catch_unwind(AssertUnwindSafe(|| self.check(&self.generate(&mut r)))) {
            Ok(Ok(())) => Outcome::Pass,
            Ok(Err(why)) => Outcome::Fail(why),
            Err(_) => Outcome::Panic(crate::take_panic_message()),
        }
    }

    fn show(&self, seed: u64, index: u64, max: usize) -> String {
        let input = self.generate(&mut Rng::for_input(seed, T::NAME, index));
        let s = format!("{input:?}");
        match s.char_indices().nth(max) {
            Some((cut, _)) if max > 0 => format!("{}… ({} chars in all; --replay {index} prints it whole)", &s[..cut], s.chars().count()),
            _ => s,
        }
    }
}

/// Every target, in the order they run.
pub fn all() -> Vec<Box<dyn Runner>> {
    vec![
        Box::new(json::Json),
        Box::new(token::TokenAnswers::new()),
        Box::new(graphql::Graphql::new()),
        Box::new(callback::Callback),
        Box::new(base_url::BaseUrl),
        Box::new(redact::Redact),
        Box::new(session::Sessions::new()),
    ]
}

/// `s` cut to `n` characters for a message.
pub fn short(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}
