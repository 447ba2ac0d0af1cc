//! The twin's prompt, built from plain inputs and tested without a model:
//! the persona (the style profile, later the biography), an optional per-contact
//! mode ("talk as I talk to Alice": that contact's statistics and a few real
//! exchanges), and the memories retrieval found, each with its id and an
//! instruction to cite it as `[m:ID]`. With no memories the twin is told to say
//! it does not know rather than invent personal facts. The persona is the
//! system prompt ([`persona_prompt`], the same every turn); the memories go
//! into each turn's user message ([`memory_block`], [`user_turn`]), so that
//! llama.cpp reuses the cached prefix of a conversation whatever is recalled.
//!
//! Replies are scanned for `[m:ID]` citations ([`parse_citations`]).

use serde::{Deserialize, Serialize};

use crate::ingest::contacts;
use crate::ingest::identity::me_id;
use crate::ingest::profile::{Profile, Style};
use crate::ingest::records::{Conversation, Message, Window};
use crate::ingest::windows::bursts;
use crate::store::{Key, Store, StoreError};

/// One memory retrieval handed to the prompt. `when`: milliseconds since the
/// epoch, when known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedMemory {
    pub id: String,
    /// episode, fact, preference, document, chat, summary.
    pub kind: String,
    pub text: String,
    pub when: Option<i64>,
    /// Where it came from, for people: "WhatsApp chat with Alice", "notes/trip.md".
    pub source: String,
}

/// One real exchange with a contact: what they wrote, what I answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub them: String,
    pub me: String,
}

/// "Talk as I talk to NAME".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactMode {
    pub name: String,
    pub style: Style,
    pub examples: Vec<Exchange>,
}

/// Everything the system prompt is made of.
#[derive(Debug, Clone, Default)]
pub struct PromptParts<'a> {
    /// `chat.system_prompt`: the opening line.
    pub base: &'a str,
    /// My name, when known.
    pub me: Option<&'a str>,
    /// How I write overall.
    pub style: Option<&'a Style>,
    /// A short biography (from memory, when it lands).
    pub biography: Option<&'a str>,
    pub contact: Option<&'a ContactMode>,
    pub memories: &'a [RetrievedMemory],
    /// The most characters the memories may take (the context budget); the
    /// best-ranked come first and are kept.
    pub memory_chars: usize,
}

/// The instruction given when memories are present.
pub const CITE_INSTRUCTION: &str = "Use these memories when they help, and cite each one you use as [m:ID] right after the claim, e.g. [m:42].";
/// The instruction given when nothing relevant was retrieved.
pub const NOT_KNOWN_INSTRUCTION: &str = "No memory matches this question. Do not invent facts about your life, people or events: if asked about them, say you do not remember or do not know.";

/// Describe a style in a few plain sentences a small model can follow.
pub fn describe_style(s: &Style) -> Vec<String> {
    let mut out = Vec::new();
    if s.messages == 0 {
        return out;
    }
    let length = match s.words_mean {
        w if w < 4.0 => "very short messages (a few words)",
        w if w < 10.0 => "short messages",
        w if w < 25.0 => "medium-length messages",
        _ => "long messages",
    };
    out.push(format!(
        "You write {length}, about {:.0} words each.",
        s.words_mean
    ));
    if s.all_lowercase_rate > 0.5 {
        out.push("You mostly write in lowercase.".into());
    } else if s.capital_start_rate > 0.7 {
        out.push("You start messages with a capital letter.".into());
    }
    if s.period_end_rate < 0.2 {
        out.push("You rarely end a message with a full stop.".into());
    }
    if s.exclamation_rate > 0.25 {
        out.push("You use exclamation marks often.".into());
    }
    if s.ellipsis_rate > 0.15 {
        out.push("You often trail off with \"...\".".into());
    }
    if s.emoji_rate > 0.3 {
        let favourite: Vec<&str> = s
            .top_emoji
            .iter()
            .take(3)
            .map(|(e, _)| e.as_str())
            .collect();
        if favourite.is_empty() {
            out.push("You use emoji often.".into());
        } else {
            out.push(format!(
                "You use emoji often, mostly {}.",
                favourite.join(" ")
            ));
        }
    } else if s.emoji_rate < 0.05 {
        out.push("You hardly use emoji.".into());
    }
    let phrases: Vec<&str> = s
        .top_phrases
        .iter()
        .take(5)
        .map(|(p, _)| p.as_str())
        .collect();
    if !phrases.is_empty() {
        out.push(format!("Words you use a lot: {}.", phrases.join(", ")));
    }
    out
}

