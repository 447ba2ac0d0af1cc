//! The Memory pane: the list (newest first, or ranked search results) with
//! kind and contact filters, a memory's detail with its sources, the
//! conversation around them, the editor, the topics and the biography.
//!
//! Every line here is pre-wrapped to the pane's width, so a selection's line
//! number is exact and the pane keeps it in view.

use ratatui::text::{Line, Span};

use super::{command, count, dim, models_line, text, wrap};
use crate::app::memory::{
    ContextLine, Editing, MemoryDetail, MemoryRow, MemoryState, MemoryStatus, Screen, SourceContext,
};
use crate::app::{Action, PromptPurpose, State};
use crate::memory::report::SourceView;
use crate::memory::show_id;
use crate::models::ModelKind;
use crate::status::StatusReport;
use crate::tui::keymap::Mode;
use crate::tui::theme::Theme;
use crate::tui::ui::View;

/// Lines above the first row of the list, the topics and a topic's memories.
const LIST_HEADER: usize = 3;
/// Lines above the biography's text.
const BIO_HEADER: usize = 2;

fn key(view: &View, a: &Action) -> String {
    view.keymap
        .key_for(Mode::Memory, a)
        .unwrap_or_else(|| a.name())
}

/// "k1 what · k2 what", for the keys that are bound.
fn hints(view: &View, items: &[(Action, &str)]) -> String {
    items
        .iter()
        .filter_map(|(a, what)| {
            view.keymap
                .key_for(Mode::Memory, a)
                .map(|k| format!("{k} {what}"))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn truncate(s: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn lines(state: &State, r: &StatusReport, view: &View, width: u16) -> Vec<Line<'static>> {
    let t = view.theme;
    let w = width.max(20) as usize;
    let m = &state.memory;
    match &m.status {
        MemoryStatus::Loading => {
            return vec![
                text("What twin remembers about you.", t),
                Line::raw(""),
                dim("Loading memory (the embedding model and the index)…", t),
            ];
        }
        MemoryStatus::Failed(e) => {
            let mut out = vec![
                text("What twin remembers about you.", t),
                Line::raw(""),
                Line::styled("Memory could not be opened:", t.get("ui.notice.error")),
            ];
            out.extend(wrap(e, w).into_iter().map(|l| text(l, t)));
            out.push(Line::raw(""));
            out.push(dim("twin doctor checks the folders and the models.", t));
            return out;
        }
        MemoryStatus::Ready => {}
    }
    match m.screen() {
        None => list(state, r, view, w),
        Some(Screen::Detail(id)) => match &m.detail {
            Some(d) if d.id == id => detail(d, m.editing.as_ref(), view, w),
            _ => vec![dim(format!("Reading memory {}…", show_id(id)), t)],
        },
        Some(Screen::Source(id)) => match &m.source {
            Some(s) if s.memory == id => source(s, m, view, w).0,
            _ => vec![dim("Reading the conversation…", t)],
        },
        Some(Screen::Topics) => topics(m, view, w),
        Some(Screen::TopicMemories(i)) => topic_memories(m, i, view, w),
        Some(Screen::Bio) => bio(m, view, w).0,
    }
}

/// The line the selection is on, to keep it in view.
pub fn selected_line(state: &State, width: u16) -> Option<usize> {
    let m = &state.memory;
    if m.status != MemoryStatus::Ready {
        return None;
    }
    let w = width.max(20) as usize;
    match m.screen() {
        None => (!m.rows.is_empty()).then_some(LIST_HEADER + m.selected),
        Some(Screen::Topics) => {
            m.l1.as_ref()
                .filter(|l| !l.topics.is_empty())
                .map(|_| LIST_HEADER + m.topic_selected)
        }
        Some(Screen::TopicMemories(_)) => {
            (!m.topic_rows.is_empty()).then_some(LIST_HEADER + m.topic_row_selected)
        }
        Some(Screen::Bio) => bio_layout(m, w).1.map(|l| l + BIO_HEADER),
        Some(Screen::Source(id)) => match &m.source {
            Some(s) if s.memory == id => source_layout(s, m, w).1,
            _ => None,
        },
        Some(Screen::Detail(id)) => match (&m.detail, &m.editing) {
            (Some(d), Some(e)) if d.id == id && e.id == id => {
                Some(detail_head(d).len() + 1 + e.editor.row)
            }
            _ => None,
        },
    }
}

fn row_line(r: &MemoryRow, selected: bool, t: &Theme, w: usize) -> Line<'static> {
    let cursor = if selected { "›" } else { " " };
    let pin = if r.pinned { "★" } else { " " };
    let day = r.when.get(..10).unwrap_or(&r.when).to_string();
    let head = format!("{cursor}{pin} {:<10} {day:<10}  ", r.kind.name());
    let room = w.saturating_sub(head.chars().count());
    let label = r.label().to_string();
    let who = if r.contacts.is_empty() {
        String::new()
    } else {
        format!("  {}", r.contacts.join(", "))
    };
    let label = truncate(&label, room);
    let who = truncate(&who, room.saturating_sub(label.chars().count()));
    let style = if selected {
        t.get("ui.tabs.active")
    } else {
        t.get("ui.text")
    };
    Line::from(vec![
        Span::styled(head, t.get("ui.count")),
        Span::styled(label, style),
        Span::styled(who, t.get("ui.text.dim")),
    ])
}

fn list(state: &State, r: &StatusReport, view: &View, w: usize) -> Vec<Line<'static>> {
    let t = view.theme;
    let m = &state.memory;
    let typing = state
        .prompt
        .as_ref()
        .is_some_and(|p| p.purpose == PromptPurpose::MemorySearch);
    // Line 1: the search box, or what the keys do.
    let first = if typing {
        Line::from(vec![
            Span::styled("Search: ", t.get("ui.text.em")),
            Span::styled(m.query.clone(), t.get("ui.text")),
            Span::styled("█", t.get("ui.text.em")),
            Span::styled(
                format!(
                    "  {}",
                    [
                        (Action::PromptSubmit, "to the results"),
                        (Action::PromptCancel, "clears")
                    ]
                    .iter()
                    .filter_map(|(a, what)| view
                        .keymap
                        .key_for(Mode::Prompt, a)
                        .map(|k| format!("{k} {what}")))
                    .collect::<Vec<_>>()
                    .join(" · ")
                ),
                t.get("ui.text.dim"),
            ),
        ])
    } else if !m.query.is_empty() {
        Line::from(vec![
            Span::styled("Search: ", t.get("ui.text.em")),
            Span::styled(truncate(&m.query, w / 2), t.get("ui.text")),
            Span::styled(
                format!(
                    "  {}",
                    hints(
                        view,
                        &[
                            (Action::MemorySearch, "edits"),
                            (Action::MemoryBack, "clears")
                        ]
                    )
                ),
                t.get("ui.text.dim"),
            ),
        ])
    } else {
        dim(
            truncate(
                &hints(
                    view,
                    &[
                        (Action::MemorySearch, "search"),
                        (Action::MemoryKindFilter, "kind"),
                        (Action::MemoryContactNext, "contact"),
                        (Action::MemoryTopics, "topics"),
                        (Action::MemoryBio, "about you"),
                        (Action::ToggleHelp, "all keys"),
                    ],
                ),
                w,
            ),
            t,
        )
    };
    // Line 2: what is shown.
    let mut filters = Vec::new();
    if let Some(k) = m.kind {
        filters.push(format!("{}s", k.name()));
    }
    if let Some((_, name)) = &m.contact {
        filters.push(format!("with {name}"));
    }
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!(" · {}", filters.join(", "))
    };
    // While a request is out the rows shown answer an older one: say so.
    let what = if m.pending && !m.query.trim().is_empty() {
        format!("searching…{filters}")
    } else if m.pending {
        format!("reading…{filters}")
    } else if !m.query.trim().is_empty() {
        format!("{} results, best first{filters}", m.rows.len())
    } else if m.total > m.rows.len() {
        format!(
            "{} memories, newest first (the first {} shown){filters}",
            m.total,
            m.rows.len()
        )
    } else {
        format!("{} memories, newest first{filters}", m.total)
    };
    let mut out = vec![
        first,
        Line::styled(truncate(&what, w), t.get("ui.text")),
        Line::raw(""),
    ];
    debug_assert_eq!(out.len(), LIST_HEADER);
    for (i, row) in m.rows.iter().enumerate() {
        out.push(row_line(row, i == m.selected, t, w));
    }
    if m.rows.is_empty() && !m.pending {
        if !m.query.trim().is_empty() {
            out.push(dim(format!("No memory matches “{}”.", m.query), t));
        } else if m.kind.is_some() || m.contact.is_some() {
            out.push(dim("No memory passes these filters.", t));
        } else {
            out.extend(empty(state, r, view, w));
        }
    }
    out
}

