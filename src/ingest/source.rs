//! A folder, a zip archive or a single file, seen the same way: a sorted list
//! of relative paths that can be opened for reading.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files an importer can read, by path relative to [`Source::root`].
pub trait Source: Send + Sync {
    /// The folder, zip or file the user named.
    fn root(&self) -> &Path;
    /// Every file, relative to the root, sorted; `/` separated for zips.
    fn files(&self) -> &[PathBuf];
    /// Open a file for streaming reads.
    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + '_>>;
    /// The file's size in bytes, when known.
    fn size(&self, rel: &Path) -> Option<u64>;

    /// A whole file, for formats that are parsed whole (one JSON document):
    /// mapped from disk where the file is on disk, so a 1 GB export is paged in
    /// and dropped behind the parser by the kernel instead of sitting in memory;
    /// read into memory otherwise (a zip entry).
    fn bytes(&self, rel: &Path) -> io::Result<FileBytes> {
        let hint = self.size(rel).unwrap_or(0).min(1 << 30) as usize;
        let mut buf = Vec::with_capacity(hint);
        self.open(rel)?.read_to_end(&mut buf)?;
        Ok(FileBytes::Owned(buf))
    }

    /// The first `n` bytes of a file (for sniffing formats).
    fn head(&self, rel: &Path, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(n);
        self.open(rel)?.take(n as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// A whole file as text (UTF-8, BOM removed, invalid bytes replaced).
    fn read_string(&self, rel: &Path) -> io::Result<String> {
        let mut bytes = Vec::new();
        self.open(rel)?.read_to_end(&mut bytes)?;
        let s = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(s.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(s))
    }

    /// How to name a file in messages: `root/rel`, or `root!rel` inside a zip.
    fn display(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.root().to_path_buf()
        } else {
            self.root().join(rel)
        }
    }
}

/// A whole file's bytes: see [`Source::bytes`].
pub enum FileBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

/// Map a file read-only for one sequential pass.
fn map_file(path: &Path) -> io::Result<FileBytes> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        // An empty file cannot be mapped.
        return Ok(FileBytes::Owned(Vec::new()));
    }
    // SAFETY: the map is read-only and lives only while one importer parses
    // the file; an export that another program truncates meanwhile is outside
    // what twin can guard against (the same holds for any reader of it).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    // Read ahead, and let the kernel drop pages the parser has passed.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(FileBytes::Mapped(map))
}

/// Open `path` as a source: a zip archive, a folder (walked recursively,
/// hidden `.git` folders skipped), or one file.
pub fn open_source(path: &Path) -> io::Result<Box<dyn Source>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Ok(Box::new(DirSource::new(path)?));
    }
    let mut magic = [0u8; 4];
    let n = File::open(path)?.read(&mut magic)?;
    if n == 4 && &magic == b"PK\x03\x04" {
        return Ok(Box::new(ZipSource::new(path)?));
    }
    Ok(Box::new(FileSource {
        path: path.to_path_buf(),
        files: vec![PathBuf::new()],
        size: meta.len(),
    }))
}

/// One file: its relative path is empty.
struct FileSource {
    path: PathBuf,
    files: Vec<PathBuf>,
    size: u64,
}

impl Source for FileSource {
    fn root(&self) -> &Path {
        &self.path
    }
    fn files(&self) -> &[PathBuf] {
        &self.files
    }
    fn open(&self, _rel: &Path) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(&self.path)?,
        )))
    }
    fn size(&self, _rel: &Path) -> Option<u64> {
        Some(self.size)
    }
    fn bytes(&self, _rel: &Path) -> io::Result<FileBytes> {
        map_file(&self.path)
    }
}

struct DirSource {
    root: PathBuf,
    files: Vec<PathBuf>,
}

impl DirSource {
    fn new(root: &Path) -> io::Result<DirSource> {
        let mut files = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for entry in std::fs::read_dir(root.join(&rel))? {
                let entry = entry?;
                let name = entry.file_name();
                if name == ".git" || name == ".trash" {
                    continue;
                }
                let child = rel.join(&name);
                let ft = entry.file_type()?;
                if ft.is_dir() {
                    stack.push(child);
                } else if ft.is_file() || (ft.is_symlink() && entry.path().is_file()) {
                    files.push(child);
                }
            }
        }
        files.sort();
        Ok(DirSource {
            root: root.to_path_buf(),
            files,
        })
    }
}

impl Source for DirSource {
    fn root(&self) -> &Path {
        &self.root
    }
    fn files(&self) -> &[PathBuf] {
        &self.files
    }
    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(self.root.join(rel))?,
        )))
    }
    fn size(&self, rel: &Path) -> Option<u64> {
        std::fs::metadata(self.root.join(rel)).ok().map(|m| m.len())
    }
    fn bytes(&self, rel: &Path) -> io::Result<FileBytes> {
        map_file(&self.root.join(rel))
    }
}

struct ZipSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    archive: Mutex<zip::ZipArchive<BufReader<File>>>,
}

