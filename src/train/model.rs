//! The base model's forward pass in candle, for training.
//!
//! The GGUF is read with candle's own reader and every frozen weight is
//! dequantized to f32 (on CPU; the CUDA build keeps them on the GPU). The pass is
//! built only from ops that pass gradients: candle's fused `rms_norm`,
//! `softmax_last_dim`, `rope` and quantized matmul pass none (see
//! `../shared/notes/lora-training-facts.md`): attention is a plain matmul, and
//! the frozen projections, RMS norms, rope, the attention softmax and the loss
//! go through twin's own kernels with a hand-written backward
//! (`super::kernels`, held to candle's plain ops by the tests).
//!
//! One decoder serves every supported architecture, with switches where they
//! differ from llama (each as llama.cpp's graph for it does, `src/models/*.cpp`):
//! - llama (SmolLM2): rope on adjacent pairs (`rope_i`), SiLU-gated FFN;
//! - qwen2: rope on halves (NEOX), q/k/v biases;
//! - qwen3: rope on halves, RMS-normed q and k per head (QK-norm), no biases;
//! - gemma3: rope on halves, QK-norm, GEGLU with tanh-approximated GELU, a
//!   norm after attention and after the FFN as well as before, the embedding
//!   scaled by sqrt(n_embd), queries scaled by 1/sqrt(head_dim) before
//!   attention, and sliding-window layers (every layer but each sixth, unless
//!   the GGUF says otherwise) with their own rope base (10000) beside global
//!   ones (`rope.freq_base`). Gemma's `(1 + w)` RMSNorm scaling needs nothing
//!   here: the GGUF converter stores `1 + w` in the norm tensors, which llama.cpp
//!   then multiplies by plainly, as we do.
//!
//! Tensor names and layouts are llama.cpp's, so the weights need no permutation.
//! A tensor the pass would not use is refused rather than ignored, so a GGUF
//! of some variant we do not implement cannot give silently wrong logits.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{D, DType, Device, Tensor};

use super::TrainError;
use super::kernels::Frozen;
use super::lora::Lora;

/// The architectures whose forward pass twin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Gemma3,
    Qwen2,
    Qwen3,
}

impl Arch {
    /// The `general.architecture` names twin can fine-tune, for messages.
    pub const SUPPORTED: &'static str = "llama (e.g. SmolLM2), gemma3 (Gemma 3), qwen2, qwen3";

    fn parse(name: &str, path: &Path) -> Result<Arch, TrainError> {
        match name {
            "llama" => Ok(Arch::Llama),
            "gemma3" => Ok(Arch::Gemma3),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            other => Err(TrainError::Unsupported {
                path: path.to_path_buf(),
                why: format!(
                    "architecture `{other}` cannot be fine-tuned yet (supported: {})",
                    Arch::SUPPORTED
                ),
            }),
        }
    }

    /// Rope rotates the two halves of each head (llama.cpp's NEOX), not adjacent pairs.
    fn rope_halves(self) -> bool {
        !matches!(self, Arch::Llama)
    }

    /// q and k are RMS-normed per head before rope.
    fn qk_norm(self) -> bool {
        matches!(self, Arch::Gemma3 | Arch::Qwen3)
    }

    /// Gemma's extra norms on the attention and FFN outputs, GELU gate, scaled embedding.
    fn gemma(self) -> bool {
        matches!(self, Arch::Gemma3)
    }
}

/// Shapes and constants read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    pub architecture: String,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    /// The rope base of global-attention layers.
    pub rope_base: f64,
    /// Linear rope scaling: positions are multiplied by this (1 without scaling).
    pub rope_scale: f64,
    /// The rope base of sliding-window layers.
    pub rope_base_swa: f64,
    /// Sliding-window layers see this many positions (themselves included).
    pub sliding_window: Option<usize>,
    /// Which layers attend within the sliding window.
    pub swa_layers: Vec<bool>,
    /// Multiplies q·k (1/sqrt(head_dim) unless the architecture says otherwise).
    pub attn_scale: f64,
    /// Multiplies the token embeddings (sqrt(n_embd) for gemma, else 1).
    pub embd_scale: f64,
    /// `cap * tanh(logits / cap)` when set.
    pub logit_softcap: Option<f64>,
    pub context_length: usize,
}

