//! PII scrubbing for what leaves private memory: training data and exports.
//! E-mail addresses, phone numbers, IBANs and card numbers (checksum-verified),
//! street addresses, URLs that carry secrets, and optionally other people's
//! names are replaced with placeholders (`<EMAIL_1>`). The same value gets the
//! same placeholder within one [`Scrubber`], and the map back to the original
//! stays with the caller, on this machine.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Email,
    Phone,
    Iban,
    Card,
    Address,
    Url,
    Name,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::Iban => "IBAN",
            Kind::Card => "CARD",
            Kind::Address => "ADDRESS",
            Kind::Url => "URL",
            Kind::Name => "NAME",
        }
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b").expect("email regex")
});
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\bhttps?://[^\s<>"']+"#).expect("url regex"));
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
        .expect("iban regex")
});
static CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("card regex"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d|\(\d|\b\d)[\d \-().\u{a0}]{5,}\d\b").expect("phone regex")
});
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b\d{1,5}[a-zA-Z]?\s+(?:[A-Z][a-zA-Z'-]+\s+){1,3}",
        r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Close|Square)\b\.?",
        r"|\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|allee|platz|gasse|ring|damm)\s+\d{1,4}\s?[a-z]?\b",
        r"|\b\d{1,4},?\s+(?:rue|avenue|boulevard|place|chemin|via|calle|avenida)\s+[^\n,]{2,40}",
    ))
    .expect("address regex")
});

/// Query parameters whose value is a secret.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "auth",
    "key",
    "apikey",
    "api_key",
    "secret",
    "password",
    "pass",
    "pwd",
    "sig",
    "signature",
    "session",
    "sid",
    "code",
    "credential",
    "x-amz-signature",
];

/// Replaces PII with stable placeholders.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Other people's names to replace (whole words, case-insensitive).
    names: Vec<String>,
    assigned: HashMap<(Kind, String), String>,
    counters: HashMap<Kind, u32>,
}

impl Scrubber {
    pub fn new() -> Scrubber {
        Scrubber::default()
    }

