//! L1 memory: topic clusters over the embeddings, entities (people, places,
//! organisations) linked to contacts, and a biography assembled from facts and
//! preferences with their provenance. Results are stored in the `profile` tree
//! so the Memory pane shows them without recomputing.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Memories, Memory, MemoryError, MemoryKind, bm25};
use crate::ingest::identity::me_id;
use crate::ingest::records::{Contact, Id};
use crate::jobs::JobCtx;
use crate::store::{Key, Record, Tree};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    pub label: String,
    /// The words that set it apart, most telling first.
    pub terms: Vec<String>,
    pub size: usize,
    /// The memories closest to its centre.
    pub examples: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Person,
    Place,
    Organisation,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub kind: EntityKind,
    pub mentions: u64,
    /// The contact this is, when it names one.
    pub contact: Option<Id>,
    pub examples: Vec<u64>,
}

/// What the L1 pass computed, stored under one key of the `profile` tree.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct L1 {
    pub topics: Vec<Topic>,
    pub entities: Vec<Entity>,
    /// Markdown, each statement citing its memory as [m:ID].
    pub biography: String,
    pub computed_ms: i64,
}

impl Record for L1 {
    const TREE: Tree = Tree::Profile;
}

impl L1 {
    pub fn key() -> Key {
        Key::new().str("memory.l1")
    }

    pub fn load(store: &crate::store::Store) -> Result<Option<L1>, crate::store::StoreError> {
        store.get::<L1>(L1::key())
    }
}

/// Recompute topics, entities and the biography, and store them.
pub fn compute(mem: &Memories, ctx: Option<&JobCtx>) -> Result<L1, MemoryError> {
    let store = mem.store().clone();
    let all: Vec<Memory> = store
        .scan::<Memory>([])
        .map(|r| r.map(|(_, m)| m))
        .collect::<Result<_, _>>()?;
    let contacts: Vec<Contact> = store
        .scan::<Contact>([])
        .map(|r| r.map(|(_, c)| c))
        .collect::<Result<_, _>>()?;
    if let Some(c) = ctx {
        c.progress(0, Some(3), "steps");
    }
    let topics = topics(mem, &all)?;
    if let Some(c) = ctx {
        c.progress(1, Some(3), "steps");
    }
    let entities = entities(&all, &contacts);
    if let Some(c) = ctx {
        c.progress(2, Some(3), "steps");
    }
    let biography = biography(mem, &all, &contacts, &topics);
    let l1 = L1 {
        topics,
        entities,
        biography,
        computed_ms: super::now_ms(),
    };
    store.write(|tx| {
        tx.put(L1::key(), &l1)?;
        Ok(())
    })?;
    if let Some(c) = ctx {
        c.progress(3, Some(3), "steps");
    }
    Ok(l1)
}

