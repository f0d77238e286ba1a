//! A run's report: `report.html` and the pictures beside it, showing what
//! the model learned on its test images: training curves, metrics beside
//! the reference points, scored test pairs, the ROC curve, distance
//! histograms, 2-D maps of the embeddings, and nearest-neighbour grids
//! (including the most confident mistakes). The drawing is
//! [`twinsim_report`]'s; this module chooses what to draw from the run.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};
use twinsim_data::{Dataset, LoadOptions};
use twinsim_report::{self as draw, HtmlReport, Neighbour, NeighbourRow, PairTile, Panel, Series, Tile};

use crate::calibration::Calibration;
use crate::distributed::World;
use crate::evaluation::{self, Embedded, EvalOptions, ProtocolData};
use crate::metrics::{self, verification};
use crate::model::Embedding;
use crate::run::Run;
use crate::similarity::Pairs;
use crate::time_to_quality::QualityCurve;
use crate::Result;

/// Scored pairs drawn in the pair grid.
const GRID_PAIRS: usize = 24;
/// Queries in each neighbour grid.
const GRID_QUERIES: usize = 8;
/// t-SNE settings: the usual perplexity, and enough iterations to settle.
const PERPLEXITY: f64 = 30.0;
const TSNE_ITERATIONS: usize = 750;

/// Test embeddings placed on the 2-D maps unless asked otherwise (t-SNE
/// costs O(n²)).
pub const MAP_POINTS: usize = 2000;

/// What to report on.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Folder for `report.html` and its pictures.
    pub out: PathBuf,
    /// Another dataset than the run's own.
    pub dataset: Option<String>,
    /// Query embeddings placed on the 2-D maps.
    pub map_points: usize,
    pub seed: u64,
    /// Other systems' time-to-quality curves, drawn beside the run's own
    /// ([`crate::time_to_quality::read_results`]).
    pub compare: Vec<QualityCurve>,
}

impl Default for ReportOptions {
    /// `report/` in the working folder, the run's own dataset.
    fn default() -> Self {
        ReportOptions {
            out: PathBuf::from("report"),
            dataset: None,
            map_points: MAP_POINTS,
            seed: 0,
            compare: Vec::new(),
        }
    }
}

/// Writes the report of `run`; returns the path of `report.html`.
pub fn write(run: &Run, opts: &ReportOptions, base: &LoadOptions) -> Result<PathBuf> {
    std::fs::create_dir_all(&opts.out).map_err(|e| twinsim_data::DataError::io(&opts.out, e))?;
    let eval_opts = EvalOptions {
        dataset: opts.dataset.clone(),
        seed: opts.seed,
        ..EvalOptions::default()
    };
    let data = ProtocolData::load(run, &eval_opts, base)?;
    let emb = Embedded::by_model(&run.model, &data, &World::single());
    let calibration = run.model.calibration();
    let ctx = Context {
        run,
        data: &data,
        emb: &emb,
        calibration: calibration.as_ref(),
        out: &opts.out,
    };
    let mut page = HtmlReport::new(format!("twinsim report: {}", run.dir.display()));
    ctx.summary(&mut page, &eval_opts)?;
    ctx.curves(&mut page, &opts.compare)?;
    let pairs = Pairs::draw(
        &emb.queries,
        &data.queries.labels,
        emb.distance,
        eval_opts.pairs,
        opts.seed,
    );
    ctx.pairs(&mut page, &pairs)?;
    ctx.maps(&mut page, opts)?;
    ctx.neighbours(&mut page)?;
    let path = opts.out.join("report.html");
    page.write(&path)?;
    Ok(path)
}

/// Everything the sections draw from.
struct Context<'a> {
    run: &'a Run,
    data: &'a ProtocolData,
    emb: &'a Embedded,
    calibration: Option<&'a Calibration>,
    out: &'a Path,
}

