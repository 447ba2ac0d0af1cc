//! Audio files to mono samples: symphonia demuxes (Ogg, WAV, MP3, MP4/M4A, ADTS)
//! and decodes (PCM, MP3, AAC, Vorbis); Opus goes to libopus ([`super::opus`]).

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::VoiceError;
use super::opus::{OpusDecoder, pre_skip};

/// Decoded audio: mono samples in [-1, 1] at `rate` Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub rate: u32,
    /// The container and codec, e.g. "ogg/opus", "wav/pcm_s16le".
    pub format: String,
}

impl Audio {
    pub fn duration_ms(&self) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / self.rate as u64
    }
}

/// Decode a whole file's bytes. `ext` (without the dot) helps the probe.
pub fn decode(bytes: Vec<u8>, ext: Option<&str>) -> Result<Audio, VoiceError> {
    let bad = |why: String| VoiceError::Undecodable(why);
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| bad(format!("not a sound file twin can read ({e})")))?;
    let container = probed_name(ext);
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| bad("no audio track".into()))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let mut samples = Vec::new();

    if params.codec == CODEC_TYPE_OPUS {
        // Decode straight to 16 kHz mono: libopus resamples better than twice.
        let mut dec = OpusDecoder::new(super::WHISPER_RATE).map_err(bad)?;
        let skip =
            params.extra_data.as_deref().map(pre_skip).unwrap_or(0) * dec.rate() as usize / 48_000;
        let mut errors = 0usize;
        loop {
            let packet = match reader.next_packet() {
                Ok(p) => p,
                Err(e) if is_end(&e) => break,
                Err(e) => return Err(bad(format!("damaged container ({e})"))),
            };
            if packet.track_id() != track_id {
                continue;
            }
            if dec.decode(&packet.data, &mut samples).is_err() {
                errors += 1;
            }
        }
        if samples.is_empty() && errors > 0 {
            return Err(bad(format!("{errors} Opus packets could not be decoded")));
        }
        samples.drain(..skip.min(samples.len()));
        return Ok(Audio {
            samples,
            rate: dec.rate(),
            format: format!("{container}/opus"),
        });
    }

    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| bad(format!("unsupported codec ({e})")))?;
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|c| c.short_name.to_string())
        .unwrap_or_else(|| "?".into());
    let mut rate = params.sample_rate.unwrap_or(0);
    let mut buf: Option<SampleBuffer<f32>> = None;
    let mut decoded_any = false;
    let mut last_error = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(e) if is_end(&e) => break,
            Err(e) => return Err(bad(format!("damaged container ({e})"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A damaged packet is skipped; the rest of the note still counts.
            Err(SymError::DecodeError(e)) => {
                last_error = Some(e.to_string());
                continue;
            }
            Err(e) => return Err(bad(format!("decoding failed ({e})"))),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        let channels = spec.channels.count().max(1);
        let need = decoded.capacity() * channels;
        if buf.as_ref().is_none_or(|b| b.capacity() < need) {
            buf = Some(SampleBuffer::new(decoded.capacity() as u64, spec));
        }
        let b = buf.as_mut().expect("set above");
        b.copy_interleaved_ref(decoded);
        for frame in b.samples().chunks(channels) {
            samples.push(frame.iter().sum::<f32>() / channels as f32);
        }
        decoded_any = true;
    }
    if !decoded_any {
        return Err(bad(match last_error {
            Some(e) => format!("no packet could be decoded ({e})"),
            None => "no audio in the file".into(),
        }));
    }
    if rate == 0 {
        return Err(bad("the file does not say its sample rate".into()));
    }
    Ok(Audio {
        samples,
        rate,
        format: format!("{container}/{codec}"),
    })
}

fn is_end(e: &SymError) -> bool {
    match e {
        SymError::IoError(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        SymError::ResetRequired => true,
        _ => false,
    }
}

fn probed_name(ext: Option<&str>) -> String {
    match ext.map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("opus" | "ogg" | "oga") => "ogg".into(),
        Some("m4a" | "mp4" | "m4b") => "mp4".into(),
        Some(e) => e.to_string(),
        None => "audio".into(),
    }
}