/// Spherical k-means over the memory vectors (deterministic: farthest-point
/// seeding from the first vector), labelled by the words most particular to
/// each cluster (term frequency in the cluster over frequency overall).
fn topics(mem: &Memories, all: &[Memory]) -> Result<Vec<Topic>, MemoryError> {
    let mut items: Vec<(&Memory, Vec<f32>)> = Vec::new();
    for m in all {
        if let Some(v) = mem.vector_of(m)? {
            items.push((m, v));
        }
    }
    if items.len() < 4 {
        return Ok(Vec::new());
    }
    let k = ((items.len() as f64 / 8.0).sqrt().round() as usize).clamp(2, 24);
    let dim = items[0].1.len();
    // Farthest-point seeding over a bounded sample keeps this linear.
    let step = (items.len() / 4000).max(1);
    let sample: Vec<usize> = (0..items.len()).step_by(step).collect();
    let mut centres: Vec<Vec<f32>> = vec![items[sample[0]].1.clone()];
    let mut best: Vec<f32> = sample
        .iter()
        .map(|&i| super::embed::dot(&items[i].1, &centres[0]))
        .collect();
    while centres.len() < k {
        let (pos, _) = best
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("sample is not empty");
        let c = items[sample[pos]].1.clone();
        for (j, &i) in sample.iter().enumerate() {
            best[j] = best[j].max(super::embed::dot(&items[i].1, &c));
        }
        centres.push(c);
    }
    let mut assign = vec![0usize; items.len()];
    for _ in 0..12 {
        let mut changed = false;
        for (i, (_, v)) in items.iter().enumerate() {
            let c = nearest(&centres, v);
            if c != assign[i] {
                assign[i] = c;
                changed = true;
            }
        }
        let mut sums = vec![vec![0f32; dim]; k];
        for (i, (_, v)) in items.iter().enumerate() {
            for (s, x) in sums[assign[i]].iter_mut().zip(v) {
                *s += x;
            }
        }
        for (c, s) in centres.iter_mut().zip(sums) {
            if s.iter().any(|x| *x != 0.0) {
                *c = s;
                super::embed::normalize(c);
            }
        }
        if !changed {
            break;
        }
    }
    // Term statistics.
    let mut df: HashMap<String, usize> = HashMap::new();
    let mut cluster_tf: Vec<HashMap<String, usize>> = vec![HashMap::new(); k];
    for (i, (m, _)) in items.iter().enumerate() {
        let words: HashSet<String> = bm25::terms(&body_text(m))
            .filter(|w| w.chars().count() > 2 && !w.chars().all(|c| c.is_ascii_digit()))
            .collect();
        for w in words {
            *df.entry(w.clone()).or_default() += 1;
            *cluster_tf[assign[i]].entry(w).or_default() += 1;
        }
    }
    let n = items.len() as f32;
    let mut out = Vec::new();
    for c in 0..k {
        let members: Vec<usize> = (0..items.len()).filter(|i| assign[*i] == c).collect();
        if members.is_empty() {
            continue;
        }
        let size = members.len() as f32;
        let mut scored: Vec<(String, f32)> = cluster_tf[c]
            .iter()
            .filter(|(_, tf)| **tf >= 2 || members.len() < 4)
            .map(|(w, tf)| {
                let p_in = *tf as f32 / size;
                let p_all = df[w] as f32 / n;
                (w.clone(), p_in * (p_in / p_all).ln().max(0.0))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let terms: Vec<String> = scored.into_iter().take(6).map(|(w, _)| w).collect();
        let mut by_closeness: Vec<(f32, u64)> = members
            .iter()
            .map(|&i| (super::embed::dot(&items[i].1, &centres[c]), items[i].0.id))
            .collect();
        by_closeness.sort_by(|a, b| b.0.total_cmp(&a.0));
        out.push(Topic {
            label: terms
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(" · "),
            terms,
            size: members.len(),
            examples: by_closeness.into_iter().take(5).map(|(_, id)| id).collect(),
        });
    }
    out.sort_by(|a, b| b.size.cmp(&a.size));
    Ok(out)
}

fn nearest(centres: &[Vec<f32>], v: &[f32]) -> usize {
    centres
        .iter()
        .enumerate()
        .map(|(i, c)| (i, super::embed::dot(c, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// A memory's words without the "Name:" speaker prefixes of episodes.
fn body_text(m: &Memory) -> String {
    if m.kind != MemoryKind::Episode {
        return m.text.clone();
    }
    m.text
        .lines()
        .map(|l| l.split_once(": ").map(|(_, t)| t).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

const PLACE_CUES: &[&str] = &[
    "in", "at", "from", "to", "visit", "visiting", "near", "moved",
];
const ORG_WORDS: &[&str] = &[
    "inc",
    "ltd",
    "llc",
    "gmbh",
    "corp",
    "company",
    "university",
    "college",
    "school",
    "bank",
    "hospital",
    "institute",
    "group",
    "foundation",
    "agency",
    "club",
];
const NOT_NAMES: &[&str] = &[
    "i",
    "i'm",
    "im",
    "the",
    "a",
    "an",
    "and",
    "but",
    "so",
    "ok",
    "okay",
    "yes",
    "no",
    "hi",
    "hey",
    "hello",
    "thanks",
    "thank",
    "lol",
    "oh",
    "well",
    "what",
    "when",
    "where",
    "why",
    "how",
    "who",
    "it",
    "this",
    "that",
    "we",
    "you",
    "he",
    "she",
    "they",
    "my",
    "your",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
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
    "good",
    "yeah",
    "sure",
    "maybe",
    "just",
    "also",
    "if",
    "is",
    "are",
    "do",
    "did",
    "let",
    "let's",
    "can",
    "will",
    "not",
    "all",
    "there",
    "then",
    "here",
    "sorry",
    "please",
];

/// Capitalised names inside sentences (not sentence starts), counted, typed by
/// simple cues, and linked to contacts by name.
fn entities(all: &[Memory], contacts: &[Contact]) -> Vec<Entity> {
    let me = me_id();
    let mut by_name: HashMap<String, Id> = HashMap::new();
    for c in contacts.iter().filter(|c| c.id != me) {
        for (n, _) in c.names.iter().chain(std::iter::once(&(c.name.clone(), 0))) {
            let n = n.trim().to_lowercase();
            if n.len() > 1 {
                by_name.entry(n.clone()).or_insert(c.id);
                if let Some(first) = n.split_whitespace().next()
                    && first.len() > 2
                {
                    by_name.entry(first.to_string()).or_insert(c.id);
                }
            }
        }
    }
    struct Acc {
        mentions: u64,
        place: u64,
        examples: Vec<u64>,
        display: String,
    }
    let mut acc: HashMap<String, Acc> = HashMap::new();
    for m in all {
        for sentence in body_text(m).split(['.', '!', '?', '\n']) {
            let words: Vec<&str> = sentence.split_whitespace().collect();
            let mut i = 1; // skip the sentence's first word
            while i < words.len() {
                let w = clean(words[i]);
                if !is_name_word(w) {
                    i += 1;
                    continue;
                }
                let start = i;
                let mut parts = vec![w.to_string()];
                i += 1;
                while i < words.len() && parts.len() < 3 && is_name_word(clean(words[i])) {
                    parts.push(clean(words[i]).to_string());
                    i += 1;
                }
                let name = parts.join(" ");
                let key = name.to_lowercase();
                let cue = clean(words[start - 1]).to_lowercase();
                let e = acc.entry(key).or_insert(Acc {
                    mentions: 0,
                    place: 0,
                    examples: Vec::new(),
                    display: name,
                });
                e.mentions += 1;
                if PLACE_CUES.contains(&cue.as_str()) {
                    e.place += 1;
                }
                if e.examples.len() < 5 && !e.examples.contains(&m.id) {
                    e.examples.push(m.id);
                }
            }
        }
    }
    let mut out: Vec<Entity> = acc
        .into_iter()
        .filter(|(_, a)| a.mentions >= 2)
        .map(|(key, a)| {
            let contact = by_name.get(&key).copied();
            let last = key.rsplit(' ').next().unwrap_or("");
            let kind = if contact.is_some() {
                EntityKind::Person
            } else if ORG_WORDS.contains(&last)
                || (a.display.len() >= 2 && a.display.chars().all(|c| c.is_ascii_uppercase()))
            {
                EntityKind::Organisation
            } else if a.place * 2 >= a.mentions {
                EntityKind::Place
            } else {
                EntityKind::Other
            };
            Entity {
                name: a.display,
                kind,
                mentions: a.mentions,
                contact,
                examples: a.examples,
            }
        })
        .collect();
    out.sort_by(|a, b| b.mentions.cmp(&a.mentions).then(a.name.cmp(&b.name)));
    out.truncate(100);
    out
}

fn clean(w: &str) -> &str {
    w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .trim_end_matches("'s")
}

fn is_name_word(w: &str) -> bool {
    let mut chars = w.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_uppercase()
        && w.chars().count() > 1
        && w.chars()
            .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
        && !NOT_NAMES.contains(&w.to_lowercase().as_str())
}

/// "About me": who I am in the data, then facts and preferences (most
/// important first), each citing its memory.
fn biography(mem: &Memories, all: &[Memory], contacts: &[Contact], topics: &[Topic]) -> String {
    let me = me_id();
    let mut out = String::new();
    let my_name = contacts.iter().find(|c| c.id == me).map(|c| c.name.clone());
    out.push_str("# About me\n\n");
    if let Some(n) = &my_name {
        let c = contacts.iter().find(|c| c.id == me).expect("found above");
        let span = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        out.push_str(&format!(
            "I am {n}. My messages here run from {} to {} ({} messages).\n",
            span(c.first_ms),
            span(c.last_ms),
            c.messages
        ));
    }
    let mut people: Vec<&Contact> = contacts.iter().filter(|c| c.id != me).collect();
    people.sort_by(|a, b| b.messages.cmp(&a.messages));
    if !people.is_empty() {
        let names: Vec<String> = people.iter().take(5).map(|c| c.name.clone()).collect();
        out.push_str(&format!("I talk most with {}.\n", names.join(", ")));
    }
    if !topics.is_empty() {
        let t: Vec<String> = topics
            .iter()
            .take(5)
            .map(|t| {
                format!(
                    "{} [m:{}]",
                    t.label,
                    t.examples.first().copied().unwrap_or(0)
                )
            })
            .collect();
        out.push_str(&format!("What I talk about: {}.\n", t.join("; ")));
    }
    let mut facts: Vec<&Memory> = all
        .iter()
        .filter(|m| matches!(m.kind, MemoryKind::Fact | MemoryKind::Preference))
        .collect();
    facts.sort_by(|a, b| {
        mem.importance_of(b)
            .total_cmp(&mem.importance_of(a))
            .then(a.id.cmp(&b.id))
    });
    for (title, kind) in [
        ("Facts", MemoryKind::Fact),
        ("Preferences", MemoryKind::Preference),
    ] {
        let list: Vec<&&Memory> = facts.iter().filter(|m| m.kind == kind).take(40).collect();
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {title}\n\n"));
        for m in list {
            out.push_str(&format!("- {} [m:{}]\n", m.text.trim(), m.id));
        }
    }
    if facts.is_empty() {
        out.push_str(
            "\nNo facts extracted yet: `twin memory extract` reads episodes with the chat model and adds them.\n",
        );
    }
    out
}
