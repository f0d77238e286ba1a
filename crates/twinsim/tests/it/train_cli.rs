//! `twinsim train` end to end on the embedded MNIST sample: the run
//! directory, resuming after SIGKILL, and configurations that cannot work.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{assert_user_error, run, twinsim};
use serde_json::Value;

/// A small, deterministic run: 100 images per class of the embedded sample.
const SMALL: &[&str] = &[
    "train",
    "--dataset",
    "mnist-sample",
    "--per-class",
    "100",
    "--deterministic",
    "--threads",
    "1",
    "--seed",
    "7",
];
/// Batches that fit SMALL: 8 classes x 8 images.
const BATCH: &[&str] = &["--batch-size", "64", "--per-class-batch", "8"];

fn metrics_lines(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn training_writes_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (ok, stdout, err) = run(twinsim(tmp.path())
        .args(SMALL)
        .args(["--epochs", "2", "--json", "--out"])
        .arg(&out));
    assert!(ok, "{err}");
    let summary: Value = serde_json::from_str(&stdout).expect("one JSON object");
    for f in [
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "model.json",
        "last.safetensors",
        "summary.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(metrics_lines(&out).len(), 2);
    let config: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["arch"], "cnn-wide");
    assert_eq!(config["loss"], "multi-similarity");
    let p1 = summary["test_precision_at_1"].as_f64().unwrap();
    // Far above chance (0.1) after two short epochs on 1,000 images.
    assert!(p1 > 0.6, "test P@1 {p1}");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A checkpoint whose shapes disagree with the configuration is refused by name.
    let config_path = out.join("config.json");
    let edited = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("\"embedding-dim\": 128", "\"embedding-dim\": 64");
    std::fs::write(&config_path, edited).unwrap();
    let (ok, _, err) = run(twinsim(tmp.path()).arg("train").arg("--resume").arg(&out));
    assert_user_error(ok, &err, "shape");
}

