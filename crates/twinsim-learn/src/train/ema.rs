//! An exponential moving average of the weights, which is usually a better
//! model than the last weights of a noisy run.

use tch::Tensor;

/// Shadow copies of every variable (weights and normalisation statistics).
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    /// Starts the average at the current values of `vars`.
    pub fn new(decay: f64, vars: &[(String, Tensor)]) -> Ema {
        let shadow = vars.iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
        Ema { decay, shadow }
    }

    /// shadow ← decay·shadow + (1 − decay)·current, for every variable.
    pub fn update(&mut self, vars: &[(String, Tensor)]) {
        tch::no_grad(|| {
            for ((_, s), (_, v)) in self.shadow.iter_mut().zip(vars) {
                let _ = s.g_mul_scalar_(self.decay).g_add_(&(v * (1.0 - self.decay)));
            }
        });
    }

    /// The averaged values, named `ema.<variable>`, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.shadow
            .iter()
            .map(|(n, t)| (format!("ema.{n}"), t.shallow_clone()))
            .collect()
    }

    /// The averaged values under the variables' own names.
    pub fn averaged(&self) -> &[(String, Tensor)] {
        &self.shadow
    }
}
