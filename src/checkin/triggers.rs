//! Check-ins the person's own history asks for: birthdays and anniversaries
//! found in messages, upcoming events ("interview on Friday" -> a follow-up the
//! day after), milestones (a year since "we got engaged"), and long silence from
//! a close contact.
//!
//! The seam for memory: triggers read [`Evidence`] through the [`History`]
//! trait. Today [`StoreHistory`] reads stored messages and contacts straight from
//! the store; when `src/memory` lands, a memory-backed `History` (episodes,
//! facts with dates, importance) plugs in here and its records are cited as
//! `[m:ID]` the same way.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::schedule::{at_local, local_date};
use crate::ingest::identity;
use crate::ingest::pipeline::Zone;
use crate::ingest::records::{Contact, Conversation, Id, Message};
use crate::store::{Store, StoreError};

/// One item of history a check-in can be grounded in and cite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// How a check-in cites it: `m:<message key in hex>` (a memory id later).
    pub cite: String,
    pub at_ms: i64,
    pub text: String,
    pub author_name: String,
    pub from_me: bool,
    /// The other person of a one-to-one conversation, when there is one.
    #[serde(default)]
    pub with: Option<String>,
}

/// A contact's activity, for silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub name: String,
    pub messages: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Their latest message, to cite.
    pub last: Option<Evidence>,
}

/// Where triggers read the person's history from.
pub trait History {
    /// Items that may hold a trigger (messages today; memories later).
    fn items(&self) -> Result<Vec<Evidence>, StoreError>;
    /// Contacts other than me with their activity.
    fn contacts(&self) -> Result<Vec<Activity>, StoreError>;
}

/// The kind of a triggered check-in; its name is the check-in's `rule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Birthday,
    Anniversary,
    Event,
    Milestone,
    Silence,
}

impl TriggerKind {
    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Birthday => "birthday",
            TriggerKind::Anniversary => "anniversary",
            TriggerKind::Event => "event",
            TriggerKind::Milestone => "milestone",
            TriggerKind::Silence => "silence",
        }
    }
}

/// A triggered check-in, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kind: TriggerKind,
    pub due: DateTime<Utc>,
    /// Whom or what it is about: "Sam", "interview", "got engaged".
    pub subject: String,
    /// Years since, for milestones and anniversaries.
    pub years: Option<i32>,
    pub evidence: Evidence,
}

/// What finding triggers needs.
#[derive(Debug, Clone, Copy)]
pub struct TriggerSettings {
    pub zone: Zone,
    pub time: NaiveTime,
    pub silence_days: i64,
    /// A close contact has at least this many messages.
    pub close_min_messages: u64,
}

const MONTHS: &str = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";

static GREETING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:happy\s+(?P<what>birthday|bday|b-day|anniversary)|(?P<hbd>hbd))\b")
        .expect("greeting regex")
});

static DATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(?P<who>my|our|his|her|their|[a-z]+'s)\s+(?P<what>birthday|bday|anniversary)\s+is\s+(?:on\s+)?(?:(?P<m1>{MONTHS})\.?\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?|(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{MONTHS}))\b"
    ))
    .expect("dated regex")
});

static EVENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(?P<what>job interview|interview|exam|appointment|surgery|operation|presentation|flight|wedding|audition|deadline|concert|driving test|test)\b[^.!?\n]{{0,30}}?\b(?:on\s+|this\s+|next\s+|is\s+)?(?:(?P<day>monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|today|tonight)|(?P<m>{MONTHS})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?)\b"
    ))
    .expect("event regex")
});

static MILESTONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:i|we)\s+(?:just\s+|finally\s+|have\s+|'ve\s+)?(?P<what>got the job|got a new job|started (?:my|a) new job|got engaged|got married|graduated|moved (?:to|into) [a-z]+|bought (?:a|our|my) (?:house|flat|apartment|home|car)|got (?:a|our) (?:dog|cat|puppy|kitten)|ran (?:a|my first) marathon|quit (?:my|the) job)\b")
        .expect("milestone regex")
});

fn month_number(s: &str) -> Option<u32> {
    let s = s.to_ascii_lowercase();
    [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| s.starts_with(m))
    .map(|i| i as u32 + 1)
}

/// The date of `month`/`day` in `year`; Feb 29 falls on Feb 28 in other years.
fn yearly(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day).or_else(|| {
        (month == 2 && day == 29)
            .then(|| NaiveDate::from_ymd_opt(year, 2, 28))
            .flatten()
    })
}