/// The projections LoRA can adapt, by llama.cpp tensor name.
pub const TARGETS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

struct Layer {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    /// `[out, in]` for each of [`TARGETS`], in that order.
    proj: Vec<Frozen>,
    /// `[out]` where the GGUF has `<target>.bias` (qwen2's q, k and v).
    bias: Vec<Option<Tensor>>,
    /// `[head_dim]`: QK-norm weights.
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    /// `[n_embd]`: gemma's norms on the attention and FFN outputs.
    post_attn_norm: Option<Tensor>,
    post_ffn_norm: Option<Tensor>,
    /// Attends within the sliding window, with the sliding-window rope.
    swa: bool,
}

/// A base model with frozen f32 weights.
pub struct Model {
    pub config: Config,
    pub path: PathBuf,
    pub device: Device,
    embd: Tensor,
    output_norm: Tensor,
    /// `[vocab, n_embd]`; the embedding itself when the model ties them.
    output: Frozen,
    output_bias: Option<Tensor>,
    layers: Vec<Layer>,
    /// `[context, head_dim / 2]` for global layers, then for sliding-window ones.
    rope: [(Tensor, Tensor); 2],
    /// Candle's plain ops instead of twin's training kernels (see [`Model::use_reference_ops`]).
    reference_ops: bool,
}

