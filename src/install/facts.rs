//! Host facts: everything the planner needs to know about the host,
//! gathered in one read-only pass (no root needed, nothing written), so
//! the planner itself can stay a pure function.

use super::generation::{self, RuntimeEnv};
use super::layout::HostLayout;
use super::service::{self, ServiceKind, ServiceSpec};
use super::state::InstanceState;
use super::users::{self, Account};
use super::{config, postgres, InstallOptions};
use crate::error::Result;
use crate::lock::Lock;
use crate::names::InstanceName;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// What a data directory looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirState {
    Absent,
    Empty,
    /// Has `PG_VERSION` (its major, if readable).
    Initialised {
        major: Option<u32>,
    },
    /// Has files but no `PG_VERSION`.
    NonEmpty,
    /// A file, or something else that is not a directory.
    NotADirectory,
    /// A directory this user may not look into (the 0700 data directory
    /// of an existing instance, seen by `--check` without root).
    Unreadable,
}

impl DataDirState {
    /// Looks at a directory (following a symlink to it, as initdb would).
    pub fn of(path: &Path) -> Self {
        match fs::metadata(path) {
            Err(_) if fs::symlink_metadata(path).is_ok() => DataDirState::NotADirectory,
            Err(_) => DataDirState::Absent,
            Ok(m) if !m.is_dir() => DataDirState::NotADirectory,
            Ok(_) if path.join("PG_VERSION").exists() => DataDirState::Initialised {
                major: postgres::data_major(path),
            },
            Ok(_) => match fs::read_dir(path).map(|mut e| e.next().is_some()) {
                Ok(false) => DataDirState::Empty,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    DataDirState::Unreadable
                }
                _ => DataDirState::NonEmpty,
            },
        }
    }
}

/// The data directory an install would use, and its state.
#[derive(Debug, Clone)]
pub struct DataDirFacts {
    pub path: PathBuf,
    pub state: DataDirState,
}

/// What the install planner knows about the host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub is_root: bool,
    /// `--service` when not given and the instance has none yet.
    pub default_service: ServiceKind,
    pub previous: Option<InstanceState>,
    pub others: Vec<InstanceState>,
    pub data_dir: DataDirFacts,
    /// Whether the port asked for (or kept) can be bound.
    pub requested_port_free: bool,
    /// The first port from 5432 up no instance uses and nothing binds.
    pub first_free_port: Option<u16>,
    /// The service user, if it exists.
    pub account: Option<Account>,
    /// Store entries (manifest hex) of the lock already unpacked.
    pub store_has: BTreeSet<String>,
    /// The current generation's directory exists.
    pub current_generation_dir_exists: bool,
    /// The current generation's runtime environment.
    pub generation_env: RuntimeEnv,
    /// `pgoci.conf` as it is now.
    pub config: Option<String>,
    /// `pgoci.conf` exists but this user may not read it (`--check`
    /// without root): it is not compared.
    pub config_unreadable: bool,
    /// `postgresql.conf` includes `pgoci.conf`.
    pub include_line_present: bool,
    /// The service manager's files as they are now (path → content).
    pub service_files: BTreeMap<PathBuf, Option<String>>,
    /// The generation `current` points at.
    pub current_link: Option<String>,
    /// The instance's server runs.
    pub server_running: bool,
    /// The generation the running server was started from, if known.
    pub running_generation: Option<String>,
    /// What the preflight checks look at.
    pub preflight: super::preflight::PreflightFacts,
    /// The initdb locales, where found (looked up only for a data
    /// directory initdb will fill).
    pub locales: super::locale::LocaleFacts,
}

