//! Every chart and grid writes a PNG that decodes, has the expected size and
//! shows something; bad input gives "no data" or an error, never a panic.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use image::RgbImage;
use tempfile::TempDir;
use twinsim_report::style::{CORRECT, WRONG};
use twinsim_report::{
    curves, histogram_chart, line_chart, neighbour_grid, pair_grid, roc_chart, scatter_chart, HtmlReport,
    Neighbour, NeighbourRow, PairTile, Panel, ReportError, Series, Tile,
};

fn decode(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

fn distinct_colours(picture: &RgbImage) -> usize {
    picture.pixels().map(|p| p.0).collect::<HashSet<_>>().len()
}

/// Decodes `path` and checks its size and that it is more than a blank page.
fn check_picture(path: &Path, size: (u32, u32)) -> RgbImage {
    let picture = decode(path);
    assert_eq!(picture.dimensions(), size, "{}", path.display());
    assert!(distinct_colours(&picture) >= 8, "{} looks blank", path.display());
    picture
}

fn out(dir: &TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn series(name: &str, points: &[(f64, f64)]) -> Series {
    Series {
        name: name.into(),
        points: points.to_vec(),
    }
}

/// A 28×28 grey tile with a bright square (so upscaling is visible).
fn digit(value: u8) -> Tile {
    let pixels = (0..28 * 28)
        .map(|i| {
            if (8..20).contains(&(i % 28)) && (8..20).contains(&(i / 28)) {
                255
            } else {
                value
            }
        })
        .collect();
    Tile::new(1, 28, 28, pixels).unwrap()
}

#[test]
fn line_chart_draws_series() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "line.png");
    let data = [
        series("train", &[(1.0, 0.9), (2.0, 0.5), (3.0, 0.3)]),
        series("val", &[(1.0, 0.7), (2.0, 0.6)]),
    ];
    line_chart(&path, "Loss", "epoch", "loss", &data).unwrap();
    check_picture(&path, (900, 560));
}

#[test]
fn curves_handle_a_single_epoch() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "curves.png");
    let loss = [series("loss", &[(1.0, 0.4)])];
    let metric = [series("P@1", &[(1.0, 0.97)])];
    let top = Panel {
        y_label: "loss",
        series: &loss,
    };
    let bottom = Panel {
        y_label: "Precision@1",
        series: &metric,
    };
    curves(&path, "Training", "epoch", top, bottom).unwrap();
    let picture = check_picture(&path, (900, 820));
    // The single points are drawn: both series colours are present.
    let colours: HashSet<[u8; 3]> = picture.pixels().map(|p| p.0).collect();
    assert!(colours.contains(&twinsim_report::style::PALETTE[0]));
    assert!(colours.contains(&twinsim_report::style::PALETTE[1]));
}

#[test]
fn roc_chart_marks_the_operating_point() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "roc.png");
    let fpr: Vec<f64> = (0..=100).map(|i| f64::from(i) / 100.0).collect();
    let tpr: Vec<f64> = fpr.iter().map(|f| f.sqrt()).collect();
    roc_chart(
        &path,
        &fpr,
        &tpr,
        0.67,
        Some((0.1, 0.316, "threshold 0.5".into())),
    )
    .unwrap();
    let picture = check_picture(&path, (900, 560));
    assert!(
        picture.pixels().any(|p| p.0 == twinsim_report::style::PALETTE[3]),
        "operating point missing"
    );
}

#[test]
fn histogram_overlays_groups_and_threshold() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "hist.png");
    let same: Vec<f64> = (0..300).map(|i| 0.3 + f64::from(i % 17) / 60.0).collect();
    let different: Vec<f64> = (0..3000)
        .map(|i| 0.8 + f64::from(i % 23) / 40.0)
        .chain([f64::NAN])
        .collect();
    let groups = [
        ("same class".to_string(), same),
        ("different class".to_string(), different),
    ];
    histogram_chart(
        &path,
        "Distances",
        "distance",
        &groups,
        Some((0.65, "threshold".into())),
    )
    .unwrap();
    check_picture(&path, (900, 560));
}

