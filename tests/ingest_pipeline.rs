//! The ingest pipeline with a tiny line-format importer: idempotent re-import,
//! grown exports, identical messages, bad records, and an interrupted import
//! that resumes to exactly the store of an uninterrupted one.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use twin::ingest::pipeline::{Options, Summary, Zone, run_with};
use twin::ingest::{
    Author, Format, ImportError, Importer, MessageKind, Problem, RawMessage, Sink, Source, Unit,
    When,
};
use twin::jobs::JobCtx;
use twin::store::{Store, Tree};

/// `conversation|author|unix seconds|text` per line; `#` lines are service lines.
struct Lines;

impl Importer for Lines {
    fn format(&self) -> Format {
        Format::Whatsapp
    }
    fn claim(&self, src: &dyn Source, pool: &[PathBuf], _forced: bool) -> Vec<Unit> {
        pool.iter()
            .filter(|p| src.display(p).extension().is_some_and(|e| e == "lines"))
            .map(|p| Unit {
                format: Format::Whatsapp,
                files: vec![p.clone()],
                label: p.clone(),
            })
            .collect()
    }
    fn parse(&self, src: &dyn Source, unit: &Unit, out: &mut dyn Sink) -> Result<(), ImportError> {
        let f = &unit.files[0];
        let reader = std::io::BufReader::new(src.open(f).map_err(|e| ImportError::io(f, e))?);
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| ImportError::io(f, e))?;
            let parts: Vec<&str> = line.splitn(4, '|').collect();
            let [conv, author, secs, text] = parts[..] else {
                out.problem(Problem {
                    file: src.display(f),
                    line: Some(i as u64 + 1),
                    reason: "expected 4 fields".into(),
                });
                continue;
            };
            let Ok(secs) = secs.parse::<i64>() else {
                out.problem(Problem {
                    file: src.display(f),
                    line: Some(i as u64 + 1),
                    reason: "bad time".into(),
                });
                continue;
            };
            let who = Author {
                name: author.into(),
                handle: None,
                me: None,
            };
            let mut m = RawMessage::new(
                conv,
                who,
                When::Utc(Utc.timestamp_opt(secs, 0).unwrap()),
                text,
            );
            if text.starts_with('#') {
                m.kind = MessageKind::Service;
            }
            m.line = Some(i as u64 + 1);
            out.message(m);
        }
        Ok(())
    }
}

fn opts(paths: Vec<PathBuf>, me: &[&str]) -> Options {
    Options {
        paths,
        format: None,
        me: me.iter().map(|s| s.to_string()).collect(),
        zone: Zone::parse("UTC").unwrap(),
        window_gap_ms: 30 * 60_000,
        voice: None,
    }
}

fn import(store: &Store, o: &Options) -> Summary {
    let (ctx, _rx, _cancel) = JobCtx::detached("ingest");
    run_with(store, o, &ctx, &[Box::new(Lines)]).unwrap()
}

fn write_chat(path: &Path, n: usize) {
    let mut s = String::new();
    for i in 0..n {
        let who = ["Ann", "Me Myself", "Bob"][i % 3];
        let conv = if i < 100 { "family" } else { "friends" };
        // Gaps of 10 minutes, with a long pause every 50 messages.
        let t = 1_600_000_000 + (i as i64) * 600 + (i as i64 / 50) * 86_400;
        s.push_str(&format!("{conv}|{who}|{t}|message {i}\n"));
    }
    std::fs::write(path, s).unwrap();
}

/// Every record in every tree but `sources` (which records when it ran).
fn dump(store: &Store) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for tree in Tree::ALL.into_iter().filter(|t| *t != Tree::Sources) {
        for kv in store.tree(tree).iter() {
            let (k, v) = kv.unwrap();
            out.push((tree.name().to_string(), k.to_vec(), v.to_vec()));
        }
    }
    out
}

#[test]
fn import_is_idempotent_and_counts_people_only() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("a.lines");
    std::fs::write(
        &chat,
        "g|Ann|100|hi\ng|Bob|160|# Bob joined\ng|Bob|200|hello\nbroken line\ng|Ann|xx|bad\n",
    )
    .unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let s = import(&store, &opts(vec![chat.clone()], &[]));
    assert_eq!(
        (s.messages, s.new, s.service, s.skipped),
        (2, 2, 1, 2),
        "{s}"
    );
    assert_eq!(s.errors[0].line, Some(4));
    assert!(s.errors[0].file.ends_with("a.lines"));
    assert_eq!(s.files[0].authors, 2);
    assert_eq!(store.count(Tree::Messages).unwrap(), 2);
    assert_eq!(store.count(Tree::Contacts).unwrap(), 2);
    assert_eq!(store.count(Tree::Conversations).unwrap(), 1);

    let again = import(&store, &opts(vec![chat], &[]));
    assert_eq!(again.new, 0);
    assert_eq!(again.files[0].status, "unchanged");
    assert_eq!(store.count(Tree::Messages).unwrap(), 2);
}

