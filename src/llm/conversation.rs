//! One chat as a pure state machine: `handle(ChatEvent) -> Vec<ChatEffect>`, no
//! I/O, so the whole flow (send, retrieve, stream, cancel, fail, send again) is
//! tested without a model. The TUI folds job events into it; performing its
//! effects (start a turn job, cancel it) is the front-end's business.
//!
//! ```text
//!  Idle --Send--> Retrieving --Retrieved/Token--> Streaming --Done--> Idle
//!                     |  \_______Cancel/Failed("cancelled")____> Cancelled
//!                     \__________Failed(error)_________________> Error
//! ```
//! Cancelled and Error accept a new Send like Idle does.

use serde::Serialize;

use super::prompt::Message;

/// Where the conversation is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "phase", content = "detail")]
pub enum Phase {
    Idle,
    /// The turn's job runs: finding memories, loading the model, reading the prompt.
    Retrieving,
    /// Tokens are arriving.
    Streaming,
    Cancelled,
    Error(String),
}

impl Phase {
    pub fn busy(&self) -> bool {
        matches!(self, Phase::Retrieving | Phase::Streaming)
    }
}

/// One exchange as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShownTurn {
    pub user: String,
    pub reply: String,
    pub citations: Vec<String>,
    /// When the question was sent, ms since the epoch.
    pub at_ms: i64,
    /// stop, length, context_full, cancelled, error; `None` while in flight.
    pub finish: Option<String>,
    pub ttft_ms: Option<u64>,
    pub tokens_per_s: Option<f64>,
    /// What the model read with this turn besides `user`: the memories
    /// recalled for it (or, for a check-in's opening, the messages it cites).
    /// Kept so later prompts repeat the turn exactly as it was read.
    pub context: Option<String>,
}

impl ShownTurn {
    /// A turn the twin began: no question, only its message (a check-in).
    pub fn opening(&self) -> bool {
        self.user.is_empty()
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// The person sent a message.
    Send {
        text: String,
        at_ms: i64,
    },
    /// The turn's job started with this id.
    Started {
        job: u64,
    },
    /// Retrieval finished (the prompt is being read now).
    Retrieved {
        memories: usize,
    },
    Token(String),
    Done(TurnOutcome),
    Failed(String),
    /// The person asked to stop the reply.
    Cancel,
}

/// A finished turn, as the job's summary reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnOutcome {
    pub reply: String,
    pub citations: Vec<String>,
    pub finish: String,
    pub ttft_ms: u64,
    pub tokens_per_s: f64,
    /// The stored session the turn went into.
    pub session: Option<u64>,
    /// The context block the question was asked with.
    pub context: Option<String>,
}

/// What the front-end must do.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEffect {
    /// Run one turn: `history` is the earlier turns as messages.
    Generate {
        question: String,
        history: Vec<Message>,
        session: Option<u64>,
        /// The twin's opening message (text, context) to store first in the
        /// new session, when the conversation began with a check-in.
        opening: Option<(String, String)>,
    },
    /// Stop the turn's job.
    CancelJob(u64),
    /// Tell the person something (a refused send, say).
    Notice(String),
}

/// The conversation on screen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    /// The stored session, once the first turn is saved (or one was opened).
    pub session: Option<u64>,
    pub turns: Vec<ShownTurn>,
    pub phase: Phase,
    /// The running turn's job.
    pub job: Option<u64>,
    /// Cancel as soon as the job's id is known.
    cancel_asked: bool,
}

impl Default for Conversation {
    fn default() -> Conversation {
        Conversation {
            session: None,
            turns: Vec::new(),
            phase: Phase::Idle,
            job: None,
            cancel_asked: false,
        }
    }
}

impl Conversation {
    /// A stored session's turns, ready for the next message.
    pub fn resumed(session: u64, turns: Vec<ShownTurn>) -> Conversation {
        Conversation {
            session: Some(session),
            turns,
            ..Conversation::default()
        }
    }

    /// A conversation the twin begins (a check-in opened in the chat):
    /// `context` is what its message rests on (the messages it cites), read by
    /// the model as a system message before it.
    pub fn opened(text: &str, context: &str, at_ms: i64) -> Conversation {
        Conversation {
            turns: vec![ShownTurn {
                user: String::new(),
                reply: text.to_string(),
                citations: Vec::new(),
                at_ms,
                finish: Some("stop".into()),
                ttft_ms: None,
                tokens_per_s: None,
                context: Some(context.to_string()).filter(|c| !c.trim().is_empty()),
            }],
            ..Conversation::default()
        }
    }

    /// The finished turns as messages, for the next prompt: each user turn
    /// with the context it was asked with, the twin's own opening as its turn.
    pub fn history(&self) -> Vec<Message> {
        let mut out = Vec::new();
        for t in &self.turns {
            if matches!(t.finish.as_deref(), Some("cancelled" | "error") | None) {
                continue;
            }
            let context = t.context.as_deref().unwrap_or("");
            if t.opening() {
                if !context.trim().is_empty() {
                    out.push(Message::system(context));
                }
            } else {
                out.push(Message::user(super::persona::user_turn(context, &t.user)));
            }
            out.push(Message::assistant(t.reply.clone()));
        }
        out
    }

