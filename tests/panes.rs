//! Each pane rendered into ratatui's TestBackend at 80x24 and 120x40, compared
//! with committed insta snapshots.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use twin::app::{Action, LayoutMode, Pane, State, update};
use twin::jobs::{JobBody, JobEvent, Level};
use twin::models::{ModelFile, ModelKind};
use twin::paths::Paths;
use twin::status::{StatusReport, StoreStatus};
use twin::store::Tree;
use twin::tui::keymap::Keymap;
use twin::tui::theme::{ColorDepth, Theme};
use twin::tui::ui::{View, render};

fn report(with_data: bool) -> StatusReport {
    let paths = Paths::under(std::path::Path::new("/home/me/twin"), "--home");
    let counts: BTreeMap<String, u64> = Tree::data()
        .enumerate()
        .map(|(i, t)| {
            (
                t.name().to_string(),
                if with_data { (i as u64 + 1) * 1234 } else { 0 },
            )
        })
        .collect();
    let models = if with_data {
        vec![ModelFile {
            name: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            path: PathBuf::from("/home/me/twin/data/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            kind: ModelKind::Gguf,
            bytes: 98_000_000,
            gguf: None,
            problem: None,
        }]
    } else {
        Vec::new()
    };
    StatusReport {
        version: "0.1.0".into(),
        config_file: paths.config_file(),
        config_found: false,
        store: StoreStatus {
            path: paths.store_dir(),
            schema_version: 1,
            bytes: 524_288,
            counts,
        },
        models_dir: paths.default_models_dir(),
        models,
        folders: paths,
    }
}

fn draw(state: &State, w: u16, h: u16) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (keymap, kd) = Keymap::load("default", dir.path());
    let (theme, td) = Theme::load("mono", dir.path(), ColorDepth::Mono);
    assert!(kd.is_empty() && td.is_empty());
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| {
        render(
            f,
            state,
            &View {
                theme: &theme,
                keymap: &keymap,
            },
        )
    })
    .unwrap();
    term.backend().to_string()
}

fn state_at(pane: Pane, w: u16, h: u16, with_data: bool) -> State {
    let mut s = State::new(LayoutMode::Auto);
    update(
        &mut s,
        Action::Resize {
            width: w,
            height: h,
        },
    );
    update(&mut s, Action::Focus(pane));
    s.overview = Some(report(with_data));
    // Memory opened (in the TUI it opens in the background at start).
    update(&mut s, Action::MemoryOpened(Ok(Vec::new())));
    s
}

#[test]
fn every_pane_at_80x24_and_120x40() {
    for (w, h) in [(80, 24), (120, 40)] {
        for pane in Pane::ALL {
            let s = state_at(pane, w, h, false);
            insta::assert_snapshot!(
                format!("{}_{w}x{h}", pane.title().to_lowercase()),
                draw(&s, w, h)
            );
        }
    }
}

#[test]
fn panes_with_data_and_a_model() {
    let s = state_at(Pane::Training, 80, 24, true);
    insta::assert_snapshot!("training_with_data_80x24", draw(&s, 80, 24));
}

#[test]
fn help_overlay_is_generated_from_the_keymap() {
    let mut s = state_at(Pane::Memory, 80, 24, false);
    update(&mut s, Action::ToggleHelp);
    insta::assert_snapshot!("help_80x24", draw(&s, 80, 24));
}

#[test]
fn status_bar_shows_jobs_and_notifications() {
    let mut s = state_at(Pane::Ingest, 80, 24, false);
    let ev = |body| {
        Action::Job(JobEvent {
            id: 3,
            job: "ingest".into(),
            body,
        })
    };
    update(
        &mut s,
        ev(JobBody::Started {
            title: "importing".into(),
        }),
    );
    update(
        &mut s,
        ev(JobBody::Progress {
            done: 450,
            total: Some(1000),
            unit: "messages".into(),
            rate: Some(1500.0),
            metrics: Vec::new(),
        }),
    );
    update(
        &mut s,
        Action::Notify(twin::app::Notification {
            level: Level::Warn,
            text: "chat.txt:12: bad date".into(),
        }),
    );
    insta::assert_snapshot!("status_bar_job_80x24", draw(&s, 80, 24));
}

#[test]
fn before_the_store_is_read() {
    let mut s = state_at(Pane::Chat, 80, 24, false);
    s.overview = None;
    let out = draw(&s, 80, 24);
    assert!(out.contains("Reading the store"), "{out}");
}

