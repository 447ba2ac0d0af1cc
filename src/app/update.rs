use super::memory::{self, ListQuery};
use super::{Action, ConfirmAction, JobView, LayoutMode, Pane, Prompt, PromptPurpose, State};
use crate::checkin::rules::RuleEdit;
use crate::ingest::records::Id;
use crate::jobs::{JobBody, JobId, Level};

/// What the front-end must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leave: cancel jobs, restore the terminal.
    Quit,
    /// Re-read counts, models and folders, then send `Action::Overview`.
    RefreshOverview,
    CancelJob(JobId),
    /// Start an import job of these paths (as typed: `~` not yet expanded).
    StartIngest(Vec<String>),
    /// Complete a typed path, then send `Action::PromptSet`.
    CompletePath(String),
    /// Import the bundled demo export.
    StartDemo,
    /// Merge the first contact into the second.
    MergeContacts(Id, Id),
    /// Move the contact's messages written under the name to a contact of their own.
    SplitContact(Id, String),
    /// Merge this contact into "me".
    ConfirmMe(Id),
    /// Run one chat turn as a `chat` job.
    ChatTurn {
        question: String,
        history: Vec<crate::llm::Message>,
        session: Option<u64>,
        /// The twin's opening (text, context) to store first in a new session.
        opening: Option<(String, String)>,
        contact: Option<String>,
        adapter: Option<std::path::PathBuf>,
    },
    /// Put text on the terminal's clipboard (OSC 52).
    Copy(String),
    /// Read the stored chat sessions, then send `Action::ChatSessionList`.
    ListSessions,
    /// Read a stored session, then send `Action::ChatSessionLoaded`.
    LoadSession(u64),
    /// The conversation with this session is over (a new one, another
    /// session, quitting): mark it closed and make it a `chat` memory.
    CloseSession(u64),
    /// Work out what forgetting this contact removes, then send `Action::ForgetPlanned`.
    PlanForget(Id),
    /// Forget this contact everywhere (confirmed).
    Forget(Id),
    /// Put this contact on the never-train list, or take them off it.
    ToggleNeverTrain(Id),
    /// Run the check-in scheduler once (a `checkin` job delivers what is due).
    CheckinTick,
    /// Re-read upcoming check-ins, history and the next wake-up, then send `Action::Checkins`.
    RefreshCheckins,
    SnoozeCheckin(String),
    DismissCheckin(String),
    /// Load the check-in's opening turn, then send `Action::CheckinOpened`.
    OpenCheckin(String),
    /// Change the schedule in config.toml, reload it, then refresh the view.
    EditCheckinRule(crate::checkin::rules::RuleEdit),
    /// Ring the terminal bell and send a desktop notification (OSC 9 and OSC 777).
    Alert(String),
    /// Open the store's memory (the embedding model loads), then send
    /// `Action::MemoryOpened`.
    LoadMemory,
    /// Build memories from what was imported, as a job (`index`).
    BuildMemory,
    /// Read the memory list (ranked search results when `query.text` is set),
    /// then send `Action::MemoryRows` with `seq`. With `debounce`, wait until
    /// typing pauses and skip it if a newer request came meanwhile.
    QueryMemories {
        seq: u64,
        query: ListQuery,
        debounce: bool,
    },
    /// Resolve a memory id as written (hex, a unique prefix, `m:ID`) and send
    /// `Action::MemoryDetail`.
    ShowMemory(String),
    /// Read the conversation around a memory's sources.
    MemorySource(u64),
    PinMemory(u64, bool),
    /// Replace a memory's text (re-embedded).
    SaveMemory(u64, String),
    ForgetMemory(u64),
    /// Read the stored topics and biography.
    ReadL1,
    /// Recompute topics and biography, as a job (`topics`).
    ComputeL1,
    /// Rows for these memories (a topic's examples).
    ReadRows(Vec<u64>),
    /// Build a training set from the store.
    BuildDataset,
    /// Train on the latest set (`resume`: continue the last stopped run).
    StartTraining {
        resume: bool,
    },
    /// Evaluate the active (else newest) adapter against the base.
    StartEval,
    /// Push-to-talk: start recording from the microphone (a `voice` job).
    StartRecording,
    /// Stop recording and transcribe what was heard.
    StopRecording,
}

