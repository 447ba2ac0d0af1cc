//! Contacts in the store: who "me" is, and merging two contacts into one
//! (how the user confirms "that author is me" or joins two spellings of a
//! friend). Messages keep their keys; only their author changes.

use std::collections::HashMap;

use serde::Serialize;

use super::identity::me_id;
pub use super::records::Contact;
use super::records::{Conversation, Id, Message, index};
use crate::store::{Store, StoreError, Tree, TxError};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MeReport {
    /// The contact twin takes for you, if any.
    pub name: Option<String>,
    pub contact: Option<Id>,
    /// "confirmed" (an export, config or --me said so, or you confirmed it),
    /// "proposed" (a guess: the author in the most conversations), "unknown".
    pub how: &'static str,
}

/// Who "me" is: the confirmed contact, else a proposal.
pub fn who_is_me(store: &Store) -> Result<MeReport, StoreError> {
    if let Some(me) = store.get::<Contact>(Contact::key(me_id()))? {
        return Ok(MeReport {
            name: Some(me.name),
            contact: Some(me.id),
            how: "confirmed",
        });
    }
    let mut in_conversations: HashMap<Id, u64> = HashMap::new();
    for r in store.scan::<Conversation>([]) {
        let (_, c) = r?;
        for p in c.participants {
            *in_conversations.entry(p).or_default() += 1;
        }
    }
    let best = in_conversations
        .into_iter()
        .max_by_key(|(id, n)| (*n, std::cmp::Reverse(*id)));
    Ok(match best {
        Some((id, n)) if n >= 2 => MeReport {
            name: store.get::<Contact>(Contact::key(id))?.map(|c| c.name),
            contact: Some(id),
            how: "proposed",
        },
        _ => MeReport {
            name: None,
            contact: None,
            how: "unknown",
        },
    })
}

/// Every contact, busiest first.
pub fn list(store: &Store) -> Result<Vec<Contact>, StoreError> {
    let mut all: Vec<Contact> = store
        .scan::<Contact>([])
        .map(|r| r.map(|(_, c)| c))
        .collect::<Result<_, _>>()?;
    all.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.name.cmp(&b.name)));
    Ok(all)
}

/// Find a contact by name (case-insensitive), handle or id.
pub fn find(store: &Store, query: &str) -> Result<Option<Contact>, StoreError> {
    let q = super::identity::normalize_name(query);
    Ok(list(store)?.into_iter().find(|c| {
        super::identity::normalize_name(&c.name) == q
            || c.names
                .iter()
                .any(|(n, _)| super::identity::normalize_name(n) == q)
            || c.handles.iter().any(|h| h.ends_with(query))
            || format!("{:016x}", c.id) == query
    }))
}

/// `twin contacts`: everyone, busiest first, and what a merge did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContactsReport {
    pub contacts: Vec<ContactRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactRow {
    #[serde(skip)]
    pub key: Id,
    pub id: String,
    pub name: String,
    pub me: bool,
    pub messages: u64,
    pub names: Vec<String>,
    pub handles: Vec<String>,
    pub formats: Vec<super::Format>,
    /// On the store's never-train list (`twin privacy never-train`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub never_train: bool,
}

impl ContactsReport {
    pub fn new(store: &Store, merged: Option<MergeReport>) -> Result<ContactsReport, StoreError> {
        let never = crate::privacy::never_train::stored(store)?;
        let contacts = list(store)?
            .into_iter()
            .map(|c| ContactRow {
                key: c.id,
                id: format!("{:016x}", c.id),
                name: c.name,
                me: c.me,
                messages: c.messages,
                names: c.names.into_iter().map(|(n, _)| n).collect(),
                handles: c
                    .handles
                    .iter()
                    .map(|h| super::identity::display_identity(h))
                    .collect(),
                formats: c.formats,
                never_train: never.contains(&c.id),
            })
            .collect();
        Ok(ContactsReport { contacts, merged })
    }
}

