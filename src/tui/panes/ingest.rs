use ratatui::text::{Line, Span};

use super::{command, count, dim, text};
use crate::app::{Action, ContactsView, JobView, State};
use crate::ingest::contacts::ContactRow;
use crate::status::StatusReport;
use crate::tui::keymap::Mode;
use crate::tui::ui::View;

pub fn lines(state: &State, r: &StatusReport, view: &View, width: u16) -> Vec<Line<'static>> {
    let t = view.theme;
    let key = |a: &Action| {
        view.keymap
            .key_for(Mode::Ingest, a)
            .unwrap_or_else(|| a.name())
    };
    if let (Some(v), Some(o)) = (&state.contacts, &state.ingest) {
        return contacts(v, &o.contacts, view);
    }
    let messages = r.count("messages");
    let mut out = vec![
        text("Your exported history, imported.", t),
        Line::raw(""),
        count("sources", r.count("sources"), t),
        count("messages", messages, t),
        count("contacts", r.count("contacts"), t),
        count("conversations", r.count("conversations"), t),
        count("documents", r.count("documents"), t),
        Line::raw(""),
    ];
    if let Some(o) = &state.ingest {
        match (o.me.how, &o.me.name) {
            ("confirmed", Some(n)) => out.push(Line::from(vec![
                Span::styled("You: ", t.get("ui.text")),
                Span::styled(n.clone(), t.get("ui.text.em")),
            ])),
            ("proposed", Some(n)) => out.push(Line::from(vec![
                Span::styled("You are probably ", t.get("ui.text")),
                Span::styled(n.clone(), t.get("ui.text.em")),
                Span::styled(format!(": press {} to confirm", key(&Action::ConfirmMe)), t.get("ui.text.dim")),
            ])),
            _ if messages > 0 => out.push(dim(
                "twin does not know which author is you yet: import with --me NAME or set identity.me",
                t,
            )),
            _ => {}
        }
    }
    for job in state.jobs.values().filter(|j| j.kind == "ingest") {
        out.push(Line::raw(""));
        out.extend(job_lines(job, view, width));
    }
    if let Some(o) = &state.ingest
        && !o.activity.is_empty()
    {
        out.push(Line::raw(""));
        out.push(text("Messages per day", t));
        out.extend(heatmap(&o.activity, width.saturating_sub(2) as usize, view));
    }
    if let Some(last) = &state.last_ingest {
        out.push(Line::raw(""));
        out.extend(last_import(last, view));
    }
    match &state.ingest {
        Some(o) if !o.sources.is_empty() => {
            out.push(Line::raw(""));
            out.push(text("Sources", t));
            for s in &o.sources {
                let mark = if s.complete {
                    ""
                } else {
                    " (interrupted: import again to finish)"
                };
                out.push(Line::from(vec![
                    Span::styled(format!("  {:<10}", s.format.name()), t.get("ui.text.em")),
                    Span::styled(format!("{:>9} ", s.messages), t.get("ui.count")),
                    Span::styled(format!("{}{mark}", s.path.display()), t.get("ui.text")),
                ]));
            }
            out.push(Line::raw(""));
            out.push(dim(
                format!("Press {} to import more.", key(&Action::StartIngest)),
                t,
            ));
        }
        _ => {
            out.push(dim("Nothing imported yet.", t));
            out.push(dim(
                format!(
                    "Press {} and give a file, folder or zip: exports from Signal, WhatsApp, Telegram, Discord, Messenger, Instagram, Slack, Google Chat, Hangouts, mail (mbox), notes (Markdown, Obsidian) and PDF are recognised. From a script:",
                    key(&Action::StartIngest)
                ),
                t,
            ));
            out.push(command("twin --batch ingest PATH... [--me NAME]", t));
            out.push(Line::raw(""));
            out.push(dim(
                format!(
                    "No exports at hand? Press {} for the demo twin: Sam, whose chats come from a public corpus, so every pane can be tried in a minute.",
                    key(&Action::StartDemo)
                ),
                t,
            ));
        }
    }
    out
}

/// Lines above the first contact in the list.
pub const CONTACTS_HEADER: usize = 3;

/// The contacts list: select with the scroll keys, mark one, merge it into another.
fn contacts(v: &ContactsView, rows: &[ContactRow], view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let key = |a: &Action| {
        view.keymap
            .key_for(Mode::Ingest, a)
            .unwrap_or_else(|| a.name())
    };
    let mut out = vec![
        text(format!("Contacts ({})", rows.len()), t),
        dim(
            format!(
                "{} marks a contact, {} merges the marked one into the selected, {} splits a name off, {} forgets one everywhere, {} never trains on one, {} closes",
                key(&Action::MarkContact),
                key(&Action::MergeContacts),
                key(&Action::SplitContact),
                key(&Action::ForgetContact),
                key(&Action::NeverTrainContact),
                key(&Action::ToggleContacts)
            ),
            t,
        ),
        Line::raw(""),
    ];
    for (i, c) in rows.iter().enumerate() {
        let cursor = if i == v.selected { "›" } else { " " };
        let mark = if v.marked == Some(i) { "●" } else { " " };
        let me = if c.me {
            " (you)"
        } else if c.never_train {
            " (never trained on)"
        } else {
            ""
        };
        let style = if i == v.selected {
            t.get("ui.tabs.active")
        } else {
            t.get("ui.text")
        };
        let formats: Vec<&str> = c.formats.iter().map(|f| f.name()).collect();
        let mut spans = vec![
            Span::styled(
                format!("{cursor}{mark}{:>7} ", c.messages),
                t.get("ui.count"),
            ),
            Span::styled(format!("{}{me}", c.name), style),
            Span::styled(format!("  {}", formats.join(",")), t.get("ui.text.dim")),
        ];
        let others: Vec<String> = c
            .names
            .iter()
            .filter(|n| **n != c.name)
            .cloned()
            .chain(c.handles.iter().cloned())
            .collect();
        if !others.is_empty() {
            spans.push(Span::styled(
                format!("  also {}", others.join(", ")),
                t.get("ui.text.dim"),
            ));
        }
        out.push(Line::from(spans));
    }
    out
}

