//! `twin --batch dataset build` and `twin --batch train --base` through the
//! binary on tiny gemma3, qwen2 and qwen3 models: the training set is rendered
//! in each model's own chat template (gemma's built-in for a gemma model that
//! carries none, as Gemma 3 270M does; the model's ChatML for the qwens), two
//! steps train, and the adapter they export loads in llama.cpp over its base.

use std::path::Path;
use std::process::{Command, Output};

use twin::llm::direct::Direct;
use twin::llm::tiny::{IM_END, IM_START, TinyArch, TinyLlama};
use twin::store::Store;
use twin::train::dataset;

fn twin(home: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(args)
        .env("TWIN_HOME", home)
        .env_remove("TWIN_MODELS_DIR")
        .env_remove("TWIN_LOG")
        .output()
        .expect("run twin");
    assert_eq!(
        out.status.code(),
        Some(0),
        "twin {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn done(out: &Output) -> serde_json::Value {
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .expect("a line");
    assert_eq!(last["event"], "done", "{last}");
    last["summary"].clone()
}

fn export(dir: &Path) -> std::path::PathBuf {
    let mut s = String::new();
    for i in 0..48 {
        // A new window every 4 messages (two hours apart).
        let (h, m) = (1 + ((i % 16) / 4) * 2, i % 4);
        let t = format!("1/{}/21, {h}:0{m} AM", 5 + i / 16);
        let line = match i % 4 {
            0 => format!("{t} - Sam: are you up for a walk at {i}?\n"),
            1 => format!("{t} - Jo: yes!! give me {i} minutes\n"),
            2 => format!("{t} - Jo: bringing the dog\n"),
            _ => format!("{t} - Sam: great, see you\n"),
        };
        s.push_str(&line);
    }
    let path = dir.join("WhatsApp Chat with Sam.txt");
    std::fs::write(&path, s).unwrap();
    path
}

#[test]
fn train_on_gemma3_and_qwen_bases_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let chat = export(dir.path());
    for arch in [TinyArch::Gemma3, TinyArch::Qwen2, TinyArch::Qwen3] {
        let name = arch.name();
        let home = dir.path().join(format!("home-{name}"));
        let base = dir.path().join(format!("tiny-{name}.gguf"));
        TinyLlama {
            context_length: 2048,
            ..TinyLlama::of(arch)
        }
        .write(&base)
        .unwrap();
        let base_arg = base.to_str().unwrap();
        twin(
            &home,
            &["--batch", "ingest", chat.to_str().unwrap(), "--me", "Jo"],
        );
        let set = done(&twin(
            &home,
            &["--batch", "dataset", "build", "--base", base_arg],
        ));
        assert!(
            set["stats"]["train_examples"].as_u64().unwrap() > 0,
            "{name}: {set}"
        );
        let trained = done(&twin(
            &home,
            &["--batch", "train", "--base", base_arg, "--steps", "2"],
        ));
        assert_eq!(trained["steps"], 2, "{name}: {trained}");
        let loss = trained["final_loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{name}: {trained}");
        let adapter = trained["adapter"]["path"].as_str().unwrap().to_string();

        // The examples are in the model's template: gemma's turns, or ChatML.
        let store = Store::open(&home.join("data").join("store")).unwrap();
        let record = dataset::latest(&store).unwrap().unwrap();
        let data = dataset::load(&record.path).unwrap();
        drop(store);
        let e = &data.train[0];
        let text: String = e
            .tokens
            .iter()
            .filter(|t| **t < 256)
            .map(|t| *t as u8 as char)
            .collect();
        let learned: Vec<u32> = e
            .tokens
            .iter()
            .zip(&e.mask)
            .filter(|(_, m)| **m)
            .map(|(t, _)| *t)
            .collect();
        // <start_of_turn> / <|im_start|> open turns, <end_of_turn> / <|im_end|> end mine.
        assert!(e.tokens.contains(&(IM_START as u32)), "{name}: {text:?}");
        assert_eq!(learned.last(), Some(&(IM_END as u32)), "{name}");
        if arch == TinyArch::Gemma3 {
            assert_eq!(e.tokens[0], 259, "gemma sequences start with <bos>");
            assert!(text.contains("model\n"), "{name}: {text:?}");
        } else {
            assert!(text.contains("assistant\n"), "{name}: {text:?}");
        }

        // The adapter loads over its base in llama.cpp.
        let mut d = Direct::open(&base, false, 1).unwrap();
        d.set_adapter(Path::new(&adapter))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let logits = d.logits(&e.tokens[..8]).unwrap();
        assert!(logits.iter().all(|x| x.is_finite()), "{name}");
    }
}
