//! `twin --batch checkin` on a store ingested from a fixture export: the due
//! check-ins as `checkin` lines, marked delivered, never twice; the list; the
//! clear refusal while the TUI holds the store. With $TWIN_MODELS_DIR holding
//! SmolLM2, the check-in is also composed by the model (skipped otherwise).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/checkin/WhatsApp Chat with Sam Lee.txt";

fn twin(home: &Path, models: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_twin"));
    c.args(args)
        .env("TWIN_HOME", home)
        .env("TWIN_TZ", "UTC")
        .env_remove("TWIN_MODELS_DIR")
        .env_remove("TWIN_LOG");
    if let Some(m) = models {
        c.env("TWIN_MODELS_DIR", m);
    }
    c.output().expect("run twin")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn checkins(out: &Output) -> Vec<Value> {
    lines(out)
        .into_iter()
        .filter(|l| l["event"] == "checkin")
        .collect()
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A home with the fixture imported (I am Jo Doe).
fn ingested() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let out = twin(
        home.path(),
        None,
        &[
            "--batch",
            "ingest",
            fixture.to_str().unwrap(),
            "--me",
            "Jo Doe",
        ],
    );
    ok(&out);
    home
}

#[test]
fn due_checkins_are_printed_once_and_marked_delivered() {
    let home = ingested();
    let h = home.path();

    // The interview on Friday 20 Nov gets a follow-up on Saturday at 10:00.
    let out = twin(
        h,
        None,
        &[
            "--batch",
            "checkin",
            "--list",
            "--at",
            "2026-11-20T12:00:00Z",
        ],
    );
    ok(&out);
    let done = lines(&out).pop().unwrap();
    let upcoming = done["summary"]["upcoming"].as_array().unwrap();
    let event = upcoming
        .iter()
        .find(|u| u["rule"] == "event")
        .unwrap_or_else(|| panic!("{upcoming:?}"));
    assert_eq!(event["due"], "2026-11-21T10:00:00+00:00");
    assert_eq!(event["subject"], "job interview");
    assert!(upcoming.iter().any(|u| u["rule"] == "daily 20:00"));

    // At 10:05 the follow-up is due; the 08:30 one was missed (twin was not
    // running) and catch-up delivers only the newest.
    let out = twin(
        h,
        None,
        &[
            "--batch",
            "checkin",
            "--due",
            "--at",
            "2026-11-21T10:05:00Z",
        ],
    );
    ok(&out);
    let got = checkins(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    let c = &got[0];
    assert_eq!(c["rule"], "event");
    assert_eq!(c["due"], "2026-11-21T10:00:00+00:00");
    assert_eq!(c["job"], "checkin");
    assert_eq!(c["id"].as_str().unwrap().len(), 16);
    let text = c["text"].as_str().unwrap();
    assert!(text.starts_with("How did the job interview go?"), "{text}");
    let cite = c["cites"][0].as_str().unwrap();
    assert!(text.contains(&format!("[{cite}]")), "{text} cites {cite}");
    let done = lines(&out).pop().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["summary"]["missed"], 1);

    // Again at the same time, and a bit later: nothing twice.
    for at in ["2026-11-21T10:05:00Z", "2026-11-21T10:20:00Z"] {
        let out = twin(h, None, &["--batch", "checkin", "--due", "--at", at]);
        ok(&out);
        assert!(checkins(&out).is_empty(), "{at}");
    }

    // The evening one, grounded in the latest message.
    let out = twin(
        h,
        None,
        &[
            "--batch",
            "checkin",
            "--due",
            "--at",
            "2026-11-21T20:00:30Z",
        ],
    );
    ok(&out);
    let got = checkins(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["rule"], "daily 20:00");
    assert!(
        got[0]["text"].as_str().unwrap().contains("will do, thanks"),
        "{}",
        got[0]["text"]
    );

    // History lists both, newest first; snooze one by its id.
    let out = twin(
        h,
        None,
        &[
            "--batch",
            "checkin",
            "--list",
            "--at",
            "2026-11-21T20:01:00Z",
        ],
    );
    let done = lines(&out).pop().unwrap();
    let history = done["summary"]["history"].as_array().unwrap();
    let delivered: Vec<&Value> = history
        .iter()
        .filter(|h| h["status"] == "delivered")
        .collect();
    assert_eq!(delivered.len(), 2, "{history:?}");
    assert_eq!(delivered[0]["rule"], "daily 20:00");
    let id = delivered[0]["id"].as_str().unwrap().to_string();
    let out = twin(
        h,
        None,
        &[
            "--batch",
            "checkin",
            "--snooze",
            &id,
            "--minutes",
            "10",
            "--at",
            "2026-11-21T20:01:00Z",
        ],
    );
    ok(&out);
    let out = twin(
        h,
        None,
        &[
            "--batch",
            "checkin",
            "--due",
            "--at",
            "2026-11-21T20:12:00Z",
        ],
    );
    let got = checkins(&out);
    assert_eq!(got.len(), 1, "the snoozed one comes back: {got:?}");
    assert_eq!(got[0]["id"], id.as_str());
}

#[test]
fn people_get_text_and_bad_input_is_refused_clearly() {
    let home = ingested();
    let h = home.path();
    let out = twin(
        h,
        None,
        &["checkin", "--due", "--at", "2026-11-21T10:05:00Z"],
    );
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("] event (2026-11-21T10:00:00+00:00): "),
        "{text}"
    );
    assert!(text.contains("How did the job interview go?"), "{text}");

    let out = twin(
        h,
        None,
        &["--batch", "checkin", "--due", "--at", "tomorrow"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    let out = twin(h, None, &["--batch", "checkin", "--dismiss", "zz"]);
    assert_eq!(out.status.code(), Some(1));
    let last = lines(&out).pop().unwrap();
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("twin checkin --list"),
        "{last}"
    );

    std::fs::write(
        h.join("config/config.toml"),
        "[checkin]\nrules = [\"daily 8h\"]\n",
    )
    .unwrap();
    let out = twin(h, None, &["--batch", "checkin", "--due"]);
    assert_eq!(out.status.code(), Some(2));
    let last = lines(&out).pop().unwrap();
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("checkin.rules: rule `daily 8h`"),
        "{last}"
    );
}

