//! Major upgrades with `pg_upgrade`, planned so the data is never at risk:
//!
//! 1. every check runs while the old server is still up: the new major's
//!    server and a build of every extension in use in any database (with
//!    an update path from the installed version), the old cluster's initdb
//!    options, the collation gate, the file system and space for the
//!    method, and `pg_upgrade --check` against the running old cluster;
//! 2. the new cluster is a new data directory beside the old one
//!    (`data-<major>`), so with `clone` and `copy` the old one stays as it
//!    was until `--finalize`; rollback brings back the old generation *and*
//!    the old data directory;
//! 3. every phase is journaled in `state.json` ([`MajorRecord`]) before it
//!    starts, so a run killed at any point is finished (after `pg_upgrade`
//!    succeeded) or undone (before) by running the same command again.
//!
//! The journal, not the [`super::transaction::Transaction`], carries this
//! operation: it spans a server stop and a long external tool, and must
//! survive the process.

use super::apply::{compose_generation, GenerationInput};
use super::cluster::{ClusterOptions, Method, Server, Upgrade};
use super::collation::{self, Change, Choice, Gate};
use super::extensions::{self, Update};
use super::facts::spec_of;
use super::generation::{self, GENERATION_LOCK};
use super::layout::HostLayout;
use super::libraries::{self, LibraryMode};
use super::locale::LocaleProvider;
use super::privilege;
use super::service::{self, ServiceManager, ServiceSpec};
use super::state::{GenerationState, InstanceState};
use super::transaction::Transaction;
use super::users::{self, chown_mode, Account};
use crate::blobs::BlobSource;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fsutil;
use crate::install::postgres::InitdbSettings;
use crate::lock::Lock;
use crate::names::{InstanceName, LocaleName};
use crate::progress::Reporter;
use serde::Serialize;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

mod checks;
mod error;
mod phases;
mod report;
mod rollback;
#[cfg(test)]
mod tests;

use checks::*;
pub use error::{MajorUpgradeError, RolledBack};
use phases::*;
pub use report::plan_lines;
use report::*;
use rollback::*;
pub use rollback::{finalize, rollback};

pub use super::state::{CollationChange, MajorRecord, Phase};

/// What a major upgrade is asked to do.
pub struct Request<'a> {
    pub layout: &'a HostLayout,
    pub instance: &'a InstanceName,
    pub lock: &'a Lock,
    pub source: &'a dyn BlobSource,
    pub method: Option<Method>,
    pub collation: Option<Choice>,
    pub libraries: LibraryMode,
    pub check: bool,
}

/// The plan of a major upgrade, as `--check`, the confirmation and
/// `--json` show it.
#[derive(Debug, Clone, Serialize)]
pub struct MajorPlan {
    pub from: u32,
    pub to: u32,
    pub from_version: String,
    pub to_version: String,
    pub method: Method,
    pub old_data_dir: PathBuf,
    pub new_data_dir: PathBuf,
    pub generation: String,
    /// The old cluster's initdb options, carried over (not known again
    /// when a killed run is resumed after pg_upgrade).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<ClusterOptions>,
    /// Set when a killed run was resumed after pg_upgrade.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// Every database × extension, with its update.
    pub extensions: Vec<Update>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collation: Option<Gate>,
    /// Bytes the copy needs on the new data directory's file system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_bytes: Option<u64>,
    /// What rollback can do afterwards, in words.
    pub rollback: String,
}

/// What a major-upgrade command did.
#[derive(Debug, Clone, Serialize)]
pub struct MajorReport {
    pub changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<MajorPlan>,
    /// What was done (or, with `--check`, would be), one line each.
    pub actions: Vec<String>,
    /// Downtime: from the old server stopping to the new one accepting
    /// connections, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyze_ms: Option<u64>,
}

impl MajorReport {
    fn unchanged(action: impl Into<String>) -> Self {
        MajorReport {
            changed: false,
            plan: None,
            actions: vec![action.into()],
            downtime_ms: None,
            analyze_ms: None,
        }
    }
}

