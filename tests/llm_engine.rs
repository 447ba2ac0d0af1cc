//! The llama.cpp engine on a tiny random-weight model the test writes itself:
//! loading, templates, streaming, cancellation, prefix reuse, grammars, the
//! context budget, adapters and broken files. No downloads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use twin::llm::gguf::GgufError;
use twin::llm::tiny::TinyLlama;
use twin::llm::{
    Engine, EngineConfig, EngineError, Finish, GenEvent, GenerateRequest, Message, Reply, Sampling,
};

fn tiny(dir: &Path) -> PathBuf {
    let path = dir.join("tiny-instruct.gguf");
    TinyLlama::default().write(&path).unwrap();
    path
}

fn config(model: &Path) -> EngineConfig {
    let mut c = EngineConfig::for_model(model);
    c.threads = 2;
    c.max_tokens = 24;
    c.sampling = Sampling {
        seed: Some(42),
        ..Sampling::default()
    };
    c
}

/// Every event of one generation, with a timeout so a hang fails the test.
fn events(engine: &Engine, request: GenerateRequest) -> Vec<GenEvent> {
    let mut g = engine.generate(request);
    let mut out = Vec::new();
    loop {
        let ev = g
            .next_timeout(Duration::from_secs(60))
            .expect("the engine answers within a minute")
            .expect("the engine ends every generation with done or failed");
        let last = matches!(ev, GenEvent::Done(_) | GenEvent::Failed(_));
        out.push(ev);
        if last {
            return out;
        }
    }
}

fn reply(events: &[GenEvent]) -> &Reply {
    match events.last() {
        Some(GenEvent::Done(r)) => r,
        other => panic!("expected done, got {other:?}"),
    }
}

fn failure(engine: &Engine, request: GenerateRequest) -> EngineError {
    match events(engine, request).pop() {
        Some(GenEvent::Failed(e)) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn chat(system: &str, user: &str) -> GenerateRequest {
    GenerateRequest::new(vec![Message::system(system), Message::user(user)])
}

#[test]
fn loads_once_and_streams_tokens_before_done() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&tiny(dir.path())));
    let evs = events(&engine, chat("Be brief.", "Hello there"));
    let loaded = evs
        .iter()
        .find_map(|e| match e {
            GenEvent::Loaded(info) => Some(info),
            _ => None,
        })
        .expect("the first request loads the model");
    assert_eq!(loaded.architecture.as_deref(), Some("llama"));
    assert_eq!(loaded.template, "chatml");
    assert_eq!(
        loaded.n_ctx, 512,
        "chat.n_ctx 4096 is capped at the model's 512"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, GenEvent::Loading(p) if *p >= 1.0)),
        "load progress reaches 100%"
    );
    let tokens: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            GenEvent::Token(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert!(tokens.len() >= 5, "{} token events", tokens.len());
    let r = reply(&evs);
    assert_eq!(r.text, tokens.concat(), "the tokens are the reply");
    assert_eq!(r.finish, Finish::Length);
    assert_eq!(r.stats.generated_tokens, 24);
    assert!(r.stats.tokens_per_s > 0.0);

    // A second request does not load again.
    let evs = events(&engine, chat("Be brief.", "Again"));
    assert!(
        !evs.iter()
            .any(|e| matches!(e, GenEvent::Loaded(_) | GenEvent::Loading(_)))
    );
    reply(&evs);
}

#[test]
fn the_model_template_renders_chatml_with_control_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&tiny(dir.path())));
    let r = engine
        .render(vec![Message::system("S!"), Message::user("hi")])
        .unwrap();
    assert_eq!(
        r.text,
        "<|im_start|>system\nS!<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    // Byte-level vocabulary: one token per byte, one per control marker (5 of them).
    let markers = 5;
    let bytes = r.text.len() - 3 * "<|im_start|>".len() - 2 * "<|im_end|>".len();
    assert_eq!(r.tokens, bytes + markers);

    // chat.template overrides the model's own.
    let mut c = config(&tiny(dir.path()));
    c.template = "gemma".into();
    let gemma = Engine::start(c);
    let text = gemma.render(vec![Message::user("hi")]).unwrap().text;
    assert!(text.contains("<start_of_turn>user"), "{text}");
}

