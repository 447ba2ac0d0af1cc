//! Forget a person: their messages, the conversations that were only with
//! them, their aliases, their share of the per-day activity, the contact
//! itself — and whatever other modules registered a [`Cascade`] for (memories
//! and vectors that derive only from those messages, dataset rows, adapters
//! trained on them).
//!
//! [`plan`] says what would go (the TUI's confirmation and `--dry-run` show
//! it); [`apply`] does it, one conversation per transaction, so an
//! interrupted forget is finished by running it again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use crate::ingest::pipeline::Zone;
use crate::ingest::records::{Contact, Conversation, Id, Message, index};
use crate::store::{Key, Store, StoreError, Tree, TxError};

/// Who is being forgotten and what of theirs goes, for cascades.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub contact: Id,
    pub name: String,
    /// Keys of every message that goes (theirs, and both sides of
    /// conversations only with them).
    pub messages: HashSet<[u8; 16]>,
    /// Conversations removed entirely.
    pub conversations: HashSet<Id>,
}

/// Another module's part of forgetting a person. Register one with
/// [`register`] at start-up; [`plan`] asks every cascade what it would
/// remove and [`apply`] has each remove it after the messages are gone.
///
/// ```ignore
/// struct Memories;
/// impl twin::privacy::forget::Cascade for Memories {
///     fn name(&self) -> &'static str { "memories" }
///     fn plan(&self, store: &Store, t: &Target) -> anyhow::Result<BTreeMap<String, u64>> {
///         // memories whose provenance lies entirely in t.messages, their vectors, ...
///     }
///     fn apply(&self, store: &Store, t: &Target) -> anyhow::Result<BTreeMap<String, u64>> { ... }
/// }
/// twin::privacy::forget::register(Box::new(Memories));
/// ```
pub trait Cascade: Send + Sync {
    fn name(&self) -> &'static str;
    /// What would go, as counts per kind ("memories", "vectors", "adapters marked stale").
    fn plan(&self, store: &Store, target: &Target) -> anyhow::Result<Part>;
    /// Remove it; returns the same counts for what went.
    fn apply(&self, store: &Store, target: &Target) -> anyhow::Result<Part>;
}

/// A cascade's share of a [`ForgetReport`]: counts per kind, and the things it
/// names (e.g. "stale_adapters": the ids of adapters trained on them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    pub counts: BTreeMap<String, u64>,
    pub named: BTreeMap<String, Vec<String>>,
}

impl From<BTreeMap<String, u64>> for Part {
    fn from(counts: BTreeMap<String, u64>) -> Part {
        Part {
            counts,
            named: BTreeMap::new(),
        }
    }
}

impl ForgetReport {
    fn add(&mut self, part: Part) {
        for (k, n) in part.counts {
            *self.removed.entry(k).or_default() += n;
        }
        for (k, v) in part.named {
            self.named.entry(k).or_default().extend(v);
        }
    }
}

fn registry() -> &'static Mutex<Vec<Box<dyn Cascade>>> {
    static R: OnceLock<Mutex<Vec<Box<dyn Cascade>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Add a cascade (once per process; a second one with the same name replaces it).
pub fn register(c: Box<dyn Cascade>) {
    let mut r = registry().lock().expect("cascade registry");
    r.retain(|x| x.name() != c.name());
    r.push(c);
}

/// What forgetting removes, per kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ForgetReport {
    pub contact: String,
    pub id: String,
    /// true when this is what would go (a plan), false when it went.
    pub dry_run: bool,
    /// Counts per kind: messages, conversations, aliases, activity_days, contacts,
    /// and what each cascade reported.
    pub removed: BTreeMap<String, u64>,
    /// Conversations that stay (with others in them) but lost their messages.
    pub conversations_changed: u64,
    /// What cascades name: "stale_adapters" (ids of adapters trained on them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub named: BTreeMap<String, Vec<String>>,
    /// Identities (numbers, addresses, ids, names) and conversations that
    /// later imports skip (see [`super::tombstone`]).
    pub tombstones: u64,
}

impl std::fmt::Display for ForgetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what: Vec<String> = self
            .removed
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        write!(
            f,
            "{} {}: {}",
            if self.dry_run {
                "forgetting would remove for"
            } else {
                "forgot"
            },
            self.contact,
            if what.is_empty() {
                "nothing".to_string()
            } else {
                what.join(", ")
            }
        )?;
        if let Some(ids) = self.named.get("stale_adapters").filter(|v| !v.is_empty()) {
            write!(
                f,
                "\nadapters trained on them {} stale: {}; retrain with `twin dataset build` then `twin train`",
                if self.dry_run { "would go" } else { "are now" },
                ids.join(", ")
            )?;
        }
        if !self.dry_run && self.tombstones > 0 {
            write!(
                f,
                "\nlater imports skip their messages (`twin forget contact --undo NAME` lifts that)"
            )?;
        }
        Ok(())
    }
}

