//! A trained model: a card saying what it is and how to feed it, and the
//! weights of its encoder. A run directory holds them as `model.json` and
//! `model.safetensors`; [`Model::load`] rebuilds the encoder from the card
//! and refuses, with a reason and a hint, any weights file that does not fit
//! it exactly, so a model either loads whole or not at all.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use twinsim_data::{atomic, read, ImageShape, Images};

use crate::calibration::{self, Calibration};
use crate::encoders::{self, Encoder, EncoderSpec};
use crate::train::augment::Augment;
use crate::whitening::{self, Whitening};
use crate::{LearnError, Result};

/// The card format this code writes and reads; a card with another version
/// is refused rather than half-understood. Version 2: the encoders pool
/// straight after a downsampling convolution, before batch norm, so weights
/// of version 1 would compute something else.
pub const FORMAT_VERSION: u32 = 2;
/// The weights file in a run directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The card file in a run directory.
pub const CARD_FILE: &str = "model.json";

/// What to say when a run directory is missing or unusable.
const RUN_DIR_HINT: &str =
    "pass the path to a run directory made by `twinsim train` (it holds model.json and model.safetensors)";

/// How two embeddings are compared.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// 1 − cosine similarity; the natural choice for L2-normalised embeddings.
    Cosine,
    /// The L2 distance ‖a − b‖, as the seed's contrastive loss uses.
    Euclidean,
}

impl Distance {
    /// The distance between row i of `a` and row i of `b`, both (N, D):
    /// (N,) float. Cosine normalises the rows itself, so it is right for
    /// embeddings that are not unit length too.
    pub fn rows(self, a: &Tensor, b: &Tensor) -> Tensor {
        match self {
            Distance::Cosine => {
                let norm = |t: &Tensor| t / t.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
                1.0 - (norm(a) * norm(b)).sum_dim_intlist(1, false, Kind::Float)
            }
            Distance::Euclidean => (a - b).norm_scalaropt_dim(2, [1], false),
        }
    }

    /// `cosine` or `euclidean`, as files and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Distance::Cosine => "cosine",
            Distance::Euclidean => "euclidean",
        }
    }
}

/// How raw uint8 images become the encoder's float input. `mean` and `std`
/// hold one value per channel, in [0, 1] pixel units; `channels`, `height`
/// and `width` are the image size the model was trained on.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Preprocess {
    pub channels: i64,
    pub height: i64,
    pub width: i64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Preprocess {
    /// uint8 (B, C, H, W) → float32 (B, C, H, W): x/255, minus `mean`, over
    /// `std`, per channel, on the images' device. C must equal `channels`.
    pub fn apply(&self, images_u8: &Tensor) -> Tensor {
        self.on(images_u8.device()).apply(images_u8)
    }

    /// This preprocessing with its per-channel values on `device`, to apply
    /// to many batches.
    pub fn on(&self, device: Device) -> DevicePreprocess {
        let per_channel = |v: &[f64]| {
            Tensor::from_slice(v)
                .to_kind(Kind::Float)
                .view([1, self.channels, 1, 1])
                .to_device(device)
        };
        DevicePreprocess {
            mean: per_channel(&self.mean),
            std: per_channel(&self.std),
        }
    }

    /// The mean and standard deviation of each channel over all of
    /// `images` (N, C, H, W). A constant channel (or an empty set) gets std 1,
    /// so [`Preprocess::apply`] never divides by zero.
    pub fn fit(images: &Images) -> Preprocess {
        let s = images.shape();
        let plane = s.height * s.width;
        let mut sums = vec![(0u64, 0u64); s.channels];
        for (i, values) in images.as_bytes().chunks_exact(plane).enumerate() {
            let (sum, squares) = &mut sums[i % s.channels];
            for &v in values {
                *sum += u64::from(v);
                *squares += u64::from(v) * u64::from(v);
            }
        }
        let n = (images.len() * plane) as f64;
        let (mean, std) = sums
            .iter()
            .map(|&(sum, squares)| mean_std(sum, squares, n))
            .unzip();
        Preprocess {
            channels: s.channels as i64,
            height: s.height as i64,
            width: s.width as i64,
            mean,
            std,
        }
    }

    /// The image size this preprocessing expects.
    fn shape(&self) -> (i64, i64, i64) {
        (self.channels, self.height, self.width)
    }
}

