//! WhatsApp "Export chat" text files (`.txt`, or the `.zip` WhatsApp shares).
//!
//! What the files look like (linuswillner/whatsapp-export-inconsistencies,
//! "Message format", "System messages", "Attachments"; the line grammar
//! follows Pustur/whatsapp-chat-parser, whose date-order heuristic we reuse):
//!
//! ```text
//! 12/31/20, 11:59 PM - Alice: Happy new year!           <- Android
//! 12/31/20, 11:59 PM - Messages and calls are end-to-end encrypted.  <- system, no author
//! [31/12/2020, 23:59:59] Alice: Happy new year!         <- iOS
//! second line of the same message                       <- continuation
//! ‎[31/12/2020, 23:59:59] Bob: ‎<attached: 00000012-PHOTO-2020-12-31-23-59-59.jpg>
//! ```
//!
//! - The timestamp follows the phone's locale: `d/m/yy` or `m/d/yy`,
//!   `dd.mm.yyyy`, `yyyy-mm-dd`, `13. 6. 2018.`; `h:mm`, `hh.mm.ss`, `klo`
//!   before the time (Finnish), `AM`, `a. m.`, `p.m.`, often with U+00A0 or
//!   U+202F before the marker. iOS puts U+200E (LRM) before system and media
//!   lines; phone numbers come wrapped in U+202A/U+202C.
//! - Day/month order is never written down: it is decided per file (per line
//!   format) from all its dates, as Pustur does: a first field above 12 means
//!   day first, a second field above 12 means month first; otherwise a first
//!   field that goes down within a year is the day; otherwise the field that
//!   changes more is the day; otherwise day first (month first for `yyyy`-first).
//! - One export writes one line format. The first message line establishes it;
//!   a line in another format is a continuation line (a date pasted into a
//!   message), unless that format recurs (3+ lines and 5%+ of the date lines),
//!   which happens when exports were concatenated.
//! - System lines have no `Author: ` part; on iOS, encryption notices and
//!   events are written with the chat or group as author and the text starts
//!   with U+200E: both become [`MessageKind::Service`].
//! - Media: `<Media omitted>` (Android), `image omitted` (iOS), `<attached:
//!   NAME>` (iOS with media), `NAME (file attached)` (Android with media, the
//!   caption on the next lines). Times are local wall-clock: [`When::Local`].
//!
//! The file is read twice, streaming: a survey pass learns the line format,
//! the date order and the authors; the second pass emits the records.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};

use super::{
    Attachment, Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Sink,
    Source, Unit, When,
};

/// Reads WhatsApp chat exports.
pub struct WhatsApp;

impl Importer for WhatsApp {
    fn format(&self) -> Format {
        Format::Whatsapp
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let chats: Vec<&PathBuf> = pool
            .iter()
            .filter(|rel| is_chat_file(src, rel, forced))
            .collect();
        chats
            .iter()
            .map(|chat| {
                let mut files = vec![(*chat).clone()];
                // Media sit next to the chat (a zip holds one chat and its
                // media). Where several chats share a folder, nobody can tell
                // whose media is whose, so they stay unclaimed.
                let alone = chats.iter().filter(|c| c.parent() == chat.parent()).count() == 1;
                if alone && let Some(dir) = chat.parent() {
                    files.extend(
                        pool.iter()
                            .filter(|p| p.parent() == Some(dir) && p != chat && is_media_file(p))
                            .cloned(),
                    );
                }
                files.sort();
                Unit {
                    format: Format::Whatsapp,
                    files,
                    label: (*chat).clone(),
                }
            })
            .collect()
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        let rel = unit.label.as_path();
        let file = src.display(rel);
        let open = || src.open(rel).map_err(|e| ImportError::io(&file, e));
        let survey = Survey::read(open()?).map_err(|e| ImportError::io(&file, e))?;
        if survey.shapes.is_empty() {
            if survey.has_text {
                return Err(ImportError::unreadable(
                    &file,
                    "not a WhatsApp chat export: no line starts with a date and time \
                     (export the chat again from WhatsApp, or pick the right --format)",
                ));
            }
            return Ok(());
        }
        let plan = survey.into_plan();
        let conversation = conversation_name(src, rel);
        let mut emitter = Emitter {
            plan: &plan,
            conversation,
            file: &file,
            out,
            pending: None,
        };
        emitter.run(open()?).map_err(|e| ImportError::io(&file, e))
    }
}

// ---------------------------------------------------------------------------
// Claiming

/// Chat files WhatsApp names in other languages start like these; the rest of
/// the name is the chat.
const CHAT_PREFIXES: &[&str] = &[
    "WhatsApp Chat with ",
    "WhatsApp Chat - ",
    "WhatsApp Chat mit ",
    "WhatsApp-Chat mit ",
    "Chat de WhatsApp con ",
    "Conversa do WhatsApp com ",
    "Discussion WhatsApp avec ",
    "Chat WhatsApp con ",
    "WhatsApp-chat met ",
    "WhatsApp chat met ",
];

const MEDIA_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "heic", "mp4", "3gp", "mov", "m4v", "avi", "mkv", "webm",
    "opus", "ogg", "oga", "m4a", "mp3", "aac", "amr", "wav", "pdf", "vcf", "doc", "docx", "xls",
    "xlsx", "ppt", "pptx",
];

/// The name the user gave the file: the root itself for a single-file source.
fn own_name<'a>(src: &'a dyn Source, rel: &'a Path) -> &'a Path {
    if rel.as_os_str().is_empty() {
        src.root()
    } else {
        rel
    }
}

fn extension_of(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_media_file(path: &Path) -> bool {
    MEDIA_EXTENSIONS.contains(&extension_of(path).as_str())
}

fn is_chat_file(src: &dyn Source, rel: &Path, forced: bool) -> bool {
    let path = own_name(src, rel);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = extension_of(path);
    if ext == "txt" {
        let lower = name.to_lowercase();
        if lower == "_chat.txt" || lower.contains("whatsapp") {
            return true;
        }
    } else if !forced || is_media_file(path) || ext == "json" || ext == "zip" {
        return false;
    }
    sniff(src, rel, forced)
}

/// Does the head of the file start with a chat line? Unforced, the line must
/// also look like a chat (` - ` after the time, brackets, or an author).
fn sniff(src: &dyn Source, rel: &Path, forced: bool) -> bool {
    let Ok(head) = src.head(rel, 4096) else {
        return false;
    };
    let text = String::from_utf8_lossy(&head);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    match parse_header(first) {
        Some(h) => forced || h.shape.after == After::Dash || h.bracketed || h.rest.contains(": "),
        None => false,
    }
}

/// The conversation: the chat file's name without "WhatsApp Chat with " and
/// ".txt"; for iOS's `_chat.txt`, the zip or folder holding it.
fn conversation_name(src: &dyn Source, rel: &Path) -> String {
    let own = own_name(src, rel);
    let name = own
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut name = strip_suffix_ignore_case(&name, ".txt").to_string();
    if name.eq_ignore_ascii_case("_chat") {
        let holder = match rel.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.file_name(),
            // `_chat.txt` at the root of a zip or folder, or opened alone.
            _ if rel.as_os_str().is_empty() => src.root().parent().and_then(Path::file_name),
            _ => src.root().file_name(),
        };
        if let Some(holder) = holder {
            name = strip_suffix_ignore_case(&holder.to_string_lossy(), ".zip").to_string();
        }
    }
    let bare = CHAT_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(&name)
        .trim();
    if bare.is_empty() {
        "whatsapp".to_string()
    } else {
        bare.to_string()
    }
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> &'a str {
    let cut = s.len().saturating_sub(suffix.len());
    match (s.get(..cut), s.get(cut..)) {
        (Some(head), Some(tail)) if tail.eq_ignore_ascii_case(suffix) => head,
        _ => s,
    }
}

// ---------------------------------------------------------------------------
// Reading lines

/// Lines of a file without their `\n`/`\r\n`, the BOM removed, invalid UTF-8
/// replaced. One buffer is reused for every line.
struct Lines<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    number: u64,
}

