//! The real default chat model, SmolLM2-135M-Instruct (Q4_1). It is fetched by
//! `bash scripts/fetch-models.sh` (scripts/test.sh runs it into
//! `$TWIN_MODELS_DIR`); without it these tests skip and say why.

mod common;

use std::path::PathBuf;

use twin::llm::{Engine, EngineConfig, GenerateRequest, Message, Sampling};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model() -> Option<PathBuf> {
    common::real_model(MODEL)
}

#[test]
fn smollm2_holds_a_short_coherent_conversation() {
    let Some(path) = model() else { return };
    let mut config = EngineConfig::for_model(&path);
    config.max_tokens = 64;
    config.sampling = Sampling {
        temperature: 0.0,
        seed: Some(1),
        ..Sampling::default()
    };
    let engine = Engine::start(config);
    let info = engine.load().unwrap();
    assert_eq!(info.architecture.as_deref(), Some("llama"));
    assert_eq!(info.template, "chatml");

    let mut messages = vec![Message::system(
        "You are a helpful assistant. Answer in one short sentence.",
    )];
    let mut stats = Vec::new();
    for question in [
        "What is the capital of France?",
        "And what language do people speak there?",
    ] {
        messages.push(Message::user(question));
        let reply = engine
            .generate(GenerateRequest::new(messages.clone()))
            .wait()
            .unwrap();
        eprintln!("Q: {question}\nA: {}", reply.text.trim());
        let words = reply.text.split_whitespace().count();
        assert!(words >= 2, "a reply of words: {:?}", reply.text);
        assert!(
            reply.text.chars().filter(|c| c.is_alphabetic()).count() * 2
                > reply.text.chars().filter(|c| !c.is_whitespace()).count(),
            "mostly letters, not noise: {:?}",
            reply.text
        );
        stats.push(reply.stats.clone());
        messages.push(Message::assistant(reply.text));
    }
    let text = messages
        .iter()
        .map(|m| m.content.to_lowercase())
        .collect::<String>();
    assert!(
        text.contains("paris"),
        "the capital of France is Paris: {text}"
    );
    assert!(
        stats[1].reused_tokens >= stats[0].prompt_tokens,
        "turn two reuses turn one's prompt: {stats:?}"
    );
    for (i, s) in stats.iter().enumerate() {
        eprintln!(
            "SmolLM2 turn {}: generation {:.1} tok/s ({} tokens), prompt {:.1} tok/s ({} evaluated, {} reused), first token after {} ms, {} threads",
            i + 1,
            s.tokens_per_s,
            s.generated_tokens,
            s.prompt_tokens_per_s,
            s.evaluated_tokens,
            s.reused_tokens,
            s.ttft_ms,
            info.threads
        );
    }
}
