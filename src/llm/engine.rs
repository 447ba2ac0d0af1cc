//! The llama.cpp engine: one owner thread holds the backend, the model (loaded
//! lazily, once, on the first request) and one context. Requests arrive on a
//! command channel (generate / cancel / set adapter / shutdown); each generation
//! streams its events back on its own channel as tokens are produced.
//!
//! The context keeps the tokens it has evaluated, so a follow-up whose prompt
//! starts like the last one (a chat's next turn) only decodes what is new.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::gguf::{Gguf, GgufError};
use super::prompt::{self, Message, Template, Utf8Stream};
use crate::config::ChatConfig;

/// How tokens are picked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sampling {
    /// 0 picks the likeliest token every time.
    pub temperature: f32,
    /// Nucleus: keep the likeliest tokens (of those min-p kept) adding up to this; 1 is off.
    pub top_p: f32,
    /// Keep tokens at least this fraction as likely as the likeliest (applied
    /// before top-p); 0 is off.
    pub min_p: f32,
    /// Over the last 64 tokens; 1 is off.
    pub repeat_penalty: f32,
    /// `None`: a new seed each engine.
    pub seed: Option<u32>,
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling {
            temperature: 0.3,
            top_p: 0.9,
            min_p: 0.05,
            repeat_penalty: 1.1,
            seed: None,
        }
    }
}

/// What the engine loads and how it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model: PathBuf,
    /// A LoRA adapter applied on load.
    pub adapter: Option<PathBuf>,
    /// `chat.template`: "auto" or a llama.cpp built-in name.
    pub template: String,
    /// Capped at the model's training context.
    pub n_ctx: u32,
    /// 0: all cores.
    pub threads: usize,
    /// -1: all (CUDA builds only).
    pub gpu_layers: i32,
    pub max_tokens: u32,
    pub sampling: Sampling,
}

impl EngineConfig {
    /// From `[chat]`; a model or adapter given by file name is looked up in `models_dir`.
    pub fn from_config(chat: &ChatConfig, models_dir: &Path) -> EngineConfig {
        let resolve = |s: &str| {
            let p = PathBuf::from(s);
            if p.is_absolute() || s.contains('/') {
                p
            } else {
                models_dir.join(p)
            }
        };
        EngineConfig {
            model: resolve(&chat.model),
            adapter: (!chat.adapter.is_empty()).then(|| resolve(&chat.adapter)),
            template: chat.template.clone(),
            n_ctx: chat.n_ctx.clamp(64, u32::MAX as i64) as u32,
            threads: chat.threads.max(0) as usize,
            gpu_layers: chat.gpu_layers.clamp(-1, i32::MAX as i64) as i32,
            max_tokens: chat.max_tokens.clamp(1, u32::MAX as i64) as u32,
            sampling: Sampling {
                temperature: chat.temperature as f32,
                top_p: chat.top_p as f32,
                min_p: chat.min_p as f32,
                repeat_penalty: chat.repeat_penalty as f32,
                seed: u32::try_from(chat.seed).ok(),
            },
        }
    }

    /// A config for `model` with every other setting at its default.
    pub fn for_model(model: &Path) -> EngineConfig {
        EngineConfig {
            model: model.to_path_buf(),
            adapter: None,
            template: "auto".into(),
            n_ctx: 4096,
            threads: 0,
            gpu_layers: -1,
            max_tokens: 512,
            sampling: Sampling::default(),
        }
    }
}

/// What can go wrong, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no chat model at {path}: fetch one with `bash scripts/fetch-models.sh`, or set chat.model to a .gguf file"
    )]
    ModelMissing { path: PathBuf },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(
        "{path} has no chat template and does not look like an instruct model: use an instruct model, or set chat.template (e.g. \"chatml\") to chat with it anyway"
    )]
    NotAChatModel { path: PathBuf },
    #[error(
        "{path} is a LoRA adapter, not a model: set chat.adapter to it and chat.model to the base model it was trained on"
    )]
    IsAdapter { path: PathBuf },
    #[error(
        "{path} is not a LoRA adapter (general.type is not \"adapter\"): set chat.adapter to an adapter file, or leave it empty"
    )]
    NotAnAdapter { path: PathBuf },
    #[error(
        "adapter {adapter} does not fit model {model}: {why}; use an adapter trained on this model, or set chat.model to its base model"
    )]
    WrongAdapter {
        adapter: PathBuf,
        model: PathBuf,
        why: String,
    },
    #[error(
        "llama.cpp could not load {path} ({why}); see the log (TWIN_LOG=debug), and re-download it if it came from fetch-models"
    )]
    Load { path: PathBuf, why: String },
    #[error("llama.cpp could not set up a {n_ctx}-token context ({why}); lower chat.n_ctx")]
    Context { n_ctx: u32, why: String },
    #[error(
        "the system prompt and the message need {need} tokens, but the context holds {n_ctx} (with {reserve} kept for the reply): shorten them, or raise chat.n_ctx"
    )]
    PromptTooLong {
        need: usize,
        n_ctx: u32,
        reserve: usize,
    },
    #[error("the chat template could not render the conversation: {0}")]
    Template(String),
    #[error("the grammar does not parse: {0}; check its GBNF (the start rule must be `root`)")]
    Grammar(String),
    #[error("llama.cpp failed while generating: {0}")]
    Decode(String),
    #[error("the engine has stopped")]
    Stopped,
}

