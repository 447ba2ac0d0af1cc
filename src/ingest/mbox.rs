//! E-mail: mbox mailboxes (Gmail Takeout, Thunderbird, Apple Mail exports) and
//! single `.eml` messages.
//!
//! An mbox is a stream of RFC 5322 messages, each introduced by a `From_` line
//! (`From sender@example.com Sat Jan  3 01:05:34 1996`; Gmail Takeout writes
//! `From 1790000000000000000@xxx Mon Jan 01 00:00:00 +0000 2024`). Body lines
//! that start with `From ` are quoted as `>From ` (mboxrd quotes `>From ` again
//! as `>>From `, and one `>` is removed when reading). Gmail adds `X-GM-THRID`
//! (the thread) and `X-Gmail-Labels` (`Inbox,Sent,"Travel, 2023"`). Sources:
//! RFC 4155, the qmail mbox(5) page, and Google Takeout mail files.
//!
//! The mailbox is split here, line by line with a `BufRead`, so a multi-GB mbox
//! is never in memory whole; the `From_` split is written by hand (rather than
//! with `mail_parser::mailbox::mbox::MessageIterator`) because that iterator
//! gives no line numbers for Problems, splits on any body line starting with
//! `From `, and cannot read the date of Gmail's `From_` lines. Each message is
//! then parsed with `mail-parser` (MIME, encodings, encoded words, dates).
//!
//! One record per mail: the author is the `From` display name (address as the
//! handle), the time is the `Date` header (or the `From_` line's date when the
//! header is missing or garbled), the text is the text/plain body (or the HTML
//! body as text) with quoted history removed: `>` lines and their "On … wrote:"
//! attribution, `-----Original Message-----` / Outlook header blocks, forwarded
//! copies and the `-- ` signature. The conversation is the Gmail thread id, else
//! the root of `References`/`In-Reply-To`, else the message's own id, else the
//! subject without `Re:`/`Fwd:` prefixes. Mail labelled `Sent` is the user's.
//!
//! Units: each mbox file; all `.eml` files of one folder together.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders};

use super::gchat::kind_for_file_name;
use super::{
    Attachment, Author, Format, ImportError, Importer, Problem, RawMessage, Sink, Source, Unit,
    When,
};

/// Reads mbox files and `.eml` messages.
pub struct Mbox;

