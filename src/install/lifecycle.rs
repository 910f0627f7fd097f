//! The rest of an instance's life after install: rollback to the previous
//! generation, uninstall (data kept unless `--purge`, and then only a data
//! directory pgoci created), gc of unused store entries and cache blobs,
//! and verification of the files on disk.

use super::layout::{unit_name, HostLayout};
use super::state::{self, InstanceState, ServiceKind};
use super::{manifest, postgres, users, write_config, Actions};
use crate::cache::Cache;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::lock::Lock;
use crate::progress::Reporter;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Loads an instance's state or fails naming it.
pub fn load(layout: &HostLayout, instance: &str) -> Result<InstanceState> {
    InstanceState::read(&layout.instance(instance))?.ok_or_else(|| {
        Error::usage(format!(
            "no instance named {instance} under {}",
            layout.prefix.display()
        ))
        .hint("`pgoci status` lists the instances")
    })
}

/// What a lifecycle command did.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleReport {
    pub changed: bool,
    pub actions: Vec<String>,
}

/// Switches an instance back to the generation before the current one,
/// rewrites its config and unit, and restarts it.
pub fn rollback(
    layout: &HostLayout,
    instance: &str,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    let mut st = load(layout, instance)?;
    let pos = st
        .generations
        .iter()
        .position(|g| g.name == st.current)
        .ok_or_else(|| {
            Error::host(format!(
                "instance {instance}: current generation is not recorded"
            ))
        })?;
    if pos == 0 {
        return Err(Error::usage(format!(
            "instance {instance} has no generation before {}",
            st.current
        )));
    }
    let target = st.generations[pos - 1].clone();
    let instance_dir = layout.instance(instance);
    let gen_dir = instance_dir.join("generations").join(&target.name);
    let lock = super::generation_lock(&instance_dir, &target)?;
    let account = account(&st)?;
    let mut actions = Actions {
        done: Vec::new(),
        reporter,
    };
    write_config(
        &lock,
        instance,
        &gen_dir,
        st.port,
        &st.socket_dir,
        &st.settings,
        &st.data_dir,
        &mut actions,
    )?;
    super::write_unit(
        layout,
        instance,
        &account,
        &gen_dir,
        &target,
        &st.data_dir,
        &mut Vec::new(),
    )?;
    state::switch_symlink(
        &instance_dir.join("current"),
        &PathBuf::from("generations").join(&target.name),
    )?;
    actions.push(format!("switched current back to {}", target.name));
    st.current = target.name.clone();
    st.write(&instance_dir)?;
    state::write_atomic(&instance_dir.join("pgoci.lock"), lock.to_yaml()?.as_bytes())?;
    if let Some(line) = super::start_or_restart(&st, &gen_dir, &account, layout, true, st.service)?
    {
        actions.push(line);
    }
    Ok(LifecycleReport {
        changed: true,
        actions: actions.done,
    })
}

fn account(st: &InstanceState) -> Result<users::Account> {
    users::lookup(&st.user).ok_or_else(|| {
        Error::host(format!(
            "service user {} of instance {} is missing",
            st.user, st.instance
        ))
    })
}

/// Stops an instance's server, however it is run. Not running is fine.
pub fn stop(layout: &HostLayout, st: &InstanceState) -> Result<bool> {
    match st.service {
        ServiceKind::Systemd => {
            let unit = unit_name(&st.instance);
            let active = std::process::Command::new("systemctl")
                .args(["is-active", "--quiet", &unit])
                .status()
                .is_ok_and(|s| s.success());
            if active {
                super::systemctl(&["stop", &unit])?;
            }
            let _ = super::systemctl(&["disable", &unit]);
            Ok(active)
        }
        ServiceKind::None => {
            let Some(gen) = st.current_generation() else {
                return Ok(false);
            };
            let bin = layout
                .instance(&st.instance)
                .join("generations")
                .join(&gen.name)
                .join(&gen.dirs.bin);
            let account = account(st)?;
            if postgres::is_running(&bin, &st.data_dir, &account) {
                postgres::stop(&bin, &st.data_dir, &account)?;
                return Ok(true);
            }
            Ok(false)
        }
    }
}