#[test]
fn a_grown_export_adds_only_the_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("c.lines");
    write_chat(&chat, 100);
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(import(&store, &opts(vec![chat.clone()], &[])).new, 100);
    write_chat(&chat, 130);
    let s = import(&store, &opts(vec![chat], &[]));
    assert_eq!((s.messages, s.new), (130, 30));
    assert_eq!(store.count(Tree::Messages).unwrap(), 130);
    let friends: u64 = store
        .scan::<twin::ingest::records::Conversation>([])
        .map(|r| r.unwrap().1.messages)
        .sum();
    assert_eq!(friends, 130, "conversation counts grow, not reset");
}

#[test]
fn authors_past_the_parsing_threads_cache_keep_their_contacts() {
    // The parsing thread numbers authors and starts over past 100,000 of
    // them; authors met again after that must still reach their contacts.
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("crowd.lines");
    let n = 100_010;
    let mut s = String::new();
    for i in 0..n + 20 {
        let who = if i < n { i } else { i % 10 };
        s.push_str(&format!(
            "g|person {who}|{}|hi from {i}\n",
            1_600_000_000 + i
        ));
    }
    std::fs::write(&chat, s).unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let s = import(&store, &opts(vec![chat], &[]));
    assert_eq!(
        (s.messages, s.new, s.contacts),
        (n as u64 + 20, n as u64 + 20, n as u64)
    );
    let mut thrice = 0;
    for r in store.scan::<twin::ingest::records::Contact>([]) {
        let c = r.unwrap().1;
        let expected = match c.name.strip_prefix("person ") {
            Some(k) if k.parse::<usize>().unwrap() < 10 => 3,
            _ => 1,
        };
        thrice += (expected == 3) as usize;
        assert_eq!(c.messages, expected, "{}", c.name);
    }
    assert_eq!(thrice, 10);
    // Every message names its contact, and each contact's messages are its own.
    for kv in store.tree(Tree::Messages).iter() {
        let (_, v) = kv.unwrap();
        let m: twin::ingest::records::Message = twin::store::codec::decode(&v).unwrap();
        let contact = store
            .get::<twin::ingest::records::Contact>(twin::ingest::records::Contact::key(m.author))
            .unwrap()
            .unwrap();
        assert_eq!(contact.name, m.author_name);
    }
}

#[test]
fn identical_messages_in_the_same_minute_stay_two() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("ok.lines");
    std::fs::write(&chat, "g|Ann|60|ok\ng|Ann|60|ok\n").unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(import(&store, &opts(vec![chat], &[])).new, 2);
}

#[test]
fn me_comes_from_aliases_and_contacts_merge_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.lines"), "x|Ann|1|a\nx|Me Myself|2|b\n").unwrap();
    std::fs::write(dir.path().join("b.lines"), "y|ann|3|c\ny|me myself|4|d\n").unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let s = import(
        &store,
        &opts(vec![dir.path().to_path_buf()], &["Me Myself"]),
    );
    assert_eq!(s.contacts, 2, "Ann/ann and me are one contact each");
    assert_eq!(s.conversations, 2);
    assert_eq!(s.me.name.as_deref(), Some("Me Myself"));
    assert_eq!(s.me.how, "confirmed");
    let me = store
        .get::<twin::ingest::records::Contact>(twin::ingest::records::Contact::key(
            twin::ingest::identity::me_id(),
        ))
        .unwrap()
        .unwrap();
    assert!(me.me);
    assert_eq!(me.messages, 2);
    // The style profile is built from my messages, per one-to-one contact too.
    let p = twin::ingest::profile::Profile::load(&store)
        .unwrap()
        .unwrap();
    assert_eq!(p.me.as_deref(), Some("Me Myself"));
    assert_eq!(p.overall.messages, 2);
    let names: Vec<&str> = p.contacts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["Ann"]);
    assert_eq!(p.contacts[0].style.messages, 2);
}

#[test]
fn without_aliases_me_is_proposed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.lines"), "x|Ann|1|a\nx|Jo|2|b\n").unwrap();
    std::fs::write(dir.path().join("b.lines"), "y|Bob|3|c\ny|Jo|4|d\n").unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let s = import(&store, &opts(vec![dir.path().to_path_buf()], &[]));
    assert_eq!((s.me.name.as_deref(), s.me.how), (Some("Jo"), "proposed"));
}

#[test]
fn naming_me_later_moves_the_earlier_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.lines"), "x|Ann|1|a\nx|Jo|2|b\n").unwrap();
    std::fs::write(dir.path().join("b.lines"), "y|Bob|3|c\ny|Jo|4|d\n").unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let first = import(&store, &opts(vec![dir.path().to_path_buf()], &[]));
    assert_eq!(first.me.how, "proposed");
    let contacts_before = store.count(Tree::Contacts).unwrap();
    // Same files, now saying who I am: nothing new, but Jo becomes me.
    let again = import(&store, &opts(vec![dir.path().to_path_buf()], &["Jo"]));
    assert_eq!(again.new, 0);
    assert_eq!(
        (again.me.name.as_deref(), again.me.how),
        (Some("Jo"), "confirmed")
    );
    assert_eq!(
        store.count(Tree::Contacts).unwrap(),
        contacts_before,
        "Jo moved, not copied"
    );
    let me = twin::ingest::contacts::find(&store, "jo").unwrap().unwrap();
    assert!(me.me);
    assert_eq!(me.id, twin::ingest::identity::me_id());
    assert_eq!(me.messages, 2);
    let p = twin::ingest::profile::Profile::load(&store)
        .unwrap()
        .unwrap();
    assert_eq!(p.overall.messages, 2);
    for r in store.scan::<twin::ingest::records::Message>([]) {
        let m = r.unwrap().1;
        if m.text == "b" || m.text == "d" {
            assert_eq!(m.author, me.id);
        }
    }
}

