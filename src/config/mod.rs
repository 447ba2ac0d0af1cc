//! `config.toml`: every key is declared once in [`KEYS`] with its type, default,
//! documentation and optional environment override. Loading reports where each
//! effective value came from; a malformed file is refused with file, line and
//! column; an unknown key is a warning, never a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::Diagnostic;

pub mod edit;

/// What a key accepts.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Str,
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Choice(&'static [&'static str]),
    /// A number; integers are accepted too.
    Float {
        min: f64,
        max: f64,
    },
    /// A list of strings.
    StrList,
}

/// One documented config key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// `section.name`.
    pub key: &'static str,
    pub kind: Kind,
    /// The default as a TOML literal.
    pub default: &'static str,
    pub doc: &'static str,
    /// An environment variable that overrides the file.
    pub env: Option<&'static str>,
}

/// Every config key. Later modules add their sections here and to [`Config`].
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "ui.theme",
        kind: Kind::Str,
        default: "\"auto\"",
        doc: "colour theme: auto (by terminal: truecolor/256 -> dark, 16 colours -> base16, NO_COLOR -> mono), dark, light, base16, mono, or the name of a theme file in <config>/themes/",
        env: None,
    },
    KeySpec {
        key: "ui.keymap",
        kind: Kind::Str,
        default: "\"default\"",
        doc: "key bindings: default, vim, or the name of a keymap file in <config>/keymaps/ (a user file with a built-in's name overrides it per key)",
        env: None,
    },
    KeySpec {
        key: "ui.layout",
        kind: Kind::Choice(&["auto", "grid", "single"]),
        default: "\"auto\"",
        doc: "pane layout: grid shows all four panes, single shows the focused one; auto picks grid when the terminal is at least 120x36",
        env: None,
    },
    KeySpec {
        key: "ui.mouse",
        kind: Kind::Bool,
        default: "false",
        doc: "capture the mouse (click a pane or tab to focus it); off keeps the terminal's own selection working",
        env: None,
    },
    KeySpec {
        key: "log.filter",
        kind: Kind::Str,
        default: "\"info\"",
        doc: "tracing filter for the log file (e.g. \"debug\" or \"twin::store=trace\")",
        env: Some("TWIN_LOG"),
    },
    KeySpec {
        key: "log.content",
        kind: Kind::Bool,
        default: "false",
        doc: "let logs contain message text, names and file contents (for debugging a bad import); off, log lines carry counts, ids and errors only",
        env: Some("TWIN_LOG_CONTENT"),
    },
    KeySpec {
        key: "privacy.never_train",
        kind: Kind::StrList,
        default: "[]",
        doc: "contacts (names, numbers, addresses or ids as `twin contacts` shows them) whose messages never go into a training set; conversations with them still count for memory",
        env: None,
    },
    KeySpec {
        key: "privacy.kdf_memory_kib",
        kind: Kind::Int {
            min: 8,
            max: 4194304,
        },
        default: "65536",
        doc: "Argon2id memory (KiB) when a passphrase is set (`twin init --encrypt`, `twin encrypt`, `twin rekey`); stored with the store, so changing it affects the next passphrase only",
        env: None,
    },
    KeySpec {
        key: "privacy.kdf_iterations",
        kind: Kind::Int { min: 1, max: 100 },
        default: "3",
        doc: "Argon2id passes when a passphrase is set",
        env: None,
    },
    KeySpec {
        key: "models.dir",
        kind: Kind::Str,
        default: "\"\"",
        doc: "folder holding model files; empty means <data>/models",
        env: Some("TWIN_MODELS_DIR"),
    },
    KeySpec {
        key: "identity.me",
        kind: Kind::StrList,
        default: "[]",
        doc: "your names, phone numbers and e-mail addresses as they appear in exports, so twin knows which author is you (also `ingest --me NAME`)",
        env: None,
    },
    KeySpec {
        key: "ingest.timezone",
        kind: Kind::Str,
        default: "\"local\"",
        doc: "time zone for exports that write local time without an offset (WhatsApp, sigexport): \"local\" (this machine's) or an IANA name such as \"Europe/Berlin\"",
        env: Some("TWIN_TZ"),
    },
    KeySpec {
        key: "ingest.window_gap_minutes",
        kind: Kind::Int { min: 1, max: 10080 },
        default: "30",
        doc: "a pause longer than this starts a new conversation window",
        env: None,
    },
    KeySpec {
        key: "jobs.threads",
        kind: Kind::Int { min: 0, max: 1024 },
        default: "0",
        doc: "threads for CPU-heavy jobs; 0 means all cores",
        env: None,
    },
    KeySpec {
        key: "chat.model",
        kind: Kind::Str,
        default: "\"SmolLM2-135M-Instruct.Q4_1.gguf\"",
        doc: "the chat model: a .gguf file name in the models folder, or a path (bash scripts/fetch-models.sh fetches the default)",
        env: Some("TWIN_CHAT_MODEL"),
    },
    KeySpec {
        key: "chat.adapter",
        kind: Kind::Str,
        default: "\"\"",
        doc: "a LoRA adapter (.gguf) for the chat model, by name in the models folder or path; empty means none",
        env: None,
    },
    KeySpec {
        key: "chat.template",
        kind: Kind::Str,
        default: "\"auto\"",
        doc: "chat template: auto (the model's own; gemma models without one use gemma; instruct models without one use chatml) or a llama.cpp built-in name such as chatml, gemma, llama3, phi3, mistral-v7",
        env: None,
    },
    KeySpec {
        key: "chat.system_prompt",
        kind: Kind::Str,
        default: "\"You are a helpful assistant.\"",
        doc: "the system prompt that opens every conversation",
        env: None,
    },
    KeySpec {
        key: "chat.n_ctx",
        kind: Kind::Int {
            min: 64,
            max: 1_048_576,
        },
        default: "4096",
        doc: "context window in tokens (capped at the model's); when a conversation outgrows it the oldest turns are dropped",
        env: None,
    },
    KeySpec {
        key: "chat.max_tokens",
        kind: Kind::Int {
            min: 1,
            max: 1_048_576,
        },
        default: "512",
        doc: "the most tokens one reply may have",
        env: None,
    },
    KeySpec {
        key: "chat.temperature",
        kind: Kind::Float { min: 0.0, max: 5.0 },
        default: "0.3",
        doc: "sampling temperature: higher is more varied, 0 always picks the likeliest token (small models ramble above ~0.5)",
        env: None,
    },
    KeySpec {
        key: "chat.top_p",
        kind: Kind::Float { min: 0.0, max: 1.0 },
        default: "0.9",
        doc: "nucleus sampling: keep the likeliest tokens whose probabilities add up to this (1 turns it off)",
        env: None,
    },
    KeySpec {
        key: "chat.min_p",
        kind: Kind::Float { min: 0.0, max: 1.0 },
        default: "0.05",
        doc: "drop tokens less likely than this fraction of the likeliest one (0 turns it off)",
        env: None,
    },
    KeySpec {
        key: "chat.repeat_penalty",
        kind: Kind::Float { min: 0.0, max: 5.0 },
        default: "1.1",
        doc: "penalty for repeating one of the last 64 tokens (1 turns it off)",
        env: None,
    },
    KeySpec {
        key: "chat.seed",
        kind: Kind::Int {
            min: -1,
            max: 4_294_967_294,
        },
        default: "-1",
        doc: "sampling seed for repeatable replies; -1 picks a new one each run",
        env: None,
    },
    KeySpec {
        key: "chat.threads",
        kind: Kind::Int { min: 0, max: 1024 },
        default: "0",
        doc: "CPU threads for generation; 0 means all cores (fewer keeps generation fast while indexing or training runs)",
        env: Some("TWIN_CHAT_THREADS"),
    },
    KeySpec {
        key: "chat.engine",
        kind: Kind::Choice(&["local", "openai"]),
        default: "\"local\"",
        doc: "where replies are generated: local (llama.cpp in twin) or openai (an OpenAI-compatible server at chat.base_url: llama-server, vLLM, Ollama, another twin serve)",
        env: Some("TWIN_CHAT_ENGINE"),
    },
    KeySpec {
        key: "chat.base_url",
        kind: Kind::Str,
        default: "\"http://127.0.0.1:8178/v1\"",
        doc: "the OpenAI-compatible server's base URL when chat.engine is openai (http only: reach a remote one through an SSH tunnel)",
        env: Some("TWIN_CHAT_BASE_URL"),
    },
    KeySpec {
        key: "chat.api_key",
        kind: Kind::Str,
        default: "\"\"",
        doc: "sent as a Bearer token to the server when chat.engine is openai; empty sends none",
        env: Some("TWIN_CHAT_API_KEY"),
    },
    KeySpec {
        key: "chat.remote_model",
        kind: Kind::Str,
        default: "\"\"",
        doc: "the model to ask the server for when chat.engine is openai; empty takes the first it lists",
        env: None,
    },
    KeySpec {
        key: "chat.gpu_layers",
        kind: Kind::Int {
            min: -1,
            max: 10_000,
        },
        default: "-1",
        doc: "layers to offload to the GPU in a CUDA build; -1 means all, 0 none (ignored without CUDA)",
        env: None,
    },
    KeySpec {
        key: "memory.embedding_model",
        kind: Kind::Str,
        default: "\"\"",
        doc: "the embedding model: a BERT-family .gguf by name in the models folder or path; empty means all-MiniLM-L6-v2 (fetched by scripts/fetch-models.sh, converted on first use)",
        env: Some("TWIN_EMBEDDING_MODEL"),
    },
    KeySpec {
        key: "memory.half_life_days",
        kind: Kind::Float {
            min: 0.0,
            max: 100_000.0,
        },
        default: "180",
        doc: "a memory's importance halves after this many days without happening again or being recalled; 0 turns decay off (pinned memories never decay)",
        env: None,
    },
    KeySpec {
        key: "memory.compact_threshold",
        kind: Kind::Float { min: 0.5, max: 1.0 },
        default: "0.95",
        doc: "`twin memory compact` merges memories of one kind whose embeddings are at least this similar (cosine), keeping all their sources",
        env: None,
    },
    KeySpec {
        key: "memory.cleanup_below",
        kind: Kind::Float { min: 0.0, max: 1.0 },
        default: "0",
        doc: "`twin memory compact` deletes episodes and chunks whose importance fell below this (never pinned, edited, facts or preferences); 0 keeps everything",
        env: None,
    },
    KeySpec {
        key: "checkin.enabled",
        kind: Kind::Bool,
        default: "true",
        doc: "the twin reaches out on its own: the TUI delivers check-ins while it runs, `twin --batch checkin --due` from cron or a timer",
        env: None,
    },
    KeySpec {
        key: "checkin.timezone",
        kind: Kind::Str,
        default: "\"\"",
        doc: "time zone of the check-in times: an IANA name such as \"Europe/Berlin\", \"local\" (this machine's, UTC when it has none), or empty to use ingest.timezone",
        env: None,
    },
    KeySpec {
        key: "checkin.rules",
        kind: Kind::StrList,
        default: "[\"daily 08:30\", \"daily 20:00\"]",
        doc: "when the twin checks in: \"daily HH:MM\", \"weekdays HH:MM\", \"weekends HH:MM\", \"mon,wed HH:MM\", or a cron expression (\"cron 0 18 * * 1-5\", minute hour day month weekday)",
        env: None,
    },
    KeySpec {
        key: "checkin.disabled_rules",
        kind: Kind::StrList,
        default: "[]",
        doc: "rules kept but switched off (same forms as checkin.rules); the Check-ins view and `twin checkin --enable-rule` move one back",
        env: None,
    },
    KeySpec {
        key: "checkin.quiet_hours",
        kind: Kind::Str,
        default: "\"22:00-07:00\"",
        doc: "no check-in is delivered in this local time range (\"HH:MM-HH:MM\", may cross midnight; empty for none): one that falls inside waits for its end",
        env: None,
    },
    KeySpec {
        key: "checkin.max_per_day",
        kind: Kind::Int { min: 1, max: 96 },
        default: "3",
        doc: "the most check-ins delivered in one local day; more are skipped",
        env: None,
    },
    KeySpec {
        key: "checkin.min_gap_minutes",
        kind: Kind::Int { min: 0, max: 10080 },
        default: "60",
        doc: "the least time between two check-ins; a later one waits",
        env: None,
    },
    KeySpec {
        key: "checkin.catch_up",
        kind: Kind::Choice(&["latest", "max_age"]),
        default: "\"latest\"",
        doc: "after twin was not running: latest delivers only the newest missed check-in; max_age delivers those no older than catch_up_hours (still within max_per_day and min_gap)",
        env: None,
    },
    KeySpec {
        key: "checkin.catch_up_hours",
        kind: Kind::Int { min: 0, max: 8760 },
        default: "12",
        doc: "a missed check-in older than this is never delivered (0: no limit for catch_up = \"latest\")",
        env: None,
    },
    KeySpec {
        key: "checkin.snooze_minutes",
        kind: Kind::Int { min: 1, max: 10080 },
        default: "60",
        doc: "how long snoozing a check-in puts it off",
        env: None,
    },
    KeySpec {
        key: "checkin.triggers",
        kind: Kind::Bool,
        default: "true",
        doc: "also check in about what your messages mention: birthdays and anniversaries, upcoming events (a follow-up after them), a year since a milestone, long silence from a close contact",
        env: None,
    },
    KeySpec {
        key: "checkin.trigger_time",
        kind: Kind::Str,
        default: "\"10:00\"",
        doc: "local time (HH:MM) of the check-ins that messages trigger",
        env: None,
    },
    KeySpec {
        key: "checkin.silence_days",
        kind: Kind::Int { min: 1, max: 3650 },
        default: "21",
        doc: "a close contact (at least 50 messages) silent this many days gets a check-in",
        env: None,
    },
    KeySpec {
        key: "checkin.compose",
        kind: Kind::Choice(&["auto", "template"]),
        default: "\"auto\"",
        doc: "how check-ins are written: auto (the chat model in your voice when it is present, else a plain template) or template",
        env: None,
    },
    KeySpec {
        key: "train.base",
        kind: Kind::Str,
        default: "\"\"",
        doc: "the base model to fine-tune: a .gguf file name in the models folder, or a path; empty means chat.model (architecture llama, gemma3, qwen2 or qwen3: SmolLM2, Gemma 3 270M, ...)",
        env: Some("TWIN_TRAIN_BASE"),
    },
    KeySpec {
        key: "train.strategies",
        kind: Kind::StrList,
        default: "[\"conversational\", \"adaptive\", \"burst\", \"self_qa\"]",
        doc: "how training examples are cut from your conversations: conversational (multi-turn windows), adaptive (their message, your reply), burst (your several messages in a row, kept apart), self_qa (questions about you answered from your facts, once memory holds them)",
        env: None,
    },
    KeySpec {
        key: "train.max_tokens",
        kind: Kind::Int { min: 16, max: 8192 },
        default: "256",
        doc: "longest training example in tokens; longer windows are cut to their last turns, still-longer examples are dropped",
        env: None,
    },
    KeySpec {
        key: "train.validation",
        kind: Kind::Float { min: 0.0, max: 0.5 },
        default: "0.1",
        doc: "share of conversations held out for validation (split by conversation, so nothing leaks)",
        env: None,
    },
    KeySpec {
        key: "train.rank",
        kind: Kind::Int { min: 1, max: 256 },
        default: "16",
        doc: "LoRA rank r",
        env: None,
    },
    KeySpec {
        key: "train.alpha",
        kind: Kind::Float {
            min: 0.0,
            max: 4096.0,
        },
        default: "32.0",
        doc: "LoRA alpha; the update is scaled by alpha / rank",
        env: None,
    },
    KeySpec {
        key: "train.targets",
        kind: Kind::StrList,
        default: "[\"attn_q\", \"attn_k\", \"attn_v\", \"attn_output\", \"ffn_gate\", \"ffn_up\", \"ffn_down\"]",
        doc: "projections that get a LoRA adapter, by llama.cpp tensor name",
        env: None,
    },
    KeySpec {
        key: "train.steps",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: "200",
        doc: "optimizer steps in a run (twin train --steps N overrides)",
        env: None,
    },
    KeySpec {
        key: "train.learning_rate",
        kind: Kind::Float { min: 0.0, max: 1.0 },
        default: "2e-4",
        doc: "peak learning rate (AdamW), reached after the warmup",
        env: None,
    },
    KeySpec {
        key: "train.warmup_steps",
        kind: Kind::Int {
            min: 0,
            max: 100_000,
        },
        default: "10",
        doc: "steps of linear warmup before the cosine decay",
        env: None,
    },
    KeySpec {
        key: "train.min_lr_ratio",
        kind: Kind::Float { min: 0.0, max: 1.0 },
        default: "0.1",
        doc: "the cosine schedule ends at learning_rate times this",
        env: None,
    },
    KeySpec {
        key: "train.weight_decay",
        kind: Kind::Float { min: 0.0, max: 1.0 },
        default: "0.0",
        doc: "AdamW's decoupled weight decay",
        env: None,
    },
    KeySpec {
        key: "train.batch_size",
        kind: Kind::Int { min: 1, max: 1024 },
        default: "1",
        doc: "examples per forward pass",
        env: None,
    },
    KeySpec {
        key: "train.grad_accum",
        kind: Kind::Int { min: 1, max: 1024 },
        default: "4",
        doc: "forward passes whose gradients add up to one optimizer step",
        env: None,
    },
    KeySpec {
        key: "train.max_grad_norm",
        kind: Kind::Float {
            min: 0.0,
            max: 1000.0,
        },
        default: "1.0",
        doc: "clip gradients to this global norm; 0 turns clipping off",
        env: None,
    },
    KeySpec {
        key: "train.seed",
        kind: Kind::Int {
            min: 0,
            max: 4_294_967_295,
        },
        default: "42",
        doc: "seed for the adapter's initial values and the data order; the same seed, data and settings reproduce a run",
        env: None,
    },
    KeySpec {
        key: "train.checkpoint_every",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: "25",
        doc: "save a checkpoint every N steps (twin train --resume continues from the last one)",
        env: None,
    },
    KeySpec {
        key: "train.eval_every",
        kind: Kind::Int {
            min: 0,
            max: 1_000_000,
        },
        default: "25",
        doc: "validation loss every N steps; 0 only at the end",
        env: None,
    },
    KeySpec {
        key: "train.eval_limit",
        kind: Kind::Int {
            min: 1,
            max: 100_000,
        },
        default: "40",
        doc: "twin eval: held-out replies scored and generated, memory questions and probes asked, at most (twin eval --limit N overrides)",
        env: None,
    },
    KeySpec {
        key: "train.eval_reply_tokens",
        kind: Kind::Int { min: 8, max: 4096 },
        default: "64",
        doc: "twin eval: longest generated reply, in tokens",
        env: None,
    },
    KeySpec {
        key: "voice.model",
        kind: Kind::Str,
        default: "\"ggml-tiny.en.bin\"",
        doc: "the whisper model for voice notes and push-to-talk: a ggml whisper.cpp model (ggml-*.bin) by name in the models folder, or a path (bash scripts/fetch-models.sh fetches the default)",
        env: Some("TWIN_VOICE_MODEL"),
    },
    KeySpec {
        key: "voice.threads",
        kind: Kind::Int { min: 0, max: 1024 },
        default: "0",
        doc: "CPU threads for transcription; 0 means half the cores (at least one), leaving the rest to chat",
        env: None,
    },
    KeySpec {
        key: "voice.language",
        kind: Kind::Str,
        default: "\"auto\"",
        doc: "spoken language for multilingual whisper models: auto (detect) or a code such as \"de\"; English-only models (*.en) always use en",
        env: None,
    },
    KeySpec {
        key: "voice.ingest",
        kind: Kind::Bool,
        default: "true",
        doc: "transcribe voice notes and audio attachments while importing exports (stored as message text, marked transcribed)",
        env: None,
    },
];

