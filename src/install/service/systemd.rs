//! systemd: a hardened unit per instance, `pgoci-<instance>.service`,
//! checked with `systemd-analyze verify` before it is written, and driven
//! with `systemctl`. The unit starts the generation's `postgres` by its
//! absolute path (not through `current`), so a switch is a unit change.

use super::{ServiceError, ServiceKind, ServiceManager, ServiceSpec};
use crate::error::{Error, IoContext, Result};
use crate::install::{layout::HostLayout, postgres};
use crate::names::InstanceName;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Runs servers as systemd units.
pub struct Systemd {
    layout: HostLayout,
}

impl Systemd {
    pub fn new(layout: HostLayout) -> Self {
        Systemd { layout }
    }
}

pub use crate::install::layout::unit_name;

/// Whether systemd is the running init (sd_booted's test).
pub fn is_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

impl ServiceManager for Systemd {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Systemd
    }

    fn render(&self, spec: &ServiceSpec) -> Result<Vec<(PathBuf, String)>> {
        Ok(vec![(self.layout.unit_file(&spec.instance), render(spec)?)])
    }

    fn files(&self, instance: &InstanceName) -> Vec<PathBuf> {
        vec![self.layout.unit_file(instance)]
    }

    fn check_rendered(&self, path: &Path, text: &str) -> Result<Option<String>> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        Ok(match verify_text(&name, text)? {
            true => None,
            false => Some("systemd-analyze not found: unit not verified".into()),
        })
    }

    fn reload(&self) -> Result<()> {
        // The host's systemd does not read units written under another --root.
        if self.layout.root != Path::new("/") {
            return Ok(());
        }
        systemctl(&["daemon-reload"])
    }

    fn start(&self, spec: &ServiceSpec) -> Result<()> {
        let unit = unit_name(&spec.instance);
        systemctl(&["enable", &unit])?;
        if self.is_active(spec) {
            return Ok(());
        }
        systemctl(&["start", &unit])?;
        postgres::wait_ready(&spec.data_dir, Duration::from_secs(60))
    }

    fn stop(&self, spec: &ServiceSpec) -> Result<bool> {
        let unit = unit_name(&spec.instance);
        let active = self.is_active(spec);
        if active {
            systemctl(&["stop", &unit])?;
        }
        Ok(active)
    }

    fn restart(&self, spec: &ServiceSpec) -> Result<()> {
        let unit = unit_name(&spec.instance);
        systemctl(&["enable", &unit])?;
        systemctl(&["restart", &unit])?;
        postgres::wait_ready(&spec.data_dir, Duration::from_secs(60))
    }

    fn is_active(&self, spec: &ServiceSpec) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", &unit_name(&spec.instance)])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn is_enabled(&self, instance: &InstanceName) -> Option<bool> {
        self.unit_files()
            .args(["is-enabled", "--quiet", &unit_name(instance)])
            .status()
            .ok()
            .map(|s| s.success())
    }

    fn enable(&self, instance: &InstanceName) -> Result<()> {
        run(self.unit_files().args(["enable", &unit_name(instance)]))
    }

    fn disable(&self, instance: &InstanceName) -> Result<()> {
        run(self.unit_files().args(["disable", &unit_name(instance)]))
    }

    fn clear_failed(&self, instance: &InstanceName) {
        if self.layout.root == Path::new("/") {
            let _ = systemctl(&["reset-failed", &unit_name(instance)]);
        }
    }
}

impl Systemd {
    /// `systemctl` for what lives in unit files (enablement is links among
    /// them): under another `--root`, `systemctl --root` works on that
    /// tree's files, without the host's systemd.
    fn unit_files(&self) -> Command {
        let mut cmd = Command::new("systemctl");
        if self.layout.root != Path::new("/") {
            cmd.arg("--root").arg(&self.layout.root);
        }
        cmd
    }
}

fn systemctl(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("systemctl");
    run(cmd.args(args))
}

