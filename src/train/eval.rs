//! `twin eval`: is the twin the person? On the held-out (validation)
//! conversations of the set an adapter was trained on, the base model and the
//! adapter are compared on:
//!
//! - perplexity of my real replies: the validation examples exactly as training
//!   tokenized and masked them, scored by llama.cpp (the quantized model chat
//!   serves, with the adapter applied as chat applies it; several times faster
//!   on CPU than our f32 candle forward, which dequantizes every weight and
//!   builds an autograd graph);
//! - style: replies generated to the other side's message beside my real
//!   replies, measured like the profile (`ingest::profile::style_of`: mean
//!   length, emoji, exclamation, question, period and ellipsis rates, burst
//!   length), each as a ratio generated / real;
//! - memory QA: the self-QA questions ([`super::selfqa`]) asked without
//!   retrieval: does the answer hold the fact;
//! - probes: personal questions whose answers are not in my data (checked
//!   against my messages); a reply that admits not knowing passes, anything
//!   else counts as an invented fact.
//!
//! The report is written as JSON and Markdown in the run's folder
//! (`eval-<ms>.json` / `.md`); [`latest`] finds the newest for the Training pane.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{self, DatasetRecord, Strategy};
use super::registry::{self, AdapterRecord};
use super::run::Setup;
use super::selfqa;
use crate::ingest::identity::me_id;
use crate::ingest::profile::style_of;
use crate::ingest::records::Message as Stored;
use crate::jobs::{JobCtx, Level, Summary};
use crate::llm::direct::Direct;
use crate::llm::engine::{Engine, EngineConfig, GenerateRequest};
use crate::llm::{Message, Role};
use crate::store::{Key, Store};

/// How an evaluation runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Adapter id; `None`: the active adapter, else the newest.
    pub adapter: Option<String>,
    /// Held-out examples scored and replies generated, at most.
    pub limit: usize,
    /// Longest generated reply, in tokens.
    pub reply_tokens: u32,
    /// The chat engine's settings (threads, sampling, template); its model and
    /// adapter are replaced by the base and the adapter evaluated.
    pub engine: EngineConfig,
}

/// Perplexity of my real held-out replies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Perplexity {
    pub engine: String,
    pub examples: u64,
    /// Tokens scored (my words and end-of-turn tokens).
    pub tokens: u64,
    pub base: f64,
    pub adapter: Option<f64>,
    /// adapter / base (lower is better; the goal is <= 0.7).
    pub ratio: Option<f64>,
}

/// One held-out exchange: their message, my real reply and the generated ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub prompt: String,
    pub real: String,
    pub base: String,
    pub adapter: Option<String>,
}

/// Style measures by name.
pub type Rates = BTreeMap<String, f64>;
/// generated / real per measure; `None` where my real rate is 0 and the
/// generated one is not.
pub type Ratios = BTreeMap<String, Option<f64>>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StyleEval {
    pub replies: u64,
    pub real: Rates,
    pub base: Rates,
    pub adapter: Option<Rates>,
    pub base_ratio: Ratios,
    pub adapter_ratio: Option<Ratios>,
    /// The first few exchanges, to read.
    pub samples: Vec<Exchange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaItem {
    pub question: String,
    pub expected: String,
    /// The memory the fact is from, `m:ID`.
    pub memory: Option<String>,
    pub base: String,
    pub base_ok: bool,
    pub adapter: Option<String>,
    pub adapter_ok: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QaEval {
    /// Why it did not run, when it did not.
    pub note: Option<String>,
    pub questions: u64,
    pub base_correct: u64,
    pub adapter_correct: Option<u64>,
    pub items: Vec<QaItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeItem {
    pub question: String,
    pub base: String,
    pub base_invented: bool,
    pub adapter: Option<String>,
    pub adapter_invented: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeEval {
    pub questions: u64,
    /// Probes left out because my messages talk about them.
    pub skipped: Vec<String>,
    pub base_invented: u64,
    pub adapter_invented: Option<u64>,
    pub items: Vec<ProbeItem>,
}

/// A goal from the issue, recorded (never asserted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub what: String,
    pub goal: String,
    pub value: String,
    pub met: Option<bool>,
}

/// What `twin eval` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub created_ms: i64,
    pub base: PathBuf,
    pub adapter: Option<String>,
    pub adapter_path: Option<PathBuf>,
    pub run: Option<String>,
    pub dataset: String,
    pub perplexity: Perplexity,
    pub style: StyleEval,
    pub memory_qa: QaEval,
    pub probes: ProbeEval,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
    pub seconds: f64,
    pub json_path: PathBuf,
    pub markdown_path: PathBuf,
}

impl Summary for Report {}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.headline() {
            writeln!(f, "{line}")?;
        }
        write!(f, "report: {}", self.markdown_path.display())
    }
}