impl Model {
    /// Read and dequantize the base model at `path`.
    pub fn load(path: &Path, device: &Device) -> Result<Model, TrainError> {
        let io = |source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bad = |why: String| TrainError::BadModel {
            path: path.to_path_buf(),
            why,
        };
        let unsupported = |why: String| TrainError::Unsupported {
            path: path.to_path_buf(),
            why,
        };
        let mut reader = BufReader::new(File::open(path).map_err(io)?);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| bad(e.to_string()))?;
        let meta = &content.metadata;
        let architecture = meta
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| bad("it has no general.architecture".into()))?;
        if meta
            .get("general.type")
            .and_then(|v| v.to_string().ok())
            .is_some_and(|t| t == "adapter")
        {
            return Err(bad(
                "it is a LoRA adapter, not a model; pass the base model".into(),
            ));
        }
        let arch = Arch::parse(&architecture, path)?;
        let key = |k: &str| format!("{architecture}.{k}");
        let get_u = |k: &str| -> Result<usize, TrainError> {
            let k = key(k);
            meta.get(&k)
                .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("it has no {k}")))
        };
        let get_f = |k: &str| -> Option<f64> {
            meta.get(&key(k))
                .and_then(|v| v.to_f32().ok())
                .map(f64::from)
        };
        let n_embd = get_u("embedding_length")?;
        let n_head = get_u("attention.head_count")?;
        let n_head_kv = get_u("attention.head_count_kv").unwrap_or(n_head);
        let n_layer = get_u("block_count")?;
        let head_dim = get_u("attention.key_length").unwrap_or(n_embd / n_head);
        if get_u("attention.value_length").is_ok_and(|v| v != head_dim) {
            return Err(unsupported(
                "keys and values of different sizes are not implemented".into(),
            ));
        }
        if get_u("rope.dimension_count").is_ok_and(|r| r != head_dim) {
            return Err(unsupported(
                "rope on part of each head is not implemented".into(),
            ));
        }
        let scaling = meta
            .get(&key("rope.scaling.type"))
            .and_then(|v| v.to_string().ok())
            .map_or("linear", String::as_str);
        let factor = get_f("rope.scaling.factor").filter(|f| *f != 0.0 && *f != 1.0);
        let rope_scale = match (scaling, factor) {
            (_, None) | ("none", _) => 1.0,
            ("linear", Some(f)) => 1.0 / f,
            (other, Some(_)) => {
                return Err(unsupported(format!(
                    "rope scaling `{other}` is not implemented (linear is)"
                )));
            }
        };
        let sliding_window = match arch {
            Arch::Gemma3 => get_u("attention.sliding_window").ok().filter(|w| *w > 0),
            _ => None,
        };
        let swa_layers = match sliding_window {
            None => vec![false; n_layer],
            Some(_) => swa_pattern(meta.get(&key("attention.sliding_window_pattern")), n_layer)
                .map_err(|e| bad(format!("{}: {e}", key("attention.sliding_window_pattern"))))?,
        };

        let mut used = std::collections::HashSet::new();
        let mut tensor = |name: &str| -> Result<Tensor, TrainError> {
            used.insert(name.to_string());
            let q = content
                .tensor(&mut reader, name, &Device::Cpu)
                .map_err(|e| bad(format!("tensor {name}: {e}")))?;
            let t = q
                .dequantize(&Device::Cpu)
                .map_err(|e| bad(format!("tensor {name}: {e}")))?;
            t.to_device(device)
                .map_err(|e| bad(format!("tensor {name}: {e}")))
        };
        let has = |name: &str| content.tensor_infos.contains_key(name);
        let embd = tensor("token_embd.weight")?;
        let vocab = embd.dim(0).map_err(|e| bad(e.to_string()))?;
        let output_norm = tensor("output_norm.weight")?;
        let output = if has("output.weight") {
            tensor("output.weight")?
        } else {
            embd.clone()
        };
        let frozen = |w: Tensor| Frozen::new(w).map_err(|e| bad(e.to_string()));
        let output = frozen(output)?;
        let output_bias = if has("output.bias") {
            Some(tensor("output.bias")?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(n_layer);
        for (l, swa) in swa_layers.iter().enumerate() {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            let proj = TARGETS
                .iter()
                .map(|t| frozen(tensor(&p(t))?))
                .collect::<Result<Vec<_>, _>>()?;
            let mut bias = Vec::with_capacity(TARGETS.len());
            for t in TARGETS {
                let name = format!("blk.{l}.{t}.bias");
                bias.push(if has(&name) {
                    Some(tensor(&name)?)
                } else {
                    None
                });
            }
            let (qk, gemma) = (arch.qk_norm(), arch.gemma());
            let mut when = |wanted: bool, name: &str| -> Result<Option<Tensor>, TrainError> {
                if wanted {
                    tensor(&p(name)).map(Some)
                } else {
                    Ok(None)
                }
            };
            let q_norm = when(qk, "attn_q_norm")?;
            let k_norm = when(qk, "attn_k_norm")?;
            let post_attn_norm = when(gemma, "post_attention_norm")?;
            let post_ffn_norm = when(gemma, "post_ffw_norm")?;
            let attn_norm = when(true, "attn_norm")?.expect("wanted");
            let ffn_norm = when(true, "ffn_norm")?.expect("wanted");
            layers.push(Layer {
                attn_norm,
                ffn_norm,
                proj,
                bias,
                q_norm,
                k_norm,
                post_attn_norm,
                post_ffn_norm,
                swa: *swa,
            });
        }
        let mut unused: Vec<&String> = content
            .tensor_infos
            .keys()
            .filter(|n| !used.contains(*n))
            .collect();
        unused.sort();
        if let Some(first) = unused.first() {
            return Err(unsupported(format!(
                "tensor {first} (and {} more) is not part of the {architecture} forward pass twin implements, so training on it could not match the model",
                unused.len() - 1
            )));
        }
        let n_ff = layers
            .first()
            .map(|l| l.proj[4].weight().dim(0))
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or(0);
        let attn_scale = if arch == Arch::Gemma3 && n_layer == 62 {
            // Gemma 3 27B scales by the model width per head, as llama.cpp does.
            1.0 / ((n_embd / n_head) as f64).sqrt()
        } else {
            1.0 / (head_dim as f64).sqrt()
        };
        let config = Config {
            arch,
            architecture: architecture.clone(),
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            vocab,
            rms_eps: get_f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_base: get_f("rope.freq_base").unwrap_or(10_000.0),
            rope_scale,
            rope_base_swa: get_f("rope.freq_base_swa").unwrap_or(10_000.0),
            sliding_window,
            swa_layers,
            attn_scale,
            // llama.cpp multiplies by sqrtf(n_embd) in f32.
            embd_scale: if arch.gemma() {
                f64::from((n_embd as f32).sqrt())
            } else {
                1.0
            },
            logit_softcap: get_f("final_logit_softcapping").filter(|c| *c > 0.0),
            context_length: get_u("context_length").unwrap_or(2048),
        };
        let n = config.context_length.min(8192);
        let global = rope_tables(&config, config.rope_base, config.rope_scale, n, device)
            .map_err(|e| bad(e.to_string()))?;
        let local = rope_tables(&config, config.rope_base_swa, 1.0, n, device)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Model {
            config,
            path: path.to_path_buf(),
            device: device.clone(),
            embd,
            output_norm,
            output,
            output_bias,
            layers,
            rope: [global, local],
            reference_ops: false,
        })
    }

    /// With `on`, the pass uses candle's plain ops where twin has its own
    /// training kernels (`super::kernels`: the frozen-weight matmul, RMS norm, rope, the
    /// attention softmax, the cross-entropy, the output layer only where the
    /// loss is taken): slower,
    /// and there so tests can check that both give the same loss and LoRA
    /// gradients.
    pub fn use_reference_ops(&mut self, on: bool) {
        self.reference_ops = on;
    }

    /// Whether [`Model::use_reference_ops`] is on.
    pub fn reference_ops(&self) -> bool {
        self.reference_ops
    }

    /// RMS norm over the last dimension, times the frozen `w`.
    fn norm(&self, x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
        if self.reference_ops {
            super::kernels::rms_norm_reference(x, w, eps)
        } else {
            super::kernels::rms_norm(x, w, eps)
        }
    }

    /// `x` `[n, in]` times the transpose of the frozen weight `w` `[out, in]`.
    fn linear(&self, x: &Tensor, w: &Frozen) -> candle_core::Result<Tensor> {
        if self.reference_ops {
            x.matmul(&w.weight().t()?)
        } else {
            super::kernels::linear(x, w)
        }
    }

    /// The shape `[out, in]` of each adaptable projection, by llama.cpp name.
    pub fn target_shapes(&self) -> HashMap<String, (usize, usize)> {
        let mut out = HashMap::new();
        for (l, layer) in self.layers.iter().enumerate() {
            for (t, w) in TARGETS.iter().zip(&layer.proj) {
                let (o, i) = w.weight().dims2().unwrap_or((0, 0));
                out.insert(format!("blk.{l}.{t}.weight"), (o, i));
            }
        }
        out
    }

    /// The frozen weight of a target projection (`[out, in]`), for tests that merge.
    pub fn weight(&self, layer: usize, target: usize) -> &Tensor {
        self.layers[layer].proj[target].weight()
    }

    /// Logits `[batch, seq, vocab]` for `tokens` (`[batch, seq]`, u32), with `lora` applied.
    pub fn forward(&self, tokens: &Tensor, lora: Option<&Lora>) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let c = &self.config;
        let hidden = self.hidden(tokens, lora)?;
        self.head(&hidden.reshape((b * t, c.n_embd))?)?
            .reshape((b, t, c.vocab))
    }

    /// Logits `[rows, vocab]` at some positions only: `rows` (u32) index the
    /// `batch * seq` positions of `tokens` row-major. Training takes its loss
    /// on the twin's own tokens alone, and the output layer (`[vocab, n_embd]`,
    /// the largest matmul of a small model) is then paid only there.
    pub fn logits_at(
        &self,
        tokens: &Tensor,
        lora: Option<&Lora>,
        rows: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let hidden = self
            .hidden(tokens, lora)?
            .reshape((b * t, self.config.n_embd))?;
        self.head(&hidden.index_select(rows, 0)?)
    }

    /// The final norm and output layer on hidden states `[n, n_embd]`: `[n, vocab]`.
    fn head(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let x = self.norm(hidden, &self.output_norm, c.rms_eps)?;
        let mut logits = self.linear(&x, &self.output)?;
        if let Some(bias) = &self.output_bias {
            logits = logits.broadcast_add(bias)?;
        }
        if let Some(cap) = c.logit_softcap {
            logits = ((logits / cap)?.tanh()? * cap)?;
        }
        Ok(logits)
    }

    fn hidden(&self, tokens: &Tensor, lora: Option<&Lora>) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let c = &self.config;
        if t > self.rope[0].0.dim(0)? {
            candle_core::bail!(
                "sequence of {t} tokens is longer than the model's {}",
                self.rope[0].0.dim(0)?
            );
        }
        let mut x = self
            .embd
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, c.n_embd))?;
        if c.embd_scale != 1.0 {
            x = (x * c.embd_scale)?;
        }
        let mut ropes = Vec::with_capacity(2);
        for (cos, sin) in &self.rope {
            ropes.push((cos.narrow(0, 0, t)?, sin.narrow(0, 0, t)?));
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let proj = |i: usize, x: &Tensor| -> candle_core::Result<Tensor> {
                let (n, d_in) = (b * t, x.dim(D::Minus1)?);
                let x2 = x.reshape((n, d_in))?;
                let mut y = self.linear(&x2, &layer.proj[i])?;
                if let Some(bias) = &layer.bias[i] {
                    y = y.broadcast_add(bias)?;
                }
                if let Some(delta) = lora.map(|lo| lo.delta(l, i, &x2)).transpose()?.flatten() {
                    y = (y + delta)?;
                }
                y.reshape((b, t, ()))
            };
            let which = usize::from(layer.swa);
            let (cos, sin) = &ropes[which];
            // `[b, t, n * head_dim]` -> `[b, n, t, head_dim]`, QK-normed where the model does.
            let heads = |y: Tensor, n: usize, norm: Option<&Tensor>| {
                let mut y = y.reshape((b, t, n, c.head_dim))?;
                if let Some(w) = norm {
                    y = self.norm(&y, w, c.rms_eps)?;
                }
                y.transpose(1, 2)?.contiguous()
            };
            let rope = |x: &Tensor| {
                if self.reference_ops {
                    super::kernels::rope_reference(x, cos, sin, c.arch.rope_halves())
                } else {
                    super::kernels::rope(x, cos, sin, c.arch.rope_halves())
                }
            };
            let h = self.norm(&x, &layer.attn_norm, c.rms_eps)?;
            let q = heads(proj(0, &h)?, c.n_head, layer.q_norm.as_ref())?;
            let k = heads(proj(1, &h)?, c.n_head_kv, layer.k_norm.as_ref())?;
            let v = heads(proj(2, &h)?, c.n_head_kv, None)?;
            let q = rope(&q)?;
            let k = rope(&k)?;
            let rep = c.n_head / c.n_head_kv;
            let k = repeat_kv(k, rep)?;
            let v = repeat_kv(v, rep)?;
            let window = if layer.swa { c.sliding_window } else { None };
            let att = if self.reference_ops {
                super::kernels::causal_softmax_reference(&q.matmul(&k.t()?)?, c.attn_scale, window)?
            } else {
                super::kernels::causal_softmax(&q.matmul(&k.t()?)?, c.attn_scale, window)?
            };
            let y = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, t, c.n_head * c.head_dim))?;
            let mut y = proj(3, &y)?;
            if let Some(w) = &layer.post_attn_norm {
                y = self.norm(&y, w, c.rms_eps)?;
            }
            x = (x + y)?;
            let h = self.norm(&x, &layer.ffn_norm, c.rms_eps)?;
            let gate = proj(4, &h)?;
            let gate = if c.arch.gemma() {
                gate.gelu()?
            } else {
                gate.silu()?
            };
            let up = proj(5, &h)?;
            let mut y = proj(6, &(gate * up)?)?;
            if let Some(w) = &layer.post_ffn_norm {
                y = self.norm(&y, w, c.rms_eps)?;
            }
            x = (x + y)?;
        }
        Ok(x)
    }
}

