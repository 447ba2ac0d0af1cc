//! Logs go to a file in the log folder while the TUI owns the screen, and to
//! stderr in `--batch` and other commands. `TWIN_LOG` (or `log.filter`) filters.

use std::path::Path;

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
