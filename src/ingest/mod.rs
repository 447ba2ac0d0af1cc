//! Importers turn real export files into normalized records.
//!
//! The contract every importer (one file per format) follows:
//! - [`Importer::claim`] looks at the files of a [`Source`] (a folder or a zip,
//!   seen the same way) and groups the ones it reads into [`Unit`]s: one WhatsApp
//!   `.txt`, one Telegram `result.json`, a whole Slack export, the CSV set of a
//!   Signal export, every note of a vault.
//! - [`Importer::parse`] streams one unit into a [`Sink`], record by record, so
//!   memory does not grow with the file. It emits records in a deterministic
//!   order (re-importing the same file must produce the same stream).
//! - A malformed record is a [`Problem`] (file, line, reason) sent to the sink,
//!   and parsing goes on; only an unreadable unit (not this format at all, an
//!   encrypted PDF, an I/O error) returns an [`ImportError`].
//! - Importers never touch the store: the pipeline hashes, dedupes and writes.

pub mod contacts;
pub mod demo;
pub mod discord;
pub mod gchat;
pub mod hangouts;
pub mod identity;
pub mod mbox;
pub mod messenger;
pub mod notes;
pub(crate) mod occurrence;
pub mod overview;
pub mod pdf;
pub mod pipeline;
pub mod profile;
pub mod records;
pub mod sigexport;
pub mod signal;
pub mod slack;
pub mod source;
pub mod telegram;
pub mod voice_notes;
pub mod whatsapp;
pub mod windows;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

pub use source::{Source, open_source};

/// Every format twin reads. The names are those of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Signal,
    Sigexport,
    Whatsapp,
    Telegram,
    Discord,
    Messenger,
    Instagram,
    Slack,
    Gchat,
    Hangouts,
    Mbox,
    Notes,
    Pdf,
}

impl Format {
    pub const ALL: [Format; 13] = [
        Format::Signal,
        Format::Sigexport,
        Format::Whatsapp,
        Format::Telegram,
        Format::Discord,
        Format::Messenger,
        Format::Instagram,
        Format::Slack,
        Format::Gchat,
        Format::Hangouts,
        Format::Mbox,
        Format::Notes,
        Format::Pdf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Signal => "signal",
            Format::Sigexport => "sigexport",
            Format::Whatsapp => "whatsapp",
            Format::Telegram => "telegram",
            Format::Discord => "discord",
            Format::Messenger => "messenger",
            Format::Instagram => "instagram",
            Format::Slack => "slack",
            Format::Gchat => "gchat",
            Format::Hangouts => "hangouts",
            Format::Mbox => "mbox",
            Format::Notes => "notes",
            Format::Pdf => "pdf",
        }
    }

    pub fn names() -> String {
        Format::ALL.map(Format::name).join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown format `{s}`; twin reads: auto, {}",
                    Format::names()
                )
            })
    }
}

/// When something happened. Exports that write local wall-clock time without an
/// offset (WhatsApp, sigexport) give `Local`; the pipeline applies the configured
/// time zone. Everything with an offset or epoch gives `Utc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum When {
    Utc(DateTime<Utc>),
    Local(NaiveDateTime),
}

/// Who wrote a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Author {
    /// The display name as the export writes it ("Alice", "+1 555 0100", "You").
    pub name: String,
    /// A stable handle when the export has one: phone number, e-mail address,
    /// user id ("U024BE7LH"), Signal recipient id. Used to merge contacts.
    pub handle: Option<String>,
    /// Some(true) when the export itself says this is the exporting user
    /// (Signal outgoing, Telegram's own id, iOS "You"); None when it cannot tell.
    pub me: Option<bool>,
}

/// What kind of line a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A message a person wrote (it may be only an attachment).
    Message,
    /// A system or service line: "X created group", joins, calls, renames,
    /// "Messages are end-to-end encrypted". Stored, but not counted as a message.
    Service,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// "image", "video", "audio", "voice", "sticker", "gif", "document", "contact",
    /// "location", "file"; "omitted" when the export left the media out.
    pub kind: String,
    /// The file name when the export names one.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reaction {
    pub author: String,
    pub emoji: String,
}

/// One normalized message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMessage {
    /// Stable id of the conversation within the unit: a chat/thread/channel id,
    /// or its title when the export has no id.
    pub conversation: String,
    /// The conversation's human title (group name, the other person, subject).
    pub conversation_title: Option<String>,
    /// True for groups and channels, false for one-to-one chats, None when unknown.
    pub group: Option<bool>,
    pub author: Author,
    pub at: When,
    /// The body as plain text (entities flattened, markup unescaped, mojibake
    /// repaired). Mentions are written as `@Name`.
    pub text: String,
    pub kind: MessageKind,
    pub attachments: Vec<Attachment>,
    /// The export's own message id, when it has one.
    pub id: Option<String>,
    /// The id of the message this one replies to or quotes.
    pub reply_to: Option<String>,
    pub reactions: Vec<Reaction>,
    pub edited: bool,
    /// 1-based line in the file where the record starts (for line-based formats).
    pub line: Option<u64>,
}

