//! Dataset loading speed: each case is loaded `--runs` times (default 5) in
//! this process and the median wall time is printed, as a markdown table.
//!
//! `cargo run --release -p twinsim-data --example load_bench -- --data-dir ../shared/data`
//! (`./dev bench-data`). CIFAR-10's official formats are built from the
//! shared JPEG copy by its script, into target/bench-data (once).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use twinsim_data::catalog;
use twinsim_data::cifar::{self, CifarSplit};
use twinsim_data::folder::{self, FolderOptions};
use twinsim_data::{load, DatasetSpec, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].clone());
    let data_dir = PathBuf::from(value("--data-dir").unwrap_or_else(|| "../shared/data".into()));
    let runs: usize = value("--runs").map_or(Ok(5), |r| r.parse())?;
    let scratch = PathBuf::from("target/bench-data");
    std::fs::create_dir_all(&scratch)?;

    println!("| case | images | median s | runs |\n|---|---:|---:|---:|");
    let mut opts = LoadOptions::from_env(Some(data_dir.clone()));
    opts.locator.download = false;
    for spec in ["mnist:train", "mnist:test", "fashion-mnist:train"] {
        let spec: DatasetSpec = spec.parse()?;
        bench(&format!("{spec} from .gz IDX"), runs, || {
            Ok(load(&spec, &opts)?.len())
        })?;
    }

    let official = official_cifar10(&data_dir, &scratch)?;
    let cifar10 = catalog::find("cifar10").expect("cifar10 in catalog");
    for file in ["cifar-10-binary.tar.gz", "cifar-10-python.tar.gz"] {
        let path = official.join(file);
        bench(&format!("cifar10:train from {file}"), runs, || {
            Ok(cifar::load(cifar10.name, 10, &path, CifarSplit::Train, None)?.len())
        })?;
    }

    let folder = mnist_png_folder(&data_dir, &scratch)?;
    let fopts = FolderOptions {
        height: 28,
        width: 28,
        channels: 1,
        cache_dir: Some(scratch.join("folder-cache")),
        ..FolderOptions::default()
    };
    folder::load(&folder, "train", &fopts)?; // fills the cache
    bench("60,000-image PNG folder, cached", runs, || {
        Ok(folder::load(&folder, "train", &fopts)?.len())
    })?;
    Ok(())
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn bench(case: &str, runs: usize, mut f: impl FnMut() -> Res<usize>) -> Res<()> {
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..runs {
        let start = Instant::now();
        n = f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!("| {case} | {n} | {:.3} | {runs} |", times[runs / 2]);
    Ok(())
}

fn official_cifar10(data_dir: &Path, scratch: &Path) -> Res<PathBuf> {
    let out = scratch.join("cifar10-official");
    if !out.join("cifar-10-python.tar.gz").exists() {
        let python = std::env::var("TWINSIM_PYTHON").unwrap_or_else(|_| "python3".into());
        let status = Command::new(python)
            .arg(data_dir.join("cifar10/build_official_formats.py"))
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            return Err("build_official_formats.py failed (needs numpy and Pillow)".into());
        }
    }
    Ok(out)
}

/// MNIST's 60,000 training images written once as PNG files, `class/index.png`.
fn mnist_png_folder(data_dir: &Path, scratch: &Path) -> Res<PathBuf> {
    let root = scratch.join("mnist-png");
    if root.join("9").is_dir() {
        return Ok(root);
    }
    let mut opts = LoadOptions::from_env(Some(data_dir.to_path_buf()));
    opts.locator.download = false;
    let ds = load(&"mnist:train".parse()?, &opts)?;
    let tmp = scratch.join("mnist-png.tmp");
    for (i, &label) in ds.labels.iter().enumerate() {
        let dir = tmp.join(&ds.classes[label as usize]);
        std::fs::create_dir_all(&dir)?;
        image::save_buffer(
            dir.join(format!("{i:05}.png")),
            ds.images.image(i),
            28,
            28,
            image::ExtendedColorType::L8,
        )?;
    }
    std::fs::rename(tmp, &root)?;
    Ok(root)
}