/// What the pane says before there are any memories.
fn empty(state: &State, r: &StatusReport, view: &View, w: usize) -> Vec<Line<'static>> {
    let t = view.theme;
    let mut out = vec![
        text("No memories yet.", t),
        Line::raw(""),
        count("conversations", r.count("conversations"), t),
        count("documents", r.count("documents"), t),
        Line::raw(""),
        models_line("embeddings", |m| m.kind == ModelKind::Embedding, r, t),
        Line::raw(""),
    ];
    let building = state.jobs.values().any(|j| j.kind == "index");
    let say = if building {
        "Building memories from what you imported…".to_string()
    } else if r.count("conversations") + r.count("documents") > 0 {
        format!(
            "Press {} to build memories from what you imported: an episode per conversation window, a chunk per note section. From a script:",
            key(view, &Action::MemoryBuild)
        )
    } else {
        "Import chats or notes first (Ingest pane): memories are built after each import. From a script:".to_string()
    };
    out.extend(wrap(&say, w).into_iter().map(|l| dim(l, t)));
    if !building {
        out.push(command("twin --batch index", t));
    }
    out
}

fn detail_head(d: &MemoryDetail) -> Vec<String> {
    let m = &d.show.memory;
    let mut out = vec![format!("{} {}", m.kind, m.id)];
    if !m.title.is_empty() {
        out.push(m.title.clone());
    }
    let when = if m.start == m.end || m.start.is_empty() {
        m.end.clone()
    } else {
        format!("{} – {}", m.start, m.end)
    };
    out.push(if m.contacts.is_empty() {
        when
    } else {
        format!("{when} · with {}", m.contacts.join(", "))
    });
    let mut flags = vec![format!("importance {:.2}", m.importance)];
    if m.pinned {
        flags.push("★ pinned".into());
    }
    if m.edited {
        flags.push("edited".into());
    }
    flags.push(format!(
        "recalled {} time{}",
        m.access_count,
        if m.access_count == 1 { "" } else { "s" }
    ));
    out.push(flags.join(" · "));
    out
}

