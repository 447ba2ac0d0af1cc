//! Training sets from an imported WhatsApp export, tokenized by a tiny
//! synthesized model through llama.cpp: only my words and my end-of-turn token
//! are learned, other people's names and numbers are scrubbed, the split is by
//! conversation, and the same store gives the same content hash.

use std::collections::HashSet;
use std::path::Path;

use twin::ingest::pipeline::{self, Options, Zone};
use twin::jobs::JobCtx;
use twin::llm::tiny::{IM_END, TinyLlama};
use twin::store::{Store, Tree};
use twin::train::dataset::{self, Strategy};

fn export(dir: &Path, friend: &str, n: usize) -> std::path::PathBuf {
    let mut s = String::new();
    for i in 0..n {
        // A new window every 4 messages (two hours apart), 16 messages a day.
        let (h, m) = (1 + ((i % 16) / 4) * 2, i % 4);
        let t = format!("1/{}/21, {h}:0{m} AM", 5 + i / 16);
        let line = match i % 4 {
            0 => format!("{t} - {friend}: hey, call me on +44 7700 900{i:03}?\n"),
            1 => format!("{t} - Jo: sure {friend}, give me {i} minutes\n"),
            2 => format!("{t} - Jo: busy till then!\n"),
            _ => format!("{t} - {friend}: ok see you\n"),
        };
        s.push_str(&line);
    }
    let path = dir.join(format!("WhatsApp Chat with {friend}.txt"));
    std::fs::write(&path, s).unwrap();
    path
}

fn setup(dir: &Path) -> (Store, std::path::PathBuf) {
    let a = export(dir, "Bob Smith", 40);
    let b = export(dir, "Carol Jones", 40);
    let c = export(dir, "Dan Brown", 40);
    let store = Store::open(&dir.join("store")).unwrap();
    let (ctx, _rx, _c) = JobCtx::detached("ingest");
    let opts = Options {
        paths: vec![a, b, c],
        format: None,
        me: vec!["Jo".into()],
        zone: Zone::parse("UTC").unwrap(),
        window_gap_ms: 30 * 60_000,
        voice: None,
    };
    pipeline::run(&store, &opts, &ctx).unwrap();
    let model = dir.join("tiny.gguf");
    TinyLlama {
        context_length: 4096,
        ..TinyLlama::default()
    }
    .write(&model)
    .unwrap();
    (store, model)
}

fn options() -> dataset::Options {
    dataset::Options {
        strategies: vec![
            Strategy::Conversational,
            Strategy::Adaptive,
            Strategy::Burst,
        ],
        max_tokens: 1024,
        validation: 0.34,
        system_prompt: "You are Jo.".into(),
        seed: 3,
        never_train: Vec::new(),
    }
}

