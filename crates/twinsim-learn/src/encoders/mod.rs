//! Encoders: networks mapping a preprocessed image batch (B, C, H, W) float
//! to embeddings (B, D), built by name with [`build`]. Each is a body that
//! pools the image to features (B, F) and a linear head (B, F) → (B, D).
//!
//! Every encoder takes any channel count and any image of at least
//! [`MIN_SIDE`]×[`MIN_SIDE`] pixels: global pooling, not a fixed-size
//! flatten, joins the convolutions to the head, so one architecture serves
//! MNIST, CIFAR and image folders alike.

mod airbench;
mod cnn;
mod mlp;
mod resnet;
mod seed;

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use crate::{LearnError, Result};

/// What to build: an architecture from [`ENCODERS`] and the shapes it must
/// accept (B, `in_channels`, `height`, `width`) and produce
/// (B, `embedding_dim`). Saved in the model card, so a model can be rebuilt
/// before its weights are loaded.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct EncoderSpec {
    pub arch: String,
    pub in_channels: i64,
    pub height: i64,
    pub width: i64,
    pub embedding_dim: i64,
}

/// The architectures [`build`] knows: name and one-line description (for
/// `--help` and error hints).
pub const ENCODERS: &[(&str, &str)] = &[
    (
        "seed",
        "the seed's Siamese network as written: 3 conv-BN layers, 2 linear layers, no activations (baseline)",
    ),
    (
        "mlp",
        "the Keras Siamese example's network: 2 dense ReLU layers of 128, no batch norm (baseline)",
    ),
    (
        "cnn",
        "small 4-stage conv-BN-ReLU CNN for 28x28 grey images, ~2.6 M multiply-adds per image; fast on CPU",
    ),
    (
        "cnn-wide",
        "the cnn at twice the width (32-64-128-256 channels), ~10 M multiply-adds per image",
    ),
    (
        "resnet",
        "ResNet-9 (Myrtle / airbench layout) at quarter width for 32x32 colour images, ~24 M multiply-adds per image",
    ),
    (
        "airbench",
        "airbench94's network (whitened 2x2 patches, 64-256-256 channels, GELU) for 32x32 colour images, ~118 M multiply-adds per image; fast on a GPU",
    ),
    (
        "airbench-half",
        "airbench at half width (32-128-128 channels), ~33 M multiply-adds per image",
    ),
];

/// The smallest height and width an encoder accepts: the seed's three
/// convolutions and two poolings need 28 pixels to end on a 5×5 map.
pub const MIN_SIDE: i64 = 28;

/// The most input channels and embedding dimensions [`build`] accepts:
/// images are grey or RGB (4 leaves room for alpha), and with the side limit
/// ([`twinsim_data::ImageShape::MAX_SIDE`]) these keep a garbled model card
/// from making it allocate more memory than exists (which libtorch answers
/// with an abort).
pub const MAX_CHANNELS: i64 = 4;
/// See [`MAX_CHANNELS`].
pub const MAX_EMBEDDING_DIM: i64 = 65_536;

/// A built encoder: `body` (B, C, H, W) → pooled features (B, F), then
/// `head` (B, F) → embeddings (B, D). Training shapes the head's output;
/// the features before it keep more of what tells classes the model never
/// saw apart (see [`crate::whitening`]).
#[derive(Debug)]
pub struct Encoder {
    body: nn::SequentialT,
    head: nn::Linear,
    /// F: the width of the pooled features.
    pub features: i64,
    /// The weight of a first layer set from data rather than trained (see
    /// [`Encoder::fit_to_data`]), when the architecture has one.
    patch_whitening: Option<Tensor>,
}

impl Encoder {
    /// `body` (and its width F) followed by a linear head `head` under `vs`
    /// to `d` dimensions, created after the body's variables.
    fn with_linear_head(vs: &nn::Path, (body, features): (nn::SequentialT, i64), d: i64) -> Encoder {
        let head = nn::linear(vs / "head", features, d, Default::default());
        Encoder {
            body,
            head,
            features,
            patch_whitening: None,
        }
    }

    /// Sets whatever the architecture derives from the training data rather
    /// than learns (airbench's patch whitening) from preprocessed training
    /// images `x` (N, C, H, W), a few thousand being enough; call it once,
    /// before training. A no-op for the other architectures.
    pub fn fit_to_data(&self, x: &Tensor) {
        if let Some(weight) = &self.patch_whitening {
            airbench::fit_whitening(weight, x);
        }
    }

