//! Unions of datasets (`mnist+cifar10`): the real MNIST and CIFAR-10 joined
//! in one shape with their classes apart, selections on the union, and the
//! spellings that are refused.

use crate::common;

use std::path::Path;

use common::CIFAR10_CLASSES;
use image::imageops::{self, FilterType};
use twinsim_data::folder::FolderOptions;
use twinsim_data::locate::Locator;
use twinsim_data::split::Source;
use twinsim_data::{load, DataError, DatasetSpec, LoadOptions, Origin, Selection};

/// Options that find data in `root` only, never download, never cache.
fn options(root: &Path, selection: Selection) -> LoadOptions {
    LoadOptions {
        locator: Locator {
            data_dir: Some(root.to_path_buf()),
            env_dir: None,
            cache_dir: None,
            system_dir: None,
            download: false,
            mirrors: None,
            progress: false,
        },
        folder: FolderOptions {
            cache_dir: None,
            ..FolderOptions::default()
        },
        selection,
        allow_sample: true,
    }
}

/// A data folder holding the shared MNIST and CIFAR-10 in its official
/// formats, as `mnist/` and `cifar10/`.
fn data_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(common::shared_data().join("mnist"), root.path().join("mnist")).unwrap();
    std::os::unix::fs::symlink(common::official_cifar10(), root.path().join("cifar10")).unwrap();
    root
}

