//! Chat sessions in the store's `chats` tree: one record per session (its turns,
//! times, citations, the contact mode and the adapter used), keyed by id so the
//! list comes out oldest first. A session is rewritten whole after each turn.

use serde::{Deserialize, Serialize};

use super::engine::{Finish, GenStats};
use crate::store::{Key, Record, Store, StoreError};

/// One exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTurn {
    pub user: String,
    pub reply: String,
    /// When the question was sent, ms since the epoch.
    pub at_ms: i64,
    /// stop, length, context_full.
    pub finish: String,
    /// Memory ids the reply cites.
    #[serde(default)]
    pub citations: Vec<String>,
    #[serde(default)]
    pub ttft_ms: u64,
    #[serde(default)]
    pub tokens_per_s: f64,
    /// What the model read with the question: the memories recalled for it
    /// (for the twin's own opening turn, the messages it cites).
    #[serde(default)]
    pub context: String,
}

impl StoredTurn {
    pub fn new(
        user: &str,
        reply: &str,
        at_ms: i64,
        finish: Finish,
        stats: &GenStats,
    ) -> StoredTurn {
        StoredTurn {
            user: user.to_string(),
            reply: reply.to_string(),
            at_ms,
            finish: serde_json::to_value(finish)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            citations: Vec::new(),
            ttft_ms: stats.ttft_ms,
            tokens_per_s: stats.tokens_per_s,
            context: String::new(),
        }
    }
}

/// A conversation with the twin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatSession {
    pub id: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// "Talk as I talk to NAME": the contact's name, when in that mode.
    #[serde(default)]
    pub contact: Option<String>,
    /// The LoRA adapter the replies came from (a path); `None`: the base model.
    #[serde(default)]
    pub adapter: Option<String>,
    /// The model's file name.
    #[serde(default)]
    pub model: Option<String>,
    pub turns: Vec<StoredTurn>,
    /// Closed sessions become memories (once memory lands).
    #[serde(default)]
    pub closed: bool,
}

impl Record for ChatSession {
    const TREE: crate::store::Tree = crate::store::Tree::Chats;
}

const PREFIX: &[u8] = b"s";

impl ChatSession {
    pub fn key(id: u64) -> Key {
        Key::new().bytes(PREFIX).u64(id)
    }

    /// A new, empty session; its id is the creation time in ms (made unique by
    /// [`ChatSession::save`]'s caller through [`next_id`]).
    pub fn new(id: u64, now_ms: i64) -> ChatSession {
        ChatSession {
            id,
            created_ms: now_ms,
            updated_ms: now_ms,
            contact: None,
            adapter: None,
            model: None,
            turns: Vec::new(),
            closed: false,
        }
    }

    /// The first question, shortened: what the session list shows.
    pub fn title(&self) -> String {
        // A conversation the twin began is named by its opening message.
        let first = self
            .turns
            .first()
            .map(|t| if t.user.is_empty() { &t.reply } else { &t.user })
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "(empty)".into());
        if first.chars().count() > 48 {
            format!("{}…", first.chars().take(47).collect::<String>())
        } else {
            first
        }
    }

    pub fn save(&self, store: &Store) -> Result<(), StoreError> {
        store.write(|tx| {
            tx.put(ChatSession::key(self.id), self)?;
            Ok(())
        })
    }

    pub fn load(store: &Store, id: u64) -> Result<Option<ChatSession>, StoreError> {
        store.get(ChatSession::key(id))
    }
}

/// What the session list shows of one session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub id: u64,
    pub title: String,
    pub turns: usize,
    pub updated_ms: i64,
    pub contact: Option<String>,
    pub adapter: Option<String>,
}

/// Every session, newest first.
pub fn list(store: &Store) -> Result<Vec<SessionInfo>, StoreError> {
    let mut out = Vec::new();
    for r in store.scan::<ChatSession>(PREFIX) {
        let (_, s) = r?;
        out.push(SessionInfo {
            id: s.id,
            title: s.title(),
            turns: s.turns.len(),
            updated_ms: s.updated_ms,
            contact: s.contact.clone(),
            adapter: s.adapter.clone(),
        });
    }
    out.reverse();
    Ok(out)
}

/// An id after every stored one, from the clock when it is ahead.
pub fn next_id(store: &Store, now_ms: i64) -> Result<u64, StoreError> {
    let last = store
        .tree(crate::store::Tree::Chats)
        .scan_prefix(PREFIX)
        .map(|r| r.map(|(k, _)| k))
        .last()
        .and_then(|k| k.ok())
        .and_then(|k| k.get(1..9).and_then(|b| b.try_into().ok()))
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    Ok((now_ms.max(0) as u64).max(last + 1))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Tree;

    fn stats() -> GenStats {
        GenStats {
            prompt_tokens: 10,
            reused_tokens: 0,
            evaluated_tokens: 10,
            generated_tokens: 5,
            ttft_ms: 80,
            prompt_ms: 70,
            prompt_tokens_per_s: 140.0,
            tokens_per_s: 120.5,
        }
    }

    #[test]
    fn sessions_round_trip_and_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(list(&store).unwrap().is_empty());
        let id = next_id(&store, 1000).unwrap();
        let mut a = ChatSession::new(id, 1000);
        a.contact = Some("Alice".into());
        a.adapter = Some("/m/me.lora.gguf".into());
        let mut t = StoredTurn::new(
            "when is her birthday?",
            "3 May [m:42]",
            1001,
            Finish::Stop,
            &stats(),
        );
        t.citations = vec!["42".into()];
        a.turns.push(t);
        a.save(&store).unwrap();
        // A clock that went backwards still gets a later id.
        let id2 = next_id(&store, 10).unwrap();
        assert_eq!(id2, id + 1);
        let b = ChatSession::new(id2, 10);
        b.save(&store).unwrap();
        assert_eq!(store.count(Tree::Chats).unwrap(), 2);
        // Saving again replaces, not adds.
        a.save(&store).unwrap();
        assert_eq!(store.count(Tree::Chats).unwrap(), 2);

        let back = ChatSession::load(&store, id).unwrap().unwrap();
        assert_eq!(back, a);
        assert_eq!(back.turns[0].finish, "stop");
        assert_eq!(back.turns[0].ttft_ms, 80);
        let l = list(&store).unwrap();
        assert_eq!(l.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id2, id]);
        assert_eq!(l[1].title, "when is her birthday?");
        assert_eq!(l[0].title, "(empty)");
        assert_eq!(l[1].contact.as_deref(), Some("Alice"));
    }

    #[test]
    fn long_titles_are_shortened() {
        let mut s = ChatSession::new(1, 0);
        s.turns.push(StoredTurn::new(
            &"word ".repeat(30),
            "",
            0,
            Finish::Stop,
            &stats(),
        ));
        assert_eq!(s.title().chars().count(), 48);
        assert!(s.title().ends_with('…'));
    }
}
