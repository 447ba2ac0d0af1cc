//! Facebook Messenger and Instagram "Download your information" JSON exports.
//!
//! Both write one folder per conversation, `messages/inbox/<thread>/message_1.json`,
//! `message_2.json`, ... (under `your_facebook_activity/`, `your_activity_across_facebook/`
//! or `your_instagram_activity/` in newer exports), each file:
//!
//! ```text
//! { "participants": [{"name": "Alice Smith"}, ...],
//!   "messages": [ { "sender_name", "timestamp_ms", "content"?, "type"?: "Generic" | "Share" |
//!                   "Call" | "Subscribe" | "Unsubscribe", "photos"? | "videos"? | "gifs"? |
//!                   "audio_files"? | "files"?: [{"uri", "creation_timestamp"}], "sticker"?: {"uri"},
//!                   "share"?: {"link", "share_text"}, "reactions"?: [{"reaction", "actor"}],
//!                   "call_duration"?, "users"?, "is_unsent"? } ],
//!   "title", "is_still_participant", "thread_type"?: "Regular" | "RegularGroup",
//!   "thread_path": "inbox/alicesmith_1015..." }
//! ```
//! (field list as documented by the public Messenger-archive tools, e.g. the README of
//! "Messenger Archive SQLite Database Builder" and SamuelePilleri/facebook-schemas).
//!
//! Surprises:
//! - Messages are NEWEST FIRST, and `message_1.json` holds the newest ones. A thread
//!   is read whole (every split) and emitted oldest first, ties kept in export order.
//! - Every string is mojibake: Facebook writes each UTF-8 byte as its own `\u00XX`
//!   escape ("Cze\u00c5\u009b\u00c4\u0087" for "Cześć"). Strings whose characters all
//!   fit in a byte are re-read as UTF-8 when that decodes cleanly.
//! - Calls, joins and leaves are messages with `type` Call/Subscribe/Unsubscribe:
//!   Service lines. Unsent messages keep their place as Service lines too. Instagram
//!   writes likes as messages ("Liked a message"): Service as well.
//! - Nothing in a file says Messenger or Instagram; the path does
//!   (`your_instagram_activity`, a folder or zip named `instagram-...`). With no clue
//!   it is Messenger.
//! - The end-to-end-encrypted Messenger download writes the same thing in camelCase
//!   (`senderName`, `text`, `timestamp` in ms, `media`, `isUnsent`, participants as
//!   plain strings): read too. Very old exports give `timestamp` in seconds.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::discord::jsonscan::{self, Cursor, Lines, Num, Str, nullable};
use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Reaction,
    Sink, Source, Unit, When,
};

/// Reads Facebook Messenger JSON threads.
pub struct Messenger;

/// Reads Instagram direct-message JSON threads (the same shape as Messenger).
pub struct Instagram;

impl Importer for Messenger {
    fn format(&self) -> Format {
        Format::Messenger
    }
    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        claim_threads(src, pool, forced, Format::Messenger)
    }
    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        parse_thread(src, unit, out)
    }
}

impl Importer for Instagram {
    fn format(&self) -> Format {
        Format::Instagram
    }
    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        claim_threads(src, pool, forced, Format::Instagram)
    }
    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        parse_thread(src, unit, out)
    }
}

