//! CIFAR-10 from both official formats (built from the shared copy), small
//! CIFAR-100 files in both formats, and the pickle reader's refusals.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::CIFAR10_CLASSES;
use twinsim_data::archive::{self, Limits};
use twinsim_data::cifar::{self, CifarSplit};
use twinsim_data::{DataError, Dataset, Origin};

/// The official MD5 of a CIFAR download, as the catalog publishes it.
fn official_md5(file: &str) -> &'static str {
    let info = twinsim_data::catalog::find(if file.contains("100") {
        "cifar100"
    } else {
        "cifar10"
    })
    .unwrap();
    match info.files.iter().find(|f| f.name == file).unwrap().checksum {
        twinsim_data::catalog::Checksum::ArchiveMd5(m) => m,
        twinsim_data::catalog::Checksum::DecompressedSha256(_) => unreachable!(),
    }
}

fn load10(path: &Path, split: CifarSplit) -> Result<Dataset, DataError> {
    cifar::load("cifar10", 10, path, split, None)
}

/// Mean of each colour plane over all images, in [0, 1].
fn channel_means(d: &Dataset) -> [f64; 3] {
    let mut sums = [0u64; 3];
    for i in 0..d.len() {
        for (c, plane) in d.images.image(i).chunks_exact(1024).enumerate() {
            sums[c] += plane.iter().map(|&b| b as u64).sum::<u64>();
        }
    }
    sums.map(|s| s as f64 / (d.len() * 1024) as f64 / 255.0)
}

#[test]
fn cifar10_binary_and_python_tarballs_hold_the_same_data() {
    let dir = common::official_cifar10();
    let timed = |file: &str, split| {
        let start = Instant::now();
        let d = cifar::load("cifar10", 10, &dir.join(file), split, Some(official_md5(file))).unwrap();
        eprintln!("{file} {split:?}: {:.3} s", start.elapsed().as_secs_f64());
        d
    };
    let bin_train = timed("cifar-10-binary.tar.gz", CifarSplit::Train);
    let py_train = timed("cifar-10-python.tar.gz", CifarSplit::Train);
    assert_eq!(bin_train.len(), 50_000);
    assert_eq!(bin_train.images.shape().to_string(), "3x32x32");
    assert_eq!(bin_train.classes, CIFAR10_CLASSES);
    assert_eq!(bin_train.class_counts(), [5000; 10]);
    assert_eq!(bin_train.split, "train");
    assert!(bin_train.coarse.is_none());
    assert_eq!(
        bin_train.origin,
        Origin::Files(vec![dir.join("cifar-10-binary.tar.gz")])
    );
    // Planes are R, G, B as stored: the published per-channel means of the
    // JPEG copy (a transposed or shuffled buffer would mix them).
    let means = channel_means(&bin_train);
    for (got, want) in means.iter().zip([0.4913, 0.4821, 0.4465]) {
        assert!((got - want).abs() < 0.0005, "channel means {means:?}");
    }
    assert_eq!(py_train.classes, bin_train.classes);
    assert_eq!(py_train.labels, bin_train.labels);
    assert!(
        py_train.images == bin_train.images,
        "python and binary pixels differ"
    );
    drop((bin_train, py_train));

    let bin_test = timed("cifar-10-binary.tar.gz", CifarSplit::Test);
    let py_test = timed("cifar-10-python.tar.gz", CifarSplit::Test);
    assert_eq!(bin_test.len(), 10_000);
    assert_eq!(bin_test.split, "test");
    assert_eq!(bin_test.class_counts(), [1000; 10]);
    assert_eq!(py_test.labels, bin_test.labels);
    assert!(py_test.images == bin_test.images);
}

