//! Runs cases: the real binary under a memory limit and a timeout, two at a
//! time, then every invariant a user is owed; failures are collected, not
//! raised, so that one run shows them all.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The address space every run may map: far below the 17 GB the reported
/// aborts asked for, far above what the small model's runs need (libtorch
/// maps about 1 GiB at start).
pub const MEMORY_LIMIT: u64 = 4 << 30;

/// Longest a case may run before it counts as a hang.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The timeout of cases that would block rather than work when they go
/// wrong (a FIFO opened for reading, a server that accepts a bad option):
/// such runs need a second when right, and waiting a full minute for each
/// would double the suite's time.
pub const BLOCKING_TIMEOUT: Duration = Duration::from_secs(15);

/// Text that must never reach a user: panics (Rust's own message, or the
/// one line twinsim's panic hook prints instead), backtraces, allocation
/// aborts and Debug-formatted errors.
const FORBIDDEN: &[&str] = &[
    "panicked",
    "internal error",
    "RUST_BACKTRACE",
    "stack backtrace",
    "memory allocation of",
    "Os { code",
    "Custom { kind",
];

/// A check of a successful run's output (and of what it wrote).
pub type Check = Box<dyn Fn(&Outcome) -> Result<(), String> + Send + Sync>;

/// What a case must end with.
pub enum Expect {
    /// Exit 0 (and the case's check, if any).
    Ok,
    /// Exit 1 with `error:` and `hint:` lines, the error mentioning this text.
    Error(String),
    /// Either of the two: where a correct answer and a clear refusal are
    /// both right (an image beyond a limit the product has yet to document).
    Either,
}

/// One run of the binary and what it owes.
pub struct Case {
    pub name: String,
    pub args: Vec<OsString>,
    pub expect: Expect,
    /// Checks of a successful run, all of which must pass.
    pub checks: Vec<Check>,
    /// Files whose bytes must be the same afterwards.
    pub unchanged: Vec<PathBuf>,
    /// Paths that must not exist afterwards (markers, refused outputs).
    pub absent: Vec<PathBuf>,
    /// Text stderr must not hold (a hint at an option that does not exist).
    pub never_says: Vec<String>,
    /// Runs beside the CPU-bound cases with the short timeout (see
    /// [`BLOCKING_TIMEOUT`]).
    pub blocking: bool,
}

/// Arguments of mixed types (`&str`, `&Path`, `&PathBuf`) as one list.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$(::std::ffi::OsString::from(AsRef::<::std::ffi::OsStr>::as_ref(&$a))),*]
    };
}

impl Case {
    /// A case that must succeed; change its expectation with the builders.
    pub fn new(name: impl Into<String>, args: Vec<OsString>) -> Case {
        Case {
            name: name.into(),
            args,
            expect: Expect::Ok,
            checks: Vec::new(),
            unchanged: Vec::new(),
            absent: Vec::new(),
            never_says: Vec::new(),
            blocking: false,
        }
    }

    /// Must fail with a clear error that mentions `needle`.
    pub fn error(mut self, needle: impl Into<String>) -> Case {
        self.expect = Expect::Error(needle.into());
        self
    }

    /// May succeed or fail clearly.
    pub fn either(mut self) -> Case {
        self.expect = Expect::Either;
        self
    }

    /// On success, `check` must pass too.
    pub fn check(mut self, check: impl Fn(&Outcome) -> Result<(), String> + Send + Sync + 'static) -> Case {
        self.checks.push(Box::new(check));
        self
    }

    /// `path` must keep its bytes.
    pub fn unchanged(mut self, path: impl Into<PathBuf>) -> Case {
        self.unchanged.push(path.into());
        self
    }

    /// `path` must not exist afterwards.
    pub fn absent(mut self, path: impl Into<PathBuf>) -> Case {
        self.absent.push(path.into());
        self
    }

    /// stderr must not contain `text`.
    pub fn never_says(mut self, text: impl Into<String>) -> Case {
        self.never_says.push(text.into());
        self
    }

    /// Would block when wrong: short timeout, run in the blocking pool.
    pub fn blocking(mut self) -> Case {
        self.blocking = true;
        self
    }
}

/// How a run ended.
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
}

impl Outcome {
    /// stdout as the one JSON object `--json` promises.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.stdout).map_err(|e| format!("stdout is not one JSON object ({e})"))
    }
}

/// A case that did not hold, with what went wrong.
pub struct Failure {
    pub name: String,
    pub problems: Vec<String>,
    pub stderr_tail: String,
}

/// SHA-256 of the file at `path`, or what kept it from being read.
pub fn hash(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => twinsim_data::read::sha256_hex(&bytes),
        Err(e) => format!("unreadable: {}", e.kind()),
    }
}

/// SHA-256 of every regular file under `roots` (links and special files
/// are never opened: reading a FIFO would block the suite itself).
pub fn snapshot(roots: &[&Path]) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => walk(&path, out),
                Ok(m) if m.is_file() => {
                    out.insert(path.clone(), hash(&path));
                }
                _ => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    for root in roots {
        walk(root, &mut out);
    }
    out
}

