//! The `chat` job: turns with the twin, streamed as `token` events. One message,
//! or one user turn per input line (one session, so each turn reuses the KV cache
//! of the turns before it); the TUI runs one turn per job through [`turn`] on an
//! engine it keeps.
//!
//! Each turn: the persona is the system prompt (the same every turn), the
//! memories retrieval finds (plugs in at [`Retriever`]) go into the turn's own
//! user message, after the history, so a follow-up only evaluates its new
//! tokens even when it recalls other memories; the engine streams the reply, an empty reply is retried once
//! and then explained, `[m:ID]` citations are read out of the reply, and the
//! turn is saved in its session.

use std::fmt;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use super::engine::{
    Engine, EngineConfig, EngineError, Finish, GenEvent, GenStats, GenerateRequest, Generation,
    ModelInfo, Reply, Sampling,
};
use super::openai::RemoteConfig;
use super::persona::{self, ContactMode, Persona, PromptParts, RetrievedMemory};
use super::prompt::Message;
use super::sessions::{self, ChatSession, StoredTurn};
use crate::jobs::{Cancelled, JobCtx, Level, Summary};
use crate::store::Store;

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
    /// Memory ids the reply cites (only ids that were retrieved).
    pub citations: Vec<String>,
}

/// The `done` summary: the last reply, its citations and stats, and every turn.
#[derive(Debug, Clone, Serialize)]
pub struct ChatSummary {
    pub reply: String,
    pub citations: Vec<String>,
    pub finish: Finish,
    pub stats: GenStats,
    pub model: Option<ModelInfo>,
    /// The stored session the turns went into (`None` when the store was busy).
    pub session: Option<u64>,
    /// The `chat` memory the closed session became (`None` until memory is
    /// built: `twin index` remembers it then).
    pub memory: Option<String>,
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

/// Finds the memories relevant to a question, best first. Memory plugs in here;
/// until it lands, [`NoMemories`] finds none (and the twin says it does not know).
pub trait Retriever: Send + Sync {
    fn retrieve(&self, question: &str, history: &[Message])
    -> anyhow::Result<Vec<RetrievedMemory>>;
}

pub struct NoMemories;

impl Retriever for NoMemories {
    fn retrieve(&self, _: &str, _: &[Message]) -> anyhow::Result<Vec<RetrievedMemory>> {
        Ok(Vec::new())
    }
}

/// Where replies are generated.
pub enum Backend {
    /// llama.cpp in this process.
    Local(Engine),
    /// An OpenAI-compatible server (`chat.engine = "openai"`).
    Remote(RemoteConfig),
}

/// An engine kept across turns, with the adapter it currently applies.
pub struct ChatEngine {
    pub backend: Backend,
    pub config: EngineConfig,
    adapter: Mutex<Option<PathBuf>>,
}

impl ChatEngine {
    /// The in-process engine.
    pub fn start(config: EngineConfig) -> ChatEngine {
        ChatEngine {
            adapter: Mutex::new(config.adapter.clone()),
            backend: Backend::Local(Engine::start(config.clone())),
            config,
        }
    }

    /// From `[chat]`: in process, or on the server `chat.base_url` names.
    pub fn from_config(chat: &crate::config::ChatConfig, config: EngineConfig) -> ChatEngine {
        if chat.engine == "openai" {
            let remote = RemoteConfig {
                base_url: chat.base_url.clone(),
                api_key: chat.api_key.clone(),
                model: chat.remote_model.clone(),
                max_tokens: config.max_tokens,
                sampling: config.sampling.clone(),
            };
            ChatEngine {
                adapter: Mutex::new(None),
                backend: Backend::Remote(remote),
                config,
            }
        } else {
            ChatEngine::start(config)
        }
    }

    pub fn generate(&self, request: GenerateRequest) -> Generation {
        match &self.backend {
            Backend::Local(e) => e.generate(request),
            Backend::Remote(r) => r.generate(request),
        }
    }

    /// The model's name for people (and `/v1/models`).
    pub fn model_name(&self) -> String {
        match &self.backend {
            Backend::Remote(r) if !r.model.is_empty() => r.model.clone(),
            _ => self
                .config
                .model
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "twin".into()),
        }
    }

