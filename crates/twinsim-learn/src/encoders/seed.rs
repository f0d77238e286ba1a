//! The seed's Siamese network, layer for layer, kept as the baseline every
//! other encoder is compared with.
//!
//! It has no activation function anywhere (the seed writes none), so in eval
//! mode it is an affine map of its input; that is the seed's network, not a
//! bug to fix here. Variables are named as PyTorch names the seed's
//! `state_dict` (`c1.weight`, `bn1.running_mean`, …), and initialised as
//! PyTorch initialises them.
//!
//! Cost at 1×28×28: 28·28·32·9 + 14·14·64·288 + 5·5·128·576 + 128·64 + 64·2
//! ≈ 5.69 M multiply-adds per image; 101,634 trainable parameters (and 576
//! batch-norm running statistics) for a 2-d embedding.

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::{bn_config, global_avg_pool, Activation, ConvBn, Encoder};

/// The seed's `Siamese` module up to `fc5`: (B, C, H, W) → (B, 64).
#[derive(Debug)]
struct Body {
    c1: ConvBn,
    c2: ConvBn,
    c3: ConvBn,
    fc4: nn::Linear,
    bn4: nn::BatchNorm,
}

/// The seed's network under `vs` for `c_in` input channels and a
/// `d`-dimensional embedding (the seed: 1 and 2): the body up to `bn4`
/// (F = 64), and `fc5` as the head.
pub(super) fn build(vs: &nn::Path, c_in: i64, d: i64) -> Encoder {
    let body = Body {
        c1: conv_bn(vs, 1, c_in, 32, 1),
        c2: conv_bn(vs, 2, 32, 64, 1),
        c3: conv_bn(vs, 3, 64, 128, 0),
        fc4: nn::linear(vs / "fc4", 128, 64, torch_linear()),
        bn4: nn::batch_norm1d(vs / "bn4", 64, bn_config()),
    };
    Encoder {
        body: nn::seq_t().add(body),
        head: nn::linear(vs / "fc5", 64, d, torch_linear()),
        features: 64,
        patch_whitening: None,
    }
}

impl ModuleT for Body {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = self.c1.forward_t(xs, train).max_pool2d_default(2);
        let h = self.c2.forward_t(&h, train).max_pool2d_default(2);
        // At 28×28 the map is 5×5 here and this is the seed's avg_pool2d(5);
        // larger images give larger maps, which the seed's fixed pool would
        // not reduce to the 128 features fc4 expects.
        let h = global_avg_pool(&self.c3.forward_t(&h, train));
        self.bn4.forward_t(&self.fc4.forward(&h), train)
    }
}

/// Layer `i` of the seed: conv `c{i}` (3×3, with bias) then batch norm
/// `bn{i}`, no activation.
fn conv_bn(vs: &nn::Path, i: usize, c_in: i64, c_out: i64, padding: i64) -> ConvBn {
    let bound = torch_bound(c_in * 9);
    let cfg = nn::ConvConfig {
        padding,
        ws_init: torch_weight_init(),
        bs_init: nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
        ..Default::default()
    };
    ConvBn::new(
        nn::conv2d(vs / format!("c{i}"), c_in, c_out, 3, cfg),
        nn::batch_norm2d(vs / format!("bn{i}"), c_out, bn_config()),
        false,
        Activation::Identity,
    )
}

/// PyTorch's `nn.Linear` initialisation (tch's default bias already
/// matches it).
fn torch_linear() -> nn::LinearConfig {
    nn::LinearConfig {
        ws_init: torch_weight_init(),
        ..Default::default()
    }
}

/// PyTorch's default weight init, kaiming_uniform(a = √5): U(±1/√fan_in),
/// i.e. a Kaiming gain of 1/√3.
fn torch_weight_init() -> nn::Init {
    nn::Init::Kaiming {
        dist: nn::init::NormalOrUniform::Uniform,
        fan: nn::init::FanInOut::FanIn,
        non_linearity: nn::init::NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
    }
}

/// PyTorch's default bias bound, 1/√fan_in.
fn torch_bound(fan_in: i64) -> f64 {
    1.0 / (fan_in as f64).sqrt()
}
