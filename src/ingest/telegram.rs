//! Telegram Desktop JSON exports (`result.json`).
//!
//! The schema is what tdesktop writes (Telegram/SourceFiles/export/output/
//! export_output_json.cpp), in three shapes:
//!
//! ```text
//! {"name": "Bob", "type": "personal_chat", "id": 42, "messages": [...]}    <- one chat
//! {"personal_information": {"user_id": 7, ...},                           <- whole account
//!  "chats": {"about": "...", "list": [{"name": ..., "messages": [...]}]},
//!  "left_chats": {"list": [...]}}
//! {"chats": [{"name": ..., "messages": [...]}]}                          <- some tools
//! ```
//!
//! A message: `{"id": 3, "type": "message", "date": "2021-01-02T18:30:00"
//! (local time, no offset), "date_unixtime": "1609605000", "edited": "...",
//! "from": "Arian" (or null for deleted accounts), "from_id": "user100",
//! "reply_to_message_id": 2, "photo": "photos/photo_1.jpg", "file": "...",
//! "media_type": "sticker" | "voice_message" | "video_message" | "animation" |
//! "video_file" | "audio_file", "text": "plain" or ["plain", {"type": "bold",
//! "text": "x"}], "text_entities": [{"type": "plain", "text": "..."}],
//! "reactions": [{"emoji": "👍", "recent": [{"from": ...}]}]}`. Service
//! messages have `"type": "service"`, `actor`, `action` and action fields.
//! Media left out of the export are written as "(File not included. ...)".
//!
//! tdesktop has written invalid JSON: control characters as `\xNN` escapes
//! (issue #27571) and custom-emoji `document_id` values without quotes
//! (#24961, #24984, v4.1.1), and duplicate `"text"` keys (#28781). A failed
//! parse is retried after a repair pass (reported as a Problem); duplicate
//! keys are fine: the last one wins.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Reaction,
    Sink, Source, Unit, When,
};

/// Reads Telegram Desktop `result.json` exports.
pub struct Telegram;

impl Importer for Telegram {
    fn format(&self) -> Format {
        Format::Telegram
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let exports: Vec<&PathBuf> = pool
            .iter()
            .filter(|rel| is_export(src, rel, forced))
            .collect();
        let mut taken = std::collections::HashSet::new();
        exports
            .iter()
            .map(|json| {
                let dir = json.parent().unwrap_or(Path::new(""));
                let mut files = vec![(*json).clone()];
                // The export's media folders sit next to result.json.
                for p in pool {
                    let media = p
                        .strip_prefix(dir)
                        .ok()
                        .and_then(|r| r.components().next())
                        .is_some_and(|c| {
                            MEDIA_FOLDERS.contains(&c.as_os_str().to_string_lossy().as_ref())
                        });
                    if media
                        && p.components().count() > dir.components().count() + 1
                        && taken.insert(p.clone())
                    {
                        files.push(p.clone());
                    }
                }
                files.sort();
                Unit {
                    format: Format::Telegram,
                    files,
                    label: (*json).clone(),
                }
            })
            .collect()
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        let rel = unit.label.as_path();
        let file = src.display(rel);
        // Mapped, not read: result.json of a years-long account runs to GBs.
        let bytes = src.bytes(rel).map_err(|e| ImportError::io(&file, e))?;
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let fallback = fallback_conversation(src, rel);
        let export = read_export(body, &file, &fallback, out)?;
        emit(export, &fallback, &file, out);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Claiming

/// Folders tdesktop writes media into, next to result.json (`chats/` holds
/// the per-chat media of an account export).
const MEDIA_FOLDERS: &[&str] = &[
    "photos",
    "files",
    "stickers",
    "video_files",
    "voice_messages",
    "round_video_messages",
    "animations",
    "audio_files",
    "contacts",
    "profile_pictures",
    "stories",
    "chats",
];

fn own_name<'a>(src: &'a dyn Source, rel: &'a Path) -> &'a Path {
    if rel.as_os_str().is_empty() {
        src.root()
    } else {
        rel
    }
}

fn is_export(src: &dyn Source, rel: &Path, forced: bool) -> bool {
    let path = own_name(src, rel);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !name.ends_with(".json") {
        return false;
    }
    if name == "result.json" || forced {
        return true;
    }
    src.head(rel, 4096)
        .is_ok_and(|head| looks_like_telegram(&String::from_utf8_lossy(&head)))
}

/// Does the head of a JSON file look like tdesktop's output?
fn looks_like_telegram(head: &str) -> bool {
    let head = head.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if !head.starts_with('{') {
        return false;
    }
    let has = |k: &str| head.contains(k);
    has("\"date_unixtime\"")
        || has("\"personal_information\"")
        || (has("\"about\"") && has("Telegram"))
        || (has("\"messages\"")
            && [
                "\"from_id\"",
                "\"text_entities\"",
                "\"personal_chat\"",
                "\"private_group\"",
                "\"private_supergroup\"",
            ]
            .iter()
            .any(|k| has(k)))
}

/// The conversation when the export names none: the folder holding the file,
/// or the file's name.
fn fallback_conversation(src: &dyn Source, rel: &Path) -> String {
    let own = own_name(src, rel);
    let stem = own
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem != "result" && !stem.is_empty() {
        return stem;
    }
    let holder = match rel.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.file_name(),
        _ if rel.as_os_str().is_empty() => src.root().parent().and_then(Path::file_name),
        _ => src.root().file_name(),
    };
    holder
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "telegram".into())
}

// ---------------------------------------------------------------------------
// Reading the JSON

#[derive(Debug, Default)]
struct Chat {
    name: Option<String>,
    kind: Option<String>,
    id: Option<String>,
    /// The keys `name`, `type` and `id` were read (before `messages`, as
    /// tdesktop writes them): the chat is known when its messages come.
    known: u8,
    /// Messages kept until the export is read (only when they could not be
    /// handed on as they were read: see [`Stream`]).
    messages: Vec<TgMessage>,
    /// Entries of `messages` that are not objects.
    skipped: usize,
    /// Problems with streamed messages, reported with the chat's others at
    /// the end (the order a fully read chat gives).
    problems: Vec<Problem>,
}

/// Keeps the problems a streamed message has.
struct Problems<'a>(&'a mut Vec<Problem>);

impl Sink for Problems<'_> {
    fn message(&mut self, _: RawMessage) {}
    fn document(&mut self, _: super::Document) {}
    fn problem(&mut self, p: Problem) {
        self.0.push(p);
    }
}

