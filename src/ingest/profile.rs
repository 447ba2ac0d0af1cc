//! The style profile: how the person writes, overall and to each contact
//! (Astrabot's relationship dynamics): message lengths, emoji, punctuation and
//! capitals, burst sizes, response latency, active hours and frequent phrases.
//! Built from the conversation windows; stored in the `profile` tree.

use std::collections::HashMap;
use std::fmt;

use chrono::Timelike;
use serde::{Deserialize, Serialize};

use super::identity::me_id;
use super::pipeline::Zone;
use super::records::{Contact, Conversation, Id, Message, Window};
use super::windows::bursts;
use crate::store::{Key, Record, Store, StoreError, Tree};

/// Message-length buckets (characters): upper bounds.
pub const LENGTH_BUCKETS: [usize; 8] = [5, 10, 20, 40, 80, 160, 320, usize::MAX];

/// Writing statistics over a set of messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Style {
    pub messages: u64,
    pub chars_mean: f64,
    pub words_mean: f64,
    /// Messages per length bucket (see [`LENGTH_BUCKETS`]).
    pub length_hist: Vec<u64>,
    /// Emoji per message.
    pub emoji_rate: f64,
    /// Share of messages with `!`, `?`, `...`, ending in `.`.
    pub exclamation_rate: f64,
    pub question_rate: f64,
    pub ellipsis_rate: f64,
    pub period_end_rate: f64,
    /// Share of messages that start with a capital letter / have no capitals at all.
    pub capital_start_rate: f64,
    pub all_lowercase_rate: f64,
    /// Mean messages per burst, and bursts of 1, 2, 3, 4, 5, 6+ messages.
    pub burst_mean: f64,
    pub burst_hist: Vec<u64>,
    /// Seconds from someone's message to my reply (median, 90th percentile).
    pub reply_latency_median_s: Option<f64>,
    pub reply_latency_p90_s: Option<f64>,
    /// Messages per hour of the day, local time.
    pub active_hours: Vec<u64>,
    pub top_phrases: Vec<(String, u64)>,
    pub top_emoji: Vec<(String, u64)>,
}

/// The persona's statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Who "me" is; None when not known yet (then nothing is profiled).
    pub me: Option<String>,
    pub overall: Style,
    /// To each contact in one-to-one conversations, busiest first.
    pub contacts: Vec<ContactStyle>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactStyle {
    pub contact: Id,
    pub name: String,
    pub style: Style,
}

impl Record for Profile {
    const TREE: Tree = Tree::Profile;
}

impl Profile {
    pub fn key() -> Key {
        Key::new().str("style")
    }

    pub fn load(store: &Store) -> Result<Option<Profile>, StoreError> {
        store.get::<Profile>(Profile::key())
    }
}

/// Accumulates one [`Style`].
#[derive(Default)]
struct Acc {
    n: u64,
    chars: u64,
    words: u64,
    length_hist: [u64; 8],
    emoji: u64,
    exclamation: u64,
    question: u64,
    ellipsis: u64,
    period_end: u64,
    capital_start: u64,
    all_lower: u64,
    bursts: Vec<u64>,
    latencies: Vec<f64>,
    hours: [u64; 24],
    phrases: HashMap<String, u64>,
    emoji_counts: HashMap<char, u64>,
}

const STOP: &[&str] = &[
    "the", "a", "an", "and", "or", "to", "of", "in", "on", "at", "for", "is", "it", "i", "you",
    "me", "my", "we", "be", "that", "this", "with", "so", "but", "are", "was", "do", "have", "not",
    "just", "its", "im", "if", "as", "at",
];

