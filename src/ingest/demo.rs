//! The demo twin: a public conversation corpus (chitchat-dataset, MIT) turned
//! into a real WhatsApp export by `scripts/make-demo.py` and bundled in the
//! binary, so every pane can be tried in a minute without one's own data.

use std::path::{Path, PathBuf};

use super::pipeline::{Options, Zone};

/// The bundled export (a zip of "WhatsApp Chat with NAME.txt" files).
pub const EXPORT: &[u8] = include_bytes!("../../demo/chitchat-demo.zip");

/// Who the demo twin is.
pub const ME: &str = "Sam Rivera";

/// Write the bundled export into `dir` and return its path.
pub fn unpack(dir: &Path) -> std::io::Result<PathBuf> {
    crate::paths::create_private_dir(dir)?;
    let path = dir.join("chitchat-demo.zip");
    std::fs::write(&path, EXPORT)?;
    Ok(path)
}

/// Import options for the demo export: Sam is me, times are UTC.
pub fn options(export: PathBuf, window_gap_ms: i64) -> Options {
    Options {
        paths: vec![export],
        format: None,
        me: vec![ME.to_string()],
        zone: Zone::parse("UTC").expect("UTC is a zone"),
        window_gap_ms,
        voice: None,
    }
}
