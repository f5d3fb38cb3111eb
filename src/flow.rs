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
    /// Stop handing out the cached token (no answer): an exchange's new chain was held back, and
    /// the chain before it (perhaps another user's) must not stand in for it.
    Drop,
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
    /// The whole time the request has (`timeoutMs`): what is left of it never counts as more,
    /// whatever the wall clock did meanwhile (stepped back during a wait, the deadline would
    /// seem hours away, and one attempt unbounded).
    span: f64,
    single_use: bool,
    /// The error that made the last retry, and the time the last attempt was given.
    cause: Option<AuthError>,
    budget: f64,
}

/// A resend given less than this by the deadline that times out had no fair chance: what made
/// it resend is the error worth reporting. One given more met a server that did not answer.
const SQUEEZED_MS: f64 = 1000.0;

impl Retrying {
    /// From `now`, within `span_ms`; `single_use`: the request carries a credential the server
    /// consumes (see `retry`).
    pub fn new(now: f64, span_ms: f64, single_use: bool) -> Self {
        Retrying { attempts: 0, deadline: now + span_ms, span: span_ms, single_use, cause: None, budget: 0.0 }
    }

    /// What is left of the time at `now`, never more than the whole of it.
    fn left(&self, now: f64) -> f64 {
        (self.deadline - now).min(self.span)
    }

    /// Counts an attempt; the time it may take. A resend of a single-use credential that would
    /// have under `SQUEEZED_MS` (the wall clock jumped during the wait, or the wait ran late)
    /// is not made: `None`, and `given_up` says why it was resending (a refusal that took
    /// nothing: the credential stays good). Sent, it could time out after reaching the server,
    /// and count as spent.
    pub fn attempt(&mut self, now: f64) -> Option<f64> {
        let left = self.left(now);
        if self.attempts > 0 && self.single_use && left < SQUEEZED_MS {
            return None;
        }
        self.attempts += 1;
        self.budget = left.max(1.0);
        Some(self.budget)
    }

    /// The failure that made it resend, for a resend that was not made (`attempt`).
    pub fn given_up(&mut self) -> AuthError {
        self.cause.take().unwrap_or_else(|| AuthError::new(crate::error::ErrorCode::Timeout, "no time was left to send the request again"))
    }

    /// After a failed attempt: the `retry` event and the wait before the next one, or the error
    /// to report. A resend squeezed by the deadline (`SQUEEZED_MS`) that times out reports what
    /// made it resend (a 503, a dropped connection), not its own timeout; not for a single-use
    /// credential, whose timed-out request may have reached the server (that is what the
    /// session must hear).
    pub fn after(&mut self, err: AuthError, now: f64) -> Result<(Event, f64), AuthError> {
        match crate::retry::delay_ms(self.attempts, &err, self.left(now), self.single_use) {
            Some(delay) => {
                let event = Event::Retry { attempt: self.attempts, delay_ms: delay, code: err.code };
                // A timed-out resend does not replace the failure that started the resending.
                if err.code != crate::error::ErrorCode::Timeout || self.cause.is_none() {
                    self.cause = Some(err);
                }
                Ok((event, delay))
            }
            None => Err(match self.cause.take() {
                Some(cause) if err.code == crate::error::ErrorCode::Timeout && !self.single_use && self.budget < SQUEEZED_MS => cause,
                _ => err,
            }),
        }
    }
}
