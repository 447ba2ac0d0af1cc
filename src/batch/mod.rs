//! The headless front-end. A command runs as a job; in `--batch` each job event is
//! one JSON object per line on stdout (see README, "JSON lines"), otherwise the
//! summary is printed for people. Progress goes to stderr when it is a terminal.
//! Exit codes: 0 success, 1 job failure, 2 bad usage.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use crate::jobs::{JobBody, JobCtx, JobEvent, Jobs, Level, Summary};

/// How a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `--batch`: JSON lines on stdout.
    Json,
    /// Plain text for people.
    Human,
}

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Run `work` as job `kind` to completion, printing its events; returns the exit code.
pub fn run<T, F>(output: Output, kind: &str, title: &str, work: F) -> i32
where
    T: Summary,
    F: FnOnce(&JobCtx) -> anyhow::Result<T> + Send + 'static,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("twin: cannot start: {e}");
            return EXIT_FAILED;
        }
    };
    let human: Arc<Mutex<Option<(String, bool)>>> = Arc::default();
    let slot = human.clone();
    runtime.block_on(async move {
        let (jobs, mut rx) = Jobs::new();
        jobs.spawn_blocking(kind, title, move |ctx| {
            let summary = work(ctx)?;
            *slot.lock().expect("summary slot") = Some((summary.to_string(), summary.success()));
            Ok(summary)
        });
        let tty = std::io::stderr().is_terminal();
        let mut progress_shown = false;
        // Streamed text on stdout that has not ended its line yet.
        let mut mid_line = false;
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tokio::signal::ctrl_c() => {
                    jobs.cancel_all();
                    continue;
                }
            };
            let Some(ev) = ev else { return EXIT_FAILED };
            if output == Output::Json {
                print_json(&ev);
            } else if let JobBody::Token { text } = &ev.body {
                // People read the reply as it is written.
                if progress_shown {
                    eprint!("\r\x1b[2K");
                    progress_shown = false;
                }
                print_stdout(text);
                if !text.is_empty() {
                    mid_line = !text.ends_with('\n');
                }
            } else if output == Output::Human
                && mid_line
                && !matches!(ev.body, JobBody::Done { .. })
            {
                // End the streamed line before stderr writes on the same terminal.
                print_stdout("\n");
                mid_line = false;
            }
            if tty {
                progress_shown = show_on_stderr(&ev, output, progress_shown);
            } else if output == Output::Human
                && let JobBody::Log { level, message } = &ev.body
                && *level != Level::Info
            {
                eprintln!("{}: {message}", level_word(*level));
            }
            match ev.body {
                JobBody::Done { .. } => {
                    let (text, ok) = human
                        .lock()
                        .expect("summary slot")
                        .take()
                        .unwrap_or_default();
                    if output == Output::Human && (!text.is_empty() || mid_line) {
                        print_stdout(&format!("{text}\n"));
                    }
                    return if ok { EXIT_OK } else { EXIT_FAILED };
                }
                JobBody::Failed { error } => {
                    if output == Output::Human || !tty {
                        eprintln!("twin: {kind} failed: {error}");
                    }
                    return EXIT_FAILED;
                }
                _ => {}
            }
        }
    })
}

/// Write to stdout; a closed stdout (a pipe to `head`) is not an error worth a panic.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn print_json(ev: &JobEvent) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (a pipe to `head`) is not our failure; the exit code still tells.
    let _ = serde_json::to_writer(&mut out, ev);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Human progress on a terminal's stderr; returns whether a progress line is showing.
fn show_on_stderr(ev: &JobEvent, output: Output, progress_shown: bool) -> bool {
    let mut err = std::io::stderr().lock();
    let clear = if progress_shown { "\r\x1b[2K" } else { "" };
    match &ev.body {
        JobBody::Progress {
            done,
            total,
            unit,
            rate,
            ..
        } => {
            let total = total.map(|t| format!("/{t}")).unwrap_or_default();
            let rate = rate.map(|r| format!(" ({r:.0}/s)")).unwrap_or_default();
            let _ = write!(err, "{clear}{}: {done}{total} {unit}{rate}", ev.job);
            let _ = err.flush();
            true
        }
        JobBody::Log { level, message } => {
            let _ = writeln!(err, "{clear}{}: {message}", level_word(*level));
            false
        }
        JobBody::Failed { error } => {
            let _ = writeln!(err, "{clear}twin: {} failed: {error}", ev.job);
            false
        }
        JobBody::Done { .. } if progress_shown => {
            let _ = write!(err, "{clear}");
            false
        }
        JobBody::Started { title } if output == Output::Json => {
            let _ = writeln!(err, "{clear}{title}…");
            false
        }
        _ => progress_shown,
    }
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Info => "info",
        Level::Warn => "warning",
        Level::Error => "error",
    }
}
