//! Evaluation metrics against the oracle (`../shared/oracle/fixtures/metrics.json`,
//! or `$TWINSIM_SHARED_ORACLE/metrics.json`): retrieval as
//! pytorch-metric-learning's AccuracyCalculator computes it, pair
//! verification as scikit-learn and numpy do; then properties that any
//! correct implementation has (chunking, ties, reproducibility, NMI by hand).

use crate::common;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tch::{Kind, Tensor};
use twinsim_learn::metrics::clustering::{self, KMeans};
use twinsim_learn::metrics::verification::{self, Verification};
use twinsim_learn::metrics::{nearest, Calculator, Metric, Protocol, Retrieval};
use twinsim_learn::model::Distance;

/// The oracle's values are float64 computations; ours too.
const TOL: f64 = 1e-9;

fn case(name: &str) -> &'static Value {
    common::case("metrics.json", name)
}

/// A JSON array of rows → (rows, cols) float64, rounded through float32 first:
/// PML's AccuracyCalculator casts embeddings to float32 before its search,
/// and near-ties must order as they did there.
fn embeddings(v: &Value) -> Tensor {
    let rows: Vec<Tensor> = v
        .as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| Tensor::from_slice(&floats(r)))
        .collect();
    Tensor::stack(&rows, 0).to_kind(Kind::Float).to_kind(Kind::Double)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn labels(v: &Value) -> Tensor {
    let xs: Vec<i64> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_i64().expect("an integer"))
        .collect();
    Tensor::from_slice(&xs)
}

fn close(name: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{name}: got {got}, want {want} (|Δ| = {:e})",
        (got - want).abs()
    );
}

/// The five PML metrics of a result, by PML's names.
fn pml_values(r: &Retrieval) -> BTreeMap<&'static str, f64> {
    [
        ("precision_at_1", r.precision_at_1),
        ("r_precision", r.r_precision),
        ("mean_average_precision_at_r", r.mean_average_precision_at_r),
        ("mean_average_precision", r.mean_average_precision),
        ("mean_reciprocal_rank", r.mean_reciprocal_rank),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.expect("all five asked for")))
    .collect()
}

fn assert_matches_oracle(r: &Retrieval, expected: &Value) {
    let expected = expected.as_object().expect("expected values");
    let got = pml_values(r);
    assert_eq!(
        got.len(),
        expected.len(),
        "the oracle's metrics are exactly PML's five"
    );
    for (name, want) in expected {
        close(name, got[name.as_str()], want.as_f64().unwrap(), TOL);
    }
}

#[test]
fn queries_against_a_reference_set_reproduce_pml() {
    let c = case("queries_vs_reference");
    let gallery = (embeddings(&c["reference"]), labels(&c["reference_labels"]));
    let r = Calculator::new()
        .compute(
            &embeddings(&c["query"]),
            &labels(&c["query_labels"]),
            Some((&gallery.0, &gallery.1)),
            Distance::Euclidean,
        )
        .unwrap();
    assert_eq!(r.protocol, Protocol::QueryVsGallery);
    assert_matches_oracle(&r, &c["expected"]);
}

#[test]
fn leave_one_out_reproduces_pml() {
    let c = case("leave_one_out");
    let r = Calculator::new()
        .compute(
            &embeddings(&c["query"]),
            &labels(&c["query_labels"]),
            None,
            Distance::Euclidean,
        )
        .unwrap();
    assert_eq!(r.protocol, Protocol::LeaveOneOut);
    assert_eq!(r.queries, 1000);
    assert_matches_oracle(&r, &c["expected"]);
}