impl RawMessage {
    /// A plain message with everything optional left empty.
    pub fn new(
        conversation: impl Into<String>,
        author: Author,
        at: When,
        text: impl Into<String>,
    ) -> RawMessage {
        RawMessage {
            conversation: conversation.into(),
            conversation_title: None,
            group: None,
            author,
            at,
            text: text.into(),
            kind: MessageKind::Message,
            attachments: Vec::new(),
            id: None,
            reply_to: None,
            reactions: Vec::new(),
            edited: false,
            line: None,
        }
    }
}

/// A note or document (Markdown, Obsidian, PDF, plain text): memory material,
/// not a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Path relative to the source root.
    pub path: PathBuf,
    pub title: String,
    /// The text, Markdown kept as Markdown (frontmatter removed).
    pub text: String,
    pub created: Option<When>,
    pub modified: Option<When>,
    pub tags: Vec<String>,
    /// Outgoing links: wikilink targets and Markdown link URLs.
    pub links: Vec<String>,
    /// Frontmatter keys and values as strings.
    pub properties: Vec<(String, String)>,
}

/// A malformed record, skipped and reported; parsing goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub reason: String,
}

/// Where importers send what they read.
pub trait Sink {
    fn message(&mut self, m: RawMessage);
    fn document(&mut self, d: Document);
    fn problem(&mut self, p: Problem);
}

/// A group of files one importer reads together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unit {
    pub format: Format,
    /// Paths relative to the source root, sorted.
    pub files: Vec<PathBuf>,
    /// What to call it in messages: the main file or folder, relative to the root.
    pub label: PathBuf,
}

/// A whole unit that cannot be read. Says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {reason}")]
    Unreadable { file: PathBuf, reason: String },
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImportError {
    pub fn unreadable(file: &Path, reason: impl Into<String>) -> ImportError {
        ImportError::Unreadable {
            file: file.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// What went wrong, without the file name (for lists that show it apart).
    pub fn reason(&self) -> String {
        match self {
            ImportError::Unreadable { reason, .. } => reason.clone(),
            ImportError::Io { source, .. } => source.to_string(),
        }
    }

    pub fn io(file: &Path, source: std::io::Error) -> ImportError {
        ImportError::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}

pub trait Importer: Send + Sync {
    fn format(&self) -> Format;

    /// The units of `pool` (paths relative to `src`'s root, not yet claimed by
    /// another importer) that this importer reads. Look at names first and read
    /// only the head of a file when the name is not enough. With `forced` (the
    /// user said `--format`), claim whatever could plausibly be this format.
    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit>;

    /// Read one unit, streaming records into `out`.
    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError>;
}

/// Every importer, in the order they claim files: specific formats first,
/// catch-alls (notes, plain text) last.
pub fn importers() -> Vec<Box<dyn Importer>> {
    vec![
        // Folder-shaped exports first: they claim whole trees of files.
        Box::new(signal::Signal),
        Box::new(slack::Slack),
        Box::new(gchat::GoogleChat),
        Box::new(hangouts::Hangouts),
        Box::new(telegram::Telegram),
        Box::new(discord::Discord),
        Box::new(messenger::Instagram),
        Box::new(messenger::Messenger),
        Box::new(whatsapp::WhatsApp),
        Box::new(sigexport::Sigexport),
        Box::new(mbox::Mbox),
        Box::new(pdf::Pdf),
        // Last: notes take the Markdown and text files nobody else claimed.
        Box::new(notes::Notes),
    ]
}

/// A [`Sink`] that keeps everything: for tests and small previews.
#[derive(Debug, Default)]
pub struct Collect {
    pub messages: Vec<RawMessage>,
    pub documents: Vec<Document>,
    pub problems: Vec<Problem>,
}

impl Sink for Collect {
    fn message(&mut self, m: RawMessage) {
        self.messages.push(m);
    }
    fn document(&mut self, d: Document) {
        self.documents.push(d);
    }
    fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }
}

impl Collect {
    /// Messages written by people (not service lines).
    pub fn people_messages(&self) -> impl Iterator<Item = &RawMessage> {
        self.messages
            .iter()
            .filter(|m| m.kind == MessageKind::Message)
    }

    /// Distinct author names of people's messages.
    pub fn authors(&self) -> std::collections::BTreeSet<&str> {
        self.people_messages()
            .map(|m| m.author.name.as_str())
            .collect()
    }
}

/// Claim and parse everything `importer` finds at `path` (a file, folder or
/// zip): what tests use to run one importer on a fixture.
pub fn read_with(
    importer: &dyn Importer,
    path: &Path,
    forced: bool,
) -> Result<(Vec<Unit>, Collect), ImportError> {
    let src = open_source(path).map_err(|e| ImportError::io(path, e))?;
    let pool = src.files().to_vec();
    let units = importer.claim(src.as_ref(), &pool, forced);
    let mut out = Collect::default();
    for unit in &units {
        importer.parse(src.as_ref(), unit, &mut out)?;
    }
    Ok((units, out))
}
