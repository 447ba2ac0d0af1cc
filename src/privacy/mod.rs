//! Private by construction: what twin promises and the pieces that keep it
//! (see `docs/privacy.md`).
//!
//! - No network: twin opens no connection except the loopback listener of
//!   `twin serve` and an `engine = "openai"` base URL the user configured
//!   ([`NETWORK_STATEMENT`], shown by `twin doctor`; tested under strace in
//!   `tests/offline.rs`).
//! - Private files: folders 0700, files 0600 (umask 077 at start-up); [`exposed`]
//!   lists what is not.
//! - Encryption at rest: [`crate::store::crypt`] and [`crate::store::convert`].
//! - Export everything and restore it: [`bundle`].
//! - Forget a person everywhere: [`forget`]; never train on someone: [`never_train`].
//! - Logs carry no message text unless `log.content` is on: [`crate::logging::redact`].

pub mod bundle;
pub mod forget;
pub mod memfile;
pub mod never_train;
pub mod tombstone;
pub mod value;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::ingest::records::Id;
use crate::paths::Paths;
use crate::store::{Store, StoreError};

/// What `twin encrypt` did to the files twin keeps beside the store.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq)]
pub struct SealedBeside {
    /// Training sets, checkpoints, reports and adapters sealed in place.
    pub files_sealed: u64,
    /// The plain HNSW dump was wiped (an encrypted store keeps its index in
    /// memory only and rebuilds it from the sealed vectors).
    pub index_wiped: bool,
}

/// After `twin encrypt`: seal, in place, every plain file that training wrote
/// beside the store (sets, checkpoints, reports, adapters), and wipe the plain
/// memory index dump. Each old file is overwritten with zeros before the
/// sealed copy replaces it, so its plaintext does not stay on disk.
pub fn seal_beside(paths: &Paths, store: &Store) -> Result<SealedBeside, StoreError> {
    let sealer = store.sealer();
    let mut done = SealedBeside::default();
    if !sealer.is_encrypted() {
        return Ok(done);
    }
    let index = crate::memory::index_dir(&paths.store_dir());
    if index.exists() {
        crate::store::convert::shred_dir(&index).map_err(|source| StoreError::Io {
            path: index.clone(),
            source,
        })?;
        done.index_wiped = true;
    }
    let setup = crate::train::run::Setup::dirs(paths);
    let mut todo: Vec<PathBuf> = setup.to_vec();
    while let Some(p) = todo.pop() {
        let io = |source| StoreError::Io {
            path: p.clone(),
            source,
        };
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).map_err(io)? {
                todo.push(e.map_err(io)?.path());
            }
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(io)?;
        if bytes.starts_with(crate::store::crypt::FILE_MAGIC) {
            continue;
        }
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(io)?;
            f.write_all(&vec![0u8; bytes.len()]).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        sealer.write(&p, &bytes)?;
        done.files_sealed += 1;
    }
    Ok(done)
}

/// What `twin doctor` says about the network.
pub const NETWORK_STATEMENT: &str = "twin makes no network connections: everything runs on this machine. The only exceptions are ones you configure: the loopback listener of `twin serve` and an `engine = \"openai\"` base URL. (Fetching models is a separate script, scripts/fetch-models.sh.)";

/// Group- or world-accessible files and folders under twin's folders.
pub fn exposed(paths: &Paths) -> Vec<(PathBuf, u32)> {
    let dirs: Vec<&Path> = vec![
        &paths.config_dir,
        &paths.data_dir,
        &paths.state_dir,
        &paths.log_dir,
    ];
    let mut seen = HashSet::new();
    crate::paths::exposed(&dirs)
        .into_iter()
        .filter(|(p, _)| seen.insert(p.clone()))
        // Models are public downloads; a shared models folder may be readable.
        .filter(|(p, _)| !p.starts_with(paths.default_models_dir()))
        .collect()
}

/// The command that makes `paths` private again.
pub fn chmod_fix(paths: &Paths) -> String {
    let dirs: Vec<String> = [
        &paths.config_dir,
        &paths.data_dir,
        &paths.state_dir,
        &paths.log_dir,
    ]
    .iter()
    .map(|d| format!("'{}'", d.display()))
    .collect();
    format!("chmod -R go-rwx {}", dirs.join(" "))
}

/// A short warning for start-up when something is exposed.
pub fn exposed_warning(paths: &Paths) -> Option<String> {
    let e = exposed(paths);
    let (first, mode) = e.first()?;
    Some(format!(
        "{} of twin's files and folders can be read by other users (e.g. {} is {:o}); run: {}",
        e.len(),
        first.display(),
        mode,
        chmod_fix(paths)
    ))
}

/// The contacts `privacy.never_train` names, resolved to ids, and the entries
/// that match no contact. The dataset builder must leave out every message
/// written by, and every example whose reply or context comes from, these ids.
pub fn never_train(
    store: &Store,
    names: &[String],
) -> Result<(HashSet<Id>, Vec<String>), StoreError> {
    let mut ids = HashSet::new();
    let mut unknown = Vec::new();
    for n in names {
        match crate::ingest::contacts::find(store, n)? {
            Some(c) => {
                ids.insert(c.id);
            }
            None => unknown.push(n.clone()),
        }
    }
    Ok((ids, unknown))
}

/// Whether the dataset builder may use messages by `author`.
pub fn may_train_on(author: Id, never: &HashSet<Id>) -> bool {
    !never.contains(&author)
}