/// The instance's pieces every phase needs.
struct Instance<'a> {
    layout: &'a HostLayout,
    name: &'a InstanceName,
    dir: PathBuf,
    account: Account,
    manager: Box<dyn ServiceManager>,
}

impl<'a> Instance<'a> {
    fn open(layout: &'a HostLayout, name: &'a InstanceName) -> Result<(Self, InstanceState)> {
        let dir = layout.instance(name);
        let st = InstanceState::read(&dir)?
            .ok_or_else(|| crate::install::plan::unknown_instance(layout, name))?;
        let account =
            users::lookup(&st.user).ok_or_else(|| MajorUpgradeError::ServiceUserMissing {
                user: st.user.clone(),
                instance: name.clone(),
            })?;
        let manager = service::manager(st.service, layout);
        Ok((
            Instance {
                layout,
                name,
                dir,
                account,
                manager,
            },
            st,
        ))
    }

    fn gen<'s>(&self, st: &'s InstanceState, name: &str) -> Result<&'s GenerationState> {
        st.generations
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| {
                MajorUpgradeError::GenerationNotRecorded {
                    instance: self.name.clone(),
                    generation: name.to_string(),
                }
                .into()
            })
    }

    /// The service spec of generation `gen` on `data_dir`.
    fn spec(&self, st: &InstanceState, gen: &GenerationState, data_dir: &Path) -> ServiceSpec {
        let env = generation::read_runtime_env(&self.layout.generation(self.name, &gen.name));
        let mut spec = spec_of(self.layout, st, gen, &self.account, &env);
        spec.data_dir = data_dir.to_path_buf();
        spec
    }

    /// A client's view of generation `gen`'s server.
    fn server(&self, st: &InstanceState, gen: &GenerationState) -> Server {
        let gen_dir = self.layout.generation(self.name, &gen.name);
        let others = st
            .generations
            .iter()
            .filter(|g| g.name != gen.name)
            .rev()
            .map(|g| self.layout.generation(self.name, &g.name).join(&g.dirs.bin));
        Server {
            bin: gen_dir.join(&gen.dirs.bin),
            client_dirs: others
                .chain(super::cluster::host_client_dirs(self.layout))
                .collect(),
            env: generation::read_runtime_env(&gen_dir),
            account: self.account.clone(),
            socket_dir: st.socket_dir.clone(),
            port: st.port,
        }
    }

    fn save(&self, st: &InstanceState) -> Result<()> {
        st.write(&self.dir)
    }

    /// Points the instance at generation `gen` on `data_dir`: the service
    /// manager's files, the lock copy, then `current` (the state is the
    /// caller's to write).
    fn switch_to(&self, st: &InstanceState, gen: &GenerationState, data_dir: &Path) -> Result<()> {
        let gen_dir = self.layout.generation(self.name, &gen.name);
        let lock = Lock::read(&gen_dir.join(GENERATION_LOCK))?;
        let spec = self.spec(st, gen, data_dir);
        let mut tx = Transaction::new(self.layout);
        crate::install::apply::write_service_files(self.manager.as_ref(), &spec, &mut tx)?;
        tx.write_file(
            &self.dir.join("pgoci.lock"),
            lock.to_yaml()?.as_bytes(),
            0o644,
        )?;
        tx.switch_link(
            &self.dir.join("current"),
            &PathBuf::from("generations").join(&gen.name),
        )?;
        tx.commit();
        Ok(())
    }

    fn ensure_runtime_dirs(&self, st: &InstanceState) -> Result<()> {
        for (dir, mode) in [
            (st.socket_dir.clone(), 0o755),
            (self.layout.log_dir(self.name), 0o750),
        ] {
            fs::create_dir_all(&dir).with_path(&dir, "create")?;
            chown_mode(&dir, &self.account, mode)?;
        }
        Ok(())
    }
}

