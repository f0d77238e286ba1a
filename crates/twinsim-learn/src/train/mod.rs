//! Training: from options to a run directory holding a model.
//!
//! [`train`] prepares the run (`plan`: loads the data, resolves the options
//! ([`config`]) with the recipe the data gets ([`recipe`]), builds the
//! encoder, loss, miner, sampler, optimizer and schedule, and checks them;
//! [`plan()`] stops there), runs the epochs (`fit`) with a validation metric
//! after each (`measure`), checkpoints every epoch ([`checkpoint`]), stops
//! early when asked ([`early_stop`]) and writes the model at the end
//! ([`run_dir`]).

pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod early_stop;
pub mod ema;
mod fit;
mod measure;
pub mod optimizer;
mod parts;
mod plan;
pub mod precision;
pub mod recipe;
pub mod run_dir;
pub mod schedule;

pub use config::{TrainConfig, TrainOptions};
pub use fit::{train, RunSummary, TrainRequest};
pub use plan::plan;
pub use recipe::{Recipe, RECIPES};
pub use run_dir::{EpochMetrics, RunDir};
