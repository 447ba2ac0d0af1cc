//! Self-QA: questions about me answered from what memory knows about me — the
//! fact and preference memories (`twin memory extract`) and my name from the
//! biography's sources — each pair keeping the memory it came from
//! (`[m:ID]`). Questions come from templates chosen by the shape of the fact
//! ("I live in …" -> "Where do you live?"); a fact in the third person ("Jo
//! lives in Lyon", "They like tea") is put in the first person first.
//!
//! The training set uses the pairs as examples (strategy `self_qa`); evaluation
//! asks the same questions and checks that the answer holds the fact's
//! distinctive words ([`Pair::key`]).

use serde::{Deserialize, Serialize};

use crate::ingest::identity::me_id;
use crate::ingest::records::Contact;
use crate::memory::{Memory, MemoryKind};
use crate::store::Store;

/// One question about me with the answer memory supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub question: String,
    pub answer: String,
    /// Words an answer must hold to state the fact (lowercase).
    pub key: Vec<String>,
    /// The memory it came from (`None`: my contact record, for my name).
    pub memory: Option<u64>,
    /// Whether a template specific to the fact's shape asked it (a generic
    /// fallback question is a weaker test).
    pub specific: bool,
}

/// What memory holds about me: facts and preferences, and my name.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub name: Option<String>,
    /// `(memory id, kind, text)`.
    pub facts: Vec<(u64, MemoryKind, String)>,
}

impl Known {
    /// Read them from the store (no embedder needed).
    pub fn load(store: &Store) -> anyhow::Result<Known> {
        let name = store
            .get::<Contact>(Contact::key(me_id()))?
            .map(|c| c.name)
            .filter(|n| !n.trim().is_empty());
        let mut facts = Vec::new();
        for kv in store.scan::<Memory>([]) {
            let (_, m) = kv?;
            if matches!(m.kind, MemoryKind::Fact | MemoryKind::Preference)
                && !m.text.trim().is_empty()
            {
                facts.push((m.id, m.kind, m.text.trim().to_string()));
            }
        }
        Ok(Known { name, facts })
    }
}

/// Every pair memory supports: none when it holds no facts (a name alone is
/// not worth training on), else two phrasings per fact and my name.
pub fn pairs(known: &Known) -> Vec<Pair> {
    if known.facts.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(name) = &known.name {
        let first = name
            .split_whitespace()
            .next()
            .unwrap_or(name)
            .to_lowercase();
        for q in ["What's your name?", "Who are you?"] {
            out.push(Pair {
                question: q.into(),
                answer: format!("I'm {name}."),
                key: vec![first.clone()],
                memory: None,
                specific: true,
            });
        }
    }
    for (id, kind, text) in &known.facts {
        out.extend(from_fact(*id, *kind, text, known.name.as_deref()));
    }
    out
}

