//! The token cache state machine, shared by every provider.
//!
//! It answers one question per call: is there a token good enough to use now, and if not, must
//! this caller start the token request or join the one already running (single-flight)? The
//! package's JS driver holds the in-flight acquisition's Promise (`pkg-template/client.js`); this
//! type holds the decision, so it is tested natively.

use crate::token::Token;

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A fresh token is cached: use it, no token work.
    Ready,
    /// No usable token and nothing in flight: this caller starts the request.
    Start,
    /// A request is already in flight: wait for it.
    Join,
}

/// When (wall-clock ms, from and until) a token may be handed out: from its issue (a clock
/// stepped back past that cannot make a dead token look fresh: one refresh instead) until its
/// expiry less the skew, which is capped at half the token's lifetime, so a 2 s token is still
/// used for 1 s instead of never.
pub fn window(t: &Token, skew_ms: f64) -> (f64, f64) {
    (t.expires_at_ms - t.lifetime_ms, t.expires_at_ms - skew_ms.min(t.lifetime_ms / 2.0))
}

/// `t` may be handed out at `now_ms` (`window`).
pub fn usable_at(t: &Token, skew_ms: f64, now_ms: f64) -> bool {
    let (from, until) = window(t, skew_ms);
    from <= now_ms && now_ms < until
}

#[derive(Debug)]
pub struct TokenCache {
    token: Option<Token>,
    skew_ms: f64,
    in_flight: bool,
    /// Bumped on every new token, so a 401 answered to an old token does not drop a newer one.
    generation: u32,
}

impl TokenCache {
    pub fn new(refresh_skew_s: f64) -> Self {
        TokenCache { token: None, skew_ms: refresh_skew_s * 1000.0, in_flight: false, generation: 0 }
    }

    /// When (wall-clock ms, from and until) the cached token may be handed out (`window`).
    pub fn usable(&self) -> Option<(f64, f64)> {
        Some(window(self.token.as_ref()?, self.skew_ms))
    }

    pub fn fresh(&self, now_ms: f64) -> Option<&Token> {
        self.token.as_ref().filter(|t| usable_at(t, self.skew_ms, now_ms))
    }

    pub fn step(&mut self, now_ms: f64) -> Step {
        if self.fresh(now_ms).is_some() {
            Step::Ready
        } else if self.in_flight {
            Step::Join
        } else {
            self.in_flight = true;
            Step::Start
        }
    }

    /// Marks a request in flight that did not come from `step` (an authorization-code exchange,
    /// run as the single flight so a refresh cannot finish after it and overwrite its chain).
    pub fn force_start(&mut self) {
        self.in_flight = true;
    }

    /// Ends the in-flight request (its token, if any, was installed with `put`).
    pub fn finish(&mut self) {
        self.in_flight = false;
    }

    /// Installs a token obtained outside `step` (an authorization-code exchange).
    pub fn put(&mut self, token: Token) {
        self.token = Some(token);
        self.generation = self.generation.wrapping_add(1);
    }

    /// Installs a token with a known generation (the token broker's, restored from storage), so
    /// a `stale` report from before a restart still names the right token.
    pub fn restore(&mut self, token: Token, generation: u32) {
        self.token = Some(token);
        self.generation = generation;
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    pub fn invalidate(&mut self) {
        self.token = None;
    }

    /// Drops the token only if it is still the one of `generation` (the one an API refused).
    /// Many concurrent 401s for the same token thus cause one refresh, not one each.
    pub fn invalidate_if(&mut self, generation: u32) -> bool {
        let hit = self.generation == generation && self.token.is_some();
        if hit {
            self.token = None;
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime_s: f64, now: f64) -> Token {
        Token::new("a".into(), None, Some(&crate::json::Value::Num(lifetime_s)), now, "t", 200).unwrap()
    }

    /// One whole acquisition at `now` that installs a token of `lifetime_s`.
    fn acquire(c: &mut TokenCache, lifetime_s: f64, now: f64) {
        c.step(now);
        c.put(token(lifetime_s, now));
        c.finish();
    }

    #[test]
    fn single_flight_steps() {
        let mut c = TokenCache::new(60.0);
        assert_eq!(c.step(0.0), Step::Start);
        assert_eq!(c.step(0.0), Step::Join);
        assert_eq!(c.step(0.0), Step::Join);
        c.put(token(3600.0, 0.0));
        c.finish();
        assert_eq!(c.step(1.0), Step::Ready);
    }

    #[test]
    fn failure_lets_the_next_caller_start_again() {
        let mut c = TokenCache::new(60.0);
        assert_eq!(c.step(0.0), Step::Start);
        c.finish();
        assert_eq!(c.step(0.0), Step::Start);
    }

    #[test]
    fn proactive_refresh_inside_skew() {
        let mut c = TokenCache::new(60.0);
        acquire(&mut c, 3600.0, 0.0);
        assert_eq!(c.step(3_539_999.0), Step::Ready);
        assert_eq!(c.step(3_540_000.0), Step::Start);
    }

    #[test]
    fn skew_capped_at_half_lifetime() {
        let mut c = TokenCache::new(60.0);
        acquire(&mut c, 2.0, 0.0);
        assert_eq!(c.usable().map(|u| u.1), Some(1000.0));
        assert_eq!(c.step(999.0), Step::Ready);
        assert_eq!(c.step(1000.0), Step::Start);
    }

    #[test]
    fn a_clock_stepped_back_past_the_issue_is_one_refresh_not_a_dead_token() {
        // A 2 s token issued at t = 100 s; the wall clock then steps back 30 s. Believing it
        // until "t + 1 s" would hand out a token the server considers dead for 30 s more.
        let mut c = TokenCache::new(60.0);
        acquire(&mut c, 2.0, 100_000.0);
        assert_eq!(c.usable(), Some((100_000.0, 101_000.0)));
        assert_eq!(c.step(100_500.0), Step::Ready);
        assert_eq!(c.step(70_500.0), Step::Start, "before the issue: not fresh");
    }

    #[test]
    fn invalidate_if_only_drops_that_generation() {
        let mut c = TokenCache::new(0.0);
        acquire(&mut c, 3600.0, 0.0);
        let old = c.generation();
        c.invalidate_if(old);
        assert!(c.fresh(1.0).is_none());
        acquire(&mut c, 3600.0, 0.0);
        c.invalidate_if(old);
        assert!(c.fresh(1.0).is_some(), "a newer token survives a stale 401");
    }
}
