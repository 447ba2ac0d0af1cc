//! Memory end to end on a real ingest: episodes and note chunks derived from a
//! WhatsApp export and a Markdown note, hybrid search, forget, pin, edit, the
//! index persisted, reloaded, repaired after a crash and after damage, and a
//! change of embedding model refused until `index rebuild`. The deterministic
//! word-hash embedder stands in for MiniLM here (the real model has its own
//! marked test below).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use twin::ingest::pipeline::{self, Options};
use twin::jobs::JobCtx;
use twin::memory::embed::{Embedder, HashEmbedder};
use twin::memory::{Memories, MemoryKind, Query, build};
use twin::store::{Store, Tree};

const CHAT: &str = "\
12/03/2023, 09:00 - Alice: are we still going hiking in the Alps on saturday?
12/03/2023, 09:01 - Sam: yes! I booked the hut near Zermatt
12/03/2023, 09:02 - Alice: amazing, bring the red tent
12/03/2023, 09:05 - Sam: will do, and my new boots
14/03/2023, 18:00 - Alice: my dentist appointment moved to monday
14/03/2023, 18:03 - Sam: ugh dentists. good luck
20/04/2023, 20:00 - Alice: did you finish the tax return?
20/04/2023, 20:10 - Sam: not yet, the accountant needs receipts
";

const NOTE: &str = "# Recipes\n\nnotes from the kitchen\n\n## Pancakes\n\nflour, milk, two eggs, a pinch of salt\n\n## Risotto\n\narborio rice, parmesan, white wine, stock\n";

fn home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("WhatsApp Chat with Alice.txt"), CHAT).unwrap();
    std::fs::write(input.join("recipes.md"), NOTE).unwrap();
    (dir, input)
}

fn ingest(store: &Store, input: &Path) {
    let cfg = twin::config::load_str(Path::new("c.toml"), None, &|_| None).unwrap();
    let opts = Options::from_config(
        vec![input.to_path_buf()],
        None,
        vec!["Sam".into()],
        &cfg.config,
    )
    .unwrap();
    let (ctx, _rx, _c) = JobCtx::detached("ingest");
    pipeline::run(store, &opts, &ctx).unwrap();
}

fn open(store: &Arc<Store>) -> Memories {
    Memories::open(store.clone(), Box::new(HashEmbedder::new(64)), 180.0).unwrap()
}

fn built(dir: &Path, input: &Path) -> (Arc<Store>, Memories) {
    let store = Arc::new(Store::open(&dir.join("data/store")).unwrap());
    ingest(&store, input);
    let mem = open(&store);
    let (ctx, _rx, _c) = JobCtx::detached("index");
    build::build(&mem, &ctx).unwrap();
    (store, mem)
}