impl Context<'_> {
    /// The model's card and its metrics on the gallery protocol, beside the
    /// reference points: from `metrics.json` when `twinsim evaluate` has
    /// recorded them, else measured now (and recorded).
    fn summary(&self, page: &mut HtmlReport, eval_opts: &EvalOptions) -> Result<()> {
        let card = &self.run.model.card;
        let cfg = &self.run.config;
        let section = page.section("Model");
        section.table([
            (
                "encoder",
                format!("{} → {}-d", card.encoder.arch, self.run.model.dim()),
            ),
            (
                "embedding",
                match card.embedding {
                    Embedding::Head => "the head's output".to_string(),
                    Embedding::Features => "whitened features before the head".to_string(),
                },
            ),
            ("loss", card.loss.clone()),
            ("distance", card.distance.name().to_string()),
            (
                "trained on",
                format!("{} ({} classes)", card.dataset, card.classes.len()),
            ),
            (
                "epochs, batch, lr",
                format!("{}, {}, {}", cfg.epochs, cfg.batch_size, cfg.lr),
            ),
        ]);
        if let Some(c) = self.calibration {
            section.paragraph(format!(
                "Calibrated similarity: threshold {:.3} (distance {:.4}, rule {}), accuracy {:.4} on {} held-out pairs of {}.",
                c.threshold,
                c.threshold_distance,
                c.rule,
                c.accuracy,
                c.same_pairs + c.different_pairs,
                c.data
            ));
        }
        let recorded = evaluation::recorded(&self.run.dir).remove("gallery");
        let value = match recorded {
            Some(v) if eval_opts.dataset.is_none() => v,
            _ => {
                let result = evaluation::evaluate_embedded(self.run, self.data, self.emb, eval_opts)?;
                if eval_opts.dataset.is_none() {
                    evaluation::record(&self.run.dir, &result)?;
                }
                serde_json::to_value(&result).expect("an evaluation serialises to JSON")
            }
        };
        let section = page.section("Metrics");
        section.paragraph(
            "Test images as queries against the training images as gallery (the standard protocol); \
             pairs are balanced random test pairs. Beside the model: k-nearest neighbours on raw pixels, \
             and the same network with untrained weights.",
        );
        section.table(metric_rows(&value));
        Ok(())
    }

    /// Loss and validation Precision@1 per epoch, then time to quality.
    fn curves(&self, page: &mut HtmlReport, compare: &[QualityCurve]) -> Result<()> {
        let epochs = crate::train::RunDir {
            path: self.run.dir.clone(),
        }
        .metrics();
        let series = |name: &str, f: fn(&crate::train::EpochMetrics) -> f64| Series {
            name: name.into(),
            points: epochs.iter().map(|e| (e.epoch as f64, f(e))).collect(),
        };
        let loss = [series("training loss", |e| e.loss)];
        let val = [series("validation Precision@1", |e| e.val_precision_at_1)];
        let file = "curves.png";
        draw::curves(
            self.out.join(file),
            "Training",
            "epoch",
            Panel {
                y_label: "loss",
                series: &loss,
            },
            Panel {
                y_label: "Precision@1",
                series: &val,
            },
        )?;
        let section = page.section("Training");
        section.image(
            file,
            "training curves",
            "Training loss and validation Precision@1 after each epoch.",
        );
        self.time_to_quality(section, &epochs, compare)
    }

    /// Test Precision@1 against training seconds: the run's own line when
    /// it was tested after every epoch, and `compare`'s; nothing when there
    /// is neither.
    fn time_to_quality(
        &self,
        section: &mut draw::html::Section,
        epochs: &[crate::train::EpochMetrics],
        compare: &[QualityCurve],
    ) -> Result<()> {
        let own: Option<Vec<(f64, f64)>> = epochs
            .iter()
            .map(|e| e.test_precision_at_1.map(|p| (e.train_seconds, p)))
            .collect();
        let lines: Vec<Series> = own
            .filter(|p| !p.is_empty())
            .map(|points| Series {
                name: "this run".into(),
                points,
            })
            .into_iter()
            .chain(compare.iter().map(|c| Series {
                name: c.name.clone(),
                points: c.points.clone(),
            }))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        let file = "time_to_quality.png";
        draw::line_chart(
            self.out.join(file),
            "Time to quality",
            "training seconds",
            "test Precision@1",
            &lines,
        )?;
        section.image(
            file,
            "test Precision@1 against training seconds",
            "Test Precision@1 (the test images against the training images) after each epoch, \
             against the seconds of training so far; other systems' lines come from a benchmark's \
             results (each system's median run).",
        );
        Ok(())
    }

    /// The pair grid, the ROC curve and the distance histograms.
    fn pairs(&self, page: &mut HtmlReport, pairs: &Pairs) -> Result<()> {
        let (scores, same) = (pairs.scores(), pairs.same());
        let section = page.section("Pairs");
        // Without a calibration, the best threshold on these pairs decides.
        let best = verification::best_threshold(&scores, &same).0;
        let decide = |d: f64| match self.calibration {
            Some(c) => c.same(d),
            None => -d >= best,
        };
        let tiles: Vec<PairTile> = interleaved(&pairs.pairs, GRID_PAIRS)
            .into_iter()
            .map(|i| {
                let (a, b, is_same) = pairs.pairs[i];
                let d = pairs.distances[i];
                let classes = &self.data.queries.classes;
                let q = &self.data.queries;
                Ok(PairTile {
                    a: tile(q, a)?,
                    b: tile(q, b)?,
                    score: self.calibration.map_or(d, |c| c.similarity(d)),
                    correct: decide(d) == is_same,
                    caption: format!(
                        "{} vs {}",
                        classes[q.labels[a] as usize], classes[q.labels[b] as usize]
                    ),
                })
            })
            .collect::<Result<_>>()?;
        draw::pair_grid(self.out.join("pairs.png"), &tiles, 6)?;
        let what = if self.calibration.is_some() {
            "calibrated similarity"
        } else {
            "distance"
        };
        section.image(
            "pairs.png",
            "scored test pairs",
            format!("Random test pairs with their {what}: green when the same/different decision is right, red when wrong."),
        );
        let curve = verification::roc_curve(&scores, &same)?;
        let point = self.calibration.map(|c| {
            let r = verification::rates_at(&scores, &same, -c.threshold_distance);
            (
                r.false_accept_rate,
                r.true_accept_rate,
                format!("threshold {:.2}", c.threshold),
            )
        });
        draw::roc_chart(
            self.out.join("roc.png"),
            &curve.fpr,
            &curve.tpr,
            curve.auc(),
            point,
        )?;
        section.image(
            "roc.png",
            "ROC curve",
            format!(
                "ROC curve of {} balanced test pairs (AUC {:.4}).",
                scores.len(),
                curve.auc()
            ),
        );
        let group = |want: bool| -> Vec<f64> {
            pairs
                .distances
                .iter()
                .zip(&same)
                .filter(|(_, &s)| s == want)
                .map(|(d, _)| *d)
                .collect()
        };
        draw::histogram_chart(
            self.out.join("distances.png"),
            "Distances between test pairs",
            &format!("{} distance", self.emb.distance.name()),
            &[
                ("same class".into(), group(true)),
                ("different class".into(), group(false)),
            ],
            self.calibration
                .map(|c| (c.threshold_distance, "threshold".to_string())),
        )?;
        section.image(
            "distances.png",
            "distance histograms",
            "Embedding distances of same-class and different-class pairs; the line is the decision threshold.",
        );
        Ok(())
    }

    /// 2-D maps of test embeddings: the embedding itself when it is 2-d,
    /// else PCA and t-SNE.
    fn maps(&self, page: &mut HtmlReport, opts: &ReportOptions) -> Result<()> {
        let n = opts.map_points.min(self.data.queries.len());
        let x = self.emb.queries.narrow(0, 0, n as i64).contiguous();
        let d = x.size()[1] as usize;
        let values = Vec::<f32>::try_from(&x.reshape([-1])).expect("a CPU tensor converts to f32 values");
        let labels: Vec<usize> = self.data.queries.labels[..n]
            .iter()
            .map(|&l| l as usize)
            .collect();
        let classes = &self.data.queries.classes;
        let section = page.section("Embedding maps");
        let maps: Vec<Map> = if d == 2 {
            let points = values
                .chunks(2)
                .map(|p| (f64::from(p[0]), f64::from(p[1])))
                .collect();
            vec![("embedding.png", "The 2-d embedding", points)]
        } else {
            vec![
                ("pca.png", "PCA", draw::pca_2d(&values, n, d)?),
                (
                    "tsne.png",
                    "t-SNE",
                    draw::tsne_2d(&values, n, d, PERPLEXITY, TSNE_ITERATIONS, opts.seed)?,
                ),
            ]
        };
        for (file, title, points) in maps {
            draw::scatter_chart(
                self.out.join(file),
                &format!("{title}: {n} test images"),
                &points,
                &labels,
                classes,
            )?;
            section.image(
                file,
                title,
                format!("{title} of the embeddings of {n} test images, coloured by class."),
            );
        }
        Ok(())
    }

    /// Random queries with their nearest gallery images, and the queries
    /// whose nearest image was of another class with the highest similarity.
    fn neighbours(&self, page: &mut HtmlReport) -> Result<()> {
        let (gallery, g_data) = match (&self.emb.gallery, &self.data.gallery) {
            (Some(g), Some(d)) => (g, d),
            _ => (&self.emb.queries, &self.data.queries),
        };
        let q = &self.data.queries;
        let section = page.section("Nearest neighbours");
        let first = metrics::nearest(&self.emb.queries, gallery, 1, self.emb.distance, false).view([-1]);
        let first = Vec::<i64>::try_from(&first).expect("indices convert");
        let mut wrong: Vec<(f64, usize)> = (0..q.len())
            .filter(|&i| g_data.labels[first[i] as usize] != q.labels[i])
            .map(|i| (self.distance(i, gallery, first[i]), i))
            .collect();
        wrong.sort_by(|a, b| a.0.total_cmp(&b.0));
        let random: Vec<usize> = (0..GRID_QUERIES).map(|i| i * q.len() / GRID_QUERIES).collect();
        let worst: Vec<usize> = wrong.iter().take(GRID_QUERIES).map(|w| w.1).collect();
        for (file, title, picks, caption) in [
            ("neighbours.png", "Test queries and their nearest training images", random, "Queries spread over the test set, each followed by its 8 nearest gallery images with their scores (green frame: same class)."),
            ("failures.png", "Worst failures", worst, "The test queries whose nearest gallery image is of another class with the highest score: the model's most confident mistakes."),
        ] {
            if picks.is_empty() {
                section.paragraph("No query's nearest gallery image is of another class: there are no failures to show.");
                continue;
            }
            let rows = self.neighbour_rows(&picks, gallery, g_data)?;
            draw::neighbour_grid(self.out.join(file), Some(title), &rows)?;
            section.image(file, title, caption);
        }
        Ok(())
    }

    /// The grid rows of the queries `picks`.
    fn neighbour_rows(
        &self,
        picks: &[usize],
        gallery: &Tensor,
        g_data: &Dataset,
    ) -> Result<Vec<NeighbourRow>> {
        let q = &self.data.queries;
        let idx = Tensor::from_slice(&picks.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let k = draw::grids::MAX_NEIGHBOURS as i64;
        let nn = metrics::nearest(
            &self.emb.queries.index_select(0, &idx),
            gallery,
            k.min(gallery.size()[0]),
            self.emb.distance,
            false,
        );
        picks
            .iter()
            .enumerate()
            .map(|(row, &i)| {
                let neighbours = Vec::<i64>::try_from(&nn.get(row as i64))
                    .expect("indices convert")
                    .into_iter()
                    .map(|j| {
                        let d = self.distance(i, gallery, j);
                        Ok(Neighbour {
                            tile: tile(g_data, j as usize)?,
                            label: g_data.classes[g_data.labels[j as usize] as usize].clone(),
                            score: self.calibration.map_or(d, |c| c.similarity(d)),
                            correct: g_data.labels[j as usize] == q.labels[i],
                        })
                    })
                    .collect::<Result<_>>()?;
                Ok(NeighbourRow {
                    query: tile(q, i)?,
                    query_label: q.classes[q.labels[i] as usize].clone(),
                    neighbours,
                })
            })
            .collect()
    }

    /// The distance between query `i` and gallery item `j`.
    fn distance(&self, i: usize, gallery: &Tensor, j: i64) -> f64 {
        let a = self.emb.queries.narrow(0, i as i64, 1);
        let b = gallery.narrow(0, j, 1);
        self.emb
            .distance
            .rows(&a, &b)
            .to_kind(Kind::Double)
            .double_value(&[0])
    }
}

