//! Keymaps: TOML files of `[mode]` tables mapping keys to actions.
//!
//! ```toml
//! inherits = "default"      # optional: start from another keymap ("" for none)
//! [global]
//! "ctrl-c" = "quit"
//! "g g" = "scroll_top"      # a sequence: keys separated by spaces
//! "x" = "none"              # unbind
//! ```
//! Built-ins are embedded; `<config>/keymaps/NAME.toml` is layered over the
//! built-in of the same name (or over `default`) key by key. Bad entries are
//! warnings naming the file and line, never a crash; two spellings of one key and
//! bindings that hide each other are reported.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Serialize;
use toml::de::{DeTable, DeValue};

use crate::app::{Action, Pane};
use crate::diag::Diagnostic;

/// Built-in keymaps, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../keymaps/default.toml")),
    ("vim", include_str!("../../keymaps/vim.toml")),
];

/// Where a set of bindings applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Global,
    Ingest,
    Memory,
    Training,
    Chat,
    Help,
    /// While a text prompt is open.
    Prompt,
    /// While typing a chat message: other keys type into it.
    Compose,
    /// While the Check-ins view is open (checked before global).
    Checkins,
    /// While the multi-line editor is open (editing a memory).
    Editor,
    /// While a yes/no question waits for its answer.
    Confirm,
}

impl Mode {
    pub const ALL: [Mode; 11] = [
        Mode::Global,
        Mode::Ingest,
        Mode::Memory,
        Mode::Training,
        Mode::Chat,
        Mode::Help,
        Mode::Prompt,
        Mode::Compose,
        Mode::Checkins,
        Mode::Editor,
        Mode::Confirm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Global => "global",
            Mode::Ingest => "ingest",
            Mode::Memory => "memory",
            Mode::Training => "training",
            Mode::Chat => "chat",
            Mode::Help => "help",
            Mode::Prompt => "prompt",
            Mode::Compose => "compose",
            Mode::Checkins => "checkins",
            Mode::Editor => "editor",
            Mode::Confirm => "confirm",
        }
    }

    pub fn of_pane(p: Pane) -> Mode {
        match p {
            Pane::Ingest => Mode::Ingest,
            Pane::Memory => Mode::Memory,
            Pane::Training => Mode::Training,
            Pane::Chat => Mode::Chat,
        }
    }

    fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// The key part of a key press, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    Char(char),
    F(u8),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Insert,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
}

const NAMED: &[(&str, Code)] = &[
    ("enter", Code::Enter),
    ("esc", Code::Esc),
    ("tab", Code::Tab),
    ("backtab", Code::BackTab),
    ("backspace", Code::Backspace),
    ("delete", Code::Delete),
    ("del", Code::Delete),
    ("insert", Code::Insert),
    ("up", Code::Up),
    ("down", Code::Down),
    ("left", Code::Left),
    ("right", Code::Right),
    ("home", Code::Home),
    ("end", Code::End),
    ("pageup", Code::PageUp),
    ("pagedown", Code::PageDown),
    ("space", Code::Char(' ')),
    ("minus", Code::Char('-')),
];

/// One key press: a code and modifiers, normalised so that `G`, `shift-g`
/// and `S-g` are the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub code: Code,
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
}

impl Key {
    fn normalise(mut self) -> Key {
        if let Code::Char(c) = self.code {
            if self.shift && c.is_ascii_lowercase() {
                self.code = Code::Char(c.to_ascii_uppercase());
            }
            // Shift is already in the character ('G', '?').
            self.shift = false;
            if self.ctrl && c.is_ascii_uppercase() {
                // Terminals cannot tell ctrl-C from ctrl-c.
                self.code = Code::Char(c.to_ascii_lowercase());
            }
        }
        if self.code == Code::Tab && self.shift {
            self.code = Code::BackTab;
        }
        if self.code == Code::BackTab {
            self.shift = false;
        }
        self
    }

