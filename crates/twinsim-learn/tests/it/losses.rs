//! Every loss against the oracle: the values and gradients that
//! pytorch-metric-learning computes for the fixture batches
//! (`../shared/oracle/fixtures/losses.json`, or `$TWINSIM_SHARED_ORACLE/losses.json`).
//!
//! Tolerances, as the oracle's README states them. In float64: the loss to
//! |a − b| ≤ 1e-6·|b|, and each gradient to ‖a − b‖₂ ≤ 1e-6·‖b‖₂ (relative on
//! the norm, since elementwise relative errors blow up on entries near 0).
//! In float32: 1e-4 and 1e-3 on the same measures.

use crate::common;

use std::collections::BTreeSet;

use serde_json::Value;
use tch::{nn, Device, Kind, Tensor};
use twinsim_learn::distances::Distance;
use twinsim_learn::losses::{self, LossConfig, Mined, LOSSES};
use twinsim_learn::miners::{Miner, SemiHardMiner};
use twinsim_learn::LearnError;

const EMBEDDING_DIM: i64 = 16;
const NUM_CLASSES: i64 = 5;

/// Relative tolerances on the loss and on the gradients' norms.
#[derive(Clone, Copy)]
struct Tolerance {
    loss: f64,
    grad: f64,
}

const F64: Tolerance = Tolerance {
    loss: 1e-6,
    grad: 1e-6,
};
const F32: Tolerance = Tolerance {
    loss: 1e-4,
    grad: 1e-3,
};

fn case(name: &str) -> &'static Value {
    common::case("losses.json", name)
}

/// A JSON array of arrays of numbers → (rows, cols) float64.
fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Tensor> = v
        .as_array()
        .expect("an array of rows")
        .iter()
        .map(vector)
        .collect();
    Tensor::stack(&rows, 0)
}

/// A JSON array of numbers → (n,) float64.
fn vector(v: &Value) -> Tensor {
    let xs: Vec<f64> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect();
    Tensor::from_slice(&xs)
}

/// A JSON array of integers → (n,) int64.
fn indices(v: &Value) -> Tensor {
    let xs: Vec<i64> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_i64().expect("an integer"))
        .collect();
    Tensor::from_slice(&xs)
}

/// Where a mined case's triplets come from.
#[derive(Clone, Copy, Debug)]
enum Mining {
    /// No miner: the loss sees the whole batch.
    None,
    /// The triplets PML's miner chose, from the fixture.
    Fixture,
    /// The triplets our miner chooses for the same embeddings.
    Ours,
}

/// One loss evaluation: the loss and the gradients, as float64.
struct Outcome {
    loss: f64,
    grad: Tensor,
    grad_w: Option<Tensor>,
    mined: Option<Mined>,
}

