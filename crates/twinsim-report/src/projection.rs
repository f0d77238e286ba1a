//! Embeddings flattened to 2-D for maps: PCA (linear, keeps the global
//! layout) and exact t-SNE (non-linear, keeps neighbourhoods).
//!
//! Both take `n` row-major vectors of `d` values and are deterministic: the
//! same input (and seed) gives bit-identical output whatever the number of
//! threads, because every parallel loop writes its own rows and all sums
//! across rows are taken in a fixed order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{ReportError, Result};

/// Most points [`tsne_2d`] accepts: exact t-SNE keeps an n × n affinity
/// matrix (100 MB at this size, twice that while it is built) and costs n²
/// per iteration; subsample beyond.
pub const MAX_TSNE_POINTS: usize = 5_000;

/// Most dimensions [`pca_2d`] accepts: it forms the d × d covariance matrix
/// (128 MB at this size) and costs n·d² to do so.
pub const MAX_PCA_DIMENSIONS: usize = 4_096;

/// Iterations of early exaggeration (and of the lower momentum), as in van
/// der Maaten (2008) and scikit-learn.
const EARLY_ITERATIONS: usize = 250;
/// How much the affinities are exaggerated early on, so that clusters form
/// before they settle.
const EXAGGERATION: f64 = 12.0;

/// Projects the `n` rows of `data` (`n × d`, row-major) on their top two
/// principal components. Each component's sign is fixed by making its
/// largest-magnitude loading positive, so reruns do not mirror the map.
pub fn pca_2d(data: &[f32], n: usize, d: usize) -> Result<Vec<(f64, f64)>> {
    check(data, n, d)?;
    if d > MAX_PCA_DIMENSIONS {
        return Err(invalid(format!(
            "{d} dimensions for PCA (at most {MAX_PCA_DIMENSIONS})"
        )));
    }
    if n == 0 || d == 0 {
        return Ok(vec![(0.0, 0.0); n]);
    }
    let mean = column_means(data, n, d);
    let axes = top_two_axes(&covariance(data, &mean, n, d), d);
    Ok(data
        .par_chunks(d)
        .map(|row| {
            let along = |axis: &[f64]| {
                row.iter()
                    .zip(&mean)
                    .zip(axis)
                    .map(|((&x, m), a)| (f64::from(x) - m) * a)
                    .sum()
            };
            (along(&axes[0]), along(&axes[1]))
        })
        .collect())
}

/// Maps the `n` rows of `data` (`n × d`, row-major) to 2-D with exact t-SNE
/// (van der Maaten & Hinton, 2008): Gaussian affinities whose widths match
/// `perplexity` (lowered to (n − 1) / 3 for small n), Student-t similarities
/// in the map, early exaggeration (×12) with momentum 0.5 for the first 250
/// iterations (the first half when fewer than 500 are asked, so every run
/// has time to settle), then momentum 0.8; adaptive gains; learning rate
/// max(n / 48, 50). The start is Gaussian with standard deviation 1e-4,
/// drawn from `seed`.
pub fn tsne_2d(
    data: &[f32],
    n: usize,
    d: usize,
    perplexity: f64,
    iterations: usize,
    seed: u64,
) -> Result<Vec<(f64, f64)>> {
    check(data, n, d)?;
    if !(perplexity.is_finite() && perplexity > 0.0) {
        return Err(invalid(format!(
            "perplexity {perplexity} (a positive number expected)"
        )));
    }
    if n > MAX_TSNE_POINTS {
        return Err(invalid(format!(
            "{n} points for exact t-SNE (at most {MAX_TSNE_POINTS}); use a sample"
        )));
    }
    if n < 2 {
        return Ok(vec![(0.0, 0.0); n]);
    }
    let p = joint_affinities(data, n, d, perplexity.min((n - 1) as f64 / 3.0).max(1.0));
    let mut map = Map::random(n, seed);
    let early = EARLY_ITERATIONS.min(iterations / 2);
    let learning_rate = (n as f64 / EXAGGERATION / 4.0).max(50.0);
    for it in 0..iterations {
        let (exaggeration, momentum) = if it < early {
            (EXAGGERATION, 0.5)
        } else {
            (1.0, 0.8)
        };
        let gradient = map.gradient(&p, exaggeration);
        map.step(&gradient, momentum, learning_rate);
    }
    Ok(map.xs.into_iter().zip(map.ys).collect())
}

fn invalid(reason: String) -> ReportError {
    ReportError::InvalidData { reason }
}