fn day(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.format("%Y-%m-%d").to_string())
}

/// The system prompt with the memories in it (what `serve` sends: no
/// retrieval there, so the twin is told to say it does not know).
pub fn system_prompt(p: &PromptParts<'_>) -> String {
    let mut out = persona_prompt(p);
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&memory_block(p.memories, p.memory_chars));
    out.trim_end().to_string()
}

/// The persona alone: the same every turn of a chat, so llama.cpp reuses its
/// KV cache. What retrieval finds for a turn goes into that turn's user
/// message instead ([`memory_block`], [`user_turn`]).
pub fn persona_prompt(p: &PromptParts<'_>) -> String {
    let mut out = String::new();
    let base = p.base.trim();
    if !base.is_empty() {
        out.push_str(base);
        out.push('\n');
    }
    if let Some(me) = p.me.filter(|m| !m.trim().is_empty()) {
        out.push_str(&format!(
            "You are {me}'s digital twin: you answer as {me} would, in the first person.\n"
        ));
    }
    if let Some(bio) = p.biography.filter(|b| !b.trim().is_empty()) {
        out.push_str(&format!("About you: {}\n", bio.trim()));
    }
    let style = match p.contact {
        Some(c) if c.style.messages > 0 => Some(&c.style),
        _ => p.style,
    };
    if let Some(s) = style {
        for line in describe_style(s) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if let Some(c) = p.contact {
        out.push_str(&format!(
            "You are talking to {} the way you always do.\n",
            c.name
        ));
        if !c.examples.is_empty() {
            out.push_str(&format!("Real exchanges between you and {}:\n", c.name));
            for e in &c.examples {
                out.push_str(&format!(
                    "{}: {}\nYou: {}\n",
                    c.name,
                    one_line(&e.them),
                    one_line(&e.me)
                ));
            }
        }
    }
    out.trim_end().to_string()
}

/// The memories retrieval found, best first within `memory_chars`, with the
/// instruction to cite them; or, with none, the instruction to say it does not
/// know rather than invent.
pub fn memory_block(memories: &[RetrievedMemory], memory_chars: usize) -> String {
    let mut out = String::new();
    let mut used = 0usize;
    let mut kept = Vec::new();
    for m in memories {
        let line = memory_line(m);
        if used + line.len() > memory_chars && !kept.is_empty() {
            break;
        }
        if line.len() > memory_chars {
            continue;
        }
        used += line.len();
        kept.push(line);
    }
    if kept.is_empty() {
        out.push_str(NOT_KNOWN_INSTRUCTION);
    } else {
        out.push_str("Your memories:\n");
        for line in kept {
            out.push_str(&line);
        }
        out.push_str(CITE_INSTRUCTION);
    }
    out
}

/// A user turn as the model reads it: the turn's context block (memories,
/// or nothing), then what the person wrote. Earlier turns keep the block they
/// were asked with, so a follow-up prompt starts with exactly the tokens the
/// previous one left in the cache.
pub fn user_turn(context: &str, question: &str) -> String {
    if context.trim().is_empty() {
        question.to_string()
    } else {
        format!("{}\n\n{question}", context.trim_end())
    }
}

fn memory_line(m: &RetrievedMemory) -> String {
    let when = m
        .when
        .and_then(day)
        .map(|d| format!(", {d}"))
        .unwrap_or_default();
    let source = if m.source.is_empty() {
        String::new()
    } else {
        format!(", from {}", m.source)
    };
    format!(
        "[m:{}] ({}{when}{source}) {}\n",
        m.id,
        m.kind,
        one_line(&m.text)
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The memory ids cited as `[m:ID]` in `text`, each once, in order of first use.
/// An id is letters, digits, `-` and `_`; `[m:1, m:2]` and `[m:1][m:2]` both count.
pub fn parse_citations(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inside = &after[..close];
        for part in inside.split([',', ';']) {
            let part = part.trim();
            if let Some(id) = part.strip_prefix("m:").map(str::trim)
                && !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !out.iter().any(|o| o == id)
            {
                out.push(id.to_string());
            }
        }
        rest = &after[close + 1..];
    }
    out
}

/// Split citations into those of retrieved memories and the ones the model
/// made up (ids nobody gave it).
pub fn check_citations(
    cited: Vec<String>,
    memories: &[RetrievedMemory],
) -> (Vec<String>, Vec<String>) {
    cited
        .into_iter()
        .partition(|id| memories.iter().any(|m| &m.id == id))
}

/// The persona as stored: my name and how I write overall, from the style profile.
pub struct Persona {
    pub me: Option<String>,
    pub style: Option<Style>,
}

impl Persona {
    pub fn load(store: &Store) -> Result<Persona, StoreError> {
        let profile = Profile::load(store)?;
        Ok(Persona {
            me: profile.as_ref().and_then(|p| p.me.clone()),
            style: profile.map(|p| p.overall).filter(|s| s.messages > 0),
        })
    }
}

/// The most example exchanges a contact mode carries.
pub const EXAMPLES: usize = 3;

/// "Talk as I talk to NAME": that contact's style statistics and a few real
/// exchanges (their burst, then mine) from one-to-one conversations, newest first.
/// `Ok(None)` when no contact has that name.
pub fn contact_mode(store: &Store, name: &str) -> Result<Option<ContactMode>, StoreError> {
    let Some(contact) = contacts::find(store, name)? else {
        return Ok(None);
    };
    let style = Profile::load(store)?
        .and_then(|p| p.contacts.into_iter().find(|c| c.contact == contact.id))
        .map(|c| c.style)
        .unwrap_or_default();
    let me = me_id();
    let mut examples = Vec::new();
    let mut conversations: Vec<Conversation> = store
        .scan::<Conversation>([])
        .filter_map(|r| r.ok().map(|(_, c)| c))
        .filter(|c| {
            c.group != Some(true)
                && c.participants.len() == 2
                && c.participants.contains(&contact.id)
                && c.participants.contains(&me)
        })
        .collect();
    conversations.sort_by_key(|c| std::cmp::Reverse(c.last_ms));
    'convs: for conv in conversations {
        let windows: Vec<Window> = store
            .scan::<Window>(Key::new().u64(conv.id))
            .filter_map(|r| r.ok().map(|(_, w)| w))
            .collect();
        for w in windows.iter().rev() {
            let bursts = bursts(w);
            for pair in bursts.windows(2) {
                let ((a, s1, n1), (b, s2, n2)) = (pair[0], pair[1]);
                if a != contact.id || b != me {
                    continue;
                }
                let text = |start: usize, n: usize| -> Result<String, StoreError> {
                    let mut parts = Vec::new();
                    for key in &w.messages[start..start + n] {
                        if let Some(m) = store.get::<Message>(key)? {
                            parts.push(m.text);
                        }
                    }
                    Ok(parts.join(" / "))
                };
                let (them, mine) = (text(s1, n1)?, text(s2, n2)?);
                if them.trim().is_empty() || mine.trim().is_empty() || them.len() + mine.len() > 400
                {
                    continue;
                }
                examples.push(Exchange { them, me: mine });
                if examples.len() >= EXAMPLES {
                    break 'convs;
                }
                break;
            }
        }
    }
    Ok(Some(ContactMode {
        name: contact.name,
        style,
        examples,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: &str, text: &str) -> RetrievedMemory {
        RetrievedMemory {
            id: id.into(),
            kind: "fact".into(),
            text: text.into(),
            when: Some(1_700_000_000_000),
            source: "WhatsApp chat with Alice".into(),
        }
    }

    fn style() -> Style {
        Style {
            messages: 120,
            words_mean: 3.2,
            all_lowercase_rate: 0.8,
            period_end_rate: 0.05,
            emoji_rate: 0.6,
            top_emoji: vec![("😂".into(), 30)],
            top_phrases: vec![("haha".into(), 20), ("lol".into(), 9)],
            ..Style::default()
        }
    }

    #[test]
    fn memories_are_listed_with_ids_and_a_citation_instruction() {
        let mems = [
            memory("42", "Alice's birthday is\n 3 May"),
            memory("7", "likes tea"),
        ];
        let p = system_prompt(&PromptParts {
            base: "Be brief.",
            me: Some("Jo"),
            memories: &mems,
            memory_chars: 1000,
            ..PromptParts::default()
        });
        assert!(p.starts_with("Be brief.\nYou are Jo's digital twin"), "{p}");
        assert!(
            p.contains("[m:42] (fact, 2023-11-14, from WhatsApp chat with Alice) Alice's birthday is 3 May\n"),
            "{p}"
        );
        assert!(p.contains("[m:7]"), "{p}");
        assert!(p.contains(CITE_INSTRUCTION));
        assert!(!p.contains(NOT_KNOWN_INSTRUCTION));
    }

    #[test]
    fn the_persona_stays_put_and_memories_go_into_the_turn() {
        let mems = [memory("42", "likes tea")];
        let parts = PromptParts {
            base: "Be brief.",
            me: Some("Jo"),
            memories: &mems,
            memory_chars: 1000,
            ..PromptParts::default()
        };
        let persona = persona_prompt(&parts);
        assert!(!persona.contains("[m:42]") && !persona.contains(NOT_KNOWN_INSTRUCTION));
        let block = memory_block(&mems, 1000);
        assert!(
            block.contains("[m:42]") && block.contains(CITE_INSTRUCTION),
            "{block}"
        );
        assert_eq!(
            user_turn(&block, "tea or coffee?"),
            format!("{block}\n\ntea or coffee?")
        );
        assert_eq!(user_turn("", "hi"), "hi");
        assert!(memory_block(&[], 1000).contains(NOT_KNOWN_INSTRUCTION));
        // `serve` still gets one system prompt with both.
        assert_eq!(system_prompt(&parts), format!("{persona}\n{block}"));
    }

    #[test]
    fn no_memories_means_say_you_do_not_know() {
        let p = system_prompt(&PromptParts {
            base: "Hi.",
            memory_chars: 1000,
            ..PromptParts::default()
        });
        assert!(p.contains(NOT_KNOWN_INSTRUCTION), "{p}");
        assert!(!p.contains("[m:"), "{p}");
    }

    #[test]
    fn memories_beyond_the_budget_are_left_out_best_first() {
        let mems = [memory("1", &"a".repeat(50)), memory("2", &"b".repeat(50))];
        let p = system_prompt(&PromptParts {
            memories: &mems,
            memory_chars: 120,
            ..PromptParts::default()
        });
        assert!(p.contains("[m:1]") && !p.contains("[m:2]"), "{p}");
        // One that alone is over the budget is skipped, not cut.
        let p = system_prompt(&PromptParts {
            memories: &mems,
            memory_chars: 10,
            ..PromptParts::default()
        });
        assert!(p.contains(NOT_KNOWN_INSTRUCTION), "{p}");
    }

    #[test]
    fn style_and_contact_mode_shape_the_persona() {
        let s = style();
        let lines = describe_style(&s).join(" ");
        assert!(lines.contains("very short messages"), "{lines}");
        assert!(lines.contains("lowercase"), "{lines}");
        assert!(lines.contains("😂"), "{lines}");
        assert!(lines.contains("haha, lol"), "{lines}");
        assert!(describe_style(&Style::default()).is_empty());

        let alice = ContactMode {
            name: "Alice".into(),
            style: Style {
                messages: 10,
                words_mean: 30.0,
                ..Style::default()
            },
            examples: vec![Exchange {
                them: "lunch\ntomorrow?".into(),
                me: "sure, noon".into(),
            }],
        };
        let p = system_prompt(&PromptParts {
            style: Some(&s),
            contact: Some(&alice),
            memory_chars: 100,
            ..PromptParts::default()
        });
        // The contact's own statistics win over the overall ones.
        assert!(p.contains("long messages"), "{p}");
        assert!(!p.contains("very short"), "{p}");
        assert!(p.contains("talking to Alice"), "{p}");
        assert!(
            p.contains("Alice: lunch tomorrow?\nYou: sure, noon\n"),
            "{p}"
        );
    }

    #[test]
    fn citations_are_parsed_once_each_in_order() {
        assert_eq!(
            parse_citations(
                "Her birthday is 3 May [m:42]. She likes tea [m:7][m:42] [m:a-b_1, m:9]."
            ),
            vec!["42", "7", "a-b_1", "9"]
        );
        assert!(parse_citations("[x] [m:] [m:bad id] [m:1").is_empty());
        let mems = [memory("42", "x")];
        let (real, made_up) = check_citations(vec!["42".into(), "99".into()], &mems);
        assert_eq!(
            (real, made_up),
            (vec!["42".to_string()], vec!["99".to_string()])
        );
    }
}
