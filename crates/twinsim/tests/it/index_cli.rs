//! Sets of images end to end: gallery indexes (`index build | add | info`,
//! `search`, `identify`), `dedup` and `fid`, on a small model trained once
//! on digits 0-4 of the embedded MNIST sample, and the bad input each meets.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::{assert_user_error, run, twinsim};
use serde_json::Value;
use twinsim_data::{Dataset, DatasetSpec, LoadOptions};

/// A model trained once for all tests here on digits 0-4 of the sample.
fn model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::train_sample_model(
            "index-cli",
            &[
                "--classes",
                "0-4",
                "--per-class",
                "100",
                "--epochs",
                "2",
                "--batch-size",
                "40",
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

/// A copy of the shared model in `dir/name`, for a test to change.
fn copy_model(dir: &Path, name: &str) -> PathBuf {
    common::copy_run(model(), &dir.join(name))
}

/// The feature size of the statistics file at `path`.
fn same_dim(path: &Path) -> usize {
    twinsim_data::npz::read_f64(path, "mu").unwrap().values.len()
}

/// The d × d identity, row by row.
fn identity(d: usize) -> Vec<f64> {
    (0..d * d)
        .map(|i| f64::from(u8::from(i % (d + 1) == 0)))
        .collect()
}

/// The identity with one entry above the diagonal set: not symmetric.
fn skew(d: usize) -> Vec<f64> {
    let mut m = identity(d);
    m[1] = 0.5;
    m
}

/// A split of the embedded sample.
fn sample(split: &str) -> Dataset {
    let spec: DatasetSpec = format!("mnist-sample:{split}").parse().unwrap();
    twinsim_data::load(&spec, &LoadOptions::from_env(None)).unwrap()
}

/// Writes image `i` of `ds` as a PNG named `name` in `dir`.
fn write_image(ds: &Dataset, i: usize, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    image::GrayImage::from_raw(28, 28, ds.images.image(i).to_vec())
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// `twinsim --json ARGS` in `tmp`, which must succeed: its JSON.
fn json(tmp: &Path, args: &[&std::ffi::OsStr]) -> Value {
    let (ok, out, err) = run(twinsim(tmp).arg("--json").args(args));
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
}

/// Builds an index of `per_class` training images of each of digits 0-4.
fn build(tmp: &Path, per_class: usize) -> PathBuf {
    let index = tmp.join("digits.idx");
    let (ok, _, err) = run(twinsim(tmp)
        .args(["index", "build", "--model"])
        .arg(model())
        .args([
            "--dataset",
            "mnist-sample:train",
            "--classes",
            "0-4",
            "--per-class",
        ])
        .arg(per_class.to_string())
        .arg("-o")
        .arg(&index));
    assert!(ok, "{err}");
    index
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn a_gallery_image_finds_itself_first_and_results_come_nearest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let index = build(tmp.path(), 20);
    let info = json(tmp.path(), &[os("index"), os("info"), index.as_os_str()]);
    assert_eq!(info["items"], 100);
    assert_eq!(info["classes"].as_object().unwrap().len(), 5);
    assert!(info["classes"].as_object().unwrap().values().all(|n| n == 20));

    // A gallery item, as a file, is its own nearest neighbour: the one
    // nearest to a test image, say.
    let test_query = write_image(&sample("test"), 0, tmp.path(), "test.png");
    let near = json(
        tmp.path(),
        &[
            os("search"),
            index.as_os_str(),
            test_query.as_os_str(),
            os("-k"),
            os("1"),
        ],
    );
    let source = near["results"][0][0]["source"].as_str().unwrap().to_string();
    let first: usize = source.rsplit_once('#').unwrap().1.parse().unwrap();
    let train = sample("train");
    let query = write_image(&train, first, tmp.path(), "gallery-item.png");
    let grid = tmp.path().join("grid.png");
    let found = json(
        tmp.path(),
        &[
            os("search"),
            index.as_os_str(),
            query.as_os_str(),
            os("-k"),
            os("7"),
            os("--grid"),
            grid.as_os_str(),
        ],
    );
    let hits = found["results"][0].as_array().unwrap();
    assert_eq!(hits.len(), 7);
    assert_eq!(hits[0]["source"], source);
    assert_eq!(hits[0]["label"], train.classes[train.labels[first] as usize]);
    assert!(hits[0]["distance"].as_f64().unwrap() < 1e-5);
    let sims: Vec<f64> = hits.iter().map(|h| h["similarity"].as_f64().unwrap()).collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
    assert!((1..=7).all(|r| hits[r - 1]["rank"] == r));
    let picture = image::open(&grid).expect("the grid is a PNG");
    assert!(picture.width() > 7 * 28 && picture.height() > 28);
}

#[test]
fn new_classes_are_enrolled_from_files_and_identified() {
    let tmp = tempfile::tempdir().unwrap();
    let index = build(tmp.path(), 10);
    let test = sample("test");
    let sevens: Vec<usize> = (0..test.len()).filter(|&i| test.labels[i] == 7).take(3).collect();
    let files: Vec<PathBuf> = sevens
        .iter()
        .map(|&i| write_image(&test, i, tmp.path(), &format!("seven{i}.png")))
        .collect();
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["index", "add"])
        .arg(&index)
        .args(&files)
        .args(["--label", "seven"]));
    assert!(ok, "{err}");
    let info = json(tmp.path(), &[os("index"), os("info"), index.as_os_str()]);
    assert_eq!(
        (info["items"].as_u64(), info["classes"]["seven"].as_u64()),
        (Some(53), Some(3))
    );

    // An enrolled image is recognised as its new class.
    let id = json(
        tmp.path(),
        &[os("identify"), index.as_os_str(), files[1].as_os_str()],
    );
    assert_eq!(id["results"][0]["label"], "seven", "{id}");

    // Labelled queries give the open-set scores.
    let score = json(
        tmp.path(),
        &[
            os("identify"),
            index.as_os_str(),
            os("--dataset"),
            os("mnist-sample:test"),
        ],
    );
    let enrolled = test.labels.iter().filter(|&&l| l < 5).count();
    assert_eq!(
        score["enrolled_queries"].as_u64(),
        Some(enrolled as u64),
        "{score}"
    );
    assert_eq!(
        score["unenrolled_queries"].as_u64(),
        Some((test.len() - enrolled) as u64)
    );
    for key in ["identification_accuracy", "false_accept_rate", "accuracy"] {
        let v = score[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} {v}");
    }
    // Trained on these digits, the model names most of them.
    assert!(
        score["identification_accuracy"].as_f64().unwrap() > 0.5,
        "{score}"
    );
}

#[test]
fn an_index_refuses_queries_from_another_model_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let index = build(tmp.path(), 5);
    let other = copy_model(tmp.path(), "other");
    // Other weights: the same card, one weight changed.
    let weights = other.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 4;
    bytes[last..].copy_from_slice(&0.5f32.to_le_bytes());
    std::fs::write(&weights, bytes).unwrap();
    let built = json(tmp.path(), &[os("index"), os("info"), index.as_os_str()]);
    let query = write_image(&sample("test"), 0, tmp.path(), "q.png");
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("search")
        .arg(&index)
        .arg(&query)
        .arg("--model")
        .arg(&other));
    assert_user_error(ok, &err, "made by another model");
    assert!(err.contains(built["model_hash"].as_str().unwrap()), "{err}");
}

