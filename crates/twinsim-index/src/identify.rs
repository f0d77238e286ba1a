//! Search results a person can read, and open-set identification: the
//! nearest enrolled class when the calibrated similarity clears the model's
//! threshold, else `unknown` (an image of a class never enrolled).

use serde::Serialize;
use tch::Tensor;
use twinsim_learn::calibration::Calibration;

use crate::error::Result;
use crate::index::Index;

/// One neighbour of a query, as `twinsim search` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    /// 1 for the nearest.
    pub rank: usize,
    pub label: String,
    /// Calibrated similarity in [0, 1].
    pub similarity: f64,
    /// The embedding distance it was read from.
    pub distance: f64,
    /// Where the gallery image came from.
    pub source: String,
    /// The item's row in the index.
    pub item: usize,
}

/// The answer for one query of `twinsim identify`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Identity {
    /// The nearest class, or `None` (printed `unknown`) when its similarity
    /// is below the threshold.
    pub label: Option<String>,
    /// Calibrated similarity of the nearest gallery item.
    pub similarity: f64,
    /// The model's decision threshold, on the similarity scale.
    pub threshold: f64,
    /// The nearest gallery item.
    pub nearest: Hit,
}

/// The `k` nearest gallery items of each query (Nq, D), with calibrated
/// similarities.
pub fn search(index: &Index, calibration: &Calibration, queries: &Tensor, k: usize) -> Result<Vec<Vec<Hit>>> {
    Ok(index
        .search(queries, k)?
        .into_iter()
        .map(|found| {
            found
                .into_iter()
                .enumerate()
                .map(|(i, n)| Hit {
                    rank: i + 1,
                    label: index.label(n.item).to_string(),
                    similarity: calibration.similarity(n.distance),
                    distance: n.distance,
                    source: index.sources()[n.item].clone(),
                    item: n.item,
                })
                .collect()
        })
        .collect())
}

/// Each query's identity: the class of its nearest gallery item when the
/// pair is called the same by the calibration, else unknown.
pub fn identify(index: &Index, calibration: &Calibration, queries: &Tensor) -> Result<Vec<Identity>> {
    Ok(search(index, calibration, queries, 1)?
        .into_iter()
        .map(|mut hits| {
            let nearest = hits.remove(0);
            Identity {
                label: calibration.same(nearest.distance).then(|| nearest.label.clone()),
                similarity: nearest.similarity,
                threshold: calibration.threshold,
                nearest,
            }
        })
        .collect())
}

/// How identification did on queries whose classes are known.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpenSetScore {
    /// Queries of classes enrolled in the index.
    pub enrolled_queries: usize,
    /// Share of those named with their class (accepted, and right).
    pub identification_accuracy: f64,
    /// Share of those answered unknown.
    pub false_reject_rate: f64,
    /// Queries of classes not enrolled.
    pub unenrolled_queries: usize,
    /// Share of those accepted as some enrolled class.
    pub false_accept_rate: f64,
    /// Share of all queries answered right: their class, or unknown for a
    /// class not enrolled.
    pub accuracy: f64,
}

/// Scores `found` against each query's true class name `truth`; the
/// classes enrolled are `enrolled`.
pub fn score(found: &[Identity], truth: &[String], enrolled: &[String]) -> OpenSetScore {
    let (mut known, mut named, mut rejected, mut unknown, mut accepted) = (0, 0, 0, 0, 0);
    for (id, class) in found.iter().zip(truth) {
        if enrolled.contains(class) {
            known += 1;
            named += usize::from(id.label.as_ref() == Some(class));
            rejected += usize::from(id.label.is_none());
        } else {
            unknown += 1;
            accepted += usize::from(id.label.is_some());
        }
    }
    let share = |n: usize, of: usize| if of == 0 { f64::NAN } else { n as f64 / of as f64 };
    OpenSetScore {
        enrolled_queries: known,
        identification_accuracy: share(named, known),
        false_reject_rate: share(rejected, known),
        unenrolled_queries: unknown,
        false_accept_rate: share(accepted, unknown),
        accuracy: share(named + unknown - accepted, known + unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(label: Option<&str>) -> Identity {
        let nearest = Hit {
            rank: 1,
            label: "x".into(),
            similarity: 0.9,
            distance: 0.1,
            source: "s".into(),
            item: 0,
        };
        Identity {
            label: label.map(String::from),
            similarity: 0.9,
            threshold: 0.5,
            nearest,
        }
    }

    #[test]
    fn open_set_score_counts_each_kind_of_answer() {
        let found = [id(Some("5")), id(Some("6")), id(None), id(Some("5")), id(None)];
        let truth: Vec<String> = ["5", "5", "5", "0", "0"].map(String::from).to_vec();
        let s = score(&found, &truth, &["5".into(), "6".into()]);
        assert_eq!((s.enrolled_queries, s.unenrolled_queries), (3, 2));
        assert!((s.identification_accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.false_reject_rate - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.false_accept_rate - 0.5).abs() < 1e-12);
        assert!((s.accuracy - 2.0 / 5.0).abs() < 1e-12);
    }
}
