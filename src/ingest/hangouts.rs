//! Legacy Google Hangouts, from Google Takeout: one `Hangouts.json`.
//!
//! The shape (from the reverse-engineered protocol in tdryer/hangups
//! `hangouts.proto`, the models of hossain-khan/kotlin-google-hangouts-parser,
//! and real Takeout files):
//!
//! ```json
//! {"conversations": [
//!   {"conversation": {"conversation_id": {"id": "Ugx…"},
//!                     "conversation": {"type": "GROUP" | "STICKY_ONE_TO_ONE", "name": "…",
//!                                      "self_conversation_state": {"self_read_state":
//!                                          {"participant_id": {"gaia_id": "…"}}},
//!                                      "participant_data": [{"id": {"gaia_id": "…"},
//!                                                            "fallback_name": "Alice"}]}},
//!    "events": [{"sender_id": {"gaia_id": "…"}, "timestamp": "1369548258628038",
//!                "event_id": "…", "event_type": "REGULAR_CHAT_MESSAGE",
//!                "chat_message": {"message_content": {
//!                    "segment": [{"type": "TEXT" | "LINK" | "LINE_BREAK", "text": "…"}],
//!                    "attachment": [{"embed_item": {"plus_photo": {"media_type": "PHOTO"}}}]}},
//!                "membership_change": {"type": "JOIN", "participant_id": […]},
//!                "conversation_rename": {"new_name": "…", "old_name": "…"},
//!                "hangout_event": {"event_type": "END_HANGOUT", "hangout_duration_secs": "102"}}]}]}
//! ```
//!
//! Timestamps are MICROseconds since the epoch, written as strings. Takeouts
//! before 2018 used the older layout `{"conversation_state": [{"conversation_state":
//! {"conversation": {…}, "event": […]}}]}`; both are read.
//!
//! The file can be several GB, so it is never parsed whole: a small structural
//! scanner ([`Scanner`]) walks the `conversations` array from a `BufRead` and,
//! inside each conversation, the `events` array, cutting out the bytes of one
//! event at a time for serde (`from_slice`, with borrowed strings). Only one
//! event is in memory at a time. A malformed event is a [`Problem`] with its line
//! and the next event is read; a syntax error in the structure (a truncated
//! download) ends the file with a [`Problem`], keeping what was read before it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::DateTime;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};

use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Sink,
    Source, Unit, When,
};

/// Reads legacy Google Hangouts `Hangouts.json` Takeout files.
pub struct Hangouts;

impl Importer for Hangouts {
    fn format(&self) -> Format {
        Format::Hangouts
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let mut units = Vec::new();
        for rel in pool {
            let name = file_name(src, rel);
            let lower = name.to_ascii_lowercase();
            let by_name = lower == "hangouts.json";
            let claimed = by_name
                || (lower.ends_with(".json")
                    && (forced || lower.contains("hangouts"))
                    && sniff(src, rel));
            if claimed {
                units.push(Unit {
                    format: Format::Hangouts,
                    files: vec![rel.clone()],
                    label: rel.clone(),
                });
            }
        }
        units
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        for rel in &unit.files {
            parse_file(src, rel, out)?;
        }
        Ok(())
    }
}

/// The file name of `rel`, or of the root when the source is a single file.
fn file_name(src: &dyn Source, rel: &Path) -> String {
    let path = if rel.as_os_str().is_empty() {
        src.root()
    } else {
        rel
    };
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Does the head of a JSON file look like a Hangouts export?
fn sniff(src: &dyn Source, rel: &Path) -> bool {
    let Ok(head) = src.head(rel, 4096) else {
        return false;
    };
    let head = String::from_utf8_lossy(&head);
    (head.contains("\"conversations\"") || head.contains("\"conversation_state\""))
        && head.contains("\"conversation_id\"")
}

fn parse_file(src: &dyn Source, rel: &Path, out: &mut dyn Sink) -> Result<(), ImportError> {
    let shown = src.display(rel);
    let reader = src.open(rel).map_err(|e| ImportError::io(&shown, e))?;
    let mut scanner = Scanner::new(BufReader::with_capacity(1 << 16, reader));
    let mut emitter = Emitter {
        out,
        file: shown.clone(),
        emitted: 0,
        conversations: 0,
    };
    match scanner.walk(&mut emitter) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ImportError::unreadable(
            &shown,
            "not a Hangouts export: the file has no `conversations` list (is it the Hangouts.json from Google Takeout?)",
        )),
        Err(e) if emitter.conversations == 0 && emitter.emitted == 0 => {
            Err(ImportError::unreadable(
                &shown,
                format!(
                    "not a readable Hangouts.json: {} at line {}",
                    e.reason, e.line
                ),
            ))
        }
        Err(e) => {
            emitter.out.problem(Problem {
                file: shown,
                line: Some(e.line),
                reason: format!(
                    "the file is cut off or damaged here ({}); the {} records read before it are kept",
                    e.reason, emitter.emitted
                ),
            });
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// The Hangouts data model (only what twin uses; everything else is skipped).

/// A string or a number in the JSON (timestamps are strings, but be lenient).
#[derive(Debug, Default)]
struct Scalar<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar(Some(Cow::Owned(format!("{v}")))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar(None))
            }
        }
        de.deserialize_any(V)
    }
}

