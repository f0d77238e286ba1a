//! AdamW, Adam and SGD written out over named tensors, so their state (moments,
//! momentum, step count) can be checkpointed and restored exactly.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use crate::error::{LearnError, Result};

/// Every optimizer name with a one-line description.
pub const OPTIMIZERS: &[(&str, &str)] = &[
    ("adamw", "Adam with decoupled weight decay (Loshchilov & Hutter)"),
    ("adam", "Adam with L2 weight decay added to the gradient"),
    ("sgd", "SGD with Nesterov momentum 0.9 and L2 weight decay"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    AdamW,
    Adam,
    Sgd,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
const MOMENTUM: f64 = 0.9;

/// An optimizer over named parameters. Weight decay applies to weight
/// matrices and kernels only, not to biases and normalisation scales (1-d
/// tensors), which decay would only pull towards zero for no gain.
#[derive(Debug)]
pub struct Optimizer {
    rule: Rule,
    params: Vec<(String, Tensor)>,
    /// Adam: first and second moments; SGD: the momentum buffer (second unused).
    moments: Vec<(Tensor, Tensor)>,
    weight_decay: f64,
    step: i64,
}

impl Optimizer {
    /// `name` is one of [`OPTIMIZERS`]; `params` are trainable tensors, named.
    pub fn new(name: &str, params: Vec<(String, Tensor)>, weight_decay: f64) -> Result<Optimizer> {
        let rule = match name {
            "adamw" => Rule::AdamW,
            "adam" => Rule::Adam,
            "sgd" => Rule::Sgd,
            other => {
                return Err(LearnError::config(
                    format!("unknown optimizer '{other}'"),
                    format!("use one of: {}", crate::registry::names(OPTIMIZERS)),
                ))
            }
        };
        let moments = params
            .iter()
            .map(|(_, p)| (p.zeros_like(), p.zeros_like()))
            .collect();
        Ok(Optimizer {
            rule,
            params,
            moments,
            weight_decay,
            step: 0,
        })
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Updates every parameter from its gradient, at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as f64;
        tch::no_grad(|| {
            for ((_, p), (m, v)) in self.params.iter_mut().zip(&mut self.moments) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let wd = if p.dim() > 1 { self.weight_decay } else { 0.0 };
                match self.rule {
                    Rule::AdamW => {
                        let _ = p.g_mul_scalar_(1.0 - lr * wd);
                        adam_update(p, m, v, &g, lr, t);
                    }
                    Rule::Adam => adam_update(p, m, v, &(&g + &*p * wd), lr, t),
                    Rule::Sgd => {
                        let g = &g + &*p * wd;
                        let _ = m.g_mul_scalar_(MOMENTUM).g_add_(&g);
                        let _ = p.g_sub_(&((g + &*m * MOMENTUM) * lr));
                    }
                }
            }
        });
    }

    /// Divides every gradient by `scale` (undoing loss scaling); returns
    /// whether all of them are finite.
    pub fn unscale(&mut self, scale: f64) -> bool {
        tch::no_grad(|| {
            self.params.iter().all(|(_, p)| {
                let mut g = p.grad();
                if !g.defined() {
                    return true;
                }
                let _ = g.g_div_scalar_(scale);
                all_finite(&g)
            })
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// The optimizer's state as named tensors, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("optimizer.step".to_string(), Tensor::from_slice(&[self.step]))];
        for ((name, _), (m, v)) in self.params.iter().zip(&self.moments) {
            out.push((format!("optimizer.m.{name}"), m.shallow_clone()));
            out.push((format!("optimizer.v.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Restores state written by [`Optimizer::state`]; every tensor must be there.
    pub fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let get = |key: &str| {
            saved.get(key).ok_or_else(|| {
                LearnError::config(
                    format!("checkpoint lacks {key}"),
                    "the checkpoint is from another run or version",
                )
            })
        };
        self.step = get("optimizer.step")?.int64_value(&[0]);
        for ((name, _), (m, v)) in self.params.iter().zip(&mut self.moments) {
            tch::no_grad(|| -> Result<()> {
                m.f_copy_(get(&format!("optimizer.m.{name}"))?)?;
                v.f_copy_(get(&format!("optimizer.v.{name}"))?)?;
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// One Adam step on `p` with moments `m`, `v` and gradient `g`, at step `t`.
fn adam_update(p: &mut Tensor, m: &mut Tensor, v: &mut Tensor, g: &Tensor, lr: f64, t: f64) {
    let _ = m.g_mul_scalar_(BETA1).g_add_(&(g * (1.0 - BETA1)));
    let _ = v.g_mul_scalar_(BETA2).g_add_(&(g.square() * (1.0 - BETA2)));
    let m_hat = &*m / (1.0 - BETA1.powf(t));
    let v_hat = &*v / (1.0 - BETA2.powf(t));
    let _ = p.g_sub_(&(m_hat / (v_hat.sqrt() + EPS) * lr));
}

/// Whether `t` holds only finite numbers.
pub fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().to_kind(Kind::Bool).int64_value(&[]) != 0
}
