//! `twinsim evaluate`: a run's metrics on a standard protocol, beside raw
//! pixels and the untrained network; prints a table (or JSON) and records
//! the result in the run's `metrics.json`, one entry per protocol.

use twinsim_data::SplitName;
use twinsim_learn::distributed::World;
use twinsim_learn::evaluation::{self, EvalOptions, Evaluation, PartScores, ProtocolData, Scores};
use twinsim_learn::expansion::Expansion;
use twinsim_learn::run::Run;

use crate::cli::{EvaluateArgs, GlobalArgs};
use crate::report::print_json;

/// Runs `twinsim evaluate`.
pub fn run(global: &GlobalArgs, args: &EvaluateArgs) -> anyhow::Result<()> {
    let run = Run::open(&args.run_dir, super::device(&args.device)?)?;
    let opts = EvalOptions {
        protocol: args.protocol.parse()?,
        dataset: args.dataset.clone(),
        split: args.split.as_deref().map(parse_split).transpose()?,
        pairs: args.pairs,
        baselines: !args.no_baselines,
        expansion: Expansion {
            dba: args.dba,
            query: args.query_expansion,
        },
        ..EvalOptions::default()
    };
    let data = ProtocolData::load(&run, &opts, &super::data_options(global))?;
    // Under mpirun or srun the ranks embed shares of the images; rank 0
    // alone records and prints.
    let world = World::from_launcher()?;
    let result = evaluation::evaluate(&run, &data, &opts, &world)?;
    if !world.is_root() {
        return Ok(());
    }
    evaluation::record(&args.run_dir, &result)?;
    if global.json {
        return print_json(&result);
    }
    print_table(&result);
    Ok(())
}

/// `test`, `train`, `val` or `fit`.
fn parse_split(s: &str) -> anyhow::Result<SplitName> {
    let spec: twinsim_data::DatasetSpec = format!("mnist:{s}").parse()?;
    Ok(spec.split)
}

/// The metrics as a table: the model beside each reference point.
fn print_table(r: &Evaluation) {
    let s = &r.setup;
    println!(
        "{} on {}:{} ({} queries, gallery of {}, {} distance, {} pairs)",
        s.protocol, s.dataset, s.query_split, s.queries, s.gallery, s.distance, s.pairs
    );
    if let Some(e) = s.expansion {
        println!(
            "gallery context: DBA over {} neighbours, query expansion with {} (every column, compared by cosine)",
            e.dba, e.query
        );
    }
    let mut columns: Vec<(&str, &Scores)> = vec![("model", &r.model)];
    columns.extend(r.baselines.iter().map(|(name, s)| (*name, s)));
    print!("{:<30}", "metric");
    for (name, _) in &columns {
        print!("{name:>12}");
    }
    println!();
    for (label, value) in rows() {
        print!("{label:<30}");
        for (_, s) in &columns {
            match value(s) {
                Some(v) => print!("{v:>12.4}"),
                None => print!("{:>12}", "-"),
            }
        }
        println!();
    }
    let c = &r.model;
    print_parts(&c.parts);
    println!(
        "\npair accuracy at the {} threshold {:.4}; {:.1} s",
        c.pair_threshold_rule, c.pair_threshold, r.seconds
    );
}

/// The model's figures for each part of a union (nothing for one dataset):
/// its queries against the whole gallery, and how many of them have their
/// nearest neighbour in another part.
fn print_parts(parts: &[PartScores]) {
    if parts.is_empty() {
        return;
    }
    println!("\nthe model by part: its queries against the whole gallery");
    let columns = [
        "queries",
        "precision_at_1",
        "r_precision",
        "mean_average_precision_at_r",
        "cross_domain_confusion",
    ];
    print!("{:<30}", "part");
    for name in columns {
        print!("{name:>w$}", w = name.len().max(12) + 2);
    }
    println!();
    for p in parts {
        let r = &p.scores.retrieval;
        let values = [
            r.precision_at_1,
            r.r_precision,
            r.mean_average_precision_at_r,
            Some(p.scores.cross_domain_confusion),
        ];
        print!("{:<30}{:>14}", p.part, r.queries);
        for (name, v) in columns[1..].iter().zip(values) {
            let w = name.len().max(12) + 2;
            match v {
                Some(v) => print!("{v:>w$.4}"),
                None => print!("{:>w$}", "-"),
            }
        }
        println!();
    }
}

/// A metric's row label and how to read it from [`Scores`].
type Row = (String, Box<dyn Fn(&Scores) -> Option<f64>>);

/// The table's rows, in reading order.
fn rows() -> Vec<Row> {
    let mut rows: Vec<Row> = vec![
        ("precision_at_1".into(), Box::new(|s| s.retrieval.precision_at_1)),
        ("r_precision".into(), Box::new(|s| s.retrieval.r_precision)),
        (
            "mean_average_precision_at_r".into(),
            Box::new(|s| s.retrieval.mean_average_precision_at_r),
        ),
        ("nmi".into(), Box::new(|s| s.retrieval.nmi)),
        ("pair_roc_auc".into(), Box::new(|s| Some(s.pair_roc_auc))),
        ("pair_eer".into(), Box::new(|s| Some(s.pair_eer))),
        ("pair_accuracy".into(), Box::new(|s| Some(s.pair_accuracy))),
    ];
    for k in evaluation::RECALL_KS {
        rows.push((
            format!("recall_at_{k}"),
            Box::new(move |s| s.retrieval.recall_at_k.get(&k.to_string()).copied()),
        ));
    }
    for far in ["0.001", "0.01", "0.1"] {
        rows.push((
            format!("tar_at_far {far}"),
            Box::new(move |s| s.tar_at_far.get(far).copied()),
        ));
    }
    rows
}