/// `message_<N>.json` gives N.
fn split_number(name: &str) -> Option<u32> {
    name.strip_prefix("message_")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Group `message_N.json` files by folder; other JSON files qualify alone when
/// their head looks like a thread. Keep the units of the wanted platform.
fn claim_threads(src: &dyn Source, pool: &[PathBuf], forced: bool, want: Format) -> Vec<Unit> {
    let source_hint = source_platform(src);
    let mut threads: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut singles = Vec::new();
    for rel in pool {
        let name = jsonscan::file_name(src, rel);
        if let (Some(folder), Some(_)) = (rel.parent(), split_number(&name)) {
            threads
                .entry(folder.to_path_buf())
                .or_default()
                .push(rel.clone());
            continue;
        }
        let candidate = jsonscan::has_json_ext(&name) || (forced && rel.as_os_str().is_empty());
        if candidate
            && src
                .head(rel, jsonscan::HEAD)
                .is_ok_and(|h| looks_like_thread(&h, forced))
        {
            singles.push(rel.clone());
        }
    }
    let mut units: Vec<(PathBuf, Vec<PathBuf>)> = threads
        .into_iter()
        .chain(singles.into_iter().map(|f| (f.clone(), vec![f])))
        .collect();
    units.sort();
    units
        .into_iter()
        .filter(|(label, files)| {
            forced || {
                let from_head = || {
                    let head = files
                        .first()
                        .and_then(|f| src.head(f, jsonscan::HEAD).ok())
                        .unwrap_or_default();
                    platform_of_head(&head)
                };
                platform_of_path(label)
                    .or(source_hint)
                    .or_else(from_head)
                    .unwrap_or(Format::Messenger)
                    == want
            }
        })
        .map(|(label, files)| Unit {
            format: want,
            files,
            label,
        })
        .collect()
}

fn looks_like_thread(head: &[u8], forced: bool) -> bool {
    let head = jsonscan::trim_start(head);
    let has = |k: &[u8]| jsonscan::contains(head, k);
    head.first() == Some(&b'{')
        && has(b"\"messages\"")
        && (forced
            || ((has(b"\"sender_name\"") || has(b"\"senderName\""))
                && (has(b"\"timestamp_ms\"") || has(b"\"timestamp\""))))
}

/// What a unit's own path says.
fn platform_of_path(label: &Path) -> Option<Format> {
    let path = label.to_string_lossy().to_lowercase();
    if path.contains("instagram") {
        return Some(Format::Instagram);
    }
    if path.contains("facebook") || path.contains("messenger") {
        return Some(Format::Messenger);
    }
    None
}

/// What a `thread_path` in the head of a file says, when it shows there.
fn platform_of_head(head: &[u8]) -> Option<Format> {
    let at = head.windows(14).position(|w| w == b"\"thread_path\"")?;
    let rest = &head[at..];
    let line = &rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())];
    jsonscan::contains(&line.to_ascii_lowercase(), b"instagram").then_some(Format::Instagram)
}

/// What the whole source says: its name, or the top folders of newer exports.
fn source_platform(src: &dyn Source) -> Option<Format> {
    let root = src
        .root()
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if root.contains("instagram") {
        return Some(Format::Instagram);
    }
    if root.contains("facebook") || root.contains("messenger") {
        return Some(Format::Messenger);
    }
    let top = |p: &PathBuf| {
        p.components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let files = src.files();
    if files.iter().any(|p| top(p).contains("instagram")) {
        return Some(Format::Instagram);
    }
    if files.iter().any(|p| top(p).contains("facebook")) {
        return Some(Format::Messenger);
    }
    None
}

/// Re-read Facebook's byte-per-character mojibake as UTF-8 when that is what it is.
pub(crate) fn repair(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || s.chars().any(|c| u32::from(c) > 0xFF) {
        return Cow::Borrowed(s);
    }
    let bytes: Vec<u8> = s.chars().map(|c| u32::from(c) as u8).collect();
    match String::from_utf8(bytes) {
        Ok(fixed) => Cow::Owned(fixed),
        Err(_) => Cow::Borrowed(s),
    }
}

fn fixed(s: &Str<'_>) -> String {
    repair(s.as_str()).into_owned()
}

/// What the files of one thread say about it.
#[derive(Debug, Default)]
struct Thread {
    title: String,
    path: String,
    kind: String,
    participants: usize,
    has_messages: bool,
}

/// A message waiting for the whole thread to be read, with its sort key.
struct Pending {
    ms: i64,
    /// `message_N` number: a higher N holds older messages.
    split: u32,
    /// Position in its file, negated when the file is newest first.
    order: i64,
    raw: RawMessage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FbMessage<'a> {
    #[serde(borrow, alias = "senderName")]
    sender_name: Str<'a>,
    timestamp_ms: Num,
    /// Seconds in very old exports, milliseconds in the camelCase (E2EE) one.
    timestamp: Num,
    #[serde(borrow, alias = "text")]
    content: Str<'a>,
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, alias = "isUnsent")]
    is_unsent: Str<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    photos: Vec<Media<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    videos: Vec<Media<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    gifs: Vec<Media<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    audio_files: Vec<Media<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    files: Vec<Media<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    media: Vec<Media<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    sticker: Option<Media<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    share: Share<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    reactions: Vec<FbReaction<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Media<'a> {
    #[serde(borrow)]
    uri: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Share<'a> {
    #[serde(borrow)]
    link: Str<'a>,
    #[serde(borrow)]
    share_text: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FbReaction<'a> {
    #[serde(borrow)]
    reaction: Str<'a>,
    #[serde(borrow)]
    actor: Str<'a>,
}

