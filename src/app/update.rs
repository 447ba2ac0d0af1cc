use super::{Action, JobView, LayoutMode, Pane, State};
use crate::jobs::{JobBody, JobId, Level};

/// What the front-end must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leave: cancel jobs, restore the terminal.
    Quit,
    /// Re-read counts, models and folders, then send `Action::Overview`.
    RefreshOverview,
    CancelJob(JobId),
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
        Action::Resize { width, height } => state.size = (width, height),
        Action::Overview(report) => state.overview = Some(*report),
        Action::Notify(n) => state.notify(n.level, n.text),
        Action::Job(ev) => match ev.body {
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
                    },
                );
            }
            JobBody::Progress {
                done,
                total,
                unit,
                rate,
            } => {
                if let Some(j) = state.jobs.get_mut(&ev.id) {
                    (j.done, j.total, j.unit, j.rate) = (done, total, unit, rate);
                }
            }
            JobBody::Log { level, message } => {
                if level != Level::Info {
                    state.notify(level, format!("{}: {message}", ev.job));
                }
            }
            // Streamed text belongs to the pane that asked for it (chat).
            JobBody::Token { .. } => {}
            JobBody::Done { .. } => {
                state.jobs.remove(&ev.id);
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
