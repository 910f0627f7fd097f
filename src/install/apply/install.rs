//! Applying an install (or same-major upgrade) plan: unpack, check the
//! libraries, compose, the data checks, initdb, config, unit, switch, start.

use super::compose::{compose_generation, GenerationInput};
use super::files::{give, write_config, write_service_files};
use super::{report, undo, ApplyError, Runner};
use crate::blobs::BlobSource;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::install::facts::spec_of;
use crate::install::generation;
use crate::install::layout::HostLayout;
use crate::install::plan::{self, InstallTarget, Plan, Step};
use crate::install::privilege;
use crate::install::service::{self, ServiceSpec};
use crate::install::state::{GenerationState, InstanceState};
use crate::install::transaction::Transaction;
use crate::install::users::{self, Account, UserError};
use crate::install::{postgres, store, InstallOptions, InstallReport};
use crate::lock::Lock;
use crate::progress::Reporter;
use crate::unpack;
use std::fs;
use std::path::{Path, PathBuf};

/// Applies an install (or upgrade) plan for `lock`, with blobs from `source`.
pub fn install(
    plan: &Plan,
    lock: &Lock,
    source: &dyn BlobSource,
    opts: &InstallOptions,
    reporter: &dyn Reporter,
) -> Result<InstallReport> {
    let target = plan
        .install
        .as_ref()
        .ok_or_else(|| Error::internal("an install was asked to apply a plan that is not one"))?;
    let mut runner = Runner {
        reporter,
        done: Vec::new(),
    };
    if plan.steps.is_empty() {
        return Ok(report(plan, runner.done));
    }
    let layout = &opts.layout;
    privilege::require("install", layout, &opts.user)?;
    let instance_dir = layout.instance(&opts.instance);
    let previous = InstanceState::read(&instance_dir)?;
    store::clean_temp(&layout.store());
    store::clean_temp(&layout.generations(&opts.instance));

    let mut tx = Transaction::new(layout);
    if plan.steps.iter().any(|s| matches!(s, Step::Compose { .. })) {
        // Made by this run: removed again if it fails, so a failed first
        // install leaves nothing behind (a store made now is filled by
        // this run's unpacks only).
        if tx.create_dir(&layout.store())? {
            tx.fill_dir(&layout.store())?;
        }
        tx.create_dir(&layout.generations(&opts.instance))?;
    }
    let mut applier = InstallApplier {
        lock,
        source,
        opts,
        target,
        previous: previous.as_ref(),
        gen: target.reuse_generation.clone(),
        account: users::lookup(&opts.user),
        libraries: None,
        gate: None,
        updates: Vec::new(),
    };
    // Artifacts are independent: unpack them side by side.
    let (unpacks, rest): (Vec<&Step>, Vec<&Step>) = plan
        .steps
        .iter()
        .partition(|s| matches!(s, Step::Unpack { .. }));
    if let Err(e) = applier.unpack_all(&unpacks, &mut runner) {
        return Err(undo(tx, e));
    }
    // Before anything else changes: can the new generation run here?
    if rest.iter().any(|s| matches!(s, Step::Compose { .. })) {
        match check_stored_libraries(lock, opts) {
            Ok(report) => applier.libraries = Some(report),
            Err(e) => return Err(undo(tx, e)),
        }
    }
    for step in rest {
        if let Err(e) = applier.step(step, &mut runner, &mut tx) {
            return Err(undo(tx, e));
        }
        // A new generation for existing data: before anything is switched,
        // the collation gate and the extensions' update paths.
        if matches!(step, Step::Compose { .. }) && applier.previous.is_some() {
            if let Err(e) = applier.check_data() {
                return Err(undo(tx, e));
            }
        }
    }
    let notes = match applier.care_after_switch() {
        Ok(notes) => notes,
        Err(e) => return Err(undo(tx, e)),
    };
    if let Err(e) = applier.record(&mut tx) {
        return Err(undo(tx, e));
    }
    tx.commit();
    let mut report = report(plan, runner.done);
    if let Some(g) = &applier.gen {
        report.instance.version = g.server_version.clone();
    }
    report.libraries = applier.libraries;
    report.data = notes;
    report.extension_updates = applier.updates;
    Ok(report)
}