/// The typed, effective configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub identity: IdentityConfig,
    pub ingest: IngestConfig,
    pub ui: UiConfig,
    pub log: LogConfig,
    pub models: ModelsConfig,
    pub jobs: JobsConfig,
    pub chat: ChatConfig,
    pub voice: VoiceConfig,
    pub memory: MemoryConfig,
    pub privacy: PrivacyConfig,
    pub checkin: CheckinConfig,
    pub train: TrainConfig,
}

/// `[privacy]`: who never goes into training, and the passphrase's cost.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    pub never_train: Vec<String>,
    pub kdf_memory_kib: i64,
    pub kdf_iterations: i64,
}

impl PrivacyConfig {
    pub fn kdf(&self) -> crate::store::KdfParams {
        crate::store::KdfParams {
            memory_kib: self.kdf_memory_kib as u32,
            iterations: self.kdf_iterations as u32,
            parallelism: 1,
        }
    }
}

/// `[memory]`: embeddings and the memory lifecycle.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    pub embedding_model: String,
    pub half_life_days: f64,
    pub compact_threshold: f64,
    pub cleanup_below: f64,
}

/// `[checkin]`: when and how the twin reaches out (see `crate::checkin`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckinConfig {
    pub enabled: bool,
    pub timezone: String,
    pub rules: Vec<String>,
    pub disabled_rules: Vec<String>,
    pub quiet_hours: String,
    pub max_per_day: i64,
    pub min_gap_minutes: i64,
    pub catch_up: String,
    pub catch_up_hours: i64,
    pub snooze_minutes: i64,
    pub triggers: bool,
    pub trigger_time: String,
    pub silence_days: i64,
    pub compose: String,
}

