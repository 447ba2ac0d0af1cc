//! One twin process per store: an advisory lock on `twin.lock` holding the pid
//! and what holds it ("tui", "batch"), so a refused process can say who has it.
//! The OS releases it when the process dies, so a crash never leaves it stuck.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

pub(super) struct LockFile {
    _file: File,
}

impl LockFile {
    pub(super) fn acquire(path: &Path, holder: &str) -> Result<LockFile, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let mut words = text.split_whitespace();
                return Err(StoreError::InUse {
                    path: dir_of(path),
                    pid: words.next().and_then(|p| p.parse().ok()),
                    holder: words.next().map(str::to_string),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{} {holder}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(LockFile { _file: file })
    }
}

fn dir_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}