/// Facts about the loaded model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: String,
    pub architecture: Option<String>,
    pub parameters: u64,
    pub quantization: Option<String>,
    /// The context in use (chat.n_ctx capped at the model's).
    pub n_ctx: u32,
    pub n_ctx_train: u32,
    /// The template's short name.
    pub template: String,
    pub adapter: Option<PathBuf>,
    pub threads: usize,
    pub load_ms: u64,
}

/// One generation's input. `messages`: an optional system prompt, the history,
/// then the new user message.
#[derive(Debug, Clone, Default)]
pub struct GenerateRequest {
    pub messages: Vec<Message>,
    /// Defaults to the engine's `max_tokens`.
    pub max_tokens: Option<u32>,
    /// Defaults to the engine's sampling.
    pub sampling: Option<Sampling>,
    /// A GBNF grammar (start rule `root`) the reply must match.
    pub grammar: Option<String>,
    /// Cancels the generation when cancelled (a job's token, say); checked per token.
    pub cancel: Option<CancellationToken>,
    /// Keep generating past the end of turn until `max_tokens` (benchmarks
    /// compare fixed lengths, as llama-bench does).
    pub ignore_eos: bool,
    /// Evaluate the whole prompt on an empty KV cache instead of reusing the
    /// previous request's prefix (benchmarks time a full prefill on a warm engine).
    pub fresh: bool,
}

