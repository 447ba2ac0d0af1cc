//! The `checkin` job, shared by `twin --batch checkin` and the TUI: run the
//! scheduler once, compose what is due, keep it, mark it delivered, and report
//! each check-in as a `checkin` event.

use std::fmt;

use serde::Serialize;

use super::compose::{self, system_prompt};
use super::record::Checkin;
use super::triggers::{History, StoreHistory};
use super::{Clock, Scheduler, Settings};
use crate::ingest::identity;
use crate::ingest::records::{Contact, Message};
use crate::jobs::{JobCtx, Level, Summary};
use crate::llm::{Engine, EngineConfig};
use crate::store::{Store, StoreError};

/// Writes check-ins: with the chat model when one is configured and present
/// (started on first use), else with the template.
pub struct Composer {
    model: Option<EngineConfig>,
    engine: Option<Engine>,
    system: Option<String>,
    /// Stops a generation when the job is cancelled (the TUI quitting).
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

impl Composer {
    /// `model`: the chat engine's config, or `None` for templates only. A model
    /// file that does not exist means templates too.
    pub fn new(model: Option<EngineConfig>) -> Composer {
        Composer {
            model: model.filter(|m| m.model.is_file()),
            engine: None,
            system: None,
            cancel: None,
        }
    }

    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    fn system(&mut self, store: &Store) -> Result<String, StoreError> {
        if let Some(s) = &self.system {
            return Ok(s.clone());
        }
        let me = store
            .get::<Contact>(Contact::key(identity::me_id()))?
            .map(|c| c.name)
            .unwrap_or_else(|| "me".to_string());
        // A few of my latest messages show the model how I write.
        let mut mine: Vec<(i64, String)> = Vec::new();
        for r in store.scan::<Message>([]) {
            let (_, m) = r?;
            if m.author == identity::me_id() && m.text.split_whitespace().count() >= 3 {
                mine.push((m.at_ms, m.text));
            }
        }
        mine.sort();
        let examples: Vec<String> = mine.into_iter().rev().take(6).map(|(_, t)| t).collect();
        let s = system_prompt(&me, &examples);
        self.system = Some(s.clone());
        Ok(s)
    }

    /// Compose `c` (kept as is when it already has text from an earlier run).
    pub fn compose(&mut self, store: &Store, c: &mut Checkin) -> Result<(), StoreError> {
        if c.text.is_some() {
            return Ok(());
        }
        if c.evidence.is_none() && c.subject.is_none() {
            // A scheduled check-in is grounded in the latest message.
            c.evidence = super::triggers::latest_message(store, c.due_ms)?;
        }
        if self.engine.is_none()
            && let Some(m) = self.model.clone()
        {
            self.engine = Some(Engine::start(m));
        }
        let system = if self.engine.is_some() {
            self.system(store)?
        } else {
            String::new()
        };
        let (text, cites, by_model) =
            compose::compose(c, self.engine.as_ref(), &system, self.cancel.clone());
        c.text = Some(text);
        c.cites = cites;
        c.by_model = by_model;
        Ok(())
    }
}

/// One delivered check-in, as `done` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivered {
    pub id: String,
    pub rule: String,
    pub text: String,
    pub due: String,
    pub cites: Vec<String>,
    pub by_model: bool,
}

/// The `done` summary of `checkin --due`.
#[derive(Debug, Clone, Serialize)]
pub struct DueReport {
    pub at: String,
    pub delivered: Vec<Delivered>,
    pub planned: usize,
    pub missed: usize,
    pub skipped: usize,
    pub held: usize,
    /// When the next check-in may fall due.
    pub next: Option<String>,
}

impl fmt::Display for DueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.delivered.is_empty() {
            write!(f, "no check-in due at {}", self.at)?;
        }
        for (i, d) in self.delivered.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "[{}] {} ({}): {}", d.id, d.rule, d.due, d.text)?;
        }
        if self.missed + self.skipped > 0 {
            write!(
                f,
                "\n({} missed while twin was not running, {} over the day's maximum)",
                self.missed, self.skipped
            )?;
        }
        if let Some(n) = &self.next {
            write!(f, "\nnext: {n}")?;
        }
        Ok(())
    }
}

impl Summary for DueReport {}