/// The pairs one fact gives (one or two phrasings).
pub fn from_fact(id: u64, kind: MemoryKind, text: &str, me: Option<&str>) -> Vec<Pair> {
    let first = first_person(text, me);
    let lower = first.to_lowercase();
    let answer = sentence(&first);
    let mut key = content_words(&first);
    let pair = |q: &str, key: &[String], specific: bool| Pair {
        question: q.to_string(),
        answer: answer.clone(),
        key: key.to_vec(),
        memory: Some(id),
        specific,
    };
    // (prefixes, questions) for the shapes facts usually take.
    const SHAPES: &[(&[&str], &[&str])] = &[
        (
            &[
                "i live in ",
                "i'm living in ",
                "i am living in ",
                "i live at ",
            ],
            &["Where do you live?", "Where are you based these days?"],
        ),
        (
            &["i'm from ", "i am from ", "i come from ", "i grew up in "],
            &["Where are you from?", "Where did you grow up?"],
        ),
        (
            &[
                "i work as ",
                "i work at ",
                "i work for ",
                "i work in ",
                "my job ",
            ],
            &["What do you do for work?", "Where do you work?"],
        ),
        (
            &[
                "i study ",
                "i'm studying ",
                "i am studying ",
                "i go to school ",
                "i attend ",
            ],
            &["What do you study?", "Are you a student?"],
        ),
        (
            &["my name is ", "i am called ", "i'm called "],
            &["What's your name?", "What should I call you?"],
        ),
        (
            &["my birthday ", "i was born "],
            &["When is your birthday?", "When were you born?"],
        ),
        (
            &[
                "i have a ",
                "i have an ",
                "i have two ",
                "i have three ",
                "i own ",
            ],
            &[
                "What do you have at home?",
                "Tell me about your family or pets.",
            ],
        ),
        (
            &["my favorite ", "my favourite "],
            &["What are your favorites?", "What do you like best?"],
        ),
        (
            &[
                "i don't like ",
                "i do not like ",
                "i hate ",
                "i dislike ",
                "i can't stand ",
            ],
            &["Is there anything you don't like?", "What do you dislike?"],
        ),
        (
            &[
                "i like ",
                "i love ",
                "i enjoy ",
                "i prefer ",
                "i'm into ",
                "i am into ",
            ],
            &["What do you like?", "What do you enjoy doing?"],
        ),
        (
            &["i play "],
            &["Do you play anything?", "What do you play?"],
        ),
        (
            &[
                "i want to ",
                "i plan to ",
                "i'm planning ",
                "i am planning ",
                "i'm going to ",
                "i am going to ",
            ],
            &["What are you planning?", "What do you want to do next?"],
        ),
    ];
    for (prefixes, questions) in SHAPES {
        if let Some(p) = prefixes.iter().find(|p| lower.starts_with(**p)) {
            // The key is what follows the shape's words ("Lyon", not "live").
            let rest = content_words(first.get(p.len()..).unwrap_or(""));
            if !rest.is_empty() {
                key = rest;
            }
            return questions.iter().map(|q| pair(q, &key, true)).collect();
        }
    }
    if lower.starts_with("i am ") || lower.starts_with("i'm ") {
        return [
            "Tell me about yourself.",
            "How would you describe yourself?",
        ]
        .iter()
        .map(|q| pair(q, &key, false))
        .collect();
    }
    if key.is_empty() {
        return Vec::new();
    }
    // Generic: ask about its last content word (the object, usually).
    let topic = key.last().cloned().unwrap_or_default();
    let q = match kind {
        MemoryKind::Preference => format!("How do you feel about {topic}?"),
        _ => format!("What can you tell me about you and {topic}?"),
    };
    vec![pair(&q, &key, false)]
}

/// Whether `reply` states the fact: it holds at least half of the key words
/// (each matched as a word prefix, so "Lyon" matches "Lyon's").
pub fn answered(pair: &Pair, reply: &str) -> bool {
    if pair.key.is_empty() {
        return false;
    }
    let words: Vec<String> = words(reply);
    let hits = pair
        .key
        .iter()
        .filter(|k| words.iter().any(|w| w.starts_with(k.as_str())))
        .count();
    hits * 2 >= pair.key.len()
}

