//! What a run measures of its model while and after it trains: validation
//! Precision@1 after every epoch, and the standard protocol's test
//! Precision@1 (test queries against the training images).

use tch::Device;
use twinsim_data::Dataset;

use super::config::TrainConfig;
use crate::distributed::World;
use crate::error::{LearnError, Result};
use crate::model::Model;
use crate::{metrics, tensor};

/// Images per batch when embedding for evaluation: small enough that each
/// layer's activations stay under glibc's 32 MB mmap threshold and are
/// recycled, instead of being page-faulted in afresh for every batch.
const EVAL_BATCH: usize = 200;

/// Precision@1 of `test`'s images as queries against `gallery`'s (the
/// standard protocol), embedded by `model`.
pub(super) fn test_precision(model: &Model, gallery: &Dataset, test: &Dataset, world: &World) -> f64 {
    let g = world.embed_images(model, &gallery.images, EVAL_BATCH);
    let q = world.embed_images(model, &test.images, EVAL_BATCH);
    metrics::precision_at_1(
        &q,
        &tensor::labels_tensor(&test.labels, Device::Cpu),
        &g,
        &tensor::labels_tensor(&gallery.labels, Device::Cpu),
        model.card.distance,
        false,
    )
}

/// Refuses a test after every epoch that cannot be made: without a test
/// split, or with whitened features, which are fitted once training ends
/// (fitting them each epoch would draw from the random generator that
/// training draws from, and so change the run).
pub(super) fn check_test_each_epoch(cfg: &TrainConfig, test: Option<&Dataset>) -> Result<()> {
    if test.is_none() {
        return Err(LearnError::config(
            "--test-each-epoch needs a test split, and this image folder has none",
            "add a test/ folder beside train/, or train without --test-each-epoch",
        ));
    }
    if cfg.embedding == "features" {
        return Err(LearnError::config(
            "--test-each-epoch measures the head's embedding, but --embedding features is whitened only when training ends",
            "train without --test-each-epoch (the final test Precision@1 is still measured)",
        ));
    }
    Ok(())
}

/// Precision@1 of the validation split against itself, leave-one-out.
pub(super) fn validate(model: &Model, val: &Dataset, world: &World) -> f64 {
    let emb = world.embed_images(model, &val.images, EVAL_BATCH);
    let labels = tensor::labels_tensor(&val.labels, Device::Cpu);
    metrics::precision_at_1(&emb, &labels, &emb, &labels, model.card.distance, true)
}
