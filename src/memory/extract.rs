//! Facts, preferences and a summary extracted from episodes by the chat model,
//! with the reply constrained by a GBNF grammar (llama.cpp's JSON-schema
//! converter) so even a 135M model cannot return broken JSON.

use serde::Deserialize;

use super::{Memories, Memory, MemoryError, MemoryKind, NewMemory, Provenance};
use crate::ingest::records::id_of;
use crate::jobs::JobCtx;
use crate::llm::engine::{Engine, GenerateRequest, json_schema_grammar};
use crate::llm::prompt::Message;

#[derive(Debug, Deserialize)]
struct Extracted {
    summary: String,
    #[serde(default)]
    facts: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    kind: String,
    text: String,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ExtractReport {
    pub episodes: u64,
    pub summaries: u64,
    pub facts: u64,
    pub preferences: u64,
    pub failed: u64,
}

fn schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string", "maxLength": 300},
            "facts": {
                "type": "array",
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": ["fact", "preference"]},
                        "text": {"type": "string", "maxLength": 200}
                    },
                    "required": ["kind", "text"]
                }
            }
        },
        "required": ["summary", "facts"]
    })
}

/// Read up to `limit` episodes not read before (most important first) and store
/// what the model found: a summary memory per episode and fact/preference
/// memories, each with the episode and its messages as provenance.
pub fn extract(
    mem: &Memories,
    engine: &Engine,
    me: &str,
    limit: usize,
    ctx: &JobCtx,
) -> Result<ExtractReport, MemoryError> {
    let grammar = json_schema_grammar(&schema())
        .map_err(|e| MemoryError::Embed(super::embed::EmbedError::Run(e.to_string())))?;
    let mut episodes: Vec<Memory> = mem
        .store()
        .scan::<Memory>([])
        .filter_map(Result::ok)
        .map(|(_, m)| m)
        .filter(|m| m.kind == MemoryKind::Episode && m.text.len() > 40)
        .filter(|m| {
            // Already summarised?
            mem.get(summary_id(m.id)).ok().flatten().is_none()
        })
        .collect();
    episodes.sort_by(|a, b| {
        mem.importance_of(b)
            .total_cmp(&mem.importance_of(a))
            .then(b.end_ms.cmp(&a.end_ms))
    });
    episodes.truncate(limit);
    let mut report = ExtractReport::default();
    let total = episodes.len() as u64;
    for (i, ep) in episodes.iter().enumerate() {
        if ctx.is_cancelled() {
            return Err(MemoryError::Cancelled);
        }
        report.episodes += 1;
        let text: String = ep.text.chars().take(1500).collect();
        let mut req = GenerateRequest::new(vec![
            Message::system(format!(
                "You read a chat log and write JSON. `summary`: one sentence about what happened. `facts`: things the log states about {me} (kind \"fact\": their life, people, plans, places; kind \"preference\": what they like or dislike). Only what the log says; an empty list when it says nothing about {me}."
            )),
            Message::user(text),
        ]);
        req.grammar = Some(grammar.clone());
        req.max_tokens = Some(256);
        req.cancel = Some(ctx.cancel_token());
        let reply = match engine.generate(req).wait() {
            Ok(r) => r,
            Err(e) => {
                report.failed += 1;
                ctx.log(crate::jobs::Level::Warn, format!("memory {}: {e}", ep.id));
                continue;
            }
        };
        let Ok(found) = serde_json::from_str::<Extracted>(reply.text.trim()) else {
            report.failed += 1;
            continue;
        };
        let mut prov = vec![Provenance::Memory { id: ep.id }];
        prov.extend(ep.provenance.iter().cloned());
        let mut items = vec![NewMemory {
            id: summary_id(ep.id),
            kind: MemoryKind::Summary,
            title: ep.title.clone(),
            text: found.summary.trim().to_string(),
            contacts: ep.contacts.clone(),
            conversation: ep.conversation,
            start_ms: ep.start_ms,
            end_ms: ep.end_ms,
            provenance: prov.clone(),
            source_hash: ep.source_hash,
            importance: MemoryKind::Summary.base_importance(),
        }];
        report.summaries += 1;
        for (j, f) in found.facts.iter().enumerate() {
            let t = f.text.trim();
            if t.len() < 4 {
                continue;
            }
            let kind = if f.kind == "preference" {
                report.preferences += 1;
                MemoryKind::Preference
            } else {
                report.facts += 1;
                MemoryKind::Fact
            };
            items.push(NewMemory {
                id: id_of(&[
                    b"memory",
                    b"fact",
                    &ep.id.to_be_bytes(),
                    &(j as u64).to_be_bytes(),
                ]),
                kind,
                title: String::new(),
                text: t.to_string(),
                contacts: ep.contacts.clone(),
                conversation: ep.conversation,
                start_ms: ep.start_ms,
                end_ms: ep.end_ms,
                provenance: prov.clone(),
                source_hash: xxhash_rust::xxh3::xxh3_64(t.as_bytes()),
                importance: kind.base_importance(),
            });
        }
        mem.upsert(items, None)?;
        ctx.progress(i as u64 + 1, Some(total), "episodes");
    }
    mem.save()?;
    Ok(report)
}

fn summary_id(episode: u64) -> u64 {
    id_of(&[b"memory", b"summary", &episode.to_be_bytes()])
}
