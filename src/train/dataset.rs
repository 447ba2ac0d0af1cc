//! Training sets cut from the store's conversation windows, where the twin
//! speaks as "me" (the assistant) and everyone else as the user.
//!
//! Strategies (after Astrabot and Second-Me, `../shared/seeds/`):
//! - conversational: a whole window, multi-turn, cut to its last turns to fit;
//! - adaptive: someone's turn, then my reply;
//! - burst: someone's turn, then my several messages in a row, kept as the
//!   separate messages I sent (one assistant turn each);
//! - self_qa: questions about me answered from my facts ([`self_qa`] is the hook
//!   memory fills; it yields nothing until facts exist).
//!
//! Then: PII scrubbed (other people's names too), duplicates removed, a
//! train/validation split by conversation, rendered with the model's own chat
//! template and tokenized by the same GGUF through llama.cpp, length-filtered,
//! and a loss mask on my turns' tokens and their end-of-turn token only. The set
//! is saved as JSON under its content hash, and recorded in the `datasets` tree.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::trainer::Example;
use crate::ingest::identity::me_id;
use crate::ingest::records::{Contact, Id, Message as Stored, Window};
use crate::jobs::{JobCtx, Level};
use crate::llm::direct::Direct;
use crate::llm::{Message, Role};
use crate::pii::Scrubber;
use crate::store::{Key, Record, Store, Tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Conversational,
    Adaptive,
    Burst,
    SelfQa,
}

impl Strategy {
    pub fn parse(s: &str) -> Result<Strategy, String> {
        match s {
            "conversational" => Ok(Strategy::Conversational),
            "adaptive" => Ok(Strategy::Adaptive),
            "burst" => Ok(Strategy::Burst),
            "self_qa" => Ok(Strategy::SelfQa),
            other => Err(format!(
                "unknown training strategy `{other}` in train.strategies; use conversational, adaptive, burst or self_qa"
            )),
        }
    }
}

/// How a set is built.
#[derive(Debug, Clone)]
pub struct Options {
    pub strategies: Vec<Strategy>,
    /// Longest example in tokens.
    pub max_tokens: usize,
    /// Share of conversations held out.
    pub validation: f64,
    /// The system prompt chat uses, so training sees what serving will.
    pub system_prompt: String,
    pub seed: u64,
    /// `privacy.never_train` from config; the store's own list is added to it
    /// ([`crate::privacy::never_train`]).
    pub never_train: Vec<String>,
}

/// One example before tokenizing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub conversation: u64,
    pub strategy: Strategy,
    pub messages: Vec<Message>,
}

/// What a build produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub windows: u64,
    pub samples: BTreeMap<String, u64>,
    pub duplicates: u64,
    pub too_long: u64,
    pub train_examples: u64,
    pub val_examples: u64,
    pub train_conversations: u64,
    pub val_conversations: u64,
    pub tokens: u64,
    /// Tokens the loss is taken on (mine and end-of-turn).
    pub learned_tokens: u64,
    /// PII values replaced by placeholders.
    pub scrubbed: u64,
    pub self_qa_note: Option<String>,
    /// Windows left out because a never-train contact wrote in them.
    #[serde(default)]
    pub never_train_windows: u64,
}

/// A built set, as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    /// Hex content hash of the tokenized examples.
    pub hash: String,
    /// The base model whose tokenizer and template made it.
    pub model: PathBuf,
    pub stats: Stats,
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    /// A few rendered examples for people to look at (scrubbed).
    pub preview: Vec<String>,
}

/// The `datasets` tree's record. Key: the hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub hash: String,
    pub path: PathBuf,
    pub model: PathBuf,
    pub strategies: Vec<Strategy>,
    pub stats: Stats,
    pub created_ms: i64,
}

impl Record for DatasetRecord {
    const TREE: Tree = Tree::Datasets;
}

