//! Self-QA training examples from memory's facts, and `twin eval` end to end:
//! a tiny synthesized model (the numbers mean nothing there; the pipeline and
//! the report's shape are what is tested), then the real SmolLM2 (marked: it
//! skips, saying why, when the model is absent).

use std::path::{Path, PathBuf};

use twin::ingest::pipeline::{self, Options, Zone};
use twin::jobs::JobCtx;
use twin::llm::EngineConfig;
use twin::llm::tiny::TinyLlama;
use twin::memory::{Memory, MemoryKind};
use twin::store::Store;
use twin::train::dataset::{self, Strategy};
use twin::train::eval;
use twin::train::lora::LoraConfig;
use twin::train::run::{self, Setup};
use twin::train::trainer::RunConfig;

fn export(dir: &Path, friend: &str, topic: &str, n: usize) -> PathBuf {
    let mut s = String::new();
    for i in 0..n {
        let (h, m) = (1 + ((i % 16) / 4) * 2, i % 4);
        let t = format!("1/{}/21, {h}:0{m} AM", 5 + i / 16);
        let line = match i % 4 {
            0 => format!("{t} - {friend}: hey, {topic} tonight?\n"),
            1 => format!("{t} - Jo: yes!! {topic} in {i} minutes\n"),
            2 => format!("{t} - Jo: busy till then 😅\n"),
            _ => format!("{t} - {friend}: ok see you\n"),
        };
        s.push_str(&line);
    }
    let path = dir.join(format!("WhatsApp Chat with {friend}.txt"));
    std::fs::write(&path, s).unwrap();
    path
}

fn import(dir: &Path) -> Store {
    let paths = [
        ("Bob Smith", "tennis"),
        ("Carol Jones", "pizza"),
        ("Dan Brown", "movies"),
    ]
    .iter()
    .map(|(f, topic)| export(dir, f, topic, 24))
    .collect();
    let store = Store::open(&dir.join("store")).unwrap();
    let (ctx, _rx, _c) = JobCtx::detached("ingest");
    let opts = Options {
        paths,
        format: None,
        me: vec!["Jo".into()],
        zone: Zone::parse("UTC").unwrap(),
        window_gap_ms: 30 * 60_000,
        voice: None,
    };
    pipeline::run(&store, &opts, &ctx).unwrap();
    store
}

fn add_fact(store: &Store, id: u64, kind: MemoryKind, text: &str) {
    let m = Memory {
        id,
        kind,
        title: String::new(),
        text: text.into(),
        contacts: Vec::new(),
        conversation: None,
        start_ms: 0,
        end_ms: 0,
        provenance: Vec::new(),
        source_hash: 0,
        created_ms: 0,
        updated_ms: 0,
        accessed_ms: 0,
        access_count: 0,
        pinned: false,
        edited: false,
        importance: 0.7,
        slot: None,
    };
    store
        .write(|tx| tx.put(Memory::key(id), &m).map(|_| ()))
        .unwrap();
}

fn setup(dir: &Path, base: PathBuf, strategies: Vec<Strategy>, steps: u64) -> Setup {
    Setup {
        base,
        datasets_dir: dir.join("datasets"),
        adapters_dir: dir.join("adapters"),
        runs_dir: dir.join("runs"),
        dataset: dataset::Options {
            strategies,
            max_tokens: 256,
            validation: 0.34,
            system_prompt: "You are Jo.".into(),
            seed: 3,
            never_train: Vec::new(),
        },
        run: RunConfig {
            lora: LoraConfig {
                rank: 4,
                alpha: 8.0,
                ..LoraConfig::default()
            },
            steps,
            learning_rate: 1e-2,
            warmup_steps: 1,
            batch_size: 2,
            grad_accum: 1,
            checkpoint_every: 100,
            eval_every: 0,
            ..RunConfig::default()
        },
    }
}

fn tiny(dir: &Path) -> PathBuf {
    let model = dir.join("tiny.gguf");
    TinyLlama {
        context_length: 4096,
        ..TinyLlama::default()
    }
    .write(&model)
    .unwrap();
    model
}

