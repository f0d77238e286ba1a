//! Encoders: the seed's network exactly as written, every encoder at every
//! supported size, errors that name the valid choices, and gradients that
//! reach every weight.

use std::collections::BTreeMap;
use std::time::Instant;

use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use twinsim_learn::encoders::{build, Encoder, EncoderSpec, ENCODERS};
use twinsim_learn::LearnError;

fn spec(arch: &str, c: i64, h: i64, w: i64, d: i64) -> EncoderSpec {
    EncoderSpec {
        arch: arch.into(),
        in_channels: c,
        height: h,
        width: w,
        embedding_dim: d,
    }
}

fn built(s: &EncoderSpec) -> (nn::VarStore, Encoder) {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build(s, &vs.root()).unwrap();
    (vs, net)
}

fn names() -> Vec<&'static str> {
    ENCODERS.iter().map(|(n, _)| *n).collect()
}

fn trainable_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

#[test]
fn seed_has_exactly_the_seeds_layers() {
    let (vs, net) = built(&spec("seed", 1, 28, 28, 2));
    let shapes: BTreeMap<String, Vec<i64>> = vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
    let mut expected = BTreeMap::new();
    let mut add = |name: &str, shape: &[i64]| expected.insert(name.to_string(), shape.to_vec());
    for (conv, bn, c_in, c_out) in [
        ("c1", "bn1", 1, 32),
        ("c2", "bn2", 32, 64),
        ("c3", "bn3", 64, 128),
    ] {
        add(&format!("{conv}.weight"), &[c_out, c_in, 3, 3]);
        add(&format!("{conv}.bias"), &[c_out]);
        for v in ["weight", "bias", "running_mean", "running_var"] {
            add(&format!("{bn}.{v}"), &[c_out]);
        }
    }
    add("fc4.weight", &[64, 128]);
    add("fc4.bias", &[64]);
    for v in ["weight", "bias", "running_mean", "running_var"] {
        add(&format!("bn4.{v}"), &[64]);
    }
    add("fc5.weight", &[2, 64]);
    add("fc5.bias", &[2]);
    assert_eq!(shapes, expected);
    // 320 + 64 + 18,496 + 128 + 73,856 + 256 + 8,256 + 128 + 130 (PyTorch's count).
    assert_eq!(trainable_count(&vs), 101_634);
    // PyTorch initialises batch norm to the identity, not tch's U(0, 1).
    assert_eq!(vs.variables()["bn1.weight"].min().double_value(&[]), 1.0);
    let x = Tensor::randn([5, 1, 28, 28], (Kind::Float, Device::Cpu));
    let out = net.forward_t(&x, true);
    assert_eq!(out.size(), vec![5, 2]);
    // One training step moved bn1's running mean from 0 by momentum 0.1
    // times the batch mean of c1's output.
    let v = vs.variables();
    let c1 = x.conv2d(&v["c1.weight"], Some(&v["c1.bias"]), [1, 1], [1, 1], [1, 1], 1);
    let expected = c1.mean_dim(&[0i64, 2, 3][..], false, Kind::Float) * 0.1;
    assert!(v["bn1.running_mean"].allclose(&expected, 1e-5, 1e-6, false));
}

/// How much the outputs still vary over a batch of different inputs (the
/// smallest standard deviation of an output coordinate), in eval mode, once
/// every bias (convolution, linear, batch norm) is −100. An activation
/// function after any biased layer (ReLU, GELU, sigmoid, tanh…) then only
/// sees large negative values and squashes them to a constant, so the
/// outputs stop depending on the input; affine layers and max-pooling (which
/// commutes with adding a constant) pass the input's variations through.
/// (A plain affinity check f(x1) + f(x2) − f(x0) = f(x1 + x2 − x0) would
/// fail on the seed too: its max-pools are not affine.)
fn spread_with_negative_biases(arch: &str) -> f64 {
    let (mut vs, net) = built(&spec(arch, 1, 28, 28, 2));
    vs.double();
    tch::no_grad(|| {
        for (_, mut bias) in vs.variables().into_iter().filter(|(n, _)| n.ends_with(".bias")) {
            let _ = bias.fill_(-100.0);
        }
    });
    let x = Tensor::randn([8, 1, 28, 28], (Kind::Double, Device::Cpu));
    let out = net.forward_t(&x, false);
    out.std_dim(&[0i64][..], true, false).min().double_value(&[])
}

