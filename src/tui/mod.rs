//! The terminal front-end: panes for ingest, memory, training and chat, a status
//! bar, a help overlay generated from the live keymap. It draws only when
//! something changed, so an idle twin uses no CPU and sends nothing over SSH.

pub mod complete;
pub mod keymap;
pub mod osc52;
pub mod panes;
pub mod terminal;
pub mod theme;
pub mod ui;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyEventKind, MouseButton, MouseEventKind};
use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::{self, Action, Effect, LayoutMode, State};
use crate::checkin;
use crate::config::Loaded;
use crate::diag::Diagnostic;
use crate::ingest::{contacts, demo, identity, overview, pipeline, profile, windows};
use crate::jobs::{Jobs, Level};
use crate::llm::{EngineConfig, chat, sessions};
use crate::memory::{self, Memories};
use crate::paths::Paths;
use crate::status::StatusReport;
use crate::store::Store;
use keymap::{Key, Keymap, Mode, Resolved};
use theme::{TermEnv, Theme};

/// The shortest time between two frames.
const FRAME: Duration = Duration::from_millis(16);

/// A search starts once typing has paused this long.
const SEARCH_DEBOUNCE: Duration = Duration::from_millis(150);

/// Load the keymap and theme the config names, with their warnings.
pub fn load_look(
    paths: &Paths,
    config: &Loaded,
    term: &TermEnv,
) -> (Keymap, Theme, Vec<Diagnostic>) {
    let (keymap, mut diags) =
        Keymap::load(&config.config.ui.keymap, &paths.config_dir.join("keymaps"));
    let (name, depth, _) = term.choose(&config.config.ui.theme);
    let (theme, theme_diags) = Theme::load(&name, &paths.config_dir.join("themes"), depth);
    diags.extend(theme_diags);
    (keymap, theme, diags)
}

/// Run the TUI until the user quits or the terminal goes away.
pub fn run(paths: Paths, config: Loaded, store: Store) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(event_loop(paths, config, store));
    // Quitting must not wait for blocking work that ignores cancellation (the
    // embedding model loading, a generation between tokens): give it a moment,
    // then let the process end; the terminal is already restored.
    runtime.shutdown_timeout(Duration::from_millis(300));
    result
}

/// What performing effects needs.
struct Ctx {
    paths: Paths,
    config: Loaded,
    store: Arc<Store>,
    jobs: Jobs,
    /// The chat engine, kept across turns (the model loads on the first one).
    chat: Arc<chat::ChatEngine>,
    /// `[checkin]`, or why it is unusable (check-ins are off then); the rule
    /// editor replaces it.
    checkin: std::sync::Mutex<CheckinSetup>,
    /// The store's memory, opened once in the background and kept for the session.
    memory: Arc<OnceLock<Arc<Memories>>>,
    /// Actions from work done off the event loop (reads, memory changes).
    actions: mpsc::UnboundedSender<Action>,
    /// The newest memory list request: a debounced one that is no longer newest is skipped.
    memory_seq: Arc<AtomicU64>,
    /// Set to stop the push-to-talk recording (a new one gets a new flag).
    ptt_stop: std::sync::Mutex<Arc<std::sync::atomic::AtomicBool>>,
    /// The whisper model, loaded by the first push-to-talk and kept.
    voice_model: Arc<std::sync::Mutex<Option<crate::voice::Transcriber>>>,
}

/// `[checkin]` as written and as parsed.
struct CheckinSetup {
    config: crate::config::CheckinConfig,
    settings: Result<Arc<checkin::Settings>, String>,
}

impl CheckinSetup {
    fn of(config: &crate::config::Config) -> CheckinSetup {
        CheckinSetup {
            config: config.checkin.clone(),
            settings: checkin::Settings::from_config(config).map(Arc::new),
        }
    }
}

impl Ctx {
    fn checkin_settings(&self) -> Result<Arc<checkin::Settings>, String> {
        self.checkin.lock().expect("checkin lock").settings.clone()
    }
}

/// The longest the check-in timer sleeps before it looks again (a laptop that
/// slept, a clock that was changed); it is otherwise set to the next due time.
const CHECKIN_TIMER_MAX: Duration = Duration::from_secs(3600);

