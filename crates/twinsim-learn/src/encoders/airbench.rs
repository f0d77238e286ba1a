//! `airbench` and `airbench-half`: the network of airbench94 (Keller
//! Jordan's CIFAR-10 speed record: 94% accuracy in about 3 s on one A100)
//! as the body of a similarity model, for 32×32 colour images and usable at
//! any size ≥ 28×28 and any channel count.
//!
//! Layout: a 2×2 patch-whitening convolution (C → 8C channels, no padding)
//! and GELU; three groups of conv 3×3, 2×2 max-pool, BN, GELU, conv 3×3,
//! BN, GELU, with w1, w2, w3 channels (32 → 31 → 15 → 7 → 3); global max
//! pooling to (B, w3); the linear head.
//!
//! What makes it learn fast, kept from airbench:
//! - the whitening layer's weights are not trained but set from the
//!   training images before the first step ([`Encoder::fit_to_data`]): the
//!   eigenvectors of the 2×2 patches' covariance, each scaled by its
//!   eigenvalue's inverse square root, with and without a minus sign (so the
//!   GELU after it drops no information); only its bias trains;
//! - batch norms keep their scale at 1 and train only their shift, with
//!   momentum 0.4 (running statistics follow the short schedule); their
//!   eps is PyTorch's 1e-5, not airbench's 1e-12, with which a channel that
//!   is constant over a batch (small synthetic folders have them) gets
//!   gradients of 1e6 and plain SGD diverges at any learning rate;
//! - each convolution starts as the identity on its first C_in filters
//!   (Dirac initialisation), so the deep network starts as a shallow one.
//!
//! Cost at 3×32×32 (multiply-adds per image, convolutions): `airbench`
//! (64-256-256) ≈ 118.1 M, `airbench-half` (32-128-128) ≈ 32.9 M, against
//! the quarter-width `resnet`'s 24.0 M.

use tch::nn;
use tch::{Kind, Tensor};

use super::{channels_last, Activation, ConvBn};

/// Channels of the three groups of `airbench`.
pub(super) const FULL: [i64; 3] = [64, 256, 256];
/// Channels of the three groups of `airbench-half`: about 3.6 times less work.
pub(super) const HALF: [i64; 3] = [32, 128, 128];

/// Side of the whitened patches.
const PATCH: i64 = 2;
/// Added to every eigenvalue before its inverse square root is taken, so
/// directions of almost no variance are not blown up (airbench's value, in
/// units of the normalised pixels' variance).
const EIGEN_EPS: f64 = 5e-4;

