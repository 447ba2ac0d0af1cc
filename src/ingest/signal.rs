//! Signal Android backups turned into CSV by `signalbackup-tools --exportcsv`.
//!
//! The format (sources: signalbackup-tools `signalbackup/exportcsv.cc` and
//! `sqlitedb/valueasstring.cc`, Signal-Android `MessageTable`, `MessageTypes`,
//! `RecipientTable`, `ThreadTable`, `ReactionTable`, `MentionTable`; collected in
//! `/work/shared/fixtures/signal/SCHEMA_NOTES.md`):
//!
//! - One CSV per SQLite table, `SELECT * FROM <table>`, the file name chosen by
//!   the user (`--exportcsv message=signal.csv,recipient=recipient.csv,...`).
//!   The message table is `signal.csv` (Astrabot's name) or `message.csv`;
//!   databases from before 2023 have `sms.csv` + `mms.csv` instead.
//! - The header holds the column names in the database's physical order, and
//!   migrations append columns, so every column is found by NAME. Old and new
//!   names of the same column are aliases (`e164`/`phone`, `aci`/`uuid`,
//!   `type`/`group_type`, `recipient_id`/`thread_recipient_id`, ...).
//! - Fields are quoted only when needed, `""` escapes a quote, bodies can span
//!   lines, NULL is an empty field, BLOBs are base64, times are epoch millis.
//! - Two generations of the message table: the current one says who wrote a row
//!   in `from_recipient_id` (and to whom in `to_recipient_id`); the older one has
//!   one `recipient_id`, which is the sender of incoming rows but the
//!   *destination* of outgoing ones. Direction always comes from the `type`
//!   bitmask: `type & 0x1F` is the base type (20 inbox, 21..26 outgoing, 1..18
//!   calls and system events); high bits flag group updates, timer changes,
//!   safety-number changes and so on.
//! - Not messages, skipped silently: stories (`story_type` != 0, `parent_story_id`
//!   above 0, or a thread whose recipient is a story distribution list), scheduled
//!   rows not yet sent (`scheduled_date` > 0), `remote_deleted` = 1, view-once
//!   media, and earlier revisions of edited messages (`latest_revision_id` set).
//!   The latest revision has `original_message_id` set: it is marked edited and
//!   also gets the reactions left on the first revision.
//! - `quote_id` is the `date_sent` of the quoted message, so with `date_sent`
//!   as the message id it is directly the `reply_to`.
//! - Mentions are U+FFFC placeholders in the body; who is mentioned is in the
//!   `mention` table (`range_start` in UTF-16 units) or, failing that, in the
//!   base64 `message_ranges` protobuf (BodyRangeList, `mentionUuid` = the ACI).
//!   A placeholder nobody can be found for becomes `@Unknown`.
//! - Names come from the `recipient` table: nickname, then system contact name,
//!   then profile name, then the group title (`groups.title`), then the phone
//!   number (`e164`, also the handle), username, e-mail, and "Unknown".
//!
//! The small tables (recipients, threads, groups, reactions, mentions,
//! attachments) are loaded into maps first; the message table is streamed.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use csv::ByteRecord;

use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Reaction,
    Sink, Source, Unit, When,
};

/// Reads the CSV folder written by `signalbackup-tools --exportcsv`.
pub struct Signal;

// ---------------------------------------------------------------- tables ----

/// What a CSV file of the export holds, by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// `message`/`signal` (tag 0), `sms` (tag 0, old) or `mms` (tag 1, old).
    Message {
        mms: bool,
        sms: bool,
    },
    Recipient,
    Thread,
    Reaction,
    Groups,
    Mention,
    Attachment,
    Other,
}

fn table_of(name: &str) -> Table {
    let lower = name.to_ascii_lowercase();
    let Some(stem) = lower.strip_suffix(".csv") else {
        return Table::Other;
    };
    match stem {
        "signal" | "message" => Table::Message {
            mms: false,
            sms: false,
        },
        "sms" => Table::Message {
            mms: false,
            sms: true,
        },
        "mms" => Table::Message {
            mms: true,
            sms: false,
        },
        "recipient" => Table::Recipient,
        "thread" => Table::Thread,
        "reaction" => Table::Reaction,
        "groups" => Table::Groups,
        "mention" => Table::Mention,
        "attachment" | "part" => Table::Attachment,
        _ => Table::Other,
    }
}

/// The file name of `rel`; for a single-file source (empty `rel`) the root's.
fn file_name(src: &dyn Source, rel: &Path) -> String {
    let p = if rel.as_os_str().is_empty() {
        src.root()
    } else {
        rel
    };
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether the first line of `rel` is the header of a Signal message table.
fn looks_like_message_table(src: &dyn Source, rel: &Path) -> bool {
    let Ok(head) = src.head(rel, 4096) else {
        return false;
    };
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(first);
    let cols: Vec<&str> = text
        .trim_start_matches('\u{feff}')
        .trim_end()
        .split(',')
        .collect();
    let has = |n: &str| cols.contains(&n);
    has("thread_id")
        && has("body")
        && (has("date_sent") || has("date"))
        && (has("type") || has("msg_box"))
}

// ------------------------------------------------------------- csv access ----

/// An open CSV table with its header, read row by row.
struct CsvTable<'a> {
    reader: csv::Reader<Box<dyn Read + 'a>>,
    header: ByteRecord,
    file: PathBuf,
}

impl<'a> CsvTable<'a> {
    fn open(src: &'a dyn Source, rel: &Path) -> Result<CsvTable<'a>, ImportError> {
        let file = src.display(rel);
        let input = src.open(rel).map_err(|e| ImportError::io(&file, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(input);
        let mut header = reader
            .byte_headers()
            .map_err(|e| csv_error(&file, e))?
            .clone();
        if let Some(first) = header.get(0) {
            // signalbackup-tools writes no BOM, but a re-saved file may have one.
            if let Some(stripped) = first.strip_prefix(b"\xEF\xBB\xBF".as_slice()) {
                let mut fixed = ByteRecord::new();
                fixed.push_field(stripped);
                header.iter().skip(1).for_each(|f| fixed.push_field(f));
                header = fixed;
            }
        }
        Ok(CsvTable {
            reader,
            header,
            file,
        })
    }

    /// The index of the first of `names` the header has.
    fn col(&self, names: &[&str]) -> Option<usize> {
        names
            .iter()
            .find_map(|n| self.header.iter().position(|h| h == n.as_bytes()))
    }

    /// Calls `f` with every well-formed row and its line; reports broken rows.
    fn rows(
        &mut self,
        out: &mut dyn Sink,
        mut f: impl FnMut(&ByteRecord, u64, &mut dyn Sink),
    ) -> Result<(), ImportError> {
        let width = self.header.len();
        let mut rec = ByteRecord::new();
        loop {
            match self.reader.read_byte_record(&mut rec) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => {
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        return Err(csv_error(&self.file, e));
                    }
                    let line = e.position().map(|p| p.line());
                    out.problem(Problem {
                        file: self.file.clone(),
                        line,
                        reason: format!("unreadable CSV row: {e}"),
                    });
                    continue;
                }
            }
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            if rec.len() != width {
                out.problem(Problem {
                    file: self.file.clone(),
                    line: Some(line),
                    reason: format!(
                        "row has {} fields but the header has {width} (truncated file or broken quoting)",
                        rec.len()
                    ),
                });
                continue;
            }
            f(&rec, line, &mut *out);
        }
    }
}

fn csv_error(file: &Path, e: csv::Error) -> ImportError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ImportError::io(file, io),
        other => ImportError::unreadable(file, format!("not a readable CSV file: {other:?}")),
    }
}

