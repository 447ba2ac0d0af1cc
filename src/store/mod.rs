//! The store: one sled database, one tree per kind of record (see DESIGN.md).
//!
//! - One twin process per store, enforced by a lock file; a second one gets
//!   [`StoreError::InUse`] with the other process's pid.
//! - A `meta` tree holds the schema version and per-tree record counts; opening an
//!   older store migrates it step by step ([`migrate`]), a newer one is refused.
//! - Writes that belong together go through [`Store::write`]: one sled transaction
//!   over every tree, which also keeps the counts exact.
//! - Many new records at once (an import's messages and their index keys) go
//!   through [`Store::write_bulk`]: per-tree batches of sorted keys, then one
//!   small transaction, atomic as a whole through an undo record in `meta` that
//!   the next open rolls back if twin was killed in between.
//! - Opt-in encryption at rest ([`crypt`]): when the store is encrypted every
//!   value of every tree but `meta` is sealed and every key is hidden here, in
//!   [`Tx`] and [`View`], so each tree — including ones added later — is covered
//!   without code of its own. Files kept beside the store go through
//!   [`Store::seal`] / [`Store::open_sealed`] (or [`Store::write_file`] /
//!   [`Store::read_file`] in [`Store::files_dir`]). See `docs/privacy.md`.

pub mod codec;
pub mod convert;
pub mod crypt;
mod lock;
mod log;
pub mod migrate;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
    UnabortableTransactionError,
};

pub use codec::{CodecError, Key, Record};
pub use crypt::{CryptError, KdfParams, Passphrase};
pub(crate) use log::FastHasher;
pub use log::KeyHasher;

/// Every tree in the store. `Meta` is internal (schema version, counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tree {
    Meta,
    Sources,
    Contacts,
    Messages,
    Conversations,
    Memories,
    Vectors,
    Profile,
    Datasets,
    Runs,
    Adapters,
    Chats,
    Checkins,
    /// Conversation windows (gap-based sessions) derived from messages.
    Windows,
    /// Notes and documents (Markdown, Obsidian, PDF) as imported.
    Documents,
    /// Secondary keys: identity aliases, per-day counts. Not records.
    Index,
    /// Messages of each conversation in time order (keys from
    /// `ingest::records::index::timeline`, the author as value). Not records.
    Timeline,
}

impl Tree {
    pub const ALL: [Tree; 17] = [
        Tree::Meta,
        Tree::Sources,
        Tree::Contacts,
        Tree::Messages,
        Tree::Conversations,
        Tree::Memories,
        Tree::Vectors,
        Tree::Profile,
        Tree::Datasets,
        Tree::Runs,
        Tree::Adapters,
        Tree::Chats,
        Tree::Checkins,
        Tree::Windows,
        Tree::Documents,
        Tree::Index,
        Tree::Timeline,
    ];

    /// The trees that hold records (everything but `meta`, `index` and `timeline`).
    pub fn data() -> impl Iterator<Item = Tree> {
        Tree::ALL
            .into_iter()
            .filter(|t| !matches!(t, Tree::Meta | Tree::Index | Tree::Timeline))
    }

    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Sources => "sources",
            Tree::Contacts => "contacts",
            Tree::Messages => "messages",
            Tree::Conversations => "conversations",
            Tree::Memories => "memories",
            Tree::Vectors => "vectors",
            Tree::Profile => "profile",
            Tree::Datasets => "datasets",
            Tree::Runs => "runs",
            Tree::Adapters => "adapters",
            Tree::Chats => "chats",
            Tree::Checkins => "checkins",
            Tree::Windows => "windows",
            Tree::Documents => "documents",
            Tree::Index => "index",
            Tree::Timeline => "timeline",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store in use by another twin process{}: {path}; close that twin (its TUI or batch job) and try again",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), path = .path.display()
    )]
    InUse {
        path: PathBuf,
        pid: Option<u32>,
        /// What holds it: "tui", "batch" (None for an older twin).
        holder: Option<String>,
    },
    #[error(
        "store {path} has schema version {found}, newer than this twin understands ({supported}); upgrade twin to open it"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "store {path} is damaged ({detail}); move that folder away and import again (your export files are untouched), or restore a backup"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("store migration to schema version {to} failed: {detail}")]
    Migration { to: u32, detail: String },
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error("{0}")]
    Aborted(String),
}

/// The open store. Dropping it flushes and releases the process lock.
pub struct Store {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    dir: PathBuf,
    crypt: Option<std::sync::Arc<crypt::Crypt>>,
    /// The `messages` tree (see [`log`]); sled's own `messages` tree only
    /// holds what a store from before the log had, until it is migrated.
    log: log::MessageLog,
    _lock: lock::LockFile,
}

const SCHEMA_KEY: &[u8] = b"schema_version";
/// The folder inside the store for files kept beside it.
pub const FILES_DIR: &str = "files";
const COUNT_PREFIX: &str = "count/";
/// The keys an unfinished [`Store::write_bulk`] wrote (see [`Store::undo_bulk`]).
const UNDO_KEY: &[u8] = b"bulk/undo";

/// New records for [`Store::write_bulk`], their keys and values in one
/// buffer (an import adds them by the million: no allocation per record).
#[derive(Default)]
pub struct Bulk {
    buf: Vec<u8>,
    /// Tree, key start, key end (= value start), value end in `buf`.
    puts: Vec<(Tree, usize, usize, usize)>,
}

impl Bulk {
    pub fn new() -> Bulk {
        Bulk::default()
    }

    /// A record whose key is neither in the store nor in this bulk yet.
    pub fn put_new<T: Record>(
        &mut self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<(), CodecError> {
        let a = self.buf.len();
        self.buf.extend_from_slice(key.as_ref());
        let b = self.buf.len();
        if let Err(e) = codec::encode_into(value, &mut self.buf) {
            self.buf.truncate(a);
            return Err(e);
        }
        self.puts.push((T::TREE, a, b, self.buf.len()));
        Ok(())
    }

    /// Raw bytes under a key that is neither in `tree` nor in this bulk yet
    /// (not `meta`).
    pub fn put_new_raw(&mut self, tree: Tree, key: impl AsRef<[u8]>, bytes: impl AsRef<[u8]>) {
        assert!(tree != Tree::Meta, "meta is the store's own");
        let a = self.buf.len();
        self.buf.extend_from_slice(key.as_ref());
        let b = self.buf.len();
        self.buf.extend_from_slice(bytes.as_ref());
        self.puts.push((tree, a, b, self.buf.len()));
    }

    /// Room for `records` more records of `bytes` bytes of keys and values.
    pub fn reserve(&mut self, bytes: usize, records: usize) {
        self.buf.reserve(bytes);
        self.puts.reserve(records);
    }

    /// The records: tree, key, value.
    fn records(&self) -> impl Iterator<Item = (Tree, &[u8], &[u8])> {
        self.puts
            .iter()
            .map(|&(t, a, b, c)| (t, &self.buf[a..b], &self.buf[b..c]))
    }

    pub fn len(&self) -> usize {
        self.puts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }
}

impl Store {
    /// Open (or create) the store in `dir`, migrating an older schema. An
    /// encrypted store asks the process's passphrase source
    /// ([`crypt::set_passphrase_source`]) for its passphrase.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_as(dir, "batch")
    }

