use super::{Action, JobView, LayoutMode, Pane, Prompt, PromptPurpose, State};
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
    /// Build a training set from the store.
    BuildDataset,
    /// Train on the latest set (`resume`: continue the last stopped run).
    StartTraining {
        resume: bool,
    },
}

/// The only place state changes.
pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    let page = state.size.1.saturating_sub(6).max(1);
    match action {
        Action::Quit => {
            state.quit = true;
            return vec![Effect::Quit];
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
            }
        }
        Action::PromptBackspace => {
            if let Some(p) = &mut state.prompt {
                p.input.pop();
                if p.purpose == PromptPurpose::ImportPath {
                    p.candidates.clear();
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
                    PromptPurpose::SplitName(_) => {
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
        Action::PromptCancel => state.prompt = None,
        Action::PromptSubmit => {
            if let Some(p) = state.prompt.take() {
                let input = p.input.trim().to_string();
                if input.is_empty() {
                    state.prompt = Some(p);
                    state.notify(Level::Info, "type a path first (tab completes)");
                } else {
                    match p.purpose {
                        PromptPurpose::ImportPath => return vec![Effect::StartIngest(vec![input])],
                        PromptPurpose::SplitName(id) => {
                            return vec![Effect::SplitContact(id, input)];
                        }
                    }
                }
            }
        }
        Action::BuildDataset | Action::StartTraining | Action::ResumeTraining => {
            if state
                .jobs
                .values()
                .any(|j| j.kind == "train" || j.kind == "dataset")
            {
                state.notify(Level::Info, "training is already busy; esc cancels it");
            } else {
                state.focus = Pane::Training;
                return vec![match action {
                    Action::BuildDataset => Effect::BuildDataset,
                    a => Effect::StartTraining {
                        resume: a == Action::ResumeTraining,
                    },
                }];
            }
        }
        Action::TrainingOverview(o) => state.training = Some(*o),
        Action::IngestOverview(o) => state.ingest = Some(*o),
        Action::Resize { width, height } => state.size = (width, height),
        Action::Overview(report) => state.overview = Some(*report),
        Action::Notify(n) => state.notify(n.level, n.text),
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
            JobBody::Done { summary } => {
                state.jobs.remove(&ev.id);
                if ev.job == "ingest" {
                    state.last_ingest = Some(summary);
                }
                state.notify(Level::Info, format!("{} finished", ev.job));
                return vec![Effect::RefreshOverview];
            }
            JobBody::Failed { error } => {
                state.jobs.remove(&ev.id);
                state.notify(Level::Error, format!("{} failed: {error}", ev.job));
                return vec![Effect::RefreshOverview];
            }
        },
    }
    Vec::new()
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

    #[test]
    fn cancel_with_nothing_running_says_so() {
        let mut s = state();
        assert!(update(&mut s, Action::CancelJob).is_empty());
        assert_eq!(s.notifications.back().unwrap().text, "no job is running");
    }
}
