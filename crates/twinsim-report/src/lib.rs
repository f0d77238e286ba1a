//! The pictures of a twinsim report, drawn from plain data.
//!
//! Evaluation computes numbers (losses per epoch, ROC points, pair distances,
//! embeddings, nearest neighbours); this crate turns them into PNG files and
//! an HTML page that shows them, without knowing anything about models or
//! tensors: slices of numbers and 8-bit images in, files out.
//!
//! - [`charts`]: training curves, ROC, distance histograms, 2-D embedding maps;
//! - [`grids`]: image pairs with their scores, queries with their neighbours;
//! - [`projection`]: PCA and t-SNE, to flatten embeddings for the maps;
//! - [`html`]: the self-contained `report.html`;
//! - [`tile`]: the image type the grids take; [`style`]: the shared palette.
//!
//! Text is drawn with DejaVu Sans, embedded in the crate, so pictures look the
//! same on every machine, fonts installed or not. Bad data does not panic:
//! NaN points are skipped, empty charts say "no data", and inconsistent input
//! (lengths that disagree) is a [`ReportError`] naming the file concerned.

#![warn(missing_docs)]

mod canvas;
pub mod charts;
pub mod error;
pub mod grids;
pub mod html;
pub mod projection;
pub mod style;
pub mod tile;

pub use charts::{curves, histogram_chart, line_chart, roc_chart, scatter_chart, Panel, Series};
pub use error::{ReportError, Result};
pub use grids::{neighbour_grid, pair_grid, Neighbour, NeighbourRow, PairTile};
pub use html::HtmlReport;
pub use projection::{pca_2d, tsne_2d};
pub use tile::Tile;