impl Scalar<'_> {
    fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ParticipantId<'a> {
    #[serde(borrow)]
    gaia_id: Cow<'a, str>,
    #[serde(borrow)]
    chat_id: Cow<'a, str>,
}

impl ParticipantId<'_> {
    /// The gaia id, or the chat id when the gaia id is missing.
    fn key(&self) -> &str {
        if self.gaia_id.is_empty() {
            &self.chat_id
        } else {
            &self.gaia_id
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConversationId<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Phone<'a> {
    #[serde(borrow)]
    e164: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Participant<'a> {
    #[serde(borrow)]
    id: ParticipantId<'a>,
    #[serde(borrow)]
    fallback_name: Cow<'a, str>,
    #[serde(borrow)]
    phone_number: Phone<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReadState<'a> {
    #[serde(borrow)]
    participant_id: ParticipantId<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelfState<'a> {
    #[serde(borrow)]
    self_read_state: ReadState<'a>,
}

/// A conversation's metadata. In the new layout it sits one level deeper
/// (`conversation.conversation`); `inner` holds that level when present.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConversationMeta<'a> {
    #[serde(borrow)]
    conversation_id: ConversationId<'a>,
    #[serde(borrow)]
    id: ConversationId<'a>,
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    self_conversation_state: SelfState<'a>,
    #[serde(borrow)]
    participant_data: Vec<Participant<'a>>,
    #[serde(borrow, rename = "conversation")]
    inner: Option<Box<ConversationMeta<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LinkData<'a> {
    #[serde(borrow)]
    link_target: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Segment<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(borrow)]
    link_data: LinkData<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PlusPhoto<'a> {
    #[serde(borrow)]
    media_type: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Place<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmbedItem<'a> {
    #[serde(borrow, rename = "type")]
    kinds: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    plus_photo: Option<PlusPhoto<'a>>,
    plus_audio_v2: Option<IgnoredAny>,
    #[serde(borrow)]
    place_v2: Option<Place<'a>>,
    #[serde(borrow)]
    place: Option<Place<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HangoutsAttachment<'a> {
    #[serde(borrow)]
    embed_item: EmbedItem<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MessageContent<'a> {
    #[serde(borrow)]
    segment: Vec<Segment<'a>>,
    #[serde(borrow)]
    attachment: Vec<HangoutsAttachment<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    message_content: MessageContent<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MembershipChange<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, alias = "participant_ids")]
    participant_id: Vec<ParticipantId<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Rename<'a> {
    #[serde(borrow)]
    new_name: Cow<'a, str>,
    #[serde(borrow)]
    old_name: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HangoutEvent<'a> {
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    hangout_duration_secs: Scalar<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OtrModification<'a> {
    #[serde(borrow)]
    new_otr_status: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Event<'a> {
    #[serde(borrow)]
    sender_id: ParticipantId<'a>,
    #[serde(borrow)]
    timestamp: Scalar<'a>,
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    chat_message: Option<ChatMessage<'a>>,
    #[serde(borrow)]
    membership_change: Option<MembershipChange<'a>>,
    #[serde(borrow)]
    conversation_rename: Option<Rename<'a>>,
    #[serde(borrow)]
    hangout_event: Option<HangoutEvent<'a>>,
    #[serde(borrow)]
    otr_modification: Option<OtrModification<'a>>,
}

// ---------------------------------------------------------------------------
// Turning events into records.

/// What every event of one conversation needs.
#[derive(Debug, Default)]
struct Conversation {
    id: String,
    title: Option<String>,
    group: Option<bool>,
    self_id: String,
    names: HashMap<String, String>,
}

