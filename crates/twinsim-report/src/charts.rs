//! Charts of numbers: training curves, ROC, distance histograms and 2-D
//! embedding maps, each written to a PNG file.
//!
//! Every chart is a title above one or two panels drawn by one routine
//! (`draw_panel`) from a list of layers, so axes, fonts, colours, legend
//! placement and the "no data" notice are the same in all of them. Points
//! with a NaN, infinite or absurdly large coordinate are left out; a chart
//! with nothing left says "no data" instead of failing.

use std::error::Error;
use std::ops::Range;
use std::path::Path;

use plotters::chart::{ChartContext, SeriesAnno, SeriesLabelPosition};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DynElement;
use plotters::prelude::*;

use crate::canvas::{self, font, render, text_width, Align, Area, Canvas, Drawn};
use crate::error::{ReportError, Result};
use crate::style::{palette, rgb, LABEL_SIZE, MUTED, PALETTE, RULE, SMALL_SIZE, TEXT, TITLE_SIZE};

/// A named line of (x, y) points, such as one loss over epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points, joined in this order.
    pub points: Vec<(f64, f64)>,
}

/// One panel of [`curves`]: what its y axis measures and the series on it.
#[derive(Clone, Copy, Debug)]
pub struct Panel<'a> {
    /// The y-axis description.
    pub y_label: &'a str,
    /// The series drawn in the panel.
    pub series: &'a [Series],
}

/// Size of a one-panel chart.
const CHART_SIZE: (u32, u32) = (900, 560);
/// Size of the two-panel [`curves`] chart.
const CURVES_SIZE: (u32, u32) = (900, 820);
/// Width of the map itself in [`scatter_chart`]; the class legend is added to its right.
const MAP_WIDTH: u32 = 640;
/// Height of the band above the panels that holds the title.
const TITLE_BAND: u32 = 50;
/// Room under a panel for tick labels alone, and for tick labels plus the
/// axis description.
const X_TICKS_ONLY: u32 = 36;
const X_TICKS_AND_LABEL: u32 = 72;
/// Series with at most this many points get a marker on every point: a
/// training run of one or two epochs would otherwise be invisible or a bare
/// segment; denser curves (ROC) read better without.
const MARKED_POINTS: usize = 60;
/// Histogram bins: enough to show shape, few enough that a few hundred
/// distances per group still fill them.
const BINS: usize = 50;
/// Largest magnitude drawn: beyond it, axis arithmetic (ranges, padding, tick
/// steps) loses meaning or overflows, so such values are skipped like NaN.
const MAX_MAGNITUDE: f64 = 1e15;
/// Width of the sample (line, swatch, marker) before a legend entry's text.
const LEGEND_SAMPLE: u32 = 28;
/// Line and legend-row height of the class legend of [`scatter_chart`].
const LEGEND_ROW: u32 = 26;