async fn event_loop(paths: Paths, config: Loaded, store: Store) -> anyhow::Result<()> {
    let (keymap, theme, diags) = load_look(&paths, &config, &TermEnv::from_env());
    let mut state = State::new(LayoutMode::from_config(&config.config.ui.layout));
    for d in config.warnings.iter().chain(&diags) {
        tracing::warn!("{d}");
        state.notify(Level::Warn, d.to_string());
    }
    if let Some(w) = crate::privacy::exposed_warning(&paths) {
        state.notify(Level::Warn, w);
    }
    state.overview = Some(StatusReport::gather(&paths, &config, &store)?);
    state.ingest = Some(overview::gather(&store)?);
    state.training = Some(crate::train::registry::overview(&store)?);
    state.eval_report = crate::train::eval::latest(&crate::train::run::Setup::runs_dir(&paths));
    let (jobs, mut job_events) = Jobs::new();
    let engine = EngineConfig::from_config(&config.config.chat, &config.models_dir(&paths));
    state.chat.model = Some(engine.model.clone());
    // chat.adapter, else the adapter activated with `twin adapters activate`
    // (as `twin chat` does) when it was trained on this chat model.
    state.chat.adapter = engine.adapter.clone().or_else(|| {
        state
            .training
            .as_ref()?
            .adapters
            .iter()
            .find(|a| a.active && a.base == engine.model)
            .map(|a| a.path.clone())
    });
    if config.config.chat.engine == "openai" {
        state.chat.remote = Some(config.config.chat.base_url.clone());
    }
    let chat_engine = Arc::new(chat::ChatEngine::from_config(&config.config.chat, engine));
    let checkin = CheckinSetup::of(&config.config);
    if let Err(e) = &checkin.settings {
        state.notify(
            Level::Warn,
            format!("check-ins are off: {e} (C opens the Check-ins view to fix the rules)"),
        );
    }
    let (actions, mut background) = mpsc::unbounded_channel();
    let ctx = Ctx {
        paths,
        config,
        store: Arc::new(store),
        jobs,
        chat: chat_engine,
        checkin: std::sync::Mutex::new(checkin),
        memory: Arc::new(OnceLock::new()),
        actions,
        memory_seq: Arc::new(AtomicU64::new(0)),
        ptt_stop: Default::default(),
        voice_model: Default::default(),
    };
    // ALSA would print its complaints (no sound card over SSH) onto the screen.
    crate::voice::mic::quiet_alsa();
    perform(Effect::LoadMemory, &ctx);
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let _guard = terminal::TerminalGuard::enter(ctx.config.config.ui.mouse)?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let size = term.size()?;
    state.size = (size.width, size.height);
    let mut events = EventStream::new();
    let mut pending_keys: Vec<Key> = Vec::new();
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    // Catch up on check-ins that fell due while twin was closed.
    let mut queue = VecDeque::from([Action::CheckinTick]);
    while let Some(action) = queue.pop_front() {
        for effect in app::update(&mut state, action) {
            queue.extend(perform(effect, &ctx));
        }
    }

    loop {
        // Sleep until the next check-in is due: no polling in between.
        let checkin_timer = state.checkins.next_wake_ms.map(|ms| {
            let left = ms - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(left.max(0) as u64).min(CHECKIN_TIMER_MAX)
        });
        let view = ui::View {
            theme: &theme,
            keymap: &keymap,
        };
        let action = tokio::select! {
            biased;
            _ = tokio::time::sleep_until((last_draw + FRAME).into()), if dirty => {
                if let Err(e) = draw(&mut term, &state, &view) {
                    // The terminal is gone (an SSH drop): nothing left to draw on.
                    tracing::warn!("drawing failed, leaving: {e}");
                    break;
                }
                dirty = false;
                last_draw = Instant::now();
                continue;
            }
            _ = tokio::time::sleep(checkin_timer.unwrap_or_default()), if checkin_timer.is_some() && !state.checkins.running => {
                state.checkins.next_wake_ms = None;
                Some(Action::CheckinTick)
            }
            _ = hangup.recv() => { tracing::info!("SIGHUP: the terminal went away"); Some(Action::Quit) }
            _ = terminate.recv() => { tracing::info!("SIGTERM"); Some(Action::Quit) }
            _ = interrupt.recv() => Some(Action::Quit),
            ev = job_events.recv() => ev.map(Action::Job),
            a = background.recv() => a,
            ev = events.next() => match ev {
                Some(Ok(ev)) => terminal_action(&ev, &state, &view, &keymap, &mut pending_keys),
                Some(Err(e)) => { tracing::warn!("terminal input failed, leaving: {e}"); Some(Action::Quit) }
                None => Some(Action::Quit),
            },
        };
        let keys_shown = keymap::keys_to_string(&pending_keys);
        if keys_shown != state.pending_keys {
            state.pending_keys = keys_shown;
            dirty = true;
        }
        let Some(action) = action else { continue };
        dirty = true;
        let mut queue = VecDeque::from([action]);
        while let Some(action) = queue.pop_front() {
            for effect in app::update(&mut state, action) {
                queue.extend(perform(effect, &ctx));
            }
        }
        if state.quit {
            break;
        }
    }
    ctx.jobs.cancel_all();
    // Work still running off the loop (memory opening, a composing check-in)
    // may hold the store past this point: make what the session wrote durable
    // now, since quitting does not wait for that work.
    if let Err(e) = ctx.store.flush() {
        tracing::warn!("store not flushed: {e}");
    }
    Ok(())
}

