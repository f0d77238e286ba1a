//! Datasets under an explicit `--data-dir`: IDX files truncated, of the
//! wrong magic, of absurd counts, gzip bombs; CIFAR binary batches
//! truncated or out of range; CIFAR python tarballs with pickles that
//! would run commands, members that leave the folder or are links, and
//! bombs; special files in place of data files. A named folder whose
//! dataset is broken is an error naming the file, never a silent fall-back
//! to the embedded sample, and nothing in it is ever executed. Unions of
//! datasets meet the same inputs as one of their parts.

use std::path::{Path, PathBuf};

use super::files;
use super::fixture::Fixture;
use super::harness::Case;
use crate::common::CIFAR10_CLASSES;

/// The four MNIST files, test files last.
const MNIST: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// An IDX header: magic (type 0x08, `dims` dimensions) and sizes.
fn idx_header(dims: u8, sizes: &[u32]) -> Vec<u8> {
    let mut h = vec![0, 0, 8, dims];
    for s in sizes {
        h.extend(s.to_be_bytes());
    }
    h
}

/// A `--data-dir` holding `mnist/` whose test file `target` (one of
/// [`MNIST`]) is replaced by what `make` puts at the path it is given (the
/// name without `.gz` when `plain`); the other three are the real files
/// when `../shared/data` has them.
fn mnist_dir(fx: &Fixture, case: &str, target: &str, plain: bool, make: impl FnOnce(&Path)) -> PathBuf {
    let root = fx.ro.join("data").join(case);
    let dir = root.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(shared) = &fx.shared_mnist {
        for name in MNIST.iter().filter(|&&n| n != target) {
            files::symlink(&shared.join(name), &dir.join(name));
        }
    }
    let name = if plain {
        target.trim_end_matches(".gz")
    } else {
        target
    };
    make(&dir.join(name));
    root
}

/// A labels file that declares 10,000 labels and holds 10.
fn truncated_labels() -> Vec<u8> {
    [idx_header(1, &[10_000]), vec![1; 10]].concat()
}

/// What the error about MNIST's `target` file must name: the file, or,
/// without the real partner files, which the error may name instead, MNIST.
fn named_in_error(fx: &Fixture, target: &str) -> String {
    match fx.shared_mnist {
        Some(_) => target.trim_end_matches(".gz").to_string(),
        None => "mnist".to_string(),
    }
}

/// The IDX cases: `datasets mnist:test --data-dir DIR` on each, and
/// `train` on two, which must not fall back to the sample either.
fn idx_cases(fx: &Fixture) -> Vec<Case> {
    let (images, labels) = (MNIST[2], MNIST[3]);
    let write = |bytes: Vec<u8>| move |p: &Path| drop(files::write(p, &bytes));
    type Make = Box<dyn FnOnce(&Path)>;
    let hostile: Vec<(&str, &str, bool, Make, bool)> = vec![
        (
            "labels-truncated",
            labels,
            true,
            Box::new(write(truncated_labels())),
            false,
        ),
        (
            "labels-wrong-magic",
            labels,
            true,
            Box::new(write([idx_header(3, &[10_000]), vec![1; 10_000]].concat())),
            false,
        ),
        (
            "images-absurd-count",
            images,
            true,
            Box::new(write(
                [idx_header(3, &[u32::MAX, 65_535, 65_535]), vec![0; 100]].concat(),
            )),
            false,
        ),
        (
            "images-gzip-bomb-1.2gb",
            images,
            false,
            Box::new(|p: &Path| {
                drop(files::write(
                    p,
                    &files::gzip_zeros(&idx_header(3, &[10_000, 28, 28]), 1_200_000_000),
                ))
            }),
            false,
        ),
        (
            "labels-fifo",
            labels,
            false,
            Box::new(|p: &Path| drop(files::fifo(p))),
            true,
        ),
        (
            "labels-dir",
            labels,
            false,
            Box::new(|p: &Path| drop(files::dir(p))),
            false,
        ),
        ("labels-missing", labels, false, Box::new(|_: &Path| {}), false),
        (
            "labels-devzero",
            labels,
            true,
            Box::new(|p: &Path| drop(files::symlink(Path::new("/dev/zero"), p))),
            false,
        ),
        (
            "labels-dangling-link",
            labels,
            false,
            Box::new(|p: &Path| drop(files::symlink(&p.with_extension("nowhere"), p))),
            false,
        ),
    ];
    let mut cases = Vec::new();
    for (name, target, plain, make, blocking) in hostile {
        let dir = mnist_dir(fx, &format!("idx-{name}"), target, plain, make);
        let needle = named_in_error(fx, target);
        let case = Case::new(
            format!("data/idx/{name}"),
            args!["--json", "datasets", "mnist:test", "--data-dir", dir],
        )
        .error(&needle);
        cases.push(if blocking { case.blocking() } else { case });
        if matches!(name, "labels-fifo" | "labels-missing") {
            let out = fx.rw.join(format!("train-{name}"));
            let case = Case::new(
                format!("data/idx/train-{name}"),
                args![
                    "train",
                    "--dataset",
                    "mnist",
                    "--data-dir",
                    dir,
                    "--epochs",
                    "1",
                    "--per-class",
                    "10",
                    "--out",
                    out
                ],
            )
            .error(&needle)
            .absent(out);
            cases.push(if blocking { case.blocking() } else { case });
        }
    }
    cases
}

