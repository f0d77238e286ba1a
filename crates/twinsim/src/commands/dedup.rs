//! `twinsim dedup FOLDER --model RUN_DIR`: groups of near-duplicate images.

use serde::Serialize;
use twinsim_index::dedup::{self, Group};
use twinsim_index::gallery::Gallery;
use twinsim_learn::distributed::World;
use twinsim_learn::model::Model;

use crate::cli::{DedupArgs, GlobalArgs};
use crate::report::print_json;

/// Runs `twinsim dedup`.
pub fn run(global: &GlobalArgs, args: &DedupArgs) -> anyhow::Result<()> {
    for (flag, value) in [
        ("--threshold", args.threshold),
        ("--pixel-threshold", args.pixel_threshold),
    ] {
        if !(-1.0..=1.0).contains(&value) {
            anyhow::bail!(twinsim_index::IndexError::invalid(
                format!("{flag} {value} is not between -1 and 1"),
                format!(
                    "pass a similarity between -1 and 1 (default {})",
                    if flag == "--threshold" {
                        dedup::MIN_SIMILARITY
                    } else {
                        dedup::MIN_PIXEL_CORRELATION
                    }
                ),
            ));
        }
    }
    let model = Model::load(&args.model, super::device(&args.device)?)?;
    let images = Gallery::unlabelled(&args.folder, &model)?;
    if images.is_empty() {
        anyhow::bail!(twinsim_index::IndexError::invalid(
            format!("{} holds no usable image", args.folder.display()),
            "point dedup at a folder of image files (PNG, JPEG, BMP, WebP, GIF, TIFF; any depth)",
        ));
    }
    let embeddings = super::embed(global, &model, &images, &World::single())?;
    let thresholds = dedup::Thresholds {
        similarity: args.threshold,
        pixel_correlation: args.pixel_threshold,
    };
    let groups = dedup::groups(&embeddings, &images.images, thresholds);
    if global.json {
        #[derive(Serialize)]
        struct Out<'a> {
            images: usize,
            threshold: f64,
            pixel_threshold: f64,
            groups: Vec<Vec<&'a str>>,
            pairs: Vec<serde_json::Value>,
        }
        let name = |i: usize| images.sources[i].as_str();
        return print_json(&Out {
            images: images.len(),
            threshold: args.threshold,
            pixel_threshold: args.pixel_threshold,
            groups: groups
                .iter()
                .map(|g| g.items.iter().map(|&i| name(i)).collect())
                .collect(),
            pairs: groups
                .iter()
                .flat_map(|g| &g.pairs)
                .map(|p| {
                    serde_json::json!({"a": name(p.a), "b": name(p.b), "similarity": p.similarity,
                        "pixel_correlation": p.pixel_correlation})
                })
                .collect(),
        });
    }
    print_groups(&images, &groups, thresholds);
    Ok(())
}

/// One block per group: its images, the closest pair's similarity first.
fn print_groups(images: &Gallery, groups: &[Group], thresholds: dedup::Thresholds) {
    println!(
        "{} groups of near-duplicates among {} images (embedding similarity ≥ {}, pixel correlation ≥ {})",
        groups.len(),
        images.len(),
        thresholds.similarity,
        thresholds.pixel_correlation
    );
    for (n, g) in groups.iter().enumerate() {
        let best = g.pairs.first().map_or(f64::NAN, |p| p.similarity);
        println!(
            "group {} ({} images, closest pair {best:.4}):",
            n + 1,
            g.items.len()
        );
        for &i in &g.items {
            println!("  {}", images.sources[i]);
        }
    }
}
