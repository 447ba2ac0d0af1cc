//! Notes: Markdown files, Obsidian vaults, JSON Canvas boards and plain text.
//!
//! What the files look like (Obsidian Help, "Obsidian Flavored Markdown" and
//! "Properties"; Quartz's Obsidian-compatibility notes; the JSON Canvas 1.0 spec
//! at github.com/obsidianmd/jsoncanvas; checked against kepano's public vault):
//!
//! ```text
//! ---                         <- YAML frontmatter ("properties"), first line only
//! categories:
//!   - "[[Meetings]]"          <- list items, often quoted wikilinks
//! tags: [daily, work]         <- inline list; `tags: a, b` is also common
//! created: 2023-09-12
//! ---
//! Met [[Steph Ango|Steph]] about ![[Daily.base#View]] #project/alpha
//! See [the post](https://stephango.com/vault).
//! ```
//!
//! - Wikilinks `[[Target]]`, `[[Target|alias]]`, `[[Target#Heading]]`,
//!   `[[Target^block]]` and embeds `![[Target]]` all link to `Target`.
//! - An inline tag is `#` after whitespace (or at the start of a line) followed
//!   by letters, digits, `_`, `-`, `/` or other non-punctuation characters, with
//!   at least one non-digit. `# Heading` (a space) is not a tag, nor is a `#`
//!   inside code, a URL fragment or `[[Note#Heading]]`.
//! - Daily notes are named `YYYY-MM-DD.md`; the date is the note's day.
//! - `.obsidian/` holds the app's settings and `.trash/` deleted notes: skipped.
//!   `.base` (database views), images and other attachments are not notes.
//! - A `.canvas` file is JSON: `{"nodes":[{"type":"text","text":"..."},
//!   {"type":"file","file":"a.md"},{"type":"link","url":"https://..."}],
//!   "edges":[...]}`; its text nodes become one document.
//! - `.txt` files are plain text: no frontmatter, tags or links. Other
//!   importers (WhatsApp) claim their own `.txt` first; notes take the rest.
//!
//! The frontmatter parser reads the simple YAML subset notes use: `key: value`
//! scalars (plain, 'single' or "double" quoted), `- item` block lists,
//! `[a, b]` flow lists, `|`/`>` block text and one level of nested keys
//! (flattened to `parent.child`). Anything else is kept as raw text.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use super::{Document, Format, ImportError, Importer, Problem, Sink, Source, Unit, When};

/// Reads Markdown notes, Obsidian vaults, JSON Canvas files and plain text.
pub struct Notes;

/// Notes bigger than this are not notes (logs, dumps): reported and skipped.
const MAX_NOTE_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Markdown,
    Text,
    Canvas,
}

impl Importer for Notes {
    fn format(&self) -> Format {
        Format::Notes
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        let files: Vec<PathBuf> = pool
            .iter()
            .filter(|rel| !in_hidden_folder(rel))
            .filter(|rel| kind_of(src, rel).is_some() || (forced && looks_like_text(src, rel)))
            .cloned()
            .collect();
        if files.is_empty() {
            return Vec::new();
        }
        let label = if files.len() == 1 {
            files[0].clone()
        } else {
            common_folder(&files)
        };
        vec![Unit {
            format: Format::Notes,
            files,
            label,
        }]
    }

    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        for rel in &unit.files {
            // A file that cannot be read is one lost note, not a lost vault.
            if let Err(e) = parse_file(src, rel, out) {
                out.problem(Problem {
                    file: src.display(rel),
                    line: None,
                    reason: format!("cannot read this note: {e}"),
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Claiming

/// The name the user gave the file: the relative path, or the root itself
/// when the source is a single file (whose relative path is empty).
fn file_name_of(src: &dyn Source, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        src.root()
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default()
    } else {
        rel.to_path_buf()
    }
}

fn kind_of(src: &dyn Source, rel: &Path) -> Option<Kind> {
    let name = file_name_of(src, rel);
    let ext = name.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "md" | "markdown" => Some(Kind::Markdown),
        "txt" => Some(Kind::Text),
        "canvas" => Some(Kind::Canvas),
        _ => None,
    }
}

/// `.obsidian/`, `.trash/` and other dot-folders (and dot-files) are app data.
fn in_hidden_folder(rel: &Path) -> bool {
    rel.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with('.') && s != "." && s != "..")
    })
}

/// With `--format notes`: any file whose head is text (UTF-8, no NUL bytes).
fn looks_like_text(src: &dyn Source, rel: &Path) -> bool {
    match src.head(rel, 4096) {
        Ok(head) if !head.is_empty() => {
            !head.contains(&0)
                && match std::str::from_utf8(&head) {
                    Ok(_) => true,
                    // A multi-byte character cut by the 4096-byte window is fine.
                    Err(e) => e.error_len().is_none(),
                }
        }
        _ => false,
    }
}

/// The deepest folder that holds every file ("" when they share none).
fn common_folder(files: &[PathBuf]) -> PathBuf {
    let mut common: Vec<_> = match files[0].parent() {
        Some(p) => p.components().collect(),
        None => return PathBuf::new(),
    };
    for f in &files[1..] {
        let parent: Vec<_> = f
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        let same = common
            .iter()
            .zip(&parent)
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(same);
    }
    common.iter().collect()
}

// ---------------------------------------------------------------------------
// Reading one file

