//! One small image (a dataset item) as the grids receive it.

use image::{Rgb, RgbImage};

use crate::error::{ReportError, Result};

/// An 8-bit image in planar CHW order, the layout twinsim's datasets use:
/// all of channel 0, then channel 1, then channel 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    channels: usize,
    height: usize,
    width: usize,
    pixels: Vec<u8>,
}

impl Tile {
    /// Wraps `pixels` (grey when `channels` is 1, RGB when 3), which must hold
    /// exactly `channels × height × width` values.
    pub fn new(channels: usize, height: usize, width: usize, pixels: Vec<u8>) -> Result<Tile> {
        let invalid = |reason: String| Err(ReportError::InvalidTile { reason });
        if channels != 1 && channels != 3 {
            return invalid(format!("{channels} channels (1 or 3 expected)"));
        }
        if height == 0 || width == 0 {
            return invalid(format!("empty {height}x{width} image"));
        }
        let expected = channels.checked_mul(height).and_then(|n| n.checked_mul(width));
        if expected != Some(pixels.len()) {
            return invalid(format!(
                "{} values do not form a {channels}x{height}x{width} image",
                pixels.len()
            ));
        }
        Ok(Tile {
            channels,
            height,
            width,
            pixels,
        })
    }

    /// Number of channels: 1 (grey) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The values, channel by channel (CHW).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The image in RGB, each pixel repeated `scale` × `scale` times
    /// (nearest neighbour, so small digits stay crisp instead of blurring).
    /// A `scale` of 0 is taken as 1.
    pub fn to_rgb(&self, scale: usize) -> RgbImage {
        let scale = scale.max(1);
        let plane = self.height * self.width;
        let (w, h) = (self.width * scale, self.height * scale);
        RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = (y as usize / scale) * self.width + x as usize / scale;
            let value = |c: usize| self.pixels[(c % self.channels) * plane + at];
            Rgb([value(0), value(1), value(2)])
        })
    }
}

/// The integer factor that brings a `side`-pixel image closest to `target`
/// pixels without shrinking it.
pub(crate) fn upscale_factor(side: usize, target: usize) -> usize {
    ((target as f64 / side.max(1) as f64).round() as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_lengths_and_channels() {
        assert!(Tile::new(1, 2, 2, vec![0; 3]).is_err());
        assert!(Tile::new(2, 2, 2, vec![0; 8]).is_err());
        assert!(Tile::new(3, 0, 2, vec![]).is_err());
        assert!(Tile::new(3, 2, 2, vec![0; 12]).is_ok());
    }

    #[test]
    fn upscales_by_repeating_pixels() {
        let grey = Tile::new(1, 1, 2, vec![10, 200]).unwrap().to_rgb(3);
        assert_eq!(grey.dimensions(), (6, 3));
        assert_eq!(grey.get_pixel(2, 2).0, [10, 10, 10]);
        assert_eq!(grey.get_pixel(3, 0).0, [200, 200, 200]);
        // Planar: red plane, then green, then blue.
        let colour = Tile::new(3, 1, 1, vec![1, 2, 3]).unwrap().to_rgb(1);
        assert_eq!(colour.get_pixel(0, 0).0, [1, 2, 3]);
    }

    #[test]
    fn factor_brings_digits_near_84_pixels() {
        assert_eq!(upscale_factor(28, 84), 3);
        assert_eq!(upscale_factor(32, 84), 3);
        assert_eq!(upscale_factor(200, 84), 1);
    }
}
