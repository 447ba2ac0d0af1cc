//! PDF documents: the text layer of each page, and the title and dates from
//! the document information dictionary.
//!
//! What a PDF looks like (ISO 32000-1, "PDF 1.7"): a `%PDF-1.x` header, numbered
//! objects, a cross-reference table and a trailer. The trailer's `/Info`
//! dictionary holds `/Title`, `/Author`, `/Subject`, `/Keywords`,
//! `/CreationDate` and `/ModDate` as text strings (PDFDocEncoding, or UTF-16BE
//! after a `FE FF` mark); dates are `D:YYYYMMDDHHmmSS+HH'mm'` with every part
//! after the year optional (§7.9.4). Newer files may carry the title only in
//! the XMP metadata stream (`<dc:title><rdf:Alt><rdf:li>…`). Page text is drawn
//! glyph by glyph from content streams; the `pdf-extract` crate (on `lopdf`)
//! maps glyphs back to Unicode and places spaces and line breaks.
//!
//! Surprises handled here:
//! - A trailer with `/Encrypt` needs a password unless the user password is
//!   empty; such files are refused with a hint to export an unprotected copy.
//! - Scanned documents have pages but no text layer: reported, not imported.
//! - Typesetters emit ligature glyphs (`ﬁ`, `ﬂ`), soft hyphens and words split
//!   by a hyphen at the end of a line; these are normalised.
//! - PDF libraries panic on malformed input, and a form XObject that draws
//!   itself makes `pdf-extract` recurse until the stack overflows (an abort,
//!   not a panic). Extraction runs on its own thread with a large stack,
//!   under `catch_unwind`, after a check of the form graph for cycles.
//! - Right-to-left scripts come out in visual (drawing) order, as the file
//!   stores them; they are not reordered.

use std::collections::HashSet;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use pdf_extract::{
    Dictionary, Document as PdfDoc, Object, ObjectId, PlainTextOutput, content::Content,
};

use super::{Document, Format, ImportError, Importer, Problem, Sink, Source, Unit, When};

/// Reads the text of `.pdf` files.
pub struct Pdf;

/// Larger files are refused rather than loaded whole into memory.
const MAX_PDF_BYTES: u64 = 512 << 20;
/// The extraction thread's stack: deep but finite form nesting fits.
const EXTRACT_STACK_BYTES: usize = 64 << 20;
/// Forms nested deeper than this are treated as a malicious file.
const MAX_FORM_DEPTH: usize = 64;
/// How many form visits the cycle check may make before giving up.
const FORM_VISIT_BUDGET: usize = 100_000;

impl Importer for Pdf {
    fn format(&self) -> Format {
        Format::Pdf
    }