#[test]
fn pair_verification_reproduces_scikit_learn_and_numpy() {
    let c = case("pair_verification");
    let scores = floats(&c["scores"]);
    let same: Vec<bool> = c["same"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_bool().unwrap())
        .collect();
    let e = &c["expected"];
    let v = Verification::compute(&scores, &same).unwrap();
    close("roc_auc", v.roc_auc, e["roc_auc"].as_f64().unwrap(), TOL);
    close("eer", v.eer, e["eer_approx"].as_f64().unwrap(), TOL);
    let tar = e["tar_at_far_interpolated"].as_object().unwrap();
    assert_eq!(
        v.tar_at_far.keys().collect::<Vec<_>>(),
        tar.keys().collect::<Vec<_>>()
    );
    for (far, want) in tar {
        close(
            &format!("tar@far={far}"),
            v.tar_at_far[far],
            want.as_f64().unwrap(),
            TOL,
        );
    }
    // The best threshold really gives the best accuracy, and no threshold does better.
    close(
        "best accuracy",
        verification::accuracy_at(&scores, &same, v.best_threshold),
        v.best_accuracy,
        0.0,
    );
    for &t in &scores {
        assert!(verification::accuracy_at(&scores, &same, t) <= v.best_accuracy);
    }
    // The FAR threshold keeps its promise, and is the most accepting that does.
    let t = verification::threshold_at_far(&scores, &same, 0.01);
    assert!(verification::rates_at(&scores, &same, t).false_accept_rate <= 0.01);
    let lower = scores
        .iter()
        .copied()
        .filter(|&s| s < t)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(verification::rates_at(&scores, &same, lower).false_accept_rate > 0.01);
}