fn parse_file(src: &dyn Source, rel: &Path, out: &mut dyn Sink) -> std::io::Result<()> {
    let file = src.display(rel);
    if let Some(size) = src.size(rel).filter(|&s| s > MAX_NOTE_BYTES) {
        out.problem(Problem {
            file,
            line: None,
            reason: format!("{} MiB is too large for a note; skipped", size >> 20),
        });
        return Ok(());
    }
    let mut bytes = Vec::new();
    src.open(rel)?
        .take(MAX_NOTE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_NOTE_BYTES {
        out.problem(Problem {
            file,
            line: None,
            reason: "too large for a note; skipped".into(),
        });
        return Ok(());
    }
    let text = decode_text(bytes, &file, out);
    let name = file_name_of(src, rel);
    let doc = match kind_of(src, rel) {
        Some(Kind::Markdown) => Some(markdown_document(&text, &name, &file, out)),
        Some(Kind::Canvas) => canvas_document(&text, &name, &file, out),
        Some(Kind::Text) | None => Some(text_document(&text, &name)),
    };
    if let Some(doc) = doc {
        out.document(doc);
    }
    Ok(())
}

/// Bytes to text: UTF-8 (BOM dropped), UTF-16 with a BOM (Windows Notepad),
/// and anything else decoded lossily with a Problem naming the first bad line.
/// Line endings become `\n`.
fn decode_text(bytes: Vec<u8>, file: &Path, out: &mut dyn Sink) -> String {
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        decode_utf8(rest.to_vec(), file, out)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        decode_utf16(rest, u16::from_le_bytes, file, out)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        decode_utf16(rest, u16::from_be_bytes, file, out)
    } else {
        decode_utf8(bytes, file, out)
    };
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    }
}

fn decode_utf8(bytes: Vec<u8>, file: &Path, out: &mut dyn Sink) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let bad_at = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let line = bytes[..bad_at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            out.problem(Problem {
                file: file.to_path_buf(),
                line: Some(line),
                reason: "not valid UTF-8 text (another encoding?); the bad bytes were replaced with \u{FFFD}".into(),
            });
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16, file: &Path, out: &mut dyn Sink) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    let text = String::from_utf16_lossy(&units);
    if bytes.len() % 2 == 1 || text.contains('\u{FFFD}') {
        out.problem(Problem {
            file: file.to_path_buf(),
            line: None,
            reason: "broken UTF-16 text; the bad parts were replaced with \u{FFFD}".into(),
        });
    }
    text
}

fn file_stem(name: &Path) -> String {
    name.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A daily note's name is its date: `2023-09-12.md` is that day at midnight.
fn daily_note_date(name: &Path) -> Option<When> {
    let stem = file_stem(name);
    if stem.len() != 10 {
        return None;
    }
    let day = NaiveDate::parse_from_str(&stem, "%Y-%m-%d").ok()?;
    Some(When::Local(day.and_hms_opt(0, 0, 0)?))
}

fn text_document(text: &str, name: &Path) -> Document {
    Document {
        path: name.to_path_buf(),
        title: file_stem(name),
        text: text.trim_end().to_string(),
        created: daily_note_date(name),
        modified: None,
        tags: Vec::new(),
        links: Vec::new(),
        properties: Vec::new(),
    }
}

fn markdown_document(text: &str, name: &Path, file: &Path, out: &mut dyn Sink) -> Document {
    let (front, body) = split_frontmatter(text, file, out);
    let fm = front.map(Frontmatter::parse).unwrap_or_default();
    for (line, reason) in &fm.problems {
        out.problem(Problem {
            file: file.to_path_buf(),
            line: Some(*line),
            reason: reason.clone(),
        });
    }
    let entries = &fm.entries;

    let mut tags = Dedup::default();
    let mut links = Dedup::default();
    for e in entries {
        if e.key.eq_ignore_ascii_case("tags") || e.key.eq_ignore_ascii_case("tag") {
            for item in e.value.items() {
                for tag in item.split(|c: char| c == ',' || c.is_whitespace()) {
                    tags.push(tag.trim_start_matches('#'));
                }
            }
        }
        // Obsidian tracks wikilinks in properties ("[[Meetings]]") as links.
        for item in e.value.items() {
            scan_inline(item, &mut tags, &mut links, false);
        }
    }
    scan_markdown(body, &mut tags, &mut links);

    let title = property(entries, "title")
        .filter(|(t, _)| !t.is_empty())
        .map_or_else(|| file_stem(name), |(t, _)| t.to_string());
    let created = created_from(entries, file, out).or_else(|| daily_note_date(name));
    Document {
        path: name.to_path_buf(),
        title,
        text: body.trim_start_matches('\n').trim_end().to_string(),
        created,
        modified: None,
        tags: tags.items,
        links: links.items,
        properties: entries
            .iter()
            .map(|e| (e.key.clone(), e.value.joined()))
            .collect(),
    }
}

/// `created:` (or `date:`) from the frontmatter. Template placeholders such as
/// `{{date}}` are ignored quietly; a value that starts like a date but is not
/// one is reported.
fn created_from(entries: &[Entry], file: &Path, out: &mut dyn Sink) -> Option<When> {
    let (raw, line) = property(entries, "created").or_else(|| property(entries, "date"))?;
    let raw = raw.trim();
    let when = parse_when(raw);
    if when.is_none() && raw.starts_with(|c: char| c.is_ascii_digit()) {
        out.problem(Problem {
            file: file.to_path_buf(),
            line: Some(line),
            reason: format!("the frontmatter date `{raw}` is not a date (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM)"),
        });
    }
    when
}

/// The first value of a frontmatter key (case-insensitive), and its line.
fn property<'a>(entries: &'a [Entry], key: &str) -> Option<(&'a str, u64)> {
    let e = entries.iter().find(|e| e.key.eq_ignore_ascii_case(key))?;
    Some((e.value.items().next()?, e.line))
}

/// `2023-09-12`, `2023-09-12T10:30[:00]`, `2023-09-12 10:30`, with an optional
/// `Z` or `+02:00` offset (then UTC).
fn parse_when(s: &str) -> Option<When> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(When::Utc(dt.with_timezone(&Utc)));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(When::Utc(dt.with_timezone(&Utc)));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(When::Local(dt));
        }
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(When::Local(day.and_hms_opt(0, 0, 0)?))
}

// ---------------------------------------------------------------------------
// JSON Canvas