    /// Preprocessed (B, C, H, W) → pooled features (B, F).
    pub fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.body.forward_t(xs, train)
    }
}

impl ModuleT for Encoder {
    /// Preprocessed (B, C, H, W) → embeddings (B, D).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.head.forward(&self.features_t(xs, train))
    }
}

/// Builds the network under `vs`. Its input is (B, C, H, W) float, already
/// normalised, with C, H and W as in `spec`; its output is
/// (B, `spec.embedding_dim`). Unknown architectures and unusable sizes are
/// [`LearnError::Config`] errors whose hint names the valid choices.
pub fn build(spec: &EncoderSpec, vs: &nn::Path) -> Result<Encoder> {
    check_sizes(spec)?;
    let (c, d) = (spec.in_channels, spec.embedding_dim);
    Ok(match spec.arch.as_str() {
        "seed" => seed::build(vs, c, d),
        "mlp" => Encoder::with_linear_head(vs, mlp::body(vs, c, spec.height, spec.width)?, d),
        "cnn" => Encoder::with_linear_head(vs, cnn::body(vs, c, cnn::WIDTHS), d),
        "cnn-wide" => Encoder::with_linear_head(vs, cnn::body(vs, c, cnn::WIDE), d),
        "resnet" => Encoder::with_linear_head(vs, resnet::body(vs, c), d),
        "airbench" => airbench_encoder(vs, c, d, airbench::FULL),
        "airbench-half" => airbench_encoder(vs, c, d, airbench::HALF),
        other => {
            return Err(LearnError::config(
                format!("unknown encoder architecture '{other}'"),
                format!("use one of: {}", architecture_list()),
            ))
        }
    })
}

/// An airbench body with group `widths` and a linear head to `d`.
fn airbench_encoder(vs: &nn::Path, c: i64, d: i64, widths: [i64; 3]) -> Encoder {
    let (body, features, whitening) = airbench::body(vs, c, widths);
    Encoder {
        patch_whitening: Some(whitening),
        ..Encoder::with_linear_head(vs, (body, features), d)
    }
}

/// "seed (…), cnn (…), …", for hints.
fn architecture_list() -> String {
    let names: Vec<String> = ENCODERS.iter().map(|(n, d)| format!("{n} ({d})")).collect();
    names.join("; ")
}

/// Refuses sizes no encoder can use, before any variable is created.
fn check_sizes(spec: &EncoderSpec) -> Result<()> {
    if !(1..=MAX_CHANNELS).contains(&spec.in_channels) {
        return Err(LearnError::config(
            format!("encoder input has {} channels", spec.in_channels),
            format!("images need 1 to {MAX_CHANNELS} channels (1 for grey, 3 for colour)"),
        ));
    }
    let max_side = twinsim_data::ImageShape::MAX_SIDE as i64;
    if spec.height > max_side || spec.width > max_side {
        return Err(LearnError::config(
            format!(
                "images of {}x{} pixels are too large for an encoder",
                spec.height, spec.width
            ),
            format!("encoders take images of at most {max_side}x{max_side} pixels; resize the images"),
        ));
    }
    if spec.height < MIN_SIDE || spec.width < MIN_SIDE {
        return Err(LearnError::config(
            format!(
                "images of {}x{} pixels are too small for an encoder",
                spec.height, spec.width
            ),
            format!(
                "every encoder ({}) needs at least {MIN_SIDE}x{MIN_SIDE} pixels; resize the images",
                crate::registry::names(ENCODERS)
            ),
        ));
    }
    if !(1..=MAX_EMBEDDING_DIM).contains(&spec.embedding_dim) {
        return Err(LearnError::config(
            format!("embedding dimension {}", spec.embedding_dim),
            format!(
                "use an embedding dimension from 1 to {MAX_EMBEDDING_DIM} (2 as in the seed, 64 or 128 otherwise)"
            ),
        ));
    }
    Ok(())
}

/// The nonlinearity after a [`ConvBn`]'s batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activation {
    /// None (the seed's network has none).
    Identity,
    Relu,
    /// GELU (tanh-free, as PyTorch's default), which airbench uses.
    Gelu,
}

/// A convolution, an optional 2×2 max-pool, batch normalisation and an
/// activation: (B, C_in, H, W) → (B, C_out, H', W'). The building block
/// of every encoder.
///
/// Pooling straight after the convolution (as airbench does) lets batch
/// norm and ReLU work on a quarter of the values (docs/benchmarks.md, "What
/// each change bought").
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    pool: bool,
    act: Activation,
}