/// `[train]`: training sets, LoRA and the optimizer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub base: String,
    pub strategies: Vec<String>,
    pub max_tokens: i64,
    pub validation: f64,
    pub rank: i64,
    pub alpha: f64,
    pub targets: Vec<String>,
    pub steps: i64,
    pub learning_rate: f64,
    pub warmup_steps: i64,
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub batch_size: i64,
    pub grad_accum: i64,
    pub max_grad_norm: f64,
    pub seed: i64,
    pub checkpoint_every: i64,
    pub eval_every: i64,
    pub eval_limit: i64,
    pub eval_reply_tokens: i64,
}

/// `[voice]`: the whisper model and how it runs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    pub model: String,
    pub threads: i64,
    pub language: String,
    pub ingest: bool,
}

/// `[chat]`: the chat model and how it samples.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    pub model: String,
    pub adapter: String,
    pub template: String,
    pub system_prompt: String,
    pub n_ctx: i64,
    pub max_tokens: i64,
    pub temperature: f64,
    pub top_p: f64,
    pub min_p: f64,
    pub repeat_penalty: f64,
    pub seed: i64,
    pub threads: i64,
    pub engine: String,
    pub base_url: String,
    pub api_key: String,
    pub remote_model: String,
    pub gpu_layers: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    pub theme: String,
    pub keymap: String,
    pub layout: String,
    pub mouse: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub me: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub timezone: String,
    pub window_gap_minutes: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub filter: String,
    pub content: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub threads: i64,
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Default,
    File { path: PathBuf, line: usize },
    Env { var: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Source::Env { var } => write!(f, "env {var}"),
        }
    }
}