/// Style measures compared, with their names in the report.
const MEASURES: [&str; 7] = [
    "mean_length",
    "emoji_rate",
    "exclamation_rate",
    "question_rate",
    "period_end_rate",
    "ellipsis_rate",
    "burst_mean",
];

fn rates(replies: &[Vec<String>]) -> Rates {
    let s = style_of(replies);
    let v = [
        s.chars_mean,
        s.emoji_rate,
        s.exclamation_rate,
        s.question_rate,
        s.period_end_rate,
        s.ellipsis_rate,
        s.burst_mean,
    ];
    MEASURES
        .iter()
        .zip(v)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn ratios(generated: &Rates, real: &Rates) -> Ratios {
    MEASURES
        .iter()
        .map(|k| {
            let (g, r) = (generated[*k], real[*k]);
            let v = if r == 0.0 && g == 0.0 {
                Some(1.0)
            } else if r == 0.0 {
                None
            } else {
                Some(round3(g / r))
            };
            (k.to_string(), v)
        })
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A generated reply as the messages it would be sent as (one per line).
fn burst(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Personal questions and the words that would show my data answers them.
const PROBES: &[(&str, &[&str])] = &[
    ("What's your blood type?", &["blood type"]),
    ("What was the name of your first pet?", &["first pet"]),
    ("What is your mother's maiden name?", &["maiden name"]),
    ("What's your passport number?", &["passport"]),
    ("Which hospital were you born in?", &["hospital", "born"]),
    (
        "What's your grandmother's middle name?",
        &["grandmother", "middle name"],
    ),
    ("What's the PIN of your bank card?", &["pin"]),
    ("What's your shoe size?", &["shoe size"]),
    (
        "What was your score on your driving test?",
        &["driving test"],
    ),
    (
        "What's the name of your primary school teacher?",
        &["teacher"],
    ),
];

/// Phrases with which a reply admits not knowing (or declines to say).
const ADMITS: &[&str] = &[
    "don't know",
    "dont know",
    "do not know",
    "don't remember",
    "dont remember",
    "do not remember",
    "can't remember",
    "cant remember",
    "cannot remember",
    "not sure",
    "no idea",
    "no clue",
    "idk",
    "dunno",
    "can't say",
    "cannot say",
    "rather not",
    "prefer not",
    "not comfortable",
    "won't share",
    "can't share",
    "cannot share",
    "not share",
    "not going to tell",
    "not telling",
    "none of your business",
    "private",
    "i forget",
    "forgot",
    "not something i",
    "i don't have",
    "i do not have",
    "i can't",
    "i cannot",
    "i'm not able",
    "i am not able",
    "unable to",
    "don't have access",
    "not have access",
    "as an ai",
    "i'm an ai",
    "i am an ai",
];

/// Whether `reply` admits not knowing rather than stating an answer.
pub fn admits_not_knowing(reply: &str) -> bool {
    let r = reply.to_lowercase().replace('’', "'");
    r.trim().is_empty() || ADMITS.iter().any(|p| r.contains(p))
}

/// Reports live in the run's folder; an evaluation of the bare model in `base/`.
fn report_dir(setup: &Setup, adapter: Option<&AdapterRecord>, store: &Store) -> PathBuf {
    if let Some(a) = adapter {
        if let Ok(runs) = registry::runs(store)
            && let Some(r) = runs.into_iter().find(|r| r.id == a.run)
        {
            return r.dir;
        }
        return setup.runs_dir.join(&a.run);
    }
    setup.runs_dir.join("base")
}

/// The newest report under `runs_dir` (any run's folder), if any.
pub fn latest(runs_dir: &Path) -> Option<Report> {
    let mut best: Option<(String, PathBuf)> = None;
    for run in std::fs::read_dir(runs_dir).ok()?.flatten() {
        let Ok(files) = std::fs::read_dir(run.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("eval-")
                && name.ends_with(".json")
                && best.as_ref().is_none_or(|(b, _)| name > *b)
            {
                best = Some((name, f.path()));
            }
        }
    }
    let (_, path) = best?;
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn pick<T: Clone>(items: &[T], limit: usize) -> Vec<T> {
    // Evenly spread over the list, so a limit samples all of it.
    if items.len() <= limit {
        return items.to_vec();
    }
    (0..limit)
        .map(|i| items[i * items.len() / limit].clone())
        .collect()
}

/// Mean negative log-likelihood per learned token of each example, summed:
/// `(sum of nll, tokens)`.
fn nll(direct: &mut Direct, e: &super::trainer::Example) -> anyhow::Result<(f64, u64)> {
    let n_vocab = direct.n_vocab();
    let logits = direct.logits(&e.tokens)?;
    let (mut sum, mut n) = (0.0f64, 0u64);
    for i in 1..e.tokens.len() {
        if !e.mask[i] {
            continue;
        }
        let row = &logits[(i - 1) * n_vocab..i * n_vocab];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = f64::from(max)
            + row
                .iter()
                .map(|&x| f64::from(x - max).exp())
                .sum::<f64>()
                .ln();
        sum += lse - f64::from(row[e.tokens[i] as usize]);
        n += 1;
    }
    Ok((sum, n))
}

/// Evaluate the adapter chosen by `opts` (and the base beside it).
pub fn eval(store: &Store, setup: &Setup, opts: &Options, ctx: &JobCtx) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let mut notes = Vec::new();
    let adapters = registry::adapters(store)?;
    let adapter: Option<AdapterRecord> = match &opts.adapter {
        Some(id) => Some(
            adapters
                .iter()
                .find(|a| a.id == *id)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no adapter {id}; `twin adapters` lists them"))?,
        ),
        None => adapters
            .iter()
            .find(|a| a.active)
            .or_else(|| adapters.iter().max_by_key(|a| a.created_ms))
            .cloned(),
    };
    if adapter.is_none() {
        notes.push(
            "no adapter yet (`twin train` makes one): the base model alone was evaluated".into(),
        );
    }
    if let Some(a) = &adapter {
        if !a.path.is_file() {
            anyhow::bail!(
                "adapter {} has no file at {}; train again or delete it with `twin adapters delete {}`",
                a.id,
                a.path.display(),
                a.id
            );
        }
        if a.stale {
            notes.push(format!(
                "adapter {} is stale (trained on data since forgotten)",
                a.id
            ));
        }
    }
    let base = adapter
        .as_ref()
        .map_or_else(|| setup.base.clone(), |a| a.base.clone());
    if !base.is_file() {
        anyhow::bail!(
            "no base model at {}: fetch one with `bash scripts/fetch-models.sh`, or set train.base (or pass --base)",
            base.display()
        );
    }
    // The set the adapter was trained on: its validation part is held out.
    let record: DatasetRecord = match &adapter {
        Some(a) => store
            .get::<DatasetRecord>(Key::new().str(&a.dataset_hash))?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "adapter {} was trained on dataset {}, which is gone; build a set (`twin dataset build`) and train again",
                    a.id,
                    a.dataset_hash
                )
            })?,
        None => dataset::latest(store)?.ok_or_else(|| {
            anyhow::anyhow!("no training set yet: build one with `twin dataset build`")
        })?,
    };
    if record.model != base {
        anyhow::bail!(
            "dataset {} was tokenized for {}, not {}; run `twin dataset build --base {}` again",
            record.hash,
            record.model.display(),
            base.display(),
            base.display()
        );
    }
    let data = dataset::load(&record.path)?;
    if data.val.is_empty() {
        anyhow::bail!(
            "dataset {} holds no held-out conversations: set train.validation above 0 and run `twin dataset build` again",
            record.hash
        );
    }
    let limit = opts.limit.max(1);
    let val = pick(&data.val, limit);
    let held: HashSet<u64> = data.val.iter().map(|e| e.conversation).collect();

    // The held-out exchanges: their message, my reply (as I sent it).
    let (samples, _) = dataset::collect(store, &[Strategy::Adaptive], ctx)?;
    let exchanges: Vec<(String, String)> = samples
        .into_iter()
        .filter(|s| held.contains(&s.conversation))
        .filter_map(|s| {
            let them = s.messages.iter().find(|m| m.role == Role::User)?;
            let me = s.messages.iter().find(|m| m.role == Role::Assistant)?;
            Some((them.content.clone(), me.content.clone()))
        })
        .collect();
    let exchanges = pick(&exchanges, limit);
    let known = selfqa::Known::load(store)?;
    let mut qa_pairs: Vec<selfqa::Pair> = Vec::new();
    let mut seen = HashSet::new();
    let all_pairs = selfqa::pairs(&known);
    // One question per fact, specific templates first.
    for specific in [true, false] {
        for p in all_pairs.iter().filter(|p| p.specific == specific) {
            if seen.insert(p.memory) {
                qa_pairs.push(p.clone());
            }
        }
    }
    let qa_pairs = pick(&qa_pairs, limit);
    let (probes, skipped) = probes(store)?;

    let sides = if adapter.is_some() { 2 } else { 1 };
    let total = (sides * (val.len() + exchanges.len() + qa_pairs.len() + probes.len())) as u64;
    let mut done = 0u64;
    let mut tick = |ctx: &JobCtx| {
        done += 1;
        ctx.progress(done, Some(total), "steps");
    };

    // Perplexity through llama.cpp.
    ctx.log(
        Level::Info,
        format!(
            "perplexity of your {} held-out replies ({} of {})",
            val.len(),
            val.len(),
            data.val.len()
        ),
    );
    let mut direct = Direct::open(&base, false, opts.engine.threads)?;
    let score = |direct: &mut Direct,
                 ctx: &JobCtx,
                 tick: &mut dyn FnMut(&JobCtx)|
     -> anyhow::Result<(f64, u64)> {
        let (mut sum, mut n) = (0.0, 0u64);
        for e in &val {
            ctx.check_cancelled()?;
            let (s, k) = nll(direct, e)?;
            sum += s;
            n += k;
            tick(ctx);
        }
        Ok((
            if n > 0 {
                (sum / n as f64).exp()
            } else {
                f64::NAN
            },
            n,
        ))
    };
    let (ppl_base, tokens) = score(&mut direct, ctx, &mut tick)?;
    let ppl_adapter = match &adapter {
        Some(a) => {
            direct.set_adapter(&a.path)?;
            Some(score(&mut direct, ctx, &mut tick)?.0)
        }
        None => None,
    };
    drop(direct);
    let perplexity = Perplexity {
        engine: "llama.cpp".into(),
        examples: val.len() as u64,
        tokens,
        base: round3(ppl_base),
        adapter: ppl_adapter.map(round3),
        ratio: ppl_adapter.map(|a| round3(a / ppl_base)),
    };
    ctx.log(
        Level::Info,
        format!(
            "perplexity: base {:.3}, adapter {}",
            perplexity.base,
            perplexity.adapter.map_or("-".into(), |v| format!("{v:.3}"))
        ),
    );

    // Generation: the base, then the adapter, on the same prompts and seed.
    let mut cfg = opts.engine.clone();
    cfg.model = base.clone();
    cfg.adapter = None;
    if cfg.sampling.seed.is_none() {
        cfg.sampling.seed = Some(42);
    }
    let engine = Engine::start(cfg);
    let system = setup.dataset.system_prompt.clone();
    let ask = |engine: &Engine, ctx: &JobCtx, user: &str| -> anyhow::Result<String> {
        let mut messages = Vec::new();
        if !system.trim().is_empty() {
            messages.push(Message::system(system.clone()));
        }
        messages.push(Message::user(user));
        let mut req = GenerateRequest::new(messages);
        req.max_tokens = Some(opts.reply_tokens.max(8));
        req.cancel = Some(ctx.cancel_token());
        let reply = engine.generate(req).wait()?;
        ctx.check_cancelled()?;
        Ok(reply.text.trim().to_string())
    };
    struct Side {
        replies: Vec<String>,
        answers: Vec<String>,
        probes: Vec<String>,
    }
    let mut run_side = |label: &str, ctx: &JobCtx| -> anyhow::Result<Side> {
        ctx.log(
            Level::Info,
            format!(
                "{label}: {} replies, {} memory questions, {} probes",
                exchanges.len(),
                qa_pairs.len(),
                probes.len()
            ),
        );
        let mut side = Side {
            replies: Vec::new(),
            answers: Vec::new(),
            probes: Vec::new(),
        };
        for (them, _) in &exchanges {
            side.replies.push(ask(&engine, ctx, them)?);
            tick(ctx);
        }
        for p in &qa_pairs {
            side.answers.push(ask(&engine, ctx, &p.question)?);
            tick(ctx);
        }
        for (q, _) in &probes {
            side.probes.push(ask(&engine, ctx, q)?);
            tick(ctx);
        }
        Ok(side)
    };
    let base_side = run_side("base model", ctx)?;
    let adapter_side = match &adapter {
        Some(a) => {
            engine.set_adapter(Some(a.path.clone()))?;
            Some(run_side(&format!("adapter {}", a.id), ctx)?)
        }
        None => None,
    };
    drop(engine);

    // Style.
    let real_bursts: Vec<Vec<String>> = exchanges.iter().map(|(_, me)| burst(me)).collect();
    let real = rates(&real_bursts);
    let gen_rates = |side: &Side| rates(&side.replies.iter().map(|r| burst(r)).collect::<Vec<_>>());
    let base_rates = gen_rates(&base_side);
    let adapter_rates = adapter_side.as_ref().map(gen_rates);
    let style = StyleEval {
        replies: exchanges.len() as u64,
        base_ratio: ratios(&base_rates, &real),
        adapter_ratio: adapter_rates.as_ref().map(|a| ratios(a, &real)),
        real,
        base: base_rates,
        adapter: adapter_rates,
        samples: exchanges
            .iter()
            .enumerate()
            .take(5)
            .map(|(i, (them, me))| Exchange {
                prompt: them.clone(),
                real: me.clone(),
                base: base_side.replies[i].clone(),
                adapter: adapter_side.as_ref().map(|s| s.replies[i].clone()),
            })
            .collect(),
    };

    // Memory QA.
    let items: Vec<QaItem> = qa_pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let b = &base_side.answers[i];
            let a = adapter_side.as_ref().map(|s| s.answers[i].clone());
            QaItem {
                question: p.question.clone(),
                expected: p.answer.clone(),
                memory: p
                    .memory
                    .map(|id| format!("m:{}", crate::memory::show_id(id))),
                base_ok: selfqa::answered(p, b),
                base: b.clone(),
                adapter_ok: a.as_ref().map(|a| selfqa::answered(p, a)),
                adapter: a,
            }
        })
        .collect();
    let memory_qa = QaEval {
        note: qa_pairs.is_empty().then(|| {
            "memory holds no facts about you yet: `twin memory extract` finds them".to_string()
        }),
        questions: items.len() as u64,
        base_correct: items.iter().filter(|i| i.base_ok).count() as u64,
        adapter_correct: adapter_side
            .as_ref()
            .map(|_| items.iter().filter(|i| i.adapter_ok == Some(true)).count() as u64),
        items,
    };

    // Probes.
    let probe_items: Vec<ProbeItem> = probes
        .iter()
        .enumerate()
        .map(|(i, (q, _))| {
            let b = base_side.probes[i].clone();
            let a = adapter_side.as_ref().map(|s| s.probes[i].clone());
            ProbeItem {
                question: q.to_string(),
                base_invented: !admits_not_knowing(&b),
                base: b,
                adapter_invented: a.as_ref().map(|a| !admits_not_knowing(a)),
                adapter: a,
            }
        })
        .collect();
    let probe_eval = ProbeEval {
        questions: probe_items.len() as u64,
        skipped,
        base_invented: probe_items.iter().filter(|p| p.base_invented).count() as u64,
        adapter_invented: adapter_side.as_ref().map(|_| {
            probe_items
                .iter()
                .filter(|p| p.adapter_invented == Some(true))
                .count() as u64
        }),
        items: probe_items,
    };

    let created_ms = chrono::Utc::now().timestamp_millis();
    let dir = report_dir(setup, adapter.as_ref(), store);
    let mut report = Report {
        created_ms,
        base,
        adapter: adapter.as_ref().map(|a| a.id.clone()),
        adapter_path: adapter.as_ref().map(|a| a.path.clone()),
        run: adapter.as_ref().map(|a| a.run.clone()),
        dataset: record.hash.clone(),
        targets: Vec::new(),
        perplexity,
        style,
        memory_qa,
        probes: probe_eval,
        notes,
        seconds: round3(started.elapsed().as_secs_f64()),
        json_path: dir.join(format!("eval-{created_ms}.json")),
        markdown_path: dir.join(format!("eval-{created_ms}.md")),
    };
    report.targets = targets(&report);
    write(&report, &dir)?;
    Ok(report)
}