#[test]
fn a_test_after_every_epoch_records_time_to_quality_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let (ok, stdout, err) = run(twinsim(tmp.path())
            .args(SMALL)
            .args(BATCH)
            .args(["--epochs", "2", "--json"])
            .args(extra)
            .arg("--out")
            .arg(&out));
        assert!(ok, "{err}");
        let summary: Value = serde_json::from_str(&stdout).expect("one JSON object");
        (metrics_lines(&out), summary)
    };
    let (plain, _) = train("plain", &[]);
    let (tested, summary) = train("tested", &["--test-each-epoch"]);
    for (p, t) in plain.iter().zip(&tested) {
        assert!(p.get("test_precision_at_1").is_none(), "{p}");
        // Measuring draws nothing the training draws: the same losses.
        assert_eq!(p["loss"], t["loss"]);
        assert_eq!(p["val_precision_at_1"], t["val_precision_at_1"]);
    }
    let last = tested.last().unwrap()["test_precision_at_1"].as_f64().unwrap();
    assert!(
        tested[0]["test_precision_at_1"].as_f64().unwrap() > 0.3,
        "{tested:?}"
    );
    // The last epoch's figure is the final protocol's: the summary's.
    assert_eq!(Some(last), summary["test_precision_at_1"].as_f64());
    // The report charts time to quality for the tested run, or where other
    // systems' curves are given (benchmarks/speed.sh's results) for any run.
    let results = tmp.path().join("results.jsonl");
    std::fs::write(
        &results,
        "{\"system\": \"peer\", \"dataset\": \"mnist-sample\", \"curve\": [[1.5, 0.4], [3.0, 0.6]]}\n",
    )
    .unwrap();
    let report = |name: &str, page: &str, extra: &[&std::ffi::OsStr]| {
        let page = tmp.path().join(page);
        let (ok, _, err) = run(twinsim(tmp.path())
            .arg("report")
            .arg(tmp.path().join(name))
            .args(["--map-points", "100", "-o"])
            .arg(&page)
            .args(extra));
        (ok, err, page)
    };
    let compare = [std::ffi::OsStr::new("--compare"), results.as_os_str()];
    for (name, extra, charted) in [
        ("plain", &[][..], false),
        ("tested", &[][..], true),
        ("plain", &compare[..], true),
    ] {
        let (ok, err, page) = report(name, &format!("{name}-{}-report", extra.len()), extra);
        assert!(ok, "{err}");
        let html = std::fs::read_to_string(page.join("report.html")).unwrap();
        assert_eq!(html.contains("src=\"time_to_quality.png\""), charted, "{name}");
        assert_eq!(page.join("time_to_quality.png").exists(), charted, "{name}");
    }
    // Curves of another dataset only: refused, and no report written.
    std::fs::write(
        &results,
        "{\"system\": \"peer\", \"dataset\": \"cifar10\", \"curve\": [[1.5, 0.4]]}\n",
    )
    .unwrap();
    let (ok, err, page) = report("tested", "refused-report", &compare);
    assert_user_error(ok, &err, "no time-to-quality curve for mnist-sample");
    assert!(!page.join("report.html").exists());
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        let mut v: Vec<String> = SMALL.iter().chain(BATCH).map(|s| s.to_string()).collect();
        v.retain(|a| a != "100");
        v.retain(|a| a != "--per-class");
        v.extend(["--epochs", "3", "--out"].map(String::from));
        v.push(out.display().to_string());
        v
    };
    let whole = tmp.path().join("whole");
    let (ok, _, err) = run(twinsim(tmp.path()).args(args(&whole)));
    assert!(ok, "{err}");

    let killed = tmp.path().join("killed");
    let mut child = twinsim(tmp.path())
        .args(args(&killed))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while metrics_lines(&killed).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "epochs never finished"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // into epoch 3
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("summary.json").exists(),
        "the run finished before the kill"
    );

    let (ok, _, err) = run(twinsim(tmp.path()).arg("train").arg("--resume").arg(&killed));
    assert!(ok, "{err}");
    // Timings differ between runs; everything learned must not.
    let learned = |d: &Path| -> Vec<[Value; 4]> {
        metrics_lines(d)
            .into_iter()
            .map(|m| ["epoch", "loss", "val_precision_at_1", "lr"].map(|k| m[k].clone()))
            .collect()
    };
    assert_eq!(learned(&killed).len(), 3);
    assert_eq!(
        learned(&killed),
        learned(&whole),
        "per-epoch metrics differ after resume"
    );
    let p1 = |d: &Path| -> f64 {
        let v: Value = serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        v["test_precision_at_1"].as_f64().unwrap()
    };
    assert_eq!(p1(&killed), p1(&whole));
}

#[test]
fn configurations_that_cannot_work_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_toml = tmp.path().join("bad.toml");
    std::fs::write(&bad_toml, "batch-size = 64\nlearning-rate = 0.1\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--batch-size".into(),
                "384".into(),
                "--per-class-batch".into(),
                "32".into(),
            ],
            "only 10 classes",
        ),
        (vec!["--loss".into(), "hinge-of-doom".into()], "unknown loss"),
        (
            vec![
                "--batch-size".into(),
                "63".into(),
                "--per-class-batch".into(),
                "8".into(),
            ],
            "dividing the batch size",
        ),
        (vec!["--arch".into(), "transformer".into()], "unknown"),
        (
            vec![
                "--loss".into(),
                "seed-contrastive".into(),
                "--sampler".into(),
                "pk".into(),
            ],
            "needs batches of pairs",
        ),
        (
            vec!["--config".into(), bad_toml.display().to_string()],
            "learning-rate",
        ),
        (vec!["--device".into(), "cuda:7".into()], "cuda:7"),
        (vec!["--embedding".into(), "pixels".into()], "unknown embedding"),
        (
            vec![
                "--embedding".into(),
                "features".into(),
                "--test-each-epoch".into(),
            ],
            "whitened only when training ends",
        ),
    ];
    for (extra, needle) in cases {
        let out = tmp
            .path()
            .join(format!("run-{}", needle.replace([' ', ':'], "_")));
        let (ok, _, err) = run(twinsim(tmp.path())
            .args(SMALL)
            .args(&extra)
            .arg("--out")
            .arg(&out));
        assert_user_error(ok, &err, needle);
        assert!(
            !out.join("last.safetensors").exists(),
            "{needle}: training started"
        );
    }
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(SMALL)
        .args(["--lr", "1e30", "--epochs", "1", "--out"])
        .arg(&out));
    assert_user_error(ok, &err, "the loss became");
    assert!(!out.join("model.safetensors").exists());
}