/// Change contacts in a job, then rebuild the windows and the profile they feed.
fn contacts_job(
    ctx: &Ctx,
    title: &str,
    change: impl FnOnce(&Store) -> Result<contacts::MergeReport, crate::store::StoreError>
    + Send
    + 'static,
) -> Vec<Action> {
    let opts =
        match pipeline::Options::from_config(Vec::new(), None, Vec::new(), &ctx.config.config) {
            Ok(o) => o,
            Err(e) => {
                return vec![Action::Notify(app::Notification {
                    level: Level::Error,
                    text: e,
                })];
            }
        };
    let store = ctx.store.clone();
    ctx.jobs.spawn_blocking("contacts", title, move |job| {
        let report = change(&store)?;
        windows::rebuild_stale(&store, opts.window_gap_ms, job)?;
        profile::rebuild(&store, opts.zone)?;
        Ok(report)
    });
    Vec::new()
}

/// Carry out an effect; the actions it yields go back into `update`.
fn perform(effect: Effect, ctx: &Ctx) -> Vec<Action> {
    let notify = |level, text: String| vec![Action::Notify(app::Notification { level, text })];
    match effect {
        Effect::Quit => {
            ctx.jobs.cancel_all();
            Vec::new()
        }
        Effect::CancelJob(id) => {
            ctx.jobs.cancel(id);
            Vec::new()
        }
        Effect::RefreshOverview => {
            let status = StatusReport::gather(&ctx.paths, &ctx.config, &ctx.store);
            let ingest = overview::gather(&ctx.store);
            let training = crate::train::registry::overview(&ctx.store);
            let eval = crate::train::eval::latest(&crate::train::run::Setup::runs_dir(&ctx.paths));
            match (status, ingest, training) {
                (Ok(s), Ok(i), Ok(t)) => vec![
                    Action::Overview(Box::new(s)),
                    Action::IngestOverview(Box::new(i)),
                    Action::TrainingOverview(Box::new(t)),
                    Action::EvalReport(eval.map(Box::new)),
                ],
                (_, _, Err(e)) => notify(
                    Level::Error,
                    format!("reading the training runs failed: {e:#}"),
                ),
                (Err(e), _, _) | (_, Err(e), _) => {
                    notify(Level::Error, format!("reading the store failed: {e}"))
                }
            }
        }
        Effect::CompletePath(input) => {
            let (input, candidates) = complete::complete(&input);
            vec![Action::PromptSet { input, candidates }]
        }
        Effect::StartIngest(typed) => {
            let paths: Vec<PathBuf> = typed.iter().map(|t| complete::expand_tilde(t)).collect();
            if let Some(missing) = paths.iter().find(|p| !complete::exists(p)) {
                return notify(
                    Level::Error,
                    format!("{}: no such file or folder", missing.display()),
                );
            }
            let opts =
                match pipeline::Options::from_config(paths, None, Vec::new(), &ctx.config.config) {
                    Ok(o) => o.with_voice(&ctx.config.config, &ctx.paths),
                    Err(e) => return notify(Level::Error, e),
                };
            let store = ctx.store.clone();
            let title = format!("importing {}", typed.join(", "));
            ctx.jobs.spawn_blocking("ingest", title, move |job| {
                pipeline::run(&store, &opts, job)
            });
            Vec::new()
        }
        Effect::StartEval => {
            let models_dir = ctx.config.models_dir(&ctx.paths);
            let config = &ctx.config.config;
            let setup = match crate::train::run::Setup::new(config, &ctx.paths, &models_dir) {
                Ok(s) => s,
                Err(e) => return notify(Level::Error, e),
            };
            let opts = crate::train::eval::Options {
                adapter: None,
                limit: config.train.eval_limit.max(1) as usize,
                reply_tokens: config.train.eval_reply_tokens.clamp(8, 4096) as u32,
                engine: crate::llm::EngineConfig::from_config(&config.chat, &models_dir),
            };
            let store = ctx.store.clone();
            ctx.jobs
                .spawn_blocking("eval", "evaluating the twin", move |job| {
                    crate::train::eval::eval(&store, &setup, &opts, job)
                });
            Vec::new()
        }
        Effect::BuildDataset | Effect::StartTraining { .. } => {
            let models_dir = ctx.config.models_dir(&ctx.paths);
            let setup =
                match crate::train::run::Setup::new(&ctx.config.config, &ctx.paths, &models_dir) {
                    Ok(s) => s,
                    Err(e) => return notify(Level::Error, e),
                };
            let store = ctx.store.clone();
            match effect {
                Effect::StartTraining { resume } => {
                    let title = if resume {
                        "resuming training"
                    } else {
                        "training a LoRA adapter"
                    };
                    ctx.jobs.spawn_blocking("train", title, move |job| {
                        crate::train::run::train(&store, &setup, resume, job)
                    });
                }
                _ => {
                    ctx.jobs
                        .spawn_blocking("dataset", "building the training set", move |job| {
                            crate::train::run::build_dataset(&store, &setup, job)
                        });
                }
            }
            Vec::new()
        }
        Effect::StartDemo => {
            let export = match demo::unpack(&ctx.paths.state_dir.join("demo")) {
                Ok(p) => p,
                Err(e) => return notify(Level::Error, format!("cannot unpack the demo: {e}")),
            };
            let gap = ctx.config.config.ingest.window_gap_minutes * 60_000;
            let opts = demo::options(export, gap);
            let store = ctx.store.clone();
            ctx.jobs
                .spawn_blocking("ingest", "importing the demo twin", move |job| {
                    pipeline::run(&store, &opts, job)
                });
            Vec::new()
        }
        Effect::ConfirmMe(contact) => contacts_job(ctx, "marking you", move |s| {
            contacts::merge(s, contact, identity::me_id())
        }),
        Effect::StartRecording => {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            *ctx.ptt_stop.lock().expect("ptt lock") = stop.clone();
            let settings = crate::voice::Settings::from_config(&ctx.config.config, &ctx.paths);
            let model = ctx.voice_model.clone();
            ctx.jobs
                .spawn_blocking(crate::voice::PTT_JOB, "recording", move |job| {
                    crate::voice::push_to_talk(job, &stop, &settings, &model)
                });
            Vec::new()
        }
        Effect::StopRecording => {
            ctx.ptt_stop
                .lock()
                .expect("ptt lock")
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Vec::new()
        }
        Effect::MergeContacts(from, into) => contacts_job(ctx, "merging contacts", move |s| {
            contacts::merge(s, from, into)
        }),
        Effect::SplitContact(contact, name) => contacts_job(ctx, "splitting a contact", move |s| {
            contacts::split(s, contact, &name)
        }),
        Effect::ChatTurn {
            question,
            history,
            session,
            opening,
            contact,
            adapter,
        } => {
            let (store, engine) = (ctx.store.clone(), ctx.chat.clone());
            let system = ctx.config.config.chat.system_prompt.clone();
            let request = chat::TurnRequest {
                question,
                history,
                session,
                contact,
                adapter,
                opening,
            };
            // Memories are recalled once memory has loaded; until then the
            // twin says it does not know.
            let memory = ctx.memory.get().cloned();
            ctx.jobs.spawn_blocking("chat", "chatting", move |job| {
                let retriever: &dyn chat::Retriever = match &memory {
                    Some(m) => m.as_ref(),
                    None => &chat::NoMemories,
                };
                chat::turn(job, &engine, &store, &system, retriever, request)
            });
            Vec::new()
        }
        Effect::Copy(text) => {
            // OSC 52: the terminal (even one at the far end of SSH) sets its clipboard.
            use std::io::Write;
            let mut out = io::stdout().lock();
            let _ = write!(out, "\x1b]52;c;{}\x07", osc52::base64(text.as_bytes()));
            let _ = out.flush();
            Vec::new()
        }
        Effect::CloseSession(id) => {
            // Closed at once (so nothing is lost if twin quits now); the
            // memory is written off the loop once memory is open, else by
            // the next `twin index`.
            if let Err(e) = crate::memory::chats::close(&ctx.store, id) {
                return notify(
                    Level::Error,
                    format!("closing the chat session failed: {e}"),
                );
            }
            if let Some(mem) = ctx.memory.get().cloned() {
                let store = ctx.store.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = crate::memory::chats::close_and_remember(&store, Some(&mem), id)
                    {
                        tracing::warn!("chat session {id} not remembered yet: {e}");
                    }
                });
            }
            Vec::new()
        }
        Effect::ListSessions => match sessions::list(&ctx.store) {
            Ok(list) => vec![Action::ChatSessionList(list)],
            Err(e) => notify(
                Level::Error,
                format!("reading the chat sessions failed: {e}"),
            ),
        },
        Effect::LoadSession(id) => match sessions::ChatSession::load(&ctx.store, id) {
            Ok(Some(s)) => vec![Action::ChatSessionLoaded(Box::new(s))],
            Ok(None) => notify(Level::Error, format!("chat session {id} is gone")),
            Err(e) => notify(
                Level::Error,
                format!("reading chat session {id} failed: {e}"),
            ),
        },
        Effect::PlanForget(id) => {
            let opts = match pipeline::Options::from_config(
                Vec::new(),
                None,
                Vec::new(),
                &ctx.config.config,
            ) {
                Ok(o) => o,
                Err(e) => return notify(Level::Error, e),
            };
            let planned = ctx
                .store
                .get::<crate::ingest::records::Contact>(crate::ingest::records::Contact::key(id))
                .map_err(anyhow::Error::from)
                .and_then(|c| {
                    let c = c.ok_or_else(|| anyhow::anyhow!("that contact is gone"))?;
                    crate::privacy::forget::plan(&ctx.store, &c, opts.zone)
                });
            match planned {
                Ok(plan) => vec![Action::ForgetPlanned {
                    contact: id,
                    plan: Box::new(plan),
                }],
                Err(e) => notify(Level::Error, format!("cannot plan the forget: {e:#}")),
            }
        }
        Effect::ToggleNeverTrain(id) => {
            let name = ctx
                .store
                .get::<crate::ingest::records::Contact>(crate::ingest::records::Contact::key(id))
                .ok()
                .flatten()
                .map(|c| c.name)
                .unwrap_or_else(|| "that contact".into());
            match crate::privacy::never_train::toggle(&ctx.store, id) {
                Ok(true) => vec![
                    Action::Notify(app::Notification {
                        level: Level::Info,
                        text: format!(
                            "{name} is never trained on: the next training set (b) leaves their conversations out"
                        ),
                    }),
                    Action::Refresh,
                ],
                Ok(false) => vec![
                    Action::Notify(app::Notification {
                        level: Level::Info,
                        text: format!("{name} may be trained on again (the next training set)"),
                    }),
                    Action::Refresh,
                ],
                Err(e) => notify(
                    Level::Error,
                    format!("cannot change the never-train list: {e}"),
                ),
            }
        }
        Effect::Forget(id) => {
            let opts = match pipeline::Options::from_config(
                Vec::new(),
                None,
                Vec::new(),
                &ctx.config.config,
            ) {
                Ok(o) => o,
                Err(e) => return notify(Level::Error, e),
            };
            let store = ctx.store.clone();
            ctx.jobs
                .spawn_blocking("forget", "forgetting a contact", move |job| {
                    let c = store
                        .get::<crate::ingest::records::Contact>(
                            crate::ingest::records::Contact::key(id),
                        )?
                        .ok_or_else(|| anyhow::anyhow!("that contact is gone"))?;
                    crate::privacy::forget::apply(&store, &c, opts.zone, opts.window_gap_ms, job)
                });
            Vec::new()
        }
        Effect::CheckinTick => {
            let Ok(settings) = ctx.checkin_settings() else {
                return vec![Action::Job(crate::jobs::JobEvent {
                    id: 0,
                    job: "checkin".into(),
                    body: crate::jobs::JobBody::Done {
                        summary: serde_json::Value::Null,
                    },
                })];
            };
            let model = checkin::job::model_for(
                &settings,
                &ctx.config.config.chat,
                &ctx.config.models_dir(&ctx.paths),
            );
            let store = ctx.store.clone();
            ctx.jobs
                .spawn_blocking("checkin", "checking in", move |job| {
                    let mut composer = checkin::job::Composer::new(model);
                    checkin::job::deliver_due(
                        &store,
                        &settings,
                        &checkin::SystemClock,
                        &mut composer,
                        job,
                    )
                });
            Vec::new()
        }
        Effect::RefreshCheckins => {
            let settings = match ctx.checkin_settings() {
                Ok(s) => s,
                Err(_) => {
                    // Nothing is planned, but the rules show, so they can be fixed.
                    let config = ctx.checkin.lock().expect("checkin lock").config.clone();
                    let report = checkin::job::ListReport {
                        at: String::new(),
                        timezone: String::new(),
                        rules: Vec::new(),
                        schedule: checkin::rules::rows(&config),
                        upcoming: Vec::new(),
                        history: Vec::new(),
                    };
                    return vec![Action::Checkins(Box::new(report), None)];
                }
            };
            let settings = &*settings;
            let clock = checkin::SystemClock;
            let zone = if ctx.config.config.checkin.timezone.is_empty() {
                &ctx.config.config.ingest.timezone
            } else {
                &ctx.config.config.checkin.timezone
            };
            let list = checkin::job::list(&ctx.store, settings, &clock, zone, 7);
            let next = checkin::Scheduler::new(&ctx.store, settings, &clock).next_wake();
            match (list, next) {
                (Ok(l), Ok(n)) => vec![Action::Checkins(
                    Box::new(l),
                    n.map(|t| t.timestamp_millis()),
                )],
                (Err(e), _) => notify(Level::Error, format!("reading check-ins failed: {e:#}")),
                (_, Err(e)) => notify(Level::Error, format!("reading check-ins failed: {e}")),
            }
        }
        Effect::EditCheckinRule(edit) => {
            let env = |k: &str| std::env::var(k).ok();
            let mut out = match checkin::rules::save(&ctx.config.file, &edit, &env) {
                Ok(config) => {
                    let setup = CheckinSetup::of(&config);
                    let mut said = format!(
                        "{} (saved in {})",
                        edit.describe(),
                        ctx.config.file.display()
                    );
                    let level = match &setup.settings {
                        Ok(settings) => {
                            if let Some(rule) = edit.retired() {
                                let sched = checkin::Scheduler::new(
                                    &ctx.store,
                                    settings,
                                    &checkin::SystemClock,
                                );
                                match sched.retire_rule(rule) {
                                    Ok(0) => {}
                                    Ok(n) => said.push_str(&format!(
                                        "; {n} of its check-ins not yet delivered dismissed"
                                    )),
                                    Err(e) => said.push_str(&format!("; {e}")),
                                }
                            }
                            Level::Info
                        }
                        Err(e) => {
                            said.push_str(&format!("; check-ins stay off: {e}"));
                            Level::Warn
                        }
                    };
                    *ctx.checkin.lock().expect("checkin lock") = setup;
                    notify(level, said)
                }
                Err(e) => notify(Level::Error, format!("the rule was not saved: {e}")),
            };
            out.extend(perform(Effect::RefreshCheckins, ctx));
            out
        }
        Effect::SnoozeCheckin(id) => change_checkin(ctx, &id, true),
        Effect::DismissCheckin(id) => change_checkin(ctx, &id, false),
        Effect::OpenCheckin(id) => {
            let found = checkin::Checkin::parse_id(&id)
                .map(|n| ctx.store.get::<checkin::Checkin>(checkin::Checkin::key(n)));
            match found {
                Some(Ok(Some(c))) => {
                    vec![Action::CheckinOpened(Box::new(checkin::opening_turn(&c)))]
                }
                Some(Err(e)) => notify(Level::Error, format!("reading the check-in failed: {e}")),
                _ => notify(
                    Level::Info,
                    "that check-in is not due yet: nothing to open".to_string(),
                ),
            }
        }
        Effect::Alert(text) => {
            if let Err(e) = terminal::alert("twin", &text) {
                tracing::warn!("could not send the notification: {e}");
            }
            Vec::new()
        }
        Effect::LoadMemory => {
            let (store, cell, tx) = (ctx.store.clone(), ctx.memory.clone(), ctx.actions.clone());
            let config = ctx.config.config.clone();
            let models = ctx.config.models_dir(&ctx.paths);
            tokio::task::spawn_blocking(move || {
                let opened = memory::open_configured(store, &config, &models)
                    .map(|(mem, notes)| {
                        let _ = cell.set(Arc::new(mem));
                        notes
                    })
                    .map_err(|e| e.to_string());
                let _ = tx.send(Action::MemoryOpened(opened));
            });
            Vec::new()
        }
        Effect::BuildMemory => {
            let Some(mem) = ctx.memory.get().cloned() else {
                return notify(Level::Info, "memory is still loading…".into());
            };
            ctx.jobs
                .spawn_blocking("index", "building memories", move |job| {
                    Ok(memory::build::build(&mem, job)?)
                });
            Vec::new()
        }
        Effect::ComputeL1 => {
            let Some(mem) = ctx.memory.get().cloned() else {
                return notify(Level::Info, "memory is still loading…".into());
            };
            ctx.jobs.spawn_blocking(
                "topics",
                "finding topics and writing the biography",
                move |job| {
                    let l1 = memory::topics::compute(&mem, Some(job))?;
                    Ok(serde_json::json!({
                        "topics": l1.topics.len(),
                        "entities": l1.entities.len(),
                    }))
                },
            );
            Vec::new()
        }
        Effect::QueryMemories {
            seq,
            query,
            debounce,
        } => {
            ctx.memory_seq.store(seq, Ordering::SeqCst);
            let latest = ctx.memory_seq.clone();
            let run = move |mem: &Memories| {
                if latest.load(Ordering::SeqCst) != seq {
                    return Vec::new();
                }
                let (rows, total, error) = match app::memory::read_rows(mem, &query) {
                    Ok((rows, total)) => (rows, total, None),
                    Err(e) => (Vec::new(), 0, Some(format!("memory search failed: {e}"))),
                };
                vec![Action::MemoryRows {
                    seq,
                    rows,
                    total,
                    error,
                }]
            };
            background(ctx, debounce.then_some(SEARCH_DEBOUNCE), run)
        }
        Effect::ShowMemory(id) => background(ctx, None, move |mem| {
            let found = mem
                .resolve(&id)
                .and_then(|id| app::memory::read_detail(mem, id));
            match found {
                Ok(d) => vec![Action::MemoryDetail(Box::new(d.detail))],
                Err(e) => vec![Action::MemoryFailed(e.to_string())],
            }
        }),
        Effect::MemorySource(id) => {
            background(ctx, None, move |mem| {
                match app::memory::read_source(mem, id) {
                    Ok(s) => vec![Action::MemorySourceShown(Box::new(s))],
                    Err(e) => vec![Action::MemoryFailed(e.to_string())],
                }
            })
        }
        Effect::PinMemory(id, pinned) => background(ctx, None, move |mem| {
            let done = mem
                .set_pinned(id, pinned)
                .and_then(|_| app::memory::read_detail(mem, id));
            match done {
                Ok(d) => {
                    let note = format!(
                        "{} {}",
                        if pinned { "pinned" } else { "unpinned" },
                        memory::show_id(id)
                    );
                    vec![Action::MemoryChanged {
                        detail: Box::new(d),
                        note,
                    }]
                }
                Err(e) => vec![Action::MemoryFailed(e.to_string())],
            }
        }),
        Effect::SaveMemory(id, text) => background(ctx, None, move |mem| {
            let done = mem
                .edit(id, None, text)
                .and_then(|_| app::memory::read_detail(mem, id));
            match done {
                Ok(d) => vec![Action::MemoryChanged {
                    detail: Box::new(d),
                    note: format!(
                        "saved {}: re-embedded, and kept as you wrote it",
                        memory::show_id(id)
                    ),
                }],
                Err(e) => vec![Action::MemoryFailed(format!("saving failed: {e}"))],
            }
        }),
        Effect::ForgetMemory(id) => {
            background(ctx, None, move |mem| match mem.forget_marking(id) {
                Ok((m, stale)) => {
                    let sources = m
                        .provenance
                        .iter()
                        .filter(|p| p.message_key().is_some())
                        .count();
                    let note = if sources > 0 {
                        format!(
                            "forgot {} {}: its {sources} source messages are left out of training from now on",
                            m.kind.name(),
                            memory::show_id(id)
                        )
                    } else {
                        format!("forgot {} {}", m.kind.name(), memory::show_id(id))
                    };
                    let note = if stale.is_empty() {
                        note
                    } else {
                        format!(
                            "{note}; adapter {} is now stale: b then t in the Training pane retrains",
                            stale.join(", ")
                        )
                    };
                    vec![Action::MemoryForgotten { id, note }]
                }
                Err(e) => vec![Action::MemoryFailed(format!("forgetting failed: {e}"))],
            })
        }
        Effect::ReadL1 => background(ctx, None, |mem| {
            match memory::topics::L1::load(mem.store()) {
                Ok(l1) => vec![Action::MemoryL1(l1.map(Box::new))],
                Err(e) => vec![Action::MemoryFailed(format!("reading topics failed: {e}"))],
            }
        }),
        Effect::ReadRows(ids) => {
            background(ctx, None, move |mem| {
                match app::memory::read_rows_of(mem, &ids) {
                    Ok(rows) => vec![Action::MemoryTopicRows(rows)],
                    Err(e) => vec![Action::MemoryFailed(e.to_string())],
                }
            })
        }
    }
}

