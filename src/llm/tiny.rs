//! Tiny random-weight models in GGUF, so tests load, template, generate, cancel
//! and constrain with llama.cpp without downloading anything (a few hundred KB).
//!
//! The model is a real `llama` architecture (or `gemma3`, `qwen2`, `qwen3`, with
//! every tensor and metadata key llama.cpp's loader for them wants: see
//! [`TinyArch`]) with a byte-level BPE vocabulary
//! (`tokenizer.ggml.model = "gpt2"`: the 256 byte tokens in GPT-2's byte-to-unicode
//! spelling, no merges) plus the ChatML control tokens (gemma's turn tokens for
//! gemma3). Its weights are random
//! but shaped so that generation never ends by chance: every embedding carries a
//! constant first component, and the output row of each control token points
//! against it, so `<|im_end|>` only wins when a grammar leaves nothing else.

use std::path::Path;

use super::gguf::{Value, Writer};

/// SmolLM2's template, which llama.cpp recognises as ChatML.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Token ids of the control tokens after the 256 byte tokens. In a gemma3
/// model they are `<eos>`, `<start_of_turn>` and `<end_of_turn>`, then `<bos>` (259).
pub const ENDOFTEXT: i32 = 256;
pub const IM_START: i32 = 257;
pub const IM_END: i32 = 258;

/// The architecture of a tiny model. Beyond llama's tensors:
/// - `Gemma3`: q/k norms, post-attention and post-FFN norms, sliding-window
///   layers (`gemma3.attention.sliding_window` positions, every third layer
///   global), a global rope base of 1e6 beside the sliding layers' default
///   10000; no chat template (like Gemma 3 270M: twin picks gemma's built-in),
///   `<bos>` added to every sequence.
/// - `Qwen2`: q/k/v biases; ChatML.
/// - `Qwen3`: q/k norms; ChatML.
///
/// gemma3 and qwen3 get heads wider than `n_embd / n_head` (as the real ones have).
/// Norm weights are random around 1 for all but llama (whose weights stay as
/// they always were, for the tests that rely on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TinyArch {
    #[default]
    Llama,
    Gemma3,
    Qwen2,
    Qwen3,
}

impl TinyArch {
    pub const ALL: [TinyArch; 4] = [
        TinyArch::Llama,
        TinyArch::Gemma3,
        TinyArch::Qwen2,
        TinyArch::Qwen3,
    ];

    /// `general.architecture`.
    pub fn name(self) -> &'static str {
        match self {
            TinyArch::Llama => "llama",
            TinyArch::Gemma3 => "gemma3",
            TinyArch::Qwen2 => "qwen2",
            TinyArch::Qwen3 => "qwen3",
        }
    }
}

/// The shape of a tiny model (llama unless `arch` says otherwise).
#[derive(Debug, Clone)]
pub struct TinyLlama {
    pub arch: TinyArch,
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    /// `llama.context_length`: the most context the model allows.
    pub context_length: u64,
    pub name: String,
    /// `tokenizer.chat_template`; `None` writes a model without one.
    pub chat_template: Option<String>,
    pub seed: u64,
    /// The width of a head; `None`: `n_embd / n_head`.
    pub head_dim: Option<u64>,
    /// gemma3: how many positions a sliding-window layer sees.
    pub sliding_window: u64,
}

impl Default for TinyLlama {
    fn default() -> TinyLlama {
        TinyLlama {
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            context_length: 512,
            name: "tiny-random-llama-instruct".into(),
            chat_template: Some(CHATML_TEMPLATE.into()),
            seed: 7,
            arch: TinyArch::Llama,
            head_dim: None,
            sliding_window: 8,
        }
    }
}