/// The body under `vs` for `c_in` channels with group `widths`: (B, `c_in`,
/// H, W) → (B, w3); also returns w3 and the whitening layer's weight (8·c_in,
/// c_in, 2, 2), which [`fit_whitening`] sets.
pub(super) fn body(vs: &nn::Path, c_in: i64, widths: [i64; 3]) -> (nn::SequentialT, i64, Tensor) {
    let whiten_width = 2 * c_in * PATCH * PATCH;
    let cfg = nn::ConvConfig {
        bias: true,
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    let mut whiten = nn::conv2d(vs / "whiten", c_in, whiten_width, PATCH, cfg);
    let weight = channels_last(&whiten.ws);
    whiten.ws.set_data(&weight);
    let _ = whiten.ws.set_requires_grad(false);
    let fixed = whiten.ws.shallow_clone();
    let [w1, w2, w3] = widths;
    let body = nn::seq_t()
        .add(whiten)
        .add_fn(|x| x.gelu("none"))
        .add(group(&(vs / "g1"), whiten_width, w1))
        .add(group(&(vs / "g2"), w1, w2))
        .add(group(&(vs / "g3"), w2, w3))
        .add_fn(|x| x.amax([2, 3], false));
    (body, w3, fixed)
}

/// conv-pool-BN-GELU then conv-BN-GELU: (B, `c_in`, H, W) → (B, `c_out`,
/// H/2, W/2), variables `conv1`, `bn1`, `conv2`, `bn2` under `vs`.
fn group(vs: &nn::Path, c_in: i64, c_out: i64) -> nn::SequentialT {
    nn::seq_t()
        .add(conv_bn_gelu(&(vs / "1"), c_in, c_out, true))
        .add(conv_bn_gelu(&(vs / "2"), c_out, c_out, false))
}

/// A bias-free 3×3 convolution started as the identity on its first `c_in`
/// filters, an optional max-pool, a shift-only batch norm and GELU.
fn conv_bn_gelu(vs: &nn::Path, c_in: i64, c_out: i64, pool: bool) -> ConvBn {
    let cfg = nn::ConvConfig {
        padding: 1,
        bias: false,
        ..Default::default()
    };
    let conv = nn::conv2d(vs / "conv", c_in, c_out, 3, cfg);
    dirac(&conv.ws);
    let bn = nn::batch_norm2d(
        vs / "bn",
        c_out,
        nn::BatchNormConfig {
            eps: 1e-5,
            momentum: 0.4,
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        },
    );
    if let Some(scale) = &bn.ws {
        let _ = scale.set_requires_grad(false);
    }
    ConvBn::new(conv, bn, pool, Activation::Gelu)
}

/// Sets the first min(C_out, C_in) filters of a 3×3 kernel (C_out, C_in, 3,
/// 3) to pass their own input channel through unchanged.
fn dirac(w: &Tensor) {
    let (c_out, c_in, _, _) = w.size4().expect("a conv kernel is 4-d");
    let n = c_out.min(c_in);
    let identity = Tensor::zeros([n, c_in, 3, 3], (Kind::Float, w.device()));
    let eye = Tensor::eye_m(n, c_in, (Kind::Float, w.device()));
    tch::no_grad(|| {
        identity.select(2, 1).select(2, 1).copy_(&eye);
        w.narrow(0, 0, n).copy_(&identity);
    });
}

/// Sets the whitening `weight` (2·K, C, 2, 2), K = 4C, from preprocessed
/// images `x` (N, C, H, W): the K eigenvectors of the 2×2 patches'
/// (uncentred) covariance, largest first, each over √(eigenvalue +
/// [`EIGEN_EPS`]), then the same negated. Accumulated in float64, a few
/// hundred images at a time, so memory stays small.
pub(super) fn fit_whitening(weight: &Tensor, x: &Tensor) {
    let (_, c, _, _) = x.size4().expect("images are 4-d");
    let k = c * PATCH * PATCH;
    let (mut covariance, mut n) = (Tensor::zeros([k, k], (Kind::Double, x.device())), 0);
    for chunk in x.split(500, 0) {
        let patches = chunk
            .to_kind(Kind::Double)
            .unfold(2, PATCH, 1)
            .unfold(3, PATCH, 1) // (b, C, H-1, W-1, 2, 2)
            .permute([0, 2, 3, 1, 4, 5])
            .reshape([-1, k]);
        n += patches.size()[0];
        covariance += patches.tr().matmul(&patches);
    }
    let covariance = (covariance / n.max(1) as f64).to_device(tch::Device::Cpu);
    let (values, vectors) = covariance.linalg_eigh("U"); // ascending
    let values = values.flip([0]);
    let vectors = vectors.flip([1]);
    let scaled = vectors.tr() / (values + EIGEN_EPS).sqrt().unsqueeze(1); // (K, K), row i: vector i
    let filters = scaled.reshape([k, c, PATCH, PATCH]);
    let both = Tensor::cat(&[&filters, &(-&filters)], 0).to_kind(weight.kind());
    tch::no_grad(|| {
        weight.shallow_clone().copy_(&both);
    });
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::*;

    #[test]
    fn whitening_makes_patch_features_uncorrelated_with_unit_variance() {
        let _rng = crate::global_rng();
        tch::manual_seed(0);
        // Correlated channels: the second is mostly the first.
        let a = Tensor::randn([64, 1, 12, 12], (Kind::Float, Device::Cpu));
        let x = Tensor::cat(&[&a, &(&a * 0.9 + Tensor::randn_like(&a) * 0.1)], 1);
        let w = Tensor::zeros([16, 2, 2, 2], (Kind::Float, Device::Cpu));
        fit_whitening(&w, &x);
        let y = x.conv2d(&w, None::<Tensor>, [1], [0], [1], 1); // (64, 16, 11, 11)
        let k = 8;
        let flat = y
            .narrow(1, 0, k)
            .permute([0, 2, 3, 1])
            .reshape([-1, k])
            .to_kind(Kind::Double);
        let cov = flat.tr().matmul(&flat) / flat.size()[0] as f64;
        let eye = Tensor::eye(k, (Kind::Double, Device::Cpu));
        // No correlation; unit variance, less the eps's share on the
        // weakest directions (variance about 0.008 here: 0.94 of it).
        let diagonal = cov.diagonal(0, 0, 1);
        let off = (&cov - &cov * &eye).abs().max().double_value(&[]);
        assert!(off < 1e-5, "whitened patches are correlated: {off}\n{cov}");
        let (lo, hi) = (diagonal.min().double_value(&[]), diagonal.max().double_value(&[]));
        assert!(lo > 0.9 && hi < 1.0 + 1e-6, "variances {diagonal}");
        // The second half is the first negated.
        assert!(y
            .narrow(1, k, k)
            .allclose(&(-y.narrow(1, 0, k)), 1e-5, 1e-5, false));
    }

    #[test]
    fn dirac_filters_pass_their_channel_through() {
        let w = Tensor::randn([6, 4, 3, 3], (Kind::Float, Device::Cpu));
        dirac(&w);
        let x = Tensor::randn([2, 4, 5, 5], (Kind::Float, Device::Cpu));
        let y = x.conv2d(&w, None::<Tensor>, [1], [1], [1], 1);
        assert!(y.narrow(1, 0, 4).allclose(&x, 1e-6, 1e-6, false));
    }
}
