//! Early stopping on validation Precision@1: a run on little data overfits
//! long before a schedule sized for it ends, so it stops once `patience`
//! epochs pass without a better validation score, and the model it saves is
//! the best epoch's, kept in `best.safetensors` beside the checkpoint (so a
//! resumed run still knows it).
//!
//! It never stops in the first half of the epochs: while the cosine
//! schedule's rate is high the score is low and noisy, and a small
//! validation split's chance peak there ended runs early. On a folder of
//! CIFAR-10 with 100 images per class (10 for validation) two seeds of
//! three stopped at epochs 16 and 25 of 80, keeping epochs 6 and 15, at test
//! Precision@1 0.35 and 0.41 where the seed that ran to epoch 46 reached
//! 0.48 (docs/benchmarks.md, "Small data").

use std::path::Path;

use tch::Tensor;

use super::run_dir::EpochMetrics;
use crate::error::{LearnError, Result};

/// File name of the best epoch's weights inside a run directory.
pub const FILE: &str = "best.safetensors";

/// The best validation score so far, when it was reached, and the weights
/// it was reached with.
#[derive(Debug)]
pub struct EarlyStop {
    patience: usize,
    /// The first epoch after which the run may stop (half the epochs).
    earliest: usize,
    best: f64,
    /// 1-based epoch of `best`; 0 before any epoch.
    best_epoch: usize,
    /// The best epoch's weights by variable name, held by every rank (only
    /// rank 0 writes them to disk); empty before any epoch.
    weights: Vec<(String, Tensor)>,
}

impl EarlyStop {
    /// Stops after `patience` epochs without improvement, once half of
    /// `epochs` are done; `history` holds the epochs a resumed run already
    /// finished, whose best weights are read back from `dir`.
    pub fn new(patience: usize, epochs: usize, history: &[EpochMetrics], dir: &Path) -> Result<EarlyStop> {
        let mut stop = EarlyStop {
            patience,
            earliest: epochs / 2,
            best: f64::NEG_INFINITY,
            best_epoch: 0,
            weights: Vec::new(),
        };
        for m in history {
            stop.record(m);
        }
        if stop.best_epoch > 0 {
            stop.weights = read(dir)?;
        }
        Ok(stop)
    }

    /// Keeps `weights` (copies, not the live variables) as the best epoch's.
    pub fn keep(&mut self, weights: Vec<(String, Tensor)>) {
        self.weights = weights;
    }

    /// The best epoch's weights, once an epoch was recorded and kept.
    pub fn weights(&self) -> &[(String, Tensor)] {
        &self.weights
    }

    /// Records a finished epoch; true when it is the best so far (ties go
    /// to the earlier epoch: no better is not better).
    pub fn record(&mut self, m: &EpochMetrics) -> bool {
        if m.val_precision_at_1 > self.best {
            self.best = m.val_precision_at_1;
            self.best_epoch = m.epoch;
            return true;
        }
        false
    }

    /// Whether training should end after epoch `epoch` (1-based).
    pub fn should_stop(&self, epoch: usize) -> bool {
        epoch >= self.earliest.max(self.best_epoch + self.patience)
    }

    /// The 1-based epoch whose weights are kept (0 before any epoch).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }
}

/// Writes `weights` as the best epoch's, atomically.
pub fn save(dir: &Path, weights: &[(String, Tensor)]) -> Result<()> {
    // `safetensors_bytes` brings each tensor to the host itself.
    twinsim_data::atomic::write_bytes(&dir.join(FILE), &crate::tensor::safetensors_bytes(weights))?;
    Ok(())
}

/// Reads the best epoch's weights that [`save`] wrote to `dir`.
fn read(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    let path = dir.join(FILE);
    crate::tensor::read_safetensors(&path).map_err(|e| {
        LearnError::bad_model(
            &path,
            format!("unreadable best weights: {e}"),
            "the run directory was changed while it trained; start a new run",
        )
    })
}

/// Copies `weights` into `targets` (the live variables, by name), checking
/// each as a checkpoint's; `dir` is named in errors.
pub fn restore(dir: &Path, weights: &[(String, Tensor)], targets: &[(String, Tensor)]) -> Result<()> {
    let saved = weights
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    super::checkpoint::restore(targets, &saved, &dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, val: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            loss: 1.0,
            val_precision_at_1: val,
            test_precision_at_1: None,
            lr: 0.1,
            epoch_seconds: 1.0,
            train_seconds: epoch as f64,
            images_per_second: 1.0,
        }
    }

    #[test]
    fn stops_after_patience_epochs_without_a_better_score() {
        let mut stop = EarlyStop::new(2, 4, &[], Path::new("unused")).unwrap();
        let vals = [0.5, 0.7, 0.7, 0.6];
        let mut stopped_at = None;
        for (i, v) in vals.into_iter().enumerate() {
            stop.record(&epoch(i + 1, v));
            if stop.should_stop(i + 1) {
                stopped_at = Some(i + 1);
                break;
            }
        }
        // Epoch 2 is the best (epoch 3 only ties), so epoch 4 ends the run.
        assert_eq!((stopped_at, stop.best_epoch()), (Some(4), 2));
    }

    #[test]
    fn never_stops_in_the_first_half_of_the_epochs() {
        let mut stop = EarlyStop::new(1, 10, &[], Path::new("unused")).unwrap();
        stop.record(&epoch(1, 0.9));
        for e in 2..=4 {
            stop.record(&epoch(e, 0.5));
            assert!(!stop.should_stop(e), "stopped after epoch {e} of 10");
        }
        stop.record(&epoch(5, 0.5));
        assert!(stop.should_stop(5));
        assert_eq!(stop.best_epoch(), 1);
    }

    #[test]
    fn a_resumed_run_remembers_its_best_epoch_and_weights() {
        let dir = tempfile::tempdir().unwrap();
        let w = vec![("w".to_string(), Tensor::from_slice(&[1.0f32, 2.0]))];
        save(dir.path(), &w).unwrap();
        let history = [epoch(1, 0.4), epoch(2, 0.8), epoch(3, 0.6)];
        let stop = EarlyStop::new(3, 4, &history, dir.path()).unwrap();
        assert_eq!(stop.best_epoch(), 2);
        assert!(!stop.should_stop(4) && stop.should_stop(5));
        assert!(stop.weights()[0].1.equal(&w[0].1));
        // Without the file the run cannot know its best weights: refused.
        let gone = tempfile::tempdir().unwrap();
        let err = EarlyStop::new(3, 4, &history, gone.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("best weights"), "{err}");
    }
}
