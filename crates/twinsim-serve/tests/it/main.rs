//! twinsim-serve's integration tests, on real servers over loopback.
//!
//! One test binary, one module a file: the crate's tests link once and
//! share one pool of threads, where each file under tests/ would be its own
//! binary, linked against libtorch and run one after another.

mod common;

mod api;
mod connections;
