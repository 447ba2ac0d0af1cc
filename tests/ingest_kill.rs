//! Kill -9 a real `twin --batch ingest` at random points, run it again, and the
//! store is exactly the one an uninterrupted run gives.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use twin::store::{Store, Tree};

fn write_export(path: &Path, n: usize) {
    let mut s = String::new();
    for i in 0..n {
        let who = ["Ann", "Sam", "Bob Stone"][i % 3];
        let day = 1 + (i / 1000) % 28;
        let month = 1 + (i / 28_000) % 12;
        s.push_str(&format!(
            "{day:02}/{month:02}/2021, {:02}:{:02} - {who}: message number {i}\n",
            (i / 60) % 24,
            i % 60
        ));
        if i % 97 == 0 {
            s.push_str("and a second line\n");
        }
    }
    std::fs::write(path, s).unwrap();
}

fn ingest(home: &Path, export: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(["--batch", "ingest", "--me", "Sam", "--home"])
        .arg(home)
        .arg(export)
        .env("TWIN_TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn dump(home: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let store = Store::open(&home.join("data/store")).unwrap();
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
fn killed_imports_resume_to_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("WhatsApp Chat with Ann.txt");
    write_export(&export, 60_000);

    let whole = dir.path().join("whole");
    let status = ingest(&whole, &export).wait().unwrap();
    assert!(status.success());
    let expected = dump(&whole);
    assert!(expected.iter().filter(|(t, _, _)| t == "messages").count() == 60_000);

    let resumed = dir.path().join("resumed");
    // Kill after the 1st, 3rd and 6th progress line (a different point each time).
    for kill_after in [1, 3, 6] {
        let mut child = ingest(&resumed, &export);
        let stdout = child.stdout.take().unwrap();
        let mut progress = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.contains("\"event\":\"progress\"") {
                progress += 1;
                if progress == kill_after {
                    child.kill().unwrap(); // SIGKILL
                    break;
                }
            }
        }
        let _ = child.wait();
    }
    let status = ingest(&resumed, &export).wait().unwrap();
    assert!(status.success());
    assert_eq!(dump(&resumed), expected);
}
