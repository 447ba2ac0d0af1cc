use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub level: Level,
    pub text: String,
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
    /// Keys typed so far of a multi-key binding, shown in the status bar.
    pub pending_keys: String,
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
            pending_keys: String::new(),
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
