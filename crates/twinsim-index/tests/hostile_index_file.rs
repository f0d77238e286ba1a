//! Damaged index files and arbitrary bytes into the index reader (issue
//! 18): `file::load` returns `Ok` or an error, never panics. Counts and
//! sizes come from the file, so every one of them is an attack surface.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::Index as At;
use proptest::test_runner::RngSeed;
use safetensors::tensor::{Dtype, TensorView};
use twinsim_index::file;

/// A valid index of 3 items of dimension 4 in 2 classes, written the way
/// `file::save` writes one.
fn valid_index() -> Vec<u8> {
    let embeddings: Vec<u8> = (0..12).flat_map(|i| (i as f32 / 12.0).to_le_bytes()).collect();
    let labels: Vec<u8> = [0u32, 1, 1].iter().flat_map(|l| l.to_le_bytes()).collect();
    let sources = b"a.png\0b.png\0mnist:train#7\0".to_vec();
    let tensors = [
        (
            "embeddings",
            TensorView::new(Dtype::F32, vec![3, 4], &embeddings).unwrap(),
        ),
        ("labels", TensorView::new(Dtype::U32, vec![3], &labels).unwrap()),
        (
            "sources",
            TensorView::new(Dtype::U8, vec![sources.len()], &sources).unwrap(),
        ),
    ];
    let info = serde_json::json!({
        "format_version": twinsim_index::index::FORMAT_VERSION,
        "model_hash": "0".repeat(64),
        "model_dir": "/nowhere/run",
        "metric": "cosine",
        "dim": 4,
        "classes": ["zero", "one"],
        "backend": {"kind": "exact"},
    });
    let metadata = HashMap::from([
        ("format".to_string(), "twinsim-index".to_string()),
        ("info".to_string(), info.to_string()),
    ]);
    safetensors::serialize(tensors, Some(metadata)).unwrap()
}

/// Loads `bytes` as an index file; the answer is whatever `load` says,
/// which must come back rather than a panic.
fn load(bytes: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.tsi");
    std::fs::write(&path, bytes).unwrap();
    file::load(&path).is_ok()
}

#[test]
fn the_seed_is_a_valid_index() {
    // Mutations of an invalid seed would test only the first check.
    assert!(load(&valid_index()));
}

proptest! {
    // A fixed seed, so a run fails or passes for the code alone.
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(18),
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_index_files_are_refused_or_read(
        sets in proptest::collection::vec((any::<At>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<At>()),
    ) {
        let mut bytes = valid_index();
        for (at, v) in &sets {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        load(&bytes);
    }

    #[test]
    fn arbitrary_bytes_are_refused(noise in proptest::collection::vec(any::<u8>(), 0..2048)) {
        // Nothing random is a twinsim index: it needs a JSON header naming
        // the format.
        prop_assert!(!load(&noise));
    }

    #[test]
    fn a_header_with_any_length_prefix_is_refused_or_read(len in any::<u64>()) {
        let mut bytes = valid_index();
        bytes[..8].copy_from_slice(&len.to_le_bytes());
        load(&bytes);
    }
}
