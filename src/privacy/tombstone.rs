//! A forgotten person stays forgotten: when `twin forget contact` removes
//! someone, their identities (every alias identity imports matched them by:
//! phone numbers, e-mail addresses, platform ids and names, as
//! `crate::ingest::identity` writes them) and the conversations that were only
//! with them leave tombstones, and ingest skips whatever matches one, counting
//! it as skipped with the reason "forgotten contact". A newer export of the same
//! chat brings nothing of theirs back.
//!
//! A tombstone is a keyed hash (BLAKE2b-MAC, 128 bits) of the identity, never
//! the identity itself: the key is 32 random bytes kept in the store's `index`
//! tree (`pk`), which an encrypted store seals under its data key, so without
//! the passphrase nobody can test names against the tombstones. On a store
//! that is not encrypted the key lies beside the hashes (as everything else
//! there is readable too): the hashes then only keep the plain names out of
//! sight. Tombstones are `pt` + hash -> the forget's group id (8 bytes), so
//! `twin forget contact --undo NAME` lifts every tombstone of that forget.
//!
//! Matching by name is deliberate: an export that knows them only by name
//! (WhatsApp) must not bring them back. Someone else of exactly the same name
//! is skipped too; `--undo` lifts it.

use std::collections::HashSet;

use serde::Serialize;

use crate::ingest::records::Id;
use crate::store::{Key, Store, StoreError, Tree, TxError};

const KEY_KEY: &[u8] = b"pk";
/// The `index` prefix of tombstones.
pub const PREFIX: &[u8] = b"pt";

fn tomb_key(hash: &[u8; 16]) -> Key {
    Key::new().bytes(PREFIX).bytes(hash)
}

/// The store's tombstones, loaded once for an import.
#[derive(Debug, Clone, Default)]
pub struct Tombstones {
    key: Option<[u8; 32]>,
    hashes: HashSet<[u8; 16]>,
}

fn mac(key: &[u8; 32], what: &str) -> [u8; 16] {
    use blake2::digest::Mac;
    let mut m = <blake2::Blake2bMac<blake2::digest::consts::U16> as Mac>::new_from_slice(key)
        .expect("32-byte key fits BLAKE2b");
    m.update(b"twin tombstone v1\0");
    m.update(what.as_bytes());
    m.finalize().into_bytes().into()
}

/// The identity string of a conversation, for its tombstone.
pub fn conversation_identity(id: Id) -> String {
    format!("conversation:{id:016x}")
}

fn stored_key(store: &Store) -> Result<Option<[u8; 32]>, StoreError> {
    Ok(store
        .tree(Tree::Index)
        .get(KEY_KEY)?
        .and_then(|v| v.as_ref().try_into().ok()))
}

fn key_or_new(store: &Store) -> Result<[u8; 32], StoreError> {
    if let Some(k) = stored_key(store)? {
        return Ok(k);
    }
    let k = crate::store::crypt::random::<32>()?;
    store.write(|tx| {
        // Another writer may have made one meanwhile: keep the first.
        if let Some(v) = tx.get_raw(Tree::Index, KEY_KEY)?
            && let Ok(existing) = <[u8; 32]>::try_from(v.as_ref())
        {
            return Ok::<_, TxError>(existing);
        }
        tx.put_raw(Tree::Index, KEY_KEY, k.to_vec())?;
        Ok(k)
    })
}

