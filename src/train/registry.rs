//! Adapters and runs kept in the store, with their provenance: the base model's
//! hash, the dataset's hash, the settings, the metrics and the run that made
//! each adapter. One adapter at most is active; chat asks [`active_path`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::trainer::{RunConfig, StepMetrics};
use crate::store::{Key, Record, Store, StoreError, Tree};

/// A trained adapter. Key: its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterRecord {
    /// `a<created ms>`, sortable by age.
    pub id: String,
    pub path: PathBuf,
    pub base: PathBuf,
    /// Hash of the base GGUF (xxh3 of its bytes, hex).
    pub base_hash: String,
    pub dataset_hash: String,
    pub config: RunConfig,
    pub steps: u64,
    pub final_loss: Option<f64>,
    pub val_loss: Option<f64>,
    /// The run that made it.
    pub run: String,
    /// The adapter this one continued from, if any.
    pub parent: Option<String>,
    pub created_ms: i64,
    pub active: bool,
    /// Trained on data that has since been forgotten: retrain before trusting it.
    #[serde(default)]
    pub stale: bool,
    /// Why it is stale, in words ("trained on a contact you forgot on 2026-11-21").
    #[serde(default)]
    pub stale_reason: Option<String>,
}

/// What a stale adapter's owner should do.
pub const RETRAIN_HINT: &str =
    "retrain: `twin dataset build` then `twin train` (b then t in the Training pane)";

impl Record for AdapterRecord {
    const TREE: Tree = Tree::Adapters;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Stopped,
    Failed,
    Done,
}

/// A training run. Key: its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `r<started ms>`.
    pub id: String,
    pub base: PathBuf,
    pub dataset_hash: String,
    pub config: RunConfig,
    /// The run's folder (checkpoints).
    pub dir: PathBuf,
    pub status: RunStatus,
    pub curve: Vec<StepMetrics>,
    pub adapter: Option<String>,
    pub started_ms: i64,
    pub updated_ms: i64,
    pub tokens_per_s: f64,
}

impl Record for RunRecord {
    const TREE: Tree = Tree::Runs;
}

pub fn put_run(store: &Store, run: &RunRecord) -> Result<(), StoreError> {
    store.write(|tx| tx.put(Key::new().str(&run.id), run))?;
    Ok(())
}

pub fn runs(store: &Store) -> Result<Vec<RunRecord>, StoreError> {
    store
        .scan::<RunRecord>([])
        .map(|r| r.map(|(_, v)| v))
        .collect()
}

/// Every adapter, oldest first.
pub fn adapters(store: &Store) -> Result<Vec<AdapterRecord>, StoreError> {
    store
        .scan::<AdapterRecord>([])
        .map(|r| r.map(|(_, v)| v))
        .collect()
}

pub fn add_adapter(store: &Store, a: &AdapterRecord) -> Result<(), StoreError> {
    store.write(|tx| tx.put(Key::new().str(&a.id), a))?;
    Ok(())
}

