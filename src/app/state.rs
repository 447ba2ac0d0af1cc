use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ingest::overview::IngestOverview;
use crate::jobs::{JobId, Level};
use crate::status::StatusReport;

/// The four panes, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pane {
    Ingest,
    Memory,
    Training,
    Chat,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Ingest, Pane::Memory, Pane::Training, Pane::Chat];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Ingest => "Ingest",
            Pane::Memory => "Memory",
            Pane::Training => "Training",
            Pane::Chat => "Chat",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    pub fn prev(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }
}

/// How panes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutMode {
    /// Grid when the terminal is big enough, else single.
    Auto,
    Grid,
    Single,
}

impl LayoutMode {
    pub fn from_config(s: &str) -> LayoutMode {
        match s {
            "grid" => LayoutMode::Grid,
            "single" => LayoutMode::Single,
            _ => LayoutMode::Auto,
        }
    }
}

/// A running job as the status bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub kind: String,
    pub title: String,
    pub done: u64,
    pub total: Option<u64>,
    pub unit: String,
    pub rate: Option<f64>,
    /// The job's latest info line ("reading chat.txt as whatsapp").
    pub detail: Option<String>,
}

impl JobView {
    /// Share done, 0.0 to 1.0, when the total is known.
    pub fn fraction(&self) -> Option<f64> {
        self.total
            .filter(|t| *t > 0)
            .map(|t| (self.done as f64 / t as f64).clamp(0.0, 1.0))
    }

    /// "1.2 MB/s" or "350 messages/s".
    pub fn speed(&self) -> Option<String> {
        let r = self.rate.filter(|r| *r > 0.0)?;
        Some(match self.unit.as_str() {
            "bytes" => format!("{}/s", crate::status::human_bytes(r as u64)),
            unit => format!("{r:.0} {unit}/s"),
        })
    }

    /// Seconds left at the current rate.
    pub fn eta_secs(&self) -> Option<u64> {
        let r = self.rate.filter(|r| *r > 0.0)?;
        let total = self.total?;
        Some((total.saturating_sub(self.done) as f64 / r) as u64)
    }
}

/// One training step as the Training pane charts it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CurvePoint {
    pub step: u64,
    pub loss: f64,
    pub val_loss: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
}

impl CurvePoint {
    /// From a training job's progress metrics.
    pub fn from_metrics(step: u64, metrics: &[(String, f64)]) -> CurvePoint {
        let get = |k: &str| metrics.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        CurvePoint {
            step,
            loss: get("loss").unwrap_or(f64::NAN),
            val_loss: get("val_loss"),
            lr: get("lr").unwrap_or(0.0),
            grad_norm: get("grad_norm").unwrap_or(0.0),
            tokens_per_s: get("tokens_per_s").unwrap_or(0.0),
        }
    }
}

/// What a prompt is asking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptPurpose {
    /// A file, folder or zip to import.
    ImportPath,
    /// Which of this contact's names to split off.
    SplitName(crate::ingest::records::Id),
    /// Whose way of talking the chat takes on.
    ChatContact,
    /// Type `yes` to forget this contact everywhere.
    ConfirmForget(crate::ingest::records::Id),
    /// The Memory pane's live search (drawn inside the pane, not over it).
    MemorySearch,
    /// A check-in rule: a new one, or a change to rule `i` of the view.
    CheckinRule(Option<usize>),
}

/// The contacts list in the Ingest pane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactsView {
    pub selected: usize,
    /// The contact marked to be merged into the selected one.
    pub marked: Option<usize>,
}

/// A one-line text prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub purpose: PromptPurpose,
    pub input: String,
    /// Completions offered for the input (shown under it).
    pub candidates: Vec<String>,
}

impl PromptPurpose {
    pub fn label(self) -> &'static str {
        match self {
            PromptPurpose::ImportPath => "Import (file, folder or zip)",
            PromptPurpose::SplitName(_) => "Split off the messages written under the name",
            PromptPurpose::ChatContact => "Talk as you talk to (empty: anyone)",
            PromptPurpose::ConfirmForget(_) => "Forget this contact for good? Type yes",
            PromptPurpose::MemorySearch => "Search memories",
            PromptPurpose::CheckinRule(None) => "New check-in rule",
            PromptPurpose::CheckinRule(Some(_)) => "Change the check-in rule",
        }
    }

    /// Drawn by its pane rather than as a box over the bottom of the screen.
    pub fn inline(self) -> bool {
        matches!(self, PromptPurpose::MemorySearch)
    }
}

/// What a confirmed question does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmAction {
    ForgetMemory(u64),
    /// Delete rule `i` of the Check-ins view.
    DeleteCheckinRule(usize),
}

/// A yes/no question that says what will happen (a dialog over the screen).
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub question: String,
    /// Lines under the question: what goes, what stays.
    pub detail: Vec<String>,
    pub on_yes: ConfirmAction,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub level: Level,
    pub text: String,
}

