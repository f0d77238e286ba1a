//! The `NAME[:SPLIT]` syntax, class lists, and the seeded splits.

use twinsim_data::split::{self, DatasetSpec, Selection, Source, SplitName};
use twinsim_data::{sample, DataError};

#[test]
fn specs_parse_names_splits_and_folders() {
    let s: DatasetSpec = "mnist:test".parse().unwrap();
    assert!(matches!(s.source, Source::Named(i) if i.name == "mnist"));
    assert_eq!(s.split, SplitName::Test);
    assert_eq!("cifar100".parse::<DatasetSpec>().unwrap().split, SplitName::Train);
    assert_eq!(
        "mnist-sample:val".parse::<DatasetSpec>().unwrap().source,
        Source::Sample
    );
    let f: DatasetSpec = "./photos:fit".parse().unwrap();
    assert_eq!(f.source, Source::Folder("./photos".into()));
    assert_eq!(f.split, SplitName::Fit);
    // A colon that is not a split belongs to the path.
    let odd: DatasetSpec = "./a:b".parse().unwrap();
    assert_eq!(odd.source, Source::Folder("./a:b".into()));
    let err = "imagenet".parse::<DatasetSpec>().unwrap_err();
    assert!(matches!(err, DataError::Invalid { .. }));
    assert!(err.hint().unwrap().contains("fashion-mnist"));
}

#[test]
fn class_lists_take_indices_ranges_and_names() {
    let names: Vec<String> = ["cat", "dog", "T-shirt/top", "3", "x"].map(String::from).to_vec();
    assert_eq!(split::parse_classes("0-1,4", &names).unwrap(), [0, 1, 4]);
    assert_eq!(split::parse_classes("dog, T-shirt/top", &names).unwrap(), [1, 2]);
    // An exact name wins over an index that looks the same.
    assert_eq!(split::parse_classes("3", &names).unwrap(), [3]);
    assert!(split::parse_classes("2-9", &names).is_err());
    assert!(split::parse_classes("4-1", &names).is_err());
    assert!(split::parse_classes("", &names).is_err());
}

#[test]
fn validation_is_stratified_disjoint_and_seeded() {
    let train = sample::load(SplitName::Train).unwrap();
    let (fit, val) = split::carve_validation(&train, 0.1, 3);
    assert_eq!(fit.len() + val.len(), train.len());
    assert!(fit.iter().all(|i| val.binary_search(i).is_err()));
    let per_class_val = train.select(&val, "val").class_counts();
    for (c, n) in train.class_counts().iter().enumerate() {
        assert_eq!(per_class_val[c], (0.1 * *n as f64).round() as usize);
    }
    assert_eq!(
        split::carve_validation(&train, 0.1, 3),
        (fit.clone(), val.clone())
    );
    assert_ne!(split::carve_validation(&train, 0.1, 4).1, val);
}

#[test]
fn selections_apply_after_the_split() {
    let train = sample::load(SplitName::Train).unwrap();
    let sel = Selection {
        classes: Some("5-9".into()),
        per_class: Some(20),
        ..Selection::default()
    };
    let ds = split::apply(train.clone(), SplitName::Fit, &sel).unwrap();
    assert_eq!(ds.split, "fit");
    assert_eq!(ds.len(), 100);
    assert!(ds.labels.iter().all(|&l| l >= 5));
    assert_eq!(ds.classes.len(), 10, "labels keep their class indices");
    let none = Selection {
        classes: Some("0".into()),
        per_class: Some(0),
        ..Selection::default()
    };
    assert!(split::apply(train, SplitName::Train, &none).is_err());
}
