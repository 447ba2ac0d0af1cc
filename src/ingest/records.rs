//! What ingest stores: messages, contacts, conversations, sources, windows and
//! documents, with stable ids so re-importing is idempotent.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use super::{Attachment, Format, MessageKind, Reaction};
use crate::store::{Key, Record, Tree};

/// A stable id (the same on every machine and every twin version).
pub type Id = u64;

/// A 64-bit id from parts, each length-prefixed so ("ab","c") != ("a","bc").
pub fn id_of(parts: &[&[u8]]) -> Id {
    let mut h = Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.digest()
}

/// A 128-bit content hash from parts: the key of a message.
pub fn hash128(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.digest128().to_be_bytes()
}

/// A quick fingerprint of bytes (file heads, sizes).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// One stored message. Key: its 16-byte content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub source: Id,
    pub conversation: Id,
    /// The contact who wrote it.
    pub author: Id,
    /// The name the export gave the author for this message (what a split
    /// of a wrongly merged contact goes by).
    #[serde(default)]
    pub author_name: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub at_ms: i64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The export's own id for the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    #[serde(default)]
    pub edited: bool,
    /// Set when the text was transcribed from a voice note (the export's own
    /// text, if any, is kept in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcribed: Option<super::voice_notes::Transcribed>,
}

impl Record for Message {
    const TREE: Tree = Tree::Messages;
}

/// A person across sources. Key: id, big-endian.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: Id,
    /// The name shown: the most used one.
    pub name: String,
    /// Every name seen, with how many messages used it.
    pub names: Vec<(String, u64)>,
    /// Phone numbers, e-mail addresses, platform user ids (normalized).
    pub handles: Vec<String>,
    /// This is the person whose twin this is.
    pub me: bool,
    pub messages: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub formats: Vec<Format>,
}

impl Record for Contact {
    const TREE: Tree = Tree::Contacts;
}

impl Contact {
    pub fn key(id: Id) -> Key {
        Key::new().u64(id)
    }
}

/// A chat, channel, thread or mail thread. Key: id, big-endian.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: Id,
    pub source: Id,
    pub format: Format,
    /// The export's own id or name for it.
    pub native: String,
    pub title: Option<String>,
    pub group: Option<bool>,
    pub participants: Vec<Id>,
    pub messages: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Windows must be recomputed (set when messages arrive, cleared after).
    #[serde(default)]
    pub windows_stale: bool,
}

impl Record for Conversation {
    const TREE: Tree = Tree::Conversations;
}

impl Conversation {
    pub fn key(id: Id) -> Key {
        Key::new().u64(id)
    }
}

/// One imported unit (a chat file, an export folder). Key: id, big-endian.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub id: Id,
    pub format: Format,
    /// The file or folder, as the user named it.
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
    /// Sizes and heads of the files: unchanged means the same export.
    pub fingerprint: u64,
    /// Messages read so far in the stream (the resume point).
    pub cursor: u64,
    pub complete: bool,
    /// Messages by people in the unit, and how many were new to the store.
    pub messages: u64,
    pub new: u64,
    pub imported_at_ms: i64,
}

impl Record for SourceRecord {
    const TREE: Tree = Tree::Sources;
}

/// A conversation window: messages with no pause longer than the gap.
/// Key: conversation id, start time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub conversation: Id,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Message keys in time order.
    pub messages: Vec<[u8; 16]>,
    /// The author of each message, in the same order.
    pub authors: Vec<Id>,
}

impl Record for Window {
    const TREE: Tree = Tree::Windows;
}

impl Window {
    pub fn key(conversation: Id, start_ms: i64) -> Key {
        Key::new().u64(conversation).i64(start_ms)
    }
}

/// A stored note or document. Key: id of (source, path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDocument {
    pub source: Id,
    pub doc: super::Document,
    pub content_hash: u64,
}

impl Record for StoredDocument {
    const TREE: Tree = Tree::Documents;
}

/// Secondary keys in the `index` tree.
pub mod index {
    use crate::store::Key;

    use super::Id;

    /// identity string ("tel:+15550100", "mail:a@b.c", "name:alice") -> contact id.
    pub fn alias(identity: &str) -> Key {
        Key::new().bytes(b"a").str(identity)
    }

    /// Messages of a conversation in time order, in the `timeline` tree (not
    /// `index`: the store keeps it in the messages log); the value is the
    /// author id.
    pub fn timeline(conversation: Id, at_ms: i64, message: &[u8; 16]) -> Key {
        Key::new()
            .bytes(b"t")
            .u64(conversation)
            .i64(at_ms)
            .bytes(message)
    }

    pub fn timeline_prefix(conversation: Id) -> Key {
        Key::new().bytes(b"t").u64(conversation)
    }

    /// Messages per local day (days since 1970-01-01); the value is a u64 count.
    pub fn day(day: i64) -> Key {
        Key::new().bytes(b"d").i64(day)
    }

    pub const DAY_PREFIX: &[u8] = b"d";

    /// The day number back from a [`day`] key.
    pub fn day_of_key(k: &[u8]) -> Option<i64> {
        let b: [u8; 8] = k.get(1..9)?.try_into().ok()?;
        Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
    }
}

/// `MessageKind` only matters before storing: service lines are counted, not kept.
pub fn is_person(kind: MessageKind) -> bool {
    kind == MessageKind::Message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_unambiguous() {
        assert_eq!(id_of(&[b"a", b"bc"]), id_of(&[b"a", b"bc"]));
        assert_ne!(id_of(&[b"ab", b"c"]), id_of(&[b"a", b"bc"]));
        // Pinned: a changed hash would silently duplicate every stored message.
        assert_eq!(id_of(&[b"twin"]), 0xb371_f97d_b4ea_e7bf);
    }
}