#[test]
fn tiny_terminals_do_not_panic() {
    for (w, h) in [(1, 1), (10, 3), (20, 5), (79, 23)] {
        for pane in Pane::ALL {
            let mut s = state_at(pane, w, h, true);
            draw(&s, w, h);
            update(&mut s, Action::ToggleHelp);
            draw(&s, w, h);
        }
    }
}

fn contact_row(
    key: u64,
    name: &str,
    messages: u64,
    names: &[&str],
    handles: &[&str],
) -> twin::ingest::contacts::ContactRow {
    twin::ingest::contacts::ContactRow {
        key,
        id: format!("{key:016x}"),
        name: name.into(),
        me: false,
        messages,
        names: names.iter().map(|n| n.to_string()).collect(),
        handles: handles.iter().map(|n| n.to_string()).collect(),
        formats: vec![twin::ingest::Format::Whatsapp],
        never_train: false,
    }
}

fn ingest_state(w: u16, h: u16) -> State {
    use twin::ingest::Format;
    use twin::ingest::contacts::MeReport;
    use twin::ingest::overview::{IngestOverview, SourceRow};
    let mut s = state_at(Pane::Ingest, w, h, true);
    s.ingest = Some(IngestOverview {
        sources: vec![SourceRow {
            path: PathBuf::from("/home/me/exports/WhatsApp Chat with Ann.txt"),
            format: Format::Whatsapp,
            messages: 1234,
            new: 1234,
            bytes: 98_000,
            complete: true,
            imported_at_ms: 0,
        }],
        // Three weeks from Monday 2024-01-01, busier at weekends.
        activity: (0..21)
            .map(|i| (19723 + i, if i % 7 >= 5 { 40 } else { (i % 4) as u64 * 5 }))
            .collect(),
        me: MeReport {
            name: Some("Jo".into()),
            contact: Some(7),
            how: "proposed",
        },
        contacts: vec![
            contact_row(7, "Jo", 900, &["Jo", "jo_d"], &[]),
            contact_row(8, "Ann Lee", 450, &["Ann Lee"], &["+15550101"]),
            contact_row(9, "Annie", 12, &["Annie"], &[]),
        ],
    });
    s.last_ingest = Some(serde_json::json!({
        "messages": 1234, "new": 1234, "skipped": 1,
        "files": [{"path": "chat.txt"}],
        "errors": [{"file": "/home/me/exports/chat.txt", "line": 17, "reason": "a date that does not exist: 31/02/2021"}]
    }));
    s
}

#[test]
fn ingest_pane_with_sources_activity_errors_and_a_running_import() {
    let mut s = ingest_state(80, 40);
    let ev = |body| {
        Action::Job(JobEvent {
            id: 5,
            job: "ingest".into(),
            body,
        })
    };
    update(
        &mut s,
        ev(JobBody::Started {
            title: "importing ~/exports".into(),
        }),
    );
    update(
        &mut s,
        ev(JobBody::Log {
            level: Level::Info,
            message: "reading telegram/result.json as telegram".into(),
        }),
    );
    update(
        &mut s,
        ev(JobBody::Progress {
            done: 3_000_000,
            total: Some(8_000_000),
            unit: "bytes".into(),
            rate: Some(1_000_000.0),
            metrics: Vec::new(),
        }),
    );
    insta::assert_snapshot!("ingest_busy_80x40", draw(&s, 80, 40));
}

#[test]
fn import_prompt_with_completions() {
    let mut s = ingest_state(80, 24);
    update(&mut s, Action::StartIngest);
    for c in "~/exp".chars() {
        update(&mut s, Action::PromptInsert(c));
    }
    update(
        &mut s,
        Action::PromptSet {
            input: "~/exports/".into(),
            candidates: vec!["signal/".into(), "chat.zip".into()],
        },
    );
    insta::assert_snapshot!("import_prompt_80x24", draw(&s, 80, 24));
    assert_eq!(
        update(&mut s, Action::PromptSubmit),
        vec![twin::app::Effect::StartIngest(vec!["~/exports/".into()])]
    );
    assert!(s.prompt.is_none());
}

#[test]
fn confirm_me_asks_to_merge_the_proposed_author() {
    let mut s = ingest_state(80, 24);
    assert_eq!(
        update(&mut s, Action::ConfirmMe),
        vec![twin::app::Effect::ConfirmMe(7)]
    );
}