    /// Parse `ctrl-c`, `C-c`, `alt-x`, `shift-tab`, `G`, `?`, `f5`, `pagedown`.
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut key = Key {
            code: Code::Esc,
            ctrl: false,
            alt: false,
            shift: false,
        };
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            let (prefix_len, flag) = if lower.starts_with("ctrl-") {
                (5, &mut key.ctrl)
            } else if lower.starts_with("c-") && rest.len() > 2 {
                (2, &mut key.ctrl)
            } else if lower.starts_with("alt-") {
                (4, &mut key.alt)
            } else if lower.starts_with("a-") && rest.len() > 2 {
                (2, &mut key.alt)
            } else if lower.starts_with("shift-") {
                (6, &mut key.shift)
            } else if lower.starts_with("s-") && rest.len() > 2 {
                (2, &mut key.shift)
            } else {
                break;
            };
            *flag = true;
            rest = &rest[prefix_len..];
        }
        let mut chars = rest.chars();
        key.code = match (chars.next(), chars.next()) {
            (Some(c), None) => Code::Char(c),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if let Some((_, code)) = NAMED.iter().find(|(n, _)| *n == lower) {
                    *code
                } else if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok())
                    && (1..=24).contains(&n)
                {
                    Code::F(n)
                } else {
                    return Err(format!(
                        "unknown key `{s}`: use a character, f1..f24, or one of {}, with ctrl-/alt-/shift- before it",
                        NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        };
        Ok(key.normalise())
    }

    /// Convert a crossterm key event.
    pub fn from_event(ev: &KeyEvent) -> Option<Key> {
        let code = match ev.code {
            KeyCode::Char(c) => Code::Char(c),
            KeyCode::F(n) => Code::F(n),
            KeyCode::Enter => Code::Enter,
            KeyCode::Esc => Code::Esc,
            KeyCode::Tab => Code::Tab,
            KeyCode::BackTab => Code::BackTab,
            KeyCode::Backspace => Code::Backspace,
            KeyCode::Delete => Code::Delete,
            KeyCode::Insert => Code::Insert,
            KeyCode::Up => Code::Up,
            KeyCode::Down => Code::Down,
            KeyCode::Left => Code::Left,
            KeyCode::Right => Code::Right,
            KeyCode::Home => Code::Home,
            KeyCode::End => Code::End,
            KeyCode::PageUp => Code::PageUp,
            KeyCode::PageDown => Code::PageDown,
            _ => return None,
        };
        let m = ev.modifiers;
        Some(
            Key {
                code,
                ctrl: m.contains(KeyModifiers::CONTROL),
                alt: m.contains(KeyModifiers::ALT),
                shift: m.contains(KeyModifiers::SHIFT),
            }
            .normalise(),
        )
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        if self.shift {
            f.write_str("shift-")?;
        }
        match self.code {
            Code::Char(' ') => f.write_str("space"),
            Code::Char(c) => write!(f, "{c}"),
            Code::F(n) => write!(f, "f{n}"),
            Code::BackTab => f.write_str("shift-tab"),
            other => {
                let name = NAMED
                    .iter()
                    .find(|(_, c)| *c == other)
                    .map(|(n, _)| *n)
                    .unwrap_or("?");
                f.write_str(name)
            }
        }
    }
}

/// A key sequence such as `g g`.
pub type Keys = Vec<Key>;

pub fn keys_to_string(keys: &[Key]) -> String {
    keys.iter()
        .map(Key::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub action: Action,
    pub file: PathBuf,
    pub line: usize,
}

/// The merged, live keymap.
#[derive(Debug, Clone, Default)]
pub struct Keymap {
    pub name: String,
    modes: BTreeMap<Mode, BTreeMap<Keys, Binding>>,
}

/// What a key press resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Action(Action),
    /// Part of a longer binding; wait for the next key.
    Pending,
    Unbound,
}

