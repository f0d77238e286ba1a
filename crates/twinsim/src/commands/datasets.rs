//! `twinsim datasets`: where each dataset is, or a summary of one.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use twinsim_data::catalog::{self, DatasetInfo, Layout};
use twinsim_data::locate::Locator;
use twinsim_data::{Dataset, DatasetSpec, ImageShape, Origin, SplitName};

use crate::cli::{DatasetsArgs, GlobalArgs};
use crate::report::print_json;

/// Runs `twinsim datasets [SPEC]`.
pub fn run(global: &GlobalArgs, args: &DatasetsArgs) -> anyhow::Result<()> {
    match &args.spec {
        None => list(global),
        Some(spec) => summarise(global, args, spec),
    }
}

#[derive(Serialize)]
struct Listing {
    search_order: Vec<PathBuf>,
    datasets: Vec<Entry>,
    /// Datasets that are not files to find: the text listing and `--json`
    /// show the same ones.
    other_kinds: &'static [OtherKind],
}

/// A kind of dataset with nothing to locate.
#[derive(Serialize)]
struct OtherKind {
    name: &'static str,
    description: &'static str,
}

const OTHER_KINDS: &[OtherKind] = &[
    OtherKind {
        name: "folder",
        description: "your own images: any path, e.g. `twinsim datasets ./photos` (DIR/<class>/<image>, optional train/ and test/)",
    },
    OtherKind {
        name: "mnist-sample",
        description: "the 8,000 + 2,000 MNIST images embedded in twinsim",
    },
    OtherKind {
        name: "union",
        description: "several of the above as one, joined by +: e.g. `twinsim datasets mnist+cifar10` \
                      (classes mnist/0 ... cifar10/truck, images in the largest shape)",
    },
];

#[derive(Serialize)]
struct Entry {
    name: &'static str,
    description: &'static str,
    found: bool,
    /// The files that would be read.
    paths: Vec<FileInfo>,
    /// Every place looked at, when not found.
    searched: Vec<PathBuf>,
    classes: Vec<&'static str>,
    licence: &'static str,
}

#[derive(Serialize)]
struct FileInfo {
    path: PathBuf,
    bytes: Option<u64>,
}

fn list(global: &GlobalArgs) -> anyhow::Result<()> {
    let locator = Locator::from_env(global.data_dir.clone());
    let datasets: Vec<Entry> = catalog::DATASETS
        .iter()
        .filter(|d| d.layout != Layout::Folder)
        .map(|d| entry(&locator, d))
        .collect();
    let listing = Listing {
        search_order: locator.roots(),
        datasets,
        other_kinds: OTHER_KINDS,
    };
    if global.json {
        return print_json(&listing);
    }
    println!("search order: {}", join_paths(&listing.search_order));
    for d in &listing.datasets {
        println!("\n{}  {}", d.name, d.description);
        if d.found {
            for f in &d.paths {
                let size = f.bytes.map(human_bytes).unwrap_or_default();
                println!("  found: {} {size}", f.path.display());
            }
        } else {
            println!(
                "  not found; searched {} places (twinsim downloads it on first use)",
                d.searched.len()
            );
        }
        if !d.classes.is_empty() {
            println!("  classes: {}", d.classes.join(", "));
        }
        println!("  licence: {}", d.licence);
    }
    println!();
    for kind in OTHER_KINDS {
        println!("{}  {}", kind.name, kind.description);
    }
    Ok(())
}

fn entry(locator: &Locator, d: &'static DatasetInfo) -> Entry {
    let found = locator.find(d);
    let searched = match &found {
        Some(_) => Vec::new(),
        None => d.files.iter().flat_map(|f| locator.candidates(d, f)).collect(),
    };
    let paths = found
        .map(|f| f.paths)
        .unwrap_or_default()
        .into_iter()
        .map(|path| FileInfo {
            bytes: std::fs::metadata(&path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            path,
        })
        .collect::<Vec<_>>();
    Entry {
        name: d.name,
        description: d.description,
        found: !paths.is_empty(),
        paths,
        searched,
        classes: d.classes.to_vec(),
        licence: d.licence,
    }
}

#[derive(Serialize)]
struct Summary {
    dataset: String,
    splits: Vec<SplitSummary>,
}

#[derive(Serialize)]
struct SplitSummary {
    split: String,
    images: usize,
    shape: ImageShape,
    classes: Vec<String>,
    class_counts: Vec<usize>,
    coarse_classes: Option<Vec<String>>,
    /// Mean pixel value in [0, 1].
    pixel_mean: f64,
    origin: Origin,
    load_seconds: f64,
}

fn summarise(global: &GlobalArgs, args: &DatasetsArgs, spec: &str) -> anyhow::Result<()> {
    let opts = super::select_options(global, &args.select);
    let parsed: DatasetSpec = spec.parse()?;
    // Without an explicit split, show both official ones, or the one a
    // folder without train/ and test/ has.
    let specs = if spec.ends_with(&format!(":{}", parsed.split.as_str())) {
        vec![parsed.clone()]
    } else {
        let mut both = vec![parsed.with_split(SplitName::Train)];
        both.extend(
            parsed
                .source
                .has_test()?
                .then(|| parsed.with_split(SplitName::Test)),
        );
        both
    };
    let mut splits = Vec::new();
    for s in &specs {
        let start = Instant::now();
        let ds = twinsim_data::load(s, &opts)?;
        splits.push(split_summary(&ds, start.elapsed().as_secs_f64()));
    }
    let summary = Summary {
        dataset: parsed.name(),
        splits,
    };
    if global.json {
        return print_json(&summary);
    }
    println!("{}", summary.dataset);
    for s in &summary.splits {
        println!(
            "  {:<5} {:>6} images of {}, {} classes, pixel mean {:.4}, read in {:.2}s from {}",
            s.split,
            s.images,
            s.shape,
            s.classes.len(),
            s.pixel_mean,
            s.load_seconds,
            s.origin
        );
        let counts: Vec<String> = s
            .classes
            .iter()
            .zip(&s.class_counts)
            .filter(|(_, &n)| n > 0)
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        println!("        per class: {}", counts.join(", "));
    }
    Ok(())
}

fn split_summary(ds: &Dataset, seconds: f64) -> SplitSummary {
    let bytes = ds.images.as_bytes();
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    SplitSummary {
        split: ds.split.clone(),
        images: ds.len(),
        shape: ds.images.shape(),
        classes: ds.classes.clone(),
        class_counts: ds.class_counts(),
        coarse_classes: ds.coarse.as_ref().map(|c| c.classes.clone()),
        pixel_mean: sum as f64 / (bytes.len().max(1) as f64 * 255.0),
        origin: ds.origin.clone(),
        load_seconds: seconds,
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn human_bytes(n: u64) -> String {
    format!("({:.1} MB)", n as f64 / 1e6)
}
