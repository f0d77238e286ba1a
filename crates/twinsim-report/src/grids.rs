//! Grids of dataset images with the model's verdicts: pairs with their
//! similarity scores, and queries with their nearest neighbours.
//!
//! Images are upscaled by a whole factor (nearest neighbour) so that 28×28
//! digits show at about 84 pixels; frames are drawn in exact colours
//! ([`CORRECT`], [`WRONG`]) just
//! outside each image, so they never cover a pixel of it.

use std::error::Error;
use std::path::Path;

use crate::canvas::{self, render, text_width, Align, Canvas, Drawn};
use crate::error::{ReportError, Result};
use crate::style::{CORRECT, LABEL_SIZE, MUTED, QUERY, RULE, SMALL_SIZE, TEXT, TITLE_SIZE, WRONG};
use crate::tile::{upscale_factor, Tile};

/// Two images and how similar the model found them.
#[derive(Clone, Debug)]
pub struct PairTile {
    /// The first image, drawn on the left.
    pub a: Tile,
    /// The second image, drawn on the right.
    pub b: Tile,
    /// The model's similarity (or distance) score, printed with two decimals.
    pub score: f64,
    /// Whether the decision taken from the score was right: the score is
    /// printed in green with a tick when it was, in red with a cross when not.
    pub correct: bool,
    /// A short line under the score, such as "7 vs 1"; empty for none.
    pub caption: String,
}

/// A query image and the gallery images found nearest to it.
#[derive(Clone, Debug)]
pub struct NeighbourRow {
    /// The query image.
    pub query: Tile,
    /// The query's class name.
    pub query_label: String,
    /// The neighbours, nearest first; the first eight are drawn.
    pub neighbours: Vec<Neighbour>,
}

/// One retrieved neighbour of a query.
#[derive(Clone, Debug)]
pub struct Neighbour {
    /// The neighbour's image.
    pub tile: Tile,
    /// The neighbour's class name.
    pub label: String,
    /// Its similarity (or distance) to the query.
    pub score: f64,
    /// Whether it is a right answer (usually: same class as the query); it
    /// is framed in green when it is, red when not.
    pub correct: bool,
}

/// Most neighbours drawn per query: beyond this the row gets too wide to read.
pub const MAX_NEIGHBOURS: usize = 8;

/// Side, in pixels, that small images are upscaled towards.
const TILE_TARGET: usize = 84;
/// Space around the content of a cell.
const PAD: i64 = 12;
/// Space between the two images of a pair.
const PAIR_GAP: i64 = 6;
/// Space between an image and the text under it.
const TEXT_GAP: i64 = 8;
/// Space between two lines of text.
const LINE_GAP: i64 = 3;
/// Thickness of the frames around neighbours and queries.
const FRAME: i64 = 4;
/// Space between a query and its first neighbour (a rule is drawn in it).
const QUERY_GAP: i64 = 24;
/// Margin around the whole grid.
const MARGIN: i64 = 10;
/// Height of the title band.
const TITLE_BAND: i64 = 48;

