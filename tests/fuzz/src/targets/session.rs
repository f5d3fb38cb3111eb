//! `session`: random operation sequences on `cache::TokenCache` and `qflow::Session`.
//!
//! TokenCache, with a moving clock:
//! - `step` never answers `Start` twice without a `finish` in between;
//! - `fresh(now)` is Some only when `now < usable_until()`; `step` is `Ready` exactly then.
//!
//! Session (configs with and without a password, `persisted` (a store or broker) set; sessions with and without a
//! store), driven as the bindings drive it: at most one grant outstanding, each ended by a token
//! (`on_token`) or a failure (`after_failure`); `on_token` also arrives on its own (an
//! `exchangeCode()` finishing meanwhile), and the store is read whenever the test says so.
//! - `next_grant` hands out the current refresh token when there is one, the password grant only
//!   with a password, an error only without either;
//! - it never hands out the same refresh token twice, unless what happened in between proved the
//!   token still good: an `unsent` failure, a failure that refused the client or request before
//!   the grant was looked at (`invalid_client`, `invalid_scope`, …; the library keeps the token
//!   then, see its `configuration_errors_keep_the_token` test; not `store_failed`: the server took
//!   the token and answered with a successor whose save failed), or a success without a new refresh
//!   token (RFC 6749 §6: the old one stays valid). Spent tokens are remembered for the last 16
//!   refresh grants (`SPENT_CAP`), so only repeats within that window count;
//! - `after_failure` never drops (or replaces) a refresh token other than the one the failed grant used;
//! - `exchange_started` accepts an authorization code once and refuses it after that.

use std::collections::HashMap;

use qauth::cache::{Step, TokenCache};
use qauth::error::{AuthError, ErrorCode};
use qauth::json::Value;
use qauth::qflow::{Grant, QflowConfig, QflowOptions, Session};
use qauth::secret::Secret;
use qauth::token::Token;

use super::Target;
use crate::rng::Rng;

/// How many spent refresh tokens a session remembers (`qflow::SPENT_CAP`, private).
const SPENT_WINDOW: usize = 16;

pub struct Sessions {
    /// Indexed by `password as usize * 2 + initial_refresh as usize`.
    configs: Vec<QflowConfig>,
}

impl Sessions {
    pub fn new() -> Self {
        let configs = (0..4)
            .map(|i| {
                QflowConfig::new(QflowOptions {
                    client_id: Some("client".into()),
                    client_secret: Some("CANARY-cs-1".into()),
                    subscription_key: Some("CANARY-sk-1".into()),
                    username: Some("4471/joe.bloggs@example.com".into()),
                    password: (i >= 2).then(|| "CANARY-pw-1".into()),
                    refresh_token: (i % 2 == 1).then(|| "rt0".into()),
                    identity_url: Some("http://127.0.0.1:9/".into()),
                    api_url: Some("http://127.0.0.1:9".into()),
                    persisted: true,
                    ..Default::default()
                })
                .expect("a valid option set")
            })
            .collect();
        Sessions { configs }
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    /// Moves the clock by this many ms (sometimes backwards: `Date.now()` is not monotonic).
    Clock(f64),
    Step,
    /// Ends the flight with a token of this lifetime in seconds, or with a failure.
    Finish(Option<f64>),
    Put(f64),
    Invalidate,
    /// `invalidate_if(generation() - back)`.
    InvalidateIf(u32),
    Begin,
    StoreRead(Option<String>),
    StoreReadFailed,
    ExchangeStarted,
    /// `next_grant`, unless a grant is outstanding.
    NextGrant,
    /// The outstanding grant answered a token, with this refresh token or none.
    GrantOk(Option<String>),
    /// The outstanding grant failed with `code` (never `store_failed`: see `GrantUnsaved`).
    AfterFailure {
        code: ErrorCode,
        unsent: bool,
    },
    /// The outstanding grant answered a token with this new refresh token, whose save then failed:
    /// `on_token`, then `after_failure` with `store_failed` (the only way the bindings report it).
    GrantUnsaved(String),
    /// A token from elsewhere (an `exchangeCode()` finishing), outstanding grant or not.
    OnToken(Option<String>),
    Saved,
}

#[derive(Debug)]
pub struct Case {
    pub password: bool,
    pub initial_refresh: bool,
    pub store: bool,
    pub skew_s: f64,
    pub ops: Vec<Op>,
}

const LIFETIMES: &[f64] = &[1.0, 1.5, 2.0, 59.0, 60.0, 61.0, 119.0, 120.0, 121.0, 3600.0, 86400.0];
const MOVES: &[f64] = &[0.0, 1.0, 499.0, 500.0, 999.0, 1000.0, 59_999.0, 60_000.0, 3_540_000.0, 3_600_000.0, -1.0, -60_000.0];

impl Target for Sessions {
    const NAME: &'static str = "session";
    type Input = Case;