#[derive(Deserialize, Default)]
#[serde(default)]
struct Canvas {
    nodes: Vec<CanvasNode>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CanvasNode {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    file: Option<String>,
    url: Option<String>,
}

/// One document from a canvas's text nodes (in the file's order, which the
/// spec defines as z-order), linking to its file and link nodes.
fn canvas_document(text: &str, name: &Path, file: &Path, out: &mut dyn Sink) -> Option<Document> {
    let canvas: Canvas = match serde_json::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            out.problem(Problem {
                file: file.to_path_buf(),
                line: Some(e.line() as u64),
                reason: format!("not a readable JSON Canvas file: {e}"),
            });
            return None;
        }
    };
    let mut tags = Dedup::default();
    let mut links = Dedup::default();
    let mut texts = Vec::new();
    for node in &canvas.nodes {
        match (node.kind.as_str(), &node.text, &node.file, &node.url) {
            ("text", Some(t), _, _) => {
                scan_markdown(t, &mut tags, &mut links);
                texts.push(t.trim());
            }
            ("file", _, Some(f), _) => links.push(f),
            ("link", _, _, Some(u)) => links.push(u),
            _ => {}
        }
    }
    if texts.is_empty() && links.items.is_empty() {
        return None;
    }
    Some(Document {
        path: name.to_path_buf(),
        title: file_stem(name),
        text: texts.join("\n\n"),
        created: None,
        modified: None,
        tags: tags.items,
        links: links.items,
        properties: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// Frontmatter

/// Splits `---\n...\n---\n` off the top: (the YAML, the body).
fn split_frontmatter<'a>(
    text: &'a str,
    file: &Path,
    out: &mut dyn Sink,
) -> (Option<&'a str>, &'a str) {
    let Some(first_end) = text.find('\n') else {
        return (None, text);
    };
    if text[..first_end].trim_end() != "---" {
        return (None, text);
    }
    let yaml_start = first_end + 1;
    let mut pos = yaml_start;
    while pos <= text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let l = text[pos..end].trim_end();
        if l == "---" || l == "..." {
            let body = if end < text.len() {
                &text[end + 1..]
            } else {
                ""
            };
            return (Some(&text[yaml_start..pos]), body);
        }
        pos = end + 1;
    }
    out.problem(Problem {
        file: file.to_path_buf(),
        line: Some(1),
        reason: "the frontmatter opened with `---` is never closed; the note is kept as plain text"
            .into(),
    });
    (None, text)
}

/// A frontmatter value: one string, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Scalar(String),
    List(Vec<String>),
}

impl Value {
    fn items(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&String>, &[String]) = match self {
            Value::Scalar(s) => (Some(s), &[]),
            Value::List(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many).map(String::as_str)
    }

    fn joined(&self) -> String {
        match self {
            Value::Scalar(s) => s.clone(),
            Value::List(v) => v.join(", "),
        }
    }
}

/// One frontmatter line: its 1-based number in the file, indent and text.
struct YamlLine<'a> {
    number: u64,
    indent: usize,
    text: &'a str,
}

impl YamlLine<'_> {
    fn is_blank_or_comment(&self) -> bool {
        self.text.is_empty() || self.text.starts_with('#')
    }
    fn is_list_item(&self) -> bool {
        self.text == "-" || self.text.starts_with("- ")
    }
}

/// A frontmatter key, its value and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    value: Value,
    line: u64,
}

/// Reads the YAML subset described at the top of this file, tolerantly: a
/// line it cannot read is noted in `problems` (line, reason) and skipped.
#[derive(Default)]
struct Frontmatter {
    entries: Vec<Entry>,
    problems: Vec<(u64, String)>,
}

impl Frontmatter {
    fn parse(yaml: &str) -> Frontmatter {
        let lines: Vec<YamlLine> = yaml
            .split('\n')
            .enumerate()
            .map(|(i, raw)| {
                let text = raw.trim_start_matches([' ', '\t']);
                // Line 1 of the file is the opening `---`.
                YamlLine {
                    number: i as u64 + 2,
                    indent: raw.len() - text.len(),
                    text: text.trim_end(),
                }
            })
            .collect();
        let mut fm = Frontmatter::default();
        let mut i = 0;
        while i < lines.len() {
            let line = &lines[i];
            i += 1;
            if line.is_blank_or_comment() {
                continue;
            }
            if line.indent > 0 || line.is_list_item() {
                fm.problem(
                    line.number,
                    format!(
                        "frontmatter line `{}` belongs to no key; skipped",
                        line.text
                    ),
                );
                continue;
            }
            let Some((key, rest)) = split_key(line.text) else {
                fm.problem(
                    line.number,
                    format!(
                        "frontmatter line `{}` is not `key: value`; skipped",
                        line.text
                    ),
                );
                continue;
            };
            // The lines after the key that belong to it: indented, or `- ` items.
            let start = i;
            while i < lines.len()
                && (lines[i].indent > 0 || lines[i].is_list_item() || lines[i].text.is_empty())
            {
                i += 1;
            }
            fm.entry(key, rest, line.number, &lines[start..i]);
        }
        fm
    }

    fn problem(&mut self, line: u64, reason: String) {
        self.problems.push((line, reason));
    }

    fn push(&mut self, key: String, value: Value, line: u64) {
        self.entries.push(Entry { key, value, line });
    }

