//! The kernel inception distance (Bińkowski et al. 2018): the unbiased
//! estimate of the squared maximum mean discrepancy between two sets of
//! features under the polynomial kernel k(x, y) = (x·y / d + 1)³, averaged
//! over random subsets of both sets, with its standard deviation.

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// KID over subsets: the mean and standard deviation of the estimates.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Kid {
    pub mean: f64,
    pub std: f64,
    /// Subsets averaged.
    pub subsets: usize,
    /// Images drawn from each set per subset.
    pub subset_size: usize,
}

/// Subsets KID averages over by default (as torch-fidelity and clean-fid).
pub const SUBSETS: usize = 100;
/// Images per subset by default.
pub const SUBSET_SIZE: usize = 1000;

/// The unbiased squared MMD between `x` (N, D) and `y` (M, D), N, M ≥ 2,
/// under the cubic polynomial kernel, in float64.
pub fn mmd2(x: &Tensor, y: &Tensor) -> f64 {
    let (x, y) = (double(x), double(y));
    let d = x.size()[1] as f64;
    let k = |a: &Tensor, b: &Tensor| (a.matmul(&b.tr()) / d + 1.0).pow_tensor_scalar(3);
    let (n, m) = (x.size()[0] as f64, y.size()[0] as f64);
    let off_diagonal = |kk: Tensor| {
        kk.sum(Kind::Double).double_value(&[]) - kk.diagonal(0, 0, 1).sum(Kind::Double).double_value(&[])
    };
    let kxx = off_diagonal(k(&x, &x)) / (n * (n - 1.0));
    let kyy = off_diagonal(k(&y, &y)) / (m * (m - 1.0));
    let kxy = k(&x, &y).sum(Kind::Double).double_value(&[]) / (n * m);
    kxx + kyy - 2.0 * kxy
}

/// KID between `x` and `y`: [`mmd2`] over `subsets` random pairs of subsets
/// of `subset_size` images from each (fewer when a set is smaller), drawn
/// with `seed`.
pub fn kid(x: &Tensor, y: &Tensor, subsets: usize, subset_size: usize, seed: u64) -> Kid {
    let (n, m) = (x.size()[0] as usize, y.size()[0] as usize);
    let size = subset_size.min(n).min(m);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |t: &Tensor, total: usize| {
        let idx: Vec<i64> = sample(&mut rng, total, size)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        t.index_select(0, &Tensor::from_slice(&idx))
    };
    let values: Vec<f64> = (0..subsets.max(1))
        .map(|_| mmd2(&pick(x, n), &pick(y, m)))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    Kid {
        mean,
        std: var.sqrt(),
        subsets: values.len(),
        subset_size: size,
    }
}

fn double(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Double).to_device(Device::Cpu)
}