#[derive(Debug, Default)]
struct Export {
    /// `user<id>` of the exporting account, from `personal_information`.
    me: Option<String>,
    /// The single-chat shape keeps its chat at the top level.
    top: Chat,
    chats: Vec<Chat>,
}

/// Hands messages to the sink as they are read, so a large export is not held
/// in memory message by message: a chat's messages stream when its name,
/// type and id came before them (tdesktop's order) and "me" is settled (the
/// account's `personal_information` came first, or a single chat that is not
/// Saved Messages). Anything else is kept and emitted at the end, as before.
struct Stream<'a> {
    out: &'a mut dyn Sink,
    fallback: &'a str,
    file: &'a Path,
    /// The exporting account, once `personal_information` was read.
    me: Option<String>,
    /// A `chats` list was seen (its Saved Messages could still decide "me").
    chat_list: bool,
    /// Streamed entries of `messages` so far.
    streamed: u64,
    /// Streamed entries to pass over: a repaired file is read again, and the
    /// entries before the break were handed on by the first reading.
    skip: u64,
}

/// Parses the file, repairing tdesktop's known JSON bugs when the plain parse
/// fails. A file broken part-way gives the messages before the break and a
/// Problem; one that is not JSON at all is unreadable.
fn read_export(
    bytes: &[u8],
    file: &Path,
    fallback: &str,
    out: &mut dyn Sink,
) -> Result<Export, ImportError> {
    let mut export = Export::default();
    let mut stream = Stream {
        out,
        fallback,
        file,
        me: None,
        chat_list: false,
        streamed: 0,
        skip: 0,
    };
    let Err(first) = parse_into(bytes, &mut export, &mut stream) else {
        return Ok(export);
    };
    let (export, err) = match repair(bytes) {
        Some(fixed) => {
            stream.out.problem(Problem {
                file: file.to_path_buf(),
                line: Some(fixed.first_line),
                reason: format!(
                    "Telegram wrote invalid JSON here ({} place(s): {}; known tdesktop bugs #27571 and #24961); \
                     repaired before reading",
                    fixed.count,
                    fixed.kinds.join(", ")
                ),
            });
            let mut again = Export::default();
            stream.skip = stream.streamed;
            stream.streamed = 0;
            stream.me = None;
            stream.chat_list = false;
            let result = parse_into(&fixed.bytes, &mut again, &mut stream);
            stream.streamed = stream.streamed.max(stream.skip);
            match result {
                Ok(()) => return Ok(again),
                Err(e) => (again, e),
            }
        }
        None => (export, first),
    };
    let out = stream.out;
    let read_any = stream.streamed > 0
        || export.me.is_some()
        || !export.top.messages.is_empty()
        || export.chats.iter().any(|c| !c.messages.is_empty());
    if !read_any {
        return Err(ImportError::unreadable(
            file,
            format!(
                "not a readable Telegram JSON export ({err}); export the chat again from Telegram Desktop as JSON"
            ),
        ));
    }
    out.problem(Problem {
        file: file.to_path_buf(),
        line: Some(err.line() as u64),
        reason: format!(
            "the JSON breaks off here ({err}); the messages before this point were read"
        ),
    });
    Ok(export)
}

fn parse_into(
    bytes: &[u8],
    export: &mut Export,
    stream: &mut Stream,
) -> Result<(), serde_json::Error> {
    // Valid UTF-8 throughout (the usual case) is checked once here rather
    // than string by string.
    if let Ok(text) = std::str::from_utf8(bytes) {
        let mut de = serde_json::Deserializer::from_str(text);
        TopSeed(export, stream).deserialize(&mut de)?;
        return de.end();
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    TopSeed(export, stream).deserialize(&mut de)?;
    de.end()
}

/// A JSON scalar as text ("user100", 42 -> "42"); None for null and containers.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Any JSON value read as text when it is a scalar ("user100", 42 -> "42"),
/// None for null, arrays and objects. Never fails on a type. Borrowed from
/// the file where it can be (a string without escapes): fields that are only
/// compared or parsed, and texts copied into a message, need no allocation
/// of their own.
struct LooseText<'de>(Option<Cow<'de, str>>);

impl<'de> Deserialize<'de> for LooseText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LooseText<'de>, D::Error> {
        d.deserialize_any(LooseVisitor).map(LooseText)
    }
}

/// [`LooseText`] as an owned String.
struct Loose(Option<String>);

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Loose, D::Error> {
        let text = LooseText::deserialize(d)?.0;
        Ok(Loose(text.map(Cow::into_owned)))
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// A message's `type`, without keeping the text of it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum MessageType {
    Service,
    Unsupported,
    #[default]
    Other,
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MessageType, D::Error> {
        Ok(match LooseText::deserialize(d)?.0.as_deref() {
            Some("service") => MessageType::Service,
            Some("unsupported") => MessageType::Unsupported,
            _ => MessageType::Other,
        })
    }
}

/// `date_unixtime`: what [`Loose`] reads it as (any scalar as text), parsed
/// as whole seconds; None when that fails.
struct Unixtime(Option<i64>);

impl<'de> Deserialize<'de> for Unixtime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unixtime, D::Error> {
        let text = LooseText::deserialize(d)?.0;
        Ok(Unixtime(text.and_then(|s| s.trim().parse::<i64>().ok())))
    }
}

/// `text` or `text_entities` flattened to plain text while it is read: a
/// string, or an array of strings and `{"type": ..., "text": ...}` entities.
/// Mention-by-name entities get their `@`.
#[derive(Debug, Default)]
struct FlatText {
    text: String,
    /// It was an array with at least one part.
    parts: bool,
}

impl<'de> Deserialize<'de> for FlatText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FlatText, D::Error> {
        let mut flat = FlatText::default();
        d.deserialize_any(TextSeed(&mut flat.text, &mut flat.parts))?;
        Ok(flat)
    }
}

