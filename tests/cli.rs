//! The binary as a script meets it: `--batch` JSON lines, exit codes, errors.

use std::process::{Command, Output};

fn twin(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(args)
        .env("TWIN_HOME", home)
        .env_remove("TWIN_MODELS_DIR")
        .env_remove("TWIN_LOG")
        .output()
        .expect("run twin")
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn batch_status_on_an_empty_home_prints_json() {
    let home = tempfile::tempdir().unwrap();
    let out = twin(home.path(), &["--batch", "status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["event"], "started");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["job"], "status");
    let s = &last["summary"];
    assert_eq!(s["store"]["counts"]["messages"], 0);
    assert_eq!(
        s["store"]["schema_version"],
        twin::store::migrate::SCHEMA_VERSION
    );
    assert_eq!(
        s["folders"]["data_dir"],
        home.path().join("data").to_str().unwrap()
    );
    assert!(s["models"].as_array().unwrap().is_empty());
}

#[test]
fn models_dir_env_is_honoured() {
    let home = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    std::fs::write(models.path().join("m.gguf"), b"GGUF").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(["--batch", "status", "--home"])
        .arg(home.path())
        .env("TWIN_MODELS_DIR", models.path())
        .output()
        .unwrap();
    let last = json_lines(&out).pop().unwrap();
    assert_eq!(last["summary"]["models"][0]["name"], "m.gguf");
}

#[test]
fn a_second_twin_on_the_same_home_fails_clearly() {
    let home = tempfile::tempdir().unwrap();
    let _held = twin::store::Store::open(&home.path().join("data/store")).unwrap();
    let out = twin(home.path(), &["--batch", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let last = json_lines(&out).pop().unwrap();
    assert_eq!(last["event"], "failed");
    let err = last["error"].as_str().unwrap();
    assert!(
        err.contains("store in use by another twin process"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}

#[test]
fn batch_without_a_command_is_bad_usage() {
    let home = tempfile::tempdir().unwrap();
    let out = twin(home.path(), &["--batch"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_lines(&out)[0]["event"], "failed");
    let out = twin(home.path(), &["--batch", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_malformed_config_is_refused_with_file_line_and_column() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("config")).unwrap();
    std::fs::write(
        home.path().join("config/config.toml"),
        "[ui]\ntheme = \"dark\"\nmouse = 3\n",
    )
    .unwrap();
    let out = twin(home.path(), &["--batch", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml:3:9"), "{err}");
    assert!(err.contains("`ui.mouse` must be true or false"), "{err}");
    // Nothing was lost: the store was never touched, and doctor still runs.
    let out = twin(home.path(), &["--batch", "doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let last = json_lines(&out).pop().unwrap();
    let checks = last["summary"]["checks"].as_array().unwrap();
    let config = checks.iter().find(|c| c["name"] == "config").unwrap();
    assert_eq!(config["status"], "fail");
}

#[test]
fn config_shows_every_key_with_its_source() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("config")).unwrap();
    std::fs::write(
        home.path().join("config/config.toml"),
        "[ui]\n\nkeymap = \"vim\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(["--batch", "config"])
        .env("TWIN_HOME", home.path())
        .env("TWIN_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let keys = json_lines(&out).pop().unwrap()["summary"]["keys"].clone();
    let by = |k: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(by("ui.keymap")["value"], "vim");
    assert_eq!(by("ui.keymap")["source"]["kind"], "file");
    assert_eq!(by("ui.keymap")["source"]["line"], 3);
    assert_eq!(by("ui.theme")["source"]["kind"], "default");
    assert_eq!(by("log.filter")["source"]["var"], "TWIN_LOG");
    assert!(by("ui.theme")["doc"].as_str().unwrap().len() > 10);
}

#[test]
fn version_prints_the_folders() {
    let home = tempfile::tempdir().unwrap();
    let out = twin(home.path(), &["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("twin {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains(home.path().join("data").to_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("TWIN_HOME"), "{text}");
}

#[test]
fn doctor_on_a_fresh_home_succeeds() {
    let home = tempfile::tempdir().unwrap();
    let out = twin(home.path(), &["doctor"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 failed"), "{text}");
}

#[test]
fn completions_and_man_page_are_generated() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = twin(home.path(), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).contains("doctor"));
    }
    let out = twin(home.path(), &["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH twin"));
}

#[test]
fn the_tui_refuses_to_start_without_a_terminal() {
    let home = tempfile::tempdir().unwrap();
    let out = twin(home.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch"));
}
