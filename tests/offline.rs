//! Offline by construction: a whole session — ingest, contacts, profile,
//! status, index (memory), chat with a tiny model, a training set and a few
//! training steps, a check-in, export, forget, doctor — runs inside a
//! network namespace without interfaces (`unshare -n`, when this machine
//! permits it) and under `strace -f -e trace=network`, and makes no
//! connection to anything but loopback.
//!
//! Needs strace (scripts/setup.sh installs it); without it the test says so
//! and passes without checking.

use std::path::Path;
use std::process::Command;

use twin::llm::tiny::TinyLlama;

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why a traced network call is not allowed, or `None` when it is.
fn forbidden(line: &str) -> Option<String> {
    let call = ["connect(", "sendto(", "sendmsg(", "sendmmsg("]
        .into_iter()
        .find(|c| line.contains(c))?;
    if line.contains("AF_UNIX") || line.contains("AF_NETLINK") || line.contains("AF_LOCAL") {
        return None;
    }
    if line.contains("127.0.0.1") || line.contains("::1") {
        return None;
    }
    // sendto/sendmsg on an already connected socket name no address: the
    // connect() before it was checked.
    if call != "connect(" && !line.contains("sa_family") && !line.contains("sin_addr") {
        return None;
    }
    Some(line.to_string())
}

#[test]
fn a_full_session_makes_no_network_connection() {
    if !have("strace", &["-V"]) {
        eprintln!("SKIPPED: strace is not installed (bash scripts/setup.sh installs it)");
        return;
    }
    let namespace = have("unshare", &["-n", "true"]);
    if !namespace {
        eprintln!("note: `unshare -n` is not permitted here; tracing without a network namespace");
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let models = h.join("data/models");
    std::fs::create_dir_all(&models).unwrap();
    TinyLlama::default()
        .write(&models.join("tiny-instruct.gguf"))
        .unwrap();
    std::fs::create_dir_all(h.join("config")).unwrap();
    std::fs::write(
        h.join("config/config.toml"),
        "[chat]\nmodel = \"tiny-instruct.gguf\"\nmax_tokens = 8\nseed = 3\nthreads = 1\n\
         [train]\nsteps = 2\ncheckpoint_every = 1\neval_every = 1\nbatch_size = 1\ngrad_accum = 1\nrank = 2\nalpha = 4.0\nwarmup_steps = 0\nvalidation = 0.0\n\
         [checkin]\nrules = [\"daily 08:30\"]\nquiet_hours = \"\"\ntimezone = \"UTC\"\n",
    )
    .unwrap();
    let exports = h.join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    std::fs::write(
        exports.join("WhatsApp Chat with Bob Smith.txt"),
        "1/5/21, 9:16 AM - Bob Smith: are we still on for Saturday?\n\
         1/5/21, 9:17 AM - Alice: yes, ten at the usual place\n",
    )
    .unwrap();
    let trace = h.join("trace.log");
    let twin = env!("CARGO_BIN_EXE_twin");
    let session = format!(
        "set -e\n\
         T='{twin}'\n\
         $T --batch ingest '{ex}' --me Alice\n\
         $T --batch contacts\n\
         $T --batch profile\n\
         $T --batch status\n\
         $T --batch index\n\
         $T --batch memory search 'saturday'\n\
         $T --batch chat 'hello there'\n\
         $T --batch dataset build\n\
         $T --batch train --steps 2\n\
         $T --batch checkin --due --at 2026-11-21T08:31:00Z\n\
         $T --batch export '{bundle}'\n\
         $T --batch forget contact 'Bob Smith'\n\
         $T --batch doctor || true\n",
        ex = exports.display(),
        bundle = h.join("bundle").display(),
    );
    let mut cmd = if namespace {
        let mut c = Command::new("unshare");
        c.args(["-n", "strace"]);
        c
    } else {
        Command::new("strace")
    };
    cmd.args(["-f", "-qq", "-e", "trace=network", "-o"])
        .arg(&trace)
        .args(["sh", "-c", &session])
        .env("TWIN_HOME", h)
        .env_remove("TWIN_MODELS_DIR")
        .env_remove("TWIN_CHAT_MODEL")
        .env_remove("TWIN_LOG");
    let out = cmd.output().expect("run the traced session");
    assert!(
        out.status.success(),
        "the session failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"job\":\"chat\""),
        "chat did not run: {stdout}"
    );
    for job in [
        "index", "memory", "dataset", "train", "checkin", "export", "forget",
    ] {
        assert!(
            stdout.contains(&format!("\"job\":\"{job}\"")),
            "{job} did not run: {stdout}"
        );
    }
    // The training steps ran (a checkpoint and an adapter came of them) and
    // the check-in was delivered.
    assert!(
        stdout.contains("\"event\":\"checkin\"") || stdout.contains("\"checkin\""),
        "{stdout}"
    );
    assert!(
        walk(&h.join("data/adapters"))
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "gguf")),
        "no adapter: {stdout}"
    );
    let log = std::fs::read_to_string(&trace).unwrap();
    let bad: Vec<String> = log.lines().filter_map(forbidden).collect();
    assert!(bad.is_empty(), "network calls:\n{}", bad.join("\n"));
    check_private(h);
}

/// While at it: everything twin wrote in the session is private.
fn check_private(h: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for sub in ["data/store", "bundle"] {
        for e in walk(&h.join(sub)) {
            let mode = std::fs::metadata(&e).unwrap().permissions().mode() & 0o077;
            assert_eq!(mode, 0, "{} is readable by others", e.display());
        }
    }
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![d.to_path_buf()];
    for e in std::fs::read_dir(d).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn the_filter_tells_loopback_from_the_world() {
    assert!(
        forbidden("123 connect(3, {sa_family=AF_UNIX, sun_path=\"/run/x\"}, 110) = 0").is_none()
    );
    assert!(
        forbidden("9 connect(5, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"93.184.216.34\")}, 16) = -1")
            .is_some()
    );
    assert!(
        forbidden("9 connect(5, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = 0")
            .is_none()
    );
    assert!(forbidden("9 sendto(5, \"x\", 1, 0, NULL, 0) = 1").is_none());
    assert!(forbidden("9 socket(AF_INET, SOCK_STREAM, 0) = 3").is_none());
}