#[test]
fn a_follow_up_only_decodes_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&tiny(dir.path())));
    let system = "You are the twin of a person who writes short, friendly messages. ".repeat(5);
    let first = events(&engine, chat(&system, "How was your day?"));
    let first = reply(&first).clone();
    assert_eq!(first.stats.reused_tokens, 0);
    assert_eq!(first.stats.evaluated_tokens, first.stats.prompt_tokens);

    let follow = GenerateRequest::new(vec![
        Message::system(system.clone()),
        Message::user("How was your day?"),
        Message::assistant(first.text.clone()),
        Message::user("And tomorrow?"),
    ]);
    let second = events(&engine, follow);
    let s = &reply(&second).stats;
    eprintln!(
        "prefix reuse: turn 1 evaluated {} of {} prompt tokens; turn 2 evaluated {} of {} ({} reused)",
        first.stats.evaluated_tokens,
        first.stats.prompt_tokens,
        s.evaluated_tokens,
        s.prompt_tokens,
        s.reused_tokens
    );
    assert!(
        s.reused_tokens >= first.stats.prompt_tokens,
        "the whole first prompt is reused: {s:?}"
    );
    assert!(
        s.evaluated_tokens * 4 < s.prompt_tokens,
        "the follow-up decodes far fewer tokens than its prompt: {s:?}"
    );
    assert_eq!(s.evaluated_tokens + s.reused_tokens, s.prompt_tokens);

    // The same prompt again still decodes one token, for its logits.
    let again = events(&engine, chat(&system, "How was your day?"));
    assert_eq!(reply(&again).stats.evaluated_tokens, 1);

    // A fresh request ignores the cache: the whole prompt is evaluated again,
    // from an empty cache, so the same seed writes the first reply again.
    let mut fresh = chat(&system, "How was your day?");
    fresh.fresh = true;
    let fresh = events(&engine, fresh);
    let r = reply(&fresh);
    assert_eq!(r.stats.reused_tokens, 0);
    assert_eq!(r.stats.evaluated_tokens, r.stats.prompt_tokens);
    assert_eq!(r.text, first.text);
}

#[test]
fn cancelling_stops_mid_generation() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&tiny(dir.path()));
    c.max_tokens = 400;
    let engine = Engine::start(c);
    let mut g = engine.generate(chat("x", "Tell me a long story"));
    let mut tokens = 0;
    let r = loop {
        match g.next_timeout(Duration::from_secs(60)).unwrap().unwrap() {
            GenEvent::Token(_) => {
                tokens += 1;
                if tokens == 3 {
                    g.cancel();
                }
            }
            GenEvent::Done(r) => break r,
            GenEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    };
    assert_eq!(r.finish, Finish::Cancelled);
    assert!(r.stats.generated_tokens < 400, "{:?}", r.stats);

    // A cancellation token works too, and the engine serves the next request.
    let token = tokio_util::sync::CancellationToken::new();
    token.cancel();
    let mut req = chat("x", "Another");
    req.cancel = Some(token);
    assert_eq!(reply(&events(&engine, req)).finish, Finish::Cancelled);
    assert_eq!(
        reply(&events(&engine, chat("x", "Fine"))).finish,
        Finish::Length
    );
}

#[test]
fn a_grammar_forces_json_from_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(&tiny(dir.path())));
    let mut req = chat("Answer in JSON.", "Is it ok?");
    req.grammar = Some(
        r#"root ::= "{" ws "\"ok\"" ws ":" ws ("true" | "false") ws "}"
ws ::= " "?"#
            .into(),
    );
    req.max_tokens = Some(64);
    let evs = events(&engine, req);
    let r = reply(&evs);
    let v: serde_json::Value =
        serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{:?} is not JSON: {e}", r.text));
    assert!(v["ok"].is_boolean(), "{v}");
    assert_eq!(
        r.finish,
        Finish::Stop,
        "the model stops when the grammar is done"
    );

    // A JSON schema becomes a grammar too.
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}},
        "required": ["ok", "n"],
        "additionalProperties": false
    });
    let mut req = chat("Answer in JSON.", "Is it ok?");
    req.grammar = Some(twin::llm::json_schema_grammar(&schema).unwrap());
    req.max_tokens = Some(300);
    let r = reply(&events(&engine, req)).clone();
    let v: serde_json::Value =
        serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{:?} is not JSON: {e}", r.text));
    assert!(v["ok"].is_boolean() && v["n"].is_i64(), "{v}");

    let mut bad = chat("x", "y");
    bad.grammar = Some("root ::= (".into());
    let e = failure(&engine, bad);
    assert!(matches!(e, EngineError::Grammar(_)), "{e}");
    assert!(e.to_string().contains("GBNF"), "{e}");
}

