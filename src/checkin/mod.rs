//! Proactive check-ins: the twin reaches out on its own, on a schedule and when
//! the person's history asks for it (a birthday, the day after an interview, a
//! year since a milestone, a close contact gone quiet).
//!
//! Core only (no UI): both front-ends drive the same [`Scheduler`]. The TUI runs
//! it while open, on a timer set to [`Scheduler::next_wake`]; `twin --batch
//! checkin --due` runs it from cron or a systemd timer. Time comes from a
//! [`Clock`], so every rule, policy and restart is tested with a fake one.
//!
//! Delivering is at most once: a check-in's id is derived from its rule and local
//! due time, so re-planning after a restart finds it again instead of making a
//! second one; its composed text is stored before it is marked delivered, so a
//! crash in between delivers that same text once on the next run.

pub mod check;
pub mod compose;
pub mod job;
pub mod record;
pub mod rules;
pub mod schedule;
pub mod triggers;

use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Serialize;

pub use compose::{OpeningTurn, opening_turn};
pub use record::{Checkin, Status};
use schedule::{QuietHours, Rule, local_date};
use triggers::{History, TriggerSettings};

use crate::ingest::pipeline::Zone;
use crate::store::{Store, StoreError, Tree, TxError};

/// Where the time comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests (and `--at`) set by hand.
pub struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    pub fn new(at: DateTime<Utc>) -> FakeClock {
        FakeClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock") = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock");
        *t += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

/// After downtime, which missed check-ins are still delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Only the newest one.
    Latest,
    /// Those no older than `catch_up_hours`.
    MaxAge,
}

/// A check-in that became ready more than this after its time counts as missed
/// (twin was not running, or cron runs rarely).
const LATE_AFTER: Duration = Duration::minutes(30);
/// At most this many past occurrences of one rule are planned after downtime.
const MAX_CATCH_UP_PER_RULE: usize = 64;
/// `--list` and the Check-ins view show each rule's next few times.
const UPCOMING_PER_RULE: usize = 3;

/// `[checkin]`, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    pub zone: Zone,
    pub rules: Vec<Rule>,
    /// Every rule as written, switched-off ones too, for the view and `--list`.
    pub rule_rows: Vec<rules::RuleRow>,
    pub quiet: Option<QuietHours>,
    pub max_per_day: u32,
    pub min_gap: Duration,
    pub catch_up: CatchUp,
    /// 0: no limit.
    pub catch_up_hours: i64,
    pub snooze: Duration,
    pub triggers: bool,
    pub trigger_time: NaiveTime,
    pub silence_days: i64,
    /// Compose with the chat model when it is present.
    pub use_model: bool,
}

impl Settings {
    /// From the config; an error names the key and says what to write.
    pub fn from_config(c: &crate::config::Config) -> Result<Settings, String> {
        let k = &c.checkin;
        let tz = if k.timezone.trim().is_empty() {
            &c.ingest.timezone
        } else {
            &k.timezone
        };
        let key = if k.timezone.trim().is_empty() {
            "ingest.timezone"
        } else {
            "checkin.timezone"
        };
        Ok(Settings {
            enabled: k.enabled,
            zone: Zone::parse(tz).map_err(|e| format!("{key}: {e}"))?,
            rules: schedule::parse_rules(&k.rules).map_err(|e| format!("checkin.rules: {e}"))?,
            rule_rows: rules::rows(k),
            quiet: QuietHours::parse(&k.quiet_hours)
                .map_err(|e| format!("checkin.quiet_hours: {e}"))?,
            max_per_day: k.max_per_day.max(1) as u32,
            min_gap: Duration::minutes(k.min_gap_minutes.max(0)),
            catch_up: if k.catch_up == "max_age" {
                CatchUp::MaxAge
            } else {
                CatchUp::Latest
            },
            catch_up_hours: k.catch_up_hours.max(0),
            snooze: Duration::minutes(k.snooze_minutes.max(1)),
            triggers: k.triggers,
            trigger_time: schedule::parse_time(&k.trigger_time)
                .map_err(|e| format!("checkin.trigger_time: {e}"))?,
            silence_days: k.silence_days.max(1),
            use_model: k.compose != "template",
        })
    }

