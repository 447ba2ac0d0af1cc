//! `twin --batch chat` and `twin --batch models` as a script meets them, on a
//! tiny model the test writes (no downloads).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use twin::llm::tiny::TinyLlama;

/// A home whose models folder holds `tiny-instruct.gguf`, chosen as the chat model.
fn home_with_tiny() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("data/models");
    std::fs::create_dir_all(&models).unwrap();
    TinyLlama::default()
        .write(&models.join("tiny-instruct.gguf"))
        .unwrap();
    std::fs::create_dir_all(home.path().join("config")).unwrap();
    std::fs::write(
        home.path().join("config/config.toml"),
        "[chat]\nmodel = \"tiny-instruct.gguf\"\nmax_tokens = 12\nseed = 3\nthreads = 2\n",
    )
    .unwrap();
    home
}

fn twin(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(args)
        .env("TWIN_HOME", home)
        .env_remove("TWIN_MODELS_DIR")
        .env_remove("TWIN_CHAT_MODEL")
        .env_remove("TWIN_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run twin");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn batch_chat_streams_token_events_then_done_with_stats() {
    let home = home_with_tiny();
    let out = twin(home.path(), &["--batch", "chat", "hello twin"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = json_lines(&out);
    assert_eq!(lines[0]["event"], "started");
    let tokens: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "token").collect();
    assert!(tokens.len() >= 3, "{lines:?}");
    assert!(
        tokens
            .iter()
            .all(|t| t["job"] == "chat" && t["text"].is_string())
    );
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "done");
    let s = &done["summary"];
    let streamed: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(s["reply"], streamed.as_str());
    for key in [
        "ttft_ms",
        "tokens_per_s",
        "prompt_tokens",
        "generated_tokens",
    ] {
        assert!(s["stats"][key].is_number(), "stats.{key}: {s}");
    }
    assert_eq!(s["stats"]["generated_tokens"], 12);
    assert_eq!(s["model"]["template"], "chatml");
}

#[test]
fn batch_chat_reads_one_turn_per_stdin_line_in_one_session() {
    let home = home_with_tiny();
    let out = twin(
        home.path(),
        &["--batch", "chat"],
        Some("first question\n\nsecond question\n"),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let turns = lines.last().unwrap()["summary"]["turns"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(turns.len(), 2, "the empty line is no turn");
    assert_eq!(turns[1]["user"], "second question");
    let (first, second) = (&turns[0]["stats"], &turns[1]["stats"]);
    assert!(
        second["reused_tokens"].as_u64().unwrap() >= first["prompt_tokens"].as_u64().unwrap(),
        "the second turn reuses the first: {turns:?}"
    );
}

#[test]
fn batch_chat_without_a_model_says_how_to_fetch_one() {
    let home = tempfile::tempdir().unwrap();
    let out = twin(home.path(), &["--batch", "chat", "hi"], None);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "failed");
    assert_eq!(last["job"], "chat");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("bash scripts/fetch-models.sh"), "{error}");
    assert!(error.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{error}");
}

#[test]
fn human_chat_prints_the_reply_on_stdout() {
    let home = home_with_tiny();
    let out = twin(home.path(), &["chat", "hi"], None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim_end_matches('\n').chars().count() >= 3,
        "{stdout:?}"
    );
    assert!(!stdout.contains("\"event\""), "{stdout}");
}

#[test]
fn batch_models_lists_metadata() {
    let home = home_with_tiny();
    let models = home.path().join("data/models");
    std::fs::write(models.join("broken.gguf"), b"GGUF\x03\x00\x00\x00").unwrap();
    let out = twin(home.path(), &["--batch", "models"], None);
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out);
    let s = &lines.last().unwrap()["summary"];
    let list = s["models"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let broken = &list[0];
    assert_eq!(broken["name"], "broken.gguf");
    assert!(
        broken["problem"]
            .as_str()
            .unwrap()
            .contains("truncated at byte 8"),
        "{broken}"
    );
    let tiny = &list[1]["gguf"];
    assert_eq!(tiny["architecture"], "llama");
    assert_eq!(tiny["chat_template"], "chatml");
    assert_eq!(tiny["context_length"], 512);
    assert_eq!(tiny["quantization"], "F32");
    assert!(tiny["parameters"].as_u64().unwrap() > 100_000);

    let out = twin(home.path(), &["models"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tiny-instruct.gguf") && text.contains("chatml"),
        "{text}"
    );
}

#[test]
fn batch_chat_reports_citations_and_saves_the_session() {
    let home = home_with_tiny();
    let out = twin(home.path(), &["--batch", "chat"], Some("one\ntwo\n"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let s = &lines.last().unwrap()["summary"];
    assert!(s["citations"].is_array(), "{s}");
    assert!(s["turns"][0]["citations"].is_array(), "{s}");
    let session = s["session"].as_u64().expect("the session id");
    assert!(session > 0);
    // The session is in the store: status counts it.
    let out = twin(home.path(), &["--batch", "status"], None);
    let lines = json_lines(&out);
    let counts = &lines.last().unwrap()["summary"]["store"]["counts"];
    assert_eq!(counts["chats"], 1, "{counts}");
}

#[test]
fn batch_chat_as_an_unknown_contact_says_how_to_find_names() {
    let home = home_with_tiny();
    let out = twin(
        home.path(),
        &["--batch", "chat", "--contact", "Nobody Here", "hi"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    let error = lines.last().unwrap()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("no contact named `Nobody Here`") && error.contains("twin contacts"),
        "{error}"
    );
}
