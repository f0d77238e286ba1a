//! Using a trained model end to end: `calibrate`, `compare` (one pair and a
//! pairs file), `embed`, `evaluate` and `report`, on a small model trained
//! once on the embedded MNIST sample, and every kind of bad input they meet.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{assert_user_error, run, twinsim};
use flate2::{write::ZlibEncoder, Compression, Crc};
use serde_json::Value;
use twinsim_data::{DatasetSpec, LoadOptions};

/// A model trained once for all tests here (they only read it, except
/// those that copy it first): 100 images per class of the sample, 2 epochs.
fn model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::train_sample_model(
            "score-cli",
            &[
                "--per-class",
                "100",
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--per-class-batch",
                "8",
                "--seed",
                "3",
                "--threads",
                "2",
            ],
        )
    })
}

/// A copy of the shared model that a test may change.
fn model_copy(tmp: &Path) -> PathBuf {
    common::copy_run(model(), &tmp.join("model-copy"))
}

/// Test images of the sample: (pixels 28×28, label) for the first `n`.
fn sample_test(n: usize) -> Vec<(Vec<u8>, u32)> {
    let spec: DatasetSpec = "mnist-sample:test".parse().unwrap();
    let ds = twinsim_data::load(&spec, &LoadOptions::from_env(None)).unwrap();
    (0..n)
        .map(|i| (ds.images.image(i).to_vec(), ds.labels[i]))
        .collect()
}

/// Writes a 28×28 grey digit as `name` (format from the extension), after
/// scaling it to `size` and, with `colour`, to RGB.
fn write_digit(dir: &Path, name: &str, pixels: &[u8], size: u32, colour: bool) -> PathBuf {
    let grey = image::GrayImage::from_raw(28, 28, pixels.to_vec()).unwrap();
    let grey = match size {
        28 => grey,
        _ => image::imageops::resize(&grey, size, size, image::imageops::FilterType::Triangle),
    };
    let path = dir.join(name);
    if colour {
        image::DynamicImage::ImageLuma8(grey)
            .to_rgb8()
            .save(&path)
            .unwrap();
    } else {
        grey.save(&path).unwrap();
    }
    path
}

/// Two test images of one digit and one of another: (a, a', b) labels.
fn three_digits() -> [(Vec<u8>, u32); 3] {
    let all = sample_test(200);
    let a = all[0].clone();
    let same = all[1..].iter().find(|(_, l)| *l == a.1).unwrap().clone();
    let other = all.iter().find(|(_, l)| *l != a.1).unwrap().clone();
    [a, same, other]
}

fn compare_json(args: &[&Path], model: &Path, tmp: &Path) -> Value {
    let (ok, out, err) = run(twinsim(tmp)
        .arg("--json")
        .arg("compare")
        .args(args)
        .arg("--model")
        .arg(model));
    assert!(ok, "{err}");
    serde_json::from_str(&out).expect("one JSON object")
}

#[test]
fn compare_scores_a_same_pair_above_a_different_one_whatever_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, same, other] = three_digits();
    let pa = write_digit(tmp.path(), "a.png", &a.0, 28, false);
    // Another size, colour and format: converted as in training.
    let ps = write_digit(tmp.path(), "same.jpg", &same.0, 90, true);
    let po = write_digit(tmp.path(), "other.bmp", &other.0, 17, true);
    let s = compare_json(&[&pa, &ps], model(), tmp.path());
    let d = compare_json(&[&pa, &po], model(), tmp.path());
    for v in [&s, &d] {
        let sim = v["similarity"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&sim), "{v}");
        assert!(v["threshold"].as_f64().is_some() && v["same"].is_boolean(), "{v}");
    }
    assert!(
        s["similarity"].as_f64() > d["similarity"].as_f64(),
        "same {s}, different {d}"
    );
    assert_eq!(s["same"], true, "{s}");
    assert_eq!(d["same"], false, "{d}");
    // An image with itself is as similar as it gets.
    let selfie = compare_json(&[&pa, &pa], model(), tmp.path());
    assert!(selfie["similarity"].as_f64().unwrap() >= s["similarity"].as_f64().unwrap());

    let (ok, out, err) = run(twinsim(tmp.path())
        .arg("compare")
        .arg(&pa)
        .arg(&ps)
        .arg("--model")
        .arg(model()));
    assert!(ok, "{err}");
    assert!(
        out.contains("similarity") && out.contains("same") && out.contains("threshold"),
        "{out}"
    );
}

/// A PNG whose header declares `width` × `height` grey pixels, with a
/// tiny (wrong) payload: a decompression bomb as far as its header goes.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&[0; 64]).unwrap();
    for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", z.finish().unwrap()), (b"IEND", vec![])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(&data);
        let mut crc = Crc::new();
        crc.update(kind);
        crc.update(&data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    out
}