    fn trigger_settings(&self) -> TriggerSettings {
        TriggerSettings {
            zone: self.zone,
            time: self.trigger_time,
            silence_days: self.silence_days,
            close_min_messages: 50,
        }
    }

    /// The local wall-clock time of an instant, as ids and people see it.
    pub fn local_string(&self, at: DateTime<Utc>) -> String {
        self.zone
            .local(at.timestamp_millis())
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// RFC 3339 in the user's zone ("2026-11-21T08:30:00+01:00").
    pub fn rfc3339(&self, at: DateTime<Utc>) -> String {
        let local = self.zone.local(at.timestamp_millis());
        let offset = (local - at.naive_utc()).num_seconds() as i32;
        match chrono::FixedOffset::east_opt(offset) {
            Some(o) => at.with_timezone(&o).to_rfc3339(),
            None => at.to_rfc3339(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckinError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no check-in with id `{0}`; `twin checkin --list` shows the ids")]
    NotFound(String),
}

/// What one run of the scheduler decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tick {
    /// Deliver these now, in order (each still open in the store).
    #[serde(skip)]
    pub deliver: Vec<Checkin>,
    /// Newly planned from rules and triggers.
    pub planned: usize,
    /// Passed over by the catch-up policy.
    pub missed: usize,
    /// Over the day's maximum.
    pub skipped: usize,
    /// Held back by quiet hours or the minimum gap.
    pub held: usize,
}

/// The scheduler over one store.
pub struct Scheduler<'a> {
    pub store: &'a Store,
    pub settings: &'a Settings,
    pub clock: &'a dyn Clock,
}

impl<'a> Scheduler<'a> {
    pub fn new(store: &'a Store, settings: &'a Settings, clock: &'a dyn Clock) -> Scheduler<'a> {
        Scheduler {
            store,
            settings,
            clock,
        }
    }

    fn cursor(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v = self
            .store
            .tree(Tree::Index)
            .get(record::cursor_key())
            .map_err(|e| StoreError::Aborted(e.to_string()))?;
        Ok(v.and_then(|b| {
            let ms = i64::from_be_bytes(b.as_ref().try_into().ok()?);
            DateTime::from_timestamp_millis(ms)
        }))
    }

    /// Every stored check-in.
    pub fn all(&self) -> Result<Vec<Checkin>, StoreError> {
        self.store
            .scan::<Checkin>([])
            .map(|r| r.map(|(_, c)| c))
            .collect()
    }

    /// The check-ins of rules and triggers that fell due in `(from, to]`.
    fn planned(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        history: Option<&dyn History>,
    ) -> Result<Vec<Checkin>, StoreError> {
        let s = self.settings;
        let mut out = Vec::new();
        for rule in &s.rules {
            for due in rule.occurrences(s.zone, from, to, MAX_CATCH_UP_PER_RULE) {
                out.push(self.scheduled(rule, due));
            }
        }
        if s.triggers
            && let Some(h) = history
        {
            for f in triggers::find(h, &s.trigger_settings(), from, to)? {
                out.push(self.triggered(f));
            }
        }
        Ok(out)
    }

    /// The check-in of a rule at one of its times.
    fn scheduled(&self, rule: &Rule, due: DateTime<Utc>) -> Checkin {
        let local = self.settings.local_string(due);
        Checkin {
            id: Checkin::id_for(&rule.name, &local),
            rule: rule.name.clone(),
            due_ms: due.timestamp_millis(),
            local,
            status: Status::Pending,
            not_before_ms: None,
            subject: None,
            years: None,
            evidence: None,
            text: None,
            cites: Vec::new(),
            by_model: false,
            delivered_ms: None,
            reason: None,
        }
    }

    /// The check-in a trigger asks for.
    fn triggered(&self, f: triggers::Found) -> Checkin {
        let local = self.settings.local_string(f.due);
        let what = format!("{}|{}|{}", f.kind.name(), f.subject, f.evidence.cite);
        Checkin {
            id: Checkin::id_for(&what, &local),
            rule: f.kind.name().to_string(),
            due_ms: f.due.timestamp_millis(),
            local,
            status: Status::Pending,
            not_before_ms: None,
            subject: Some(f.subject),
            years: f.years,
            evidence: Some(f.evidence),
            text: None,
            cites: Vec::new(),
            by_model: false,
            delivered_ms: None,
            reason: None,
        }
    }

    /// Plan what fell due since the last run, apply the catch-up policy, quiet
    /// hours, the day's maximum and the minimum gap, and return what to deliver
    /// now. Everything it decides is stored in one transaction.
    pub fn tick(&self, history: Option<&dyn History>) -> Result<Tick, StoreError> {
        let s = self.settings;
        let now = self.clock.now();
        if !s.enabled {
            return Ok(Tick::default());
        }
        let last = self.cursor()?;
        // A fresh install looks back as far as catch-up would reach.
        let lookback = Duration::hours(if s.catch_up_hours > 0 {
            s.catch_up_hours
        } else {
            24
        });
        let from = last.unwrap_or(now - lookback).min(now);
        let planned = self.planned(from, now, history)?;

        let mut existing: std::collections::HashMap<u64, Checkin> =
            self.all()?.into_iter().map(|c| (c.id, c)).collect();
        let mut tick = Tick::default();
        let mut changed: Vec<Checkin> = Vec::new();
        for c in planned {
            if let std::collections::hash_map::Entry::Vacant(e) = existing.entry(c.id) {
                tick.planned += 1;
                changed.push(c.clone());
                e.insert(c);
            }
        }

        let now_ms = now.timestamp_millis();
        let mut ready: Vec<Checkin> = existing
            .values()
            .filter(|c| c.status.open() && c.ready_ms() <= now_ms)
            .cloned()
            .collect();
        ready.sort_by_key(|c| (c.ready_ms(), c.id));
        let late = |c: &Checkin| now_ms - c.ready_ms() > LATE_AFTER.num_milliseconds();
        let too_old = |c: &Checkin| {
            s.catch_up_hours > 0 && now_ms - c.ready_ms() > s.catch_up_hours * 3_600_000
        };
        let (late_ones, fresh): (Vec<Checkin>, Vec<Checkin>) =
            ready.into_iter().partition(|c| late(c));
        let mut candidates = fresh;
        let mut missed = Vec::new();
        match s.catch_up {
            CatchUp::Latest => {
                let keep = if candidates.is_empty() {
                    late_ones.last().map(|c| c.id)
                } else {
                    None
                };
                for c in late_ones {
                    if Some(c.id) == keep && !too_old(&c) {
                        candidates.insert(0, c);
                    } else {
                        missed.push(c);
                    }
                }
            }
            CatchUp::MaxAge => {
                for c in late_ones {
                    if too_old(&c) {
                        missed.push(c);
                    } else {
                        candidates.push(c);
                    }
                }
                candidates.sort_by_key(|c| (c.ready_ms(), c.id));
            }
        }
        for mut c in missed {
            c.status = Status::Missed;
            c.reason = Some(format!(
                "due {} while twin was not delivering; catch_up = {}",
                c.local,
                match s.catch_up {
                    CatchUp::Latest => "latest delivers only the newest",
                    CatchUp::MaxAge => "max_age drops those older than catch_up_hours",
                }
            ));
            tick.missed += 1;
            changed.push(c);
        }

        // Delivered today and the last delivery, for the day's maximum and the gap.
        let today = local_date(s.zone, now);
        let mut delivered_today = existing
            .values()
            .filter_map(|c| c.delivered_ms)
            .filter(|ms| {
                local_date(
                    s.zone,
                    DateTime::from_timestamp_millis(*ms).unwrap_or_default(),
                ) == today
            })
            .count() as u32;
        let mut last_delivered = existing.values().filter_map(|c| c.delivered_ms).max();
        for mut c in candidates {
            if let Some(q) = &s.quiet {
                let end = q.end_after(s.zone, now);
                if end > now {
                    c.not_before_ms = Some(end.timestamp_millis());
                    tick.held += 1;
                    changed.push(c);
                    continue;
                }
            }
            if delivered_today >= s.max_per_day {
                c.status = Status::Skipped;
                c.reason = Some(format!(
                    "{} check-ins were delivered on {today} already (checkin.max_per_day)",
                    s.max_per_day
                ));
                tick.skipped += 1;
                changed.push(c);
                continue;
            }
            // A snoozed one comes back when asked, gap or not.
            if let Some(last) = last_delivered.filter(|_| c.status != Status::Snoozed) {
                let gap_end = last + s.min_gap.num_milliseconds();
                if gap_end > now_ms {
                    c.not_before_ms = Some(gap_end);
                    tick.held += 1;
                    changed.push(c);
                    continue;
                }
            }
            delivered_today += 1;
            last_delivered = Some(now_ms);
            tick.deliver.push(c);
        }

        let cursor = last.map_or(now, |l| l.max(now)).timestamp_millis();
        self.store.write(|tx| {
            for c in &changed {
                // A check-in delivered meanwhile is never reopened.
                if let Some(old) = tx.get::<Checkin>(Checkin::key(c.id))?
                    && !old.status.open()
                    && c.status.open()
                {
                    continue;
                }
                tx.put(Checkin::key(c.id), c)?;
            }
            tx.put_raw(
                Tree::Index,
                record::cursor_key(),
                cursor.to_be_bytes().to_vec(),
            )?;
            Ok::<_, TxError>(())
        })?;
        Ok(tick)
    }

    /// Keep the composed text of an open check-in (before delivering it).
    pub fn save_composed(&self, c: &Checkin) -> Result<(), StoreError> {
        self.store.write(|tx| {
            match tx.get::<Checkin>(Checkin::key(c.id))? {
                Some(old) if old.status.open() => {
                    let mut new = old;
                    new.text = c.text.clone();
                    new.cites = c.cites.clone();
                    new.by_model = c.by_model;
                    new.status = Status::Composed;
                    tx.put(Checkin::key(c.id), &new)?;
                }
                _ => {}
            }
            Ok::<_, TxError>(())
        })?;
        self.store.flush()
    }

    /// Mark delivered now; returns false when it was no longer open (delivered
    /// or dismissed meanwhile), in which case it must not be shown.
    pub fn mark_delivered(&self, id: u64) -> Result<bool, StoreError> {
        let now = self.clock.now().timestamp_millis();
        let done = self
            .store
            .write(|tx| match tx.get::<Checkin>(Checkin::key(id))? {
                Some(mut c) if c.status.open() => {
                    c.status = Status::Delivered;
                    c.delivered_ms = Some(now);
                    c.not_before_ms = None;
                    tx.put(Checkin::key(id), &c)?;
                    Ok::<_, TxError>(true)
                }
                _ => Ok(false),
            })?;
        self.store.flush()?;
        Ok(done)
    }

    fn change(&self, id: &str, f: impl Fn(&mut Checkin)) -> Result<Checkin, CheckinError> {
        let n = Checkin::parse_id(id).ok_or_else(|| CheckinError::NotFound(id.to_string()))?;
        // One not yet stored may be an upcoming rule time (the next week's).
        let upcoming = match self.store.get::<Checkin>(Checkin::key(n))? {
            Some(_) => None,
            None => self.upcoming(None, 7)?.into_iter().find(|c| c.id == n),
        };
        let found = self.store.write(|tx| {
            let Some(mut c) = tx.get::<Checkin>(Checkin::key(n))?.or(upcoming.clone()) else {
                return Ok::<_, TxError>(None);
            };
            f(&mut c);
            tx.put(Checkin::key(n), &c)?;
            Ok(Some(c))
        })?;
        found.ok_or_else(|| CheckinError::NotFound(id.to_string()))
    }

    /// Put a check-in off for `checkin.snooze_minutes` (or `minutes`): it is
    /// delivered again then.
    pub fn snooze(&self, id: &str, minutes: Option<i64>) -> Result<Checkin, CheckinError> {
        let until = self.clock.now()
            + minutes
                .map(Duration::minutes)
                .unwrap_or(self.settings.snooze);
        self.change(id, |c| {
            c.status = Status::Snoozed;
            c.not_before_ms = Some(until.timestamp_millis());
        })
    }

    /// A rule was changed, switched off or deleted: its check-ins that are
    /// stored but not yet delivered (held by quiet hours, the gap, a snooze)
    /// are dismissed, saying why. Returns how many.
    pub fn retire_rule(&self, rule: &str) -> Result<usize, StoreError> {
        let open: Vec<Checkin> = self
            .all()?
            .into_iter()
            .filter(|c| {
                c.status.open() && c.evidence.is_none() && c.rule.eq_ignore_ascii_case(rule.trim())
            })
            .collect();
        if open.is_empty() {
            return Ok(0);
        }
        self.store.write(|tx| {
            for c in &open {
                let mut c = c.clone();
                c.status = Status::Dismissed;
                c.not_before_ms = None;
                c.reason = Some(format!(
                    "its rule `{}` was changed, switched off or deleted",
                    c.rule
                ));
                tx.put(Checkin::key(c.id), &c)?;
            }
            Ok::<_, TxError>(())
        })?;
        Ok(open.len())
    }

    /// Never deliver it (again).
    pub fn dismiss(&self, id: &str) -> Result<Checkin, CheckinError> {
        self.change(id, |c| {
            c.status = Status::Dismissed;
            c.not_before_ms = None;
        })
    }

    /// When the scheduler next has something to do: the next rule time, trigger
    /// time, or put-off check-in.
    pub fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let s = self.settings;
        if !s.enabled {
            return Ok(None);
        }
        let now = self.clock.now();
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| {
            if t > now && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for r in &s.rules {
            if let Some(t) = r.next_after(s.zone, now) {
                consider(t);
            }
        }
        if s.triggers {
            let today = local_date(s.zone, now);
            for d in [today, today + Duration::days(1)] {
                consider(schedule::at_local(s.zone, d, s.trigger_time));
            }
        }
        for c in self.all()? {
            if c.status.open() {
                let ready = DateTime::from_timestamp_millis(c.ready_ms()).unwrap_or_default();
                consider(ready.max(now + Duration::seconds(1)));
            }
        }
        Ok(next)
    }

    /// What is coming: open check-ins, each rule's next times, and triggers in
    /// the next `days` days.
    pub fn upcoming(
        &self,
        history: Option<&dyn History>,
        days: i64,
    ) -> Result<Vec<Checkin>, StoreError> {
        let now = self.clock.now();
        let stored = self.all()?;
        let mut out: Vec<Checkin> = stored.iter().filter(|c| c.status.open()).cloned().collect();
        let known: std::collections::HashSet<u64> = stored.iter().map(|c| c.id).collect();
        let until = now + Duration::days(days);
        // Each rule's next few times, and what triggers fall in the window.
        let mut planned = Vec::new();
        for rule in &self.settings.rules {
            let mut t = now;
            for _ in 0..UPCOMING_PER_RULE {
                match rule.next_after(self.settings.zone, t) {
                    Some(n) if n <= until => {
                        planned.push(self.scheduled(rule, n));
                        t = n;
                    }
                    _ => break,
                }
            }
        }
        if let Some(h) = history.filter(|_| self.settings.triggers) {
            let s = self.settings.trigger_settings();
            for f in triggers::find(h, &s, now, until)? {
                planned.push(self.triggered(f));
            }
        }
        for c in planned {
            if !known.contains(&c.id) {
                out.push(c);
            }
        }
        out.sort_by_key(|c| (c.ready_ms(), c.id));
        Ok(out)
    }

    /// Delivered, dismissed, missed and skipped check-ins, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<Checkin>, StoreError> {
        let mut out: Vec<Checkin> = self
            .all()?
            .into_iter()
            .filter(|c| !c.status.open())
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.delivered_ms.unwrap_or(c.due_ms)));
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
