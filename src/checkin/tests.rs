//! The scheduler on a fake clock: rules, quiet hours, the day's maximum and the
//! gap, time zones, catch-up after a week offline, restarts and crashes, snooze.

use super::job::{Composer, deliver_due};
use super::*;
use crate::config;
use crate::jobs::{JobBody, JobCtx};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn settings(toml: &str) -> Settings {
    let loaded =
        config::load_str(std::path::Path::new("config.toml"), Some(toml), &|_| None).unwrap();
    Settings::from_config(&loaded.config).unwrap()
}

/// Defaults in UTC, no triggers.
fn base(extra: &str) -> Settings {
    settings(&format!(
        "[checkin]\ntimezone = \"UTC\"\ntriggers = false\n{extra}"
    ))
}

/// Run one tick and deliver (template text), like `--due`; returns (rule, local) pairs.
fn due(store: &Store, s: &Settings, clock: &FakeClock) -> Vec<(String, String)> {
    let sched = Scheduler::new(store, s, clock);
    let tick = sched.tick(None).unwrap();
    let mut out = Vec::new();
    for mut c in tick.deliver {
        c.text = Some(compose::template(&c));
        sched.save_composed(&c).unwrap();
        if sched.mark_delivered(c.id).unwrap() {
            out.push((c.rule.clone(), c.local.clone()));
        }
    }
    out
}

fn pair(rule: &str, local: &str) -> (String, String) {
    (rule.to_string(), local.to_string())
}

#[test]
fn fresh_install_checks_in_at_0830_and_2000_utc() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // No timezone anywhere: ingest.timezone "UTC" stands for a machine without one.
    let s = settings("[ingest]\ntimezone = \"UTC\"\n[checkin]\ntriggers = false\n");
    assert_eq!(
        s.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["daily 08:30", "daily 20:00"]
    );
    let clock = FakeClock::new(utc("2026-11-21T08:00:00Z"));
    // First run: the 20:00 of yesterday is older than the look-back's newest... it is
    // the only one and more than 30 minutes late: `latest` delivers it only when
    // younger than catch_up_hours (12 h): 20:00 -> 08:00 is exactly 12 h.
    let first = due(&store, &s, &clock);
    assert!(first.len() <= 1, "{first:?}");
    clock.set(utc("2026-11-21T08:30:00Z"));
    assert_eq!(
        due(&store, &s, &clock),
        vec![pair("daily 08:30", "2026-11-21 08:30")]
    );
    clock.set(utc("2026-11-21T12:00:00Z"));
    assert!(due(&store, &s, &clock).is_empty());
    clock.set(utc("2026-11-21T20:01:00Z"));
    assert_eq!(
        due(&store, &s, &clock),
        vec![pair("daily 20:00", "2026-11-21 20:00")]
    );
    // Running again at the same time delivers nothing twice.
    assert!(due(&store, &s, &clock).is_empty());
    let sched = Scheduler::new(&store, &s, &clock);
    assert_eq!(
        sched.next_wake().unwrap(),
        Some(utc("2026-11-22T08:30:00Z"))
    );
}

#[test]
fn weekday_and_cron_rules_on_a_fake_week() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = base(
        "rules = [\"weekdays 18:00\", \"cron 0 10 * * sun\"]\nquiet_hours = \"\"\nmin_gap_minutes = 0\n",
    );
    let clock = FakeClock::new(utc("2026-11-20T00:00:00Z")); // a Friday
    due(&store, &s, &clock);
    let mut got = Vec::new();
    // Every 15 minutes for four days, like a timer would.
    for _ in 0..(4 * 24 * 4) {
        clock.advance(Duration::minutes(15));
        got.extend(due(&store, &s, &clock));
    }
    assert_eq!(
        got,
        vec![
            pair("weekdays 18:00", "2026-11-20 18:00"),
            pair("cron 0 10 * * sun", "2026-11-22 10:00"),
            pair("weekdays 18:00", "2026-11-23 18:00"),
        ]
    );
}

#[test]
fn quiet_hours_hold_a_check_in_until_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = base("rules = [\"daily 23:00\"]\nquiet_hours = \"22:00-07:00\"\n");
    let clock = FakeClock::new(utc("2026-11-21T22:50:00Z"));
    due(&store, &s, &clock);
    clock.set(utc("2026-11-21T23:00:00Z"));
    assert!(due(&store, &s, &clock).is_empty(), "quiet at 23:00");
    let sched = Scheduler::new(&store, &s, &clock);
    assert_eq!(
        sched.next_wake().unwrap(),
        Some(utc("2026-11-22T07:00:00Z")),
        "the timer is set to the end of the quiet hours"
    );
    clock.set(utc("2026-11-22T07:00:00Z"));
    assert_eq!(
        due(&store, &s, &clock),
        vec![pair("daily 23:00", "2026-11-21 23:00")]
    );
}

