//! The `chat` job: one conversation with the model, streamed as `token` events.
//! One message, or one user turn per input line (one session, so each turn
//! reuses the KV cache of the turns before it).

use std::fmt;
use std::io::BufRead;

use serde::Serialize;

use super::engine::{Engine, EngineConfig, Finish, GenEvent, GenStats, GenerateRequest, ModelInfo};
use super::prompt::Message;
use crate::jobs::{Cancelled, JobCtx, Level, Summary};

/// Where the user's turns come from.
pub enum Input {
    One(String),
    /// One turn per non-empty line.
    Lines(Box<dyn BufRead + Send>),
}

#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub user: String,
    pub reply: String,
    pub finish: Finish,
    pub stats: GenStats,
}

/// The `done` summary: the last reply and its stats, and every turn.
#[derive(Debug, Clone, Serialize)]
pub struct ChatSummary {
    pub reply: String,
    pub finish: Finish,
    pub stats: GenStats,
    pub model: Option<ModelInfo>,
    pub turns: Vec<Turn>,
    pub notes: Vec<String>,
}

impl fmt::Display for ChatSummary {
    /// The reply was streamed already; people get nothing more on stdout.
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl Summary for ChatSummary {}

/// Run a conversation on a fresh engine.
pub fn run(
    ctx: &JobCtx,
    config: EngineConfig,
    system_prompt: &str,
    input: Input,
) -> anyhow::Result<ChatSummary> {
    let engine = Engine::start(config);
    let mut history: Vec<Message> = Vec::new();
    if !system_prompt.trim().is_empty() {
        history.push(Message::system(system_prompt));
    }
    let mut turns = Vec::new();
    let mut notes = Vec::new();
    let mut model = None;
    let mut say = |user: String| -> anyhow::Result<()> {
        ctx.check_cancelled()?;
        history.push(Message::user(user.clone()));
        let mut request = GenerateRequest::new(history.clone());
        request.cancel = Some(ctx.cancel_token());
        let mut generation = engine.generate(request);
        let reply = loop {
            match generation.next_blocking() {
                Some(GenEvent::Loading(p)) => ctx.progress(
                    (p * 100.0).round() as u64,
                    Some(100),
                    "% of the model loaded",
                ),
                Some(GenEvent::Loaded(info)) => {
                    ctx.log(
                        Level::Info,
                        format!(
                            "{} loaded in {} ms: {} parameters, {}, context {} tokens, {} template, {} threads",
                            info.name,
                            info.load_ms,
                            super::gguf::human_params(info.parameters),
                            info.quantization.as_deref().unwrap_or("?"),
                            info.n_ctx,
                            info.template,
                            info.threads
                        ),
                    );
                    model = Some(info);
                }
                Some(GenEvent::Token(text)) => ctx.token(text),
                Some(GenEvent::Done(reply)) => break reply,
                Some(GenEvent::Failed(e)) => return Err(e.into()),
                None => return Err(super::engine::EngineError::Stopped.into()),
            }
        };
        if reply.finish == Finish::Cancelled {
            return Err(Cancelled.into());
        }
        for note in &reply.notes {
            ctx.log(Level::Warn, note.clone());
            notes.push(note.clone());
        }
        let s = &reply.stats;
        ctx.log(
            Level::Info,
            format!(
                "reply {}: {} tokens at {:.1} tok/s, first after {} ms; prompt {} tokens ({} reused, {} evaluated at {:.1} tok/s)",
                turns.len() + 1,
                s.generated_tokens,
                s.tokens_per_s,
                s.ttft_ms,
                s.prompt_tokens,
                s.reused_tokens,
                s.evaluated_tokens,
                s.prompt_tokens_per_s
            ),
        );
        history.push(Message::assistant(reply.text.clone()));
        turns.push(Turn {
            user,
            reply: reply.text,
            finish: reply.finish,
            stats: reply.stats,
        });
        Ok(())
    };
    match input {
        Input::One(message) => say(message)?,
        Input::Lines(lines) => {
            for line in lines.lines() {
                let line = line?;
                let line = line.trim();
                if !line.is_empty() {
                    say(line.to_string())?;
                }
            }
        }
    }
    let last = turns.last().cloned().ok_or_else(|| {
        anyhow::anyhow!("no message to send: give one as an argument, or one per line on stdin")
    })?;
    Ok(ChatSummary {
        reply: last.reply,
        finish: last.finish,
        stats: last.stats,
        model,
        turns,
        notes,
    })
}
