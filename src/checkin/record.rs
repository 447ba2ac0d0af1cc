//! What the `checkins` tree holds: one [`Checkin`] per due time of a rule or
//! trigger, keyed by its id, and the scheduler's cursor in `index`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::triggers::Evidence;
use crate::ingest::records::id_of;
use crate::store::{Key, Record, Tree};

/// Where a check-in is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Due (or not yet due); not delivered.
    Pending,
    /// Written (the text is kept) but not yet delivered: a crash here delivers
    /// this text on the next run, never a second one.
    Composed,
    Delivered,
    /// Put off until `not_before_ms`, then delivered again.
    Snoozed,
    Dismissed,
    /// Passed over by the catch-up policy after downtime.
    Missed,
    /// Not delivered because the day's maximum was reached.
    Skipped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Composed => "composed",
            Status::Delivered => "delivered",
            Status::Snoozed => "snoozed",
            Status::Dismissed => "dismissed",
            Status::Missed => "missed",
            Status::Skipped => "skipped",
        }
    }

    /// Still to be delivered.
    pub fn open(self) -> bool {
        matches!(self, Status::Pending | Status::Composed | Status::Snoozed)
    }
}

/// One check-in. Key: [`Checkin::key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkin {
    /// Stable: the same rule at the same local time is the same check-in, on
    /// every run and across DST overlaps.
    pub id: u64,
    /// The rule as written ("daily 08:30") or the trigger ("birthday").
    pub rule: String,
    pub due_ms: i64,
    /// The local wall-clock time it was due, as shown to people.
    pub local: String,
    pub status: Status,
    /// Not before this (snoozed, or held by quiet hours or the minimum gap).
    #[serde(default)]
    pub not_before_ms: Option<i64>,
    /// Whom or what a trigger is about.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub years: Option<i32>,
    /// The message (or memory) it is grounded in.
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// The composed text (kept from [`Status::Composed`] on).
    #[serde(default)]
    pub text: Option<String>,
    /// Citations in the text: `m:<id>`.
    #[serde(default)]
    pub cites: Vec<String>,
    /// Written by the model (else by the template).
    #[serde(default)]
    pub by_model: bool,
    #[serde(default)]
    pub delivered_ms: Option<i64>,
    /// Why it was missed or skipped.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Record for Checkin {
    const TREE: Tree = Tree::Checkins;
}

impl Checkin {
    pub fn id_for(rule: &str, local: &str) -> u64 {
        id_of(&[b"checkin", rule.as_bytes(), local.as_bytes()])
    }

    pub fn key(id: u64) -> Key {
        Key::new().u64(id)
    }

    /// The id as people and scripts see it: 16 hex digits.
    pub fn id_hex(&self) -> String {
        format!("{:016x}", self.id)
    }

    pub fn parse_id(s: &str) -> Option<u64> {
        u64::from_str_radix(s.trim(), 16).ok()
    }

    pub fn due(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.due_ms).unwrap_or_default()
    }

    /// When it may be delivered: its due time, or later when put off.
    pub fn ready_ms(&self) -> i64 {
        self.not_before_ms
            .map_or(self.due_ms, |n| n.max(self.due_ms))
    }
}

/// The scheduler's cursor: rules and triggers are expanded up to this instant.
pub fn cursor_key() -> Key {
    Key::new().bytes(b"k").str("checkin/last_run")
}
