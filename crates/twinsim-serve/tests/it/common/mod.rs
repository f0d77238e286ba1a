//! What the in-process tests share: a model trained briefly on the
//! embedded sample, an index of its test images, and a server config.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;

use twinsim_data::LoadOptions;
use twinsim_index::gallery::{self, Gallery, Subset};
use twinsim_index::{file, Backend, Index};
use twinsim_learn::distributed::World;
use twinsim_learn::run::Run;
use twinsim_learn::train::{self, TrainOptions, TrainRequest};
use twinsim_serve::{Limits, ServeConfig};

/// A model trained briefly on the embedded sample, and an index of 20 test
/// images per class, made once for every test.
pub fn fixture() -> &'static (PathBuf, PathBuf) {
    static MADE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MADE.get_or_init(|| {
        let root =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(concat!("serve-", env!("CARGO_CRATE_NAME")));
        let _ = std::fs::remove_dir_all(&root);
        let (model, index_path) = (root.join("model"), root.join("gallery.tsi"));
        let data = LoadOptions::from_env(None);
        train::train(TrainRequest {
            options: TrainOptions {
                dataset: Some("mnist-sample".into()),
                arch: Some("cnn".into()),
                per_class: Some(200),
                epochs: Some(1),
                threads: Some(1),
                out: Some(model.clone()),
                ..TrainOptions::default()
            },
            resume: None,
            data: data.clone(),
            test_each_epoch: false,
            progress: false,
            world: Rc::new(World::single()),
        })
        .expect("the fixture model trains");
        let run = Run::open(&model, tch::Device::Cpu).unwrap();
        let subset = Subset {
            per_class: Some(20),
            ..Subset::default()
        };
        let g = Gallery::dataset(&run, "mnist-sample:test", &subset, &data).unwrap();
        save_index(&run, &g, &index_path);
        (model, index_path)
    })
}

/// An exact index of `g` embedded by `run`'s model, written to `path`.
pub fn save_index(run: &Run, g: &Gallery, path: &Path) {
    let bar = indicatif::ProgressBar::hidden();
    let embedded = gallery::embed(&run.model, g, &bar, &World::single()).unwrap();
    let mut index = Index::new(&run.model, &run.dir, Backend::Exact);
    index.add(&embedded, &g.labels, g.sources.clone()).unwrap();
    file::save(&index, path).unwrap();
}

/// Serves the fixture's model, and its index when `index`, within `limits`.
pub fn config(index: bool, limits: Limits) -> ServeConfig {
    let (model, index_path) = fixture();
    ServeConfig {
        model: model.clone(),
        index: index.then(|| index_path.clone()),
        addr: "127.0.0.1:0".parse().unwrap(),
        limits,
        data: LoadOptions::from_env(None),
    }
}
