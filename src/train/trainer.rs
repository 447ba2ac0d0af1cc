//! The training loop: batches in an order fixed by the seed and the step alone
//! (so a resumed run sees exactly the batches the uninterrupted one would),
//! masked next-token loss on the twin's own tokens, gradient accumulation,
//! clipping, AdamW on a warmup + cosine schedule, and a checkpoint every N steps
//! (adapter, optimizer moments, step, curve) written atomically into the run's
//! folder. `resume` picks the last checkpoint up and continues the same curve.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{D, DType, Tensor};
use serde::{Deserialize, Serialize};

use super::lora::{Lora, LoraConfig};
use super::model::Model;
use super::optim::{AdamW, AdamWConfig, clip_grad_norm, lr_at};
use super::{TrainError, kernels};
use crate::llm::tiny::Rng;
use crate::store::Sealer;

/// One tokenized example: `mask[i]` says whether token `i` is learned (predicted
/// from the tokens before it): the twin's own words and end-of-turn tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub mask: Vec<bool>,
    /// The conversation it came from (the split is by conversation).
    #[serde(default)]
    pub conversation: u64,
}

impl Example {
    /// Tokens the loss is taken on.
    pub fn learned(&self) -> usize {
        self.mask.iter().skip(1).filter(|m| **m).count()
    }
}

/// Everything that shapes a run (saved with it; a resume must match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub lora: LoraConfig,
    pub steps: u64,
    pub learning_rate: f64,
    pub warmup_steps: u64,
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub max_grad_norm: f64,
    pub seed: u64,
    pub checkpoint_every: u64,
    /// 0: validation only at the end.
    pub eval_every: u64,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            lora: LoraConfig::default(),
            steps: 200,
            learning_rate: 2e-4,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            weight_decay: 0.0,
            batch_size: 1,
            grad_accum: 4,
            max_grad_norm: 1.0,
            seed: 42,
            checkpoint_every: 25,
            eval_every: 25,
        }
    }
}

impl RunConfig {
    /// From `[train]`.
    pub fn from_config(c: &crate::config::TrainConfig) -> RunConfig {
        let pos = |v: i64| v.max(1) as u64;
        RunConfig {
            lora: LoraConfig {
                rank: c.rank.max(1) as usize,
                alpha: c.alpha,
                targets: c.targets.clone(),
            },
            steps: pos(c.steps),
            learning_rate: c.learning_rate,
            warmup_steps: c.warmup_steps.max(0) as u64,
            min_lr_ratio: c.min_lr_ratio,
            weight_decay: c.weight_decay,
            batch_size: pos(c.batch_size) as usize,
            grad_accum: pos(c.grad_accum) as usize,
            max_grad_norm: c.max_grad_norm,
            seed: c.seed.max(0) as u64,
            checkpoint_every: pos(c.checkpoint_every),
            eval_every: c.eval_every.max(0) as u64,
        }
    }
}

/// What one optimizer step measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based.
    pub step: u64,
    pub steps: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// Tokens through the model this step (padding excluded).
    pub tokens: u64,
    pub tokens_per_s: f64,
    pub val_loss: Option<f64>,
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub curve: Vec<StepMetrics>,
    /// The step the run started from (0, or the checkpoint's when resumed).
    pub resumed_from: u64,
    pub finished: bool,
    pub parameters: usize,
    pub tokens_per_s: f64,
    pub final_val_loss: Option<f64>,
}

/// The saved state of a run, beside `checkpoint.safetensors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    step: u64,
    /// The tensors file of this step, in the same folder.
    tensors: String,
    config: RunConfig,
    data_hash: String,
    curve: Vec<StepMetrics>,
}

const CKPT_META: &str = "checkpoint.json";

/// Whether `dir` holds a checkpoint to resume, and at which step.
pub fn checkpoint_step(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join(CKPT_META)).ok()?;
    let bytes = crate::store::crypt::open_file_any(&bytes).ok()?;
    serde_json::from_slice::<CheckpointMeta>(&bytes)
        .ok()
        .map(|m| m.step)
}

/// What the loop asks of its caller after each step.
pub enum Control {
    Continue,
    /// Stop now (cancel or pause); the last checkpoint is where a resume starts.
    Stop,
}

