//! Google Chat (and Google Voice texts), from Google Takeout.
//!
//! **Google Chat** writes one folder per conversation,
//! `Google Chat/Groups/<DM xxx | Space xxx>/`, holding:
//!
//! - `group_info.json`: `{"name": "Team" (Spaces only), "members": [{"name", "email", "user_type"}]}`
//! - `messages.json`: `{"messages": [{"creator": {"name", "email", "user_type"},
//!   "created_date": "Monday, January 7, 2019 at 7:25:08 PM UTC", "text", "annotations",
//!   "attached_files": [{"original_name", "export_name"}], "topic_id", "message_id",
//!   "reactions": [{"emoji": {"unicode"}, "reactor_emails": […]}], "updated_date",
//!   "quoted_message_metadata": {"creator", "text"}, "message_state", "deletion_metadata"}]}`
//!
//! and `Google Chat/Users/User xxx/user_info.json` names the exporting user
//! (`{"user": {"name", "email"}}`). Dates are English, with a U+202F before AM/PM
//! in newer takeouts, and end with the zone the account used ("UTC", "PST",
//! "GMT+2"); they are converted to UTC with that zone's offset. Sources: real
//! takeouts in wjcarpenter/gvoice-sms-takeout-xml `test_data/`, and the field
//! lists of public Takeout readers (reactions, quotes, deletions, edits).
//!
//! **Google Voice** writes `Voice/Calls/*.html`, one page per text thread chunk
//! or call, in the hChatLog / hAudio microformats:
//! `<div class="message"><abbr class="dt" title="2021-01-22T01:33:43.000-05:00">…</abbr>:
//! <cite class="sender vcard"><a class="tel" href="tel:+1…"><span class="fn">Name</span></a></cite>:
//! <q>body</q> <div><img src="…"/></div></div>` (the owner is `<abbr class="fn">Me</abbr>`);
//! group texts list `<div class="participants">`. Call, voicemail and recording
//! pages (`<div class="haudio">`) become service lines. Texts with the same
//! contact (the file name before ` - Text - `) share one conversation.
//!
//! Units: one per Chat conversation folder; one per Voice `Calls` folder.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Reaction,
    Sink, Source, Unit, When,
};

/// Reads Google Chat conversation folders and Google Voice text/call pages.
pub struct GoogleChat;

