//! Option values, from a TOML file (`train --config`) and from the command
//! line: out-of-range numbers, NaN, unknown keys, special files. Each gets
//! a range check with a message that names the option, never a silent
//! default, a panic or an allocation abort.

use std::ffi::OsString;
use std::path::Path;

use super::files;
use super::fixture::Fixture;
use super::harness::{Case, Outcome};

/// The quick training every case starts from: options that a case
/// replaces by name (clap refuses a flag given twice).
const TRAIN: [(&str, &str); 6] = [
    ("--dataset", "mnist-sample"),
    ("--arch", "cnn"),
    ("--per-class", "20"),
    ("--epochs", "1"),
    ("--batch-size", "40"),
    ("--per-class-batch", "4"),
];

/// `train` with [`TRAIN`] changed by `over` (an empty value drops the
/// flag), writing to `rw/<out>`.
fn train(fx: &Fixture, out: &str, over: &[(&str, &str)]) -> Vec<OsString> {
    let mut args = args!["train"];
    for (flag, value) in TRAIN {
        match over.iter().find(|(f, _)| *f == flag) {
            Some((_, "")) => {}
            Some((_, v)) => args.extend(args![flag, v]),
            None => args.extend(args![flag, value]),
        }
    }
    for (flag, value) in over.iter().filter(|(f, _)| !TRAIN.iter().any(|(t, _)| t == f)) {
        // `--lr=-1` spelled as one argument, as a user must for a negative value.
        args.push(format!("{flag}={value}").into());
    }
    args.extend(args!["--out", fx.rw.join(out)]);
    args
}

/// The config-file cases: `train --config FILE` with the quick options
/// written in the file, one of them hostile.
fn config_cases(fx: &Fixture) -> Vec<Case> {
    let dir = fx.ro.join("configs");
    let base = "arch = \"cnn\"\nepochs = 1\nbatch-size = 40\nper-class-batch = 4\n";
    let toml = |name: &str, text: &str| files::write(&dir.join(name), format!("{base}{text}").as_bytes());
    let with_config = |case: &str, file: &Path| {
        let mut args = train(
            fx,
            &format!("config-{case}"),
            &[
                ("--arch", ""),
                ("--epochs", ""),
                ("--batch-size", ""),
                ("--per-class-batch", ""),
            ],
        );
        args.extend(args!["--config", file]);
        args
    };
    let hostile: Vec<(&str, std::path::PathBuf, &str, bool)> = vec![
        (
            "unknown-key",
            toml("unknown.toml", "learning-rate = 0.1\n"),
            "learning-rate",
            false,
        ),
        ("lr-nan", toml("lr-nan.toml", "lr = nan\n"), "lr", false),
        ("lr-inf", toml("lr-inf.toml", "lr = inf\n"), "lr", false),
        (
            "lr-negative",
            toml("lr-negative.toml", "lr = -1.0\n"),
            "lr",
            false,
        ),
        (
            "margin-nan",
            toml("margin-nan.toml", "loss = \"triplet\"\nmargin = nan\n"),
            "margin",
            false,
        ),
        (
            "wrong-type",
            toml("wrong-type.toml", "weight-decay = \"lots\"\n"),
            "weight-decay",
            false,
        ),
        (
            "embedding-dim-1e9",
            toml("dim.toml", "embedding-dim = 1000000000\n"),
            "embedding",
            false,
        ),
        ("table", toml("table.toml", "[extra]\nlr = 0.1\n"), "extra", false),
        (
            "noise",
            files::write(&dir.join("noise.toml"), &files::noise(3000, 9)),
            "noise.toml",
            false,
        ),
        ("fifo", files::fifo(&dir.join("fifo.toml")), "fifo.toml", true),
        (
            "devzero",
            Path::new("/dev/zero").to_path_buf(),
            "/dev/zero",
            false,
        ),
        ("dir", files::dir(&dir.join("dir.toml")), "dir.toml", false),
        ("missing", dir.join("missing.toml"), "missing.toml", false),
    ];
    let mut cases = Vec::new();
    for (name, file, needle, blocking) in hostile {
        let out = fx.rw.join(format!("config-{name}"));
        let case = Case::new(format!("config/{name}"), with_config(name, &file))
            .error(needle)
            .absent(out);
        cases.push(if blocking { case.blocking() } else { case });
    }
    cases
}

