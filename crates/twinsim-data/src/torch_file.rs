//! PyTorch checkpoints: `torch.save` of a state dict (".pth" files), read
//! without executing anything, for pretrained weights such as FID's
//! Inception-v3 (pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`).
//!
//! torch has written two layouts. Since torch 1.6 a checkpoint is a zip
//! archive: `<prefix>/data.pkl` holds the pickled object, whose tensors name
//! their storages by key, and `<prefix>/data/<key>` holds each storage's raw
//! bytes. Before that (and still with `_use_new_zipfile_serialization=False`)
//! it is the "legacy" stream: pickles of a magic number, the format version
//! 1001 and the writer's system information, then the object, then the list
//! of storage keys in the order their data follows, each storage as an 8-byte
//! element count and its raw elements. Only little-endian files are read.
//!
//! Pickles go through the crate's restricted unpickler (the one that reads
//! CIFAR's python download), and sizes are checked before anything is
//! allocated: a storage's data must be in the file, a tensor must lie inside
//! its storage, and the tensors together may not hold more elements than the
//! file has bytes (tensors can share a storage, so their storages alone do
//! not bound them). No file can thus make this reader allocate more than a
//! few times its own size.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use zip::result::ZipError;
use zip::ZipArchive;

use crate::error::{DataError, Result};
use crate::pickle::{self, Element, StorageRef, TensorRef, Unpickled, Value};
use crate::read;

/// A tensor read from a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// Its size along each dimension (empty for a scalar).
    pub shape: Vec<usize>,
    /// Its elements in row-major order of `shape`, converted to f32.
    pub values: Vec<f32>,
}

/// How a zip archive starts.
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// The legacy format's first pickle.
const LEGACY_MAGIC: i128 = 0x1950_a86a_20f9_469c_fc6c;

/// The legacy format's second pickle: the only version there is.
const LEGACY_VERSION: i128 = 1001;

/// The tensors of the state dict saved at `path`, by name, in the order the
/// file lists them, each converted to f32 (float16, bfloat16 and float64
/// exactly or rounded to nearest, int64 and int32 rounded to nearest).
///
/// The file, in either layout torch writes, holds a dict of tensors (what
/// `module.state_dict()` returns) or a dict keeping one under "state_dict",
/// as training checkpoints do. Any other object, a dict entry that is not a
/// tensor, a global outside the unpickler's allow-list and a damaged or
/// truncated file are errors naming the file and what is wrong.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, StoredTensor)>> {
    let mut file = read::open_file(path)?;
    let mut head = [0u8; 4];
    let is_zip = file.read_exact(&mut head).is_ok() && head == ZIP_MAGIC;
    file.rewind().map_err(|e| DataError::io(path, e))?;
    if is_zip {
        read_zip(path, file)
    } else {
        read_legacy(path, &read::read_capped(path, file, read::MAX_FILE_BYTES)?)
    }
}

// ---- the zip layout ----

/// [`read_state_dict`] of a zip checkpoint.
fn read_zip(path: &Path, file: File) -> Result<Vec<(String, StoredTensor)>> {
    let mut archive = Archive::open(path, file)?;
    if let Some(order) = archive.record("byteorder")? {
        if order != b"little" {
            return Err(DataError::refused(
                path,
                format!("checkpoint of byte order '{}'", String::from_utf8_lossy(&order)),
            ));
        }
    }
    let Some(pickled) = archive.record("data.pkl")? else {
        return Err(DataError::corrupt(
            path,
            format!(
                "a zip archive without {}/data.pkl, so not a PyTorch checkpoint",
                archive.prefix
            ),
        ));
    };
    let unpickled = pickle::unpickle(path, &pickled, 0)?;
    let tensors = state_dict(path, &unpickled.value)?;
    // Data is read once per key, through the first tensor's declaration:
    // every other must agree with it.
    storages_by_key(path, &unpickled.storages)?;
    check_elements(path, &tensors, archive.len)?;
    let mut data = HashMap::new();
    for (_, tensor) in &tensors {
        let key = tensor.storage.key;
        if !data.contains_key(key) {
            data.insert(key, Cow::Owned(archive.storage(&tensor.storage)?));
        }
    }
    gather_all(path, tensors, &data)
}