/// Every window turned into samples by `strategies` (leaving out windows of
/// the store's never-train list).
pub fn collect(
    store: &Store,
    strategies: &[Strategy],
    ctx: &JobCtx,
) -> anyhow::Result<(Vec<Sample>, u64)> {
    let (never, _) = crate::privacy::never_train::ids(store, &[])?;
    let c = collect_with(store, strategies, &never, ctx)?;
    Ok((c.samples, c.windows))
}

/// What [`collect_with`] found.
#[derive(Debug, Default)]
pub struct Collected {
    pub samples: Vec<Sample>,
    pub windows: u64,
    /// Windows left out because a never-train contact wrote in them.
    pub never_train_windows: u64,
    /// Keys of the messages the samples were cut from (the set's provenance:
    /// forgetting one of them makes adapters trained on the set stale).
    pub sources: HashSet<[u8; 16]>,
}

/// [`collect`] leaving out every window in which a contact of `never` wrote
/// anything: their words, my replies in that session and the others' turns in it
/// (see [`crate::privacy::never_train`]).
pub fn collect_with(
    store: &Store,
    strategies: &[Strategy],
    never: &HashSet<Id>,
    ctx: &JobCtx,
) -> anyhow::Result<Collected> {
    let me = me_id();
    let mut out = Collected::default();
    let total = store.count(Tree::Windows)?;
    // Messages behind a memory the user forgot never train the twin.
    let forgotten = crate::memory::Memories::forgotten_messages(store);
    for kv in store.scan::<Window>([]) {
        ctx.check_cancelled()?;
        let (_, w) = kv?;
        out.windows += 1;
        ctx.progress(out.windows, Some(total), "windows");
        if !w.authors.contains(&me) || w.authors.iter().all(|a| *a == me) {
            continue;
        }
        if w.authors
            .iter()
            .any(|a| !crate::privacy::may_train_on(*a, never))
        {
            out.never_train_windows += 1;
            continue;
        }
        let mut msgs: Vec<(bool, String)> = Vec::new();
        let mut keys = Vec::new();
        for (key, author) in w.messages.iter().zip(&w.authors) {
            if forgotten.contains(key) {
                continue;
            }
            let Some(m) = store.get::<Stored>(key)? else {
                continue;
            };
            let text = m.text.trim();
            if !text.is_empty() {
                msgs.push((*author == me, text.to_string()));
                keys.push(*key);
            }
        }
        let samples = from_window(w.conversation, &msgs, strategies);
        if !samples.is_empty() {
            out.sources.extend(keys);
        }
        out.samples.extend(samples);
    }
    Ok(out)
}

/// Samples from one window's messages (`(mine, text)` in time order).
pub fn from_window(
    conversation: u64,
    msgs: &[(bool, String)],
    strategies: &[Strategy],
) -> Vec<Sample> {
    // Runs of one side: (mine, texts).
    let mut runs: Vec<(bool, Vec<&str>)> = Vec::new();
    for (mine, text) in msgs {
        match runs.last_mut() {
            Some((m, texts)) if m == mine => texts.push(text),
            _ => runs.push((*mine, vec![text])),
        }
    }
    let turn = |mine: bool, texts: &[&str]| Message {
        role: if mine { Role::Assistant } else { Role::User },
        content: texts.join("\n"),
    };
    let mut out = Vec::new();
    let sample = |strategy, messages| Sample {
        conversation,
        strategy,
        messages,
    };
    if strategies.contains(&Strategy::Conversational) {
        // Chat templates want the user first: drop my opening run.
        let start = runs
            .iter()
            .position(|(mine, _)| !mine)
            .unwrap_or(runs.len());
        let messages: Vec<Message> = runs[start..].iter().map(|(m, t)| turn(*m, t)).collect();
        if messages.len() >= 2 {
            out.push(sample(Strategy::Conversational, messages));
        }
    }
    for pair in runs.windows(2) {
        let [(false, theirs), (true, mine)] = pair else {
            continue;
        };
        if strategies.contains(&Strategy::Adaptive) {
            out.push(sample(
                Strategy::Adaptive,
                vec![turn(false, theirs), turn(true, mine)],
            ));
        }
        if strategies.contains(&Strategy::Burst) && mine.len() >= 2 {
            let mut messages = vec![turn(false, theirs)];
            messages.extend(mine.iter().map(|t| turn(true, &[t])));
            out.push(sample(Strategy::Burst, messages));
        }
    }
    out
}