/// Run the scheduler once and deliver what is due, each reported through
/// `ctx` as a `checkin` event as soon as it is marked delivered.
pub fn deliver_due(
    store: &Store,
    settings: &Settings,
    clock: &dyn Clock,
    composer: &mut Composer,
    ctx: &JobCtx,
) -> anyhow::Result<DueReport> {
    let sched = Scheduler::new(store, settings, clock);
    let history = StoreHistory { store };
    let tick = sched.tick(Some(&history as &dyn History))?;
    composer.cancel = Some(ctx.cancel_token());
    let mut delivered = Vec::new();
    for mut c in tick.deliver.clone() {
        ctx.check_cancelled()?;
        composer.compose(store, &mut c)?;
        // Cancelled mid-generation (the TUI quit): the template text is not kept.
        ctx.check_cancelled()?;
        // Kept before it is marked delivered: a crash now delivers this text next time.
        sched.save_composed(&c)?;
        if !sched.mark_delivered(c.id)? {
            continue;
        }
        let d = Delivered {
            id: c.id_hex(),
            rule: c.rule.clone(),
            text: c.text.clone().unwrap_or_default(),
            due: settings.rfc3339(c.due()),
            cites: c.cites.clone(),
            by_model: c.by_model,
        };
        ctx.checkin(&d.id, &d.rule, &d.text, &d.due, &d.cites);
        delivered.push(d);
    }
    if tick.missed > 0 {
        ctx.log(
            Level::Info,
            format!(
                "{} check-in(s) missed while twin was not running were passed over (checkin.catch_up)",
                tick.missed
            ),
        );
    }
    let next = sched.next_wake()?.map(|t| settings.rfc3339(t));
    Ok(DueReport {
        at: settings.rfc3339(clock.now()),
        delivered,
        planned: tick.planned,
        missed: tick.missed,
        skipped: tick.skipped,
        held: tick.held,
        next,
    })
}

/// A check-in as `--list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    pub id: String,
    pub rule: String,
    pub due: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cites: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Listed {
    pub fn of(c: &Checkin, s: &Settings, upcoming: bool) -> Listed {
        let status = if upcoming && c.status == super::Status::Pending {
            "upcoming".to_string()
        } else {
            c.status.name().to_string()
        };
        let at =
            |ms: i64| s.rfc3339(chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default());
        Listed {
            id: c.id_hex(),
            rule: c.rule.clone(),
            due: at(c.ready_ms()),
            status,
            subject: c.subject.clone(),
            text: c.text.clone(),
            cites: c.cites.clone(),
            delivered: c.delivered_ms.map(at),
            reason: c.reason.clone(),
        }
    }
}

/// The `done` summary of `checkin --list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListReport {
    pub at: String,
    pub timezone: String,
    pub rules: Vec<String>,
    /// Every rule, switched off ones too, with its cron pattern or its problem.
    pub schedule: Vec<super::rules::RuleRow>,
    pub upcoming: Vec<Listed>,
    pub history: Vec<Listed>,
}

impl fmt::Display for ListReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rules ({}): {}", self.timezone, self.rules.join("; "))?;
        let off: Vec<&str> = self
            .schedule
            .iter()
            .filter(|r| !r.enabled)
            .map(|r| r.rule.as_str())
            .collect();
        if !off.is_empty() {
            writeln!(f, "switched off: {}", off.join("; "))?;
        }
        writeln!(f, "upcoming:")?;
        if self.upcoming.is_empty() {
            writeln!(f, "  nothing")?;
        }
        for u in &self.upcoming {
            let about = u
                .subject
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            writeln!(
                f,
                "  {}  {}  {}{about}  [{}]",
                u.due, u.status, u.rule, u.id
            )?;
        }
        write!(f, "history:")?;
        if self.history.is_empty() {
            write!(f, "\n  nothing yet")?;
        }
        for h in &self.history {
            write!(
                f,
                "\n  {}  {}  {}  [{}]{}",
                h.delivered.as_deref().unwrap_or(&h.due),
                h.status,
                h.rule,
                h.id,
                h.text
                    .as_ref()
                    .map(|t| format!("\n    {t}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

impl Summary for ListReport {}

/// Upcoming check-ins (the next `days` days) and the latest history.
pub fn list(
    store: &Store,
    settings: &Settings,
    clock: &dyn Clock,
    timezone: &str,
    days: i64,
) -> anyhow::Result<ListReport> {
    let sched = Scheduler::new(store, settings, clock);
    let history = StoreHistory { store };
    let upcoming = sched.upcoming(Some(&history as &dyn History), days)?;
    Ok(ListReport {
        at: settings.rfc3339(clock.now()),
        timezone: timezone.to_string(),
        rules: settings.rules.iter().map(|r| r.name.clone()).collect(),
        schedule: settings.rule_rows.clone(),
        upcoming: upcoming
            .iter()
            .map(|c| Listed::of(c, settings, true))
            .collect(),
        history: sched
            .history(50)?
            .iter()
            .map(|c| Listed::of(c, settings, false))
            .collect(),
    })
}

/// The `done` summary of `--snooze` and `--dismiss`.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub checkin: Listed,
}

impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {}",
            self.checkin.rule, self.checkin.id, self.checkin.status
        )?;
        if self.checkin.status == "snoozed" {
            write!(f, " until {}", self.checkin.due)?;
        }
        Ok(())
    }
}

impl Summary for Changed {}

/// The chat engine config for composing, when `checkin.compose` allows it.
pub fn model_for(
    settings: &Settings,
    chat: &crate::config::ChatConfig,
    models_dir: &std::path::Path,
) -> Option<EngineConfig> {
    settings
        .use_model
        .then(|| EngineConfig::from_config(chat, models_dir))
        .filter(|e| e.model.is_file())
}