/// The only place state changes.
pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    let page = state.size.1.saturating_sub(6).max(1);
    if let Some(fx) = super::chat::update(state, &action) {
        return fx;
    }
    match action {
        Action::Quit => {
            state.quit = true;
            let mut fx: Vec<Effect> = state
                .chat
                .conv
                .session
                .map(Effect::CloseSession)
                .into_iter()
                .collect();
            fx.push(Effect::Quit);
            return fx;
        }
        Action::FocusNext => state.focus = state.focus.next(),
        Action::FocusPrev => state.focus = state.focus.prev(),
        Action::FocusIngest => state.focus = Pane::Ingest,
        Action::FocusMemory => state.focus = Pane::Memory,
        Action::FocusTraining => state.focus = Pane::Training,
        Action::FocusChat => state.focus = Pane::Chat,
        Action::Focus(p) => state.focus = p,
        Action::ToggleHelp => {
            state.help = !state.help;
            state.help_scroll = 0;
        }
        Action::ToggleLayout => {
            state.layout = if state.grid() {
                LayoutMode::Single
            } else {
                LayoutMode::Grid
            }
        }
        Action::ScrollUp if super::chat::select_session(state, -1) => {}
        Action::ScrollDown if super::chat::select_session(state, 1) => {}
        Action::PageUp if super::chat::select_session(state, -(page as i64)) => {}
        Action::PageDown if super::chat::select_session(state, page as i64) => {}
        Action::ScrollUp if state.checkins.view.is_some() => select_checkin(state, -1),
        Action::ScrollDown if state.checkins.view.is_some() => select_checkin(state, 1),
        Action::PageUp if state.checkins.view.is_some() => select_checkin(state, -(page as i64)),
        Action::PageDown if state.checkins.view.is_some() => select_checkin(state, page as i64),
        Action::ScrollUp if memory::selects(state) => memory::select(state, -1),
        Action::ScrollDown if memory::selects(state) => memory::select(state, 1),
        Action::PageUp if memory::selects(state) => memory::select(state, -(page as i64)),
        Action::PageDown if memory::selects(state) => memory::select(state, page as i64),
        Action::ScrollTop if memory::selects(state) => memory::select(state, i64::MIN / 2),
        Action::ScrollBottom if memory::selects(state) => memory::select(state, i64::MAX / 2),
        Action::ScrollUp if contacts_open(state) => select(state, -1),
        Action::ScrollDown if contacts_open(state) => select(state, 1),
        Action::PageUp if contacts_open(state) => select(state, -(page as i64)),
        Action::PageDown if contacts_open(state) => select(state, page as i64),
        Action::ScrollUp => scroll(state, |s| s.saturating_sub(1)),
        Action::ScrollDown => scroll(state, |s| s.saturating_add(1)),
        Action::PageUp => scroll(state, |s| s.saturating_sub(page)),
        Action::PageDown => scroll(state, |s| s.saturating_add(page)),
        Action::ScrollTop => scroll(state, |_| 0),
        Action::ScrollBottom => scroll(state, |_| u16::MAX),
        Action::DismissNotification => {
            state.notifications.pop_back();
        }
        Action::Refresh => return vec![Effect::RefreshOverview],
        Action::CancelJob => {
            if let Some((&id, _)) = state.jobs.iter().next_back() {
                state.notify(Level::Info, "cancelling the newest job…");
                return vec![Effect::CancelJob(id)];
            }
            state.notify(Level::Info, "no job is running");
        }
        Action::StartIngest => {
            if state.jobs.values().any(|j| j.kind == "ingest") {
                state.notify(Level::Info, "an import is already running");
            } else {
                state.focus = Pane::Ingest;
                state.prompt = Some(Prompt {
                    purpose: PromptPurpose::ImportPath,
                    input: String::new(),
                    candidates: Vec::new(),
                });
            }
        }
        Action::StartDemo => {
            if state.jobs.values().any(|j| j.kind == "ingest") {
                state.notify(Level::Info, "an import is already running");
            } else {
                state.focus = Pane::Ingest;
                return vec![Effect::StartDemo];
            }
        }
        Action::ToggleContacts => {
            state.focus = Pane::Ingest;
            state.contacts = match state.contacts {
                Some(_) => None,
                None => Some(crate::app::ContactsView::default()),
            };
        }
        Action::MarkContact => {
            if let Some(v) = &mut state.contacts {
                v.marked = if v.marked == Some(v.selected) {
                    None
                } else {
                    Some(v.selected)
                };
            }
        }
        Action::MergeContacts => {
            let rows = state.ingest.as_ref().map(|i| &i.contacts);
            if let (Some(v), Some(rows)) = (&state.contacts, rows) {
                match v.marked {
                    Some(m) if m != v.selected && m < rows.len() && v.selected < rows.len() => {
                        let (from, into) = (rows[m].key, rows[v.selected].key);
                        if let Some(view) = &mut state.contacts {
                            view.marked = None;
                        }
                        return vec![Effect::MergeContacts(from, into)];
                    }
                    _ => state.notify(
                        Level::Info,
                        "mark a contact first (space), then select the one to merge it into",
                    ),
                }
            }
        }
        Action::SplitContact => {
            let row = state
                .contacts
                .as_ref()
                .zip(state.ingest.as_ref())
                .and_then(|(v, i)| i.contacts.get(v.selected));
            match row {
                Some(r) if r.names.len() > 1 => {
                    let (key, candidates) = (r.key, r.names.clone());
                    state.prompt = Some(Prompt {
                        purpose: PromptPurpose::SplitName(key),
                        input: String::new(),
                        candidates,
                    });
                }
                Some(r) => state.notify(
                    Level::Info,
                    format!("{} has only one name: nothing to split", r.name),
                ),
                None => {}
            }
        }
        Action::ForgetContact => {
            let row = state
                .contacts
                .as_ref()
                .zip(state.ingest.as_ref())
                .and_then(|(v, i)| i.contacts.get(v.selected));
            match row {
                Some(r) if r.me => state.notify(Level::Info, "twin cannot forget you"),
                Some(r) => return vec![Effect::PlanForget(r.key)],
                None => state.notify(
                    Level::Info,
                    "open the contacts list (c) and select who to forget",
                ),
            }
        }
        Action::NeverTrainContact => {
            let row = state
                .contacts
                .as_ref()
                .zip(state.ingest.as_ref())
                .and_then(|(v, i)| i.contacts.get(v.selected));
            match row {
                Some(r) if r.me => state.notify(
                    Level::Info,
                    "the twin learns from your own words: choose someone else",
                ),
                Some(r) => return vec![Effect::ToggleNeverTrain(r.key)],
                None => state.notify(
                    Level::Info,
                    "open the contacts list (c) and select who never to train on",
                ),
            }
        }
        Action::ForgetPlanned { contact, plan } => {
            let what: Vec<String> = plan
                .removed
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            state.prompt = Some(Prompt {
                purpose: PromptPurpose::ConfirmForget(contact),
                input: String::new(),
                candidates: vec![format!("{}: {}", plan.contact, what.join(", "))],
            });
        }
        Action::ConfirmMe => match state.ingest.as_ref().map(|i| (&i.me.how, i.me.contact)) {
            Some((&"proposed", Some(id))) => return vec![Effect::ConfirmMe(id)],
            Some((&"confirmed", _)) => state.notify(Level::Info, "you are already known"),
            _ => state.notify(
                Level::Info,
                "import some chats first: twin proposes which author is you",
            ),
        },
        Action::PromptInsert(c) => {
            if let Some(p) = &mut state.prompt {
                p.input.push(c);
                if p.purpose == PromptPurpose::ImportPath {
                    p.candidates.clear();
                }
                if p.purpose == PromptPurpose::MemorySearch {
                    let input = p.input.clone();
                    return memory::search_typed(state, &input);
                }
                if let PromptPurpose::CheckinRule(_) = p.purpose {
                    p.candidates = vec![rule_check(&p.input)];
                }
            }
        }
        Action::PromptBackspace => {
            if let Some(p) = &mut state.prompt {
                p.input.pop();
                if p.purpose == PromptPurpose::ImportPath {
                    p.candidates.clear();
                }
                if p.purpose == PromptPurpose::MemorySearch {
                    let input = p.input.clone();
                    return memory::search_typed(state, &input);
                }
                if let PromptPurpose::CheckinRule(_) = p.purpose {
                    p.candidates = vec![rule_check(&p.input)];
                }
            }
        }
        Action::PromptSet { input, candidates } => {
            if let Some(p) = &mut state.prompt {
                (p.input, p.candidates) = (input, candidates);
            }
        }
        Action::PromptComplete => {
            if let Some(p) = &mut state.prompt {
                match p.purpose {
                    PromptPurpose::ImportPath => {
                        return vec![Effect::CompletePath(p.input.clone())];
                    }
                    PromptPurpose::ConfirmForget(_)
                    | PromptPurpose::MemorySearch
                    | PromptPurpose::CheckinRule(_) => {}
                    PromptPurpose::SplitName(_) | PromptPurpose::ChatContact => {
                        let typed = p.input.to_lowercase();
                        if let Some(c) = p
                            .candidates
                            .iter()
                            .find(|c| c.to_lowercase().starts_with(&typed))
                        {
                            p.input = c.clone();
                        }
                    }
                }
            }
        }
        Action::ToggleRecording => match state.recording() {
            Some(true) => return vec![Effect::StopRecording],
            Some(false) => state.notify(Level::Info, "still transcribing the last recording"),
            None => {
                state.focus = Pane::Chat;
                return vec![Effect::StartRecording];
            }
        },
        Action::PromptCancel => {
            if let Some(p) = state.prompt.take()
                && p.purpose == PromptPurpose::MemorySearch
                && !state.memory.query.is_empty()
            {
                return memory::search_typed(state, "");
            }
        }
        Action::PromptSubmit
            if state
                .prompt
                .as_ref()
                .is_some_and(|p| p.purpose == PromptPurpose::MemorySearch) =>
        {
            // The results stay; the keys move through them again.
            state.prompt = None;
        }
        Action::PromptSubmit
            if matches!(
                state.prompt.as_ref().map(|p| p.purpose),
                Some(PromptPurpose::CheckinRule(_))
            ) =>
        {
            return submit_rule(state);
        }
        Action::PromptSubmit => {
            if let Some(p) = state.prompt.take() {
                let input = p.input.trim().to_string();
                if p.purpose == PromptPurpose::ChatContact {
                    super::chat::set_contact(state, &input);
                } else if input.is_empty() {
                    state.prompt = Some(p);
                    state.notify(Level::Info, "type a path first (tab completes)");
                } else {
                    match p.purpose {
                        PromptPurpose::ImportPath => return vec![Effect::StartIngest(vec![input])],
                        PromptPurpose::SplitName(id) => {
                            return vec![Effect::SplitContact(id, input)];
                        }
                        PromptPurpose::ChatContact => {}
                        PromptPurpose::ConfirmForget(id) if input == "yes" => {
                            return vec![Effect::Forget(id)];
                        }
                        PromptPurpose::ConfirmForget(_) => {
                            state.notify(Level::Info, "nothing was forgotten (type yes to forget)");
                        }
                        PromptPurpose::MemorySearch | PromptPurpose::CheckinRule(_) => {}
                    }
                }
            }
        }
        Action::ConfirmYes => {
            if let Some(c) = state.confirm.take() {
                return match c.on_yes {
                    ConfirmAction::ForgetMemory(id) => vec![Effect::ForgetMemory(id)],
                    ConfirmAction::DeleteCheckinRule(i) => match state.checkins.rule(i) {
                        Some(r) => vec![Effect::EditCheckinRule(RuleEdit::Delete(r.rule.clone()))],
                        None => Vec::new(),
                    },
                };
            }
        }
        Action::ConfirmNo => state.confirm = None,
        action @ (Action::MemorySearch
        | Action::MemoryOpen
        | Action::MemoryBack
        | Action::MemoryKindFilter
        | Action::MemoryContactNext
        | Action::MemoryContactPrev
        | Action::MemoryPin
        | Action::MemoryEdit
        | Action::MemoryForget
        | Action::MemorySource
        | Action::MemoryTopics
        | Action::MemoryBio
        | Action::MemoryBuild
        | Action::MemoryRecompute
        | Action::OpenMemory(_)
        | Action::MemoryOpened(_)
        | Action::MemoryRows { .. }
        | Action::MemoryDetail(_)
        | Action::MemorySourceShown(_)
        | Action::MemoryChanged { .. }
        | Action::MemoryForgotten { .. }
        | Action::MemoryFailed(_)
        | Action::MemoryL1(_)
        | Action::MemoryTopicRows(_)
        | Action::EditorSave
        | Action::EditorCancel
        | Action::EditorInsert(_)
        | Action::EditorNewline
        | Action::EditorBackspace
        | Action::EditorDelete
        | Action::EditorLeft
        | Action::EditorRight
        | Action::EditorUp
        | Action::EditorDown
        | Action::EditorHome
        | Action::EditorEnd) => return memory::update(state, action),
        Action::BuildDataset
        | Action::StartTraining
        | Action::ResumeTraining
        | Action::StartEval => {
            if state
                .jobs
                .values()
                .any(|j| matches!(j.kind.as_str(), "train" | "dataset" | "eval"))
            {
                state.notify(Level::Info, "training is already busy; esc cancels it");
            } else {
                state.focus = Pane::Training;
                if action == Action::StartEval {
                    state.show_eval = true;
                }
                return vec![match action {
                    Action::BuildDataset => Effect::BuildDataset,
                    Action::StartEval => Effect::StartEval,
                    a => Effect::StartTraining {
                        resume: a == Action::ResumeTraining,
                    },
                }];
            }
        }
        Action::TrainingOverview(o) => state.training = Some(*o),
        Action::EvalReport(r) => state.eval_report = r.map(|r| *r),
        Action::ToggleEvalReport => {
            state.focus = Pane::Training;
            state.show_eval = !state.show_eval;
        }
        Action::IngestOverview(o) => state.ingest = Some(*o),
        // Handled by `chat::update` above.
        Action::ChatCompose
        | Action::ChatSend
        | Action::ChatNewline
        | Action::ChatBackspace
        | Action::ChatHistoryPrev
        | Action::ChatHistoryNext
        | Action::ChatCancel
        | Action::ChatPrevCitation
        | Action::ChatNextCitation
        | Action::ChatOpenCitation
        | Action::ChatCopy
        | Action::ChatSessions
        | Action::ChatNew
        | Action::ChatToggleAdapter
        | Action::ChatContact
        | Action::ChatInsert(_)
        | Action::ChatSessionList(_)
        | Action::ChatSessionLoaded(_) => {}
        Action::ToggleCheckins => {
            let c = &mut state.checkins;
            c.view = match c.view {
                Some(_) => None,
                None => {
                    c.unread = 0;
                    // The newest delivered one is selected (first in history),
                    // else the next one coming.
                    Some(
                        c.rules.len()
                            + if c.latest.is_some() {
                                c.upcoming.len()
                            } else {
                                0
                            },
                    )
                }
            };
            return vec![Effect::RefreshCheckins];
        }
        Action::AddCheckinRule
        | Action::EditCheckinRule
        | Action::ToggleCheckinRule
        | Action::DeleteCheckinRule => return rule_action(state, &action),
        Action::OpenCheckin
            if state
                .checkins
                .view
                .is_some_and(|i| state.checkins.rule(i).is_some()) =>
        {
            return rule_action(state, &Action::EditCheckinRule);
        }
        Action::SnoozeCheckin | Action::DismissCheckin | Action::OpenCheckin => {
            let c = &state.checkins;
            let id = match c.view {
                Some(i) => c.row(i).map(|r| r.id.clone()),
                None => c.latest.clone(),
            };
            let Some(id) = id else {
                let what = if c.view.is_some_and(|i| c.rule(i).is_some()) {
                    "that is a rule: select a check-in below it (e edits a rule, space switches it, D deletes it)"
                } else {
                    "no check-in yet"
                };
                state.notify(Level::Info, what);
                return Vec::new();
            };
            return match action {
                Action::SnoozeCheckin => vec![Effect::SnoozeCheckin(id)],
                Action::DismissCheckin => vec![Effect::DismissCheckin(id)],
                _ => {
                    state.checkins.view = None;
                    state.focus = Pane::Chat;
                    vec![Effect::OpenCheckin(id)]
                }
            };
        }
        Action::CheckinTick => {
            if !state.checkins.running {
                state.checkins.running = true;
                return vec![Effect::CheckinTick];
            }
        }
        Action::Checkins(list, next) => {
            let c = &mut state.checkins;
            // The selection stays on the same check-in (a snoozed one moves up).
            let selected = c.view.and_then(|i| c.row(i)).map(|r| r.id.clone());
            c.rules = list.schedule;
            c.upcoming = list.upcoming;
            c.history = list.history;
            c.next_wake_ms = next;
            if let Some(i) = c.view {
                let same = selected
                    .and_then(|id| (0..c.rows()).find(|&j| c.row(j).is_some_and(|r| r.id == id)));
                c.view = Some(same.unwrap_or(i).min(c.rows().saturating_sub(1)));
            }
        }
        Action::CheckinOpened(turn) => {
            state.focus = Pane::Chat;
            if state.chat.conv.phase.busy() {
                state.notify(
                    Level::Info,
                    "wait for the reply (or esc) before opening a check-in",
                );
                return Vec::new();
            }
            // A new conversation that the twin begins: a reply continues it.
            let closed = state.chat.conv.session.map(Effect::CloseSession);
            state.chat.conv = crate::llm::conversation::Conversation::opened(
                &turn.text,
                &turn.context(),
                crate::llm::sessions::now_ms(),
            );
            state.chat.citation = None;
            state.scroll[Pane::Chat.index()] = 0;
            state.checkins.opening = Some(*turn);
            return closed.into_iter().collect();
        }
        Action::Resize { width, height } => state.size = (width, height),
        Action::Overview(report) => state.overview = Some(*report),
        Action::Notify(n) => state.notify(n.level, n.text),
        Action::Job(ev) if ev.job == "chat" => {
            let fx = super::chat::job_event(state, &ev);
            // The status bar still shows the job while it runs.
            match ev.body {
                JobBody::Started { title } => {
                    state.jobs.insert(
                        ev.id,
                        JobView {
                            kind: ev.job,
                            title,
                            done: 0,
                            total: None,
                            unit: String::new(),
                            rate: None,
                            detail: None,
                        },
                    );
                }
                JobBody::Done { .. } => {
                    state.jobs.remove(&ev.id);
                }
                JobBody::Failed { error } => {
                    state.jobs.remove(&ev.id);
                    if error != "cancelled" {
                        state.notify(Level::Error, format!("chat failed: {error}"));
                    }
                }
                JobBody::Log { level, message } if level != Level::Info => {
                    state.notify(level, format!("chat: {message}"));
                }
                _ => {}
            }
            return fx;
        }
        Action::Job(ev) => match ev.body {
            JobBody::Started { title } => {
                if ev.job == "train" {
                    state.train_curve.clear();
                }
                state.jobs.insert(
                    ev.id,
                    JobView {
                        kind: ev.job,
                        title,
                        done: 0,
                        total: None,
                        unit: String::new(),
                        rate: None,
                        detail: None,
                    },
                );
            }
            JobBody::Progress {
                done,
                total,
                unit,
                rate,
                metrics,
            } => {
                if ev.job == "train" && !metrics.is_empty() {
                    state
                        .train_curve
                        .push(crate::app::CurvePoint::from_metrics(done, &metrics));
                }
                if let Some(j) = state.jobs.get_mut(&ev.id) {
                    (j.done, j.total, j.unit, j.rate) = (done, total, unit, rate);
                }
            }
            JobBody::Log { level, message } => {
                if level != Level::Info {
                    state.notify(level, format!("{}: {message}", ev.job));
                } else if let Some(j) = state.jobs.get_mut(&ev.id) {
                    j.detail = Some(message);
                }
            }
            // Streamed text belongs to the pane that asked for it (chat).
            JobBody::Token { .. } => {}
            JobBody::Checkin { id, rule, text, .. } => {
                let c = &mut state.checkins;
                if c.view.is_none() {
                    c.unread += 1;
                }
                c.latest = Some(id);
                state.notify(Level::Info, format!("check-in ({rule}): {text}"));
                return vec![Effect::Alert(text)];
            }
            JobBody::Done { .. } | JobBody::Failed { .. } if ev.job == "checkin" => {
                state.jobs.remove(&ev.id);
                state.checkins.running = false;
                if let JobBody::Failed { error } = ev.body {
                    state.notify(Level::Error, format!("check-in failed: {error}"));
                }
                return vec![Effect::RefreshCheckins, Effect::RefreshOverview];
            }
            JobBody::Done { summary } => {
                state.jobs.remove(&ev.id);
                if ev.job == "ingest" {
                    state.last_ingest = Some(summary);
                } else if ev.job == crate::voice::PTT_JOB {
                    let text = summary["text"]
                        .as_str()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    if text.is_empty() {
                        state.notify(Level::Info, "no speech heard; nothing to put in the input");
                    } else {
                        // The transcript lands in the chat input to edit and send.
                        let input = &mut state.chat.input;
                        if !input.is_empty() && !input.ends_with([' ', '\n']) {
                            input.push(' ');
                        }
                        input.push_str(&text);
                        state.chat.composing = true;
                        state.chat.recall = None;
                        state.focus = Pane::Chat;
                        state.notify(
                            Level::Info,
                            "transcribed into the chat input: edit it, enter sends",
                        );
                    }
                    return Vec::new();
                }
                state.notify(Level::Info, format!("{} finished", ev.job));
                let mut fx = vec![Effect::RefreshOverview];
                fx.extend(memory::after_job(state, &ev.job, true));
                return fx;
            }
            JobBody::Failed { error } => {
                state.jobs.remove(&ev.id);
                state.notify(Level::Error, format!("{} failed: {error}", ev.job));
                let mut fx = vec![Effect::RefreshOverview];
                fx.extend(memory::after_job(state, &ev.job, false));
                return fx;
            }
        },
    }
    Vec::new()
}