    /// Like [`Store::open`], saying in the lock file what holds the store
    /// ("tui"), so another process refused can tell the user.
    pub fn open_as(dir: &Path, holder: &str) -> Result<Store, StoreError> {
        Store::open_full(dir, None, holder)
    }

    /// [`Store::open`] with the passphrase given (for an encrypted store).
    pub fn open_with(dir: &Path, pass: Option<&Passphrase>) -> Result<Store, StoreError> {
        Store::open_full(dir, pass, "batch")
    }

    fn open_full(dir: &Path, pass: Option<&Passphrase>, holder: &str) -> Result<Store, StoreError> {
        convert::recover(dir)?;
        let store = Store::open_raw(dir, holder)?;
        let store = store.unlock(pass)?;
        migrate::run(&store, migrate::MIGRATIONS)?;
        Ok(store)
    }

    /// Open sled and take the lock; no migration, no unlocking.
    fn open_raw(dir: &Path, holder: &str) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        crate::paths::create_private_dir(dir).map_err(io)?;
        let lock = lock::LockFile::acquire(&dir.join("twin.lock"), holder)?;
        // sled releases its own file lock only when its background flusher
        // lets go of a just-closed database (a store reopened in the same
        // process: encrypt's swap, tests). Our lock file already rules out
        // another process, so wait a moment for that instead of failing.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new().path(dir).open() {
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("could not acquire lock") =>
                {
                    if tries >= 100 {
                        return Err(sled_error(dir, sled::Error::Io(e)));
                    }
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.map_err(|e| sled_error(dir, e))?,
            }
        };
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| sled_error(dir, e))?;
        let meta_u64 = |key: &[u8]| -> Result<Option<u64>, StoreError> {
            Ok(trees[Tree::Meta.index()]
                .get(key)
                .map_err(|e| sled_error(dir, e))?
                .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))))
        };
        let log = log::MessageLog::open(
            dir,
            meta_u64(log::GEN_KEY)?.unwrap_or(1),
            meta_u64(log::END_KEY)?.unwrap_or(0),
        )?;
        // sled creates its files with the process umask; keep them private.
        crate::paths::make_private_tree(dir).map_err(io)?;
        let store = Store {
            db,
            trees,
            dir: dir.to_path_buf(),
            crypt: None,
            log,
            _lock: lock,
        };
        // A bulk write that a kill interrupted is rolled back before anything
        // reads the store (it works on stored keys: no passphrase needed).
        store.undo_bulk()?;
        Ok(store)
    }

    fn unlock(mut self, pass: Option<&Passphrase>) -> Result<Store, StoreError> {
        if let Some(header) = self.crypt_header()? {
            let dk = crypt::data_key(&header, pass, &self.dir.display().to_string())?;
            self.crypt = Some(std::sync::Arc::new(crypt::Crypt::new(&dk)));
        }
        Ok(self)
    }

    /// The encryption header of an encrypted store.
    pub fn crypt_header(&self) -> Result<Option<crypt::Header>, StoreError> {
        let v = self
            .tree_raw(Tree::Meta)
            .get(crypt::HEADER_KEY)
            .map_err(|e| sled_error(&self.dir, e))?;
        v.map(|b| rmp_serde::from_slice(&b).map_err(|e| CryptError::Header(e.to_string()).into()))
            .transpose()
    }

    pub(crate) fn set_crypt_header(&self, h: &crypt::Header) -> Result<(), StoreError> {
        let bytes = rmp_serde::to_vec_named(h).map_err(|e| CryptError::Header(e.to_string()))?;
        self.tree_raw(Tree::Meta)
            .insert(crypt::HEADER_KEY, bytes)
            .map_err(|e| sled_error(&self.dir, e))?;
        self.flush()
    }

    /// Whether values and keys are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.crypt.is_some()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder for files kept beside the store (the memory index dump,
    /// adapters, caches): created private; [`Store::write_file`] and
    /// [`Store::read_file`] seal and open them; export, import, `twin encrypt`
    /// and `twin forget` treat everything in it.
    pub fn files_dir(&self) -> PathBuf {
        self.dir.join(FILES_DIR)
    }

    /// Seal bytes for a file beside the store: encrypted (with a `twinseal`
    /// header) when the store is, unchanged otherwise.
    pub fn seal(&self, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer().seal(bytes)
    }

    /// Open what [`Store::seal`] made. A plain file given to an encrypted store
    /// is refused (it would mean something was written beside the store unsealed).
    pub fn open_sealed(&self, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer().open(bytes)
    }

    /// What seals and opens this store's files, for work that keeps files
    /// elsewhere (training sets, checkpoints, adapters) and runs without the
    /// store at hand.
    pub fn sealer(&self) -> Sealer {
        Sealer(self.crypt.clone())
    }

    /// Write `name` (a plain file name) in [`Store::files_dir`], sealed, atomically.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let dir = self.files_dir();
        let io = |source| StoreError::Io {
            path: dir.join(name),
            source,
        };
        crate::paths::create_private_dir(&dir).map_err(io)?;
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        crate::paths::write_private(&tmp, &self.seal(bytes)?).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }

    /// Read `name` from [`Store::files_dir`] (`None` when absent), opened.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.files_dir().join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(self.open_sealed(&b)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// The names of the files in [`Store::files_dir`], sorted.
    pub fn file_names(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.files_dir();
        let mut out = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(|source| StoreError::Io {
                        path: dir.clone(),
                        source,
                    })?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_file() && !name.starts_with('.') {
                        out.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        }
        out.sort();
        Ok(out)
    }

    /// The schema version recorded in `meta` (`None` for a store that predates it).
    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let v = self
            .tree_raw(Tree::Meta)
            .get(SCHEMA_KEY)
            .map_err(|e| sled_error(&self.dir, e))?;
        Ok(v.map(|b| u32::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 4]))))
    }

    pub(crate) fn set_schema_version(&self, v: u32) -> Result<(), StoreError> {
        self.tree_raw(Tree::Meta)
            .insert(SCHEMA_KEY, &v.to_be_bytes())
            .map_err(|e| sled_error(&self.dir, e))?;
        self.flush()
    }

    /// Read-only access to a tree's raw bytes (writes go through
    /// [`Store::write`]); keys and values come back opened when the store is
    /// encrypted.
    pub fn tree(&self, tree: Tree) -> View<'_> {
        View { store: self, tree }
    }

    /// The sled tree itself: stored bytes (sealed when encrypted).
    pub(crate) fn tree_raw(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }

    /// Where the log has the record under `key` of `tree`.
    fn log_loc(&self, tree: Tree, key: &[u8]) -> Result<Option<log::Loc>, StoreError> {
        self.log
            .with_index(self.crypt.as_deref(), |ix| ix.get(tree, key))
    }

    /// Calls `f` with each `timeline` key and value starting with `prefix`,
    /// in key order, straight from the in-memory index (no copies: a
    /// conversation of a million messages is walked without a million
    /// allocations). `f` must not write to the store.
    pub fn for_each_timeline(
        &self,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        self.log
            .with_index(self.crypt.as_deref(), |ix| ix.for_each_timeline(prefix, f))
    }

    /// The stored form of `key` in `tree`.
    fn stored_key(&self, tree: Tree, key: &[u8]) -> Vec<u8> {
        match (&self.crypt, tree) {
            (Some(c), t) if t != Tree::Meta => c.hide_key(key),
            _ => key.to_vec(),
        }
    }

    /// The stored form of a value (sealed when the store is encrypted).
    fn seal_value(
        &self,
        tree: Tree,
        stored_key: &[u8],
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        match (&self.crypt, tree) {
            (Some(c), t) if t != Tree::Meta => Ok(c.seal(&context(tree, stored_key), &bytes)?),
            _ => Ok(bytes),
        }
    }

    /// Open a stored value (`stored_key` is its key as stored).
    fn open_value(
        &self,
        tree: Tree,
        stored_key: &[u8],
        v: sled::IVec,
    ) -> Result<sled::IVec, StoreError> {
        match (&self.crypt, tree) {
            (Some(c), t) if t != Tree::Meta => {
                Ok(c.open(&context(tree, stored_key), &v, tree.name())?.into())
            }
            _ => Ok(v),
        }
    }

    /// Number of records in `tree`, kept exact by [`Store::write`].
    pub fn count(&self, tree: Tree) -> Result<u64, StoreError> {
        let v = self
            .tree_raw(Tree::Meta)
            .get(count_key(tree))
            .map_err(|e| sled_error(&self.dir, e))?;
        Ok(
            v.map(|b| u64::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 8])))
                .unwrap_or(0),
        )
    }

    /// Record counts of every data tree, in [`Tree::ALL`] order.
    pub fn counts(&self) -> Result<Vec<(Tree, u64)>, StoreError> {
        Tree::data().map(|t| Ok((t, self.count(t)?))).collect()
    }

    pub fn get<T: Record>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, StoreError> {
        let v = self.tree(T::TREE).get(key)?;
        Ok(v.map(|b| codec::decode(&b)).transpose()?)
    }

    /// Records of `T` whose key starts with `prefix`, in key order.
    pub fn scan<T: Record>(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<(sled::IVec, T), StoreError>> + '_ {
        self.tree(T::TREE).scan_prefix(prefix).map(move |kv| {
            let (k, v) = kv?;
            Ok((k, codec::decode(&v)?))
        })
    }

    /// Run `f` as one atomic transaction over every tree. `f` may be re-run on
    /// conflict, so it must have no side effects outside `tx`.
    pub fn write<R>(&self, f: impl Fn(&mut Tx<'_>) -> Result<R, TxError>) -> Result<R, StoreError> {
        self.transact(f, false, None)
    }

    /// One transaction; `clear_undo` also drops [`Store::write_bulk`]'s undo
    /// record. `prebuilt` messages are appended to the log with the messages
    /// `f` writes; the log's new length commits with the transaction.
    fn transact<R>(
        &self,
        f: impl Fn(&mut Tx<'_>) -> Result<R, TxError>,
        clear_undo: bool,
        prebuilt: Option<&log::LogBatch>,
    ) -> Result<R, StoreError> {
        let _turn = self.log.lock_writer();
        // The last attempt's log records and the length they bring the log to.
        let appended: RefCell<Option<(log::LogBatch, u64)>> = RefCell::new(None);
        let result = self.trees.as_slice().transaction(|views| {
            let mut tx = Tx {
                views,
                store: self,
                deltas: Default::default(),
                logged: RefCell::new(BTreeMap::new()),
            };
            let r = f(&mut tx).map_err(|e| e.0)?;
            tx.apply_counts()?;
            if clear_undo {
                tx.view(Tree::Meta).remove(UNDO_KEY)?;
            }
            let batch = tx
                .log_batch()
                .map_err(ConflictableTransactionError::Abort)?;
            let mut batches: Vec<&log::LogBatch> = prebuilt.into_iter().collect();
            batches.push(&batch);
            if batches.iter().any(|b| !b.is_empty()) {
                let end = self.log.append(&batches).map_err(|source| {
                    ConflictableTransactionError::Abort(StoreError::Io {
                        path: self.dir.clone(),
                        source,
                    })
                })?;
                let meta = tx.view(Tree::Meta);
                meta.insert(log::END_KEY, &end.to_be_bytes())?;
                meta.insert(log::GEN_KEY, &self.log.generation().to_be_bytes())?;
                *appended.borrow_mut() = Some((batch, end));
            } else {
                *appended.borrow_mut() = None;
            }
            Ok(r)
        });
        match result {
            Ok(r) => {
                if let Some((batch, end)) = appended.into_inner() {
                    let mut batches: Vec<&log::LogBatch> = prebuilt.into_iter().collect();
                    batches.push(&batch);
                    self.log.publish(self.crypt.as_deref(), &batches, end)?;
                }
                Ok(r)
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(sled_error(&self.dir, e)),
        }
    }

    /// Write `bulk` (records under keys that are not in the store: the caller
    /// has checked) and then run `f` as one transaction, atomically as a
    /// whole: far fewer reads and copies than putting each record through
    /// [`Store::write`] (messages appended to the log, the other trees in
    /// per-tree sled batches of sorted keys, no read-before-write), with the
    /// counts kept exact. The messages commit with `f`'s transaction; for the
    /// other trees an undo record in `meta` lists the bulk keys until it
    /// commits; killed in between, the next open removes them again, and an
    /// error rolls them back at once, so the store is as it was before the
    /// call. One bulk write at a time (the undo record is one key): today
    /// only an import makes them, and imports run one at a time.
    pub fn write_bulk<R>(
        &self,
        bulk: Bulk,
        f: impl Fn(&mut Tx<'_>) -> Result<R, TxError>,
    ) -> Result<R, StoreError> {
        if bulk.puts.is_empty() {
            return self.write(f);
        }
        let logged: Vec<(Tree, &[u8], &[u8])> =
            bulk.records().filter(|(t, _, _)| log::in_log(*t)).collect();
        let rest: Vec<(Tree, &[u8], &[u8])> = bulk
            .records()
            .filter(|(t, _, _)| !log::in_log(*t))
            .collect();
        // Keys are distinct (the caller's word): no set of them to check.
        debug_assert!({
            let mut keys: Vec<_> = logged.iter().map(|(t, k, _)| (*t, *k)).collect();
            keys.sort_unstable();
            keys.windows(2).all(|w| w[0] != w[1])
        });
        let mut prebuilt = log::LogBatch::default();
        prebuilt.reserve(
            logged.iter().map(|(_, k, v)| k.len() + v.len()).sum(),
            logged.len(),
        );
        let mut new_messages = 0;
        for &(tree, key, value) in &logged {
            if self.crypt.is_some() {
                let k = self.stored_key(tree, key);
                let v = self.seal_value(tree, &k, value.to_vec())?;
                prebuilt.put(tree, key, &k, &v, value);
            } else {
                // Stored as given.
                prebuilt.put_plain(tree, key, value);
            }
            new_messages += (tree == Tree::Messages) as i64;
        }
        let mut counts = if rest.is_empty() {
            [0; Tree::ALL.len()]
        } else {
            self.apply_bulk(&rest)?
        };
        counts[Tree::Messages.index()] = new_messages;
        let result = self.transact(
            |tx| {
                for (d, n) in tx.deltas.iter().zip(&counts) {
                    d.set(*n);
                }
                f(tx)
            },
            true,
            Some(&prebuilt),
        );
        if result.is_err() {
            // Roll back now; should that fail too, the next open does it.
            if let Err(e) = self.undo_bulk() {
                tracing::error!("rolling back a failed bulk write: {e}");
            }
        }
        result
    }

    /// Save the messages index now rather than on close (it is also saved
    /// then, if it changed again). Reads and writes go on meanwhile: an
    /// import saves it beside its last steps.
    pub fn save_messages_index(&self) -> Result<(), StoreError> {
        self.log.save_index(self.crypt.as_deref())
    }

    /// Rewrite the messages log without its dead records (removed or
    /// replaced messages), wiping the old file: after `twin forget`, so the
    /// forgotten text is gone from the disk too.
    pub fn compact_messages(&self) -> Result<(), StoreError> {
        let _turn = self.log.lock_writer();
        let meta = self.tree_raw(Tree::Meta);
        self.log.compact(self.crypt.as_deref(), |generation, end| {
            let mut b = sled::Batch::default();
            b.insert(log::GEN_KEY, &generation.to_be_bytes());
            b.insert(log::END_KEY, &end.to_be_bytes());
            meta.apply_batch(b).map_err(|e| sled_error(&self.dir, e))?;
            self.flush()
        })?;
        Ok(())
    }

    /// Bytes of removed or replaced messages still in the log.
    pub fn dead_message_bytes(&self) -> Result<u64, StoreError> {
        self.log.dead_bytes(self.crypt.as_deref())
    }

    /// Move what a store from before the log kept in sled into the log: the
    /// messages, and the timeline keys from `index` (a migration; an
    /// interrupted one is simply run again).
    pub(crate) fn move_to_log(&self) -> Result<u64, StoreError> {
        let mut moved = 0u64;
        // The timeline keys: "t" + conversation + time + message key.
        let timeline_prefix = self.stored_key(Tree::Index, b"t");
        for (from, to) in [
            (Tree::Messages, Tree::Messages),
            (Tree::Index, Tree::Timeline),
        ] {
            let raw = self.tree_raw(from);
            let prefix: &[u8] = if from == Tree::Index {
                &timeline_prefix
            } else {
                &[]
            };
            loop {
                let chunk: Vec<(sled::IVec, sled::IVec)> = raw
                    .scan_prefix(prefix)
                    .filter(|kv| {
                        // Other index keys that start with "t" stay (none today).
                        from != Tree::Index
                            || kv.as_ref().map_or(true, |(k, _)| {
                                self.crypt
                                    .as_ref()
                                    .map_or(k.len(), |c| c.reveal_key(k).len())
                                    == 33
                            })
                    })
                    .take(4096)
                    .collect::<Result<_, _>>()
                    .map_err(|e| sled_error(&self.dir, e))?;
                if chunk.is_empty() {
                    break;
                }
                let mut batch = log::LogBatch::default();
                for (k, v) in &chunk {
                    let plain = self.open_value(from, k, v.clone())?;
                    let key = match &self.crypt {
                        Some(c) => c.reveal_key(k),
                        None => k.to_vec(),
                    };
                    let sealed = self.seal_value(to, k, plain.to_vec())?;
                    batch.put(to, key, k, &sealed, &plain);
                }
                self.transact(|_| Ok(()), false, Some(&batch))?;
                let mut gone = sled::Batch::default();
                for (k, _) in &chunk {
                    gone.remove(k);
                }
                raw.apply_batch(gone)
                    .map_err(|e| sled_error(&self.dir, e))?;
                moved += chunk.len() as u64;
            }
        }
        self.recount()?;
        self.flush()?;
        Ok(moved)
    }

    /// The first half of [`Store::write_bulk`]: the undo record, then the
    /// records; returns how many records each tree gained.
    fn apply_bulk(
        &self,
        records: &[(Tree, &[u8], &[u8])],
    ) -> Result<[i64; Tree::ALL.len()], StoreError> {
        let mut per_tree: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); Tree::ALL.len()];
        for &(tree, key, value) in records {
            let k = self.stored_key(tree, key);
            let v = self.seal_value(tree, &k, value.to_vec())?;
            per_tree[tree.index()].push((k, v));
        }
        let mut undo = Vec::new();
        let mut counts = [0i64; Tree::ALL.len()];
        for (i, records) in per_tree.iter_mut().enumerate() {
            // The same key twice is one record: the last value wins.
            records.reverse();
            records.sort_by(|a, b| a.0.cmp(&b.0));
            records.dedup_by(|a, b| a.0 == b.0);
            counts[i] = records.len() as i64;
            for (k, _) in records.iter() {
                undo.push(i as u8);
                undo.extend_from_slice(&(k.len() as u32).to_be_bytes());
                undo.extend_from_slice(k);
            }
        }
        let err = |e| sled_error(&self.dir, e);
        self.tree_raw(Tree::Meta)
            .insert(UNDO_KEY, undo)
            .map_err(err)?;
        for (i, records) in per_tree.into_iter().enumerate() {
            if records.is_empty() {
                continue;
            }
            let mut batch = sled::Batch::default();
            for (k, v) in records {
                batch.insert(k, v);
            }
            if let Err(e) = self.trees[i].apply_batch(batch) {
                if let Err(e) = self.undo_bulk() {
                    tracing::error!("rolling back a failed bulk write: {e}");
                }
                return Err(err(e));
            }
        }
        Ok(counts)
    }

    /// Remove the records of an interrupted [`Store::write_bulk`], if any.
    fn undo_bulk(&self) -> Result<bool, StoreError> {
        let err = |e| sled_error(&self.dir, e);
        let meta = self.tree_raw(Tree::Meta);
        let Some(undo) = meta.get(UNDO_KEY).map_err(err)? else {
            return Ok(false);
        };
        let mut batches: Vec<sled::Batch> = vec![sled::Batch::default(); Tree::ALL.len()];
        let mut rest = undo.as_ref();
        while let Some((&tree, tail)) = rest.split_first() {
            let corrupt = || StoreError::Corrupt {
                path: self.dir.clone(),
                detail: "the undo record of an interrupted import is cut short".into(),
            };
            let len = tail.get(..4).ok_or_else(corrupt)?;
            let len = u32::from_be_bytes(len.try_into().unwrap_or([0; 4])) as usize;
            let key = tail.get(4..4 + len).ok_or_else(corrupt)?;
            batches
                .get_mut(tree as usize)
                .ok_or_else(corrupt)?
                .remove(key);
            rest = &tail[4 + len..];
        }
        for (i, batch) in batches.into_iter().enumerate() {
            self.trees[i].apply_batch(batch).map_err(err)?;
        }
        meta.remove(UNDO_KEY).map_err(err)?;
        self.db.flush().map_err(err)?;
        tracing::info!(
            "rolled back an interrupted bulk write in {}",
            self.dir.display()
        );
        Ok(true)
    }

    /// Recount every tree from scratch (used by migrations and repair).
    pub fn recount(&self) -> Result<(), StoreError> {
        for t in Tree::data() {
            let n = self.tree(t).len() as u64;
            self.tree_raw(Tree::Meta)
                .insert(count_key(t), &n.to_be_bytes())
                .map_err(|e| sled_error(&self.dir, e))?;
        }
        Ok(())
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| sled_error(&self.dir, e))?;
        Ok(())
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.log.size_on_disk()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.log.save_index(self.crypt.as_deref()) {
            tracing::error!("saving the messages index on close failed: {e}");
        }
        if let Err(e) = self.db.flush() {
            tracing::error!("flushing the store on close failed: {e}");
        }
    }
}