/// Appends one text value (or part) to a string.
struct TextSeed<'a>(&'a mut String, &'a mut bool);

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message text")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut inner = false;
        while seq
            .next_element_seed(TextSeed(&mut *self.0, &mut inner))?
            .is_some()
        {
            *self.1 = true;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut mention = false;
        let mut text = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => {
                    mention = map.next_value::<LooseText>()?.0.as_deref() == Some("mention_name")
                }
                Key::Text => text = map.next_value::<LooseText>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let text = text.unwrap_or_default();
        if mention && !text.starts_with('@') {
            self.0.push('@');
        }
        self.0.push_str(&text);
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The keys twin reads from a message (and from text entities); read without
/// allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Type,
    Date,
    DateUnixtime,
    Edited,
    From,
    FromId,
    Actor,
    ActorId,
    Action,
    Title,
    Members,
    Text,
    TextEntities,
    ReplyTo,
    Photo,
    File,
    FileName,
    MediaType,
    Contact,
    Location,
    PlaceName,
    Poll,
    GameTitle,
    Invoice,
    InformationText,
    DiscardReason,
    Duration,
    Reactions,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "id" => Key::Id,
            "type" => Key::Type,
            "date" => Key::Date,
            "date_unixtime" => Key::DateUnixtime,
            "edited" => Key::Edited,
            "from" => Key::From,
            "from_id" => Key::FromId,
            "actor" => Key::Actor,
            "actor_id" => Key::ActorId,
            "action" => Key::Action,
            "title" => Key::Title,
            "members" => Key::Members,
            "text" => Key::Text,
            "text_entities" => Key::TextEntities,
            "reply_to_message_id" => Key::ReplyTo,
            "photo" => Key::Photo,
            "file" => Key::File,
            "file_name" => Key::FileName,
            "media_type" => Key::MediaType,
            "contact_information" => Key::Contact,
            "location_information" => Key::Location,
            "place_name" => Key::PlaceName,
            "poll" => Key::Poll,
            "game_title" => Key::GameTitle,
            "invoice_information" => Key::Invoice,
            "information_text" => Key::InformationText,
            "discard_reason" => Key::DiscardReason,
            "duration_seconds" | "duration" => Key::Duration,
            "reactions" => Key::Reactions,
            _ => Key::Other,
        })
    }
}

/// One message as read. Rare fields live in a box to keep the common case small.
#[derive(Debug, Default)]
struct TgMessage {
    id: Option<String>,
    kind: MessageType,
    date: Option<String>,
    date_unixtime: Option<i64>,
    edited: bool,
    from: Option<String>,
    from_id: Option<String>,
    text: FlatText,
    entities: FlatText,
    reply_to: Option<String>,
    photo: Option<String>,
    file: Option<String>,
    media_type: Option<String>,
    rare: Option<Box<Rare>>,
}

#[derive(Debug, Default)]
struct Rare {
    actor: Option<String>,
    actor_id: Option<String>,
    action: Option<String>,
    title: Option<String>,
    members: Option<Value>,
    file_name: Option<String>,
    contact: Option<Value>,
    location: bool,
    place_name: Option<String>,
    poll: Option<Value>,
    game_title: Option<String>,
    invoice: bool,
    information_text: Option<String>,
    discard_reason: Option<String>,
    duration: Option<String>,
    reactions: Option<Value>,
}

impl TgMessage {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// Reads one entry of a messages array: Some(message) for an object, None
/// for anything else. Duplicate keys are fine (the last one wins).
struct MessageSeed;

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = Option<TgMessage>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed {
    type Value = Option<TgMessage>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = TgMessage::default();
        while let Some(key) = map.next_key::<Key>()? {
            let loose = |map: &mut A| map.next_value::<Loose>().map(|l| l.0);
            match key {
                Key::Id => m.id = loose(&mut map)?,
                Key::Type => m.kind = map.next_value()?,
                Key::Date => m.date = loose(&mut map)?,
                // Read as Loose text would be, then as a number.
                Key::DateUnixtime => {
                    m.date_unixtime = map.next_value::<Unixtime>()?.0;
                }
                // A date string when edited; tolerate booleans from other tools.
                Key::Edited => {
                    m.edited = loose(&mut map)?.is_some_and(|v| !v.is_empty() && v != "false")
                }
                Key::From => m.from = loose(&mut map)?,
                Key::FromId => m.from_id = loose(&mut map)?,
                Key::Text => m.text = map.next_value()?,
                Key::TextEntities => m.entities = map.next_value()?,
                Key::ReplyTo => m.reply_to = loose(&mut map)?,
                Key::Photo => m.photo = loose(&mut map)?,
                Key::File => m.file = loose(&mut map)?,
                Key::MediaType => m.media_type = loose(&mut map)?,
                Key::Actor => m.rare().actor = loose(&mut map)?,
                Key::ActorId => m.rare().actor_id = loose(&mut map)?,
                Key::Action => m.rare().action = loose(&mut map)?,
                Key::Title => m.rare().title = loose(&mut map)?,
                Key::Members => m.rare().members = Some(map.next_value()?),
                Key::FileName => m.rare().file_name = loose(&mut map)?,
                Key::Contact => m.rare().contact = Some(map.next_value()?),
                Key::Location => m.rare().location = !map.next_value::<Value>()?.is_null(),
                Key::PlaceName => m.rare().place_name = loose(&mut map)?,
                Key::Poll => m.rare().poll = Some(map.next_value()?),
                Key::GameTitle => m.rare().game_title = loose(&mut map)?,
                Key::Invoice => {
                    map.next_value::<IgnoredAny>()?;
                    m.rare().invoice = true;
                }
                Key::InformationText => m.rare().information_text = loose(&mut map)?,
                Key::DiscardReason => m.rare().discard_reason = loose(&mut map)?,
                Key::Duration => m.rare().duration = loose(&mut map)?,
                Key::Reactions => m.rare().reactions = Some(map.next_value()?),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(m))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

struct TopSeed<'a, 's>(&'a mut Export, &'a mut Stream<'s>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Telegram export object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let TopSeed(export, stream) = self;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "personal_information" => {
                    let info: Value = map.next_value()?;
                    export.me = info
                        .get("user_id")
                        .and_then(scalar)
                        .map(|id| format!("user{id}"));
                    stream.me = export.me.clone();
                }
                "chats" | "left_chats" => {
                    stream.chat_list = true;
                    map.next_value_seed(ChatListSeed(&mut export.chats, &mut *stream))?
                }
                _ => chat_field(&mut map, &key, &mut export.top, &mut *stream, true)?,
            }
        }
        Ok(())
    }
}

