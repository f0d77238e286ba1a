//! `.npz` statistics for `fid A.npz B.npz`: scalars, mismatched and absurd
//! shapes, covariances that are not symmetric or not positive
//! semi-definite, NaN and infinity, damaged archives and special files.
//! Two good files must give the right distance; no bad one may give a
//! number.

use std::path::{Path, PathBuf};

use super::files;
use super::fixture::Fixture;
use super::harness::{Case, Outcome};

/// The d x d identity, scaled by `s`, row by row.
fn scaled_identity(d: usize, s: f64) -> Vec<f64> {
    (0..d * d)
        .map(|i| if i % (d + 1) == 0 { s } else { 0.0 })
        .collect()
}

/// Writes statistics `(mu, sigma)` of the given shapes to `dir/name`.
fn stats(dir: &Path, name: &str, mu: (&[usize], &[f64]), sigma: (&[usize], &[f64])) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(dir).unwrap();
    twinsim_data::npz::write(&path, &[("mu", mu.0, mu.1), ("sigma", sigma.0, sigma.1)]).unwrap();
    path
}

/// `fid --json` must report `expected` (to 1e-3 relative).
fn fid_is(expected: f64) -> impl Fn(&Outcome) -> Result<(), String> + Send + Sync {
    move |o: &Outcome| {
        let v = o.json()?;
        let fid = v["fid"].as_f64().ok_or(format!("no fid in {v}"))?;
        match (fid - expected).abs() <= 1e-3 * expected.max(1.0) {
            true => Ok(()),
            false => Err(format!("fid {fid}, expected {expected}")),
        }
    }
}

/// The `.npz` cases.
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let dir = fx.ro.join("npz");
    let d = fx.dim;
    let zeros = vec![0.0; d];
    let eye = scaled_identity(d, 1.0);
    let good = stats(&dir, "good.npz", (&[d], &zeros), (&[d, d], &eye));
    let shifted = stats(&dir, "shifted.npz", (&[d], &vec![1.0; d]), (&[d, d], &eye));
    let mut skew = eye.clone();
    skew[1] = 0.5;
    let mut nan_mu = zeros.clone();
    nan_mu[0] = f64::NAN;
    let mut inf_sigma = eye.clone();
    inf_sigma[0] = f64::INFINITY;
    let eye_wide = scaled_identity(d + 1, 1.0);
    let mu_npy = twinsim_data::npy::to_bytes(&[d], &zeros);
    let sigma_npy = twinsim_data::npy::to_bytes(&[d, d], &eye);
    let huge = files::npy_raw(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }",
        &[0; 8],
    );
    let archive =
        |name: &str, members: &[(&str, &[u8])]| files::write(&dir.join(name), &files::zip_stored(members));
    let good_bytes = std::fs::read(&good).unwrap();

    let hostile: Vec<(&str, PathBuf, bool)> = vec![
        (
            "scalars",
            stats(&dir, "scalars.npz", (&[], &[0.0]), (&[], &[1.0])),
            false,
        ),
        (
            "dims-mismatch",
            stats(
                &dir,
                "wider.npz",
                (&[d + 1], &vec![0.0; d + 1]),
                (&[d + 1, d + 1], &eye_wide),
            ),
            false,
        ),
        (
            "sigma-not-square",
            stats(
                &dir,
                "not-square.npz",
                (&[d], &zeros),
                (&[d, d + 1], &vec![0.0; d * (d + 1)]),
            ),
            false,
        ),
        (
            "sigma-not-symmetric",
            stats(&dir, "skew.npz", (&[d], &zeros), (&[d, d], &skew)),
            false,
        ),
        (
            "sigma-negative-definite",
            stats(
                &dir,
                "negative.npz",
                (&[d], &zeros),
                (&[d, d], &scaled_identity(d, -1.0)),
            ),
            false,
        ),
        (
            "mu-nan",
            stats(&dir, "nan.npz", (&[d], &nan_mu), (&[d, d], &eye)),
            false,
        ),
        (
            "sigma-inf",
            stats(&dir, "inf.npz", (&[d], &zeros), (&[d, d], &inf_sigma)),
            false,
        ),
        (
            "shape-100000x100000",
            archive(
                "huge-shape.npz",
                &[("mu.npy", huge.as_slice()), ("sigma.npy", huge.as_slice())],
            ),
            false,
        ),
        (
            "sigma-missing",
            archive("no-sigma.npz", &[("mu.npy", mu_npy.as_slice())]),
            false,
        ),
        (
            "sigma-truncated",
            archive(
                "sigma-truncated.npz",
                &[
                    ("mu.npy", mu_npy.as_slice()),
                    ("sigma.npy", &sigma_npy[..sigma_npy.len() / 2]),
                ],
            ),
            false,
        ),
        (
            "truncated",
            files::write(&dir.join("truncated.npz"), &good_bytes[..good_bytes.len() / 2]),
            false,
        ),
        (
            "noise",
            files::write(&dir.join("noise.npz"), &files::noise(4096, 8)),
            false,
        ),
        ("empty", files::write(&dir.join("empty.npz"), &[]), false),
        ("fifo", files::fifo(&dir.join("fifo.npz")), true),
        (
            "devzero",
            files::symlink(Path::new("/dev/zero"), &dir.join("devzero.npz")),
            false,
        ),
        ("dir", files::dir(&dir.join("dir.npz")), false),
    ];
    let fid = |a: &Path, b: &Path| args!["--json", "fid", a, b, "--model", fx.run];
    let mut cases = vec![
        Case::new("npz/same-statistics", fid(&good, &good)).check(fid_is(0.0)),
        // |mu_a - mu_b|^2 = d, equal covariances: FID d.
        Case::new("npz/shifted-mean", fid(&good, &shifted)).check(fid_is(d as f64)),
        // Two statistics files need no features, as with pytorch-fid.
        Case::new("npz/two-files-no-model", args!["--json", "fid", good, shifted]).check(fid_is(d as f64)),
    ];
    for (name, path, blocking) in hostile {
        let needle = path.file_name().unwrap().to_string_lossy().into_owned();
        // Nothing is downloaded: a hint at "a fresh copy" misleads.
        let case = Case::new(format!("npz/{name}"), fid(&path, &good))
            .error(needle)
            .never_says("download");
        cases.push(if blocking { case.blocking() } else { case });
    }
    cases
}
