//! Trained models: saved and loaded back bit for bit, refused with a reason
//! (never a panic) when the run directory is missing, damaged or
//! inconsistent, preprocessing measured on data, and whole splits embedded.

use std::path::{Path, PathBuf};

use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor};
use twinsim_data::{sample, ImageShape, Images, SplitName};
use twinsim_learn::encoders::{EncoderSpec, ENCODERS};
use twinsim_learn::model::{
    Distance, Embedding, Model, ModelCard, Preprocess, CARD_FILE, FORMAT_VERSION, WEIGHTS_FILE,
};
use twinsim_learn::whitening::{Whitening, SHRINK};
use twinsim_learn::LearnError;

fn card(arch: &str, embedding_dim: i64) -> ModelCard {
    let mut extra = serde_json::Map::new();
    extra.insert("note".into(), serde_json::json!({"calibrated": false}));
    ModelCard {
        format_version: FORMAT_VERSION,
        encoder: EncoderSpec {
            arch: arch.into(),
            in_channels: 1,
            height: 28,
            width: 28,
            embedding_dim,
        },
        preprocess: Preprocess {
            channels: 1,
            height: 28,
            width: 28,
            mean: vec![0.1307],
            std: vec![0.3081],
        },
        distance: Distance::Cosine,
        normalize: true,
        embedding: Embedding::Head,
        flip_average: false,
        classes: (0..10).map(|d| d.to_string()).collect(),
        dataset: "mnist".into(),
        loss: "contrastive".into(),
        extra,
    }
}

fn mnist() -> Images {
    sample::load(SplitName::Test).unwrap().images
}

/// The first `n` sample images as a uint8 (n, 1, 28, 28) tensor.
fn batch(images: &Images, n: usize) -> Tensor {
    let idx: Vec<usize> = (0..n).collect();
    twinsim_learn::images_tensor(&images.select(&idx), Device::Cpu)
}

/// A model with weights and batch-norm statistics moved away from their
/// initial values by a few training steps, so a round trip that dropped
/// any of them would show.
fn trained(card: ModelCard) -> Model {
    tch::manual_seed(1);
    let model = Model::new(card, Device::Cpu).unwrap();
    let mut opt = tch::nn::Adam::default().build(&model.vs, 1e-2).unwrap();
    let x = batch(&mnist(), 32);
    for _ in 0..3 {
        let loss = model.embed(&x, true).sum(Kind::Float);
        opt.backward_step(&loss);
    }
    model
}

fn saved(model: &Model) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    model.save(&dir).unwrap();
    (tmp, dir)
}

fn load_err(dir: &Path) -> (String, String) {
    match Model::load(dir, Device::Cpu) {
        Err(e @ LearnError::BadModel { .. }) => (e.to_string(), e.hint().unwrap()),
        Err(e) => panic!("expected a bad-model error, got {e}"),
        Ok(_) => panic!("{} loaded", dir.display()),
    }
}

fn eval_embeddings(model: &Model) -> Tensor {
    let _g = tch::no_grad_guard();
    model.embed(&batch(&mnist(), 16), false)
}

#[test]
fn round_trip_is_bit_identical_for_every_encoder() {
    for (arch, _) in ENCODERS {
        let model = trained(card(arch, 8));
        let (_tmp, dir) = saved(&model);
        let back = Model::load(&dir, Device::Cpu).unwrap();
        assert_eq!(back.card, model.card, "{arch}");
        assert!(eval_embeddings(&back).equal(&eval_embeddings(&model)), "{arch}");
        assert_eq!(back.weights_hash(), model.weights_hash(), "{arch}");
        let (a, b) = (model.vs.variables(), back.vs.variables());
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            assert!(t.equal(&b[name]), "{arch}: {name} differs after loading");
        }
        // Running statistics moved in training and came back too (every
        // encoder but the batch-norm-free mlp has them).
        match a.iter().find(|(n, _)| n.ends_with("running_mean")) {
            Some((_, stat)) => assert!(stat.abs().sum(Kind::Float).double_value(&[]) > 0.0),
            None => assert_eq!(*arch, "mlp"),
        }
    }
}