/// Checks that `data` is `n × d` finite values.
fn check(data: &[f32], n: usize, d: usize) -> Result<()> {
    if n.checked_mul(d) != Some(data.len()) {
        return Err(invalid(format!(
            "{} values do not form {n} vectors of {d}",
            data.len()
        )));
    }
    match data.iter().position(|v| !v.is_finite()) {
        Some(at) => Err(invalid(format!(
            "value {} (vector {}) is not finite",
            data[at],
            at / d
        ))),
        None => Ok(()),
    }
}

fn column_means(data: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut mean = vec![0.0; d];
    for row in data.chunks_exact(d) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    mean
}

/// The d × d covariance of the rows, summed [`BLOCK`] rows at a time: the
/// block's centred columns stay in cache while each entry of the matrix is
/// updated once per block (rather than once per row, which made the matrix's
/// memory traffic the bottleneck). Products within a block are summed in f32
/// (twice the values per vector instruction), blocks in f64. Rows of the
/// matrix are filled in parallel.
fn covariance(data: &[f32], mean: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut c = vec![0.0; d * d];
    let mut columns = vec![0.0f32; d * BLOCK];
    for block in data.chunks(BLOCK * d) {
        // Rows past the end of the last block stay zero and add nothing.
        columns.fill(0.0);
        for (r, row) in block.chunks_exact(d).enumerate() {
            for (j, (&x, m)) in row.iter().zip(mean).enumerate() {
                columns[j * BLOCK + r] = (f64::from(x) - m) as f32;
            }
        }
        c.par_chunks_mut(d).enumerate().for_each(|(i, c_row)| {
            let column_i = &columns[i * BLOCK..(i + 1) * BLOCK];
            // Upper triangle only; mirrored below.
            for (j, c) in c_row.iter_mut().enumerate().skip(i) {
                let column_j = &columns[j * BLOCK..(j + 1) * BLOCK];
                *c += lane_sum::<f32, 8>(column_i, column_j, |x, y| x * y);
            }
        });
    }
    for i in 0..d {
        for j in 0..i {
            c[i * d + j] = c[j * d + i];
        }
    }
    c.iter_mut().for_each(|c| *c /= n as f64);
    c
}

/// Rows summed together by [`covariance`]: 256 rows of 2,048 dimensions are
/// 2 MB of f32, about what a core's share of cache holds.
const BLOCK: usize = 256;

/// The two leading eigenvectors of the symmetric `d × d` matrix `c`, by
/// subspace iteration on a 2-D block followed by a Rayleigh-Ritz rotation:
/// the block converges to the top-two eigenspace even when the two leading
/// eigenvalues are close, which is all a 2-D map needs. It stops once the
/// plane turns by less than about 1e-4 radian per step, or after
/// `MAX_ITERATIONS` steps: only when the second and third variances are
/// nearly equal does that cap bind, and then every plane between them is an
/// equally faithful map.
fn top_two_axes(c: &[f64], d: usize) -> [Vec<f64>; 2] {
    const MAX_ITERATIONS: usize = 300;
    // Squared sine of the turn.
    const TOLERANCE: f64 = 1e-8;
    let mut rng = ChaCha8Rng::seed_from_u64(0x7ca);
    let mut block = orthonormal([0, 1].map(|_| (0..d).map(|_| rng.random::<f64>() - 0.5).collect()));
    for _ in 0..MAX_ITERATIONS {
        let next = orthonormal(block.clone().map(|v| mat_vec(c, &v)));
        // How far the new vectors lie outside the old plane.
        let change: f64 = next
            .iter()
            .map(|v| {
                let along = block.iter().map(|b| dot(v, b).powi(2)).sum::<f64>();
                (1.0 - along).abs()
            })
            .sum();
        block = next;
        if change < TOLERANCE {
            break;
        }
    }
    let [u, v] = rayleigh_ritz(c, block);
    [fix_sign(u), fix_sign(v)]
}

/// Rotates the orthonormal pair `[u, v]` within its plane onto the
/// eigenvectors of `c` restricted to it, larger eigenvalue first.
fn rayleigh_ritz(c: &[f64], [u, v]: [Vec<f64>; 2]) -> [Vec<f64>; 2] {
    let (cu, cv) = (mat_vec(c, &u), mat_vec(c, &v));
    let (a, b, d) = (dot(&u, &cu), dot(&u, &cv), dot(&v, &cv));
    // Angle of the leading eigenvector of [[a, b], [b, d]].
    let theta = 0.5 * (2.0 * b).atan2(a - d);
    let (cos, sin) = (theta.cos(), theta.sin());
    let first = u.iter().zip(&v).map(|(x, y)| cos * x + sin * y).collect();
    let second = u.iter().zip(&v).map(|(x, y)| -sin * x + cos * y).collect();
    [first, second]
}