/// One key of a chat object (also the top level of a single-chat export:
/// `top`).
fn chat_field<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: &str,
    chat: &mut Chat,
    stream: &mut Stream,
    top: bool,
) -> Result<(), A::Error> {
    match key {
        "name" => {
            chat.name = map.next_value::<Loose>()?.0;
            chat.known |= 1;
        }
        "type" => {
            chat.kind = map.next_value::<Loose>()?.0;
            chat.known |= 2;
        }
        "id" => {
            chat.id = map.next_value::<Loose>()?.0;
            chat.known |= 4;
        }
        "messages" => {
            let streams = chat.known == 7
                && chat.messages.is_empty()
                && (stream.me.is_some()
                    || (top
                        && !stream.chat_list
                        && chat.kind.as_deref() != Some("saved_messages")));
            map.next_value_seed(MessagesSeed(chat, streams.then_some(stream)))?
        }
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(())
}

/// `{"about": ..., "list": [chat, ...]}` or a bare `[chat, ...]`.
struct ChatListSeed<'a, 's>(&'a mut Vec<Chat>, &'a mut Stream<'s>);

impl<'de> DeserializeSeed<'de> for ChatListSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChatListSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of chats")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "list" {
                map.next_value_seed(ChatListSeed(&mut *self.0, &mut *self.1))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ChatSeed(&mut *self.0, &mut *self.1))?
            .is_some()
        {}
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One chat object, pushed before it is filled so a file that breaks off
/// keeps what was read.
struct ChatSeed<'a, 's>(&'a mut Vec<Chat>, &'a mut Stream<'s>);

impl<'de> DeserializeSeed<'de> for ChatSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChatSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(Chat::default());
        let index = self.0.len() - 1;
        while let Some(key) = map.next_key::<String>()? {
            chat_field(&mut map, &key, &mut self.0[index], &mut *self.1, false)?;
        }
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The messages array: handed on as read when the [`Stream`] is given, else
/// kept until the export is read.
struct MessagesSeed<'a, 's>(&'a mut Chat, Option<&'a mut Stream<'s>>);

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let MessagesSeed(chat, stream) = self;
        let Some(stream) = stream else {
            while let Some(entry) = seq.next_element_seed(MessageSeed)? {
                match entry {
                    Some(m) => chat.messages.push(m),
                    None => chat.skipped += 1,
                }
            }
            return Ok(());
        };
        let (title, conversation, group) = chat_names(chat, stream.fallback);
        let me = stream.me.clone();
        let ctx = ChatContext {
            conversation: &conversation,
            title: title.as_deref(),
            group,
            me: me.as_deref(),
            file: stream.file,
        };
        while let Some(entry) = seq.next_element_seed(MessageSeed)? {
            stream.streamed += 1;
            match entry {
                None => chat.skipped += 1,
                Some(m) => {
                    let read = ctx.message(m, &mut Problems(&mut chat.problems));
                    // Entries handed on by an earlier reading are only read
                    // again for their problems.
                    if let Some(m) = read.filter(|_| stream.streamed > stream.skip) {
                        stream.out.message(m);
                    }
                }
            }
        }
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Repairing tdesktop's invalid JSON

struct Repaired {
    bytes: Vec<u8>,
    count: usize,
    first_line: u64,
    kinds: Vec<&'static str>,
}

/// Rewrites `\xNN` escapes and raw control characters inside strings as
/// `\u00NN`, other invalid escapes as an escaped backslash, and bare values
/// after a `:` (`"document_id": video_files/sticker (2).webm`) as strings.
/// None when nothing needed repair.
fn repair(bytes: &[u8]) -> Option<Repaired> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut fixed = Repaired {
        bytes: Vec::new(),
        count: 0,
        first_line: 0,
        kinds: Vec::new(),
    };
    let mut line = 1u64;
    let mut in_string = false;
    let mut after_colon = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match b {
                b'"' => {
                    in_string = false;
                    out.push(b);
                }
                b'\\' => {
                    let next = bytes.get(i + 1).copied();
                    match next {
                        Some(b'x')
                            if bytes
                                .get(i + 2..i + 4)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            out.extend_from_slice(b"\\u00");
                            out.extend_from_slice(&bytes[i + 2..i + 4]);
                            note(&mut fixed, line, "control characters written as \\xNN");
                            i += 4;
                            continue;
                        }
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u') => {
                            out.push(b);
                            out.push(next.unwrap_or(b'\\'));
                            i += 2;
                            continue;
                        }
                        _ => {
                            out.extend_from_slice(b"\\\\");
                            note(&mut fixed, line, "invalid escapes");
                        }
                    }
                }
                0..=0x1f => {
                    out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                    note(&mut fixed, line, "raw control characters");
                }
                _ => out.push(b),
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                after_colon = false;
                out.push(b);
            }
            b':' => {
                after_colon = true;
                out.push(b);
            }
            b' ' | b'\t' | b'\r' | b'\n' => out.push(b),
            _ if after_colon => {
                after_colon = false;
                let end = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .map_or(bytes.len(), |n| i + n);
                let mut token = &bytes[i..end];
                // The value ends at the line's end, before a trailing comma.
                while let Some((&last, head)) = token.split_last() {
                    if last == b',' || last == b' ' || last == b'\t' {
                        token = head;
                    } else {
                        break;
                    }
                }
                if token.is_empty() || valid_bare_value(token) {
                    out.push(b);
                    i += 1;
                    continue;
                }
                out.push(b'"');
                for &c in token {
                    match c {
                        b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
                        0..=0x1f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
                        _ => out.push(c),
                    }
                }
                out.push(b'"');
                note(&mut fixed, line, "values without quotes");
                i += token.len();
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    if fixed.count == 0 {
        return None;
    }
    fixed.bytes = out;
    Some(fixed)
}

/// Records one repair.
fn note(fixed: &mut Repaired, line: u64, kind: &'static str) {
    if fixed.count == 0 {
        fixed.first_line = line;
    }
    fixed.count += 1;
    if !fixed.kinds.contains(&kind) {
        fixed.kinds.push(kind);
    }
}

/// Is this the start of a JSON value that needs no quotes: an object, an
/// array, a number, true, false or null?
fn valid_bare_value(token: &[u8]) -> bool {
    match token.first() {
        Some(b'{' | b'[' | b'"') => true,
        Some(b'-' | b'0'..=b'9') => {
            let number_end = token
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
            // A number must be followed by the end of the value.
            number_end.is_none_or(|n| matches!(token[n], b'}' | b']' | b','))
        }
        _ => [&b"true"[..], b"false", b"null"].iter().any(|lit| {
            token.starts_with(lit)
                && token
                    .get(lit.len())
                    .is_none_or(|c| matches!(c, b'}' | b']' | b','))
        }),
    }
}

// ---------------------------------------------------------------------------
// From JSON messages to records

fn emit(mut export: Export, fallback: &str, file: &Path, out: &mut dyn Sink) {
    let me = export.me.take().or_else(|| saved_messages_owner(&export));
    let top = std::mem::take(&mut export.top);
    let has_top = !top.messages.is_empty() || top.id.is_some() || top.name.is_some();
    let chats = has_top.then_some(top).into_iter().chain(export.chats);
    for chat in chats {
        emit_chat(chat, me.as_deref(), fallback, file, out);
    }
}

/// Without `personal_information`, the sender of every message in "Saved
/// Messages" is the exporting user.
fn saved_messages_owner(export: &Export) -> Option<String> {
    let saved = export
        .chats
        .iter()
        .chain([&export.top])
        .find(|c| c.kind.as_deref() == Some("saved_messages"))?;
    let mut senders = saved.messages.iter().filter_map(|m| m.from_id.as_deref());
    let first = senders.next()?;
    senders.all(|s| s == first).then(|| first.to_string())
}

fn group_of(kind: Option<&str>) -> Option<bool> {
    match kind? {
        "private_group" | "private_supergroup" | "public_supergroup" | "private_channel"
        | "public_channel" => Some(true),
        "personal_chat" | "bot_chat" | "saved_messages" | "replies" => Some(false),
        _ => None,
    }
}

/// A chat's title, conversation key and whether it is a group.
fn chat_names(chat: &Chat, fallback: &str) -> (Option<String>, String, Option<bool>) {
    let title = chat.name.clone().or_else(|| {
        (chat.kind.as_deref() == Some("saved_messages")).then(|| "Saved Messages".into())
    });
    let conversation = chat
        .id
        .clone()
        .or_else(|| title.clone())
        .unwrap_or_else(|| fallback.to_string());
    (title, conversation, group_of(chat.kind.as_deref()))
}

fn emit_chat(chat: Chat, me: Option<&str>, fallback: &str, file: &Path, out: &mut dyn Sink) {
    let (title, conversation, group) = chat_names(&chat, fallback);
    if chat.skipped > 0 {
        out.problem(Problem {
            file: file.to_path_buf(),
            line: None,
            reason: format!(
                "chat {conversation}: {} entries of \"messages\" are not message objects; skipped",
                chat.skipped
            ),
        });
    }
    for p in chat.problems {
        out.problem(p);
    }
    let ctx = ChatContext {
        conversation: &conversation,
        title: title.as_deref(),
        group,
        me,
        file,
    };
    for m in chat.messages {
        if let Some(m) = ctx.message(m, out) {
            out.message(m);
        }
    }
}

struct ChatContext<'a> {
    conversation: &'a str,
    title: Option<&'a str>,
    group: Option<bool>,
    me: Option<&'a str>,
    file: &'a Path,
}