/// Train `lora` on `train` (validating on `val`) for `config.steps` steps,
/// checkpointing into `dir`. With `resume`, continue from `dir`'s checkpoint;
/// `data_hash` must match the one it was saved with.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Model,
    lora: &Lora,
    train: &[Example],
    val: &[Example],
    config: &RunConfig,
    data_hash: &str,
    dir: &Path,
    resume: bool,
    on_step: impl FnMut(&StepMetrics) -> Control,
) -> Result<Outcome, TrainError> {
    train_sealed(
        model,
        lora,
        train,
        val,
        config,
        data_hash,
        dir,
        resume,
        &Sealer::plain(),
        on_step,
    )
}

/// Held-out examples read for the validation loss while training.
pub const VALIDATION_EXAMPLES: usize = 64;

/// [`train`] with checkpoints sealed by `sealer` (an encrypted store's: the
/// LoRA weights and optimizer state never reach the disk in the clear).
#[allow(clippy::too_many_arguments)]
pub fn train_sealed(
    model: &Model,
    lora: &Lora,
    train: &[Example],
    val: &[Example],
    config: &RunConfig,
    data_hash: &str,
    dir: &Path,
    resume: bool,
    sealer: &Sealer,
    mut on_step: impl FnMut(&StepMetrics) -> Control,
) -> Result<Outcome, TrainError> {
    if train.is_empty() {
        return Err(TrainError::NoData);
    }
    let vars = lora.vars();
    let names = lora.names();
    let mut opt = AdamW::new(
        AdamWConfig {
            weight_decay: config.weight_decay,
            ..AdamWConfig::default()
        },
        &vars,
    )?;
    let mut curve = Vec::new();
    let mut start = 0;
    if resume {
        let meta = load_checkpoint(dir, lora, &mut opt, &names)?;
        if meta.config != *config {
            return Err(TrainError::Checkpoint {
                path: dir.join(CKPT_META),
                why: "it was made with other training settings; start a new run instead of --resume, or restore the settings".into(),
            });
        }
        if meta.data_hash != data_hash {
            return Err(TrainError::Checkpoint {
                path: dir.join(CKPT_META),
                why: format!(
                    "it was made on dataset {}, not {data_hash}; start a new run instead of --resume",
                    meta.data_hash
                ),
            });
        }
        start = meta.step;
        curve = meta.curve;
    }
    let resumed_from = start;
    let started = Instant::now();
    let mut tokens_total = 0u64;
    let mut finished = true;
    for step in start..config.steps {
        let t0 = Instant::now();
        let lr = lr_at(
            step,
            config.steps,
            config.warmup_steps,
            config.learning_rate,
            config.min_lr_ratio,
        );
        let mut grads: Option<Vec<Tensor>> = None;
        let mut loss_sum = 0.0;
        let mut tokens = 0u64;
        for micro in 0..config.grad_accum {
            let batch = batch_indices(train.len(), config, step, micro);
            let examples: Vec<&Example> = batch.iter().map(|&i| &train[i]).collect();
            let (loss, n) = loss_of(model, Some(lora), &examples)?;
            tokens += n;
            loss_sum += f64::from(loss.to_scalar::<f32>()?);
            let store = (loss / config.grad_accum as f64)?.backward()?;
            let g: Vec<Tensor> = vars
                .iter()
                .map(|v| {
                    store
                        .get(v.as_tensor())
                        .cloned()
                        .map_or_else(|| v.as_tensor().zeros_like(), Ok)
                })
                .collect::<Result<_, _>>()?;
            grads = Some(match grads {
                None => g,
                Some(acc) => acc
                    .iter()
                    .zip(&g)
                    .map(|(a, b)| a + b)
                    .collect::<Result<_, _>>()?,
            });
        }
        let mut grads = grads.expect("grad_accum >= 1");
        let grad_norm = clip_grad_norm(&mut grads, config.max_grad_norm)?;
        opt.step(&vars, &grads, lr)?;
        tokens_total += tokens;
        let done = step + 1;
        // The validation loss during training reads at most the first
        // VALIDATION_EXAMPLES held-out examples (the same ones every time):
        // the whole held-out set of years of messages is hundreds of forward
        // passes, minutes on a CPU for each evaluation. `twin eval` scores
        // the held-out set in full.
        let val = &val[..val.len().min(VALIDATION_EXAMPLES)];
        let val_loss = if !val.is_empty()
            && (done == config.steps || (config.eval_every > 0 && done % config.eval_every == 0))
        {
            Some(evaluate(model, Some(lora), val, config.batch_size)?)
        } else {
            None
        };
        let m = StepMetrics {
            step: done,
            steps: config.steps,
            loss: loss_sum / config.grad_accum as f64,
            lr,
            grad_norm,
            tokens,
            tokens_per_s: tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            val_loss,
        };
        curve.push(m.clone());
        if done % config.checkpoint_every == 0 || done == config.steps {
            save_checkpoint(dir, lora, &opt, &names, config, data_hash, &curve, sealer)?;
        }
        if let Control::Stop = on_step(&m) {
            finished = done == config.steps;
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Outcome {
        final_val_loss: curve.iter().rev().find_map(|m| m.val_loss),
        curve,
        resumed_from,
        finished,
        parameters: lora.parameters(),
        tokens_per_s: tokens_total as f64 / secs,
    })
}

/// The examples of micro-batch `micro` of `step`: epoch by epoch, each epoch a
/// permutation drawn from the seed and the epoch number.
fn batch_indices(n: usize, config: &RunConfig, step: u64, micro: usize) -> Vec<usize> {
    let per_step = (config.batch_size * config.grad_accum) as u64;
    let first = step * per_step + (micro * config.batch_size) as u64;
    let mut perms: HashMap<u64, Vec<usize>> = HashMap::new();
    (first..first + config.batch_size as u64)
        .map(|k| {
            let epoch = k / n as u64;
            let perm = perms
                .entry(epoch)
                .or_insert_with(|| permutation(n, config.seed, epoch));
            perm[(k % n as u64) as usize]
        })
        .collect()
}

fn permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9).wrapping_add(epoch));
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// Mean masked next-token loss over `examples` (padded to the longest), and the
/// number of real tokens.
pub fn loss_of(
    model: &Model,
    lora: Option<&Lora>,
    examples: &[&Example],
) -> Result<(Tensor, u64), TrainError> {
    let len = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(0);
    if len < 2 {
        return Err(TrainError::NoData);
    }
    let b = examples.len();
    let mut ids = Vec::with_capacity(b * len);
    let mut targets = Vec::with_capacity(b * (len - 1));
    let mut weights = Vec::with_capacity(b * (len - 1));
    let mut real = 0u64;
    for e in examples {
        real += e.tokens.len() as u64;
        for i in 0..len {
            ids.push(e.tokens.get(i).copied().unwrap_or(0));
        }
        for i in 1..len {
            targets.push(e.tokens.get(i).copied().unwrap_or(0));
            weights.push(if e.mask.get(i).copied().unwrap_or(false) {
                1f32
            } else {
                0.0
            });
        }
    }
    let learned: f32 = weights.iter().sum();
    if learned == 0.0 {
        return Err(TrainError::NoData);
    }
    let dev = &model.device;
    let ids = Tensor::from_vec(ids, (b, len), dev)?;
    if !model.reference_ops() {
        // Logits only where the loss is taken: the position before each learned
        // token (row `e * len + i - 1` of the batch's positions).
        let (rows, picked): (Vec<u32>, Vec<u32>) = weights
            .iter()
            .zip(&targets)
            .enumerate()
            .filter(|(_, (w, _))| **w > 0.0)
            .map(|(k, (_, t))| ((k / (len - 1) * len + k % (len - 1)) as u32, *t))
            .unzip();
        let n = rows.len();
        let logits = model.logits_at(&ids, lora, &Tensor::from_vec(rows, n, dev)?)?;
        let loss = (kernels::cross_entropy(&logits, &picked)?.sum_all()? / f64::from(learned))?;
        return Ok((loss, real));
    }
    let logits = model.forward(&ids, lora)?;
    let logits = logits.narrow(1, 0, len - 1)?.reshape((b * (len - 1), ()))?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let targets = Tensor::from_vec(targets, (b * (len - 1), 1), dev)?;
    let picked = logp.gather(&targets, 1)?.squeeze(1)?;
    let w = Tensor::from_vec(weights, b * (len - 1), dev)?.to_dtype(DType::F32)?;
    let loss = ((picked * w)?.sum_all()? * (-1.0 / f64::from(learned)))?;
    Ok((loss, real))
}