/// Snooze or dismiss a check-in, then re-read the list.
fn change_checkin(ctx: &Ctx, id: &str, snooze: bool) -> Vec<Action> {
    let notify = |level, text: String| vec![Action::Notify(app::Notification { level, text })];
    let Ok(settings) = ctx.checkin_settings() else {
        return Vec::new();
    };
    let settings = &*settings;
    let sched = checkin::Scheduler::new(&ctx.store, settings, &checkin::SystemClock);
    let done = if snooze {
        sched.snooze(id, None)
    } else {
        sched.dismiss(id)
    };
    let mut out = match done {
        Ok(c) if snooze => notify(
            Level::Info,
            format!(
                "check-in snoozed until {}",
                settings.local_string(
                    chrono::DateTime::from_timestamp_millis(c.ready_ms()).unwrap_or_default()
                )
            ),
        ),
        Ok(_) => notify(Level::Info, "check-in dismissed".to_string()),
        Err(e) => notify(Level::Error, e.to_string()),
    };
    out.extend(perform(Effect::RefreshCheckins, ctx));
    out
}

/// Run `work` on the open memory off the event loop (after `delay`), and send
/// the actions it returns back to the loop.
fn background(
    ctx: &Ctx,
    delay: Option<Duration>,
    work: impl FnOnce(&Memories) -> Vec<Action> + Send + 'static,
) -> Vec<Action> {
    let Some(mem) = ctx.memory.get().cloned() else {
        return vec![Action::Notify(app::Notification {
            level: Level::Info,
            text: "memory is still loading…".into(),
        })];
    };
    let tx = ctx.actions.clone();
    tokio::spawn(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Ok(actions) = tokio::task::spawn_blocking(move || work(&mem)).await {
            for a in actions {
                let _ = tx.send(a);
            }
        }
    });
    Vec::new()
}