/// A fact written about me in the third person, put in the first: a leading
/// name (mine), "they", "he", "she", "the user" becomes "I" and the verb after
/// it loses its third-person ending ("lives" -> "live", "is" -> "am",
/// "has" -> "have"); "their/his/her" after that become "my".
pub fn first_person(text: &str, me: Option<&str>) -> String {
    let text = text.trim().trim_end_matches('.').trim();
    let mut subjects: Vec<String> = vec![
        "they".into(),
        "he".into(),
        "she".into(),
        "the user".into(),
        "the person".into(),
        "user".into(),
    ];
    if let Some(me) = me {
        subjects.push(me.to_lowercase());
        if let Some(f) = me.split_whitespace().next() {
            subjects.push(f.to_lowercase());
        }
    }
    subjects.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let lower = text.to_lowercase();
    for s in &subjects {
        let possessive = format!("{s}'s ");
        if lower.starts_with(&possessive) {
            return format!("My {}", text.get(possessive.len()..).unwrap_or(""));
        }
        let subject = format!("{s} ");
        if !lower.starts_with(&subject) {
            continue;
        }
        let rest = text.get(subject.len()..).unwrap_or("");
        let (verb, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let verb = match verb.to_lowercase().as_str() {
            "is" | "are" => "am".to_string(),
            "has" => "have".to_string(),
            "does" => "do".to_string(),
            "goes" => "go".to_string(),
            "was" | "were" => "was".to_string(),
            v if v.ends_with("ies") && v.len() > 4 => format!("{}y", &v[..v.len() - 3]),
            v if v.ends_with("ches") || v.ends_with("shes") || v.ends_with("sses") => {
                v[..v.len() - 2].to_string()
            }
            v if v.ends_with('s') && !v.ends_with("ss") && v.len() > 2 => {
                v[..v.len() - 1].to_string()
            }
            _ => verb.to_string(),
        };
        let tail = tail
            .split(' ')
            .map(|w| match w {
                "their" | "his" | "her" => "my",
                "themselves" | "himself" | "herself" => "myself",
                w => w,
            })
            .collect::<Vec<_>>()
            .join(" ");
        return format!("I {verb} {tail}").trim().to_string();
    }
    text.to_string()
}

fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let mut out: String = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

const STOP: &[&str] = &[
    "i", "i'm", "im", "me", "my", "mine", "myself", "a", "an", "the", "and", "or", "but", "to",
    "of", "in", "on", "at", "for", "with", "from", "by", "about", "as", "is", "am", "are", "was",
    "were", "be", "been", "have", "has", "had", "do", "does", "did", "not", "no", "it", "its",
    "this", "that", "these", "those", "there", "they", "them", "their", "he", "she", "his", "her",
    "you", "your", "we", "our", "so", "very", "really", "just", "also", "too", "some", "any",
    "like", "likes", "love", "loves", "enjoy", "enjoys", "live", "lives", "work", "works", "want",
    "wants", "going", "go", "goes", "get", "gets", "got", "would", "will", "can", "could", "lot",
    "lots", "much", "many", "one", "two", "three", "thing", "things", "user", "person", "don't",
    "doesn't", "dont", "when", "what", "who", "where", "how", "which", "all", "more", "most",
];

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The words that carry a fact (no stop words, at least 3 letters or a digit).
pub fn content_words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(s) {
        let w = w.trim_end_matches("'s").to_string();
        if STOP.contains(&w.as_str())
            || (w.chars().count() < 3 && !w.chars().any(|c| c.is_ascii_digit()))
        {
            continue;
        }
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(facts: &[(MemoryKind, &str)]) -> Known {
        Known {
            name: Some("Jo Doe".into()),
            facts: facts
                .iter()
                .enumerate()
                .map(|(i, (k, t))| (i as u64 + 1, *k, t.to_string()))
                .collect(),
        }
    }

    #[test]
    fn no_facts_means_no_pairs() {
        assert!(pairs(&known(&[])).is_empty());
    }

    #[test]
    fn third_person_facts_become_first_person_answers() {
        assert_eq!(
            first_person("Jo lives in Lyon.", Some("Jo Doe")),
            "I live in Lyon"
        );
        assert_eq!(
            first_person("They have a dog named Rex", None),
            "I have a dog named Rex"
        );
        assert_eq!(first_person("She is a nurse", None), "I am a nurse");
        assert_eq!(
            first_person("Jo's sister is Ann", Some("Jo")),
            "My sister is Ann"
        );
        assert_eq!(first_person("He studies physics", None), "I study physics");
        assert_eq!(
            first_person("He watches football", None),
            "I watch football"
        );
        assert_eq!(first_person("I like tea", None), "I like tea");
    }

    #[test]
    fn templates_follow_the_fact_and_keep_provenance() {
        let k = known(&[
            (MemoryKind::Fact, "Jo lives in Lyon"),
            (MemoryKind::Preference, "They love spicy ramen"),
            (MemoryKind::Fact, "Jo volunteers at the animal shelter"),
        ]);
        let p = pairs(&k);
        // Name (2) + live (2) + love (2) + generic (1).
        assert_eq!(p.len(), 7);
        assert_eq!(p[0].answer, "I'm Jo Doe.");
        assert!(p[0].memory.is_none());
        let live: Vec<&Pair> = p.iter().filter(|x| x.memory == Some(1)).collect();
        assert_eq!(live[0].question, "Where do you live?");
        assert_eq!(live[0].answer, "I live in Lyon.");
        assert_eq!(live[0].key, ["lyon"]);
        assert!(live[0].specific);
        let love: Vec<&Pair> = p.iter().filter(|x| x.memory == Some(2)).collect();
        assert_eq!(love[0].question, "What do you like?");
        assert_eq!(love[0].key, ["spicy", "ramen"]);
        let generic: Vec<&Pair> = p.iter().filter(|x| x.memory == Some(3)).collect();
        assert_eq!(generic.len(), 1);
        assert!(!generic[0].specific);
        assert_eq!(
            generic[0].question,
            "What can you tell me about you and shelter?"
        );
    }

    #[test]
    fn an_answer_counts_when_it_holds_the_key_words() {
        let p = &from_fact(1, MemoryKind::Preference, "I love spicy ramen", None)[0];
        assert!(answered(p, "Spicy ramen, always!"));
        assert!(answered(p, "ramen's the best"));
        assert!(!answered(p, "I like pizza"));
    }
}
