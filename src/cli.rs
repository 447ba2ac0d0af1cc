//! The command line: `twin` opens the TUI, `twin --batch COMMAND` runs headless.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::batch::{self, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Output, print_stdout};
use crate::config::{self, ConfigError, Loaded};
use crate::ingest::Format;
use crate::ingest::pipeline::{self, Zone};
use crate::llm::{EngineConfig, chat};
use crate::paths::Paths;
use crate::status::StatusReport;
use crate::store::Store;
use crate::{doctor, logging, memory, tui};

#[derive(Debug, Parser)]
#[command(
    name = "twin",
    about = "A digital twin of you, built from your own history, running entirely on this machine",
    long_about = "twin turns your exported chats, mail and notes into a twin you talk to in the terminal.\n\nWith no command it opens the terminal UI. `twin --batch COMMAND` runs a job headless: JSON lines on stdout, progress on stderr; exit 0 on success, 1 when the job fails, 2 on bad usage.",
    disable_version_flag = true
)]
pub struct Cli {
    /// Run headless: one JSON object per line on stdout, progress on stderr
    #[arg(long, global = true)]
    pub batch: bool,

    /// Put config, data, state and logs under DIR instead of the XDG folders
    #[arg(long, global = true, env = "TWIN_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Print the version and the folders twin uses
    #[arg(short = 'V', long)]
    pub version: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import exports: files, folders or zips (the format of each is recognised)
    Ingest {
        /// Export files, folders or zips; a folder may mix formats
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Read every path as this format instead of recognising it
        #[arg(long, default_value = "auto", value_name = "FORMAT", value_parser = parse_format)]
        format: FormatArg,
        /// Your name, number or address as it appears in the exports (repeatable)
        #[arg(long, value_name = "NAME")]
        me: Vec<String>,
    },
    /// List the people in your history; merge two that are one person
    Contacts {
        /// Merge contact FROM into INTO (names, numbers, addresses or ids; see the list)
        #[arg(long, num_args = 2, value_names = ["FROM", "INTO"])]
        merge: Option<Vec<String>>,
        /// Mark this contact as you (moves their messages to you)
        #[arg(long, value_name = "NAME")]
        me: Option<String>,
        /// Undo a merge: CONTACT's messages written as NAME become their own contact
        #[arg(long, num_args = 2, value_names = ["CONTACT", "NAME"], conflicts_with_all = ["merge", "me"])]
        split: Option<Vec<String>>,
    },
    /// Import the demo twin: a public chat corpus bundled as a WhatsApp export
    Demo,
    /// How you write, overall and to each contact (built by ingest)
    Profile {
        /// Recompute it from the stored messages first
        #[arg(long)]
        rebuild: bool,
    },
    /// Build memories from what you imported (episodes, note chunks) and index them
    Index {
        #[command(subcommand)]
        action: Option<IndexAction>,
    },
    /// Search, read, pin, edit and forget memories; topics and the biography
    Memory {
        #[command(subcommand)]
        action: MemoryAction,
    },
    /// Store counts, models found and folders
    Status,
    /// The models in the models folder: architecture, parameters, quantisation, context, template
    Models,
    /// Talk to the model: MESSAGE, or one message per line on stdin (one conversation)
    Chat {
        /// What to say; without it each line of stdin is one turn
        #[arg(value_name = "MESSAGE")]
        message: Option<String>,
    },
    /// The effective configuration: every key, its value, default and where it came from
    Config {
        /// Print a commented config.toml with every key at its default
        #[arg(long)]
        template: bool,
    },
    /// Check folders, config, store, models, keymap, theme and terminal, and say how to fix problems
    Doctor,
    /// Print a shell completion script (e.g. `twin completions bash > ~/.local/share/bash-completion/completions/twin`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page in roff (e.g. `twin man | man -l -`)
    Man,
}

