//! Drawing: the tab bar, the panes (all four, or the focused one), the status bar
//! and the help overlay. Everything renders from `&State`; nothing here changes it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Padding, Paragraph, Wrap};

use super::keymap::{Keymap, Mode};
use super::panes;
use super::theme::Theme;
use crate::app::{Action, Pane, State};
use crate::jobs::Level;

/// What rendering needs besides the state.
pub struct View<'a> {
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
}

/// Where things are on screen; also used to map mouse clicks.
pub struct Areas {
    pub tabs: Rect,
    pub panes: Vec<(Pane, Rect)>,
    pub status: Rect,
    /// Horizontal extent of each tab label in the tab bar.
    pub tab_spans: Vec<(Pane, u16, u16)>,
}

pub fn areas(area: Rect, state: &State, view: &View) -> Areas {
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let panes = if state.grid() {
        let [top, bottom] = Layout::vertical([Constraint::Fill(1); 2]).areas(body);
        let [a, b] = Layout::horizontal([Constraint::Fill(1); 2]).areas(top);
        let [c, d] = Layout::horizontal([Constraint::Fill(1); 2]).areas(bottom);
        Pane::ALL.into_iter().zip([a, b, c, d]).collect()
    } else {
        vec![(state.focus, body)]
    };
    let mut tab_spans = Vec::new();
    let mut x = tabs.x + 1;
    for pane in Pane::ALL {
        let w = tab_label(pane, view).chars().count() as u16;
        tab_spans.push((pane, x, x + w));
        x += w + 1;
    }
    Areas {
        tabs,
        panes,
        status,
        tab_spans,
    }
}

fn tab_label(pane: Pane, view: &View) -> String {
    let action = match pane {
        Pane::Ingest => Action::FocusIngest,
        Pane::Memory => Action::FocusMemory,
        Pane::Training => Action::FocusTraining,
        Pane::Chat => Action::FocusChat,
    };
    match view.keymap.key_for(Mode::Global, &action) {
        Some(k) => format!(" {k} {} ", pane.title()),
        None => format!(" {} ", pane.title()),
    }
}

pub fn render(frame: &mut Frame, state: &State, view: &View) {
    let area = frame.area();
    let a = areas(area, state, view);
    let t = view.theme;
    frame.render_widget(Block::default().style(t.get("ui.text")), area);

    // Tab bar.
    let mut spans = vec![Span::raw(" ")];
    for pane in Pane::ALL {
        let style = if pane == state.focus {
            t.get("ui.tabs.active")
        } else {
            t.get("ui.tabs")
        };
        spans.push(Span::styled(tab_label(pane, view), style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), a.tabs);
    let brand = " twin ";
    if a.tabs.width as usize > brand.len() + 40 {
        let r = Rect {
            x: a.tabs.right() - brand.len() as u16,
            width: brand.len() as u16,
            ..a.tabs
        };
        frame.render_widget(Span::styled(brand, t.get("ui.title")), r);
    }

    for (pane, rect) in &a.panes {
        render_pane(frame, *pane, *rect, state, view);
    }
    render_status(frame, a.status, state, view);
    // The Check-ins view first: its rule editor is a prompt drawn over it.
    if state.checkins.view.is_some() {
        panes::checkins::render_overlay(frame, area, state, view);
    }
    if let Some(prompt) = state.prompt.as_ref().filter(|p| !p.purpose.inline()) {
        render_prompt(frame, area, prompt, view);
    }
    if let Some(confirm) = &state.confirm {
        render_confirm(frame, area, confirm, view);
    }
    if state.help {
        render_help(frame, area, state, view);
    }
}

/// A text prompt over the bottom of the screen, above the status bar.
fn render_prompt(frame: &mut Frame, area: Rect, prompt: &crate::app::Prompt, view: &View) {
    let t = view.theme;
    let hint = [
        (Action::PromptComplete, "completes"),
        (Action::PromptSubmit, "accepts"),
        (Action::PromptCancel, "cancels"),
    ]
    .iter()
    .filter_map(|(a, what)| {
        view.keymap
            .key_for(Mode::Prompt, a)
            .map(|k| format!("{k} {what}"))
    })
    .collect::<Vec<_>>()
    .join(" · ");
    let height =
        if prompt.candidates.is_empty() { 3 } else { 4 }.min(area.height.saturating_sub(1));
    let rect = Rect {
        x: area.x,
        y: area.bottom().saturating_sub(height + 1),
        width: area.width,
        height,
    };
    let mut lines = vec![Line::from(vec![
        Span::styled(prompt.input.clone(), t.get("ui.text")),
        Span::styled("█", t.get("ui.text.em")),
    ])];
    if !prompt.candidates.is_empty() {
        let text = prompt.candidates.join("  ");
        // The rule editor says what is wrong with what is typed.
        let style = if text.starts_with('✗') {
            t.get("ui.notice.error")
        } else {
            t.get("ui.text.dim")
        };
        lines.push(Line::styled(text, style));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(t.get("ui.border.focus"))
        .padding(Padding::horizontal(1))
        .title(Span::styled(
            format!(" {} ", prompt.purpose.label()),
            t.get("ui.title.focus"),
        ))
        .title_bottom(Span::styled(format!(" {hint} "), t.get("ui.text.dim")));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(block).style(t.get("ui.text")),
        rect,
    );
}

/// A yes/no question in the middle of the screen.
fn render_confirm(frame: &mut Frame, area: Rect, confirm: &crate::app::Confirm, view: &View) {
    let t = view.theme;
    let hint = [(Action::ConfirmYes, "yes"), (Action::ConfirmNo, "no")]
        .iter()
        .filter_map(|(a, what)| {
            view.keymap
                .key_for(Mode::Confirm, a)
                .map(|k| format!("{k} {what}"))
        })
        .collect::<Vec<_>>()
        .join(" · ");
    let w = area.width.saturating_sub(4).min(64);
    let inner = w.saturating_sub(4).max(1) as usize;
    let mut lines = vec![Line::styled(confirm.question.clone(), t.get("ui.text.em"))];
    for d in &confirm.detail {
        lines.extend(
            panes::wrap(d, inner)
                .into_iter()
                .map(|l| Line::styled(l, t.get("ui.text"))),
        );
    }
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(t.get("ui.border.focus"))
        .padding(Padding::horizontal(1))
        .title(Span::styled(" Are you sure? ", t.get("ui.title.focus")))
        .title_bottom(Span::styled(format!(" {hint} "), t.get("ui.text.dim")));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(block).style(t.get("ui.text")),
        rect,
    );
}