#[test]
fn the_days_maximum_and_the_minimum_gap() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = base(
        "rules = [\"daily 09:00\", \"daily 09:10\", \"daily 12:00\", \"daily 15:00\"]\nquiet_hours = \"\"\nmax_per_day = 2\nmin_gap_minutes = 60\n",
    );
    let clock = FakeClock::new(utc("2026-11-21T08:00:00Z"));
    due(&store, &s, &clock);
    let mut got = Vec::new();
    for _ in 0..(10 * 12) {
        clock.advance(Duration::minutes(5));
        got.extend(due(&store, &s, &clock));
    }
    // 09:10 waits for the gap (10:00) and is delivered then; 12:00 and 15:00 are
    // over the maximum of two.
    assert_eq!(
        got,
        vec![
            pair("daily 09:00", "2026-11-21 09:00"),
            pair("daily 09:10", "2026-11-21 09:10")
        ]
    );
    let sched = Scheduler::new(&store, &s, &clock);
    let skipped: Vec<_> = sched
        .history(10)
        .unwrap()
        .into_iter()
        .filter(|c| c.status == Status::Skipped)
        .map(|c| c.rule)
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
}

#[test]
fn time_zones_and_dst_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = settings(
        "[checkin]\ntimezone = \"America/New_York\"\ntriggers = false\nrules = [\"daily 08:30\"]\n",
    );
    // New York falls back on 2026-11-01: 08:30 is 12:30Z before, 13:30Z after.
    let clock = FakeClock::new(utc("2026-10-31T12:00:00Z"));
    due(&store, &s, &clock);
    let mut got = Vec::new();
    for _ in 0..(3 * 24 * 4) {
        clock.advance(Duration::minutes(15));
        let before = got.len();
        got.extend(due(&store, &s, &clock));
        if got.len() > before {
            got.last_mut().unwrap().1 = format!(
                "{} at {}",
                got.last().unwrap().1,
                clock.now().format("%H:%MZ")
            );
        }
    }
    assert_eq!(
        got,
        vec![
            pair("daily 08:30", "2026-10-31 08:30 at 12:30Z"),
            pair("daily 08:30", "2026-11-01 08:30 at 13:30Z"),
            pair("daily 08:30", "2026-11-02 08:30 at 13:30Z"),
        ]
    );
    // The zone changes (a flight to Berlin): 08:30 there on 4 Nov ...
    let berlin = settings(
        "[checkin]\ntimezone = \"Europe/Berlin\"\ntriggers = false\nrules = [\"daily 08:30\"]\n",
    );
    let clock = FakeClock::new(utc("2026-11-04T07:31:00Z"));
    assert_eq!(
        due(&store, &berlin, &clock),
        vec![pair("daily 08:30", "2026-11-04 08:30")]
    );
    assert_eq!(berlin.rfc3339(clock.now()), "2026-11-04T08:31:00+01:00");
    // ... and back in New York the same day: no second 08:30 for that local day.
    clock.set(utc("2026-11-04T13:31:00Z"));
    assert!(due(&store, &s, &clock).is_empty());
}

#[test]
fn catch_up_after_a_week_offline_delivers_one_not_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = base("catch_up_hours = 0\n");
    let clock = FakeClock::new(utc("2026-11-01T09:00:00Z"));
    due(&store, &s, &clock);
    // A week later, at 10:00: fourteen check-ins were missed.
    clock.set(utc("2026-11-08T10:00:00Z"));
    let got = due(&store, &s, &clock);
    assert_eq!(
        got,
        vec![pair("daily 08:30", "2026-11-08 08:30")],
        "only the latest"
    );
    let sched = Scheduler::new(&store, &s, &clock);
    let start = utc("2026-11-01T09:00:00Z").timestamp_millis();
    let missed = sched
        .history(100)
        .unwrap()
        .into_iter()
        .filter(|c| c.status == Status::Missed && c.due_ms > start)
        .count();
    assert_eq!(
        missed, 13,
        "the other 13 of the week are recorded as missed"
    );
    assert!(due(&store, &s, &clock).is_empty());

    // max_age: none older than 12 hours, and still one at a time.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = base("catch_up = \"max_age\"\ncatch_up_hours = 14\nquiet_hours = \"\"\n");
    let clock = FakeClock::new(utc("2026-11-01T09:00:00Z"));
    due(&store, &s, &clock);
    clock.set(utc("2026-11-08T10:00:00Z"));
    // 20:00 yesterday (14 h ago) and 08:30 today are young enough; the gap holds one.
    let got = due(&store, &s, &clock);
    assert_eq!(got, vec![pair("daily 20:00", "2026-11-07 20:00")]);
    clock.set(utc("2026-11-08T11:00:00Z"));
    assert_eq!(
        due(&store, &s, &clock),
        vec![pair("daily 08:30", "2026-11-08 08:30")]
    );

    // latest with a limit: the newest missed one is too old too.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = base("catch_up_hours = 1\n");
    let clock = FakeClock::new(utc("2026-11-01T09:00:00Z"));
    due(&store, &s, &clock);
    clock.set(utc("2026-11-08T12:00:00Z"));
    assert!(due(&store, &s, &clock).is_empty());
}

