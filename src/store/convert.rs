//! Whole-store operations: make a new encrypted store, encrypt an existing one
//! (crash-safe: a new store is written beside it and swapped in), change the
//! passphrase, and copy every record from one store to another.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::crypt::{self, KdfParams, Passphrase};
use super::{Store, StoreError, Tree, TxError, migrate};

/// Marker written into a finished replacement store before the swap.
const DONE: &str = "twin.complete";
const BATCH: usize = 1000;

fn sibling(dir: &Path, what: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    dir.with_file_name(format!(".{name}.{what}"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Finish or clean up a conversion that a crash interrupted. Called on every open.
pub fn recover(dir: &Path) -> Result<(), StoreError> {
    let new = sibling(dir, "new");
    let old = sibling(dir, "old");
    if !dir.exists() && new.join(DONE).is_file() {
        // Crashed between moving the old store aside and moving the new one in.
        std::fs::rename(&new, dir).map_err(io(dir))?;
    } else if new.exists() && dir.exists() {
        // Crashed while the new store was being written: the old one is intact.
        // (A conversion still running holds the new store's lock: leave it.)
        if super::lock::LockFile::acquire(&new.join("twin.lock"), "batch").is_ok() {
            std::fs::remove_dir_all(&new).map_err(io(&new))?;
        }
    }
    if old.exists() && dir.exists() {
        shred_dir(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Overwrite every file under `dir` with zeros, then remove it (best effort
/// against recovery of the plaintext from the old files).
pub(crate) fn shred_dir(dir: &Path) -> std::io::Result<()> {
    fn zero(p: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(p)?;
        if meta.is_dir() {
            for e in std::fs::read_dir(p)? {
                zero(&e?.path())?;
            }
        } else if meta.is_file() {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(p)?;
            let chunk = vec![0u8; 1 << 16];
            let mut left = meta.len();
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()?;
        }
        Ok(())
    }
    zero(dir)?;
    std::fs::remove_dir_all(dir)
}

/// What an encryption or import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    pub store: PathBuf,
    pub encrypted: bool,
    /// Records per tree (and `files` beside the store).
    pub counts: std::collections::BTreeMap<String, u64>,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u64 = self.counts.values().sum();
        write!(
            f,
            "{} records in {}{}",
            total,
            self.store.display(),
            if self.encrypted { " (encrypted)" } else { "" }
        )
    }
}

impl crate::jobs::Summary for CopyReport {}

/// Copy every record (every tree but `meta`) and every file beside the store
/// from `from` into `to`, `on_batch` told the records copied so far.
pub fn copy_all(
    from: &Store,
    to: &Store,
    mut on_batch: impl FnMut(u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut done = 0u64;
    for tree in Tree::ALL.into_iter().filter(|t| *t != Tree::Meta) {
        let mut batch: Vec<(sled::IVec, sled::IVec)> = Vec::with_capacity(BATCH);
        let mut flush = |batch: &mut Vec<(sled::IVec, sled::IVec)>| -> Result<(), StoreError> {
            to.write(|tx| {
                for (k, v) in batch.iter() {
                    tx.put_raw(tree, k, v.to_vec())?;
                }
                Ok::<_, TxError>(())
            })?;
            done += batch.len() as u64;
            batch.clear();
            on_batch(done)
        };
        for kv in from.tree(tree).iter() {
            batch.push(kv?);
            if batch.len() >= BATCH {
                flush(&mut batch)?;
            }
        }
        flush(&mut batch)?;
    }
    for name in from.file_names()? {
        if let Some(bytes) = from.read_file(&name)? {
            to.write_file(&name, &bytes)?;
        }
    }
    to.recount()?;
    to.flush()
}

fn report(store: &Store) -> Result<CopyReport, StoreError> {
    let mut counts: std::collections::BTreeMap<String, u64> = store
        .counts()?
        .into_iter()
        .map(|(t, n)| (t.name().to_string(), n))
        .collect();
    counts.insert("index".into(), store.tree_raw(Tree::Index).len() as u64);
    counts.insert("timeline".into(), store.tree(Tree::Timeline).len() as u64);
    counts.insert("files".into(), store.file_names()?.len() as u64);
    Ok(CopyReport {
        store: store.dir().to_path_buf(),
        encrypted: store.is_encrypted(),
        counts,
    })
}

/// Make `dir` a new, empty, encrypted store. Refuses a store that holds records.
pub fn init_encrypted(dir: &Path, pass: &Passphrase, kdf: KdfParams) -> Result<Store, StoreError> {
    recover(dir)?;
    let mut store = Store::open_raw(dir, "batch")?;
    if store.crypt_header()?.is_some() {
        return Err(StoreError::Aborted(format!(
            "the store {} is already encrypted; `twin rekey` changes its passphrase",
            dir.display()
        )));
    }
    if Tree::ALL
        .iter()
        .any(|t| *t != Tree::Meta && !store.tree(*t).is_empty())
    {
        return Err(StoreError::Aborted(format!(
            "the store {} already holds data; `twin encrypt` encrypts it in place",
            dir.display()
        )));
    }
    let dk = crypt::random::<32>()?;
    store.set_crypt_header(&crypt::wrap(&dk, pass, kdf)?)?;
    store.crypt = Some(std::sync::Arc::new(crypt::Crypt::new(&dk)));
    migrate::run(&store, migrate::MIGRATIONS)?;
    Ok(store)
}

/// Encrypt the plain store in `dir`: write an encrypted copy beside it, check
/// that every count matches, swap it in, and wipe the old files. A crash at
/// any point leaves either the old store or the new one, never neither.
pub fn encrypt(
    dir: &Path,
    pass: &Passphrase,
    kdf: KdfParams,
    progress: impl FnMut(u64) -> Result<(), StoreError>,
) -> Result<CopyReport, StoreError> {
    recover(dir)?;
    let old = Store::open_raw(dir, "batch")?;
    if old.crypt_header()?.is_some() {
        return Err(StoreError::Aborted(format!(
            "the store {} is already encrypted; `twin rekey` changes its passphrase",
            dir.display()
        )));
    }
    migrate::run(&old, migrate::MIGRATIONS)?;
    let new_dir = sibling(dir, "new");
    if new_dir.exists() {
        std::fs::remove_dir_all(&new_dir).map_err(io(&new_dir))?;
    }
    let new = init_encrypted(&new_dir, pass, kdf)?;
    copy_all(&old, &new, progress)?;
    let (want, got) = (report(&old)?, report(&new)?);
    if want.counts != got.counts {
        return Err(StoreError::Aborted(format!(
            "the encrypted copy does not match the store ({:?} vs {:?}); nothing was changed",
            got.counts, want.counts
        )));
    }
    drop(new);
    crate::paths::write_private(&new_dir.join(DONE), b"complete\n").map_err(io(&new_dir))?;
    let aside = sibling(dir, "old");
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(io(&aside))?;
    }
    std::fs::rename(dir, &aside).map_err(io(dir))?;
    std::fs::rename(&new_dir, dir).map_err(io(dir))?;
    drop(old);
    let _ = std::fs::remove_file(dir.join(DONE));
    shred_dir(&aside).map_err(io(&aside))?;
    let store = Store::open_with(dir, Some(pass))?;
    report(&store)
}

/// Change the passphrase of the encrypted store in `dir`: the data key is
/// re-wrapped, nothing else is rewritten. A wrong old passphrase changes nothing.
pub fn rekey(
    dir: &Path,
    old: &Passphrase,
    new: &Passphrase,
    kdf: KdfParams,
) -> Result<(), StoreError> {
    recover(dir)?;
    let store = Store::open_raw(dir, "batch")?;
    let Some(header) = store.crypt_header()? else {
        return Err(StoreError::Aborted(format!(
            "the store {} is not encrypted; `twin encrypt` encrypts it",
            dir.display()
        )));
    };
    let dk = crypt::unwrap(&header, old, &dir.display().to_string())?;
    store.set_crypt_header(&crypt::wrap(&dk, new, kdf)?)?;
    crypt::forget_cached_keys();
    Ok(())
}

/// The records of `store` for a report (counts per tree, index entries, files).
pub fn summary(store: &Store) -> Result<CopyReport, StoreError> {
    report(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Key, Record};
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Note {
        text: String,
    }
    impl Record for Note {
        const TREE: Tree = Tree::Memories;
    }

    fn kdf() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn grep(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut hits = Vec::new();
        for e in walk(dir) {
            let b = std::fs::read(&e).unwrap();
            if b.windows(needle.len()).any(|w| w == needle) {
                hits.push(e);
            }
        }
        hits
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn encrypting_keeps_every_record_and_hides_them() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("store");
        {
            let s = Store::open(&dir).unwrap();
            s.write(|tx| {
                for i in 0..2500u64 {
                    tx.put(
                        Key::new().u64(i).str("Zanzibar"),
                        &Note {
                            text: format!("marmalade sandwiches {i}"),
                        },
                    )?;
                }
                tx.put_raw(
                    Tree::Index,
                    Key::new().bytes(b"a").str("name:zanzibar"),
                    vec![1; 8],
                )
            })
            .unwrap();
            s.write_file("index.bin", b"marmalade index").unwrap();
        }
        let pass = Passphrase::new("correct horse").unwrap();
        let r = encrypt(&dir, &pass, kdf(), |_| Ok(())).unwrap();
        assert_eq!(r.counts["memories"], 2500);
        assert_eq!(r.counts["files"], 1);
        for needle in [&b"marmalade"[..], b"Zanzibar", b"zanzibar"] {
            assert!(grep(home.path(), needle).is_empty(), "{needle:?} found");
        }
        assert!(!sibling(&dir, "old").exists() && !sibling(&dir, "new").exists());
        let s = Store::open_with(&dir, Some(&pass)).unwrap();
        assert!(s.is_encrypted());
        let all: Vec<_> = s.scan::<Note>([]).map(|r| r.unwrap()).collect();
        assert_eq!(all.len(), 2500);
        // Still in key order, and keys come back as written.
        assert_eq!(
            all[7].0.as_ref(),
            Key::new().u64(7).str("Zanzibar").as_ref()
        );
        assert_eq!(all[7].1.text, "marmalade sandwiches 7");
        let idx: Vec<_> = s.tree(Tree::Index).scan_prefix(b"a").collect();
        assert_eq!(idx.len(), 1);
        assert_eq!(
            s.read_file("index.bin").unwrap().unwrap(),
            b"marmalade index"
        );
        assert_eq!(s.count(Tree::Memories).unwrap(), 2500);
    }

    #[test]
    fn wrong_passphrase_changes_nothing_and_rekey_rewraps() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("store");
        let a = Passphrase::new("first pass").unwrap();
        let b = Passphrase::new("second pass").unwrap();
        {
            let s = init_encrypted(&dir, &a, kdf()).unwrap();
            s.write(|tx| {
                tx.put(
                    Key::new().u64(1),
                    &Note {
                        text: "kept".into(),
                    },
                )
            })
            .unwrap();
        }
        crypt::forget_cached_keys();
        let header = |dir: &Path| {
            let s = Store::open_raw(dir, "batch").unwrap();
            s.crypt_header().unwrap().unwrap().wrapped
        };
        let before = header(&dir);
        let e = Store::open_with(&dir, Some(&b)).err().unwrap();
        assert!(e.to_string().contains("wrong passphrase"), "{e}");
        assert!(e.to_string().contains("nothing was changed"), "{e}");
        let e = rekey(&dir, &b, &a, kdf()).unwrap_err();
        assert!(e.to_string().contains("wrong passphrase"), "{e}");
        assert!(header(&dir) == before, "the wrapped key changed");
        {
            let s = Store::open_with(&dir, Some(&a)).unwrap();
            assert_eq!(
                s.get::<Note>(Key::new().u64(1)).unwrap().unwrap().text,
                "kept"
            );
        }
        rekey(&dir, &a, &b, kdf()).unwrap();
        assert!(Store::open_with(&dir, Some(&a)).is_err());
        let s = Store::open_with(&dir, Some(&b)).unwrap();
        assert_eq!(
            s.get::<Note>(Key::new().u64(1)).unwrap().unwrap().text,
            "kept"
        );
    }

    #[test]
    fn an_interrupted_swap_is_finished_on_open() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("store");
        let pass = Passphrase::new("pass word").unwrap();
        {
            let s = init_encrypted(&sibling(&dir, "new"), &pass, kdf()).unwrap();
            s.write(|tx| tx.put(Key::new().u64(1), &Note { text: "new".into() }))
                .unwrap();
        }
        std::fs::write(sibling(&dir, "new").join(DONE), b"complete\n").unwrap();
        // The old store was moved aside, the new one not yet moved in.
        let s = Store::open_with(&dir, Some(&pass)).unwrap();
        assert!(s.is_encrypted());
        assert_eq!(s.count(Tree::Memories).unwrap(), 1);
    }
}