impl ChatContext<'_> {
    fn message(&self, mut m: TgMessage, out: &mut dyn Sink) -> Option<RawMessage> {
        let service = match m.kind {
            MessageType::Service => true,
            // tdesktop's placeholder for a message it could not export.
            MessageType::Unsupported => return None,
            MessageType::Other => false,
        };
        let Some(at) = when(&m) else {
            out.problem(Problem {
                file: self.file.to_path_buf(),
                line: None,
                reason: format!(
                    "chat {}: message {} has no readable date or date_unixtime; skipped",
                    self.conversation,
                    m.id.as_deref().unwrap_or("without id")
                ),
            });
            return None;
        };
        let mut rare = m.rare.take().map(|r| *r).unwrap_or_default();
        let author = self.author(&mut m, &mut rare, service);
        let text = if service {
            describe_service(&mut rare, &mut m, &author.name)
        } else {
            message_text(&mut m)
        };
        let mut r = RawMessage::new(self.conversation, author, at, text);
        r.conversation_title = self.title.map(str::to_string);
        r.group = self.group;
        r.kind = if service {
            MessageKind::Service
        } else {
            MessageKind::Message
        };
        r.id = m.id.take();
        r.reply_to = m.reply_to.take();
        r.edited = m.edited;
        if !service {
            r.attachments = attachments(&mut m, &mut rare);
        }
        r.reactions = rare.reactions.as_ref().map(reactions).unwrap_or_default();
        Some(r)
    }

    fn author(&self, m: &mut TgMessage, rare: &mut Rare, service: bool) -> Author {
        let (name, handle) = if service && rare.actor.is_some() {
            (rare.actor.take(), rare.actor_id.take())
        } else {
            (m.from.take(), m.from_id.take())
        };
        let handle = handle.filter(|h| !h.is_empty());
        let name = name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| match (&handle, self.title) {
                // tdesktop writes null for the name of a deleted account.
                (Some(_), _) => "Deleted Account".into(),
                // No sender at all: a channel post or an anonymous admin.
                (None, Some(title)) if !service => title.to_string(),
                _ => String::new(),
            });
        let me = self.me.map(|me| handle.as_deref() == Some(me));
        Author { name, handle, me }
    }
}