type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws `series` against a common x and y axis.
pub fn line_chart(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let x = padded(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let axes = series_axes(Panel { y_label, series }, x_label, x, whole_xs(series.iter()));
    let layers = line_layers(series, 0);
    render(path.as_ref(), CHART_SIZE, |canvas| {
        draw_panel(&titled(canvas, title)?, &axes, &layers)
    })
}

/// Draws two panels, one above the other, sharing the x axis (training curves:
/// losses on top, a validation metric below). Each series has its own colour
/// across both panels.
pub fn curves(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    top: Panel<'_>,
    bottom: Panel<'_>,
) -> Result<()> {
    let all = || top.series.iter().chain(bottom.series).flat_map(|s| &s.points);
    let x = padded(all().map(|p| p.0));
    let whole_x = whole_xs(top.series.iter().chain(bottom.series));
    let top_axes = series_axes(top, "", x.clone(), whole_x);
    let bottom_axes = series_axes(bottom, x_label, x, whole_x);
    let top_layers = line_layers(top.series, 0);
    let bottom_layers = line_layers(bottom.series, top.series.len());
    render(path.as_ref(), CURVES_SIZE, |canvas| {
        let area = titled(canvas, title)?;
        // The lower panel carries the x description: give it that much more
        // room so both plots get the same height.
        let height = area.dim_in_pixel().1;
        let (upper, lower) = area.split_vertically((height - (X_TICKS_AND_LABEL - X_TICKS_ONLY)) / 2);
        draw_panel(&upper, &top_axes, &top_layers)?;
        draw_panel(&lower, &bottom_axes, &bottom_layers)
    })
}

/// Draws a ROC curve from matching false- and true-positive rates, with the
/// chance diagonal, the AUC in the legend, and optionally the operating point
/// (false-positive rate, true-positive rate, legend text) of a chosen
/// threshold.
pub fn roc_chart(
    path: impl AsRef<Path>,
    fpr: &[f64],
    tpr: &[f64],
    auc: f64,
    operating_point: Option<(f64, f64, String)>,
) -> Result<()> {
    let path = path.as_ref();
    if fpr.len() != tpr.len() {
        return Err(ReportError::invalid(
            path,
            format!(
                "{} false-positive rates but {} true-positive rates",
                fpr.len(),
                tpr.len()
            ),
        ));
    }
    let points: Vec<(f64, f64)> = fpr.iter().copied().zip(tpr.iter().copied()).collect();
    let auc = if auc.is_finite() {
        format!("{auc:.4}")
    } else {
        "n/a".into()
    };
    let mut layers = vec![
        Layer::new(
            "chance",
            rgb(MUTED),
            Mark::Reference(vec![(0.0, 0.0), (1.0, 1.0)]),
        ),
        Layer::new(
            format!("ROC (AUC = {auc})"),
            palette(0),
            Mark::Line(finite(&points)),
        ),
    ];
    if let Some((x, y, label)) = operating_point.filter(|(x, y, _)| plottable(*x) && plottable(*y)) {
        layers.push(Layer::new(label, palette(3), Mark::Point((x, y))));
    }
    // A little past [0, 1] so a curve along the border stays visible.
    let unit = -0.02..1.02;
    let axes = Axes {
        x_label: "false positive rate",
        y_label: "true positive rate",
        x: unit.clone(),
        y: unit,
        ticks: true,
        whole_x: false,
    };
    render(path, CHART_SIZE, |canvas| {
        draw_panel(&titled(canvas, "ROC curve")?, &axes, &layers)
    })
}

/// Draws overlaid, semi-transparent histograms of each group's values on the
/// same bins, as densities so that groups of different sizes compare (e.g.
/// distances of same-class and of different-class pairs), with an optional
/// vertical line at a threshold (value, legend text).
pub fn histogram_chart(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    groups: &[(String, Vec<f64>)],
    threshold: Option<(f64, String)>,
) -> Result<()> {
    let threshold = threshold.filter(|(t, _)| plottable(*t));
    let bins_range = padded_if_flat(finite_range(groups.iter().flat_map(|g| g.1.iter().copied())));
    let mut layers: Vec<Layer> = groups
        .iter()
        .enumerate()
        .map(|(i, (name, values))| Layer::new(name, palette(i), Mark::Bars(histogram(values, &bins_range))))
        .collect();
    let tallest = layers
        .iter()
        .flat_map(|l| l.mark.samples())
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let y_top = if tallest > 0.0 { tallest * 1.12 } else { 1.0 };
    if let Some((t, label)) = &threshold {
        layers.push(Layer::new(
            label,
            rgb(TEXT),
            Mark::Reference(vec![(*t, 0.0), (*t, y_top)]),
        ));
    }
    let axes = Axes {
        x_label,
        y_label: "density",
        x: padded(
            [bins_range.start, bins_range.end]
                .into_iter()
                .chain(threshold.map(|t| t.0)),
        ),
        y: 0.0..y_top,
        ticks: true,
        whole_x: false,
    };
    render(path.as_ref(), CHART_SIZE, |canvas| {
        draw_panel(&titled(canvas, title)?, &axes, &layers)
    })
}

/// Draws a 2-D embedding map: `points[i]` in the colour (and, past ten
/// classes, the marker shape) of class `labels[i]`, named by `class_names`
/// in a legend beside the map so it never hides a point; the legend names
/// the classes that have points, in as many columns as they need (five for
/// 100 classes).
pub fn scatter_chart(
    path: impl AsRef<Path>,
    title: &str,
    points: &[(f64, f64)],
    labels: &[usize],
    class_names: &[String],
) -> Result<()> {
    let path = path.as_ref();
    if points.len() != labels.len() {
        return Err(ReportError::invalid(
            path,
            format!("{} points but {} labels", points.len(), labels.len()),
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= class_names.len()) {
        return Err(ReportError::invalid(
            path,
            format!("label {bad} but only {} class names", class_names.len()),
        ));
    }
    let mut by_class = vec![Vec::new(); class_names.len()];
    for (&point, &label) in points.iter().zip(labels) {
        by_class[label].extend(finite(&[point]));
    }
    // A model trained on some classes, shown on those, lists no others.
    let shown: Vec<(usize, &str)> = (by_class.iter().enumerate())
        .filter(|(_, dots)| !dots.is_empty())
        .map(|(class, _)| (class, class_names[class].as_str()))
        .collect();
    // Dense maps get smaller dots so clusters keep their shape.
    let radius = if points.len() > 3000 { 2 } else { 3 };
    let layers: Vec<Layer> = by_class
        .into_iter()
        .enumerate()
        .map(|(class, dots)| Layer {
            name: None,
            colour: palette(class),
            mark: Mark::Dots(dots, class_marker(class), radius),
        })
        .collect();
    let axes = Axes {
        x_label: "",
        y_label: "",
        x: padded(points.iter().map(|p| p.0)),
        y: padded(points.iter().map(|p| p.1)),
        ticks: false,
        whole_x: false,
    };
    let legend = ClassLegend::new(&shown).map_err(|e| canvas::draw_error(path, e))?;
    render(path, (MAP_WIDTH + legend.width(), CHART_SIZE.1), |canvas| {
        legend.draw(canvas, &shown)?;
        let area = titled(canvas, title)?;
        let (map, _) = area.split_horizontally(MAP_WIDTH);
        draw_panel(&map, &axes, &layers)
    })
}

/// The axes of one panel.
struct Axes<'a> {
    x_label: &'a str,
    y_label: &'a str,
    x: Range<f64>,
    y: Range<f64>,
    /// Embedding maps have no meaningful scale: they get a plain frame.
    ticks: bool,
    /// Whole-number x data (epochs, steps): ticks between whole numbers are
    /// left unlabelled, so one epoch reads "1", not "0.6 0.8 1.0 1.2".
    whole_x: bool,
}

/// The axes of `panel` over the shared x range `x`.
fn series_axes<'a>(panel: Panel<'a>, x_label: &'a str, x: Range<f64>, whole_x: bool) -> Axes<'a> {
    Axes {
        x_label,
        y_label: panel.y_label,
        x,
        y: padded(panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1))),
        ticks: true,
        whole_x,
    }
}