    fn generate(&self, r: &mut Rng) -> Case {
        let (password, initial_refresh, store) = (r.coin(), r.coin(), r.below(4) != 0);
        let skew_s = r.pick(&[0.0, 1.0, 30.0, 60.0, 3600.0]);
        let mut seen: Vec<String> = vec!["rt0".into()];
        let mut ops = Vec::new();
        for _ in 0..r.len(24, 96) {
            let op = match r.below(18) {
                0 | 1 => Op::Clock(if r.one_in(4) { r.below(4_000_000) as f64 } else { r.pick(MOVES) }),
                2 => Op::Step,
                3 => Op::Finish(if r.one_in(3) { None } else { Some(r.pick(LIFETIMES)) }),
                4 if r.one_in(3) => Op::Put(r.pick(LIFETIMES)),
                4 => Op::Invalidate,
                5 => Op::InvalidateIf(r.below(3) as u32),
                6 | 7 => Op::Begin,
                8 | 9 => Op::StoreRead(match r.below(10) {
                    0 => None,
                    1 => Some(String::new()),
                    2 | 3 => Some(format!("rt-new-{}", r.below(1000))),
                    _ => Some(r.pick_ref(&seen).clone()),
                }),
                10 if r.one_in(4) => Op::StoreReadFailed,
                10 => Op::ExchangeStarted,
                11..=13 => Op::NextGrant,
                14 => Op::GrantOk(new_refresh(r, &mut seen)),
                15 if r.one_in(6) => {
                    let t = format!("rt{}", seen.len());
                    seen.push(t.clone());
                    Op::GrantUnsaved(t)
                }
                15 => Op::AfterFailure { code: failure(r), unsent: r.one_in(4) },
                16 if r.one_in(3) => Op::OnToken(new_refresh(r, &mut seen)),
                _ => Op::Saved,
            };
            if let Op::StoreRead(Some(t)) = &op {
                if !seen.contains(t) && !t.is_empty() {
                    seen.push(t.clone());
                }
            }
            ops.push(op);
        }
        Case { password, initial_refresh, store, skew_s, ops }
    }