impl Acc {
    fn add(&mut self, text: &str, hour: u32) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.n += 1;
        let chars = text.chars().count();
        self.chars += chars as u64;
        let words: Vec<&str> = text.split_whitespace().collect();
        self.words += words.len() as u64;
        let bucket = LENGTH_BUCKETS.iter().position(|&b| chars <= b).unwrap_or(7);
        self.length_hist[bucket] += 1;
        for c in text.chars().filter(|c| is_emoji(*c)) {
            self.emoji += 1;
            *self.emoji_counts.entry(c).or_default() += 1;
        }
        self.exclamation += text.contains('!') as u64;
        self.question += text.contains('?') as u64;
        self.ellipsis += (text.contains("...") || text.contains('…')) as u64;
        self.period_end += (text.ends_with('.') && !text.ends_with("..")) as u64;
        let first_letter = text.chars().find(|c| c.is_alphabetic());
        self.capital_start += first_letter.is_some_and(|c| c.is_uppercase()) as u64;
        self.all_lower +=
            (first_letter.is_some() && !text.chars().any(|c| c.is_uppercase())) as u64;
        self.hours[hour as usize % 24] += 1;
        // Frequent phrases: word pairs and triples without stop words at the edges.
        let clean: Vec<String> = words
            .iter()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect();
        for n in 2..=3 {
            for gram in clean.windows(n) {
                if STOP.contains(&gram[0].as_str()) || STOP.contains(&gram[n - 1].as_str()) {
                    continue;
                }
                *self.phrases.entry(gram.join(" ")).or_default() += 1;
            }
        }
        // Keep the phrase table bounded on huge histories.
        if self.phrases.len() > 200_000 {
            self.phrases.retain(|_, v| *v > 1);
        }
    }

    fn finish(self) -> Style {
        let n = self.n.max(1) as f64;
        let rate = |x: u64| round3(x as f64 / n);
        let mut latencies = self.latencies;
        latencies.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .copied()
        };
        let mut burst_hist = vec![0u64; 6];
        for &b in &self.bursts {
            burst_hist[(b.clamp(1, 6) - 1) as usize] += 1;
        }
        let top = |m: HashMap<String, u64>, k: usize, min: u64| {
            let mut v: Vec<(String, u64)> = m.into_iter().filter(|(_, c)| *c >= min).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(k);
            v
        };
        Style {
            messages: self.n,
            chars_mean: round3(self.chars as f64 / n),
            words_mean: round3(self.words as f64 / n),
            length_hist: self.length_hist.to_vec(),
            emoji_rate: rate(self.emoji),
            exclamation_rate: rate(self.exclamation),
            question_rate: rate(self.question),
            ellipsis_rate: rate(self.ellipsis),
            period_end_rate: rate(self.period_end),
            capital_start_rate: rate(self.capital_start),
            all_lowercase_rate: rate(self.all_lower),
            burst_mean: if self.bursts.is_empty() {
                0.0
            } else {
                round3(self.bursts.iter().sum::<u64>() as f64 / self.bursts.len() as f64)
            },
            burst_hist,
            reply_latency_median_s: pct(0.5),
            reply_latency_p90_s: pct(0.9),
            active_hours: self.hours.to_vec(),
            top_phrases: top(self.phrases, 20, 2),
            top_emoji: top(
                self.emoji_counts
                    .into_iter()
                    .map(|(c, n)| (c.to_string(), n))
                    .collect(),
                10,
                1,
            ),
        }
    }
}

/// The style of a set of replies, each the messages of one burst (`replies[i]`
/// is what I sent in a row): the same measures as the profile, without times.
/// Evaluation compares generated replies with real ones through it.
pub fn style_of(replies: &[Vec<String>]) -> Style {
    let mut acc = Acc::default();
    for burst in replies {
        let before = acc.n;
        for m in burst {
            acc.add(m, 0);
        }
        let sent = acc.n - before;
        if sent > 0 {
            acc.bursts.push(sent);
        }
    }
    acc.finish()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Emoji and pictographs (the common blocks; no skin-tone/joiner modifiers).
pub fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F300..=0x1F5FF | 0x1F600..=0x1F64F | 0x1F680..=0x1F6FF | 0x1F900..=0x1F9FF | 0x1FA70..=0x1FAFF
        | 0x2600..=0x26FF | 0x2700..=0x27BF | 0x1F1E6..=0x1F1FF)
}

/// Replies slower than this are not "responses".
const MAX_LATENCY_S: f64 = 6.0 * 3600.0;

/// Build the profile from every window and store it.
pub fn rebuild(store: &Store, zone: Zone) -> Result<Profile, StoreError> {
    let me = me_id();
    let Some(me_contact) = store.get::<Contact>(Contact::key(me))? else {
        let p = Profile::default();
        store.write(|tx| tx.put(Profile::key(), &p))?;
        return Ok(p);
    };
    let mut overall = Acc::default();
    let mut per: HashMap<Id, Acc> = HashMap::new();
    let mut one_to_one: HashMap<Id, Option<Id>> = HashMap::new();
    for r in store.scan::<Window>([]) {
        let (_, w) = r?;
        let other = match one_to_one.get(&w.conversation) {
            Some(o) => *o,
            None => {
                let o = store
                    .get::<Conversation>(Conversation::key(w.conversation))?
                    .and_then(|c| {
                        let others: Vec<Id> = c
                            .participants
                            .iter()
                            .copied()
                            .filter(|p| *p != me)
                            .collect();
                        (c.group != Some(true) && others.len() == 1).then(|| others[0])
                    });
                one_to_one.insert(w.conversation, o);
                o
            }
        };
        for (key, &author) in w.messages.iter().zip(&w.authors) {
            if author != me {
                continue;
            }
            let Some(m) = store.get::<Message>(key)? else {
                continue;
            };
            let hour = local_hour(zone, m.at_ms);
            overall.add(&m.text, hour);
            if let Some(o) = other {
                per.entry(o).or_default().add(&m.text, hour);
            }
        }
        // My bursts, and how long after the other side's last message each began.
        let bs = bursts(&w);
        for (i, &(author, start, len)) in bs.iter().enumerate() {
            if author != me {
                continue;
            }
            overall.bursts.push(len as u64);
            if let Some(o) = other {
                per.entry(o).or_default().bursts.push(len as u64);
            }
            if i > 0 {
                let (_, prev_start, prev_len) = bs[i - 1];
                let prev_key = &w.messages[prev_start + prev_len - 1];
                if let (Some(prev), Some(mine)) = (
                    store.get::<Message>(prev_key)?,
                    store.get::<Message>(&w.messages[start])?,
                ) {
                    let s = (mine.at_ms - prev.at_ms) as f64 / 1000.0;
                    if (0.0..=MAX_LATENCY_S).contains(&s) {
                        overall.latencies.push(s);
                        if let Some(o) = other {
                            per.entry(o).or_default().latencies.push(s);
                        }
                    }
                }
            }
        }
    }
    let mut contacts = Vec::new();
    for (id, acc) in per {
        if acc.n == 0 {
            continue;
        }
        let name = store
            .get::<Contact>(Contact::key(id))?
            .map(|c| c.name)
            .unwrap_or_default();
        contacts.push(ContactStyle {
            contact: id,
            name,
            style: acc.finish(),
        });
    }
    contacts.sort_by(|a, b| {
        b.style
            .messages
            .cmp(&a.style.messages)
            .then(a.name.cmp(&b.name))
    });
    let profile = Profile {
        me: Some(me_contact.name),
        overall: overall.finish(),
        contacts,
    };
    store.write(|tx| tx.put(Profile::key(), &profile))?;
    Ok(profile)
}

