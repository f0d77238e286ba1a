//! Outputs that already exist: every command that writes a file refuses
//! an existing one unless `--force` is given, never writes inside a run
//! directory except the files that run owns, and leaves the existing
//! file's bytes as they were when it refuses.

use std::path::{Path, PathBuf};

use super::files;
use super::fixture::Fixture;
use super::harness::{Case, Outcome};

/// A scratch folder `rw/out-<name>` for one case.
fn scratch(fx: &Fixture, name: &str) -> PathBuf {
    let dir = fx.rw.join(format!("out-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The file at `path` must now start with `magic` (it was rewritten).
fn starts_with(path: PathBuf, magic: &'static [u8]) -> impl Fn(&Outcome) -> Result<(), String> + Send + Sync {
    move |_: &Outcome| match std::fs::read(&path) {
        Ok(b) if b.starts_with(magic) => Ok(()),
        _ => Err(format!("{} was not rewritten", path.display())),
    }
}

/// What an error about the run directory `dir` must mention: its name
/// (or the name of the file inside it, which comes after).
fn run_name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// The output cases.
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let good_npz = fx.ro.join("npz").join("good.npz");
    let existing = |name: &str, file: &str| {
        let path = scratch(fx, name).join(file);
        files::write(&path, b"a file the user wants to keep\n")
    };
    let search_grid = |grid: &Path| args!["search", fx.gallery, fx.a, "-k", "3", "--grid", grid];
    let build = |out: &Path| {
        args![
            "index",
            "build",
            "--model",
            fx.run,
            "--dataset",
            "mnist-sample:test",
            "--per-class",
            "2",
            "-o",
            out
        ]
    };
    let fid = |save: &Path| {
        args![
            "fid",
            "mnist-sample:test",
            good_npz,
            "--model",
            fx.run,
            "--save-stats",
            save
        ]
    };
    let with_force = |mut args: Vec<std::ffi::OsString>| {
        args.push("--force".into());
        args
    };
    let mut cases = Vec::new();

    let copy = fx.run_copy("out-grid-weights");
    let weights = copy.join("model.safetensors");
    cases.push(
        Case::new("output/search-grid-onto-model-weights", search_grid(&weights))
            .error(run_name(&copy))
            .unchanged(&weights),
    );
    let png = existing("grid", "grid.png");
    cases.push(
        Case::new("output/search-grid-onto-existing-file", search_grid(&png))
            .error("grid.png")
            .unchanged(&png),
    );
    let png = existing("grid-force", "grid.png");
    cases.push(
        Case::new("output/search-grid-force", with_force(search_grid(&png)))
            .check(starts_with(png, b"\x89PNG")),
    );
    let index_copy = scratch(fx, "grid-index").join("gallery.tsi");
    std::fs::copy(&fx.gallery, &index_copy).unwrap();
    cases.push(
        Case::new(
            "output/search-grid-onto-its-own-index",
            args!["search", index_copy, fx.a, "--grid", index_copy],
        )
        .error("gallery.tsi")
        .unchanged(&index_copy),
    );

    let copy = fx.run_copy("out-index-weights");
    let weights = copy.join("model.safetensors");
    cases.push(
        Case::new("output/index-build-onto-model-weights", build(&weights))
            .error(run_name(&copy))
            .unchanged(&weights),
    );
    let copy = fx.run_copy("out-index-in-run");
    let inside = copy.join("gallery.tsi");
    cases.push(
        Case::new("output/index-build-inside-a-run-directory", build(&inside))
            .error(run_name(&copy))
            .absent(&inside),
    );
    let tsi = existing("index", "existing.tsi");
    cases.push(
        Case::new("output/index-build-onto-existing-file", build(&tsi))
            .error("existing.tsi")
            .unchanged(&tsi),
    );
    let tsi = existing("index-force", "existing.tsi");
    // A safetensors file starts with its header length; the header with `{`.
    let header_is_json = {
        let tsi = tsi.clone();
        move |_: &Outcome| match std::fs::read(&tsi) {
            Ok(b) if b.len() > 9 && b[8] == b'{' => Ok(()),
            _ => Err(format!("{} was not rewritten as an index", tsi.display())),
        }
    };
    cases.push(Case::new("output/index-build-force", with_force(build(&tsi))).check(header_is_json));

    let copy = fx.run_copy("out-save-stats-card");
    let card = copy.join("model.json");
    cases.push(
        Case::new("output/fid-save-stats-onto-model-card", fid(&card))
            .error(run_name(&copy))
            .unchanged(&card),
    );
    let npz = existing("save-stats", "stats.npz");
    cases.push(
        Case::new("output/fid-save-stats-onto-existing-file", fid(&npz))
            .error("stats.npz")
            .unchanged(&npz),
    );

    let emb = scratch(fx, "embed").join("emb");
    let npy = files::write(&emb.join("embeddings.npy"), b"earlier embeddings");
    cases.push(
        Case::new(
            "output/embed-onto-existing-folder",
            args!["embed", "--model", fx.run, fx.a, "-o", emb],
        )
        .error("emb")
        .unchanged(&npy),
    );
    let copy = fx.run_copy("out-train-onto-run");
    let mut train = args![
        "train",
        "--dataset",
        "mnist-sample",
        "--per-class",
        "20",
        "--epochs",
        "1"
    ];
    train.extend(args![
        "--batch-size",
        "40",
        "--per-class-batch",
        "4",
        "--arch",
        "cnn",
        "--out",
        copy
    ]);
    cases.push(
        Case::new("output/train-onto-existing-run", train)
            .error(run_name(&copy))
            .unchanged(copy.join("model.safetensors"))
            .unchanged(copy.join("model.json"))
            .unchanged(copy.join("last.safetensors")),
    );
    cases
}
