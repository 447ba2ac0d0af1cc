//! `chat.engine = "openai"`: generate on an existing OpenAI-compatible server
//! (llama-server, vLLM, Ollama, another twin's `serve`) instead of in process.
//! The reply streams back as server-sent events and becomes the same
//! [`GenEvent`]s the local engine sends, so the chat job, the TUI and `serve`
//! do not know the difference.
//!
//! HTTP is minreq without features: no dependencies, plain http only (a remote
//! GPU box is reached over an SSH tunnel; TLS would add a TLS stack for little).

use std::io::{BufRead, BufReader};
use std::time::Instant;

use tokio::sync::mpsc;

use super::engine::{
    EngineError, Finish, GenEvent, GenStats, GenerateRequest, Generation, Reply, Sampling,
};

/// Where the server is and what to ask it for.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer KEY` when not empty.
    pub api_key: String,
    /// The server's model name; empty: the first of `/v1/models`.
    pub model: String,
    pub max_tokens: u32,
    pub sampling: Sampling,
}

fn err(what: impl std::fmt::Display) -> EngineError {
    EngineError::Decode(what.to_string())
}

impl RemoteConfig {
    fn url(&self, path: &str) -> Result<String, EngineError> {
        let base = self.base_url.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(EngineError::Load {
                path: base.into(),
                why: "chat.base_url must be an http:// URL (reach an https server through an SSH tunnel)".into(),
            });
        }
        Ok(format!("{base}{path}"))
    }

    fn request(&self, r: minreq::Request) -> minreq::Request {
        let r = r.with_header("Content-Type", "application/json");
        if self.api_key.is_empty() {
            r
        } else {
            r.with_header("Authorization", format!("Bearer {}", self.api_key))
        }
    }

    /// The model to ask for: configured, or the server's first.
    pub fn model_name(&self) -> Result<String, EngineError> {
        if !self.model.is_empty() {
            return Ok(self.model.clone());
        }
        let r = self
            .request(minreq::get(self.url("/models")?))
            .with_timeout(30)
            .send()
            .map_err(|e| unreachable(&self.base_url, e))?;
        let v: serde_json::Value = serde_json::from_slice(r.as_bytes()).map_err(err)?;
        v["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                err(format!(
                    "{} lists no models; set chat.remote_model",
                    self.base_url
                ))
            })
    }

    /// Start a streamed generation on the server.
    pub fn generate(&self, request: GenerateRequest) -> Generation {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = self.clone();
        std::thread::Builder::new()
            .name("twin-openai".into())
            .spawn(move || {
                let result = run(&config, &request, &tx);
                let _ = tx.send(match result {
                    Ok(reply) => GenEvent::Done(reply),
                    Err(e) => GenEvent::Failed(e),
                });
            })
            .expect("spawn the openai client thread");
        Generation::from_events(rx)
    }
}

fn unreachable(base: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Load {
        path: base.into(),
        why: format!(
            "cannot reach the OpenAI-compatible server ({e}); start it, or check chat.base_url"
        ),
    }
}

fn run(
    config: &RemoteConfig,
    request: &GenerateRequest,
    tx: &mpsc::UnboundedSender<GenEvent>,
) -> Result<Reply, EngineError> {
    let started = Instant::now();
    let model = config.model_name()?;
    let s = request.sampling.as_ref().unwrap_or(&config.sampling);
    let messages: Vec<serde_json::Value> = request
        .messages
        .iter()
        .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let mut body = serde_json::json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "max_tokens": request.max_tokens.unwrap_or(config.max_tokens),
        "temperature": s.temperature,
        "top_p": s.top_p,
    });
    if let Some(seed) = s.seed {
        body["seed"] = seed.into();
    }
    let response = config
        .request(minreq::post(config.url("/chat/completions")?))
        .with_body(body.to_string())
        .send_lazy()
        .map_err(|e| unreachable(&config.base_url, e))?;
    if !(200..300).contains(&response.status_code) {
        let code = response.status_code;
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(response), &mut text);
        return Err(err(format!("the server answered {code}: {}", text.trim())));
    }
    let mut text = String::new();
    let mut pieces = 0usize;
    let mut first: Option<Instant> = None;
    let mut finish = Finish::Stop;
    let mut usage = (0usize, 0usize);
    for line in BufReader::new(response).lines() {
        if tx.is_closed() || request.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            finish = Finish::Cancelled;
            break;
        }
        let line = line.map_err(err)?;
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(data).map_err(err)?;
        if let Some(e) = v.get("error") {
            return Err(err(format!(
                "the server failed: {}",
                e["message"].as_str().unwrap_or(&e.to_string())
            )));
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            usage = (
                u["prompt_tokens"].as_u64().unwrap_or(0) as usize,
                u["completion_tokens"].as_u64().unwrap_or(0) as usize,
            );
        }
        let choice = &v["choices"][0];
        if let Some(t) = choice["delta"]["content"].as_str()
            && !t.is_empty()
        {
            first.get_or_insert_with(Instant::now);
            pieces += 1;
            text.push_str(t);
            let _ = tx.send(GenEvent::Token(t.to_string()));
        }
        match choice["finish_reason"].as_str() {
            Some("length") => finish = Finish::Length,
            Some(_) => finish = Finish::Stop,
            None => {}
        }
    }
    let end = Instant::now();
    let generated = if usage.1 > 0 { usage.1 } else { pieces };
    let gen_secs = first.map_or(0.0, |f| (end - f).as_secs_f64());
    Ok(Reply {
        text,
        finish,
        stats: GenStats {
            prompt_tokens: usage.0,
            reused_tokens: 0,
            evaluated_tokens: usage.0,
            generated_tokens: generated,
            ttft_ms: first.map_or(0, |f| (f - started).as_millis() as u64),
            prompt_ms: first.map_or(0, |f| (f - started).as_millis() as u64),
            prompt_tokens_per_s: 0.0,
            tokens_per_s: if gen_secs > 0.0 && generated > 1 {
                ((generated - 1) as f64 / gen_secs * 10.0).round() / 10.0
            } else {
                0.0
            },
        },
        dropped_messages: 0,
        notes: Vec::new(),
    })
}
