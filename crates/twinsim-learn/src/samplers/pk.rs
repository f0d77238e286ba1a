//! P classes × K images per batch: what mining losses need, since every
//! anchor then has K − 1 positives and (P − 1)·K negatives in its batch.

use rand::seq::{IndexedRandom, SliceRandom};

use super::{by_class, epoch_rng, Sampler};
use crate::error::{LearnError, Result};

/// Batches of P classes × K images. Each class's images are dealt from a
/// shuffled deck (reshuffled when used up), so an epoch of N/(P·K) batches
/// shows nearly every image once; classes are drawn in proportion to the
/// images they have left.
#[derive(Debug)]
pub struct ClassesTimesImages {
    classes: Vec<Vec<usize>>,
    p: usize,
    k: usize,
    batches: usize,
    seed: u64,
}

impl ClassesTimesImages {
    /// `batch_size` = P·K images; fails when the data has fewer than P
    /// classes, or K does not divide the batch.
    pub fn new(labels: &[u32], num_classes: usize, batch_size: usize, k: usize, seed: u64) -> Result<Self> {
        if k < 2 || batch_size % k != 0 {
            return Err(LearnError::config(
                format!("P x K batches need K >= 2 dividing the batch size (batch {batch_size}, K {k})"),
                "choose --batch-size as a multiple of --per-class-batch (e.g. 256 = 8 x 32)",
            ));
        }
        let classes: Vec<Vec<usize>> = by_class(labels, num_classes)
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        let p = batch_size / k;
        if classes.len() < p {
            return Err(LearnError::config(
                format!(
                    "P x K batches of {p} classes x {k} images, but the data has only {} classes",
                    classes.len()
                ),
                format!("lower P: e.g. --batch-size {} keeps K = {k}", classes.len() * k),
            ));
        }
        Ok(ClassesTimesImages {
            batches: (labels.len() / batch_size).max(1),
            classes,
            p,
            k,
            seed,
        })
    }
}

impl Sampler for ClassesTimesImages {
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = epoch_rng(self.seed, epoch);
        let mut decks: Vec<Vec<usize>> = self.classes.clone();
        for d in &mut decks {
            d.shuffle(&mut rng);
        }
        let mut batches = Vec::with_capacity(self.batches);
        for _ in 0..self.batches {
            let weights: Vec<(usize, usize)> = decks.iter().map(Vec::len).enumerate().collect();
            let chosen: Vec<usize> = weights
                .choose_multiple_weighted(&mut rng, self.p, |&(c, left)| {
                    (left + 1) as f64 / (self.classes[c].len() + 1) as f64
                })
                .expect("weights are positive")
                .map(|&(c, _)| c)
                .collect();
            let mut batch = Vec::with_capacity(self.p * self.k);
            for c in chosen {
                for _ in 0..self.k {
                    if decks[c].is_empty() {
                        decks[c] = self.classes[c].clone();
                        decks[c].shuffle(&mut rng);
                    }
                    batch.push(decks[c].pop().expect("deck refilled"));
                }
            }
            batches.push(batch);
        }
        batches
    }
}
