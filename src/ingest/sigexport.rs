//! Signal Desktop chats exported to Markdown by `sigexport`
//! (carderne/signal-export, PyPI `signal-export`).
//!
//! The format (sources: carderne/signal-export `sigexport/models.py`
//! `Message.to_md`, `sigexport/create.py`, `sigexport/main.py`, and the 2020-era
//! `sigexport.py`; chat-miner's `test/signal/test_export.txt`):
//!
//! - One folder per chat, named after the contact or group, holding `chat.md`
//!   (older releases: `index.md`). The folder name is the conversation.
//! - A message starts with `[YYYY-MM-DD HH:MM:SS] Sender: body` (older releases:
//!   `[YYYY-MM-DD HH:MM]` or `[YYYY-MM-DD, HH:MM]`), in the exporting machine's
//!   local time without an offset. Outgoing messages have the sender `Me`;
//!   unknown senders (group updates) are `No-Sender`.
//! - Body lines after the first carry no prefix. The body ends with two spaces
//!   (a Markdown line break), and newer releases leave a blank line after each
//!   message (`print` of a string that already ends in a newline).
//! - A quote comes right after `Sender: ` as `\n\n> quoted\n> lines\n\n`, then
//!   the body. The quoted message has no id, so it is dropped from the text
//!   and `reply_to` stays empty.
//! - After the body: reactions `\n(- Name: emoji, Name2: emoji -)`, a sticker
//!   `\n(( emoji ))` or `[emoji](../exported_stickers/...)`, attachments
//!   `![name](./media/file)  ` (images) or `[name](./media/file)  `.
//! - `(This message was deleted)` replaces deleted messages: skipped. Calls
//!   ("Outgoing voice call (accepted, 2m 5s)") and bodyless events are service
//!   lines. Mentions stay U+FFFC placeholders in the export (who was mentioned
//!   is lost): they become `@Unknown`.

use std::borrow::Cow;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use regex::Regex;

use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Reaction,
    Sink, Source, Unit, When,
};

/// Reads the `chat.md` / `index.md` files written by sigexport.
pub struct Sigexport;

/// `![name](./media/file)`, `[name](./media/file)` and sticker links.
static ATTACHMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"!?\[([^\]\n]*)\]\((\./media/[^)\n]*|\.\./exported_stickers/[^)\n]*)\)")
        .expect("valid regex")
});

// ------------------------------------------------------------------ header ----

/// A line that opens a message.
#[derive(Debug, PartialEq, Eq)]
struct Header<'a> {
    at: NaiveDateTime,
    sender: &'a str,
    rest: &'a str,
}

/// Whether `s[range]` exists and is all ASCII digits.
fn digits_at(s: &str, range: std::ops::Range<usize>) -> bool {
    s.get(range)
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `YYYY-MM-DD` shape.
fn date_shaped(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits_at(d, 0..4)
        && digits_at(d, 5..7)
        && digits_at(d, 8..10)
}

/// `HH:MM` or `HH:MM:SS` shape.
fn time_shaped(t: &str) -> bool {
    let b = t.as_bytes();
    (b.len() == 5 || b.len() == 8)
        && b[2] == b':'
        && digits_at(t, 0..2)
        && digits_at(t, 3..5)
        && (b.len() == 5 || (b[5] == b':' && digits_at(t, 6..8)))
}

/// None: not a header line (a body line). Some(Err): shaped like a header but
/// the date is impossible. Some(Ok): a header.
fn parse_header(line: &str) -> Option<Result<Header<'_>, String>> {
    let inner = line.strip_prefix('[')?;
    let close = inner.find("] ")?;
    let stamp = &inner[..close];
    let (date, time) = stamp.split_once(", ").or_else(|| stamp.split_once(' '))?;
    if !date_shaped(date) || !time_shaped(time) {
        return None;
    }
    let after = &inner[close + 2..];
    let (sender, rest) = match after.find(": ") {
        Some(i) => (&after[..i], &after[i + 2..]),
        None => (after.trim_end().strip_suffix(':')?, ""),
    };
    if sender.trim().is_empty() {
        return None;
    }
    // The shapes are checked, so these are ASCII digits (chrono's
    // parse_from_str is too slow for every header of a big chat).
    let num = |s: &str, r: std::ops::Range<usize>| {
        s.get(r)
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    let year = i32::try_from(num(date, 0..4)).unwrap_or(i32::MAX);
    let day = NaiveDate::from_ymd_opt(year, num(date, 5..7), num(date, 8..10));
    let secs = if time.len() == 8 { num(time, 6..8) } else { 0 };
    let clock = NaiveTime::from_hms_opt(num(time, 0..2), num(time, 3..5), secs);
    Some(match (day, clock) {
        (Some(d), Some(t)) => Ok(Header {
            at: d.and_time(t),
            sender,
            rest,
        }),
        _ => Err(format!(
            "impossible date or time in message header `[{stamp}]`"
        )),
    })
}

// ---------------------------------------------------------------- messages ----

/// A message whose lines are still being collected.
struct Pending {
    at: NaiveDateTime,
    sender: String,
    line: u64,
    text: String,
}

fn attachment_kind(path: &str) -> &'static str {
    if path.starts_with("../exported_stickers/") {
        return "sticker";
    }
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "gif" => "gif",
        "png" | "jpg" | "jpeg" | "tif" | "tiff" | "webp" | "apng" | "svg" | "heic" | "bmp" => {
            "image"
        }
        "m4a" | "aac" | "mp3" | "ogg" | "opus" | "wav" | "flac" => "audio",
        "mp4" | "mov" | "mkv" | "mpeg" | "webm" | "qt" | "3gp" => "video",
        "pdf" | "doc" | "docx" | "odt" | "rtf" | "txt" | "xls" | "xlsx" | "ods" | "csv" | "ppt"
        | "pptx" | "odp" => "document",
        "vcf" => "contact",
        _ => "file",
    }
}

