//! Push-to-talk recording from the default input device (cpal; ALSA on Linux):
//! device rate and channels in, 16 kHz mono out, silence trimmed.
//!
//! cpal's stream cannot move between threads, so a recorder owns a thread that
//! holds the stream until it is stopped. Over SSH there is no input device:
//! [`Recorder::start`] then fails with [`MicError::NoDevice`] and nothing else
//! happens. ALSA prints its own errors on stderr, which would tear a TUI
//! screen; [`quiet_alsa`] routes them to the log instead.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::{VoiceError, WHISPER_RATE, audio};

#[derive(Debug, thiserror::Error)]
pub enum MicError {
    #[error("no microphone: {0}")]
    NoDevice(String),
    #[error("recording failed: {0}")]
    Stream(String),
    #[error(transparent)]
    Voice(#[from] VoiceError),
}

/// Keep ALSA's error messages off stderr (they go to the log at debug level).
pub fn quiet_alsa() {
    #[cfg(target_os = "linux")]
    alsa_quiet::install();
}

#[cfg(target_os = "linux")]
mod alsa_quiet {
    use std::ffi::{c_char, c_int};
    use std::sync::Once;

    type Handler =
        unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, *const c_char, ...);
    type Plain = unsafe extern "C" fn(*const c_char, c_int, *const c_char, c_int, *const c_char);

    #[link(name = "asound")]
    unsafe extern "C" {
        fn snd_lib_error_set_handler(handler: Option<Handler>) -> c_int;
    }

    unsafe extern "C" fn to_log(
        file: *const c_char,
        line: c_int,
        function: *const c_char,
        err: c_int,
        _fmt: *const c_char,
    ) {
        let text = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: ALSA passes NUL-terminated strings.
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned()
            }
        };
        tracing::debug!(target: "twin::voice::alsa", "ALSA {}:{line} {} error {err}", text(file), text(function));
    }

    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: the handler ignores the variadic arguments, which the C
            // calling convention lets a callee do; ALSA keeps the pointer.
            unsafe {
                let h = std::mem::transmute::<Plain, Handler>(to_log);
                snd_lib_error_set_handler(Some(h));
            }
        });
    }
}

/// What the recording thread hands back: the samples and their rate.
type Recorded = Result<(Vec<f32>, u32), MicError>;

/// A recording in progress.
pub struct Recorder {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<Recorded>>,
    level: Arc<AtomicU32>,
    started: Instant,
}

impl Recorder {
    /// Start recording from the default input device.
    pub fn start() -> Result<Recorder, MicError> {
        quiet_alsa();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), MicError>>();
        let level = Arc::new(AtomicU32::new(0));
        let lv = level.clone();
        let thread = std::thread::Builder::new()
            .name("twin-mic".into())
            .spawn(move || record(stop_rx, ready_tx, lv))
            .map_err(|e| MicError::Stream(e.to_string()))?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Recorder {
                stop: stop_tx,
                thread: Some(thread),
                level,
                started: Instant::now(),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(MicError::NoDevice(
                "the input device did not start within 5 s".into(),
            )),
        }
    }

    /// The loudness of the latest audio, 0..1 (RMS, scaled so speech fills it).
    pub fn level(&self) -> f32 {
        f32::from_bits(self.level.load(Ordering::Relaxed))
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stop and return the recording at 16 kHz mono with silence trimmed, and
    /// its length before trimming in milliseconds.
    pub fn stop(mut self) -> Result<(Vec<f32>, u64), MicError> {
        let _ = self.stop.send(());
        let (samples, rate) = self
            .thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| MicError::Stream("the recording thread stopped".into()))??;
        let ms = if rate > 0 {
            samples.len() as u64 * 1000 / rate as u64
        } else {
            0
        };
        let at16k = audio::resample(&samples, rate, WHISPER_RATE)?;
        Ok((audio::trim_silence(&at16k, WHISPER_RATE).to_vec(), ms))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

fn record(
    stop: mpsc::Receiver<()>,
    ready: mpsc::Sender<Result<(), MicError>>,
    level: Arc<AtomicU32>,
) -> Result<(Vec<f32>, u32), MicError> {
    let fail = |why: String| {
        let _ = ready.send(Err(MicError::NoDevice(why.clone())));
        Err(MicError::NoDevice(why))
    };
    let host = cpal::default_host();
    let Some(device) = host.default_input_device() else {
        return fail("no input device".into());
    };
    let config = match device.default_input_config() {
        Ok(c) => c,
        Err(e) => return fail(format!("input device unavailable ({e})")),
    };
    let rate = config.sample_rate().0;
    let channels = config.channels().max(1) as usize;
    let buf: Arc<Mutex<Vec<f32>>> = Arc::default();
    let sink = {
        let buf = buf.clone();
        move |mono: &[f32]| {
            let rms = audio::rms(mono);
            level.store((rms * 4.0).min(1.0).to_bits(), Ordering::Relaxed);
            buf.lock().expect("mic buffer").extend_from_slice(mono);
        }
    };
    let err_fn = |e: cpal::StreamError| tracing::warn!("microphone: {e}");
    let stream_config: cpal::StreamConfig = config.clone().into();
    let stream = match config.sample_format() {
        cpal::SampleFormat::F32 => device.build_input_stream(
            &stream_config,
            move |data: &[f32], _: &cpal::InputCallbackInfo| sink(&mono(data, channels, |s| s)),
            err_fn,
            None,
        ),
        cpal::SampleFormat::I16 => device.build_input_stream(
            &stream_config,
            move |data: &[i16], _: &cpal::InputCallbackInfo| {
                sink(&mono(data, channels, |s| s as f32 / 32_768.0))
            },
            err_fn,
            None,
        ),
        cpal::SampleFormat::I32 => device.build_input_stream(
            &stream_config,
            move |data: &[i32], _: &cpal::InputCallbackInfo| {
                sink(&mono(data, channels, |s| s as f32 / 2_147_483_648.0))
            },
            err_fn,
            None,
        ),
        cpal::SampleFormat::U16 => device.build_input_stream(
            &stream_config,
            move |data: &[u16], _: &cpal::InputCallbackInfo| {
                sink(&mono(data, channels, |s| (s as f32 - 32_768.0) / 32_768.0))
            },
            err_fn,
            None,
        ),
        other => {
            return fail(format!(
                "the input device's sample format {other:?} is not supported"
            ));
        }
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot open the input ({e})")),
    };
    if let Err(e) = stream.play() {
        return fail(format!("cannot start the input ({e})"));
    }
    let _ = ready.send(Ok(()));
    // Until stopped (or the recorder is dropped), at most ten minutes.
    let _ = stop.recv_timeout(Duration::from_secs(600));
    drop(stream);
    let samples = std::mem::take(&mut *buf.lock().expect("mic buffer"));
    Ok((samples, rate))
}

/// Interleaved frames to mono.
fn mono<T: Copy>(data: &[T], channels: usize, f: impl Fn(T) -> f32) -> Vec<f32> {
    data.chunks(channels)
        .map(|fr| fr.iter().map(|&s| f(s)).sum::<f32>() / fr.len() as f32)
        .collect()
}