fn render_pane(frame: &mut Frame, pane: Pane, rect: Rect, state: &State, view: &View) {
    let t = view.theme;
    let focused = pane == state.focus;
    let (border, title) = if focused {
        (t.get("ui.border.focus"), t.get("ui.title.focus"))
    } else {
        (t.get("ui.border"), t.get("ui.title"))
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(border)
        .padding(Padding::horizontal(1))
        .title(Span::styled(format!(" {} ", pane.title()), title));
    let width = rect.width.saturating_sub(4);
    let lines = panes::lines(pane, state, view, width);
    let mut inner = block.inner(rect);
    let footer = panes::footer(pane, state, view, width);
    let footer_h = (footer.len() as u16).min(inner.height.saturating_sub(1));
    if footer_h > 0 {
        let at = Rect {
            y: inner.bottom() - footer_h,
            height: footer_h,
            ..inner
        };
        inner.height -= footer_h;
        frame.render_widget(Paragraph::new(footer), at);
    }
    let mut scroll = scroll_of(pane, state, lines.len() as u16, inner.height);
    // A list with a selection scrolls to keep the selected line in view.
    if let Some(line) = panes::selected_line(pane, state, rect.width.saturating_sub(4)) {
        let line = line as u16;
        scroll = scroll
            .min(line)
            .max((line + 1).saturating_sub(inner.height));
    }
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0));
    frame.render_widget(block, rect);
    // A training run's loss chart sits above the pane's text when there is room.
    let chart_rows = panes::training::CHART_ROWS;
    if pane == Pane::Training && !state.train_curve.is_empty() && inner.height > chart_rows + 4 {
        let [top, rest] =
            Layout::vertical([Constraint::Length(chart_rows), Constraint::Min(1)]).areas(inner);
        panes::training::chart(frame, top, &state.train_curve, t);
        frame.render_widget(p, rest);
    } else {
        frame.render_widget(p, inner);
    }
}

/// The first line shown: the offset, or for a pane anchored at its bottom the
/// offset counted up from the last line.
fn scroll_of(pane: Pane, state: &State, lines: u16, height: u16) -> u16 {
    let max_scroll = lines.saturating_sub(height);
    let offset = state.scroll[pane.index()];
    if panes::anchored_at_bottom(pane) {
        max_scroll.saturating_sub(offset)
    } else {
        offset.min(max_scroll)
    }
}

/// Push-to-talk in the status bar: a level meter while recording.
fn voice_meter(job: &crate::app::JobView) -> String {
    if job.unit == crate::voice::LEVEL_UNIT || job.unit.is_empty() {
        let filled = (job.done.min(100) as usize * 8).div_ceil(100);
        format!("● rec {}{} ", "▮".repeat(filled), "▯".repeat(8 - filled))
    } else {
        "⟳ transcribing… ".to_string()
    }
}

