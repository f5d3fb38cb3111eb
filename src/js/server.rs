//! The server build's clients (`QflowAuth`, `QpienAuth`) as synchronous ops over a table of
//! clients: the package's JS driver (`pkg-template/client.js`) performs what they answer (send
//! this request, read or write the store, wait, lease from the broker, install this token, tell
//! `onEvent`) and feeds the result back. Every decision is here or in the core; the driver keeps
//! Promises, the single in-flight acquisition's Promise, and the JS objects (store, broker,
//! callbacks) that the ops name by role.
//!
//! An op never calls into JS (only `random`, in `pkce`), so no state is shared with a callback
//! while it runs: the driver calls `onEvent` and the store between ops.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

use super::wire::{bad_input, Items, Out, Record};
use crate::acquisition::{Acquisition, Ctx};
use crate::broker::{access_key, decode_access, encode_access, generation, lease_error, lease_failed, lease_token, owner, Field, Generations};
use crate::cache::{Step, TokenCache};
use crate::config::Seen;
use crate::error::{AuthError, ErrorCode};
use crate::event::{Event, Value};
use crate::flow::{Action, Input};
use crate::http::{bad_response, cat, HttpResponse};
use crate::pkce::valid_verifier;
use crate::qflow::{api_gate, api_next, relay, ApiNext, Grant, QflowConfig, QflowOptions, Relay, Session, MAX_GATE_BODY_BYTES};
use crate::qpien::{classify, graphql_headers, Attempts, Envelope, Mint, Next, QpienConfig, QpienOptions, MAX_GRAPHQL_BYTES};
use crate::secret::{Redactor, Secret};
use crate::token::Token;

/// Method names the driver probes on an object option (the `J` item lists those it found).
const PROBED: &[&str] = &["get", "put", "idFromName"];

const QFLOW: &str = "the Qflow identity server";
const QFLOW_API: &str = "the Qflow API";
const QPIEN: &str = "the Qpien GraphQL endpoint";

// One per client, stored in the table: boxing the larger variant would only add code.
#[allow(clippy::large_enum_variant)]
enum Provider {
    Qflow { cfg: QflowConfig, session: Session, held: Option<Token> },
    Qpien { cfg: QpienConfig },
}

/// What an acquisition in progress is waiting on.
enum Task {
    /// `exchange`: the lease carries an authorization code to exchange first.
    Lease {
        stale: Option<u32>,
        started: f64,
        exchange: bool,
    },
    Acquire(Acquisition),
    Mint(Mint),
}

struct Client {
    p: Provider,
    cache: TokenCache,
    /// Every live credential this client holds or has seen, for redacting server text.
    redactor: Redactor,
    /// With a broker: the generation of the held token, and one to report stale.
    generations: Generations,
    broker: bool,
    broker_side: bool,
    /// Inside the broker: the stored access token was looked at.
    access_loaded: bool,
    task: Option<Task>,
    /// The driver's id of the current flight (an acquisition or exchange): `INPUT` and `FINISH`
    /// name it.
    flight: u32,
    /// An authorization code to exchange: `(code, verifier, redirectUri)` from `exchangeCode`.
    exchange: Option<(Secret, Secret, String)>,
}

/// The clients by handle, and the handles `FREE` vacated: a new client takes one of those first,
/// so a construct costs the same however many clients are alive (a server that makes one per
/// request holds many until the GC finalizes them).
struct Clients {
    slots: Vec<Option<Client>>,
    vacant: Vec<usize>,
}

struct Table(UnsafeCell<Clients>);

// wasm32 without threads, and no op re-enters another (ops never call into JS).
unsafe impl Sync for Table {}

static CLIENTS: Table = Table(UnsafeCell::new(Clients { slots: Vec::new(), vacant: Vec::new() }));

fn table() -> &'static mut Clients {
    // SAFETY: one thread, and each op takes this once and returns before the next op runs.
    unsafe { &mut *CLIENTS.0.get() }
}

fn freed() -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, "this client was freed (free() or the end of a `using` scope)")
}

fn arg(message: &str) -> AuthError {
    AuthError::new(ErrorCode::InvalidRequest, message)
}

pub(super) const NEW_QFLOW: u32 = 10;
pub(super) const NEW_QPIEN: u32 = 11;
const FREE: u32 = 12;
const STEP: u32 = 13;
const FINISH: u32 = 14;
const INVALIDATE: u32 = 15;
const INVALIDATE_IF: u32 = 16;
const OBTAIN: u32 = 17;
const INPUT: u32 = 18;
const EXCHANGE: u32 = 19;
const RESTORE_KEY: u32 = 20;
const RESTORED: u32 = 21;
const SAVE_ACCESS: u32 = 22;
const TARGET: u32 = 23;
const CHECK_SENT: u32 = 24;
const API_NEXT: u32 = 25;
const API_GATE: u32 = 26;
const COMMS_URL: u32 = 27;
const COMMS_STATUS: u32 = 28;
const GRAPHQL_ARGS: u32 = 29;
const GRAPHQL_VERDICT: u32 = 30;
const FAIL: u32 = 31;
const PROBES: u32 = 32;
const RELAY: u32 = 33;
const FLUSH: u32 = 34;

/// Runs one op on client `handle` (ignored by `NEW_*` and `FAIL`).
///
/// The larger ops are `#[inline(never)]`: engines compile wasm lazily, a function on its first
/// call, so a cold start compiles only the ops it runs (Node: the first op 4.2 → 1.4 ms).
pub(super) fn call(op: u32, handle: u32, now: f64, items: &mut Items, out: &mut Out) -> Result<(), AuthError> {
    match op {
        NEW_QFLOW | NEW_QPIEN => return new_client(op == NEW_QFLOW, items, out),
        FAIL => return Err(failure(items)?),
        PROBES => {
            out.kind(b'R');
            for name in PROBED {
                out.str(name);
            }
            return Ok(());
        }
        _ => {}
    }
    let t = table();
    let slot = t.slots.get_mut(handle as usize).ok_or_else(freed)?;
    if op == FREE {
        if slot.take().is_some() {
            t.vacant.push(handle as usize);
        }
        out.kind(b'R');
        return Ok(());
    }
    let c = slot.as_mut().ok_or_else(freed)?;
    match op {
        STEP => {
            // Items: the id the flight gets if this caller starts one.
            let id = flight_id(items)?;
            let s = match c.cache.step(now) {
                Step::Ready => 0.0,
                Step::Join => 1.0,
                Step::Start => {
                    c.flight = id;
                    2.0
                }
            };
            out.kind(b'R').num(s);
        }
        FINISH => {
            // Only the flight that is current: a flight given up on (`stall_ms`) that ends late
            // must not end the one that replaced it.
            if items.num()? == Some(f64::from(c.flight)) {
                if let Some(task) = c.task.take() {
                    c.abandon(task);
                }
                c.cache.finish();
            }
            out.kind(b'R');
        }
        INVALIDATE => {
            c.cache.invalidate();
            c.generations.dropped();
            out.kind(b'R');
        }
        INVALIDATE_IF => {
            let g = items.num()?.and_then(generation);
            let dropped = g.is_some_and(|g| c.cache.invalidate_if(g));
            if dropped {
                c.generations.dropped();
            }
            out.kind(b'R').num(f64::from(u8::from(dropped)));
        }
        FLUSH => {
            // `free()`, once nothing runs: the save of a token held back, as a task of its own
            // (`Acquisition::flush`, with the flight id that follows), or `d` at once.
            c.flight = flight_id(items)?;
            let Client { p, redactor, .. } = c;
            match p {
                Provider::Qflow { cfg, session, held } => c.task = Acquisition::flush(&mut Ctx { cfg, session, held, redactor }).map(Task::Acquire),
                Provider::Qpien { .. } => c.task = None,
            }
            match c.task {
                Some(_) => c.advance(None, now, out),
                None => {
                    out.kind(b'd');
                }
            }
        }
        OBTAIN if flight_id(items)? != c.flight => return Err(stalled()),
        OBTAIN => c.obtain(now, out),
        EXCHANGE => c.exchange(items, now, out)?,
        // An answer for a flight given up on is refused (its task is gone or is another's).
        INPUT if items.num()? != Some(f64::from(c.flight)) => return Err(stalled()),
        INPUT => match c.task.take() {
            Some(Task::Lease { stale, started, exchange }) => c.lease_answer(items, stale, started, exchange, now, out)?,
            task => {
                c.task = task;
                let input = c.input(items)?;
                c.advance(Some(input), now, out);
            }
        },
        RESTORE_KEY => {
            let key = c.access_key().filter(|_| !core::mem::replace(&mut c.access_loaded, true));
            out.kind(b'R');
            if let Some(k) = key {
                out.str(&k);
            }
        }
        RESTORED => {
            // Only into an empty cache: a token installed meanwhile is newer than the stored one.
            let me = c.owner();
            if let Some((token, g)) = items.str()?.and_then(|t| decode_access(&t, &me)).filter(|_| c.cache.token().is_none()) {
                c.install(token, Some(g), out);
            }
        }
        SAVE_ACCESS => {
            // Inside the broker: the key and the record of the cached token, or an empty record
            // when none is cached (a dropped token is not kept for a restart to bring back).
            out.kind(b'R');
            if let Some(key) = c.access_key() {
                let g = c.cache.generation();
                out.str(&key).str(&c.cache.token().map(|t| encode_access(t, g, &c.owner())).unwrap_or_default());
            }
        }
        TARGET | CHECK_SENT | API_NEXT | API_GATE | COMMS_URL | COMMS_STATUS | RELAY => api(c, op, items, out)?,
        GRAPHQL_ARGS => c.graphql_args(items, out)?,
        GRAPHQL_VERDICT => c.graphql_verdict(items, out)?,
        _ => return Err(bad_input()),
    }
    Ok(())
}