/// Self-QA: questions about me answered from my facts and biography
/// ([`super::selfqa`]), as `(question, answer)` pairs; none, with a note saying
/// why, until memory holds facts about me.
pub fn self_qa(store: &Store) -> (Vec<(String, String)>, Option<String>) {
    let known = match super::selfqa::Known::load(store) {
        Ok(k) => k,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("self_qa: cannot read memory ({e:#})")),
            );
        }
    };
    let pairs = super::selfqa::pairs(&known);
    if pairs.is_empty() {
        return (
            Vec::new(),
            Some(
                "self_qa: memory holds no facts about you yet (`twin memory extract` finds them), so no self-QA examples".into(),
            ),
        );
    }
    let note = format!(
        "self_qa: {} questions about you from {} facts and preferences",
        pairs.len(),
        known.facts.len()
    );
    (
        pairs.into_iter().map(|p| (p.question, p.answer)).collect(),
        Some(note),
    )
}

/// Render and tokenize `sample`: the mask covers my turns' content and their
/// end-of-turn token, nothing of the template around them.
pub fn tokenize(tok: &Direct, system: &str, sample: &Sample) -> anyhow::Result<Example> {
    let mut messages = Vec::new();
    if !system.trim().is_empty() {
        messages.push(Message::system(system));
    }
    messages.extend(sample.messages.iter().cloned());
    let mut tokens = Vec::new();
    let mut mask = Vec::new();
    let mut done = String::new();
    let mut push = |text: &str, learned: bool, first: bool| {
        let ids = tok.tokenize(text, first && tok.adds_bos());
        let mut in_turn = learned;
        for id in ids {
            tokens.push(id);
            mask.push(in_turn);
            // After my end-of-turn token the rest (a newline) is template.
            if in_turn && tok.is_end_of_turn(id) {
                in_turn = false;
            }
        }
    };
    for i in 0..messages.len() {
        if messages[i].role != Role::Assistant {
            continue;
        }
        // The prompt up to my turn's header, then my turn through its end.
        let head = tok.render(&messages[..i], true)?;
        let through = tok.render(&messages[..=i], false)?;
        let (Some(prompt), Some(reply)) = (head.strip_prefix(&done), through.strip_prefix(&head))
        else {
            anyhow::bail!(
                "the chat template does not render a conversation as a sequence of its turns; choose another with chat.template"
            );
        };
        push(prompt, false, done.is_empty());
        push(reply, true, false);
        done = through;
    }
    Ok(Example {
        tokens,
        mask,
        conversation: sample.conversation,
    })
}

