//! The IDX reader on the real MNIST and Fashion-MNIST files and on damaged copies.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use twinsim_data::catalog::{self, Checksum};
use twinsim_data::idx;
use twinsim_data::{DataError, Dataset, Origin};

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The published decompressed SHA-256 of `dataset`'s file `i`.
fn sha(dataset: &str, i: usize) -> &'static str {
    match catalog::find(dataset).unwrap().files[i].checksum {
        Checksum::DecompressedSha256(s) => s,
        Checksum::ArchiveMd5(_) => unreachable!("IDX files carry SHA-256"),
    }
}

/// Loads the train (`test == false`) or test split of an IDX dataset from `dir`.
fn load(dataset: &str, dir: &Path, test: bool, suffix: &str) -> Result<Dataset, DataError> {
    let (prefix, i) = if test { ("t10k", 2) } else { ("train", 0) };
    let info = catalog::find(dataset).unwrap();
    idx::load_split(
        dataset,
        if test { "test" } else { "train" },
        &dir.join(format!("{prefix}-images-idx3-ubyte{suffix}")),
        &dir.join(format!("{prefix}-labels-idx1-ubyte{suffix}")),
        info.classes,
        Some((sha(dataset, i), sha(dataset, i + 1))),
    )
}

fn pixel_mean(d: &Dataset) -> f64 {
    let bytes = d.images.as_bytes();
    bytes.iter().map(|&b| b as u64).sum::<u64>() as f64 / bytes.len() as f64 / 255.0
}

#[test]
fn mnist_loads_from_the_gzipped_files() {
    let dir = common::shared_data().join("mnist");
    let start = Instant::now();
    let train = load("mnist", &dir, false, ".gz").unwrap();
    let test = load("mnist", &dir, true, ".gz").unwrap();
    eprintln!(
        "MNIST train+test from .gz: {:.3} s",
        start.elapsed().as_secs_f64()
    );

    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.images.shape().to_string(), "1x28x28");
    assert_eq!(train.images.as_bytes().len(), 60_000 * 784);
    assert_eq!(train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(test.labels[..5], [7, 2, 1, 0, 4]);
    assert_eq!(
        train.class_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert!(
        (pixel_mean(&train) - 0.1307).abs() < 0.001,
        "mean {}",
        pixel_mean(&train)
    );
    // The header is gone: the first image is a real digit (sum of pixels of
    // MNIST's first "5"), not shifted by 16 header bytes.
    assert_eq!(
        train.images.image(0).iter().map(|&b| b as u32).sum::<u32>(),
        27525
    );
    assert_eq!(train.classes, DIGITS);
    assert_eq!((train.split.as_str(), test.split.as_str()), ("train", "test"));
    assert_eq!(
        train.origin,
        Origin::Files(vec![
            dir.join("train-images-idx3-ubyte.gz"),
            dir.join("train-labels-idx1-ubyte.gz")
        ])
    );
}

#[test]
fn fashion_mnist_loads_from_the_gzipped_files() {
    let dir = common::shared_data().join("fashion-mnist");
    let train = load("fashion-mnist", &dir, false, ".gz").unwrap();
    let test = load("fashion-mnist", &dir, true, ".gz").unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(test.images.shape().to_string(), "1x28x28");
    assert_eq!(train.labels[..5], [9, 0, 0, 3, 0]);
    assert_eq!(test.labels[..5], [9, 2, 1, 1, 6]);
    assert_eq!(train.class_counts(), [6000; 10]);
    assert_eq!(test.class_counts(), [1000; 10]);
    assert!((pixel_mean(&train) - 0.2860).abs() < 0.001);
    assert_eq!(train.classes[9], "Ankle boot");
}

/// Decompressed copies of `dataset`'s four files in a new temporary folder.
fn decompressed_copy(dataset: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in catalog::find(dataset).unwrap().files {
        let mut bytes = Vec::new();
        let gz = std::fs::File::open(common::shared_data().join(dataset).join(f.name)).unwrap();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut bytes).unwrap();
        std::fs::write(tmp.path().join(f.name.trim_end_matches(".gz")), bytes).unwrap();
    }
    tmp
}

