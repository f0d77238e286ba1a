//! Pair samplers: a batch of B pairs is 2B indices, [a₁..a_B, b₁..b_B].

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

use super::{by_class, epoch_rng, Sampler};
use crate::error::{LearnError, Result};

/// The seed's pairs: two independent shuffles of the dataset zipped together,
/// so most pairs are of different classes (9 in 10 on MNIST).
#[derive(Debug)]
pub struct RandomPairs {
    len: usize,
    pairs_per_batch: usize,
    seed: u64,
}

impl RandomPairs {
    /// Pairs over `len` items, `pairs_per_batch` to a batch.
    pub fn new(len: usize, pairs_per_batch: usize, seed: u64) -> Self {
        RandomPairs {
            len,
            pairs_per_batch,
            seed,
        }
    }
}

impl Sampler for RandomPairs {
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = epoch_rng(self.seed, epoch);
        let mut first: Vec<usize> = (0..self.len).collect();
        let mut second = first.clone();
        first.shuffle(&mut rng);
        second.shuffle(&mut rng);
        first
            .chunks_exact(self.pairs_per_batch)
            .zip(second.chunks_exact(self.pairs_per_batch))
            .map(|(a, b)| [a, b].concat())
            .collect()
    }
}

/// Pairs of which half are of the same class: each dataset item is an anchor
/// once per epoch, partnered with a random item of its own class (even
/// positions) or of another class (odd positions).
#[derive(Debug)]
pub struct BalancedPairs {
    labels: Vec<u32>,
    classes: Vec<Vec<usize>>,
    pairs_per_batch: usize,
    seed: u64,
}

impl BalancedPairs {
    /// Fails when fewer than two classes have two or more images.
    pub fn new(labels: &[u32], pairs_per_batch: usize, seed: u64) -> Result<Self> {
        let num_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let classes = by_class(labels, num_classes);
        if classes.iter().filter(|c| c.len() >= 2).count() < 2 {
            return Err(LearnError::config(
                "balanced pairs need at least two classes with two images or more",
                "use more classes, or the `pairs` sampler",
            ));
        }
        Ok(BalancedPairs {
            labels: labels.to_vec(),
            classes,
            pairs_per_batch,
            seed,
        })
    }

    fn partner(&self, anchor: usize, same: bool, rng: &mut impl Rng) -> usize {
        let own = self.labels[anchor] as usize;
        if same && self.classes[own].len() >= 2 {
            loop {
                let p = *self.classes[own].choose(rng).expect("class has members");
                if p != anchor {
                    return p;
                }
            }
        }
        loop {
            let p = rng.random_range(0..self.labels.len());
            if self.labels[p] as usize != own {
                return p;
            }
        }
    }
}

impl Sampler for BalancedPairs {
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = epoch_rng(self.seed, epoch);
        let mut anchors: Vec<usize> = (0..self.labels.len()).collect();
        anchors.shuffle(&mut rng);
        anchors
            .chunks_exact(self.pairs_per_batch)
            .map(|a| {
                let b: Vec<usize> = a
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| self.partner(x, i % 2 == 0, &mut rng))
                    .collect();
                [a, &b].concat()
            })
            .collect()
    }
}
