//! Draws every chart and grid of twinsim-report from synthetic data, plus a
//! `report.html` showing them, into the folder given on the command line:
//!
//! ```sh
//! cargo run --release -p twinsim-report --example gallery -- /tmp/gallery
//! ```
//!
//! It also times t-SNE on 2,000 points of 128 dimensions (1,000 iterations).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinsim_report::{
    curves, histogram_chart, line_chart, neighbour_grid, pair_grid, pca_2d, roc_chart, scatter_chart,
    tsne_2d, HtmlReport, Neighbour, NeighbourRow, PairTile, Panel, Series, Tile,
};

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: gallery OUTPUT_FOLDER")?);
    std::fs::create_dir_all(&out)?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut report = HtmlReport::new("twinsim report gallery (synthetic data)");

    training_curves(&out, &mut report)?;
    verification(&out, &mut rng, &mut report)?;
    maps(&out, &mut rng, &mut report)?;
    grids(&out, &mut rng, &mut report)?;
    empty_inputs(&out)?;

    report.write(out.join("report.html"))?;
    println!("wrote {}", out.display());
    Ok(())
}

fn training_curves(out: &Path, report: &mut HtmlReport) -> Result<(), Box<dyn Error>> {
    let series = |name: &str, values: &[f64]| Series {
        name: name.into(),
        points: values
            .iter()
            .enumerate()
            .map(|(e, &v)| ((e + 1) as f64, v))
            .collect(),
    };
    let losses = [
        series("train loss", &[0.92, 0.41, 0.28, 0.22]),
        series("validation loss", &[0.61, 0.35, 0.30, 0.29]),
    ];
    let metric = [series("validation Precision@1", &[0.951, 0.978, 0.985, 0.9874])];
    let top = Panel {
        y_label: "loss",
        series: &losses,
    };
    let bottom = Panel {
        y_label: "Precision@1",
        series: &metric,
    };
    curves(
        out.join("curves.png"),
        "Training (4 epochs)",
        "epoch",
        top,
        bottom,
    )?;

    let one = [series("train loss", &[0.55])];
    let one_metric = [series("validation Precision@1", &[0.97])];
    let (top, bottom) = (
        Panel {
            y_label: "loss",
            series: &one,
        },
        Panel {
            y_label: "Precision@1",
            series: &one_metric,
        },
    );
    curves(
        out.join("curves_one_epoch.png"),
        "Training (1 epoch)",
        "epoch",
        top,
        bottom,
    )?;

    let steps: Vec<Series> = [0.05, 0.1, 0.2]
        .iter()
        .map(|&lr: &f64| Series {
            name: format!("learning rate {lr}"),
            points: (0..200)
                .map(|s| {
                    (
                        s as f64,
                        1.2 * (-(s as f64) * lr / 10.0).exp() + 0.1 + 0.03 * (s as f64).sin(),
                    )
                })
                .collect(),
        })
        .collect();
    line_chart(out.join("line.png"), "Loss per step", "step", "loss", &steps)?;

    report
        .section("Training")
        .paragraph("Losses on top, the validation metric below, on a shared epoch axis.")
        .image("curves.png", "training curves over four epochs", "Four epochs.")
        .image(
            "curves_one_epoch.png",
            "training curves of a single epoch",
            "One epoch: single points stay visible.",
        )
        .image(
            "line.png",
            "loss per step for three learning rates",
            "A plain line chart.",
        );
    Ok(())
}

fn verification(out: &Path, rng: &mut ChaCha8Rng, report: &mut HtmlReport) -> Result<(), Box<dyn Error>> {
    let same: Vec<f64> = (0..3000).map(|_| 0.45 + 0.12 * normal(rng)).collect();
    let different: Vec<f64> = (0..20000).map(|_| 1.05 + 0.2 * normal(rng)).collect();
    let threshold = 0.74;
    let groups = [
        ("same class".to_string(), same.clone()),
        ("different class".to_string(), different.clone()),
    ];
    histogram_chart(
        out.join("distances.png"),
        "Distances of test pairs",
        "Euclidean distance",
        &groups,
        Some((threshold, format!("threshold {threshold}"))),
    )?;

    // ROC of "distance below t means same class", over every threshold.
    let mut cuts: Vec<f64> = same.iter().chain(&different).copied().collect();
    cuts.sort_by(f64::total_cmp);
    let rate =
        |values: &[f64], t: f64| values.iter().filter(|&&v| v <= t).count() as f64 / values.len() as f64;
    let (fpr, tpr): (Vec<f64>, Vec<f64>) = cuts
        .iter()
        .step_by(50)
        .map(|&t| (rate(&different, t), rate(&same, t)))
        .unzip();
    let auc = fpr
        .windows(2)
        .zip(tpr.windows(2))
        .map(|(f, t)| (f[1] - f[0]) * (t[0] + t[1]) / 2.0)
        .sum::<f64>();
    let point = (rate(&different, threshold), rate(&same, threshold));
    let label = format!("threshold {threshold}: TPR {:.3}, FPR {:.3}", point.1, point.0);
    roc_chart(
        out.join("roc.png"),
        &fpr,
        &tpr,
        auc,
        Some((point.0, point.1, label)),
    )?;

    report
        .section("Verification")
        .table([
            ("ROC AUC", format!("{auc:.4}")),
            ("threshold", threshold.to_string()),
        ])
        .image(
            "distances.png",
            "histograms of same- and different-class distances",
            "Distances.",
        )
        .image(
            "roc.png",
            "ROC curve",
            "ROC with the operating point of the threshold.",
        );
    Ok(())
}

