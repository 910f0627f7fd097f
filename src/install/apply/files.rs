//! The files an apply writes for an instance: `pgoci.conf` (and the
//! include line), the service manager's files, pgoci's own copy for the
//! unit's start gate, owners and modes; all through the transaction.

use crate::error::{IoContext, Result};
use crate::install::config;
use crate::install::service::{ServiceKind, ServiceManager, ServiceSpec};
use crate::install::transaction::Transaction;
use crate::install::users::Account;
use crate::lock::Lock;
use crate::names::InstanceName;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Gives a directory to the service user with `mode` (both undone with
/// the transaction).
pub(crate) fn give(tx: &mut Transaction, dir: &Path, account: &Account, mode: u32) -> Result<()> {
    tx.chown(dir, account.uid, account.gid)?;
    tx.chmod(dir, mode)
}

/// Writes `pgoci.conf` and the include line; true when anything changed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_config(
    lock: &Lock,
    instance: &InstanceName,
    gen_dir: &Path,
    port: u16,
    socket_dir: &Path,
    settings: &BTreeMap<crate::names::ConfigParam, String>,
    data_dir: &Path,
    tx: &mut Transaction,
) -> Result<bool> {
    let text = config::render(
        lock,
        &config::ConfigInput {
            instance,
            generation: gen_dir,
            port,
            socket_dir,
            user_settings: settings,
        },
    )?;
    let conf = data_dir.join("pgoci.conf");
    let mut changed = tx.write_file(&conf, text.as_bytes(), 0o644)?;
    let main_conf = data_dir.join("postgresql.conf");
    let current = fs::read_to_string(&main_conf).with_path(&main_conf, "read")?;
    if !current.lines().any(|l| l.trim() == config::INCLUDE_LINE) {
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(&main_conf)
                .with_path(&main_conf, "stat")?
                .permissions()
                .mode()
                & 0o7777
        };
        let mut new = current;
        if !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str("\n# Added once by pgoci: settings pgoci manages (see pgoci.conf)\n");
        new.push_str(config::INCLUDE_LINE);
        new.push('\n');
        changed |= tx.write_file(&main_conf, new.as_bytes(), mode)?;
    }
    Ok(changed)
}

/// Renders, checks and writes a manager's files; reloads it if any changed.
pub(crate) fn write_service_files(
    manager: &dyn ServiceManager,
    spec: &ServiceSpec,
    tx: &mut Transaction,
) -> Result<bool> {
    let mut changed = false;
    if let (ServiceKind::Systemd, Some(gate)) = (manager.kind(), &spec.gate) {
        install_gate_binary(gate, tx)?;
    }
    for (path, text) in manager.render(spec)? {
        if fs::read(&path).ok().as_deref() == Some(text.as_bytes()) {
            continue;
        }
        if let Some(warning) = manager.check_rendered(&path, &text)? {
            tracing::warn!("{warning}");
        }
        tx.write_file(&path, text.as_bytes(), 0o644)?;
        changed = true;
    }
    if changed {
        tx.reload(manager.kind())?;
    }
    Ok(changed)
}

/// Puts this pgoci at `path` (the prefix's `bin/pgoci`), for the unit's
/// `ExecStartPre=` collation gate: a hard link where the file system
/// allows, else a copy; renamed into place, left alone when identical.
fn install_gate_binary(path: &Path, tx: &mut Transaction) -> Result<()> {
    let exe = std::env::current_exe().map_err(super::ApplyError::OwnExecutable)?;
    let same = |a: &Path, b: &Path| -> bool {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(x), Ok(y)) => {
                (x.dev(), x.ino()) == (y.dev(), y.ino())
                    || (x.len() == y.len() && fs::read(a).ok() == fs::read(b).ok())
            }
            _ => false,
        }
    };
    if same(&exe, path) {
        return Ok(());
    }
    tx.place_file(path, &exe, 0o755)
}