/// The raw bytes of a column, empty when the column is missing.
fn field(rec: &ByteRecord, col: Option<usize>) -> &[u8] {
    col.and_then(|i| rec.get(i)).unwrap_or_default()
}

fn int(rec: &ByteRecord, col: Option<usize>) -> Option<i64> {
    std::str::from_utf8(field(rec, col))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A text column, None when empty (NULL and '' look the same in the export).
fn text(rec: &ByteRecord, col: Option<usize>) -> Option<String> {
    let raw = field(rec, col);
    let s = String::from_utf8_lossy(raw);
    let t = s.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

fn show(raw: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(raw)
}

// -------------------------------------------------------------- recipients ----

/// A row of the recipient table, resolved to what twin needs.
#[derive(Debug, Clone)]
struct Person {
    name: String,
    handle: Option<String>,
    /// The stable conversation id when this recipient is a thread's other side.
    key: String,
    group: bool,
    /// A story distribution list (type 4): its threads hold only stories.
    story_list: bool,
}

#[derive(Default)]
struct Lookups {
    people: HashMap<i64, Person>,
    /// ACI (lowercase) -> recipient id, for mentions in `message_ranges`.
    by_aci: HashMap<String, i64>,
    /// thread id -> recipient id of the thread.
    threads: HashMap<i64, i64>,
    /// (is_mms, message id) -> reactions, in file order.
    reactions: HashMap<(bool, i64), Vec<Reaction>>,
    /// message id -> (range_start, recipient id) from the mention table.
    mentions: HashMap<i64, Vec<(i64, i64)>>,
    attachments: HashMap<i64, Vec<Attachment>>,
}

impl Lookups {
    fn author(&self, id: Option<i64>, me: Option<bool>) -> Author {
        match id.and_then(|i| self.people.get(&i)) {
            Some(p) => Author {
                name: p.name.clone(),
                handle: p.handle.clone(),
                me,
            },
            None => Author {
                name: id
                    .map(|i| format!("Recipient {i}"))
                    .unwrap_or_else(|| "Unknown".to_string()),
                handle: None,
                me,
            },
        }
    }

    fn name(&self, id: i64) -> String {
        self.people
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("Recipient {id}"))
    }
}

/// Group titles from the `groups` table, by recipient id and by group id.
#[derive(Default)]
struct GroupTitles {
    by_recipient: HashMap<i64, String>,
    by_group_id: HashMap<String, String>,
}

fn load_groups(
    src: &dyn Source,
    rel: &Path,
    out: &mut dyn Sink,
) -> Result<GroupTitles, ImportError> {
    let mut t = CsvTable::open(src, rel)?;
    let (rid, gid, title) = (
        t.col(&["recipient_id"]),
        t.col(&["group_id"]),
        t.col(&["title"]),
    );
    let mut titles = GroupTitles::default();
    t.rows(out, |rec, _, _| {
        let Some(name) = text(rec, title) else { return };
        if let Some(r) = int(rec, rid) {
            titles.by_recipient.insert(r, name.clone());
        }
        if let Some(g) = text(rec, gid) {
            titles.by_group_id.insert(g, name);
        }
    })?;
    Ok(titles)
}

/// "Given Family" from the parts that are present.
fn join_names(given: Option<String>, family: Option<String>) -> Option<String> {
    match (given, family) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (g, f) => g.or(f),
    }
}

fn load_recipients(
    src: &dyn Source,
    rel: &Path,
    titles: &GroupTitles,
    look: &mut Lookups,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let mut t = CsvTable::open(src, rel)?;
    let file = t.file.clone();
    let id = t.col(&["_id"]);
    let kind = t.col(&["type", "group_type"]);
    let e164 = t.col(&["e164", "phone"]);
    let aci = t.col(&["aci", "uuid"]);
    let username = t.col(&["username"]);
    let email = t.col(&["email"]);
    let group_id = t.col(&["group_id"]);
    let dist = t.col(&["distribution_list_id"]);
    let nick = (
        t.col(&["nickname_joined_name"]),
        t.col(&["nickname_given_name"]),
        t.col(&["nickname_family_name"]),
    );
    let system = (
        t.col(&["system_joined_name", "system_display_name"]),
        t.col(&["system_given_name"]),
        t.col(&["system_family_name"]),
    );
    let profile = (
        t.col(&["profile_joined_name"]),
        t.col(&["profile_given_name", "signal_profile_name"]),
        t.col(&["profile_family_name"]),
    );
    if id.is_none() {
        out.problem(Problem {
            file,
            line: Some(1),
            reason: "the recipient table has no `_id` column; names are unknown".into(),
        });
        return Ok(());
    }
    let full =
        |rec: &ByteRecord,
         (joined, given, family): (Option<usize>, Option<usize>, Option<usize>)| {
            text(rec, joined).or_else(|| join_names(text(rec, given), text(rec, family)))
        };
    t.rows(out, |rec, line, out| {
        let Some(rid) = int(rec, id) else {
            out.problem(Problem {
                file: file.clone(),
                line: Some(line),
                reason: format!(
                    "recipient `_id` is not a number: {:?}",
                    show(field(rec, id))
                ),
            });
            return;
        };
        let rtype = int(rec, kind).unwrap_or(0);
        let gid = text(rec, group_id);
        let group = (1..=3).contains(&rtype) || gid.is_some();
        let story_list = rtype == 4 || text(rec, dist).is_some_and(|d| d != "0");
        let phone = text(rec, e164);
        let uuid = text(rec, aci);
        let user = text(rec, username);
        let title = titles
            .by_recipient
            .get(&rid)
            .or_else(|| gid.as_ref().and_then(|g| titles.by_group_id.get(g)));
        let name = full(rec, nick)
            .or_else(|| full(rec, system))
            .or_else(|| full(rec, profile))
            .or_else(|| title.cloned())
            .or_else(|| phone.clone())
            .or_else(|| user.clone())
            .or_else(|| text(rec, email))
            .unwrap_or_else(|| {
                if story_list {
                    "My Story".to_string()
                } else {
                    "Unknown".to_string()
                }
            });
        let handle = if group {
            gid.clone()
        } else {
            phone
                .clone()
                .or_else(|| uuid.clone())
                .or_else(|| user.clone())
        };
        let key = handle.clone().unwrap_or_else(|| format!("recipient:{rid}"));
        if let Some(u) = uuid {
            look.by_aci.insert(u.to_ascii_lowercase(), rid);
        }
        look.people.insert(
            rid,
            Person {
                name,
                handle,
                key,
                group,
                story_list,
            },
        );
    })
}