/// True when every plottable x of `series` is a whole number.
fn whole_xs<'a>(series: impl Iterator<Item = &'a Series>) -> bool {
    series
        .flat_map(|s| &s.points)
        .filter(|p| plottable(p.0))
        .all(|p| p.0.fract() == 0.0)
}

/// Marker shapes, so that classes past the tenth differ from the first ten
/// by shape where colours repeat.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Circle,
    Triangle,
    Square,
    Diamond,
    Cross,
    Plus,
}

/// A marker: its shape, and whether it is filled or only outlined.
#[derive(Clone, Copy, Debug)]
struct Marker {
    shape: Shape,
    filled: bool,
}

/// Class `class`'s marker: the palette's colour changes every class, the
/// shape every ten classes (five filled shapes, then five outlined ones), so
/// colour and marker together tell 100 classes apart.
fn class_marker(class: usize) -> Marker {
    use Shape::{Circle, Cross, Diamond, Plus, Square, Triangle};
    const FILLED: [Shape; 5] = [Circle, Triangle, Square, Diamond, Cross];
    const OUTLINED: [Shape; 5] = [Circle, Triangle, Square, Diamond, Plus];
    let block = class / PALETTE.len() % (2 * FILLED.len());
    match FILLED.get(block) {
        Some(&shape) => Marker { shape, filled: true },
        None => Marker {
            shape: OUTLINED[block - FILLED.len()],
            filled: false,
        },
    }
}

