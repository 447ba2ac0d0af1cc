//! Export everything: a portable, diffable bundle of the whole store, and its
//! exact restore into an empty home.
//!
//! ```text
//! DIR/manifest.json          format, schema version, counts and BLAKE2b-256 of every file
//! DIR/trees/<tree>.jsonl     one line per record, in key order: {"key": hex, "version": n,
//!                            "value": {...}} — plus "raw" (hex of the stored bytes) when
//!                            the value alone would not give back the same bytes
//! DIR/memories.md            the memories as Markdown (when there are any)
//! DIR/files/<name>           the files kept beside the store (index dump, adapters), opened
//! ```
//!
//! Every tree of [`Tree::ALL`] but `meta` is written, so trees added later are
//! exported and restored without code of their own. Nothing in a bundle
//! depends on the time or the home it came from: exporting a restored home
//! gives the same bundle byte for byte.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::value::{self, Value};
use crate::ingest::records::Message;
use crate::jobs::{JobCtx, Level};
use crate::store::{Record, Store, Tree, TxError, migrate};

pub const FORMAT: &str = "twin-bundle";
pub const BUNDLE_VERSION: u32 = 1;
const BATCH: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub bundle_version: u32,
    pub schema_version: u32,
    pub twin: String,
    /// Per tree: file, records, hash.
    pub trees: BTreeMap<String, TreeEntry>,
    /// Files beside the store, with where they came from.
    pub files: Vec<FileEntry>,
    /// Other files of the bundle (memories.md), with their hashes.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TreeEntry {
    pub file: String,
    pub records: u64,
    pub blake2b: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub name: String,
    /// Where it was: relative to the store folder.
    pub from: String,
    pub bytes: u64,
    pub blake2b: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
}

/// What `export` wrote or `import-bundle` restored.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    pub dir: PathBuf,
    pub records: BTreeMap<String, u64>,
    pub files: u64,
    pub encrypted_store: bool,
}

impl std::fmt::Display for BundleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u64 = self.records.values().sum();
        write!(
            f,
            "{total} records in {} trees and {} files: {}",
            self.records.len(),
            self.files,
            self.dir.display()
        )
    }
}

impl crate::jobs::Summary for BundleReport {}

pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// BLAKE2b-256 of bytes, hex.
pub fn digest(bytes: &[u8]) -> String {
    use blake2::Digest;
    hex(&blake2::Blake2b::<blake2::digest::consts::U32>::digest(
        bytes,
    ))
}

fn tree_by_name(name: &str) -> Option<Tree> {
    Tree::ALL.into_iter().find(|t| t.name() == name)
}

/// A message in its compact stored form (not MessagePack) as the
/// MessagePack form with field names it had before (version 1), so a bundle
/// shows it as JSON like every other record; import stores that form, which
/// twin reads as the same message.
fn readable_message(stored: &[u8]) -> Option<Vec<u8>> {
    if stored.first() != Some(&<Message as Record>::VERSION) {
        return None;
    }
    let m = crate::store::codec::decode::<Message>(stored).ok()?;
    let mut out = vec![1u8];
    rmp_serde::encode::write_named(&mut out, &m).ok()?;
    Some(out)
}