/// Computes `cfg`'s loss on `embeddings` (float64) and `labels` in `kind`,
/// with the fixture's class weights when it has them, and backpropagates.
fn evaluate(
    cfg: &LossConfig,
    c: &Value,
    embeddings: &Tensor,
    labels: &Tensor,
    kind: Kind,
    mining: Mining,
) -> Outcome {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let loss = losses::build(cfg, &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap();
    if kind == Kind::Double {
        vs.double();
    }
    let w = c.get("weights_W").map(|weights| {
        let mut w = vs.variables()["W"].shallow_clone();
        tch::no_grad(|| w.copy_(&matrix(weights)));
        w
    });
    assert_eq!(
        w.is_some(),
        loss.needs_class_count(),
        "{}: proxies iff class weights",
        cfg.name
    );
    // A fresh leaf: to_kind returns `embeddings` itself when the kind matches.
    let e = embeddings.to_kind(kind).detach().set_requires_grad(true);
    let mined = match mining {
        Mining::None => None,
        Mining::Fixture => Some(fixture_triplets(c)),
        Mining::Ours => Some(
            cfg.build_miner()
                .unwrap()
                .expect("a miner")
                .mine(&e.detach(), labels),
        ),
    };
    let value = loss.compute(&e, labels, mined.as_ref());
    assert_eq!(
        (value.dim(), value.kind()),
        (0, kind),
        "{}: a 0-dim loss of the embeddings' kind",
        cfg.name
    );
    value.backward();
    Outcome {
        loss: value.double_value(&[]),
        grad: e.grad().to_kind(Kind::Double),
        grad_w: w.map(|w| w.grad().to_kind(Kind::Double)),
        mined,
    }
}

fn fixture_triplets(c: &Value) -> Mined {
    let m = c["mined"]
        .as_array()
        .expect("mined = [anchors, positives, negatives]");
    Mined::Triplets {
        anchors: indices(&m[0]),
        positives: indices(&m[1]),
        negatives: indices(&m[2]),
    }
}

/// ‖a − b‖ / ‖b‖, after checking the shapes agree and b is not zero (which
/// would make the check vacuous).
fn relative_gap(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let norm = b.norm().double_value(&[]);
    assert!(norm > 0.0, "a zero reference gradient checks nothing");
    (a - b).norm().double_value(&[]) / norm
}

/// How far `out` is from the fixture's `loss`, `grad_embeddings` and
/// `grad_W`: relative gaps, the loss's first.
fn gaps(out: &Outcome, c: &Value) -> Vec<(&'static str, f64)> {
    let expected = c["loss"].as_f64().expect("a loss");
    let mut gaps = vec![
        ("loss", (out.loss - expected).abs() / expected.abs()),
        ("grad", relative_gap(&out.grad, &matrix(&c["grad_embeddings"]))),
    ];
    if let Some(gw) = &out.grad_w {
        gaps.push(("grad_W", relative_gap(gw, &matrix(&c["grad_W"]))));
    }
    gaps
}

fn within(gaps: &[(&str, f64)], tol: Tolerance) -> bool {
    gaps.iter()
        .all(|&(name, gap)| gap <= if name == "loss" { tol.loss } else { tol.grad })
}

/// Asserts `out` matches the fixture within `tol`, and logs the gaps.
fn assert_matches(what: &str, out: &Outcome, c: &Value, tol: Tolerance) {
    let gaps = gaps(out, c);
    eprintln!(
        "{what}: loss {} (PML {}), relative gaps {gaps:?}",
        out.loss, c["loss"]
    );
    assert!(
        within(&gaps, tol),
        "{what}: relative gaps {gaps:?} over tolerance"
    );
}

fn embeddings_and_labels(c: &Value) -> (Tensor, Tensor) {
    (matrix(&c["embeddings"]), indices(&c["labels"]))
}

/// Checks a fixture case in float64 and float32, from the whole batch or
/// from the fixture's mined triplets.
fn check_case(name: &str, cfg: &LossConfig) {
    let c = case(name);
    let (e, labels) = embeddings_and_labels(c);
    let mining = if c.get("mined").is_some() {
        Mining::Fixture
    } else {
        Mining::None
    };
    assert_matches(
        &format!("{name} f64"),
        &evaluate(cfg, c, &e, &labels, Kind::Double, mining),
        c,
        F64,
    );
    assert_matches(
        &format!("{name} f32"),
        &evaluate(cfg, c, &e, &labels, Kind::Float, mining),
        c,
        F32,
    );
}

/// For a mined case: our miner picks PML's triplets (as a set; a rule as
/// the triplets it admits), and the loss over them matches.
fn check_own_miner(name: &str, cfg: &LossConfig) {
    let c = case(name);
    let (e, labels) = embeddings_and_labels(c);
    let out = evaluate(cfg, c, &e, &labels, Kind::Double, Mining::Ours);
    let ours = match out.mined.as_ref().expect("mined") {
        &Mined::SemiHard { margin, distance } => {
            triplet_set(&semi_hard_triplets(&e, &labels, margin, distance))
        }
        listed => triplet_set(listed),
    };
    let pml = triplet_set(&fixture_triplets(c));
    assert!(!pml.is_empty());
    assert_eq!(ours, pml, "{name}: our miner's triplets differ from PML's");
    assert_matches(&format!("{name} own miner"), &out, c, F64);
}

fn triplet_set(m: &Mined) -> BTreeSet<(i64, i64, i64)> {
    let Mined::Triplets {
        anchors,
        positives,
        negatives,
    } = m
    else {
        panic!("triplets expected")
    };
    let v = |t: &Tensor| Vec::<i64>::try_from(t).unwrap();
    let (a, p, n) = (v(anchors), v(positives), v(negatives));
    assert!(a.len() == p.len() && p.len() == n.len());
    a.into_iter().zip(p).zip(n).map(|((a, p), n)| (a, p, n)).collect()
}

/// Every valid triplet in the semi-hard window, enumerated one by one:
/// `x[a,p] < x[a,n] ≤ x[a,p] + margin`, x the farness under `distance`.
fn semi_hard_triplets(e: &Tensor, labels: &Tensor, margin: f64, distance: Distance) -> Mined {
    let far = distance.farness(&e.to_kind(Kind::Double));
    let b = labels.size()[0] as usize;
    let x = Vec::<f64>::try_from(far.view([-1])).unwrap();
    let l = Vec::<i64>::try_from(labels).unwrap();
    let (mut a, mut p, mut ng) = (Vec::new(), Vec::new(), Vec::new());
    for (i, j, k) in (0..b).flat_map(|i| (0..b).flat_map(move |j| (0..b).map(move |k| (i, j, k)))) {
        let (ap, an) = (x[i * b + j], x[i * b + k]);
        if i != j && l[i] == l[j] && l[i] != l[k] && ap < an && an <= ap + margin {
            a.push(i as i64);
            p.push(j as i64);
            ng.push(k as i64);
        }
    }
    Mined::Triplets {
        anchors: Tensor::from_slice(&a),
        positives: Tensor::from_slice(&p),
        negatives: Tensor::from_slice(&ng),
    }
}

/// A change to a config's defaults.
type Tweak = fn(&mut LossConfig);

fn config(name: &str) -> LossConfig {
    LossConfig::new(name)
}

/// The fixture cases and the configs (all defaults, which must be PML's)
/// that reproduce them.
fn cases() -> Vec<(&'static str, LossConfig)> {
    let with = |name: &str, f: Tweak| {
        let mut cfg = config(name);
        f(&mut cfg);
        cfg
    };
    vec![
        ("contrastive_pml_all_pairs", config("contrastive")),
        ("triplet_batch_all", config("triplet")),
        (
            "triplet_batch_hard",
            with("triplet", |c| c.miner = Some("batch-hard".into())),
        ),
        (
            "triplet_semihard_cosine",
            with("triplet", |c| {
                c.miner = Some("semi-hard".into());
                c.distance = Some("cosine".into());
            }),
        ),
        ("angular", config("angular")),
        ("multi_similarity", config("multi-similarity")),
        ("supcon", config("supcon")),
        ("normalized_softmax", config("normalized-softmax")),
        ("arcface", config("arcface")),
        ("cosface", config("cosface")),
    ]
}

fn check_named(name: &str) {
    let (_, cfg) = cases()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("a known case");
    check_case(name, &cfg);
}

#[test]
fn contrastive_matches_pml() {
    check_named("contrastive_pml_all_pairs");
}

#[test]
fn triplet_batch_all_matches_pml() {
    check_named("triplet_batch_all");
}

#[test]
fn triplet_batch_hard_matches_pml_from_its_triplets_and_ours() {
    check_named("triplet_batch_hard");
    let (_, cfg) = cases()
        .into_iter()
        .find(|(n, _)| *n == "triplet_batch_hard")
        .unwrap();
    check_own_miner("triplet_batch_hard", &cfg);
}

#[test]
fn triplet_semihard_cosine_matches_pml_from_its_triplets_and_ours() {
    check_named("triplet_semihard_cosine");
    let (_, cfg) = cases()
        .into_iter()
        .find(|(n, _)| *n == "triplet_semihard_cosine")
        .unwrap();
    check_own_miner("triplet_semihard_cosine", &cfg);
}

#[test]
fn angular_matches_pml() {
    check_named("angular");
}

#[test]
fn multi_similarity_matches_pml() {
    check_named("multi_similarity");
}

#[test]
fn supcon_matches_pml() {
    check_named("supcon");
}

#[test]
fn normalized_softmax_matches_pml() {
    check_named("normalized_softmax");
}

#[test]
fn arcface_matches_pml() {
    check_named("arcface");
}

#[test]
fn cosface_matches_pml() {
    check_named("cosface");
}

/// The seed's form: explicit pairs (a_i, b_i) become the batch [a; b], with
/// labels that differ exactly where the fixture's y is 1.
#[test]
fn seed_contrastive_matches_the_seed_formula() {
    let c = case("contrastive_seed_form");
    let (a, b) = (matrix(&c["a"]), matrix(&c["b"]));
    let n = a.size()[0];
    let y = vector(&c["y"]).to_kind(Kind::Int64);
    let ids = Tensor::arange(n, (Kind::Int64, Device::Cpu));
    let labels = Tensor::cat(&[&ids, &(&ids + &y * n)], 0);
    let embeddings = Tensor::cat(&[a, b], 0);
    for (kind, tol) in [(Kind::Double, F64), (Kind::Float, F32)] {
        let out = evaluate(
            &config("seed-contrastive"),
            c,
            &embeddings,
            &labels,
            kind,
            Mining::None,
        );
        let expected = c["loss"].as_f64().unwrap();
        assert!(
            (out.loss - expected).abs() <= tol.loss * expected.abs(),
            "{kind:?}: {} vs {expected}",
            out.loss
        );
        let grad = Tensor::cat(&[matrix(&c["grad_a"]), matrix(&c["grad_b"])], 0);
        let gap = relative_gap(&out.grad, &grad);
        assert!(gap <= tol.grad, "{kind:?}: gradient relative gap {gap:e}");
        eprintln!(
            "seed-contrastive {kind:?}: loss gap {:e}, grad gap {gap:e}",
            (out.loss - expected).abs() / expected
        );
    }
}

/// A new fixture case must get a test, not be skipped silently.
#[test]
fn every_fixture_case_is_checked() {
    let fixture: BTreeSet<&str> = common::fixture("losses.json")["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut checked: BTreeSet<&str> = cases().into_iter().map(|(n, _)| n).collect();
    checked.insert("contrastive_seed_form");
    assert_eq!(fixture, checked);
}

/// The tolerances are tight enough to catch a slightly wrong parameter.
#[test]
fn a_wrong_parameter_fails_the_oracle() {
    let perturbed: [(&str, Tweak); 5] = [
        ("triplet_batch_all", |c| c.margin = Some(0.201)),
        ("contrastive_pml_all_pairs", |c| c.margin = Some(1.001)),
        ("supcon", |c| c.temperature = Some(0.1001)),
        ("arcface", |c| c.margin = Some(28.7)),
        ("multi_similarity", |c| c.base = Some(0.501)),
    ];
    for (name, perturb) in perturbed {
        let c = case(name);
        let (_, mut cfg) = cases().into_iter().find(|(n, _)| *n == name).unwrap();
        perturb(&mut cfg);
        let (e, labels) = embeddings_and_labels(c);
        let out = evaluate(&cfg, c, &e, &labels, Kind::Double, Mining::None);
        let gaps = gaps(&out, c);
        assert!(
            !within(&gaps, F64),
            "{name}: a perturbed parameter still matches the oracle: {gaps:?}"
        );
    }
}

/// PML turns triplets into pairs (a, p), (a, n) for pair losses, and pairs
/// sharing an anchor into triplets for the triplet loss, a tuple listed
/// twice counting twice: both directions give the same loss as the
/// equivalent explicit form.
#[test]
fn mined_pairs_and_triplets_convert_as_in_pml() {
    let c = case("triplet_batch_hard");
    let (e, labels) = embeddings_and_labels(c);
    let e = e.set_requires_grad(true);
    let Mined::Triplets {
        anchors,
        positives,
        negatives,
    } = fixture_triplets(c)
    else {
        unreachable!()
    };
    // The first triplet listed twice: one anchor's pairs count double.
    let twice = |t: &Tensor| Tensor::cat(&[t, &t.narrow(0, 0, 1)], 0);
    let (anchors, positives, negatives) = (twice(&anchors), twice(&positives), twice(&negatives));
    let pairs = || Mined::Pairs {
        pos_a: anchors.shallow_clone(),
        pos_b: positives.shallow_clone(),
        neg_a: anchors.shallow_clone(),
        neg_b: negatives.shallow_clone(),
    };
    // From pairs, the doubled anchor's one triplet comes out 2 × 2 times.
    let four_times = |t: &Tensor| Tensor::cat(&[t, &t.narrow(0, 0, 1), &t.narrow(0, 0, 1)], 0);
    let triplets = |pair_form: bool| {
        let f = |t: &Tensor| {
            if pair_form {
                four_times(t)
            } else {
                t.shallow_clone()
            }
        };
        Mined::Triplets {
            anchors: f(&anchors),
            positives: f(&positives),
            negatives: f(&negatives),
        }
    };
    let vs = nn::VarStore::new(Device::Cpu);
    for (name, expanded) in [("triplet", triplets(true)), ("contrastive", triplets(false))] {
        let loss = losses::build(&config(name), &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap();
        let from_pairs = loss.compute(&e, &labels, Some(&pairs())).double_value(&[]);
        let explicit = loss.compute(&e, &labels, Some(&expanded)).double_value(&[]);
        let single = loss
            .compute(&e, &labels, Some(&fixture_triplets(c)))
            .double_value(&[]);
        assert!(
            (from_pairs - explicit).abs() <= 1e-12,
            "{name}: {from_pairs} vs {explicit}"
        );
        assert!(
            (from_pairs - single).abs() > 1e-9,
            "{name}: duplicates must count"
        );
    }
}

/// Every valid triplet of a batch, listed explicitly (anchor-major order).
fn all_valid_triplets(labels: &Tensor) -> Mined {
    let l = Vec::<i64>::try_from(labels).unwrap();
    let n = l.len() as i64;
    let (mut a, mut p, mut ng) = (Vec::new(), Vec::new(), Vec::new());
    for (i, j, k) in (0..n).flat_map(|i| (0..n).flat_map(move |j| (0..n).map(move |k| (i, j, k)))) {
        let label = |x: i64| l[x as usize];
        if i != j && label(i) == label(j) && label(i) != label(k) {
            a.push(i);
            p.push(j);
            ng.push(k);
        }
    }
    Mined::Triplets {
        anchors: Tensor::from_slice(&a),
        positives: Tensor::from_slice(&p),
        negatives: Tensor::from_slice(&ng),
    }
}

/// The batch-all triplet loss, computed without listing triplets, equals the
/// loss over the explicit list of every valid triplet, value and gradient,
/// with either distance.
#[test]
fn batch_all_triplet_equals_the_listed_triplets_for_both_distances() {
    let c = case("triplet_batch_all");
    let (e, labels) = embeddings_and_labels(c);
    let all = all_valid_triplets(&labels);
    let vs = nn::VarStore::new(Device::Cpu);
    for distance in ["l2", "cosine"] {
        let mut cfg = config("triplet");
        cfg.distance = Some(distance.into());
        let loss = losses::build(&cfg, &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap();
        let run = |mined: Option<&Mined>| {
            let e = e.detach().set_requires_grad(true);
            let value = loss.compute(&e, &labels, mined);
            value.backward();
            (value.double_value(&[]), e.grad())
        };
        let ((fast, fast_grad), (listed, listed_grad)) = (run(None), run(Some(&all)));
        assert!(fast > 0.0);
        assert!(
            (fast - listed).abs() <= 1e-12 * listed,
            "{distance}: {fast} vs {listed}"
        );
        let gap = relative_gap(&fast_grad, &listed_grad);
        assert!(gap <= 1e-12, "{distance}: gradient relative gap {gap:e}");
    }
}

/// The semi-hard rule scores exactly the triplets it admits: on a random
/// batch, the triplet and contrastive losses from the miner's rule equal
/// those from the enumerated window, value and gradient, with either
/// distance.
#[test]
fn semi_hard_rule_equals_its_listed_window() {
    tch::manual_seed(7);
    let e = Tensor::randn([64, EMBEDDING_DIM], (Kind::Double, Device::Cpu));
    let labels = Tensor::arange(64, (Kind::Int64, Device::Cpu)).remainder(8);
    let vs = nn::VarStore::new(Device::Cpu);
    for distance in [Distance::L2, Distance::Cosine] {
        let miner = SemiHardMiner::new(0.2, distance);
        let rule = miner.mine(&e, &labels);
        let listed = semi_hard_triplets(&e, &labels, 0.2, distance);
        assert!(
            listed.listed().unwrap() > 0,
            "{distance:?}: an empty window checks nothing"
        );
        // A triplet margin above the rule's keeps the whole window non-zero;
        // at the rule's, the hinge closes it.
        for (name, margin) in [
            ("triplet", Some(0.2)),
            ("triplet", Some(0.3)),
            ("contrastive", None),
        ] {
            let mut cfg = config(name);
            cfg.margin = margin;
            if name == "triplet" && distance == Distance::Cosine {
                cfg.distance = Some("cosine".into());
            }
            let loss = losses::build(&cfg, &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap();
            let run = |mined: &Mined| {
                let e = e.detach().set_requires_grad(true);
                let value = loss.compute(&e, &labels, Some(mined));
                value.backward();
                (value.double_value(&[]), e.grad())
            };
            let ((from_rule, rule_grad), (from_list, list_grad)) = (run(&rule), run(&listed));
            eprintln!("semi-hard {distance:?} {name} {margin:?}: rule {from_rule}, list {from_list}");
            assert!(
                (from_rule - from_list).abs() <= 1e-6 * from_list.abs(),
                "{distance:?} {name} {margin:?}: {from_rule} vs {from_list}"
            );
            let gap = relative_gap(&rule_grad, &list_grad);
            assert!(
                gap <= 1e-6,
                "{distance:?} {name} {margin:?}: gradient relative gap {gap:e}"
            );
        }
    }
}

/// A batch of one class has no triplets and no negative pairs: the losses
/// are 0 and still backpropagate (to zero gradients), so a training step on
/// such a batch does not fail.
#[test]
fn a_batch_without_negatives_gives_zero_and_backpropagates() {
    let e = Tensor::randn([8, EMBEDDING_DIM], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let labels = Tensor::zeros([8], (Kind::Int64, Device::Cpu));
    let vs = nn::VarStore::new(Device::Cpu);
    for name in ["triplet", "angular", "supcon"] {
        let loss = losses::build(&config(name), &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap();
        let value = loss.compute(&e, &labels, None);
        assert_eq!(value.double_value(&[]), 0.0, "{name}");
        value.backward();
        assert_eq!(e.grad().abs().max().double_value(&[]), 0.0, "{name}");
    }
}

#[test]
fn every_registered_loss_builds_with_its_defaults() {
    let vs = nn::VarStore::new(Device::Cpu);
    for (name, about) in LOSSES {
        assert!(!about.is_empty());
        let loss = losses::build(&config(name), &(vs.root() / *name), EMBEDDING_DIM, NUM_CLASSES)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let proxy = matches!(*name, "normalized-softmax" | "arcface" | "cosface" | "softmax");
        assert_eq!(loss.needs_class_count(), proxy, "{name}");
    }
    // Each classifier loss added exactly its trainable (embedding_dim, num_classes) W.
    let vars = vs.variables();
    assert_eq!(vars.len(), 4);
    assert!(vars
        .values()
        .all(|w| w.size() == [EMBEDDING_DIM, NUM_CLASSES] && w.requires_grad()));
}

fn config_error(cfg: &LossConfig) -> (String, String) {
    let vs = nn::VarStore::new(Device::Cpu);
    match losses::build(cfg, &vs.root(), EMBEDDING_DIM, NUM_CLASSES) {
        Err(e @ LearnError::Config { .. }) => (e.to_string(), e.hint().unwrap()),
        other => panic!("{cfg:?}: expected a config error, got {other:?}"),
    }
}

#[test]
fn bad_configs_are_refused_with_a_fix() {
    let (msg, hint) = config_error(&config("tripplet"));
    assert!(msg.contains("unknown loss 'tripplet'"), "{msg}");
    assert!(LOSSES.iter().all(|(name, _)| hint.contains(name)), "{hint}");

    let mut cfg = config("supcon");
    cfg.temperature = Some(0.0);
    assert!(config_error(&cfg).1.contains("> 0"));

    let mut cfg = config("angular");
    cfg.alpha = Some(90.0);
    assert!(config_error(&cfg).0.contains("alpha"));

    let mut cfg = config("triplet");
    cfg.temperature = Some(0.1);
    let (msg, hint) = config_error(&cfg);
    assert!(msg.contains("takes no parameter temperature"), "{msg}");
    assert!(hint.contains("margin"), "{hint}");

    let mut cfg = config("arcface");
    cfg.miner = Some("semi-hard".into());
    assert!(config_error(&cfg).0.contains("cannot use the semi-hard miner"));

    let mut cfg = config("triplet");
    cfg.miner = Some("hardest".into());
    let (msg, hint) = config_error(&cfg);
    assert!(
        msg.contains("unknown miner 'hardest'") && hint.contains("semi-hard"),
        "{msg} / {hint}"
    );

    let mut cfg = config("triplet");
    cfg.distance = Some("manhattan".into());
    assert!(config_error(&cfg).1.contains("cosine"));

    let vs = nn::VarStore::new(Device::Cpu);
    let too_few = losses::build(&config("cosface"), &vs.root(), EMBEDDING_DIM, 1);
    assert!(matches!(too_few, Err(LearnError::Config { .. })));
}

#[test]
fn miners_build_by_name() {
    use twinsim_learn::miners::{self, MINERS};
    for (name, _) in MINERS {
        let miner = miners::build(name, 0.2).unwrap();
        assert_eq!(miner.is_none(), *name == "batch-all", "{name}");
    }
    assert!(miners::build("semi-hard", -0.1).is_err());
    let mut cfg = config("angular");
    cfg.miner = Some("batch-all".into());
    assert!(
        cfg.build_miner().unwrap().is_none(),
        "batch-all is no miner, for any loss"
    );
}

#[test]
fn loss_config_round_trips_through_json_leaving_defaults_out() {
    let mut cfg = config("triplet");
    cfg.margin = Some(0.3);
    cfg.miner = Some("semi-hard".into());
    let json = serde_json::to_value(&cfg).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"name": "triplet", "margin": 0.3, "miner": "semi-hard"})
    );
    assert_eq!(serde_json::from_value::<LossConfig>(json).unwrap(), cfg);
    let with_nulls = serde_json::json!({"name": "triplet", "margin": null, "miner": null});
    assert_eq!(
        serde_json::from_value::<LossConfig>(with_nulls).unwrap(),
        config("triplet")
    );
}

#[test]
fn softmax_is_a_linear_classifiers_cross_entropy_on_raw_embeddings() {
    let e = Tensor::randn([6, EMBEDDING_DIM], (Kind::Double, Device::Cpu)) * 3.0;
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]);
    for smoothing in [None, Some(0.2)] {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LossConfig {
            label_smoothing: smoothing,
            ..config("softmax")
        };
        let loss = losses::build(&cfg, &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap();
        let w = vs.variables()["W"].to_kind(Kind::Double);
        // torch's nn.Linear start: uniform within ±1/√D.
        let bound = 1.0 / (EMBEDDING_DIM as f64).sqrt();
        assert!(w.abs().max().double_value(&[]) <= bound);
        // Nothing is normalised: the logits are e·W, so scaling e changes them.
        let log_p = e.matmul(&w).log_softmax(1, Kind::Double);
        let target = -log_p.gather(1, &labels.unsqueeze(1), false).mean(Kind::Double);
        let uniform = -log_p.mean(Kind::Double);
        let eps = smoothing.unwrap_or(0.0);
        let expected = ((1.0 - eps) * target + eps * uniform).double_value(&[]);
        let got = loss.compute(&e, &labels, None).double_value(&[]);
        assert!(
            (got - expected).abs() < 1e-9,
            "{smoothing:?}: {got} != {expected}"
        );
    }
}

#[test]
fn label_smoothing_spreads_each_target_over_all_classes() {
    let e = Tensor::randn([6, EMBEDDING_DIM], (Kind::Double, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]);
    let loss_with = |smoothing: Option<f64>, w: Option<&Tensor>| {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LossConfig {
            label_smoothing: smoothing,
            ..config("normalized-softmax")
        };
        let loss = losses::build(&cfg, &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap();
        let mut proxies = vs.variables()["W"].shallow_clone();
        if let Some(w) = w {
            tch::no_grad(|| proxies.copy_(w));
        }
        (loss.compute(&e, &labels, None).double_value(&[]), proxies)
    };
    let (plain, w) = loss_with(None, None);
    let (smooth, _) = loss_with(Some(0.2), Some(&w));
    // The uniform part: −log p averaged over every class and row.
    let unit = |t: &Tensor, dim: i64| t / t.norm_scalaropt_dim(2, [dim], true);
    let logits = unit(&e, 1).matmul(&unit(&w.to_kind(Kind::Double), 0)) / 0.05;
    let uniform = -logits
        .log_softmax(1, Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    let expected = 0.8 * plain + 0.2 * uniform;
    assert!((smooth - expected).abs() < 1e-9, "{smooth} != {expected}");
    // A share of 1 or more would leave no target; losses without classes take none.
    for (name, share) in [("normalized-softmax", 1.0), ("triplet", 0.1)] {
        let cfg = LossConfig {
            label_smoothing: Some(share),
            ..config(name)
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let err = losses::build(&cfg, &vs.root(), EMBEDDING_DIM, NUM_CLASSES).unwrap_err();
        assert!(matches!(err, LearnError::Config { .. }), "{name}: {err}");
    }
}