fn detail(
    d: &MemoryDetail,
    editing: Option<&Editing>,
    view: &View,
    w: usize,
) -> Vec<Line<'static>> {
    let t = view.theme;
    let head = detail_head(d);
    let title_line = usize::from(!d.show.memory.title.is_empty());
    let mut out: Vec<Line> = head
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let style = match i {
                0 => t.get("ui.count"),
                i if i == title_line && title_line == 1 => t.get("ui.text.em"),
                _ => t.get("ui.text.dim"),
            };
            Line::styled(truncate(l, w), style)
        })
        .collect();
    out.push(Line::raw(""));
    match editing.filter(|e| e.id == d.id) {
        Some(e) => {
            out.extend(editor(e, view));
            return out;
        }
        None => out.extend(wrap(&d.show.memory.text, w).into_iter().map(|l| text(l, t))),
    }
    out.push(Line::raw(""));
    let messages = d
        .show
        .sources
        .iter()
        .filter(|s| matches!(s, SourceView::Message { .. }))
        .count();
    let from = match &d.conversation {
        Some((_, title)) if messages > 0 => format!(
            "From {title}: {messages} message{} ({} shows the conversation around them)",
            if messages == 1 { "" } else { "s" },
            key(view, &Action::MemorySource)
        ),
        _ => format!("Sources ({})", d.show.sources.len()),
    };
    out.extend(wrap(&from, w).into_iter().map(|l| text(l, t)));
    for s in &d.show.sources {
        let line = match s {
            SourceView::Message {
                at, author, text, ..
            } => {
                let head = format!("  {at}  {author}: ");
                let room = w.saturating_sub(head.chars().count());
                let body = text.split_whitespace().collect::<Vec<_>>().join(" ");
                Line::from(vec![
                    Span::styled(head, t.get("ui.text.dim")),
                    Span::styled(truncate(&body, room), t.get("ui.text")),
                ])
            }
            SourceView::Document { title, path, .. } => Line::from(vec![
                Span::styled("  note ", t.get("ui.text.dim")),
                Span::styled(format!("{title} "), t.get("ui.text")),
                Span::styled(truncate(path, w / 2), t.get("ui.text.dim")),
            ]),
            SourceView::Memory { id } => dim(format!("  memory {id}"), t),
            SourceView::Chat { id } => dim(format!("  twin chat {id}"), t),
            SourceView::Missing { key } => dim(format!("  {key} (no longer stored)"), t),
        };
        out.push(line);
    }
    out.push(Line::raw(""));
    out.extend(
        wrap(
            &hints(
                view,
                &[
                    (
                        Action::MemoryPin,
                        if d.show.memory.pinned { "unpin" } else { "pin" },
                    ),
                    (Action::MemoryEdit, "edit"),
                    (Action::MemoryForget, "forget"),
                    (Action::MemorySource, "conversation"),
                    (Action::MemoryBack, "back"),
                ],
            ),
            w,
        )
        .into_iter()
        .map(|l| dim(l, t)),
    );
    out
}