/// What a sealed value is bound to: its tree and its key as stored.
fn context(tree: Tree, stored_key: &[u8]) -> Vec<u8> {
    let mut c = tree.name().as_bytes().to_vec();
    c.push(0);
    c.extend_from_slice(stored_key);
    c
}

/// Seals files kept outside the store's own folder (training sets,
/// checkpoints, adapters) the way [`Store::seal`] does: encrypted under the
/// store's data key when the store is encrypted, unchanged otherwise.
#[derive(Clone, Default)]
pub struct Sealer(Option<std::sync::Arc<crypt::Crypt>>);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealer({})",
            if self.0.is_some() {
                "encrypted"
            } else {
                "plain"
            }
        )
    }
}

impl Sealer {
    /// A sealer that leaves files as they are (a store that is not encrypted).
    pub fn plain() -> Sealer {
        Sealer(None)
    }

    pub fn is_encrypted(&self) -> bool {
        self.0.is_some()
    }

    pub fn seal(&self, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.0 {
            None => Ok(bytes.to_vec()),
            Some(c) => {
                let mut out = crypt::FILE_MAGIC.to_vec();
                out.extend(c.seal(crypt::FILE_MAGIC, bytes)?);
                Ok(out)
            }
        }
    }

    pub fn open(&self, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        let sealed = bytes.starts_with(crypt::FILE_MAGIC);
        match (&self.0, sealed) {
            (None, false) => Ok(bytes.to_vec()),
            (None, true) => Err(CryptError::Tampered {
                what: "a sealed file given to a store that is not encrypted".into(),
            }
            .into()),
            (Some(_), false) => Err(CryptError::Tampered {
                what: "a plain file beside an encrypted store".into(),
            }
            .into()),
            (Some(c), true) => Ok(c.open(
                crypt::FILE_MAGIC,
                &bytes[crypt::FILE_MAGIC.len()..],
                "a file beside the store",
            )?),
        }
    }