/// What a rule typed so far means: its cron pattern, or what is wrong.
pub fn rule_check(input: &str) -> String {
    match crate::checkin::rules::validate(input) {
        Ok(cron) => format!("✓ runs as cron `{cron}` (minute hour day month weekday)"),
        Err(e) => format!("✗ {e}"),
    }
}

/// The rule keys of the Check-ins view.
fn rule_action(state: &mut State, action: &Action) -> Vec<Effect> {
    let c = &state.checkins;
    let Some(i) = c.view else {
        state.notify(Level::Info, "open the Check-ins view (C) to edit the rules");
        return Vec::new();
    };
    if *action == Action::AddCheckinRule {
        state.prompt = Some(Prompt {
            purpose: PromptPurpose::CheckinRule(None),
            input: String::new(),
            candidates: vec![rule_check("")],
        });
        return Vec::new();
    }
    let Some(rule) = c.rule(i).cloned() else {
        state.notify(
            Level::Info,
            "select a rule first (they are at the top; a adds one)",
        );
        return Vec::new();
    };
    match action {
        Action::EditCheckinRule => {
            state.prompt = Some(Prompt {
                purpose: PromptPurpose::CheckinRule(Some(i)),
                candidates: vec![rule_check(&rule.rule)],
                input: rule.rule,
            });
            Vec::new()
        }
        Action::ToggleCheckinRule => vec![Effect::EditCheckinRule(if rule.enabled {
            RuleEdit::Disable(rule.rule)
        } else {
            RuleEdit::Enable(rule.rule)
        })],
        _ => {
            state.confirm = Some(super::Confirm {
                question: format!("Delete the check-in rule `{}`?", rule.rule),
                detail: vec![
                    "It goes from checkin.rules in config.toml (comments stay).".into(),
                    "Its check-ins not yet delivered are dismissed; the history stays.".into(),
                    "To keep it but stop it, switch it off instead (space).".into(),
                ],
                on_yes: ConfirmAction::DeleteCheckinRule(i),
            });
            Vec::new()
        }
    }
}