#[test]
fn default_batches_fit_a_run_on_a_few_classes() {
    // 256 images as 8 classes x 32 cannot be drawn from 5 classes: the
    // default batch shrinks to 5 x 32 instead of failing.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args([
            "train",
            "--dataset",
            "mnist-sample",
            "--classes",
            "0-4",
            "--per-class",
            "64",
            "--epochs",
            "1",
            "--arch",
            "cnn",
            "--out",
        ])
        .arg(&out));
    assert!(ok, "{err}");
    let config: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["batch-size"], 160);

    // The digits left out are what class-disjoint evaluation measures.
    let protocol = |name: &str| -> Value {
        let (ok, stdout, err) = run(twinsim(tmp.path())
            .args([
                "--json",
                "evaluate",
                "--no-baselines",
                "--pairs",
                "500",
                "--protocol",
                name,
            ])
            .arg(&out));
        assert!(ok, "{err}");
        serde_json::from_str(&stdout).unwrap()
    };
    let seen = protocol("gallery");
    let unseen = protocol("class-disjoint");
    let test_labels: Vec<u32> = {
        let spec: twinsim_data::DatasetSpec = "mnist-sample:test".parse().unwrap();
        twinsim_data::load(&spec, &twinsim_data::LoadOptions::from_env(None))
            .unwrap()
            .labels
    };
    let low = test_labels.iter().filter(|&&l| l < 5).count();
    assert_eq!(seen["setup"]["queries"], low);
    assert_eq!(unseen["setup"]["queries"], test_labels.len() - low);
    assert!(unseen["pair_roc_auc"].as_f64().unwrap() > 0.5, "{unseen}");
}

#[test]
fn whitened_features_are_what_a_features_model_embeds() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(SMALL)
        .args(["--classes", "0-4", "--batch-size", "40", "--per-class-batch", "8"])
        .args(["--epochs", "1", "--arch", "cnn"])
        .args(["--embedding-dim", "16", "--embedding", "features", "--out"])
        .arg(&out));
    assert!(ok, "{err}");
    let card: Value = serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["embedding"], "features");
    assert!(card["extra"]["calibration"].is_object(), "{card}");

    // 128 columns (cnn's pooled features), not the head's 16.
    let emb = tmp.path().join("emb");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["embed", "--dataset", "mnist-sample:test", "--model"])
        .arg(&out)
        .arg("-o")
        .arg(&emb));
    assert!(ok, "{err}");
    let meta: Value = serde_json::from_slice(&std::fs::read(emb.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["dim"], 128, "{meta}");

    // The untrained reference embeds the same way, whitened too, rather
    // than putting every image at the origin.
    let (ok, stdout, err) = run(twinsim(tmp.path())
        .args(["--json", "evaluate", "--pairs", "500"])
        .arg(&out));
    assert!(ok, "{err}");
    let eval: Value = serde_json::from_str(&stdout).unwrap();
    let untrained = &eval["baselines"]["untrained"];
    assert!(untrained["nmi"].as_f64().unwrap() > 0.05, "{untrained}");

    // --unseen calibrates on the held-out images of digits 5-9 instead of 0-4.
    let calibrated_on = |extra: &[&str]| -> String {
        let (ok, stdout, err) = run(twinsim(tmp.path())
            .args(["--json", "calibrate", "--pairs", "500"])
            .args(extra)
            .arg(&out));
        assert!(ok, "{err}");
        let fitted: Value = serde_json::from_str(&stdout).unwrap();
        fitted["data"].as_str().unwrap().to_string()
    };
    let (trained, unseen) = (calibrated_on(&[]), calibrated_on(&["--unseen"]));
    assert!(trained.contains("classes 0,1,2,3,4 ("), "{trained}");
    assert!(unseen.contains("classes 5,6,7,8,9 ("), "{unseen}");
}

