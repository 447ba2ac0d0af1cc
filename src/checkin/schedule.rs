//! When check-ins fall due: rules ("daily 08:30", "weekdays 18:00", cron
//! expressions) and quiet hours, all in the user's time zone. Every rule becomes
//! a cron pattern evaluated by croner over chrono-tz, so DST gaps and overlaps
//! are handled in one place.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use croner::Cron;

use crate::ingest::pipeline::Zone;

/// One schedule rule, as written in `checkin.rules`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule as the user wrote it: what `rule` says in a check-in.
    pub name: String,
    /// The cron pattern it runs as ("30 8 * * *").
    pattern: String,
    cron: Cron,
}

/// "HH:MM" (or "H:MM", "HH:MM:SS").
pub fn parse_time(s: &str) -> Result<NaiveTime, String> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .map_err(|_| format!("`{s}` is not a time of day; write it as HH:MM, e.g. 08:30"))
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn day_number(s: &str) -> Option<usize> {
    const FULL: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let s = s.trim().to_ascii_lowercase();
    (0..7).find(|&i| s == DAYS[i] || s == FULL[i])
}

impl Rule {
    /// Parse `daily 08:30`, `weekdays 18:00`, `weekends 10:00`, `mon,wed,fri 07:15`,
    /// `08:30` (daily), `cron 0 18 * * 1-5`, or a bare cron expression.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let name = text.trim().to_string();
        let lower = name.to_ascii_lowercase();
        let hint = "write a rule as \"daily 08:30\", \"weekdays 18:00\", \"weekends 10:00\", \"mon,thu 19:00\" or \"cron MIN HOUR DAY MONTH WEEKDAY\"";
        let pattern = if let Some(expr) = lower.strip_prefix("cron ") {
            expr.trim().to_string()
        } else {
            let mut words = lower.split_whitespace();
            let (days, time) = match (words.next(), words.next(), words.next()) {
                (Some(t), None, None) if t.contains(':') => ("daily", t),
                (Some(d), Some(t), None) if t.contains(':') => (d, t),
                _ if lower.split_whitespace().count() >= 5 => ("", ""),
                _ => return Err(format!("rule `{name}`: {hint}")),
            };
            if days.is_empty() {
                lower.clone()
            } else {
                let t = parse_time(time).map_err(|e| format!("rule `{name}`: {e}"))?;
                let dow = match days {
                    "daily" | "everyday" | "every-day" => "*".to_string(),
                    "weekdays" => "1-5".to_string(),
                    "weekends" => "0,6".to_string(),
                    list => {
                        let mut nums = Vec::new();
                        for d in list.split(',') {
                            match day_number(d) {
                                Some(n) => nums.push(n.to_string()),
                                None => {
                                    return Err(format!(
                                        "rule `{name}`: `{d}` is not a day; {hint}"
                                    ));
                                }
                            }
                        }
                        nums.join(",")
                    }
                };
                format!("{} {} * * {dow}", t.minute(), t.hour())
            }
        };
        let cron = Cron::from_str(&pattern)
            .map_err(|e| format!("rule `{name}`: cron expression `{pattern}`: {e}; {hint}"))?;
        Ok(Rule {
            name,
            pattern,
            cron,
        })
    }

    /// The cron pattern the rule runs as (minute hour day month weekday).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The first time this rule fires strictly after `after`.
    pub fn next_after(&self, zone: Zone, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        fn next<Z: TimeZone>(c: &Cron, z: &Z, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
            c.find_next_occurrence(&after.with_timezone(z), false)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        }
        match zone {
            Zone::Local => next(&self.cron, &chrono::Local, after),
            Zone::Named(tz) => next(&self.cron, &tz, after),
        }
    }

    /// Every time this rule fires in `(from, to]`, at most `limit` of the latest.
    pub fn occurrences(
        &self,
        zone: Zone,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(n) = self.next_after(zone, t) {
            if n > to {
                break;
            }
            out.push(n);
            if out.len() > limit {
                out.remove(0);
            }
            t = n;
        }
        out
    }
}