fn draw(
    term: &mut Terminal<CrosstermBackend<io::Stdout>>,
    state: &State,
    view: &ui::View,
) -> io::Result<()> {
    crossterm::execute!(io::stdout(), BeginSynchronizedUpdate)?;
    term.draw(|f| ui::render(f, state, view))?;
    crossterm::execute!(io::stdout(), EndSynchronizedUpdate)
}

/// Map a terminal event to an action through the live keymap.
fn terminal_action(
    ev: &Event,
    state: &State,
    view: &ui::View,
    keymap: &Keymap,
    pending: &mut Vec<Key>,
) -> Option<Action> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => {
            let key = Key::from_event(k)?;
            if state.confirm.is_some() {
                // A question waits: only its answers act.
                return match keymap.resolve(&[Mode::Confirm], pending, key) {
                    Resolved::Action(a) => Some(a),
                    Resolved::Pending | Resolved::Unbound => None,
                };
            }
            if state.memory.editing.is_some() && state.focus == app::Pane::Memory {
                // Typing goes into the editor; only its own keys act.
                return match keymap.resolve(&[Mode::Editor], pending, key) {
                    Resolved::Action(a) => Some(a),
                    Resolved::Pending => None,
                    Resolved::Unbound => match key.code {
                        keymap::Code::Char(c) if !key.ctrl && !key.alt => {
                            Some(Action::EditorInsert(c))
                        }
                        _ => None,
                    },
                };
            }
            if state.prompt.is_some() {
                // Typing goes into the prompt; only its own keys act.
                return match keymap.resolve(&[Mode::Prompt], pending, key) {
                    Resolved::Action(a) => Some(a),
                    Resolved::Pending => None,
                    Resolved::Unbound => match key.code {
                        keymap::Code::Char(c) if !key.ctrl && !key.alt => {
                            Some(Action::PromptInsert(c))
                        }
                        _ => None,
                    },
                };
            }
            if state.chat.composing && state.focus == app::Pane::Chat && !state.help {
                // Typing goes into the message; only its own keys act.
                return match keymap.resolve(&[Mode::Compose], pending, key) {
                    Resolved::Action(a) => Some(a),
                    Resolved::Pending => None,
                    Resolved::Unbound => match key.code {
                        keymap::Code::Char(c) if !key.ctrl && !key.alt => {
                            Some(Action::ChatInsert(c))
                        }
                        _ => None,
                    },
                };
            }
            let modes: &[Mode] = if state.help {
                &[Mode::Help, Mode::Global]
            } else if state.checkins.view.is_some() {
                &[Mode::Checkins, Mode::Global]
            } else {
                &[Mode::of_pane(state.focus), Mode::Global]
            };
            match keymap.resolve(modes, pending, key) {
                Resolved::Action(a) => Some(a),
                Resolved::Pending | Resolved::Unbound => None,
            }
        }
        Event::Resize(w, h) => Some(Action::Resize {
            width: *w,
            height: *h,
        }),
        Event::Mouse(m) if m.kind == MouseEventKind::Down(MouseButton::Left) => {
            let size = ratatui::layout::Rect::new(0, 0, state.size.0, state.size.1);
            let a = ui::areas(size, state, view);
            if m.row == a.tabs.y {
                return a
                    .tab_spans
                    .iter()
                    .find(|(_, x0, x1)| (*x0..*x1).contains(&m.column))
                    .map(|(p, _, _)| Action::Focus(*p));
            }
            a.panes
                .iter()
                .find(|(_, r)| r.contains(ratatui::layout::Position::new(m.column, m.row)))
                .map(|(p, _)| Action::Focus(*p))
        }
        Event::Mouse(m) if m.kind == MouseEventKind::ScrollDown => Some(Action::ScrollDown),
        Event::Mouse(m) if m.kind == MouseEventKind::ScrollUp => Some(Action::ScrollUp),
        _ => None,
    }
}