/// A zip checkpoint being read. Every record read is charged to `left`,
/// which starts at the file's length, so that compressed records (torch
/// writes none) cannot unpack to more than the file holds.
struct Archive<'p> {
    path: &'p Path,
    zip: ZipArchive<File>,
    /// The folder all records are in: torch takes the first record's.
    prefix: String,
    len: u64,
    left: u64,
}

impl<'p> Archive<'p> {
    fn open(path: &'p Path, file: File) -> Result<Self> {
        let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let zip = ZipArchive::new(file)
            .map_err(|e| DataError::corrupt(path, format!("truncated or damaged zip archive ({e})")))?;
        let prefix = match zip.name_for_index(0) {
            Some(Ok(name)) => name.split_once('/').map(|(prefix, _)| prefix.to_string()),
            _ => None,
        };
        let Some(prefix) = prefix else {
            return Err(DataError::corrupt(
                path,
                "a zip archive whose first record is not in a folder, so not a PyTorch checkpoint",
            ));
        };
        Ok(Archive {
            path,
            zip,
            prefix,
            len,
            left: len,
        })
    }

    /// The bytes of the record `<prefix>/<name>`, or `None` when there is none.
    fn record(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let full = format!("{}/{name}", self.prefix);
        let entry = match self.zip.by_name(&full) {
            Ok(entry) => entry,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(DataError::corrupt(self.path, format!("{full}: {e}"))),
        };
        let size = entry.size();
        if size > self.left {
            return Err(DataError::corrupt(
                self.path,
                format!(
                    "{full} unpacks to {size} bytes, which with the records before it is more than the \
                     file's {} bytes",
                    self.len
                ),
            ));
        }
        self.left -= size;
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::corrupt(self.path, format!("{full}: {e}")))?;
        Ok(Some(bytes))
    }

    /// The raw bytes of `storage`, from its record `<prefix>/data/<key>`.
    fn storage(&mut self, storage: &StorageRef) -> Result<Vec<u8>> {
        let name = format!("data/{}", storage.key);
        let Some(mut bytes) = self.record(&name)? else {
            return Err(DataError::corrupt(
                self.path,
                format!(
                    "{}/{name}, the data of storage '{}', is missing",
                    self.prefix, storage.key
                ),
            ));
        };
        let needed = storage.numel * storage.element.size();
        if bytes.len() < needed {
            return Err(DataError::corrupt(
                self.path,
                format!(
                    "{}/{name} holds {} bytes, but storage '{}' of {} {} elements needs {needed}",
                    self.prefix,
                    bytes.len(),
                    storage.key,
                    storage.numel,
                    storage.element.name()
                ),
            ));
        }
        bytes.truncate(needed);
        Ok(bytes)
    }
}

// ---- the legacy layout ----

/// [`read_state_dict`] of a legacy checkpoint, read whole into `bytes`.
fn read_legacy(path: &Path, bytes: &[u8]) -> Result<Vec<(String, StoredTensor)>> {
    let object = pickle::unpickle(path, bytes, legacy_header(path, bytes)?)?;
    let keys = pickle::unpickle(path, bytes, object.end)?;
    let tensors = state_dict(path, &object.value)?;
    let declared = storages_by_key(path, &object.storages)?;
    let data = legacy_data(path, bytes, &keys, &declared)?;
    check_elements(path, &tensors, bytes.len() as u64)?;
    gather_all(path, tensors, &data)
}