/// One key's effective value, for `twin config`.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub key: &'static str,
    pub value: toml::Value,
    pub default: toml::Value,
    pub source: Source,
    pub doc: &'static str,
}

/// A loaded configuration with its provenance and warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: PathBuf,
    pub file_found: bool,
    pub values: Vec<Resolved>,
    /// Unknown keys and other non-fatal problems.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{0}\n  fix the line above in the config file, or move the file away to use the defaults"
    )]
    Invalid(Diagnostic),
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfigError {
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Invalid(d) => Some(d),
            ConfigError::Read { .. } => None,
        }
    }
}

type Sections = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// Load `file` (absent means all defaults), then apply environment overrides from `env`.
pub fn load(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ConfigError::Read {
                path: file.to_path_buf(),
                source: e,
            });
        }
    };
    load_str(file, src.as_deref(), env)
}

/// Like [`load`] with the file's text given (`None`: no file).
pub fn load_str(
    file: &Path,
    src: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let mut from_file: BTreeMap<String, (toml::Value, usize)> = BTreeMap::new();
    if let Some(src) = src {
        let sections: Sections = toml::from_str(src).map_err(|e| {
            let mut d = Diagnostic::from_toml(file, src, &e);
            if d.message.contains("expected a map") {
                d.message = format!("{}; config keys live in sections such as [ui]", d.message);
            }
            ConfigError::Invalid(d)
        })?;
        for (section, keys) in sections {
            for (name, value) in keys {
                let full = format!("{}.{}", section.get_ref(), name.get_ref());
                let at = |msg: String| Diagnostic::at(file, src, Some(name.span()), msg);
                match KEYS.iter().find(|k| k.key == full) {
                    None => warnings.push(at(unknown_key_message(section.get_ref(), &full))),
                    Some(spec) => {
                        check_kind(spec, value.get_ref()).map_err(|msg| {
                            ConfigError::Invalid(Diagnostic::at(file, src, Some(value.span()), msg))
                        })?;
                        let (line, _) = crate::diag::line_col(src, name.span().start);
                        from_file.insert(full, (value.into_inner(), line));
                    }
                }
            }
        }
    }

    let mut values = Vec::new();
    let mut table = toml::Table::new();
    for spec in KEYS {
        let default = default_value(spec);
        let (value, source) = if let Some((var, raw)) = spec
            .env
            .and_then(|var| env(var).filter(|v| !v.is_empty()).map(|v| (var, v)))
        {
            let value = env_value(spec, &raw).map_err(|msg| {
                ConfigError::Invalid(Diagnostic {
                    file: PathBuf::from(format!("${var}")),
                    line: 1,
                    column: 1,
                    message: msg,
                })
            })?;
            (
                value,
                Source::Env {
                    var: var.to_string(),
                },
            )
        } else if let Some((value, line)) = from_file.remove(spec.key) {
            (
                value,
                Source::File {
                    path: file.to_path_buf(),
                    line,
                },
            )
        } else {
            (default.clone(), Source::Default)
        };
        // `temperature = 1` means 1.0.
        let value = match (spec.kind, value) {
            (Kind::Float { .. }, toml::Value::Integer(i)) => toml::Value::Float(i as f64),
            (_, v) => v,
        };
        let (section, name) = spec.key.split_once('.').expect("keys are section.name");
        table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("section is a table")
            .insert(name.to_string(), value.clone());
        values.push(Resolved {
            key: spec.key,
            value,
            default,
            source,
            doc: spec.doc,
        });
    }
    let config = Config::deserialize(toml::Value::Table(table))
        .expect("every key in KEYS matches a field of Config");
    Ok(Loaded {
        config,
        file: file.to_path_buf(),
        file_found: src.is_some(),
        values,
        warnings,
    })
}

