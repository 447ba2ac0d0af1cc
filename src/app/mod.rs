//! The app core: one owner of state, one message type.
//! `update(&mut State, Action) -> Vec<Effect>` is pure; front-ends perform the effects.

mod action;
pub mod chat;
pub mod memory;
mod state;
mod update;

pub use action::Action;
pub use state::{
    CheckinsState, Confirm, ConfirmAction, ContactsView, CurvePoint, JobView, LayoutMode,
    Notification, Pane, Prompt, PromptPurpose, State,
};
pub use update::{Effect, update};