fn spec(s: &str) -> DatasetSpec {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn mnist_and_cifar10_join_as_colour_images_with_their_classes_apart() {
    let root = data_root();
    let opts = options(root.path(), Selection::default());
    let union = load(&spec("mnist+cifar10:test"), &opts).unwrap();
    let mnist = load(&spec("mnist:test"), &opts).unwrap();
    assert_eq!(union.name, "mnist+cifar10");
    assert_eq!(union.split, "test");
    assert_eq!(union.len(), 20_000);
    assert_eq!(union.images.shape().to_string(), "3x32x32");
    let expected: Vec<String> = (0..10)
        .map(|d| format!("mnist/{d}"))
        .chain(CIFAR10_CLASSES.iter().map(|c| format!("cifar10/{c}")))
        .collect();
    assert_eq!(union.classes, expected);
    assert_eq!(&union.labels[..10_000], mnist.labels.as_slice());
    assert!(union.labels[10_000..].iter().all(|&l| (10..20).contains(&l)));
    assert_eq!(union.class_counts()[10..], [1000; 10]);
    assert!(union.coarse.is_none());
    assert!(matches!(&union.origin, Origin::Joint(parts) if parts.len() == 2));
    let parts = union.image_parts().unwrap();
    assert_eq!(parts.iter().filter(|&&p| p == 0).count(), 10_000);

    // An MNIST digit is its 28x28 plane stretched bilinearly to 32x32,
    // repeated as red, green and blue.
    for i in [0, 1234, 9999] {
        let digit = image::GrayImage::from_raw(28, 28, mnist.images.image(i).to_vec()).unwrap();
        let stretched = imageops::resize(&digit, 32, 32, FilterType::Triangle).into_raw();
        for plane in union.images.image(i).chunks_exact(32 * 32) {
            assert_eq!(plane, stretched.as_slice(), "image {i}");
        }
    }
    // CIFAR's images are already in the common shape: copied as they are.
    let cifar = load(&spec("cifar10:test"), &opts).unwrap();
    assert_eq!(union.images.image(10_000 + 77), cifar.images.image(77));
}

#[test]
fn selections_work_on_the_union_by_its_class_names() {
    let root = data_root();
    let selection = Selection {
        classes: Some("mnist/7, cifar10/cat".into()),
        per_class: Some(30),
        ..Selection::default()
    };
    let opts = options(root.path(), selection);
    let val = load(&spec("mnist+cifar10:val"), &opts).unwrap();
    let fit = load(&spec("mnist+cifar10:fit"), &opts).unwrap();
    for ds in [&val, &fit] {
        assert_eq!(ds.classes.len(), 20, "labels keep their indices");
        let counts = ds.class_counts();
        assert_eq!((counts[7], counts[13]), (30, 30), "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), 60);
        assert_eq!(ds.image_parts().unwrap().iter().filter(|&&p| p == 1).count(), 30);
    }
}

#[test]
fn a_union_names_its_parts_and_keeps_its_split_at_the_end() {
    let s = spec("mnist+cifar10:test");
    assert_eq!(s.name(), "mnist+cifar10");
    assert_eq!(s.to_string(), "mnist+cifar10:test");
    assert_eq!(spec(&s.name()), s.with_split(twinsim_data::SplitName::Train));
    let Source::Joint(parts) = &s.source else {
        panic!("not a union: {s:?}");
    };
    assert_eq!(parts.len(), 2);
    let three = spec("mnist-sample+fashion-mnist+./photos:val");
    assert!(matches!(&three.source, Source::Joint(p) if p[2] == Source::Folder("./photos".into())));
    assert_eq!(three.to_string(), "mnist-sample+fashion-mnist+./photos:val");
    // A folder whose own name holds a + is a folder, not a union.
    let tmp = tempfile::tempdir().unwrap();
    let odd = tmp.path().join("a+b");
    std::fs::create_dir(&odd).unwrap();
    let parsed = spec(odd.to_str().unwrap());
    assert_eq!(parsed.source, Source::Folder(odd));
}

#[test]
fn bad_unions_are_refused_with_the_reason_and_a_fix() {
    let cases = [
        ("mnist+", "empty part"),
        ("+mnist", "empty part"),
        ("mnist++cifar10", "empty part"),
        ("mnist+mnist", "named 'mnist'"),
        ("a/photos+b/photos", "named 'photos'"),
        ("mnist+mnist-sample", "mnist twice"),
        ("mnist:test+cifar10", "gives one part of the union"),
        ("mnist+cifar10:tset", "unknown split 'tset'"),
        ("mnist+imagenet", "unknown dataset 'imagenet'"),
    ];
    for (s, needle) in cases {
        let err = s.parse::<DatasetSpec>().unwrap_err();
        assert!(matches!(err, DataError::Invalid { .. }), "{s}: {err:?}");
        assert!(err.to_string().contains(needle), "{s}: {err}");
        assert!(err.hint().is_some_and(|h| !h.is_empty()), "{s}: no hint");
    }
}

#[test]
fn a_union_never_puts_the_embedded_sample_in_place_of_mnist() {
    // Loading MNIST alone falls back to the sample when nothing names a
    // data folder; inside a union it is an error naming MNIST's files.
    let empty = tempfile::tempdir().unwrap();
    let mut opts = options(empty.path(), Selection::default());
    opts.locator.data_dir = None;
    let err = load(&spec("mnist+fashion-mnist"), &opts).unwrap_err();
    assert!(
        matches!(&err, DataError::NotFound { dataset, .. } if dataset == "mnist"),
        "{err:?}"
    );
}

#[test]
fn a_folder_joins_under_its_own_name() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    for (class, colour) in [("red", [200, 10, 10]), ("blue", [10, 10, 200])] {
        std::fs::create_dir_all(photos.join(class)).unwrap();
        for i in 0..3 {
            image::RgbImage::from_pixel(40, 40, image::Rgb(colour))
                .save(photos.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let opts = options(tmp.path(), Selection::default());
    let name = format!("mnist-sample+{}", photos.display());
    let ds = load(&spec(&name), &opts).unwrap();
    assert_eq!(ds.name, "mnist-sample+photos");
    assert_eq!(ds.images.shape().to_string(), "3x32x32");
    assert_eq!(&ds.classes[10..], ["photos/blue", "photos/red"]);
    assert_eq!(ds.len(), 8_000 + 6);
}