#[test]
fn unusable_images_are_refused_by_name_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, ..] = three_digits();
    let good = write_digit(tmp.path(), "good.png", &a.0, 28, false);
    let png = std::fs::read(&good).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "notes.png",
            b"just some text, not an image".to_vec(),
            "not an image",
        ),
        ("empty.png", Vec::new(), "empty file"),
        ("cut.png", png[..png.len() / 2].to_vec(), "damaged"),
        ("bomb.png", png_declaring(100_000, 100_000), "refused"),
    ];
    for (name, bytes, reason) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (ok, _, err) = run(twinsim(tmp.path())
            .arg("compare")
            .arg(&good)
            .arg(&path)
            .arg("--model")
            .arg(model()));
        assert_user_error(ok, &err, name);
        assert!(err.contains(reason), "{name}: {err}");
    }
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("compare")
        .arg(&good)
        .arg(tmp.path().join("missing.png"))
        .arg("--model")
        .arg(model()));
    assert_user_error(ok, &err, "missing.png");

    // Tiny images are converted like any other.
    let tiny = write_digit(tmp.path(), "tiny.png", &a.0, 1, false);
    compare_json(&[&good, &tiny], model(), tmp.path());
}

#[test]
fn a_model_without_calibration_says_how_to_calibrate() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = model_copy(tmp.path());
    let card_path = copy.join("model.json");
    let mut card: Value = serde_json::from_slice(&std::fs::read(&card_path).unwrap()).unwrap();
    card["extra"].as_object_mut().unwrap().remove("calibration");
    std::fs::write(&card_path, serde_json::to_vec(&card).unwrap()).unwrap();
    let [a, same, _] = three_digits();
    let pa = write_digit(tmp.path(), "a.png", &a.0, 28, false);
    let pb = write_digit(tmp.path(), "b.png", &same.0, 28, false);
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("compare")
        .arg(&pa)
        .arg(&pb)
        .arg("--model")
        .arg(&copy));
    assert_user_error(ok, &err, "twinsim calibrate");

    // Calibrating restores it, with the requested false-accept rate, and
    // leaves the model's identity (its weights hash) alone.
    let hash = |tmp: &Path| {
        let out = tmp.join("emb");
        let (ok, stdout, err) = run(twinsim(tmp)
            .arg("--json")
            .arg("embed")
            .arg("--model")
            .arg(&copy)
            .arg(&pa)
            .arg("-o")
            .arg(&out)
            .arg("--force"));
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&stdout).unwrap()["model_hash"].clone()
    };
    let before = hash(tmp.path());
    let (ok, out, err) = run(twinsim(tmp.path())
        .args(["--json", "calibrate"])
        .arg(&copy)
        .args(["--far", "0.01", "--pairs", "2000"]));
    assert!(ok, "{err}");
    let fitted: Value = serde_json::from_str(&out).unwrap();
    assert!(fitted["false_accept_rate"].as_f64().unwrap() <= 0.01, "{fitted}");
    assert_eq!(fitted["rule"], "far=0.01");
    assert_eq!(
        fitted["same_pairs"].as_u64().unwrap() + fitted["different_pairs"].as_u64().unwrap(),
        2000
    );
    compare_json(&[&pa, &pb], &copy, tmp.path());
    assert_eq!(hash(tmp.path()), before);
}

#[test]
fn a_pairs_file_scores_every_line_and_names_the_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, same, other] = three_digits();
    write_digit(tmp.path(), "a.png", &a.0, 28, false);
    write_digit(tmp.path(), "s.png", &same.0, 28, false);
    write_digit(tmp.path(), "o.png", &other.0, 28, false);
    let csv = tmp.path().join("pairs.csv");
    std::fs::write(&csv, "a,b\na.png,s.png\na.png,o.png\n\"a.png\", gone.png\n").unwrap();
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("compare")
        .arg("--pairs")
        .arg(&csv)
        .arg("--model")
        .arg(model()));
    assert_user_error(ok, &err, "line 4");
    assert!(
        err.contains("gone.png") && err.contains("--skip-missing"),
        "{err}"
    );

    let (ok, out, err) = run(twinsim(tmp.path())
        .args(["--json", "compare", "--skip-missing", "--pairs"])
        .arg(&csv)
        .arg("--model")
        .arg(model()));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["line"], 2);
    assert!(results[0]["similarity"].as_f64() > results[1]["similarity"].as_f64());
    assert_eq!(v["skipped"][0]["line"], 4);

    for (name, text) in [("empty.csv", ""), ("header.csv", "a,b\n"), ("one.csv", "a.png\n")] {
        let f = tmp.path().join(name);
        std::fs::write(&f, text).unwrap();
        let (ok, _, err) = run(twinsim(tmp.path())
            .arg("compare")
            .arg("--pairs")
            .arg(&f)
            .arg("--model")
            .arg(model()));
        assert_user_error(ok, &err, name);
    }
}

