//! FID and KID against the oracle (`fid.json`: pytorch-fid's formula with
//! scipy's `sqrtm`, and the unbiased KID), and the statistics they refuse.

use crate::common;

use serde_json::Value;
use tch::{Kind, Tensor};
use twinsim_learn::fid::{frechet, kid, Statistics};

const CASES: [&str; 2] = ["features_d16", "features_d64"];

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let (n, d) = (rows.len() as i64, rows[0].len() as i64);
    Tensor::from_slice(&rows.concat()).view([n, d])
}

fn vector(v: &Value) -> Tensor {
    let values: Vec<f64> = serde_json::from_value(v.clone()).unwrap();
    Tensor::from_slice(&values)
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(1e-12),
        "{what}: {got} against {want}"
    );
}

#[test]
fn statistics_match_numpys_mean_and_covariance() {
    for name in CASES {
        let c = common::case("fid.json", name);
        let s = Statistics::of(&matrix(&c["features_a"])).unwrap();
        let mu_err = (&s.mu - vector(&c["mu_a"])).abs().max().double_value(&[]);
        let sigma_err = (&s.sigma - matrix(&c["sigma_a"])).abs().max().double_value(&[]);
        assert!(
            mu_err < 1e-12 && sigma_err < 1e-10,
            "{name}: {mu_err} {sigma_err}"
        );
    }
}

#[test]
fn fid_matches_pytorch_fid_to_1e_6_and_is_0_for_a_set_with_itself() {
    for name in CASES {
        let c = common::case("fid.json", name);
        let a = Statistics::of(&matrix(&c["features_a"])).unwrap();
        let b = Statistics::of(&matrix(&c["features_b"])).unwrap();
        let fid = frechet::distance(&a, &b).unwrap();
        close(fid, c["expected"]["fid"].as_f64().unwrap(), 1e-6, name);
        let itself = frechet::distance(&a, &a).unwrap();
        assert!(itself.abs() < 1e-6, "{name}: FID of a set with itself {itself}");
        // From the fixture's own statistics too, as a saved file gives them.
        let saved = Statistics::new(vector(&c["mu_a"]), matrix(&c["sigma_a"]), 0).unwrap();
        close(
            frechet::distance(&saved, &b).unwrap(),
            c["expected"]["fid"].as_f64().unwrap(),
            1e-6,
            name,
        );
    }
}

#[test]
fn kid_over_the_full_sets_matches_the_unbiased_estimate() {
    for name in CASES {
        let c = common::case("fid.json", name);
        let (a, b) = (matrix(&c["features_a"]), matrix(&c["features_b"]));
        let want = c["expected"]["kid_unbiased_full_sets"].as_f64().unwrap();
        close(kid::mmd2(&a, &b), want, 1e-9, name);
        // One "subset" as large as the smaller set, drawn without replacement
        // from a set that size, is that set: only b is subsampled.
        let k = kid::kid(&a, &a, 3, 10_000, 0);
        assert!(
            k.mean.abs() < 0.05 * want,
            "{name}: KID of a set with itself {k:?}"
        );
        assert_eq!(k.subset_size, a.size()[0] as usize);
    }
}

#[test]
fn fid_grows_as_one_set_drifts_away() {
    tch::manual_seed(0);
    let a = Tensor::randn([400, 8], (Kind::Double, tch::Device::Cpu));
    let b = Tensor::randn([400, 8], (Kind::Double, tch::Device::Cpu));
    let base = Statistics::of(&a).unwrap();
    let fids: Vec<f64> = [0.0, 0.5, 1.0, 2.0]
        .iter()
        .map(|shift| frechet::distance(&base, &Statistics::of(&(&b + *shift)).unwrap()).unwrap())
        .collect();
    assert!(fids.windows(2).all(|w| w[0] < w[1]), "{fids:?}");
}

#[test]
fn unusable_statistics_are_refused_with_the_reason() {
    let mu = Tensor::zeros([3], (Kind::Double, tch::Device::Cpu));
    let eye = Tensor::eye(3, (Kind::Double, tch::Device::Cpu));
    let err = |r: Result<Statistics, twinsim_learn::LearnError>| r.unwrap_err().to_string();
    assert!(err(Statistics::new(
        mu.copy(),
        Tensor::ones([3, 2], (Kind::Double, tch::Device::Cpu)),
        0
    ))
    .contains("do not match"));
    let skew = eye.copy();
    let _ = skew.get(0).get(1).fill_(0.5);
    assert!(err(Statistics::new(mu.copy(), skew, 0)).contains("not symmetric"));
    let nan = Tensor::from_slice(&[f64::NAN, 0.0, 0.0]);
    assert!(err(Statistics::new(nan, eye.copy(), 0)).contains("NaN"));
    assert!(err(Statistics::of(&Tensor::ones(
        [1, 3],
        (Kind::Double, tch::Device::Cpu)
    )))
    .contains("no covariance"));
    let four = Statistics::new(
        Tensor::zeros([4], (Kind::Double, tch::Device::Cpu)),
        Tensor::eye(4, (Kind::Double, tch::Device::Cpu)),
        0,
    )
    .unwrap();
    let three = Statistics::new(mu, eye, 0).unwrap();
    assert!(frechet::distance(&three, &four)
        .unwrap_err()
        .to_string()
        .contains("3-d and 4-d"));
}

#[test]
fn a_singular_covariance_gets_the_offset_instead_of_failing() {
    // All points on a line: rank-1 covariance in 3-d.
    let t = Tensor::linspace(0.0, 1.0, 50, (Kind::Double, tch::Device::Cpu)).unsqueeze(1);
    let line = Tensor::cat(&[&t, &(&t * 2.0), &(&t * 3.0)], 1);
    let a = Statistics::of(&line).unwrap();
    let fid = frechet::distance(&a, &a).unwrap();
    assert!(fid.abs() < 1e-3, "{fid}");
}
