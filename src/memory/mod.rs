//! Long-term memory: records in the `memories` tree, their embeddings in the
//! `vectors` tree, an HNSW index over the vectors and BM25 over the text, fused
//! into one hybrid search. Core module: no UI code.
//!
//! - [`Memories`] is the open memory: the store plus the in-memory indexes. It
//!   is the one place that writes memories and vectors, so the indexes never
//!   drift from the store.
//! - [`build`] derives episodes (conversation windows) and document chunks from
//!   what ingest stored; [`lifecycle`] keeps importance, decay, compaction and
//!   cleanup; [`topics`] clusters memories and assembles the biography.

pub mod bm25;
pub mod build;
pub mod chats;
pub mod convert;
pub mod embed;
pub mod extract;
pub mod flat;
pub mod index;
pub mod lifecycle;
pub mod report;
pub mod topics;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::ingest::records::Id;
use crate::jobs::JobCtx;
use crate::store::{Key, Record, Store, StoreError, Tree};
use bm25::Bm25;
use embed::{EmbedError, Embedder};
use index::VectorIndex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// A conversation window, rendered (and summarised when a model is present).
    Episode,
    Fact,
    Preference,
    /// A heading-aware chunk of a note or document.
    Document,
    /// A twin chat session.
    Chat,
    Summary,
}

impl MemoryKind {
    pub const ALL: [MemoryKind; 6] = [
        MemoryKind::Episode,
        MemoryKind::Fact,
        MemoryKind::Preference,
        MemoryKind::Document,
        MemoryKind::Chat,
        MemoryKind::Summary,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MemoryKind::Episode => "episode",
            MemoryKind::Fact => "fact",
            MemoryKind::Preference => "preference",
            MemoryKind::Document => "document",
            MemoryKind::Chat => "chat",
            MemoryKind::Summary => "summary",
        }
    }

    pub fn parse(s: &str) -> Option<MemoryKind> {
        MemoryKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_lowercase().trim_end_matches('s'))
    }

    /// Where importance starts before use, pins and decay move it.
    pub fn base_importance(self) -> f32 {
        match self {
            MemoryKind::Fact => 0.7,
            MemoryKind::Preference => 0.6,
            MemoryKind::Summary => 0.55,
            MemoryKind::Document => 0.5,
            MemoryKind::Chat => 0.45,
            MemoryKind::Episode => 0.4,
        }
    }
}

/// Where a memory came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Provenance {
    /// A stored message (its 16-byte key, hex).
    Message { key: String },
    /// A stored document, by its key in the `documents` tree (hex).
    Document { key: String },
    /// Another memory (a fact extracted from an episode, a merged duplicate).
    Memory { id: u64 },
    /// A twin chat session.
    Chat { id: u64 },
}

impl Provenance {
    pub fn message(key: &[u8; 16]) -> Provenance {
        Provenance::Message { key: hex(key) }
    }

    pub fn message_key(&self) -> Option<[u8; 16]> {
        match self {
            Provenance::Message { key } => unhex(key)?.try_into().ok(),
            _ => None,
        }
    }
}

/// Keys as hex: the one implementation, shared with export bundles.
pub use crate::privacy::bundle::{hex, unhex};

/// One memory. Key: id, big-endian.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub id: u64,
    pub kind: MemoryKind,
    pub title: String,
    pub text: String,
    /// People it involves (contact ids; "me" left out).
    #[serde(default)]
    pub contacts: Vec<Id>,
    #[serde(default)]
    pub conversation: Option<Id>,
    /// The time span of its sources (ms since the epoch, UTC).
    pub start_ms: i64,
    pub end_ms: i64,
    pub provenance: Vec<Provenance>,
    /// Hash of the source content it was derived from (re-derive on change).
    #[serde(default)]
    pub source_hash: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub accessed_ms: i64,
    #[serde(default)]
    pub access_count: u32,
    #[serde(default)]
    pub pinned: bool,
    /// The user changed the text: never overwritten by a re-derivation.
    #[serde(default)]
    pub edited: bool,
    /// Base importance in 0..=1 (see [`lifecycle::importance`]).
    pub importance: f32,
    /// The vector slot holding its embedding, if embedded.
    #[serde(default)]
    pub slot: Option<u64>,
}

impl Record for Memory {
    const TREE: Tree = Tree::Memories;
}

impl Memory {
    pub fn key(id: u64) -> Key {
        Key::new().u64(id)
    }

    /// The text embedded and searched: title and body.
    pub fn search_text(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n{}", self.title, self.text)
        }
    }
}

/// A memory before it is stored (ids are derived by the caller so re-deriving
/// the same source gives the same id).
#[derive(Debug, Clone)]
pub struct NewMemory {
    pub id: u64,
    pub kind: MemoryKind,
    pub title: String,
    pub text: String,
    pub contacts: Vec<Id>,
    pub conversation: Option<Id>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub provenance: Vec<Provenance>,
    pub source_hash: u64,
    pub importance: f32,
}

/// Secondary keys in the `index` tree that belong to memory.
pub mod keys {
    use crate::store::Key;

