//! What ingest stores: messages, contacts, conversations, sources, windows and
//! documents, with stable ids so re-importing is idempotent.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::{Attachment, Format, MessageKind, Reaction};
use crate::store::{Key, Record, Tree};

/// A stable id (the same on every machine and every twin version).
pub type Id = u64;

/// `parts`, each length-prefixed, in one buffer (reused per thread): XXH3 of
/// the whole equals XXH3 streamed over the same bytes, so ids and keys are
/// what they always were, without the streaming state's set-up per message.
fn with_joined<R>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        for p in parts {
            b.extend_from_slice(&(p.len() as u64).to_le_bytes());
            b.extend_from_slice(p);
        }
        let r = f(&b);
        if b.capacity() > 1 << 20 {
            // A huge message once does not keep its buffer for the thread's life.
            *b = Vec::new();
        }
        r
    })
}

/// A 64-bit id from parts, each length-prefixed so ("ab","c") != ("a","bc").
pub fn id_of(parts: &[&[u8]]) -> Id {
    with_joined(parts, xxh3_64)
}

/// A 128-bit content hash from parts: the key of a message.
pub fn hash128(parts: &[&[u8]]) -> [u8; 16] {
    with_joined(parts, |b| xxh3_128(b).to_be_bytes())
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

/// Version 2 of a message's stored form: fixed-width ids and time first (so
/// readers of the timeline fields need not parse the rest), then the strings
/// length-prefixed, then the rare parts. Version 1 was MessagePack with field
/// names: two fifths of every record were the names, and encoding it was a
/// tenth of an import's CPU. Layout after the version byte:
///
/// `source u64 | conversation u64 | author u64 | at_ms i64` (little-endian),
/// `flags u8`, `author_name`, `text`, then `native_id` and `reply_to` when
/// their flag is set, then, when `EXTRAS` is, MessagePack with field
/// names of the attachments, reactions and transcript (to the end).
/// Strings are a LEB128 length and UTF-8 bytes.
mod message_form {
    pub const EDITED: u8 = 1;
    pub const NATIVE_ID: u8 = 2;
    pub const REPLY_TO: u8 = 4;
    pub const EXTRAS: u8 = 8;
    /// Bytes before the flags.
    pub const FIXED: usize = 32;
    /// Where the author is in an encoded record (after the version byte,
    /// source and conversation).
    pub const AUTHOR_AT: usize = 1 + 16;
}

/// Set the author of an encoded message record (as [`crate::store::codec::encode`]
/// writes it): an import encodes a message before it knows its contact.
pub fn set_record_author(record: &mut [u8], author: Id) {
    use message_form::AUTHOR_AT;
    record[AUTHOR_AT..AUTHOR_AT + 8].copy_from_slice(&author.to_le_bytes());
}

#[derive(Serialize)]
struct ExtrasOut<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attachments: &'a [Attachment],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    reactions: &'a [Reaction],
    #[serde(skip_serializing_if = "Option::is_none")]
    transcribed: &'a Option<super::voice_notes::Transcribed>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExtrasIn {
    attachments: Vec<Attachment>,
    reactions: Vec<Reaction>,
    transcribed: Option<super::voice_notes::Transcribed>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
}

/// Reads a message's version-2 form.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bad(what: &str) -> crate::store::CodecError {
        crate::store::CodecError::Malformed {
            tree: Tree::Messages.name(),
            detail: format!("{what} is cut short or not UTF-8"),
        }
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], crate::store::CodecError> {
        let (a, b) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| Self::bad(what))?;
        self.rest = b;
        Ok(a)
    }

    fn u64(&mut self, what: &str) -> Result<u64, crate::store::CodecError> {
        let b = self.bytes(8, what)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| Self::bad(what))?,
        ))
    }

    fn str(&mut self, what: &str) -> Result<String, crate::store::CodecError> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let &b = self.rest.first().ok_or_else(|| Self::bad(what))?;
            self.rest = &self.rest[1..];
            if shift > 63 {
                return Err(Self::bad(what));
            }
            n |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let n = usize::try_from(n).map_err(|_| Self::bad(what))?;
        let b = self.bytes(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| Self::bad(what))
    }
}