fn parse_thread(src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
    let mut thread = Thread::default();
    let mut pending = Vec::new();
    let mut broken = Vec::new();
    for rel in &unit.files {
        let split = split_number(&jsonscan::file_name(src, rel)).unwrap_or(0);
        if let Some(p) = parse_file(src, rel, split, unit.format, &mut thread, &mut pending, out)? {
            broken.push(p);
        }
    }
    if !thread.has_messages {
        // Nothing of the thread could be read: the unit is not this format.
        return Err(match broken.into_iter().next() {
            Some(p) => ImportError::unreadable(
                &p.file,
                format!("line {}: {}", p.line.unwrap_or(1), p.reason),
            ),
            None => {
                let file = unit
                    .files
                    .first()
                    .map(|f| src.display(f))
                    .unwrap_or_else(|| src.display(&unit.label));
                ImportError::unreadable(
                    &file,
                    "no \"messages\" list: not a Messenger/Instagram JSON thread",
                )
            }
        });
    }
    broken.into_iter().for_each(|p| out.problem(p));
    pending.sort_by(|a, b| {
        a.ms.cmp(&b.ms)
            .then(b.split.cmp(&a.split))
            .then(a.order.cmp(&b.order))
    });

    let conversation = [
        thread.path.as_str(),
        &unit.label.to_string_lossy(),
        thread.title.as_str(),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .map(str::to_string)
    .unwrap_or_else(|| src.display(&unit.label).to_string_lossy().into_owned());
    let title = (!thread.title.is_empty()).then(|| thread.title.clone());
    let group = match thread.kind.as_str() {
        "RegularGroup" => Some(true),
        "Regular" => Some(false),
        _ if thread.participants > 2 => Some(true),
        _ if thread.participants == 2 => Some(false),
        _ => None,
    };
    for p in pending {
        let mut raw = p.raw;
        raw.conversation.clone_from(&conversation);
        raw.conversation_title.clone_from(&title);
        raw.group = group;
        out.message(raw);
    }
    Ok(())
}

/// Read one `message_N.json` into `pending`; where the file stops making sense
/// comes back as a Problem, for the caller to report or to turn into an error.
fn parse_file(
    src: &dyn Source,
    rel: &Path,
    split: u32,
    format: Format,
    thread: &mut Thread,
    pending: &mut Vec<Pending>,
    out: &mut dyn Sink,
) -> Result<Option<Problem>, ImportError> {
    let bytes = jsonscan::read_bytes(src, rel)?;
    let file = src.display(rel);
    let mut lines = Lines::new(&bytes);
    let first = pending.len();
    let scanned = Cursor::new(&bytes).object(|cur, key| {
        match key.as_ref() {
            "title" | "threadName" => set_text(&mut thread.title, &bytes, cur.value()?),
            "thread_path" | "threadPath" => set_text(&mut thread.path, &bytes, cur.value()?),
            "thread_type" => set_text(&mut thread.kind, &bytes, cur.value()?),
            "participants" => {
                let list: Vec<IgnoredAny> = jsonscan::parse_lenient(&bytes, cur.value()?);
                thread.participants = thread.participants.max(list.len());
            }
            "messages" => {
                thread.has_messages = true;
                cur.array(|span| {
                    let line = lines.line_at(span.start);
                    let problem = |reason: String, line: u64| Problem {
                        file: file.clone(),
                        line: Some(line),
                        reason,
                    };
                    match serde_json::from_slice::<FbMessage>(&bytes[span]) {
                        Ok(m) => match to_raw(&m, format) {
                            Ok((ms, raw)) => {
                                let order = (pending.len() - first) as i64;
                                pending.push(Pending {
                                    ms,
                                    split,
                                    order,
                                    raw,
                                });
                            }
                            Err(reason) => out.problem(problem(reason, line)),
                        },
                        Err(e) => out.problem(problem(
                            format!("message skipped: {}", jsonscan::json_reason(&e)),
                            line + (e.line() as u64).saturating_sub(1),
                        )),
                    }
                })?;
            }
            _ => {
                cur.value()?;
            }
        }
        Ok(())
    });
    let broken = scanned.err().map(|e| Problem {
        file,
        line: Some(lines.line_at(e.offset)),
        reason: e.reason.to_string(),
    });
    // Facebook files are newest first; the camelCase download is oldest first.
    let mine = &mut pending[first..];
    if mine
        .first()
        .zip(mine.last())
        .is_none_or(|(a, b)| a.ms >= b.ms)
    {
        mine.iter_mut().for_each(|p| p.order = -p.order);
    }
    Ok(broken)
}

fn set_text(slot: &mut String, bytes: &[u8], span: std::ops::Range<usize>) {
    let s: Str = jsonscan::parse_lenient(bytes, span);
    *slot = fixed(&s);
}

fn to_raw(m: &FbMessage<'_>, format: Format) -> Result<(i64, RawMessage), String> {
    let ms = m
        .timestamp_ms
        .0
        .or_else(|| {
            m.timestamp.0.map(|t| {
                if t.abs() < 100_000_000_000 {
                    t.saturating_mul(1000)
                } else {
                    t
                }
            })
        })
        .ok_or_else(|| "message skipped: no timestamp_ms".to_string())?;
    let at = DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| format!("message skipped: timestamp_ms {ms} is out of range"))?;
    let sender = fixed(&m.sender_name);
    let content = fixed(&m.content);
    let unsent = m.is_unsent.as_str() == "true";
    let service = unsent
        || matches!(m.kind.as_str(), "Call" | "Subscribe" | "Unsubscribe")
        || (format == Format::Instagram && is_instagram_notice(&content));
    let text = body(m, &sender, content, unsent);
    let author = Author {
        name: if sender.is_empty() {
            "Unknown".to_string()
        } else {
            sender
        },
        handle: None,
        me: None,
    };
    let mut raw = RawMessage::new(String::new(), author, When::Utc(at), text);
    raw.kind = if service {
        MessageKind::Service
    } else {
        MessageKind::Message
    };
    raw.attachments = attachments(m);
    raw.reactions = m
        .reactions
        .iter()
        .map(|r| Reaction {
            author: fixed(&r.actor),
            emoji: fixed(&r.reaction),
        })
        .collect();
    Ok((ms, raw))
}