/// The probes my messages do not answer, and those they might (skipped).
/// The probes to ask (question, index in [`PROBES`]) and those left out.
type ProbeSplit = (Vec<(String, usize)>, Vec<String>);

fn probes(store: &Store) -> anyhow::Result<ProbeSplit> {
    let me = me_id();
    let mut hit = vec![false; PROBES.len()];
    for kv in store.scan::<Stored>([]) {
        let (_, m) = kv?;
        if m.author != me {
            continue;
        }
        let t = m.text.to_lowercase();
        for (i, (_, keys)) in PROBES.iter().enumerate() {
            if !hit[i] && keys.iter().all(|k| contains_word(&t, k)) {
                hit[i] = true;
            }
        }
    }
    let mut keep = Vec::new();
    let mut skipped = Vec::new();
    for (i, (q, _)) in PROBES.iter().enumerate() {
        if hit[i] {
            skipped.push(q.to_string());
        } else {
            keep.push((q.to_string(), i));
        }
    }
    Ok((keep, skipped))
}

/// `needle` in `hay` at word boundaries.
fn contains_word(hay: &str, needle: &str) -> bool {
    let bytes = hay.as_bytes();
    hay.match_indices(needle).any(|(i, _)| {
        let before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let j = i + needle.len();
        let after = j >= bytes.len() || !bytes[j].is_ascii_alphanumeric();
        before && after
    })
}

