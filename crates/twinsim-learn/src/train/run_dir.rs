//! A run directory: `config.json`, `metrics.jsonl` (one line per epoch),
//! `last.safetensors` (the checkpoint), and at the end the model
//! (`model.safetensors` + `model.json`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twinsim_data::read;

use super::config::TrainConfig;
use crate::error::{LearnError, Result};

/// What one epoch achieved; one line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Precision@1 on the held-out validation split (leave-one-out).
    pub val_precision_at_1: f64,
    /// Precision@1 of the test images against the training images, when
    /// the run was asked for it after every epoch (`--test-each-epoch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_precision_at_1: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time of the epoch's training steps, in seconds.
    pub epoch_seconds: f64,
    /// Training wall time since the run started (resumes included).
    pub train_seconds: f64,
    pub images_per_second: f64,
}

/// A run directory on disk.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates a new run directory; refuses one that already holds a run.
    pub fn create(path: &Path, config: &TrainConfig) -> Result<RunDir> {
        if path.join("config.json").exists() {
            return Err(LearnError::config(
                format!("{} already holds a run", path.display()),
                "pass another --out, or --resume it to continue",
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| twinsim_data::DataError::io(path, e))?;
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        let json = serde_json::to_vec_pretty(config).expect("config serialises");
        twinsim_data::atomic::write_bytes(&path.join("config.json"), &json)?;
        Ok(dir)
    }

    /// Opens an existing run directory and reads its configuration.
    pub fn open(path: &Path) -> Result<(RunDir, TrainConfig)> {
        let file = path.join("config.json");
        let text = read::read_file(&file, read::MAX_TEXT_BYTES).map_err(|e| {
            LearnError::bad_model(
                &file,
                format!("cannot read: {}", read::without_path(&e, &file)),
                "--resume takes a run directory made by `twinsim train`",
            )
        })?;
        let config = serde_json::from_slice(&text).map_err(|e| {
            LearnError::bad_model(
                &file,
                format!("not a twinsim run configuration: {e}"),
                "--resume takes a run directory made by `twinsim train`",
            )
        })?;
        Ok((
            RunDir {
                path: path.to_path_buf(),
            },
            config,
        ))
    }

    /// The epochs recorded in `metrics.jsonl` (none when it is missing;
    /// lines that do not parse are skipped).
    pub fn metrics(&self) -> Vec<EpochMetrics> {
        let text =
            read::read_text(&self.path.join("metrics.jsonl"), read::MAX_FILE_BYTES).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The epochs recorded so far, keeping only the first `keep` (a resumed
    /// run rewrites the lines of epochs its checkpoint did not include).
    pub fn truncate_metrics(&self, keep: usize) -> Result<Vec<EpochMetrics>> {
        let file = self.path.join("metrics.jsonl");
        let mut kept = self.metrics();
        kept.truncate(keep);
        let mut out = String::new();
        for m in &kept {
            out += &serde_json::to_string(m).expect("metrics serialise");
            out.push('\n');
        }
        twinsim_data::atomic::write_bytes(&file, out.as_bytes())?;
        Ok(kept)
    }

    /// Appends one epoch's line to `metrics.jsonl` and flushes it to disk.
    pub fn append_metrics(&self, m: &EpochMetrics) -> Result<()> {
        let file = self.path.join("metrics.jsonl");
        let io = |e| twinsim_data::DataError::io(&file, e);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(io)?;
        writeln!(f, "{}", serde_json::to_string(m).expect("metrics serialise")).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(())
    }
}
