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