    /// Apply `adapter` (`None`: the base model) when it is not the one in use.
    pub fn use_adapter(&self, adapter: Option<PathBuf>) -> Result<(), EngineError> {
        let mut current = self.adapter.lock().expect("adapter lock");
        if *current != adapter {
            match &self.backend {
                Backend::Local(e) => e.set_adapter(adapter.clone())?,
                Backend::Remote(r) => {
                    return Err(EngineError::Load {
                        path: r.base_url.clone().into(),
                        why: "adapters are applied by the server when chat.engine is \"openai\"; choose the server's model with chat.remote_model".into(),
                    });
                }
            }
            *current = adapter;
        }
        Ok(())
    }
}

/// What one turn is asked.
#[derive(Debug, Clone, Default)]
pub struct TurnRequest {
    pub question: String,
    /// The earlier turns, as messages.
    pub history: Vec<Message>,
    /// The session to add the turn to (`None`: a new one).
    pub session: Option<u64>,
    /// "Talk as I talk to NAME".
    pub contact: Option<String>,
    /// The LoRA adapter for this chat (`None`: the base model).
    pub adapter: Option<PathBuf>,
    /// The twin's opening message (text, context), stored first when this
    /// turn starts a new session (a reply to a check-in).
    pub opening: Option<(String, String)>,
}

/// What one turn did: the job summary of a TUI turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnSummary {
    pub reply: String,
    pub citations: Vec<String>,
    pub finish: Finish,
    pub stats: GenStats,
    pub session: Option<u64>,
    pub model: Option<ModelInfo>,
    pub notes: Vec<String>,
    /// The memory block the question was asked with: the next turn's history
    /// repeats it, so the prompt grows only by the new turn.
    pub context: String,
}

impl fmt::Display for TurnSummary {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl Summary for TurnSummary {}

/// What to do after a reply came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReply {
    Accept,
    /// Empty the first time: ask again, a little warmer.
    Retry,
    /// Empty twice: explain.
    GiveUp,
}

/// Pure: an empty reply (nothing but whitespace, not cancelled) is retried once.
pub fn after_reply(text: &str, finish: Finish, attempt: u32) -> AfterReply {
    if finish == Finish::Cancelled || !text.trim().is_empty() {
        AfterReply::Accept
    } else if attempt == 0 {
        AfterReply::Retry
    } else {
        AfterReply::GiveUp
    }
}

/// Why a reply stayed empty, and what to do.
pub const EMPTY_TWICE: &str = "the model ended its reply without writing anything, twice; rephrase the message, raise chat.temperature, or check that chat.template suits the model (`twin models` shows its template)";

/// The sampling of a retry: a fresh seed, and warm enough to leave the rut.
fn retry_sampling(base: &Sampling) -> Sampling {
    Sampling {
        temperature: base.temperature.max(0.7),
        seed: Some(base.seed.map_or(7, |s| s.wrapping_add(1))),
        ..base.clone()
    }
}

/// The memory budget in characters: an eighth of the context at ~4 characters a token.
fn memory_chars(config: &EngineConfig) -> usize {
    (config.n_ctx as usize / 8) * 4
}

/// Stream one generation's events into the job; `model` learns what was loaded.
fn stream(
    ctx: &JobCtx,
    engine: &ChatEngine,
    request: GenerateRequest,
    model: &mut Option<ModelInfo>,
) -> anyhow::Result<Reply> {
    let mut generation = engine.generate(request);
    loop {
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
                *model = Some(info);
            }
            Some(GenEvent::Token(text)) => ctx.token(text),
            Some(GenEvent::Done(reply)) => return Ok(reply),
            Some(GenEvent::Failed(e)) => return Err(e.into()),
            None => return Err(EngineError::Stopped.into()),
        }
    }
}

/// The parts of a turn that do not depend on the engine.
struct Context<'a> {
    base_system: &'a str,
    persona: &'a Persona,
    contact: Option<&'a ContactMode>,
    retriever: &'a dyn Retriever,
}

/// What one turn produced.
struct Answered {
    reply: Reply,
    citations: Vec<String>,
    /// The memory block the question was asked with (part of its user message).
    context: String,
}

