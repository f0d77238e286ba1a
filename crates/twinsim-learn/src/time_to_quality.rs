//! Time to quality: test Precision@1 against training seconds, the measure
//! runs are compared by (issue 19). A run records its own curve when trained
//! with `--test-each-epoch`; other systems' curves come from a benchmark's
//! results, the JSON lines `benchmarks/speed.sh` writes, one run a line:
//!
//! ```json
//! {"system": "pml", "dataset": "fashion-mnist", "seed": 0, "precision_at_1": 0.8788,
//!  "curve": [[109.2, 0.8411], [218.5, 0.8652], [327.0, 0.8788]]}
//! ```
//!
//! Lines without a `curve` (raw pixels train nothing) are skipped; other
//! fields are ignored.

use std::path::Path;

use serde::Deserialize;
use twinsim_data::read::{read_text, MAX_TEXT_BYTES};
use twinsim_data::DataError;

use crate::{LearnError, Result};

/// (training seconds so far, test Precision@1), one point an epoch, in
/// training order.
pub type Points = Vec<(f64, f64)>;

/// One system's line on the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityCurve {
    /// The legend entry: the system's name.
    pub name: String,
    pub points: Points,
}

/// The fields of a results line this module reads.
#[derive(Deserialize)]
struct ResultLine {
    system: String,
    dataset: Option<String>,
    #[serde(default)]
    curve: Points,
}

/// The curves in the results file `path` for `dataset` (lines naming
/// another dataset are skipped; lines naming none are kept): one per
/// system, in the order systems first appear. Where a system ran several
/// times (seeds), its line is the run whose final Precision@1 is the median
/// (the lower of the two middle ones for an even count), so one line stands
/// for each system as the tables' medians do. Refuses a file that is not
/// JSON lines (JSON has no infinity, and the `NaN` Python may write is
/// refused with its line), and a file with no curve for `dataset`.
pub fn read_results(path: &Path, dataset: &str) -> Result<Vec<QualityCurve>> {
    let text = read_text(path, MAX_TEXT_BYTES)?;
    let mut systems: Vec<(String, Vec<Points>)> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let run: ResultLine = serde_json::from_str(line)
            .map_err(|e| DataError::corrupt(path, format!("line {}: not a benchmark result ({e})", i + 1)))?;
        if run.curve.is_empty() || run.dataset.as_deref().is_some_and(|d| d != dataset) {
            continue;
        }
        match systems.iter_mut().find(|(name, _)| *name == run.system) {
            Some((_, runs)) => runs.push(run.curve),
            None => systems.push((run.system, vec![run.curve])),
        }
    }
    if systems.is_empty() {
        return Err(LearnError::config(
            format!("{} holds no time-to-quality curve for {dataset}", path.display()),
            "give the results of benchmarks/speed.sh on the run's dataset (its peers run with --test-each-epoch)",
        ));
    }
    Ok(systems
        .into_iter()
        .map(|(name, runs)| QualityCurve {
            name,
            points: median_run(runs),
        })
        .collect())
}

/// The run whose last point's Precision@1 is the median (the lower middle
/// for an even count).
fn median_run(mut runs: Vec<Points>) -> Points {
    let last = |r: &Points| r.last().map_or(0.0, |p| p.1);
    runs.sort_by(|a, b| last(a).total_cmp(&last(b)));
    runs.swap_remove((runs.len() - 1) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn each_system_is_drawn_by_its_median_run_on_the_runs_dataset() {
        let (_dir, path) = written(concat!(
            r#"{"system": "twinsim", "dataset": "fashion-mnist", "curve": [[10, 0.5], [20, 0.91]]}"#,
            "\n",
            r#"{"system": "pml", "dataset": "fashion-mnist", "curve": [[30, 0.88]]}"#,
            "\n\n",
            r#"{"system": "twinsim", "dataset": "fashion-mnist", "curve": [[11, 0.6], [21, 0.92]]}"#,
            "\n",
            r#"{"system": "twinsim", "dataset": "fashion-mnist", "curve": [[12, 0.7], [22, 0.93]]}"#,
            "\n",
            r#"{"system": "pixels", "dataset": "fashion-mnist", "precision_at_1": 0.85}"#,
            "\n",
            r#"{"system": "pml", "dataset": "mnist", "curve": [[5, 0.99]]}"#,
            "\n",
        ));
        let curves = read_results(&path, "fashion-mnist").unwrap();
        assert_eq!(
            curves,
            vec![
                QualityCurve {
                    name: "twinsim".into(),
                    points: vec![(11.0, 0.6), (21.0, 0.92)],
                },
                QualityCurve {
                    name: "pml".into(),
                    points: vec![(30.0, 0.88)],
                },
            ]
        );
        // Of two runs, the lower middle.
        let (_dir, path) = written(concat!(
            r#"{"system": "a", "curve": [[1, 0.9]]}"#,
            "\n",
            r#"{"system": "a", "curve": [[1, 0.8]]}"#,
        ));
        assert_eq!(read_results(&path, "mnist").unwrap()[0].points, vec![(1.0, 0.8)]);
    }

    #[test]
    fn a_file_that_holds_no_usable_curve_is_refused_with_its_reason() {
        let refused = |text: &str| {
            let (_dir, path) = written(text);
            read_results(&path, "cifar10").unwrap_err().to_string()
        };
        assert!(refused("not json\n").contains("line 1: not a benchmark result"));
        // What Python's json.dumps writes for a NaN; a number beyond f64.
        assert!(refused("{\"system\": \"a\", \"curve\": [[1, NaN]]}\n")
            .contains("line 1: not a benchmark result"));
        assert!(refused("\n{\"system\": \"a\", \"curve\": [[1, 1e999]]}")
            .contains("line 2: not a benchmark result"));
        assert!(
            refused(r#"{"system": "a", "dataset": "mnist", "curve": [[1, 0.9]]}"#)
                .contains("no time-to-quality curve for cifar10")
        );
        assert!(refused("").contains("no time-to-quality curve"));
    }
}