impl Importer for Mbox {
    fn format(&self) -> Format {
        Format::Mbox
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let mut units = Vec::new();
        let mut eml: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for rel in pool {
            let name = file_name(src, rel);
            let ext = name
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default();
            let is_mbox = match ext.as_str() {
                "mbox" | "mbx" => true,
                "eml" => false,
                // Thunderbird and Apple Mail mailboxes have no extension.
                "" => sniff_mbox(src, rel),
                _ if forced => sniff_mbox(src, rel),
                _ => continue,
            };
            if is_mbox {
                units.push(Unit {
                    format: Format::Mbox,
                    files: vec![rel.clone()],
                    label: rel.clone(),
                });
            } else if ext == "eml" || (forced && sniff_message(src, rel)) {
                eml.entry(rel.parent().map(Path::to_path_buf).unwrap_or_default())
                    .or_default()
                    .push(rel.clone());
            }
        }
        for (folder, mut files) in eml {
            files.sort();
            let label = if files.len() == 1 || folder.as_os_str().is_empty() {
                files[0].clone()
            } else {
                folder
            };
            units.push(Unit {
                format: Format::Mbox,
                files,
                label,
            });
        }
        units
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        let parser = mail_parser();
        for rel in &unit.files {
            match parse_file(src, rel, &parser, out) {
                Ok(()) => {}
                // One unreadable .eml among many is a Problem, not the end.
                Err(e) if unit.files.len() > 1 => out.problem(Problem {
                    file: src.display(rel),
                    line: None,
                    reason: e.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A parser that decodes only the headers twin reads and skips the rest
/// (Received, DKIM, ARC: most of a Gmail header). Skipped headers keep their
/// offsets, so `header_raw` still reads `X-GM-THRID` and `X-Gmail-Labels`.
fn mail_parser() -> MessageParser {
    MessageParser::new()
        .with_mime_headers()
        .with_message_ids()
        .header_date(HeaderName::Date)
        .header_text(HeaderName::Subject)
        .header_address(HeaderName::From)
        .header_address(HeaderName::Sender)
        .header_address(HeaderName::To)
        .header_address(HeaderName::Cc)
        .default_header_ignore()
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

/// An mbox starts with a `From_` line followed by a header line.
fn sniff_mbox(src: &dyn Source, rel: &Path) -> bool {
    let Ok(head) = src.head(rel, 4096) else {
        return false;
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_default();
    first.starts_with(b"From ") && from_line(first, 1, true).is_some() && looks_like_header(second)
}

/// A lone message starts with header lines and has a typical one near the top.
fn sniff_message(src: &dyn Source, rel: &Path) -> bool {
    let Ok(head) = src.head(rel, 4096) else {
        return false;
    };
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    looks_like_header(first)
        && [
            "\nfrom:",
            "\ndate:",
            "\nsubject:",
            "\nmessage-id:",
            "\nreceived:",
        ]
        .iter()
        .any(|h| text.contains(h))
}

/// `Name: value`, the name being printable ASCII without spaces.
fn looks_like_header(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|&b| b.is_ascii_graphic()),
        _ => false,
    }
}

fn parse_file(
    src: &dyn Source,
    rel: &Path,
    parser: &MessageParser,
    out: &mut dyn Sink,
) -> Result<(), ImportError> {
    let shown = src.display(rel);
    let reader = BufReader::with_capacity(
        1 << 16,
        src.open(rel).map_err(|e| ImportError::io(&shown, e))?,
    );
    let mut last_line = 0;
    let result = split_mails(reader, |env, bytes| {
        last_line = env.line;
        read_mail(parser, env, bytes, &shown, out);
    });
    if let Err(e) = result {
        out.problem(Problem {
            file: shown,
            line: Some(last_line),
            reason: format!("reading stopped after the mail starting here: {e}"),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Splitting an mbox.

/// Where a mail starts and what its `From_` line says.
#[derive(Debug, Clone, PartialEq)]
struct Envelope {
    /// 1-based line of the `From_` line (or of the first line of a lone message).
    line: u64,
    /// The `From_` line's date, when it has a readable one.
    date: Option<DateTime<Utc>>,
    /// The `From_` line's sender address.
    sender: Option<String>,
    /// True when the mail came after a `From_` line (mboxrd quoting applies).
    mbox: bool,
}

/// Call `each` for every mail of `reader`: an mbox, or a lone message (a file
/// that does not start with a `From_` line is one mail starting at its first line).
fn split_mails<R: BufRead>(
    mut reader: R,
    mut each: impl FnMut(&Envelope, &[u8]),
) -> io::Result<()> {
    let mut line = Vec::with_capacity(256);
    let mut mail: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut env: Option<Envelope> = None;
    let mut number = 0u64;
    let mut prev_blank = true;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        if line.starts_with(b"From ")
            && let Some(next) = from_line(&line, number, prev_blank)
        {
            flush(&mut env, &mut mail, &mut each);
            env = Some(next);
            prev_blank = false;
            continue;
        }
        let blank = line.iter().all(u8::is_ascii_whitespace);
        let current = match &env {
            Some(e) => e,
            None if blank => continue,
            None => env.insert(Envelope {
                line: number,
                date: None,
                sender: None,
                mbox: false,
            }),
        };
        prev_blank = blank;
        // mboxrd: ">From " -> "From ", ">>From " -> ">From ".
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if current.mbox && quotes > 0 && line[quotes..].starts_with(b"From ") {
            mail.extend_from_slice(&line[1..]);
        } else {
            mail.extend_from_slice(&line);
        }
    }
    flush(&mut env, &mut mail, &mut each);
    Ok(())
}

fn flush(env: &mut Option<Envelope>, mail: &mut Vec<u8>, each: &mut impl FnMut(&Envelope, &[u8])) {
    if let Some(e) = env.take() {
        if !mail.iter().all(u8::is_ascii_whitespace) || e.mbox {
            each(&e, mail);
        }
        mail.clear();
    }
}

/// Read a `From_` line. It separates mails when its date reads, or, after a
/// blank line, when it names an address (so a body line "From here on…" that
/// an mboxo writer failed to quote does not split a mail).
fn from_line(line: &[u8], number: u64, prev_blank: bool) -> Option<Envelope> {
    let text = String::from_utf8_lossy(line);
    let mut words = text.get(5..)?.split_whitespace();
    let sender = words.next()?.to_string();
    let rest: Vec<&str> = words.collect();
    let date = ctime_date(&rest);
    let separates =
        date.is_some() || (prev_blank && (sender.contains('@') || sender == "MAILER-DAEMON"));
    separates.then_some(Envelope {
        line: number,
        date,
        sender: Some(sender),
        mbox: true,
    })
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The date of a `From_` line: `Sat Jan  3 01:05:34 1996` or Gmail's
/// `Mon Jan 01 00:00:00 +0000 2024`. Without a zone it is read as UTC (it is
/// only a fallback for a missing `Date` header).
fn ctime_date(words: &[&str]) -> Option<DateTime<Utc>> {
    let (mut month, mut day, mut time, mut year, mut offset) = (None, None, None, None, 0i32);
    for w in words {
        let lower = w.to_ascii_lowercase();
        if month.is_none()
            && let Some(i) = MONTHS.iter().position(|m| lower == *m)
        {
            month = Some(i as u32 + 1);
        } else if w.contains(':') && time.is_none() {
            let mut p = w.split(':').map(|n| n.parse::<u32>().ok());
            let (h, m, s) = (p.next()??, p.next()??, p.next().unwrap_or(Some(0))?);
            time = NaiveTime::from_hms_opt(h, m, s);
        } else if (w.starts_with('+') || w.starts_with('-')) && w.len() == 5 && w.is_ascii() {
            let sign = if w.starts_with('-') { -1 } else { 1 };
            let hh: i32 = w[1..3].parse().ok()?;
            let mm: i32 = w[3..5].parse().ok()?;
            offset = sign * (hh * 3600 + mm * 60);
        } else if let Ok(n) = w.parse::<u32>() {
            if month.is_some() && day.is_none() && n <= 31 {
                day = Some(n);
            } else if n >= 1000 {
                year = Some(n);
            }
        }
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year?).ok()?, month?, day?)?;
    let local = NaiveDateTime::new(date, time?);
    local
        .and_local_timezone(FixedOffset::east_opt(offset)?)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

// ---------------------------------------------------------------------------
// One mail to one record.

fn read_mail(
    parser: &MessageParser,
    env: &Envelope,
    bytes: &[u8],
    file: &Path,
    out: &mut dyn Sink,
) {
    let problem = |out: &mut dyn Sink, reason: String| {
        out.problem(Problem {
            file: file.to_path_buf(),
            line: Some(env.line),
            reason,
        });
    };
    let Some(msg) = parser.parse(bytes).filter(|m| !m.headers().is_empty()) else {
        problem(
            out,
            "not an e-mail: no header could be read; skipped".to_string(),
        );
        return;
    };
    let Some(author) = author(&msg, env) else {
        problem(
            out,
            "e-mail with no From header (no sender); skipped".to_string(),
        );
        return;
    };
    let at = msg
        .date()
        .filter(|d| d.is_valid())
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
        .or(env.date);
    let Some(at) = at else {
        let why = match msg.header_raw("Date") {
            Some(raw) => format!("the Date header `{}` cannot be read", raw.trim()),
            None => "there is no Date header".to_string(),
        };
        problem(
            out,
            format!(
                "e-mail from {}: {why} (and no date on a From_ line); skipped",
                author.name
            ),
        );
        return;
    };
    let subject = msg.subject().map(str::trim).unwrap_or("");
    let topic = normalized_subject(subject);
    let text = msg
        .body_text(0)
        .map(|t| strip_history(&t))
        .unwrap_or_default();

    let mut m = RawMessage::new(conversation(&msg, topic), author, When::Utc(at), text);
    m.conversation_title = (!topic.is_empty()).then(|| topic.to_string());
    let recipients = address_count(msg.to()) + address_count(msg.cc());
    m.group = (recipients > 0).then_some(recipients > 1);
    m.attachments = attachments(&msg);
    m.id = msg.message_id().map(str::to_string);
    m.reply_to = first_id(msg.in_reply_to());
    m.line = Some(env.line);
    out.message(m);
}

fn author(msg: &Message<'_>, env: &Envelope) -> Option<Author> {
    let addr = msg
        .from()
        .and_then(Address::first)
        .or_else(|| msg.sender().and_then(Address::first));
    let (name, handle) = match addr {
        Some(a) => {
            let address = a
                .address()
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty());
            let name = a
                .name()
                .map(|n| n.trim().trim_matches('"').trim())
                .filter(|n| !n.is_empty());
            match (name, address) {
                (Some(n), address) => (n.to_string(), address),
                (None, Some(address)) => (address.clone(), Some(address)),
                (None, None) => return None,
            }
        }
        // Gmail's From_ lines carry a message number, not the sender.
        None => {
            let sender = env
                .sender
                .as_deref()
                .filter(|s| s.contains('@') && !s.ends_with("@xxx"))?;
            (sender.to_string(), Some(sender.to_lowercase()))
        }
    };
    let me = sent_label(msg).then_some(true);
    Some(Author { name, handle, me })
}

/// Does `X-Gmail-Labels` hold `Sent` (or `\Sent`)?
fn sent_label(msg: &Message<'_>) -> bool {
    let Some(raw) = msg.header_raw("X-Gmail-Labels") else {
        return false;
    };
    labels(raw).iter().any(|l| l.eq_ignore_ascii_case("sent"))
}

/// Split a label list on commas outside double quotes; strip quotes and `\`.
fn labels(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in raw.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|l| l.trim().trim_start_matches('\\').trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn address_count(a: Option<&Address<'_>>) -> usize {
    a.map_or(0, |a| a.iter().count())
}

fn first_id(v: &HeaderValue<'_>) -> Option<String> {
    let id = match v {
        HeaderValue::Text(t) => Some(t.as_ref()),
        HeaderValue::TextList(l) => l.first().map(|t| t.as_ref()),
        _ => None,
    }?;
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    (!id.is_empty()).then(|| id.to_string())
}

/// The thread: Gmail's thread id, else the first of References (the root),
/// else In-Reply-To, else this mail's own id (so a thread's root and its replies
/// meet), else the subject.
fn conversation(msg: &Message<'_>, topic: &str) -> String {
    if let Some(thread) = msg
        .header_raw("X-GM-THRID")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return thread.to_string();
    }
    first_id(msg.references())
        .or_else(|| first_id(msg.in_reply_to()))
        .or_else(|| msg.message_id().map(str::to_string))
        .unwrap_or_else(|| {
            if topic.is_empty() {
                "(no subject)".to_string()
            } else {
                topic.to_string()
            }
        })
}

const REPLY_PREFIXES: [&str; 14] = [
    "re", "fwd", "fw", "aw", "wg", "sv", "vs", "antw", "r", "tr", "rv", "ref", "odp", "enc",
];

/// The subject without reply/forward prefixes ("Re: Fwd: AW: lunch" -> "lunch").
fn normalized_subject(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        let Some(colon) = s.find(':') else { return s };
        let head = s[..colon].trim();
        // "Re[2]" and "Re(2)" count too.
        let word = head.split(['[', '(']).next().unwrap_or(head);
        if REPLY_PREFIXES.iter().any(|p| word.eq_ignore_ascii_case(p)) {
            s = s[colon + 1..].trim_start();
        } else {
            return s;
        }
    }
}

fn attachments(msg: &Message<'_>) -> Vec<Attachment> {
    msg.attachments()
        .filter_map(|part| {
            let (ctype, subtype) = part
                .content_type()
                .map(|c| {
                    (
                        c.ctype().to_ascii_lowercase(),
                        c.subtype().unwrap_or("").to_ascii_lowercase(),
                    )
                })
                .unwrap_or_default();
            if ctype == "application" && subtype.ends_with("signature") {
                return None;
            }
            let name = part.attachment_name().map(str::to_string);
            let kind = match (ctype.as_str(), subtype.as_str()) {
                ("image", "gif") => "gif",
                ("image", _) => "image",
                ("video", _) => "video",
                ("audio", _) => "audio",
                ("text", "vcard" | "x-vcard" | "directory") => "contact",
                ("text", _) => "document",
                ("application", s)
                    if s == "pdf"
                        || s == "msword"
                        || s == "rtf"
                        || s.starts_with("vnd.openxmlformats")
                        || s.starts_with("vnd.ms-")
                        || s.starts_with("vnd.oasis.opendocument") =>
                {
                    "document"
                }
                _ => name.as_deref().map_or("file", kind_for_file_name),
            };
            Some(Attachment {
                kind: kind.to_string(),
                name,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Quoted history.

/// Verbs of the line a mail client writes above a quote ("On … Bob wrote:",
/// "Am … schrieb Bob <bob@example.org>:"); the line also ends with a colon.
const ATTRIBUTION_VERBS: [&str; 14] = [
    "wrote",
    "writes",
    "schrieb",
    "a écrit",
    "escribió",
    "ha scritto",
    "skrev",
    "schreef",
    "napisał",
    "escreveu",
    "kirjoitti",
    "написал",
    "yazdı",
    "寫道",
];

/// Starts of such a line when a client wrapped it over two lines.
const ATTRIBUTION_STARTS: [&str; 9] = [
    "On ", "Am ", "Le ", "El ", "Il ", "Den ", "Op ", "Em ", "W dniu ",
];

/// Separators that start a quoted or forwarded copy of other mail.
const HISTORY_MARKERS: [&str; 9] = [
    "original message",
    "forwarded message",
    "ursprüngliche nachricht",
    "weitergeleitete nachricht",
    "message d'origine",
    "message transféré",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
];

/// Header names of an Outlook-style quoted header block.
const FROM_HEADERS: [&str; 6] = ["From:", "De:", "Von:", "Van:", "Da:", "Från:"];
const SENT_HEADERS: [&str; 7] = [
    "Sent:",
    "Date:",
    "Gesendet:",
    "Envoyé :",
    "Enviado el:",
    "Datum:",
    "Inviato:",
];

/// The author's own words: drop `>` quotes with their attribution line, cut at
/// an "Original Message"/forward separator or an Outlook header block, and cut
/// the `-- ` signature.
fn strip_history(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let end = history_start(&lines).unwrap_or(lines.len());
    let lines = &lines[..end];
    let quoted = |l: &str| l.trim_start().starts_with('>');
    let mut keep: Vec<bool> = lines.iter().map(|l| !quoted(l)).collect();
    for i in 0..lines.len() {
        if quoted(lines[i]) && (i == 0 || !quoted(lines[i - 1])) {
            drop_attribution(lines, &mut keep, i);
        }
    }
    let mut out = String::with_capacity(body.len());
    let mut blank_run = 0;
    for (line, _) in lines.iter().zip(&keep).filter(|(_, k)| **k) {
        if *line == "-- " || *line == "--" {
            break;
        }
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line.trim_end());
    }
    out
}

/// Drop the attribution above the quote block starting at `start`.
fn drop_attribution(lines: &[&str], keep: &mut [bool], start: usize) {
    let mut j = start;
    while j > 0 && lines[j - 1].trim().is_empty() {
        j -= 1;
    }
    let Some(a) = j.checked_sub(1) else { return };
    let line = lines[a].trim();
    if !line.ends_with(':') || !ATTRIBUTION_VERBS.iter().any(|v| line.contains(v)) {
        return;
    }
    keep[a] = false;
    let starts = |l: &str| ATTRIBUTION_STARTS.iter().any(|s| l.starts_with(s));
    if !starts(line) && a > 0 && starts(lines[a - 1].trim()) {
        keep[a - 1] = false;
    }
}

/// The line where a copy of older mail begins, if any.
fn history_start(lines: &[&str]) -> Option<usize> {
    let next_text = |from: usize| {
        lines
            .iter()
            .skip(from)
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    };
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with("---")
            || t.starts_with("___")
            || t.starts_with("***")
            || t.starts_with("==")
        {
            let lower = t.to_lowercase();
            if HISTORY_MARKERS.iter().any(|m| lower.contains(m)) {
                return Some(i);
            }
            let rule = t.len() >= 10 && t.chars().all(|c| c == '_' || c == '-');
            if rule
                && next_text(i + 1).is_some_and(|n| FROM_HEADERS.iter().any(|h| n.starts_with(h)))
            {
                return Some(i);
            }
        }
        if t.eq_ignore_ascii_case("begin forwarded message:") {
            return Some(i);
        }
        // Outlook without a rule: "From: …" then "Sent: …" and "To:"/"Subject:".
        if FROM_HEADERS.iter().any(|h| t.starts_with(h)) {
            let block: Vec<&str> = lines.iter().skip(i + 1).take(5).map(|l| l.trim()).collect();
            let has = |names: &[&str]| block.iter().any(|l| names.iter().any(|h| l.starts_with(h)));
            if has(&SENT_HEADERS)
                && has(&[
                    "To:", "Subject:", "An:", "À :", "Para:", "Betreff:", "Objet :", "Asunto:",
                ])
            {
                return Some(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, MessageKind, read_with};
    use chrono::TimeZone;
    use proptest::prelude::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mbox");

    fn fixture(rel: &str) -> PathBuf {
        Path::new(DIR).join(rel)
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> When {
        When::Utc(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    }

    fn read(rel: &str) -> Collect {
        read_with(&Mbox, &fixture(rel), false)
            .expect("fixture reads")
            .1
    }

    #[test]
    fn gmail_takeout_mbox() {
        let c = read("gmail_takeout.mbox");
        let problems: Vec<(Option<u64>, &str)> = c
            .problems
            .iter()
            .map(|p| (p.line, p.reason.as_str()))
            .collect();
        assert_eq!(c.problems.len(), 1, "{problems:?}");
        assert_eq!(c.problems[0].line, Some(149));
        assert!(
            c.problems[0].reason.contains("`sometime soon`"),
            "{}",
            c.problems[0].reason
        );
        assert!(c.problems[0].file.ends_with("gmail_takeout.mbox"));

        assert_eq!(c.messages.len(), 8);
        assert!(c.messages.iter().all(|m| m.kind == MessageKind::Message));
        assert_eq!(
            c.authors().into_iter().collect::<Vec<_>>(),
            vec![
                "Ada Lovelace",
                "Charles Babbage",
                "Mary Somerville",
                "newsletter@example.org"
            ]
        );
        let lines: Vec<u64> = c.messages.iter().filter_map(|m| m.line).collect();
        assert_eq!(lines, vec![1, 21, 55, 78, 112, 122, 133, 158]);

        // A thread of three, by Gmail thread id.
        let thread: Vec<&RawMessage> = c
            .messages
            .iter()
            .filter(|m| m.conversation == "1790000000000000001")
            .collect();
        assert_eq!(thread.len(), 3);
        assert!(
            thread
                .iter()
                .all(|m| m.conversation_title.as_deref() == Some("Difference engine, part two"))
        );
        let first = thread[0];
        assert_eq!(first.author.name, "Charles Babbage");
        assert_eq!(first.author.handle.as_deref(), Some("charles@example.org"));
        assert_eq!(first.author.me, None);
        assert_eq!(first.at, utc(2024, 1, 8, 9, 15, 0));
        assert_eq!(
            first.text,
            "Ada,\n\nThe second engine needs 8,000 parts. Can you check the tables?\n\nCharles"
        );
        assert_eq!(first.id.as_deref(), Some("engine-1@example.org"));
        assert_eq!(first.group, Some(false));
        let reply = thread[1];
        assert_eq!(reply.author.name, "Ada Lovelace");
        assert_eq!(reply.author.me, Some(true), "labelled Sent");
        assert_eq!(reply.at, utc(2024, 1, 8, 18, 2, 11), "Date has +0100");
        assert_eq!(reply.text, "Yes, I will check them tonight.\n\nAda");
        assert_eq!(reply.reply_to.as_deref(), Some("engine-1@example.org"));
        assert_eq!(reply.group, Some(true), "two recipients");
        let outlook = thread[2];
        assert_eq!(outlook.text, "Thank you both.");
        assert_eq!(outlook.author.name, "Mary Somerville");

        // HTML only, with an attachment, a quoted-printable body and an encoded subject.
        let html = c
            .messages
            .iter()
            .find(|m| m.id.as_deref() == Some("diagram@example.org"))
            .unwrap();
        assert_eq!(
            html.text,
            "Here is the diagram.\nNote — the gears are numbered."
        );
        assert_eq!(
            html.conversation_title.as_deref(),
            Some("Diagramme für Ada")
        );
        assert_eq!(
            html.attachments,
            vec![
                Attachment {
                    kind: "image".into(),
                    name: Some("gears.png".into())
                },
                Attachment {
                    kind: "document".into(),
                    name: Some("notes.pdf".into())
                }
            ]
        );
        // No Date header: the From_ line's date is used.
        let nodate = c
            .messages
            .iter()
            .find(|m| m.id.as_deref() == Some("nodate@example.org"))
            .unwrap();
        assert_eq!(nodate.at, utc(2024, 2, 1, 12, 30, 0));
        assert_eq!(
            nodate.text,
            "From here on, dates come from the envelope.\nFrom the engine room."
        );
        // Without X-GM-THRID: the References root joins the mail to its thread.
        let refs = c
            .messages
            .iter()
            .find(|m| m.id.as_deref() == Some("refs-2@example.org"))
            .unwrap();
        assert_eq!(refs.conversation, "refs-1@example.org");
        let root = c
            .messages
            .iter()
            .find(|m| m.id.as_deref() == Some("refs-1@example.org"))
            .unwrap();
        assert_eq!(root.conversation, "refs-1@example.org");
        assert_eq!(
            root.text, "Root of a plain thread.",
            "the unquoted `>From` line is still a quote"
        );
        assert_eq!(refs.text, "A reply with a signature cut.");
        // The last mail has only an address in From.
        assert_eq!(c.messages[7].author.name, "newsletter@example.org");
        assert_eq!(
            c.messages[7].conversation_title.as_deref(),
            Some("Monthly news")
        );
    }

    #[test]
    fn mail_parser_sample_mbox_without_headers() {
        // stalwartlabs/mail-parser's sample: four From_ lines, mboxrd quoting, no headers.
        let c = read("mail-parser_sample.mbox");
        assert!(c.messages.is_empty());
        let lines: Vec<Option<u64>> = c.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(1), Some(4), Some(7), Some(13)]);
    }

    #[test]
    fn split_keeps_envelopes_and_unquotes() {
        let raw = std::fs::read(fixture("mail-parser_sample.mbox")).unwrap();
        let mut got = Vec::new();
        split_mails(&raw[..], |env, bytes| {
            got.push((env.clone(), String::from_utf8_lossy(bytes).into_owned()))
        })
        .unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].0.date.unwrap().timestamp(), 820_631_134);
        assert_eq!(got[1].0.date.unwrap().timestamp(), 1_027_453_163);
        assert_eq!(
            got[2].1,
            "Message 3\nFrom hello\n>From world\n>>From test\n\n"
        );
        assert_eq!(got[3].1, "Message 4\n> From\n>F\n");
        assert_eq!(got[3].0.date.unwrap().timestamp(), 1_516_030_200);
        assert_eq!(got[1].0.sender.as_deref(), Some("cras@irccrew.org"));
        let gmail = ctime_date(&["Mon", "Jan", "08", "17:02:11", "-0100", "2024"]);
        assert_eq!(gmail.map(When::Utc), Some(utc(2024, 1, 8, 18, 2, 11)));
    }

    #[test]
    fn eml_folders() {
        let (units, c) = read_with(&Mbox, &fixture("eml"), false).unwrap();
        let sizes: Vec<(&Path, usize)> = units
            .iter()
            .map(|u| (u.label.as_path(), u.files.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (Path::new("malformed"), 3),
                (Path::new("rfc"), 5),
                (Path::new("thirdparty"), 3)
            ]
        );
        assert_eq!(c.messages.len(), 8);
        assert_eq!(c.problems.len(), 3);
        let reasons: Vec<&str> = c.problems.iter().map(|p| p.reason.as_str()).collect();
        assert!(c.problems.iter().all(|p| p.line == Some(1)), "{reasons:?}");
        assert!(c.problems[0].file.ends_with("malformed/007.eml"));
        assert!(reasons[0].contains("no From header"), "{reasons:?}");
        assert!(reasons[1].contains("`Whenever`"), "{reasons:?}");
        assert!(
            reasons[2].contains("Al Gore") && reasons[2].contains("no Date header"),
            "{reasons:?}"
        );

        let by_id = |id: &str| {
            c.messages
                .iter()
                .find(|m| m.id.as_deref() == Some(id))
                .unwrap()
        };
        let by_title = |t: &str| {
            c.messages
                .iter()
                .find(|m| m.conversation_title.as_deref() == Some(t))
                .unwrap()
        };
        let nsb = by_title("A multipart example");
        assert_eq!(nsb.author.name, "Nathaniel Borenstein");
        assert_eq!(nsb.at, utc(1994, 10, 7, 23, 15, 5), "-0700 (PDT)");
        let kinds: Vec<&str> = nsb.attachments.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, vec!["audio", "image", "document", "file"]);
        assert!(
            nsb.text
                .starts_with("... Some text appears here ...\n\n[Note that"),
            "{}",
            nsb.text
        );
        let sample = by_title("Sample message");
        assert_eq!(
            sample.text,
            "This is implicitly typed plain US-ASCII text.\nIt does NOT end with a linebreak."
        );
        let yahoo = by_id("325993.29502.qm@web28416.mail.ukl.yahoo.com");
        assert_eq!(yahoo.author.name, "calpas calpas");
        assert_eq!(yahoo.author.handle.as_deref(), Some("calpas2007@yahoo.fr"));
        assert_eq!(
            yahoo.conversation_title.as_deref(),
            Some("[Shapelib] need some help")
        );
        assert_eq!(yahoo.at, utc(2011, 3, 9, 11, 19, 45));
        assert!(
            yahoo.text.starts_with("Dear all,\n\nI am writting")
                && yahoo.text.ends_with("issue???\n\nCheers")
        );
        let image = by_id("cdf5bf44-03a4-4be1-c9c7-88cb4a5838ed@example.com");
        assert_eq!(image.text, "Search for höhö", "HTML-only body as text");
        assert_eq!(
            image.attachments,
            vec![
                Attachment {
                    kind: "image".into(),
                    name: Some("kigaaldcbanejcbi.png".into())
                },
                Attachment {
                    kind: "image".into(),
                    name: Some("attach2.png".into())
                }
            ]
        );
        let signed = by_id("1.2.3.4@example");
        assert_eq!(signed.text, "There was a day\na happy day");
        assert!(
            signed.attachments.is_empty(),
            "the PGP signature is not an attachment"
        );
        assert_eq!(signed.at, utc(2007, 5, 23, 1, 58, 8));
        // Broken MIME nesting still gives the text part (mail-parser's reading).
        assert!(
            by_title("test multipart, related first")
                .text
                .starts_with("áóúäöüß")
        );
    }

    #[test]
    fn quoted_history_is_stripped() {
        let cases = [
            (
                "Sure.\n\nOn Mon, Jan 1, 2024 at 10:00 AM Bob <bob@x.org> wrote:\n> hi\n> there\n",
                "Sure.",
            ),
            (
                "Sure.\nOn Mon, 1 Jan 2024, Bob Example <\nbob@x.org> wrote:\n\n> hi\n",
                "Sure.",
            ),
            (
                "Top.\n> quoted\nInline answer.\n> more\n",
                "Top.\nInline answer.",
            ),
            (
                "Ok\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\n",
                "Ok",
            ),
            (
                "Ok\n________________________________\nFrom: Bob <b@x.org>\nSent: Monday\n",
                "Ok",
            ),
            (
                "Ok\n\nFrom: Bob <b@x.org>\nSent: Monday, 1 January\nTo: Ann\nSubject: hi\n\nold",
                "Ok",
            ),
            (
                "Look\n\n---------- Forwarded message ---------\nFrom: X\n",
                "Look",
            ),
            ("Bye\n-- \nAnn\nCEO\n", "Bye"),
            ("Am 01.01.2024 um 10:00 schrieb Bob:\n> hallo\n", ""),
            ("a\n\n\n\nb", "a\n\nb"),
        ];
        for (body, want) in cases {
            assert_eq!(strip_history(body), want, "{body:?}");
        }
    }

    #[test]
    fn subjects_and_labels() {
        assert_eq!(normalized_subject("Re: Fwd: AW: lunch"), "lunch");
        assert_eq!(normalized_subject("RE[2]: SV: plans"), "plans");
        assert_eq!(normalized_subject("Meeting: Tuesday"), "Meeting: Tuesday");
        assert_eq!(
            labels(" Inbox,\"\\\\Sent\",\"Travel, 2023\""),
            vec!["Inbox", "Sent", "Travel, 2023"]
        );
    }

    #[test]
    fn claims() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = std::fs::read(fixture("gmail_takeout.mbox")).unwrap();
        std::fs::write(dir.path().join("Inbox"), &mbox).unwrap();
        std::fs::write(
            dir.path().join("Inbox.msf"),
            b"// <!-- <mdb:mork:z v=\"1.4\"/> -->",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("notes"),
            b"From the desk of Ann\nnothing here",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("chat.txt"),
            b"From a@b.c Mon Jan  1 00:00:00 2024\nSubject: x\n\nhi\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("message.txt"),
            b"From: a@b.c\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nhi\n",
        )
        .unwrap();
        let (units, _) = read_with(&Mbox, dir.path(), false).unwrap();
        let files: Vec<&Path> = units.iter().map(|u| u.files[0].as_path()).collect();
        assert_eq!(files, vec![Path::new("Inbox")]);
        let (units, c) = read_with(&Mbox, dir.path(), true).unwrap();
        let files: Vec<&Path> = units.iter().map(|u| u.files[0].as_path()).collect();
        assert_eq!(
            files,
            vec![
                Path::new("Inbox"),
                Path::new("chat.txt"),
                Path::new("message.txt")
            ]
        );
        assert_eq!(c.messages.len(), 10);
        // A single file given directly.
        let (units, c) = read_with(&Mbox, &dir.path().join("Inbox"), false).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(c.messages.len(), 8);
    }

    #[test]
    fn truncated_mbox_keeps_earlier_mail() {
        let text = std::fs::read_to_string(fixture("gmail_takeout.mbox")).unwrap();
        let cut = text.find("Content-Transfer-Encoding: base64").unwrap() + 40;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.mbox");
        std::fs::write(&path, &text[..cut]).unwrap();
        let (_, c) = read_with(&Mbox, &path, false).unwrap();
        assert_eq!(c.messages.len(), 4);
        assert_eq!(c.messages[3].id.as_deref(), Some("diagram@example.org"));
    }

    fn parse_bytes(bytes: &[u8]) -> Collect {
        let parser = mail_parser();
        let mut out = Collect::default();
        split_mails(bytes, |env, mail| {
            read_mail(&parser, env, mail, Path::new("x"), &mut out)
        })
        .unwrap();
        out
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            parse_bytes(&bytes);
            let _ = strip_history(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn mutated_fixture_never_panics(pos in 0usize..9000, len in 0usize..64, ins in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = std::fs::read(fixture("gmail_takeout.mbox")).unwrap();
            let start = pos.min(bytes.len());
            let end = (start + len).min(bytes.len());
            bytes.splice(start..end, ins);
            parse_bytes(&bytes);
        }

        #[test]
        fn text_never_panics(s in "\\PC{0,300}") {
            let _ = strip_history(&s);
            let _ = normalized_subject(&s);
            let _ = labels(&s);
            let words: Vec<&str> = s.split_whitespace().collect();
            let _ = ctime_date(&words);
        }
    }
}
