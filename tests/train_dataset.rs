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
