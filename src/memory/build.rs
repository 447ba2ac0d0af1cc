//! Memories derived from what ingest stored: an episode per conversation window
//! (long windows in parts) and heading-aware chunks of notes and documents.
//!
//! Incremental and idempotent: every derived memory has an id from its source
//! (conversation + window start + part, document + chunk), each source group
//! remembers a hash of what it was derived from and which memories came out,
//! so an unchanged group costs one lookup, a changed one is re-derived (new
//! memories added, changed ones re-embedded, vanished ones removed unless the
//! user pinned or edited them), and a run killed half way simply continues.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::{Memories, MemoryError, MemoryKind, NewMemory, Progress, Provenance, keys};
use crate::ingest::Document;
use crate::ingest::identity::me_id;
use crate::ingest::records::{Contact, Conversation, Id, Message, StoredDocument, Window, id_of};
use crate::jobs::JobCtx;
use crate::store::{Key, Store, StoreError, Tree};

/// An episode part holds at most this many messages or characters.
const PART_MESSAGES: usize = 30;
const PART_CHARS: usize = 1500;
/// A document chunk holds at most this many characters.
const CHUNK_CHARS: usize = 1200;

const GROUP_CONVERSATION: u8 = b'c';
const GROUP_DOCUMENT: u8 = b'd';

#[derive(Debug, Default, Clone, Serialize)]
pub struct BuildReport {
    pub groups: u64,
    pub unchanged: u64,
    pub written: u64,
    pub removed: u64,
    /// Closed chat sessions remembered now (closed while memory was not open).
    pub chats: u64,
    pub memories: u64,
}

fn group_state(store: &Store, key: &Key) -> Result<Option<(u64, Vec<u64>)>, StoreError> {
    let v = store
        .tree(Tree::Index)
        .get(key.clone().into_vec())
        .map_err(|e| StoreError::Aborted(e.to_string()))?;
    Ok(v.and_then(|b| {
        let hash = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let ids = b[8..]
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect();
        Some((hash, ids))
    }))
}

fn set_group_state(store: &Store, key: &Key, hash: u64, ids: &[u64]) -> Result<(), StoreError> {
    let mut v = hash.to_be_bytes().to_vec();
    for id in ids {
        v.extend_from_slice(&id.to_be_bytes());
    }
    let k = key.clone().into_vec();
    store.write(|tx| {
        tx.put_raw(Tree::Index, &k, v.clone())?;
        Ok(())
    })
}

