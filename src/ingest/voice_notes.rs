//! Voice notes in exports: after a unit is imported, the audio files its
//! messages reference (WhatsApp `.opus`, Telegram `voice_messages/*.ogg`,
//! Signal `.m4a`/`.aac`, plain `.mp3`/`.wav`) are transcribed with the whisper
//! model and the text is stored in the message, marked as transcribed
//! ([`Transcribed`]). Transcripts are cached by the audio's content hash, so a
//! re-import costs no second transcription. A missing or undecodable file is
//! reported with its path and skipped; nothing else is lost.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pipeline::{ErrorEntry, Summary};
use super::records::Message;
use super::source::Source;
use crate::jobs::{JobCtx, Level};
use crate::store::Store;
use crate::voice::{self, Cache, Settings, Transcriber, VoiceError};

/// Provenance of a message text that came from speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcribed {
    /// The audio file as the export names it.
    pub file: String,
    /// 128-bit xxh3 of the audio bytes (hex): the cache key.
    pub audio_hash: String,
    /// The whisper model that wrote it.
    pub model: String,
    pub audio_ms: u64,
    /// The message text the export had before the transcript was added.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub original: String,
}

/// A message whose attachment is audio, waiting for its transcript.
#[derive(Debug, Clone)]
pub struct Pending {
    pub key: [u8; 16],
    /// The attachment's file name as the export gives it.
    pub name: String,
    /// The unit's first file, relative to the source root (names are relative to its folder).
    pub unit_file: PathBuf,
}

/// Whether an attachment should be transcribed.
pub fn wants(kind: &str, name: Option<&str>) -> Option<String> {
    let name = name?;
    let audio_kind = matches!(kind, "voice" | "audio" | "file" | "document");
    (audio_kind && voice::is_audio_name(name)).then(|| name.to_string())
}

/// Where an attachment's bytes are: a file of the source, or one on disk beside it.
enum Found {
    InSource(PathBuf),
    OnDisk(PathBuf),
}

fn locate(src: &dyn Source, by_name: &HashMap<String, Vec<PathBuf>>, p: &Pending) -> Option<Found> {
    let name = p.name.replace('\\', "/");
    let dir = p.unit_file.parent().unwrap_or(Path::new(""));
    let direct = dir.join(&name);
    if src.files().contains(&direct) {
        return Some(Found::InSource(direct));
    }
    // Exports move media into subfolders (media/, voice_messages/, files/).
    let base = Path::new(&name)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(candidates) = by_name.get(&base) {
        let best = candidates
            .iter()
            .find(|c| c.starts_with(dir))
            .or_else(|| candidates.first());
        if let Some(c) = best {
            return Some(Found::InSource(c.clone()));
        }
    }
    // A chat file named on its own: its media sit beside it on disk.
    let root = src.root();
    let beside = if root.is_file() {
        root.parent().unwrap_or(Path::new(".")).join(&name)
    } else {
        root.join(dir).join(&name)
    };
    beside.is_file().then_some(Found::OnDisk(beside))
}

fn read(src: &dyn Source, found: &Found) -> std::io::Result<Vec<u8>> {
    match found {
        Found::InSource(rel) => {
            let mut bytes = Vec::new();
            src.open(rel)?.read_to_end(&mut bytes)?;
            Ok(bytes)
        }
        Found::OnDisk(path) => std::fs::read(path),
    }
}

/// The whisper model, loaded on first use; a failure to load is remembered.
pub struct Model {
    settings: Settings,
    loaded: Option<Result<Transcriber, String>>,
}

impl Model {
    pub fn new(settings: Settings) -> Model {
        Model {
            settings,
            loaded: None,
        }
    }

    fn model_name(&self) -> String {
        self.settings
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn get(&mut self) -> Result<&Transcriber, String> {
        let s = &self.settings;
        self.loaded
            .get_or_insert_with(|| {
                Transcriber::load(&s.model, s.threads, &s.language).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Transcribe the voice notes of one source and store the texts. Returns how
/// many messages got a transcript.
pub fn transcribe(
    store: &Store,
    src: &dyn Source,
    pending: Vec<Pending>,
    model: &mut Model,
    ctx: &JobCtx,
    summary: &mut Summary,
) -> anyhow::Result<u64> {
    if pending.is_empty() {
        return Ok(0);
    }
    let cache = Cache::new(model.settings.cache_dir.clone());
    let model_name = model.model_name();
    let mut by_name: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for f in src.files() {
        if let Some(b) = f.file_name() {
            by_name
                .entry(b.to_string_lossy().into_owned())
                .or_default()
                .push(f.clone());
        }
    }
    let total = pending.len() as u64;
    let mut stored = 0u64;
    let mut no_model_reported = false;
    for (i, p) in pending.into_iter().enumerate() {
        ctx.check_cancelled()?;
        ctx.progress(i as u64, Some(total), "voice notes");
        let unit_dir = p.unit_file.parent().unwrap_or(Path::new(""));
        let shown = src.display(&unit_dir.join(&p.name));
        let mut skip = |reason: String| {
            summary.skipped += 1;
            summary.errors.push(ErrorEntry {
                file: shown.clone(),
                line: None,
                reason,
            });
        };
        let Some(found) = locate(src, &by_name, &p) else {
            skip(
                "voice note not found in the export; its message is kept without a transcript"
                    .into(),
            );
            continue;
        };
        let bytes = match read(src, &found) {
            Ok(b) => b,
            Err(e) => {
                skip(format!("cannot read the voice note ({e}); skipped"));
                continue;
            }
        };
        let hash = Cache::hash(&bytes);
        let Some(mut msg) = store.get::<Message>(p.key)? else {
            continue;
        };
        if msg
            .transcribed
            .as_ref()
            .is_some_and(|t| t.audio_hash == hash)
        {
            continue;
        }
        let transcript = match cache.get(&hash, &model_name) {
            Some(t) => t,
            None => {
                let ext = Path::new(&p.name)
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_string);
                let (samples, decoded) = match voice::prepare(bytes, ext.as_deref()) {
                    Ok(v) => v,
                    Err(e) => {
                        skip(format!("cannot decode the voice note: {e}; skipped"));
                        continue;
                    }
                };
                let t = match model.get() {
                    Ok(t) => t,
                    Err(e) => {
                        if !no_model_reported {
                            ctx.log(Level::Warn, format!("voice notes are not transcribed: {e}"));
                            no_model_reported = true;
                        }
                        continue;
                    }
                };
                let t = voice::transcribe_samples(
                    t,
                    &samples,
                    decoded.duration_ms(),
                    &decoded.format,
                    Some(ctx),
                );
                ctx.check_cancelled()?;
                match t {
                    Ok(t) => {
                        cache.put(&hash, &model_name, &t);
                        t
                    }
                    Err(e @ VoiceError::Whisper(_)) => {
                        skip(format!("transcription failed: {e}; skipped"));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let original = std::mem::take(&mut msg.text);
        msg.text = if original.trim().is_empty() {
            transcript.text.clone()
        } else {
            format!("{}\n{}", original.trim_end(), transcript.text)
        };
        msg.transcribed = Some(Transcribed {
            file: p.name.clone(),
            audio_hash: hash,
            model: transcript.model.clone(),
            audio_ms: transcript.audio_ms,
            original,
        });
        let key = p.key;
        store.write(|tx| tx.put(key, &msg))?;
        stored += 1;
    }
    ctx.progress(total, Some(total), "voice notes");
    Ok(stored)
}
