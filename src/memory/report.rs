//! What memory commands report: JSON for `--batch`, text for people.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::{Hit, Memories, Memory, MemoryError, Provenance, show_id};
use crate::ingest::records::{Contact, Id, Message};
use crate::jobs::Summary;

/// A memory as shown: ids in hex, people by name, importance now.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryView {
    pub id: String,
    pub kind: &'static str,
    pub title: String,
    pub text: String,
    pub contacts: Vec<String>,
    pub start: String,
    pub end: String,
    pub importance: f32,
    pub pinned: bool,
    pub edited: bool,
    pub access_count: u32,
    pub sources: usize,
}

pub fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

pub struct Names(HashMap<Id, String>);

impl Names {
    pub fn load(mem: &Memories) -> Names {
        Names(
            mem.store()
                .scan::<Contact>([])
                .filter_map(Result::ok)
                .map(|(_, c)| (c.id, c.name))
                .collect(),
        )
    }

    pub fn of(&self, id: Id) -> String {
        self.0
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("{id:x}"))
    }
}

impl MemoryView {
    pub fn new(mem: &Memories, names: &Names, m: &Memory) -> MemoryView {
        MemoryView {
            id: show_id(m.id),
            kind: m.kind.name(),
            title: m.title.clone(),
            text: m.text.clone(),
            contacts: m.contacts.iter().map(|c| names.of(*c)).collect(),
            start: date(m.start_ms),
            end: date(m.end_ms),
            importance: (mem.importance_of(m) * 1000.0).round() / 1000.0,
            pinned: m.pinned,
            edited: m.edited,
            access_count: m.access_count,
            sources: m.provenance.len(),
        }
    }
}

fn first_line(s: &str, n: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(n).collect();
    if line.chars().count() > n || s.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

#[derive(Debug, Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub memory: MemoryView,
    pub score: f32,
    pub cosine: Option<f32>,
    pub vector_rank: Option<usize>,
    pub text_rank: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct SearchReport {
    pub query: String,
    pub hits: Vec<SearchHit>,
    pub notes: Vec<String>,
}

impl SearchReport {
    pub fn new(mem: &Memories, query: &str, hits: Vec<Hit>, notes: Vec<String>) -> SearchReport {
        let names = Names::load(mem);
        SearchReport {
            query: query.to_string(),
            hits: hits
                .into_iter()
                .map(|h| SearchHit {
                    memory: MemoryView::new(mem, &names, &h.memory),
                    score: h.score,
                    cosine: h.cosine,
                    vector_rank: h.vector_rank,
                    text_rank: h.text_rank,
                })
                .collect(),
            notes,
        }
    }
}

impl fmt::Display for SearchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        if self.hits.is_empty() {
            return write!(f, "no memory matches `{}`", self.query);
        }
        for h in &self.hits {
            writeln!(
                f,
                "{}  {:<9} {}  {}",
                &h.memory.id,
                h.memory.kind,
                &h.memory.end[..h.memory.end.len().min(10)],
                h.memory.title
            )?;
            writeln!(f, "    {}", first_line(&h.memory.text, 100))?;
        }
        Ok(())
    }
}

impl Summary for SearchReport {}

#[derive(Debug, Serialize)]
pub struct ListReport {
    pub total: usize,
    pub memories: Vec<MemoryView>,
    pub notes: Vec<String>,
}

impl fmt::Display for ListReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        for m in &self.memories {
            writeln!(
                f,
                "{}  {:<10} {}{}  {}",
                m.id,
                m.kind,
                &m.end[..m.end.len().min(10)],
                if m.pinned { " pinned" } else { "" },
                first_line(
                    if m.title.is_empty() {
                        &m.text
                    } else {
                        &m.title
                    },
                    80
                )
            )?;
        }
        write!(f, "{} of {} memories", self.memories.len(), self.total)
    }
}

impl Summary for ListReport {}

/// One source of a memory, resolved.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceView {
    Message {
        key: String,
        at: String,
        author: String,
        text: String,
    },
    Document {
        key: String,
        title: String,
        path: String,
    },
    Memory {
        id: String,
    },
    Chat {
        id: String,
    },
    Missing {
        key: String,
    },
}

#[derive(Debug, Serialize)]
pub struct ShowReport {
    #[serde(flatten)]
    pub memory: MemoryView,
    pub sources: Vec<SourceView>,
}

