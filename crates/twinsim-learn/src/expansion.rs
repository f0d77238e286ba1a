//! Gallery context for classes the model never saw: database-side
//! augmentation (DBA) and query expansion, image retrieval's standard
//! re-ranking (Arandjelović & Zisserman 2012; Radenović et al. 2018's αQE,
//! here with α = 1).
//!
//! A model trained on some classes places the images of a new class on a
//! spread-out, curved patch of its embedding space: neighbours agree
//! (Precision@1 stays high), but the two ends of one patch can be less
//! similar than two different classes, which costs pair verification. An
//! unlabelled gallery of the new classes fills the patch in:
//! - DBA replaces each gallery embedding with the similarity-weighted sum of
//!   its `dba` nearest gallery items (itself included), renormalised, which
//!   draws each patch together;
//! - query expansion adds to each query the DBA embeddings of its `query`
//!   nearest gallery items (found with the plain embeddings), weighted by
//!   their similarity, and renormalises.
//!
//! No label is used. On MNIST trained on digits 0-4, this raised the pair
//! ROC-AUC on 5-9 from 0.939 to 0.987 (medians of 3) with a gallery of the
//! 29,404 unlabelled training images of 5-9, and a gallery of 200 of them
//! was enough for 0.98 (docs/benchmarks.md, "New classes without
//! retraining").

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::metrics::neighbours::Search;
use crate::metrics::{blocks, CHUNK};
use crate::model::Distance;
use crate::{LearnError, Result};

/// The most neighbour values (rows × k × D floats, 256 MB) one block of
/// rows gathers.
pub const BLOCK_VALUES: i64 = 64 << 20;

/// How much gallery context to add; 0 turns a part off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Expansion {
    /// Gallery neighbours averaged into each gallery item (DBA).
    pub dba: i64,
    /// Gallery neighbours added to each query.
    pub query: i64,
}

impl Expansion {
    /// Neither part is on.
    pub fn is_off(&self) -> bool {
        self.dba == 0 && self.query == 0
    }

    /// Refuses what the expansion cannot work with: a negative count, or
    /// embeddings compared by Euclidean distance (the weights are cosine
    /// similarities).
    pub fn check(&self, distance: Distance) -> Result<()> {
        if self.dba < 0 || self.query < 0 {
            return Err(LearnError::config(
                format!(
                    "neighbour counts must not be negative (dba {}, query expansion {})",
                    self.dba, self.query
                ),
                "give 0 to turn a part off, or a count such as --dba 400 --query-expansion 50",
            ));
        }
        if !self.is_off() && distance != Distance::Cosine {
            return Err(LearnError::config(
                "DBA and query expansion need a model that compares by cosine similarity; this one uses euclidean distance",
                "evaluate it without --dba and --query-expansion, or train with a cosine loss (the default)",
            ));
        }
        Ok(())
    }

    /// `queries` (N, D) and `gallery` (G, D) in the gallery's context:
    /// (expanded queries (N, D), DBA gallery (G, D)), to be compared by
    /// cosine. Both are L2-normalised first, so Euclidean embeddings (raw
    /// pixels as a reference point) can be given the same context.
    pub fn apply(&self, queries: &Tensor, gallery: &Tensor) -> (Tensor, Tensor) {
        let (queries, gallery) = (normalise(queries), normalise(gallery));
        let augmented = self.augment_gallery(&gallery);
        (self.expand(&queries, &gallery, &augmented), augmented)
    }

    /// The DBA embeddings of `gallery` (G, D), L2-normalised: (G, D). The
    /// gallery itself when DBA is off.
    fn augment_gallery(&self, gallery: &Tensor) -> Tensor {
        if self.dba == 0 {
            return gallery.shallow_clone();
        }
        normalise(&weighted_neighbours(gallery, gallery, gallery, self.dba))
    }