/// Which layers use the sliding window, from `sliding_window_pattern`: an array
/// of booleans (one per layer), or `n` meaning every layer but each `n`-th (as
/// llama.cpp reads it); absent, gemma3's 6.
fn swa_pattern(v: Option<&gguf_file::Value>, n_layer: usize) -> Result<Vec<bool>, String> {
    if let Some(items) = v.and_then(|v| v.to_vec().ok()) {
        if items.len() < n_layer {
            return Err(format!("{} entries for {n_layer} layers", items.len()));
        }
        return items[..n_layer]
            .iter()
            .map(|i| {
                i.to_bool()
                    .or_else(|_| i.to_u32().map(|x| x != 0))
                    .or_else(|_| i.to_i32().map(|x| x != 0))
                    .map_err(|e| e.to_string())
            })
            .collect();
    }
    let n = match v {
        Some(v) => v
            .to_u32()
            .or_else(|_| v.to_i32().map(|x| x.max(0) as u32))
            .map_err(|e| e.to_string())? as usize,
        None => 6,
    };
    Ok((0..n_layer).map(|l| n == 0 || l % n < n - 1).collect())
}

fn repeat_kv(x: Tensor, rep: usize) -> candle_core::Result<Tensor> {
    if rep == 1 {
        return Ok(x);
    }
    let (b, n, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, n, rep, t, d))?
        .contiguous()?
        .reshape((b, n * rep, t, d))
}

