//! The `last` checkpoint of a run: every tensor needed to continue it
//! (weights, loss parameters, optimizer moments, weight average) and the
//! progress made, in one safetensors file written atomically, so a crash at
//! any moment leaves either the previous checkpoint or the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{LearnError, Result};

/// File name of the checkpoint inside a run directory.
pub const FILE: &str = "last.safetensors";

/// The progress a checkpoint records; stored in the file as the bytes of a
/// JSON document under a reserved tensor name, since a single file is
/// what makes the write atomic.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// Epochs finished (the next epoch to run).
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Training wall time so far, in seconds.
    pub train_seconds: f64,
}

const STATE_KEY: &str = "__progress_json__";

/// Writes `tensors` and `progress` to `dir/last.safetensors` atomically.
pub fn save(dir: &Path, tensors: &[(String, Tensor)], progress: &Progress) -> Result<()> {
    let json = serde_json::to_vec(progress).expect("progress serialises");
    let mut all: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    all.push((STATE_KEY.into(), Tensor::from_slice(&json)));
    let path = dir.join(FILE);
    twinsim_data::atomic::write_bytes(&path, &crate::tensor::safetensors_bytes(&all))?;
    Ok(())
}

/// Reads `dir/last.safetensors`: its tensors by name, and the progress.
pub fn load(dir: &Path) -> Result<(HashMap<String, Tensor>, Progress)> {
    let path = dir.join(FILE);
    let bad = |reason: String| {
        LearnError::bad_model(
            &path,
            reason,
            "this run has no usable checkpoint; start a new run instead of --resume",
        )
    };
    if !path.exists() {
        return Err(bad("no checkpoint here".into()));
    }
    let mut tensors: HashMap<String, Tensor> = crate::tensor::read_safetensors(&path)
        .map_err(|e| bad(format!("unreadable checkpoint: {e}")))?
        .into_iter()
        .collect();
    let json = tensors
        .remove(STATE_KEY)
        .ok_or_else(|| bad("checkpoint lacks its progress record".into()))?;
    let bytes = Vec::<u8>::try_from(&json).map_err(|e| bad(e.to_string()))?;
    let progress = serde_json::from_slice(&bytes).map_err(|e| bad(format!("bad progress record: {e}")))?;
    Ok((tensors, progress))
}

/// Copies each saved tensor into the target of the same name (targets share
/// storage with the live variables, so this restores them in place); `file`
/// is where `saved` was read from, for errors.
pub fn restore(targets: &[(String, Tensor)], saved: &HashMap<String, Tensor>, file: &Path) -> Result<()> {
    for (name, target) in targets {
        let src = saved.get(name).ok_or_else(|| {
            LearnError::bad_model(
                file,
                format!("checkpoint lacks variable {name}"),
                "the checkpoint was made with another architecture or loss; start a new run",
            )
        })?;
        // A checkpoint written while training diverged (or damaged) would
        // resume into a model every command then refuses; refuse it here,
        // as `Model::load` refuses such weights.
        crate::tensor::check_stored(name, src).map_err(|reason| {
            LearnError::bad_model(
                file,
                reason,
                "the checkpoint is damaged, or training diverged before it was written; start a new run",
            )
        })?;
        if src.size() != target.size() {
            return Err(LearnError::bad_model(
                file,
                format!(
                    "variable {name} has shape {:?} in the checkpoint but {:?} here",
                    src.size(),
                    target.size()
                ),
                "the checkpoint was made with another architecture or embedding size; start a new run",
            ));
        }
        tch::no_grad(|| target.shallow_clone().f_copy_(src))?;
    }
    Ok(())
}

/// The path of the checkpoint in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}
