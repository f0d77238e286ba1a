//! The command line: global options and one subcommand per job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use twinsim_index::hnsw::HnswParams;

/// Train neural networks that score how similar two images are, then compare,
/// search and measure with them.
#[derive(Debug, Parser)]
// Plain help text, in a terminal too: the launcher (src/launcher.rs) prints
// the top-level help from a stored copy, which must read the same as this.
#[command(name = "twinsim", version, about, long_about = None, styles = clap::builder::Styles::plain())]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print exactly one JSON object on stdout (logs and progress go to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Folder searched first for datasets (then $TWINSIM_DATA, the user cache,
    /// /usr/share/datasets); downloads go here when given.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The jobs twinsim does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the datasets twinsim knows and where they are, or summarise one.
    Datasets(DatasetsArgs),
    /// Train a similarity model and write a run directory.
    #[command(after_help = recipes_help())]
    Train(Box<TrainArgs>),
    /// Measure a trained model: retrieval and verification metrics, beside
    /// raw pixels and the untrained network on the same protocol.
    Evaluate(EvaluateArgs),
    /// Fit (again) the model's calibrated similarity and decision threshold
    /// on held-out pairs.
    Calibrate(CalibrateArgs),
    /// Score how similar two images are (or every pair in a CSV file).
    Compare(CompareArgs),
    /// Write embeddings and labels as .npy files for numpy, FAISS or a notebook.
    Embed(EmbedArgs),
    /// Write report.html with pictures of what a model learned.
    Report(ReportArgs),
    /// Build, grow and describe gallery indexes for search and identification.
    Index(IndexArgs),
    /// Find the gallery images most like each query image.
    Search(SearchArgs),
    /// Name each query's class from an index, or answer unknown.
    Identify(IdentifyArgs),
    /// List groups of near-duplicate images in a folder.
    Dedup(DedupArgs),
    /// How far apart two sets of images are: Fréchet distance (FID) and KID
    /// on a trained model's features, or on Inception-v3's.
    Fid(FidArgs),
    /// Serve a model over HTTP: a JSON API (compare, embed, search, identify)
    /// and a web page to try it.
    Serve(ServeArgs),
}

/// `twinsim serve --model RUN_DIR [--index INDEX]`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A run directory made by `twinsim train` (calibrated).
    #[arg(long, env = "TWINSIM_MODEL")]
    pub model: PathBuf,
    /// A gallery index built with this model, for /v1/search and /v1/identify.
    #[arg(long, env = "TWINSIM_INDEX")]
    pub index: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "TWINSIM_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "TWINSIM_PORT", default_value_t = 8000)]
    pub port: u16,
    /// The largest request body, in bytes (1 to 4 GiB).
    #[arg(long, env = "TWINSIM_MAX_BODY_BYTES", default_value_t = 16 << 20,
          value_parser = count::<1, { 1 << 32 }>)]
    pub max_body_bytes: usize,
    /// The most pixels an uploaded image may declare (1 to 4294967296).
    #[arg(long, env = "TWINSIM_MAX_PIXELS", default_value_t = 40_000_000,
          value_parser = clap::value_parser!(u64).range(1..=1 << 32))]
    pub max_pixels: u64,
    /// The most images one request may upload (1 to 10000).
    #[arg(long, env = "TWINSIM_MAX_FILES", default_value_t = 32,
          value_parser = count::<1, 10_000>)]
    pub max_files: usize,
    /// The most neighbours a search may ask for (1 to 100000).
    #[arg(long, env = "TWINSIM_MAX_K", default_value_t = 100,
          value_parser = count::<1, 100_000>)]
    pub max_k: usize,
}

/// `twinsim fid A B (--model RUN_DIR | --inception WEIGHTS)`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("features").args(["model", "inception"])))]
pub struct FidArgs {
    /// The first set: an image folder (any depth), a dataset split, NAME:SPLIT
    /// (mnist:test), or saved statistics, FILE.npz (pytorch-fid's `mu` and `sigma`).
    pub a: String,
    /// The second set, likewise.
    pub b: String,
    /// Write A's statistics to this .npz file (pytorch-fid reads it).
    #[arg(long, value_name = "FILE.npz")]
    pub save_stats: Option<PathBuf>,
    /// Write B's statistics to this .npz file.
    #[arg(long, value_name = "FILE.npz")]
    pub save_stats_b: Option<PathBuf>,
    /// Replace output files that already exist.
    #[arg(long)]
    pub force: bool,
    /// A run directory made by `twinsim train`: its embeddings are the
    /// features compared (one of --model or --inception is needed unless
    /// both sets are .npz statistics).
    #[arg(long, value_name = "RUN_DIR")]
    pub model: Option<PathBuf>,
    /// Compare Inception-v3's 2048-d pool features instead (standard FID), with
    /// the weights in this file: pytorch-fid's pt_inception-2015-12-05-6726825d.pth
    /// (read without executing anything) or the same tensors as .safetensors.
    #[arg(long, value_name = "WEIGHTS")]
    pub inception: Option<PathBuf>,
    /// Random subsets KID averages over.
    #[arg(long, default_value_t = twinsim_learn::fid::kid::SUBSETS)]
    pub kid_subsets: usize,
    /// Images drawn from each set per KID subset (fewer when a set is smaller).
    #[arg(long, default_value_t = twinsim_learn::fid::kid::SUBSET_SIZE)]
    pub kid_subset_size: usize,
    /// Seed for the KID subsets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `twinsim index ACTION`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub action: IndexAction,
}

