//! The ingest job: find units in the paths, parse them with their importers
//! (on a second thread), and store messages, contacts, conversations and
//! documents in batches, each batch one [`Store::write_bulk`] (the new
//! messages and their timeline keys in bulk, the rest in a transaction that
//! also advances the source's cursor). Killing twin at any moment and running
//! the same command again gives exactly the store an uninterrupted run gives:
//! message keys are content hashes, an interrupted batch is rolled back when
//! the store opens, and the cursor only ever moves together with the data it
//! covers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use super::identity::{self, MeMatcher};
use super::records::{
    Contact, Conversation, Id, Message, SourceRecord, StoredDocument, hash128, id_of, index,
};
use super::{
    Document, Format, Importer, MessageKind, Problem, RawMessage, Sink, Source, Unit, When,
    open_source,
};
use crate::jobs::{JobCtx, Level};
use crate::store::{Bulk, FastHasher, Key, KeyHasher, Store, StoreError, Tree, TxError};

/// Messages per transaction.
const BATCH: usize = 4096;
/// At most this many problems are listed in the summary (all are counted).
const MAX_ERRORS_LISTED: usize = 200;

/// How local wall-clock times become UTC.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    /// This machine's zone.
    Local,
    Named(chrono_tz::Tz),
}

impl Zone {
    pub fn parse(s: &str) -> Result<Zone, String> {
        if s == "local" {
            return Ok(Zone::Local);
        }
        s.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!("unknown time zone `{s}`: use \"local\" or an IANA name such as \"Europe/Berlin\" or \"UTC\"")
        })
    }

    /// UTC for a local time; in a DST gap the time is moved forward, in an
    /// overlap the earlier instant wins.
    pub fn to_utc(self, t: NaiveDateTime) -> DateTime<Utc> {
        fn pick<Z: TimeZone>(z: &Z, t: NaiveDateTime) -> DateTime<Utc> {
            z.from_local_datetime(&t)
                .earliest()
                .or_else(|| {
                    z.from_local_datetime(&(t + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&t))
        }
        match self {
            Zone::Local => pick(&chrono::Local, t),
            Zone::Named(tz) => pick(&tz, t),
        }
    }

    /// The local wall-clock time of an instant.
    pub fn local(self, at_ms: i64) -> NaiveDateTime {
        let utc = Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default();
        match self {
            Zone::Local => utc.with_timezone(&chrono::Local).naive_local(),
            Zone::Named(tz) => utc.with_timezone(&tz).naive_local(),
        }
    }

    /// Days since 1970-01-01 of an instant's local date.
    pub fn local_day(self, at_ms: i64) -> i64 {
        self.local(at_ms)
            .date()
            .signed_duration_since(chrono::NaiveDate::default())
            .num_days()
    }
}

fn be_u64(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().unwrap_or([0; 8]))
}

impl Options {
    /// Options from the config plus the command's own `--format` and `--me`.
    pub fn from_config(
        paths: Vec<PathBuf>,
        format: Option<Format>,
        extra_me: Vec<String>,
        config: &crate::config::Config,
    ) -> Result<Options, String> {
        let zone =
            Zone::parse(&config.ingest.timezone).map_err(|e| format!("ingest.timezone: {e}"))?;
        let mut me = config.identity.me.clone();
        me.extend(extra_me);
        Ok(Options {
            paths,
            format,
            me,
            zone,
            window_gap_ms: config.ingest.window_gap_minutes * 60_000,
            voice: None,
        })
    }

