//! twinsim-learn's integration tests, against the oracle fixtures and real data.
//!
//! One test binary, one module a file: the crate's tests link once and
//! share one pool of threads, where each file under tests/ would be its own
//! binary, linked against libtorch and run one after another.

mod common;

mod encoders;
mod fid;
mod inception;
mod losses;
mod metrics;
mod model;
mod optimizer;
mod precision;
mod recipes;
mod samplers;
mod tensor;
