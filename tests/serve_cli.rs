//! `twin serve` as a client meets it, on a tiny model the test writes: the
//! OpenAI-compatible endpoints (whole and streamed), the loopback rule, and
//! `chat.engine = "openai"` talking to twin's own endpoint on loopback.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twin::llm::tiny::TinyLlama;

fn home(config: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("data/models");
    std::fs::create_dir_all(&models).unwrap();
    TinyLlama::default()
        .write(&models.join("tiny-instruct.gguf"))
        .unwrap();
    std::fs::create_dir_all(home.path().join("config")).unwrap();
    std::fs::write(home.path().join("config/config.toml"), config).unwrap();
    home
}

const TINY: &str =
    "[chat]\nmodel = \"tiny-instruct.gguf\"\nmax_tokens = 10\nseed = 3\nthreads = 2\n";

fn twin(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_twin"));
    c.env("TWIN_HOME", home)
        .env_remove("TWIN_MODELS_DIR")
        .env_remove("TWIN_CHAT_ENGINE")
        .env_remove("TWIN_CHAT_BASE_URL")
        .env_remove("TWIN_LOG");
    c
}

/// A running `twin --batch serve` on a free loopback port, and its base URL.
struct Server {
    child: Child,
    base: String,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(home: &Path) -> Server {
        let mut child = twin(home)
            .args(["--batch", "serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let start = Instant::now();
        let base = loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "serve ended early"
            );
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if let Some(m) = v["message"].as_str()
                && let Some(rest) = m.strip_prefix("listening on ")
            {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no listening line"
            );
        };
        Server {
            child,
            base,
            stdout,
        }
    }

    /// Ctrl-C: the job ends with a done line.
    fn stop(mut self) -> serde_json::Value {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(self.child.wait().unwrap().code(), Some(0), "{rest}");
        let last = rest.lines().last().expect("a last line").to_string();
        serde_json::from_str(&last).unwrap()
    }
}

#[test]
fn serve_answers_models_and_chat_completions_whole_and_streamed() {
    let home = home(TINY);
    let server = Server::start(home.path());
    assert!(server.base.starts_with("http://127.0.0.1:") && server.base.ends_with("/v1"));

    let models = minreq::get(format!("{}/models", server.base))
        .send()
        .unwrap();
    assert_eq!(models.status_code, 200);
    let v: serde_json::Value = serde_json::from_slice(models.as_bytes()).unwrap();
    assert_eq!(v["data"][0]["id"], "tiny-instruct.gguf");

    let body = serde_json::json!({"model": "tiny-instruct.gguf", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6});
    let r = minreq::post(format!("{}/chat/completions", server.base))
        .with_header("Content-Type", "application/json")
        .with_body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status_code, 200, "{}", r.as_str().unwrap_or(""));
    let v: serde_json::Value = serde_json::from_slice(r.as_bytes()).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(v["choices"][0]["message"]["content"].is_string());
    assert_eq!(v["usage"]["completion_tokens"], 6);
    assert_eq!(v["choices"][0]["finish_reason"], "length");

    let mut streamed = body.clone();
    streamed["stream"] = true.into();
    let r = minreq::post(format!("{}/chat/completions", server.base))
        .with_body(streamed.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status_code, 200);
    let text = r.as_str().unwrap().to_string();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.len() >= 3, "role, tokens, finish: {text}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );

    // Bad input gets a clear 400, and the server keeps serving.
    let r = minreq::post(format!("{}/chat/completions", server.base))
        .with_body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status_code, 400);
    assert!(
        r.as_str()
            .unwrap()
            .contains("not a chat completion request")
    );
    let r = minreq::get(format!("{}/nothing", server.base))
        .send()
        .unwrap();
    assert_eq!(r.status_code, 404);

    let done = server.stop();
    assert_eq!(done["event"], "done");
    assert_eq!(done["job"], "serve");
    assert!(done["summary"]["requests"].as_u64().unwrap() >= 5, "{done}");
}

#[test]
fn serve_refuses_a_non_loopback_address_unless_asked() {
    let home = home(TINY);
    let out = twin(home.path())
        .args(["--batch", "serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"failed\"") && stdout.contains("--allow-remote"),
        "{stdout}"
    );
}

#[test]
fn openai_engine_chats_through_twins_own_endpoint() {
    let server_home = home(TINY);
    let server = Server::start(server_home.path());
    let client = home(&format!(
        "[chat]\nengine = \"openai\"\nbase_url = \"{}\"\nmax_tokens = 8\n",
        server.base
    ));
    let out = twin(client.path())
        .args(["--batch", "chat", "hello over http"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tokens: String = lines
        .iter()
        .filter(|l| l["event"] == "token")
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "done", "{stdout}");
    assert_eq!(done["summary"]["reply"], tokens.as_str());
    assert!(!tokens.is_empty());
    assert!(done["summary"]["stats"]["ttft_ms"].is_number());
    server.stop();

    // With the server gone, the error says what to do.
    let out = twin(client.path())
        .args(["--batch", "chat", "anyone there?"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cannot reach the OpenAI-compatible server"),
        "{stdout}"
    );
}
