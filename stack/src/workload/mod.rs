//! The workload manager of a shard's executor, in the style of the mainframe transaction
//! monitors this product descends from: task priorities that move with the work each task
//! does, so long heavy connections cannot starve short transactions on the same core.
//!
//! [`rules`] holds the rules (no clock, no executor: tested on their own), [`levels`] the
//! priority-ordered ready queue, [`summary`] the termination statistics, [`registry`] the
//! services and performance groups tasks belong to, [`groups`] which group goes first,
//! [`board`] the policy and reports shared with the control thread.

pub mod board;
pub mod groups;
pub mod levels;
pub mod registry;
pub mod rules;
pub mod summary;

pub use board::{Board, GroupLoad, ServiceLoad, ShardLoad, TaskView};
pub use levels::Levels;
pub use registry::{Registry, ServiceId};
pub use rules::{Policy, PolicyError, RunawayAction, TaskLoad, Verdict};
pub use summary::Summary;
