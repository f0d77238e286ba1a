//! PyTorch checkpoints: one state dict in torch's zip and legacy layouts,
//! and the files refused. The checkpoints under tests/data were written once
//! by tests/data/make_torch_files.py; hostile pickles, and tensors placed
//! by hand in their storage, are written here.

use std::io::Write;
use std::path::{Path, PathBuf};

use twinsim_data::torch_file::{read_state_dict, StoredTensor};
use twinsim_data::DataError;
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn range(from: usize, to: usize) -> Vec<f32> {
    (from..to).map(|i| i as f32).collect()
}

/// The state dict make_torch_files.py saves: (name, shape, values).
fn expected_state_dict() -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    vec![
        ("0.weight", vec![3, 2, 2, 2], range(0, 24)),
        ("0.bias", vec![3], vec![-1.0, 0.0, 1.0]),
        ("1.weight", vec![3], vec![1.0; 3]),
        ("1.bias", vec![3], vec![0.0; 3]),
        ("1.running_mean", vec![3], vec![0.0, 0.25, 0.5]),
        ("1.running_var", vec![3], vec![1.0; 3]),
        ("1.num_batches_tracked", vec![], vec![7.0]),
        // Rows 1 and 2 of arange(12).reshape(3, 4): from storage offset 4.
        ("rows", vec![2, 4], range(4, 12)),
        // Its transpose, of the same storage with strides (1, 4).
        (
            "transposed",
            vec![4, 3],
            vec![0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.],
        ),
        // Stored N, H, W, C: gathered back to N, C, H, W order.
        ("channels_last", vec![1, 2, 3, 4], range(0, 24)),
        ("half", vec![4], vec![-1.5, 0.25, 65504.0, 2f32.powi(-24)]),
        ("bfloat16", vec![3], vec![1.0, -0.5, 3.0]),
        ("double", vec![2], vec![0.1, -2.5]),
        ("int32", vec![2], vec![-3.0, 7.0]),
    ]
}