impl ShowReport {
    pub fn new(mem: &Memories, m: &Memory) -> Result<ShowReport, MemoryError> {
        let names = Names::load(mem);
        let mut sources = Vec::new();
        for p in &m.provenance {
            sources.push(match p {
                Provenance::Message { key } => match p.message_key() {
                    Some(k) => match mem.store().get::<Message>(k)? {
                        Some(msg) => SourceView::Message {
                            key: key.clone(),
                            at: date(msg.at_ms),
                            author: names.of(msg.author),
                            text: msg.text,
                        },
                        None => SourceView::Missing { key: key.clone() },
                    },
                    None => SourceView::Missing { key: key.clone() },
                },
                Provenance::Document { key } => {
                    let doc = super::unhex(key).and_then(|k| {
                        mem.store()
                            .get::<crate::ingest::records::StoredDocument>(k)
                            .ok()
                            .flatten()
                    });
                    match doc {
                        Some(d) => SourceView::Document {
                            key: key.clone(),
                            title: d.doc.title,
                            path: d.doc.path.display().to_string(),
                        },
                        None => SourceView::Missing { key: key.clone() },
                    }
                }
                Provenance::Memory { id } => SourceView::Memory { id: show_id(*id) },
                Provenance::Chat { id } => SourceView::Chat { id: show_id(*id) },
            });
        }
        Ok(ShowReport {
            memory: MemoryView::new(mem, &names, m),
            sources,
        })
    }
}

impl fmt::Display for ShowReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.memory;
        writeln!(f, "{} {} ({} – {})", m.kind, m.id, m.start, m.end)?;
        if !m.title.is_empty() {
            writeln!(f, "{}", m.title)?;
        }
        writeln!(
            f,
            "importance {:.2}{}{}, recalled {} times",
            m.importance,
            if m.pinned { ", pinned" } else { "" },
            if m.edited { ", edited" } else { "" },
            m.access_count
        )?;
        writeln!(f, "\n{}\n\nsources:", m.text)?;
        for s in &self.sources {
            match s {
                SourceView::Message {
                    at, author, text, ..
                } => writeln!(f, "  {at}  {author}: {}", first_line(text, 90))?,
                SourceView::Document { title, path, .. } => writeln!(f, "  note {title} ({path})")?,
                SourceView::Memory { id } => writeln!(f, "  memory {id}")?,
                SourceView::Chat { id } => writeln!(f, "  chat {id}")?,
                SourceView::Missing { key } => writeln!(f, "  {key} (no longer stored)")?,
            }
        }
        Ok(())
    }
}

impl Summary for ShowReport {}

/// A change to one memory (forget, pin, edit).
#[derive(Debug, Serialize)]
pub struct ChangeReport {
    pub action: &'static str,
    pub memory: MemoryView,
    /// Source messages now excluded from training sets (forget).
    pub excluded_sources: usize,
}

impl fmt::Display for ChangeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.action, self.memory.kind, self.memory.id)?;
        if self.excluded_sources > 0 {
            write!(
                f,
                "; its {} source messages are left out of training from now on",
                self.excluded_sources
            )?;
        }
        Ok(())
    }
}

impl Summary for ChangeReport {}

/// `twin index` / `twin index rebuild`.
#[derive(Debug, Serialize)]
pub struct IndexReport {
    pub memories: u64,
    pub written: u64,
    pub removed: u64,
    pub unchanged_sources: u64,
    pub vectors: u64,
    pub model: String,
    pub dim: usize,
    pub notes: Vec<String>,
}

impl fmt::Display for IndexReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        write!(
            f,
            "{} memories ({} written, {} removed, {} sources unchanged); {} vectors from {} ({} dimensions)",
            self.memories,
            self.written,
            self.removed,
            self.unchanged_sources,
            self.vectors,
            self.model,
            self.dim
        )
    }
}

impl Summary for IndexReport {}

#[derive(Debug, Serialize)]
pub struct L1Report {
    #[serde(flatten)]
    pub l1: super::topics::L1,
    #[serde(skip)]
    pub show: &'static str,
}

impl fmt::Display for L1Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.show == "bio" {
            return write!(f, "{}", self.l1.biography.trim_end());
        }
        for t in &self.l1.topics {
            writeln!(f, "{:>5}  {}", t.size, t.label)?;
        }
        if !self.l1.entities.is_empty() {
            writeln!(f, "\nentities:")?;
            for e in self.l1.entities.iter().take(30) {
                writeln!(f, "{:>5}  {:<24} {:?}", e.mentions, e.name, e.kind)?;
            }
        }
        Ok(())
    }
}

impl Summary for L1Report {}

macro_rules! plain_summary {
    ($t:ty, $fmt:literal, $($field:ident),*) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, $fmt, $(self.$field),*)
            }
        }
        impl Summary for $t {}
    };
}

plain_summary!(
    super::lifecycle::CompactReport,
    "examined {} memories: {} near-duplicates merged, {} faded ones cleaned up",
    examined,
    merged,
    cleaned
);
plain_summary!(
    super::extract::ExtractReport,
    "read {} episodes: {} summaries, {} facts, {} preferences ({} failed)",
    episodes,
    summaries,
    facts,
    preferences,
    failed
);
