//! Long work runs as jobs. Every job has an id, a cancellation token, and reports
//! on one channel with one protocol:
//! `Started / Progress{done,total,unit,rate} / Log / Token{text} / Done{summary} / Failed{error}`.
//! The TUI folds these events into pane state; `--batch` prints each as a JSON line.
//! Later issues add job kinds; the one result that is its own event is a
//! delivered check-in (`Checkin`), which scripts consume line by line.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub type JobId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobBody {
    Started {
        title: String,
    },
    Progress {
        done: u64,
        total: Option<u64>,
        unit: String,
        rate: Option<f64>,
        /// Named measurements of this unit of work (training: loss, lr,
        /// grad_norm, tokens_per_s, ...); omitted from JSON when empty.
        metrics: Vec<(String, f64)>,
    },
    Log {
        level: Level,
        message: String,
    },
    /// A piece of generated text, streamed as a model produces it (chat). Never
    /// throttled: the pieces concatenated are the reply.
    Token {
        text: String,
    },
    /// A check-in the twin delivers (job `checkin`). Its `id` on the wire is the
    /// check-in's own (16 hex digits, what `--snooze`/`--dismiss` take), not the job's.
    Checkin {
        id: String,
        rule: String,
        text: String,
        due: String,
        cites: Vec<String>,
    },
    Done {
        summary: serde_json::Value,
    },
    Failed {
        error: String,
    },
}

impl JobBody {
    pub fn name(&self) -> &'static str {
        match self {
            JobBody::Started { .. } => "started",
            JobBody::Progress { .. } => "progress",
            JobBody::Log { .. } => "log",
            JobBody::Token { .. } => "token",
            JobBody::Checkin { .. } => "checkin",
            JobBody::Done { .. } => "done",
            JobBody::Failed { .. } => "failed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, JobBody::Done { .. } | JobBody::Failed { .. })
    }
}

/// One event from one job: `{"event":"progress","job":"ingest","id":1,...}` in JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub id: JobId,
    /// The job's kind, also the batch command's name: "status", "ingest", ...
    pub job: String,
    pub body: JobBody,
}

impl Serialize for JobEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("event", self.body.name())?;
        m.serialize_entry("job", &self.job)?;
        if let JobBody::Checkin {
            id,
            rule,
            text,
            due,
            cites,
        } = &self.body
        {
            m.serialize_entry("id", id)?;
            m.serialize_entry("rule", rule)?;
            m.serialize_entry("text", text)?;
            m.serialize_entry("due", due)?;
            m.serialize_entry("cites", cites)?;
            return m.end();
        }
        m.serialize_entry("id", &self.id)?;
        match &self.body {
            JobBody::Started { title } => m.serialize_entry("title", title)?,
            JobBody::Progress {
                done,
                total,
                unit,
                rate,
                metrics,
            } => {
                m.serialize_entry("done", done)?;
                m.serialize_entry("total", total)?;
                m.serialize_entry("unit", unit)?;
                m.serialize_entry("rate", &rate.map(|r| (r * 10.0).round() / 10.0))?;
                if !metrics.is_empty() {
                    let map: serde_json::Map<String, serde_json::Value> = metrics
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                        .collect();
                    m.serialize_entry("metrics", &map)?;
                }
            }
            JobBody::Log { level, message } => {
                m.serialize_entry("level", level)?;
                m.serialize_entry("message", message)?;
            }
            JobBody::Token { text } => m.serialize_entry("text", text)?,
            JobBody::Checkin { .. } => unreachable!("written above"),
            JobBody::Done { summary } => m.serialize_entry("summary", summary)?,
            JobBody::Failed { error } => m.serialize_entry("error", error)?,
        }
        m.end()
    }
}

/// A job's result: JSON for `--batch`, text for people, and whether it succeeded
/// (a doctor run that found problems finished, but did not succeed).
pub trait Summary: Serialize + std::fmt::Display + Send + 'static {
    fn success(&self) -> bool {
        true
    }
}

/// The error a job returns when it stopped because it was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Handed to a running job: report progress and logs, check for cancellation.
pub struct JobCtx {
    id: JobId,
    kind: String,
    tx: mpsc::UnboundedSender<JobEvent>,
    cancel: CancellationToken,
    started: Instant,
    last_progress: Cell<Option<Instant>>,
}

