use ratatui::text::Line;

use super::{command, count, dim, models_line, text};
use crate::models::ModelKind;
use crate::status::StatusReport;
use crate::tui::theme::Theme;

pub fn lines(r: &StatusReport, t: &Theme) -> Vec<Line<'static>> {
    let mut out = vec![
        text("What twin remembers about you.", t),
        Line::raw(""),
        count("memories", r.count("memories"), t),
        count("vectors", r.count("vectors"), t),
        count("profile", r.count("profile"), t),
        Line::raw(""),
        models_line("embeddings", ModelKind::Embedding, r, t),
        Line::raw(""),
    ];
    if r.count("memories") == 0 {
        out.push(dim("No memories yet.", t));
    }
    out.extend([
        dim("Memories (episodes, facts, preferences, notes) will be searchable here, to edit, pin or forget. They are built from imported messages by the memory work, with:", t),
        command("twin --batch index", t),
    ]);
    out
}
