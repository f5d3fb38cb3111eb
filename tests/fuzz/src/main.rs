//! qauth-fuzz: a stable-Rust fuzz and property harness for the sans-IO core of `qauth`.
//!
//! No fuzz framework: a SplitMix64 PRNG drives structure-aware generators (JSON documents, token
//! answers, GraphQL envelopes, callback URLs, base URLs, secrets), a mutator edits what they make,
//! and each target checks properties, some of them against a reference (serde_json, url).
//!
//! ```text
//! qauth-fuzz [--execs N] [--seed S] [--target NAME]... [--replay INDEX]
//! ```
//!
//! One line per target on stdout (`target execs failures seconds execs/s`); failing inputs (the
//! first 5 per target) and a count of failures per property go to stderr; the exit status is 1
//! when anything failed. The seed defaults to the clock and is printed first.
//!
//! Input `i` of a target is generated from (seed, target, i) alone, so a failure is reproduced by
//! `--target NAME --seed S --replay i`. Every input runs inside `catch_unwind`. The workspace's
//! release profile has `panic = "abort"` (the wasm wants it), where nothing can be caught: there each
//! target runs in a child process, a panic hook tells the parent which input panicked, and the
//! parent counts it and starts a new child after that input.

mod gen;
mod rng;
mod targets;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use targets::{Outcome, Runner};

/// How many failing inputs are printed per target; the rest are only counted.
const PRINTED_PER_TARGET: usize = 5;
/// Where a printed input is cut (the replay command prints it whole).
const SHOW_CHARS: usize = 3000;

static IN_WORKER: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static PANIC_MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The message of the last panic on this thread (set by the hook).
pub fn take_panic_message() -> String {
    PANIC_MESSAGE.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        if IN_WORKER.load(Ordering::SeqCst) {
            // Panics abort here: tell the parent which input it was, before the process dies.
            let mut out = std::io::stdout().lock();
            // One line: newlines travel as U+001F.
            let _ = writeln!(out, "panic {} {}", CURRENT.load(Ordering::SeqCst), msg.replace('\n', "\u{1f}"));
            let _ = out.flush();
        } else if cfg!(panic = "abort") {
            eprintln!("{msg}");
        }
        PANIC_MESSAGE.with(|m| *m.borrow_mut() = msg);
    }));
}

struct Options {
    execs: u64,
    seed: u64,
    targets: Vec<String>,
    replay: Option<u64>,
    /// Internal: `--worker NAME FROM PRINTED [--trace]`, the child side of a supervised run.
    worker: Option<(String, u64, usize)>,
    trace: bool,
}

fn usage() -> String {
    let names: Vec<&str> = targets::all().iter().map(|t| t.name()).collect();
    format!("usage: qauth-fuzz [--execs N] [--seed S] [--target NAME]... [--replay INDEX]\ntargets: {}", names.join(", "))
}

fn parse_args() -> Result<Options, String> {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000);
    let mut o = Options { execs: 100_000, seed, targets: Vec::new(), replay: None, worker: None, trace: false };
    let mut args = std::env::args().skip(1);
    let num =
        |v: Option<String>, what: &str| v.and_then(|v| v.replace('_', "").parse::<u64>().ok()).ok_or_else(|| format!("{what} needs a number\n{}", usage()));
    while let Some(a) = args.next() {
        match a.as_str() {
            "--execs" | "-n" => o.execs = num(args.next(), "--execs")?,
            "--seed" | "-s" => o.seed = num(args.next(), "--seed")?,
            "--target" | "-t" => o.targets.push(args.next().ok_or_else(usage)?),
            "--replay" => o.replay = Some(num(args.next(), "--replay")?),
            "--worker" => {
                let name = args.next().ok_or_else(usage)?;
                o.worker = Some((name, num(args.next(), "--worker")?, num(args.next(), "--worker")? as usize));
            }
            "--trace" => o.trace = true,
            "-h" | "--help" => return Err(usage()),
            _ => return Err(format!("unknown argument {a:?}\n{}", usage())),
        }
    }
    let known = targets::all();
    for t in &o.targets {
        if !known.iter().any(|k| k.name() == t) {
            return Err(format!("unknown target {t:?}\n{}", usage()));
        }
    }
    Ok(o)
}