impl Importer for GoogleChat {
    fn format(&self) -> Format {
        Format::Gchat
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let mut units = claim_chat(src, pool);
        units.extend(claim_voice(src, pool, forced));
        units
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        let is_voice = unit.files.iter().all(|f| is_html(&file_name(src, f)));
        if is_voice {
            parse_voice(src, unit, out)
        } else {
            parse_chat(src, unit, out)
        }
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

/// The name of the folder holding `rel` (the root's name when `rel` sits at the root).
fn folder_name(src: &dyn Source, rel: &Path) -> String {
    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
    let folder = match parent {
        Some(p) => p,
        None if rel.as_os_str().is_empty() => src.root().parent().unwrap_or(Path::new("")),
        None => src.root(),
    };
    folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_html(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> u64 {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}

/// The line of `part` in `text` when `part` is a slice of it (a borrowed JSON string).
fn line_of(text: &str, part: &str) -> Option<u64> {
    let start = text.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    (at >= start && at <= start + text.len()).then(|| line_at(text, at - start))
}

/// The attachment kind for a file name, from its extension.
pub(crate) fn kind_for_file_name(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "gif" => "gif",
        "jpg" | "jpeg" | "png" | "heic" | "heif" | "webp" | "bmp" | "tif" | "tiff" | "svg" => {
            "image"
        }
        "mp4" | "mov" | "m4v" | "webm" | "avi" | "mkv" | "3gp" => "video",
        "mp3" | "m4a" | "aac" | "ogg" | "oga" | "opus" | "wav" | "flac" | "amr" => "audio",
        "pdf" | "doc" | "docx" | "xls" | "xlsx" | "ppt" | "pptx" | "odt" | "ods" | "odp"
        | "txt" | "rtf" | "csv" | "md" => "document",
        "vcf" | "vcard" => "contact",
        _ => "file",
    }
}

// ---------------------------------------------------------------------------
// Claiming.

fn is_chat_folder(name: &str) -> bool {
    name.starts_with("DM ") || name.starts_with("Space ") || name.starts_with("Group ")
}

fn claim_chat(src: &dyn Source, pool: &[PathBuf]) -> Vec<Unit> {
    let mut units = Vec::new();
    let available: HashSet<&Path> = pool.iter().map(PathBuf::as_path).collect();
    for rel in pool {
        if file_name(src, rel) != "messages.json" {
            continue;
        }
        let in_chat_folder = is_chat_folder(&folder_name(src, rel));
        // Outside a `DM …`/`Space …` folder the keys must say Google Chat (an
        // empty `{"messages": []}` elsewhere is too vague, even when forced).
        if !in_chat_folder && !sniff_chat(src, rel) {
            continue;
        }
        let info = rel.with_file_name("group_info.json");
        let mut files = vec![rel.clone()];
        if !rel.as_os_str().is_empty() && available.contains(info.as_path()) {
            files.push(info);
        }
        files.sort();
        let label = rel
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| rel.clone());
        units.push(Unit {
            format: Format::Gchat,
            files,
            label,
        });
    }
    units
}

/// Does a `messages.json` look like Google Chat's (creator + created_date)?
fn sniff_chat(src: &dyn Source, rel: &Path) -> bool {
    let Ok(head) = src.head(rel, 4096) else {
        return false;
    };
    let head = String::from_utf8_lossy(&head);
    head.contains("\"messages\"")
        && head.contains("\"creator\"")
        && head.contains("\"created_date\"")
}

/// Is this path inside a Takeout `Voice/Calls` folder?
fn in_voice_calls(src: &dyn Source, rel: &Path) -> bool {
    let full = src.root().join(rel);
    let names: Vec<&std::ffi::OsStr> = full
        .components()
        .filter_map(|c| {
            if let Component::Normal(n) = c {
                Some(n)
            } else {
                None
            }
        })
        .collect();
    names.windows(2).any(|w| w[0] == "Voice" && w[1] == "Calls")
}

fn sniff_voice(src: &dyn Source, rel: &Path) -> bool {
    let Ok(head) = src.head(rel, 8192) else {
        return false;
    };
    let head = String::from_utf8_lossy(&head);
    head.contains("class=\"hChatLog") || head.contains("class=\"haudio\"")
}

fn claim_voice(src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
    let mut folders: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for rel in pool {
        if !is_html(&file_name(src, rel)) {
            continue;
        }
        let claimed = if in_voice_calls(src, rel) {
            true
        } else {
            forced && sniff_voice(src, rel)
        };
        if claimed {
            let folder = rel.parent().map(Path::to_path_buf).unwrap_or_default();
            folders.entry(folder).or_default().push(rel.clone());
        }
    }
    folders
        .into_iter()
        .map(|(folder, mut files)| {
            files.sort();
            let label = if folder.as_os_str().is_empty() {
                files[0].clone()
            } else {
                folder
            };
            Unit {
                format: Format::Gchat,
                files,
                label,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Streaming the `messages` array of a JSON object.

/// Receives the elements of a streamed JSON array one at a time.
trait ElementSink<'de> {
    /// Read the next element from `seq`; `Ok(false)` at the end of the array.
    fn element<A: SeqAccess<'de>>(&mut self, seq: &mut A) -> Result<bool, A::Error>;
}

/// Walk a top-level JSON object and hand every element of the array stored
/// under one of `keys` to `sink`, without building the array. Other keys are
/// skipped. Returns whether one of the keys was found.
fn stream_array_field<'de, D, E>(de: D, keys: &[&str], sink: &mut E) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
    E: ElementSink<'de>,
{
    de.deserialize_map(TopVisitor { keys, sink })
}

struct TopVisitor<'k, 's, E> {
    keys: &'k [&'k str],
    sink: &'s mut E,
}

impl<'de, E: ElementSink<'de>> Visitor<'de> for TopVisitor<'_, '_, E> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a JSON object with a `{}` list",
            self.keys.first().copied().unwrap_or("?")
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if self.keys.contains(&key.as_ref()) {
                map.next_value_seed(ArraySeed {
                    sink: &mut *self.sink,
                })?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct ArraySeed<'s, E> {
    sink: &'s mut E,
}

impl<'de, E: ElementSink<'de>> DeserializeSeed<'de> for ArraySeed<'_, E> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de, E: ElementSink<'de>> Visitor<'de> for ArraySeed<'_, E> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while self.sink.element(&mut seq)? {}
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Google Chat JSON.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Person<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    email: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GroupInfo<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    members: Vec<Person<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserInfo<'a> {
    #[serde(borrow)]
    user: Person<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AttachedFile<'a> {
    #[serde(borrow)]
    original_name: Cow<'a, str>,
    #[serde(borrow)]
    export_name: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Emoji<'a> {
    #[serde(borrow)]
    unicode: Cow<'a, str>,
    custom_emoji: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatReaction<'a> {
    #[serde(borrow)]
    emoji: Emoji<'a>,
    #[serde(borrow)]
    reactor_emails: Vec<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Quoted<'a> {
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    creator: Person<'a>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Gsuite {
    call_data: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Annotation {
    video_call_metadata: Option<IgnoredAny>,
    gsuite_integration_metadata: Option<Gsuite>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    creator: Person<'a>,
    #[serde(borrow)]
    created_date: Cow<'a, str>,
    #[serde(borrow)]
    updated_date: Cow<'a, str>,
    #[serde(borrow)]
    deleted_date: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(borrow)]
    attached_files: Vec<AttachedFile<'a>>,
    #[serde(borrow)]
    reactions: Vec<ChatReaction<'a>>,
    #[serde(borrow)]
    quoted_message_metadata: Option<Quoted<'a>>,
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    message_state: Cow<'a, str>,
    deletion_metadata: Option<IgnoredAny>,
    previous_message_versions: Vec<IgnoredAny>,
    annotations: Vec<Annotation>,
}

/// What every message of one Chat conversation shares.
struct ChatConversation {
    id: String,
    title: Option<String>,
    group: Option<bool>,
    me: Option<String>,
    /// Lower-cased e-mail to display name, for reactions.
    names: HashMap<String, String>,
}

fn parse_chat(src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
    let Some(messages_rel) = unit
        .files
        .iter()
        .find(|f| file_name(src, f) == "messages.json")
    else {
        return Err(ImportError::unreadable(
            &src.display(&unit.label),
            "no messages.json in this Google Chat folder",
        ));
    };
    let shown = src.display(messages_rel);
    let folder = folder_name(src, messages_rel);
    let info_text = match unit
        .files
        .iter()
        .find(|f| file_name(src, f) == "group_info.json")
    {
        Some(rel) => match src.read_string(rel) {
            Ok(t) => Some((rel, t)),
            Err(e) => {
                out.problem(Problem {
                    file: src.display(rel),
                    line: None,
                    reason: format!("cannot read: {e}"),
                });
                None
            }
        },
        None => None,
    };
    let info = match &info_text {
        Some((rel, text)) => serde_json::from_str::<GroupInfo>(text).unwrap_or_else(|e| {
            out.problem(Problem {
                file: src.display(rel),
                line: Some(e.line() as u64),
                reason: format!(
                    "not a readable group_info.json ({e}); conversation title and members unknown"
                ),
            });
            GroupInfo::default()
        }),
        None => GroupInfo::default(),
    };
    let me = find_self_email(src, messages_rel);
    let conv = chat_conversation(&folder, &info, me);

    let text = src
        .read_string(messages_rel)
        .map_err(|e| ImportError::io(&shown, e))?;
    let mut emitter = ChatEmitter {
        out,
        file: shown.clone(),
        text: &text,
        conv: &conv,
        quotes: HashMap::new(),
        seen: 0,
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    match stream_array_field(&mut de, &["messages"], &mut emitter) {
        Ok(true) => Ok(()),
        Ok(false) => Err(ImportError::unreadable(
            &shown,
            "not a Google Chat messages.json: it has no `messages` list",
        )),
        Err(_) if text.trim().is_empty() => Ok(()),
        Err(e) if emitter.seen == 0 => Err(ImportError::unreadable(
            &shown,
            format!("not a readable Google Chat messages.json: {e}"),
        )),
        Err(e) => {
            let seen = emitter.seen;
            emitter.out.problem(Problem {
                file: shown,
                line: Some(e.line() as u64),
                reason: format!("the file is cut off or damaged here ({e}); the {seen} messages before it are kept"),
            });
            Ok(())
        }
    }
}

/// The exporting user's e-mail, from `Google Chat/Users/*/user_info.json`.
fn find_self_email(src: &dyn Source, messages_rel: &Path) -> Option<String> {
    // messages_rel = <chat>/Groups/<conversation>/messages.json
    let chat_root = messages_rel.parent()?.parent()?.parent()?;
    let users = chat_root.join("Users");
    let files = src.files();
    let start = files.partition_point(|p| p.as_path() < users.as_path());
    let rel = files[start..]
        .iter()
        .take_while(|p| p.starts_with(&users))
        .find(|p| p.file_name().is_some_and(|n| n == "user_info.json"))?;
    let text = src.read_string(rel).ok()?;
    let info: UserInfo = serde_json::from_str(&text).ok()?;
    let email = info.user.email.trim().to_lowercase();
    (!email.is_empty()).then_some(email)
}

fn chat_conversation(folder: &str, info: &GroupInfo<'_>, me: Option<String>) -> ChatConversation {
    let mut names = HashMap::new();
    for m in &info.members {
        if !m.email.is_empty() && !m.name.is_empty() {
            names.insert(m.email.to_lowercase(), m.name.to_string());
        }
    }
    let is_space = folder.starts_with("Space ");
    let is_dm = folder.starts_with("DM ");
    let others: Vec<&str> = info
        .members
        .iter()
        .filter(|m| me.as_deref() != Some(m.email.to_lowercase().as_str()))
        .map(|m| {
            if m.name.is_empty() {
                m.email.as_ref()
            } else {
                m.name.as_ref()
            }
        })
        .filter(|n| !n.is_empty())
        .collect();
    let title = if !info.name.trim().is_empty() {
        Some(info.name.trim().to_string())
    } else if !others.is_empty() {
        Some(others.join(", "))
    } else {
        None
    };
    let group = if is_space || info.members.len() > 2 {
        Some(true)
    } else if is_dm || !info.members.is_empty() {
        Some(false)
    } else {
        None
    };
    let id = if folder.is_empty() {
        "google-chat".to_string()
    } else {
        folder.to_string()
    };
    ChatConversation {
        id,
        title,
        group,
        me,
        names,
    }
}

struct ChatEmitter<'a, 'o> {
    out: &'o mut dyn Sink,
    file: PathBuf,
    /// The whole messages.json, to find the line of a bad record.
    text: &'a str,
    conv: &'a ChatConversation,
    /// Hash of (creator e-mail, text) to message id, to resolve quotes that
    /// carry no id.
    quotes: HashMap<u64, String>,
    seen: u64,
}

impl<'de> ElementSink<'de> for ChatEmitter<'_, '_> {
    fn element<A: SeqAccess<'de>>(&mut self, seq: &mut A) -> Result<bool, A::Error> {
        match seq.next_element::<ChatMessage<'de>>()? {
            Some(m) => {
                self.seen += 1;
                self.message(&m);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

fn quote_key(email: &str, text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    email.to_lowercase().hash(&mut h);
    text.trim().hash(&mut h);
    h.finish()
}

impl ChatEmitter<'_, '_> {
    fn problem(&mut self, at: &str, reason: String) {
        let line = line_of(self.text, at);
        self.out.problem(Problem {
            file: self.file.clone(),
            line,
            reason,
        });
    }

    fn message(&mut self, m: &ChatMessage<'_>) {
        let deleted =
            m.message_state.eq_ignore_ascii_case("DELETED") || m.deletion_metadata.is_some();
        let date = if m.created_date.is_empty() && deleted {
            &m.deleted_date
        } else {
            &m.created_date
        };
        let at = match parse_chat_date(date) {
            Ok(at) => at,
            Err(why) => {
                let id = if m.message_id.is_empty() {
                    format!("#{}", self.seen)
                } else {
                    m.message_id.to_string()
                };
                let reason = if date.is_empty() {
                    format!("message {id} has no created_date; skipped")
                } else {
                    format!("message {id}: cannot read the date `{date}`: {why}; skipped")
                };
                self.problem(date, reason);
                return;
            }
        };
        let conv = self.conv;
        let email = m.creator.email.trim().to_lowercase();
        let name = [m.creator.name.trim(), m.creator.email.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("Unknown")
            .to_string();
        let me = conv.me.as_ref().map(|me| !email.is_empty() && *me == email);
        let author = Author {
            name,
            handle: (!email.is_empty()).then(|| email.clone()),
            me,
        };

        let attachments: Vec<Attachment> = m
            .attached_files
            .iter()
            .map(|f| {
                let name = if f.original_name.is_empty() {
                    &f.export_name
                } else {
                    &f.original_name
                };
                Attachment {
                    kind: kind_for_file_name(name).to_string(),
                    name: (!name.is_empty()).then(|| name.to_string()),
                }
            })
            .collect();
        let is_call = m.annotations.iter().any(|a| {
            a.video_call_metadata.is_some()
                || a.gsuite_integration_metadata
                    .as_ref()
                    .is_some_and(|g| g.call_data.is_some())
        });
        let (kind, text) = if deleted {
            (MessageKind::Service, "message deleted".to_string())
        } else if is_call && m.text.trim().is_empty() && attachments.is_empty() {
            (MessageKind::Service, "video call".to_string())
        } else {
            (MessageKind::Message, m.text.to_string())
        };

        let mut raw = RawMessage::new(conv.id.clone(), author, When::Utc(at), text);
        raw.conversation_title = conv.title.clone();
        raw.group = conv.group;
        raw.kind = kind;
        raw.attachments = attachments;
        raw.id = (!m.message_id.is_empty()).then(|| m.message_id.to_string());
        raw.edited = (!m.updated_date.is_empty() && m.updated_date != m.created_date)
            || !m.previous_message_versions.is_empty();
        raw.reactions = m
            .reactions
            .iter()
            .flat_map(|r| {
                let emoji = if !r.emoji.unicode.is_empty() {
                    r.emoji.unicode.to_string()
                } else if r.emoji.custom_emoji.is_some() {
                    ":custom:".to_string()
                } else {
                    "?".to_string()
                };
                r.reactor_emails.iter().map(move |e| (emoji.clone(), e))
            })
            .map(|(emoji, e)| Reaction {
                author: conv
                    .names
                    .get(&e.to_lowercase())
                    .cloned()
                    .unwrap_or_else(|| e.to_string()),
                emoji,
            })
            .collect();
        if let Some(q) = &m.quoted_message_metadata {
            raw.reply_to = if !q.message_id.is_empty() {
                Some(q.message_id.to_string())
            } else {
                self.quotes
                    .get(&quote_key(&q.creator.email, &q.text))
                    .cloned()
            };
        }
        if let Some(id) = &raw.id
            && !m.text.is_empty()
        {
            self.quotes.insert(quote_key(&email, &m.text), id.clone());
        }
        self.out.message(raw);
    }
}

// ---------------------------------------------------------------------------
// Google Chat dates: "Monday, January 7, 2019 at 7:25:08 PM UTC".

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn month_number(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.starts_with(&w) && (w.len() == 3 || *m == w))
        .map(|i| i as u32 + 1)
}

fn is_weekday(word: &str) -> bool {
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    w.len() >= 3
        && WEEKDAYS
            .iter()
            .any(|d| d.starts_with(&w) && (w.len() == 3 || *d == w))
}

/// Parse Google Chat's English `created_date` into UTC, using the zone it names.
fn parse_chat_date(s: &str) -> Result<DateTime<Utc>, String> {
    let (mut month, mut day, mut year, mut time, mut pm) = (None, None, None, None, None);
    let mut zone: Vec<&str> = Vec::new();
    // U+202F (before AM/PM) and U+00A0 are whitespace to split_whitespace.
    for word in s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
    {
        if time.is_none() {
            if let Some(m) = month_number(word) {
                month = Some(m);
            } else if is_weekday(word) || word.eq_ignore_ascii_case("at") {
            } else if word.contains(':') {
                time = Some(parse_clock(word).ok_or_else(|| format!("bad time `{word}`"))?);
            } else if let Ok(n) = word.trim_end_matches('.').parse::<u32>() {
                if n > 31 || day.is_some() {
                    year = Some(n)
                } else {
                    day = Some(n)
                }
            } else {
                return Err(format!("unexpected word `{word}`"));
            }
        } else if pm.is_none() && zone.is_empty() && is_am_pm(word).is_some() {
            pm = is_am_pm(word);
        } else {
            zone.push(word);
        }
    }
    let (Some(month), Some(day), Some(year), Some((h, min, sec))) = (month, day, year, time) else {
        return Err("missing the month, day, year or time".to_string());
    };
    let hour = match pm {
        Some(_) if !(1..=12).contains(&h) => return Err(format!("hour {h} with AM/PM")),
        Some(true) => h % 12 + 12,
        Some(false) => h % 12,
        None => h,
    };
    let zone = zone.join(" ");
    if zone.is_empty() {
        return Err("no time zone".to_string());
    }
    let offset = zone_offset(&zone).ok_or_else(|| format!("unknown time zone `{zone}`"))?;
    let date = i32::try_from(year)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, month, day))
        .ok_or("no such day")?;
    let clock = NaiveTime::from_hms_opt(hour, min, sec).ok_or("no such time")?;
    let local = NaiveDateTime::new(date, clock);
    local
        .and_local_timezone(offset)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| "no such time".to_string())
}

fn is_am_pm(word: &str) -> Option<bool> {
    match word.to_ascii_lowercase().replace('.', "").as_str() {
        "am" => Some(false),
        "pm" => Some(true),
        _ => None,
    }
}

fn parse_clock(word: &str) -> Option<(u32, u32, u32)> {
    let mut parts = word.split(':');
    let h = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let s = parts
        .next()
        .map(|s| s.split('.').next().unwrap_or(s).parse().ok())
        .unwrap_or(Some(0))?;
    parts.next().is_none().then_some((h, m, s))
}

/// The UTC offset of a zone as Google writes it: "UTC", "GMT+2", "GMT-07:00",
/// "+0530", or a common abbreviation ("PST", "CEST"). None when unknown.
fn zone_offset(zone: &str) -> Option<FixedOffset> {
    let z = zone.trim();
    let upper = z.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "UTC" | "GMT" | "UT" | "Z" | "COORDINATED UNIVERSAL TIME"
    ) {
        return FixedOffset::east_opt(0);
    }
    for prefix in ["GMT", "UTC"] {
        if let Some(rest) = upper.strip_prefix(prefix) {
            return signed_offset(rest.trim());
        }
    }
    if upper.starts_with('+') || upper.starts_with('-') {
        return signed_offset(&upper);
    }
    let minutes = match upper.as_str() {
        "PST" => -8 * 60,
        "PDT" | "MST" => -7 * 60,
        "MDT" | "CST" => -6 * 60,
        "CDT" | "EST" => -5 * 60,
        "EDT" | "AST" => -4 * 60,
        "ADT" | "BRT" | "ART" => -3 * 60,
        "NST" => -(3 * 60 + 30),
        "NDT" => -(2 * 60 + 30),
        "AKST" => -9 * 60,
        "AKDT" => -8 * 60,
        "HST" => -10 * 60,
        "WET" => 0,
        "BST" | "WEST" | "CET" | "WAT" => 60,
        "CEST" | "EET" | "SAST" | "CAT" => 2 * 60,
        // IST is India Standard Time in Google's English formats.
        "IST" => 5 * 60 + 30,
        "EEST" | "MSK" | "EAT" => 3 * 60,
        "PKT" => 5 * 60,
        "ICT" | "WIB" => 7 * 60,
        "SGT" | "HKT" | "PHT" | "AWST" => 8 * 60,
        "JST" | "KST" => 9 * 60,
        "ACST" => 9 * 60 + 30,
        "AEST" => 10 * 60,
        "ACDT" => 10 * 60 + 30,
        "AEDT" => 11 * 60,
        "NZST" => 12 * 60,
        "NZDT" => 13 * 60,
        _ => return None,
    };
    FixedOffset::east_opt(minutes * 60)
}

/// "+2", "-07:00", "+0530", "+5:30" (empty means zero, as in plain "GMT").
fn signed_offset(s: &str) -> Option<FixedOffset> {
    if s.is_empty() {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m): (i32, i32) = match rest.split_once(':') {
        Some((h, m)) => (h.parse().ok()?, m.parse().ok()?),
        None if rest.len() <= 2 => (rest.parse().ok()?, 0),
        None if rest.len() == 4 && rest.is_ascii() => {
            (rest[..2].parse().ok()?, rest[2..].parse().ok()?)
        }
        None => return None,
    };
    if h > 14 || m >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

// ---------------------------------------------------------------------------
// Google Voice HTML.

fn parse_voice(src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
    for rel in &unit.files {
        let shown = src.display(rel);
        let html = match src.read_string(rel) {
            Ok(h) => h,
            Err(e) => {
                out.problem(Problem {
                    file: shown,
                    line: None,
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let name = file_name(src, rel);
        let page = VoicePage {
            html: &html,
            file: shown,
            contact: voice_contact(&name),
        };
        if html.contains("class=\"hChatLog") {
            page.texts(out);
        } else if html.contains("class=\"haudio\"") {
            page.call(out);
        } else {
            out.problem(Problem {
                file: page.file,
                line: None,
                reason: "not a Google Voice text or call page (no hChatLog or haudio block)"
                    .to_string(),
            });
        }
    }
    Ok(())
}

/// The contact a Voice page is about: the file name before " - " ("Alan A Milne
/// - Text - 2023-….html" gives "Alan A Milne"); empty for unknown numbers.
fn voice_contact(file_name: &str) -> String {
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    stem.split(" - ").next().unwrap_or("").trim().to_string()
}

struct VoicePage<'h> {
    html: &'h str,
    file: PathBuf,
    contact: String,
}

/// A person as a Voice page writes them.
struct VoicePerson {
    tel: String,
    name: String,
    me: bool,
}

impl VoicePerson {
    fn author(&self) -> Author {
        let name = if self.me {
            "Me".to_string()
        } else if !self.name.is_empty() {
            self.name.clone()
        } else if !self.tel.is_empty() {
            self.tel.clone()
        } else {
            "Unknown".to_string()
        };
        Author {
            name,
            handle: (!self.tel.is_empty()).then(|| self.tel.clone()),
            me: Some(self.me),
        }
    }
}

impl VoicePage<'_> {
    fn problem(&self, out: &mut dyn Sink, offset: usize, reason: String) {
        out.problem(Problem {
            file: self.file.clone(),
            line: Some(line_at(self.html, offset)),
            reason,
        });
    }

    /// A text thread: one record per `<div class="message">`.
    fn texts(&self, out: &mut dyn Sink) {
        let html = self.html;
        let (conversation, title, group) = self.text_conversation();
        let marker = "<div class=\"message\">";
        let starts: Vec<usize> = html.match_indices(marker).map(|(i, _)| i).collect();
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(html.len());
            let chunk = &html[start..end];
            let Some(at) = attr_after(chunk, "class=\"dt\"", "title")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            else {
                self.problem(
                    out,
                    start,
                    "text message without a readable time (abbr class=\"dt\"); skipped".to_string(),
                );
                continue;
            };
            let sender = between(chunk, "<cite class=\"sender vcard\">", "</cite>")
                .map(person)
                .unwrap_or(VoicePerson {
                    tel: String::new(),
                    name: String::new(),
                    me: false,
                });
            let body = between(chunk, "<q>", "</q>")
                .map(html_to_text)
                .unwrap_or_default();
            let after_body = chunk.find("</q>").map_or(chunk, |i| &chunk[i..]);
            let attachments = voice_attachments(after_body);
            let text = if !attachments.is_empty() && (body == "MMS Sent" || body == "MMS Received")
            {
                String::new()
            } else {
                body
            };
            let mut m = RawMessage::new(
                conversation.clone(),
                sender.author(),
                When::Utc(at.with_timezone(&Utc)),
                text,
            );
            m.conversation_title = title.clone();
            m.group = Some(group);
            m.attachments = attachments;
            m.line = Some(line_at(html, start));
            out.message(m);
        }
    }

    /// (id, title, group) of a text thread.
    fn text_conversation(&self) -> (String, Option<String>, bool) {
        if let Some(list) = between(self.html, "<div class=\"participants\">", "</div>") {
            let people: Vec<VoicePerson> = list
                .split("<cite")
                .skip(1)
                .filter_map(|c| c.split("</cite>").next())
                .map(person)
                .collect();
            let mut tels: Vec<&str> = people.iter().map(|p| p.tel.as_str()).collect();
            tels.sort_unstable();
            let names: Vec<String> = people.iter().map(|p| p.author().name).collect();
            return (
                format!("voice:group:{}", tels.join(",")),
                Some(names.join(", ")),
                true,
            );
        }
        let title = (!self.contact.is_empty()).then(|| self.contact.clone());
        (format!("voice:{}", self.contact), title, false)
    }

    /// A call, voicemail or recording page: one service line.
    fn call(&self, out: &mut dyn Sink) {
        let html = self.html;
        let Some(at) = attr_after(html, "class=\"published\"", "title")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            let at = html.find("class=\"haudio\"").unwrap_or(0);
            self.problem(
                out,
                at,
                "call page without a readable time (abbr class=\"published\"); skipped".to_string(),
            );
            return;
        };
        let other = between(html, "<div class=\"contributor vcard\">", "</div>").map(person);
        let what = between(html, "<title>", "</title>")
            .map(html_to_text)
            .unwrap_or_default();
        let what = what.split_whitespace().collect::<Vec<_>>().join(" ");
        let duration = between(html, "class=\"duration\"", "</abbr>")
            .and_then(|d| between(d, "(", ")"))
            .map(str::to_string);
        let transcript = between(html, "<span class=\"full-text\">", "</span>").map(html_to_text);
        let mut text = if what.is_empty() {
            "call".to_string()
        } else {
            what.clone()
        };
        if let Some(d) = &duration {
            text.push_str(&format!(" ({d})"));
        }
        if let Some(t) = transcript.filter(|t| !t.is_empty()) {
            text.push_str(": ");
            text.push_str(&t);
        }
        let placed = what.starts_with("Placed");
        let author = if placed {
            Author {
                name: "Me".to_string(),
                handle: None,
                me: Some(true),
            }
        } else {
            other.as_ref().map(VoicePerson::author).unwrap_or(Author {
                name: "Unknown".into(),
                handle: None,
                me: None,
            })
        };
        let contact = if !self.contact.is_empty() {
            self.contact.clone()
        } else {
            other.as_ref().map(|p| p.tel.clone()).unwrap_or_default()
        };
        let mut m = RawMessage::new(
            format!("voice:{contact}"),
            author,
            When::Utc(at.with_timezone(&Utc)),
            text,
        );
        m.conversation_title = (!contact.is_empty()).then_some(contact);
        m.group = Some(false);
        m.kind = MessageKind::Service;
        m.attachments = attr_after(html, "<audio", "src")
            .map(|src| {
                vec![Attachment {
                    kind: "audio".to_string(),
                    name: Some(unescape(src).into_owned()),
                }]
            })
            .unwrap_or_default();
        m.line = html.find("class=\"haudio\"").map(|i| line_at(html, i));
        out.message(m);
    }
}

/// Text between the first `open` and the next `close` after it.
fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

/// The value of attribute `attr` in the first tag at or after `marker`.
fn attr_after<'a>(s: &'a str, marker: &str, attr: &str) -> Option<&'a str> {
    let from = s.find(marker)?;
    let tag_start = if marker.starts_with('<') {
        from
    } else {
        s[..from].rfind('<').unwrap_or(from)
    };
    let tag_end = from + s[from..].find('>')?;
    let tag = &s[tag_start..tag_end];
    let key = format!(" {attr}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// A `<cite class="sender vcard">` (or contributor) block: phone number and name.
fn person(block: &str) -> VoicePerson {
    let tel = attr_after(block, "class=\"tel\"", "href")
        .map(|h| h.trim_start_matches("tel:").to_string())
        .unwrap_or_default();
    let me = block.contains("<abbr class=\"fn\"")
        && between(block, "<abbr class=\"fn\"", "</abbr>").is_some_and(|a| a.ends_with(">Me"));
    let name = between(block, "<span class=\"fn\">", "</span>")
        .map(html_to_text)
        .unwrap_or_default();
    VoicePerson {
        tel,
        name: name.trim().to_string(),
        me,
    }
}

fn voice_attachments(s: &str) -> Vec<Attachment> {
    let mut found: Vec<(usize, Attachment)> = Vec::new();
    let mut collect = |marker: &str, attr: &str, kind: &str| {
        for (i, _) in s.match_indices(marker) {
            if let Some(v) = attr_after(&s[i..], marker, attr) {
                found.push((
                    i,
                    Attachment {
                        kind: kind.to_string(),
                        name: Some(unescape(v).into_owned()),
                    },
                ));
            }
        }
    };
    collect("<img ", "src", "image");
    collect("<a class=\"vcard\"", "href", "contact");
    collect("<audio ", "src", "audio");
    collect("<a class=\"video\"", "href", "video");
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, a)| a).collect()
}

/// Inline HTML to text: `<br>` is a newline, other tags go, entities are decoded.
fn html_to_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(lt) = rest.find('<') {
        out.push_str(&unescape(&rest[..lt]));
        let Some(gt) = rest[lt..].find('>') else {
            out.push_str(&unescape(&rest[lt..]));
            return out;
        };
        let tag = &rest[lt + 1..lt + gt];
        if tag.trim_end_matches('/').trim().eq_ignore_ascii_case("br") {
            out.push('\n');
        }
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(&unescape(rest));
    out
}

/// Decode HTML character references (`&amp;`, `&#39;`, `&#x27;`, `&#8239;`).
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let name = &after[..semi];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let code = if let Some(hex) =
                        name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        name.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    code.and_then(char::from_u32)
                }
            };
            ch.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, read_with};
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/google_chat");

    fn fixture(rel: &str) -> PathBuf {
        Path::new(DIR).join(rel)
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> When {
        When::Utc(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    }

    fn by_conversation(c: &Collect) -> BTreeMap<&str, Vec<&RawMessage>> {
        let mut map: BTreeMap<&str, Vec<&RawMessage>> = BTreeMap::new();
        for m in &c.messages {
            map.entry(m.conversation.as_str()).or_default().push(m);
        }
        map
    }

    #[test]
    fn chat_takeout_counts() {
        let (units, c) = read_with(&GoogleChat, &fixture("Takeout/Google Chat"), false).unwrap();
        assert_eq!(units.len(), 4);
        assert!(units.iter().all(|u| u.files.len() == 2), "{units:?}");
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 67);
        assert_eq!(c.people_messages().count(), 67);
        let convs = by_conversation(&c);
        let counts: Vec<(&str, usize)> = convs.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(
            counts,
            vec![
                ("DM 1pRI-QAAAAE", 51),
                ("DM 2k64eoAAAAE", 2),
                ("Space AAAATeQdkhI", 9),
                ("Space AAAAdvGdRgs", 5)
            ]
        );
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            vec![
                "Alan A Milne",
                "Albert Einstein",
                "F Scott Fitzgerald",
                "Maria S Curie",
                "Søren Aabye Kierkegaard"
            ]
        );
        let attachments: usize = c.messages.iter().map(|m| m.attachments.len()).sum();
        assert_eq!(attachments, 13);

        let first = &convs["Space AAAAdvGdRgs"][0];
        assert_eq!(first.at, utc(2019, 1, 7, 19, 25, 8));
        assert_eq!(first.conversation_title.as_deref(), Some("Group Chat"));
        assert_eq!(first.group, Some(true));
        assert_eq!(
            first.author.handle.as_deref(),
            Some("mssc@science.example.org")
        );
        assert_eq!(
            first.id.as_deref(),
            Some("AAAAdvGdRgs/HHyWm9TBetY/HHyWm9TBetY")
        );
        assert_eq!(first.author.me, None, "no user_info.json in this takeout");
        let cat = convs["Space AAAAdvGdRgs"][4];
        assert_eq!(cat.text, "");
        assert_eq!(
            cat.attachments,
            vec![Attachment {
                kind: "image".into(),
                name: Some("Cat_Hilarious.png".into())
            }]
        );

        // A two-member Space is still a group; a DM is titled by its members.
        assert_eq!(convs["Space AAAATeQdkhI"][0].group, Some(true));
        let dm = convs["DM 2k64eoAAAAE"][0];
        assert_eq!(dm.group, Some(false));
        assert_eq!(
            dm.conversation_title.as_deref(),
            Some("Albert Einstein, Maria S Curie")
        );
        assert_eq!(dm.at, utc(2014, 8, 25, 17, 29, 21));
        // 12:51:08 AM is just after midnight.
        assert_eq!(convs["DM 1pRI-QAAAAE"][0].at, utc(2015, 4, 15, 0, 51, 8));
        // Multi-line bodies survive.
        let multi = convs["Space AAAATeQdkhI"][5];
        assert!(
            multi.text.starts_with("\"\n\n This Tweet"),
            "{:?}",
            multi.text
        );
    }

    #[test]
    fn chat_user_info_sets_me_and_dm_titles() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Google Chat");
        let conv = root.join("Groups/DM 2k64eoAAAAE");
        std::fs::create_dir_all(&conv).unwrap();
        std::fs::create_dir_all(root.join("Users/User 1234")).unwrap();
        for f in ["messages.json", "group_info.json"] {
            std::fs::copy(
                fixture("Takeout/Google Chat/Groups/DM 2k64eoAAAAE").join(f),
                conv.join(f),
            )
            .unwrap();
        }
        std::fs::write(
            root.join("Users/User 1234/user_info.json"),
            r#"{"user": {"name": "Maria S Curie", "email": "MSSC@science.example.org", "user_type": "Human"}}"#,
        )
        .unwrap();
        let (_, c) = read_with(&GoogleChat, &root, false).unwrap();
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].author.me, Some(true));
        assert_eq!(c.messages[1].author.me, Some(false));
        assert_eq!(
            c.messages[0].conversation_title.as_deref(),
            Some("Albert Einstein")
        );
    }

    #[test]
    fn chat_reactions_quotes_edits_deletions_and_zones() {
        let json = r#"{"messages": [
          {"creator": {"name": "Ann", "email": "ann@example.com"}, "created_date": "Monday, March 4, 2024 at 9:00:00 AM PST",
           "text": "lunch?", "message_id": "S/t1/t1",
           "reactions": [{"emoji": {"unicode": "👍"}, "reactor_emails": ["bob@example.com", "zed@example.com"]}]},
          {"creator": {"name": "Bob", "email": "bob@example.com"}, "created_date": "Monday, March 4, 2024 at 18:05:00 GMT+2",
           "text": "yes", "message_id": "S/t1/m2", "updated_date": "Monday, March 4, 2024 at 18:06:00 GMT+2",
           "quoted_message_metadata": {"creator": {"name": "Ann", "email": "ann@example.com"}, "text": "lunch?"}},
          {"creator": {"name": "Ann", "email": "ann@example.com"}, "message_state": "DELETED",
           "deleted_date": "Monday, March 4, 2024 at 10:00:00 AM UTC", "deletion_metadata": {"deletion_type": "CREATOR"}},
          {"creator": {"name": "Ann", "email": "ann@example.com"}, "created_date": "someday", "text": "x"},
          {"creator": {"name": "Ann", "email": "ann@example.com"}, "created_date": "Monday, March 4, 2024 at 9:00:00 AM XYZT", "text": "y"}
        ]}"#;
        let info = r#"{"name": "Lunch", "members": [{"name": "Ann", "email": "ann@example.com"}, {"name": "Bob", "email": "bob@example.com"}]}"#;
        let dir = tempfile::tempdir().unwrap();
        let conv = dir.path().join("Groups/Space AAAA");
        std::fs::create_dir_all(&conv).unwrap();
        std::fs::write(conv.join("messages.json"), json).unwrap();
        std::fs::write(conv.join("group_info.json"), info).unwrap();
        let (_, c) = read_with(&GoogleChat, dir.path(), false).unwrap();
        assert_eq!(c.messages.len(), 3);
        let ann = &c.messages[0];
        assert_eq!(ann.at, utc(2024, 3, 4, 17, 0, 0), "PST is UTC-8");
        assert_eq!(
            ann.reactions,
            vec![
                Reaction {
                    author: "Bob".into(),
                    emoji: "👍".into()
                },
                Reaction {
                    author: "zed@example.com".into(),
                    emoji: "👍".into()
                }
            ]
        );
        let bob = &c.messages[1];
        assert_eq!(bob.at, utc(2024, 3, 4, 16, 5, 0), "GMT+2");
        assert!(bob.edited);
        assert_eq!(bob.reply_to.as_deref(), Some("S/t1/t1"));
        assert_eq!(c.messages[2].kind, MessageKind::Service);
        assert_eq!(c.messages[2].at, utc(2024, 3, 4, 10, 0, 0));
        assert_eq!(c.problems.len(), 2);
        assert!(
            c.problems[0].reason.contains("`someday`"),
            "{}",
            c.problems[0].reason
        );
        assert_eq!(c.problems[0].line, Some(10));
        assert!(
            c.problems[1].reason.contains("unknown time zone `XYZT`"),
            "{}",
            c.problems[1].reason
        );
        assert_eq!(c.problems[1].line, Some(11));
        assert!(c.problems[1].file.ends_with("messages.json"));
    }

    #[test]
    fn chat_dates() {
        let nnbsp = "Wednesday, April 15, 2015 at 12:51:08\u{202f}PM UTC";
        assert_eq!(
            When::Utc(parse_chat_date(nnbsp).unwrap()),
            utc(2015, 4, 15, 12, 51, 8)
        );
        let cases = [
            (
                "Monday, January 7, 2019 at 7:25:08 PM UTC",
                utc(2019, 1, 7, 19, 25, 8),
            ),
            (
                "Monday, January 7, 2019 at 12:00:00 AM GMT-07:00",
                utc(2019, 1, 7, 7, 0, 0),
            ),
            (
                "Monday, 7 January 2019 at 19:25:08 GMT+05:30",
                utc(2019, 1, 7, 13, 55, 8),
            ),
            (
                "Monday, January 7, 2019 at 7:25:08 PM CET",
                utc(2019, 1, 7, 18, 25, 8),
            ),
            (
                "Sunday, July 7, 2019 at 7:25:08 PM EDT",
                utc(2019, 7, 7, 23, 25, 8),
            ),
            (
                "Sunday, July 7, 2019 at 7:25:08 PM +0200",
                utc(2019, 7, 7, 17, 25, 8),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(When::Utc(parse_chat_date(s).unwrap()), want, "{s}");
        }
        for bad in [
            "",
            "Monday",
            "Monday, January 7, 2019 at 7:25:08 PM",
            "February 30, 2019 at 1:00:00 AM UTC",
            "January 7, 2019 at 13:00:00 PM UTC",
        ] {
            assert!(parse_chat_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chat_truncated_file_keeps_earlier_messages() {
        let text = std::fs::read_to_string(fixture(
            "Takeout/Google Chat/Groups/DM 1pRI-QAAAAE/messages.json",
        ))
        .unwrap();
        let cut = text.find("Per $1000").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let conv = dir.path().join("DM 1pRI-QAAAAE");
        std::fs::create_dir_all(&conv).unwrap();
        std::fs::write(conv.join("messages.json"), &text[..cut]).unwrap();
        let (units, c) = read_with(&GoogleChat, dir.path(), false).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(c.messages.len(), 1);
        assert_eq!(c.problems.len(), 1);
        assert_eq!(c.problems[0].line, Some(21));
        assert!(c.problems[0].reason.contains("cut off"));
        assert!(c.problems[0].file.ends_with("DM 1pRI-QAAAAE/messages.json"));
    }

    #[test]
    fn chat_claims_only_chat_folders_or_chat_content() {
        let dir = tempfile::tempdir().unwrap();
        // A Discord-like messages.json is left alone.
        std::fs::create_dir_all(dir.path().join("messages/c123")).unwrap();
        std::fs::write(
            dir.path().join("messages/c123/messages.json"),
            r#"[{"ID": 1, "Timestamp": "2020"}]"#,
        )
        .unwrap();
        let (units, _) = read_with(&GoogleChat, dir.path(), true).unwrap();
        assert!(units.is_empty());
        // Google Chat content in an oddly named folder is claimed by its keys.
        std::fs::create_dir_all(dir.path().join("chats")).unwrap();
        std::fs::copy(
            fixture("Takeout/Google Chat/Groups/DM 2k64eoAAAAE/messages.json"),
            dir.path().join("chats/messages.json"),
        )
        .unwrap();
        let (units, c) = read_with(&GoogleChat, dir.path(), false).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].conversation, "chats");
    }

    #[test]
    fn voice_texts_and_calls() {
        let (units, c) = read_with(&GoogleChat, &fixture("Takeout/Voice"), false).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].files.len(), 20);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.people_messages().count(), 66);
        assert_eq!(
            c.messages
                .iter()
                .filter(|m| m.kind == MessageKind::Service)
                .count(),
            10
        );
        let convs = by_conversation(&c);
        let counts: Vec<(&str, usize)> = convs.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(
            counts,
            vec![
                ("voice:", 1),
                ("voice:+17323215555", 2),
                ("voice:+17323216666", 1),
                ("voice:+17323217777", 5),
                ("voice:+17323218888", 2),
                ("voice:17323211010", 1),
                ("voice:Agatha M Christie", 4),
                ("voice:Alan A Milne", 3),
                ("voice:Albert Einstein", 1),
                ("voice:Edson Arantes do Nascimento", 24),
                (
                    "voice:group:+12125550001,+12125550002,+12125550003,+12125550004,+12125550005",
                    20
                ),
                ("voice:group:+17323211313,+17323212222", 3),
                ("voice:group:+17323211414,+17323212222,+17323214444", 8),
                ("voice:group:+17323211515,+17323211717", 1),
            ]
        );
        let alan = &convs["voice:Alan A Milne"];
        assert_eq!(alan[0].text, "");
        assert_eq!(alan[0].author.me, Some(true));
        assert_eq!(alan[0].author.handle.as_deref(), Some("+17323210011"));
        let sent = DateTime::parse_from_rfc3339("2023-09-29T23:40:59.923Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(alan[0].at, When::Utc(sent));
        assert_eq!(alan[0].attachments[0].kind, "image");
        assert_eq!(alan[1].text, "A couple of photos");
        let group = &convs["voice:group:+17323211313,+17323212222"];
        assert_eq!(
            group[0].conversation_title.as_deref(),
            Some("Rosalind E Franklin, Alan A Milne")
        );
        assert_eq!(group[0].group, Some(true));
        assert_eq!(group[0].author.name, "Rosalind E Franklin");
        assert_eq!(group[0].author.me, Some(false));
        assert!(
            group[0]
                .text
                .starts_with("Hi guys, I got this message from Søren.\n\nHi Rosalind"),
            "{}",
            group[0].text
        );
        assert_eq!(
            group[1].text,
            "we're all good ... got the text yesterday; just slow in responding (there's a pandemic on)"
        );
        assert_eq!(
            group[2].attachments,
            vec![Attachment {
                kind: "contact".into(),
                name: Some("Group Conversation - 2021-07-13T21_25_26Z-3-1".into())
            }]
        );
        let hans = &convs["voice:+17323217777"];
        assert_eq!(hans[1].author.name, "+17323217777");
        let edson = &convs["voice:Edson Arantes do Nascimento"];
        let vm = edson
            .iter()
            .find(|m| m.kind == MessageKind::Service)
            .unwrap();
        assert_eq!(
            vm.text,
            "Voicemail from Edson Arantes do Nascimento (00:00:22): Hi, it's me. I'm just calling to say that I'm coming home."
        );
        assert_eq!(vm.at, utc(2014, 5, 17, 2, 54, 27));
        assert_eq!(vm.attachments[0].kind, "audio");
        let placed = &convs["voice:+17323216666"][0];
        assert_eq!(placed.text, "Placed call to (00:00:00)");
        let recorded = &convs["voice:Albert Einstein"][0];
        assert_eq!(
            recorded.text,
            "Recorded call with Albert Einstein (00:29:46)"
        );
        assert_eq!(recorded.author.name, "Albert Einstein");
        assert_eq!(recorded.author.handle.as_deref(), Some("+17323213333"));
        assert_eq!(placed.author.me, Some(true));
        let authors: BTreeSet<&str> = c.authors();
        assert!(
            authors.contains("Me") && authors.contains("Debbie One"),
            "{authors:?}"
        );
    }

    #[test]
    fn voice_bad_page_gives_problems_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("Voice/Calls");
        std::fs::create_dir_all(&calls).unwrap();
        let page = "<html><body><div class=\"hChatLog hfeed\">\n<div class=\"message\"><abbr class=\"dt\" title=\"yesterday\">x</abbr>\n<q>lost</q></div>\n<div class=\"message\"><abbr class=\"dt\" title=\"2021-01-22T01:33:43.000-05:00\">x</abbr>:\n<cite class=\"sender vcard\"><a class=\"tel\" href=\"tel:+15550100\"><span class=\"fn\">Bo &amp; Co</span></a></cite>:\n<q>ok &#8239;<br>fine</q></div></div></body></html>";
        std::fs::write(calls.join("Bo - Text - 2021-01-22T06_33_43Z.html"), page).unwrap();
        std::fs::write(calls.join("Weird - 2021.html"), "<html>nothing</html>").unwrap();
        let (_, c) = read_with(&GoogleChat, dir.path(), false).unwrap();
        assert_eq!(c.messages.len(), 1);
        assert_eq!(c.messages[0].text, "ok \u{202f}\nfine");
        assert_eq!(c.messages[0].author.name, "Bo & Co");
        assert_eq!(c.messages[0].at, utc(2021, 1, 22, 6, 33, 43));
        assert_eq!(c.messages[0].line, Some(4));
        assert_eq!(c.problems.len(), 2);
        assert_eq!(c.problems[0].line, Some(2));
        assert!(c.problems[1].reason.contains("not a Google Voice"));
    }

    fn parse_chat_bytes(bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let conv = ChatConversation {
            id: "x".into(),
            title: None,
            group: None,
            me: Some("a@b".into()),
            names: HashMap::new(),
        };
        let mut out = Collect::default();
        let mut em = ChatEmitter {
            out: &mut out,
            file: PathBuf::from("x"),
            text: &text,
            conv: &conv,
            quotes: HashMap::new(),
            seen: 0,
        };
        let mut de = serde_json::Deserializer::from_str(&text);
        let _ = stream_array_field(&mut de, &["messages"], &mut em);
    }

    fn parse_voice_str(html: &str) {
        let mut out = Collect::default();
        let page = VoicePage {
            html,
            file: PathBuf::from("x"),
            contact: "c".into(),
        };
        page.texts(&mut out);
        page.call(&mut out);
    }

    proptest! {
        #[test]
        fn random_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024), s in ".{0,200}") {
            parse_chat_bytes(&bytes);
            parse_voice_str(&String::from_utf8_lossy(&bytes));
            parse_voice_str(&s);
            let _ = parse_chat_date(&s);
            let _ = unescape(&s);
        }

        #[test]
        fn mutated_fixtures_never_panic(pos in 0usize..6000, len in 0usize..32, ins in ".{0,4}") {
            let chat = std::fs::read_to_string(fixture("Takeout/Google Chat/Groups/Space AAAATeQdkhI/messages.json")).unwrap();
            let voice = std::fs::read_to_string(fixture("Takeout/Voice/Calls/Group Conversation - 2021-07-13T21_25_26Z.html")).unwrap();
            for text in [chat, voice] {
                let mut bytes = text.into_bytes();
                let start = pos.min(bytes.len());
                let end = (start + len).min(bytes.len());
                bytes.splice(start..end, ins.bytes());
                parse_chat_bytes(&bytes);
                parse_voice_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}
