//! LoRA: a trainable low-rank update `W + (alpha / r) * B A` beside each frozen
//! projection. A is `[r, in]` (random, PEFT's Kaiming-uniform bound 1/sqrt(in)),
//! B is `[out, r]` (zeros, so training starts from the base model exactly).
//! These are PEFT's orientations, which the GGUF adapter keeps (see `adapter`).

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use super::model::{Model, TARGETS};
use crate::llm::tiny::Rng;

/// Which projections get an adapter, its rank and alpha.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// llama.cpp tensor names without `blk.N.` and `.weight`: `attn_q`, ..., `ffn_down`.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> LoraConfig {
        LoraConfig {
            rank: 16,
            alpha: 32.0,
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
        }
    }
}

impl LoraConfig {
    /// An unknown target name, if any (config keys are checked before a run).
    pub fn unknown_target(&self) -> Option<&str> {
        self.targets
            .iter()
            .find(|t| !TARGETS.contains(&t.as_str()))
            .map(String::as_str)
    }
}

/// One adapted projection.
pub struct Pair {
    /// The base tensor's name, e.g. `blk.0.attn_q.weight`.
    pub base: String,
    pub a: Var,
    pub b: Var,
}

/// The adapter being trained.
pub struct Lora {
    pub config: LoraConfig,
    /// `slots[layer][target]`: index into `pairs`.
    slots: Vec<[Option<usize>; 7]>,
    pub pairs: Vec<Pair>,
    scale: f64,
}

impl Lora {
    /// A fresh adapter for `model`; `seed` fixes A's initial values.
    pub fn new(model: &Model, config: &LoraConfig, seed: u64) -> candle_core::Result<Lora> {
        let mut rng = Rng(seed ^ 0x5EED_10AA);
        let r = config.rank;
        let mut slots = Vec::new();
        let mut pairs = Vec::new();
        for l in 0..model.config.n_layer {
            let mut row = [None; 7];
            for (i, t) in TARGETS.iter().enumerate() {
                if !config.targets.iter().any(|x| x == t) {
                    continue;
                }
                let (out, inp) = model.weight(l, i).dims2()?;
                let bound = 1.0 / (inp as f32).sqrt();
                let a = Var::from_vec(rng.fill((r * inp) as u64, bound), (r, inp), &model.device)?;
                let b = Var::zeros((out, r), candle_core::DType::F32, &model.device)?;
                row[i] = Some(pairs.len());
                pairs.push(Pair {
                    base: format!("blk.{l}.{t}.weight"),
                    a,
                    b,
                });
            }
            slots.push(row);
        }
        Ok(Lora {
            config: config.clone(),
            slots,
            pairs,
            scale: config.alpha / r as f64,
        })
    }

    /// The adapter's output for projection `target` of `layer` on `x` (`[n, in]`).
    pub fn delta(
        &self,
        layer: usize,
        target: usize,
        x: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(i) = self.slots.get(layer).and_then(|s| s[target]) else {
            return Ok(None);
        };
        let p = &self.pairs[i];
        // Scaled at rank width (`[n, r]`), not on the `[n, out]` result: the
        // same update for a twelfth of the elementwise work or less.
        let xa = (x.matmul(&p.a.as_tensor().t()?)? * self.scale)?;
        Ok(Some(xa.matmul(&p.b.as_tensor().t()?)?))
    }

    /// Every trainable variable, A then B for each pair in order.
    pub fn vars(&self) -> Vec<&Var> {
        self.pairs.iter().flat_map(|p| [&p.a, &p.b]).collect()
    }

    /// Names as in the GGUF adapter: `<base>.lora_a`, `<base>.lora_b`, same order as [`Lora::vars`].
    pub fn names(&self) -> Vec<String> {
        self.pairs
            .iter()
            .flat_map(|p| [format!("{}.lora_a", p.base), format!("{}.lora_b", p.base)])
            .collect()
    }

    /// Trainable parameter count.
    pub fn parameters(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// The named tensors (for checkpoints).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.names()
            .into_iter()
            .zip(self.vars())
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect()
    }

    /// Put back tensors saved by [`Lora::tensors`].
    pub fn restore(&self, saved: &HashMap<String, Tensor>) -> Result<(), String> {
        for (name, var) in self.names().into_iter().zip(self.vars()) {
            let t = saved
                .get(&name)
                .ok_or_else(|| format!("the checkpoint has no {name}"))?;
            var.set(t).map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    }
}