/// The library check an install of `plan` would run, made for `--check`
/// without changing the host: `None` when the plan composes no generation.
/// It reads the store when every artifact is there already; else it needs
/// the artifacts at hand (`bundle`) and reads a scratch unpack of them. From
/// a registry (`bundle` is `None`) `--check` downloads nothing: `None`.
/// Refuses (exit 6) where the install would.
pub fn check_libraries(
    plan: &Plan,
    lock: &Lock,
    opts: &InstallOptions,
    bundle: Option<&dyn BlobSource>,
    reporter: &dyn Reporter,
) -> Result<Option<crate::install::libraries::LibraryReport>> {
    let has = |kind: fn(&Step) -> bool| plan.steps.iter().any(kind);
    if !has(|s| matches!(s, Step::Compose { .. })) {
        return Ok(None);
    }
    match (has(|s| matches!(s, Step::Unpack { .. })), bundle) {
        (false, _) => check_stored_libraries(lock, opts).map(Some),
        (true, Some(source)) => {
            let report =
                crate::install::scratch::library_report(lock, source, opts.libraries, reporter)?;
            report.refuse_failed()?;
            Ok(Some(report))
        }
        (true, None) => Ok(None),
    }
}

/// The collation gate an upgrade would meet, for `--check`: the data's
/// libraries against those the checked artifacts run on. Exit 6 where the
/// apply would refuse; `None` for a new instance or no change. Without
/// root the server cannot be asked, so every database counts.
pub fn check_collation(
    opts: &InstallOptions,
    libraries: &crate::install::libraries::LibraryReport,
) -> Result<Option<crate::install::collation::Gate>> {
    let layout = &opts.layout;
    let Some(prev) = InstanceState::read(&layout.instance(&opts.instance))? else {
        return Ok(None);
    };
    let running = rustix::process::geteuid().is_root()
        && crate::install::facts::socket_accepts(&prev.socket_dir, prev.port);
    let server = crate::install::datacare::current_server(layout, &prev, running);
    crate::install::datacare::gate(
        &prev,
        crate::install::datacare::data_libs(layout, &prev),
        &libraries.collation,
        server.as_ref(),
        opts.collation,
        &format!("the upgrade of instance {}", prev.instance),
    )
}

/// The `--libraries` check of the lock's artifacts in the store: exit 6 if
/// the server could not run. Install runs it before any other change.
fn check_stored_libraries(
    lock: &Lock,
    opts: &InstallOptions,
) -> Result<crate::install::libraries::LibraryReport> {
    let report =
        crate::install::libraries::check(lock, &opts.layout.store(), opts.libraries, false)?;
    report.refuse_failed()?;
    Ok(report)
}

struct InstallApplier<'a> {
    lock: &'a Lock,
    source: &'a dyn BlobSource,
    opts: &'a InstallOptions,
    target: &'a InstallTarget,
    previous: Option<&'a InstanceState>,
    /// The generation being installed, once composed (or reused).
    gen: Option<GenerationState>,
    account: Option<Account>,
    /// The library check of the artifacts, once unpacked.
    libraries: Option<crate::install::libraries::LibraryReport>,
    /// The collation change the new generation brings to existing data.
    gate: Option<crate::install::collation::Gate>,
    /// Extensions whose files' default version differs from the catalog's.
    updates: Vec<crate::install::extensions::Update>,
}