/// One record as a bundle line.
fn line_for(tree: Tree, key: &[u8], stored: &[u8]) -> Line {
    let readable = if tree == Tree::Messages {
        readable_message(stored)
    } else {
        None
    };
    let stored = readable.as_deref().unwrap_or(stored);
    let mut line = Line {
        key: hex(key),
        version: None,
        value: None,
        raw: None,
    };
    if let Some((version, v)) = value::decode_record(stored)
        && let Ok(text) = serde_json::to_string(&v)
    {
        // Would import give back the same bytes from the JSON alone?
        let back: Option<Value> = serde_json::from_str(&text).ok();
        let exact = back
            .and_then(|b| value::encode_record(version, &b).ok())
            .is_some_and(|b| b == stored);
        line.version = Some(version);
        line.value = Some(v);
        if !exact {
            line.raw = Some(hex(stored));
        }
    } else {
        line.raw = Some(hex(stored));
    }
    line
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    crate::paths::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Write the bundle of `store` into `dir` (which must be empty or absent).
pub fn export(store: &Store, dir: &Path, ctx: &JobCtx) -> anyhow::Result<BundleReport> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; export into a new folder so no older bundle is mixed in",
            dir.display()
        );
    }
    create_dir(&dir.join("trees"))?;
    let total: u64 = Tree::ALL
        .iter()
        .filter(|t| **t != Tree::Meta)
        .map(|t| store.tree(*t).len() as u64)
        .sum();
    let mut manifest = Manifest {
        format: FORMAT.into(),
        bundle_version: BUNDLE_VERSION,
        schema_version: store.schema_version()?.unwrap_or(migrate::SCHEMA_VERSION),
        twin: env!("CARGO_PKG_VERSION").into(),
        trees: BTreeMap::new(),
        files: Vec::new(),
        extra: BTreeMap::new(),
    };
    let mut records = BTreeMap::new();
    let mut done = 0u64;
    let mut memories_md = String::new();
    for tree in Tree::ALL.into_iter().filter(|t| *t != Tree::Meta) {
        ctx.check_cancelled()?;
        let name = format!("trees/{}.jsonl", tree.name());
        let mut out = Vec::new();
        let mut n = 0u64;
        for kv in store.tree(tree).iter() {
            let (k, v) = kv?;
            let line = line_for(tree, &k, &v);
            if tree == Tree::Memories {
                memory_markdown(&mut memories_md, &line);
            }
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
            n += 1;
            done += 1;
            if done.is_multiple_of(5000) {
                ctx.progress(done, Some(total), "records");
            }
        }
        std::fs::write(dir.join(&name), &out)
            .with_context(|| format!("cannot write {}", dir.join(&name).display()))?;
        manifest.trees.insert(
            tree.name().into(),
            TreeEntry {
                file: name,
                records: n,
                blake2b: digest(&out),
            },
        );
        records.insert(tree.name().to_string(), n);
    }
    if !memories_md.is_empty() {
        let md = format!("# Memories\n\n{memories_md}");
        std::fs::write(dir.join("memories.md"), &md)?;
        manifest
            .extra
            .insert("memories.md".into(), digest(md.as_bytes()));
    }
    let names = store.file_names()?;
    if !names.is_empty() {
        create_dir(&dir.join("files"))?;
    }
    for name in &names {
        let bytes = store
            .read_file(name)?
            .ok_or_else(|| anyhow!("{name} vanished from beside the store while exporting"))?;
        std::fs::write(dir.join("files").join(name), &bytes)?;
        manifest.files.push(FileEntry {
            name: name.clone(),
            from: format!("{}/{name}", crate::store::FILES_DIR),
            bytes: bytes.len() as u64,
            blake2b: digest(&bytes),
        });
    }
    let mut m = serde_json::to_vec_pretty(&manifest)?;
    m.push(b'\n');
    std::fs::write(dir.join("manifest.json"), m)?;
    ctx.progress(total, Some(total), "records");
    if store.is_encrypted() {
        ctx.log(
            Level::Warn,
            format!(
                "the bundle in {} is not encrypted: keep it somewhere private",
                dir.display()
            ),
        );
    }
    Ok(BundleReport {
        dir: dir.to_path_buf(),
        records,
        files: names.len() as u64,
        encrypted_store: store.is_encrypted(),
    })
}

fn memory_markdown(md: &mut String, line: &Line) {
    use std::fmt::Write;
    let _ = writeln!(md, "## {}\n", line.key);
    match &line.value {
        Some(v @ Value::Map(fields)) => {
            if let Some(text) = v.field("text").and_then(Value::as_str) {
                let _ = writeln!(md, "{text}\n");
            }
            for (k, val) in fields {
                if matches!(k, Value::Str(s) if s == "text") {
                    continue;
                }
                let key = serde_json::to_string(k).unwrap_or_default();
                let val = serde_json::to_string(val).unwrap_or_default();
                let _ = writeln!(md, "- {}: {val}", key.trim_matches('"'));
            }
            md.push('\n');
        }
        Some(v) => {
            let _ = writeln!(md, "{}\n", serde_json::to_string(v).unwrap_or_default());
        }
        None => md.push_str("(binary)\n\n"),
    }
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} has no manifest.json: is it a bundle written by `twin export`?",
            dir.display()
        )
    })?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{}:{}: {e}; the manifest is damaged — export again",
            path.display(),
            e.line()
        )
    })?;
    if m.format != FORMAT || m.bundle_version > BUNDLE_VERSION {
        bail!(
            "{}: a {} version {} bundle; this twin reads {FORMAT} up to version {BUNDLE_VERSION}",
            path.display(),
            m.format,
            m.bundle_version
        );
    }
    if m.schema_version != migrate::SCHEMA_VERSION {
        bail!(
            "{}: the bundle has store schema version {}, this twin writes {}; import it with the twin that exported it, then export again",
            path.display(),
            m.schema_version,
            migrate::SCHEMA_VERSION
        );
    }
    Ok(m)
}

