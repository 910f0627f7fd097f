//! Preflight: what a host must offer before an install changes anything.
//! The same checks serve `install` (its planner refuses on a failed one,
//! exit 6, before anything is written) and `doctor` (which prints them
//! all), so the two can never disagree.

use crate::lock::Lock;
use crate::platform::Platform;
use serde::Serialize;

/// One check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, ok: bool, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// What the checks look at, gathered read-only.
#[derive(Debug, Clone)]
pub struct PreflightFacts {
    pub host_platform: Platform,
    /// Free bytes under the prefix (or its nearest existing parent).
    pub free_bytes: Option<u64>,
    /// `useradd` can be run (needed only if the user is missing).
    pub useradd: bool,
    pub user_exists: bool,
}

impl PreflightFacts {
    /// Looks at the host for an install under `prefix` as `user`.
    pub fn gather(prefix: &std::path::Path, user: &str) -> Self {
        PreflightFacts {
            host_platform: Platform::host(),
            free_bytes: crate::system::free_bytes(prefix),
            useradd: crate::system::which("useradd").is_some(),
            user_exists: super::users::lookup(user).is_some(),
        }
    }
}

/// Room an install needs: unpacked artifacts are a few times their
/// compressed size, and a new cluster takes tens of MiB.
pub fn space_needed(lock: &Lock) -> u64 {
    (lock.download_size() * 4).max(256 << 20)
}

/// The checks for installing `lock`.
pub fn checks(lock: &Lock, facts: &PreflightFacts) -> Vec<Check> {
    let platform_ok = lock.platform == facts.host_platform.to_string();
    let needed = space_needed(lock);
    let free = facts.free_bytes.unwrap_or(0);
    vec![
        Check::new(
            "platform",
            platform_ok,
            format!(
                "artifacts are {}, host is {}",
                lock.platform, facts.host_platform
            ),
        ),
        Check::new(
            "disk",
            free >= needed,
            format!("{} MiB free, about {} MiB needed", free >> 20, needed >> 20),
        ),
        Check::new(
            "user",
            facts.user_exists || facts.useradd,
            match (facts.user_exists, facts.useradd) {
                (true, _) => "the service user exists".to_string(),
                (false, true) => "the service user will be created with useradd".to_string(),
                (false, false) => {
                    "the service user is missing and useradd is not installed".to_string()
                }
            },
        ),
    ]
}

/// The host fails checks an install needs.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Each failed check as `name: detail`.
    #[error("this host cannot take the install: {}", failed.join("; "))]
    Refused { failed: Vec<String> },
}

impl crate::error::Classify for PreflightError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Host
    }

    fn hint(&self) -> Option<String> {
        Some("`pgoci doctor` shows every check; nothing was changed".into())
    }
}

/// The failed checks as one refusal (exit 6), or `Ok`.
pub fn refuse_failed(checks: &[Check]) -> crate::Result<()> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(PreflightError::Refused { failed }.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_platform_a_full_disk_or_no_way_to_make_the_user_refuse() {
        let lock = crate::lock::tests::sample();
        let good = PreflightFacts {
            host_platform: lock.platform.parse().unwrap(),
            free_bytes: Some(10 << 30),
            useradd: true,
            user_exists: false,
        };
        assert!(refuse_failed(&checks(&lock, &good)).is_ok());
        for bad in [
            PreflightFacts {
                host_platform: "linux/arm64".parse().unwrap(),
                ..good.clone()
            },
            PreflightFacts {
                free_bytes: Some(1 << 20),
                ..good.clone()
            },
            PreflightFacts {
                useradd: false,
                ..good.clone()
            },
        ] {
            let e = refuse_failed(&checks(&lock, &bad)).unwrap_err();
            assert_eq!(e.kind, crate::Kind::Host, "{}", e.message);
        }
    }
}