/// Runs `case` with `cache` as its private cache and `cwd` as its working
/// folder: the binary through `common::twinsim`, so offline and with its
/// own cache.
fn execute(case: &Case, cache: &Path, cwd: &Path) -> Outcome {
    std::fs::create_dir_all(cache).expect("case cache folder");
    let out_path = cache.join("stdout");
    let err_path = cache.join("stderr");
    let mut cmd = crate::common::twinsim(cache);
    // Files, not pipes: a run that writes much and is killed cannot then
    // wedge the harness, and nothing has to drain two pipes at once.
    cmd.args(&case.args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        // What a user sees by default: no backtrace unless asked for.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    // SAFETY: runs in the forked child before exec; setrlimit is
    // async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let timeout = if case.blocking { BLOCKING_TIMEOUT } else { TIMEOUT };
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start twinsim");
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for twinsim") {
            break status;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("reap twinsim");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Outcome {
        code: status.code(),
        signal: if timed_out { None } else { status.signal() },
        timed_out,
        stdout: read(&out_path),
        stderr: read(&err_path),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// True when some line of `text` starts with `prefix` (after indentation).
fn has_line(text: &str, prefix: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with(prefix))
}

/// What `outcome` owes `case` and does not have.
fn judge(case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.timed_out {
        problems.push(format!("hung: killed after {:.0} s", outcome.seconds));
        return problems;
    }
    if let Some(sig) = outcome.signal {
        problems.push(format!("killed by signal {sig}"));
    }
    for bad in FORBIDDEN {
        if outcome.stderr.contains(bad) || outcome.stdout.contains(bad) {
            problems.push(format!("output contains {bad:?}"));
        }
    }
    let clear_error = |problems: &mut Vec<String>| {
        if !has_line(&outcome.stderr, "error:") {
            problems.push("no `error:` line".into());
        }
        if !has_line(&outcome.stderr, "hint:") {
            problems.push("no `hint:` line".into());
        }
    };
    let run_check = |problems: &mut Vec<String>| {
        for check in &case.checks {
            if let Err(e) = check(outcome) {
                problems.push(format!("wrong answer: {e}"));
            }
        }
    };
    match (&case.expect, outcome.code) {
        (_, None) => {}
        (Expect::Ok, Some(0)) | (Expect::Either, Some(0)) => run_check(&mut problems),
        (Expect::Ok, Some(code)) => problems.push(format!("exit {code}, expected success")),
        // Exit 2 is clap's for a command-line mistake; its message must
        // still carry a hint.
        (Expect::Error(needle), Some(1 | 2)) => {
            clear_error(&mut problems);
            if !outcome.stderr.contains(needle.as_str()) {
                problems.push(format!("the error does not mention {needle:?}"));
            }
        }
        (Expect::Either, Some(1 | 2)) => clear_error(&mut problems),
        (Expect::Error(_), Some(0)) => problems.push("exit 0, expected an error".into()),
        (_, Some(code)) => problems.push(format!("exit {code}, expected 0 or 1")),
    }
    for text in &case.never_says {
        if outcome.stderr.contains(text.as_str()) {
            problems.push(format!("stderr says {text:?}"));
        }
    }
    for path in &case.absent {
        if std::fs::symlink_metadata(path).is_ok() {
            problems.push(format!("{} exists, and must not", path.display()));
        }
    }
    problems
}

/// The last lines of `text`, for a failure report.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..]
        .iter()
        .map(|l| {
            let cut: String = l.chars().take(300).collect();
            format!("      | {cut}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one case (hashing its protected files around the run).
fn run_one(case: &Case, scratch: &Path, index: usize) -> (Option<Failure>, f64) {
    let before: Vec<String> = case.unchanged.iter().map(|p| hash(p)).collect();
    let cache = scratch.join("cases").join(format!("{index:03}"));
    let outcome = execute(case, &cache, scratch);
    let mut problems = judge(case, &outcome);
    for (path, was) in case.unchanged.iter().zip(before) {
        if hash(path) != was {
            problems.push(format!("{} changed", path.display()));
        }
    }
    let failure = (!problems.is_empty()).then(|| Failure {
        name: case.name.clone(),
        problems,
        stderr_tail: tail(&outcome.stderr, 8),
    });
    (failure, outcome.seconds)
}

/// Runs every case, CPU-bound ones two at a time and those that may block
/// four at a time beside them, and returns the failures in table order.
pub fn run_all(cases: &[Case], scratch: &Path) -> Vec<Failure> {
    let results: Mutex<Vec<(usize, Option<Failure>)>> = Mutex::new(Vec::new());
    let pools: [(Vec<usize>, usize); 2] = [
        ((0..cases.len()).filter(|&i| !cases[i].blocking).collect(), 2),
        ((0..cases.len()).filter(|&i| cases[i].blocking).collect(), 4),
    ];
    let counters = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let shared = &results;
    std::thread::scope(|s| {
        for ((queue, workers), next) in pools.iter().zip(&counters) {
            for _ in 0..*workers {
                s.spawn(move || {
                    while let Some(&i) = queue.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let (failure, seconds) = run_one(&cases[i], scratch, i);
                        let verdict = if failure.is_some() { "FAIL" } else { "ok" };
                        eprintln!("hostile: {verdict:4} {:5.1}s  {}", seconds, cases[i].name);
                        shared.lock().unwrap().push((i, failure));
                    }
                });
            }
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().filter_map(|(_, f)| f).collect()
}

/// One message listing every failure, for the suite's single assertion.
pub fn report(failures: &[Failure], total: usize) -> String {
    let mut text = format!("{} of {total} hostile cases failed:\n", failures.len());
    for f in failures {
        text.push_str(&format!(
            "  {}: {}\n{}\n",
            f.name,
            f.problems.join("; "),
            f.stderr_tail
        ));
    }
    text
}
