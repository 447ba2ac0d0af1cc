//! Themes: TOML files with an optional `inherits`, a `[palette]` of named colours,
//! and style keys with dotted fallback (`ui.border.focus` -> `ui.border` -> `ui`).
//!
//! ```toml
//! inherits = "dark"
//! "ui.border.focus" = { fg = "accent", modifiers = ["bold"] }
//! "ui.text.dim" = "gray"          # a string is the foreground colour
//! [palette]                       # last: keys after a [table] belong to it
//! accent = "#ff8800"
//! ```
//! Built-ins are embedded; `<config>/themes/NAME.toml` is layered over the built-in
//! of the same name style by style. Colours are reduced to what the terminal can
//! show (256 or 16 colours, or none under NO_COLOR).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use toml::de::{DeTable, DeValue};

use crate::diag::Diagnostic;

pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("base16", include_str!("../../themes/base16.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

/// Every style key the UI asks for. A theme key outside these (or their dotted
/// prefixes) is reported as a likely typo.
pub const STYLE_KEYS: &[&str] = &[
    "ui.text",
    "ui.text.dim",
    "ui.text.em",
    "ui.count",
    "ui.border",
    "ui.border.focus",
    "ui.title",
    "ui.title.focus",
    "ui.tabs",
    "ui.tabs.active",
    "ui.statusbar",
    "ui.statusbar.job",
    "ui.statusbar.keys",
    "ui.notice.info",
    "ui.notice.warn",
    "ui.notice.error",
    "ui.help",
    "ui.help.key",
    "ui.help.section",
    "chat.user",
    "chat.twin",
];

/// What the terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorDepth {
    TrueColor,
    Ansi256,
    Ansi16,
    Mono,
}

/// The terminal as twin sees it, from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermEnv {
    pub term: Option<String>,
    pub colorterm: Option<String>,
    pub no_color: bool,
}

impl TermEnv {
    pub fn from_env() -> TermEnv {
        let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        TermEnv {
            term: var("TERM"),
            colorterm: var("COLORTERM"),
            no_color: var("NO_COLOR").is_some(),
        }
    }

    /// Colours the terminal supports (ignoring NO_COLOR).
    pub fn depth(&self) -> ColorDepth {
        let colorterm = self.colorterm.as_deref().unwrap_or("");
        let term = self.term.as_deref().unwrap_or("");
        if term.is_empty() || term == "dumb" {
            ColorDepth::Mono
        } else if colorterm == "truecolor" || colorterm == "24bit" {
            ColorDepth::TrueColor
        } else if term.contains("256") || term.contains("direct") {
            ColorDepth::Ansi256
        } else {
            ColorDepth::Ansi16
        }
    }

