//! Model run directories (`compare --model`) and training checkpoints
//! (`train --resume`): truncated, NaN, absurd sizes, wrong shapes, special
//! files. A broken model is an error naming its file, never "similarity
//! NaN" with exit 0, never an abort on allocation.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::files::{self, SafeTensors};
use super::fixture::Fixture;
use super::harness::Case;

/// How one damaged copy of the model is made from a fresh copy `dir`.
type Damage = Box<dyn Fn(&Path)>;

/// Rewrites `dir/model.safetensors` through `edit`.
fn weights(edit: impl Fn(&mut SafeTensors) + 'static) -> Damage {
    Box::new(move |dir: &Path| files::edit_safetensors(&dir.join("model.safetensors"), &edit))
}

/// Rewrites `dir/model.json` through `edit`.
fn card(edit: impl Fn(&mut Value) + 'static) -> Damage {
    Box::new(move |dir: &Path| files::edit_json(&dir.join("model.json"), &edit))
}

/// Replaces `dir/file` with `bytes` made from its current bytes.
fn bytes(file: &'static str, make: impl Fn(Vec<u8>) -> Vec<u8> + 'static) -> Damage {
    Box::new(move |dir: &Path| {
        let path = dir.join(file);
        let new = make(std::fs::read(&path).unwrap());
        std::fs::write(path, new).unwrap();
    })
}

/// Replaces `dir/file` with a special file made by `make(path)`.
fn special(file: &'static str, make: fn(&Path) -> PathBuf) -> Damage {
    Box::new(move |dir: &Path| {
        let path = dir.join(file);
        std::fs::remove_file(&path).unwrap();
        make(&path);
    })
}

/// Every F32 tensor set to `value` where `pick` chooses it by name.
fn fill(st: &mut SafeTensors, value: f32, pick: impl Fn(&str) -> bool) {
    for t in st
        .tensors
        .iter_mut()
        .filter(|t| t.dtype == "F32" && pick(&t.name))
    {
        let n = t.floats().len();
        t.set_floats(&vec![value; n]);
    }
}

/// The damaged models `compare` must refuse: (name, file named in the
/// error, damage).
fn damaged_models() -> Vec<(&'static str, &'static str, Damage)> {
    let devzero: fn(&Path) -> PathBuf = |p| files::symlink(Path::new("/dev/zero"), p);
    vec![
        (
            "weights-truncated",
            "model.safetensors",
            bytes("model.safetensors", |b| files::truncated(&b, b.len() / 2)),
        ),
        (
            "weights-empty",
            "model.safetensors",
            bytes("model.safetensors", |_| Vec::new()),
        ),
        (
            "weights-noise",
            "model.safetensors",
            bytes("model.safetensors", |b| files::noise(b.len(), 3)),
        ),
        (
            "weights-header-length-huge",
            "model.safetensors",
            bytes("model.safetensors", |mut b| {
                b[..8].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
                b
            }),
        ),
        (
            "weights-nan",
            "model.safetensors",
            weights(|st| fill(st, f32::NAN, |_| true)),
        ),
        (
            "weights-inf",
            "model.safetensors",
            weights(|st| fill(st, f32::INFINITY, |n| n.ends_with("weight"))),
        ),
        (
            "batchnorm-variance-negative",
            "model.safetensors",
            weights(|st| fill(st, -1.0, |n| n.ends_with("running_var"))),
        ),
        (
            "weights-wrong-shape",
            "model.safetensors",
            weights(|st| {
                let t = st.tensors.iter_mut().find(|t| t.shape.len() > 1).unwrap();
                t.shape = vec![t.shape.iter().product()];
            }),
        ),
        (
            "weights-missing-tensor",
            "model.safetensors",
            weights(|st| {
                let i = st
                    .tensors
                    .iter()
                    .position(|t| t.name.ends_with("weight"))
                    .unwrap();
                st.tensors.remove(i);
            }),
        ),
        (
            "weights-fifo",
            "model.safetensors",
            special("model.safetensors", files::fifo),
        ),
        (
            "weights-devzero",
            "model.safetensors",
            special("model.safetensors", devzero),
        ),
        (
            "weights-dir",
            "model.safetensors",
            special("model.safetensors", files::dir),
        ),
        (
            "card-input-100000x100000",
            "model.json",
            card(|c| {
                for key in ["encoder", "preprocess"] {
                    c[key]["height"] = json!(100_000);
                    c[key]["width"] = json!(100_000);
                }
            }),
        ),
        (
            "card-embedding-dim-1e9",
            "model.json",
            card(|c| c["encoder"]["embedding_dim"] = json!(1_000_000_000i64)),
        ),
        (
            "card-size-negative",
            "model.json",
            card(|c| {
                c["encoder"]["height"] = json!(-28);
                c["preprocess"]["height"] = json!(-28);
            }),
        ),
        (
            "card-three-channels-for-grey-weights",
            "model.json",
            card(|c| {
                c["encoder"]["in_channels"] = json!(3);
                c["preprocess"]["channels"] = json!(3);
                c["preprocess"]["mean"] = json!([0.1, 0.1, 0.1]);
                c["preprocess"]["std"] = json!([0.3, 0.3, 0.3]);
            }),
        ),
        (
            "card-unknown-arch",
            "model.json",
            card(|c| c["encoder"]["arch"] = json!("bogus")),
        ),
        (
            "card-format-99",
            "model.json",
            card(|c| c["format_version"] = json!(99)),
        ),
        (
            "card-noise",
            "model.json",
            bytes("model.json", |_| files::noise(2000, 4)),
        ),
        ("card-empty", "model.json", bytes("model.json", |_| Vec::new())),
        ("card-fifo", "model.json", special("model.json", files::fifo)),
        ("card-devzero", "model.json", special("model.json", devzero)),
        ("card-dir", "model.json", special("model.json", files::dir)),
        (
            "card-missing",
            "model.json",
            Box::new(|dir: &Path| std::fs::remove_file(dir.join("model.json")).unwrap()),
        ),
    ]
}

