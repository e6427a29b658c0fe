//! Services over the store (issue #6): what the order API and background jobs call.

mod gifts;
pub mod inventory;
pub mod later_events;
pub mod orders;
