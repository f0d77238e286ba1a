//! Pictures of search results: each query beside its nearest gallery
//! images, with their calibrated similarities; a neighbour the model calls
//! the same as the query is framed green, the others red.

use std::path::Path;

use twinsim_data::Images;
use twinsim_report::grids::{self, Neighbour, NeighbourRow, MAX_NEIGHBOURS};
use twinsim_report::tile::Tile;

use crate::error::{IndexError, Result};
use crate::identify::Hit;

/// Draws `queries` (named `names`) beside their `hits` into the PNG at
/// `path`; `gallery` holds the images of the hits, row by row, each row's
/// first [`MAX_NEIGHBOURS`] in order, and `threshold` is the model's.
pub fn draw(
    path: &Path,
    queries: &Images,
    names: &[String],
    hits: &[Vec<Hit>],
    gallery: &Images,
    threshold: f64,
) -> Result<()> {
    let mut next = 0;
    let rows: Vec<NeighbourRow> = hits
        .iter()
        .enumerate()
        .map(|(q, found)| {
            let neighbours = found
                .iter()
                .take(MAX_NEIGHBOURS)
                .map(|hit| {
                    next += 1;
                    Ok(Neighbour {
                        tile: tile(gallery, next - 1)?,
                        label: hit.label.clone(),
                        score: hit.similarity,
                        correct: hit.similarity >= threshold,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(NeighbourRow {
                query: tile(queries, q)?,
                query_label: names[q].clone(),
                neighbours,
            })
        })
        .collect::<Result<_>>()?;
    grids::neighbour_grid(
        path,
        Some("queries and their nearest gallery images (calibrated similarity)"),
        &rows,
    )
    .map_err(|e| {
        IndexError::invalid(
            format!("cannot draw {}: {e}", path.display()),
            "check that the folder exists and is writable",
        )
    })
}

/// The gallery items to load for [`draw`]: each row's first
/// [`MAX_NEIGHBOURS`] hits, in order.
pub fn drawn_items(hits: &[Vec<Hit>]) -> Vec<usize> {
    hits.iter()
        .flat_map(|h| h.iter().take(MAX_NEIGHBOURS).map(|hit| hit.item))
        .collect()
}

/// Image `i` of `images` as a tile.
fn tile(images: &Images, i: usize) -> Result<Tile> {
    let s = images.shape();
    Tile::new(s.channels, s.height, s.width, images.image(i).to_vec())
        .map_err(|e| IndexError::invalid(format!("cannot draw image {i}: {e}"), "report this as a bug"))
}