#[test]
fn windows_split_at_long_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("w.lines");
    write_chat(&chat, 200);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let s = import(&store, &opts(vec![chat], &[]));
    // 100 messages per conversation, a day's pause after every 50: 2 + 2.
    assert_eq!(s.windows, 4);
    assert_eq!(store.count(Tree::Windows).unwrap(), 4);
}

#[test]
fn an_interrupted_import_resumes_to_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("big.lines");
    write_chat(&chat, 10_000);

    let whole = Store::open(&dir.path().join("whole")).unwrap();
    import(&whole, &opts(vec![chat.clone()], &["Me Myself"]));

    let resumed = Store::open(&dir.path().join("resumed")).unwrap();
    {
        // Cancel as soon as the first batch is stored.
        let (ctx, mut rx, cancel) = JobCtx::detached("ingest");
        let watcher = std::thread::spawn(move || {
            while let Some(ev) = rx.blocking_recv() {
                if matches!(ev.body, twin::jobs::JobBody::Progress { .. }) {
                    cancel.cancel();
                }
            }
        });
        let err = run_with(
            &resumed,
            &opts(vec![chat.clone()], &["Me Myself"]),
            &ctx,
            &[Box::new(Lines)],
        )
        .unwrap_err();
        assert!(err.is::<twin::jobs::Cancelled>(), "{err}");
        drop(ctx);
        watcher.join().unwrap();
        let partial = resumed.count(Tree::Messages).unwrap();
        assert!(partial > 0 && partial < 10_000, "{partial}");
    }
    let s = import(&resumed, &opts(vec![chat], &["Me Myself"]));
    assert_eq!(s.messages, 10_000);
    assert_eq!(dump(&resumed), dump(&whole));
}

#[test]
fn a_missing_path_fails_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let (ctx, _rx, _c) = JobCtx::detached("ingest");
    let err = run_with(
        &store,
        &opts(vec![dir.path().join("nope.txt")], &[]),
        &ctx,
        &[Box::new(Lines)],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("nope.txt: no such file or folder"),
        "{err}"
    );
}

#[test]
fn an_unknown_file_says_what_twin_reads() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("photo.xyz");
    std::fs::write(&f, "???").unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let s = import(&store, &opts(vec![f], &[]));
    assert_eq!(s.unrecognized.len(), 1);
    assert!(
        s.errors[0].reason.contains("twin reads: whatsapp"),
        "{}",
        s.errors[0].reason
    );
}

#[test]
fn two_spellings_of_a_friend_merge_into_one() {
    use twin::ingest::contacts;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.lines"), "x|Ann Lee|1|a\nx|Jo|2|b\n").unwrap();
    std::fs::write(dir.path().join("b.lines"), "y|Annie|3|c\ny|Jo|4|d\n").unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    import(&store, &opts(vec![dir.path().to_path_buf()], &["Jo"]));
    let ann = contacts::find(&store, "ann lee").unwrap().unwrap();
    let annie = contacts::find(&store, "Annie").unwrap().unwrap();
    let r = contacts::merge(&store, annie.id, ann.id).unwrap();
    assert_eq!((r.messages, r.conversations), (1, 1));
    let merged = contacts::find(&store, "annie").unwrap().unwrap();
    assert_eq!(
        merged.id, ann.id,
        "the old spelling now finds the merged contact"
    );
    assert_eq!(merged.messages, 2);
    assert_eq!(store.count(Tree::Contacts).unwrap(), 2);
    // A later import of the old spelling lands on the merged contact.
    std::fs::write(dir.path().join("c.lines"), "z|Annie|5|e\n").unwrap();
    import(&store, &opts(vec![dir.path().join("c.lines")], &["Jo"]));
    assert_eq!(
        contacts::find(&store, "ann lee").unwrap().unwrap().messages,
        3
    );
    assert_eq!(store.count(Tree::Contacts).unwrap(), 2);
}

#[test]
fn a_zip_inside_a_folder_is_read_too() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    std::fs::write(exports.join("a.lines"), "x|Ann|1|a\n").unwrap();
    let mut w = zip::ZipWriter::new(std::fs::File::create(exports.join("old.zip")).unwrap());
    w.start_file("b.lines", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"y|Bob|2|b\ny|Bob|3|c\n").unwrap();
    w.finish().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let s = import(&store, &opts(vec![exports], &[]));
    assert_eq!((s.messages, s.files.len()), (3, 2), "{s}");
    assert!(s.unrecognized.is_empty(), "{:?}", s.unrecognized);
}