/// The options a client takes: an own-property record, plus the package's broker-side flag
/// (a Symbol-keyed own property the driver reads, first item).
#[inline(never)]
fn new_client(qflow: bool, items: &mut Items, out: &mut Out) -> Result<(), AuthError> {
    let broker_side = items.num()? == Some(1.0);
    // Inside the broker: the object's own name, as it could prove it (`M`: it could not).
    let object = if broker_side { Some(items.str()?) } else { None };
    let (what, known) = match qflow {
        true => ("QflowAuth options", crate::qflow::OPTIONS),
        false => ("QpienAuth options", crate::qpien::OPTIONS),
    };
    let mut o = Record::read(items, what, known, ErrorCode::InvalidConfig)?;
    let (skew_s, timeout) = (o.num("refreshSkewSeconds")?, o.num("timeoutMs")?);
    let (_, timeout_ms) = crate::config::timing(skew_s, timeout)?;
    let methods = |name: &str, seen: Seen, need: &[&str], problem: &str| match seen {
        Seen::Missing => Ok(false),
        Seen::Object(m) if need.iter().all(|n| m.iter().any(|h| h == n)) => Ok(true),
        Seen::Unreadable => Err(AuthError::config(name, "could not be read")),
        _ => Err(AuthError::config(name, problem)),
    };
    let store = methods("store", o.seen("store"), &["get", "put"], "must have get(key) and put(key, value) methods")?;
    let broker =
        methods("broker", o.seen("broker"), &["idFromName", "get"], "must be a Durable Object namespace bound to the `TokenBroker` class (env.TOKEN_BROKER)")?;
    let events = match o.seen("onEvent") {
        Seen::Missing => false,
        Seen::Func => true,
        Seen::Unreadable => return Err(AuthError::config("onEvent", "could not be read")),
        _ => return Err(AuthError::config("onEvent", "must be a function")),
    };
    if broker && (store || broker_side) {
        return Err(AuthError::config("broker", "replaces `store`: the broker keeps the tokens in its own storage"));
    }
    if store && !qflow && !broker_side {
        return Err(AuthError::config("store", "is not an option here: to share one token across isolates, use `broker`"));
    }
    // Every string option read in one loop, then moved into place: one error path instead of
    // one per option (each with its own drop code).
    let names: &[&str] = match qflow {
        true => &["clientId", "clientSecret", "subscriptionKey", "username", "password", "refreshToken", "scope", "identityUrl", "apiUrl", "storeKey"],
        false => &["clientId", "clientSecret", "endpoint"],
    };
    let mut strs = Vec::new();
    for name in names {
        strs.push(o.str(name)?);
    }
    let mut strs = strs.into_iter();
    let mut next = || strs.next().flatten();
    let (p, redactor) = if qflow {
        let cfg = QflowConfig::new(QflowOptions {
            client_id: next(),
            client_secret: next(),
            subscription_key: next(),
            username: next(),
            password: next(),
            refresh_token: next(),
            scope: next(),
            identity_url: next(),
            api_url: next(),
            store_key: next(),
            refresh_skew_seconds: skew_s,
            timeout_ms: timeout,
            persisted: store || broker,
            broker_side,
        })?;
        let redactor = Redactor::new(&cfg.secrets());
        let session = Session::new(&cfg, store);
        (Provider::Qflow { session, cfg, held: None }, redactor)
    } else {
        let cfg =
            QpienConfig::new(QpienOptions { client_id: next(), client_secret: next(), endpoint: next(), refresh_skew_seconds: skew_s, timeout_ms: timeout })?;
        let redactor = Redactor::new(&cfg.secrets());
        (Provider::Qpien { cfg }, redactor)
    };
    let skew = match &p {
        Provider::Qflow { cfg, .. } => cfg.refresh_skew_s,
        Provider::Qpien { cfg } => cfg.refresh_skew_s,
    };
    // Inside the broker, a lease whose options name another credential than the object it
    // reached (the object is named for provider, identity server or endpoint, client and store
    // key), or reaching an object that cannot prove its name: refused, so no caller can have this
    // object's refresh token sent elsewhere or its tokens handed out.
    let name = match &p {
        Provider::Qflow { cfg, .. } => cfg.broker_name(),
        Provider::Qpien { cfg } => cfg.broker_name(),
    };
    if let Some(object) = object {
        match object {
            None => {
                return Err(AuthError::new(
                    ErrorCode::InvalidConfig,
                    "the token broker object cannot prove its name: bind its namespace in the Worker that exports TokenBroker",
                ))
            }
            Some(o) if *o != name => {
                return Err(AuthError::new(
                    ErrorCode::InvalidConfig,
                    "a lease's identityUrl or endpoint, clientId and storeKey name another credential than the token broker object it reached",
                ))
            }
            Some(_) => {}
        }
    }
    let client = Client {
        p,
        cache: TokenCache::new(skew),
        redactor,
        generations: Generations::default(),
        broker,
        broker_side,
        access_loaded: false,
        task: None,
        flight: 0,
        exchange: None,
    };
    // Whether the driver reads a stored access token before the first acquisition.
    let restores = client.access_key().is_some();
    let t = table();
    let handle = t.vacant.pop().unwrap_or_else(|| {
        t.slots.push(None);
        t.slots.len() - 1
    });
    match t.slots.get_mut(handle) {
        Some(slot) => *slot = Some(client),
        // Every vacant handle is a slot: not reached.
        None => return Err(bad_input()),
    }
    let flags = u8::from(store) | u8::from(broker) << 1 | u8::from(broker_side) << 2 | u8::from(events) << 3 | u8::from(restores) << 4;
    out.kind(b'R').num(handle as f64).num(f64::from(flags)).num(timeout_ms).num(crate::config::stall_ms(timeout_ms));
    // With a broker: the name of its object (`brokerName`), for code that reaches it itself.
    if broker {
        out.str(&name);
    }
    Ok(())
}