#[test]
fn bad_requests_and_files_fail_with_a_reason_and_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let index = build(tmp.path(), 2);
    let query = write_image(&sample("test"), 0, tmp.path(), "q.png");
    let search = |extra: &[&str]| {
        run(twinsim(tmp.path())
            .arg("search")
            .arg(&index)
            .arg(&query)
            .args(extra))
    };
    let (ok, _, err) = search(&["-k", "0"]);
    assert_user_error(ok, &err, "0 is out of range: use a whole number from 1");
    let (ok, _, err) = search(&["-k", "11"]);
    assert_user_error(ok, &err, "not 11");
    let (ok, _, err) = search(&["-k", "-1"]);
    assert!(!ok && err.contains("-1") && !err.contains("panicked"), "{err}");

    let not_image = tmp.path().join("notes.png");
    std::fs::write(&not_image, "just text").unwrap();
    let (ok, _, err) = run(twinsim(tmp.path()).arg("search").arg(&index).arg(&not_image));
    assert_user_error(ok, &err, "notes.png");

    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("search")
        .arg(tmp.path().join("none.idx"))
        .arg(&query));
    assert_user_error(ok, &err, "none.idx");
    let cut = tmp.path().join("cut.idx");
    let bytes = std::fs::read(&index).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, err) = run(twinsim(tmp.path()).arg("search").arg(&cut).arg(&query));
    assert_user_error(ok, &err, "cut.idx");

    // A gallery with no usable image is refused, and nothing is written.
    let junk = tmp.path().join("junk/a");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("x.png"), "not an image").unwrap();
    let empty = tmp.path().join("empty.idx");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args(["index", "build", "--model"])
        .arg(model())
        .arg("--folder")
        .arg(tmp.path().join("junk"))
        .arg("-o")
        .arg(&empty));
    assert_user_error(ok, &err, "no usable image");
    assert!(!empty.exists());
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("dedup")
        .arg(tmp.path().join("junk"))
        .arg("--model")
        .arg(model()));
    assert_user_error(ok, &err, "no usable image");

    // An index whose model moved says how to point at it.
    let copy = copy_model(tmp.path(), "model-here");
    let moving = tmp.path().join("moving.idx");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args([
            "index",
            "build",
            "--dataset",
            "mnist-sample:test",
            "--per-class",
            "1",
            "--model",
        ])
        .arg(&copy)
        .arg("-o")
        .arg(&moving));
    assert!(ok, "{err}");
    std::fs::rename(&copy, tmp.path().join("model-there")).unwrap();
    let (ok, _, err) = run(twinsim(tmp.path()).arg("search").arg(&moving).arg(&query));
    assert_user_error(ok, &err, "is not there any more");
    assert!(err.contains("--model"), "{err}");
}