#[test]
fn cifar10_extracted_folders_load_like_the_tarballs() {
    let dir = common::official_cifar10();
    let tmp = tempfile::tempdir().unwrap();
    for (file, folder) in [
        ("cifar-10-binary.tar.gz", "cifar-10-batches-bin"),
        ("cifar-10-python.tar.gz", "cifar-10-batches-py"),
    ] {
        let dest = tmp.path().join(folder.replace("cifar-10-batches", "out"));
        let written = archive::extract(&dir.join(file), &dest, &Limits::default()).unwrap();
        assert_eq!(written.len(), 7);
        let from_tar = load10(&dir.join(file), CifarSplit::Test).unwrap();
        // The extracted folder itself, and the folder holding it.
        let inner = load10(&dest.join(folder), CifarSplit::Test).unwrap();
        let outer = load10(&dest, CifarSplit::Test).unwrap();
        assert_eq!(inner.origin, Origin::Files(vec![dest.join(folder)]));
        for d in [&inner, &outer] {
            assert_eq!(d.labels, from_tar.labels, "{folder}");
            assert!(d.images == from_tar.images, "{folder}");
            assert_eq!(d.classes, CIFAR10_CLASSES);
        }
    }
    let start = Instant::now();
    let train = load10(&tmp.path().join("out-bin"), CifarSplit::Train).unwrap();
    eprintln!(
        "cifar-10-batches-bin folder Train: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(train.class_counts(), [5000; 10]);
}

#[test]
fn md5_mismatch_only_warns() {
    // The shared copy is a rebuild: its MD5 cannot be the official one, and
    // the data is still used.
    let dir = common::official_cifar10();
    let d = cifar::load(
        "cifar10",
        10,
        &dir.join("cifar-10-binary.tar.gz"),
        CifarSplit::Test,
        Some("00000000000000000000000000000000"),
    )
    .unwrap();
    assert_eq!(d.len(), 10_000);
}

// ---- CIFAR-100, written here in both formats from the same numbers ----

const N_TRAIN: usize = 7;
const N_TEST: usize = 3;

fn fine_label(i: usize, seed: usize) -> u8 {
    ((i * 37 + seed) % 100) as u8
}

fn pixel(j: usize, seed: usize) -> u8 {
    ((j * 31 + seed) % 256) as u8
}

/// The CIFAR-100 test data: `n` images, seed 0 for train and 1 for test.
fn expected_pixels(n: usize, seed: usize) -> Vec<u8> {
    (0..n * 3072).map(|j| pixel(j, seed)).collect()
}

fn write_cifar100_binary(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (file, n, seed) in [("train.bin", N_TRAIN, 0), ("test.bin", N_TEST, 1)] {
        let pixels = expected_pixels(n, seed);
        let mut out = Vec::new();
        for i in 0..n {
            let fine = fine_label(i, seed);
            out.extend_from_slice(&[fine / 5, fine]);
            out.extend_from_slice(&pixels[i * 3072..(i + 1) * 3072]);
        }
        std::fs::write(dir.join(file), out).unwrap();
    }
    let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i:02}\n")).collect::<String>();
    std::fs::write(dir.join("fine_label_names.txt"), names("fine", 100) + "\n").unwrap();
    std::fs::write(dir.join("coarse_label_names.txt"), names("coarse", 20)).unwrap();
}

/// The same data pickled by numpy and Python 3 (protocol 2), as the official
/// CIFAR-100 python download lays it out.
const CIFAR100_PICKLER: &str = r#"
import os, pickle, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, n, seed in [("train", 7, 0), ("test", 3, 1)]:
    fine = [(i * 37 + seed) % 100 for i in range(n)]
    data = ((np.arange(n * 3072) * 31 + seed) % 256).astype(np.uint8).reshape(n, 3072)
    obj = {b"filenames": [b"img%d.png" % i for i in range(n)], b"batch_label": b"batch",
           b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine], b"data": data}
    with open(os.path.join(out, name), "wb") as f:
        pickle.dump(obj, f, protocol=2)
meta = {"fine_label_names": ["fine%02d" % i for i in range(100)],
        "coarse_label_names": ["coarse%02d" % i for i in range(20)]}
with open(os.path.join(out, "meta"), "wb") as f:
    pickle.dump(meta, f, protocol=2)
