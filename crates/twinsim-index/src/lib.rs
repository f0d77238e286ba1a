//! Galleries of embedded images searched by similarity. An [`Index`] holds
//! a model's embeddings of known images with their class names and sources
//! and refuses queries from any other model; [`file`] stores it safely;
//! [`exact`] finds nearest neighbours, [`hnsw`] approximately for large
//! galleries; [`identify`] answers open-set
//! questions (which enrolled class, or unknown); [`dedup`] groups
//! near-duplicates.

pub mod dedup;
pub mod error;
pub mod exact;
pub mod file;
pub mod gallery;
pub mod grid;
pub mod hnsw;
pub mod identify;
pub mod index;

pub use error::{IndexError, Result};
pub use index::{Backend, Index, IndexInfo, Neighbour};
