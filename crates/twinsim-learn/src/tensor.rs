//! Whole datasets as tensors, in one copy each.

use tch::{Device, Kind, Tensor};
use twinsim_data::Images;

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