    fn entry(&mut self, key: String, rest: &str, line: u64, block: &[YamlLine]) {
        let bare = strip_comment(rest);
        if bare.is_empty() {
            self.block(key, line, block);
        } else if rest.starts_with('|') || rest.starts_with('>') {
            self.push(
                key,
                Value::Scalar(block_scalar(rest.starts_with('|'), block)),
                line,
            );
        } else if rest.starts_with("[[") {
            // An unquoted wikilink: YAML would read a nested list; users mean the link.
            self.push(key, Value::Scalar(bare.to_string()), line);
        } else if rest.starts_with('[') {
            let mut flow = rest.to_string();
            for l in block {
                flow.push(' ');
                flow.push_str(l.text);
            }
            let items = flow_list(&flow)
                .into_iter()
                .map(|item| self.scalar(&item, line))
                .filter(|s| !s.is_empty());
            let items = items.collect();
            self.push(key, Value::List(items), line);
        } else if rest.starts_with('{') {
            // Flow maps and template placeholders (`{{date}}`): kept as written.
            self.push(key, Value::Scalar(rest.to_string()), line);
        } else {
            let mut value = self.scalar(rest, line);
            // A plain scalar may go on over indented lines, joined by spaces.
            if !rest.starts_with(['"', '\'']) {
                for l in block.iter().filter(|l| !l.text.is_empty()) {
                    value.push(' ');
                    value.push_str(strip_comment(l.text));
                }
            }
            self.push(key, Value::Scalar(value), line);
        }
    }

    /// The lines under a `key:` with no value: a `- item` list, nested
    /// `child: value` keys (flattened to `key.child`), or nothing (empty).
    fn block(&mut self, key: String, line: u64, block: &[YamlLine]) {
        let mut items: Vec<String> = Vec::new();
        let mut nested = Vec::new();
        let item_indent = block.iter().find(|l| l.is_list_item()).map(|l| l.indent);
        for l in block.iter().filter(|l| !l.is_blank_or_comment()) {
            if l.is_list_item() && Some(l.indent) == item_indent {
                let item = self.scalar(l.text[1..].trim(), l.number);
                items.push(item);
            } else if let Some(last) = items.last_mut() {
                // A deeper line inside a list item (`- name: x` / `  age: 3`).
                last.push_str(", ");
                last.push_str(l.text.trim_start_matches("- "));
            } else if let Some((child, v)) = split_key(l.text) {
                let value = Value::Scalar(self.scalar(v, l.number));
                nested.push(Entry {
                    key: format!("{key}.{child}"),
                    value,
                    line: l.number,
                });
            } else {
                self.problem(
                    l.number,
                    format!(
                        "frontmatter line `{}` is not `key: value` nor `- item`; skipped",
                        l.text
                    ),
                );
            }
        }
        if !items.is_empty() {
            self.push(key, Value::List(items), line);
        } else if !nested.is_empty() {
            self.entries.extend(nested);
        } else {
            self.push(key, Value::Scalar(String::new()), line);
        }
    }

    /// A scalar: "double quoted" (with escapes), 'single quoted', or plain (a
    /// ` #` comment dropped). `~` and `null` are empty.
    fn scalar(&mut self, s: &str, line: u64) -> String {
        let s = s.trim();
        let quoted = if let Some(inner) = s.strip_prefix('"') {
            Some((double_quoted(inner), inner))
        } else {
            s.strip_prefix('\'')
                .map(|inner| (single_quoted(inner), inner))
        };
        match quoted {
            Some((Some(value), _)) => value,
            Some((None, inner)) => {
                self.problem(
                    line,
                    format!("frontmatter value `{s}` has no closing quote; kept as written"),
                );
                inner.to_string()
            }
            None => {
                let plain = strip_comment(s);
                if plain == "~" || plain == "null" {
                    String::new()
                } else {
                    plain.to_string()
                }
            }
        }
    }
}

/// `key: rest`, the key possibly quoted. None when there is no `: ` / final `:`.
fn split_key(line: &str) -> Option<(String, &str)> {
    if let Some(q) = line.chars().next().filter(|&c| c == '"' || c == '\'') {
        let close = line[1..].find(q)? + 1;
        let rest = line[close + 1..].trim_start().strip_prefix(':')?;
        return Some((line[1..close].to_string(), rest.trim()));
    }
    let mut from = 0;
    while let Some(i) = line[from..].find(':').map(|i| from + i) {
        let after = &line[i + 1..];
        if after.is_empty() || after.starts_with([' ', '\t']) {
            let key = line[..i].trim();
            return (!key.is_empty()).then(|| (key.to_string(), after.trim()));
        }
        from = i + 1;
    }
    None
}

/// `|` keeps line breaks, `>` folds lines into one paragraph.
fn block_scalar(literal: bool, block: &[YamlLine]) -> String {
    let lines: Vec<&str> = block.iter().map(|l| l.text).collect();
    let text = if literal {
        lines.join("\n")
    } else {
        lines.join(" ")
    };
    text.trim().to_string()
}

/// `[a, "b, c", [[X]]]` -> raw items, respecting quotes and nested brackets.
fn flow_list(flow: &str) -> Vec<String> {
    let inner = flow.trim();
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let inner = match inner.rfind(']') {
        Some(i) => &inner[..i],
        None => inner,
    };
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth <= 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items.into_iter().map(|s| s.trim().to_string()).collect()
}

fn double_quoted(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '0' => {}
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('\u{FFFD}'),
                    );
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

