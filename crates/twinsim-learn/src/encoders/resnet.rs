//! `resnet`: ResNet-9 in the airbench / Myrtle layout for 32×32 colour
//! images, usable at any size ≥ 28×28 and any channel count.
//!
//! Layout with base width w: conv-BN-ReLU w (stem); stage 1: conv 2w,
//! max-pool, BN-ReLU, residual pair of 2w conv-BN-ReLUs; stage 2: conv 4w,
//! max-pool, BN-ReLU; stage 3: conv 8w, max-pool, BN-ReLU, residual pair of
//! 8w conv-BN-ReLUs; global max pool; linear 8w → D.
//!
//! Cost at 3×32×32: 92,160·w² + 27,648·w + 8w·D multiply-adds (the three
//! stage convs and two residual pairs cost 4,718,592·(w/16)² each, the stem
//! the rest), so w = 16 (a quarter of ResNet-9's 64) costs ≈ 24.0 M per
//! image against ResNet-9's 380 M: 16 times less work on a CPU for a few
//! points of accuracy. 411,664 + 129·D trainable parameters.

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::{conv_bn_relu, conv_pool};

/// Base width w: channels of the stem; the stages have 2w, 4w, 8w.
const WIDTH: i64 = 16;

/// The body under `vs`: (B, `c_in`, H, W) → (B, F), and F (8w).
pub(super) fn body(vs: &nn::Path, c_in: i64) -> (nn::SequentialT, i64) {
    let w = WIDTH;
    let body = nn::seq_t()
        .add(conv_bn_relu(&(vs / "stem"), c_in, w))
        .add(conv_pool(&(vs / "s1"), w, 2 * w))
        .add(Residual::new(&(vs / "r1"), 2 * w))
        .add(conv_pool(&(vs / "s2"), 2 * w, 4 * w))
        .add(conv_pool(&(vs / "s3"), 4 * w, 8 * w))
        .add(Residual::new(&(vs / "r3"), 8 * w))
        .add_fn(|x| x.amax([2, 3], false));
    (body, 8 * w)
}

/// x + g(f(x)) with f, g width-keeping conv-BN-ReLUs: (B, C, H, W) →
/// (B, C, H, W). The skip lets gradients reach the stem through the deep
/// stages.
#[derive(Debug)]
struct Residual {
    body: nn::SequentialT,
}

impl Residual {
    fn new(vs: &nn::Path, c: i64) -> Residual {
        Residual {
            body: nn::seq_t()
                .add(conv_bn_relu(&(vs / "a"), c, c))
                .add(conv_bn_relu(&(vs / "b"), c, c)),
        }
    }
}

impl ModuleT for Residual {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs + self.body.forward_t(xs, train)
    }
}