/// `n` CIFAR-10 binary records, labels cycling through the classes.
fn records(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let mut r = vec![(i % 10) as u8];
            r.extend(files::noise(3072, i as u64));
            r
        })
        .collect()
}

/// A valid CIFAR-10 `batches.meta` pickle: `{"label_names": [...], "num_vis": 3072}`.
fn meta_pickle() -> Vec<u8> {
    let short = |p: &mut Vec<u8>, s: &str| {
        p.push(b'U');
        p.push(s.len() as u8);
        p.extend(s.as_bytes());
    };
    let mut p = b"\x80\x02}(".to_vec();
    short(&mut p, "label_names");
    p.extend(b"](");
    for c in CIFAR10_CLASSES {
        short(&mut p, c);
    }
    p.push(b'e');
    short(&mut p, "num_vis");
    p.push(b'J');
    p.extend(3072i32.to_le_bytes());
    p.extend(b"u.");
    p
}

/// The CIFAR binary cases: an extracted `cifar-10-batches-bin` of small
/// batches, one of its files replaced.
fn binary_cases(fx: &Fixture) -> Vec<Case> {
    let make = |case: &str, file: &str, hostile: &dyn Fn(&Path)| {
        let root = fx.ro.join("data").join(format!("cifar-bin-{case}"));
        let dir = root.join("cifar10").join("cifar-10-batches-bin");
        for i in 1..=5 {
            files::write(&dir.join(format!("data_batch_{i}.bin")), &records(10));
        }
        files::write(&dir.join("test_batch.bin"), &records(10));
        files::write(
            &dir.join("batches.meta.txt"),
            CIFAR10_CLASSES.join("\n").as_bytes(),
        );
        if !file.is_empty() {
            std::fs::remove_file(dir.join(file)).unwrap();
            hostile(&dir.join(file));
        }
        root
    };
    let datasets = |dir: &Path| args!["--json", "datasets", "cifar10:test", "--data-dir", dir];
    let bytes = |b: Vec<u8>| move |p: &Path| drop(files::write(p, &b));
    let mut out_of_range = records(10);
    out_of_range[0] = 200;
    let test = "test_batch.bin";
    let meta = "batches.meta.txt";
    vec![
        Case::new("data/cifar-bin/good", datasets(&make("good", "", &|_| {}))),
        Case::new(
            "data/cifar-bin/test-truncated",
            datasets(&make(
                "truncated",
                test,
                &bytes(files::truncated(&records(11), 10 * 3073 + 1500)),
            )),
        )
        .error(test),
        Case::new(
            "data/cifar-bin/test-empty",
            datasets(&make("empty", test, &bytes(Vec::new()))),
        )
        .error(test),
        Case::new(
            "data/cifar-bin/label-out-of-range",
            datasets(&make("label-200", test, &bytes(out_of_range))),
        )
        .error(test),
        Case::new(
            "data/cifar-bin/test-fifo",
            datasets(&make("fifo", test, &|p| drop(files::fifo(p)))),
        )
        .error(test)
        .blocking(),
        Case::new(
            "data/cifar-bin/test-dir",
            datasets(&make("dir", test, &|p| drop(files::dir(p)))),
        )
        .error(test),
        Case::new(
            "data/cifar-bin/test-devzero",
            datasets(&make("devzero", test, &|p| {
                drop(files::symlink(Path::new("/dev/zero"), p))
            })),
        )
        .error(test),
        Case::new(
            "data/cifar-bin/meta-not-utf8",
            datasets(&make("meta-noise", meta, &bytes(vec![0xff; 64]))),
        )
        .error(meta),
        Case::new(
            "data/cifar-bin/meta-fifo",
            datasets(&make("meta-fifo", meta, &|p| drop(files::fifo(p)))),
        )
        .error(meta)
        .blocking(),
    ]
}

