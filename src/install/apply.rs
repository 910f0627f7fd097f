//! The applier: carries out a [`Plan`] step by step inside a
//! [`Transaction`], so a step that fails (or a server that does not come
//! up) puts back the previous `current`, config, service files and state,
//! and restarts the previous server. Each step checks whether its result
//! is already there, so a run killed midway completes when run again.

use super::config;
use super::facts::spec_of;
use super::generation::{self, ExtensionInput};
use super::layout::HostLayout;
use super::plan::{self, InstallTarget, Plan, Step};
use super::service::{self, ServiceKind, ServiceManager, ServiceSpec};
use super::state::{ExtensionState, GenerationState, InstanceState};
use super::transaction::Transaction;
use super::users::{self, Account};
use super::{postgres, store, InstallOptions, InstallReport};
use crate::blobs::BlobSource;
use crate::cache::Cache;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fsutil;
use crate::lock::Lock;
use crate::names::InstanceName;
use crate::progress::{Event, Reporter};
use crate::unpack;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Fails unless running as root: applying changes users, owners, services.
pub fn require_root(command: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    Err(Error::host(format!(
        "pgoci {command} must run as root (it creates users, chowns the data directory and runs services)"
    ))
    .hint("run it with sudo, or add --check to see the plan without changing anything"))
}

/// Runs steps, reporting each and collecting those that changed something.
struct Runner<'a> {
    reporter: &'a dyn Reporter,
    done: Vec<Step>,
}

impl Runner<'_> {
    fn run<T>(&mut self, step: &Step, f: impl FnOnce() -> Result<(T, bool)>) -> Result<T> {
        let span = tracing::info_span!("step", kind = step.kind());
        let _entered = span.enter();
        self.reporter.event(&Event::StepStarted { step });
        let started = Instant::now();
        let (value, changed) = f()?;
        self.reporter.event(&Event::StepFinished {
            step,
            changed,
            elapsed: started.elapsed(),
        });
        tracing::debug!(
            changed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "{}",
            step.describe(true)
        );
        if changed {
            self.done.push(step.clone());
        }
        Ok(value)
    }
}

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
    require_root("install")?;
    let layout = &opts.layout;
    let instance_dir = layout.instance(&opts.instance);
    let previous = InstanceState::read(&instance_dir)?;
    store::clean_temp(&layout.store());
    store::clean_temp(&layout.generations(&opts.instance));

    let mut tx = Transaction::new(layout);
    if plan.steps.iter().any(|s| matches!(s, Step::Compose { .. })) {
        // Made by this run: removed again if it fails, so a failed first
        // install leaves nothing behind.
        tx.create_dir(&layout.store())?;
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
) -> Result<Option<super::libraries::LibraryReport>> {
    let has = |kind: fn(&Step) -> bool| plan.steps.iter().any(kind);
    if !has(|s| matches!(s, Step::Compose { .. })) {
        return Ok(None);
    }
    match (has(|s| matches!(s, Step::Unpack { .. })), bundle) {
        (false, _) => check_stored_libraries(lock, opts).map(Some),
        (true, Some(source)) => {
            let report =
                crate::host::scratch_library_report(lock, source, opts.libraries, reporter)?;
            report.refuse_failed()?;
            Ok(Some(report))
        }
        (true, None) => Ok(None),
    }
}

/// The `--libraries` check of the lock's artifacts in the store: exit 6 if
/// the server could not run. Install runs it before any other change.
fn check_stored_libraries(
    lock: &Lock,
    opts: &InstallOptions,
) -> Result<super::libraries::LibraryReport> {
    let report = super::libraries::check(lock, &opts.layout.store(), opts.libraries, false)?;
    report.refuse_failed()?;
    Ok(report)
}

/// Rolls back, saying in the error what became of the host.
fn undo(tx: Transaction, err: Error) -> Error {
    let message = match tx.rollback() {
        Ok(Some(gen)) => format!(
            "{}; switched back to generation {gen} and restarted it",
            err.message
        ),
        Ok(None) => format!("{}; every change of this run was undone", err.message),
        Err(e2) => format!(
            "{}; undoing the run also failed: {}",
            err.message, e2.message
        ),
    };
    let mut err = err;
    err.message = message;
    err
}

