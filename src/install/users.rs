//! The service user. Looked up by reading `/etc/passwd` and `/etc/group`
//! directly (a static binary must not go through glibc's NSS), created with
//! `useradd` when missing.

use crate::error::{Classify, IoContext, Kind, Result};
use crate::names::InstanceName;
use std::process::{Command, ExitStatus};

/// The service user cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("service user name {name:?} is not allowed")]
    NameNotAllowed { name: String },
    #[error("cannot run useradd to create user {name}: {source}")]
    UseraddSpawn {
        name: String,
        source: std::io::Error,
    },
    #[error("useradd failed to create user {name} ({status})")]
    UseraddFailed { name: String, status: ExitStatus },
    #[error("user {name} missing right after useradd")]
    MissingAfterUseradd { name: String },
    /// The recorded user of an instance is gone.
    #[error("service user {user} of instance {instance} is missing")]
    MissingOfInstance {
        user: String,
        instance: InstanceName,
    },
    /// The user is gone while pgoci reads what it runs.
    #[error("service user {user} is missing")]
    Missing { user: String },
    /// The user an apply created or found is gone by the time it is needed.
    #[error("service user {user} does not exist")]
    Vanished { user: String },
}

impl Classify for UserError {
    fn kind(&self) -> Kind {
        match self {
            UserError::NameNotAllowed { .. } => Kind::Usage,
            _ => Kind::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            UserError::NameNotAllowed { .. } => {
                Some("use up to 32 of a-z, 0-9, _ and -, starting with a letter or _".into())
            }
            UserError::Vanished { .. } => {
                Some("it is created by install; was it removed meanwhile?".into())
            }
            _ => None,
        }
    }
}

/// A system account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub group: String,
}

/// Gives a directory to `account` with `mode`, journaled nowhere: for the
/// major upgrade, whose own journal in `state.json` carries its undo (an
/// apply goes through its transaction instead).
pub fn chown_mode(dir: &std::path::Path, account: &Account, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    rustix::fs::chown(
        dir,
        Some(rustix::fs::Uid::from_raw(account.uid)),
        Some(rustix::fs::Gid::from_raw(account.gid)),
    )
    .map_err(std::io::Error::from)
    .with_path(dir, "chown")?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).with_path(dir, "chmod")
}

/// Finds a user in `/etc/passwd` by name.
pub fn lookup(name: &str) -> Option<Account> {
    find(|fields| fields.first() == Some(&name))
}

/// Finds a user in `/etc/passwd` by uid (the first of that uid).
pub fn by_uid(uid: u32) -> Option<Account> {
    find(|fields| fields.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid))
}

fn find(matches: impl Fn(&[&str]) -> bool) -> Option<Account> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| matches(f))?;
    let name = fields.first()?.to_string();
    let uid = fields.get(2)?.parse().ok()?;
    let gid: u32 = fields.get(3)?.parse().ok()?;
    let group = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|g| {
            g.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.get(2).and_then(|x| x.parse::<u32>().ok()) == Some(gid))
                .map(|f| f[0].to_string())
        })
        .unwrap_or_else(|| gid.to_string());
    Some(Account {
        name,
        uid,
        gid,
        group,
    })
}

/// Refuses a service user name `useradd` could read as an option or that
/// could not stand in `/etc/passwd` and a unit (Debian's default
/// NAME_REGEX: `[a-z_][a-z0-9_-]*`, at most 32).
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    match ok {
        true => Ok(()),
        false => Err(UserError::NameNotAllowed {
            name: name.to_string(),
        }
        .into()),
    }
}

/// Returns the user, creating it as a system user if missing; the bool
/// says whether it was created.
pub fn ensure(name: &str) -> Result<(Account, bool)> {
    if let Some(a) = lookup(name) {
        return Ok((a, false));
    }
    check_name(name)?;
    let status = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args([
            "--home-dir",
            "/var/lib/pgoci",
            "--shell",
            "/usr/sbin/nologin",
        ])
        .args(["--comment", "PostgreSQL (pgoci)"])
        .arg(name)
        .status()
        .map_err(|source| UserError::UseraddSpawn {
            name: name.to_string(),
            source,
        })?;
    if !status.success() {
        return Err(UserError::UseraddFailed {
            name: name.to_string(),
            status,
        }
        .into());
    }
    lookup(name).map(|a| (a, true)).ok_or_else(|| {
        UserError::MissingAfterUseradd {
            name: name.to_string(),
        }
        .into()
    })
}
