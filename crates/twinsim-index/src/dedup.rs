//! Near-duplicate groups: images whose pixels agree and which the model
//! also finds alike.
//!
//! A similarity model is trained to ignore what varies within a class, so
//! its embeddings alone cannot separate a re-encoded copy from another
//! image of the same class (measured in docs/benchmarks.md, "Search": on
//! MNIST the nearest other digit is closer than a JPEG copy). Candidates
//! therefore come from the pixels, as converted for the model: each image's
//! nearest neighbours by Pearson correlation (the cosine of the centred
//! pixels), kept when it is at least one threshold; the model confirms a
//! candidate when the cosine similarity of the two embeddings is at least
//! another, which turns away look-alikes of different classes.
//!
//! The neighbours come from the exact search a block of queries at a time,
//! so 100,000 images never need a 100,000 × 100,000 matrix; confirmed
//! pairs join their images' groups (union-find), so a group is every image
//! linked to another by a chain of near-duplicate pairs. An image is linked
//! to at most [`NEIGHBOURS`] others directly; larger groups still form
//! through chains.

use serde::Serialize;
use tch::{Kind, Tensor};
use twinsim_data::Images;
use twinsim_learn::model::Distance;

use crate::exact;

/// The default embedding threshold: cosine similarity at or above which
/// two images are candidates (docs/benchmarks.md, "Search").
pub const MIN_SIMILARITY: f64 = 0.9;

/// The default pixel threshold: correlation at or above which a candidate
/// pair is confirmed (docs/benchmarks.md, "Search").
pub const MIN_PIXEL_CORRELATION: f64 = 0.95;

/// Nearest neighbours examined per image.
pub const NEIGHBOURS: usize = 32;

/// One near-duplicate pair.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    /// Cosine similarity of the two embeddings, in [-1, 1].
    pub similarity: f64,
    /// Pearson correlation of the two images' pixels, in [-1, 1].
    pub pixel_correlation: f64,
}

/// When a pair is a near-duplicate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Least cosine similarity of the embeddings.
    pub similarity: f64,
    /// Least correlation of the pixels.
    pub pixel_correlation: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            similarity: MIN_SIMILARITY,
            pixel_correlation: MIN_PIXEL_CORRELATION,
        }
    }
}

/// Images that are near-duplicates of each other.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    /// Rows of the embeddings, ascending.
    pub items: Vec<usize>,
    /// The pairs that joined them, most similar first.
    pub pairs: Vec<Pair>,
}

/// Groups of `images`, embedded as the rows of `embeddings` (N, D), linked
/// by pairs that pass both `thresholds` (the embeddings' own cosine
/// similarity, whatever distance the model ranks by). Groups come in order
/// of their first item.
pub fn groups(embeddings: &Tensor, images: &Images, thresholds: Thresholds) -> Vec<Group> {
    let n = images.len();
    if n < 2 {
        return Vec::new();
    }
    let pixels = unit_rows(&centred_pixels(images));
    // Rows on the Rust side once: a tensor call per candidate pair would
    // cost more than the dot product it computes.
    let dim = embeddings.size()[1] as usize;
    let unit = Vec::<f32>::try_from(&unit_rows(embeddings).reshape([-1])).expect("CPU float32 rows");
    let row = |i: usize| &unit[i * dim..(i + 1) * dim];
    let found = exact::search(&pixels, &pixels, Distance::Cosine, NEIGHBOURS.min(n - 1), true);
    let mut sets = DisjointSets::new(n);
    let mut pairs = Vec::new();
    for (a, neighbours) in found.iter().enumerate() {
        for nb in neighbours {
            let pixel_correlation = 1.0 - nb.distance;
            if pixel_correlation < thresholds.pixel_correlation {
                break;
            }
            // Each pair once: from its lower item, or from the only side that found it.
            if a > nb.item && found[nb.item].iter().any(|m| m.item == a) {
                continue;
            }
            let similarity: f64 = row(a)
                .iter()
                .zip(row(nb.item))
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            if similarity >= thresholds.similarity {
                pairs.push(Pair {
                    a: a.min(nb.item),
                    b: a.max(nb.item),
                    similarity,
                    pixel_correlation,
                });
                sets.union(a, nb.item);
            }
        }
    }
    collect(n, &mut sets, pairs)
}

/// `images` (N, C, H, W) as (N, C·H·W) float rows minus each row's mean, so
/// that their cosine is the Pearson correlation of the pixels.
fn centred_pixels(images: &Images) -> Tensor {
    let rows = Tensor::from_slice(images.as_bytes())
        .view([images.len() as i64, -1])
        .to_kind(Kind::Float);
    &rows - rows.mean_dim(1, true, Kind::Float)
}

/// `rows` (N, D) scaled to unit length (a zero row stays zero).
fn unit_rows(rows: &Tensor) -> Tensor {
    let rows = rows.to_kind(Kind::Float);
    &rows / rows.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

/// The sets of more than one item, each with its pairs.
fn collect(n: usize, sets: &mut DisjointSets, pairs: Vec<Pair>) -> Vec<Group> {
    let mut by_root: std::collections::BTreeMap<usize, Group> = std::collections::BTreeMap::new();
    for item in 0..n {
        by_root
            .entry(sets.find(item))
            .or_insert_with(|| Group {
                items: Vec::new(),
                pairs: Vec::new(),
            })
            .items
            .push(item);
    }
    for pair in pairs {
        if let Some(group) = by_root.get_mut(&sets.find(pair.a)) {
            group.pairs.push(pair);
        }
    }
    let mut groups: Vec<Group> = by_root.into_values().filter(|g| g.items.len() > 1).collect();
    for g in &mut groups {
        g.pairs.sort_by(|x, y| y.similarity.total_cmp(&x.similarity));
    }
    groups.sort_by_key(|g| g.items[0]);
    groups
}

/// Union-find over `0..n`, with path halving.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        self.parent[ra.max(rb)] = ra.min(rb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinsim_data::ImageShape;

    /// Four 1x2x2 images: 0 and 1 and 2 alike in pixels, 3 not.
    fn images() -> Images {
        let pixels = vec![0, 10, 200, 250, 0, 12, 190, 255, 5, 20, 180, 240, 250, 0, 0, 250];
        Images::new(
            pixels,
            ImageShape {
                channels: 1,
                height: 2,
                width: 2,
            },
        )
        .unwrap()
    }

    #[test]
    fn chains_of_close_pairs_form_one_group_and_far_items_none() {
        // 0 ~ 1 ~ 2 along a slow turn; 3 points elsewhere.
        let rows = Tensor::from_slice(&[1.0f32, 0.0, 0.99, 0.14, 0.96, 0.28, 0.0, 1.0]).view([4, 2]);
        let at = |similarity, pixel_correlation| {
            groups(
                &rows,
                &images(),
                Thresholds {
                    similarity,
                    pixel_correlation,
                },
            )
        };
        let found = at(0.985, 0.9);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].items, vec![0, 1, 2]);
        assert!(found[0]
            .pairs
            .iter()
            .all(|p| p.similarity >= 0.985 && p.pixel_correlation >= 0.9));
        assert!(at(0.9999, 0.9).is_empty());
        // Embeddings alike but pixels not: no group.
        let same = Tensor::ones([4, 2], (Kind::Float, tch::Device::Cpu));
        let found = groups(&same, &images(), Thresholds::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].items, vec![0, 1, 2], "image 3's pixels differ");
    }
}