/// `pgoci upgrade --major N`: plans, checks and (unless `check`) runs a
/// major upgrade, or finishes or undoes one a killed run left.
pub fn upgrade(req: &Request, reporter: &dyn Reporter) -> Result<MajorReport> {
    let (inst, mut st) = Instance::open(req.layout, req.instance)?;
    let command = match req.check {
        true => "upgrade --major --check (it runs pg_upgrade --check as the service user)",
        false => "upgrade --major",
    };
    privilege::require(command, req.layout, &st.user)?;
    let to = req.lock.major();
    if let Some(rec) = st.major_upgrade.clone() {
        match (rec.to_major == to, rec.phase) {
            (true, Phase::Done) => {
                return Ok(MajorReport::unchanged(format!(
                    "instance {} is on PostgreSQL {to} already (the data of {} is kept at {} until --finalize)",
                    req.instance,
                    rec.from_major,
                    rec.old_data_dir.display()
                )))
            }
            (false, Phase::Done) => {
                return Err(MajorUpgradeError::OldDataKept {
                    instance: req.instance.clone(),
                    from_major: rec.from_major,
                    old_data: rec.old_data_dir.clone(),
                }
                .into())
            }
            (true, phase) if req.check => {
                return Ok(MajorReport::unchanged(format!(
                    "a major upgrade to PostgreSQL {to} was interrupted ({phase:?}); running the command without --check {} it",
                    if phase >= Phase::Upgraded { "finishes" } else { "undoes and redoes" }
                )))
            }
            (true, phase) if phase >= Phase::Upgraded => {
                let mut actions = vec![format!(
                    "resumed the upgrade to PostgreSQL {to} where it stopped ({phase:?})"
                )];
                let plan = MajorPlan::resumed(&st, &rec);
                let (downtime_ms, analyze_ms) = finish(&inst, &mut st, &mut actions, None, reporter)?;
                return Ok(MajorReport {
                    changed: true,
                    plan,
                    actions,
                    downtime_ms,
                    analyze_ms,
                });
            }
            (true, _) => {
                undo_unfinished(&inst, &mut st)?;
            }
            (false, _) => {
                return Err(MajorUpgradeError::OtherUnfinished {
                    instance: req.instance.clone(),
                    to_major: rec.to_major,
                }
                .into())
            }
        }
    }
    let from = st.major;
    if to <= from {
        return Err(MajorUpgradeError::NotNewer {
            instance: req.instance.clone(),
            from,
            to,
        }
        .into());
    }
    let old_gen = inst.gen(&st, &st.current)?.clone();
    let old = inst.server(&st, &old_gen);
    let old_spec = inst.spec(&st, &old_gen, &st.data_dir);
    if !inst.manager.is_active(&old_spec) {
        return Err(MajorUpgradeError::NotRunning {
            instance: req.instance.clone(),
        }
        .into());
    }

    // The new generation: composed beside the current one, switched to
    // only after pg_upgrade succeeded.
    let lock_digest = req.lock.digest()?;
    let (gen, gen_created) = new_generation(req, &inst, &st, &lock_digest, reporter)?;
    let gen_dir = req.layout.generation(req.instance, &gen.name);
    // Made by this run: removed again unless the journal takes it over
    // (a refused or checked upgrade leaves nothing behind).
    let mut scratch = Scratch::default();
    if gen_created {
        scratch.paths.push(gen_dir.clone());
    }
    // The new major's client talks to the old server too.
    let mut old = old;
    old.client_dirs.insert(0, gen_dir.join(&gen.dirs.bin));
    let result = (|| {
        // What the old cluster holds.
        let installed: Vec<extensions::Installed> = old
            .installed_extensions()?
            .into_iter()
            .filter(|e| !extensions::built_in(&e.name))
            .collect();
        let options = old.initdb_options(from)?;

        let updates = extensions::plan(
            &installed,
            &extensions::control_dirs(&gen_dir, &gen.dirs.sharedir),
        );
        extensions::refuse_impossible(
            &updates,
            &format!("the upgrade to PostgreSQL {to} ({})", gen.server_version),
        )?;

        // The collation gate: the data's libraries against the new ones.
        let data_libs = st
            .collation
            .clone()
            .or_else(|| old_gen.collation.clone())
            .unwrap_or_else(|| {
                let env = generation::read_runtime_env(
                    &req.layout.generation(req.instance, &old_gen.name),
                );
                collation::of_generation(
                    &req.layout.generation(req.instance, &old_gen.name),
                    &old_gen.dirs,
                    &env,
                )
            });
        let new_libs = gen.collation.clone().unwrap_or_default();
        let gate = match Change::between(&data_libs, &new_libs) {
            Some(change) => Some(Gate {
                affected: Some(collation::affected(&old, from, &change)?),
                change,
                choice: req.collation,
            }),
            None => None,
        };
        if let Some(g) = &gate {
            g.refuse_unchosen(&format!("the upgrade to PostgreSQL {to}"))?;
        }

        // Where, and how, the data moves.
        let old_data = st.data_dir.clone();
        let parent = old_data
            .parent()
            .ok_or_else(|| MajorUpgradeError::DataDirWithoutParent {
                data: old_data.clone(),
            })?
            .to_path_buf();
        let new_data = parent.join(format!("data-{to}"));
        if fs::symlink_metadata(&new_data).is_ok() {
            return Err(MajorUpgradeError::NewDataExists { path: new_data }.into());
        }
        let method = choose_method(req.method, &old_data, &parent)?;
        let copy_bytes = match method {
            Method::Copy => {
                let need = dir_bytes(&old_data);
                let free = crate::system::free_bytes(&parent).unwrap_or(u64::MAX);
                if free < need + need / 10 {
                    return Err(MajorUpgradeError::NoSpaceForCopy {
                        needed: need + need / 10,
                        on: parent,
                        free,
                    }
                    .into());
                }
                Some(need)
            }
            _ => None,
        };
        let plan = MajorPlan {
            from,
            to,
            from_version: old_gen.server_version.clone(),
            to_version: gen.server_version.clone(),
            method,
            old_data_dir: old_data.clone(),
            new_data_dir: new_data.clone(),
            generation: gen.name.clone(),
            options: Some(options.clone()),
            resumed: false,
            extensions: updates.clone(),
            collation: gate.clone(),
            copy_bytes,
            rollback: rollback_rule(method, from, &old_data, req.instance),
        };
        let initdb = initdb_settings(&options, to)?;
        let new_server_bin = gen_dir.join(&gen.dirs.bin);
        let new_env = generation::read_runtime_env(&gen_dir);
        let upgrade_port = pg_upgrade_port(st.port);
        let run_check = |data: &Path| -> Result<()> {
            Upgrade {
                old: &old,
                old_data: &old_data,
                new_bin: &new_server_bin,
                new_env: &new_env,
                new_data: data,
                new_port: upgrade_port,
                method,
                new_major: to,
                jobs: jobs(),
            }
            .run(true)
        };
        inst.ensure_runtime_dirs(&st)?;

        if req.check {
            // A scratch cluster for pg_upgrade --check, removed after.
            let check_data = parent.join(format!(".pgoci-check-data-{to}-{}", std::process::id()));
            scratch.paths.push(check_data.clone());
            init_cluster(&inst, &st, req.lock, &gen, &initdb, &check_data)?;
            run_check(&check_data)?;
            let mut actions = plan_lines(&plan);
            actions.insert(
                0,
                "pg_upgrade --check passed against the running server".into(),
            );
            return Ok(MajorReport {
                changed: true,
                plan: Some(plan),
                actions,
                downtime_ms: None,
                analyze_ms: None,
            });
        }

        // From here the journal says what to finish or undo.
        scratch.paths.retain(|p| *p != gen_dir);
        if !st.generations.iter().any(|g| g.name == gen.name) {
            st.generations.push(gen.clone());
        }
        st.major_upgrade = Some(MajorRecord {
            from_major: from,
            to_major: to,
            from_generation: old_gen.name.clone(),
            to_generation: gen.name.clone(),
            old_data_dir: old_data.clone(),
            new_data_dir: new_data.clone(),
            method,
            phase: Phase::Prepared,
            old_collation: Some(data_libs.clone()),
            collation_change: gate.as_ref().map(|g| CollationChange {
                from: g.change.from.clone(),
                to: g.change.to.clone(),
                reindex: g.choice == Some(Choice::Reindex),
            }),
        });
        inst.save(&st)?;
        let mut actions = Vec::new();
        let step = |st: &mut InstanceState, phase: Phase| -> Result<()> {
            if let Some(r) = st.major_upgrade.as_mut() {
                r.phase = phase;
            }
            inst.save(st)
        };
        let outcome = (|| -> Result<()> {
            init_cluster(&inst, &st, req.lock, &gen, &initdb, &new_data)?;
            step(&mut st, Phase::Initialised)?;
            actions.push(format!(
                "initialised {} with the old cluster's options",
                new_data.display()
            ));
            failpoint::hit("major-after-initdb");
            run_check(&new_data)?;
            actions.push("pg_upgrade --check passed against the running server".into());
            step(&mut st, Phase::Stopping)?;
            inst.manager.stop(&old_spec)?;
            actions.push(format!("stopped PostgreSQL {from}"));
            failpoint::hit("major-after-stop");
            Ok(())
        })();
        if let Err(e) = outcome {
            return Err(undo_after_error(&inst, &mut st, e));
        }
        let stopped_at = std::time::Instant::now();
        let upgraded = Upgrade {
            old: &old,
            old_data: &old_data,
            new_bin: &new_server_bin,
            new_env: &new_env,
            new_data: &new_data,
            new_port: pg_upgrade_port(st.port),
            method,
            new_major: to,
            jobs: jobs(),
        }
        .run(false);
        if let Err(e) = upgraded {
            return Err(undo_after_error(&inst, &mut st, e));
        }
        actions.push(format!("pg_upgrade --{method} to {}", new_data.display()));
        step(&mut st, Phase::Upgraded)?;
        failpoint::hit("major-after-pg-upgrade");
        let (downtime_ms, analyze_ms) =
            finish(&inst, &mut st, &mut actions, Some(stopped_at), reporter)?;
        Ok(MajorReport {
            changed: true,
            plan: Some(plan),
            actions,
            downtime_ms,
            analyze_ms,
        })
    })();
    drop(scratch);
    result
}