/// Draws `pairs` in rows of `columns` cells, each cell holding the two images
/// side by side with the score under them (the classic Siamese-network
/// picture), and the caption under the score.
pub fn pair_grid(path: impl AsRef<Path>, pairs: &[PairTile], columns: usize) -> Result<()> {
    let path = path.as_ref();
    if columns == 0 {
        return Err(ReportError::invalid(path, "a grid needs at least one column"));
    }
    if pairs.is_empty() {
        return empty_grid(path, None);
    }
    let tiles = TileBox::of(pairs.iter().flat_map(|p| [&p.a, &p.b]));
    let lines: Vec<[Line; 2]> = pairs.iter().map(pair_lines).collect();
    let images_w = 2 * tiles.width + PAIR_GAP;
    let cell_w = images_w.max(widest(&lines).map_err(|e| canvas::draw_error(path, e))?) + 2 * PAD;
    let cell_h = PAD + tiles.height + TEXT_GAP + lines_height(&lines) + PAD;
    let columns = columns.min(pairs.len()) as i64;
    let rows = pairs.len().div_ceil(columns as usize) as i64;
    let size = (2 * MARGIN + columns * cell_w, 2 * MARGIN + rows * cell_h);
    render(path, pixels(size), |canvas| {
        rules(canvas, (MARGIN, MARGIN), (cell_w, cell_h), (columns, rows));
        for (i, (pair, lines)) in pairs.iter().zip(&lines).enumerate() {
            let x = MARGIN + (i as i64 % columns) * cell_w;
            let y = MARGIN + (i as i64 / columns) * cell_h;
            let images_x = x + (cell_w - images_w) / 2;
            tiles.paste(canvas, &pair.a, (images_x, y + PAD));
            tiles.paste(canvas, &pair.b, (images_x + tiles.width + PAIR_GAP, y + PAD));
            text_lines(canvas, lines, (x + cell_w / 2, y + PAD + tiles.height + TEXT_GAP))?;
        }
        Ok(())
    })
}

/// Draws one row per query: the query (framed, with its label), a rule,
/// then its neighbours (up to [`MAX_NEIGHBOURS`]), each framed green when
/// right and red when wrong, with its score and label under it; `title`
/// (e.g. "worst failures") goes above the grid.
pub fn neighbour_grid(path: impl AsRef<Path>, title: Option<&str>, rows: &[NeighbourRow]) -> Result<()> {
    let path = path.as_ref();
    if rows.is_empty() {
        return empty_grid(path, title);
    }
    let layout = NeighbourLayout::new(title, rows).map_err(|e| canvas::draw_error(path, e))?;
    render(path, pixels((layout.width, layout.height)), |canvas| {
        if let Some(title) = title {
            title_line(canvas, title, layout.width)?;
        }
        layout.draw_rules(canvas, rows.len() as i64);
        for (r, row) in rows.iter().enumerate() {
            layout.draw_row(canvas, row, layout.top + r as i64 * layout.cell_h)?;
        }
        Ok(())
    })
}

/// Where everything of a neighbour grid goes.
struct NeighbourLayout {
    tiles: TileBox,
    cell_w: i64,
    cell_h: i64,
    /// Top of the first row (below the title, if any).
    top: i64,
    width: i64,
    height: i64,
}

impl NeighbourLayout {
    /// Cells wide enough for the widest image or text, as many columns as
    /// the longest row (up to [`MAX_NEIGHBOURS`]) needs.
    fn new(
        title: Option<&str>,
        rows: &[NeighbourRow],
    ) -> std::result::Result<NeighbourLayout, Box<dyn Error>> {
        let shown = |row: &NeighbourRow| row.neighbours.len().min(MAX_NEIGHBOURS);
        let columns = rows.iter().map(shown).max().unwrap_or(0) as i64;
        let tiles = TileBox::of(rows.iter().flat_map(|r| {
            std::iter::once(&r.query).chain(r.neighbours.iter().take(MAX_NEIGHBOURS).map(|n| &n.tile))
        }));
        let lines: Vec<[Line; 2]> = rows
            .iter()
            .flat_map(|r| {
                let found = r.neighbours.iter().take(MAX_NEIGHBOURS);
                std::iter::once(query_lines(r)).chain(found.map(neighbour_lines))
            })
            .collect();
        let cell_w = (tiles.width + 2 * FRAME).max(widest(&lines)?) + 2 * PAD;
        let cell_h = PAD + FRAME + tiles.height + FRAME + TEXT_GAP + lines_height(&lines) + PAD;
        let top = MARGIN + if title.is_some() { TITLE_BAND } else { 0 };
        let title_w = title.map_or(Ok(0), |t| text_width(t, TITLE_SIZE))?;
        let grid_w = (1 + columns) * cell_w + QUERY_GAP;
        Ok(NeighbourLayout {
            tiles,
            cell_w,
            cell_h,
            top,
            width: 2 * MARGIN + grid_w.max(i64::from(title_w)),
            height: top + rows.len() as i64 * cell_h + MARGIN,
        })
    }