/// What a layer draws (all coordinates plottable).
enum Mark {
    /// A polyline, with markers when it has few points.
    Line(Vec<(f64, f64)>),
    /// A dashed guide (chance line, threshold): not data.
    Reference(Vec<(f64, f64)>),
    /// Histogram bars: (left, right, density).
    Bars(Vec<(f64, f64, f64)>),
    /// One highlighted point.
    Point((f64, f64)),
    /// Small translucent markers of one shape and radius, never in the panel
    /// legend (embedding maps have a class legend of their own).
    Dots(Vec<(f64, f64)>, Marker, i32),
}

impl Mark {
    /// True when the mark shows data (guides alone make a chart with no data).
    fn has_data(&self) -> bool {
        match self {
            Mark::Line(points) | Mark::Dots(points, ..) => !points.is_empty(),
            Mark::Bars(bins) => !bins.is_empty(),
            Mark::Point(_) => true,
            Mark::Reference(_) => false,
        }
    }

    /// Points covering what the mark inks, to find a free corner for the legend.
    fn samples(&self) -> Vec<(f64, f64)> {
        const STEPS: usize = 16;
        let along = |a: (f64, f64), b: (f64, f64)| {
            (0..STEPS).map(move |k| {
                let t = k as f64 / STEPS as f64;
                (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
            })
        };
        match self {
            Mark::Line(points) | Mark::Reference(points) => points
                .windows(2)
                .flat_map(|w| along(w[0], w[1]))
                .chain(points.last().copied())
                .collect(),
            Mark::Bars(bins) => bins
                .iter()
                .flat_map(|&(l, r, d)| {
                    along(((l + r) / 2.0, 0.0), ((l + r) / 2.0, d)).chain([((l + r) / 2.0, d)])
                })
                .collect(),
            Mark::Point(p) => vec![*p],
            Mark::Dots(points, ..) => points.clone(),
        }
    }
}

/// One named, coloured mark of a panel.
struct Layer {
    name: Option<String>,
    colour: RGBColor,
    mark: Mark,
}

impl Layer {
    /// A layer with a legend entry.
    fn new(name: impl Into<String>, colour: RGBColor, mark: Mark) -> Layer {
        Layer {
            name: Some(name.into()),
            colour,
            mark,
        }
    }
}

/// One line layer per series, coloured from palette entry `first_colour` on.
fn line_layers(series: &[Series], first_colour: usize) -> Vec<Layer> {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| Layer::new(&s.name, palette(first_colour + i), Mark::Line(finite(&s.points))))
        .collect()
}

/// True for a value that can be drawn: not NaN, not infinite, at most
/// [`MAX_MAGNITUDE`] in size.
fn plottable(v: f64) -> bool {
    v.abs() <= MAX_MAGNITUDE
}

/// The points with both coordinates plottable.
fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|p| plottable(p.0) && plottable(p.1))
        .collect()
}

/// The smallest range holding the plottable `values`, if there are any.
fn finite_range(values: impl Iterator<Item = f64>) -> Option<Range<f64>> {
    values
        .filter(|&v| plottable(v))
        .fold(None, |range: Option<Range<f64>>, v| match range {
            None => Some(v..v),
            Some(r) => Some(r.start.min(v)..r.end.max(v)),
        })
}

