//! The standing hostile-input suite (issue 18): a corpus generated at test
//! time for every input path of the `twinsim` binary, each case run on the
//! real binary under a 4 GiB address-space limit and a timeout.
//!
//! Every case must end with exit 0 and a correct answer, or exit 1 with an
//! `error:` and a `hint:` line; never a signal, a panic, a backtrace, a hang,
//! or a changed file it was not asked to write. The cases are tables, one
//! module per input family here; `docs/hostile-inputs.md` lists them with
//! what each gets. This module holds the suite's parts: the harness, the
//! corpus writers, the shared fixture, and the families' modules.
//!
//! Run it with `cargo test --release -p twinsim --features twinsim/mpi --test it hostile`.
//! `HOSTILE_FILTER=substring` runs only the cases whose name contains it.

#[test]
fn every_hostile_input_gets_an_answer_or_a_clear_error() {
    run_suite();
}

#[macro_use]
mod harness;
mod configs;
mod datasets;
mod files;
mod fixture;
mod images;
mod indexes;
mod models;
mod npz;
mod outputs;

use fixture::Fixture;
use harness::{run_all, snapshot, Case, Failure};

/// Builds the fixture and every family's corpus, runs the cases (or those
/// whose name contains `$HOSTILE_FILTER`), and fails once, listing every
/// case that did not hold.
pub fn run_suite() {
    let start = std::time::Instant::now();
    let fx = Fixture::build();
    eprintln!(
        "hostile: model and gallery in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let families: [fn(&Fixture) -> Vec<Case>; 7] = [
        images::cases,
        models::cases,
        indexes::cases,
        datasets::cases,
        npz::cases,
        configs::cases,
        outputs::cases,
    ];
    let mut cases: Vec<Case> = families.iter().flat_map(|family| family(&fx)).collect();
    if let Ok(filter) = std::env::var("HOSTILE_FILTER") {
        cases.retain(|c| c.name.contains(&filter));
    }
    eprintln!(
        "hostile: {} cases written in {:.1} s",
        cases.len(),
        start.elapsed().as_secs_f64()
    );
    // No case may change the model or the corpus, whatever it was asked.
    let before = snapshot(&[&fx.run, &fx.ro]);
    let mut failures = run_all(&cases, &fx.rw);
    let after = snapshot(&[&fx.run, &fx.ro]);
    let paths: std::collections::BTreeSet<_> = before.keys().chain(after.keys()).collect();
    let changed: Vec<String> = paths
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| format!("{} changed", p.display()))
        .collect();
    if !changed.is_empty() {
        failures.push(Failure {
            name: "shared inputs".into(),
            problems: changed,
            stderr_tail: String::new(),
        });
    }
    assert!(failures.is_empty(), "{}", harness::report(&failures, cases.len()));
}