fn search(mem: &Memories, text: &str) -> Vec<twin::memory::Hit> {
    mem.search(&Query {
        text: text.into(),
        k: 5,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn episodes_and_chunks_are_searchable_with_provenance() {
    let (dir, input) = home();
    let (store, mem) = built(dir.path(), &input);
    let kinds: Vec<MemoryKind> = mem
        .list(&Query::default(), 100)
        .unwrap()
        .iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == MemoryKind::Episode).count(),
        3,
        "{kinds:?}"
    );
    assert!(kinds.iter().filter(|k| **k == MemoryKind::Document).count() >= 3);
    assert_eq!(store.count(Tree::Vectors).unwrap() as usize, mem.len());

    let hits = search(&mem, "hiking trip to the Alps");
    let top = &hits[0].memory;
    assert_eq!(top.kind, MemoryKind::Episode);
    assert!(top.text.contains("Zermatt"), "{}", top.text);
    assert_eq!(top.provenance.len(), 4);
    assert!(hits[0].vector_rank.is_some() && hits[0].text_rank.is_some());

    let hits = search(&mem, "pancakes recipe eggs");
    assert!(
        hits[0].memory.title.contains("Pancakes"),
        "{}",
        hits[0].memory.title
    );

    // Filters apply: only documents, only a time range.
    let docs = mem
        .search(&Query {
            text: "Alps dentist pancakes".into(),
            k: 10,
            kinds: vec![MemoryKind::Document],
            ..Default::default()
        })
        .unwrap();
    assert!(docs.iter().all(|h| h.memory.kind == MemoryKind::Document));
    let april = chrono::NaiveDate::from_ymd_opt(2023, 4, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let later = mem
        .search(&Query {
            text: "tax dentist hiking".into(),
            k: 10,
            kinds: vec![MemoryKind::Episode],
            since_ms: Some(april.and_utc().timestamp_millis()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(later.len(), 1);
    assert!(later[0].memory.text.contains("tax"));
}

#[test]
fn rebuilding_twice_changes_nothing_and_a_grown_export_adds_only_new() {
    let (dir, input) = home();
    let (store, mem) = built(dir.path(), &input);
    let before = mem.len();
    let (ctx, _rx, _c) = JobCtx::detached("index");
    let again = build::build(&mem, &ctx).unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(mem.len(), before);
    drop(mem);
    // A later export of the same chat with one more day.
    let mut grown = CHAT.to_string();
    grown.push_str("01/05/2023, 10:00 - Alice: found a flat in Lisbon!\n");
    std::fs::write(input.join("WhatsApp Chat with Alice.txt"), grown).unwrap();
    ingest(&store, &input);
    let mem = open(&store);
    let r = build::build(&mem, &ctx).unwrap();
    assert_eq!(r.written, 1, "{r:?}");
    assert_eq!(mem.len(), before + 1);
    assert!(
        search(&mem, "flat Lisbon")[0]
            .memory
            .text
            .contains("Lisbon")
    );
}

#[test]
fn forget_removes_from_search_store_and_training_and_pins_edits_stick() {
    let (dir, input) = home();
    let (store, mem) = built(dir.path(), &input);
    let dentist = search(&mem, "dentist appointment")[0].memory.clone();
    assert!(dentist.text.contains("dentist"));
    let vectors = store.count(Tree::Vectors).unwrap();
    mem.forget(dentist.id).unwrap();
    assert!(mem.get(dentist.id).unwrap().is_none());
    assert_eq!(store.count(Tree::Vectors).unwrap(), vectors - 1);
    assert!(
        search(&mem, "dentist appointment")
            .iter()
            .all(|h| h.id != dentist.id)
    );
    let forgotten = Memories::forgotten_messages(&store);
    for p in &dentist.provenance {
        assert!(forgotten.contains(&p.message_key().unwrap()));
    }
    // ...and the training set builder leaves those messages out.
    use twin::train::dataset::{Strategy, collect};
    let (ctx, _rx, _c) = JobCtx::detached("dataset");
    let (samples, _) = collect(
        &store,
        &[
            Strategy::Conversational,
            Strategy::Adaptive,
            Strategy::Burst,
        ],
        &ctx,
    )
    .unwrap();
    assert!(!samples.is_empty());
    let text = format!("{samples:?}");
    assert!(!text.contains("dentist"), "{text}");
    assert!(text.contains("Zermatt"));
    // Its sources stay excluded from training even if a later build derives
    // the window again.
    let hike = search(&mem, "hiking Alps")[0].memory.clone();
    mem.set_pinned(hike.id, true).unwrap();
    let edited = mem
        .edit(
            hike.id,
            None,
            "Hiking trip to Zermatt with Alice, March 2023".into(),
        )
        .unwrap();
    assert!(edited.edited && edited.pinned);
    assert_eq!(mem.importance_of(&edited), 1.0);
    // A rebuild never overwrites an edit.
    let (ctx, _rx, _c) = JobCtx::detached("index");
    build::build(&mem, &ctx).unwrap();
    assert_eq!(
        mem.get(hike.id).unwrap().unwrap().text,
        "Hiking trip to Zermatt with Alice, March 2023"
    );
    // Short ids resolve.
    let short = &twin::memory::show_id(hike.id)[..8];
    assert_eq!(mem.resolve(short).unwrap(), hike.id);
    assert!(mem.resolve("zz").is_err());
}

#[test]
fn index_persists_reloads_catches_up_after_a_crash_and_repairs_damage() {
    let (dir, input) = home();
    let (store, mem) = built(dir.path(), &input);
    let n = mem.len();
    let gen0 = mem.state().generation;
    drop(mem); // saves the dump
    let ix = dir.path().join("data/index");
    assert!(ix.join("vectors.json").exists());

    // Reload: same generation, nothing rebuilt.
    let mem = open(&store);
    assert_eq!(mem.state().generation, gen0);
    assert_eq!(
        search(&mem, "hiking Alps")[0].memory.kind,
        MemoryKind::Episode
    );

    // "Crash" mid-indexing: new memories reach the store, the dump is not
    // rewritten (leak the handle so Drop cannot save).
    let extra = twin::memory::NewMemory {
        id: 77,
        kind: MemoryKind::Fact,
        title: String::new(),
        text: "Sam is allergic to peanuts".into(),
        contacts: vec![],
        conversation: None,
        start_ms: 0,
        end_ms: 0,
        provenance: vec![],
        source_hash: 1,
        importance: 0.7,
    };
    mem.upsert(vec![extra], None).unwrap();
    std::mem::forget(mem);
    let store = {
        // The leaked handle holds the store's Arc; the lock is per process, so
        // reopen through the same Arc.
        store
    };
    let mem = open(&store);
    assert_eq!(mem.len(), n + 1);
    assert_eq!(mem.state().generation, gen0, "caught up, not rebuilt");
    assert_eq!(search(&mem, "peanut allergy allergic")[0].id, 77);
    drop(mem);

    // Damage the dump: it is rebuilt from the vectors tree.
    let data = ix.join("vectors.hnsw.data");
    let mut bytes = std::fs::read(&data).unwrap();
    let len = bytes.len();
    bytes.truncate(len / 2);
    std::fs::write(&data, bytes).unwrap();
    let mem = open(&store);
    assert_eq!(mem.state().generation, gen0 + 1);
    assert_eq!(search(&mem, "peanut allergy allergic")[0].id, 77);
    drop(mem);
    std::fs::remove_dir_all(&ix).unwrap();
    let mem = open(&store);
    assert_eq!(
        search(&mem, "hiking Alps")[0].memory.kind,
        MemoryKind::Episode
    );
}

#[test]
fn another_embedding_model_is_refused_until_rebuild() {
    let (dir, input) = home();
    let (store, mem) = built(dir.path(), &input);
    let n = mem.len();
    drop(mem);
    let other = Memories::open(store.clone(), Box::new(HashEmbedder::new(32)), 180.0).unwrap();
    let stored = other.model_mismatch().expect("mismatch noticed");
    assert!(stored.contains("64"), "{stored}");
    // Words still find things; vectors are not mixed.
    assert!(!search(&other, "dentist").is_empty());
    let err = other
        .upsert(
            vec![twin::memory::NewMemory {
                id: 5,
                kind: MemoryKind::Fact,
                title: String::new(),
                text: "x".into(),
                contacts: vec![],
                conversation: None,
                start_ms: 0,
                end_ms: 0,
                provenance: vec![],
                source_hash: 0,
                importance: 0.5,
            }],
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("twin index rebuild"), "{err}");
    other.rebuild(false, None).unwrap();
    assert!(other.model_mismatch().is_none());
    assert_eq!(other.state().dim, 32);
    assert_eq!(store.count(Tree::Vectors).unwrap() as usize, n);
    assert!(search(&other, "hiking Alps")[0].vector_rank.is_some());
}

/// The word-hash embedder, slowed to a model's pace, so the job's throttled
/// progress events can show each embedded batch.
struct Slow(HashEmbedder);

impl Embedder for Slow {
    fn id(&self) -> &str {
        self.0.id()
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, twin::memory::embed::EmbedError> {
        std::thread::sleep(std::time::Duration::from_millis(150));
        self.0.embed(texts)
    }
}

#[test]
fn a_build_reports_progress_per_embedded_batch_of_memories() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // One note of 150 sections: 150 chunks from a single source, so progress
    // counted in sources alone would sit still while they are embedded.
    let note: String = (0..150)
        .map(|i| {
            format!(
                "## Section {i}\n\nparagraph number {i} about topic {}\n\n",
                i % 7
            )
        })
        .collect();
    std::fs::write(input.join("big.md"), format!("# Big\n\n{note}")).unwrap();
    let store = Arc::new(Store::open(&dir.path().join("data/store")).unwrap());
    ingest(&store, &input);
    let mem = Memories::open(store.clone(), Box::new(Slow(HashEmbedder::new(64))), 180.0).unwrap();
    let (ctx, mut rx, _c) = JobCtx::detached("index");
    let report = build::build(&mem, &ctx).unwrap();
    assert!(report.written >= 150, "{report:?}");
    let mut done = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let twin::jobs::JobBody::Progress {
            done: d,
            total,
            unit,
            ..
        } = ev.body
            && unit == "memories"
        {
            assert_eq!(total, Some(report.written), "total memories known up front");
            done.push(d);
        }
    }
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert_eq!(done.last(), Some(&report.written), "{done:?}");
    let between = done
        .iter()
        .filter(|d| **d > 0 && **d < report.written)
        .count();
    assert!(between >= 2, "progress moved per batch: {done:?}");
}

#[test]
fn topics_entities_and_biography() {
    let (dir, input) = home();
    let (_store, mem) = built(dir.path(), &input);
    let l1 = twin::memory::topics::compute(&mem, None).unwrap();
    assert!(!l1.topics.is_empty());
    assert!(l1.biography.contains("I am Sam"), "{}", l1.biography);
    assert!(l1.biography.contains("Alice"));
    let stored = twin::memory::topics::L1::load(mem.store())
        .unwrap()
        .unwrap();
    assert_eq!(stored.topics, l1.topics);
}

/// all-MiniLM-L6-v2 through llama.cpp against sentence-transformers' vectors
/// for the same sentences (tests/fixtures/memory/minilm_reference.json, made
/// by scripts/minilm-reference.py): cosine >= 0.99 each.
#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = std::env::var_os("TWIN_MODELS_DIR").map(PathBuf::from) else {
        eprintln!(
            "skipped: TWIN_MODELS_DIR is not set (scripts/test.sh sets it after fetching the models)"
        );
        return;
    };
    if !dir.join("all-MiniLM-L6-v2/model.safetensors").exists() {
        eprintln!(
            "skipped: all-MiniLM-L6-v2 is not in {} (bash scripts/fetch-models.sh)",
            dir.display()
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let gguf = out.path().join("minilm.gguf");
    twin::memory::convert::bert_to_gguf(&dir.join("all-MiniLM-L6-v2"), &gguf).unwrap();
    let e = twin::memory::embed::LlamaEmbedder::load(&gguf, 2).unwrap();
    assert_eq!(e.dim(), 384);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/memory/minilm_reference.json").unwrap(),
    )
    .unwrap();
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let got = e.embed(&texts).unwrap();
    let mut worst = 1.0f32;
    for (i, item) in items.iter().enumerate() {
        let want: Vec<f32> = item["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cos = twin::memory::embed::dot(&got[i], &want);
        assert!(cos >= 0.99, "{:?}: cosine {cos}", texts[i]);
        worst = worst.min(cos);
    }
    eprintln!(
        "MiniLM vs sentence-transformers: lowest cosine {worst:.6} over {} sentences",
        texts.len()
    );
    // Batching does not change a vector.
    let one = e.embed(&texts[..1]).unwrap();
    assert!(twin::memory::embed::dot(&one[0], &got[0]) > 0.9999);

    // The bfloat16 conversion (what twin picks on AVX512-BF16 machines) gives
    // the same vectors up to rounding, whichever ggml runs it.
    let bf16 = out.path().join("minilm.bf16.gguf");
    twin::memory::convert::bert_to_gguf_as(
        &dir.join("all-MiniLM-L6-v2"),
        &bf16,
        twin::memory::convert::Weights::Bf16,
    )
    .unwrap();
    assert!(std::fs::metadata(&bf16).unwrap().len() < std::fs::metadata(&gguf).unwrap().len());
    let e16 = twin::memory::embed::LlamaEmbedder::load(&bf16, 2).unwrap();
    let got16 = e16.embed(&texts).unwrap();
    let mut worst16 = 1.0f32;
    for (a, b) in got.iter().zip(&got16) {
        worst16 = worst16.min(twin::memory::embed::dot(a, b));
    }
    eprintln!(
        "MiniLM bf16 vs f32 weights: lowest cosine {worst16:.6}; twin picks {:?} here",
        twin::memory::convert::Weights::preferred()
    );
    assert!(
        worst16 > 0.999,
        "bf16 weights moved a vector: cosine {worst16}"
    );
}