/// `range` widened when it is a single value (one point, equal values), so
/// that it has a size; 0..1 when there is no range at all.
fn padded_if_flat(range: Option<Range<f64>>) -> Range<f64> {
    match range {
        None => 0.0..1.0,
        Some(r) if r.end > r.start => r,
        Some(r) => {
            let pad = if r.start == 0.0 { 0.5 } else { r.start.abs() * 0.1 };
            r.start - pad..r.end + pad
        }
    }
}

/// The axis range for the plottable `values`, with a margin so points on the
/// edge (and their markers) stay inside the frame.
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let r = padded_if_flat(finite_range(values));
    let pad = (r.end - r.start) * 0.05;
    r.start - pad..r.end + pad
}

/// Densities of the plottable `values` over `BINS` equal bins spanning
/// `range`; empty bins are left out.
fn histogram(values: &[f64], range: &Range<f64>) -> Vec<(f64, f64, f64)> {
    let width = (range.end - range.start) / BINS as f64;
    let mut counts = [0usize; BINS];
    let mut total = 0usize;
    for v in values.iter().filter(|&&v| plottable(v)) {
        let bin = ((v - range.start) / width).floor().clamp(0.0, (BINS - 1) as f64) as usize;
        counts[bin] += 1;
        total += 1;
    }
    let left = |bin: usize| range.start + bin as f64 * width;
    (0..BINS)
        .filter(|&bin| counts[bin] > 0)
        .map(|bin| {
            (
                left(bin),
                left(bin + 1),
                counts[bin] as f64 / (total as f64 * width),
            )
        })
        .collect()
}

/// Writes `title` centred in the band at the top of the canvas (smaller if it
/// would not fit) and returns the area below it.
fn titled<'c>(canvas: &'c mut Canvas, title: &str) -> std::result::Result<Area<'c>, Box<dyn Error>> {
    let (width, _) = canvas.size();
    let room = f64::from(width.saturating_sub(40));
    let natural = f64::from(text_width(title, TITLE_SIZE)?.max(1));
    let size = TITLE_SIZE * (room / natural).min(1.0);
    canvas.text(title, (i64::from(width / 2), 12), size, TEXT, Align::Centre)?;
    Ok(canvas.area().margin(TITLE_BAND, 0, 0, 0))
}

/// Draws one panel: axes, the layers in order, the legend in the corner
/// with the least ink, and "no data" when no layer has any.
fn draw_panel(area: &Area<'_>, axes: &Axes<'_>, layers: &[Layer]) -> Drawn {
    let mut builder = ChartBuilder::on(area);
    builder.margin(10).margin_right(30);
    if axes.ticks {
        let below = if axes.x_label.is_empty() {
            X_TICKS_ONLY
        } else {
            X_TICKS_AND_LABEL
        };
        builder.x_label_area_size(below).y_label_area_size(100);
    }
    let mut chart = builder.build_cartesian_2d(axes.x.clone(), axes.y.clone())?;
    if axes.ticks {
        draw_mesh(&mut chart, axes)?;
    } else {
        let (w, h) = chart.plotting_area().dim_in_pixel();
        let frame = Rectangle::new([(0, 0), (w as i32 - 1, h as i32 - 1)], rgb(RULE).stroke_width(1));
        chart.plotting_area().strip_coord_spec().draw(&frame)?;
    }
    for layer in layers {
        draw_layer(&mut chart, layer)?;
    }
    if !layers.iter().any(|l| l.mark.has_data()) {
        canvas::no_data(&chart.plotting_area().strip_coord_spec())?;
    }
    if layers.iter().any(|l| l.name.is_some()) {
        chart
            .configure_series_labels()
            .position(quietest_corner(layers, axes))
            .margin(14)
            .legend_area_size(LEGEND_SAMPLE + 10)
            .background_style(WHITE.mix(0.92))
            .border_style(rgb(RULE))
            .label_font(font(SMALL_SIZE, TEXT))
            .draw()?;
    }
    Ok(())
}

