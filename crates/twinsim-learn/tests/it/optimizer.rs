//! The optimizer keeps every parameter in one flat buffer: its updates must
//! equal the textbook per-parameter rules bit for bit, reach the model's own tensors
//! (channels-last kernels included), and survive a checkpoint.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};
use twinsim_learn::train::optimizer::Optimizer;

const LR: f64 = 0.01;
const WD: f64 = 0.1;

/// Fixed values without the global generator, which tests running in
/// parallel would share.
fn values(n: i64, phase: f64) -> Tensor {
    (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 1.7 + phase).sin()
}

/// A channels-last kernel (weight-decayed) and a bias (not), as leaves.
fn params() -> Vec<(String, Tensor)> {
    let kernel = values(48, 0.3)
        .view([4, 3, 2, 2])
        .permute([0, 2, 3, 1])
        .contiguous()
        .permute([0, 3, 1, 2])
        .set_requires_grad(true);
    assert_eq!(kernel.stride(), [12, 1, 6, 3], "the kernel is channels-last");
    let bias = values(4, 1.1).set_requires_grad(true);
    vec![("kernel".into(), kernel), ("bias".into(), bias)]
}

/// A loss with gradients that differ per element and per step.
fn backward(params: &[(String, Tensor)], step: i64) {
    let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
    for (i, (_, p)) in params.iter().enumerate() {
        let target = Tensor::arange(p.numel() as i64, (Kind::Float, Device::Cpu)).view(p.size().as_slice())
            * (0.1 * (i as f64 + 1.0))
            - step as f64;
        loss += (p - target).square().sum(Kind::Float) * 0.5;
    }
    loss.backward();
}

/// The rules written out per parameter, as before the flat buffers.
fn reference(rule: &str, values: &[Tensor], grads_per_step: &[Vec<Tensor>]) -> Vec<Tensor> {
    let mut p: Vec<Tensor> = values.iter().map(|t| t.detach().copy()).collect();
    let mut m: Vec<Tensor> = p.iter().map(Tensor::zeros_like).collect();
    let mut v: Vec<Tensor> = p.iter().map(Tensor::zeros_like).collect();
    for (t, grads) in grads_per_step.iter().enumerate() {
        let t = (t + 1) as f64;
        for i in 0..p.len() {
            let wd = if p[i].dim() > 1 { WD } else { 0.0 };
            let mut g = grads[i].copy();
            if rule == "adamw" {
                p[i] = &p[i] * (1.0 - LR * wd);
            } else {
                g += &p[i] * wd;
            }
            if rule == "sgd" {
                m[i] = &m[i] * 0.9 + &g;
                p[i] = &p[i] - (&g + &m[i] * 0.9) * LR;
                continue;
            }
            m[i] = &m[i] * 0.9 + &g * 0.1;
            v[i] = &v[i] * 0.999 + g.square() * 0.001;
            let m_hat = &m[i] / (1.0 - 0.9f64.powf(t));
            let v_hat = &v[i] / (1.0 - 0.999f64.powf(t));
            p[i] = &p[i] - m_hat / (v_hat.sqrt() + 1e-8) * LR;
        }
    }
    p
}

#[test]
fn flat_updates_equal_the_per_parameter_rules_and_reach_the_model() {
    for rule in ["adamw", "adam", "sgd"] {
        let params = params();
        let start: Vec<Tensor> = params.iter().map(|(_, p)| p.detach().copy()).collect();
        // The model's own handles, which the optimizer must keep updating.
        let handles: Vec<Tensor> = params.iter().map(|(_, p)| p.shallow_clone()).collect();
        let mut opt = Optimizer::new(rule, params, WD).unwrap();
        let mut grads = Vec::new();
        for step in 0..3 {
            opt.zero_grad();
            let named: Vec<(String, Tensor)> = handles
                .iter()
                .map(|h| (String::new(), h.shallow_clone()))
                .collect();
            backward(&named, step);
            grads.push(handles.iter().map(|h| h.grad().copy()).collect());
            opt.step(LR);
        }
        // Bit for bit: an update that rounds otherwise sends training along
        // another path (it cost MNIST's default recipe its last 0.001).
        let expected = reference(rule, &start, &grads);
        for (h, e) in handles.iter().zip(&expected) {
            assert!(h.equal(e), "{rule}: {h} != {e}");
        }
        assert_eq!(handles[0].stride(), [12, 1, 6, 3], "{rule}: layout kept");
        assert_eq!(opt.steps(), 3);
    }
}

#[test]
fn a_restored_state_continues_exactly() {
    let run = |restore: bool| -> Vec<Tensor> {
        let params = params();
        let handles: Vec<Tensor> = params.iter().map(|(_, p)| p.shallow_clone()).collect();
        let mut opt = Optimizer::new("adamw", params, WD).unwrap();
        let named = || -> Vec<(String, Tensor)> {
            handles
                .iter()
                .map(|h| (String::new(), h.shallow_clone()))
                .collect()
        };
        for step in 0..2 {
            opt.zero_grad();
            backward(&named(), step);
            opt.step(LR);
        }
        if restore {
            // A fresh optimizer over the same values, given the saved state.
            let saved: HashMap<String, Tensor> =
                opt.state().into_iter().map(|(n, t)| (n, t.copy())).collect();
            let values: Vec<(String, Tensor)> = ["kernel", "bias"]
                .iter()
                .zip(&handles)
                .map(|(n, h)| (n.to_string(), h.shallow_clone()))
                .collect();
            opt = Optimizer::new("adamw", values, WD).unwrap();
            opt.load_state(&saved).unwrap();
        }
        opt.zero_grad();
        backward(&named(), 2);
        opt.step(LR);
        handles.iter().map(|h| h.detach().copy()).collect()
    };
    let (straight, restored) = (run(false), run(true));
    for (a, b) in straight.iter().zip(&restored) {
        assert!(a.allclose(b, 1e-6, 1e-7, false), "{a} != {b}");
    }
}