/// The CIFAR python tarball cases: `cifar10/cifar-10-python.tar.gz` (or
/// the binary one) holding hostile pickles and members.
fn tarball_cases(fx: &Fixture) -> Vec<Case> {
    let py = "cifar-10-batches-py";
    let tarball = |case: &str, name: &str, bytes: &[u8]| {
        let root = fx.ro.join("data").join(format!("tar-{case}"));
        files::write(&root.join("cifar10").join(name), bytes);
        root
    };
    let python = |case: &str, members: Vec<Vec<u8>>| {
        let mut all = members;
        all.push(files::tar_file(&format!("{py}/batches.meta"), &meta_pickle()));
        tarball(case, "cifar-10-python.tar.gz", &files::tar_gz(&all))
    };
    let datasets = |dir: &Path| args!["--json", "datasets", "cifar10:test", "--data-dir", dir];
    let marker = |name: &str| fx.rw.join(format!("pickle-ran-{name}"));
    let (m1, m2) = (marker("os-system"), marker("builtins-exec"));
    let os_system = files::evil_pickle("os", "system", &format!("touch {}", m1.display()));
    let exec = files::evil_pickle_v4(
        "builtins",
        "exec",
        &format!("open({:?}, 'w')", m2.display().to_string()),
    );
    let escaped = "hostile-escaped-marker";
    let dotdot = python(
        "dotdot",
        vec![
            files::tar_file(&format!("../../{escaped}"), b"escaped"),
            files::tar_file(&format!("{py}/test_batch"), &os_system),
        ],
    );
    let absolute = format!("/tmp/twinsim-hostile-absolute-{}", std::process::id());
    let link = |kind: u8| {
        vec![files::tar_member(
            &format!("{py}/test_batch"),
            kind,
            "/etc/passwd",
            0,
            &[],
        )]
    };
    let declared = vec![files::tar_member(
        &format!("{py}/test_batch"),
        b'0',
        "",
        3 << 30,
        &[0; 512],
    )];
    // 200 MB of zeros as one member: decompressed within bounds, and not
    // a whole number of records.
    let bomb_header = files::tar_member("cifar-10-batches-bin/test_batch.bin", b'0', "", 200_000_001, &[]);
    let bomb = files::gzip_zeros(&bomb_header, 200_000_001usize.next_multiple_of(512) + 1024);
    let whole = files::tar_gz(&[files::tar_file(&format!("{py}/test_batch"), &os_system)]);
    let name_py = "cifar-10-python.tar.gz";
    vec![
        Case::new(
            "data/tar/pickle-os-system",
            datasets(&python(
                "os-system",
                vec![files::tar_file(&format!("{py}/test_batch"), &os_system)],
            )),
        )
        .error(name_py)
        .absent(&m1),
        Case::new(
            "data/tar/pickle-stack-global-exec",
            datasets(&python(
                "exec",
                vec![files::tar_file(&format!("{py}/test_batch"), &exec)],
            )),
        )
        .error(name_py)
        .absent(&m2),
        Case::new("data/tar/member-dotdot", datasets(&dotdot))
            .error(name_py)
            .absent(dotdot.join(escaped))
            .absent(dotdot.parent().unwrap().join(escaped))
            .absent(fx.rw.parent().unwrap().join(escaped)),
        Case::new(
            "data/tar/member-absolute",
            datasets(&python("absolute", vec![files::tar_file(&absolute, b"escaped")])),
        )
        .error(name_py)
        .absent(&absolute),
        Case::new(
            "data/tar/member-symlink",
            datasets(&python("symlink", link(b'2'))),
        )
        .error(name_py),
        Case::new(
            "data/tar/member-hardlink",
            datasets(&python("hardlink", link(b'1'))),
        )
        .error(name_py),
        Case::new(
            "data/tar/member-declares-3gb",
            datasets(&python("declares-3gb", declared)),
        )
        .error(name_py),
        Case::new(
            "data/tar/gzip-bomb-200mb",
            datasets(&tarball("bomb", "cifar-10-binary.tar.gz", &bomb)),
        )
        .error("cifar-10-binary.tar.gz"),
        Case::new(
            "data/tar/truncated",
            datasets(&tarball(
                "truncated",
                name_py,
                &files::truncated(&whole, whole.len() / 2),
            )),
        )
        .error(name_py),
        Case::new(
            "data/tar/noise",
            datasets(&tarball("noise", name_py, &files::noise(4096, 7))),
        )
        .error(name_py),
        Case::new("data/tar/fifo", {
            let root = fx.ro.join("data").join("tar-fifo");
            files::fifo(&root.join("cifar10").join(name_py));
            datasets(&root)
        })
        .error(name_py)
        .blocking(),
    ]
}

