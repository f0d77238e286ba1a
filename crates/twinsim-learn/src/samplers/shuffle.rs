//! Plain shuffled batches, as a classifier trains: what the proxy losses
//! need, since each image is scored against every class's proxy and needs
//! no partner in its batch.

use rand::seq::SliceRandom;

use super::{epoch_rng, Sampler};

/// Each epoch, one permutation of the dataset cut into batches of
/// `batch_size`; the last partial batch is dropped, so an epoch shows all but
/// fewer than `batch_size` images once. Batches mix classes as the data
/// does, where P × K batches hold P classes (8 of CIFAR-10's 10 at 256 =
/// 8 × 32), which skews the batch norms' statistics towards the classes drawn.
#[derive(Debug)]
pub struct Shuffled {
    len: usize,
    batch_size: usize,
    seed: u64,
}

impl Shuffled {
    /// Batches of `batch_size` over `len` items (`batch_size` ≤ `len`,
    /// which [`super::build`] checks).
    pub fn new(len: usize, batch_size: usize, seed: u64) -> Self {
        Shuffled {
            len,
            batch_size,
            seed,
        }
    }
}

impl Sampler for Shuffled {
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = epoch_rng(self.seed, epoch);
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(&mut rng);
        order
            .chunks_exact(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}
