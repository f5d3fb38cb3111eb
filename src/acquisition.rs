//! One Qflow token acquisition as a state machine (`flow::Action` out, `flow::Input` in): every
//! decision about getting a token, in one place and under `cargo test`; the package's JS driver
//! only performs the actions.
//!
//! In order: a token held back because its rotated refresh token could not be saved is saved
//! first and, if still valid, handed out; then, per grant, the store is read when the session
//! wants it, the session picks the grant (`qflow::Session`: refresh, else password, with the
//! fallback event), the request is sent with retries inside its own `timeoutMs` (`flow::Retrying`), and
//! a new refresh token is written to the store **before** its access token is installed (RFC
//! 9700 §4.14.2: a rotated token that is lost ends the chain). A failure goes back to the
//! session, which says whether another grant is worth trying.

use alloc::collections::VecDeque;

use crate::error::AuthError;
use crate::event::Event;
use crate::flow::{Action, Input, Retrying};
use crate::qflow::{After, Grant, QflowConfig, Session};
use crate::secret::{Redactor, Secret};
use crate::token::{parse_token_response, Token};

/// What a client holds back and its store lacks (its save failed), if anything: a rotated
/// refresh token, or the empty value of an exchange's new chain without one. What must not be
/// lost when the client goes (`Acquisition::flush`).
pub fn unsaved(session: &Session, held: &Option<Token>) -> Option<Secret> {
    let t = held.as_ref().filter(|_| session.has_store())?;
    t.refresh.clone().or_else(|| session.unsaved.then(|| Secret::new(alloc::string::String::new())))
}

/// What an acquisition works on: the client's configuration and the state that outlives one
/// acquisition.
pub struct Ctx<'a> {
    pub cfg: &'a QflowConfig,
    pub session: &'a mut Session,
    /// A token whose refresh token is not saved yet: held back until it is.
    pub held: &'a mut Option<Token>,
    /// Every live credential, for redacting server text; new tokens are added as they arrive.
    pub redactor: &'a mut Redactor,
}

#[derive(Debug)]
enum Phase {
    /// Save a held token first (or begin).
    Start,
    /// Waiting for the held token's refresh token to be written.
    SavingHeld(Token),
    /// Read the store if the session wants it, then pick a grant.
    NextGrant,
    /// An exchange reading what the store holds before it sends its code: the chain before it,
    /// superseded (never adopted back once the new chain's save has failed).
    Superseding(Grant),
    ReadingStore,
    /// A grant's request is out (or about to be resent).
    Sending(Grant, Retrying, f64),
    Waiting(Grant, Retrying, f64),
    /// A new token's refresh token is being written; `f64`: when the grant started.
    Saving(Grant, Token, f64),
    Finished,
}

/// One acquisition: `step` it with the last action's answer until it is `Action::Done`.
#[derive(Debug)]
pub struct Acquisition {
    phase: Phase,
    out: VecDeque<Action>,
    /// Only the held token's save, no grant (a client being freed).
    flush: bool,
    /// The store was read before a held token's save (what it holds may be newer).
    checked: bool,
}

impl Acquisition {
    /// A refresh or password grant (whichever the session picks), each grant within
    /// `cfg.timeout_ms`.
    pub fn new(ctx: &mut Ctx) -> Self {
        ctx.session.begin();
        Acquisition { phase: Phase::Start, out: VecDeque::new(), flush: false, checked: false }
    }

    /// A client going away (`free()`): the save of a token held back, under the same rule as at
    /// the start of an acquisition, and nothing else (no grant, nothing handed out). `None` when
    /// nothing is held.
    pub fn flush(ctx: &mut Ctx) -> Option<Self> {
        unsaved(ctx.session, ctx.held)?;
        Some(Acquisition { phase: Phase::Start, out: VecDeque::new(), flush: true, checked: false })
    }

    /// An authorization-code exchange: a new chain, so a token held back from the old one is
    /// dropped once the code is answered (kept, to be saved, if it is refused).
    pub fn exchange(ctx: &mut Ctx, grant: Grant, now: f64) -> Self {
        let mut a = Acquisition { phase: Phase::NextGrant, out: VecDeque::new(), flush: false, checked: true };
        if let Grant::Code { code, .. } = &grant {
            if let Err(e) = ctx.session.exchange_started(code) {
                a.finish(Err(e));
                return a;
            }
        }
        if ctx.session.has_store() {
            a.out.push_back(Action::ReadStore);
            a.phase = Phase::Superseding(grant);
        } else {
            a.send(ctx, grant, now);
        }
        a
    }

    /// The next action, after `input` (the answer to the previous one, if it expects one).
    pub fn step(&mut self, ctx: &mut Ctx, input: Option<Input>, now: f64) -> Action {
        if let Some(input) = input {
            self.handle(ctx, input, now);
        }
        loop {
            if let Some(a) = self.out.pop_front() {
                return a;
            }
            match core::mem::replace(&mut self.phase, Phase::Finished) {
                // A held token's refresh token is written only over what this client knows of: the
                // store is read first, and a token there that it neither wrote nor spent (another
                // isolate's rotation, a new sign-in on the key) is newer: that one is used and the
                // held token dropped, never written back over it.
                Phase::Start => {
                    let value = unsaved(ctx.session, ctx.held);
                    if value.is_some() && !self.checked {
                        self.checked = true;
                        self.phase = Phase::ReadingStore;
                        return Action::ReadStore;
                    }
                    match ctx.held.take().filter(|_| ctx.session.has_store()) {
                        Some(t) => match value {
                            Some(value) => {
                                self.phase = Phase::SavingHeld(t);
                                return Action::WriteStore(value);
                            }
                            None => self.held_saved(ctx.cfg, t, now),
                        },
                        None if self.flush => self.finish(Ok(())),
                        None => self.phase = Phase::NextGrant,
                    }
                }
                Phase::NextGrant => {
                    if ctx.session.wants_store_read() {
                        self.phase = Phase::ReadingStore;
                        return Action::ReadStore;
                    }
                    match ctx.session.next_grant(ctx.cfg) {
                        Ok((grant, fallback)) => {
                            if fallback {
                                self.out.push_back(Action::Emit(Event::FallbackToPassword));
                            }
                            self.send(ctx, grant, now);
                        }
                        Err(e) => self.finish(Err(e)),
                    }
                }
                Phase::Finished => return Action::Done(Err(AuthError::new(crate::error::ErrorCode::ServerError, "the acquisition has ended"))),
                waiting => {
                    // Waiting for an input that did not come: the driver's bug, reported as such.
                    self.phase = waiting;
                    return Action::Done(Err(AuthError::new(crate::error::ErrorCode::ServerError, "an acquisition step was skipped")));
                }
            }
        }
    }

