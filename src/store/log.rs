//! The messages log: where the `messages` and `timeline` trees live instead
//! of sled.
//!
//! An import adds messages by the million; one B-tree insert per message and
//! per timeline key (leaf splits, node copies, allocations) was most of its
//! cost. Their records are in an append-only file instead, in import order,
//! found through in-memory indexes (message key -> position; the timeline,
//! small values, kept in key order with its values):
//!
//! - The file is `messages-<generation>.log` in the store's folder: records
//!   `[u32 body length][u8 op][u8 tree][u32 key length][key][value]` (op 1
//!   puts a value, op 0 removes the key), with the key and value as the store
//!   keeps them (hidden and sealed when the store is encrypted).
//! - The log's committed length and generation live in sled's `meta` tree and
//!   move in the same transaction as the rest of a write ([`super::Store`]):
//!   bytes past the committed length are a write that never committed (twin
//!   was killed), cut off when the store opens.
//! - The index is kept in `messages.idx` on close (sealed when the store is),
//!   with the generation and log length it covers and a checksum: a stale
//!   index is brought up to date from the log, a torn or foreign one is
//!   rebuilt from the whole log, never trusted blindly.
//! - Rewriting a message with the same bytes adds nothing (the index keeps a
//!   hash of each value); removed and replaced records are dead space until
//!   [`MessageLog::compact`] writes the live ones to the next generation and
//!   wipes the old file (`twin forget` does, so forgotten text leaves the disk).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use xxhash_rust::xxh3::xxh3_64;

use super::crypt::Crypt;
use super::{StoreError, Tree};

/// `meta` keys: the committed length and the generation of the log.
pub(crate) const END_KEY: &[u8] = b"log/end";
pub(crate) const GEN_KEY: &[u8] = b"log/gen";
const INDEX_FILE: &str = "messages.idx";
/// Version 2: fixed-size message entries, the timeline without hashes (its
/// values are kept), lengths as u32. A version-1 file is not recognised and
/// the index is rebuilt from the log once.
const INDEX_MAGIC: &[u8; 8] = b"twinidx2";
const OP_PUT: u8 = 1;
const OP_REMOVE: u8 = 0;
/// Record header: body length, op, tree, key length.
const HEAD: usize = 4 + 1 + 1 + 4;

/// The trees kept in the log.
pub(crate) fn in_log(tree: Tree) -> bool {
    matches!(tree, Tree::Messages | Tree::Timeline)
}

fn tree_of(b: u8) -> Option<Tree> {
    Tree::ALL.into_iter().find(|t| *t as u8 == b && in_log(*t))
}

pub(crate) fn log_name(generation: u64) -> String {
    format!("messages-{generation:016x}.log")
}

/// Where a live record is: its offset in the log (header included), its
/// length, and a hash of its value as the store reads it (opened).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Loc {
    pub off: u64,
    pub len: u32,
    pub hash: u64,
}

/// A hasher for keys that are already hashes or ids (16-byte message keys,
/// contact and conversation ids): a few multiply-rotates instead of SipHash,
/// as hashing them again is wasted work.
#[derive(Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Bytes of a timeline key as ingest writes them: "t", conversation (8),
/// time (8), message key (16).
const TIMELINE_KEY: usize = 1 + 8 + 8 + 16;

/// Bytes kept inline when they are exactly `N` long (the usual shape), so a
/// million timeline entries are not a million allocations; any other length
/// boxed. Compares as its bytes (what `Borrow<[u8]>` lookups need).
#[derive(Clone)]
enum Small<const N: usize> {
    Inline([u8; N]),
    Boxed(Box<[u8]>),
}