#[test]
fn contacts_list_merges_the_marked_into_the_selected_and_splits_names() {
    use twin::app::Effect;
    let mut s = ingest_state(80, 24);
    update(&mut s, Action::ToggleContacts);
    update(&mut s, Action::PageDown);
    update(&mut s, Action::MarkContact); // Annie (last)
    update(&mut s, Action::ScrollUp); // Ann Lee
    insta::assert_snapshot!("contacts_80x24", draw(&s, 80, 24));
    assert_eq!(
        update(&mut s, Action::MergeContacts),
        vec![Effect::MergeContacts(9, 8)]
    );
    // Nothing marked any more: a second merge explains instead of merging.
    assert!(update(&mut s, Action::MergeContacts).is_empty());
    update(&mut s, Action::ScrollUp); // Jo, who has two names
    update(&mut s, Action::SplitContact);
    for c in "jo_".chars() {
        update(&mut s, Action::PromptInsert(c));
    }
    update(&mut s, Action::PromptComplete);
    assert_eq!(s.prompt.as_ref().unwrap().input, "jo_d");
    assert_eq!(
        update(&mut s, Action::PromptSubmit),
        vec![Effect::SplitContact(7, "jo_d".into())]
    );
}

fn chat_job(id: u64, body: JobBody) -> Action {
    Action::Job(JobEvent {
        id,
        job: "chat".into(),
        body,
    })
}

fn type_text(s: &mut State, text: &str) {
    for c in text.chars() {
        update(s, Action::ChatInsert(c));
    }
}

/// A finished reply with markdown and citations, the second citation selected,
/// then a second reply streaming, and a draft in the input.
fn chat_state(w: u16, h: u16) -> State {
    let mut s = state_at(Pane::Chat, w, h, true);
    update(&mut s, Action::ChatCompose);
    type_text(&mut s, "What do I do on Sundays?");
    update(&mut s, Action::ChatSend);
    update(
        &mut s,
        chat_job(
            5,
            JobBody::Started {
                title: "chatting".into(),
            },
        ),
    );
    let reply = "Mostly **two things**:\n- tea with Alice at `noon` [m:42]\n1. a long walk by the river, whatever the weather [m:7]\n```\nsunday = rest\n```";
    update(&mut s, chat_job(5, JobBody::Token { text: reply.into() }));
    update(
        &mut s,
        chat_job(
            5,
            JobBody::Done {
                summary: serde_json::json!({"reply": reply, "citations": ["42", "7"], "finish": "stop", "stats": {"ttft_ms": 86, "tokens_per_s": 135.2}, "session": 3}),
            },
        ),
    );
    update(&mut s, Action::ChatNextCitation);
    update(&mut s, Action::ChatNextCitation);
    type_text(&mut s, "And Mondays?");
    update(&mut s, Action::ChatSend);
    update(
        &mut s,
        chat_job(
            6,
            JobBody::Started {
                title: "chatting".into(),
            },
        ),
    );
    update(
        &mut s,
        chat_job(
            6,
            JobBody::Token {
                text: "Work, mostly".into(),
            },
        ),
    );
    type_text(&mut s, "thanks");
    update(&mut s, Action::ChatNewline);
    type_text(&mut s, "bye");
    s
}

#[test]
fn chat_streams_with_markdown_citations_and_input() {
    for (w, h) in [(80, 24), (120, 40)] {
        let s = chat_state(w, h);
        insta::assert_snapshot!(format!("chat_streaming_{w}x{h}"), draw(&s, w, h));
    }
}

#[test]
fn chat_after_the_reply_shows_speed_and_sessions() {
    let mut s = chat_state(80, 24);
    update(
        &mut s,
        chat_job(
            6,
            JobBody::Done {
                summary: serde_json::json!({"reply": "Work, mostly.", "citations": [], "finish": "stop", "stats": {"ttft_ms": 40, "tokens_per_s": 140.0}, "session": 3}),
            },
        ),
    );
    update(&mut s, Action::ChatCancel);
    let out = draw(&s, 80, 24);
    assert!(out.contains("140.0 tok/s · first token 40 ms"), "{out}");
    insta::assert_snapshot!("chat_done_80x24", out);
    update(
        &mut s,
        Action::ChatSessionList(vec![twin::llm::sessions::SessionInfo {
            id: 3,
            title: "What do I do on Sundays?".into(),
            turns: 2,
            updated_ms: 1_700_000_000_000,
            contact: Some("Alice".into()),
            adapter: None,
        }]),
    );
    insta::assert_snapshot!("chat_sessions_80x24", draw(&s, 80, 24));
}