#[test]
fn an_interrupted_add_leaves_the_old_index_or_the_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let index = build(tmp.path(), 2);
    let mut seen = Vec::new();
    for delay_ms in [0, 20, 60, 150, 300, 600, 1000] {
        let before = json(tmp.path(), &[os("index"), os("info"), index.as_os_str()])["items"]
            .as_u64()
            .unwrap();
        let mut child = twinsim(tmp.path())
            .args(["index", "add"])
            .arg(&index)
            .args(["--dataset", "mnist-sample:train", "--per-class", "50"])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let after = json(tmp.path(), &[os("index"), os("info"), index.as_os_str()])["items"]
            .as_u64()
            .unwrap();
        assert!(
            after == before || after == before + 500,
            "{before} then {after} after {delay_ms} ms"
        );
        seen.push(after > before);
    }
    // The loop must have killed at least one add before it finished, or it
    // proved nothing; the longest delay lets one finish.
    assert!(seen.contains(&false), "{seen:?}");
}

#[test]
fn dedup_groups_copies_and_re_encodings_but_not_other_digits_or_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir_all(dir.join("more")).unwrap();
    let test = sample("test");
    // One image of each digit.
    let firsts: Vec<usize> = (0..10u32)
        .map(|d| test.labels.iter().position(|&l| l == d).unwrap())
        .collect();
    for (d, &i) in firsts.iter().enumerate() {
        write_image(&test, i, &dir, &format!("digit{d}.png"));
    }
    // An exact copy in a sub-folder, and a resized JPEG of another.
    std::fs::copy(dir.join("digit2.png"), dir.join("more/copy-of-2.png")).unwrap();
    let grey = image::GrayImage::from_raw(28, 28, test.images.image(firsts[3]).to_vec()).unwrap();
    image::imageops::resize(&grey, 56, 56, image::imageops::FilterType::Triangle)
        .save(dir.join("more/three-big.jpg"))
        .unwrap();
    std::fs::write(dir.join("readme.txt"), "not an image").unwrap();
    // The test model trained for seconds: a looser embedding threshold
    // than the default, which is set for a fully trained model.
    let out = json(
        tmp.path(),
        &[
            os("dedup"),
            dir.as_os_str(),
            os("--model"),
            model().as_os_str(),
            os("--threshold"),
            os("0.5"),
        ],
    );
    assert_eq!(out["images"], 12, "{out}");
    let groups: Vec<Vec<String>> = out["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g.as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    let group_of = |name: &str| {
        groups
            .iter()
            .find(|g| g.iter().any(|p| p.ends_with(name)))
            .cloned()
    };
    let two = group_of("digit2.png").expect("the copy is found");
    assert!(two.iter().any(|p| p.ends_with("copy-of-2.png")), "{groups:?}");
    let three = group_of("digit3.png").expect("the re-encoding is found");
    assert!(three.iter().any(|p| p.ends_with("three-big.jpg")), "{groups:?}");
    assert_eq!((groups.len(), two.len(), three.len()), (2, 2, 2), "{groups:?}");
    let pairs = out["pairs"].as_array().unwrap();
    assert!(
        pairs
            .iter()
            .all(|p| p["pixel_correlation"].as_f64().unwrap() >= 0.95),
        "{out}"
    );
}

