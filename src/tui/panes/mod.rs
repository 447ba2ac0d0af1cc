//! One file per pane; each turns `&State` into the lines it shows.

mod chat;
mod ingest;
mod memory;
pub mod training;

use ratatui::text::{Line, Span};

use super::theme::Theme;
use super::ui::View;
use crate::app::{Pane, State};
use crate::models::ModelKind;
use crate::status::StatusReport;

pub fn lines(pane: Pane, state: &State, view: &View, width: u16) -> Vec<Line<'static>> {
    let t = view.theme;
    let Some(report) = &state.overview else {
        return vec![Line::styled("Reading the store…", t.get("ui.text.dim"))];
    };
    match pane {
        Pane::Ingest => ingest::lines(state, report, view, width),
        Pane::Memory => memory::lines(report, t),
        Pane::Training => training::lines(state, report, t),
        Pane::Chat => chat::lines(report, t),
    }
}

/// The line a pane's selection is on, to keep it in view.
pub fn selected_line(pane: Pane, state: &State) -> Option<usize> {
    match pane {
        Pane::Ingest => state
            .contacts
            .as_ref()
            .map(|v| ingest::CONTACTS_HEADER + v.selected),
        _ => None,
    }
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
fn models_line(label: &str, kind: ModelKind, report: &StatusReport, t: &Theme) -> Line<'static> {
    let found: Vec<&str> = report
        .models
        .iter()
        .filter(|m| m.kind == kind)
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
