//! Writing a check-in: the twin, through the chat engine, in the person's own
//! voice (their recent messages as examples), grounded in the message that
//! triggered it and citing it as `[m:ID]`; a plain template when no model is
//! present or the model says nothing useful. And turning a delivered check-in
//! into the opening twin turn of a chat.

use serde::Serialize;

use super::record::Checkin;
use super::triggers::Evidence;
use crate::llm::{Engine, GenEvent, GenerateRequest, Message};

/// The longest quote of a message put into a check-in.
const QUOTE_CHARS: usize = 140;
/// The longest check-in the model may write.
const MAX_CHARS: usize = 400;

fn quote(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= QUOTE_CHARS {
        one_line
    } else {
        let cut: String = one_line.chars().take(QUOTE_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

fn cite(e: &Evidence) -> String {
    format!("[{}]", e.cite)
}

fn when(e: &Evidence) -> String {
    chrono::DateTime::from_timestamp_millis(e.at_ms)
        .map(|d| d.format("%-d %b %Y").to_string())
        .unwrap_or_default()
}

/// The check-in in plain words, with its citation.
pub fn template(c: &Checkin) -> String {
    let subject = c.subject.clone().unwrap_or_default();
    let ev = c.evidence.as_ref();
    let grounded = |lead: &str| match ev {
        Some(e) => format!("{lead} \"{}\" {}", quote(&e.text), cite(e)),
        None => String::new(),
    };
    let years = c.years.unwrap_or(1);
    let ago = if years == 1 {
        "a year".to_string()
    } else {
        format!("{years} years")
    };
    let text = match c.rule.as_str() {
        "birthday" if subject == "you" => format!(
            "Happy birthday to us! 🎂 Someone remembered {ago} ago: {}",
            grounded("")
        ),
        "birthday" => format!(
            "It's {subject}'s birthday today — maybe send them a message? {}",
            grounded("From your chats:")
        ),
        "anniversary" => format!(
            "Today is {} anniversary. {}",
            if subject == "you" || subject == "your" {
                "your".to_string()
            } else {
                format!("{subject}'s")
            },
            grounded("From your chats:")
        ),
        "event" => format!(
            "How did the {subject} go? {}",
            grounded(&format!(
                "You mentioned it on {}:",
                ev.map(when).unwrap_or_default()
            ))
        ),
        "milestone" => format!(
            "{ago} ago today you {subject}. How does it feel now? {}",
            grounded("You wrote:")
        ),
        "silence" => format!(
            "You haven't heard from {subject} in a while — maybe say hi? {}",
            grounded("Their last message:")
        ),
        _ => {
            let hour: u32 = c
                .local
                .get(11..13)
                .and_then(|h| h.parse().ok())
                .unwrap_or(12);
            let opener = match hour {
                4..=11 => "Good morning! How are you feeling today?",
                12..=17 => "Hey, how's the day going?",
                _ => "Hey, how did today go?",
            };
            match ev {
                Some(e) => format!(
                    "{opener} Last thing on my mind: \"{}\" {}",
                    quote(&e.text),
                    cite(e)
                ),
                None => opener.to_string(),
            }
        }
    };
    text.trim().to_string()
}

/// What the model is asked to write about.
fn instruction(c: &Checkin) -> String {
    let subject = c.subject.clone().unwrap_or_default();
    let about = match c.rule.as_str() {
        "birthday" => format!("Today is {subject}'s birthday."),
        "anniversary" => format!("Today is {subject} anniversary."),
        "event" => format!("The {subject} you mentioned has just happened: ask how it went."),
        "milestone" => format!(
            "It is {} year(s) since you {subject}.",
            c.years.unwrap_or(1)
        ),
        "silence" => format!("{subject} has not written for weeks: suggest reaching out."),
        _ => "It is time for a friendly check-in: ask how the day is going.".to_string(),
    };
    match &c.evidence {
        Some(e) => format!(
            "{about} It comes from this message ({}): \"{}\". Write one or two short sentences that check in with me about it.",
            e.author_name,
            quote(&e.text)
        ),
        None => format!("{about} Write one or two short sentences that check in with me."),
    }
}

/// The system prompt: be the person, write like them.
pub fn system_prompt(me: &str, examples: &[String]) -> String {
    let mut s = format!(
        "You are {me}'s digital twin. You write short, casual text messages exactly the way {me} writes. You are reaching out to {me} first, unprompted."
    );
    if !examples.is_empty() {
        s.push_str(" Examples of how they write:");
        for e in examples.iter().take(6) {
            s.push_str(&format!("\n- {}", quote(e)));
        }
    }
    s
}

/// Compose with the model; falls back to the template when the model fails or
/// writes nothing. Returns (text, written by the model).
pub fn compose(
    c: &Checkin,
    engine: Option<&Engine>,
    system: &str,
    cancel: Option<tokio_util::sync::CancellationToken>,
) -> (String, Vec<String>, bool) {
    let cites: Vec<String> = c.evidence.iter().map(|e| e.cite.clone()).collect();
    let Some(engine) = engine else {
        return (template(c), cites, false);
    };
    let mut req =
        GenerateRequest::new(vec![Message::system(system), Message::user(instruction(c))]);
    req.max_tokens = Some(80);
    req.cancel = cancel;
    let mut generation = engine.generate(req);
    let reply = loop {
        match generation.next_blocking() {
            Some(GenEvent::Done(r)) => break Some(r),
            Some(GenEvent::Failed(e)) => {
                tracing::warn!(
                    "composing a check-in with the model failed: {e}; using the template"
                );
                break None;
            }
            None => break None,
            Some(_) => {}
        }
    };
    let text = reply
        .map(|r| clean(&r.text))
        .filter(|t| t.chars().filter(|c| c.is_alphabetic()).count() >= 8);
    match text {
        Some(mut t) => {
            if let Some(e) = &c.evidence
                && !t.contains(&e.cite)
            {
                t = format!("{t} {}", cite(e));
            }
            (t, cites, true)
        }
        None => (template(c), cites, false),
    }
}

/// Trim a model reply to one short message: its first two sentences.
fn clean(s: &str) -> String {
    let s = s.trim().trim_matches('"').trim();
    let mut out = String::new();
    let mut sentences = 0;
    for ch in s.chars().take(MAX_CHARS) {
        out.push(ch);
        if matches!(ch, '.' | '!' | '?') {
            sentences += 1;
            if sentences == 2 {
                break;
            }
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A check-in as the twin's first turn of a chat: the reply continues it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpeningTurn {
    /// The check-in's id (16 hex digits).
    pub checkin: String,
    pub text: String,
    /// What it cites, with the quoted text, for the sources view.
    pub citations: Vec<Citation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Citation {
    pub id: String,
    pub text: String,
    pub author: String,
    pub at_ms: i64,
}

/// The opening twin turn of the chat a check-in starts.
pub fn opening_turn(c: &Checkin) -> OpeningTurn {
    OpeningTurn {
        checkin: c.id_hex(),
        text: c.text.clone().unwrap_or_else(|| template(c)),
        citations: c
            .evidence
            .iter()
            .map(|e| Citation {
                id: e.cite.clone(),
                text: e.text.clone(),
                author: e.author_name.clone(),
                at_ms: e.at_ms,
            })
            .collect(),
    }
}

impl OpeningTurn {
    /// The conversation so far for the chat engine: the system prompt, the cited
    /// messages as context, and the twin's opening turn; append the user's
    /// reply and generate to continue it.
    pub fn messages(&self, system: &str) -> Vec<Message> {
        let mut out = vec![Message::system(system)];
        out.extend(self.history());
        out
    }

    /// What the check-in rests on, for the model: the messages it cites.
    pub fn context(&self) -> String {
        if self.citations.is_empty() {
            return String::new();
        }
        let mut out = String::from("You checked in on your own, because of these messages:");
        for c in &self.citations {
            out.push_str(&format!(
                "\n[{}] {}: \"{}\"",
                c.id,
                c.author,
                quote(&c.text)
            ));
        }
        out
    }

    /// The opening as chat history (after the chat's own system prompt): the
    /// context as a system message, then the twin's message.
    pub fn history(&self) -> Vec<Message> {
        crate::llm::conversation::Conversation::opened(&self.text, &self.context(), 0).history()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkin::record::Status;

    fn checkin(rule: &str, subject: Option<&str>, text: Option<&str>) -> Checkin {
        Checkin {
            id: 0xabc,
            rule: rule.into(),
            due_ms: 0,
            local: "2026-11-21 08:30".into(),
            status: Status::Pending,
            not_before_ms: None,
            subject: subject.map(Into::into),
            years: Some(1),
            evidence: text.map(|t| Evidence {
                cite: "m:00ff".into(),
                at_ms: 1_763_000_000_000,
                text: t.into(),
                author_name: "Jo".into(),
                from_me: true,
                with: Some("Sam".into()),
            }),
            text: None,
            cites: Vec::new(),
            by_model: false,
            delivered_ms: None,
            reason: None,
        }
    }

    #[test]
    fn templates_cite_what_triggered_them() {
        let t = template(&checkin(
            "event",
            Some("interview"),
            Some("interview on Friday"),
        ));
        assert!(t.starts_with("How did the interview go?"), "{t}");
        assert!(t.contains("\"interview on Friday\" [m:00ff]"), "{t}");
        let t = template(&checkin(
            "birthday",
            Some("Sam"),
            Some("Happy birthday Sam"),
        ));
        assert!(
            t.contains("Sam's birthday") && t.contains("[m:00ff]"),
            "{t}"
        );
        let t = template(&checkin("daily 08:30", None, None));
        assert_eq!(t, "Good morning! How are you feeling today?");
    }

    #[test]
    fn without_a_model_the_template_is_used() {
        let c = checkin("milestone", Some("got engaged"), Some("We got engaged!!!"));
        let (text, cites, by_model) = compose(&c, None, "", None);
        assert!(!by_model);
        assert_eq!(cites, vec!["m:00ff".to_string()]);
        assert!(text.contains("you got engaged"), "{text}");
    }

    #[test]
    fn a_model_reply_is_cut_to_two_sentences() {
        assert_eq!(
            clean("\"Hey Jo! How did it go?  I hope well. Tell me more.\""),
            "Hey Jo! How did it go?"
        );
        assert_eq!(clean("  no end  "), "no end");
    }

    #[test]
    fn an_opening_turn_carries_the_text_and_its_sources() {
        let mut c = checkin("event", Some("interview"), Some("interview on Friday"));
        c.text = Some("So, how did it go? [m:00ff]".into());
        let o = opening_turn(&c);
        assert_eq!(o.checkin, "0000000000000abc");
        assert_eq!(o.text, "So, how did it go? [m:00ff]");
        assert_eq!(o.citations[0].id, "m:00ff");
        let m = o.messages("You are Jo's twin.");
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].content, "You are Jo's twin.");
        // The cited message is the opening's context, then the twin speaks.
        assert!(
            m[1].content
                .contains("[m:00ff] Jo: \"interview on Friday\"")
        );
        assert_eq!(m[1].role, crate::llm::Role::System);
        assert_eq!(m[2], Message::assistant("So, how did it go? [m:00ff]"));
    }
}
