//! AdamW with decoupled weight decay, a cosine schedule with linear warmup, and
//! clipping by global norm. Written here rather than taken from candle-nn because
//! a resumed run needs the moments back exactly (candle's `AdamW` keeps them private).

use std::collections::HashMap;

use candle_core::{Tensor, Var};

/// AdamW's constants.
#[derive(Debug, Clone)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> AdamWConfig {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

pub struct AdamW {
    pub config: AdamWConfig,
    /// Updates applied so far.
    pub t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(config: AdamWConfig, vars: &[&Var]) -> candle_core::Result<AdamW> {
        let zeros = || -> candle_core::Result<Vec<Tensor>> {
            vars.iter().map(|v| v.as_tensor().zeros_like()).collect()
        };
        Ok(AdamW {
            config,
            t: 0,
            m: zeros()?,
            v: zeros()?,
        })
    }

    /// One update of every variable with its gradient, at learning rate `lr`.
    pub fn step(&mut self, vars: &[&Var], grads: &[Tensor], lr: f64) -> candle_core::Result<()> {
        let c = &self.config;
        self.t += 1;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let theta = var.as_tensor();
            let decayed = (theta * (1.0 - lr * c.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments, named after the variables (for checkpoints).
    pub fn state(&self, names: &[String]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            out.insert(format!("adam.m.{n}"), self.m[i].clone());
            out.insert(format!("adam.v.{n}"), self.v[i].clone());
        }
        out
    }

    /// Put back moments saved by [`AdamW::state`] after `t` updates.
    pub fn restore(
        &mut self,
        names: &[String],
        saved: &HashMap<String, Tensor>,
        t: u64,
    ) -> Result<(), String> {
        for (i, n) in names.iter().enumerate() {
            let get = |k: String| {
                saved
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| format!("the checkpoint has no {k}"))
            };
            self.m[i] = get(format!("adam.m.{n}"))?;
            self.v[i] = get(format!("adam.v.{n}"))?;
        }
        self.t = t;
        Ok(())
    }
}

/// Learning rate at update `step` (0-based) of `total`: linear warmup to `peak`,
/// then a cosine down to `peak * min_ratio`.
pub fn lr_at(step: u64, total: u64, warmup: u64, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let min = peak * min_ratio;
    min + 0.5 * (peak - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// The global L2 norm of `grads`; when above `max` (and `max > 0`) they are
/// scaled down to it. Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max: f64) -> candle_core::Result<f64> {
    let mut sq = 0.0f64;
    for g in grads.iter() {
        sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let norm = sq.sqrt();
    if max > 0.0 && norm > max {
        let s = max / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * s)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_schedule_warms_up_then_decays_to_the_floor() {
        let lr = |s| lr_at(s, 100, 10, 1e-3, 0.1);
        assert!((lr(0) - 1e-4).abs() < 1e-12);
        assert!((lr(9) - 1e-3).abs() < 1e-12);
        assert!((lr(10) - 1e-3).abs() < 1e-12);
        assert!(lr(50) < lr(20));
        assert!((lr(100) - 1e-4).abs() < 1e-12);
        assert!((lr(500) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn clipping_scales_to_the_limit_and_reports_the_norm() {
        let d = Device::Cpu;
        let mut g = vec![
            Tensor::new(&[3f32, 0.0], &d).unwrap(),
            Tensor::new(&[4f32], &d).unwrap(),
        ];
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-6);
        let n2 = clip_grad_norm(&mut g, 0.0).unwrap();
        assert!((n2 - 1.0).abs() < 1e-4, "{n2}");
    }

    #[test]
    fn adamw_moves_against_the_gradient() {
        let d = Device::Cpu;
        let v = Var::new(&[1f32, -1.0], &d).unwrap();
        let mut opt = AdamW::new(AdamWConfig::default(), &[&v]).unwrap();
        let g = Tensor::new(&[0.5f32, -0.5], &d).unwrap();
        opt.step(&[&v], &[g], 0.1).unwrap();
        let x: Vec<f32> = v.as_tensor().to_vec1().unwrap();
        // The first Adam step moves each weight by about lr against its gradient's sign.
        assert!(
            (x[0] - 0.9).abs() < 1e-4 && (x[1] + 0.9).abs() < 1e-4,
            "{x:?}"
        );
    }
}