impl Client {
    fn timeout_ms(&self) -> f64 {
        match &self.p {
            Provider::Qflow { cfg, .. } => cfg.timeout_ms,
            Provider::Qpien { cfg } => cfg.timeout_ms,
        }
    }

    fn what(&self) -> &'static str {
        match self.p {
            Provider::Qflow { .. } => QFLOW,
            Provider::Qpien { .. } => QPIEN,
        }
    }

    fn store_key(&self) -> String {
        match &self.p {
            Provider::Qflow { cfg, .. } => cfg.store_key.clone(),
            Provider::Qpien { cfg } => cfg.store_key(),
        }
    }

    /// Inside the broker: whose the stored access token is (`broker::owner`).
    fn owner(&self) -> String {
        owner(match &self.p {
            Provider::Qflow { cfg, .. } => cfg.client_secret(),
            Provider::Qpien { cfg } => cfg.client_secret(),
        })
    }

    /// Inside the broker: where the current access token is kept.
    fn access_key(&self) -> Option<String> {
        self.broker_side.then(|| access_key(&self.store_key()))
    }

    fn headers_for(&self, access: &Secret) -> Vec<(&'static str, String)> {
        match &self.p {
            Provider::Qflow { cfg, .. } => cfg.api_headers(access),
            Provider::Qpien { .. } => alloc::vec![("Authorization", cat("Bearer ", access.expose()))],
        }
    }

    /// Caches `token` and answers an `I` record: access token, generation, until and from when it
    /// may be handed out (`cache::usable`), expiry, lifetime, then the header pairs.
    fn install(&mut self, token: Token, generation: Option<u32>, out: &mut Out) {
        self.redactor.add(&token.access);
        let pairs = self.headers_for(&token.access);
        let (expires, lifetime) = (token.expires_at_ms, token.lifetime_ms);
        let access = token.access.clone();
        match generation {
            Some(g) => self.cache.restore(token, g),
            None => self.cache.put(token),
        }
        let (from, until) = self.cache.usable().unwrap_or((0.0, 0.0));
        out.kind(b'I').str(access.expose()).num(f64::from(self.cache.generation())).num(until).num(from).num(expires).num(lifetime);
        for (k, v) in pairs {
            out.str(k).str(&v);
        }
    }

    /// A task the driver gave up: what it held goes back (`Acquisition::abandon`; a lease's stale
    /// report is kept for the next lease).
    fn abandon(&mut self, task: Task) {
        match (task, &mut self.p) {
            (Task::Acquire(a), Provider::Qflow { cfg, session, held }) => a.abandon(&mut Ctx { cfg, session, held, redactor: &mut self.redactor }),
            (Task::Lease { stale, .. }, _) => self.generations.failed(stale),
            _ => {}
        }
    }

    /// One acquisition, whichever way this client gets tokens.
    #[inline(never)]
    fn obtain(&mut self, now: f64, out: &mut Out) {
        if self.broker {
            let stale = self.generations.take_stale();
            self.lease(stale, now, out);
            return;
        }
        if self.cache.fresh(now).is_some() {
            out.kind(b'd');
            return;
        }
        let task = match &mut self.p {
            Provider::Qflow { cfg, session, held } => Task::Acquire(Acquisition::new(&mut Ctx { cfg, session, held, redactor: &mut self.redactor })),
            Provider::Qpien { cfg } => Task::Mint(Mint::new(cfg, now)),
        };
        self.task = Some(task);
        self.advance(None, now, out);
    }

    /// An `L` record: the broker object's name, the timeout, then the request's fields
    /// (`provider`, `stale`, the options as key/value pairs, and an `x` record with the
    /// authorization code to exchange first, if any).
    fn lease(&mut self, stale: Option<u32>, now: f64, out: &mut Out) {
        let (provider, name, options) = match &self.p {
            Provider::Qflow { cfg, .. } => ("qflow", cfg.broker_name(), cfg.broker_options()),
            Provider::Qpien { cfg } => ("qpien", cfg.broker_name(), cfg.broker_options()),
        };
        out.kind(b'L').str(&name).num(self.timeout_ms()).str(provider).opt_num(stale.map(f64::from));
        for (k, v) in options {
            out.str(k);
            match v {
                Field::Str(s) => out.str(&s),
                Field::Secret(s) => out.str(s.expose()),
                Field::Num(n) => out.num(n),
            };
        }
        let exchange = self.exchange.take();
        if let Some((code, verifier, redirect)) = &exchange {
            out.kind(b'x').str(code.expose()).str(verifier.expose()).str(redirect);
        }
        self.task = Some(Task::Lease { stale, started: now, exchange: exchange.is_some() });
    }

    /// `exchangeCode({ code, codeVerifier, redirectUri })`: first (`D` 0) checks the argument and
    /// answers `R` with the three values; then (`D` 1, the same values, once the driver has made
    /// this the single flight) starts the exchange.
    #[inline(never)]
    fn exchange(&mut self, items: &mut Items, now: f64, out: &mut Out) -> Result<(), AuthError> {
        let start = items.num()? == Some(1.0);
        if start {
            self.flight = flight_id(items)?;
        }
        let mut o = Record::read(items, "exchangeCode argument", &["code", "codeVerifier", "redirectUri"], ErrorCode::InvalidRequest)?;
        let missing = |name: &str| arg(&cat(name, " is required: exchangeCode({ code, codeVerifier, redirectUri })"));
        let code = o.str("code")?.filter(|c| !c.is_empty()).ok_or_else(|| missing("code"))?;
        let verifier = o.str("codeVerifier")?.ok_or_else(|| missing("codeVerifier"))?;
        if !valid_verifier(&verifier) {
            return Err(arg("codeVerifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~"));
        }
        let redirect_uri = o.str("redirectUri")?.ok_or_else(|| missing("redirectUri"))?;
        crate::http::base_url("redirectUri", redirect_uri.split(['?']).next().unwrap_or("")).map_err(|mut e| {
            e.code = ErrorCode::InvalidRequest;
            e
        })?;
        if !start {
            out.kind(b'R').str(&code).str(&verifier).str(&redirect_uri);
            return Ok(());
        }
        let (code, verifier) = (Secret::new(code), Secret::new(verifier));
        self.redactor.add(&code);
        self.redactor.add(&verifier);
        self.cache.force_start();
        if self.broker {
            self.exchange = Some((code, verifier, redirect_uri));
            self.lease(None, now, out);
            return Ok(());
        }
        let Provider::Qflow { cfg, session, held } = &mut self.p else { return Err(bad_input()) };
        let grant = Grant::Code { code, verifier, redirect_uri };
        self.task = Some(Task::Acquire(Acquisition::exchange(&mut Ctx { cfg, session, held, redactor: &mut self.redactor }, grant, now)));
        self.advance(None, now, out);
        Ok(())
    }

    /// The answer to the task's last action, as the driver wrote it: `r` a store read (its
    /// value), `w` a store write done, `!` the store call failed (`r!` / `w!`), `a` an HTTP
    /// answer (status, Retry-After, body or `M` when larger than read), `a!` a transport failure
    /// (its kind), `af` a request the platform would not build (a `FAIL` reason and detail), `z`
    /// waited.
    #[inline(never)]
    fn input(&mut self, items: &mut Items) -> Result<Input, AuthError> {
        let kind = items.str()?.ok_or_else(bad_input)?;
        let what = self.what();
        Ok(match kind.as_str() {
            "r" => Input::StoreRead(match items.seen()? {
                Seen::Str(s) => Ok(Some(s)),
                Seen::Missing => Ok(None),
                _ => Err(store_error("get(key) returned something that is not a string")),
            }),
            "r!" => Input::StoreRead(Err(store_error("get(key) failed"))),
            "w" => Input::StoreWritten(Ok(())),
            "w!" => Input::StoreWritten(Err(store_error("put(key, value) failed"))),
            "a" => {
                let status = items.num()?.unwrap_or(0.0) as u16;
                let retry_after = items.str()?;
                Input::Answer(match items.str()? {
                    Some(body) => Ok(HttpResponse { status, retry_after, body }),
                    None => Err(too_big(what, status)),
                })
            }
            "a!" => Input::Answer(Err(transport_error(&items.str()?.unwrap_or_default(), what))),
            "af" => Input::Answer(Err(failure(items)?)),
            "z" => Input::Waited,
            _ => return Err(bad_input()),
        })
    }

    /// The broker's answer, flattened by the driver: `t` + accessToken, expiresInMs,
    /// lifetimeMs, generation; `e` + code, message, status, retryAfter, whether an exchange's new
    /// token was held back (1); `f` + why it failed.
    #[inline(never)]
    fn lease_answer(&mut self, items: &mut Items, stale: Option<u32>, started: f64, exchange: bool, now: f64, out: &mut Out) -> Result<(), AuthError> {
        let kind = items.str()?.unwrap_or_default();
        let mut held_back = false;
        let r = match kind.as_str() {
            "t" => {
                let access = items.str()?;
                let (e, l, g) = (items.num()?, items.num()?, items.num()?);
                lease_token(access, e, l, g, now)
            }
            "e" => {
                let (code, message, status, retry) = (items.str()?, items.str()?, items.num()?, items.num()?);
                held_back = items.num()? == Some(1.0);
                Err(lease_error(code, message, status, retry, &self.redactor))
            }
            _ => Err(lease_failed(&items.str()?.unwrap_or_default())),
        };
        match r {
            Ok((token, g)) => {
                let acquired = Event::TokenAcquired { grant: "broker", ms: crate::event::elapsed_ms(started, now), expires_in_s: token.lifetime_ms / 1000.0 };
                self.generations.leased(g);
                self.install(token, None, out);
                event(out, acquired);
                out.kind(b'd');
            }
            Err(e) => {
                self.generations.failed(stale);
                // The object ran the exchange and held its new token back (its save failed), or
                // did not answer (it may have run it): as there, the chain before it (perhaps
                // another user's) is no longer handed out here.
                if exchange && (held_back || !matches!(kind.as_str(), "t" | "e")) {
                    self.cache.invalidate();
                    out.kind(b'D');
                }
                out.error(&e);
            }
        }
        Ok(())
    }

    /// Steps the task with `input` until it asks for something only the driver can do: each
    /// event and install is a record, then one of `r` read the store (key), `w` write it (key,
    /// value), `s` send (method, url, timeout, how much of the answer to read, body, header pairs), `z` wait (ms), `d` done, `E`.
    #[inline(never)]
    fn advance(&mut self, mut input: Option<Input>, now: f64, out: &mut Out) {
        loop {
            let Client { task, p, redactor, .. } = self;
            let action = match (task, p) {
                (Some(Task::Acquire(a)), Provider::Qflow { cfg, session, held }) => a.step(&mut Ctx { cfg, session, held, redactor }, input.take(), now),
                (Some(Task::Mint(m)), Provider::Qpien { cfg }) => m.step(cfg, redactor, input.take(), now),
                _ => Action::Done(Err(bad_input())),
            };
            match action {
                Action::Emit(e) => event(out, e),
                Action::Install(t) => self.install(t, None, out),
                Action::Drop => {
                    // `D`: the driver drops its copy too.
                    self.cache.invalidate();
                    out.kind(b'D');
                }
                Action::ReadStore => {
                    out.kind(b'r').str(&self.store_key());
                    return;
                }
                Action::WriteStore(v) => {
                    out.kind(b'w').str(&self.store_key()).str(v.expose());
                    return;
                }
                Action::Send { request, timeout_ms } => {
                    out.kind(b's').str(request.method).str(&request.url).num(timeout_ms).num(crate::http::MAX_BODY_BYTES as f64).str(&request.body);
                    for (k, v) in &request.headers {
                        out.str(k).str(v);
                    }
                    return;
                }
                Action::Wait(ms) => {
                    out.kind(b'z').num(ms);
                    return;
                }
                Action::Done(r) => {
                    self.task = None;
                    match r {
                        Ok(()) => out.kind(b'd'),
                        Err(e) => out.error(&e),
                    };
                    return;
                }
            }
        }
    }

    /// `graphql(query, variables, options)` checked (the query `S`; the variables 1 an object, 2
    /// something else, `M` none; the options record or `M`): `R` with the operation's name for
    /// messages, the `operationName` to send (`M`: none), the endpoint, the timeout, how much of
    /// an answer is read, and the request's header pairs besides the token's.
    #[inline(never)]
    fn graphql_args(&mut self, items: &mut Items, out: &mut Out) -> Result<(), AuthError> {
        let Provider::Qpien { cfg } = &self.p else { return Err(bad_input()) };
        let query = items.str()?.filter(|q| !crate::config::blank(q)).ok_or_else(|| arg("graphql(query) takes the GraphQL document as a non-empty string"))?;
        if items.num()? == Some(2.0) {
            return Err(arg("graphql(query, variables) takes the variables as a plain object (a Map, a Date or a class instance is not sent as written)"));
        }
        let op_opt = match items.0.first() {
            Some(b'M') | None => None,
            _ => Record::read(items, "graphql() options", &["operationName"], ErrorCode::InvalidRequest)?.str("operationName")?,
        };
        let op = op_opt.clone().unwrap_or_else(|| crate::qpien::operation_name(&query));
        out.kind(b'R').str(&op);
        match &op_opt {
            Some(n) => out.str(n),
            None => out.opt_num(None),
        };
        out.str(&cfg.endpoint).num(cfg.timeout_ms).num(MAX_GRAPHQL_BYTES as f64);
        for (k, v) in graphql_headers() {
            out.str(k).str(&v);
        }
        Ok(())
    }

    /// One `graphql()` answer (status, Retry-After, body, operation name, the call's `Attempts` as bits):
    /// `R` with what next (0 done, 1 mint again and resend, 2 failed, 3 failed and the token is
    /// to be dropped), the new bits, whether the
    /// driver parses the body's `data` (for the caller, or to go on a failure's error: only when
    /// the answer holds no credential, as an error may be logged); a failure adds its `E`.
    #[inline(never)]
    fn graphql_verdict(&mut self, items: &mut Items, out: &mut Out) -> Result<(), AuthError> {
        let status = items.num()?.unwrap_or(0.0) as u16;
        let retry_after = items.str()?;
        let text = items.str()?.unwrap_or_default();
        let op = items.str()?.unwrap_or_default();
        let mut attempts = Attempts::from_bits(items.num()?.unwrap_or(0.0) as u8);
        let env = Envelope::parse(&text);
        let verdict = classify(status, retry_after, env.as_ref(), &op, &self.redactor);
        let next = attempts.next(verdict);
        let has_data = env.is_some_and(|e| e.has_data) && (next == Next::Done || !self.redactor.contains(&text));
        let n = match &next {
            Next::Done => 0.0,
            Next::Remint => 1.0,
            // The token was refused (beside data, or after a re-mint): not resent, but not kept
            // either, so the next call mints (a long job survives TOKEN_EXPIRED on its own).
            Next::Fail(e) if e.code == ErrorCode::Unauthorized => 3.0,
            Next::Fail(_) => 2.0,
        };
        out.kind(b'R').num(n).num(f64::from(attempts.bits())).num(f64::from(u8::from(has_data)));
        if let Next::Fail(e) = next {
            out.error(&e);
        }
        Ok(())
    }
}