/// Paths a `--check` made, removed when it ends however it ends.
#[derive(Default)]
struct Scratch {
    paths: Vec<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in self.paths.drain(..).rev() {
            let _ = fs::remove_dir_all(&p);
        }
    }
}

/// Unpacks, checks the libraries of and composes the new major's
/// generation (or takes the one an earlier run of the same lock left).
fn new_generation(
    req: &Request,
    inst: &Instance,
    st: &InstanceState,
    lock_digest: &crate::digest::Digest,
    reporter: &dyn Reporter,
) -> Result<(GenerationState, bool)> {
    let name = crate::install::plan::next_generation_name(Some(st), lock_digest);
    for pinned in req.lock.artifacts() {
        crate::install::store::ensure(
            req.layout,
            pinned,
            req.source,
            &crate::unpack::keep_all,
            reporter,
        )?;
    }
    let report = libraries::check(req.lock, &req.layout.store(), req.libraries, false)?;
    report.refuse_failed()?;
    fs::create_dir_all(req.layout.generations(inst.name))
        .with_path(&req.layout.generations(inst.name), "create")?;
    compose_generation(
        &GenerationInput {
            layout: req.layout,
            instance: inst.name,
            lock: req.lock,
            lock_digest,
            source: req.source,
            libraries: Some(&report),
        },
        &name,
        reporter,
    )
}