/// Every triggered check-in due in `(from, to]`.
pub fn find(
    history: &dyn History,
    s: &TriggerSettings,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Found>, StoreError> {
    let mut out = Vec::new();
    let in_window = |due: DateTime<Utc>| due > from && due <= to;
    let years = local_date(s.zone, from).year()..=local_date(s.zone, to).year();
    for ev in history.items()? {
        let said = s.zone.local(ev.at_ms).date();
        let said_at = DateTime::from_timestamp_millis(ev.at_ms).unwrap_or_default();
        // Yearly: a greeting on a day means the same day every later year.
        if let Some(c) = GREETING.captures(&ev.text) {
            let what = c.name("what").map(|m| m.as_str().to_ascii_lowercase());
            let kind = if what.as_deref() == Some("anniversary") {
                TriggerKind::Anniversary
            } else {
                TriggerKind::Birthday
            };
            let subject = if ev.from_me {
                ev.with.clone()
            } else {
                Some("you".to_string())
            };
            if let Some(subject) = subject {
                for y in years.clone() {
                    let Some(d) = yearly(y, said.month(), said.day()) else {
                        continue;
                    };
                    let due = at_local(s.zone, d, s.time);
                    if y > said.year() && in_window(due) {
                        out.push(Found {
                            kind,
                            due,
                            subject: subject.clone(),
                            years: Some(y - said.year()),
                            evidence: ev.clone(),
                        });
                    }
                }
            }
        }
        if let Some(c) = DATED.captures(&ev.text) {
            let month = c
                .name("m1")
                .or(c.name("m2"))
                .and_then(|m| month_number(m.as_str()));
            let day = c
                .name("d1")
                .or(c.name("d2"))
                .and_then(|d| d.as_str().parse::<u32>().ok());
            let who = c["who"].to_ascii_lowercase();
            let kind = if c["what"].eq_ignore_ascii_case("anniversary") {
                TriggerKind::Anniversary
            } else {
                TriggerKind::Birthday
            };
            let subject = match who.as_str() {
                "my" if ev.from_me => "you".to_string(),
                "my" | "his" | "her" | "their" => {
                    if ev.from_me {
                        ev.with.clone().unwrap_or_else(|| "someone".into())
                    } else {
                        ev.author_name.clone()
                    }
                }
                "our" => "your".to_string(),
                name => {
                    let n = name.trim_end_matches("'s");
                    let mut cs = n.chars();
                    cs.next()
                        .map(|f| f.to_uppercase().chain(cs).collect())
                        .unwrap_or_default()
                }
            };
            if let (Some(m), Some(d)) = (month, day) {
                for y in years.clone() {
                    let Some(date) = yearly(y, m, d) else {
                        continue;
                    };
                    let due = at_local(s.zone, date, s.time);
                    if due > said_at && in_window(due) {
                        out.push(Found {
                            kind,
                            due,
                            subject: subject.clone(),
                            years: None,
                            evidence: ev.clone(),
                        });
                    }
                }
            }
        }
        if let Some(c) = EVENT.captures(&ev.text)
            && let Some(date) = event_date(&c, said)
            && date >= said
            && date - said <= Duration::days(60)
        {
            let due = at_local(s.zone, date + Duration::days(1), s.time);
            if in_window(due) {
                out.push(Found {
                    kind: TriggerKind::Event,
                    due,
                    subject: c["what"].to_ascii_lowercase(),
                    years: None,
                    evidence: ev.clone(),
                });
            }
        }
        if ev.from_me
            && let Some(c) = MILESTONE.captures(&ev.text)
        {
            for y in years.clone() {
                let Some(d) = yearly(y, said.month(), said.day()) else {
                    continue;
                };
                let due = at_local(s.zone, d, s.time);
                if y > said.year() && in_window(due) {
                    out.push(Found {
                        kind: TriggerKind::Milestone,
                        due,
                        subject: c["what"].to_ascii_lowercase(),
                        years: Some(y - said.year()),
                        evidence: ev.clone(),
                    });
                }
            }
        }
    }
    for a in history.contacts()? {
        if a.messages < s.close_min_messages {
            continue;
        }
        let Some(last) = a.last.clone() else { continue };
        let quiet_from = local_date(
            s.zone,
            DateTime::from_timestamp_millis(a.last_ms).unwrap_or_default(),
        );
        let due = at_local(s.zone, quiet_from + Duration::days(s.silence_days), s.time);
        if in_window(due) {
            out.push(Found {
                kind: TriggerKind::Silence,
                due,
                subject: a.name.clone(),
                years: None,
                evidence: last,
            });
        }
    }
    out.sort_by_key(|f| f.due);
    Ok(out)
}

/// The date an event capture names, relative to the day it was said.
fn event_date(c: &regex::Captures, said: NaiveDate) -> Option<NaiveDate> {
    if let Some(day) = c.name("day") {
        let day = day.as_str().to_ascii_lowercase();
        return match day.as_str() {
            "today" | "tonight" => Some(said),
            "tomorrow" => Some(said + Duration::days(1)),
            name => {
                let target: Weekday = name.parse().ok()?;
                let ahead = (7 + target.num_days_from_monday() as i64
                    - said.weekday().num_days_from_monday() as i64)
                    % 7;
                Some(said + Duration::days(if ahead == 0 { 7 } else { ahead }))
            }
        };
    }
    let m = month_number(c.name("m")?.as_str())?;
    let d: u32 = c.name("d")?.as_str().parse().ok()?;
    let this = NaiveDate::from_ymd_opt(said.year(), m, d)?;
    if this >= said {
        Some(this)
    } else {
        NaiveDate::from_ymd_opt(said.year() + 1, m, d)
    }
}

/// The citation of a stored message.
pub fn cite_message(key: &[u8]) -> String {
    let mut s = String::from("m:");
    for b in key {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// History read straight from the store's messages and contacts.
pub struct StoreHistory<'a> {
    pub store: &'a Store,
}

impl StoreHistory<'_> {
    fn names(&self) -> Result<HashMap<Id, Contact>, StoreError> {
        self.store
            .scan::<Contact>([])
            .map(|r| r.map(|(_, c)| (c.id, c)))
            .collect()
    }

    /// Each one-to-one conversation's other person.
    fn partners(&self, names: &HashMap<Id, Contact>) -> Result<HashMap<Id, String>, StoreError> {
        let me = identity::me_id();
        let mut out = HashMap::new();
        for r in self.store.scan::<Conversation>([]) {
            let (_, c) = r?;
            let others: Vec<Id> = c
                .participants
                .iter()
                .copied()
                .filter(|p| *p != me)
                .collect();
            if c.group != Some(true)
                && others.len() == 1
                && let Some(n) = names.get(&others[0])
            {
                out.insert(c.id, n.name.clone());
            }
        }
        Ok(out)
    }

    fn evidence(&self, key: &[u8], m: &Message, partners: &HashMap<Id, String>) -> Evidence {
        Evidence {
            cite: cite_message(key),
            at_ms: m.at_ms,
            text: m.text.clone(),
            author_name: m.author_name.clone(),
            from_me: m.author == identity::me_id(),
            with: partners.get(&m.conversation).cloned(),
        }
    }
}

impl History for StoreHistory<'_> {
    fn items(&self) -> Result<Vec<Evidence>, StoreError> {
        let names = self.names()?;
        let partners = self.partners(&names)?;
        let mut out = Vec::new();
        for r in self.store.scan::<Message>([]) {
            let (k, m) = r?;
            let t = &m.text;
            // Cheap filter before the regexes.
            let lower = t.to_ascii_lowercase();
            if [
                "birthday",
                "bday",
                "b-day",
                "hbd",
                "anniversary",
                " on ",
                "tomorrow",
                "today",
                "tonight",
                "this ",
                "next ",
                "got ",
                "moved",
                "bought",
                "graduated",
                "marathon",
                "quit",
                "started",
            ]
            .iter()
            .any(|w| lower.contains(w))
            {
                out.push(self.evidence(&k, &m, &partners));
            }
        }
        out.sort_by_key(|e| e.at_ms);
        Ok(out)
    }

    fn contacts(&self) -> Result<Vec<Activity>, StoreError> {
        let names = self.names()?;
        let partners = self.partners(&names)?;
        let mut last: HashMap<Id, (i64, Evidence)> = HashMap::new();
        for r in self.store.scan::<Message>([]) {
            let (k, m) = r?;
            if m.author == identity::me_id() {
                continue;
            }
            if last.get(&m.author).is_none_or(|(at, _)| m.at_ms >= *at) {
                last.insert(m.author, (m.at_ms, self.evidence(&k, &m, &partners)));
            }
        }
        Ok(names
            .into_values()
            .filter(|c| !c.me && c.id != identity::me_id())
            .map(|c| Activity {
                last: last.remove(&c.id).map(|(_, e)| e),
                name: c.name,
                messages: c.messages,
                first_ms: c.first_ms,
                last_ms: c.last_ms,
            })
            .collect())
    }
}

