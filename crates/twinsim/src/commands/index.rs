//! `twinsim index build | add | info`: gallery index files.

use std::path::{Path, PathBuf};

use serde::Serialize;
use twinsim_index::gallery::{Gallery, Subset};
use twinsim_index::hnsw::HnswParams;
use twinsim_index::{file, Backend, Index, IndexError};
use twinsim_learn::distributed::World;
use twinsim_learn::run::Run;

use crate::cli::{
    GallerySource, GlobalArgs, IndexAction, IndexAddArgs, IndexArgs, IndexBuildArgs, IndexModelArgs,
};
use crate::report::print_json;

/// Runs `twinsim index ACTION`.
pub fn run(global: &GlobalArgs, args: &IndexArgs) -> anyhow::Result<()> {
    match &args.action {
        IndexAction::Build(a) => build(global, a),
        IndexAction::Add(a) => add(global, a),
        IndexAction::Info(a) => info(global, &a.index),
    }
}

/// `twinsim index build`.
fn build(global: &GlobalArgs, args: &IndexBuildArgs) -> anyhow::Result<()> {
    crate::output::check_file(&args.out, args.force)?;
    let run = Run::open(&args.model, super::device(&args.device)?)?;
    let gallery = from_source(global, &run, &args.source)?;
    // Absolute, so the index finds its model from any working directory.
    let model_dir = std::fs::canonicalize(&args.model).unwrap_or_else(|_| args.model.clone());
    let backend = match args.backend.as_str() {
        "hnsw" => Backend::Hnsw(HnswParams {
            connectivity: args.connectivity,
            expansion_add: args.expansion_add,
            expansion_search: args.expansion_search,
        }),
        _ => Backend::Exact,
    };
    let mut index = Index::new(&run.model, &model_dir, backend);
    enrol_and_save(global, &mut index, &run, &gallery, &args.out)
}

/// `twinsim index add`.
fn add(global: &GlobalArgs, args: &IndexAddArgs) -> anyhow::Result<()> {
    let (mut index, run) = open(&args.index, &args.model)?;
    let gallery = match &args.label {
        Some(label) if !args.files.is_empty() => Gallery::files(&args.files, label, &run.model)?,
        _ => from_source(global, &run, &args.source)?,
    };
    enrol_and_save(global, &mut index, &run, &gallery, &args.index)
}

/// The index at `path` and the run of its model (`--model`, else the one
/// the index records), refusing a model that did not build it.
pub fn open(path: &Path, model: &IndexModelArgs) -> anyhow::Result<(Index, Run)> {
    let index = file::load(path)?;
    let dir = match &model.model {
        Some(dir) => dir.clone(),
        None if !index.info.model_dir.is_dir() => anyhow::bail!(IndexError::bad_index(
            path,
            format!(
                "its model, {}, is not there any more",
                index.info.model_dir.display()
            ),
            "pass --model RUN_DIR with the run directory that built the index (wherever it is now)",
        )),
        None => index.info.model_dir.clone(),
    };
    let run = Run::open(&dir, super::device(&model.device)?)?;
    index.check_model(&run.model, path)?;
    Ok((index, run))
}

/// The gallery `source` names.
fn from_source(global: &GlobalArgs, run: &Run, source: &GallerySource) -> anyhow::Result<Gallery> {
    let subset = Subset {
        classes: source.classes.clone(),
        per_class: source.per_class,
        seed: source.seed,
    };
    Ok(match (&source.dataset, &source.folder) {
        (Some(spec), _) => Gallery::dataset(run, spec, &subset, &super::data_options(global))?,
        (None, Some(dir)) => Gallery::folder(dir, &run.model)?,
        (None, None) => anyhow::bail!(IndexError::invalid(
            "no images to enrol",
            "pass --dataset NAME[:SPLIT], --folder DIR, or (for index add) FILES --label NAME",
        )),
    })
}

/// Embeds `gallery` into `index` and writes it to `out` atomically.
fn enrol_and_save(
    global: &GlobalArgs,
    index: &mut Index,
    run: &Run,
    gallery: &Gallery,
    out: &Path,
) -> anyhow::Result<()> {
    if gallery.is_empty() {
        anyhow::bail!(IndexError::invalid(
            "the gallery holds no usable image",
            "check the dataset, classes or folder given (see the warnings above)",
        ));
    }
    // Under mpirun or srun the ranks embed shares of the gallery; rank 0
    // alone writes the index.
    let world = World::from_launcher()?;
    let embedded = super::embed(global, &run.model, gallery, &world)?;
    if !world.is_root() {
        return Ok(());
    }
    index.add(&embedded, &gallery.labels, gallery.sources.clone())?;
    file::save(index, out)?;
    if !global.json {
        println!(
            "enrolled {} images; {} holds {} images of {} classes",
            gallery.len(),
            out.display(),
            index.len(),
            index.info.classes.len()
        );
    }
    info_of(global, index, out, false)
}

/// What `twinsim index info` prints.
#[derive(Serialize)]
struct Info<'a> {
    index: PathBuf,
    items: usize,
    dim: usize,
    metric: &'static str,
    model_dir: &'a Path,
    model_hash: &'a str,
    backend: Backend,
    classes: std::collections::BTreeMap<&'a str, usize>,
}

/// `twinsim index info`.
fn info(global: &GlobalArgs, path: &Path) -> anyhow::Result<()> {
    let index = file::load(path)?;
    info_of(global, &index, path, true)
}

/// Describes `index` (as JSON with --json; as text when `text`).
fn info_of(global: &GlobalArgs, index: &Index, path: &Path, text: bool) -> anyhow::Result<()> {
    let info = Info {
        index: path.to_path_buf(),
        items: index.len(),
        dim: index.info.dim,
        metric: index.info.metric.name(),
        model_dir: &index.info.model_dir,
        model_hash: &index.info.model_hash,
        backend: index.info.backend,
        classes: index.class_counts(),
    };
    if global.json {
        return print_json(&info);
    }
    if text {
        let params = match info.backend {
            Backend::Hnsw(p) => format!(
                " (M {}, ef_add {}, ef {})",
                p.connectivity, p.expansion_add, p.expansion_search
            ),
            Backend::Exact => String::new(),
        };
        println!(
            "{}: {} images, {}-d, {}, {} search{params}",
            path.display(),
            info.items,
            info.dim,
            info.metric,
            info.backend.name()
        );
        println!("model {} ({})", info.model_dir.display(), info.model_hash);
        let classes: Vec<String> = info.classes.iter().map(|(c, n)| format!("{c} ({n})")).collect();
        println!("{} classes: {}", classes.len(), classes.join(", "));
    }
    Ok(())
}
