//! Which recipe each kind of data gets, through the CLI (`train --dry-run`
//! on the real datasets, and tiny real runs), early stopping, and the
//! configurations refused before any training.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;

use common::{assert_user_error, cifar_folder, run, shared_data, twinsim};
use serde_json::Value;

/// The configuration `train --dry-run --json` resolves for `dataset` with `args`.
fn planned(tmp: &Path, dataset: &OsStr, args: &[&str]) -> Value {
    let (ok, stdout, err) = run(twinsim(tmp)
        .arg("--data-dir")
        .arg(shared_data())
        .args(["--json", "train", "--dry-run", "--dataset"])
        .arg(dataset)
        .args(args)
        .current_dir(tmp));
    assert!(ok, "{}: {err}", dataset.to_string_lossy());
    serde_json::from_str(&stdout).unwrap()
}

/// Trains one tiny epoch on `dataset` with `args`; the run's config.json.
fn tiny_run(tmp: &Path, name: &str, dataset: &OsStr, args: &[&str]) -> Value {
    let out = tmp.join(name);
    let (ok, stdout, err) = run(twinsim(tmp)
        .arg("--data-dir")
        .arg(shared_data())
        .args(["train", "--epochs", "1", "--per-class", "16"])
        .args(["--batch-size", "32", "--per-class-batch", "8", "--dataset"])
        .arg(dataset)
        .args(args)
        .arg("--out")
        .arg(&out));
    assert!(ok, "{name}: {err}");
    let config: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    // The summary names the recipe a user got.
    let recipe = config["recipe"].as_str().unwrap();
    assert!(stdout.contains(&format!("recipe {recipe}: ")), "{name}: {stdout}");
    config
}

/// The recipe's name and what it chose: encoder, loss, augmentation, optimizer.
fn picked(c: &Value) -> [String; 5] {
    [
        &c["recipe"],
        &c["arch"],
        &c["loss"],
        &c["augment"],
        &c["optimizer"],
    ]
    .map(|v| v.as_str().unwrap().to_string())
}

#[test]
fn each_kind_of_data_gets_its_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    // 560 images of each of 2 classes: 504 after validation is carved out,
    // just above the small-data line of 500.
    let photos = tmp.path().join("photos");
    cifar_folder(&photos, &["cat", "ship"], 560);
    let digits = planned(tmp.path(), "mnist".as_ref(), &[]);
    assert_eq!(
        picked(&digits),
        ["digits", "cnn-wide", "multi-similarity", "affine", "adamw"]
    );
    let grey = planned(tmp.path(), "fashion-mnist".as_ref(), &[]);
    assert_eq!(
        picked(&grey),
        ["grey", "airbench-half", "normalized-softmax", "shift-flip", "sgd"]
    );
    assert_eq!(
        (grey["label-smoothing"].as_f64(), grey["lr"].as_f64()),
        (Some(0.1), Some(0.3))
    );
    assert_eq!(grey["patience"], Value::Null, "full-size data trains every epoch");
    let colour = planned(tmp.path(), photos.as_os_str(), &[]);
    assert_eq!(
        picked(&colour),
        [
            "colour",
            "airbench-half",
            "normalized-softmax",
            "shift-flip",
            "sgd"
        ]
    );
    // The same kinds of data with few images per class are small data.
    for (dataset, channels) in [("fashion-mnist", 1), ("photos", 3)] {
        let path = if dataset == "photos" {
            photos.clone()
        } else {
            dataset.into()
        };
        let small = planned(tmp.path(), path.as_os_str(), &["--per-class", "200"]);
        assert_eq!(
            picked(&small),
            ["small", "resnet", "normalized-softmax", "shift-flip-erase", "sgd"],
            "{dataset} ({channels} channels)"
        );
        assert_eq!(small["patience"], 10);
        // Small batches, 8 classes of 8 (as many classes as there are, for
        // the 2 of the photos), at SGD's rate scaled to them.
        let batch = if dataset == "photos" { 2 * 8 } else { 64 };
        assert_eq!(
            (&small["batch-size"], &small["per-class-batch"], &small["lr"]),
            (&batch.into(), &8.into(), &(0.3 * batch as f64 / 256.0).into())
        );
    }
    // But digits stay digits, and a dry run writes nothing.
    let few_digits = planned(tmp.path(), "mnist".as_ref(), &["--per-class", "50"]);
    assert_eq!(few_digits["recipe"], "digits");
    assert!(
        !tmp.path().join("runs").exists(),
        "a dry run wrote a run directory"
    );
}