impl TinyLlama {
    /// A tiny model of `arch` (see [`TinyArch`]).
    pub fn of(arch: TinyArch) -> TinyLlama {
        let base = TinyLlama {
            arch,
            ..TinyLlama::default()
        };
        match arch {
            TinyArch::Llama => base,
            TinyArch::Gemma3 => TinyLlama {
                n_layer: 3,
                n_head_kv: 1,
                head_dim: Some(32),
                name: "tiny-random-gemma3".into(),
                chat_template: None,
                ..base
            },
            TinyArch::Qwen2 => TinyLlama {
                name: "tiny-random-qwen2-instruct".into(),
                ..base
            },
            TinyArch::Qwen3 => TinyLlama {
                head_dim: Some(32),
                name: "tiny-random-qwen3-instruct".into(),
                ..base
            },
        }
    }
}

/// SplitMix64: a small, good, dependency-free generator for weights (and for
/// the trainer's LoRA initialisation and data order, which must replay exactly).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-scale, scale)`.
    pub fn uniform(&mut self, scale: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (unit * 2.0 - 1.0) * scale
    }

    pub fn fill(&mut self, n: u64, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(scale)).collect()
    }
}

/// GPT-2's byte-to-unicode table: the text of the byte token for each byte.
pub fn byte_token_text(b: u8) -> String {
    let printable = |c: u32| (33..=126).contains(&c) || (161..=172).contains(&c) || c >= 174;
    let c = u32::from(b);
    if printable(c) {
        char::from_u32(c).expect("latin-1").to_string()
    } else {
        let n = (0..c).filter(|x| !printable(*x)).count() as u32;
        char::from_u32(256 + n).expect("in range").to_string()
    }
}

impl TinyLlama {
    pub fn vocab_size(&self) -> u64 {
        if self.arch == TinyArch::Gemma3 {
            260
        } else {
            259
        }
    }

