//! The twinsim binary's integration tests, run on the real binary.
//!
//! One test binary, one module a file: the crate's tests link once and
//! share one pool of threads, where each file under tests/ would be its own
//! binary, linked against libtorch and run one after another.

mod common;

mod datasets_cli;
mod distributed_cli;
mod hostile;
mod index_cli;
mod joint_cli;
mod recipes_cli;
mod score_cli;
mod serve_cli;
mod startup_cli;
mod train_cli;
