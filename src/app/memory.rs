//! The Memory pane's state, its pure update, and the reads that fill it.
//!
//! Screens stack over the list (newest first, or ranked search results): a
//! memory's detail, the conversation around its sources, the topics, one
//! topic's memories, the biography. Reads run off the event loop (the front-end
//! performs [`Effect`]s) and come back as actions; a search carries a sequence
//! number so a late answer to an old query is dropped.

use serde::Serialize;

use super::{Action, Effect, Pane, Prompt, PromptPurpose, State};
use crate::ingest::records::{Contact, Conversation, Id, Message, index};
use crate::jobs::Level;
use crate::memory::report::{MemoryView, Names, ShowReport, SourceView, date};
use crate::memory::topics::L1;
use crate::memory::{Memories, Memory, MemoryError, MemoryKind, Provenance, Query, show_id};
use crate::store::{StoreError, Tree};

/// How many rows the list holds (newest first); search returns fewer.
pub const LIST_LIMIT: usize = 500;
/// How many ranked results a search shows.
pub const SEARCH_K: usize = 50;
/// Messages shown before and after a memory's sources in the conversation view.
pub const CONTEXT_MESSAGES: usize = 8;

/// One line of the list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryRow {
    pub id: u64,
    pub kind: MemoryKind,
    pub title: String,
    /// The text's first line.
    pub snippet: String,
    /// When it happened (end of its span), `YYYY-MM-DD HH:MM` UTC.
    pub when: String,
    pub contacts: Vec<String>,
    pub pinned: bool,
    pub edited: bool,
    /// The fused search score, for search results.
    pub score: Option<f32>,
}

impl MemoryRow {
    pub fn new(m: &Memory, names: &Names, score: Option<f32>) -> MemoryRow {
        MemoryRow {
            id: m.id,
            kind: m.kind,
            title: m.title.clone(),
            snippet: m
                .text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
            when: date(m.end_ms),
            contacts: m.contacts.iter().map(|c| names.of(*c)).collect(),
            pinned: m.pinned,
            edited: m.edited,
            score,
        }
    }

    /// The title, or the first line when it has none or the title only
    /// repeats who and when (an episode's "Alice, 2024-01-02"), which the row
    /// shows anyway.
    pub fn label(&self) -> &str {
        let day = self.when.get(..10).unwrap_or(&self.when);
        if self.title.is_empty() || (self.title.contains(day) && !self.snippet.is_empty()) {
            &self.snippet
        } else {
            &self.title
        }
    }
}

/// A memory as the detail screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryDetail {
    pub id: u64,
    pub show: ShowReport,
    /// The conversation it came from, with its title, when it came from one.
    pub conversation: Option<(Id, String)>,
}

/// One message of the conversation around a memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextLine {
    pub when: String,
    pub author: String,
    pub text: String,
    pub me: bool,
    /// One of the memory's own sources.
    pub source: bool,
}

/// The conversation around a memory's sources.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceContext {
    pub memory: u64,
    pub title: String,
    pub lines: Vec<ContextLine>,
    /// Messages of the conversation before and after those shown.
    pub earlier: usize,
    pub later: usize,
}

/// What the pane shows on top of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Detail(u64),
    /// The conversation around a memory's sources.
    Source(u64),
    Topics,
    /// The example memories of one topic (its index).
    TopicMemories(usize),
    Bio,
}

/// Whether memory is usable yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MemoryStatus {
    /// Opening the store's memory (the embedding model loads).
    #[default]
    Loading,
    Ready,
    Failed(String),
}

/// A multi-line text editor: lines and a cursor (row, column in characters).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Editor {
    pub lines: Vec<String>,
    pub row: usize,
    pub col: usize,
}

impl Editor {
    pub fn new(text: &str) -> Editor {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        let row = lines.len() - 1;
        let col = lines[row].chars().count();
        Editor { lines, row, col }
    }

    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    fn byte(&self, row: usize, col: usize) -> usize {
        let l = &self.lines[row];
        l.char_indices().nth(col).map(|(i, _)| i).unwrap_or(l.len())
    }

    fn len(&self, row: usize) -> usize {
        self.lines[row].chars().count()
    }

    pub fn insert(&mut self, c: char) {
        let at = self.byte(self.row, self.col);
        self.lines[self.row].insert(at, c);
        self.col += 1;
    }

    pub fn newline(&mut self) {
        let at = self.byte(self.row, self.col);
        let rest = self.lines[self.row].split_off(at);
        self.lines.insert(self.row + 1, rest);
        self.row += 1;
        self.col = 0;
    }

    pub fn backspace(&mut self) {
        if self.col > 0 {
            let at = self.byte(self.row, self.col - 1);
            self.lines[self.row].remove(at);
            self.col -= 1;
        } else if self.row > 0 {
            let line = self.lines.remove(self.row);
            self.row -= 1;
            self.col = self.len(self.row);
            self.lines[self.row].push_str(&line);
        }
    }

    pub fn delete(&mut self) {
        if self.col < self.len(self.row) {
            let at = self.byte(self.row, self.col);
            self.lines[self.row].remove(at);
        } else if self.row + 1 < self.lines.len() {
            let next = self.lines.remove(self.row + 1);
            self.lines[self.row].push_str(&next);
        }
    }

    pub fn left(&mut self) {
        if self.col > 0 {
            self.col -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.col = self.len(self.row);
        }
    }

    pub fn right(&mut self) {
        if self.col < self.len(self.row) {
            self.col += 1;
        } else if self.row + 1 < self.lines.len() {
            self.row += 1;
            self.col = 0;
        }
    }

    pub fn up(&mut self) {
        if self.row > 0 {
            self.row -= 1;
            self.col = self.col.min(self.len(self.row));
        }
    }

    pub fn down(&mut self) {
        if self.row + 1 < self.lines.len() {
            self.row += 1;
            self.col = self.col.min(self.len(self.row));
        }
    }