/// Takes the attachment links out of `text`.
fn take_attachments(text: &str, into: &mut Vec<Attachment>) -> String {
    if !text.contains("](") {
        return text.to_string();
    }
    for cap in ATTACHMENT.captures_iter(text) {
        let (label, path) = (
            cap.get(1).map_or("", |m| m.as_str()),
            cap.get(2).map_or("", |m| m.as_str()),
        );
        let kind = attachment_kind(path);
        let name = (kind != "sticker" && !label.is_empty()).then(|| label.to_string());
        into.push(Attachment {
            kind: kind.to_string(),
            name,
        });
    }
    ATTACHMENT.replace_all(text, "").into_owned()
}

/// `(- Alice: 👍, Bob: ❤️ -)` -> reactions; None when the line is not one.
fn reactions_line(line: &str) -> Option<Vec<Reaction>> {
    let inner = line.strip_prefix("(- ")?.strip_suffix(" -)")?;
    Some(
        inner
            .split(", ")
            .filter_map(|r| r.rsplit_once(": "))
            .map(|(name, emoji)| Reaction {
                author: name.trim().to_string(),
                emoji: emoji.trim().to_string(),
            })
            .filter(|r| !r.author.is_empty() && !r.emoji.is_empty())
            .collect(),
    )
}

/// "Incoming voice call (accepted, 1m 3s)", "Missed video call", "Outgoing call".
fn is_call(text: &str) -> bool {
    let Some(rest) = ["Incoming ", "Outgoing ", "Missed "]
        .iter()
        .find_map(|p| text.strip_prefix(p))
    else {
        return false;
    };
    let rest = ["voice ", "video ", "audio "]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
        .unwrap_or(rest);
    rest == "call" || rest.starts_with("call (")
}