fn report(plan: &Plan, done: Vec<Step>) -> InstallReport {
    InstallReport {
        changed: !done.is_empty(),
        instance: plan.instance.clone(),
        actions: done,
        warnings: plan.warnings.clone(),
        libraries: None,
        data: Vec::new(),
        extension_updates: Vec::new(),
    }
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
    libraries: Option<super::libraries::LibraryReport>,
    /// The collation change the new generation brings to existing data.
    gate: Option<super::collation::Gate>,
    /// Extensions whose files' default version differs from the catalog's.
    updates: Vec<super::extensions::Update>,
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
                    super::datacare::start_gate(self.layout(), prev)?;
                }
                // A collation change the gate let through: recorded before
                // the start, so the unit's start gate lets the server up.
                if let (Some(prev), Some(_), Some(gen)) = (self.previous, &self.gate, &self.gen) {
                    let dir = self.layout().instance(&prev.instance);
                    tx.save_file(&InstanceState::path(&dir))?;
                    InstanceState {
                        collation: gen.collation.clone(),
                        ..prev.clone()
                    }
                    .write(&dir)?;
                }
                let manager = service::manager(*service, self.layout());
                let spec = self.spec()?;
                // Only a server that ran before is started again on undo.
                let old = match step {
                    Step::Restart { .. } => self.previous_spec(),
                    _ => None,
                };
                tx.server_changing(*service, spec.clone(), old);
                if self.previous.is_none() {
                    tx.forget_on_undo(*service, &self.opts.instance);
                }
                self.ensure_runtime_dirs(tx)?;
                match step {
                    Step::Restart { .. } => manager.restart(&spec)?,
                    _ => manager.start(&spec)?,
                }
                Ok(((), true))
            }),
            other => Err(Error::internal(format!(
                "an install plan holds a {} step",
                other.kind()
            ))),
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
                                .ok_or_else(|| {
                                    Error::internal(format!(
                                        "plan unpacks {digest}, not in the lock"
                                    ))
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
    fn running_previous_server(&self) -> Option<super::cluster::Server> {
        let prev = self.previous?;
        let spec = self.previous_spec()?;
        let running = service::manager(prev.service, self.layout()).is_active(&spec);
        super::datacare::current_server(self.layout(), prev, running)
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
        self.gate = super::datacare::gate(
            prev,
            super::datacare::data_libs(self.layout(), prev),
            &to,
            server.as_ref(),
            self.opts.collation,
            &format!("the upgrade of instance {}", prev.instance),
        )?;
        if let Some(server) = &server {
            let gen_dir = self.gen_dir()?;
            self.updates = super::datacare::extension_updates(
                self.layout(),
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
        let server = super::cluster::Server {
            bin: spec.bin.clone(),
            client_dirs: super::cluster::host_client_dirs(self.layout()),
            env: spec.env.clone(),
            account: self.account()?.clone(),
            socket_dir: self.target.socket_dir.clone(),
            port: self.target.port,
        };
        let updates: &[super::extensions::Update] = if self.opts.update_extensions {
            &self.updates
        } else {
            &[]
        };
        let _ = (prev, gen);
        super::datacare::after_switch(&server, self.lock.major(), self.gate.as_ref(), updates)
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
            Error::host(format!("service user {} does not exist", self.opts.user))
                .hint("it is created by install; was it removed meanwhile?")
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
        let (gen, created) = compose_generation(
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
        if created {
            tx.created(&self.layout().generation(&self.opts.instance, name));
        }
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
            tx.save_file(&state_path)?;
            self.new_state(false)?.write(&instance_dir)?;
        }
        // A directory given empty (a mount point) is filled, never made:
        // a rollback empties it again, and pgoci does not call it its own.
        if data_dir.exists() {
            tx.fill_empty_dir(data_dir);
        } else {
            tx.create_dir(data_dir)?;
        }
        chown_mode(data_dir, &account, 0o700)?;
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
        tx.save_link(&current_link);
        fsutil::switch_symlink(&current_link, &target)?;
        failpoint::hit("after-switch");
        Ok(true)
    }

    /// Records the lock and the state, last: a run killed before this is
    /// recognised by the next one (the state still names the old
    /// generation) and completed.
    fn record(&self, tx: &mut Transaction) -> Result<()> {
        let instance_dir = self.layout().instance(&self.opts.instance);
        let lock_copy = instance_dir.join("pgoci.lock");
        tx.save_file(&lock_copy)?;
        fsutil::write_if_changed(&lock_copy, self.lock.to_yaml()?.as_bytes(), 0o644)?;
        let mut state = self.new_state(true)?;
        state.current = self.target.generation.clone();
        let state_path = InstanceState::path(&instance_dir);
        tx.save_file(&state_path)?;
        if self.previous != Some(&state) {
            state.write(&instance_dir)?;
        }
        Ok(())
    }

    fn ensure_runtime_dirs(&self, tx: &mut Transaction) -> Result<()> {
        let account = self.account()?;
        for (dir, mode) in [
            (&self.target.socket_dir, 0o755),
            (&self.target.log_dir, 0o750),
        ] {
            // Made by this run: removed again if it fails.
            tx.create_dir(dir)?;
            chown_mode(dir, account, mode)?;
        }
        Ok(())
    }
}

/// Gives a directory to the service user with `mode`.
fn chown_mode(dir: &Path, account: &Account, mode: u32) -> Result<()> {
    nix::unistd::chown(dir, Some(account.uid.into()), Some(account.gid.into()))
        .map_err(|e| Error::host(format!("cannot chown {}: {e}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).with_path(dir, "chmod")
}

/// Writes `pgoci.conf` and the include line; true when anything changed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_config(
    lock: &Lock,
    instance: &InstanceName,
    gen_dir: &Path,
    port: u16,
    socket_dir: &Path,
    settings: &BTreeMap<String, String>,
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
    tx.save_file(&conf)?;
    let mut changed = fsutil::write_if_changed(&conf, text.as_bytes(), 0o644)?;
    let main_conf = data_dir.join("postgresql.conf");
    let current = fs::read_to_string(&main_conf).with_path(&main_conf, "read")?;
    if !current.lines().any(|l| l.trim() == config::INCLUDE_LINE) {
        tx.save_file(&main_conf)?;
        let mut new = current;
        if !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str("\n# Added once by pgoci: settings pgoci manages (see pgoci.conf)\n");
        new.push_str(config::INCLUDE_LINE);
        new.push('\n');
        fsutil::write_atomic(&main_conf, new.as_bytes())?;
        changed = true;
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
        install_gate_binary(gate)?;
    }
    for (path, text) in manager.render(spec)? {
        if fs::read(&path).ok().as_deref() == Some(text.as_bytes()) {
            continue;
        }
        if let Some(warning) = manager.check_rendered(&path, &text)? {
            tracing::warn!("{warning}");
        }
        tx.save_file(&path)?;
        fsutil::write_if_changed(&path, text.as_bytes(), 0o644)?;
        changed = true;
    }
    if changed {
        tx.service_files_changed(manager.kind());
        manager.reload()?;
    }
    Ok(changed)
}

/// What composing a generation needs.
pub struct GenerationInput<'a> {
    pub layout: &'a HostLayout,
    pub instance: &'a InstanceName,
    pub lock: &'a Lock,
    pub lock_digest: &'a crate::digest::Digest,
    pub source: &'a dyn BlobSource,
    /// The library check of the artifacts (which loader, which image libraries).
    pub libraries: Option<&'a super::libraries::LibraryReport>,
}

/// Unpacks what the store lacks and composes generation `name` (renamed
/// into place whole: one already there was left by a killed run and is
/// taken as it is). Returns the generation and whether this call made it.
pub fn compose_generation(
    input: &GenerationInput,
    name: &str,
    reporter: &dyn Reporter,
) -> Result<(GenerationState, bool)> {
    let layout = input.layout;
    let lock = input.lock;
    let (server_dir, _) = store::ensure(
        layout,
        &lock.server.pinned,
        input.source,
        &unpack::keep_all,
        reporter,
    )?;
    let mut ext_dirs = Vec::new();
    for ext in &lock.extensions {
        let (dir, _) = store::ensure(
            layout,
            &ext.pinned,
            input.source,
            &unpack::keep_all,
            reporter,
        )?;
        ext_dirs.push(dir);
    }
    let dirs = generation::server_dirs(lock, &server_dir)?;
    let dest = layout.generation(input.instance, name);
    let inputs: Vec<ExtensionInput> = lock
        .extensions
        .iter()
        .zip(&ext_dirs)
        .map(|(e, d)| ExtensionInput {
            name: &e.name,
            store_dir: d,
            ld_library_path: &e.ld_library_path,
            env: &e.env,
        })
        .collect();
    // A generation appears by rename, so one already there is whole: a
    // run killed after composing it left it for us.
    let created = !dest.is_dir();
    if created {
        let image_libs = input
            .libraries
            .map(|l| l.from_image.as_slice())
            .unwrap_or_default();
        let image_loader = input.libraries.and_then(|l| l.image_loader.as_deref());
        generation::compose(
            lock,
            &dirs,
            &server_dir,
            &inputs,
            image_libs,
            image_loader,
            &dest,
        )?;
    }
    let version = if lock.server.version == "unknown" {
        postgres::version_of_binary(&dest.join(&dirs.bin).join("postgres"))
            .unwrap_or_else(|| "unknown".into())
    } else {
        lock.server.version.clone()
    };
    let env = generation::read_runtime_env(&dest);
    let collation = super::collation::of_generation(&layout.root, &dest, &dirs, &env);
    let gen = GenerationState {
        name: name.to_string(),
        lock_digest: input.lock_digest.clone(),
        server_version: version,
        server_digest: lock.server.pinned.digest.clone(),
        extensions: lock
            .extensions
            .iter()
            .map(|e| ExtensionState {
                name: e.name.to_string(),
                version: e.version.clone(),
                digest: e.pinned.digest.clone(),
            })
            .collect(),
        dirs,
        store: lock
            .artifacts()
            .map(|a| a.digest.hex().to_string())
            .collect(),
        major: Some(lock.major()),
        collation: Some(collation),
    };
    Ok((gen, created))
}

/// Puts this pgoci at `path` (the prefix's `bin/pgoci`), for the unit's
/// `ExecStartPre=` collation gate: a hard link where the file system
/// allows, else a copy; renamed into place, left alone when identical.
fn install_gate_binary(path: &Path) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| {
        Error::host(format!("cannot find pgoci's own executable: {e}")).caused_by(e)
    })?;
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
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal("gate binary path without a parent"))?;
    fs::create_dir_all(dir).with_path(dir, "create")?;
    let tmp = dir.join(format!(".pgoci.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(&exe, &tmp).is_err() {
        fs::copy(&exe, &tmp).with_path(&tmp, "copy")?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).with_path(&tmp, "chmod")?;
    fs::rename(&tmp, path).with_path(path, "write")
}

/// What a lifecycle command (rollback, uninstall, gc) did.
#[derive(Debug, Clone)]
pub struct LifecycleReport {
    pub changed: bool,
    pub actions: Vec<Step>,
    /// What was done for the data (reindex, collation versions).
    pub data: Vec<String>,
}

/// Applies a rollback plan: config and service files of the older
/// generation, switch, restart; undone if the older server fails.
pub fn rollback(
    plan: &Plan,
    layout: &HostLayout,
    collation: Option<super::collation::Choice>,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    require_root("rollback")?;
    let instance = &plan.instance.name;
    let instance_dir = layout.instance(instance);
    let mut st = InstanceState::read(&instance_dir)?
        .ok_or_else(|| Error::usage(format!("no instance named {instance}")))?;
    let target = st
        .generations
        .iter()
        .find(|g| g.name == plan.instance.generation)
        .cloned()
        .ok_or_else(|| Error::internal("rollback target vanished from the state"))?;
    let gen_dir = layout.generation(instance, &target.name);
    let lock = Lock::read(&gen_dir.join(generation::GENERATION_LOCK))?;
    let account = users::lookup(&st.user).ok_or_else(|| {
        Error::host(format!(
            "service user {} of instance {instance} is missing",
            st.user
        ))
    })?;
    let env = generation::read_runtime_env(&gen_dir);
    let spec = spec_of(layout, &st, &target, &account, &env);
    let old_spec = st.current_generation().map(|g| {
        let env = generation::read_runtime_env(&layout.generation(instance, &g.name));
        spec_of(layout, &st, g, &account, &env)
    });
    let manager = service::manager(st.service, layout);
    // The collation gate, before anything changes: the data goes back to
    // the older generation's libraries as they are now.
    let running = old_spec.as_ref().is_some_and(|s| manager.is_active(s));
    let gate = super::datacare::gate(
        &st,
        super::datacare::data_libs(layout, &st),
        &super::datacare::generation_libs(layout, &st, &target),
        super::datacare::current_server(layout, &st, running).as_ref(),
        collation,
        &format!("the rollback of instance {instance}"),
    )?;
    let mut runner = Runner {
        reporter,
        done: Vec::new(),
    };
    let mut tx = Transaction::new(layout);
    let mut data = Vec::new();
    let result = (|| -> Result<()> {
        for step in &plan.steps {
            match step {
                Step::WriteConfig { .. } => runner.run(step, || {
                    let changed = write_config(
                        &lock,
                        instance,
                        &gen_dir,
                        st.port,
                        &st.socket_dir,
                        &st.settings,
                        &st.data_dir,
                        &mut tx,
                    )?;
                    Ok(((), changed))
                })?,
                Step::WriteServiceFiles { .. } => runner.run(step, || {
                    Ok(((), write_service_files(manager.as_ref(), &spec, &mut tx)?))
                })?,
                Step::Switch { to, .. } => runner.run(step, || {
                    let link = instance_dir.join("current");
                    tx.save_link(&link);
                    fsutil::switch_symlink(&link, &PathBuf::from("generations").join(to))?;
                    failpoint::hit("after-switch");
                    Ok(((), true))
                })?,
                Step::Start { .. } | Step::Restart { .. } => runner.run(step, || {
                    if gate.is_some() {
                        // Recorded before the start: the unit's gate agrees.
                        tx.save_file(&InstanceState::path(&instance_dir))?;
                        InstanceState {
                            collation: Some(super::datacare::generation_libs(layout, &st, &target)),
                            ..st.clone()
                        }
                        .write(&instance_dir)?;
                    }
                    tx.server_changing(st.service, spec.clone(), old_spec.clone());
                    manager.restart(&spec)?;
                    Ok(((), true))
                })?,
                other => {
                    return Err(Error::internal(format!(
                        "a rollback plan holds a {} step",
                        other.kind()
                    )))
                }
            }
        }
        if let Some(g) = &gate {
            let server = super::datacare::current_server(
                layout,
                &InstanceState {
                    current: target.name.clone(),
                    ..st.clone()
                },
                true,
            )
            .ok_or_else(|| Error::internal("rollback: no server to refresh collations on"))?;
            data = super::datacare::after_switch(&server, st.major, Some(g), &[])?;
        }
        // The state last: a rollback killed before this is repeated whole.
        st.current = target.name.clone();
        st.collation = Some(super::datacare::generation_libs(layout, &st, &target));
        tx.save_file(&InstanceState::path(&instance_dir))?;
        st.write(&instance_dir)?;
        let lock_copy = instance_dir.join("pgoci.lock");
        tx.save_file(&lock_copy)?;
        fsutil::write_atomic(&lock_copy, lock.to_yaml()?.as_bytes())?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            tx.commit();
            Ok(LifecycleReport {
                changed: !runner.done.is_empty(),
                actions: runner.done,
                data,
            })
        }
        Err(e) => Err(undo(tx, e)),
    }
}

/// Applies an uninstall plan. Not a transaction: each step is final, and
/// a run killed midway is completed by running it again (the state file
/// goes last).
pub fn uninstall(
    plan: &Plan,
    layout: &HostLayout,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    let mut runner = Runner {
        reporter,
        done: Vec::new(),
    };
    if plan.steps.is_empty() {
        return Ok(LifecycleReport {
            changed: false,
            actions: Vec::new(),
            data: Vec::new(),
        });
    }
    require_root("uninstall")?;
    let instance = &plan.instance.name;
    let st = InstanceState::read(&layout.instance(instance))?
        .ok_or_else(|| Error::usage(format!("no instance named {instance}")))?;
    let manager = service::manager(st.service, layout);
    for step in &plan.steps {
        match step {
            Step::Stop { .. } => runner.run(step, || {
                let Some(gen) = st.current_generation() else {
                    return Ok(((), false));
                };
                let account = users::lookup(&st.user).ok_or_else(|| {
                    Error::host(format!(
                        "service user {} of instance {instance} is missing",
                        st.user
                    ))
                })?;
                let env = generation::read_runtime_env(&layout.generation(instance, &gen.name));
                let stopped = manager.stop(&spec_of(layout, &st, gen, &account, &env))?;
                failpoint::hit("uninstall-after-stop");
                Ok(((), stopped))
            })?,
            Step::RemoveServiceFiles { files } => runner.run(step, || {
                manager.forget(instance)?;
                let mut removed = false;
                for f in files {
                    removed |= fsutil::remove_file_if_exists(f)?;
                }
                if removed {
                    manager.reload()?;
                }
                Ok(((), removed))
            })?,
            Step::RemoveInstance { dir } => runner.run(step, || {
                for d in [layout.socket_dir(instance), layout.log_dir(instance)] {
                    fsutil::remove_dir_if_exists(&d)?;
                }
                // Generations first, the state last: a killed run can be repeated.
                fsutil::remove_dir_if_exists(&dir.join("generations"))?;
                Ok(((), fsutil::remove_dir_if_exists(dir)?))
            })?,
            Step::PurgeData { data_dir } => runner.run(step, || {
                let removed = fsutil::remove_dir_if_exists(data_dir)?;
                failpoint::hit("uninstall-after-purge");
                Ok(((), removed))
            })?,
            other => {
                return Err(Error::internal(format!(
                    "an uninstall plan holds a {} step",
                    other.kind()
                )))
            }
        }
    }
    Ok(LifecycleReport {
        changed: !runner.done.is_empty(),
        actions: runner.done,
        data: Vec::new(),
    })
}

/// Plans gc: store entries no generation of any instance uses (and the
/// stored layers only they were composed from), and cache
/// blobs that neither those generations' locks nor `keep` locks need.
pub fn plan_gc(layout: &HostLayout, cache: Option<&Cache>, keep: &[Lock]) -> Result<Vec<Step>> {
    let instances = super::facts::other_instances(layout, "")?;
    let mut used_store = std::collections::BTreeSet::new();
    let mut used_blobs = std::collections::BTreeSet::new();
    for st in &instances {
        for g in &st.generations {
            used_store.extend(g.store.iter().cloned());
            let lock_file = layout
                .generation(&st.instance, &g.name)
                .join(generation::GENERATION_LOCK);
            if let Ok(lock) = Lock::read(&lock_file) {
                used_blobs.extend(lock.blobs().into_iter().map(|b| b.digest));
            }
        }
    }
    for lock in keep {
        used_blobs.extend(lock.blobs().into_iter().map(|b| b.digest));
        used_store.extend(lock.artifacts().map(|a| a.digest.hex().to_string()));
    }
    let store_entries = store::unused(layout, &used_store);
    let mut blobs = BTreeMap::new();
    if let Some(cache) = cache {
        for d in cache.digests()? {
            if !used_blobs.contains(&d) {
                let size = fs::metadata(cache.path(&d)).map(|m| m.len()).unwrap_or(0);
                blobs.insert(d, size);
            }
        }
    }
    Ok(plan::gc(store_entries, blobs))
}

/// Applies gc steps.
pub fn gc(
    steps: &[Step],
    layout: &HostLayout,
    cache: Option<&Cache>,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    let mut runner = Runner {
        reporter,
        done: Vec::new(),
    };
    // Entries a killed gc or install moved aside.
    store::clean(layout);
    for step in steps {
        match step {
            Step::RemoveStoreEntry { entry, .. } => {
                runner.run(step, || Ok(((), store::remove(layout, entry)?)))?
            }
            Step::RemoveCacheBlob { digest, .. } => runner.run(step, || {
                let Some(cache) = cache else {
                    return Ok(((), false));
                };
                Ok(((), fsutil::remove_file_if_exists(&cache.path(digest))?))
            })?,
            other => {
                return Err(Error::internal(format!(
                    "a gc plan holds a {} step",
                    other.kind()
                )))
            }
        }
    }
    Ok(LifecycleReport {
        changed: !runner.done.is_empty(),
        actions: runner.done,
        data: Vec::new(),
    })
}

/// Re-hashes the current generation of an instance.
pub fn verify(layout: &HostLayout, st: &InstanceState) -> Result<super::manifest::Drift> {
    super::manifest::verify_generation(&layout.generation(&st.instance, &st.current))
}