    /// Lines between rows, and between the queries and their neighbours.
    fn draw_rules(&self, canvas: &mut Canvas, rows: i64) {
        let row_w = self.width - 2 * MARGIN;
        rules(canvas, (MARGIN, self.top), (row_w, self.cell_h), (1, rows));
        let x = MARGIN + self.cell_w + QUERY_GAP / 2;
        canvas.fill(x, self.top, 1, rows * self.cell_h, RULE);
    }

    /// Draws the query and neighbours of `row` in the row whose top is `y`.
    fn draw_row(&self, canvas: &mut Canvas, row: &NeighbourRow, y: i64) -> Drawn {
        self.draw_cell(canvas, (&row.query, QUERY, &query_lines(row)), (MARGIN, y))?;
        for (k, n) in row.neighbours.iter().take(MAX_NEIGHBOURS).enumerate() {
            let x = MARGIN + (k as i64 + 1) * self.cell_w + QUERY_GAP;
            self.draw_cell(canvas, (&n.tile, verdict(n.correct), &neighbour_lines(n)), (x, y))?;
        }
        Ok(())
    }

    /// Draws `tile` in a `frame`-coloured frame with `lines` under it, in the
    /// cell whose top-left corner is `at`.
    fn draw_cell(
        &self,
        canvas: &mut Canvas,
        (tile, frame, lines): (&Tile, [u8; 3], &[Line]),
        at: (i64, i64),
    ) -> Drawn {
        let (w, h) = (self.tiles.width, self.tiles.height);
        let image_at = (at.0 + (self.cell_w - w) / 2, at.1 + PAD + FRAME);
        canvas.frame((image_at.0, image_at.1, w, h), FRAME, frame);
        self.tiles.paste(canvas, tile, image_at);
        text_lines(
            canvas,
            lines,
            (at.0 + self.cell_w / 2, image_at.1 + h + FRAME + TEXT_GAP),
        )
    }
}

/// The size, in pixels, of all the tiles of a grid once upscaled: every cell
/// gets room for the largest, and smaller ones are centred in it.
struct TileBox {
    scale: usize,
    width: i64,
    height: i64,
}

impl TileBox {
    fn of<'t>(tiles: impl Iterator<Item = &'t Tile> + Clone) -> TileBox {
        let side = tiles
            .clone()
            .map(|t| t.width().max(t.height()))
            .max()
            .unwrap_or(1);
        let scale = upscale_factor(side, TILE_TARGET);
        let largest = |dim: fn(&Tile) -> usize| (tiles.clone().map(dim).max().unwrap_or(1) * scale) as i64;
        TileBox {
            scale,
            width: largest(Tile::width),
            height: largest(Tile::height),
        }
    }

    /// Draws `tile` centred in the box whose top-left corner is `at`.
    fn paste(&self, canvas: &mut Canvas, tile: &Tile, at: (i64, i64)) {
        let picture = tile.to_rgb(self.scale);
        let dx = (self.width - i64::from(picture.width())) / 2;
        let dy = (self.height - i64::from(picture.height())) / 2;
        canvas.paste(&picture, at.0 + dx, at.1 + dy);
    }
}

/// A line of text, its size and colour.
type Line = (String, f64, [u8; 3]);

/// Writes `lines` centred on `x`, the first one's letters starting at `top`;
/// empty lines take no room.
fn text_lines(canvas: &mut Canvas, lines: &[Line], (x, top): (i64, i64)) -> Drawn {
    let mut y = top;
    for (text, size, colour) in lines.iter().filter(|l| !l.0.is_empty()) {
        canvas.text(text, (x, y), *size, *colour, Align::Centre)?;
        y += *size as i64 + LINE_GAP;
    }
    Ok(())
}