/// The editor: its lines with the cursor shown as a reversed cell.
fn editor(e: &Editing, view: &View) -> Vec<Line<'static>> {
    let t = view.theme;
    let ek = |a: &Action| view.keymap.key_for(Mode::Editor, a);
    let say = if e.saving {
        "Saving and re-embedding…".to_string()
    } else {
        let keys: Vec<String> = [
            (Action::EditorSave, "saves"),
            (Action::EditorCancel, "discards"),
        ]
        .iter()
        .filter_map(|(a, what)| ek(a).map(|k| format!("{k} {what}")))
        .collect();
        format!("Editing · {}", keys.join(" · "))
    };
    let mut out = Vec::with_capacity(e.editor.lines.len() + 1);
    for (i, l) in e.editor.lines.iter().enumerate() {
        if i == e.editor.row && !e.saving {
            let before: String = l.chars().take(e.editor.col).collect();
            let at: String = l
                .chars()
                .nth(e.editor.col)
                .map(String::from)
                .unwrap_or_else(|| " ".to_string());
            let after: String = l.chars().skip(e.editor.col + 1).collect();
            out.push(Line::from(vec![
                Span::styled(before, t.get("ui.text")),
                Span::styled(at, t.get("ui.tabs.active")),
                Span::styled(after, t.get("ui.text")),
            ]));
        } else {
            out.push(text(l.clone(), t));
        }
    }
    out.push(Line::raw(""));
    out.push(Line::styled(say, t.get("ui.text.em")));
    out
}

/// The conversation's lines, and the line of the selected message.
fn source_layout(
    s: &SourceContext,
    m: &MemoryState,
    w: usize,
) -> (Vec<(String, Option<usize>)>, Option<usize>) {
    let mut out: Vec<(String, Option<usize>)> = Vec::new();
    out.push((format!("Conversation with {}", s.title), None));
    out.push((
        format!(
            "around memory {} (its sources are marked ▌)",
            show_id(s.memory)
        ),
        None,
    ));
    out.push((String::new(), None));
    if s.earlier > 0 {
        out.push((format!("… {} earlier messages", s.earlier), None));
    }
    let mut selected = None;
    for (i, l) in s.lines.iter().enumerate() {
        if i == m.source_selected {
            selected = Some(out.len());
        }
        let head = format!("{}  {}: ", l.when, l.author);
        // The source mark, then four spaces of indent.
        let body: Vec<String> = wrap(&l.text, w.saturating_sub(5).max(10));
        out.push((head, Some(i)));
        for b in body {
            out.push((format!("    {b}"), Some(i)));
        }
    }
    if s.later > 0 {
        out.push((format!("… {} later messages", s.later), None));
    }
    (out, selected)
}

