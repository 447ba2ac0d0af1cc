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

/// Thread settings for candle's CPU backend, each only where the user has not
/// set it. To be called first thing in `main`, before any thread exists.
///
/// - `CANDLE_NUM_THREADS=1`: candle 0.11 runs its elementwise ops on a pool of
///   its own (`CANDLE_NUM_THREADS - 1` workers that spin up to 25,000 times
///   after each op, and a caller that spins until they finish), beside rayon's
///   pool for the matmuls. A training step is thousands of small elementwise
///   ops between matmuls, so the spinning workers took the cores the matmul
///   threads needed: on a 2-core machine 64 % of a step's CPU samples were
///   spin-waits, and a step cost 2.8x the CPU time it does with the elementwise
///   ops on the calling thread. The matmuls keep every core (rayon's pool).
/// - `RAYON_NUM_THREADS`: the count candle picks for its matmuls (physical
///   cores), fixed once. Unset, candle recounts the cores by reading
///   `/proc/cpuinfo` on every matmul (3 % of a training step's CPU time).
///
/// # Safety
/// It writes the environment: no other thread may be running.
pub unsafe fn configure_cpu_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees no other thread runs.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = candle_core::utils::get_num_threads();
        // SAFETY: as above.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}

/// The compute device: the first CUDA GPU in a `cuda` build, else the CPU.
pub fn device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    candle_core::Device::Cpu
}