/// Parse every rule, naming the bad one.
pub fn parse_rules(rules: &[String]) -> Result<Vec<Rule>, String> {
    rules.iter().map(|r| Rule::parse(r)).collect()
}

/// A local time range in which nothing is delivered; may cross midnight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// "22:00-07:00"; empty means none.
    pub fn parse(s: &str) -> Result<Option<QuietHours>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let (a, b) = s.split_once('-').ok_or_else(|| {
            format!("quiet hours `{s}`: write them as HH:MM-HH:MM, e.g. 22:00-07:00")
        })?;
        let q = QuietHours {
            start: parse_time(a).map_err(|e| format!("quiet hours `{s}`: {e}"))?,
            end: parse_time(b).map_err(|e| format!("quiet hours `{s}`: {e}"))?,
        };
        Ok((q.start != q.end).then_some(q))
    }

    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// When the quiet period holding `at` ends (`at` itself when it is not quiet).
    pub fn end_after(&self, zone: Zone, at: DateTime<Utc>) -> DateTime<Utc> {
        let local = zone.local(at.timestamp_millis());
        if !self.contains(local.time()) {
            return at;
        }
        let day = local.date();
        let end_day = if self.start > self.end && local.time() >= self.start {
            day + Duration::days(1)
        } else {
            day
        };
        zone.to_utc(NaiveDateTime::new(end_day, self.end))
    }
}

/// The local date of an instant.
pub fn local_date(zone: Zone, at: DateTime<Utc>) -> NaiveDate {
    zone.local(at.timestamp_millis()).date()
}

