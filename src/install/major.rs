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

use super::apply::{compose_generation, require_root, GenerationInput};
use super::cluster::{ClusterOptions, Method, Server, Upgrade};
use super::collation::{self, Change, Choice, CollationLibs, Gate};
use super::extensions::{self, Update};
use super::facts::spec_of;
use super::generation::{self, GENERATION_LOCK};
use super::layout::HostLayout;
use super::libraries::{self, LibraryMode};
use super::locale::LocaleProvider;
use super::postgres::InitdbSettings;
use super::service::{self, ServiceManager, ServiceSpec};
use super::state::{GenerationState, InstanceState};
use super::transaction::Transaction;
use super::users::{self, Account};
use crate::blobs::BlobSource;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fsutil;
use crate::lock::Lock;
use crate::names::{InstanceName, LocaleName};
use crate::progress::Reporter;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How far a major upgrade got; each phase is recorded before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The new generation is composed; the new data directory is being made.
    Prepared,
    /// The new cluster is initialised; the old server still runs.
    Initialised,
    /// The old server is being stopped and `pg_upgrade` runs.
    Stopping,
    /// `pg_upgrade` finished: the new data directory is the upgraded cluster.
    Upgraded,
    /// `current` points at the new generation, the state at the new data.
    Switched,
    /// The new server was started (after `link`, the old data is gone).
    Started,
    /// Extensions updated, statistics rebuilt.
    Done,
}

/// A major upgrade in progress, or done and not yet finalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MajorRecord {
    pub from_major: u32,
    pub to_major: u32,
    pub from_generation: String,
    pub to_generation: String,
    pub old_data_dir: PathBuf,
    pub new_data_dir: PathBuf,
    pub method: Method,
    pub phase: Phase,
    /// The collation libraries the old data was used with.
    #[serde(default)]
    pub old_collation: Option<CollationLibs>,
    /// What the user chose for a collation change (applied after start).
    #[serde(default)]
    pub collation_change: Option<CollationChange>,
}

/// A collation change the upgrade crosses, and the user's choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollationChange {
    pub from: CollationLibs,
    pub to: CollationLibs,
    pub reindex: bool,
}

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

impl MajorPlan {
    /// The plan of an upgrade a killed run left after pg_upgrade, from
    /// its journal (the extensions are those the resumed run updates).
    fn resumed(st: &InstanceState, rec: &MajorRecord) -> Option<MajorPlan> {
        let version = |name: &str| {
            st.generations
                .iter()
                .find(|g| g.name == name)
                .map(|g| g.server_version.clone())
                .unwrap_or_default()
        };
        Some(MajorPlan {
            from: rec.from_major,
            to: rec.to_major,
            from_version: version(&rec.from_generation),
            to_version: version(&rec.to_generation),
            method: rec.method,
            old_data_dir: rec.old_data_dir.clone(),
            new_data_dir: rec.new_data_dir.clone(),
            generation: rec.to_generation.clone(),
            options: None,
            resumed: true,
            extensions: Vec::new(),
            collation: None,
            copy_bytes: None,
            rollback: rollback_rule(rec.method, rec.from_major, &rec.old_data_dir, &st.instance),
        })
    }
}

