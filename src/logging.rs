//! Logs go to a file in the log folder while the TUI owns the screen, and to
//! stderr in `--batch` and other commands. `TWIN_LOG` (or `log.filter`) filters.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

pub enum Sink<'a> {
    Stderr,
    File(&'a Path),
}

/// Install the global subscriber. The returned guard flushes the file on drop.
pub fn init(sink: Sink, filter: &str) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("twin: log filter {filter:?} is invalid ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    match sink {
        Sink::Stderr => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_target(false)
                .without_time()
                .try_init();
            None
        }
        Sink::File(dir) => {
            let appender = tracing_appender::rolling::never(dir, "twin.log");
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .with_ansi(false)
                .try_init();
            Some(guard)
        }
    }
}

static CONTENT: AtomicBool = AtomicBool::new(false);

/// Let log lines carry message text (`log.content`, `TWIN_LOG_CONTENT=1`).
pub fn set_content(on: bool) {
    CONTENT.store(on, Ordering::Relaxed);
}

/// Whether log lines may carry message text.
pub fn content() -> bool {
    CONTENT.load(Ordering::Relaxed)
}

/// `text` for a log line that may hold user content (an error that quotes a
/// line of an export, a panic message that quotes a string): itself when
/// `log.content` is on, else only its length.
pub fn redact(text: &str) -> String {
    if content() {
        text.to_string()
    } else {
        format!(
            "[{} chars withheld; set log.content = true or TWIN_LOG_CONTENT=1 to log them]",
            text.chars().count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_withheld_unless_asked_for() {
        let line = "the quick brown fox jumps";
        let r = redact(line);
        assert!(!r.contains("quick"), "{r}");
        assert!(r.contains("25 chars"), "{r}");
        set_content(true);
        assert_eq!(redact(line), line);
        set_content(false);
    }
}
