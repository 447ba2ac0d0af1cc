//! Slack workspace exports (a folder or the zip Slack sends), read as one unit.
//!
//! Layout (Slack's "Export your workspace data" help page and the message
//! reference at api.slack.com/events/message, checked against the real export in
//! hfaran/slack-export-viewer's `tests/testarchive.zip`):
//!
//! ```text
//! users.json      [{"id": "U024BE7LH", "name": "alice", "real_name": "Alice Ng",
//!                   "profile": {"real_name", "display_name", ...}, "is_bot", ...}]
//! channels.json   [{"id": "C0JGLMMNX", "name": "general", "members": [...], ...}]   public channels
//! groups.json     private channels (same shape)        mpims.json  group DMs ("mpdm-a--b-1")
//! dms.json        [{"id": "D01ALBOB", "members": ["U..", "U.."]}]    (folder named by id)
//! <folder>/<YYYY-MM-DD>.json   one day of one conversation, oldest first:
//!   [{"type": "message", "subtype"?, "ts": "1452837318.000002", "user": "U..",
//!     "text": "<@U0BMYT2FL>: see <https://x|the docs> &amp; more",
//!     "thread_ts"?, "edited"?, "files"?: [{"name", "mimetype", ...}], "file"? (older),
//!     "reactions"?: [{"name": "thumbsup", "users": ["U.."], "count"}],
//!     "user_profile"?, "bot_id"?, "username"?, "bot_profile"?, "attachments"?, ...}]
//! ```
//!
//! Surprises:
//! - `ts` is both the message id and its time (epoch seconds with a micro part, UTC).
//!   `thread_ts` names the parent of a thread reply (it equals `ts` on the parent).
//! - Text is escaped: `<@U123>`, `<#C123|name>`, `<https://x|label>`, `<!here>`, and
//!   `&amp; &lt; &gt;`; it is flattened to `@Name`, `#name`, `label (https://x)`.
//! - Joins, topics, renames, pins, integrations are `subtype`d lines: Service.
//!   Bot posts (`bot_message`) are messages by the bot; integration posts often keep
//!   their words in `attachments` only. Old exports name bots only in the `bot_add`
//!   line ("added an integration to this channel: <https://x/services/B0JL6RASU|github>").
//! - Old `file_share` lines ("<@U..> uploaded a file: ...") are generated text; the
//!   person's own words, if any, are the file's `initial_comment`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::discord::jsonscan::{self, Cursor, Lines, Num, Str, nullable};
use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Reaction,
    Sink, Source, Unit, When,
};

/// Reads a Slack workspace export.
pub struct Slack;

/// Files that mark the folder holding a Slack export.
const META_FILES: [&str; 5] = [
    "channels.json",
    "groups.json",
    "dms.json",
    "mpims.json",
    "users.json",
];

/// Reactions with a count but no user list become this many anonymous entries at most.
const MAX_ANONYMOUS_REACTIONS: i64 = 100;

impl Importer for Slack {
    fn format(&self) -> Format {
        Format::Slack
    }

    fn claim(&self, _src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let mut roots: BTreeSet<&Path> = pool
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| META_FILES.iter().any(|m| n == *m))
            })
            .filter_map(|p| p.parent())
            .collect();
        if forced && roots.is_empty() {
            roots = pool
                .iter()
                .filter(|p| is_day_file(p))
                .filter_map(|p| p.parent()?.parent())
                .collect();
        }
        let mut taken: BTreeSet<&Path> = BTreeSet::new();
        let mut units = Vec::new();
        for root in roots {
            let files: Vec<PathBuf> = pool
                .iter()
                .filter(|p| !taken.contains(p.as_path()))
                .filter(|p| {
                    let parent = p.parent();
                    (parent == Some(root) && jsonscan::has_json_ext(&p.to_string_lossy()))
                        || (is_day_file(p) && parent.and_then(Path::parent) == Some(root))
                })
                .cloned()
                .collect();
            if !files.iter().any(|p| is_day_file(p)) && !forced {
                continue;
            }
            taken.extend(
                pool.iter()
                    .filter(|p| files.contains(p))
                    .map(PathBuf::as_path),
            );
            units.push(Unit {
                format: Format::Slack,
                files,
                label: root.to_path_buf(),
            });
        }
        units
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        let mut ws = Workspace::default();
        let meta = |name: &str| {
            unit.files.iter().find(|p| {
                p.parent() == Some(&unit.label) && p.file_name().is_some_and(|n| n == name)
            })
        };
        // Users first: conversation titles of DMs are their members' names.
        if let Some(rel) = meta("users.json") {
            ws.load_users(src, rel, out)?;
        }
        for (name, kind) in [
            ("channels.json", ConvKind::Channel),
            ("groups.json", ConvKind::Channel),
            ("mpims.json", ConvKind::GroupDm),
            ("dms.json", ConvKind::Dm),
        ] {
            if let Some(rel) = meta(name) {
                ws.load_conversations(src, rel, kind, out)?;
            }
        }
        for rel in unit.files.iter().filter(|p| is_day_file(p)) {
            let folder = rel
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let conv = ws.conversation(&folder);
            parse_day(src, rel, &conv, &mut ws, out)?;
        }
        Ok(())
    }
}

