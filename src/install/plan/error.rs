//! What the planner refuses: a host, a data directory or options that an
//! install, rollback or uninstall must not go ahead on.

use crate::error::{Classify, Kind};
use crate::names::InstanceName;
use std::path::PathBuf;

/// A refusal of the planner.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("instance {instance} runs PostgreSQL {running}; this lock is for {lock}: a major upgrade needs pg_upgrade")]
    OtherMajor {
        instance: InstanceName,
        running: u32,
        lock: u32,
    },
    #[error("instance {instance} already uses data dir {}; --data-dir {} differs", recorded.display(), asked.display())]
    DataDirChanged {
        instance: InstanceName,
        recorded: PathBuf,
        asked: PathBuf,
    },
    #[error("data dir {} belongs to instance {owner}", path.display())]
    DataDirOfAnother { path: PathBuf, owner: InstanceName },
    #[error("data dir {} exists and is not a directory", path.display())]
    DataDirNotADirectory { path: PathBuf },
    #[error("data dir {} holds PostgreSQL {} data; this lock is for {lock}", path.display(), found.map_or("unknown".to_string(), |m| m.to_string()))]
    DataDirOtherMajor {
        path: PathBuf,
        found: Option<u32>,
        lock: u32,
    },
    #[error("data dir {} cannot be read by this user", path.display())]
    DataDirUnreadable { path: PathBuf },
    #[error("data dir {} already holds a PostgreSQL cluster that pgoci did not create", path.display())]
    DataDirForeignCluster { path: PathBuf },
    #[error("data dir {} is not empty and was not created by pgoci; refusing to touch it", path.display())]
    DataDirNotPgocis { path: PathBuf },
    #[error("data dir {} of instance {instance} has files but no PG_VERSION; refusing to touch it", path.display())]
    DataDirWithoutVersion {
        path: PathBuf,
        instance: InstanceName,
    },
    #[error("data dir {} of instance {instance} is gone or empty although it was initialised", path.display())]
    DataDirGone {
        path: PathBuf,
        instance: InstanceName,
    },
    #[error("port {port} is used by instance {owner}")]
    PortOfInstance { port: u16, owner: InstanceName },
    #[error("port {port} is taken by another program")]
    PortTaken { port: u16 },
    #[error("no free port at or above 5432")]
    NoFreePort,
    #[error("instance {instance}: current generation is not recorded")]
    CurrentNotRecorded { instance: InstanceName },
    #[error("instance {instance} has no generation before {current}")]
    NoEarlierGeneration {
        instance: InstanceName,
        current: String,
    },
    #[error("instance {instance}: generation {generation} is PostgreSQL {generation_major}, the data is PostgreSQL {data_major}; the major upgrade between them was finalized")]
    MajorFinalized {
        instance: InstanceName,
        generation: String,
        generation_major: u32,
        data_major: u32,
    },
    #[error("data dir {} was not created (and initialised) by pgoci; --purge will not delete it", path.display())]
    PurgeNotPgocis { path: PathBuf },
    #[error("no instance named {instance} under {}", prefix.display())]
    UnknownInstance {
        instance: InstanceName,
        prefix: PathBuf,
    },
}

impl Classify for PlanError {
    fn kind(&self) -> Kind {
        match self {
            PlanError::DataDirChanged { .. }
            | PlanError::NoEarlierGeneration { .. }
            | PlanError::UnknownInstance { .. } => Kind::Usage,
            _ => Kind::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            PlanError::OtherMajor { .. } => {
                "install the new major as another --instance and use pg_upgrade between them"
            }
            PlanError::DataDirChanged { .. } | PlanError::NoEarlierGeneration { .. } => {
                return None
            }
            PlanError::DataDirOfAnother { .. } => "pass another --data-dir",
            PlanError::DataDirNotADirectory { .. } => {
                "pass a new or empty directory as --data-dir"
            }
            PlanError::DataDirOtherMajor { .. } => {
                "use another --data-dir, or pg_upgrade the data first"
            }
            PlanError::DataDirUnreadable { .. } => "run as root (or the directory's owner)",
            PlanError::DataDirForeignCluster { .. } => {
                "pass an empty or new --data-dir (pgoci never adopts existing data)"
            }
            PlanError::DataDirNotPgocis { .. } => "pass an empty or new --data-dir",
            PlanError::DataDirWithoutVersion { .. } => {
                "is its volume mounted, or a restore half done? fix it and run again; pgoci never removes data"
            }
            PlanError::DataDirGone { .. } => {
                "mount or restore the data directory; pgoci will not initialise it again"
            }
            PlanError::PortOfInstance { .. } | PlanError::PortTaken { .. } => {
                "pass another --port"
            }
            PlanError::NoFreePort => "pass --port",
            PlanError::CurrentNotRecorded { .. } => {
                "state.json was edited or is damaged; restore it"
            }
            PlanError::MajorFinalized { .. } => {
                "restore the old major from a backup if you must go back"
            }
            PlanError::PurgeNotPgocis { .. } => {
                "uninstall without --purge and remove it yourself if you are sure"
            }
            PlanError::UnknownInstance { .. } => "`pgoci status` lists the instances",
        };
        Some(hint.into())
    }
}
