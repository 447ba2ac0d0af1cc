//! `twin doctor`: checks folders, config, store, models, keymap, theme and the
//! terminal, and says how to fix each problem it finds.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::config::ChatConfig;
use crate::config::{ConfigError, Loaded};
use crate::diag::Diagnostic;
use crate::jobs::Summary;
use crate::llm::engine::{EngineConfig, EngineError, inspect_model};
use crate::models::{self, ModelKind};
use crate::paths::Paths;
use crate::store::{Store, StoreError};
use crate::tui::keymap::Keymap;
use crate::tui::theme::{TermEnv, Theme};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub failed: usize,
    pub warnings: usize,
}

/// What doctor knows about the terminal it runs in.
#[derive(Debug, Clone)]
pub struct TermInfo {
    pub env: TermEnv,
    pub stdout_tty: bool,
    pub size: Option<(u16, u16)>,
    pub locale: Option<String>,
    pub ssh: bool,
}

impl TermInfo {
    pub fn detect() -> TermInfo {
        use std::io::IsTerminal;
        let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        TermInfo {
            env: TermEnv::from_env(),
            stdout_tty: std::io::stdout().is_terminal(),
            size: crossterm::terminal::size().ok(),
            locale: var("LC_ALL")
                .or_else(|| var("LC_CTYPE"))
                .or_else(|| var("LANG")),
            ssh: var("SSH_TTY").is_some() || var("SSH_CONNECTION").is_some(),
        }
    }
}

fn check(
    name: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix,
    }
}

fn diags_text(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("\n    {d}")).collect()
}

/// Run every check. `config` is the config as loaded, or why it could not be.
pub fn run(paths: &Paths, config: &Result<Loaded, ConfigError>, term: &TermInfo) -> Report {
    let mut checks = vec![folders(paths), file_modes(paths), network()];
    let defaults;
    let loaded = match config {
        Ok(l) => {
            checks.push(if l.warnings.is_empty() {
                let how = if l.file_found {
                    ""
                } else {
                    " (not present: all defaults)"
                };
                check(
                    "config",
                    Status::Ok,
                    format!("{}{how}", l.file.display()),
                    None,
                )
            } else {
                check(
                    "config",
                    Status::Warn,
                    format!(
                        "{} has problems:{}",
                        l.file.display(),
                        diags_text(&l.warnings)
                    ),
                    Some("fix or remove the lines named; `twin config` lists every key".into()),
                )
            });
            l
        }
        Err(e) => {
            checks.push(check(
                "config",
                Status::Fail,
                e.to_string(),
                Some("fix the line named, or move the file away to use defaults; `twin config --template` prints a valid one".into()),
            ));
            defaults =
                crate::config::load_str(Path::new(""), None, &|_| None).expect("defaults load");
            &defaults
        }
    };
    checks.push(checkin(&loaded.config));
    checks.push(store(paths));
    checks.push(models(&loaded.models_dir(paths), &loaded.config.chat));
    let (keymap_diags, theme_check) = look(paths, loaded, &term.env);
    checks.push(if keymap_diags.is_empty() {
        check(
            "keymap",
            Status::Ok,
            format!("`{}` loads cleanly", loaded.config.ui.keymap),
            None,
        )
    } else {
        check(
            "keymap",
            Status::Warn,
            format!(
                "`{}` has problems:{}",
                loaded.config.ui.keymap,
                diags_text(&keymap_diags)
            ),
            Some(format!(
                "edit the lines named in {}",
                paths.config_dir.join("keymaps").display()
            )),
        )
    });
    checks.push(theme_check);
    checks.push(terminal(term));
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warnings = checks.iter().filter(|c| c.status == Status::Warn).count();
    Report {
        checks,
        failed,
        warnings,
    }
}

