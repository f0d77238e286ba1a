//! The index file: one safetensors file (no pickle, no code), written
//! atomically (temporary file, fsync, rename), so an interrupted write
//! leaves the previous index whole.
//!
//! Tensors: `embeddings` F32 (N, D); `labels` U32 (N); `sources` U8, each
//! row's source as UTF-8 followed by a NUL byte. Header metadata:
//! `format` = `twinsim-index` and `info` = [`IndexInfo`] as JSON.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use tch::Tensor;
use twinsim_data::read::{self, without_path};
use twinsim_data::{atomic, DataError};

use crate::error::{IndexError, Result};
use crate::index::{Index, IndexInfo, FORMAT_VERSION};

/// The `format` value that marks a twinsim index.
const FORMAT: &str = "twinsim-index";

/// What to do about a file that is not a usable index.
const HINT: &str = "the file is damaged or not an index made by `twinsim index build`; build it again";

/// Writes `index` to `path` atomically.
pub fn save(index: &Index, path: &Path) -> Result<()> {
    let n = index.len();
    let embeddings = Vec::<f32>::try_from(&index.embeddings().reshape([-1])).expect("CPU float32 rows");
    let embeddings: Vec<u8> = embeddings.iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels: Vec<u8> = index.labels().iter().flat_map(|v| v.to_le_bytes()).collect();
    let sources: Vec<u8> = index
        .sources()
        .iter()
        .flat_map(|s| s.bytes().chain(std::iter::once(0)))
        .collect();
    let tensors = [
        (
            "embeddings",
            view(Dtype::F32, vec![n, index.info.dim], &embeddings),
        ),
        ("labels", view(Dtype::U32, vec![n], &labels)),
        ("sources", view(Dtype::U8, vec![sources.len()], &sources)),
    ];
    let info = serde_json::to_string(&index.info).expect("index info serialises to JSON");
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("info".to_string(), info),
    ]);
    let bytes = safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| IndexError::invalid(format!("cannot serialise the index: {e}"), HINT))?;
    Ok(atomic::write_bytes(path, &bytes)?)
}

/// A view of `data` as a tensor of `shape`, whose sizes it matches.
fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> TensorView<'_> {
    TensorView::new(dtype, shape, data).expect("shapes match the data they describe")
}

/// The largest index file read: 64 GiB, twelve million 1,024-d embeddings.
/// An index is held in memory whole, so this bounds what a file can ask for.
const MAX_INDEX_BYTES: u64 = 64 << 30;

/// Reads the index at `path`, checking every length and value it relies on.
pub fn load(path: &Path) -> Result<Index> {
    let bad = |reason: String| IndexError::bad_index(path, reason, HINT);
    let bytes = read::read_file(path, MAX_INDEX_BYTES).map_err(|e| {
        let missing =
            matches!(&e, DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        let hint = if missing {
            "build one with `twinsim index build --model RUN_DIR --dataset NAME -o INDEX`"
        } else {
            "pass the index file that `twinsim index build` wrote (a regular file you may read)"
        };
        IndexError::bad_index(
            path,
            format!("cannot read the index ({})", without_path(&e, path)),
            hint,
        )
    })?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(
            "not a twinsim index (no `format: twinsim-index` in its header)".into(),
        ));
    }
    let info: IndexInfo = serde_json::from_str(meta.get("info").map_or("", String::as_str))
        .map_err(|e| bad(format!("unreadable index description ({e})")))?;
    if info.format_version != FORMAT_VERSION {
        return Err(IndexError::bad_index(
            path,
            format!(
                "index format {} (this twinsim reads format {FORMAT_VERSION})",
                info.format_version
            ),
            "rebuild the index with this twinsim, or use the twinsim that built it",
        ));
    }
    if let crate::Backend::Hnsw(params) = &info.backend {
        params.check().map_err(bad)?;
    }
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("damaged ({e})")))?;
    let get = |name: &str, dtype: Dtype| {
        let t = tensors
            .tensor(name)
            .map_err(|_| bad(format!("no `{name}` tensor")))?;
        if t.dtype() != dtype {
            return Err(bad(format!("`{name}` is {:?}, not {dtype:?}", t.dtype())));
        }
        Ok(t)
    };
    let embeddings = get("embeddings", Dtype::F32)?;
    let labels = get("labels", Dtype::U32)?;
    let sources = get("sources", Dtype::U8)?;
    let n = labels.shape().first().copied().unwrap_or(0);
    if embeddings.shape() != [n, info.dim] || labels.shape().len() != 1 {
        return Err(bad(format!(
            "embeddings of shape {:?} and {n} labels do not make a {}-d index",
            embeddings.shape(),
            info.dim
        )));
    }
    let labels: Vec<u32> = labels
        .data()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(l) = labels.iter().find(|&&l| l as usize >= info.classes.len()) {
        return Err(bad(format!("label {l} but only {} classes", info.classes.len())));
    }
    let sources =
        split_sources(sources.data(), n).ok_or_else(|| bad(format!("sources do not name {n} items")))?;
    let values: Vec<f32> = embeddings
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("an embedding is not finite (NaN or infinity)".into()));
    }
    let embeddings = Tensor::from_slice(&values).view([n as i64, info.dim as i64]);
    Ok(Index::from_parts(info, embeddings, labels, sources))
}

