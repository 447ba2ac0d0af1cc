//! Where twin keeps things: config, data (the store, models), state (logs, locks).
//!
//! `--home DIR` / `TWIN_HOME` puts everything under one folder; otherwise the XDG
//! folders from `directories`. `TWIN_MODELS_DIR` (or `models.dir` in config) points
//! the models folder elsewhere so several homes share one copy.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Environment variable that points every folder under one home.
pub const HOME_ENV: &str = "TWIN_HOME";
/// Environment variable that points the models folder elsewhere.
pub const MODELS_ENV: &str = "TWIN_MODELS_DIR";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Paths {
    /// `config.toml`, user `keymaps/` and `themes/`.
    pub config_dir: PathBuf,
    /// The store and, by default, the models.
    pub data_dir: PathBuf,
    /// Run-time state: the process lock, job checkpoints.
    pub state_dir: PathBuf,
    /// Log files.
    pub log_dir: PathBuf,
    /// Where the home came from: "--home", "TWIN_HOME" or "xdg".
    pub origin: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error(
        "could not find your home folder to place twin's files; pass --home DIR or set TWIN_HOME"
    )]
    NoHome,
}

impl Paths {
    /// Resolve the folders. `home` is the `--home` flag (clap already folds in `TWIN_HOME`).
    pub fn resolve(home: Option<&Path>, home_from_env: bool) -> Result<Paths, PathsError> {
        if let Some(home) = home {
            let home = absolute(home);
            return Ok(Paths::under(
                &home,
                if home_from_env { "TWIN_HOME" } else { "--home" },
            ));
        }
        let dirs = directories::ProjectDirs::from("", "", "twin").ok_or(PathsError::NoHome)?;
        let state_dir = dirs
            .state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.data_local_dir().join("state"));
        Ok(Paths {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
            log_dir: state_dir.join("logs"),
            state_dir,
            origin: "xdg",
        })
    }

    /// Every folder under one home (tests and scripts use this).
    pub fn under(home: &Path, origin: &'static str) -> Paths {
        Paths {
            config_dir: home.join("config"),
            data_dir: home.join("data"),
            state_dir: home.join("state"),
            log_dir: home.join("logs"),
            origin,
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The sled database folder.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The default models folder, used unless config or `TWIN_MODELS_DIR` say otherwise.
    pub fn default_models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    /// Create every folder, private to the user.
    pub fn create_all(&self) -> std::io::Result<()> {
        for dir in [
            &self.config_dir,
            &self.data_dir,
            &self.state_dir,
            &self.log_dir,
        ] {
            create_private_dir(dir)?;
        }
        Ok(())
    }
}

/// Create a folder (and parents) readable only by the user.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Make every file and folder under `dir` private (0600 / 0700), as twin's
/// own files are; sled and other libraries create theirs with the umask.
pub fn make_private_tree(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(dir)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.permissions().mode() & 0o777 != want {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(want))?;
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(dir)? {
                make_private_tree(&e?.path())?;
            }
        }
    }
    Ok(())
}

/// Create (or replace) a file readable only by the user.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = create_private(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Create (or truncate) a file only the user can read and write.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Files and folders under `dirs` that the group or others can read, write
/// or enter: (path, mode).
pub fn exposed(dirs: &[&Path]) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    #[cfg(unix)]
    fn walk(p: &Path, out: &mut Vec<(PathBuf, u32)>) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if meta.file_type().is_symlink() {
            return;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push((p.to_path_buf(), mode));
        }
        if meta.is_dir()
            && let Ok(rd) = std::fs::read_dir(p)
        {
            for e in rd.flatten() {
                walk(&e.path(), out);
            }
        }
    }
    #[cfg(unix)]
    for d in dirs {
        walk(d, &mut out);
    }
    out
}

/// Make files this process creates private by default (umask 077): sled's
/// files, logs, the lock file, exports. Called once at start-up.
pub fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask only changes this process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_puts_everything_under_one_folder() {
        let p = Paths::resolve(Some(Path::new("/tmp/h")), false).unwrap();
        assert_eq!(p.config_dir, Path::new("/tmp/h/config"));
        assert_eq!(p.data_dir, Path::new("/tmp/h/data"));
        assert_eq!(p.state_dir, Path::new("/tmp/h/state"));
        assert_eq!(p.log_dir, Path::new("/tmp/h/logs"));
        assert_eq!(p.store_dir(), Path::new("/tmp/h/data/store"));
        assert_eq!(p.origin, "--home");
    }

    #[test]
    fn relative_home_is_made_absolute() {
        let p = Paths::resolve(Some(Path::new("rel")), true).unwrap();
        assert!(p.config_dir.is_absolute());
        assert_eq!(p.origin, "TWIN_HOME");
    }
}