/// Instagram writes likes and reactions to stories as messages of their own.
fn is_instagram_notice(content: &str) -> bool {
    content == "Liked a message"
        || (content.starts_with("Reacted ") && content.ends_with(" to your message"))
}

/// The words: the content; for shares whose content is only the generated
/// "X sent an attachment.", the shared text and link; a line for unsent ones.
fn body(m: &FbMessage<'_>, sender: &str, content: String, unsent: bool) -> String {
    if unsent && content.is_empty() {
        return format!("{sender} unsent a message");
    }
    let shared = [fixed(&m.share.share_text), fixed(&m.share.link)];
    let has_share = shared.iter().any(|s| !s.is_empty());
    if has_share && (content.is_empty() || content.ends_with(" sent an attachment.")) {
        return shared
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
    }
    content
}

fn attachments(m: &FbMessage<'_>) -> Vec<Attachment> {
    let named = |kind: &'static str| {
        move |x: &Media<'_>| {
            let name = repair(jsonscan::last_segment(x.uri.as_str())).into_owned();
            let kind = if kind.is_empty() {
                jsonscan::kind_from_name(&name)
            } else {
                kind
            };
            Attachment {
                kind: kind.to_string(),
                name: (!name.is_empty()).then_some(name),
            }
        }
    };
    let mut out: Vec<Attachment> = Vec::new();
    out.extend(m.photos.iter().map(named("image")));
    out.extend(m.videos.iter().map(named("video")));
    out.extend(m.gifs.iter().map(named("gif")));
    out.extend(m.audio_files.iter().map(named("audio")));
    out.extend(m.files.iter().map(named("file")));
    out.extend(m.media.iter().map(named("")));
    out.extend(m.sticker.iter().map(named("sticker")));
    out
}