#[test]
fn a_training_set_learns_only_my_words() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = setup(dir.path());
    let (ctx, _rx, _c) = JobCtx::detached("dataset");
    let out = dir.path().join("sets");
    let set = dataset::build(&store, &model, &out, &options(), &ctx).unwrap();
    let s = &set.stats;
    eprintln!("{s:?}");
    assert_eq!(s.windows, 30);
    assert_eq!(s.samples["conversational"], 30);
    assert_eq!(s.samples["adaptive"], 30);
    assert_eq!(s.samples["burst"], 30);
    assert_eq!(s.train_examples + s.val_examples, 90);
    assert!(s.val_examples > 0 && s.train_examples > 0);
    assert!(s.scrubbed >= 3, "names and numbers: {}", s.scrubbed);

    // The learned tokens spell my turns, each ending with <|im_end|>.
    for e in set.train.iter().chain(&set.val) {
        let mut learned = Vec::new();
        for (t, m) in e.tokens.iter().zip(&e.mask) {
            if *m {
                learned.push(*t);
            }
        }
        assert_eq!(learned.last(), Some(&(IM_END as u32)));
        let text: String = learned
            .iter()
            .filter(|t| **t < 256)
            .map(|t| *t as u8 as char)
            .collect();
        assert!(text.contains("busy till then!"), "{text:?}");
        assert!(
            !text.contains("ok see you"),
            "their words are not learned: {text:?}"
        );
        assert!(
            !text.contains("assistant"),
            "template is not learned: {text:?}"
        );
        let all: String = e
            .tokens
            .iter()
            .filter(|t| **t < 256)
            .map(|t| *t as u8 as char)
            .collect();
        assert!(all.contains("You are Jo."));
        for pii in ["Bob", "Carol", "Dan", "7700"] {
            assert!(!all.contains(pii), "{pii} leaked: {all:?}");
        }
    }
    // No conversation on both sides of the split.
    let train: HashSet<u64> = set.train.iter().map(|e| e.conversation).collect();
    let val: HashSet<u64> = set.val.iter().map(|e| e.conversation).collect();
    assert!(train.is_disjoint(&val));

    // Saved, recorded, and the same store gives the same set.
    assert!(out.join(format!("{}.json", set.hash)).is_file());
    assert_eq!(store.count(Tree::Datasets).unwrap(), 1);
    let again = dataset::build(&store, &model, &out, &options(), &ctx).unwrap();
    assert_eq!(again.hash, set.hash);
    assert_eq!(store.count(Tree::Datasets).unwrap(), 1);
    let latest = dataset::latest(&store).unwrap().unwrap();
    assert_eq!(latest.hash, set.hash);
    assert_eq!(dataset::load(&latest.path).unwrap().train, set.train);
}

#[test]
fn long_windows_are_cut_and_overlong_examples_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = setup(dir.path());
    let (ctx, _rx, _c) = JobCtx::detached("dataset");
    let mut o = options();
    o.max_tokens = 90;
    let set = dataset::build(&store, &model, &dir.path().join("sets"), &o, &ctx).unwrap();
    assert!(set.stats.too_long > 0);
    assert!(
        set.train
            .iter()
            .chain(&set.val)
            .all(|e| e.tokens.len() <= 90)
    );
}

#[test]
fn a_damaged_dataset_file_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.json");
    std::fs::write(&p, b"{not json").unwrap();
    let err = dataset::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("x.json") && err.contains("twin dataset build"),
        "{err}"
    );
}

/// The conversation with `name` (a one-to-one chat in these exports).
fn conversation_with(store: &Store, name: &str) -> u64 {
    let c = twin::ingest::contacts::find(store, name).unwrap().unwrap();
    store
        .scan::<twin::ingest::records::Conversation>([])
        .map(|r| r.unwrap().1)
        .find(|conv| conv.participants.contains(&c.id))
        .unwrap()
        .id
}

#[test]
fn never_train_leaves_out_every_session_with_them_from_store_list_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = setup(dir.path());
    let (ctx, _rx, _c) = JobCtx::detached("dataset");
    let bob = conversation_with(&store, "Bob Smith");
    let carol = conversation_with(&store, "Carol Jones");

    // Bob through the stored list (the CLI and the Ingest pane), Carol
    // through privacy.never_train in config.
    let r = twin::privacy::never_train::add(&store, "Bob Smith", &[]).unwrap();
    assert!(r.changed.unwrap().contains("Bob Smith"));
    let mut o = options();
    o.never_train = vec!["Carol Jones".into()];
    let set = dataset::build(&store, &model, &dir.path().join("sets"), &o, &ctx).unwrap();
    let s = &set.stats;
    assert_eq!(s.windows, 30);
    assert_eq!(s.never_train_windows, 20);
    assert_eq!(s.samples["conversational"], 10);
    // Neither their turns (context) nor my replies to them (learned): not one
    // example comes from those conversations.
    for e in set.train.iter().chain(&set.val) {
        assert!(e.conversation != bob && e.conversation != carol);
    }
    // The list says where each entry comes from; you cannot be on it.
    let list = twin::privacy::never_train::report(&store, &o.never_train, None).unwrap();
    let from: Vec<(&str, &str)> = list
        .contacts
        .iter()
        .map(|e| (e.name.as_str(), e.from))
        .collect();
    assert!(from.contains(&("Bob Smith", "store")) && from.contains(&("Carol Jones", "config")));
    assert!(twin::privacy::never_train::add(&store, "Jo", &[]).is_err());
    let err = twin::privacy::never_train::remove(&store, "Carol Jones", &o.never_train, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.toml"), "{err}");
    let err = twin::privacy::never_train::add(&store, "Nobody", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("twin contacts"), "{err}");

    // Taken off the list, Bob trains again.
    twin::privacy::never_train::remove(&store, "Bob Smith", &[], "c.toml").unwrap();
    let set = dataset::build(&store, &model, &dir.path().join("sets"), &options(), &ctx).unwrap();
    assert_eq!(set.stats.never_train_windows, 0);
    assert!(
        set.train
            .iter()
            .chain(&set.val)
            .any(|e| e.conversation == bob)
    );
}