/// Checks the three pickles a legacy checkpoint starts with and returns the
/// offset of the object's pickle, which follows them.
fn legacy_header(path: &Path, bytes: &[u8]) -> Result<usize> {
    let not_torch = || {
        DataError::corrupt(
            path,
            "not a PyTorch checkpoint: neither a zip archive nor torch's legacy format",
        )
    };
    // Every pickle torch writes starts with PROTO: this is another kind of file.
    if bytes.first() != Some(&0x80) {
        return Err(not_torch());
    }
    let magic = pickle::unpickle(path, bytes, 0)?;
    if !matches!(magic.value, Value::Int(LEGACY_MAGIC)) {
        return Err(not_torch());
    }
    let version = pickle::unpickle(path, bytes, magic.end)?;
    if !matches!(version.value, Value::Int(LEGACY_VERSION)) {
        return Err(DataError::refused(
            path,
            format!("legacy checkpoint of a format version other than {LEGACY_VERSION}"),
        ));
    }
    let sys_info = pickle::unpickle(path, bytes, version.end)?;
    let Value::Dict(entries, _) = &sys_info.value else {
        return Err(DataError::corrupt(
            path,
            "legacy checkpoint without its system information",
        ));
    };
    let big_endian = entries
        .iter()
        .any(|(k, v)| matches!((k, v), (Value::Text(b"little_endian"), Value::Bool(false))));
    if big_endian {
        return Err(DataError::refused(
            path,
            "checkpoint written on a big-endian machine",
        ));
    }
    Ok(sys_info.end)
}

/// The data of each storage, which follows the pickle `keys` of their keys:
/// for each in order, its element count (8 bytes, little-endian) and its
/// elements.
fn legacy_data<'a>(
    path: &Path,
    bytes: &'a [u8],
    keys: &Unpickled<'a>,
    declared: &HashMap<&'a str, StorageRef<'a>>,
) -> Result<HashMap<&'a str, Cow<'a, [u8]>>> {
    let Value::List(keys_list, _) = &keys.value else {
        return Err(DataError::corrupt(
            path,
            format!("the list of storage keys is of type {}", keys.value.kind()),
        ));
    };
    let mut data = HashMap::with_capacity(keys_list.len());
    let mut at = keys.end;
    for key in keys_list {
        let name = key.as_name().map(String::from_utf8_lossy).unwrap_or_default();
        let Some(storage) = declared.get(&*name) else {
            return Err(DataError::corrupt(
                path,
                format!("offset {at}: data for storage '{name}', which the pickle does not declare"),
            ));
        };
        let (slice, end) = legacy_storage(path, bytes, at, storage)?;
        data.insert(storage.key, Cow::Borrowed(slice));
        at = end;
    }
    Ok(data)
}

/// The bytes of `storage`, whose count starts at offset `at`, and the offset
/// after them.
fn legacy_storage<'a>(
    path: &Path,
    bytes: &'a [u8],
    at: usize,
    storage: &StorageRef,
) -> Result<(&'a [u8], usize)> {
    let key = storage.key;
    let Some(count) = bytes.get(at..).and_then(|rest| rest.first_chunk::<8>()) else {
        return Err(DataError::corrupt(
            path,
            format!("the file ends before storage '{key}' (truncated?)"),
        ));
    };
    let count = u64::from_le_bytes(*count);
    if count != storage.numel as u64 {
        return Err(DataError::corrupt(
            path,
            format!(
                "storage '{key}' has {count} elements in the data but {} in its declaration",
                storage.numel
            ),
        ));
    }
    let start = at + 8;
    let len = storage.numel * storage.element.size();
    match bytes[start..].get(..len) {
        Some(slice) => Ok((slice, start + len)),
        None => Err(DataError::corrupt(
            path,
            format!(
                "storage '{key}' of {count} {} elements needs {len} bytes, but the file has {} left \
                 (truncated?)",
                storage.element.name(),
                bytes.len() - start
            ),
        )),
    }
}

// ---- both layouts ----

