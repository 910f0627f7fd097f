//! Installing a lock onto the host (spec/host.md): preflight, unpack into
//! the store, compose a generation, service user, data directory and
//! initdb, `pgoci.conf`, the systemd unit, the atomic switch of `current`,
//! and starting the server. Every step first checks whether its result is
//! already there, so a re-run changes nothing and a killed run completes
//! when run again.

pub mod config;
pub mod generation;
pub mod layout;
pub mod lifecycle;
pub mod manifest;
pub mod postgres;
pub mod state;
pub mod store;
pub mod systemd;
pub mod users;

use crate::blobs::BlobSource;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Kind, Result};
use crate::lock::Lock;
use crate::progress::Reporter;
use crate::unpack;
use generation::{ExtensionInput, ServerDirs};
use layout::HostLayout;
use serde::Serialize;
use state::{ExtensionState, GenerationState, InstanceState, ServiceKind};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How to install: everything the command line decides.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub layout: HostLayout,
    pub instance: String,
    pub port: Option<u16>,
    /// Host view (placed under the root).
    pub data_dir: Option<PathBuf>,
    pub user: String,
    pub service: Option<ServiceKind>,
    pub no_start: bool,
    pub settings: BTreeMap<String, String>,
    pub locale: String,
    pub encoding: String,
    pub auth: String,
    pub check: bool,
}

/// What an install did (or, with `--check`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub changed: bool,
    pub instance: InstanceSummary,
    pub actions: Vec<String>,
    pub warnings: Vec<String>,
}

/// The instance part of reports.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceSummary {
    pub name: String,
    pub major: u32,
    pub version: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub generation: String,
    pub service: ServiceKind,
    pub user: String,
}

/// The first port tried when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// Collects actions as they happen.
struct Actions<'a> {
    done: Vec<String>,
    reporter: &'a dyn Reporter,
}

impl Actions<'_> {
    fn push(&mut self, line: String) {
        self.reporter.step(&line);
        self.done.push(line);
    }
}

