//! Batch samplers: which dataset items form each batch of an epoch.
//!
//! Every sampler is a pure function of (seed, epoch): the same seed gives the
//! same batches on every run, and a resumed run regenerates the epoch it
//! stopped in without storing sampler state.

mod pairs;
mod pk;
mod shuffle;

pub use pairs::{BalancedPairs, RandomPairs};
pub use pk::ClassesTimesImages;
pub use shuffle::Shuffled;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{LearnError, Result};

/// Produces an epoch's batches as lists of dataset indices.
pub trait Sampler: std::fmt::Debug + Send {
    /// The batches of `epoch` (0-based), each a list of indices into the
    /// dataset. Pair samplers return [a₁..a_B, b₁..b_B]: item i is paired
    /// with item i + B.
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>>;
}

/// Every sampler name with a one-line description.
pub const SAMPLERS: &[(&str, &str)] = &[
    (
        "pairs",
        "random pairs from two shuffles of the data (the seed's way)",
    ),
    (
        "balanced-pairs",
        "pairs, half of the same class and half of different classes",
    ),
    ("pk", "P classes x K images per batch, for mining losses"),
    (
        "shuffle",
        "one shuffle of the data per epoch, cut into batches (as a classifier trains), for the proxy losses",
    ),
];

/// What a sampler is built from.
#[derive(Clone, Debug)]
pub struct SamplerConfig<'a> {
    pub name: &'a str,
    /// Images per batch (for pair samplers: twice the number of pairs).
    pub batch_size: usize,
    /// Images per class in a `pk` batch (P = batch_size / K).
    pub per_class: usize,
    pub seed: u64,
}

/// Builds sampler `cfg.name` over `labels` (`num_classes` classes).
pub fn build(cfg: &SamplerConfig, labels: &[u32], num_classes: usize) -> Result<Box<dyn Sampler>> {
    if cfg.batch_size < 2 || cfg.batch_size > labels.len() {
        return Err(LearnError::config(
            format!(
                "batch size {} does not fit a dataset of {} images",
                cfg.batch_size,
                labels.len()
            ),
            "use a batch size between 2 and the number of training images",
        ));
    }
    match cfg.name {
        "pairs" => Ok(Box::new(RandomPairs::new(
            labels.len(),
            cfg.batch_size / 2,
            cfg.seed,
        ))),
        "balanced-pairs" => Ok(Box::new(BalancedPairs::new(
            labels,
            cfg.batch_size / 2,
            cfg.seed,
        )?)),
        "pk" => Ok(Box::new(ClassesTimesImages::new(
            labels,
            num_classes,
            cfg.batch_size,
            cfg.per_class,
            cfg.seed,
        )?)),
        "shuffle" => Ok(Box::new(Shuffled::new(labels.len(), cfg.batch_size, cfg.seed))),
        other => Err(LearnError::config(
            format!("unknown sampler '{other}'"),
            format!("use one of: {}", crate::registry::names(SAMPLERS)),
        )),
    }
}

/// The RNG of `epoch` for a sampler seeded with `seed`.
fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    rng
}

/// Indices of each class's members.
fn by_class(labels: &[u32], num_classes: usize) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        groups[l as usize].push(i);
    }
    groups
}
