//! Pure prompt logic, tested without a model: which chat template a model gets,
//! and which turns of a conversation fit the context.

use serde::{Deserialize, Serialize};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(text: impl Into<String>) -> Message {
        Message {
            role: Role::System,
            content: text.into(),
        }
    }

    pub fn user(text: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: text.into(),
        }
    }

    pub fn assistant(text: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: text.into(),
        }
    }
}

/// The template a model is prompted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// The model's own `tokenizer.chat_template` (llama.cpp recognises its family).
    Model(String),
    /// A llama.cpp built-in by name: "chatml", "gemma", "llama3", ...
    Builtin(String),
}

impl Template {
    /// What llama.cpp's `llama_chat_apply_template` takes: the template text or a name.
    pub fn source(&self) -> &str {
        match self {
            Template::Model(s) | Template::Builtin(s) => s,
        }
    }

    /// A short name for people: the family of the model's template, or the built-in's name.
    pub fn name(&self) -> String {
        match self {
            Template::Model(s) => super::gguf::template_name(s),
            Template::Builtin(s) => s.clone(),
        }
    }
}

/// Why a model gets no template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAChatModel;

/// Pick the template: `configured` is `chat.template` ("auto" or a built-in name).
/// With "auto": the model's own; else gemma's built-in for gemma models (Gemma 3
/// 270M ships without one); else ChatML when the model calls itself instruct or
/// chat; otherwise it is not a chat model.
pub fn choose_template(
    configured: &str,
    model_template: Option<&str>,
    architecture: Option<&str>,
    names: &[&str],
) -> Result<Template, NotAChatModel> {
    if !configured.is_empty() && configured != "auto" {
        return Ok(Template::Builtin(configured.to_string()));
    }
    if let Some(t) = model_template.filter(|t| !t.trim().is_empty()) {
        return Ok(Template::Model(t.to_string()));
    }
    if architecture.is_some_and(|a| a.starts_with("gemma")) {
        return Ok(Template::Builtin("gemma".into()));
    }
    let instruct = names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        n.contains("instruct") || n.contains("chat") || n.contains("-it")
    });
    if instruct {
        Ok(Template::Builtin("chatml".into()))
    } else {
        Err(NotAChatModel)
    }
}

/// The messages that fit, and how many history messages were dropped to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    pub messages: Vec<Message>,
    pub dropped: usize,
    /// Tokens the kept messages take.
    pub tokens: usize,
}

/// Fit `messages` into `budget` tokens. `messages` is an optional system prompt,
/// then the history, then the question (the last message). The oldest history
/// messages go first, a user turn together with the reply that follows it, so the
/// kept history still starts with a user turn; the system prompt and the question
/// are never dropped. `count` tokenizes a candidate list. `Err(tokens)` when even
/// the system prompt and the question alone need more than `budget`.
pub fn fit<E>(
    messages: &[Message],
    budget: usize,
    mut count: impl FnMut(&[Message]) -> Result<usize, E>,
) -> Result<Result<Fitted, usize>, E> {
    let has_system = messages.first().is_some_and(|m| m.role == Role::System);
    let head = usize::from(has_system);
    let tail = messages.len().saturating_sub(1).max(head);
    let mut start = head;
    loop {
        let candidate: Vec<Message> = messages[..head]
            .iter()
            .chain(&messages[start..])
            .cloned()
            .collect();
        let tokens = count(&candidate)?;
        if tokens <= budget {
            return Ok(Ok(Fitted {
                messages: candidate,
                dropped: start - head,
                tokens,
            }));
        }
        if start >= tail {
            return Ok(Err(tokens));
        }
        // Drop one turn: this message and any replies up to the next user message.
        start += 1;
        while start < tail && messages[start].role != Role::User {
            start += 1;
        }
    }
}

/// How long the common prefix of two token lists is.
pub fn common_prefix<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Turns a stream of token bytes into text, holding back an incomplete UTF-8
/// character until its last byte arrives (byte-level vocabularies split them).
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Add bytes; returns the text that is complete now (invalid bytes become U+FFFD).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"),
                    );
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// What is left at the end of a stream.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_chosen_from_config_model_and_name() {
        let t = choose_template("auto", Some("<|im_start|>..."), Some("llama"), &[]).unwrap();
        assert_eq!(t.name(), "chatml");
        assert!(matches!(t, Template::Model(_)));
        assert_eq!(
            choose_template("llama3", Some("<|im_start|>"), None, &[]).unwrap(),
            Template::Builtin("llama3".into())
        );
        assert_eq!(
            choose_template("auto", None, Some("gemma3"), &["gemma-3-270m"]).unwrap(),
            Template::Builtin("gemma".into())
        );
        assert_eq!(
            choose_template("auto", None, Some("llama"), &["Tiny-Instruct.gguf"]).unwrap(),
            Template::Builtin("chatml".into())
        );
        assert_eq!(
            choose_template("auto", Some("  "), Some("llama"), &["base.gguf"]),
            Err(NotAChatModel)
        );
    }

    fn chars(ms: &[Message]) -> Result<usize, ()> {
        Ok(ms.iter().map(|m| m.content.len()).sum())
    }

    #[test]
    fn fitting_drops_the_oldest_turns_but_never_system_or_question() {
        let msgs = vec![
            Message::system("SSSS"),
            Message::user("u1u1u1"),
            Message::assistant("a1a1a1"),
            Message::user("u2u2"),
            Message::assistant("a2a2"),
            Message::user("QQ"),
        ];
        // Everything fits.
        let f = fit(&msgs, 100, chars).unwrap().unwrap();
        assert_eq!((f.messages.len(), f.dropped, f.tokens), (6, 0, 26));
        // The first turn (user + reply) goes.
        let f = fit(&msgs, 14, chars).unwrap().unwrap();
        assert_eq!(f.dropped, 2);
        assert_eq!(f.messages[0], Message::system("SSSS"));
        assert_eq!(f.messages[1], Message::user("u2u2"));
        assert_eq!(f.messages.last().unwrap(), &Message::user("QQ"));
        // Only system + question fit.
        let f = fit(&msgs, 6, chars).unwrap().unwrap();
        assert_eq!(f.dropped, 4);
        assert_eq!(
            f.messages,
            vec![Message::system("SSSS"), Message::user("QQ")]
        );
        // Not even those.
        assert_eq!(fit(&msgs, 5, chars).unwrap(), Err(6));
        // No system prompt, no history.
        let f = fit(&[Message::user("hi")], 10, chars).unwrap().unwrap();
        assert_eq!((f.messages.len(), f.dropped), (1, 0));
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix::<u8>(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2]), 2);
    }

    #[test]
    fn utf8_characters_split_across_tokens_come_out_whole() {
        let mut s = Utf8Stream::default();
        let bytes = "é😀".as_bytes();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..3]), "é");
        assert_eq!(s.push(&bytes[3..5]), "");
        assert_eq!(s.push(&bytes[5..]), "😀");
        assert_eq!(s.push(&[0xff, b'a']), "\u{FFFD}a");
        assert_eq!(s.push(&[0xe2]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
