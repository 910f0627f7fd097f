//! What a major upgrade (and its rollback and finalize) refuses, or how
//! it failed.

use super::human;
use crate::error::{Classify, Error, Kind};
use crate::install::cluster::Method;
use crate::names::{InstanceName, Invalid};
use std::path::PathBuf;

/// A refusal or failure of a major upgrade.
#[derive(Debug, thiserror::Error)]
pub enum MajorUpgradeError {
    #[error("service user {user} of instance {instance} is missing")]
    ServiceUserMissing {
        user: String,
        instance: InstanceName,
    },
    #[error("instance {instance}: generation {generation} is not recorded")]
    GenerationNotRecorded {
        instance: InstanceName,
        generation: String,
    },
    #[error("instance {instance} still keeps the data of PostgreSQL {from_major} at {} from its last major upgrade", old_data.display())]
    OldDataKept {
        instance: InstanceName,
        from_major: u32,
        old_data: PathBuf,
    },
    #[error("instance {instance} has an unfinished major upgrade to PostgreSQL {to_major}")]
    OtherUnfinished {
        instance: InstanceName,
        to_major: u32,
    },
    #[error("instance {instance} runs PostgreSQL {from}; --major {to} is not newer")]
    NotNewer {
        instance: InstanceName,
        from: u32,
        to: u32,
    },
    #[error("the server of instance {instance} is not running: a major upgrade checks the extensions in use and runs pg_upgrade --check against the running old server")]
    NotRunning { instance: InstanceName },
    #[error("data dir {} has no parent", data.display())]
    DataDirWithoutParent { data: PathBuf },
    #[error("{} exists already; pgoci will not initialise over it", path.display())]
    NewDataExists { path: PathBuf },
    #[error("--method copy needs {} free on {} (the data dir plus 10%); {} is free", human(*needed), on.display(), human(*free))]
    NoSpaceForCopy { needed: u64, on: PathBuf, free: u64 },
    #[error("--method {method} needs the new data directory on the file system of {}; {} is another", old_data.display(), parent.display())]
    MethodNeedsSameFs {
        method: Method,
        old_data: PathBuf,
        parent: PathBuf,
    },
    #[error("--method clone: the file system of {} cannot reflink", parent.display())]
    NoReflink { parent: PathBuf },
    #[error("the old cluster's {what} `{value}` cannot be carried over: {source}")]
    CannotCarryOver {
        what: String,
        value: String,
        source: Invalid,
    },
    #[error("instance {instance} was upgraded to PostgreSQL {to_major} with --method link and the new server has started: the data directory {} can no longer be used", old_data.display())]
    LinkUpgradeStarted {
        instance: InstanceName,
        to_major: u32,
        old_data: PathBuf,
    },
    #[error("the major upgrade of instance {instance} to PostgreSQL {to_major} is not finished")]
    NotFinished {
        instance: InstanceName,
        to_major: u32,
    },
    #[error("PostgreSQL {to_major} did not start: {source}; {rollback}")]
    NewServerNotStarted {
        to_major: u32,
        source: Box<Error>,
        rollback: RolledBack,
    },
}

/// How the rollback after a failed start of the new server went.
#[derive(Debug)]
pub enum RolledBack {
    /// Back on the old major and its data directory.
    To { major: u32, data: PathBuf },
    /// Rolling back failed too.
    Failed(Box<Error>),
}

impl std::fmt::Display for RolledBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RolledBack::To { major, data } => {
                write!(f, "rolled back to PostgreSQL {major} on {}", data.display())
            }
            RolledBack::Failed(e) => write!(f, "rolling back also failed: {e}"),
        }
    }
}

impl Classify for MajorUpgradeError {
    fn kind(&self) -> Kind {
        match self {
            MajorUpgradeError::NotNewer { .. } => Kind::Usage,
            MajorUpgradeError::NewServerNotStarted { .. } => Kind::Service,
            _ => Kind::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        use MajorUpgradeError as E;
        Some(match self {
            E::ServiceUserMissing { .. } => "it is created by install; was it removed?".into(),
            E::GenerationNotRecorded { .. } => {
                "state.json was edited or is damaged; restore it".into()
            }
            E::OldDataKept { instance, .. } => {
                format!("finalize it first: pgoci upgrade --instance {instance} --finalize")
            }
            E::OtherUnfinished { instance, to_major } => format!(
                "run it again with --major {to_major} to finish it, or `pgoci rollback --instance {instance}` to undo it"
            ),
            E::NotNewer { .. } => {
                "a major upgrade goes to a newer major; for the same major use upgrade without --major".into()
            }
            E::NotRunning { .. } => "start it and run the command again".into(),
            E::NewDataExists { .. } => {
                "move it away (it is not pgoci's, or it was set aside by an earlier rollback) and run again".into()
            }
            E::NoSpaceForCopy { .. } => {
                "free space, or use --method link (the old data is unusable once the new server started)".into()
            }
            E::MethodNeedsSameFs { .. } => "use --method copy".into(),
            E::NoReflink { .. } => {
                "use --method copy, or put the data on XFS (reflink=1) or btrfs".into()
            }
            E::LinkUpgradeStarted { .. } => {
                "restore PostgreSQL from a backup if you must go back; the plan of a link upgrade says so".into()
            }
            E::NotFinished { instance, to_major } => format!(
                "run `pgoci upgrade --instance {instance} --major {to_major}` again to finish it, or roll it back"
            ),
            E::DataDirWithoutParent { .. }
            | E::CannotCarryOver { .. }
            | E::NewServerNotStarted { .. } => return None,
        })
    }
}
