//! Index files (`search INDEX`, `index info INDEX`): truncated, garbage,
//! special files, and headers declaring absurd sizes and parameters.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::files::{self, SafeTensors};
use super::fixture::Fixture;
use super::harness::Case;

/// Rewrites the index description (the header's `info` JSON) of `st`.
fn edit_info(st: &mut SafeTensors, edit: impl Fn(&mut Value)) {
    let meta = st.metadata.as_mut().expect("an index has metadata");
    let mut info: Value = serde_json::from_str(meta["info"].as_str().unwrap()).unwrap();
    edit(&mut info);
    meta["info"] = Value::String(info.to_string());
}

/// The hostile index files, written into `dir` from the good `gallery`:
/// (name, path, whether opening it may block).
fn corpus(gallery: &Path, dir: &Path) -> Vec<(&'static str, PathBuf, bool)> {
    let good = std::fs::read(gallery).unwrap();
    let edited = |name: &str, edit: &dyn Fn(&mut SafeTensors)| {
        let mut st = files::read_safetensors(&good);
        edit(&mut st);
        files::write(&dir.join(name), &files::write_safetensors(&st))
    };
    let info = |name: &str, edit: fn(&mut Value)| edited(name, &|st| edit_info(st, edit));
    vec![
        (
            "truncated",
            files::write(
                &dir.join("truncated.tsi"),
                &files::truncated(&good, good.len() / 2),
            ),
            false,
        ),
        (
            "noise",
            files::write(&dir.join("noise.tsi"), &files::noise(good.len(), 6)),
            false,
        ),
        ("empty", files::write(&dir.join("empty.tsi"), &[]), false),
        ("fifo", files::fifo(&dir.join("fifo.tsi")), true),
        (
            "devzero",
            files::symlink(Path::new("/dev/zero"), &dir.join("devzero.tsi")),
            false,
        ),
        ("dir", files::dir(&dir.join("dir.tsi")), false),
        (
            "header-length-huge",
            {
                let mut b = good.clone();
                b[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
                files::write(&dir.join("header-length-huge.tsi"), &b)
            },
            false,
        ),
        (
            "dim-huge",
            info("dim-huge.tsi", |i| i["dim"] = json!(1u64 << 60)),
            false,
        ),
        (
            "count-huge",
            edited("count-huge.tsi", &|st| {
                for t in st.tensors.iter_mut() {
                    if t.name == "labels" {
                        t.shape = vec![1 << 40];
                    }
                }
            }),
            false,
        ),
        (
            "labels-beyond-classes",
            edited("labels-beyond-classes.tsi", &|st| {
                let labels = st.tensors.iter_mut().find(|t| t.name == "labels").unwrap();
                labels.data = vec![0xff; labels.data.len()];
            }),
            false,
        ),
        (
            "embeddings-nan",
            edited("embeddings-nan.tsi", &|st| {
                let e = st.tensors.iter_mut().find(|t| t.name == "embeddings").unwrap();
                let len = e.floats().len();
                e.set_floats(&vec![f32::NAN; len]);
            }),
            false,
        ),
        (
            "hnsw-connectivity-1e8",
            info("hnsw-connectivity-1e8.tsi", |i| {
                i["backend"] = json!({"kind": "hnsw", "connectivity": 100_000_000u64,
                                      "expansion_add": 128, "expansion_search": 64})
            }),
            false,
        ),
        (
            "hnsw-expansion-search-huge",
            info("hnsw-expansion-search-huge.tsi", |i| {
                i["backend"] = json!({"kind": "hnsw", "connectivity": 16,
                                      "expansion_add": 128, "expansion_search": 1u64 << 40})
            }),
            false,
        ),
        (
            "model-dir-devzero",
            info("model-dir-devzero.tsi", |i| i["model_dir"] = json!("/dev/zero")),
            false,
        ),
        (
            "no-classes",
            info("no-classes.tsi", |i| i["classes"] = json!([])),
            false,
        ),
        (
            "sources-short",
            edited("sources-short.tsi", &|st| {
                let s = st.tensors.iter_mut().find(|t| t.name == "sources").unwrap();
                s.data = vec![b'x', 0];
                s.shape = vec![2];
            }),
            false,
        ),
    ]
}

/// The index cases: every hostile file searched, and described by
/// `index info` where that reads the file.
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let dir = fx.ro.join("indexes");
    let mut cases = Vec::new();
    for (name, path, blocking) in corpus(&fx.gallery, &dir) {
        let needle = path.file_name().unwrap().to_string_lossy().into_owned();
        let search = Case::new(
            format!("index/search/{name}"),
            args!["--json", "search", path, fx.a],
        );
        let info = Case::new(
            format!("index/info/{name}"),
            args!["--json", "index", "info", path],
        );
        // These files are whole: what is wrong is a model folder or search
        // parameters, which only a search uses, so `info` may describe them.
        let (search, info) = match name {
            "model-dir-devzero" => (search.error("/dev/zero"), info.either()),
            // `search` has no `--backend`: a hint at it misleads.
            n if n.starts_with("hnsw") => (search.error(&needle).never_says("--backend"), info.either()),
            _ => (search.error(&needle), info.error(&needle)),
        };
        for case in [search, info] {
            cases.push(if blocking { case.blocking() } else { case });
        }
    }
    cases
}