/// Grid, axes, tick labels (with as many decimals as their spacing needs)
/// and axis descriptions.
fn draw_mesh(chart: &mut Chart<'_, '_>, axes: &Axes<'_>) -> Drawn {
    const X_TICKS: usize = 8;
    const Y_TICKS: usize = 7;
    let (x_decimals, y_decimals) = (decimals(&axes.x, X_TICKS), decimals(&axes.y, Y_TICKS));
    let x_format = |v: &f64| match axes.whole_x {
        true if v.fract().abs() > 1e-9 => String::new(),
        true => tick_label(v.round(), 0),
        false => tick_label(*v, x_decimals),
    };
    let y_format = |v: &f64| tick_label(*v, y_decimals);
    chart
        .configure_mesh()
        .x_desc(axes.x_label)
        .y_desc(axes.y_label)
        .x_labels(X_TICKS)
        .y_labels(Y_TICKS)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .label_style(font(SMALL_SIZE, TEXT))
        .axis_desc_style(font(LABEL_SIZE, TEXT))
        .bold_line_style(rgb(RULE))
        .max_light_lines(2)
        .light_line_style(rgb([240, 240, 240]))
        .axis_style(rgb(MUTED))
        .draw()?;
    Ok(())
}

/// Decimals that tell apart ticks about `range / ticks` apart.
fn decimals(range: &Range<f64>, ticks: usize) -> usize {
    let step = (range.end - range.start) / ticks as f64;
    (-step.log10()).ceil().clamp(0.0, 8.0) as usize
}

/// A tick value with `decimals` decimals, in scientific notation when large.
fn tick_label(v: f64, decimals: usize) -> String {
    if v.abs() >= 1e5 {
        return format!("{v:.1e}");
    }
    let text = format!("{v:.decimals$}");
    // Rounding small negatives gives "-0.00", which reads as a different value.
    if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

/// Draws one layer and gives it its legend entry.
fn draw_layer<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, layer: &Layer) -> Drawn {
    let colour = layer.colour;
    let anno = match &layer.mark {
        Mark::Line(points) => {
            if points.len() <= MARKED_POINTS {
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, colour.filled())))?;
            }
            chart.draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(3)))?
        }
        Mark::Reference(points) => {
            let style = colour.stroke_width(2);
            chart.draw_series(DashedLineSeries::new(points.iter().copied(), 8, 6, style))?
        }
        Mark::Bars(bins) => {
            let fill = colour.mix(0.35).filled();
            chart.draw_series(
                bins.iter()
                    .map(|&(l, r, d)| Rectangle::new([(l, 0.0), (r, d)], fill)),
            )?;
            chart.draw_series(LineSeries::new(bar_outline(bins), colour.stroke_width(2)))?
        }
        Mark::Point(p) => chart.draw_series([Circle::new(*p, 8, colour.filled())])?,
        Mark::Dots(points, kind, radius) => {
            for &p in points {
                chart
                    .plotting_area()
                    .draw(&marker(*kind, p, *radius, colour.mix(0.6)))?;
            }
            return Ok(());
        }
    };
    if let Some(name) = &layer.name {
        label(anno, name, &layer.mark, colour);
    }
    Ok(())
}

/// The stepped outline along the tops of `bins`, down to zero between runs of
/// bins, so overlapping histograms stay distinguishable under the fill.
fn bar_outline(bins: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
    let mut outline = Vec::with_capacity(bins.len() * 4);
    for (i, &(l, r, d)) in bins.iter().enumerate() {
        let joined = i > 0 && bins[i - 1].1 == l;
        if !joined {
            outline.push((l, 0.0));
        }
        outline.extend([(l, d), (r, d)]);
        if bins.get(i + 1).is_none_or(|next| next.0 != r) {
            outline.push((r, 0.0));
        }
    }
    outline
}