    /// `queries` (N, D) expanded with their nearest items of `gallery`
    /// (G, D), whose DBA embeddings are `augmented` (G, D): (N, D),
    /// L2-normalised. The queries themselves when query expansion is off.
    fn expand(&self, queries: &Tensor, gallery: &Tensor, augmented: &Tensor) -> Tensor {
        if self.query == 0 {
            return queries.shallow_clone();
        }
        normalise(&(queries + weighted_neighbours(queries, gallery, augmented, self.query)))
    }
}

/// For each row x of `x` (N, D): the sum over its `k` nearest rows g of
/// `gallery` (G, D) of max(0, x·g) times g's row of `values` (G, D); (N, D).
/// `k` is capped at the gallery's size. Rows go in blocks of at most
/// [`CHUNK`], fewer when k × D is large, so a block's neighbours never hold
/// more than [`BLOCK_VALUES`] values whatever `k` asks.
fn weighted_neighbours(x: &Tensor, gallery: &Tensor, values: &Tensor, k: i64) -> Tensor {
    let (n, d) = (x.size()[0], x.size()[1]);
    let k = k.min(gallery.size()[0]);
    let rows = (BLOCK_VALUES / (k * d).max(1)).clamp(1, CHUNK);
    let search = Search::new(gallery, Distance::Cosine, false);
    let parts: Vec<Tensor> = blocks(n, rows)
        .map(|(start, len)| {
            let block = x.narrow(0, start, len);
            let found = search.nearest(&block, start, k).reshape([-1]);
            let near = gallery.index_select(0, &found).view([len, k, d]);
            let weights = (near * block.unsqueeze(1))
                .sum_dim_intlist(2, false, Kind::Float)
                .clamp_min(0.0);
            let picked = values.index_select(0, &found).view([len, k, d]);
            (picked * weights.unsqueeze(2)).sum_dim_intlist(1, false, Kind::Float)
        })
        .collect();
    if parts.is_empty() {
        return x.zeros_like();
    }
    Tensor::cat(&parts, 0)
}