/// The tensors of the state dict that the pickled `top` is, or holds under
/// "state_dict", in the order the file lists them.
fn state_dict<'v, 'a>(path: &Path, top: &'v Value<'a>) -> Result<Vec<(String, &'v TensorRef<'a>)>> {
    let Value::Dict(entries, _) = top else {
        return Err(DataError::corrupt(
            path,
            format!(
                "holds an object of type {}, not a state dict (a dict of tensors)",
                top.kind()
            ),
        ));
    };
    // Training checkpoints keep the weights beside the epoch, the optimizer...
    let entries = match entries
        .iter()
        .rfind(|(k, _)| matches!(k, Value::Text(b"state_dict")))
    {
        Some((_, Value::Dict(inner, _))) => inner,
        _ => entries,
    };
    entries
        .iter()
        .map(|(key, value)| {
            let name = match key {
                Value::Text(name) => std::str::from_utf8(name).ok(),
                _ => None,
            };
            let Some(name) = name else {
                return Err(DataError::corrupt(
                    path,
                    format!("a state dict key is of type {}, not a UTF-8 str", key.kind()),
                ));
            };
            match value {
                Value::Tensor(tensor) => Ok((name.to_string(), &**tensor)),
                other => Err(DataError::corrupt(
                    path,
                    format!(
                        "state dict entry '{name}' is of type {}, not a tensor",
                        other.kind()
                    ),
                )),
            }
        })
        .collect()
}

/// The storages the pickle declared, by key. A key declared twice must be
/// declared alike: data is read once per key.
fn storages_by_key<'a>(path: &Path, storages: &[StorageRef<'a>]) -> Result<HashMap<&'a str, StorageRef<'a>>> {
    let mut by_key = HashMap::with_capacity(storages.len());
    for storage in storages {
        let first = by_key.entry(storage.key).or_insert(*storage);
        if first != storage {
            return Err(DataError::corrupt(
                path,
                format!(
                    "storage '{}' is declared with {} {} elements and with {} {}",
                    storage.key,
                    first.numel,
                    first.element.name(),
                    storage.numel,
                    storage.element.name()
                ),
            ));
        }
    }
    Ok(by_key)
}

/// Refuses tensors holding more elements in all than the file has bytes.
fn check_elements(path: &Path, tensors: &[(String, &TensorRef)], file_len: u64) -> Result<()> {
    let total = tensors
        .iter()
        .try_fold(0u64, |sum, (_, tensor)| sum.checked_add(tensor.numel as u64));
    match total {
        Some(total) if total <= file_len => Ok(()),
        _ => Err(DataError::corrupt(
            path,
            format!(
                "its tensors hold {} elements in all, more than the file's {file_len} bytes can store",
                total.map_or_else(|| "2^64 or more".to_string(), |t| t.to_string())
            ),
        )),
    }
}

/// Each tensor's values, from the bytes of its storage in `data`.
fn gather_all(
    path: &Path,
    tensors: Vec<(String, &TensorRef)>,
    data: &HashMap<&str, Cow<[u8]>>,
) -> Result<Vec<(String, StoredTensor)>> {
    tensors
        .into_iter()
        .map(|(name, tensor)| {
            let Some(bytes) = data.get(tensor.storage.key) else {
                return Err(DataError::corrupt(
                    path,
                    format!(
                        "the data of storage '{}' ('{name}') is missing",
                        tensor.storage.key
                    ),
                ));
            };
            let stored = StoredTensor {
                shape: tensor.shape.clone(),
                values: values(tensor, bytes),
            };
            Ok((name, stored))
        })
        .collect()
}

/// The tensor's elements in row-major order, converted to f32, from the
/// bytes of its storage (as many as the storage declares).
fn values(tensor: &TensorRef, bytes: &[u8]) -> Vec<f32> {
    match tensor.storage.element {
        Element::F32 => gather(tensor, bytes, f32::from_le_bytes),
        Element::F64 => gather(tensor, bytes, |b| f64::from_le_bytes(b) as f32),
        Element::F16 => gather(tensor, bytes, |b| f16_to_f32(u16::from_le_bytes(b))),
        Element::BF16 => gather(tensor, bytes, |b| {
            f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
        }),
        Element::I64 => gather(tensor, bytes, |b| i64::from_le_bytes(b) as f32),
        Element::I32 => gather(tensor, bytes, |b| i32::from_le_bytes(b) as f32),
    }
}