/// Gives the series just drawn the legend entry `name`, with a sample of
/// `mark` in `colour`. Plotters places samples by their left end, in a
/// `LEGEND_SAMPLE`-wide space before the text.
fn label<'a, 'b: 'a>(
    anno: &mut SeriesAnno<'a, BitMapBackend<'b>>,
    name: &str,
    mark: &Mark,
    colour: RGBColor,
) {
    const MID: i32 = LEGEND_SAMPLE as i32 / 2;
    let anno = anno.label(name);
    let line = move |from, to, width| PathElement::new(vec![(from, 0), (to, 0)], colour.stroke_width(width));
    let swatch = [(0, -7), (2 * MID, 7)];
    match mark {
        Mark::Line(points) => {
            let dot = if points.len() <= MARKED_POINTS { 5 } else { 0 };
            anno.legend(move |at| {
                EmptyElement::at(at) + line(0, 2 * MID, 3) + Circle::new((MID, 0), dot, colour.filled())
            })
        }
        Mark::Reference(_) => {
            anno.legend(move |at| EmptyElement::at(at) + line(0, MID - 4, 2) + line(MID + 4, 2 * MID, 2))
        }
        Mark::Bars(_) => anno.legend(move |at| {
            EmptyElement::at(at)
                + Rectangle::new(swatch, colour.mix(0.35).filled())
                + Rectangle::new(swatch, colour.stroke_width(2))
        }),
        Mark::Point(_) | Mark::Dots(..) => {
            anno.legend(move |at| EmptyElement::at(at) + Circle::new((MID, 0), 8, colour.filled()))
        }
    };
}

/// A `kind` marker of about `radius` pixels at `at` (in any coordinates).
fn marker<'a, DB: DrawingBackend + 'a, C: Clone + 'a>(
    kind: Marker,
    at: C,
    radius: i32,
    colour: RGBAColor,
) -> DynElement<'a, DB, C> {
    let (anchor, r, d) = (EmptyElement::at(at), radius, radius + 1);
    let stroke = |points: Vec<(i32, i32)>| PathElement::new(points, colour.stroke_width(2));
    let corners = match kind.shape {
        Shape::Triangle => vec![(0, -d), (d, d * 3 / 4), (-d, d * 3 / 4)],
        Shape::Square => vec![(-r, -r), (r, -r), (r, r), (-r, r)],
        Shape::Diamond => vec![(0, -d), (d, 0), (0, d), (-d, 0)],
        Shape::Circle | Shape::Cross | Shape::Plus => Vec::new(),
    };
    match (kind.shape, kind.filled) {
        (Shape::Circle, true) => (anchor + Circle::new((0, 0), r, colour.filled())).into_dyn(),
        (Shape::Circle, false) => (anchor + Circle::new((0, 0), r, colour.stroke_width(2))).into_dyn(),
        (Shape::Cross, _) => {
            (anchor + stroke(vec![(-r, -r), (r, r)]) + stroke(vec![(-r, r), (r, -r)])).into_dyn()
        }
        (Shape::Plus, _) => {
            (anchor + stroke(vec![(-d, 0), (d, 0)]) + stroke(vec![(0, -d), (0, d)])).into_dyn()
        }
        (_, true) => (anchor + Polygon::new(corners, colour.filled())).into_dyn(),
        // Plotters fills polygons whatever the style: outlines are closed paths.
        (_, false) => {
            let first = corners.first().copied();
            (anchor + stroke(corners.into_iter().chain(first).collect())).into_dyn()
        }
    }
}

/// The legend corner over the least ink, preferring the upper right, where
/// readers look first.
fn quietest_corner(layers: &[Layer], axes: &Axes<'_>) -> SeriesLabelPosition {
    use SeriesLabelPosition::{LowerLeft, LowerRight, UpperLeft, UpperRight};
    let mut ink = [0usize; 4];
    for (x, y) in layers.iter().flat_map(|l| l.mark.samples()) {
        let u = (x - axes.x.start) / (axes.x.end - axes.x.start);
        let v = (y - axes.y.start) / (axes.y.end - axes.y.start);
        let (left, right, low, high) = (u < 0.45, u > 0.55, v < 0.4, v > 0.6);
        for (corner, hit) in [high && right, high && left, low && right, low && left]
            .iter()
            .enumerate()
        {
            ink[corner] += usize::from(*hit);
        }
    }
    // The first of equally quiet corners wins, hence the order above.
    let quietest = [UpperRight, UpperLeft, LowerRight, LowerLeft]
        .into_iter()
        .zip(ink)
        .min_by_key(|c| c.1);
    quietest.map_or(UpperRight, |c| c.0)
}