    /// The index state (generation, next slot, model).
    pub const STATE: &[u8] = b"mx";
    /// A source group (conversation or document) -> the memories derived from it.
    pub fn group(kind: u8, id: u64) -> Key {
        Key::new().bytes(b"mg").bytes(&[kind]).u64(id)
    }
    /// A message the user forgot a memory of: excluded from training sets.
    pub fn forgotten(message: &[u8; 16]) -> Key {
        Key::new().bytes(b"mf").bytes(message)
    }
    pub const FORGOTTEN_PREFIX: &[u8] = b"mf";
}

/// Persistent state of the vector index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexState {
    /// Bumped on every full rebuild; a dump from another generation is stale.
    pub generation: u64,
    pub next_slot: u64,
    pub model: String,
    pub dim: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(
        "the memory vectors were made with {stored} but the embedding model now is {current}; run `twin index rebuild` to re-embed every memory (search uses words only until then)"
    )]
    ModelChanged { stored: String, current: String },
    #[error("no memory with id {0:016x}; `twin memory list` shows the ids")]
    NotFound(u64),
    #[error(
        "`{0}` is not a memory id (16 hex digits, or a unique prefix of at least 6); `twin memory list` shows the ids"
    )]
    Unknown(String),
    #[error("`{0}` matches more than one memory; give more digits")]
    Ambiguous(String),
    #[error("index folder {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

/// What ranking and filters need of each memory, kept in RAM.
#[derive(Debug, Clone)]
struct Meta {
    kind: MemoryKind,
    contacts: Vec<Id>,
    start_ms: i64,
    end_ms: i64,
    pinned: bool,
    edited: bool,
    importance: f32,
    access_count: u32,
    accessed_ms: i64,
    created_ms: i64,
}

impl Meta {
    fn of(m: &Memory) -> Meta {
        Meta {
            kind: m.kind,
            contacts: m.contacts.clone(),
            start_ms: m.start_ms,
            end_ms: m.end_ms,
            pinned: m.pinned,
            edited: m.edited,
            importance: m.importance,
            access_count: m.access_count,
            accessed_ms: m.accessed_ms,
            created_ms: m.created_ms,
        }
    }

    fn life(&self) -> lifecycle::Life {
        lifecycle::Life {
            base: self.importance,
            pinned: self.pinned,
            edited: self.edited,
            access_count: self.access_count,
            last_ms: self.created_ms.max(self.accessed_ms),
        }
    }
}

/// Where one `upsert` stands in a larger job, so the job's progress moves per
/// embedded batch: memories handled before this call, and the job's total.
#[derive(Clone, Copy)]
pub struct Progress<'a> {
    pub ctx: &'a JobCtx,
    pub before: u64,
    pub total: u64,
}

struct Inner {
    index: VectorIndex,
    bm25: Bm25,
    meta: HashMap<u64, Meta>,
    slot_mem: HashMap<u64, u64>,
    state: IndexState,
    /// Set when the stored vectors were made by another model.
    mismatch: Option<String>,
    dirty: bool,
}

/// A search request.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub text: String,
    pub k: usize,
    pub contact: Option<Id>,
    pub kinds: Vec<MemoryKind>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
    /// Cosine similarity to the query, when the vector side found it.
    pub cosine: Option<f32>,
    pub vector_rank: Option<usize>,
    pub text_rank: Option<usize>,
    pub memory: Memory,
}

/// One memory's standing in the fused ranking.
#[derive(Debug, Default, Clone, Copy)]
struct Fused {
    rrf: f32,
    cosine: Option<f32>,
    vector_rank: Option<usize>,
    text_rank: Option<usize>,
}

/// Reciprocal-rank-fusion constant (the usual 60).
const RRF_K: f32 = 60.0;

/// The open memory.
pub struct Memories {
    store: Arc<Store>,
    embedder: Box<dyn Embedder>,
    dir: PathBuf,
    inner: RwLock<Inner>,
    half_life_days: f64,
}

/// The index folder beside a store folder.
pub fn index_dir(store_dir: &Path) -> PathBuf {
    store_dir
        .parent()
        .map(|p| p.join("index"))
        .unwrap_or_else(|| store_dir.join("index"))
}

pub use crate::llm::sessions::now_ms;

