//! The gallery: embeddings of known images, each with its class name and
//! where it came from, tied to the model that embedded them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use twinsim_learn::model::{Distance, Model};

use crate::error::{IndexError, Result};
use crate::exact;
use crate::hnsw::{Hnsw, HnswParams};

/// The index format this code writes and reads; another version is refused
/// rather than half-understood.
pub const FORMAT_VERSION: u32 = 1;

/// What an index is, apart from its rows: stored in the file's header.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexInfo {
    pub format_version: u32,
    /// [`Model::weights_hash`] of the model that embedded the gallery:
    /// queries must come from the same model.
    pub model_hash: String,
    /// The run directory the model was read from when the index was built.
    pub model_dir: PathBuf,
    /// How the model compares embeddings.
    pub metric: Distance,
    /// Embedding width D.
    pub dim: usize,
    /// Class names; each row's label indexes them.
    pub classes: Vec<String>,
    /// How queries are answered.
    pub backend: Backend,
}

/// How an index is searched.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Backend {
    /// Every query against every item ([`exact`]): the true neighbours.
    #[default]
    Exact,
    /// An HNSW graph ([`crate::hnsw`]): approximate, for large galleries.
    Hnsw(HnswParams),
}

impl Backend {
    /// `exact` or `hnsw`, as the command line spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Exact => "exact",
            Backend::Hnsw(_) => "hnsw",
        }
    }
}

/// A gallery item found for a query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbour {
    /// The item's row in the index.
    pub item: usize,
    /// Its distance to the query, as the model measures it.
    pub distance: f64,
}

/// An index: N embedded images with their labels and sources.
#[derive(Debug)]
pub struct Index {
    pub info: IndexInfo,
    /// (N, D) float32 on the CPU; rows of norm 1 for cosine models.
    embeddings: Tensor,
    /// Per row, an index into `info.classes`.
    labels: Vec<u32>,
    /// Per row, where the image came from: a file path or `DATASET:SPLIT#i`.
    sources: Vec<String>,
    /// The HNSW graph over `embeddings`, built at the first search of an
    /// `hnsw` index and dropped when rows are added.
    graph: OnceLock<Hnsw>,
}

impl Index {
    /// An empty index for the embeddings of `model`, read from
    /// `model_dir`, searched by `backend`.
    pub fn new(model: &Model, model_dir: &Path, backend: Backend) -> Index {
        let dim = model.dim() as usize;
        Index {
            info: IndexInfo {
                format_version: FORMAT_VERSION,
                model_hash: model.weights_hash(),
                model_dir: model_dir.to_path_buf(),
                metric: model.card.distance,
                dim,
                classes: Vec::new(),
                backend,
            },
            embeddings: Tensor::zeros([0, dim as i64], (Kind::Float, tch::Device::Cpu)),
            labels: Vec::new(),
            sources: Vec::new(),
            graph: OnceLock::new(),
        }
    }

    /// An index from its parts, as read from a file; the caller has checked
    /// that the shapes agree.
    pub(crate) fn from_parts(
        info: IndexInfo,
        embeddings: Tensor,
        labels: Vec<u32>,
        sources: Vec<String>,
    ) -> Index {
        Index {
            info,
            embeddings,
            labels,
            sources,
            graph: OnceLock::new(),
        }
    }

    /// Items in the gallery.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the gallery holds nothing.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The (N, D) embeddings.
    pub fn embeddings(&self) -> &Tensor {
        &self.embeddings
    }

    /// Each row's label, an index into `info.classes`.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Each row's source.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The class name of row `item`.
    pub fn label(&self, item: usize) -> &str {
        &self.info.classes[self.labels[item] as usize]
    }