impl InstallApplier<'_> {
    fn layout(&self) -> &HostLayout {
        &self.opts.layout
    }

    fn step(&mut self, step: &Step, runner: &mut Runner, tx: &mut Transaction) -> Result<()> {
        let reporter = runner.reporter;
        match step {
            Step::Compose { generation: name } => runner.run(step, || {
                let (gen, created) = self.compose(name, tx, reporter)?;
                self.gen = Some(gen);
                failpoint::hit("after-compose");
                Ok(((), created))
            }),
            Step::CreateUser { user } => runner.run(step, || {
                let (account, created) = users::ensure(user)?;
                self.account = Some(account);
                Ok(((), created))
            }),
            Step::InitDataDir { data_dir } => runner.run(step, || {
                self.init_data_dir(data_dir, tx)?;
                Ok(((), true))
            }),
            Step::WriteConfig { .. } => runner.run(step, || {
                let gen_dir = self.gen_dir()?;
                let changed = write_config(
                    self.lock,
                    &self.opts.instance,
                    &gen_dir,
                    self.target.port,
                    &self.target.socket_dir,
                    &self.opts.settings,
                    &self.target.data_dir,
                    tx,
                )?;
                Ok(((), changed))
            }),
            Step::WriteServiceFiles { service, .. } => runner.run(step, || {
                let manager = service::manager(*service, self.layout());
                let spec = self.spec()?;
                let changed = write_service_files(manager.as_ref(), &spec, tx)?;
                Ok(((), changed))
            }),
            Step::Switch { to, .. } => runner.run(step, || {
                let changed = self.switch(to, tx)?;
                Ok(((), changed))
            }),
            Step::Start { service } | Step::Restart { service } => runner.run(step, || {
                // The same generation on data that may have been used with
                // other collation libraries (the host changed): pgoci's own
                // start path takes the gate as the unit's ExecStartPre does.
                if let (Some(prev), Some(_)) = (self.previous, &self.target.reuse_generation) {
                    crate::install::datacare::start_gate(self.layout(), prev)?;
                }
                // A collation change the gate let through: recorded before
                // the start, so the unit's start gate lets the server up.
                if let (Some(prev), Some(_), Some(gen)) = (self.previous, &self.gate, &self.gen) {
                    let dir = self.layout().instance(&prev.instance);
                    let state = InstanceState {
                        collation: gen.collation.clone(),
                        ..prev.clone()
                    };
                    tx.write_file(&InstanceState::path(&dir), &state.to_bytes()?, 0o644)?;
                }
                let spec = self.spec()?;
                self.ensure_runtime_dirs(tx)?;
                // The transaction records whether a server ran before (the
                // previous generation's, or this one's) and whether it was
                // enabled, and puts exactly that back on undo.
                match step {
                    Step::Restart { .. } => {
                        tx.restart(*service, &spec, self.previous_spec().as_ref())?
                    }
                    _ => tx.start(*service, &spec)?,
                }
                Ok(((), true))
            }),
            other => Err(ApplyError::UnexpectedStep {
                plan: "install",
                step: other.kind(),
            }
            .into()),
        }
    }

    /// Unpacks artifacts into the store, each on its own thread; reports
    /// each step, and fails with the first error (in plan order).
    fn unpack_all(&self, steps: &[&Step], runner: &mut Runner) -> Result<()> {
        let reporter = runner.reporter;
        let results: Vec<Result<bool>> = std::thread::scope(|scope| {
            let handles: Vec<_> = steps
                .iter()
                .map(|step| {
                    scope.spawn(move || {
                        let Step::Unpack { digest, .. } = step else {
                            return Err(Error::internal("unpack_all was given another step"));
                        };
                        let mut runner = Runner {
                            reporter,
                            done: Vec::new(),
                        };
                        runner.run(step, || {
                            let pinned = self
                                .lock
                                .artifacts()
                                .find(|a| &a.digest == digest)
                                .ok_or_else(|| ApplyError::NotInLock {
                                    digest: digest.clone(),
                                })?;
                            // The whole image root: rootfs paths are picked at
                            // compose, and the image's own libraries stay at hand.
                            let (_, created) = store::ensure(
                                self.layout(),
                                pinned,
                                self.source,
                                &unpack::keep_all,
                                reporter,
                            )?;
                            Ok(((), created))
                        })?;
                        Ok(!runner.done.is_empty())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::internal("an unpack thread panicked")))
                })
                .collect()
        });
        for (step, result) in steps.iter().zip(results) {
            if result? {
                runner.done.push((*step).clone());
            }
        }
        if !steps.is_empty() {
            failpoint::hit("after-unpack");
        }
        Ok(())
    }

    /// The old server, when it runs (asked what the data holds).
    fn running_previous_server(&self) -> Option<crate::install::cluster::Server> {
        let prev = self.previous?;
        let spec = self.previous_spec()?;
        let running = service::manager(prev.service, self.layout()).is_active(&spec);
        crate::install::datacare::current_server(self.layout(), prev, running)
    }

    /// The collation gate and the extension update paths for the new
    /// generation, while the old server still runs: exit 6 refuses the
    /// switch (the transaction removes the generation again).
    fn check_data(&mut self) -> Result<()> {
        let (Some(prev), Some(gen)) = (self.previous, self.gen.as_ref()) else {
            return Ok(());
        };
        let server = self.running_previous_server();
        let to = gen.collation.clone().unwrap_or_default();
        self.gate = crate::install::datacare::gate(
            prev,
            crate::install::datacare::data_libs(self.layout(), prev),
            &to,
            server.as_ref(),
            self.opts.collation,
            &format!("the upgrade of instance {}", prev.instance),
        )?;
        if let Some(server) = &server {
            let gen_dir = self.gen_dir()?;
            self.updates = crate::install::datacare::extension_updates(
                prev,
                &gen_dir,
                &gen.dirs.sharedir,
                server,
            )?;
        }
        Ok(())
    }

    /// After the switch, on the running new server: the collation choice,
    /// refreshed versions, and extension updates when asked.
    fn care_after_switch(&self) -> Result<Vec<String>> {
        let (Some(prev), Some(gen)) = (self.previous, self.gen.as_ref()) else {
            return Ok(Vec::new());
        };
        if self.gate.is_none() && (!self.opts.update_extensions || self.updates.is_empty()) {
            return Ok(Vec::new());
        }
        let spec = self.spec()?;
        let manager = service::manager(self.target.service, self.layout());
        if !manager.is_active(&spec) {
            return Ok(vec![
                "the server is not running: collation versions and extensions were left as they are"
                    .into(),
            ]);
        }
        let server = crate::install::cluster::Server {
            bin: spec.bin.clone(),
            client_dirs: crate::install::cluster::host_client_dirs(self.layout()),
            env: spec.env.clone(),
            account: self.account()?.clone(),
            socket_dir: self.target.socket_dir.clone(),
            port: self.target.port,
        };
        let updates: &[crate::install::extensions::Update] = if self.opts.update_extensions {
            &self.updates
        } else {
            &[]
        };
        let _ = (prev, gen);
        crate::install::datacare::after_switch(
            &server,
            self.lock.major(),
            self.gate.as_ref(),
            updates,
        )
    }

    fn gen(&self) -> Result<&GenerationState> {
        self.gen
            .as_ref()
            .ok_or_else(|| Error::internal("install plan uses a generation before composing it"))
    }

    fn gen_dir(&self) -> Result<PathBuf> {
        Ok(self
            .layout()
            .generation(&self.opts.instance, &self.gen()?.name))
    }

    fn account(&self) -> Result<&Account> {
        self.account.as_ref().ok_or_else(|| {
            UserError::Vanished {
                user: self.opts.user.clone(),
            }
            .into()
        })
    }

    fn spec(&self) -> Result<ServiceSpec> {
        let gen = self.gen()?;
        let env = generation::read_runtime_env(&self.gen_dir()?);
        Ok(plan::service_spec(
            self.opts,
            gen,
            &env,
            self.account()?,
            &self.target.data_dir,
            self.target.port,
        ))
    }

    /// The server of the generation that was current before, to restart
    /// on failure.
    fn previous_spec(&self) -> Option<ServiceSpec> {
        let prev = self.previous?;
        let old = prev.current_generation()?;
        if Some(&old.name) == self.gen.as_ref().map(|g| &g.name) {
            return None;
        }
        let env =
            generation::read_runtime_env(&self.layout().generation(&prev.instance, &old.name));
        Some(spec_of(
            self.layout(),
            prev,
            old,
            self.account.as_ref()?,
            &env,
        ))
    }

    /// Unpacks what the store lacks and composes the generation.
    fn compose(
        &self,
        name: &str,
        tx: &mut Transaction,
        reporter: &dyn Reporter,
    ) -> Result<(GenerationState, bool)> {
        // The generation appears in `generations/` by rename: undone with
        // what else this run's compose left there, never an older one.
        let generations = self.layout().generations(&self.opts.instance);
        tx.create_dir(&generations)?;
        tx.fill_dir(&generations)?;
        let (gen, _) = compose_generation(
            &GenerationInput {
                layout: self.layout(),
                instance: &self.opts.instance,
                lock: self.lock,
                lock_digest: &self.target.lock_digest,
                source: self.source,
                libraries: self.libraries.as_ref(),
            },
            name,
            reporter,
        )?;
        Ok((gen, true))
    }

    /// The instance's state as it will be recorded.
    fn new_state(&self, data_dir_complete: bool) -> Result<InstanceState> {
        let gen = self.gen()?;
        let mut generations = self
            .previous
            .map(|p| p.generations.clone())
            .unwrap_or_default();
        if !generations.iter().any(|g| g.name == gen.name) {
            generations.push(gen.clone());
        }
        Ok(InstanceState {
            instance: self.opts.instance.clone(),
            major: self.lock.major(),
            port: self.target.port,
            data_dir: self.target.data_dir.clone(),
            data_dir_created: self
                .previous
                .map_or(!self.target.data_dir_existed, |p| p.data_dir_created),
            data_dir_complete,
            user: self.opts.user.clone(),
            service: self.target.service,
            socket_dir: self.target.socket_dir.clone(),
            settings: self.opts.settings.clone(),
            generations,
            current: self
                .previous
                .map(|p| p.current.clone())
                .unwrap_or_else(|| gen.name.clone()),
            // Only a change the collation gate let through gets this far:
            // the data is used with the new generation's libraries from now.
            collation: gen
                .collation
                .clone()
                .or_else(|| self.previous.and_then(|p| p.collation.clone())),
            major_upgrade: self.previous.and_then(|p| p.major_upgrade.clone()),
        })
    }

    /// Records the instance (so a run killed during initdb is known as
    /// ours), creates the data directory and runs initdb, then marks the
    /// data directory complete.
    fn init_data_dir(&self, data_dir: &Path, tx: &mut Transaction) -> Result<()> {
        let instance_dir = self.layout().instance(&self.opts.instance);
        let account = self.account()?.clone();
        if self.previous.is_none() {
            tx.create_dir(&instance_dir)?;
            let state_path = InstanceState::path(&instance_dir);
            tx.write_file(&state_path, &self.new_state(false)?.to_bytes()?, 0o644)?;
        }
        // A directory given empty (a mount point) is filled, never made:
        // a rollback empties it again (and gives back its owner and mode),
        // and pgoci does not call it its own.
        tx.create_dir(data_dir)?;
        tx.fill_dir(data_dir)?;
        give(tx, data_dir, &account, 0o700)?;
        let bin = self.gen_dir()?.join(&self.gen()?.dirs.bin);
        let env = generation::read_runtime_env(&self.gen_dir()?);
        postgres::initdb(&bin, data_dir, &account, &self.opts.initdb, &env)?;
        failpoint::hit("after-initdb");
        Ok(())
    }

    /// Points `current` at the generation.
    fn switch(&self, to: &str, tx: &mut Transaction) -> Result<bool> {
        let instance_dir = self.layout().instance(&self.opts.instance);
        tx.create_dir(&instance_dir)?;
        let current_link = instance_dir.join("current");
        let target = PathBuf::from("generations").join(to);
        if fs::read_link(&current_link).ok() == Some(target.clone()) {
            return Ok(false);
        }
        failpoint::hit("before-switch");
        tx.switch_link(&current_link, &target)?;
        failpoint::hit("after-switch");
        Ok(true)
    }

    /// Records the lock and the state, last: a run killed before this is
    /// recognised by the next one (the state still names the old
    /// generation) and completed.
    fn record(&self, tx: &mut Transaction) -> Result<()> {
        let instance_dir = self.layout().instance(&self.opts.instance);
        let lock_copy = instance_dir.join("pgoci.lock");
        tx.write_file(&lock_copy, self.lock.to_yaml()?.as_bytes(), 0o644)?;
        let mut state = self.new_state(true)?;
        state.current = self.target.generation.clone();
        if self.previous != Some(&state) {
            let state_path = InstanceState::path(&instance_dir);
            tx.write_file(&state_path, &state.to_bytes()?, 0o644)?;
        }
        Ok(())
    }

    fn ensure_runtime_dirs(&self, tx: &mut Transaction) -> Result<()> {
        let account = self.account()?;
        for (dir, mode) in [
            (&self.target.socket_dir, 0o755),
            (&self.target.log_dir, 0o750),
        ] {
            // Made by this run: removed again if it fails, with what the
            // server this run starts leaves in it (socket, log).
            if tx.create_dir(dir)? {
                tx.fill_dir(dir)?;
            }
            give(tx, dir, account, mode)?;
        }
        Ok(())
    }
}
