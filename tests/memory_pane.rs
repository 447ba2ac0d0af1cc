//! The Memory pane's reads on a real store: a WhatsApp export and a note
//! imported, memories built (the word-hash embedder stands in for MiniLM),
//! then the list, ranked search with filters, a detail with its source
//! messages resolved, the conversation around them, and forget taking a
//! memory out of the list and search while nothing else is lost.

use std::path::Path;
use std::sync::Arc;

use twin::app::memory::{ListQuery, read_detail, read_rows, read_rows_of, read_source};
use twin::ingest::pipeline::{self, Options};
use twin::jobs::JobCtx;
use twin::memory::embed::HashEmbedder;
use twin::memory::report::SourceView;
use twin::memory::{Memories, MemoryKind, build};
use twin::store::Store;

const CHAT: &str = "\
12/03/2023, 08:00 - Alice: good morning
12/03/2023, 08:01 - Sam: morning!
12/03/2023, 09:00 - Alice: are we still going hiking in the Alps on saturday?
12/03/2023, 09:01 - Sam: yes! I booked the hut near Zermatt
12/03/2023, 09:02 - Alice: amazing, bring the red tent
12/03/2023, 09:05 - Sam: will do, and my new boots
14/03/2023, 18:00 - Alice: my dentist appointment moved to monday
14/03/2023, 18:03 - Sam: ugh dentists. good luck
20/04/2023, 20:00 - Alice: did you finish the tax return?
20/04/2023, 20:10 - Sam: not yet, the accountant needs receipts
";

const NOTE: &str = "# Recipes\n\n## Pancakes\n\nflour, milk, two eggs, a pinch of salt\n\n## Risotto\n\narborio rice, parmesan, white wine, stock\n";

fn built(dir: &Path) -> (Arc<Store>, Memories) {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("WhatsApp Chat with Alice.txt"), CHAT).unwrap();
    std::fs::write(input.join("recipes.md"), NOTE).unwrap();
    let store = Arc::new(Store::open(&dir.join("data/store")).unwrap());
    let cfg = twin::config::load_str(Path::new("c.toml"), None, &|_| None).unwrap();
    // A short window gap: the morning greeting and the hiking plan are two episodes.
    let mut opts =
        Options::from_config(vec![input], None, vec!["Sam".into()], &cfg.config).unwrap();
    opts.window_gap_ms = 30 * 60_000;
    let (ctx, _rx, _c) = JobCtx::detached("ingest");
    pipeline::run(&store, &opts, &ctx).unwrap();
    let mem = Memories::open(store.clone(), Box::new(HashEmbedder::new(64)), 180.0).unwrap();
    let (ctx, _rx, _c) = JobCtx::detached("index");
    build::build(&mem, &ctx).unwrap();
    (store, mem)
}

#[test]
fn list_search_detail_source_and_forget() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, mem) = built(dir.path());

    // Newest first.
    let (rows, total) = read_rows(&mem, &ListQuery::default()).unwrap();
    assert_eq!(rows.len(), total);
    assert!(total >= 5, "{rows:?}");
    assert!(rows.windows(2).all(|w| w[0].when >= w[1].when), "{rows:?}");
    assert!(rows.iter().all(|r| r.score.is_none()));

    // Kind filter.
    let docs = ListQuery {
        kind: Some(MemoryKind::Document),
        ..Default::default()
    };
    let (rows, _) = read_rows(&mem, &docs).unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.kind == MemoryKind::Document));

    // Ranked search: the hiking episode first, with a score.
    let q = ListQuery {
        text: "hiking Zermatt tent".into(),
        ..Default::default()
    };
    let (hits, n) = read_rows(&mem, &q).unwrap();
    assert_eq!(hits.len(), n);
    let top = hits.first().expect("a hit");
    assert_eq!(top.kind, MemoryKind::Episode);
    assert!(
        top.snippet.contains("hiking") || top.title.contains("hiking"),
        "{top:?}"
    );
    assert!(top.score.is_some());
    assert_eq!(top.contacts, vec!["Alice".to_string()]);

    // The detail resolves its source messages, with time and author.
    let d = read_detail(&mem, top.id).unwrap();
    assert_eq!(d.row.id, top.id);
    let (conv, title) = d.detail.conversation.clone().expect("from a conversation");
    assert!(title.contains("Alice"), "{title}");
    let authors: Vec<&str> = d
        .detail
        .show
        .sources
        .iter()
        .filter_map(|s| match s {
            SourceView::Message { author, at, .. } => {
                assert!(at.starts_with("2023-03-12"), "{at}");
                Some(author.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(authors.len(), 4, "{:?}", d.detail.show.sources);
    assert!(authors.contains(&"Alice") && authors.contains(&"Sam"));

    // The conversation around it: its sources marked, the messages around shown.
    let s = read_source(&mem, top.id).unwrap();
    assert_eq!(s.memory, top.id);
    assert_eq!(s.lines.iter().filter(|l| l.source).count(), 4);
    assert!(
        s.lines
            .iter()
            .any(|l| !l.source && l.text == "good morning")
    );
    assert!(s.lines.iter().any(|l| l.me && l.author == "Sam"));
    assert_eq!(s.earlier, 0);
    assert!(conv != 0);

    // A note chunk has no conversation: the answer says where it comes from.
    let (docs, _) = read_rows(
        &mem,
        &ListQuery {
            kind: Some(MemoryKind::Document),
            ..Default::default()
        },
    )
    .unwrap();
    let err = read_source(&mem, docs[0].id).unwrap_err().to_string();
    assert!(err.contains("a note"), "{err}");
    let dd = read_detail(&mem, docs[0].id).unwrap();
    assert!(matches!(
        dd.detail.show.sources.as_slice(),
        [SourceView::Document { path, .. }] if path.ends_with("recipes.md")
    ));

    // Forget: gone from the list, from search and from reads; the rest stays.
    mem.forget(top.id).unwrap();
    let (after, total_after) = read_rows(&mem, &ListQuery::default()).unwrap();
    assert_eq!(total_after, total - 1);
    assert!(after.iter().all(|r| r.id != top.id));
    let (hits, _) = read_rows(&mem, &q).unwrap();
    assert!(hits.iter().all(|r| r.id != top.id));
    assert!(read_detail(&mem, top.id).is_err());
    let rows = read_rows_of(&mem, &[top.id, after[0].id]).unwrap();
    assert_eq!(rows.len(), 1, "a forgotten example is skipped");
}