/// Derive and store every memory that ingest's data implies.
pub fn build(mem: &Memories, ctx: &JobCtx) -> Result<BuildReport, MemoryError> {
    let store = mem.store().clone();
    let mut report = BuildReport::default();
    let names: HashMap<Id, String> = store
        .scan::<Contact>([])
        .filter_map(Result::ok)
        .map(|(_, c)| (c.id, c.name))
        .collect();
    let conversations: Vec<Conversation> = store
        .scan::<Conversation>([])
        .map(|r| r.map(|(_, c)| c))
        .collect::<Result<_, _>>()?;
    let docs: Vec<(sled::IVec, StoredDocument)> =
        store.scan::<StoredDocument>([]).collect::<Result<_, _>>()?;
    let total = (conversations.len() + docs.len()) as u64;
    let mut done = 0u64;
    // Pass 1 (quick: rendering, no model): what each changed source now
    // implies. Pass 2 embeds and stores it, reporting progress in memories,
    // where the time goes.
    let mut plan: Vec<(Key, u64, Vec<NewMemory>)> = Vec::new();

    for conv in &conversations {
        if ctx.is_cancelled() {
            return Err(MemoryError::Cancelled);
        }
        let windows: Vec<Window> = store
            .scan::<Window>(Key::new().u64(conv.id))
            .map(|r| r.map(|(_, w)| w))
            .collect::<Result<_, _>>()?;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for w in &windows {
            h.update(&w.start_ms.to_be_bytes());
            for m in &w.messages {
                h.update(m);
            }
        }
        h.update(conv.title.as_deref().unwrap_or("").as_bytes());
        let hash = h.digest();
        let gkey = keys::group(GROUP_CONVERSATION, conv.id);
        let old = group_state(&store, &gkey)?;
        report.groups += 1;
        if old.as_ref().is_some_and(|(oh, _)| *oh == hash) {
            report.unchanged += 1;
        } else {
            let episodes = episodes(&store, conv, &windows, &names)?;
            let ids: Vec<u64> = episodes.iter().map(|e| e.id).collect();
            if let Some((_, old_ids)) = &old {
                report.removed += remove_vanished(mem, old_ids, &ids)?;
            }
            plan.push((gkey, hash, episodes));
        }
        done += 1;
        ctx.progress(done, Some(total), "sources");
    }

    for (key, d) in &docs {
        if ctx.is_cancelled() {
            return Err(MemoryError::Cancelled);
        }
        let doc_id = id_of(&[b"doc", key.as_ref()]);
        let gkey = keys::group(GROUP_DOCUMENT, doc_id);
        let old = group_state(&store, &gkey)?;
        report.groups += 1;
        if old.as_ref().is_some_and(|(oh, _)| *oh == d.content_hash) {
            report.unchanged += 1;
        } else {
            let when = d
                .doc
                .modified
                .as_ref()
                .or(d.doc.created.as_ref())
                .map(|w| match w {
                    crate::ingest::When::Utc(t) => t.timestamp_millis(),
                    crate::ingest::When::Local(t) => t.and_utc().timestamp_millis(),
                })
                .unwrap_or(0);
            let prov = Provenance::Document {
                key: super::hex(key),
            };
            let chunks = chunk_document(&d.doc);
            let items: Vec<NewMemory> = chunks
                .into_iter()
                .enumerate()
                .map(|(i, (title, text))| NewMemory {
                    id: id_of(&[
                        b"memory",
                        b"document",
                        key.as_ref(),
                        &(i as u64).to_be_bytes(),
                    ]),
                    kind: MemoryKind::Document,
                    source_hash: xxhash_rust::xxh3::xxh3_64(format!("{title}\n{text}").as_bytes()),
                    title,
                    text,
                    contacts: Vec::new(),
                    conversation: None,
                    start_ms: when,
                    end_ms: when,
                    provenance: vec![prov.clone()],
                    importance: MemoryKind::Document.base_importance(),
                })
                .collect();
            let ids: Vec<u64> = items.iter().map(|e| e.id).collect();
            if let Some((_, old_ids)) = &old {
                report.removed += remove_vanished(mem, old_ids, &ids)?;
            }
            plan.push((gkey, d.content_hash, items));
        }
        done += 1;
        ctx.progress(done, Some(total), "sources");
    }

    // Pass 2: in batches of about 256 memories; a source's state is written
    // only once all its memories are stored, so a cancelled or crashed build
    // redoes exactly the sources it had not finished.
    let total: u64 = plan.iter().map(|(_, _, items)| items.len() as u64).sum();
    let mut stored = 0u64;
    let mut pending: Vec<NewMemory> = Vec::new();
    let mut groups: Vec<(Key, u64, Vec<u64>)> = Vec::new();
    ctx.progress(0, Some(total), "memories");
    let mut plan = plan.into_iter().peekable();
    while let Some((key, hash, items)) = plan.next() {
        groups.push((key, hash, items.iter().map(|m| m.id).collect()));
        pending.extend(items);
        if pending.len() < 256 && plan.peek().is_some() {
            continue;
        }
        if ctx.is_cancelled() {
            return Err(MemoryError::Cancelled);
        }
        let n = pending.len() as u64;
        let progress = Progress {
            ctx,
            before: stored,
            total,
        };
        report.written += mem.upsert(std::mem::take(&mut pending), Some(progress))? as u64;
        stored += n;
        for (k, h, ids) in groups.drain(..) {
            set_group_state(&store, &k, h, &ids)?;
        }
    }
    report.chats = super::chats::remember_closed(mem)?;
    report.written += report.chats;
    mem.save()?;
    report.memories = mem.len() as u64;
    Ok(report)
}

/// Remove memories a group no longer derives, except pinned or edited ones.
fn remove_vanished(mem: &Memories, old: &[u64], new: &[u64]) -> Result<u64, MemoryError> {
    let keep: HashSet<u64> = new.iter().copied().collect();
    let mut gone = Vec::new();
    for id in old {
        if keep.contains(id) {
            continue;
        }
        if let Some(m) = mem.get(*id)?
            && !m.pinned
            && !m.edited
        {
            gone.push(*id);
        }
    }
    Ok(mem.remove(&gone, false)? as u64)
}