/// Gram-Schmidt; a vector with nothing left after orthogonalisation (rank
/// below two: d = 1, identical points) becomes zero, which projects every
/// point to 0 on that axis.
fn orthonormal([u, v]: [Vec<f64>; 2]) -> [Vec<f64>; 2] {
    let u = normalised(u);
    let along = dot(&u, &v);
    let v = normalised(v.iter().zip(&u).map(|(v, u)| v - along * u).collect());
    [u, v]
}

fn normalised(v: Vec<f64>) -> Vec<f64> {
    let norm = dot(&v, &v).sqrt();
    if norm > 1e-300 {
        v.into_iter().map(|x| x / norm).collect()
    } else {
        vec![0.0; v.len()]
    }
}

/// Makes the largest-magnitude entry of `v` positive.
fn fix_sign(v: Vec<f64>) -> Vec<f64> {
    let largest = v
        .iter()
        .copied()
        .fold(0.0, |best: f64, x| if x.abs() > best.abs() { x } else { best });
    if largest < 0.0 {
        v.into_iter().map(|x| -x).collect()
    } else {
        v
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    lane_sum::<f64, 4>(a, b, |x, y| x * y)
}

/// `Σ term(a[k], b[k])` over the common length of `a` and `b`, accumulated in
/// `L` independent lanes so that the compiler vectorises it (a single running
/// sum must be added in order, which forbids vector instructions).
fn lane_sum<T, const L: usize>(a: &[T], b: &[T], term: impl Fn(T, T) -> T) -> f64
where
    T: Copy + Default + std::ops::Add<Output = T> + Into<f64>,
{
    let mut lanes = [T::default(); L];
    let (chunks_a, chunks_b) = (a.chunks_exact(L), b.chunks_exact(L));
    let tail = chunks_a.remainder().iter().zip(chunks_b.remainder());
    let tail: f64 = tail.map(|(&x, &y)| term(x, y).into()).sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        // Always whole chunks; as arrays, the compiler sees their length.
        if let (Some(x), Some(y)) = (x.first_chunk::<L>(), y.first_chunk::<L>()) {
            for k in 0..L {
                lanes[k] = lanes[k] + term(x[k], y[k]);
            }
        }
    }
    lanes.iter().map(|&lane| lane.into()).sum::<f64>() + tail
}

fn mat_vec(m: &[f64], v: &[f64]) -> Vec<f64> {
    m.par_chunks(v.len()).map(|row| dot(row, v)).collect()
}

/// The symmetric joint affinities P (n × n, row-major, summing to 1) of
/// t-SNE: per point, a Gaussian over the others whose width gives the
/// wanted perplexity; then P = (P_j|i + P_i|j) / 2n. Computed in f64, kept
/// in f32: half the memory traffic of every iteration, ample precision.
fn joint_affinities(data: &[f32], n: usize, d: usize, perplexity: f64) -> Vec<f32> {
    let mut p = vec![0.0; n * n];
    p.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let point = &data[i * d..(i + 1) * d];
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = squared_distance(point, &data[j * d..(j + 1) * d]);
        }
        conditional_affinities(row, i, perplexity.ln());
    });
    let mut joint = vec![0.0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let pij = ((p[i * n + j] + p[j * n + i]) / (2.0 * n as f64)).max(1e-12) as f32;
            joint[i * n + j] = pij;
            joint[j * n + i] = pij;
        }
    }
    joint
}

/// Squared Euclidean distance.
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    lane_sum::<f32, 8>(a, b, |x, y| (x - y) * (x - y))
}

/// Replaces `row` (squared distances from point `i`) by the conditional
/// probabilities P_j|i whose entropy is `target` (natural log of the
/// perplexity), found by bisection on the Gaussian's precision.
fn conditional_affinities(row: &mut [f64], i: usize, target: f64) {
    const TRIES: usize = 100;
    const TOLERANCE: f64 = 1e-5;
    // Distances relative to the nearest other point: the same probabilities,
    // but the nearest gets weight 1, so far-apart data cannot underflow.
    let nearest = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, &v)| v)
        .fold(f64::INFINITY, f64::min);
    row.iter_mut().for_each(|v| *v -= nearest);
    row[i] = f64::INFINITY;
    let mean = row.iter().filter(|v| v.is_finite()).sum::<f64>() / (row.len() - 1) as f64;
    let (mut beta, mut low, mut high) = (if mean > 0.0 { 1.0 / mean } else { 1.0 }, 0.0, f64::INFINITY);
    for _ in 0..TRIES {
        let (sum, weighted) = row
            .iter()
            .map(|&dist| (-beta * dist).exp())
            .zip(row.iter())
            .fold((0.0, 0.0), |(s, w), (p, &dist)| {
                (s + p, if p > 0.0 { w + p * dist } else { w })
            });
        let entropy = sum.ln() + beta * weighted / sum;
        if (entropy - target).abs() < TOLERANCE {
            break;
        }
        if entropy > target {
            low = beta;
            beta = if high.is_finite() {
                (beta + high) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            high = beta;
            beta = (beta + low) / 2.0;
        }
    }
    let weights: Vec<f64> = row.iter().map(|&dist| (-beta * dist).exp()).collect();
    let sum: f64 = weights.iter().sum();
    row.iter_mut().zip(weights).for_each(|(v, w)| *v = w / sum);
}