impl Record for Message {
    const TREE: Tree = Tree::Messages;
    const VERSION: u8 = 2;

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), crate::store::CodecError> {
        use message_form::*;
        out.reserve(FIXED + 3 + self.author_name.len() + self.text.len());
        out.extend_from_slice(&self.source.to_le_bytes());
        out.extend_from_slice(&self.conversation.to_le_bytes());
        out.extend_from_slice(&self.author.to_le_bytes());
        out.extend_from_slice(&self.at_ms.to_le_bytes());
        let extras = !self.attachments.is_empty()
            || !self.reactions.is_empty()
            || self.transcribed.is_some();
        let flags = if self.edited { EDITED } else { 0 }
            | if self.native_id.is_some() {
                NATIVE_ID
            } else {
                0
            }
            | if self.reply_to.is_some() { REPLY_TO } else { 0 }
            | if extras { EXTRAS } else { 0 };
        out.push(flags);
        put_str(out, &self.author_name);
        put_str(out, &self.text);
        if let Some(id) = &self.native_id {
            put_str(out, id);
        }
        if let Some(r) = &self.reply_to {
            put_str(out, r);
        }
        if extras {
            let e = ExtrasOut {
                attachments: &self.attachments,
                reactions: &self.reactions,
                transcribed: &self.transcribed,
            };
            rmp_serde::encode::write_named(out, &e).map_err(|source| {
                crate::store::CodecError::Encode {
                    tree: Tree::Messages.name(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    fn decode_body(body: &[u8]) -> Result<Self, crate::store::CodecError> {
        use message_form::*;
        let mut r = Reader { rest: body };
        let source = r.u64("source")?;
        let conversation = r.u64("conversation")?;
        let author = r.u64("author")?;
        let at_ms = r.u64("time")? as i64;
        let flags = r.bytes(1, "flags")?[0];
        let author_name = r.str("author name")?;
        let text = r.str("text")?;
        let native_id = if flags & NATIVE_ID != 0 {
            Some(r.str("native id")?)
        } else {
            None
        };
        let reply_to = if flags & REPLY_TO != 0 {
            Some(r.str("reply")?)
        } else {
            None
        };
        let extras: ExtrasIn = if flags & EXTRAS != 0 {
            rmp_serde::from_slice(r.rest).map_err(|source| crate::store::CodecError::Decode {
                tree: Tree::Messages.name(),
                source,
            })?
        } else if r.rest.is_empty() {
            ExtrasIn::default()
        } else {
            return Err(crate::store::CodecError::Malformed {
                tree: Tree::Messages.name(),
                detail: format!("{} bytes past the end", r.rest.len()),
            });
        };
        Ok(Message {
            source,
            conversation,
            author,
            author_name,
            at_ms,
            text,
            attachments: extras.attachments,
            native_id,
            reply_to,
            reactions: extras.reactions,
            edited: flags & EDITED != 0,
            transcribed: extras.transcribed,
        })
    }

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, crate::store::CodecError> {
        if version == 1 {
            // MessagePack with field names (before the compact form).
            return rmp_serde::from_slice(body).map_err(|source| {
                crate::store::CodecError::Decode {
                    tree: Tree::Messages.name(),
                    source,
                }
            });
        }
        Err(crate::store::CodecError::UnknownVersion {
            tree: Tree::Messages.name(),
            found: version,
            supported: <Message as Record>::VERSION,
        })
    }
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
    /// Message keys in time order (stored as one byte string: 16 bytes each).
    #[serde(with = "packed::keys")]
    pub messages: Vec<[u8; 16]>,
    /// The author of each message, in the same order (one byte string: 8
    /// bytes each, big-endian).
    #[serde(with = "packed::ids")]
    pub authors: Vec<Id>,
}

/// How version 1 stored a window: each key an array of 16 numbers, each
/// author a number (a million-message window was 16 million MessagePack
/// items to write and to read).
#[derive(Deserialize)]
struct WindowV1 {
    conversation: Id,
    start_ms: i64,
    end_ms: i64,
    messages: Vec<[u8; 16]>,
    authors: Vec<Id>,
}

impl Record for Window {
    const TREE: Tree = Tree::Windows;
    const VERSION: u8 = 2;

    fn upgrade(version: u8, body: &[u8]) -> Result<Window, crate::store::CodecError> {
        if version != 1 {
            return Err(crate::store::CodecError::UnknownVersion {
                tree: Self::TREE.name(),
                found: version,
                supported: Self::VERSION,
            });
        }
        let w: WindowV1 =
            rmp_serde::from_slice(body).map_err(|source| crate::store::CodecError::Decode {
                tree: Self::TREE.name(),
                source,
            })?;
        Ok(Window {
            conversation: w.conversation,
            start_ms: w.start_ms,
            end_ms: w.end_ms,
            messages: w.messages,
            authors: w.authors,
        })
    }
}

/// Fixed-size items serialized as one byte string.
mod packed {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Reads a byte string into items of `N` bytes.
    struct Chunks<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for Chunks<N> {
        type Value = Vec<[u8; N]>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a byte string of {N}-byte items")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            if !v.len().is_multiple_of(N) {
                return Err(E::invalid_length(v.len(), &self));
            }
            Ok(v.chunks_exact(N)
                .map(|c| c.try_into().expect("exact chunks"))
                .collect())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            self.visit_bytes(&v)
        }
    }

    pub mod keys {
        use super::*;

        pub fn serialize<S: Serializer>(v: &[[u8; 16]], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v.as_flattened())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 16]>, D::Error> {
            d.deserialize_bytes(Chunks::<16>)
        }
    }

    pub mod ids {
        use super::*;

        pub fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
            let bytes: Vec<u8> = v.iter().flat_map(|id| id.to_be_bytes()).collect();
            s.serialize_bytes(&bytes)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
            let chunks = d.deserialize_bytes(Chunks::<8>)?;
            Ok(chunks.into_iter().map(u64::from_be_bytes).collect())
        }
    }
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
        Key::new().bytes(&timeline_bytes(conversation, at_ms, message))
    }

    /// [`timeline`] on the stack (an import makes one per message).
    pub fn timeline_bytes(conversation: Id, at_ms: i64, message: &[u8; 16]) -> [u8; 33] {
        let mut k = [0u8; 33];
        k[0] = b't';
        k[1..9].copy_from_slice(&conversation.to_be_bytes());
        k[9..17].copy_from_slice(&((at_ms as u64) ^ (1 << 63)).to_be_bytes());
        k[17..].copy_from_slice(message);
        k
    }

    /// The time and message key back from a [`timeline`] key; `None` for a
    /// key of another shape.
    pub fn timeline_parts(k: &[u8]) -> Option<(i64, [u8; 16])> {
        if k.len() != 33 {
            return None;
        }
        let at = u64::from_be_bytes(k[9..17].try_into().ok()?) ^ (1 << 63);
        Some((at as i64, k[17..33].try_into().ok()?))
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

    #[test]
    fn message_keys_match_the_streamed_hash_they_always_were() {
        // Stores made before keys were hashed in one go must still dedupe.
        let long = vec![7u8; 5000];
        let parts: [&[u8]; 4] = [b"whatsapp", b"Chat", &long, b""];
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        assert_eq!(hash128(&parts), h.digest128().to_be_bytes());
        assert_eq!(id_of(&parts), h.digest());
    }

    fn message(extras: bool) -> Message {
        Message {
            source: 1,
            conversation: u64::MAX - 3,
            author: 42,
            author_name: "Ana Lúcia".into(),
            at_ms: -1_234_567,
            text: "x".repeat(300) + " 🙂",
            attachments: if extras {
                vec![Attachment {
                    kind: "image".into(),
                    name: Some("a.jpg".into()),
                }]
            } else {
                Vec::new()
            },
            native_id: extras.then(|| "m-17".into()),
            reply_to: extras.then(String::new),
            reactions: if extras {
                vec![Reaction {
                    author: "Bo".into(),
                    emoji: "❤".into(),
                }]
            } else {
                Vec::new()
            },
            edited: extras,
            transcribed: None,
        }
    }

    #[test]
    fn messages_round_trip_in_their_compact_form() {
        for extras in [false, true] {
            let m = message(extras);
            let bytes = crate::store::codec::encode(&m).unwrap();
            assert_eq!(bytes[0], 2);
            assert_eq!(crate::store::codec::decode::<Message>(&bytes).unwrap(), m);
        }
        // The common message: 32 bytes of ids and time, a flag byte, two
        // length-prefixed strings; no field names.
        let plain = crate::store::codec::encode(&message(false)).unwrap();
        assert_eq!(plain.len(), 1 + 32 + 1 + 1 + 10 + 2 + 305);
    }

    #[test]
    fn an_encoded_message_takes_its_author_afterwards() {
        for extras in [false, true] {
            let mut m = message(extras);
            let mut bytes = crate::store::codec::encode(&m).unwrap();
            set_record_author(&mut bytes, u64::MAX - 9);
            m.author = u64::MAX - 9;
            assert_eq!(bytes, crate::store::codec::encode(&m).unwrap());
            assert_eq!(crate::store::codec::decode::<Message>(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn version_1_messages_are_still_read() {
        let m = message(true);
        let mut old = vec![1u8];
        rmp_serde::encode::write_named(&mut old, &m).unwrap();
        assert_eq!(crate::store::codec::decode::<Message>(&old).unwrap(), m);
    }

    #[test]
    fn damaged_messages_are_an_error_not_a_panic() {
        let bytes = crate::store::codec::encode(&message(true)).unwrap();
        for cut in 0..bytes.len() {
            let _ = crate::store::codec::decode::<Message>(&bytes[..cut]);
        }
        let mut long = crate::store::codec::encode(&message(false)).unwrap();
        long.push(0);
        let err = crate::store::codec::decode::<Message>(&long).unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
        let mut lying = bytes.clone();
        lying[34] = 0xff; // author name length: more bytes than there are
        assert!(crate::store::codec::decode::<Message>(&lying).is_err());
    }

    fn window() -> Window {
        Window {
            conversation: 7,
            start_ms: -5,
            end_ms: 90,
            messages: vec![[1; 16], [2; 16], [255; 16]],
            authors: vec![1, u64::MAX, 3],
        }
    }

    #[test]
    fn windows_round_trip_packed() {
        let w = window();
        let bytes = crate::store::codec::encode(&w).unwrap();
        assert_eq!(bytes[0], 2);
        // 3 keys and 3 ids as two byte strings, not 51 numbers.
        assert!(bytes.len() < 48 + 24 + 80, "{} bytes", bytes.len());
        assert_eq!(crate::store::codec::decode::<Window>(&bytes).unwrap(), w);
    }

    #[test]
    fn version_one_windows_still_read() {
        #[derive(Serialize)]
        struct V1 {
            conversation: Id,
            start_ms: i64,
            end_ms: i64,
            messages: Vec<[u8; 16]>,
            authors: Vec<Id>,
        }
        let w = window();
        let mut bytes = vec![1u8];
        rmp_serde::encode::write_named(
            &mut bytes,
            &V1 {
                conversation: w.conversation,
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                messages: w.messages.clone(),
                authors: w.authors.clone(),
            },
        )
        .unwrap();
        assert_eq!(crate::store::codec::decode::<Window>(&bytes).unwrap(), w);
    }

    #[test]
    fn a_torn_packed_list_is_an_error() {
        use serde::de::value::{BytesDeserializer, Error};
        let torn = BytesDeserializer::<Error>::new(&[0u8; 17]);
        assert!(packed::keys::deserialize(torn).is_err());
        let whole = BytesDeserializer::<Error>::new(&[0u8; 16]);
        assert_eq!(packed::ids::deserialize(whole).unwrap(), vec![0, 0]);
    }
}