/// Whether the store holds anything at all (records or files).
pub fn is_empty(store: &Store) -> anyhow::Result<bool> {
    Ok(Tree::ALL
        .iter()
        .all(|t| *t == Tree::Meta || store.tree(*t).is_empty())
        && store.file_names()?.is_empty())
}

/// One parsed record: (key, stored bytes).
fn parse_line(path: &Path, no: usize, text: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let at = || format!("{}:{no}", path.display());
    let line: Line = serde_json::from_str(text)
        .map_err(|e| anyhow!("{}: {e}; fix or remove that line and import again", at()))?;
    let key = unhex(&line.key).ok_or_else(|| {
        anyhow!(
            "{}: the key is not hex; fix that line and import again",
            at()
        )
    })?;
    let bytes = match (&line.raw, line.version, &line.value) {
        (Some(raw), _, _) => unhex(raw)
            .ok_or_else(|| anyhow!("{}: `raw` is not hex; fix that line and import again", at()))?,
        (None, Some(version), Some(v)) => value::encode_record(version, v)
            .map_err(|e| anyhow!("{}: {e}; fix that line and import again", at()))?,
        _ => bail!(
            "{}: a record needs `raw` or `version` and `value`; fix that line and import again",
            at()
        ),
    };
    Ok((key, bytes))
}

/// Restore the bundle in `dir` into `store`, which must be empty. Everything
/// is checked (hashes, every line) before anything is written.
pub fn import(store: &Store, dir: &Path, ctx: &JobCtx) -> anyhow::Result<BundleReport> {
    let manifest = read_manifest(dir)?;
    if !is_empty(store)? {
        bail!(
            "the store {} is not empty: import a bundle only into a new home (`twin --home NEW_DIR --batch import-bundle {}`)",
            store.dir().display(),
            dir.display()
        );
    }
    // Check every file before writing anything.
    let mut total = 0u64;
    for (name, entry) in &manifest.trees {
        if tree_by_name(name).is_none_or(|t| t == Tree::Meta) {
            bail!(
                "{}: tree `{name}` is unknown to this twin; upgrade twin to import it",
                dir.join("manifest.json").display()
            );
        }
        let path = dir.join(&entry.file);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if digest(&bytes) != entry.blake2b {
            bail!(
                "{} does not match its hash in manifest.json: the bundle was changed or damaged; export again",
                path.display()
            );
        }
        for (i, l) in bytes.lines().enumerate() {
            let l = l.with_context(|| format!("{}:{}", path.display(), i + 1))?;
            if !l.trim().is_empty() {
                parse_line(&path, i + 1, &l)?;
                total += 1;
            }
        }
    }
    for f in &manifest.files {
        if f.name.contains('/') || f.name.starts_with('.') {
            bail!(
                "manifest.json names a file `{}` that is not a plain name",
                f.name
            );
        }
        let path = dir.join("files").join(&f.name);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if digest(&bytes) != f.blake2b {
            bail!(
                "{} does not match its hash in manifest.json: the bundle was changed or damaged",
                path.display()
            );
        }
    }
    let mut records = BTreeMap::new();
    let mut done = 0u64;
    for (name, entry) in &manifest.trees {
        let tree = tree_by_name(name).expect("checked above");
        let path = dir.join(&entry.file);
        let file = std::fs::File::open(&path)?;
        let mut batch = Vec::with_capacity(BATCH);
        let mut n = 0u64;
        let write = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>| -> anyhow::Result<()> {
            store.write(|tx| {
                for (k, v) in batch.iter() {
                    tx.put_raw(tree, k, v.clone())?;
                }
                Ok::<_, TxError>(())
            })?;
            batch.clear();
            Ok(())
        };
        for (i, l) in std::io::BufReader::new(file).lines().enumerate() {
            let l = l?;
            if l.trim().is_empty() {
                continue;
            }
            batch.push(parse_line(&path, i + 1, &l)?);
            n += 1;
            done += 1;
            if batch.len() >= BATCH {
                ctx.check_cancelled()?;
                write(&mut batch)?;
                ctx.progress(done, Some(total), "records");
            }
        }
        write(&mut batch)?;
        records.insert(name.clone(), n);
    }
    for f in &manifest.files {
        let bytes = std::fs::read(dir.join("files").join(&f.name))?;
        store.write_file(&f.name, &bytes)?;
    }
    store.recount()?;
    store.flush()?;
    ctx.progress(total, Some(total), "records");
    Ok(BundleReport {
        dir: dir.to_path_buf(),
        records,
        files: manifest.files.len() as u64,
        encrypted_store: store.is_encrypted(),
    })
}
