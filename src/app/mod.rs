//! The app core: one owner of state, one message type.
//! `update(&mut State, Action) -> Vec<Effect>` is pure; front-ends perform the effects.

mod action;
mod state;
mod update;

pub use action::Action;
pub use state::{
    ContactsView, CurvePoint, JobView, LayoutMode, Notification, Pane, Prompt, PromptPurpose, State,
};
pub use update::{Effect, update};
