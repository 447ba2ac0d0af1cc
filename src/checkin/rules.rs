//! Editing the schedule: add, change, switch off and on, and delete rules, from
//! the Check-ins view or `twin checkin --add-rule ...`. The rules live in the
//! person's `config.toml` (`checkin.rules`, and `checkin.disabled_rules` for
//! those switched off), changed in place with every comment kept
//! ([`crate::config::edit`]): one place says when the twin checks in, and
//! `twin config` shows where each value came from.

use std::path::Path;

use serde::Serialize;

use super::schedule::Rule;
use crate::config::{CheckinConfig, Config};

/// One rule as the Check-ins view and `--list` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleRow {
    pub rule: String,
    pub enabled: bool,
    /// The cron pattern it runs as ("30 8 * * *"), when it parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Why it does not parse, and what to write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Every rule, the enabled ones first, in the file's order.
pub fn rows(c: &CheckinConfig) -> Vec<RuleRow> {
    let row = |r: &String, enabled| {
        let (cron, problem) = match Rule::parse(r) {
            Ok(p) => (Some(p.pattern().to_string()), None),
            Err(e) => (None, Some(e)),
        };
        RuleRow {
            rule: r.trim().to_string(),
            enabled,
            cron,
            problem,
        }
    };
    c.rules
        .iter()
        .map(|r| row(r, true))
        .chain(c.disabled_rules.iter().map(|r| row(r, false)))
        .collect()
}

/// A change to the schedule; rules are named by their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleEdit {
    Add(String),
    Change { old: String, new: String },
    Enable(String),
    Disable(String),
    Delete(String),
}

impl RuleEdit {
    /// The rule whose planned check-ins stop (changed, switched off, deleted).
    pub fn retired(&self) -> Option<&str> {
        match self {
            RuleEdit::Change { old, .. } | RuleEdit::Disable(old) | RuleEdit::Delete(old) => {
                Some(old)
            }
            RuleEdit::Add(_) | RuleEdit::Enable(_) => None,
        }
    }

    /// What was done, for people.
    pub fn describe(&self) -> String {
        match self {
            RuleEdit::Add(r) => format!("added the rule `{}`", r.trim()),
            RuleEdit::Change { old, new } => {
                format!("changed the rule `{}` to `{}`", old.trim(), new.trim())
            }
            RuleEdit::Enable(r) => format!("switched the rule `{}` on", r.trim()),
            RuleEdit::Disable(r) => format!("switched the rule `{}` off", r.trim()),
            RuleEdit::Delete(r) => format!("deleted the rule `{}`", r.trim()),
        }
    }
}

/// Check a rule as typed: its cron pattern, or what is wrong and what to write.
pub fn validate(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("type a rule, e.g. \"daily 08:30\", \"weekdays 18:00\", \"mon,thu 19:15\" or \"cron 0 18 * * 1-5\"".into());
    }
    Rule::parse(text).map(|r| r.pattern().to_string())
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn find(list: &[String], rule: &str) -> Option<usize> {
    list.iter().position(|r| same(r, rule))
}