/// What `twinsim index` does.
#[derive(Debug, Subcommand)]
pub enum IndexAction {
    /// Embed a gallery (a dataset split or an image folder) into a new index file.
    Build(IndexBuildArgs),
    /// Enrol more images (of known or new classes) into an index.
    Add(IndexAddArgs),
    /// Describe an index: its model, size and classes.
    Info(IndexInfoArgs),
}

/// Where gallery images come from: a dataset split or an image folder.
#[derive(Debug, Args)]
pub struct GallerySource {
    /// A dataset split, NAME[:SPLIT] (mnist:train) [split default: train].
    #[arg(long, conflicts_with = "folder")]
    pub dataset: Option<String>,
    /// An image folder, DIR/<class>/<image>: each image's class is its folder's name.
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,
    /// With --dataset: only these classes (0-4, 5,7, cat,dog).
    #[arg(long, value_name = "LIST", requires = "dataset")]
    pub classes: Option<String>,
    /// With --dataset: at most N images of each class, chosen by --seed.
    #[arg(long, value_name = "N", requires = "dataset")]
    pub per_class: Option<usize>,
    /// Seed for --per-class.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `twinsim index build --model RUN_DIR (--dataset SPEC | --folder DIR) -o INDEX`.
#[derive(Debug, Args)]
pub struct IndexBuildArgs {
    /// A run directory made by `twinsim train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    #[command(flatten)]
    pub source: GallerySource,
    /// The index file to write.
    #[arg(short, long, value_name = "INDEX")]
    pub out: PathBuf,
    /// Replace output files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Search: exact (every item, the true neighbours) or hnsw (approximate, for large galleries).
    #[arg(long, default_value = "exact", value_parser = ["exact", "hnsw"])]
    pub backend: String,
    /// hnsw: links per node (M).
    #[arg(long, default_value_t = HnswParams::default().connectivity,
          allow_hyphen_values = true, value_parser = count::<2, { twinsim_index::hnsw::MAX_CONNECTIVITY }>)]
    pub connectivity: usize,
    /// hnsw: candidates kept while building (efConstruction).
    #[arg(long, default_value_t = HnswParams::default().expansion_add,
          allow_hyphen_values = true, value_parser = count::<1, { twinsim_index::hnsw::MAX_EXPANSION }>)]
    pub expansion_add: usize,
    /// hnsw: candidates kept while searching (ef); more is slower and more exact.
    #[arg(long, default_value_t = HnswParams::default().expansion_search,
          allow_hyphen_values = true, value_parser = count::<1, { twinsim_index::hnsw::MAX_EXPANSION }>)]
    pub expansion_search: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `twinsim index add INDEX (--dataset SPEC | --folder DIR | FILES --label NAME)`.
#[derive(Debug, Args)]
pub struct IndexAddArgs {
    /// The index file to grow (rewritten atomically).
    pub index: PathBuf,
    /// Image files to enrol, all of class --label.
    #[arg(value_name = "FILE", conflicts_with_all = ["dataset", "folder"], requires = "label")]
    pub files: Vec<PathBuf>,
    /// The class of the FILEs (a new name enrols a new class).
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    #[command(flatten)]
    pub source: GallerySource,
    #[command(flatten)]
    pub model: IndexModelArgs,
}

/// `twinsim index info INDEX`.
#[derive(Debug, Args)]
pub struct IndexInfoArgs {
    /// An index file.
    pub index: PathBuf,
}