fn job_lines(job: &JobView, view: &View, width: u16) -> Vec<Line<'static>> {
    let t = view.theme;
    let mut out = vec![Line::styled(
        format!(
            "⟳ {}",
            job.detail.clone().unwrap_or_else(|| job.title.clone())
        ),
        t.get("ui.text.em"),
    )];
    let bar_width = (width as usize).saturating_sub(40).clamp(10, 40);
    let (bar, pct) = match job.fraction() {
        Some(frac) => {
            let filled = (frac * bar_width as f64) as usize;
            (
                format!("{}{}", "█".repeat(filled), "░".repeat(bar_width - filled)),
                format!("{:>3}%", (frac * 100.0) as u64),
            )
        }
        None => ("░".repeat(bar_width), "   …".to_string()),
    };
    let speed = job.speed().unwrap_or_default();
    let eta = job
        .eta_secs()
        .map(|s| format!("ETA {}:{:02}", s / 60, s % 60))
        .unwrap_or_default();
    out.push(Line::from(vec![
        Span::styled(format!("  {bar} "), t.get("ui.count")),
        Span::styled(format!("{pct}  {speed}  {eta}"), t.get("ui.text")),
    ]));
    out
}

/// Calendar heatmap: a column per week, a row per weekday, the last weeks that fit.
fn heatmap(activity: &[(i64, u64)], width: usize, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let (Some(&(first_day, _)), Some(&(last_day, _))) = (activity.first(), activity.last()) else {
        return Vec::new();
    };
    // 1970-01-01 was a Thursday: Monday = 0.
    let weekday = |d: i64| (d + 3).rem_euclid(7);
    let spanned = (last_day - weekday(last_day) - (first_day - weekday(first_day))) / 7 + 1;
    let weeks = spanned.min(width.saturating_sub(5).clamp(1, 53) as i64);
    let start = last_day - weekday(last_day) - (weeks - 1) * 7;
    let counts: std::collections::HashMap<i64, u64> = activity.iter().copied().collect();
    let mut nonzero: Vec<u64> = activity
        .iter()
        .filter(|(d, n)| *d >= start && *n > 0)
        .map(|(_, n)| *n)
        .collect();
    nonzero.sort_unstable();
    let q = |p: f64| {
        nonzero
            .get(((nonzero.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let (q1, q2, q3) = (q(0.25), q(0.5), q(0.75));
    let level = |n: u64| match n {
        0 => '·',
        n if n <= q1 => '░',
        n if n <= q2 => '▒',
        n if n <= q3 => '▓',
        _ => '█',
    };
    (0..7)
        .map(|row| {
            let label = match row {
                0 => "Mon ",
                2 => "Wed ",
                4 => "Fri ",
                _ => "    ",
            };
            let cells: String = (0..weeks)
                .map(|w| {
                    let day = start + w * 7 + row;
                    if day > last_day {
                        ' '
                    } else {
                        level(counts.get(&day).copied().unwrap_or(0))
                    }
                })
                .collect();
            Line::from(vec![
                Span::styled(label, t.get("ui.text.dim")),
                Span::styled(cells, t.get("ui.count")),
            ])
        })
        .collect()
}

fn last_import(s: &serde_json::Value, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let n = |k: &str| s.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let files = s
        .get("files")
        .and_then(|f| f.as_array())
        .map(|a| a.len())
        .unwrap_or(0);
    let mut out = vec![text(
        format!(
            "Last import: {} messages ({} new) from {files} files, {} skipped",
            n("messages"),
            n("new"),
            n("skipped")
        ),
        t,
    )];
    for e in s
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .take(20)
    {
        let file = e.get("file").and_then(|v| v.as_str()).unwrap_or("?");
        let reason = e.get("reason").and_then(|v| v.as_str()).unwrap_or("");
        let at = match e.get("line").and_then(|v| v.as_u64()) {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        };
        out.push(Line::styled(
            format!("  {at}: {reason}"),
            t.get("ui.notice.warn"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::keymap::Keymap;
    use crate::tui::theme::{ColorDepth, Theme};

    #[test]
    fn heatmap_has_seven_rows_and_quartile_shades() {
        let dir = tempfile::tempdir().unwrap();
        let (keymap, _) = Keymap::load("default", dir.path());
        let (theme, _) = Theme::load("mono", dir.path(), ColorDepth::Mono);
        let view = View {
            theme: &theme,
            keymap: &keymap,
        };
        // 2024-01-01 is a Monday: day 19723.
        let activity: Vec<(i64, u64)> = (0..14).map(|i| (19723 + i, (i as u64 % 5) * 3)).collect();
        let rows = heatmap(&activity, 7, &view);
        assert_eq!(rows.len(), 7);
        let text: Vec<String> = rows
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.to_string()).collect())
            .collect();
        assert_eq!(text[0], "Mon ·▒", "Mondays: none, then 6 (the median)");
        assert!(text.iter().all(|r| r.chars().count() == 6));
    }
}