/// The 2-D map being optimised, with the optimiser's state.
struct Map {
    xs: Vec<f64>,
    ys: Vec<f64>,
    /// Previous update of each coordinate (x of every point, then y).
    velocity: Vec<f64>,
    gains: Vec<f64>,
}

impl Map {
    fn random(n: usize, seed: u64) -> Map {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut normal = || {
            // Box-Muller: rand alone has no normal distribution.
            let (u, v): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let xs = (0..n).map(|_| 1e-4 * normal()).collect();
        let ys = (0..n).map(|_| 1e-4 * normal()).collect();
        Map {
            xs,
            ys,
            velocity: vec![0.0; 2 * n],
            gains: vec![1.0; 2 * n],
        }
    }

    /// The KL divergence's gradient (x of every point, then y):
    /// 4 Σ_j (e·P_ij − q_ij) w_ij (y_i − y_j) with w_ij = 1 / (1 + |y_i − y_j|²)
    /// and q_ij = w_ij / Z. It is split as 4 (e·A_i − R_i / Z), with
    /// A_i = Σ P_ij w_ij Δ and R_i = Σ w_ij² Δ, so that one pass over the
    /// pairs gives A, R and Z together. The pass runs in f32 (twice the
    /// values per vector instruction); the sums of rows are taken in f64.
    fn gradient(&self, p: &[f32], exaggeration: f64) -> Vec<f64> {
        let n = self.xs.len();
        let xs: Vec<f32> = self.xs.iter().map(|&x| x as f32).collect();
        let ys: Vec<f32> = self.ys.iter().map(|&y| y as f32).collect();
        let sums: Vec<RowSums> = (0..n)
            .into_par_iter()
            .map(|i| row_sums(i, &xs, &ys, &p[i * n..(i + 1) * n]))
            .collect();
        let z: f64 = sums.iter().map(|s| s.w).sum();
        let force = |attraction: f64, repulsion: f64| 4.0 * (exaggeration * attraction - repulsion / z);
        let gx = sums.iter().map(|s| force(s.ax, s.rx));
        let gy = sums.iter().map(|s| force(s.ay, s.ry));
        gx.chain(gy).collect()
    }

    /// One gradient-descent step with momentum and per-coordinate gains
    /// (a gain grows while the gradient keeps its direction), then
    /// recentring, since t-SNE is blind to translation.
    fn step(&mut self, gradient: &[f64], momentum: f64, learning_rate: f64) {
        let n = self.xs.len();
        let coordinates = self.xs.iter_mut().chain(self.ys.iter_mut());
        for (((y, &g), v), gain) in coordinates
            .zip(gradient)
            .zip(&mut self.velocity)
            .zip(&mut self.gains)
        {
            *gain = if (g > 0.0) != (*v > 0.0) {
                *gain + 0.2
            } else {
                (*gain * 0.8).max(0.01)
            };
            *v = momentum * *v - learning_rate * *gain * g;
            *y += *v;
        }
        for axis in [&mut self.xs, &mut self.ys] {
            let mean = axis.iter().sum::<f64>() / n as f64;
            axis.iter_mut().for_each(|c| *c -= mean);
        }
    }
}

/// Point i's sums over all j, [`LANES`] points at a time so the loop
/// vectorises. The self-pair (j = i) and the padding of the last chunk
/// (copies of point i with P = 0) add 1 each to w and nothing else, so they
/// are taken off afterwards rather than branched on.
fn row_sums(i: usize, xs: &[f32], ys: &[f32], p_row: &[f32]) -> RowSums {
    let (xi, yi) = (xs[i], ys[i]);
    let mut lanes = Lanes::default();
    let (x_chunks, y_chunks, p_chunks) = (
        xs.chunks_exact(LANES),
        ys.chunks_exact(LANES),
        p_row.chunks_exact(LANES),
    );
    let tail = x_chunks.remainder().len();
    let (mut x_tail, mut y_tail, mut p_tail) = ([xi; LANES], [yi; LANES], [0.0; LANES]);
    x_tail[..tail].copy_from_slice(x_chunks.remainder());
    y_tail[..tail].copy_from_slice(y_chunks.remainder());
    p_tail[..tail].copy_from_slice(p_chunks.remainder());
    for ((x, y), p) in x_chunks.zip(y_chunks).zip(p_chunks) {
        // Always whole chunks; as arrays, the compiler sees their length.
        if let (Some(x), Some(y), Some(p)) = (x.first_chunk(), y.first_chunk(), p.first_chunk()) {
            lanes.add((xi, yi), x, y, p);
        }
    }
    lanes.add((xi, yi), &x_tail, &y_tail, &p_tail);
    let mut sums = lanes.total();
    sums.w -= (1 + LANES - tail) as f64;
    sums
}

/// Points handled together by [`row_sums`]: eight f32 fill two SSE or one
/// AVX register.
const LANES: usize = 8;

/// [`RowSums`] split over [`LANES`] independent f32 accumulators (each sums
/// n / 8 terms, well within f32's precision for the n allowed).
#[derive(Default)]
struct Lanes {
    w: [f32; LANES],
    ax: [f32; LANES],
    ay: [f32; LANES],
    rx: [f32; LANES],
    ry: [f32; LANES],
}

impl Lanes {
    /// Adds the terms of the points at (`x[k]`, `y[k]`), with affinities
    /// `p[k]`, to point (`xi`, `yi`).
    #[inline]
    fn add(&mut self, (xi, yi): (f32, f32), x: &[f32; LANES], y: &[f32; LANES], p: &[f32; LANES]) {
        for k in 0..LANES {
            let (dx, dy) = (xi - x[k], yi - y[k]);
            let w = 1.0 / (1.0 + dx * dx + dy * dy);
            let (pw, ww) = (p[k] * w, w * w);
            self.w[k] += w;
            self.ax[k] += pw * dx;
            self.ay[k] += pw * dy;
            self.rx[k] += ww * dx;
            self.ry[k] += ww * dy;
        }
    }