impl Conversation {
    fn from_meta(meta: &ConversationMeta<'_>, fallback_id: &str) -> Conversation {
        let m = meta.inner.as_deref().unwrap_or(meta);
        let id = [&m.id.id, &m.conversation_id.id, &meta.conversation_id.id]
            .into_iter()
            .find(|s| !s.is_empty())
            .map(|s| s.to_string())
            .unwrap_or_else(|| fallback_id.to_string());
        let self_id = m
            .self_conversation_state
            .self_read_state
            .participant_id
            .key()
            .to_string();
        let mut names = HashMap::new();
        let mut others = Vec::new();
        for p in &m.participant_data {
            let key = p.id.key();
            let name = if !p.fallback_name.trim().is_empty() {
                p.fallback_name.trim().to_string()
            } else if !p.phone_number.e164.is_empty() {
                p.phone_number.e164.to_string()
            } else {
                key.to_string()
            };
            if key != self_id {
                others.push(name.clone());
            }
            names.insert(key.to_string(), name);
        }
        let title = if !m.name.trim().is_empty() {
            Some(m.name.trim().to_string())
        } else if !others.is_empty() {
            Some(others.join(", "))
        } else {
            None
        };
        let group = match m.kind.as_ref() {
            "GROUP" => Some(true),
            "STICKY_ONE_TO_ONE" | "ONE_TO_ONE" => Some(false),
            _ if m.participant_data.len() > 2 => Some(true),
            _ => None,
        };
        Conversation {
            id,
            title,
            group,
            self_id,
            names,
        }
    }

