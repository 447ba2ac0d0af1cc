//! Chats with the twin become memories when they are closed (a new session,
//! switching sessions, quitting the TUI, the end of a `twin --batch chat`):
//! one `chat` memory per session, its provenance the session, so later chats
//! can recall what was said. The memory's id comes from the session's, and its
//! source hash from the turns, so closing twice changes nothing, and closing a
//! session that went on afterwards updates the one memory.
//!
//! Closing marks the session `closed` first (no model needed); the memory is
//! written when memory is open, else by the next `twin index`
//! ([`remember_closed`]).

use super::{Memories, MemoryError, MemoryKind, NewMemory, Provenance};
use crate::llm::sessions::{self, ChatSession};
use crate::store::{Store, StoreError};

/// A chat memory holds at most this many characters of the conversation.
const CHAT_CHARS: usize = 1500;

/// The memory id of a session.
pub fn id_for(session: u64) -> u64 {
    let mut b = b"chat-session".to_vec();
    b.extend_from_slice(&session.to_be_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The memory a session becomes; `None` when nobody said anything in it.
pub fn memory_of(s: &ChatSession) -> Option<NewMemory> {
    if !s.turns.iter().any(|t| !t.user.trim().is_empty()) {
        return None;
    }
    let mut text = format!("On {} you talked with your twin", day(s.created_ms));
    if let Some(c) = &s.contact {
        text.push_str(&format!(" (as you talk to {c})"));
    }
    text.push_str(":\n");
    for t in &s.turns {
        let mut lines = String::new();
        if !t.user.trim().is_empty() {
            lines.push_str(&format!("You: {}\n", one_line(&t.user)));
        }
        if !t.reply.trim().is_empty() {
            lines.push_str(&format!("Twin: {}\n", one_line(&t.reply)));
        }
        if text.len() + lines.len() > CHAT_CHARS {
            text.push('…');
            break;
        }
        text.push_str(&lines);
    }
    let text = text.trim_end().to_string();
    Some(NewMemory {
        id: id_for(s.id),
        kind: MemoryKind::Chat,
        title: format!("Chat with your twin: {}", s.title()),
        source_hash: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
        text,
        contacts: Vec::new(),
        conversation: None,
        start_ms: s.turns.first().map_or(s.created_ms, |t| t.at_ms),
        end_ms: s.turns.last().map_or(s.updated_ms, |t| t.at_ms),
        provenance: vec![Provenance::Chat { id: s.id }],
        importance: MemoryKind::Chat.base_importance(),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Mark a session closed; returns it (`None` when there is no such session).
pub fn close(store: &Store, id: u64) -> Result<Option<ChatSession>, StoreError> {
    let Some(mut s) = ChatSession::load(store, id)? else {
        return Ok(None);
    };
    if !s.closed {
        s.closed = true;
        s.save(store)?;
    }
    Ok(Some(s))
}

/// Write (or update) the memory of a session; returns its id when written.
pub fn remember(mem: &Memories, s: &ChatSession) -> Result<Option<u64>, MemoryError> {
    let Some(m) = memory_of(s) else {
        return Ok(None);
    };
    let id = m.id;
    mem.upsert(vec![m], None)?;
    Ok(Some(id))
}

/// Close a session and, with memory open, remember it.
pub fn close_and_remember(
    store: &Store,
    mem: Option<&Memories>,
    id: u64,
) -> Result<Option<u64>, MemoryError> {
    let Some(s) = close(store, id)? else {
        return Ok(None);
    };
    match mem {
        Some(mem) => remember(mem, &s),
        None => Ok(None),
    }
}

/// Every closed session's memory (what `twin index` does): sessions closed
/// while memory was not open are remembered now. Returns how many were written.
pub fn remember_closed(mem: &Memories) -> Result<u64, MemoryError> {
    let store = mem.store().clone();
    let mut items = Vec::new();
    for info in sessions::list(&store)? {
        if let Some(s) = ChatSession::load(&store, info.id)?
            && s.closed
            && let Some(m) = memory_of(&s)
        {
            items.push(m);
        }
    }
    Ok(mem.upsert(items, None)? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::engine::{Finish, GenStats};
    use crate::llm::sessions::StoredTurn;
    use crate::store::Tree;
    use std::sync::Arc;

    fn session(store: &Store, id: u64, turns: &[(&str, &str)]) -> ChatSession {
        let mut s = ChatSession::new(id, 1_763_700_000_000);
        for (u, r) in turns {
            s.turns.push(StoredTurn::new(
                u,
                r,
                1_763_700_000_000,
                Finish::Stop,
                &GenStats::default(),
            ));
        }
        s.save(store).unwrap();
        s
    }

    #[test]
    fn a_closed_session_becomes_one_chat_memory_however_often_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mem = Memories::open(
            store.clone(),
            Box::new(crate::memory::embed::HashEmbedder::new(32)),
            180.0,
        )
        .unwrap();
        session(
            &store,
            7,
            &[("where did we go skiing?", "Zermatt, in 2019.")],
        );
        let id = close_and_remember(&store, Some(&mem), 7).unwrap().unwrap();
        assert!(ChatSession::load(&store, 7).unwrap().unwrap().closed);
        // Closing again (quit after a new session, say) adds nothing.
        close_and_remember(&store, Some(&mem), 7).unwrap();
        assert_eq!(
            remember_closed(&mem).unwrap(),
            0,
            "unchanged: not rewritten"
        );
        assert_eq!(store.count(Tree::Memories).unwrap(), 1);
        let m = mem.get(id).unwrap().unwrap();
        assert_eq!(m.kind, MemoryKind::Chat);
        assert_eq!(m.provenance, vec![Provenance::Chat { id: 7 }]);
        assert!(
            m.text
                .contains("You: where did we go skiing?\nTwin: Zermatt, in 2019.")
        );
        // Later chats recall it.
        let hits = mem
            .search(&crate::memory::Query {
                text: "skiing Zermatt".into(),
                k: 3,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(hits.first().map(|h| h.id), Some(id));

        // A session that went on is the same memory, updated.
        let mut s = ChatSession::load(&store, 7).unwrap().unwrap();
        s.turns.push(StoredTurn::new(
            "and who came?",
            "Sam did.",
            1_763_700_100_000,
            Finish::Stop,
            &GenStats::default(),
        ));
        s.save(&store).unwrap();
        close_and_remember(&store, Some(&mem), 7).unwrap();
        assert_eq!(store.count(Tree::Memories).unwrap(), 1);
        assert!(mem.get(id).unwrap().unwrap().text.contains("Sam did."));

        // Closed without memory open: `twin index` remembers it later; an
        // empty session (only the twin spoke, or nothing) is no memory.
        session(&store, 8, &[("what is my cat called?", "Miso.")]);
        session(&store, 9, &[("", "Morning! How did the interview go?")]);
        assert_eq!(close_and_remember(&store, None, 8).unwrap(), None);
        close(&store, 9).unwrap();
        assert_eq!(remember_closed(&mem).unwrap(), 1);
        assert_eq!(store.count(Tree::Memories).unwrap(), 2);
        assert!(mem.get(id_for(8)).unwrap().is_some());
        assert!(mem.get(id_for(9)).unwrap().is_none());
        assert_eq!(close_and_remember(&store, Some(&mem), 404).unwrap(), None);
    }
}
