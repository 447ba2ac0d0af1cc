//! The base model's forward pass in candle, for training.
//!
//! The GGUF is read with candle's own reader and every frozen weight is
//! dequantized to f32 (on CPU; the CUDA build keeps them on the GPU). The pass is
//! built only from ops that pass gradients: candle's fused `rms_norm`,
//! `softmax_last_dim`, `rope` and quantized matmul pass none (see
//! `../shared/notes/lora-training-facts.md`), so norms, softmax and rope are
//! composed by hand and attention is a plain masked matmul.
//!
//! Tensor names and layouts are llama.cpp's, so the weights need no permutation:
//! llama rotates adjacent pairs (`rope_i`), the NEOX family rotates halves.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{D, DType, Device, Tensor};

use super::TrainError;
use super::lora::Lora;

/// The architectures whose forward pass twin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
}

impl Arch {
    fn parse(name: &str, path: &Path) -> Result<Arch, TrainError> {
        match name {
            "llama" => Ok(Arch::Llama),
            other => Err(TrainError::Unsupported {
                path: path.to_path_buf(),
                why: format!(
                    "architecture `{other}` cannot be fine-tuned yet (supported: llama, e.g. SmolLM2)"
                ),
            }),
        }
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
    pub rope_base: f64,
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
    proj: Vec<Tensor>,
}

/// A base model with frozen f32 weights.
pub struct Model {
    pub config: Config,
    pub path: PathBuf,
    pub device: Device,
    embd: Tensor,
    output_norm: Tensor,
    /// `[vocab, n_embd]`; the embedding itself when the model ties them.
    output: Tensor,
    layers: Vec<Layer>,
    /// `[context, head_dim / 2]`.
    cos: Tensor,
    sin: Tensor,
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
        let get_u = |key: &str| -> Result<usize, TrainError> {
            let k = format!("{architecture}.{key}");
            meta.get(&k)
                .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("it has no {k}")))
        };
        let get_f = |key: &str, default: f64| -> f64 {
            meta.get(&format!("{architecture}.{key}"))
                .and_then(|v| v.to_f32().ok())
                .map_or(default, f64::from)
        };
        let n_embd = get_u("embedding_length")?;
        let n_head = get_u("attention.head_count")?;
        let n_head_kv = get_u("attention.head_count_kv").unwrap_or(n_head);
        let head_dim = get_u("attention.key_length").unwrap_or(n_embd / n_head);
        let mut tensor = |name: &str| -> Result<Tensor, TrainError> {
            let q = content
                .tensor(&mut reader, name, &Device::Cpu)
                .map_err(|e| bad(format!("tensor {name}: {e}")))?;
            let t = q
                .dequantize(&Device::Cpu)
                .map_err(|e| bad(format!("tensor {name}: {e}")))?;
            t.to_device(device)
                .map_err(|e| bad(format!("tensor {name}: {e}")))
        };
        let embd = tensor("token_embd.weight")?;
        let vocab = embd.dim(0).map_err(|e| bad(e.to_string()))?;
        let output_norm = tensor("output_norm.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            tensor("output.weight")?
        } else {
            embd.clone()
        };
        let n_layer = get_u("block_count")?;
        let mut layers = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            let proj = TARGETS
                .iter()
                .map(|t| tensor(&p(t)))
                .collect::<Result<Vec<_>, _>>()?;
            layers.push(Layer {
                attn_norm: tensor(&p("attn_norm"))?,
                ffn_norm: tensor(&p("ffn_norm"))?,
                proj,
            });
        }
        let n_ff = layers
            .first()
            .map(|l| l.proj[4].dim(0))
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or(0);
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
            rms_eps: get_f("attention.layer_norm_rms_epsilon", 1e-5),
            rope_base: get_f("rope.freq_base", 10_000.0),
            context_length: get_u("context_length").unwrap_or(2048),
        };
        let (cos, sin) = rope_tables(&config, config.context_length.min(8192), device)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Model {
            config,
            path: path.to_path_buf(),
            device: device.clone(),
            embd,
            output_norm,
            output,
            layers,
            cos,
            sin,
        })
    }

    /// The shape `[out, in]` of each adaptable projection, by llama.cpp name.
    pub fn target_shapes(&self) -> HashMap<String, (usize, usize)> {
        let mut out = HashMap::new();
        for (l, layer) in self.layers.iter().enumerate() {
            for (t, w) in TARGETS.iter().zip(&layer.proj) {
                let (o, i) = w.dims2().unwrap_or((0, 0));
                out.insert(format!("blk.{l}.{t}.weight"), (o, i));
            }
        }
        out
    }

    /// The frozen weight of a target projection (`[out, in]`), for tests that merge.
    pub fn weight(&self, layer: usize, target: usize) -> &Tensor {
        &self.layers[layer].proj[target]
    }

    /// Logits `[batch, seq, vocab]` for `tokens` (`[batch, seq]`, u32), with `lora` applied.
    pub fn forward(&self, tokens: &Tensor, lora: Option<&Lora>) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let c = &self.config;
        let hidden = self.hidden(tokens, lora)?;
        let x = rms_norm(&hidden, &self.output_norm, c.rms_eps)?;
        let logits = x.reshape((b * t, c.n_embd))?.matmul(&self.output.t()?)?;
        logits.reshape((b, t, c.vocab))
    }

    fn hidden(&self, tokens: &Tensor, lora: Option<&Lora>) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let c = &self.config;
        if t > self.cos.dim(0)? {
            candle_core::bail!(
                "sequence of {t} tokens is longer than the model's {}",
                self.cos.dim(0)?
            );
        }
        let mut x = self
            .embd
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, c.n_embd))?;
        let mask = causal_mask(t, &self.device)?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let proj = |i: usize, x: &Tensor| -> candle_core::Result<Tensor> {
                let (n, d_in) = (b * t, x.dim(D::Minus1)?);
                let x2 = x.reshape((n, d_in))?;
                let mut y = x2.matmul(&layer.proj[i].t()?)?;
                if let Some(delta) = lora.map(|lo| lo.delta(l, i, &x2)).transpose()?.flatten() {
                    y = (y + delta)?;
                }
                y.reshape((b, t, ()))
            };
            let h = rms_norm(&x, &layer.attn_norm, c.rms_eps)?;
            let heads = |y: Tensor, n: usize| {
                y.reshape((b, t, n, c.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = heads(proj(0, &h)?, c.n_head)?;
            let k = heads(proj(1, &h)?, c.n_head_kv)?;
            let v = heads(proj(2, &h)?, c.n_head_kv)?;
            let q = candle_nn::rotary_emb::rope_i_slow(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i_slow(&k, &cos, &sin)?;
            let rep = c.n_head / c.n_head_kv;
            let k = repeat_kv(k, rep)?;
            let v = repeat_kv(v, rep)?;
            let scale = 1.0 / (c.head_dim as f64).sqrt();
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, t, c.n_head * c.head_dim))?;
            x = (x + proj(3, &y)?)?;
            let h = rms_norm(&x, &layer.ffn_norm, c.rms_eps)?;
            let gate = proj(4, &h)?.silu()?;
            let up = proj(5, &h)?;
            x = (x + proj(6, &(gate * up)?)?)?;
        }
        Ok(x)
    }
}

/// RMS norm from differentiable ops.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(w)
}

/// `[t, t]`: 0 where a position may look, a large negative number above the diagonal.
fn causal_mask(t: usize, device: &Device) -> candle_core::Result<Tensor> {
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { -1e9 } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (t, t), device)
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

fn rope_tables(c: &Config, n: usize, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let half = c.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| (1.0 / c.rope_base.powf(2.0 * i as f64 / c.head_dim as f64)) as f32)
        .collect();
    let inv = Tensor::from_vec(inv, (1, half), device)?;
    let pos = Tensor::arange(0u32, n as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((n, 1))?;
    let freqs = pos.broadcast_mul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}
