//! PCA finds the dominant direction; t-SNE keeps clusters apart and is
//! reproducible from its seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinsim_report::{pca_2d, tsne_2d};

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let var = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>();
    cov / (var(a, ma) * var(b, mb)).sqrt()
}

fn variance(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64
}

#[test]
fn pca_recovers_the_long_axis_of_an_elongated_cloud() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Long axis along (1, 2, 0, -1, 0.5)/|.|, plus a weaker second axis and noise.
    let long = [1.0, 2.0, 0.0, -1.0, 0.5];
    let norm = long.iter().map(|v: &f64| v * v).sum::<f64>().sqrt();
    let second = [0.0, 0.0, 1.0, 0.0, 0.0];
    let (n, d) = (500, 5);
    let mut t = Vec::new();
    let mut data = Vec::new();
    for _ in 0..n {
        let (a, b) = (10.0 * normal(&mut rng), 3.0 * normal(&mut rng));
        t.push(a);
        for k in 0..d {
            data.push((5.0 + a * long[k] / norm + b * second[k] + 0.3 * normal(&mut rng)) as f32);
        }
    }
    let map = pca_2d(&data, n, d).unwrap();
    let (xs, ys): (Vec<f64>, Vec<f64>) = map.into_iter().unzip();
    // The largest loading (2) is positive, so x grows with t.
    assert!(correlation(&xs, &t) > 0.99, "{}", correlation(&xs, &t));
    assert!(variance(&xs) > 5.0 * variance(&ys));
    assert!(
        ys.iter().sum::<f64>().abs() / (n as f64) < 1e-6,
        "projections are centred"
    );
}

#[test]
fn pca_of_degenerate_data_is_zero_not_a_panic() {
    assert_eq!(pca_2d(&[1.0; 12], 4, 3).unwrap(), vec![(0.0, 0.0); 4]);
    let line = pca_2d(&[1.0, 2.0, 3.0], 3, 1).unwrap();
    assert!(line.iter().all(|p| p.1 == 0.0));
    assert!(pca_2d(&[], 0, 7).unwrap().is_empty());
}

/// Three well-separated Gaussian blobs of 50 points in 10-D.
fn blobs(seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f64>> = (0..3)
        .map(|_| (0..10).map(|_| 8.0 * normal(&mut rng)).collect())
        .collect();
    let labels: Vec<usize> = (0..150).map(|i| i / 50).collect();
    let data = labels
        .iter()
        .flat_map(|&c| centres[c].clone())
        .map(|m| (m + normal(&mut rng)) as f32)
        .collect();
    (data, labels)
}

#[test]
fn tsne_keeps_blobs_apart() {
    let (data, labels) = blobs(11);
    let map = tsne_2d(&data, 150, 10, 30.0, 500, 1).unwrap();
    let nearest_same = (0..map.len())
        .filter(|&i| {
            let dist = |j: usize| (map[i].0 - map[j].0).powi(2) + (map[i].1 - map[j].1).powi(2);
            let nearest = (0..map.len())
                .filter(|&j| j != i)
                .min_by(|&a, &b| dist(a).total_cmp(&dist(b)));
            nearest.is_some_and(|j| labels[j] == labels[i])
        })
        .count();
    assert!(nearest_same as f64 >= 0.95 * 150.0, "{nearest_same} of 150");
    assert!(map.iter().all(|p| p.0.is_finite() && p.1.is_finite()));
}

#[test]
fn tsne_is_reproducible_from_its_seed() {
    let (data, _) = blobs(5);
    let a = tsne_2d(&data, 150, 10, 20.0, 300, 42).unwrap();
    let b = tsne_2d(&data, 150, 10, 20.0, 300, 42).unwrap();
    let c = tsne_2d(&data, 150, 10, 20.0, 300, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let (data, _) = blobs(8);
    let run = || {
        (
            tsne_2d(&data, 150, 10, 20.0, 200, 9).unwrap(),
            pca_2d(&data, 150, 10).unwrap(),
        )
    };
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three_threads = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    assert_eq!(one_thread.install(run), three_threads.install(run));
}

#[test]
fn tsne_handles_tiny_and_duplicate_inputs() {
    assert_eq!(
        tsne_2d(&[1.0, 2.0], 1, 2, 30.0, 100, 0).unwrap(),
        vec![(0.0, 0.0)]
    );
    let same = tsne_2d(&[0.5; 40], 10, 4, 30.0, 100, 0).unwrap();
    assert!(same.iter().all(|p| p.0.is_finite() && p.1.is_finite()));
    let two = tsne_2d(&[0.0, 0.0, 1.0, 1.0], 2, 2, 30.0, 100, 0).unwrap();
    assert!(two.iter().all(|p| p.0.is_finite() && p.1.is_finite()));
}