impl<R: Read> Lines<R> {
    fn new(reader: R) -> Lines<R> {
        Lines {
            reader: BufReader::with_capacity(1 << 16, reader),
            buf: Vec::new(),
            number: 0,
        }
    }

    /// The next line and its 1-based number.
    fn next_line(&mut self) -> io::Result<Option<(u64, Cow<'_, str>)>> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        Ok(Some((self.number, line_text(&self.buf, self.number == 1))))
    }
}

/// A line as read (its `\n` or `\r\n` included) as text: without the line
/// break, without the BOM on the file's first line, invalid UTF-8 replaced.
fn line_text(raw: &[u8], first: bool) -> Cow<'_, str> {
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let start = if first && raw.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let bytes = &raw[start.min(end)..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

// ---------------------------------------------------------------------------
// The header: date, time and separator at the start of a line

/// Characters WhatsApp (or the phone's bidi handling) sprinkles into lines:
/// skipped anywhere in the timestamp and removed from author names.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{200b}' | '\u{061c}')
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '\u{2007}' | '\u{2002}' | '\u{2003}'
    )
}

/// What follows the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum After {
    /// `12/31/20, 11:59 PM - ` (Android)
    Dash,
    /// `13.06.18 21.25.15: `
    Colon,
    /// `[31/12/2020, 23:59:59] ` (iOS) or a plain space
    Space,
}

/// The line format of a header, without the numbers. Brackets are left out:
/// some iOS exports drop them and the rest of the shape still tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    date_sep: char,
    spaced_date: bool,
    /// Index of the year among the three date fields.
    year_at: u8,
    long_year: bool,
    /// `,` or `.` right after the date, or nothing.
    joiner: Option<char>,
    /// A word before the time (`klo`, `오후`).
    word: bool,
    time_sep: char,
    seconds: bool,
    twelve_hour: bool,
    after: After,
}

#[derive(Debug)]
struct Header<'a> {
    shape: Shape,
    bracketed: bool,
    /// The three date fields as written.
    date: [u32; 3],
    hour: u32,
    minute: u32,
    second: u32,
    /// Some(true) for PM.
    pm: Option<bool>,
    /// Everything after the separator.
    rest: &'a str,
}

impl Header<'_> {
    /// The two non-year fields in the order written, and the year.
    fn day_month_year(&self) -> (u32, u32, u32) {
        let y = usize::from(self.shape.year_at);
        let mut others = (0..3).filter(|&i| i != y).map(|i| self.date[i]);
        let a = others.next().unwrap_or(0);
        let b = others.next().unwrap_or(0);
        (a, b, self.date[y])
    }
}

/// A cursor over the start of a line that steps over invisible characters.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&mut self) -> Option<char> {
        // Fast path: ASCII is never invisible.
        let b = *self.s.as_bytes().get(self.pos)?;
        if b < 0x80 {
            return Some(char::from(b));
        }
        loop {
            let c = self.s.get(self.pos..)?.chars().next()?;
            if !is_invisible(c) {
                return Some(c);
            }
            self.pos += c.len_utf8();
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        if self.peek() == Some(want) {
            self.pos += want.len_utf8();
            true
        } else {
            false
        }
    }

    fn spaces(&mut self) -> usize {
        let mut n = 0;
        while self.peek().is_some_and(is_space) {
            self.bump();
            n += 1;
        }
        n
    }

    fn one_space(&mut self) -> bool {
        if self.peek().is_some_and(is_space) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// A number of 1..=max ASCII digits, with its width; more digits fail.
    fn number(&mut self, max: usize) -> Option<(u32, usize)> {
        let mut value = 0u32;
        let mut width = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            if width == max {
                return None;
            }
            self.bump();
            value = value * 10 + d;
            width += 1;
        }
        (width > 0).then_some((value, width))
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }
}

/// Words some locales write before the time instead of AM/PM after it.
fn meridiem_word(word: &str) -> Option<bool> {
    match word {
        "오전" | "上午" | "午前" => Some(false),
        "오후" | "下午" | "午後" => Some(true),
        _ => None,
    }
}

/// Parses the timestamp at the start of a line, or None when the line does
/// not start with one (a continuation line).
fn parse_header(line: &str) -> Option<Header<'_>> {
    let mut c = Cursor { s: line, pos: 0 };
    let bracketed = c.eat('[');

    // The date: three numbers and one separator, maybe spaced ("13. 6. 2018").
    let (d0, w0) = c.number(4)?;
    let date_sep = c.bump().filter(|&s| matches!(s, '/' | '.' | '-'))?;
    let spaced_date = c.spaces() > 0;
    let (d1, w1) = c.number(4)?;
    if !c.eat(date_sep) {
        return None;
    }
    c.spaces();
    let (d2, w2) = c.number(4)?;
    let widths = [w0, w1, w2];
    if widths.contains(&3) || widths.iter().filter(|&&w| w == 4).count() > 1 {
        return None;
    }
    let year_at = widths.iter().position(|&w| w == 4).unwrap_or(2) as u8;
    let date = [d0, d1, d2];
    let in_range = (0..3)
        .filter(|&i| i != usize::from(year_at))
        .all(|i| (1..=31).contains(&date[i]));
    if !in_range {
        return None;
    }

    // Between date and time: `,` or `.`, spaces, maybe a word ("klo").
    let joiner = if c.eat(',') {
        Some(',')
    } else if c.eat('.') {
        Some('.')
    } else {
        None
    };
    if c.spaces() == 0 {
        return None;
    }
    let mut word_pm = None;
    let mut word = false;
    if !c.peek().is_some_and(|ch| ch.is_ascii_digit()) {
        let start = c.pos;
        let mut n = 0;
        while c.peek().is_some_and(|ch| !ch.is_ascii_digit()) {
            if n == 16 {
                return None;
            }
            c.bump();
            n += 1;
        }
        let text = line.get(start..c.pos)?;
        if !text.ends_with(is_space) {
            return None;
        }
        word = true;
        word_pm = meridiem_word(text.trim_matches(|ch: char| is_space(ch) || is_invisible(ch)));
    }

    // The time: h:mm, hh.mm, maybe :ss.
    let (hour, _) = c.number(2)?;
    let time_sep = c.bump().filter(|&s| matches!(s, ':' | '.'))?;
    let (minute, mw) = c.number(2)?;
    if mw != 2 {
        return None;
    }
    let mut second = None;
    let save = c.pos;
    if c.eat(time_sep) {
        match c.number(2) {
            Some((s, 2)) => second = Some(s),
            _ => c.pos = save,
        }
    }
    if hour > 23 || minute > 59 || second.is_some_and(|s| s > 59) {
        return None;
    }
    let pm = meridiem(&mut c).or(word_pm);

    if bracketed {
        c.spaces();
        if !c.eat(']') {
            return None;
        }
    }
    let save = c.pos;
    let after = if c.one_space() && c.eat('-') && c.one_space() {
        After::Dash
    } else {
        c.pos = save;
        if c.eat(':') && c.one_space() {
            After::Colon
        } else {
            c.pos = save;
            if !c.one_space() {
                return None;
            }
            After::Space
        }
    };
    let rest = c.rest();
    if rest
        .trim_matches(|ch: char| is_space(ch) || is_invisible(ch))
        .is_empty()
    {
        return None;
    }
    let shape = Shape {
        date_sep,
        spaced_date,
        year_at,
        long_year: widths.contains(&4),
        joiner,
        word,
        time_sep,
        seconds: second.is_some(),
        twelve_hour: pm.is_some(),
        after,
    };
    Some(Header {
        shape,
        bracketed,
        date,
        hour,
        minute,
        second: second.unwrap_or(0),
        pm,
        rest,
    })
}