fn event(out: &mut Out, e: Event) {
    let (kind, values) = e.parts();
    out.kind(b'V').str(kind);
    for (name, v) in Event::names(kind).iter().zip(values) {
        out.str(name);
        match v {
            Value::Str(s) => out.str(s),
            Value::Num(n) => out.num(n),
        };
    }
}

/// The Qflow API ops: `TARGET` (what `fetch()` was given, as a URL string), `CHECK_SENT` (the
/// URL of the request about to be sent), `API_NEXT` (status, refreshed: 0 hand back, 1 refresh
/// and resend, 2 read the 403 body, no more than the number that follows), `API_GATE` (the 403 body, whether for `commsAccess`: `R`
/// with nothing, or 1 + reason for a disabled Comms API; a gate otherwise is its `E`),
/// `COMMS_URL` (the event ID), `COMMS_STATUS` (the probe's status and Retry-After), `RELAY` (for a proxy passing
/// an API answer on to its own caller: status, content type, the access token the request
/// carried (`M`: unknown) and `M` → 0 pass the body on as it streams, -1 not at all, else the
/// number of bytes to read first; the same with that text → 1 and the type to send it with, or 0).
#[inline(never)]
fn api(c: &mut Client, op: u32, items: &mut Items, out: &mut Out) -> Result<(), AuthError> {
    let Provider::Qflow { cfg, .. } = &c.p else { return Err(bad_input()) };
    match op {
        TARGET => {
            out.kind(b'R').str(&cfg.target(&items.str()?.unwrap_or_default()));
        }
        CHECK_SENT => {
            cfg.check_sent(&items.str()?.unwrap_or_default())?;
            out.kind(b'R');
        }
        API_NEXT => {
            let status = items.num()?.unwrap_or(0.0) as u16;
            let n = match api_next(status, items.num()? == Some(1.0)) {
                ApiNext::Done => 0.0,
                ApiNext::RefreshAndRetry => 1.0,
                ApiNext::ProbeGate => 2.0,
                ApiNext::Fail(e) => return Err(e),
            };
            out.kind(b'R').num(n).num(MAX_GATE_BODY_BYTES as f64);
        }
        API_GATE => {
            let body = items.str()?;
            let comms = items.num()? == Some(1.0);
            match body.and_then(|b| api_gate(403, &b)) {
                Some(e) if comms && e.code == ErrorCode::CommsApiNotEnabled => {
                    out.kind(b'R').num(1.0).str(e.code.as_str());
                }
                Some(e) => return Err(e),
                None => {
                    out.kind(b'R');
                }
            }
        }
        RELAY => {
            let status = items.num()?.unwrap_or(0.0) as u16;
            let content_type = items.str()?;
            let sent = items.str()?.map(Secret::new);
            out.kind(b'R');
            match (items.str()?, &sent) {
                (Some(body), Some(sent)) => match cfg.relayable(&body, content_type.as_deref(), sent) {
                    Some(send_as) => out.num(1.0).str(send_as),
                    None => out.num(0.0),
                },
                (Some(_), None) => out.num(0.0),
                (None, _) => out.num(match relay(status, content_type.as_deref(), sent.is_some()) {
                    Relay::Stream => 0.0,
                    Relay::Withhold => -1.0,
                    Relay::Read(n) => n as f64,
                }),
            };
        }
        COMMS_URL => {
            let id = items.str()?.filter(|e| !crate::config::blank(e)).ok_or_else(|| arg("commsAccess(eventId) takes a non-empty event ID string"))?;
            out.kind(b'R').str(&cfg.target(&QflowConfig::comms_probe_path(&id)));
        }
        _ => {
            let status = items.num()?.unwrap_or(0.0) as u16;
            crate::qflow::comms_status(status, items.str()?)?;
            out.kind(b'R');
        }
    }
    Ok(())
}