fn load_threads(
    src: &dyn Source,
    rel: &Path,
    look: &mut Lookups,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let mut t = CsvTable::open(src, rel)?;
    let (id, rid) = (
        t.col(&["_id"]),
        t.col(&["recipient_id", "thread_recipient_id"]),
    );
    let file = t.file.clone();
    t.rows(out, |rec, line, out| match (int(rec, id), int(rec, rid)) {
        (Some(tid), Some(r)) => {
            look.threads.insert(tid, r);
        }
        _ => out.problem(Problem {
            file: file.clone(),
            line: Some(line),
            reason: "thread row without a numeric `_id` and `recipient_id`".into(),
        }),
    })
}

fn load_reactions(
    src: &dyn Source,
    rel: &Path,
    look: &mut Lookups,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let mut t = CsvTable::open(src, rel)?;
    let (mid, author, emoji, is_mms) = (
        t.col(&["message_id"]),
        t.col(&["author_id"]),
        t.col(&["emoji"]),
        t.col(&["is_mms"]),
    );
    let file = t.file.clone();
    let mut found = Vec::new();
    t.rows(out, |rec, line, out| {
        match (int(rec, mid), int(rec, author), text(rec, emoji)) {
            (Some(m), Some(a), Some(e)) => found.push(((int(rec, is_mms) == Some(1), m), a, e)),
            _ => out.problem(Problem {
                file: file.clone(),
                line: Some(line),
                reason:
                    "reaction row without a numeric `message_id`/`author_id` or without an emoji"
                        .into(),
            }),
        }
    })?;
    for (key, a, emoji) in found {
        let author = look.name(a);
        look.reactions
            .entry(key)
            .or_default()
            .push(Reaction { author, emoji });
    }
    Ok(())
}

fn load_mentions(
    src: &dyn Source,
    rel: &Path,
    look: &mut Lookups,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let mut t = CsvTable::open(src, rel)?;
    let (mid, rid, start) = (
        t.col(&["message_id"]),
        t.col(&["recipient_id"]),
        t.col(&["range_start"]),
    );
    let file = t.file.clone();
    t.rows(out, |rec, line, out| {
        match (int(rec, mid), int(rec, rid), int(rec, start)) {
            (Some(m), Some(r), Some(s)) => look.mentions.entry(m).or_default().push((s, r)),
            _ => out.problem(Problem {
                file: file.clone(),
                line: Some(line),
                reason:
                    "mention row without numeric `message_id`, `recipient_id` and `range_start`"
                        .into(),
            }),
        }
    })
}

fn load_attachments(
    src: &dyn Source,
    rel: &Path,
    look: &mut Lookups,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let mut t = CsvTable::open(src, rel)?;
    let mid = t.col(&["message_id", "mid"]);
    let ctype = t.col(&["content_type", "ct"]);
    let name = t.col(&["file_name"]);
    let voice = t.col(&["voice_note"]);
    let gif = t.col(&["video_gif"]);
    let sticker = t.col(&["sticker_id"]);
    let quote = t.col(&["quote"]);
    let file = t.file.clone();
    t.rows(out, |rec, line, out| {
        let Some(m) = int(rec, mid) else {
            out.problem(Problem {
                file: file.clone(),
                line: Some(line),
                reason: "attachment row without a numeric message id".into(),
            });
            return;
        };
        // The thumbnail of a quoted message is stored as a part of the quoting row.
        if int(rec, quote) == Some(1) {
            return;
        }
        let kind = if int(rec, voice) == Some(1) {
            "voice"
        } else if int(rec, sticker).is_some_and(|s| s >= 0) {
            "sticker"
        } else if int(rec, gif) == Some(1) {
            "gif"
        } else {
            kind_of_mime(&String::from_utf8_lossy(field(rec, ctype)))
        };
        look.attachments.entry(m).or_default().push(Attachment {
            kind: kind.to_string(),
            name: text(rec, name),
        });
    })
}

fn kind_of_mime(mime: &str) -> &'static str {
    let mime = mime.trim().to_ascii_lowercase();
    match mime.split('/').next().unwrap_or_default() {
        _ if mime == "image/gif" => "gif",
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ if mime.contains("vcard") => "contact",
        "application" | "text" => "document",
        _ => "file",
    }
}

// ------------------------------------------------------------ message types ----

const BASE_TYPE_MASK: i64 = 0x1F;
const KEY_EXCHANGE_BIT: i64 = 0x8000;
const IDENTITY_VERIFIED_BIT: i64 = 0x4000;
const IDENTITY_DEFAULT_BIT: i64 = 0x2000;
const IDENTITY_UPDATE_BIT: i64 = 0x200;
const END_SESSION_BIT: i64 = 0x40_0000;
const GROUP_UPDATE_BIT: i64 = 0x1_0000;
const GROUP_LEAVE_BIT: i64 = 0x2_0000;
const EXPIRATION_TIMER_UPDATE_BIT: i64 = 0x4_0000;
const REMOTE_FAILED_BIT: i64 = 0x1000_0000;
const REMOTE_NO_SESSION_BIT: i64 = 0x0800_0000;
const REMOTE_LEGACY_BITS: i64 = 0x2000_0000 | 0x0200_0000;
const SPECIAL_TYPES_MASK: i64 = 0xF_0000_0000;
const SPECIAL_STORY_REACTION: i64 = 0x1_0000_0000;

