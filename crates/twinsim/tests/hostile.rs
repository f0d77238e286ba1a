//! The standing hostile-input suite (issue 18): a corpus generated at test
//! time for every input path of the `twinsim` binary, each case run on the
//! real binary under a 4 GiB address-space limit and a timeout.
//!
//! Every case must end with exit 0 and a correct answer, or exit 1 with an
//! `error:` and a `hint:` line; never a signal, a panic, a backtrace, a hang,
//! or a changed file it was not asked to write. The cases are tables, one
//! module per input family under `tests/hostile/`; `docs/hostile-inputs.md`
//! lists them with what each gets.
//!
//! Run it with `cargo test --release -p twinsim --features twinsim/mpi --test hostile`.
//! `HOSTILE_FILTER=substring` runs only the cases whose name contains it.

mod common;
// `mod hostile;` would name this file itself.
#[path = "hostile/mod.rs"]
mod suite;

#[test]
fn every_hostile_input_gets_an_answer_or_a_clear_error() {
    suite::run_suite();
}