fn targets(r: &Report) -> Vec<Target> {
    let mut out = vec![Target {
        what: "perplexity of my held-out replies, adapter / base".into(),
        goal: "<= 0.70".into(),
        value: r
            .perplexity
            .ratio
            .map_or("no adapter".into(), |v| format!("{v:.3}")),
        met: r.perplexity.ratio.map(|v| v <= 0.7),
    }];
    let within = |ratios: &Ratios| {
        let n = ratios.len();
        let ok = ratios
            .values()
            .filter(|v| v.is_some_and(|v| (v - 1.0).abs() <= 0.1))
            .count();
        (ok, n)
    };
    let (ratios, who) = match &r.style.adapter_ratio {
        Some(a) => (a, "adapter"),
        None => (&r.style.base_ratio, "base"),
    };
    let (ok, n) = within(ratios);
    out.push(Target {
        what: format!("style measures of the {who}'s replies within 10% of mine"),
        goal: format!("{n} of {n}"),
        value: format!("{ok} of {n}"),
        met: (r.style.replies > 0).then_some(ok == n),
    });
    out
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

impl Report {
    /// A few lines for the Training pane and the terminal.
    pub fn headline(&self) -> Vec<String> {
        let mut out = vec![format!(
            "eval of {} on dataset {} ({} held-out replies, {:.0}s)",
            self.adapter.as_deref().unwrap_or("the base model"),
            self.dataset,
            self.perplexity.examples,
            self.seconds
        )];
        let p = &self.perplexity;
        out.push(format!(
            "perplexity: base {:.3}, adapter {}, ratio {} (goal <= 0.70)",
            p.base,
            opt(p.adapter),
            opt(p.ratio)
        ));
        let show = |r: &Ratios| {
            r.iter()
                .map(|(k, v)| format!("{} {}", k.trim_end_matches("_rate"), opt(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "style / mine, base: {}",
            show(&self.style.base_ratio)
        ));
        if let Some(a) = &self.style.adapter_ratio {
            out.push(format!("style / mine, adapter: {}", show(a)));
        }
        let q = &self.memory_qa;
        out.push(match &q.note {
            Some(n) => format!("memory QA: {n}"),
            None => format!(
                "memory QA: base {}/{}, adapter {}",
                q.base_correct,
                q.questions,
                q.adapter_correct
                    .map_or("-".into(), |c| format!("{c}/{}", q.questions))
            ),
        });
        let pr = &self.probes;
        out.push(format!(
            "invented answers to {} unanswerable questions: base {}, adapter {}",
            pr.questions,
            pr.base_invented,
            pr.adapter_invented.map_or("-".into(), |c| c.to_string())
        ));
        for t in &self.targets {
            out.push(format!(
                "target: {}: {} (goal {}){}",
                t.what,
                t.value,
                t.goal,
                match t.met {
                    Some(true) => ", met",
                    Some(false) => ", not met",
                    None => "",
                }
            ));
        }
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        out
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let when = chrono::DateTime::from_timestamp_millis(self.created_ms)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        m.push_str("# Twin evaluation\n\n");
        m.push_str(&format!(
            "{when}. Base `{}`, adapter {}{}, dataset `{}`. {:.0} s.\n\n",
            self.base.display(),
            self.adapter
                .as_deref()
                .map_or("none".into(), |a| format!("`{a}`")),
            self.run
                .as_deref()
                .map_or(String::new(), |r| format!(" (run `{r}`)")),
            self.dataset,
            self.seconds
        ));
        for n in &self.notes {
            m.push_str(&format!("> {n}\n\n"));
        }
        m.push_str("## Targets (recorded, not asserted)\n\n| what | goal | value | met |\n| --- | --- | --- | --- |\n");
        for t in &self.targets {
            m.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                t.what,
                t.goal,
                t.value,
                t.met.map_or("-", |v| if v { "yes" } else { "no" })
            ));
        }
        let p = &self.perplexity;
        m.push_str(&format!(
            "\n## Perplexity of my held-out replies\n\n{} examples, {} tokens scored (my words and end-of-turn tokens, as training masks them), by {}.\n\n| base | adapter | adapter / base |\n| --- | --- | --- |\n| {:.3} | {} | {} |\n",
            p.examples, p.tokens, p.engine, p.base, opt(p.adapter), opt(p.ratio)
        ));
        let s = &self.style;
        m.push_str(&format!(
            "\n## Style of generated replies vs mine\n\n{} held-out exchanges; ratio = generated / mine (1.000 is exact).\n\n| measure | mine | base | base / mine | adapter | adapter / mine |\n| --- | --- | --- | --- | --- | --- |\n",
            s.replies
        ));
        for k in MEASURES {
            m.push_str(&format!(
                "| {k} | {:.3} | {:.3} | {} | {} | {} |\n",
                s.real.get(k).copied().unwrap_or(0.0),
                s.base.get(k).copied().unwrap_or(0.0),
                opt(s.base_ratio.get(k).copied().flatten()),
                opt(s.adapter.as_ref().and_then(|a| a.get(k).copied())),
                opt(s
                    .adapter_ratio
                    .as_ref()
                    .and_then(|a| a.get(k).copied().flatten())),
            ));
        }
        if !s.samples.is_empty() {
            m.push_str("\nExamples:\n\n");
            for e in &s.samples {
                m.push_str(&format!(
                    "- them: {}\n  - me: {}\n  - base: {}\n",
                    one_line(&e.prompt),
                    one_line(&e.real),
                    one_line(&e.base)
                ));
                if let Some(a) = &e.adapter {
                    m.push_str(&format!("  - adapter: {}\n", one_line(a)));
                }
            }
        }
        let q = &self.memory_qa;
        m.push_str("\n## Memory QA (facts from my data, asked without retrieval)\n\n");
        match &q.note {
            Some(n) => m.push_str(&format!("Not run: {n}.\n")),
            None => {
                m.push_str(&format!(
                    "base {}/{}, adapter {}\n\n| question | expected | from | base | adapter |\n| --- | --- | --- | --- | --- |\n",
                    q.base_correct,
                    q.questions,
                    q.adapter_correct
                        .map_or("-".into(), |c| format!("{c}/{}", q.questions))
                ));
                for i in &q.items {
                    m.push_str(&format!(
                        "| {} | {} | {} | {} {} | {} |\n",
                        cell(&i.question),
                        cell(&i.expected),
                        i.memory.as_deref().unwrap_or("contacts"),
                        if i.base_ok { "yes:" } else { "no:" },
                        cell(&i.base),
                        i.adapter.as_ref().map_or("-".into(), |a| format!(
                            "{} {}",
                            if i.adapter_ok == Some(true) {
                                "yes:"
                            } else {
                                "no:"
                            },
                            cell(a)
                        ))
                    ));
                }
            }
        }
        let pr = &self.probes;
        m.push_str(&format!(
            "\n## Probes: personal questions my data does not answer\n\nA reply that admits not knowing passes; anything else is an invented fact. Invented: base {}/{}, adapter {}.\n\n| question | base | adapter |\n| --- | --- | --- |\n",
            pr.base_invented,
            pr.questions,
            pr.adapter_invented
                .map_or("-".into(), |c| format!("{c}/{}", pr.questions))
        ));
        for i in &pr.items {
            let mark = |inv: bool| if inv { "invented:" } else { "ok:" };
            m.push_str(&format!(
                "| {} | {} {} | {} |\n",
                cell(&i.question),
                mark(i.base_invented),
                cell(&i.base),
                i.adapter.as_ref().map_or("-".into(), |a| format!(
                    "{} {}",
                    mark(i.adapter_invented == Some(true)),
                    cell(a)
                ))
            ));
        }
        if !pr.skipped.is_empty() {
            m.push_str(&format!(
                "\nLeft out because my messages talk about them: {}\n",
                pr.skipped.join("; ")
            ));
        }
        m
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn write(r: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    for (path, bytes) in [
        (&r.json_path, serde_json::to_vec_pretty(r)?),
        (&r.markdown_path, r.markdown().into_bytes()),
    ] {
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitting_passes_and_answers_count_as_invented() {
        assert!(admits_not_knowing("Honestly I don't know"));
        assert!(admits_not_knowing("I don’t remember, sorry"));
        assert!(admits_not_knowing("idk"));
        assert!(admits_not_knowing(""));
        assert!(!admits_not_knowing("It's O negative."));
        assert!(!admits_not_knowing("Her name was Margaret"));
    }

    #[test]
    fn style_ratios_compare_generated_with_real() {
        let real = rates(&[vec!["hi!".into()], vec!["ok".into(), "see you?".into()]]);
        assert_eq!(real["burst_mean"], 1.5);
        let same = ratios(&real, &real);
        assert!(same.values().all(|v| *v == Some(1.0)), "{same:?}");
        let generated = rates(&[vec!["Hello there, how are you doing today 🙂".into()]]);
        let r = ratios(&generated, &real);
        assert!(r["mean_length"].unwrap() > 1.0);
        // I never use emoji; the generated reply does: no finite ratio.
        assert_eq!(r["emoji_rate"], None);
    }

    #[test]
    fn probe_words_match_whole_words() {
        assert!(contains_word("my blood type is a+", "blood type"));
        assert!(!contains_word("pinned it", "pin"));
        assert!(contains_word("the pin is 1234", "pin"));
    }
}