#[derive(Debug, Subcommand)]
pub enum IndexAction {
    /// Rebuild the vector index from the stored vectors; re-embed every memory
    /// when the embedding model changed (or with --reembed)
    Rebuild {
        #[arg(long)]
        reembed: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemoryAction {
    /// Hybrid search (meaning + words), best first
    Search {
        #[arg(value_name = "QUERY")]
        query: String,
        /// How many results
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Only memories involving this contact (name or id)
        #[arg(long, value_name = "CONTACT")]
        contact: Option<String>,
        /// Only this kind: episode, fact, preference, document, chat, summary
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// Only memories from this day on (YYYY-MM-DD)
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only memories up to this day (YYYY-MM-DD)
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
    },
    /// One memory with its sources (the messages or note it came from)
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Memories, newest first
    List {
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        #[arg(long, value_name = "CONTACT")]
        contact: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Forget a memory: removed with its vector, its sources left out of training
    Forget {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Pin a memory (always important, never cleaned up); --off unpins
    Pin {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        off: bool,
    },
    /// Replace a memory's text (kept from then on, re-embedded)
    Edit {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(value_name = "TEXT")]
        text: String,
        #[arg(long)]
        title: Option<String>,
    },
    /// Merge near-duplicates and clean up faded memories
    Compact,
    /// Topic clusters and entities (recomputed)
    Topics,
    /// The biography assembled from facts, with the memory each comes from
    Bio,
    /// Read episodes with the chat model: summaries, facts and preferences
    Extract {
        /// Episodes to read at most (most important first)
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// Parse the command line and run; returns the process exit code.
pub fn main() -> i32 {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return EXIT_USAGE;
        }
    };
    let home_from_env = matches.value_source("home") == Some(ValueSource::EnvVariable);
    run(cli, home_from_env)
}

fn run(cli: Cli, home_from_env: bool) -> i32 {
    let output = if cli.batch {
        Output::Json
    } else {
        Output::Human
    };
    match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "twin", &mut script);
            print_stdout(&String::from_utf8_lossy(&script));
            return EXIT_OK;
        }
        Some(Command::Man) => {
            let mut page = Vec::new();
            return match clap_mangen::Man::new(Cli::command()).render(&mut page) {
                Ok(()) => {
                    print_stdout(&String::from_utf8_lossy(&page));
                    EXIT_OK
                }
                Err(e) => fail(output, "man", &e.to_string()),
            };
        }
        _ => {}
    }

    let paths = match Paths::resolve(cli.home.as_deref(), home_from_env) {
        Ok(p) => p,
        Err(e) => return usage(output, &e.to_string()),
    };
    let env = |var: &str| std::env::var(var).ok();
    let config = config::load(&paths.config_file(), &env);

    if cli.version {
        print_version(&paths, config.as_ref().ok());
        return EXIT_OK;
    }
    if let Err(e) = paths.create_all() {
        return fail(
            output,
            "twin",
            &format!(
                "cannot create twin's folders under {}: {e}; choose another place with --home DIR",
                paths.data_dir.display()
            ),
        );
    }

