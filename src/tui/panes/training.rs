//! The Training pane: the live run (step, loss, validation loss, learning rate,
//! gradient norm, tokens/s, ETA, a loss chart drawn by [`chart`]), the latest
//! training set, the run history and the adapters.

use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType};

use super::{command, count, dim, models_line, text};
use crate::app::{CurvePoint, JobView, State};
use crate::models::ModelFile;
use crate::status::StatusReport;
use crate::train::registry::RunStatus;
use crate::tui::theme::Theme;

/// Rows the chart takes above the text while there is a curve.
pub const CHART_ROWS: u16 = 12;

fn job(state: &State) -> Option<&JobView> {
    state
        .jobs
        .values()
        .rev()
        .find(|j| matches!(j.kind.as_str(), "train" | "dataset" | "eval"))
}

/// The latest evaluation report (e toggles it), or how to make one.
fn eval_lines(state: &State, t: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    match &state.eval_report {
        None => out.push(dim(
            "No evaluation yet: E evaluates the newest adapter against the base model.",
            t,
        )),
        Some(r) => {
            let mut lines = r.headline().into_iter();
            if let Some(first) = lines.next() {
                out.push(Line::styled(first, t.get("ui.text.em")));
            }
            for l in lines {
                out.push(text(format!("  {l}"), t));
            }
            out.push(dim(format!("  {}", r.markdown_path.display()), t));
        }
    }
    out.push(Line::raw(""));
    out.push(dim(
        "e goes back to the runs, E evaluates again. From a shell:",
        t,
    ));
    out.push(command("twin --batch eval --limit N", t));
    out
}

fn kv(label: &str, value: String, t: &Theme) -> Span<'static> {
    Span::styled(format!("{label} {value}   "), t.get("ui.text"))
}

pub fn lines(state: &State, r: &StatusReport, t: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    if let Some(j) = job(state) {
        let step = j
            .total
            .map_or(format!("{}", j.done), |n| format!("{}/{n}", j.done));
        out.push(Line::styled(
            format!("{}: {} {}", j.title, step, j.unit),
            t.get("ui.text.em"),
        ));
        if let Some(d) = &j.detail {
            out.push(dim(format!("  {d}"), t));
        }
        if let Some(secs) = j.eta_secs().filter(|_| j.kind == "train") {
            out.push(dim(
                format!(
                    "  about {}m {:02}s left; esc stops it (r resumes)",
                    secs / 60,
                    secs % 60
                ),
                t,
            ));
        }
    }
    if let Some(p) = state.train_curve.last() {
        let val = state
            .train_curve
            .iter()
            .rev()
            .find_map(|p| p.val_loss)
            .map_or("-".into(), |v| format!("{v:.4}"));
        out.push(Line::from(vec![
            kv("step", p.step.to_string(), t),
            kv("loss", format!("{:.4}", p.loss), t),
            kv("val", val, t),
        ]));
        out.push(Line::from(vec![
            kv("lr", format!("{:.2e}", p.lr), t),
            kv("grad norm", format!("{:.3}", p.grad_norm), t),
            kv("tok/s", format!("{:.0}", p.tokens_per_s), t),
        ]));
        out.push(Line::raw(""));
    }
    if state.show_eval {
        out.extend(eval_lines(state, t));
        return out;
    }
    let Some(o) = &state.training else {
        out.push(dim("Reading the training runs…", t));
        return out;
    };
    match &o.dataset {
        Some(d) => {
            out.push(text(
                format!(
                    "Training set {}: {} + {} examples, {} tokens learned",
                    d.hash, d.stats.train_examples, d.stats.val_examples, d.stats.learned_tokens
                ),
                t,
            ));
        }
        None => {
            out.push(dim(
                "No training set yet: b builds one from your conversations.",
                t,
            ));
        }
    }
    out.push(models_line("base models", ModelFile::is_chat_model, r, t));
    out.push(Line::raw(""));
    out.push(count("runs", o.runs.len() as u64, t));
    for run in o.runs.iter().take(8) {
        let last = run.curve.last();
        let status = match run.status {
            RunStatus::Running if job(state).is_none() => "stopped",
            RunStatus::Running => "running",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Done => "done",
        };
        out.push(text(
            format!(
                "  {} {:<8} step {:>5}/{:<5} loss {:>7} val {:>7} {:>6.0} tok/s",
                run.id,
                status,
                last.map_or(0, |m| m.step),
                run.config.steps,
                last.map_or("-".into(), |m| format!("{:.4}", m.loss)),
                run.curve
                    .iter()
                    .rev()
                    .find_map(|m| m.val_loss)
                    .map_or("-".into(), |v| format!("{v:.4}")),
                run.tokens_per_s
            ),
            t,
        ));
    }
    out.push(count("adapters", o.adapters.len() as u64, t));
    for a in &o.adapters {
        out.push(text(
            format!(
                "  {}{} {} steps, loss {}{}",
                if a.active { "* " } else { "  " },
                a.id,
                a.steps,
                a.final_loss.map_or("-".into(), |v| format!("{v:.4}")),
                if a.stale { "  STALE" } else { "" }
            ),
            t,
        ));
        if a.stale {
            out.push(dim(
                format!(
                    "      {}: b builds a new training set without it, then t retrains",
                    a.stale_reason
                        .as_deref()
                        .unwrap_or("trained on data you forgot")
                ),
                t,
            ));
        }
    }
    out.push(Line::raw(""));
    out.push(dim(
        "b builds a training set, t trains, r resumes a stopped run, esc stops one, E evaluates, e shows the report. From a shell:",
        t,
    ));
    out.push(command("twin --batch train --steps N", t));
    out
}

/// The loss (and validation loss) chart over `area`, when a run has steps.
pub fn chart(frame: &mut ratatui::Frame, area: Rect, curve: &[CurvePoint], t: &Theme) {
    if curve.is_empty() || area.height < 4 {
        return;
    }
    let loss: Vec<(f64, f64)> = curve
        .iter()
        .filter(|p| p.loss.is_finite())
        .map(|p| (p.step as f64, p.loss))
        .collect();
    let val: Vec<(f64, f64)> = curve
        .iter()
        .filter_map(|p| p.val_loss.map(|v| (p.step as f64, v)))
        .collect();
    let max_step = curve.last().map_or(1, |p| p.step).max(1) as f64;
    let ys = loss.iter().chain(&val).map(|(_, y)| *y);
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (lo, hi) = if lo <= hi {
        (lo, hi.max(lo + 1e-3))
    } else {
        (0.0, 1.0)
    };
    let datasets = vec![
        Dataset::default()
            .name("loss")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(t.get("ui.text.em"))
            .data(&loss),
        Dataset::default()
            .name("val")
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(t.get("ui.count"))
            .data(&val),
    ];
    let chart = Chart::new(datasets)
        .x_axis(
            Axis::default()
                .title("step")
                .style(t.get("ui.text.dim"))
                .bounds([1.0, max_step])
                .labels(["1".to_string(), format!("{max_step:.0}")]),
        )
        .y_axis(
            Axis::default()
                .style(t.get("ui.text.dim"))
                .bounds([lo, hi])
                .labels([format!("{lo:.2}"), format!("{hi:.2}")]),
        );
    frame.render_widget(chart, area);
}
