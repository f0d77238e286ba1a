//! Batch augmentation on the device, on uint8 images, drawn from libtorch's
//! generator (seeded per batch by the training loop, so runs repeat).

use tch::{Kind, Tensor};

use crate::error::{LearnError, Result};

/// Every augmentation name with a one-line description.
pub const AUGMENTATIONS: &[(&str, &str)] = &[
    ("auto", "shift-flip for colour images, affine for grey ones"),
    ("none", "the images as they are"),
    (
        "crop-flip",
        "random 4-pixel-padded crops and horizontal flips (CIFAR's standard)",
    ),
    (
        "shift",
        "random shifts of up to 2 pixels (for digits, which must not be flipped)",
    ),
    (
        "shift-flip",
        "random shifts of up to 2 pixels and horizontal flips (airbench's, for short colour runs)",
    ),
    (
        "shift-flip-erase",
        "shift-flip, then one random rectangle (2-25% of the image) blanked in half the images (random erasing, for clothing)",
    ),
    (
        "affine",
        "random rotations (up to 12 degrees), scalings (0.9-1.1) and shifts (up to 2 pixels), bilinear (for digits)",
    ),
];

/// Largest rotation of `affine`, in degrees.
const MAX_DEGREES: f64 = 12.0;
/// Largest relative change of size of `affine`.
const MAX_SCALE: f64 = 0.1;
/// Largest shift of `affine` and `shift`, in pixels.
const MAX_SHIFT: i64 = 2;
/// Share of images random erasing blanks a rectangle in, and the range of
/// the rectangle's area as a share of the image: Zhong et al.'s defaults
/// (p 0.5, area 0.02-0.4) narrowed to 0.25, since a 28x28 garment loses its
/// identity under a 40% hole.
const ERASE_P: f64 = 0.5;
const ERASE_AREA: (f64, f64) = (0.02, 0.25);
/// Range of the rectangle's aspect ratio (height / width), drawn log-uniformly.
const ERASE_ASPECT: (f64, f64) = (0.3, 3.3);

/// A resolved augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augment {
    None,
    CropFlip,
    Shift,
    ShiftFlip,
    ShiftFlipErase,
    Affine,
}

impl Augment {
    /// Resolves `name` (one of [`AUGMENTATIONS`]) for images with `channels`.
    pub fn parse(name: &str, channels: i64) -> Result<Augment> {
        match name {
            "auto" if channels == 3 => Ok(Augment::ShiftFlip),
            "auto" => Ok(Augment::Affine),
            "none" => Ok(Augment::None),
            "crop-flip" => Ok(Augment::CropFlip),
            "shift" => Ok(Augment::Shift),
            "shift-flip" => Ok(Augment::ShiftFlip),
            "shift-flip-erase" => Ok(Augment::ShiftFlipErase),
            "affine" => Ok(Augment::Affine),
            other => Err(LearnError::config(
                format!("unknown augmentation '{other}'"),
                format!("use one of: {}", crate::registry::names(AUGMENTATIONS)),
            )),
        }
    }