    /// Also replace these names (third parties). Longer names are matched first.
    pub fn with_names(mut self, names: impl IntoIterator<Item = String>) -> Scrubber {
        self.names = names
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| n.chars().count() >= 2)
            .collect();
        self.names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        self.names.dedup();
        self
    }

    /// The placeholder -> original map so far (keep it local).
    pub fn mapping(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .assigned
            .iter()
            .map(|((_, orig), ph)| (ph.clone(), orig.clone()))
            .collect();
        v.sort();
        v
    }

    /// Put the originals back into scrubbed text.
    pub fn restore(&self, text: &str) -> String {
        let mut out = text.to_string();
        for ((_, orig), ph) in &self.assigned {
            out = out.replace(ph.as_str(), orig);
        }
        out
    }

    fn placeholder(&mut self, kind: Kind, original: &str) -> String {
        let key = (kind, original.to_string());
        if let Some(p) = self.assigned.get(&key) {
            return p.clone();
        }
        let n = self.counters.entry(kind).or_default();
        *n += 1;
        let p = format!("<{}_{}>", kind.tag(), n);
        self.assigned.insert(key, p.clone());
        p
    }

    /// Scrub one text.
    pub fn scrub(&mut self, text: &str) -> String {
        let mut out = self.replace(text, &URL, Kind::Url, is_secret_url);
        out = self.replace(&out, &EMAIL, Kind::Email, |_| true);
        out = self.replace(&out, &IBAN, Kind::Iban, iban_valid);
        out = self.replace(&out, &CARD, Kind::Card, luhn_valid);
        out = self.replace(&out, &PHONE, Kind::Phone, looks_like_phone);
        out = self.replace(&out, &ADDRESS, Kind::Address, |_| true);
        if !self.names.is_empty() {
            out = self.replace_names(&out);
        }
        out
    }

    fn replace(
        &mut self,
        text: &str,
        re: &Regex,
        kind: Kind,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in re.find_iter(text) {
            let s = m.as_str();
            // Never re-scrub inside a placeholder.
            if text[..m.start()].ends_with('<') || !accept(s) {
                continue;
            }
            out.push_str(&text[last..m.start()]);
            out.push_str(&self.placeholder(kind, s));
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    fn replace_names(&mut self, text: &str) -> String {
        let mut out = text.to_string();
        for name in self.names.clone() {
            let pattern = format!(r"(?i)\b{}\b", regex::escape(&name));
            let Ok(re) = Regex::new(&pattern) else {
                continue;
            };
            let mut res = String::with_capacity(out.len());
            let mut last = 0;
            for m in re.find_iter(&out) {
                res.push_str(&out[last..m.start()]);
                res.push_str(&self.placeholder(Kind::Name, &name));
                last = m.end();
            }
            res.push_str(&out[last..]);
            out = res;
        }
        out
    }
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn is_secret_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    // user:password@host
    if let Some(rest) = lower.split("://").nth(1)
        && let Some(auth) = rest.split('/').next()
        && auth.contains('@')
        && auth.split('@').next().is_some_and(|u| u.contains(':'))
    {
        return true;
    }
    let Some((_, query)) = lower.split_once('?') else {
        return false;
    };
    query.split(['&', '#']).any(|kv| {
        let k = kv.split('=').next().unwrap_or("");
        SECRET_PARAMS.contains(&k)
    })
}

/// Luhn checksum over 13-19 digits.
pub fn luhn_valid(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 mod-97 check.
pub fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u64 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v as u64,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// 7 to 15 digits, and not a date, time or plain decimal.
fn looks_like_phone(s: &str) -> bool {
    let n = digits(s).len();
    if !(7..=15).contains(&n) {
        return false;
    }
    let date_like =
        s.len() == 10 && (s.chars().nth(4) == Some('-') || s.chars().nth(2) == Some('.'));
    let has_sep = s.contains([' ', '-', '(', '.']) || s.starts_with('+');
    !date_like && (has_sep || n >= 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_pii_is_replaced_with_stable_placeholders() {
        let mut s = Scrubber::new();
        let out = s.scrub(
            "mail ann@example.com or ANN@example.com, call +1 (555) 010-0199 or 0176 1234567",
        );
        assert_eq!(
            out,
            "mail <EMAIL_1> or <EMAIL_2>, call <PHONE_1> or <PHONE_2>"
        );
        assert_eq!(s.scrub("again ann@example.com"), "again <EMAIL_1>");
        assert_eq!(
            s.restore(&out),
            "mail ann@example.com or ANN@example.com, call +1 (555) 010-0199 or 0176 1234567"
        );
    }

    #[test]
    fn bank_and_card_numbers_need_valid_checksums() {
        let mut s = Scrubber::new();
        assert_eq!(
            s.scrub("IBAN DE89 3704 0044 0532 0130 00 ok"),
            "IBAN <IBAN_1> ok"
        );
        assert_eq!(s.scrub("card 4111 1111 1111 1111"), "card <CARD_1>");
        assert_eq!(
            s.scrub("order 4111 1111 1111 1112"),
            "order 4111 1111 1111 1112",
            "Luhn fails: not a card"
        );
        assert!(
            !s.scrub("DE00 1234 5678 9012 3456 78").contains("<IBAN"),
            "mod-97 fails: not an IBAN"
        );
    }

    #[test]
    fn addresses_and_secret_urls() {
        let mut s = Scrubber::new();
        assert_eq!(s.scrub("meet at 221B Baker Street."), "meet at <ADDRESS_1>");
        assert_eq!(
            s.scrub("wohne in der Hauptstraße 5a jetzt"),
            "wohne in der <ADDRESS_2> jetzt"
        );
        assert_eq!(
            s.scrub("see https://x.io/r?id=3&token=abc and https://example.org/page"),
            "see <URL_1> and https://example.org/page"
        );
        assert_eq!(s.scrub("ftp https://me:hunter2@host/x"), "ftp <URL_2>");
    }

    #[test]
    fn dates_times_and_small_numbers_survive() {
        let mut s = Scrubber::new();
        let text = "on 2021-03-04 at 12:30 I paid 25.50 for 3 tickets, year 1999";
        assert_eq!(s.scrub(text), text);
    }

    #[test]
    fn third_party_names_optionally() {
        let mut s = Scrubber::new().with_names(["Alice".to_string(), "Bob Stone".to_string()]);
        // Longer names first, so "Bob Stone" is never half-replaced as "Bob".
        assert_eq!(
            s.scrub("alice met Bob Stone; Alicewise is a word"),
            "<NAME_2> met <NAME_1>; Alicewise is a word"
        );
        assert_eq!(
            s.mapping(),
            vec![
                ("<NAME_1>".into(), "Bob Stone".into()),
                ("<NAME_2>".into(), "Alice".into())
            ]
        );
    }
}