/// `date_unixtime` (UTC) when present, else `date` (local time, no offset).
fn when(m: &TgMessage) -> Option<When> {
    if let Some(epoch) = m.date_unixtime
        && let Some(utc) = DateTime::from_timestamp(epoch, 0)
    {
        return Some(When::Utc(utc));
    }
    let date = m.date.as_deref()?;
    NaiveDateTime::parse_from_str(date.trim(), "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(When::Local)
}

/// The body as plain text: `text_entities` when it has parts (tdesktop
/// always writes it as an array), else `text`.
fn message_text(m: &mut TgMessage) -> String {
    if m.entities.parts {
        std::mem::take(&mut m.entities.text)
    } else {
        std::mem::take(&mut m.text.text)
    }
}

/// Is a file field tdesktop's note about a file left out of the export?
fn left_out(path: &str) -> bool {
    path.starts_with('(')
        || path.contains("(File not included")
        || path.contains("(File unavailable")
        || path.contains("(File exceeds")
}

fn attachments(m: &mut TgMessage, rare: &mut Rare) -> Vec<Attachment> {
    let mut list = Vec::new();
    if let Some(photo) = m.photo.take() {
        list.push(file_attachment("image", photo, None));
    }
    if let Some(file) = m.file.take() {
        let kind = match m.media_type.as_deref() {
            Some("sticker") => "sticker",
            Some("voice_message") => "voice",
            Some("video_message" | "video_file") => "video",
            Some("animation") => "gif",
            Some("audio_file") => "audio",
            Some("document") | None => "document",
            Some(_) => "file",
        };
        let file_name = rare.file_name.take().filter(|n| !n.is_empty());
        list.push(file_attachment(kind, file, file_name));
    }
    if let Some(Value::Object(c)) = &rare.contact {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").trim();
        let full = format!("{} {}", field("first_name"), field("last_name"))
            .trim()
            .to_string();
        let name = if full.is_empty() {
            field("phone_number").to_string()
        } else {
            full
        };
        list.push(Attachment {
            kind: "contact".into(),
            name: (!name.is_empty()).then_some(name),
        });
    }
    if rare.location || rare.place_name.is_some() {
        let name = rare.place_name.take().filter(|n| !n.is_empty());
        list.push(Attachment {
            kind: "location".into(),
            name,
        });
    }
    if let Some(poll) = &rare.poll {
        let question = poll
            .get("question")
            .and_then(Value::as_str)
            .map(str::to_string);
        list.push(Attachment {
            kind: "poll".into(),
            name: question,
        });
    }
    if let Some(game) = rare.game_title.take().filter(|g| !g.is_empty()) {
        list.push(Attachment {
            kind: "game".into(),
            name: Some(game),
        });
    }
    if rare.invoice {
        list.push(Attachment {
            kind: "invoice".into(),
            name: None,
        });
    }
    list
}

fn file_attachment(kind: &str, path: String, file_name: Option<String>) -> Attachment {
    if left_out(&path) {
        Attachment {
            kind: "omitted".into(),
            name: file_name,
        }
    } else {
        Attachment {
            kind: kind.into(),
            name: Some(path),
        }
    }
}

fn reactions(value: &Value) -> Vec<Reaction> {
    let Some(list) = value.as_array() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in list {
        let emoji = r
            .get("emoji")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                r.get("type")
                    .and_then(Value::as_str)
                    .map(|t| format!("({t})"))
            })
            .unwrap_or_default();
        match r.get("recent").and_then(Value::as_array) {
            Some(recent) if !recent.is_empty() => {
                for who in recent {
                    let author = who
                        .get("from")
                        .and_then(scalar)
                        .or_else(|| who.get("from_id").and_then(scalar))
                        .unwrap_or_default();
                    out.push(Reaction {
                        author,
                        emoji: emoji.clone(),
                    });
                }
            }
            // Only a count: the reacting people are unknown.
            _ => {
                let count = r.get("count").and_then(Value::as_u64).unwrap_or(1).min(100);
                out.extend((0..count).map(|_| Reaction {
                    author: String::new(),
                    emoji: emoji.clone(),
                }));
            }
        }
    }
    out
}