/// What rollback can do after an upgrade by `method`, in words.
fn rollback_rule(method: Method, from: u32, old_data: &Path, instance: &InstanceName) -> String {
    match method {
        Method::Link => format!(
            "--method link: `pgoci rollback` works only until the new server has started; after that the old data directory {} cannot be used",
            old_data.display()
        ),
        _ => format!(
            "`pgoci rollback` brings back PostgreSQL {from} on {} as it was at the upgrade (writes made after it are lost) until `pgoci upgrade --instance {instance} --finalize` removes it",
            old_data.display()
        ),
    }
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
            .ok_or_else(|| super::plan::unknown_instance(layout, name))?;
        let account = users::lookup(&st.user).ok_or_else(|| {
            Error::host(format!(
                "service user {} of instance {name} is missing",
                st.user
            ))
            .hint("it is created by install; was it removed?")
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
                Error::host(format!(
                    "instance {}: generation {name} is not recorded",
                    self.name
                ))
                .hint("state.json was edited or is damaged; restore it")
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

fn chown_mode(dir: &Path, account: &Account, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    nix::unistd::chown(dir, Some(account.uid.into()), Some(account.gid.into()))
        .map_err(|e| Error::host(format!("cannot chown {}: {e}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).with_path(dir, "chmod")
}

/// `pgoci upgrade --major N`: plans, checks and (unless `check`) runs a
/// major upgrade, or finishes or undoes one a killed run left.
pub fn upgrade(req: &Request, reporter: &dyn Reporter) -> Result<MajorReport> {
    require_root(if req.check {
        "upgrade --major --check (it runs pg_upgrade --check as the service user)"
    } else {
        "upgrade --major"
    })?;
    let (inst, mut st) = Instance::open(req.layout, req.instance)?;
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
                return Err(Error::host(format!(
                    "instance {} still keeps the data of PostgreSQL {} at {} from its last major upgrade",
                    req.instance,
                    rec.from_major,
                    rec.old_data_dir.display()
                ))
                .hint(format!(
                    "finalize it first: pgoci upgrade --instance {} --finalize",
                    req.instance
                )))
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
                return Err(Error::host(format!(
                    "instance {} has an unfinished major upgrade to PostgreSQL {}",
                    req.instance, rec.to_major
                ))
                .hint(format!(
                    "run it again with --major {} to finish it, or `pgoci rollback --instance {}` to undo it",
                    rec.to_major, req.instance
                )))
            }
        }
    }
    let from = st.major;
    if to <= from {
        return Err(Error::usage(format!(
            "instance {} runs PostgreSQL {from}; --major {to} is not newer",
            req.instance
        ))
        .hint(
            "a major upgrade goes to a newer major; for the same major use upgrade without --major",
        ));
    }
    let old_gen = inst.gen(&st, &st.current)?.clone();
    let old = inst.server(&st, &old_gen);
    let old_spec = inst.spec(&st, &old_gen, &st.data_dir);
    if !inst.manager.is_active(&old_spec) {
        return Err(Error::host(format!(
            "the server of instance {} is not running: a major upgrade checks the extensions in use and runs pg_upgrade --check against the running old server",
            req.instance
        ))
        .hint("start it and run the command again"));
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
                    &req.layout.root,
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
            .ok_or_else(|| Error::host(format!("data dir {} has no parent", old_data.display())))?
            .to_path_buf();
        let new_data = parent.join(format!("data-{to}"));
        if fs::symlink_metadata(&new_data).is_ok() {
            return Err(Error::host(format!(
                "{} exists already; pgoci will not initialise over it",
                new_data.display()
            ))
            .hint("move it away (it is not pgoci's, or it was set aside by an earlier rollback) and run again"));
        }
        let method = choose_method(req.method, &old_data, &parent)?;
        let copy_bytes = match method {
            Method::Copy => {
                let need = dir_bytes(&old_data);
                let free = crate::host::free_bytes(&parent).unwrap_or(u64::MAX);
                if free < need + need / 10 {
                    return Err(Error::host(format!(
                        "--method copy needs {} free on {} (the data dir plus 10%); {} is free",
                        human(need + need / 10),
                        parent.display(),
                        human(free)
                    ))
                    .hint("free space, or use --method link (the old data is unusable once the new server started)"));
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
    let name = super::plan::next_generation_name(Some(st), lock_digest);
    for pinned in req.lock.artifacts() {
        super::store::ensure(
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

/// The method: as asked where the file system allows it; else clone
/// where the file system reflinks, copy where not.
fn choose_method(asked: Option<Method>, old_data: &Path, parent: &Path) -> Result<Method> {
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).with_path(p, "stat");
    let same_fs = dev(old_data)? == dev(parent)?;
    match asked {
        Some(m @ (Method::Link | Method::Clone)) if !same_fs => Err(Error::host(format!(
            "--method {m} needs the new data directory on the file system of {}; {} is another",
            old_data.display(),
            parent.display()
        ))
        .hint("use --method copy")),
        Some(Method::Clone) if !can_reflink(parent) => Err(Error::host(format!(
            "--method clone: the file system of {} cannot reflink",
            parent.display()
        ))
        .hint("use --method copy, or put the data on XFS (reflink=1) or btrfs")),
        Some(m) => Ok(m),
        None if same_fs && can_reflink(parent) => Ok(Method::Clone),
        None => Ok(Method::Copy),
    }
}

/// Whether `dir`'s file system makes reflinks (`FICLONE` between two
/// scratch files, removed after).
fn can_reflink(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    let a = dir.join(format!(".pgoci-reflink-a-{}", std::process::id()));
    let b = dir.join(format!(".pgoci-reflink-b-{}", std::process::id()));
    let ok = (|| -> std::io::Result<bool> {
        fs::write(&a, [0u8; 4096])?;
        let src = fs::File::open(&a)?;
        let dst = fs::File::create(&b)?;
        // SAFETY: both descriptors are open for the call's duration.
        let rc = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) };
        Ok(rc == 0)
    })()
    .unwrap_or(false);
    let _ = fs::remove_file(&a);
    let _ = fs::remove_file(&b);
    ok
}

/// Bytes of the regular files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

fn human(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The port pg_upgrade runs the new cluster on (its socket is private to
/// the instance's socket directory, so only the instance's own port must
/// be avoided).
fn pg_upgrade_port(instance_port: u16) -> u16 {
    if instance_port == 50432 {
        50433
    } else {
        50432
    }
}

/// The new cluster's initdb settings: the old cluster's options.
fn initdb_settings(o: &ClusterOptions, to: u32) -> Result<InitdbSettings> {
    let locale = |what: &str, v: &str| {
        LocaleName::parse(v).map_err(|e| {
            Error::host(format!(
                "the old cluster's {what} `{v}` cannot be carried over: {e}"
            ))
        })
    };
    let provider = match o.provider.as_str() {
        "i" => LocaleProvider::Icu,
        "b" => LocaleProvider::Builtin,
        _ => LocaleProvider::Libc,
    };
    let provider_locale = o
        .provider_locale
        .as_deref()
        .map(|l| locale("provider locale", l))
        .transpose()?;
    let settings = InitdbSettings {
        locale: locale("lc_collate", &o.lc_collate)?,
        lc_collate: None,
        lc_ctype: (o.lc_ctype != o.lc_collate)
            .then(|| locale("lc_ctype", &o.lc_ctype))
            .transpose()?,
        encoding: o.encoding.clone(),
        provider,
        icu_locale: (provider == LocaleProvider::Icu)
            .then(|| provider_locale.clone())
            .flatten(),
        builtin_locale: (provider == LocaleProvider::Builtin)
            .then_some(provider_locale)
            .flatten(),
        data_checksums: o.data_checksums,
        wal_segsize_mb: o.wal_segsize_mb,
        ..InitdbSettings::default()
    };
    // Refused here, before any change, if the new major's initdb lacks one.
    settings.args(to)?;
    Ok(settings)
}

/// initdb of a new cluster as the service user, and its `pgoci.conf`.
fn init_cluster(
    inst: &Instance,
    st: &InstanceState,
    lock: &Lock,
    gen: &GenerationState,
    initdb: &InitdbSettings,
    data: &Path,
) -> Result<()> {
    if data.exists() {
        // Left by a killed run of ours (the journal says so): start afresh.
        fs::remove_dir_all(data).with_path(data, "remove")?;
    }
    fs::create_dir(data).with_path(data, "create")?;
    chown_mode(data, &inst.account, 0o700)?;
    let gen_dir = inst.layout.generation(inst.name, &gen.name);
    let env = generation::read_runtime_env(&gen_dir);
    super::postgres::initdb(
        &gen_dir.join(&gen.dirs.bin),
        data,
        &inst.account,
        initdb,
        &env,
    )?;
    write_config(inst, st, lock, gen, data)
}

fn write_config(
    inst: &Instance,
    st: &InstanceState,
    lock: &Lock,
    gen: &GenerationState,
    data: &Path,
) -> Result<()> {
    let mut tx = Transaction::new(inst.layout);
    super::apply::write_config(
        lock,
        inst.name,
        &inst.layout.generation(inst.name, &gen.name),
        st.port,
        &st.socket_dir,
        &st.settings,
        data,
        &mut tx,
    )?;
    tx.commit();
    Ok(())
}

/// Switches to the upgraded cluster, starts it, updates extensions,
/// applies the collation choice and rebuilds statistics: each phase
/// journaled, so a killed run resumes here.
fn finish(
    inst: &Instance,
    st: &mut InstanceState,
    actions: &mut Vec<String>,
    stopped_at: Option<std::time::Instant>,
    _reporter: &dyn Reporter,
) -> Result<(Option<u64>, Option<u64>)> {
    let rec = st
        .major_upgrade
        .clone()
        .ok_or_else(|| Error::internal("finish without a major upgrade record"))?;
    let gen = inst.gen(st, &rec.to_generation)?.clone();
    let gen_dir = inst.layout.generation(inst.name, &gen.name);
    let lock = Lock::read(&gen_dir.join(GENERATION_LOCK))?;
    let set_phase = |st: &mut InstanceState, phase: Phase| -> Result<()> {
        if let Some(r) = st.major_upgrade.as_mut() {
            r.phase = phase;
        }
        inst.save(st)
    };
    if rec.phase < Phase::Switched {
        // The state names the new cluster; the config (written at initdb)
        // and the service files follow it, then `current`.
        write_config(inst, st, &lock, &gen, &rec.new_data_dir)?;
        let mut next = st.clone();
        next.major = rec.to_major;
        next.data_dir = rec.new_data_dir.clone();
        next.data_dir_created = true;
        next.data_dir_complete = true;
        next.current = gen.name.clone();
        // The gate was passed (nothing affected, or a choice made): the
        // data is used with the new libraries from this start on, and the
        // unit's start gate must agree.
        next.collation = gen.collation.clone();
        let spec = inst.spec(&next, &gen, &rec.new_data_dir);
        let mut tx = Transaction::new(inst.layout);
        super::apply::write_service_files(inst.manager.as_ref(), &spec, &mut tx)?;
        fsutil::write_atomic(&inst.dir.join("pgoci.lock"), lock.to_yaml()?.as_bytes())?;
        fsutil::switch_symlink(
            &inst.dir.join("current"),
            &PathBuf::from("generations").join(&gen.name),
        )?;
        tx.commit();
        *st = next;
        set_phase(st, Phase::Switched)?;
        actions.push(format!(
            "switched instance {} to generation {}",
            inst.name, gen.name
        ));
        failpoint::hit("major-after-switch");
    }
    let spec = inst.spec(st, &gen, &rec.new_data_dir);
    if rec.phase < Phase::Started {
        // Recorded first: after --method link a started new server makes
        // the old data unusable, so rollback must know even if we die now.
        set_phase(st, Phase::Started)?;
    }
    inst.ensure_runtime_dirs(st)?;
    if !inst.manager.is_active(&spec) {
        if let Err(e) = inst.manager.start(&spec) {
            if rec.method == Method::Link {
                return Err(e.hint(format!(
                    "the new server did not start; after --method link the old data cannot be used again: fix the cause (see {}) and run the same command again",
                    spec.log_file.display()
                )));
            }
            let e = Error::service(format!(
                "PostgreSQL {} did not start: {}",
                rec.to_major, e.message
            ));
            let message = match rollback_major(inst, st, None) {
                Ok(_) => format!(
                    "{}; rolled back to PostgreSQL {} on {}",
                    e.message,
                    rec.from_major,
                    rec.old_data_dir.display()
                ),
                Err(e2) => format!("{}; rolling back also failed: {}", e.message, e2.message),
            };
            return Err(reworded(e, message));
        }
    }
    let downtime_ms = stopped_at.map(|t| t.elapsed().as_millis() as u64);
    actions.push(format!("started PostgreSQL {}", rec.to_major));
    failpoint::hit("major-after-start");

    // Extensions, as the new server sees them now.
    let server = inst.server(st, &gen);
    let installed: Vec<extensions::Installed> = server
        .installed_extensions()?
        .into_iter()
        .filter(|e| !extensions::built_in(&e.name))
        .collect();
    let updates = extensions::plan(
        &installed,
        &extensions::control_dirs(&gen_dir, &gen.dirs.sharedir),
    );
    for u in updates.iter().filter(|u| u.needed() && u.possible()) {
        server.execute(&u.database, &extensions::alter_statement(u))?;
        actions.push(format!(
            "updated extension {} {} → {} in database {}",
            u.name,
            u.installed,
            u.target.as_deref().unwrap_or("?"),
            u.database
        ));
    }
    // The collation choice (reindex), then every recorded version refreshed.
    let gate = rec.collation_change.as_ref().and_then(|c| {
        Change::between(&c.from, &c.to).map(|change| Gate {
            change,
            affected: None,
            choice: Some(if c.reindex {
                Choice::Reindex
            } else {
                Choice::Accept
            }),
        })
    });
    let rebuilt = collation::apply(&server, rec.to_major, gate.as_ref(), &mut |_, _| {})?;
    for r in rebuilt {
        actions.push(format!("reindexed {r}"));
    }
    let analyze_started = std::time::Instant::now();
    server.analyze_all(rec.to_major, jobs())?;
    let analyze_ms = analyze_started.elapsed().as_millis() as u64;
    actions.push("rebuilt statistics (vacuumdb --analyze-in-stages)".into());
    st.collation = gen.collation.clone();
    set_phase(st, Phase::Done)?;
    Ok((downtime_ms, Some(analyze_ms)))
}

/// Puts the old cluster back after a failure before the switch: the new
/// data directory set aside, the generation forgotten, the old server
/// started again. The error says how that went.
fn undo_after_error(inst: &Instance, st: &mut InstanceState, err: Error) -> Error {
    let message = match undo_unfinished(inst, st) {
        Ok(()) => format!(
            "{}; the upgrade was undone: PostgreSQL {} runs on the unchanged data",
            err.message, st.major
        ),
        Err(e2) => format!("{}; undoing it also failed: {}", err.message, e2.message),
    };
    reworded(err, message)
}

/// The same error with another message (kind, hint and source kept).
fn reworded(mut err: Error, message: String) -> Error {
    err.message = message;
    err
}

/// Undoes a major upgrade that did not reach [`Phase::Upgraded`].
fn undo_unfinished(inst: &Instance, st: &mut InstanceState) -> Result<()> {
    let Some(rec) = st.major_upgrade.clone() else {
        return Ok(());
    };
    restore_pg_control(&rec.old_data_dir)?;
    set_aside(&rec.new_data_dir, "failed")?;
    forget_generation(inst, st, &rec.to_generation)?;
    st.major_upgrade = None;
    inst.save(st)?;
    let gen = inst.gen(st, &st.current)?.clone();
    let spec = inst.spec(st, &gen, &st.data_dir);
    inst.ensure_runtime_dirs(st)?;
    if !inst.manager.is_active(&spec) {
        inst.manager.start(&spec)?;
    }
    Ok(())
}

/// After `--method link`, pg_upgrade renames the old `global/pg_control`
/// to `pg_control.old` so the old cluster cannot start; as long as the new
/// server never started, renaming it back restores the old cluster.
fn restore_pg_control(old_data: &Path) -> Result<()> {
    let global = old_data.join("global");
    let old = global.join("pg_control.old");
    if old.exists() && !global.join("pg_control").exists() {
        fs::rename(&old, global.join("pg_control")).with_path(&old, "rename")?;
    }
    Ok(())
}

/// Moves a data directory pgoci made out of the way (never deleted: it
/// may hold pg_upgrade's reports, or writes made after the upgrade).
fn set_aside(dir: &Path, why: &str) -> Result<Option<PathBuf>> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(None);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{why}-{stamp}"));
    let to = PathBuf::from(name);
    fs::rename(dir, &to).with_path(dir, "rename")?;
    Ok(Some(to))
}

/// Drops a generation from the state and removes its directory.
fn forget_generation(inst: &Instance, st: &mut InstanceState, name: &str) -> Result<()> {
    if st.current == name {
        return Ok(());
    }
    st.generations.retain(|g| g.name != name);
    inst.save(st)?;
    fsutil::remove_dir_if_exists(&inst.layout.generation(inst.name, name))?;
    Ok(())
}

/// `pgoci rollback` on an instance with a major upgrade record: back to
/// the old major on the old data directory (clone/copy), refused after a
/// link upgrade whose new server started.
pub fn rollback(
    layout: &HostLayout,
    instance: &InstanceName,
    choice: Option<Choice>,
    check: bool,
) -> Result<Option<MajorReport>> {
    let dir = layout.instance(instance);
    let Some(st) = InstanceState::read(&dir)? else {
        return Ok(None);
    };
    let Some(rec) = st.major_upgrade.clone() else {
        return Ok(None);
    };
    if rec.phase >= Phase::Upgraded
        && st.current != rec.to_generation
        && rec.phase >= Phase::Switched
    {
        // A later same-major generation is current: an ordinary rollback.
        return Ok(None);
    }
    refuse_link_rollback(instance, &rec)?;
    let lines = vec![
        format!("stop PostgreSQL {}", rec.to_major),
        format!(
            "switch back to generation {} (PostgreSQL {}) on {} as it was at the upgrade; writes made since are lost",
            rec.from_generation,
            rec.from_major,
            rec.old_data_dir.display()
        ),
        format!(
            "set {} aside (kept, renamed .rolled-back-…)",
            rec.new_data_dir.display()
        ),
        format!("start PostgreSQL {}", rec.from_major),
    ];
    if check {
        return Ok(Some(MajorReport {
            changed: true,
            plan: None,
            actions: lines,
            downtime_ms: None,
            analyze_ms: None,
        }));
    }
    require_root("rollback")?;
    let (inst, mut st) = Instance::open(layout, instance)?;
    let actions = rollback_major(&inst, &mut st, choice)?;
    Ok(Some(MajorReport {
        changed: true,
        plan: None,
        actions,
        downtime_ms: None,
        analyze_ms: None,
    }))
}

fn refuse_link_rollback(instance: &InstanceName, rec: &MajorRecord) -> Result<()> {
    if rec.method == Method::Link && rec.phase >= Phase::Started {
        return Err(Error::host(format!(
            "instance {instance} was upgraded to PostgreSQL {} with --method link and the new server has started: the data directory {} can no longer be used",
            rec.to_major,
            rec.old_data_dir.display()
        ))
        .hint("restore PostgreSQL from a backup if you must go back; the plan of a link upgrade says so"));
    }
    Ok(())
}

fn rollback_major(
    inst: &Instance,
    st: &mut InstanceState,
    choice: Option<Choice>,
) -> Result<Vec<String>> {
    let rec = st
        .major_upgrade
        .clone()
        .ok_or_else(|| Error::internal("major rollback without a record"))?;
    let mut actions = Vec::new();
    if rec.phase < Phase::Upgraded {
        undo_unfinished(inst, st)?;
        actions.push(format!(
            "undid the unfinished upgrade to PostgreSQL {}; PostgreSQL {} runs on {}",
            rec.to_major,
            rec.from_major,
            rec.old_data_dir.display()
        ));
        return Ok(actions);
    }
    refuse_link_rollback(inst.name, &rec)?;
    let old_gen = inst.gen(st, &rec.from_generation)?.clone();
    let old_gen_dir = inst.layout.generation(inst.name, &old_gen.name);
    // The gate: the old data goes back to the old generation's libraries,
    // as they are now (the host may have changed since).
    let env = generation::read_runtime_env(&old_gen_dir);
    let now = collation::of_generation(&inst.layout.root, &old_gen_dir, &old_gen.dirs, &env);
    let data_libs = rec.old_collation.clone().unwrap_or_else(|| now.clone());
    if let Some(change) = Change::between(&data_libs, &now) {
        Gate {
            change,
            affected: None,
            choice,
        }
        .refuse_unchosen(&format!("the rollback to PostgreSQL {}", rec.from_major))?;
    }
    let new_gen = inst.gen(st, &rec.to_generation)?.clone();
    let new_spec = inst.spec(st, &new_gen, &rec.new_data_dir);
    if inst.manager.is_active(&new_spec) {
        inst.manager.stop(&new_spec)?;
        actions.push(format!("stopped PostgreSQL {}", rec.to_major));
    }
    restore_pg_control(&rec.old_data_dir)?;
    let lock = Lock::read(&old_gen_dir.join(GENERATION_LOCK))?;
    let mut back = st.clone();
    back.major = rec.from_major;
    back.data_dir = rec.old_data_dir.clone();
    back.current = old_gen.name.clone();
    back.collation = Some(data_libs);
    let spec = inst.spec(&back, &old_gen, &rec.old_data_dir);
    let mut tx = Transaction::new(inst.layout);
    super::apply::write_service_files(inst.manager.as_ref(), &spec, &mut tx)?;
    fsutil::write_atomic(&inst.dir.join("pgoci.lock"), lock.to_yaml()?.as_bytes())?;
    fsutil::switch_symlink(
        &inst.dir.join("current"),
        &PathBuf::from("generations").join(&old_gen.name),
    )?;
    tx.commit();
    back.major_upgrade = Some(MajorRecord {
        phase: Phase::Prepared,
        ..rec.clone()
    });
    inst.save(&back)?;
    *st = back;
    actions.push(format!(
        "switched back to generation {} (PostgreSQL {}) on {}",
        old_gen.name,
        rec.from_major,
        rec.old_data_dir.display()
    ));
    // The new cluster stays, set aside: it holds the writes made since.
    if let Some(to) = set_aside(&rec.new_data_dir, "rolled-back")? {
        actions.push(format!(
            "set {} aside as {}",
            rec.new_data_dir.display(),
            to.display()
        ));
    }
    forget_generation(inst, st, &rec.to_generation)?;
    st.major_upgrade = None;
    inst.save(st)?;
    inst.ensure_runtime_dirs(st)?;
    inst.manager.start(&spec)?;
    actions.push(format!("started PostgreSQL {}", rec.from_major));
    Ok(actions)
}

/// `pgoci upgrade --instance NAME --finalize`: removes the old data
/// directory a finished major upgrade kept, and the old major's
/// generations (after which rollback cannot cross the upgrade).
pub fn finalize(layout: &HostLayout, instance: &InstanceName, check: bool) -> Result<MajorReport> {
    let dir = layout.instance(instance);
    let st = InstanceState::read(&dir)?
        .ok_or_else(|| super::plan::unknown_instance(layout, instance))?;
    let Some(rec) = st.major_upgrade.clone() else {
        return Ok(MajorReport::unchanged(format!(
            "instance {instance} keeps no old data directory: nothing to finalize"
        )));
    };
    if rec.phase != Phase::Done {
        return Err(Error::host(format!(
            "the major upgrade of instance {instance} to PostgreSQL {} is not finished",
            rec.to_major
        ))
        .hint(format!(
            "run `pgoci upgrade --instance {instance} --major {}` again to finish it, or roll it back",
            rec.to_major
        )));
    }
    let old_gens: Vec<String> = st
        .generations
        .iter()
        .filter(|g| g.major() != Some(st.major))
        .map(|g| g.name.clone())
        .collect();
    let mut actions = vec![format!(
        "delete {} (PostgreSQL {} data kept since the upgrade)",
        rec.old_data_dir.display(),
        rec.from_major
    )];
    actions.extend(old_gens.iter().map(|g| format!("remove generation {g}")));
    if check {
        return Ok(MajorReport {
            changed: true,
            plan: None,
            actions,
            downtime_ms: None,
            analyze_ms: None,
        });
    }
    require_root("upgrade --finalize")?;
    let (inst, mut st) = Instance::open(layout, instance)?;
    fsutil::remove_dir_if_exists(&rec.old_data_dir)?;
    failpoint::hit("finalize-after-remove");
    for g in &old_gens {
        forget_generation(&inst, &mut st, g)?;
    }
    st.major_upgrade = None;
    inst.save(&st)?;
    Ok(MajorReport {
        changed: true,
        plan: None,
        actions: actions
            .into_iter()
            .map(|a| {
                a.replacen("delete", "deleted", 1)
                    .replacen("remove", "removed", 1)
            })
            .collect(),
        downtime_ms: None,
        analyze_ms: None,
    })
}

/// The plan in words.
pub fn plan_lines(plan: &MajorPlan) -> Vec<String> {
    let mut lines = vec![
        format!(
            "compose generation {} (PostgreSQL {})",
            plan.generation, plan.to_version
        ),
        match &plan.options {
            Some(o) => format!(
                "initialise {} ({}, collate {}, ctype {}, provider {}{}, checksums {}, WAL segments {} MB)",
                plan.new_data_dir.display(),
                o.encoding,
                o.lc_collate,
                o.lc_ctype,
                o.provider,
                o.provider_locale
                    .as_deref()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default(),
                if o.data_checksums { "on" } else { "off" },
                o.wal_segsize_mb.unwrap_or(16)
            ),
            None => format!("initialise {}", plan.new_data_dir.display()),
        },
        format!("stop PostgreSQL {}", plan.from),
        format!("pg_upgrade --{}", plan.method),
        format!("switch to generation {} and start PostgreSQL {}", plan.generation, plan.to),
    ];
    for u in plan.extensions.iter().filter(|u| u.needed()) {
        lines.push(format!(
            "update extension {} {} → {} in database {}{}",
            u.name,
            u.installed,
            u.target.as_deref().unwrap_or("?"),
            u.database,
            u.update_path
                .as_ref()
                .map(|p| format!(" (via {})", p.join(" → ")))
                .unwrap_or_default()
        ));
    }
    if let Some(g) = &plan.collation {
        let n: usize = g.affected.iter().flatten().map(|a| a.indexes.len()).sum();
        let bytes: u64 = g
            .affected
            .iter()
            .flatten()
            .flat_map(|a| &a.indexes)
            .map(|i| i.bytes)
            .sum();
        lines.push(match g.choice {
            Some(Choice::Reindex) => format!(
                "reindex {n} index(es) ({} KiB) using collations of {} (was {}), then refresh the versions",
                bytes / 1024,
                g.change.to,
                g.change.from
            ),
            _ => format!(
                "refresh the recorded collation versions ({} → {})",
                g.change.from, g.change.to
            ),
        });
    }
    lines.push("rebuild statistics (vacuumdb --all --analyze-in-stages)".into());
    lines.push(plan.rollback.clone());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(provider: &str, locale: Option<&str>) -> ClusterOptions {
        ClusterOptions {
            encoding: "UTF8".into(),
            lc_collate: "de_DE.UTF-8".into(),
            lc_ctype: "de_DE.UTF-8".into(),
            provider: provider.into(),
            provider_locale: locale.map(str::to_string),
            data_checksums: false,
            wal_segsize_mb: Some(64),
        }
    }

    #[test]
    fn the_old_clusters_options_become_the_new_initdb_arguments() {
        let args = initdb_settings(&options("c", None), 17)
            .unwrap()
            .args(17)
            .unwrap();
        for want in [
            "--locale=de_DE.UTF-8",
            "--encoding=UTF8",
            "--locale-provider=libc",
            "--wal-segsize=64",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        assert!(!args.iter().any(|a| a == "--data-checksums"), "{args:?}");
        let icu = initdb_settings(&options("i", Some("de-DE")), 17)
            .unwrap()
            .args(17)
            .unwrap();
        assert!(icu.iter().any(|a| a == "--icu-locale=de-DE"), "{icu:?}");
        let builtin = initdb_settings(&options("b", Some("C.UTF-8")), 18)
            .unwrap()
            .args(18)
            .unwrap();
        assert!(
            builtin.iter().any(|a| a == "--builtin-locale=C.UTF-8"),
            "{builtin:?}"
        );
        assert!(
            builtin.iter().any(|a| a == "--no-data-checksums"),
            "{builtin:?}"
        );
    }

    #[test]
    fn phases_are_ordered_and_recorded_by_name() {
        assert!(Phase::Prepared < Phase::Upgraded && Phase::Upgraded < Phase::Started);
        assert!(Phase::Started < Phase::Done);
        assert_eq!(serde_json::to_value(Phase::Stopping).unwrap(), "stopping");
    }

    #[test]
    fn a_link_upgrade_is_refused_rollback_once_started_and_not_before() {
        let name = InstanceName::parse("main").unwrap();
        let mut rec = MajorRecord {
            from_major: 15,
            to_major: 17,
            from_generation: "1-a".into(),
            to_generation: "2-b".into(),
            old_data_dir: "/d".into(),
            new_data_dir: "/d-17".into(),
            method: Method::Link,
            phase: Phase::Switched,
            old_collation: None,
            collation_change: None,
        };
        assert!(refuse_link_rollback(&name, &rec).is_ok());
        rec.phase = Phase::Started;
        let e = refuse_link_rollback(&name, &rec).unwrap_err();
        assert_eq!(e.kind, crate::Kind::Host);
        rec.method = Method::Copy;
        assert!(refuse_link_rollback(&name, &rec).is_ok());
    }

    #[test]
    fn without_reflinks_the_default_is_copy_and_link_stays_on_one_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        let chosen = choose_method(None, &data, dir.path()).unwrap();
        assert_eq!(chosen == Method::Clone, can_reflink(dir.path()));
        assert_eq!(
            choose_method(Some(Method::Link), &data, dir.path()).unwrap(),
            Method::Link
        );
        assert!(!dir
            .path()
            .join(format!(".pgoci-reflink-a-{}", std::process::id()))
            .exists());
    }

    #[test]
    fn a_pg_control_renamed_by_link_mode_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let global = dir.path().join("global");
        fs::create_dir(&global).unwrap();
        fs::write(global.join("pg_control.old"), "x").unwrap();
        restore_pg_control(dir.path()).unwrap();
        assert!(global.join("pg_control").exists() && !global.join("pg_control.old").exists());
    }
}