#[test]
fn scatter_chart_puts_the_legend_beside_the_map() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "map.png");
    let points: Vec<(f64, f64)> = (0..300)
        .map(|i| (f64::from(i % 30), f64::from(i / 30 * 3 + i % 3)))
        .collect();
    let labels: Vec<usize> = (0..300).map(|i| i / 30).collect();
    let names: Vec<String> = (0..10).map(|c| format!("class {c}")).collect();
    scatter_chart(&path, "Map", &points, &labels, &names).unwrap();
    let picture = decode(&path);
    assert_eq!(picture.height(), 560);
    assert!(
        picture.width() > 700,
        "no room for the legend: {}",
        picture.width()
    );
    assert!(distinct_colours(&picture) >= 10);
}

#[test]
fn many_classes_widen_the_legend() {
    let dir = TempDir::new().unwrap();
    let (ten, hundred) = (out(&dir, "ten.png"), out(&dir, "hundred.png"));
    let names: Vec<String> = (0..100).map(|c| format!("class {c}")).collect();
    let points: Vec<(f64, f64)> = (0..100).map(|i| (f64::from(i), f64::from(i % 7))).collect();
    let labels: Vec<usize> = (0..100).collect();
    scatter_chart(&ten, "10", &points[..10], &labels[..10], &names[..10]).unwrap();
    scatter_chart(&hundred, "100", &points, &labels, &names).unwrap();
    assert!(decode(&hundred).width() > decode(&ten).width() + 300);

    // Ten classes with points among a hundred names: the legend lists the ten.
    let some = out(&dir, "some.png");
    scatter_chart(&some, "10 of 100", &points[..10], &labels[..10], &names).unwrap();
    assert_eq!(decode(&some).width(), decode(&ten).width());
}

#[test]
fn empty_and_nan_data_say_no_data() {
    let dir = TempDir::new().unwrap();
    let nan = [
        series("nan", &[(f64::NAN, 1.0), (1.0, f64::INFINITY)]),
        series("huge", &[(1e300, 1.0), (-1e300, 2.0)]),
        series("empty", &[]),
    ];
    line_chart(out(&dir, "a.png"), "t", "x", "y", &nan).unwrap();
    line_chart(out(&dir, "b.png"), "t", "x", "y", &[]).unwrap();
    let none = Panel {
        y_label: "y",
        series: &[],
    };
    curves(out(&dir, "c.png"), "t", "x", none, none).unwrap();
    roc_chart(
        out(&dir, "d.png"),
        &[],
        &[],
        f64::NAN,
        Some((f64::NAN, 0.0, "x".into())),
    )
    .unwrap();
    histogram_chart(
        out(&dir, "e.png"),
        "t",
        "x",
        &[("g".into(), vec![f64::NAN])],
        Some((f64::NAN, "t".into())),
    )
    .unwrap();
    histogram_chart(
        out(&dir, "f.png"),
        "t",
        "x",
        &[("g".into(), vec![2.0, 2.0, -1e300])],
        None,
    )
    .unwrap();
    scatter_chart(out(&dir, "g.png"), "t", &[(f64::NAN, 0.0)], &[0], &["a".into()]).unwrap();
    scatter_chart(out(&dir, "h.png"), "t", &[], &[], &[]).unwrap();
    pair_grid(out(&dir, "i.png"), &[], 3).unwrap();
    neighbour_grid(out(&dir, "j.png"), Some("worst failures"), &[]).unwrap();
    for name in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
        decode(&out(&dir, &format!("{name}.png")));
    }
}

#[test]
fn inconsistent_input_is_an_error_naming_the_file() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "bad.png");
    let named = |e: ReportError| assert!(e.to_string().contains("bad.png"), "{e}");
    named(roc_chart(&path, &[0.0, 1.0], &[0.0], 0.5, None).unwrap_err());
    named(scatter_chart(&path, "t", &[(0.0, 0.0)], &[], &[]).unwrap_err());
    named(scatter_chart(&path, "t", &[(0.0, 0.0)], &[3], &["a".into()]).unwrap_err());
    named(pair_grid(&path, &[], 0).unwrap_err());
    assert!(!path.exists());
    let missing = dir.path().join("no/such/folder/x.png");
    let e = line_chart(&missing, "t", "x", "y", &[]).unwrap_err();
    assert!(e.to_string().contains("x.png"), "{e}");
    assert!(Tile::new(1, 28, 28, vec![0; 10]).is_err());
}