/// One turn: retrieve, prompt, generate (retrying an empty reply once), cite.
fn one_turn(
    ctx: &JobCtx,
    engine: &ChatEngine,
    c: &Context<'_>,
    question: &str,
    history: &[Message],
    model: &mut Option<ModelInfo>,
) -> anyhow::Result<Answered> {
    ctx.check_cancelled()?;
    let memories = c.retriever.retrieve(question, history)?;
    ctx.progress(
        memories.len() as u64,
        Some(memories.len() as u64),
        "memories recalled",
    );
    // The persona never changes within a chat; what this turn recalled goes
    // after the history, into its own user message.
    let system = persona::persona_prompt(&PromptParts {
        base: c.base_system,
        me: c.persona.me.as_deref(),
        style: c.persona.style.as_ref(),
        biography: None,
        contact: c.contact,
        ..PromptParts::default()
    });
    let context = persona::memory_block(&memories, memory_chars(&engine.config));
    let mut messages = Vec::with_capacity(history.len() + 2);
    if !system.is_empty() {
        messages.push(Message::system(system));
    }
    messages.extend_from_slice(history);
    messages.push(Message::user(persona::user_turn(&context, question)));
    let mut attempt = 0;
    let reply = loop {
        let mut request = GenerateRequest::new(messages.clone());
        request.cancel = Some(ctx.cancel_token());
        if attempt > 0 {
            request.sampling = Some(retry_sampling(&engine.config.sampling));
        }
        let reply = stream(ctx, engine, request, model)?;
        match after_reply(&reply.text, reply.finish, attempt) {
            AfterReply::Accept => break reply,
            AfterReply::Retry => {
                ctx.log(
                    Level::Warn,
                    "the model wrote an empty reply; asking once more",
                );
                attempt += 1;
            }
            AfterReply::GiveUp => anyhow::bail!(EMPTY_TWICE),
        }
    };
    if reply.finish == Finish::Cancelled {
        return Err(Cancelled.into());
    }
    let (citations, made_up) =
        persona::check_citations(persona::parse_citations(&reply.text), &memories);
    if !made_up.is_empty() {
        ctx.log(
            Level::Warn,
            format!(
                "the reply cites memories it was not given ({}); they are left out of citations",
                made_up
                    .iter()
                    .map(|m| format!("m:{m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let s = &reply.stats;
    ctx.log(
        Level::Info,
        format!(
            "reply: {} tokens at {:.1} tok/s, first after {} ms; prompt {} tokens ({} reused, {} evaluated at {:.1} tok/s)",
            s.generated_tokens,
            s.tokens_per_s,
            s.ttft_ms,
            s.prompt_tokens,
            s.reused_tokens,
            s.evaluated_tokens,
            s.prompt_tokens_per_s
        ),
    );
    for note in &reply.notes {
        ctx.log(Level::Warn, note.clone());
    }
    Ok(Answered {
        reply,
        citations,
        context,
    })
}

fn file_name(p: &std::path::Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Load (or start) a session and add a turn to it.
fn save_turn(
    store: &Store,
    session: &mut Option<ChatSession>,
    id: Option<u64>,
    turn: StoredTurn,
    contact: Option<&str>,
    adapter: Option<&PathBuf>,
    model: &std::path::Path,
) -> anyhow::Result<u64> {
    let now = sessions::now_ms();
    if session.is_none() {
        *session = match id {
            Some(id) => ChatSession::load(store, id)?,
            None => None,
        };
    }
    let s = match session {
        Some(s) => s,
        None => session.insert(ChatSession::new(sessions::next_id(store, now)?, now)),
    };
    s.contact = contact.map(str::to_string);
    s.adapter = adapter.map(|a| a.display().to_string());
    s.model = file_name(model);
    s.updated_ms = now;
    s.turns.push(turn);
    s.save(store)?;
    Ok(s.id)
}

/// Load the persona and the contact mode; a named contact that does not exist is an error.
fn persona_of(
    store: Option<&Store>,
    contact: Option<&str>,
) -> anyhow::Result<(Persona, Option<ContactMode>)> {
    let Some(store) = store else {
        return Ok((
            Persona {
                me: None,
                style: None,
            },
            None,
        ));
    };
    let persona = Persona::load(store)?;
    let mode = match contact {
        Some(name) => Some(persona::contact_mode(store, name)?.ok_or_else(|| {
            anyhow::anyhow!("no contact named `{name}`; `twin contacts` lists them")
        })?),
        None => None,
    };
    Ok((persona, mode))
}

/// The twin's system prompt with no memories (what `serve` puts first when a
/// client sends no system prompt of its own).
pub fn system_for(store: &Store, base: &str) -> String {
    let persona = Persona::load(store).unwrap_or(Persona {
        me: None,
        style: None,
    });
    persona::system_prompt(&PromptParts {
        base,
        me: persona.me.as_deref(),
        style: persona.style.as_ref(),
        ..PromptParts::default()
    })
}

/// One TUI turn on an engine the TUI keeps.
pub fn turn(
    ctx: &JobCtx,
    engine: &ChatEngine,
    store: &Store,
    base_system: &str,
    retriever: &dyn Retriever,
    request: TurnRequest,
) -> anyhow::Result<TurnSummary> {
    let (persona, mode) = persona_of(Some(store), request.contact.as_deref())?;
    engine.use_adapter(request.adapter.clone())?;
    let at_ms = sessions::now_ms();
    let mut model = None;
    let c = Context {
        base_system,
        persona: &persona,
        contact: mode.as_ref(),
        retriever,
    };
    let Answered {
        reply,
        citations,
        context,
    } = one_turn(
        ctx,
        engine,
        &c,
        &request.question,
        &request.history,
        &mut model,
    )?;
    let mut stored = StoredTurn::new(
        &request.question,
        &reply.text,
        at_ms,
        reply.finish,
        &reply.stats,
    );
    stored.citations = citations.clone();
    stored.context = context.clone();
    let mut session = None;
    if let (None, Some((text, opened_with))) = (request.session, &request.opening) {
        // The check-in this conversation began with is its first turn.
        let now = sessions::now_ms();
        let mut s = ChatSession::new(sessions::next_id(store, now)?, now);
        let mut first = StoredTurn::new("", text, at_ms, Finish::Stop, &GenStats::default());
        first.context = opened_with.clone();
        s.turns.push(first);
        session = Some(s);
    }
    let session = save_turn(
        store,
        &mut session,
        request.session,
        stored,
        request.contact.as_deref(),
        request.adapter.as_ref(),
        &engine.config.model,
    )?;
    Ok(TurnSummary {
        reply: reply.text,
        citations,
        finish: reply.finish,
        stats: reply.stats,
        session: Some(session),
        model,
        notes: reply.notes,
        context,
    })
}

/// What `twin chat` is given besides its input.
pub struct Options {
    pub engine: ChatEngine,
    pub system_prompt: String,
    /// The store folder: persona, contact mode and the saved session.
    pub store_dir: Option<PathBuf>,
    pub contact: Option<String>,
    /// Config and models folder to open memory with (retrieval and citations);
    /// `None` chats without memories.
    pub memory: Option<(crate::config::Config, PathBuf)>,
}

/// Run a conversation on a fresh engine (`twin chat`).
pub fn run(ctx: &JobCtx, opts: Options, input: Input) -> anyhow::Result<ChatSummary> {
    let store = match &opts.store_dir {
        Some(dir) => match Store::open(dir) {
            Ok(s) => Some(std::sync::Arc::new(s)),
            Err(e @ crate::store::StoreError::InUse { .. }) => {
                if opts.contact.is_some() {
                    return Err(e.into());
                }
                ctx.log(
                    Level::Warn,
                    format!("{e}; chatting without your profile, and this session is not saved"),
                );
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let (persona, mode) = persona_of(store.as_deref(), opts.contact.as_deref())?;
    let memories = match (&store, &opts.memory) {
        (Some(store), Some((config, models))) if store.count(crate::store::Tree::Memories)? > 0 => {
            let (mem, notes) = crate::memory::open_configured(store.clone(), config, models)?;
            for n in notes {
                ctx.log(Level::Warn, n);
            }
            Some(mem)
        }
        _ => None,
    };
    let mut adapter = opts.engine.config.adapter.clone();
    // Without chat.adapter, the adapter activated with `twin adapters
    // activate` (sealed on an encrypted store: decrypted into memory to load).
    if adapter.is_none()
        && let Some(store) = &store
        && let Some(a) = crate::train::registry::adapters(store)?
            .into_iter()
            .find(|a| a.active)
    {
        if a.base != opts.engine.config.model {
            ctx.log(
                Level::Warn,
                format!(
                    "adapter {} was trained on {}, not the chat model {}: chatting with the bare model",
                    a.id,
                    a.base.display(),
                    opts.engine.config.model.display()
                ),
            );
        }
        if a.stale {
            ctx.log(
                Level::Warn,
                format!(
                    "adapter {} is stale ({}); {}",
                    a.id,
                    a.stale_reason
                        .as_deref()
                        .unwrap_or("trained on data you forgot"),
                    crate::train::registry::RETRAIN_HINT
                ),
            );
        }
        if a.base == opts.engine.config.model {
            adapter = Some(a.path);
        }
    }
    let model_path = opts.engine.config.model.clone();
    let engine = opts.engine;
    if adapter != engine.config.adapter {
        engine.use_adapter(adapter.clone())?;
    }
    let c = Context {
        base_system: &opts.system_prompt,
        persona: &persona,
        contact: mode.as_ref(),
        retriever: match &memories {
            Some(m) => m,
            None => &NoMemories,
        },
    };
    let mut history: Vec<Message> = Vec::new();
    let mut turns = Vec::new();
    let mut notes = Vec::new();
    let mut model = None;
    let mut session: Option<ChatSession> = None;
    let mut say = |user: String| -> anyhow::Result<()> {
        let at_ms = sessions::now_ms();
        let Answered {
            reply,
            citations,
            context,
        } = one_turn(ctx, &engine, &c, &user, &history, &mut model)?;
        notes.extend(reply.notes.iter().cloned());
        // Exactly as the model read it, memories included: the next turn reuses the cache.
        history.push(Message::user(persona::user_turn(&context, &user)));
        history.push(Message::assistant(reply.text.clone()));
        if let Some(store) = &store {
            let mut stored = StoredTurn::new(&user, &reply.text, at_ms, reply.finish, &reply.stats);
            stored.citations = citations.clone();
            stored.context = context;
            save_turn(
                store,
                &mut session,
                None,
                stored,
                opts.contact.as_deref(),
                adapter.as_ref(),
                &model_path,
            )?;
        }
        turns.push(Turn {
            user,
            reply: reply.text,
            finish: reply.finish,
            stats: reply.stats,
            citations,
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
    // The conversation is over: the session is closed and becomes a memory
    // (now when memory is open, else at the next `twin index`).
    let mut memory = None;
    if let (Some(store), Some(s)) = (&store, &session) {
        match crate::memory::chats::close_and_remember(store, memories.as_ref(), s.id) {
            Ok(id) => memory = id.map(|id| format!("{id:016x}")),
            Err(e) => ctx.log(
                Level::Warn,
                format!("the session was saved, but not yet remembered: {e}"),
            ),
        }
    }
    Ok(ChatSummary {
        reply: last.reply,
        citations: last.citations,
        finish: last.finish,
        stats: last.stats,
        model,
        session: session.map(|s| s.id),
        memory,
        turns,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_reply_is_retried_once_then_explained() {
        assert_eq!(after_reply("hi", Finish::Stop, 0), AfterReply::Accept);
        assert_eq!(after_reply(" \n", Finish::Stop, 0), AfterReply::Retry);
        assert_eq!(after_reply("", Finish::Length, 0), AfterReply::Retry);
        assert_eq!(after_reply("", Finish::Stop, 1), AfterReply::GiveUp);
        assert_eq!(after_reply("", Finish::Cancelled, 0), AfterReply::Accept);
        assert_eq!(after_reply("ok", Finish::Stop, 1), AfterReply::Accept);
        let r = retry_sampling(&Sampling {
            temperature: 0.0,
            seed: Some(3),
            ..Sampling::default()
        });
        assert_eq!((r.temperature, r.seed), (0.7, Some(4)));
    }
}