fn single_quoted(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// Drops a ` # comment` from a plain value (`#` right after text is kept).
fn strip_comment(s: &str) -> &str {
    if s.starts_with('#') {
        return "";
    }
    match s.find(" #").or_else(|| s.find("\t#")) {
        Some(i) => s[..i].trim_end(),
        None => s.trim_end(),
    }
}

// ---------------------------------------------------------------------------
// Tags and links in the body

/// Keeps the first of equal strings, in order.
#[derive(Default)]
struct Dedup {
    items: Vec<String>,
    seen: HashSet<String>,
}

impl Dedup {
    fn push(&mut self, s: &str) {
        let s = s.trim();
        if !s.is_empty() && !self.seen.contains(s) {
            self.seen.insert(s.to_string());
            self.items.push(s.to_string());
        }
    }
}

/// Walks the Markdown line by line, skipping fenced code blocks, and collects
/// inline tags and links from the rest.
fn scan_markdown(body: &str, tags: &mut Dedup, links: &mut Dedup) {
    let mut fence: Option<(u8, usize)> = None;
    for line in body.split('\n') {
        let trimmed = line.trim_start();
        let run = fence_run(trimmed);
        match (fence, run) {
            (None, Some(open)) => fence = Some(open),
            (Some((c, n)), Some((c2, n2)))
                if c == c2 && n2 >= n && trimmed[n2..].trim().is_empty() =>
            {
                fence = None
            }
            (Some(_), _) => {}
            (None, None) => scan_inline(line, tags, links, true),
        }
    }
}

/// A code fence: three or more backticks or tildes.
fn fence_run(line: &str) -> Option<(u8, usize)> {
    let c = *line.as_bytes().first()?;
    if c != b'`' && c != b'~' {
        return None;
    }
    let n = line.bytes().take_while(|&b| b == c).count();
    (n >= 3).then_some((c, n))
}

/// One line: code spans are skipped; wikilinks, Markdown links, `<url>`
/// autolinks and (when `with_tags`) `#tags` are collected. All delimiters are
/// ASCII, so byte positions found here are always character boundaries.
fn scan_inline(line: &str, tags: &mut Dedup, links: &mut Dedup, with_tags: bool) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        i = match bytes[i] {
            b'`' => skip_code_span(bytes, i),
            b'[' if bytes.get(i + 1) == Some(&b'[') => wikilink(line, i, links),
            b'[' => markdown_link(line, i, links),
            b'<' => autolink(line, i, links),
            b'#' if with_tags
                && line[..i]
                    .chars()
                    .next_back()
                    .is_none_or(char::is_whitespace) =>
            {
                tag(line, i, tags)
            }
            _ => i + 1,
        };
    }
}

fn skip_code_span(bytes: &[u8], i: usize) -> usize {
    let n = bytes[i..].iter().take_while(|&&b| b == b'`').count();
    let mut j = i + n;
    while j < bytes.len() {
        if bytes[j] == b'`' {
            let m = bytes[j..].iter().take_while(|&&b| b == b'`').count();
            if m == n {
                return j + m;
            }
            j += m;
        } else {
            j += 1;
        }
    }
    i + n // no closing run: the backticks are literal
}

/// `[[Target#Heading^block|alias]]` -> `Target`.
fn wikilink(line: &str, i: usize, links: &mut Dedup) -> usize {
    let start = i + 2;
    let Some(len) = line[start..].find("]]") else {
        return start;
    };
    let inner = &line[start..start + len];
    let target = inner.split(['|', '#', '^']).next().unwrap_or("");
    // Inside a table the alias pipe is escaped: `[[Note\|alias]]`.
    links.push(target.trim_end_matches('\\'));
    start + len + 2
}

/// `[text](url "title")` or `![alt](<url with spaces>)` -> the URL. Anchors
/// within the note (`#heading`) are not outgoing links.
fn markdown_link(line: &str, i: usize, links: &mut Dedup) -> usize {
    let bytes = line.as_bytes();
    let mut depth = 0;
    let mut j = i;
    let close = loop {
        match bytes.get(j) {
            None => return i + 1,
            Some(b'[') => depth += 1,
            Some(b']') => {
                depth -= 1;
                if depth == 0 {
                    break j;
                }
            }
            Some(b'`') => j = skip_code_span(bytes, j) - 1,
            _ => {}
        }
        j += 1;
    };
    if bytes.get(close + 1) != Some(&b'(') {
        return i + 1;
    }
    let dest_start = close + 2;
    let rest = &line[dest_start..];
    let (url, end) = if let Some(inner) = rest.strip_prefix('<') {
        match inner.find('>') {
            Some(k) => (&inner[..k], dest_start + k + 2),
            None => return i + 1,
        }
    } else {
        let mut parens = 0;
        let mut k = 0;
        for (at, b) in rest.bytes().enumerate() {
            k = at;
            match b {
                b'(' => parens += 1,
                b')' if parens == 0 => break,
                b')' => parens -= 1,
                b' ' | b'\t' if parens == 0 => break,
                _ => {}
            }
            k = at + 1;
        }
        (&rest[..k], dest_start + k)
    };
    let Some(paren) = line[end..].find(')') else {
        return i + 1;
    };
    if !url.is_empty() && !url.starts_with('#') {
        links.push(url);
    }
    // The link text is not scanned further: rare tags inside it are lost.
    end + paren + 1
}

/// `<https://example.com>` (CommonMark autolink).
fn autolink(line: &str, i: usize, links: &mut Dedup) -> usize {
    let rest = &line[i + 1..];
    let Some(end) = rest.find('>') else {
        return i + 1;
    };
    let url = &rest[..end];
    let is_url = ["http://", "https://", "mailto:"]
        .iter()
        .any(|p| url.starts_with(p))
        && !url.contains(char::is_whitespace);
    if is_url {
        links.push(url);
        i + 1 + end + 1
    } else {
        i + 1
    }
}

/// `#tag/sub-tag` -> `tag/sub-tag`. Needs a letter or symbol, not only
/// digits and `-_/` (`#1984` and `#--` are not tags).
fn tag(line: &str, i: usize, tags: &mut Dedup) -> usize {
    let rest = &line[i + 1..];
    let len = rest.find(|c: char| !is_tag_char(c)).unwrap_or(rest.len());
    let name = rest[..len].trim_end_matches('/');
    if name.chars().any(|c| c.is_alphabetic() || !c.is_ascii()) {
        tags.push(name);
    }
    i + 1 + len
}

