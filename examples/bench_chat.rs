//! The twin side of `scripts/bench-chat`: prompt and generation speed through
//! twin's engine at fixed lengths (like llama-bench), and the time to first
//! token of a follow-up turn with prefix reuse against a full re-prefill.
//! Prints one JSON object.
//!
//! cargo run --release --example bench_chat -- MODEL THREADS PROMPT_TOKENS GEN_TOKENS REPS

use std::path::PathBuf;

use twin::llm::{Engine, EngineConfig, GenerateRequest, Message, Sampling};

fn arg(n: usize, default: &str) -> String {
    std::env::args()
        .nth(n)
        .unwrap_or_else(|| default.to_string())
}

/// A user message whose rendered prompt is about `tokens` tokens long.
fn prompt_of(engine: &Engine, tokens: usize) -> Vec<Message> {
    let sentence = "The quick brown fox jumps over the lazy dog near the quiet river bank. ";
    let mut text = String::new();
    loop {
        let messages = vec![Message::user(text.clone() + "Summarise this.")];
        let n = engine.render(messages.clone()).expect("render").tokens;
        if n >= tokens {
            return messages;
        }
        let words: Vec<&str> = sentence.split_whitespace().collect();
        let need = tokens - n;
        if need > 16 {
            text.push_str(sentence);
        } else {
            text.push_str(words[need % words.len()]);
            text.push(' ');
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let model = PathBuf::from(arg(1, "SmolLM2-135M-Instruct.Q4_1.gguf"));
    let threads: usize = arg(2, "2").parse().unwrap();
    let p: usize = arg(3, "256").parse().unwrap();
    let n: u32 = arg(4, "128").parse().unwrap();
    let reps: usize = arg(5, "3").parse().unwrap();
    let mut config = EngineConfig::for_model(&model);
    config.threads = threads;
    config.n_ctx = 4096;
    config.sampling = Sampling {
        temperature: 0.0,
        seed: Some(1),
        ..Sampling::default()
    };
    let engine = Engine::start(config.clone());
    engine.load().expect("load the model");
    let messages = prompt_of(&engine, p);
    let (mut pp, mut tg, mut prompt_tokens) = (Vec::new(), Vec::new(), 0);
    for _ in 0..reps {
        // A fresh engine each time, so the prompt is evaluated in full.
        let e = Engine::start(config.clone());
        e.load().expect("load");
        let mut req = GenerateRequest::new(messages.clone());
        req.max_tokens = Some(n);
        req.ignore_eos = true;
        let r = e.generate(req).wait().expect("generate");
        prompt_tokens = r.stats.prompt_tokens;
        pp.push(r.stats.prompt_tokens_per_s);
        tg.push(r.stats.tokens_per_s);
    }

    // Follow-up turns: the same conversation's second turn, on the engine that
    // has the first in its cache, and on a fresh one.
    let first = vec![
        Message::system("You are a helpful assistant."),
        Message::user(messages[0].content.clone()),
    ];
    let (mut reuse, mut full, mut reused_tokens, mut follow_tokens) =
        (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..reps {
        let warm = Engine::start(config.clone());
        warm.load().expect("load");
        let mut req = GenerateRequest::new(first.clone());
        req.max_tokens = Some(32);
        let r1 = warm.generate(req).wait().expect("first turn");
        let mut second = first.clone();
        second.push(Message::assistant(r1.text));
        second.push(Message::user("And in one word?"));
        let mut req = GenerateRequest::new(second.clone());
        req.max_tokens = Some(1);
        let r2 = warm.generate(req).wait().expect("follow-up");
        reuse.push(r2.stats.ttft_ms as f64);
        reused_tokens = r2.stats.reused_tokens;
        follow_tokens = r2.stats.prompt_tokens;
        let cold = Engine::start(config.clone());
        cold.load().expect("load");
        let mut req = GenerateRequest::new(second);
        req.max_tokens = Some(1);
        let r3 = cold.generate(req).wait().expect("re-prefill");
        full.push(r3.stats.ttft_ms as f64);
    }
    println!(
        "{}",
        serde_json::json!({
            "threads": threads,
            "prompt_tokens": prompt_tokens,
            "gen_tokens": n,
            "pp_tok_s": median(pp),
            "tg_tok_s": median(tg),
            "followup_prompt_tokens": follow_tokens,
            "followup_reused_tokens": reused_tokens,
            "followup_ttft_ms_reuse": median(reuse),
            "followup_ttft_ms_full": median(full),
        })
    );
}
