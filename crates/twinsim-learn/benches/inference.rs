//! Embedding speed on this machine's CPU: batch-1 latency and large-batch
//! throughput of each encoder, with fresh weights (speed does not depend on
//! their values) on real images: MNIST test digits for the grey encoders,
//! MNIST digits copied into three channels and padded to 32×32 for the
//! colour one.
//!
//! `cargo bench -p twinsim-learn --bench inference [-- THREADS]` prints one
//! markdown row per encoder (docs/benchmarks.md, "Inference").

use std::time::Instant;

use tch::{Device, Tensor};
use twinsim_data::{sample, ImageShape, Images, SplitName};
use twinsim_learn::encoders::EncoderSpec;
use twinsim_learn::model::{Distance, Embedding, Model, ModelCard, Preprocess, FORMAT_VERSION};
use twinsim_learn::similarity::BATCH;

/// Single images embedded for the latency figure, after as many warm-ups.
const SINGLES: usize = 300;
/// Passes over the images for the throughput figure (in batches of
/// [`BATCH`], as `twinsim embed` and `evaluate` embed).
const PASSES: usize = 5;

fn main() {
    if let Some(n) = std::env::args().nth(1).and_then(|a| a.parse().ok()) {
        tch::set_num_threads(n);
    }
    let digits = sample::load(SplitName::Test)
        .expect("the embedded MNIST sample")
        .images;
    let colour = to_colour_32(&digits);
    println!("threads: {}", tch::get_num_threads());
    println!("| encoder | input | batch-1 latency ms (median / p90) | batch-1 img/s | batch-{BATCH} img/s (median of {PASSES}) |");
    println!("|---|---|---:|---:|---:|");
    for (arch, images) in [
        ("seed", &digits),
        ("cnn", &digits),
        ("cnn-wide", &digits),
        ("resnet", &colour),
    ] {
        let model = Model::new(card(arch, images.shape()), Device::Cpu).expect("a valid card");
        let (median, p90) = latency(&model, images);
        let throughput = throughput(&model, images);
        let s = images.shape();
        println!(
            "| {arch} | {}x{}x{} | {:.3} / {:.3} | {:.0} | {:.0} |",
            s.channels,
            s.height,
            s.width,
            median * 1e3,
            p90 * 1e3,
            1.0 / median,
            throughput
        );
    }
}

/// Median and 90th percentile seconds to embed one image, uint8 in, embedding out.
fn latency(model: &Model, images: &Images) -> (f64, f64) {
    let s = images.shape();
    let one = |i: usize| {
        Tensor::from_slice(images.image(i % images.len())).view([
            1,
            s.channels as i64,
            s.height as i64,
            s.width as i64,
        ])
    };
    let _no_grad = tch::no_grad_guard();
    for i in 0..SINGLES {
        let _ = model.embed(&one(i), false);
    }
    let mut times: Vec<f64> = (0..SINGLES)
        .map(|i| {
            let start = Instant::now();
            let _ = model.embed(&one(i), false);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[SINGLES / 2], times[SINGLES * 9 / 10])
}

/// Median images per second of [`Model::embed_images`] over all `images`.
fn throughput(model: &Model, images: &Images) -> f64 {
    let _ = model.embed_images(images, BATCH);
    let mut rates: Vec<f64> = (0..PASSES)
        .map(|_| {
            let start = Instant::now();
            let _ = model.embed_images(images, BATCH);
            images.len() as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[PASSES / 2]
}

/// The digits as 3×32×32 colour images (grey copied into each channel,
/// 2 pixels of black around), the shape of CIFAR's.
fn to_colour_32(grey: &Images) -> Images {
    let mut data = Vec::with_capacity(grey.len() * 3 * 32 * 32);
    for i in 0..grey.len() {
        let digit = grey.image(i);
        let mut plane = vec![0u8; 32 * 32];
        for (row, pixels) in digit.chunks(28).enumerate() {
            plane[(row + 2) * 32 + 2..(row + 2) * 32 + 30].copy_from_slice(pixels);
        }
        for _ in 0..3 {
            data.extend_from_slice(&plane);
        }
    }
    let shape = ImageShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    Images::new(data, shape).expect("whole images")
}

/// A model card for `arch` on images of `shape`, embedding dimension 128.
fn card(arch: &str, shape: ImageShape) -> ModelCard {
    let c = shape.channels as i64;
    ModelCard {
        format_version: FORMAT_VERSION,
        encoder: EncoderSpec {
            arch: arch.into(),
            in_channels: c,
            height: shape.height as i64,
            width: shape.width as i64,
            embedding_dim: 128,
        },
        preprocess: Preprocess {
            channels: c,
            height: shape.height as i64,
            width: shape.width as i64,
            mean: vec![0.5; c as usize],
            std: vec![0.25; c as usize],
        },
        distance: Distance::Cosine,
        normalize: true,
        embedding: Embedding::Head,
        flip_average: false,
        classes: (0..10).map(|d| d.to_string()).collect(),
        dataset: "bench".into(),
        loss: "none".into(),
        extra: Default::default(),
    }
}