impl ConvBn {
    /// Stores the convolution's weights channels-last (see [`channels_last`]).
    fn new(mut conv: nn::Conv2D, bn: nn::BatchNorm, pool: bool, act: Activation) -> ConvBn {
        let weights = channels_last(&conv.ws);
        conv.ws.set_data(&weights);
        ConvBn { conv, bn, pool, act }
    }
}

impl ModuleT for ConvBn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.apply(&self.conv);
        if self.pool {
            h = h.max_pool2d_default(2);
        }
        h = self.bn.forward_t(&h, train);
        match self.act {
            Activation::Identity => h,
            Activation::Relu => h.relu(),
            Activation::Gelu => h.gelu("none"),
        }
    }
}

/// The same values as `x` (B, C, H, W), laid out channels-last in memory
/// (NHWC strides). libtorch's CPU (oneDNN) and GPU convolutions, pooling and
/// batch norm run faster on that layout, and keep it from layer to layer
/// once input and weights have it (docs/benchmarks.md, "What each change
/// bought").
///
/// The strides are set explicitly: with one channel (grey images, the first
/// convolution's weights) permuting back would leave a channel stride of
/// H·W, which libtorch reads as NCHW, and the first layer, on the largest
/// maps, would run its max-pool on the slower NCHW kernel.
pub(crate) fn channels_last(x: &Tensor) -> Tensor {
    let nhwc = x.permute([0, 2, 3, 1]).contiguous();
    let (n, h, w, c) = nhwc.size4().expect("a 4-d tensor");
    nhwc.as_strided([n, c, h, w], [h * w * c, 1, w * c, c], 0)
}

/// Batch norm as PyTorch initialises it (weight 1, bias 0; eps 1e-5,
/// momentum 0.1): tch's default draws weights from U(0, 1), which would
/// shrink every layer's output at the start of training.
fn bn_config() -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        ..Default::default()
    }
}

/// A 3×3 convolution (padding 1, so H and W are kept) without bias, which
/// the batch norm after it would cancel, batch norm and ReLU:
/// (B, C_in, H, W) → (B, C_out, H, W).
fn conv_bn_relu(vs: &nn::Path, c_in: i64, c_out: i64) -> ConvBn {
    conv_bn_block(vs, c_in, c_out, false)
}

/// [`conv_bn_relu`] with a 2×2 max-pool after the convolution: (B, C_in, H,
/// W) → (B, C_out, H/2, W/2), one downsampling stage.
fn conv_pool(vs: &nn::Path, c_in: i64, c_out: i64) -> ConvBn {
    conv_bn_block(vs, c_in, c_out, true)
}

/// A bias-free 3×3 convolution (padding 1), an optional 2×2 max-pool, batch
/// norm and ReLU, with variables `conv.weight` and `bn.*` under `vs`.
fn conv_bn_block(vs: &nn::Path, c_in: i64, c_out: i64, pool: bool) -> ConvBn {
    let cfg = nn::ConvConfig {
        padding: 1,
        bias: false,
        ..Default::default()
    };
    ConvBn::new(
        nn::conv2d(vs / "conv", c_in, c_out, 3, cfg),
        nn::batch_norm2d(vs / "bn", c_out, bn_config()),
        pool,
        Activation::Relu,
    )
}

/// (B, C, H, W) → (B, C): the mean over each feature map, whatever its size.
fn global_avg_pool(xs: &Tensor) -> Tensor {
    xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::channels_last;

    #[test]
    fn one_channel_is_channels_last_too_and_so_is_the_first_convolution() {
        let _rng = crate::global_rng();
        let x = Tensor::rand([2, 1, 5, 5], (Kind::Float, Device::Cpu));
        let x_cl = channels_last(&x);
        assert_eq!(x_cl.stride(), [25, 1, 5, 1]);
        assert!(x_cl.equal(&x));
        let w = channels_last(&Tensor::rand([4, 1, 3, 3], (Kind::Float, Device::Cpu)));
        let y = x_cl.conv2d(&w, None::<Tensor>, [1], [1], [1], 1);
        // NHWC strides: the channel stride is 1.
        assert_eq!(y.stride(), [100, 1, 20, 4]);
        assert_eq!(channels_last(&y).stride(), y.stride());
    }
}