/// A [`Preprocess`] whose per-channel mean and std (1, C, 1, 1) already
/// sit on a device: applying it copies nothing from the host, a copy that
/// would wait for the device to finish its queue (one per training step).
#[derive(Debug)]
pub struct DevicePreprocess {
    mean: Tensor,
    std: Tensor,
}

impl DevicePreprocess {
    /// As [`Preprocess::apply`], for images on this preprocessing's device.
    pub fn apply(&self, images_u8: &Tensor) -> Tensor {
        (images_u8.to_kind(Kind::Float) / 255.0 - &self.mean) / &self.std
    }
}

/// Mean and standard deviation, in [0, 1] units, of `n` byte values whose
/// sum and sum of squares are given.
fn mean_std(sum: u64, squares: u64, n: f64) -> (f64, f64) {
    if n == 0.0 {
        return (0.0, 1.0);
    }
    let mean = sum as f64 / n;
    let var = (squares as f64 / n - mean * mean).max(0.0);
    let std = var.sqrt() / 255.0;
    (mean / 255.0, if std > 1e-6 { std } else { 1.0 })
}

/// How many training images [`Model::fit_to_data`] uses: airbench's 5,000
/// give 4.8 million 2×2 patches of 32×32 colour images for a 12×12 covariance.
pub const FIT_IMAGES: usize = 5_000;

/// At most `max` of `images`, evenly spaced (all when there are fewer).
fn evenly_spaced(images: &Images, max: usize) -> Images {
    let step = images.len().div_ceil(max.max(1)).max(1);
    let chosen: Vec<usize> = (0..images.len()).step_by(step).collect();
    images.select(&chosen)
}

/// Where a model's embeddings come from (see [`whitening::EMBEDDINGS`]).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Embedding {
    /// The head's output (B, D).
    #[default]
    Head,
    /// The pooled features (B, F), whitened by the variables `whiten.mean`
    /// and `whiten.matrix`.
    Features,
}

/// Everything needed to rebuild and use a trained model, besides its
/// weights: saved as `model.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ModelCard {
    /// [`FORMAT_VERSION`] when written by this code.
    pub format_version: u32,
    pub encoder: EncoderSpec,
    pub preprocess: Preprocess,
    pub distance: Distance,
    /// L2-normalise embeddings (each row of the output has norm 1).
    pub normalize: bool,
    /// Where embeddings come from: the head, or the whitened features
    /// before it ([`crate::whitening`]); cards without the field use the head.
    #[serde(default)]
    pub embedding: Embedding,
    /// Embed each image as the mean of its own and its mirror image's
    /// embeddings (test-time augmentation): set when training flipped
    /// images, so both views are equally the model's; absent is false.
    #[serde(default)]
    pub flip_average: bool,
    /// The training set's class names.
    pub classes: Vec<String>,
    /// The training dataset, as the CLI spells it.
    pub dataset: String,
    /// The loss trained with, as the CLI spells it.
    pub loss: String,
    /// Room for what later versions record (calibration, …) without a new
    /// format version.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ModelCard {
    /// Refuses a card whose preprocessing cannot feed its encoder.
    fn check(&self) -> Result<()> {
        let p = &self.preprocess;
        let e = &self.encoder;
        let hint = "the preprocessing must match the encoder: one mean and one positive std per channel, same image size";
        if p.shape() != (e.in_channels, e.height, e.width) {
            return Err(LearnError::config(
                format!(
                    "preprocessing is for {}x{}x{} images but the encoder takes {}x{}x{}",
                    p.channels, p.height, p.width, e.in_channels, e.height, e.width
                ),
                hint,
            ));
        }
        let channels = p.channels as usize;
        if p.mean.len() != channels || p.std.len() != channels {
            return Err(LearnError::config(
                format!(
                    "{} means and {} stds for {channels} channels",
                    p.mean.len(),
                    p.std.len()
                ),
                hint,
            ));
        }
        if !p.mean.iter().all(|m| m.is_finite()) || !p.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(LearnError::config(
                format!("unusable preprocessing: mean {:?}, std {:?}", p.mean, p.std),
                hint,
            ));
        }
        Ok(())
    }
}

