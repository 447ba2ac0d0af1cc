//! llama.cpp used directly, without the engine thread, for work that is not a
//! chat: tokenizing training data with the model's own tokenizer and template,
//! and reading the logits of every position (trainer tests, evaluation).
//! Blocking; call it from a job's thread.

use std::num::NonZeroU32;
use std::path::Path;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use super::engine::{EngineConfig, EngineError, backend, check_adapter, inspect_model};
use super::gguf::Gguf;
use super::prompt::{Message, Template};

/// A model opened for tokenizing and scoring.
pub struct Direct {
    model: LlamaModel,
    pub gguf: Gguf,
    pub template: Template,
    adapter: Option<LlamaLoraAdapter>,
    threads: i32,
}

impl Direct {
    /// Open `path`; `vocab_only` loads only the tokenizer (fast, no weights).
    pub fn open(path: &Path, vocab_only: bool, threads: usize) -> Result<Direct, EngineError> {
        let (gguf, template) = inspect_model(&EngineConfig::for_model(path))?;
        let params = LlamaModelParams::default().with_vocab_only(vocab_only);
        let model = LlamaModel::load_from_file(backend(), path, &params).map_err(|e| {
            EngineError::Load {
                path: path.to_path_buf(),
                why: e.to_string(),
            }
        })?;
        Ok(Direct {
            model,
            gguf,
            template,
            adapter: None,
            threads: super::engine::thread_count(threads) as i32,
        })
    }

    /// Apply the LoRA adapter at `path` (scale 1) to later [`Direct::logits`] calls.
    pub fn set_adapter(&mut self, path: &Path) -> Result<(), EngineError> {
        check_adapter(path, &self.gguf)?;
        let file = super::engine::AdapterFile::open(path)?;
        let a =
            self.model
                .lora_adapter_init(file.path())
                .map_err(|e| EngineError::WrongAdapter {
                    adapter: path.to_path_buf(),
                    model: self.gguf.path.clone(),
                    why: format!("llama.cpp refused it ({e})"),
                })?;
        self.adapter = Some(a);
        Ok(())
    }

    /// Token ids of `text`; control tokens written in it (`<|im_end|>`) are parsed.
    pub fn tokenize(&self, text: &str, add_bos: bool) -> Vec<u32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), add_bos, true)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect()
    }

    /// Whether the model wants a BOS token at the start of a sequence.
    pub fn adds_bos(&self) -> bool {
        self.model.vocab().should_add_bos()
    }

    /// Whether `token` ends a turn (`<|im_end|>`, `<end_of_turn>`, EOS).
    pub fn is_end_of_turn(&self, token: u32) -> bool {
        self.model.vocab().is_eog(LlamaToken(token as i32))
    }

    pub fn n_vocab(&self) -> usize {
        self.model.n_vocab() as usize
    }

    /// `messages` in the model's chat template; `open` ends with the assistant's
    /// header so the model writes next.
    pub fn render(&self, messages: &[Message], open: bool) -> Result<String, EngineError> {
        let tmpl = LlamaChatTemplate::new(self.template.source())
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_string(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Template(e.to_string()))?;
        self.model
            .apply_chat_template(&tmpl, &chat, open)
            .map_err(|e| EngineError::Template(e.to_string()))
    }

    /// The logits of every position of `tokens`, `[tokens.len() * n_vocab]`.
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, EngineError> {
        let n = tokens.len().max(1) as u32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n.max(64)))
            .with_n_batch(n.max(64))
            .with_n_ubatch(n.max(64))
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            // f32 keys and values: logits comparable with an f32 reference.
            .with_type_k(KvCacheType::F32)
            .with_type_v(KvCacheType::F32);
        let n_vocab = self.n_vocab();
        let mut ctx =
            self.model
                .new_context(backend(), params)
                .map_err(|e| EngineError::Context {
                    n_ctx: n,
                    why: e.to_string(),
                })?;
        if let Some(a) = self.adapter.as_mut() {
            ctx.lora_adapter_set(a, 1.0)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
        }
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        for (i, t) in tokens.iter().enumerate() {
            batch
                .add(LlamaToken(*t as i32), i as i32, &[0], true)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| EngineError::Decode(e.to_string()))?;
        let mut out = Vec::with_capacity(tokens.len() * n_vocab);
        for i in 0..tokens.len() {
            out.extend_from_slice(ctx.get_logits_ith(i as i32));
        }
        Ok(out)
    }
}