/// Splits off the leading quote block (`\n\n> ...\n\n` right after `Sender: `).
fn drop_quote(text: &str) -> &str {
    let Some((first, after)) = text.split_once('\n') else {
        return text;
    };
    if !first.trim().is_empty() {
        return text;
    }
    let after = after.trim_start_matches(['\n', ' ']);
    if !after.starts_with('>') {
        return text;
    }
    let mut rest = after;
    while rest.starts_with('>') {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest.trim_start_matches('\n')
}

/// Turns the collected lines of one message into a record (None: deleted).
fn finish(p: Pending, conversation: &str) -> Option<RawMessage> {
    let mut attachments = Vec::new();
    let body = take_attachments(drop_quote(&p.text), &mut attachments);
    let mut lines: Vec<&str> = body.split('\n').map(str::trim_end).collect();
    let mut reactions = Vec::new();
    loop {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        let Some(last) = lines.last().map(|l| l.trim()) else {
            break;
        };
        if let Some(found) = reactions_line(last) {
            reactions = found;
        } else if last
            .strip_prefix("(( ")
            .and_then(|l| l.strip_suffix(" ))"))
            .is_some()
        {
            attachments.push(Attachment {
                kind: "sticker".into(),
                name: None,
            });
        } else {
            break;
        }
        lines.pop();
    }
    let mut text = lines.join("\n").trim().to_string();
    if text == "(This message was deleted)" && attachments.is_empty() {
        return None;
    }
    if text.contains('\u{FFFC}') {
        text = text.replace('\u{FFFC}', "@Unknown");
    }
    let me = (p.sender == "Me").then_some(true);
    let service = attachments.is_empty() && (text.is_empty() || is_call(&text));
    let mut m = RawMessage::new(
        conversation,
        Author {
            name: p.sender,
            handle: None,
            me,
        },
        When::Local(p.at),
        text,
    );
    m.conversation_title = Some(conversation.to_string());
    m.kind = if service {
        MessageKind::Service
    } else {
        MessageKind::Message
    };
    m.attachments = attachments;
    m.reactions = reactions;
    m.line = Some(p.line);
    Some(m)
}

/// The chat's name: the folder of `chat.md`/`index.md`, else the file stem.
fn conversation_of(src: &dyn Source, rel: &Path) -> String {
    let path = if rel.as_os_str().is_empty() {
        src.root()
    } else {
        rel
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let folder = path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    match folder {
        Some(f) if (name == "chat.md" || name == "index.md") && !f.is_empty() => f,
        _ => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Signal chat".into()),
    }
}

fn parse_file(src: &dyn Source, rel: &Path, out: &mut dyn Sink) -> Result<(), ImportError> {
    let file = src.display(rel);
    let conversation = conversation_of(src, rel);
    let mut reader = BufReader::new(src.open(rel).map_err(|e| ImportError::io(&file, e))?);
    let mut buf = Vec::with_capacity(256);
    let mut number = 0u64;
    let mut pending: Option<Pending> = None;
    // After a broken header or stray text, the following body lines are dropped
    // without a Problem each.
    let mut skipping = false;
    let problem = |out: &mut dyn Sink, line: u64, reason: String| {
        out.problem(Problem {
            file: file.clone(),
            line: Some(line),
            reason,
        });
    };
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ImportError::io(&file, e))?
            == 0
        {
            break;
        }
        number += 1;
        while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            buf.pop();
        }
        let line: Cow<str> = String::from_utf8_lossy(&buf);
        let line = if number == 1 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        match parse_header(line) {
            Some(Ok(h)) => {
                if let Some(m) = pending.take().and_then(|p| finish(p, &conversation)) {
                    out.message(m);
                }
                pending = Some(Pending {
                    at: h.at,
                    sender: h.sender.to_string(),
                    line: number,
                    text: h.rest.to_string(),
                });
                skipping = false;
            }
            Some(Err(reason)) => {
                if let Some(m) = pending.take().and_then(|p| finish(p, &conversation)) {
                    out.message(m);
                }
                problem(out, number, reason);
                skipping = true;
            }
            None => match pending.as_mut() {
                Some(p) => {
                    p.text.push('\n');
                    p.text.push_str(line);
                }
                None if !skipping && !line.trim().is_empty() => {
                    problem(
                        out,
                        number,
                        "text before the first `[date] Sender:` line".into(),
                    );
                    skipping = true;
                }
                None => {}
            },
        }
    }
    if let Some(m) = pending.take().and_then(|p| finish(p, &conversation)) {
        out.message(m);
    }
    Ok(())
}

/// Whether the head of a file is a sigexport chat: its first non-blank line
/// opens a message (anywhere in the head when `forced`).
fn head_is_chat(src: &dyn Source, rel: &Path, forced: bool) -> bool {
    let Ok(head) = src.head(rel, 4096) else {
        return false;
    };
    let text = String::from_utf8_lossy(&head);
    let mut lines = text
        .trim_start_matches('\u{feff}')
        .lines()
        .filter(|l| !l.trim().is_empty());
    if forced {
        lines.any(|l| matches!(parse_header(l), Some(Ok(_))))
    } else {
        lines
            .next()
            .is_some_and(|l| matches!(parse_header(l), Some(Ok(_))))
    }
}

