//! How an instance's server is run: one [`ServiceManager`] trait for what a
//! service manager does (write its files, start, stop, restart, remove,
//! is-active), with two implementations: [`systemd`] (a hardened unit) and
//! [`pgctl`] (no manager: `pg_ctl` starts the server; nothing is written
//! under `/etc/systemd`).
//!
//! Adding a third manager (say OpenRC) is one new file here implementing
//! the trait, one [`ServiceKind`] variant and one arm in [`manager`]; the
//! planner and the applier only ever talk to the trait.

pub mod pgctl;
pub mod systemd;

use super::layout::HostLayout;
use super::runtime::RuntimeEnv;
use super::users::Account;
use crate::error::{Classify, Kind, Result};
use crate::names::InstanceName;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How the server of an instance is run (`--service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// A systemd unit, `pgoci-<instance>.service`.
    Systemd,
    /// No service manager: pgoci starts and stops the server with pg_ctl.
    None,
}

impl ServiceKind {
    /// The default on this host: systemd when it is the running init and
    /// the layout is the real root, else none.
    pub fn default_for(layout: &HostLayout) -> Self {
        if layout.root == Path::new("/") && systemd::is_running() {
            ServiceKind::Systemd
        } else {
            ServiceKind::None
        }
    }

    /// How people read it.
    pub fn describe(self) -> &'static str {
        match self {
            ServiceKind::Systemd => "systemd",
            ServiceKind::None => "none (pg_ctl)",
        }
    }
}

/// Everything a manager needs to run one instance's server.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub instance: InstanceName,
    pub account: Account,
    /// The generation's `bin/` (absolute host path).
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    pub port: u16,
    /// Variables the server needs for its extensions.
    pub env: RuntimeEnv,
    /// The server reports readiness to systemd (`Type=notify`).
    pub notify: bool,
    /// Where a pg_ctl-started server logs.
    pub log_file: PathBuf,
    /// pgoci's own copy in the prefix, run before the server starts
    /// (`ExecStartPre=… start-gate`): the collation gate.
    pub gate: Option<PathBuf>,
}

/// What a service manager does for an instance. Every method is
/// idempotent: starting a running server or removing absent files is fine.
pub trait ServiceManager {
    /// Which manager this is.
    fn kind(&self) -> ServiceKind;

    /// The files this manager writes for `spec`, with their content.
    fn render(&self, spec: &ServiceSpec) -> Result<Vec<(PathBuf, String)>>;

    /// The files it keeps for an instance, present or not.
    fn files(&self, instance: &InstanceName) -> Vec<PathBuf>;

    /// Checks rendered files before they are written (e.g. systemd-analyze).
    /// Returns a warning when the check could not run.
    fn check_rendered(&self, _path: &Path, _text: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// Tells the manager its files changed (e.g. `systemctl daemon-reload`).
    fn reload(&self) -> Result<()> {
        Ok(())
    }

    /// Starts the server and waits until it accepts connections.
    fn start(&self, spec: &ServiceSpec) -> Result<()>;

    /// Stops the server if it runs; says whether it did.
    fn stop(&self, spec: &ServiceSpec) -> Result<bool>;

    /// Restarts the server (starts it if it was stopped) and waits.
    fn restart(&self, spec: &ServiceSpec) -> Result<()>;

    /// Whether the server runs.
    fn is_active(&self, spec: &ServiceSpec) -> bool;

    /// Whether the service starts at boot; `None` where the manager has
    /// no such thing.
    fn is_enabled(&self, _instance: &InstanceName) -> Option<bool> {
        None
    }

    /// Makes the service start at boot (where the manager can).
    fn enable(&self, _instance: &InstanceName) -> Result<()> {
        Ok(())
    }

    /// Stops the service from starting at boot (where the manager can).
    fn disable(&self, _instance: &InstanceName) -> Result<()> {
        Ok(())
    }

    /// Forgets an earlier failed start (systemd's start limit counts a
    /// start the collation gate refused), so the next start is tried.
    fn clear_failed(&self, _instance: &InstanceName) {}
}

/// The manager for `kind` on this layout.
pub fn manager(kind: ServiceKind, layout: &HostLayout) -> Box<dyn ServiceManager> {
    match kind {
        ServiceKind::Systemd => Box::new(systemd::Systemd::new(layout.clone())),
        ServiceKind::None => Box::new(pgctl::PgCtl),
    }
}

/// A service manager refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {output}")]
    Failed { command: String, output: String },
    #[error("systemd-analyze verify rejects the unit {unit}: {complaint}")]
    UnitRejected { unit: String, complaint: String },
    /// A name (instance, user, group) a unit cannot hold unquoted.
    #[error("{what} {value:?} cannot be written into a systemd unit")]
    Unwritable { what: &'static str, value: String },
    #[error("cannot create a temp dir: {0}")]
    TempDir(#[source] std::io::Error),
}

impl Classify for ServiceError {
    fn kind(&self) -> Kind {
        match self {
            // The unit is rendered from the lock and flags: bad input, not a bug.
            ServiceError::UnitRejected { .. } => Kind::Integrity,
            ServiceError::Unwritable { .. } => Kind::Usage,
            ServiceError::TempDir(_) => Kind::Host,
            _ => Kind::Service,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ServiceError::UnitRejected { .. } => Some(
                "the lock's extension environment or a flag makes an invalid unit; fix it and retry"
                    .into(),
            ),
            ServiceError::Spawn { program, .. } if program == "systemctl" => {
                Some("systemd is not usable here: pass --service none".into())
            }
            _ => None,
        }
    }
}