/// The latest message in the store, to ground a scheduled check-in in.
pub fn latest_message(store: &Store, before_ms: i64) -> Result<Option<Evidence>, StoreError> {
    let h = StoreHistory { store };
    let names = h.names()?;
    let partners = h.partners(&names)?;
    let mut best: Option<Evidence> = None;
    for r in store.scan::<Message>([]) {
        let (k, m) = r?;
        if m.at_ms <= before_ms
            && !m.text.trim().is_empty()
            && best.as_ref().is_none_or(|b| m.at_ms > b.at_ms)
        {
            best = Some(h.evidence(&k, &m, &partners));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history from a fixture of dated lines.
    struct Fixture(Vec<Evidence>, Vec<Activity>);

    impl History for Fixture {
        fn items(&self) -> Result<Vec<Evidence>, StoreError> {
            Ok(self.0.clone())
        }
        fn contacts(&self) -> Result<Vec<Activity>, StoreError> {
            Ok(self.1.clone())
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn said(id: u8, at: &str, me: bool, text: &str) -> Evidence {
        Evidence {
            cite: format!("m:{id:02x}"),
            at_ms: utc(at).timestamp_millis(),
            text: text.into(),
            author_name: if me { "Jo".into() } else { "Sam".into() },
            from_me: me,
            with: Some("Sam".into()),
        }
    }

    fn settings() -> TriggerSettings {
        TriggerSettings {
            zone: Zone::parse("Europe/Berlin").unwrap(),
            time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            silence_days: 21,
            close_min_messages: 50,
        }
    }

    fn fixture() -> Fixture {
        Fixture(
            vec![
                said(1, "2025-03-14T09:00:00Z", true, "Happy birthday Sam!! 🎂"),
                said(
                    2,
                    "2025-06-01T18:00:00Z",
                    false,
                    "my birthday is on July 9th btw",
                ),
                said(
                    3,
                    "2026-11-17T20:00:00Z",
                    true,
                    "ugh my job interview on Friday, so nervous",
                ),
                said(4, "2025-11-22T12:00:00Z", true, "We got engaged!!!"),
                said(5, "2026-01-10T12:00:00Z", false, "see you on the weekend"),
            ],
            vec![Activity {
                name: "Alex".into(),
                messages: 400,
                first_ms: utc("2024-01-01T00:00:00Z").timestamp_millis(),
                last_ms: utc("2026-10-20T08:00:00Z").timestamp_millis(),
                last: Some(said(6, "2026-10-20T08:00:00Z", false, "talk soon!")),
            }],
        )
    }

    fn found(from: &str, to: &str) -> Vec<(TriggerKind, String, String, String)> {
        find(&fixture(), &settings(), utc(from), utc(to))
            .unwrap()
            .into_iter()
            .map(|f| {
                (
                    f.kind,
                    f.subject,
                    f.due.to_rfc3339(),
                    f.evidence.cite.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_birthday_greeting_comes_back_every_year() {
        let got = found("2026-03-13T00:00:00Z", "2026-03-15T00:00:00Z");
        assert_eq!(
            got,
            vec![(
                TriggerKind::Birthday,
                "Sam".into(),
                "2026-03-14T09:00:00+00:00".into(),
                "m:01".into()
            )]
        );
        // Not in the year it was said.
        assert!(found("2025-03-13T00:00:00Z", "2025-03-15T00:00:00Z").is_empty());
    }

    #[test]
    fn a_dated_birthday_is_found_for_its_author() {
        let got = found("2025-07-08T00:00:00Z", "2025-07-10T00:00:00Z");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, TriggerKind::Birthday);
        assert_eq!(got[0].1, "Sam");
        assert_eq!(got[0].2, "2025-07-09T08:00:00+00:00");
    }

    #[test]
    fn an_event_gets_a_follow_up_the_day_after() {
        // Said Tuesday 2026-11-17; Friday is the 20th; follow-up Saturday 10:00 Berlin.
        let got = found("2026-11-18T00:00:00Z", "2026-11-30T00:00:00Z");
        let ev: Vec<_> = got.iter().filter(|g| g.0 == TriggerKind::Event).collect();
        assert_eq!(ev.len(), 1, "{got:?}");
        assert_eq!(ev[0].1, "job interview");
        assert_eq!(ev[0].2, "2026-11-21T09:00:00+00:00");
    }

    #[test]
    fn a_milestone_a_year_later_and_silence_after_three_weeks() {
        let got = found("2026-11-09T00:00:00Z", "2026-11-23T00:00:00Z");
        let kinds: Vec<_> = got.iter().map(|g| (g.0, g.1.as_str())).collect();
        assert!(
            kinds.contains(&(TriggerKind::Milestone, "got engaged")),
            "{got:?}"
        );
        // Alex last wrote 2026-10-20: silence check-in on 2026-11-10.
        let silence: Vec<_> = got.iter().filter(|g| g.0 == TriggerKind::Silence).collect();
        assert_eq!(silence.len(), 1, "{got:?}");
        assert_eq!(silence[0].1, "Alex");
        assert_eq!(silence[0].2, "2026-11-10T09:00:00+00:00");
        assert_eq!(silence[0].3, "m:06");
    }

    #[test]
    fn ordinary_messages_trigger_nothing() {
        let got = found("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");
        assert!(got.is_empty(), "{got:?}");
    }
}
