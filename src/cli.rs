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
use crate::jobs::Level;
use crate::llm::{EngineConfig, chat};
use crate::paths::Paths;
use crate::status::StatusReport;
use crate::store::{Store, StoreError};
use crate::{checkin, doctor, logging, memory, tui};

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

    /// Read the store's passphrase from the first line of FILE (for --batch and scripts)
    #[arg(long, global = true, env = "TWIN_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Read the store's passphrase from descriptor N, as an agent passes it (e.g. `3<file`)
    #[arg(long, global = true, env = "TWIN_PASSPHRASE_FD", value_name = "N")]
    pub passphrase_fd: Option<i32>,

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
        /// Talk as you talk to this contact: their style and a few real exchanges
        #[arg(long, value_name = "NAME")]
        contact: Option<String>,
    },
    /// Serve the twin as an OpenAI-compatible API: /v1/chat/completions and /v1/models
    Serve {
        /// Address to listen on; loopback unless --allow-remote
        #[arg(long, value_name = "HOST:PORT", default_value = crate::serve::DEFAULT_LISTEN)]
        listen: String,
        /// Listen on a non-loopback address (there is no authentication)
        #[arg(long)]
        allow_remote: bool,
    },
    /// Check-ins: deliver the due ones (from cron or a timer), list what is coming, snooze or dismiss one, edit the rules
    #[command(group(clap::ArgGroup::new("what").required(true).args(["due", "list", "snooze", "dismiss", "add_rule", "change_rule", "enable_rule", "disable_rule", "delete_rule"])))]
    Checkin {
        /// Deliver every check-in that is due now: one `checkin` line each, marked delivered
        #[arg(long)]
        due: bool,
        /// List upcoming check-ins and the latest history
        #[arg(long)]
        list: bool,
        /// Put this check-in off (ID from --list or a `checkin` line) for checkin.snooze_minutes
        #[arg(long, value_name = "ID")]
        snooze: Option<String>,
        /// Never deliver this check-in (again)
        #[arg(long, value_name = "ID")]
        dismiss: Option<String>,
        /// Snooze for this many minutes instead
        #[arg(long, value_name = "N", requires = "snooze")]
        minutes: Option<i64>,
        /// Act as if it were this time (RFC 3339, e.g. 2026-11-21T08:30:00+01:00)
        #[arg(long, value_name = "TIME", value_parser = parse_at)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// How many days ahead --list looks
        #[arg(long, value_name = "DAYS", default_value_t = 7, requires = "list")]
        days: i64,
        /// Add a rule to checkin.rules in config.toml ("weekdays 18:00", "cron 0 18 * * 1-5")
        #[arg(long, value_name = "RULE")]
        add_rule: Option<String>,
        /// Change this rule (as --list shows it) to the one given with --to
        #[arg(long, value_name = "RULE", requires = "to")]
        change_rule: Option<String>,
        /// The new form of the rule --change-rule names
        #[arg(long, value_name = "RULE", requires = "change_rule")]
        to: Option<String>,
        /// Switch a rule back on
        #[arg(long, value_name = "RULE")]
        enable_rule: Option<String>,
        /// Keep a rule but stop it (it moves to checkin.disabled_rules)
        #[arg(long, value_name = "RULE")]
        disable_rule: Option<String>,
        /// Delete a rule
        #[arg(long, value_name = "RULE")]
        delete_rule: Option<String>,
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
    /// Is it you? On held-out conversations, base vs adapter: perplexity of your replies, their style, memory QA and invented facts; writes a JSON + Markdown report
    Eval {
        /// The adapter to evaluate (default: the active one, else the newest)
        #[arg(long, value_name = "ID")]
        adapter: Option<String>,
        /// Held-out replies, memory questions and probes, at most (default: train.eval_limit)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// The trained adapters: list them, activate one for chat, deactivate, delete
    Adapters {
        #[command(subcommand)]
        action: Option<AdaptersAction>,
    },
    /// Transcribe audio files (voice notes: .opus, .ogg, .m4a, .aac, .mp3, .wav) with the whisper model
    Transcribe {
        /// Audio files; each is one job with its own `done` line
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// The effective configuration: every key, its value, default and where it came from
    Config {
        /// Print a commented config.toml with every key at its default
        #[arg(long)]
        template: bool,
    },
    /// Check folders, file modes, config, store, models, keymap, theme and terminal, and say how to fix problems
    Doctor,
    /// Create twin's folders and store; --encrypt makes the store encrypted at rest
    Init {
        /// Encrypt the store with a passphrase (asked on the terminal, or --passphrase-file/--passphrase-fd)
        #[arg(long)]
        encrypt: bool,
    },
    /// Encrypt the existing store with a passphrase (a new store is written and swapped in)
    Encrypt,
    /// Change the encrypted store's passphrase
    Rekey {
        /// Read the new passphrase from the first line of FILE
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        /// Read the new passphrase from descriptor N
        #[arg(long, value_name = "N")]
        new_passphrase_fd: Option<i32>,
    },
    /// Write everything in the store to DIR as a readable, diffable bundle (JSON lines per tree, manifest)
    Export {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Restore a bundle written by `export` into this (empty) home
    ImportBundle {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Forget a person everywhere: their messages, conversations only with them, aliases, activity, memories
    Forget {
        #[command(subcommand)]
        what: ForgetWhat,
    },
    /// Privacy settings kept in the store: who never goes into a training set
    Privacy {
        #[command(subcommand)]
        action: PrivacyAction,
    },
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
pub enum DatasetAction {
    /// Build a training set from the stored conversations with the base model's template and tokenizer
    Build {
        /// The base model whose tokenizer is used (default: train.base, else chat.model)
        #[arg(long, value_name = "GGUF")]
        base: Option<String>,
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

#[derive(Debug, Subcommand)]
pub enum ForgetWhat {
    /// Forget one contact (a name, number, address or id as `twin contacts` shows)
    Contact {
        #[arg(value_name = "NAME")]
        name: String,
        /// Only say what would go
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation (a terminal asks; --batch never does)
        #[arg(long)]
        yes: bool,
        /// Lift a forget's tombstones: later imports bring NAME's messages back
        #[arg(long, conflicts_with_all = ["dry_run", "yes"])]
        undo: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrivacyAction {
    /// Contacts whose conversations never go into a training set (with privacy.never_train in config)
    NeverTrain {
        #[command(subcommand)]
        action: NeverTrainAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum NeverTrainAction {
    /// Never train on CONTACT (a name, number, address or id as `twin contacts` shows)
    Add {
        #[arg(value_name = "CONTACT")]
        contact: String,
    },
    /// Train on CONTACT again
    Remove {
        #[arg(value_name = "CONTACT")]
        contact: String,
    },
    /// Everyone never trained on, from the store and from config
    List,
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
    // Everything twin creates from here on is private to the user.
    crate::paths::private_umask();
    crate::passphrase::install(crate::passphrase::Spec::from_args(
        cli.passphrase_file.clone(),
        cli.passphrase_fd,
        cli.batch,
    ));
    run(cli, home_from_env)
}

fn run(cli: Cli, home_from_env: bool) -> i32 {
    // Forgetting a person reaches into memory too.
    crate::privacy::forget::register(Box::new(memory::ForgetCascade));
    crate::privacy::forget::register(Box::new(crate::train::registry::ForgetCascade));
    let (pass_file, pass_fd) = (cli.passphrase_file.clone(), cli.passphrase_fd);
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
    if let Ok(c) = &config {
        crate::logging::set_content(c.config.log.content);
    }
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
    if let Some(w) = crate::privacy::exposed_warning(&paths) {
        tracing::warn!("{w}");
    }
    let kdf = config.config.privacy.kdf();
    let batch_mode = output == Output::Json;
    match command {
        Command::Init { encrypt } => {
            let pass = if encrypt {
                match new_passphrase(
                    batch_mode,
                    pass_file,
                    pass_fd,
                    "new passphrase for twin's store",
                ) {
                    Ok(p) => Some(p),
                    Err(e) => return fail(output, kind, &e),
                }
            } else {
                None
            };
            batch::run(output, kind, "creating twin's store", move |_| {
                let dir = paths.store_dir();
                let store = match &pass {
                    Some(p) => crate::store::convert::init_encrypted(&dir, p, kdf)?,
                    None => Store::open(&dir)?,
                };
                Ok(crate::store::convert::summary(&store)?)
            })
        }
        Command::Encrypt => {
            let pass = match new_passphrase(
                batch_mode,
                pass_file,
                pass_fd,
                "new passphrase for twin's store",
            ) {
                Ok(p) => p,
                Err(e) => return fail(output, kind, &e),
            };
            batch::run(output, kind, "encrypting the store", move |ctx| {
                let report = crate::store::convert::encrypt(&paths.store_dir(), &pass, kdf, |n| {
                    ctx.progress(n, None, "records");
                    Ok(())
                })?;
                // What training wrote beside the store, and the plain index dump.
                let store = Store::open_with(&paths.store_dir(), Some(&pass))?;
                let beside = crate::privacy::seal_beside(&paths, &store)?;
                ctx.log(
                    crate::jobs::Level::Info,
                    format!(
                        "sealed {} training files beside the store{}",
                        beside.files_sealed,
                        if beside.index_wiped {
                            "; wiped the plain memory index (kept in memory from now on)"
                        } else {
                            ""
                        }
                    ),
                );
                Ok(report)
            })
        }
        Command::Rekey {
            new_passphrase_file,
            new_passphrase_fd,
        } => {
            let old = match crate::store::crypt::ask_passphrase() {
                Some(Ok(p)) => p,
                Some(Err(e)) => return fail(output, kind, &e),
                None => return fail(output, kind, "no passphrase source"),
            };
            let new = match new_passphrase(
                batch_mode,
                new_passphrase_file,
                new_passphrase_fd,
                "the new passphrase (--new-passphrase-file)",
            ) {
                Ok(p) => p,
                Err(e) => return fail(output, kind, &e),
            };
            batch::run(output, kind, "changing the passphrase", move |_| {
                let dir = paths.store_dir();
                crate::store::convert::rekey(&dir, &old, &new, kdf)?;
                let store = Store::open_with(&dir, Some(&new))?;
                Ok(crate::store::convert::summary(&store)?)
            })
        }
        Command::Export { dir } => batch::run(output, kind, "exporting everything", move |ctx| {
            let store = Store::open(&paths.store_dir())?;
            crate::privacy::bundle::export(&store, &dir, ctx)
        }),
        Command::ImportBundle { dir } => {
            batch::run(output, kind, "restoring a bundle", move |ctx| {
                let store = Store::open(&paths.store_dir())?;
                crate::privacy::bundle::import(&store, &dir, ctx)
            })
        }
        Command::Forget {
            what: ForgetWhat::Contact {
                name, undo: true, ..
            },
        } => batch::run(output, kind, "lifting a forget", move |_| {
            let store = Store::open(&paths.store_dir())?;
            Ok(crate::privacy::tombstone::undo(&store, &name)?)
        }),
        Command::Privacy {
            action: PrivacyAction::NeverTrain { action },
        } => {
            let listed = config.config.privacy.never_train.clone();
            let file = paths.config_file().display().to_string();
            batch::run(output, kind, "never-train list", move |_| {
                use crate::privacy::never_train;
                let store = Store::open(&paths.store_dir())?;
                Ok(match action {
                    NeverTrainAction::Add { contact } => {
                        never_train::add(&store, &contact, &listed)?
                    }
                    NeverTrainAction::Remove { contact } => {
                        never_train::remove(&store, &contact, &listed, &file)?
                    }
                    NeverTrainAction::List => never_train::report(&store, &listed, None)?,
                })
            })
        }
        Command::Forget {
            what: ForgetWhat::Contact {
                name, dry_run, yes, ..
            },
        } => {
            let zone = match Zone::parse(&config.config.ingest.timezone) {
                Ok(z) => z,
                Err(e) => return usage(output, &format!("ingest.timezone: {e}")),
            };
            let gap = config.config.ingest.window_gap_minutes * 60_000;
            if !batch_mode && !dry_run && !yes {
                match confirm_forget(&paths, &name, zone) {
                    Ok(true) => {}
                    Ok(false) => {
                        eprintln!("twin: nothing was forgotten");
                        return EXIT_OK;
                    }
                    Err(e) => return fail(output, kind, &e),
                }
            }
            batch::run(output, kind, "forgetting a contact", move |ctx| {
                let store = Store::open(&paths.store_dir())?;
                let contact = crate::ingest::contacts::find(&store, &name)?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "no contact matches `{name}`; `twin contacts` lists names and ids"
                    )
                })?;
                if dry_run {
                    crate::privacy::forget::plan(&store, &contact, zone)
                } else {
                    crate::privacy::forget::apply(&store, &contact, zone, gap, ctx)
                }
            })
        }
        Command::Ingest {
            paths: inputs,
            format,
            me,
        } => {
            let opts = match pipeline::Options::from_config(inputs, format.0, me, &config.config) {
                Ok(o) => o.with_voice(&config.config, &paths),
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
        Command::Chat { message, contact } => {
            let chat = &config.config.chat;
            let opts = chat::Options {
                engine: chat::ChatEngine::from_config(
                    chat,
                    EngineConfig::from_config(chat, &config.models_dir(&paths)),
                ),
                system_prompt: chat.system_prompt.clone(),
                store_dir: Some(paths.store_dir()),
                contact,
                memory: Some((config.config.clone(), config.models_dir(&paths))),
            };
            let input = match message {
                Some(m) => chat::Input::One(m),
                None => chat::Input::Lines(Box::new(std::io::BufReader::new(std::io::stdin()))),
            };
            batch::run(output, kind, "chatting", move |ctx| {
                chat::run(ctx, opts, input)
            })
        }
        Command::Serve {
            listen,
            allow_remote,
        } => {
            let addr = match crate::serve::check_listen(&listen, allow_remote) {
                Ok(a) => a,
                Err(e) => return usage(output, &e.to_string()),
            };
            let chat = &config.config.chat;
            let engine = chat::ChatEngine::from_config(
                chat,
                EngineConfig::from_config(chat, &config.models_dir(&paths)),
            );
            // The twin's persona, when the store is free to read.
            let system = match Store::open(&paths.store_dir()) {
                Ok(store) => chat::system_for(&store, &chat.system_prompt),
                Err(e) => {
                    tracing::warn!("{e}; serving without your profile");
                    chat.system_prompt.clone()
                }
            };
            batch::run(output, kind, "serving the twin", move |ctx| {
                crate::serve::run(ctx, addr, engine, system)
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
        Command::Checkin {
            due,
            list,
            snooze,
            dismiss,
            minutes,
            at,
            days,
            add_rule,
            change_rule,
            to,
            enable_rule,
            disable_rule,
            delete_rule,
        } => {
            use checkin::rules::RuleEdit;
            let edit = add_rule
                .map(RuleEdit::Add)
                .or(change_rule
                    .zip(to)
                    .map(|(old, new)| RuleEdit::Change { old, new }))
                .or(enable_rule.map(RuleEdit::Enable))
                .or(disable_rule.map(RuleEdit::Disable))
                .or(delete_rule.map(RuleEdit::Delete));
            if let Some(edit) = edit {
                // Works while the rules are broken: this is how they get fixed.
                let file = config.file.clone();
                return batch::run(output, kind, "editing the check-in rules", move |_ctx| {
                    let env = |k: &str| std::env::var(k).ok();
                    let new =
                        checkin::rules::save(&file, &edit, &env).map_err(anyhow::Error::msg)?;
                    let mut retired = 0;
                    let mut problem = None;
                    match checkin::Settings::from_config(&new) {
                        Ok(settings) => {
                            if let Some(rule) = edit.retired() {
                                // The store may be held by the TUI: then it retires them itself on its next edit.
                                if let Ok(store) = open_for_checkin(&paths.store_dir()) {
                                    retired = checkin::Scheduler::new(
                                        &store,
                                        &settings,
                                        &checkin::SystemClock,
                                    )
                                    .retire_rule(rule)?;
                                }
                            }
                        }
                        Err(e) => problem = Some(e),
                    }
                    let rows = checkin::rules::rows(&new.checkin);
                    let human = format!(
                        "{} in {}\n{}{}",
                        edit.describe(),
                        file.display(),
                        rows.iter()
                            .map(|r| format!(
                                "  {:<28} {}",
                                r.rule,
                                if r.problem.is_some() {
                                    "broken"
                                } else if r.enabled {
                                    "on"
                                } else {
                                    "off"
                                }
                            ))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        problem
                            .as_ref()
                            .map(|p| format!("\ncheck-ins stay off: {p}"))
                            .unwrap_or_default()
                    );
                    Ok(Printed(
                        serde_json::json!({
                            "edit": edit.describe(),
                            "config": file,
                            "rules": rows,
                            "retired": retired,
                            "problem": problem,
                        }),
                        human,
                    ))
                });
            }
            let settings = match checkin::Settings::from_config(&config.config) {
                Ok(s) => s,
                Err(e) => return usage(output, &e),
            };
            let model =
                checkin::job::model_for(&settings, &config.config.chat, &config.models_dir(&paths));
            let zone_name = if config.config.checkin.timezone.trim().is_empty() {
                config.config.ingest.timezone.clone()
            } else {
                config.config.checkin.timezone.clone()
            };
            let title = if due {
                "delivering due check-ins"
            } else {
                "reading check-ins"
            };
            batch::run(output, kind, title, move |ctx| {
                let clock: Box<dyn checkin::Clock> = match at {
                    Some(t) => Box::new(checkin::FakeClock::new(t)),
                    None => Box::new(checkin::SystemClock),
                };
                let store = open_for_checkin(&paths.store_dir())?;
                let sched = checkin::Scheduler::new(&store, &settings, clock.as_ref());
                let changed = |c: checkin::Checkin| -> anyhow::Result<checkin::job::Changed> {
                    Ok(checkin::job::Changed {
                        checkin: checkin::job::Listed::of(&c, &settings, false),
                    })
                };
                if due {
                    if !settings.enabled {
                        ctx.log(
                            Level::Warn,
                            "check-ins are off (checkin.enabled = false); nothing is delivered",
                        );
                    }
                    let mut composer = checkin::job::Composer::new(model);
                    let report = checkin::job::deliver_due(
                        &store,
                        &settings,
                        clock.as_ref(),
                        &mut composer,
                        ctx,
                    )?;
                    return Ok(Printed(serde_json::to_value(&report)?, report.to_string()));
                }
                if let Some(id) = snooze {
                    let c = sched.snooze(&id, minutes)?;
                    let r = changed(c)?;
                    return Ok(Printed(serde_json::to_value(&r)?, r.to_string()));
                }
                if let Some(id) = dismiss {
                    let c = sched.dismiss(&id)?;
                    let r = changed(c)?;
                    return Ok(Printed(serde_json::to_value(&r)?, r.to_string()));
                }
                debug_assert!(list);
                let r = checkin::job::list(&store, &settings, clock.as_ref(), &zone_name, days)?;
                Ok(Printed(serde_json::to_value(&r)?, r.to_string()))
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
        Command::Eval { adapter, limit } => {
            let setup = match train_setup(&config, &paths, None, None) {
                Ok(s) => s,
                Err(e) => return usage(output, &e),
            };
            let t = &config.config.train;
            let opts = crate::train::eval::Options {
                adapter,
                limit: limit.map_or(t.eval_limit.max(1) as usize, |n| n as usize),
                reply_tokens: t.eval_reply_tokens.clamp(8, 4096) as u32,
                engine: EngineConfig::from_config(&config.config.chat, &config.models_dir(&paths)),
            };
            batch::run(output, kind, "evaluating the twin", move |ctx| {
                let store = Store::open(&paths.store_dir())?;
                crate::train::eval::eval(&store, &setup, &opts, ctx)
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
        Command::Transcribe { files } => {
            let settings = crate::voice::Settings::from_config(&config.config, &paths);
            let loaded = std::sync::Arc::new(std::sync::Mutex::new(None));
            let mut code = EXIT_OK;
            for file in files {
                let (settings, loaded) = (settings.clone(), loaded.clone());
                let title = format!("transcribing {}", file.display());
                let c = batch::run(output, kind, &title, move |ctx| {
                    crate::voice::transcribe_file(&file, &settings, &loaded, ctx)
                });
                code = code.max(c);
            }
            code
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
            let (m, stale_adapters) = mem.forget_marking(id)?;
            let names = Names::load(&mem);
            MemoryOutput::Change(ChangeReport {
                action: "forgot",
                stale_adapters,
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
                stale_adapters: Vec::new(),
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
                stale_adapters: Vec::new(),
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

/// A summary already turned into JSON and text (one job with several shapes).
struct Printed(serde_json::Value, String);

impl serde::Serialize for Printed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl std::fmt::Display for Printed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl crate::jobs::Summary for Printed {}

/// `--at`: an RFC 3339 time.
fn parse_at(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 time ({e}); write e.g. 2026-11-21T08:30:00+01:00")
        })
}

/// Open the store for a check-in command; while the TUI holds it, say that the
/// TUI delivers check-ins itself.
fn open_for_checkin(dir: &std::path::Path) -> anyhow::Result<Store> {
    match Store::open(dir) {
        Err(StoreError::InUse {
            pid,
            holder: Some(h),
            ..
        }) if h == "tui" => Err(anyhow::anyhow!(
            "the twin TUI{} has the store open and delivers check-ins itself while it runs (badge, toast and a desktop notification); use its Check-ins view, or run this again once it is closed",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        )),
        other => Ok(other?),
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
        Command::Index { .. } => "index",
        Command::Memory { .. } => "memory",
        Command::Status => "status",
        Command::Models => "models",
        Command::Chat { .. } => "chat",
        Command::Transcribe { .. } => "transcribe",
        Command::Serve { .. } => "serve",
        Command::Config { .. } => "config",
        Command::Checkin { .. } => "checkin",
        Command::Dataset { .. } => "dataset",
        Command::Train { .. } => "train",
        Command::Adapters { .. } => "adapters",
        Command::Eval { .. } => "eval",
        Command::Doctor => "doctor",
        Command::Init { .. } => "init",
        Command::Encrypt => "encrypt",
        Command::Rekey { .. } => "rekey",
        Command::Export { .. } => "export",
        Command::ImportBundle { .. } => "import-bundle",
        Command::Forget { .. } => "forget",
        Command::Privacy { .. } => "privacy",
        Command::Completions { .. } => "completions",
        Command::Man => "man",
    }
}

/// A new passphrase: from the file or descriptor given, else (not in --batch)
/// asked twice on the terminal.
fn new_passphrase(
    batch: bool,
    file: Option<PathBuf>,
    fd: Option<i32>,
    what: &str,
) -> Result<crate::store::Passphrase, String> {
    use crate::passphrase::{Spec, prompt_new_tty, read};
    match Spec::from_args(file, fd, batch) {
        Spec::Prompt => prompt_new_tty(what),
        Spec::None => Err(format!(
            "{what}: --batch reads it from --passphrase-file FILE or --passphrase-fd N"
        )),
        spec => read(&spec, what),
    }
}

/// Show what forgetting `name` removes and ask on the terminal.
fn confirm_forget(paths: &Paths, name: &str, zone: Zone) -> Result<bool, String> {
    use std::io::{BufRead, Write};
    let plan = (|| -> anyhow::Result<_> {
        let store = Store::open(&paths.store_dir())?;
        let c = crate::ingest::contacts::find(&store, name)?.ok_or_else(|| {
            anyhow::anyhow!("no contact matches `{name}`; `twin contacts` lists names and ids")
        })?;
        crate::privacy::forget::plan(&store, &c, zone)
    })()
    .map_err(|e| format!("{e:#}"))?;
    let mut err = std::io::stderr();
    let _ = writeln!(err, "{plan}");
    let _ = write!(err, "forget {} for good? [y/N] ", plan.contact);
    let _ = err.flush();
    let tty = std::fs::File::open("/dev/tty")
        .map_err(|e| format!("no terminal to confirm on ({e}); add --yes, or use --batch"))?;
    let mut answer = String::new();
    let _ = std::io::BufReader::new(tty).read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
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
    crate::logging::set_content(config.config.log.content);
    let _log_guard = logging::init(
        logging::Sink::File(&paths.log_dir),
        &config.config.log.filter,
    );
    // (the TUI shows a warning about exposed files in its status bar)
    tracing::info!(
        "twin {} starting; folders from {}",
        env!("CARGO_PKG_VERSION"),
        paths.origin
    );
    let store = match Store::open_as(&paths.store_dir(), "tui") {
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
        "warn,lopdf=error,pdf_extract=error,symphonia_core=off,symphonia_format_ogg=off"
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