/// Rows scaled to unit length (a zero row stays zero).
fn normalise(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = values.iter().flatten().copied().collect();
        normalise(&Tensor::from_slice(&flat).view([-1, 2]))
    }

    fn close(a: &Tensor, b: &Tensor) -> bool {
        a.allclose(b, 1e-6, 1e-6, false)
    }

    #[test]
    fn off_changes_nothing() {
        let g = rows(&[[1.0, 0.0], [0.0, 1.0]]);
        let q = rows(&[[1.0, 1.0]]);
        let off = Expansion::default();
        assert!(off.is_off());
        assert!(close(&off.augment_gallery(&g), &g));
        assert!(close(&off.expand(&q, &g, &g), &q));
    }

    #[test]
    fn dba_is_the_weighted_mean_of_the_neighbours_by_hand() {
        // Items 0 and 1 are 60° apart (cos 0.5); item 2 is opposite item 0.
        let g = rows(&[[1.0, 0.0], [0.5, 0.75f32.sqrt()], [-1.0, 0.0]]);
        let dba = Expansion { dba: 2, query: 0 }.augment_gallery(&g);
        // Item 0: itself (weight 1) plus item 1 (weight 0.5).
        let want0 = normalise(&Tensor::from_slice(&[1.25f32, 0.5 * 0.75f32.sqrt()]).view([1, 2]));
        assert!(close(&dba.narrow(0, 0, 1), &want0));
        // Item 2's other neighbour is at cos ≤ 0: weight 0, so it keeps itself.
        assert!(close(&dba.narrow(0, 2, 1), &g.narrow(0, 2, 1)));
    }

    #[test]
    fn expansion_adds_the_augmented_neighbours_of_the_plain_search() {
        let g = rows(&[[1.0, 0.0], [0.0, 1.0]]);
        // Distinct "augmented" rows show which ones the query took.
        let augmented = rows(&[[1.0, 1.0], [-1.0, 1.0]]);
        let q = rows(&[[1.0, 0.2]]);
        let e = Expansion { dba: 0, query: 1 }.expand(&q, &g, &augmented);
        let w = f64::from(1.0 / 1.04f32.sqrt());
        let want = normalise(&(&q + augmented.narrow(0, 0, 1) * w));
        assert!(close(&e, &want));
    }

    #[test]
    fn k_beyond_the_gallery_takes_the_whole_gallery() {
        let g = rows(&[[1.0, 0.0], [1.0, 1.0]]);
        let all = Expansion { dba: 50, query: 0 }.augment_gallery(&g);
        let two = Expansion { dba: 2, query: 0 }.augment_gallery(&g);
        assert!(close(&all, &two));
    }

    /// A fixed xorshift: uniform values in [-0.5, 0.5), the same every run.
    struct Uniform(u64);

    impl Uniform {
        fn take(&mut self, n: usize) -> Vec<f32> {
            (0..n)
                .map(|_| {
                    self.0 ^= self.0 << 13;
                    self.0 ^= self.0 >> 7;
                    self.0 ^= self.0 << 17;
                    (self.0 >> 11) as f32 / (1u64 << 53) as f32 - 0.5
                })
                .collect()
        }
    }

    /// `per_class` unit vectors around each of `centres` (C, D), pulled
    /// off by uniform noise of width `noise`, and their labels.
    fn around(centres: &Tensor, per_class: i64, noise: f64, rng: &mut Uniform) -> (Tensor, Vec<usize>) {
        let (c, d) = (centres.size()[0], centres.size()[1]);
        let spread = Tensor::from_slice(&rng.take((c * per_class * d) as usize)).view([c * per_class, d]);
        let x = centres.repeat_interleave_self_int(per_class, 0, None) + spread * noise;
        let labels = (0..c as usize)
            .flat_map(|i| std::iter::repeat_n(i, per_class as usize))
            .collect();
        (normalise(&x), labels)
    }

    /// ROC-AUC of every pair of `x`'s rows, same label against different.
    fn pair_auc(x: &Tensor, labels: &[usize]) -> f64 {
        let sims = Vec::<f32>::try_from(x.matmul(&x.tr()).reshape([-1])).unwrap();
        let n = labels.len();
        let (mut scores, mut same) = (Vec::new(), Vec::new());
        for i in 0..n {
            for j in i + 1..n {
                scores.push(f64::from(sims[i * n + j]));
                same.push(labels[i] == labels[j]);
            }
        }
        crate::metrics::verification::roc_auc(&scores, &same).unwrap()
    }

    #[test]
    fn an_unlabelled_gallery_makes_noisy_classes_verifiable() {
        let mut rng = Uniform(0x9e37_79b9_7f4a_7c15);
        let centres = Tensor::from_slice(&rng.take(4 * 32)).view([4, 32]);
        let (gallery, _) = around(&centres, 300, 2.0, &mut rng);
        let (queries, labels) = around(&centres, 40, 2.0, &mut rng);
        let (expanded, _) = Expansion { dba: 50, query: 20 }.apply(&queries, &gallery);
        let plain = pair_auc(&queries, &labels);
        let expanded = pair_auc(&expanded, &labels);
        assert!(plain < 0.95, "the clusters are meant to overlap: {plain}");
        assert!(expanded > plain + 0.03, "plain {plain}, with context {expanded}");
    }

    #[test]
    fn refuses_euclidean_models_and_negative_counts() {
        let on = Expansion { dba: 10, query: 5 };
        assert!(on.check(Distance::Cosine).is_ok());
        let err = on.check(Distance::Euclidean).unwrap_err();
        assert!(err.to_string().contains("cosine"), "{err}");
        assert!(Expansion { dba: -1, query: 0 }.check(Distance::Cosine).is_err());
        assert!(Expansion::default().check(Distance::Euclidean).is_ok());
    }
}