    /// The driver gave this acquisition up (it stopped making progress: in workerd, its request
    /// was cancelled). What it held goes back to the session, under the same rules as a failure:
    /// a refresh token whose request may have reached the server counts as spent (never sent
    /// again), one provably not sent yet (waiting to resend) stays usable, and a token whose
    /// refresh token was being saved is held back to be saved first next time.
    pub fn abandon(self, ctx: &mut Ctx) {
        let given_up = |unsent: bool| {
            let mut e = AuthError::new(crate::error::ErrorCode::Timeout, "the acquisition was given up");
            e.unsent = unsent;
            e
        };
        match self.phase {
            Phase::Sending(grant, ..) => {
                let _ = ctx.session.after_failure(&grant, given_up(false));
            }
            Phase::Waiting(grant, ..) | Phase::Superseding(grant) => {
                let _ = ctx.session.after_failure(&grant, given_up(true));
            }
            Phase::Saving(_, token, _) | Phase::SavingHeld(token) => *ctx.held = Some(token),
            _ => {}
        }
    }

    fn handle(&mut self, ctx: &mut Ctx, input: Input, now: f64) {
        match (core::mem::replace(&mut self.phase, Phase::Finished), input) {
            (Phase::Superseding(grant), Input::StoreRead(r)) => match r {
                Ok(v) => {
                    ctx.session.supersede(v);
                    self.send(ctx, grant, now);
                }
                // Not knowing the chain it would end, the code is not sent (it stays good): a
                // later save of the new chain could not tell the old one from a newer sign-in.
                Err(mut e) => {
                    e.unsent = true;
                    self.failed(ctx, &grant, e);
                }
            },
            (Phase::SavingHeld(t), Input::StoreWritten(r)) => match r {
                Ok(()) if self.flush => {
                    ctx.session.saved();
                    self.finish(Ok(()));
                }
                Ok(()) => {
                    ctx.session.saved();
                    self.held_saved(ctx.cfg, t, now);
                }
                Err(e) => {
                    *ctx.held = Some(t);
                    self.finish(Err(e));
                }
            },
            (Phase::ReadingStore, Input::StoreRead(r)) => {
                match r {
                    Ok(saved) => {
                        if let Some(adopted) = ctx.session.store_read(saved) {
                            ctx.redactor.add(adopted);
                            // A token held back is older than one the store got meanwhile
                            // (another isolate's rotation, a new sign-in on the key): never
                            // written over it, dropped.
                            *ctx.held = None;
                            ctx.session.unsaved = false;
                        }
                    }
                    // Nothing is written blind over what could not be read: the token stays held.
                    Err(e) if ctx.held.is_some() => return self.finish(Err(e)),
                    Err(e) => {
                        if let Err(e) = ctx.session.store_read_failed(e) {
                            return self.finish(Err(e));
                        }
                    }
                }
                self.phase = Phase::Start;
            }
            (Phase::Sending(grant, mut retrying, started), Input::Answer(r)) => {
                let parsed = r.and_then(|resp| parse_token_response(&resp, now, ctx.redactor));
                match parsed {
                    Ok(token) => self.received(ctx, grant, token, started, now),
                    Err(e) => match retrying.after(e, now) {
                        Ok((event, delay)) => {
                            self.out.push_back(Action::Emit(event));
                            self.out.push_back(Action::Wait(delay));
                            self.phase = Phase::Waiting(grant, retrying, started);
                        }
                        Err(e) => self.failed(ctx, &grant, e),
                    },
                }
            }
            (Phase::Waiting(grant, mut retrying, started), Input::Waited) => match retrying.attempt(now) {
                Some(timeout_ms) => {
                    self.out.push_back(Action::Send { request: ctx.cfg.token_request(&grant), timeout_ms });
                    self.phase = Phase::Sending(grant, retrying, started);
                }
                None => {
                    let e = retrying.given_up();
                    self.failed(ctx, &grant, e);
                }
            },
            (Phase::Saving(grant, token, started), Input::StoreWritten(r)) => match r {
                Ok(()) => {
                    ctx.session.saved();
                    self.install(grant, token, started, now, true);
                }
                Err(e) => {
                    // The server took the old token and answered: keep the new one until it is saved.
                    // A new chain's (an exchange's) is the one to use from now on: the token of
                    // the chain before it is no longer handed out meanwhile.
                    if matches!(grant, Grant::Code { .. }) {
                        self.out.push_back(Action::Drop);
                    }
                    *ctx.held = Some(token);
                    self.failed(ctx, &grant, e);
                }
            },
            // An answer to a question not asked: the driver's bug; nothing is decided on it.
            _ => self.finish(Err(AuthError::new(crate::error::ErrorCode::ServerError, "an unexpected step answer"))),
        }
    }

    /// Sends `grant`'s first attempt. Each grant has the whole `timeoutMs` for itself and its
    /// retries, from now: a slow store read before it, or a refresh that timed out before a
    /// password fallback, must not leave it no time to answer (a refresh token whose request
    /// timed out counts as spent).
    fn send(&mut self, ctx: &Ctx, grant: Grant, now: f64) {
        // A refresh token or a code is single use: resent only where the server provably did
        // not take it (`retry`).
        let mut retrying = Retrying::new(now, ctx.cfg.timeout_ms, !matches!(grant, Grant::Password));
        // A first attempt always has the whole time.
        let timeout_ms = retrying.attempt(now).unwrap_or(ctx.cfg.timeout_ms);
        self.out.push_back(Action::Send { request: ctx.cfg.token_request(&grant), timeout_ms });
        self.phase = Phase::Sending(grant, retrying, now);
    }