"#;

fn write_cifar100_python(dir: &Path) {
    let status = Command::new(common::python())
        .args(["-c", CIFAR100_PICKLER])
        .arg(dir)
        .status()
        .expect("run python (set TWINSIM_PYTHON to a Python with numpy)");
    assert!(status.success());
}

/// A tar.gz of `folder` (under `root`), members named `<folder>/<file>`.
fn tar_gz(root: &Path, folder: &str, out: &Path) {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(out).unwrap(),
        flate2::Compression::fast(),
    ));
    b.append_dir_all(folder, root.join(folder)).unwrap();
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn check_cifar100(d: &Dataset, split: CifarSplit) {
    let (n, seed) = match split {
        CifarSplit::Train => (N_TRAIN, 0),
        CifarSplit::Test => (N_TEST, 1),
    };
    let fine: Vec<u32> = (0..n).map(|i| fine_label(i, seed) as u32).collect();
    assert_eq!(d.labels, fine);
    assert_eq!(d.images.as_bytes(), expected_pixels(n, seed));
    assert_eq!(d.classes.len(), 100);
    assert_eq!(
        (d.classes[0].as_str(), d.classes[99].as_str()),
        ("fine00", "fine99")
    );
    let coarse = d.coarse.as_ref().expect("CIFAR-100 has coarse labels");
    assert_eq!(coarse.labels, fine.iter().map(|f| f / 5).collect::<Vec<_>>());
    assert_eq!(coarse.classes.len(), 20);
    assert_eq!(coarse.classes[19], "coarse19");
    assert_eq!(d.name, "cifar100");
}

#[test]
fn cifar100_binary_folder_and_tarball() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar100_binary(&tmp.path().join("cifar-100-binary"));
    let tarball = tmp.path().join("cifar-100-binary.tar.gz");
    tar_gz(tmp.path(), "cifar-100-binary", &tarball);
    for split in [CifarSplit::Train, CifarSplit::Test] {
        for path in [
            tmp.path().join("cifar-100-binary"),
            tmp.path().to_path_buf(),
            tarball.clone(),
        ] {
            let d = cifar::load(
                "cifar100",
                100,
                &path,
                split,
                Some(official_md5("cifar-100-binary.tar.gz")),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            check_cifar100(&d, split);
        }
    }
}

#[test]
fn cifar100_python_folder_and_tarball() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar100_python(&tmp.path().join("cifar-100-python"));
    let tarball = tmp.path().join("cifar-100-python.tar.gz");
    tar_gz(tmp.path(), "cifar-100-python", &tarball);
    for split in [CifarSplit::Train, CifarSplit::Test] {
        for path in [tmp.path().join("cifar-100-python"), tarball.clone()] {
            let d = cifar::load("cifar100", 100, &path, split, None)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            check_cifar100(&d, split);
        }
    }
}

// ---- a tiny pickle writer, for Python-2-style and hostile files ----

/// Appends pickle opcodes; methods are named after the opcodes they write.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.raw(b"c")
            .raw(module.as_bytes())
            .raw(b"\n")
            .raw(name.as_bytes())
            .raw(b"\n")
    }

    /// Python 2's `str`: SHORT_BINSTRING, or BINSTRING when long.
    fn string(&mut self, s: &[u8]) -> &mut Self {
        match u8::try_from(s.len()) {
            Ok(n) => self.raw(&[b'U', n]),
            Err(_) => self.raw(b"T").raw(&(s.len() as i32).to_le_bytes()),
        }
        .raw(s)
    }

    fn unicode(&mut self, s: &str) -> &mut Self {
        self.raw(b"X")
            .raw(&(s.len() as u32).to_le_bytes())
            .raw(s.as_bytes())
    }

    fn int(&mut self, i: i32) -> &mut Self {
        match i {
            0..=255 => self.raw(&[b'K', i as u8]),
            _ => self.raw(b"J").raw(&i.to_le_bytes()),
        }
    }

    /// A uint8 array of shape (rows, 3072) the way Python 2's numpy pickles it.
    fn py2_array(&mut self, rows: i32, data: &[u8]) -> &mut Self {
        self.global("numpy.core.multiarray", "_reconstruct").raw(b"q\x01");
        self.global("numpy", "ndarray")
            .int(0)
            .raw(b"\x85")
            .string(b"b")
            .raw(b"\x87R");
        self.raw(b"(").int(1).int(rows).int(3072).raw(b"\x86");
        self.global("numpy", "dtype")
            .string(b"u1")
            .int(0)
            .int(1)
            .raw(b"\x87R");
        self.raw(b"(")
            .int(3)
            .string(b"|")
            .raw(b"NNN")
            .int(-1)
            .int(-1)
            .int(0)
            .raw(b"tb");
        self.raw(b"\x89").string(data).raw(b"tb")
    }

    fn done(&mut self) -> Vec<u8> {
        self.raw(b".");
        std::mem::take(&mut self.0)
    }
}