/// The command-line value cases.
fn flag_cases(fx: &Fixture) -> Vec<Case> {
    let t = |case: &str, over: &[(&str, &str)], needle: &str| {
        let out = fx.rw.join(format!("flag-{case}"));
        Case::new(
            format!("flag/train-{case}"),
            train(fx, &format!("flag-{case}"), over),
        )
        .error(needle)
        .absent(out)
    };
    let folder = fx.ro.join("folders").join("zoo");
    let neighbours = |o: &Outcome| {
        let v = o.json()?;
        match v["results"][0].as_array().map(Vec::len) {
            Some(n) if (1..=50).contains(&n) => Ok(()),
            _ => Err(format!("expected at most the gallery's 50 items: {v}")),
        }
    };
    let search = |k: &str| args!["--json", "search", fx.gallery, fx.a, "-k", k];
    let serve = |flag: &str| args!["serve", "--model", fx.run, "--port", "0", flag, "0"];
    let hnsw = fx.rw.join("connectivity.tsi");
    let calibrate = |far: &str| {
        let dir = fx.run_copy(&format!("calibrate-far-{far}"));
        Case::new(
            format!("flag/calibrate-far-{far}"),
            args!["calibrate", dir, "--far", far],
        )
        .error("far")
        .unchanged(dir.join("model.json"))
    };
    vec![
        t("threads-0", &[("--threads", "0")], "threads"),
        // Capped at the cores (with a word) or refused; never 100,000 threads.
        Case::new(
            "flag/train-threads-100000",
            train(fx, "flag-threads-100000", &[("--threads", "100000")]),
        )
        .either(),
        t("lr-negative", &[("--lr", "-1")], "lr"),
        t("lr-nan", &[("--lr", "NaN")], "lr"),
        t("ema-2", &[("--ema", "2")], "ema"),
        t(
            "margin-nan",
            &[("--loss", "triplet"), ("--margin", "NaN")],
            "margin",
        ),
        t(
            "per-class-batch-0",
            &[("--per-class-batch", "0")],
            "per-class-batch",
        ),
        t("batch-size-0", &[("--batch-size", "0")], "batch-size"),
        t(
            "embedding-dim-1e9",
            &[("--embedding-dim", "1000000000")],
            "embedding",
        ),
        t("val-fraction-2", &[("--val-fraction", "2")], "val-fraction"),
        t(
            "weight-decay-negative",
            &[("--weight-decay", "-1")],
            "weight-decay",
        ),
        Case::new(
            "flag/datasets-image-size-20000",
            args!["--json", "datasets", folder, "--image-size", "20000"],
        )
        .error("image-size"),
        Case::new(
            "flag/datasets-image-size-0",
            args!["--json", "datasets", folder, "--image-size", "0"],
        )
        .error("image-size"),
        Case::new(
            "flag/index-build-connectivity-1e8",
            args![
                "index",
                "build",
                "--model",
                fx.run,
                "--dataset",
                "mnist-sample:test",
                "--per-class",
                "2",
                "--backend",
                "hnsw",
                "--connectivity",
                "100000000",
                "-o",
                hnsw
            ],
        )
        .error("connectivity")
        .absent(&hnsw),
        Case::new("flag/search-k-negative", search("-1"))
            .error("-k")
            .never_says("'-- -1'"),
        // The split is what is unknown, not the dataset.
        Case::new(
            "flag/datasets-unknown-split",
            args!["datasets", "mnist-sample:bogus"],
        )
        .error("bogus")
        .never_says("unknown dataset"),
        Case::new("flag/search-k-0", search("0")).either(),
        Case::new("flag/search-k-1e12", search("1000000000000"))
            .either()
            .check(neighbours),
        Case::new(
            "flag/dedup-threshold-nan",
            args!["dedup", folder, "--model", fx.run, "--threshold", "NaN"],
        )
        .error("threshold"),
        calibrate("2"),
        calibrate("NaN"),
        Case::new(
            "flag/compare-device-cuda-99",
            args!["compare", fx.a, fx.b, "--model", fx.run, "--device", "cuda:99"],
        )
        .error("cuda"),
        Case::new(
            "flag/compare-device-bogus",
            args!["compare", fx.a, fx.b, "--model", fx.run, "--device", "bogus"],
        )
        .error("bogus"),
        // A server that accepts a zero limit never exits: these block when wrong.
        Case::new("flag/serve-max-k-0", serve("--max-k"))
            .error("max-k")
            .blocking(),
        Case::new("flag/serve-max-body-bytes-0", serve("--max-body-bytes"))
            .error("max-body-bytes")
            .blocking(),
        Case::new("flag/serve-max-files-0", serve("--max-files"))
            .error("max-files")
            .blocking(),
        Case::new("flag/serve-max-pixels-0", serve("--max-pixels"))
            .error("max-pixels")
            .blocking(),
    ]
}

/// The option-value cases.
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let mut cases = config_cases(fx);
    cases.extend(flag_cases(fx));
    cases
}
