//! `twin status`: what is in the store, which models are found, where the folders are.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::Loaded;
use crate::models::{self, ModelFile};
use crate::paths::Paths;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub version: String,
    pub folders: Paths,
    pub config_file: PathBuf,
    pub config_found: bool,
    pub store: StoreStatus,
    pub models_dir: PathBuf,
    pub models: Vec<ModelFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreStatus {
    pub path: PathBuf,
    pub schema_version: u32,
    pub bytes: u64,
    /// Records per tree.
    pub counts: BTreeMap<String, u64>,
}

impl StatusReport {
    pub fn gather(
        paths: &Paths,
        config: &Loaded,
        store: &Store,
    ) -> Result<StatusReport, StoreError> {
        let counts = store
            .counts()?
            .into_iter()
            .map(|(t, n)| (t.name().to_string(), n))
            .collect();
        let models_dir = config.models_dir(paths);
        let models = models::discover(&models_dir).unwrap_or_else(|e| {
            tracing::warn!("cannot list models in {}: {e}", models_dir.display());
            Vec::new()
        });
        Ok(StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            folders: paths.clone(),
            config_file: config.file.clone(),
            config_found: config.file_found,
            store: StoreStatus {
                path: store.dir().to_path_buf(),
                schema_version: store.schema_version()?.unwrap_or(0),
                bytes: store.size_on_disk(),
                counts,
            },
            models_dir,
            models,
        })
    }

    pub fn count(&self, tree: &str) -> u64 {
        self.store.counts.get(tree).copied().unwrap_or(0)
    }
}

/// Bytes for people: 1.5 MB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "twin {}", self.version)?;
        writeln!(
            f,
            "\nstore     {} (schema v{}, {})",
            self.store.path.display(),
            self.store.schema_version,
            human_bytes(self.store.bytes)
        )?;
        for (tree, n) in &self.store.counts {
            writeln!(f, "  {tree:<14} {n:>10}")?;
        }
        writeln!(f, "\nmodels    {}", self.models_dir.display())?;
        if self.models.is_empty() {
            writeln!(f, "  (none found)")?;
        }
        for m in &self.models {
            let about = match (&m.gguf, &m.problem) {
                (Some(g), _) => format!("  {g}"),
                (None, Some(problem)) => format!("  PROBLEM: {problem}"),
                (None, None) => String::new(),
            };
            writeln!(
                f,
                "  {:<40} {:<9} {:>9}{about}",
                m.name,
                format!("{:?}", m.kind).to_lowercase(),
                human_bytes(m.bytes)
            )?;
        }
        writeln!(f, "\nfolders   ({})", self.folders.origin)?;
        writeln!(f, "  config  {}", self.folders.config_dir.display())?;
        writeln!(f, "  data    {}", self.folders.data_dir.display())?;
        writeln!(f, "  state   {}", self.folders.state_dir.display())?;
        writeln!(f, "  logs    {}", self.folders.log_dir.display())?;
        write!(
            f,
            "  config file {}{}",
            self.config_file.display(),
            if self.config_found {
                ""
            } else {
                " (not present: defaults)"
            }
        )
    }
}

impl crate::jobs::Summary for StatusReport {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_naturally() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(98_000_000_000), "98.0 GB");
    }
}