    fn total(&self) -> RowSums {
        let sum = |lanes: &[f32; LANES]| lanes.iter().map(|&v| f64::from(v)).sum();
        RowSums {
            w: sum(&self.w),
            ax: sum(&self.ax),
            ay: sum(&self.ay),
            rx: sum(&self.rx),
            ry: sum(&self.ry),
        }
    }
}

/// Sums over the other points of one point: Z's share (w) and the
/// attraction (a) and repulsion (r) terms of the gradient.
#[derive(Clone, Copy)]
struct RowSums {
    w: f64,
    ax: f64,
    ay: f64,
    rx: f64,
    ry: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinities_match_the_perplexity() {
        let mut row: Vec<f64> = (0..40)
            .map(|j| (j as f64 * 0.37).sin().abs() * 5.0 + 0.1)
            .collect();
        row[3] = 0.0;
        conditional_affinities(&mut row, 3, 10f64.ln());
        assert_eq!(row[3], 0.0);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let entropy: f64 = row.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.ln()).sum();
        assert!((entropy.exp() - 10.0).abs() < 0.01, "{}", entropy.exp());
    }

    #[test]
    fn rejects_bad_shapes_and_values() {
        assert!(pca_2d(&[1.0, 2.0, 3.0], 2, 2).is_err());
        assert!(pca_2d(&[1.0, f32::NAN], 1, 2).is_err());
        assert!(tsne_2d(&[1.0, 2.0], 2, 1, 0.0, 10, 0).is_err());
        assert!(tsne_2d(&[], 0, 3, 30.0, 10, 0).unwrap().is_empty());
        let wide = MAX_PCA_DIMENSIONS + 1;
        assert!(pca_2d(&vec![0.0; wide], 1, wide).is_err());
        let many = MAX_TSNE_POINTS + 1;
        assert!(tsne_2d(&vec![0.0; many], many, 1, 30.0, 10, 0).is_err());
    }

    #[test]
    fn gains_grow_while_the_gradient_keeps_its_direction() {
        let mut map = Map::random(2, 1);
        map.step(&[1.0; 4], 0.5, 1.0);
        map.step(&[1.0; 4], 0.5, 1.0);
        assert!(
            map.gains.iter().all(|&g| (g - 1.4).abs() < 1e-12),
            "{:?}",
            map.gains
        );
        map.step(&[-1.0; 4], 0.5, 1.0);
        assert!(
            map.gains.iter().all(|&g| (g - 1.12).abs() < 1e-12),
            "{:?}",
            map.gains
        );
    }
}
