//! One model on a union of datasets, end to end: `twinsim train --dataset
//! mnist+cifar10` on the real MNIST and a small CIFAR-10 in its official
//! binary format, then `evaluate` by part, and `compare` and `embed` taking
//! an MNIST digit and a CIFAR photo alike.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::{run, twinsim, CIFAR10_CLASSES};
use serde_json::Value;

/// A data folder holding the shared MNIST as `mnist/` and, as
/// `cifar10/cifar-10-batches-bin/`, the first `train` training and `test`
/// test images of each CIFAR-10 class from the shared JPEG copy, in the
/// official binary format (a label byte, then R, G and B planes of 32x32),
/// spread over the five training batches. Returns the folder and the bytes
/// of one CIFAR test JPEG.
fn data_root(root: &Path, train: usize, test: usize) -> (PathBuf, Vec<u8>) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(common::shared_data().join("mnist"), data.join("mnist")).unwrap();
    let tgz = common::shared_data().join("cifar10/cifar10-jpeg.tar.gz");
    let file = std::fs::File::open(&tgz).unwrap_or_else(|e| panic!("{}: {e}", tgz.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let (mut train_records, mut test_records) = (Vec::new(), Vec::new());
    let mut counts = std::collections::HashMap::new();
    let mut a_jpeg = Vec::new();
    let mut full = 0;
    for entry in archive.entries().unwrap() {
        if full == 2 * CIFAR10_CLASSES.len() {
            break;
        }
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let parts: Vec<String> = path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let [split, class, _] = parts.as_slice() else {
            continue;
        };
        let (wanted, records) = match split.as_str() {
            "train" => (train, &mut train_records),
            _ => (test, &mut test_records),
        };
        let n = counts.entry((split.clone(), class.clone())).or_insert(0);
        if *n == wanted {
            continue;
        }
        *n += 1;
        full += usize::from(*n == wanted);
        let mut jpeg = Vec::new();
        entry.read_to_end(&mut jpeg).unwrap();
        let rgb = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(rgb.dimensions(), (32, 32));
        let label = CIFAR10_CLASSES.iter().position(|c| c == class).unwrap() as u8;
        let mut record = vec![label];
        for c in 0..3 {
            record.extend(rgb.pixels().map(|p| p[c]));
        }
        records.push(record);
        a_jpeg = jpeg;
    }
    let dir = data.join("cifar10/cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, batch) in train_records.chunks(train_records.len().div_ceil(5)).enumerate() {
        std::fs::write(dir.join(format!("data_batch_{}.bin", i + 1)), batch.concat()).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), test_records.concat()).unwrap();
    std::fs::write(dir.join("batches.meta.txt"), CIFAR10_CLASSES.join("\n")).unwrap();
    (data, a_jpeg)
}

/// `twinsim --data-dir DATA --json ARGS`, which must succeed: its JSON.
fn json(data: &Path, tmp: &Path, args: &[&std::ffi::OsStr]) -> Value {
    let (ok, out, err) = run(twinsim(tmp).arg("--data-dir").arg(data).arg("--json").args(args));
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
}

/// Asserts `v` is a number in [0, 1].
fn unit(v: &Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what}: {v}"));
    assert!((0.0..=1.0).contains(&x), "{what}: {x}");
    x
}

#[test]
fn one_model_trains_on_mnist_and_cifar10_and_is_measured_by_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cifar_jpeg) = data_root(tmp.path(), 20, 10);
    let out = tmp.path().join("run");
    let os = |s: &str| std::ffi::OsString::from(s);
    let mut train: Vec<std::ffi::OsString> = ["train", "--dataset", "mnist+cifar10", "--epochs", "1"]
        .into_iter()
        .chain(["--per-class", "16", "--arch", "cnn", "--embedding-dim", "32"])
        .chain(["--batch-size", "32", "--per-class-batch", "4", "--out"])
        .map(os)
        .collect();
    train.push(out.clone().into());
    let args: Vec<&std::ffi::OsStr> = train.iter().map(|a| a.as_os_str()).collect();
    let summary = json(&data, tmp.path(), &args);
    unit(&summary["test_precision_at_1"], "test P@1");
    let read = |f: &str| -> Value { serde_json::from_slice(&std::fs::read(out.join(f)).unwrap()).unwrap() };
    assert_eq!(read("config.json")["dataset"], "mnist+cifar10");
    // MNIST's digits are brought to CIFAR's 3x32x32: the model takes colour.
    let encoder = &read("model.json")["encoder"];
    assert_eq!(
        [&encoder["in_channels"], &encoder["height"], &encoder["width"]],
        [3, 32, 32]
    );

    // Each part's queries against the whole union, and how often their
    // nearest neighbour is an image of the other part.
    let eval = json(
        &data,
        tmp.path(),
        &[
            "evaluate".as_ref(),
            out.as_os_str(),
            "--protocol".as_ref(),
            "leave-one-out".as_ref(),
            "--no-baselines".as_ref(),
            "--pairs".as_ref(),
            "500".as_ref(),
        ],
    );
    assert_eq!(eval["setup"]["dataset"], "mnist+cifar10");
    let parts = eval["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("no parts: {eval}"));
    let names: Vec<&str> = parts.iter().map(|p| p["part"].as_str().unwrap()).collect();
    assert_eq!(names, ["mnist", "cifar10"]);
    assert_eq!(parts[0]["queries"], 10_000);
    assert_eq!(parts[1]["queries"], 100);
    for p in parts {
        for metric in [
            "cross_domain_confusion",
            "precision_at_1",
            "r_precision",
            "mean_average_precision_at_r",
            "nmi",
        ] {
            unit(&p[metric], &format!("{} {metric}", p["part"]));
        }
    }

    // Another union, on the gallery protocol, as a table: the parts follow
    // the whole.
    let (ok, text, err) = run(twinsim(tmp.path())
        .arg("--data-dir")
        .arg(&data)
        .arg("evaluate")
        .arg(&out)
        .args([
            "--dataset",
            "mnist-sample+cifar10",
            "--no-baselines",
            "--pairs",
            "500",
        ]));
    assert!(ok, "{err}");
    assert!(text.contains("gallery on mnist-sample+cifar10:test"), "{text}");
    let table = text
        .split("the model by part")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(table.contains("cross_domain_confusion"), "{text}");
    assert!(
        table.lines().any(|l| l.starts_with("mnist-sample "))
            && table.lines().any(|l| l.starts_with("cifar10 ")),
        "{text}"
    );

    // A digit and a photo, each converted to the model's input.
    let spec: twinsim_data::DatasetSpec = "mnist-sample:test".parse().unwrap();
    let digits = twinsim_data::load(&spec, &twinsim_data::LoadOptions::from_env(None)).unwrap();
    let digit = tmp.path().join("digit.png");
    image::GrayImage::from_raw(28, 28, digits.images.image(0).to_vec())
        .unwrap()
        .save(&digit)
        .unwrap();
    let photo = tmp.path().join("photo.jpg");
    std::fs::write(&photo, cifar_jpeg).unwrap();
    let compared = json(
        &data,
        tmp.path(),
        &[
            "compare".as_ref(),
            digit.as_os_str(),
            photo.as_os_str(),
            "--model".as_ref(),
            out.as_os_str(),
        ],
    );
    unit(&compared["similarity"], "similarity");
    let emb = tmp.path().join("emb");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["embed", "--model"])
        .arg(&out)
        .arg(&digit)
        .arg(&photo)
        .arg("-o")
        .arg(&emb));
    assert!(ok, "{err}");
    let meta: Value = serde_json::from_slice(&std::fs::read(emb.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["dim"], 32, "{meta}");
}