#[test]
fn files_are_standard_safetensors_and_json_written_atomically() {
    let model = trained(card("seed", 2));
    let (_tmp, dir) = saved(&model);
    // Saving again over an existing model replaces it in place.
    model.save(&dir).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![CARD_FILE, WEIGHTS_FILE],
        "temporary files left behind"
    );
    // Byte for byte what tch's own safetensors writer makes of the variables
    // (which it wants contiguous: convolution weights are kept channels-last).
    let reference = dir.parent().unwrap().join("reference.safetensors");
    let vars: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.contiguous()))
        .collect();
    Tensor::write_safetensors(&vars, &reference).unwrap();
    assert_eq!(
        std::fs::read(dir.join(WEIGHTS_FILE)).unwrap(),
        std::fs::read(&reference).unwrap()
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(CARD_FILE)).unwrap()).unwrap();
    assert_eq!(json["encoder"]["arch"], "seed");
    assert_eq!(json["distance"], "cosine");
}

#[test]
fn weights_hash_changes_with_weights_and_card() {
    let model = trained(card("seed", 2));
    let before = model.weights_hash();
    assert_eq!(before.len(), 64);
    assert_eq!(model.weights_hash(), before, "the hash must be deterministic");
    tch::no_grad(|| {
        let _ = model.vs.variables()["fc5.bias"].shallow_clone().fill_(0.5);
    });
    let after_weights = model.weights_hash();
    assert_ne!(after_weights, before);
    let mut other = model;
    other.card.dataset = "fashion-mnist".into();
    assert_ne!(other.weights_hash(), after_weights);
}

#[test]
fn truncated_or_garbled_weights_are_refused_naming_the_file() {
    let model = trained(card("cnn", 8));
    let (_tmp, dir) = saved(&model);
    let path = dir.join(WEIGHTS_FILE);
    let good = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut garbled_header = good.clone();
    garbled_header[8..8 + header_len].fill(b'x');
    for bad in [
        good[..good.len() / 2].to_vec(),
        good[..good.len() - 1].to_vec(),
        good[..4].to_vec(),
        Vec::new(),
        huge_header,
        garbled_header,
    ] {
        std::fs::write(&path, &bad).unwrap();
        let (msg, hint) = load_err(&dir);
        assert!(msg.contains(WEIGHTS_FILE) && msg.contains("safetensors"), "{msg}");
        assert!(hint.contains("damaged"), "{hint}");
    }
}

#[test]
fn weights_of_another_embedding_size_are_refused_naming_variable_and_shapes() {
    let model = trained(card("seed", 2));
    let (_tmp, dir) = saved(&model);
    let json = serde_json::to_vec_pretty(&card("seed", 8)).unwrap();
    std::fs::write(dir.join(CARD_FILE), json).unwrap();
    let (msg, hint) = load_err(&dir);
    // Variables are checked in name order: fc5.bias comes first.
    assert!(
        msg.contains("'fc5.bias'") && msg.contains("[2]") && msg.contains("[8]"),
        "{msg}"
    );
    assert!(msg.contains(WEIGHTS_FILE), "{msg}");
    assert!(hint.contains("same run"), "{hint}");
}

#[test]
fn weights_of_another_architecture_are_refused_naming_variables() {
    let model = trained(card("seed", 8));
    let (_tmp, dir) = saved(&model);
    std::fs::write(dir.join(CARD_FILE), serde_json::to_vec(&card("cnn", 8)).unwrap()).unwrap();
    let (msg, _) = load_err(&dir);
    assert!(msg.contains("cnn encoder"), "{msg}");
    // One of cnn's variables the file lacks, one of the seed's it holds.
    assert!(msg.contains("'head.bias'") && msg.contains("'bn1.bias'"), "{msg}");
}

#[test]
fn non_finite_weights_are_refused_naming_the_variable() {
    for (name, value) in [("c2.weight", f64::NAN), ("bn3.running_var", f64::INFINITY)] {
        let model = trained(card("seed", 2));
        tch::no_grad(|| {
            let _ = model.vs.variables()[name].narrow(0, 1, 1).fill_(value);
        });
        let (_tmp, dir) = saved(&model);
        let (msg, _) = load_err(&dir);
        assert!(
            msg.contains(&format!("'{name}'")) && msg.contains("NaN or infinite"),
            "{msg}"
        );
    }
}