fn source(
    s: &SourceContext,
    m: &MemoryState,
    view: &View,
    w: usize,
) -> (Vec<Line<'static>>, Option<usize>) {
    let t = view.theme;
    let (layout, selected) = source_layout(s, m, w);
    let mut seen_head = std::collections::HashSet::new();
    let lines = layout
        .into_iter()
        .enumerate()
        .map(|(n, (l, msg))| match msg {
            None if n == 0 => Line::styled(truncate(&l, w), t.get("ui.text.em")),
            None => dim(truncate(&l, w), t),
            Some(i) => {
                let c: &ContextLine = &s.lines[i];
                let mark = if c.source { "▌" } else { " " };
                let style = if i == m.source_selected {
                    t.get("ui.tabs.active")
                } else if c.source {
                    t.get("ui.text.em")
                } else {
                    t.get("ui.text")
                };
                if seen_head.insert(i) {
                    let who = if c.me {
                        t.get("chat.user")
                    } else {
                        t.get("ui.text.dim")
                    };
                    Line::from(vec![
                        Span::styled(mark, t.get("ui.count")),
                        Span::styled(truncate(&l, w.saturating_sub(1)), who),
                    ])
                } else {
                    Line::from(vec![
                        Span::styled(mark, t.get("ui.count")),
                        Span::styled(l, style),
                    ])
                }
            }
        })
        .collect();
    (lines, selected)
}

fn topics(m: &MemoryState, view: &View, w: usize) -> Vec<Line<'static>> {
    let t = view.theme;
    let Some(l1) = &m.l1 else {
        return vec![
            text("Topics", t),
            Line::raw(""),
            dim(
                if m.l1_read {
                    format!(
                        "No topics yet. Press {} to find them (and write the biography).",
                        key(view, &Action::MemoryRecompute)
                    )
                } else {
                    "Reading…".to_string()
                },
                t,
            ),
        ];
    };
    let mut out = vec![
        text(
            truncate(
                &format!(
                    "Topics ({}) · computed {}",
                    l1.topics.len(),
                    crate::memory::report::date(l1.computed_ms)
                ),
                w,
            ),
            t,
        ),
        dim(
            truncate(
                &hints(
                    view,
                    &[
                        (Action::MemoryOpen, "its memories"),
                        (Action::MemoryRecompute, "recompute"),
                        (Action::MemoryBack, "back"),
                    ],
                ),
                w,
            ),
            t,
        ),
        Line::raw(""),
    ];
    for (i, topic) in l1.topics.iter().enumerate() {
        let sel = i == m.topic_selected;
        let head = format!("{}{:>6}  ", if sel { "›" } else { " " }, topic.size);
        let room = w.saturating_sub(head.chars().count());
        let label = truncate(&topic.label, room);
        let terms = truncate(
            &format!("  {}", topic.terms.join(", ")),
            room.saturating_sub(label.chars().count()),
        );
        out.push(Line::from(vec![
            Span::styled(head, t.get("ui.count")),
            Span::styled(
                label,
                if sel {
                    t.get("ui.tabs.active")
                } else {
                    t.get("ui.text")
                },
            ),
            Span::styled(terms, t.get("ui.text.dim")),
        ]));
    }
    if l1.topics.is_empty() {
        out.push(dim(
            "Too few memories with vectors to find topics: build memories first.",
            t,
        ));
    }
    out
}

fn topic_memories(m: &MemoryState, i: usize, view: &View, w: usize) -> Vec<Line<'static>> {
    let t = view.theme;
    let topic = m.l1.as_ref().and_then(|l| l.topics.get(i));
    let title = match topic {
        Some(tp) => format!(
            "{} · {} memories; the closest to its centre:",
            tp.label, tp.size
        ),
        None => "Topic".into(),
    };
    let mut out = vec![
        text(truncate(&title, w), t),
        dim(
            truncate(
                &hints(
                    view,
                    &[(Action::MemoryOpen, "opens"), (Action::MemoryBack, "back")],
                ),
                w,
            ),
            t,
        ),
        Line::raw(""),
    ];
    for (n, r) in m.topic_rows.iter().enumerate() {
        out.push(row_line(r, n == m.topic_row_selected, t, w));
    }
    out
}