/// `<folder>/YYYY-MM-DD.json`.
fn is_day_file(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let b = name.as_bytes();
    p.parent().is_some_and(|d| !d.as_os_str().is_empty())
        && b.len() == 15
        && name.ends_with(".json")
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    Channel,
    GroupDm,
    Dm,
}

/// One conversation, as the messages of its folder see it.
#[derive(Debug, Clone, Default)]
struct Conv {
    id: String,
    title: Option<String>,
    group: Option<bool>,
}

/// What the metadata files say, and bot names learned on the way.
#[derive(Debug, Default)]
struct Workspace {
    users: HashMap<String, String>,
    channel_names: HashMap<String, String>,
    by_folder: HashMap<String, Conv>,
    bot_names: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserJson<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    real_name: Str<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    profile: Profile<'a>,
}

/// A user's `profile`, also inlined in newer messages as `user_profile`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Profile<'a> {
    #[serde(borrow)]
    real_name: Str<'a>,
    #[serde(borrow)]
    display_name: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConvJson<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    members: Vec<Str<'a>>,
}

impl Workspace {
    fn load_users(
        &mut self,
        src: &dyn Source,
        rel: &Path,
        out: &mut dyn Sink,
    ) -> Result<(), ImportError> {
        for_each_item(src, rel, out, |item| {
            let u: UserJson = serde_json::from_slice(item)?;
            let name = [
                &u.profile.real_name,
                &u.real_name,
                &u.profile.display_name,
                &u.name,
                &u.id,
            ]
            .into_iter()
            .map(Str::as_str)
            .find(|s| !s.trim().is_empty())
            .unwrap_or_default();
            if !u.id.is_empty() {
                self.users
                    .insert(u.id.as_str().to_string(), name.to_string());
            }
            Ok(())
        })
    }

    fn load_conversations(
        &mut self,
        src: &dyn Source,
        rel: &Path,
        kind: ConvKind,
        out: &mut dyn Sink,
    ) -> Result<(), ImportError> {
        for_each_item(src, rel, out, |item| {
            let c: ConvJson = serde_json::from_slice(item)?;
            let members: Vec<&str> = c
                .members
                .iter()
                .map(|m| name_of(&self.users, m.as_str()))
                .collect();
            let (folder, title, group) = match kind {
                ConvKind::Channel => (c.name.as_str(), c.name.as_str().to_string(), true),
                ConvKind::GroupDm if !members.is_empty() => {
                    (c.name.as_str(), members.join(", "), true)
                }
                ConvKind::GroupDm => (c.name.as_str(), c.name.as_str().to_string(), true),
                ConvKind::Dm => (c.id.as_str(), members.join(", "), false),
            };
            if !c.id.is_empty() && !c.name.is_empty() {
                self.channel_names
                    .insert(c.id.as_str().to_string(), c.name.as_str().to_string());
            }
            if folder.is_empty() {
                return Ok(());
            }
            let conv = Conv {
                id: if c.id.is_empty() {
                    folder.to_string()
                } else {
                    c.id.as_str().to_string()
                },
                title: (!title.is_empty()).then_some(title),
                group: Some(group),
            };
            self.by_folder.insert(folder.to_string(), conv);
            Ok(())
        })
    }

    /// The conversation a day folder belongs to; an unlisted folder is its own id.
    fn conversation(&self, folder: &str) -> Conv {
        self.by_folder.get(folder).cloned().unwrap_or_else(|| Conv {
            id: folder.to_string(),
            title: Some(folder.to_string()),
            group: None,
        })
    }

