//! SGD with momentum and weight decay, and learning-rate schedules.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::Optimizer;

/// Settings of [`Sgd`]; the defaults are InsightFace's (lr 0.1, momentum 0.9, wd 5e-4).
#[derive(Clone, Debug, PartialEq)]
pub struct SgdParams {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for SgdParams {
    fn default() -> Self {
        SgdParams { lr: 0.1, momentum: 0.9, weight_decay: 5e-4, nesterov: false }
    }
}

/// SGD with momentum in PyTorch's form (candle-nn's `SGD` has no momentum):
/// `g = ∇ + wd·p; b = g` on the first step, `b = μ b + g` after; `p -= lr·(nesterov ? g + μ b : b)`.
#[derive(Debug)]
pub struct Sgd {
    vars: Vec<Var>,
    buffers: Vec<Option<Tensor>>,
    params: SgdParams,
}

impl Optimizer for Sgd {
    type Config = SgdParams;

    fn new(vars: Vec<Var>, params: SgdParams) -> candle_core::Result<Self> {
        let named = [("lr", params.lr), ("momentum", params.momentum), ("weight_decay", params.weight_decay)];
        for (what, v) in named {
            if !(v.is_finite() && v >= 0.0) {
                candle_core::bail!("SGD {what} = {v} must be finite and >= 0");
            }
        }
        if params.nesterov && params.momentum == 0.0 {
            candle_core::bail!("SGD nesterov needs momentum > 0");
        }
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        let buffers = vec![None; vars.len()];
        Ok(Sgd { vars, buffers, params })
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let SgdParams { lr, momentum, weight_decay, nesterov } = self.params;
        for (var, buf) in self.vars.iter().zip(self.buffers.iter_mut()) {
            let Some(grad) = grads.get(var) else { continue };
            let mut g = grad.detach();
            if weight_decay != 0.0 {
                g = (g + (var.as_tensor().detach() * weight_decay)?)?;
            }
            let update = if momentum != 0.0 {
                // Detached so that no step keeps the previous step's graph alive.
                let b = match buf.take() {
                    None => g.clone(),
                    Some(b) => ((b * momentum)? + &g)?,
                }
                .detach();
                *buf = Some(b.clone());
                if nesterov {
                    (g + (b * momentum)?)?
                } else {
                    b
                }
            } else {
                g
            };
            var.set(&var.as_tensor().detach().sub(&(update * lr)?)?)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

/// How the learning rate moves from its base value over a run.
#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    Constant,
    /// Multiply by `gamma` at the start of each listed epoch (0-based), like PyTorch `MultiStepLR`.
    Step {
        milestones: Vec<usize>,
        gamma: f64,
    },
    /// Half-cosine from the base rate down to `min_lr`, per step, reaching `min_lr` after the
    /// last step.
    Cosine {
        min_lr: f64,
    },
}

impl LrSchedule {
    /// Learning rate for 0-based `step` of a run of `total_steps` with `steps_per_epoch` steps
    /// per epoch.
    pub fn lr(&self, base: f64, step: usize, steps_per_epoch: usize, total_steps: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Step { milestones, gamma } => {
                let epoch = step / steps_per_epoch.max(1);
                let passed = milestones.iter().filter(|&&m| m <= epoch).count();
                base * gamma.powi(passed as i32)
            }
            LrSchedule::Cosine { min_lr } => {
                let t = step as f64 / total_steps.max(1) as f64;
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Two steps on `f(p) = Σ c·p` (constant gradient c) against the update written out by hand.
    #[test]
    fn sgd_matches_pytorch_momentum_update() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let p0 = [1.0f64, -2.0];
        let c = [0.5f64, 3.0];
        let (lr, mu, wd) = (0.1, 0.9, 0.01);
        for nesterov in [false, true] {
            let var = Var::from_tensor(&Tensor::new(&p0, &dev)?)?;
            let params = SgdParams { lr, momentum: mu, weight_decay: wd, nesterov };
            let mut opt = Sgd::new(vec![var.clone()], params)?;
            let ct = Tensor::new(&c, &dev)?;
            let mut p = p0;
            let mut b = [0.0f64; 2];
            for step in 0..2 {
                let loss = (var.as_tensor() * &ct)?.sum_all()?;
                opt.backward_step(&loss)?;
                for i in 0..2 {
                    let g = c[i] + wd * p[i];
                    b[i] = if step == 0 { g } else { mu * b[i] + g };
                    let d = if nesterov { g + mu * b[i] } else { b[i] };
                    p[i] -= lr * d;
                }
                let got = var.as_tensor().to_vec1::<f64>()?;
                for i in 0..2 {
                    assert!((got[i] - p[i]).abs() < 1e-14, "nesterov={nesterov} step {step}: {got:?} vs {p:?}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn sgd_rejects_bad_settings() {
        let p = SgdParams { lr: -1.0, ..SgdParams::default() };
        assert!(Sgd::new(vec![], p).is_err());
        let p = SgdParams { momentum: 0.0, nesterov: true, ..SgdParams::default() };
        assert!(Sgd::new(vec![], p).is_err());
    }

    #[test]
    fn schedules_give_the_expected_rates() {
        let s = LrSchedule::Step { milestones: vec![2, 4], gamma: 0.1 };
        let lrs: Vec<f64> = (0..6).map(|e| s.lr(1.0, e * 10, 10, 60)).collect();
        let want = [1.0, 1.0, 0.1, 0.1, 0.01, 0.01];
        for (a, b) in lrs.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{lrs:?}");
        }
        let c = LrSchedule::Cosine { min_lr: 0.0 };
        assert_eq!(c.lr(0.4, 0, 10, 100), 0.4);
        assert!((c.lr(0.4, 50, 10, 100) - 0.2).abs() < 1e-12);
        assert!(c.lr(0.4, 100, 10, 100).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.lr(0.3, 77, 10, 100), 0.3);
    }
}
