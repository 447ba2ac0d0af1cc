//! `twin serve`: an OpenAI-compatible endpoint over the same engine as `twin
//! chat`, so other clients (editors, scripts, llm CLIs) can talk to the twin.
//! `GET /v1/models`, `POST /v1/chat/completions` (whole or streamed as
//! server-sent events). Loopback only unless a wider address is asked for with
//! `--allow-remote`: there is no authentication, and the twin knows personal things.
//!
//! HTTP is tiny_http (4 small dependencies, blocking, no async runtime of its
//! own): a request at a time per thread fits an engine that serves one
//! generation at a time anyway.

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::jobs::{JobCtx, Level, Summary};
use crate::llm::chat::ChatEngine;
use crate::llm::{Finish, GenEvent, GenerateRequest, Message, Role, Sampling};

/// The default address: loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8178";

/// Why `serve` will not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("`{0}` is not an address: give HOST:PORT, e.g. {DEFAULT_LISTEN}")]
    BadAddress(String),
    #[error(
        "{0} is not a loopback address: anyone who can reach it could read your twin's memories. Add --allow-remote to serve it anyway (behind a firewall or an SSH tunnel), or listen on 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {why}; pick another port with --listen 127.0.0.1:PORT")]
    Bind { addr: SocketAddr, why: String },
}

/// Resolve `listen`; a non-loopback address needs `allow_remote`.
pub fn check_listen(listen: &str, allow_remote: bool) -> Result<SocketAddr, ServeError> {
    let addr = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServeError::BadAddress(listen.to_string()))?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(ServeError::NotLoopback(addr));
    }
    Ok(addr)
}

/// The `done` summary when the server stops (Ctrl-C).
#[derive(Debug, Serialize)]
pub struct ServeSummary {
    pub listen: String,
    pub requests: u64,
}

impl fmt::Display for ServeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {} requests on http://{}",
            self.requests, self.listen
        )
    }
}

impl Summary for ServeSummary {}

/// An OpenAI chat request (the fields twin uses; others are ignored).
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub seed: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    /// A string, or a list of parts of which the text ones count.
    pub content: serde_json::Value,
}

fn content_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Map a request onto the engine's; the twin's own system prompt goes first
/// when the client sends none.
pub fn to_generate(
    req: &ChatRequest,
    system: &str,
    base: &Sampling,
) -> Result<GenerateRequest, String> {
    let mut messages = Vec::new();
    for m in &req.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(format!(
                    "unknown role `{other}`: use system, user or assistant"
                ));
            }
        };
        messages.push(Message {
            role,
            content: content_text(&m.content),
        });
    }
    if messages.last().is_none_or(|m| m.role != Role::User) {
        return Err("the last message must be the user's".into());
    }
    if !messages.iter().any(|m| m.role == Role::System) && !system.trim().is_empty() {
        messages.insert(0, Message::system(system));
    }
    let mut g = GenerateRequest::new(messages);
    g.max_tokens = req.max_completion_tokens.or(req.max_tokens);
    if req.temperature.is_some() || req.top_p.is_some() || req.seed.is_some() {
        let mut s = base.clone();
        if let Some(t) = req.temperature {
            s.temperature = t;
        }
        if let Some(p) = req.top_p {
            s.top_p = p;
        }
        if req.seed.is_some() {
            s.seed = req.seed;
        }
        g.sampling = Some(s);
    }
    Ok(g)
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::Cancelled => "stop",
        Finish::Length | Finish::ContextFull => "length",
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Shared {
    engine: ChatEngine,
    system: String,
    model: String,
    next: AtomicU64,
}

/// Serve until the job is cancelled.
pub fn run(
    ctx: &JobCtx,
    addr: SocketAddr,
    engine: ChatEngine,
    system: String,
) -> anyhow::Result<ServeSummary> {
    let server = tiny_http::Server::http(addr).map_err(|e| ServeError::Bind {
        addr,
        why: e.to_string(),
    })?;
    let listen = server
        .server_addr()
        .to_ip()
        .map_or_else(|| addr.to_string(), |a| a.to_string());
    let model = engine.model_name();
    ctx.log(
        Level::Info,
        format!("listening on http://{listen}/v1 (model {model}); Ctrl-C stops"),
    );
    let shared = Arc::new(Shared {
        engine,
        system,
        model,
        next: AtomicU64::new(1),
    });
    let mut requests = 0u64;
    while !ctx.is_cancelled() {
        let request = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                ctx.log(Level::Warn, format!("a connection failed: {e}"));
                continue;
            }
        };
        requests += 1;
        ctx.log(
            Level::Info,
            format!("{} {}", request.method(), request.url()),
        );
        let shared = shared.clone();
        let cancel = ctx.cancel_token();
        std::thread::spawn(move || handle(request, &shared, cancel));
    }
    Ok(ServeSummary { listen, requests })
}

fn json_response(
    status: u16,
    body: &serde_json::Value,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                .expect("a valid header"),
        )
}

fn error_body(message: &str, kind: &str) -> serde_json::Value {
    json!({"error": {"message": message, "type": kind}})
}