#[test]
fn a_model_trained_on_mnist_is_not_measured_on_the_sample_by_mistake() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("--data-dir")
        .arg(common::shared_data())
        .args(["train", "--per-class", "20", "--epochs", "1", "--arch", "cnn"])
        .args([
            "--batch-size",
            "40",
            "--per-class-batch",
            "4",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&out));
    assert!(ok, "{err}");
    // Without --data-dir MNIST is not found here: the sample it would fall
    // back to is not what the model was trained on.
    let (ok, _, err) = run(twinsim(tmp.path()).args(["evaluate", "--no-baselines"]).arg(&out));
    assert_user_error(ok, &err, "--data-dir");
    assert!(err.contains("train-images-idx3-ubyte"), "{err}");
    // Asked for by name, the sample is measured.
    let (ok, _, err) = run(twinsim(tmp.path())
        .args([
            "evaluate",
            "--no-baselines",
            "--pairs",
            "500",
            "--dataset",
            "mnist-sample",
        ])
        .arg(&out));
    assert!(ok, "{err}");
}

#[test]
fn the_airbench_gpu_recipe_trains_on_the_cpu_at_a_tiny_size() {
    let tmp = tempfile::tempdir().unwrap();
    common::cifar_folder(&tmp.path().join("cifar"), &["airplane", "frog"], 24);
    let out = tmp.path().join("run");
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("train")
        .arg("--dataset")
        .arg(tmp.path().join("cifar"))
        .args([
            "--arch",
            "airbench-half",
            "--augment",
            "shift-flip",
            "--loss",
            "normalized-softmax",
        ])
        .args([
            "--optimizer",
            "sgd",
            "--lr",
            "0.2",
            "--weight-decay",
            "0.0005",
            "--label-smoothing",
            "0.1",
        ])
        .args([
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--per-class-batch",
            "8",
            "--val-fraction",
            "0.25",
        ])
        .arg("--out")
        .arg(&out));
    assert!(ok, "{err}");
    let card: Value = serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["encoder"]["arch"], "airbench-half");
    assert_eq!(
        card["flip_average"], true,
        "flips in training, mirror averaging at test"
    );
    let model = twinsim_learn::model::Model::load(&out, tch::Device::Cpu).unwrap();
    let vars = model.vs.variables();
    // The whitening filters were fitted to the images (as pairs ±W, which no
    // random start gives) and training left them alone.
    let w = &vars["whiten.weight"];
    assert_eq!(w.size(), [24, 3, 2, 2]);
    let (plus, minus) = (w.narrow(0, 0, 12), w.narrow(0, 12, 12));
    assert!(plus.allclose(&(-&minus), 0.0, 0.0, false), "whitening is not ±W");
    assert!(
        plus.abs().max().double_value(&[]) > 1.0,
        "whitening is not fitted"
    );
    // Batch-norm scales stay at 1: only their shifts train.
    for (name, t) in vars.iter().filter(|(n, _)| n.ends_with("bn.weight")) {
        assert_eq!(t.min().double_value(&[]), 1.0, "{name} trained");
        assert_eq!(t.max().double_value(&[]), 1.0, "{name} trained");
    }
    // And the saved model embeds the data it was trained on.
    let (ok, out_json, err) = run(twinsim(tmp.path())
        .args(["evaluate", "--json", "--no-baselines", "--dataset"])
        .arg(tmp.path().join("cifar"))
        .arg(&out));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out_json).unwrap();
    assert!((0.0..=1.0).contains(&v["precision_at_1"].as_f64().unwrap()));
}
