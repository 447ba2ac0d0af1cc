//! What `twin doctor` says about `[checkin]`: every rule parses, the time zone
//! is known, the quiet hours are sane, and something can actually be delivered;
//! each problem with how to fix it. Pure: the config and an instant in.

use chrono::{DateTime, Utc};

use super::schedule::{QuietHours, Rule, parse_time};
use crate::config::Config;
use crate::ingest::pipeline::Zone;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Check-ins cannot run at all (as opposed to a warning).
    pub fail: bool,
    pub detail: String,
    pub fix: String,
}

fn fail(detail: String, fix: String) -> Finding {
    Finding {
        fail: true,
        detail,
        fix,
    }
}

fn warn(detail: String, fix: String) -> Finding {
    Finding {
        fail: false,
        detail,
        fix,
    }
}

/// Whether this machine says which zone it is in (else "local" means UTC).
pub fn machine_zone_known() -> bool {
    std::env::var("TZ").is_ok_and(|v| !v.trim().is_empty())
        || std::path::Path::new("/etc/localtime").exists()
}

/// Every problem of `[checkin]` at `now`; `machine_zone` says whether this
/// machine has a zone of its own.
pub fn check(c: &Config, now: DateTime<Utc>, machine_zone: bool) -> Vec<Finding> {
    let k = &c.checkin;
    let mut out = Vec::new();
    if !k.enabled {
        return out;
    }
    let edit = "edit it in the Check-ins view (C, then e on the rule), or `twin checkin --change-rule RULE --to \"daily 08:30\"`";
    let mut rules = Vec::new();
    for r in &k.rules {
        match Rule::parse(r) {
            Ok(p) => rules.push(p),
            Err(e) => out.push(fail(
                format!("checkin.rules: {e}; check-ins are off until it is fixed"),
                edit.into(),
            )),
        }
    }
    for r in &k.disabled_rules {
        if let Err(e) = Rule::parse(r) {
            out.push(warn(
                format!("checkin.disabled_rules: {e}"),
                format!(
                    "fix it before switching it on, or delete it (`twin checkin --delete-rule \"{}\"`)",
                    r.trim()
                ),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for r in &rules {
        if !seen.insert(r.pattern().to_string()) {
            out.push(warn(
                format!(
                    "checkin.rules: `{}` fires at the same times as another rule",
                    r.name
                ),
                format!("delete one (`twin checkin --delete-rule \"{}\"`)", r.name),
            ));
        }
    }

    let (zone_key, zone_text) = if k.timezone.trim().is_empty() {
        ("ingest.timezone", c.ingest.timezone.as_str())
    } else {
        ("checkin.timezone", k.timezone.as_str())
    };
    let zone = match Zone::parse(zone_text) {
        Ok(z) => Some(z),
        Err(e) => {
            out.push(fail(
                format!("{zone_key}: {e}"),
                format!(
                    "set {zone_key} in config.toml to an IANA name such as \"Europe/Berlin\" (`timedatectl list-timezones` lists them), or \"local\""
                ),
            ));
            None
        }
    };
    // Asked for by name only: by default a machine without a zone is UTC, as documented.
    if matches!(zone, Some(Zone::Local)) && !machine_zone && k.timezone.trim() == "local" {
        out.push(warn(
            format!(
                "{zone_key} is this machine's zone, and it has none (no TZ, no /etc/localtime): check-ins run in UTC"
            ),
            "set checkin.timezone to your zone, e.g. \"Europe/Berlin\"".into(),
        ));
    }

    let quiet = match QuietHours::parse(&k.quiet_hours) {
        Ok(q) => q,
        Err(e) => {
            out.push(fail(
                format!("checkin.quiet_hours: {e}"),
                "write them as \"22:00-07:00\", or \"\" for none".into(),
            ));
            None
        }
    };
    if QuietHours::parse(&k.quiet_hours).is_ok_and(|q| q.is_none())
        && !k.quiet_hours.trim().is_empty()
    {
        out.push(warn(
            format!(
                "checkin.quiet_hours `{}` starts and ends at the same time, so there are none",
                k.quiet_hours.trim()
            ),
            "write quiet_hours = \"\" to say there are none, or give a range such as \"22:00-07:00\"".into(),
        ));
    }
    if let Some(q) = &quiet {
        let minutes = |t: chrono::NaiveTime| {
            chrono::Timelike::hour(&t) as i64 * 60 + chrono::Timelike::minute(&t) as i64
        };
        let quiet_min = (minutes(q.end) - minutes(q.start)).rem_euclid(24 * 60);
        if quiet_min > 20 * 60 {
            out.push(warn(
                format!(
                    "checkin.quiet_hours `{}` leave only {} minutes a day for check-ins",
                    k.quiet_hours.trim(),
                    24 * 60 - quiet_min
                ),
                "did you swap start and end? quiet hours are START-END, e.g. \"22:00-07:00\""
                    .into(),
            ));
        }
        if let Some(zone) = zone {
            // Rules whose every time in the next week falls in quiet hours.
            for r in &rules {
                let times = r.occurrences(zone, now, now + chrono::Duration::days(7), 64);
                let quiet_all = !times.is_empty()
                    && times
                        .iter()
                        .all(|t| q.contains(zone.local(t.timestamp_millis()).time()));
                if quiet_all {
                    out.push(warn(
                        format!(
                            "checkin.rules: `{}` always falls in quiet hours ({}), so it always waits until {}",
                            r.name,
                            k.quiet_hours.trim(),
                            q.end.format("%H:%M")
                        ),
                        "move the rule out of the quiet hours, or change checkin.quiet_hours".into(),
                    ));
                }
            }
        }
    }
    match parse_time(&k.trigger_time) {
        Err(e) => out.push(fail(
            format!("checkin.trigger_time: {e}"),
            "write it as HH:MM, e.g. \"10:00\"".into(),
        )),
        Ok(t) if quiet.is_some_and(|q| q.contains(t)) && k.triggers => out.push(warn(
            format!(
                "checkin.trigger_time {} is inside quiet hours: birthday and event check-ins always wait",
                k.trigger_time.trim()
            ),
            "set checkin.trigger_time to a waking hour, e.g. \"10:00\"".into(),
        )),
        Ok(_) => {}
    }
    if k.rules.is_empty() && !k.triggers {
        out.push(warn(
            "check-ins are on, but there is no rule and triggers are off: nothing is ever delivered".into(),
            "add a rule (`twin checkin --add-rule \"daily 08:30\"`, or a in the Check-ins view), or set checkin.triggers = true".into(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        crate::config::load_str(std::path::Path::new("c.toml"), Some(toml), &|_| None)
            .unwrap()
            .config
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_defaults_are_fine() {
        let c = config("[checkin]\ntimezone = \"Europe/Berlin\"\n");
        assert_eq!(check(&c, now(), true), vec![]);
    }

    #[test]
    fn each_problem_says_how_to_fix_it() {
        let c = config(
            "[checkin]\ntimezone = \"Mars/Olympus\"\nrules = [\"daily 08:30\", \"cron 99 * * * *\", \"daily 23:00\"]\nquiet_hours = \"22:00-7\"\ntrigger_time = \"noon\"\n",
        );
        let f = check(&c, now(), true);
        let text: Vec<String> = f
            .iter()
            .map(|f| format!("{} => {}", f.detail, f.fix))
            .collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert!(has("cron 99 * * * *") && has("--change-rule"), "{text:#?}");
        assert!(has("checkin.timezone") && has("IANA"), "{text:#?}");
        assert!(
            has("checkin.quiet_hours") && has("22:00-07:00"),
            "{text:#?}"
        );
        assert!(has("checkin.trigger_time"), "{text:#?}");
        assert!(f.iter().all(|f| f.fail), "{text:#?}");

        let c = config(
            "[checkin]\ntimezone = \"UTC\"\nrules = [\"daily 23:00\", \"cron 0 23 * * *\"]\nquiet_hours = \"07:00-06:00\"\ntrigger_time = \"05:30\"\n",
        );
        let f = check(&c, now(), true);
        let text: Vec<String> = f.iter().map(|f| f.detail.clone()).collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert!(has("same times as another rule"), "{text:#?}");
        assert!(has("leave only 60 minutes"), "{text:#?}");
        assert!(has("always falls in quiet hours"), "{text:#?}");
        assert!(has("trigger_time 05:30 is inside quiet hours"), "{text:#?}");
        assert!(f.iter().all(|f| !f.fail), "{text:#?}");

        let c = config("[checkin]\ntimezone = \"local\"\nrules = []\ntriggers = false\n");
        let text: Vec<String> = check(&c, now(), false)
            .iter()
            .map(|f| f.detail.clone())
            .collect();
        assert!(text.iter().any(|t| t.contains("run in UTC")), "{text:#?}");
        assert!(
            text.iter().any(|t| t.contains("nothing is ever delivered")),
            "{text:#?}"
        );
    }
}
