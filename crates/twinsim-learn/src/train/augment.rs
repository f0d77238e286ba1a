//! Batch augmentation on the device, on uint8 images, drawn from libtorch's
//! generator (seeded per batch by the training loop, so runs repeat).

use tch::{Kind, Tensor};

use crate::error::{LearnError, Result};

/// Every augmentation name with a one-line description.
pub const AUGMENTATIONS: &[(&str, &str)] = &[
    ("auto", "crop-flip for colour images, none for grey ones"),
    ("none", "the images as they are"),
    (
        "crop-flip",
        "random 4-pixel-padded crops and horizontal flips (CIFAR's standard)",
    ),
    (
        "shift",
        "random shifts of up to 2 pixels (for digits, which must not be flipped)",
    ),
];

/// A resolved augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augment {
    None,
    CropFlip,
    Shift,
}

impl Augment {
    /// Resolves `name` (one of [`AUGMENTATIONS`]) for images with `channels`.
    pub fn parse(name: &str, channels: i64) -> Result<Augment> {
        match name {
            "auto" if channels == 3 => Ok(Augment::CropFlip),
            "auto" | "none" => Ok(Augment::None),
            "crop-flip" => Ok(Augment::CropFlip),
            "shift" => Ok(Augment::Shift),
            other => Err(LearnError::config(
                format!("unknown augmentation '{other}'"),
                format!("use one of: {}", crate::registry::names(AUGMENTATIONS)),
            )),
        }
    }

    /// Augments a uint8 batch (B, C, H, W); same shape out.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Augment::None => x.shallow_clone(),
            Augment::CropFlip => flip(&crop(x, 4)),
            Augment::Shift => crop(x, 2),
        }
    }
}

/// Pads by `pad` pixels of zeros and takes a random H×W window per image.
fn crop(x: &Tensor, pad: i64) -> Tensor {
    let (b, _, h, w) = x.size4().expect("batch is 4-d");
    let dev = x.device();
    let padded = x.constant_pad_nd([pad, pad, pad, pad]).permute([0, 2, 3, 1]); // (B, H+2p, W+2p, C)
    let oy = Tensor::randint(2 * pad + 1, [b, 1, 1], (Kind::Int64, dev));
    let ox = Tensor::randint(2 * pad + 1, [b, 1, 1], (Kind::Int64, dev));
    let rows = oy + Tensor::arange(h, (Kind::Int64, dev)).view([1, h, 1]);
    let cols = ox + Tensor::arange(w, (Kind::Int64, dev)).view([1, 1, w]);
    let batch = Tensor::arange(b, (Kind::Int64, dev)).view([b, 1, 1]);
    padded
        .index(&[Some(batch), Some(rows), Some(cols)])
        .permute([0, 3, 1, 2])
        .contiguous()
}

/// Mirrors a random half of the batch left-right.
fn flip(x: &Tensor) -> Tensor {
    let b = x.size()[0];
    let mask = Tensor::rand([b, 1, 1, 1], (Kind::Float, x.device())).lt(0.5);
    x.flip([3]).where_self(&mask, x)
}