/// A CIFAR-10 python folder whose `test_batch` is `batch`, beside a valid
/// `batches.meta`; returns the folder.
fn cifar10_py_folder(root: &Path, batch: &[u8]) -> PathBuf {
    let dir = root.join("cifar-10-batches-py");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test_batch"), batch).unwrap();
    let mut meta = Pickle::default();
    meta.raw(b"\x80\x02}q\x00(").string(b"label_names").raw(b"]");
    for c in CIFAR10_CLASSES {
        meta.string(c.as_bytes()).raw(b"a");
    }
    meta.string(b"num_vis").int(3072).raw(b"u");
    std::fs::write(dir.join("batches.meta"), meta.done()).unwrap();
    dir
}

#[test]
fn python2_style_pickles_are_read() {
    // BINSTRING / SHORT_BINSTRING everywhere, `numpy.core.multiarray`, a
    // 3,072-byte-plus string, memo references: what the official files hold.
    let data: Vec<u8> = (0..2 * 3072).map(|j| (j % 253) as u8).collect();
    let mut p = Pickle::default();
    p.raw(b"\x80\x02}q\x00(").string(b"data").py2_array(2, &data);
    p.string(b"labels").raw(b"]q\x02(").int(9).int(0).raw(b"e");
    p.string(b"batch_label").string(b"testing batch 1 of 1").raw(b"u");
    let tmp = tempfile::tempdir().unwrap();
    let dir = cifar10_py_folder(tmp.path(), &p.done());
    let d = load10(&dir, CifarSplit::Test).unwrap();
    assert_eq!(d.labels, [9, 0]);
    assert_eq!(d.images.as_bytes(), data);
    assert_eq!(d.classes, CIFAR10_CLASSES);
}

/// Loads a CIFAR-10 python folder whose test batch is `batch`.
fn load_batch(batch: &[u8]) -> Result<Dataset, DataError> {
    let tmp = tempfile::tempdir().unwrap();
    load10(&cifar10_py_folder(tmp.path(), batch), CifarSplit::Test)
}

