//! Plain bytes handed to code that wants a file path (llama.cpp loading a LoRA
//! adapter) without writing them to disk: an anonymous in-memory file
//! (`memfd_create`, Linux >= 3.17), opened by path as `/proc/self/fd/N`. Where
//! that is not available (another OS, a kernel or sandbox without memfd or
//! /proc) a private temporary file (0600, in a 0700 folder of twin's state
//! folder) takes its place and is removed when the [`MemFile`] is dropped —
//! right after the load.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The bytes, reachable by [`MemFile::path`] until dropped.
#[derive(Debug)]
pub struct MemFile {
    path: PathBuf,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    #[cfg(target_os = "linux")]
    Memfd(#[allow(dead_code)] std::fs::File),
    Temp,
}

impl MemFile {
    /// Put `bytes` where a path reaches them; `name` shows in /proc (no secret in it).
    /// `fallback_dir` holds the temporary file when no in-memory file can be made.
    pub fn new(name: &str, bytes: &[u8], fallback_dir: &Path) -> std::io::Result<MemFile> {
        #[cfg(target_os = "linux")]
        {
            if let Some(f) = memfd(name, bytes) {
                return Ok(f);
            }
        }
        let dir = fallback_dir.to_path_buf();
        crate::paths::create_private_dir(&dir)?;
        let rnd =
            crate::store::crypt::random::<8>().map_err(|e| std::io::Error::other(e.to_string()))?;
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!(".{name}-{hex}"));
        crate::paths::write_private(&path, bytes)?;
        Ok(MemFile {
            path,
            inner: Inner::Temp,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the bytes live only in memory (not in a temporary file).
    pub fn in_memory(&self) -> bool {
        !matches!(self.inner, Inner::Temp)
    }
}

#[cfg(target_os = "linux")]
fn memfd(name: &str, bytes: &[u8]) -> Option<MemFile> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated name; the returned descriptor is owned
    // by the File from here on.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes).ok()?;
    file.flush().ok()?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    // A sandbox without /proc cannot reach it by path.
    std::fs::metadata(&path).ok()?;
    Some(MemFile {
        path,
        inner: Inner::Memfd(file),
    })
}

impl Drop for MemFile {
    fn drop(&mut self) {
        if let Inner::Temp = self.inner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_readable_by_path_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let f = MemFile::new("twin-test", b"hello adapter", dir.path()).unwrap();
        assert_eq!(std::fs::read(f.path()).unwrap(), b"hello adapter");
        #[cfg(target_os = "linux")]
        assert!(f.in_memory(), "memfd: {}", f.path().display());
        let p = f.path().to_path_buf();
        drop(f);
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
        #[cfg(target_os = "linux")]
        assert!(
            std::fs::read(&p)
                .map(|b| b != b"hello adapter")
                .unwrap_or(true)
        );
    }
}