// --- The Memory pane ---

mod memory_pane {
    use super::*;
    use twin::app::Effect;
    use twin::app::memory::{ContextLine, DetailAndRow, MemoryDetail, MemoryRow, SourceContext};
    use twin::memory::MemoryKind;
    use twin::memory::report::{MemoryView, ShowReport, SourceView};
    use twin::memory::topics::{L1, Topic};

    const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

    fn row(id: u64, kind: MemoryKind, title: &str, when: &str, pinned: bool) -> MemoryRow {
        MemoryRow {
            id,
            kind,
            title: title.into(),
            snippet: format!("{title}, first line"),
            when: when.into(),
            contacts: if kind == MemoryKind::Document {
                vec![]
            } else {
                vec!["Alice".into()]
            },
            pinned,
            edited: false,
            score: None,
        }
    }

    fn rows() -> Vec<MemoryRow> {
        vec![
            row(
                0x1a2b3c4d5e6f7081,
                MemoryKind::Episode,
                "Hiking in the Alps on saturday",
                "2023-03-12 09:05",
                true,
            ),
            row(
                0x2b3c4d5e6f708192,
                MemoryKind::Fact,
                "Sam booked the hut near Zermatt",
                "2023-03-12 09:01",
                false,
            ),
            row(
                0x3c4d5e6f708192a3,
                MemoryKind::Document,
                "Recipes › Pancakes",
                "2023-02-01 10:00",
                false,
            ),
            row(
                0x4d5e6f708192a3b4,
                MemoryKind::Episode,
                "The dentist appointment moved to monday, and a very long title that does not fit",
                "2023-01-14 18:03",
                false,
            ),
        ]
    }

    fn listed(w: u16, h: u16) -> State {
        let mut s = state_at(Pane::Memory, w, h, true);
        let seq = s.memory.seq;
        update(
            &mut s,
            Action::MemoryRows {
                seq,
                rows: rows(),
                total: 4,
                error: None,
            },
        );
        s
    }

    fn detail(pinned: bool) -> MemoryDetail {
        MemoryDetail {
            id: 0x1a2b3c4d5e6f7081,
            show: ShowReport {
                memory: MemoryView {
                    id: "1a2b3c4d5e6f7081".into(),
                    kind: "episode",
                    title: "Hiking in the Alps on saturday".into(),
                    text: "Alice: are we still going hiking in the Alps on saturday?\nSam: yes! I booked the hut near Zermatt\nAlice: amazing, bring the red tent\nSam: will do, and my new boots".into(),
                    contacts: vec!["Alice".into()],
                    start: "2023-03-12 09:00".into(),
                    end: "2023-03-12 09:05".into(),
                    importance: 0.62,
                    pinned,
                    edited: false,
                    access_count: 3,
                    sources: 4,
                },
                sources: [
                    ("09:00", "Alice", "are we still going hiking in the Alps on saturday?"),
                    ("09:01", "Sam", "yes! I booked the hut near Zermatt"),
                    ("09:02", "Alice", "amazing, bring the red tent"),
                    ("09:05", "Sam", "will do, and my new boots"),
                ]
                .iter()
                .map(|(at, author, text)| SourceView::Message {
                    key: "00".into(),
                    at: format!("2023-03-12 {at}"),
                    author: author.to_string(),
                    text: text.to_string(),
                })
                .collect(),
            },
            conversation: Some((42, "Alice".into())),
        }
    }

    fn opened(w: u16, h: u16) -> State {
        let mut s = listed(w, h);
        assert_eq!(
            update(&mut s, Action::MemoryOpen),
            vec![Effect::ShowMemory("1a2b3c4d5e6f7081".into())]
        );
        update(&mut s, Action::MemoryDetail(Box::new(detail(false))));
        s
    }