impl Importer for Sigexport {
    fn format(&self) -> Format {
        Format::Sigexport
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        pool.iter()
            .filter(|rel| {
                let path = if rel.as_os_str().is_empty() {
                    src.root()
                } else {
                    rel.as_path()
                };
                let ext = path
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                let by_name = ext.as_deref() == Some("md");
                (by_name || forced) && head_is_chat(src, rel, forced)
            })
            .map(|rel| Unit {
                format: Format::Sigexport,
                files: vec![rel.clone()],
                label: rel.clone(),
            })
            .collect()
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        for rel in &unit.files {
            parse_file(src, rel, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, read_with};
    use proptest::prelude::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigexport");
    const CREW: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigexport/chats/ClimbingCrew/chat.md"
    );
    const ALICE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigexport/chats/AliceMoreau/index.md"
    );
    const MINER: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigexport/chat-miner/test_export.md"
    );
    const NOTES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigexport/notes/climbing-notes.md"
    );

    fn read(path: &str, forced: bool) -> (Vec<Unit>, Collect) {
        read_with(&Sigexport, Path::new(path), forced).expect("readable")
    }

    fn local(s: &str) -> When {
        When::Local(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap())
    }

    fn att(kind: &str, name: Option<&str>) -> Attachment {
        Attachment {
            kind: kind.into(),
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn current_format_group_chat() {
        let (units, c) = read(CREW, false);
        assert_eq!(units.len(), 1);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 11);
        assert_eq!(c.people_messages().count(), 9);
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            ["Alice", "Bob", "Me"]
        );
        let m = &c.messages;
        assert!(
            m.iter()
                .all(|m| m.conversation == "ClimbingCrew" && m.group.is_none())
        );

        assert_eq!(m[0].text, "Morning all! Who's in for the crag today?");
        assert_eq!(m[0].at, local("2024-03-02 09:15:04"));
        assert_eq!(
            m[0].author,
            Author {
                name: "Alice".into(),
                handle: None,
                me: None
            }
        );
        assert_eq!(m[0].line, Some(1));

        assert_eq!(
            m[1].text,
            "Me, definitely.\nBringing the 60m rope, quickdraws, and \"the good\" chalk."
        );
        assert_eq!(m[1].author.me, Some(true));
        assert_eq!(m[1].line, Some(3));

        assert_eq!(m[2].text, "Legend 🙌");
        assert_eq!(m[2].line, Some(6));
        let r: Vec<(&str, &str)> = m[2]
            .reactions
            .iter()
            .map(|r| (r.author.as_str(), r.emoji.as_str()))
            .collect();
        assert_eq!(r, [("Alice", "👍"), ("Me", "❤️")]);

        assert_eq!(
            (m[3].text.as_str(), m[3].attachments.clone()),
            ("", vec![att("image", Some("IMG_0042.jpg"))])
        );
        assert_eq!(m[3].kind, MessageKind::Message);
        assert_eq!(m[4].text, "Topo for the north face");
        assert_eq!(
            m[4].attachments,
            [att("document", Some("north face topo.pdf"))]
        );
        assert_eq!(
            (m[5].text.as_str(), m[5].attachments.clone()),
            ("", vec![att("sticker", None)])
        );

        // (This message was deleted) is skipped; then a call and a group event.
        assert_eq!(
            (m[6].kind, m[6].text.as_str()),
            (
                MessageKind::Service,
                "Outgoing voice call (accepted, 2m 5s)"
            )
        );
        assert_eq!(
            (m[7].kind, m[7].author.name.as_str(), m[7].text.as_str()),
            (MessageKind::Service, "No-Sender", "")
        );

        assert_eq!(m[8].text, "@Unknown see you at the car park 🚗");
        assert_eq!(m[9].text, "Summit photo!");
        assert_eq!(m[9].at, local("2024-03-02 18:05:09"));
        assert_eq!(m[9].attachments, [att("image", Some("summit.jpg"))]);
        assert_eq!(m[9].reactions.len(), 2);
        assert_eq!(m[10].text, "Packing list:\n[x] rope\n[ ] snacks, water");
        assert_eq!(m[10].line, Some(32));
    }

    #[test]
    fn older_minute_formats() {
        let (_, c) = read(ALICE, false);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 4);
        assert!(
            c.messages
                .iter()
                .all(|m| m.conversation == "AliceMoreau" && m.kind == MessageKind::Message)
        );
        assert_eq!(c.messages[0].at, local("2021-05-01 10:00:00"));
        assert_eq!(c.messages[1].text, "You too! Look:");
        assert_eq!(
            c.messages[1].attachments,
            [att("image", Some("flowers.jpg"))]
        );
        assert_eq!(c.messages[2].text, "Thanks for yesterday,\nit was lovely");
        assert_eq!(
            c.messages[3].attachments,
            [att("audio", Some("voice note.m4a"))]
        );

        let (units, c) = read(MINER, false);
        assert_eq!(units.len(), 1);
        assert_eq!(c.messages.len(), 2);
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            ["Jane Doe", "John Doe"]
        );
        assert_eq!(c.messages[0].text, "Hello John!");
        assert_eq!(c.messages[0].at, local("2019-12-24 12:23:00"));
        assert_eq!(c.messages[1].text, "Hello\nJane!");
        assert_eq!(c.messages[1].at, local("2020-01-17 21:49:00"));
        assert_eq!(c.messages[1].conversation, "test_export");
    }

    #[test]
    fn claims_only_chat_files() {
        let (units, c) = read(FIXTURES, false);
        let labels: Vec<PathBuf> = units.iter().map(|u| u.label.clone()).collect();
        assert_eq!(
            labels,
            [
                PathBuf::from("chat-miner/test_export.md"),
                PathBuf::from("chats/AliceMoreau/index.md"),
                PathBuf::from("chats/ClimbingCrew/chat.md")
            ]
        );
        assert_eq!(c.messages.len(), 17);
        // The note starts like Markdown: not claimed unless forced.
        assert!(read(NOTES, false).0.is_empty());
        let (units, c) = read(NOTES, true);
        assert_eq!(units.len(), 1);
        assert_eq!(c.messages.len(), 1);
        assert_eq!(
            c.problems.len(),
            1,
            "the title before the first message is reported"
        );
    }

    #[test]
    fn headers_are_recognised() {
        let h = parse_header("[2024-03-02 09:15:04] Alice: hi: there")
            .unwrap()
            .unwrap();
        assert_eq!((h.sender, h.rest), ("Alice", "hi: there"));
        let h = parse_header("[2019-12-24, 12:23] Jane Doe:")
            .unwrap()
            .unwrap();
        assert_eq!((h.sender, h.rest), ("Jane Doe", ""));
        assert!(parse_header("[x] rope").is_none());
        assert!(parse_header("[2024-03-02 09:15:04] no colon here").is_none());
        assert!(parse_header("[2024-3-2 9:15] A: b").is_none());
        assert!(parse_header("[2024-02-30 09:15:04] A: b").unwrap().is_err());
        assert!(parse_header("[2024-02-01 25:15] A: b").unwrap().is_err());
        assert!(parse_header("[é").is_none());
    }

    #[test]
    fn bad_lines_are_problems_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.md");
        let text = b"stray preface\nmore preface\n[2024-01-01 10:00:00] Bob: ok\n[2024-02-30 10:00:00] Bob: bad day\nstill bad\n[2024-01-02 10:00:00] Me: fine\xff\xfe\n[2024-01-02 10:01:00] Me: cut off at the en";
        std::fs::write(&path, text).unwrap();
        let src = crate::ingest::open_source(&path).unwrap();
        let unit = Unit {
            format: Format::Sigexport,
            files: vec![PathBuf::new()],
            label: PathBuf::new(),
        };
        let mut c = Collect::default();
        Sigexport.parse(src.as_ref(), &unit, &mut c).unwrap();
        let texts: Vec<&str> = c.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["ok", "fine\u{FFFD}\u{FFFD}", "cut off at the en"]);
        let problems: Vec<(Option<u64>, &Path)> = c
            .problems
            .iter()
            .map(|p| (p.line, p.file.as_path()))
            .collect();
        assert_eq!(
            problems,
            [(Some(1), path.as_path()), (Some(4), path.as_path())]
        );
        assert!(c.problems[1].reason.contains("2024-02-30"));
        assert_eq!(
            c.messages[0].conversation,
            dir.path().file_name().unwrap().to_string_lossy()
        );
    }

    #[test]
    fn tails_are_taken_apart() {
        assert_eq!(reactions_line("(- -)"), None);
        assert_eq!(
            reactions_line("(- A: x -)").unwrap(),
            [Reaction {
                author: "A".into(),
                emoji: "x".into()
            }]
        );
        assert!(
            is_call("Missed video call")
                && is_call("Outgoing call")
                && !is_call("Incoming calls are annoying")
        );
        assert_eq!(drop_quote("\n\n> a\n> b\n\nbody"), "body");
        assert_eq!(drop_quote("text\n> not a quote"), "text\n> not a quote");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("chat.md");
            let mut data = b"[2024-01-01 10:00:00] A: x\n".to_vec();
            data.extend_from_slice(&bytes);
            std::fs::write(&path, &data).unwrap();
            let _ = read_with(&Sigexport, &path, true);
            std::fs::write(&path, &bytes).unwrap();
            let _ = read_with(&Sigexport, &path, true);
        }

        #[test]
        fn mutated_fixture_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..32)) {
            let mut bytes = std::fs::read(CREW).unwrap();
            for &(at, b) in &edits {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("chat.md");
            std::fs::write(&path, &bytes).unwrap();
            let _ = read_with(&Sigexport, &path, false);
        }

        #[test]
        fn header_parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_header(&s);
            let _ = parse_header(&format!("[2024-01-01 {s}"));
            let _ = parse_header(&format!("[2024-01-01 12:{s}"));
            let _ = time_shaped(&s);
            let _ = date_shaped(&s);
        }
    }
}