/// A model ready to embed: its card, its variables, and the encoder network
/// built from the card over those variables.
pub struct Model {
    pub card: ModelCard,
    /// Every variable of the encoder (trainable weights and batch-norm
    /// running statistics), named as the encoder names them.
    pub vs: nn::VarStore,
    net: Encoder,
    /// Set when `card.embedding` is [`Embedding::Features`]; its tensors
    /// are variables of `vs`, so they are saved and loaded with the weights.
    whitening: Option<Whitening>,
    /// `card.preprocess` on the model's device.
    preprocess: DevicePreprocess,
}

impl Model {
    /// A model with fresh weights on `device`, as the encoder initialises
    /// them (seed them with `tch::manual_seed` first for reproducible runs).
    /// Fails on a card whose encoder cannot be built or whose preprocessing
    /// does not fit the encoder.
    pub fn new(card: ModelCard, device: Device) -> Result<Model> {
        card.check()?;
        let vs = nn::VarStore::new(device);
        let net = encoders::build(&card.encoder, &vs.root())?;
        let whitening = (card.embedding == Embedding::Features).then(|| whitening_vars(&vs, net.features));
        let preprocess = card.preprocess.on(device);
        Ok(Model {
            card,
            vs,
            net,
            whitening,
            preprocess,
        })
    }

    /// The embedding width: the head's D, or the features' F when the model
    /// embeds whitened features.
    pub fn dim(&self) -> i64 {
        match self.whitening {
            Some(_) => self.net.features,
            None => self.card.encoder.embedding_dim,
        }
    }

    /// Makes the model embed its pooled features whitened (see
    /// [`crate::whitening`]), L2-normalised and compared by cosine: centred
    /// on the mean features of `images` (at most [`whitening::MAX_IMAGES`],
    /// evenly spaced), whitened against the spread of
    /// [`whitening::VIEWS`] augmented views (as training augments by
    /// default) of [`whitening::VIEW_IMAGES`] of them. Call it once
    /// training is done, then [`Model::save`].
    pub fn whiten(&mut self, images: &Images) -> Result<()> {
        let width = self.net.features;
        let features = self.map_images(
            &evenly_spaced(images, whitening::MAX_IMAGES),
            crate::similarity::BATCH,
            width,
            |x| self.features_t(&self.preprocessed(x), false),
        );
        let augment = Augment::parse("auto", self.card.preprocess.channels)?;
        let viewed = evenly_spaced(images, whitening::VIEW_IMAGES);
        let views: Vec<Tensor> = (0..whitening::VIEWS)
            .map(|v| {
                // Seeded per view: the same model always gets the same whitening.
                tch::manual_seed(v as i64);
                self.map_images(&viewed, crate::similarity::BATCH, width, |x| {
                    self.features_t(&self.preprocessed(&augment.apply(x)), false)
                })
            })
            .collect();
        let fitted = Whitening::fit(&features, &Tensor::stack(&views, 0))?;
        let vars = match self.whitening.take() {
            Some(vars) => vars,
            None => whitening_vars(&self.vs, self.net.features),
        };
        tch::no_grad(|| {
            vars.mean.shallow_clone().copy_(&fitted.mean);
            vars.matrix.shallow_clone().copy_(&fitted.matrix);
        });
        self.whitening = Some(vars);
        self.card.embedding = Embedding::Features;
        self.card.normalize = true;
        self.card.distance = Distance::Cosine;
        Ok(())
    }

