//! Sentence embeddings. The real one runs all-MiniLM-L6-v2 through llama.cpp's
//! BERT graph (see `convert.rs` for why); a small deterministic hashing
//! embedder stands in when no model is present and in tests.
//!
//! Both return L2-normalised vectors, so cosine similarity is a dot product.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2: longer texts
/// are truncated to this many tokens ([CLS] and [SEP] included).
pub const MAX_TOKENS: usize = 256;
/// Tokens packed into one llama.cpp batch (several texts share it). llama.cpp's
/// encoder attends across the whole packed batch (masked per text), so that
/// work grows with the square of this: 512 / 16 ran 12% faster than 2048 / 64
/// on 2 threads (BENCHMARKS.md, memory), and smaller packs lose matrix speed.
pub const BATCH_TOKENS: usize = 512;
/// Texts in one batch at most.
pub const BATCH_SEQS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model {path} cannot be loaded ({detail}); run `bash scripts/fetch-models.sh` or set memory.embedding_model to a BERT GGUF"
    )]
    Load { path: PathBuf, detail: String },
    #[error("embedding failed: {0}")]
    Run(String),
}

/// Turns texts into unit vectors of one fixed dimension.
pub trait Embedder: Send + Sync {
    /// A name that changes whenever the vectors would (model file + dimension).
    fn id(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    super::index::fast_dot(a, b)
}

/// A BERT-family GGUF run by llama.cpp in embedding mode (mean pooling).
pub struct LlamaEmbedder {
    model: LlamaModel,
    id: String,
    dim: usize,
    threads: i32,
    batch_tokens: usize,
    batch_seqs: usize,
}

impl LlamaEmbedder {
    /// Pack at most `tokens` tokens and `seqs` texts into one llama.cpp
    /// encode (defaults `BATCH_TOKENS`, `BATCH_SEQS`). Every text must fit:
    /// `tokens` is raised to `MAX_TOKENS` at least.
    pub fn with_batch(mut self, tokens: usize, seqs: usize) -> LlamaEmbedder {
        self.batch_tokens = tokens.max(MAX_TOKENS);
        self.batch_seqs = seqs.max(1);
        self
    }

    pub fn load(path: &Path, threads: usize) -> Result<LlamaEmbedder, EmbedError> {
        let fail = |detail: String| EmbedError::Load {
            path: path.to_path_buf(),
            detail,
        };
        let meta = crate::llm::gguf::Gguf::open(path).map_err(|e| fail(e.to_string()))?;
        let arch = meta.architecture().unwrap_or("?").to_string();
        if !arch.contains("bert") {
            return Err(fail(format!(
                "architecture `{arch}` is not an embedding model (BERT family)"
            )));
        }
        let model = LlamaModel::load_from_file(
            crate::llm::engine::backend(),
            path,
            &LlamaModelParams::default(),
        )
        .map_err(|e| fail(e.to_string()))?;
        let dim = model.n_embd() as usize;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(LlamaEmbedder {
            model,
            id: format!("{name}:{size}:{dim}"),
            dim,
            threads: crate::llm::engine::thread_count(threads) as i32,
            batch_tokens: BATCH_TOKENS,
            batch_seqs: BATCH_SEQS,
        })
    }

    fn tokens(&self, text: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        let mut t = vocab.tokenize(text.as_bytes(), true, false);
        if t.len() > MAX_TOKENS {
            t.truncate(MAX_TOKENS - 1);
            t.push(vocab.sep());
        }
        t
    }
}

impl Embedder for LlamaEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let params = LlamaContextParams::default()
            // llama.cpp pads each sequence's share of the context to 256.
            .with_n_ctx(NonZeroU32::new(
                (256 * self.batch_seqs).max(self.batch_tokens) as u32,
            ))
            .with_n_batch(self.batch_tokens as u32)
            .with_n_ubatch(self.batch_tokens as u32)
            .with_n_seq_max(self.batch_seqs as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            .with_embeddings(true);
        let mut ctx = self
            .model
            .new_context(crate::llm::engine::backend(), params)
            .map_err(|e| EmbedError::Run(e.to_string()))?;
        let mut out = Vec::with_capacity(texts.len());
        let mut batch = LlamaBatch::new(self.batch_tokens, self.batch_seqs as i32);
        let mut pending = 0usize;
        let run = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
                   batch: &mut LlamaBatch,
                   n: usize,
                   out: &mut Vec<Vec<f32>>|
         -> Result<(), EmbedError> {
            ctx.clear_kv_cache();
            ctx.encode(batch)
                .map_err(|e| EmbedError::Run(e.to_string()))?;
            for s in 0..n {
                let e = ctx
                    .embeddings_seq_ith(s as i32)
                    .map_err(|e| EmbedError::Run(e.to_string()))?;
                let mut v = e.to_vec();
                normalize(&mut v);
                out.push(v);
            }
            batch.clear();
            Ok(())
        };
        let mut used = 0usize;
        for text in texts {
            let toks = self.tokens(text);
            if pending == self.batch_seqs || used + toks.len() > self.batch_tokens {
                run(&mut ctx, &mut batch, pending, &mut out)?;
                pending = 0;
                used = 0;
            }
            batch
                .add_sequence(&toks, pending as i32, true)
                .map_err(|e| EmbedError::Run(e.to_string()))?;
            pending += 1;
            used += toks.len();
        }
        if pending > 0 {
            run(&mut ctx, &mut batch, pending, &mut out)?;
        }
        Ok(out)
    }
}

/// A deterministic bag-of-words embedder (hashed words and character trigrams).
/// It knows no meaning, only shared words; used when no model is installed and
/// by tests that need stable vectors.
pub struct HashEmbedder {
    dim: usize,
    id: String,
}

impl HashEmbedder {
    pub fn new(dim: usize) -> HashEmbedder {
        HashEmbedder {
            dim,
            id: format!("hash-bow:{dim}"),
        }
    }
}

impl Embedder for HashEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; self.dim];
                let mut add = |s: &str, w: f32| {
                    let h = xxhash_rust::xxh3::xxh3_64(s.as_bytes());
                    let i = (h % self.dim as u64) as usize;
                    v[i] += if h >> 63 == 0 { w } else { -w };
                };
                for word in super::bm25::terms(t) {
                    add(&word, 1.0);
                    let chars: Vec<char> = format!(" {word} ").chars().collect();
                    for tri in chars.windows(3) {
                        add(&tri.iter().collect::<String>(), 0.3);
                    }
                }
                normalize(&mut v);
                v
            })
            .collect())
    }
}