    let command = match cli.command {
        Some(c) => c,
        None if cli.batch => {
            return usage(
                output,
                "--batch needs a command such as status, models, chat or doctor (`twin --help` lists them)",
            );
        }
        None => return run_tui(paths, config),
    };
    let kind = command_name(&command);
    if let Command::Doctor = command {
        init_stderr_log(config.as_ref().ok());
        return batch::run(output, kind, "checking twin's setup", move |_| {
            Ok(doctor::run(&paths, &config, &doctor::TermInfo::detect()))
        });
    }
    let config = match config {
        Ok(c) => c,
        Err(e) => return config_error(output, kind, &e),
    };
    init_stderr_log(Some(&config));
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match command {
        Command::Ingest {
            paths: inputs,
            format,
            me,
        } => {
            let opts = match pipeline::Options::from_config(inputs, format.0, me, &config.config) {
                Ok(o) => o,
                Err(e) => return usage(output, &e),
            };
            batch::run(output, kind, "importing exports", move |ctx| {
                let store = Store::open(&paths.store_dir())?;
                pipeline::run(&store, &opts, ctx)
            })
        }
        Command::Contacts { merge, me, split } => {
            let opts = match pipeline::Options::from_config(
                Vec::new(),
                None,
                Vec::new(),
                &config.config,
            ) {
                Ok(o) => o,
                Err(e) => return usage(output, &e),
            };
            batch::run(output, kind, "reading contacts", move |ctx| {
                use crate::ingest::{contacts, identity, profile, windows};
                let store = Store::open(&paths.store_dir())?;
                let find = |q: &str| -> anyhow::Result<contacts::Contact> {
                    contacts::find(&store, q)?.ok_or_else(|| {
                        anyhow::anyhow!(
                            "no contact matches `{q}`; `twin contacts` lists names and ids"
                        )
                    })
                };
                if let Some(s) = split {
                    let r = contacts::split(&store, find(&s[0])?.id, &s[1])?;
                    if r.messages == 0 {
                        anyhow::bail!(
                            "{} wrote nothing as `{}`; `twin contacts` shows each contact's names",
                            s[0],
                            s[1]
                        );
                    }
                    windows::rebuild_stale(&store, opts.window_gap_ms, ctx)?;
                    profile::rebuild(&store, opts.zone)?;
                    return Ok(contacts::ContactsReport::new(&store, Some(r))?);
                }
                let pair = match (merge, me) {
                    (Some(m), _) => Some((find(&m[0])?.id, find(&m[1])?.id)),
                    (None, Some(name)) => Some((find(&name)?.id, identity::me_id())),
                    (None, None) => None,
                };
                let merged = match pair {
                    Some((from, into)) => {
                        let r = contacts::merge(&store, from, into)?;
                        windows::rebuild_stale(&store, opts.window_gap_ms, ctx)?;
                        profile::rebuild(&store, opts.zone)?;
                        Some(r)
                    }
                    None => None,
                };
                Ok(contacts::ContactsReport::new(&store, merged)?)
            })
        }
        Command::Demo => {
            let gap = config.config.ingest.window_gap_minutes * 60_000;
            batch::run(output, kind, "importing the demo twin", move |ctx| {
                let export = crate::ingest::demo::unpack(&paths.state_dir.join("demo"))?;
                let store = Store::open(&paths.store_dir())?;
                pipeline::run(&store, &crate::ingest::demo::options(export, gap), ctx)
            })
        }
        Command::Profile { rebuild } => {
            let zone = match Zone::parse(&config.config.ingest.timezone) {
                Ok(z) => z,
                Err(e) => return usage(output, &format!("ingest.timezone: {e}")),
            };
            batch::run(output, kind, "reading the style profile", move |_| {
                let store = Store::open(&paths.store_dir())?;
                Ok(match crate::ingest::profile::Profile::load(&store)? {
                    Some(p) if !rebuild => p,
                    _ => crate::ingest::profile::rebuild(&store, zone)?,
                })
            })
        }
        Command::Models => {
            let dir = config.models_dir(&paths);
            batch::run(output, kind, "reading the models", move |_| {
                Ok(crate::models::Report::gather(&dir)?)
            })
        }
        Command::Chat { message } => {
            let chat = &config.config.chat;
            let engine = EngineConfig::from_config(chat, &config.models_dir(&paths));
            let system = chat.system_prompt.clone();
            let input = match message {
                Some(m) => chat::Input::One(m),
                None => chat::Input::Lines(Box::new(std::io::BufReader::new(std::io::stdin()))),
            };
            batch::run(output, kind, "chatting", move |ctx| {
                chat::run(ctx, engine, &system, input)
            })
        }
        Command::Index { action } => {
            let models = config.models_dir(&paths);
            let cfg = config.config.clone();
            batch::run(output, kind, "building memories", move |ctx| {
                let store = Arc::new(Store::open(&paths.store_dir())?);
                let (mem, notes) = memory::open_configured(store, &cfg, &models)?;
                let (written, removed, unchanged) = match action {
                    Some(IndexAction::Rebuild { reembed }) => {
                        (mem.rebuild(reembed, Some(ctx))? as u64, 0, 0)
                    }
                    None => {
                        if let Some(old) = mem.model_mismatch() {
                            return Err(memory::MemoryError::ModelChanged {
                                stored: old,
                                current: mem.embedder().id().to_string(),
                            }
                            .into());
                        }
                        let r = memory::build::build(&mem, ctx)?;
                        (r.written, r.removed, r.unchanged)
                    }
                };
                let st = mem.state();
                Ok(memory::report::IndexReport {
                    memories: mem.len() as u64,
                    written,
                    removed,
                    unchanged_sources: unchanged,
                    vectors: mem.store().count(crate::store::Tree::Vectors)?,
                    model: st.model,
                    dim: st.dim,
                    notes,
                })
            })
        }
        Command::Memory { action } => {
            let models = config.models_dir(&paths);
            let cfg = config.config.clone();
            let chat_engine = EngineConfig::from_config(&config.config.chat, &models);
            batch::run(output, kind, "reading memories", move |ctx| {
                memory_command(&paths, &cfg, &models, chat_engine, action, ctx)
            })
        }
        Command::Status => batch::run(output, kind, "reading the store", move |_| {
            let store = Store::open(&paths.store_dir())?;
            Ok(StatusReport::gather(&paths, &config, &store)?)
        }),
        Command::Config { template: true } => {
            print_stdout(&config::template());
            EXIT_OK
        }
        Command::Config { template: false } => {
            batch::run(output, kind, "reading the config", move |_| {
                Ok(config::Report::from(&config))
            })
        }
        Command::Doctor | Command::Completions { .. } | Command::Man => {
            unreachable!("handled above")
        }
    }
}

