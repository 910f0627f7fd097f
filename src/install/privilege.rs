//! Who may change what. Root may change the host. Under `--root DIR` a user
//! who can write DIR may change that tree as themself: the service user
//! must then be that user, so nothing ever needs another owner (no
//! `useradd`, every `chown` a no-op, initdb and the server run as the
//! caller). Checked before a question is asked or a byte is downloaded.

use super::layout::HostLayout;
use super::users;
use crate::error::{Classify, Kind, Result};
use std::path::{Path, PathBuf};

/// This process may not make the changes asked for.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("pgoci {command} must run as root (it creates users, chowns the data directory and runs services)")]
    NotRoot { command: String },
    #[error("pgoci {command} cannot write --root {} as uid {uid}", root.display())]
    RootNotWritable {
        command: String,
        root: PathBuf,
        uid: u32,
    },
    #[error("pgoci {command} under --root as uid {uid} cannot run the server as {user}: only root may give files to another user")]
    OtherUser {
        command: String,
        uid: u32,
        user: String,
        /// The caller's name in `/etc/passwd`, if it has one.
        caller: Option<String>,
    },
}

impl Classify for PrivilegeError {
    fn kind(&self) -> Kind {
        Kind::Host
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            PrivilegeError::NotRoot { .. } => {
                "run it with sudo, or add --check to see the plan without changing anything".into()
            }
            PrivilegeError::RootNotWritable { .. } => {
                "choose a --root you own, or run it as root".into()
            }
            PrivilegeError::OtherUser {
                caller: Some(name), ..
            } => format!("pass --user {name} to run the server as yourself, or run it as root"),
            PrivilegeError::OtherUser {
                caller: None, uid, ..
            } => {
                format!("uid {uid} has no name in /etc/passwd to run the server as: run it as root")
            }
        })
    }
}

/// Fails unless this process may apply `command`'s changes to `layout`;
/// `service_user` is the account the instance runs as.
pub fn require(command: &str, layout: &HostLayout, service_user: &str) -> Result<()> {
    let me = rustix::process::geteuid();
    if me.is_root() {
        return Ok(());
    }
    if layout.root == Path::new("/") {
        return Err(PrivilegeError::NotRoot {
            command: command.to_string(),
        }
        .into());
    }
    let root = &layout.root;
    if !writable(root) {
        return Err(PrivilegeError::RootNotWritable {
            command: command.to_string(),
            root: root.clone(),
            uid: me.as_raw(),
        }
        .into());
    }
    let caller = users::by_uid(me.as_raw());
    let caller_name = caller.as_ref().map(|a| a.name.clone());
    if caller_name.as_deref() == Some(service_user) {
        return Ok(());
    }
    Err(PrivilegeError::OtherUser {
        command: command.to_string(),
        uid: me.as_raw(),
        user: service_user.to_string(),
        caller: caller_name,
    }
    .into())
}

/// Whether this process may create entries in `dir` (or, when it does not
/// exist yet, in its nearest existing ancestor, where it will be made).
fn writable(dir: &Path) -> bool {
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    rustix::fs::access(
        existing,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_itself_needs_root() {
        if rustix::process::geteuid().is_root() {
            // As root everything is allowed; the refusals are covered by the
            // integration test that runs pgoci as another user.
            assert!(require(
                "install",
                &HostLayout::new(Path::new("/"), Path::new("/opt/pgoci")),
                "postgres"
            )
            .is_ok());
            return;
        }
        let err = require(
            "install",
            &HostLayout::new(Path::new("/"), Path::new("/opt/pgoci")),
            "postgres",
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Host);
        assert!(err.message.contains("must run as root"), "{err}");
    }

    #[test]
    fn a_missing_root_counts_as_its_nearest_existing_ancestor() {
        let d = tempfile::tempdir().unwrap();
        assert!(writable(&d.path().join("not/yet/made")));
    }
}
