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