impl Keymap {
    /// Load keymap `name`: the built-in and/or `<user_dir>/NAME.toml`, with `inherits`.
    pub fn load(name: &str, user_dir: &Path) -> (Keymap, Vec<Diagnostic>) {
        let mut map = Keymap {
            name: name.to_string(),
            modes: BTreeMap::new(),
        };
        let mut diags = Vec::new();
        map.apply_named(name, user_dir, &mut diags, 0);
        map.check_conflicts(&mut diags);
        (map, diags)
    }

    fn apply_named(
        &mut self,
        name: &str,
        user_dir: &Path,
        diags: &mut Vec<Diagnostic>,
        depth: usize,
    ) {
        if depth > 8 {
            diags.push(Diagnostic {
                file: user_dir.join(format!("{name}.toml")),
                line: 1,
                column: 1,
                message: "keymaps inherit in a loop; remove one `inherits`".into(),
            });
            return;
        }
        let builtin = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, src)| *src);
        let user_path = user_dir.join(format!("{name}.toml"));
        let user = std::fs::read_to_string(&user_path).ok();
        if builtin.is_none() && user.is_none() {
            diags.push(Diagnostic {
                file: user_path,
                line: 1,
                column: 1,
                message: format!(
                    "no keymap named `{name}` (built-ins: {}); using `default`",
                    BUILTIN
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            self.apply_named("default", user_dir, diags, depth + 1);
            return;
        }
        if let Some(src) = builtin {
            let file = PathBuf::from(format!("<built-in keymap {name}>"));
            self.apply_file(&file, src, user_dir, diags, depth, None);
        }
        if let Some(src) = user {
            // A user file with a new name starts from `default` unless it inherits.
            let base = builtin.is_none().then_some("default");
            self.apply_file(&user_path, &src, user_dir, diags, depth, base);
        }
    }

    fn apply_file(
        &mut self,
        file: &Path,
        src: &str,
        user_dir: &Path,
        diags: &mut Vec<Diagnostic>,
        depth: usize,
        implicit_base: Option<&str>,
    ) {
        let table = match DeTable::parse(src) {
            Ok(t) => t.into_inner(),
            Err(e) => {
                diags.push(Diagnostic::from_toml(file, src, &e));
                return;
            }
        };
        let at =
            |span: std::ops::Range<usize>, msg: String| Diagnostic::at(file, src, Some(span), msg);
        let inherits = table.iter().find(|(k, _)| k.get_ref() == "inherits");
        match inherits.map(|(_, v)| (v.get_ref().as_str(), v.span())) {
            // `inherits = ""` starts from no bindings at all.
            Some((Some(""), _)) => {}
            Some((Some(parent), _)) => self.apply_named(parent, user_dir, diags, depth + 1),
            Some((None, span)) => diags.push(at(
                span,
                "`inherits` must be a keymap name in quotes".into(),
            )),
            None => {
                if let Some(base) = implicit_base {
                    self.apply_named(base, user_dir, diags, depth + 1);
                }
            }
        }
        for (mode_name, value) in crate::diag::in_order(&table) {
            if mode_name.get_ref() == "inherits" {
                continue;
            }
            let Some(mode) = Mode::from_name(mode_name.get_ref()) else {
                diags.push(at(
                    mode_name.span(),
                    format!(
                        "unknown mode [{}]; modes are {}",
                        mode_name.get_ref(),
                        Mode::ALL.map(Mode::name).join(", ")
                    ),
                ));
                continue;
            };
            let DeValue::Table(bindings) = value.get_ref() else {
                diags.push(at(
                    value.span(),
                    format!("[{}] must be a table of \"key\" = \"action\"", mode.name()),
                ));
                continue;
            };
            // Keys seen in this table, to report two spellings of one key.
            let mut seen: BTreeMap<Keys, (String, usize)> = BTreeMap::new();
            for (key_str, action_val) in crate::diag::in_order(bindings) {
                let key_span = key_str.span();
                let keys: Result<Keys, String> = key_str
                    .get_ref()
                    .split_whitespace()
                    .map(Key::parse)
                    .collect();
                let keys = match keys {
                    Ok(k) if !k.is_empty() => k,
                    Ok(_) => {
                        diags.push(at(key_span, "empty key".into()));
                        continue;
                    }
                    Err(msg) => {
                        diags.push(at(key_span, msg));
                        continue;
                    }
                };
                let line = crate::diag::line_col(src, key_span.start).0;
                if let Some((other, other_line)) = seen.get(&keys) {
                    diags.push(at(
                        key_span,
                        format!(
                            "duplicate binding in [{}]: `{}` is the same key as `{other}` on line {other_line}; the later one wins",
                            mode.name(),
                            key_str.get_ref()
                        ),
                    ));
                }
                seen.insert(keys.clone(), (key_str.get_ref().to_string(), line));
                let Some(action_name) = action_val.get_ref().as_str() else {
                    diags.push(at(
                        action_val.span(),
                        "an action name in quotes is expected".into(),
                    ));
                    continue;
                };
                let mode_map = self.modes.entry(mode).or_default();
                if action_name == "none" {
                    mode_map.remove(&keys);
                    continue;
                }
                match Action::from_name(action_name) {
                    Some(action) => {
                        mode_map.insert(keys, Binding { action, file: file.to_path_buf(), line });
                    }
                    None => diags.push(at(
                        action_val.span(),
                        format!("unknown action `{action_name}`; `twin doctor` lists them, or use \"none\" to unbind"),
                    )),
                }
            }
        }
    }

    /// A binding that is a prefix of a longer one in the same mode hides it.
    fn check_conflicts(&self, diags: &mut Vec<Diagnostic>) {
        for (mode, map) in &self.modes {
            for (short, b) in map {
                for (long, lb) in map.range(short.clone()..) {
                    if long.len() > short.len() && long.starts_with(short) {
                        diags.push(Diagnostic {
                            file: lb.file.clone(),
                            line: lb.line,
                            column: 1,
                            message: format!(
                                "in [{}], `{}` ({}) can never be typed: `{}` on {}:{} ({}) takes its first key",
                                mode.name(),
                                keys_to_string(long),
                                lb.action.name(),
                                keys_to_string(short),
                                b.file.display(),
                                b.line,
                                b.action.name()
                            ),
                        });
                    }
                }
            }
        }
    }

    /// Resolve `pending + key` in `modes` (most specific first).
    pub fn resolve(&self, modes: &[Mode], pending: &mut Keys, key: Key) -> Resolved {
        let mut seq = pending.clone();
        seq.push(key);
        for mode in modes {
            let Some(map) = self.modes.get(mode) else {
                continue;
            };
            if let Some(b) = map.get(&seq) {
                pending.clear();
                return Resolved::Action(b.action.clone());
            }
            if map
                .range(seq.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&seq))
            {
                *pending = seq;
                return Resolved::Pending;
            }
        }
        if !pending.is_empty() {
            // The sequence broke off: treat this key on its own.
            pending.clear();
            return self.resolve(modes, pending, key);
        }
        Resolved::Unbound
    }

    /// Bindings of `mode`, grouped by action in [`Action::BINDABLE`] order: the help overlay.
    pub fn help(&self, mode: Mode) -> Vec<(Vec<String>, Action)> {
        let Some(map) = self.modes.get(&mode) else {
            return Vec::new();
        };
        Action::BINDABLE
            .iter()
            .filter_map(|(action, _)| {
                let keys: Vec<String> = map
                    .iter()
                    .filter(|(_, b)| &b.action == action)
                    .map(|(k, _)| keys_to_string(k))
                    .collect();
                (!keys.is_empty()).then(|| (keys, action.clone()))
            })
            .collect()
    }

    /// The simplest key bound to `action` in `mode` or global, for hints like "? help".
    pub fn key_for(&self, mode: Mode, action: &Action) -> Option<String> {
        [mode, Mode::Global].iter().find_map(|m| {
            self.modes
                .get(m)?
                .iter()
                .filter(|(_, b)| &b.action == action)
                .map(|(k, _)| keys_to_string(k))
                .min_by_key(|s| (s.chars().count(), s.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    fn load_user(name: &str, files: &[(&str, &str)]) -> (Keymap, Vec<Diagnostic>) {
        let dir = tempfile::tempdir().unwrap();
        for (n, src) in files {
            std::fs::write(dir.path().join(format!("{n}.toml")), src).unwrap();
        }
        Keymap::load(name, dir.path())
    }

    #[test]
    fn key_spellings_normalise() {
        assert_eq!(k("shift-g"), k("G"));
        assert_eq!(k("S-g"), k("G"));
        assert_eq!(k("C-c"), k("ctrl-c"));
        assert_eq!(k("ctrl-C"), k("ctrl-c"));
        assert_eq!(k("shift-tab"), k("backtab"));
        assert_eq!(k("space").code, Code::Char(' '));
        assert_eq!(k("F5").code, Code::F(5));
        assert_eq!(k("ctrl-alt-x").to_string(), "ctrl-alt-x");
        assert_eq!(k("shift-tab").to_string(), "shift-tab");
        assert!(Key::parse("hyper-x").is_err());
        assert!(Key::parse("f99").is_err());
    }

    #[test]
    fn crossterm_events_match_parsed_keys() {
        let ev = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), Some(k("G")));
        let ev = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), Some(k("shift-tab")));
        let ev = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(Key::from_event(&ev), Some(k("ctrl-c")));
    }

    #[test]
    fn every_builtin_keymap_loads_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in BUILTIN {
            let (map, diags) = Keymap::load(name, dir.path());
            assert!(diags.is_empty(), "{name}: {diags:#?}");
            assert!(
                map.key_for(Mode::Global, &Action::Quit).is_some(),
                "{name} can quit"
            );
            assert!(
                map.key_for(Mode::Help, &Action::ToggleHelp).is_some(),
                "{name} can close help"
            );
        }
    }

    #[test]
    fn resolution_prefers_the_pane_then_global_and_handles_sequences() {
        let (map, diags) = load_user(
            "t",
            &[(
                "t",
                "inherits = \"\"\n[global]\nq = \"quit\"\n\"g g\" = \"scroll_top\"\n[chat]\nq = \"focus_next\"\n",
            )],
        );
        assert!(diags.is_empty(), "{diags:?}");
        let mut p = Vec::new();
        let chat = [Mode::Chat, Mode::Global];
        let ingest = [Mode::Ingest, Mode::Global];
        assert_eq!(
            map.resolve(&chat, &mut p, k("q")),
            Resolved::Action(Action::FocusNext)
        );
        assert_eq!(
            map.resolve(&ingest, &mut p, k("q")),
            Resolved::Action(Action::Quit)
        );
        assert_eq!(map.resolve(&ingest, &mut p, k("g")), Resolved::Pending);
        assert_eq!(
            map.resolve(&ingest, &mut p, k("g")),
            Resolved::Action(Action::ScrollTop)
        );
        assert!(p.is_empty());
        // A broken-off sequence lets the second key act on its own.
        assert_eq!(map.resolve(&ingest, &mut p, k("g")), Resolved::Pending);
        assert_eq!(
            map.resolve(&ingest, &mut p, k("q")),
            Resolved::Action(Action::Quit)
        );
        assert_eq!(map.resolve(&ingest, &mut p, k("x")), Resolved::Unbound);
    }

    #[test]
    fn user_file_overrides_builtin_per_key() {
        let (map, diags) = load_user(
            "default",
            &[("default", "[global]\nQ = \"quit\"\nq = \"none\"\n")],
        );
        assert!(diags.is_empty(), "{diags:?}");
        let mut p = Vec::new();
        let m = [Mode::Ingest, Mode::Global];
        assert_eq!(
            map.resolve(&m, &mut p, k("Q")),
            Resolved::Action(Action::Quit)
        );
        assert_eq!(
            map.resolve(&m, &mut p, k("q")),
            Resolved::Unbound,
            "unbound with none"
        );
        // Untouched built-in keys remain.
        assert_eq!(
            map.resolve(&m, &mut p, k("tab")),
            Resolved::Action(Action::FocusNext)
        );
    }

    #[test]
    fn a_new_user_keymap_starts_from_default_and_can_inherit() {
        let (map, _) = load_user("mine", &[("mine", "[global]\nx = \"quit\"\n")]);
        assert!(map.key_for(Mode::Global, &Action::FocusNext).is_some());
        let (map, _) = load_user("mine", &[("mine", "inherits = \"vim\"\n")]);
        let mut p = Vec::new();
        assert_eq!(
            map.resolve(&[Mode::Memory, Mode::Global], &mut p, k("G")),
            Resolved::Action(Action::ScrollBottom)
        );
    }

    #[test]
    fn bad_entries_are_warnings_with_lines() {
        let src =
            "[global]\n\"hyper-q\" = \"quit\"\nx = \"explode\"\n[nowhere]\ny = \"quit\"\nz = 3\n";
        let (map, diags) = load_user("bad", &[("bad", src)]);
        let lines: Vec<_> = diags.iter().map(|d| (d.line, d.message.clone())).collect();
        assert_eq!(diags.len(), 3, "{lines:#?}");
        assert!(diags[0].file.ends_with("bad.toml"));
        assert_eq!(diags[0].line, 2);
        assert!(diags[0].message.contains("unknown key `hyper-q`"));
        assert_eq!(diags[1].line, 3);
        assert!(diags[1].message.contains("unknown action `explode`"));
        assert_eq!(diags[2].line, 4);
        assert!(diags[2].message.contains("unknown mode [nowhere]"));
        // Everything else still works.
        assert!(map.key_for(Mode::Global, &Action::Quit).is_some());
    }

    #[test]
    fn syntax_errors_name_the_line_and_keep_the_builtin() {
        let (map, diags) = load_user("default", &[("default", "[global]\nq = \"quit\n")]);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].line, 2, "{:?}", diags[0]);
        assert!(map.key_for(Mode::Global, &Action::Quit).is_some());
    }

    #[test]
    fn duplicates_and_hidden_sequences_are_reported() {
        let src = "[global]\n\"ctrl-x\" = \"quit\"\n\"C-x\" = \"refresh\"\ng = \"focus_next\"\n\"g g\" = \"scroll_top\"\n";
        let (_, diags) = load_user("dup", &[("dup", src)]);
        assert_eq!(diags.len(), 2, "{diags:#?}");
        assert_eq!(diags[0].line, 3);
        assert!(
            diags[0].message.contains("same key as `ctrl-x` on line 2"),
            "{}",
            diags[0]
        );
        assert_eq!(diags[1].line, 5);
        assert!(
            diags[1].message.contains("can never be typed"),
            "{}",
            diags[1]
        );
    }

    #[test]
    fn unknown_name_falls_back_to_default_with_a_warning() {
        let (map, diags) = load_user("nope", &[]);
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("no keymap named `nope`"));
        assert!(map.key_for(Mode::Global, &Action::Quit).is_some());
    }

    #[test]
    fn inherit_loops_stop() {
        let (_, diags) = load_user(
            "a",
            &[("a", "inherits = \"b\"\n"), ("b", "inherits = \"a\"\n")],
        );
        assert!(
            diags.iter().any(|d| d.message.contains("loop")),
            "{diags:?}"
        );
    }
}