    pub fn home(&mut self) {
        self.col = 0;
    }

    pub fn end(&mut self) {
        self.col = self.len(self.row);
    }
}

/// A memory being edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editing {
    pub id: u64,
    pub editor: Editor,
    /// The save went out; waiting for the answer.
    pub saving: bool,
}

/// What the list is asked for: the search text and the filters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub text: String,
    pub kind: Option<MemoryKind>,
    pub contact: Option<Id>,
}

impl ListQuery {
    pub fn to_query(&self, k: usize) -> Query {
        Query {
            text: self.text.clone(),
            k,
            contact: self.contact,
            kinds: self.kind.into_iter().collect(),
            since_ms: None,
            until_ms: None,
        }
    }
}

/// The Memory pane's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryState {
    pub status: MemoryStatus,
    /// The search text (empty: newest first).
    pub query: String,
    pub kind: Option<MemoryKind>,
    /// The contact filter, with the name shown.
    pub contact: Option<(Id, String)>,
    pub rows: Vec<MemoryRow>,
    /// How many memories pass the filters (the list shows at most [`LIST_LIMIT`]).
    pub total: usize,
    pub selected: usize,
    /// The newest list request; older answers are dropped.
    pub seq: u64,
    /// A list request is out.
    pub pending: bool,
    /// Its answer keeps the selected memory selected (a refresh, not a new search).
    pub keep_selection: bool,
    /// Screens over the list, the last on top.
    pub stack: Vec<Screen>,
    pub detail: Option<MemoryDetail>,
    pub source: Option<SourceContext>,
    /// The selected message of the conversation shown.
    pub source_selected: usize,
    /// Topics and biography as last computed (None: not read yet or never computed).
    pub l1: Option<L1>,
    pub l1_read: bool,
    pub topic_selected: usize,
    pub topic_rows: Vec<MemoryRow>,
    pub topic_row_selected: usize,
    /// The selected `[m:ID]` reference in the biography.
    pub bio_selected: usize,
    pub editing: Option<Editing>,
    /// Run the build once memory is open (an import finished meanwhile).
    pub build_pending: bool,
}

impl MemoryState {
    pub fn screen(&self) -> Option<Screen> {
        self.stack.last().copied()
    }

    pub fn list_query(&self) -> ListQuery {
        ListQuery {
            text: self.query.clone(),
            kind: self.kind,
            contact: self.contact.as_ref().map(|(id, _)| *id),
        }
    }

    /// The memory the keys act on: the one shown, else the selected row.
    pub fn current_id(&self) -> Option<u64> {
        match self.screen() {
            Some(Screen::Detail(id)) | Some(Screen::Source(id)) => Some(id),
            Some(Screen::TopicMemories(_)) => {
                self.topic_rows.get(self.topic_row_selected).map(|r| r.id)
            }
            Some(Screen::Topics) | Some(Screen::Bio) => None,
            None => self.rows.get(self.selected).map(|r| r.id),
        }
    }

    fn row(&self, id: u64) -> Option<&MemoryRow> {
        self.rows
            .iter()
            .chain(&self.topic_rows)
            .find(|r| r.id == id)
    }
}