impl std::fmt::Display for ContactsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(m) = &self.merged {
            writeln!(
                f,
                "merged: {} messages in {} conversations moved\n",
                m.messages, m.conversations
            )?;
        }
        for c in &self.contacts {
            let me = if c.me { " (you)" } else { "" };
            let formats: Vec<&str> = c.formats.iter().map(|f| f.name()).collect();
            writeln!(
                f,
                "{:>8}  {}{me}  [{}]  {}",
                c.messages,
                c.name,
                formats.join(","),
                c.id
            )?;
            let others: Vec<&String> = c.names.iter().filter(|n| **n != c.name).collect();
            if !others.is_empty() || !c.handles.is_empty() {
                let aka: Vec<String> = others
                    .iter()
                    .map(|n| n.to_string())
                    .chain(c.handles.iter().cloned())
                    .collect();
                writeln!(f, "          also {}", aka.join(", "))?;
            }
        }
        write!(f, "{} contacts", self.contacts.len())
    }
}

impl crate::jobs::Summary for ContactsReport {}

/// Every conversation `contact` took part in.
fn conversations_with(store: &Store, contact: Id) -> Result<Vec<Conversation>, StoreError> {
    let mut out = Vec::new();
    for r in store.scan::<Conversation>([]) {
        let (_, c) = r?;
        if c.participants.contains(&contact) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Undo a merge: the messages `contact` wrote under `name` become a contact of
/// their own (the one `name` identifies), with the aliases of that name.
pub fn split(store: &Store, contact: Id, name: &str) -> Result<MergeReport, StoreError> {
    let mut report = MergeReport::default();
    let Some(mut source) = store.get::<Contact>(Contact::key(contact))? else {
        return Ok(report);
    };
    let wanted = super::identity::normalize_name(name);
    let new_id = super::records::id_of(&[b"contact", format!("name:{wanted}").as_bytes()]);
    let new_id = if new_id == contact {
        super::records::id_of(&[b"contact", b"split", wanted.as_bytes()])
    } else {
        new_id
    };
    let conversations = conversations_with(store, contact)?;
    let mut moved = Contact {
        id: new_id,
        name: name.to_string(),
        names: Vec::new(),
        handles: Vec::new(),
        me: false,
        messages: 0,
        first_ms: i64::MAX,
        last_ms: i64::MIN,
        formats: source.formats.clone(),
    };
    for conv in conversations {
        let mut entries = Vec::new();
        for kv in store
            .tree(Tree::Timeline)
            .scan_prefix(index::timeline_prefix(conv.id))
        {
            let (k, v) = kv.map_err(|e| StoreError::Aborted(e.to_string()))?;
            let Some((_, key)) = index::timeline_parts(&k) else {
                continue;
            };
            if v.as_ref() != contact.to_be_bytes() {
                continue;
            }
            if let Some(m) = store.get::<Message>(key)?
                && super::identity::normalize_name(&m.author_name) == wanted
            {
                entries.push((k, key, m));
            }
        }
        if entries.is_empty() {
            continue;
        }
        let mut updated = conv.clone();
        if !updated.participants.contains(&new_id) {
            updated.participants.push(new_id);
        }
        updated.windows_stale = true;
        store.write(|tx| {
            for (k, key, m) in &entries {
                let mut m = m.clone();
                m.author = new_id;
                tx.put(key, &m)?;
                tx.put_raw(Tree::Timeline, k, new_id.to_be_bytes().to_vec())?;
            }
            tx.put(Conversation::key(updated.id), &updated)?;
            Ok::<_, TxError>(())
        })?;
        for (_, _, m) in &entries {
            moved.messages += 1;
            moved.first_ms = moved.first_ms.min(m.at_ms);
            moved.last_ms = moved.last_ms.max(m.at_ms);
        }
        report.messages += entries.len() as u64;
        report.conversations += 1;
    }
    if report.messages == 0 {
        return Ok(report);
    }
    moved.names.push((name.to_string(), moved.messages));
    source
        .names
        .retain(|(n, _)| super::identity::normalize_name(n) != wanted);
    source.messages = source.messages.saturating_sub(moved.messages);
    if let Some((best, _)) = source.names.iter().max_by_key(|(_, n)| *n) {
        source.name = best.clone();
    }
    store.write(|tx| {
        tx.put_raw(
            Tree::Index,
            index::alias(&format!("name:{wanted}")),
            new_id.to_be_bytes().to_vec(),
        )?;
        tx.put(Contact::key(new_id), &moved)?;
        tx.put(Contact::key(contact), &source)?;
        Ok::<_, TxError>(())
    })?;
    Ok(report)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MergeReport {
    pub messages: u64,
    pub conversations: u64,
}

/// Merge contact `from` into `into` (created if missing, as when `into` is
/// "me"): its messages, aliases and names move over, conversations get their
/// windows rebuilt. Each conversation moves in one transaction, so an
/// interrupted merge can simply be run again.
pub fn merge(store: &Store, from: Id, into: Id) -> Result<MergeReport, StoreError> {
    let mut report = MergeReport::default();
    if from == into {
        return Ok(report);
    }
    let Some(source) = store.get::<Contact>(Contact::key(from))? else {
        return Ok(report);
    };
    let conversations = conversations_with(store, from)?;
    for conv in conversations {
        let mut entries = Vec::new();
        for kv in store
            .tree(Tree::Timeline)
            .scan_prefix(index::timeline_prefix(conv.id))
        {
            let (k, v) = kv.map_err(|e| StoreError::Aborted(e.to_string()))?;
            if v.as_ref() == from.to_be_bytes() && k.len() == 33 {
                entries.push(k);
            }
        }
        let mut updated = conv.clone();
        updated.participants.retain(|p| *p != from);
        if !updated.participants.contains(&into) {
            updated.participants.push(into);
        }
        updated.windows_stale = true;
        store.write(|tx| {
            for k in &entries {
                let Some((_, key)) = index::timeline_parts(k) else {
                    continue;
                };
                if let Some(mut m) = tx.get::<Message>(key)? {
                    m.author = into;
                    tx.put(key, &m)?;
                }
                tx.put_raw(Tree::Timeline, k, into.to_be_bytes().to_vec())?;
            }
            tx.put(Conversation::key(updated.id), &updated)?;
            Ok::<_, TxError>(())
        })?;
        report.messages += entries.len() as u64;
        report.conversations += 1;
    }
    let aliases: Vec<sled::IVec> = store
        .tree(Tree::Index)
        .scan_prefix(b"a")
        .filter_map(Result::ok)
        .filter(|(_, v)| v.as_ref() == from.to_be_bytes())
        .map(|(k, _)| k)
        .collect();
    let mut target = store
        .get::<Contact>(Contact::key(into))?
        .unwrap_or_else(|| Contact {
            id: into,
            name: source.name.clone(),
            names: Vec::new(),
            handles: Vec::new(),
            me: into == me_id(),
            messages: 0,
            first_ms: source.first_ms,
            last_ms: source.last_ms,
            formats: Vec::new(),
        });
    for (name, n) in &source.names {
        match target.names.iter_mut().find(|(t, _)| t == name) {
            Some((_, k)) => *k += n,
            None => target.names.push((name.clone(), *n)),
        }
    }
    for h in &source.handles {
        if !target.handles.contains(h) {
            target.handles.push(h.clone());
        }
    }
    for f in &source.formats {
        if !target.formats.contains(f) {
            target.formats.push(*f);
        }
    }
    target.messages += source.messages;
    target.first_ms = target.first_ms.min(source.first_ms);
    target.last_ms = target.last_ms.max(source.last_ms);
    store.write(|tx| {
        for k in &aliases {
            tx.put_raw(Tree::Index, k, into.to_be_bytes().to_vec())?;
        }
        tx.put(Contact::key(into), &target)?;
        tx.remove(Tree::Contacts, Contact::key(from))?;
        Ok::<_, TxError>(())
    })?;
    Ok(report)
}

impl std::fmt::Display for MergeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages in {} conversations moved",
            self.messages, self.conversations
        )
    }
}

impl crate::jobs::Summary for MergeReport {}