/// Progress events are sent at most this often (the last one always goes out).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl JobCtx {
    /// A context outside any runner, for running job code inline (tests, tools):
    /// its events go to the returned receiver, and the token cancels it.
    pub fn detached(kind: &str) -> (JobCtx, mpsc::UnboundedReceiver<JobEvent>, CancellationToken) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let ctx = JobCtx {
            id: 0,
            kind: kind.to_string(),
            tx,
            cancel: cancel.clone(),
            started: Instant::now(),
            last_progress: Cell::new(None),
        };
        (ctx, rx, cancel)
    }

    pub fn id(&self) -> JobId {
        self.id
    }

    fn send(&self, body: JobBody) {
        // The receiver only goes away when the front-end is exiting; nothing to do then.
        let _ = self.tx.send(JobEvent {
            id: self.id,
            job: self.kind.clone(),
            body,
        });
    }

    /// Report `done` of `total` `unit`s. Throttled; the rate is per second since the start.
    pub fn progress(&self, done: u64, total: Option<u64>, unit: &str) {
        let now = Instant::now();
        let finished = total == Some(done);
        if let Some(last) = self.last_progress.get()
            && !finished
            && now - last < PROGRESS_EVERY
        {
            return;
        }
        self.last_progress.set(Some(now));
        let secs = (now - self.started).as_secs_f64();
        let rate = (secs > 0.0).then(|| done as f64 / secs);
        self.send(JobBody::Progress {
            done,
            total,
            unit: unit.to_string(),
            rate,
            metrics: Vec::new(),
        });
    }

    /// Report `done` of `total` `unit`s with measurements of that unit (a
    /// training step's loss, learning rate, ...). Never throttled: each is a
    /// point on a curve.
    pub fn measure(&self, done: u64, total: Option<u64>, unit: &str, metrics: &[(&str, f64)]) {
        let now = Instant::now();
        self.last_progress.set(Some(now));
        let secs = (now - self.started).as_secs_f64();
        self.send(JobBody::Progress {
            done,
            total,
            unit: unit.to_string(),
            rate: (secs > 0.0).then(|| done as f64 / secs),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        });
    }

    pub fn log(&self, level: Level, message: impl Into<String>) {
        self.send(JobBody::Log {
            level,
            message: message.into(),
        });
    }

    /// Stream a piece of generated text.
    pub fn token(&self, text: impl Into<String>) {
        self.send(JobBody::Token { text: text.into() });
    }

    /// Report a delivered check-in.
    pub fn checkin(&self, id: &str, rule: &str, text: &str, due: &str, cites: &[String]) {
        self.send(JobBody::Checkin {
            id: id.to_string(),
            rule: rule.to_string(),
            text: text.to_string(),
            due: due.to_string(),
            cites: cites.to_vec(),
        });
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The job's cancellation token, for work that checks it itself (the chat engine).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// `Err(Cancelled)` once the job has been cancelled: call it between units of work.
    pub fn check_cancelled(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Starts jobs and keeps their cancellation tokens. Events arrive on the receiver
/// returned by [`Jobs::new`].
#[derive(Clone)]
pub struct Jobs {
    next_id: Arc<AtomicU64>,
    tx: mpsc::UnboundedSender<JobEvent>,
    running: Arc<Mutex<HashMap<JobId, CancellationToken>>>,
}

impl Jobs {
    pub fn new() -> (Jobs, mpsc::UnboundedReceiver<JobEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let jobs = Jobs {
            next_id: Arc::new(AtomicU64::new(1)),
            tx,
            running: Arc::new(Mutex::new(HashMap::new())),
        };
        (jobs, rx)
    }

    /// Run CPU-heavy or blocking work on a blocking thread. `work` returns the
    /// job's summary. Must be called inside a tokio runtime.
    pub fn spawn_blocking<T, F>(&self, kind: &str, title: impl Into<String>, work: F) -> JobId
    where
        T: Serialize,
        F: FnOnce(&JobCtx) -> anyhow::Result<T> + Send + 'static,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .expect("jobs lock")
            .insert(id, cancel.clone());
        let ctx = JobCtx {
            id,
            kind: kind.to_string(),
            tx: self.tx.clone(),
            cancel,
            started: Instant::now(),
            last_progress: Cell::new(None),
        };
        ctx.send(JobBody::Started {
            title: title.into(),
        });
        let running = self.running.clone();
        let tx = self.tx.clone();
        let kind = kind.to_string();
        let handle = tokio::task::spawn_blocking(move || {
            let result = work(&ctx).and_then(|summary| Ok(serde_json::to_value(summary)?));
            (ctx.is_cancelled(), result)
        });
        tokio::spawn(async move {
            let body = match handle.await {
                Ok((_, Ok(summary))) => JobBody::Done { summary },
                Ok((cancelled, Err(e))) if cancelled || e.is::<Cancelled>() => JobBody::Failed {
                    error: "cancelled".into(),
                },
                Ok((_, Err(e))) => JobBody::Failed {
                    error: format!("{e:#}"),
                },
                Err(join) => JobBody::Failed {
                    error: format!(
                        "internal error: the job stopped unexpectedly ({join}); see the log file"
                    ),
                },
            };
            if let JobBody::Failed { error } = &body {
                // Errors can quote an export's line: no content in logs.
                tracing::info!(job = %kind, id, "job failed: {}", crate::logging::redact(error));
            }
            running.lock().expect("jobs lock").remove(&id);
            let _ = tx.send(JobEvent {
                id,
                job: kind,
                body,
            });
        });
        id
    }

    /// Ask a job to stop; it finishes with `Failed{error:"cancelled"}`.
    pub fn cancel(&self, id: JobId) -> bool {
        match self.running.lock().expect("jobs lock").get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub fn cancel_all(&self) {
        for token in self.running.lock().expect("jobs lock").values() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(mut rx: mpsc::UnboundedReceiver<JobEvent>) -> Vec<JobEvent> {
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            let last = ev.body.is_final();
            out.push(ev);
            if last {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn a_job_reports_started_progress_log_done() {
        let (jobs, rx) = Jobs::new();
        let id = jobs.spawn_blocking("count", "counting", |ctx| {
            for i in 1..=3 {
                ctx.progress(i, Some(3), "items");
            }
            ctx.log(Level::Info, "counted");
            Ok(serde_json::json!({"items": 3}))
        });
        let events = collect(rx).await;
        assert!(events.iter().all(|e| e.id == id && e.job == "count"));
        let names: Vec<_> = events.iter().map(|e| e.body.name()).collect();
        assert_eq!(names.first(), Some(&"started"));
        assert_eq!(names.last(), Some(&"done"));
        assert!(names.contains(&"log"));
        // Throttled, but the final progress always gets through.
        let last_progress = events.iter().rev().find_map(|e| match &e.body {
            JobBody::Progress { done, .. } => Some(*done),
            _ => None,
        });
        assert_eq!(last_progress, Some(3));
        let json = serde_json::to_string(events.last().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"event":"done","job":"count","id":1,"summary":{"items":3}}"#
        );
    }

    #[tokio::test]
    async fn errors_become_failed_with_the_whole_chain() {
        let (jobs, rx) = Jobs::new();
        jobs.spawn_blocking::<(), _>("x", "x", |_| {
            Err(anyhow::anyhow!("line 3: bad date").context("chat.txt"))
        });
        let events = collect(rx).await;
        assert_eq!(
            events.last().unwrap().body,
            JobBody::Failed {
                error: "chat.txt: line 3: bad date".into()
            }
        );
    }

    #[tokio::test]
    async fn cancellation_stops_a_job() {
        let (jobs, rx) = Jobs::new();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let id = jobs.spawn_blocking::<(), _>("slow", "slow", move |ctx| {
            go_rx.recv().unwrap();
            ctx.check_cancelled()?;
            Ok(())
        });
        assert!(jobs.cancel(id));
        go_tx.send(()).unwrap();
        let events = collect(rx).await;
        assert_eq!(
            events.last().unwrap().body,
            JobBody::Failed {
                error: "cancelled".into()
            }
        );
        assert!(!jobs.cancel(id), "a finished job is forgotten");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_instead_of_taking_twin_down() {
        let (jobs, rx) = Jobs::new();
        jobs.spawn_blocking::<(), _>("boom", "boom", |_| panic!("oops"));
        let events = collect(rx).await;
        match &events.last().unwrap().body {
            JobBody::Failed { error } => assert!(error.contains("internal error"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_serialize_with_their_text() {
        let (ctx, mut rx, _) = JobCtx::detached("chat");
        ctx.token("Hel");
        ctx.token("lo");
        let texts: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| serde_json::to_string(&e).unwrap())
            .collect();
        assert_eq!(
            texts,
            vec![
                r#"{"event":"token","job":"chat","id":0,"text":"Hel"}"#,
                r#"{"event":"token","job":"chat","id":0,"text":"lo"}"#
            ]
        );
    }

    #[test]
    fn checkins_serialize_with_their_own_id() {
        let (ctx, mut rx, _) = JobCtx::detached("checkin");
        ctx.checkin(
            "00000000000000ab",
            "daily 08:30",
            "Good morning!",
            "2026-11-21T08:30:00+01:00",
            &[],
        );
        let line = serde_json::to_string(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            line,
            r#"{"event":"checkin","job":"checkin","id":"00000000000000ab","rule":"daily 08:30","text":"Good morning!","due":"2026-11-21T08:30:00+01:00","cites":[]}"#
        );
    }

    #[test]
    fn measurements_ride_on_progress_unthrottled() {
        let (ctx, mut rx, _) = JobCtx::detached("train");
        ctx.measure(1, Some(2), "steps", &[("loss", 2.5)]);
        ctx.measure(2, Some(2), "steps", &[("loss", 2.0), ("lr", 0.001)]);
        let lines: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| serde_json::to_string(&e).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].ends_with(r#""unit":"steps","rate":null,"metrics":{"loss":2.0,"lr":0.001}}"#)
                || lines[1].contains(r#""metrics":{"loss":2.0,"lr":0.001}}"#),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn progress_serializes_with_unit_and_rate() {
        let ev = JobEvent {
            id: 2,
            job: "ingest".into(),
            body: JobBody::Progress {
                done: 5,
                total: None,
                unit: "files".into(),
                rate: Some(2.345),
                metrics: Vec::new(),
            },
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"event":"progress","job":"ingest","id":2,"done":5,"total":null,"unit":"files","rate":2.3}"#
        );
    }
}