impl crate::jobs::Summary for ForgetReport {}

/// One conversation's share of the work.
struct ConvPlan {
    conv: Conversation,
    /// Whole conversation goes (it was only with them).
    whole: bool,
    /// (timeline key, message key, author, at_ms) of messages that go.
    entries: Vec<(sled::IVec, [u8; 16], Id, i64)>,
}

fn be_u64(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().unwrap_or([0; 8]))
}

fn conv_plans(store: &Store, contact: Id) -> Result<Vec<ConvPlan>, StoreError> {
    let me = crate::ingest::identity::me_id();
    let mut out = Vec::new();
    for r in store.scan::<Conversation>([]) {
        let (_, conv) = r?;
        if !conv.participants.contains(&contact) {
            continue;
        }
        let mut all = Vec::new();
        for kv in store
            .tree(Tree::Timeline)
            .scan_prefix(index::timeline_prefix(conv.id))
        {
            let (k, v) = kv?;
            let Some((at, key)) = index::timeline_parts(&k) else {
                continue;
            };
            all.push((k, key, be_u64(&v), at));
        }
        let others = conv.participants.iter().any(|p| *p != contact && *p != me);
        let whole = conv.group != Some(true) && !others;
        let entries: Vec<_> = all
            .into_iter()
            .filter(|(_, _, author, _)| whole || *author == contact)
            .collect();
        out.push(ConvPlan {
            conv,
            whole,
            entries,
        });
    }
    // A group conversation where only they wrote also becomes empty.
    for p in &mut out {
        if !p.whole {
            let total = store
                .tree(Tree::Timeline)
                .scan_prefix(index::timeline_prefix(p.conv.id))
                .count();
            p.whole = total == p.entries.len();
        }
    }
    Ok(out)
}

fn aliases_of(store: &Store, contact: Id) -> Result<Vec<sled::IVec>, StoreError> {
    let mut out = Vec::new();
    for kv in store.tree(Tree::Index).scan_prefix(b"a") {
        let (k, v) = kv?;
        if be_u64(&v) == contact {
            out.push(k);
        }
    }
    Ok(out)
}

fn target_of(contact: &Contact, plans: &[ConvPlan]) -> Target {
    Target {
        contact: contact.id,
        name: contact.name.clone(),
        messages: plans
            .iter()
            .flat_map(|p| p.entries.iter().map(|e| e.1))
            .collect(),
        conversations: plans
            .iter()
            .filter(|p| p.whole)
            .map(|p| p.conv.id)
            .collect(),
    }
}

fn days_of(plans: &[ConvPlan], zone: Zone) -> HashMap<i64, u64> {
    let mut days = HashMap::new();
    for p in plans {
        for e in &p.entries {
            *days.entry(zone.local_day(e.3)).or_default() += 1;
        }
    }
    days
}

/// What forgetting `contact` would remove.
pub fn plan(store: &Store, contact: &Contact, zone: Zone) -> anyhow::Result<ForgetReport> {
    let plans = conv_plans(store, contact.id)?;
    let target = target_of(contact, &plans);
    let mut removed = BTreeMap::new();
    removed.insert("messages".into(), target.messages.len() as u64);
    removed.insert("conversations".into(), target.conversations.len() as u64);
    removed.insert(
        "aliases".into(),
        aliases_of(store, contact.id)?.len() as u64,
    );
    removed.insert("activity_days".into(), days_of(&plans, zone).len() as u64);
    removed.insert("contacts".into(), 1);
    let mut report = ForgetReport {
        contact: contact.name.clone(),
        id: format!("{:016x}", contact.id),
        dry_run: true,
        removed,
        conversations_changed: plans.iter().filter(|p| !p.whole).count() as u64,
        named: BTreeMap::new(),
        tombstones: identities_of(store, contact, &target)?.len() as u64,
    };
    for c in registry().lock().expect("cascade registry").iter() {
        report.add(c.plan(store, &target)?);
    }
    Ok(report)
}