/// A service message in words ("Mona added Bob").
fn describe_service(rare: &mut Rare, m: &mut TgMessage, actor: &str) -> String {
    let actor = if actor.is_empty() { "Someone" } else { actor };
    let action = rare.action.take().unwrap_or_default();
    let title = rare.title.take().unwrap_or_default();
    let members = rare
        .members
        .as_ref()
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| scalar(v).or_else(|| v.get("name").and_then(scalar)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let text = match action.as_str() {
        "create_group" => format!("{actor} created group \"{title}\""),
        "create_channel" => format!("{actor} created channel \"{title}\""),
        "edit_group_title" => format!("{actor} changed the group name to \"{title}\""),
        "edit_group_photo" => format!("{actor} changed the group photo"),
        "delete_group_photo" => format!("{actor} removed the group photo"),
        "invite_members" | "add_members" => format!("{actor} added {members}"),
        "remove_members" => format!("{actor} removed {members}"),
        "join_group_by_link" => format!("{actor} joined the group via invite link"),
        "join_group_by_request" => format!("{actor} joined the group"),
        "migrate_to_supergroup" | "migrate_from_group" => {
            format!("{actor} converted the group to a supergroup")
        }
        "pin_message" => format!("{actor} pinned a message"),
        "clear_history" => "History was cleared".to_string(),
        "phone_call" | "group_call" => {
            let reason = rare
                .discard_reason
                .take()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let seconds = rare
                .duration
                .take()
                .map(|s| format!(", {s} s"))
                .unwrap_or_default();
            format!("{actor} called{reason}{seconds}")
        }
        "joined_telegram" => format!("{actor} joined Telegram"),
        "take_screenshot" => format!("{actor} took a screenshot"),
        "topic_created" => format!("{actor} created topic \"{title}\""),
        "" => rare
            .information_text
            .take()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("{actor}: service message")),
        other => format!("{actor}: {}", other.replace('_', " ")),
    };
    let extra = message_text(m);
    if extra.trim().is_empty() {
        text
    } else {
        format!("{text}: {extra}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, read_with};
    use chrono::Utc;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/telegram");

    fn fixture(name: &str) -> PathBuf {
        Path::new(DIR).join(name)
    }

    fn read(path: &Path) -> Collect {
        let (units, out) = read_with(&Telegram, path, false).unwrap();
        assert_eq!(units.len(), 1, "{}", path.display());
        out
    }

    fn utc(epoch: i64) -> When {
        When::Utc(DateTime::<Utc>::from_timestamp(epoch, 0).unwrap())
    }

    fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn single_chat_shape() {
        let c = read(&fixture("chat-miner_test_single_export.json"));
        assert!(c.problems.is_empty());
        assert_eq!(c.messages.len(), 2);
        let m = &c.messages;
        assert_eq!(m[0].text, "Minimal Message");
        assert_eq!(m[0].at, utc(1544006350));
        assert_eq!(m[1].text, "Link:https://telegram.org/");
        assert_eq!(m[1].author.name, "Author 2");
        assert_eq!(m[1].author.me, None);
        assert_eq!(m[0].conversation, "chat-miner_test_single_export");
        assert_eq!(m[0].group, None);
    }

    #[test]
    fn account_shape_with_list() {
        let c = read(&fixture("chat-miner_test_batch_export.json"));
        assert!(c.problems.is_empty());
        assert_eq!(c.messages.len(), 2);
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            ["Author 1", "Author 2"]
        );
        assert!(
            c.messages.iter().all(|m| m.conversation == "Chatname"
                && m.conversation_title.as_deref() == Some("Chatname"))
        );
        assert_eq!(c.messages[1].at, utc(1544006964));
    }

    #[test]
    fn chats_array_with_media_replies_and_service() {
        let c = read(&fixture("telegram-export-md_result.json"));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 14);
        assert_eq!(c.people_messages().count(), 13);
        let gaming: Vec<&RawMessage> = c
            .messages
            .iter()
            .filter(|m| m.conversation == "42")
            .collect();
        assert_eq!(gaming.len(), 13);
        assert!(gaming.iter().all(
            |m| m.group == Some(true) && m.conversation_title.as_deref() == Some("Gaming Crew")
        ));
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            ["Arian", "Bob", "Gaming Crew", "Mona", "Sara"]
        );
        let m = &c.messages;
        assert_eq!(
            m[0].text, "hello everyone?",
            "text_entities win over a short text"
        );
        assert_eq!(m[0].id.as_deref(), Some("1"));
        assert_eq!(m[0].author.handle.as_deref(), Some("user100"));
        assert_eq!(m[0].at, utc(1609491600));
        assert_eq!(m[1].text, "check this link");
        assert_eq!(
            m[2].attachments,
            [Attachment {
                kind: "image".into(),
                name: Some("photos/photo_1.jpg".into())
            }]
        );
        assert_eq!(m[2].text, "");
        assert_eq!(m[3].reply_to.as_deref(), Some("3"));
        assert_eq!(m[4].text, "code: x = 1");
        assert_eq!(m[5].attachments[0].kind, "sticker");
        assert!(m[6].edited);
        assert!(!m[5].edited);
        assert_eq!(
            m[7].author.name, "Gaming Crew",
            "a post without sender is the chat's"
        );
        assert_eq!(
            m[7].attachments,
            [Attachment {
                kind: "poll".into(),
                name: Some("Best game?".into())
            }]
        );
        assert_eq!(m[8].attachments[0].kind, "video");
        assert_eq!(m[9].kind, MessageKind::Service);
        assert_eq!(m[9].text, "Mona added Bob");
        assert_eq!(m[9].author.handle.as_deref(), Some("user300"));
        assert_eq!(
            m[11].attachments[0],
            Attachment {
                kind: "audio".into(),
                name: Some("audio_files/song.mp3".into())
            }
        );
        assert_eq!(m[12].attachments[0].kind, "document");
        assert_eq!(m[12].text, "see attachment");
        // Saved Messages: the only sender there is the exporting user.
        assert_eq!(m[13].conversation, "7");
        assert_eq!(m[13].group, Some(false));
        assert_eq!(m[13].author.me, Some(true));
        assert_eq!(m[0].author.me, Some(true));
        assert_eq!(m[1].author.me, Some(false));
    }

    /// Built from export_output_json.cpp: an account export with
    /// personal_information, left_chats, reactions, a deleted account,
    /// local-only dates, left-out files and service actions.
    #[test]
    fn account_export_built_from_the_schema() {
        let c = read(&fixture("account_result.json"));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 7);
        assert_eq!(c.people_messages().count(), 5);
        let m = &c.messages;
        assert_eq!(m[0].author.me, Some(true), "user_id 5000 is user5000");
        assert_eq!(m[1].author.me, Some(true));
        assert_eq!(m[3].author.me, Some(false));
        assert_eq!(
            m[0].at,
            When::Local(
                NaiveDateTime::parse_from_str("2023-11-08 10:10:00", "%Y-%m-%d %H:%M:%S").unwrap()
            )
        );
        assert_eq!(
            m[0].text,
            "Hi @Jane Smith, see @alice and https://example.org"
        );
        assert_eq!(
            m[1].reactions,
            [Reaction {
                author: "Jane Smith".into(),
                emoji: "😁".into()
            }]
        );
        assert_eq!(m[2].author.name, "Deleted Account");
        assert_eq!(m[2].author.handle.as_deref(), Some("user777"));
        assert_eq!(
            m[2].attachments,
            [Attachment {
                kind: "omitted".into(),
                name: Some("clip.mp4".into())
            }]
        );
        assert_eq!(m[3].kind, MessageKind::Service);
        assert_eq!(m[3].text, "Jane Smith called (missed)");
        assert_eq!(
            m[4].attachments[0],
            Attachment {
                kind: "voice".into(),
                name: Some("voice_messages/audio_1.ogg".into())
            }
        );
        assert_eq!(m[5].conversation, "900");
        assert_eq!(m[5].group, Some(true));
        assert_eq!(m[5].text, "Jane Smith created group \"Old Group\"");
        assert_eq!(m[6].text, "Old group message");
        assert_eq!(m[6].at, utc(1500000060));
    }

    #[test]
    fn invalid_json_from_known_tdesktop_bugs_is_repaired() {
        let c = read(&fixture("broken_escapes_result.json"));
        assert_eq!(c.messages.len(), 3);
        assert_eq!(c.messages[0].text, "tab\u{1}here");
        assert_eq!(c.messages[1].text, "😮😮 nice");
        assert_eq!(c.messages[2].text, "path C:\\temp");
        assert_eq!(c.problems.len(), 1);
        let p = &c.problems[0];
        assert_eq!(p.line, Some(11));
        assert!(p.reason.contains("3 place(s)"), "{}", p.reason);
        assert!(
            p.reason.contains("\\xNN") && p.reason.contains("without quotes"),
            "{}",
            p.reason
        );
    }

    #[test]
    fn a_streamed_chat_repaired_part_way_gives_each_message_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from(
            "{\n \"name\": \"S\",\n \"type\": \"personal_chat\",\n \"id\": 9,\n \"messages\": [\n",
        );
        for i in 1..=6 {
            let body = match i {
                2 => "\"text\": \"no date\"".to_string(),
                4 => "\"date_unixtime\": \"1700000004\", \"from\": \"A\", \"text\": \"bad\\x01escape\"".into(),
                5 => "\"date_unixtime\": \"1700000005\", \"from\": \"A\", \"text\": \"ok\", \"document_id\": sticker (2).webm".into(),
                _ => format!("\"date_unixtime\": \"170000000{i}\", \"from\": \"A\", \"text\": \"m{i}\""),
            };
            let sep = if i < 6 { "," } else { "" };
            text.push_str(&format!(
                "  {{\"id\": {i}, \"type\": \"message\", {body}\n  }}{sep}\n"
            ));
        }
        text.push_str(" ]\n}\n");
        let c = read(&write(dir.path(), "result.json", text.as_bytes()));
        let texts: Vec<&str> = c.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["m1", "m3", "bad\u{1}escape", "ok", "m6"]);
        let reasons: Vec<&str> = c.problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("repaired"), "{reasons:?}");
        assert!(
            reasons[1].contains("message 2 has no readable date"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_truncated_file_keeps_the_messages_before_the_break() {
        let dir = tempfile::tempdir().unwrap();
        let full = std::fs::read(fixture("telegram-export-md_result.json")).unwrap();
        let cut = full.windows(8).position(|w| w == b"\"id\": 6,").unwrap();
        let path = write(dir.path(), "result.json", &full[..cut]);
        let c = read(&path);
        assert_eq!(c.messages.len(), 5);
        assert_eq!(c.problems.len(), 1);
        assert!(
            c.problems[0].reason.contains("breaks off"),
            "{}",
            c.problems[0].reason
        );
        assert_eq!(c.problems[0].line, Some(74), "where the file ends");
    }

    #[test]
    fn bad_records_become_problems() {
        let dir = tempfile::tempdir().unwrap();
        let text = br#"{"name": "X", "id": 1, "type": "personal_chat", "messages": [
            {"id": 1, "type": "message", "text": "no date"},
            42,
            {"id": 3, "type": "message", "date": "yesterday", "text": "bad date"},
            {"id": 4, "type": "unsupported"},
            {"id": 5, "type": "message", "date_unixtime": 1700000000, "from": null, "from_id": 12, "text": ["a", {"type": "italic", "text": "b"}, null], "text": "dup"},
            {"id": 6, "type": "message", "date_unixtime": "1700000001", "from": "Z", "text": {"odd": true}, "photo": 7, "edited": false}
        ]}"#;
        let c = read(&write(dir.path(), "result.json", text));
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].text, "dup", "the last of duplicate keys wins");
        assert_eq!(c.messages[0].author.handle.as_deref(), Some("12"));
        assert_eq!(c.messages[1].text, "");
        assert!(!c.messages[1].edited);
        let reasons: Vec<&str> = c.problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("1 entries"));
        assert!(reasons[1].contains("message 1 has no readable date"));
        assert!(reasons[2].contains("message 3"));
    }

    #[test]
    fn garbage_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "result.json", b"<html>not json</html>");
        let err = read_with(&Telegram, &path, false).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a readable Telegram JSON export"),
            "{err}"
        );
        let path = write(dir.path(), "result.json", b"[1, 2]");
        assert!(read_with(&Telegram, &path, false).is_err());
    }

    #[test]
    fn claims_result_json_and_telegram_like_json_with_media_folders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("tg/photos")).unwrap();
        std::fs::create_dir_all(d.join("tg/css")).unwrap();
        std::fs::copy(
            fixture("telegram-export-md_result.json"),
            d.join("tg/result.json"),
        )
        .unwrap();
        std::fs::write(d.join("tg/photos/photo_1.jpg"), b"jpg").unwrap();
        std::fs::write(d.join("tg/css/style.css"), b"css").unwrap();
        std::fs::copy(
            fixture("chat-miner_test_single_export.json"),
            d.join("single.json"),
        )
        .unwrap();
        std::fs::write(
            d.join("discord.json"),
            br#"{"guild": {}, "messages": [{"timestamp": "x"}]}"#,
        )
        .unwrap();
        let src = crate::ingest::open_source(d).unwrap();
        let pool = src.files().to_vec();
        let units = Telegram.claim(src.as_ref(), &pool, false);
        let labels: Vec<&Path> = units.iter().map(|u| u.label.as_path()).collect();
        assert_eq!(
            labels,
            [Path::new("single.json"), Path::new("tg/result.json")]
        );
        assert_eq!(
            units[1].files,
            [
                PathBuf::from("tg/photos/photo_1.jpg"),
                PathBuf::from("tg/result.json")
            ]
        );
        assert_eq!(Telegram.claim(src.as_ref(), &pool, true).len(), 3);
    }

    #[test]
    fn repair_leaves_valid_values_alone() {
        assert!(
            repair(br#"{"a": 1, "b": [true, null], "c": -2.5e3, "d": {"e": "x\n"}}"#).is_none()
        );
        let fixed = repair(b"{\"a\": stickers/s.webp,\n\"b\": 12abc\n}").unwrap();
        assert_eq!(
            String::from_utf8(fixed.bytes).unwrap(),
            "{\"a\": \"stickers/s.webp\",\n\"b\": \"12abc\"\n}"
        );
        assert_eq!(fixed.count, 2);
    }

    /// Throughput check: `cargo test --release --lib telegram::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from(
            "{\"name\": \"Perf\", \"type\": \"private_group\", \"id\": 1, \"messages\": [\n",
        );
        for i in 0..500_000u32 {
            if i > 0 {
                text.push_str(",\n");
            }
            text.push_str(&format!(
                "  {{\n   \"id\": {i},\n   \"type\": \"message\",\n   \"date\": \"2021-01-01T10:00:00\",\n   \"date_unixtime\": \"{}\",\n   \"from\": \"Person {}\",\n   \"from_id\": \"user{}\",\n   \"text\": [\"message number {i} \", {{\"type\": \"bold\", \"text\": \"with words\"}}],\n   \"text_entities\": [{{\"type\": \"plain\", \"text\": \"message number {i} \"}}, {{\"type\": \"bold\", \"text\": \"with words\"}}]\n  }}",
                1_600_000_000 + i, i % 5, i % 5
            ));
        }
        text.push_str("\n]}\n");
        let path = write(dir.path(), "result.json", text.as_bytes());
        let start = std::time::Instant::now();
        let (_, c) = read_with(&Telegram, &path, false).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(c.messages.len(), 500_000);
        println!("telegram: {:.0} messages/s", 5e5 / secs);
    }

    fn run_bytes(bytes: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json");
        std::fs::write(&path, bytes).unwrap();
        let _ = read_with(&Telegram, &path, true);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            run_bytes(&bytes);
        }

        #[test]
        fn mutated_fixtures_never_panic(
            which in 0usize..3,
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..12),
        ) {
            let name = ["telegram-export-md_result.json", "account_result.json", "broken_escapes_result.json"][which];
            let mut bytes = std::fs::read(fixture(name)).unwrap();
            for (at, byte) in edits {
                if bytes.is_empty() { break; }
                let at = at % bytes.len();
                if byte % 3 == 0 { bytes.remove(at); } else { bytes[at] = byte; }
            }
            run_bytes(&bytes);
        }
    }
}