    fn claim(&self, src: &dyn Source, pool: &[PathBuf], forced: bool) -> Vec<Unit> {
        pool.iter()
            .filter(|rel| {
                has_pdf_extension(&file_name_of(src, rel)) || (forced && has_pdf_header(src, rel))
            })
            .map(|rel| Unit {
                format: Format::Pdf,
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

/// The relative path, or the root's own name for a single-file source.
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

fn has_pdf_extension(name: &Path) -> bool {
    name.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
}

/// The header may follow some junk, but must be in the first 1024 bytes.
fn has_pdf_header(src: &dyn Source, rel: &Path) -> bool {
    src.head(rel, 1024)
        .is_ok_and(|h| h.windows(5).any(|w| w == b"%PDF-"))
}

fn parse_file(src: &dyn Source, rel: &Path, out: &mut dyn Sink) -> Result<(), ImportError> {
    let shown = src.display(rel);
    let mut bytes = Vec::new();
    src.open(rel)
        .and_then(|r| r.take(MAX_PDF_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| ImportError::io(&shown, e))?;
    if bytes.len() as u64 > MAX_PDF_BYTES {
        return Err(ImportError::unreadable(
            &shown,
            "this PDF is larger than 512 MiB; split it into smaller files",
        ));
    }
    let pdf = extract_guarded(&bytes).map_err(|f| ImportError::unreadable(&shown, f.reason()))?;

    for (page, reason) in &pdf.page_errors {
        out.problem(Problem {
            file: shown.clone(),
            line: None,
            reason: format!("page {page}: {reason}; its text is missing"),
        });
    }
    let text = join_pages(&pdf.pages);
    if text.is_empty() {
        let reason = if pdf.pages.is_empty() {
            "this PDF has no pages; nothing imported".to_string()
        } else {
            "this PDF has no text layer (scanned pages?); it needs OCR first, nothing imported"
                .to_string()
        };
        out.problem(Problem {
            file: shown,
            line: None,
            reason,
        });
        return Ok(());
    }

    let name = file_name_of(src, rel);
    let title = pdf.title.filter(|t| is_useful_title(t)).unwrap_or_else(|| {
        name.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut properties: Vec<(String, String)> = pdf.info.into_iter().collect();
    properties.push(("pages".into(), pdf.pages.len().to_string()));
    out.document(Document {
        path: name,
        title,
        text,
        created: pdf.created,
        modified: pdf.modified,
        tags: Vec::new(),
        links: Vec::new(),
        properties,
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// Extraction, guarded

/// What came out of one PDF.
#[derive(Debug, Default)]
struct Extracted {
    title: Option<String>,
    /// Author, subject, keywords: (lower-case key, value).
    info: Vec<(String, String)>,
    created: Option<When>,
    modified: Option<When>,
    /// The cleaned text of every page, in order (empty for an empty page).
    pages: Vec<String>,
    /// Pages that could not be read: (1-based page number, why).
    page_errors: Vec<(u32, String)>,
}

/// Why a whole PDF cannot be read.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Encrypted,
    Malformed(String),
    Recursive,
    Crashed(String),
}

impl Failure {
    fn reason(&self) -> String {
        match self {
            Failure::Encrypted => {
                "this PDF is password-protected; open it with its password, export or print it \
                                   to an unprotected PDF, and import that copy"
                    .into()
            }
            Failure::Malformed(e) => {
                format!("not a readable PDF ({e}); it may be damaged or not a PDF at all")
            }
            Failure::Recursive => {
                "this PDF is damaged: a drawing in it contains itself (or nests too deeply)".into()
            }
            Failure::Crashed(e) => {
                format!("the PDF reader failed on this file ({e}); it is probably damaged")
            }
        }
    }
}

/// Runs [`extract`] on a thread with a large stack, turning panics into
/// [`Failure::Crashed`] so one bad file cannot take the import down.
fn extract_guarded(bytes: &[u8]) -> Result<Extracted, Failure> {
    let run =
        || catch_unwind(AssertUnwindSafe(|| extract(bytes))).unwrap_or_else(|p| Err(crashed(p)));
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("pdf-extract".into())
            .stack_size(EXTRACT_STACK_BYTES)
            .spawn_scoped(scope, run)
        {
            Ok(handle) => handle.join().unwrap_or_else(|p| Err(crashed(p))),
            // No thread to be had (resource limits): run here instead.
            Err(_) => run(),
        }
    })
}

fn crashed(payload: Box<dyn std::any::Any + Send>) -> Failure {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown error".into());
    Failure::Crashed(msg)
}

fn extract(bytes: &[u8]) -> Result<Extracted, Failure> {
    let mut doc = PdfDoc::load_mem(bytes).map_err(|e| {
        // A file whose encryption lopdf cannot even set up still says so.
        if contains(bytes, b"/Encrypt") {
            Failure::Encrypted
        } else {
            Failure::Malformed(e.to_string())
        }
    })?;
    if doc.is_encrypted() {
        // Files with only an owner password open with the empty user password.
        doc.decrypt("").map_err(|_| Failure::Encrypted)?;
    }
    check_forms(&doc)?;

    let mut pdf = Extracted::default();
    read_info(&doc, &mut pdf);
    if pdf.title.is_none() {
        pdf.title = xmp_title(&doc);
    }
    for &number in doc.get_pages().keys() {
        let mut raw = String::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut output = PlainTextOutput::new(&mut raw);
            pdf_extract::output_doc_page(&doc, &mut output, number)
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => pdf.page_errors.push((number, e.to_string())),
            Err(p) => pdf.page_errors.push((number, crashed(p).reason())),
        }
        pdf.pages.push(clean_page(&raw));
    }
    Ok(pdf)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Form XObject cycles

/// Walks every page's form XObjects, following only the forms each form's
/// content actually draws (`/Name Do`), and fails on a cycle or on nesting
/// past [`MAX_FORM_DEPTH`]. A form without its own `/Resources` draws from
/// its caller's, as `pdf-extract` does.
fn check_forms(doc: &PdfDoc) -> Result<(), Failure> {
    let mut walk = FormWalk {
        doc,
        stack: Vec::new(),
        safe: HashSet::new(),
        budget: FORM_VISIT_BUDGET,
    };
    for &page in doc.get_pages().values() {
        let Ok((own, inherited)) = doc.get_page_resources(page) else {
            continue;
        };
        let dicts = own.into_iter().chain(
            inherited
                .iter()
                .filter_map(|&id| doc.get_dictionary(id).ok()),
        );
        for resources in dicts {
            walk.resources(resources, None)?;
        }
    }
    Ok(())
}

struct FormWalk<'a> {
    doc: &'a PdfDoc,
    stack: Vec<ObjectId>,
    /// Forms with their own resources already proven free of cycles.
    safe: HashSet<ObjectId>,
    budget: usize,
}

impl<'a> FormWalk<'a> {
    /// The forms in `resources` (only the names in `drawn`, when given).
    fn resources(
        &mut self,
        resources: &'a Dictionary,
        drawn: Option<&HashSet<Vec<u8>>>,
    ) -> Result<(), Failure> {
        let Some(xobjects) = self.dict(resources, b"XObject") else {
            return Ok(());
        };
        for (name, obj) in xobjects.iter() {
            if drawn.is_some_and(|d| !d.contains(name)) {
                continue;
            }
            if let Ok(id) = obj.as_reference() {
                self.form(id, resources)?;
            }
        }
        Ok(())
    }

    fn form(&mut self, id: ObjectId, caller: &'a Dictionary) -> Result<(), Failure> {
        let Ok(Object::Stream(stream)) = self.doc.get_object(id) else {
            return Ok(());
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice())
            || self.safe.contains(&id)
        {
            return Ok(());
        }
        if self.stack.contains(&id) || self.stack.len() >= MAX_FORM_DEPTH {
            return Err(Failure::Recursive);
        }
        self.budget = self.budget.checked_sub(1).ok_or(Failure::Recursive)?;
        let own = self.dict(&stream.dict, b"Resources");
        let content = if stream.filters().is_ok() {
            stream.decompressed_content().ok()
        } else {
            Some(stream.content.clone())
        };
        let drawn: HashSet<Vec<u8>> = content
            .and_then(|c| Content::decode(&c).ok())
            .map(|c| {
                c.operations
                    .iter()
                    .filter(|op| op.operator == "Do")
                    .filter_map(|op| op.operands.first()?.as_name().ok().map(<[u8]>::to_vec))
                    .collect()
            })
            .unwrap_or_default();
        if !drawn.is_empty() {
            self.stack.push(id);
            self.resources(own.unwrap_or(caller), Some(&drawn))?;
            self.stack.pop();
        }
        if own.is_some() {
            self.safe.insert(id);
        }
        Ok(())
    }

    fn dict(&self, parent: &'a Dictionary, key: &[u8]) -> Option<&'a Dictionary> {
        let obj = parent.get(key).ok()?;
        self.doc.dereference(obj).ok()?.1.as_dict().ok()
    }
}

// ---------------------------------------------------------------------------
// Metadata

fn read_info(doc: &PdfDoc, pdf: &mut Extracted) {
    let Some(info) = doc
        .trailer
        .get(b"Info")
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .and_then(|(_, o)| o.as_dict().ok())
    else {
        return;
    };
    let text = |key: &[u8]| -> Option<String> {
        let (_, obj) = doc.dereference(info.get(key).ok()?).ok()?;
        let s = pdf_extract::decode_text_string(obj).ok()?;
        let s = s.replace('\0', "");
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    pdf.title = text(b"Title");
    for (key, name) in [
        (b"Author".as_slice(), "author"),
        (b"Subject", "subject"),
        (b"Keywords", "keywords"),
    ] {
        if let Some(v) = text(key) {
            pdf.info.push((name.into(), v));
        }
    }
    pdf.created = text(b"CreationDate").and_then(|d| parse_pdf_date(&d));
    pdf.modified = text(b"ModDate").and_then(|d| parse_pdf_date(&d));
}

/// The title in the catalog's XMP metadata: `<dc:title>…<rdf:li …>Title</rdf:li>`.
fn xmp_title(doc: &PdfDoc) -> Option<String> {
    let catalog = doc.catalog().ok()?;
    let (_, obj) = doc.dereference(catalog.get(b"Metadata").ok()?).ok()?;
    let stream = obj.as_stream().ok()?;
    let bytes = if stream.filters().is_ok() {
        stream.decompressed_content().ok()?
    } else {
        stream.content.clone()
    };
    let xml = String::from_utf8_lossy(&bytes);
    let after = &xml[xml.find("<dc:title")?..];
    let li = &after[after.find("<rdf:li")?..];
    let value = &li[li.find('>')? + 1..];
    let value = &value[..value.find("</rdf:li>")?];
    let value = value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Generators fill the title with placeholders: "Untitled document",
/// "Microsoft Word - report.docx", "Binder1.pdf". The file name says more.
fn is_useful_title(title: &str) -> bool {
    const FILE_EXTENSIONS: [&str; 14] = [
        ".pdf", ".doc", ".docx", ".odt", ".rtf", ".txt", ".tex", ".dvi", ".ps", ".indd", ".xls",
        ".xlsx", ".ppt", ".pptx",
    ];
    let t = title.trim().to_lowercase();
    !(t.is_empty()
        || t.starts_with("untitled")
        || t.starts_with("microsoft word - ")
        || FILE_EXTENSIONS.iter().any(|e| t.ends_with(e)))
}

/// `D:YYYYMMDDHHmmSS+HH'mm'` (parts after the year optional; `Z` is UTC).
/// With an offset the time is UTC; without one it is wall-clock time.
fn parse_pdf_date(s: &str) -> Option<When> {
    let s = s.trim();
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits < 4 {
        return None;
    }
    let part = |from: usize, default: u32| -> Option<u32> {
        if from + 2 <= digits {
            s.get(from..from + 2)?.parse().ok()
        } else {
            Some(default)
        }
    };
    let year: i32 = s.get(..4)?.parse().ok()?;
    let date = NaiveDate::from_ymd_opt(year, part(4, 1)?, part(6, 1)?)?;
    let time = date.and_hms_opt(part(8, 0)?, part(10, 0)?, part(12, 0)?)?;
    let rest = s.get(digits..)?;
    let sign = match rest.as_bytes().first() {
        Some(b'Z') => return Some(When::Utc(Utc.from_utc_datetime(&time))),
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Some(When::Local(time)),
    };
    let offset_digits: String = rest[1..]
        .chars()
        .filter(char::is_ascii_digit)
        .take(4)
        .collect();
    let hours: i32 = offset_digits
        .get(..2)
        .and_then(|h| h.parse().ok())
        .unwrap_or(0);
    let minutes: i32 = offset_digits
        .get(2..4)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let offset = FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?;
    local_to_utc(time, offset)
}

fn local_to_utc(time: NaiveDateTime, offset: FixedOffset) -> Option<When> {
    let at = offset.from_local_datetime(&time).single()?;
    Some(When::Utc(at.with_timezone(&Utc)))
}

// ---------------------------------------------------------------------------
// Text clean-up

/// Pages joined by a blank line, empty pages left out.
fn join_pages(pages: &[String]) -> String {
    let pages: Vec<&str> = pages
        .iter()
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .collect();
    pages.join("\n\n")
}

/// Normalises one page: ligatures spelled out, odd spaces made plain, runs
/// of spaces collapsed, lines trimmed, words hyphenated across a line break
/// joined, and at most one blank line in a row.
fn clean_page(raw: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in normalise_chars(raw).split('\n') {
        let line = collapse_spaces(line);
        match lines.last_mut() {
            Some(prev)
                if ends_with_split_word(prev) && line.starts_with(|c: char| c.is_lowercase()) =>
            {
                prev.pop(); // the hyphen
                prev.push_str(&line);
            }
            Some(prev) if prev.is_empty() && line.is_empty() => {}
            None if line.is_empty() => {}
            _ => lines.push(line),
        }
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.join("\n")
}

/// "dan-" at the end of a line, before "gerous": a letter, then one hyphen.
fn ends_with_split_word(line: &str) -> bool {
    let mut back = line.chars().rev();
    back.next() == Some('-') && back.next().is_some_and(char::is_alphabetic)
}

fn normalise_chars(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\r' => out.push('\n'),
            '\t' | '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
                out.push(' ')
            }
            // Soft hyphens, zero-width characters and other controls carry no text.
            '\u{00AD}' | '\u{200B}' | '\u{2060}' | '\u{FEFF}' => {}
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

fn collapse_spaces(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Collect, read_with};
    use chrono::DateTime;
    use pdf_extract::{Stream, StringFormat};
    use proptest::prelude::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pdf");

    fn read(name: &str) -> Result<Collect, ImportError> {
        read_with(&Pdf, &Path::new(FIXTURES).join(name), false).map(|(_, c)| c)
    }

    fn one_doc(name: &str) -> Document {
        let c = read(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(c.problems.is_empty(), "{name}: {:?}", c.problems);
        assert_eq!(c.documents.len(), 1, "{name}");
        c.documents.into_iter().next().unwrap()
    }

    fn utc(s: &str) -> Option<When> {
        Some(When::Utc(
            DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc),
        ))
    }

    fn property<'a>(d: &'a Document, key: &str) -> Option<&'a str> {
        d.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// (title, pages, characters of text) of the one document a PDF gives.
    type Expected = Option<(&'static str, &'static str, usize)>;

    #[test]
    fn every_fixture_gives_its_expected_outcome() {
        // None where no document comes out.
        let table: [(&str, Expected); 10] = [
            (
                "pypdf_Seige_of_Vicksburg_Sample_OCR.pdf",
                Some(("pypdf_Seige_of_Vicksburg_Sample_OCR", "6", 12_273)),
            ),
            ("pypdf_crazyones.pdf", Some(("pypdf_crazyones", "1", 908))),
            (
                "pypdf_hello-world.pdf",
                Some(("pypdf_hello-world", "1", 133)),
            ),
            ("pypdf_metadata.pdf", Some(("The Title", "1", 10))),
            (
                "pypdf_pdflatex-outline.pdf",
                Some(("pypdf_pdflatex-outline", "4", 7_735)),
            ),
            (
                "pypdf_superscript-pdftex.pdf",
                Some(("pypdf_superscript-pdftex", "1", 25)),
            ),
            (
                "pypdf_two-different-pages.pdf",
                Some(("pypdf_two-different-pages", "2", 4)),
            ),
            ("pypdf_git.pdf", None),
            ("pypdf_crazyones-encrypted-256.pdf", None),
            ("pypdf_libreoffice-writer-password.pdf", None),
        ];
        for (file, expected) in table {
            let got = read(file);
            match (expected, got) {
                (Some((title, pages, chars)), Ok(c)) => {
                    assert_eq!(c.documents.len(), 1, "{file}");
                    let d = &c.documents[0];
                    assert_eq!(
                        (
                            d.title.as_str(),
                            property(d, "pages"),
                            d.text.chars().count()
                        ),
                        (title, Some(pages), chars),
                        "{file}"
                    );
                    assert_eq!(d.path, PathBuf::from(file));
                    assert!(c.problems.is_empty() && c.messages.is_empty(), "{file}");
                }
                (None, Ok(c)) => assert!(c.documents.is_empty(), "{file}"),
                (_, Err(e)) => assert!(expected.is_none(), "{file}: {e}"),
            }
        }
    }

    #[test]
    fn ligatures_are_spelled_out_and_the_date_is_utc() {
        let d = one_doc("pypdf_crazyones.pdf");
        assert!(d.text.starts_with(
            "The Crazy Ones\n\nOctober 14, 1998\n\nHeres to the crazy ones. The misfits."
        ));
        assert!(d.text.contains("The ones who see things differently."));
        assert!(!d.text.contains(['\u{FB00}', '\u{FB01}', '\u{FB02}']));
        // D:20150604133406-06'00'
        assert_eq!(d.created, utc("2015-06-04T19:34:06Z"));
        assert_eq!(d.modified, None);
        assert!(d.tags.is_empty() && d.links.is_empty());
    }

    #[test]
    fn multilingual_text_comes_through_as_unicode() {
        let d = one_doc("pypdf_hello-world.pdf");
        for line in [
            "English:\nHello World",
            "Привет, мир",
            "你好世界",
            "สวัสดีชาวโลก",
            "こんにちは世界",
        ] {
            assert!(d.text.contains(line), "missing {line:?} in {:?}", d.text);
        }
        // Arabic arrives in the file's visual order; the 12 letters are all there.
        let arabic = d
            .text
            .chars()
            .filter(|c| ('\u{0600}'..='\u{06FF}').contains(c))
            .count();
        assert_eq!(arabic, 12);
        assert_eq!(d.created, utc("2022-06-06T12:39:33Z"));
    }

    #[test]
    fn info_metadata_gives_title_and_properties() {
        let d = one_doc("pypdf_metadata.pdf");
        assert_eq!(d.title, "The Title");
        assert_eq!(d.text, "Whatever\n1");
        let props: Vec<(&str, &str)> = d
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                ("author", "Martin Thoma"),
                ("subject", "The Subject"),
                ("keywords", "Some Keywords, other keywords; more keywords"),
                ("pages", "1"),
            ]
        );
        assert_eq!(d.created, utc("2022-04-15T07:32:43Z"));
        assert_eq!(d.modified, utc("2022-04-15T07:32:43Z"));
    }

    #[test]
    fn scanned_ocr_text_is_dehyphenated_and_placeholder_titles_dropped() {
        let d = one_doc("pypdf_Seige_of_Vicksburg_Sample_OCR.pdf");
        // Its Info title is "Binder1.pdf": the file name says more.
        assert_eq!(d.title, "pypdf_Seige_of_Vicksburg_Sample_OCR");
        assert!(d.text.starts_with("THE SIEGE OF VICKSBURG. 49\n\nhowever, did not last long; it became too conspicuous and dangerous for use.\n"));
        assert!(d.text.contains("watching the mortar shells"));
        assert!(d.text.contains("the inhabitants are now living in caves"));
        assert!(
            d.text.contains("Stayed in camp to-day"),
            "real hyphens stay"
        );
        assert!(!d.text.contains("  ") && !d.text.contains("\n\n\n") && !d.text.contains(" \n"));
        assert_eq!(property(&d, "author"), Some("DSI"));
        assert_eq!(d.created, utc("2010-08-02T14:09:58Z"));
    }

    #[test]
    fn pages_are_separated_by_blank_lines() {
        let d = one_doc("pypdf_two-different-pages.pdf");
        assert_eq!(d.text, "1\n\n2");
        assert_eq!(
            d.title, "pypdf_two-different-pages",
            "\"Untitled document\" is a placeholder"
        );
        let d = one_doc("pypdf_pdflatex-outline.pdf");
        assert!(d.text.starts_with("Contents\n\n1 Foo 2\n\n2 Bar 2"));
        assert!(d.text.ends_with("should match the language. 5\n\n4"));
        assert_eq!(
            one_doc("pypdf_superscript-pdftex.pdf").text,
            "x2 = 9 means x ∈ {3, −3}."
        );
    }

    #[test]
    fn encrypted_pdfs_are_refused_with_what_to_do() {
        for file in [
            "pypdf_crazyones-encrypted-256.pdf",
            "pypdf_libreoffice-writer-password.pdf",
        ] {
            match read(file) {
                Err(ImportError::Unreadable {
                    file: shown,
                    reason,
                }) => {
                    assert!(shown.ends_with(file));
                    assert!(reason.contains("password-protected"), "{reason}");
                    assert!(reason.contains("unprotected"), "{reason}");
                }
                other => panic!("{file}: expected Unreadable, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_scan_without_text_is_a_problem_not_a_document() {
        let c = read("pypdf_git.pdf").unwrap();
        assert!(c.documents.is_empty());
        assert_eq!(c.problems.len(), 1);
        assert!(c.problems[0].file.ends_with("pypdf_git.pdf"));
        assert!(
            c.problems[0].reason.contains("no text layer") && c.problems[0].reason.contains("OCR")
        );
    }

    #[test]
    fn garbage_and_truncated_files_are_unreadable_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pdf");
        std::fs::write(&junk, b"%PDF-1.7\nthis is not really a pdf\n%%EOF").unwrap();
        match read_with(&Pdf, &junk, false) {
            Err(ImportError::Unreadable { reason, .. }) => {
                assert!(reason.contains("not a readable PDF"), "{reason}")
            }
            other => panic!("expected Unreadable, got {other:?}"),
        }
        let whole = std::fs::read(Path::new(FIXTURES).join("pypdf_crazyones.pdf")).unwrap();
        for cut in [0, 10, 100, whole.len() / 2, whole.len() - 10] {
            let _ = extract_guarded(&whole[..cut]);
        }
    }

    #[test]
    fn claims_pdfs_by_name_or_forced_header() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(Path::new(FIXTURES).join("pypdf_metadata.pdf")).unwrap();
        std::fs::write(dir.path().join("A.PDF"), &bytes).unwrap();
        std::fs::write(dir.path().join("scan"), &bytes).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        let src = crate::ingest::open_source(dir.path()).unwrap();
        let pool = src.files().to_vec();
        let names = |units: Vec<Unit>| units.into_iter().map(|u| u.label).collect::<Vec<_>>();
        assert_eq!(
            names(Pdf.claim(src.as_ref(), &pool, false)),
            [PathBuf::from("A.PDF")]
        );
        assert_eq!(
            names(Pdf.claim(src.as_ref(), &pool, true)),
            [PathBuf::from("A.PDF"), PathBuf::from("scan")]
        );
    }

    /// A one-page PDF whose page draws form `Fm0`, whose own content is `form_content`.
    fn pdf_with_form(form_content: &[u8], form_has_resources: bool) -> Vec<u8> {
        let mut doc = PdfDoc::with_version("1.5");
        let pages_id = doc.new_object_id();
        let form_id = doc.new_object_id();
        let mut xobjects = Dictionary::new();
        xobjects.set("Fm0", Object::Reference(form_id));
        let mut resources = Dictionary::new();
        resources.set("XObject", Object::Dictionary(xobjects));
        let mut form = Dictionary::new();
        form.set("Type", Object::Name(b"XObject".to_vec()));
        form.set("Subtype", Object::Name(b"Form".to_vec()));
        form.set(
            "BBox",
            Object::Array(vec![0.into(), 0.into(), 100.into(), 100.into()]),
        );
        if form_has_resources {
            form.set("Resources", Object::Dictionary(resources.clone()));
        }
        doc.objects.insert(
            form_id,
            Object::Stream(Stream::new(form, form_content.to_vec())),
        );
        let content_id = doc.add_object(Stream::new(Dictionary::new(), b"/Fm0 Do".to_vec()));
        let mut page = Dictionary::new();
        page.set("Type", Object::Name(b"Page".to_vec()));
        page.set("Parent", Object::Reference(pages_id));
        page.set("Contents", Object::Reference(content_id));
        page.set("Resources", Object::Dictionary(resources));
        page.set(
            "MediaBox",
            Object::Array(vec![0.into(), 0.into(), 200.into(), 200.into()]),
        );
        let page_id = doc.add_object(page);
        let mut pages = Dictionary::new();
        pages.set("Type", Object::Name(b"Pages".to_vec()));
        pages.set("Kids", Object::Array(vec![Object::Reference(page_id)]));
        pages.set("Count", Object::Integer(1));
        doc.objects.insert(pages_id, Object::Dictionary(pages));
        let mut catalog = Dictionary::new();
        catalog.set("Type", Object::Name(b"Catalog".to_vec()));
        catalog.set("Pages", Object::Reference(pages_id));
        let catalog_id = doc.add_object(catalog);
        doc.trailer.set("Root", Object::Reference(catalog_id));
        let mut info = Dictionary::new();
        info.set(
            "Title",
            Object::String(b"Form test".to_vec(), StringFormat::Literal),
        );
        let info_id = doc.add_object(info);
        doc.trailer.set("Info", Object::Reference(info_id));
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_form_that_draws_itself_is_refused_before_it_overflows_the_stack() {
        assert_eq!(
            extract_guarded(&pdf_with_form(b"/Fm0 Do", true)).unwrap_err(),
            Failure::Recursive
        );
        // Without its own resources the form draws from the page's, which hold it.
        assert_eq!(
            extract_guarded(&pdf_with_form(b"q /Fm0 Do Q", false)).unwrap_err(),
            Failure::Recursive
        );
        // Listing itself in shared resources without drawing itself is fine.
        let ok = extract_guarded(&pdf_with_form(b"BT /F1 12 Tf (Hi) Tj ET", true)).unwrap();
        assert_eq!(ok.title.as_deref(), Some("Form test"));
        assert_eq!(ok.pages.len(), 1);
    }

    #[test]
    fn pdf_dates() {
        assert_eq!(
            parse_pdf_date("D:20150604133406-06'00'"),
            utc("2015-06-04T19:34:06Z")
        );
        assert_eq!(
            parse_pdf_date("D:20220606143933+02'00'"),
            utc("2022-06-06T12:39:33Z")
        );
        assert_eq!(
            parse_pdf_date("D:20220606143933+0530"),
            utc("2022-06-06T09:09:33Z")
        );
        assert_eq!(
            parse_pdf_date("D:20220606143933Z"),
            utc("2022-06-06T14:39:33Z")
        );
        let local = NaiveDate::from_ymd_opt(2015, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(parse_pdf_date("D:2015"), Some(When::Local(local)));
        assert_eq!(parse_pdf_date("D:20151399"), None);
        assert_eq!(parse_pdf_date("yesterday"), None);
        assert_eq!(parse_pdf_date("D:2015é"), Some(When::Local(local)));
    }

    #[test]
    fn page_text_is_normalised() {
        let raw = "\n\n  THE  ﬁrst\u{00A0}line\u{00AD}s  \nconspicu-\nous and dan- \ngerous\nJune 10-\nJuly\n\n\n\nend\u{FB03}x\r\n\n";
        assert_eq!(
            clean_page(raw),
            "THE first lines\nconspicuous and dangerous\nJune 10-\nJuly\n\nendffix"
        );
        assert!(is_useful_title("The Title"));
        for placeholder in [
            "",
            "  ",
            "Untitled document",
            "Binder1.pdf",
            "Microsoft Word - cv.docx",
        ] {
            assert!(!is_useful_title(placeholder), "{placeholder}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut bytes = b"%PDF-1.4\n".to_vec();
            bytes.extend(tail);
            let _ = extract_guarded(&bytes);
        }

        #[test]
        fn mutated_fixture_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = std::fs::read(Path::new(FIXTURES).join("pypdf_crazyones.pdf")).unwrap();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = extract_guarded(&bytes);
        }
    }
}