#[cfg(test)]
mod tests {
    use super::jsonscan::MemSource;
    use super::*;
    use crate::ingest::{Collect, read_with};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    const MESSENGER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/messenger");
    const INSTAGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/instagram");
    const ALICE: &str = "your_facebook_activity/messages/inbox/alicesmith_10158223344556677";

    fn read(importer: &dyn Importer, path: &str, forced: bool) -> (Vec<Unit>, Collect) {
        read_with(importer, Path::new(path), forced).unwrap()
    }

    fn utc(ms: i64) -> When {
        When::Utc(Utc.timestamp_millis_opt(ms).unwrap())
    }

    fn texts(out: &Collect) -> Vec<&str> {
        out.messages.iter().map(|m| m.text.as_str()).collect()
    }

    fn files_of(dir: &str) -> Vec<(String, Vec<u8>)> {
        let src = crate::ingest::open_source(Path::new(dir)).unwrap();
        src.files()
            .iter()
            .map(|p| {
                (
                    p.to_string_lossy().into_owned(),
                    std::fs::read(Path::new(dir).join(p)).unwrap(),
                )
            })
            .collect()
    }

    fn mem(files: &[(String, Vec<u8>)]) -> MemSource {
        MemSource::new(
            "mem-facebook",
            files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect(),
        )
    }