/// An instant at a local date and time (DST gaps move forward, overlaps take the earlier).
pub fn at_local(zone: Zone, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    zone.to_utc(NaiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn tz(s: &str) -> Zone {
        Zone::parse(s).unwrap()
    }

    #[test]
    fn daily_and_weekday_rules_fire_at_local_time() {
        let berlin = tz("Europe/Berlin");
        let r = Rule::parse("daily 08:30").unwrap();
        // 2026-11-21 is a Saturday; Berlin is UTC+1 in November.
        assert_eq!(
            r.next_after(berlin, utc("2026-11-21T06:00:00Z")),
            Some(utc("2026-11-21T07:30:00Z"))
        );
        let w = Rule::parse("weekdays 18:00").unwrap();
        assert_eq!(
            w.next_after(berlin, utc("2026-11-21T06:00:00Z")),
            Some(utc("2026-11-23T17:00:00Z")),
            "Saturday -> Monday"
        );
        let we = Rule::parse("weekends 10:00").unwrap();
        assert_eq!(
            we.next_after(berlin, utc("2026-11-21T10:00:00Z")),
            Some(utc("2026-11-22T09:00:00Z"))
        );
        let days = Rule::parse("Mon,Thu 19:15").unwrap();
        assert_eq!(
            days.next_after(tz("UTC"), utc("2026-11-21T00:00:00Z")),
            Some(utc("2026-11-23T19:15:00Z"))
        );
        assert_eq!(
            Rule::parse("07:05")
                .unwrap()
                .next_after(tz("UTC"), utc("2026-11-21T08:00:00Z")),
            Some(utc("2026-11-22T07:05:00Z"))
        );
    }

    #[test]
    fn cron_expressions_follow_vixie_cron() {
        let utc0 = tz("UTC");
        let r = Rule::parse("cron */15 9-10 * * 1-5").unwrap();
        let got = r.occurrences(
            utc0,
            utc("2026-11-23T09:20:00Z"),
            utc("2026-11-23T10:15:00Z"),
            100,
        );
        assert_eq!(
            got,
            ["09:30", "09:45", "10:00", "10:15"]
                .map(|t| utc(&format!("2026-11-23T{t}:00Z")))
                .to_vec()
        );
        // Day of month OR day of week, as in crontab(5): the 1st, or any Friday.
        let r = Rule::parse("0 12 1 * fri").unwrap();
        let got = r.occurrences(
            utc0,
            utc("2026-11-25T00:00:00Z"),
            utc("2026-12-05T00:00:00Z"),
            100,
        );
        assert_eq!(
            got,
            vec![
                utc("2026-11-27T12:00:00Z"),
                utc("2026-12-01T12:00:00Z"),
                utc("2026-12-04T12:00:00Z")
            ]
        );
        // `limit` keeps only the latest.
        let daily = Rule::parse("daily 08:00").unwrap();
        let week = daily.occurrences(
            utc0,
            utc("2026-11-01T00:00:00Z"),
            utc("2026-11-08T00:00:00Z"),
            2,
        );
        assert_eq!(
            week,
            vec![utc("2026-11-06T08:00:00Z"), utc("2026-11-07T08:00:00Z")]
        );
    }

    #[test]
    fn bad_rules_say_what_to_write() {
        for bad in [
            "daily",
            "sometimes 08:00",
            "daily 25:00",
            "cron 99 * * * *",
            "x y",
        ] {
            let err = Rule::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
            assert!(
                err.contains("daily 08:30") || err.contains("HH:MM"),
                "{err}"
            );
        }
    }

    #[test]
    fn dst_spring_forward_and_fall_back() {
        let berlin = tz("Europe/Berlin");
        let r = Rule::parse("daily 08:30").unwrap();
        // Clocks go forward on 2026-03-29: 08:30 is 07:30Z before, 06:30Z after.
        let got = r.occurrences(
            berlin,
            utc("2026-03-28T00:00:00Z"),
            utc("2026-03-30T00:00:00Z"),
            10,
        );
        assert_eq!(
            got,
            vec![utc("2026-03-28T07:30:00Z"), utc("2026-03-29T06:30:00Z")]
        );
        // And back on 2026-10-25.
        let got = r.occurrences(
            berlin,
            utc("2026-10-24T00:00:00Z"),
            utc("2026-10-26T00:00:00Z"),
            10,
        );
        assert_eq!(
            got,
            vec![utc("2026-10-24T06:30:00Z"), utc("2026-10-25T07:30:00Z")]
        );
        // A time inside the skipped hour still fires once that day.
        let gap = Rule::parse("daily 02:30").unwrap();
        let got = gap.occurrences(
            berlin,
            utc("2026-03-28T12:00:00Z"),
            utc("2026-03-30T12:00:00Z"),
            10,
        );
        assert!(
            !got.is_empty() && got.len() <= 2,
            "02:30 on the spring-forward day: {got:?}"
        );
    }

    #[test]
    fn quiet_hours_cross_midnight() {
        let q = QuietHours::parse("22:00-07:00").unwrap().unwrap();
        let t = |s| parse_time(s).unwrap();
        assert!(q.contains(t("23:00")) && q.contains(t("06:59")) && q.contains(t("22:00")));
        assert!(!q.contains(t("07:00")) && !q.contains(t("12:00")));
        let berlin = tz("Europe/Berlin");
        // 23:30 Berlin -> 07:00 Berlin the next morning.
        assert_eq!(
            q.end_after(berlin, utc("2026-11-21T22:30:00Z")),
            utc("2026-11-22T06:00:00Z")
        );
        // 05:00 Berlin -> 07:00 the same morning.
        assert_eq!(
            q.end_after(berlin, utc("2026-11-22T04:00:00Z")),
            utc("2026-11-22T06:00:00Z")
        );
        let day = QuietHours::parse("12:00-13:00").unwrap().unwrap();
        assert!(day.contains(t("12:30")) && !day.contains(t("13:00")));
        assert_eq!(QuietHours::parse("").unwrap(), None);
        assert!(QuietHours::parse("22-7").is_err());
    }
}