    /// Learn a bot's name from a `bot_add` line's `<https://x/services/B123|name>`.
    fn learn_bot(&mut self, text: &str) {
        let Some((_, rest)) = text.split_once("/services/") else {
            return;
        };
        let Some((id, rest)) = rest.split_once('|') else {
            return;
        };
        let Some((label, _)) = rest.split_once('>') else {
            return;
        };
        if !id.is_empty() && !label.is_empty() && !id.contains(['/', '<', ' ']) {
            self.bot_names
                .insert(id.to_string(), unescape_entities(label));
        }
    }
}

/// A user's name from users.json, or the id itself.
fn name_of<'s>(users: &'s HashMap<String, String>, id: &'s str) -> &'s str {
    users.get(id).map(String::as_str).unwrap_or(id)
}

/// Deserialize each item of a file's root JSON array with `on_item`, reporting
/// the ones that fail (and a cut-off file) as Problems.
fn for_each_item(
    src: &dyn Source,
    rel: &Path,
    out: &mut dyn Sink,
    mut on_item: impl FnMut(&[u8]) -> Result<(), serde_json::Error>,
) -> Result<(), ImportError> {
    let bytes = jsonscan::read_bytes(src, rel)?;
    let file = src.display(rel);
    let mut lines = Lines::new(&bytes);
    let scanned = Cursor::new(&bytes).array(|span| {
        let line = lines.line_at(span.start);
        if let Err(e) = on_item(&bytes[span]) {
            out.problem(Problem {
                file: file.clone(),
                line: Some(line + (e.line() as u64).saturating_sub(1)),
                reason: format!("record skipped: {}", jsonscan::json_reason(&e)),
            });
        }
    });
    if let Err(e) = scanned {
        out.problem(Problem {
            file,
            line: Some(lines.line_at(e.offset)),
            reason: e.reason.to_string(),
        });
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Msg<'a> {
    #[serde(borrow)]
    subtype: Str<'a>,
    #[serde(borrow)]
    ts: Str<'a>,
    #[serde(borrow)]
    thread_ts: Str<'a>,
    #[serde(borrow)]
    user: Str<'a>,
    #[serde(borrow)]
    username: Str<'a>,
    #[serde(borrow)]
    bot_id: Str<'a>,
    #[serde(borrow)]
    text: Str<'a>,
    edited: Option<IgnoredAny>,
    #[serde(borrow, deserialize_with = "nullable")]
    user_profile: Profile<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    bot_profile: Profile<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    files: Vec<FileJson<'a>>,
    /// Older exports: the one file of a `file_share` / `file_comment`.
    #[serde(borrow, deserialize_with = "nullable")]
    file: Option<FileJson<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    comment: Comment<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    attachments: Vec<AttachmentJson<'a>>,
    #[serde(borrow, deserialize_with = "nullable")]
    reactions: Vec<ReactionJson<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileJson<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    title: Str<'a>,
    #[serde(borrow)]
    mimetype: Str<'a>,
    /// "tombstone" (deleted) or "hidden_by_limit" when the export left the file out.
    #[serde(borrow)]
    mode: Str<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    initial_comment: Comment<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Comment<'a> {
    #[serde(borrow)]
    user: Str<'a>,
    #[serde(borrow)]
    comment: Str<'a>,
}

/// Message attachments: link unfurls and integration posts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AttachmentJson<'a> {
    #[serde(borrow)]
    fallback: Str<'a>,
    #[serde(borrow)]
    pretext: Str<'a>,
    #[serde(borrow)]
    title: Str<'a>,
    #[serde(borrow)]
    text: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReactionJson<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    users: Vec<Str<'a>>,
    count: Num,
}