/// Every `twin memory ...` command; one summary type so `batch::run` prints it.
fn memory_command(
    paths: &Paths,
    cfg: &config::Config,
    models: &std::path::Path,
    chat_engine: EngineConfig,
    action: MemoryAction,
    ctx: &crate::jobs::JobCtx,
) -> anyhow::Result<MemoryOutput> {
    use memory::report::*;
    let store = Arc::new(Store::open(&paths.store_dir())?);
    let (mem, notes) = memory::open_configured(store.clone(), cfg, models)?;
    let contact = |q: Option<String>| -> anyhow::Result<Option<u64>> {
        q.map(|q| {
            crate::ingest::contacts::find(&store, &q)?
                .map(|c| c.id)
                .ok_or_else(|| {
                    anyhow::anyhow!("no contact matches `{q}`; `twin contacts` lists them")
                })
        })
        .transpose()
    };
    let kind_of = |k: Option<String>| -> anyhow::Result<Vec<memory::MemoryKind>> {
        k.map(|k| {
            memory::MemoryKind::parse(&k).map(|k| vec![k]).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown kind `{k}`; one of episode, fact, preference, document, chat, summary"
                )
            })
        })
        .transpose()
        .map(Option::unwrap_or_default)
    };
    let day = |d: Option<String>, end: bool| -> anyhow::Result<Option<i64>> {
        d.map(|d| {
            let date = chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|_| anyhow::anyhow!("`{d}` is not a date; write YYYY-MM-DD"))?;
            let t = if end {
                date.and_hms_milli_opt(23, 59, 59, 999)
            } else {
                date.and_hms_opt(0, 0, 0)
            };
            Ok(t.expect("valid time").and_utc().timestamp_millis())
        })
        .transpose()
    };
    Ok(match action {
        MemoryAction::Search {
            query,
            k,
            contact: c,
            kind,
            since,
            until,
        } => {
            let q = memory::Query {
                text: query.clone(),
                k,
                contact: contact(c)?,
                kinds: kind_of(kind)?,
                since_ms: day(since, false)?,
                until_ms: day(until, true)?,
            };
            let hits = mem.search(&q)?;
            MemoryOutput::Search(SearchReport::new(&mem, &query, hits, notes))
        }
        MemoryAction::Show { id } => {
            let id = mem.resolve(&id)?;
            let m = mem.get(id)?.ok_or(memory::MemoryError::NotFound(id))?;
            MemoryOutput::Show(ShowReport::new(&mem, &m)?)
        }
        MemoryAction::List {
            kind,
            contact: c,
            limit,
        } => {
            let q = memory::Query {
                contact: contact(c)?,
                kinds: kind_of(kind)?,
                ..Default::default()
            };
            let names = Names::load(&mem);
            let list = mem.list(&q, limit)?;
            MemoryOutput::List(ListReport {
                total: mem.len(),
                memories: list
                    .iter()
                    .map(|m| MemoryView::new(&mem, &names, m))
                    .collect(),
                notes,
            })
        }
        MemoryAction::Forget { id } => {
            let id = mem.resolve(&id)?;
            let m = mem.forget(id)?;
            let names = Names::load(&mem);
            MemoryOutput::Change(ChangeReport {
                action: "forgot",
                excluded_sources: m
                    .provenance
                    .iter()
                    .filter(|p| p.message_key().is_some())
                    .count(),
                memory: MemoryView::new(&mem, &names, &m),
            })
        }
        MemoryAction::Pin { id, off } => {
            let id = mem.resolve(&id)?;
            let m = mem.set_pinned(id, !off)?;
            let names = Names::load(&mem);
            MemoryOutput::Change(ChangeReport {
                action: if off { "unpinned" } else { "pinned" },
                excluded_sources: 0,
                memory: MemoryView::new(&mem, &names, &m),
            })
        }
        MemoryAction::Edit { id, text, title } => {
            let id = mem.resolve(&id)?;
            let m = mem.edit(id, title, text)?;
            let names = Names::load(&mem);
            MemoryOutput::Change(ChangeReport {
                action: "edited",
                excluded_sources: 0,
                memory: MemoryView::new(&mem, &names, &m),
            })
        }
        MemoryAction::Compact => MemoryOutput::Compact(memory::lifecycle::compact(
            &mem,
            cfg.memory.compact_threshold as f32,
            cfg.memory.cleanup_below as f32,
            cfg.memory.half_life_days,
            Some(ctx),
        )?),
        MemoryAction::Topics => MemoryOutput::L1(L1Report {
            l1: memory::topics::compute(&mem, Some(ctx))?,
            show: "topics",
        }),
        MemoryAction::Bio => MemoryOutput::L1(L1Report {
            l1: memory::topics::compute(&mem, Some(ctx))?,
            show: "bio",
        }),
        MemoryAction::Extract { limit } => {
            let engine = crate::llm::engine::Engine::start(chat_engine);
            let me = crate::ingest::contacts::who_is_me(&store)?
                .name
                .unwrap_or_else(|| "the user".into());
            MemoryOutput::Extract(memory::extract::extract(&mem, &engine, &me, limit, ctx)?)
        }
    })
}