#[test]
fn embed_writes_arrays_numpy_and_faiss_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("emb");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["embed", "--dataset", "mnist-sample:test", "--model"])
        .arg(model())
        .arg("-o")
        .arg(&out));
    assert!(ok, "{err}");
    let emb = twinsim_data::npy::read::<f32>(&out.join("embeddings.npy")).unwrap();
    let labels = twinsim_data::npy::read::<i64>(&out.join("labels.npy")).unwrap();
    assert_eq!(emb.shape, vec![2000, 128]);
    assert_eq!(labels.shape, vec![2000]);
    let expected: Vec<i64> = sample_test(2000).iter().map(|(_, l)| i64::from(*l)).collect();
    assert_eq!(labels.values, expected);
    // The default model is cosine: unit rows.
    let norm: f32 = emb.values[..128].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    let meta: Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["metric"], "cosine");
    assert_eq!(meta["dataset"], "mnist-sample:test");
    assert_eq!(meta["count"], 2000);

    // numpy opens them as they are.
    let py = std::process::Command::new(std::env::var("TWINSIM_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg("-c")
        .arg(format!(
            "import numpy as np; e=np.load('{0}/embeddings.npy'); l=np.load('{0}/labels.npy'); print(e.dtype, e.shape, l.dtype, l.shape)",
            out.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "float32 (2000, 128) int64 (2000,)"
    );

    // Files: labels -1, rows in order, equal to the dataset's rows.
    let [a, ..] = three_digits();
    let pa = write_digit(tmp.path(), "a.png", &a.0, 28, false);
    let files_out = tmp.path().join("files");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["embed", "--model"])
        .arg(model())
        .arg(&pa)
        .arg(&pa)
        .arg("-o")
        .arg(&files_out));
    assert!(ok, "{err}");
    let f = twinsim_data::npy::read::<f32>(&files_out.join("embeddings.npy")).unwrap();
    let l = twinsim_data::npy::read::<i64>(&files_out.join("labels.npy")).unwrap();
    assert_eq!(l.values, vec![-1, -1]);
    for (x, y) in f.values[..128].iter().zip(&emb.values[..128]) {
        assert!((x - y).abs() < 1e-5, "a file embeds as its dataset row");
    }
}

#[test]
fn evaluate_reports_pml_metrics_beside_the_reference_points() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = model_copy(tmp.path());
    let (ok, out, err) = run(twinsim(tmp.path())
        .args(["--json", "evaluate"])
        .arg(&copy)
        .args(["--pairs", "2000"]));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    for key in [
        "precision_at_1",
        "r_precision",
        "mean_average_precision_at_r",
        "nmi",
        "pair_roc_auc",
        "pair_eer",
        "pair_accuracy",
    ] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {v}"));
        assert!((0.0..=1.0).contains(&x), "{key} {x}");
    }
    for k in ["1", "2", "4", "8"] {
        assert!(v["recall_at_k"][k].is_f64(), "recall_at_k {k}: {v}");
    }
    for far in ["0.001", "0.01", "0.1"] {
        assert!(v["tar_at_far"][far].is_f64(), "tar_at_far {far}: {v}");
    }
    assert_eq!(v["setup"]["protocol"], "gallery");
    assert_eq!(v["setup"]["queries"], 2000);
    assert_eq!(v["setup"]["gallery"], 8000);
    assert_eq!(v["pair_threshold_rule"], "calibrated");
    // Recall@1 is Precision@1, and recall grows with k.
    assert_eq!(v["recall_at_k"]["1"], v["precision_at_1"]);
    assert!(v["recall_at_k"]["8"].as_f64() >= v["recall_at_k"]["2"].as_f64());
    // The trained model beats its untrained self on every ranking metric.
    let untrained = &v["baselines"]["untrained"];
    let raw = &v["baselines"]["raw_pixels"];
    assert!(raw["precision_at_1"].is_f64(), "{v}");
    for key in ["precision_at_1", "mean_average_precision_at_r", "pair_roc_auc"] {
        assert!(v[key].as_f64() > untrained[key].as_f64(), "{key}: {v}");
    }

    let (ok, _, err) = run(twinsim(tmp.path())
        .args([
            "evaluate",
            "--protocol",
            "leave-one-out",
            "--no-baselines",
            "--pairs",
            "1000",
        ])
        .arg(&copy));
    assert!(ok, "{err}");
    let recorded: Value = serde_json::from_slice(&std::fs::read(copy.join("metrics.json")).unwrap()).unwrap();
    assert!(
        recorded["gallery"]["precision_at_1"].is_f64()
            && recorded["leave-one-out"]["precision_at_1"].is_f64()
    );
    assert_eq!(recorded["leave-one-out"]["setup"]["gallery"], 2000);

    // Class-disjoint needs classes the model never saw.
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["evaluate", "--protocol", "class-disjoint"])
        .arg(&copy));
    assert_user_error(ok, &err, "unseen");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["evaluate", "--protocol", "sideways"])
        .arg(&copy));
    assert_user_error(ok, &err, "leave-one-out");
}

