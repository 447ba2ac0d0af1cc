//! DiscordChatExporter JSON exports (one file per channel, DM or thread).
//!
//! Format, from the writer itself (Tyrrrz/DiscordChatExporter,
//! `DiscordChatExporter.Core/Exporting/JsonMessageWriter.cs`, with the message and
//! channel kinds of `Discord/Data/MessageKind.cs` and `ChannelKind.cs`):
//!
//! ```text
//! { "guild":   {"id", "name", "iconUrl"},            // id "0", "Direct Messages" for DMs
//!   "channel": {"id", "type": "GuildTextChat" | "DirectTextChat" | "DirectGroupTextChat" | ...,
//!               "categoryId", "category", "name", "topic"},
//!   "dateRange": {...}, "exportedAt": "...",
//!   "messages": [
//!     { "id", "type": "Default" | "Reply" | "ChannelPinnedMessage" | "GuildMemberJoin" | "Call" | ...,
//!       "timestamp": "2024-03-01T09:05:10.5+01:00", "timestampEdited", "callEndedTimestamp",
//!       "isPinned", "content",
//!       "author": {"id", "name", "discriminator", "nickname", "color", "isBot", "roles", "avatarUrl"},
//!       "attachments": [{"id", "url", "fileName", "fileSizeBytes"}], "components", "embeds",
//!       "stickers": [{"id", "name", "format", "sourceUrl"}],
//!       "reactions": [{"emoji": {"id", "name", ...}, "count", "users": [author...]}],
//!       "mentions": [author...], "reference": {"type", "messageId", "channelId", "guildId"},
//!       "forwardedMessage"?, "interaction"?, "inlineEmojis" } ],
//!   "messageCount": N }
//! ```
//!
//! Surprises:
//! - System messages (joins, pins, calls, renames) carry generated English text
//!   ("Pinned a message.") and are Service lines; the author is who did it.
//! - `content` is Markdown already rendered to plain text (mentions as `@Name`),
//!   unless the export was made with `--markdown false`: then raw `<@id>`, `<@!id>`,
//!   `<:emoji:id>` tokens remain and are resolved here through `mentions`.
//! - A channel file can hold millions of messages. It is read into memory once and
//!   each message is deserialized from its own byte span (see [`jsonscan`]), so one
//!   bad record is a Problem with its line, and nothing else is held per message.
//!
//! This file also hosts [`jsonscan`], the JSON helpers the Slack and
//! Messenger/Instagram importers share (the contract gives no shared module).

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use self::jsonscan::{Cursor, Lines, Num, Str, nullable};
use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Reaction,
    Sink, Source, Unit, When,
};

/// Reads DiscordChatExporter `.json` channel exports.
pub struct Discord;

/// Reactions with a count but no user list become this many anonymous entries at most.
const MAX_ANONYMOUS_REACTIONS: i64 = 100;