/// The summary of a `twin memory` command.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum MemoryOutput {
    Search(memory::report::SearchReport),
    Show(memory::report::ShowReport),
    List(memory::report::ListReport),
    Change(memory::report::ChangeReport),
    Compact(memory::lifecycle::CompactReport),
    L1(memory::report::L1Report),
    Extract(memory::extract::ExtractReport),
}

impl std::fmt::Display for MemoryOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryOutput::Search(r) => r.fmt(f),
            MemoryOutput::Show(r) => r.fmt(f),
            MemoryOutput::List(r) => r.fmt(f),
            MemoryOutput::Change(r) => r.fmt(f),
            MemoryOutput::Compact(r) => r.fmt(f),
            MemoryOutput::L1(r) => r.fmt(f),
            MemoryOutput::Extract(r) => r.fmt(f),
        }
    }
}

impl crate::jobs::Summary for MemoryOutput {}

/// `--format`: `auto` or one format.
#[derive(Debug, Clone, Copy)]
pub struct FormatArg(pub Option<Format>);

fn parse_format(s: &str) -> Result<FormatArg, String> {
    if s == "auto" {
        Ok(FormatArg(None))
    } else {
        s.parse().map(|f| FormatArg(Some(f)))
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Ingest { .. } => "ingest",
        Command::Demo => "ingest",
        Command::Contacts { .. } => "contacts",
        Command::Profile { .. } => "profile",
        Command::Index { .. } => "index",
        Command::Memory { .. } => "memory",
        Command::Status => "status",
        Command::Models => "models",
        Command::Chat { .. } => "chat",
        Command::Config { .. } => "config",
        Command::Doctor => "doctor",
        Command::Completions { .. } => "completions",
        Command::Man => "man",
    }
}