#[test]
fn long_conversations_drop_their_oldest_turns() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&tiny(dir.path()));
    c.n_ctx = 256;
    c.max_tokens = 16;
    let engine = Engine::start(c);
    let mut messages = vec![Message::system("Be kind.")];
    for i in 0..6 {
        messages.push(Message::user(format!(
            "question {i}: {}",
            "words ".repeat(8)
        )));
        messages.push(Message::assistant(format!(
            "answer {i}: {}",
            "more ".repeat(8)
        )));
    }
    messages.push(Message::user("the question"));
    let r = reply(&events(&engine, GenerateRequest::new(messages))).clone();
    assert!(
        r.dropped_messages >= 2 && r.dropped_messages.is_multiple_of(2),
        "{r:?}"
    );
    assert!(
        r.notes.iter().any(|n| n.contains("dropped the")),
        "{:?}",
        r.notes
    );
    assert!(r.stats.prompt_tokens + 16 <= 256, "{:?}", r.stats);

    // The system prompt and the question alone are too long: a clear error.
    let e = failure(&engine, chat("Be kind.", &"long ".repeat(100)));
    assert!(matches!(e, EngineError::PromptTooLong { .. }), "{e}");
    assert!(e.to_string().contains("chat.n_ctx"), "{e}");
}

#[test]
fn broken_missing_and_unsuitable_models_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let missing = Engine::start(config(&d.join("nope.gguf")));
    let e = failure(&missing, chat("x", "y"));
    assert!(matches!(e, EngineError::ModelMissing { .. }), "{e}");
    assert!(
        e.to_string().contains("bash scripts/fetch-models.sh"),
        "{e}"
    );

    let cut = tiny(d);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let e = failure(&Engine::start(config(&cut)), chat("x", "y"));
    assert!(
        matches!(e, EngineError::Gguf(GgufError::Truncated { .. })),
        "{e}"
    );
    let at = bytes.len() - 1000;
    assert!(
        e.to_string()
            .contains(&format!("is truncated at byte {at}")),
        "{e}"
    );

    let garbage = d.join("garbage.gguf");
    std::fs::write(&garbage, b"PK\x03\x04 a zip, not a model").unwrap();
    let e = failure(&Engine::start(config(&garbage)), chat("x", "y"));
    assert!(
        matches!(e, EngineError::Gguf(GgufError::NotGguf { .. })),
        "{e}"
    );

    let base = d.join("tiny-base.gguf");
    TinyLlama {
        name: "tiny-random-llama".into(),
        chat_template: None,
        ..TinyLlama::default()
    }
    .write(&base)
    .unwrap();
    let e = failure(&Engine::start(config(&base)), chat("x", "y"));
    assert!(matches!(e, EngineError::NotAChatModel { .. }), "{e}");
    assert!(e.to_string().contains("chat.template"), "{e}");
    // Told which template to use, it chats.
    let mut c = config(&base);
    c.template = "chatml".into();
    reply(&events(&Engine::start(c), chat("x", "y")));

    let adapter = d.join("lora.gguf");
    TinyLlama::default()
        .write_adapter(&adapter, 4, 8.0)
        .unwrap();
    let e = failure(&Engine::start(config(&adapter)), chat("x", "y"));
    assert!(matches!(e, EngineError::IsAdapter { .. }), "{e}");
}

#[test]
fn adapters_are_checked_against_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny(d);
    let good = d.join("good-lora.gguf");
    TinyLlama::default().write_adapter(&good, 4, 8.0).unwrap();
    let wrong = d.join("wrong-lora.gguf");
    TinyLlama {
        n_embd: 32,
        ..TinyLlama::default()
    }
    .write_adapter(&wrong, 4, 8.0)
    .unwrap();

    // Loaded with the model from the config.
    let mut c = config(&model);
    c.adapter = Some(good.clone());
    let engine = Engine::start(c);
    assert_eq!(
        engine.load().unwrap().adapter.as_deref(),
        Some(good.as_path())
    );
    reply(&events(&engine, chat("x", "y")));

    // Switched at run time: a wrong one is refused and the engine keeps working.
    let e = engine.set_adapter(Some(wrong.clone())).unwrap_err();
    assert!(matches!(e, EngineError::WrongAdapter { .. }), "{e}");
    assert!(e.to_string().contains("input size"), "{e}");
    let e = engine.set_adapter(Some(model.clone())).unwrap_err();
    assert!(matches!(e, EngineError::NotAnAdapter { .. }), "{e}");
    engine.set_adapter(None).unwrap();
    reply(&events(&engine, chat("x", "y")));
    engine.set_adapter(Some(good)).unwrap();
    reply(&events(&engine, chat("x", "y")));

    let mut c = config(&model);
    c.adapter = Some(wrong);
    let e = failure(&Engine::start(c), chat("x", "y"));
    assert!(matches!(e, EngineError::WrongAdapter { .. }), "{e}");
}

/// Finds other memories every turn, and keeps the history each turn was given.
struct Rotating {
    calls: std::sync::Mutex<Vec<Vec<Message>>>,
}