    /// Transcribe voice notes while importing, unless `voice.ingest` is off.
    pub fn with_voice(
        mut self,
        config: &crate::config::Config,
        paths: &crate::paths::Paths,
    ) -> Options {
        let settings = crate::voice::Settings::from_config(config, paths);
        self.voice = settings.ingest.then_some(settings);
        self
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    /// `--format`; None means recognise each file.
    pub format: Option<Format>,
    /// Config `identity.me` plus `--me`.
    pub me: Vec<String>,
    pub zone: Zone,
    pub window_gap_ms: i64,
    /// Transcribe voice notes with these settings; None leaves them as attachments.
    pub voice: Option<crate::voice::Settings>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileSummary {
    pub path: PathBuf,
    pub format: Option<Format>,
    /// Messages by people in this file (this run's reading of it).
    pub messages: u64,
    pub authors: u64,
    pub new: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub documents: u64,
    /// "imported", "unchanged" (skipped: same export as last time), "failed".
    pub status: &'static str,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorEntry {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub messages: u64,
    pub new: u64,
    /// System lines (joins, calls, "created group"): read, not stored.
    pub service: u64,
    pub conversations: u64,
    pub contacts: u64,
    pub documents: u64,
    /// Malformed records and files that could not be read, and messages of
    /// forgotten contacts.
    pub skipped: u64,
    /// Messages skipped because they are of a contact you forgot (in `skipped` too).
    #[serde(skip_serializing_if = "is_zero")]
    pub forgotten: u64,
    pub errors: Vec<ErrorEntry>,
    pub files: Vec<FileSummary>,
    /// Files no importer recognised.
    pub unrecognized: Vec<PathBuf>,
    pub windows: u64,
    pub me: super::contacts::MeReport,
    /// Voice notes whose transcript was stored as their message's text.
    #[serde(skip_serializing_if = "is_zero")]
    pub transcribed: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for file in &self.files {
            let format = file.format.map(|f| f.name()).unwrap_or("?");
            write!(
                f,
                "{:<10} {:<9} {:>8} messages {:>8} new  {}",
                file.status,
                format,
                file.messages,
                file.new,
                file.path.display()
            )?;
            if file.documents > 0 {
                write!(f, " ({} documents)", file.documents)?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "\n{} messages ({} new) in {} conversations from {} contacts; {} documents; {} windows",
            self.messages,
            self.new,
            self.conversations,
            self.contacts,
            self.documents,
            self.windows
        )?;
        if self.transcribed > 0 {
            writeln!(f, "{} voice notes transcribed", self.transcribed)?;
        }
        if self.service > 0 {
            writeln!(
                f,
                "{} system lines (joins, calls, renames) not stored",
                self.service
            )?;
        }
        match (&self.me.name, self.me.how) {
            (Some(n), "proposed") => writeln!(
                f,
                "you are probably \"{n}\": confirm with `twin --batch ingest --me \"{n}\" ...` or identity.me in config"
            )?,
            (Some(n), how) => writeln!(f, "you: \"{n}\" ({how})")?,
            _ => {}
        }
        for p in &self.unrecognized {
            writeln!(f, "not recognised: {}", p.display())?;
        }
        if !self.errors.is_empty() {
            writeln!(f, "\n{} records skipped:", self.skipped)?;
            for e in &self.errors {
                match e.line {
                    Some(l) => writeln!(f, "  {}:{l}: {}", e.file.display(), e.reason)?,
                    None => writeln!(f, "  {}: {}", e.file.display(), e.reason)?,
                }
            }
        }
        Ok(())
    }
}

impl crate::jobs::Summary for Summary {}

/// Run an import with every importer. Errors in single records or units are
/// reported in the summary; only a store failure or cancellation fails the job.
pub fn run(store: &Store, opts: &Options, ctx: &JobCtx) -> anyhow::Result<Summary> {
    run_with(store, opts, ctx, &super::importers())
}

/// [`run`] with a given set of importers.
pub fn run_with(
    store: &Store,
    opts: &Options,
    ctx: &JobCtx,
    registry: &[Box<dyn Importer>],
) -> anyhow::Result<Summary> {
    for p in &opts.paths {
        if !p.exists() {
            anyhow::bail!(
                "{}: no such file or folder; check the path (nothing was imported)",
                p.display()
            );
        }
    }
    let importers: Vec<&dyn Importer> = match opts.format {
        Some(f) => registry
            .iter()
            .filter(|i| i.format() == f)
            .map(|b| b.as_ref())
            .collect(),
        None => registry.iter().map(|b| b.as_ref()).collect(),
    };
    if importers.is_empty() {
        anyhow::bail!(
            "no importer for that format; twin reads: {}",
            available(registry)
        );
    }

    let mut summary = Summary::default();
    // Claim units in every path first, so progress knows the total.
    let mut plans: Vec<(Box<dyn Source>, Vec<Unit>)> = Vec::new();
    let mut queue: std::collections::VecDeque<PathBuf> = opts.paths.iter().cloned().collect();
    while let Some(path) = queue.pop_front() {
        let path = &path;
        let src = match open_source(path) {
            Ok(s) => s,
            Err(e) => {
                summary.skipped += 1;
                summary.errors.push(ErrorEntry {
                    file: path.clone(),
                    line: None,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let mut pool: Vec<PathBuf> = src.files().to_vec();
        let mut units = Vec::new();
        for imp in &importers {
            let claimed = imp.claim(src.as_ref(), &pool, opts.format.is_some());
            let taken: HashSet<&PathBuf> = claimed.iter().flat_map(|u| u.files.iter()).collect();
            pool.retain(|f| !taken.contains(f));
            units.extend(claimed);
        }
        let single_file = src.files().len() == 1 && src.files()[0].as_os_str().is_empty();
        for f in pool.iter().filter(|f| single_file || !is_noise(f)) {
            let on_disk = src.root().join(f);
            if !single_file && is_zip(f) && on_disk.is_file() {
                // An export zip inside a folder is read like any other path.
                queue.push_back(on_disk);
            } else {
                summary.unrecognized.push(src.display(f));
            }
        }
        if units.is_empty() {
            let what = match opts.format {
                Some(f) => format!("it does not look like a {f} export"),
                None => format!("twin reads: {}", available(registry)),
            };
            summary.errors.push(ErrorEntry {
                file: path.clone(),
                line: None,
                reason: format!("no export found here; {what}"),
            });
            summary.skipped += 1;
        }
        plans.push((src, units));
    }

    let total: u64 = plans
        .iter()
        .flat_map(|(s, us)| us.iter().map(move |u| unit_bytes(s.as_ref(), u)))
        .sum();
    let progress = Arc::new(AtomicU64::new(0));
    let me = MeMatcher::new(&opts.me);
    // `--me` or identity.me may name an author an earlier import took for
    // someone else: make them me now, messages and all.
    let mut merged = false;
    for identity in me.identities() {
        let alias = store
            .tree(Tree::Index)
            .get(index::alias(identity))
            .map_err(|e| StoreError::Aborted(e.to_string()))?;
        if let Some(id) = alias.map(|v| be_u64(&v))
            && id != identity::me_id()
        {
            let r = super::contacts::merge(store, id, identity::me_id())?;
            ctx.log(
                Level::Info,
                format!("{identity} is you: moved {} messages", r.messages),
            );
            merged = true;
        }
    }
    let mut state = State::load(store)?;
    let mut touched_conversations = HashSet::new();
    let mut touched_contacts = HashSet::new();

    let mut voice_model = opts.voice.clone().map(super::voice_notes::Model::new);
    for (src, units) in &plans {
        let mut voice_notes = Vec::new();
        for unit in units {
            ctx.check_cancelled()?;
            let counted = Counting {
                inner: src.as_ref(),
                read: progress.clone(),
            };
            let importer = importers
                .iter()
                .find(|i| i.format() == unit.format)
                .expect("units come from these importers");
            let env = Env {
                store,
                opts,
                me: &me,
                ctx,
                progress: &progress,
                total,
            };
            let file = import_unit(&env, *importer, &counted, unit, &mut state, &mut summary)?;
            touched_conversations.extend(file.1);
            touched_contacts.extend(file.2);
            summary.files.push(file.0);
            voice_notes.extend(file.3);
        }
        if let Some(model) = voice_model.as_mut()
            && !voice_notes.is_empty()
        {
            ctx.log(
                Level::Info,
                format!("transcribing {} voice notes", voice_notes.len()),
            );
            let n = super::voice_notes::transcribe(
                store,
                src.as_ref(),
                voice_notes,
                model,
                ctx,
                &mut summary,
            )?;
            summary.transcribed += n;
        }
    }
    ctx.progress(total, Some(total), "bytes");
    // The messages index is saved on the other core while windows and the
    // profile are worked out (the parsing thread is done with it): a
    // million messages' index is a tenth of a second of writing.
    let saved = std::thread::scope(|scope| {
        let saver = (summary.new > 0).then(|| scope.spawn(|| store.save_messages_index()));
        let finish = finish_run(store, opts, ctx, merged, &mut summary);
        let saved = saver.map_or(Ok(()), |s| {
            s.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        finish.map(|()| saved)
    })?;
    if let Err(e) = saved {
        // Not fatal: the store saves it again on close, or rebuilds it.
        tracing::warn!("saving the messages index: {e}");
    }
    summary.conversations = touched_conversations.len() as u64;
    summary.contacts = touched_contacts.len() as u64;
    Ok(summary)
}

/// An import's last steps: windows of the conversations it changed, who is
/// me, and the style profile.
fn finish_run(
    store: &Store,
    opts: &Options,
    ctx: &JobCtx,
    merged: bool,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    summary.windows = super::windows::rebuild_stale(store, opts.window_gap_ms, ctx)?;
    summary.me = super::contacts::who_is_me(store)?;
    if summary.new > 0 || merged || super::profile::Profile::load(store)?.is_none() {
        ctx.log(Level::Info, "updating the style profile");
        super::profile::rebuild(store, opts.zone)?;
    }
    Ok(())
}

fn available(registry: &[Box<dyn Importer>]) -> String {
    let names: BTreeSet<&str> = registry.iter().map(|i| i.format().name()).collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// Files that ride along in exports or folders (media, app settings,
/// licences) and are not worth a "not recognised" line: only files that look
/// like they could have been an export are reported.
fn is_noise(p: &Path) -> bool {
    let hidden = p
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let exportish = matches!(
        ext.as_str(),
        "txt" | "json" | "csv" | "md" | "mbox" | "eml" | "html" | "xml" | "zip" | "pdf"
    );
    hidden || !exportish
}

fn is_zip(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn unit_bytes(src: &dyn Source, unit: &Unit) -> u64 {
    unit.files.iter().filter_map(|f| src.size(f)).sum()
}

/// Sizes of every file and the head of the first: a changed export changes it.
fn unit_fingerprint(src: &dyn Source, unit: &Unit) -> u64 {
    let mut bytes = Vec::new();
    for f in &unit.files {
        bytes.extend_from_slice(f.to_string_lossy().as_bytes());
        bytes.extend_from_slice(&src.size(f).unwrap_or(0).to_le_bytes());
    }
    if let Some(first) = unit.files.first()
        && let Ok(head) = src.head(first, 4096)
    {
        bytes.extend_from_slice(&head);
    }
    super::records::fingerprint(&bytes)
}

/// What is already in the store that a run needs to update incrementally.
struct State {
    aliases: HashMap<String, Id>,
    contacts: HashMap<Id, Contact>,
    conversations: HashMap<Id, Conversation>,
    /// Forgotten people and conversations: their messages are skipped.
    tombstones: crate::privacy::tombstone::Tombstones,
    /// Whether an author (format, name, handle) is forgotten, once per author.
    forgotten_authors: HashMap<(Format, String, Option<String>), bool>,
}

impl State {
    fn load(store: &Store) -> Result<State, StoreError> {
        // Aliases and contacts are small (people, not messages): load them once.
        let mut aliases = HashMap::new();
        for kv in store.tree(Tree::Index).scan_prefix(b"a") {
            let (k, v) = kv.map_err(|e| StoreError::Aborted(e.to_string()))?;
            let identity = String::from_utf8_lossy(&k[1..k.len().saturating_sub(1)]).into_owned();
            aliases.insert(
                identity,
                u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            );
        }
        let mut contacts = HashMap::new();
        for r in store.scan::<Contact>([]) {
            let (_, c) = r?;
            contacts.insert(c.id, c);
        }
        Ok(State {
            aliases,
            contacts,
            conversations: HashMap::new(),
            tombstones: crate::privacy::tombstone::Tombstones::load(store)?,
            forgotten_authors: HashMap::new(),
        })
    }

    /// Whether a message belongs to someone (or a conversation) the user forgot.
    fn is_forgotten(
        &mut self,
        format: Format,
        author: &super::Author,
        conversation: Id,
        ids: &[String],
        is_me: bool,
    ) -> bool {
        let t = &self.tombstones;
        if t.is_empty() {
            return false;
        }
        if t.contains(&crate::privacy::tombstone::conversation_identity(
            conversation,
        )) {
            return true;
        }
        let author = (format, author.name.clone(), author.handle.clone());
        if let Some(&known) = self.forgotten_authors.get(&author) {
            return known;
        }
        let forgotten = !is_me && t.any(ids);
        self.forgotten_authors.insert(author, forgotten);
        forgotten
    }

    /// The contact of an author, and whether that contact is me.
    fn resolve_author(&self, ids: &[String], is_me: bool) -> (Id, bool) {
        if is_me {
            return (identity::me_id(), true);
        }
        let found = ids.iter().find_map(|i| self.aliases.get(i).copied());
        let id = found.unwrap_or_else(|| {
            id_of(&[
                b"contact",
                ids.first().map(String::as_bytes).unwrap_or(b"?"),
            ])
        });
        (id, self.contacts.get(&id).is_some_and(|c| c.me))
    }

    /// Bring a stored conversation into the cache before updating it.
    fn load_conversation(&mut self, store: &Store, id: Id) -> Result<(), StoreError> {
        if !self.conversations.contains_key(&id)
            && let Some(c) = store.get::<Conversation>(Conversation::key(id))?
        {
            self.conversations.insert(id, c);
        }
        Ok(())
    }
}

/// A message ready to store. Its record, author set, is in one of the
/// chunk buffers the batch holds.
struct Pending {
    key: [u8; 16],
    /// Which of the batch's chunk buffers holds the record, and where.
    chunk: usize,
    rec: std::ops::Range<usize>,
    author: Id,
    /// The author's name as this message gives it.
    name: Arc<str>,
    at_ms: i64,
    conversation: Id,
    /// The local day of the message (days since 1970-01-01).
    day: i64,
    /// Identities of the author, for aliases of a new contact.
    identities: Arc<[String]>,
    me: bool,
    conv: Arc<ConvMeta>,
}

/// A conversation as the importer names it, shared by its messages.
struct ConvMeta {
    native: String,
    title: Option<String>,
    group: Option<bool>,
}

/// What every unit of one run shares.
struct Env<'a> {
    store: &'a Store,
    opts: &'a Options,
    me: &'a MeMatcher,
    ctx: &'a JobCtx,
    progress: &'a Arc<AtomicU64>,
    total: u64,
}

/// What importing one unit gives: its summary, the conversations and contacts
/// it touched, and its voice notes waiting to be transcribed.
type UnitDone = (
    FileSummary,
    HashSet<Id>,
    HashSet<Id>,
    Vec<super::voice_notes::Pending>,
);

/// Import one unit; returns its summary and the conversations and contacts it touched.
fn import_unit(
    env: &Env,
    importer: &dyn Importer,
    src: &dyn Source,
    unit: &Unit,
    state: &mut State,
    summary: &mut Summary,
) -> anyhow::Result<UnitDone> {
    let Env {
        store,
        opts,
        me,
        ctx,
        progress,
        total,
    } = *env;
    let label = src.display(&unit.label);
    let source_id = id_of(&[
        unit.format.name().as_bytes(),
        label.to_string_lossy().as_bytes(),
    ]);
    let fingerprint = unit_fingerprint(src, unit);
    let previous = store.get::<SourceRecord>(Key::new().u64(source_id))?;
    let mut file = FileSummary {
        path: label.clone(),
        format: Some(unit.format),
        status: "imported",
        ..Default::default()
    };
    let resume_from = match &previous {
        Some(p) if p.fingerprint == fingerprint && p.complete => {
            progress.fetch_add(unit_bytes(src, unit), Ordering::Relaxed);
            file.status = "unchanged";
            file.messages = p.messages;
            summary.messages += p.messages;
            return Ok((file, HashSet::new(), HashSet::new(), Vec::new()));
        }
        Some(p) if p.fingerprint == fingerprint => p.cursor,
        _ => 0,
    };
    ctx.log(
        Level::Info,
        format!("reading {} as {}", label.display(), unit.format),
    );
    let record = SourceRecord {
        id: source_id,
        format: unit.format,
        path: label.clone(),
        files: unit.files.len() as u64,
        bytes: unit_bytes(src, unit),
        fingerprint,
        cursor: resume_from,
        complete: false,
        messages: if resume_from > 0 {
            previous.as_ref().map(|p| p.messages).unwrap_or(0)
        } else {
            0
        },
        new: if resume_from > 0 {
            previous.as_ref().map(|p| p.new).unwrap_or(0)
        } else {
            0
        },
        imported_at_ms: Utc::now().timestamp_millis(),
    };
    let stop = AtomicBool::new(false);
    let mut sink = StoreSink {
        store,
        format: unit.format,
        source_id,
        state,
        ctx,
        progress,
        total,
        record,
        seen: 0,
        batch: Vec::with_capacity(BATCH),
        failed: None,
        stop: &stop,
        conversations: HashSet::new(),
        contacts: HashSet::new(),
        documents: 0,
        voice: Vec::new(),
        unit_file: unit.files.first().cloned().unwrap_or_default(),
        forgotten: 0,
        last_conversation: None,
        slots: HashMap::default(),
        held: Vec::new(),
    };
    // The importer parses on its own thread while this one stores what it
    // has read (two cores: parsing and sled's write path overlap).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(4);
    let mut reader = ParseSink {
        format: unit.format,
        source_id,
        label: label.clone(),
        voice: opts.voice.is_some(),
        zone: opts.zone,
        me,
        resume_from,
        seen: 0,
        occurrences: Default::default(),
        conversation: None,
        service: 0,
        people: 0,
        authors: HashSet::new(),
        known: HashMap::default(),
        next_slot: 0,
        problems: Vec::new(),
        chunk: Chunk::default(),
        tx: Some(tx),
        stop: &stop,
    };
    let (parsed, reader) = std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            let parsed = importer.parse(src, unit, &mut reader);
            reader.send_chunk();
            reader.tx = None;
            (parsed, reader)
        });
        for item in rx {
            sink.take(item);
        }
        parser
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    sink.seen = reader.seen;
    sink.flush();
    if let Some(e) = sink.failed.take() {
        return Err(e);
    }
    match parsed {
        Ok(()) => {
            sink.record.complete = true;
            let record = sink.record.clone();
            store.write(|tx| tx.put(Key::new().u64(source_id), &record))?;
        }
        Err(e) => {
            file.status = "failed";
            summary.skipped += 1;
            summary.errors.push(ErrorEntry {
                file: label.clone(),
                line: None,
                reason: e.reason(),
            });
        }
    }
    file.messages = reader.people;
    file.authors = reader.authors.len() as u64;
    file.new = sink.record.new;
    file.documents = sink.documents;
    summary.messages += reader.people;
    summary.new += sink.record.new;
    summary.service += reader.service;
    summary.documents += sink.documents;
    summary.skipped += reader.problems.len() as u64;
    if sink.forgotten > 0 {
        summary.skipped += sink.forgotten;
        summary.forgotten += sink.forgotten;
        summary.errors.push(ErrorEntry {
            file: label.clone(),
            line: None,
            reason: format!(
                "forgotten contact: {} messages skipped (`twin forget contact --undo NAME` lets them back)",
                sink.forgotten
            ),
        });
    }
    for p in reader.problems {
        if summary.errors.len() < MAX_ERRORS_LISTED {
            summary.errors.push(ErrorEntry {
                file: p.file,
                line: p.line,
                reason: p.reason,
            });
        }
    }
    Ok((
        file,
        std::mem::take(&mut sink.conversations),
        std::mem::take(&mut sink.contacts),
        std::mem::take(&mut sink.voice),
    ))
}

/// Messages per hand-over from the parsing thread.
const CHUNK: usize = 1024;

/// What the parsing thread hands on, in the order the importer gave it.
enum Item {
    Messages(Chunk),
    Document(Document),
}

/// Messages handed on together, their records already encoded: the storing
/// thread only sets each one's contact and copies it into the log.
#[derive(Default)]
struct Chunk {
    /// Set when the parsing thread forgot the authors it had numbered: no
    /// message from here on uses a slot defined before.
    reset: bool,
    /// Authors first met in this chunk, before the messages that use them.
    authors: Vec<NewAuthor>,
    messages: Vec<Parsed>,
    /// The messages' records (as [`crate::store::codec::encode`] writes
    /// them, author not yet set), back to back.
    records: Vec<u8>,
}

/// A message as the parsing thread leaves it: hashed and encoded, its
/// conversation and its author's slot known; the store side resolves the
/// author.
struct Parsed {
    /// Its place in the stream (people's messages and service lines).
    seq: u64,
    key: [u8; 16],
    at_ms: i64,
    conversation: Id,
    conv: Arc<ConvMeta>,
    /// The local day of `at_ms` (worked out here, off the storing thread).
    day: i64,
    /// The author as the parsing thread numbered them (see [`NewAuthor`]).
    author_slot: u32,
    /// Where its record is in the chunk's `records`.
    rec: std::ops::Range<usize>,
    /// Its audio attachment's name, when voice notes are transcribed.
    voice: Option<String>,
}

/// An author the parsing thread met for the first time, with what is worked
/// out once per author (not once per message): identities and whether they
/// are me. Its messages carry only the slot.
struct NewAuthor {
    slot: u32,
    author: super::Author,
    identities: Arc<[String]>,
    is_me: bool,
}

/// Authors remembered at most: an export has a few thousand; past this the
/// cache starts over rather than grow with a malformed file's every line.
const MAX_CACHED_AUTHORS: usize = 100_000;

/// The importer's sink, on the parsing thread: everything about a message
/// that needs no store (time, content hash, occurrence, counts), handed on in
/// chunks.
struct ParseSink<'a> {
    format: Format,
    source_id: Id,
    /// The unit, for problems.
    label: PathBuf,
    /// Whether voice notes are wanted (their attachment names are picked out).
    voice: bool,
    zone: Zone,
    me: &'a MeMatcher,
    /// Messages of the stream already stored by an interrupted run.
    resume_from: u64,
    /// Messages of the stream seen so far (people's and service lines).
    seen: u64,
    /// How often each (conversation, author, time, text) occurred so far, so two
    /// identical "ok"s in the same minute stay two messages.
    occurrences: super::occurrence::Occurrences,
    /// The last conversation: its id, and as the export names it.
    conversation: Option<(Id, Arc<ConvMeta>)>,
    service: u64,
    people: u64,
    authors: HashSet<String>,
    /// The slot of each author met, by author as the export wrote them.
    known: HashMap<super::Author, u32, BuildHasherDefault<FastHasher>>,
    /// The next [`NewAuthor::slot`].
    next_slot: u32,
    problems: Vec<Problem>,
    chunk: Chunk,
    tx: Option<std::sync::mpsc::SyncSender<Item>>,
    /// Set by the store side when it failed or was cancelled: stop handing on.
    stop: &'a AtomicBool,
}

impl ParseSink<'_> {
    fn send(&mut self, item: Item) {
        if let Some(tx) = &self.tx
            && tx.send(item).is_err()
        {
            self.tx = None;
        }
    }

    fn send_chunk(&mut self) {
        let c = &self.chunk;
        if !c.messages.is_empty() || !c.authors.is_empty() || c.reset {
            let chunk = std::mem::take(&mut self.chunk);
            self.send(Item::Messages(chunk));
        }
    }
}

impl Sink for ParseSink<'_> {
    fn message(&mut self, m: RawMessage) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        let at = match m.at {
            When::Utc(t) => t,
            When::Local(t) => self.zone.to_utc(t),
        };
        let at_ms = at.timestamp_millis();
        let content = hash128(&[
            self.format.name().as_bytes(),
            m.conversation.as_bytes(),
            m.author.name.as_bytes(),
            m.author.handle.as_deref().unwrap_or("").as_bytes(),
            &at_ms.to_be_bytes(),
            m.text.as_bytes(),
            &[m.kind as u8],
        ]);
        let (conversation, conv) = match &self.conversation {
            Some((id, c))
                if c.native == m.conversation
                    && c.title == m.conversation_title
                    && c.group == m.group =>
            {
                (*id, c.clone())
            }
            last => {
                let id = match last {
                    Some((id, c)) if c.native == m.conversation => *id,
                    _ => id_of(&[
                        b"conversation",
                        self.format.name().as_bytes(),
                        m.conversation.as_bytes(),
                    ]),
                };
                let meta = ConvMeta {
                    native: m.conversation,
                    title: m.conversation_title,
                    group: m.group,
                };
                let meta = Arc::new(meta);
                self.conversation = Some((id, meta.clone()));
                (id, meta)
            }
        };
        let occurrence = self.occurrences.count(conversation, at_ms, content);
        self.seen += 1;
        if m.kind == MessageKind::Service {
            self.service += 1;
            return;
        }
        self.people += 1;
        let author_slot = match self.known.get(&m.author) {
            Some(&slot) => slot,
            None => {
                if self.known.len() >= MAX_CACHED_AUTHORS {
                    // Hand on what uses the old slots, then start over.
                    self.known.clear();
                    self.send_chunk();
                    self.chunk.reset = true;
                }
                if self.authors.len() < 100_000 {
                    self.authors
                        .insert(identity::normalize_name(&m.author.name));
                }
                let identities: Arc<[String]> = identity::identities(self.format, &m.author).into();
                let is_me = self.me.is_me(&m.author, &identities);
                let slot = self.next_slot;
                self.next_slot = self.next_slot.wrapping_add(1);
                self.known.insert(m.author.clone(), slot);
                self.chunk.authors.push(NewAuthor {
                    slot,
                    author: m.author.clone(),
                    identities,
                    is_me,
                });
                slot
            }
        };
        if self.seen <= self.resume_from {
            return;
        }
        let key = hash128(&[&content, &occurrence.to_be_bytes()]);
        let voice = if self.voice {
            m.attachments
                .iter()
                .find_map(|a| super::voice_notes::wants(&a.kind, a.name.as_deref()))
        } else {
            None
        };
        let line = m.line;
        let msg = Message {
            source: self.source_id,
            conversation,
            // Set on the storing side, which knows the contacts.
            author: 0,
            author_name: m.author.name,
            at_ms,
            text: m.text,
            attachments: m.attachments,
            native_id: m.id,
            reply_to: m.reply_to,
            reactions: m.reactions,
            edited: m.edited,
            transcribed: None,
        };
        let records = &mut self.chunk.records;
        let start = records.len();
        if let Err(e) = crate::store::codec::encode_into(&msg, records) {
            records.truncate(start);
            self.problems.push(Problem {
                file: self.label.clone(),
                line,
                reason: format!("this message could not be stored ({e}); skipped"),
            });
            return;
        }
        let rec = start..records.len();
        self.chunk.messages.push(Parsed {
            seq: self.seen,
            key,
            at_ms,
            conversation,
            conv,
            day: self.zone.local_day(at_ms),
            author_slot,
            rec,
            voice,
        });
        if self.chunk.messages.len() >= CHUNK {
            self.send_chunk();
        }
    }

    fn document(&mut self, d: Document) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        self.send_chunk();
        self.send(Item::Document(d));
    }

    fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }
}

/// The store side of an import: resolves authors and stores messages in
/// batches, each batch with the source's cursor.
struct StoreSink<'a> {
    store: &'a Store,
    format: Format,
    source_id: Id,
    state: &'a mut State,
    ctx: &'a JobCtx,
    progress: &'a Arc<AtomicU64>,
    total: u64,
    record: SourceRecord,
    /// The stream position of the last message taken (the cursor of a batch).
    seen: u64,
    batch: Vec<Pending>,
    failed: Option<anyhow::Error>,
    stop: &'a AtomicBool,
    conversations: HashSet<Id>,
    contacts: HashSet<Id>,
    documents: u64,
    /// Messages with audio attachments, for [`super::voice_notes`].
    voice: Vec<super::voice_notes::Pending>,
    /// The unit's first file (attachment names are relative to its folder).
    unit_file: PathBuf,
    /// Messages of forgotten contacts or conversations, skipped.
    forgotten: u64,
    /// The conversation of the last message taken (its state is loaded).
    last_conversation: Option<Id>,
    /// The authors the parsing thread numbered, by slot.
    slots: HashMap<u32, Slot, BuildHasherDefault<KeyHasher>>,
    /// The chunk buffers the batch's records are in (the last one is the
    /// chunk being taken).
    held: Vec<Vec<u8>>,
}

