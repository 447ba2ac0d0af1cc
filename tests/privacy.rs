//! Private by construction, as a user meets it: encryption at rest (nothing
//! readable under the home, wrong passphrase, rekey, encrypting an existing
//! store), the export bundle and its exact restore, forgetting a person with
//! every cascade, file modes, and logs without message text.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use twin::store::{Passphrase, Store, Tree};

const SENTENCE: &str = "Marmalade sandwiches arrive tomorrow";
const KDF: &str = "[privacy]\nkdf_memory_kib = 64\nkdf_iterations = 1\n";

/// Two WhatsApp exports: a chat with Bob alone and a group with Bob and Carol.
fn exports() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("WhatsApp Chat with Bob Smith.txt"),
        format!(
            "1/5/21, 9:16 AM - Bob Smith: {SENTENCE}\n\
             1/5/21, 9:17 AM - Alice: Wonderful, bring the thermos please\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.path().join("WhatsApp Chat with Garden Club.txt"),
        "2/1/21, 8:00 AM - Bob Smith: the hedgehog visited again\n\
         2/1/21, 8:05 AM - Carol Jones: lovely news indeed\n\
         2/1/21, 8:06 AM - Alice: I saw it too\n",
    )
    .unwrap();
    d
}

fn home() -> tempfile::TempDir {
    let h = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(h.path().join("config")).unwrap();
    std::fs::write(h.path().join("config/config.toml"), KDF).unwrap();
    h
}

fn twin(home: &Path, args: &[&str]) -> Output {
    twin_env(home, args, &[])
}

fn twin_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_twin"));
    c.args(args)
        .env("TWIN_HOME", home)
        .env("TWIN_TZ", "UTC")
        .env_remove("TWIN_MODELS_DIR")
        .env_remove("TWIN_LOG")
        .env_remove("TWIN_PASSPHRASE_FILE")
        .env_remove("TWIN_PASSPHRASE_FD");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run twin")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Run, expect success, return the `done` summary.
