//! Everything a run trains and checkpoints: the model, the loss (with its
//! own parameters), the miner, the optimizer and the weight average, and
//! how their variables are named in a checkpoint.

use tch::{nn, Device, Tensor};
use twinsim_data::Dataset;

use super::augment::Augment;
use super::config::TrainConfig;
use super::ema::Ema;
use super::optimizer::Optimizer;
use crate::encoders::EncoderSpec;
use crate::error::{LearnError, Result};
use crate::losses::{self, Loss, LossConfig};
use crate::miners::Miner;
use crate::model::{Distance, Embedding, Model, ModelCard, Preprocess};

/// Everything a run trains and checkpoints.
pub(super) struct Parts {
    pub model: Model,
    pub loss_vs: nn::VarStore,
    pub loss: Box<dyn Loss>,
    pub miner: Option<Box<dyn Miner>>,
    pub optimizer: Optimizer,
    pub ema: Option<Ema>,
}

/// Builds the model, loss, miner, optimizer and weight average.
pub(super) fn build(cfg: &TrainConfig, fit: &Dataset, device: Device) -> Result<Parts> {
    let shape = fit.images.shape();
    let euclidean = cfg.loss == "seed-contrastive";
    let card = ModelCard {
        format_version: crate::model::FORMAT_VERSION,
        encoder: EncoderSpec {
            arch: cfg.arch.clone(),
            in_channels: shape.channels as i64,
            height: shape.height as i64,
            width: shape.width as i64,
            embedding_dim: cfg.embedding_dim,
        },
        preprocess: Preprocess::fit(&fit.images),
        distance: if euclidean {
            Distance::Euclidean
        } else {
            Distance::Cosine
        },
        normalize: !euclidean,
        // Training shapes the head; `finish` switches to whitened features when asked.
        embedding: Embedding::Head,
        flip_average: Augment::parse(&cfg.augment, shape.channels as i64)?.flips(),
        classes: fit.classes.clone(),
        dataset: cfg.dataset.clone(),
        loss: cfg.loss.clone(),
        extra: Default::default(),
    };
    let model = Model::new(card, device)?;
    model.fit_to_data(&fit.images);
    let loss_vs = nn::VarStore::new(device);
    let loss_cfg: LossConfig = serde_json::from_value(serde_json::json!({
        "name": cfg.loss, "margin": cfg.margin, "miner": cfg.miner,
        "temperature": cfg.temperature, "label_smoothing": cfg.label_smoothing,
    }))
    .map_err(|e| LearnError::config(format!("loss options: {e}"), "see twinsim train --help"))?;
    let loss = losses::build(
        &loss_cfg,
        &loss_vs.root(),
        cfg.embedding_dim,
        fit.classes.len() as i64,
    )?;
    let miner = loss_cfg.build_miner()?;
    let mut params = named(&model.vs, "model.", true);
    params.extend(named(&loss_vs, "loss.", true));
    let optimizer = Optimizer::new(&cfg.optimizer, params, cfg.weight_decay)?;
    let ema = cfg.ema.map(|d| Ema::new(d, &named(&model.vs, "", false)));
    Ok(Parts {
        model,
        loss_vs,
        loss,
        miner,
        optimizer,
        ema,
    })
}

/// A VarStore's variables as (prefix + name, tensor), sorted by name so the
/// order never depends on hashing; `trainable` keeps only those with gradients.
pub(super) fn named(vs: &nn::VarStore, prefix: &str, trainable: bool) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| !trainable || t.requires_grad())
        .map(|(n, t)| (format!("{prefix}{n}"), t))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

pub(super) fn checkpoint_tensors(p: &Parts) -> Vec<(String, Tensor)> {
    let mut all = named(&p.model.vs, "model.", false);
    all.extend(named(&p.loss_vs, "loss.", false));
    all.extend(p.optimizer.state());
    if let Some(ema) = &p.ema {
        all.extend(ema.state());
    }
    all
}

/// Runs `f` with the weight average swapped into the model (when there is one).
pub(super) fn with_average<T>(p: &mut Parts, f: impl FnOnce(&mut Parts) -> T) -> T {
    let Some(ema) = &p.ema else {
        return f(p);
    };
    let live = named(&p.model.vs, "", false);
    let saved: Vec<Tensor> = live.iter().map(|(_, t)| t.detach().copy()).collect();
    copy_into(&live, ema.averaged().iter().map(|(_, t)| t));
    let out = f(p);
    copy_into(&live, saved.iter());
    out
}

fn copy_into<'a>(dst: &[(String, Tensor)], src: impl Iterator<Item = &'a Tensor>) {
    tch::no_grad(|| {
        for ((_, d), s) in dst.iter().zip(src) {
            d.shallow_clone().copy_(s);
        }
    });
}