/// `n` NUL-terminated UTF-8 strings, or `None` if `bytes` is not exactly that.
fn split_sources(bytes: &[u8], n: usize) -> Option<Vec<String>> {
    let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if n == 0 {
        return bytes.is_empty().then(Vec::new);
    }
    if bytes.last() != Some(&0) {
        return None;
    }
    let parts: Vec<String> = body
        .split(|&b| b == 0)
        .map(|s| String::from_utf8(s.to_vec()).ok())
        .collect::<Option<_>>()?;
    (parts.len() == n).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::{empty, filled};
    use twinsim_learn::model::Distance;

    #[test]
    fn an_index_survives_the_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.idx");
        for index in [filled(50, 6, Distance::Cosine), empty(6, Distance::Euclidean)] {
            save(&index, &path).unwrap();
            let back = load(&path).unwrap();
            assert_eq!(back.info, index.info);
            assert_eq!(back.labels(), index.labels());
            assert_eq!(back.sources(), index.sources());
            assert!(back.embeddings().equal(index.embeddings()));
        }
    }

    #[test]
    fn truncated_damaged_and_foreign_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.idx");
        save(&filled(40, 6, Distance::Cosine), &path).unwrap();
        let whole = std::fs::read(&path).unwrap();
        let cases: [(&str, Vec<u8>); 4] = [
            ("truncated", whole[..whole.len() - 100].to_vec()),
            ("header cut", whole[..20].to_vec()),
            ("random", (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect()),
            ("empty", Vec::new()),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, bytes).unwrap();
            let e = load(&path).unwrap_err();
            assert!(e.to_string().contains("g.idx"), "{what}: {e}");
            assert!(e.hint().is_some(), "{what}");
        }
        // A plain safetensors file (a model's weights) is not an index.
        let other = safetensors::serialize([("w", view(Dtype::F32, vec![1], &[0u8; 4]))], None).unwrap();
        std::fs::write(&path, other).unwrap();
        assert!(load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a twinsim index"));
    }

    #[test]
    fn nan_rows_and_labels_past_the_classes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.idx");
        let good = filled(4, 2, Distance::Cosine);
        let nan = Tensor::from_slice(&[f32::NAN; 8]).view([4, 2]);
        let bad = Index::from_parts(
            good.info.clone(),
            nan,
            good.labels().to_vec(),
            good.sources().to_vec(),
        );
        save(&bad, &path).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("not finite"));
        let bad = Index::from_parts(
            good.info.clone(),
            good.embeddings().copy(),
            vec![0, 1, 2, 9],
            good.sources().to_vec(),
        );
        save(&bad, &path).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("label 9"));
    }
}
