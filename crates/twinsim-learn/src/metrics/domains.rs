//! Metrics by domain, for a union of datasets (`mnist+cifar10`): each
//! domain's retrieval metrics over its own queries, searched against the
//! whole gallery, and its cross-domain confusion rate, the share of its
//! queries whose nearest neighbour belongs to another domain.
//!
//! A model that keeps the parts of a union apart has confusion rates near
//! 0, whatever its accuracy within each part; one that mixes them shows it
//! here before any per-class figure does.
//!
//! One search serves the whole and every domain: each query's neighbours
//! are ranked once, the overall sums take every row and each domain's sums
//! its own. Each domain keeps its own k (the largest R among its queries),
//! so its figures are exactly those of its queries evaluated alone against
//! the same gallery.

use serde::Serialize;
use tch::{Kind, Tensor};

use super::{clustering, cpu_labels, relevant_counts, Calculator, Protocol, Ranking, Retrieval};
use crate::model::Distance;
use crate::{LearnError, Result};

/// One domain's figures.
#[derive(Clone, Debug, Serialize)]
pub struct DomainRetrieval {
    /// The domain, as the domain indices given name it.
    #[serde(skip)]
    pub domain: u32,
    /// Share of the domain's queries (all of them, lone ones included)
    /// whose nearest gallery item is of another domain.
    pub cross_domain_confusion: f64,
    /// The retrieval metrics of the domain's queries alone.
    #[serde(flatten)]
    pub retrieval: Retrieval,
}

