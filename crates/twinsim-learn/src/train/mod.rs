//! Training: from options to a run directory holding a model.
//!
//! [`train`] resolves the options ([`config`]), loads the data, builds the
//! encoder, loss, miner, sampler, optimizer and schedule, runs the epochs
//! (`fit`) with a validation metric after each, checkpoints every epoch
//! ([`checkpoint`]) and writes the model at the end ([`run_dir`]).

pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod ema;
mod fit;
pub mod optimizer;
pub mod precision;
pub mod recipe;
pub mod run_dir;
pub mod schedule;

pub use config::{TrainConfig, TrainOptions};
pub use fit::{train, RunSummary, TrainRequest};
pub use recipe::{Recipe, RECIPES};
pub use run_dir::{EpochMetrics, RunDir};
