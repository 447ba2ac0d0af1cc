//! Fine-tuning: training sets from the store (`dataset`), the base model's
//! forward pass in candle (`model`), LoRA (`lora`), the optimiser and schedule
//! (`optim`), the training loop with checkpoints (`trainer`), the GGUF adapter
//! llama.cpp serves (`adapter`), and the adapters and runs kept in the store
//! (`registry`). No UI here: the TUI and `--batch` drive it through jobs.
//! The path and its reasons: `../shared/DESIGN.md`, "Fine-tuning path".

pub mod adapter;
pub mod dataset;
pub mod eval;
pub mod kernels;
pub mod lora;
pub mod model;
pub mod optim;
pub mod registry;
pub mod run;
pub mod selfqa;
pub mod trainer;

use std::path::PathBuf;

/// What can go wrong while training, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} cannot be used as a base model: {why}")]
    BadModel { path: PathBuf, why: String },
    #[error("{path}: {why}")]
    Unsupported { path: PathBuf, why: String },
    #[error(
        "no training examples with words of yours: import chats (`twin ingest`, or `twin demo`) and build a dataset (`twin dataset build`)"
    )]
    NoData,
    #[error("checkpoint {path}: {why}")]
    Checkpoint { path: PathBuf, why: String },
    #[error("training failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The compute device: the first CUDA GPU in a `cuda` build, else the CPU.
pub fn device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    candle_core::Device::Cpu
}