/// Runs a `systemctl` command: a failure is a service error with the
/// command line and the last lines it printed.
fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|source| ServiceError::Spawn {
        program: "systemctl".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(ServiceError::Failed {
            command: format!(
                "systemctl {}",
                cmd.get_args()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            output: postgres::last_lines(&String::from_utf8_lossy(&out.stderr), 3),
        }
        .into());
    }
    Ok(())
}

/// A unit value from a lock, profile or flag that cannot be quoted: bad
/// input (exit 5), never a broken unit.
fn refused(e: crate::names::Invalid) -> Error {
    e.integrity()
}

/// Renders the unit file.
pub fn render(spec: &ServiceSpec) -> Result<String> {
    use crate::names::EnvKey;
    use crate::render::{systemd_env, systemd_path};
    let mut env = String::new();
    if let Some(p) = &spec.env.ld_library_path {
        let key = EnvKey::parse("LD_LIBRARY_PATH").map_err(refused)?;
        let value = p.to_string_lossy();
        env.push_str(&format!(
            "Environment={}\n",
            systemd_env(&key, &value).map_err(refused)?
        ));
    }
    for (k, v) in &spec.env.vars {
        // Keys are checked where the lock is read; a bad one is refused here too.
        let key = EnvKey::parse(k).map_err(refused)?;
        env.push_str(&format!(
            "Environment={}\n",
            systemd_env(&key, v).map_err(refused)?
        ));
    }
    // Paths are refused with `$` in them, so the same word serves
    // ExecStart= and ReadWritePaths=.
    let postgres = systemd_path(&spec.bin.join("postgres")).map_err(refused)?;
    // The collation gate runs first, as the service user: a server whose
    // C library changed under its data (a host OS upgrade) does not start.
    let gate = match &spec.gate {
        Some(pgoci) => {
            let prefix = pgoci
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("/"));
            format!(
                "ExecStartPre={} --prefix {} start-gate --instance {}\n",
                systemd_path(pgoci).map_err(refused)?,
                systemd_path(prefix).map_err(refused)?,
                spec.instance
            )
        }
        None => String::new(),
    };
    let data = systemd_path(&spec.data_dir).map_err(refused)?;
    // Names reach the unit unquoted: the instance name is checked where it
    // is given; user and group come from /etc/passwd and are checked here.
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    for (what, value) in [
        ("instance", spec.instance.as_str()),
        ("user", spec.account.name.as_str()),
        ("group", spec.account.group.as_str()),
    ] {
        if !name_ok(value) {
            return Err(ServiceError::Unwritable {
                what,
                value: value.to_string(),
            }
            .into());
        }
    }
    Ok(format!(
        "# Generated by pgoci — rewritten on install, upgrade and rollback.\n\
[Unit]\n\
Description=PostgreSQL instance {instance} (pgoci)\n\
After=network.target\n\
\n\
[Service]\n\
Type={kind}\n\
User={user}\n\
Group={group}\n\
{env}\
{gate}\
ExecStart={postgres} -D {data}\n\
ExecReload=/bin/kill -HUP $MAINPID\n\
KillMode=mixed\n\
KillSignal=SIGINT\n\
TimeoutSec=300\n\
Restart=on-failure\n\
RuntimeDirectory=pgoci/{instance}\n\
RuntimeDirectoryMode=0755\n\
RuntimeDirectoryPreserve=yes\n\
NoNewPrivileges=yes\n\
ProtectSystem=strict\n\
ReadWritePaths={data}\n\
ProtectHome=yes\n\
PrivateTmp=yes\n\
PrivateDevices=yes\n\
ProtectKernelTunables=yes\n\
ProtectKernelModules=yes\n\
ProtectKernelLogs=yes\n\
ProtectControlGroups=yes\n\
ProtectClock=yes\n\
ProtectHostname=yes\n\
RestrictSUIDSGID=yes\n\
RestrictRealtime=yes\n\
RestrictNamespaces=yes\n\
LockPersonality=yes\n\
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
SystemCallArchitectures=native\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n",
        instance = spec.instance,
        user = spec.account.name,
        group = spec.account.group,
        kind = if spec.notify { "notify" } else { "simple" },
    ))
}