#[test]
fn the_roc_curve_drops_collinear_points_as_scikit_learn_does() {
    // scikit-learn's own roc_curve example.
    let curve = verification::roc_curve(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
    assert_eq!(curve.fpr, [0.0, 0.0, 0.5, 0.5, 1.0]);
    assert_eq!(curve.tpr, [0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!(curve.thresholds, [f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);
    // Ties between a same and a different pair count half: AUC = (1 + 0.5 + 1 + 1) / 4.
    let auc = verification::roc_auc(&[0.9, 0.5, 0.5, 0.1], &[true, true, false, false]).unwrap();
    close("auc with a tie", auc, 0.875, 1e-15);
    assert!(
        verification::roc_curve(&[0.1, 0.2], &[true, true]).is_err(),
        "one kind of pair only"
    );
}

/// Scores of `Distance::Euclidean` on integer coordinates are exact, so many
/// distances tie; queries and gallery labels from 5 classes.
fn tied_data(n: i64, seed: u64) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xs: Vec<f64> = (0..n * 3).map(|_| f64::from(rng.random_range(0..4))).collect();
    let ys: Vec<i64> = (0..n).map(|_| rng.random_range(0..5)).collect();
    (Tensor::from_slice(&xs).view([n, 3]), Tensor::from_slice(&ys))
}

/// PML's metrics written out the slow way: a full stable sort per query by
/// (distance, gallery index), then loops.
fn brute_force(q: &Tensor, ql: &Tensor, g: &Tensor, gl: &Tensor, loo: bool, ks: &[i64]) -> Retrieval {
    let (q, g): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (q.try_into().unwrap(), g.try_into().unwrap());
    let (ql, gl): (Vec<i64>, Vec<i64>) = (ql.try_into().unwrap(), gl.try_into().unwrap());
    let r_of = |l: i64| gl.iter().filter(|&&x| x == l).count() as i64 - i64::from(loo);
    let k = ql.iter().map(|&l| r_of(l)).max().unwrap();
    let (mut sums, mut p_at, mut r_at, mut n) = ([0.0; 5], vec![0.0; ks.len()], vec![0.0; ks.len()], 0);
    for (i, qi) in q.iter().enumerate() {
        let r = r_of(ql[i]);
        if r <= 0 {
            continue;
        }
        n += 1;
        let d = |j: usize| g[j].iter().zip(qi).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
        let mut order: Vec<usize> = (0..g.len()).filter(|&j| !(loo && j == i)).collect();
        order.sort_by(|&a, &b| d(a).total_cmp(&d(b)));
        let hit: Vec<bool> = order.iter().map(|&j| gl[j] == ql[i]).collect();
        let (mut found, mut ap_r, mut ap, mut rr) = (0.0, 0.0, 0.0, 0.0);
        for (pos, &h) in hit.iter().take(k as usize).enumerate() {
            if h {
                found += 1.0;
                let precision = found / (pos + 1) as f64;
                ap += precision;
                if (pos as i64) < r {
                    ap_r += precision;
                }
                if rr == 0.0 {
                    rr = 1.0 / (pos + 1) as f64;
                }
            }
        }
        let in_r = hit.iter().take(r as usize).filter(|&&h| h).count() as f64;
        let r = r as f64;
        for (s, v) in sums
            .iter_mut()
            .zip([f64::from(u8::from(hit[0])), in_r / r, ap_r / r, ap / r, rr])
        {
            *s += v;
        }
        for (j, &kk) in ks.iter().enumerate() {
            let top = &hit[..(kk as usize).min(hit.len())];
            p_at[j] += top.iter().filter(|&&h| h).count() as f64 / kk as f64;
            r_at[j] += f64::from(u8::from(top.contains(&true)));
        }
    }
    let mean = |s: f64| s / f64::from(n);
    let by_k = |v: &[f64]| ks.iter().zip(v).map(|(k, &s)| (k.to_string(), mean(s))).collect();
    Retrieval {
        protocol: if loo {
            Protocol::LeaveOneOut
        } else {
            Protocol::QueryVsGallery
        },
        k,
        queries: i64::from(n),
        precision_at_1: Some(mean(sums[0])),
        r_precision: Some(mean(sums[1])),
        mean_average_precision_at_r: Some(mean(sums[2])),
        mean_average_precision: Some(mean(sums[3])),
        mean_reciprocal_rank: Some(mean(sums[4])),
        precision_at_k: by_k(&p_at),
        recall_at_k: by_k(&r_at),
        nmi: None,
    }
}

fn assert_same_retrieval(got: &Retrieval, want: &Retrieval) {
    assert_eq!(
        (got.protocol, got.k, got.queries),
        (want.protocol, want.k, want.queries)
    );
    for (name, w) in pml_values(want) {
        close(name, pml_values(got)[name], w, 1e-12);
    }
    for (got, want) in [
        (&got.precision_at_k, &want.precision_at_k),
        (&got.recall_at_k, &want.recall_at_k),
    ] {
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (k, w) in want {
            close(&format!("@{k}"), got[k], *w, 1e-12);
        }
    }
}

#[test]
fn blocks_of_queries_and_ties_give_the_brute_force_values() {
    let (q, ql) = tied_data(300, 1);
    let (g, gl) = tied_data(120, 2);
    // Small ks rank only PML's k deep, so tied runs straddle the cut; k = 500
    // ranks the whole gallery.
    for ks in [&[1, 3, 10][..], &[1, 3, 10, 500]] {
        for loo in [false, true] {
            let (g, gl) = if loo { (&q, &ql) } else { (&g, &gl) };
            let want = brute_force(&q, &ql, g, gl, loo, ks);
            for chunk in [7, 256, 10_000] {
                let calc = Calculator::new().precision_at(ks).recall_at(ks).chunk_size(chunk);
                let got = calc
                    .compute(&q, &ql, (!loo).then_some((g, gl)), Distance::Euclidean)
                    .unwrap();
                assert_same_retrieval(&got, &want);
            }
        }
    }
}

#[test]
fn tied_neighbours_come_in_gallery_order() {
    let g = Tensor::from_slice(&[5.0, 1.0, 1.0, 0.0, 1.0, 3.0]).view([6, 1]);
    let q = Tensor::from_slice(&[1.0, 0.0]).view([2, 1]);
    let nn = Vec::<Vec<i64>>::try_from(nearest(&q, &g, 5, Distance::Euclidean, false)).unwrap();
    assert_eq!(nn, [vec![1, 2, 4, 3, 5], vec![3, 1, 2, 4, 5]]);
    // Leave-one-out: the item itself never counts, even among its exact duplicates.
    let nn = Vec::<Vec<i64>>::try_from(nearest(&g, &g, 2, Distance::Euclidean, true)).unwrap();
    assert_eq!(nn[1], [2, 4]);
    assert_eq!(nn[4], [1, 2]);
    // A long run of equal distances cut short by k: the lowest indices make the cut.
    let flat = Tensor::zeros([100, 1], (Kind::Double, tch::Device::Cpu));
    let nn = Vec::<Vec<i64>>::try_from(nearest(&flat, &flat, 3, Distance::Euclidean, true)).unwrap();
    assert_eq!(nn[0], [1, 2, 3]);
    assert_eq!(nn[1], [0, 2, 3]);
    assert_eq!(nn[99], [0, 1, 2]);
}

#[test]
fn cosine_ranks_by_angle() {
    let at = |deg: f64| [deg.to_radians().cos(), deg.to_radians().sin()];
    let gallery: Vec<f64> = [170.0, 10.0, 90.0, 45.0, -30.0]
        .iter()
        .flat_map(|&d| at(d))
        .collect();
    let g = Tensor::from_slice(&gallery).view([5, 2]);
    let q = Tensor::from_slice(&at(0.0)).view([1, 2]);
    let nn = Vec::<Vec<i64>>::try_from(nearest(&q, &g, 5, Distance::Cosine, false)).unwrap();
    assert_eq!(nn[0], [1, 4, 3, 2, 0]);
}

#[test]
fn recall_at_k_grows_with_k_and_starts_at_precision_at_1() {
    let (q, ql) = tied_data(200, 3);
    let ks = [1, 2, 4, 8, 16];
    let r = Calculator::new()
        .recall_at(&ks)
        .compute(&q, &ql, None, Distance::Euclidean)
        .unwrap();
    let recalls: Vec<f64> = ks.iter().map(|k| r.recall_at_k[&k.to_string()]).collect();
    assert!(recalls.windows(2).all(|w| w[0] <= w[1]), "{recalls:?}");
    close("R@1 = P@1", recalls[0], r.precision_at_1.unwrap(), 0.0);
}

#[test]
fn precision_at_1_alone_needs_one_neighbour_and_agrees() {
    let (q, ql) = tied_data(150, 4);
    let full = Calculator::new()
        .compute(&q, &ql, None, Distance::Euclidean)
        .unwrap();
    let only = Calculator::new()
        .metrics(&[Metric::PrecisionAt1])
        .compute(&q, &ql, None, Distance::Euclidean)
        .unwrap();
    assert_eq!(only.precision_at_1, full.precision_at_1);
    assert!(only.r_precision.is_none() && only.mean_reciprocal_rank.is_none());
    let recall = Calculator::new()
        .metrics(&[])
        .recall_at(&[1])
        .compute(&q, &ql, None, Distance::Euclidean)
        .unwrap();
    assert_eq!(
        (recall.precision_at_1, recall.recall_at_k["1"]),
        (None, full.precision_at_1.unwrap())
    );
    let legacy = twinsim_learn::metrics::precision_at_1(&q, &ql, &q, &ql, Distance::Euclidean, true);
    assert_eq!(Some(legacy), full.precision_at_1);
}

#[test]
fn nmi_is_one_for_the_same_grouping_and_matches_a_hand_computation() {
    let a = [0, 0, 1, 1, 2, 2, 2];
    let renamed = [7, 7, 3, 3, -1, -1, -1];
    close("identical", clustering::nmi(&a, &a).unwrap(), 1.0, 1e-12);
    close("renamed", clustering::nmi(&a, &renamed).unwrap(), 1.0, 1e-12);
    // true [0,0,1,1], predicted [0,0,0,1]; N = 4. Cells (0,0)=2, (1,0)=1, (1,1)=1;
    // rows 2,2; columns 3,1.
    // MI = ½·ln(½/(½·¾)) + ¼·ln(¼/(½·¾)) + ¼·ln(¼/(½·¼)) = ½ln(4/3) + ¼ln(2/3) + ¼ln2
    //    = 1.5·ln2 − 0.75·ln3;  H(true) = ln2;  H(pred) = −(¾ln¾ + ¼ln¼) = 2·ln2 − 0.75·ln3;
    // NMI = MI / ((H(true) + H(pred))/2) = (3·ln2 − 1.5·ln3) / (3·ln2 − 0.75·ln3) ≈ 0.3437.
    let (l2, l3) = (2f64.ln(), 3f64.ln());
    let want = (3.0 * l2 - 1.5 * l3) / (3.0 * l2 - 0.75 * l3);
    close(
        "hand example",
        clustering::nmi(&[0, 0, 1, 1], &[0, 0, 0, 1]).unwrap(),
        want,
        1e-12,
    );
    // scikit-learn's limit cases: one group on both sides is a perfect match.
    assert_eq!(clustering::nmi(&[4, 4, 4], &[1, 1, 1]).unwrap(), 1.0);
    assert_eq!(clustering::nmi(&[0, 0, 1, 1], &[5, 5, 5, 5]).unwrap(), 0.0);
    assert!(clustering::nmi(&[0, 1], &[0]).is_err());
}

#[test]
fn kmeans_separates_well_separated_blobs() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let centres = [[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0], [10.0, 40.0]];
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let c = (i * 7) % centres.len();
        xs.extend(centres[c].iter().map(|m| m + rng.random_range(-1.0..1.0)));
        ys.push(c as i64);
    }
    let x = Tensor::from_slice(&xs).view([200, 2]).to_kind(Kind::Float);
    close("NMI", clustering::kmeans_nmi(&x, &ys, 0).unwrap(), 1.0, 1e-12);
    let a = KMeans::new(5).fit(&x).unwrap();
    let b = KMeans::new(5).fit(&x).unwrap();
    assert!(
        a.assignments.equal(&b.assignments),
        "the same seed gives the same clusters"
    );
    assert_eq!(a.centres.size(), [5, 2]);
    assert!(
        a.inertia < 200.0 * 2.0,
        "every point within its blob: inertia {}",
        a.inertia
    );
    let r = Calculator::new()
        .nmi(true)
        .compute(&x, &Tensor::from_slice(&ys), None, Distance::Euclidean)
        .unwrap();
    close("calculator NMI", r.nmi.unwrap(), 1.0, 1e-12);
}

#[test]
fn balanced_pairs_are_half_same_distinct_and_reproducible() {
    let labels: Vec<i64> = (0..100).map(|i| [0, 1, 1, 2, 3, 3, 3, 4][i % 8]).collect();
    let pairs = verification::balanced_pairs(&labels, 1000, 9);
    assert_eq!(pairs.len(), 1000);
    assert_eq!(pairs.iter().filter(|p| p.2).count(), 500);
    for &(i, j, same) in &pairs {
        assert_ne!(i, j);
        assert_eq!(same, labels[i] == labels[j], "pair ({i}, {j})");
    }
    assert_eq!(verification::balanced_pairs(&labels, 1000, 9), pairs);
    assert_ne!(verification::balanced_pairs(&labels, 1000, 10), pairs);
    // Only singletons: no same pair exists, so every pair is different.
    let lone = verification::balanced_pairs(&[0, 1, 2, 3], 10, 0);
    assert!(lone.iter().all(|p| !p.2) && lone.len() == 10);
    assert!(verification::balanced_pairs(&[3], 10, 0).is_empty());
}

#[test]
fn results_serialise_with_pml_names() {
    let (q, ql) = tied_data(50, 6);
    let r = Calculator::new()
        .precision_at(&[5])
        .compute(&q, &ql, None, Distance::Euclidean)
        .unwrap();
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "precision_at_1",
        "r_precision",
        "mean_average_precision_at_r",
        "mean_average_precision",
        "mean_reciprocal_rank",
    ] {
        assert!(json[key].is_f64(), "{key} in {json}");
    }
    assert!(json["precision_at_k"]["5"].is_f64());
    assert_eq!(json["protocol"], "leave-one-out");
    assert_eq!(serde_json::from_value::<Retrieval>(json).unwrap(), r);
    let v = Verification::compute(&[0.9, 0.2, 0.6, 0.4], &[true, false, true, false]).unwrap();
    assert_eq!(
        serde_json::from_str::<Verification>(&serde_json::to_string(&v).unwrap()).unwrap(),
        v
    );
}