    /// Items per class name.
    pub fn class_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for item in 0..self.len() {
            *counts.entry(self.label(item)).or_default() += 1;
        }
        counts
    }

    /// Refuses `model` unless it is the model that embedded the gallery;
    /// `path` (the index file) is named in the message.
    pub fn check_model(&self, model: &Model, path: &Path) -> Result<()> {
        let hash = model.weights_hash();
        if hash == self.info.model_hash && model.dim() as usize == self.info.dim {
            return Ok(());
        }
        Err(IndexError::bad_index(
            path,
            format!(
                "made by another model: the index holds {}-d embeddings of model {}, the model given is {} ({}-d)",
                self.info.dim,
                self.info.model_hash,
                hash,
                model.dim()
            ),
            format!(
                "query it with the model it was built with ({}), or build a new index with this model",
                self.info.model_dir.display()
            ),
        ))
    }

    /// Adds `embeddings` (n, D) float, labelled `labels` (class names; new
    /// names become new classes) and coming from `sources`. Rejects the
    /// whole batch, adding nothing, when a row is not finite or the counts
    /// or width disagree.
    pub fn add(&mut self, embeddings: &Tensor, labels: &[String], sources: Vec<String>) -> Result<()> {
        let size = embeddings.size();
        let n = labels.len();
        if size.len() != 2 || size[0] as usize != n || sources.len() != n || size[1] as usize != self.info.dim
        {
            return Err(IndexError::invalid(
                format!(
                    "cannot add embeddings of shape {size:?} with {n} labels and {} sources to a {}-d index",
                    sources.len(),
                    self.info.dim
                ),
                "embed the images with the model the index was built with",
            ));
        }
        check_finite(embeddings, "gallery")?;
        if let Some(bad) = sources.iter().find(|s| s.contains('\0')) {
            return Err(IndexError::invalid(
                format!("source {bad:?} holds a NUL character"),
                "name images by paths or dataset references",
            ));
        }
        let rows = self.prepare(embeddings);
        for name in labels {
            let label = match self.info.classes.iter().position(|c| c == name) {
                Some(i) => i,
                None => {
                    self.info.classes.push(name.clone());
                    self.info.classes.len() - 1
                }
            };
            self.labels.push(label as u32);
        }
        self.embeddings = Tensor::cat(&[&self.embeddings, &rows], 0);
        self.sources.extend(sources);
        self.graph = OnceLock::new();
        Ok(())
    }

    /// The `k` nearest gallery items of each query row of `queries` (Nq, D),
    /// nearest first, ties in gallery order.
    pub fn search(&self, queries: &Tensor, k: usize) -> Result<Vec<Vec<Neighbour>>> {
        self.check_k(k)?;
        let size = queries.size();
        if size.len() != 2 || size[1] as usize != self.info.dim {
            return Err(IndexError::invalid(
                format!("queries of shape {size:?} for a {}-d index", self.info.dim),
                "embed the queries with the model the index was built with",
            ));
        }
        check_finite(queries, "query")?;
        let queries = self.prepare(queries);
        match self.info.backend {
            Backend::Exact => Ok(exact::search(
                &self.embeddings,
                &queries,
                self.info.metric,
                k,
                false,
            )),
            Backend::Hnsw(params) => self.graph(params)?.search(&queries, k),
        }
    }

    /// The HNSW graph, built on first use.
    fn graph(&self, params: HnswParams) -> Result<&Hnsw> {
        if let Some(graph) = self.graph.get() {
            return Ok(graph);
        }
        let built = Hnsw::build(&self.embeddings, self.info.metric, params)?;
        Ok(self.graph.get_or_init(|| built))
    }

    /// Refuses a k the gallery cannot answer.
    fn check_k(&self, k: usize) -> Result<()> {
        if self.is_empty() {
            return Err(IndexError::invalid(
                "the index is empty: there is nothing to search",
                "enrol images first with `twinsim index add INDEX --folder DIR` (or FILES --label NAME)",
            ));
        }
        if k == 0 || k > self.len() {
            return Err(IndexError::invalid(
                format!(
                    "k must be between 1 and the gallery's {} items, not {k}",
                    self.len()
                ),
                format!("pass -k between 1 and {}", self.len()),
            ));
        }
        Ok(())
    }

    /// Rows as the exact search compares them: float32, unit length for
    /// cosine (so a dot product ranks them).
    fn prepare(&self, rows: &Tensor) -> Tensor {
        let rows = rows.to_kind(Kind::Float).to_device(tch::Device::Cpu);
        match self.info.metric {
            Distance::Cosine => &rows / rows.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12),
            Distance::Euclidean => rows,
        }
    }
}