impl twin::llm::chat::Retriever for Rotating {
    fn retrieve(
        &self,
        question: &str,
        history: &[Message],
    ) -> anyhow::Result<Vec<twin::llm::persona::RetrievedMemory>> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(history.to_vec());
        let n = calls.len();
        Ok(vec![twin::llm::persona::RetrievedMemory {
            id: format!("{n:08x}"),
            kind: "fact".into(),
            text: format!("memory number {n} about {question}, different every turn"),
            when: None,
            source: "a test".into(),
        }])
    }
}

#[test]
fn a_reply_to_a_check_in_continues_it_and_new_memories_keep_the_cache() {
    use twin::llm::chat::{self, ChatEngine, TurnRequest};
    use twin::llm::conversation::{ChatEffect, ChatEvent, Conversation, TurnOutcome};

    let dir = tempfile::tempdir().unwrap();
    let store = twin::store::Store::open(&dir.path().join("store")).unwrap();
    // Room for the whole conversation: nothing is dropped to fit.
    let model = dir.path().join("tiny-long-instruct.gguf");
    TinyLlama {
        context_length: 4096,
        ..TinyLlama::default()
    }
    .write(&model)
    .unwrap();
    let mut cfg = config(&model);
    cfg.n_ctx = 4096;
    let engine = ChatEngine::start(cfg);
    let retriever = Rotating {
        calls: Default::default(),
    };
    let (job, _events, _cancel) = twin::jobs::JobCtx::detached("chat");
    let opening = "Morning! How did the interview go?";
    let context = "You checked in on your own, because of these messages:\n[m:00ff] Jo: \"my interview on Friday\"";
    // The check-in opened in the chat, then the person replies (the Chat pane's state machine).
    let mut conv = Conversation::opened(opening, context, 0);
    let turn = |conv: &mut Conversation, text: &str| {
        let fx = conv.handle(ChatEvent::Send {
            text: text.into(),
            at_ms: 1,
        });
        let Some(ChatEffect::Generate {
            question,
            history,
            session,
            opening,
        }) = fx.into_iter().next()
        else {
            panic!("the send starts a turn")
        };
        let request = TurnRequest {
            question,
            history,
            session,
            opening,
            ..TurnRequest::default()
        };
        let s = chat::turn(&job, &engine, &store, "Be brief.", &retriever, request).unwrap();
        conv.handle(ChatEvent::Started { job: 1 });
        conv.handle(ChatEvent::Done(TurnOutcome {
            reply: s.reply.clone(),
            citations: s.citations.clone(),
            finish: "stop".into(),
            ttft_ms: s.stats.ttft_ms,
            tokens_per_s: s.stats.tokens_per_s,
            session: s.session,
            context: Some(s.context.clone()),
        }));
        s
    };
    let first = turn(&mut conv, "it went well, they liked me");
    // The engine was given the check-in as the twin's own turn, after its context.
    let seen = retriever.calls.lock().unwrap()[0].clone();
    assert_eq!(
        seen,
        vec![Message::system(context), Message::assistant(opening)]
    );
    assert!(first.context.contains("[m:00000001]"), "{}", first.context);
    // The session holds the opening first, then the reply.
    let id = first.session.unwrap();
    let stored = twin::llm::sessions::ChatSession::load(&store, id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.turns.len(), 2);
    assert_eq!(
        (
            stored.turns[0].user.as_str(),
            stored.turns[0].reply.as_str()
        ),
        ("", opening)
    );
    assert_eq!(stored.turns[0].context, context);
    assert_eq!(stored.turns[1].user, "it went well, they liked me");

    // A follow-up recalls another memory, yet only its new tokens are evaluated:
    // the memories sit in each turn's own message, after the history.
    let second = turn(&mut conv, "what should I ask them next?");
    assert!(second.context.contains("[m:00000002]") && !second.context.contains("[m:00000001]"));
    let (a, b) = (&first.stats, &second.stats);
    eprintln!(
        "check-in reply: {} prompt tokens; follow-up: {} prompt tokens, {} reused, {} evaluated",
        a.prompt_tokens, b.prompt_tokens, b.reused_tokens, b.evaluated_tokens
    );
    assert!(
        b.reused_tokens >= a.prompt_tokens,
        "the whole first prompt is reused though the memories changed: {a:?} {b:?}"
    );
    assert_eq!(b.evaluated_tokens + b.reused_tokens, b.prompt_tokens);
    let turns = twin::llm::sessions::ChatSession::load(&store, id)
        .unwrap()
        .unwrap()
        .turns
        .len();
    assert_eq!(turns, 3, "the follow-up went into the same session");
}