/// Errors the driver meets while moving bytes, by number (`FAIL`: reason, detail), so their
/// text has one owner: 0 / 1 a transport failure of the Qflow API / Qpien (detail: its kind),
/// 2 a Qpien answer larger than read (detail: status), 3 / 4 / 5 `fetch()`-style arguments that
/// are not a path, URL or Request / not an init object / not a valid Request (detail: the
/// method), 6 a Request body already used, 7 a request that could not be copied, 8 a header
/// value the platform refused, 9 a freed client, 10 variables that are not JSON, 11 an event ID
/// that makes no URL, 12 no token after an acquisition, 13 an acquisition that did not end,
/// 14 a Qpien endpoint the platform's fetch refuses, 15 a flight given up on (`stalled`), 16 not
/// a Response for `relayBody`, 17 a store write that failed.
fn failure(items: &mut Items) -> Result<AuthError, AuthError> {
    let reason = items.num()?.filter(|r| *r >= 0.0).unwrap_or(255.0);
    let detail = items.seen()?;
    let text = match &detail {
        Seen::Str(s) => s.as_str(),
        _ => "",
    };
    let status = match detail {
        Seen::Num(n) => n as u16,
        _ => 0,
    };
    Ok(match reason as u8 {
        0 => transport_error(text, QFLOW_API),
        1 => transport_error(text, QPIEN),
        2 => too_big(QPIEN, status),
        3 => arg(&cat(text, " takes a path, a URL or a Request")),
        4 => arg(&cat(text, " takes an init object (or nothing) as its second argument")),
        5 => arg(&cat(text, " arguments do not make a valid Request")),
        6 => arg("the request body was already used"),
        7 => arg("the request could not be copied"),
        8 => AuthError::new(ErrorCode::InvalidConfig, "a credential contains characters not allowed in an HTTP header"),
        9 => freed(),
        10 => arg("the variables are not JSON-serialisable"),
        11 => arg("the eventId does not make a valid URL"),
        12 => AuthError::new(ErrorCode::ServerError, "no token after acquisition"),
        13 => AuthError::new(ErrorCode::ServerError, "the acquisition did not end"),
        14 => AuthError::new(ErrorCode::InvalidConfig, "the endpoint URL is not valid for fetch"),
        15 => stalled(),
        16 => arg("relayBody(auth, response) takes the Response that auth.fetch() returned"),
        17 => store_error("put(key, value) failed"),
        _ => bad_input(),
    })
}

/// A flight id from the driver (a whole number in `u32`).
fn flight_id(items: &mut Items) -> Result<u32, AuthError> {
    items.num()?.and_then(generation).ok_or_else(bad_input)
}

/// What waiting callers get when a flight ran past `config::stall_ms` (its request cancelled, a
/// host call that never settled): the next call starts a new flight.
fn stalled() -> AuthError {
    AuthError::new(ErrorCode::Timeout, "the token acquisition stopped making progress (its request may have been cancelled); the next call starts a new one")
}

fn store_error(problem: &str) -> AuthError {
    AuthError::new(ErrorCode::StoreFailed, cat("the store's ", problem))
}

fn too_big(what: &str, status: u16) -> AuthError {
    bad_response(what, status, "a body larger than qauth reads (see the README's limits)")
}

/// A fetch rejection or aborted body read (`kind` from the driver). The host's message is not
/// kept: it can echo a URL, and we do not put URLs into errors.
fn transport_error(kind: &str, what: &str) -> AuthError {
    let (code, text) = match kind {
        "timeout" => (ErrorCode::Timeout, " did not answer within timeoutMs"),
        "abort" => (ErrorCode::Network, " request was aborted"),
        "refused" => (ErrorCode::Network, " refused the connection"),
        "unresolved" => (ErrorCode::Network, " could not be reached: its host name did not resolve"),
        _ => (ErrorCode::Network, " could not be reached"),
    };
    let mut err = AuthError::new(code, cat(what, text));
    // Nothing left before a connection was made: a single-use credential in it is still good.
    err.unsent = matches!(kind, "refused" | "unresolved");
    err
}

#[cfg(test)]
mod tests {
    //! The ops as the JS driver sees them: bytes in through `qauth_call`, records out. The client
    //! table is one static, so these run one at a time (`serial`).
    use alloc::vec;