/// Enter in the rule prompt: save a valid rule, or keep the prompt open saying what is wrong.
fn submit_rule(state: &mut State) -> Vec<Effect> {
    let Some(p) = state.prompt.as_mut() else {
        return Vec::new();
    };
    let PromptPurpose::CheckinRule(which) = p.purpose else {
        return Vec::new();
    };
    let input = p.input.trim().to_string();
    if crate::checkin::rules::validate(&input).is_err() {
        p.candidates = vec![rule_check(&input)];
        return Vec::new();
    }
    let old = which
        .and_then(|i| state.checkins.rule(i))
        .map(|r| r.rule.clone());
    state.prompt = None;
    match old {
        Some(old) if old == input => Vec::new(),
        Some(old) => vec![Effect::EditCheckinRule(RuleEdit::Change {
            old,
            new: input,
        })],
        None => vec![Effect::EditCheckinRule(RuleEdit::Add(input))],
    }
}

fn select_checkin(state: &mut State, by: i64) {
    let n = state.checkins.rows();
    if let Some(i) = &mut state.checkins.view {
        *i = (*i as i64 + by).clamp(0, n.saturating_sub(1) as i64) as usize;
    }
}

fn contacts_open(state: &State) -> bool {
    state.contacts.is_some() && state.focus == Pane::Ingest && !state.help
}

