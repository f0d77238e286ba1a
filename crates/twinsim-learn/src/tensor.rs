//! Whole datasets as tensors, in one copy each; tensors from and to files.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};
use twinsim_data::{read, Images};

/// The largest weights file read (4 GiB, forty times Inception-v3's): the
/// file is held in memory whole while its tensors are built.
pub const MAX_WEIGHTS_BYTES: u64 = 4 << 30;

/// All of `images` as a uint8 tensor of shape (N, C, H, W) on `device`:
/// one host-to-device copy, so training can index and augment batches on
/// the device without touching the host again.
pub fn images_tensor(images: &Images, device: Device) -> Tensor {
    let s = images.shape();
    Tensor::from_slice(images.as_bytes())
        .view([
            images.len() as i64,
            s.channels as i64,
            s.height as i64,
            s.width as i64,
        ])
        .to_device(device)
}

/// Labels as an int64 tensor of shape (N,) on `device`.
pub fn labels_tensor(labels: &[u32], device: Device) -> Tensor {
    let wide: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    Tensor::from_slice(&wide).to_kind(Kind::Int64).to_device(device)
}

/// The named tensors of the safetensors file `path`, on the CPU, or why it
/// cannot be read. Only a regular file of at most [`MAX_WEIGHTS_BYTES`] is
/// read, and the format's own parser checks every offset and size against
/// the bytes read, so a hostile header cannot ask for more.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, String> {
    let bytes = read::read_file(path, MAX_WEIGHTS_BYTES).map_err(|e| read::without_path(&e, path))?;
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| format!("not a readable safetensors file ({e})"))?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let kind = match view.dtype() {
                Dtype::F32 => Kind::Float,
                Dtype::F64 => Kind::Double,
                Dtype::I64 => Kind::Int64,
                Dtype::I32 => Kind::Int,
                Dtype::U8 => Kind::Uint8,
                other => {
                    return Err(format!(
                        "tensor '{name}' has type {other:?}, which twinsim does not store"
                    ))
                }
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)
                .map_err(|e| format!("tensor '{name}': {e}"))?;
            Ok((name, tensor))
        })
        .collect()
}

/// Why the stored variable `name` cannot be a trained model's: NaN or
/// infinite values, or a negative batch-norm variance (batch norm divides
/// by √(variance + ε), so every embedding, and every similarity, would be
/// NaN). Checked when a model or a checkpoint is loaded.
pub fn check_stored(name: &str, t: &Tensor) -> Result<(), String> {
    if !all_finite(t) {
        return Err(format!("variable '{name}' holds NaN or infinite values"));
    }
    let negative = name.ends_with("running_var")
        && t.f_min()
            .and_then(|m| m.f_double_value(&[]))
            .is_ok_and(|m| m < 0.0);
    if negative {
        return Err(format!("variable '{name}' holds a negative variance"));
    }
    Ok(())
}

/// True when every value of the float tensor `t` is finite (no NaN, no
/// infinity); tensors of integer kinds always are.
pub fn all_finite(t: &Tensor) -> bool {
    if !t.is_floating_point() {
        return true;
    }
    t.f_isfinite()
        .and_then(|f| f.f_all())
        .and_then(|a| a.f_int64_value(&[]))
        .is_ok_and(|v| v != 0)
}

/// One entry of a safetensors header; fields in the order the format's
/// reference writer uses, so our files match its byte for byte.
#[derive(serde::Serialize)]
struct TensorInfo {
    dtype: &'static str,
    shape: Vec<i64>,
    data_offsets: [usize; 2],
}

/// Serialises tensors in the safetensors format: an 8-byte little-endian
/// header length, a JSON header padded with spaces to a multiple of 8 bytes,
/// then the little-endian data in the given order. Bytes (uint8, such as a
/// checkpoint's progress record) are kept as bytes, everything else is
/// stored as float32, what the models train in. Written here rather than
/// through tch's file writer because a model's hash needs the bytes in
/// memory, and so that writing goes through [`twinsim_data::atomic`], whose
/// errors name the file and the cause (tch's printed a Debug struct for a
/// full disk).
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Vec<u8> {
    let mut header = BTreeMap::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let flat = t.detach().to_device(Device::Cpu).reshape([-1]);
        let start = data.len();
        let dtype = if flat.kind() == Kind::Uint8 {
            data.extend(Vec::<u8>::try_from(&flat).expect("a CPU uint8 tensor converts to bytes"));
            "U8"
        } else {
            let values = Vec::<f32>::try_from(&flat.to_kind(Kind::Float))
                .expect("a CPU float tensor converts to f32 values");
            data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            "F32"
        };
        let info = TensorInfo {
            dtype,
            shape: t.size(),
            data_offsets: [start, data.len()],
        };
        header.insert(name.as_str(), info);
    }
    let mut json = serde_json::to_vec(&header).expect("a safetensors header always serialises to JSON");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes.extend(data);
    bytes
}
