//! The shipped recipes (`recipes/*.toml`) are valid `--config` files and say
//! what their comments promise.

use std::path::PathBuf;

use twinsim_learn::train::recipe::DataFacts;
use twinsim_learn::train::TrainOptions;

/// Data of `classes` classes with thousands of images each (MNIST, CIFAR).
fn full_size(channels: i64, classes: usize) -> DataFacts {
    DataFacts {
        channels,
        classes,
        images_per_class: 5000,
    }
}

fn recipe(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../recipes")
        .join(name)
}

#[test]
fn every_recipe_parses() {
    let dir = recipe("");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            TrainOptions::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected the recipes in {}", dir.display());
}

#[test]
fn the_fast_mnist_recipe_is_the_small_cnn_for_two_epochs() {
    let cfg = TrainOptions::from_toml_file(&recipe("mnist-fast.toml"))
        .unwrap()
        .resolve(&full_size(1, 10))
        .unwrap();
    assert_eq!(
        (cfg.arch.as_str(), cfg.augment.as_str(), cfg.epochs),
        ("cnn", "none", 2)
    );
    assert_eq!(cfg.lr, 0.004);
    // Everything else stays the defaults.
    assert_eq!((cfg.loss.as_str(), cfg.batch_size), ("multi-similarity", 256));
}

#[test]
fn the_gpu_cifar_recipe_is_airbench_with_sgd_for_24_epochs() {
    let cfg = TrainOptions::from_toml_file(&recipe("cifar10-gpu.toml"))
        .unwrap()
        .resolve(&full_size(3, 10))
        .unwrap();
    assert_eq!(
        (cfg.arch.as_str(), cfg.loss.as_str(), cfg.augment.as_str()),
        ("airbench", "normalized-softmax", "shift-flip")
    );
    assert_eq!((cfg.batch_size, cfg.per_class_batch, cfg.epochs), (1000, 100, 24));
    assert_eq!(
        (cfg.optimizer.as_str(), cfg.lr, cfg.weight_decay),
        ("sgd", 0.8, 0.0005)
    );
}
