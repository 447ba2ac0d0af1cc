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

/// How long a refused open waits for a lock whose recorded holder is gone.
const HANDOFF_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl LockFile {
    /// Take the lock. The file says who holds it, but the lock itself is what
    /// counts, and the two are not updated at the same instant: a holder that
    /// has exited may still hold the lock for a moment (the kernel — or a
    /// sandbox's — closes its files after its parent could already reap it; a
    /// process forked by this one keeps the descriptions it inherited until it
    /// execs), and a new holder has the lock a moment before it writes its pid.
    /// So when the lock is taken but the recorded holder is not a live process
    /// other than this one, this waits briefly for the hand-off instead of
    /// refusing with a stale pid; a live other holder is refused at once.
    pub(super) fn acquire(path: &Path, holder: &str) -> Result<LockFile, StoreError> {
        let started = std::time::Instant::now();
        loop {
            match LockFile::try_acquire(path, holder)? {
                Ok(lock) => return Ok(lock),
                Err(refused) => {
                    let StoreError::InUse { pid, .. } = &refused else {
                        return Err(refused);
                    };
                    let handing_off = match pid {
                        None => true,
                        Some(p) => *p == std::process::id() || !alive(*p),
                    };
                    if !handing_off || started.elapsed() >= HANDOFF_WAIT {
                        return Err(refused);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    }

    /// One attempt: the lock, or the `InUse` refusal naming the recorded holder.
    fn try_acquire(path: &Path, holder: &str) -> Result<Result<LockFile, StoreError>, StoreError> {
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
                return Ok(Err(StoreError::InUse {
                    path: dir_of(path),
                    pid: words.next().and_then(|p| p.parse().ok()),
                    holder: words.next().map(str::to_string),
                }));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // One write of the whole content, so a reader sees the old holder or
        // the new one, never an empty file in between.
        let content = format!("{} {holder}", std::process::id());
        file.rewind().map_err(io)?;
        file.write_all(content.as_bytes()).map_err(io)?;
        file.set_len(content.len() as u64).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Ok(LockFile { _file: file }))
    }
}

/// Whether process `pid` is running (a zombie, exited but not yet reaped, is not).
fn alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(p, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

fn dir_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaped_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn liveness_tells_running_from_gone() {
        assert!(alive(std::process::id()));
        assert!(!alive(reaped_pid()));
    }

    #[test]
    fn a_lock_whose_recorded_holder_is_gone_is_waited_for_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twin.lock");
        let held = LockFile::acquire(&path, "batch").unwrap();
        // The lock is still held, but the file names a process that has
        // exited: the hand-off a refused open used to report as "in use".
        std::fs::write(&path, format!("{} batch", reaped_pid())).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let again = LockFile::acquire(&path, "batch");
        t.join().unwrap();
        assert!(again.is_ok(), "{:?}", again.err());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{} batch", std::process::id()));
    }

    #[test]
    fn a_live_holder_is_refused_at_once_with_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twin.lock");
        let _held = LockFile::acquire(&path, "tui").unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        std::fs::write(&path, format!("{} tui", other.id())).unwrap();
        let started = std::time::Instant::now();
        let err = LockFile::acquire(&path, "batch").err().unwrap();
        let waited = started.elapsed();
        let _ = other.kill();
        let _ = other.wait();
        match err {
            StoreError::InUse { pid, holder, .. } => {
                assert_eq!(pid, Some(other.id()));
                assert_eq!(holder.as_deref(), Some("tui"));
            }
            e => panic!("{e}"),
        }
        assert!(
            waited < HANDOFF_WAIT,
            "refused without waiting for the hand-off"
        );
    }
}
