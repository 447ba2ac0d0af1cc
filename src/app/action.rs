use serde::{Deserialize, Serialize};

use super::{Notification, Pane};
use crate::jobs::JobEvent;
use crate::status::StatusReport;

/// Everything that can happen to the app. Keymap files name the bindable
/// variants in snake_case (`quit`, `focus_next`, ...); the rest come from the
/// terminal and from jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    FocusNext,
    FocusPrev,
    FocusIngest,
    FocusMemory,
    FocusTraining,
    FocusChat,
    ToggleHelp,
    ToggleLayout,
    ScrollUp,
    ScrollDown,
    PageUp,
    PageDown,
    ScrollTop,
    ScrollBottom,
    DismissNotification,
    Refresh,
    CancelJob,
    StartIngest,
    StartDemo,
    ConfirmMe,
    ToggleContacts,
    MarkContact,
    MergeContacts,
    SplitContact,
    BuildDataset,
    StartTraining,
    ResumeTraining,
    PromptSubmit,
    PromptCancel,
    PromptComplete,
    PromptBackspace,

    /// The terminal changed size.
    #[serde(skip)]
    Resize {
        width: u16,
        height: u16,
    },
    /// A mouse click landed on a pane.
    #[serde(skip)]
    Focus(Pane),
    /// A job reported something.
    #[serde(skip)]
    Job(JobEvent),
    /// Fresh store counts, models and folders.
    #[serde(skip)]
    Overview(Box<StatusReport>),
    #[serde(skip)]
    Notify(Notification),
    /// A character typed into the open prompt.
    #[serde(skip)]
    PromptInsert(char),
    /// Replace the prompt's text (path completion), with the candidates seen.
    #[serde(skip)]
    PromptSet {
        input: String,
        candidates: Vec<String>,
    },
    /// Fresh sources, activity and identity for the Ingest pane.
    #[serde(skip)]
    IngestOverview(Box<crate::ingest::overview::IngestOverview>),
    /// Fresh training sets, runs and adapters for the Training pane.
    #[serde(skip)]
    TrainingOverview(Box<crate::train::registry::TrainingOverview>),
}

impl Action {
    /// The actions a keymap may bind, with what they do (the help overlay's text).
    pub const BINDABLE: &[(Action, &str)] = &[
        (Action::Quit, "quit twin"),
        (Action::FocusNext, "focus the next pane"),
        (Action::FocusPrev, "focus the previous pane"),
        (Action::FocusIngest, "focus Ingest"),
        (Action::FocusMemory, "focus Memory"),
        (Action::FocusTraining, "focus Training"),
        (Action::FocusChat, "focus Chat"),
        (Action::ToggleHelp, "show or hide this help"),
        (
            Action::ToggleLayout,
            "switch between all panes and the focused one",
        ),
        (Action::ScrollUp, "scroll up"),
        (Action::ScrollDown, "scroll down"),
        (Action::PageUp, "scroll up a page"),
        (Action::PageDown, "scroll down a page"),
        (Action::ScrollTop, "scroll to the top"),
        (Action::ScrollBottom, "scroll to the bottom"),
        (
            Action::DismissNotification,
            "dismiss the latest notification",
        ),
        (Action::Refresh, "re-read the store"),
        (Action::CancelJob, "cancel the newest running job"),
        (Action::StartIngest, "import a file, folder or zip"),
        (
            Action::StartDemo,
            "import the demo twin (a public chat corpus)",
        ),
        (Action::ConfirmMe, "confirm that the proposed author is you"),
        (Action::ToggleContacts, "show or hide the contacts list"),
        (Action::MarkContact, "mark the selected contact to merge it"),
        (
            Action::MergeContacts,
            "merge the marked contact into the selected one",
        ),
        (
            Action::SplitContact,
            "split a name off the selected contact",
        ),
        (
            Action::BuildDataset,
            "build a training set from your conversations",
        ),
        (
            Action::StartTraining,
            "train a LoRA adapter on the latest training set",
        ),
        (
            Action::ResumeTraining,
            "resume the last stopped training run from its checkpoint",
        ),
        (Action::PromptSubmit, "accept what is typed"),
        (Action::PromptCancel, "close the prompt"),
        (Action::PromptComplete, "complete the path"),
        (
            Action::PromptBackspace,
            "delete the character before the cursor",
        ),
    ];

    /// Parse an action name as written in a keymap file.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::BINDABLE
            .iter()
            .find(|(a, _)| a.name() == name)
            .map(|(a, _)| a.clone())
    }

    /// The snake_case name of a bindable action.
    pub fn name(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            _ => format!("{self:?}"),
        }
    }

    pub fn description(&self) -> &'static str {
        Action::BINDABLE
            .iter()
            .find(|(a, _)| a == self)
            .map(|(_, d)| *d)
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindable_actions_round_trip_by_name() {
        for (a, desc) in Action::BINDABLE {
            assert!(!desc.is_empty());
            assert_eq!(Action::from_name(&a.name()).as_ref(), Some(a));
            let parsed: Action = serde_json::from_value(serde_json::json!(a.name())).unwrap();
            assert_eq!(&parsed, a);
        }
        assert_eq!(Action::FocusNext.name(), "focus_next");
    }

    #[test]
    fn internal_actions_are_not_bindable() {
        assert!(Action::from_name("resize").is_none());
        assert!(serde_json::from_value::<Action>(serde_json::json!("job")).is_err());
    }
}