    use super::*;

    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[derive(Clone, Debug, PartialEq)]
    enum V {
        S(String),
        D(f64),
        M,
    }

    /// An input item.
    fn it(tag: u8, body: &[u8]) -> (u8, Vec<u8>) {
        (tag, body.to_vec())
    }
    fn s(v: &str) -> (u8, Vec<u8>) {
        it(b'S', v.as_bytes())
    }
    fn d(v: f64) -> (u8, Vec<u8>) {
        it(b'D', &v.to_le_bytes())
    }

    /// An options record of string values, plus a store object with both methods.
    fn record(pairs: &[(&str, &str)], store: bool) -> Vec<(u8, Vec<u8>)> {
        let mut out = vec![it(b'O', b"")];
        for (k, v) in pairs {
            out.push(it(b'K', k.as_bytes()));
            out.push(s(v));
        }
        if store {
            out.extend([it(b'K', b"store"), it(b'J', b""), it(b'P', b"get"), it(b'P', b"put")]);
        }
        out
    }

    /// Runs one op; its answer as records (`kind`, values).
    fn op(op: u32, handle: u32, now: f64, items: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<V>)> {
        let mut input = Vec::new();
        for (tag, body) in items {
            input.push(*tag);
            input.extend_from_slice(&(body.len() as u32).to_le_bytes());
            input.extend_from_slice(body);
        }
        let len = input.len();
        let ptr = super::super::qauth_alloc(len);
        // SAFETY: `ptr` has room for `len` bytes; `qauth_call` consumes it and answers a buffer
        // whose first four bytes are its length, released once with `qauth_free`.
        let answer = unsafe {
            core::ptr::copy_nonoverlapping(input.as_ptr(), ptr, len);
            let out = super::super::qauth_call(op, handle, now, ptr, len);
            let total = u32::from_le_bytes(core::slice::from_raw_parts(out, 4).try_into().unwrap()) as usize;
            let bytes = core::slice::from_raw_parts(out, total).to_vec();
            super::super::qauth_free(out, total);
            bytes
        };
        let mut records: Vec<(u8, Vec<V>)> = Vec::new();
        for (tag, body) in Items(&answer[4..]) {
            match tag {
                b'k' => records.push((body[0], vec![])),
                b'S' => records.last_mut().unwrap().1.push(V::S(String::from_utf8(body.to_vec()).unwrap())),
                b'D' => records.last_mut().unwrap().1.push(V::D(f64::from_le_bytes(body.try_into().unwrap()))),
                _ => records.last_mut().unwrap().1.push(V::M),
            }
        }
        records
    }

    fn kinds(records: &[(u8, Vec<V>)]) -> String {
        records.iter().map(|(k, _)| *k as char).collect()
    }

    fn qflow(store: bool) -> u32 {
        let opts = [
            ("clientId", "client"),
            ("clientSecret", "CANARY-cs-7"),
            ("subscriptionKey", "CANARY-sk-7"),
            ("username", "joe@example.com"),
            ("password", "CANARY-pw-7"),
            ("identityUrl", "http://127.0.0.1:9"),
            ("apiUrl", "http://127.0.0.1:9"),
        ];
        let mut items = vec![d(0.0)];
        items.extend(record(&opts, store));
        let r = op(NEW_QFLOW, 0, 0.0, &items);
        assert_eq!(kinds(&r), "R", "{r:?}");
        let V::D(h) = r[0].1[0] else { panic!("{r:?}") };
        h as u32
    }

    const T0: f64 = 1_000_000.0;