impl Importer for Discord {
    fn format(&self) -> Format {
        Format::Discord
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        pool.iter()
            .filter(|rel| {
                jsonscan::has_json_ext(&jsonscan::file_name(src, rel))
                    || (forced && rel.as_os_str().is_empty())
            })
            .filter(|rel| {
                src.head(rel, jsonscan::HEAD)
                    .is_ok_and(|head| looks_like_export(&head, forced))
            })
            .map(|rel| Unit {
                format: Format::Discord,
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

/// DiscordChatExporter writes `guild` then `channel` first, so both show in the head.
fn looks_like_export(head: &[u8], forced: bool) -> bool {
    let head = jsonscan::trim_start(head);
    head.first() == Some(&b'{')
        && (forced
            || (jsonscan::contains(head, b"\"guild\"") && jsonscan::contains(head, b"\"channel\"")))
}

fn parse_file(src: &dyn Source, rel: &Path, out: &mut dyn Sink) -> Result<(), ImportError> {
    let bytes = jsonscan::read_bytes(src, rel)?;
    let file = src.display(rel);
    let mut lines = Lines::new(&bytes);
    let mut guild = Meta::default();
    let mut channel = Meta::default();
    let mut ctx: Option<Context> = None;
    let mut seen_messages = false;

    let mut cur = Cursor::new(&bytes);
    let scanned = cur.object(|cur, key| match key.as_ref() {
        "guild" => {
            guild = jsonscan::parse_lenient(&bytes, cur.value()?);
            Ok(())
        }
        "channel" => {
            channel = jsonscan::parse_lenient(&bytes, cur.value()?);
            Ok(())
        }
        "messages" => {
            seen_messages = true;
            let ctx = ctx.get_or_insert_with(|| Context::new(&guild, &channel, rel));
            cur.array(|span| read_message(&bytes, span, ctx, &file, &mut lines, out))
        }
        _ => cur.value().map(drop),
    });
    if let Err(e) = scanned {
        let line = lines.line_at(e.offset);
        if !seen_messages {
            return Err(ImportError::unreadable(
                &file,
                format!("line {line}: {}", e.reason),
            ));
        }
        out.problem(Problem {
            file: file.clone(),
            line: Some(line),
            reason: e.reason.to_string(),
        });
    }
    if !seen_messages {
        return Err(ImportError::unreadable(
            &file,
            "no \"messages\" list: not a DiscordChatExporter JSON export",
        ));
    }
    Ok(())
}

/// Deserialize one message from its byte span and send it on, or report why not.
fn read_message(
    bytes: &[u8],
    span: Range<usize>,
    ctx: &Context,
    file: &Path,
    lines: &mut Lines,
    out: &mut dyn Sink,
) {
    let line = lines.line_at(span.start);
    match serde_json::from_slice::<Message>(&bytes[span]) {
        Ok(m) => match to_raw(m, ctx) {
            Ok(mut raw) => {
                raw.line = Some(line);
                out.message(raw);
            }
            Err(reason) => out.problem(Problem {
                file: file.to_path_buf(),
                line: Some(line),
                reason,
            }),
        },
        Err(e) => out.problem(Problem {
            file: file.to_path_buf(),
            line: Some(line + (e.line() as u64).saturating_sub(1)),
            reason: format!("message skipped: {}", jsonscan::json_reason(&e)),
        }),
    }
}

/// `guild` and `channel` objects.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Message<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    timestamp: Str<'a>,
    #[serde(borrow)]
    timestamp_edited: Str<'a>,
    #[serde(borrow)]
    content: Str<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    author: User<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    attachments: Vec<FileRef<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    embeds: Vec<Embed<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    stickers: Vec<Sticker<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    reactions: Vec<ReactionJson<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    mentions: Vec<User<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    reference: Reference<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    forwarded_message: Forwarded<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    nickname: Str<'a>,
}

impl User<'_> {
    /// The name people see: the server nickname, else the user name, else the id.
    fn display(&self) -> &str {
        [&self.nickname, &self.name, &self.id]
            .into_iter()
            .map(Str::as_str)
            .find(|s| !s.is_empty())
            .unwrap_or("")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct FileRef<'a> {
    #[serde(borrow)]
    file_name: Str<'a>,
    #[serde(borrow)]
    url: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Embed<'a> {
    #[serde(borrow)]
    title: Str<'a>,
    #[serde(borrow)]
    description: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Sticker<'a> {
    #[serde(borrow)]
    name: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReactionJson<'a> {
    #[serde(borrow, deserialize_with = "nullable")]
    emoji: Emoji<'a>,
    count: Num,
    #[serde(borrow, deserialize_with = "nullable")]
    users: Vec<User<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Emoji<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Reference<'a> {
    #[serde(borrow)]
    message_id: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Forwarded<'a> {
    #[serde(borrow)]
    content: Str<'a>,
}

/// What every message of one file shares.
#[derive(Debug, Default)]
struct Context {
    conversation: String,
    title: Option<String>,
    group: Option<bool>,
    channel_id: String,
    channel_name: String,
}

impl Context {
    fn new(guild: &Meta, channel: &Meta, rel: &Path) -> Context {
        let channel_name = channel.name.as_str().to_string();
        let direct = guild.id.as_str() == "0" || channel.kind.as_str().starts_with("Direct");
        let title = if direct || guild.name.is_empty() {
            channel_name.clone()
        } else if channel_name.is_empty() {
            guild.name.as_str().to_string()
        } else {
            format!("{} / {}", guild.name.as_str(), channel_name)
        };
        let group = match channel.kind.as_str() {
            "DirectTextChat" => Some(false),
            "" if guild.id.is_empty() => None,
            _ => Some(true),
        };
        let conversation = if channel.id.is_empty() {
            rel.to_string_lossy().into_owned()
        } else {
            channel.id.as_str().to_string()
        };
        Context {
            conversation,
            title: (!title.is_empty()).then_some(title),
            group,
            channel_id: channel.id.as_str().to_string(),
            channel_name,
        }
    }
}

fn to_raw(m: Message<'_>, ctx: &Context) -> Result<RawMessage, String> {
    let at = parse_time(m.timestamp.as_str()).ok_or_else(|| {
        format!(
            "message {} skipped: unreadable timestamp `{}`",
            m.id.as_str(),
            m.timestamp.as_str()
        )
    })?;
    let kind = if is_system(m.kind.as_str()) {
        MessageKind::Service
    } else {
        MessageKind::Message
    };
    let name = m.author.display();
    let author = Author {
        name: if name.is_empty() {
            "Unknown".to_string()
        } else {
            name.to_string()
        },
        handle: (!m.author.id.is_empty()).then(|| m.author.id.as_str().to_string()),
        me: None,
    };
    let mut raw = RawMessage::new(ctx.conversation.clone(), author, at, body(&m, ctx));
    raw.conversation_title = ctx.title.clone();
    raw.group = ctx.group;
    raw.kind = kind;
    raw.attachments = attachments(&m);
    raw.id = (!m.id.is_empty()).then(|| m.id.as_str().to_string());
    if kind == MessageKind::Message && !m.reference.message_id.is_empty() {
        raw.reply_to = Some(m.reference.message_id.as_str().to_string());
    }
    raw.reactions = reactions(&m.reactions);
    raw.edited = !m.timestamp_edited.is_empty();
    Ok(raw)
}

/// Offsets give UTC; a timestamp without one (very old exports) is wall-clock time.
fn parse_time(s: &str) -> Option<When> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(When::Utc(t.with_timezone(&Utc)));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(When::Local)
}

/// DiscordChatExporter's system notifications are message kinds 1..=18 and the
/// newer non-user kinds; unknown kinds are written as their number.
fn is_system(kind: &str) -> bool {
    match kind {
        ""
        | "Default"
        | "Reply"
        | "ChatInputCommand"
        | "ContextMenuCommand"
        | "ThreadStarterMessage" => false,
        other => match other.parse::<u32>() {
            Ok(n) => !matches!(n, 0 | 19 | 20 | 21 | 23),
            Err(_) => true,
        },
    }
}

/// The text: content with raw tokens resolved, else a forwarded message's
/// content, else the embeds' titles and descriptions (bot posts).
fn body(m: &Message<'_>, ctx: &Context) -> String {
    let text = render_content(m.content.as_str(), &m.mentions, ctx);
    if !text.is_empty() {
        return text.into_owned();
    }
    if !m.forwarded_message.content.is_empty() {
        return render_content(m.forwarded_message.content.as_str(), &m.mentions, ctx).into_owned();
    }
    let parts = m
        .embeds
        .iter()
        .flat_map(|e| [e.title.as_str(), e.description.as_str()])
        .filter(|s| !s.is_empty());
    parts.collect::<Vec<_>>().join("\n")
}

/// Resolve `<@id>`, `<@!id>`, `<#id>` and `<:name:id>` tokens; leave anything else.
fn render_content<'c>(content: &'c str, mentions: &[User<'_>], ctx: &Context) -> Cow<'c, str> {
    if !content.contains('<') {
        return Cow::Borrowed(content);
    }
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        // Tokens are short; never look far for the closing `>`.
        let close = after.bytes().take(96).position(|b| b == b'>');
        match close.and_then(|j| render_token(&after[..j], mentions, ctx).map(|t| (j, t))) {
            Some((j, token)) => {
                out.push_str(&token);
                rest = &after[j + 1..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn render_token(token: &str, mentions: &[User<'_>], ctx: &Context) -> Option<String> {
    let is_id = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(id) = token.strip_prefix("@!").or_else(|| token.strip_prefix('@')) {
        let user = mentions.iter().find(|u| u.id.as_str() == id && is_id(id))?;
        return Some(format!("@{}", user.display()));
    }
    if let Some(id) = token.strip_prefix('#') {
        return (is_id(id) && id == ctx.channel_id && !ctx.channel_name.is_empty())
            .then(|| format!("#{}", ctx.channel_name));
    }
    let emoji = token
        .strip_prefix("a:")
        .or_else(|| token.strip_prefix(':'))?;
    let (name, id) = emoji.split_once(':')?;
    (!name.is_empty() && is_id(id)).then(|| format!(":{name}:"))
}

fn attachments(m: &Message<'_>) -> Vec<Attachment> {
    let files = m.attachments.iter().map(|a| {
        let name = if a.file_name.is_empty() {
            jsonscan::last_segment(a.url.as_str())
        } else {
            a.file_name.as_str()
        };
        Attachment {
            kind: jsonscan::kind_from_name(name).to_string(),
            name: (!name.is_empty()).then(|| name.to_string()),
        }
    });
    let stickers = m.stickers.iter().map(|s| Attachment {
        kind: "sticker".to_string(),
        name: (!s.name.is_empty()).then(|| s.name.as_str().to_string()),
    });
    files.chain(stickers).collect()
}

/// One reaction per reacting user; exports made without reaction users give
/// anonymous entries (empty author), as many as the count says.
fn reactions(list: &[ReactionJson<'_>]) -> Vec<Reaction> {
    let mut out = Vec::new();
    for r in list {
        let emoji = if r.emoji.id.is_empty() {
            r.emoji.name.as_str().to_string()
        } else {
            format!(":{}:", r.emoji.name.as_str())
        };
        if r.users.is_empty() {
            let n = r.count.0.unwrap_or(1).clamp(1, MAX_ANONYMOUS_REACTIONS);
            out.extend((0..n).map(|_| Reaction {
                author: String::new(),
                emoji: emoji.clone(),
            }));
        } else {
            out.extend(r.users.iter().map(|u| Reaction {
                author: u.display().to_string(),
                emoji: emoji.clone(),
            }));
        }
    }
    out
}

/// JSON helpers shared by the Discord, Slack and Messenger/Instagram importers.
///
/// [`Cursor`] walks the structure of a JSON document held in memory without
/// building it: it finds the byte span of each value (strings and nesting are
/// tracked, grammar inside a value is left to serde). Each record is then
/// deserialized from its own span with borrowed strings ([`Str`]), so a bad record
/// costs one Problem and the rest of the file still reads, and a truncated file
/// still yields every record before the cut.
pub(crate) mod jsonscan {
    use std::borrow::Cow;
    use std::fmt;
    use std::marker::PhantomData;
    use std::ops::Range;
    use std::path::Path;

    use serde::de::{self, Deserialize, Deserializer, Visitor};

    use crate::ingest::source::FileBytes;
    use crate::ingest::{ImportError, Source};

    /// How much of a file `claim` peeks at.
    pub(crate) const HEAD: usize = 4096;

    /// Where and why a document stopped making sense.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct ScanError {
        pub offset: usize,
        pub reason: &'static str,
    }

    const TRUNCATED: &str = "the file ends in the middle of the JSON (truncated?)";

    /// A position in a JSON document.
    pub(crate) struct Cursor<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl<'a> Cursor<'a> {
        /// Start at the beginning, after a UTF-8 byte-order mark if there is one.
        pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
            let pos = if bytes.starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            };
            Cursor { bytes, pos }
        }

        fn skip_ws(&mut self) {
            while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
        }

        fn eat(&mut self, b: u8) -> bool {
            let hit = self.bytes.get(self.pos) == Some(&b);
            if hit {
                self.pos += 1;
            }
            hit
        }

        fn error(&self, reason: &'static str) -> ScanError {
            let reason = if self.pos >= self.bytes.len() {
                TRUNCATED
            } else {
                reason
            };
            ScanError {
                offset: self.pos.min(self.bytes.len()),
                reason,
            }
        }

        fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), ScanError> {
            if self.eat(b) {
                Ok(())
            } else {
                Err(self.error(reason))
            }
        }

        /// The offset just past the string that starts (with `"`) at `start`.
        fn string_end(&self, start: usize) -> Result<usize, ScanError> {
            let mut i = start + 1;
            while let Some(at) =
                find_byte(self.bytes, i, |x| has_byte(x, b'"') | has_byte(x, b'\\'))
            {
                if self.bytes[at] == b'"' {
                    return Ok(at + 1);
                }
                i = at + 2; // an escape: skip the backslash and the escaped byte
            }
            Err(ScanError {
                offset: self.bytes.len(),
                reason: TRUNCATED,
            })
        }

        /// Skip one value and return its byte span.
        pub(crate) fn value(&mut self) -> Result<Range<usize>, ScanError> {
            self.skip_ws();
            let start = self.pos;
            match self.bytes.get(start) {
                None => Err(self.error(TRUNCATED)),
                Some(b'"') => {
                    self.pos = self.string_end(start)?;
                    Ok(start..self.pos)
                }
                Some(b'{' | b'[') => {
                    let mut depth = 0usize;
                    let mut i = start;
                    while let Some(at) = find_byte(self.bytes, i, structural) {
                        i = at;
                        match self.bytes[i] {
                            b'"' => {
                                i = self.string_end(i)?;
                                continue;
                            }
                            b'{' | b'[' => depth += 1,
                            b'}' | b']' => {
                                depth -= 1;
                                if depth == 0 {
                                    self.pos = i + 1;
                                    return Ok(start..self.pos);
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    self.pos = self.bytes.len();
                    Err(self.error(TRUNCATED))
                }
                Some(b',' | b']' | b'}' | b':') => Err(self.error("a value is missing")),
                Some(_) => {
                    let len = self.bytes[start..]
                        .iter()
                        .position(|b| {
                            matches!(b, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
                        })
                        .unwrap_or(self.bytes.len() - start);
                    self.pos = start + len;
                    Ok(start..self.pos)
                }
            }
        }

        /// An object key (the cursor is on its opening quote).
        fn key(&mut self) -> Result<Cow<'a, str>, ScanError> {
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a quoted key in an object"));
            }
            let start = self.pos;
            let end = self.string_end(start)?;
            self.pos = end;
            let bytes: &'a [u8] = self.bytes;
            let inner = &bytes[start + 1..end - 1];
            if inner.contains(&b'\\') {
                return Ok(Cow::Owned(
                    serde_json::from_slice::<String>(&bytes[start..end]).unwrap_or_default(),
                ));
            }
            Ok(String::from_utf8_lossy(inner))
        }

        /// Walk an object: `on_member` gets each key with the cursor on its value,
        /// and must consume that value (with [`Cursor::value`] or [`Cursor::array`]).
        pub(crate) fn object(
            &mut self,
            mut on_member: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), ScanError>,
        ) -> Result<(), ScanError> {
            self.skip_ws();
            self.expect(b'{', "expected a JSON object")?;
            self.skip_ws();
            if self.eat(b'}') {
                return Ok(());
            }
            loop {
                self.skip_ws();
                let key = self.key()?;
                self.skip_ws();
                self.expect(b':', "expected `:` after an object key")?;
                self.skip_ws();
                on_member(self, key)?;
                self.skip_ws();
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b'}') {
                    return Ok(());
                }
                return Err(self.error("expected `,` or `}` after an object member"));
            }
        }

        /// Walk an array, giving the byte span of each item.
        pub(crate) fn array(
            &mut self,
            mut on_item: impl FnMut(Range<usize>),
        ) -> Result<(), ScanError> {
            self.skip_ws();
            self.expect(b'[', "expected a JSON array")?;
            loop {
                self.skip_ws();
                if self.eat(b']') {
                    return Ok(());
                }
                on_item(self.value()?);
                self.skip_ws();
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b']') {
                    return Ok(());
                }
                return Err(self.error("expected `,` or `]` between array items"));
            }
        }
    }

    // Byte search eight bytes at a time ("SWAR"): `has_byte` sets the high bit of
    // every lane of `x` equal to `b`. Lanes above a true match may be flagged
    // falsely, so only the lowest flag is trusted.
    const LANES_1: u64 = 0x0101_0101_0101_0101;
    const LANES_80: u64 = 0x8080_8080_8080_8080;

    fn has_byte(x: u64, b: u8) -> u64 {
        let y = x ^ (LANES_1 * u64::from(b));
        y.wrapping_sub(LANES_1) & !y & LANES_80
    }

    /// Lanes holding `"`, `{`, `}`, `[` or `]` (`[`/`]` become `{`/`}` with bit 5 set).
    fn structural(x: u64) -> u64 {
        let folded = x | (LANES_1 * 0x20);
        has_byte(x, b'"') | has_byte(folded, b'{') | has_byte(folded, b'}')
    }

    /// The first offset at or after `from` whose byte `lanes` flags.
    fn find_byte(bytes: &[u8], from: usize, lanes: impl Fn(u64) -> u64) -> Option<usize> {
        let mut i = from;
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let hits = lanes(u64::from_le_bytes(word));
            if hits != 0 {
                return Some(i + (hits.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        let tail = bytes.get(i..)?;
        tail.iter()
            .position(|&b| {
                let mut word = [0u8; 8];
                word[0] = b;
                lanes(u64::from_le_bytes(word)) & 0x80 != 0
            })
            .map(|p| i + p)
    }

    /// Turns byte offsets into 1-based line numbers, cheaply for rising offsets.
    pub(crate) struct Lines<'a> {
        bytes: &'a [u8],
        offset: usize,
        line: u64,
    }

    impl<'a> Lines<'a> {
        pub(crate) fn new(bytes: &'a [u8]) -> Lines<'a> {
            Lines {
                bytes,
                offset: 0,
                line: 1,
            }
        }

        pub(crate) fn line_at(&mut self, offset: usize) -> u64 {
            let offset = offset.min(self.bytes.len());
            if offset < self.offset {
                self.offset = 0;
                self.line = 1;
            }
            self.line += self.bytes[self.offset..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.offset = offset;
            self.line
        }
    }

    /// A string field that borrows from the input when it can, and takes `null`,
    /// numbers and booleans as text rather than failing the record.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub(crate) struct Str<'a>(pub Cow<'a, str>);

    impl Str<'_> {
        pub(crate) fn as_str(&self) -> &str {
            &self.0
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrVisitor(PhantomData))
        }
    }

    struct StrVisitor<'a>(PhantomData<&'a ()>);

    impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
        type Value = Str<'a>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
            Ok(Str(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
            Ok(Str(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'a>, E> {
            Ok(Str(Cow::Owned(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Str<'a>, E> {
            Ok(Str::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Str<'a>, E> {
            Ok(Str::default())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str<'a>, E> {
            Ok(Str(Cow::Owned(v.to_string())))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str<'a>, E> {
            Ok(Str(Cow::Owned(v.to_string())))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Str<'a>, E> {
            Ok(Str(Cow::Owned(v.to_string())))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Str<'a>, E> {
            Ok(Str(Cow::Borrowed(if v { "true" } else { "false" })))
        }
    }

    /// A number field that also takes numeric strings; `null` or garbage text is None.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub(crate) struct Num(pub Option<i64>);

    impl<'de> Deserialize<'de> for Num {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(NumVisitor)
        }
    }

    struct NumVisitor;

    impl<'de> Visitor<'de> for NumVisitor {
        type Value = Num;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
            Ok(Num(Some(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
            Ok(Num(i64::try_from(v).ok()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
            Ok(Num((v.is_finite() && v.abs() < 9.0e18).then_some(v as i64)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
            let v = v.trim();
            let n = v.parse::<i64>().ok().or_else(|| {
                v.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            });
            Ok(Num(n))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
            Ok(Num(None))
        }
        fn visit_none<E: de::Error>(self) -> Result<Num, E> {
            Ok(Num(None))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Num, E> {
            Ok(Num(None))
        }
    }

    /// For `deserialize_with`: `null` reads as the default value.
    pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// Deserialize a span, falling back to the default when it does not fit
    /// (for metadata objects, whose absence only costs titles).
    pub(crate) fn parse_lenient<'a, T: Deserialize<'a> + Default>(
        bytes: &'a [u8],
        span: Range<usize>,
    ) -> T {
        serde_json::from_slice(&bytes[span]).unwrap_or_default()
    }

    /// serde_json's message without its " at line L column C" (which counts from
    /// the record, not the file).
    pub(crate) fn json_reason(e: &serde_json::Error) -> String {
        let s = e.to_string();
        match s.rfind(" at line ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }

    /// A whole file, for formats read whole.
    pub(crate) fn read_bytes(src: &dyn Source, rel: &Path) -> Result<FileBytes, ImportError> {
        src.bytes(rel)
            .map_err(|e| ImportError::io(&src.display(rel), e))
    }

    /// The file name of `rel`, or of the root when the source is a single file.
    pub(crate) fn file_name<'p>(src: &'p dyn Source, rel: &'p Path) -> Cow<'p, str> {
        let path = if rel.as_os_str().is_empty() {
            src.root()
        } else {
            rel
        };
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    }

    pub(crate) fn has_json_ext(name: &str) -> bool {
        let b = name.as_bytes();
        b.len() > 5 && b[b.len() - 5..].eq_ignore_ascii_case(b".json")
    }

    /// Skip a byte-order mark and whitespace.
    pub(crate) fn trim_start(head: &[u8]) -> &[u8] {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let n = head.iter().take_while(|b| b.is_ascii_whitespace()).count();
        &head[n..]
    }

    pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
        !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
    }

    /// The last `/`-separated segment of a path or URL, without a query string.
    pub(crate) fn last_segment(s: &str) -> &str {
        let s = s.split(['?', '#']).next().unwrap_or(s);
        s.rsplit(['/', '\\']).next().unwrap_or(s)
    }

    /// An attachment kind from a file name's extension.
    pub(crate) fn kind_from_name(name: &str) -> &'static str {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "gif" => "gif",
            "jpg" | "jpeg" | "png" | "webp" | "heic" | "heif" | "bmp" | "tif" | "tiff" | "avif" => {
                "image"
            }
            "mp4" | "mov" | "webm" | "mkv" | "avi" | "m4v" | "3gp" => "video",
            "mp3" | "ogg" | "oga" | "opus" | "wav" | "m4a" | "aac" | "flac" | "amr" => "audio",
            "pdf" | "doc" | "docx" | "odt" | "txt" | "rtf" | "xls" | "xlsx" | "ods" | "ppt"
            | "pptx" | "odp" | "csv" | "md" => "document",
            _ => "file",
        }
    }

    /// An in-memory [`Source`] for tests.
    #[cfg(test)]
    pub(crate) struct MemSource {
        pub root: std::path::PathBuf,
        pub files: Vec<std::path::PathBuf>,
        pub data: Vec<Vec<u8>>,
    }

    #[cfg(test)]
    impl MemSource {
        /// Files given as (relative path, bytes); sorted like a real source.
        pub(crate) fn new(root: &str, mut entries: Vec<(&str, Vec<u8>)>) -> MemSource {
            entries.sort_by(|a, b| a.0.cmp(b.0));
            MemSource {
                root: std::path::PathBuf::from(root),
                files: entries
                    .iter()
                    .map(|(p, _)| std::path::PathBuf::from(p))
                    .collect(),
                data: entries.into_iter().map(|(_, d)| d).collect(),
            }
        }

        /// Claim and parse with one importer, like `ingest::read_with`.
        pub(crate) fn read(
            &self,
            importer: &dyn crate::ingest::Importer,
            forced: bool,
        ) -> (
            Vec<crate::ingest::Unit>,
            crate::ingest::Collect,
            Vec<String>,
        ) {
            let units = importer.claim(self, &self.files, forced);
            let mut out = crate::ingest::Collect::default();
            let mut errors = Vec::new();
            for unit in &units {
                if let Err(e) = importer.parse(self, unit, &mut out) {
                    errors.push(e.to_string());
                }
            }
            (units, out, errors)
        }
    }

    #[cfg(test)]
    impl Source for MemSource {
        fn root(&self) -> &Path {
            &self.root
        }
        fn files(&self) -> &[std::path::PathBuf] {
            &self.files
        }
        fn open(&self, rel: &Path) -> std::io::Result<Box<dyn std::io::Read + '_>> {
            let i = self
                .files
                .iter()
                .position(|f| f == rel)
                .ok_or(std::io::ErrorKind::NotFound)?;
            Ok(Box::new(&self.data[i][..]))
        }
        fn size(&self, rel: &Path) -> Option<u64> {
            let i = self.files.iter().position(|f| f == rel)?;
            Some(self.data[i].len() as u64)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn spans(doc: &str) -> (Vec<String>, Option<ScanError>) {
            let mut items = Vec::new();
            let mut cur = Cursor::new(doc.as_bytes());
            let r = cur.object(|cur, key| {
                if key == "messages" {
                    cur.array(|s| items.push(doc[s].to_string()))
                } else {
                    cur.value().map(drop)
                }
            });
            (items, r.err())
        }

        #[test]
        fn items_are_split_at_depth_one_even_with_tricky_strings() {
            let doc = "\u{feff}{\"a\": {\"x\": \"}]\\\"\"}, \"messages\" : [ {\"t\": \"[{\"}, 12, \"s\", [1, [2]] , null ] }";
            let (items, err) = spans(doc);
            assert_eq!(err, None);
            assert_eq!(
                items,
                vec!["{\"t\": \"[{\"}", "12", "\"s\"", "[1, [2]]", "null"]
            );
        }

        #[test]
        fn the_word_at_a_time_search_finds_every_alignment() {
            for pad in 0..24 {
                let filler = "é".repeat(pad / 2) + &"a".repeat(pad % 2);
                let item = format!("{{\"k\": \"{filler}\\\"}}{filler}\", \"n\": [{filler:?}]}}");
                let doc = format!("{{\"messages\": [{item}, {item}]}}");
                let (items, err) = spans(&doc);
                assert_eq!(err, None, "{doc}");
                assert_eq!(items, vec![item.clone(), item.clone()]);
            }
            let bytes = b"0123456789abcdef\"";
            assert_eq!(find_byte(bytes, 0, |x| has_byte(x, b'"')), Some(16));
            assert_eq!(find_byte(bytes, 17, |x| has_byte(x, b'"')), None);
            assert_eq!(find_byte(b"ab]", 0, structural), Some(2));
        }

        #[test]
        fn a_truncated_array_keeps_the_items_before_the_cut() {
            let (items, err) = spans("{\"messages\": [{\"a\": 1}, {\"b\": 2}, {\"c\": ");
            assert_eq!(items, vec!["{\"a\": 1}", "{\"b\": 2}"]);
            assert_eq!(err.map(|e| e.reason), Some(TRUNCATED));
        }

        #[test]
        fn escaped_keys_are_decoded() {
            let (items, _) = spans("{\"mess\\u0061ges\": [1]}");
            assert_eq!(items, vec!["1"]);
        }

        #[test]
        fn lines_count_from_one() {
            let text = b"a\nb\nc";
            let mut lines = Lines::new(text);
            assert_eq!(lines.line_at(0), 1);
            assert_eq!(lines.line_at(4), 3);
            assert_eq!(lines.line_at(2), 2);
            assert_eq!(lines.line_at(99), 3);
        }

        #[test]
        fn lenient_fields_take_null_numbers_and_escapes() {
            #[derive(serde::Deserialize, Default)]
            #[serde(default)]
            struct T<'a> {
                #[serde(borrow)]
                a: Str<'a>,
                #[serde(borrow)]
                b: Str<'a>,
                #[serde(borrow)]
                c: Str<'a>,
                n: Num,
                m: Num,
            }
            let t: T = serde_json::from_str(
                r#"{"a": null, "b": 42, "c": "x\ny", "n": "1452837318", "m": 1.5e3}"#,
            )
            .unwrap();
            assert_eq!(
                (t.a.as_str(), t.b.as_str(), t.c.as_str()),
                ("", "42", "x\ny")
            );
            assert_eq!((t.n, t.m), (Num(Some(1452837318)), Num(Some(1500))));
        }

        #[test]
        fn kinds_come_from_extensions() {
            assert_eq!(kind_from_name("a.JPG"), "image");
            assert_eq!(kind_from_name("clip.mp4"), "video");
            assert_eq!(kind_from_name("notes.pdf"), "document");
            assert_eq!(kind_from_name("noext"), "file");
            assert_eq!(last_segment("https://x/y/z.png?size=2"), "z.png");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::jsonscan::MemSource;
    use super::*;
    use crate::ingest::{Collect, read_with};
    use chrono::TimeZone;
    use proptest::prelude::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/discord");
    const GUILD: &str = "Rustaceans - Text Channels - general [1010000000000000001].json";
    const DM: &str = "Direct Messages - Private - bob_b [1020000000000000001].json";

    fn read(path: &str, forced: bool) -> (Vec<Unit>, Collect) {
        read_with(&Discord, Path::new(path), forced).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> When {
        When::Utc(
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
                + chrono::Duration::milliseconds(ms as i64),
        )
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}/{name}")).unwrap()
    }

    #[test]
    fn the_fixture_folder_gives_one_unit_per_channel_file() {
        let (units, out) = read(DIR, false);
        let labels: Vec<_> = units
            .iter()
            .map(|u| u.label.to_string_lossy().into_owned())
            .collect();
        assert_eq!(labels, vec![DM, GUILD]);
        assert!(units.iter().all(|u| u.format == Format::Discord));
        assert_eq!(out.messages.len(), 13);
        assert_eq!(out.people_messages().count(), 9);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
    }

    #[test]
    fn a_guild_channel_reads_with_exact_counts_and_fields() {
        let (_, out) = read(&format!("{DIR}/{GUILD}"), false);
        let m = &out.messages;
        assert_eq!(m.len(), 9);
        let service: Vec<_> = m
            .iter()
            .filter(|m| m.kind == MessageKind::Service)
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(
            service,
            vec![
                "Joined the server.",
                "Pinned a message.",
                "Started a thread."
            ]
        );
        assert_eq!(out.people_messages().count(), 6);
        assert_eq!(
            out.authors().into_iter().collect::<Vec<_>>(),
            vec!["Ali", "Bobby", "Dyno", "carol"]
        );
        assert!(m.iter().all(|m| m.conversation == "1010000000000000001"));
        assert_eq!(
            m[0].conversation_title.as_deref(),
            Some("Rustaceans / general")
        );
        assert_eq!(m[0].group, Some(true));
        assert_eq!(m[0].at, utc(2024, 3, 1, 8, 0, 0, 123));
        assert_eq!(m[0].line, Some(21));

        // Raw mentions resolved through `mentions`, nickname first.
        assert_eq!(m[1].text, "Hello @Bobby and @carol, welcome!");
        assert_eq!(m[1].author.handle.as_deref(), Some("111111111111111111"));
        assert_eq!(m[1].at, utc(2024, 3, 1, 8, 5, 10, 500));

        // A multi-line reply with reactions by named users.
        assert_eq!(m[2].text, "Hi Ali!\nHow are you?\n\nAll good here.");
        assert_eq!(m[2].reply_to.as_deref(), Some("1100000000000000002"));
        let r: Vec<_> = m[2]
            .reactions
            .iter()
            .map(|r| (r.author.as_str(), r.emoji.as_str()))
            .collect();
        assert_eq!(r, vec![("Ali", "👍"), ("carol", "👍")]);

        // Attachments only, edited.
        assert_eq!(m[3].text, "");
        assert!(m[3].edited);
        let a: Vec<_> = m[3]
            .attachments
            .iter()
            .map(|a| (a.kind.as_str(), a.name.as_deref()))
            .collect();
        assert_eq!(
            a,
            vec![
                ("image", Some("photo.png")),
                ("document", Some("notes.pdf"))
            ]
        );

        // A pin is a service line and not a reply.
        assert_eq!(
            (m[4].kind, m[4].reply_to.as_deref()),
            (MessageKind::Service, None)
        );
        assert_eq!(m[5].text, "Server rules\nBe kind.");
        assert_eq!(
            m[6].attachments,
            vec![Attachment {
                kind: "sticker".into(),
                name: Some("Wave".into())
            }]
        );
        assert_eq!(m[7].text, "ship it :ferris: <3");
        let r: Vec<_> = m[7]
            .reactions
            .iter()
            .map(|r| (r.author.as_str(), r.emoji.as_str()))
            .collect();
        assert_eq!(
            r,
            vec![("Ali", ":ferris:"), ("", "🎉"), ("", "🎉"), ("", "🎉")]
        );
        assert_eq!(m[7].at, utc(2024, 3, 1, 22, 59, 59, 999));
    }

    #[test]
    fn a_dm_is_not_a_group_and_offsets_become_utc() {
        let (_, out) = read(&format!("{DIR}/{DM}"), false);
        let m = &out.messages;
        assert_eq!(m.len(), 4);
        assert_eq!(
            (m[0].kind, m[0].text.as_str()),
            (
                MessageKind::Service,
                "Started a call that lasted 12 minutes."
            )
        );
        assert!(m.iter().all(|m| m.group == Some(false) && m.conversation_title.as_deref() == Some("bob_b")));
        assert_eq!(m[2].text, "any time 🎉 see https://example.com/a?b=1&c=2");
        assert_eq!(m[3].at, utc(2024, 2, 29, 22, 5, 0, 0));
        assert_eq!(m[3].reply_to.as_deref(), Some("1300000000000000003"));
        assert_eq!(
            out.authors().into_iter().collect::<Vec<_>>(),
            vec!["Ali", "Bobby"]
        );
    }

    #[test]
    fn other_json_is_not_claimed_unless_forced() {
        let src = MemSource::new(
            "x",
            vec![
                ("a.json", br#"{"messages": []}"#.to_vec()),
                ("b.txt", b"{}".to_vec()),
            ],
        );
        assert!(Discord.claim(&src, &src.files, false).is_empty());
        assert_eq!(Discord.claim(&src, &src.files, true).len(), 1);
    }

    #[test]
    fn a_bad_record_is_a_problem_with_its_line_and_the_rest_reads() {
        let text = String::from_utf8(fixture(DM)).unwrap();
        // Break the second message's timestamp type and the third's author shape.
        let broken = text
            .replacen(
                "\"timestamp\": \"2024-02-29T22:30:00+00:00\"",
                "\"timestamp\": \"yesterday\"",
                1,
            )
            .replacen(
                "\"content\": \"any time",
                "\"author\": \"x\", \"content\": \"any time",
                1,
            );
        let src = MemSource::new("dm", vec![("dm.json", broken.into_bytes())]);
        let (_, out, errors) = src.read(&Discord, false);
        assert!(errors.is_empty());
        assert_eq!(out.messages.len(), 2);
        assert_eq!(out.problems.len(), 2);
        assert_eq!(out.problems[0].line, Some(46)); // the record's opening brace
        assert!(
            out.problems[0]
                .reason
                .contains("unreadable timestamp `yesterday`"),
            "{}",
            out.problems[0].reason
        );
        assert_eq!(out.problems[1].file, PathBuf::from("dm/dm.json"));
        assert!(
            out.problems[1]
                .reason
                .starts_with("message skipped: invalid type"),
            "{}",
            out.problems[1].reason
        );
    }

    #[test]
    fn a_truncated_file_keeps_what_came_before_the_cut() {
        let bytes = fixture(GUILD);
        let cut = bytes.len() * 2 / 3;
        let src = MemSource::new("g", vec![("g.json", bytes[..cut].to_vec())]);
        let (_, out, errors) = src.read(&Discord, false);
        assert!(errors.is_empty());
        assert!(!out.messages.is_empty() && out.messages.len() < 9);
        assert_eq!(out.problems.len(), 1);
        assert!(out.problems[0].reason.contains("truncated"));
        assert!(out.problems[0].line.is_some());
    }

    #[test]
    fn a_file_without_messages_is_unreadable() {
        let src = MemSource::new(
            "g",
            vec![(
                "g.json",
                br#"{"guild": {}, "channel": {}, "oops": 1}"#.to_vec(),
            )],
        );
        let (units, _, errors) = src.read(&Discord, false);
        assert_eq!(units.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("no \"messages\" list"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let src = MemSource::new("r", vec![("r.json", bytes)]);
            let _ = src.read(&Discord, true);
        }

        #[test]
        fn mutated_fixtures_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                        cut in any::<prop::sample::Index>()) {
            let mut bytes = fixture(GUILD);
            for (i, b) in edits {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            let keep = cut.index(bytes.len() + 1);
            bytes.truncate(keep.max(bytes.len() / 2));
            let src = MemSource::new("m", vec![("m.json", bytes)]);
            let _ = src.read(&Discord, true);
        }
    }
}