/// Build the training set from the store with `model`'s tokenizer, save it under
/// `dir`, record it, and return it.
pub fn build(
    store: &Store,
    model: &Path,
    dir: &Path,
    opts: &Options,
    ctx: &JobCtx,
) -> anyhow::Result<Dataset> {
    let tok = Direct::open(model, true, 1)?;
    let (never, unknown) = crate::privacy::never_train::ids(store, &opts.never_train)?;
    for u in &unknown {
        ctx.log(
            Level::Warn,
            format!("privacy.never_train names `{u}`, which matches no contact; `twin contacts` lists them"),
        );
    }
    let collected = collect_with(store, &opts.strategies, &never, ctx)?;
    let mut samples = collected.samples;
    let mut stats = Stats {
        windows: collected.windows,
        never_train_windows: collected.never_train_windows,
        ..Stats::default()
    };
    if collected.never_train_windows > 0 {
        ctx.log(
            Level::Info,
            format!(
                "{} conversation windows left out: a contact you never train on wrote in them",
                collected.never_train_windows
            ),
        );
    }
    if opts.strategies.contains(&Strategy::SelfQa) {
        let (pairs, note) = self_qa(store);
        if let Some(n) = &note {
            ctx.log(Level::Info, n.clone());
        }
        stats.self_qa_note = note;
        samples.extend(pairs.into_iter().map(|(q, a)| Sample {
            conversation: 0,
            strategy: Strategy::SelfQa,
            messages: vec![Message::user(q), Message::assistant(a)],
        }));
    }
    // Other people's names are PII too; mine stays (the twin is me).
    let names: Vec<String> = store
        .scan::<Contact>([])
        .filter_map(Result::ok)
        .filter(|(_, c)| !c.me)
        .flat_map(|(_, c)| c.names.into_iter().map(|(n, _)| n))
        .collect();
    let mut scrubber = Scrubber::new().with_names(names);
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for mut s in samples {
        for m in &mut s.messages {
            m.content = scrubber.scrub(&m.content);
        }
        let mut h = Xxh3::new();
        for m in &s.messages {
            h.update(m.role.as_str().as_bytes());
            h.update(&[0]);
            h.update(m.content.as_bytes());
            h.update(&[0]);
        }
        if !seen.insert(h.digest128()) {
            stats.duplicates += 1;
            continue;
        }
        *stats
            .samples
            .entry(format!("{:?}", s.strategy).to_lowercase())
            .or_default() += 1;
        kept.push(s);
    }
    stats.scrubbed = scrubber.mapping().len() as u64;

    let mut train = Vec::new();
    let mut val = Vec::new();
    let mut preview = Vec::new();
    let (mut train_convs, mut val_convs) = (HashSet::new(), HashSet::new());
    let total = kept.len() as u64;
    let conversations: HashSet<u64> = kept
        .iter()
        .filter(|s| s.strategy != Strategy::SelfQa)
        .map(|s| s.conversation)
        .collect();
    let held = held_out(&conversations, opts);
    for (i, s) in kept.iter().enumerate() {
        ctx.check_cancelled()?;
        ctx.progress(i as u64 + 1, Some(total), "examples");
        let Some(e) = fit(&tok, &opts.system_prompt, s, opts.max_tokens)? else {
            stats.too_long += 1;
            continue;
        };
        if preview.len() < 5 {
            preview.push(tok.render(&s.messages, false)?);
        }
        stats.tokens += e.tokens.len() as u64;
        stats.learned_tokens += e.learned() as u64;
        if held.contains(&s.conversation) {
            val_convs.insert(s.conversation);
            val.push(e);
        } else {
            train_convs.insert(s.conversation);
            train.push(e);
        }
    }
    stats.train_examples = train.len() as u64;
    stats.val_examples = val.len() as u64;
    stats.train_conversations = train_convs.len() as u64;
    stats.val_conversations = val_convs.len() as u64;
    let hash = content_hash(&train, &val);
    let set = Dataset {
        hash: hash.clone(),
        model: model.to_path_buf(),
        stats,
        train,
        val,
        preview,
    };
    // Sealed on an encrypted store: the set holds my words (tokens and a
    // rendered preview).
    let path = dir.join(format!("{hash}.json"));
    store.sealer().write(&path, &serde_json::to_vec(&set)?)?;
    let record = DatasetRecord {
        hash: hash.clone(),
        path,
        model: model.to_path_buf(),
        strategies: opts.strategies.clone(),
        stats: set.stats.clone(),
        created_ms: chrono::Utc::now().timestamp_millis(),
    };
    let sources = provenance_bytes(&collected.sources);
    store.write(|tx| {
        tx.put(Key::new().str(&record.hash), &record)?;
        tx.put_raw(Tree::Index, provenance_key(&record.hash), sources.clone())
    })?;
    Ok(set)
}

/// The `index` key under which a set's provenance is kept: the first 8 bytes
/// of every source message key, sorted (`rd` + hash; `index` prefixes `a`,
/// `t`, `d`, `k`, `m` belong to others).
pub fn provenance_key(hash: &str) -> Key {
    Key::new().bytes(PROVENANCE_PREFIX).str(hash)
}

