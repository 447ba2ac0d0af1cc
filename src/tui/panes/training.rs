use ratatui::text::Line;

use super::{command, count, dim, models_line, text};
use crate::models::ModelKind;
use crate::status::StatusReport;
use crate::tui::theme::Theme;

pub fn lines(r: &StatusReport, t: &Theme) -> Vec<Line<'static>> {
    let mut out = vec![
        text("Fine-tuning a model on how you write.", t),
        Line::raw(""),
        count("datasets", r.count("datasets"), t),
        count("runs", r.count("runs"), t),
        count("adapters", r.count("adapters"), t),
        Line::raw(""),
        models_line("base models", ModelKind::Gguf, r, t),
        Line::raw(""),
    ];
    if r.count("runs") == 0 {
        out.push(dim("No training runs yet.", t));
    }
    out.extend([
        dim("Training sets, the loss curve of each run and the adapters it produced will show here. Runs start, and resume, with:", t),
        command("twin --batch train", t),
    ]);
    out
}
