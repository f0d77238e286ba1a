//! The FID Inception-v3, with random weights (the real ones are not
//! shipped): its layers are torchvision's, so the standard weights fit; a
//! weights file round-trips; a file of any other layout is refused naming
//! the first key that does not fit.

use std::path::Path;

use tch::{Device, Kind, Tensor};
use twinsim_learn::fid::inception::{self, Inception};
use twinsim_learn::LearnError;

/// Random (B, 3, 299, 299) uint8 images.
fn images(b: i64) -> Tensor {
    Tensor::randint(256, [b, 3, 299, 299], (Kind::Uint8, Device::Cpu))
}

/// Which variables a test file holds, under which names and shapes.
type Keep = Box<dyn Fn(&str, &[i64]) -> Option<(String, Vec<i64>)>>;

/// Random values for variable `name` that keep 94 layers of activations
/// finite: He-scaled convolutions, batch norms near the identity.
fn random(name: &str, shape: &[i64]) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let uniform = |lo: f64, hi: f64| Tensor::rand(shape, opts) * (hi - lo) + lo;
    if name.ends_with("conv.weight") {
        let fan_in: i64 = shape[1..].iter().product();
        Tensor::randn(shape, opts) * (2.0 / fan_in as f64).sqrt()
    } else if name.ends_with("bn.weight") || name.ends_with("running_var") {
        uniform(0.5, 1.5)
    } else {
        uniform(-0.1, 0.1)
    }
}

/// Every variable of `net` that `keep` keeps, under the name and shape it
/// gives, with [`random`] values, written to a safetensors file at `path`.
fn write_weights(net: &Inception, path: &Path, keep: impl Fn(&str, &[i64]) -> Option<(String, Vec<i64>)>) {
    let tensors: Vec<(String, Tensor)> = net
        .layout()
        .into_iter()
        .filter_map(|(name, shape)| keep(&name, &shape))
        .map(|(name, shape)| {
            let t = random(&name, &shape);
            (name, t)
        })
        .collect();
    Tensor::write_safetensors(&tensors, path).unwrap();
}

#[test]
fn the_network_has_torchvisions_inception_v3_layers_and_2048_features() {
    let net = Inception::new(Device::Cpu);
    let layout = net.layout();
    // 94 convolutions, each with a batch norm: 5 variables apiece.
    assert_eq!(layout.len(), 94 * 5);
    // torchvision's inception_v3 has 27,161,264 parameters, of which the
    // auxiliary head holds 3,326,696 and the 1000-way classifier 2,049,000.
    let parameters: i64 = layout
        .iter()
        .filter(|(n, _)| !n.contains("running_"))
        .map(|(_, s)| s.iter().product::<i64>())
        .sum();
    assert_eq!(parameters, 27_161_264 - 3_326_696 - 2_049_000);
    let shape = |name: &str| layout.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(shape("Conv2d_1a_3x3.conv.weight"), [32, 3, 3, 3]);
    assert_eq!(shape("Mixed_6b.branch7x7_2.conv.weight"), [128, 128, 1, 7]);
    assert_eq!(shape("Mixed_6e.branch7x7dbl_2.conv.weight"), [192, 192, 7, 1]);
    assert_eq!(shape("Mixed_7c.branch_pool.conv.weight"), [192, 2048, 1, 1]);
    assert_eq!(shape("Mixed_7b.branch3x3dbl_3b.bn.running_var"), [384]);
    let features = net.features(&images(2));
    assert_eq!(features.size(), [2, inception::FEATURES]);
    // Average-pooled ReLU outputs: finite and never negative.
    assert!(features.isfinite().all().int64_value(&[]) == 1);
    assert!(features.min().double_value(&[]) >= 0.0);
}

#[test]
fn weights_written_out_load_back_into_the_same_features() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("inception.safetensors");
    let random = Inception::new(Device::Cpu);
    write_weights(&random, &path, |n, s| Some((n.to_string(), s.to_vec())));
    let loaded = Inception::load(&path, Device::Cpu).unwrap();
    let again = Inception::load(&path, Device::Cpu).unwrap();
    let x = images(2);
    let (a, b) = (loaded.features(&x), again.features(&x));
    assert!(a.isfinite().all().int64_value(&[]) == 1 && a.abs().max().double_value(&[]) > 0.0);
    assert!(
        a.allclose(&b, 0.0, 0.0, false),
        "the same weights gave other features"
    );
    // And they are the file's, not the random start's.
    assert!(!a.allclose(&random.features(&x), 1e-3, 1e-3, false));
}