#[test]
fn forgetting_a_contact_marks_adapters_trained_on_them_stale_and_drops_their_sets() {
    use twin::train::registry::{self, AdapterRecord};
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = setup(dir.path());
    let (ctx, _rx, _c) = JobCtx::detached("dataset");
    let set = dataset::build(&store, &model, &dir.path().join("sets"), &options(), &ctx).unwrap();
    let set_file = dir.path().join("sets").join(format!("{}.json", set.hash));
    assert!(set_file.is_file());
    let adapter = |id: &str, hash: &str| AdapterRecord {
        id: id.into(),
        path: dir.path().join(format!("{id}.gguf")),
        base: model.clone(),
        base_hash: "b".into(),
        dataset_hash: hash.into(),
        config: Default::default(),
        steps: 2,
        final_loss: None,
        val_loss: None,
        run: "r1".into(),
        parent: None,
        created_ms: 1,
        active: true,
        stale: false,
        stale_reason: None,
    };
    registry::add_adapter(&store, &adapter("a1", &set.hash)).unwrap();
    registry::add_adapter(&store, &adapter("a2", "another set")).unwrap();

    twin::privacy::forget::register(Box::new(registry::ForgetCascade));
    let bob = twin::ingest::contacts::find(&store, "Bob Smith")
        .unwrap()
        .unwrap();
    let zone = Zone::parse("UTC").unwrap();
    let plan = twin::privacy::forget::plan(&store, &bob, zone).unwrap();
    assert_eq!(plan.removed["adapters marked stale"], 1);
    assert_eq!(plan.named["stale_adapters"], vec!["a1".to_string()]);
    assert!(
        !registry::adapters(&store).unwrap()[0].stale,
        "a plan changes nothing"
    );

    let r = twin::privacy::forget::apply(&store, &bob, zone, 30 * 60_000, &ctx).unwrap();
    assert_eq!(r.named["stale_adapters"], vec!["a1".to_string()]);
    assert_eq!(r.removed["training sets"], 1);
    let shown = r.to_string();
    assert!(
        shown.contains("a1") && shown.contains("twin train"),
        "{shown}"
    );
    let all = registry::adapters(&store).unwrap();
    assert!(all[0].stale && !all[1].stale);
    let reason = all[0].stale_reason.clone().unwrap();
    assert!(
        reason.contains("forgot") && !reason.contains("Bob"),
        "{reason}"
    );
    // `twin adapters` shows it, with the reason and the retrain.
    let listed = twin::train::run::adapters(&store, &twin::train::run::AdaptersCmd::List)
        .unwrap()
        .to_string();
    assert!(
        listed.contains("stale") && listed.contains(&reason),
        "{listed}"
    );
    assert!(listed.contains("twin dataset build"), "{listed}");
    // Their training set is gone, file and record; a new build has none of them.
    assert!(!set_file.exists());
    assert!(dataset::latest(&store).unwrap().is_none());
    let again = dataset::build(&store, &model, &dir.path().join("sets"), &options(), &ctx).unwrap();
    assert_eq!(again.stats.windows, 20);
}