#[test]
fn decompressed_files_give_the_same_dataset() {
    for dataset in ["mnist", "fashion-mnist"] {
        let tmp = decompressed_copy(dataset);
        let start = Instant::now();
        let plain = load(dataset, tmp.path(), false, "").unwrap();
        eprintln!(
            "{dataset} train decompressed: {:.3} s",
            start.elapsed().as_secs_f64()
        );
        let gz = load(dataset, &common::shared_data().join(dataset), false, ".gz").unwrap();
        assert_eq!(plain.images, gz.images, "{dataset}");
        assert_eq!(plain.labels, gz.labels, "{dataset}");
        let test = load(dataset, tmp.path(), true, "").unwrap();
        assert_eq!(test.len(), 10_000);
    }
}

// ---- damaged and inconsistent files ----

/// An IDX file: magic number, big-endian dimensions, payload.
fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Writes `images` and `labels` into a temp folder and loads them as a
/// 10-class dataset, without checksums.
fn load_written(images: &[u8], labels: &[u8]) -> (tempfile::TempDir, Result<Dataset, DataError>) {
    let tmp = tempfile::tempdir().unwrap();
    let (ip, lp) = (tmp.path().join("images"), tmp.path().join("labels"));
    std::fs::write(&ip, images).unwrap();
    std::fs::write(&lp, labels).unwrap();
    let result = idx::load_split("t", "train", &ip, &lp, &DIGITS, None);
    (tmp, result)
}