impl GenerateRequest {
    pub fn new(messages: Vec<Message>) -> GenerateRequest {
        GenerateRequest {
            messages,
            ..GenerateRequest::default()
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The context is full.
    ContextFull,
    Cancelled,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens reused from the previous request's cache.
    pub reused_tokens: usize,
    /// Prompt tokens decoded for this request (`prompt_tokens - reused_tokens`).
    pub evaluated_tokens: usize,
    pub generated_tokens: usize,
    /// From the request to the first token.
    pub ttft_ms: u64,
    pub prompt_ms: u64,
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second after the first.
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub text: String,
    pub finish: Finish,
    pub stats: GenStats,
    /// History messages dropped to fit the context.
    pub dropped_messages: usize,
    /// Things worth telling: dropped turns, a template fallback.
    pub notes: Vec<String>,
}

/// A conversation as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub text: String,
    pub tokens: usize,
}

/// What a generation reports, in order: maybe `Loading`/`Loaded` (the first
/// request loads the model), `Token`s, then `Done` or `Failed`.
#[derive(Debug)]
pub enum GenEvent {
    /// Model load progress, 0.0 to 1.0.
    Loading(f32),
    Loaded(ModelInfo),
    /// A piece of the reply, as produced.
    Token(String),
    Done(Reply),
    Failed(EngineError),
}

enum Command {
    Generate {
        id: u64,
        request: GenerateRequest,
        events: mpsc::UnboundedSender<GenEvent>,
    },
    Load {
        reply: std_mpsc::Sender<Result<ModelInfo, EngineError>>,
    },
    Render {
        messages: Vec<Message>,
        reply: std_mpsc::Sender<Result<Rendered, EngineError>>,
    },
    SetAdapter {
        path: Option<PathBuf>,
        reply: std_mpsc::Sender<Result<(), EngineError>>,
    },
    Cancel(u64),
    Shutdown,
}

/// The handle to the engine thread; dropping it stops the thread.
pub struct Engine {
    tx: std_mpsc::Sender<Command>,
    next_id: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

/// A running generation: its events, and a way to cancel it.
pub struct Generation {
    id: u64,
    tx: std_mpsc::Sender<Command>,
    events: mpsc::UnboundedReceiver<GenEvent>,
}

/// Cancels one generation; cheap to clone and send to another thread.
#[derive(Clone)]
pub struct Canceller {
    id: u64,
    tx: std_mpsc::Sender<Command>,
}

impl Canceller {
    pub fn cancel(&self) {
        let _ = self.tx.send(Command::Cancel(self.id));
    }
}

impl Generation {
    /// A generation another producer feeds (a remote server): it watches the
    /// request's cancel token and whether anyone still listens, so
    /// [`Generation::cancel`] has nothing to do.
    pub fn from_events(events: mpsc::UnboundedReceiver<GenEvent>) -> Generation {
        let (tx, _) = std_mpsc::channel();
        Generation { id: 0, tx, events }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn cancel(&self) {
        self.canceller().cancel();
    }

    pub fn canceller(&self) -> Canceller {
        Canceller {
            id: self.id,
            tx: self.tx.clone(),
        }
    }

    /// The next event, waiting for it (not inside an async runtime).
    pub fn next_blocking(&mut self) -> Option<GenEvent> {
        self.events.blocking_recv()
    }

    /// The next event, waiting for at most `timeout` (`None` on timeout or at the end).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<GenEvent>, Timeout> {
        let until = Instant::now() + timeout;
        loop {
            match self.events.try_recv() {
                Ok(ev) => return Ok(Some(ev)),
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(None),
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() >= until => {
                    return Err(Timeout);
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    /// The next event, for async front-ends.
    pub async fn next(&mut self) -> Option<GenEvent> {
        self.events.recv().await
    }

    /// Wait for the end, passing each token to `on_token`.
    pub fn wait_with(mut self, mut on_token: impl FnMut(&str)) -> Result<Reply, EngineError> {
        while let Some(ev) = self.next_blocking() {
            match ev {
                GenEvent::Token(t) => on_token(&t),
                GenEvent::Done(reply) => return Ok(reply),
                GenEvent::Failed(e) => return Err(e),
                GenEvent::Loading(_) | GenEvent::Loaded(_) => {}
            }
        }
        Err(EngineError::Stopped)
    }

    /// Wait for the end.
    pub fn wait(self) -> Result<Reply, EngineError> {
        self.wait_with(|_| {})
    }
}

/// [`Generation::next_timeout`] ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout;

impl Engine {
    /// Start the engine thread; nothing is loaded until the first request.
    pub fn start(config: EngineConfig) -> Engine {
        let (tx, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("twin-llm".into())
            .spawn(move || owner(config, rx))
            .expect("spawn the engine thread");
        Engine {
            tx,
            next_id: AtomicU64::new(1),
            thread: Some(thread),
        }
    }

    /// Start generating; events arrive on the returned [`Generation`].
    pub fn generate(&self, request: GenerateRequest) -> Generation {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events, rx) = mpsc::unbounded_channel();
        if let Err(std_mpsc::SendError(Command::Generate { events, .. })) =
            self.tx.send(Command::Generate {
                id,
                request,
                events,
            })
        {
            let _ = events.send(GenEvent::Failed(EngineError::Stopped));
        }
        Generation {
            id,
            tx: self.tx.clone(),
            events: rx,
        }
    }

    /// Load the model now (it loads on the first request otherwise).
    pub fn load(&self) -> Result<ModelInfo, EngineError> {
        let (reply, rx) = std_mpsc::channel();
        self.tx
            .send(Command::Load { reply })
            .map_err(|_| EngineError::Stopped)?;
        rx.recv().map_err(|_| EngineError::Stopped)?
    }

    /// Render `messages` with the model's template and tokenize them, as a
    /// generation would (memory uses it to budget retrieved context).
    pub fn render(&self, messages: Vec<Message>) -> Result<Rendered, EngineError> {
        let (reply, rx) = std_mpsc::channel();
        self.tx
            .send(Command::Render { messages, reply })
            .map_err(|_| EngineError::Stopped)?;
        rx.recv().map_err(|_| EngineError::Stopped)?
    }

    /// Switch to a LoRA adapter (`None`: the bare model). The KV cache starts over.
    pub fn set_adapter(&self, path: Option<PathBuf>) -> Result<(), EngineError> {
        let (reply, rx) = std_mpsc::channel();
        self.tx
            .send(Command::SetAdapter { path, reply })
            .map_err(|_| EngineError::Stopped)?;
        rx.recv().map_err(|_| EngineError::Stopped)?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// llama.cpp's backend is process-wide and initialised once.
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        LlamaBackend::init().expect("only twin initialises the llama backend, once")
    })
}

/// A GBNF grammar (for [`GenerateRequest::grammar`]) that only lets the model
/// write JSON matching `schema`, by llama.cpp's own converter.
pub fn json_schema_grammar(schema: &serde_json::Value) -> Result<String, EngineError> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string())
        .map_err(|e| EngineError::Grammar(format!("the JSON schema cannot become a grammar: {e}")))
}

/// The number of threads `threads` means (0: all cores).
pub fn thread_count(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Check a model file before llama.cpp sees it: present, whole, a model, chat-capable.
pub fn inspect_model(config: &EngineConfig) -> Result<(Gguf, Template), EngineError> {
    let path = &config.model;
    if !path.is_file() {
        return Err(EngineError::ModelMissing { path: path.clone() });
    }
    let gguf = Gguf::open(path)?;
    if gguf.is_adapter() {
        return Err(EngineError::IsAdapter { path: path.clone() });
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names = [file_name.as_str(), gguf.name().unwrap_or("")];
    let template = prompt::choose_template(
        &config.template,
        gguf.chat_template(),
        gguf.architecture(),
        &names,
    )
    .map_err(|_| EngineError::NotAChatModel { path: path.clone() })?;
    Ok((gguf, template))
}

/// An adapter file as llama.cpp can read it: the file itself, or, for an
/// adapter sealed by an encrypted store, its plain bytes in an anonymous
/// in-memory file ([`crate::privacy::memfile`]): decrypted adapters never
/// touch the disk. Drop it once llama.cpp has loaded the adapter (it copies
/// the tensors into its own buffers).
pub struct AdapterFile {
    path: PathBuf,
    _mem: Option<crate::privacy::memfile::MemFile>,
}

impl AdapterFile {
    pub fn open(adapter: &Path) -> Result<AdapterFile, EngineError> {
        use std::io::Read;
        let load = |why: String| EngineError::Load {
            path: adapter.to_path_buf(),
            why,
        };
        let mut head = [0u8; 8];
        let sealed = std::fs::File::open(adapter)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && &head == crate::store::crypt::FILE_MAGIC;
        if !sealed {
            return Ok(AdapterFile {
                path: adapter.to_path_buf(),
                _mem: None,
            });
        }
        let bytes = std::fs::read(adapter).map_err(|e| load(e.to_string()))?;
        let plain = crate::store::crypt::open_file_any(&bytes).map_err(|e| load(e.to_string()))?;
        let fallback = std::env::temp_dir().join(format!("twin-{}", unsafe { libc::getuid() }));
        let mem = crate::privacy::memfile::MemFile::new("twin-adapter", &plain, &fallback)
            .map_err(|e| load(format!("cannot hold the decrypted adapter: {e}")))?;
        if !mem.in_memory() {
            tracing::warn!(
                "no in-memory file here: the decrypted adapter sits in a private temporary file until llama.cpp has read it"
            );
        }
        Ok(AdapterFile {
            path: mem.path().to_path_buf(),
            _mem: Some(mem),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Check that `adapter` is a LoRA adapter made for the model `base`.
pub fn check_adapter(adapter: &Path, base: &Gguf) -> Result<(), EngineError> {
    let wrong = |why: String| EngineError::WrongAdapter {
        adapter: adapter.to_path_buf(),
        model: base.path.clone(),
        why,
    };
    if !adapter.is_file() {
        return Err(wrong("the adapter file does not exist".into()));
    }
    let file = AdapterFile::open(adapter)?;
    let a = Gguf::open(file.path())?;
    if !a.is_adapter() {
        return Err(EngineError::NotAnAdapter {
            path: adapter.to_path_buf(),
        });
    }
    if a.architecture() != base.architecture() {
        return Err(wrong(format!(
            "it is for architecture {}, the model is {}",
            a.architecture().unwrap_or("?"),
            base.architecture().unwrap_or("?")
        )));
    }
    for t in &a.tensors {
        let Some(target) = t.name.strip_suffix(".lora_a") else {
            continue;
        };
        let Some(w) = base.tensor(target) else {
            return Err(wrong(format!("the model has no tensor {target}")));
        };
        if t.dims.first() != w.dims.first() {
            return Err(wrong(format!(
                "{} has input size {:?}, the model's {target} has {:?}",
                t.name,
                t.dims.first(),
                w.dims.first()
            )));
        }
        let b = a.tensor(&format!("{target}.lora_b"));
        if b.and_then(|b| b.dims.get(1)) != w.dims.get(1) {
            return Err(wrong(format!(
                "{target}.lora_b does not match the model's output size {:?}",
                w.dims.get(1)
            )));
        }
    }
    Ok(())
}

struct Loaded {
    model: LlamaModel,
    gguf: Gguf,
    template: Template,
    adapter: Option<(PathBuf, LlamaLoraAdapter)>,
    info: ModelInfo,
}

fn load(
    config: &EngineConfig,
    progress: Option<mpsc::UnboundedSender<GenEvent>>,
) -> Result<Loaded, EngineError> {
    let started = Instant::now();
    let (gguf, template) = inspect_model(config)?;
    if let Some(a) = &config.adapter {
        check_adapter(a, &gguf)?;
    }
    let mut params = LlamaModelParams::default();
    if cfg!(feature = "cuda") && config.gpu_layers >= 0 {
        params = params.with_n_gpu_layers(config.gpu_layers as u32);
    }
    if let Some(tx) = progress {
        params = params.with_progress_callback(move |p| {
            let _ = tx.send(GenEvent::Loading(p));
            true
        });
    }
    let path = &config.model;
    let mut model =
        LlamaModel::load_from_file(backend(), path, &params).map_err(|e| EngineError::Load {
            path: path.clone(),
            why: e.to_string(),
        })?;
    let adapter = match &config.adapter {
        Some(a) => Some((a.clone(), init_adapter(&mut model, a, &gguf)?)),
        None => None,
    };
    let n_ctx_train = model.n_ctx_train();
    let n_ctx = if n_ctx_train > 0 {
        config.n_ctx.min(n_ctx_train)
    } else {
        config.n_ctx
    };
    let info = ModelInfo {
        path: path.clone(),
        name: gguf
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| file_name(path)),
        architecture: gguf.architecture().map(str::to_string),
        parameters: gguf.parameters(),
        quantization: gguf.quantization(),
        n_ctx,
        n_ctx_train,
        template: template.name(),
        adapter: config.adapter.clone(),
        threads: thread_count(config.threads),
        load_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(
        "loaded {} ({} params, {}) in {} ms",
        path.display(),
        info.parameters,
        info.quantization.as_deref().unwrap_or("?"),
        info.load_ms
    );
    Ok(Loaded {
        model,
        gguf,
        template,
        adapter,
        info,
    })
}

fn init_adapter(
    model: &mut LlamaModel,
    path: &Path,
    base: &Gguf,
) -> Result<LlamaLoraAdapter, EngineError> {
    check_adapter(path, base)?;
    let file = AdapterFile::open(path)?;
    model
        .lora_adapter_init(file.path())
        .map_err(|e| EngineError::WrongAdapter {
            adapter: path.to_path_buf(),
            model: base.path.clone(),
            why: format!("llama.cpp refused it ({e}); the log says which tensor"),
        })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How a serving session ended.
enum ServeEnd {
    Shutdown,
    /// No context could be made; the queued requests were failed.
    NoContext,
    Adapter {
        path: Option<PathBuf>,
        reply: std_mpsc::Sender<Result<(), EngineError>>,
    },
}

/// The engine thread: load on the first request, then serve until shut down.
fn owner(config: EngineConfig, rx: std_mpsc::Receiver<Command>) {
    let mut pending: VecDeque<Command> = VecDeque::new();
    let mut loaded: Option<Loaded> = None;
    loop {
        let cmd = match pending.pop_front() {
            Some(c) => c,
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        let cmd = match cmd {
            Command::Shutdown => return,
            Command::Cancel(_) => continue,
            Command::SetAdapter { path, reply } if loaded.is_some() => {
                let l = loaded.as_mut().expect("checked");
                let _ = reply.send(switch_adapter(l, path));
                continue;
            }
            other => other,
        };
        if loaded.is_none() {
            let progress = match &cmd {
                Command::Generate { events, .. } => Some(events.clone()),
                _ => None,
            };
            match load(&config, progress) {
                Ok(l) => {
                    if let Command::Generate { events, .. } = &cmd {
                        let _ = events.send(GenEvent::Loaded(l.info.clone()));
                    }
                    loaded = Some(l);
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    fail(cmd, e);
                    continue;
                }
            }
        }
        let l = loaded.as_mut().expect("loaded above");
        let cmd = match cmd {
            Command::Load { reply } => {
                let _ = reply.send(Ok(l.info.clone()));
                continue;
            }
            Command::SetAdapter { path, reply } => {
                let _ = reply.send(switch_adapter(l, path));
                continue;
            }
            c => c,
        };
        pending.push_front(cmd);
        match serve(l, &config, &rx, &mut pending) {
            ServeEnd::Shutdown => return,
            ServeEnd::NoContext => {}
            ServeEnd::Adapter { path, reply } => {
                let _ = reply.send(switch_adapter(l, path));
            }
        }
    }
}

fn fail(cmd: Command, e: EngineError) {
    match cmd {
        Command::Generate { events, .. } => {
            let _ = events.send(GenEvent::Failed(e));
        }
        Command::Load { reply } => {
            let _ = reply.send(Err(e));
        }
        Command::Render { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::SetAdapter { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::Cancel(_) | Command::Shutdown => {}
    }
}

/// Swap the adapter (needs the model mutably, so no context may be alive).
fn switch_adapter(l: &mut Loaded, path: Option<PathBuf>) -> Result<(), EngineError> {
    match path {
        None => {
            l.adapter = None;
            l.info.adapter = None;
        }
        Some(p) => {
            let adapter = init_adapter(&mut l.model, &p, &l.gguf)?;
            l.adapter = Some((p.clone(), adapter));
            l.info.adapter = Some(p);
        }
    }
    Ok(())
}

/// The evaluated tokens of sequence 0, for prefix reuse.
struct Session<'m> {
    ctx: LlamaContext<'m>,
    tokens: Vec<LlamaToken>,
    n_ctx: u32,
    n_batch: usize,
}

fn serve(
    l: &mut Loaded,
    config: &EngineConfig,
    rx: &std_mpsc::Receiver<Command>,
    pending: &mut VecDeque<Command>,
) -> ServeEnd {
    let threads = thread_count(config.threads) as i32;
    let n_ctx = l.info.n_ctx;
    let n_batch = n_ctx.min(512);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let Loaded {
        model,
        template,
        adapter,
        info,
        ..
    } = l;
    let model: &LlamaModel = model;
    let mut session = match model.new_context(backend(), params) {
        Ok(ctx) => Session {
            ctx,
            tokens: Vec::new(),
            n_ctx,
            n_batch: n_batch as usize,
        },
        Err(e) => {
            let err = || EngineError::Context {
                n_ctx,
                why: e.to_string(),
            };
            // Fail what is queued; the next request tries again.
            while let Some(cmd) = pending.pop_front() {
                fail(cmd, err());
            }
            return ServeEnd::NoContext;
        }
    };
    // A model template llama.cpp does not recognise falls back to ChatML.
    let mut template = template.clone();
    let mut template_note = None;
    if let Template::Model(_) = template
        && render(model, &template, &[Message::user("hi")]).is_err()
    {
        template_note = Some(format!(
            "llama.cpp does not know this model's chat template ({}); using chatml",
            template.name()
        ));
        tracing::warn!("{}", template_note.as_deref().unwrap_or_default());
        template = Template::Builtin("chatml".into());
    }
    if let Some((path, a)) = adapter.as_mut()
        && let Err(e) = session.ctx.lora_adapter_set(a, 1.0)
    {
        tracing::warn!("cannot apply adapter {}: {e}", path.display());
    }
    loop {
        let cmd = match pending.pop_front() {
            Some(c) => c,
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => return ServeEnd::Shutdown,
            },
        };
        match cmd {
            Command::Shutdown => return ServeEnd::Shutdown,
            Command::Cancel(_) => {}
            Command::Load { reply } => {
                let _ = reply.send(Ok(info.clone()));
            }
            Command::Render { messages, reply } => {
                let rendered = render(model, &template, &messages).map(|text| Rendered {
                    tokens: tokenize(model, &text).len(),
                    text,
                });
                let _ = reply.send(rendered);
            }
            Command::SetAdapter { path, reply } => return ServeEnd::Adapter { path, reply },
            Command::Generate {
                id,
                request,
                events,
            } => {
                let mut run = Run {
                    id,
                    token: request.cancel.clone(),
                    events: &events,
                    rx,
                    pending,
                    cancelled: false,
                    shutdown: false,
                };
                let result = generate(
                    model,
                    (&template, &template_note),
                    config,
                    &mut session,
                    &request,
                    &mut run,
                );
                let shutdown = run.shutdown;
                let _ = events.send(match result {
                    Ok(reply) => GenEvent::Done(reply),
                    Err(e) => GenEvent::Failed(e),
                });
                if shutdown {
                    return ServeEnd::Shutdown;
                }
            }
        }
    }
}

/// One generation's link to the command channel: cancellation arrives there.
struct Run<'a> {
    id: u64,
    token: Option<CancellationToken>,
    events: &'a mpsc::UnboundedSender<GenEvent>,
    rx: &'a std_mpsc::Receiver<Command>,
    pending: &'a mut VecDeque<Command>,
    cancelled: bool,
    shutdown: bool,
}

impl Run<'_> {
    /// Read commands that arrived meanwhile; true when this run should stop.
    fn should_stop(&mut self) -> bool {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Cancel(id) if id == self.id => self.cancelled = true,
                Command::Cancel(_) => {}
                Command::Shutdown => {
                    self.shutdown = true;
                    self.cancelled = true;
                }
                other => self.pending.push_back(other),
            }
        }
        // Nobody listening is a cancel too.
        if self.events.is_closed() || self.token.as_ref().is_some_and(|t| t.is_cancelled()) {
            self.cancelled = true;
        }
        self.cancelled
    }
}

fn render(
    model: &LlamaModel,
    template: &Template,
    messages: &[Message],
) -> Result<String, EngineError> {
    let tmpl = LlamaChatTemplate::new(template.source())
        .map_err(|e| EngineError::Template(e.to_string()))?;
    let chat = messages
        .iter()
        .map(|m| LlamaChatMessage::new(m.role.as_str().to_string(), m.content.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Template(e.to_string()))?;
    model
        .apply_chat_template(&tmpl, &chat, true)
        .map_err(|e| EngineError::Template(e.to_string()))
}

fn tokenize(model: &LlamaModel, text: &str) -> Vec<LlamaToken> {
    let vocab = model.vocab();
    vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), true)
}

/// Recent generated tokens the repetition penalty looks at.
const PENALTY_LAST_N: usize = 64;

/// Picks each generated token. llama.cpp's sampler chain, run on the whole
/// vocabulary (49k tokens for SmolLM2) at every step, costs about 5% of a
/// decode step of a 135M model: its penalty sampler looks every token up in a
/// hash map, and top-p takes a softmax and a partial sort of all of them. So
/// the repetition penalty is applied here, by id, to the recent tokens only
/// (llama.cpp's formula), and llama.cpp's chain sees only the candidates that
/// can be picked: the likeliest for greedy; those min-p keeps when it is on
/// (min-p cuts before top-p, as llama.cpp's default chain cuts with top-k before
/// top-p); every token under a grammar (it may allow only unlikely ones).
struct Picker {
    chain: LlamaSampler,
    penalty: f32,
    recent: VecDeque<i32>,
    /// Candidates at most this many nats below the likeliest (`None`: all).
    window: Option<f32>,
    logits: Vec<f32>,
    penalised: Vec<i32>,
    candidates: Vec<LlamaTokenData>,
}

impl Picker {
    fn new(model: &LlamaModel, s: &Sampling, grammar: Option<&str>) -> Result<Picker, EngineError> {
        let mut chain = Vec::new();
        // The grammar goes before any truncation, so the tokens it allows survive.
        if let Some(g) = grammar {
            chain.push(
                LlamaSampler::grammar(model, g, "root")
                    .map_err(|e| EngineError::Grammar(e.to_string()))?,
            );
        }
        let window = if s.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
            Some(0.0)
        } else {
            if s.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(s.top_p, 1));
            }
            chain.push(LlamaSampler::temp(s.temperature));
            chain.push(LlamaSampler::dist(s.seed.unwrap_or_else(random_seed)));
            // min-p keeps the tokens at least min_p times as likely as the likeliest.
            (s.min_p > 0.0).then(|| -s.min_p.min(1.0).ln())
        };
        Ok(Picker {
            chain: LlamaSampler::chain(chain, true),
            penalty: s.repeat_penalty,
            recent: VecDeque::with_capacity(PENALTY_LAST_N + 1),
            window: if grammar.is_some() { None } else { window },
            logits: Vec::new(),
            penalised: Vec::with_capacity(PENALTY_LAST_N),
            candidates: Vec::new(),
        })
    }

    /// The next token from output `idx` of the last decode.
    fn pick(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken, EngineError> {
        self.logits.clear();
        self.logits.extend_from_slice(ctx.get_logits_ith(idx));
        if self.penalty != 1.0 {
            self.penalised.clear();
            self.penalised.extend(self.recent.iter().copied());
            self.penalised.sort_unstable();
            self.penalised.dedup();
            for &t in &self.penalised {
                if let Some(l) = self.logits.get_mut(t as usize) {
                    *l = if *l <= 0.0 {
                        *l * self.penalty
                    } else {
                        *l / self.penalty
                    };
                }
            }
        }
        let cut = match self.window {
            Some(w) => self.logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l)) - w,
            None => f32::NEG_INFINITY,
        };
        let mut data = std::mem::take(&mut self.candidates);
        data.clear();
        data.extend(
            self.logits
                .iter()
                .enumerate()
                .filter(|&(_, &l)| l >= cut)
                .map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
        );
        let mut array = LlamaTokenDataArray::new(data, false);
        self.chain.apply(&mut array);
        let token = array
            .selected_token()
            .ok_or_else(|| EngineError::Decode("the sampler picked no token".into()))?;
        self.candidates = array.data;
        self.chain.accept(token);
        if self.penalty != 1.0 {
            self.recent.push_back(token.0);
            if self.recent.len() > PENALTY_LAST_N {
                self.recent.pop_front();
            }
        }
        Ok(token)
    }
}

fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

fn decode_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Decode(e.to_string())
}

fn generate(
    model: &LlamaModel,
    template: (&Template, &Option<String>),
    config: &EngineConfig,
    session: &mut Session<'_>,
    request: &GenerateRequest,
    run: &mut Run<'_>,
) -> Result<Reply, EngineError> {
    let started = Instant::now();
    let max_tokens = request.max_tokens.unwrap_or(config.max_tokens).max(1) as usize;
    let n_ctx = session.n_ctx as usize;
    // Keep room for a reply: all of max_tokens, but never more than a quarter of the context.
    let reserve = max_tokens.min(n_ctx / 4);
    let (template, template_note) = template;
    let mut notes: Vec<String> = template_note.iter().cloned().collect();
    let mut tokens = Vec::new();
    let fitted = prompt::fit(&request.messages, n_ctx - reserve, |ms| {
        tokens = tokenize(model, &render(model, template, ms)?);
        Ok::<_, EngineError>(tokens.len())
    })?;
    let fitted = match fitted {
        Ok(f) => f,
        Err(need) => {
            return Err(EngineError::PromptTooLong {
                need,
                n_ctx: session.n_ctx,
                reserve,
            });
        }
    };
    // `tokens` holds the last candidate counted, which is the one that fit.
    if fitted.dropped > 0 {
        notes.push(format!(
            "dropped the {} oldest messages to fit the {n_ctx}-token context",
            fitted.dropped
        ));
    }

    if tokens.is_empty() {
        return Err(EngineError::Template("the conversation is empty".into()));
    }
    // Reuse the cached prefix; always decode at least the last prompt token for its logits.
    let reused = if request.fresh {
        0
    } else {
        prompt::common_prefix(&session.tokens, &tokens).min(tokens.len() - 1)
    };
    if reused < session.tokens.len() {
        let removed = session
            .ctx
            .clear_kv_cache_seq(Some(0), Some(reused as u32), None)
            .unwrap_or(false);
        if !removed {
            session.ctx.clear_kv_cache();
            session.tokens.clear();
        }
    }
    let reused = reused.min(session.tokens.len());
    session.tokens.truncate(reused);

    let mut batch = LlamaBatch::new(session.n_batch, 1);
    let todo = &tokens[reused..];
    let mut at = reused;
    for chunk in todo.chunks(session.n_batch) {
        if run.should_stop() {
            return Ok(cancelled_reply(
                started,
                tokens.len(),
                reused,
                fitted.dropped,
                notes,
            ));
        }
        batch.clear();
        for (i, t) in chunk.iter().enumerate() {
            let last = at + i + 1 == tokens.len();
            batch
                .add(*t, (at + i) as i32, &[0], last)
                .map_err(decode_err)?;
        }
        session.ctx.decode(&mut batch).map_err(decode_err)?;
        session.tokens.extend_from_slice(chunk);
        at += chunk.len();
    }
    let prompt_done = Instant::now();
    let evaluated = tokens.len() - reused;

    let sampling = request.sampling.as_ref().unwrap_or(&config.sampling);
    let mut picker = Picker::new(model, sampling, request.grammar.as_deref())?;
    let vocab = model.vocab();
    let mut text = String::new();
    let mut utf8 = Utf8Stream::default();
    let mut generated = 0usize;
    let mut first_token: Option<Instant> = None;
    let finish = loop {
        if run.should_stop() {
            break Finish::Cancelled;
        }
        let token = picker.pick(&session.ctx, batch.n_tokens() - 1)?;
        if (vocab.is_eog(token) || vocab.is_control(token)) && !request.ignore_eos {
            break Finish::Stop;
        }
        generated += 1;
        let piece = utf8.push(&vocab.token_to_piece(token, false, None));
        first_token.get_or_insert_with(Instant::now);
        if !piece.is_empty() {
            text.push_str(&piece);
            let _ = run.events.send(GenEvent::Token(piece));
        }
        if generated >= max_tokens {
            break Finish::Length;
        }
        if session.tokens.len() + 1 >= n_ctx {
            break Finish::ContextFull;
        }
        batch.clear();
        batch
            .add(token, session.tokens.len() as i32, &[0], true)
            .map_err(decode_err)?;
        session.ctx.decode(&mut batch).map_err(decode_err)?;
        session.tokens.push(token);
    };
    let rest = utf8.finish();
    if !rest.is_empty() {
        text.push_str(&rest);
        let _ = run.events.send(GenEvent::Token(rest));
    }
    if finish == Finish::ContextFull {
        notes.push(format!("the reply filled the {n_ctx}-token context"));
    }
    let end = Instant::now();
    let prompt_secs = (prompt_done - started).as_secs_f64();
    let gen_secs = first_token.map_or(0.0, |t| (end - t).as_secs_f64());
    Ok(Reply {
        text,
        finish,
        stats: GenStats {
            prompt_tokens: tokens.len(),
            reused_tokens: reused,
            evaluated_tokens: evaluated,
            generated_tokens: generated,
            ttft_ms: first_token.map_or(0, |t| (t - started).as_millis() as u64),
            prompt_ms: (prompt_done - started).as_millis() as u64,
            prompt_tokens_per_s: rate(evaluated, prompt_secs),
            tokens_per_s: rate(generated.saturating_sub(1), gen_secs),
        },
        dropped_messages: fitted.dropped,
        notes,
    })
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 && n > 0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

fn cancelled_reply(
    started: Instant,
    prompt_tokens: usize,
    reused: usize,
    dropped: usize,
    notes: Vec<String>,
) -> Reply {
    Reply {
        text: String::new(),
        finish: Finish::Cancelled,
        stats: GenStats {
            prompt_tokens,
            reused_tokens: reused,
            evaluated_tokens: 0,
            generated_tokens: 0,
            ttft_ms: 0,
            prompt_ms: started.elapsed().as_millis() as u64,
            prompt_tokens_per_s: 0.0,
            tokens_per_s: 0.0,
        },
        dropped_messages: dropped,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny model's context with a prompt decoded, and the index of its logits.
    fn decoded<'m>(model: &'m LlamaModel, text: &str) -> (LlamaContext<'m>, i32) {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(256))
            .with_n_batch(256)
            .with_n_ubatch(256)
            .with_n_threads(1)
            .with_n_threads_batch(1);
        let mut ctx = model.new_context(backend(), params).unwrap();
        let tokens = tokenize(model, text);
        let mut batch = LlamaBatch::new(256, 1);
        for (i, t) in tokens.iter().enumerate() {
            batch
                .add(*t, i as i32, &[0], i + 1 == tokens.len())
                .unwrap();
        }
        ctx.decode(&mut batch).unwrap();
        (ctx, batch.n_tokens() - 1)
    }

    /// The picker chooses what llama.cpp's own chain (penalties, then min-p
    /// before top-p) chooses from the same logits, step after step, with its
    /// penalty window filling up.
    #[test]
    fn the_picker_picks_what_llama_cpps_chain_picks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        super::super::tiny::TinyLlama::default()
            .write(&path)
            .unwrap();
        let model =
            LlamaModel::load_from_file(backend(), &path, &LlamaModelParams::default()).unwrap();
        let (ctx, idx) = decoded(&model, "hello there, how are you today?");
        let n_vocab = model.n_vocab();
        let cases = [
            Sampling {
                temperature: 0.0,
                seed: Some(3),
                ..Sampling::default()
            },
            Sampling {
                seed: Some(3),
                ..Sampling::default()
            },
            Sampling {
                temperature: 1.5,
                top_p: 0.5,
                min_p: 0.2,
                repeat_penalty: 1.3,
                seed: Some(9),
            },
            Sampling {
                temperature: 0.8,
                top_p: 1.0,
                min_p: 0.0,
                repeat_penalty: 1.0,
                seed: Some(5),
            },
        ];
        for s in cases {
            let mut picker = Picker::new(&model, &s, None).unwrap();
            let mut chain = Vec::new();
            if s.repeat_penalty != 1.0 {
                chain.push(LlamaSampler::penalties(
                    n_vocab,
                    64,
                    s.repeat_penalty,
                    0.0,
                    0.0,
                ));
            }
            if s.temperature <= 0.0 {
                chain.push(LlamaSampler::greedy());
            } else {
                if s.min_p > 0.0 {
                    chain.push(LlamaSampler::min_p(s.min_p, 1));
                }
                if s.top_p < 1.0 {
                    chain.push(LlamaSampler::top_p(s.top_p, 1));
                }
                chain.push(LlamaSampler::temp(s.temperature));
                chain.push(LlamaSampler::dist(s.seed.unwrap()));
            }
            let mut reference = LlamaSampler::chain(chain, true);
            for step in 0..100 {
                let ours = picker.pick(&ctx, idx).unwrap();
                let theirs = reference.sample(&ctx, idx);
                assert_eq!(ours, theirs, "step {step} of {s:?}");
            }
        }
    }
}
