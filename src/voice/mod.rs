//! Voice: audio files and the microphone to text, offline, with whisper.cpp.
//!
//! - [`decode`]: containers and codecs to mono samples (symphonia; Opus through
//!   libopus), [`audio`]: resampling to 16 kHz (rubato) and silence trimming.
//! - [`whisper`]: the whisper.cpp model (whisper-rs), sharing llama.cpp's ggml.
//! - [`mic`]: push-to-talk recording (cpal), with ALSA kept off the screen.
//! - [`transcribe_job`]: `twin --batch transcribe FILE...`; ingest transcribes
//!   voice notes through [`Voice`] with a cache keyed by the audio's content hash.
//!
//! A core module: no ratatui, no crossterm.

pub mod audio;
pub mod decode;
pub mod mic;
pub mod opus;
pub mod whisper;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::jobs::JobCtx;
use crate::paths::Paths;

pub use decode::Audio;
pub use whisper::Transcriber;

/// whisper.cpp's sample rate.
pub const WHISPER_RATE: u32 = 16_000;

/// Audio file extensions voice notes come in.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "opus", "ogg", "oga", "m4a", "mp4", "aac", "mp3", "wav", "wave",
];

/// Whether a file name looks like audio twin can transcribe.
pub fn is_audio_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(
        "no whisper model at {0}: run `bash scripts/fetch-models.sh`, or set voice.model to a ggml whisper model"
    )]
    NoModel(PathBuf),
    #[error("whisper model {path}: {why}")]
    BadModel { path: PathBuf, why: String },
    #[error("{0}")]
    Undecodable(String),
    #[error("{0}")]
    Whisper(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One timed piece of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// What a transcription produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Length of the audio as decoded, before silence was trimmed.
    pub audio_ms: u64,
    /// The model file's name.
    pub model: String,
    /// "ogg/opus", "wav/pcm_s16le", ...
    pub format: String,
}