/// Mean loss over `examples` without gradients.
pub fn evaluate(
    model: &Model,
    lora: Option<&Lora>,
    examples: &[Example],
    batch: usize,
) -> Result<f64, TrainError> {
    let mut total = 0.0;
    let mut weight = 0.0;
    for chunk in examples.chunks(batch.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let n: usize = chunk.iter().map(Example::learned).sum();
        if n == 0 {
            continue;
        }
        let (loss, _) = loss_of(model, lora, &refs)?;
        total += f64::from(loss.detach().to_scalar::<f32>()?) * n as f64;
        weight += n as f64;
    }
    Ok(if weight > 0.0 { total / weight } else { 0.0 })
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    dir: &Path,
    lora: &Lora,
    opt: &AdamW,
    names: &[String],
    config: &RunConfig,
    data_hash: &str,
    curve: &[StepMetrics],
    sealer: &Sealer,
) -> Result<(), TrainError> {
    let sealed = |path: PathBuf| {
        move |e: crate::store::StoreError| TrainError::Io {
            path,
            source: std::io::Error::other(e.to_string()),
        }
    };
    let mut tensors = lora.tensors();
    tensors.extend(opt.state(names));
    let step = curve.last().map_or(0, |m| m.step);
    let name = format!("checkpoint-{step}.safetensors");
    let bytes = safetensors::serialize(tensors.iter(), None).map_err(|e| TrainError::Io {
        path: dir.join(&name),
        source: std::io::Error::other(e.to_string()),
    })?;
    // Written beside and renamed (Sealer::write), so a kill leaves no half file.
    sealer
        .write(&dir.join(&name), &bytes)
        .map_err(sealed(dir.join(&name)))?;
    let meta = CheckpointMeta {
        step,
        tensors: name.clone(),
        config: config.clone(),
        data_hash: data_hash.to_string(),
        curve: curve.to_vec(),
    };
    // The meta names its own tensors file, so a kill at any moment leaves a
    // consistent pair; older tensors go once the new meta is in place.
    sealer
        .write(
            &dir.join(CKPT_META),
            &serde_json::to_vec_pretty(&meta).expect("checkpoint meta serializes"),
        )
        .map_err(sealed(dir.join(CKPT_META)))?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("checkpoint-") && n != name {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

fn load_checkpoint(
    dir: &Path,
    lora: &Lora,
    opt: &mut AdamW,
    names: &[String],
) -> Result<CheckpointMeta, TrainError> {
    let meta_path = dir.join(CKPT_META);
    let bad = |why: String| TrainError::Checkpoint {
        path: meta_path.clone(),
        why,
    };
    let open = |path: &Path| -> Result<Vec<u8>, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        crate::store::crypt::open_file_any(&bytes).map_err(|e| e.to_string())
    };
    let text = open(&meta_path).map_err(|e| {
        bad(format!(
            "cannot read it ({e}); run without --resume to start over"
        ))
    })?;
    let meta: CheckpointMeta =
        serde_json::from_slice(&text).map_err(|e| bad(format!("it is damaged ({e})")))?;
    let bytes = open(&dir.join(&meta.tensors))
        .map_err(|e| bad(format!("its tensors cannot be read ({e})")))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &lora_device(lora))
        .map_err(|e| bad(format!("its tensors cannot be read ({e})")))?;
    lora.restore(&tensors).map_err(&bad)?;
    let step_stored = meta.curve.last().map_or(0, |m| m.step);
    if step_stored != meta.step {
        return Err(bad("its curve and step disagree".into()));
    }
    opt.restore(names, &tensors, meta.step).map_err(bad)?;
    Ok(meta)
}

fn lora_device(lora: &Lora) -> candle_core::Device {
    lora.vars()
        .first()
        .map_or(candle_core::Device::Cpu, |v| v.device().clone())
}
