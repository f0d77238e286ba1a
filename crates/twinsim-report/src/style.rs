//! The look shared by every picture: colours and text sizes.
//!
//! One palette for everything, so that a series, a class or a group keeps the
//! same colour from one chart to the next in a report.

use plotters::style::RGBColor;

/// Series, group and class colours, in order (Tableau 10: distinct for most
/// colour-vision deficiencies and on white).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Marks a right decision (frame of a matching neighbour, score of a pair
/// judged correctly).
pub const CORRECT: [u8; 3] = [0, 140, 50];

/// Marks a wrong decision.
pub const WRONG: [u8; 3] = [210, 20, 30];

/// Frame of a query image: neutral, so it reads as neither right nor wrong.
pub(crate) const QUERY: [u8; 3] = [40, 60, 110];

/// Dark grey of ordinary text: softer than black, still high contrast.
pub(crate) const TEXT: [u8; 3] = [30, 30, 30];

/// Secondary text (captions, "no data").
pub(crate) const MUTED: [u8; 3] = [100, 100, 100];

/// Light lines that separate grid cells without drawing the eye.
pub(crate) const RULE: [u8; 3] = [215, 215, 215];

// Text sizes are ab_glyph pixel heights (ascent + descent), about 1.16 times
// the em size, so 19 gives 16 px letters.

/// Chart and grid titles.
pub(crate) const TITLE_SIZE: f64 = 26.0;
/// Axis descriptions and pair scores.
pub(crate) const LABEL_SIZE: f64 = 21.0;
/// Tick labels, legends, captions under images.
pub(crate) const SMALL_SIZE: f64 = 19.0;

/// The plotters colour of an RGB triple.
pub(crate) fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// The palette colour of series, group or class `i`, cycling past ten.
pub(crate) fn palette(i: usize) -> RGBColor {
    rgb(PALETTE[i % PALETTE.len()])
}