    fn check(&self, c: &Case) -> Result<(), String> {
        let cfg = &self.configs[usize::from(c.password) * 2 + usize::from(c.initial_refresh)];
        let mut cache = TokenCache::new(c.skew_s);
        let mut session = Session::new(cfg, c.store);
        let mut now = 1.7e12;
        let mut flying = false;
        // Refresh tokens that may have been used, with the number of refresh grants before them.
        let mut sent: HashMap<String, usize> = HashMap::new();
        let mut refresh_grants = 0usize;
        let mut outstanding: Option<Grant> = None;
        let mut codes = std::collections::HashSet::new();
        let token = |lifetime: f64, now: f64, refresh: Option<String>| {
            Token::new("a".into(), refresh, Some(&Value::Num(lifetime)), now, "t", 200).expect("a valid lifetime")
        };
        for (i, op) in c.ops.iter().enumerate() {
            // The property first (it names the failure class), then where it broke.
            let fail = |why: String| {
                let (class, detail) = why.split_once(": ").unwrap_or((&why, ""));
                Err(format!("{class}: op {i} {op:?}: {detail}"))
            };
            match op {
                Op::Clock(ms) => now += ms,
                Op::Step => {
                    let fresh = cache.fresh(now).is_some();
                    let step = cache.step(now);
                    if (step == Step::Ready) != fresh {
                        return fail(format!("step inconsistent with fresh: {step:?} when fresh(now) is {fresh}"));
                    }
                    match step {
                        Step::Start if flying => return fail("Start twice without a finish: ".into()),
                        Step::Start => flying = true,
                        Step::Join if !flying => return fail("Join with nothing in flight: ".into()),
                        _ => {}
                    }
                }
                Op::Finish(lifetime) => {
                    // As the driver does: a token from the acquisition is installed, then it ends.
                    if let Some(l) = lifetime {
                        cache.put(token(*l, now, None));
                    }
                    cache.finish();
                    flying = false;
                }
                Op::Put(lifetime) => cache.put(token(*lifetime, now, None)),
                Op::Invalidate => cache.invalidate(),
                Op::InvalidateIf(back) => {
                    cache.invalidate_if(cache.generation().wrapping_sub(*back));
                }
                Op::Begin => session.begin(),
                Op::StoreRead(saved) => {
                    session.store_read(saved.clone());
                }
                Op::StoreReadFailed => {
                    let _ = session.store_read_failed(AuthError::new(ErrorCode::StoreFailed, "x"));
                }
                Op::ExchangeStarted => {
                    // Five codes, so some come again: a code is accepted once, never twice.
                    let code = format!("code-{}", i % 5);
                    let again = !codes.insert(code.clone());
                    if session.exchange_started(&Secret::new(code.clone())).is_ok() == again {
                        return fail(format!("code reuse: exchange_started({code}) answered {} the {} time", !again, if again { "second" } else { "first" }));
                    }
                }
                Op::NextGrant if outstanding.is_some() => {}
                Op::NextGrant => {
                    let current = session.refresh_token().cloned();
                    match (session.next_grant(cfg), current) {
                        (Ok((Grant::Refresh(rt), false)), Some(cur)) if rt == cur => {
                            if let Some(at) = sent.get(rt.expose()).filter(|at| refresh_grants - **at < SPENT_WINDOW) {
                                return fail(format!(
                                    "refresh token sent twice: {:?}, {} refresh grants after the first time, with nothing in between proving it unused",
                                    rt.expose(),
                                    refresh_grants - at
                                ));
                            }
                            sent.insert(rt.expose().to_string(), refresh_grants);
                            refresh_grants += 1;
                            outstanding = Some(Grant::Refresh(rt));
                        }
                        (Ok((Grant::Password, _)), None) if cfg.has_password() => outstanding = Some(Grant::Password),
                        (Err(e), None) if !cfg.has_password() && e.code == ErrorCode::InvalidGrant => {}
                        (got, cur) => {
                            let got = got.map(|(g, fallback)| (show_grant(&g), fallback));
                            return fail(format!(
                                "wrong grant: next_grant gave {got:?} with refresh token {:?}, password {}",
                                cur.as_ref().map(Secret::expose),
                                cfg.has_password()
                            ));
                        }
                    }
                }
                Op::GrantOk(refresh) => {
                    let Some(g) = outstanding.take() else { continue };
                    if let (Grant::Refresh(rt), None) = (&g, refresh) {
                        sent.remove(rt.expose());
                    }
                    session.on_token(&token(60.0, now, refresh.clone()));
                }
                Op::AfterFailure { .. } | Op::GrantUnsaved(_) => {
                    let Some(g) = outstanding.take() else { continue };
                    let (code, unsent) = match op {
                        Op::AfterFailure { code, unsent } => (*code, *unsent),
                        _ => (ErrorCode::StoreFailed, false),
                    };
                    if let Op::GrantUnsaved(rt) = op {
                        session.on_token(&token(60.0, now, Some(rt.clone())));
                    }
                    let before = session.refresh_token().cloned();
                    let mut err = AuthError::new(code, "x");
                    err.unsent = unsent;
                    session.after_failure(&g, err);
                    let after = session.refresh_token();
                    let dropped_its_own = after.is_none() && matches!((&g, &before), (Grant::Refresh(rt), Some(b)) if rt == b);
                    if after != before.as_ref() && !dropped_its_own {
                        return fail(format!(
                            "after_failure dropped another token: {:?} became {:?} after a failed {}",
                            before.as_ref().map(Secret::expose),
                            after.map(Secret::expose),
                            show_grant(&g)
                        ));
                    }
                    // May have reached the grant: refused, lost, failed server-side, or answered with a
                    // successor whose save failed (`store_failed`).
                    let consumed = matches!(
                        code,
                        ErrorCode::InvalidGrant
                            | ErrorCode::Network
                            | ErrorCode::Timeout
                            | ErrorCode::ServerError
                            | ErrorCode::BadResponse
                            | ErrorCode::StoreFailed
                    );
                    if let Grant::Refresh(rt) = &g {
                        if unsent || !consumed {
                            sent.remove(rt.expose());
                        }
                    }
                }
                Op::OnToken(refresh) => {
                    session.on_token(&token(60.0, now, refresh.clone()));
                }
                Op::Saved => session.saved(),
            }
            if let Some(t) = cache.fresh(now) {
                match cache.usable() {
                    Some((from, until)) if from <= now && now < until => {}
                    window => return fail(format!("fresh outside usable: fresh({now}) gives a token (expires {}) but usable is {window:?}", t.expires_at_ms)),
                }
            }
        }
        Ok(())
    }
}

/// Any code a grant can fail with but `store_failed` (that one is `Op::GrantUnsaved`).
fn failure(r: &mut Rng) -> ErrorCode {
    loop {
        let code = r.pick(ErrorCode::ALL);
        if code != ErrorCode::StoreFailed {
            return code;
        }
    }
}

/// A refresh token never seen before (servers never reissue one), or none (no rotation).
fn new_refresh(r: &mut Rng, seen: &mut Vec<String>) -> Option<String> {
    if r.one_in(4) {
        return None;
    }
    let t = format!("rt{}", seen.len());
    seen.push(t.clone());
    Some(t)
}

/// A grant with its refresh token shown (`Grant`'s Debug hides it; the tokens here are not secret).
fn show_grant(g: &Grant) -> String {
    match g {
        Grant::Refresh(rt) => format!("refresh_token grant with {:?}", rt.expose()),
        g => format!("{} grant", g.name()),
    }
}
