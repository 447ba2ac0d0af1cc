//! The command line: `twin` opens the TUI, `twin --batch COMMAND` runs headless.

use std::io::IsTerminal;
use std::path::PathBuf;

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
use crate::{doctor, logging, tui};

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
    /// Training sets cut from your conversations (`dataset build` makes one for `twin train`)
    Dataset {
        #[command(subcommand)]
        action: DatasetAction,
    },
    /// Fine-tune a LoRA adapter on the latest training set (see [train] in `twin config`)
    Train {
        /// The base model: a .gguf file name in the models folder or a path (default: train.base, else chat.model)
        #[arg(long, value_name = "GGUF")]
        base: Option<String>,
        /// Optimizer steps (default: train.steps)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        steps: Option<u64>,
        /// Continue the last stopped run from its last checkpoint
        #[arg(long)]
        resume: bool,
    },
    /// The trained adapters: list them, activate one for chat, deactivate, delete
    Adapters {
        #[command(subcommand)]
        action: Option<AdaptersAction>,
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
pub enum DatasetAction {
    /// Build a training set from the stored conversations with the base model's template and tokenizer
    Build {
        /// The base model whose tokenizer is used (default: train.base, else chat.model)
        #[arg(long, value_name = "GGUF")]
        base: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdaptersAction {
    /// Every adapter with its provenance (the default)
    List,
    /// Chat with adapter ID
    Activate { id: String },
    /// Chat with the bare model
    Deactivate,
    /// Forget adapter ID and delete its file
    Delete { id: String },
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
        Command::Dataset {
            action: DatasetAction::Build { base },
        } => {
            let setup = match train_setup(&config, &paths, base, None) {
                Ok(s) => s,
                Err(e) => return usage(output, &e),
            };
            batch::run(output, kind, "building the training set", move |ctx| {
                let store = Store::open(&paths.store_dir())?;
                crate::train::run::build_dataset(&store, &setup, ctx)
            })
        }
        Command::Train {
            base,
            steps,
            resume,
        } => {
            let setup = match train_setup(&config, &paths, base, steps) {
                Ok(s) => s,
                Err(e) => return usage(output, &e),
            };
            batch::run(output, kind, "training a LoRA adapter", move |ctx| {
                let store = Store::open(&paths.store_dir())?;
                crate::train::run::train(&store, &setup, resume, ctx)
            })
        }
        Command::Adapters { action } => {
            use crate::train::run::AdaptersCmd;
            let cmd = match action.unwrap_or(AdaptersAction::List) {
                AdaptersAction::List => AdaptersCmd::List,
                AdaptersAction::Activate { id } => AdaptersCmd::Activate(id),
                AdaptersAction::Deactivate => AdaptersCmd::Deactivate,
                AdaptersAction::Delete { id } => AdaptersCmd::Delete(id),
            };
            batch::run(output, kind, "reading the adapters", move |_| {
                let store = Store::open(&paths.store_dir())?;
                crate::train::run::adapters(&store, &cmd)
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
        Command::Status => "status",
        Command::Models => "models",
        Command::Chat { .. } => "chat",
        Command::Config { .. } => "config",
        Command::Dataset { .. } => "dataset",
        Command::Train { .. } => "train",
        Command::Adapters { .. } => "adapters",
        Command::Doctor => "doctor",
        Command::Completions { .. } => "completions",
        Command::Man => "man",
    }
}

/// `[train]` with the command line's overrides.
fn train_setup(
    config: &Loaded,
    paths: &Paths,
    base: Option<String>,
    steps: Option<u64>,
) -> Result<crate::train::run::Setup, String> {
    let mut c = config.config.clone();
    if let Some(b) = base {
        c.train.base = b;
    }
    if let Some(n) = steps {
        c.train.steps = n.min(i64::MAX as u64) as i64;
    }
    crate::train::run::Setup::new(&c, paths, &config.models_dir(paths))
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