#[derive(Default)]
struct Stats {
    execs: u64,
    failures: u64,
    printed: usize,
    /// Failures by class (the property that broke, or where a panic happened), first seen first.
    classes: Vec<(String, u64)>,
}

impl Stats {
    /// Counts one failure; true when it is still to be printed.
    fn fail(&mut self, class: &str) -> bool {
        match self.classes.iter_mut().find(|(c, _)| c == class) {
            Some((_, n)) => *n += 1,
            None => self.classes.push((class.to_string(), 1)),
        }
        self.failures += 1;
        self.printed += 1;
        self.printed <= PRINTED_PER_TARGET
    }
}

/// The class of a failure: a property message up to its first `: ` (targets start their messages
/// with the property), a panic by its location.
fn class(kind: &str, why: &str) -> String {
    if kind == "panic" {
        return why.lines().next().unwrap_or(why).trim_end_matches(':').replace("panicked at", "panic at");
    }
    why.split(": ").next().unwrap_or(why).to_string()
}

fn report(t: &dyn Runner, seed: u64, index: u64, kind: &str, why: &str) {
    eprintln!("FAIL {} #{index} ({kind}): {}", t.name(), why.replace('\n', "\n    "));
    eprintln!("  input: {}", t.show(seed, index, SHOW_CHARS));
    eprintln!("  replay: qauth-fuzz --target {} --seed {seed} --replay {index}", t.name());
}

/// Inputs `from..to` in this process. In a worker each failure is also announced on stdout, so
/// the parent can count it even if the process later dies.
fn run_range(t: &dyn Runner, seed: u64, from: u64, to: u64, stats: &mut Stats, trace: bool) {
    let worker = IN_WORKER.load(Ordering::SeqCst);
    let mut out = std::io::stdout().lock();
    for i in from..to {
        CURRENT.store(i, Ordering::SeqCst);
        if trace {
            let _ = writeln!(out, "at {i}");
            let _ = out.flush();
        }
        let (kind, why) = match t.run(seed, i) {
            Outcome::Pass => continue,
            Outcome::Fail(why) => ("property", why),
            Outcome::Panic(msg) => ("panic", msg),
        };
        let class = class(kind, &why);
        if stats.fail(&class) {
            report(t, seed, i, kind, &why);
        }
        if worker {
            let _ = writeln!(out, "fail {i} {class}");
            let _ = out.flush();
        }
    }
    stats.execs += to - from;
}

/// One child run of `--worker`: the indices that failed, the one that panicked (if it did), and
/// whether it ran to the end.
struct Child {
    failed: Vec<String>,
    panicked: Option<(u64, String)>,
    last_at: Option<u64>,
    done: bool,
}

fn child(name: &str, seed: u64, from: u64, execs: u64, printed: usize, trace: bool) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["--worker", name, &from.to_string(), &printed.to_string(), "--seed", &seed.to_string(), "--execs", &execs.to_string()]);
    if trace {
        cmd.arg("--trace");
    }
    let mut proc = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().map_err(|e| format!("cannot start a worker: {e}"))?;
    let mut c = Child { failed: Vec::new(), panicked: None, last_at: None, done: false };
    for line in BufReader::new(proc.stdout.take().ok_or("no worker stdout")?).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match word {
            "fail" => c.failed.push(rest.split_once(' ').map_or("", |(_, class)| class).to_string()),
            "at" => c.last_at = rest.parse().ok(),
            "done" => c.done = true,
            "panic" => {
                let (i, msg) = rest.split_once(' ').unwrap_or((rest, ""));
                c.panicked = Some((i.parse().map_err(|_| format!("bad worker line {line:?}"))?, msg.to_string()));
            }
            _ => return Err(format!("bad worker line {line:?}")),
        }
    }
    proc.wait().map_err(|e| e.to_string())?;
    Ok(c)
}