fn assert_state_dict(path: &Path, want: Vec<(&str, Vec<usize>, Vec<f32>)>) {
    let got = read_state_dict(path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = got.iter().map(|(name, _)| name.as_str()).collect();
    let want_names: Vec<&str> = want.iter().map(|(name, ..)| *name).collect();
    assert_eq!(names, want_names, "{}", path.display());
    for ((name, tensor), (_, shape, values)) in got.into_iter().zip(want) {
        assert_eq!(tensor, StoredTensor { shape, values }, "{name}");
    }
}

#[test]
fn zip_and_legacy_layouts_give_the_same_state_dict() {
    assert_state_dict(&fixture("state_dict_zip.pth"), expected_state_dict());
    assert_state_dict(&fixture("state_dict_legacy.pth"), expected_state_dict());
}

#[test]
fn a_training_checkpoint_gives_its_state_dict() {
    // {"epoch": 3, "best_acc": 0.75, "state_dict": {"w": tensor([1., 2.])}}
    assert_state_dict(&fixture("checkpoint.pth"), vec![("w", vec![2], vec![1.0, 2.0])]);
}

/// The reason of the `Corrupt` error reading `path` gives, which must name it.
fn corruption(path: &Path) -> String {
    match read_state_dict(path) {
        Err(DataError::Corrupt { path: named, reason }) => {
            assert_eq!(named, path);
            reason
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The reason of the `Refused` error reading `path` gives, which must name it.
fn refusal(path: &Path) -> String {
    match read_state_dict(path) {
        Err(DataError::Refused { path: named, reason }) => {
            assert_eq!(named, path);
            reason
        }
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn only_a_dict_of_tensors_is_a_state_dict() {
    let reason = corruption(&fixture("list.pth"));
    assert!(
        reason.contains("holds an object of type list, not a state dict"),
        "{reason}"
    );
    let reason = corruption(&fixture("not_a_tensor.pth"));
    assert!(
        reason.contains("entry 'epoch' is of type int, not a tensor"),
        "{reason}"
    );
}

/// `os.system(command)`, pickled by hand (Python would name `posix.system`).
fn os_system_pickle(command: &str) -> Vec<u8> {
    let mut p = b"\x80\x02cos\nsystem\nX".to_vec();
    p.extend_from_slice(&(command.len() as u32).to_le_bytes());
    p.extend_from_slice(command.as_bytes());
    p.extend_from_slice(b"\x85R.");
    p
}

/// A zip archive holding `records` (name, bytes), uncompressed as torch
/// writes them.
fn write_zip(path: &Path, records: &[(&str, &[u8])]) {
    let mut zip = ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in records {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn a_dangerous_global_is_refused_without_running_it() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("marker");
    let pickle = os_system_pickle(&format!("touch {}", marker.display()));
    // As a zip checkpoint's data.pkl, and as a legacy file's first pickle.
    let zip = tmp.path().join("evil_zip.pth");
    write_zip(&zip, &[("evil/data.pkl", &pickle), ("evil/byteorder", b"little")]);
    let legacy = tmp.path().join("evil_legacy.pth");
    std::fs::write(&legacy, &pickle).unwrap();
    for path in [zip, legacy] {
        let reason = refusal(&path);
        assert!(reason.contains("os.system"), "{reason}");
        assert!(!marker.exists(), "the pickle's command ran");
    }
}

/// The pickle of `{"w": tensor}`, as torch writes it, where `tensor` views
/// float32 storage '0' of `numel` elements from `offset` with `size` and
/// `stride`, and with `view` as the persistent id's sixth field.
fn tensor_pickle(numel: i64, offset: i64, size: &[i64], stride: &[i64], view: &[u8]) -> Vec<u8> {
    let int = |i: i64| [b"\x8a\x08".as_slice(), &i.to_le_bytes()].concat();
    let tuple = |items: &[i64]| {
        let mut t = b"(".to_vec();
        items.iter().for_each(|&i| t.extend(int(i)));
        t.push(b't');
        t
    };
    let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
    p.extend_from_slice(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu");
    p.extend(int(numel));
    p.extend_from_slice(view);
    p.extend_from_slice(b"tQ");
    p.extend(int(offset));
    p.extend(tuple(size));
    p.extend(tuple(stride));
    p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtRs.");
    p
}

/// Reads a zip checkpoint of [`tensor_pickle`] over the storage 0, 1, 2, 3.
fn read_tensor(dir: &Path, pickle: &[u8]) -> Result<Vec<(String, StoredTensor)>, DataError> {
    let path = dir.join("t.pth");
    let data: Vec<u8> = [0f32, 1., 2., 3.].iter().flat_map(|v| v.to_le_bytes()).collect();
    write_zip(&path, &[("t/data.pkl", pickle), ("t/data/0", &data)]);
    read_state_dict(&path)
}

#[test]
fn tensors_must_stay_inside_their_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let read = |offset, size: &[i64], stride: &[i64]| {
        read_tensor(tmp.path(), &tensor_pickle(4, offset, size, stride, b""))
    };
    let values = |offset, size, stride| read(offset, size, stride).unwrap().remove(0).1.values;
    assert_eq!(values(1, &[3], &[1]), [1.0, 2.0, 3.0]);
    assert_eq!(values(0, &[2, 2], &[1, 2]), [0.0, 2.0, 1.0, 3.0]);
    assert!(values(4, &[0, 5], &[5, 1]).is_empty());
    for (offset, size, stride) in [
        (2, &[3][..], &[1][..]),
        (0, &[3], &[2]),
        (5, &[0], &[1]),
        (0, &[1 << 62, 4], &[0, 0]),
    ] {
        match read(offset, size, stride) {
            Err(DataError::Corrupt { reason, .. }) => {
                assert!(
                    reason.contains("does not fit in storage '0' of 4 elements"),
                    "{reason}"
                )
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    // Sizes and strides must pair up, and be non-negative.
    for (size, stride) in [(&[2][..], &[1, 1][..]), (&[-1], &[1])] {
        assert!(matches!(read(0, size, stride), Err(DataError::Corrupt { .. })));
    }
    // A storage's view (the persistent id's sixth field, from torch < 0.4).
    let view = b"(X\x01\x00\x00\x001K\x00K\x02t";
    match read_tensor(tmp.path(), &tensor_pickle(4, 0, &[2], &[1], view)) {
        Err(DataError::Refused { reason, .. }) => assert!(reason.contains("storage views"), "{reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    // None there is what torch's legacy layout writes.
    let tensors = read_tensor(tmp.path(), &tensor_pickle(4, 0, &[2], &[1], b"N")).unwrap();
    assert_eq!(tensors[0].1.values, [0.0, 1.0]);
}

#[test]
fn truncated_files_are_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("cut.pth");
    let legacy = std::fs::read(fixture("state_dict_legacy.pth")).unwrap();
    // Inside the pickles, then inside the last storage's data.
    for end in [100, legacy.len() - 10] {
        std::fs::write(&cut, &legacy[..end]).unwrap();
        let reason = corruption(&cut);
        assert!(reason.contains("(truncated?)"), "{end}: {reason}");
    }
    let zip = std::fs::read(fixture("state_dict_zip.pth")).unwrap();
    std::fs::write(&cut, &zip[..zip.len() / 2]).unwrap();
    let reason = corruption(&cut);
    assert!(reason.contains("truncated or damaged zip archive"), "{reason}");
}

#[test]
fn storages_larger_than_the_file_are_corrupt() {
    // A float32 storage declared with 2^40 elements, 16 bytes of which follow.
    let reason = corruption(&fixture("huge_storage_legacy.pth"));
    assert!(
        reason.contains(
            "storage '0' of 1099511627776 float32 elements needs 4398046511104 bytes, but the file has 16 left"
        ),
        "{reason}"
    );
    let reason = corruption(&fixture("huge_storage_zip.pth"));
    assert!(
        reason.contains(
            "huge/data/0 holds 16 bytes, but storage '0' of 1099511627776 float32 elements needs 4398046511104"
        ),
        "{reason}"
    );
    // 4 MB of zeros compressed into a file of a few KB.
    let reason = corruption(&fixture("deflated.pth"));
    assert!(
        reason.contains("archive/data/0 unpacks to 4194304 bytes"),
        "{reason}"
    );
    // 100 names for one 64-element tensor: 6,400 elements from a smaller file.
    let reason = corruption(&fixture("shared.pth"));
    assert!(
        reason.contains("its tensors hold 6400 elements in all"),
        "{reason}"
    );
}

#[test]
fn big_endian_legacy_files_are_refused() {
    let mut bytes = std::fs::read(fixture("state_dict_legacy.pth")).unwrap();
    let key = b"little_endian";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    // Past the memo opcode (BINPUT) that follows the key, its value True.
    let at = if bytes[at] == b'q' { at + 2 } else { at };
    assert_eq!(bytes[at], 0x88, "NEWTRUE");
    bytes[at] = 0x89;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.pth");
    std::fs::write(&path, bytes).unwrap();
    let reason = refusal(&path);
    assert!(reason.contains("big-endian"), "{reason}");
}

#[test]
fn other_files_are_not_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("text.pth");
    std::fs::write(&text, "hello, world").unwrap();
    let reason = corruption(&text);
    assert!(reason.contains("not a PyTorch checkpoint"), "{reason}");
    // A zip archive of another kind: an .npz.
    let npz = tmp.path().join("stats.npz");
    twinsim_data::npz::write(&npz, &[("mu", &[1], &[0.5])]).unwrap();
    let reason = corruption(&npz);
    assert!(reason.contains("not a PyTorch checkpoint"), "{reason}");
    let missing = tmp.path().join("missing.pth");
    assert!(matches!(read_state_dict(&missing), Err(DataError::Io { .. })));
}