pub const PROVENANCE_PREFIX: &[u8] = b"rd";

fn short(key: &[u8; 16]) -> u64 {
    u64::from_be_bytes(key[..8].try_into().expect("8 bytes"))
}

fn provenance_bytes(sources: &HashSet<[u8; 16]>) -> Vec<u8> {
    let mut v: Vec<u64> = sources.iter().map(short).collect();
    v.sort_unstable();
    v.dedup();
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// The training sets (by hash) cut from any of `messages`.
pub fn sets_using(
    store: &Store,
    messages: &HashSet<[u8; 16]>,
) -> Result<Vec<String>, crate::store::StoreError> {
    let wanted: HashSet<u64> = messages.iter().map(short).collect();
    let mut out = Vec::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    for kv in store.tree(Tree::Index).scan_prefix(PROVENANCE_PREFIX) {
        let (k, v) = kv?;
        let hash = String::from_utf8_lossy(&k[PROVENANCE_PREFIX.len()..])
            .trim_end_matches('\0')
            .to_string();
        if v.chunks_exact(8)
            .any(|c| wanted.contains(&u64::from_be_bytes(c.try_into().expect("8 bytes"))))
        {
            out.push(hash);
        }
    }
    Ok(out)
}

/// Tokenize `s`; a conversational sample that is too long loses its first turns
/// (keeping a user turn first) until it fits; others that do not fit are dropped.
fn fit(tok: &Direct, system: &str, s: &Sample, max: usize) -> anyhow::Result<Option<Example>> {
    let mut s = s.clone();
    let chars = |s: &Sample| s.messages.iter().map(|m| m.content.len()).sum::<usize>();
    // A token is rarely longer than 8 characters: turns beyond that budget cannot
    // fit. Then each try cuts in proportion to how far over it was, so a long
    // window takes a few tokenizations, not one per turn.
    let mut budget = max * 8;
    loop {
        if s.strategy == Strategy::Conversational {
            let mut n = chars(&s);
            while n > budget && s.messages.len() > 2 {
                n -= s.messages.remove(0).content.len();
            }
            while s.messages.len() > 2 && s.messages.first().is_some_and(|m| m.role != Role::User) {
                s.messages.remove(0);
            }
        }
        let e = tokenize(tok, system, &s)?;
        if e.tokens.len() <= max {
            return Ok((e.learned() > 0).then_some(e));
        }
        if s.strategy != Strategy::Conversational || s.messages.len() <= 2 {
            return Ok(None);
        }
        let n = chars(&s);
        budget = (n * max / e.tokens.len()).min(n.saturating_sub(1));
    }
}

/// The conversations held out for validation: `validation` of them (at least
/// one when there are two or more), chosen by a hash of each id and the seed,
/// so the split is stable and never cuts a conversation in two.
fn held_out(conversations: &HashSet<u64>, opts: &Options) -> HashSet<u64> {
    let mut ranked: Vec<(u64, u64)> = conversations
        .iter()
        .map(|&c| {
            let mut h = Xxh3::new();
            h.update(&c.to_le_bytes());
            h.update(&opts.seed.to_le_bytes());
            (h.digest(), c)
        })
        .collect();
    ranked.sort_unstable();
    let n = ranked.len();
    let mut k = (n as f64 * opts.validation).round() as usize;
    if opts.validation > 0.0 && n >= 2 {
        k = k.clamp(1, n - 1);
    }
    ranked.into_iter().take(k).map(|(_, c)| c).collect()
}

fn content_hash(train: &[Example], val: &[Example]) -> String {
    let mut h = Xxh3::new();
    for (tag, set) in [(b't', train), (b'v', val)] {
        for e in set {
            h.update(&[tag]);
            for (t, m) in e.tokens.iter().zip(&e.mask) {
                h.update(&t.to_le_bytes());
                h.update(&[u8::from(*m)]);
            }
        }
    }
    format!("{:016x}", h.digest())
}

/// Read a saved set.
pub fn load(path: &Path) -> anyhow::Result<Dataset> {
    let bytes = std::fs::read(path)
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(crate::store::crypt::open_file_any(&b)?))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read dataset {}: {e}; build it again with `twin dataset build`",
                path.display()
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "dataset {} is damaged ({e}); build it again with `twin dataset build`",
            path.display()
        )
    })
}

