//! The Chat pane's state and how actions change it. The conversation itself is
//! the pure state machine in `llm::conversation`; this adds what the pane needs
//! around it: the input with its history, the selected citation, the session
//! list, the contact mode and the adapter toggle.

use std::path::PathBuf;

use super::update::Effect;
use super::{Action, Pane, Prompt, PromptPurpose, State};
use crate::jobs::{JobBody, JobEvent, Level};
use crate::llm::conversation::{ChatEffect, ChatEvent, Conversation, ShownTurn, TurnOutcome};
use crate::llm::sessions::{ChatSession, SessionInfo};
use crate::models::ModelKind;

/// The session list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionsView {
    pub list: Vec<SessionInfo>,
    pub selected: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatView {
    pub conv: Conversation,
    /// What is being typed (may hold newlines).
    pub input: String,
    /// Keys go into the input.
    pub composing: bool,
    /// Messages sent, oldest first, for recall with up/down.
    pub sent: Vec<String>,
    pub recall: Option<usize>,
    /// The selected citation, counted over every citation shown, oldest first.
    pub citation: Option<usize>,
    pub sessions: Option<SessionsView>,
    /// "Talk as I talk to NAME".
    pub contact: Option<String>,
    /// The adapter this chat uses; `None`: the base model.
    pub adapter: Option<PathBuf>,
    /// The configured chat model (`None` until the front-end says).
    pub model: Option<PathBuf>,
    /// The OpenAI-compatible server replies come from (`chat.engine = "openai"`).
    pub remote: Option<String>,
}

impl ChatView {
    /// Every citation shown, in order: (turn, memory id).
    pub fn citations(&self) -> Vec<(usize, String)> {
        self.conv
            .turns
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.citations.iter().map(move |c| (i, c.clone())))
            .collect()
    }

    pub fn selected_citation(&self) -> Option<(usize, String)> {
        self.citation
            .and_then(|i| self.citations().into_iter().nth(i))
    }
}

/// The adapters among the models found.
pub fn adapters(state: &State) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = state
        .overview
        .as_ref()
        .map(|r| {
            r.models
                .iter()
                .filter(|m| {
                    m.kind == ModelKind::Gguf
                        && m.gguf.as_ref().is_some_and(|g| g.kind == "adapter")
                })
                .map(|m| m.path.clone())
                .collect()
        })
        .unwrap_or_default();
    // The adapters twin trained (the Training pane's), for this chat model.
    if let Some(t) = &state.training {
        for a in &t.adapters {
            let for_this_model = state.chat.model.as_ref().is_none_or(|m| *m == a.base);
            if for_this_model && !all.contains(&a.path) {
                all.push(a.path.clone());
            }
        }
    }
    all
}

/// Whether the chat model is there: the configured file, or (before the
/// front-end says which) any GGUF model.
pub fn model_ready(state: &State) -> bool {
    if state.chat.remote.is_some() {
        return true;
    }
    if let Some(p) = &state.chat.model {
        return p.is_file();
    }
    state
        .overview
        .as_ref()
        .is_some_and(|r| r.models.iter().any(|m| m.is_chat_model()))
}

/// The command that fetches the default models.
pub const FETCH: &str = "bash scripts/fetch-models.sh";

fn effects(state: &mut State, fx: Vec<ChatEffect>) -> Vec<Effect> {
    let mut out = Vec::new();
    for f in fx {
        match f {
            ChatEffect::Generate {
                question,
                history,
                session,
                opening,
            } => out.push(Effect::ChatTurn {
                question,
                history,
                session,
                opening,
                contact: state.chat.contact.clone(),
                adapter: state.chat.adapter.clone(),
            }),
            ChatEffect::CancelJob(id) => out.push(Effect::CancelJob(id)),
            ChatEffect::Notice(text) => state.notify(Level::Info, text),
        }
    }
    out
}

