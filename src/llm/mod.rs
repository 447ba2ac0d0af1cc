//! Talking to a model: GGUF metadata (`gguf`) and tiny synthetic models for
//! tests (`tiny`).

pub mod gguf;
pub mod tiny;