/// A target run in child processes, for builds where panics abort (see the module docs).
fn supervise(t: &dyn Runner, seed: u64, execs: u64) -> Result<Stats, String> {
    let mut stats = Stats::default();
    let mut from = 0;
    while from < execs {
        let c = child(t.name(), seed, from, execs, stats.printed, false)?;
        // The child printed its property failures itself, in the same order this counts them.
        for class in &c.failed {
            stats.fail(class);
        }
        if c.done {
            break;
        }
        let (index, msg) = match c.panicked {
            Some(p) => p,
            None => {
                // Died without a panic (a stack overflow, a signal): find the input by tracing a rerun.
                let traced = child(t.name(), seed, from, execs, PRINTED_PER_TARGET, true)?;
                match (traced.done, traced.last_at) {
                    (false, Some(i)) => (i, "the process died without a panic (stack overflow or signal; see above)".to_string()),
                    _ => {
                        if stats.fail("worker died") {
                            eprintln!("FAIL {}: a worker died after input {from} without a panic, and a rerun did not", t.name());
                        }
                        break;
                    }
                }
            }
        };
        let msg = msg.replace('\u{1f}', "\n");
        if stats.fail(&class("panic", &msg)) {
            report(t, seed, index, "panic", &msg);
        }
        from = index + 1;
    }
    stats.execs = execs;
    Ok(stats)
}

fn main() -> ExitCode {
    install_panic_hook();
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let all = targets::all();
    let find = |name: &str| all.iter().find(|t| t.name() == name).map(|t| &**t);

    if let Some((name, from, printed)) = &o.worker {
        IN_WORKER.store(true, Ordering::SeqCst);
        let Some(t) = find(name) else { return ExitCode::from(2) };
        let mut stats = Stats { printed: *printed, ..Stats::default() };
        run_range(t, o.seed, *from, o.execs, &mut stats, o.trace);
        println!("done");
        return ExitCode::SUCCESS;
    }

    if let Some(index) = o.replay {
        let [name] = o.targets.as_slice() else {
            eprintln!("--replay needs exactly one --target");
            return ExitCode::from(2);
        };
        let t = find(name).expect("checked by parse_args");
        println!("input: {}", t.show(o.seed, index, 0));
        let _ = std::io::stdout().flush();
        return match t.run(o.seed, index) {
            Outcome::Pass => {
                println!("pass");
                ExitCode::SUCCESS
            }
            Outcome::Fail(why) => {
                println!("FAIL (property): {why}");
                ExitCode::FAILURE
            }
            Outcome::Panic(msg) => {
                println!("FAIL (panic): {msg}");
                ExitCode::FAILURE
            }
        };
    }

    let chosen: Vec<&dyn Runner> = if o.targets.is_empty() { all.iter().map(|t| &**t).collect() } else { o.targets.iter().filter_map(|n| find(n)).collect() };
    eprintln!(
        "qauth-fuzz: seed {}, {} inputs per target{}",
        o.seed,
        o.execs,
        if cfg!(panic = "abort") { " (panic = abort: one worker process per target)" } else { "" }
    );
    println!("{:<10} {:>10} {:>9} {:>9} {:>10}", "target", "execs", "failures", "seconds", "execs/s");
    let mut failed = false;
    for t in chosen {
        let start = Instant::now();
        let stats = if cfg!(panic = "abort") {
            match supervise(t, o.seed, o.execs) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{}: {e}", t.name());
                    return ExitCode::FAILURE;
                }
            }
        } else {
            let mut s = Stats::default();
            run_range(t, o.seed, 0, o.execs, &mut s, false);
            s
        };
        let secs = start.elapsed().as_secs_f64();
        failed |= stats.failures > 0;
        println!("{:<10} {:>10} {:>9} {:>9.2} {:>10.0}", t.name(), stats.execs, stats.failures, secs, stats.execs as f64 / secs.max(1e-9));
        let _ = std::io::stdout().flush();
        for (class, n) in &stats.classes {
            eprintln!("  {} failures: {n} × {class}", t.name());
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