impl HostFacts {
    /// Looks at the host for an install of `lock` with `opts`.
    pub fn gather(lock: &Lock, opts: &InstallOptions) -> Result<Self> {
        let layout = &opts.layout;
        let instance = &opts.instance;
        let previous = InstanceState::read(&layout.instance(instance))?;
        let others = other_instances(layout, instance)?;
        let data_path = match (&previous, &opts.data_dir) {
            (Some(prev), _) => prev.data_dir.clone(),
            (None, Some(d)) => layout.host(d),
            (None, None) => layout.default_data_dir(instance),
        };
        let requested = opts.port.or(previous.as_ref().map(|p| p.port));
        let account = users::lookup(&opts.user);
        let service_kind = opts
            .service
            .or(previous.as_ref().map(|p| p.service))
            .unwrap_or_else(|| ServiceKind::default_for(layout));
        let current = previous.as_ref().and_then(|p| p.current_generation());
        let current_dir = current.map(|g| layout.generation(instance, &g.name));
        let generation_env = current_dir
            .as_deref()
            .map(generation::read_runtime_env)
            .unwrap_or_default();
        let service_files =
            service_files(service::manager(service_kind, layout).as_ref(), instance);
        let server_running = match (&previous, current, &account) {
            // Without root the service user's tools cannot be run: the
            // server's socket says whether it runs.
            (Some(prev), Some(_), _) if !rustix::process::geteuid().is_root() => {
                socket_accepts(&prev.socket_dir, prev.port)
            }
            (Some(prev), Some(g), Some(acc)) => {
                let spec = spec_of(layout, prev, g, acc, &generation_env);
                service::manager(prev.service, layout).is_active(&spec)
            }
            _ => false,
        };
        let running_generation = server_running
            .then(|| running_generation(layout, instance, &data_path))
            .flatten();
        let main_conf = fs::read_to_string(data_path.join("postgresql.conf")).unwrap_or_default();
        // The image's locales only when it is unpacked already (else the
        // host's alone are looked at).
        let server = &lock.server.pinned.digest;
        let locales = match DataDirState::of(&data_path) {
            // This machine's locales, under --root too: initdb runs here and
            // glibc finds compiled locales by absolute path.
            DataDirState::Absent | DataDirState::Empty => super::locale::LocaleFacts::gather(
                Path::new("/"),
                super::store::has(layout, server)
                    .then(|| layout.store().join(server.hex()))
                    .as_deref(),
                &opts.initdb.libc_locales(),
            ),
            _ => Default::default(),
        };
        Ok(HostFacts {
            is_root: rustix::process::geteuid().is_root(),
            default_service: ServiceKind::default_for(layout),
            data_dir: DataDirFacts {
                state: DataDirState::of(&data_path),
                path: data_path.clone(),
            },
            requested_port_free: requested.is_none_or(port_is_free),
            first_free_port: first_free_port(&others),
            account,
            store_has: lock
                .artifacts()
                .filter(|a| super::store::has(layout, &a.digest))
                .map(|a| a.digest.hex().to_string())
                .collect(),
            current_generation_dir_exists: current_dir.as_deref().is_some_and(Path::is_dir),
            generation_env,
            config: fs::read_to_string(data_path.join("pgoci.conf")).ok(),
            config_unreadable: fs::read_to_string(data_path.join("pgoci.conf"))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied),
            include_line_present: main_conf.lines().any(|l| l.trim() == config::INCLUDE_LINE),
            service_files,
            current_link: fs::read_link(layout.instance(instance).join("current"))
                .ok()
                .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned())),
            server_running,
            running_generation,
            preflight: super::preflight::PreflightFacts::gather(&layout.prefix, &opts.user),
            locales,
            previous,
            others,
        })
    }
}

/// Whether a server accepts connections on its Unix socket (a check any
/// user may make).
pub fn socket_accepts(socket_dir: &Path, port: u16) -> bool {
    std::os::unix::net::UnixStream::connect(socket_dir.join(format!(".s.PGSQL.{port}"))).is_ok()
}

/// The first port tried when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// What the rollback and uninstall planners know.
#[derive(Debug, Clone)]
pub struct LifecycleFacts {
    pub layout: HostLayout,
    pub instance: InstanceName,
    pub state: Option<InstanceState>,
    pub server_running: bool,
    pub service_files: BTreeMap<PathBuf, Option<String>>,
}