/// Installs (or re-applies) `lock` as an instance.
pub fn install(
    lock: &Lock,
    source: &dyn BlobSource,
    opts: &InstallOptions,
    reporter: &dyn Reporter,
) -> Result<InstallReport> {
    let lock_digest = lock.digest()?;
    let layout = &opts.layout;
    let instance_dir = layout.instance(&opts.instance);
    let previous = InstanceState::read(&instance_dir)?;
    let mut warnings = Vec::new();

    // ---- preflight: nothing on the host changes before all of this passes.
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::host(
            "pgoci install must run as root (it creates a user and chowns the data directory)",
        )
        .hint("run it with sudo"));
    }
    if let Some(prev) = &previous {
        if prev.major != lock.major() {
            return Err(Error::host(format!(
                "instance {} runs PostgreSQL {}; this lock is for {}: a major upgrade needs pg_upgrade",
                opts.instance,
                prev.major,
                lock.major()
            ))
            .hint("install the new major as another --instance and use pg_upgrade between them"));
        }
    }
    let data_dir = match (&opts.data_dir, &previous) {
        (Some(d), Some(prev)) if layout.host(d) != prev.data_dir => {
            return Err(Error::usage(format!(
                "instance {} already uses data dir {}; --data-dir {} differs",
                opts.instance,
                prev.data_dir.display(),
                d.display()
            )))
        }
        (_, Some(prev)) => prev.data_dir.clone(),
        (Some(d), None) => layout.host(d),
        (None, None) => layout.default_data_dir(&opts.instance),
    };
    let others = other_instances(layout, &opts.instance)?;
    if previous.is_none() {
        check_data_dir_is_free(&data_dir, &others)?;
    }
    let port = choose_port(opts, previous.as_ref(), &others, &mut warnings)?;
    if !opts.check {
        for blob in lock.blobs() {
            source.verify(&blob)?;
        }
    }
    let service =
        opts.service
            .unwrap_or(if layout.root == Path::new("/") && systemd::is_running() {
                ServiceKind::Systemd
            } else {
                ServiceKind::None
            });
    let socket_dir = layout.socket_dir(&opts.instance);
    let same_generation = previous
        .as_ref()
        .and_then(|p| p.current_generation())
        .filter(|g| g.lock_digest == lock_digest)
        .cloned();

    if opts.check {
        return Ok(check_plan(
            lock,
            opts,
            previous.as_ref(),
            same_generation.is_some(),
            &data_dir,
            port,
            service,
            &socket_dir,
            warnings,
        ));
    }

    let mut actions = Actions {
        done: Vec::new(),
        reporter,
    };
    // ---- store + generation
    let generations_dir = instance_dir.join("generations");
    store::clean_temp(&layout.store());
    store::clean_temp(&generations_dir);
    let gen_state = match same_generation {
        Some(g) if generations_dir.join(&g.name).is_dir() => g,
        _ => {
            let g = build_generation(
                lock,
                &lock_digest,
                source,
                layout,
                &generations_dir,
                previous.as_ref(),
                &mut actions,
            )?;
            actions.push(format!("composed generation {}", g.name));
            crate::failpoint::hit("after-compose");
            g
        }
    };
    let gen_dir = generations_dir.join(&gen_state.name);
    let bin = gen_dir.join(&gen_state.dirs.bin);

    // ---- user, directories, initdb
    let (account, created_user) = users::ensure(&opts.user)?;
    if created_user {
        actions.push(format!("created system user {}", account.name));
    }
    // Record the instance before initdb, so a run killed from here on is
    // recognised as ours (and completed) by the next run.
    let mut generations = previous
        .as_ref()
        .map(|p| p.generations.clone())
        .unwrap_or_default();
    if !generations.iter().any(|g| g.name == gen_state.name) {
        generations.push(gen_state.clone());
    }
    let needs_initdb = !data_dir.join("PG_VERSION").exists();
    let new_state = InstanceState {
        instance: opts.instance.clone(),
        major: lock.major(),
        port,
        data_dir: data_dir.clone(),
        data_dir_created: previous
            .as_ref()
            .map_or(needs_initdb, |p| p.data_dir_created),
        user: account.name.clone(),
        service,
        socket_dir: socket_dir.clone(),
        settings: opts.settings.clone(),
        generations,
        current: gen_state.name.clone(),
    };
    if previous.is_none() {
        fs::create_dir_all(&instance_dir).with_path(&instance_dir, "create")?;
        new_state.write(&instance_dir)?;
    }
    if needs_initdb {
        if new_state.data_dir_created {
            // Ours, from a run that died during initdb: start over.
            let _ = fs::remove_dir_all(&data_dir);
        }
        create_owned_dir(&data_dir, &account, 0o700)?;
        postgres::initdb(
            &bin,
            &data_dir,
            &account,
            &postgres::InitdbOptions {
                locale: &opts.locale,
                encoding: &opts.encoding,
                auth_host: &opts.auth,
            },
        )?;
        actions.push(format!("initialised {}", data_dir.display()));
    }
    create_owned_dir(&socket_dir, &account, 0o755)?;
    let log_dir = layout.log_dir(&opts.instance);
    create_owned_dir(&log_dir, &account, 0o750)?;

    // ---- configuration and unit
    let conf_changed = write_config(
        lock,
        &opts.instance,
        &gen_dir,
        port,
        &socket_dir,
        &opts.settings,
        &data_dir,
        &mut actions,
    )?;
    let unit_file = layout.unit_file(&opts.instance);
    let unit_changed = write_unit(
        layout,
        &opts.instance,
        &account,
        &gen_dir,
        &gen_state,
        &data_dir,
        &mut warnings,
    )?;
    if unit_changed {
        actions.push(format!("wrote {}", unit_file.display()));
    }

    // ---- switch
    let current_link = instance_dir.join("current");
    let target = PathBuf::from("generations").join(&gen_state.name);
    let link_is_old = fs::read_link(&current_link).ok() != Some(target.clone());
    // The recorded state decides whether the server must move over: a run
    // killed right after the symlink switch recorded nothing yet.
    let switched = link_is_old
        || previous
            .as_ref()
            .is_none_or(|p| p.current != gen_state.name);
    if link_is_old {
        crate::failpoint::hit("before-switch");
        state::switch_symlink(&current_link, &target)?;
        actions.push(format!("switched current to {}", gen_state.name));
        crate::failpoint::hit("after-switch");
    }
    write_if_changed(
        &instance_dir.join("pgoci.lock"),
        lock.to_yaml()?.as_bytes(),
        0o644,
    )?;
    if previous.as_ref() != Some(&new_state) {
        new_state.write(&instance_dir)?;
    }

    // ---- start (or restart when what the server reads changed)
    if !opts.no_start {
        let restart = switched || conf_changed || unit_changed;
        let previous_gen = previous
            .as_ref()
            .and_then(|p| p.current_generation())
            .filter(|g| g.name != gen_state.name)
            .cloned();
        let started = start_or_restart(&new_state, &gen_dir, &account, layout, restart, service);
        match started {
            Ok(Some(line)) => actions.push(line),
            Ok(None) => {}
            Err(e) if e.kind == Kind::Service && previous_gen.is_some() => {
                let old = previous_gen.expect("checked");
                return Err(roll_back_after_failed_start(
                    e,
                    previous.expect("had a generation"),
                    &old,
                    &instance_dir,
                    &account,
                    layout,
                ));
            }
            Err(e) => return Err(e),
        }
    }
    let changed = !actions.done.is_empty();
    Ok(InstallReport {
        changed,
        instance: summary(&new_state, &gen_state),
        actions: actions.done,
        warnings,
    })
}

