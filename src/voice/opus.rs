//! Opus packets (WhatsApp `.opus`, Telegram `.ogg` voice notes) through the
//! system libopus. Symphonia demuxes the Ogg container but has no Opus decoder;
//! libopus is the reference decoder, already on most Linux machines (Debian's
//! `libopus0`, with `libopus-dev` to build), so twin binds its four functions
//! instead of adding a crate that would build a second copy from source.

use std::ffi::{CStr, c_char, c_int};

#[repr(C)]
struct OpusDecoderRaw {
    _private: [u8; 0],
}

#[link(name = "opus")]
unsafe extern "C" {
    fn opus_decoder_create(fs: i32, channels: c_int, error: *mut c_int) -> *mut OpusDecoderRaw;
    fn opus_decode_float(
        st: *mut OpusDecoderRaw,
        data: *const u8,
        len: i32,
        pcm: *mut f32,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_decoder_destroy(st: *mut OpusDecoderRaw);
    fn opus_strerror(error: c_int) -> *const c_char;
}

fn describe(code: c_int) -> String {
    // SAFETY: opus_strerror returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(opus_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

/// The longest Opus frame (120 ms) at 48 kHz.
const MAX_FRAME: usize = 5760;

/// A mono Opus decoder at a chosen output rate (libopus resamples and downmixes).
pub struct OpusDecoder {
    raw: *mut OpusDecoderRaw,
    rate: u32,
    buf: Vec<f32>,
}

// SAFETY: the decoder state is only touched through &mut self.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// `rate` is one of 8000, 12000, 16000, 24000, 48000.
    pub fn new(rate: u32) -> Result<OpusDecoder, String> {
        let mut err: c_int = 0;
        // SAFETY: plain constructor; err receives the status.
        let raw = unsafe { opus_decoder_create(rate as i32, 1, &mut err) };
        if raw.is_null() || err != 0 {
            return Err(format!("libopus: {}", describe(err)));
        }
        Ok(OpusDecoder {
            raw,
            rate,
            buf: vec![0.0; MAX_FRAME],
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decode one packet, appending its samples to `out`.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
        // SAFETY: buf holds MAX_FRAME floats, the most one packet decodes to.
        let n = unsafe {
            opus_decode_float(
                self.raw,
                packet.as_ptr(),
                packet.len() as i32,
                self.buf.as_mut_ptr(),
                MAX_FRAME as c_int,
                0,
            )
        };
        if n < 0 {
            return Err(format!("libopus: {}", describe(n)));
        }
        out.extend_from_slice(&self.buf[..n as usize]);
        Ok(())
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { opus_decoder_destroy(self.raw) }
    }
}

/// The pre-skip (samples at 48 kHz to drop from the start) in an `OpusHead`.
pub fn pre_skip(head: &[u8]) -> usize {
    if head.len() >= 12 && head.starts_with(b"OpusHead") {
        u16::from_le_bytes([head[10], head[11]]) as usize
    } else {
        0
    }
}