#[test]
fn while_the_tui_holds_the_store_the_batch_command_says_it_delivers_itself() {
    let home = ingested();
    let _tui = twin::store::Store::open_as(&home.path().join("data/store"), "tui").unwrap();
    let out = twin(home.path(), None, &["--batch", "checkin", "--due"]);
    assert_eq!(out.status.code(), Some(1));
    let last = lines(&out).pop().unwrap();
    assert_eq!(last["event"], "failed");
    let err = last["error"].as_str().unwrap();
    assert!(err.contains("the twin TUI"), "{err}");
    assert!(err.contains("delivers check-ins itself"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}

/// Marked: needs SmolLM2 in $TWIN_MODELS_DIR (`bash scripts/fetch-models.sh`).
#[test]
fn with_the_model_the_twin_writes_the_check_in_and_still_cites() {
    let Some(dir) = std::env::var_os("TWIN_MODELS_DIR") else {
        eprintln!("SKIPPED: TWIN_MODELS_DIR is not set (scripts/test.sh sets it)");
        return;
    };
    let models = std::path::PathBuf::from(dir);
    if !models.join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file() {
        eprintln!("SKIPPED: SmolLM2 is absent from {}", models.display());
        return;
    }
    let home = ingested();
    std::fs::write(
        home.path().join("config/config.toml"),
        "[chat]\nseed = 7\nthreads = 2\n",
    )
    .unwrap();
    let out = twin(
        home.path(),
        Some(&models),
        &[
            "--batch",
            "checkin",
            "--due",
            "--at",
            "2026-11-21T10:05:00Z",
        ],
    );
    ok(&out);
    let got = checkins(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0]["text"].as_str().unwrap();
    let cite = got[0]["cites"][0].as_str().unwrap();
    assert!(text.contains(&format!("[{cite}]")), "{text}");
    let done = lines(&out).pop().unwrap();
    eprintln!("model-written check-in: {text}");
    assert_eq!(done["summary"]["delivered"][0]["by_model"], true, "{done}");
}