#[test]
fn a_named_recipe_wins_over_the_data_and_a_flag_over_the_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar");
    // Four classes: a batch of 32 is 4 classes x 8.
    cifar_folder(&cifar, &["airplane", "cat", "frog", "ship"], 24);
    let small = tiny_run(tmp.path(), "small", cifar.as_os_str(), &[]);
    assert_eq!(small["recipe"], "small");
    // SGD's rate follows the batch: 0.3 at 256 images, so 0.0375 at 32.
    assert_eq!(small["lr"], 0.0375);
    let named = tiny_run(
        tmp.path(),
        "named",
        cifar.as_os_str(),
        &["--recipe", "digits", "--arch", "cnn"],
    );
    assert_eq!(
        picked(&named),
        ["digits", "cnn", "multi-similarity", "affine", "adamw"]
    );
    let (ok, _, err) =
        run(twinsim(tmp.path()).args(["train", "--dataset", "mnist-sample", "--recipe", "clothes"]));
    assert_user_error(ok, &err, "use one of: digits, grey, colour, small");
}

#[test]
fn a_run_stops_once_validation_stops_improving_and_keeps_its_best_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // Zeros against ones: validation Precision@1 reaches its ceiling of 1
    // at once, so with a patience of 1 the run ends as soon as it may, at
    // half its 8 epochs.
    let (ok, stdout, err) = run(twinsim(tmp.path())
        .args(["train", "--dataset", "mnist-sample", "--classes", "0,1"])
        .args(["--per-class", "60", "--epochs", "8", "--patience", "1"])
        .args(["--batch-size", "32", "--per-class-batch", "16", "--json"])
        .arg("--out")
        .arg(&out));
    assert!(ok, "{err}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let epochs = summary["epochs"].as_array().unwrap();
    assert!(epochs.len() < 8, "ran all {} epochs", epochs.len());
    let vals: Vec<f64> = epochs
        .iter()
        .map(|e| e["val_precision_at_1"].as_f64().unwrap())
        .collect();
    // It may stop from epoch 4 (half of 8) on, at the first epoch that did
    // not improve on every one before it, and keeps the best.
    let best_before = |n: usize| vals[..n].iter().cloned().fold(f64::MIN, f64::max);
    let stopped = (4..=8)
        .find(|&e| vals.get(e - 1).is_none_or(|&v| v <= best_before(e - 1)))
        .unwrap();
    assert_eq!(epochs.len(), stopped, "{vals:?}");
    let best = best_before(stopped);
    let first_best = vals.iter().position(|&v| v == best).unwrap() + 1;
    assert_eq!(summary["kept_epoch"], first_best, "{vals:?}");
    assert!(out.join("best.safetensors").exists());
    // A resume of the stopped run trains nothing more.
    let (ok, _, err) = run(twinsim(tmp.path()).arg("train").arg("--resume").arg(&out));
    assert!(ok, "{err}");
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), epochs.len());
}

#[test]
fn a_recipe_that_cannot_work_for_the_data_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let out = tmp.path().join("run");
        let (ok, _, err) = run(twinsim(tmp.path())
            .args(["train", "--dataset", "mnist-sample"])
            .args(args)
            .arg("--out")
            .arg(&out));
        assert_user_error(ok, &err, needle);
        assert!(!out.exists(), "{args:?} created a run directory");
    };
    // P x K batches of 8 classes, from 2 classes.
    refused(
        &[
            "--classes",
            "0,1",
            "--batch-size",
            "256",
            "--per-class-batch",
            "32",
        ],
        "the data has only 2 classes",
    );
    // Images smaller than every encoder's receptive field.
    let cifar = tmp.path().join("cifar");
    cifar_folder(&cifar, &["cat", "ship"], 8);
    let out = tmp.path().join("tiny-images");
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("train")
        .arg("--dataset")
        .arg(&cifar)
        .args(["--image-size", "16", "--out"])
        .arg(&out));
    assert_user_error(ok, &err, "too small for an encoder");
    assert!(!out.exists());
    // A patience of 0 would stop before training.
    refused(&["--patience", "0"], "patience = 0 is out of range");
}