/// Checks unit text with `systemd-analyze verify` (on a private copy, so
/// a rejected unit is never installed). `Ok(false)`: the tool is missing.
pub fn verify_text(unit_name: &str, text: &str) -> Result<bool> {
    let dir = tempfile::tempdir().map_err(ServiceError::TempDir)?;
    let file = dir.path().join(unit_name);
    std::fs::write(&file, text).with_path(&file, "write")?;
    let output = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(_) => return Ok(false),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Only complaints about our own unit count; the host's other units may warn.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(unit_name)).collect();
    if !output.status.success() || !ours.is_empty() {
        return Err(ServiceError::UnitRejected {
            unit: unit_name.to_string(),
            complaint: if ours.is_empty() {
                postgres::last_lines(&stderr, 3)
            } else {
                ours.join("; ")
            },
        }
        .into());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::runtime::RuntimeEnv;
    use crate::install::users::Account;

    fn spec(notify: bool, vars: &[(&str, &str)]) -> ServiceSpec {
        ServiceSpec {
            instance: InstanceName::parse("main").unwrap(),
            account: Account {
                name: "postgres".into(),
                uid: 1,
                gid: 1,
                group: "postgres".into(),
            },
            bin: "/opt/pgoci/instances/main/generations/1-abc/bin".into(),
            data_dir: "/var/lib/pgoci/main/data".into(),
            port: 5432,
            env: RuntimeEnv {
                ld_library_path: Some("/opt/x/lib/pgoci-deps".into()),
                vars: vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                notify,
                rewritten: None,
            },
            notify,
            log_file: "/var/log/pgoci/main/postgresql.log".into(),
            gate: Some(PathBuf::from("/opt/pgoci/bin/pgoci")),
        }
    }

    #[test]
    fn unit_runs_the_generation_binary_hardened() {
        let unit = render(&spec(false, &[("PROJ_DATA", "/opt/x/share/proj")])).unwrap();
        assert!(unit.contains("Type=simple\n"));
        assert!(render(&spec(true, &[])).unwrap().contains("Type=notify\n"));
        assert!(unit.contains("ExecStart=\"/opt/pgoci/instances/main/generations/1-abc/bin/postgres\" -D \"/var/lib/pgoci/main/data\"\n"));
        assert!(unit.contains("ReadWritePaths=\"/var/lib/pgoci/main/data\"\n"));
        assert!(unit.contains("Environment=\"LD_LIBRARY_PATH=/opt/x/lib/pgoci-deps\"\n"));
        assert!(unit.contains("Environment=\"PROJ_DATA=/opt/x/share/proj\"\n"));
        for key in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "KillSignal=SIGINT",
            "KillMode=mixed",
        ] {
            assert!(unit.contains(key), "{key}");
        }
    }

    #[test]
    fn injection_through_environment_is_refused_or_escaped() {
        // A newline would start a new unit line (`User=root`): refused.
        let e = render(&spec(
            false,
            &[("X", "a\"\nUser=root\nExecStartPre=+/bin/sh")],
        ))
        .unwrap_err();
        assert_eq!(e.kind, Kind::Integrity, "{}", e.message);
        let e = render(&spec(false, &[("X\"\nUser", "root")])).unwrap_err();
        assert_eq!(e.kind, Kind::Integrity);
        // Quotes, backslashes and specifiers stay inside the value.
        let unit = render(&spec(false, &[("X", r#"a"b\c%h"#)])).unwrap();
        assert!(unit.contains(r#"Environment="X=a\"b\\c%%h""#), "{unit}");
        assert_eq!(unit.lines().filter(|l| l.starts_with("User=")).count(), 1);
    }

    use crate::error::Kind;
}
