//! `twinsim calibrate`: fit the model's similarity mapping and threshold
//! again, on held-out pairs or on other data, and store them in the model.

use twinsim_data::{DatasetSpec, SplitName};
use twinsim_learn::calibration::{self, CalibrateOptions, ThresholdRule};
use twinsim_learn::run::{Classes, Run};

use crate::cli::{CalibrateArgs, GlobalArgs};
use crate::report::print_json;

/// Runs `twinsim calibrate`.
pub fn run(global: &GlobalArgs, args: &CalibrateArgs) -> anyhow::Result<()> {
    let mut run = Run::open(&args.run_dir, super::device(&args.device)?)?;
    let (dataset, split, classes) = match &args.dataset {
        Some(spec) => {
            let parsed: DatasetSpec = spec.parse()?;
            (Some(parsed.name()), parsed.split, Classes::All)
        }
        // The part of the training data that training held out.
        None => (None, SplitName::Val, Classes::Trained),
    };
    let classes = if args.unseen { Classes::Unseen } else { classes };
    let data = run.data(dataset.as_deref(), split, classes, &super::data_options(global))?;
    run.model.check_images(data.images.shape())?;
    let opts = CalibrateOptions {
        pairs: args.pairs,
        seed: args.seed,
        rule: args
            .far
            .map_or(ThresholdRule::BestAccuracy, ThresholdRule::FalseAcceptRate),
    };
    let fitted = calibration::calibrate(&run.model, &data, &opts)?;
    run.model.set_calibration(&fitted);
    run.model.save_card(&run.dir)?;
    if global.json {
        return print_json(&fitted);
    }
    println!(
        "calibrated on {} same and {} different pairs of {}",
        fitted.same_pairs, fitted.different_pairs, fitted.data
    );
    println!(
        "threshold {:.4} (distance {:.4}, {}): accuracy {:.4}, false accepts {:.4}, true accepts {:.4}",
        fitted.threshold,
        fitted.threshold_distance,
        fitted.rule,
        fitted.accuracy,
        fitted.false_accept_rate,
        fitted.true_accept_rate
    );
    println!("stored in {}", args.run_dir.join("model.json").display());
    Ok(())
}
