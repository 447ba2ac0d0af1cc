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
        self.t += 1;
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let (m, v) = if var.device().is_cpu() {
                self.update_cpu(var, g, i, lr)?
            } else {
                self.update_ops(var, g, i, lr)?
            };
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    fn bias_corrections(&self) -> (f64, f64) {
        let c = &self.config;
        (
            1.0 - c.beta1.powi(self.t as i32),
            1.0 - c.beta2.powi(self.t as i32),
        )
    }

    /// One variable's update in a single loop over its values: on the CPU the
    /// dozen tensor ops of [`AdamW::update_ops`] for each of the ~400 small
    /// LoRA tensors cost more than the loop (each op allocates and dispatches).
    fn update_cpu(
        &self,
        var: &Var,
        g: &Tensor,
        i: usize,
        lr: f64,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let c = &self.config;
        let (bc1, bc2) = self.bias_corrections();
        let flat = |t: &Tensor| -> candle_core::Result<Vec<f32>> { t.flatten_all()?.to_vec1() };
        let (gs, mut ms, mut vs) = (flat(g)?, flat(&self.m[i])?, flat(&self.v[i])?);
        let mut theta = flat(var.as_tensor())?;
        let (b1, b2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
        let (bc1, bc2, lr32) = (bc1 as f32, bc2 as f32, lr as f32);
        let decay = (1.0 - lr * c.weight_decay) as f32;
        for (((th, g), m), v) in theta.iter_mut().zip(&gs).zip(&mut ms).zip(&mut vs) {
            *m = *m * b1 + g * (1.0 - b1);
            *v = *v * b2 + g * g * (1.0 - b2);
            let update = (*m / bc1) / ((*v / bc2).sqrt() + eps);
            *th = *th * decay - update * lr32;
        }
        let (shape, dev) = (var.shape().clone(), var.device().clone());
        var.set(&Tensor::from_vec(theta, shape.clone(), &dev)?)?;
        Ok((
            Tensor::from_vec(ms, shape.clone(), &dev)?,
            Tensor::from_vec(vs, shape, &dev)?,
        ))
    }

    /// The same update from tensor ops (on a GPU, where the values stay).
    fn update_ops(
        &self,
        var: &Var,
        g: &Tensor,
        i: usize,
        lr: f64,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let c = &self.config;
        let (bc1, bc2) = self.bias_corrections();
        let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
        let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
        let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
        let theta = var.as_tensor();
        let decayed = (theta * (1.0 - lr * c.weight_decay))?;
        var.set(&(decayed - (update * lr)?)?)?;
        Ok((m, v))
    }

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

    #[test]
    fn adamw_in_one_loop_matches_the_tensor_ops() {
        let d = Device::Cpu;
        let cfg = AdamWConfig {
            weight_decay: 0.1,
            ..AdamWConfig::default()
        };
        let init: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin()).collect();
        let (a, b) = (
            Var::from_vec(init.clone(), (3, 4), &d).unwrap(),
            Var::from_vec(init, (3, 4), &d).unwrap(),
        );
        let mut oa = AdamW::new(cfg.clone(), &[&a]).unwrap();
        let mut ob = AdamW::new(cfg, &[&b]).unwrap();
        for step in 0..3 {
            let g: Vec<f32> = (0..12).map(|i| ((i + step) as f32 * 1.3).cos()).collect();
            let g = Tensor::from_vec(g, (3, 4), &d).unwrap();
            oa.t += 1;
            let (m, v) = oa.update_cpu(&a, &g, 0, 0.01).unwrap();
            (oa.m[0], oa.v[0]) = (m, v);
            ob.t += 1;
            let (m, v) = ob.update_ops(&b, &g, 0, 0.01).unwrap();
            (ob.m[0], ob.v[0]) = (m, v);
        }
        let diff = (a.as_tensor() - b.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
    }
}