/// Fold a `chat` job's event into the conversation.
pub fn job_event(state: &mut State, ev: &JobEvent) -> Vec<Effect> {
    let event = match &ev.body {
        JobBody::Started { .. } => ChatEvent::Started { job: ev.id },
        JobBody::Progress { unit, done, .. } if unit == "memories recalled" => {
            ChatEvent::Retrieved {
                memories: *done as usize,
            }
        }
        JobBody::Token { text } => ChatEvent::Token(text.clone()),
        JobBody::Done { summary } => ChatEvent::Done(TurnOutcome {
            reply: summary["reply"].as_str().unwrap_or_default().to_string(),
            citations: summary["citations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            finish: summary["finish"].as_str().unwrap_or("stop").to_string(),
            ttft_ms: summary["stats"]["ttft_ms"].as_u64().unwrap_or(0),
            tokens_per_s: summary["stats"]["tokens_per_s"].as_f64().unwrap_or(0.0),
            session: summary["session"].as_u64(),
            context: summary["context"].as_str().map(str::to_string),
        }),
        JobBody::Failed { error } => ChatEvent::Failed(error.clone()),
        _ => return Vec::new(),
    };
    // Only the running turn's job speaks to the conversation.
    if let Some(job) = state.chat.conv.job
        && job != ev.id
    {
        return Vec::new();
    }
    let fx = state.chat.conv.handle(event);
    effects(state, fx)
}

/// Handle a chat action; `None` when `action` is not one.
pub fn update(state: &mut State, action: &Action) -> Option<Vec<Effect>> {
    let chat = &mut state.chat;
    let fx = match action {
        Action::ChatCompose => {
            if let Some(v) = &chat.sessions {
                let id = v.list.get(v.selected).map(|s| s.id);
                chat.sessions = None;
                return Some(id.map(Effect::LoadSession).into_iter().collect());
            }
            state.focus = Pane::Chat;
            chat.composing = true;
            Vec::new()
        }
        Action::ChatInsert(c) => {
            chat.input.push(*c);
            chat.recall = None;
            Vec::new()
        }
        Action::ChatNewline => {
            chat.input.push('\n');
            Vec::new()
        }
        Action::ChatBackspace => {
            chat.input.pop();
            Vec::new()
        }
        Action::ChatHistoryPrev => {
            if !chat.sent.is_empty() {
                let i = match chat.recall {
                    Some(i) => i.saturating_sub(1),
                    None => chat.sent.len() - 1,
                };
                chat.recall = Some(i);
                chat.input = chat.sent[i].clone();
            }
            Vec::new()
        }
        Action::ChatHistoryNext => {
            match chat.recall {
                Some(i) if i + 1 < chat.sent.len() => {
                    chat.recall = Some(i + 1);
                    chat.input = chat.sent[i + 1].clone();
                }
                Some(_) => {
                    chat.recall = None;
                    chat.input.clear();
                }
                None => {}
            }
            Vec::new()
        }
        Action::ChatSend => {
            if !model_ready(state) {
                state.notify(
                    Level::Warn,
                    format!("no chat model yet: fetch one with `{FETCH}`"),
                );
                return Some(Vec::new());
            }
            let chat = &mut state.chat;
            let text = chat.input.trim().to_string();
            let fx = chat.conv.handle(ChatEvent::Send {
                text: text.clone(),
                at_ms: crate::llm::sessions::now_ms(),
            });
            if matches!(fx.first(), Some(ChatEffect::Generate { .. })) {
                if chat.sent.last() != Some(&text) {
                    chat.sent.push(text);
                }
                chat.input.clear();
                chat.recall = None;
                state.scroll[Pane::Chat.index()] = 0;
            }
            return Some(effects(state, fx));
        }
        Action::ChatCancel => {
            // A push-to-talk recording in progress is discarded first.
            if let Some((&id, _)) = state
                .jobs
                .iter()
                .find(|(_, j)| j.kind == crate::voice::PTT_JOB)
            {
                state.notify(Level::Info, "recording discarded");
                return Some(vec![Effect::CancelJob(id)]);
            }
            if chat.conv.phase.busy() {
                let fx = chat.conv.handle(ChatEvent::Cancel);
                return Some(effects(state, fx));
            }
            if chat.sessions.is_some() {
                chat.sessions = None;
            } else if chat.composing {
                chat.composing = false;
            } else {
                // Nothing of the chat's to stop: the newest job, as everywhere.
                return Some(super::update(state, Action::CancelJob));
            }
            Vec::new()
        }
        Action::ChatNextCitation | Action::ChatPrevCitation => {
            let n = chat.citations().len();
            if n == 0 {
                state.notify(
                    Level::Info,
                    "no citations yet: replies cite memories as [m:ID]",
                );
                return Some(Vec::new());
            }
            let forward = *action == Action::ChatNextCitation;
            chat.citation = Some(match chat.citation {
                None if forward => 0,
                None => n - 1,
                Some(i) if forward => (i + 1) % n,
                Some(i) => (i + n - 1) % n,
            });
            Vec::new()
        }
        Action::ChatOpenCitation => match chat.selected_citation() {
            Some((_, id)) => return Some(super::update(state, Action::OpenMemory(id))),
            None => {
                state.notify(Level::Info, "select a citation first ([ or ])");
                Vec::new()
            }
        },
        Action::ChatCopy => {
            let reply = chat
                .conv
                .turns
                .iter()
                .rev()
                .find(|t| !t.reply.is_empty())
                .map(|t: &ShownTurn| t.reply.clone());
            match reply {
                Some(r) => {
                    state.notify(Level::Info, "copied the last reply (OSC 52)");
                    vec![Effect::Copy(r)]
                }
                None => {
                    state.notify(Level::Info, "no reply to copy yet");
                    Vec::new()
                }
            }
        }
        Action::ChatSessions => {
            if chat.sessions.take().is_none() {
                return Some(vec![Effect::ListSessions]);
            }
            Vec::new()
        }
        Action::ChatSessionList(list) => {
            chat.sessions = Some(SessionsView {
                list: list.clone(),
                selected: 0,
            });
            Vec::new()
        }
        Action::ChatSessionLoaded(s) => {
            if chat.conv.phase.busy() {
                state.notify(
                    Level::Info,
                    "wait for the reply (or esc) before opening a session",
                );
                return Some(Vec::new());
            }
            let closed = chat.conv.session.filter(|id| *id != s.id);
            load_session(chat, s);
            state.checkins.opening = None;
            state.scroll[Pane::Chat.index()] = 0;
            closed.map(Effect::CloseSession).into_iter().collect()
        }
        Action::ChatNew => {
            if chat.conv.phase.busy() {
                state.notify(
                    Level::Info,
                    "wait for the reply (or esc) before starting anew",
                );
                return Some(Vec::new());
            }
            let closed = chat.conv.session.take();
            chat.conv = Conversation::default();
            chat.citation = None;
            state.checkins.opening = None;
            state.notify(Level::Info, "new conversation");
            closed.map(Effect::CloseSession).into_iter().collect()
        }
        Action::ChatToggleAdapter => {
            let all = adapters(state);
            let chat = &mut state.chat;
            if all.is_empty() {
                chat.adapter = None;
                state.notify(
                    Level::Info,
                    "no adapters yet: fine-tuning (the Training pane) makes them; chatting with the base model",
                );
                return Some(Vec::new());
            }
            chat.adapter = match &chat.adapter {
                None => Some(all[0].clone()),
                Some(a) => all
                    .iter()
                    .position(|x| x == a)
                    .and_then(|i| all.get(i + 1).cloned()),
            };
            let what = match &chat.adapter {
                Some(a) => format!(
                    "replies now come from adapter {}",
                    a.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ),
                None => "replies now come from the base model".into(),
            };
            state.notify(Level::Info, what);
            Vec::new()
        }
        Action::ChatContact => {
            let candidates = state
                .ingest
                .as_ref()
                .map(|i| {
                    i.contacts
                        .iter()
                        .filter(|c| !c.me)
                        .map(|c| c.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            state.prompt = Some(Prompt {
                purpose: PromptPurpose::ChatContact,
                input: state.chat.contact.clone().unwrap_or_default(),
                candidates,
            });
            Vec::new()
        }
        _ => return None,
    };
    Some(fx)
}

fn load_session(chat: &mut ChatView, s: &ChatSession) {
    let turns = s
        .turns
        .iter()
        .map(|t| ShownTurn {
            user: t.user.clone(),
            reply: t.reply.clone(),
            citations: t.citations.clone(),
            at_ms: t.at_ms,
            finish: Some(t.finish.clone()),
            ttft_ms: Some(t.ttft_ms),
            tokens_per_s: Some(t.tokens_per_s),
            context: Some(t.context.clone()).filter(|c| !c.is_empty()),
        })
        .collect();
    let conv = Conversation::resumed(s.id, turns);
    chat.conv = conv;
    chat.contact = s.contact.clone();
    chat.adapter = s.adapter.as_ref().map(PathBuf::from);
    chat.citation = None;
}

/// Set (or with an empty name, clear) the contact mode.
pub fn set_contact(state: &mut State, name: &str) {
    let name = name.trim();
    if name.is_empty() {
        state.chat.contact = None;
        state.notify(Level::Info, "talking as yourself to anyone");
    } else {
        state.chat.contact = Some(name.to_string());
        state.notify(Level::Info, format!("talking as you talk to {name}"));
    }
}

/// Move the session list's selection.
pub fn select_session(state: &mut State, by: i64) -> bool {
    match &mut state.chat.sessions {
        Some(v) if state.focus == Pane::Chat && !state.help => {
            let n = v.list.len() as i64;
            v.selected = (v.selected as i64 + by).clamp(0, (n - 1).max(0)) as usize;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{LayoutMode, update};
    use crate::jobs::JobEvent;

    fn ready() -> State {
        let mut s = State::new(LayoutMode::Auto);
        s.focus = Pane::Chat;
        s.chat.model = Some(PathBuf::from("/nonexistent/model.gguf"));
        s
    }

    fn job(id: u64, body: JobBody) -> Action {
        Action::Job(JobEvent {
            id,
            job: "chat".into(),
            body,
        })
    }

    fn type_text(s: &mut State, text: &str) {
        for c in text.chars() {
            update(s, Action::ChatInsert(c));
        }
    }

    #[test]
    fn no_model_means_no_send_and_the_fetch_command() {
        let mut s = ready();
        update(&mut s, Action::ChatCompose);
        type_text(&mut s, "hi");
        assert!(update(&mut s, Action::ChatSend).is_empty());
        assert!(s.notifications.back().unwrap().text.contains(FETCH));
        assert_eq!(s.chat.input, "hi", "nothing typed is lost");
    }

    #[test]
    fn send_stream_done_and_recall() {
        let mut s = ready();
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"x").unwrap();
        s.chat.model = Some(model);
        update(&mut s, Action::ChatCompose);
        assert!(s.chat.composing);
        type_text(&mut s, "line one");
        update(&mut s, Action::ChatNewline);
        type_text(&mut s, "two");
        let fx = update(&mut s, Action::ChatSend);
        match &fx[..] {
            [Effect::ChatTurn { question, .. }] => assert_eq!(question, "line one\ntwo"),
            other => panic!("{other:?}"),
        }
        assert!(s.chat.input.is_empty());
        update(
            &mut s,
            job(
                4,
                JobBody::Started {
                    title: "chatting".into(),
                },
            ),
        );
        update(
            &mut s,
            job(
                4,
                JobBody::Token {
                    text: "**Hi**".into(),
                },
            ),
        );
        assert_eq!(s.chat.conv.turns[0].reply, "**Hi**");
        // Another job's tokens are not this chat's.
        update(&mut s, job(5, JobBody::Token { text: "x".into() }));
        assert_eq!(s.chat.conv.turns[0].reply, "**Hi**");
        update(
            &mut s,
            job(
                4,
                JobBody::Done {
                    summary: serde_json::json!({"reply": "**Hi** [m:3]", "citations": ["3"], "finish": "stop", "stats": {"ttft_ms": 50, "tokens_per_s": 99.5}, "session": 11}),
                },
            ),
        );
        assert_eq!(s.chat.conv.last_stats(), Some((50, 99.5)));
        assert_eq!(s.chat.conv.session, Some(11));
        assert!(s.jobs.is_empty());
        // Citations select and open as a memory.
        update(&mut s, Action::ChatNextCitation);
        assert_eq!(s.chat.selected_citation(), Some((0, "3".into())));
        update(&mut s, Action::ChatOpenCitation);
        assert_eq!(s.focus, Pane::Memory);
        // The sent message comes back with up.
        s.focus = Pane::Chat;
        update(&mut s, Action::ChatHistoryPrev);
        assert_eq!(s.chat.input, "line one\ntwo");
        update(&mut s, Action::ChatHistoryNext);
        assert_eq!(s.chat.input, "");
        // Copy the reply.
        assert_eq!(
            update(&mut s, Action::ChatCopy),
            vec![Effect::Copy("**Hi** [m:3]".into())]
        );
    }

    #[test]
    fn esc_cancels_a_reply_then_stops_typing_then_cancels_jobs() {
        let mut s = ready();
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"x").unwrap();
        s.chat.model = Some(model);
        update(&mut s, Action::ChatCompose);
        type_text(&mut s, "q");
        update(&mut s, Action::ChatSend);
        update(
            &mut s,
            job(
                8,
                JobBody::Started {
                    title: "chatting".into(),
                },
            ),
        );
        assert_eq!(
            update(&mut s, Action::ChatCancel),
            vec![Effect::CancelJob(8)]
        );
        update(
            &mut s,
            job(
                8,
                JobBody::Failed {
                    error: "cancelled".into(),
                },
            ),
        );
        assert_eq!(
            s.chat.conv.phase,
            crate::llm::conversation::Phase::Cancelled
        );
        assert!(s.chat.composing);
        assert!(update(&mut s, Action::ChatCancel).is_empty());
        assert!(!s.chat.composing);
        update(&mut s, Action::ChatCancel);
        assert_eq!(s.notifications.back().unwrap().text, "no job is running");
    }

    #[test]
    fn trained_adapters_of_the_chat_model_are_offered() {
        let mut s = ready();
        let model = s.chat.model.clone().unwrap();
        let record = |id: &str, base: &std::path::Path| crate::train::registry::AdapterRecord {
            id: id.into(),
            path: PathBuf::from(format!("/data/adapters/{id}.gguf")),
            base: base.to_path_buf(),
            base_hash: String::new(),
            dataset_hash: String::new(),
            config: Default::default(),
            steps: 1,
            final_loss: None,
            val_loss: None,
            run: String::new(),
            parent: None,
            created_ms: 0,
            active: false,
            stale: false,
            stale_reason: None,
        };
        s.training = Some(crate::train::registry::TrainingOverview {
            adapters: vec![
                record("a1", &model),
                record("a2", std::path::Path::new("/other/base.gguf")),
            ],
            ..Default::default()
        });
        update(&mut s, Action::ChatToggleAdapter);
        assert_eq!(
            s.chat.adapter,
            Some(PathBuf::from("/data/adapters/a1.gguf"))
        );
        update(&mut s, Action::ChatToggleAdapter);
        assert_eq!(s.chat.adapter, None, "a2 is for another base model");
    }

    #[test]
    fn adapters_toggle_or_say_there_are_none() {
        let mut s = ready();
        update(&mut s, Action::ChatToggleAdapter);
        assert!(
            s.notifications
                .back()
                .unwrap()
                .text
                .contains("no adapters yet")
        );
        assert_eq!(s.chat.adapter, None);
    }

    #[test]
    fn sessions_open_from_the_list() {
        let mut s = ready();
        assert_eq!(
            update(&mut s, Action::ChatSessions),
            vec![Effect::ListSessions]
        );
        let info = |id| SessionInfo {
            id,
            title: format!("s{id}"),
            turns: 1,
            updated_ms: 0,
            contact: None,
            adapter: None,
        };
        update(&mut s, Action::ChatSessionList(vec![info(2), info(1)]));
        update(&mut s, Action::ScrollDown);
        assert_eq!(s.chat.sessions.as_ref().unwrap().selected, 1);
        assert_eq!(
            update(&mut s, Action::ChatCompose),
            vec![Effect::LoadSession(1)]
        );
        let mut session = ChatSession::new(1, 0);
        session.contact = Some("Alice".into());
        session.turns.push(crate::llm::sessions::StoredTurn {
            user: "u".into(),
            reply: "r".into(),
            at_ms: 0,
            finish: "stop".into(),
            citations: vec![],
            ttft_ms: 1,
            tokens_per_s: 2.0,
            context: String::new(),
        });
        update(&mut s, Action::ChatSessionLoaded(Box::new(session)));
        assert_eq!(s.chat.conv.session, Some(1));
        assert_eq!(s.chat.conv.history().len(), 2);
        assert_eq!(s.chat.contact.as_deref(), Some("Alice"));
    }
}
