//! One file per pane; each turns `&State` into the lines it shows.

mod chat;
pub mod checkins;
mod ingest;
mod memory;
pub mod training;

use ratatui::text::{Line, Span};

use super::theme::Theme;
use super::ui::View;
use crate::app::{Pane, State};
use crate::models::ModelFile;
use crate::status::StatusReport;

pub fn lines(pane: Pane, state: &State, view: &View, width: u16) -> Vec<Line<'static>> {
    let t = view.theme;
    let Some(report) = &state.overview else {
        return vec![Line::styled("Reading the store…", t.get("ui.text.dim"))];
    };
    match pane {
        Pane::Ingest => ingest::lines(state, report, view, width),
        Pane::Memory => memory::lines(state, report, view, width),
        Pane::Training => training::lines(state, report, t),
        Pane::Chat => {
            let mut out = checkins::opening_lines(state, t);
            out.extend(chat::lines(state, report, view, width));
            out
        }
    }
}

/// Lines pinned at the bottom of a pane, under its scrolling content (the chat input).
pub fn footer(pane: Pane, state: &State, view: &View, width: u16) -> Vec<Line<'static>> {
    match pane {
        Pane::Chat if state.overview.is_some() => chat::footer(state, view, width),
        _ => Vec::new(),
    }
}

/// Whether a pane's scroll offset counts lines up from its bottom (a chat
/// follows its newest line) instead of down from its top.
pub fn anchored_at_bottom(pane: Pane) -> bool {
    pane == Pane::Chat
}

/// What a pane adds to the status bar (the chat's speed).
pub fn status(state: &State) -> Option<String> {
    chat::status(state)
}

/// The line a pane's selection is on, to keep it in view.
/// The line a pane's selection is on, to keep it in view (lines `width` wide).
pub fn selected_line(pane: Pane, state: &State, width: u16) -> Option<usize> {
    match pane {
        Pane::Ingest => state
            .contacts
            .as_ref()
            .map(|v| ingest::CONTACTS_HEADER + v.selected),
        Pane::Chat => state.chat.sessions.as_ref().map(|v| 2 + v.selected),
        Pane::Memory => memory::selected_line(state, width),
        _ => None,
    }
}

/// Word-wrap `s` to lines of at most `width` characters (longer words are cut);
/// line breaks in `s` are kept.
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for word in para.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > width {
                if len > 0 {
                    out.push(std::mem::take(&mut line));
                    len = 0;
                }
                out.push(word.drain(..width).collect());
            }
            if word.is_empty() {
                continue;
            }
            if len > 0 && len + 1 + word.len() > width {
                out.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            len += word.len();
            line.extend(word);
        }
        out.push(line);
    }
    out
}

/// `  label      123` with the number highlighted.
fn count(label: &str, n: u64, t: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("  {label:<15}"), t.get("ui.text")),
        Span::styled(format!("{n:>9}"), t.get("ui.count")),
    ])
}

fn dim(s: impl Into<String>, t: &Theme) -> Line<'static> {
    Line::styled(s.into(), t.get("ui.text.dim"))
}

fn text(s: impl Into<String>, t: &Theme) -> Line<'static> {
    Line::styled(s.into(), t.get("ui.text"))
}

fn command(s: impl Into<String>, t: &Theme) -> Line<'static> {
    Line::styled(format!("  {}", s.into()), t.get("ui.text.em"))
}

/// "model: NAME" or where none was found.
fn models_line(
    label: &str,
    wanted: fn(&ModelFile) -> bool,
    report: &StatusReport,
    t: &Theme,
) -> Line<'static> {
    let found: Vec<&str> = report
        .models
        .iter()
        .filter(|m| wanted(m))
        .map(|m| m.name.as_str())
        .collect();
    if found.is_empty() {
        Line::from(vec![
            Span::styled(format!("{label}: "), t.get("ui.text")),
            Span::styled(
                format!("none in {}", report.models_dir.display()),
                t.get("ui.text.dim"),
            ),
        ])
    } else {
        Line::from(vec![
            Span::styled(format!("{label}: "), t.get("ui.text")),
            Span::styled(found.join(", "), t.get("ui.text.em")),
        ])
    }
}