/// Join segment texts into one text.
pub fn join_segments(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[voice]` settings, resolved against the folders.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: PathBuf,
    pub threads: usize,
    pub language: String,
    /// Transcribe voice notes while importing.
    pub ingest: bool,
    /// Transcripts by audio content hash: `<data>/cache/voice`.
    pub cache_dir: PathBuf,
}

impl Settings {
    pub fn from_config(config: &Config, paths: &Paths) -> Settings {
        let v = &config.voice;
        let model = Path::new(&v.model);
        let models_dir = if config.models.dir.is_empty() {
            paths.default_models_dir()
        } else {
            PathBuf::from(&config.models.dir)
        };
        let model = if model.is_absolute() || v.model.contains('/') {
            model.to_path_buf()
        } else {
            models_dir.join(model)
        };
        Settings {
            model,
            threads: threads(v.threads),
            language: v.language.clone(),
            ingest: v.ingest,
            cache_dir: paths.data_dir.join("cache").join("voice"),
        }
    }
}

/// `voice.threads`: 0 means half the cores (at least one), so that chat, which
/// wants the rest, is not starved while a voice note is transcribed.
pub fn threads(configured: i64) -> usize {
    if configured > 0 {
        return configured as usize;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores / 2).max(1)
}

/// Decode, resample to 16 kHz and trim silence.
pub fn prepare(bytes: Vec<u8>, ext: Option<&str>) -> Result<(Vec<f32>, Audio), VoiceError> {
    let mut decoded = decode::decode(bytes, ext)?;
    let samples = std::mem::take(&mut decoded.samples);
    let at16k = audio::resample(&samples, decoded.rate, WHISPER_RATE)?;
    decoded.samples = samples;
    let trimmed = audio::trim_silence(&at16k, WHISPER_RATE).to_vec();
    Ok((trimmed, decoded))
}

/// Transcribe prepared 16 kHz samples (already trimmed).
pub fn transcribe_samples(
    t: &Transcriber,
    samples: &[f32],
    audio_ms: u64,
    format: &str,
    ctx: Option<&JobCtx>,
) -> Result<Transcript, VoiceError> {
    let cancel = ctx.map(|c| c.cancel_token());
    let segments = t.transcribe(samples, move || {
        cancel.as_ref().is_some_and(|c| c.is_cancelled())
    })?;
    Ok(Transcript {
        text: join_segments(&segments),
        segments,
        audio_ms,
        model: t.model_name(),
        format: format.to_string(),
    })
}

/// Transcripts cached on disk by the audio's content hash and the model.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    /// The content hash of an audio file's bytes (hex, 128-bit xxh3).
    pub fn hash(bytes: &[u8]) -> String {
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
    }

    fn path(&self, hash: &str, model: &str) -> PathBuf {
        let model: String = model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{hash}-{model}.json"))
    }

    pub fn get(&self, hash: &str, model: &str) -> Option<Transcript> {
        let text = std::fs::read_to_string(self.path(hash, model)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Best effort: a cache that cannot be written only costs a re-transcription.
    pub fn put(&self, hash: &str, model: &str, t: &Transcript) {
        let path = self.path(hash, model);
        let tmp = path.with_extension("json.part");
        let ok = std::fs::create_dir_all(&self.dir).is_ok()
            && serde_json::to_vec(t)
                .ok()
                .is_some_and(|b| std::fs::write(&tmp, b).is_ok())
            && std::fs::rename(&tmp, &path).is_ok();
        if !ok {
            tracing::warn!("could not cache a transcript in {}", self.dir.display());
        }
    }
}

/// The summary of `twin --batch transcribe FILE`: one per file.
#[derive(Debug, Clone, Serialize)]
pub struct FileTranscript {
    pub file: PathBuf,
    pub text: String,
    pub segments: Vec<Segment>,
    /// Processing time over audio time (lower is faster; 0.1 is ten times real time).
    pub rtf: f64,
    pub audio_ms: u64,
    /// The audio left after trimming silence.
    pub speech_ms: u64,
    /// Decoding, resampling and transcribing (the model's loading excluded).
    pub elapsed_ms: u64,
    /// whisper.cpp alone.
    pub transcribe_ms: u64,
    pub format: String,
    pub model: String,
    pub threads: usize,
}

impl std::fmt::Display for FileTranscript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.text)
    }
}

impl crate::jobs::Summary for FileTranscript {}

/// Transcribe one file (the `transcribe` job). `loaded` keeps the model
/// between files of one command.
pub fn transcribe_file(
    path: &Path,
    settings: &Settings,
    loaded: &std::sync::Mutex<Option<Transcriber>>,
    ctx: &JobCtx,
) -> anyhow::Result<FileTranscript> {
    let bytes = std::fs::read(path).map_err(|source| VoiceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let start = Instant::now();
    let ext = path.extension().and_then(|e| e.to_str());
    let (samples, decoded) =
        prepare(bytes, ext).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let prepared = start.elapsed();
    let mut guard = loaded.lock().expect("voice model lock");
    if guard.is_none() {
        let t0 = Instant::now();
        let t = Transcriber::load(&settings.model, settings.threads, &settings.language)?;
        ctx.log(
            crate::jobs::Level::Info,
            format!(
                "{} loaded in {} ms, {} threads",
                t.model_name(),
                t0.elapsed().as_millis(),
                t.threads()
            ),
        );
        *guard = Some(t);
    }
    let t = guard.as_ref().expect("loaded above");
    ctx.check_cancelled()?;
    let audio_ms = decoded.duration_ms();
    let t1 = Instant::now();
    let tr = transcribe_samples(t, &samples, audio_ms, &decoded.format, Some(ctx))?;
    ctx.check_cancelled()?;
    let transcribing = t1.elapsed();
    let elapsed = prepared + transcribing;
    let rtf = if audio_ms > 0 {
        elapsed.as_secs_f64() * 1000.0 / audio_ms as f64
    } else {
        0.0
    };
    Ok(FileTranscript {
        file: path.to_path_buf(),
        text: tr.text,
        segments: tr.segments,
        rtf: (rtf * 10_000.0).round() / 10_000.0,
        audio_ms,
        speech_ms: samples.len() as u64 * 1000 / WHISPER_RATE as u64,
        elapsed_ms: elapsed.as_millis() as u64,
        transcribe_ms: transcribing.as_millis() as u64,
        format: decoded.format,
        model: t.model_name(),
        threads: t.threads(),
    })
}

/// The job kind of push-to-talk.
pub const PTT_JOB: &str = "voice";
/// The progress unit while recording: `done` is the input level in percent.
pub const LEVEL_UNIT: &str = "% input level";

/// The summary of a push-to-talk recording.
#[derive(Debug, Clone, Serialize)]
pub struct Spoken {
    pub text: String,
    pub segments: Vec<Segment>,
    pub audio_ms: u64,
    pub speech_ms: u64,
    pub rtf: f64,
}

impl std::fmt::Display for Spoken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.text)
    }
}

/// Push-to-talk as a job: record until `stop` is set (progress reports the
/// input level), then transcribe. Cancelling the job discards the recording.
/// Without a microphone it fails at once with a message that says so.
pub fn push_to_talk(
    ctx: &JobCtx,
    stop: &std::sync::atomic::AtomicBool,
    settings: &Settings,
    loaded: &std::sync::Mutex<Option<Transcriber>>,
) -> anyhow::Result<Spoken> {
    use std::sync::atomic::Ordering;
    let rec = mic::Recorder::start().map_err(|e| {
        anyhow::anyhow!(
            "{e}; push-to-talk needs a sound input on this machine (there is none over SSH)"
        )
    })?;
    while !stop.load(Ordering::Relaxed) {
        ctx.check_cancelled()?;
        ctx.progress((rec.level() * 100.0) as u64, Some(100), LEVEL_UNIT);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ctx.progress(0, None, "transcribing");
    let (samples, audio_ms) = rec.stop()?;
    let start = Instant::now();
    let mut guard = loaded.lock().expect("voice model lock");
    if guard.is_none() {
        *guard = Some(Transcriber::load(
            &settings.model,
            settings.threads,
            &settings.language,
        )?);
    }
    let t = guard.as_ref().expect("loaded above");
    let tr = transcribe_samples(t, &samples, audio_ms, "microphone", Some(ctx))?;
    ctx.check_cancelled()?;
    let speech_ms = samples.len() as u64 * 1000 / WHISPER_RATE as u64;
    Ok(Spoken {
        text: tr.text,
        segments: tr.segments,
        audio_ms,
        speech_ms,
        rtf: if speech_ms > 0 {
            start.elapsed().as_secs_f64() * 1000.0 / speech_ms as f64
        } else {
            0.0
        },
    })
}