    /// Sets what the encoder derives from the training data rather than
    /// learns ([`Encoder::fit_to_data`]) from at most [`FIT_IMAGES`] of
    /// `images`, evenly spaced; call it on a new model, before training.
    pub fn fit_to_data(&self, images: &Images) {
        let _no_grad = tch::no_grad_guard();
        let chosen = crate::tensor::images_tensor(&evenly_spaced(images, FIT_IMAGES), self.vs.device());
        self.net.fit_to_data(&self.preprocessed(&chosen));
    }

    /// Preprocessed float (B, C, H, W) → embeddings (B, [`Model::dim`]), each
    /// row of norm 1 when `card.normalize`. `train` puts batch norm in
    /// training mode.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let raw = |x: &Tensor| match &self.whitening {
            Some(w) => w.apply(&self.features_t(x, train)),
            None => self.net.forward_t(&encoders::channels_last(x), train),
        };
        let e = if self.card.flip_average && !train {
            (raw(x) + raw(&x.flip([3]))) / 2.0
        } else {
            raw(x)
        };
        if self.card.normalize {
            // Clamped like PyTorch's F.normalize, so a zero embedding stays zero.
            let norm = e.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
            e / norm
        } else {
            e
        }
    }

    /// Preprocessed float (B, C, H, W) → the encoder's pooled features
    /// (B, F), fed channels-last like the whole network.
    fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.net.features_t(&encoders::channels_last(x), train)
    }

    /// Raw uint8 images (B, C, H, W), on any device → embeddings (B,
    /// [`Model::dim`]) on the model's: [`Preprocess::apply`] then
    /// [`Model::forward_t`].
    pub fn embed(&self, images_u8: &Tensor, train: bool) -> Tensor {
        self.forward_t(&self.preprocessed(images_u8), train)
    }

    /// uint8 (B, C, H, W) on any device → preprocessed float on the model's.
    fn preprocessed(&self, images_u8: &Tensor) -> Tensor {
        self.preprocess.apply(&images_u8.to_device(self.vs.device()))
    }

    /// Refuses images of another size than the model was trained on; call it
    /// before [`Model::embed_images`] on data from outside.
    pub fn check_images(&self, shape: ImageShape) -> Result<()> {
        let p = &self.card.preprocess;
        let have = (shape.channels as i64, shape.height as i64, shape.width as i64);
        if have == p.shape() {
            return Ok(());
        }
        Err(LearnError::config(
            format!(
                "images are {shape} but the model was trained on {}x{}x{} images",
                p.channels, p.height, p.width
            ),
            format!(
                "use a dataset of {}x{}x{} images, like the one it was trained on ({})",
                p.channels, p.height, p.width, self.card.dataset
            ),
        ))
    }

    /// Embeds all of `images` (N, C, H, W) in eval mode without gradients,
    /// `batch` images at a time on the model's device: (N, D) float32 on the
    /// CPU, row i for image i. The images must have the card's channel
    /// count (see [`Model::check_images`]).
    pub fn embed_images(&self, images: &Images, batch: usize) -> Tensor {
        self.map_images(images, batch, self.dim(), |x| self.embed(x, false))
    }

    /// `f` over `images` in batches without gradients: uint8 (b, C, H, W)
    /// on the CPU → (b, `width`); the rows concatenated on the CPU.
    fn map_images(&self, images: &Images, batch: usize, width: i64, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let _no_grad = tch::no_grad_guard();
        let s = images.shape();
        let parts: Vec<Tensor> = images
            .as_bytes()
            .chunks(batch.max(1) * s.len())
            .map(|chunk| {
                let n = (chunk.len() / s.len()) as i64;
                let x =
                    Tensor::from_slice(chunk).view([n, s.channels as i64, s.height as i64, s.width as i64]);
                f(&x).to_device(Device::Cpu)
            })
            .collect();
        if parts.is_empty() {
            Tensor::zeros([0, width], (Kind::Float, Device::Cpu))
        } else {
            Tensor::cat(&parts, 0)
        }
    }

    /// Writes `dir/model.safetensors` and `dir/model.json`, creating `dir`
    /// if needed; each file is written to a temporary file beside it, synced
    /// and renamed, so a crash never leaves a half-written file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| twinsim_data::DataError::io(dir, e))?;
        atomic::write_bytes(&dir.join(WEIGHTS_FILE), &self.weights_bytes())?;
        self.save_card(dir)
    }

    /// Rewrites only `dir/model.json` (atomically), after the card changed
    /// (a new calibration) while the weights did not.
    pub fn save_card(&self, dir: &Path) -> Result<()> {
        Ok(atomic::write_bytes(
            &dir.join(CARD_FILE),
            &card_bytes(&self.card),
        )?)
    }

    /// The model's calibration (distance → similarity, and threshold), if it
    /// has one.
    pub fn calibration(&self) -> Option<Calibration> {
        let value = self.card.extra.get(calibration::CARD_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// The model's calibration, or an error saying how to make one;
    /// `run_dir` is named in the message.
    pub fn require_calibration(&self, run_dir: &Path) -> Result<Calibration> {
        self.calibration().ok_or_else(|| {
            LearnError::bad_model(
                run_dir.join(CARD_FILE),
                "the model has no calibration, so distances cannot be read as similarities",
                format!(
                    "run `twinsim calibrate {}` (it fits the similarity and threshold on held-out pairs of the training data)",
                    run_dir.display()
                ),
            )
        })
    }

    /// Stores `calibration` in the card (call [`Model::save_card`] to keep it).
    pub fn set_calibration(&mut self, calibration: &Calibration) {
        let value = serde_json::to_value(calibration).expect("a calibration serialises to JSON");
        self.card.extra.insert(calibration::CARD_KEY.into(), value);
    }

    /// Loads the model saved in `dir` by [`Model::save`] onto `device`.
    /// Refuses, as [`LearnError::BadModel`], a missing directory or file, a
    /// damaged file, a card of an unknown format or architecture, and
    /// weights that do not fit the card's encoder or are not finite.
    pub fn load(dir: &Path, device: Device) -> Result<Model> {
        if !dir.is_dir() {
            return Err(LearnError::bad_model(dir, "no such run directory", RUN_DIR_HINT));
        }
        let card_path = dir.join(CARD_FILE);
        let card = read_card(&card_path)?;
        let model = Model::new(card, device).map_err(|e| {
            let hint = e.hint().unwrap_or_default();
            LearnError::bad_model(&card_path, e.to_string(), hint)
        })?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors = read_weights(&weights_path)?;
        fill(&model, tensors).map_err(|reason| {
            LearnError::bad_model(
                &weights_path,
                reason,
                "model.json and model.safetensors must come from the same run; copy both from the run directory `twinsim train` wrote",
            )
        })?;
        Ok(model)
    }

    /// SHA-256 (hex) of the weights file's bytes followed by the card's
    /// JSON without its calibration: equal for equal weights and cards, so
    /// indexes built with a model can tell when the model has changed, and
    /// recalibrating (which changes no embedding) does not count as a change.
    pub fn weights_hash(&self) -> String {
        let mut card = self.card.clone();
        card.extra.remove(calibration::CARD_KEY);
        let mut bytes = self.weights_bytes();
        bytes.extend(card_bytes(&card));
        read::sha256_hex(&bytes)
    }

    /// The weights as written to `model.safetensors`: every variable, as
    /// float32, in name order, so the same weights always give the same bytes.
    fn weights_bytes(&self) -> Vec<u8> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        crate::tensor::safetensors_bytes(&vars)
    }
}