    /// A token answered: its credentials join the redaction set; a new refresh token is saved
    /// before anything else.
    fn received(&mut self, ctx: &mut Ctx, grant: Grant, token: Token, started: f64, now: f64) {
        ctx.redactor.add(&token.access);
        if let Some(rt) = &token.refresh {
            ctx.redactor.add(rt);
        }
        let new_chain = matches!(grant, Grant::Code { .. });
        if new_chain {
            // The chain before it is over: a token of it held back is not saved any more.
            *ctx.held = None;
        }
        let must_save = ctx.session.on_grant(&token, new_chain) && ctx.session.has_store();
        // A new chain without a refresh token empties the store: the chain before it is over.
        let value = token.refresh.clone().or_else(|| new_chain.then(|| Secret::new(alloc::string::String::new())));
        match value.filter(|_| must_save) {
            Some(rt) => {
                self.out.push_back(Action::WriteStore(rt));
                self.phase = Phase::Saving(grant, token, started);
            }
            None => self.install(grant, token, started, now, false),
        }
    }

    /// The held token is saved now: handed out if the cache would still hand it out (outside
    /// the refresh skew: one about to expire is no better than none), else a grant is needed.
    fn held_saved(&mut self, cfg: &QflowConfig, t: Token, now: f64) {
        if crate::cache::usable_at(&t, cfg.refresh_skew_s * 1000.0, now) {
            let assumed = t.expiry_assumed.then_some(t.lifetime_ms / 1000.0);
            self.out.push_back(Action::Install(t));
            self.out.push_back(Action::Emit(Event::RefreshTokenRotated));
            if let Some(expires_in_s) = assumed {
                self.out.push_back(Action::Emit(Event::ExpiryAssumed { expires_in_s }));
            }
            self.finish(Ok(()));
        } else {
            self.out.push_back(Action::Emit(Event::RefreshTokenRotated));
            self.phase = Phase::NextGrant;
        }
    }

    /// Hands `token` out, then says so. Every event comes after the install: an `onEvent` callback
    /// that asks for a token (it may call back in) gets this one.
    fn install(&mut self, grant: Grant, token: Token, started: f64, now: f64, rotated: bool) {
        let (ms, expires_in_s, assumed) = (crate::event::elapsed_ms(started, now), token.lifetime_ms / 1000.0, token.expiry_assumed);
        let event = match grant {
            Grant::Refresh(_) => Event::TokenRefreshed { ms, expires_in_s },
            _ => Event::TokenAcquired { grant: grant.name(), ms, expires_in_s },
        };
        self.out.push_back(Action::Install(token));
        if rotated {
            self.out.push_back(Action::Emit(Event::RefreshTokenRotated));
        }
        if assumed {
            self.out.push_back(Action::Emit(Event::ExpiryAssumed { expires_in_s }));
        }
        self.out.push_back(Action::Emit(event));
        self.finish(Ok(()));
    }

    fn failed(&mut self, ctx: &mut Ctx, grant: &Grant, e: AuthError) {
        match ctx.session.after_failure(grant, e) {
            After::Again => self.phase = Phase::NextGrant,
            After::Fail(e) => self.finish(Err(e)),
        }
    }

    fn finish(&mut self, r: Result<(), AuthError>) {
        self.out.push_back(Action::Done(r));
        self.phase = Phase::Finished;
    }
}

#[cfg(test)]
mod tests {
    //! Whole acquisitions, driven by a simulated host: each test scripts the identity server's
    //! answers and the store, and reads the transcript of actions the flow asked for.
    use super::*;
    use crate::error::ErrorCode;
    use crate::http::{HttpRequest, HttpResponse};
    use crate::qflow::QflowOptions;

    fn cfg(f: impl FnOnce(&mut QflowOptions)) -> QflowConfig {
        let mut o = QflowOptions {
            client_id: Some("client".into()),
            client_secret: Some("CANARY-cs-1".into()),
            subscription_key: Some("CANARY-sk-1".into()),
            username: Some("joe@example.com".into()),
            password: Some("CANARY-pw-1".into()),
            identity_url: Some("http://127.0.0.1:9".into()),
            api_url: Some("http://127.0.0.1:9".into()),
            persisted: true,
            ..Default::default()
        };
        f(&mut o);
        QflowConfig::new(o).unwrap()
    }

    /// The host: a store, a clock, and the identity server as a function of the request.
    struct Host {
        cfg: QflowConfig,
        session: Session,
        held: Option<Token>,
        redactor: Redactor,
        stored: Option<String>,
        store_fails: bool,
        now: f64,
        log: Vec<String>,
        /// How long each store read and each request take (the clock moves by it), and the
        /// time each request was given.
        read_ms: f64,
        send_ms: f64,
        timeouts: Vec<f64>,
        /// How far the wall clock is stepped during each wait (back when negative).
        wait_step: f64,
    }

    /// A sign-in client's configuration: no password, a store key of its own.
    fn refresh_only() -> QflowConfig {
        cfg(|o| {
            o.username = None;
            o.password = None;
            o.store_key = Some("session:1".into());
        })
    }

    /// An authorization code grant for `c`.
    fn code(c: &str) -> Grant {
        Grant::Code { code: Secret::new(c), verifier: Secret::new("v".repeat(43)), redirect_uri: "http://127.0.0.1:9/cb".into() }
    }

    fn host(cfg: QflowConfig, has_store: bool, stored: Option<&str>) -> Host {
        let session = Session::new(&cfg, has_store);
        let redactor = Redactor::new(&cfg.secrets());
        Host {
            cfg,
            session,
            held: None,
            redactor,
            stored: stored.map(String::from),
            store_fails: false,
            now: 1_000_000.0,
            log: vec![],
            read_ms: 0.0,
            send_ms: 5.0,
            timeouts: vec![],
            wait_step: 0.0,
        }
    }

    fn ok(access: &str, refresh: Option<&str>) -> Result<HttpResponse, AuthError> {
        let rt = refresh.map_or(String::new(), |r| format!(",\"refresh_token\":\"{r}\""));
        Ok(HttpResponse {
            status: 200,
            retry_after: None,
            body: format!("{{\"access_token\":\"{access}\",\"expires_in\":3600,\"token_type\":\"Bearer\"{rt}}}"),
        })
    }

    fn status(code: u16, retry_after: Option<&str>, body: &str) -> Result<HttpResponse, AuthError> {
        Ok(HttpResponse { status: code, retry_after: retry_after.map(String::from), body: body.into() })
    }

