use serde::{Deserialize, Serialize};

use super::memory::{DetailAndRow, MemoryDetail, MemoryRow, SourceContext};
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
    ForgetContact,
    NeverTrainContact,
    BuildDataset,
    StartTraining,
    ResumeTraining,
    StartEval,
    ToggleEvalReport,
    PromptSubmit,
    PromptCancel,
    PromptComplete,
    PromptBackspace,
    ChatCompose,
    ChatSend,
    ChatNewline,
    ChatBackspace,
    ChatHistoryPrev,
    ChatHistoryNext,
    ChatCancel,
    ChatPrevCitation,
    ChatNextCitation,
    ChatOpenCitation,
    ChatCopy,
    ChatSessions,
    ChatNew,
    ChatToggleAdapter,
    ChatContact,
    ToggleCheckins,
    SnoozeCheckin,
    DismissCheckin,
    OpenCheckin,
    AddCheckinRule,
    EditCheckinRule,
    ToggleCheckinRule,
    DeleteCheckinRule,
    MemorySearch,
    MemoryOpen,
    MemoryBack,
    MemoryKindFilter,
    MemoryContactNext,
    MemoryContactPrev,
    MemoryPin,
    MemoryEdit,
    MemoryForget,
    MemorySource,
    MemoryTopics,
    MemoryBio,
    MemoryBuild,
    MemoryRecompute,
    ConfirmYes,
    ConfirmNo,
    EditorSave,
    EditorCancel,
    EditorNewline,
    EditorBackspace,
    EditorDelete,
    EditorLeft,
    EditorRight,
    EditorUp,
    EditorDown,
    EditorHome,
    EditorEnd,
    ToggleRecording,

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
    /// A character typed into the chat input.
    #[serde(skip)]
    ChatInsert(char),
    /// The stored chat sessions, newest first (for the session list).
    #[serde(skip)]
    ChatSessionList(Vec<crate::llm::sessions::SessionInfo>),
    /// A stored session to continue.
    #[serde(skip)]
    ChatSessionLoaded(Box<crate::llm::sessions::ChatSession>),
    /// What forgetting a contact would remove (asks for confirmation).
    #[serde(skip)]
    ForgetPlanned {
        contact: crate::ingest::records::Id,
        plan: Box<crate::privacy::forget::ForgetReport>,
    },
    /// The check-in timer went off: run the scheduler.
    #[serde(skip)]
    CheckinTick,
    /// Fresh upcoming check-ins, history and the next wake-up time.
    #[serde(skip)]
    Checkins(Box<crate::checkin::job::ListReport>, Option<i64>),
    /// A check-in opened as the twin's first turn of a chat.
    #[serde(skip)]
    CheckinOpened(Box<crate::checkin::OpeningTurn>),
    /// Show a memory's detail in the Memory pane, by id as people and
    /// citations write it (`[m:ID]`: 16 hex digits or a unique prefix of 6+).
    /// Any pane may send it.
    #[serde(skip)]
    OpenMemory(String),
    /// Memory finished opening: notes to show, or why it failed.
    #[serde(skip)]
    MemoryOpened(Result<Vec<String>, String>),
    /// The answer to list request `seq`.
    #[serde(skip)]
    MemoryRows {
        seq: u64,
        rows: Vec<MemoryRow>,
        total: usize,
        error: Option<String>,
    },
    #[serde(skip)]
    MemoryDetail(Box<MemoryDetail>),
    #[serde(skip)]
    MemorySourceShown(Box<SourceContext>),
    /// A memory was pinned, unpinned or edited.
    #[serde(skip)]
    MemoryChanged {
        detail: Box<DetailAndRow>,
        note: String,
    },
    #[serde(skip)]
    MemoryForgotten {
        id: u64,
        note: String,
    },
    /// A memory read or change failed: what to tell the user.
    #[serde(skip)]
    MemoryFailed(String),
    /// Topics and biography as stored (None: never computed).
    #[serde(skip)]
    MemoryL1(Option<Box<crate::memory::topics::L1>>),
    /// The memories of the topic shown.
    #[serde(skip)]
    MemoryTopicRows(Vec<MemoryRow>),
    /// A character typed into the memory editor.
    #[serde(skip)]
    EditorInsert(char),
    /// Fresh training sets, runs and adapters for the Training pane.
    #[serde(skip)]
    TrainingOverview(Box<crate::train::registry::TrainingOverview>),
    /// The newest evaluation report (None: never evaluated).
    #[serde(skip)]
    EvalReport(Option<Box<crate::train::eval::Report>>),
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
            Action::ForgetContact,
            "forget the selected contact everywhere (shows what goes, asks first)",
        ),
        (
            Action::NeverTrainContact,
            "never train on the selected contact (again: train on them again)",
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
        (
            Action::StartEval,
            "evaluate the adapter on held-out conversations (perplexity, style, memory QA, invented facts)",
        ),
        (
            Action::ToggleEvalReport,
            "show or hide the latest evaluation report",
        ),
        (Action::PromptSubmit, "accept what is typed"),
        (Action::PromptCancel, "close the prompt"),
        (Action::PromptComplete, "complete the path"),
        (
            Action::PromptBackspace,
            "delete the character before the cursor",
        ),
        (
            Action::ChatCompose,
            "type a message; in the list, open the session",
        ),
        (Action::ChatSend, "send the message"),
        (Action::ChatNewline, "start a new line in the message"),
        (Action::ChatBackspace, "delete the last character typed"),
        (Action::ChatHistoryPrev, "recall the previous message sent"),
        (Action::ChatHistoryNext, "recall the next message sent"),
        (
            Action::ChatCancel,
            "stop the reply, else stop typing or close",
        ),
        (Action::ChatPrevCitation, "select the previous citation"),
        (Action::ChatNextCitation, "select the next citation"),
        (
            Action::ChatOpenCitation,
            "open the selected citation's memory",
        ),
        (
            Action::ChatCopy,
            "copy the last reply (OSC 52, also over SSH)",
        ),
        (Action::ChatSessions, "show or hide the saved sessions"),
        (Action::ChatNew, "start a new conversation"),
        (
            Action::ChatToggleAdapter,
            "switch base model / fine-tuned adapters",
        ),
        (Action::ChatContact, "talk as you talk to a contact"),
        (Action::ToggleCheckins, "show or hide the Check-ins view"),
        (Action::SnoozeCheckin, "snooze the selected check-in"),
        (Action::DismissCheckin, "dismiss the selected check-in"),
        (
            Action::OpenCheckin,
            "open the selected check-in in the chat (on a rule: edit it)",
        ),
        (Action::AddCheckinRule, "add a check-in rule"),
        (
            Action::EditCheckinRule,
            "change the selected rule (time, days or cron expression)",
        ),
        (
            Action::ToggleCheckinRule,
            "switch the selected rule on or off",
        ),
        (
            Action::DeleteCheckinRule,
            "delete the selected rule (asks first)",
        ),
        (
            Action::MemorySearch,
            "search memories (results come as you type)",
        ),
        (
            Action::MemoryOpen,
            "open the selected memory, topic or reference",
        ),
        (
            Action::MemoryBack,
            "go back; in the list, clear the search (else cancel the newest job)",
        ),
        (
            Action::MemoryKindFilter,
            "show one kind of memory (cycles through the kinds)",
        ),
        (
            Action::MemoryContactNext,
            "show the memories of the next contact",
        ),
        (
            Action::MemoryContactPrev,
            "show the memories of the previous contact",
        ),
        (
            Action::MemoryPin,
            "pin or unpin the memory (pinned ones stay important)",
        ),
        (
            Action::MemoryEdit,
            "edit the memory's text (saving re-embeds it)",
        ),
        (Action::MemoryForget, "forget the memory (asks first)"),
        (
            Action::MemorySource,
            "show the conversation around the memory's sources",
        ),
        (Action::MemoryTopics, "show the topics"),
        (Action::MemoryBio, "show the biography (about you)"),
        (Action::MemoryBuild, "build memories from what was imported"),
        (
            Action::MemoryRecompute,
            "recompute the topics and the biography",
        ),
        (Action::ConfirmYes, "yes, do it"),
        (Action::ConfirmNo, "no, leave it"),
        (Action::EditorSave, "save the text"),
        (Action::EditorCancel, "discard the changes"),
        (Action::EditorNewline, "start a new line"),
        (
            Action::EditorBackspace,
            "delete the character before the cursor",
        ),
        (
            Action::EditorDelete,
            "delete the character under the cursor",
        ),
        (Action::EditorLeft, "move left"),
        (Action::EditorRight, "move right"),
        (Action::EditorUp, "move up a line"),
        (Action::EditorDown, "move down a line"),
        (Action::EditorHome, "move to the start of the line"),
        (Action::EditorEnd, "move to the end of the line"),
        (
            Action::ToggleRecording,
            "push-to-talk: start or stop recording; the transcript goes into the chat input",
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