impl Tombstones {
    pub fn load(store: &Store) -> Result<Tombstones, StoreError> {
        let mut hashes = HashSet::new();
        for kv in store.tree(Tree::Index).scan_prefix(PREFIX) {
            let (k, _) = kv?;
            if let Some(h) = k.get(PREFIX.len()..).and_then(|b| b.try_into().ok()) {
                hashes.insert(h);
            }
        }
        let key = if hashes.is_empty() {
            None
        } else {
            stored_key(store)?
        };
        Ok(Tombstones { key, hashes })
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() || self.key.is_none()
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether `identity` ("tel:+44...", "name:alice", a conversation's) is forgotten.
    pub fn contains(&self, identity: &str) -> bool {
        match &self.key {
            Some(k) if !self.hashes.is_empty() => self.hashes.contains(&mac(k, identity)),
            _ => false,
        }
    }

    /// Whether any of `identities` is forgotten.
    pub fn any(&self, identities: &[String]) -> bool {
        !self.is_empty() && identities.iter().any(|i| self.contains(i))
    }
}

/// Leave tombstones for `identities` as one group (one forget); returns how many
/// were new.
pub fn bury(store: &Store, identities: &[String]) -> Result<u64, StoreError> {
    if identities.is_empty() {
        return Ok(0);
    }
    let key = key_or_new(store)?;
    let group = crate::store::crypt::random::<8>()?;
    let hashes: Vec<[u8; 16]> = identities.iter().map(|i| mac(&key, i)).collect();
    store.write(|tx| {
        let mut n = 0;
        for h in &hashes {
            if tx.put_raw(Tree::Index, tomb_key(h), group.to_vec())? {
                n += 1;
            }
        }
        Ok::<_, TxError>(n)
    })
}

/// The identities a name given on the command line may stand for.
pub fn identities_of_query(query: &str) -> Vec<String> {
    let q = query.trim();
    let mut out = vec![format!(
        "name:{}",
        crate::ingest::identity::normalize_name(q)
    )];
    if let Some(p) = crate::ingest::identity::phone(q) {
        out.push(format!("tel:{p}"));
    }
    if q.contains('@') {
        out.push(format!("mail:{}", q.to_lowercase()));
    }
    // An identity written out in full ("id:telegram:123").
    if q.contains(':') {
        out.push(q.to_string());
    }
    out
}

/// What `twin forget contact --undo NAME` did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UndoReport {
    pub query: String,
    /// Tombstones lifted (every one of the forget that matched).
    pub lifted: u64,
}

impl std::fmt::Display for UndoReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lifted == 0 {
            write!(
                f,
                "no forgotten contact matches `{}` (try the name, number or address exactly as the export writes it)",
                self.query
            )
        } else {
            write!(
                f,
                "`{}` is no longer forgotten ({} tombstones lifted): the next import of their messages brings them back",
                self.query, self.lifted
            )
        }
    }
}

impl crate::jobs::Summary for UndoReport {}

/// Lift the tombstones of the forget that `query` matches.
pub fn undo(store: &Store, query: &str) -> Result<UndoReport, StoreError> {
    let mut report = UndoReport {
        query: query.to_string(),
        lifted: 0,
    };
    let Some(key) = stored_key(store)? else {
        return Ok(report);
    };
    let mut groups = HashSet::new();
    for i in identities_of_query(query) {
        if let Some(g) = store.tree(Tree::Index).get(tomb_key(&mac(&key, &i)))? {
            groups.insert(g.to_vec());
        }
    }
    if groups.is_empty() {
        return Ok(report);
    }
    let mut doomed: Vec<Vec<u8>> = Vec::new();
    for kv in store.tree(Tree::Index).scan_prefix(PREFIX) {
        let (k, v) = kv?;
        if groups.contains(v.as_ref()) {
            doomed.push(k.to_vec());
        }
    }
    report.lifted = store.write(|tx| {
        let mut n = 0;
        for k in &doomed {
            if tx.remove(Tree::Index, k)? {
                n += 1;
            }
        }
        Ok::<_, TxError>(n)
    })?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_match_identities_and_undo_lifts_a_whole_forget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert!(Tombstones::load(&store).unwrap().is_empty());
        bury(
            &store,
            &["tel:+447700900001".into(), "name:alice smith".into()],
        )
        .unwrap();
        bury(&store, &["name:bob".into()]).unwrap();
        let t = Tombstones::load(&store).unwrap();
        assert_eq!(t.len(), 3);
        assert!(t.contains("name:alice smith"));
        assert!(t.any(&["id:x:1".into(), "tel:+447700900001".into()]));
        assert!(!t.contains("name:carol"));
        // No plain identity is stored.
        for kv in store.tree(Tree::Index).iter() {
            let (k, v) = kv.unwrap();
            for b in [k.as_ref(), v.as_ref()] {
                assert!(!b.windows(5).any(|w| w == b"alice"));
            }
        }
        let r = undo(&store, "Alice Smith").unwrap();
        assert_eq!(r.lifted, 2);
        let t = Tombstones::load(&store).unwrap();
        assert!(!t.contains("tel:+447700900001") && t.contains("name:bob"));
        assert_eq!(undo(&store, "nobody").unwrap().lifted, 0);
    }
}