fn parse_day(
    src: &dyn Source,
    rel: &Path,
    conv: &Conv,
    ws: &mut Workspace,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let bytes = jsonscan::read_bytes(src, rel)?;
    let file = src.display(rel);
    let mut lines = Lines::new(&bytes);
    let scanned = Cursor::new(&bytes).array(|span| {
        let line = lines.line_at(span.start);
        let problem = |reason: String, line: u64| Problem {
            file: file.clone(),
            line: Some(line),
            reason,
        };
        match serde_json::from_slice::<Msg>(&bytes[span]) {
            Ok(m) => {
                if m.subtype.as_str() == "bot_add" {
                    ws.learn_bot(m.text.as_str());
                }
                if !m.bot_id.is_empty() && !m.bot_profile.name.is_empty() {
                    ws.bot_names
                        .entry(m.bot_id.as_str().to_string())
                        .or_insert_with(|| m.bot_profile.name.as_str().to_string());
                }
                match to_raw(&m, conv, ws) {
                    Ok(raw) => out.message(raw),
                    Err(reason) => out.problem(problem(reason, line)),
                }
            }
            Err(e) => out.problem(problem(
                format!("message skipped: {}", jsonscan::json_reason(&e)),
                line + (e.line() as u64).saturating_sub(1),
            )),
        }
    });
    if let Err(e) = scanned {
        out.problem(Problem {
            file,
            line: Some(lines.line_at(e.offset)),
            reason: e.reason.to_string(),
        });
    }
    Ok(())
}

fn to_raw(m: &Msg<'_>, conv: &Conv, ws: &Workspace) -> Result<RawMessage, String> {
    let ts = m.ts.as_str();
    let at = parse_ts(ts).ok_or_else(|| format!("message skipped: unreadable ts `{ts}`"))?;
    let kind = if is_person_subtype(m.subtype.as_str()) {
        MessageKind::Message
    } else {
        MessageKind::Service
    };
    let mut raw = RawMessage::new(conv.id.clone(), author(m, ws), When::Utc(at), body(m, ws));
    raw.conversation_title = conv.title.clone();
    raw.group = conv.group;
    raw.kind = kind;
    raw.attachments = attachments(m);
    raw.id = Some(ts.to_string());
    let parent = m.thread_ts.as_str();
    if !parent.is_empty() && parent != ts {
        raw.reply_to = Some(parent.to_string());
    }
    raw.reactions = reactions(&m.reactions, ws);
    raw.edited = m.edited.is_some();
    Ok(raw)
}

/// `"1452837318.000002"`: epoch seconds, then up to nine fraction digits.
fn parse_ts(ts: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = ts.trim().split_once('.').unwrap_or((ts.trim(), ""));
    let secs: i64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    DateTime::from_timestamp(secs, nanos)
}

/// Subtypes written by a person or a bot; every other subtype is a system line
/// (joins, leaves, topic/purpose/name changes, pins, integrations, tombstones...).
fn is_person_subtype(subtype: &str) -> bool {
    matches!(
        subtype,
        "" | "bot_message"
            | "me_message"
            | "file_share"
            | "file_comment"
            | "file_mention"
            | "thread_broadcast"
            | "reply_broadcast"
            | "slackbot_response"
    )
}

fn author(m: &Msg<'_>, ws: &Workspace) -> Author {
    let first = |names: &[&str]| {
        names
            .iter()
            .find(|s| !s.trim().is_empty())
            .map(|s| s.to_string())
    };
    if m.subtype.as_str() == "file_comment" && !m.comment.user.is_empty() {
        let id = m.comment.user.as_str();
        return Author {
            name: name_of(&ws.users, id).to_string(),
            handle: Some(id.to_string()),
            me: None,
        };
    }
    if m.user.is_empty() && (!m.bot_id.is_empty() || m.subtype.as_str() == "bot_message") {
        let bot = m.bot_id.as_str();
        let learned = ws.bot_names.get(bot).map(String::as_str).unwrap_or("");
        let name = first(&[
            m.username.as_str(),
            m.bot_profile.name.as_str(),
            learned,
            bot,
        ])
        .unwrap_or_else(|| "bot".into());
        return Author {
            name,
            handle: (!bot.is_empty()).then(|| bot.to_string()),
            me: None,
        };
    }
    let id = m.user.as_str();
    let known = ws.users.get(id).map(String::as_str).unwrap_or("");
    let p = &m.user_profile;
    let name = first(&[
        known,
        p.real_name.as_str(),
        p.display_name.as_str(),
        p.name.as_str(),
        m.username.as_str(),
        id,
    ])
    .unwrap_or_else(|| "Unknown".into());
    Author {
        name,
        handle: (!id.is_empty()).then(|| id.to_string()),
        me: None,
    }
}