    #[test]
    fn a_split_messenger_thread_reads_oldest_first_with_repaired_text() {
        let (units, out) = read(&Messenger, MESSENGER, false);
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].label, PathBuf::from(ALICE));
        let expected: Vec<PathBuf> = ["message_1.json", "message_2.json"]
            .iter()
            .map(|f| Path::new(ALICE).join(f))
            .collect();
        assert_eq!(units[0].files, expected);
        assert!(units.iter().all(|u| u.format == Format::Messenger));
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.messages.len(), 15);
        assert_eq!(out.people_messages().count(), 11);
        assert_eq!(
            out.authors().into_iter().collect::<Vec<_>>(),
            vec!["Alice Smith", "Jan Kowalski", "Ola Nowak"]
        );

        let m = &out.messages[..10];
        assert_eq!(
            texts(&out)[..10],
            [
                "Cześć! Jak się masz? 😀",
                "Dobrze, dziękuję. A ty?",
                "",
                "Ładne zdjęcie! Café au lait?",
                "The call ended.",
                "https://example.com/article",
                "Do zobaczenia\njutro o 10:00 ☕",
                "",
                "Alice Smith unsent a message",
                "",
            ]
        );
        let kinds: Vec<_> = m.iter().map(|m| m.kind == MessageKind::Service).collect();
        assert_eq!(
            kinds,
            [
                false, false, false, false, true, false, false, false, true, false
            ]
        );
        assert_eq!(m[0].at, utc(1685613600000));
        assert_eq!((m[6].at, m[7].at), (utc(1685615400500), utc(1685615400500)));
        assert_eq!(
            (m[6].author.name.as_str(), m[7].author.name.as_str()),
            ("Alice Smith", "Jan Kowalski")
        );
        assert!(
            m.iter()
                .all(|m| m.conversation == "inbox/alicesmith_10158223344556677"
                    && m.conversation_title.as_deref() == Some("Alice Smith")
                    && m.group == Some(false)
                    && m.author.handle.is_none())
        );
        assert_eq!(
            m[2].attachments,
            vec![Attachment {
                kind: "image".into(),
                name: Some("348812771_6238717.jpg".into())
            }]
        );
        assert_eq!(
            m[3].reactions,
            vec![Reaction {
                author: "Alice Smith".into(),
                emoji: "❤".into()
            }]
        );
        assert_eq!(m[7].attachments[0].kind, "sticker");
        assert_eq!(
            m[7].reactions
                .iter()
                .map(|r| r.emoji.as_str())
                .collect::<Vec<_>>(),
            vec!["😆", "👍"]
        );
        assert_eq!(m[9].attachments[0].kind, "audio");
    }

    #[test]
    fn a_group_thread_has_joins_and_leaves_as_service_lines() {
        let (_, out) = read(&Messenger, MESSENGER, false);
        let g = &out.messages[10..];
        assert!(g.iter().all(
            |m| m.conversation_title.as_deref() == Some("Górska ekipa 🏔") && m.group == Some(true)
        ));
        let service: Vec<_> = g
            .iter()
            .filter(|m| m.kind == MessageKind::Service)
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(
            service,
            vec![
                "Jan Kowalski added Ola Nowak to the group.",
                "Alice Smith left the group."
            ]
        );
        assert_eq!(g[1].text, "Hej wszystkim! Żółć 🏔");
        assert_eq!(
            g[3].attachments,
            vec![Attachment {
                kind: "file".into(),
                name: Some("trasa.gpx".into())
            }]
        );
        let kinds: Vec<_> = g[4].attachments.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, vec!["video", "gif"]);
    }

    #[test]
    fn instagram_threads_are_told_apart_by_path() {
        let (units, out) = read(&Instagram, INSTAGRAM, false);
        assert_eq!(units.len(), 2);
        assert!(units.iter().all(|u| u.format == Format::Instagram));
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.messages.len(), 8);
        assert_eq!(out.people_messages().count(), 7);
        let authors: Vec<_> = out.authors().into_iter().collect();
        assert_eq!(
            authors,
            vec!["Jane Doe", "John Doe", "Maria Souza", "bruno.costa"]
        );
        assert_eq!(
            texts(&out),
            vec![
                "Hello John!",
                "Hello Jane!",
                "Olá! Tudo bem? 😊",
                "Tudo ótimo, e você?",
                "Praia 🌊\nhttps://www.instagram.com/reel/C0abcdEFgh/",
                "Liked a message",
                "",
                "Que foto linda!\nOnde foi?",
            ]
        );
        assert_eq!(
            (out.messages[0].at, out.messages[1].at),
            (utc(1577186580000), utc(1579294140000))
        );
        assert_eq!(out.messages[5].kind, MessageKind::Service);
        assert_eq!(
            out.messages[3].reactions,
            vec![Reaction {
                author: "bruno.costa".into(),
                emoji: "❤️".into()
            }]
        );
        assert_eq!(
            out.messages[2].conversation,
            "inbox/brunocosta_17846324115093711"
        );
        assert_eq!(out.messages[0].conversation, "chat-miner_test_export.json");

        // Messenger leaves them alone; with no clue at all a file is Messenger's.
        assert!(read(&Messenger, INSTAGRAM, false).0.is_empty());
        assert!(read(&Instagram, MESSENGER, false).0.is_empty());
        let single = format!("{INSTAGRAM}/chat-miner_test_export.json");
        assert_eq!(read(&Messenger, &single, false).1.messages.len(), 2);
        assert!(read(&Instagram, &single, false).0.is_empty());
        let (units, forced) = read(&Instagram, &single, true);
        assert_eq!(
            (units[0].format, forced.messages.len()),
            (Format::Instagram, 2)
        );
    }

    #[test]
    fn mojibake_is_repaired_only_when_it_is_mojibake() {
        assert_eq!(repair("Caf\u{00c3}\u{00a9}"), "Café");
        assert_eq!(repair("\u{00f0}\u{009f}\u{0098}\u{0080}"), "😀");
        assert_eq!(repair("Café"), "Café");
        assert_eq!(repair("Ã"), "Ã");
        assert_eq!(repair("日本 Ã©"), "日本 Ã©");
        assert!(matches!(repair("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn bad_records_and_cut_files_are_problems_and_the_rest_reads() {
        let mut files = files_of(MESSENGER);
        for (path, data) in files.iter_mut() {
            let text = String::from_utf8(data.clone()).unwrap();
            if path.ends_with("alicesmith_10158223344556677/message_1.json") {
                *data = text
                    .replacen(
                        "\"timestamp_ms\": 1685616600000",
                        "\"timestamp_ms\": \"soon\"",
                        1,
                    )
                    .replacen("\"is_unsent\": true", "\"photos\": 5", 1)
                    .into_bytes();
            } else if path.ends_with("alicesmith_10158223344556677/message_2.json") {
                data.truncate(data.len() / 2);
            }
        }
        let (_, out, errors) = mem(&files).read(&Messenger, false);
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<_> = out
            .problems
            .iter()
            .map(|p| (p.line, p.reason.as_str()))
            .collect();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(got[0], (Some(11), "message skipped: no timestamp_ms"));
        assert!(
            got[1]
                .1
                .starts_with("message skipped: invalid type: integer `5`"),
            "{}",
            got[1].1
        );
        assert!(got[2].1.contains("truncated"));
        assert!(out.problems[2].file.ends_with("message_2.json"));
        // 15 minus two bad records minus what the cut removed from message_2.
        assert_eq!(
            out.messages
                .iter()
                .filter(|m| m.conversation.starts_with("inbox/alice"))
                .count(),
            3 + 2
        );
    }

    #[test]
    fn a_thread_with_nothing_readable_is_an_error() {
        let src = MemSource::new("fb", vec![("inbox/x_1/message_1.json", b"<html>".to_vec())]);
        let (units, out, errors) = src.read(&Messenger, false);
        assert_eq!(units.len(), 1);
        assert!(out.problems.is_empty());
        assert_eq!(
            errors,
            vec!["fb/inbox/x_1/message_1.json: line 1: expected a JSON object".to_string()]
        );
    }

    #[test]
    fn the_camel_case_download_reads_too() {
        let doc = r#"{"participants": ["Ana", "Ben"], "threadName": "Ana",
            "messages": [
              {"isUnsent": false, "media": [{"uri": "./media/a.jpg"}], "reactions": [], "senderName": "Ana", "text": "", "timestamp": 1700000000000, "type": "media"},
              {"isUnsent": false, "media": [], "reactions": [{"actor": "Ana", "reaction": "👍"}], "senderName": "Ben", "text": "ok", "timestamp": 1700000001000, "type": "text"}
            ]}"#;
        let src = MemSource::new(
            "messenger-e2ee",
            vec![("Ana_1.json", doc.as_bytes().to_vec())],
        );
        let (units, out, errors) = src.read(&Messenger, false);
        assert!(errors.is_empty());
        assert_eq!(units.len(), 1);
        assert_eq!(texts(&out), vec!["", "ok"]);
        assert_eq!(
            out.messages[0].attachments,
            vec![Attachment {
                kind: "image".into(),
                name: Some("a.jpg".into())
            }]
        );
        assert_eq!(
            (
                out.messages[1].conversation_title.as_deref(),
                out.messages[1].group
            ),
            (Some("Ana"), Some(false))
        );
        assert_eq!(out.messages[1].reactions.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let src = MemSource::new("r", vec![("inbox/t/message_1.json", bytes.clone()), ("x.json", bytes)]);
            let _ = src.read(&Messenger, true);
            let _ = src.read(&Instagram, true);
        }

        #[test]
        fn mutated_threads_never_panic(which in any::<prop::sample::Index>(),
                                       edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                       cut in any::<prop::sample::Index>()) {
            let mut files: Vec<_> = files_of(MESSENGER).into_iter().filter(|(p, _)| p.ends_with(".json")).collect();
            let n = files.len();
            let data = &mut files[which.index(n)].1;
            for (i, b) in edits {
                let at = i.index(data.len());
                data[at] = b;
            }
            let keep = cut.index(data.len() + 1);
            data.truncate(keep.max(data.len() / 2));
            let _ = mem(&files).read(&Messenger, false);
        }
    }
}
