use ratatui::text::Line;

use super::{command, count, dim, text};
use crate::status::StatusReport;
use crate::tui::theme::Theme;

pub fn lines(r: &StatusReport, t: &Theme) -> Vec<Line<'static>> {
    let messages = r.count("messages");
    let mut out = vec![
        text("Your exported history, imported.", t),
        Line::raw(""),
        count("sources", r.count("sources"), t),
        count("messages", messages, t),
        count("contacts", r.count("contacts"), t),
        count("conversations", r.count("conversations"), t),
        Line::raw(""),
    ];
    if messages == 0 {
        out.push(dim("Nothing imported yet.", t));
    }
    out.extend([
        dim("Each import will be listed here (file, format, messages, authors, errors) with its progress while it runs. Importers for Signal, WhatsApp, Telegram, Discord, Messenger, Instagram, Slack, Google Chat, mbox, notes and PDF come with the ingest work; then:", t),
        command("twin --batch ingest PATH...", t),
    ]);
    out
}