/// The episodes of one conversation: each window rendered as "Name: text"
/// lines, long windows in parts.
fn episodes(
    store: &Store,
    conv: &Conversation,
    windows: &[Window],
    names: &HashMap<Id, String>,
) -> Result<Vec<NewMemory>, StoreError> {
    let me = me_id();
    let mut out = Vec::new();
    let name_of = |id: &Id| names.get(id).cloned().unwrap_or_else(|| "someone".into());
    let others: Vec<String> = conv
        .participants
        .iter()
        .filter(|p| **p != me)
        .map(name_of)
        .collect();
    let title_base = conv.title.clone().unwrap_or_else(|| {
        if others.is_empty() {
            "a conversation".into()
        } else {
            format!("with {}", others.join(", "))
        }
    });
    for w in windows {
        let mut part = 0u64;
        let mut lines: Vec<String> = Vec::new();
        let mut keys: Vec<[u8; 16]> = Vec::new();
        let mut people: Vec<Id> = Vec::new();
        let mut chars = 0usize;
        let mut span = (i64::MAX, i64::MIN);
        let mut emit = |lines: &mut Vec<String>,
                        keys: &mut Vec<[u8; 16]>,
                        people: &mut Vec<Id>,
                        span: &mut (i64, i64),
                        part: &mut u64| {
            if lines.is_empty() {
                return;
            }
            let text = lines.join("\n");
            let day = chrono::DateTime::from_timestamp_millis(span.0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(text.as_bytes());
            let involves_me = keys.len() != people.len() || people.is_empty();
            out.push(NewMemory {
                id: id_of(&[
                    b"memory",
                    b"episode",
                    &conv.id.to_be_bytes(),
                    &w.start_ms.to_be_bytes(),
                    &part.to_be_bytes(),
                ]),
                kind: MemoryKind::Episode,
                title: format!("{title_base}, {day}"),
                source_hash: h.digest(),
                text,
                contacts: std::mem::take(people),
                conversation: Some(conv.id),
                start_ms: span.0,
                end_ms: span.1,
                provenance: keys.drain(..).map(|k| Provenance::message(&k)).collect(),
                importance: MemoryKind::Episode.base_importance()
                    + if involves_me { 0.1 } else { 0.0 },
            });
            lines.clear();
            *span = (i64::MAX, i64::MIN);
            *part += 1;
        };
        for (key, author) in w.messages.iter().zip(&w.authors) {
            let Some(m) = store.get::<Message>(key)? else {
                continue;
            };
            if m.text.trim().is_empty() {
                continue;
            }
            let who = if *author == me {
                names.get(&me).cloned().unwrap_or_else(|| "me".into())
            } else {
                if !people.contains(author) {
                    people.push(*author);
                }
                name_of(author)
            };
            let line = format!("{who}: {}", m.text.trim());
            if !lines.is_empty()
                && (lines.len() >= PART_MESSAGES || chars + line.len() > PART_CHARS)
            {
                emit(&mut lines, &mut keys, &mut people, &mut span, &mut part);
                chars = 0;
            }
            chars += line.len() + 1;
            lines.push(line);
            keys.push(*key);
            span = (span.0.min(m.at_ms), span.1.max(m.at_ms));
        }
        emit(&mut lines, &mut keys, &mut people, &mut span, &mut part);
    }
    Ok(out)
}

/// Split a note at its headings (the title path "Note › Section › Sub" goes
/// with each chunk), long sections at paragraph breaks.
pub fn chunk_document(doc: &Document) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut body = String::new();
    let mut in_fence = false;
    let title_of = |path: &[(usize, String)]| {
        let mut t = doc.title.clone();
        for (_, h) in path {
            t.push_str(" › ");
            t.push_str(h);
        }
        t
    };
    let push = |path: &[(usize, String)], body: &mut String, out: &mut Vec<(String, String)>| {
        let text = body.trim();
        if !text.is_empty() {
            for piece in split_paragraphs(text, CHUNK_CHARS) {
                out.push((title_of(path), piece));
            }
        }
        body.clear();
    };
    for line in doc.text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if !in_fence && (1..=6).contains(&level) && line[level..].starts_with(' ') {
            push(&path, &mut body, &mut out);
            let heading = line[level..].trim().to_string();
            path.retain(|(l, _)| *l < level);
            path.push((level, heading));
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    push(&path, &mut body, &mut out);
    out
}

fn split_paragraphs(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for para in text.split("\n\n") {
        if !cur.is_empty() && cur.len() + para.len() + 2 > max {
            out.push(std::mem::take(&mut cur));
        }
        if para.len() > max {
            // One huge paragraph: cut at sentence ends, else at max characters.
            let mut rest = para;
            while rest.len() > max {
                let mut cut = rest[..floor_char(rest, max)]
                    .rfind(". ")
                    .map(|i| i + 1)
                    .unwrap_or(0);
                if cut == 0 {
                    cut = floor_char(rest, max);
                }
                out.push(rest[..cut].trim().to_string());
                rest = &rest[cut..];
            }
            cur.push_str(rest.trim());
            continue;
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(para);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document {
            path: "n.md".into(),
            title: "Trip".into(),
            text: text.into(),
            created: None,
            modified: None,
            tags: vec![],
            links: vec![],
            properties: vec![],
        }
    }

    #[test]
    fn chunks_follow_headings_and_keep_the_path() {
        let d = doc(
            "intro line\n# Alps\nwe hiked\n## Day 2\nrain\n```\n# not a heading\n```\n# Food\ncheese\n",
        );
        let c = chunk_document(&d);
        let titles: Vec<&str> = c.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            titles,
            ["Trip", "Trip › Alps", "Trip › Alps › Day 2", "Trip › Food"]
        );
        assert!(c[2].1.contains("# not a heading"));
        let long = doc(&"word ".repeat(2000));
        assert!(
            chunk_document(&long)
                .iter()
                .all(|(_, t)| t.len() <= CHUNK_CHARS)
        );
    }
}