#[test]
fn no_duplicate_across_restarts_or_a_crash_between_composing_and_delivering() {
    let dir = tempfile::tempdir().unwrap();
    let s = base("");
    let clock = FakeClock::new(utc("2026-11-21T08:00:00Z"));
    {
        let store = Store::open(dir.path()).unwrap();
        due(&store, &s, &clock);
        clock.set(utc("2026-11-21T08:31:00Z"));
        let sched = Scheduler::new(&store, &s, &clock);
        let tick = sched.tick(None).unwrap();
        assert_eq!(tick.deliver.len(), 1);
        let mut c = tick.deliver[0].clone();
        c.text = Some("composed before the crash".into());
        sched.save_composed(&c).unwrap();
        // The process dies here: never marked delivered.
    }
    let store = Store::open(dir.path()).unwrap();
    clock.set(utc("2026-11-21T08:35:00Z"));
    let (ctx, mut rx, _) = JobCtx::detached("checkin");
    let mut composer = Composer::new(None);
    let report = deliver_due(&store, &s, &clock, &mut composer, &ctx).unwrap();
    assert_eq!(report.delivered.len(), 1);
    assert_eq!(
        report.delivered[0].text, "composed before the crash",
        "not composed again"
    );
    let events: Vec<JobBody> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| e.body)
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|b| matches!(b, JobBody::Checkin { .. }))
            .count(),
        1
    );
    // Restart again: nothing more.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let report = deliver_due(&store, &s, &clock, &mut composer, &ctx).unwrap();
    assert!(report.delivered.is_empty());
    let all = Scheduler::new(&store, &s, &clock).all().unwrap();
    assert_eq!(
        all.iter().filter(|c| c.status == Status::Delivered).count(),
        1
    );
}

#[test]
fn snooze_delivers_again_later_and_dismiss_never() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = base("snooze_minutes = 30\nmin_gap_minutes = 0\n");
    let clock = FakeClock::new(utc("2026-11-21T08:00:00Z"));
    due(&store, &s, &clock);
    clock.set(utc("2026-11-21T08:30:00Z"));
    assert_eq!(due(&store, &s, &clock).len(), 1);
    let sched = Scheduler::new(&store, &s, &clock);
    let id = sched.all().unwrap()[0].id_hex();
    let c = sched.snooze(&id, None).unwrap();
    assert_eq!(c.status, Status::Snoozed);
    clock.set(utc("2026-11-21T08:45:00Z"));
    assert!(due(&store, &s, &clock).is_empty(), "still snoozed");
    assert_eq!(
        Scheduler::new(&store, &s, &clock).next_wake().unwrap(),
        Some(utc("2026-11-21T09:00:00Z"))
    );
    clock.set(utc("2026-11-21T09:00:00Z"));
    assert_eq!(
        due(&store, &s, &clock),
        vec![pair("daily 08:30", "2026-11-21 08:30")]
    );
    // Dismiss an upcoming one before it is due: it never comes.
    let sched = Scheduler::new(&store, &s, &clock);
    let evening = sched
        .upcoming(None, 1)
        .unwrap()
        .into_iter()
        .find(|c| c.rule == "daily 20:00")
        .unwrap();
    sched.dismiss(&evening.id_hex()).unwrap();
    clock.set(utc("2026-11-21T20:00:00Z"));
    assert!(
        due(&store, &s, &clock).is_empty(),
        "dismissed before it was due"
    );
    // Dismissed between planning and delivering: not delivered.
    clock.set(utc("2026-11-22T08:30:00Z"));
    let tick = Scheduler::new(&store, &s, &clock).tick(None).unwrap();
    assert_eq!(tick.deliver.len(), 1);
    let id = tick.deliver[0].id_hex();
    Scheduler::new(&store, &s, &clock).dismiss(&id).unwrap();
    assert!(
        !Scheduler::new(&store, &s, &clock)
            .mark_delivered(tick.deliver[0].id)
            .unwrap()
    );
    assert!(due(&store, &s, &clock).is_empty());
    let err = Scheduler::new(&store, &s, &clock)
        .snooze("nope", None)
        .unwrap_err();
    assert!(err.to_string().contains("twin checkin --list"), "{err}");
}

#[test]
fn bad_settings_name_the_key() {
    let loaded = config::load_str(
        std::path::Path::new("c.toml"),
        Some("[checkin]\nrules = [\"daily 8h\"]\n"),
        &|_| None,
    )
    .unwrap();
    let err = Settings::from_config(&loaded.config).unwrap_err();
    assert!(err.starts_with("checkin.rules: rule `daily 8h`"), "{err}");
    let loaded = config::load_str(
        std::path::Path::new("c.toml"),
        Some("[checkin]\nquiet_hours = \"late\"\n"),
        &|_| None,
    )
    .unwrap();
    let err = Settings::from_config(&loaded.config).unwrap_err();
    assert!(
        err.contains("checkin.quiet_hours") && err.contains("HH:MM-HH:MM"),
        "{err}"
    );
}