/// Reads the tensor's elements of `N` bytes each through its strides,
/// converting each with `convert`. The pickle reader checked the tensor lies
/// inside its storage, so every index is inside `bytes`.
fn gather<const N: usize>(tensor: &TensorRef, bytes: &[u8], convert: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    let element = |i: usize| {
        let mut raw = [0u8; N];
        raw.copy_from_slice(&bytes[i * N..(i + 1) * N]);
        convert(raw)
    };
    let mut out = Vec::with_capacity(tensor.numel);
    if tensor.numel == 0 {
        return out;
    }
    let dims = runs(&tensor.shape, &tensor.strides);
    let Some((&(len, stride), outer)) = dims.split_last() else {
        // Every size is 1: a single element.
        out.push(element(tensor.offset));
        return out;
    };
    let mut index = vec![0; outer.len()];
    let mut base = tensor.offset;
    loop {
        out.extend((0..len).map(|j| element(base + j * stride)));
        if !advance(&mut index, &mut base, outer) {
            return out;
        }
    }
}

/// A non-empty tensor's dimensions as (size, stride), without those of size
/// 1 and with each merged into the one before it when together they step
/// through storage evenly, so that a contiguous tensor is a single run.
fn runs(shape: &[usize], strides: &[usize]) -> Vec<(usize, usize)> {
    let mut dims: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
    for (&size, &stride) in shape.iter().zip(strides) {
        match dims.last_mut() {
            _ if size == 1 => {}
            Some((outer_size, outer_stride)) if *outer_stride == size * stride => {
                *outer_size *= size;
                *outer_stride = stride;
            }
            _ => dims.push((size, stride)),
        }
    }
    dims
}

/// Steps `index` (positions along `dims`) to the next one in row-major
/// order, moving the storage index `base` with it; false after the last.
fn advance(index: &mut [usize], base: &mut usize, dims: &[(usize, usize)]) -> bool {
    for (i, &(size, stride)) in index.iter_mut().zip(dims).rev() {
        *i += 1;
        *base += stride;
        if *i < size {
            return true;
        }
        *i = 0;
        *base -= size * stride;
    }
    false
}

/// An IEEE half-precision number, exactly (every one is an f32).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exponent = u32::from(bits >> 10) & 0x1f;
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match exponent {
        // Zero and subnormals: mantissa * 2^-24.
        0 => (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        // Infinities and NaNs.
        0x1f => 0x7f80_0000 | (mantissa << 13),
        // Rebias the exponent from 15 to 127.
        _ => ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        let cases: [(u16, f32); 8] = [
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0400, 2f32.powi(-14)),
            (0x0001, 2f32.powi(-24)),
            (0x03ff, 1023.0 * 2f32.powi(-24)),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (bits, want) in cases {
            assert_eq!(f16_to_f32(bits), want, "{bits:#06x}");
        }
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn runs_merge_contiguous_dimensions() {
        // Contiguous: one run.
        assert_eq!(runs(&[2, 3, 4], &[12, 4, 1]), [(24, 1)]);
        // Transposed: nothing merges.
        assert_eq!(runs(&[4, 3], &[1, 4]), [(4, 1), (3, 4)]);
        // Channels-last (N, C, H, W): H and W merge, N of size 1 goes.
        assert_eq!(runs(&[1, 2, 3, 4], &[24, 1, 8, 2]), [(2, 1), (12, 2)]);
        // Expanded (stride 0) and single-element dimensions.
        assert_eq!(runs(&[3, 1, 2], &[0, 5, 1]), [(3, 0), (2, 1)]);
        assert_eq!(runs(&[1, 1], &[1, 1]), []);
    }
}