/// The whitening variables `whiten.mean` (F,) and `whiten.matrix` (F, F)
/// in `vs`, zero until [`Model::whiten`] or [`Model::load`] fills them.
fn whitening_vars(vs: &nn::VarStore, features: i64) -> Whitening {
    let path = vs.root().sub("whiten");
    Whitening {
        mean: path.zeros_no_train("mean", &[features]),
        matrix: path.zeros_no_train("matrix", &[features, features]),
    }
}

/// `card` as written to `model.json`.
fn card_bytes(card: &ModelCard) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(card).expect("a model card always serialises to JSON");
    json.push(b'\n');
    json
}

/// Reads and checks `model.json`: its format version first, so a card from
/// a newer twinsim is named as such rather than as a missing field.
fn read_card(path: &Path) -> Result<ModelCard> {
    let text = read_file(path)?;
    let bad = |reason: String| LearnError::bad_model(path, reason, RUN_DIR_HINT);
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    match value.get("format_version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(LearnError::bad_model(
                path,
                format!(
                    "model card format_version {v} is not supported (this twinsim reads {FORMAT_VERSION})"
                ),
                "use the twinsim version that trained the model, or retrain it with this one",
            ))
        }
        None => return Err(bad("no format_version: not a twinsim model card".into())),
    }
    serde_json::from_value(value).map_err(|e| bad(format!("not a valid model card ({e})")))
}