#[test]
fn self_qa_examples_come_from_memory_facts_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = import(dir.path());
    let model = tiny(dir.path());
    let s = setup(dir.path(), model, vec![Strategy::SelfQa], 1);
    let (ctx, _rx, _c) = JobCtx::detached("dataset");

    // No facts yet: nothing, and the set says why.
    let empty = run::build_dataset(&store, &s, &ctx).unwrap();
    assert!(empty.stats.samples.is_empty(), "{:?}", empty.stats);
    assert!(
        empty
            .stats
            .self_qa_note
            .as_deref()
            .unwrap()
            .contains("no facts"),
        "{:?}",
        empty.stats.self_qa_note
    );

    add_fact(&store, 7, MemoryKind::Fact, "Jo lives in Lyon");
    add_fact(&store, 8, MemoryKind::Preference, "They love spicy ramen");
    let built = run::build_dataset(&store, &s, &ctx).unwrap();
    // My name (2 phrasings) + 2 per fact.
    assert_eq!(built.stats.samples["selfqa"], 6, "{:?}", built.stats);
    let set = dataset::load(&built.path).unwrap();
    // Self-QA pairs are about me, not a conversation: all in training.
    assert!(set.val.is_empty());
    let learned: Vec<String> = set
        .train
        .iter()
        .map(|e| {
            e.tokens
                .iter()
                .zip(&e.mask)
                .filter(|(t, m)| **m && **t < 256)
                .map(|(t, _)| *t as u8 as char)
                .collect()
        })
        .collect();
    assert!(
        learned.iter().any(|t| t.contains("I live in Lyon.")),
        "{learned:?}"
    );
    assert!(
        learned.iter().any(|t| t.contains("I love spicy ramen.")),
        "{learned:?}"
    );
    assert!(learned.iter().any(|t| t.contains("I'm Jo.")), "{learned:?}");
    // The questions are context, not learned.
    assert!(learned.iter().all(|t| !t.contains("Where do you live?")));
}

fn eval_opts(model: &Path, adapter: Option<String>) -> eval::Options {
    let mut engine = EngineConfig::for_model(model);
    engine.threads = 2;
    engine.n_ctx = 1024;
    eval::Options {
        adapter,
        limit: 4,
        reply_tokens: 12,
        engine,
    }
}

/// Build, train and evaluate in `dir` with `base`; returns the report.
fn pipeline(dir: &Path, store: &Store, base: PathBuf, steps: u64) -> eval::Report {
    let s = setup(
        dir,
        base.clone(),
        vec![Strategy::Adaptive, Strategy::Burst, Strategy::SelfQa],
        steps,
    );
    let (ctx, _rx, _c) = JobCtx::detached("train");
    let built = run::build_dataset(store, &s, &ctx).unwrap();
    eprintln!("{built}");
    let trained = run::train(store, &s, false, &ctx).unwrap();
    let adapter = trained.adapter.unwrap();

    // A wrong adapter id is refused by name, and changes nothing.
    let (ectx, _erx, _ec) = JobCtx::detached("eval");
    let err = eval::eval(store, &s, &eval_opts(&base, Some("a123".into())), &ectx).unwrap_err();
    assert!(err.to_string().contains("no adapter a123"), "{err}");
    assert!(eval::latest(&s.runs_dir).is_none());

    let report = eval::eval(store, &s, &eval_opts(&base, None), &ectx).unwrap();
    assert_eq!(report.adapter.as_deref(), Some(adapter.id.as_str()));
    assert_eq!(eval::latest(&s.runs_dir).as_ref(), Some(&report));
    report
}