/// The `[m:ID]` references in a text, in order (ids as written).
pub fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("[m:") {
        let after = &rest[i + 3..];
        match after.find(']') {
            Some(end) if end > 0 && after[..end].chars().all(|c| c.is_ascii_hexdigit()) => {
                out.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// The kind filter after `current`: all, then each kind, then all again.
fn next_kind(current: Option<MemoryKind>) -> Option<MemoryKind> {
    match current {
        None => Some(MemoryKind::ALL[0]),
        Some(k) => MemoryKind::ALL
            .iter()
            .position(|x| *x == k)
            .and_then(|i| MemoryKind::ALL.get(i + 1).copied()),
    }
}

/// The contacts a filter cycles through: everyone but you, most messages first.
fn contact_choices(state: &State) -> Vec<(Id, String)> {
    state
        .ingest
        .as_ref()
        .map(|o| {
            o.contacts
                .iter()
                .filter(|c| !c.me)
                .map(|c| (c.key, c.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn ready(state: &mut State) -> bool {
    match &state.memory.status {
        MemoryStatus::Ready => true,
        MemoryStatus::Loading => {
            state.notify(Level::Info, "memory is still loading…");
            false
        }
        MemoryStatus::Failed(e) => {
            let e = format!("memory could not be opened: {e}");
            state.notify(Level::Error, e);
            false
        }
    }
}

/// Ask for the list again (search text or filters changed, or memories did).
pub fn requery(state: &mut State, debounce: bool) -> Vec<Effect> {
    if state.memory.status != MemoryStatus::Ready {
        return Vec::new();
    }
    // New search text or filters start at the best (or newest) row.
    state.memory.keep_selection = false;
    state.memory.seq += 1;
    state.memory.pending = true;
    vec![Effect::QueryMemories {
        seq: state.memory.seq,
        query: state.memory.list_query(),
        debounce,
    }]
}

fn push(state: &mut State, screen: Screen) {
    state.memory.stack.push(screen);
    state.scroll[Pane::Memory.index()] = 0;
}

/// Open a memory's detail screen (from the list, a topic, the biography, or
/// another pane's `[m:ID]` citation).
pub fn open(state: &mut State, id: String) -> Vec<Effect> {
    state.focus = Pane::Memory;
    if !ready(state) {
        return Vec::new();
    }
    vec![Effect::ShowMemory(id)]
}

/// After a job finished: build memories after imports, refresh after builds.
pub fn after_job(state: &mut State, job: &str, ok: bool) -> Vec<Effect> {
    match job {
        "ingest" | "contacts" if ok => {
            let building = state.jobs.values().any(|j| j.kind == "index");
            if state.memory.status == MemoryStatus::Ready && !building {
                return vec![Effect::BuildMemory];
            }
            // Once memory is open, or the running build is done.
            state.memory.build_pending = true;
            Vec::new()
        }
        "index" => {
            let mut fx = requery(state, false);
            // The same list, refreshed: stay on the selected memory.
            state.memory.keep_selection = true;
            if state.memory.status == MemoryStatus::Ready
                && std::mem::take(&mut state.memory.build_pending)
            {
                fx.push(Effect::BuildMemory);
            }
            fx
        }
        "topics" if ok => vec![Effect::ReadL1],
        _ => Vec::new(),
    }
}

/// Whether the scroll keys move a selection in the Memory pane now.
pub fn selects(state: &State) -> bool {
    state.focus == Pane::Memory
        && !state.help
        && match state.memory.screen() {
            None | Some(Screen::Topics) | Some(Screen::TopicMemories(_)) => true,
            Some(Screen::Bio) => state
                .memory
                .l1
                .as_ref()
                .is_some_and(|l| !references(&l.biography).is_empty()),
            Some(Screen::Source(_)) => state.memory.source.is_some(),
            Some(Screen::Detail(_)) => false,
        }
}

/// Move the selection of the current screen by `by` (clamped).
pub fn select(state: &mut State, by: i64) {
    let m = &mut state.memory;
    let (sel, n) = match m.screen() {
        None => (&mut m.selected, m.rows.len()),
        Some(Screen::Topics) => (
            &mut m.topic_selected,
            m.l1.as_ref().map(|l| l.topics.len()).unwrap_or(0),
        ),
        Some(Screen::TopicMemories(_)) => (&mut m.topic_row_selected, m.topic_rows.len()),
        Some(Screen::Source(_)) => (
            &mut m.source_selected,
            m.source.as_ref().map(|s| s.lines.len()).unwrap_or(0),
        ),
        Some(Screen::Bio) => (
            &mut m.bio_selected,
            m.l1.as_ref()
                .map(|l| references(&l.biography).len())
                .unwrap_or(0),
        ),
        _ => return,
    };
    *sel = (*sel as i64 + by).clamp(0, n.saturating_sub(1) as i64) as usize;
}

/// The pane's own actions.
pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    let mem_focus = |state: &mut State| {
        state.focus = Pane::Memory;
    };
    match action {
        Action::MemorySearch => {
            mem_focus(state);
            if !ready(state) {
                return Vec::new();
            }
            state.memory.stack.clear();
            state.scroll[Pane::Memory.index()] = 0;
            state.prompt = Some(Prompt {
                purpose: PromptPurpose::MemorySearch,
                input: state.memory.query.clone(),
                candidates: Vec::new(),
            });
        }
        Action::MemoryOpen => {
            if !ready(state) {
                return Vec::new();
            }
            let m = &state.memory;
            match m.screen() {
                None | Some(Screen::TopicMemories(_)) => {
                    if let Some(id) = m.current_id() {
                        return vec![Effect::ShowMemory(show_id(id))];
                    }
                }
                Some(Screen::Topics) => {
                    let topic = m.topic_selected;
                    if let Some(t) = m.l1.as_ref().and_then(|l| l.topics.get(topic)) {
                        let ids = t.examples.clone();
                        state.memory.topic_rows.clear();
                        state.memory.topic_row_selected = 0;
                        push(state, Screen::TopicMemories(topic));
                        return vec![Effect::ReadRows(ids)];
                    }
                }
                Some(Screen::Bio) => {
                    let refs =
                        m.l1.as_ref()
                            .map(|l| references(&l.biography))
                            .unwrap_or_default();
                    if let Some(r) = refs.get(m.bio_selected) {
                        return vec![Effect::ShowMemory(r.clone())];
                    }
                }
                Some(Screen::Detail(id)) => return vec![Effect::MemorySource(id)],
                Some(Screen::Source(_)) => {}
            }
        }
        Action::MemoryBack => {
            if state.memory.stack.pop().is_some() {
                state.scroll[Pane::Memory.index()] = 0;
            } else if !state.memory.query.is_empty() {
                state.memory.query.clear();
                state.memory.selected = 0;
                return requery(state, false);
            } else {
                return super::update(state, Action::CancelJob);
            }
        }
        Action::MemoryKindFilter => {
            state.memory.kind = next_kind(state.memory.kind);
            state.memory.stack.clear();
            state.memory.selected = 0;
            return requery(state, false);
        }
        Action::MemoryContactNext | Action::MemoryContactPrev => {
            let choices = contact_choices(state);
            if choices.is_empty() {
                state.notify(Level::Info, "no contacts yet: import some chats first");
                return Vec::new();
            }
            let at = state
                .memory
                .contact
                .as_ref()
                .and_then(|(id, _)| choices.iter().position(|(c, _)| c == id));
            let n = choices.len();
            let next = match (at, action == Action::MemoryContactNext) {
                (None, true) => Some(0),
                (None, false) => Some(n - 1),
                (Some(i), true) => (i + 1 < n).then_some(i + 1),
                (Some(i), false) => i.checked_sub(1),
            };
            state.memory.contact = next.map(|i| choices[i].clone());
            state.memory.stack.clear();
            state.memory.selected = 0;
            return requery(state, false);
        }
        Action::MemoryPin => {
            if !ready(state) {
                return Vec::new();
            }
            let Some(id) = state.memory.current_id() else {
                return nothing_selected(state);
            };
            let pinned = match (&state.memory.detail, state.memory.row(id)) {
                (Some(d), _) if d.id == id => d.show.memory.pinned,
                (_, Some(r)) => r.pinned,
                _ => false,
            };
            return vec![Effect::PinMemory(id, !pinned)];
        }
        Action::MemoryEdit => {
            if !ready(state) {
                return Vec::new();
            }
            let Some(id) = state.memory.current_id() else {
                return nothing_selected(state);
            };
            match &state.memory.detail {
                Some(d) if d.id == id => {
                    state.memory.editing = Some(Editing {
                        id,
                        editor: Editor::new(&d.show.memory.text),
                        saving: false,
                    });
                }
                // Open it first; the editor needs the whole text.
                _ => return vec![Effect::ShowMemory(show_id(id))],
            }
        }
        Action::MemoryForget => {
            if !ready(state) {
                return Vec::new();
            }
            let Some(id) = state.memory.current_id() else {
                return nothing_selected(state);
            };
            let (label, kind, sources) = match (&state.memory.detail, state.memory.row(id)) {
                (Some(d), _) if d.id == id => (
                    d.show.memory.title.clone(),
                    d.show.memory.kind.to_string(),
                    Some(d.show.sources.len()),
                ),
                (_, Some(r)) => (r.label().to_string(), r.kind.name().to_string(), None),
                _ => (String::new(), "memory".into(), None),
            };
            let sources = match sources {
                Some(n) => format!("its {n} sources leave future training sets"),
                None => "its sources leave future training sets".into(),
            };
            let label: String = label.chars().take(60).collect();
            state.confirm = Some(super::Confirm {
                question: format!("Forget {kind} {}?", show_id(id)),
                detail: vec![
                    format!("“{label}”"),
                    format!("The memory and its vector are deleted, and {sources}."),
                    "This cannot be undone.".into(),
                ],
                on_yes: super::ConfirmAction::ForgetMemory(id),
            });
        }
        Action::MemorySource => {
            if !ready(state) {
                return Vec::new();
            }
            match state.memory.current_id() {
                Some(id) => return vec![Effect::MemorySource(id)],
                None => return nothing_selected(state),
            }
        }
        Action::MemoryTopics | Action::MemoryBio => {
            mem_focus(state);
            if !ready(state) {
                return Vec::new();
            }
            let screen = if action == Action::MemoryTopics {
                Screen::Topics
            } else {
                Screen::Bio
            };
            if state.memory.screen() != Some(screen) {
                state.memory.stack.clear();
                push(state, screen);
            }
            return vec![Effect::ReadL1];
        }
        Action::MemoryBuild => {
            mem_focus(state);
            if !ready(state) {
                state.memory.build_pending = true;
                return Vec::new();
            }
            if state.jobs.values().any(|j| j.kind == "index") {
                state.notify(Level::Info, "memories are already being built");
                return Vec::new();
            }
            return vec![Effect::BuildMemory];
        }
        Action::MemoryRecompute => {
            if !ready(state) {
                return Vec::new();
            }
            if state.jobs.values().any(|j| j.kind == "topics") {
                state.notify(Level::Info, "topics are already being computed");
                return Vec::new();
            }
            return vec![Effect::ComputeL1];
        }
        Action::OpenMemory(id) => return open(state, id),
        Action::MemoryOpened(result) => match result {
            Ok(notes) => {
                state.memory.status = MemoryStatus::Ready;
                for n in notes {
                    state.notify(Level::Warn, n);
                }
                let mut fx = requery(state, false);
                if std::mem::take(&mut state.memory.build_pending) {
                    fx.push(Effect::BuildMemory);
                }
                return fx;
            }
            Err(e) => {
                state.memory.status = MemoryStatus::Failed(e.clone());
                state.notify(Level::Error, format!("memory could not be opened: {e}"));
            }
        },
        Action::MemoryRows {
            seq,
            rows,
            total,
            error,
        } => {
            if seq != state.memory.seq {
                return Vec::new();
            }
            state.memory.pending = false;
            if let Some(e) = error {
                state.notify(Level::Error, e);
            }
            let keep = state
                .memory
                .rows
                .get(state.memory.selected)
                .filter(|_| state.memory.keep_selection)
                .map(|r| r.id);
            state.memory.rows = rows;
            state.memory.total = total;
            state.memory.selected = keep
                .and_then(|id| state.memory.rows.iter().position(|r| r.id == id))
                .unwrap_or(0)
                .min(state.memory.rows.len().saturating_sub(1));
        }
        Action::MemoryDetail(d) => {
            state.focus = Pane::Memory;
            let id = d.id;
            state.memory.detail = Some(*d);
            if state.memory.screen() != Some(Screen::Detail(id)) {
                push(state, Screen::Detail(id));
            }
        }
        Action::MemorySourceShown(s) => {
            let id = s.memory;
            state.memory.source_selected = s.lines.iter().position(|l| l.source).unwrap_or(0);
            state.memory.source = Some(*s);
            if state.memory.screen() != Some(Screen::Source(id)) {
                push(state, Screen::Source(id));
            }
        }
        Action::MemoryChanged { detail, note } => {
            let row = detail.row.clone();
            for r in state
                .memory
                .rows
                .iter_mut()
                .chain(state.memory.topic_rows.iter_mut())
                .filter(|r| r.id == row.id)
            {
                *r = MemoryRow {
                    score: r.score,
                    ..row.clone()
                };
            }
            if state.memory.detail.as_ref().is_some_and(|d| d.id == row.id) {
                state.memory.detail = Some(detail.detail);
            }
            if state
                .memory
                .editing
                .as_ref()
                .is_some_and(|e| e.id == row.id && e.saving)
            {
                state.memory.editing = None;
            }
            state.notify(Level::Info, note);
        }
        Action::MemoryForgotten { id, note } => {
            let m = &mut state.memory;
            m.rows.retain(|r| r.id != id);
            m.topic_rows.retain(|r| r.id != id);
            m.total = m.total.saturating_sub(1);
            m.selected = m.selected.min(m.rows.len().saturating_sub(1));
            m.topic_row_selected = m
                .topic_row_selected
                .min(m.topic_rows.len().saturating_sub(1));
            m.stack
                .retain(|s| !matches!(s, Screen::Detail(x) | Screen::Source(x) if *x == id));
            if m.detail.as_ref().is_some_and(|d| d.id == id) {
                m.detail = None;
            }
            if m.editing.as_ref().is_some_and(|e| e.id == id) {
                m.editing = None;
            }
            state.scroll[Pane::Memory.index()] = 0;
            state.notify(Level::Info, note);
        }
        Action::MemoryFailed(e) => {
            if let Some(ed) = &mut state.memory.editing {
                ed.saving = false;
            }
            state.notify(Level::Error, e);
        }
        Action::MemoryL1(l1) => {
            state.memory.l1_read = true;
            state.memory.l1 = l1.map(|b| *b);
            let m = &mut state.memory;
            let topics = m.l1.as_ref().map(|l| l.topics.len()).unwrap_or(0);
            m.topic_selected = m.topic_selected.min(topics.saturating_sub(1));
            let refs =
                m.l1.as_ref()
                    .map(|l| references(&l.biography).len())
                    .unwrap_or(0);
            m.bio_selected = m.bio_selected.min(refs.saturating_sub(1));
        }
        Action::MemoryTopicRows(rows) => {
            state.memory.topic_rows = rows;
            state.memory.topic_row_selected = 0;
        }
        Action::EditorSave => {
            if let Some(e) = &mut state.memory.editing
                && !e.saving
            {
                let text = e.editor.text();
                if text.trim().is_empty() {
                    state.notify(
                        Level::Info,
                        "a memory needs some text: to remove it, forget it instead",
                    );
                    return Vec::new();
                }
                e.saving = true;
                return vec![Effect::SaveMemory(e.id, text)];
            }
        }
        Action::EditorCancel => state.memory.editing = None,
        Action::EditorInsert(c) => edit(state, |e| e.insert(c)),
        Action::EditorNewline => edit(state, Editor::newline),
        Action::EditorBackspace => edit(state, Editor::backspace),
        Action::EditorDelete => edit(state, Editor::delete),
        Action::EditorLeft => edit(state, Editor::left),
        Action::EditorRight => edit(state, Editor::right),
        Action::EditorUp => edit(state, Editor::up),
        Action::EditorDown => edit(state, Editor::down),
        Action::EditorHome => edit(state, Editor::home),
        Action::EditorEnd => edit(state, Editor::end),
        _ => {}
    }
    Vec::new()
}

fn edit(state: &mut State, f: impl FnOnce(&mut Editor)) {
    if let Some(e) = &mut state.memory.editing
        && !e.saving
    {
        f(&mut e.editor);
    }
}

fn nothing_selected(state: &mut State) -> Vec<Effect> {
    state.notify(Level::Info, "select a memory first");
    Vec::new()
}

/// The search box changed: search again once typing pauses.
pub fn search_typed(state: &mut State, input: &str) -> Vec<Effect> {
    state.memory.query = input.to_string();
    state.memory.selected = 0;
    requery(state, true)
}

// --- Reads, run by the front-end off the event loop. ---

/// The list for a query: ranked hits when there is search text, else newest first.
pub fn read_rows(mem: &Memories, q: &ListQuery) -> Result<(Vec<MemoryRow>, usize), MemoryError> {
    let names = Names::load(mem);
    if q.text.trim().is_empty() {
        let all = mem.list(&q.to_query(0), usize::MAX)?;
        let total = all.len();
        let rows = all
            .iter()
            .take(LIST_LIMIT)
            .map(|m| MemoryRow::new(m, &names, None))
            .collect();
        Ok((rows, total))
    } else {
        let hits = mem.search(&q.to_query(SEARCH_K))?;
        let rows: Vec<MemoryRow> = hits
            .iter()
            .map(|h| MemoryRow::new(&h.memory, &names, Some(h.score)))
            .collect();
        let n = rows.len();
        Ok((rows, n))
    }
}

/// Rows for these memories, in this order (a topic's examples).
pub fn read_rows_of(mem: &Memories, ids: &[u64]) -> Result<Vec<MemoryRow>, MemoryError> {
    let names = Names::load(mem);
    let mut out = Vec::new();
    for id in ids {
        if let Some(m) = mem.get(*id)? {
            out.push(MemoryRow::new(&m, &names, None));
        }
    }
    Ok(out)
}

/// A memory with its sources resolved, and its row.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailAndRow {
    pub detail: MemoryDetail,
    pub row: MemoryRow,
}

pub fn read_detail(mem: &Memories, id: u64) -> Result<DetailAndRow, MemoryError> {
    let m = mem.get(id)?.ok_or(MemoryError::NotFound(id))?;
    let show = ShowReport::new(mem, &m)?;
    let conversation = match m.conversation.or_else(|| conversation_of_sources(mem, &m)) {
        Some(c) => mem
            .store()
            .get::<Conversation>(Conversation::key(c))?
            .map(|conv| (c, conversation_title(mem, &conv))),
        None => None,
    };
    Ok(DetailAndRow {
        detail: MemoryDetail {
            id,
            show,
            conversation,
        },
        row: MemoryRow::new(&m, &Names::load(mem), None),
    })
}

fn conversation_of_sources(mem: &Memories, m: &Memory) -> Option<Id> {
    let key = m.provenance.iter().find_map(Provenance::message_key)?;
    mem.store()
        .get::<Message>(key)
        .ok()
        .flatten()
        .map(|msg| msg.conversation)
}

fn conversation_title(mem: &Memories, conv: &Conversation) -> String {
    if let Some(t) = conv.title.as_deref().filter(|t| !t.trim().is_empty()) {
        return t.to_string();
    }
    let names = Names::load(mem);
    let others: Vec<String> = conv
        .participants
        .iter()
        .filter(|p| **p != crate::ingest::identity::me_id())
        .map(|p| names.of(*p))
        .collect();
    if others.is_empty() {
        conv.native.clone()
    } else {
        others.join(", ")
    }
}

/// Why the conversation around a memory cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{id} comes from {from}, not a conversation: its detail lists its sources")]
    NotAConversation { id: String, from: &'static str },
}

/// The messages of a memory's conversation around its sources: the sources
/// themselves and [`CONTEXT_MESSAGES`] before and after.
pub fn read_source(mem: &Memories, id: u64) -> Result<SourceContext, SourceError> {
    let m = mem.get(id)?.ok_or(MemoryError::NotFound(id))?;
    let store = mem.store();
    let sources: std::collections::HashSet<[u8; 16]> = m
        .provenance
        .iter()
        .filter_map(Provenance::message_key)
        .collect();
    let Some(conv_id) = m.conversation.or_else(|| conversation_of_sources(mem, &m)) else {
        let from = m
            .provenance
            .iter()
            .find_map(|p| match p {
                Provenance::Document { .. } => Some("a note"),
                Provenance::Memory { .. } => Some("other memories"),
                Provenance::Chat { .. } => Some("a twin chat"),
                Provenance::Message { .. } => None,
            })
            .unwrap_or("no stored conversation");
        return Err(SourceError::NotAConversation {
            id: show_id(id),
            from,
        });
    };
    let conv = store.get::<Conversation>(Conversation::key(conv_id))?;
    let title = conv
        .as_ref()
        .map(|c| conversation_title(mem, c))
        .unwrap_or_else(|| format!("conversation {conv_id:x}"));
    // The conversation's timeline, in time order: (at, message key).
    let mut timeline: Vec<(i64, [u8; 16])> = Vec::new();
    for kv in store
        .tree(Tree::Timeline)
        .scan_prefix(index::timeline_prefix(conv_id).into_vec())
    {
        let (k, _) = kv.map_err(|e| StoreError::Aborted(e.to_string()))?;
        if let Some(parts) = index::timeline_parts(&k) {
            timeline.push(parts);
        }
    }
    let first = timeline
        .iter()
        .position(|(at, k)| sources.contains(k) || *at >= m.start_ms)
        .unwrap_or(timeline.len());
    let last = timeline
        .iter()
        .rposition(|(at, k)| sources.contains(k) || *at <= m.end_ms)
        .map(|i| i + 1)
        .unwrap_or(0)
        .max(first);
    let from = first.saturating_sub(CONTEXT_MESSAGES);
    let to = (last + CONTEXT_MESSAGES).min(timeline.len());
    let names: std::collections::HashMap<Id, (String, bool)> = store
        .scan::<Contact>([])
        .filter_map(Result::ok)
        .map(|(_, c)| (c.id, (c.name, c.me)))
        .collect();
    let mut lines = Vec::new();
    for (_, key) in &timeline[from..to] {
        if let Some(msg) = store.get::<Message>(*key)? {
            let (author, me) = names
                .get(&msg.author)
                .cloned()
                .unwrap_or_else(|| (msg.author_name.clone(), false));
            lines.push(ContextLine {
                when: date(msg.at_ms),
                author,
                text: msg.text,
                me,
                source: sources.contains(key),
            });
        }
    }
    Ok(SourceContext {
        memory: id,
        title,
        lines,
        earlier: from,
        later: timeline.len() - to,
    })
}

/// A memory's view for notes after a change.
pub fn view(mem: &Memories, m: &Memory) -> MemoryView {
    MemoryView::new(mem, &Names::load(mem), m)
}

/// The count of message sources (what forgetting leaves out of training).
pub fn message_sources(sources: &[SourceView]) -> usize {
    sources
        .iter()
        .filter(|s| matches!(s, SourceView::Message { .. }))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{ConfirmAction, LayoutMode, update as app_update};
    use crate::jobs::{JobBody, JobEvent};

    fn ready_state() -> State {
        let mut s = State::new(LayoutMode::Auto);
        let fx = app_update(&mut s, Action::MemoryOpened(Ok(vec![])));
        assert_eq!(s.memory.status, MemoryStatus::Ready);
        assert!(matches!(
            fx.as_slice(),
            [Effect::QueryMemories {
                seq: 1,
                debounce: false,
                ..
            }]
        ));
        s
    }

    fn row(id: u64, pinned: bool) -> MemoryRow {
        MemoryRow {
            id,
            kind: MemoryKind::Episode,
            title: format!("memory {id}"),
            snippet: "hello".into(),
            when: "2024-01-02 10:00".into(),
            contacts: vec!["Alice".into()],
            pinned,
            edited: false,
            score: None,
        }
    }

    fn with_rows(s: &mut State, ids: &[u64]) {
        let seq = s.memory.seq;
        app_update(
            s,
            Action::MemoryRows {
                seq,
                rows: ids.iter().map(|i| row(*i, false)).collect(),
                total: ids.len(),
                error: None,
            },
        );
    }

    fn detail(id: u64, text: &str) -> MemoryDetail {
        MemoryDetail {
            id,
            show: ShowReport {
                memory: MemoryView {
                    id: show_id(id),
                    kind: "episode",
                    title: format!("memory {id}"),
                    text: text.into(),
                    contacts: vec![],
                    start: String::new(),
                    end: String::new(),
                    importance: 0.5,
                    pinned: false,
                    edited: false,
                    access_count: 0,
                    sources: 2,
                },
                sources: vec![
                    SourceView::Missing { key: "aa".into() },
                    SourceView::Missing { key: "bb".into() },
                ],
            },
            conversation: None,
        }
    }

    fn job_done(s: &mut State, job: &str) -> Vec<Effect> {
        let ev = |body| {
            Action::Job(JobEvent {
                id: 9,
                job: job.into(),
                body,
            })
        };
        app_update(s, ev(JobBody::Started { title: job.into() }));
        app_update(
            s,
            ev(JobBody::Done {
                summary: serde_json::json!({}),
            }),
        )
    }

    #[test]
    fn typing_searches_debounced_and_stale_answers_are_dropped() {
        let mut s = ready_state();
        app_update(&mut s, Action::MemorySearch);
        assert_eq!(s.focus, Pane::Memory);
        assert!(s.prompt.as_ref().unwrap().purpose.inline());
        app_update(&mut s, Action::PromptInsert('o'));
        let fx = app_update(&mut s, Action::PromptInsert('k'));
        let Effect::QueryMemories {
            seq,
            query,
            debounce,
        } = &fx[0]
        else {
            panic!("{fx:?}")
        };
        assert_eq!((*seq, query.text.as_str(), *debounce), (3, "ok", true));
        // The answer to "o" arrives late: dropped.
        app_update(
            &mut s,
            Action::MemoryRows {
                seq: 2,
                rows: vec![row(1, false)],
                total: 1,
                error: None,
            },
        );
        assert!(s.memory.rows.is_empty() && s.memory.pending);
        with_rows(&mut s, &[5, 6]);
        assert_eq!(s.memory.rows.len(), 2);
        // New text: the best result is selected, not the one selected before.
        app_update(&mut s, Action::ScrollDown);
        app_update(&mut s, Action::PromptBackspace);
        with_rows(&mut s, &[7, 6]);
        assert_eq!(s.memory.current_id(), Some(7));
        app_update(&mut s, Action::PromptInsert('k'));
        with_rows(&mut s, &[5, 6]);
        assert!(!s.memory.pending);
        // Enter keeps the results and gives the keys back to the list.
        app_update(&mut s, Action::PromptSubmit);
        assert!(s.prompt.is_none());
        assert_eq!(s.memory.query, "ok");
        app_update(&mut s, Action::ScrollDown);
        assert_eq!(s.memory.current_id(), Some(6));
        // Esc in the list clears the search first, then cancels jobs as everywhere.
        let fx = app_update(&mut s, Action::MemoryBack);
        assert!(matches!(&fx[0], Effect::QueryMemories { query, .. } if query.text.is_empty()));
        assert!(app_update(&mut s, Action::MemoryBack).is_empty());
        assert_eq!(s.notifications.back().unwrap().text, "no job is running");
    }

    #[test]
    fn an_import_builds_memories_once_memory_is_open() {
        let mut s = State::new(LayoutMode::Auto);
        let fx = job_done(&mut s, "ingest");
        assert!(!fx.contains(&Effect::BuildMemory));
        assert!(s.memory.build_pending);
        let fx = app_update(&mut s, Action::MemoryOpened(Ok(vec!["no model".into()])));
        assert!(fx.contains(&Effect::BuildMemory));
        assert_eq!(s.notifications.back().unwrap().level, Level::Warn);
        assert!(
            job_done(&mut s, "demo")
                .iter()
                .all(|e| *e != Effect::BuildMemory)
        );
        assert!(job_done(&mut s, "ingest").contains(&Effect::BuildMemory));
        // A finished build refreshes the list.
        assert!(
            job_done(&mut s, "index")
                .iter()
                .any(|e| matches!(e, Effect::QueryMemories { .. }))
        );
    }

    #[test]
    fn keys_wait_until_memory_is_open() {
        let mut s = State::new(LayoutMode::Auto);
        assert!(app_update(&mut s, Action::MemorySearch).is_empty());
        assert!(s.prompt.is_none());
        assert_eq!(
            s.notifications.back().unwrap().text,
            "memory is still loading…"
        );
        app_update(&mut s, Action::MemoryOpened(Err("broken".into())));
        assert!(app_update(&mut s, Action::OpenMemory("abcdef".into())).is_empty());
        assert_eq!(s.focus, Pane::Memory);
        assert!(matches!(s.memory.status, MemoryStatus::Failed(_)));
    }

    #[test]
    fn other_panes_open_a_memory_by_id() {
        let mut s = ready_state();
        s.focus = Pane::Chat;
        let fx = app_update(&mut s, Action::OpenMemory("m:0123456789abcdef".into()));
        assert_eq!(fx, vec![Effect::ShowMemory("m:0123456789abcdef".into())]);
        assert_eq!(s.focus, Pane::Memory);
        app_update(
            &mut s,
            Action::MemoryDetail(Box::new(detail(0x0123456789abcdef, "text"))),
        );
        assert_eq!(s.memory.screen(), Some(Screen::Detail(0x0123456789abcdef)));
        // Enter in a detail shows its conversation; back returns to the list.
        assert_eq!(
            app_update(&mut s, Action::MemoryOpen),
            vec![Effect::MemorySource(0x0123456789abcdef)]
        );
        app_update(&mut s, Action::MemoryBack);
        assert_eq!(s.memory.screen(), None);
    }

    #[test]
    fn forget_asks_first_and_says_what_goes() {
        let mut s = ready_state();
        with_rows(&mut s, &[1, 2, 3]);
        app_update(&mut s, Action::MemoryDetail(Box::new(detail(2, "text"))));
        assert!(app_update(&mut s, Action::MemoryForget).is_empty());
        let c = s.confirm.clone().expect("a question");
        assert_eq!(c.on_yes, ConfirmAction::ForgetMemory(2));
        let said = c.detail.join(" ");
        assert!(
            said.contains("vector") && said.contains("2 sources") && said.contains("training"),
            "{said}"
        );
        // No keeps it.
        app_update(&mut s, Action::ConfirmNo);
        assert!(s.confirm.is_none());
        app_update(&mut s, Action::MemoryForget);
        assert_eq!(
            app_update(&mut s, Action::ConfirmYes),
            vec![Effect::ForgetMemory(2)]
        );
        app_update(
            &mut s,
            Action::MemoryForgotten {
                id: 2,
                note: "forgot episode".into(),
            },
        );
        assert_eq!(s.memory.screen(), None, "its detail closes");
        let ids: Vec<u64> = s.memory.rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(s.memory.total, 2);
    }

    #[test]
    fn pin_toggles_from_the_list() {
        let mut s = ready_state();
        with_rows(&mut s, &[1]);
        assert_eq!(
            app_update(&mut s, Action::MemoryPin),
            vec![Effect::PinMemory(1, true)]
        );
        let d = DetailAndRow {
            detail: detail(1, "x"),
            row: row(1, true),
        };
        app_update(
            &mut s,
            Action::MemoryChanged {
                detail: Box::new(d),
                note: "pinned".into(),
            },
        );
        assert!(s.memory.rows[0].pinned);
        assert_eq!(
            app_update(&mut s, Action::MemoryPin),
            vec![Effect::PinMemory(1, false)]
        );
    }

    #[test]
    fn the_editor_saves_the_new_text() {
        let mut s = ready_state();
        with_rows(&mut s, &[4]);
        // From the list, edit opens the memory first.
        assert_eq!(
            app_update(&mut s, Action::MemoryEdit),
            vec![Effect::ShowMemory(show_id(4))]
        );
        app_update(&mut s, Action::MemoryDetail(Box::new(detail(4, "old"))));
        app_update(&mut s, Action::MemoryEdit);
        assert!(s.memory.editing.is_some());
        for _ in 0..3 {
            app_update(&mut s, Action::EditorBackspace);
        }
        assert!(
            app_update(&mut s, Action::EditorSave).is_empty(),
            "empty text is refused"
        );
        for c in "new".chars() {
            app_update(&mut s, Action::EditorInsert(c));
        }
        app_update(&mut s, Action::EditorNewline);
        app_update(&mut s, Action::EditorInsert('!'));
        assert_eq!(
            app_update(&mut s, Action::EditorSave),
            vec![Effect::SaveMemory(4, "new\n!".into())]
        );
        assert!(s.memory.editing.as_ref().unwrap().saving);
        app_update(&mut s, Action::EditorInsert('x'));
        assert_eq!(
            s.memory.editing.as_ref().unwrap().editor.text(),
            "new\n!",
            "no typing while saving"
        );
        app_update(
            &mut s,
            Action::MemoryChanged {
                detail: Box::new(DetailAndRow {
                    detail: detail(4, "new\n!"),
                    row: row(4, false),
                }),
                note: "saved".into(),
            },
        );
        assert!(s.memory.editing.is_none());
        assert_eq!(s.memory.detail.as_ref().unwrap().show.memory.text, "new\n!");
    }

    #[test]
    fn filters_cycle_and_requery() {
        let mut s = ready_state();
        let fx = app_update(&mut s, Action::MemoryKindFilter);
        assert!(
            matches!(&fx[0], Effect::QueryMemories { query, .. } if query.kind == Some(MemoryKind::Episode))
        );
        // No contacts known yet: says so.
        assert!(app_update(&mut s, Action::MemoryContactNext).is_empty());
        assert!(s.memory.contact.is_none());
    }

    #[test]
    fn topics_open_their_memories_and_the_biography_its_references() {
        let mut s = ready_state();
        assert_eq!(
            app_update(&mut s, Action::MemoryTopics),
            vec![Effect::ReadL1]
        );
        let l1 = L1 {
            topics: vec![crate::memory::topics::Topic {
                label: "music".into(),
                terms: vec!["guitar".into()],
                size: 3,
                examples: vec![7, 8],
            }],
            entities: vec![],
            biography: "# About me\n- I play guitar [m:0000000000000007]\n- I like tea [m:0000000000000008]\n".into(),
            computed_ms: 0,
        };
        app_update(&mut s, Action::MemoryL1(Some(Box::new(l1))));
        assert_eq!(
            app_update(&mut s, Action::MemoryOpen),
            vec![Effect::ReadRows(vec![7, 8])]
        );
        assert_eq!(s.memory.screen(), Some(Screen::TopicMemories(0)));
        app_update(
            &mut s,
            Action::MemoryTopicRows(vec![row(7, false), row(8, false)]),
        );
        app_update(&mut s, Action::ScrollDown);
        assert_eq!(
            app_update(&mut s, Action::MemoryOpen),
            vec![Effect::ShowMemory(show_id(8))]
        );
        app_update(&mut s, Action::MemoryBio);
        assert_eq!(s.memory.screen(), Some(Screen::Bio));
        app_update(&mut s, Action::ScrollDown);
        app_update(&mut s, Action::ScrollDown);
        assert_eq!(
            app_update(&mut s, Action::MemoryOpen),
            vec![Effect::ShowMemory("0000000000000008".into())]
        );
        app_update(&mut s, Action::MemoryBack);
        assert_eq!(s.memory.screen(), None);
    }

    #[test]
    fn editor_edits_across_lines() {
        let mut e = Editor::new("ab\ncd");
        assert_eq!((e.row, e.col), (1, 2));
        e.home();
        e.backspace();
        assert_eq!(e.text(), "abcd");
        assert_eq!((e.row, e.col), (0, 2));
        e.newline();
        e.insert('é');
        e.insert('x');
        assert_eq!(e.text(), "ab\néxcd");
        e.left();
        e.left();
        e.up();
        assert_eq!((e.row, e.col), (0, 0));
        e.end();
        e.delete();
        assert_eq!(e.text(), "abéxcd");
        e.down();
        e.right();
        e.right();
        e.delete();
        assert_eq!(e.text(), "abéxd");
        let mut empty = Editor::new("");
        empty.backspace();
        empty.delete();
        empty.left();
        empty.up();
        assert_eq!(empty.text(), "");
    }

    #[test]
    fn references_are_found_in_order() {
        let text = "- I live in Oslo [m:00aa11bb22cc33dd]\n- [m:] and [m:xyz] are not ids; [m:0123456789abcdef].";
        assert_eq!(
            references(text),
            vec![
                "00aa11bb22cc33dd".to_string(),
                "0123456789abcdef".to_string()
            ]
        );
    }

    #[test]
    fn kind_filter_cycles_through_all_kinds_and_back() {
        let mut k = None;
        let mut seen = Vec::new();
        for _ in 0..=MemoryKind::ALL.len() {
            k = next_kind(k);
            seen.push(k);
        }
        assert_eq!(seen.last(), Some(&None));
        assert_eq!(seen.len(), MemoryKind::ALL.len() + 1);
    }
}