fn handle(
    mut request: tiny_http::Request,
    shared: &Shared,
    cancel: tokio_util::sync::CancellationToken,
) {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let method = request.method().clone();
    let response = match (method, path.as_str()) {
        (tiny_http::Method::Get, "/v1/models") => json_response(
            200,
            &json!({"object": "list", "data": [{"id": shared.model, "object": "model", "created": 0, "owned_by": "twin"}]}),
        ),
        (tiny_http::Method::Post, "/v1/chat/completions") => {
            let mut body = String::new();
            if let Err(e) = std::io::Read::read_to_string(request.as_reader(), &mut body) {
                let _ = request.respond(json_response(
                    400,
                    &error_body(&e.to_string(), "invalid_request_error"),
                ));
                return;
            }
            let req: ChatRequest = match serde_json::from_str(&body) {
                Ok(r) => r,
                Err(e) => {
                    let msg = format!("the body is not a chat completion request: {e}");
                    let _ = request.respond(json_response(
                        400,
                        &error_body(&msg, "invalid_request_error"),
                    ));
                    return;
                }
            };
            let mut g = match to_generate(&req, &shared.system, &shared.engine.config.sampling) {
                Ok(g) => g,
                Err(msg) => {
                    let _ = request.respond(json_response(
                        400,
                        &error_body(&msg, "invalid_request_error"),
                    ));
                    return;
                }
            };
            g.cancel = Some(cancel.child_token());
            let id = format!("chatcmpl-{}", shared.next.fetch_add(1, Ordering::Relaxed));
            if req.stream {
                stream(request, shared, g, &id);
                return;
            }
            match shared.engine.generate(g).wait() {
                Ok(reply) => json_response(
                    200,
                    &json!({
                        "id": id, "object": "chat.completion", "created": now_s(), "model": shared.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": finish_reason(reply.finish)}],
                        "usage": {"prompt_tokens": reply.stats.prompt_tokens, "completion_tokens": reply.stats.generated_tokens, "total_tokens": reply.stats.prompt_tokens + reply.stats.generated_tokens},
                    }),
                ),
                Err(e) => json_response(500, &error_body(&e.to_string(), "server_error")),
            }
        }
        (_, "/v1/models" | "/v1/chat/completions") => json_response(
            405,
            &error_body("method not allowed", "invalid_request_error"),
        ),
        _ => json_response(
            404,
            &error_body(
                &format!("no endpoint {path}: twin serves /v1/models and /v1/chat/completions"),
                "invalid_request_error",
            ),
        ),
    };
    let _ = request.respond(response);
}

/// Write one chunk of a chunked HTTP body.
fn chunk(w: &mut dyn Write, data: &str) -> std::io::Result<()> {
    write!(w, "{:x}\r\n{data}\r\n", data.len())?;
    w.flush()
}

/// Server-sent events, one per token, each flushed as it comes.
fn stream(request: tiny_http::Request, shared: &Shared, g: GenerateRequest, id: &str) {
    let mut w = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    let created = now_s();
    let event = |delta: serde_json::Value, finish: Option<&str>| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": shared.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut generation = shared.engine.generate(g);
    let mut ok = chunk(
        &mut w,
        &event(json!({"role": "assistant", "content": ""}), None),
    )
    .is_ok();
    while ok {
        match generation.next_blocking() {
            Some(GenEvent::Token(t)) => {
                ok = chunk(&mut w, &event(json!({"content": t}), None)).is_ok()
            }
            Some(GenEvent::Done(reply)) => {
                let _ = chunk(&mut w, &event(json!({}), Some(finish_reason(reply.finish))));
                break;
            }
            Some(GenEvent::Failed(e)) => {
                let _ = chunk(
                    &mut w,
                    &format!("data: {}\n\n", error_body(&e.to_string(), "server_error")),
                );
                break;
            }
            Some(GenEvent::Loading(_) | GenEvent::Loaded(_)) => {}
            None => break,
        }
    }
    if !ok {
        // The client went away: stop generating for it.
        generation.cancel();
        return;
    }
    let _ = chunk(&mut w, "data: [DONE]\n\n");
    let _ = w.write_all(b"0\r\n\r\n").and_then(|_| w.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_asked() {
        assert!(check_listen("127.0.0.1:0", false).is_ok());
        assert!(check_listen("[::1]:0", false).is_ok());
        let e = check_listen("0.0.0.0:8178", false).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(check_listen("0.0.0.0:8178", true).is_ok());
        assert!(matches!(
            check_listen("nonsense", false),
            Err(ServeError::BadAddress(_))
        ));
    }

    #[test]
    fn requests_map_onto_the_engine() {
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "x", "stream": true, "max_tokens": 9, "temperature": 0.0,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        }))
        .unwrap();
        let g = to_generate(&req, "You are Jo's twin.", &Sampling::default()).unwrap();
        assert_eq!(
            g.messages,
            vec![Message::system("You are Jo's twin."), Message::user("hi")]
        );
        assert_eq!(g.max_tokens, Some(9));
        assert_eq!(g.sampling.unwrap().temperature, 0.0);
        // The client's own system prompt wins.
        let req: ChatRequest = serde_json::from_value(json!({
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]
        }))
        .unwrap();
        let g = to_generate(&req, "twin", &Sampling::default()).unwrap();
        assert_eq!(g.messages[0], Message::system("S"));
        assert!(g.sampling.is_none());
        let bad: ChatRequest =
            serde_json::from_value(json!({"messages": [{"role": "tool", "content": "x"}]}))
                .unwrap();
        assert!(
            to_generate(&bad, "", &Sampling::default())
                .unwrap_err()
                .contains("unknown role")
        );
    }
}