    /// The stats of the newest finished reply.
    pub fn last_stats(&self) -> Option<(u64, f64)> {
        self.turns
            .iter()
            .rev()
            .find_map(|t| Some((t.ttft_ms?, t.tokens_per_s?)))
    }

    pub fn handle(&mut self, event: ChatEvent) -> Vec<ChatEffect> {
        match event {
            ChatEvent::Send { text, at_ms } => {
                let text = text.trim().to_string();
                if text.is_empty() {
                    return vec![ChatEffect::Notice("type a message first".into())];
                }
                if self.phase.busy() {
                    return vec![ChatEffect::Notice(
                        "the twin is still answering: wait, or press esc to stop it".into(),
                    )];
                }
                let history = self.history();
                let opening = match self.turns.first() {
                    Some(t) if self.session.is_none() && t.opening() => {
                        Some((t.reply.clone(), t.context.clone().unwrap_or_default()))
                    }
                    _ => None,
                };
                self.turns.push(ShownTurn {
                    user: text.clone(),
                    reply: String::new(),
                    citations: Vec::new(),
                    at_ms,
                    finish: None,
                    ttft_ms: None,
                    tokens_per_s: None,
                    context: None,
                });
                self.phase = Phase::Retrieving;
                self.job = None;
                self.cancel_asked = false;
                vec![ChatEffect::Generate {
                    question: text,
                    history,
                    session: self.session,
                    opening,
                }]
            }
            ChatEvent::Started { job } => {
                if !self.phase.busy() || self.job.is_some() {
                    return Vec::new();
                }
                self.job = Some(job);
                if self.cancel_asked {
                    return vec![ChatEffect::CancelJob(job)];
                }
                Vec::new()
            }
            ChatEvent::Retrieved { .. } => {
                if self.phase == Phase::Retrieving {
                    self.phase = Phase::Streaming;
                }
                Vec::new()
            }
            ChatEvent::Token(text) => {
                if !self.phase.busy() {
                    return Vec::new();
                }
                self.phase = Phase::Streaming;
                if let Some(t) = self.turns.last_mut() {
                    t.reply.push_str(&text);
                }
                Vec::new()
            }
            ChatEvent::Done(outcome) => {
                if !self.phase.busy() {
                    return Vec::new();
                }
                if let Some(t) = self.turns.last_mut() {
                    // The summary's reply is the whole truth (tokens may have been dropped).
                    t.reply = outcome.reply;
                    t.citations = outcome.citations;
                    t.finish = Some(outcome.finish);
                    t.ttft_ms = Some(outcome.ttft_ms);
                    t.tokens_per_s = Some(outcome.tokens_per_s);
                    t.context = outcome.context;
                }
                if outcome.session.is_some() {
                    self.session = outcome.session;
                }
                self.phase = Phase::Idle;
                self.job = None;
                Vec::new()
            }
            ChatEvent::Failed(error) => {
                if !self.phase.busy() {
                    return Vec::new();
                }
                let cancelled = error == "cancelled";
                if let Some(t) = self.turns.last_mut() {
                    t.finish = Some(if cancelled { "cancelled" } else { "error" }.into());
                }
                self.phase = if cancelled {
                    Phase::Cancelled
                } else {
                    Phase::Error(error)
                };
                self.job = None;
                Vec::new()
            }
            ChatEvent::Cancel => {
                if !self.phase.busy() {
                    return vec![ChatEffect::Notice("no reply is being written".into())];
                }
                match self.job {
                    Some(job) => vec![ChatEffect::CancelJob(job)],
                    None => {
                        self.cancel_asked = true;
                        Vec::new()
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(c: &mut Conversation, text: &str) -> Vec<ChatEffect> {
        c.handle(ChatEvent::Send {
            text: text.into(),
            at_ms: 5,
        })
    }

    fn done(reply: &str) -> ChatEvent {
        ChatEvent::Done(TurnOutcome {
            reply: reply.into(),
            citations: vec!["42".into()],
            finish: "stop".into(),
            ttft_ms: 90,
            tokens_per_s: 120.0,
            session: Some(7),
            context: Some("Your memories:\n[m:42] tea".into()),
        })
    }

    #[test]
    fn a_turn_goes_idle_retrieving_streaming_idle() {
        let mut c = Conversation::default();
        assert_eq!(c.phase, Phase::Idle);
        let fx = send(&mut c, "  hello  ");
        assert_eq!(
            fx,
            vec![ChatEffect::Generate {
                question: "hello".into(),
                history: vec![],
                session: None,
                opening: None,
            }]
        );
        assert_eq!(c.phase, Phase::Retrieving);
        assert!(c.handle(ChatEvent::Started { job: 3 }).is_empty());
        c.handle(ChatEvent::Retrieved { memories: 0 });
        assert_eq!(c.phase, Phase::Streaming);
        c.handle(ChatEvent::Token("Hi".into()));
        c.handle(ChatEvent::Token(" there".into()));
        assert_eq!(c.turns[0].reply, "Hi there");
        assert_eq!(c.turns[0].finish, None);
        c.handle(done("Hi there [m:42]"));
        assert_eq!(c.phase, Phase::Idle);
        assert_eq!(c.session, Some(7));
        assert_eq!(c.turns[0].citations, vec!["42"]);
        assert_eq!(c.last_stats(), Some((90, 120.0)));

        // The next turn carries the history and the session.
        let fx = send(&mut c, "and?");
        assert_eq!(
            fx,
            vec![ChatEffect::Generate {
                question: "and?".into(),
                history: vec![
                    // Asked again exactly as the model read it: the cache is reused.
                    Message::user("Your memories:\n[m:42] tea\n\nhello"),
                    Message::assistant("Hi there [m:42]")
                ],
                session: Some(7),
                opening: None,
            }]
        );
    }

    #[test]
    fn a_reply_to_a_check_in_continues_from_the_twins_opening() {
        let mut c = Conversation::opened(
            "How did the interview go?",
            "You check in because of: [m:00ff] Jo: \"interview on Friday\"",
            1,
        );
        assert!(c.turns[0].opening());
        let fx = send(&mut c, "it went well");
        assert_eq!(
            fx,
            vec![ChatEffect::Generate {
                question: "it went well".into(),
                history: vec![
                    Message::system(
                        "You check in because of: [m:00ff] Jo: \"interview on Friday\""
                    ),
                    Message::assistant("How did the interview go?"),
                ],
                session: None,
                opening: Some((
                    "How did the interview go?".into(),
                    "You check in because of: [m:00ff] Jo: \"interview on Friday\"".into()
                )),
            }]
        );
        c.handle(ChatEvent::Started { job: 1 });
        c.handle(done("great!"));
        // Once saved, the session holds the opening: it is not sent again.
        match &send(&mut c, "thanks")[..] {
            [
                ChatEffect::Generate {
                    history, opening, ..
                },
            ] => {
                assert_eq!(history.len(), 4);
                assert_eq!(history[1], Message::assistant("How did the interview go?"));
                assert_eq!(*opening, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_move_retrieving_to_streaming_directly() {
        let mut c = Conversation::default();
        send(&mut c, "q");
        c.handle(ChatEvent::Token("a".into()));
        assert_eq!(c.phase, Phase::Streaming);
    }

    #[test]
    fn sending_while_busy_or_empty_is_refused() {
        let mut c = Conversation::default();
        assert!(matches!(send(&mut c, "   ")[..], [ChatEffect::Notice(_)]));
        assert!(c.turns.is_empty());
        send(&mut c, "one");
        assert!(matches!(send(&mut c, "two")[..], [ChatEffect::Notice(_)]));
        assert_eq!(c.turns.len(), 1);
    }

    #[test]
    fn cancel_before_and_after_the_job_is_known() {
        let mut c = Conversation::default();
        send(&mut c, "q");
        // Esc before the job's id arrived: cancelled as soon as it does.
        assert!(c.handle(ChatEvent::Cancel).is_empty());
        assert_eq!(
            c.handle(ChatEvent::Started { job: 9 }),
            vec![ChatEffect::CancelJob(9)]
        );
        c.handle(ChatEvent::Token("par".into()));
        c.handle(ChatEvent::Failed("cancelled".into()));
        assert_eq!(c.phase, Phase::Cancelled);
        assert_eq!(c.turns[0].finish.as_deref(), Some("cancelled"));
        assert_eq!(c.turns[0].reply, "par", "the partial reply stays on screen");
        // A cancelled turn is not history; a new send works.
        match &send(&mut c, "again")[..] {
            [ChatEffect::Generate { history, .. }] => assert!(history.is_empty()),
            other => panic!("{other:?}"),
        }
        c.handle(ChatEvent::Started { job: 10 });
        assert_eq!(c.handle(ChatEvent::Cancel), vec![ChatEffect::CancelJob(10)]);
        // Nothing running: cancel says so.
        c.handle(ChatEvent::Failed("cancelled".into()));
        assert!(matches!(
            c.handle(ChatEvent::Cancel)[..],
            [ChatEffect::Notice(_)]
        ));
    }

    #[test]
    fn errors_are_a_state_and_late_events_are_ignored() {
        let mut c = Conversation::default();
        send(&mut c, "q");
        c.handle(ChatEvent::Started { job: 1 });
        c.handle(ChatEvent::Failed("no chat model at /m/x.gguf".into()));
        assert_eq!(c.phase, Phase::Error("no chat model at /m/x.gguf".into()));
        assert_eq!(c.turns[0].finish.as_deref(), Some("error"));
        // Stragglers from the dead job change nothing.
        c.handle(ChatEvent::Token("late".into()));
        c.handle(done("late"));
        assert_eq!(c.turns[0].reply, "");
        assert!(c.job.is_none());
        // Error accepts a new send.
        assert!(matches!(
            send(&mut c, "retry")[..],
            [ChatEffect::Generate { .. }]
        ));
        assert_eq!(c.phase, Phase::Retrieving);
    }
}
