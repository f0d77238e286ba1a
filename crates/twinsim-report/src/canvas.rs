//! An RGB pixel buffer that plotters draws on and that is saved as PNG.
//!
//! Plotters renders into the buffer (`BitMapBackend::with_buffer`) and the
//! workspace's `image` crate encodes it, so plotters' own encoder (and the
//! second `image` version it would pull in) is not needed; the buffer also
//! lets grids copy image tiles and exact-colour frames in directly.

use std::error::Error;
use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{ReportError, Result};
use crate::style::{self, MUTED};

/// What drawing code returns: plotters' errors are of several types and are
/// only ever reported as text, so they travel boxed.
pub(crate) type Drawn = std::result::Result<(), Box<dyn Error>>;

/// A plotters drawing area over a whole [`Canvas`] or a part of it.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The embedded font, registered as plotters' "sans-serif" so that every text
/// style (ours and plotters' defaults) finds it without a system font.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse; were it ever rejected,
        // the first text drawn reports "FontUnavailable" with the file's name.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The style of text of `size` pixels in `colour`.
pub(crate) fn font(size: f64, colour: [u8; 3]) -> TextStyle<'static> {
    register_font();
    ("sans-serif", size).into_font().color(&style::rgb(colour))
}

/// Width of `text` in pixels at `size`.
pub(crate) fn text_width(text: &str, size: f64) -> std::result::Result<u32, Box<dyn Error>> {
    Ok(font(size, MUTED).font.box_size(text)?.0)
}

/// Horizontal placement of a line of text relative to its x coordinate.
#[derive(Clone, Copy)]
pub(crate) enum Align {
    Left,
    Centre,
}

/// A white RGB image being drawn.
pub(crate) struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A white canvas of `width` × `height` pixels.
    pub(crate) fn new(width: u32, height: u32) -> Canvas {
        // Plotters' own default text styles are "sans-serif" too.
        register_font();
        Canvas {
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
        }
    }

    /// Width and height in pixels.
    pub(crate) fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Plotters' drawing area over the whole canvas.
    pub(crate) fn area(&mut self) -> Area<'_> {
        BitMapBackend::with_buffer(&mut self.rgb, (self.width, self.height)).into_drawing_area()
    }

    /// Fills a rectangle with an exact colour (no anti-aliasing), clipped to
    /// the canvas.
    pub(crate) fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, colour: [u8; 3]) {
        let (x0, x1) = (x.max(0), (x + w).min(self.width as i64));
        let (y0, y1) = (y.max(0), (y + h).min(self.height as i64));
        for row in y0..y1 {
            for col in x0..x1 {
                let at = (row as usize * self.width as usize + col as usize) * 3;
                self.rgb[at..at + 3].copy_from_slice(&colour);
            }
        }
    }

    /// Draws a `thickness`-pixel frame just outside the box at (x, y) of
    /// `w` × `h`, so the frame never covers the picture it surrounds.
    pub(crate) fn frame(&mut self, (x, y, w, h): (i64, i64, i64, i64), thickness: i64, colour: [u8; 3]) {
        let t = thickness;
        self.fill(x - t, y - t, w + 2 * t, t, colour);
        self.fill(x - t, y + h, w + 2 * t, t, colour);
        self.fill(x - t, y, t, h, colour);
        self.fill(x + w, y, t, h, colour);
    }

    /// Copies `picture` with its top-left corner at (x, y), clipped.
    pub(crate) fn paste(&mut self, picture: &RgbImage, x: i64, y: i64) {
        for (px, py, pixel) in picture.enumerate_pixels() {
            let (cx, cy) = (x + px as i64, y + py as i64);
            if (0..self.width as i64).contains(&cx) && (0..self.height as i64).contains(&cy) {
                let at = (cy as usize * self.width as usize + cx as usize) * 3;
                self.rgb[at..at + 3].copy_from_slice(&pixel.0);
            }
        }
    }

    /// Writes one line of text on the canvas; see [`write()`].
    pub(crate) fn text(
        &mut self,
        text: &str,
        at: (i64, i64),
        size: f64,
        colour: [u8; 3],
        align: Align,
    ) -> Drawn {
        write(&self.area(), text, at, size, colour, align)
    }

    /// Writes the canvas to `path` as PNG.
    pub(crate) fn save(self, path: &Path) -> Result<()> {
        let picture = RgbImage::from_raw(self.width, self.height, self.rgb)
            .expect("the buffer is allocated as width × height × 3");
        let mut png = std::io::Cursor::new(Vec::new());
        picture
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(|source| ReportError::Image {
                path: path.to_path_buf(),
                source,
            })?;
        crate::error::write_file(path, &png.into_inner())
    }
}

/// The longest side a picture may have: far beyond what a report shows, and
/// small enough that a mistaken request (a grid of every test image) fails
/// instead of allocating gigabytes.
const MAX_SIDE: u32 = 20_000;

/// Draws a picture of `width` × `height` with `draw` and saves it at `path`;
/// drawing errors are reported against `path`.
pub(crate) fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&mut Canvas) -> Drawn,
) -> Result<()> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ReportError::invalid(
            path,
            format!(
                "the picture would be {width}x{height} pixels (at most {MAX_SIDE} a side); draw fewer items"
            ),
        ));
    }
    let mut canvas = Canvas::new(width, height);
    draw(&mut canvas).map_err(|e| draw_error(path, e))?;
    canvas.save(path)
}

/// A drawing failure of the picture at `path`.
pub(crate) fn draw_error(path: &Path, cause: Box<dyn Error>) -> ReportError {
    ReportError::Draw {
        path: path.to_path_buf(),
        reason: cause.to_string(),
    }
}

/// Writes one line of text on `area` whose letters start at `top` (the top
/// of the tallest letters) and end a `size` lower, so that callers can stack
/// and centre lines by their size.
pub(crate) fn write(
    area: &Area<'_>,
    text: &str,
    (x, top): (i64, i64),
    size: f64,
    colour: [u8; 3],
    align: Align,
) -> Drawn {
    let left = match align {
        Align::Left => x,
        Align::Centre => x - i64::from(text_width(text, size)?) / 2,
    };
    let style = font(size, colour).pos(Pos::new(HPos::Left, VPos::Top));
    // plotters' ab_glyph text puts the baseline half a size below the
    // anchor, and DejaVu's letters rise 0.8 of a size above the baseline.
    let anchor_y = top + (0.3 * size).round() as i64;
    area.draw_text(text, &style, (left as i32, anchor_y as i32))?;
    Ok(())
}

/// The muted "no data" notice, centred on `area` on a white patch so that
/// guide lines (a chance diagonal) do not run through it.
pub(crate) fn no_data(area: &Area<'_>) -> Drawn {
    const TEXT: &str = "no data";
    let size = style::LABEL_SIZE;
    let (w, h) = area.dim_in_pixel();
    let (cx, cy) = (i64::from(w / 2), i64::from(h / 2));
    let half = (
        i64::from(text_width(TEXT, size)?) / 2 + 12,
        (size / 2.0) as i64 + 6,
    );
    let patch = [
        ((cx - half.0) as i32, (cy - half.1) as i32),
        ((cx + half.0) as i32, (cy + half.1) as i32),
    ];
    area.draw(&Rectangle::new(patch, WHITE.filled()))?;
    write(
        area,
        TEXT,
        (cx, cy - (size / 2.0) as i64),
        size,
        MUTED,
        Align::Centre,
    )
}