/// The person's words: the text, a file comment's comment, an old upload's
/// initial comment; integration posts with no text use their attachments.
fn body(m: &Msg<'_>, ws: &Workspace) -> String {
    let raw = match (m.subtype.as_str(), &m.file) {
        ("file_comment", _) if !m.comment.comment.is_empty() => m.comment.comment.as_str(),
        ("file_share", Some(f)) => f.initial_comment.comment.as_str(),
        _ => m.text.as_str(),
    };
    let text = render(raw, ws);
    if !text.trim().is_empty() || m.attachments.is_empty() {
        return text;
    }
    let parts: Vec<String> = m
        .attachments
        .iter()
        .map(|a| {
            let own: Vec<&str> = [&a.pretext, &a.title, &a.text]
                .into_iter()
                .map(Str::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            let own = if own.is_empty() {
                a.fallback.as_str().to_string()
            } else {
                own.join("\n")
            };
            render(&own, ws)
        })
        .filter(|s| !s.is_empty())
        .collect();
    parts.join("\n")
}

fn attachments(m: &Msg<'_>) -> Vec<Attachment> {
    m.files
        .iter()
        .chain(m.file.iter().filter(|_| m.subtype.as_str() == "file_share"))
        .map(|f| {
            if matches!(f.mode.as_str(), "tombstone" | "hidden_by_limit") {
                return Attachment {
                    kind: "omitted".into(),
                    name: None,
                };
            }
            let name = if f.name.is_empty() {
                f.title.as_str()
            } else {
                f.name.as_str()
            };
            let mime = f.mimetype.as_str();
            let kind = match mime.split('/').next().unwrap_or("") {
                "image" if mime == "image/gif" => "gif",
                "image" => "image",
                "video" => "video",
                "audio" => "audio",
                _ => jsonscan::kind_from_name(name),
            };
            Attachment {
                kind: kind.to_string(),
                name: (!name.is_empty()).then(|| name.to_string()),
            }
        })
        .collect()
}

fn reactions(list: &[ReactionJson<'_>], ws: &Workspace) -> Vec<Reaction> {
    let mut out = Vec::new();
    for r in list {
        let emoji = format!(":{}:", r.name.as_str());
        if r.users.is_empty() {
            let n = r.count.0.unwrap_or(1).clamp(1, MAX_ANONYMOUS_REACTIONS);
            out.extend((0..n).map(|_| Reaction {
                author: String::new(),
                emoji: emoji.clone(),
            }));
        } else {
            out.extend(r.users.iter().map(|u| Reaction {
                author: name_of(&ws.users, u.as_str()).to_string(),
                emoji: emoji.clone(),
            }));
        }
    }
    out
}

/// Flatten Slack's markup: `<@U1>` → `@Name`, `<#C1|general>` → `#general`,
/// `<!here>` → `@here`, `<https://x|label>` → `label (https://x)`, `<https://x>` →
/// `https://x`, and `&amp; &lt; &gt;` → `& < >`. Literal `<` and `>` are always
/// escaped in Slack text, so a bare `<` only ever opens a token.
fn render(text: &str, ws: &Workspace) -> String {
    if !text.contains(['<', '&']) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        out.push_str(&unescape_entities(&rest[..i]));
        let after = &rest[i + 1..];
        match after.find(['>', '<']) {
            Some(j) if after.as_bytes()[j] == b'>' => {
                out.push_str(&render_token(&after[..j], ws));
                rest = &after[j + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(&unescape_entities(rest));
    out
}

fn render_token(token: &str, ws: &Workspace) -> String {
    let (target, label) = match token.split_once('|') {
        Some((t, l)) => (t, unescape_entities(l)),
        None => (token, String::new()),
    };
    if let Some(id) = target.strip_prefix('@') {
        let name = ws.users.get(id).cloned().unwrap_or_else(|| {
            if label.is_empty() {
                id.to_string()
            } else {
                label.clone()
            }
        });
        return format!("@{}", name.trim_start_matches('@'));
    }
    if let Some(id) = target.strip_prefix('#') {
        let name = if label.is_empty() {
            ws.channel_names
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_string())
        } else {
            label
        };
        return format!("#{name}");
    }
    if let Some(special) = target.strip_prefix('!') {
        // <!here>, <!channel>, <!everyone>, <!subteam^S1|@team>, <!date^...|fallback>
        if !label.is_empty() {
            return label;
        }
        return format!("@{}", special.split('^').next().unwrap_or(special));
    }
    let url = unescape_entities(target);
    let bare = url
        .strip_prefix("mailto:")
        .or_else(|| url.strip_prefix("tel:"))
        .unwrap_or(&url);
    if label.is_empty() || label == url || label == bare {
        if label.is_empty() { url } else { label }
    } else {
        format!("{label} ({url})")
    }
}

fn unescape_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::jsonscan::MemSource;
    use super::*;
    use crate::ingest::{Collect, read_with};
    use chrono::TimeZone;
    use proptest::prelude::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/slack");

    fn read(path: &str) -> (Vec<Unit>, Collect) {
        read_with(&Slack, Path::new(path), false).unwrap()
    }

    fn utc(secs: i64, micros: u32) -> When {
        When::Utc(Utc.timestamp_opt(secs, micros * 1000).unwrap())
    }

    fn by_id<'c>(out: &'c Collect, ts: &str) -> &'c RawMessage {
        out.messages
            .iter()
            .find(|m| m.id.as_deref() == Some(ts))
            .unwrap()
    }

    fn pairs(r: &[Reaction]) -> Vec<(&str, &str)> {
        r.iter()
            .map(|r| (r.author.as_str(), r.emoji.as_str()))
            .collect()
    }

    /// Every file of a fixture folder, for in-memory variations.
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
            "mem",
            files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect(),
        )
    }

    #[test]
    fn the_real_export_reads_with_exact_counts() {
        let (units, out) = read(&format!("{DIR}/slack-export-viewer_testarchive"));
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].files.len(), 20); // 3 metadata files + 17 day files
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.messages.len(), 158);
        assert_eq!(out.people_messages().count(), 147);
        assert_eq!(
            out.messages
                .iter()
                .filter(|m| m.kind == MessageKind::Service)
                .count(),
            11
        );
        let authors: Vec<_> = out.authors().into_iter().collect();
        assert_eq!(
            authors,
            vec![
                "Hamza Faran",
                "Harry Potter",
                "Hermione Granger",
                "github",
                "heroeshannibal"
            ]
        );
        assert_eq!(
            out.messages
                .iter()
                .filter(|m| m.conversation == "C0JGLMMNX")
                .count(),
            102
        );
        assert_eq!(
            out.messages
                .iter()
                .filter(|m| m.conversation == "C0JL6CGQ2")
                .count(),
            56
        );

        let first = &out.messages[0];
        assert_eq!(
            (first.kind, first.text.as_str()),
            (MessageKind::Service, "@Hamza Faran has joined the channel")
        );
        assert_eq!(
            (first.conversation_title.as_deref(), first.group),
            (Some("enrique"), Some(true))
        );
        assert_eq!(first.at, utc(1452837318, 2));
        assert_eq!(first.author.handle.as_deref(), Some("U0BMQB6JE"));

        let m = by_id(&out, "1452837352.000006");
        assert_eq!(
            m.text,
            "@Harry Potter: Created an issue for a setup.py so that it can be installed to a standard place"
        );
        let m = by_id(&out, "1452846025.000011");
        assert_eq!(
            m.text,
            "Here's an example: https://github.com/hfaran/progressive/blob/master/setup.py"
        );

        // An integration post: named by its bot_add line, words from its attachment.
        let m = by_id(&out, "1459154014.000018");
        assert_eq!(
            (m.author.name.as_str(), m.author.handle.as_deref()),
            ("github", Some("B0JL6RASU"))
        );
        assert_eq!(
            m.text,
            "[enrique:master] 1 new commit by hfaran:\nb698a38 (https://github.com/mesos-magellan/enrique/commit/b698a38dabbd81c51029f163e74bcd76115e9c2f): Implement killTask; resolves #20 - hfaran"
        );
        assert_eq!(pairs(&m.reactions), vec![("Harry Potter", ":botman:")]);

        // An old upload: generated text dropped, the file kept.
        let m = by_id(&out, "1459052866.000012");
        assert_eq!(
            (m.kind, m.text.as_str(), m.author.name.as_str()),
            (MessageKind::Message, "", "Hermione Granger")
        );
        assert_eq!(
            m.attachments,
            vec![Attachment {
                kind: "file".into(),
                name: Some("100_cities.js".into())
            }]
        );
        let m = by_id(&out, "1459106048.000018");
        assert_eq!(m.author.name, "Hermione Granger");
        assert!(
            m.text.starts_with("```'cities': {\n   'Holmesville'"),
            "{}",
            m.text
        );

        assert!(by_id(&out, "1458972985.000010").edited);
        assert_eq!(out.messages.iter().filter(|m| m.edited).count(), 1);
        assert!(
            by_id(&out, "1459033471.000004")
                .text
                .contains("line 5, in <module>")
        );
        assert!(out.messages.iter().all(|m| m.reply_to.is_none()));
    }

    #[test]
    fn the_folder_and_the_zip_give_identical_records() {
        let (dir_units, from_dir) = read(&format!("{DIR}/slack-export-viewer_testarchive"));
        let (zip_units, from_zip) = read(&format!("{DIR}/slack-export-viewer_testarchive.zip"));
        assert_eq!(dir_units[0].files, zip_units[0].files);
        assert_eq!(from_dir.messages, from_zip.messages);
        assert!(from_zip.problems.is_empty());
    }

    #[test]
    fn the_modern_export_reads_threads_files_dms_and_markup() {
        let (units, out) = read(&format!("{DIR}/modern_export"));
        assert_eq!(units.len(), 1);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.messages.len(), 15);
        assert_eq!(out.people_messages().count(), 11);
        let authors: Vec<_> = out.authors().into_iter().collect();
        assert_eq!(
            authors,
            vec!["Alice Ng", "Bob Ray", "Carol Díaz", "GitHub", "deploybot"]
        );
        let service: Vec<_> = out
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Service)
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(
            service,
            vec![
                "@Carol Díaz has joined the channel",
                "@Alice Ng set the channel purpose: Company-wide chatter",
                "@Alice Ng pinned a message to this channel.",
                "@Alice Ng set the channel topic: Lunch plans",
            ]
        );

        let parent = by_id(&out, "1705312800.000100");
        assert_eq!(
            parent.text,
            "Morning @Bob Ray! Notes are in #random and the docs (https://example.com/docs?a=1&b=2) & more <soon>"
        );
        assert_eq!(parent.at, utc(1705312800, 100));
        assert_eq!(
            (
                parent.conversation.as_str(),
                parent.conversation_title.as_deref()
            ),
            ("C01GENERAL", Some("general"))
        );
        assert!(parent.edited && parent.reply_to.is_none());
        assert_eq!(
            pairs(&parent.reactions),
            vec![("Bob Ray", ":thumbsup:"), ("Carol Díaz", ":thumbsup:")]
        );

        let reply = by_id(&out, "1705312900.000400");
        assert_eq!(reply.text, "Thanks!\nReading them now.\n\n- Bob");
        assert_eq!(reply.reply_to.as_deref(), Some("1705312800.000100"));
        let files = &by_id(&out, "1705313000.000500").attachments;
        assert_eq!(
            files,
            &vec![
                Attachment {
                    kind: "image".into(),
                    name: Some("diagram.png".into())
                },
                Attachment {
                    kind: "document".into(),
                    name: Some("spec.pdf".into())
                },
            ]
        );
        let bot = by_id(&out, "1705313100.000600");
        assert_eq!(
            (bot.author.name.as_str(), bot.text.as_str()),
            ("deploybot", "Deployed v1.2 :rocket:")
        );
        let gh = by_id(&out, "1705313200.000700");
        assert_eq!(
            gh.text,
            "[app:main] 1 new commit\nabc (https://github.com/x/app/commit/abc): fix login"
        );
        let broadcast = by_id(&out, "1705395600.000100");
        assert_eq!(
            broadcast.text,
            "@here lunch? mail bob@example.com or see https://lunch.example.com"
        );
        assert_eq!(
            (broadcast.kind, broadcast.reply_to.as_deref()),
            (MessageKind::Message, Some("1705312800.000100"))
        );

        let dm = by_id(&out, "1705330000.000100");
        assert_eq!(dm.text, "hey @Alice Ng, got a minute?");
        assert_eq!(
            (
                dm.conversation.as_str(),
                dm.conversation_title.as_deref(),
                dm.group
            ),
            ("D01ALBOB", Some("Alice Ng, Bob Ray"), Some(false))
        );
        let mpim = by_id(&out, "1705482000.000100");
        assert_eq!(
            (mpim.conversation_title.as_deref(), mpim.group),
            (Some("Alice Ng, Bob Ray, Carol Díaz"), Some(true))
        );
        assert_eq!(
            mpim.attachments,
            vec![Attachment {
                kind: "audio".into(),
                name: Some("audio_message.webm".into())
            }]
        );
        assert_eq!(by_id(&out, "1705320000.000100").conversation, "G01SECRET");
    }

    #[test]
    fn other_folders_are_not_claimed() {
        let src = MemSource::new(
            "x",
            vec![
                ("notes/2024-01-01.json", b"[]".to_vec()),
                ("a/b.json", b"[]".to_vec()),
            ],
        );
        assert!(Slack.claim(&src, &src.files, false).is_empty());
        let units = Slack.claim(&src, &src.files, true);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].files, vec![PathBuf::from("notes/2024-01-01.json")]);
        assert!(!is_day_file(Path::new("2024-01-01.json")));
        assert!(!is_day_file(Path::new("x/2024-1-01.json")));
    }

    #[test]
    fn bad_records_and_cut_files_are_problems_with_lines() {
        let mut files = files_of(&format!("{DIR}/modern_export"));
        for (path, data) in files.iter_mut() {
            let text = String::from_utf8(data.clone()).unwrap();
            if path == "general/2024-01-15.json" {
                // Break one record's ts and another record's shape.
                *data = text
                    .replacen("\"1705312900.000400\"", "\"soon\"", 1)
                    .replacen("\"reply_count\": 2", "\"files\": 7", 1)
                    .into_bytes();
            } else if path == "general/2024-01-16.json" {
                data.truncate(data.len() / 2);
            } else if path == "users.json" {
                *data = b"<html>not json</html>".to_vec();
            }
        }
        let (_, out, errors) = mem(&files).read(&Slack, false);
        assert!(errors.is_empty());
        let got: Vec<_> = out
            .problems
            .iter()
            .map(|p| {
                (
                    p.file.to_string_lossy().into_owned(),
                    p.line,
                    p.reason.clone(),
                )
            })
            .collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(got[0].0, "mem/users.json");
        assert_eq!(
            (got[0].1, got[0].2.as_str()),
            (Some(1), "expected a JSON array")
        );
        assert_eq!(got[1].0, "mem/general/2024-01-15.json");
        assert!(
            got[1]
                .2
                .starts_with("message skipped: invalid type: integer `7`"),
            "{}",
            got[1].2
        );
        assert_eq!(
            (got[2].1, got[2].2.as_str()),
            (Some(82), "message skipped: unreadable ts `soon`")
        );
        assert_eq!(got[3].0, "mem/general/2024-01-16.json");
        assert!(got[3].2.contains("truncated"));
        // Names fall back to the profiles inlined in messages.
        assert!(out.authors().contains("Alice Ng"));
        assert_eq!(out.messages.len(), 15 - 2 - 2);
    }

    #[test]
    fn ts_parsing_is_exact_and_strict() {
        assert_eq!(
            parse_ts("1452837318.000002").map(When::Utc),
            Some(utc(1452837318, 2))
        );
        assert_eq!(
            parse_ts("1452837318").map(When::Utc),
            Some(utc(1452837318, 0))
        );
        assert_eq!(
            parse_ts("1452837318.5").map(When::Utc),
            Some(utc(1452837318, 500_000))
        );
        assert_eq!(parse_ts("14528x7318.000002"), None);
        assert_eq!(parse_ts("1.0000000001"), None);
        assert_eq!(parse_ts(""), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let src = MemSource::new("r", vec![("channels.json", b"[]".to_vec()), ("c/2024-01-01.json", bytes.clone()), ("users.json", bytes)]);
            let _ = src.read(&Slack, false);
        }

        #[test]
        fn mutated_exports_never_panic(which in any::<prop::sample::Index>(),
                                       edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                       cut in any::<prop::sample::Index>()) {
            let mut files = files_of(&format!("{DIR}/modern_export"));
            let n = files.len();
            let data = &mut files[which.index(n)].1;
            for (i, b) in edits {
                let at = i.index(data.len());
                data[at] = b;
            }
            let keep = cut.index(data.len() + 1);
            data.truncate(keep.max(data.len() / 2));
            let _ = mem(&files).read(&Slack, false);
        }
    }
}