/// cos and sin of `position * scale * base^(-2i / head_dim)`, `[n, head_dim / 2]`.
fn rope_tables(
    c: &Config,
    base: f64,
    scale: f64,
    n: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let half = c.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| (scale / base.powf(2.0 * i as f64 / c.head_dim as f64)) as f32)
        .collect();
    let inv = Tensor::from_vec(inv, (1, half), device)?;
    let pos = Tensor::arange(0u32, n as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((n, 1))?;
    let freqs = pos.broadcast_mul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::gguf::{Value, Writer};

    #[test]
    fn gemma_layers_slide_but_each_sixth_unless_the_gguf_says() {
        let global: Vec<usize> = swa_pattern(None, 18)
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, swa)| !**swa)
            .map(|(l, _)| l)
            .collect();
        assert_eq!(global, [5, 11, 17], "Gemma 3 270M");
        let every_third = swa_pattern(Some(&gguf_file::Value::U32(3)), 4).unwrap();
        assert_eq!(every_third, [true, true, false, true]);
        let listed = gguf_file::Value::Array(vec![
            gguf_file::Value::Bool(false),
            gguf_file::Value::Bool(true),
        ]);
        assert_eq!(swa_pattern(Some(&listed), 2).unwrap(), [false, true]);
        assert!(swa_pattern(Some(&listed), 3).is_err());
    }

    #[test]
    fn another_architecture_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phi.gguf");
        let mut w = Writer::new();
        w.kv("general.architecture", Value::Str("phi3".into()))
            .tensor_f32("token_embd.weight", &[2, 2], &[0.0; 4]);
        w.write(&path).unwrap();
        let Err(err) = Model::load(&path, &Device::Cpu) else {
            panic!("a phi3 model was loaded");
        };
        let err = err.to_string();
        assert!(
            err.contains("phi.gguf") && err.contains("`phi3`") && err.contains("gemma3"),
            "{err}"
        );
    }
}
