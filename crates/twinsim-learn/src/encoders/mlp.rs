//! The Keras Siamese example's base network (`mnist_siamese.py`): the image
//! flattened, then two 128-wide ReLU layers, without its dropout. It has no
//! batch norm, so a step on several data-parallel ranks is exactly the step
//! one process takes on the whole batch (see [`crate::distributed`]).
//!
//! Cost at 1×28×28: 784·128 + 128·128 ≈ 0.12 M multiply-adds per image.

use tch::nn;

use crate::error::{LearnError, Result};

/// Width of both hidden layers, as in the Keras example.
const WIDTH: i64 = 128;

/// The most input values (C·H·W) the first layer takes: 512 MB of weights,
/// so a garbled model card cannot ask for more memory than exists.
const MAX_INPUTS: i64 = 1 << 20;

/// The body under `vs` for (B, `c_in`, `h`, `w`) images: (B, c·h·w) → (B, 128),
/// returned with its width.
pub(super) fn body(vs: &nn::Path, c_in: i64, h: i64, w: i64) -> Result<(nn::SequentialT, i64)> {
    if c_in * h * w > MAX_INPUTS {
        return Err(LearnError::config(
            format!(
                "the mlp encoder takes at most {MAX_INPUTS} input values, but {c_in}x{h}x{w} images have {}",
                c_in * h * w
            ),
            "resize the images, or use a convolutional encoder (cnn, resnet, airbench)",
        ));
    }
    let body = nn::seq_t()
        .add_fn(|x| x.flatten(1, -1))
        .add(nn::linear(vs / "fc1", c_in * h * w, WIDTH, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs / "fc2", WIDTH, WIDTH, Default::default()))
        .add_fn(|x| x.relu());
    Ok((body, WIDTH))
}
