//! Samplers: reproducible from the seed, and each batch has the promised shape.

use twinsim_learn::samplers::{self, SamplerConfig};

/// 10 classes of unequal sizes (50..95 items).
fn labels() -> Vec<u32> {
    (0..10u32)
        .flat_map(|c| std::iter::repeat_n(c, 50 + 5 * c as usize))
        .collect()
}

fn build(name: &str, batch: usize, k: usize, seed: u64) -> Box<dyn samplers::Sampler> {
    let cfg = SamplerConfig {
        name,
        batch_size: batch,
        per_class: k,
        seed,
    };
    samplers::build(&cfg, &labels(), 10).unwrap()
}

#[test]
fn every_sampler_repeats_with_its_seed_and_changes_with_the_epoch() {
    for name in ["pairs", "balanced-pairs", "pk", "shuffle"] {
        let a = build(name, 40, 4, 1);
        assert_eq!(a.epoch(3), build(name, 40, 4, 1).epoch(3), "{name}");
        assert_ne!(a.epoch(3), a.epoch(4), "{name}");
        assert_ne!(a.epoch(3), build(name, 40, 4, 2).epoch(3), "{name}");
    }
}

#[test]
fn pk_batches_hold_p_classes_of_k_images() {
    let l = labels();
    for batch in build("pk", 40, 4, 0).epoch(0) {
        assert_eq!(batch.len(), 40);
        let mut per_class = [0usize; 10];
        for &i in &batch {
            per_class[l[i] as usize] += 1;
        }
        let used: Vec<usize> = per_class.into_iter().filter(|&n| n > 0).collect();
        assert_eq!(used, vec![4; 10]);
    }
    let err = samplers::build(
        &SamplerConfig {
            name: "pk",
            batch_size: 48,
            per_class: 4,
            seed: 0,
        },
        &labels(),
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("only 10 classes"), "{err}");
}

#[test]
fn shuffled_batches_show_each_image_at_most_once_an_epoch() {
    // 725 items in batches of 40: 18 full batches, the last 5 items dropped.
    let batches = build("shuffle", 40, 4, 0).epoch(0);
    assert_eq!(batches.len(), 18);
    assert!(batches.iter().all(|b| b.len() == 40));
    let mut seen = batches.concat();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 720, "no image twice");
    // Unlike P x K batches, they mix classes as the data does.
    let l = labels();
    let classes = |b: &[usize]| {
        b.iter()
            .map(|&i| l[i])
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert!(
        batches.iter().any(|b| classes(b) == 10),
        "some batch holds every class"
    );
}

#[test]
fn pair_samplers_pair_item_i_with_item_i_plus_half() {
    let l = labels();
    let n = l.len();
    let epoch = build("pairs", 40, 2, 0).epoch(0);
    assert_eq!(epoch.len(), n / 20);
    // Two shuffles: each item appears once among the first halves of an epoch.
    let mut firsts: Vec<usize> = epoch.iter().flat_map(|b| b[..20].to_vec()).collect();
    firsts.sort_unstable();
    firsts.dedup();
    assert_eq!(firsts.len(), n / 20 * 20);
    for batch in build("balanced-pairs", 40, 2, 0).epoch(0) {
        let same = (0..20).filter(|&i| l[batch[i]] == l[batch[i + 20]]).count();
        assert_eq!(same, 10, "half the pairs share a class");
        assert!(
            (0..20).all(|i| batch[i] != batch[i + 20]),
            "an item paired with itself"
        );
    }
}