impl ZipSource {
    fn new(path: &Path) -> io::Result<ZipSource> {
        let archive = zip::ZipArchive::new(BufReader::new(File::open(path)?)).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a readable zip: {e}", path.display()),
            )
        })?;
        let mut files: Vec<PathBuf> = archive
            .file_names()
            .filter_map(|n| n.ok())
            .filter(|n| !n.ends_with('/') && !n.starts_with("__MACOSX/"))
            .map(|n| PathBuf::from(n.as_ref()))
            .collect();
        files.sort();
        Ok(ZipSource {
            root: path.to_path_buf(),
            files,
            archive: Mutex::new(archive),
        })
    }
}

impl Source for ZipSource {
    fn root(&self) -> &Path {
        &self.root
    }
    fn files(&self) -> &[PathBuf] {
        &self.files
    }
    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + '_>> {
        // Entries are read one at a time under the lock; stream them through a
        // pipe-like buffer so a huge entry does not sit in memory whole.
        let name = rel.to_string_lossy().into_owned();
        Ok(Box::new(ZipEntryReader {
            src: self,
            name,
            offset: 0,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }))
    }
    fn size(&self, rel: &Path) -> Option<u64> {
        let mut a = self.archive.lock().ok()?;
        let f = a.by_name(&rel.to_string_lossy()).ok()?;
        Some(f.size())
    }
    fn display(&self, rel: &Path) -> PathBuf {
        PathBuf::from(format!("{}!{}", self.root.display(), rel.display()))
    }
}

/// Reads a zip entry in 1 MiB chunks, re-opening it under the lock for each
/// chunk, so several readers can interleave and memory stays flat.
struct ZipEntryReader<'a> {
    src: &'a ZipSource,
    name: String,
    offset: u64,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

const ZIP_CHUNK: u64 = 1 << 20;

impl Read for ZipEntryReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            let mut archive = self
                .src
                .archive
                .lock()
                .map_err(|_| io::Error::other("zip lock poisoned"))?;
            let mut entry = archive.by_name(&self.name).map_err(|e| {
                io::Error::new(io::ErrorKind::NotFound, format!("{}: {e}", self.name))
            })?;
            io::copy(&mut (&mut entry).take(self.offset), &mut io::sink())?;
            self.buf.clear();
            self.pos = 0;
            (&mut entry).take(ZIP_CHUNK).read_to_end(&mut self.buf)?;
            self.offset += self.buf.len() as u64;
            self.done = (self.buf.len() as u64) < ZIP_CHUNK;
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_folder_lists_files_recursively_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("b/c/x.txt"), "x").unwrap();
        std::fs::write(dir.path().join("a.txt"), "\u{feff}hello").unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        let src = open_source(dir.path()).unwrap();
        assert_eq!(
            src.files(),
            &[PathBuf::from("a.txt"), PathBuf::from("b/c/x.txt")]
        );
        assert_eq!(src.read_string(Path::new("a.txt")).unwrap(), "hello");
        assert_eq!(src.size(Path::new("a.txt")), Some(8));
    }

    #[test]
    fn whole_files_on_disk_are_mapped_and_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("result.json"), &big).unwrap();
        std::fs::write(dir.path().join("empty.json"), b"").unwrap();
        let src = open_source(dir.path()).unwrap();
        let bytes = src.bytes(Path::new("result.json")).unwrap();
        assert!(matches!(bytes, FileBytes::Mapped(_)));
        assert_eq!(&bytes[..], &big[..]);
        assert!(src.bytes(Path::new("empty.json")).unwrap().is_empty());
        assert!(src.bytes(Path::new("missing.json")).is_err());
        let one = open_source(&dir.path().join("result.json")).unwrap();
        assert_eq!(&one.bytes(Path::new("")).unwrap()[..], &big[..]);
    }

    #[test]
    fn a_single_file_has_an_empty_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chat.txt");
        std::fs::write(&f, "hi").unwrap();
        let src = open_source(&f).unwrap();
        assert_eq!(src.files(), &[PathBuf::new()]);
        assert_eq!(src.read_string(Path::new("")).unwrap(), "hi");
        assert_eq!(src.display(Path::new("")), f);
    }

    #[test]
    fn a_zip_reads_like_a_folder_even_for_big_entries() {
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("export.zip");
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut w = zip::ZipWriter::new(File::create(&z).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            w.start_file("_chat.txt", opts).unwrap();
            w.write_all(b"hello").unwrap();
            w.start_file("media/big.bin", opts).unwrap();
            w.write_all(&big).unwrap();
            w.add_directory("empty/", opts).unwrap();
            w.finish().unwrap();
        }
        let src = open_source(&z).unwrap();
        assert_eq!(
            src.files(),
            &[PathBuf::from("_chat.txt"), PathBuf::from("media/big.bin")]
        );
        assert_eq!(src.read_string(Path::new("_chat.txt")).unwrap(), "hello");
        let mut back = Vec::new();
        src.open(Path::new("media/big.bin"))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, big);
        assert_eq!(src.head(Path::new("media/big.bin"), 3).unwrap(), &big[..3]);
        let whole = src.bytes(Path::new("media/big.bin")).unwrap();
        assert!(matches!(whole, FileBytes::Owned(_)));
        assert_eq!(&whole[..], &big[..]);
        assert!(
            src.display(Path::new("_chat.txt"))
                .to_string_lossy()
                .ends_with("export.zip!_chat.txt")
        );
    }
}
