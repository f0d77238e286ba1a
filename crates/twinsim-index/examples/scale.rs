//! Gallery search at scale: exact search against the HNSW graph on the same
//! vectors (docs/benchmarks.md, "Search"). Prints one markdown row per
//! (gallery, backend; for HNSW, per search expansion ef in [`EFS`]): build
//! time, the memory the search structure adds,
//! single-query latency p50 / p99, per-query time when queries come in one
//! batch, and recall@10 against exact search.
//!
//!   cargo run --release -p twinsim-index --example scale -- [SIZES] [GALLERY.npy QUERIES.npy]
//!
//! SIZES (default 10000,100000,1000000): galleries of random unit vectors,
//! 128-d, with 1,000 random queries. With two .npy files (float32 rows, as
//! `twinsim embed` writes them) the gallery and queries are those instead
//! ("real"), cut to each size that fits. Cosine throughout.

use std::time::Instant;

use tch::{Kind, Tensor};
use twinsim_data::npy;
use twinsim_index::exact;
use twinsim_index::hnsw::{Hnsw, HnswParams};
use twinsim_learn::model::Distance;

const K: usize = 10;
const QUERIES: i64 = 1000;
/// Search expansions (ef) tried on each graph, which is built once with
/// the default parameters.
const EFS: [usize; 4] = [64, 128, 256, 512];
/// Single queries timed per row (fewer for exact search on the largest galleries).
const SINGLE: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<i64> = args
        .first()
        .map_or("10000,100000,1000000", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("sizes are numbers"))
        .collect();
    let real = (args.len() >= 3).then(|| (load(&args[1]), load(&args[2])));
    println!("| gallery | backend | build s | added memory MB | single p50 ms | single p99 ms | batched ms/query | recall@10 |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let (gallery, queries, kind) = match &real {
            Some((g, q)) if n <= g.size()[0] => (
                g.narrow(0, 0, n),
                q.narrow(0, 0, q.size()[0].min(QUERIES)),
                "real",
            ),
            Some(_) => continue,
            None => (random(n, 1), random(QUERIES, 2), "random"),
        };
        let name = format!("{n} x 128 {kind}");
        let truth = measure(
            &name,
            "exact",
            0.0,
            0,
            |q| exact::search(&gallery, q, Distance::Cosine, K, false),
            &queries,
            None,
        );
        let before = rss_mb();
        let started = Instant::now();
        let graph = Hnsw::build(&gallery, Distance::Cosine, HnswParams::default()).expect("graph builds");
        let built = started.elapsed().as_secs_f64();
        let added = rss_mb() - before;
        for ef in EFS {
            graph.set_expansion_search(ef);
            let backend = format!("hnsw ef {ef}");
            measure(
                &name,
                &backend,
                built,
                added,
                |q| graph.search(q, K).expect("search"),
                &queries,
                Some(&truth),
            );
        }
    }
}

/// Times `search` and prints the row; returns the batched results.
fn measure(
    name: &str,
    backend: &str,
    build_s: f64,
    added_mb: i64,
    search: impl Fn(&Tensor) -> Vec<Vec<twinsim_index::Neighbour>>,
    queries: &Tensor,
    truth: Option<&[Vec<twinsim_index::Neighbour>]>,
) -> Vec<Vec<twinsim_index::Neighbour>> {
    let singles = if backend == "exact" && name.starts_with("1000000") {
        30
    } else {
        SINGLE
    };
    let mut ms: Vec<f64> = (0..singles as i64)
        .map(|i| {
            let q = queries.narrow(0, i % queries.size()[0], 1);
            let t = Instant::now();
            let _ = search(&q);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    let t = Instant::now();
    let found = search(queries);
    let batched = t.elapsed().as_secs_f64() * 1e3 / queries.size()[0] as f64;
    let recall = truth.map_or(1.0, |truth| recall(&found, truth));
    println!(
        "| {name} | {backend} | {build_s:.1} | {added_mb} | {:.3} | {:.3} | {batched:.3} | {recall:.4} |",
        pct(0.5),
        pct(0.99)
    );
    found
}

/// Share of the true top-K found.
fn recall(found: &[Vec<twinsim_index::Neighbour>], truth: &[Vec<twinsim_index::Neighbour>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|n| t.iter().any(|m| m.item == n.item)).count())
        .sum();
    hits as f64 / (truth.len() * K) as f64
}

/// `n` random unit vectors of 128 dimensions.
fn random(n: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let rows = Tensor::randn([n, 128], (Kind::Float, tch::Device::Cpu));
    &rows / rows.norm_scalaropt_dim(2, [1], true)
}

/// Float32 rows from a .npy file, normalised.
fn load(path: &str) -> Tensor {
    let a = npy::read::<f32>(std::path::Path::new(path)).expect("a float32 .npy file");
    let rows = Tensor::from_slice(&a.values).view([a.shape[0] as i64, a.shape[1] as i64]);
    &rows / rows.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

/// Resident memory of this process, MB.
fn rss_mb() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096 / (1 << 20)
}
