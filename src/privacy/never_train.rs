//! "Never train on Alice": the people whose conversations stay out of every
//! training set. Two sources, unioned: `privacy.never_train` in config.toml
//! (names, numbers, addresses or ids) and the list kept in the store
//! (`twin privacy never-train add|remove|list`, `n` in the Ingest pane's
//! contact list), stored by contact id in the `index` tree (`pn` + id; sealed
//! on an encrypted store like every other value).
//!
//! What is left out (see [`crate::train::dataset::collect`]): every
//! conversation window in which such a contact wrote anything — their
//! messages, my replies in that session and everyone else's turns in it — so
//! neither their words (as context) nor my words to them (as replies) teach the
//! twin. Sessions of a group chat in which they wrote nothing still train.
//! Memory is not affected: conversations with them still count for recall.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

use crate::ingest::records::{Contact, Id};
use crate::store::{Key, Store, StoreError, Tree};

/// The `index` key prefix of the stored list.
pub const PREFIX: &[u8] = b"pn";

fn key(id: Id) -> Key {
    Key::new().bytes(PREFIX).u64(id)
}

/// Contact ids in the stored list.
pub fn stored(store: &Store) -> Result<BTreeSet<Id>, StoreError> {
    let mut out = BTreeSet::new();
    for kv in store.tree(Tree::Index).scan_prefix(PREFIX) {
        let (k, _) = kv?;
        if let Some(b) = k.get(PREFIX.len()..PREFIX.len() + 8) {
            out.insert(u64::from_be_bytes(b.try_into().expect("8 bytes")));
        }
    }
    Ok(out)
}

/// Every contact twin must not train on: the stored list and the config's
/// names resolved; plus the config entries that match no contact.
pub fn ids(store: &Store, config: &[String]) -> Result<(HashSet<Id>, Vec<String>), StoreError> {
    let (mut ids, unknown) = super::never_train(store, config)?;
    ids.extend(stored(store)?);
    Ok((ids, unknown))
}

/// One row of `twin privacy never-train list`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub id: String,
    pub name: String,
    /// "store" (added with the command or the pane) or "config" (privacy.never_train).
    pub from: &'static str,
}

/// What a never-train command did and the whole list after it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub changed: Option<String>,
    pub contacts: Vec<Entry>,
    /// Config entries that match no contact (typos, or people not imported yet).
    pub unknown: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(c) = &self.changed {
            writeln!(f, "{c}")?;
        }
        if self.contacts.is_empty() {
            write!(f, "twin trains on everyone's conversations")?;
        } else {
            write!(f, "never trained on:")?;
            for e in &self.contacts {
                write!(f, "\n  {}  {} ({})", e.id, e.name, e.from)?;
            }
        }
        for u in &self.unknown {
            write!(
                f,
                "\nprivacy.never_train names `{u}`, which matches no contact (yet)"
            )?;
        }
        Ok(())
    }
}

impl crate::jobs::Summary for Report {}

/// The list as it stands.
pub fn report(
    store: &Store,
    config: &[String],
    changed: Option<String>,
) -> Result<Report, StoreError> {
    let (from_config, unknown) = super::never_train(store, config)?;
    let kept = stored(store)?;
    let mut contacts = Vec::new();
    let all: BTreeSet<Id> = kept
        .iter()
        .copied()
        .chain(from_config.iter().copied())
        .collect();
    for id in all {
        let name = store
            .get::<Contact>(Contact::key(id))?
            .map(|c| c.name)
            .unwrap_or_else(|| "(contact no longer in the store)".into());
        contacts.push(Entry {
            id: format!("{id:016x}"),
            name,
            from: if from_config.contains(&id) {
                "config"
            } else {
                "store"
            },
        });
    }
    Ok(Report {
        changed,
        contacts,
        unknown,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum NeverTrainError {
    #[error("no contact matches `{0}`; `twin contacts` lists names and ids")]
    Unknown(String),
    #[error("{0} is you: the twin learns from your own words (forget a conversation instead)")]
    Me(String),
    #[error(
        "{name} is listed in privacy.never_train in {file}; remove them there (the config file wins over this list)"
    )]
    InConfig { name: String, file: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn find(store: &Store, query: &str) -> Result<Contact, NeverTrainError> {
    crate::ingest::contacts::find(store, query)?
        .ok_or_else(|| NeverTrainError::Unknown(query.to_string()))
}

/// Add a contact (by id) to the stored list; true when it was not there yet.
pub fn add_id(store: &Store, id: Id) -> Result<bool, StoreError> {
    store.write(|tx| tx.put_raw(Tree::Index, key(id), Vec::new()))
}

/// Take a contact (by id) off the stored list; true when it was there.
pub fn remove_id(store: &Store, id: Id) -> Result<bool, StoreError> {
    store.write(|tx| tx.remove(Tree::Index, key(id)))
}

/// `twin privacy never-train add NAME`.
pub fn add(store: &Store, query: &str, config: &[String]) -> Result<Report, NeverTrainError> {
    let c = find(store, query)?;
    if c.me {
        return Err(NeverTrainError::Me(c.name));
    }
    let new = add_id(store, c.id)?;
    let what = if new {
        format!(
            "{} is never trained on from now on; adapters already trained on them are unchanged until you retrain (`twin dataset build`, `twin train`)",
            c.name
        )
    } else {
        format!("{} was already never trained on", c.name)
    };
    Ok(report(store, config, Some(what))?)
}

/// `twin privacy never-train remove NAME`.
pub fn remove(
    store: &Store,
    query: &str,
    config: &[String],
    config_file: &str,
) -> Result<Report, NeverTrainError> {
    let c = find(store, query)?;
    let (from_config, _) = super::never_train(store, config)?;
    if from_config.contains(&c.id) {
        return Err(NeverTrainError::InConfig {
            name: c.name,
            file: config_file.to_string(),
        });
    }
    let what = if remove_id(store, c.id)? {
        format!(
            "{} may be trained on again (the next `twin dataset build`)",
            c.name
        )
    } else {
        format!("{} was not on the list", c.name)
    };
    Ok(report(store, config, Some(what))?)
}

/// Add when absent, remove when present (the Ingest pane's key). Returns
/// whether the contact is now never trained on.
pub fn toggle(store: &Store, id: Id) -> Result<bool, StoreError> {
    if stored(store)?.contains(&id) {
        remove_id(store, id)?;
        Ok(false)
    } else {
        add_id(store, id)?;
        Ok(true)
    }
}
