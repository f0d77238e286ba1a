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
///
/// All parameters live in one flat buffer, each a view of its own span (in
/// its own memory layout), and so do their gradients once the first
/// backward pass has made them; moments are flat too. An update is then a
/// handful of operations on whole buffers rather than a handful per
/// parameter: on a GPU each operation costs the host a kernel launch, and
/// per-parameter updates kept the device waiting on the host
/// (docs/benchmarks.md, "GPU").
#[derive(Debug)]
pub struct Optimizer {
    rule: Rule,
    names: Vec<String>,
    params: Vec<Tensor>,
    /// Where each parameter's values sit in the flat buffers.
    spans: Vec<Span>,
    /// Every parameter's values, (N,).
    flat: Tensor,
    /// Every parameter's gradient, (N,); bound to the parameters' own
    /// gradients at the first update ([`Optimizer::bind_gradients`]).
    grads: Tensor,
    bound: bool,
    /// Adam: first and second moments; SGD: the momentum buffer (second unused).
    m: Tensor,
    v: Tensor,
    /// The weight decay of each element, (N,): 0 for 1-d parameters.
    decay: Tensor,
    step: i64,
}

/// A parameter's shape, strides and offset in the flat buffers.
#[derive(Debug, Clone)]
struct Span {
    size: Vec<i64>,
    stride: Vec<i64>,
    offset: i64,
}

impl Span {
    /// The parameter's view of `flat`.
    fn of(&self, flat: &Tensor) -> Tensor {
        flat.as_strided(self.size.as_slice(), self.stride.as_slice(), self.offset)
    }
}