fn check_shape(r: &eval::Report) {
    let p = &r.perplexity;
    assert_eq!(p.engine, "llama.cpp");
    assert!(p.examples > 0 && p.examples <= 4, "{p:?}");
    assert!(p.tokens > 0);
    assert!(p.base.is_finite() && p.base >= 1.0, "{p:?}");
    let a = p.adapter.unwrap();
    assert!(a.is_finite() && a >= 1.0);
    assert!(p.ratio.is_some());
    // The adapter changes what the model predicts.
    assert_ne!(p.base, a);

    let s = &r.style;
    assert!(s.replies > 0 && s.replies <= 4);
    for k in ["mean_length", "emoji_rate", "burst_mean", "question_rate"] {
        assert!(s.real.contains_key(k) && s.base.contains_key(k), "{k}");
        assert!(s.base_ratio.contains_key(k));
        assert!(s.adapter_ratio.as_ref().unwrap().contains_key(k));
    }
    assert!(
        s.real["emoji_rate"] > 0.0,
        "my replies hold emoji: {:?}",
        s.real
    );
    assert!(!s.samples.is_empty());

    // Memory QA: one question per fact and my name, each with provenance.
    let q = &r.memory_qa;
    assert!(q.note.is_none());
    assert_eq!(q.questions, 3, "{q:?}");
    assert!(q.adapter_correct.is_some());
    let cited = q
        .items
        .iter()
        .filter(|i| i.memory.as_deref().is_some_and(|m| m.starts_with("m:")))
        .count();
    assert_eq!(cited, 2, "{q:?}");
    assert!(q.items.iter().any(|i| i.expected == "I live in Lyon."));

    // Probes: none of them is in the data, all asked of both.
    let pr = &r.probes;
    assert_eq!(pr.questions, 10);
    assert!(pr.skipped.is_empty());
    assert_eq!(pr.items.len(), 10);
    assert!(pr.items.iter().all(|i| i.adapter.is_some()));

    assert_eq!(r.targets.len(), 2);
    assert!(r.json_path.is_file() && r.markdown_path.is_file());
    assert!(r.json_path.starts_with(r.markdown_path.parent().unwrap()));
    let md = std::fs::read_to_string(&r.markdown_path).unwrap();
    for section in [
        "## Targets",
        "## Perplexity",
        "## Style",
        "## Memory QA",
        "## Probes",
    ] {
        assert!(md.contains(section), "{section} missing:\n{md}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&r.json_path).unwrap()).unwrap();
    assert!(json["perplexity"]["base"].is_number());
    assert!(!r.headline().is_empty());
}

#[test]
fn eval_on_a_tiny_model_writes_the_whole_report() {
    let dir = tempfile::tempdir().unwrap();
    let store = import(dir.path());
    add_fact(&store, 7, MemoryKind::Fact, "Jo lives in Lyon");
    add_fact(&store, 8, MemoryKind::Preference, "They love spicy ramen");
    let model = tiny(dir.path());
    let report = pipeline(dir.path(), &store, model, 3);
    check_shape(&report);
}

#[test]
fn eval_refuses_a_set_without_held_out_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let store = import(dir.path());
    let model = tiny(dir.path());
    let mut s = setup(dir.path(), model.clone(), vec![Strategy::Adaptive], 1);
    s.dataset.validation = 0.0;
    let (ctx, _rx, _c) = JobCtx::detached("dataset");
    run::build_dataset(&store, &s, &ctx).unwrap();
    let err = eval::eval(&store, &s, &eval_opts(&model, None), &ctx).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no held-out conversations"), "{msg}");
    assert!(msg.contains("train.validation"), "{msg}");
}

/// Marked: the real SmolLM2 (skips when absent).
#[test]
fn eval_with_smollm2() {
    let Some(dir) = std::env::var_os("TWIN_MODELS_DIR") else {
        eprintln!("SKIPPED: TWIN_MODELS_DIR is not set (scripts/test.sh sets it)");
        return;
    };
    let model = PathBuf::from(dir).join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !model.is_file() {
        eprintln!(
            "SKIPPED: {} is absent; `bash scripts/fetch-models.sh` fetches it",
            model.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = import(tmp.path());
    add_fact(&store, 7, MemoryKind::Fact, "Jo lives in Lyon");
    add_fact(&store, 8, MemoryKind::Preference, "They love spicy ramen");
    let report = pipeline(tmp.path(), &store, model, 2);
    check_shape(&report);
    // A real model's perplexity on plain chat text is far from the vocabulary size.
    assert!(report.perplexity.base < 10_000.0, "{:?}", report.perplexity);
    eprintln!("{}", report.headline().join("\n"));
}