    fn l1() -> L1 {
        L1 {
            topics: vec![
                Topic {
                    label: "hiking, alps, hut".into(),
                    terms: vec!["hiking".into(), "alps".into(), "hut".into(), "tent".into()],
                    size: 34,
                    examples: vec![0x1a2b3c4d5e6f7081, 0x2b3c4d5e6f708192],
                },
                Topic {
                    label: "recipes, pancakes".into(),
                    terms: vec!["flour".into(), "eggs".into()],
                    size: 12,
                    examples: vec![0x3c4d5e6f708192a3],
                },
            ],
            entities: vec![],
            biography: "# About me\n\nI am Sam. My messages here run from 2023-01-14 to 2023-04-20 (512 messages).\nI talk most with Alice, Bob.\n\n## Facts\n\n- I booked the hut near Zermatt for a hiking weekend in the Alps [m:2b3c4d5e6f708192]\n- I make pancakes on sundays [m:3c4d5e6f708192a3]\n".into(),
            computed_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn list_newest_first_with_a_pin_and_a_filter() {
        for (w, h) in SIZES {
            let s = listed(w, h);
            insta::assert_snapshot!(format!("memory_list_{w}x{h}"), draw(&s, w, h));
        }
        let mut s = listed(80, 24);
        update(&mut s, Action::MemoryKindFilter);
        update(&mut s, Action::MemoryKindFilter);
        let seq = s.memory.seq;
        update(
            &mut s,
            Action::MemoryRows {
                seq,
                rows: vec![rows()[1].clone()],
                total: 1,
                error: None,
            },
        );
        insta::assert_snapshot!("memory_list_facts_80x24", draw(&s, 80, 24));
    }

    #[test]
    fn empty_memory_says_how_to_build_it() {
        for (w, h) in SIZES {
            let mut s = state_at(Pane::Memory, w, h, true);
            let seq = s.memory.seq;
            update(
                &mut s,
                Action::MemoryRows {
                    seq,
                    rows: Vec::new(),
                    total: 0,
                    error: None,
                },
            );
            insta::assert_snapshot!(format!("memory_empty_{w}x{h}"), draw(&s, w, h));
        }
        let mut s = state_at(Pane::Memory, 80, 24, false);
        s.memory = Default::default();
        let out = draw(&s, 80, 24);
        assert!(
            out.contains("Loading memory") && out.contains("loading memory"),
            "{out}"
        );
    }

    #[test]
    fn live_search_with_ranked_results() {
        for (w, h) in SIZES {
            let mut s = listed(w, h);
            update(&mut s, Action::MemorySearch);
            for c in "hiking".chars() {
                update(&mut s, Action::PromptInsert(c));
            }
            let seq = s.memory.seq;
            let mut hits = vec![rows()[0].clone(), rows()[1].clone()];
            hits[0].score = Some(0.031);
            hits[1].score = Some(0.016);
            update(
                &mut s,
                Action::MemoryRows {
                    seq,
                    rows: hits,
                    total: 2,
                    error: None,
                },
            );
            insta::assert_snapshot!(format!("memory_search_{w}x{h}"), draw(&s, w, h));
        }
    }

    #[test]
    fn detail_with_provenance() {
        for (w, h) in SIZES {
            let s = opened(w, h);
            insta::assert_snapshot!(format!("memory_detail_{w}x{h}"), draw(&s, w, h));
        }
    }

    #[test]
    fn pinned_detail_and_the_editor() {
        let mut s = opened(80, 24);
        assert_eq!(
            update(&mut s, Action::MemoryPin),
            vec![Effect::PinMemory(0x1a2b3c4d5e6f7081, true)]
        );
        update(
            &mut s,
            Action::MemoryChanged {
                detail: Box::new(DetailAndRow {
                    detail: detail(true),
                    row: MemoryRow {
                        pinned: true,
                        ..rows()[0].clone()
                    },
                }),
                note: "pinned 1a2b3c4d5e6f7081".into(),
            },
        );
        insta::assert_snapshot!("memory_detail_pinned_80x24", draw(&s, 80, 24));
        for (w, h) in SIZES {
            let mut s = opened(w, h);
            update(&mut s, Action::MemoryEdit);
            update(&mut s, Action::EditorUp);
            update(&mut s, Action::EditorHome);
            for c in "Note: ".chars() {
                update(&mut s, Action::EditorInsert(c));
            }
            insta::assert_snapshot!(format!("memory_editor_{w}x{h}"), draw(&s, w, h));
        }
    }

    #[test]
    fn forget_asks_and_says_what_goes() {
        for (w, h) in SIZES {
            let mut s = opened(w, h);
            update(&mut s, Action::MemoryForget);
            insta::assert_snapshot!(format!("memory_forget_{w}x{h}"), draw(&s, w, h));
        }
    }

    #[test]
    fn the_conversation_around_a_memory() {
        for (w, h) in SIZES {
            let mut s = opened(w, h);
            assert_eq!(
                update(&mut s, Action::MemorySource),
                vec![Effect::MemorySource(0x1a2b3c4d5e6f7081)]
            );
            let line = |when: &str, author: &str, text: &str, source: bool| ContextLine {
                when: format!("2023-03-12 {when}"),
                author: author.into(),
                text: text.into(),
                me: author == "Sam",
                source,
            };
            update(
                &mut s,
                Action::MemorySourceShown(Box::new(SourceContext {
                    memory: 0x1a2b3c4d5e6f7081,
                    title: "Alice".into(),
                    lines: vec![
                        line("08:00", "Alice", "good morning", false),
                        line("08:01", "Sam", "morning!", false),
                        line(
                            "09:00",
                            "Alice",
                            "are we still going hiking in the Alps on saturday? I checked the weather and it looks fine all weekend",
                            true,
                        ),
                        line("09:01", "Sam", "yes! I booked the hut near Zermatt", true),
                        line("09:02", "Alice", "amazing, bring the red tent", true),
                        line("09:05", "Sam", "will do, and my new boots", true),
                        line("11:00", "Alice", "see you then", false),
                    ],
                    earlier: 120,
                    later: 31,
                })),
            );
            insta::assert_snapshot!(format!("memory_source_{w}x{h}"), draw(&s, w, h));
        }
    }

    #[test]
    fn topics_and_the_biography() {
        for (w, h) in SIZES {
            let mut s = listed(w, h);
            assert_eq!(update(&mut s, Action::MemoryTopics), vec![Effect::ReadL1]);
            update(&mut s, Action::MemoryL1(Some(Box::new(l1()))));
            update(&mut s, Action::ScrollDown);
            insta::assert_snapshot!(format!("memory_topics_{w}x{h}"), draw(&s, w, h));
            assert_eq!(update(&mut s, Action::MemoryBio), vec![Effect::ReadL1]);
            update(&mut s, Action::ScrollDown);
            insta::assert_snapshot!(format!("memory_bio_{w}x{h}"), draw(&s, w, h));
            assert_eq!(
                update(&mut s, Action::MemoryOpen),
                vec![Effect::ShowMemory("3c4d5e6f708192a3".into())]
            );
        }
        let mut s = listed(80, 24);
        update(&mut s, Action::MemoryBio);
        update(&mut s, Action::MemoryL1(None));
        let out = draw(&s, 80, 24);
        assert!(out.contains("No biography yet. Press r"), "{out}");
    }
}

// --- The Check-ins view: rules, their editor, and a check-in opened in the chat ---

mod checkins_view {
    use super::*;
    use twin::app::Effect;
    use twin::checkin::job::{ListReport, Listed};
    use twin::checkin::rules::{RuleEdit, RuleRow};

    fn rule(text: &str, enabled: bool) -> RuleRow {
        let (cron, problem) = match twin::checkin::rules::validate(text) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        RuleRow {
            rule: text.into(),
            enabled,
            cron,
            problem,
        }
    }

    fn listed(id: &str, rule: &str, due: &str, status: &str, text: Option<&str>) -> Listed {
        Listed {
            id: id.into(),
            rule: rule.into(),
            due: due.into(),
            status: status.into(),
            subject: None,
            text: text.map(Into::into),
            cites: vec![],
            delivered: None,
            reason: None,
        }
    }

    fn with_view() -> State {
        let mut s = state_at(Pane::Ingest, 80, 24, false);
        let list = ListReport {
            at: String::new(),
            timezone: "Europe/Berlin".into(),
            rules: vec!["daily 08:30".into()],
            schedule: vec![
                rule("daily 08:30", true),
                rule("cron 0 18 * * 1-5", true),
                rule("daily 20:00", false),
            ],
            upcoming: vec![listed(
                "00000000000000bb",
                "daily 08:30",
                "2026-11-22T08:30:00+01:00",
                "upcoming",
                None,
            )],
            history: vec![listed(
                "00000000000000aa",
                "daily 20:00",
                "2026-11-21T20:00:00+01:00",
                "delivered",
                Some("Evening! Anything good today?"),
            )],
        };
        update(&mut s, Action::Checkins(Box::new(list), None));
        update(&mut s, Action::ToggleCheckins);
        s
    }

    #[test]
    fn rules_are_listed_edited_with_inline_errors_and_switched() {
        let mut s = with_view();
        update(&mut s, Action::PageUp);
        let out = draw(&s, 80, 24);
        assert!(out.contains("▶ daily 08:30"), "{out}");
        insta::assert_snapshot!("checkins_rules_80x24", out);

        // A new rule: a bad cron expression says what is wrong as it is typed.
        update(&mut s, Action::AddCheckinRule);
        for c in "cron 61 * * * *".chars() {
            update(&mut s, Action::PromptInsert(c));
        }
        assert!(update(&mut s, Action::PromptSubmit).is_empty(), "not saved");
        let out = draw(&s, 80, 24);
        assert!(out.contains("✗ rule `cron 61 * * * *`"), "{out}");
        for _ in 0.."61 * * * *".len() {
            update(&mut s, Action::PromptBackspace);
        }
        for c in "0 7 * * 6".chars() {
            update(&mut s, Action::PromptInsert(c));
        }
        assert!(draw(&s, 80, 24).contains("✓ runs as cron `0 7 * * 6`"));
        assert_eq!(
            update(&mut s, Action::PromptSubmit),
            vec![Effect::EditCheckinRule(RuleEdit::Add(
                "cron 0 7 * * 6".into()
            ))]
        );

        // Change the selected one, switch it off, delete it (asks first).
        update(&mut s, Action::EditCheckinRule);
        assert_eq!(s.prompt.as_ref().unwrap().input, "daily 08:30");
        for _ in 0..5 {
            update(&mut s, Action::PromptBackspace);
        }
        for c in "09:15".chars() {
            update(&mut s, Action::PromptInsert(c));
        }
        assert_eq!(
            update(&mut s, Action::PromptSubmit),
            vec![Effect::EditCheckinRule(RuleEdit::Change {
                old: "daily 08:30".into(),
                new: "daily 09:15".into()
            })]
        );
        assert_eq!(
            update(&mut s, Action::ToggleCheckinRule),
            vec![Effect::EditCheckinRule(RuleEdit::Disable(
                "daily 08:30".into()
            ))]
        );
        update(&mut s, Action::ScrollDown);
        update(&mut s, Action::ScrollDown);
        assert_eq!(
            update(&mut s, Action::ToggleCheckinRule),
            vec![Effect::EditCheckinRule(RuleEdit::Enable(
                "daily 20:00".into()
            ))]
        );
        assert!(update(&mut s, Action::DeleteCheckinRule).is_empty());
        assert!(draw(&s, 80, 24).contains("Delete the check-in rule `daily 20:00`?"));
        assert_eq!(
            update(&mut s, Action::ConfirmYes),
            vec![Effect::EditCheckinRule(RuleEdit::Delete(
                "daily 20:00".into()
            ))]
        );
    }

    #[test]
    fn an_opened_check_in_is_the_twins_first_turn_and_a_reply_continues_it() {
        let mut s = with_view();
        // A chat model is there (the overview lists one).
        s.overview = Some(report(true));
        update(
            &mut s,
            Action::CheckinOpened(Box::new(twin::checkin::OpeningTurn {
                checkin: "00000000000000aa".into(),
                text: "Evening! Anything good today?".into(),
                citations: vec![],
            })),
        );
        assert_eq!(s.focus, Pane::Chat);
        // (Here the view is still open: in the TUI, enter in it closes it first.)
        update(&mut s, Action::ToggleCheckins);
        let out = draw(&s, 80, 24);
        assert!(
            out.contains("twin (check-in: reply to continue it)"),
            "{out}"
        );
        assert!(out.contains("Evening! Anything good today?"), "{out}");
        update(&mut s, Action::ChatCompose);
        for c in "yes, a long walk".chars() {
            update(&mut s, Action::ChatInsert(c));
        }
        match &update(&mut s, Action::ChatSend)[..] {
            [
                Effect::ChatTurn {
                    history, opening, ..
                },
            ] => {
                assert_eq!(
                    history,
                    &vec![twin::llm::Message::assistant(
                        "Evening! Anything good today?"
                    )]
                );
                assert_eq!(
                    opening.as_ref().map(|o| o.0.as_str()),
                    Some("Evening! Anything good today?")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
