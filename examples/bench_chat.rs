//! The twin side of `scripts/bench-chat`, one measurement per run so the script
//! can interleave it with llama-bench (machine load then falls on both alike).
//! Each prints one JSON object.
//!
//! ```text
//! bench_chat speed MODEL THREADS PROMPT_TOKENS GEN_TOKENS
//! bench_chat followup MODEL THREADS REPS
//! bench_chat retrieval HOME MODEL THREADS REPS
//! ```
//!
//! - `speed`: like one llama-bench repetition after its warm-up: a prompt of
//!   PROMPT_TOKENS evaluated on an empty cache (prompt tok/s), then GEN_TOKENS
//!   generated past end-of-turn (generation tok/s, at depth PROMPT_TOKENS), on an
//!   engine that ran the same prompt once before. Sampling is twin's default chain
//!   (`chat.*` defaults, fixed seed); `TWIN_BENCH_SAMPLING=greedy` picks the
//!   likeliest token instead.
//! - `followup`: a conversation's second turn with prefix reuse against the same
//!   turn evaluated from an empty cache, time to first token of each.
//! - `retrieval`: `twin chat`'s turn on the indexed store in HOME (real MiniLM
//!   query embedding + hybrid search, persona, prompt), timed from the question to
//!   the first token, against the engine's own time to first token for the very
//!   prompt that turn built (bare prompt evaluation); a fresh engine each
//!   repetition, so both evaluate the whole prompt.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use twin::jobs::{JobBody, JobCtx};
use twin::llm::chat::{self, Backend, ChatEngine, TurnRequest};
use twin::llm::{Engine, EngineConfig, GenerateRequest, Message, Sampling};

fn arg(n: usize, default: &str) -> String {
    std::env::args()
        .nth(n)
        .unwrap_or_else(|| default.to_string())
}

fn num<T: std::str::FromStr>(n: usize, default: &str) -> T {
    arg(n, default)
        .parse()
        .unwrap_or_else(|_| panic!("argument {n} must be a number"))
}

