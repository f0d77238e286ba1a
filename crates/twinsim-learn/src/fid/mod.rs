//! Distances between two sets of images, from their feature vectors: the
//! Fréchet distance between Gaussians fitted to each set ([`frechet`], FID
//! when the features are Inception's) and the kernel distance ([`kid`]).
//! Everything is float64, on the CPU: the difference of two large traces is
//! a small number, which float32 would lose. The features come from a
//! trained twinsim model or from [`inception`], the network FID is defined on.

pub mod frechet;
pub mod inception;
pub mod kid;

use std::path::Path;

use tch::{Device, Kind, Tensor};
use twinsim_data::npy::Array;
use twinsim_data::npz;

use crate::{LearnError, Result};

/// A set's feature statistics: mean `mu` (D,) and covariance `sigma` (D, D)
/// with the N − 1 divisor (numpy's `np.cov(rowvar=False)`, as pytorch-fid
/// computes them), float64 on the CPU.
#[derive(Debug)]
pub struct Statistics {
    pub mu: Tensor,
    pub sigma: Tensor,
    /// Images the statistics were computed from (0 when read from a file
    /// that does not say).
    pub count: usize,
}

impl Statistics {
    /// The statistics of `features` (N, D); at least 2 rows.
    pub fn of(features: &Tensor) -> Result<Statistics> {
        let f = features.to_kind(Kind::Double).to_device(Device::Cpu);
        let n = f.size()[0];
        if n < 2 {
            return Err(LearnError::config(
                format!("a set of {n} images has no covariance"),
                "give each set at least 2 images (FID is only meaningful with thousands)",
            ));
        }
        let dim = f.size()[1];
        if n < dim {
            tracing::warn!(
                "{n} images for {dim}-d features: the covariance is singular and FID is biased; use at least {dim} images"
            );
        }
        let mu = f.mean_dim(0, false, Kind::Double);
        let centred = &f - &mu;
        let sigma = centred.tr().matmul(&centred) / (n - 1) as f64;
        Statistics::new(mu, sigma, n as usize)
    }

    /// Statistics from their parts, checked: `mu` (D,) and `sigma` (D, D),
    /// finite, `sigma` symmetric.
    pub fn new(mu: Tensor, sigma: Tensor, count: usize) -> Result<Statistics> {
        let (mu, sigma) = (mu.to_kind(Kind::Double), sigma.to_kind(Kind::Double));
        let d = mu.size();
        let bad = |reason: String| {
            Err(LearnError::config(
                reason,
                "statistics are a mean vector `mu` (D,) and a covariance matrix `sigma` (D, D), as pytorch-fid saves them",
            ))
        };
        if d == [0] {
            return bad("the statistics describe 0 features".into());
        }
        if d.len() != 1 || sigma.size() != [d[0], d[0]] {
            return bad(format!(
                "mu of shape {d:?} and sigma of shape {:?} do not match",
                sigma.size()
            ));
        }
        if !finite(&mu) || !finite(&sigma) {
            return bad("the statistics hold NaN or infinite values".into());
        }
        let asymmetry = (&sigma - sigma.tr()).abs().max().double_value(&[]);
        let scale = sigma.abs().max().double_value(&[]).max(1e-300);
        if asymmetry > 1e-6 * scale {
            return bad(format!(
                "sigma is not symmetric (largest difference {asymmetry:.3e})"
            ));
        }
        Ok(Statistics { mu, sigma, count })
    }

    /// The feature dimension D.
    pub fn dim(&self) -> i64 {
        self.mu.size()[0]
    }

    /// Writes `mu` and `sigma` (float64) to `path` as pytorch-fid's `.npz`
    /// (`np.savez`), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let d = self.dim() as usize;
        let values = |t: &Tensor| Vec::<f64>::try_from(&t.reshape([-1])).expect("CPU float64 values");
        let (mu, sigma) = (values(&self.mu), values(&self.sigma));
        Ok(npz::write(
            path,
            &[("mu", &[d], &mu), ("sigma", &[d, d], &sigma)],
        )?)
    }

    /// Reads `mu` and `sigma` from a `.npz` file (pytorch-fid's layout,
    /// float64 or float32), checked as [`Statistics::new`] does.
    pub fn load(path: &Path) -> Result<Statistics> {
        let mu = npz::read_f64(path, "mu")?;
        let sigma = npz::read_f64(path, "sigma")?;
        let tensor = |a: &Array<f64>| {
            let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
            Tensor::from_slice(&a.values).view(shape.as_slice())
        };
        let in_file = |e: LearnError| {
            LearnError::config(format!("{}: {e}", path.display()), e.hint().unwrap_or_default())
        };
        let stats = Statistics::new(tensor(&mu), tensor(&sigma), 0).map_err(in_file)?;
        stats.check_covariance().map_err(in_file)?;
        Ok(stats)
    }

    /// Refuses a `sigma` that no set of features has: one with a clearly
    /// negative eigenvalue (beyond rounding, 1e-6 of the largest), which
    /// would make the distance meaningless (a negative-definite sigma gave
    /// FID 0). Statistics computed here are covariances by construction, so
    /// only files are checked.
    fn check_covariance(&self) -> Result<()> {
        let eigenvalues = self.sigma.linalg_eigvalsh("L");
        let least = eigenvalues.min().double_value(&[]);
        let scale = eigenvalues.abs().max().double_value(&[]);
        if least < -1e-6 * scale {
            return Err(LearnError::config(
                format!("sigma is not a covariance matrix: it has the negative eigenvalue {least:.4e}"),
                "pass statistics saved by twinsim fid --save-stats or pytorch-fid (sigma = np.cov of the features)",
            ));
        }
        Ok(())
    }
}

/// Whether every value of `t` is finite.
fn finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) != 0
}
