//! The vocabulary between a provider's token flow (a plain state machine in the core) and the
//! one driver that performs its actions (`js::server` writes them as records, the package's
//! `client.js` performs them) (quinn-proto's shape: inputs in, actions
//! out, no I/O and no clock of its own). A flow is stepped with what came back from the last
//! action and the time, and answers with the next action.

use crate::error::AuthError;
use crate::event::Event;
use crate::http::{HttpRequest, HttpResponse};
use crate::secret::Secret;
use crate::token::Token;
use alloc::string::String;

/// What the flow asks for next.
#[derive(Debug)]
pub enum Action {
    /// Read the store at the client's key; answer `Input::StoreRead`.
    ReadStore,
    /// Write this refresh token to the store at the client's key; answer `Input::StoreWritten`.
    WriteStore(Secret),
    /// Send the request (a token endpoint: its answer is read up to `http::MAX_BODY_BYTES`)
    /// within `timeout_ms`; answer `Input::Answer`.
    Send { request: HttpRequest, timeout_ms: f64 },
    /// Wait, then answer `Input::Waited`.
    Wait(f64),
    /// Tell `onEvent` (no answer).
    Emit(Event),
    /// Hand this token out: cache it and build its headers (no answer).
    Install(Token),
    /// The flow has ended.
    Done(Result<(), AuthError>),
}

/// What came back from the last action.
#[derive(Debug)]
pub enum Input {
    StoreRead(Result<Option<String>, AuthError>),
    StoreWritten(Result<(), AuthError>),
    Answer(Result<HttpResponse, AuthError>),
    Waited,
}

/// Resending one request until an answer is accepted: attempts and backoff inside a deadline
/// (the rule itself is `retry::delay_ms`).
#[derive(Debug)]
pub struct Retrying {
    attempts: u32,
    deadline: f64,
    single_use: bool,
}

impl Retrying {
    /// `single_use`: the request carries a credential the server consumes (see `retry`).
    pub fn new(deadline: f64, single_use: bool) -> Self {
        Retrying { attempts: 0, deadline, single_use }
    }

    /// Counts an attempt; the time it may take.
    pub fn attempt(&mut self, now: f64) -> f64 {
        self.attempts += 1;
        (self.deadline - now).max(1.0)
    }

    /// After a failed attempt: the `retry` event and the wait before the next one, or `None`.
    pub fn after(&self, err: &AuthError, now: f64) -> Option<(Event, f64)> {
        let delay = crate::retry::delay_ms(self.attempts, err, self.deadline - now, self.single_use)?;
        Some((Event::Retry { attempt: self.attempts, delay_ms: delay, code: err.code }, delay))
    }
}