#[test]
fn missing_directory_or_file_is_refused_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let (msg, hint) = load_err(&tmp.path().join("no-such-run"));
    assert!(msg.contains("no-such-run"), "{msg}");
    assert!(hint.contains("twinsim train"), "{hint}");

    let model = trained(card("seed", 2));
    for file in [WEIGHTS_FILE, CARD_FILE] {
        let (_tmp, dir) = saved(&model);
        std::fs::remove_file(dir.join(file)).unwrap();
        let (msg, hint) = load_err(&dir);
        assert!(msg.contains(file) && msg.contains("missing"), "{msg}");
        assert!(hint.contains("twinsim train"), "{hint}");
    }
}

#[test]
fn cards_of_unknown_format_or_architecture_are_refused() {
    let model = trained(card("seed", 2));
    let (_tmp, dir) = saved(&model);
    let path = dir.join(CARD_FILE);
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();

    let mut future = good.clone();
    future["format_version"] = serde_json::json!(FORMAT_VERSION + 1);
    future["encoder"] = serde_json::json!("a field this version does not know");
    std::fs::write(&path, future.to_string()).unwrap();
    let (msg, _) = load_err(&dir);
    assert!(
        msg.contains(&format!("format_version {}", FORMAT_VERSION + 1)),
        "{msg}"
    );

    // Format 1 pooled after batch norm: its weights would compute something else.
    let mut old = good.clone();
    old["format_version"] = serde_json::json!(1);
    std::fs::write(&path, old.to_string()).unwrap();
    let (msg, hint) = load_err(&dir);
    assert!(msg.contains("format_version 1"), "{msg}");
    assert!(hint.contains("retrain"), "{hint}");

    let mut unknown = good.clone();
    unknown["encoder"]["arch"] = serde_json::json!("vgg");
    std::fs::write(&path, unknown.to_string()).unwrap();
    let (msg, hint) = load_err(&dir);
    assert!(msg.contains(CARD_FILE) && msg.contains("'vgg'"), "{msg}");
    assert!(ENCODERS.iter().all(|(n, _)| hint.contains(n)), "{hint}");

    std::fs::write(&path, b"{\"format_version\": 1,").unwrap();
    assert!(load_err(&dir).0.contains("not valid JSON"));
}

#[test]
fn cards_whose_preprocessing_does_not_fit_the_encoder_are_refused() {
    let mut c = card("cnn", 8);
    c.preprocess.mean = vec![0.5, 0.5, 0.5];
    assert!(matches!(
        Model::new(c, Device::Cpu),
        Err(LearnError::Config { .. })
    ));
    let mut c = card("cnn", 8);
    c.preprocess.height = 32;
    assert!(matches!(
        Model::new(c, Device::Cpu),
        Err(LearnError::Config { .. })
    ));
    let mut c = card("cnn", 8);
    c.preprocess.std = vec![0.0];
    assert!(matches!(
        Model::new(c, Device::Cpu),
        Err(LearnError::Config { .. })
    ));
}