/// The rule lists after `edit` (pure): `(rules, disabled_rules)`.
pub fn apply(c: &CheckinConfig, edit: &RuleEdit) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut on, mut off) = (c.rules.clone(), c.disabled_rules.clone());
    let missing = |r: &str| {
        format!(
            "there is no rule `{}`; the rules are: {}",
            r.trim(),
            on.iter()
                .chain(&off)
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match edit {
        RuleEdit::Add(r) => {
            validate(r)?;
            if find(&on, r).or(find(&off, r)).is_some() {
                return Err(format!("the rule `{}` is there already", r.trim()));
            }
            on.push(r.trim().to_string());
        }
        RuleEdit::Change { old, new } => {
            validate(new)?;
            if !same(old, new) && find(&on, new).or(find(&off, new)).is_some() {
                return Err(format!("the rule `{}` is there already", new.trim()));
            }
            if let Some(i) = find(&on, old) {
                on[i] = new.trim().to_string();
            } else if let Some(i) = find(&off, old) {
                off[i] = new.trim().to_string();
            } else {
                return Err(missing(old));
            }
        }
        RuleEdit::Enable(r) => match find(&off, r) {
            Some(i) => {
                validate(&off[i])?;
                on.push(off.remove(i));
            }
            None if find(&on, r).is_some() => {}
            None => return Err(missing(r)),
        },
        RuleEdit::Disable(r) => match find(&on, r) {
            Some(i) => off.push(on.remove(i)),
            None if find(&off, r).is_some() => {}
            None => return Err(missing(r)),
        },
        RuleEdit::Delete(r) => {
            if let Some(i) = find(&on, r) {
                on.remove(i);
            } else if let Some(i) = find(&off, r) {
                off.remove(i);
            } else {
                return Err(missing(r));
            }
        }
    }
    Ok((on, off))
}

/// Apply `edit` to the rules in `file` (read fresh, so a hand edit made
/// meanwhile is kept) and save it; returns the config as it now loads.
pub fn save(
    file: &Path,
    edit: &RuleEdit,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, String> {
    let current = crate::config::load(file, env).map_err(|e| e.to_string())?;
    let (on, off) = apply(&current.config.checkin, edit)?;
    crate::config::edit::set_lists(
        file,
        &[
            ("checkin.rules", on.as_slice()),
            ("checkin.disabled_rules", off.as_slice()),
        ],
    )?;
    Ok(crate::config::load(file, env)
        .map_err(|e| e.to_string())?
        .config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(on: &[&str], off: &[&str]) -> CheckinConfig {
        let mut c = crate::config::load_str(Path::new("c.toml"), None, &|_| None)
            .unwrap()
            .config
            .checkin;
        c.rules = on.iter().map(|s| s.to_string()).collect();
        c.disabled_rules = off.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn edits_move_rules_between_the_lists() {
        let c = config(&["daily 08:30", "daily 20:00"], &[]);
        let add = apply(&c, &RuleEdit::Add("weekdays 18:00".into())).unwrap();
        assert_eq!(add.0, vec!["daily 08:30", "daily 20:00", "weekdays 18:00"]);
        let off = apply(&c, &RuleEdit::Disable("Daily 20:00".into())).unwrap();
        assert_eq!(
            off,
            (vec!["daily 08:30".into()], vec!["daily 20:00".into()])
        );
        let c2 = config(&["daily 08:30"], &["daily 20:00"]);
        let on = apply(&c2, &RuleEdit::Enable("daily 20:00".into())).unwrap();
        assert_eq!(on.0, vec!["daily 08:30", "daily 20:00"]);
        assert!(on.1.is_empty());
        let changed = apply(
            &c2,
            &RuleEdit::Change {
                old: "daily 20:00".into(),
                new: "cron 0 21 * * 1-5".into(),
            },
        )
        .unwrap();
        assert_eq!(changed.1, vec!["cron 0 21 * * 1-5"], "stays switched off");
        let gone = apply(&c2, &RuleEdit::Delete("daily 08:30".into())).unwrap();
        assert_eq!(gone, (vec![], vec!["daily 20:00".into()]));
    }

    #[test]
    fn bad_edits_say_what_is_wrong() {
        let c = config(&["daily 08:30"], &[]);
        let err = apply(&c, &RuleEdit::Add("cron 61 * * * *".into())).unwrap_err();
        assert!(
            err.contains("cron 61 * * * *") && err.contains("daily 08:30"),
            "{err}"
        );
        let err = apply(&c, &RuleEdit::Add("daily 08:30".into())).unwrap_err();
        assert!(err.contains("there already"), "{err}");
        let err = apply(&c, &RuleEdit::Delete("daily 09:00".into())).unwrap_err();
        assert!(err.contains("no rule `daily 09:00`") && err.contains("`daily 08:30`"));
        let err = apply(
            &c,
            &RuleEdit::Change {
                old: "daily 08:30".into(),
                new: "sometimes".into(),
            },
        )
        .unwrap_err();
        assert!(err.contains("sometimes"), "{err}");
        assert!(validate("").is_err());
        assert_eq!(validate("weekdays 18:05").unwrap(), "5 18 * * 1-5");
    }

    #[test]
    fn saved_rules_survive_a_reload_with_comments_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "# mine\n[checkin]\n# morning only\nrules = [\"daily 08:30\"]\n",
        )
        .unwrap();
        let env = |_: &str| None;
        save(&file, &RuleEdit::Add("weekends 10:00".into()), &env).unwrap();
        let c = save(&file, &RuleEdit::Disable("daily 08:30".into()), &env).unwrap();
        assert_eq!(c.checkin.rules, vec!["weekends 10:00"]);
        assert_eq!(c.checkin.disabled_rules, vec!["daily 08:30"]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# mine\n[checkin]\n# morning only\nrules = "),
            "{text}"
        );
        // A bad edit changes nothing.
        assert!(save(&file, &RuleEdit::Add("never".into()), &env).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        let rows = rows(&c.checkin);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].cron.as_deref(), Some("30 8 * * *"));
        assert!(!rows[1].enabled);
    }
}