/// `[checkin]`: rules, time zone, quiet hours.
fn checkin(config: &crate::config::Config) -> Check {
    use crate::checkin::check;
    let found = check::check(config, chrono::Utc::now(), check::machine_zone_known());
    if found.is_empty() {
        let k = &config.checkin;
        let detail = if k.enabled {
            let zone = if k.timezone.trim().is_empty() {
                config.ingest.timezone.as_str()
            } else {
                k.timezone.as_str()
            };
            format!(
                "{} rule{} ({}) in {zone}, quiet hours {}",
                k.rules.len(),
                if k.rules.len() == 1 { "" } else { "s" },
                k.rules.join("; "),
                if k.quiet_hours.trim().is_empty() {
                    "none"
                } else {
                    k.quiet_hours.trim()
                }
            )
        } else {
            "off (checkin.enabled = false)".to_string()
        };
        return check("checkin", Status::Ok, detail, None);
    }
    let status = if found.iter().any(|f| f.fail) {
        Status::Fail
    } else {
        Status::Warn
    };
    let detail = found
        .iter()
        .map(|f| f.detail.as_str())
        .collect::<Vec<_>>()
        .join("\n    ");
    let fix = found
        .iter()
        .map(|f| f.fix.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    check("checkin", status, detail, Some(fix))
}

fn folders(paths: &Paths) -> Check {
    let mut problems = Vec::new();
    for (name, dir) in [
        ("config", &paths.config_dir),
        ("data", &paths.data_dir),
        ("state", &paths.state_dir),
        ("logs", &paths.log_dir),
    ] {
        let probe = dir.join(".twin-doctor-probe");
        let ok = crate::paths::create_private_dir(dir)
            .and_then(|_| std::fs::write(&probe, b"ok"))
            .and_then(|_| std::fs::remove_file(&probe));
        if let Err(e) = ok {
            problems.push(format!(
                "{name} folder {} is not writable: {e}",
                dir.display()
            ));
        }
    }
    if problems.is_empty() {
        check(
            "folders",
            Status::Ok,
            format!("all writable ({})", paths.origin),
            None,
        )
    } else {
        check(
            "folders",
            Status::Fail,
            problems.join("; "),
            Some("give yourself write access (chown/chmod u+rwx), or choose another place with --home DIR".into()),
        )
    }
}

/// Group- or world-readable files under twin's folders.
fn file_modes(paths: &Paths) -> Check {
    let exposed = crate::privacy::exposed(paths);
    if exposed.is_empty() {
        return check(
            "file modes",
            Status::Ok,
            "folders 0700, files 0600: only you can read them",
            None,
        );
    }
    let list: Vec<String> = exposed
        .iter()
        .take(5)
        .map(|(p, m)| format!("{} ({m:o})", p.display()))
        .collect();
    check(
        "file modes",
        Status::Warn,
        format!(
            "{} files or folders can be read by other users: {}{}",
            exposed.len(),
            list.join(", "),
            if exposed.len() > 5 { ", ..." } else { "" }
        ),
        Some(format!("run: {}", crate::privacy::chmod_fix(paths))),
    )
}

fn network() -> Check {
    check(
        "network",
        Status::Ok,
        crate::privacy::NETWORK_STATEMENT,
        None,
    )
}

fn store(paths: &Paths) -> Check {
    let dir = paths.store_dir();
    match Store::open(&dir) {
        Ok(s) => {
            let records: u64 = s
                .counts()
                .map(|c| c.iter().map(|(_, n)| n).sum())
                .unwrap_or(0);
            check(
                "store",
                Status::Ok,
                format!(
                    "{} opens: schema v{}, {records} records, {}, {}",
                    dir.display(),
                    s.schema_version().ok().flatten().unwrap_or(0),
                    crate::status::human_bytes(s.size_on_disk()),
                    if s.is_encrypted() {
                        "encrypted at rest"
                    } else {
                        "not encrypted (`twin encrypt` encrypts it)"
                    }
                ),
                None,
            )
        }
        Err(e) => {
            let fix = match &e {
                StoreError::InUse { pid, .. } => format!(
                    "another twin{} holds it: quit that one (or wait for its batch job), then run doctor again",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                ),
                StoreError::TooNew { .. } => "install a newer twin".into(),
                StoreError::Crypt(_) => {
                    "give the passphrase (on a terminal twin asks; in --batch --passphrase-file PATH or --passphrase-fd N)".into()
                }
                StoreError::Corrupt { .. } => format!(
                    "move {} away (keep it for recovery) and import your exports again",
                    dir.display()
                ),
                _ => "check the folder's permissions and free disk space".into(),
            };
            check("store", Status::Fail, e.to_string(), Some(fix))
        }
    }
}

fn models(dir: &Path, chat: &ChatConfig) -> Check {
    let found = match models::discover(dir) {
        Ok(f) => f,
        Err(e) => {
            return check(
                "models",
                Status::Warn,
                format!("cannot list {}: {e}", dir.display()),
                Some("check the folder's permissions, or point TWIN_MODELS_DIR elsewhere".into()),
            );
        }
    };
    // Broken model files, and a configured chat model that cannot chat.
    let mut broken: Vec<String> = found
        .iter()
        .filter_map(|m| Some(format!("{}: {}", m.name, m.problem.as_ref()?)))
        .collect();
    let engine = EngineConfig::from_config(chat, dir);
    let chat_missing = match inspect_model(&engine) {
        Ok(_) => false,
        Err(EngineError::ModelMissing { .. }) => true,
        Err(EngineError::Gguf(_)) if found.iter().any(|m| m.path == engine.model) => false,
        Err(e) => {
            broken.push(format!("chat.model: {e}"));
            false
        }
    };
    if !broken.is_empty() {
        return check(
            "models",
            Status::Fail,
            broken.join("; "),
            Some(format!(
                "run `bash scripts/fetch-models.sh` to replace the default models (it checks their SHA-256), or delete or replace the files named in {}",
                dir.display()
            )),
        );
    }
    let names = |k: ModelKind| -> Vec<String> {
        found
            .iter()
            .filter(|m| m.kind == k)
            .map(|m| m.name.clone())
            .collect()
    };
    let (gguf, emb, whisper) = (
        names(ModelKind::Gguf),
        names(ModelKind::Embedding),
        names(ModelKind::Whisper),
    );
    let mut missing = Vec::new();
    let chat_label = format!("the chat model {} (chat.model)", chat.model);
    if chat_missing {
        missing.push(chat_label.as_str());
    }
    for (label, list) in [
        ("a chat model (.gguf)", &gguf),
        ("an embedding model", &emb),
        ("a whisper model", &whisper),
    ] {
        if list.is_empty() {
            missing.push(label);
        }
    }
    let have: Vec<String> = found.iter().map(|m| m.name.clone()).collect();
    if missing.is_empty() {
        check(
            "models",
            Status::Ok,
            format!("{}: {}", dir.display(), have.join(", ")),
            None,
        )
    } else {
        let have = if have.is_empty() {
            "nothing".to_string()
        } else {
            have.join(", ")
        };
        check(
            "models",
            Status::Warn,
            format!(
                "{} has {have}; missing {}",
                dir.display(),
                missing.join(", ")
            ),
            Some(if chat_missing || emb.is_empty() {
                format!(
                    "`bash scripts/fetch-models.sh` fetches the chat and embedding models into {} (or set TWIN_MODELS_DIR / models.dir to a folder that has them); chat, memory and voice need them, the rest of twin works without",
                    dir.display()
                )
            } else {
                format!(
                    "put a whisper model (ggml-*.bin) in {}; only voice needs it",
                    dir.display()
                )
            }),
        )
    }
}

fn look(paths: &Paths, config: &Loaded, term: &TermEnv) -> (Vec<Diagnostic>, Check) {
    let (_, keymap_diags) =
        Keymap::load(&config.config.ui.keymap, &paths.config_dir.join("keymaps"));
    let (name, depth, why) = term.choose(&config.config.ui.theme);
    let (_, theme_diags) = Theme::load(&name, &paths.config_dir.join("themes"), depth);
    let detail = format!("`{name}` at {depth:?} ({why})");
    let c = if theme_diags.is_empty() {
        check("theme", Status::Ok, detail, None)
    } else {
        check(
            "theme",
            Status::Warn,
            format!("{detail} has problems:{}", diags_text(&theme_diags)),
            Some(format!(
                "edit the lines named in {}",
                paths.config_dir.join("themes").display()
            )),
        )
    };
    (keymap_diags, c)
}

fn terminal(t: &TermInfo) -> Check {
    let mut notes = vec![format!(
        "TERM={} COLORTERM={}{}{}",
        t.env.term.as_deref().unwrap_or("(unset)"),
        t.env.colorterm.as_deref().unwrap_or("(unset)"),
        if t.env.no_color { " NO_COLOR" } else { "" },
        if t.ssh { ", over SSH" } else { "" }
    )];
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if !t.stdout_tty {
        problems.push("stdout is not a terminal (fine for --batch; the TUI needs one)".to_string());
    }
    match t.size {
        Some((w, h)) if w < 80 || h < 24 => {
            problems.push(format!("the terminal is {w}x{h}, smaller than 80x24"));
            fixes.push("make the window at least 80 columns by 24 rows".to_string());
        }
        Some((w, h)) => notes.push(format!("{w}x{h}")),
        None => {}
    }
    let utf8 = t
        .locale
        .as_deref()
        .is_some_and(|l| l.to_ascii_lowercase().replace('-', "").contains("utf8"));
    if !utf8 {
        problems.push(format!(
            "the locale ({}) is not UTF-8, so borders may look broken",
            t.locale.as_deref().unwrap_or("unset")
        ));
        fixes.push("export LANG=C.UTF-8 (or another UTF-8 locale)".to_string());
    }
    if t.env.term.as_deref().is_none_or(|s| s == "dumb") {
        problems.push("TERM is unset or dumb".to_string());
        fixes.push("run twin in a real terminal (TERM=xterm-256color or similar)".to_string());
    }
    if problems.is_empty() {
        check("terminal", Status::Ok, notes.join(", "), None)
    } else {
        notes.extend(problems);
        check(
            "terminal",
            Status::Warn,
            notes.join("; "),
            (!fixes.is_empty()).then(|| fixes.join("; ")),
        )
    }
}

impl Summary for Report {
    fn success(&self) -> bool {
        self.failed == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            writeln!(f, "{mark} {:<9} {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(f, "     {:<9} fix: {fix}", "")?;
            }
        }
        write!(f, "\n{} failed, {} warnings", self.failed, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term() -> TermInfo {
        TermInfo {
            env: TermEnv {
                term: Some("xterm-256color".into()),
                colorterm: None,
                no_color: false,
            },
            stdout_tty: true,
            size: Some((80, 24)),
            locale: Some("C.UTF-8".into()),
            ssh: false,
        }
    }

    #[test]
    fn a_fresh_home_passes_with_model_warnings_only() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path(), "--home");
        let cfg = crate::config::load(&paths.config_file(), &|_| None);
        let r = run(&paths, &cfg, &term());
        assert_eq!(r.failed, 0, "{r}");
        let warned: Vec<_> = r
            .checks
            .iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| c.name)
            .collect();
        assert_eq!(warned, vec!["models"], "{r}");
        assert!(
            r.checks
                .iter()
                .all(|c| c.status == Status::Ok || c.fix.is_some()),
            "every problem says how to fix it"
        );
    }

    #[test]
    fn a_store_in_use_fails_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path(), "--home");
        let _held = Store::open(&paths.store_dir()).unwrap();
        let cfg = crate::config::load(&paths.config_file(), &|_| None);
        let r = run(&paths, &cfg, &term());
        let store = r.checks.iter().find(|c| c.name == "store").unwrap();
        assert_eq!(store.status, Status::Fail);
        assert!(
            store
                .detail
                .contains("store in use by another twin process")
        );
        assert!(store.fix.as_deref().unwrap().contains("quit that one"));
        assert!(!r.success());
    }

    #[test]
    fn a_broken_config_and_keymap_are_reported_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path(), "--home");
        std::fs::create_dir_all(paths.config_dir.join("keymaps")).unwrap();
        std::fs::write(paths.config_file(), "[ui]\nmouse = maybe\n").unwrap();
        std::fs::write(
            paths.config_dir.join("keymaps/default.toml"),
            "[global]\nq = \"fly\"\n",
        )
        .unwrap();
        let cfg = crate::config::load(&paths.config_file(), &|_| None);
        let r = run(&paths, &cfg, &term());
        let by = |n| r.checks.iter().find(|c| c.name == n).unwrap();
        assert_eq!(by("config").status, Status::Fail);
        assert!(
            by("config").detail.contains("config.toml:2:"),
            "{}",
            by("config").detail
        );
        assert_eq!(by("keymap").status, Status::Warn);
        assert!(
            by("keymap").detail.contains("default.toml:2:"),
            "{}",
            by("keymap").detail
        );
    }

    #[test]
    fn a_truncated_model_fails_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path(), "--home");
        let models = paths.default_models_dir();
        std::fs::create_dir_all(&models).unwrap();
        let file = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        crate::llm::tiny::TinyLlama::default().write(&file).unwrap();
        let cfg = crate::config::load(&paths.config_file(), &|_| None);
        let r = run(&paths, &cfg, &term());
        let c = r.checks.iter().find(|c| c.name == "models").unwrap();
        assert_ne!(c.status, Status::Fail, "{}", c.detail);
        assert!(!c.detail.contains("chat model"), "{}", c.detail);

        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        let r = run(&paths, &cfg, &term());
        let c = r.checks.iter().find(|c| c.name == "models").unwrap();
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("is truncated at byte"), "{}", c.detail);
        assert!(c.fix.as_deref().unwrap().contains("fetch-models.sh"));
        assert!(!r.success());
    }

    #[test]
    fn small_or_non_utf8_terminals_are_flagged() {
        let mut t = term();
        t.size = Some((60, 20));
        t.locale = Some("C".into());
        let c = terminal(&t);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("60x20"));
        assert!(c.fix.unwrap().contains("LANG=C.UTF-8"));
    }
}