/// Delete the set `hash`: its file, its record and its provenance (forgetting
/// a person removes the sets cut from their messages).
pub fn delete(store: &Store, hash: &str) -> anyhow::Result<()> {
    let key = Key::new().str(hash);
    if let Some(r) = store.get::<DatasetRecord>(&key)?
        && let Err(e) = std::fs::remove_file(&r.path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        anyhow::bail!("cannot delete training set {}: {e}", r.path.display());
    }
    store.write(|tx| {
        tx.remove(Tree::Datasets, &key)?;
        tx.remove(Tree::Index, provenance_key(hash))
    })?;
    Ok(())
}

/// The most recently built set's record.
pub fn latest(store: &Store) -> anyhow::Result<Option<DatasetRecord>> {
    let mut best: Option<DatasetRecord> = None;
    for kv in store.scan::<DatasetRecord>([]) {
        let (_, r) = kv?;
        if best.as_ref().is_none_or(|b| r.created_ms > b.created_ms) {
            best = Some(r);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(v: &[(bool, &str)]) -> Vec<(bool, String)> {
        v.iter().map(|(m, t)| (*m, t.to_string())).collect()
    }

    #[test]
    fn a_window_yields_each_strategy() {
        let w = msgs(&[
            (true, "morning"),
            (false, "hey, coming tonight?"),
            (true, "yes!!"),
            (true, "at 8"),
            (false, "great"),
            (true, "see you"),
        ]);
        let all = [
            Strategy::Conversational,
            Strategy::Adaptive,
            Strategy::Burst,
        ];
        let s = from_window(9, &w, &all);
        let by = |k| s.iter().filter(|x| x.strategy == k).collect::<Vec<_>>();
        let conv = by(Strategy::Conversational);
        assert_eq!(conv.len(), 1);
        // Starts with the user; my opening "morning" is dropped.
        assert_eq!(conv[0].messages[0].content, "hey, coming tonight?");
        assert_eq!(conv[0].messages[1].content, "yes!!\nat 8");
        assert_eq!(conv[0].messages.len(), 4);
        let adaptive = by(Strategy::Adaptive);
        assert_eq!(adaptive.len(), 2);
        assert_eq!(adaptive[1].messages[1].content, "see you");
        let burst = by(Strategy::Burst);
        assert_eq!(burst.len(), 1);
        let contents: Vec<&str> = burst[0]
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(contents, ["hey, coming tonight?", "yes!!", "at 8"]);
        assert!(s.iter().all(|x| x.conversation == 9));
        // Only the chosen strategies.
        assert!(from_window(9, &w, &[Strategy::Burst]).len() == 1);
    }

    #[test]
    fn the_split_is_by_conversation_and_stable() {
        let mut opts = Options {
            strategies: vec![],
            max_tokens: 64,
            validation: 0.3,
            system_prompt: String::new(),
            seed: 1,
            never_train: Vec::new(),
        };
        let all: HashSet<u64> = (0..1000).collect();
        let held = held_out(&all, &opts);
        assert_eq!(held.len(), 300);
        assert_eq!(held, held_out(&all, &opts));
        // A few conversations still give a validation set, never all of them.
        opts.validation = 0.1;
        let few: HashSet<u64> = (0..3).collect();
        assert_eq!(held_out(&few, &opts).len(), 1);
        let one: HashSet<u64> = [7].into();
        assert!(held_out(&one, &opts).is_empty());
        opts.validation = 0.0;
        assert!(held_out(&few, &opts).is_empty());
    }
}