    fn refused() -> Result<HttpResponse, AuthError> {
        status(400, None, r#"{"error":"invalid_grant"}"#)
    }

    /// What a request asks for, as the transcript shows it: the grant and its credential.
    fn describe(r: &HttpRequest) -> String {
        let field = |k: &str| r.body.split('&').find_map(|p| p.strip_prefix(k).and_then(|v| v.strip_prefix('='))).unwrap_or("").to_string();
        match field("grant_type").as_str() {
            "refresh_token" => format!("send refresh {}", field("refresh_token")),
            "authorization_code" => format!("send code {}", field("code")),
            g => format!("send {g}"),
        }
    }

    impl Host {
        fn ctx(&mut self) -> Ctx<'_> {
            Ctx { cfg: &self.cfg, session: &mut self.session, held: &mut self.held, redactor: &mut self.redactor }
        }

        /// Runs an acquisition to its end; `server` answers each request (in order of sending).
        fn run(&mut self, mut a: Acquisition, mut server: impl FnMut(&str) -> Result<HttpResponse, AuthError>) -> Result<Option<Token>, AuthError> {
            let mut input = None;
            let mut installed = None;
            for _ in 0..100 {
                let now = self.now;
                let action = a.step(&mut self.ctx(), input.take(), now);
                match action {
                    Action::ReadStore => {
                        self.log.push(format!("read {}", self.stored.as_deref().unwrap_or("-")));
                        self.now += self.read_ms;
                        input =
                            Some(Input::StoreRead(if self.store_fails { Err(AuthError::new(ErrorCode::StoreFailed, "x")) } else { Ok(self.stored.clone()) }));
                    }
                    Action::WriteStore(v) => {
                        let r = if self.store_fails { Err(AuthError::new(ErrorCode::StoreFailed, "put failed")) } else { Ok(()) };
                        self.log.push(format!("write {}{}", v.expose(), if r.is_err() { " (fails)" } else { "" }));
                        if r.is_ok() {
                            self.stored = Some(v.expose().to_string());
                        }
                        input = Some(Input::StoreWritten(r));
                    }
                    Action::Send { request, timeout_ms, .. } => {
                        let d = describe(&request);
                        self.log.push(d.clone());
                        assert!(timeout_ms >= 1.0 && timeout_ms <= self.cfg.timeout_ms);
                        self.timeouts.push(timeout_ms);
                        self.now += self.send_ms;
                        input = Some(Input::Answer(server(&d)));
                    }
                    Action::Wait(ms) => {
                        self.log.push(format!("wait {ms}"));
                        self.now += ms + self.wait_step;
                        input = Some(Input::Waited);
                    }
                    Action::Emit(e) => self.log.push(format!("event {}", e.parts().0)),
                    Action::Drop => self.log.push("drop".into()),
                    Action::Install(t) => {
                        self.log.push(format!("install {}", t.access.expose()));
                        installed = Some(t);
                    }
                    Action::Done(r) => {
                        self.log.push(format!("done {}", r.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok")));
                        return r.map(|_| installed);
                    }
                }
            }
            panic!("the acquisition did not end: {:?}", self.log);
        }

        fn acquire(&mut self, server: impl FnMut(&str) -> Result<HttpResponse, AuthError>) -> Result<Option<Token>, AuthError> {
            self.log.clear();
            let a = Acquisition::new(&mut self.ctx());
            self.run(a, server)
        }
    }

    #[test]
    fn a_rotated_refresh_token_is_saved_before_the_access_token_is_installed() {
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        let t = h.acquire(|_| ok("at2", Some("rt2"))).unwrap().unwrap();
        assert_eq!(t.access.expose(), "at2");
        assert_eq!(h.log, ["read rt1", "send refresh rt1", "write rt2", "install at2", "event refresh_token_rotated", "event token_refreshed", "done ok"]);
        // The next refresh uses rt2 and never rt1 again.
        h.acquire(|_| ok("at3", Some("rt3"))).unwrap();
        assert_eq!(h.log[..3], ["read rt2", "send refresh rt2", "write rt3"]);
    }

    #[test]
    fn an_answer_without_a_lifetime_is_installed_for_an_hour_and_says_so() {
        let mut h = host(cfg(|o| o.persisted = false), false, None);
        let body = r#"{"access_token":"at1","token_type":"Bearer"}"#;
        let t = h.acquire(|_| status(200, None, body)).unwrap().unwrap();
        assert_eq!(t.lifetime_ms, 3_600_000.0);
        assert_eq!(h.log, ["send password", "install at1", "event expiry_assumed", "event token_acquired", "done ok"]);
    }

    #[test]
    fn a_held_token_without_a_lifetime_says_so_when_it_is_finally_handed_out() {
        let mut h = host(cfg(|_| {}), true, None);
        h.held = Some(Token::new("at-held".into(), Some("rt-held".into()), None, h.now, "t", 200).unwrap());
        let t = h.acquire(|r| panic!("no request while a held token is valid: {r}")).unwrap().unwrap();
        assert_eq!(t.access.expose(), "at-held");
        assert_eq!(h.log, ["read -", "write rt-held", "install at-held", "event refresh_token_rotated", "event expiry_assumed", "done ok"]);
    }

    #[test]
    fn a_held_token_inside_the_refresh_skew_is_saved_then_refreshed_not_handed_out() {
        // A 2 s token held back 1.5 s ago: its refresh token is saved first, but the token itself
        // has 0.5 s left (inside the skew, capped at half its lifetime): a refresh, not it.
        let mut h = host(cfg(|_| {}), true, None);
        let two_s = crate::json::Value::Num(2.0);
        h.held = Some(Token::new("at-held".into(), Some("rt-held".into()), Some(&two_s), h.now - 1500.0, "t", 200).unwrap());
        h.session.on_token(h.held.as_ref().unwrap());
        let t = h.acquire(|_| ok("at2", Some("rt2"))).unwrap().unwrap();
        assert_eq!(t.access.expose(), "at2");
        assert_eq!(h.log[..4], ["read -", "write rt-held", "event refresh_token_rotated", "send refresh rt-held"]);
        assert!(!h.log.iter().any(|l| l == "install at-held"), "{:?}", h.log);
    }

    #[test]
    fn without_a_store_the_first_grant_is_the_password_and_nothing_is_written() {
        let mut h = host(cfg(|o| o.persisted = false), false, None);
        h.acquire(|_| ok("at1", Some("rt1"))).unwrap();
        assert_eq!(h.log, ["send password", "install at1", "event token_acquired", "done ok"]);
        h.acquire(|_| ok("at2", Some("rt2"))).unwrap();
        assert_eq!(h.log[0], "send refresh rt1");
    }

    #[test]
    fn a_refused_refresh_token_rereads_the_store_then_falls_back_to_the_password() {
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        h.acquire(|r| if r.starts_with("send refresh") { refused() } else { ok("at2", Some("rt2")) }).unwrap();
        assert_eq!(
            h.log,
            [
                "read rt1",
                "send refresh rt1",
                "read rt1",
                "event fallback_to_password",
                "send password",
                "write rt2",
                "install at2",
                "event refresh_token_rotated",
                "event token_acquired",
                "done ok"
            ]
        );
    }

    #[test]
    fn a_newer_token_another_isolate_saved_is_used_after_a_refusal() {
        // The store changes between the two reads: another isolate rotated rt1 -> rt9.
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        let mut reads = 0;
        let mut a = Acquisition::new(&mut h.ctx());
        let mut input = None;
        let mut log = vec![];
        loop {
            match a.step(&mut h.ctx(), input.take(), 0.0) {
                Action::ReadStore => {
                    reads += 1;
                    input = Some(Input::StoreRead(Ok(Some(if reads == 1 { "rt1" } else { "rt9" }.into()))));
                }
                Action::Send { request, .. } => {
                    let d = describe(&request);
                    log.push(d.clone());
                    input = Some(Input::Answer(if d == "send refresh rt1" { refused() } else { ok("at10", Some("rt10")) }));
                }
                Action::WriteStore(_) => input = Some(Input::StoreWritten(Ok(()))),
                Action::Done(r) => {
                    assert!(r.is_ok());
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(log, ["send refresh rt1", "send refresh rt9"], "the newer token, not the password");
    }

    #[test]
    fn a_lost_answer_is_never_resent_with_the_same_refresh_token() {
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        let r = h.acquire(|r| if r.starts_with("send refresh") { Err(AuthError::new(ErrorCode::Timeout, "lost")) } else { ok("at2", Some("rt2")) });
        assert!(r.is_ok());
        assert_eq!(h.log.iter().filter(|l| *l == "send refresh rt1").count(), 1, "{:?}", h.log);
        assert!(h.log.contains(&"send password".to_string()));
    }

    #[test]
    fn a_refused_connection_is_resent_with_backoff_and_the_token_kept() {
        let mut h = host(cfg(|o| o.password = None), true, Some("rt1"));
        let refused_conn = || {
            let mut e = AuthError::new(ErrorCode::Network, "refused");
            e.unsent = true;
            Err(e)
        };
        let e = h.acquire(|_| refused_conn()).unwrap_err();
        assert_eq!(e.code, ErrorCode::Network);
        assert_eq!(
            h.log,
            [
                "read rt1",
                "send refresh rt1",
                "event retry",
                "wait 100",
                "send refresh rt1",
                "event retry",
                "wait 200",
                "send refresh rt1",
                "event retry",
                "wait 400",
                "send refresh rt1",
                "done network"
            ]
        );
        // Never taken by the server: still the token to use.
        h.acquire(|_| ok("at2", Some("rt2"))).unwrap();
        assert_eq!(h.log[1], "send refresh rt1");
    }

    #[test]
    fn each_grant_has_the_whole_timeout_whatever_came_before_it() {
        // A store read that takes most of timeoutMs, then a refresh that times out, then the
        // password fallback: the refresh and the fallback each get the whole timeoutMs (a refresh
        // sent with no time left would time out and count as spent, losing a good token).
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        let t = h.cfg.timeout_ms;
        h.read_ms = t - 200.0;
        h.send_ms = t;
        let timeout = || Err(AuthError::new(ErrorCode::Timeout, "the identity server did not answer within timeoutMs"));
        h.acquire(|r| if r.starts_with("send refresh") { timeout() } else { ok("at2", Some("rt2")) }).unwrap();
        assert_eq!(h.log[..5], ["read rt1", "send refresh rt1", "read rt1", "event fallback_to_password", "send password"]);
        assert_eq!(h.timeouts, [t, t]);
    }

    #[test]
    fn a_503_with_any_retry_after_keeps_the_refresh_token() {
        // Delay-seconds, an HTTP-date, or a value that cannot be read: the server said it is
        // unavailable, so the refresh token was not taken and stays the one to use.
        for ra in ["2", "Mon, 30 Nov 2026 12:00:00 GMT", "-1", "99999999999"] {
            let mut h = host(cfg(|o| o.password = None), true, Some("rt1"));
            let e = h.acquire(|_| status(503, Some(ra), "")).unwrap_err();
            assert_eq!(e.code, ErrorCode::ServerError, "{ra}");
            assert!(h.log.iter().all(|l| !l.starts_with("send refresh") || l == "send refresh rt1"), "{ra}: {:?}", h.log);
            h.acquire(|_| ok("at2", Some("rt2"))).unwrap();
            assert_eq!(h.log[..2], ["read rt1", "send refresh rt1"], "{ra}: the token is still usable");
        }
        // Without one, a 503 may have been processed: the token counts as spent.
        let mut h = host(cfg(|o| o.password = None), true, Some("rt1"));
        assert_eq!(h.acquire(|_| status(503, None, "")).unwrap_err().code, ErrorCode::InvalidGrant);
    }

    #[test]
    fn a_resend_that_runs_out_of_time_reports_what_made_it_resend_unless_single_use() {
        let net = || Err(AuthError::new(ErrorCode::Network, "the identity server could not be reached"));
        let timeout = || Err(AuthError::new(ErrorCode::Timeout, "the identity server did not answer within timeoutMs"));
        // The password: a dropped connection, then a resend squeezed by the deadline (under 1 s
        // left) times out: the dropped connection is the news. With time to spare, the server
        // did not answer: that is.
        for (timeout_ms, code) in [(1000.0, ErrorCode::Network), (10_000.0, ErrorCode::Timeout)] {
            let mut h = host(
                cfg(|o| {
                    o.persisted = false;
                    o.timeout_ms = Some(timeout_ms);
                }),
                false,
                None,
            );
            let mut n = 0;
            let e = h
                .acquire(|_| {
                    n += 1;
                    if n == 1 {
                        net()
                    } else {
                        timeout()
                    }
                })
                .unwrap_err();
            assert_eq!(e.code, code, "{timeout_ms}: {:?}", h.log);
        }
        // A refresh token resent after a 503 that did not take it: its timed-out resend may have
        // reached the server, and the session must hear exactly that.
        let mut h = host(cfg(|o| o.password = None), true, Some("rt1"));
        let mut n = 0;
        let e = h
            .acquire(|_| {
                n += 1;
                if n == 1 {
                    status(503, Some("1"), "")
                } else {
                    timeout()
                }
            })
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidGrant, "spent: {:?}", h.log);
    }

    #[test]
    fn retry_after_is_honoured_within_the_deadline() {
        let mut h = host(cfg(|o| o.persisted = false), false, None);
        let mut n = 0;
        h.acquire(|_| {
            n += 1;
            if n == 1 {
                status(503, Some("2"), "")
            } else {
                ok("at1", None)
            }
        })
        .unwrap();
        assert_eq!(h.log, ["send password", "event retry", "wait 2000", "send password", "install at1", "event token_acquired", "done ok"]);
        // One that would outlast the deadline is not waited for: the error goes to the caller.
        let mut h = host(cfg(|o| o.persisted = false), false, None);
        let e = h.acquire(|_| status(429, Some("10"), "")).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.retry_after, Some(10));
        assert_eq!(h.log, ["send password", "done rate_limited"]);
    }

    #[test]
    fn a_wall_clock_stepped_back_during_a_wait_never_gives_an_attempt_more_than_the_timeout() {
        // Stepped back an hour while waiting out a Retry-After: the deadline seems an hour away,
        // but the resend still has `timeoutMs` at most (the host asserts it on every send).
        let mut h = host(cfg(|o| o.persisted = false), false, None);
        h.wait_step = -3_600_000.0;
        let e = h.acquire(|_| status(503, Some("1"), "")).unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
        assert_eq!(h.timeouts.len(), crate::retry::MAX_ATTEMPTS as usize, "{:?}", h.log);
        assert!(h.timeouts.iter().all(|t| *t <= h.cfg.timeout_ms), "{:?}", h.timeouts);
    }

    #[test]
    fn a_wall_clock_stepped_forward_during_a_wait_does_not_spend_the_refresh_token() {
        // A 503 with Retry-After 1: the refresh token was not taken, and is resent after the
        // wait; the clock jumps a minute meanwhile (a laptop waking). A resend with no time
        // left would time out, maybe after reaching the server, and count the token as spent:
        // it is not made, the 503 stands, and the token is kept for the next call.
        let mut h = host(cfg(|o| o.password = None), true, Some("rt1"));
        h.wait_step = 60_000.0;
        let e = h.acquire(|_| status(503, Some("1"), "")).unwrap_err();
        assert_eq!((e.code, e.retry_after), (ErrorCode::ServerError, Some(1)));
        assert_eq!(h.log, ["read rt1", "send refresh rt1", "event retry", "wait 1000", "done server_error"]);
        h.wait_step = 0.0;
        h.acquire(|_| ok("at2", Some("rt2"))).unwrap();
        assert_eq!(h.log[..2], ["read rt1", "send refresh rt1"], "the same token, still good");
    }

    #[test]
    fn a_failed_save_holds_the_token_back_until_it_is_saved() {
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        h.store_fails = true;
        h.stored = Some("rt1".into());
        // The first read fails too: an error (the saved token may be the only one).
        assert_eq!(h.acquire(|_| ok("at2", Some("rt2"))).unwrap_err().code, ErrorCode::StoreFailed);
        assert_eq!(h.log, ["read rt1", "done store_failed"]);
        // The store reads again, but cannot write: the new token is held, not handed out.
        h.store_fails = false;
        let mut writes = 0;
        let mut a = Acquisition::new(&mut h.ctx());
        let mut input = None;
        let mut installed = vec![];
        let err = loop {
            match a.step(&mut h.ctx(), input.take(), 0.0) {
                Action::ReadStore => input = Some(Input::StoreRead(Ok(Some("rt1".into())))),
                Action::Send { .. } => input = Some(Input::Answer(ok("at2", Some("rt2")))),
                Action::WriteStore(_) => {
                    writes += 1;
                    input = Some(Input::StoreWritten(Err(AuthError::new(ErrorCode::StoreFailed, "put failed"))));
                }
                Action::Install(t) => installed.push(t),
                Action::Done(r) => break r.unwrap_err(),
                _ => {}
            }
        };
        assert_eq!((err.code, writes, installed.len()), (ErrorCode::StoreFailed, 1, 0));
        assert!(h.held.is_some());
        // What a client freed now would save one last time: the held token's refresh token.
        assert_eq!(unsaved(&h.session, &h.held).as_ref().map(|s| s.expose()), Some("rt2"));
        // The next acquisition saves the held token first (over the spent rt1 it reads there)
        // and hands it out, with no request.
        let t = h.acquire(|r| panic!("no request while a held token is valid: {r}")).unwrap().unwrap();
        assert_eq!(t.access.expose(), "at2");
        assert_eq!(h.log, ["read rt1", "write rt2", "install at2", "event refresh_token_rotated", "done ok"]);
        assert!(h.held.is_none());
        assert_eq!(unsaved(&h.session, &h.held), None, "saved: nothing is left to save");
        // A client without a store has nothing to save.
        let mut bare = host(cfg(|o| o.persisted = false), false, None);
        bare.acquire(|_| ok("at1", Some("rt1"))).unwrap();
        assert_eq!(unsaved(&bare.session, &bare.held), None);
    }

    /// rt1 in the store, refreshed to rt2 whose save failed: rt1 spent, rt2 held.
    fn holding_rt2() -> Host {
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        let mut a = Acquisition::new(&mut h.ctx());
        let (mut input, now) = (None, h.now);
        loop {
            match a.step(&mut h.ctx(), input.take(), now) {
                Action::ReadStore => input = Some(Input::StoreRead(Ok(Some("rt1".into())))),
                Action::Send { .. } => input = Some(Input::Answer(ok("at2", Some("rt2")))),
                Action::WriteStore(_) => input = Some(Input::StoreWritten(Err(AuthError::new(ErrorCode::StoreFailed, "put failed")))),
                Action::Done(r) => break assert_eq!(r.unwrap_err().code, ErrorCode::StoreFailed),
                _ => {}
            }
        }
        assert!(h.held.is_some());
        h
    }

    #[test]
    fn a_held_token_is_never_written_over_a_newer_one_in_the_store() {
        // Meanwhile another isolate refreshed (or the user signed in again on this key): rt9 in
        // the store is newer. It is used, and rt2 is never written back over it.
        let mut h = holding_rt2();
        h.stored = Some("rt9".into());
        let t = h.acquire(|_| ok("at10", Some("rt10"))).unwrap().unwrap();
        assert_eq!(t.access.expose(), "at10");
        assert_eq!(h.log[..3], ["read rt9", "send refresh rt9", "write rt10"], "{:?}", h.log);
        assert!(h.held.is_none() && !h.log.iter().any(|l| l.starts_with("write rt2")), "{:?}", h.log);
        // A client freed while holding rt2: the same rule, and nothing else (no grant, no install).
        for (stored, want) in
            [("rt1", vec!["read rt1", "write rt2", "done ok"]), ("rt2", vec!["read rt2", "write rt2", "done ok"]), ("rt9", vec!["read rt9", "done ok"])]
        {
            let mut h = holding_rt2();
            h.stored = Some(stored.into());
            let a = Acquisition::flush(&mut h.ctx()).expect("something to save");
            assert!(h.run(a, |r| panic!("a flush sends nothing: {r}")).unwrap().is_none());
            assert_eq!(h.log, want, "the store held {stored}");
            assert!(h.held.is_none());
        }
        // A store that cannot be read: nothing is written blind, the token stays held.
        let mut h = holding_rt2();
        h.store_fails = true;
        let a = Acquisition::flush(&mut h.ctx()).unwrap();
        assert_eq!(h.run(a, |r| panic!("{r}")).unwrap_err().code, ErrorCode::StoreFailed);
        assert!(h.held.is_some());
        let mut bare = host(cfg(|_| {}), true, None);
        assert!(Acquisition::flush(&mut bare.ctx()).is_none(), "nothing held, nothing to do");
    }

    #[test]
    fn an_exchange_starts_a_new_chain_over_what_the_store_held() {
        let mut h = host(refresh_only(), true, None);
        h.held = Some(Token::new("old".into(), Some("rt-old".into()), None, 0.0, "t", 200).unwrap());
        let grant = Grant::Code { code: Secret::new("code-1"), verifier: Secret::new("v".repeat(43)), redirect_uri: "http://127.0.0.1:9/cb".into() };
        let now = h.now;
        let a = Acquisition::exchange(&mut h.ctx(), grant, now);
        h.run(a, |_| ok("at1", Some("rt1"))).unwrap();
        // The store is read first only to learn the chain it ends (nothing is adopted from it).
        assert_eq!(h.log, ["read -", "send code code-1", "write rt1", "install at1", "event refresh_token_rotated", "event token_acquired", "done ok"]);
        // A code is single use: a lost answer is not resent.
        let grant = Grant::Code { code: Secret::new("code-2"), verifier: Secret::new("v".repeat(43)), redirect_uri: "http://127.0.0.1:9/cb".into() };
        h.log.clear();
        let now = h.now;
        let a = Acquisition::exchange(&mut h.ctx(), grant, now);
        assert_eq!(h.run(a, |_| status(502, None, "")).unwrap_err().code, ErrorCode::ServerError);
        assert_eq!(h.log, ["read rt1", "send code code-2", "done server_error"]);
        // An exchange whose answer holds no refresh token still ends the chain before it: the
        // store is emptied, and the old refresh token is never sent (nor adopted back).
        let grant = Grant::Code { code: Secret::new("code-3"), verifier: Secret::new("v".repeat(43)), redirect_uri: "http://127.0.0.1:9/cb".into() };
        h.log.clear();
        let now = h.now;
        let a = Acquisition::exchange(&mut h.ctx(), grant, now);
        h.run(a, |_| ok("at3", None)).unwrap();
        assert_eq!(h.log[..4], ["read rt1", "send code code-3", "write ", "install at3"]);
        assert_eq!(h.session.refresh_token(), None);
        h.stored = Some("rt1".into());
        h.cfg = refresh_only();
        let e = h.acquire(|r| panic!("the chain before the exchange is not refreshed: {r}")).unwrap_err();
        assert_eq!((e.code, h.log.clone()), (ErrorCode::InvalidGrant, vec!["read rt1".to_string(), "done invalid_grant".to_string()]));
        // Nor is either code sent again when the caller passes it twice (a double submit): the
        // server would revoke what the first exchange issued. Nothing changes, nothing is sent.
        h.held = Some(Token::new("held".into(), Some("rt-held".into()), None, 0.0, "t", 200).unwrap());
        for code in ["code-1", "code-2"] {
            h.log.clear();
            let grant = Grant::Code { code: Secret::new(code), verifier: Secret::new("v".repeat(43)), redirect_uri: "http://127.0.0.1:9/cb".into() };
            let now = h.now;
            let a = Acquisition::exchange(&mut h.ctx(), grant, now);
            let e = h.run(a, |r| panic!("a spent code is never sent: {r}")).unwrap_err();
            assert_eq!((e.code, h.log.clone()), (ErrorCode::InvalidRequest, vec!["done invalid_request".to_string()]));
            assert!(e.message.contains("already sent") && !e.message.contains(code), "{}", e.message);
            assert!(h.held.is_some(), "a refused exchange changes nothing");
        }
    }

    #[test]
    fn an_exchange_whose_save_failed_is_never_traded_for_the_chain_before_it() {
        // A client that never saw the store (a new isolate, a restarted broker object): the
        // previous sign-in's rt-ann is there. Joe's exchange answers rt-joe, whose save fails.
        let signed_in = |answer: Option<&str>| {
            let mut h = host(refresh_only(), true, Some("rt-ann"));
            let now = h.now;
            let mut a = Acquisition::exchange(&mut h.ctx(), code("joe"), now);
            let mut input = None;
            loop {
                match a.step(&mut h.ctx(), input.take(), now) {
                    Action::ReadStore => input = Some(Input::StoreRead(Ok(Some("rt-ann".into())))),
                    Action::Send { .. } => input = Some(Input::Answer(ok("at-joe", answer))),
                    Action::WriteStore(_) => input = Some(Input::StoreWritten(Err(AuthError::new(ErrorCode::StoreFailed, "put failed")))),
                    Action::Done(r) => break assert_eq!(r.unwrap_err().code, ErrorCode::StoreFailed),
                    _ => {}
                }
            }
            h
        };
        // The next call, and free(), save joe's chain over ann's: ann's was superseded.
        let mut h = signed_in(Some("rt-joe"));
        let t = h.acquire(|r| panic!("joe's held token is handed out, nothing sent: {r}")).unwrap().unwrap();
        assert_eq!((t.access.expose(), &h.log[..2]), ("at-joe", &["read rt-ann".to_string(), "write rt-joe".to_string()][..]));
        let mut h = signed_in(Some("rt-joe"));
        let a = Acquisition::flush(&mut h.ctx()).unwrap();
        h.run(a, |r| panic!("{r}")).unwrap();
        assert_eq!((h.log.clone(), h.stored.as_deref()), (vec!["read rt-ann".into(), "write rt-joe".into(), "done ok".into()], Some("rt-joe")));
        // Without a refresh token of its own, the emptying of the store is what is held: made
        // again at the next call, or by free().
        let mut h = signed_in(None);
        let a = Acquisition::flush(&mut h.ctx()).unwrap();
        h.run(a, |r| panic!("{r}")).unwrap();
        assert_eq!(h.stored.as_deref(), Some(""), "{:?}", h.log);
    }

    #[test]
    fn an_exchange_changes_nothing_until_its_code_is_answered() {
        // The store cannot be read: the chain the exchange would end is unknown, so the code is
        // not sent (a later save could not tell that chain from a newer sign-in); it stays good.
        let mut h = host(refresh_only(), true, Some("rt-ann"));
        h.store_fails = true;
        let now = h.now;
        let a = Acquisition::exchange(&mut h.ctx(), code("c1"), now);
        assert_eq!(h.run(a, |r| panic!("not sent: {r}")).unwrap_err().code, ErrorCode::StoreFailed);
        // Nor does it count as a read: the next call's failed read is still `store_failed`
        // (the saved token may be the only one), not "no refresh token, sign in again".
        assert_eq!(h.acquire(|r| panic!("{r}")).unwrap_err().code, ErrorCode::StoreFailed);
        h.store_fails = false;
        h.log.clear();
        let a = Acquisition::exchange(&mut h.ctx(), code("c1"), now);
        h.run(a, |_| ok("at-joe", Some("rt-joe"))).unwrap();
        assert_eq!(h.log[..3], ["read rt-ann", "send code c1", "write rt-joe"], "the same code, sent once now");
        // A refused code leaves the chain before it as it was: still used.
        let mut h = host(refresh_only(), true, Some("rt-ann"));
        let now = h.now;
        let a = Acquisition::exchange(&mut h.ctx(), code("stale"), now);
        assert_eq!(h.run(a, |_| refused()).unwrap_err().code, ErrorCode::InvalidGrant);
        h.acquire(|_| ok("at-ann2", Some("rt-ann2"))).unwrap();
        assert_eq!(h.log[..2], ["read rt-ann", "send refresh rt-ann"]);
        // Nor does it drop a rotated token held back: it is saved, as it would have been.
        let mut h = holding_rt2();
        let now = h.now;
        let a = Acquisition::exchange(&mut h.ctx(), code("stale"), now);
        assert_eq!(h.run(a, |_| refused()).unwrap_err().code, ErrorCode::InvalidGrant);
        let a = Acquisition::flush(&mut h.ctx()).expect("rt2 still held");
        h.run(a, |r| panic!("{r}")).unwrap();
        assert_eq!(h.stored.as_deref(), Some("rt2"));
    }

    #[test]
    fn a_code_whose_request_never_left_may_be_exchanged_again() {
        let mut h = host(cfg(|o| o.persisted = false), false, None);
        let exchange = |h: &mut Host, answer: &dyn Fn() -> Result<HttpResponse, AuthError>| {
            let grant = Grant::Code { code: Secret::new("code-9"), verifier: Secret::new("v".repeat(43)), redirect_uri: "http://127.0.0.1:9/cb".into() };
            let now = h.now;
            let a = Acquisition::exchange(&mut h.ctx(), grant, now);
            h.run(a, |_| answer())
        };
        let refused_conn = || {
            let mut e = AuthError::new(ErrorCode::Network, "refused");
            e.unsent = true;
            Err(e)
        };
        assert_eq!(exchange(&mut h, &refused_conn).unwrap_err().code, ErrorCode::Network);
        assert!(exchange(&mut h, &|| ok("at1", Some("rt1"))).is_ok(), "never reached the server: still good");
        assert_eq!(exchange(&mut h, &|| ok("at2", None)).unwrap_err().code, ErrorCode::InvalidRequest, "now spent");
    }

    #[test]
    fn configuration_errors_fail_at_once_and_server_text_is_redacted() {
        let mut h = host(cfg(|o| o.persisted = false), false, None);
        let e = h.acquire(|_| status(401, None, r#"{"error":"invalid_client","error_description":"bad secret CANARY-cs-1"}"#)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        assert!(!e.message.contains("CANARY"), "{}", e.message);
        assert_eq!(h.log, ["send password", "done invalid_client"]);
    }

    #[test]
    fn an_answer_to_a_question_not_asked_ends_the_flow_with_an_error() {
        let mut h = host(cfg(|_| {}), true, Some("rt1"));
        let mut a = Acquisition::new(&mut h.ctx());
        assert!(matches!(a.step(&mut h.ctx(), None, 0.0), Action::ReadStore));
        assert!(matches!(a.step(&mut h.ctx(), Some(Input::Waited), 0.0), Action::Done(Err(_))));
    }
}