#[test]
fn pair_grid_colours_scores_by_verdict() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "pairs.png");
    let pair = |correct| PairTile {
        a: digit(0),
        b: digit(40),
        score: 0.93,
        correct,
        caption: "7 vs 1".into(),
    };
    pair_grid(&path, &[pair(true), pair(false)], 2).unwrap();
    let picture = decode(&path);
    // Two cells of two 84-pixel images side by side.
    assert!(
        picture.width() >= 2 * (2 * 84) && picture.height() >= 84,
        "{:?}",
        picture.dimensions()
    );
    let (green, red) = (xs_of(&picture, CORRECT), xs_of(&picture, WRONG));
    assert!(!green.is_empty() && !red.is_empty());
    assert!(
        green.iter().max() < red.iter().min(),
        "the right pair is on the left"
    );
}

#[test]
fn neighbour_frames_are_green_when_right_and_red_when_wrong() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "neighbours.png");
    let neighbour = |correct, label: &str| Neighbour {
        tile: digit(30),
        label: label.into(),
        score: 0.8,
        correct,
    };
    let row = NeighbourRow {
        query: digit(0),
        query_label: "7".into(),
        neighbours: vec![neighbour(true, "7"), neighbour(false, "1")],
    };
    neighbour_grid(&path, Some("nearest neighbours"), &[row]).unwrap();
    let picture = decode(&path);
    let (green, red) = (xs_of(&picture, CORRECT), xs_of(&picture, WRONG));
    // A frame is at least 4 sides of an 84-pixel image.
    assert!(
        green.len() >= 4 * 84 && red.len() >= 4 * 84,
        "{} {}",
        green.len(),
        red.len()
    );
    assert!(
        green.iter().max() < red.iter().min(),
        "the right neighbour comes first"
    );
    // Sample the frame itself: the top edge of the first neighbour's frame,
    // where the green run is longest.
    let y = (0..picture.height()).max_by_key(|&y| {
        (0..picture.width())
            .filter(|&x| picture.get_pixel(x, y).0 == CORRECT)
            .count()
    });
    let y = y.unwrap();
    let run = (0..picture.width())
        .filter(|&x| picture.get_pixel(x, y).0 == CORRECT)
        .count();
    assert!(run >= 84, "no frame edge: longest green run {run}");
}

#[test]
fn colour_tiles_keep_their_colours() {
    let dir = TempDir::new().unwrap();
    let path = out(&dir, "colour.png");
    let red_square = Tile::new(3, 2, 2, [[200u8; 4], [10; 4], [20; 4]].concat()).unwrap();
    let pair = PairTile {
        a: red_square.clone(),
        b: red_square,
        score: 0.5,
        correct: true,
        caption: String::new(),
    };
    pair_grid(&path, &[pair], 1).unwrap();
    assert!(decode(&path).pixels().any(|p| p.0 == [200, 10, 20]));
}

#[test]
fn report_page_links_pictures_and_is_self_contained() {
    let dir = TempDir::new().unwrap();
    let mut report = HtmlReport::new("mnist <cnn>");
    report
        .section("Verification")
        .paragraph("Pairs of test images.")
        .table([("ROC AUC", "0.9931"), ("EER", "0.021")])
        .image("roc.png", "ROC curve", "ROC of test pairs");
    report.write(dir.path().join("report.html")).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<img src=\"roc.png\" alt=\"ROC curve\">"));
    assert!(html.contains("<th>ROC AUC</th><td class=\"value\">0.9931</td>"));
    assert!(html.contains("mnist &lt;cnn&gt;"));
    assert!(!html.contains("<script") && !html.contains("<link"));
}

/// x coordinates of the pixels exactly `colour`.
fn xs_of(picture: &RgbImage, colour: [u8; 3]) -> Vec<u32> {
    picture
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0 == colour)
        .map(|(x, _, _)| x)
        .collect()
}
