//! twinsim-data's integration tests, on the real datasets in ../shared/data.
//!
//! One test binary, one module a file: the crate's tests link once and
//! share one pool of threads, where each file under tests/ would be its own
//! binary, linked against libtorch and run one after another.

mod common;

mod archive;
mod bounds;
mod cifar;
mod download;
mod folder;
mod idx;
mod joint;
mod npy;
mod split;
mod torch_file;