impl Optimizer {
    /// `name` is one of [`OPTIMIZERS`]; `params` are trainable tensors,
    /// named, all on one device. Each parameter is moved into the
    /// optimizer's flat buffer (its values kept).
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
        let device = params.first().map_or(tch::Device::Cpu, |(_, p)| p.device());
        let mut spans = Vec::with_capacity(params.len());
        let mut decays = Vec::with_capacity(params.len());
        let mut offset = 0;
        for (_, p) in &params {
            let span = Span {
                size: p.size(),
                stride: dense_strides(p),
                offset,
            };
            offset += p.numel() as i64;
            let wd = if p.dim() > 1 { weight_decay } else { 0.0 };
            decays.push(Tensor::full([p.numel() as i64], wd, (Kind::Float, device)));
            spans.push(span);
        }
        let flat = Tensor::zeros([offset], (Kind::Float, device));
        let (names, mut params): (Vec<String>, Vec<Tensor>) = params.into_iter().unzip();
        tch::no_grad(|| {
            for (p, span) in params.iter_mut().zip(&spans) {
                let view = span.of(&flat);
                view.shallow_clone().copy_(p);
                p.set_data(&view);
            }
        });
        let decay = if decays.is_empty() {
            flat.zeros_like()
        } else {
            Tensor::cat(&decays, 0)
        };
        Ok(Optimizer {
            rule,
            names,
            params,
            spans,
            grads: flat.zeros_like(),
            bound: false,
            m: flat.zeros_like(),
            v: flat.zeros_like(),
            decay,
            flat,
            step: 0,
        })
    }

    /// Makes every parameter's gradient a view of the flat gradient buffer,
    /// once they exist: backward passes then add into the buffer in place.
    fn bind_gradients(&mut self) {
        if self.bound {
            return;
        }
        tch::no_grad(|| {
            for (p, span) in self.params.iter().zip(&self.spans) {
                let mut g = p.grad();
                if g.defined() {
                    let view = span.of(&self.grads);
                    view.shallow_clone().copy_(&g);
                    g.set_data(&view);
                }
            }
        });
        self.bound = self.params.iter().all(|p| p.grad().defined());
    }

    /// The gradients of the parameters whose names start with `prefix`, as
    /// one view of the flat gradient buffer (they lie side by side, as
    /// parameters come sorted by name): what data-parallel ranks sum.
    pub fn gradients(&mut self, prefix: &str) -> Tensor {
        self.bind_gradients();
        let mine: Vec<&Span> = self
            .names
            .iter()
            .zip(&self.spans)
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, s)| s)
            .collect();
        let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
            return self.grads.narrow(0, 0, 0);
        };
        let end = last.offset + last.size.iter().product::<i64>();
        self.grads.narrow(0, first.offset, end - first.offset)
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&mut self) {
        if self.bound {
            let _ = self.grads.zero_();
            return;
        }
        for p in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Updates every parameter from its gradient, at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.bind_gradients();
        self.step += 1;
        let t = self.step as f64;
        let (p, m, v, g) = (&mut self.flat, &mut self.m, &mut self.v, &self.grads);
        tch::no_grad(|| match self.rule {
            Rule::AdamW => {
                // p·(1 − lr·wd) with the factor rounded once from double,
                // as a per-parameter scalar multiply rounds it.
                let shrink = (self.decay.to_kind(Kind::Double) * -lr + 1.0).to_kind(Kind::Float);
                let _ = p.g_mul_(&shrink);
                adam_update(p, m, v, g, lr, t);
            }
            Rule::Adam => adam_update(p, m, v, &(g + &*p * &self.decay), lr, t),
            Rule::Sgd => {
                let g = g + &*p * &self.decay;
                let _ = m.g_mul_scalar_(MOMENTUM).g_add_(&g);
                let _ = p.g_sub_(&((g + &*m * MOMENTUM) * lr));
            }
        });
    }

    /// Divides every gradient by `scale` (undoing loss scaling); returns
    /// whether all of them are finite.
    pub fn unscale(&mut self, scale: f64) -> bool {
        self.bind_gradients();
        tch::no_grad(|| {
            let _ = self.grads.g_div_scalar_(scale);
        });
        all_finite(&self.grads)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// The optimizer's state as named tensors, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("optimizer.step".to_string(), Tensor::from_slice(&[self.step]))];
        for (name, span) in self.names.iter().zip(&self.spans) {
            out.push((format!("optimizer.m.{name}"), span.of(&self.m)));
            out.push((format!("optimizer.v.{name}"), span.of(&self.v)));
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
        for (name, span) in self.names.iter().zip(&self.spans) {
            tch::no_grad(|| -> Result<()> {
                span.of(&self.m).f_copy_(get(&format!("optimizer.m.{name}"))?)?;
                span.of(&self.v).f_copy_(get(&format!("optimizer.v.{name}"))?)?;
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// `p`'s strides when it is dense (its elements fill exactly `numel`
/// consecutive places, in whatever order: NCHW or channels-last), else
/// the contiguous strides of its shape.
fn dense_strides(p: &Tensor) -> Vec<i64> {
    let (size, stride) = (p.size(), p.stride());
    let reach: i64 = 1 + size
        .iter()
        .zip(&stride)
        .map(|(n, s)| (n - 1).max(0) * s)
        .sum::<i64>();
    let distinct = {
        let mut order: Vec<usize> = (0..size.len()).filter(|&i| size[i] > 1).collect();
        order.sort_by_key(|&i| stride[i]);
        let mut expect = 1;
        order.iter().all(|&i| {
            let ok = stride[i] == expect;
            expect *= size[i];
            ok
        })
    };
    if reach == p.numel() as i64 && distinct {
        return stride;
    }
    let mut contiguous = vec![1; size.len()];
    for i in (0..size.len().saturating_sub(1)).rev() {
        contiguous[i] = contiguous[i + 1] * size[i + 1];
    }
    contiguous
}

/// One Adam step on `p` with moments `m`, `v` and gradient `g`, at step `t`:
/// m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², p ← p − lr·m̂/(√v̂ + ε).
///
/// Written as the textbook per-parameter operations, in their order:
/// elementwise, so on the flat buffers they round exactly as they would per
/// parameter. Fused forms (lerp, addcdiv) round differently, and on MNIST's
/// default recipe their trajectories ended lower (docs/benchmarks.md,
/// "Speed").
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