/// Forget `contact` everywhere. `window_gap_ms` and `zone` are ingest's, so
/// windows and the style profile are rebuilt as ingest would.
pub fn apply(
    store: &Store,
    contact: &Contact,
    zone: Zone,
    window_gap_ms: i64,
    ctx: &crate::jobs::JobCtx,
) -> anyhow::Result<ForgetReport> {
    if contact.me {
        anyhow::bail!(
            "{} is you; twin cannot forget its own person (start a new home with --home instead)",
            contact.name
        );
    }
    let plans = conv_plans(store, contact.id)?;
    let target = target_of(contact, &plans);
    // Tombstones first: an import racing this forget, or a forget cut short,
    // never lets them back in.
    let identities = identities_of(store, contact, &target)?;
    let tombstones = super::tombstone::bury(store, &identities)?;
    let mut removed: BTreeMap<String, u64> = BTreeMap::new();
    let me = crate::ingest::identity::me_id();
    let mut my_removed = 0u64;
    for p in &plans {
        let days = days_of(std::slice::from_ref(p), zone);
        let windows: Vec<sled::IVec> = store
            .tree(Tree::Windows)
            .scan_prefix(Key::new().u64(p.conv.id))
            .map(|kv| kv.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        let mut kept = p.conv.clone();
        kept.participants.retain(|x| *x != contact.id);
        kept.messages = kept.messages.saturating_sub(p.entries.len() as u64);
        kept.windows_stale = true;
        let n = store.write(|tx| {
            let mut n = 0u64;
            for (tk, mk, _, _) in &p.entries {
                if tx.remove(Tree::Messages, mk)? {
                    n += 1;
                }
                tx.remove(Tree::Timeline, tk)?;
            }
            for (&day, &k) in &days {
                let key = index::day(day);
                let old = tx
                    .get_raw(Tree::Index, &key)?
                    .map(|v| be_u64(&v))
                    .unwrap_or(0);
                if old <= k {
                    tx.remove(Tree::Index, &key)?;
                } else {
                    tx.put_raw(Tree::Index, &key, (old - k).to_be_bytes().to_vec())?;
                }
            }
            if p.whole {
                for w in &windows {
                    tx.remove(Tree::Windows, w)?;
                }
                tx.remove(Tree::Conversations, Conversation::key(p.conv.id))?;
            } else {
                tx.put(Conversation::key(kept.id), &kept)?;
            }
            Ok::<_, TxError>(n)
        })?;
        my_removed += p.entries.iter().filter(|e| e.2 == me).count() as u64;
        *removed.entry("messages".into()).or_default() += n;
        *removed.entry("conversations".into()).or_default() += p.whole as u64;
        *removed.entry("activity_days".into()).or_default() += days.len() as u64;
    }
    // Removed messages are dead records in the messages log until it is
    // rewritten: rewrite it now, so their text leaves the disk.
    store.compact_messages()?;
    let aliases = aliases_of(store, contact.id)?;
    store.write(|tx| {
        for k in &aliases {
            tx.remove(Tree::Index, k)?;
        }
        tx.remove(Tree::Contacts, Contact::key(contact.id))?;
        if my_removed > 0
            && let Some(mut mine) = tx.get::<Contact>(Contact::key(me))?
        {
            mine.messages = mine.messages.saturating_sub(my_removed);
            tx.put(Contact::key(me), &mine)?;
        }
        Ok::<_, TxError>(())
    })?;
    removed.insert("aliases".into(), aliases.len() as u64);
    removed.insert("contacts".into(), 1);
    crate::ingest::windows::rebuild_stale(store, window_gap_ms, ctx)?;
    if crate::ingest::profile::Profile::load(store)?.is_some() {
        crate::ingest::profile::rebuild(store, zone)?;
    }
    let mut report = ForgetReport {
        contact: contact.name.clone(),
        id: format!("{:016x}", contact.id),
        dry_run: false,
        removed,
        conversations_changed: plans.iter().filter(|p| !p.whole).count() as u64,
        named: BTreeMap::new(),
        tombstones,
    };
    for c in registry().lock().expect("cascade registry").iter() {
        report.add(c.apply(store, &target)?);
    }
    Ok(report)
}

/// Every identity later imports could match them by: their aliases (phone,
/// e-mail, platform ids, names as identity wrote them), their names and
/// handles, and the conversations that were only with them.
fn identities_of(store: &Store, contact: &Contact, target: &Target) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for k in aliases_of(store, contact.id)? {
        // `a` + identity + NUL (Key::str).
        if k.len() >= 2 {
            out.push(String::from_utf8_lossy(&k[1..k.len() - 1]).into_owned());
        }
    }
    for (n, _) in &contact.names {
        let n = crate::ingest::identity::normalize_name(n);
        if !n.is_empty() {
            out.push(format!("name:{n}"));
        }
    }
    out.extend(contact.handles.iter().cloned());
    out.extend(
        target
            .conversations
            .iter()
            .map(|c| super::tombstone::conversation_identity(*c)),
    );
    out.sort();
    out.dedup();
    Ok(out)
}

/// Message count check used by tests and `plan`: how many stored messages `contact` wrote.
pub fn messages_by(store: &Store, contact: Id) -> Result<u64, StoreError> {
    let mut n = 0;
    for r in store.scan::<Message>([]) {
        if r?.1.author == contact {
            n += 1;
        }
    }
    Ok(n)
}