#[test]
fn seed_has_no_activation_function_but_cnn_does() {
    let seed = spread_with_negative_biases("seed");
    assert!(
        seed > 1e-3,
        "seed's outputs no longer depend on its input: spread {seed}"
    );
    // The same check has the power to see a ReLU.
    let cnn = spread_with_negative_biases("cnn");
    assert!(cnn < 1e-9, "cnn's ReLUs did not show: spread {cnn}");
}

#[test]
fn every_encoder_takes_any_channels_and_sizes() {
    for arch in names() {
        for c in [1, 3] {
            for (h, w) in [(28, 28), (32, 32), (64, 48)] {
                let (_vs, net) = built(&spec(arch, c, h, w, 16));
                let x = Tensor::randn([2, c, h, w], (Kind::Float, Device::Cpu));
                for train in [true, false] {
                    let out = net.forward_t(&x, train);
                    assert_eq!(out.size(), vec![2, 16], "{arch} {c}x{h}x{w} train={train}");
                }
            }
        }
    }
}

fn config_hint(s: &EncoderSpec) -> (String, String) {
    let vs = nn::VarStore::new(Device::Cpu);
    match build(s, &vs.root()) {
        Err(e @ LearnError::Config { .. }) => (e.to_string(), e.hint().unwrap()),
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("{s:?} was accepted"),
    }
}

#[test]
fn bad_specs_are_config_errors_naming_the_valid_choices() {
    for arch in names() {
        let (msg, hint) = config_hint(&spec(arch, 1, 20, 20, 2));
        assert!(msg.contains("20x20"), "{msg}");
        assert!(hint.contains("28x28"), "{hint}");
        for name in names() {
            assert!(hint.contains(name), "{hint}");
        }
        let (msg, _) = config_hint(&spec(arch, 1, 28, 27, 2));
        assert!(msg.contains("28x27"), "{msg}");
        assert!(config_hint(&spec(arch, 0, 28, 28, 2)).0.contains("0 channels"));
        assert!(config_hint(&spec(arch, 1 << 40, 28, 28, 2))
            .0
            .contains("channels"));
        assert!(config_hint(&spec(arch, 1, 28, 28, 0))
            .0
            .contains("embedding dimension 0"));
        assert!(config_hint(&spec(arch, 1, 28, 28, 1 << 40))
            .0
            .contains("embedding dimension"));
    }
    let (msg, hint) = config_hint(&spec("vgg", 1, 28, 28, 2));
    assert!(msg.contains("'vgg'"), "{msg}");
    for name in names() {
        assert!(hint.contains(name), "{hint}");
    }
}

#[test]
fn backward_reaches_every_trainable_variable() {
    for arch in names() {
        let (vs, net) = built(&spec(arch, 3, 32, 32, 8));
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        let out = net.forward_t(&x, true);
        let target = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        (out - target).square().sum(Kind::Float).backward();
        let named = vs.variables();
        let trainable = vs.trainable_variables();
        assert!(!trainable.is_empty());
        for (name, var) in named.iter().filter(|(_, v)| v.requires_grad()) {
            let g = var.grad();
            assert!(g.defined(), "{arch}: no gradient for {name}");
            assert_eq!(g.size(), var.size(), "{arch}: {name}");
            assert!(
                g.isfinite().all().int64_value(&[]) == 1,
                "{arch}: non-finite gradient for {name}"
            );
        }
        // Running statistics are buffers, not trained.
        let buffers = named.keys().filter(|n| n.contains("running_")).count();
        assert_eq!(named.len() - buffers, trainable.len(), "{arch}");
    }
}

/// Prints parameter counts and forward+backward throughput at batch 256
/// (28×28×1 for seed and cnn, 32×32×3 for resnet): the best and the worst of
/// five rounds of four steps, since other processes on the machine slow
/// some rounds down. Run with
/// `cargo test --release --test it encoders::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: prints, asserts nothing"]
fn throughput() {
    for (arch, c, side) in [("seed", 1, 28), ("cnn", 1, 28), ("resnet", 3, 32)] {
        let (vs, net) = built(&spec(arch, c, side, side, 64));
        let mut opt = nn::Sgd::default().build(&vs, 0.01).unwrap();
        let x = Tensor::randn([256, c, side, side], (Kind::Float, Device::Cpu));
        let mut step = || {
            let loss = net.forward_t(&x, true).square().mean(Kind::Float);
            opt.backward_step(&loss);
        };
        step();
        let mut rates: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                (0..4).for_each(|_| step());
                4.0 * 256.0 / start.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "{arch:>6} {c}x{side}x{side}: {} trainable parameters, {:.0} images/s forward+backward (worst round {:.0}; batch 256, {} threads)",
            trainable_count(&vs),
            rates[4],
            rates[0],
            tch::get_num_threads()
        );
    }
}