fn select(state: &mut State, by: i64) {
    let n = state.ingest.as_ref().map(|i| i.contacts.len()).unwrap_or(0);
    if let Some(v) = &mut state.contacts {
        v.selected = (v.selected as i64 + by).clamp(0, n.saturating_sub(1) as i64) as usize;
    }
}

fn scroll(state: &mut State, f: impl Fn(u16) -> u16) {
    if state.help {
        state.help_scroll = f(state.help_scroll);
    } else if state.focus == Pane::Chat {
        // The chat is anchored at its bottom: its offset counts lines up from there.
        let i = Pane::Chat.index();
        state.scroll[i] = u16::MAX - f(u16::MAX - state.scroll[i]);
    } else {
        let i = state.focus.index();
        state.scroll[i] = f(state.scroll[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobEvent;

    fn state() -> State {
        State::new(LayoutMode::Auto)
    }

    fn job(id: u64, body: JobBody) -> Action {
        Action::Job(JobEvent {
            id,
            job: "ingest".into(),
            body,
        })
    }

    #[test]
    fn focus_cycles_through_the_four_panes() {
        let mut s = state();
        let mut seen = vec![s.focus];
        for _ in 0..4 {
            update(&mut s, Action::FocusNext);
            seen.push(s.focus);
        }
        assert_eq!(
            seen,
            vec![
                Pane::Ingest,
                Pane::Memory,
                Pane::Training,
                Pane::Chat,
                Pane::Ingest
            ]
        );
        update(&mut s, Action::FocusPrev);
        assert_eq!(s.focus, Pane::Chat);
        update(&mut s, Action::FocusTraining);
        assert_eq!(s.focus, Pane::Training);
    }

    #[test]
    fn quit_sets_the_flag_and_asks_the_front_end_to_leave() {
        let mut s = state();
        assert_eq!(update(&mut s, Action::Quit), vec![Effect::Quit]);
        assert!(s.quit);
    }

    #[test]
    fn help_toggles_and_scrolls_itself() {
        let mut s = state();
        update(&mut s, Action::ToggleHelp);
        assert!(s.help);
        update(&mut s, Action::ScrollDown);
        assert_eq!((s.help_scroll, s.scroll[0]), (1, 0));
        update(&mut s, Action::ToggleHelp);
        assert!(!s.help);
        update(&mut s, Action::ScrollDown);
        assert_eq!(s.scroll[0], 1);
        update(&mut s, Action::ScrollUp);
        update(&mut s, Action::ScrollUp);
        assert_eq!(s.scroll[0], 0, "scrolling saturates at the top");
    }

    #[test]
    fn layout_auto_follows_size_and_toggles() {
        let mut s = state();
        update(
            &mut s,
            Action::Resize {
                width: 80,
                height: 24,
            },
        );
        assert!(!s.grid());
        update(
            &mut s,
            Action::Resize {
                width: 120,
                height: 40,
            },
        );
        assert!(s.grid());
        update(&mut s, Action::ToggleLayout);
        assert!(!s.grid());
        update(&mut s, Action::ToggleLayout);
        assert!(s.grid());
    }

    #[test]
    fn jobs_are_folded_into_state() {
        let mut s = state();
        update(
            &mut s,
            job(
                7,
                JobBody::Started {
                    title: "importing chat.txt".into(),
                },
            ),
        );
        assert_eq!(s.jobs[&7].title, "importing chat.txt");
        update(
            &mut s,
            job(
                7,
                JobBody::Progress {
                    done: 5,
                    total: Some(10),
                    unit: "messages".into(),
                    rate: None,
                    metrics: Vec::new(),
                },
            ),
        );
        assert_eq!((s.jobs[&7].done, s.jobs[&7].total), (5, Some(10)));
        update(
            &mut s,
            job(
                7,
                JobBody::Log {
                    level: Level::Warn,
                    message: "line 4 skipped".into(),
                },
            ),
        );
        assert_eq!(
            s.notifications.back().unwrap().text,
            "ingest: line 4 skipped"
        );
        assert_eq!(
            update(&mut s, Action::CancelJob),
            vec![Effect::CancelJob(7)]
        );
        let fx = update(
            &mut s,
            job(
                7,
                JobBody::Failed {
                    error: "cancelled".into(),
                },
            ),
        );
        assert_eq!(fx, vec![Effect::RefreshOverview]);
        assert!(s.jobs.is_empty());
        assert_eq!(s.notifications.back().unwrap().level, Level::Error);
        update(&mut s, Action::DismissNotification);
        assert_eq!(
            s.notifications.back().unwrap().text,
            "cancelling the newest job…"
        );
    }

    fn listed(id: &str, status: &str) -> crate::checkin::job::Listed {
        crate::checkin::job::Listed {
            id: id.into(),
            rule: "daily 08:30".into(),
            due: "2026-11-21T08:30:00+00:00".into(),
            status: status.into(),
            subject: None,
            text: Some("Good morning!".into()),
            cites: Vec::new(),
            delivered: None,
            reason: None,
        }
    }

    #[test]
    fn a_delivered_check_in_badges_alerts_and_opens_in_the_chat() {
        let mut s = state();
        assert_eq!(
            update(&mut s, Action::CheckinTick),
            vec![Effect::CheckinTick]
        );
        assert!(
            update(&mut s, Action::CheckinTick).is_empty(),
            "one run at a time"
        );
        let fx = update(
            &mut s,
            Action::Job(JobEvent {
                id: 3,
                job: "checkin".into(),
                body: JobBody::Checkin {
                    id: "00000000000000aa".into(),
                    rule: "daily 08:30".into(),
                    text: "Good morning!".into(),
                    due: "2026-11-21T08:30:00+00:00".into(),
                    cites: Vec::new(),
                },
            }),
        );
        assert_eq!(fx, vec![Effect::Alert("Good morning!".into())]);
        assert_eq!(s.checkins.unread, 1);
        assert!(
            s.notifications
                .back()
                .unwrap()
                .text
                .contains("Good morning!")
        );
        // With the view closed, snooze acts on the latest one.
        assert_eq!(
            update(&mut s, Action::SnoozeCheckin),
            vec![Effect::SnoozeCheckin("00000000000000aa".into())]
        );
        let fx = update(
            &mut s,
            Action::Job(JobEvent {
                id: 3,
                job: "checkin".into(),
                body: JobBody::Done {
                    summary: serde_json::json!({}),
                },
            }),
        );
        assert_eq!(fx, vec![Effect::RefreshCheckins, Effect::RefreshOverview]);
        assert!(!s.checkins.running);
        let list = crate::checkin::job::ListReport {
            at: String::new(),
            timezone: "UTC".into(),
            rules: Vec::new(),
            schedule: Vec::new(),
            upcoming: vec![listed("00000000000000bb", "upcoming")],
            history: vec![listed("00000000000000aa", "delivered")],
        };
        update(&mut s, Action::Checkins(Box::new(list), Some(0)));
        update(&mut s, Action::ToggleCheckins);
        assert_eq!((s.checkins.view, s.checkins.unread), (Some(1), 0));
        update(&mut s, Action::ScrollUp);
        assert_eq!(
            update(&mut s, Action::DismissCheckin),
            vec![Effect::DismissCheckin("00000000000000bb".into())]
        );
        update(&mut s, Action::ScrollDown);
        assert_eq!(
            update(&mut s, Action::OpenCheckin),
            vec![Effect::OpenCheckin("00000000000000aa".into())]
        );
        assert_eq!((s.focus, s.checkins.view), (Pane::Chat, None));
    }

    #[test]
    fn cancel_with_nothing_running_says_so() {
        let mut s = state();
        assert!(update(&mut s, Action::CancelJob).is_empty());
        assert_eq!(s.notifications.back().unwrap().text, "no job is running");
    }
}