/// An author slot as the storing side knows it.
struct Slot {
    author: super::Author,
    name: Arc<str>,
    identities: Arc<[String]>,
    is_me: bool,
    /// Its contact and whether that is me, once resolved. An author's
    /// contact does not change during a unit (aliases are only ever added,
    /// for identities that had none), so once is enough.
    resolved: Option<(Id, bool)>,
}

impl StoreSink<'_> {
    fn fail(&mut self, e: anyhow::Error) {
        self.failed = Some(e);
        self.stop.store(true, Ordering::Relaxed);
    }

    fn take(&mut self, item: Item) {
        if self.failed.is_some() {
            return;
        }
        match item {
            Item::Messages(chunk) => {
                if chunk.reset {
                    self.slots.clear();
                }
                for a in chunk.authors {
                    let slot = Slot {
                        name: a.author.name.as_str().into(),
                        author: a.author,
                        identities: a.identities,
                        is_me: a.is_me,
                        resolved: None,
                    };
                    self.slots.insert(a.slot, slot);
                }
                self.held.push(chunk.records);
                for p in chunk.messages {
                    self.message(p);
                    if self.failed.is_some() {
                        return;
                    }
                }
            }
            Item::Document(d) => self.document(d),
        }
    }

    fn message(&mut self, p: Parsed) {
        self.seen = p.seq;
        let Some(slot) = self.slots.get_mut(&p.author_slot) else {
            self.fail(anyhow::anyhow!(
                "internal error: message {} came before its author",
                p.seq
            ));
            return;
        };
        if self.state.is_forgotten(
            self.format,
            &slot.author,
            p.conversation,
            &slot.identities,
            slot.is_me,
        ) {
            self.forgotten += 1;
            return;
        }
        if self.last_conversation != Some(p.conversation) {
            self.last_conversation = Some(p.conversation);
            if self.conversations.insert(p.conversation)
                && let Err(e) = self.state.load_conversation(self.store, p.conversation)
            {
                self.fail(e.into());
                return;
            }
        }
        let state = &*self.state;
        let (author, me) = *slot
            .resolved
            .get_or_insert_with(|| state.resolve_author(&slot.identities, slot.is_me));
        if let Some(name) = p.voice {
            self.voice.push(super::voice_notes::Pending {
                key: p.key,
                name,
                unit_file: self.unit_file.clone(),
            });
        }
        let chunk = self.held.len() - 1;
        super::records::set_record_author(&mut self.held[chunk][p.rec.clone()], author);
        self.batch.push(Pending {
            key: p.key,
            chunk,
            rec: p.rec,
            author,
            name: slot.name.clone(),
            at_ms: p.at_ms,
            conversation: p.conversation,
            day: p.day,
            identities: slot.identities.clone(),
            me,
            conv: p.conv,
        });
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn document(&mut self, d: Document) {
        let id = id_of(&[
            b"document",
            &self.source_id.to_be_bytes(),
            d.path.to_string_lossy().as_bytes(),
        ]);
        let content_hash = super::records::fingerprint(d.text.as_bytes());
        let doc = StoredDocument {
            source: self.source_id,
            doc: d,
            content_hash,
        };
        if let Err(e) = self.store.write(|tx| tx.put(Key::new().u64(id), &doc)) {
            self.fail(e.into());
        }
        self.documents += 1;
    }

    /// Drop the chunk buffers of stored messages; the chunk being taken
    /// stays for its remaining ones.
    fn release_chunks(&mut self) {
        let done = self.held.len().saturating_sub(1);
        self.held.drain(..done);
    }

    fn flush(&mut self) {
        if self.batch.is_empty() || self.failed.is_some() {
            self.batch.clear();
            self.release_chunks();
            return;
        }
        if self.ctx.is_cancelled() {
            self.fail(crate::jobs::Cancelled.into());
            self.batch.clear();
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let seen = self.seen;
        let result = store_batch(
            self.store,
            &batch,
            &self.held,
            &self.record,
            seen,
            self.state,
            self.format,
            self.source_id,
        );
        match result {
            Ok((updates, record)) => {
                self.record = record;
                self.state.aliases.extend(updates.aliases);
                self.contacts.extend(updates.contacts.keys().copied());
                self.state.contacts.extend(updates.contacts);
                self.state.conversations.extend(updates.conversations);
            }
            Err(e) => self.fail(e.into()),
        }
        self.release_chunks();
        let done = self.progress.load(Ordering::Relaxed);
        self.ctx
            .progress(done.min(self.total), Some(self.total), "bytes");
    }
}

/// Store one batch: the new messages and their timeline keys in bulk, then
/// contacts, conversations, aliases, per-day counts and the source's cursor in
/// one transaction (atomic as a whole: see [`Store::write_bulk`]).
#[allow(clippy::too_many_arguments)]
fn store_batch(
    store: &Store,
    batch: &[Pending],
    records: &[Vec<u8>],
    record: &SourceRecord,
    seen: u64,
    state: &State,
    format: Format,
    source_id: Id,
) -> Result<(Updates, SourceRecord), StoreError> {
    // Which messages are new: the first of a key in the batch only (the
    // log's index is in memory: no read from disk).
    let mut new = vec![false; batch.len()];
    let messages = store.tree(Tree::Messages);
    let mut firsts: HashSet<[u8; 16], BuildHasherDefault<KeyHasher>> =
        HashSet::with_capacity_and_hasher(batch.len(), Default::default());
    for (p, is_new) in batch.iter().zip(&mut new) {
        if firsts.insert(p.key) {
            *is_new = !messages.contains_key(p.key)?;
        }
    }
    let mut bulk = Bulk::new();
    let rec = |p: &Pending| &records[p.chunk][p.rec.clone()];
    bulk.reserve(
        batch.iter().map(|p| 16 + p.rec.len() + 33 + 8).sum(),
        2 * batch.len(),
    );
    for (p, _) in batch.iter().zip(&new).filter(|(_, n)| **n) {
        bulk.put_new_raw(Tree::Messages, p.key, rec(p));
        let t = index::timeline_bytes(p.conversation, p.at_ms, &p.key);
        bulk.put_new_raw(Tree::Timeline, t, p.author.to_be_bytes());
    }
    store.write_bulk(bulk, |tx| {
        // Messages already stored are written again, as they always were
        // (the newest reading of a message wins).
        for (p, _) in batch.iter().zip(&new).filter(|(_, n)| !**n) {
            tx.put_raw(Tree::Messages, p.key, rec(p).to_vec())?;
        }
        let updates = Updates::compute(batch, &new, state, format, source_id);
        for c in updates.contacts.values() {
            tx.put(Contact::key(c.id), c)?;
        }
        for c in updates.conversations.values() {
            tx.put(Conversation::key(c.id), c)?;
        }
        for (identity, id) in &updates.aliases {
            tx.put_raw(
                Tree::Index,
                index::alias(identity),
                id.to_be_bytes().to_vec(),
            )?;
        }
        for (&day, &n) in &updates.days {
            let key = index::day(day);
            let old = tx
                .get_raw(Tree::Index, &key)?
                .map(|v| be_u64(&v))
                .unwrap_or(0);
            tx.put_raw(Tree::Index, key, (old + n).to_be_bytes().to_vec())?;
        }
        let mut record = record.clone();
        record.cursor = seen;
        record.messages += batch.len() as u64;
        record.new += new.iter().filter(|n| **n).count() as u64;
        tx.put(Key::new().u64(source_id), &record)?;
        Ok::<_, TxError>((updates, record))
    })
}

/// Contact, conversation and alias records after a batch (pure: it may run
/// again if the transaction retries).
struct Updates {
    contacts: HashMap<Id, Contact>,
    conversations: HashMap<Id, Conversation>,
    aliases: Vec<(String, Id)>,
    /// New messages per local day.
    days: HashMap<i64, u64>,
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// One author's messages in a batch, gathered in one pass.
struct AuthorAgg<'a> {
    /// Its first message in the batch.
    first: &'a Pending,
    me: bool,
    new: u64,
    first_ms: i64,
    last_ms: i64,
    /// Names of its new messages, with counts, in the order first seen.
    names: Vec<(&'a str, u64)>,
}

/// One conversation's messages in a batch.
struct ConvAgg<'a> {
    first: &'a Pending,
    title: Option<&'a String>,
    group: Option<bool>,
    /// Authors in the order they first wrote in the batch.
    authors: Vec<Id>,
    new: u64,
    first_ms: i64,
    last_ms: i64,
}

impl Updates {
    /// What the batch changes, gathered per author and per conversation
    /// first (one pass over the messages, no record touched per message),
    /// then applied to each touched record once. The result is what applying
    /// the messages one by one in order would give.
    fn compute(
        batch: &[Pending],
        new: &[bool],
        state: &State,
        format: Format,
        source: Id,
    ) -> Updates {
        let mut days: HashMap<i64, u64> = HashMap::new();
        let mut last_day: Option<(i64, u64)> = None;
        let mut authors: Vec<(Id, AuthorAgg)> = Vec::new();
        let mut author_at: FastMap<Id, usize> = FastMap::default();
        // Each distinct (author, identity list) in the order first seen:
        // aliases are claimed in that order, as message order would.
        let mut lists: Vec<(Id, &Arc<[String]>)> = Vec::new();
        let mut convs: Vec<(Id, ConvAgg)> = Vec::new();
        let mut conv_at: FastMap<Id, usize> = FastMap::default();
        let mut members: HashSet<(Id, Id), BuildHasherDefault<KeyHasher>> = HashSet::default();
        for (p, &is_new) in batch.iter().zip(new) {
            if is_new {
                match &mut last_day {
                    Some((d, n)) if *d == p.day => *n += 1,
                    _ => {
                        if let Some((d, n)) = last_day {
                            *days.entry(d).or_default() += n;
                        }
                        last_day = Some((p.day, 1));
                    }
                }
            }
            let i = *author_at.entry(p.author).or_insert_with(|| {
                authors.push((
                    p.author,
                    AuthorAgg {
                        first: p,
                        me: false,
                        new: 0,
                        first_ms: i64::MAX,
                        last_ms: i64::MIN,
                        names: Vec::new(),
                    },
                ));
                authors.len() - 1
            });
            let agg = &mut authors[i].1;
            agg.me |= p.me;
            if std::ptr::eq(agg.first, p) {
                lists.push((p.author, &p.identities));
            } else if !Arc::ptr_eq(&agg.first.identities, &p.identities)
                && !lists
                    .iter()
                    .any(|(a, l)| *a == p.author && Arc::ptr_eq(l, &p.identities))
            {
                // The same contact under another identity list (rare).
                lists.push((p.author, &p.identities));
            }
            if is_new {
                agg.new += 1;
                agg.first_ms = agg.first_ms.min(p.at_ms);
                agg.last_ms = agg.last_ms.max(p.at_ms);
                match agg.names.iter_mut().find(|(n, _)| *n == &*p.name) {
                    Some((_, k)) => *k += 1,
                    None => agg.names.push((&*p.name, 1)),
                }
            }
            let j = *conv_at.entry(p.conversation).or_insert_with(|| {
                convs.push((
                    p.conversation,
                    ConvAgg {
                        first: p,
                        title: None,
                        group: None,
                        authors: Vec::new(),
                        new: 0,
                        first_ms: i64::MAX,
                        last_ms: i64::MIN,
                    },
                ));
                convs.len() - 1
            });
            let c = &mut convs[j].1;
            if c.title.is_none() {
                c.title = p.conv.title.as_ref();
            }
            if c.group.is_none() {
                c.group = p.conv.group;
            }
            if members.insert((p.conversation, p.author)) {
                c.authors.push(p.author);
            }
            if is_new {
                c.new += 1;
                c.first_ms = c.first_ms.min(p.at_ms);
                c.last_ms = c.last_ms.max(p.at_ms);
            }
        }
        if let Some((d, n)) = last_day {
            *days.entry(d).or_default() += n;
        }

        let mut contacts: HashMap<Id, Contact> = HashMap::with_capacity(authors.len());
        for (id, agg) in &authors {
            let p = agg.first;
            let mut c = state.contacts.get(id).cloned().unwrap_or_else(|| Contact {
                id: *id,
                name: p.name.to_string(),
                names: Vec::new(),
                handles: Vec::new(),
                me: p.me,
                messages: 0,
                first_ms: p.at_ms,
                last_ms: p.at_ms,
                formats: Vec::new(),
            });
            if !c.formats.contains(&format) {
                c.formats.push(format);
            }
            c.me |= agg.me;
            if agg.new > 0 {
                c.messages += agg.new;
                c.first_ms = c.first_ms.min(agg.first_ms);
                c.last_ms = c.last_ms.max(agg.last_ms);
                for (name, k) in &agg.names {
                    match c.names.iter_mut().find(|(n, _)| n == name) {
                        Some((_, n)) => *n += k,
                        None => c.names.push(((*name).to_owned(), *k)),
                    }
                }
                // The most used name; on a tie the first one seen.
                let mut best: Option<&(String, u64)> = None;
                for entry in &c.names {
                    if best.is_none_or(|b| entry.1 > b.1) {
                        best = Some(entry);
                    }
                }
                if let Some((name, _)) = best {
                    c.name = name.clone();
                }
            }
            contacts.insert(*id, c);
        }
        let mut aliases = Vec::new();
        let mut claimed: HashSet<&str> = HashSet::new();
        for (id, list) in &lists {
            let c = contacts.get_mut(id).expect("every author has a contact");
            for identity in list.iter() {
                if !state.aliases.contains_key(identity) && claimed.insert(identity.as_str()) {
                    aliases.push((identity.clone(), *id));
                }
                if !identity.starts_with("name:") && !c.handles.contains(identity) {
                    c.handles.push(identity.clone());
                }
            }
        }

        let mut conversations: HashMap<Id, Conversation> = HashMap::with_capacity(convs.len());
        for (id, agg) in convs {
            let p = agg.first;
            let mut conv = state
                .conversations
                .get(&id)
                .cloned()
                .unwrap_or_else(|| Conversation {
                    id,
                    source,
                    format,
                    native: p.conv.native.clone(),
                    title: p.conv.title.clone(),
                    group: p.conv.group,
                    participants: Vec::new(),
                    messages: 0,
                    first_ms: p.at_ms,
                    last_ms: p.at_ms,
                    windows_stale: false,
                });
            if conv.title.is_none() {
                conv.title = agg.title.cloned();
            }
            if conv.group.is_none() {
                conv.group = agg.group;
            }
            if !agg.authors.is_empty() {
                let known: HashSet<Id, BuildHasherDefault<KeyHasher>> =
                    conv.participants.iter().copied().collect();
                for a in agg.authors {
                    if !known.contains(&a) {
                        conv.participants.push(a);
                    }
                }
            }
            if agg.new > 0 {
                conv.messages += agg.new;
                conv.first_ms = conv.first_ms.min(agg.first_ms);
                conv.last_ms = conv.last_ms.max(agg.last_ms);
                conv.windows_stale = true;
            }
            conversations.insert(id, conv);
        }
        Updates {
            contacts,
            conversations,
            aliases,
            days,
        }
    }
}

/// Counts bytes read from a source, for progress.
struct Counting<'a> {
    inner: &'a dyn Source,
    read: Arc<AtomicU64>,
}