    /// Write `bytes` sealed to `path`, private (0600) and atomically (a
    /// reader never sees half a file).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::paths::create_private_dir(dir).map_err(io)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        crate::paths::write_private(&tmp, &self.seal(bytes)?).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Read and open `path`.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, StoreError> {
        let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.open(&bytes)
    }
}

/// One tree, read through the store (opened when encrypted).
pub struct View<'a> {
    store: &'a Store,
    tree: Tree,
}

/// Items of a [`View`] scan.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + 'a>;

impl<'a> View<'a> {
    fn raw(&self) -> &'a sled::Tree {
        self.store.tree_raw(self.tree)
    }

    fn err(&self, e: sled::Error) -> StoreError {
        sled_error(&self.store.dir, e)
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<sled::IVec>, StoreError> {
        if self.tree == Tree::Timeline {
            return Ok(self
                .store
                .log
                .with_index(self.store.crypt.as_deref(), |ix| ix.value(key.as_ref()))?
                .map(sled::IVec::from));
        }
        if self.tree == Tree::Messages {
            return match self.store.log_loc(self.tree, key.as_ref())? {
                Some(loc) => {
                    let (k, v) = self.store.log.read(loc)?;
                    Ok(Some(self.store.open_value(self.tree, &k, v.into())?))
                }
                None => Ok(None),
            };
        }
        let k = self.store.stored_key(self.tree, key.as_ref());
        match self.raw().get(&k).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(self.store.open_value(self.tree, &k, v)?)),
            None => Ok(None),
        }
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        if log::in_log(self.tree) {
            return Ok(self.store.log_loc(self.tree, key.as_ref())?.is_some());
        }
        let k = self.store.stored_key(self.tree, key.as_ref());
        self.raw().contains_key(&k).map_err(|e| self.err(e))
    }

    /// Keys and values whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> KvIter<'a> {
        let store = self.store;
        let tree = self.tree;
        if tree == Tree::Timeline {
            let prefix = prefix.as_ref();
            return match store
                .log
                .with_index(store.crypt.as_deref(), |ix| ix.timeline_with_prefix(prefix))
            {
                Ok(kvs) => Box::new(
                    kvs.into_iter()
                        .map(|(k, v)| Ok((sled::IVec::from(k), sled::IVec::from(v)))),
                ),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
        }
        if tree == Tree::Messages {
            // The log's keys in key order, each record read as it comes.
            let prefix = prefix.as_ref();
            let keys = match store
                .log
                .with_index(store.crypt.as_deref(), |ix| ix.keys_with_prefix(prefix))
            {
                Ok(k) => k,
                Err(e) => return Box::new(std::iter::once(Err(e))),
            };
            let view = View { store, tree };
            return Box::new(keys.into_iter().filter_map(move |k| {
                // Removed since the keys were read: skipped.
                view.get(&k)
                    .transpose()
                    .map(|v| v.map(|v| (sled::IVec::from(k), v)))
            }));
        }
        let raw = self.raw();
        let stored_prefix = store.stored_key(tree, prefix.as_ref());
        match &store.crypt {
            Some(c) if tree != Tree::Meta => {
                // Hidden keys are not in key order: read the keys, sort by the
                // real key, then fetch each value.
                let mut keys = Vec::new();
                for k in raw.scan_prefix(&stored_prefix).keys() {
                    match k {
                        Ok(k) => keys.push((c.reveal_key(&k), k)),
                        Err(e) => return Box::new(std::iter::once(Err(sled_error(&store.dir, e)))),
                    }
                }
                keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                Box::new(keys.into_iter().filter_map(move |(plain, stored)| {
                    match raw.get(&stored) {
                        Ok(Some(v)) => Some(
                            store
                                .open_value(tree, &stored, v)
                                .map(|v| (sled::IVec::from(plain), v)),
                        ),
                        // Removed since the keys were read.
                        Ok(None) => None,
                        Err(e) => Some(Err(sled_error(&store.dir, e))),
                    }
                }))
            }
            _ => Box::new(
                raw.scan_prefix(stored_prefix)
                    .map(move |kv| kv.map_err(|e| sled_error(&store.dir, e))),
            ),
        }
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> KvIter<'a> {
        self.scan_prefix([])
    }

    /// Stored records (not kept exact under concurrent writes; see [`Store::count`]).
    pub fn len(&self) -> usize {
        if log::in_log(self.tree) {
            // Not yet migrated ones too (a store from before the log).
            return self
                .store
                .log
                .with_index(self.store.crypt.as_deref(), |ix| ix.len(self.tree))
                .unwrap_or(0)
                + self.raw().len();
        }
        self.raw().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn count_key(tree: Tree) -> Vec<u8> {
    format!("{COUNT_PREFIX}{}", tree.name()).into_bytes()
}

fn sled_error(dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(source) => StoreError::Io {
            path: dir.to_path_buf(),
            source,
        },
        sled::Error::Corruption { .. } => StoreError::Corrupt {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        },
        other => StoreError::Corrupt {
            path: dir.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// An error inside [`Store::write`]: a conflict (the transaction is retried) or an abort.
pub struct TxError(ConflictableTransactionError<StoreError>);

impl From<UnabortableTransactionError> for TxError {
    fn from(e: UnabortableTransactionError) -> Self {
        TxError(e.into())
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError(ConflictableTransactionError::Abort(e))
    }
}

impl From<CodecError> for TxError {
    fn from(e: CodecError) -> Self {
        StoreError::Codec(e).into()
    }
}

/// What a transaction wrote to the log's trees: (tree, key) -> value
/// (`None`: removed).
type Logged = BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>;

/// The view of every tree inside one transaction.
pub struct Tx<'a> {
    views: &'a [TransactionalTree],
    store: &'a Store,
    deltas: [Cell<i64>; Tree::ALL.len()],
    /// Records of the log's trees written in this transaction (`None`:
    /// removed), for the log.
    logged: RefCell<Logged>,
}

impl Tx<'_> {
    fn view(&self, tree: Tree) -> &TransactionalTree {
        &self.views[tree.index()]
    }

    pub fn get<T: Record>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, TxError> {
        Ok(self
            .get_raw(T::TREE, key)?
            .map(|b| codec::decode(&b))
            .transpose()?)
    }

    /// Raw bytes under `key` (for values that are not serde records).
    pub fn get_raw(
        &self,
        tree: Tree,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<sled::IVec>, TxError> {
        if log::in_log(tree) {
            if let Some(v) = self.logged.borrow().get(&(tree, key.as_ref().to_vec())) {
                return Ok(v.as_deref().map(sled::IVec::from));
            }
            return Ok(self.store.tree(tree).get(key)?);
        }
        let k = self.store.stored_key(tree, key.as_ref());
        match self.view(tree).get(&k)? {
            Some(v) => Ok(Some(self.store.open_value(tree, &k, v)?)),
            None => Ok(None),
        }
    }

    /// Insert or replace; returns true when the key was new.
    pub fn put<T: Record>(&mut self, key: impl AsRef<[u8]>, value: &T) -> Result<bool, TxError> {
        self.put_raw(T::TREE, key, codec::encode(value)?)
    }

    /// Insert raw bytes (for values that are not serde records, such as vectors).
    pub fn put_raw(
        &mut self,
        tree: Tree,
        key: impl AsRef<[u8]>,
        bytes: Vec<u8>,
    ) -> Result<bool, TxError> {
        if log::in_log(tree) {
            let key = (tree, key.as_ref().to_vec());
            let mut written = self.logged.borrow_mut();
            let existed = match written.get(&key) {
                Some(v) => v.is_some(),
                None => match self.store.log_loc(tree, &key.1)? {
                    // The same bytes again: nothing to write.
                    Some(loc) if loc.hash == log::value_hash(&bytes) => return Ok(false),
                    found => found.is_some(),
                },
            };
            written.insert(key, Some(bytes));
            if !existed {
                self.bump(tree, 1);
            }
            return Ok(!existed);
        }
        let k = self.store.stored_key(tree, key.as_ref());
        let bytes = self.store.seal_value(tree, &k, bytes)?;
        let new = self.view(tree).insert(k, bytes)?.is_none();
        if new {
            self.bump(tree, 1);
        }
        Ok(new)
    }

    /// Remove; returns true when the key existed.
    pub fn remove(&mut self, tree: Tree, key: impl AsRef<[u8]>) -> Result<bool, TxError> {
        if log::in_log(tree) {
            let key = (tree, key.as_ref().to_vec());
            let mut written = self.logged.borrow_mut();
            let existed = match written.get(&key) {
                Some(v) => v.is_some(),
                None => self.store.log_loc(tree, &key.1)?.is_some(),
            };
            written.insert(key, None);
            if existed {
                self.bump(tree, -1);
            }
            return Ok(existed);
        }
        let k = self.store.stored_key(tree, key.as_ref());
        let existed = self.view(tree).remove(k)?.is_some();
        if existed {
            self.bump(tree, -1);
        }
        Ok(existed)
    }

    /// Abort the whole transaction with a message.
    pub fn abort<R>(&self, message: impl Into<String>) -> Result<R, TxError> {
        Err(StoreError::Aborted(message.into()).into())
    }

    /// The log records of what this transaction wrote to the log's trees.
    fn log_batch(&self) -> Result<log::LogBatch, StoreError> {
        let mut batch = log::LogBatch::default();
        for ((tree, key), value) in self.logged.borrow().iter() {
            let k = self.store.stored_key(*tree, key);
            match value {
                Some(v) => {
                    let sealed = self.store.seal_value(*tree, &k, v.clone())?;
                    batch.put(*tree, key, &k, &sealed, v);
                }
                // Removing what is not stored needs no record.
                None if self.store.log_loc(*tree, key)?.is_none() => {}
                None => batch.remove(*tree, key, &k),
            }
        }
        Ok(batch)
    }

    fn bump(&self, tree: Tree, by: i64) {
        let d = &self.deltas[tree.index()];
        d.set(d.get() + by);
    }

    fn apply_counts(&self) -> Result<(), UnabortableTransactionError> {
        let meta = self.view(Tree::Meta);
        for tree in Tree::data() {
            let delta = self.deltas[tree.index()].get();
            if delta == 0 {
                continue;
            }
            let key = count_key(tree);
            let old = meta
                .get(&key)?
                .map(|b| u64::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 8])))
                .unwrap_or(0);
            let new = (old as i64 + delta).max(0) as u64;
            meta.insert(key, &new.to_be_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A new encrypted store with a KDF cheap enough for tests.
    fn encrypted_store(dir: &Path, pass: &Passphrase) -> Store {
        let kdf = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        convert::init_encrypted(dir, pass, kdf).unwrap()
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Note {
        text: String,
    }
    impl Record for Note {
        const TREE: Tree = Tree::Memories;
    }

    fn note(s: &str) -> Note {
        Note { text: s.into() }
    }

    #[test]
    fn fresh_store_is_at_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), Some(migrate::SCHEMA_VERSION));
        assert!(s.counts().unwrap().iter().all(|(_, n)| *n == 0));
        assert_eq!(s.counts().unwrap().len(), Tree::data().count());
        assert!(
            !s.counts()
                .unwrap()
                .iter()
                .any(|(t, _)| matches!(t, Tree::Meta | Tree::Index))
        );
    }

    #[test]
    fn writes_are_atomic_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let k1 = Key::new().u64(1);
        let new = s
            .write(|tx| {
                let a = tx.put(&k1, &note("a"))?;
                tx.put(Key::new().u64(2), &note("b"))?;
                tx.put(&k1, &note("a2"))?; // replace: no new record
                Ok(a)
            })
            .unwrap();
        assert!(new);
        assert_eq!(s.count(Tree::Memories).unwrap(), 2);
        assert_eq!(s.get::<Note>(&k1).unwrap(), Some(note("a2")));

        // An aborted transaction leaves nothing behind.
        let err = s
            .write(|tx| {
                tx.put(Key::new().u64(3), &note("c"))?;
                tx.remove(Tree::Memories, &k1)?;
                tx.abort::<()>("bad input at line 3")
            })
            .unwrap_err();
        assert!(err.to_string().contains("line 3"));
        assert_eq!(s.count(Tree::Memories).unwrap(), 2);
        assert!(s.get::<Note>(Key::new().u64(3)).unwrap().is_none());
        assert!(s.get::<Note>(&k1).unwrap().is_some());

        s.write(|tx| tx.remove(Tree::Memories, &k1)).unwrap();
        assert_eq!(s.count(Tree::Memories).unwrap(), 1);
        let all: Vec<_> = s.scan::<Note>([]).map(|r| r.unwrap().1).collect();
        assert_eq!(all, vec![note("b")]);
    }

    #[test]
    fn bulk_writes_count_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.write(|tx| tx.put(Key::new().u64(1), &note("before")))
            .unwrap();
        let bulk = |from: u64| {
            let mut b = Bulk::new();
            for i in (from..from + 500).rev() {
                b.put_new(Key::new().u64(i), &note(&format!("n{i}")))
                    .unwrap();
                b.put_new_raw(Tree::Index, Key::new().u64(i), i.to_be_bytes());
            }
            b
        };
        let n = s
            .write_bulk(bulk(10), |tx| {
                tx.put(Key::new().u64(2), &note("small"))?;
                Ok(7)
            })
            .unwrap();
        assert_eq!(n, 7);
        assert_eq!(s.count(Tree::Memories).unwrap(), 502);
        assert_eq!(s.tree(Tree::Index).len(), 500);
        assert_eq!(
            s.get::<Note>(Key::new().u64(300)).unwrap(),
            Some(note("n300"))
        );
        assert!(s.tree_raw(Tree::Meta).get(UNDO_KEY).unwrap().is_none());

        // An aborted transaction takes the bulk records with it.
        let e = s
            .write_bulk(bulk(1000), |tx| tx.abort::<()>("no"))
            .unwrap_err();
        assert!(e.to_string().contains("no"));
        assert_eq!(s.count(Tree::Memories).unwrap(), 502);
        assert!(s.get::<Note>(Key::new().u64(1200)).unwrap().is_none());
        assert_eq!(s.tree(Tree::Index).len(), 500);

        // Killed after the records, before the transaction: the next open
        // removes them, and the store is as it was.
        let before: Vec<_> = Tree::ALL
            .iter()
            .flat_map(|t| s.tree_raw(*t).iter().map(|kv| kv.unwrap()))
            .collect();
        s.apply_bulk(&bulk(2000).records().collect::<Vec<_>>())
            .unwrap();
        assert!(s.get::<Note>(Key::new().u64(2200)).unwrap().is_some());
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let after: Vec<_> = Tree::ALL
            .iter()
            .flat_map(|t| s.tree_raw(*t).iter().map(|kv| kv.unwrap()))
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn bulk_writes_are_sealed_in_an_encrypted_store() {
        let dir = tempfile::tempdir().unwrap();
        let pass = Passphrase::new("bulk pass").unwrap();
        {
            let s = encrypted_store(dir.path(), &pass);
            let mut b = Bulk::new();
            for i in 0..50u64 {
                b.put_new(
                    Key::new().u64(i).str("marmalade"),
                    &note(&format!("secret {i}")),
                )
                .unwrap();
            }
            s.write_bulk(b, |_| Ok(())).unwrap();
            let raw: Vec<_> = s
                .tree_raw(Tree::Memories)
                .iter()
                .map(|kv| kv.unwrap())
                .collect();
            assert_eq!(raw.len(), 50);
            assert!(raw.iter().all(|(k, v)| {
                !k.windows(9).any(|w| w == b"marmalade") && !v.windows(6).any(|w| w == b"secret")
            }));
            // Killed half way: rolled back on open, with the passphrase not yet asked.
            let mut b = Bulk::new();
            b.put_new(Key::new().u64(99), &note("gone")).unwrap();
            s.apply_bulk(&b.records().collect::<Vec<_>>()).unwrap();
        }
        let s = Store::open_with(dir.path(), Some(&pass)).unwrap();
        assert_eq!(s.count(Tree::Memories).unwrap(), 50);
        assert_eq!(s.tree(Tree::Memories).len(), 50);
        let all: Vec<_> = s.scan::<Note>([]).map(|r| r.unwrap().1).collect();
        assert_eq!(all[3], note("secret 3"));
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Msg {
        text: String,
    }
    impl Record for Msg {
        const TREE: Tree = Tree::Messages;
    }

    fn msg(s: &str) -> Msg {
        Msg { text: s.into() }
    }

    fn mkey(i: u64) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[8..].copy_from_slice(&i.to_be_bytes());
        k
    }

    fn log_len(dir: &Path) -> u64 {
        let s = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .unwrap();
        s.metadata().unwrap().len()
    }

    fn bulk_of(from: u64, n: u64) -> Bulk {
        let mut b = Bulk::new();
        for i in from..from + n {
            b.put_new(mkey(i), &msg(&format!("m{i}"))).unwrap();
        }
        b
    }

    #[test]
    fn messages_live_in_the_log_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.write_bulk(bulk_of(0, 300), |_| Ok(())).unwrap();
            s.write(|tx| tx.put(mkey(1000), &msg("single"))).unwrap();
            assert!(s.tree_raw(Tree::Messages).is_empty());
            assert_eq!(s.count(Tree::Messages).unwrap(), 301);
            assert_eq!(s.get::<Msg>(mkey(7)).unwrap(), Some(msg("m7")));
            // Written again with the same bytes: nothing is added.
            let before = log_len(dir.path());
            let new = s.write(|tx| tx.put(mkey(7), &msg("m7"))).unwrap();
            assert!(!new);
            assert_eq!(log_len(dir.path()), before);
            // Changed and removed in one transaction, read back inside it.
            s.write(|tx| {
                tx.put(mkey(8), &msg("m8 edited"))?;
                assert_eq!(tx.get::<Msg>(mkey(8))?, Some(msg("m8 edited")));
                assert!(tx.remove(Tree::Messages, mkey(9))?);
                assert_eq!(tx.get::<Msg>(mkey(9))?, None);
                Ok(())
            })
            .unwrap();
            // An aborted transaction leaves the log as it was.
            s.write(|tx| {
                tx.put(mkey(5000), &msg("never"))?;
                tx.abort::<()>("no")
            })
            .unwrap_err();
            assert!(s.get::<Msg>(mkey(5000)).unwrap().is_none());
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.count(Tree::Messages).unwrap(), 300);
        assert_eq!(s.tree(Tree::Messages).len(), 300);
        assert_eq!(s.get::<Msg>(mkey(8)).unwrap(), Some(msg("m8 edited")));
        assert!(s.get::<Msg>(mkey(9)).unwrap().is_none());
        let all: Vec<_> = s.scan::<Msg>([]).map(|r| r.unwrap().0).collect();
        assert_eq!(all.len(), 300);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "key order");
        // Compaction drops the dead records and keeps the live ones.
        assert!(s.dead_message_bytes().unwrap() > 0);
        s.compact_messages().unwrap();
        assert_eq!(s.dead_message_bytes().unwrap(), 0);
        assert_eq!(s.get::<Msg>(mkey(8)).unwrap(), Some(msg("m8 edited")));
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.tree(Tree::Messages).len(), 300);
        assert_eq!(s.get::<Msg>(mkey(299)).unwrap(), Some(msg("m299")));
        assert!(
            !grep_dir(dir.path(), b"m8 edited").is_empty(),
            "live text is kept"
        );
    }

    fn tkey(conv: u64, at: u64, i: u64) -> Vec<u8> {
        let mut k = b"t".to_vec();
        k.extend_from_slice(&conv.to_be_bytes());
        k.extend_from_slice(&at.to_be_bytes());
        k.extend_from_slice(&mkey(i));
        k
    }

    #[test]
    fn the_timeline_lives_in_the_log_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let mut b = Bulk::new();
            // Written out of order, two conversations.
            for i in (0..50u64).rev() {
                b.put_new_raw(
                    Tree::Timeline,
                    tkey(1 + i % 2, 1000 + i, i),
                    i.to_be_bytes(),
                );
            }
            s.write_bulk(b, |_| Ok(())).unwrap();
            s.write(|tx| {
                tx.remove(Tree::Timeline, tkey(1, 1000, 0))?;
                tx.put_raw(
                    Tree::Timeline,
                    tkey(1, 1002, 2),
                    77u64.to_be_bytes().to_vec(),
                )
            })
            .unwrap();
            assert_eq!(
                s.count(Tree::Messages).unwrap(),
                0,
                "not counted as records"
            );
        }
        let s = Store::open(dir.path()).unwrap();
        let conv1: Vec<_> = s
            .tree(Tree::Timeline)
            .scan_prefix(&tkey(1, 0, 0)[..9])
            .map(|kv| kv.unwrap())
            .collect();
        assert_eq!(conv1.len(), 24);
        assert!(conv1.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(conv1[0].0.as_ref(), tkey(1, 1002, 2));
        assert_eq!(conv1[0].1.as_ref(), 77u64.to_be_bytes());
        assert_eq!(s.tree(Tree::Timeline).len(), 49);
        assert!(s.tree_raw(Tree::Index).is_empty());
        assert_eq!(
            s.tree(Tree::Timeline)
                .get(tkey(2, 1001, 1))
                .unwrap()
                .unwrap(),
            1u64.to_be_bytes()
        );
        s.compact_messages().unwrap();
        assert_eq!(s.tree(Tree::Timeline).len(), 49);
    }

    fn grep_dir(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut hits = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                hits.extend(grep_dir(&p, needle));
            } else if std::fs::read(&p)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(p);
            }
        }
        hits
    }

    #[test]
    fn removed_messages_leave_the_disk_when_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.write(|tx| tx.put(mkey(1), &msg("zanzibar secret")))
            .unwrap();
        s.write(|tx| tx.put(mkey(2), &msg("kept"))).unwrap();
        s.write(|tx| tx.remove(Tree::Messages, mkey(1))).unwrap();
        s.compact_messages().unwrap();
        assert!(grep_dir(dir.path(), b"zanzibar").is_empty());
        assert_eq!(s.get::<Msg>(mkey(2)).unwrap(), Some(msg("kept")));
    }

    #[test]
    fn an_uncommitted_append_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.write_bulk(bulk_of(0, 10), |_| Ok(())).unwrap();
            // Killed after appending, before the transaction committed.
            let mut b = log::LogBatch::default();
            b.put(Tree::Messages, mkey(99), &mkey(99), b"x", b"x");
            let _turn = s.log.lock_writer();
            s.log.append(&[&b]).unwrap();
        }
        let committed = log_len(dir.path());
        let s = Store::open(dir.path()).unwrap();
        assert!(log_len(dir.path()) < committed);
        assert!(s.get::<Msg>(mkey(99)).unwrap().is_none());
        assert_eq!(s.tree(Tree::Messages).len(), 10);
        // And the next write goes where the cut-off one was.
        s.write_bulk(bulk_of(10, 5), |_| Ok(())).unwrap();
        assert_eq!(s.get::<Msg>(mkey(12)).unwrap(), Some(msg("m12")));
    }

    #[test]
    fn a_stale_or_torn_index_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("messages.idx");
        drop({
            let s = Store::open(dir.path()).unwrap();
            s.write_bulk(bulk_of(0, 100), |_| Ok(())).unwrap();
            s
        });
        let old_index = std::fs::read(&idx).unwrap();
        drop({
            let s = Store::open(dir.path()).unwrap();
            s.write_bulk(bulk_of(100, 50), |_| Ok(())).unwrap();
            s.write(|tx| tx.remove(Tree::Messages, mkey(3))).unwrap();
            s
        });
        // An index from before the last writes (twin killed before saving it):
        // brought up to date from the log.
        std::fs::write(&idx, &old_index).unwrap();
        drop({
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.tree(Tree::Messages).len(), 149);
            assert_eq!(s.get::<Msg>(mkey(120)).unwrap(), Some(msg("m120")));
            assert!(s.get::<Msg>(mkey(3)).unwrap().is_none());
            s
        });
        // A torn one: rebuilt from the whole log.
        let mut torn = std::fs::read(&idx).unwrap();
        torn.truncate(torn.len() / 2);
        std::fs::write(&idx, &torn).unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.tree(Tree::Messages).len(), 149);
        assert_eq!(s.get::<Msg>(mkey(149)).unwrap(), Some(msg("m149")));
        // A flipped byte fails the checksum the same way.
        drop(s);
        let mut bad = std::fs::read(&idx).unwrap();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        std::fs::write(&idx, &bad).unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get::<Msg>(mkey(42)).unwrap(), Some(msg("m42")));
    }

    #[test]
    fn the_log_is_sealed_in_an_encrypted_store() {
        let dir = tempfile::tempdir().unwrap();
        let pass = Passphrase::new("log pass").unwrap();
        let mut key = [0u8; 16];
        key[..9].copy_from_slice(b"marmalade");
        {
            let s = encrypted_store(dir.path(), &pass);
            let mut b = Bulk::new();
            b.put_new(key, &msg("quokka secret")).unwrap();
            s.write_bulk(b, |_| Ok(())).unwrap();
            s.write(|tx| tx.put(mkey(2), &msg("wombat secret")))
                .unwrap();
        }
        for needle in [&b"quokka"[..], b"wombat", b"marmalade"] {
            assert!(grep_dir(dir.path(), needle).is_empty());
        }
        // Without its saved index too: rebuilt with the key.
        std::fs::remove_file(dir.path().join("messages.idx")).unwrap();
        let s = Store::open_with(dir.path(), Some(&pass)).unwrap();
        assert_eq!(s.get::<Msg>(key).unwrap(), Some(msg("quokka secret")));
        let all: Vec<_> = s.scan::<Msg>([]).map(|r| r.unwrap().1).collect();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.write(|tx| tx.put(Key::new().u64(9), &note("kept")))
                .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.get::<Note>(Key::new().u64(9)).unwrap(),
            Some(note("kept"))
        );
        assert_eq!(s.count(Tree::Memories).unwrap(), 1);
    }

    #[test]
    fn second_open_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("second open must fail");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::InUse { .. }), "{msg}");
        assert!(
            msg.contains("store in use by another twin process"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
    }

    #[test]
    fn lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        Store::open(dir.path()).unwrap();
    }
}