/// The active adapter's file, for chat (`None`: the bare model).
pub fn active_path(store: &Store) -> Result<Option<PathBuf>, StoreError> {
    Ok(adapters(store)?
        .into_iter()
        .find(|a| a.active)
        .map(|a| a.path))
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no adapter `{0}`; `twin adapters list` shows the ids")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Make `id` the active adapter (and no other); `None` deactivates all.
pub fn activate(store: &Store, id: Option<&str>) -> Result<(), RegistryError> {
    let all = adapters(store)?;
    if let Some(id) = id
        && !all.iter().any(|a| a.id == id)
    {
        return Err(RegistryError::Unknown(id.to_string()));
    }
    store.write(|tx| {
        for a in &all {
            let active = Some(a.id.as_str()) == id;
            if a.active != active {
                let mut a = a.clone();
                a.active = active;
                tx.put(Key::new().str(&a.id), &a)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Forget adapter `id` and delete its file.
pub fn delete(store: &Store, id: &str) -> Result<AdapterRecord, RegistryError> {
    let key = Key::new().str(id);
    let a: AdapterRecord = store
        .get(&key)?
        .ok_or_else(|| RegistryError::Unknown(id.to_string()))?;
    store.write(|tx| tx.remove(Tree::Adapters, &key))?;
    if let Err(e) = std::fs::remove_file(&a.path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not delete {}: {e}", a.path.display());
    }
    Ok(a)
}

/// Mark adapters trained on `dataset_hash` as stale, saying `reason`; returns
/// the ids newly marked.
pub fn mark_stale(
    store: &Store,
    dataset_hash: &str,
    reason: &str,
) -> Result<Vec<String>, StoreError> {
    let hit: Vec<AdapterRecord> = adapters(store)?
        .into_iter()
        .filter(|a| a.dataset_hash == dataset_hash && !a.stale)
        .collect();
    store.write(|tx| {
        for a in &hit {
            let mut a = a.clone();
            a.stale = true;
            a.stale_reason = Some(reason.to_string());
            tx.put(Key::new().str(&a.id), &a)?;
        }
        Ok(())
    })?;
    Ok(hit.into_iter().map(|a| a.id).collect())
}

/// Mark every adapter trained on a set cut from any of `messages` as stale
/// (forgetting a memory or a contact calls this); returns the ids newly marked.
pub fn mark_stale_for(
    store: &Store,
    messages: &HashSet<[u8; 16]>,
    reason: &str,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for hash in super::dataset::sets_using(store, messages)? {
        out.extend(mark_stale(store, &hash, reason)?);
    }
    Ok(out)
}

/// Adapters not yet stale that [`mark_stale_for`] would mark.
fn would_go_stale(store: &Store, messages: &HashSet<[u8; 16]>) -> Result<Vec<String>, StoreError> {
    let sets: HashSet<String> = super::dataset::sets_using(store, messages)?
        .into_iter()
        .collect();
    Ok(adapters(store)?
        .into_iter()
        .filter(|a| !a.stale && sets.contains(&a.dataset_hash))
        .map(|a| a.id)
        .collect())
}

fn today() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

/// Training's part of forgetting a person: adapters trained on their messages
/// become stale (kept, marked, with a retrain offered), and the training sets
/// cut from their messages are deleted (file, record and provenance), so no
/// training file keeps their words.
pub struct ForgetCascade;

impl crate::privacy::forget::Cascade for ForgetCascade {
    fn name(&self) -> &'static str {
        "training"
    }

    fn plan(
        &self,
        store: &Store,
        t: &crate::privacy::forget::Target,
    ) -> anyhow::Result<crate::privacy::forget::Part> {
        let stale = would_go_stale(store, &t.messages)?;
        let sets = super::dataset::sets_using(store, &t.messages)?.len() as u64;
        Ok(crate::privacy::forget::Part {
            counts: [
                ("adapters marked stale".to_string(), stale.len() as u64),
                ("training sets".to_string(), sets),
            ]
            .into(),
            named: [("stale_adapters".to_string(), stale)].into(),
        })
    }

    fn apply(
        &self,
        store: &Store,
        t: &crate::privacy::forget::Target,
    ) -> anyhow::Result<crate::privacy::forget::Part> {
        let reason = format!("trained on a contact you forgot on {}", today());
        let stale = mark_stale_for(store, &t.messages, &reason)?;
        let sets = super::dataset::sets_using(store, &t.messages)?;
        for hash in &sets {
            super::dataset::delete(store, hash)?;
        }
        Ok(crate::privacy::forget::Part {
            counts: [
                ("adapters marked stale".to_string(), stale.len() as u64),
                ("training sets".to_string(), sets.len() as u64),
            ]
            .into(),
            named: [("stale_adapters".to_string(), stale)].into(),
        })
    }
}

/// After forgetting a memory: adapters trained on its sources go stale.
pub fn stale_after_forgetting_memory(
    store: &Store,
    sources: &HashSet<[u8; 16]>,
) -> Result<Vec<String>, StoreError> {
    mark_stale_for(
        store,
        sources,
        &format!("trained on a memory you forgot on {}", today()),
    )
}

/// What the Training pane shows: the latest training set, the runs (newest
/// first) and the adapters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainingOverview {
    pub dataset: Option<super::dataset::DatasetRecord>,
    pub runs: Vec<RunRecord>,
    pub adapters: Vec<AdapterRecord>,
}

pub fn overview(store: &Store) -> anyhow::Result<TrainingOverview> {
    let mut runs = runs(store)?;
    runs.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
    Ok(TrainingOverview {
        dataset: super::dataset::latest(store)?,
        runs,
        adapters: adapters(store)?,
    })
}

/// xxh3 of a file's bytes, hex (the base model's identity in provenance).
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:016x}", h.digest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(id: &str, path: PathBuf) -> AdapterRecord {
        AdapterRecord {
            id: id.into(),
            path,
            base: "base.gguf".into(),
            base_hash: "b".into(),
            dataset_hash: "d".into(),
            config: RunConfig::default(),
            steps: 1,
            final_loss: Some(1.0),
            val_loss: None,
            run: "r1".into(),
            parent: None,
            created_ms: 1,
            active: false,
            stale: false,
            stale_reason: None,
        }
    }

    #[test]
    fn one_adapter_is_active_and_deleting_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let f1 = dir.path().join("a1.gguf");
        std::fs::write(&f1, b"x").unwrap();
        add_adapter(&store, &adapter("a1", f1.clone())).unwrap();
        add_adapter(&store, &adapter("a2", dir.path().join("a2.gguf"))).unwrap();
        assert_eq!(active_path(&store).unwrap(), None);
        activate(&store, Some("a1")).unwrap();
        assert_eq!(active_path(&store).unwrap(), Some(f1.clone()));
        activate(&store, Some("a2")).unwrap();
        assert_eq!(
            adapters(&store)
                .unwrap()
                .iter()
                .filter(|a| a.active)
                .count(),
            1
        );
        let err = activate(&store, Some("nope")).unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("twin adapters list"),
            "{err}"
        );
        // A failed activation changed nothing.
        assert!(
            adapters(&store)
                .unwrap()
                .iter()
                .any(|a| a.id == "a2" && a.active)
        );
        delete(&store, "a1").unwrap();
        assert!(!f1.exists());
        assert_eq!(store.count(Tree::Adapters).unwrap(), 1);
        assert_eq!(mark_stale(&store, "d", "why").unwrap(), vec!["a2"]);
        assert!(adapters(&store).unwrap()[0].stale);
        assert_eq!(
            adapters(&store).unwrap()[0].stale_reason.as_deref(),
            Some("why")
        );
        assert!(mark_stale(&store, "d", "again").unwrap().is_empty());
    }
}