fn run_tui(paths: Paths, config: Result<Loaded, ConfigError>) -> i32 {
    let config = match config {
        Ok(c) => c,
        Err(e) => return config_error(Output::Human, "twin", &e),
    };
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return usage(
            Output::Human,
            "the TUI needs a terminal; for scripts use `twin --batch COMMAND`",
        );
    }
    let _log_guard = logging::init(
        logging::Sink::File(&paths.log_dir),
        &config.config.log.filter,
    );
    tracing::info!(
        "twin {} starting; folders from {}",
        env!("CARGO_PKG_VERSION"),
        paths.origin
    );
    let store = match Store::open(&paths.store_dir()) {
        Ok(s) => s,
        Err(e) => return fail(Output::Human, "twin", &e.to_string()),
    };
    match tui::run(paths.clone(), config, store) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!("{e:#}");
            fail(
                Output::Human,
                "twin",
                &format!("{e:#} (log: {})", paths.log_dir.join("twin.log").display()),
            )
        }
    }
}

fn init_stderr_log(config: Option<&Loaded>) {
    let filter = config
        .map(|c| c.config.log.filter.as_str())
        .unwrap_or("info");
    // Batch stdout is for JSON; logs go to stderr, quiet unless asked for.
    let filter = if std::env::var_os("TWIN_LOG").is_some() {
        filter
    } else {
        // PDF libraries log what twin already reports as a clear problem.
        "warn,lopdf=error,pdf_extract=error"
    };
    logging::init(logging::Sink::Stderr, filter);
}

fn print_version(paths: &Paths, config: Option<&Loaded>) {
    let models = config
        .map(|c| c.models_dir(paths))
        .unwrap_or_else(|| paths.default_models_dir());
    print_stdout(&format!(
        "twin {}\nconfig  {}\ndata    {}\nstate   {}\nlogs    {}\nmodels  {}\n(folders from {})\n",
        env!("CARGO_PKG_VERSION"),
        paths.config_dir.display(),
        paths.data_dir.display(),
        paths.state_dir.display(),
        paths.log_dir.display(),
        models.display(),
        paths.origin
    ));
}

fn config_error(output: Output, kind: &str, e: &ConfigError) -> i32 {
    if output == Output::Json {
        print_failed(kind, &e.to_string());
    }
    eprintln!("twin: {e}");
    EXIT_USAGE
}

fn usage(output: Output, msg: &str) -> i32 {
    if output == Output::Json {
        print_failed("twin", msg);
    }
    eprintln!("twin: {msg}");
    EXIT_USAGE
}

fn fail(output: Output, kind: &str, msg: &str) -> i32 {
    if output == Output::Json {
        print_failed(kind, msg);
    }
    eprintln!("twin: {msg}");
    EXIT_FAILED
}

/// A failure before any job started, in the same shape as a job's `failed` event.
fn print_failed(kind: &str, msg: &str) {
    print_stdout(&format!(
        "{}\n",
        serde_json::json!({"event": "failed", "job": kind, "error": msg})
    ));
}
