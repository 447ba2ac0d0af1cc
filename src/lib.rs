//! twin: a digital twin of you, built from your own history, running on your machine.
//!
//! Layers, one direction only: front-ends (`tui`, `batch`) -> `app` core and `jobs`
//! -> core modules (`store`, `ingest`, `llm`, later `memory`, ...). Core modules
//! never import ratatui or crossterm.

pub mod app;
pub mod batch;
pub mod checkin;
pub mod cli;
pub mod config;
pub mod diag;
pub mod doctor;
pub mod ingest;
pub mod jobs;
pub mod llm;
pub mod logging;
pub mod memory;
pub mod models;
pub mod passphrase;
pub mod paths;
pub mod pii;
pub mod privacy;
pub mod serve;
pub mod status;
pub mod store;
pub mod train;
pub mod tui;
pub mod voice;