    fn name_of(&self, id: &str) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| {
            if id.is_empty() {
                "Unknown".to_string()
            } else {
                id.to_string()
            }
        })
    }

    fn author(&self, id: &ParticipantId<'_>) -> Author {
        let key = id.key();
        let me = (!self.self_id.is_empty() && !key.is_empty()).then(|| key == self.self_id);
        Author {
            name: self.name_of(key),
            handle: (!key.is_empty()).then(|| key.to_string()),
            me,
        }
    }

    fn names_of(&self, ids: &[ParticipantId<'_>]) -> String {
        ids.iter()
            .map(|p| self.name_of(p.key()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Emits records into the sink while the JSON is being read.
struct Emitter<'o> {
    out: &'o mut dyn Sink,
    file: PathBuf,
    emitted: u64,
    conversations: u64,
}

impl Emitter<'_> {
    fn problem(&mut self, line: u64, reason: String) {
        self.out.problem(Problem {
            file: self.file.clone(),
            line: Some(line),
            reason,
        });
    }

    /// Parse one event's bytes (starting at `line`) and emit it.
    fn event_bytes(&mut self, conv: &Conversation, bytes: &[u8], line: u64) {
        match serde_json::from_slice::<Event>(bytes) {
            Ok(ev) => self.event(conv, &ev, line),
            Err(e) => self.problem(
                line + e.line().saturating_sub(1) as u64,
                format!(
                    "unreadable event in conversation {} ({e}); skipped",
                    conv.id
                ),
            ),
        }
    }

    fn event(&mut self, conv: &Conversation, ev: &Event<'_>, line: u64) {
        let micros = ev.timestamp.as_str().trim();
        let Some(at) = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
        else {
            let reason = format!(
                "event {} in conversation {}: timestamp `{micros}` is not a time in microseconds; event skipped",
                ev.event_id, conv.id
            );
            self.problem(line, reason);
            return;
        };
        let (text, kind, attachments) = event_content(conv, ev);
        let mut m = RawMessage::new(
            conv.id.clone(),
            conv.author(&ev.sender_id),
            When::Utc(at),
            text,
        );
        m.conversation_title = conv.title.clone();
        m.group = conv.group;
        m.kind = kind;
        m.attachments = attachments;
        m.id = (!ev.event_id.is_empty()).then(|| ev.event_id.to_string());
        self.out.message(m);
        self.emitted += 1;
    }
}

/// The text, kind and attachments of one event.
fn event_content(conv: &Conversation, ev: &Event<'_>) -> (String, MessageKind, Vec<Attachment>) {
    if let Some(chat) = &ev.chat_message {
        let content = &chat.message_content;
        let text = segments_text(&content.segment);
        let attachments = content.attachment.iter().map(attachment).collect();
        return (text, MessageKind::Message, attachments);
    }
    let actor = conv.name_of(ev.sender_id.key());
    let text = if let Some(change) = &ev.membership_change {
        let who = conv.names_of(&change.participant_id);
        if change.kind.contains("LEAVE") {
            if who.is_empty() || who == actor {
                format!("{actor} left")
            } else {
                format!("{actor} removed {who}")
            }
        } else {
            format!("{actor} added {who}")
        }
    } else if let Some(rename) = &ev.conversation_rename {
        if rename.new_name.is_empty() {
            format!("{actor} removed the conversation name")
        } else {
            format!(
                "{actor} renamed the conversation to \"{}\"",
                rename.new_name
            )
        }
    } else if let Some(call) = &ev.hangout_event {
        call_text(&actor, call)
    } else if let Some(otr) = &ev.otr_modification {
        if otr.new_otr_status.contains("OFF_THE_RECORD") {
            format!("{actor} turned conversation history off")
        } else {
            format!("{actor} turned conversation history on")
        }
    } else if ev.event_type.is_empty() {
        "unknown event".to_string()
    } else {
        format!(
            "{} ({actor})",
            ev.event_type.to_ascii_lowercase().replace('_', " ")
        )
    };
    (text, MessageKind::Service, Vec::new())
}

fn call_text(actor: &str, call: &HangoutEvent<'_>) -> String {
    let secs = call
        .hangout_duration_secs
        .as_str()
        .trim()
        .parse::<u64>()
        .ok();
    match call.event_type.as_ref() {
        "START_HANGOUT" => format!("{actor} started a call"),
        "END_HANGOUT" => match secs {
            Some(s) => format!("call ended after {}", human_duration(s)),
            None => "call ended".to_string(),
        },
        "" => "call".to_string(),
        other => format!("call: {}", other.to_ascii_lowercase().replace('_', " ")),
    }
}

fn human_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Concatenate message segments: TEXT and LINK keep their text, LINE_BREAK is a
/// newline (its text, when present, is the newline itself).
fn segments_text(segments: &[Segment<'_>]) -> String {
    let mut text = String::new();
    for seg in segments {
        match seg.kind.as_ref() {
            "LINE_BREAK" => text.push('\n'),
            "LINK" if seg.text.is_empty() => text.push_str(&seg.link_data.link_target),
            _ => text.push_str(&seg.text),
        }
    }
    text
}

fn attachment(a: &HangoutsAttachment<'_>) -> Attachment {
    let item = &a.embed_item;
    let has = |k: &str| item.kinds.iter().any(|t| t.as_ref() == k);
    let (kind, name) = if let Some(photo) = &item.plus_photo {
        let kind = match photo.media_type.as_ref() {
            "ANIMATED_PHOTO" => "gif",
            "VIDEO" => "video",
            _ => "image",
        };
        (kind, None)
    } else if item.plus_audio_v2.is_some() || has("PLUS_AUDIO_V2") {
        ("audio", None)
    } else if let Some(place) = item.place_v2.as_ref().or(item.place.as_ref()) {
        (
            "location",
            (!place.name.is_empty()).then(|| place.name.to_string()),
        )
    } else if has("PLACE_V2") || has("PLACE") {
        ("location", None)
    } else {
        ("file", None)
    };
    Attachment {
        kind: kind.to_string(),
        name,
    }
}

// ---------------------------------------------------------------------------
// Walking the file: a small structural JSON scanner finds each conversation's
// metadata and each event, and hands their bytes to serde (`from_slice`, which
// borrows strings and is several times faster than serde_json's reader mode).

/// Bytes that matter while skipping over an object, array or string.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let special = *b"\"\\{}[]\n";
    while i < special.len() {
        t[special[i] as usize] = true;
        i += 1;
    }
    t
};

/// Scan `buf` inside an object, array or string that started earlier (state in
/// `depth`, `in_string`, `skip_next`). Returns the bytes used, whether the value
/// ended, and the newlines seen.
fn scan_nested(
    buf: &[u8],
    depth: &mut u32,
    in_string: &mut bool,
    skip_next: &mut bool,
) -> (usize, bool, u64) {
    let mut newlines = 0;
    let mut i = 0;
    if *skip_next {
        // The byte after a backslash that ended the previous buffer.
        *skip_next = false;
        newlines += u64::from(buf[0] == b'\n');
        i = 1;
    }
    while i < buf.len() {
        let b = buf[i];
        i += 1;
        if !SPECIAL[b as usize] {
            continue;
        }
        match b {
            b'\n' => newlines += 1,
            b'\\' if *in_string => match buf.get(i) {
                Some(&next) => {
                    newlines += u64::from(next == b'\n');
                    i += 1;
                }
                None => *skip_next = true,
            },
            b'"' => {
                *in_string = !*in_string;
                if !*in_string && *depth == 0 {
                    return (i, true, newlines);
                }
            }
            _ if *in_string => {}
            b'{' | b'[' => *depth += 1,
            b'}' | b']' => {
                *depth = depth.saturating_sub(1);
                if *depth == 0 {
                    return (i, true, newlines);
                }
            }
            _ => {}
        }
    }
    (i, false, newlines)
}

/// Why the scan stopped, and where.
#[derive(Debug)]
struct ScanError {
    line: u64,
    reason: String,
}

/// Reads the JSON structure of a Hangouts export from a `BufRead`, keeping
/// track of the line. It checks only what it needs to stay in step (quotes,
/// escapes, brackets); serde validates each value it is given.
struct Scanner<R> {
    reader: R,
    line: u64,
}

impl<R: BufRead> Scanner<R> {
    fn new(reader: R) -> Self {
        Scanner { reader, line: 1 }
    }

    fn error(&self, reason: impl Into<String>) -> ScanError {
        ScanError {
            line: self.line,
            reason: reason.into(),
        }
    }

    fn io(&self, e: std::io::Error) -> ScanError {
        self.error(format!("read error: {e}"))
    }

    /// The next byte that is not white space (not consumed); None at the end.
    fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.io(e)),
            };
            if buf.is_empty() {
                return Ok(None);
            }
            let ws = buf
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            self.line += buf[..ws].iter().filter(|&&b| b == b'\n').count() as u64;
            let first = buf.get(ws).copied();
            self.reader.consume(ws);
            if first.is_some() {
                return Ok(first);
            }
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), ScanError> {
        match self.peek()? {
            Some(b) if b == want => {
                self.reader.consume(1);
                Ok(())
            }
            Some(b) => Err(self.error(format!(
                "expected `{}` but found `{}`",
                want as char,
                b.escape_ascii()
            ))),
            None => Err(self.error(format!(
                "the file ends where `{}` was expected",
                want as char
            ))),
        }
    }

    /// Inside an object: the next key (after its `:`), or None at the `}`.
    fn next_key(&mut self) -> Result<Option<String>, ScanError> {
        loop {
            match self.peek()? {
                Some(b'}') => {
                    self.reader.consume(1);
                    return Ok(None);
                }
                Some(b',') => self.reader.consume(1),
                Some(b'"') => {
                    let mut raw = Vec::new();
                    self.value(Some(&mut raw))?;
                    let key = String::from_utf8_lossy(
                        raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default(),
                    );
                    self.expect(b':')?;
                    return Ok(Some(key.into_owned()));
                }
                Some(b) => {
                    return Err(
                        self.error(format!("expected a key but found `{}`", b.escape_ascii()))
                    );
                }
                None => return Err(self.error("the file ends inside an object")),
            }
        }
    }

    /// Inside an array: true when another element follows, false at the `]`.
    fn next_element(&mut self) -> Result<bool, ScanError> {
        loop {
            match self.peek()? {
                Some(b']') => {
                    self.reader.consume(1);
                    return Ok(false);
                }
                Some(b',') => self.reader.consume(1),
                Some(_) => return Ok(true),
                None => return Err(self.error("the file ends inside a list")),
            }
        }
    }

    /// Consume one JSON value, copying its bytes into `out` when given.
    fn value(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<(), ScanError> {
        let first = self
            .peek()?
            .ok_or_else(|| self.error("the file ends where a value was expected"))?;
        if matches!(first, b',' | b':' | b'}' | b']') {
            return Err(self.error(format!("expected a value but found `{}`", first as char)));
        }
        let nested = matches!(first, b'{' | b'[' | b'"');
        // State carried across buffer refills.
        let (mut depth, mut in_string, mut skip_next) = (0u32, false, false);
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.io(e)),
            };
            if buf.is_empty() {
                return if nested {
                    Err(self.error("the file ends inside a value"))
                } else {
                    Ok(())
                };
            }
            let (used, done, newlines) = if nested {
                scan_nested(buf, &mut depth, &mut in_string, &mut skip_next)
            } else {
                let end = buf
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'));
                (end.unwrap_or(buf.len()), end.is_some(), 0)
            };
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&buf[..used]);
            }
            self.line += newlines;
            self.reader.consume(used);
            if done {
                return Ok(());
            }
        }
    }

    /// Walk the whole file; true when a conversation list was found.
    fn walk(&mut self, em: &mut Emitter<'_>) -> Result<bool, ScanError> {
        // A byte-order mark is not JSON.
        let bom = match self.reader.fill_buf() {
            Ok(buf) => buf.starts_with(b"\xEF\xBB\xBF"),
            Err(e) => return Err(self.io(e)),
        };
        if bom {
            self.reader.consume(3);
        }
        self.expect(b'{')?;
        let mut found = false;
        while let Some(key) = self.next_key()? {
            if key == "conversations" || key == "conversation_state" {
                found = true;
                self.expect(b'[')?;
                while self.next_element()? {
                    self.conversation(em)?;
                    em.conversations += 1;
                }
            } else {
                self.value(None)?;
            }
        }
        Ok(found)
    }

    /// One conversation object: the metadata, then its events one by one. The
    /// pre-2018 layout nests the same keys under `conversation_state`.
    fn conversation(&mut self, em: &mut Emitter<'_>) -> Result<(), ScanError> {
        if self.peek()? != Some(b'{') {
            let line = self.line;
            self.value(None)?;
            em.problem(
                line,
                "a conversation that is not a JSON object; skipped".to_string(),
            );
            return Ok(());
        }
        self.expect(b'{')?;
        let mut conv: Option<Conversation> = None;
        let mut fallback_id = String::new();
        // Events seen before the metadata (JSON does not promise key order).
        let mut early: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut buf = Vec::with_capacity(4096);
        while let Some(key) = self.next_key()? {
            match key.as_str() {
                "conversation" => {
                    let line = self.line;
                    buf.clear();
                    self.value(Some(&mut buf))?;
                    let c = match serde_json::from_slice::<ConversationMeta>(&buf) {
                        Ok(meta) => Conversation::from_meta(&meta, &fallback_id),
                        Err(e) => {
                            em.problem(
                                line + e.line().saturating_sub(1) as u64,
                                format!("unreadable conversation details ({e}); names are unknown"),
                            );
                            Conversation {
                                id: fallback_id.clone(),
                                ..Conversation::default()
                            }
                        }
                    };
                    for (line, bytes) in early.drain(..) {
                        em.event_bytes(&c, &bytes, line);
                    }
                    conv = Some(c);
                }
                "events" | "event" => {
                    self.expect(b'[')?;
                    while self.next_element()? {
                        let line = self.line;
                        buf.clear();
                        self.value(Some(&mut buf))?;
                        match &conv {
                            Some(c) => em.event_bytes(c, &buf, line),
                            None => early.push((line, buf.clone())),
                        }
                    }
                }
                "conversation_state" => self.conversation(em)?,
                "conversation_id" => {
                    buf.clear();
                    self.value(Some(&mut buf))?;
                    if let Ok(id) = serde_json::from_slice::<ConversationId>(&buf) {
                        fallback_id = id.id.into_owned();
                    }
                }
                _ => self.value(None)?,
            }
        }
        if !early.is_empty() {
            let c = Conversation {
                id: fallback_id,
                ..Conversation::default()
            };
            for (line, bytes) in early {
                em.event_bytes(&c, &bytes, line);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, read_with};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hangouts");

    fn fixture(name: &str) -> PathBuf {
        Path::new(DIR).join(name)
    }

    fn read(name: &str) -> Collect {
        let (units, out) = read_with(&Hangouts, &fixture(name), false).expect("fixture reads");
        assert_eq!(units.len(), 1, "{name} is one unit");
        out
    }

    fn service_count(c: &Collect) -> usize {
        c.messages
            .iter()
            .filter(|m| m.kind == MessageKind::Service)
            .count()
    }

    #[test]
    fn readme_sample_has_one_message_and_one_call() {
        let c = read("kotlin-google-hangouts-parser_README_Hangouts.json");
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.people_messages().count(), 1);
        assert_eq!(service_count(&c), 1);
        let call = &c.messages[0];
        assert_eq!(call.kind, MessageKind::Service);
        assert_eq!(call.text, "call ended after 1m 42s");
        assert_eq!(call.author.name, "yasir usama");
        let msg = &c.messages[1];
        assert_eq!(msg.text, "Chat message");
        assert_eq!(msg.author.name, "Hossain Khan");
        assert_eq!(
            msg.author.handle.as_deref(),
            Some("users-google-user-id-123")
        );
        assert_eq!(msg.author.me, Some(true));
        assert_eq!(call.author.me, Some(false));
        assert_eq!(msg.conversation, "cid-12345678");
        assert_eq!(
            msg.conversation_title.as_deref(),
            Some("yasir usama, Istiaque Ahmed")
        );
        assert_eq!(msg.group, Some(true));
        assert_eq!(msg.id.as_deref(), Some("7-H0Z7-Uqf17-HHzEcNqeT"));
        // 1369548258628038 µs = 2013-05-26T06:04:18.628038Z
        let at = Utc
            .timestamp_micros(1_369_548_258_628_038)
            .single()
            .unwrap();
        assert_eq!(msg.at, When::Utc(at));
        assert_eq!(at.to_rfc3339(), "2013-05-26T06:04:18.628038+00:00");
    }

    #[test]
    fn documented_export_counts() {
        let c = read("Hangouts.json");
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 13);
        assert_eq!(c.people_messages().count(), 8);
        assert_eq!(service_count(&c), 5);
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            vec![
                "999999999999999999999",
                "Ada Lovelace",
                "Charles Babbage",
                "Mary Somerville"
            ]
        );
        let convs: std::collections::BTreeSet<&str> =
            c.messages.iter().map(|m| m.conversation.as_str()).collect();
        assert_eq!(
            convs.into_iter().collect::<Vec<_>>(),
            vec!["UgwDMconversation", "UgzGroupConversation"]
        );

        let texts: Vec<&str> = c.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "Charles Babbage added Mary Somerville",
                "Charles Babbage renamed the conversation to \"Engine club\"",
                "Welcome Mary!\nThe notes are at https://example.org/notes",
                "Thanks! Here is the diagram",
                "",
                "Charles Babbage started a call",
                "call ended after 1h 02m 05s",
                "Mary Somerville left",
                "Are you coming on Tuesday?",
                "Yes",
                "",
                "Meet me here",
                "ok",
            ]
        );
        let multi = &c.messages[2];
        assert_eq!(multi.author.name, "Charles Babbage");
        assert_eq!(multi.conversation_title.as_deref(), Some("Engine club"));
        assert_eq!(multi.group, Some(true));
        let diagram = &c.messages[3];
        assert_eq!(
            diagram.attachments,
            vec![Attachment {
                kind: "image".into(),
                name: None
            }]
        );
        assert_eq!(
            c.messages[4].attachments,
            vec![Attachment {
                kind: "gif".into(),
                name: None
            }]
        );
        let dm = &c.messages[8];
        assert_eq!(dm.group, Some(false));
        assert_eq!(dm.conversation_title.as_deref(), Some("Charles Babbage"));
        assert_eq!(dm.author.me, Some(true));
        assert_eq!(dm.author.name, "Ada Lovelace");
        assert_eq!(
            c.messages[10].attachments,
            vec![Attachment {
                kind: "video".into(),
                name: None
            }]
        );
        assert_eq!(
            c.messages[11].attachments,
            vec![Attachment {
                kind: "location".into(),
                name: Some("Royal Society".into())
            }]
        );
        // An unknown sender falls back to its gaia id.
        assert_eq!(c.messages[12].author.name, "999999999999999999999");
        let at = Utc.with_ymd_and_hms(2014, 3, 1, 18, 0, 0).unwrap();
        assert_eq!(c.messages[8].at, When::Utc(at));
    }

    #[test]
    fn old_conversation_state_layout() {
        let c = read("Hangouts_2015_layout.json");
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 3);
        assert_eq!(c.people_messages().count(), 2);
        assert_eq!(service_count(&c), 1);
        assert_eq!(c.messages[0].conversation, "UgOldLayout");
        assert_eq!(
            c.messages[0].text,
            "Ada Lovelace turned conversation history off"
        );
        assert_eq!(c.messages[1].text, "hello from 2015");
        assert_eq!(c.messages[1].author.me, Some(false));
        assert_eq!(c.messages[2].author.me, Some(true));
        assert_eq!(
            c.messages[1].conversation_title.as_deref(),
            Some("Charles Babbage")
        );
    }

    #[test]
    fn tiny_read_buffers_give_the_same_records() {
        let bytes = std::fs::read(fixture("Hangouts.json")).unwrap();
        let whole = read("Hangouts.json");
        for capacity in [1, 2, 7, 64] {
            let mut out = Collect::default();
            let mut em = Emitter {
                out: &mut out,
                file: PathBuf::from("x"),
                emitted: 0,
                conversations: 0,
            };
            let mut scanner = Scanner::new(BufReader::with_capacity(capacity, &bytes[..]));
            assert!(scanner.walk(&mut em).unwrap());
            assert_eq!(em.conversations, 2);
            assert_eq!(out.messages, whole.messages, "capacity {capacity}");
            assert_eq!(scanner.line, 823, "lines are counted across buffer edges");
        }
    }

    #[test]
    fn escapes_and_brackets_inside_strings_at_every_buffer_edge() {
        let json = br#"{"x": [1, "]"], "conversations": [{"conversation": {"conversation": {"id": {"id": "c\"1"}}},
            "events": [{"sender_id": {"gaia_id": "1"}, "timestamp": 1400000000000000,
              "chat_message": {"message_content": {"segment": [{"type": "TEXT", "text": "a \"q\" } ] { [ \\ end\\"}]}}},
              {"sender_id": {"gaia_id": "2"}, "timestamp": "1400000000000001", "event_type": "X_Y"}]}]}"#;
        for capacity in 1..12 {
            let mut out = Collect::default();
            let mut em = Emitter {
                out: &mut out,
                file: PathBuf::from("x"),
                emitted: 0,
                conversations: 0,
            };
            assert!(
                Scanner::new(BufReader::with_capacity(capacity, &json[..]))
                    .walk(&mut em)
                    .unwrap()
            );
            assert!(out.problems.is_empty(), "{:?}", out.problems);
            assert_eq!(out.messages.len(), 2, "capacity {capacity}");
            assert_eq!(out.messages[0].text, "a \"q\" } ] { [ \\ end\\");
            assert_eq!(out.messages[0].conversation, "c\"1");
            assert_eq!(out.messages[1].text, "x y (2)");
            assert_eq!(out.messages[1].kind, MessageKind::Service);
        }
    }

    #[test]
    fn a_malformed_event_is_skipped_with_its_line() {
        let text = std::fs::read_to_string(fixture("Hangouts.json")).unwrap();
        // Make the third event's sender a number where an object is expected.
        let broken = text.replacen(
            "\"event_id\": \"g3\"",
            "\"event_id\": \"g3\", \"sender_id\": 5",
            1,
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Hangouts.json");
        std::fs::write(&path, broken).unwrap();
        let (_, c) = read_with(&Hangouts, &path, false).unwrap();
        assert_eq!(c.messages.len(), 12);
        assert_eq!(c.problems.len(), 1);
        let p = &c.problems[0];
        let want = text
            .lines()
            .position(|l| l.contains("\"event_id\": \"g3\""))
            .unwrap() as u64
            + 1;
        assert_eq!(p.line, Some(want), "{p:?}");
        assert!(p.reason.contains("unreadable event"), "{}", p.reason);
    }

    #[test]
    fn truncated_file_keeps_what_came_before() {
        let text = std::fs::read_to_string(fixture("Hangouts.json")).unwrap();
        let cut = text.find("UgwDMconversation").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Hangouts.json");
        std::fs::write(&path, &text[..cut]).unwrap();
        let (_, c) = read_with(&Hangouts, &path, false).unwrap();
        assert_eq!(c.messages.len(), 8, "the whole first conversation is kept");
        assert_eq!(c.problems.len(), 1);
        let p = &c.problems[0];
        assert_eq!(p.file, path);
        assert!(p.line.unwrap() > 100, "{p:?}");
        assert!(p.reason.contains("cut off"), "{}", p.reason);
    }

    #[test]
    fn bad_timestamp_is_a_problem_and_parsing_goes_on() {
        let json = r#"{"conversations":[{"conversation":{"conversation":{"id":{"id":"c1"}}},
            "events":[{"sender_id":{"gaia_id":"1"},"timestamp":"soon","event_id":"e1",
                       "chat_message":{"message_content":{"segment":[{"type":"TEXT","text":"a"}]}}},
                      {"sender_id":{"gaia_id":"1"},"timestamp":1400000000000000,"event_id":"e2",
                       "chat_message":{"message_content":{"segment":[{"type":"TEXT","text":"b"}]}}}]}]}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Hangouts.json");
        std::fs::write(&path, json).unwrap();
        let (_, c) = read_with(&Hangouts, &path, false).unwrap();
        assert_eq!(c.messages.len(), 1);
        assert_eq!(c.messages[0].text, "b");
        assert_eq!(c.problems.len(), 1);
        assert!(
            c.problems[0].reason.contains("`soon`"),
            "{}",
            c.problems[0].reason
        );
    }

    #[test]
    fn not_hangouts_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Hangouts.json");
        std::fs::write(&path, "{\"something\": []}").unwrap();
        assert!(read_with(&Hangouts, &path, false).is_err());
        std::fs::write(&path, "garbage").unwrap();
        assert!(read_with(&Hangouts, &path, false).is_err());
    }

    #[test]
    fn claims_by_name_and_by_content_only_when_forced() {
        let dir = tempfile::tempdir().unwrap();
        let json = std::fs::read(fixture("Hangouts.json")).unwrap();
        std::fs::write(dir.path().join("export.json"), &json).unwrap();
        std::fs::write(dir.path().join("result.json"), b"{\"chats\": []}").unwrap();
        let (units, _) = read_with(&Hangouts, dir.path(), false).unwrap();
        assert!(units.is_empty());
        let (units, c) = read_with(&Hangouts, dir.path(), true).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].files, vec![PathBuf::from("export.json")]);
        assert_eq!(c.messages.len(), 13);
    }

    fn parse_bytes(bytes: &[u8]) -> Collect {
        let mut out = Collect::default();
        let mut em = Emitter {
            out: &mut out,
            file: PathBuf::from("x"),
            emitted: 0,
            conversations: 0,
        };
        let _ = Scanner::new(BufReader::with_capacity(16, bytes)).walk(&mut em);
        out
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            parse_bytes(&bytes);
        }

        #[test]
        fn mutated_fixture_never_panics(pos in 0usize..4000, len in 0usize..64, byte in any::<u8>()) {
            let mut bytes = std::fs::read(fixture("Hangouts.json")).unwrap();
            let start = pos.min(bytes.len());
            let end = (start + len).min(bytes.len());
            bytes.splice(start..end, std::iter::once(byte));
            parse_bytes(&bytes);
        }
    }
}