/// The class legend of an embedding map: columns of marker + name, as many
/// columns as the classes need at the chart's height.
struct ClassLegend {
    rows: usize,
    columns: usize,
    column_width: u32,
}

impl ClassLegend {
    const TOP: u32 = TITLE_BAND + 14;
    const MARKER_ROOM: u32 = 30;

    /// The layout for `entries` (class index, name), measured in the
    /// legend's font.
    fn new(entries: &[(usize, &str)]) -> std::result::Result<ClassLegend, Box<dyn Error>> {
        let rows = ((CHART_SIZE.1 - Self::TOP - 16) / LEGEND_ROW) as usize;
        let columns = entries.len().div_ceil(rows);
        let widest = entries
            .iter()
            .map(|(_, name)| text_width(name, SMALL_SIZE))
            .try_fold(0, |widest, w| w.map(|w| widest.max(w)))?;
        Ok(ClassLegend {
            rows,
            columns,
            column_width: Self::MARKER_ROOM + widest + 18,
        })
    }

    /// Width the legend adds to the chart (a margin even without classes).
    fn width(&self) -> u32 {
        self.columns as u32 * self.column_width + 20
    }

    /// Draws the legend right of the map, column by column; each class
    /// keeps the colour and marker of its index.
    fn draw(&self, canvas: &mut Canvas, entries: &[(usize, &str)]) -> Drawn {
        for (row, &(class, name)) in entries.iter().enumerate() {
            let x = MAP_WIDTH + (row / self.rows) as u32 * self.column_width;
            let y = Self::TOP + (row % self.rows) as u32 * LEGEND_ROW;
            let centre = (x as i32 + 12, (y + LEGEND_ROW / 2) as i32);
            canvas
                .area()
                .draw(&marker(class_marker(class), centre, 6, palette(class).to_rgba()))?;
            let top = i64::from(y + (LEGEND_ROW - SMALL_SIZE as u32) / 2);
            canvas.text(
                name,
                (i64::from(x + Self::MARKER_ROOM), top),
                SMALL_SIZE,
                TEXT,
                Align::Left,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_values_get_a_range() {
        let r = padded([3.0].into_iter());
        assert!(r.start < 3.0 && r.end > 3.0);
        let r = padded([f64::NAN].into_iter());
        assert!(r.start < r.end);
    }

    #[test]
    fn histogram_is_a_density() {
        let values: Vec<f64> = (0..1000).map(|i| i as f64 / 999.0).chain([f64::NAN]).collect();
        let bins = histogram(&values, &(0.0..1.0));
        let area: f64 = bins.iter().map(|(l, r, d)| (r - l) * d).sum();
        assert!((area - 1.0).abs() < 1e-9, "{area}");
    }

    #[test]
    fn ticks_drop_the_minus_of_zero() {
        assert_eq!(tick_label(-0.0001, 2), "0.00");
        assert_eq!(tick_label(-0.5, 1), "-0.5");
        assert_eq!(tick_label(250000.0, 0), "2.5e5");
    }

    #[test]
    fn outline_drops_to_zero_between_runs() {
        let outline = bar_outline(&[(0.0, 1.0, 2.0), (1.0, 2.0, 3.0), (5.0, 6.0, 1.0)]);
        assert_eq!(
            outline,
            [
                (0.0, 0.0),
                (0.0, 2.0),
                (1.0, 2.0),
                (1.0, 3.0),
                (2.0, 3.0),
                (2.0, 0.0),
                (5.0, 0.0),
                (5.0, 1.0),
                (6.0, 1.0),
                (6.0, 0.0)
            ]
        );
    }
}
