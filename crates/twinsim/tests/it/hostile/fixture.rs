//! What every family shares: one small model trained on the embedded
//! MNIST sample, a gallery index built with it, a few real digits as PNGs,
//! and the scratch folders.

use std::path::PathBuf;

use twinsim_data::{DatasetSpec, LoadOptions};

use super::files;
use crate::common::{self, train_sample_model, twinsim};

/// The shared inputs. Nothing under `run` or `ro` may change during the
/// suite (checked at its end); each case writes only under `rw`.
pub struct Fixture {
    /// The trained model's run directory.
    pub run: PathBuf,
    /// Read-only inputs: the corpus.
    pub ro: PathBuf,
    /// Per-case outputs and copies.
    pub rw: PathBuf,
    /// A gallery index of the sample's test digits, built with `run`.
    pub gallery: PathBuf,
    /// A digit, another of the same class, and one of another class.
    pub a: PathBuf,
    pub a2: PathBuf,
    pub b: PathBuf,
    /// The 28x28 pixels of `a`.
    pub a_pixels: Vec<u8>,
    /// The model's embedding width (the `.npz` statistics' dimension).
    pub dim: usize,
    /// `../shared/data/mnist` when it is there (real IDX files to pair with
    /// a hostile one).
    pub shared_mnist: Option<PathBuf>,
}

impl Fixture {
    /// Trains the model (a few seconds), builds the gallery and writes the
    /// digits, in a fresh scratch folder.
    pub fn build() -> Fixture {
        // One epoch of the small cnn on 100 images per class: the cases need
        // a working, calibrated model, not a good one.
        let run = train_sample_model(
            "hostile",
            &[
                "--arch",
                "cnn",
                "--per-class",
                "100",
                "--epochs",
                "1",
                "--batch-size",
                "40",
                "--per-class-batch",
                "4",
                "--seed",
                "1",
                "--threads",
                "2",
            ],
        );
        let root = run.parent().unwrap().to_path_buf();
        let (ro, rw) = (root.join("ro"), root.join("rw"));
        std::fs::create_dir_all(&ro).unwrap();
        std::fs::create_dir_all(&rw).unwrap();
        let gallery = ro.join("gallery.tsi");
        let (ok, _, err) = common::run(
            twinsim(&root.join("fixture-cache"))
                .args(["index", "build", "--model"])
                .arg(&run)
                .args(["--dataset", "mnist-sample:test", "--per-class", "5", "-o"])
                .arg(&gallery),
        );
        assert!(ok, "index build failed: {err}");

        let spec: DatasetSpec = "mnist-sample:test".parse().unwrap();
        let test = twinsim_data::load(&spec, &LoadOptions::from_env(None)).unwrap();
        let label_a = test.labels[0];
        let same = (1..test.len()).find(|&i| test.labels[i] == label_a).unwrap();
        let other = (1..test.len()).find(|&i| test.labels[i] != label_a).unwrap();
        let digit = |i: usize, name: &str| {
            files::write(&ro.join("images").join(name), &grey_png(test.images.image(i)))
        };
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("model.json")).unwrap()).unwrap();
        let dim = card["encoder"]["embedding_dim"].as_u64().expect("embedding_dim") as usize;
        let shared = crate::common::shared_data().join("mnist");
        Fixture {
            a: digit(0, "a.png"),
            a2: digit(same, "a2.png"),
            b: digit(other, "b.png"),
            a_pixels: test.images.image(0).to_vec(),
            dim,
            shared_mnist: shared
                .join("t10k-images-idx3-ubyte.gz")
                .is_file()
                .then_some(shared),
            run,
            ro,
            rw,
            gallery,
        }
    }

    /// A copy of the model's run directory at `rw/<name>` for a case to
    /// damage or overwrite.
    pub fn run_copy(&self, name: &str) -> PathBuf {
        let dst = self.rw.join(name);
        let _ = std::fs::remove_dir_all(&dst);
        crate::common::copy_run(&self.run, &dst)
    }

    /// A copy of the model's run directory under `ro/models/<name>`, for
    /// cases that only read a damaged model.
    pub fn model_copy(&self, name: &str) -> PathBuf {
        crate::common::copy_run(&self.run, &self.ro.join("models").join(name))
    }
}

/// The 28x28 grey digit `pixels` as an 8-bit PNG.
pub fn grey_png(pixels: &[u8]) -> Vec<u8> {
    files::png(28, 28, files::GREY, 8, None, |y, row| {
        row.extend(&pixels[y as usize * 28..(y as usize + 1) * 28])
    })
}