/// Light lines around and between the cells of a `columns` × `rows` grid of
/// `cell`-sized cells starting at `origin`.
fn rules(canvas: &mut Canvas, origin: (i64, i64), cell: (i64, i64), (columns, rows): (i64, i64)) {
    let (w, h) = (columns * cell.0, rows * cell.1);
    for c in 0..=columns {
        canvas.fill(origin.0 + c * cell.0, origin.1, 1, h + 1, RULE);
    }
    for r in 0..=rows {
        canvas.fill(origin.0, origin.1 + r * cell.1, w + 1, 1, RULE);
    }
}

/// Writes the grid's title centred at the top.
fn title_line(canvas: &mut Canvas, title: &str, width: i64) -> Drawn {
    canvas.text(title, (width / 2, MARGIN + 8), TITLE_SIZE, TEXT, Align::Centre)
}

/// A small picture saying there is nothing to show, so a report still has
/// an image where it expects one.
fn empty_grid(path: &Path, title: Option<&str>) -> Result<()> {
    let width = title
        .map_or(Ok(0), |t| text_width(t, TITLE_SIZE))
        .map_err(|e| canvas::draw_error(path, e))?;
    let width = (i64::from(width) + 2 * MARGIN + 20).max(420);
    let top = if title.is_some() { TITLE_BAND } else { 0 };
    render(path, pixels((width, top + 100)), |canvas| {
        if let Some(title) = title {
            title_line(canvas, title, width)?;
        }
        let area = canvas.area();
        canvas::no_data(&area.margin(top as u32, 0, 0, 0))
    })
}

/// The width of the widest of the lines of all `cells`.
fn widest(cells: &[[Line; 2]]) -> std::result::Result<i64, Box<dyn Error>> {
    cells
        .iter()
        .flatten()
        .map(|(text, size, _)| text_width(text, *size))
        .try_fold(0, |widest, w| Ok(widest.max(i64::from(w?))))
}

/// Height of the text under the images: room for each line that some cell
/// uses (an empty caption everywhere takes none).
fn lines_height(cells: &[[Line; 2]]) -> i64 {
    let line = |k: usize| {
        let used = cells
            .iter()
            .map(|lines| &lines[k])
            .filter(|line| !line.0.is_empty());
        used.map(|line| line.1 as i64 + LINE_GAP).max().unwrap_or(0)
    };
    (line(0) + line(1) - LINE_GAP).max(0)
}

/// The colour of a verdict.
fn verdict(correct: bool) -> [u8; 3] {
    if correct {
        CORRECT
    } else {
        WRONG
    }
}

/// Under a pair: the score, with a tick or a cross so the verdict does not
/// rest on colour alone, then the caption.
fn pair_lines(pair: &PairTile) -> [Line; 2] {
    let mark = if pair.correct { "✓" } else { "✗" };
    [
        (
            format!("{:.2} {mark}", pair.score),
            LABEL_SIZE,
            verdict(pair.correct),
        ),
        (pair.caption.clone(), SMALL_SIZE, MUTED),
    ]
}

/// Under a query: "query", then its label.
fn query_lines(row: &NeighbourRow) -> [Line; 2] {
    [
        ("query".into(), SMALL_SIZE, MUTED),
        (row.query_label.clone(), SMALL_SIZE, TEXT),
    ]
}

/// Under a neighbour: its score, then its label in the verdict's colour.
fn neighbour_lines(n: &Neighbour) -> [Line; 2] {
    [
        (format!("{:.2}", n.score), SMALL_SIZE, TEXT),
        (n.label.clone(), SMALL_SIZE, verdict(n.correct)),
    ]
}

/// A picture size in the form the canvas takes (sizes here are small and
/// positive; anything absurd is refused by the canvas).
fn pixels((width, height): (i64, i64)) -> (u32, u32) {
    let clamp = |v: i64| v.clamp(1, i64::from(u32::MAX)) as u32;
    (clamp(width), clamp(height))
}