    /// Augments a uint8 batch (B, C, H, W); same shape out (uint8, except
    /// `affine`, which interpolates and gives float values in [0, 255]).
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Augment::None => x.shallow_clone(),
            Augment::CropFlip => flip(&crop(x, 4)),
            Augment::Shift => crop(x, MAX_SHIFT),
            Augment::ShiftFlip => flip(&crop(x, MAX_SHIFT)),
            Augment::ShiftFlipErase => erase(&flip(&crop(x, MAX_SHIFT))),
            Augment::Affine => affine(x),
        }
    }

    /// Whether it mirrors images, which makes the model's view of an image
    /// and of its mirror image equally valid (see `ModelCard::flip_average`).
    pub fn flips(self) -> bool {
        matches!(
            self,
            Augment::CropFlip | Augment::ShiftFlip | Augment::ShiftFlipErase
        )
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

/// A random rotation, scaling and shift of each image, sampled bilinearly
/// with zeros outside (the digits' background).
fn affine(x: &Tensor) -> Tensor {
    let (b, c, h, w) = x.size4().expect("batch is 4-d");
    let opts = (Kind::Float, x.device());
    let uniform = |half: f64| (Tensor::rand([b], opts) * 2.0 - 1.0) * half;
    let angle = uniform(MAX_DEGREES.to_radians());
    let scale = uniform(MAX_SCALE) + 1.0;
    // The grid maps output to input coordinates in [-1, 1]: dividing by the
    // scale enlarges the digit, and a pixel is 2/W of that range.
    let (cos, sin) = (angle.cos() / &scale, angle.sin() / &scale);
    let tx = uniform(2.0 * MAX_SHIFT as f64 / w as f64);
    let ty = uniform(2.0 * MAX_SHIFT as f64 / h as f64);
    let theta = Tensor::stack(&[&cos, &(-&sin), &tx, &sin, &cos, &ty], 1).view([b, 2, 3]);
    let grid = Tensor::affine_grid_generator(&theta, [b, c, h, w], false);
    // Interpolation 0 = bilinear, padding 0 = zeros.
    x.to_kind(Kind::Float).grid_sampler(&grid, 0, 0, false)
}

/// Random erasing (Zhong et al., 2017): in a random [`ERASE_P`] of the
/// images, one rectangle of random area and aspect ratio, placed wholly
/// inside, is set to zero (the background, and the mean after
/// normalisation). Same shape and kind out.
fn erase(x: &Tensor) -> Tensor {
    let (b, _, h, w) = x.size4().expect("batch is 4-d");
    let opts = (Kind::Float, x.device());
    let between = |(low, high): (f64, f64)| Tensor::rand([b, 1, 1, 1], opts) * (high - low) + low;
    let area = between(ERASE_AREA) * (h * w) as f64;
    let aspect = between((ERASE_ASPECT.0.ln(), ERASE_ASPECT.1.ln())).exp();
    // Sides of at least one pixel and at most the image's.
    let eh = (&area * &aspect).sqrt().round().clamp(1.0, h as f64);
    let ew = (area / aspect).sqrt().round().clamp(1.0, w as f64);
    // The top-left corner, uniform over the places the rectangle fits.
    let y0 = (Tensor::rand([b, 1, 1, 1], opts) * (-&eh + (h + 1) as f64)).floor();
    let x0 = (Tensor::rand([b, 1, 1, 1], opts) * (-&ew + (w + 1) as f64)).floor();
    let rows = Tensor::arange(h, opts).view([1, 1, h, 1]);
    let cols = Tensor::arange(w, opts).view([1, 1, 1, w]);
    let inside = rows
        .ge_tensor(&y0)
        .logical_and(&rows.lt_tensor(&(&y0 + &eh)))
        .logical_and(&cols.ge_tensor(&x0))
        .logical_and(&cols.lt_tensor(&(&x0 + &ew)));
    let chosen = Tensor::rand([b, 1, 1, 1], opts).lt(ERASE_P);
    x.masked_fill(&inside.logical_and(&chosen), 0)
}

/// Mirrors a random half of the batch left-right.
fn flip(x: &Tensor) -> Tensor {
    let b = x.size()[0];
    let mask = Tensor::rand([b, 1, 1, 1], (Kind::Float, x.device())).lt(0.5);
    x.flip([3]).where_self(&mask, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28×28 batch holding one bright 6×6 square in the middle of each image.
    fn squares(b: i64) -> Tensor {
        let x = Tensor::zeros([b, 1, 28, 28], (Kind::Uint8, tch::Device::Cpu));
        let _ = x.narrow(2, 11, 6).narrow(3, 11, 6).fill_(200);
        x
    }

    #[test]
    fn shift_moves_whole_pixels_and_keeps_everything() {
        let _rng = crate::global_rng();
        tch::manual_seed(1);
        let x = squares(64);
        let y = Augment::Shift.apply(&x);
        assert_eq!(y.kind(), Kind::Uint8);
        // Every square moved by at most 2 pixels stays whole inside the image.
        let sums = y
            .to_kind(Kind::Int64)
            .sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Int64);
        assert!(sums.eq(200 * 36).all().int64_value(&[]) == 1);
        assert!(!y.equal(&x), "nothing moved");
    }

    #[test]
    fn erasing_blanks_one_rectangle_in_about_half_the_images() {
        let _rng = crate::global_rng();
        tch::manual_seed(3);
        let x = Tensor::full([512, 1, 28, 28], 100, (Kind::Uint8, tch::Device::Cpu));
        let y = erase(&x);
        assert_eq!((y.size(), y.kind()), (x.size(), Kind::Uint8));
        // Only zeros are written: every value is 0 or as it was.
        assert_eq!(y.eq(0).logical_or(&y.eq(100)).all().int64_value(&[]), 1);
        let blank = y.eq(0).sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Int64);
        let erased = blank.gt(0).sum(Kind::Int64).int64_value(&[]);
        assert!((200..=312).contains(&erased), "{erased} of 512 erased");
        // Each blank is one rectangle: its pixels fill their bounding box,
        // and cover 2-25% of the image (rounding the sides adds a little).
        for i in 0..512 {
            let n = blank.int64_value(&[i]);
            if n == 0 {
                continue;
            }
            let at = y.get(i).get(0).eq(0).nonzero();
            let (lo, hi) = (at.min_dim(0, false).0, at.max_dim(0, false).0);
            let box_area = (hi.int64_value(&[0]) - lo.int64_value(&[0]) + 1)
                * (hi.int64_value(&[1]) - lo.int64_value(&[1]) + 1);
            assert_eq!(n, box_area, "image {i} is not one rectangle");
            assert!((1..=(0.3 * 784.0) as i64).contains(&n), "image {i}: {n} pixels");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_augmentation() {
        let _rng = crate::global_rng();
        let x = squares(32);
        for augment in [Augment::CropFlip, Augment::ShiftFlipErase, Augment::Affine] {
            tch::manual_seed(7);
            let first = augment.apply(&x);
            tch::manual_seed(7);
            assert!(first.equal(&augment.apply(&x)), "{augment:?} differs");
            tch::manual_seed(8);
            assert!(!first.equal(&augment.apply(&x)), "{augment:?} ignores the seed");
        }
    }

    #[test]
    fn affine_keeps_the_digit_near_its_place_and_size() {
        let _rng = crate::global_rng();
        tch::manual_seed(2);
        let x = squares(256);
        let y = Augment::Affine.apply(&x);
        assert_eq!(y.size(), x.size());
        assert!(y.min().double_value(&[]) >= 0.0 && y.max().double_value(&[]) <= 200.0 + 1e-3);
        // Mass changes with the scale only: (1 ± 0.1)² of the original.
        let ratio = y.sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Double) / (200.0 * 36.0);
        assert!(
            ratio.min().double_value(&[]) > 0.78 && ratio.max().double_value(&[]) < 1.23,
            "{ratio}"
        );
        // The centre of mass moves by at most the shift (plus rounding).
        let coords = Tensor::arange(28, (Kind::Double, tch::Device::Cpu));
        let rows = y
            .to_kind(Kind::Double)
            .sum_dim_intlist(&[1i64, 3][..], false, Kind::Double);
        let centre = (&rows * &coords).sum_dim_intlist(&[1i64][..], false, Kind::Double)
            / rows.sum_dim_intlist(&[1i64][..], false, Kind::Double);
        let offset = (centre - 13.5).abs().max().double_value(&[]);
        assert!(offset <= MAX_SHIFT as f64 + 0.5, "centre moved {offset}");
        // And the images differ from each other: the draws are per image.
        assert!(!y.get(0).equal(&y.get(1)));
    }
}