fn render_status(frame: &mut Frame, rect: Rect, state: &State, view: &View) {
    let t = view.theme;
    let base = t.get("ui.statusbar");
    frame.render_widget(Block::default().style(base), rect);
    let mode = Mode::of_pane(state.focus);
    let hint = [(Action::ToggleHelp, "help"), (Action::Quit, "quit")]
        .iter()
        .filter_map(|(a, label)| view.keymap.key_for(mode, a).map(|k| format!("{k} {label}")))
        .collect::<Vec<_>>()
        .join("  ");
    let hint = format!(" {hint} ");
    let [left, right] = Layout::horizontal([
        Constraint::Min(1),
        Constraint::Length(hint.chars().count() as u16),
    ])
    .areas(rect);
    frame.render_widget(Span::styled(hint, t.get("ui.statusbar.keys")), right);

    let mut spans = vec![Span::styled(format!(" {} ", state.focus.title()), base)];
    if !state.pending_keys.is_empty() {
        spans.push(Span::styled(
            format!("{} … ", state.pending_keys),
            t.get("ui.statusbar.keys"),
        ));
    }
    if state.checkins.unread > 0 {
        let key = view
            .keymap
            .key_for(Mode::Global, &Action::ToggleCheckins)
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        spans.push(Span::styled(
            format!(
                "✉ {} check-in{}{key} ",
                state.checkins.unread,
                if state.checkins.unread == 1 { "" } else { "s" }
            ),
            t.get("ui.statusbar.job"),
        ));
    }
    if state.memory.status == crate::app::memory::MemoryStatus::Loading {
        spans.push(Span::styled("⟳ loading memory ", t.get("ui.statusbar.job")));
    }
    for job in state.jobs.values().filter(|j| j.kind != "checkin") {
        if job.kind == crate::voice::PTT_JOB {
            spans.push(Span::styled(voice_meter(job), t.get("ui.statusbar.job")));
            continue;
        }
        let pct = job
            .fraction()
            .map(|f| format!(" {}%", (f * 100.0) as u64))
            .unwrap_or_default();
        let speed = job.speed().map(|s| format!(" {s}")).unwrap_or_default();
        spans.push(Span::styled(
            format!("⟳ {}{pct}{speed} ", job.kind),
            t.get("ui.statusbar.job"),
        ));
    }
    if let Some(s) = panes::status(state) {
        spans.push(Span::styled(format!("{s}  "), t.get("ui.statusbar.job")));
    }
    if let Some(n) = state.notifications.back() {
        let (key, mark) = match n.level {
            Level::Info => ("ui.notice.info", "•"),
            Level::Warn => ("ui.notice.warn", "!"),
            Level::Error => ("ui.notice.error", "✗"),
        };
        let more = if state.notifications.len() > 1 {
            format!(" (+{})", state.notifications.len() - 1)
        } else {
            String::new()
        };
        spans.push(Span::styled(format!("{mark} {}{more}", n.text), t.get(key)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
}

fn render_help(frame: &mut Frame, area: Rect, state: &State, view: &View) {
    let t = view.theme;
    let w = area.width.saturating_sub(4).min(72);
    let h = area.height.saturating_sub(2);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line> = Vec::new();
    let mut modes = vec![Mode::Global, Mode::of_pane(state.focus)];
    if state.focus == Pane::Chat {
        modes.push(Mode::Compose);
    }
    modes.push(Mode::Checkins);
    match state.focus {
        Pane::Ingest => modes.push(Mode::Prompt),
        Pane::Memory => modes.extend([Mode::Prompt, Mode::Editor, Mode::Confirm]),
        _ => {}
    }
    modes.push(Mode::Help);
    for mode in modes {
        let entries = view.keymap.help(mode);
        if entries.is_empty() {
            continue;
        }
        let title = match mode {
            Mode::Global => "Everywhere".to_string(),
            Mode::Help => "In this help".to_string(),
            Mode::Compose => "While typing a message".to_string(),
            Mode::Checkins => "In the Check-ins view".to_string(),
            Mode::Prompt => "Typing in a box".to_string(),
            Mode::Editor => "In the editor".to_string(),
            Mode::Confirm => "When asked to confirm".to_string(),
            m => format!("In {}", m.name()),
        };
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(title, t.get("ui.help.section")));
        for (keys, action) in entries {
            let keys = keys.join(", ");
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<18} "), t.get("ui.help.key")),
                Span::styled(action.description(), t.get("ui.help")),
            ]));
        }
    }
    let max_scroll = (lines.len() as u16).saturating_sub(h.saturating_sub(2));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(t.get("ui.border.focus"))
        .padding(Padding::horizontal(1))
        .title(Span::styled(
            format!(" Keys · keymap {} ", view.keymap.name),
            t.get("ui.title.focus"),
        ))
        .style(t.get("ui.help"));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((state.help_scroll.min(max_scroll), 0))
            .style(Style::default()),
        rect,
    );
}