#[test]
fn preprocess_fit_measures_each_channel() {
    let images = mnist();
    let p = Preprocess::fit(&images);
    let bytes = images.as_bytes();
    let n = bytes.len() as f64;
    let mean = bytes.iter().map(|&b| f64::from(b) / 255.0).sum::<f64>() / n;
    let var = bytes
        .iter()
        .map(|&b| (f64::from(b) / 255.0 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert_eq!((p.channels, p.height, p.width), (1, 28, 28));
    assert!((p.mean[0] - mean).abs() < 1e-9, "{} vs {mean}", p.mean[0]);
    assert!(
        (p.std[0] - var.sqrt()).abs() < 1e-9,
        "{} vs {}",
        p.std[0],
        var.sqrt()
    );
    // Near MNIST's well-known 0.1307 and 0.3081 (this is a 2,000-image sample).
    assert!(
        (p.mean[0] - 0.1307).abs() < 0.02 && (p.std[0] - 0.3081).abs() < 0.02,
        "{p:?}"
    );

    // Three channels told apart: constant 0, constant 255 (std 1 to avoid
    // dividing by zero) and half 0 / half 255.
    let shape = ImageShape {
        channels: 3,
        height: 2,
        width: 2,
    };
    let image = [0, 0, 0, 0, 255, 255, 255, 255, 0, 255, 0, 255];
    let images = Images::new(image.repeat(5), shape).unwrap();
    let p = Preprocess::fit(&images);
    assert_eq!(p.mean, vec![0.0, 1.0, 0.5]);
    assert_eq!(p.std, vec![1.0, 1.0, 0.5]);
    let x = p.apply(&twinsim_learn::images_tensor(&images, Device::Cpu));
    assert_eq!(x.size(), vec![5, 3, 2, 2]);
    assert_eq!(x.kind(), Kind::Float);
    let first: Vec<f32> = Vec::try_from(&x.get(0).reshape([-1])).unwrap();
    assert_eq!(first, vec![0., 0., 0., 0., 0., 0., 0., 0., -1., 1., -1., 1.]);
}

#[test]
fn embed_images_matches_embedding_batch_by_batch() {
    let model = trained(card("cnn", 8));
    let images = mnist().select(&(0..10).collect::<Vec<_>>());
    let all = model.embed_images(&images, 4);
    assert_eq!(all.size(), vec![10, 8]);
    assert_eq!((all.kind(), all.device()), (Kind::Float, Device::Cpu));
    let _g = tch::no_grad_guard();
    let x = twinsim_learn::images_tensor(&images, Device::Cpu);
    for start in (0..10).step_by(4) {
        let n = 4.min(10 - start);
        let expected = model.embed(&x.narrow(0, start, n), false);
        assert!(all.narrow(0, start, n).equal(&expected), "batch at {start}");
    }
    // Eval mode: the batching does not change the embeddings.
    assert!(model
        .embed_images(&images, 1000)
        .allclose(&all, 1e-5, 1e-5, false));
    // Normalised embeddings have norm 1.
    let norms = all.norm_scalaropt_dim(2, [1], false);
    assert!(norms.allclose(&Tensor::ones([10], (Kind::Float, Device::Cpu)), 1e-5, 1e-5, false));
    let empty = model.embed_images(&images.select(&[]), 4);
    assert_eq!(empty.size(), vec![0, 8]);
}

#[test]
fn check_images_refuses_another_image_size() {
    let model = Model::new(card("cnn", 8), Device::Cpu).unwrap();
    assert!(model
        .check_images(ImageShape {
            channels: 1,
            height: 28,
            width: 28
        })
        .is_ok());
    let err = model
        .check_images(ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("3x32x32") && err.hint().unwrap().contains("1x28x28"),
        "{err}"
    );
}

/// The library's ways in for outside images agree: encoded bytes, files on
/// disk and the dataset's own pixels embed alike; a recalibration does not
/// change the model's identity; compare scores a pair as the calibration says.
#[test]
fn files_buffers_and_decoded_images_embed_alike() {
    use twinsim_learn::calibration::{Calibration, ThresholdRule};
    use twinsim_learn::{images, similarity};

    let tmp = tempfile::tempdir().unwrap();
    tch::manual_seed(5);
    let mut model = Model::new(card("cnn", 16), Device::Cpu).unwrap();
    let test = sample::load(SplitName::Test).unwrap();
    let mut encoded = Vec::new();
    let mut paths = Vec::new();
    for i in 0..3 {
        let mut png = Vec::new();
        let grey = image::GrayImage::from_raw(28, 28, test.images.image(i).to_vec()).unwrap();
        grey.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let path = tmp.path().join(format!("{i}.png"));
        std::fs::write(&path, &png).unwrap();
        encoded.push(png);
        paths.push(path);
    }
    let named: Vec<(&str, &[u8])> = encoded.iter().map(|b| ("upload", b.as_slice())).collect();
    let from_bytes = images::from_bytes(&named, &model.card.preprocess).unwrap();
    let from_files = images::from_files(&paths, &model.card.preprocess).unwrap();
    let decoded = test.images.select(&[0, 1, 2]);
    assert_eq!(from_bytes.as_bytes(), decoded.as_bytes());
    assert_eq!(from_files.as_bytes(), decoded.as_bytes());
    let e = model.embed_images(&from_bytes, 2);
    assert!(e.allclose(&model.embed_images(&decoded, 3), 1e-6, 1e-6, false));

    let err = images::from_bytes(&[("nothing.png", b"".as_slice())], &model.card.preprocess).unwrap_err();
    assert!(
        err.to_string().contains("nothing.png") && err.to_string().contains("empty"),
        "{err}"
    );

    let hash = model.weights_hash();
    let c = Calibration::fit(
        &[0.1, 0.2, 0.8, 0.9],
        &[true, true, false, false],
        ThresholdRule::BestAccuracy,
        "t".into(),
    )
    .unwrap();
    model.set_calibration(&c);
    assert_eq!(
        model.weights_hash(),
        hash,
        "calibration is not part of the model's identity"
    );
    assert_eq!(model.calibration(), Some(c.clone()));
    let scored = similarity::compare(&model, &c, &decoded.select(&[0]), &decoded.select(&[0]));
    assert!(scored[0].distance.abs() < 1e-6 && scored[0].same);
    assert_eq!(scored[0].similarity, c.similarity(scored[0].distance));
}

#[test]
fn whitening_undoes_the_nuisance_covariance_up_to_shrinkage() {
    // 2,000 images of 3 features, each seen 8 times with noise of a known,
    // correlated covariance N = mixᵀ·mix of very different scales.
    tch::manual_seed(3);
    let opts = (Kind::Double, Device::Cpu);
    let mix = Tensor::from_slice(&[10.0f64, 0.0, 0.0, 3.0, 1.0, 0.0, 0.5, -0.2, 0.1]).view([3, 3]);
    let images = Tensor::randn([2_000, 3], opts) * 4.0 + 5.0;
    let views = images.unsqueeze(0) + Tensor::randn([8, 2_000, 3], opts).matmul(&mix);
    let features = Tensor::randn([20_000, 3], opts) + 2.0;
    let w = Whitening::fit(&features, &views).unwrap();
    // Centred on the features' mean, not the views'.
    let mean = features.mean_dim(0, false, Kind::Double).to_kind(Kind::Float);
    assert!(w.mean.allclose(&mean, 1e-5, 1e-5, false));
    // matrix·matrixᵀ must be (N + s·I)⁻¹, with s = SHRINK · trace(N) / F:
    // the images' own spread (16 per feature) plays no part.
    let noise = mix.tr().mm(&mix);
    let s = SHRINK * noise.trace().double_value(&[]) / 3.0;
    let expected = (&noise + Tensor::eye(3, opts) * s).inverse();
    let got = w
        .matrix
        .to_kind(Kind::Double)
        .mm(&w.matrix.to_kind(Kind::Double).tr());
    let error = ((&got - &expected).abs().max() / expected.abs().max()).double_value(&[]);
    assert!(error < 0.03, "{got} vs {expected}");
    assert!(Whitening::fit(&features.narrow(0, 0, 0), &views).is_err());
}

#[test]
fn a_whitened_model_embeds_its_features_and_survives_a_round_trip() {
    let mut model = trained(card("cnn", 8));
    let head = eval_embeddings(&model);
    model.whiten(&mnist()).unwrap();
    assert_eq!(model.card.embedding, Embedding::Features);
    // cnn's pooled features are 128 wide; the head's output was 8.
    assert_eq!((head.size()[1], model.dim()), (8, 128));
    let whitened = eval_embeddings(&model);
    assert_eq!(whitened.size(), [16, 128]);
    let norms = whitened.norm_scalaropt_dim(2, [1], false);
    assert!(norms.allclose(&Tensor::ones([16], (Kind::Float, Device::Cpu)), 1e-5, 1e-5, false));

    // Whitening again refits the same two variables.
    let count = model.vs.variables().len();
    model.whiten(&mnist()).unwrap();
    assert_eq!(model.vs.variables().len(), count);
    // (Not bit for bit the first fit: the augmented views draw from
    // libtorch's global generator, which tests running alongside also draw from.)
    let whitened = eval_embeddings(&model);

    let (_tmp, dir) = saved(&model);
    let back = Model::load(&dir, Device::Cpu).unwrap();
    assert_eq!(back.card, model.card);
    assert!(eval_embeddings(&back).equal(&whitened));
    let rows = back.embed_images(&mnist().select(&[0, 1, 2]), 2);
    assert_eq!(rows.size(), [3, 128]);

    // The whitening is part of the weights: a card that embeds with the
    // head does not take them.
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(CARD_FILE)).unwrap()).unwrap();
    card["embedding"] = "head".into();
    std::fs::write(dir.join(CARD_FILE), card.to_string()).unwrap();
    let (msg, _) = load_err(&dir);
    assert!(msg.contains("whiten.matrix"), "{msg}");
}