/// Stops and removes an instance: unit, generations, state. The data
/// directory stays unless `purge`, and is only ever removed if pgoci
/// created it.
pub fn uninstall(
    layout: &HostLayout,
    instance: &str,
    purge: bool,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    // Already gone is success with nothing to do, so a repeated uninstall
    // (Ansible's `state: absent`) reports no change.
    let Some(st) = InstanceState::read(&layout.instance(instance))? else {
        return Ok(LifecycleReport {
            changed: false,
            actions: Vec::new(),
        });
    };
    let mut actions = Actions {
        done: Vec::new(),
        reporter,
    };
    if purge && !st.data_dir_created {
        return Err(Error::host(format!(
            "data dir {} was not created by pgoci; --purge will not delete it",
            st.data_dir.display()
        ))
        .hint("uninstall without --purge and remove it yourself if you are sure"));
    }
    if stop(layout, &st)? {
        actions.push(format!("stopped instance {instance}"));
    }
    let unit = layout.unit_file(instance);
    if unit.exists() {
        fs::remove_file(&unit).with_path(&unit, "remove")?;
        actions.push(format!("removed {}", unit.display()));
        if st.service == ServiceKind::Systemd {
            let _ = super::systemctl(&["daemon-reload"]);
        }
    }
    for dir in [layout.socket_dir(instance), layout.log_dir(instance)] {
        let _ = fs::remove_dir_all(dir);
    }
    let instance_dir = layout.instance(instance);
    // Remove generations first and the state last: a run killed midway can be repeated.
    let gens = instance_dir.join("generations");
    if gens.exists() {
        fs::remove_dir_all(&gens).with_path(&gens, "remove")?;
    }
    fs::remove_dir_all(&instance_dir).with_path(&instance_dir, "remove")?;
    actions.push(format!("removed {}", instance_dir.display()));
    if purge {
        fs::remove_dir_all(&st.data_dir).with_path(&st.data_dir, "remove")?;
        actions.push(format!("purged data dir {}", st.data_dir.display()));
    } else {
        actions.push(format!("kept data dir {}", st.data_dir.display()));
    }
    Ok(LifecycleReport {
        changed: true,
        actions: actions.done,
    })
}

/// What gc freed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub store_entries: usize,
    pub cache_blobs: usize,
    pub bytes_freed: u64,
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|es| es.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Removes store entries no generation of any instance uses, and cache
/// blobs that neither those generations' locks nor `keep` locks need.
pub fn gc(layout: &HostLayout, cache: Option<&Cache>, keep: &[Lock]) -> Result<GcReport> {
    let instances = super::other_instances(layout, "")?;
    let mut used_store = BTreeSet::new();
    let mut used_blobs: BTreeSet<Digest> = BTreeSet::new();
    for st in &instances {
        for g in &st.generations {
            used_store.extend(g.store.iter().cloned());
            if let Ok(lock) = super::generation_lock(&layout.instance(&st.instance), g) {
                used_blobs.extend(lock.blobs().into_iter().map(|b| b.digest));
            }
        }
    }
    for lock in keep {
        used_blobs.extend(lock.blobs().into_iter().map(|b| b.digest));
        used_store.extend(lock.artifacts().map(|a| a.digest.hex().to_string()));
    }
    let mut report = GcReport::default();
    if let Ok(entries) = fs::read_dir(layout.store()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let hex = name.trim_end_matches(".files.json");
            if name.starts_with('.') || used_store.contains(hex) {
                continue;
            }
            report.bytes_freed += dir_size(&e.path());
            if e.path().is_dir() {
                fs::remove_dir_all(e.path()).with_path(&e.path(), "remove")?;
                report.store_entries += 1;
            } else {
                fs::remove_file(e.path()).with_path(&e.path(), "remove")?;
            }
        }
    }
    if let Some(cache) = cache {
        for d in cache.digests()? {
            if used_blobs.contains(&d) {
                continue;
            }
            let p = cache.path(&d);
            report.bytes_freed += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&p).with_path(&p, "remove")?;
            report.cache_blobs += 1;
        }
    }
    Ok(report)
}

/// Re-hashes the current generation of an instance.
pub fn verify(layout: &HostLayout, st: &InstanceState) -> Result<manifest::Drift> {
    manifest::verify_generation(
        &layout
            .instance(&st.instance)
            .join("generations")
            .join(&st.current),
    )
}
