//! Sample-rate conversion (rubato) and silence trimming.

use rubato::{FftFixedIn, Resampler};

use super::VoiceError;

/// Resample mono `input` from `from` Hz to `to` Hz.
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, VoiceError> {
    if from == to || input.is_empty() {
        return Ok(input.to_vec());
    }
    let err = |e: String| VoiceError::Undecodable(format!("resampling {from} Hz failed: {e}"));
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, 1024, 2, 1)
        .map_err(|e| err(e.to_string()))?;
    let delay = r.output_delay();
    let expected = (input.len() as u64 * to as u64 / from as u64) as usize;
    let mut out = Vec::with_capacity(expected + delay + 2048);
    let mut pos = 0;
    while input.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        let o = r
            .process(&[&input[pos..pos + n]][..], None)
            .map_err(|e| err(e.to_string()))?;
        out.extend_from_slice(&o[0]);
        pos += n;
    }
    if pos < input.len() {
        let o = r
            .process_partial(Some(&[&input[pos..]][..]), None)
            .map_err(|e| err(e.to_string()))?;
        out.extend_from_slice(&o[0]);
    }
    // Flush what the filter still holds.
    while out.len() < expected + delay {
        let o = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| err(e.to_string()))?;
        if o[0].is_empty() {
            break;
        }
        out.extend_from_slice(&o[0]);
    }
    out.drain(..delay.min(out.len()));
    out.truncate(expected);
    Ok(out)
}

/// Root mean square of a frame.
pub fn rms(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    (frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32).sqrt()
}

/// The part of `samples` (at `rate` Hz) between the first and the last frame
/// louder than the noise floor, with a little margin kept on each side. All
/// silence gives an empty slice.
pub fn trim_silence(samples: &[f32], rate: u32) -> &[f32] {
    let frame = (rate as usize / 50).max(1); // 20 ms
    let levels: Vec<f32> = samples.chunks(frame).map(rms).collect();
    let peak = levels.iter().copied().fold(0.0f32, f32::max);
    // Louder than -50 dBFS and than 5 % of the loudest frame.
    let threshold = (peak * 0.05).max(0.003);
    let Some(first) = levels.iter().position(|&l| l > threshold) else {
        return &samples[..0];
    };
    let last = levels.iter().rposition(|&l| l > threshold).unwrap_or(first);
    let margin = rate as usize / 5; // 200 ms
    let start = (first * frame).saturating_sub(margin);
    let end = ((last + 1) * frame + margin).min(samples.len());
    &samples[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| (i as f32 / rate as f32 * hz * std::f32::consts::TAU).sin() * 0.5)
            .collect()
    }

    #[test]
    fn resampling_keeps_duration_and_pitch() {
        let input = tone(48_000, 440.0, 1.0);
        let out = resample(&input, 48_000, 16_000).unwrap();
        assert_eq!(out.len(), 16_000);
        // Zero crossings of a 440 Hz tone over one second: about 880.
        let crossings = out
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((860..=900).contains(&crossings), "{crossings}");
        assert!((rms(&out[1000..15000]) - 0.3535).abs() < 0.02);
    }

    #[test]
    fn odd_rates_resample_too() {
        let out = resample(&tone(44_100, 300.0, 0.5), 44_100, 16_000).unwrap();
        assert_eq!(out.len(), 8_000);
        let out = resample(&tone(8_000, 300.0, 0.5), 8_000, 16_000).unwrap();
        assert_eq!(out.len(), 8_000);
    }

    #[test]
    fn silence_is_trimmed_with_a_margin() {
        let rate = 16_000;
        let mut s = vec![0.0; rate as usize]; // 1 s silence
        s.extend(tone(rate, 200.0, 0.5));
        s.extend(vec![0.0; rate as usize * 2]);
        let t = trim_silence(&s, rate);
        // 0.5 s of tone plus up to 2 x 200 ms margins (and a frame of rounding).
        assert!(
            t.len() >= 8_000 && t.len() <= 8_000 + 6_400 + 640,
            "{}",
            t.len()
        );
        assert!(trim_silence(&vec![0.0; 16_000], rate).is_empty());
        assert!(trim_silence(&[], rate).is_empty());
    }
}