/// The model that queries an index: the one that built it, unless moved.
#[derive(Debug, Args)]
pub struct IndexModelArgs {
    /// The run directory of the index's model [default: the one recorded in the index].
    #[arg(long, value_name = "RUN_DIR")]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `twinsim search INDEX QUERY... -k 10`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// An index file made by `twinsim index build`.
    pub index: PathBuf,
    /// Query image files.
    #[arg(required = true, value_name = "QUERY")]
    pub queries: Vec<PathBuf>,
    /// Neighbours per query.
    #[arg(short, default_value_t = 10, allow_hyphen_values = true, value_parser = count::<1, 1_000_000>)]
    pub k: usize,
    /// Draw each query beside its neighbours into this PNG.
    #[arg(long, value_name = "OUT.png")]
    pub grid: Option<PathBuf>,
    /// Replace the --grid file if it exists.
    #[arg(long, requires = "grid")]
    pub force: bool,
    #[command(flatten)]
    pub model: IndexModelArgs,
}

/// `twinsim identify INDEX QUERY...`.
#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// An index file made by `twinsim index build`.
    pub index: PathBuf,
    /// Query image files.
    #[arg(required_unless_present = "dataset", value_name = "QUERY")]
    pub queries: Vec<PathBuf>,
    /// Query every image of a labelled dataset split instead, NAME[:SPLIT]
    /// (mnist:test), and print identification accuracy and false-accept rate.
    #[arg(long, conflicts_with = "queries")]
    pub dataset: Option<String>,
    #[command(flatten)]
    pub model: IndexModelArgs,
}