/// The checkpoints `train --resume` must refuse: (name, file named in
/// the error, damage). A finished run resumed only finishes again, so a
/// bad checkpoint reaches the written model unless it is validated.
fn damaged_checkpoints() -> Vec<(&'static str, &'static str, Damage)> {
    let checkpoint = |edit: fn(&mut SafeTensors)| -> Damage {
        Box::new(move |dir: &Path| files::edit_safetensors(&dir.join("last.safetensors"), edit))
    };
    vec![
        (
            "checkpoint-nan",
            "last.safetensors",
            checkpoint(|st| fill(st, f32::NAN, |_| true)),
        ),
        (
            "checkpoint-batchnorm-variance-negative",
            "last.safetensors",
            checkpoint(|st| fill(st, -1.0, |n| n.ends_with("running_var"))),
        ),
        (
            "checkpoint-truncated",
            "last.safetensors",
            bytes("last.safetensors", |b| files::truncated(&b, b.len() / 2)),
        ),
        (
            "checkpoint-fifo",
            "last.safetensors",
            special("last.safetensors", files::fifo),
        ),
        (
            "config-noise",
            "config.json",
            bytes("config.json", |_| files::noise(500, 5)),
        ),
        ("config-fifo", "config.json", special("config.json", files::fifo)),
    ]
}

/// Whether damaging `file` this way makes a run wait on a FIFO.
fn blocks(name: &str) -> bool {
    name.ends_with("fifo")
}

/// The model and checkpoint cases.
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, file, damage) in damaged_models() {
        let dir = fx.model_copy(name);
        damage(&dir);
        let case = Case::new(
            format!("model/{name}"),
            args!["--json", "compare", fx.a, fx.b, "--model", dir],
        )
        .error(file);
        cases.push(if blocks(name) { case.blocking() } else { case });
    }
    for (name, file, damage) in damaged_checkpoints() {
        let dir = fx.run_copy(&format!("resume-{name}"));
        damage(&dir);
        let case = Case::new(format!("resume/{name}"), args!["train", "--resume", dir]).error(file);
        cases.push(if blocks(name) { case.blocking() } else { case });
    }
    cases
}