fn local_hour(zone: Zone, at_ms: i64) -> u32 {
    zone.local(at_ms).hour()
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |x: f64| format!("{:.0}%", x * 100.0);
        writeln!(f, "  messages        {}", self.messages)?;
        writeln!(
            f,
            "  length          {:.1} characters, {:.1} words on average",
            self.chars_mean, self.words_mean
        )?;
        writeln!(
            f,
            "  punctuation     ! {}  ? {}  ... {}  ends with . {}",
            pct(self.exclamation_rate),
            pct(self.question_rate),
            pct(self.ellipsis_rate),
            pct(self.period_end_rate)
        )?;
        writeln!(
            f,
            "  capitals        starts capitalised {}, all lowercase {}",
            pct(self.capital_start_rate),
            pct(self.all_lowercase_rate)
        )?;
        let emoji: Vec<&str> = self.top_emoji.iter().map(|(e, _)| e.as_str()).collect();
        writeln!(
            f,
            "  emoji           {:.2} per message {}",
            self.emoji_rate,
            emoji.join("")
        )?;
        writeln!(
            f,
            "  bursts          {:.1} messages in a row on average",
            self.burst_mean
        )?;
        if let (Some(m), Some(p)) = (self.reply_latency_median_s, self.reply_latency_p90_s) {
            writeln!(
                f,
                "  replies         median {}, 90% within {}",
                human_secs(m),
                human_secs(p)
            )?;
        }
        if let Some((h, _)) = self
            .active_hours
            .iter()
            .enumerate()
            .max_by_key(|(_, n)| **n)
        {
            writeln!(f, "  busiest hour    {h:02}:00")?;
        }
        let phrases: Vec<&str> = self
            .top_phrases
            .iter()
            .take(8)
            .map(|(p, _)| p.as_str())
            .collect();
        if !phrases.is_empty() {
            writeln!(f, "  phrases         {}", phrases.join(", "))?;
        }
        Ok(())
    }
}

fn human_secs(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0}s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(me) = &self.me else {
            return write!(
                f,
                "twin does not know which author is you yet: import with `--me NAME` or set identity.me in config"
            );
        };
        writeln!(f, "How {me} writes\n")?;
        write!(f, "{}", self.overall)?;
        for c in self.contacts.iter().take(10) {
            writeln!(f, "\nto {}", c.name)?;
            write!(f, "{}", c.style)?;
        }
        Ok(())
    }
}

impl crate::jobs::Summary for Profile {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_counts_what_it_says() {
        let mut a = Acc::default();
        a.add("Hello there! How are you?", 9);
        a.add("ok...", 9);
        a.add("see you at the lake house 😀😀", 21);
        a.add("lake house again.", 22);
        a.bursts = vec![1, 2, 3, 7];
        a.latencies = vec![10.0, 20.0, 30.0, 40.0, 600.0];
        let s = a.finish();
        assert_eq!(s.messages, 4);
        assert_eq!(s.exclamation_rate, 0.25);
        assert_eq!(s.question_rate, 0.25);
        assert_eq!(s.ellipsis_rate, 0.25);
        assert_eq!(s.period_end_rate, 0.25);
        assert_eq!(s.capital_start_rate, 0.25);
        assert_eq!(s.all_lowercase_rate, 0.75);
        assert_eq!(s.emoji_rate, 0.5);
        assert_eq!(s.top_emoji, vec![("😀".to_string(), 2)]);
        assert_eq!(s.top_phrases[0], ("lake house".to_string(), 2));
        assert_eq!(s.burst_hist, vec![1, 1, 1, 0, 0, 1]);
        assert_eq!(s.burst_mean, 3.25);
        assert_eq!(s.reply_latency_median_s, Some(30.0));
        assert_eq!(s.active_hours[9], 2);
        assert_eq!(s.length_hist.iter().sum::<u64>(), 4);
    }

    #[test]
    fn emoji_detection() {
        assert!(is_emoji('😀') && is_emoji('❤') && is_emoji('🇫'));
        assert!(!is_emoji('a') && !is_emoji('é') && !is_emoji('中'));
    }
}