/// Obsidian's tag characters: anything but whitespace and punctuation, where
/// `_`, `-` and `/` are allowed and emoji are fine.
fn is_tag_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/');
    }
    !(c.is_whitespace()
        || ('\u{2000}'..='\u{206F}').contains(&c)
        || ('\u{2E00}'..='\u{2E7F}').contains(&c)
        || ('\u{3000}'..='\u{303F}').contains(&c)
        || matches!(
            c,
            '\u{FF01}' | '\u{FF0C}' | '\u{FF0E}' | '\u{FF1A}' | '\u{FF1B}' | '\u{FF1F}'
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, read_with};
    use proptest::prelude::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/notes");

    fn read(rel: &str) -> (Vec<Unit>, Collect) {
        read_with(&Notes, &Path::new(FIXTURES).join(rel), false).expect("fixture reads")
    }

    fn doc<'a>(c: &'a Collect, path: &str) -> &'a Document {
        c.documents
            .iter()
            .find(|d| d.path == Path::new(path))
            .unwrap_or_else(|| panic!("no document {path}"))
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn props(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn midnight(y: i32, m: u32, d: u32) -> Option<When> {
        Some(When::Local(
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        ))
    }

    /// Reads `files` (name, bytes) written into a fresh folder.
    fn read_files(files: &[(&str, &[u8])], forced: bool) -> (Vec<Unit>, Collect) {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        read_with(&Notes, dir.path(), forced).unwrap()
    }

    #[test]
    fn the_kepano_vault_gives_one_document_per_note() {
        let (units, c) = read("kepano-obsidian");
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].files.len(), 103);
        assert_eq!(units[0].label, PathBuf::new());
        assert_eq!(c.documents.len(), 103);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert!(c.messages.is_empty());
        // Templates are notes too; .obsidian/, Bases/*.base, LICENSE are not.
        assert_eq!(
            c.documents
                .iter()
                .filter(|d| d.path.starts_with("Templates"))
                .count(),
            52
        );
        assert!(
            c.documents
                .iter()
                .all(|d| d.path.extension().is_some_and(|e| e == "md"))
        );
        assert_eq!(
            c.documents.iter().filter(|d| d.created.is_some()).count(),
            16
        );
        assert_eq!(
            c.documents
                .iter()
                .filter(|d| d.tags == ["categories"])
                .count(),
            21
        );
        assert_eq!(
            c.documents.iter().map(|d| d.links.len()).sum::<usize>(),
            211
        );
    }

    #[test]
    fn a_meeting_note_has_its_frontmatter_as_properties_and_links() {
        let (_, c) = read("kepano-obsidian");
        let d = doc(&c, "Notes/2023-09-12 Meeting with Steph.md");
        assert_eq!(d.title, "2023-09-12 Meeting with Steph");
        assert_eq!(
            d.text,
            "- Discussed the book [[Out of Control]] on the topic of [[Emergence]]"
        );
        assert_eq!(d.created, midnight(2023, 9, 12));
        assert_eq!(d.modified, None);
        assert_eq!(
            d.properties,
            props(&[
                ("categories", "[[Meetings]]"),
                ("type", ""),
                ("date", "2023-09-12"),
                ("org", "[[Obsidian]]"),
                ("loc", "Remote"),
                ("people", "[[Steph Ango]]"),
                ("topics", "[[Emergence]]"),
            ])
        );
        assert_eq!(
            d.links,
            strings(&[
                "Meetings",
                "Obsidian",
                "Steph Ango",
                "Emergence",
                "Out of Control"
            ])
        );
        assert!(d.tags.is_empty());
    }

    #[test]
    fn daily_notes_are_dated_by_their_file_name() {
        let (_, c) = read("kepano-obsidian");
        let d = doc(&c, "Daily/2023-09-30.md");
        assert_eq!(d.created, midnight(2023, 9, 30));
        assert_eq!(d.text, "## Notes\n\n![[Daily.base]]");
        assert_eq!(d.links, strings(&["Daily.base"]));
        assert!(d.properties.is_empty());
    }

    #[test]
    fn notes_without_a_final_newline_and_with_headings_keep_their_text() {
        let (_, c) = read("kepano-obsidian");
        let d = doc(&c, "References/Kevin Kelly.md");
        assert!(
            d.text
                .starts_with("## Books\n\n![[Books.base#Author]]\n\n# Clippings")
        );
        assert!(d.text.ends_with("![[Podcast episodes.base#Guest]]"));
        assert!(d.tags.is_empty(), "headings are not tags: {:?}", d.tags);
        assert_eq!(
            d.links,
            strings(&[
                "People",
                "Authors",
                "Books.base",
                "Clippings.base",
                "Podcast episodes.base"
            ])
        );
        assert_eq!(d.created, midnight(2023, 9, 12));
    }

    #[test]
    fn clippings_list_wikilinks_then_markdown_urls() {
        let (_, c) = read("kepano-obsidian");
        let d = doc(&c, "Clippings/Buy wisely.md");
        assert_eq!(
            d.links,
            strings(&[
                "Clippings",
                "Posts",
                "Steph Ango",
                "Published",
                "Products",
                "Product usage analysis",
                "https://darntough.com/",
                "https://stephango.com/style",
                "https://stephango.com/scars",
            ])
        );
        assert_eq!(
            d.properties[0],
            (
                "categories".to_string(),
                "[[Clippings]], [[Posts]]".to_string()
            )
        );
        assert_eq!(
            d.properties[2],
            (
                "source".to_string(),
                "https://stephango.com/buy-wisely".to_string()
            )
        );
        assert!(d.text.starts_with("Whenever I buy things"));
    }

    #[test]
    fn template_placeholders_stay_text_and_give_no_date() {
        let (_, c) = read("kepano-obsidian");
        let d = doc(&c, "Templates/Recipe Template.md");
        assert_eq!(d.created, None);
        assert!(
            d.properties
                .contains(&("created".to_string(), "{{date}}".to_string()))
        );
        let d = doc(&c, "Templates/Daily Note Template.md");
        assert_eq!(d.tags, strings(&["daily"]));
        let d = doc(
            &c,
            "Notes/Evergreen notes turn ideas into objects that you can manipulate.md",
        );
        assert_eq!(d.tags, strings(&["0🌲"]));
        assert_eq!(d.created, midnight(2023, 9, 14));
    }

    #[test]
    fn the_syntax_tour_finds_tags_and_links_outside_code() {
        let (_, c) = read("constructed");
        let d = doc(&c, "Syntax tour.md");
        assert_eq!(d.title, "Syntax tour: tags & links");
        assert_eq!(
            d.tags,
            strings(&[
                "project/alpha",
                "reading",
                "inline-tag",
                "日本語",
                "last_tag"
            ])
        );
        assert_eq!(
            d.links,
            strings(&[
                "Target Note",
                "Other Note",
                "Third",
                "diagram.png",
                "https://example.com/page#fragment",
                "images/my pic.png",
                "https://auto.example",
                "Table Note",
            ])
        );
        let at = DateTime::parse_from_rfc3339("2024-03-05T13:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(d.created, Some(When::Utc(at)));
        assert_eq!(
            d.properties,
            props(&[
                ("title", "Syntax tour: tags & links"),
                ("aliases", "Tour, Syntax, again"),
                ("tags", "project/alpha, reading"),
                ("created", "2024-03-05T14:30:00+01:00"),
                ("status", "draft"),
                ("rating", "4"),
                ("summary", "Folded text over two lines"),
                ("author.name", "Ada"),
                ("author.site", "https://example.org"),
                ("empty", ""),
            ])
        );
        assert!(
            d.text
                .starts_with("# Heading is not a tag\n\nTagged #inline-tag")
        );
        assert!(d.text.ends_with("Final line #last_tag."));
    }

    #[test]
    fn the_constructed_folder_reports_each_broken_file_by_line() {
        let (units, c) = read("constructed");
        assert_eq!(units[0].files.len(), 7);
        assert_eq!(c.documents.len(), 7);
        let found: Vec<(String, Option<u64>)> = c
            .problems
            .iter()
            .map(|p| {
                (
                    p.file.file_name().unwrap().to_string_lossy().into_owned(),
                    p.line,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("broken frontmatter.md".to_string(), Some(3)),
                ("broken frontmatter.md".to_string(), Some(4)),
                ("broken frontmatter.md".to_string(), Some(5)),
                ("broken frontmatter.md".to_string(), Some(6)),
                ("latin1.txt".to_string(), Some(1)),
                ("unclosed frontmatter.md".to_string(), Some(1)),
            ]
        );
        assert!(c.problems[4].reason.contains("not valid UTF-8"));
        assert!(c.problems[5].reason.contains("never closed"));
        let broken = doc(&c, "broken frontmatter.md");
        assert_eq!(
            broken.properties,
            props(&[
                ("good", "yes"),
                ("quote", "never closed"),
                ("created", "2023-02-30")
            ])
        );
        assert_eq!(broken.text, "Body after broken frontmatter.");
        let unclosed = doc(&c, "unclosed frontmatter.md");
        assert_eq!(
            unclosed.text,
            "---\ntitle: never closed\nbody text #still-a-tag"
        );
        assert_eq!(unclosed.tags, strings(&["still-a-tag"]));
    }

    #[test]
    fn text_encodings_and_line_endings_are_normalised() {
        let (_, c) = read("constructed");
        assert_eq!(
            doc(&c, "latin1.txt").text,
            "Caf\u{FFFD} au lait\nsecond line \u{FFFD} 5"
        );
        assert_eq!(doc(&c, "notepad-utf16.txt").text, "Grüße aus Notepad");
        let crlf = doc(&c, "crlf note.md");
        assert_eq!(crlf.text, "Line one\nLine two #crlf");
        assert_eq!(crlf.tags, strings(&["windows", "crlf"]));
        let daily = doc(&c, "2024-01-15.md");
        assert_eq!(daily.created, midnight(2024, 1, 15));
        assert_eq!(daily.tags, strings(&["daily"]));
    }

    #[test]
    fn plain_text_files_have_no_tags_or_links() {
        let (_, c) = read_files(
            &[(
                "todo.txt",
                b"#include <stdio.h>\nsee [[Note]] and [x](http://x.org)\n",
            )],
            false,
        );
        let d = &c.documents[0];
        assert_eq!(d.title, "todo");
        assert_eq!(
            d.text,
            "#include <stdio.h>\nsee [[Note]] and [x](http://x.org)"
        );
        assert!(d.tags.is_empty() && d.links.is_empty() && d.properties.is_empty());
    }

    #[test]
    fn a_json_canvas_becomes_one_document_of_its_text_nodes() {
        let (units, c) = read("jsoncanvas_sample.canvas");
        assert_eq!(units.len(), 1);
        assert_eq!(c.documents.len(), 1);
        let d = &c.documents[0];
        assert_eq!(d.path, PathBuf::from("jsoncanvas_sample.canvas"));
        assert_eq!(d.title, "jsoncanvas_sample");
        assert_eq!(
            d.text,
            "Learn more:\n\n- [Apps](/docs/apps.md)\n- [Spec](spec/1.0.md)\n- [Github](https://github.com/obsidianmd/jsoncanvas)"
        );
        assert_eq!(
            d.links,
            strings(&[
                "readme.md",
                "_site/logo.svg",
                "/docs/apps.md",
                "spec/1.0.md",
                "https://github.com/obsidianmd/jsoncanvas"
            ])
        );
    }

    #[test]
    fn a_broken_canvas_is_a_problem_with_its_line() {
        let (_, c) = read_files(
            &[(
                "board.canvas",
                b"{\n \"nodes\": [\n {\"type\": \"text\", \"text\": 5\n",
            )],
            false,
        );
        assert!(c.documents.is_empty());
        assert_eq!(c.problems.len(), 1);
        assert_eq!(c.problems[0].line, Some(3));
        assert!(c.problems[0].reason.contains("JSON Canvas"));
    }

    #[test]
    fn app_data_attachments_and_bases_are_not_claimed() {
        let files: &[(&str, &[u8])] = &[
            (".obsidian/workspace.md", b"x"),
            (".trash/old.md", b"x"),
            ("Bases/All.base", b"views: []"),
            ("pic.png", b"\x89PNG\r\n\x1a\n\0\0"),
            ("data.json", b"{}"),
            ("README", b"plain words"),
            ("Note.MD", b"# Shouting extension"),
            ("notes.markdown", b"words"),
        ];
        let (units, c) = read_files(files, false);
        assert_eq!(
            units[0].files,
            [PathBuf::from("Note.MD"), PathBuf::from("notes.markdown")]
        );
        assert_eq!(c.documents.len(), 2);
        // With --format notes, text files without an extension are read too, never binaries.
        let (units, _) = read_files(files, true);
        let claimed: Vec<_> = units[0]
            .files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            claimed,
            [
                "Bases/All.base",
                "Note.MD",
                "README",
                "data.json",
                "notes.markdown"
            ]
        );
    }

    #[test]
    fn a_single_file_is_named_by_its_file_name() {
        let (units, c) = read("constructed/2024-01-15.md");
        assert_eq!(units[0].files, [PathBuf::new()]);
        assert_eq!(c.documents[0].path, PathBuf::from("2024-01-15.md"));
        assert_eq!(c.documents[0].title, "2024-01-15");
    }

    #[test]
    fn frontmatter_dates_with_times_and_offsets() {
        let utc = |s: &str| {
            Some(When::Utc(
                DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc),
            ))
        };
        let local = |s: &str| {
            Some(When::Local(
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap(),
            ))
        };
        assert_eq!(parse_when("2023-09-12"), midnight(2023, 9, 12));
        assert_eq!(parse_when("2023-09-12T08:05"), local("2023-09-12T08:05:00"));
        assert_eq!(
            parse_when("2023-09-12 08:05:30"),
            local("2023-09-12T08:05:30")
        );
        assert_eq!(
            parse_when("2023-09-12T08:05:30Z"),
            utc("2023-09-12T08:05:30Z")
        );
        assert_eq!(
            parse_when("2023-09-12 08:05:30+02:00"),
            utc("2023-09-12T06:05:30Z")
        );
        assert_eq!(parse_when("{{date}}"), None);
        assert_eq!(parse_when("2023-13-01"), None);
    }

    #[test]
    fn frontmatter_subset_reads_quotes_lists_and_blocks() {
        let yaml = "a: 'it''s'\nb: \"tab\\tand \\u00e9\"\nc: [x, 'y, z', \"[[W]]\"]\nd:\n- one\n- two # comment\ne: |\n  line 1\n  line 2\nf: ~\n\"g h\": plain # note\ni: [[Link]]\nj: long\n  wrapped value\n";
        let fm = Frontmatter::parse(yaml);
        assert!(fm.problems.is_empty(), "{:?}", fm.problems);
        let got: Vec<(String, String)> = fm
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.joined()))
            .collect();
        assert_eq!(
            got,
            props(&[
                ("a", "it's"),
                ("b", "tab\tand é"),
                ("c", "x, y, z, [[W]]"),
                ("d", "one, two"),
                ("e", "line 1\nline 2"),
                ("f", ""),
                ("g h", "plain"),
                ("i", "[[Link]]"),
                ("j", "long wrapped value"),
            ])
        );
        assert_eq!(fm.entries[3].line, 5);
    }

    #[test]
    fn inline_scanning_edge_cases() {
        let scan = |s: &str| {
            let (mut tags, mut links) = (Dedup::default(), Dedup::default());
            scan_markdown(s, &mut tags, &mut links);
            (tags.items, links.items)
        };
        assert_eq!(
            scan("#a #b/c #123 #1a ##x # #-- #_/"),
            (strings(&["a", "b/c", "1a"]), vec![])
        );
        assert_eq!(
            scan("(#no) word#no [[#Self]] [x](#anchor)"),
            (vec![], vec![])
        );
        assert_eq!(
            scan("``code `#x` still``  #yes"),
            (strings(&["yes"]), vec![])
        );
        assert_eq!(
            scan("[a [nested] text](url_(x)) [[A]] [[A|again]]"),
            (vec![], strings(&["url_(x)", "A"]))
        );
        assert_eq!(scan("unclosed [[ and [text]( and `tick"), (vec![], vec![]));
        assert_eq!(
            scan("````\n```\n#inside\n````\n#after"),
            (strings(&["after"]), vec![])
        );
        assert_eq!(
            scan("émoji #café… #🌲 #tag。"),
            (strings(&["café", "🌲", "tag"]), vec![])
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut out = Collect::default();
            let file = Path::new("x.md");
            let text = decode_text(bytes.clone(), file, &mut out);
            let _ = markdown_document(&text, file, file, &mut out);
            let _ = canvas_document(&text, Path::new("x.canvas"), file, &mut out);
            let _ = Frontmatter::parse(&text);
        }

        #[test]
        fn markdownish_text_never_panics(text in "(---\n)?([a-z:#\\[\\]()`~|'\"!<>{} \n-]|é|日|\t){0,300}") {
            let mut out = Collect::default();
            let d = markdown_document(&text, Path::new("n.md"), Path::new("n.md"), &mut out);
            prop_assert!(d.tags.iter().all(|t| !t.is_empty()));
            prop_assert!(d.links.iter().all(|l| !l.is_empty()));
        }

        #[test]
        fn mutated_fixture_never_panics(pos in 0usize..1000, byte in any::<u8>(), cut in 0usize..1000) {
            let mut bytes = std::fs::read(Path::new(FIXTURES).join("constructed/Syntax tour.md")).unwrap();
            let at = pos % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut.max(at + 1));
            let mut out = Collect::default();
            let file = Path::new("Syntax tour.md");
            let text = decode_text(bytes, file, &mut out);
            let _ = markdown_document(&text, file, file, &mut out);
        }
    }
}