/// The bytes of a run directory's file; a missing file is a bad model, not
/// an I/O error, so the user is told what a run directory holds.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    read::read_file(path, read::MAX_TEXT_BYTES).map_err(|e| match e {
        twinsim_data::DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            missing_file(path)
        }
        other => LearnError::Data(other),
    })
}

/// A run directory without one of its files.
fn missing_file(path: &Path) -> LearnError {
    LearnError::bad_model(path, "file missing from the run directory", RUN_DIR_HINT)
}

/// The named tensors of a safetensors file, read with the format's own
/// validating parser (header bounds, offsets, sizes), which reports a
/// truncated or garbled file as an error, never a panic.
fn read_weights(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(missing_file(path));
    }
    let tensors = crate::tensor::read_safetensors(path).map_err(|reason| {
        LearnError::bad_model(
            path,
            reason,
            "the file is truncated or damaged; copy it again from the run directory, or retrain",
        )
    })?;
    Ok(tensors.into_iter().collect())
}

/// Copies `tensors` into the model's variables after checking that they are
/// exactly the encoder's variables, with the same shapes, float32 and
/// finite. The error is the reason, naming the variable.
fn fill(model: &Model, mut tensors: HashMap<String, Tensor>) -> std::result::Result<(), String> {
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<&str> = vars
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !tensors.contains_key(*n))
        .collect();
    let mut extra: Vec<&str> = tensors
        .keys()
        .map(String::as_str)
        .filter(|n| !expected.contains(n))
        .collect();
    extra.sort_unstable();
    let encoder = describe(&model.card.encoder);
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!(
            "the weights are not those of {encoder}: {} of its variables missing ({}), {} unknown variables ({})",
            missing.len(),
            first_few(&missing),
            extra.len(),
            first_few(&extra)
        ));
    }
    for (name, var) in &mut vars {
        let src = tensors.remove(name.as_str()).expect("presence checked above");
        check_tensor(name, &src, var, &encoder)?;
        tch::no_grad(|| var.f_copy_(&src)).map_err(|e| format!("variable '{name}': {e}"))?;
    }
    Ok(())
}

/// Shape, kind and finiteness of one stored tensor against its variable.
fn check_tensor(name: &str, src: &Tensor, var: &Tensor, encoder: &str) -> std::result::Result<(), String> {
    if src.size() != var.size() {
        return Err(format!(
            "variable '{name}' has shape {:?} in the file but {encoder} needs {:?}",
            src.size(),
            var.size()
        ));
    }
    if src.kind() != Kind::Float {
        return Err(format!(
            "variable '{name}' is stored as {:?}, not float32",
            src.kind()
        ));
    }
    crate::tensor::check_stored(name, src)
}

/// "a seed encoder (1x28x28 → 2)", for messages.
fn describe(spec: &EncoderSpec) -> String {
    format!(
        "a {} encoder ({}x{}x{} → {})",
        spec.arch, spec.in_channels, spec.height, spec.width, spec.embedding_dim
    )
}

/// "'a', 'b', 'c', …": at most the first three names, so a whole other
/// network is not listed.
fn first_few(names: &[&str]) -> String {
    let mut shown: Vec<String> = names.iter().take(3).map(|n| format!("'{n}'")).collect();
    if names.len() > 3 {
        shown.push("…".into());
    }
    shown.join(", ")
}
