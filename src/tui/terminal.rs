//! Taking over the terminal and always giving it back: a guard whose `Drop`
//! restores it, and a panic hook that restores it before the message is printed.

use std::io::{self, Write};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};

pub struct TerminalGuard;

impl TerminalGuard {
    pub fn enter(mouse: bool) -> io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        let guard = TerminalGuard;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        if mouse {
            execute!(io::stdout(), EnableMouseCapture)?;
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Put the terminal back: leave the alternate screen, show the cursor, cooked mode.
/// Errors are ignored: after an SSH drop there is no terminal to restore.
pub fn restore() {
    let mut out = io::stdout();
    let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
    let _ = disable_raw_mode();
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            // A panic message can quote a string being sliced: log where, not what.
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(
                "panic at {at}: {}",
                crate::logging::redact(
                    info.payload()
                        .downcast_ref::<&str>()
                        .copied()
                        .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                        .unwrap_or("")
                )
            );
            previous(info);
        }));
    });
}

/// Ring the bell and ask the terminal for a desktop notification: OSC 9
/// (iTerm2, WezTerm, Windows Terminal, kitty) and OSC 777 (rxvt, foot, Ghostty,
/// VTE). Escape sequences travel over SSH to the user's own terminal; one that
/// does not know them ignores them.
pub fn alert(title: &str, body: &str) -> io::Result<()> {
    use std::io::Write;
    let mut out = io::stdout().lock();
    out.write_all(alert_bytes(title, body).as_bytes())?;
    out.flush()
}

/// The bytes [`alert`] writes (control characters and `;` taken out of the text).
pub fn alert_bytes(title: &str, body: &str) -> String {
    let clean = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| if c.is_control() || c == ';' { ' ' } else { c })
            .collect();
        s.chars().take(200).collect()
    };
    let (title, body) = (clean(title), clean(body));
    format!("\x07\x1b]9;{title}: {body}\x07\x1b]777;notify;{title};{body}\x07")
}