/// Check-ins as the TUI shows them: the badge, the Check-ins view, the timer.
#[derive(Debug, Clone, Default)]
pub struct CheckinsState {
    /// Delivered since the view was last opened (the badge).
    pub unread: usize,
    /// The latest delivered check-in's id (what snooze/dismiss act on with the view closed).
    pub latest: Option<String>,
    /// The schedule's rules, switched-off ones too (editable in the view).
    pub rules: Vec<crate::checkin::rules::RuleRow>,
    pub upcoming: Vec<crate::checkin::job::Listed>,
    pub history: Vec<crate::checkin::job::Listed>,
    /// The Check-ins view is open, with this row selected (rules, upcoming, then history).
    pub view: Option<usize>,
    /// When the scheduler runs next (ms since the epoch, UTC).
    pub next_wake_ms: Option<i64>,
    /// A scheduler run is in progress.
    pub running: bool,
    /// The check-in opened in the chat as the twin's first turn.
    pub opening: Option<crate::checkin::OpeningTurn>,
}

impl CheckinsState {
    /// The check-in at row `i` of the view (rules first, then upcoming, then history).
    pub fn row(&self, i: usize) -> Option<&crate::checkin::job::Listed> {
        let i = i.checked_sub(self.rules.len())?;
        self.upcoming.get(i).or_else(|| {
            i.checked_sub(self.upcoming.len())
                .and_then(|j| self.history.get(j))
        })
    }

    /// The rule at row `i` of the view.
    pub fn rule(&self, i: usize) -> Option<&crate::checkin::rules::RuleRow> {
        self.rules.get(i)
    }

    pub fn rows(&self) -> usize {
        self.rules.len() + self.upcoming.len() + self.history.len()
    }
}

/// Everything the TUI shows. Panes render from `&State` only.
#[derive(Debug, Clone)]
pub struct State {
    pub focus: Pane,
    pub layout: LayoutMode,
    pub help: bool,
    pub help_scroll: u16,
    /// Per-pane scroll offsets, by [`Pane::index`].
    pub scroll: [u16; 4],
    pub size: (u16, u16),
    pub jobs: BTreeMap<JobId, JobView>,
    /// Newest last; the status bar shows the newest.
    pub notifications: VecDeque<Notification>,
    pub overview: Option<StatusReport>,
    pub ingest: Option<IngestOverview>,
    /// The summary of the last import that finished while twin ran.
    pub last_ingest: Option<serde_json::Value>,
    pub prompt: Option<Prompt>,
    /// A question waiting for yes or no; keys answer it and nothing else.
    pub confirm: Option<Confirm>,
    pub contacts: Option<ContactsView>,
    pub memory: super::memory::MemoryState,
    /// Training sets, runs and adapters in the store.
    pub training: Option<crate::train::registry::TrainingOverview>,
    /// The running (or last) training job's steps.
    pub train_curve: Vec<CurvePoint>,
    /// The newest evaluation report, and whether the Training pane shows it.
    pub eval_report: Option<crate::train::eval::Report>,
    pub show_eval: bool,
    /// Keys typed so far of a multi-key binding, shown in the status bar.
    pub pending_keys: String,
    pub chat: super::chat::ChatView,
    pub checkins: CheckinsState,
    pub quit: bool,
}

impl State {
    pub fn new(layout: LayoutMode) -> State {
        State {
            focus: Pane::Ingest,
            layout,
            help: false,
            help_scroll: 0,
            scroll: [0; 4],
            size: (80, 24),
            jobs: BTreeMap::new(),
            notifications: VecDeque::new(),
            overview: None,
            ingest: None,
            last_ingest: None,
            prompt: None,
            confirm: None,
            contacts: None,
            memory: Default::default(),
            training: None,
            train_curve: Vec::new(),
            eval_report: None,
            show_eval: false,
            pending_keys: String::new(),
            chat: Default::default(),
            checkins: CheckinsState::default(),
            quit: false,
        }
    }

    /// Whether all four panes are shown at the current size.
    pub fn grid(&self) -> bool {
        match self.layout {
            LayoutMode::Grid => true,
            LayoutMode::Single => false,
            LayoutMode::Auto => self.size.0 >= 120 && self.size.1 >= 36,
        }
    }

    /// The push-to-talk job: `Some(true)` while recording, `Some(false)` while
    /// transcribing, `None` when there is none.
    pub fn recording(&self) -> Option<bool> {
        self.jobs
            .values()
            .find(|j| j.kind == crate::voice::PTT_JOB)
            .map(|j| j.unit == crate::voice::LEVEL_UNIT || j.unit.is_empty())
    }

    pub fn notify(&mut self, level: Level, text: impl Into<String>) {
        const KEEP: usize = 50;
        self.notifications.push_back(Notification {
            level,
            text: text.into(),
        });
        while self.notifications.len() > KEEP {
            self.notifications.pop_front();
        }
    }
}
