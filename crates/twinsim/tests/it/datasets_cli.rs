//! `twinsim datasets`: listing, summaries, JSON output and user mistakes.

use crate::common;

use common::{assert_user_error, run, shared_data, twinsim};
use serde_json::Value;

#[test]
fn lists_every_dataset_as_one_json_object() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, out, _) = run(twinsim(cache.path())
        .args(["datasets", "--json", "--data-dir"])
        .arg(shared_data()));
    assert!(ok);
    let v: Value = serde_json::from_str(&out).expect("stdout is exactly one JSON object");
    let names: Vec<&str> = v["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mnist", "fashion-mnist", "cifar10", "cifar100"]);
    let mnist = &v["datasets"][0];
    assert_eq!(mnist["found"], true);
    assert_eq!(mnist["paths"].as_array().unwrap().len(), 4);
    // CIFAR-100 is not in ../shared: every place searched is listed instead.
    let cifar100 = &v["datasets"][3];
    assert_eq!(cifar100["found"], false);
    assert!(cifar100["searched"].as_array().unwrap().len() >= 4);
    assert_eq!(
        v["search_order"][0].as_str().unwrap(),
        shared_data().to_str().unwrap()
    );
}

#[test]
fn summarises_mnist_splits_with_counts_and_origin() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(twinsim(cache.path())
        .args(["datasets", "mnist", "--json", "--data-dir"])
        .arg(shared_data()));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let splits = v["splits"].as_array().unwrap();
    assert_eq!(splits[0]["split"], "train");
    assert_eq!(splits[0]["images"], 60000);
    assert_eq!(splits[1]["images"], 10000);
    assert_eq!(splits[0]["class_counts"][1], 6742);
    let mean = splits[0]["pixel_mean"].as_f64().unwrap();
    assert!((mean - 0.1307).abs() < 1e-3, "{mean}");
    assert!(splits[0]["origin"]["files"][0]
        .as_str()
        .unwrap()
        .contains("train-images"));
}

#[test]
fn selection_flags_carve_val_and_pick_classes() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(twinsim(cache.path())
        .args([
            "datasets",
            "mnist:val",
            "--classes",
            "0-4",
            "--per-class",
            "50",
            "--json",
            "--data-dir",
        ])
        .arg(shared_data()));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let split = &v["splits"][0];
    assert_eq!(split["split"], "val");
    assert_eq!(split["images"], 250);
    let counts: Vec<u64> = split["class_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(counts, [50, 50, 50, 50, 50, 0, 0, 0, 0, 0]);
}

#[test]
fn offline_with_no_data_named_falls_back_to_the_embedded_sample_and_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(twinsim(cache.path()).args(["datasets", "mnist"]));
    assert!(ok, "{err}");
    assert!(err.contains("embedded"), "no warning about the sample: {err}");
    assert!(out.contains("8000 images"), "{out}");
    assert!(out.contains("the MNIST sample embedded in twinsim"), "{out}");
}

#[test]
fn a_named_data_folder_without_the_dataset_is_an_error_not_the_sample() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(twinsim(cache.path())
        .args(["datasets", "mnist", "--data-dir"])
        .arg(empty.path()));
    assert_user_error(ok, &err, "t10k-labels-idx1-ubyte.gz");
    assert!(!err.contains("embedded"), "{err}");
}

#[test]
fn the_json_listing_names_the_same_kinds_as_the_text_one() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, text, _) = run(twinsim(cache.path()).arg("datasets"));
    assert!(ok);
    let (ok, json, _) = run(twinsim(cache.path()).args(["datasets", "--json"]));
    assert!(ok);
    let v: Value = serde_json::from_str(&json).unwrap();
    let kinds = v["other_kinds"].as_array().unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["folder", "mnist-sample", "union"]);
    for name in names {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from: {text}"
        );
    }
}

#[test]
fn user_mistakes_get_an_error_and_a_hint_never_a_panic() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["datasets", "imagenet"], "unknown dataset"),
        (
            &["datasets", "mnist-sample:val", "--classes", "3-12"],
            "not a class",
        ),
        (&["datasets", "cifar100"], "not found"),
        (&["datasets", "./no/such/folder"], "no/such/folder"),
    ];
    for (args, needle) in cases {
        let (ok, _, err) = run(twinsim(cache.path())
            .args(*args)
            .arg("--data-dir")
            .arg(empty.path()));
        assert_user_error(ok, &err, needle);
    }
}