/// The biography wrapped to `w`: each line's pieces, and the line of the
/// selected reference.
type BioLine = (Vec<(String, Option<usize>)>, u8);

fn bio_layout(m: &MemoryState, w: usize) -> (Vec<BioLine>, Option<usize>) {
    let Some(l1) = &m.l1 else {
        return (Vec::new(), None);
    };
    let mut out = Vec::new();
    let mut n = 0;
    let mut selected = None;
    for raw in l1.biography.lines() {
        // 0 text, 1 heading, 2 bullet.
        let (body, kind, indent) = if let Some(h) = raw.trim_start().strip_prefix('#') {
            (h.trim_start_matches('#').trim().to_string(), 1u8, "")
        } else if let Some(b) = raw.trim_start().strip_prefix("- ") {
            (b.to_string(), 2, "  ")
        } else {
            (raw.to_string(), 0, "")
        };
        let body = body.replace("**", "");
        let wrapped = wrap(&body, w.saturating_sub(2).max(10));
        for (j, l) in wrapped.iter().enumerate() {
            let prefix = match (kind, j) {
                (2, 0) => "• ".to_string(),
                (2, _) => indent.to_string(),
                _ => String::new(),
            };
            let mut pieces: Vec<(String, Option<usize>)> = vec![(prefix, None)];
            let mut rest = l.as_str();
            while let Some(i) = rest.find("[m:") {
                let after = &rest[i + 3..];
                match after.find(']') {
                    Some(end) if end > 0 && after[..end].chars().all(|c| c.is_ascii_hexdigit()) => {
                        pieces.push((rest[..i].to_string(), None));
                        pieces.push((rest[i..i + 3 + end + 1].to_string(), Some(n)));
                        if n == m.bio_selected {
                            selected = Some(out.len());
                        }
                        n += 1;
                        rest = &after[end + 1..];
                    }
                    _ => {
                        pieces.push((rest[..i + 3].to_string(), None));
                        rest = after;
                    }
                }
            }
            pieces.push((rest.to_string(), None));
            out.push((pieces, kind));
        }
        if wrapped.is_empty() {
            out.push((Vec::new(), 0));
        }
    }
    (out, selected)
}

fn bio(m: &MemoryState, view: &View, w: usize) -> (Vec<Line<'static>>, Option<usize>) {
    let t = view.theme;
    let Some(l1) = &m.l1 else {
        return (
            vec![
                text("About you", t),
                Line::raw(""),
                dim(
                    if m.l1_read {
                        format!(
                            "No biography yet. Press {} to write it from your memories (and find the topics).",
                            key(view, &Action::MemoryRecompute)
                        )
                    } else {
                        "Reading…".to_string()
                    },
                    t,
                ),
            ],
            None,
        );
    };
    let mut out = vec![
        dim(
            truncate(
                &format!(
                    "Computed {} · {}",
                    crate::memory::report::date(l1.computed_ms),
                    hints(
                        view,
                        &[
                            (Action::MemoryOpen, "opens the marked reference"),
                            (Action::MemoryRecompute, "recompute"),
                            (Action::MemoryBack, "back"),
                        ],
                    )
                ),
                w,
            ),
            t,
        ),
        Line::raw(""),
    ];
    let (layout, selected) = bio_layout(m, w);
    let layout_len = layout.len();
    for (pieces, kind) in layout {
        let base = match kind {
            1 => t.get("ui.help.section"),
            _ => t.get("ui.text"),
        };
        let spans: Vec<Span> = pieces
            .into_iter()
            .map(|(s, r)| match r {
                Some(i) if i == m.bio_selected => Span::styled(s, t.get("ui.tabs.active")),
                Some(_) => Span::styled(s, t.get("ui.text.em")),
                None => Span::styled(s, base),
            })
            .collect();
        out.push(Line::from(spans));
    }
    debug_assert_eq!(out.len(), BIO_HEADER + layout_len);
    (out, selected.map(|s| s + BIO_HEADER))
}