/// A user message whose rendered prompt is at least `tokens` tokens long.
fn prompt_of(engine: &Engine, tokens: usize) -> Vec<Message> {
    let sentence = "The quick brown fox jumps over the lazy dog near the quiet river bank. ";
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let mut text = String::new();
    loop {
        let messages = vec![Message::user(text.clone() + "Summarise this.")];
        let n = engine.render(messages.clone()).expect("render").tokens;
        if n >= tokens {
            return messages;
        }
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

fn sampling() -> Sampling {
    let greedy = std::env::var("TWIN_BENCH_SAMPLING").is_ok_and(|s| s == "greedy");
    Sampling {
        temperature: if greedy { 0.0 } else { 0.3 },
        seed: Some(1),
        ..Sampling::default()
    }
}

fn engine_config(model: &Path, threads: usize) -> EngineConfig {
    let mut config = EngineConfig::for_model(model);
    config.threads = threads;
    config.n_ctx = 4096;
    config.sampling = sampling();
    config
}

fn started(config: &EngineConfig) -> Engine {
    let engine = Engine::start(config.clone());
    engine.load().expect("load the model");
    engine
}

fn speed(model: &Path, threads: usize, p: usize, n: u32) -> serde_json::Value {
    let engine = started(&engine_config(model, threads));
    let messages = prompt_of(&engine, p);
    // Warm-up, as llama-bench does: the same prompt and a few tokens.
    let mut req = GenerateRequest::new(messages.clone());
    req.max_tokens = Some(4);
    req.fresh = true;
    engine.generate(req).wait().expect("warm-up");
    let mut req = GenerateRequest::new(messages);
    req.max_tokens = Some(n);
    req.ignore_eos = true;
    req.fresh = true;
    let r = engine.generate(req).wait().expect("generate");
    serde_json::json!({
        "threads": threads,
        "prompt_tokens": r.stats.evaluated_tokens,
        "gen_tokens": r.stats.generated_tokens,
        "pp_tok_s": r.stats.prompt_tokens_per_s,
        "tg_tok_s": r.stats.tokens_per_s,
        "sampling": if sampling().temperature == 0.0 { "greedy" } else { "default" },
    })
}

fn followup(model: &Path, threads: usize, reps: usize) -> serde_json::Value {
    let engine = started(&engine_config(model, threads));
    let question = prompt_of(&engine, 256).remove(0).content;
    let (mut reuse, mut full, mut reused_tokens, mut follow_tokens) =
        (Vec::new(), Vec::new(), 0, 0);
    for rep in 0..reps {
        // A different first turn each repetition, so nothing but the template
        // is left in the cache from the one before.
        let first = vec![
            Message::system(format!("You are a helpful assistant ({rep}).")),
            Message::user(question.clone()),
        ];
        let mut req = GenerateRequest::new(first.clone());
        req.max_tokens = Some(32);
        let r1 = engine.generate(req).wait().expect("first turn");
        let mut second = first;
        second.push(Message::assistant(r1.text));
        second.push(Message::user("And in one word?"));
        let mut req = GenerateRequest::new(second.clone());
        req.max_tokens = Some(1);
        let r2 = engine.generate(req).wait().expect("follow-up");
        reuse.push(r2.stats.ttft_ms as f64);
        reused_tokens = r2.stats.reused_tokens;
        follow_tokens = r2.stats.prompt_tokens;
        let mut req = GenerateRequest::new(second);
        req.max_tokens = Some(1);
        req.fresh = true;
        let r3 = engine.generate(req).wait().expect("re-prefill");
        full.push(r3.stats.ttft_ms as f64);
    }
    serde_json::json!({
        "threads": threads,
        "followup_prompt_tokens": follow_tokens,
        "followup_reused_tokens": reused_tokens,
        "followup_ttft_ms_reuse": median(reuse),
        "followup_ttft_ms_full": median(full),
    })
}

/// Questions the demo twin's memories can answer.
const QUESTIONS: &[&str] = &[
    "What did I say about my job?",
    "Which movies did I talk about?",
    "What do I like to do on weekends?",
    "Did I mention any pets?",
    "What music do I listen to?",
];

fn retrieval(home: &Path, model: &Path, threads: usize, reps: usize) -> serde_json::Value {
    let paths = twin::paths::Paths::under(home, "--home");
    let config = twin::config::load(&paths.config_file(), &|k| std::env::var(k).ok())
        .expect("read the config");
    let models = config.models_dir(&paths);
    let store = Arc::new(twin::store::Store::open(&paths.store_dir()).expect("open the store"));
    let (memories, notes) =
        twin::memory::open_configured(store.clone(), &config.config, &models).expect("memory");
    assert!(
        notes.is_empty() && !memories.is_empty(),
        "{} needs an index built with the real embedding model: {notes:?}",
        home.display()
    );
    let base = config.config.chat.system_prompt.clone();
    let mut engine_config = engine_config(model, threads);
    engine_config.max_tokens = 4;
    // The embedding model loads on the first search: not part of a turn's time.
    chat::Retriever::retrieve(&memories, QUESTIONS[0], &[]).expect("warm-up search");

    let (mut with, mut bare, mut retrieve, mut prompt_tokens, mut recalled) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let engine = ChatEngine::start(engine_config.clone());
        if let Backend::Local(e) = &engine.backend {
            e.load().expect("load the model");
        }
        let question = QUESTIONS[rep % QUESTIONS.len()];
        let (ctx, mut events, _) = JobCtx::detached("chat");
        let t0 = Instant::now();
        let (mut first_token, mut recalled_at, mut n_recalled) = (None, None, 0);
        let (engine, store, base, memories) = (&engine, &store, &base, &memories);
        let summary = std::thread::scope(|s| {
            // The context moves into the turn; its events end when the turn does.
            let turn = s.spawn(move || {
                let request = TurnRequest {
                    question: question.to_string(),
                    ..TurnRequest::default()
                };
                chat::turn(&ctx, engine, store, base, memories, request)
            });
            while let Some(ev) = events.blocking_recv() {
                match ev.body {
                    JobBody::Progress { done, unit, .. } if unit == "memories recalled" => {
                        recalled_at.get_or_insert_with(|| t0.elapsed());
                        n_recalled = done;
                    }
                    JobBody::Token { .. } => {
                        first_token.get_or_insert_with(|| t0.elapsed());
                    }
                    _ => {}
                }
            }
            turn.join().expect("the turn thread")
        })
        .expect("chat turn");
        let first = first_token.expect("the reply streamed a token");
        with.push(first.as_secs_f64() * 1000.0);
        bare.push(summary.stats.ttft_ms as f64);
        retrieve.push(recalled_at.map_or(0.0, |d| d.as_secs_f64() * 1000.0));
        prompt_tokens.push(summary.stats.prompt_tokens as f64);
        recalled.push(n_recalled as f64);
    }
    let (w, b) = (median(with), median(bare));
    serde_json::json!({
        "threads": threads,
        "memories": memories.len(),
        "recalled": median(recalled),
        "prompt_tokens": median(prompt_tokens),
        "retrieve_ms": median(retrieve),
        "ttft_ms_retrieval": w,
        "ttft_ms_bare": b,
    })
}

fn main() {
    let what = arg(1, "");
    let out = match what.as_str() {
        "speed" => speed(
            &PathBuf::from(arg(2, "")),
            num(3, "2"),
            num(4, "512"),
            num(5, "128"),
        ),
        "followup" => followup(&PathBuf::from(arg(2, "")), num(3, "2"), num(4, "3")),
        "retrieval" => retrieval(
            &PathBuf::from(arg(2, "")),
            &PathBuf::from(arg(3, "")),
            num(4, "2"),
            num(5, "3"),
        ),
        _ => {
            eprintln!(
                "usage: bench_chat speed MODEL THREADS PROMPT_TOKENS GEN_TOKENS\n       bench_chat followup MODEL THREADS REPS\n       bench_chat retrieval HOME MODEL THREADS REPS"
            );
            std::process::exit(2);
        }
    };
    println!("{out}");
}