fn maps(out: &Path, rng: &mut ChaCha8Rng, report: &mut HtmlReport) -> Result<(), Box<dyn Error>> {
    let (n, d, classes) = (2000, 128, 10);
    let centres: Vec<Vec<f32>> = (0..classes)
        .map(|_| (0..d).map(|_| 3.0 * normal(rng) as f32).collect())
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
    let data: Vec<f32> = labels
        .iter()
        .flat_map(|&c| {
            centres[c]
                .iter()
                .map(|&m| m + 2.0 * normal(rng) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let names: Vec<String> = (0..classes).map(|c| c.to_string()).collect();

    let pca = pca_2d(&data, n, d)?;
    scatter_chart(out.join("pca.png"), "Test embeddings, PCA", &pca, &labels, &names)?;
    let started = Instant::now();
    let tsne = tsne_2d(&data, n, d, 30.0, 1000, 1)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "t-SNE of {n} points x {d} dims, 1000 iterations: {seconds:.1} s on {} threads",
        rayon::current_num_threads()
    );
    scatter_chart(
        out.join("tsne.png"),
        "Test embeddings, t-SNE",
        &tsne,
        &labels,
        &names,
    )?;

    // 100 classes with CIFAR-100-like names, drawn straight in 2-D.
    let fine: Vec<String> = CIFAR100.split_whitespace().map(String::from).collect();
    let spots: Vec<(f64, f64)> = (0..fine.len())
        .map(|_| (10.0 * normal(rng), 10.0 * normal(rng)))
        .collect();
    let many_labels: Vec<usize> = (0..3000).map(|i| i % fine.len()).collect();
    let many: Vec<(f64, f64)> = many_labels
        .iter()
        .map(|&c| (spots[c].0 + normal(rng), spots[c].1 + normal(rng)))
        .collect();
    scatter_chart(out.join("map100.png"), "100 classes", &many, &many_labels, &fine)?;

    report
        .section("Embeddings")
        .paragraph(format!("t-SNE of {n} points took {seconds:.1} s."))
        .image("pca.png", "PCA map", "PCA.")
        .image("tsne.png", "t-SNE map", "t-SNE.")
        .image(
            "map100.png",
            "map of 100 classes",
            "100 classes: colours repeat with new marker shapes.",
        );
    Ok(())
}

fn grids(out: &Path, rng: &mut ChaCha8Rng, report: &mut HtmlReport) -> Result<(), Box<dyn Error>> {
    let pairs: Vec<PairTile> = (0..12)
        .map(|i| {
            let (a, b) = (i % 10, if i % 3 == 0 { (i + 3) % 10 } else { i % 10 });
            let same = a == b;
            let score = if same {
                0.7 + 0.29 * rng.random::<f64>()
            } else {
                0.6 * rng.random::<f64>()
            };
            // A few wrong decisions: the model said "same" for some different pairs.
            let score = if i == 3 || i == 7 { 0.81 } else { score };
            let correct = (score >= 0.5) == same;
            let caption = if same {
                format!("same: {a}")
            } else {
                format!("{a} vs {b}")
            };
            PairTile {
                a: digit(a, rng),
                b: digit(b, rng),
                score,
                correct,
                caption,
            }
        })
        .collect();
    pair_grid(out.join("pairs.png"), &pairs, 4)?;
    let colour_pairs: Vec<PairTile> = (0..6)
        .map(|i| PairTile {
            a: colour_tile(i, rng),
            b: colour_tile(i + i % 2, rng),
            score: 0.9 - 0.15 * i as f64,
            correct: i % 2 == 0,
            caption: String::new(),
        })
        .collect();
    pair_grid(out.join("pairs_colour.png"), &colour_pairs, 3)?;

    let rows: Vec<NeighbourRow> = [4usize, 7, 9, 1, 3]
        .iter()
        .map(|&q| NeighbourRow {
            query: digit(q, rng),
            query_label: q.to_string(),
            neighbours: (0..10)
                .map(|k| {
                    let label = if k % 4 == 3 { (q + 5) % 10 } else { q };
                    Neighbour {
                        tile: digit(label, rng),
                        label: label.to_string(),
                        score: 0.98 - 0.03 * k as f64,
                        correct: label == q,
                    }
                })
                .collect(),
        })
        .collect();
    neighbour_grid(
        out.join("neighbours.png"),
        Some("Nearest neighbours of test queries"),
        &rows,
    )?;
    let long = [NeighbourRow {
        query: colour_tile(0, rng),
        query_label: "aquarium_fish".into(),
        neighbours: vec![
            Neighbour {
                tile: colour_tile(0, rng),
                label: "aquarium_fish".into(),
                score: 0.91,
                correct: true,
            },
            Neighbour {
                tile: colour_tile(1, rng),
                label: "sweet_pepper".into(),
                score: 0.88,
                correct: false,
            },
        ],
    }];
    neighbour_grid(out.join("neighbours_colour.png"), None, &long)?;

    report
        .section("Pairs and neighbours")
        .image(
            "pairs.png",
            "pairs of digits with their scores",
            "Scores in green when right, red when wrong.",
        )
        .image(
            "pairs_colour.png",
            "pairs of colour images",
            "Colour images, no captions.",
        )
        .image(
            "neighbours.png",
            "queries and their nearest neighbours",
            "Frames: green right, red wrong.",
        )
        .image(
            "neighbours_colour.png",
            "a query with long class names",
            "Long labels widen the cells.",
        );
    Ok(())
}

/// Charts of nothing, or of NaN only: they must draw "no data", not fail.
fn empty_inputs(out: &Path) -> Result<(), Box<dyn Error>> {
    let nan = [Series {
        name: "loss".into(),
        points: vec![(f64::NAN, 1.0), (1.0, f64::NAN)],
    }];
    line_chart(out.join("empty_line.png"), "Only NaN", "epoch", "loss", &nan)?;
    histogram_chart(
        out.join("empty_histogram.png"),
        "No distances",
        "distance",
        &[],
        None,
    )?;
    roc_chart(out.join("empty_roc.png"), &[], &[], f64::NAN, None)?;
    scatter_chart(out.join("empty_map.png"), "No points", &[], &[], &[])?;
    pair_grid(out.join("empty_pairs.png"), &[], 4)?;
    neighbour_grid(out.join("empty_neighbours.png"), Some("worst failures"), &[])?;
    Ok(())
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A 28×28 grey digit, seven-segment style, jittered so no two are equal.
fn digit(value: usize, rng: &mut ChaCha8Rng) -> Tile {
    // Segments a (top), b, c (right, top to bottom), d (bottom), e, f (left, bottom to top), g (middle).
    const SEGMENTS: [&str; 10] = [
        "abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg",
    ];
    let rects = |s: char| match s {
        'a' => (8, 4, 12, 3),
        'b' => (18, 5, 3, 9),
        'c' => (18, 14, 3, 9),
        'd' => (8, 21, 12, 3),
        'e' => (7, 14, 3, 9),
        'f' => (7, 5, 3, 9),
        _ => (8, 12, 12, 3),
    };
    let (dx, dy) = (rng.random_range(-2i32..=2), rng.random_range(-2i32..=2));
    let mut pixels = vec![0u8; 28 * 28];
    for (x0, y0, w, h) in SEGMENTS[value % 10].chars().map(rects) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                let (x, y) = ((x + dx).clamp(0, 27) as usize, (y + dy).clamp(0, 27) as usize);
                pixels[y * 28 + x] = rng.random_range(200..=255);
            }
        }
    }
    Tile::new(1, 28, 28, pixels).expect("28x28 grey")
}

/// A 32×32 colour image: a gradient with a square whose colour depends on `kind`.
fn colour_tile(kind: usize, rng: &mut ChaCha8Rng) -> Tile {
    let colour = [[220u8, 60, 40], [40, 120, 220], [60, 180, 80], [230, 200, 40]][kind % 4];
    let (sx, sy) = (rng.random_range(4..14), rng.random_range(4..14));
    let mut pixels = vec![0u8; 3 * 32 * 32];
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                let inside = (sx..sx + 14).contains(&x) && (sy..sy + 14).contains(&y);
                pixels[c * 1024 + y * 32 + x] = if inside {
                    colour[c]
                } else {
                    (60 + 4 * y + c * 20) as u8
                };
            }
        }
    }
    Tile::new(3, 32, 32, pixels).expect("32x32 RGB")
}

const CIFAR100: &str = "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus \
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup \
dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion \
lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear \
pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew \
skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger \
tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm";