#[test]
fn a_file_of_another_layout_is_refused_naming_the_first_mismatched_key() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Inception::new(Device::Cpu);
    let cases: [(&str, Keep, &str); 4] = [
        (
            "missing",
            Box::new(|n: &str, s: &[i64]| {
                (n != "Mixed_5b.branch_pool.conv.weight").then(|| (n.to_string(), s.to_vec()))
            }),
            "Mixed_5b.branch_pool.conv.weight: missing",
        ),
        (
            "shape",
            Box::new(|n: &str, s: &[i64]| {
                let mut s = s.to_vec();
                if n == "Mixed_6a.branch3x3.conv.weight" {
                    s[0] = 380;
                }
                Some((n.to_string(), s))
            }),
            "Mixed_6a.branch3x3.conv.weight: shape [380, 288, 3, 3], Inception-v3 needs [384, 288, 3, 3]",
        ),
        (
            "renamed",
            Box::new(|n: &str, s: &[i64]| Some((n.replace("Mixed_7c.", "Mixed_7d."), s.to_vec()))),
            "Mixed_7c.branch1x1.conv.weight: missing",
        ),
        (
            "another network",
            Box::new(|n: &str, s: &[i64]| {
                n.starts_with("Conv2d_1a")
                    .then(|| (format!("features.{n}"), s.to_vec()))
            }),
            "Conv2d_1a_3x3.conv.weight: missing",
        ),
    ];
    for (what, keep, needle) in cases {
        let path = tmp.path().join(format!("{what}.safetensors"));
        write_weights(&net, &path, keep);
        let err = Inception::load(&path, Device::Cpu)
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        assert!(matches!(err, LearnError::Config { .. }), "{what}: {err:?}");
        let message = err.to_string();
        assert!(message.contains(needle), "{what}: {message}");
    }
    // An extra variable that is not Inception's is named too; the
    // classifier and the auxiliary head of the standard file are not.
    let path = tmp.path().join("extra.safetensors");
    let mut tensors: Vec<(String, Tensor)> = net
        .layout()
        .into_iter()
        .map(|(n, s)| (n, Tensor::ones(s.as_slice(), (Kind::Float, Device::Cpu))))
        .collect();
    tensors.push((
        "fc.weight".into(),
        Tensor::zeros([1008, 2048], (Kind::Float, Device::Cpu)),
    ));
    tensors.push((
        "AuxLogits.fc.bias".into(),
        Tensor::zeros([1008], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&tensors, &path).unwrap();
    Inception::load(&path, Device::Cpu).unwrap();
    tensors.push((
        "Mixed_8a.branch1x1.conv.weight".into(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&tensors, &path).unwrap();
    let message = Inception::load(&path, Device::Cpu).err().unwrap().to_string();
    assert!(
        message.contains("Mixed_8a.branch1x1.conv.weight: not a variable of Inception-v3"),
        "{message}"
    );
}

#[test]
fn images_of_any_size_become_299_pixel_colour_input() {
    // A grey 28x28 image: left half black, right half white.
    let grey: Vec<u8> = (0..28 * 28).map(|i| if i % 28 < 14 { 0 } else { 255 }).collect();
    let images = twinsim_data::Images::new(
        grey,
        twinsim_data::ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        },
    )
    .unwrap();
    let x = inception::resize(&images);
    assert_eq!(x.size(), [1, 3, 299, 299]);
    assert_eq!(x.kind(), Kind::Uint8);
    // Three equal channels; the far left black and the far right white.
    assert!(x.get(0).get(0).equal(&x.get(0).get(2)));
    assert_eq!(x.int64_value(&[0, 1, 150, 0]), 0);
    assert_eq!(x.int64_value(&[0, 1, 150, 298]), 255);
    // The edge is smooth, not a hard step: values between 0 and 255 occur.
    let row = x.get(0).get(0).get(150);
    let between = row
        .gt(10)
        .logical_and(&row.lt(245))
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert!(between >= 2, "no transition pixels: {between}");
}

#[test]
fn a_dataset_of_grey_digits_embeds_batch_by_batch() {
    let net = Inception::new(Device::Cpu);
    let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i * 7 % 256) as u8).collect();
    let images = twinsim_data::Images::new(
        pixels,
        twinsim_data::ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        },
    )
    .unwrap();
    let bar = indicatif::ProgressBar::hidden();
    let features = net.embed(&images, &bar);
    assert_eq!(features.size(), [3, inception::FEATURES]);
    assert_eq!(bar.position(), 3);
    // Row i is image i's: the same as embedding it alone.
    let alone = net.embed(&images.select(&[1]), &bar);
    assert!(features.get(1).allclose(&alone.get(0), 1e-4, 1e-5, false));
}