fn read_state(store: &Store) -> Result<Option<IndexState>, StoreError> {
    let v = store
        .tree(Tree::Index)
        .get(keys::STATE)
        .map_err(|e| StoreError::Aborted(e.to_string()))?;
    Ok(v.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Vector bytes: memory id (8, big-endian) then f32 little-endian.
fn encode_vector(memory: u64, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v.len() * 4);
    out.extend_from_slice(&memory.to_be_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode_vector(b: &[u8]) -> Option<(u64, Vec<f32>)> {
    let id = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let v = b[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Some((id, v))
}

impl Memories {
    /// Open the memory of `store`: load the indexes, repairing the vector
    /// index from the `vectors` tree when its dump is missing, stale or damaged.
    pub fn open(
        store: Arc<Store>,
        embedder: Box<dyn Embedder>,
        half_life_days: f64,
    ) -> Result<Memories, MemoryError> {
        let dir = index_dir(store.dir());
        let current = IndexState {
            generation: 0,
            next_slot: 0,
            model: embedder.id().to_string(),
            dim: embedder.dim(),
        };
        let state = read_state(&store)?.unwrap_or(current.clone());
        let mismatch =
            (state.model != current.model && state.next_slot > 0).then(|| state.model.clone());

        let mut bm25 = Bm25::new();
        let mut meta = HashMap::new();
        let mut slot_mem = HashMap::new();
        for r in store.scan::<Memory>([]) {
            let (_, m) = r?;
            bm25.insert(m.id, &m.search_text());
            if let Some(s) = m.slot {
                slot_mem.insert(s, m.id);
            }
            meta.insert(m.id, Meta::of(&m));
        }
        let mut inner = Inner {
            index: VectorIndex::new(state.dim, slot_mem.len()),
            bm25,
            meta,
            slot_mem,
            state: state.clone(),
            mismatch,
            dirty: false,
        };
        let me = Memories {
            store,
            embedder,
            dir,
            inner: RwLock::new(Inner {
                index: VectorIndex::new(state.dim, 0),
                bm25: Bm25::new(),
                meta: HashMap::new(),
                slot_mem: HashMap::new(),
                state: state.clone(),
                mismatch: None,
                dirty: false,
            }),
            half_life_days,
        };
        if inner.mismatch.is_none() {
            me.load_index(&mut inner)?;
        }
        *me.inner.write().unwrap() = inner;
        Ok(me)
    }

    fn load_index(&self, inner: &mut Inner) -> Result<(), MemoryError> {
        let st = &inner.state;
        let loaded = if self.store.is_encrypted() {
            Err("the store is encrypted: the index is kept in memory only".to_string())
        } else {
            VectorIndex::load(&self.dir, st.generation, &st.model, st.dim)
        };
        match loaded {
            Ok((ix, info)) => {
                inner.index = ix;
                // Catch up on slots written after the dump (a crash mid-indexing).
                let mut late = Vec::new();
                for kv in self.store.tree(Tree::Vectors).iter() {
                    let (k, v) = kv.map_err(|e| StoreError::Aborted(e.to_string()))?;
                    let slot = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                    if slot < info.covered {
                        continue;
                    }
                    if let Some((_, vec)) = decode_vector(&v)
                        && inner.slot_mem.contains_key(&slot)
                    {
                        late.push((slot, vec));
                    }
                }
                if !late.is_empty() {
                    tracing::info!("memory index: catching up {} vectors", late.len());
                    inner.index.insert_many(&late);
                    inner.dirty = true;
                }
                if self.tombstones(inner) > 1000.max(inner.index.points() / 5) {
                    self.rebuild_index(inner)?;
                }
            }
            Err(why) => {
                if inner.state.next_slot > 0 {
                    tracing::info!("memory index rebuilt from the vectors tree: {why}");
                }
                self.rebuild_index(inner)?;
            }
        }
        // Lay the graph out for search now rather than on the first query.
        inner.index.prepare();
        Ok(())
    }

    fn tombstones(&self, inner: &Inner) -> usize {
        inner.index.points().saturating_sub(inner.slot_mem.len())
    }

    /// Rebuild the vector index from the `vectors` tree (a new generation).
    fn rebuild_index(&self, inner: &mut Inner) -> Result<(), MemoryError> {
        let mut items = Vec::with_capacity(inner.slot_mem.len());
        for kv in self.store.tree(Tree::Vectors).iter() {
            let (k, v) = kv.map_err(|e| StoreError::Aborted(e.to_string()))?;
            let slot = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
            if !inner.slot_mem.contains_key(&slot) {
                continue;
            }
            if let Some((_, vec)) = decode_vector(&v)
                && vec.len() == inner.state.dim
            {
                items.push((slot, vec));
            }
        }
        let mut ix = VectorIndex::new(inner.state.dim, items.len());
        ix.insert_many(&items);
        inner.index = ix;
        inner.state.generation += 1;
        self.write_state(&inner.state)?;
        inner.dirty = true;
        self.save_inner(inner)?;
        Ok(())
    }

    fn write_state(&self, st: &IndexState) -> Result<(), MemoryError> {
        let bytes = serde_json::to_vec(st).expect("state serialises");
        self.store.write(|tx| {
            tx.put_raw(Tree::Index, keys::STATE, bytes.clone())?;
            Ok(())
        })?;
        Ok(())
    }

    fn save_inner(&self, inner: &mut Inner) -> Result<(), MemoryError> {
        if !inner.dirty || inner.mismatch.is_some() {
            return Ok(());
        }
        if inner.index.points() == 0 || self.store.is_encrypted() {
            // An encrypted store keeps its vectors sealed; the index dump would
            // be plaintext vectors, so it lives only in memory (rebuilt from the
            // sealed `vectors` tree at open). Nor can hnsw_rs write an empty
            // graph. Either way an old dump must not come back.
            let _ = std::fs::remove_file(index::sidecar(&self.dir));
            for ext in ["hnsw.graph", "hnsw.data"] {
                let _ = std::fs::remove_file(self.dir.join(format!("vectors.{ext}")));
            }
            inner.dirty = false;
            return Ok(());
        }
        inner
            .index
            .dump(
                &self.dir,
                inner.state.generation,
                &inner.state.model,
                inner.state.next_slot,
            )
            .map_err(|source| MemoryError::Io {
                path: self.dir.clone(),
                source,
            })?;
        inner.dirty = false;
        Ok(())
    }

    /// Persist the vector index if it changed.
    pub fn save(&self) -> Result<(), MemoryError> {
        let mut inner = self.inner.write().unwrap();
        self.save_inner(&mut inner)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn embedder(&self) -> &dyn Embedder {
        self.embedder.as_ref()
    }

    /// The model whose vectors are stored, when it is not the current one.
    pub fn model_mismatch(&self) -> Option<String> {
        self.inner.read().unwrap().mismatch.clone()
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap().meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn state(&self) -> IndexState {
        self.inner.read().unwrap().state.clone()
    }

    pub fn get(&self, id: u64) -> Result<Option<Memory>, MemoryError> {
        Ok(self.store.get::<Memory>(Memory::key(id))?)
    }

    /// Store new or changed memories with their embeddings, `batch` at a time,
    /// each batch one transaction (memories, vectors and the slot counter
    /// together). A memory whose text changed gets a new vector; its old one
    /// becomes a tombstone. User-edited memories are left as they are.
    pub fn upsert(
        &self,
        items: Vec<NewMemory>,
        progress: Option<Progress<'_>>,
    ) -> Result<usize, MemoryError> {
        if let Some(stored) = self.model_mismatch() {
            return Err(MemoryError::ModelChanged {
                stored,
                current: self.embedder.id().to_string(),
            });
        }
        let mut written = 0;
        let mut done = 0u64;
        for chunk in items.chunks(64) {
            if progress.is_some_and(|p| p.ctx.is_cancelled()) {
                return Err(MemoryError::Cancelled);
            }
            written += self.upsert_batch(chunk)?;
            done += chunk.len() as u64;
            if let Some(p) = progress {
                p.ctx.progress(
                    p.before + done,
                    Some(p.total.max(p.before + done)),
                    "memories",
                );
            }
        }
        Ok(written)
    }

    fn upsert_batch(&self, chunk: &[NewMemory]) -> Result<usize, MemoryError> {
        let now = now_ms();
        // Which need (re)writing.
        let mut todo: Vec<(Memory, bool)> = Vec::new(); // (memory, needs vector)
        for n in chunk {
            let old = self.get(n.id)?;
            let m = match old {
                Some(o) if o.edited || o.source_hash == n.source_hash => continue,
                Some(o) => Memory {
                    kind: n.kind,
                    title: n.title.clone(),
                    text: n.text.clone(),
                    contacts: n.contacts.clone(),
                    conversation: n.conversation,
                    start_ms: n.start_ms,
                    end_ms: n.end_ms,
                    provenance: n.provenance.clone(),
                    source_hash: n.source_hash,
                    updated_ms: now,
                    ..o
                },
                None => Memory {
                    id: n.id,
                    kind: n.kind,
                    title: n.title.clone(),
                    text: n.text.clone(),
                    contacts: n.contacts.clone(),
                    conversation: n.conversation,
                    start_ms: n.start_ms,
                    end_ms: n.end_ms,
                    provenance: n.provenance.clone(),
                    source_hash: n.source_hash,
                    created_ms: now,
                    updated_ms: now,
                    accessed_ms: 0,
                    access_count: 0,
                    pinned: false,
                    edited: false,
                    importance: n.importance,
                    slot: None,
                },
            };
            todo.push((m, true));
        }
        if todo.is_empty() {
            return Ok(0);
        }
        self.write_memories(todo)
    }

    /// Embed (where asked) and store memories; update the in-memory indexes.
    fn write_memories(&self, mut todo: Vec<(Memory, bool)>) -> Result<usize, MemoryError> {
        let texts: Vec<String> = todo
            .iter()
            .filter(|(_, e)| *e)
            .map(|(m, _)| m.search_text())
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut vectors = self.embedder.embed(&refs)?.into_iter();
        let mut inner = self.inner.write().unwrap();
        let mut state = inner.state.clone();
        let mut old_slots = Vec::new();
        let mut new_vecs = Vec::new();
        for (m, embed) in todo.iter_mut() {
            if !*embed {
                continue;
            }
            let v = vectors.next().expect("one vector per text");
            if let Some(old) = m.slot {
                old_slots.push(old);
            }
            let slot = state.next_slot;
            state.next_slot += 1;
            m.slot = Some(slot);
            new_vecs.push((slot, v));
        }
        let state_bytes = serde_json::to_vec(&state).expect("state serialises");
        self.store.write(|tx| {
            for (m, _) in &todo {
                tx.put(Memory::key(m.id), m)?;
            }
            for s in &old_slots {
                tx.remove(Tree::Vectors, Key::new().u64(*s))?;
            }
            for ((slot, v), (m, _)) in new_vecs.iter().zip(todo.iter().filter(|(_, e)| *e)) {
                tx.put_raw(Tree::Vectors, Key::new().u64(*slot), encode_vector(m.id, v))?;
            }
            tx.put_raw(Tree::Index, keys::STATE, state_bytes.clone())?;
            Ok(())
        })?;
        inner.state = state;
        for s in &old_slots {
            inner.slot_mem.remove(s);
        }
        inner.index.insert_many(&new_vecs);
        for (m, _) in &todo {
            if let Some(s) = m.slot {
                inner.slot_mem.insert(s, m.id);
            }
            inner.bm25.insert(m.id, &m.search_text());
            inner.meta.insert(m.id, Meta::of(m));
        }
        inner.dirty = true;
        Ok(todo.len())
    }

    /// Remove memories (and their vectors). With `forget`, their source
    /// messages are remembered as forgotten so training sets leave them out.
    pub fn remove(&self, ids: &[u64], forget: bool) -> Result<usize, MemoryError> {
        let mut gone = Vec::new();
        for &id in ids {
            if let Some(m) = self.get(id)? {
                gone.push(m);
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        self.store.write(|tx| {
            for m in &gone {
                tx.remove(Tree::Memories, Memory::key(m.id))?;
                if let Some(s) = m.slot {
                    tx.remove(Tree::Vectors, Key::new().u64(s))?;
                }
                if forget {
                    for p in &m.provenance {
                        if let Some(k) = p.message_key() {
                            tx.put_raw(Tree::Index, keys::forgotten(&k), Vec::new())?;
                        }
                    }
                }
            }
            Ok(())
        })?;
        let mut inner = self.inner.write().unwrap();
        for m in &gone {
            inner.bm25.remove(m.id);
            inner.meta.remove(&m.id);
            if let Some(s) = m.slot {
                inner.slot_mem.remove(&s);
            }
        }
        if self.tombstones(&inner) > 1000.max(inner.index.points() / 5) {
            self.rebuild_index(&mut inner)?;
        }
        inner.dirty = true;
        Ok(gone.len())
    }

    /// Forget one memory: it leaves search, the store and future training sets.
    pub fn forget(&self, id: u64) -> Result<Memory, MemoryError> {
        Ok(self.forget_marking(id)?.0)
    }

    /// [`Memories::forget`], also returning the adapters that went stale
    /// because they were trained on its source messages.
    pub fn forget_marking(&self, id: u64) -> Result<(Memory, Vec<String>), MemoryError> {
        let m = self.get(id)?.ok_or(MemoryError::NotFound(id))?;
        self.remove(&[id], true)?;
        self.save()?;
        let sources: HashSet<[u8; 16]> = m
            .provenance
            .iter()
            .filter_map(|p| p.message_key())
            .collect();
        let stale = crate::train::registry::stale_after_forgetting_memory(&self.store, &sources)?;
        Ok((m, stale))
    }

    pub fn set_pinned(&self, id: u64, pinned: bool) -> Result<Memory, MemoryError> {
        let mut m = self.get(id)?.ok_or(MemoryError::NotFound(id))?;
        m.pinned = pinned;
        m.updated_ms = now_ms();
        self.store.write(|tx| {
            tx.put(Memory::key(id), &m)?;
            Ok(())
        })?;
        self.inner.write().unwrap().meta.insert(id, Meta::of(&m));
        Ok(m)
    }

    /// Replace a memory's text (a user edit): re-embedded, and from now on
    /// never overwritten by re-deriving it from its sources.
    pub fn edit(
        &self,
        id: u64,
        title: Option<String>,
        text: String,
    ) -> Result<Memory, MemoryError> {
        if let Some(stored) = self.model_mismatch() {
            return Err(MemoryError::ModelChanged {
                stored,
                current: self.embedder.id().to_string(),
            });
        }
        let mut m = self.get(id)?.ok_or(MemoryError::NotFound(id))?;
        if let Some(t) = title {
            m.title = t;
        }
        m.text = text;
        m.edited = true;
        m.updated_ms = now_ms();
        self.write_memories(vec![(m.clone(), true)])?;
        self.save()?;
        Ok(self.get(id)?.unwrap_or(m))
    }

    /// Count retrievals (importance grows with use).
    pub fn touch(&self, ids: &[u64]) -> Result<(), MemoryError> {
        let now = now_ms();
        let mut changed = Vec::new();
        for &id in ids {
            if let Some(mut m) = self.get(id)? {
                m.access_count = m.access_count.saturating_add(1);
                m.accessed_ms = now;
                changed.push(m);
            }
        }
        self.store.write(|tx| {
            for m in &changed {
                tx.put(Memory::key(m.id), m)?;
            }
            Ok(())
        })?;
        let mut inner = self.inner.write().unwrap();
        for m in &changed {
            inner.meta.insert(m.id, Meta::of(m));
        }
        Ok(())
    }

    fn passes(meta: &Meta, q: &Query) -> bool {
        (q.kinds.is_empty() || q.kinds.contains(&meta.kind))
            && q.contact.is_none_or(|c| meta.contacts.contains(&c))
            && q.since_ms.is_none_or(|s| meta.end_ms >= s)
            && q.until_ms.is_none_or(|u| meta.start_ms <= u)
    }

    /// Hybrid search: HNSW over embeddings and BM25 over text, fused by
    /// reciprocal rank, then re-ranked by importance (use, pins, edits, decay
    /// since twin last used it) and by how recent the memory's events are;
    /// filters apply inside both searches, before the cut.
    pub fn search(&self, q: &Query) -> Result<Vec<Hit>, MemoryError> {
        let k = q.k.max(1);
        let depth = (k * 5).max(50);
        let inner = self.inner.read().unwrap();
        let vector_hits: Vec<(u64, f32)> = if inner.mismatch.is_none() && !q.text.trim().is_empty()
        {
            let qv = self.embedder.embed(&[q.text.as_str()])?.remove(0);
            let keep = |slot: u64| {
                inner
                    .slot_mem
                    .get(&slot)
                    .and_then(|id| inner.meta.get(id))
                    .is_some_and(|m| Self::passes(m, q))
            };
            // A filter makes the graph search walk on until it has enough
            // kept points: give none when every slot is live and wanted.
            let unfiltered = q.kinds.is_empty()
                && q.contact.is_none()
                && q.since_ms.is_none()
                && q.until_ms.is_none()
                && self.tombstones(&inner) == 0;
            let keep: Option<&dyn Fn(u64) -> bool> = if unfiltered { None } else { Some(&keep) };
            inner
                .index
                .search(&qv, depth, depth.max(100), keep)
                .into_iter()
                .filter_map(|(slot, cos)| inner.slot_mem.get(&slot).map(|id| (*id, cos)))
                .collect()
        } else {
            Vec::new()
        };
        let keep_id = |id: u64| inner.meta.get(&id).is_some_and(|m| Self::passes(m, q));
        let text_hits = inner.bm25.search(&q.text, depth, &keep_id);
        let mut fused: HashMap<u64, Fused> = HashMap::new();
        for (rank, (id, cos)) in vector_hits.iter().enumerate() {
            let e = fused.entry(*id).or_default();
            e.rrf += 1.0 / (RRF_K + rank as f32 + 1.0);
            e.cosine = Some(*cos);
            e.vector_rank = Some(rank + 1);
        }
        for (rank, (id, _)) in text_hits.iter().enumerate() {
            let e = fused.entry(*id).or_default();
            e.rrf += 1.0 / (RRF_K + rank as f32 + 1.0);
            e.text_rank = Some(rank + 1);
        }
        let now = now_ms();
        let mut ranked: Vec<(u64, f32, Fused)> = fused
            .into_iter()
            .map(|(id, f)| {
                let (imp, recent) = inner
                    .meta
                    .get(&id)
                    .map(|m| {
                        (
                            lifecycle::importance(&m.life(), now, self.half_life_days),
                            lifecycle::recency(m.end_ms, now, self.half_life_days),
                        )
                    })
                    .unwrap_or((0.0, 0.0));
                (id, f.rrf * (0.6 + 0.3 * imp + 0.1 * recent), f)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        drop(inner);
        let mut hits = Vec::with_capacity(ranked.len());
        for (id, score, f) in ranked {
            if let Some(memory) = self.get(id)? {
                hits.push(Hit {
                    id,
                    score,
                    cosine: f.cosine,
                    vector_rank: f.vector_rank,
                    text_rank: f.text_rank,
                    memory,
                });
            }
        }
        Ok(hits)
    }

    /// Memories in key order, filtered (for lists and the Memory pane).
    pub fn list(&self, q: &Query, limit: usize) -> Result<Vec<Memory>, MemoryError> {
        let inner = self.inner.read().unwrap();
        let mut ids: Vec<(i64, u64)> = inner
            .meta
            .iter()
            .filter(|(_, m)| Self::passes(m, q))
            .map(|(id, m)| (m.end_ms, *id))
            .collect();
        drop(inner);
        ids.sort_by(|a, b| b.cmp(a));
        ids.truncate(limit);
        ids.into_iter()
            .filter_map(|(_, id)| self.get(id).transpose())
            .collect::<Result<_, _>>()
    }

    /// Current importance of a memory (0..=1), with decay.
    pub fn importance_of(&self, m: &Memory) -> f32 {
        lifecycle::importance(&Meta::of(m).life(), now_ms(), self.half_life_days)
    }

    /// Re-embed every memory with the current model and rebuild the index: what
    /// `twin index rebuild` does after a model change. With the same model it
    /// only rebuilds the index from the stored vectors.
    pub fn rebuild(&self, reembed: bool, ctx: Option<&JobCtx>) -> Result<usize, MemoryError> {
        let same = self.model_mismatch().is_none()
            && self.inner.read().unwrap().state.model == self.embedder.id();
        if same && !reembed {
            let mut inner = self.inner.write().unwrap();
            self.rebuild_index(&mut inner)?;
            return Ok(inner.slot_mem.len());
        }
        // Fresh index state for the current model; vectors are rewritten.
        let all: Vec<Memory> = self
            .store
            .scan::<Memory>([])
            .map(|r| r.map(|(_, m)| m))
            .collect::<Result<_, _>>()?;
        let old_generation = self.inner.read().unwrap().state.generation;
        {
            let mut inner = self.inner.write().unwrap();
            inner.state = IndexState {
                generation: old_generation + 1,
                next_slot: 0,
                model: self.embedder.id().to_string(),
                dim: self.embedder.dim(),
            };
            inner.mismatch = None;
            inner.index = VectorIndex::new(self.embedder.dim(), all.len());
            inner.slot_mem.clear();
        }
        // Drop every stored vector in batches, then write new ones.
        let keys: Vec<sled::IVec> = self
            .store
            .tree(Tree::Vectors)
            .iter()
            .map(|r| r.map(|(k, _)| k))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Aborted(e.to_string()))?;
        for chunk in keys.chunks(1000) {
            self.store.write(|tx| {
                for k in chunk {
                    tx.remove(Tree::Vectors, k)?;
                }
                Ok(())
            })?;
        }
        let total = all.len() as u64;
        let mut done = 0u64;
        for chunk in all.chunks(64) {
            if ctx.is_some_and(|c| c.is_cancelled()) {
                return Err(MemoryError::Cancelled);
            }
            let todo = chunk
                .iter()
                .cloned()
                .map(|mut m| {
                    m.slot = None;
                    (m, true)
                })
                .collect();
            self.write_memories(todo)?;
            done += chunk.len() as u64;
            if let Some(c) = ctx {
                c.progress(done, Some(total), "memories");
            }
        }
        self.save()?;
        Ok(all.len())
    }

    /// Message keys whose memories the user forgot (training sets skip them).
    pub fn forgotten_messages(store: &Store) -> HashSet<[u8; 16]> {
        store
            .tree(Tree::Index)
            .scan_prefix(keys::FORGOTTEN_PREFIX)
            .map(|r| r.map(|(k, _)| k))
            .filter_map(Result::ok)
            .filter_map(|k| k.get(2..18).and_then(|b| b.try_into().ok()))
            .collect()
    }

    /// The vector stored for a memory (for compaction and topics).
    pub fn vector_of(&self, m: &Memory) -> Result<Option<Vec<f32>>, MemoryError> {
        let Some(slot) = m.slot else { return Ok(None) };
        let v = self
            .store
            .tree(Tree::Vectors)
            .get(Key::new().u64(slot))
            .map_err(|e| StoreError::Aborted(e.to_string()))?;
        Ok(v.and_then(|b| decode_vector(&b)).map(|(_, v)| v))
    }

    /// Refresh the in-memory ranking data after a direct write of `m`.
    pub(crate) fn reload_meta(&self, m: &Memory) {
        let mut inner = self.inner.write().unwrap();
        inner.bm25.insert(m.id, &m.search_text());
        inner.meta.insert(m.id, Meta::of(m));
    }

    /// Nearest memories to a vector (ids with cosine), excluding `skip`.
    pub fn nearest(&self, v: &[f32], k: usize, skip: u64) -> Vec<(u64, f32)> {
        let inner = self.inner.read().unwrap();
        if inner.mismatch.is_some() {
            return Vec::new();
        }
        let live = |slot: u64| inner.slot_mem.contains_key(&slot);
        let keep: Option<&dyn Fn(u64) -> bool> = if self.tombstones(&inner) == 0 {
            None
        } else {
            Some(&live)
        };
        // One more than asked, in case `skip` itself is among them.
        inner
            .index
            .search(v, k + 1, 64.max(k + 1), keep)
            .into_iter()
            .filter_map(|(s, c)| inner.slot_mem.get(&s).map(|id| (*id, c)))
            .filter(|(id, _)| *id != skip)
            .take(k)
            .collect()
    }
}

impl Drop for Memories {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.write()
            && let Err(e) = self.save_inner(&mut inner)
        {
            tracing::warn!("memory index not saved: {e}");
        }
    }
}

/// The embedder twin uses: the configured or default GGUF through llama.cpp;
/// `None` when no embedding model is installed (callers fall back to
/// [`embed::HashEmbedder`] and say so).
pub fn default_embedder(
    configured: &str,
    models_dir: &Path,
    threads: usize,
) -> Result<Option<Box<dyn Embedder>>, MemoryError> {
    let path = if configured.trim().is_empty() {
        match convert::default_model(models_dir) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(MemoryError::Embed(EmbedError::Load {
                    path: models_dir.join(convert::MINILM_DIR),
                    detail: e.to_string(),
                }));
            }
        }
    } else {
        let p = PathBuf::from(configured);
        if p.is_absolute() {
            p
        } else {
            models_dir.join(p)
        }
    };
    Ok(Some(Box::new(embed::LlamaEmbedder::load(&path, threads)?)))
}

/// A memory's id as people and citations write it: 16 hex digits (any unique
/// prefix of at least 6 is accepted back).
pub fn show_id(id: u64) -> String {
    format!("{id:016x}")
}

impl Memories {
    /// The memory named by `s`: its full hex id or a unique prefix.
    pub fn resolve(&self, s: &str) -> Result<u64, MemoryError> {
        let s = s.trim().trim_start_matches("m:").to_lowercase();
        let bad = || MemoryError::Unknown(s.clone());
        if s.len() < 6 || s.len() > 16 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        if s.len() == 16 {
            let id = u64::from_str_radix(&s, 16).map_err(|_| bad())?;
            return self.get(id)?.map(|_| id).ok_or(MemoryError::NotFound(id));
        }
        let even = &s[..s.len() / 2 * 2];
        let prefix = unhex(even).ok_or_else(bad)?;
        let mut found = None;
        for k in self
            .store
            .tree(Tree::Memories)
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, _)| k))
        {
            let k = k.map_err(|e| StoreError::Aborted(e.to_string()))?;
            let id = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
            if show_id(id).starts_with(&s) {
                if found.is_some() {
                    return Err(MemoryError::Ambiguous(s));
                }
                found = Some(id);
            }
        }
        found.ok_or_else(bad)
    }
}

/// Open the memory of `store` with the configured embedder; without an
/// embedding model installed a word-hash embedder stands in and `notes` says so.
pub fn open_configured(
    store: Arc<Store>,
    config: &crate::config::Config,
    models_dir: &Path,
) -> Result<(Memories, Vec<String>), MemoryError> {
    let threads = config.jobs.threads.max(0) as usize;
    let mut notes = Vec::new();
    let embedder: Box<dyn Embedder> = match default_embedder(
        &config.memory.embedding_model,
        models_dir,
        threads,
    )? {
        Some(e) => e,
        None => {
            notes.push(format!(
                    "no embedding model in {}: memory search matches words only until you run `bash scripts/fetch-models.sh` and then `twin index rebuild`",
                    models_dir.display()
                ));
            Box::new(embed::HashEmbedder::new(384))
        }
    };
    let mem = Memories::open(store, embedder, config.memory.half_life_days)?;
    if let Some(old) = mem.model_mismatch() {
        notes.push(
            MemoryError::ModelChanged {
                stored: old,
                current: mem.embedder().id().to_string(),
            }
            .to_string(),
        );
    }
    Ok((mem, notes))
}

/// A memory is offered to the chat model only when it is this close in meaning
/// (cosine) — or matches the words and is at least loosely close. Below that the
/// twin is told it remembers nothing relevant, and says it does not know.
const RECALL_MIN_COSINE: f32 = 0.35;
const RECALL_MIN_COSINE_WITH_WORDS: f32 = 0.2;
/// Memories handed to the prompt per turn, and characters of each.
const RECALL_K: usize = 5;
const RECALL_CHARS: usize = 700;

impl Memories {
    /// What the chat recalls for a question: relevant memories, best first
    /// (each recall counts toward the memory's importance).
    pub fn recall(&self, question: &str) -> Result<Vec<Hit>, MemoryError> {
        let hits = self.search(&Query {
            text: question.to_string(),
            k: RECALL_K,
            ..Query::default()
        })?;
        let keep: Vec<Hit> = hits
            .into_iter()
            .filter(|h| {
                let cos = h.cosine.unwrap_or(0.0);
                cos >= RECALL_MIN_COSINE
                    || (h.text_rank.is_some() && cos >= RECALL_MIN_COSINE_WITH_WORDS)
            })
            .collect();
        let ids: Vec<u64> = keep.iter().map(|h| h.id).collect();
        self.touch(&ids)?;
        Ok(keep)
    }
}

impl crate::llm::chat::Retriever for Memories {
    fn retrieve(
        &self,
        question: &str,
        _history: &[crate::llm::prompt::Message],
    ) -> anyhow::Result<Vec<crate::llm::persona::RetrievedMemory>> {
        Ok(self
            .recall(question)?
            .into_iter()
            .map(|h| {
                let m = h.memory;
                let mut text: String = m.text.chars().take(RECALL_CHARS).collect();
                if m.text.chars().count() > RECALL_CHARS {
                    text.push('…');
                }
                crate::llm::persona::RetrievedMemory {
                    // Eight hex digits: short enough for a small model to copy
                    // into a citation, and `resolve` takes any unique prefix.
                    id: show_id(m.id)[..8].to_string(),
                    kind: m.kind.name().to_string(),
                    text,
                    when: (m.end_ms > 0).then_some(m.end_ms),
                    source: m.title,
                }
            })
            .collect())
    }
}

/// Memory's part of forgetting a person (`twin forget contact`): every memory
/// drawn from any of their messages goes, with its vector (the index treats
/// those slots as tombstones from then on). That includes memories of group
/// chats they wrote in, whose text quotes their lines: forgetting a person
/// takes their words out of memory at once, and the next `twin index`
/// re-derives those group memories from what is left of the conversation.
pub struct ForgetCascade;

impl ForgetCascade {
    fn doomed(store: &Store, t: &crate::privacy::forget::Target) -> anyhow::Result<Vec<Memory>> {
        let mut out = Vec::new();
        for r in store.scan::<Memory>([]) {
            let (_, m) = r?;
            let keys: Vec<[u8; 16]> = m
                .provenance
                .iter()
                .filter_map(|p| p.message_key())
                .collect();
            let drawn_from_theirs = keys.iter().any(|k| t.messages.contains(k));
            let their_conversation = m.conversation.is_some_and(|c| t.conversations.contains(&c));
            if drawn_from_theirs || their_conversation {
                out.push(m);
            }
        }
        Ok(out)
    }
}

impl crate::privacy::forget::Cascade for ForgetCascade {
    fn name(&self) -> &'static str {
        "memories"
    }

    fn plan(
        &self,
        store: &Store,
        t: &crate::privacy::forget::Target,
    ) -> anyhow::Result<crate::privacy::forget::Part> {
        let doomed = Self::doomed(store, t)?;
        let vectors = doomed.iter().filter(|m| m.slot.is_some()).count() as u64;
        Ok(std::collections::BTreeMap::from([
            ("memories".to_string(), doomed.len() as u64),
            ("vectors".to_string(), vectors),
        ])
        .into())
    }

    fn apply(
        &self,
        store: &Store,
        t: &crate::privacy::forget::Target,
    ) -> anyhow::Result<crate::privacy::forget::Part> {
        let doomed = Self::doomed(store, t)?;
        let mut vectors = 0u64;
        for chunk in doomed.chunks(256) {
            vectors += store.write(|tx| {
                let mut n = 0u64;
                for m in chunk {
                    tx.remove(Tree::Memories, Memory::key(m.id))?;
                    if let Some(s) = m.slot
                        && tx.remove(Tree::Vectors, Key::new().u64(s))?
                    {
                        n += 1;
                    }
                }
                Ok(n)
            })?;
        }
        Ok(std::collections::BTreeMap::from([
            ("memories".to_string(), doomed.len() as u64),
            ("vectors".to_string(), vectors),
        ])
        .into())
    }
}
