//! Talking to a model: GGUF metadata (`gguf`), the llama.cpp engine thread
//! (`engine`), pure prompt logic (`prompt`: templates, context budget), the chat
//! job behind `twin chat` (`chat`), and tiny synthetic models for tests (`tiny`).
//!
//! Other modules plug in through [`Engine::generate`]: memory adds retrieved
//! context to the system prompt, the OpenAI endpoint maps its requests onto
//! [`GenerateRequest`], training hands its adapter to [`Engine::set_adapter`].

pub mod chat;
pub mod direct;
pub mod engine;
pub mod gguf;
pub mod prompt;
pub mod tiny;

pub use engine::{
    Canceller, Engine, EngineConfig, EngineError, Finish, GenEvent, GenStats, GenerateRequest,
    Generation, ModelInfo, Reply, Sampling, json_schema_grammar,
};
pub use prompt::{Message, Role};
