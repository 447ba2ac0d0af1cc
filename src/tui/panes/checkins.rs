//! The Check-ins view (an overlay like the help: upcoming, then history) and
//! the check-in opened in the chat as the twin's first turn.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Padding, Paragraph, Wrap};

use crate::app::{Action, State};
use crate::checkin::job::Listed;
use crate::checkin::rules::RuleRow;
use crate::tui::keymap::Mode;
use crate::tui::theme::Theme;
use crate::tui::ui::View;

/// "2026-11-21T08:30:00+01:00" -> "Sat 21 Nov 08:30".
fn short(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| d.format("%a %-d %b %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn row(r: &Listed, selected: bool, t: &Theme) -> Vec<Line<'static>> {
    let mark = if selected { "▶ " } else { "  " };
    let when = r.delivered.as_deref().unwrap_or(&r.due);
    let about = r
        .subject
        .as_ref()
        .map(|s| format!(" · {s}"))
        .unwrap_or_default();
    let style = if selected {
        t.get("ui.text.em")
    } else {
        t.get("ui.text")
    };
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{mark}{:<17}", short(when)), style),
        Span::styled(format!("{:<10}", r.status), t.get("ui.text.dim")),
        Span::styled(format!("{}{about}", r.rule), style),
    ])];
    if let Some(text) = &r.text {
        out.push(Line::styled(format!("    {text}"), t.get("ui.text")));
    }
    if let Some(reason) = &r.reason {
        out.push(Line::styled(format!("    {reason}"), t.get("ui.text.dim")));
    }
    out
}

fn rule_row(r: &RuleRow, selected: bool, t: &Theme) -> Vec<Line<'static>> {
    let mark = if selected { "▶ " } else { "  " };
    let style = if selected {
        t.get("ui.text.em")
    } else {
        t.get("ui.text")
    };
    let (state, state_style) = if r.problem.is_some() {
        ("broken", t.get("ui.notice.error"))
    } else if r.enabled {
        ("on", t.get("ui.text.dim"))
    } else {
        ("off", t.get("ui.text.dim"))
    };
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{mark}{:<28}", r.rule), style),
        Span::styled(format!("{state:<7}"), state_style),
        Span::styled(
            r.cron
                .as_ref()
                .map(|c| format!("cron {c}"))
                .unwrap_or_default(),
            t.get("ui.text.dim"),
        ),
    ])];
    if let Some(p) = &r.problem {
        out.push(Line::styled(format!("    {p}"), t.get("ui.notice.error")));
    }
    out
}

/// The Check-ins overlay.
pub fn render_overlay(frame: &mut Frame, area: Rect, state: &State, view: &View) {
    let t = view.theme;
    let c = &state.checkins;
    let selected = c.view.unwrap_or(0);
    let w = area.width.saturating_sub(4).min(100);
    let h = area.height.saturating_sub(2);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line> = vec![Line::styled("Rules", t.get("ui.help.section"))];
    let mut selected_line = 0;
    if c.rules.is_empty() {
        lines.push(Line::styled(
            "  no rule: the twin checks in only when your messages ask for it",
            t.get("ui.text.dim"),
        ));
    }
    for (i, r) in c.rules.iter().enumerate() {
        if i == selected {
            selected_line = lines.len();
        }
        lines.extend(rule_row(r, i == selected, t));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Upcoming", t.get("ui.help.section")));
    let first = c.rules.len();
    if c.upcoming.is_empty() {
        lines.push(Line::styled(
            "  nothing planned (checkin.rules in config.toml)",
            t.get("ui.text.dim"),
        ));
    }
    for (i, r) in c.upcoming.iter().enumerate() {
        let i = first + i;
        if i == selected {
            selected_line = lines.len();
        }
        lines.extend(row(r, i == selected, t));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("History", t.get("ui.help.section")));
    if c.history.is_empty() {
        lines.push(Line::styled("  no check-in yet", t.get("ui.text.dim")));
    }
    for (j, r) in c.history.iter().enumerate() {
        let i = first + c.upcoming.len() + j;
        if i == selected {
            selected_line = lines.len();
        }
        lines.extend(row(r, i == selected, t));
    }
    let on_rule = c.rule(selected).is_some();
    let keys: &[(Action, &str)] = if on_rule {
        &[
            (Action::EditCheckinRule, "edit"),
            (Action::ToggleCheckinRule, "on/off"),
            (Action::DeleteCheckinRule, "delete"),
            (Action::AddCheckinRule, "add"),
            (Action::ToggleCheckins, "close"),
        ]
    } else {
        &[
            (Action::SnoozeCheckin, "snooze"),
            (Action::DismissCheckin, "dismiss"),
            (Action::OpenCheckin, "open in chat"),
            (Action::AddCheckinRule, "add rule"),
            (Action::ToggleCheckins, "close"),
        ]
    };
    let hint = keys
        .iter()
        .filter_map(|(a, what)| {
            view.keymap
                .key_for(Mode::Checkins, a)
                .map(|k| format!("{k} {what}"))
        })
        .collect::<Vec<_>>()
        .join(" · ");
    let inner_h = h.saturating_sub(2);
    let scroll = (selected_line as u16 + 3).saturating_sub(inner_h);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(t.get("ui.border.focus"))
        .padding(Padding::horizontal(1))
        .title(Span::styled(" Check-ins ", t.get("ui.title.focus")))
        .title_bottom(Span::styled(format!(" {hint} "), t.get("ui.text.dim")))
        .style(t.get("ui.help"));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        rect,
    );
}

/// Over the chat a check-in began: that it is one, and the messages it cites
/// (its text is the conversation's first turn, right below).
pub fn opening_lines(state: &State, t: &Theme) -> Vec<Line<'static>> {
    let Some(o) = &state.checkins.opening else {
        return Vec::new();
    };
    let mut out = vec![Line::from(vec![
        Span::styled("twin ", t.get("ui.text.em")),
        Span::styled("(check-in: reply to continue it)", t.get("ui.text.dim")),
    ])];
    for c in &o.citations {
        out.push(Line::styled(
            format!("  [{}] {}: {}", c.id, c.author, c.text),
            t.get("ui.text.dim"),
        ));
    }
    out.push(Line::raw(""));
    out
}