/// `twinsim dedup FOLDER --model RUN_DIR`: near-duplicates are pairs the
/// model finds alike (--threshold) whose pixels also agree (--pixel-threshold).
#[derive(Debug, Args)]
pub struct DedupArgs {
    /// A folder of images, searched at any depth.
    pub folder: PathBuf,
    /// A run directory made by `twinsim train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// Least cosine similarity of two images' embeddings for them to be candidates.
    #[arg(long, default_value_t = twinsim_index::dedup::MIN_SIMILARITY)]
    pub threshold: f64,
    /// Least correlation of a candidate pair's pixels (as converted for the model) to confirm it.
    #[arg(long, default_value_t = twinsim_index::dedup::MIN_PIXEL_CORRELATION)]
    pub pixel_threshold: f64,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// The trained model a command uses, and where it runs.
#[derive(Debug, Args, Clone)]
pub struct DeviceArgs {
    /// Device: cpu, cuda, cuda:N, auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// `twinsim evaluate RUN_DIR`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A run directory made by `twinsim train`.
    pub run_dir: PathBuf,
    /// Dataset to evaluate on [default: the one the model was trained on].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Split the queries come from [default: test, or val when there is none].
    #[arg(long)]
    pub split: Option<String>,
    /// gallery (queries against the training images), leave-one-out (queries
    /// against each other), class-disjoint (classes the model never saw).
    #[arg(long, default_value = "gallery")]
    pub protocol: String,
    /// Balanced random query pairs for the verification metrics.
    #[arg(long, default_value_t = 10_000)]
    pub pairs: usize,
    /// Skip the reference points (raw pixels, untrained network).
    #[arg(long)]
    pub no_baselines: bool,
    /// Database-side augmentation: replace each gallery embedding with the
    /// similarity-weighted mean of its K nearest gallery items (no labels
    /// used). With --query-expansion, the gallery context that lets a model
    /// verify classes it never saw (e.g. --dba 400 --query-expansion 50).
    #[arg(long, value_name = "K", default_value_t = 0, allow_hyphen_values = true,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub dba: i64,
    /// Add to each query its K nearest gallery items' (DBA) embeddings,
    /// weighted by similarity, before every metric.
    #[arg(long, value_name = "K", default_value_t = 0, allow_hyphen_values = true,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub query_expansion: i64,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `twinsim calibrate RUN_DIR`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// A run directory made by `twinsim train`.
    pub run_dir: PathBuf,
    /// Data to draw the pairs from, NAME[:SPLIT] [default: the training
    /// dataset's held-out val split].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Draw the pairs from the classes the model did not train on (a run
    /// trained with --classes), so decisions fit classes enrolled later.
    #[arg(long)]
    pub unseen: bool,
    /// Balanced random pairs to fit on.
    #[arg(long, default_value_t = 10_000)]
    pub pairs: usize,
    /// Choose the threshold for this false-accept rate (e.g. 0.001) instead
    /// of the best accuracy.
    #[arg(long, value_name = "RATE")]
    pub far: Option<f64>,
    /// Seed for drawing the pairs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `twinsim compare A B --model RUN_DIR`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two image files (any format, size and colour: converted as in training).
    #[arg(num_args = 0..=2, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// A run directory made by `twinsim train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// A CSV file of pairs, one `a,b` per line (an `a,b` header is allowed;
    /// relative paths are from the file's folder).
    #[arg(long, value_name = "FILE.csv", conflicts_with = "images")]
    pub pairs: Option<PathBuf>,
    /// With --pairs: score the usable lines and list the others, instead of
    /// stopping at lines whose images are missing or unreadable.
    #[arg(long, requires = "pairs")]
    pub skip_missing: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `twinsim embed --model RUN_DIR (--dataset SPEC | FILES...) -o OUT`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A run directory made by `twinsim train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// A dataset split to embed, NAME[:SPLIT] (mnist:test, ./photos:train).
    #[arg(long, required_unless_present = "files", conflicts_with = "files")]
    pub dataset: Option<String>,
    /// Image files to embed (labelled -1).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output folder: embeddings.npy, labels.npy, meta.json.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write into --out even when it holds files (replacing these three).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `twinsim report RUN_DIR`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory made by `twinsim train`.
    pub run_dir: PathBuf,
    /// Where to write report.html and its pictures [default: RUN_DIR/report].
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write into --out even when it holds files (replacing the report's).
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Dataset the pictures are drawn from [default: the training dataset].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Test embeddings placed on the 2-D maps (t-SNE costs O(n²)).
    #[arg(long, default_value_t = twinsim_learn::report::MAP_POINTS)]
    pub map_points: usize,
    /// Benchmark results (benchmarks/speed.sh's JSON lines) whose systems'
    /// test Precision@1 against training seconds is drawn beside the run's
    /// (one line a system, on the run's dataset); repeat for more files.
    #[arg(long, value_name = "RESULTS")]
    pub compare: Vec<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// The recipes `train` chooses from, as `train --help` ends: one line each,
/// from their registry.
fn recipes_help() -> String {
    let lines: Vec<String> = twinsim_learn::train::RECIPES
        .iter()
        .map(|r| format!("  {:<8} {}", r.name, r.describe()))
        .collect();
    format!(
        "Recipes (the defaults; each option given wins, --recipe picks one by name):\n{}",
        lines.join("\n")
    )
}

/// `twinsim train [OPTIONS]`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: twinsim_learn::train::TrainOptions,
    /// A TOML file whose keys are these options (batch-size = 256); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue RUN_DIR from its last checkpoint (same configuration).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Write the run's report (RUN_DIR/report/report.html) when training ends.
    #[arg(long)]
    pub report: bool,
    /// Also measure test Precision@1 after every epoch (time to quality:
    /// metrics.jsonl keeps it beside the training seconds; not counted as
    /// training time).
    #[arg(long)]
    pub test_each_epoch: bool,
    /// Read the data and check the configuration, print it (with the recipe the data
    /// gets), and stop before training; nothing is written.
    #[arg(long, conflicts_with_all = ["resume", "report"])]
    pub dry_run: bool,
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `twinsim datasets [SPEC]`.
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    /// A dataset to load and summarise: NAME[:SPLIT] (mnist, mnist:test,
    /// cifar100:val, ./photos:train, mnist+cifar10:test for a union).
    /// Without it, every dataset is listed.
    pub spec: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// Which part of a dataset to use; shared by every command that reads one.
#[derive(Debug, Args, Clone)]
pub struct SelectArgs {
    /// Keep only these classes: indices, ranges or names (0-4, 0,2,7-9, cat,dog).
    #[arg(long, value_name = "LIST")]
    pub classes: Option<String>,
    /// Keep at most N images of each class (chosen by --seed).
    #[arg(long, value_name = "N")]
    pub per_class: Option<usize>,
    /// Share of train carved out as the `val` split (the rest is `fit`).
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub val_fraction: f64,
    /// Seed for the validation split and per-class subsets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// How image folders are read.
#[derive(Debug, Args, Clone)]
pub struct FolderArgs {
    /// Image folders: images are resized to SIZE x SIZE.
    #[arg(long, default_value_t = 32, value_name = "SIZE", allow_hyphen_values = true,
          value_parser = count::<1, { twinsim_data::ImageShape::MAX_SIDE }>)]
    pub image_size: usize,
    /// Image folders: 1 (grey) or 3 (RGB) channels.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub channels: u8,
    /// Image folders: decode every image again instead of using the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// Parses a whole number from `MIN` to `MAX`, saying which range when it is
/// not one (a negative number included: the flags that use it allow a
/// leading `-`, so `-k -1` is refused as out of range rather than read as a
/// flag).
fn count<const MIN: usize, const MAX: usize>(s: &str) -> Result<usize, String> {
    match s.parse::<i128>() {
        Ok(n) if (MIN as i128..=MAX as i128).contains(&n) => Ok(n as usize),
        Ok(n) => Err(format!(
            "{n} is out of range: use a whole number from {MIN} to {MAX}"
        )),
        Err(_) => Err(format!(
            "'{s}' is not a whole number: use one from {MIN} to {MAX}"
        )),
    }
}
