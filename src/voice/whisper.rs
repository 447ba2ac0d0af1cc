//! whisper.cpp through whisper-rs: a loaded model that turns 16 kHz mono
//! samples into timed segments. It shares llama.cpp's ggml (see build.rs).

use std::ffi::{CStr, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::Once;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{Segment, VoiceError};

/// whisper.cpp logs through ggml's logger; send both to tracing (debug), never
/// to stderr, where they would corrupt the TUI.
fn quiet_logs() {
    static ONCE: Once = Once::new();
    unsafe extern "C" fn to_tracing(_level: u32, text: *const c_char, _: *mut c_void) {
        if text.is_null() {
            return;
        }
        // SAFETY: whisper.cpp passes a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let s = s.trim_end();
        if !s.is_empty() {
            tracing::debug!(target: "twin::voice::whisper_cpp", "{s}");
        }
    }
    ONCE.call_once(|| {
        // SAFETY: installs a static callback with no user data.
        unsafe { whisper_rs_sys::whisper_log_set(Some(to_tracing), std::ptr::null_mut()) }
    });
}

/// A loaded whisper model.
pub struct Transcriber {
    ctx: WhisperContext,
    path: PathBuf,
    threads: usize,
    language: String,
}

impl Transcriber {
    /// Load a ggml whisper model. `language`: "auto" or a code such as "en"
    /// (English-only models always use "en").
    pub fn load(path: &Path, threads: usize, language: &str) -> Result<Transcriber, VoiceError> {
        quiet_logs();
        if !path.is_file() {
            return Err(VoiceError::NoModel(path.to_path_buf()));
        }
        let text = path.to_str().ok_or_else(|| VoiceError::BadModel {
            path: path.to_path_buf(),
            why: "its path is not UTF-8".into(),
        })?;
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let ctx =
            WhisperContext::new_with_params(text, params).map_err(|e| VoiceError::BadModel {
                path: path.to_path_buf(),
                why: format!("whisper.cpp could not load it ({e}); is it a ggml whisper model?"),
            })?;
        let language = if ctx.is_multilingual() {
            language.to_string()
        } else {
            "en".to_string()
        };
        Ok(Transcriber {
            ctx,
            path: path.to_path_buf(),
            threads: threads.max(1),
            language,
        })
    }

    pub fn model_path(&self) -> &Path {
        &self.path
    }

    pub fn model_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Transcribe 16 kHz mono samples. `cancelled` is polled by whisper.cpp.
    pub fn transcribe(
        &self,
        samples: &[f32],
        cancelled: impl Fn() -> bool + 'static,
    ) -> Result<Vec<Segment>, VoiceError> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self
            .ctx
            .create_state()
            .map_err(|e| VoiceError::Whisper(format!("no whisper state ({e})")))?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads as i32);
        let lang = (self.language != "auto").then_some(self.language.as_str());
        params.set_language(lang.or(Some("auto")));
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_no_context(true);
        params.set_suppress_blank(true);
        // whisper-rs 0.16's safe abort callback reaches the closure through a
        // dangling pointer (it hung in testing), so cancellation is checked
        // before and after a note instead; notes are short.
        if cancelled() {
            return Ok(Vec::new());
        }
        // whisper.cpp needs at least one second; pad short notes with silence.
        let min = super::WHISPER_RATE as usize + super::WHISPER_RATE as usize / 10;
        let padded;
        let input = if samples.len() < min {
            padded = {
                let mut v = samples.to_vec();
                v.resize(min, 0.0);
                v
            };
            &padded[..]
        } else {
            samples
        };
        state
            .full(params, input)
            .map_err(|e| VoiceError::Whisper(format!("transcription failed ({e})")))?;
        let mut out = Vec::new();
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            // Timestamps are in centiseconds.
            out.push(Segment {
                start_ms: seg.start_timestamp().max(0) as u64 * 10,
                end_ms: seg.end_timestamp().max(0) as u64 * 10,
                text,
            });
        }
        Ok(out)
    }
}