impl<const N: usize> Small<N> {
    fn new(bytes: &[u8]) -> Small<N> {
        match <[u8; N]>::try_from(bytes) {
            Ok(b) => Small::Inline(b),
            Err(_) => Small::Boxed(bytes.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Small::Inline(b) => b,
            Small::Boxed(b) => b,
        }
    }
}

impl<const N: usize> std::borrow::Borrow<[u8]> for Small<N> {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> PartialEq for Small<N> {
    fn eq(&self, other: &Small<N>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for Small<N> {}

impl<const N: usize> PartialOrd for Small<N> {
    fn partial_cmp(&self, other: &Small<N>) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Ord for Small<N> {
    fn cmp(&self, other: &Small<N>) -> std::cmp::Ordering {
        match (self, other) {
            (Small::Inline(a), Small::Inline(b)) => cmp_inline(a, b),
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

/// Byte order of two arrays of one length, eight bytes at a time as
/// big-endian words (the same order): a timeline insert compares a key at
/// every level of the tree, and a call to `memcmp` each time was most of it.
fn cmp_inline<const N: usize>(a: &[u8; N], b: &[u8; N]) -> std::cmp::Ordering {
    let (mut a, mut b) = (&a[..], &b[..]);
    while let (Some((x, ra)), Some((y, rb))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
        (a, b) = (ra, rb);
    }
    a.cmp(b)
}

/// A timeline key in memory: the usual 33 bytes inline.
type TKey = Small<TIMELINE_KEY>;
/// A timeline value in memory: the usual 8 bytes (the author) inline.
type TValue = Small<8>;

/// A quick hasher for keys of any shape (XXH3 of the bytes written), for the
/// short-lived sets of one write.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A timeline entry: where its record is, and its (opened) value.
type TimelineEntry = (Loc, TValue);

/// A live record while compacting: tree, key, where, timeline value.
type Live = (Tree, Vec<u8>, Loc, Option<Vec<u8>>);

/// Key (as the store's callers know it, not hidden) -> live record.
#[derive(Default)]
pub(crate) struct Index {
    /// `messages`: 16-byte content hashes, and any other key.
    fixed: HashMap<[u8; 16], Loc, BuildHasherDefault<KeyHasher>>,
    other: BTreeMap<Vec<u8>, Loc>,
    /// `timeline`, in key order, with each (opened) value.
    timeline: BTreeMap<TKey, TimelineEntry>,
    /// Bytes of records that are no longer live.
    dead: u64,
}

impl Index {
    pub fn get(&self, tree: Tree, key: &[u8]) -> Option<Loc> {
        if tree == Tree::Timeline {
            return self.timeline.get(key).map(|(l, _)| *l);
        }
        match <[u8; 16]>::try_from(key) {
            Ok(k) => self.fixed.get(&k).copied(),
            Err(_) => self.other.get(key).copied(),
        }
    }

    /// A timeline value.
    pub fn value(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.timeline.get(key).map(|(_, v)| v.as_slice().to_vec())
    }

    /// `value` is kept for the timeline only.
    fn insert(&mut self, tree: Tree, key: &[u8], loc: Loc, value: Option<&[u8]>) {
        let old = if tree == Tree::Timeline {
            let v = TValue::new(value.unwrap_or_default());
            self.timeline
                .insert(TKey::new(key), (loc, v))
                .map(|(l, _)| l)
        } else {
            match <[u8; 16]>::try_from(key) {
                Ok(k) => self.fixed.insert(k, loc),
                Err(_) => self.other.insert(key.to_vec(), loc),
            }
        };
        if let Some(old) = old {
            self.dead += old.len as u64;
        }
    }

    fn remove(&mut self, tree: Tree, key: &[u8], tombstone: u64) {
        let old = if tree == Tree::Timeline {
            self.timeline.remove(key).map(|(l, _)| l)
        } else {
            match <[u8; 16]>::try_from(key) {
                Ok(k) => self.fixed.remove(&k),
                Err(_) => self.other.remove(key),
            }
        };
        self.dead += tombstone + old.map_or(0, |l| l.len as u64);
    }

    pub fn len(&self, tree: Tree) -> usize {
        if tree == Tree::Timeline {
            return self.timeline.len();
        }
        self.fixed.len() + self.other.len()
    }

    /// Message keys starting with `prefix`, sorted.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self
            .fixed
            .keys()
            .filter(|k| k.starts_with(prefix))
            .map(|k| k.to_vec())
            .chain(self.other.keys().filter(|k| k.starts_with(prefix)).cloned())
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Timeline keys and values starting with `prefix`, in key order.
    pub fn timeline_with_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        self.for_each_timeline(prefix, |k, v| out.push((k.to_vec(), v.to_vec())));
        out
    }

    /// Calls `f` with each timeline key and value starting with `prefix`,
    /// in key order, without copying them.
    pub fn for_each_timeline(&self, prefix: &[u8], mut f: impl FnMut(&[u8], &[u8])) {
        for (k, (_, v)) in self
            .timeline
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.as_slice().starts_with(prefix))
        {
            f(k.as_slice(), v.as_slice());
        }
    }

    /// Every live record: (tree, key, where, timeline value).
    fn entries(&self) -> impl Iterator<Item = (Tree, &[u8], &Loc, Option<&[u8]>)> {
        self.fixed
            .iter()
            .map(|(k, l)| (Tree::Messages, k.as_slice(), l, None))
            .chain(
                self.other
                    .iter()
                    .map(|(k, l)| (Tree::Messages, k.as_slice(), l, None)),
            )
            .chain(
                self.timeline
                    .iter()
                    .map(|(k, (l, v))| (Tree::Timeline, k.as_slice(), l, Some(v.as_slice()))),
            )
    }
}

/// One record of a [`LogBatch`]: its tree, offset in the batch and length;
/// for a put the hash of its (opened) value; and where its key and value as
/// callers know them are in [`LogBatch::side`] when they are not the bytes
/// written (an encrypted store, a removal). No allocation per record: an
/// import builds a million of them.
#[derive(Clone)]
struct BatchEntry {
    tree: Tree,
    off: u64,
    len: u32,
    /// `None` for a removal.
    hash: Option<u64>,
    /// Key start, key end (= value start), value end in `side`.
    side: Option<(u32, u32, u32)>,
}

/// Records to append, built before the write that commits them.
#[derive(Default, Clone)]
pub(crate) struct LogBatch {
    buf: Vec<u8>,
    /// Plain keys (and timeline values) of records written sealed or removed.
    side: Vec<u8>,
    entries: Vec<BatchEntry>,
}

impl LogBatch {
    /// `key` and `plain` (the value) as callers know them; `stored_key` and
    /// `stored_value` as written.
    pub fn put(
        &mut self,
        tree: Tree,
        key: impl AsRef<[u8]>,
        stored_key: &[u8],
        stored_value: &[u8],
        plain: &[u8],
    ) {
        let off = self.buf.len() as u64;
        let len = self.record(OP_PUT, tree, stored_key, stored_value);
        let kept: &[u8] = if tree == Tree::Timeline { plain } else { &[] };
        let side = self.side_of(key.as_ref(), kept);
        self.entries.push(BatchEntry {
            tree,
            off,
            len,
            hash: Some(value_hash(plain)),
            side: Some(side),
        });
    }

    /// [`Self::put`] for a store that is not encrypted: the key and value
    /// are stored as they are.
    pub fn put_plain(&mut self, tree: Tree, key: &[u8], value: &[u8]) {
        let off = self.buf.len() as u64;
        let len = self.record(OP_PUT, tree, key, value);
        self.entries.push(BatchEntry {
            tree,
            off,
            len,
            hash: Some(value_hash(value)),
            side: None,
        });
    }

    pub fn remove(&mut self, tree: Tree, key: impl AsRef<[u8]>, stored_key: &[u8]) {
        let off = self.buf.len() as u64;
        let len = self.record(OP_REMOVE, tree, stored_key, &[]);
        let side = self.side_of(key.as_ref(), &[]);
        self.entries.push(BatchEntry {
            tree,
            off,
            len,
            hash: None,
            side: Some(side),
        });
    }

    fn side_of(&mut self, key: &[u8], value: &[u8]) -> (u32, u32, u32) {
        let a = self.side.len() as u32;
        self.side.extend_from_slice(key);
        let b = self.side.len() as u32;
        self.side.extend_from_slice(value);
        (a, b, self.side.len() as u32)
    }

    /// An entry's key and (timeline) value as callers know them.
    fn key_value(&self, e: &BatchEntry) -> (&[u8], Option<&[u8]>) {
        let (key, value) = match e.side {
            Some((a, b, c)) => (
                &self.side[a as usize..b as usize],
                &self.side[b as usize..c as usize],
            ),
            None => {
                let rec = &self.buf[e.off as usize..e.off as usize + e.len as usize];
                let klen = u32::from_le_bytes(rec[6..10].try_into().unwrap_or_default()) as usize;
                (&rec[HEAD..HEAD + klen], &rec[HEAD + klen..])
            }
        };
        (key, (e.tree == Tree::Timeline).then_some(value))
    }

    fn record(&mut self, op: u8, tree: Tree, key: &[u8], value: &[u8]) -> u32 {
        let body = 1 + 1 + 4 + key.len() + value.len();
        self.buf.extend_from_slice(&(body as u32).to_le_bytes());
        self.buf.push(op);
        self.buf.push(tree as u8);
        self.buf
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        (4 + body) as u32
    }

    /// Room for `records` records of `bytes` key and value bytes in all.
    pub fn reserve(&mut self, bytes: usize, records: usize) {
        self.buf.reserve(bytes + records * HEAD);
        self.entries.reserve(records);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.buf.len() as u64
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (a, b) = r.split_at_checked(n)?;
    *r = b;
    Some(a)
}

fn take_u64(r: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(r, 8)?.try_into().ok()?))
}

fn take_u32(r: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(r, 4)?.try_into().ok()?))
}

/// Offset and length of an index entry (the hash follows or is implied).
fn take_loc(r: &mut &[u8]) -> Option<Loc> {
    let off = take_u64(r)?;
    let len = take_u32(r)?;
    Some(Loc { off, len, hash: 0 })
}

/// Writes through to `inner`, hashing what passes (the index file's checksum
/// while it streams out).
struct Hashing<W> {
    inner: W,
    hash: xxhash_rust::xxh3::Xxh3,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hash.update(&bytes[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The hash the index keeps of a value as the store reads it.
pub(crate) fn value_hash(plain: &[u8]) -> u64 {
    xxh3_64(plain)
}

struct State {
    file: File,
    generation: u64,
    /// Committed length.
    end: u64,
    /// Loaded on first use (it may need the store's key).
    index: Option<Index>,
    /// Changes to the index so far, and how many of them the saved index
    /// file holds: it needs saving while they differ.
    changes: u64,
    saved: u64,
}

/// The open log of one store.
pub(crate) struct MessageLog {
    dir: PathBuf,
    state: RwLock<State>,
    /// Held by a write from before it appends until its index update: one
    /// writer at a time, so appends never overlap.
    writer: Mutex<()>,
    /// Held while the index file is written: one save at a time.
    saving: Mutex<()>,
}

fn corrupt(dir: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: dir.to_path_buf(),
        detail: detail.into(),
    }
}

fn open_file(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Overwrite a file with zeros and remove it (what `twin forget` and an
/// encryption leave behind must not be readable from the old file).
fn wipe(path: &Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len();
    let zeros = vec![0u8; 1 << 16];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    f.sync_all()?;
    std::fs::remove_file(path)
}

impl MessageLog {
    /// Open the log of the store in `dir` at its committed `generation` and
    /// length: what lies past `end` never committed and is cut off; files of
    /// other generations (an interrupted compaction) are wiped.
    pub fn open(dir: &Path, generation: u64, end: u64) -> Result<MessageLog, StoreError> {
        let path = dir.join(log_name(generation));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let file = open_file(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < end {
            return Err(corrupt(
                dir,
                format!(
                    "{} is shorter ({len} bytes) than the store says ({end})",
                    path.display()
                ),
            ));
        }
        if len > end {
            tracing::info!(
                "cutting {} uncommitted bytes off {}",
                len - end,
                path.display()
            );
            file.set_len(end).map_err(io)?;
        }
        let current = log_name(generation);
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("messages-") && name.ends_with(".log") && name != current {
                    let p = e.path();
                    wipe(&p).map_err(|source| StoreError::Io { path: p, source })?;
                }
            }
        }
        Ok(MessageLog {
            dir: dir.to_path_buf(),
            state: RwLock::new(State {
                file,
                generation,
                end,
                index: None,
                changes: 0,
                saved: 0,
            }),
            writer: Mutex::new(()),
            saving: Mutex::new(()),
        })
    }

    pub fn generation(&self) -> u64 {
        self.read_state().generation
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer's turn: hold it across append, commit and [`Self::publish`].
    pub fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the index, loading it first if needed.
    pub fn with_index<R>(
        &self,
        crypt: Option<&Crypt>,
        f: impl FnOnce(&Index) -> R,
    ) -> Result<R, StoreError> {
        {
            let st = self.read_state();
            if let Some(ix) = &st.index {
                return Ok(f(ix));
            }
        }
        let mut st = self.write_state();
        if st.index.is_none() {
            let ix = self.load_index(&st, crypt)?;
            st.index = Some(ix);
        }
        Ok(f(st.index.as_ref().expect("just loaded")))
    }

    /// The index from `messages.idx` when it matches this log (brought up to
    /// date from the records after it), else rebuilt from the whole log.
    fn load_index(&self, st: &State, crypt: Option<&Crypt>) -> Result<Index, StoreError> {
        let (mut ix, from) = match self.read_index_file(st, crypt) {
            Some((ix, covered)) if covered <= st.end => (ix, covered),
            _ => (Index::default(), 0),
        };
        self.replay(st, crypt, &mut ix, from)?;
        Ok(ix)
    }

    fn read_index_file(&self, st: &State, crypt: Option<&Crypt>) -> Option<(Index, u64)> {
        let bytes = std::fs::read(self.dir.join(INDEX_FILE)).ok()?;
        let bytes = match crypt {
            Some(c) => {
                let body = bytes.strip_prefix(super::crypt::FILE_MAGIC.as_slice())?;
                c.open(super::crypt::FILE_MAGIC, body, INDEX_FILE).ok()?
            }
            None => bytes,
        };
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxh3_64(body).to_le_bytes() != sum {
            tracing::warn!("{INDEX_FILE} is damaged: rebuilding it from the log");
            return None;
        }
        let mut r = body.strip_prefix(INDEX_MAGIC.as_slice())?;
        let generation = take_u64(&mut r)?;
        let covered = take_u64(&mut r)?;
        let dead = take_u64(&mut r)?;
        if generation != st.generation {
            return None;
        }
        let mut ix = Index {
            dead,
            ..Index::default()
        };
        // Message keys of 16 bytes: fixed-size entries.
        let n = take_u64(&mut r)? as usize;
        ix.fixed.reserve(n.min(r.len() / 36));
        for _ in 0..n {
            let key: [u8; 16] = take(&mut r, 16)?.try_into().ok()?;
            let loc = take_loc(&mut r)?;
            let hash = take_u64(&mut r)?;
            ix.fixed.insert(key, Loc { hash, ..loc });
        }
        // Other message keys.
        for _ in 0..take_u64(&mut r)? {
            let klen = take_u32(&mut r)? as usize;
            let key = take(&mut r, klen)?.to_vec();
            let loc = take_loc(&mut r)?;
            let hash = take_u64(&mut r)?;
            ix.other.insert(key, Loc { hash, ..loc });
        }
        // The timeline in key order, each value kept (its hash is the value's).
        let n = take_u64(&mut r)? as usize;
        let mut timeline = Vec::with_capacity(n.min(r.len() / (4 + 12 + 4)));
        for _ in 0..n {
            let klen = take_u32(&mut r)? as usize;
            let key = TKey::new(take(&mut r, klen)?);
            let loc = take_loc(&mut r)?;
            let vlen = take_u32(&mut r)? as usize;
            let value = take(&mut r, vlen)?;
            let loc = Loc {
                hash: value_hash(value),
                ..loc
            };
            timeline.push((key, (loc, TValue::new(value))));
        }
        // Saved in key order: built in one go, not a million inserts.
        ix.timeline = timeline.into_iter().collect();
        if !r.is_empty() {
            return None;
        }
        Some((ix, covered))
    }

    /// Apply the records from `from` to the committed end to `ix`.
    fn replay(
        &self,
        st: &State,
        crypt: Option<&Crypt>,
        ix: &mut Index,
        from: u64,
    ) -> Result<(), StoreError> {
        let path = self.dir.join(log_name(st.generation));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::io::BufReader::with_capacity(1 << 20, st.file.try_clone().map_err(io)?);
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from)).map_err(io)?;
        let mut at = from;
        let mut rec = Vec::new();
        while at < st.end {
            let mut head = [0u8; HEAD];
            f.read_exact(&mut head).map_err(io)?;
            let body = u32::from_le_bytes(head[..4].try_into().unwrap_or_default()) as usize;
            let op = head[4];
            let tree = tree_of(head[5]);
            let klen = u32::from_le_bytes(head[6..10].try_into().unwrap_or_default()) as usize;
            let Some(tree) = tree.filter(|_| {
                body >= HEAD - 4 + klen && at + 4 + body as u64 <= st.end && op <= OP_PUT
            }) else {
                return Err(corrupt(
                    &self.dir,
                    format!("bad record at byte {at} of {}", path.display()),
                ));
            };
            rec.resize(body - (HEAD - 4), 0);
            f.read_exact(&mut rec).map_err(io)?;
            let (stored_key, value) = rec.split_at(klen);
            let key = match crypt {
                Some(c) => c.reveal_key(stored_key),
                None => stored_key.to_vec(),
            };
            let len = (4 + body) as u32;
            if op == OP_PUT {
                let opened;
                let plain = match crypt {
                    Some(c) => {
                        opened = c.open(&super::context(tree, stored_key), value, tree.name())?;
                        &opened[..]
                    }
                    None => value,
                };
                let loc = Loc {
                    off: at,
                    len,
                    hash: value_hash(plain),
                };
                ix.insert(tree, &key, loc, Some(plain));
            } else {
                ix.remove(tree, &key, len as u64);
            }
            at += len as u64;
        }
        Ok(())
    }

    /// Read the record at `loc`: (stored key, stored value).
    pub fn read(&self, loc: Loc) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let st = self.read_state();
        let mut rec = vec![0u8; loc.len as usize];
        st.file
            .read_exact_at(&mut rec, loc.off)
            .map_err(|source| StoreError::Io {
                path: self.dir.join(log_name(st.generation)),
                source,
            })?;
        let klen = rec
            .get(6..HEAD)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
            .filter(|k| HEAD + k <= rec.len())
            .ok_or_else(|| corrupt(&self.dir, format!("bad record at byte {}", loc.off)))?;
        let value = rec.split_off(HEAD + klen);
        rec.drain(..HEAD);
        Ok((rec, value))
    }

    /// Write `batches` after the committed end and make them durable; returns
    /// the length the log will have once the write commits. Nothing is
    /// visible until [`Self::publish`]. Call with the writer's turn held.
    pub fn append(&self, batches: &[&LogBatch]) -> std::io::Result<u64> {
        let st = self.read_state();
        let mut at = st.end;
        for b in batches {
            st.file.write_all_at(&b.buf, at)?;
            at += b.bytes();
        }
        if at != st.end {
            st.file.sync_data()?;
        }
        Ok(at)
    }

    /// After the write that set the log's committed length to `end` (as
    /// [`Self::append`] said) has committed: the index takes its records.
    pub fn publish(
        &self,
        crypt: Option<&Crypt>,
        batches: &[&LogBatch],
        end: u64,
    ) -> Result<(), StoreError> {
        self.with_index(crypt, |_| ())?;
        let mut st = self.write_state();
        let mut at = st.end;
        let ix = st.index.as_mut().expect("loaded above");
        for b in batches {
            for e in &b.entries {
                let (key, value) = b.key_value(e);
                match e.hash {
                    Some(hash) => ix.insert(
                        e.tree,
                        key,
                        Loc {
                            off: at + e.off,
                            len: e.len,
                            hash,
                        },
                        value,
                    ),
                    None => ix.remove(e.tree, key, e.len as u64),
                }
            }
            at += b.bytes();
        }
        debug_assert_eq!(at, end);
        st.end = end;
        st.changes += 1;
        Ok(())
    }

    /// Save the index beside the log (sealed when `crypt` is given), if it
    /// changed since it was loaded. Readers and writers go on meanwhile (an
    /// import's last steps run beside it): it is written as it was when the
    /// save began, and records committed after that are replayed on load.
    pub fn save_index(&self, crypt: Option<&Crypt>) -> Result<(), StoreError> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.dir.join(INDEX_FILE);
        let tmp = self.dir.join(format!(".{INDEX_FILE}.tmp"));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let st = self.read_state();
        let changes = st.changes;
        if changes == st.saved {
            return Ok(());
        }
        let Some(ix) = &st.index else {
            return Ok(());
        };
        match crypt {
            // Streamed to the file: a million messages' index is ~100 MB
            // that need not be in memory twice.
            None => {
                let file = crate::paths::create_private(&tmp).map_err(io)?;
                let mut w = Hashing {
                    inner: BufWriter::with_capacity(1 << 20, file),
                    hash: xxhash_rust::xxh3::Xxh3::new(),
                };
                Self::write_index(&st, ix, &mut w).map_err(io)?;
                drop(st);
                let sum = w.hash.digest();
                w.inner.write_all(&sum.to_le_bytes()).map_err(io)?;
                let file = w.inner.into_inner().map_err(|e| io(e.into_error()))?;
                file.sync_all().map_err(io)?;
            }
            // Sealed whole.
            Some(c) => {
                let mut out = Vec::with_capacity(Self::index_size(ix));
                Self::write_index(&st, ix, &mut out).map_err(io)?;
                drop(st);
                let sum = xxh3_64(&out);
                out.extend_from_slice(&sum.to_le_bytes());
                let mut sealed = super::crypt::FILE_MAGIC.to_vec();
                sealed.extend(c.seal(super::crypt::FILE_MAGIC, &out)?);
                crate::paths::write_private(&tmp, &sealed).map_err(io)?;
            }
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        let mut st = self.write_state();
        st.saved = st.saved.max(changes);
        Ok(())
    }

    /// Bytes of the index file before its checksum.
    fn index_size(ix: &Index) -> usize {
        INDEX_MAGIC.len()
            + 48
            + ix.fixed.len() * (16 + 12 + 8)
            + ix.other.keys().map(|k| 4 + k.len() + 12 + 8).sum::<usize>()
            + ix.timeline
                .iter()
                .map(|(k, (_, v))| 4 + k.as_slice().len() + 12 + 4 + v.as_slice().len())
                .sum::<usize>()
    }

    /// The index file before its checksum: the index as of `st`.
    fn write_index(st: &State, ix: &Index, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(INDEX_MAGIC)?;
        for v in [st.generation, st.end, ix.dead, ix.fixed.len() as u64] {
            out.write_all(&v.to_le_bytes())?;
        }
        let put_loc = |out: &mut dyn Write, l: &Loc| -> std::io::Result<()> {
            out.write_all(&l.off.to_le_bytes())?;
            out.write_all(&l.len.to_le_bytes())
        };
        for (k, l) in &ix.fixed {
            out.write_all(k)?;
            put_loc(out, l)?;
            out.write_all(&l.hash.to_le_bytes())?;
        }
        out.write_all(&(ix.other.len() as u64).to_le_bytes())?;
        for (k, l) in &ix.other {
            out.write_all(&(k.len() as u32).to_le_bytes())?;
            out.write_all(k)?;
            put_loc(out, l)?;
            out.write_all(&l.hash.to_le_bytes())?;
        }
        out.write_all(&(ix.timeline.len() as u64).to_le_bytes())?;
        for (k, (l, v)) in &ix.timeline {
            let (k, v) = (k.as_slice(), v.as_slice());
            out.write_all(&(k.len() as u32).to_le_bytes())?;
            out.write_all(k)?;
            put_loc(out, l)?;
            out.write_all(&(v.len() as u32).to_le_bytes())?;
            out.write_all(v)?;
        }
        Ok(())
    }

    /// The log's committed length plus its saved index.
    pub fn size_on_disk(&self) -> u64 {
        let index = std::fs::metadata(self.dir.join(INDEX_FILE)).map_or(0, |m| m.len());
        self.read_state().end + index
    }

    /// Bytes of records that are no longer live.
    pub fn dead_bytes(&self, crypt: Option<&Crypt>) -> Result<u64, StoreError> {
        self.with_index(crypt, |ix| ix.dead)
    }

    /// Write the live records to the next generation's file (in log order).
    /// `commit` records the new generation and length in the store (durably);
    /// then the new file is used and the old one wiped. Call with the
    /// writer's turn held. Returns the new (generation, length).
    pub fn compact(
        &self,
        crypt: Option<&Crypt>,
        commit: impl FnOnce(u64, u64) -> Result<(), StoreError>,
    ) -> Result<(u64, u64), StoreError> {
        self.with_index(crypt, |_| ())?;
        let (generation, path, mut live) = {
            let st = self.read_state();
            let ix = st.index.as_ref().expect("loaded above");
            let live: Vec<Live> = ix
                .entries()
                .map(|(t, k, l, v)| (t, k.to_vec(), *l, v.map(<[u8]>::to_vec)))
                .collect();
            (
                st.generation + 1,
                self.dir.join(log_name(st.generation + 1)),
                live,
            )
        };
        live.sort_unstable_by_key(|(_, _, l, _)| l.off);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let file = open_file(&path).map_err(io)?;
        file.set_len(0).map_err(io)?;
        let mut ix = Index::default();
        let mut at = 0u64;
        {
            let mut w = BufWriter::with_capacity(1 << 20, &file);
            let st = self.read_state();
            let mut rec = Vec::new();
            for (tree, k, l, value) in &live {
                rec.resize(l.len as usize, 0);
                st.file
                    .read_exact_at(&mut rec, l.off)
                    .map_err(|source| StoreError::Io {
                        path: self.dir.join(log_name(st.generation)),
                        source,
                    })?;
                w.write_all(&rec).map_err(io)?;
                ix.insert(*tree, k, Loc { off: at, ..*l }, value.as_deref());
                at += l.len as u64;
            }
            w.flush().map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        commit(generation, at)?;
        let old = {
            let mut st = self.write_state();
            let old = self.dir.join(log_name(st.generation));
            st.file = file;
            st.generation = generation;
            st.end = at;
            st.index = Some(ix);
            st.changes += 1;
            old
        };
        wipe(&old).map_err(|source| StoreError::Io { path: old, source })?;
        self.save_index(crypt)?;
        Ok((generation, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_keys_compare_as_their_bytes() {
        let mut x = 7u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 59) as u8 // few values: long equal prefixes are common
        };
        for _ in 0..20_000 {
            let a: [u8; TIMELINE_KEY] = std::array::from_fn(|_| next());
            let mut b = a;
            let at = usize::from(next()) % TIMELINE_KEY;
            b[at..].iter_mut().for_each(|v| *v = next());
            let (sa, sb) = (TKey::new(&a), TKey::new(&b));
            assert_eq!(sa.cmp(&sb), a.as_slice().cmp(b.as_slice()));
            assert_eq!(sb.cmp(&sa), b.as_slice().cmp(a.as_slice()));
            let (va, vb) = (TValue::new(&a[..8]), TValue::new(&b[..8]));
            assert_eq!(va.cmp(&vb), a[..8].cmp(&b[..8]));
        }
    }
}