fn refusal(result: Result<Dataset, DataError>) -> String {
    match result {
        Err(DataError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn pickle_with_a_dangerous_global_is_refused_without_running_it() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("marker");
    let command = format!("touch {}", marker.display());
    // os.system("touch marker"), protocol 2 with GLOBAL.
    let mut p = Pickle::default();
    p.raw(b"\x80\x02")
        .global("os", "system")
        .unicode(&command)
        .raw(b"\x85R.");
    let reason = refusal(load_batch(&p.0));
    assert!(reason.contains("os.system"), "{reason}");
    assert!(!marker.exists(), "the pickle's command ran");

    // builtins.eval through protocol 4's STACK_GLOBAL.
    let mut p = Pickle::default();
    p.raw(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00");
    p.raw(b"\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94");
    p.unicode(&format!("__import__('os').system('{command}')"))
        .raw(b"\x85R.");
    let reason = refusal(load_batch(&p.0));
    assert!(reason.contains("builtins.eval"), "{reason}");
    assert!(!marker.exists());

    // numpy.load, a plausible-looking numpy name, inside an otherwise valid dict.
    let mut p = Pickle::default();
    p.raw(b"\x80\x02}(")
        .string(b"data")
        .global("numpy", "load")
        .unicode("x")
        .raw(b"\x85R");
    let reason = refusal(load_batch(&p.raw(b"u").done()));
    assert!(reason.contains("numpy.load"), "{reason}");
}

#[test]
fn globals_are_refused_as_soon_as_they_are_named() {
    // The rest of the file is garbage: the refusal comes from reading the
    // GLOBAL, before anything after it is looked at.
    let mut p = Pickle::default();
    p.raw(b"\x80\x02").global("subprocess", "Popen").raw(b"\xff\xff");
    let reason = refusal(load_batch(&p.0));
    assert!(reason.contains("subprocess.Popen"), "{reason}");
}

#[test]
fn unknown_opcode_is_refused() {
    // INST ('i'), which imports and calls in one opcode.
    let reason = refusal(load_batch(b"\x80\x02(ios\nsystem\n."));
    assert!(reason.contains("opcode 0x69"), "{reason}");
    let reason = refusal(load_batch(b"\x80\x02\xfe."));
    assert!(reason.contains("opcode 0xfe"), "{reason}");
}

#[test]
fn deeply_nested_containers_are_refused() {
    // 100,000 nested 1-tuples: read naively, freeing them would recurse
    // 100,000 deep and overflow the stack.
    let mut p = Pickle::default();
    p.raw(b"\x80\x02)").raw(&[0x85; 100_000]);
    let reason = refusal(load_batch(&p.done()));
    assert!(reason.contains("nested more than"), "{reason}");
}

#[test]
fn arrays_other_than_uint8_are_refused() {
    let mut p = Pickle::default();
    p.raw(b"\x80\x02}(").string(b"data");
    p.global("numpy.core.multiarray", "_reconstruct")
        .global("numpy", "ndarray");
    p.int(0)
        .raw(b"\x85")
        .string(b"b")
        .raw(b"\x87R(")
        .int(1)
        .int(1)
        .int(3072)
        .raw(b"\x86");
    p.global("numpy", "dtype")
        .string(b"f4")
        .int(0)
        .int(1)
        .raw(b"\x87R");
    let reason = refusal(load_batch(&p.done()));
    assert!(reason.contains("dtype 'f4' is not uint8"), "{reason}");
}

#[test]
fn codecs_encode_only_accepts_latin1() {
    let mut p = Pickle::default();
    p.raw(b"\x80\x02")
        .global("_codecs", "encode")
        .unicode("data")
        .unicode("rot13")
        .raw(b"\x86R.");
    let reason = refusal(load_batch(&p.0));
    assert!(reason.contains("rot13"), "{reason}");
    // Text that latin1 cannot encode back to bytes: '€', and invalid UTF-8.
    for text in ["\u{20ac}".as_bytes(), b"\xc3"] {
        let mut p = Pickle::default();
        p.raw(b"\x80\x02").global("_codecs", "encode");
        p.raw(b"X").raw(&(text.len() as u32).to_le_bytes()).raw(text);
        p.unicode("latin1").raw(b"\x86R.");
        let reason = refusal(load_batch(&p.0));
        assert!(reason.contains("not UTF-8 below U+0100"), "{reason}");
    }
}

#[test]
fn refusal_inside_a_tarball_names_the_tarball_and_member() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = Pickle::default();
    p.raw(b"\x80\x02")
        .global("os", "system")
        .unicode("true")
        .raw(b"\x85R.");
    cifar10_py_folder(tmp.path(), &p.0);
    let tarball = tmp.path().join("cifar-10-python.tar.gz");
    tar_gz(tmp.path(), "cifar-10-batches-py", &tarball);
    match load10(&tarball, CifarSplit::Test) {
        Err(DataError::Refused { path, reason }) => {
            assert_eq!(path, tarball);
            assert!(reason.contains("cifar-10-batches-py/test_batch"), "{reason}");
            assert!(reason.contains("os.system"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn data_rows_must_match_the_labels() {
    let data = vec![7u8; 2 * 3072];
    let mut p = Pickle::default();
    p.raw(b"\x80\x02}(").string(b"data").py2_array(2, &data);
    p.string(b"labels").raw(b"](").int(1).raw(b"eu");
    match load_batch(&p.done()) {
        Err(DataError::Corrupt { reason, .. }) => {
            assert!(reason.contains("2 images but 1 labels"), "{reason}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn truncated_pickle_is_corrupt() {
    let data = vec![7u8; 3072];
    let mut p = Pickle::default();
    p.raw(b"\x80\x02}(").string(b"data").py2_array(1, &data);
    let whole = p.raw(b"u").done();
    let cut = &whole[..whole.len() - 100];
    assert!(matches!(load_batch(cut), Err(DataError::Corrupt { .. })));
}

// ---- damaged binary files ----

/// A CIFAR-10 binary folder with `test_batch.bin` and the class-name file.
fn cifar10_bin_folder(root: &Path, batch: &[u8], names: &str) -> PathBuf {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test_batch.bin"), batch).unwrap();
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
    dir
}

fn names10() -> String {
    CIFAR10_CLASSES.join("\n") + "\n\n"
}

#[test]
fn binary_records_must_be_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = cifar10_bin_folder(tmp.path(), &[0u8; 3073 * 2 + 5], &names10());
    match load10(&dir, CifarSplit::Test) {
        Err(DataError::Corrupt { path, reason }) => {
            assert_eq!(path, dir.join("test_batch.bin"));
            assert!(reason.contains("3073-byte records"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn binary_labels_and_names_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut batch = vec![0u8; 3073 * 2];
    batch[3073] = 10;
    let dir = cifar10_bin_folder(tmp.path(), &batch, &names10());
    let err = load10(&dir, CifarSplit::Test).unwrap_err();
    // The batch file at fault is named.
    assert!(
        matches!(&err, DataError::Corrupt { path, reason }
            if reason.contains("label 10") && path.ends_with("test_batch.bin")),
        "{err:?}"
    );

    batch[3073] = 9;
    let dir = cifar10_bin_folder(tmp.path(), &batch, "airplane\nautomobile\n");
    let err = load10(&dir, CifarSplit::Test).unwrap_err();
    assert!(
        matches!(&err, DataError::Corrupt { reason, .. } if reason.contains("2 class names")),
        "{err:?}"
    );

    let dir = cifar10_bin_folder(tmp.path(), &batch, &names10().replace('\n', "\r\n"));
    let d = load10(&dir, CifarSplit::Test).unwrap();
    assert_eq!((d.labels[1], d.classes[9].as_str()), (9, "truck"));
}

#[test]
fn tarball_missing_a_batch_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    cifar10_bin_folder(tmp.path(), &[0u8; 3073], &names10());
    let tarball = tmp.path().join("cifar-10-binary.tar.gz");
    tar_gz(tmp.path(), "cifar-10-batches-bin", &tarball);
    assert_eq!(load10(&tarball, CifarSplit::Test).unwrap().len(), 1);
    match load10(&tarball, CifarSplit::Train) {
        Err(DataError::Corrupt { path, reason }) => {
            assert_eq!(path, tarball);
            assert!(
                reason.contains("cifar-10-batches-bin/data_batch_1.bin: is missing"),
                "{reason}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn folder_without_cifar_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load10(tmp.path(), CifarSplit::Test).unwrap_err();
    assert!(
        matches!(&err, DataError::Corrupt { reason, .. } if reason.contains("cifar-10-batches-bin")),
        "{err:?}"
    );
    let err = cifar::load("cifar10", 12, tmp.path(), CifarSplit::Test, None).unwrap_err();
    assert!(matches!(err, DataError::Invalid { .. }));
}