    #[test]
    fn a_proxy_passes_an_api_error_on_only_when_it_holds_no_credential() {
        let _s = serial();
        let h = qflow(false);
        let opt = |v: Option<&str>| v.map_or(it(b'M', b""), s);
        let relay = |status: f64, ct: Option<&str>, token: Option<&str>, body: Option<&str>| match &op(
            RELAY,
            h,
            T0,
            &[d(status), opt(ct), opt(token), opt(body)],
        )[..]
        {
            [(b'R', v)] => v.clone(),
            r => panic!("{r:?}"),
        };
        let (sent, read) = (Some("CANARY-at-9"), [V::D(crate::qflow::MAX_RELAY_BODY_BYTES as f64)]);
        for ok in [200.0, 204.0, 299.0, 304.0] {
            assert_eq!(relay(ok, None, sent, None), [V::D(0.0)], "{ok}: streams on as it is");
            assert_eq!(relay(ok, Some("text/plain; charset=utf-16"), None, None), [V::D(0.0)], "{ok}: not read at all");
        }
        for err in [400.0, 401.0, 403.0, 404.0, 500.0, 502.0] {
            for ct in ["application/json", "application/problem+json; charset=utf-8", "text/plain"] {
                assert_eq!(relay(err, Some(ct), sent, None), read, "{err} {ct}: read first");
            }
            // What is checked must be what its reader sees: another charset, HTML or XML (character
            // references), or no type at all (sniffed) is not passed on.
            for ct in [Some("application/json; charset=UTF-16"), Some("text/html"), Some("application/xml"), None] {
                assert_eq!(relay(err, ct, sent, None), [V::D(-1.0)], "{err} {ct:?}");
            }
            // Not knowing what the request carried (a clone, another client's answer): not passed on.
            assert_eq!(relay(err, Some("application/json"), None, None), [V::D(-1.0)], "{err}");
        }
        let json = Some("application/json");
        let ok = [V::D(1.0), V::S("application/json; charset=utf-8".into())];
        assert_eq!(relay(403.0, json, sent, Some(r#"{"message":"no access"}"#)), ok, "with the type it was read as");
        assert_eq!(relay(403.0, Some("Application/JSON; x=\"Bearer CANARY-at-9\""), sent, Some("{}")), ok, "nothing of the API's header goes on");
        assert_eq!(relay(403.0, json, None, Some(r#"{"message":"no access"}"#)), [V::D(0.0)]);
        // The gateway echoing what qauth sent (the subscription key, the bearer token the request
        // carried), however it encodes it; or a configured secret; or in UTF-16 said to be UTF-8.
        let utf16: String = "key CANARY-sk-7".chars().flat_map(|c| [c, '\0']).collect();
        for echo in [
            "Ocp-Apim-Subscription-Key: CANARY-sk-7",
            "key=CANARY%2Dsk%2D7",
            r#"{"k":"CANARY\u002dsk-7"}"#,
            "pw CANARY-pw-7",
            "Authorization: Bearer CANARY-at-9",
            "t=CANARY%2Dat-9",
            &utf16,
        ] {
            assert_eq!(relay(403.0, json, sent, Some(echo)), [V::D(0.0)], "{echo}");
        }
        for ct in [Some("text/plain; charset=latin1"), Some("text/html"), None] {
            assert_eq!(relay(403.0, ct, sent, Some("ok")), [V::D(0.0)], "never passed on: {ct:?}");
        }
        // A long ordinary error (64 KiB of JSON-ish text) is within the budget with this short list.
        let long = "{\"errors\":[".to_string() + &"{\"field\":\"name\",\"message\":\"must not be empty\"},".repeat(1400) + "{}]}";
        assert!(long.len() > 60_000);
        assert_eq!(relay(400.0, json, Some("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"), Some(&long)), ok);
        let _ = op(FREE, h, T0, &[]);
    }

    #[test]
    fn a_grant_through_the_ops_saves_the_refresh_token_before_the_token_is_installed() {
        let _s = serial();
        let h = qflow(true);
        assert_eq!(op(STEP, h, T0, &[d(1.0)])[0].1, [V::D(2.0)], "nothing cached: this caller starts");
        let r = op(OBTAIN, h, T0, &[d(1.0)]);
        assert_eq!(kinds(&r), "r", "the store is read first: {r:?}");
        let r = op(INPUT, h, T0, &[d(1.0), s("r"), it(b'M', b"")]);
        assert_eq!(kinds(&r), "s");
        let send = &r[0].1;
        assert_eq!(send[1], V::S("http://127.0.0.1:9/core/connect/token".into()));
        let V::S(body) = &send[4] else { panic!() };
        assert!(body.contains("grant_type=password"), "{body}");
        let answer = r#"{"access_token":"CANARY-at-1","refresh_token":"CANARY-rt-1","expires_in":3600,"token_type":"Bearer"}"#;
        let r = op(INPUT, h, T0 + 5.0, &[d(1.0), s("a"), d(200.0), it(b'M', b""), s(answer)]);
        assert_eq!(kinds(&r), "w", "the rotated refresh token is written before anything is handed out");
        assert_eq!(r[0].1[1], V::S("CANARY-rt-1".into()));
        let r = op(INPUT, h, T0 + 6.0, &[d(1.0), s("w")]);
        assert_eq!(kinds(&r), "IVVd", "installed, then said (an onEvent callback that calls back in gets this token): {r:?}");
        assert_eq!(r[1].1[0], V::S("refresh_token_rotated".into()));
        let install = &r[0].1;
        assert_eq!(install[0], V::S("CANARY-at-1".into()));
        assert!(install.contains(&V::S("Bearer CANARY-at-1".into())) && install.contains(&V::S("CANARY-sk-7".into())));
        assert_eq!(r[2].1[0], V::S("token_acquired".into()));
        let _ = op(FINISH, h, T0 + 6.0, &[d(1.0)]);
        assert_eq!(op(STEP, h, T0 + 7.0, &[d(2.0)])[0].1, [V::D(0.0)], "cached: a hit");
        // A 401 drops exactly that token once; a second 401 after a refresh is `unauthorized`.
        assert_eq!(op(API_NEXT, h, T0, &[d(401.0), d(0.0)])[0].1[0], V::D(1.0));
        let r = op(API_NEXT, h, T0, &[d(401.0), d(1.0)]);
        assert_eq!((kinds(&r), &r[0].1[0]), ("E".into(), &V::S("unauthorized".into())));
        assert_eq!(op(INVALIDATE_IF, h, T0, &[d(1.0)])[0].1, [V::D(1.0)]);
        assert_eq!(op(INVALIDATE_IF, h, T0, &[d(1.0)])[0].1, [V::D(0.0)], "once");
        assert_eq!(kinds(&op(FREE, h, T0, &[])), "R");
        let r = op(STEP, h, T0, &[d(2.0)]);
        assert_eq!((kinds(&r), &r[0].1[0]), ("E".into(), &V::S("invalid_request".into())), "a freed client");
    }

    #[test]
    fn a_freed_handle_is_taken_by_the_next_client_and_a_second_free_changes_nothing() {
        let _s = serial();
        let (a, b) = (qflow(false), qflow(false));
        assert_ne!(a, b);
        assert_eq!(kinds(&op(FREE, a, T0, &[])), "R");
        // A second free of the same handle must not list it as vacant twice (two clients would
        // then share it).
        assert_eq!(kinds(&op(FREE, a, T0, &[])), "R");
        let c = qflow(false);
        assert_eq!(c, a, "the vacated handle is reused");
        let e = qflow(false);
        assert!(e != a && e != b, "a handle is never given to two live clients");
        assert_eq!(kinds(&op(STEP, b, T0, &[d(1.0)])), "R", "the other client is untouched");
        for h in [b, c, e] {
            op(FREE, h, T0, &[]);
        }
        assert_eq!(kinds(&op(STEP, c, T0, &[d(1.0)])), "E", "a freed handle answers an error");
    }

    #[test]
    fn server_text_echoing_a_secret_is_redacted_in_the_error_record() {
        let _s = serial();
        let h = qflow(false);
        let _ = op(STEP, h, T0, &[d(1.0)]);
        assert_eq!(kinds(&op(OBTAIN, h, T0, &[d(1.0)])), "s");
        let echo = r#"{"error":"invalid_request","error_description":"bad client_secret=CANARY-cs-7 password=CANARY-pw-7"}"#;
        let r = op(INPUT, h, T0 + 1.0, &[d(1.0), s("a"), d(400.0), it(b'M', b""), s(echo)]);
        assert_eq!(kinds(&r), "E");
        let text = format!("{r:?}");
        assert!(text.contains("invalid_request") && !text.contains("CANARY"), "{text}");
        let _ = op(FREE, h, T0, &[]);
    }

    /// Runs a grant to its end through the ops (no store): `answer` is the token endpoint's body.
    fn grant(h: u32, id: f64, answer: &str) -> Vec<(u8, Vec<V>)> {
        assert_eq!(op(STEP, h, T0, &[d(id)])[0].1, [V::D(2.0)]);
        assert_eq!(kinds(&op(OBTAIN, h, T0, &[d(id)])), "s");
        let r = op(INPUT, h, T0 + 1.0, &[d(id), s("a"), d(200.0), it(b'M', b""), s(answer)]);
        let _ = op(FINISH, h, T0 + 1.0, &[d(id)]);
        r
    }

    fn body_of(send: &(u8, Vec<V>)) -> String {
        match &send.1[4] {
            V::S(b) => b.clone(),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_host_name_that_did_not_resolve_keeps_the_refresh_token_and_a_lost_answer_spends_it() {
        let _s = serial();
        for (kind, resent) in [("unresolved", true), ("refused", true), ("network", false)] {
            let h = qflow(false);
            let r = grant(h, 1.0, r#"{"access_token":"CANARY-at-1","refresh_token":"CANARY-rt-1","expires_in":3600,"token_type":"Bearer"}"#);
            assert!(kinds(&r).ends_with('d'), "{r:?}");
            let _ = op(INVALIDATE, h, T0, &[]);
            assert_eq!(op(STEP, h, T0, &[d(2.0)])[0].1, [V::D(2.0)]);
            assert!(body_of(&op(OBTAIN, h, T0, &[d(2.0)])[0]).contains("refresh_token=CANARY-rt-1"));
            let r = op(INPUT, h, T0 + 1.0, &[d(2.0), s("a!"), s(kind)]);
            // Nothing was sent: the same token again after the backoff; else the password.
            let r = if kinds(&r).ends_with('z') { op(INPUT, h, T0 + 200.0, &[d(2.0), s("z")]) } else { r };
            let body = body_of(r.last().unwrap());
            assert_eq!(body.contains("refresh_token=CANARY-rt-1"), resent, "{kind}: {body}");
            assert_eq!(body.contains("grant_type=password"), !resent, "{kind}: {body}");
            let _ = op(FREE, h, T0, &[]);
        }
    }

    #[test]
    fn a_flight_given_up_on_cannot_touch_the_one_that_replaced_it() {
        let _s = serial();
        let h = qflow(false);
        let r = grant(h, 1.0, r#"{"access_token":"CANARY-at-1","refresh_token":"CANARY-rt-1","expires_in":3600,"token_type":"Bearer"}"#);
        assert!(kinds(&r).ends_with('d'), "{r:?}");
        let _ = op(INVALIDATE, h, T0, &[]);
        assert_eq!(op(STEP, h, T0, &[d(2.0)])[0].1, [V::D(2.0)]);
        let r = op(OBTAIN, h, T0, &[d(2.0)]);
        assert!(body_of(&r[0]).contains("refresh_token=CANARY-rt-1"), "flight 2 spends the refresh token");
        // The driver gives flight 2 up while its refresh grant is out (it may have reached the
        // server): the token counts as spent, and flight 3 never sends it again.
        let _ = op(FINISH, h, T0, &[d(2.0)]);
        assert_eq!(op(STEP, h, T0, &[d(3.0)])[0].1, [V::D(2.0)], "a new flight starts");
        let r = op(OBTAIN, h, T0, &[d(3.0)]);
        let body = body_of(&r[0]);
        assert!(body.contains("grant_type=password") && !body.contains("CANARY-rt-1"), "{body}");
        // Flight 2's answer arrives late: refused, nothing installed, flight 3 untouched.
        let late = r#"{"access_token":"CANARY-at-late","expires_in":3600,"token_type":"Bearer"}"#;
        let r = op(INPUT, h, T0 + 1.0, &[d(2.0), s("a"), d(200.0), it(b'M', b""), s(late)]);
        assert_eq!((kinds(&r), &r[0].1[0]), ("E".into(), &V::S("timeout".into())));
        let _ = op(FINISH, h, T0, &[d(2.0)]);
        assert_eq!(op(STEP, h, T0, &[d(4.0)])[0].1, [V::D(1.0)], "flight 3 is still the one in flight");
        assert_eq!(kinds(&op(OBTAIN, h, T0, &[d(2.0)])), "E", "a stale flight cannot take over");
        let answer = r#"{"access_token":"CANARY-at-3","expires_in":3600,"token_type":"Bearer"}"#;
        let r = op(INPUT, h, T0 + 1.0, &[d(3.0), s("a"), d(200.0), it(b'M', b""), s(answer)]);
        assert!(kinds(&r).contains('I') && kinds(&r).ends_with('d'), "{r:?}");
        assert_eq!(r.iter().find(|(k, _)| *k == b'I').unwrap().1[0], V::S("CANARY-at-3".into()));
        let _ = op(FREE, h, T0, &[]);
    }

    /// `const [A, B, …] = [1, 2, …];` in a JS source: the names with their numbers.
    fn js_table(js: &str, first: &str) -> Vec<(String, u32)> {
        let start = js.find(&format!("const [{first},")).unwrap_or_else(|| panic!("no table starting {first}"));
        let decl = &js[start..start + js[start..].find("];").unwrap()];
        let (names, nums) = decl.trim_start_matches("const [").split_once("] = [").unwrap();
        let nums: Vec<u32> = nums.split(',').map(str::trim).filter(|n| !n.is_empty()).map(|n| n.parse().unwrap()).collect();
        let names: Vec<String> = names.split(',').map(|n| n.trim().to_string()).collect();
        assert_eq!(names.len(), nums.len(), "{first}");
        names.into_iter().zip(nums).collect()
    }

    #[test]
    fn the_driver_numbers_ops_and_failures_as_the_wasm_does() {
        let _s = serial();
        let js = include_str!("../../pkg-template/client.js");
        let ops = [
            ("NEW_QFLOW", NEW_QFLOW),
            ("NEW_QPIEN", NEW_QPIEN),
            ("FREE", FREE),
            ("STEP", STEP),
            ("FINISH", FINISH),
            ("INVALIDATE", INVALIDATE),
            ("INVALIDATE_IF", INVALIDATE_IF),
            ("OBTAIN", OBTAIN),
            ("INPUT", INPUT),
            ("EXCHANGE", EXCHANGE),
            ("RESTORE_KEY", RESTORE_KEY),
            ("RESTORED", RESTORED),
            ("SAVE_ACCESS", SAVE_ACCESS),
            ("TARGET", TARGET),
            ("CHECK_SENT", CHECK_SENT),
            ("API_NEXT", API_NEXT),
            ("API_GATE", API_GATE),
            ("COMMS_URL", COMMS_URL),
            ("COMMS_STATUS", COMMS_STATUS),
            ("GRAPHQL_ARGS", GRAPHQL_ARGS),
            ("GRAPHQL_VERDICT", GRAPHQL_VERDICT),
            ("FAIL", FAIL),
            ("PROBES", PROBES),
            ("RELAY", RELAY),
            ("FLUSH", FLUSH),
        ];
        let mut seen: Vec<(String, u32)> = js_table(js, "NEW_QFLOW");
        seen.extend(js_table(js, "TARGET"));
        assert_eq!(seen.len(), ops.len());
        for (name, n) in &seen {
            assert_eq!(ops.iter().find(|(k, _)| k == name).map(|(_, v)| *v), Some(*n), "op {name}");
        }
        // Each FAIL reason the driver names is one the wasm knows; the next number is not.
        let reasons = js_table(js, "API_TRANSPORT");
        for (i, (name, n)) in reasons.iter().enumerate() {
            assert_eq!(*n as usize, i, "{name}");
            let r = op(FAIL, 0, T0, &[d(f64::from(*n)), s("x")]);
            assert_ne!(r[0].1[1], V::S("qauth's wasm received malformed arguments".into()), "reason {name}");
        }
        let r = op(FAIL, 0, T0, &[d(reasons.len() as f64), s("x")]);
        assert_eq!(r[0].1[1], V::S("qauth's wasm received malformed arguments".into()));
        let wire = include_str!("../../pkg-template/wire.js");
        assert!(wire.contains(&format!("const BEGIN = {};", super::super::BEGIN)) && wire.contains(&format!("const COMPLETE = {};", super::super::COMPLETE)));
    }

    #[test]
    fn inside_the_broker_a_lease_naming_another_credential_than_the_object_is_refused() {
        let _s = serial();
        let opts = |identity: &str| {
            let pairs =
                [("clientId", "client"), ("clientSecret", "CANARY-cs-7"), ("identityUrl", identity), ("storeKey", "k1"), ("refreshToken", "CANARY-rt-7")];
            record(&pairs, true)
        };
        let ours = "qflow|http://127.0.0.1:9|client|k1|";
        let new = |object: (u8, Vec<u8>), identity: &str| {
            let mut items = vec![d(1.0), object];
            items.extend(opts(identity));
            op(NEW_QFLOW, 0, T0, &items)
        };
        // The object's own credential: a client.
        let r = new(s(ours), "http://127.0.0.1:9");
        assert_eq!(kinds(&r), "R", "{r:?}");
        let V::D(h) = r[0].1[0] else { panic!() };
        let _ = op(FREE, h as u32, T0, &[]);
        // An object that cannot prove its name checks nothing: it serves no lease.
        let r = new(it(b'M', b""), "http://127.0.0.1:9");
        assert_eq!((kinds(&r), &r[0].1[0]), ("E".into(), &V::S("invalid_config".into())), "{r:?}");
        // The same object reached with another identity server (its refresh token would go there).
        let r = new(s(ours), "http://127.0.0.1:8");
        assert_eq!((kinds(&r), &r[0].1[0]), ("E".into(), &V::S("invalid_config".into())), "{r:?}");
        assert!(!format!("{r:?}").contains("CANARY"));
        let r = new(s("qflow|http://127.0.0.1:9|client|k2|"), "http://127.0.0.1:9");
        assert_eq!(kinds(&r), "E", "another store key: {r:?}");
    }

    #[test]
    fn bad_input_is_an_error_record_never_a_trap() {
        let _s = serial();
        for items in [vec![], vec![it(b'Z', b"x")], vec![d(0.0), it(b'O', b""), it(b'K', b"clientId")], vec![d(0.0), it(b'N', b"")]] {
            let r = op(NEW_QFLOW, 0, T0, &items);
            assert_eq!(kinds(&r), "E", "{items:?}");
        }
        let r = op(NEW_QFLOW, 0, T0, &[d(0.0), it(b'O', b""), it(b'K', b"clientSecrett"), s("x")]);
        let text = format!("{r:?}");
        assert!(text.contains("did you mean `clientSecret`") && !text.contains("\"x\""), "{text}");
        assert_eq!(kinds(&op(999, 12345, T0, &[])), "E", "an unknown op or handle");
        assert_eq!(kinds(&op(FAIL, 0, T0, &[d(-1.0), it(b'M', b"")])), "E");
        assert_eq!(op(FAIL, 0, T0, &[d(9.0), it(b'M', b"")])[0].1[0], V::S("invalid_request".into()));
    }
}