/// Refuses embeddings holding NaN or infinity (a damaged model or image),
/// which would rank arbitrarily.
fn check_finite(rows: &Tensor, what: &str) -> Result<()> {
    let finite = rows.isfinite().all().int64_value(&[]) != 0;
    if finite {
        return Ok(());
    }
    Err(IndexError::invalid(
        format!("a {what} embedding is not finite (NaN or infinity)"),
        "the model's weights or the image are damaged; retrain or check the image",
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An empty index of `dim`-d embeddings compared by `metric`.
    pub(crate) fn empty(dim: usize, metric: Distance) -> Index {
        let info = IndexInfo {
            format_version: FORMAT_VERSION,
            model_hash: "0".repeat(64),
            model_dir: "run".into(),
            metric,
            dim,
            classes: Vec::new(),
            backend: Backend::Exact,
        };
        Index::from_parts(
            info,
            Tensor::zeros([0, dim as i64], (Kind::Float, tch::Device::Cpu)),
            Vec::new(),
            Vec::new(),
        )
    }

    /// `n` random rows of width `dim`, labelled by row modulo 3.
    pub(crate) fn filled(n: usize, dim: usize, metric: Distance) -> Index {
        let mut index = empty(dim, metric);
        tch::manual_seed(7);
        let rows = Tensor::randn([n as i64, dim as i64], (Kind::Float, tch::Device::Cpu));
        let labels: Vec<String> = (0..n).map(|i| format!("c{}", i % 3)).collect();
        let sources = (0..n).map(|i| format!("img{i}.png")).collect();
        index.add(&rows, &labels, sources).unwrap();
        index
    }

    #[test]
    fn search_matches_brute_force_for_both_metrics() {
        for metric in [Distance::Cosine, Distance::Euclidean] {
            let index = filled(300, 8, metric);
            tch::manual_seed(8);
            let queries = Tensor::randn([20, 8], (Kind::Float, tch::Device::Cpu));
            let found = index.search(&queries, 5).unwrap();
            for (q, got) in found.iter().enumerate() {
                let row = queries.get(q as i64).unsqueeze(0).expand([300, 8], false);
                let d = metric.rows(&row, index.embeddings());
                let d = Vec::<f32>::try_from(&d).unwrap();
                let mut order: Vec<usize> = (0..300).collect();
                order.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
                let items: Vec<usize> = got.iter().map(|n| n.item).collect();
                assert_eq!(items, order[..5], "{metric:?} query {q}");
                for n in got {
                    assert!((n.distance - f64::from(d[n.item])).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn hnsw_finds_the_exact_top_10_on_a_small_gallery() {
        for metric in [Distance::Cosine, Distance::Euclidean] {
            let exact = filled(2000, 16, metric);
            let mut approx = filled(2000, 16, metric);
            approx.info.backend = Backend::Hnsw(HnswParams::default());
            tch::manual_seed(9);
            let queries = Tensor::randn([50, 16], (Kind::Float, tch::Device::Cpu));
            let want = exact.search(&queries, 10).unwrap();
            let got = approx.search(&queries, 10).unwrap();
            for (w, g) in want.iter().zip(&got) {
                let items = |found: &[Neighbour]| found.iter().map(|n| n.item).collect::<Vec<_>>();
                assert_eq!(items(g), items(w), "{metric:?}");
                for (a, b) in w.iter().zip(g) {
                    assert!((a.distance - b.distance).abs() < 1e-4, "{metric:?}: {a:?} {b:?}");
                }
            }
            // Rows added later are found too: the graph is rebuilt.
            let far = Tensor::full([1, 16], 50.0, (Kind::Float, tch::Device::Cpu));
            approx.add(&far, &["far".into()], vec!["far.png".into()]).unwrap();
            let hit = approx.search(&(far * 1.01), 1).unwrap();
            assert_eq!(approx.label(hit[0][0].item), "far");
        }
    }

    #[test]
    fn bad_k_empty_galleries_and_nan_are_refused() {
        let index = filled(10, 4, Distance::Cosine);
        let q = Tensor::ones([1, 4], (Kind::Float, tch::Device::Cpu));
        for k in [0, 11] {
            let e = index.search(&q, k).unwrap_err();
            assert!(
                e.to_string().contains("between 1 and the gallery's 10 items"),
                "{e}"
            );
        }
        assert!(index.search(&q, 10).is_ok());
        let e = empty(4, Distance::Cosine).search(&q, 1).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let nan = Tensor::from_slice(&[f32::NAN, 0.0, 0.0, 0.0]).view([1, 4]);
        assert!(index
            .search(&nan, 1)
            .unwrap_err()
            .to_string()
            .contains("not finite"));
        let mut grow = filled(10, 4, Distance::Cosine);
        let e = grow.add(&nan, &["x".into()], vec!["x.png".into()]).unwrap_err();
        assert!(e.to_string().contains("not finite"));
        assert_eq!(grow.len(), 10, "a refused batch adds nothing");
    }

    #[test]
    fn embeddings_of_another_width_are_refused() {
        let mut index = filled(10, 4, Distance::Cosine);
        let wide = Tensor::ones([2, 8], (Kind::Float, tch::Device::Cpu));
        let e = index.search(&wide, 1).unwrap_err();
        assert!(e.to_string().contains("for a 4-d index"), "{e}");
        let e = index
            .add(&wide, &["a".into(), "b".into()], vec!["a".into(), "b".into()])
            .unwrap_err();
        assert!(e.to_string().contains("to a 4-d index"), "{e}");
        assert_eq!(index.len(), 10);
    }

    #[test]
    fn adding_a_new_class_name_extends_the_classes() {
        let mut index = filled(6, 4, Distance::Euclidean);
        let rows = Tensor::ones([2, 4], (Kind::Float, tch::Device::Cpu));
        index
            .add(&rows, &["new".into(), "c1".into()], vec!["a".into(), "b".into()])
            .unwrap();
        assert_eq!(index.info.classes, ["c0", "c1", "c2", "new"]);
        assert_eq!((index.label(6), index.label(7)), ("new", "c1"));
        assert_eq!(index.class_counts()["c1"], 3);
    }
}
