//! Where a passphrase comes from (front-end side): the terminal, with echo
//! off; or, for `--batch` and scripts, a file (`--passphrase-file`,
//! `TWIN_PASSPHRASE_FILE`) or a descriptor an agent passes
//! (`--passphrase-fd N`, `TWIN_PASSPHRASE_FD`). The store asks only when the
//! store it opens is encrypted.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::store::Passphrase;
use crate::store::crypt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    File(PathBuf),
    Fd(i32),
    /// Ask on the terminal (`/dev/tty`).
    Prompt,
    /// Nowhere (a `--batch` run without a file or descriptor).
    None,
}

impl Spec {
    pub fn from_args(file: Option<PathBuf>, fd: Option<i32>, batch: bool) -> Spec {
        match (file, fd) {
            (Some(f), _) => Spec::File(f),
            (None, Some(fd)) => Spec::Fd(fd),
            (None, None) if batch => Spec::None,
            (None, None) => Spec::Prompt,
        }
    }
}

const HOW: &str = "give it with --passphrase-file PATH, --passphrase-fd N or TWIN_PASSPHRASE_FD";

/// Read a passphrase once from `spec`.
pub fn read(spec: &Spec, prompt: &str) -> Result<Passphrase, String> {
    let bytes = match spec {
        Spec::File(p) => std::fs::read(p)
            .map_err(|e| format!("cannot read the passphrase file {}: {e}", p.display()))?,
        Spec::Fd(fd) => read_fd(*fd)?,
        Spec::Prompt => return prompt_tty(prompt),
        Spec::None => return Err(format!("the store is encrypted; {HOW}")),
    };
    let bytes = match bytes.iter().position(|b| *b == b'\n') {
        // A file or descriptor holds the passphrase on its first line.
        Some(i) => bytes[..i].to_vec(),
        None => bytes,
    };
    Passphrase::new(bytes).map_err(|e| e.to_string())
}

#[cfg(unix)]
fn read_fd(fd: i32) -> Result<Vec<u8>, String> {
    use std::os::fd::FromRawFd;
    if fd <= 2 {
        return Err(format!(
            "--passphrase-fd {fd} is stdin, stdout or stderr; pass a descriptor of its own (e.g. 3 with `3<file`)"
        ));
    }
    // SAFETY: the user handed this descriptor to twin for exactly this; it is
    // read once and closed.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut out = Vec::new();
    f.read_to_end(&mut out)
        .map_err(|e| format!("cannot read the passphrase from descriptor {fd}: {e}"))?;
    Ok(out)
}

#[cfg(not(unix))]
fn read_fd(fd: i32) -> Result<Vec<u8>, String> {
    Err(format!("--passphrase-fd {fd} needs a Unix system"))
}

/// Ask on the terminal with echo off.
pub fn prompt_tty(prompt: &str) -> Result<Passphrase, String> {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            format!("the store is encrypted and there is no terminal to ask on ({e}); {HOW}")
        })?;
    let _ = write!(tty, "{prompt}");
    let _ = tty.flush();
    let line = without_echo(&tty, || {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match (&tty).read(&mut b) {
                Ok(0) => break,
                Ok(_) if b[0] == b'\n' || b[0] == b'\r' => break,
                Ok(_) => line.push(b[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the passphrase failed: {e}")),
            }
        }
        Ok(line)
    })?;
    let _ = writeln!(tty);
    Passphrase::new(line).map_err(|e| e.to_string())
}

/// A new passphrase from the terminal: asked twice, must match.
pub fn prompt_new_tty(what: &str) -> Result<Passphrase, String> {
    let a = prompt_tty(&format!("{what}: "))?;
    let b = prompt_tty(&format!("{what} again: "))?;
    if a.bytes() != b.bytes() {
        return Err("the two passphrases differ; nothing was changed".into());
    }
    if a.bytes().len() < 8 {
        return Err("choose a passphrase of at least 8 characters; nothing was changed".into());
    }
    Ok(a)
}

#[cfg(unix)]
fn without_echo<T>(
    tty: &std::fs::File,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    use std::os::fd::AsRawFd;
    let fd = tty.as_raw_fd();
    // SAFETY: termios calls on a descriptor we own; the old settings are restored.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
        return f();
    }
    let mut quiet = old;
    quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
    quiet.c_lflag |= libc::ICANON;
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    let r = f();
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &old) };
    r
}

#[cfg(not(unix))]
fn without_echo<T>(
    _tty: &std::fs::File,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    f()
}

/// Make `spec` the process's passphrase source; it is read at most once.
pub fn install(spec: Spec) {
    let cache: Mutex<Option<Vec<u8>>> = Mutex::new(None);
    crypt::set_passphrase_source(Box::new(move || {
        let mut c = cache.lock().expect("passphrase cache");
        if let Some(b) = c.as_ref() {
            return Passphrase::new(b.clone()).map_err(|e| e.to_string());
        }
        let p = read(&spec, "passphrase for twin's store: ")?;
        *c = Some(p.bytes().to_vec());
        Ok(p)
    }));
}