impl Source for Counting<'_> {
    fn root(&self) -> &Path {
        self.inner.root()
    }
    fn files(&self) -> &[PathBuf] {
        self.inner.files()
    }
    fn open(&self, rel: &Path) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(CountingRead {
            inner: self.inner.open(rel)?,
            read: self.read.clone(),
        }))
    }
    fn size(&self, rel: &Path) -> Option<u64> {
        self.inner.size(rel)
    }
    fn head(&self, rel: &Path, n: usize) -> std::io::Result<Vec<u8>> {
        self.inner.head(rel, n)
    }
    fn display(&self, rel: &Path) -> PathBuf {
        self.inner.display(rel)
    }
    /// The inner source's bytes (a map of the file where it can), not the
    /// default read through [`Self::open`]: copying a GB-sized result.json
    /// into memory was a tenth of a Telegram import.
    fn bytes(&self, rel: &Path) -> std::io::Result<super::source::FileBytes> {
        let bytes = self.inner.bytes(rel)?;
        self.read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

struct CountingRead<'a> {
    inner: Box<dyn Read + 'a>,
    read: Arc<AtomicU64>,
}

impl Read for CountingRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_convert_local_time() {
        let t = NaiveDateTime::parse_from_str("2021-07-01 12:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        assert_eq!(berlin.to_utc(t).to_rfc3339(), "2021-07-01T10:00:00+00:00");
        // A time inside the spring-forward gap moves forward instead of failing.
        let gap =
            NaiveDateTime::parse_from_str("2021-03-28 02:30:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(berlin.to_utc(gap).to_rfc3339(), "2021-03-28T01:30:00+00:00");
        assert!(Zone::parse("Mars/Olympus").unwrap_err().contains("IANA"));
    }
}