/// What a row's `type` makes of it.
#[derive(Debug, PartialEq, Eq)]
enum RowKind {
    Message,
    Service(&'static str),
    Skip,
}

/// Outgoing base types (Signal-Android `MessageTypes.OUTGOING_MESSAGE_TYPES`).
fn is_outgoing(t: i64) -> bool {
    matches!(t & BASE_TYPE_MASK, 21..=26 | 2 | 11)
}

fn row_kind(t: i64) -> RowKind {
    let base = t & BASE_TYPE_MASK;
    let service = match base {
        1 => Some("Incoming voice call"),
        2 => Some("Outgoing voice call"),
        3 => Some("Missed voice call"),
        4 => Some("Joined Signal"),
        5 => Some("Unsupported message"),
        6 => Some("Invalid message"),
        7 => Some("Changed their profile name"),
        8 => Some("Missed video call"),
        9 => Some("Group migrated to a new group"),
        10 => Some("Incoming video call"),
        11 => Some("Outgoing video call"),
        12 => Some("Group call"),
        13 => Some("A message could not be decrypted"),
        14 => Some("Changed their phone number"),
        15 => Some("Donation request"),
        16 => Some("Chats merged"),
        17 => Some("SMS export"),
        18 => Some("Session switchover"),
        20..=26 => None,
        27 => return RowKind::Skip, // a draft
        _ => Some("Unknown event"),
    };
    if let Some(s) = service {
        return RowKind::Service(s);
    }
    let special = t & SPECIAL_TYPES_MASK;
    if special == SPECIAL_STORY_REACTION {
        return RowKind::Skip;
    }
    let flagged = [
        (
            GROUP_UPDATE_BIT | GROUP_LEAVE_BIT,
            GROUP_LEAVE_BIT,
            "Left the group",
        ),
        (GROUP_UPDATE_BIT, GROUP_UPDATE_BIT, "Group updated"),
        (
            EXPIRATION_TIMER_UPDATE_BIT,
            EXPIRATION_TIMER_UPDATE_BIT,
            "Disappearing messages timer changed",
        ),
        (END_SESSION_BIT, END_SESSION_BIT, "Secure session reset"),
        (
            IDENTITY_UPDATE_BIT,
            IDENTITY_UPDATE_BIT,
            "Safety number changed",
        ),
        (
            IDENTITY_VERIFIED_BIT,
            IDENTITY_VERIFIED_BIT,
            "Safety number marked as verified",
        ),
        (
            IDENTITY_DEFAULT_BIT,
            IDENTITY_DEFAULT_BIT,
            "Safety number marked as not verified",
        ),
        (KEY_EXCHANGE_BIT, KEY_EXCHANGE_BIT, "Key exchange"),
        (
            REMOTE_FAILED_BIT,
            REMOTE_FAILED_BIT,
            "Chat session refreshed",
        ),
        (
            REMOTE_NO_SESSION_BIT,
            REMOTE_NO_SESSION_BIT,
            "A message could not be decrypted",
        ),
        (
            REMOTE_LEGACY_BITS,
            REMOTE_LEGACY_BITS & t,
            "A message could not be decrypted",
        ),
    ];
    for (mask, want, text) in flagged {
        if want != 0 && t & mask == want {
            return RowKind::Service(text);
        }
    }
    match special >> 32 {
        0 => RowKind::Message,
        2 => RowKind::Service("Gift badge"),
        3 | 9 => RowKind::Service("Payment"),
        4 => RowKind::Service("Payments activation request"),
        5 => RowKind::Service("Reported as spam"),
        6 => RowKind::Service("Message request accepted"),
        8 => RowKind::Service("Payments activated"),
        _ => RowKind::Service("Unknown event"),
    }
}

// ---------------------------------------------------------------- mentions ----

/// Decodes standard base64 (padding and whitespace ignored); None if invalid.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b' ' | b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Walks the fields of one protobuf message: (field number, varint value or bytes).
fn proto_fields(buf: &[u8], mut f: impl FnMut(u64, Result<u64, &[u8]>)) -> Option<()> {
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        match key & 7 {
            0 => f(key >> 3, Ok(varint(buf, &mut pos)?)),
            1 => pos = pos.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                f(key >> 3, Err(buf.get(pos..end)?));
                pos = end;
            }
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
    }
    (pos == buf.len()).then_some(())
}

/// The mentions in a base64 `BodyRangeList` blob: (start in UTF-16 units, ACI).
fn body_range_mentions(b64: &[u8]) -> Vec<(i64, String)> {
    let mut found = Vec::new();
    let Some(bytes) = base64_decode(b64) else {
        return found;
    };
    proto_fields(&bytes, |num, val| {
        let (1, Err(range)) = (num, val) else { return };
        let (mut start, mut uuid) = (0i64, None);
        proto_fields(range, |n, v| match (n, v) {
            (1, Ok(s)) => start = i64::try_from(s).unwrap_or(0),
            (3, Err(u)) => uuid = std::str::from_utf8(u).ok().map(str::to_ascii_lowercase),
            _ => {}
        });
        if let Some(u) = uuid {
            found.push((start, u));
        }
    });
    found
}