    /// The theme and depth for config value `ui.theme`, and why.
    pub fn choose(&self, configured: &str) -> (String, ColorDepth, String) {
        if configured != "auto" {
            let depth = self.depth();
            return (
                configured.to_string(),
                depth,
                format!("ui.theme = \"{configured}\" in config"),
            );
        }
        if self.no_color {
            return ("mono".into(), ColorDepth::Mono, "NO_COLOR is set".into());
        }
        match self.depth() {
            ColorDepth::Mono => (
                "mono".into(),
                ColorDepth::Mono,
                "the terminal has no colours (TERM)".into(),
            ),
            ColorDepth::TrueColor => (
                "dark".into(),
                ColorDepth::TrueColor,
                "COLORTERM says truecolor".into(),
            ),
            ColorDepth::Ansi256 => (
                "dark".into(),
                ColorDepth::Ansi256,
                "TERM says 256 colours".into(),
            ),
            ColorDepth::Ansi16 => (
                "base16".into(),
                ColorDepth::Ansi16,
                "TERM says 16 colours".into(),
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub depth: ColorDepth,
    styles: BTreeMap<String, Style>,
}

/// A style as written, resolved once the whole palette is known.
#[derive(Debug, Clone)]
struct StyleDef {
    fg: Option<(String, std::ops::Range<usize>)>,
    bg: Option<(String, std::ops::Range<usize>)>,
    modifiers: Modifier,
    file: PathBuf,
    src: std::sync::Arc<str>,
}

#[derive(Default)]
struct Layers {
    palette: BTreeMap<String, Color>,
    styles: BTreeMap<String, StyleDef>,
}

impl Theme {
    /// Load theme `name` for a terminal of `depth`.
    pub fn load(name: &str, user_dir: &Path, depth: ColorDepth) -> (Theme, Vec<Diagnostic>) {
        let mut layers = Layers::default();
        let mut diags = Vec::new();
        apply_named(&mut layers, name, user_dir, &mut diags, 0);
        let mut styles = BTreeMap::new();
        for (key, def) in &layers.styles {
            let mut style = Style::default().add_modifier(def.modifiers);
            for (slot, is_fg) in [(&def.fg, true), (&def.bg, false)] {
                let Some((text, span)) = slot else { continue };
                match parse_color(text, &layers.palette) {
                    Some(c) => {
                        style = if is_fg { style.fg(c) } else { style.bg(c) };
                    }
                    None => diags.push(Diagnostic::at(
                        &def.file,
                        &def.src,
                        Some(span.clone()),
                        format!("unknown colour `{text}`: use a [palette] name, \"#rrggbb\", 0-255, or a name such as \"red\" or \"light-blue\""),
                    )),
                }
            }
            styles.insert(key.clone(), reduce(style, depth));
        }
        (
            Theme {
                name: name.to_string(),
                depth,
                styles,
            },
            diags,
        )
    }

    /// The style for `key`, falling back along its dots, then to the terminal default.
    pub fn get(&self, key: &str) -> Style {
        let mut k = key;
        loop {
            if let Some(s) = self.styles.get(k) {
                return *s;
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return Style::default(),
            }
        }
    }
}

fn apply_named(
    layers: &mut Layers,
    name: &str,
    user_dir: &Path,
    diags: &mut Vec<Diagnostic>,
    depth: usize,
) {
    let user_path = user_dir.join(format!("{name}.toml"));
    if depth > 8 {
        diags.push(Diagnostic {
            file: user_path,
            line: 1,
            column: 1,
            message: "themes inherit in a loop; remove one `inherits`".into(),
        });
        return;
    }
    let builtin = BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
    let user = std::fs::read_to_string(&user_path).ok();
    if builtin.is_none() && user.is_none() {
        diags.push(Diagnostic {
            file: user_path,
            line: 1,
            column: 1,
            message: format!(
                "no theme named `{name}` (built-ins: {}); using `dark`",
                BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        apply_named(layers, "dark", user_dir, diags, depth + 1);
        return;
    }
    if let Some(src) = builtin {
        apply_file(
            layers,
            &PathBuf::from(format!("<built-in theme {name}>")),
            src,
            user_dir,
            diags,
            depth,
        );
    }
    if let Some(src) = user {
        apply_file(layers, &user_path, &src, user_dir, diags, depth);
    }
}

fn apply_file(
    layers: &mut Layers,
    file: &Path,
    src: &str,
    user_dir: &Path,
    diags: &mut Vec<Diagnostic>,
    depth: usize,
) {
    let table = match DeTable::parse(src) {
        Ok(t) => t.into_inner(),
        Err(e) => {
            diags.push(Diagnostic::from_toml(file, src, &e));
            return;
        }
    };
    let shared: std::sync::Arc<str> = src.into();
    let at = |span: std::ops::Range<usize>, msg: String| Diagnostic::at(file, src, Some(span), msg);
    if let Some((_, v)) = table.iter().find(|(k, _)| k.get_ref() == "inherits") {
        match v.get_ref().as_str() {
            Some(parent) => apply_named(layers, parent, user_dir, diags, depth + 1),
            None => diags.push(at(
                v.span(),
                "`inherits` must be a theme name in quotes".into(),
            )),
        }
    }
    for (key, value) in crate::diag::in_order(&table) {
        let key_name = key.get_ref().as_ref();
        match key_name {
            "inherits" => {}
            "palette" => {
                let DeValue::Table(pal) = value.get_ref() else {
                    diags.push(at(
                        value.span(),
                        "[palette] must be a table of name = \"#rrggbb\"".into(),
                    ));
                    continue;
                };
                for (name, c) in crate::diag::in_order(pal) {
                    match c.get_ref().as_str().and_then(|s| parse_color(s, &layers.palette)) {
                        Some(color) => {
                            layers.palette.insert(name.get_ref().to_string(), color);
                        }
                        None => diags.push(at(c.span(), format!("palette colour `{}` is not a colour: use \"#rrggbb\" or a colour name", name.get_ref()))),
                    }
                }
            }
            _ => {
                if !STYLE_KEYS
                    .iter()
                    .any(|k| *k == key_name || k.starts_with(&format!("{key_name}.")))
                {
                    diags.push(at(
                        key.span(),
                        format!(
                            "unknown style `{key_name}`; styles twin uses: {}",
                            STYLE_KEYS.join(", ")
                        ),
                    ));
                    continue;
                }
                match style_def(value.get_ref(), value.span(), file, &shared) {
                    Ok(def) => {
                        layers.styles.insert(key_name.to_string(), def);
                    }
                    Err((span, msg)) => diags.push(at(span, msg)),
                }
            }
        }
    }
}

type SpanErr = (std::ops::Range<usize>, String);

fn style_def(
    value: &DeValue<'_>,
    span: std::ops::Range<usize>,
    file: &Path,
    src: &std::sync::Arc<str>,
) -> Result<StyleDef, SpanErr> {
    let mut def = StyleDef {
        fg: None,
        bg: None,
        modifiers: Modifier::empty(),
        file: file.to_path_buf(),
        src: src.clone(),
    };
    match value {
        DeValue::String(s) => def.fg = Some((s.to_string(), span)),
        DeValue::Table(t) => {
            for (k, v) in crate::diag::in_order(t) {
                match k.get_ref().as_ref() {
                    "fg" | "bg" => {
                        let s = v.get_ref().as_str().ok_or((
                            v.span(),
                            format!("`{}` must be a colour in quotes", k.get_ref()),
                        ))?;
                        let slot = if k.get_ref() == "fg" {
                            &mut def.fg
                        } else {
                            &mut def.bg
                        };
                        *slot = Some((s.to_string(), v.span()));
                    }
                    "modifiers" => {
                        let arr = v.get_ref().as_array().ok_or((
                            v.span(),
                            "`modifiers` must be a list such as [\"bold\"]".to_string(),
                        ))?;
                        for m in arr.iter() {
                            let name = m.get_ref().as_str().unwrap_or("");
                            def.modifiers |= parse_modifier(name).ok_or((
                                m.span(),
                                format!("unknown modifier `{name}`; use bold, dim, italic, underlined, reversed, crossed_out, slow_blink"),
                            ))?;
                        }
                    }
                    other => {
                        return Err((
                            k.span(),
                            format!("unknown style field `{other}`; use fg, bg, modifiers"),
                        ));
                    }
                }
            }
        }
        _ => {
            return Err((
                span,
                "a style is a colour in quotes or a table { fg, bg, modifiers }".into(),
            ));
        }
    }
    Ok(def)
}

fn parse_modifier(s: &str) -> Option<Modifier> {
    Some(match s {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" => Modifier::UNDERLINED,
        "reversed" => Modifier::REVERSED,
        "crossed_out" => Modifier::CROSSED_OUT,
        "slow_blink" => Modifier::SLOW_BLINK,
        _ => return None,
    })
}

const ANSI: [(&str, Color); 17] = [
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("dark-gray", Color::DarkGray),
    ("light-red", Color::LightRed),
    ("light-green", Color::LightGreen),
    ("light-yellow", Color::LightYellow),
    ("light-blue", Color::LightBlue),
    ("light-magenta", Color::LightMagenta),
    ("light-cyan", Color::LightCyan),
    ("white", Color::White),
    ("reset", Color::Reset),
];

fn parse_color(s: &str, palette: &BTreeMap<String, Color>) -> Option<Color> {
    if let Some(c) = palette.get(s) {
        return Some(*c);
    }
    if let Some(hex) = s.strip_prefix('#')
        && hex.len() == 6
    {
        let v = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    if let Ok(i) = s.parse::<u8>() {
        return Some(Color::Indexed(i));
    }
    ANSI.iter()
        .find(|(n, _)| *n == s.replace('_', "-"))
        .map(|(_, c)| *c)
}

/// Reduce a style's colours to what the terminal shows.
fn reduce(style: Style, depth: ColorDepth) -> Style {
    let conv = |c: Option<Color>| -> Option<Color> {
        let c = c?;
        match (depth, c) {
            (ColorDepth::Mono, _) => None,
            (ColorDepth::TrueColor, c) => Some(c),
            (ColorDepth::Ansi256, Color::Rgb(r, g, b)) => {
                Some(Color::Indexed(nearest_256(r, g, b)))
            }
            (ColorDepth::Ansi16, Color::Rgb(r, g, b)) => Some(nearest_16(r, g, b)),
            (ColorDepth::Ansi16, Color::Indexed(i)) if i >= 16 => {
                let (r, g, b) = index_rgb(i);
                Some(nearest_16(r, g, b))
            }
            (_, c) => Some(c),
        }
    };
    let mut out = Style::default().add_modifier(style.add_modifier);
    out.fg = conv(style.fg);
    out.bg = conv(style.bg);
    out
}

const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

fn index_rgb(i: u8) -> (u8, u8, u8) {
    match i {
        16..=231 => {
            let i = i - 16;
            (
                CUBE[(i / 36) as usize],
                CUBE[(i / 6 % 6) as usize],
                CUBE[(i % 6) as usize],
            )
        }
        232..=255 => {
            let v = 8 + 10 * (i - 232);
            (v, v, v)
        }
        _ => ANSI16_RGB[i as usize].1,
    }
}

fn dist(a: (u8, u8, u8), b: (u8, u8, u8)) -> u32 {
    let d = |x: u8, y: u8| (x as i32 - y as i32).pow(2) as u32;
    d(a.0, b.0) * 3 + d(a.1, b.1) * 4 + d(a.2, b.2) * 2
}

/// The closest xterm-256 colour (cube or grey ramp; the 16 system colours vary by terminal).
fn nearest_256(r: u8, g: u8, b: u8) -> u8 {
    (16..=255u8)
        .min_by_key(|&i| dist(index_rgb(i), (r, g, b)))
        .unwrap_or(16)
}

const ANSI16_RGB: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

fn nearest_16(r: u8, g: u8, b: u8) -> Color {
    ANSI16_RGB
        .iter()
        .min_by_key(|(_, rgb)| dist(*rgb, (r, g, b)))
        .map(|(c, _)| *c)
        .unwrap_or(Color::Reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_user(
        name: &str,
        files: &[(&str, &str)],
        depth: ColorDepth,
    ) -> (Theme, Vec<Diagnostic>) {
        let dir = tempfile::tempdir().unwrap();
        for (n, src) in files {
            std::fs::write(dir.path().join(format!("{n}.toml")), src).unwrap();
        }
        Theme::load(name, dir.path(), depth)
    }

    #[test]
    fn every_builtin_theme_loads_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in BUILTIN {
            for depth in [
                ColorDepth::TrueColor,
                ColorDepth::Ansi256,
                ColorDepth::Ansi16,
                ColorDepth::Mono,
            ] {
                let (theme, diags) = Theme::load(name, dir.path(), depth);
                assert!(diags.is_empty(), "{name}: {diags:#?}");
                assert_ne!(
                    theme.get("ui.border.focus"),
                    theme.get("ui.border"),
                    "{name} shows focus at {depth:?}"
                );
            }
        }
    }

    #[test]
    fn mono_shows_focus_without_colour() {
        let dir = tempfile::tempdir().unwrap();
        let (t, _) = Theme::load("mono", dir.path(), ColorDepth::Mono);
        let focus = t.get("ui.title.focus");
        assert!(focus.fg.is_none() && focus.bg.is_none());
        assert!(focus.add_modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn dotted_keys_fall_back() {
        let (t, d) = load_user(
            "t",
            &[("t", "\"ui.border\" = \"red\"\n\"ui\" = \"blue\"\n")],
            ColorDepth::TrueColor,
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(t.get("ui.border.focus").fg, Some(Color::Red));
        assert_eq!(t.get("ui.help.key").fg, Some(Color::Blue));
        assert_eq!(t.get("chat.user"), Style::default());
    }

    #[test]
    fn inherits_and_palette_override_per_style() {
        let src = "inherits = \"dark\"\n[palette]\naccent = \"#ff0000\"\n";
        let (mine, d) = load_user("mine", &[("mine", src)], ColorDepth::TrueColor);
        assert!(d.is_empty(), "{d:?}");
        let dir = tempfile::tempdir().unwrap();
        let (dark, _) = Theme::load("dark", dir.path(), ColorDepth::TrueColor);
        // Styles that use the palette colour change; the rest are the parent's.
        assert_eq!(mine.get("ui.border.focus").fg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(mine.get("ui.text"), dark.get("ui.text"));
    }

    #[test]
    fn a_user_file_with_a_builtin_name_overrides_one_style() {
        let (t, d) = load_user(
            "dark",
            &[("dark", "\"ui.text.dim\" = \"#010203\"\n")],
            ColorDepth::TrueColor,
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(t.get("ui.text.dim").fg, Some(Color::Rgb(1, 2, 3)));
        assert!(
            t.get("ui.border.focus").fg.is_some(),
            "the rest of dark stays"
        );
    }

    #[test]
    fn colours_reduce_to_the_terminal() {
        let src = "\"ui.text\" = { fg = \"#ff0000\", bg = \"#000000\", modifiers = [\"bold\"] }\n";
        let (t, _) = load_user("t", &[("t", src)], ColorDepth::Ansi256);
        assert_eq!(t.get("ui.text").fg, Some(Color::Indexed(196)));
        let (t, _) = load_user("t", &[("t", src)], ColorDepth::Ansi16);
        assert_eq!(t.get("ui.text").fg, Some(Color::LightRed));
        let (t, _) = load_user("t", &[("t", src)], ColorDepth::Mono);
        assert_eq!(t.get("ui.text").fg, None);
        assert!(t.get("ui.text").add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn bad_entries_warn_with_lines() {
        let src = "\"ui.txt\" = \"red\"\n\"ui.text\" = \"purpleish\"\n\"ui.border\" = { fg = \"red\", modifiers = [\"sparkly\"] }\n";
        let (_, d) = load_user("t", &[("t", src)], ColorDepth::TrueColor);
        let got: Vec<_> = d
            .iter()
            .map(|d| {
                (
                    d.line,
                    d.message.split(' ').take(2).collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "unknown style".into()),
                (3, "unknown modifier".into()),
                (2, "unknown colour".into())
            ]
        );
    }

    #[test]
    fn auto_choice_follows_the_terminal() {
        let env = |term: &str, ct: &str, nc: bool| TermEnv {
            term: Some(term.into()).filter(|s: &String| !s.is_empty()),
            colorterm: Some(ct.into()).filter(|s: &String| !s.is_empty()),
            no_color: nc,
        };
        assert_eq!(
            env("xterm-256color", "truecolor", false).choose("auto").0,
            "dark"
        );
        assert_eq!(
            env("xterm-256color", "truecolor", false).choose("auto").1,
            ColorDepth::TrueColor
        );
        assert_eq!(
            env("tmux-256color", "", false).choose("auto").1,
            ColorDepth::Ansi256
        );
        assert_eq!(env("xterm", "", false).choose("auto").0, "base16");
        assert_eq!(
            env("xterm-256color", "truecolor", true).choose("auto").0,
            "mono"
        );
        assert_eq!(env("dumb", "", false).choose("auto").0, "mono");
        assert_eq!(env("", "", false).choose("auto").0, "mono");
        assert_eq!(env("xterm", "", false).choose("light").0, "light");
    }
}