    /// The width of a head.
    pub fn head_dim(&self) -> u64 {
        self.head_dim.unwrap_or(self.n_embd / self.n_head)
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let (d, v, ff) = (self.n_embd, self.vocab_size(), self.n_ff);
        let head_dim = self.head_dim();
        let (q, kv) = (head_dim * self.n_head, head_dim * self.n_head_kv);
        let arch = self.arch.name();
        let gemma = self.arch == TinyArch::Gemma3;
        let mut rng = Rng(self.seed);
        let mut w = Writer::new();
        let mut tokens: Vec<String> = (0..=255u8).map(byte_token_text).collect();
        let mut types = vec![1i32; 256];
        let (bos, eos) = if gemma {
            tokens.extend(["<eos>", "<start_of_turn>", "<end_of_turn>", "<bos>"].map(String::from));
            types.extend([3, 3, 3, 3]);
            (259, ENDOFTEXT as u32)
        } else {
            tokens.extend(["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from));
            types.extend([3, 3, 3]);
            (IM_START as u32, IM_END as u32)
        };
        let k = |key: &str| format!("{arch}.{key}");
        w.kv("general.architecture", Value::Str(arch.into()))
            .kv("general.type", Value::Str("model".into()))
            .kv("general.name", Value::Str(self.name.clone()))
            .kv("general.file_type", Value::U32(0))
            .kv(&k("context_length"), Value::U32(self.context_length as u32))
            .kv(&k("embedding_length"), Value::U32(d as u32))
            .kv(&k("block_count"), Value::U32(self.n_layer as u32))
            .kv(&k("feed_forward_length"), Value::U32(ff as u32))
            .kv(&k("attention.head_count"), Value::U32(self.n_head as u32))
            .kv(
                &k("attention.head_count_kv"),
                Value::U32(self.n_head_kv as u32),
            )
            .kv(&k("rope.dimension_count"), Value::U32(head_dim as u32))
            .kv(
                &k("rope.freq_base"),
                Value::F32(if gemma { 1e6 } else { 10000.0 }),
            )
            .kv(
                &k("attention.layer_norm_rms_epsilon"),
                Value::F32(if gemma { 1e-6 } else { 1e-5 }),
            )
            .kv(&k("vocab_size"), Value::U32(v as u32))
            .kv("tokenizer.ggml.model", Value::Str("gpt2".into()))
            .kv("tokenizer.ggml.pre", Value::Str("gpt-2".into()))
            .kv("tokenizer.ggml.tokens", Value::strings(tokens))
            .kv("tokenizer.ggml.token_type", Value::i32s(types))
            .kv(
                "tokenizer.ggml.merges",
                Value::strings(Vec::<String>::new()),
            )
            .kv("tokenizer.ggml.bos_token_id", Value::U32(bos))
            .kv("tokenizer.ggml.eos_token_id", Value::U32(eos))
            .kv(
                "tokenizer.ggml.padding_token_id",
                Value::U32(ENDOFTEXT as u32),
            )
            .kv("tokenizer.ggml.add_bos_token", Value::Bool(gemma));
        if self.head_dim.is_some() {
            w.kv(&k("attention.key_length"), Value::U32(head_dim as u32))
                .kv(&k("attention.value_length"), Value::U32(head_dim as u32));
        }
        if gemma {
            w.kv(
                &k("attention.sliding_window"),
                Value::U32(self.sliding_window as u32),
            )
            .kv(&k("attention.sliding_window_pattern"), Value::U32(3));
        }
        if let Some(t) = &self.chat_template {
            w.kv("tokenizer.chat_template", Value::Str(t.clone()));
        }

        // Embeddings: component 0 is a constant 1, the rest random.
        let mut embd = rng.fill(d * v, 1.0);
        for t in 0..v {
            embd[(t * d) as usize] = 1.0;
        }
        w.tensor_f32("token_embd.weight", &[d, v], &embd);
        w.tensor_f32("output_norm.weight", &[d], &vec![1.0; d as usize]);
        // Output rows: +20 on component 0 for byte tokens, -20 for control tokens.
        let mut out = rng.fill(d * v, 0.3);
        for t in 0..v {
            out[(t * d) as usize] = if t < 256 { 20.0 } else { -20.0 };
        }
        w.tensor_f32("output.weight", &[d, v], &out);
        // Llama keeps all-ones norms (and so its weights as they always were).
        let llama = self.arch == TinyArch::Llama;
        let mut extra = Rng(self.seed ^ 0xA2C4);
        let mut norm = |n: u64| -> Vec<f32> {
            if llama {
                vec![1.0; n as usize]
            } else {
                extra.fill(n, 0.3).into_iter().map(|x| 1.0 + x).collect()
            }
        };
        for l in 0..self.n_layer {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            let small = 0.05;
            w.tensor_f32(&p("attn_norm"), &[d], &norm(d));
            w.tensor_f32(&p("attn_q"), &[d, q], &rng.fill(d * q, small));
            w.tensor_f32(&p("attn_k"), &[d, kv], &rng.fill(d * kv, small));
            w.tensor_f32(&p("attn_v"), &[d, kv], &rng.fill(d * kv, small));
            w.tensor_f32(&p("attn_output"), &[q, d], &rng.fill(q * d, small));
            w.tensor_f32(&p("ffn_norm"), &[d], &norm(d));
            w.tensor_f32(&p("ffn_gate"), &[d, ff], &rng.fill(d * ff, small));
            w.tensor_f32(&p("ffn_up"), &[d, ff], &rng.fill(d * ff, small));
            w.tensor_f32(&p("ffn_down"), &[ff, d], &rng.fill(ff * d, small));
            if matches!(self.arch, TinyArch::Gemma3 | TinyArch::Qwen3) {
                w.tensor_f32(&p("attn_q_norm"), &[head_dim], &norm(head_dim));
                w.tensor_f32(&p("attn_k_norm"), &[head_dim], &norm(head_dim));
            }
            if gemma {
                w.tensor_f32(&p("post_attention_norm"), &[d], &norm(d));
                w.tensor_f32(&p("post_ffw_norm"), &[d], &norm(d));
            }
            if self.arch == TinyArch::Qwen2 {
                let b = |s: &str| format!("blk.{l}.{s}.bias");
                w.tensor_f32(&b("attn_q"), &[q], &rng.fill(q, 0.5));
                w.tensor_f32(&b("attn_k"), &[kv], &rng.fill(kv, 0.5));
                w.tensor_f32(&b("attn_v"), &[kv], &rng.fill(kv, 0.5));
            }
        }
        w.write(path)
    }

    /// A LoRA adapter for this model on every layer's `attn_q` and `attn_v`
    /// (llama.cpp's layout: `lora_a` is `[n_in, rank]`, `lora_b` is `[rank, n_out]`).
    pub fn write_adapter(&self, path: &Path, rank: u64, alpha: f32) -> std::io::Result<()> {
        let d = self.n_embd;
        let (q, kv) = (
            self.head_dim() * self.n_head,
            self.head_dim() * self.n_head_kv,
        );
        let mut rng = Rng(self.seed ^ 0xA11CE);
        let mut w = Writer::new();
        w.kv("general.architecture", Value::Str(self.arch.name().into()))
            .kv("general.type", Value::Str("adapter".into()))
            .kv("general.name", Value::Str(format!("{}-lora", self.name)))
            .kv("adapter.type", Value::Str("lora".into()))
            .kv("adapter.lora.alpha", Value::F32(alpha));
        for l in 0..self.n_layer {
            for (t, n_out) in [("attn_q", q), ("attn_v", kv)] {
                let base = format!("blk.{l}.{t}.weight");
                w.tensor_f32(
                    &format!("{base}.lora_a"),
                    &[d, rank],
                    &rng.fill(d * rank, 0.1),
                );
                w.tensor_f32(
                    &format!("{base}.lora_b"),
                    &[rank, n_out],
                    &rng.fill(rank * n_out, 0.1),
                );
            }
        }
        w.write(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::gguf::Gguf;

    #[test]
    fn byte_tokens_follow_gpt2() {
        assert_eq!(byte_token_text(b'a'), "a");
        assert_eq!(byte_token_text(b' '), "Ġ");
        assert_eq!(byte_token_text(b'\n'), "Ċ");
        let all: std::collections::HashSet<String> = (0..=255u8).map(byte_token_text).collect();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn a_tiny_model_is_small_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let spec = TinyLlama::default();
        spec.write(&path).unwrap();
        let g = Gguf::open(&path).unwrap();
        assert!(g.file_size < 600_000, "{} bytes", g.file_size);
        let s = g.summary();
        assert_eq!(s.architecture.as_deref(), Some("llama"));
        assert_eq!(s.vocab_size, Some(259));
        assert_eq!(s.chat_template.as_deref(), Some("chatml"));
        assert_eq!(s.context_length, Some(512));
        assert_eq!(g.tensors.len(), 3 + 9 * 2);
        let adapter = dir.path().join("lora.gguf");
        spec.write_adapter(&adapter, 4, 8.0).unwrap();
        assert!(Gguf::open(&adapter).unwrap().is_adapter());
    }

    #[test]
    fn tiny_models_of_each_architecture_read_back() {
        let dir = tempfile::tempdir().unwrap();
        for arch in TinyArch::ALL {
            let path = dir.path().join(format!("{}.gguf", arch.name()));
            let spec = TinyLlama::of(arch);
            spec.write(&path).unwrap();
            let g = Gguf::open(&path).unwrap();
            let s = g.summary();
            assert_eq!(s.architecture.as_deref(), Some(arch.name()));
            assert_eq!(s.vocab_size, Some(spec.vocab_size()));
            let per_layer = match arch {
                TinyArch::Llama => 9,
                TinyArch::Gemma3 => 13,
                TinyArch::Qwen2 => 12,
                TinyArch::Qwen3 => 11,
            };
            assert_eq!(
                g.tensors.len() as u64,
                3 + per_layer * spec.n_layer,
                "{}",
                arch.name()
            );
        }
    }
}