fn corrupt_reason(err: DataError, file: &str) -> String {
    match err {
        DataError::Corrupt { path, reason } => {
            assert!(path.ends_with(file), "{} should name {file}", path.display());
            reason
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn small_valid_files_load_exactly() {
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let images = idx_bytes(0x803, &[2, 3, 4], &pixels);
    let (_tmp, d) = load_written(&images, &idx_bytes(0x801, &[2], &[7, 3]));
    let d = d.unwrap();
    assert_eq!(d.images.shape().to_string(), "1x3x4");
    assert_eq!(d.images.as_bytes(), pixels);
    assert_eq!(d.labels, [7, 3]);
    // The borrowing parser agrees with the one that reuses the buffer.
    assert_eq!(idx::parse_images(Path::new("x"), &images).unwrap(), d.images);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("train-images-idx3-ubyte.gz");
    std::fs::write(tmp.path().join("labels"), idx_bytes(0x801, &[1], &[0])).unwrap();
    let err = idx::load_split("t", "train", &missing, &tmp.path().join("labels"), &DIGITS, None).unwrap_err();
    assert!(
        matches!(&err, DataError::Io { path, .. } if path == &missing),
        "{err:?}"
    );
}

#[test]
fn truncated_gzip_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = std::fs::read(common::shared_data().join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    let cut = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let images = common::shared_data().join("mnist/t10k-images-idx3-ubyte.gz");
    let err = idx::load_split("mnist", "test", &images, &cut, &DIGITS, None).unwrap_err();
    corrupt_reason(err, "t10k-labels-idx1-ubyte.gz");
}

#[test]
fn wrong_magic_is_corrupt() {
    let (_tmp, r) = load_written(
        &idx_bytes(0x1234_0803, &[1, 1, 1], &[0]),
        &idx_bytes(0x801, &[1], &[0]),
    );
    let reason = corrupt_reason(r.unwrap_err(), "images");
    assert!(reason.contains("not an IDX file"), "{reason}");
    let (_tmp, r) = load_written(
        &idx_bytes(0x0d03, &[1, 1, 1], &[0, 0, 0, 0]),
        &idx_bytes(0x801, &[1], &[0]),
    );
    let reason = corrupt_reason(r.unwrap_err(), "images");
    assert!(reason.contains("data type 0x0d"), "{reason}");
}

#[test]
fn wrong_dimension_count_is_corrupt() {
    // A label file given as the images.
    let labels = idx_bytes(0x801, &[1], &[0]);
    let (_tmp, r) = load_written(&labels, &labels);
    let reason = corrupt_reason(r.unwrap_err(), "images");
    assert!(reason.contains("dimensions instead of 3"), "{reason}");
}

#[test]
fn header_disagreeing_with_payload_is_corrupt() {
    let labels = idx_bytes(0x801, &[3], &[0, 1, 2]);
    // Three 2x2 images declared, two and a half present.
    let (_tmp, r) = load_written(&idx_bytes(0x803, &[3, 2, 2], &[0; 10]), &labels);
    let reason = corrupt_reason(r.unwrap_err(), "images");
    assert!(reason.contains("10 bytes follow"), "{reason}");
    // Labels: four declared, three present.
    let (_tmp, r) = load_written(
        &idx_bytes(0x803, &[3, 2, 2], &[0; 12]),
        &idx_bytes(0x801, &[4], &[0, 1, 2]),
    );
    corrupt_reason(r.unwrap_err(), "labels");
    // Dimensions whose product overflows are refused, not multiplied blindly.
    let (_tmp, r) = load_written(
        &idx_bytes(0x803, &[u32::MAX, u32::MAX, u32::MAX], &[0; 12]),
        &labels,
    );
    corrupt_reason(r.unwrap_err(), "images");
    // A header cut short.
    let (_tmp, r) = load_written(&idx_bytes(0x803, &[3], &[]), &labels);
    corrupt_reason(r.unwrap_err(), "images");
}

#[test]
fn zero_dimensions_are_corrupt() {
    let (_tmp, r) = load_written(&idx_bytes(0x803, &[0, 28, 28], &[]), &idx_bytes(0x801, &[0], &[]));
    let reason = corrupt_reason(r.unwrap_err(), "images");
    assert!(reason.contains("zero"), "{reason}");
}

#[test]
fn image_and_label_counts_must_agree() {
    let (_tmp, r) = load_written(
        &idx_bytes(0x803, &[2, 1, 1], &[0, 0]),
        &idx_bytes(0x801, &[3], &[0, 1, 2]),
    );
    let err = r.unwrap_err();
    assert!(
        matches!(&err, DataError::Invalid { reason, .. } if reason.contains("2 images but 3 labels")),
        "{err:?}"
    );
}

#[test]
fn label_out_of_range_is_rejected() {
    let (_tmp, r) = load_written(
        &idx_bytes(0x803, &[2, 1, 1], &[0, 0]),
        &idx_bytes(0x801, &[2], &[3, 10]),
    );
    let err = r.unwrap_err();
    assert!(
        matches!(&err, DataError::Invalid { reason, .. } if reason.contains("label 10 out of range")),
        "{err:?}"
    );
}

#[test]
fn checksum_mismatch_names_the_file() {
    let dir = common::shared_data().join("mnist");
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    let wrong = "0".repeat(64);
    let err = idx::load_split(
        "mnist",
        "test",
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &labels,
        &DIGITS,
        Some((sha("mnist", 2), &wrong)),
    )
    .unwrap_err();
    match err {
        DataError::Checksum {
            path,
            expected,
            actual,
        } => {
            assert_eq!(path, labels);
            assert_eq!(expected, wrong);
            assert_eq!(actual, sha("mnist", 3));
        }
        other => panic!("expected Checksum, got {other:?}"),
    }
}

#[test]
fn recompressed_copy_passes_the_decompressed_checksum() {
    // A different compressor's .gz still has the published decompressed content.
    let tmp = decompressed_copy("mnist");
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let bytes = std::fs::read(tmp.path().join(name)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        std::fs::write(tmp.path().join(format!("{name}.gz")), gz.finish().unwrap()).unwrap();
        std::fs::remove_file(tmp.path().join(name)).unwrap();
    }
    let test = load("mnist", tmp.path(), true, ".gz").unwrap();
    assert_eq!(test.labels[..5], [7, 2, 1, 0, 4]);
}