#[test]
fn fid_is_near_zero_for_one_distribution_and_refuses_tiny_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let fid = |a: &str, b: &str| {
        json(
            tmp.path(),
            &[
                os("fid"),
                os(a),
                os(b),
                os("--model"),
                model().as_os_str(),
                os("--kid-subsets"),
                os("5"),
            ],
        )
    };
    // Another distribution: the test digits in negative.
    let test = sample("test");
    let negative = tmp.path().join("negative");
    std::fs::create_dir_all(&negative).unwrap();
    for i in 0..300 {
        let pixels: Vec<u8> = test.images.image(i).iter().map(|v| 255 - v).collect();
        image::GrayImage::from_raw(28, 28, pixels)
            .unwrap()
            .save(negative.join(format!("{i}.png")))
            .unwrap();
    }
    let same = fid("mnist-sample:train", "mnist-sample:test");
    let other = fid("mnist-sample:test", negative.to_str().unwrap());
    for key in ["fid", "kid", "kid_std"] {
        assert!(same[key].as_f64().unwrap().is_finite(), "{same}");
    }
    assert_eq!(
        (same["n_a"].as_u64(), same["n_b"].as_u64()),
        (Some(8000), Some(2000)),
        "{same}"
    );
    assert!(
        other["fid"].as_f64().unwrap() > 10.0 * same["fid"].as_f64().unwrap(),
        "digits against negatives {other}, digits against digits {same}"
    );
    // Statistics saved by one run give the same FID in another, and bad
    // statistics files are refused with the reason.
    let stats = tmp.path().join("a.npz");
    let (ok, _, err) = run(twinsim(tmp.path())
        .args([
            "fid",
            "mnist-sample:train",
            "mnist-sample:test",
            "--kid-subsets",
            "2",
            "--save-stats",
        ])
        .arg(&stats)
        .arg("--model")
        .arg(model()));
    assert!(ok, "{err}");
    let from_file = fid(stats.to_str().unwrap(), "mnist-sample:test");
    let want = same["fid"].as_f64().unwrap();
    assert!(
        (from_file["fid"].as_f64().unwrap() - want).abs() <= 1e-9 * want.max(1e-12),
        "{from_file} {same}"
    );
    assert!(
        from_file["kid"].is_null() && from_file["n_a"].is_null(),
        "{from_file}"
    );
    let dim = same_dim(&stats);
    let cases = [
        ("small.npz", vec![0.0; 3], identity(3), 3, "3-d statistics"),
        ("nan.npz", vec![f64::NAN; dim], identity(dim), dim, "NaN"),
        ("skew.npz", vec![0.0; dim], skew(dim), dim, "not symmetric"),
    ];
    for (name, mu, sigma, d, needle) in cases {
        let path = tmp.path().join(name);
        twinsim_data::npz::write(&path, &[("mu", &[d], &mu), ("sigma", &[d, d], &sigma)]).unwrap();
        let (ok, _, err) = run(twinsim(tmp.path())
            .arg("fid")
            .arg(&path)
            .arg(&stats)
            .arg("--model")
            .arg(model()));
        assert_user_error(ok, &err, needle);
    }

    // Fewer images than feature dimensions: an answer, with a warning.
    let few = tmp.path().join("few");
    std::fs::create_dir_all(&few).unwrap();
    for i in 0..5 {
        write_image(&sample("test"), i, &few, &format!("{i}.png"));
    }
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("fid")
        .arg(&few)
        .arg("mnist-sample:test")
        .args(["--kid-subsets", "2", "--model"])
        .arg(model()));
    assert!(
        ok && err.contains("5 images for") && err.contains("use at least"),
        "{err}"
    );

    // A folder of one image is no set.
    let one = tmp.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    write_image(&sample("test"), 0, &one, "a.png");
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("fid")
        .arg(&one)
        .arg("mnist-sample:test")
        .arg("--model")
        .arg(model()));
    assert_user_error(ok, &err, "1 usable images");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("fid")
        .arg(&empty)
        .arg("mnist-sample:test")
        .arg("--model")
        .arg(model()));
    assert_user_error(ok, &err, "0 usable images");
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    // `twinsim --json search ... -k 500 | head -c 1`: far more output than a
    // pipe holds, and the pipe closes after one byte.
    let tmp = tempfile::tempdir().unwrap();
    let index = build(tmp.path(), 100);
    let query = write_image(&sample("test"), 0, tmp.path(), "q.png");
    let mut child = twinsim(tmp.path())
        .args(["--json", "search"])
        .arg(&index)
        .arg(&query)
        .args(["-k", "500"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn fid_on_inception_features_reads_the_named_weights() {
    let tmp = tempfile::tempdir().unwrap();
    // Random weights in the standard layout (the real file is not shipped).
    let weights = tmp.path().join("inception.safetensors");
    let net = twinsim_learn::fid::inception::Inception::new(tch::Device::Cpu);
    let tensors: Vec<(String, tch::Tensor)> = net
        .layout()
        .into_iter()
        .map(|(name, shape)| {
            let opts = (tch::Kind::Float, tch::Device::Cpu);
            // He-scaled convolutions and identity batch norms keep 94
            // layers of activations finite.
            let t = if name.ends_with("conv.weight") {
                let fan_in: i64 = shape[1..].iter().product();
                tch::Tensor::randn(shape.as_slice(), opts) * (2.0 / fan_in as f64).sqrt()
            } else if name.ends_with("bn.weight") || name.ends_with("running_var") {
                tch::Tensor::ones(shape.as_slice(), opts)
            } else {
                tch::Tensor::zeros(shape.as_slice(), opts)
            };
            (name, t)
        })
        .collect();
    tch::Tensor::write_safetensors(&tensors, &weights).unwrap();
    // Two small folders: digits, and the same digits in negative.
    let test = sample("test");
    let (digits, negative) = (tmp.path().join("digits"), tmp.path().join("negative"));
    for dir in [&digits, &negative] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for i in 0..6 {
        write_image(&test, i, &digits, &format!("{i}.png"));
        let pixels: Vec<u8> = test.images.image(i).iter().map(|v| 255 - v).collect();
        image::GrayImage::from_raw(28, 28, pixels)
            .unwrap()
            .save(negative.join(format!("{i}.png")))
            .unwrap();
    }
    let (ok, out, err) = run(twinsim(tmp.path())
        .args(["--json", "fid"])
        .arg(&digits)
        .arg(&negative)
        .args(["--kid-subsets", "2", "--inception"])
        .arg(&weights));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["features"].as_str().unwrap().starts_with("Inception-v3"), "{v}");
    assert_eq!((v["n_a"].as_u64(), v["n_b"].as_u64()), (Some(6), Some(6)));
    assert!(v["fid"].as_f64().unwrap() > 0.0, "{v}");
    assert!(err.contains("6 images for 2048-d features"), "{err}");
    // One source of features, not both, and weights that are not Inception's.
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("fid")
        .arg(&digits)
        .arg(&negative)
        .arg("--inception")
        .arg(&weights)
        .arg("--model")
        .arg(model()));
    assert!(
        !ok && err.contains("--inception") && !err.contains("panicked"),
        "{err}"
    );
    let not_weights = tmp.path().join("weights.pth");
    std::fs::write(&not_weights, b"not a checkpoint").unwrap();
    let (ok, _, err) = run(twinsim(tmp.path())
        .arg("fid")
        .arg(&digits)
        .arg(&negative)
        .arg("--inception")
        .arg(&not_weights));
    assert!(
        !ok && err.contains("error:") && err.contains("weights.pth") && !err.contains("panicked"),
        "{err}"
    );
}