fn ok(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = twin(home, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "twin {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let last = lines(&out).pop().unwrap();
    assert_eq!(last["event"], "done", "{last}");
    last["summary"].clone()
}

fn pass_file(dir: &Path, name: &str, pass: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{pass}\n")).unwrap();
    p
}

fn ingest(home: &Path, exports: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--batch",
        "ingest",
        exports.to_str().unwrap(),
        "--me",
        "Alice",
    ];
    args.extend_from_slice(extra);
    ok(home, &args)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn hits(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let b = std::fs::read(p).unwrap();
            b.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

fn embedding() -> Vec<u8> {
    (0..384)
        .flat_map(|i| ((i as f32) * 0.037 - 3.1).to_le_bytes())
        .collect()
}

/// Write a known vector through the vectors tree and the seal API.
fn write_vector(store_dir: &Path, pass: Option<&str>) {
    let pass = pass.map(|p| Passphrase::new(p).unwrap());
    let s = Store::open_with(store_dir, pass.as_ref()).unwrap();
    let v = embedding();
    s.write(|tx| tx.put_raw(Tree::Vectors, 42u64.to_be_bytes(), v.clone()))
        .unwrap();
    s.write_file("memory.hnsw", &v).unwrap();
}

fn counts(home: &Path, pass: Option<&Path>) -> serde_json::Value {
    let mut args = vec!["--batch", "status"];
    if let Some(p) = pass {
        args.extend(["--passphrase-file", p.to_str().unwrap()]);
    }
    ok(home, &args)["store"]["counts"].clone()
}

#[test]
fn an_encrypted_home_holds_no_plaintext_and_works_unchanged() {
    let ex = exports();
    let secrets = tempfile::tempdir().unwrap();
    let pf = pass_file(secrets.path(), "pass", "correct horse battery");
    let pfs = pf.to_str().unwrap();

    let plain = home();
    ingest(plain.path(), ex.path(), &[]);
    let enc = home();
    let init = ok(
        enc.path(),
        &["--batch", "init", "--encrypt", "--passphrase-file", pfs],
    );
    assert_eq!(init["encrypted"], true);
    ingest(enc.path(), ex.path(), &["--passphrase-file", pfs]);
    write_vector(
        &enc.path().join("data/store"),
        Some("correct horse battery"),
    );
    write_vector(&plain.path().join("data/store"), None);
    // Memory too: episodes and their vectors. The plain home keeps an index
    // dump beside the store; the encrypted one keeps its index in memory only.
    ok(enc.path(), &["--batch", "index", "--passphrase-file", pfs]);
    ok(plain.path(), &["--batch", "index"]);
    assert!(plain.path().join("data/index/vectors.hnsw.data").exists());
    assert!(!enc.path().join("data/index/vectors.hnsw.data").exists());

    // The plain store shows what the test looks for, so the grep is meaningful.
    assert!(!hits(plain.path(), SENTENCE.as_bytes()).is_empty());
    assert!(!hits(plain.path(), &embedding()[..64]).is_empty());

    let mut needles: Vec<Vec<u8>> = vec![SENTENCE.as_bytes().to_vec(), embedding()[..64].to_vec()];
    for w in SENTENCE.split_whitespace().chain([
        "thermos",
        "hedgehog",
        "Wonderful",
        "visited",
        "Smith",
        "Carol",
        "Jones",
    ]) {
        if w.len() >= 5 {
            needles.push(w.as_bytes().to_vec());
            needles.push(w.to_lowercase().into_bytes());
        }
    }
    for n in &needles {
        let h = hits(enc.path(), n);
        assert!(
            h.is_empty(),
            "{:?} found in {h:?}",
            String::from_utf8_lossy(n)
        );
    }

    // Ingest, contacts, profile and status give the same answers.
    assert_eq!(counts(plain.path(), None), counts(enc.path(), Some(&pf)));
    let contacts_plain = ok(plain.path(), &["--batch", "contacts"]);
    let contacts_enc = ok(
        enc.path(),
        &["--batch", "contacts", "--passphrase-file", pfs],
    );
    assert_eq!(contacts_plain, contacts_enc);
    let profile_plain = ok(plain.path(), &["--batch", "profile"]);
    let profile_enc = ok(
        enc.path(),
        &["--batch", "profile", "--passphrase-file", pfs],
    );
    assert_eq!(profile_plain, profile_enc);
    // Re-importing adds nothing, as on a plain store.
    let again = ingest(enc.path(), ex.path(), &["--passphrase-file", pfs]);
    assert_eq!(again["new"], 0);

    // Without a passphrase: a clear error.
    let out = twin(enc.path(), &["--batch", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let last = lines(&out).pop().unwrap();
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("--passphrase-file"),
        "{last}"
    );
}

#[test]
fn a_wrong_passphrase_changes_nothing_and_rekey_changes_it() {
    let ex = exports();
    let secrets = tempfile::tempdir().unwrap();
    let right = pass_file(secrets.path(), "right", "first passphrase");
    let wrong = pass_file(secrets.path(), "wrong", "not the passphrase");
    let newp = pass_file(secrets.path(), "new", "second passphrase");
    let h = home();
    let r = right.to_str().unwrap();
    ok(
        h.path(),
        &["--batch", "init", "--encrypt", "--passphrase-file", r],
    );
    ingest(h.path(), ex.path(), &["--passphrase-file", r]);
    let before = counts(h.path(), Some(&right));

    let out = twin(
        h.path(),
        &[
            "--batch",
            "status",
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = lines(&out).pop().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    let out = twin(
        h.path(),
        &[
            "--batch",
            "rekey",
            "--passphrase-file",
            wrong.to_str().unwrap(),
            "--new-passphrase-file",
            newp.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(counts(h.path(), Some(&right)), before);

    ok(
        h.path(),
        &[
            "--batch",
            "rekey",
            "--passphrase-file",
            r,
            "--new-passphrase-file",
            newp.to_str().unwrap(),
        ],
    );
    let out = twin(h.path(), &["--batch", "status", "--passphrase-file", r]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the old passphrase no longer opens it"
    );
    assert_eq!(counts(h.path(), Some(&newp)), before);

    // The passphrase also comes from a descriptor an agent passes.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec '{}' --batch status --passphrase-fd 3 3<'{}'",
            env!("CARGO_BIN_EXE_twin"),
            newp.display()
        ))
        .env("TWIN_HOME", h.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn encrypting_an_existing_store_loses_nothing_and_leaves_no_plaintext() {
    let ex = exports();
    let secrets = tempfile::tempdir().unwrap();
    let pf = pass_file(secrets.path(), "pass", "swap it in safely");
    let h = home();
    ingest(h.path(), ex.path(), &[]);
    write_vector(&h.path().join("data/store"), None);
    let before = counts(h.path(), None);
    let bundle_before = tempfile::tempdir().unwrap();
    let b1 = bundle_before.path().join("b");
    ok(h.path(), &["--batch", "export", b1.to_str().unwrap()]);

    // What training and the memory index wrote beside the plain store.
    let planted = [
        "data/train/datasets/abc/train.jsonl",
        "data/adapters/abc.gguf",
        "state/train/runs/abc/checkpoint.safetensors",
        "data/index/memory.hnsw.data",
    ];
    for rel in planted {
        let p = h.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut bytes = SENTENCE.as_bytes().to_vec();
        bytes.extend(embedding());
        std::fs::write(&p, bytes).unwrap();
    }
    let r = ok(
        h.path(),
        &[
            "--batch",
            "encrypt",
            "--passphrase-file",
            pf.to_str().unwrap(),
        ],
    );
    assert_eq!(r["encrypted"], true);
    assert_eq!(r["counts"]["files"], 1);
    // Training files are sealed in place; the plain index dump is gone (an
    // encrypted store keeps its index in memory).
    for rel in &planted[..3] {
        assert!(starts_with(&h.path().join(rel), b"twinseal"), "{rel}");
    }
    assert!(!h.path().join("data/index").exists());
    assert_eq!(counts(h.path(), Some(&pf)), before);
    for n in [SENTENCE.as_bytes(), b"hedgehog", &embedding()[..64]] {
        assert!(
            hits(h.path(), n).is_empty(),
            "{:?}",
            String::from_utf8_lossy(n)
        );
    }
    // The same bundle comes out: nothing was lost or changed.
    let b2 = bundle_before.path().join("b2");
    ok(
        h.path(),
        &[
            "--batch",
            "export",
            b2.to_str().unwrap(),
            "--passphrase-file",
            pf.to_str().unwrap(),
        ],
    );
    assert_same_tree(&b1, &b2);
    // A second `encrypt` is refused clearly.
    let out = twin(
        h.path(),
        &[
            "--batch",
            "encrypt",
            "--passphrase-file",
            pf.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already encrypted"));
}

fn assert_same_tree(a: &Path, b: &Path) {
    let rel = |root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        files_under(root)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    let (ra, rb) = (rel(a), rel(b));
    assert_eq!(
        ra.keys().collect::<Vec<_>>(),
        rb.keys().collect::<Vec<_>>(),
        "different files"
    );
    for (k, v) in &ra {
        assert!(
            v == &rb[k],
            "{} differs:\n{}\n---\n{}",
            k.display(),
            String::from_utf8_lossy(v),
            String::from_utf8_lossy(&rb[k])
        );
    }
}

/// A memory record as the memory module would store one (version byte + MessagePack).
fn write_memory(store_dir: &Path) {
    #[derive(serde::Serialize)]
    struct Memory {
        text: String,
        importance: f32,
        sources: Vec<[u8; 16]>,
    }
    let s = Store::open(store_dir).unwrap();
    let mut v = vec![1u8];
    rmp_serde::encode::write_named(
        &mut v,
        &Memory {
            text: "Bob brings marmalade on Saturdays".into(),
            importance: 0.75,
            sources: vec![[7; 16]],
        },
    )
    .unwrap();
    s.write(|tx| tx.put_raw(Tree::Memories, 1u64.to_be_bytes(), v.clone()))
        .unwrap();
}

#[test]
fn export_then_import_into_a_fresh_home_is_exact() {
    let ex = exports();
    let a = home();
    ingest(a.path(), ex.path(), &[]);
    write_vector(&a.path().join("data/store"), None);
    write_memory(&a.path().join("data/store"));
    let out = tempfile::tempdir().unwrap();
    let b1 = out.path().join("one");
    let r = ok(a.path(), &["--batch", "export", b1.to_str().unwrap()]);
    assert_eq!(r["records"]["messages"], 5);
    assert_eq!(r["files"], 1);

    // Readable and diffable: decoded records, Markdown memories, a manifest.
    let msgs = std::fs::read_to_string(b1.join("trees/messages.jsonl")).unwrap();
    assert!(msgs.contains(SENTENCE), "{msgs}");
    assert!(msgs.contains("\"author_name\":\"Bob Smith\""), "{msgs}");
    let md = std::fs::read_to_string(b1.join("memories.md")).unwrap();
    assert!(md.contains("Bob brings marmalade on Saturdays"), "{md}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b1.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["trees"]["contacts"]["records"], 3);
    assert_eq!(manifest["files"][0]["from"], "files/memory.hnsw");
    assert_eq!(
        std::fs::read(b1.join("files/memory.hnsw")).unwrap(),
        embedding()
    );
    for t in Tree::ALL.iter().filter(|t| **t != Tree::Meta) {
        assert!(
            b1.join(format!("trees/{}.jsonl", t.name())).is_file(),
            "{t:?}"
        );
    }

    // Into a fresh home, then out again: the same bundle, the same counts.
    let b = home();
    let r = ok(
        b.path(),
        &["--batch", "import-bundle", b1.to_str().unwrap()],
    );
    assert_eq!(r["records"]["messages"], 5);
    let b2 = out.path().join("two");
    ok(b.path(), &["--batch", "export", b2.to_str().unwrap()]);
    assert_same_tree(&b1, &b2);
    assert_eq!(counts(a.path(), None), counts(b.path(), None));

    // And through an encrypted home.
    let secrets = tempfile::tempdir().unwrap();
    let pf = pass_file(secrets.path(), "p", "bundle passphrase");
    let pfs = pf.to_str().unwrap();
    let c = home();
    ok(
        c.path(),
        &["--batch", "init", "--encrypt", "--passphrase-file", pfs],
    );
    ok(
        c.path(),
        &[
            "--batch",
            "import-bundle",
            b1.to_str().unwrap(),
            "--passphrase-file",
            pfs,
        ],
    );
    let b3 = out.path().join("three");
    ok(
        c.path(),
        &[
            "--batch",
            "export",
            b3.to_str().unwrap(),
            "--passphrase-file",
            pfs,
        ],
    );
    assert_same_tree(&b1, &b3);

    // A non-empty home is refused; nothing changes.
    let out2 = twin(
        a.path(),
        &["--batch", "import-bundle", b1.to_str().unwrap()],
    );
    assert_eq!(out2.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out2.stdout).contains("not empty"));
    assert_eq!(counts(a.path(), None), counts(b.path(), None));
}

#[test]
fn a_damaged_bundle_is_refused_with_file_and_line_and_writes_nothing() {
    let ex = exports();
    let a = home();
    ingest(a.path(), ex.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    let b1 = out.path().join("one");
    ok(a.path(), &["--batch", "export", b1.to_str().unwrap()]);

    // Changed without the manifest knowing: the hash says so.
    let path = b1.join("trees/messages.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("Marmalade", "Marmalate", 1)).unwrap();
    let d = home();
    let o = twin(
        d.path(),
        &["--batch", "import-bundle", b1.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("does not match its hash"));

    // A broken line (hash updated, as a hand edit would need): file and line.
    let mut ls: Vec<String> = text.lines().map(String::from).collect();
    ls[1] = "{\"key\": \"zz\"".into();
    let broken = ls.join("\n") + "\n";
    std::fs::write(&path, &broken).unwrap();
    let mpath = b1.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["trees"]["messages"]["blake2b"] = twin::privacy::bundle::digest(broken.as_bytes()).into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let o = twin(
        d.path(),
        &["--batch", "import-bundle", b1.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = lines(&o).pop().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("messages.jsonl:2"), "{err}");
    let c = counts(d.path(), None);
    assert!(c.as_object().unwrap().values().all(|v| v == 0), "{c}");
}

struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>);

impl twin::privacy::forget::Cascade for Recorder {
    fn name(&self) -> &'static str {
        "test rows"
    }
    fn plan(
        &self,
        _: &Store,
        t: &twin::privacy::forget::Target,
    ) -> anyhow::Result<twin::privacy::forget::Part> {
        Ok(BTreeMap::from([("dataset rows".to_string(), t.messages.len() as u64)]).into())
    }
    fn apply(
        &self,
        _: &Store,
        t: &twin::privacy::forget::Target,
    ) -> anyhow::Result<twin::privacy::forget::Part> {
        self.0
            .lock()
            .unwrap()
            .push((t.messages.len(), t.conversations.len()));
        Ok(BTreeMap::from([("dataset rows".to_string(), t.messages.len() as u64)]).into())
    }
}

#[test]
fn forgetting_a_contact_removes_them_everywhere() {
    let ex = exports();
    let h = home();
    ingest(h.path(), ex.path(), &[]);
    let before = counts(h.path(), None);
    assert_eq!(before["messages"], 5);
    assert_eq!(before["conversations"], 2);

    let plan = ok(
        h.path(),
        &["--batch", "forget", "contact", "Bob Smith", "--dry-run"],
    );
    assert_eq!(plan["dry_run"], true);
    // Both sides of the chat with Bob alone, and Bob's line in the group.
    assert_eq!(plan["removed"]["messages"], 3);
    assert_eq!(plan["removed"]["conversations"], 1);
    assert_eq!(plan["removed"]["contacts"], 1);
    assert!(plan["removed"]["aliases"].as_u64().unwrap() >= 1);
    assert_eq!(counts(h.path(), None), before, "a dry run changes nothing");

    // The rest in-process, with a cascade registered as memory and training do.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    twin::privacy::forget::register(Box::new(Recorder(seen.clone())));
    let store = Store::open(&h.path().join("data/store")).unwrap();
    let bob = twin::ingest::contacts::find(&store, "Bob Smith")
        .unwrap()
        .unwrap();
    let zone = twin::ingest::pipeline::Zone::parse("UTC").unwrap();
    let (ctx, _rx, _) = twin::jobs::JobCtx::detached("forget");
    let r = twin::privacy::forget::apply(&store, &bob, zone, 30 * 60_000, &ctx).unwrap();
    assert_eq!(r.removed["messages"], 3);
    assert_eq!(r.removed["dataset rows"], 3);
    assert_eq!(*seen.lock().unwrap(), vec![(3, 1)]);
    assert!(
        twin::ingest::contacts::find(&store, "Bob Smith")
            .unwrap()
            .is_none()
    );
    for kv in store.tree(Tree::Index).scan_prefix(b"a") {
        let (k, _) = kv.unwrap();
        assert!(
            !String::from_utf8_lossy(&k).contains("bob"),
            "alias left: {k:?}"
        );
    }
    for r in store.scan::<twin::ingest::records::Message>([]) {
        let m = r.unwrap().1;
        assert_ne!(m.author, bob.id);
        assert!(!m.text.contains("Marmalade") && !m.text.contains("thermos"));
    }
    // Per-day activity: the day of the chat with Bob is gone, the group's day has 2.
    let days: Vec<(i64, u64)> = store
        .tree(Tree::Index)
        .scan_prefix(twin::ingest::records::index::DAY_PREFIX)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (
                twin::ingest::records::index::day_of_key(&k).unwrap(),
                u64::from_be_bytes(v.as_ref().try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].1, 2);
    // Windows no longer hold their messages; the group keeps Carol and me.
    for r in store.scan::<twin::ingest::records::Window>([]) {
        assert!(!r.unwrap().1.authors.contains(&bob.id));
    }
    assert_eq!(store.count(Tree::Messages).unwrap(), 2);
    assert_eq!(store.count(Tree::Conversations).unwrap(), 1);
    let profile = twin::ingest::profile::Profile::load(&store)
        .unwrap()
        .unwrap();
    assert!(!serde_json::to_string(&profile).unwrap().contains("Bob"));
}

#[test]
fn files_are_private_and_doctor_says_when_they_are_not() {
    let ex = exports();
    let h = home();
    ingest(h.path(), ex.path(), &[]);
    let b = h.path().join("bundle");
    ok(h.path(), &["--batch", "export", b.to_str().unwrap()]);
    for root in ["data", "state", "logs", "bundle"] {
        let root = h.path().join(root);
        for p in files_under(&root) {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            let mut d = p.parent().unwrap();
            while d.starts_with(&root) {
                let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
                d = d.parent().unwrap();
            }
        }
    }
    // config.toml was written by this test with its umask: doctor points at it.
    std::fs::set_permissions(
        h.path().join("config/config.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = twin(h.path(), &["--batch", "doctor"]);
    let report = lines(&out).pop().unwrap();
    let checks = report["summary"]["checks"].as_array().unwrap();
    let modes = checks.iter().find(|c| c["name"] == "file modes").unwrap();
    assert_eq!(modes["status"], "warn", "{modes}");
    assert!(modes["detail"].as_str().unwrap().contains("config.toml"));
    assert!(modes["fix"].as_str().unwrap().contains("chmod -R go-rwx"));
    let net = checks.iter().find(|c| c["name"] == "network").unwrap();
    assert!(
        net["detail"]
            .as_str()
            .unwrap()
            .contains("no network connections")
    );
    // Start-up says it too.
    let out = twin(h.path(), &["--batch", "status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod -R go-rwx"));
}

#[test]
fn logs_hold_no_message_text() {
    let ex = exports();
    let h = home();
    let out = twin_env(
        h.path(),
        &[
            "--batch",
            "ingest",
            ex.path().to_str().unwrap(),
            "--me",
            "Alice",
        ],
        &[("TWIN_LOG", "trace")],
    );
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.is_empty(), "trace logging printed nothing");
    for w in ["Marmalade", "sandwiches", "hedgehog", "thermos"] {
        assert!(!log.contains(w), "{w} in the log");
    }
}

#[test]
fn forgetting_a_contact_takes_their_lines_out_of_group_memories_at_once() {
    let ex = exports();
    let h = home();
    ingest(h.path(), ex.path(), &[]);
    ok(h.path(), &["--batch", "index"]);
    let texts = |h: &Path| -> String {
        let list = ok(h, &["--batch", "memory", "list"]);
        list["memories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = texts(h.path());
    assert!(before.contains("the hedgehog visited again"), "{before}");
    assert!(before.contains("I saw it too"), "{before}");

    ok(h.path(), &["--batch", "forget", "contact", "Bob Smith"]);
    let after = texts(h.path());
    assert!(
        !after.contains("hedgehog"),
        "his line in the group: {after}"
    );
    assert!(!after.contains("Bob"), "{after}");

    // The group's memory comes back without him at the next index.
    ok(h.path(), &["--batch", "index"]);
    let reindexed = texts(h.path());
    assert!(reindexed.contains("I saw it too"), "{reindexed}");
    assert!(!reindexed.contains("hedgehog"), "{reindexed}");
}

#[test]
fn a_forgotten_contact_does_not_come_back_with_a_newer_export() {
    let ex = exports();
    let h = home();
    ingest(h.path(), ex.path(), &[]);
    let f = ok(h.path(), &["--batch", "forget", "contact", "Bob Smith"]);
    assert!(f["tombstones"].as_u64().unwrap() >= 2, "{f}");
    let after_forget = counts(h.path(), None);

    // The same exports again (unchanged files are not even read, so copied
    // elsewhere, as a second download would be): nothing of his returns, each
    // skip is counted.
    let copy = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(ex.path()).unwrap().flatten() {
        std::fs::copy(f.path(), copy.path().join(f.file_name())).unwrap();
    }
    let again = ingest(h.path(), copy.path(), &[]);
    assert_eq!(again["new"], 0, "{again}");
    // His chat (both sides) and his line in the group.
    assert_eq!(again["forgotten"], 3, "{again}");
    assert!(again["skipped"].as_u64().unwrap() >= 3);
    let reasons: Vec<String> = again["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("forgotten contact")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().all(|r| !r.contains("Bob")),
        "the summary does not name them: {reasons:?}"
    );
    // (The second folder is a source of its own; nothing else changed.)
    let without_sources = |mut c: serde_json::Value| {
        c.as_object_mut().unwrap().remove("sources");
        c
    };
    assert_eq!(
        without_sources(counts(h.path(), None)),
        without_sources(after_forget)
    );

    // A newer export of both chats: Carol's new line arrives, Bob's do not.
    std::fs::write(
        ex.path().join("WhatsApp Chat with Bob Smith.txt"),
        format!(
            "1/5/21, 9:16 AM - Bob Smith: {SENTENCE}\n\
             1/5/21, 9:17 AM - Alice: Wonderful, bring the thermos please\n\
             3/5/21, 7:00 PM - Bob Smith: remember me? new number\n\
             3/5/21, 7:02 PM - Alice: of course\n"
        ),
    )
    .unwrap();
    std::fs::write(
        ex.path().join("WhatsApp Chat with Garden Club.txt"),
        "2/1/21, 8:00 AM - Bob Smith: the hedgehog visited again\n\
         2/1/21, 8:05 AM - Carol Jones: lovely news indeed\n\
         2/1/21, 8:06 AM - Alice: I saw it too\n\
         3/1/21, 9:00 AM - Bob Smith: tulips are out\n\
         3/1/21, 9:05 AM - Carol Jones: frost tonight\n",
    )
    .unwrap();
    let newer = ingest(h.path(), ex.path(), &[]);
    assert_eq!(newer["new"], 1, "only Carol's new line: {newer}");
    let store = Store::open(&h.path().join("data/store")).unwrap();
    for r in store.scan::<twin::ingest::records::Message>([]) {
        let m = r.unwrap().1;
        assert!(!m.author_name.contains("Bob"), "{m:?}");
        for gone in [
            "Marmalade",
            "thermos",
            "hedgehog",
            "remember me",
            "tulips",
            "of course",
        ] {
            assert!(!m.text.contains(gone), "{gone} came back: {m:?}");
        }
    }
    assert!(
        twin::ingest::contacts::find(&store, "Bob Smith")
            .unwrap()
            .is_none()
    );
    // No plain identity of his is kept for the tombstones.
    for kv in store.tree(Tree::Index).iter() {
        let (k, v) = kv.unwrap();
        for b in [k.as_ref(), v.as_ref()] {
            assert!(!String::from_utf8_lossy(b).to_lowercase().contains("bob"));
        }
    }
    drop(store);

    // Lifted, he comes back with the next import.
    let undo = ok(
        h.path(),
        &["--batch", "forget", "contact", "--undo", "Bob Smith"],
    );
    assert!(undo["lifted"].as_u64().unwrap() >= 2, "{undo}");
    let third = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(ex.path()).unwrap().flatten() {
        std::fs::copy(f.path(), third.path().join(f.file_name())).unwrap();
    }
    let back = ingest(h.path(), third.path(), &[]);
    assert_eq!(back["forgotten"], serde_json::Value::Null, "{back}");
    assert_eq!(back["new"], 6, "{back}");
}

#[test]
fn never_train_is_managed_from_the_command_line() {
    let ex = exports();
    let h = home();
    ingest(h.path(), ex.path(), &[]);
    let r = ok(
        h.path(),
        &["--batch", "privacy", "never-train", "add", "Carol Jones"],
    );
    assert_eq!(r["contacts"][0]["name"], "Carol Jones", "{r}");
    assert_eq!(r["contacts"][0]["from"], "store");
    let l = ok(h.path(), &["--batch", "privacy", "never-train", "list"]);
    assert_eq!(l["contacts"].as_array().unwrap().len(), 1);
    // The contacts list marks them.
    let c = ok(h.path(), &["--batch", "contacts"]);
    let carol = c["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Carol Jones")
        .unwrap()
        .clone();
    assert_eq!(carol["never_train"], true);
    // A name that matches no one: a clear error, nothing changed.
    let out = twin(
        h.path(),
        &["--batch", "privacy", "never-train", "add", "Zed"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("twin contacts"));
    let r = ok(
        h.path(),
        &["--batch", "privacy", "never-train", "remove", "Carol Jones"],
    );
    assert!(r["contacts"].as_array().unwrap().is_empty(), "{r}");
}

const TRAIN: &str = "[train]\nsteps = 2\ncheckpoint_every = 1\neval_every = 1\nrank = 2\nalpha = 4.0\nwarmup_steps = 0\ngrad_accum = 1\nvalidation = 0.0\nmax_tokens = 512\n";

fn starts_with(p: &Path, magic: &[u8]) -> bool {
    std::fs::read(p).is_ok_and(|b| b.starts_with(magic))
}

#[test]
fn an_encrypted_home_seals_training_sets_checkpoints_and_adapters() {
    let ex = exports();
    let models = tempfile::tempdir().unwrap();
    let tiny = models.path().join("tiny.gguf");
    twin::llm::tiny::TinyLlama {
        context_length: 4096,
        ..Default::default()
    }
    .write(&tiny)
    .unwrap();
    let tinys = tiny.to_str().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let pf = pass_file(secrets.path(), "pass", "correct horse battery");
    let pfs = pf.to_str().unwrap();
    let config = format!("{KDF}{TRAIN}");

    let plain = home();
    std::fs::write(plain.path().join("config/config.toml"), &config).unwrap();
    let enc = home();
    std::fs::write(enc.path().join("config/config.toml"), &config).unwrap();
    ok(
        enc.path(),
        &["--batch", "init", "--encrypt", "--passphrase-file", pfs],
    );
    for (h, pass) in [(plain.path(), None), (enc.path(), Some(pfs))] {
        let with = |args: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            if let Some(p) = pass {
                v.extend(["--passphrase-file".to_string(), p.to_string()]);
            }
            v
        };
        let run = |args: &[&str]| {
            let a = with(args);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            ok(h, &a)
        };
        run(&[
            "--batch",
            "ingest",
            ex.path().to_str().unwrap(),
            "--me",
            "Alice",
        ]);
        let d = run(&["--batch", "dataset", "build", "--base", tinys]);
        assert!(d["stats"]["train_examples"].as_u64().unwrap() > 0, "{d}");
        let t = run(&["--batch", "train", "--base", tinys, "--steps", "2"]);
        assert!(t["adapter"]["id"].is_string(), "{t}");
    }

    // The plain home shows what the test looks for: the sentence in the
    // training set, a GGUF adapter and safetensors checkpoints.
    assert!(!hits(plain.path(), SENTENCE.as_bytes()).is_empty());
    let plain_files = files_under(plain.path());
    let adapters: Vec<&PathBuf> = plain_files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    assert_eq!(adapters.len(), 1, "{plain_files:?}");
    assert!(starts_with(adapters[0], b"GGUF"));
    assert!(
        plain_files
            .iter()
            .any(|p| p.to_string_lossy().contains("checkpoint-2.safetensors")),
        "{plain_files:?}"
    );
    assert!(!hits(plain.path(), b"\"dtype\":\"F32\"").is_empty());

    // The encrypted home: no sentence, no word of it, no GGUF and no
    // safetensors header anywhere; every training file is sealed.
    let enc_files = files_under(enc.path());
    for n in [
        SENTENCE.as_bytes(),
        b"Marmalade",
        b"sandwiches",
        b"thermos",
        b"\"dtype\"",
        b"lora_a",
        b"GGUF",
    ] {
        let h = hits(enc.path(), n);
        assert!(
            h.is_empty(),
            "{:?} found in {h:?}",
            String::from_utf8_lossy(n)
        );
    }
    let sealed: Vec<&PathBuf> = enc_files
        .iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.ends_with(".gguf") || s.contains("checkpoint") || s.contains("/datasets/")
        })
        .collect();
    assert!(
        sealed.len() >= 4,
        "adapter, set, checkpoint + meta: {enc_files:?}"
    );
    for p in &sealed {
        assert!(starts_with(p, b"twinseal"), "{} is not sealed", p.display());
    }

    // The sealed adapter loads into llama.cpp once the store is open (it is
    // decrypted into memory, never onto the disk).
    let store = Store::open_with(
        &enc.path().join("data/store"),
        Some(&Passphrase::new("correct horse battery").unwrap()),
    )
    .unwrap();
    let a = twin::train::registry::adapters(&store).unwrap().remove(0);
    assert!(starts_with(&a.path, b"twinseal"));
    let mut base = twin::llm::direct::Direct::open(&tiny, false, 1).unwrap();
    let toks = base.tokenize("hello", true);
    let plain_logits = base.logits(&toks).unwrap();
    base.set_adapter(&a.path).unwrap();
    let adapted = base.logits(&toks).unwrap();
    assert_eq!(plain_logits.len(), adapted.len());
    // (sled may write a new snapshot of its own when the store opens.)
    let outside_store = |fs: Vec<PathBuf>| -> Vec<PathBuf> {
        fs.into_iter()
            .filter(|p| !p.starts_with(enc.path().join("data/store")))
            .collect()
    };
    assert_eq!(
        outside_store(files_under(enc.path())),
        outside_store(enc_files.clone()),
        "loading wrote nothing"
    );
    // The sealed checkpoint reads back (what `twin train --resume` starts from).
    let run = twin::train::registry::runs(&store).unwrap().remove(0);
    assert_eq!(twin::train::trainer::checkpoint_step(&run.dir), Some(2));
}