/// `AM`, `pm`, `a. m.`, `p.m.`, `p. m.` (spaces may be U+00A0/U+202F), not
/// followed by a letter. Leaves the cursor alone when there is none.
fn meridiem(c: &mut Cursor<'_>) -> Option<bool> {
    let save = c.pos;
    c.spaces();
    let pm = match c.bump() {
        Some('a' | 'A') => false,
        Some('p' | 'P') => true,
        _ => {
            c.pos = save;
            return None;
        }
    };
    c.eat('.');
    c.spaces();
    if c.eat('m') || c.eat('M') {
        c.eat('.');
        if !c.peek().is_some_and(char::is_alphanumeric) {
            return Some(pm);
        }
    }
    c.pos = save;
    None
}

// ---------------------------------------------------------------------------
// What a header line says: who wrote it, or a system line

/// Bodies that mean an event, not words someone wrote (English exports).
const SERVICE_PHRASES: &[&str] = &[
    "Messages and calls are end-to-end encrypted",
    "Messages to this chat and calls are now secured",
    "Messages to this group are now secured",
    "Messages you send to this chat and calls are now secured",
    "Messages you send to this group are now secured",
    "Your security code with ",
    "This message was deleted",
    "You deleted this message",
    "Missed voice call",
    "Missed video call",
    "Missed group voice call",
    "Missed group video call",
    "Waiting for this message",
];

fn strip_invisible_start(s: &str) -> &str {
    s.trim_start_matches(is_invisible)
}

/// The author and body of `Name: text`, split at the first `": "`.
fn split_author(rest: &str) -> Option<(&str, &str)> {
    // A char search (memchr) for ':' beats a substring search for ": ".
    let mut from = 0;
    loop {
        let at = from + rest.get(from..)?.find(':')?;
        if rest.as_bytes().get(at + 1) == Some(&b' ') {
            return Some((rest.get(..at)?, rest.get(at + 2..)?));
        }
        from = at + 1;
    }
}

