//! The terminal front-end: panes for ingest, memory, training and chat, a status
//! bar, a help overlay generated from the live keymap. It draws only when
//! something changed, so an idle twin uses no CPU and sends nothing over SSH.

pub mod complete;
pub mod keymap;
pub mod panes;
pub mod terminal;
pub mod theme;
pub mod ui;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyEventKind, MouseButton, MouseEventKind};
use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::{self, Action, Effect, LayoutMode, State};
use crate::config::Loaded;
use crate::diag::Diagnostic;
use crate::ingest::{contacts, demo, identity, overview, pipeline, profile, windows};
use crate::jobs::{Jobs, Level};
use crate::paths::Paths;
use crate::status::StatusReport;
use crate::store::Store;
use keymap::{Key, Keymap, Mode, Resolved};
use theme::{TermEnv, Theme};

/// The shortest time between two frames.
const FRAME: Duration = Duration::from_millis(16);

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
    runtime.block_on(event_loop(paths, config, store))
}

/// What performing effects needs.
struct Ctx {
    paths: Paths,
    config: Loaded,
    store: Arc<Store>,
    jobs: Jobs,
}

async fn event_loop(paths: Paths, config: Loaded, store: Store) -> anyhow::Result<()> {
    let (keymap, theme, diags) = load_look(&paths, &config, &TermEnv::from_env());
    let mut state = State::new(LayoutMode::from_config(&config.config.ui.layout));
    for d in config.warnings.iter().chain(&diags) {
        tracing::warn!("{d}");
        state.notify(Level::Warn, d.to_string());
    }
    state.overview = Some(StatusReport::gather(&paths, &config, &store)?);
    state.ingest = Some(overview::gather(&store)?);
    state.training = Some(crate::train::registry::overview(&store)?);
    let (jobs, mut job_events) = Jobs::new();
    let ctx = Ctx {
        paths,
        config,
        store: Arc::new(store),
        jobs,
    };
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

    loop {
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
            _ = hangup.recv() => { tracing::info!("SIGHUP: the terminal went away"); Some(Action::Quit) }
            _ = terminate.recv() => { tracing::info!("SIGTERM"); Some(Action::Quit) }
            _ = interrupt.recv() => Some(Action::Quit),
            ev = job_events.recv() => ev.map(Action::Job),
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
            match (status, ingest, training) {
                (Ok(s), Ok(i), Ok(t)) => vec![
                    Action::Overview(Box::new(s)),
                    Action::IngestOverview(Box::new(i)),
                    Action::TrainingOverview(Box::new(t)),
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
                    Ok(o) => o,
                    Err(e) => return notify(Level::Error, e),
                };
            let store = ctx.store.clone();
            let title = format!("importing {}", typed.join(", "));
            ctx.jobs.spawn_blocking("ingest", title, move |job| {
                pipeline::run(&store, &opts, job)
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
        Effect::MergeContacts(from, into) => contacts_job(ctx, "merging contacts", move |s| {
            contacts::merge(s, from, into)
        }),
        Effect::SplitContact(contact, name) => contacts_job(ctx, "splitting a contact", move |s| {
            contacts::split(s, contact, &name)
        }),
    }
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
            let modes: &[Mode] = if state.help {
                &[Mode::Help, Mode::Global]
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
