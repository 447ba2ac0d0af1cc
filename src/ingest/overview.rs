//! What the Ingest pane shows about the store: each imported source, activity
//! per day for the heatmap, and who "me" is.

use std::path::PathBuf;

use serde::Serialize;

use super::Format;
use super::contacts::{ContactRow, ContactsReport, MeReport, who_is_me};
use super::records::{SourceRecord, index};
use crate::store::{Store, StoreError, Tree};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRow {
    pub path: PathBuf,
    pub format: Format,
    pub messages: u64,
    pub new: u64,
    pub bytes: u64,
    pub complete: bool,
    pub imported_at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestOverview {
    /// Newest import first.
    pub sources: Vec<SourceRow>,
    /// (days since 1970-01-01, messages), by day.
    pub activity: Vec<(i64, u64)>,
    pub me: MeReport,
    /// Everyone, busiest first (for merging and splitting).
    pub contacts: Vec<ContactRow>,
}

pub fn gather(store: &Store) -> Result<IngestOverview, StoreError> {
    let mut sources: Vec<SourceRow> = store
        .scan::<SourceRecord>([])
        .map(|r| {
            r.map(|(_, s)| SourceRow {
                path: s.path,
                format: s.format,
                messages: s.messages,
                new: s.new,
                bytes: s.bytes,
                complete: s.complete,
                imported_at_ms: s.imported_at_ms,
            })
        })
        .collect::<Result<_, _>>()?;
    sources.sort_by(|a, b| {
        b.imported_at_ms
            .cmp(&a.imported_at_ms)
            .then(a.path.cmp(&b.path))
    });
    let mut activity = Vec::new();
    for kv in store.tree(Tree::Index).scan_prefix(index::DAY_PREFIX) {
        let (k, v) = kv.map_err(|e| StoreError::Aborted(e.to_string()))?;
        if let Some(day) = index::day_of_key(&k) {
            activity.push((
                day,
                u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            ));
        }
    }
    let contacts = ContactsReport::new(store, None)?.contacts;
    Ok(IngestOverview {
        sources,
        activity,
        me: who_is_me(store)?,
        contacts,
    })
}