/// Replaces every U+FFFC placeholder with `@Name`: the mention that starts at
/// the placeholder's UTF-16 offset, else the next mention nobody took, else
/// `@Unknown`.
fn replace_mentions(body: &str, mentions: &[(i64, String)]) -> String {
    let mut offsets = Vec::new();
    let mut offset = 0i64;
    for c in body.chars() {
        if c == '\u{FFFC}' {
            offsets.push(offset);
        }
        offset += c.len_utf16() as i64;
    }
    let mut used = vec![false; mentions.len()];
    let mut picked: Vec<Option<usize>> = offsets
        .iter()
        .map(|&o| {
            let i = mentions
                .iter()
                .enumerate()
                .position(|(i, (s, _))| !used[i] && *s == o)?;
            used[i] = true;
            Some(i)
        })
        .collect();
    for p in picked.iter_mut().filter(|p| p.is_none()) {
        *p = used.iter().position(|u| !u);
        if let Some(i) = *p {
            used[i] = true;
        }
    }
    let mut out = String::with_capacity(body.len() + 16);
    let mut names = picked.into_iter();
    for c in body.chars() {
        if c == '\u{FFFC}' {
            out.push('@');
            match names.next().flatten() {
                Some(i) => out.push_str(&mentions[i].1),
                None => out.push_str("Unknown"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- messages ----

/// Column indexes of a message table.
struct MessageCols {
    id: Option<usize>,
    date_sent: Option<usize>,
    date_received: Option<usize>,
    thread: Option<usize>,
    from: Option<usize>,
    recipient: Option<usize>,
    kind: Option<usize>,
    body: Option<usize>,
    quote_id: Option<usize>,
    remote_deleted: Option<usize>,
    story_type: Option<usize>,
    parent_story: Option<usize>,
    scheduled: Option<usize>,
    latest_revision: Option<usize>,
    original: Option<usize>,
    revision_number: Option<usize>,
    view_once: Option<usize>,
    ranges: Option<usize>,
}

impl MessageCols {
    fn of(t: &CsvTable) -> MessageCols {
        MessageCols {
            id: t.col(&["_id"]),
            date_sent: t.col(&["date_sent", "date"]),
            date_received: t.col(&["date_received"]),
            thread: t.col(&["thread_id"]),
            from: t.col(&["from_recipient_id"]),
            recipient: t.col(&["recipient_id", "address"]),
            kind: t.col(&["type", "msg_box"]),
            body: t.col(&["body"]),
            quote_id: t.col(&["quote_id"]),
            remote_deleted: t.col(&["remote_deleted"]),
            story_type: t.col(&["story_type"]),
            parent_story: t.col(&["parent_story_id"]),
            scheduled: t.col(&["scheduled_date"]),
            latest_revision: t.col(&["latest_revision_id"]),
            original: t.col(&["original_message_id"]),
            revision_number: t.col(&["revision_number"]),
            view_once: t.col(&["view_once"]),
            ranges: t.col(&["message_ranges"]),
        }
    }

    fn missing(&self) -> Option<&'static str> {
        [
            (self.date_sent, "date_sent"),
            (self.thread, "thread_id"),
            (self.kind, "type"),
            (self.body, "body"),
        ]
        .into_iter()
        .find_map(|(c, n)| c.is_none().then_some(n))
    }
}

/// Everything needed to turn one message row into a record.
struct MessageCtx<'a> {
    look: &'a Lookups,
    cols: MessageCols,
    mms: bool,
    sms: bool,
}

impl MessageCtx<'_> {
    /// Rows that are not messages of the conversation and are skipped silently.
    fn skipped(&self, rec: &ByteRecord) -> bool {
        let c = &self.cols;
        let positive = |col| int(rec, col).is_some_and(|v| v > 0);
        int(rec, c.story_type).is_some_and(|v| v != 0)
            || positive(c.parent_story)
            || positive(c.scheduled)
            || int(rec, c.remote_deleted) == Some(1)
            || positive(c.latest_revision)
            || int(rec, c.view_once) == Some(1)
    }

    fn number(&self, rec: &ByteRecord, col: Option<usize>, name: &str) -> Result<i64, String> {
        int(rec, col)
            .ok_or_else(|| format!("`{name}` is not a number: {:?}", show(field(rec, col))))
    }

    /// The row as a record, None for a skipped row, Err(reason) for a broken one.
    fn message(&self, rec: &ByteRecord, line: u64) -> Result<Option<RawMessage>, String> {
        if self.skipped(rec) {
            return Ok(None);
        }
        let c = &self.cols;
        let t = self.number(rec, c.kind, "type")?;
        let thread = self.number(rec, c.thread, "thread_id")?;
        let sent = int(rec, c.date_sent).filter(|&d| d > 0);
        let millis = sent
            .or_else(|| int(rec, c.date_received).filter(|&d| d > 0))
            .ok_or_else(|| {
                format!(
                    "no usable time: `date_sent` is {:?}",
                    show(field(rec, c.date_sent))
                )
            })?;
        let at = DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| format!("time {millis} is out of range"))?;
        let conv = self
            .look
            .threads
            .get(&thread)
            .and_then(|r| self.look.people.get(r));
        if conv.is_some_and(|p| p.story_list) {
            return Ok(None);
        }
        let kind = row_kind(t);
        let (kind, text) = match kind {
            RowKind::Skip => return Ok(None),
            RowKind::Service(s) => (MessageKind::Service, s.to_string()),
            RowKind::Message => (MessageKind::Message, self.body(rec)),
        };
        let mut m = RawMessage::new(
            conv.map(|p| p.key.clone())
                .unwrap_or_else(|| format!("thread:{thread}")),
            self.author(rec, t),
            When::Utc(at),
            text,
        );
        m.kind = kind;
        m.conversation_title = conv.map(|p| p.name.clone());
        m.group = conv.map(|p| p.group);
        m.id = Some(sent.unwrap_or(millis).to_string());
        m.reply_to = int(rec, c.quote_id)
            .filter(|&q| q > 0)
            .map(|q| q.to_string());
        m.line = Some(line);
        let id = int(rec, c.id);
        let original = int(rec, c.original).filter(|&o| o > 0);
        m.edited = original.is_some() || int(rec, c.revision_number).is_some_and(|r| r > 0);
        if kind == MessageKind::Message {
            if let Some(id) = id.filter(|_| !self.sms) {
                m.attachments = self.look.attachments.get(&id).cloned().unwrap_or_default();
            }
            m.reactions = self.reactions(id, original);
        }
        Ok(Some(m))
    }

    fn author(&self, rec: &ByteRecord, t: i64) -> Author {
        let c = &self.cols;
        let outgoing = is_outgoing(t);
        if c.from.is_some() {
            return self.look.author(int(rec, c.from), Some(outgoing));
        }
        if outgoing {
            // The older schema names only the destination of outgoing rows,
            // and the export does not say which recipient is the user.
            return Author {
                name: "Me".to_string(),
                handle: None,
                me: Some(true),
            };
        }
        self.look.author(int(rec, c.recipient), Some(false))
    }

    fn body(&self, rec: &ByteRecord) -> String {
        let raw = String::from_utf8_lossy(field(rec, self.cols.body));
        if !raw.contains('\u{FFFC}') {
            return raw.into_owned();
        }
        let id = int(rec, self.cols.id);
        let mut mentions: Vec<(i64, String)> = id
            .and_then(|i| self.look.mentions.get(&i))
            .map(|v| v.iter().map(|&(s, r)| (s, self.look.name(r))).collect())
            .unwrap_or_default();
        if mentions.is_empty() {
            mentions = body_range_mentions(field(rec, self.cols.ranges))
                .into_iter()
                .filter_map(|(s, aci)| self.look.by_aci.get(&aci).map(|&r| (s, self.look.name(r))))
                .collect();
        }
        mentions.sort_by_key(|(s, _)| *s);
        replace_mentions(&raw, &mentions)
    }

    /// Reactions on this row, plus those left on the first revision of an
    /// edited message (that row is skipped).
    fn reactions(&self, id: Option<i64>, original: Option<i64>) -> Vec<Reaction> {
        let mut all: Vec<Reaction> = Vec::new();
        for key in [id, original].into_iter().flatten() {
            for r in self
                .look
                .reactions
                .get(&(self.mms, key))
                .into_iter()
                .flatten()
            {
                if !all.contains(r) {
                    all.push(r.clone());
                }
            }
        }
        all
    }
}

fn parse_messages(
    src: &dyn Source,
    rel: &Path,
    look: &Lookups,
    mms: bool,
    sms: bool,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let mut t = CsvTable::open(src, rel)?;
    let cols = MessageCols::of(&t);
    if let Some(name) = cols.missing() {
        return Err(ImportError::unreadable(
            &t.file,
            format!("not a Signal message table: the header has no `{name}` column"),
        ));
    }
    let ctx = MessageCtx {
        look,
        cols,
        mms,
        sms,
    };
    let file = t.file.clone();
    t.rows(out, |rec, line, out| match ctx.message(rec, line) {
        Ok(Some(m)) => out.message(m),
        Ok(None) => {}
        Err(reason) => out.problem(Problem {
            file: file.clone(),
            line: Some(line),
            reason,
        }),
    })
}

// ---------------------------------------------------------------- importer ----

impl Importer for Signal {
    fn format(&self) -> Format {
        Format::Signal
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let mut dirs: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for rel in pool {
            if file_name(src, rel).to_ascii_lowercase().ends_with(".csv")
                || (forced && rel.as_os_str().is_empty())
            {
                let dir = rel.parent().map(Path::to_path_buf).unwrap_or_default();
                dirs.entry(dir).or_default().push(rel.clone());
            }
        }
        let mut units = Vec::new();
        for (dir, mut files) in dirs {
            let table = |rel: &PathBuf| table_of(&file_name(src, rel));
            let mut messages: Vec<&PathBuf> = files
                .iter()
                .filter(|f| matches!(table(f), Table::Message { .. }))
                .collect();
            if messages.is_empty() && forced {
                messages = files
                    .iter()
                    .filter(|f| table(f) == Table::Other && looks_like_message_table(src, f))
                    .collect();
            }
            let has_recipient = files.iter().any(|f| table(f) == Table::Recipient);
            if messages.is_empty() || !(has_recipient || forced) {
                continue;
            }
            if !messages.iter().any(|m| looks_like_message_table(src, m)) {
                continue;
            }
            let label = if dir.as_os_str().is_empty() {
                messages[0].clone()
            } else {
                dir
            };
            files.sort();
            units.push(Unit {
                format: Format::Signal,
                files,
                label,
            });
        }
        units
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        let of = |t: Table| {
            unit.files
                .iter()
                .filter(move |f| table_of(&file_name(src, f)) == t)
        };
        let mut titles = GroupTitles::default();
        for rel in of(Table::Groups) {
            titles = load_groups(src, rel, out)?;
        }
        let mut look = Lookups::default();
        for rel in of(Table::Recipient) {
            load_recipients(src, rel, &titles, &mut look, out)?;
        }
        for rel in of(Table::Thread) {
            load_threads(src, rel, &mut look, out)?;
        }
        for rel in of(Table::Reaction) {
            load_reactions(src, rel, &mut look, out)?;
        }
        for rel in of(Table::Mention) {
            load_mentions(src, rel, &mut look, out)?;
        }
        for rel in of(Table::Attachment) {
            load_attachments(src, rel, &mut look, out)?;
        }
        let mut tables: Vec<(&PathBuf, bool, bool)> = unit
            .files
            .iter()
            .filter_map(|f| match table_of(&file_name(src, f)) {
                Table::Message { mms, sms } => Some((f, mms, sms)),
                _ => None,
            })
            .collect();
        if tables.is_empty() {
            // Forced onto files with other names: sniff the header.
            tables = unit
                .files
                .iter()
                .filter(|f| {
                    table_of(&file_name(src, f)) == Table::Other && looks_like_message_table(src, f)
                })
                .map(|f| (f, false, false))
                .collect();
        }
        if tables.is_empty() {
            return Err(ImportError::unreadable(
                &src.display(&unit.label),
                "no Signal message table (message.csv or signal.csv) found",
            ));
        }
        for (rel, mms, sms) in tables {
            parse_messages(src, rel, &look, mms, sms, out)?;
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

    const MODERN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signal/modern");
    const LEGACY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signal/legacy");
    const GROUP: &str = "__signal_group__v2__!4f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn read(path: &Path, forced: bool) -> (Vec<Unit>, Collect) {
        read_with(&Signal, path, forced).expect("readable")
    }

    fn utc(ms: i64) -> When {
        When::Utc(Utc.timestamp_millis_opt(ms).unwrap())
    }

    fn by_id<'a>(c: &'a Collect, id: &str) -> &'a RawMessage {
        c.messages
            .iter()
            .find(|m| m.id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no message {id}"))
    }

    fn reactions(m: &RawMessage) -> Vec<(&str, &str)> {
        m.reactions
            .iter()
            .map(|r| (r.author.as_str(), r.emoji.as_str()))
            .collect()
    }

    /// Copies a fixture folder into a temp dir so a test can change files.
    fn copy_fixture(from: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
        dir
    }

    #[test]
    fn modern_export_counts() {
        let (units, c) = read(Path::new(MODERN), false);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].files.len(), 7);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 10);
        assert_eq!(c.people_messages().count(), 8);
        let ids: Vec<&str> = c.messages.iter().filter_map(|m| m.id.as_deref()).collect();
        assert_eq!(
            ids,
            [
                "1700000000000",
                "1700000065000",
                "1700000123456",
                "1700000300000",
                "1700003600000",
                "1700003760000",
                "1700004000000",
                "1700004200000",
                "1700004300000",
                "1700004400000"
            ]
        );
        let authors: Vec<&str> = c.authors().into_iter().collect();
        assert_eq!(
            authors,
            [
                "+15550103",
                "Alice Moreau",
                "Bob Okafor",
                "Sam Taylor",
                "dan.42"
            ]
        );
        assert_eq!(
            c.messages
                .iter()
                .filter(|m| m.author.me == Some(true))
                .count(),
            3
        );
    }

    #[test]
    fn modern_export_fields() {
        let (_, c) = read(Path::new(MODERN), false);
        let first = by_id(&c, "1700000000000");
        assert_eq!(first.at, utc(1_700_000_000_000));
        assert_eq!(
            first.at,
            When::Utc(Utc.with_ymd_and_hms(2023, 11, 14, 22, 13, 20).unwrap())
        );
        assert_eq!(
            first.author,
            Author {
                name: "Alice Moreau".into(),
                handle: Some("+15550101".into()),
                me: Some(false)
            }
        );
        assert_eq!(first.conversation, "+15550101");
        assert_eq!(first.conversation_title.as_deref(), Some("Alice Moreau"));
        assert_eq!(first.group, Some(false));
        assert_eq!(first.line, Some(2));

        let multi = by_id(&c, "1700000065000");
        assert_eq!(
            multi.text,
            "Yes, absolutely.\nI'll bring the \"good\" rope, the chalk, and snacks.\nSee you at 9"
        );
        assert_eq!(
            multi.author,
            Author {
                name: "Sam Taylor".into(),
                handle: Some("+15550100".into()),
                me: Some(true)
            }
        );
        assert_eq!(multi.line, Some(3));
        assert_eq!(reactions(multi), [("Alice Moreau", "❤️")]);

        let quote = by_id(&c, "1700000123456");
        assert_eq!(quote.text, "Great 🎉 can't wait");
        assert_eq!(quote.reply_to.as_deref(), Some("1700000065000"));
        assert!(
            quote.attachments.is_empty(),
            "the quote thumbnail is not an attachment"
        );
        assert_eq!(quote.line, Some(6));

        let call = by_id(&c, "1700000300000");
        assert_eq!(
            (call.kind, call.text.as_str()),
            (MessageKind::Service, "Incoming voice call")
        );
        assert_eq!(call.author.name, "Alice Moreau");

        let mention = by_id(&c, "1700003600000");
        assert_eq!(mention.text, "@Sam Taylor can you book the gym?");
        assert_eq!(mention.conversation, GROUP);
        assert_eq!(
            mention.conversation_title.as_deref(),
            Some("Climbing Crew 🧗")
        );
        assert_eq!(mention.group, Some(true));
        assert_eq!(mention.author.name, "Bob Okafor");
        assert_eq!(
            reactions(mention),
            [("Sam Taylor", "👍"), ("+15550103", "👍")]
        );

        let edited = by_id(&c, "1700003760000");
        assert_eq!(edited.text, "Done, booked for 10:30");
        assert!(edited.edited);
        assert_eq!(reactions(edited), [("Bob Okafor", "😂")]);
        assert!(
            !c.messages.iter().any(|m| m.text.contains("10:00")),
            "the superseded revision is skipped"
        );

        let carol = by_id(&c, "1700004000000");
        assert_eq!(
            carol.author,
            Author {
                name: "+15550103".into(),
                handle: Some("+15550103".into()),
                me: Some(false)
            }
        );
        assert_eq!(carol.text, "Count me in 💪");

        let update = by_id(&c, "1700004200000");
        assert_eq!(
            (update.kind, update.text.as_str()),
            (MessageKind::Service, "Group updated")
        );

        let photo = by_id(&c, "1700004300000");
        assert_eq!(photo.text, "");
        assert_eq!(photo.kind, MessageKind::Message);
        assert_eq!(
            photo.attachments,
            [Attachment {
                kind: "image".into(),
                name: Some("IMG_0042.jpg".into())
            }]
        );
        assert_eq!(
            photo.author.handle.as_deref(),
            Some("2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e")
        );

        for skipped in [
            "1700003700000",
            "1700003800000",
            "1700003900000",
            "1700004100000",
        ] {
            assert!(
                c.messages.iter().all(|m| m.id.as_deref() != Some(skipped)),
                "{skipped} must be skipped"
            );
        }
        assert!(
            c.messages
                .iter()
                .all(|m| !m.reactions.iter().any(|r| r.emoji == "🔥"))
        );
    }

    #[test]
    fn legacy_export_with_recipient_id() {
        let (units, c) = read(Path::new(LEGACY), false);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].files.len(), 6);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 8);
        assert_eq!(c.people_messages().count(), 7);
        let authors: Vec<&str> = c.authors().into_iter().collect();
        assert_eq!(authors, ["Alice Moreau", "Bob Okafor", "Me"]);

        let out = by_id(&c, "1685620920000");
        assert_eq!(
            out.author,
            Author {
                name: "Me".into(),
                handle: None,
                me: Some(true)
            }
        );
        assert_eq!(out.text, "Rain, \"heavy\" rain,\nall weekend. Plan B?");
        assert_eq!(out.conversation, "+15550101");
        assert_eq!(
            out.at,
            When::Utc(Utc.with_ymd_and_hms(2023, 6, 1, 12, 2, 0).unwrap())
        );
        assert_eq!(reactions(out), [("Alice Moreau", "👍")]);

        let quote = by_id(&c, "1685621000000");
        assert_eq!(quote.reply_to.as_deref(), Some("1685620920000"));
        assert_eq!(quote.author.me, Some(false));

        let mention = by_id(&c, "1685624400000");
        assert_eq!(mention.text, "Thanks @Alice Moreau!");
        assert_eq!(mention.author.name, "Bob Okafor");
        assert_eq!(
            (mention.group, mention.conversation.as_str()),
            (Some(true), GROUP)
        );
        assert_eq!(
            mention.conversation_title.as_deref(),
            Some("Climbing Crew 🧗")
        );

        let edited = by_id(&c, "1685624560000");
        assert!(edited.edited);
        assert_eq!(edited.text, "On my way 🚲 (10 min late)");
        assert_eq!(reactions(edited), [("Bob Okafor", "😮")]);

        let call = by_id(&c, "1685628000000");
        assert_eq!(
            (call.kind, call.text.as_str()),
            (MessageKind::Service, "Missed video call")
        );

        assert_eq!(
            reactions(by_id(&c, "1685628100000")),
            [("Sam Taylor", "😂")]
        );
        let voice = by_id(&c, "1685628200000");
        assert_eq!(
            voice.attachments,
            [Attachment {
                kind: "voice".into(),
                name: None
            }]
        );
    }

    #[test]
    fn columns_are_found_by_name_not_position() {
        let dir = copy_fixture(MODERN);
        let path = dir.path().join("signal.csv");
        let mut rdr = csv::Reader::from_path(&path).unwrap();
        let header = rdr.byte_headers().unwrap().clone();
        let rows: Vec<ByteRecord> = rdr.byte_records().map(Result::unwrap).collect();
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_path(&path)
            .unwrap();
        w.write_record(header.iter().rev()).unwrap();
        for r in &rows {
            w.write_record(r.iter().rev()).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let (_, reversed) = read(dir.path(), false);
        let (_, original) = read(Path::new(MODERN), false);
        let strip = |c: &Collect| {
            c.messages
                .iter()
                .map(|m| RawMessage {
                    line: None,
                    ..m.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&reversed), strip(&original));
    }

    #[test]
    fn claims_folders_and_zips_with_message_and_recipient_tables() {
        // Without recipient.csv the folder is not claimed unless forced.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            format!("{MODERN}/signal.csv"),
            dir.path().join("signal.csv"),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.csv"), "a,b\n1,2\n").unwrap();
        assert!(read(dir.path(), false).0.is_empty());
        let (units, c) = read(dir.path(), true);
        assert_eq!(units.len(), 1);
        assert_eq!(c.messages.len(), 10);
        assert_eq!(by_id(&c, "1700000000000").author.name, "Recipient 2");
        assert_eq!(by_id(&c, "1700000000000").conversation, "thread:1");

        // Other CSV folders are never claimed.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("recipient.csv"), "_id,e164\n1,+1555\n").unwrap();
        std::fs::write(other.path().join("message.csv"), "id,text\n1,hi\n").unwrap();
        assert!(read(other.path(), false).0.is_empty());

        // A zip with the export in a sub-folder.
        let z = dir.path().join("export.zip");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&z).unwrap());
        for e in std::fs::read_dir(MODERN).unwrap() {
            let e = e.unwrap();
            let name = format!("backup/{}", e.file_name().to_string_lossy());
            w.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut w, &std::fs::read(e.path()).unwrap()).unwrap();
        }
        w.finish().unwrap();
        let (units, c) = read(&z, false);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].label, PathBuf::from("backup"));
        assert_eq!(c.messages.len(), 10);
        assert_eq!(c.problems.len(), 0);
    }

    #[test]
    fn broken_rows_are_problems_with_file_and_line() {
        let dir = copy_fixture(MODERN);
        let path = dir.path().join("signal.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        // Line 2 (row _id 1): date_sent not a number. Line 10 (row _id 5): type garbled.
        // (Rows 2 and 3 span three lines each: multi-line body and quote_body.)
        lines[1] = lines[1].replacen(",1700000000000,1700000000812,", ",yesterday,,", 1);
        assert!(lines[9].starts_with("5,"));
        lines[9] = lines[9].replacen(",10485780,", ",inbox,", 1);
        // Line 11: a row with too few fields.
        lines.insert(10, "99,1700009999999,1".to_string());
        let mut broken = lines.join("\n");
        // Line 21: truncated in the middle of a quoted body.
        broken.push_str(
            "\n15,1700004500000,1700004500812,1700004500430,1,2,1,1,10485780,\"Half a messa",
        );
        std::fs::write(&path, broken).unwrap();
        let (_, c) = read(dir.path(), false);
        assert_eq!(c.messages.len(), 8);
        let lines: Vec<Option<u64>> = c.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(2), Some(10), Some(11), Some(21)]);
        assert!(c.problems.iter().all(|p| p.file == path));
        assert!(
            c.problems[0].reason.contains("date_sent"),
            "{}",
            c.problems[0].reason
        );
        assert!(
            c.problems[1].reason.contains("`type`"),
            "{}",
            c.problems[1].reason
        );
        assert!(
            c.problems[2].reason.contains("fields"),
            "{}",
            c.problems[2].reason
        );
    }

    #[test]
    fn a_message_table_without_required_columns_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("signal.csv"),
            "_id,thread_id,body,type,date\n1,1,hi,20,5\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("recipient.csv"), "_id\n1\n").unwrap();
        let (units, c) = read(dir.path(), false);
        assert_eq!(units.len(), 1);
        assert_eq!(c.messages.len(), 1, "`date` is the old name of date_sent");
        let unit = Unit {
            format: Format::Signal,
            files: vec!["recipient.csv".into(), "signal.csv".into()],
            label: "".into(),
        };
        std::fs::write(
            dir.path().join("signal.csv"),
            "_id,thread_id,date_sent\n1,2,3\n",
        )
        .unwrap();
        let src = crate::ingest::open_source(dir.path()).unwrap();
        let err = Signal
            .parse(src.as_ref(), &unit, &mut Collect::default())
            .unwrap_err();
        assert!(err.to_string().contains("no `type` column"), "{err}");
    }

    #[test]
    fn placeholders_without_mention_data_become_unknown() {
        assert_eq!(
            replace_mentions("hi \u{FFFC} and \u{FFFC}", &[(9, "Bo".into())]),
            "hi @Unknown and @Bo"
        );
        assert_eq!(
            replace_mentions("hi \u{FFFC} and \u{FFFC}", &[(7, "Bo".into())]),
            "hi @Bo and @Unknown"
        );
        assert_eq!(replace_mentions("😀\u{FFFC}", &[(2, "Al".into())]), "😀@Al");
        assert_eq!(
            replace_mentions("\u{FFFC}\u{FFFC}", &[(9, "A".into())]),
            "@A@Unknown"
        );
    }

    #[test]
    fn body_ranges_protobuf_is_decoded() {
        // BodyRangeList{ranges: [{start: 7, length: 1, mentionUuid: "ab"}, {start: 0, length: 3, style: BOLD}]}
        let bytes = [
            0x0A, 0x08, 0x08, 0x07, 0x10, 0x01, 0x1A, 0x02, b'A', b'b', 0x0A, 0x06, 0x08, 0x00,
            0x10, 0x03, 0x20, 0x00,
        ];
        let b64 = encode64(&bytes);
        assert_eq!(body_range_mentions(b64.as_bytes()), [(7, "ab".to_string())]);
        assert!(body_range_mentions(b"!!not base64!!").is_empty());
        assert!(body_range_mentions(b"CgX/").is_empty());
    }

    fn encode64(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for ch in b.chunks(3) {
            let n = ch
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
            for i in 0..=ch.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        s
    }

    #[test]
    fn type_bits_are_classified() {
        assert_eq!(row_kind(10485780), RowKind::Message);
        assert_eq!(row_kind(10485783), RowKind::Message);
        assert!(
            is_outgoing(10485783) && !is_outgoing(10485780) && is_outgoing(2) && !is_outgoing(1)
        );
        assert_eq!(
            row_kind(0xA00014 | GROUP_UPDATE_BIT | 0x80000),
            RowKind::Service("Group updated")
        );
        assert_eq!(
            row_kind(0xA00014 | EXPIRATION_TIMER_UPDATE_BIT),
            RowKind::Service("Disappearing messages timer changed")
        );
        assert_eq!(
            row_kind(0xA00014 | IDENTITY_UPDATE_BIT),
            RowKind::Service("Safety number changed")
        );
        assert_eq!(row_kind(0xA00014 | SPECIAL_STORY_REACTION), RowKind::Skip);
        assert_eq!(
            row_kind(0xA00017 | 0x2_0000_0000),
            RowKind::Service("Gift badge")
        );
        assert_eq!(row_kind(27), RowKind::Skip);
        assert_eq!(row_kind(12), RowKind::Service("Group call"));
    }

    #[test]
    fn old_sms_and_mms_tables_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("recipient.csv"),
            "_id,phone,system_display_name,group_type\n2,+15550101,Alice,0\n",
        )
        .unwrap();
        std::fs::write(d.join("thread.csv"), "_id,thread_recipient_id\n1,2\n").unwrap();
        std::fs::write(d.join("sms.csv"), "_id,thread_id,address,date,date_sent,type,body\n1,1,2,1600000001000,1600000000000,10485780,hello\n").unwrap();
        std::fs::write(d.join("mms.csv"), "_id,thread_id,date,date_received,msg_box,body,address\n1,1,1600000100000,1600000100500,10485783,hi back,2\n").unwrap();
        std::fs::write(
            d.join("reaction.csv"),
            "_id,message_id,is_mms,author_id,emoji\n1,1,1,2,❤️\n",
        )
        .unwrap();
        let (_, c) = read(d, false);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let texts: Vec<(&str, &str, Option<bool>)> = c
            .messages
            .iter()
            .map(|m| (m.text.as_str(), m.author.name.as_str(), m.author.me))
            .collect();
        assert_eq!(
            texts,
            [
                ("hi back", "Me", Some(true)),
                ("hello", "Alice", Some(false))
            ]
        );
        assert_eq!(c.messages[0].at, utc(1_600_000_100_000));
        assert_eq!(reactions(&c.messages[0]), [("Alice", "❤️")]);
        assert!(c.messages[1].reactions.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("recipient.csv"), &bytes).unwrap();
            let mut table = b"_id,date_sent,thread_id,type,body\n".to_vec();
            table.extend_from_slice(&bytes);
            std::fs::write(dir.path().join("signal.csv"), &table).unwrap();
            std::fs::write(dir.path().join("reaction.csv"), &bytes).unwrap();
            std::fs::write(dir.path().join("mention.csv"), &bytes).unwrap();
            let _ = read_with(&Signal, dir.path(), false);
            let _ = read_with(&Signal, dir.path(), true);
        }

        #[test]
        fn mutated_fixture_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..24)) {
            let dir = copy_fixture(LEGACY);
            for name in ["message.csv", "recipient.csv"] {
                let path = dir.path().join(name);
                let mut bytes = std::fs::read(&path).unwrap();
                for &(at, b) in &edits {
                    let i = at % bytes.len();
                    bytes[i] = b;
                }
                std::fs::write(&path, bytes).unwrap();
            }
            let _ = read_with(&Signal, dir.path(), false);
        }

        #[test]
        fn random_body_ranges_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = body_range_mentions(&bytes);
            let _ = proto_fields(&bytes, |_, _| {});
        }
    }
}