/// A 2-D map to draw: file name, title, points.
type Map = (&'static str, &'static str, Vec<(f64, f64)>);

/// Up to `n` pair indices, alternating same and different pairs so the grid
/// shows both kinds.
fn interleaved(pairs: &[(usize, usize, bool)], n: usize) -> Vec<usize> {
    let of = |want: bool| {
        pairs
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.2 == want)
            .map(|(i, _)| i)
    };
    let mut out: Vec<usize> = of(true)
        .zip(of(false))
        .flat_map(|(a, b)| [a, b])
        .take(n)
        .collect();
    if out.len() < n {
        out.extend(
            of(true)
                .chain(of(false))
                .filter(|i| !out.contains(i))
                .take(n - out.len())
                .collect::<Vec<_>>(),
        );
    }
    out
}

/// Image `i` of `ds` as a grid tile.
fn tile(ds: &Dataset, i: usize) -> Result<Tile> {
    let s = ds.images.shape();
    Ok(Tile::new(
        s.channels,
        s.height,
        s.width,
        ds.images.image(i).to_vec(),
    )?)
}

/// The metrics table: each metric for the model and each reference point.
fn metric_rows(value: &serde_json::Value) -> Vec<(String, String)> {
    let get = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_f64);
    let baselines = value.get("baselines");
    let mut rows = vec![("metric".to_string(), "model · raw pixels · untrained".to_string())];
    for key in [
        "precision_at_1",
        "r_precision",
        "mean_average_precision_at_r",
        "nmi",
        "pair_roc_auc",
        "pair_eer",
        "pair_accuracy",
    ] {
        let cell = |v: Option<&serde_json::Value>| {
            v.and_then(|v| get(v, key))
                .map_or("-".into(), |x| format!("{x:.4}"))
        };
        let others = ["raw_pixels", "untrained"].map(|b| cell(baselines.and_then(|bs| bs.get(b))));
        rows.push((
            key.to_string(),
            format!("{} · {} · {}", cell(Some(value)), others[0], others[1]),
        ));
    }
    rows
}