fn unknown_key_message(section: &str, full: &str) -> String {
    let known: Vec<&str> = KEYS
        .iter()
        .filter(|k| k.key.split_once('.').map(|(s, _)| s) == Some(section))
        .map(|k| k.key)
        .collect();
    if known.is_empty() {
        let sections: std::collections::BTreeSet<&str> = KEYS
            .iter()
            .filter_map(|k| k.key.split_once('.').map(|(s, _)| s))
            .collect();
        format!(
            "unknown section [{section}] (key `{full}` is ignored); known sections: {}",
            sections.into_iter().collect::<Vec<_>>().join(", ")
        )
    } else {
        format!(
            "unknown key `{full}` is ignored; known keys here: {}",
            known.join(", ")
        )
    }
}

/// The default of a key as a TOML value.
pub fn default_value(spec: &KeySpec) -> toml::Value {
    let doc: toml::Table =
        toml::from_str(&format!("v = {}", spec.default)).expect("KEYS defaults are valid TOML");
    doc["v"].clone()
}

fn check_kind(spec: &KeySpec, v: &toml::Value) -> Result<(), String> {
    let key = spec.key;
    match (spec.kind, v) {
        (Kind::Str, toml::Value::String(_)) | (Kind::Bool, toml::Value::Boolean(_)) => Ok(()),
        (Kind::StrList, toml::Value::Array(items)) if items.iter().all(|i| i.is_str()) => Ok(()),
        (Kind::StrList, other) => Err(format!(
            "`{key}` must be a list of strings such as [\"Alice\", \"+15550100\"], found {other}"
        )),
        (Kind::Int { min, max }, toml::Value::Integer(i)) if (min..=max).contains(i) => Ok(()),
        (Kind::Float { min, max }, toml::Value::Float(x)) if (min..=max).contains(x) => Ok(()),
        (Kind::Float { min, max }, toml::Value::Integer(i))
            if (min..=max).contains(&(*i as f64)) =>
        {
            Ok(())
        }
        (Kind::Float { min, max }, toml::Value::Float(_) | toml::Value::Integer(_)) => Err(
            format!("`{key}` must be between {min} and {max}, found {v}"),
        ),
        (Kind::Float { .. }, other) => Err(format!("`{key}` must be a number, found {other}")),
        (Kind::Int { min, max }, toml::Value::Integer(i)) => Err(format!(
            "`{key}` must be between {min} and {max}, found {i}"
        )),
        (Kind::Choice(choices), toml::Value::String(s)) if choices.contains(&s.as_str()) => Ok(()),
        (Kind::Choice(choices), other) => Err(format!(
            "`{key}` must be one of {}, found {other}",
            choices
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (Kind::Str, other) => Err(format!("`{key}` must be a string in quotes, found {other}")),
        (Kind::Bool, other) => Err(format!("`{key}` must be true or false, found {other}")),
        (Kind::Int { .. }, other) => Err(format!("`{key}` must be a whole number, found {other}")),
    }
}

fn env_value(spec: &KeySpec, raw: &str) -> Result<toml::Value, String> {
    let v = match spec.kind {
        Kind::Str | Kind::Choice(_) => toml::Value::String(raw.to_string()),
        Kind::Bool => match raw {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => {
                return Err(format!(
                    "`{}` must be true or false, found {raw:?}",
                    spec.key
                ));
            }
        },
        Kind::StrList => toml::Value::Array(
            raw.split(',')
                .map(|s| toml::Value::String(s.trim().to_string()))
                .filter(|v| v.as_str() != Some(""))
                .collect(),
        ),
        Kind::Int { .. } => toml::Value::Integer(
            raw.parse()
                .map_err(|_| format!("`{}` must be a whole number, found {raw:?}", spec.key))?,
        ),
        Kind::Float { .. } => toml::Value::Float(
            raw.parse()
                .map_err(|_| format!("`{}` must be a number, found {raw:?}", spec.key))?,
        ),
    };
    check_kind(spec, &v)?;
    Ok(v)
}

/// A commented `config.toml` with every key at its default.
pub fn template() -> String {
    let mut out = String::from("# twin configuration. Every key is shown at its default.\n");
    let mut section = "";
    for spec in KEYS {
        let (s, name) = spec.key.split_once('.').expect("keys are section.name");
        if s != section {
            out.push_str(&format!("\n[{s}]\n"));
            section = s;
        }
        out.push_str(&format!("# {}", spec.doc));
        if let Some(var) = spec.env {
            out.push_str(&format!(" (env {var} overrides)"));
        }
        out.push_str(&format!("\n{name} = {}\n", spec.default));
    }
    out
}

impl Loaded {
    /// The models folder: config/env value, or the default under `data_dir`.
    pub fn models_dir(&self, paths: &crate::paths::Paths) -> PathBuf {
        if self.config.models.dir.is_empty() {
            paths.default_models_dir()
        } else {
            PathBuf::from(&self.config.models.dir)
        }
    }
}

/// `twin config`: every key's effective value, default, source and meaning.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: PathBuf,
    pub file_found: bool,
    pub keys: Vec<Resolved>,
    pub warnings: Vec<Diagnostic>,
}

impl From<&Loaded> for Report {
    fn from(l: &Loaded) -> Report {
        Report {
            file: l.file.clone(),
            file_found: l.file_found,
            keys: l.values.clone(),
            warnings: l.warnings.clone(),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.file_found {
            ""
        } else {
            " (not present: every value is a default)"
        };
        writeln!(f, "# {}{state}", self.file.display())?;
        let mut section = "";
        for r in &self.keys {
            let (s, name) = r.key.split_once('.').unwrap_or(("", r.key));
            if s != section {
                writeln!(f, "\n[{s}]")?;
                section = s;
            }
            let from = match &r.source {
                Source::Default => "default".to_string(),
                other => format!("from {other}; default {}", r.default),
            };
            writeln!(f, "# {} ({from})", r.doc)?;
            writeln!(f, "{name} = {}", r.value)?;
        }
        for w in &self.warnings {
            write!(f, "\nwarning: {w}")?;
        }
        Ok(())
    }
}

impl crate::jobs::Summary for Report {}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(src: &str) -> Result<Loaded, ConfigError> {
        load_str(Path::new("/c/config.toml"), Some(src), &no_env)
    }

    #[test]
    fn defaults_when_no_file() {
        let l = load_str(Path::new("/c/config.toml"), None, &no_env).unwrap();
        assert_eq!(l.config.ui.theme, "auto");
        assert!(!l.config.ui.mouse);
        assert!(l.values.iter().all(|v| v.source == Source::Default));
        assert!(!l.file_found);
    }

    #[test]
    fn file_values_record_their_line() {
        let l = load("# hi\n[ui]\n\nmouse = true\ntheme = \"light\"\n").unwrap();
        assert!(l.config.ui.mouse);
        assert_eq!(l.config.ui.theme, "light");
        let mouse = l.values.iter().find(|v| v.key == "ui.mouse").unwrap();
        assert_eq!(
            mouse.source,
            Source::File {
                path: "/c/config.toml".into(),
                line: 4
            }
        );
    }

    #[test]
    fn env_overrides_file() {
        let env = |v: &str| (v == "TWIN_LOG").then(|| "debug".to_string());
        let l = load_str(
            Path::new("c.toml"),
            Some("[log]\nfilter = \"warn\"\n"),
            &env,
        )
        .unwrap();
        assert_eq!(l.config.log.filter, "debug");
        let v = l.values.iter().find(|v| v.key == "log.filter").unwrap();
        assert_eq!(
            v.source,
            Source::Env {
                var: "TWIN_LOG".into()
            }
        );
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = load("[ui]\ntheme = \"dark\nmouse = true\n").unwrap_err();
        let d = err.diagnostic().unwrap();
        assert_eq!(d.file, Path::new("/c/config.toml"));
        assert_eq!(d.line, 2, "{d}");
        assert!(err.to_string().contains("/c/config.toml:2:"), "{err}");
    }

    #[test]
    fn wrong_type_is_refused_at_the_value() {
        let err = load("[ui]\nmouse = \"yes\"\n").unwrap_err();
        let d = err.diagnostic().unwrap();
        assert_eq!((d.line, d.column), (2, 9), "{d}");
        assert!(
            d.message.contains("`ui.mouse` must be true or false"),
            "{d}"
        );
    }

    #[test]
    fn bad_choice_lists_the_choices() {
        let err = load("[ui]\nlayout = \"tiles\"\n").unwrap_err();
        assert!(err.to_string().contains("\"grid\""), "{err}");
    }

    #[test]
    fn out_of_range_int_is_refused() {
        let err = load("[jobs]\nthreads = -1\n").unwrap_err();
        assert!(err.to_string().contains("between 0 and 1024"), "{err}");
    }

    #[test]
    fn top_level_scalar_is_refused_with_a_hint() {
        let err = load("theme = \"dark\"\n").unwrap_err();
        let d = err.diagnostic().unwrap();
        assert_eq!(d.line, 1);
        assert!(d.message.contains("sections"), "{d}");
    }

    #[test]
    fn unknown_keys_warn_with_line() {
        let l = load("[ui]\nthem = \"dark\"\n[nope]\nx = 1\n").unwrap();
        assert_eq!(l.warnings.len(), 2);
        assert_eq!(l.warnings[0].line, 4);
        assert!(l.warnings[0].message.contains("unknown section [nope]"));
        assert_eq!(l.warnings[1].line, 2);
        assert!(l.warnings[1].message.contains("ui.theme"));
    }

    #[test]
    fn template_round_trips_to_defaults() {
        let l = load(&template()).unwrap();
        assert!(l.warnings.is_empty());
        let d = load_str(Path::new("x"), None, &no_env).unwrap();
        assert_eq!(l.config, d.config);
    }

    #[test]
    fn chat_numbers_accept_integers_and_refuse_out_of_range() {
        let l = load("[chat]\ntemperature = 1\ntop_p = 0.5\n").unwrap();
        assert_eq!(l.config.chat.temperature, 1.0);
        assert_eq!(l.config.chat.top_p, 0.5);
        assert_eq!(l.config.chat.n_ctx, 4096);
        let err = load("[chat]\ntop_p = 1.5\n").unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
        let err = load("[chat]\ntemperature = \"hot\"\n").unwrap_err();
        assert!(err.to_string().contains("must be a number"), "{err}");
    }

    #[test]
    fn bad_env_value_is_refused() {
        let env = |v: &str| (v == "TWIN_MODELS_DIR").then(|| "/m".to_string());
        let l = load_str(Path::new("c.toml"), None, &env).unwrap();
        assert_eq!(l.config.models.dir, "/m");
    }
}