#[test]
fn evaluate_with_gallery_context_is_recorded_beside_the_plain_one() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = model_copy(tmp.path());
    let evaluate = |extra: &[&str]| {
        let (ok, out, err) = run(twinsim(tmp.path())
            .args(["--json", "evaluate", "--no-baselines", "--pairs", "1000"])
            .args(extra)
            .arg(&copy));
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).expect("one JSON object")
    };
    let plain = evaluate(&[]);
    let context = evaluate(&["--dba", "20", "--query-expansion", "10"]);
    assert_eq!(context["setup"]["expansion"]["dba"], 20, "{context}");
    assert_eq!(context["setup"]["expansion"]["query"], 10, "{context}");
    assert!(plain["setup"].get("expansion").is_none(), "{plain}");
    // Context changes the similarities' scale, so the calibrated threshold
    // no longer applies.
    assert_eq!(context["pair_threshold_rule"], "best-on-these-pairs");
    assert_ne!(context["pair_roc_auc"], plain["pair_roc_auc"]);
    let recorded: Value = serde_json::from_slice(&std::fs::read(copy.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(recorded["gallery"]["pair_roc_auc"], plain["pair_roc_auc"]);
    assert_eq!(
        recorded["gallery+dba20+qe10"]["pair_roc_auc"],
        context["pair_roc_auc"]
    );

    // Leave-one-out has no gallery to take context from.
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["evaluate", "--protocol", "leave-one-out", "--dba", "20"])
        .arg(&copy));
    assert_user_error(ok, &err, "--protocol gallery");
}

#[test]
fn report_writes_a_page_whose_pictures_all_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = model_copy(tmp.path());
    let out = tmp.path().join("report");
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("report")
        .arg(&copy)
        .args(["--map-points", "300", "-o"])
        .arg(&out));
    assert!(ok, "{err}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let pictures: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    for expected in [
        "curves.png",
        "pairs.png",
        "roc.png",
        "distances.png",
        "pca.png",
        "tsne.png",
        "neighbours.png",
    ] {
        assert!(pictures.contains(&expected), "{expected} not shown: {pictures:?}");
    }
    for p in &pictures {
        let img = image::open(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(
            img.width() > 300 && img.height() > 200,
            "{p} is {}x{}",
            img.width(),
            img.height()
        );
    }
    assert!(
        html.contains("precision_at_1") && html.contains("raw pixels"),
        "metrics table missing"
    );
}

#[test]
fn a_model_that_cannot_take_the_data_says_so() {
    // A colour model trained on a tiny folder of images (made 3x32x32)…
    let tmp = tempfile::tempdir().unwrap();
    for (class, colour) in [("red", [200u8, 30, 30]), ("blue", [30, 30, 200])] {
        let dir = tmp.path().join("folder").join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..12u8 {
            let img = image::RgbImage::from_fn(16, 16, |x, y| {
                let v = ((x + y) as u8).wrapping_mul(i + 1);
                image::Rgb([colour[0] ^ v, colour[1], colour[2] ^ (v / 2)])
            });
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
    let out = tmp.path().join("run");
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("train")
        .arg("--dataset")
        .arg(tmp.path().join("folder"))
        .args([
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--per-class-batch",
            "4",
            "--val-fraction",
            "0.25",
            "--out",
        ])
        .arg(&out));
    assert!(ok, "{err}");
    // …cannot embed 1x28x28 MNIST digits.
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["evaluate", "--dataset", "mnist-sample"])
        .arg(&out));
    assert_user_error(ok, &err, "3x32x32");
    // But a grey image file of any size is converted for it.
    let [a, b, _] = three_digits();
    let pa = write_digit(tmp.path(), "a.png", &a.0, 28, false);
    let pb = write_digit(tmp.path(), "b.png", &b.0, 40, false);
    compare_json(&[&pa, &pb], &out, tmp.path());
}
