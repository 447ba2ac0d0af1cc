use ratatui::text::Line;

use super::{command, count, dim, models_line, text};
use crate::models::ModelKind;
use crate::status::StatusReport;
use crate::tui::theme::Theme;

pub fn lines(r: &StatusReport, t: &Theme, spoken: Option<&str>) -> Vec<Line<'static>> {
    let mut out = vec![
        text("Talk to your twin.", t),
        Line::raw(""),
        count("sessions", r.count("chats"), t),
        count("check-ins", r.count("checkins"), t),
        Line::raw(""),
        models_line("chat models", ModelKind::Gguf, r, t),
        Line::raw(""),
    ];
    if r.count("chats") == 0 {
        out.push(dim("No conversations yet.", t));
    }
    out.extend([
        dim("Replies will stream here in your voice, citing the memories they draw on, with check-ins from the twin between sessions. From a script, the same conversation runs with:", t),
        command("twin --batch chat", t),
    ]);
    // Push-to-talk (toggle_recording): the transcript waits here for the input.
    if let Some(said) = spoken {
        out.extend([
            Line::raw(""),
            dim("You said (push-to-talk):", t),
            text(said, t),
        ]);
    }
    out
}