/// An author as written, without bidi marks and outer spaces.
fn clean_name(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim_matches(|c: char| is_space(c) || is_invisible(c));
    if trimmed.contains(is_invisible) {
        Cow::Owned(trimmed.chars().filter(|&c| !is_invisible(c)).collect())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// Could this be a name? System lines with a `": "` inside quotes are not.
fn name_like(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= 100 && !name.contains(['"', '\u{201c}', '\u{201d}'])
}

/// Is an authored body really an event (iOS writes those with an author)?
fn service_body(raw_body: &str) -> bool {
    let body = strip_invisible_start(raw_body);
    if SERVICE_PHRASES.iter().any(|p| body.starts_with(p)) {
        return true;
    }
    // iOS marks events and media with a leading U+200E; media are messages.
    raw_body.starts_with('\u{200e}') && media(body).is_none()
}

// ---------------------------------------------------------------------------
// Media

const MEDIA_OMITTED: &[&str] = &[
    "<Media omitted>",
    "<Medien ausgeschlossen>",
    "<Multimedia omitido>",
    "<Medios omitidos>",
    "<Médias omis>",
    "<Media weggelaten>",
    "<Mídia oculta>",
    "<Arquivo de mídia oculto>",
    "<Media omessi>",
    "<Media dihilangkan>",
    "<Media tidak disertakan>",
    "<Medya dahil edilmedi>",
    "<Без медиафайлов>",
];

const IOS_OMITTED: &[&str] = &[
    "image omitted",
    "video omitted",
    "audio omitted",
    "GIF omitted",
    "sticker omitted",
    "document omitted",
    "Contact card omitted",
    "video note omitted",
];

const FILE_ATTACHED: &[&str] = &[
    "(file attached)",
    "(Datei angehängt)",
    "(archivo adjunto)",
    "(fichier joint)",
    "(arquivo anexado)",
    "(file allegato)",
    "(bestand bijgevoegd)",
    "(dosya ekli)",
    "(файл добавлен)",
];

/// The attachment a message body stands for, if it is a media line.
fn media(body: &str) -> Option<Attachment> {
    let body = body.trim_matches(|c: char| is_space(c) || is_invisible(c));
    if MEDIA_OMITTED.contains(&body)
        || IOS_OMITTED.contains(&body)
        || (body.ends_with(" document omitted") && body.contains(" • "))
    {
        return Some(Attachment {
            kind: "omitted".into(),
            name: None,
        });
    }
    // iOS: `<attached: 00000012-PHOTO-2020-01-01-12-00-00.jpg>`, maybe after
    // a document's title ("report • 2 pages <attached: ...>").
    if let Some(inner) = body.strip_suffix('>')
        && let Some(open) = inner.rfind('<')
        && let Some((word, name)) = inner.get(open + 1..).and_then(|t| t.split_once(':'))
        && word.trim().chars().count() <= 30
        && !word.trim().is_empty()
        && has_extension(name.trim())
    {
        let name = name.trim().trim_start_matches(is_invisible);
        return Some(Attachment {
            kind: kind_of_file(name).into(),
            name: Some(name.to_string()),
        });
    }
    // Android: `IMG-20200101-WA0001.jpg (file attached)`.
    for marker in FILE_ATTACHED {
        if let Some(name) = body.strip_suffix(marker) {
            let name = name.trim_matches(|c: char| is_space(c) || is_invisible(c));
            if !name.is_empty() {
                return Some(Attachment {
                    kind: kind_of_file(name).into(),
                    name: Some(name.to_string()),
                });
            }
        }
    }
    None
}

fn has_extension(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// The kind of a media file from WhatsApp's naming (`IMG-`, `PTT-`,
/// `-PHOTO-`, `-AUDIO-`) and its extension.
fn kind_of_file(name: &str) -> &'static str {
    let upper = name.to_uppercase();
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let tagged = |tags: &[&str]| {
        tags.iter()
            .any(|t| upper.starts_with(&format!("{t}-")) || upper.contains(&format!("-{t}-")))
    };
    if tagged(&["STK", "STICKER"]) || ext == "webp" {
        "sticker"
    } else if tagged(&["GIF"]) {
        "gif"
    } else if tagged(&["PTT"]) || ext == "opus" {
        "voice"
    } else if tagged(&["IMG", "PHOTO"])
        || matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "heic" | "gif")
    {
        "image"
    } else if tagged(&["VID", "VIDEO"])
        || matches!(
            ext.as_str(),
            "mp4" | "3gp" | "mov" | "m4v" | "mkv" | "avi" | "webm"
        )
    {
        "video"
    } else if tagged(&["AUD", "AUDIO"])
        || matches!(
            ext.as_str(),
            "mp3" | "m4a" | "aac" | "ogg" | "oga" | "wav" | "amr"
        )
    {
        "audio"
    } else if ext == "vcf" {
        "contact"
    } else if matches!(
        ext.as_str(),
        "pdf"
            | "doc"
            | "docx"
            | "xls"
            | "xlsx"
            | "ppt"
            | "pptx"
            | "odt"
            | "ods"
            | "txt"
            | "csv"
            | "rtf"
            | "zip"
    ) || tagged(&["DOC"])
    {
        "document"
    } else {
        "file"
    }
}

// ---------------------------------------------------------------------------
// Pass 1: the survey

/// Evidence about the order of the two non-year date fields.
#[derive(Debug, Default)]
struct DateStats {
    first_over_12: bool,
    second_over_12: bool,
    first_drops: bool,
    second_drops: bool,
    first_change: u64,
    second_change: u64,
    /// The first date seen (where a later part of the file joins on).
    first: Option<(u32, u32, u32)>,
    prev: Option<(u32, u32, u32)>,
}

impl DateStats {
    fn observe(&mut self, a: u32, b: u32, year: u32) {
        self.first_over_12 |= a > 12;
        self.second_over_12 |= b > 12;
        self.first.get_or_insert((a, b, year));
        if let Some((pa, pb, py)) = self.prev {
            if (pa, pb, py) == (a, b, year) {
                return;
            }
            // Within a year months only grow: a field that goes down is the day.
            if py == year {
                self.first_drops |= a < pa;
                self.second_drops |= b < pb;
            }
            self.first_change += u64::from(a.abs_diff(pa));
            self.second_change += u64::from(b.abs_diff(pb));
        }
        self.prev = Some((a, b, year));
    }

    /// Adds the evidence of the lines right after these, as if they had
    /// been observed here one by one.
    fn join(&mut self, later: &DateStats) {
        let Some((a, b, year)) = later.first else {
            return;
        };
        // The step from this part's last date to the later part's first.
        self.observe(a, b, year);
        self.first_over_12 |= later.first_over_12;
        self.second_over_12 |= later.second_over_12;
        self.first_drops |= later.first_drops;
        self.second_drops |= later.second_drops;
        self.first_change += later.first_change;
        self.second_change += later.second_change;
        self.prev = later.prev;
    }

    fn day_first(&self, default: bool) -> bool {
        if self.first_over_12 || self.second_over_12 {
            return self.first_over_12;
        }
        if self.first_drops || self.second_drops {
            return self.first_drops;
        }
        match self.first_change.cmp(&self.second_change) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => default,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct AuthorStat {
    /// Header lines that start with `Name: `.
    lines: u32,
    /// Of those, lines that are people's messages (not iOS events).
    people: u32,
}

/// Values by name, in the order the names were first seen (so the parts of
/// a file join exactly as one pass over it would keep them).
#[derive(Debug)]
struct Tally<V> {
    at: HashMap<String, usize>,
    items: Vec<(String, V)>,
}

impl<V> Default for Tally<V> {
    fn default() -> Tally<V> {
        Tally {
            at: HashMap::new(),
            items: Vec::new(),
        }
    }
}

impl<V> Tally<V> {
    fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        let i = *self.at.get(name)?;
        Some(&mut self.items[i].1)
    }

    fn insert(&mut self, name: String, value: V) {
        self.at.insert(name.clone(), self.items.len());
        self.items.push((name, value));
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

#[derive(Debug)]
struct ShapeStats {
    shape: Shape,
    lines: u64,
    dates: DateStats,
    authors: Tally<AuthorStat>,
    /// `Name: Word` prefixes up to the second `": "`, to find names that
    /// themselves hold `": "`.
    pairs: Tally<u32>,
}

impl ShapeStats {
    fn new(shape: Shape) -> ShapeStats {
        ShapeStats {
            shape,
            lines: 0,
            dates: DateStats::default(),
            authors: Tally::default(),
            pairs: Tally::default(),
        }
    }
}

/// Too many line formats means the file is not a chat; later ones are ignored.
const MAX_SHAPES: usize = 64;
/// Bounds on the author maps, so a huge file cannot grow them without end.
const MAX_AUTHORS: usize = 20_000;
const MAX_PAIRS: usize = 4_096;
/// Bytes of whole lines surveyed as one part.
const PART: usize = 4 << 20;

#[derive(Debug, Default)]
struct Survey {
    /// In order of first appearance: the first is the established format.
    shapes: Vec<ShapeStats>,
    headers: u64,
    has_text: bool,
}

/// The next part of about [`PART`] bytes, ending with a whole line; None at
/// the end of the file.
fn next_part(r: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut part = Vec::with_capacity(PART + 4096);
    r.take(PART as u64).read_to_end(&mut part)?;
    if part.is_empty() {
        return Ok(None);
    }
    if part.last() != Some(&b'\n') {
        r.read_until(b'\n', &mut part)?;
    }
    Ok(Some(part))
}

impl Survey {
    /// Surveys a file in parts of whole lines, two at a time (this is the
    /// first of two passes, and the storing thread has nothing to do yet),
    /// joined in file order: the result is what one pass line by line gives.
    fn read(reader: impl Read) -> io::Result<Survey> {
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut survey = Survey::default();
        std::thread::scope(|scope| {
            let (to_helper, parts) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
            let (helped, surveyed) = std::sync::mpsc::sync_channel::<Survey>(1);
            scope.spawn(move || {
                for part in parts {
                    if helped.send(Survey::of_part(&part, false)).is_err() {
                        break;
                    }
                }
            });
            let mut first = true;
            while let Some(part) = next_part(&mut reader)? {
                let next = next_part(&mut reader)?;
                let handed = next.is_some_and(|n| to_helper.send(n).is_ok());
                survey.join(Survey::of_part(&part, first));
                first = false;
                if !handed {
                    break;
                }
                match surveyed.recv() {
                    Ok(s) => survey.join(s),
                    // The helper panicked: the scope passes it on.
                    Err(_) => break,
                }
            }
            Ok(survey)
        })
    }

    /// The survey of one part (lines as [`line_text`] reads them; `first` for
    /// the part the file starts with, whose first line may carry a BOM),
    /// unbounded: [`Self::join`] applies the bounds.
    fn of_part(part: &[u8], first: bool) -> Survey {
        let mut survey = Survey::default();
        for (i, raw) in part.split_inclusive(|&b| b == b'\n').enumerate() {
            let line = line_text(raw, first && i == 0);
            survey.has_text |= !line.trim().is_empty();
            if let Some(header) = parse_header(&line) {
                survey.observe(&header);
            }
        }
        survey
    }

    fn observe(&mut self, h: &Header<'_>) {
        self.headers += 1;
        let index = match self.shapes.iter().position(|s| s.shape == h.shape) {
            Some(i) => i,
            None => {
                self.shapes.push(ShapeStats::new(h.shape));
                self.shapes.len() - 1
            }
        };
        let stats = &mut self.shapes[index];
        stats.lines += 1;
        let (a, b, year) = h.day_month_year();
        stats.dates.observe(a, b, year);
        let Some((author, body)) = split_author(h.rest) else {
            return;
        };
        let people = !service_body(body);
        if let Some(stat) = stats.authors.get_mut(author) {
            stat.lines += 1;
            stat.people += u32::from(people);
        } else {
            stats.authors.insert(
                author.to_string(),
                AuthorStat {
                    lines: 1,
                    people: u32::from(people),
                },
            );
        }
        if let Some((word, _)) = split_author(body)
            && word.chars().count() <= 30
            && let Some(pair) = h.rest.get(..author.len() + 2 + word.len())
        {
            if let Some(n) = stats.pairs.get_mut(pair) {
                *n += 1;
            } else {
                stats.pairs.insert(pair.to_string(), 1);
            }
        }
    }

    /// Adds the survey of the lines right after these, with the bounds
    /// applied as one pass applies them: a shape, author or pair past its
    /// bound is only counted when it was admitted before.
    fn join(&mut self, later: Survey) {
        self.headers += later.headers;
        self.has_text |= later.has_text;
        for part in later.shapes {
            let index = match self.shapes.iter().position(|s| s.shape == part.shape) {
                Some(i) => i,
                None if self.shapes.len() < MAX_SHAPES => {
                    self.shapes.push(ShapeStats::new(part.shape));
                    self.shapes.len() - 1
                }
                None => continue,
            };
            let stats = &mut self.shapes[index];
            stats.lines += part.lines;
            stats.dates.join(&part.dates);
            for (name, stat) in part.authors.items {
                if let Some(s) = stats.authors.get_mut(&name) {
                    s.lines += stat.lines;
                    s.people += stat.people;
                } else if stats.authors.len() < MAX_AUTHORS {
                    stats.authors.insert(name, stat);
                }
            }
            for (pair, n) in part.pairs.items {
                if let Some(m) = stats.pairs.get_mut(&pair) {
                    *m += n;
                } else if stats.pairs.len() < MAX_PAIRS {
                    stats.pairs.insert(pair, n);
                }
            }
        }
    }

    /// Decides which line formats are headers, their date order, the authors
    /// and whether the chat is a group.
    fn into_plan(self) -> Plan {
        let total = self.headers;
        let mut formats = Vec::new();
        let mut authors: HashMap<String, AuthorStat> = HashMap::new();
        let mut pairs: HashMap<String, u32> = HashMap::new();
        for (i, stats) in self.shapes.into_iter().enumerate() {
            let recurring = stats.lines >= 3 && stats.lines * 20 >= total;
            if i > 0 && !recurring {
                continue;
            }
            // yyyy-first dates are ISO-like: month first unless shown otherwise.
            let day_first = stats.dates.day_first(stats.shape.year_at != 0);
            formats.push((stats.shape, day_first));
            for (name, stat) in stats.authors.items {
                let entry = authors.entry(name).or_default();
                entry.lines += stat.lines;
                entry.people += stat.people;
            }
            for (pair, n) in stats.pairs.items {
                *pairs.entry(pair).or_default() += n;
            }
        }
        let people = authors
            .iter()
            .filter(|(name, stat)| stat.people > 0 && accepts_author(name, stat))
            .map(|(name, _)| clean_name(name))
            .collect::<std::collections::HashSet<_>>()
            .len();
        let group = people > 2;
        Plan {
            formats,
            authors,
            pairs,
            group,
        }
    }
}

/// A name with quotes is accepted only when it recurs (a system line quoting
/// a group subject with `": "` inside does not).
fn accepts_author(name: &str, stat: &AuthorStat) -> bool {
    name_like(&clean_name(name)) || (stat.lines >= 2 && !clean_name(name).is_empty())
}

#[derive(Debug)]
struct Plan {
    /// The accepted line formats and whether each writes the day first.
    formats: Vec<(Shape, bool)>,
    authors: HashMap<String, AuthorStat>,
    pairs: HashMap<String, u32>,
    group: bool,
}

impl Plan {
    fn day_first(&self, shape: &Shape) -> Option<bool> {
        self.formats
            .iter()
            .find(|(s, _)| s == shape)
            .map(|&(_, d)| d)
    }

    /// Splits `rest` into author and body, or None for a system line.
    fn author_and_body<'a>(&self, rest: &'a str) -> Option<(&'a str, &'a str)> {
        if let Some((author, body)) = split_author(rest) {
            let stat = self.authors.get(author).copied().unwrap_or_default();
            if !accepts_author(author, &stat) {
                return None;
            }
            // "Team: Alpha: hi": take the longer name when every line starting
            // with "Team: " goes on with "Alpha: ".
            if let Some((word, _)) = split_author(body)
                && let Some(pair) = rest.get(..author.len() + 2 + word.len())
                && let Some(&n) = self.pairs.get(pair)
                && n >= 2
                && n == stat.lines
                && let Some(longer) = rest.get(pair.len() + 2..)
            {
                return Some((pair, longer));
            }
            return Some((author, body));
        }
        // "John Doe:." or "John Doe:" with nothing after: only a known author.
        let (author, body) = rest.split_once(':')?;
        let known = self.authors.get(author).is_some_and(|s| s.people > 0);
        known.then_some((author, body))
    }
}

// ---------------------------------------------------------------------------
// Pass 2: emitting records

#[derive(Debug)]
struct Pending {
    line: u64,
    at: NaiveDateTime,
    author: Author,
    kind: MessageKind,
    body: String,
    attachments: Vec<Attachment>,
}

struct Emitter<'a> {
    plan: &'a Plan,
    conversation: String,
    file: &'a Path,
    out: &'a mut dyn Sink,
    /// The record being read; None before the first header, or while the
    /// lines of a skipped (malformed) record go by.
    pending: Option<Pending>,
}

enum State {
    BeforeFirst,
    InRecord,
    Skipping,
}

impl Emitter<'_> {
    fn run(&mut self, reader: impl Read) -> io::Result<()> {
        let mut lines = Lines::new(reader);
        let mut state = State::BeforeFirst;
        let mut orphan_reported = false;
        let mut invalid_utf8_reported = false;
        while let Some((number, line)) = lines.next_line()? {
            if !invalid_utf8_reported && matches!(line, Cow::Owned(_)) {
                invalid_utf8_reported = true;
                self.problem(
                    Some(number),
                    "this line is not valid UTF-8; the bad bytes were replaced".into(),
                );
            }
            let header =
                parse_header(&line).and_then(|h| self.plan.day_first(&h.shape).map(|d| (h, d)));
            if let Some((header, day_first)) = header {
                self.flush();
                match self.start(&header, day_first, number) {
                    Ok(p) => {
                        self.pending = Some(p);
                        state = State::InRecord;
                    }
                    Err(reason) => {
                        self.problem(Some(number), reason);
                        state = State::Skipping;
                    }
                }
                continue;
            }
            match state {
                State::InRecord => {
                    if let Some(p) = self.pending.as_mut() {
                        p.body.push('\n');
                        p.body.push_str(&line);
                    }
                }
                State::BeforeFirst if !orphan_reported && !line.trim().is_empty() => {
                    orphan_reported = true;
                    self.problem(
                        Some(number),
                        "text before the first message (the line does not start with a date and time); skipped".into(),
                    );
                }
                _ => {}
            }
        }
        self.flush();
        Ok(())
    }

    fn problem(&mut self, line: Option<u64>, reason: String) {
        self.out.problem(Problem {
            file: self.file.to_path_buf(),
            line,
            reason,
        });
    }

    fn start(&self, h: &Header<'_>, day_first: bool, line: u64) -> Result<Pending, String> {
        let at = timestamp(h, day_first)?;
        let (author, kind, body, attachments) = match self.plan.author_and_body(h.rest) {
            Some((name, raw_body)) if !service_body(raw_body) => {
                let body = strip_invisible_start(raw_body);
                match media(body) {
                    Some(a) => (person(name), MessageKind::Message, String::new(), vec![a]),
                    None => (
                        person(name),
                        MessageKind::Message,
                        body.to_string(),
                        Vec::new(),
                    ),
                }
            }
            // iOS events carry the chat's name as author: not a person.
            Some((_, raw_body)) => (
                Author::default(),
                MessageKind::Service,
                strip_invisible_start(raw_body).to_string(),
                Vec::new(),
            ),
            None => (
                Author::default(),
                MessageKind::Service,
                strip_invisible_start(h.rest).to_string(),
                Vec::new(),
            ),
        };
        Ok(Pending {
            line,
            at,
            author,
            kind,
            body,
            attachments,
        })
    }

    fn flush(&mut self) {
        let Some(p) = self.pending.take() else { return };
        let mut text = p.body;
        let mut edited = false;
        trim_end_in_place(&mut text);
        // Newer exports append "‎<This message was edited>" to edited messages.
        if let Some(cut) = text.strip_suffix("<This message was edited>").map(str::len) {
            text.truncate(cut);
            edited = true;
            trim_end_in_place(&mut text);
        }
        if text.starts_with('\n') {
            text = text.trim_start_matches('\n').to_string();
        }
        // Android repeats a document's name on the line under it.
        if let Some(name) = p.attachments.first().and_then(|a| a.name.as_deref())
            && Path::new(name)
                .file_stem()
                .is_some_and(|s| s.to_string_lossy() == text)
        {
            text.clear();
        }
        let mut m = RawMessage::new(self.conversation.clone(), p.author, When::Local(p.at), text);
        m.conversation_title = Some(self.conversation.clone());
        m.group = Some(self.plan.group);
        m.kind = p.kind;
        m.attachments = p.attachments;
        m.edited = edited;
        m.line = Some(p.line);
        self.out.message(m);
    }
}

fn trim_end_in_place(text: &mut String) {
    let len = text
        .trim_end_matches(|c: char| c.is_whitespace() || is_invisible(c))
        .len();
    text.truncate(len);
}

/// An author from a name as written: phone numbers give a handle, "You" is
/// the exporting user.
fn person(raw: &str) -> Author {
    let name = clean_name(raw).into_owned();
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    let phone = digits.len() >= 5
        && name.chars().all(|c| {
            c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.') || is_space(c)
        });
    let handle = phone.then(|| {
        if name.starts_with('+') {
            format!("+{digits}")
        } else {
            digits
        }
    });
    let me = (name == "You").then_some(true);
    Author { name, handle, me }
}

fn timestamp(h: &Header<'_>, day_first: bool) -> Result<NaiveDateTime, String> {
    let (a, b, year) = h.day_month_year();
    let (day, month) = if day_first { (a, b) } else { (b, a) };
    let year = if h.shape.long_year { year } else { 2000 + year };
    let hour = match h.pm {
        Some(false) if h.hour == 12 => 0,
        Some(true) if h.hour < 12 => h.hour + 12,
        _ => h.hour,
    };
    let order = if day_first {
        "day before month"
    } else {
        "month before day"
    };
    NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|d| d.and_hms_opt(hour, h.minute, h.second))
        .ok_or_else(|| {
            format!(
                "the date {}/{}/{} does not exist (this file writes the {order}); message skipped",
                h.date[0], h.date[1], h.date[2]
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, read_with};
    use std::io::Write;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/whatsapp");

    fn fixture(name: &str) -> PathBuf {
        Path::new(DIR).join(name)
    }

    fn read(path: &Path) -> Collect {
        let (units, out) = read_with(&WhatsApp, path, false).unwrap();
        assert_eq!(units.len(), 1, "{}", path.display());
        out
    }

    fn local(s: &str) -> When {
        When::Local(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap())
    }

    fn services(c: &Collect) -> usize {
        c.messages
            .iter()
            .filter(|m| m.kind == MessageKind::Service)
            .count()
    }

    /// What a survey decided, in a comparable form.
    fn survey_print(s: &Survey) -> String {
        let mut out = format!("{} {}\n", s.headers, s.has_text);
        for st in &s.shapes {
            out += &format!(
                "{:?} {} {:?}\n{:?}\n{:?}\n",
                st.shape, st.lines, st.dates, st.authors.items, st.pairs.items
            );
        }
        out
    }

    #[test]
    fn a_survey_in_parts_is_the_survey_in_one_pass() {
        // Two shapes, both date orders' evidence, many authors and pairs
        // (past the bounds), CRLF, a BOM and a bad byte.
        let mut text = b"\xEF\xBB\xBF".to_vec();
        for i in 0..40_000u32 {
            let (d, m) = (1 + i % 28, 1 + (i / 28) % 12);
            let line = if i % 7 == 0 {
                format!(
                    "[{d:02}.{m:02}.21, 10:{:02}:00] P{}: Note{}: x\r\n",
                    i % 60,
                    i,
                    i % 5000
                )
            } else if i % 11 == 0 {
                "  continued line\n".to_string()
            } else {
                format!(
                    "{m}/{d}/21, 9:{:02} PM - Person {}: hi {i}\n",
                    i % 60,
                    i % 30_000
                )
            };
            text.extend_from_slice(line.as_bytes());
            if i == 5 {
                text.extend_from_slice(b"bad \xFF byte\n");
            }
        }
        let whole = {
            let mut s = Survey::default();
            s.join(Survey::of_part(&text, true));
            s
        };
        assert!(whole.shapes.iter().any(|s| s.authors.len() == MAX_AUTHORS));
        assert!(whole.shapes.iter().any(|s| s.pairs.len() == MAX_PAIRS));
        let lines: Vec<usize> = text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        for every in [1usize, 2, 3, 97, 1000, 12_345] {
            let mut s = Survey::default();
            let mut from = 0;
            for (k, &end) in lines.iter().enumerate() {
                if (k + 1) % every == 0 || k + 1 == lines.len() {
                    s.join(Survey::of_part(&text[from..end], from == 0));
                    from = end;
                }
            }
            assert_eq!(
                survey_print(&s),
                survey_print(&whole),
                "parts of {every} lines"
            );
        }
        // And a file of several parts read through the two-thread path.
        let big = text.repeat(PART * 3 / text.len() + 1);
        let mut whole = Survey::default();
        whole.join(Survey::of_part(&big, true));
        let read = Survey::read(std::io::Cursor::new(big)).unwrap();
        assert_eq!(survey_print(&read), survey_print(&whole));
    }

    fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The five chat-miner files hold the same ten lines in five locales.
    #[test]
    fn chat_miner_fixtures_in_every_locale() {
        let cases = [
            (
                "chat-miner_test_ddmmyy_24hrs.txt",
                "2019-01-20 11:23:00",
                "2021-12-30 22:01:00",
            ),
            (
                "chat-miner_test_mmddyy_24hrs.txt",
                "2019-01-20 11:23:00",
                "2021-12-30 22:01:00",
            ),
            (
                "chat-miner_test_[mmddyy]_24hrs.txt",
                "2019-01-20 11:23:00",
                "2021-12-30 22:01:00",
            ),
            (
                "chat-miner_test_mmddyyyy_12hrs.txt",
                "2019-01-20 11:23:00",
                "2021-12-30 22:01:00",
            ),
            (
                "chat-miner_test_yyyymmdd_24hrs.txt",
                "2019-01-20 11:23:00",
                "2021-12-30 22:01:00",
            ),
        ];
        for (name, second, last) in cases {
            let c = read(&fixture(name));
            assert!(c.problems.is_empty(), "{name}: {:?}", c.problems);
            assert_eq!(c.messages.len(), 9, "{name}");
            assert_eq!(c.people_messages().count(), 7, "{name}");
            assert_eq!(services(&c), 2, "{name}");
            let authors: Vec<&str> = c.authors().into_iter().collect();
            assert_eq!(
                authors,
                ["Jahn Doe", "John Doe", "John Doe 🤓", "John-John Doe", "🤓"],
                "{name}"
            );
            let m = &c.messages;
            assert_eq!(m[1].at, local(second), "{name}");
            assert_eq!(
                m[1].text, ".",
                "{name}: `John Doe:.` has an empty-spaced body"
            );
            assert_eq!(
                m[2].text,
                "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit. Duis libero."
            );
            assert_eq!(m[3].author.name, "John-John Doe");
            assert_eq!(m[3].text, "Lorem ipsum : dolor sit amet.");
            assert_eq!(m[4].kind, MessageKind::Service);
            assert_eq!(m[4].text, "+12 345 578 created group \"Groupname\"");
            assert_eq!(m[4].author, Author::default());
            assert_eq!(m[5].text, "You were added");
            assert_eq!(m[6].author.name, "John Doe 🤓");
            assert_eq!(m[6].text, "Lorem ipsum 🤓");
            assert_eq!(m[8].at, local(last), "{name}");
            assert_eq!(m[8].line, Some(10));
            assert_eq!(m[8].text, m[2].text.replace("Jahn", "John"));
            assert_eq!(m[0].conversation, name.trim_end_matches(".txt"));
            assert!(m.iter().all(|m| m.group == Some(true)));
        }
    }

    #[test]
    fn twelve_hour_spanish_markers() {
        let c = read(&fixture("chat-miner_test_mmddyyyy_12hrs.txt"));
        let at: Vec<When> = c.messages.iter().map(|m| m.at).collect();
        assert_eq!(at[0], local("2019-01-01 11:25:00"));
        assert_eq!(at[2], local("2019-01-30 20:49:00"));
        assert_eq!(
            at[4],
            local("2020-06-20 00:08:00"),
            "00:08 a. m. is just after midnight"
        );
        assert_eq!(
            at[7],
            local("2021-12-20 12:10:00"),
            "12:10 p. m. is just after noon"
        );
    }

    /// Pustur's sample: no field above 12, so the order comes from the 5 -> 4
    /// drop of the second field within 2017: month first.
    #[test]
    fn pustur_short_chat() {
        let c = read(&fixture("pustur_short-chat.txt"));
        assert!(c.problems.is_empty());
        assert_eq!(c.messages.len(), 5);
        assert_eq!(services(&c), 2);
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            ["+410123456789", "Sample User", "TestBot"]
        );
        let m = &c.messages;
        assert!(
            m[0].text
                .starts_with("Messages to this group are now secured")
        );
        assert_eq!(m[1].text, "You created group \"ShortChat\"");
        assert_eq!(m[2].at, local("2017-06-03 00:45:00"));
        assert_eq!(m[3].at, local("2017-08-05 01:48:00"));
        assert_eq!(m[4].at, local("2017-09-04 01:50:00"));
        assert_eq!(m[4].text, "How are you?\n\nIs everything alright?");
        assert_eq!(m[4].author.handle.as_deref(), Some("+410123456789"));
        assert_eq!(m[4].line, Some(5));
        assert_eq!(m[0].conversation, "pustur_short-chat");
        assert_eq!(m[0].group, Some(true));
    }

    /// Android and iOS lines mixed in one file: both formats recur, so both
    /// are headers, each with its own date order.
    #[test]
    fn mixed_android_and_ios_lines() {
        let c = read(&fixture("whatsapp-chat-parser-rb_sample.txt"));
        assert!(c.problems.is_empty());
        assert_eq!(c.messages.len(), 7);
        assert_eq!(c.people_messages().count(), 5);
        assert_eq!(services(&c), 2);
        assert_eq!(c.authors().len(), 5);
        let m = &c.messages;
        assert_eq!(m[0].at, local("2025-12-15 10:30:00"));
        assert_eq!(
            m[1].text,
            "Hi John! This is another Android message.\nIt has multiple lines\nto test grouping."
        );
        assert_eq!(m[2].author.name, "Alice");
        assert_eq!(m[2].at, local("2025-12-15 10:32:03"));
        assert_eq!(
            m[3].text,
            "And another iOS message.\nWith multi-line\ncontent as well."
        );
        assert_eq!(m[4].author.name, "Charlie");
        assert_eq!(m[4].at, local("2025-12-15 10:34:00"));
        assert_eq!(m[5].text, "Note System message on Android.");
        assert_eq!(m[6].kind, MessageKind::Service);
        assert_eq!(m[6].at, local("2025-12-15 10:36:00"));
        assert_eq!(
            m.iter().map(|m| m.line.unwrap()).collect::<Vec<_>>(),
            [1, 2, 5, 6, 9, 10, 11]
        );
    }

    /// Pustur's twelve format tests, one line each. 3/6/18 has no evidence
    /// either way: day first, as Pustur reads it.
    #[test]
    fn pustur_format_variants_one_per_file() {
        let text = std::fs::read_to_string(fixture("pustur_format_variants.txt")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12);
        let june3 = local("2018-06-03 13:55:00");
        let june13 = local("2018-06-13 21:25:15");
        let expected = [
            june3, june3, june13, june13, june13, june13, june3, june3, june13, june13, june3,
            june3,
        ];
        let dir = tempfile::tempdir().unwrap();
        for (i, (line, want)) in lines.iter().zip(expected).enumerate() {
            let path = write_file(dir.path(), &format!("WhatsApp Chat with v{i}.txt"), line);
            let c = read(&path);
            assert!(c.problems.is_empty(), "line {}: {:?}", i + 1, c.problems);
            assert_eq!(c.messages.len(), 1, "line {}", i + 1);
            let m = &c.messages[0];
            assert_eq!(m.at, want, "line {}: {line}", i + 1);
            assert_eq!(
                (m.author.name.as_str(), m.text.as_str()),
                ("a", "m"),
                "line {}",
                i + 1
            );
            assert_eq!(m.conversation, format!("v{i}"));
        }
    }

    /// The same twelve lines in one file: the first line sets the format;
    /// only the last line (`3/6/18, 1:55 PM - `) shares it, the ten others
    /// are continuation lines.
    #[test]
    fn lines_in_another_format_are_continuations() {
        let c = read(&fixture("pustur_format_variants.txt"));
        assert!(c.problems.is_empty());
        assert_eq!(c.messages.len(), 2);
        let m = &c.messages;
        assert_eq!(m[0].at, local("2018-06-03 13:55:00"));
        assert_eq!(m[0].text.lines().count(), 11);
        assert!(m[0].text.starts_with("m\n03-06-2018, 01.55 PM - a: m\n"));
        assert_eq!(
            (m[1].line, m[1].at),
            (Some(12), local("2018-06-03 13:55:00"))
        );
    }

    /// Built from the export-inconsistencies spec: Android, m/d/yy, 12-hour
    /// with U+202F before AM/PM, media with captions, documents, pasted dates.
    #[test]
    fn android_with_media_and_pasted_dates() {
        let c = read(&fixture("WhatsApp Chat with Bob Smith.txt"));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 10);
        assert_eq!(c.people_messages().count(), 8);
        assert_eq!(services(&c), 2);
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            ["Alice", "Bob Smith"]
        );
        let m = &c.messages;
        assert_eq!(m[0].kind, MessageKind::Service);
        assert_eq!(m[0].conversation, "Bob Smith");
        assert_eq!(m[0].group, Some(false));
        assert_eq!(m[2].text, "Yes: 10am at the usual place");
        assert_eq!(
            m[3].attachments,
            [Attachment {
                kind: "image".into(),
                name: Some("IMG-20210105-WA0001.jpg".into())
            }]
        );
        assert_eq!(m[3].text, "Here is the map");
        assert_eq!(
            m[4].attachments,
            [Attachment {
                kind: "omitted".into(),
                name: None
            }]
        );
        assert_eq!(m[4].text, "");
        assert_eq!(m[5].attachments[0].kind, "voice");
        assert_eq!(m[6].at, local("2021-01-13 22:02:00"));
        assert_eq!(
            m[6].text,
            "Notes from the call:\n1/14/21 10:00 AM budget review\n2021-01-15 09:00 standup"
        );
        assert_eq!(
            m[7].attachments[0],
            Attachment {
                kind: "document".into(),
                name: Some("test_document.pdf".into())
            }
        );
        assert_eq!(m[7].text, "", "Android repeats the document name under it");
        assert_eq!(m[8].author.name, "Bob Smith");
        assert_eq!(m[8].text, "Sure, see you then");
        assert!(m[8].edited);
        assert_eq!(m[9].kind, MessageKind::Service);
        assert_eq!(m[9].text, "This message was deleted");
        assert_eq!(m[9].line, Some(14));
    }

    /// Built from the spec: an iOS `_chat.txt` with BOM, CRLF, U+200E and
    /// `<attached: ...>` lines, inside the zip WhatsApp shares.
    #[test]
    fn ios_zip_with_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("WhatsApp Chat - Family.zip");
        let chat = std::fs::read(fixture("ios_chat_crlf_bom.txt")).unwrap();
        assert!(chat.starts_with(b"\xEF\xBB\xBF") && chat.windows(2).any(|w| w == b"\r\n"));
        {
            let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            for (name, bytes) in [
                ("_chat.txt", chat.as_slice()),
                (
                    "00000012-PHOTO-2021-01-05-09-18-11.jpg",
                    b"\xff\xd8".as_slice(),
                ),
                (
                    "00000013-AUDIO-2021-01-05-09-21-45.opus",
                    b"Opus".as_slice(),
                ),
                ("00000014-test_document.pdf", b"%PDF".as_slice()),
            ] {
                w.start_file(name, opts).unwrap();
                w.write_all(bytes).unwrap();
            }
            w.finish().unwrap();
        }
        let (units, c) = read_with(&WhatsApp, &zip_path, false).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(
            units[0].files.len(),
            4,
            "the media files belong to the chat"
        );
        assert_eq!(units[0].label, PathBuf::from("_chat.txt"));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.messages.len(), 13);
        assert_eq!(c.people_messages().count(), 8);
        assert_eq!(services(&c), 5);
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            ["+44 7700 900123", "Anna", "Ben"]
        );
        let m = &c.messages;
        assert!(
            m.iter()
                .all(|m| m.conversation == "Family" && m.group == Some(true))
        );
        assert_eq!(
            m[0].kind,
            MessageKind::Service,
            "the encryption notice has the group as author"
        );
        assert_eq!(m[0].author, Author::default());
        assert_eq!(m[1].text, "Anna created group “Family”");
        assert_eq!(m[2].text, "Good morning! 🌞");
        assert_eq!(m[2].at, local("2021-01-05 09:16:40"));
        assert_eq!(m[3].kind, MessageKind::Service);
        assert_eq!(
            m[3].text,
            "+44 7700 900123 joined using this group's invite link"
        );
        assert_eq!(
            m[4].attachments,
            [Attachment {
                kind: "image".into(),
                name: Some("00000012-PHOTO-2021-01-05-09-18-11.jpg".into())
            }]
        );
        assert_eq!(m[4].text, "");
        assert_eq!(m[5].attachments[0].kind, "omitted");
        assert_eq!(m[6].author.name, "+44 7700 900123");
        assert_eq!(m[6].author.handle.as_deref(), Some("+447700900123"));
        assert_eq!(m[6].text, "Thanks for adding me: happy to be here");
        assert_eq!(
            m[7].text,
            "Shopping list:\n- milk\n13/01/2021, 10:00 dentist"
        );
        assert_eq!(m[8].attachments[0].kind, "voice");
        assert_eq!(
            m[9].attachments[0],
            Attachment {
                kind: "document".into(),
                name: Some("00000014-test_document.pdf".into())
            }
        );
        assert_eq!(m[10].at, local("2021-01-14 18:02:33"));
        assert!(m[10].edited);
        assert_eq!(m[10].text, "See you at 7");
        assert_eq!(m[11].kind, MessageKind::Service);
        assert_eq!(m[12].text, "Missed voice call");
        assert_eq!(m[12].line, Some(15));
    }

    #[test]
    fn claims_by_name_or_content_and_takes_the_media_next_to_a_chat() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::copy(
            fixture("WhatsApp Chat with Bob Smith.txt"),
            d.join("WhatsApp Chat with Bob Smith.txt"),
        )
        .unwrap();
        std::fs::write(d.join("IMG-20210105-WA0001.jpg"), b"jpg").unwrap();
        std::fs::write(d.join("PTT-20210105-WA0002.opus"), b"opus").unwrap();
        std::fs::create_dir(d.join("other")).unwrap();
        std::fs::copy(fixture("pustur_short-chat.txt"), d.join("other/export.txt")).unwrap();
        std::fs::write(
            d.join("other/notes.txt"),
            "Buy milk\n2020-01-01 was a Wednesday\n",
        )
        .unwrap();
        std::fs::write(d.join("other/log.txt"), "2020-01-01 10:00 started\n").unwrap();
        std::fs::write(d.join("result.json"), "{}").unwrap();
        let src = crate::ingest::open_source(d).unwrap();
        let pool = src.files().to_vec();
        let units = WhatsApp.claim(src.as_ref(), &pool, false);
        let labels: Vec<&Path> = units.iter().map(|u| u.label.as_path()).collect();
        assert_eq!(
            labels,
            [
                Path::new("WhatsApp Chat with Bob Smith.txt"),
                Path::new("other/export.txt")
            ]
        );
        assert_eq!(units[0].files.len(), 3);
        assert_eq!(units[1].files.len(), 1);
        let forced = WhatsApp.claim(src.as_ref(), &pool, true);
        assert_eq!(forced.len(), 3, "forced, the log line is plausible too");
    }

    #[test]
    fn names_with_colons_learned_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = "1/2/21, 10:00 - Team: Alpha: hi\n\
                    1/2/21, 10:01 - Bob: Re: hi\n\
                    1/2/21, 10:02 - Team: Alpha: how are you\n\
                    1/2/21, 10:03 - Bob: fine\n\
                    1/2/21, 10:04 - Mom :): love you\n\
                    1/2/21, 10:05 - Ann changed the subject from \"a\" to \"b: c\"\n";
        let c = read(&write_file(dir.path(), "WhatsApp Chat with Team.txt", text));
        let names: Vec<&str> = c.messages.iter().map(|m| m.author.name.as_str()).collect();
        assert_eq!(
            names,
            ["Team: Alpha", "Bob", "Team: Alpha", "Bob", "Mom :)", ""]
        );
        assert_eq!(c.messages[1].text, "Re: hi");
        assert_eq!(c.messages[5].kind, MessageKind::Service);
        assert_eq!(c.messages[0].group, Some(true));
    }

    #[test]
    fn bad_lines_become_problems_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = "preamble the user pasted\n\
                    more of it\n\
                    31/12/20, 10:00 - Ann: new year\n\
                    30/02/21, 10:00 - Ann: no such day\n\
                    its second line\n\
                    1/3/21, 10:00 - Bob: \u{ff}fine\n";
        let path = write_file(dir.path(), "WhatsApp Chat with Ann.txt", text);
        let mut bytes = std::fs::read(&path).unwrap();
        // Make line 6 invalid UTF-8.
        let at = bytes
            .windows(2)
            .position(|w| w == "\u{ff}".as_bytes())
            .unwrap();
        bytes.splice(at..at + 2, [0xff]);
        std::fs::write(&path, bytes).unwrap();
        let c = read(&path);
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[1].text, "\u{fffd}fine");
        let lines: Vec<Option<u64>> = c.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(1), Some(4), Some(6)]);
        assert!(
            c.problems[1].reason.contains("30/2/21 does not exist"),
            "{}",
            c.problems[1].reason
        );
        assert!(c.problems.iter().all(|p| p.file == path));
    }

    #[test]
    fn a_named_chat_without_any_date_line_is_unreadable_and_an_empty_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "WhatsApp Chat with X.txt", "hello\nworld\n");
        let err = read_with(&WhatsApp, &path, false).unwrap_err();
        assert!(
            err.to_string().contains("no line starts with a date"),
            "{err}"
        );
        let empty = write_file(dir.path(), "_chat.txt", "");
        assert!(read(&empty).messages.is_empty());
    }

    #[test]
    fn conversation_names() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("WhatsApp Chat - Climbing");
        std::fs::create_dir(&sub).unwrap();
        let path = write_file(&sub, "_chat.txt", "[1/2/21, 10:00:00] Ann: hi\n");
        assert_eq!(read(&path).messages[0].conversation, "Climbing");
        assert_eq!(read(dir.path()).messages[0].conversation, "Climbing");
    }

    fn run_bytes(bytes: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("_chat.txt");
        std::fs::write(&path, bytes).unwrap();
        // Either records and problems, or an unreadable-file error: no panic.
        let _ = read_with(&WhatsApp, &path, true);
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
            let name = ["ios_chat_crlf_bom.txt", "WhatsApp Chat with Bob Smith.txt", "pustur_format_variants.txt"][which];
            let mut bytes = std::fs::read(fixture(name)).unwrap();
            for (at, byte) in edits {
                if bytes.is_empty() { break; }
                let at = at % bytes.len();
                if byte % 3 == 0 { bytes.remove(at); } else { bytes[at] = byte; }
            }
            run_bytes(&bytes);
        }
    }

    /// Throughput check: `cargo test --release --lib whatsapp::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("WhatsApp Chat with Perf.txt");
        let mut text = String::new();
        for i in 0..1_000_000u32 {
            let (d, h, m) = (1 + i % 28, i % 12 + 1, i % 60);
            text.push_str(&format!(
                "{}/{d}/21, {h}:{m:02}\u{202f}PM - Person {}: message number {i} with some words\n",
                1 + i % 12,
                i % 5
            ));
            if i % 10 == 0 {
                text.push_str("a second line\n");
            }
        }
        std::fs::write(&path, text).unwrap();
        let start = std::time::Instant::now();
        let (_, c) = read_with(&WhatsApp, &path, false).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(c.messages.len(), 1_000_000);
        println!("whatsapp: {:.0} messages/s", 1e6 / secs);
    }

    #[test]
    fn header_grammar_edge_cases() {
        assert!(
            parse_header("2016-04-29 10:30:00").is_none(),
            "nothing after the time"
        );
        assert!(
            parse_header("12/31/20, 11:59 PM - ").is_none(),
            "nothing after the dash"
        );
        assert!(parse_header("123/1/20, 10:00 - a: b").is_none());
        assert!(parse_header("1/1/20, 10:0 - a: b").is_none());
        assert!(parse_header("1/1/20, 24:00 - a: b").is_none());
        let h = parse_header("\u{200e}[3/6/18 1:55:00\u{a0}p.\u{202f}m.] a: m").unwrap();
        assert_eq!((h.hour, h.pm, h.rest), (1, Some(true), "a: m"));
        let h = parse_header("2018. 6. 13. 오후 9:25 - a: m").unwrap();
        assert_eq!((h.date, h.pm), ([2018, 6, 13], Some(true)));
        let h = parse_header("12/3/20, 10:00 - Amy: hi").unwrap();
        assert_eq!((h.pm, h.rest), (None, "Amy: hi"));
    }
}
