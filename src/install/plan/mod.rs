//! The planner: pure functions from what was asked (a lock, options) and
//! what the host looks like ([`HostFacts`], gathered read-only by
//! [`super::facts`]) to a [`Plan`]: the typed steps an apply would take.
//! `--check`, the interactive confirmation and `--json` all print the
//! plan; nothing here touches the host or needs root, so the planner is
//! unit-tested against made-up facts.

use super::service::ServiceKind;
use super::state::GenerationState;
use crate::digest::Digest;
use crate::names::InstanceName;
use serde::Serialize;
use std::path::PathBuf;

mod error;
mod gc;
mod install;
mod lifecycle;
mod step;
#[cfg(test)]
mod tests;

pub use error::PlanError;
pub use gc::gc;
pub use install::{install, next_generation_name, service_spec};
pub use lifecycle::{rollback, summary, uninstall, unknown_instance};
pub use step::{Role, Step};

/// The instance part of reports and plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceSummary {
    pub name: InstanceName,
    pub major: u32,
    pub version: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub generation: String,
    pub service: ServiceKind,
    pub user: String,
}

/// What an install or upgrade decided, besides its steps.
#[derive(Debug, Clone)]
pub struct InstallTarget {
    pub lock_digest: Digest,
    pub generation: String,
    /// The generation already exists and is current: nothing to compose.
    pub reuse_generation: Option<GenerationState>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub service: ServiceKind,
    pub socket_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The data directory existed (empty) before: pgoci fills it, but
    /// did not create it (and so `--purge` will not delete it).
    pub data_dir_existed: bool,
}

/// A plan: the steps in order, and what a person should know first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub instance: InstanceSummary,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    /// Set for install and upgrade plans.
    pub install: Option<InstallTarget>,
}

impl Plan {
    /// Whether applying it changes anything.
    pub fn changes_anything(&self) -> bool {
        !self.steps.is_empty()
    }
}