/// The dataset cases.
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let mut cases = idx_cases(fx);
    cases.extend(binary_cases(fx));
    cases.extend(tarball_cases(fx));
    cases.extend(union_cases(fx));
    cases
}

/// Unions (`--dataset A+B`): a malformed list, a part that is a special
/// file, and a broken MNIST inside a union, which must be an error naming
/// its file, not the embedded sample. `train --dry-run`, so a wrong answer
/// would be a plan, never a training run.
fn union_cases(fx: &Fixture) -> Vec<Case> {
    let dry = |name: &str, dataset: &std::ffi::OsStr, data_dir: &Path| {
        Case::new(
            format!("data/union/{name}"),
            args![
                "--json",
                "train",
                "--dataset",
                dataset,
                "--data-dir",
                data_dir,
                "--dry-run"
            ],
        )
    };
    let empty = files::dir(&fx.ro.join("data").join("union-empty"));
    let fifo = files::fifo(&fx.ro.join("data").join("union-fifo"));
    let part = |p: &Path| {
        let mut d = std::ffi::OsString::from("mnist-sample+");
        d.push(p);
        d
    };
    let broken = mnist_dir(fx, "union-broken-mnist", MNIST[3], true, |p| {
        drop(files::write(p, &truncated_labels()))
    });
    let needle = named_in_error(fx, MNIST[3]);
    vec![
        dry("empty-part", "mnist-sample++cifar10".as_ref(), &empty).error("empty part"),
        dry("twice", "mnist-sample+mnist-sample".as_ref(), &empty).error("named 'mnist-sample'"),
        dry("dev-zero", &part("/dev/zero".as_ref()), &empty).error("/dev/zero"),
        dry("fifo", &part(&fifo), &empty).error("union-fifo").blocking(),
        dry("broken-mnist", "mnist+fashion-mnist".as_ref(), &broken).error(&needle),
    ]
}
