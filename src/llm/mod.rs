//! Talking to a model: GGUF metadata (`gguf`), the llama.cpp engine thread
//! (`engine`), pure prompt logic (`prompt`: templates, context budget), the chat
//! job behind `twin chat` (`chat`), the chat as a pure state machine
//! (`conversation`), the system prompt with persona, memories and citations
//! (`persona`), sessions in the store (`sessions`), and tiny synthetic models
//! for tests (`tiny`).
//!
//! Other modules plug in through [`Engine::generate`]: memory adds retrieved
//! context to each turn's user message (after the history, so the KV cache of
//! the turns before is reused), the OpenAI endpoint maps its requests onto
//! [`GenerateRequest`], training hands its adapter to [`Engine::set_adapter`].

pub mod chat;
pub mod conversation;
pub mod direct;
pub mod engine;
pub mod gguf;
pub mod openai;
pub mod persona;
pub mod prompt;
pub mod sessions;
pub mod tiny;

pub use engine::{
    Canceller, Engine, EngineConfig, EngineError, Finish, GenEvent, GenStats, GenerateRequest,
    Generation, ModelInfo, Reply, Sampling, json_schema_grammar,
};
pub use prompt::{Message, Role};
