//! `twinsim search` and `twinsim identify`: query image files against an
//! index.

use std::path::PathBuf;

use serde::Serialize;
use tch::Tensor;
use twinsim_index::gallery::{self, Gallery, Subset};
use twinsim_index::grid;
use twinsim_index::identify::{self, Hit, Identity};
use twinsim_learn::distributed::World;
use twinsim_learn::run::Run;
use twinsim_learn::{images, similarity};

use crate::cli::{GlobalArgs, IdentifyArgs, SearchArgs};
use crate::report::print_json;

/// Runs `twinsim search`.
pub fn search(global: &GlobalArgs, args: &SearchArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.grid {
        crate::output::check_file(path, args.force)?;
    }
    let (index, run) = super::index::open(&args.index, &args.model)?;
    let calibration = run.model.require_calibration(&run.dir)?;
    let (queries, embedded) = embed_queries(&run, &args.queries)?;
    let results = identify::search(&index, &calibration, &embedded, args.k)?;
    if let Some(path) = &args.grid {
        let sources: Vec<String> = grid::drawn_items(&results)
            .into_iter()
            .map(|i| index.sources()[i].clone())
            .collect();
        let shown = gallery::images_of(&sources, &run, &super::data_options(global))?;
        let names: Vec<String> = args.queries.iter().map(|q| file_name(q)).collect();
        grid::draw(path, &queries, &names, &results, &shown, calibration.threshold)?;
    }
    if global.json {
        #[derive(Serialize)]
        struct Out<'a> {
            results: &'a [Vec<Hit>],
        }
        return print_json(&Out { results: &results });
    }
    for (query, hits) in args.queries.iter().zip(&results) {
        println!("{}", query.display());
        for hit in hits {
            println!(
                "  {:>3}  similarity {:.4}  distance {:.4}  {:<12} {}",
                hit.rank, hit.similarity, hit.distance, hit.label, hit.source
            );
        }
    }
    if let Some(path) = &args.grid {
        println!("grid written to {}", path.display());
    }
    Ok(())
}

/// Runs `twinsim identify`.
pub fn identify(global: &GlobalArgs, args: &IdentifyArgs) -> anyhow::Result<()> {
    let (index, run) = super::index::open(&args.index, &args.model)?;
    let calibration = run.model.require_calibration(&run.dir)?;
    if let Some(spec) = &args.dataset {
        let queries = Gallery::dataset(&run, spec, &Subset::default(), &super::data_options(global))?;
        let embedded = super::embed(global, &run.model, &queries, &World::single())?;
        let found = identify::identify(&index, &calibration, &embedded)?;
        let score = identify::score(&found, &queries.labels, &index.info.classes);
        if global.json {
            return print_json(&score);
        }
        println!(
            "{spec}: {} queries of enrolled classes, identification accuracy {:.4} (rejected as unknown {:.4}); \
             {} of classes not enrolled, false-accept rate {:.4}; overall accuracy {:.4} (threshold {:.4})",
            score.enrolled_queries,
            score.identification_accuracy,
            score.false_reject_rate,
            score.unenrolled_queries,
            score.false_accept_rate,
            score.accuracy,
            calibration.threshold
        );
        return Ok(());
    }
    let (_, embedded) = embed_queries(&run, &args.queries)?;
    let found = identify::identify(&index, &calibration, &embedded)?;
    if global.json {
        #[derive(Serialize)]
        struct Out<'a> {
            query: &'a PathBuf,
            #[serde(flatten)]
            identity: &'a Identity,
        }
        let out: Vec<Out> = args
            .queries
            .iter()
            .zip(&found)
            .map(|(query, identity)| Out { query, identity })
            .collect();
        return print_json(&serde_json::json!({ "results": out }));
    }
    for (query, id) in args.queries.iter().zip(&found) {
        println!(
            "{}  {}  (similarity {:.4}, threshold {:.4}; nearest: {} {})",
            query.display(),
            id.label.as_deref().unwrap_or("unknown"),
            id.similarity,
            id.threshold,
            id.nearest.label,
            id.nearest.source
        );
    }
    Ok(())
}

/// The query files decoded for the run's model, and their embeddings.
fn embed_queries(run: &Run, files: &[PathBuf]) -> anyhow::Result<(twinsim_data::Images, Tensor)> {
    let queries = images::from_files(files, &run.model.card.preprocess)?;
    let embedded = run.model.embed_images(&queries, similarity::BATCH);
    Ok((queries, embedded))
}

/// The last part of `path`, to caption its image.
fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