/// Composes a new generation for `lock`, unpacking what the store lacks.
fn build_generation(
    lock: &Lock,
    lock_digest: &Digest,
    source: &dyn BlobSource,
    layout: &HostLayout,
    generations_dir: &Path,
    previous: Option<&InstanceState>,
    actions: &mut Actions,
) -> Result<GenerationState> {
    let server_select = server_selector(lock);
    let (server_dir, created) =
        store::ensure(layout, &lock.server.pinned, source, &*server_select)?;
    if created {
        actions.push(format!(
            "unpacked server {} ({})",
            lock.server.version,
            lock.server.pinned.digest.short()
        ));
    }
    let mut ext_dirs = Vec::new();
    for ext in &lock.extensions {
        let (dir, created) = store::ensure(layout, &ext.pinned, source, &unpack::keep_all)?;
        if created {
            actions.push(format!(
                "unpacked extension {} {} ({})",
                ext.name,
                ext.version,
                ext.pinned.digest.short()
            ));
        }
        ext_dirs.push(dir);
    }
    crate::failpoint::hit("after-unpack");
    let dirs: ServerDirs = generation::server_dirs(lock, &server_dir)?;
    let n = previous
        .map(|p| {
            p.generations
                .iter()
                .filter_map(|g| g.name.split('-').next()?.parse::<u32>().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
        + 1;
    let name = format!("{n}-{}", &lock_digest.hex()[..12]);
    let dest = generations_dir.join(&name);
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
    // A generation appears by rename, so one already there is whole: a run
    // killed after composing it left it for us.
    if !dest.is_dir() {
        generation::compose(lock, &dirs, &server_dir, &inputs, &dest)?;
    }
    let version = if lock.server.version == "unknown" {
        postgres::probe_version(&dest.join(&dirs.bin)).unwrap_or_else(|| "unknown".into())
    } else {
        lock.server.version.clone()
    };
    Ok(GenerationState {
        name,
        lock_digest: lock_digest.clone(),
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
    })
}

/// Which entries of the server artifact are kept: all for `tree`, only
/// `server.paths` (at their positions) for `rootfs`.
pub fn server_selector(lock: &Lock) -> unpack::Selector {
    match &lock.server.paths {
        Some(paths) if lock.server.layout == crate::profile::Layout::Rootfs => {
            let keep: Vec<PathBuf> = [&paths.bin, &paths.lib, &paths.share]
                .iter()
                .map(|p| PathBuf::from(p.as_str().trim_start_matches('/')))
                .collect();
            Box::new(move |p: &Path| {
                keep.iter()
                    .any(|k| p.starts_with(k))
                    .then(|| p.to_path_buf())
            })
        }
        _ => Box::new(|p: &Path| Some(p.to_path_buf())),
    }
}

/// Writes `pgoci.conf` and the include line; true when anything changed.
#[allow(clippy::too_many_arguments)]
fn write_config(
    lock: &Lock,
    instance: &str,
    gen_dir: &Path,
    port: u16,
    socket_dir: &Path,
    settings: &BTreeMap<String, String>,
    data_dir: &Path,
    actions: &mut Actions,
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
    );
    let conf = data_dir.join("pgoci.conf");
    let mut changed = write_if_changed(&conf, text.as_bytes(), 0o644)?;
    if changed {
        actions.push(format!("wrote {}", conf.display()));
    }
    let main_conf = data_dir.join("postgresql.conf");
    let current = fs::read_to_string(&main_conf).with_path(&main_conf, "read")?;
    if !current.lines().any(|l| l.trim() == config::INCLUDE_LINE) {
        let mut new = current;
        if !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str("\n# Added once by pgoci: settings pgoci manages (see pgoci.conf)\n");
        new.push_str(config::INCLUDE_LINE);
        new.push('\n');
        fs::write(&main_conf, new).with_path(&main_conf, "write")?;
        actions.push(format!("added include to {}", main_conf.display()));
        changed = true;
    }
    Ok(changed)
}

/// Renders the instance's unit for a server in `bin`, checks it with
/// `systemd-analyze verify` when it differs from the one installed, and
/// writes it. Returns whether the unit changed.
pub(crate) fn write_unit(
    layout: &HostLayout,
    instance: &str,
    account: &users::Account,
    gen_dir: &Path,
    gen: &GenerationState,
    data_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<bool> {
    let bin = gen_dir.join(&gen.dirs.bin);
    let env = generation::read_runtime_env(gen_dir);
    let unit = systemd::render(&systemd::UnitInput {
        instance,
        user: &account.name,
        group: &account.group,
        postgres: &bin.join("postgres"),
        data_dir,
        runtime_dir: &format!("pgoci/{instance}"),
        ld_library_path: env
            .ld_library_path
            .as_ref()
            .map(|p| p.display().to_string()),
        env: &env.vars,
        notify: postgres::links_libsystemd(&bin.join("postgres")),
    });
    let unit_file = layout.unit_file(instance);
    if fs::read(&unit_file).ok().as_deref() == Some(unit.as_bytes()) {
        return Ok(false);
    }
    if !systemd::verify_text(&layout::unit_name(instance), &unit)? {
        warnings.push("systemd-analyze not found: unit not verified".into());
    }
    write_if_changed(&unit_file, unit.as_bytes(), 0o644)
}

/// Writes a file (atomically) only if its content differs.
fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_path(parent, "create")?;
    }
    state::write_atomic(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_path(path, "chmod")?;
    Ok(true)
}

/// Creates a directory owned by the service user (parents owned by root).
fn create_owned_dir(dir: &Path, account: &users::Account, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).with_path(dir, "create")?;
    nix::unistd::chown(dir, Some(account.uid.into()), Some(account.gid.into()))
        .map_err(|e| Error::host(format!("cannot chown {}: {e}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).with_path(dir, "chmod")
}

/// Starts the server if it is not running, restarts it if `restart`.
/// Returns the action line, if any.
pub fn start_or_restart(
    state: &InstanceState,
    gen_dir: &Path,
    account: &users::Account,
    layout: &HostLayout,
    restart: bool,
    service: ServiceKind,
) -> Result<Option<String>> {
    let bin = gen_dir.join(&state.current_generation().expect("current exists").dirs.bin);
    match service {
        ServiceKind::Systemd => {
            let unit = layout::unit_name(&state.instance);
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", &unit])?;
            let verb = if restart { "restart" } else { "start" };
            let running = systemctl(&["is-active", "--quiet", &unit]).is_ok();
            if running && !restart {
                return Ok(None);
            }
            systemctl(&[verb, &unit])?;
            postgres::wait_ready(&state.data_dir, std::time::Duration::from_secs(60))?;
            Ok(Some(format!("{verb}ed {unit}")))
        }
        ServiceKind::None => {
            let running = postgres::is_running(&bin, &state.data_dir, account);
            if running && !restart {
                return Ok(None);
            }
            if running {
                postgres::stop(&bin, &state.data_dir, account)?;
            }
            let log = layout.log_dir(&state.instance).join("postgresql.log");
            let env = generation::read_runtime_env(gen_dir);
            postgres::start(&bin, &state.data_dir, &log, account, &env)?;
            Ok(Some(format!(
                "{} PostgreSQL with pg_ctl on port {} (no systemd; log {})",
                if running { "restarted" } else { "started" },
                state.port,
                log.display()
            )))
        }
    }
}

fn systemctl(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| Error::service(format!("cannot run systemctl: {e}")))?;
    if !out.status.success() {
        return Err(Error::service(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            postgres::last_lines(&String::from_utf8_lossy(&out.stderr), 3)
        )));
    }
    Ok(())
}

/// After a failed start on a new generation: switch back, restore the old
/// config and start the old server; the error says what happened.
fn roll_back_after_failed_start(
    err: Error,
    previous: InstanceState,
    old: &GenerationState,
    instance_dir: &Path,
    account: &users::Account,
    layout: &HostLayout,
) -> Error {
    let restore = || -> Result<()> {
        state::switch_symlink(
            &instance_dir.join("current"),
            &PathBuf::from("generations").join(&old.name),
        )?;
        let old_lock = generation_lock(instance_dir, old)?;
        let gen_dir = instance_dir.join("generations").join(&old.name);
        let mut ignored = Actions {
            done: Vec::new(),
            reporter: &crate::progress::Silent,
        };
        write_config(
            &old_lock,
            &previous.instance,
            &gen_dir,
            previous.port,
            &previous.socket_dir,
            &previous.settings,
            &previous.data_dir,
            &mut ignored,
        )?;
        write_unit(
            layout,
            &previous.instance,
            account,
            &gen_dir,
            old,
            &previous.data_dir,
            &mut Vec::new(),
        )?;
        previous.write(instance_dir)?;
        state::write_atomic(
            &instance_dir.join("pgoci.lock"),
            old_lock.to_yaml()?.as_bytes(),
        )?;
        start_or_restart(&previous, &gen_dir, account, layout, true, previous.service)?;
        Ok(())
    };
    match restore() {
        Ok(()) => Error::service(format!(
            "{}; switched back to generation {} and restarted it",
            err.message, old.name
        )),
        Err(e2) => Error::service(format!(
            "{}; switching back to generation {} also failed: {}",
            err.message, old.name, e2.message
        )),
    }
}

/// The lock a generation was composed from.
pub fn generation_lock(instance_dir: &Path, gen: &GenerationState) -> Result<Lock> {
    Lock::read(
        &instance_dir
            .join("generations")
            .join(&gen.name)
            .join(generation::GENERATION_LOCK),
    )
}

/// The summary of an instance for reports.
pub fn summary(state: &InstanceState, gen: &GenerationState) -> InstanceSummary {
    InstanceSummary {
        name: state.instance.clone(),
        major: state.major,
        version: gen.server_version.clone(),
        port: state.port,
        data_dir: state.data_dir.clone(),
        socket_dir: state.socket_dir.clone(),
        generation: gen.name.clone(),
        service: state.service,
        user: state.user.clone(),
    }
}

/// States of every other instance under the prefix.
pub fn other_instances(layout: &HostLayout, except: &str) -> Result<Vec<InstanceState>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(layout.instances()) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy() == except {
            continue;
        }
        if let Some(s) = InstanceState::read(&e.path())? {
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(out)
}

/// A data directory pgoci may initialise: absent or empty, and not another
/// instance's. Anything else is someone's data: exit 6, nothing touched.
fn check_data_dir_is_free(data_dir: &Path, others: &[InstanceState]) -> Result<()> {
    if let Some(o) = others.iter().find(|o| o.data_dir == data_dir) {
        return Err(Error::host(format!(
            "data dir {} belongs to instance {}",
            data_dir.display(),
            o.instance
        ))
        .hint("pass another --data-dir"));
    }
    let non_empty = fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some());
    match non_empty {
        true => Err(Error::host(format!(
            "data dir {} is not empty and was not created by pgoci; refusing to touch it",
            data_dir.display()
        ))
        .hint("pass an empty or new --data-dir")),
        false => Ok(()),
    }
}

/// The port: given, kept from the previous install, or the first free one
/// from 5432 (with a warning when it had to move).
fn choose_port(
    opts: &InstallOptions,
    previous: Option<&InstanceState>,
    others: &[InstanceState],
    warnings: &mut Vec<String>,
) -> Result<u16> {
    let taken_by_other = |p: u16| others.iter().find(|o| o.port == p);
    if let Some(p) = opts.port.or(previous.map(|s| s.port)) {
        if let Some(o) = taken_by_other(p) {
            return Err(
                Error::host(format!("port {p} is used by instance {}", o.instance))
                    .hint("pass another --port"),
            );
        }
        let ours = previous.is_some_and(|s| s.port == p);
        if !ours && !port_is_free(p) {
            return Err(Error::host(format!("port {p} is taken by another program"))
                .hint("pass another --port"));
        }
        return Ok(p);
    }
    let p = suggested_port(&opts.layout, &opts.instance)?;
    if p != DEFAULT_PORT {
        warnings.push(format!("port {DEFAULT_PORT} is taken; using {p}"));
    }
    Ok(p)
}

/// The port an install without `--port` would get (for prompts).
pub fn suggested_port(layout: &HostLayout, instance: &str) -> Result<u16> {
    if let Some(prev) = InstanceState::read(&layout.instance(instance))? {
        return Ok(prev.port);
    }
    let others = other_instances(layout, instance)?;
    let mut p = DEFAULT_PORT;
    while others.iter().any(|o| o.port == p) || !port_is_free(p) {
        p = p
            .checked_add(1)
            .ok_or_else(|| Error::host("no free port above 5432"))?;
    }
    Ok(p)
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The `--check` answer: what would happen, nothing done.
#[allow(clippy::too_many_arguments)]
fn check_plan(
    lock: &Lock,
    opts: &InstallOptions,
    previous: Option<&InstanceState>,
    same_generation: bool,
    data_dir: &Path,
    port: u16,
    service: ServiceKind,
    socket_dir: &Path,
    warnings: Vec<String>,
) -> InstallReport {
    let mut actions = Vec::new();
    if !same_generation {
        actions.push(format!(
            "would compose a generation of PostgreSQL {} with {} extension(s)",
            lock.server.version,
            lock.extensions.len()
        ));
        actions.push("would switch current and (re)start the server".into());
    }
    if previous.is_none() {
        actions.push(format!("would initialise {}", data_dir.display()));
    }
    let version = lock.server.version.clone();
    InstallReport {
        changed: !actions.is_empty(),
        instance: InstanceSummary {
            name: opts.instance.clone(),
            major: lock.major(),
            version,
            port,
            data_dir: data_dir.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            generation: previous.map(|p| p.current.clone()).unwrap_or_default(),
            service,
            user: opts.user.clone(),
        },
        actions,
        warnings,
    }
}