impl LifecycleFacts {
    /// Looks at one instance.
    pub fn gather(layout: &HostLayout, instance: &InstanceName) -> Result<Self> {
        let state = InstanceState::read(&layout.instance(instance))?;
        let mut facts = LifecycleFacts {
            layout: layout.clone(),
            instance: instance.clone(),
            server_running: false,
            service_files: BTreeMap::new(),
            state: None,
        };
        if let Some(st) = &state {
            let manager = service::manager(st.service, layout);
            facts.service_files = service_files(manager.as_ref(), instance);
            if let (Some(g), Some(acc)) = (st.current_generation(), users::lookup(&st.user)) {
                let env = generation::read_runtime_env(&layout.generation(instance, &g.name));
                facts.server_running = manager.is_active(&spec_of(layout, st, g, &acc, &env));
            }
        }
        facts.state = state;
        Ok(facts)
    }
}

/// A manager's files for an instance, with their content as it is now.
fn service_files(
    manager: &dyn service::ServiceManager,
    instance: &InstanceName,
) -> BTreeMap<PathBuf, Option<String>> {
    manager
        .files(instance)
        .into_iter()
        .map(|p| {
            let content = fs::read_to_string(&p).ok();
            (p, content)
        })
        .collect()
}

/// The generation whose `postgres` the postmaster of `data_dir` runs: its
/// executable's path, read from /proc, lies in `generations/<name>/`.
pub fn running_generation(
    layout: &HostLayout,
    instance: &InstanceName,
    data_dir: &Path,
) -> Option<String> {
    let pid_file = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: u32 = pid_file.lines().next()?.trim().parse().ok()?;
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let generations = fs::canonicalize(layout.generations(instance)).ok()?;
    let rel = exe.strip_prefix(&generations).ok()?;
    Some(
        rel.components()
            .next()?
            .as_os_str()
            .to_string_lossy()
            .into_owned(),
    )
}

/// The service spec of a recorded instance on one of its generations.
pub fn spec_of(
    layout: &HostLayout,
    st: &InstanceState,
    gen: &super::state::GenerationState,
    account: &Account,
    env: &RuntimeEnv,
) -> ServiceSpec {
    spec_on_generation(
        layout,
        &st.instance,
        gen,
        account,
        env,
        &st.data_dir,
        st.port,
    )
}

/// The spec of `instance`'s server on generation `gen` (the state's
/// vocabulary turned into the service seam's).
pub fn spec_on_generation(
    layout: &HostLayout,
    instance: &InstanceName,
    gen: &super::state::GenerationState,
    account: &Account,
    env: &RuntimeEnv,
    data_dir: &Path,
    port: u16,
) -> ServiceSpec {
    ServiceSpec {
        instance: instance.clone(),
        account: account.clone(),
        bin: layout.generation(instance, &gen.name).join(&gen.dirs.bin),
        data_dir: data_dir.to_path_buf(),
        port,
        env: env.clone(),
        notify: env.notify,
        log_file: layout.log_dir(instance).join("postgresql.log"),
        gate: Some(layout.prefix.join("bin").join("pgoci")),
    }
}

/// States of every other instance under the prefix (all with `except` "").
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

/// The port an install without `--port` would get (for prompts).
pub fn suggested_port(layout: &HostLayout, instance: &InstanceName) -> Result<u16> {
    if let Some(prev) = InstanceState::read(&layout.instance(instance))? {
        return Ok(prev.port);
    }
    Ok(first_free_port(&other_instances(layout, instance)?).unwrap_or(DEFAULT_PORT))
}

fn first_free_port(others: &[InstanceState]) -> Option<u16> {
    (DEFAULT_PORT..=u16::MAX).find(|&p| !others.iter().any(|o| o.port == p) && port_is_free(p))
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