impl Calculator {
    /// [`Calculator::compute`], and the same for each domain apart, from one
    /// search: `query_domains` (Nq) gives each query's domain and the
    /// gallery's third element each gallery item's (under leave-one-out,
    /// `None`, the queries' own). One entry per domain that has a query, in
    /// domain order.
    pub fn compute_by_domain(
        &self,
        query: &Tensor,
        query_labels: &Tensor,
        query_domains: &[u32],
        gallery: Option<(&Tensor, &Tensor, &[u32])>,
        distance: Distance,
    ) -> Result<(Retrieval, Vec<DomainRetrieval>)> {
        let (g, g_labels, g_domains, protocol) = match gallery {
            Some((g, labels, domains)) => (g, labels, domains, Protocol::QueryVsGallery),
            None => (query, query_labels, query_domains, Protocol::LeaveOneOut),
        };
        let labels = self.check(query, query_labels, g, g_labels, protocol)?;
        if query_domains.len() != labels.len() || g_domains.len() as i64 != g.size()[0] {
            return Err(LearnError::config(
                format!(
                    "{} queries with {} domains, {} gallery items with {}",
                    labels.len(),
                    query_domains.len(),
                    g.size()[0],
                    g_domains.len()
                ),
                "pass one domain per query and per gallery item",
            ));
        }
        let leave_one_out = protocol == Protocol::LeaveOneOut;
        let relevant = relevant_counts(&labels, &cpu_labels(g_labels)?, leave_one_out);
        let count = query_domains
            .iter()
            .chain(g_domains)
            .max()
            .map_or(0, |&d| d as usize + 1);
        let mut members = vec![Vec::new(); count];
        for (i, &d) in query_domains.iter().enumerate() {
            members[d as usize].push(i as i64);
        }
        let mut sums: Vec<_> = members
            .iter()
            .map(|m| self.accumulator(&m.iter().map(|&i| relevant[i as usize]).collect::<Vec<_>>()))
            .collect();
        let mut all = self.accumulator(&relevant);
        let mut confused = vec![0i64; count];
        let device = g.device();
        let domains = |d: &[u32]| {
            Tensor::from_slice(&d.iter().map(|&x| i64::from(x)).collect::<Vec<_>>()).to_device(device)
        };
        let (q_domains, g_domains) = (domains(query_domains), domains(g_domains));
        let relevant = Tensor::from_slice(&relevant).to_device(device);
        let ranking = Ranking {
            query,
            labels: &labels,
            gallery: g,
            gallery_labels: g_labels,
            distance,
            leave_one_out,
        };
        // Depth 1 at least: the nearest neighbour's domain is always needed.
        self.rank(&ranking, all.depth().max(1), |start, nn, matches| {
            let len = nn.size()[0];
            all.add(matches, &relevant.narrow(0, start, len));
            let block = q_domains.narrow(0, start, len);
            let elsewhere = g_domains.index_select(0, &nn.select(1, 0)).ne_tensor(&block);
            for (d, (sum, confused)) in sums.iter_mut().zip(&mut confused).enumerate() {
                let mine = block.eq(d as i64);
                *confused += elsewhere.logical_and(&mine).sum(Kind::Int64).int64_value(&[]);
                let rows = mine.nonzero().squeeze_dim(1);
                if rows.size()[0] > 0 {
                    let relevant = relevant.narrow(0, start, len).index_select(0, &rows);
                    sum.add(&matches.index_select(0, &rows), &relevant);
                }
            }
        });
        let mut overall = all.finish(protocol);
        if self.nmi {
            overall.nmi = Some(clustering::kmeans_nmi(query, &labels, self.seed)?);
        }
        let mut out = Vec::new();
        for (d, ((sum, members), confused)) in sums.into_iter().zip(members).zip(confused).enumerate() {
            if members.is_empty() {
                continue;
            }
            let mut retrieval = sum.finish(protocol);
            if self.nmi {
                let rows = Tensor::from_slice(&members).to_device(query.device());
                let own: Vec<i64> = members.iter().map(|&i| labels[i as usize]).collect();
                retrieval.nmi = Some(clustering::kmeans_nmi(
                    &query.index_select(0, &rows),
                    &own,
                    self.seed,
                )?);
            }
            out.push(DomainRetrieval {
                domain: d as u32,
                cross_domain_confusion: confused as f64 / members.len() as f64,
                retrieval,
            });
        }
        Ok((overall, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metric;

    /// (N, 1) embeddings at these points on a line.
    fn points(xs: &[f32]) -> Tensor {
        Tensor::from_slice(xs).view([-1, 1])
    }

    fn labels(ls: &[i64]) -> Tensor {
        Tensor::from_slice(ls)
    }

    #[test]
    fn confusion_counts_the_queries_whose_nearest_item_is_of_another_domain() {
        // Domain 0 near 0, domain 1 near 10. The query at 5.6 (domain 0,
        // class 1) is nearer 10 than 1: its nearest item is of domain 1.
        let gallery = points(&[0.0, 1.0, 10.0, 11.0]);
        let g_labels = labels(&[0, 1, 2, 3]);
        let query = points(&[0.1, 5.6, 10.9]);
        let q_labels = labels(&[0, 1, 3]);
        let (_, by_domain) = Calculator::new()
            .compute_by_domain(
                &query,
                &q_labels,
                &[0, 0, 1],
                Some((&gallery, &g_labels, &[0, 0, 1, 1])),
                Distance::Euclidean,
            )
            .unwrap();
        assert_eq!(by_domain.len(), 2);
        assert_eq!(by_domain[0].cross_domain_confusion, 0.5);
        assert_eq!(by_domain[0].retrieval.precision_at_1, Some(0.5));
        assert_eq!(by_domain[0].retrieval.queries, 2);
        assert_eq!(by_domain[1].cross_domain_confusion, 0.0);
        assert_eq!(by_domain[1].retrieval.precision_at_1, Some(1.0));
    }

    #[test]
    fn leave_one_out_never_counts_a_query_as_its_own_neighbour() {
        // Each item's nearest other item: 0 -> 1 (same domain), 1 -> 0,
        // 4 -> 5 (domain 0 to 1: confused), 5 -> 4 (domain 1 to 0: confused),
        // 20 -> 5 (same domain).
        let x = points(&[0.0, 1.0, 4.0, 5.0, 20.0]);
        let l = labels(&[0, 0, 1, 2, 2]);
        let (_, by_domain) = Calculator::new()
            .metrics(&[Metric::PrecisionAt1])
            .compute_by_domain(&x, &l, &[0, 0, 0, 1, 1], None, Distance::Euclidean)
            .unwrap();
        assert_eq!(by_domain[0].cross_domain_confusion, 1.0 / 3.0);
        assert_eq!(by_domain[1].cross_domain_confusion, 0.5);
        assert_eq!(by_domain[0].retrieval.protocol, Protocol::LeaveOneOut);
        // Class 1 is alone: its query is left out of the averages.
        assert_eq!(by_domain[0].retrieval.queries, 2);
        assert_eq!(by_domain[0].retrieval.precision_at_1, Some(1.0));
    }

    #[test]
    fn the_whole_and_each_domain_score_as_they_would_alone() {
        tch::manual_seed(3);
        let gallery = Tensor::randn([60, 4], (Kind::Float, tch::Device::Cpu));
        let g_labels = Tensor::randint(6, [60], (Kind::Int64, tch::Device::Cpu));
        let query = Tensor::randn([25, 4], (Kind::Float, tch::Device::Cpu));
        let q_labels = Tensor::randint(6, [25], (Kind::Int64, tch::Device::Cpu));
        // Domains by label (0-2 and 3-5), as a union's parts are.
        let domain = |l: &Tensor| -> Vec<u32> {
            Vec::<i64>::try_from(l)
                .unwrap()
                .iter()
                .map(|&x| u32::from(x >= 3))
                .collect()
        };
        let calc = Calculator::new()
            .precision_at(&[5])
            .recall_at(&[1, 4])
            .nmi(true)
            .chunk_size(7);
        let (q_domains, g_domains) = (domain(&q_labels), domain(&g_labels));
        let (overall, by_domain) = calc
            .compute_by_domain(
                &query,
                &q_labels,
                &q_domains,
                Some((&gallery, &g_labels, &g_domains)),
                Distance::Euclidean,
            )
            .unwrap();
        // The whole is what the plain search gives, summed in the same blocks.
        let whole = calc.compute(
            &query,
            &q_labels,
            Some((&gallery, &g_labels)),
            Distance::Euclidean,
        );
        assert_eq!(overall, whole.unwrap());
        for d in &by_domain {
            let rows: Vec<i64> = (0..25).filter(|&i| q_domains[i as usize] == d.domain).collect();
            let rows = Tensor::from_slice(&rows);
            let alone = calc
                .compute(
                    &query.index_select(0, &rows),
                    &q_labels.index_select(0, &rows),
                    Some((&gallery, &g_labels)),
                    Distance::Euclidean,
                )
                .unwrap();
            // Equal up to the order the per-query values were summed in.
            let (a, b) = (
                serde_json::to_value(&d.retrieval).unwrap(),
                serde_json::to_value(&alone).unwrap(),
            );
            assert_close(&a, &b, d.domain);
        }
    }

    /// `a` and `b` have the same keys and numbers within 1e-12.
    fn assert_close(a: &serde_json::Value, b: &serde_json::Value, domain: u32) {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>(),
                    "domain {domain}"
                );
                for (k, v) in x {
                    assert_close(v, &y[k], domain);
                }
            }
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!((x - y).abs() < 1e-12, "domain {domain}: {x} vs {y}");
            }
            _ => assert_eq!(a, b, "domain {domain}"),
        }
    }

    #[test]
    fn domains_must_match_the_items() {
        let x = points(&[0.0, 1.0]);
        let l = labels(&[0, 0]);
        let err = Calculator::new()
            .compute_by_domain(&x, &l, &[0], None, Distance::Euclidean)
            .unwrap_err();
        assert!(err.to_string().contains("1 domains"), "{err}");
    }
}
