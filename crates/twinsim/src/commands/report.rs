//! `twinsim report`: report.html and its pictures for a run.

use twinsim_learn::report::{self, ReportOptions};
use twinsim_learn::run::Run;
use twinsim_learn::time_to_quality;

use crate::cli::{GlobalArgs, ReportArgs};
use crate::report::print_json;

/// Runs `twinsim report`.
pub fn run(global: &GlobalArgs, args: &ReportArgs) -> anyhow::Result<()> {
    // The run's own report folder is the run's to rewrite; a folder the
    // user names follows the output policy.
    if let Some(out) = &args.out {
        crate::output::check_folder(out, args.force)?;
    }
    let run = Run::open(&args.run_dir, super::device(&args.device)?)?;
    let mut compare = Vec::new();
    for results in &args.compare {
        compare.extend(time_to_quality::read_results(results, &run.config.dataset)?);
    }
    let opts = ReportOptions {
        out: args.out.clone().unwrap_or_else(|| args.run_dir.join("report")),
        dataset: args.dataset.clone(),
        map_points: args.map_points,
        compare,
        ..ReportOptions::default()
    };
    let page = report::write(&run, &opts, &super::data_options(global))?;
    if global.json {
        return print_json(&serde_json::json!({ "report": page }));
    }
    println!("report written to {}", page.display());
    Ok(())
}
