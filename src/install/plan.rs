//! The planner: pure functions from what was asked (a lock, options) and
//! what the host looks like ([`HostFacts`], gathered read-only by
//! [`super::facts`]) to a [`Plan`]: the typed steps an apply would take.
//! `--check`, the interactive confirmation and `--json` all print the
//! plan; nothing here touches the host or needs root, so the planner is
//! unit-tested against made-up facts.

use super::config;
use super::facts::{DataDirState, HostFacts, LifecycleFacts, DEFAULT_PORT};
use super::runtime::RuntimeEnv;
use super::service::{self, ServiceKind, ServiceSpec};
use super::state::{GenerationState, InstanceState};
use super::users::Account;
use super::InstallOptions;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::names::InstanceName;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which part of a lock an artifact plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Extension,
}

/// One thing an apply does. Serialized with a stable `kind` for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Unpack an artifact into the store (its blobs verified as they stream).
    Unpack {
        role: Role,
        name: String,
        version: String,
        digest: Digest,
        bytes: u64,
    },
    /// Compose a generation from store entries.
    Compose { generation: String },
    /// Create the service user as a system user.
    CreateUser { user: String },
    /// Create the data directory and run initdb as the service user.
    InitDataDir { data_dir: PathBuf },
    /// Write `pgoci.conf` (and the include line in `postgresql.conf`).
    WriteConfig { path: PathBuf },
    /// Write the service manager's files (the systemd unit).
    WriteServiceFiles {
        service: ServiceKind,
        files: Vec<PathBuf>,
    },
    /// Point `current` at a generation.
    Switch { from: Option<String>, to: String },
    /// Start the server.
    Start { service: ServiceKind },
    /// Restart the server on what changed.
    Restart { service: ServiceKind },
    /// Stop the server.
    Stop { service: ServiceKind },
    /// Remove the service manager's files.
    RemoveServiceFiles { files: Vec<PathBuf> },
    /// Remove the instance's directory (generations, state).
    RemoveInstance { dir: PathBuf },
    /// Delete the data directory (only one pgoci created and completed).
    PurgeData { data_dir: PathBuf },
    /// Remove a store entry no generation uses.
    RemoveStoreEntry { entry: String, bytes: u64 },
    /// Remove a cache blob no lock needs.
    RemoveCacheBlob { digest: Digest, bytes: u64 },
}

impl Step {
    /// A stable name for the kind of step (the JSON `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Unpack { .. } => "unpack",
            Step::Compose { .. } => "compose",
            Step::CreateUser { .. } => "create_user",
            Step::InitDataDir { .. } => "init_data_dir",
            Step::WriteConfig { .. } => "write_config",
            Step::WriteServiceFiles { .. } => "write_service_files",
            Step::Switch { .. } => "switch",
            Step::Start { .. } => "start",
            Step::Restart { .. } => "restart",
            Step::Stop { .. } => "stop",
            Step::RemoveServiceFiles { .. } => "remove_service_files",
            Step::RemoveInstance { .. } => "remove_instance",
            Step::PurgeData { .. } => "purge_data",
            Step::RemoveStoreEntry { .. } => "remove_store_entry",
            Step::RemoveCacheBlob { .. } => "remove_cache_blob",
        }
    }

    /// What the step does, for a person: `done` in the past tense (after
    /// apply), else as a plan line.
    pub fn describe(&self, done: bool) -> String {
        let (plan, past) = match self {
            Step::Unpack {
                role,
                name,
                version,
                digest,
                ..
            } => {
                let what = match role {
                    Role::Server => format!("server {version} ({})", digest.short()),
                    Role::Extension => format!("extension {name} {version} ({})", digest.short()),
                };
                (format!("unpack {what}"), format!("unpacked {what}"))
            }
            Step::Compose { generation } => (
                format!("compose generation {generation}"),
                format!("composed generation {generation}"),
            ),
            Step::CreateUser { user } => (
                format!("create system user {user}"),
                format!("created system user {user}"),
            ),
            Step::InitDataDir { data_dir } => (
                format!("initialise {}", data_dir.display()),
                format!("initialised {}", data_dir.display()),
            ),
            Step::WriteConfig { path } => (
                format!("write {}", path.display()),
                format!("wrote {}", path.display()),
            ),
            Step::WriteServiceFiles { files, .. } => {
                let list = join_paths(files);
                (format!("write {list}"), format!("wrote {list}"))
            }
            Step::Switch { from: Some(f), to } => (
                format!("switch current from {f} to {to}"),
                format!("switched current from {f} to {to}"),
            ),
            Step::Switch { from: None, to } => (
                format!("switch current to {to}"),
                format!("switched current to {to}"),
            ),
            Step::Start { service } => (
                format!("start the server ({})", service.describe()),
                format!("started the server ({})", service.describe()),
            ),
            Step::Restart { service } => (
                format!("restart the server ({})", service.describe()),
                format!("restarted the server ({})", service.describe()),
            ),
            Step::Stop { service } => (
                format!("stop the server ({})", service.describe()),
                format!("stopped the server ({})", service.describe()),
            ),
            Step::RemoveServiceFiles { files } => {
                let list = join_paths(files);
                (format!("remove {list}"), format!("removed {list}"))
            }
            Step::RemoveInstance { dir } => (
                format!("remove {}", dir.display()),
                format!("removed {}", dir.display()),
            ),
            Step::PurgeData { data_dir } => (
                format!("delete data dir {}", data_dir.display()),
                format!("purged data dir {}", data_dir.display()),
            ),
            Step::RemoveStoreEntry { entry, .. } => (
                format!("remove store entry {entry}"),
                format!("removed store entry {entry}"),
            ),
            Step::RemoveCacheBlob { digest, .. } => (
                format!("remove cache blob {}", digest.short()),
                format!("removed cache blob {}", digest.short()),
            ),
        };
        if done {
            past
        } else {
            plan
        }
    }

    /// The step as a `--json` action object: its fields, `kind` and `text`.
    pub fn to_json(&self, done: bool) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["text"] = self.describe(done).into();
        v
    }
}

fn join_paths(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The instance part of reports and plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceSummary {
    pub name: InstanceName,
    pub major: u32,
    pub version: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub generation: String,
    pub service: ServiceKind,
    pub user: String,
}

/// What an install or upgrade decided, besides its steps.
#[derive(Debug, Clone)]
pub struct InstallTarget {
    pub lock_digest: Digest,
    pub generation: String,
    /// The generation already exists and is current: nothing to compose.
    pub reuse_generation: Option<GenerationState>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub service: ServiceKind,
    pub socket_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The data directory existed (empty) before: pgoci fills it, but
    /// did not create it (and so `--purge` will not delete it).
    pub data_dir_existed: bool,
}

/// A plan: the steps in order, and what a person should know first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub instance: InstanceSummary,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    /// Set for install and upgrade plans.
    pub install: Option<InstallTarget>,
}

impl Plan {
    /// Whether applying it changes anything.
    pub fn changes_anything(&self) -> bool {
        !self.steps.is_empty()
    }
}

/// Plans an install (or re-apply, or upgrade) of `lock` as an instance.
pub fn install(lock: &Lock, opts: &InstallOptions, facts: &HostFacts) -> Result<Plan> {
    let lock_digest = lock.digest()?;
    let layout = &opts.layout;
    let instance = &opts.instance;
    let previous = facts.previous.as_ref();
    if let Some(prev) = previous {
        if prev.major != lock.major() {
            return Err(Error::host(format!(
                "instance {instance} runs PostgreSQL {}; this lock is for {}: a major upgrade needs pg_upgrade",
                prev.major,
                lock.major()
            ))
            .hint("install the new major as another --instance and use pg_upgrade between them"));
        }
    }
    super::preflight::refuse_failed(&super::preflight::checks(lock, &facts.preflight))?;
    let data_dir = facts.data_dir.path.clone();
    if let (Some(asked), Some(prev)) = (&opts.data_dir, previous) {
        if layout.host(asked) != prev.data_dir {
            return Err(Error::usage(format!(
                "instance {instance} already uses data dir {}; --data-dir {} differs",
                prev.data_dir.display(),
                asked.display()
            )));
        }
    }
    let needs_initdb = check_data_dir(lock, instance, facts)?;
    if needs_initdb {
        facts.locales.refuse_missing()?;
    }
    let mut warnings = Vec::new();
    let port = choose_port(opts, facts, &mut warnings)?;
    let service = opts
        .service
        .or(previous.map(|p| p.service))
        .unwrap_or(facts.default_service);

    // The generation: the current one when it was composed from this very
    // lock (a re-run), else the next number.
    let reuse = previous
        .and_then(|p| p.current_generation())
        .filter(|g| g.lock_digest == lock_digest && facts.current_generation_dir_exists)
        .cloned();
    let generation = match &reuse {
        Some(g) => g.name.clone(),
        None => next_generation_name(previous, &lock_digest),
    };
    let gen_dir = layout.generation(instance, &generation);
    let socket_dir = layout.socket_dir(instance);
    let log_dir = layout.log_dir(instance);

    let mut steps = Vec::new();
    if reuse.is_none() {
        let artifacts = std::iter::once((
            Role::Server,
            "postgresql",
            &lock.server.version,
            &lock.server.pinned,
        ))
        .chain(
            lock.extensions
                .iter()
                .map(|e| (Role::Extension, e.name.as_str(), &e.version, &e.pinned)),
        );
        for (role, name, version, pinned) in artifacts {
            if !facts.store_has.contains(pinned.digest.hex()) {
                steps.push(Step::Unpack {
                    role,
                    name: name.to_string(),
                    version: version.clone(),
                    digest: pinned.digest.clone(),
                    bytes: pinned.download_size(),
                });
            }
        }
        steps.push(Step::Compose {
            generation: generation.clone(),
        });
    }
    if facts.account.is_none() {
        steps.push(Step::CreateUser {
            user: opts.user.clone(),
        });
    }
    if needs_initdb {
        steps.push(Step::InitDataDir {
            data_dir: data_dir.clone(),
        });
    }

    // Config and service files: a new generation changes both (its path is
    // in them); on a re-run, only what renders differently.
    let settings = &opts.settings;
    let conf_path = data_dir.join("pgoci.conf");
    let config_changed = match &reuse {
        None => true,
        Some(_) => {
            let text = config::render(
                lock,
                &config::ConfigInput {
                    instance,
                    generation: &gen_dir,
                    port,
                    socket_dir: &socket_dir,
                    user_settings: settings,
                },
            )?;
            if facts.config_unreadable {
                warnings.push(format!(
                    "{} cannot be read by this user: not compared (run as root to see whether it changes)",
                    conf_path.display()
                ));
                false
            } else {
                facts.config.as_deref() != Some(text.as_str()) || !facts.include_line_present
            }
        }
    };
    if config_changed {
        steps.push(Step::WriteConfig { path: conf_path });
    }
    let manager = service::manager(service, layout);
    let service_files_changed = match (&reuse, &facts.account) {
        (Some(g), Some(account)) => {
            let spec = service_spec(opts, g, &facts.generation_env, account, &data_dir, port);
            manager
                .render(&spec)?
                .iter()
                .any(|(path, text)| facts.service_files.get(path) != Some(&Some(text.clone())))
        }
        _ => !manager.files(instance).is_empty(),
    };
    if service_files_changed {
        steps.push(Step::WriteServiceFiles {
            service,
            files: manager.files(instance),
        });
    }
    let switching = reuse.is_none()
        || facts.current_link.as_deref() != Some(generation.as_str())
        || previous.is_none_or(|p| p.current != generation);
    if switching {
        steps.push(Step::Switch {
            from: previous.map(|p| p.current.clone()),
            to: generation.clone(),
        });
    }
    if !opts.no_start {
        // A server still on another generation (a run killed after the
        // switch) moves over too.
        let elsewhere = facts
            .running_generation
            .as_ref()
            .is_some_and(|g| *g != generation);
        let changed = switching || config_changed || service_files_changed || elsewhere;
        if facts.server_running && changed {
            steps.push(Step::Restart { service });
        } else if !facts.server_running {
            steps.push(Step::Start { service });
        }
    }
    Ok(Plan {
        instance: InstanceSummary {
            name: instance.clone(),
            major: lock.major(),
            version: reuse
                .as_ref()
                .map(|g| g.server_version.clone())
                .unwrap_or_else(|| lock.server.version.clone()),
            port,
            data_dir: data_dir.clone(),
            socket_dir: socket_dir.clone(),
            generation: generation.clone(),
            service,
            user: opts.user.clone(),
        },
        steps,
        warnings,
        install: Some(InstallTarget {
            lock_digest,
            generation,
            reuse_generation: reuse,
            data_dir,
            port,
            service,
            socket_dir,
            log_dir,
            data_dir_existed: matches!(facts.data_dir.state, DataDirState::Empty),
        }),
    })
}

/// The service spec of an instance on a generation.
pub fn service_spec(
    opts: &InstallOptions,
    gen: &GenerationState,
    env: &RuntimeEnv,
    account: &Account,
    data_dir: &std::path::Path,
    port: u16,
) -> ServiceSpec {
    super::facts::spec_on_generation(
        &opts.layout,
        &opts.instance,
        gen,
        account,
        env,
        data_dir,
        port,
    )
}

/// `<n>-<lock12>`, n one more than any generation so far.
pub fn next_generation_name(previous: Option<&InstanceState>, lock_digest: &Digest) -> String {
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
    format!("{n}-{}", &lock_digest.hex()[..12])
}

/// Decides whether initdb must run, or refuses a data directory that is
/// not ours to touch. Data is sacred: a directory that looks wrong stops
/// the command; nothing is ever removed to start over.
fn check_data_dir(lock: &Lock, instance: &InstanceName, facts: &HostFacts) -> Result<bool> {
    let dd = &facts.data_dir;
    let shown = dd.path.display();
    if let Some(o) = facts.others.iter().find(|o| o.data_dir == dd.path) {
        return Err(Error::host(format!(
            "data dir {shown} belongs to instance {}",
            o.instance
        ))
        .hint("pass another --data-dir"));
    }
    let ours = facts.previous.as_ref();
    match (&dd.state, ours) {
        (DataDirState::NotADirectory, _) => Err(Error::host(format!(
            "data dir {shown} exists and is not a directory"
        ))
        .hint("pass a new or empty directory as --data-dir")),
        (DataDirState::Initialised { major }, _) if *major != Some(lock.major()) => {
            Err(Error::host(format!(
                "data dir {shown} holds PostgreSQL {} data; this lock is for {}",
                major.map_or("unknown".to_string(), |m| m.to_string()),
                lock.major()
            ))
            .hint("use another --data-dir, or pg_upgrade the data first"))
        }
        (DataDirState::Initialised { .. }, Some(_)) => Ok(false),
        // Without root the data directory cannot be looked into: what the
        // instance recorded stands (an apply, as root, looks again).
        (DataDirState::Unreadable, Some(prev)) if prev.data_dir_complete => Ok(false),
        (DataDirState::Unreadable, _) => Err(Error::host(format!(
            "data dir {shown} cannot be read by this user"
        ))
        .hint("run as root (or the directory's owner)")),
        (DataDirState::Initialised { .. }, None) => Err(Error::host(format!(
            "data dir {shown} already holds a PostgreSQL cluster that pgoci did not create"
        ))
        .hint("pass an empty or new --data-dir (pgoci never adopts existing data)")),
        (DataDirState::NonEmpty, None) => Err(Error::host(format!(
            "data dir {shown} is not empty and was not created by pgoci; refusing to touch it"
        ))
        .hint("pass an empty or new --data-dir")),
        (DataDirState::NonEmpty, Some(_)) => Err(Error::host(format!(
            "data dir {shown} of instance {instance} has files but no PG_VERSION; refusing to touch it"
        ))
        .hint("is its volume mounted, or a restore half done? fix it and run again; pgoci never removes data")),
        (DataDirState::Absent | DataDirState::Empty, Some(prev)) if prev.data_dir_complete => {
            Err(Error::host(format!(
                "data dir {shown} of instance {instance} is gone or empty although it was initialised"
            ))
            .hint("mount or restore the data directory; pgoci will not initialise it again"))
        }
        (DataDirState::Absent | DataDirState::Empty, _) => Ok(true),
    }
}

/// The port: given, kept from the previous install, or the first free one
/// from 5432 (with a warning when it had to move).
fn choose_port(
    opts: &InstallOptions,
    facts: &HostFacts,
    warnings: &mut Vec<String>,
) -> Result<u16> {
    let previous = facts.previous.as_ref();
    if let Some(p) = opts.port.or(previous.map(|s| s.port)) {
        if let Some(o) = facts.others.iter().find(|o| o.port == p) {
            return Err(
                Error::host(format!("port {p} is used by instance {}", o.instance))
                    .hint("pass another --port"),
            );
        }
        let ours = previous.is_some_and(|s| s.port == p);
        if !ours && !facts.requested_port_free {
            return Err(Error::host(format!("port {p} is taken by another program"))
                .hint("pass another --port"));
        }
        return Ok(p);
    }
    let p = facts
        .first_free_port
        .ok_or_else(|| Error::host("no free port at or above 5432").hint("pass --port"))?;
    if p != DEFAULT_PORT {
        warnings.push(format!("port {DEFAULT_PORT} is taken; using {p}"));
    }
    Ok(p)
}

/// Plans a rollback to the generation before the current one.
pub fn rollback(facts: &LifecycleFacts) -> Result<Plan> {
    let st = facts.state.as_ref().ok_or_else(|| no_instance(facts))?;
    let pos = st
        .generations
        .iter()
        .position(|g| g.name == st.current)
        .ok_or_else(|| {
            Error::host(format!(
                "instance {}: current generation is not recorded",
                st.instance
            ))
            .hint("state.json was edited or is damaged; restore it")
        })?;
    if pos == 0 {
        return Err(Error::usage(format!(
            "instance {} has no generation before {}",
            st.instance, st.current
        )));
    }
    let target = &st.generations[pos - 1];
    if target.major().is_some_and(|m| m != st.major) {
        return Err(Error::host(format!(
            "instance {}: generation {} is PostgreSQL {}, the data is PostgreSQL {}; the major upgrade between them was finalized",
            st.instance,
            target.name,
            target.major().unwrap_or(0),
            st.major
        ))
        .hint("restore the old major from a backup if you must go back"));
    }
    let files = service::manager(st.service, &facts.layout).files(&st.instance);
    let mut steps = vec![Step::WriteConfig {
        path: st.data_dir.join("pgoci.conf"),
    }];
    if !files.is_empty() {
        steps.push(Step::WriteServiceFiles {
            service: st.service,
            files,
        });
    }
    steps.push(Step::Switch {
        from: Some(st.current.clone()),
        to: target.name.clone(),
    });
    steps.push(match facts.server_running {
        true => Step::Restart {
            service: st.service,
        },
        false => Step::Start {
            service: st.service,
        },
    });
    Ok(Plan {
        instance: summary(st, target),
        steps,
        warnings: Vec::new(),
        install: None,
    })
}

/// Plans an uninstall: stop, remove the service files and the instance;
/// the data directory only with `purge`, and only one pgoci created and
/// completed. An instance already gone is an empty plan.
pub fn uninstall(facts: &LifecycleFacts, purge: bool) -> Result<Plan> {
    let Some(st) = facts.state.as_ref() else {
        return Ok(Plan {
            instance: InstanceSummary {
                name: facts.instance.clone(),
                major: 0,
                version: String::new(),
                port: 0,
                data_dir: PathBuf::new(),
                socket_dir: PathBuf::new(),
                generation: String::new(),
                service: ServiceKind::None,
                user: String::new(),
            },
            steps: Vec::new(),
            warnings: Vec::new(),
            install: None,
        });
    };
    if purge && !(st.data_dir_created && st.data_dir_complete) {
        return Err(Error::host(format!(
            "data dir {} was not created (and initialised) by pgoci; --purge will not delete it",
            st.data_dir.display()
        ))
        .hint("uninstall without --purge and remove it yourself if you are sure"));
    }
    let mut steps = Vec::new();
    if facts.server_running {
        steps.push(Step::Stop {
            service: st.service,
        });
    }
    let present: Vec<PathBuf> = facts
        .service_files
        .iter()
        .filter(|(_, content)| content.is_some())
        .map(|(p, _)| p.clone())
        .collect();
    if !present.is_empty() {
        steps.push(Step::RemoveServiceFiles { files: present });
    }
    // Data before the instance: a run killed in between still has the
    // state that says the data is ours to purge, so a re-run finishes.
    if purge {
        steps.push(Step::PurgeData {
            data_dir: st.data_dir.clone(),
        });
    }
    steps.push(Step::RemoveInstance {
        dir: facts.layout.instance(&st.instance),
    });
    let current = st.current_generation().cloned();
    Ok(Plan {
        instance: match &current {
            Some(g) => summary(st, g),
            None => summary_without_generation(st),
        },
        steps,
        warnings: Vec::new(),
        install: None,
    })
}

fn no_instance(facts: &LifecycleFacts) -> Error {
    unknown_instance(&facts.layout, &facts.instance)
}

/// The refusal for an instance that is not installed (exit 2).
pub fn unknown_instance(layout: &super::layout::HostLayout, instance: &InstanceName) -> Error {
    Error::usage(format!(
        "no instance named {instance} under {}",
        layout.prefix.display()
    ))
    .hint("`pgoci status` lists the instances")
}

/// The summary of an instance on a generation.
pub fn summary(state: &InstanceState, gen: &GenerationState) -> InstanceSummary {
    InstanceSummary {
        generation: gen.name.clone(),
        version: gen.server_version.clone(),
        ..summary_without_generation(state)
    }
}

fn summary_without_generation(state: &InstanceState) -> InstanceSummary {
    InstanceSummary {
        name: state.instance.clone(),
        major: state.major,
        version: String::new(),
        port: state.port,
        data_dir: state.data_dir.clone(),
        socket_dir: state.socket_dir.clone(),
        generation: state.current.clone(),
        service: state.service,
        user: state.user.clone(),
    }
}

/// What gc found to remove, with sizes.
pub fn gc(unused_store: BTreeMap<String, u64>, unused_blobs: BTreeMap<Digest, u64>) -> Vec<Step> {
    let mut steps: Vec<Step> = unused_store
        .into_iter()
        .map(|(entry, bytes)| Step::RemoveStoreEntry { entry, bytes })
        .collect();
    steps.extend(
        unused_blobs
            .into_iter()
            .map(|(digest, bytes)| Step::RemoveCacheBlob { digest, bytes }),
    );
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main() -> InstanceName {
        InstanceName::parse("main").unwrap()
    }
    use crate::install::facts::DataDirFacts;
    use crate::install::layout::HostLayout;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn opts() -> InstallOptions {
        InstallOptions::new(
            HostLayout::new(Path::new("/r"), Path::new("/opt/pgoci")),
            &main(),
        )
    }

    /// A host with nothing of pgoci on it, port 5432 free.
    fn bare_host() -> HostFacts {
        HostFacts {
            is_root: false,
            default_service: ServiceKind::None,
            previous: None,
            others: Vec::new(),
            data_dir: DataDirFacts {
                path: "/r/var/lib/pgoci/main/data".into(),
                state: DataDirState::Absent,
            },
            requested_port_free: true,
            first_free_port: Some(5432),
            account: None,
            store_has: BTreeSet::new(),
            current_generation_dir_exists: false,
            generation_env: RuntimeEnv::default(),
            config: None,
            config_unreadable: false,
            include_line_present: false,
            service_files: BTreeMap::new(),
            current_link: None,
            server_running: false,
            running_generation: None,
            preflight: crate::install::preflight::PreflightFacts {
                host_platform: "linux/amd64".parse().unwrap(),
                free_bytes: Some(10 << 30),
                useradd: true,
                user_exists: true,
            },
            locales: Default::default(),
        }
    }

    fn kinds(plan: &Plan) -> Vec<&'static str> {
        plan.steps.iter().map(Step::kind).collect()
    }

    #[test]
    fn first_install_on_a_bare_host_does_everything_without_root() {
        let lock = crate::lock::tests::sample();
        let plan = install(&lock, &opts(), &bare_host()).unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "unpack",
                "unpack",
                "compose",
                "create_user",
                "init_data_dir",
                "write_config",
                "switch",
                "start"
            ]
        );
        assert_eq!(plan.instance.port, 5432);
        assert!(plan.instance.generation.starts_with("1-"));
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn systemd_adds_the_unit_and_store_hits_skip_unpacking() {
        let lock = crate::lock::tests::sample();
        let mut facts = bare_host();
        facts.default_service = ServiceKind::Systemd;
        facts
            .store_has
            .insert(lock.server.pinned.digest.hex().to_string());
        let plan = install(&lock, &opts(), &facts).unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "unpack",
                "compose",
                "create_user",
                "init_data_dir",
                "write_config",
                "write_service_files",
                "switch",
                "start"
            ]
        );
        let Step::WriteServiceFiles { files, .. } = &plan.steps[5] else {
            panic!()
        };
        assert_eq!(
            files,
            &[PathBuf::from("/r/etc/systemd/system/pgoci-main.service")]
        );
    }

    #[test]
    fn a_taken_port_moves_with_a_warning_or_refuses_when_asked_for() {
        let lock = crate::lock::tests::sample();
        let mut facts = bare_host();
        facts.first_free_port = Some(5433);
        let plan = install(&lock, &opts(), &facts).unwrap();
        assert_eq!(plan.instance.port, 5433);
        assert_eq!(plan.warnings, ["port 5432 is taken; using 5433"]);
        facts.requested_port_free = false;
        let mut o = opts();
        o.port = Some(5432);
        let e = install(&lock, &o, &facts).unwrap_err();
        assert_eq!(e.kind, crate::Kind::Host);
    }

    #[test]
    fn data_dirs_that_are_not_ours_stop_the_plan() {
        let lock = crate::lock::tests::sample();
        for state in [
            DataDirState::NotADirectory,
            DataDirState::NonEmpty,
            DataDirState::Initialised { major: Some(15) },
        ] {
            let mut facts = bare_host();
            facts.data_dir.state = state.clone();
            let e = install(&lock, &opts(), &facts).unwrap_err();
            assert_eq!(e.kind, crate::Kind::Host, "{state:?}: {}", e.message);
            assert!(e.hint.is_some());
        }
    }

    #[test]
    fn an_initialised_instance_whose_data_vanished_is_never_initialised_again() {
        let lock = crate::lock::tests::sample();
        let mut facts = bare_host();
        let mut prev = sample_state(&lock);
        prev.data_dir_complete = true;
        facts.previous = Some(prev);
        facts.data_dir.state = DataDirState::Empty;
        let e = install(&lock, &opts(), &facts).unwrap_err();
        assert_eq!(e.kind, crate::Kind::Host);
        assert!(e.message.contains("gone or empty"), "{}", e.message);
    }

    #[test]
    fn a_rerun_of_the_same_lock_with_everything_in_place_is_empty() {
        let lock = crate::lock::tests::sample();
        let o = opts();
        let prev = sample_state(&lock);
        let gen = prev.current_generation().unwrap().clone();
        let mut facts = bare_host();
        facts.account = Some(Account {
            name: "postgres".into(),
            uid: 1,
            gid: 1,
            group: "postgres".into(),
        });
        facts.data_dir.state = DataDirState::Initialised { major: Some(15) };
        facts.current_generation_dir_exists = true;
        facts.current_link = Some(gen.name.clone());
        facts.server_running = true;
        facts.include_line_present = true;
        facts.config = Some(
            config::render(
                &lock,
                &config::ConfigInput {
                    instance: "main",
                    generation: &o.layout.generation(&main(), &gen.name),
                    port: 5432,
                    socket_dir: &o.layout.socket_dir(&main()),
                    user_settings: &BTreeMap::new(),
                },
            )
            .unwrap(),
        );
        facts.previous = Some(prev);
        let plan = install(&lock, &o, &facts).unwrap();
        assert_eq!(kinds(&plan), Vec::<&str>::new());
        assert!(!plan.changes_anything());
        // A changed setting rewrites the config and restarts.
        let mut o2 = o.clone();
        o2.settings.insert("work_mem".into(), "64MB".into());
        let plan = install(&lock, &o2, &facts).unwrap();
        assert_eq!(kinds(&plan), ["write_config", "restart"]);
        // A server still on an older generation is moved over.
        facts.running_generation = Some("0-older".into());
        let plan = install(&lock, &o, &facts).unwrap();
        assert_eq!(kinds(&plan), ["restart"]);
        facts.running_generation = None;
        // A stopped server is started.
        facts.server_running = false;
        let plan = install(&lock, &o, &facts).unwrap();
        assert_eq!(kinds(&plan), ["start"]);
    }

    #[test]
    fn another_major_is_refused() {
        let lock = crate::lock::tests::sample();
        let mut facts = bare_host();
        let mut prev = sample_state(&lock);
        prev.major = 14;
        facts.previous = Some(prev);
        let e = install(&lock, &opts(), &facts).unwrap_err();
        assert!(e.message.contains("pg_upgrade"));
    }

    #[test]
    fn uninstall_and_rollback_plans() {
        let lock = crate::lock::tests::sample();
        let layout = opts().layout;
        let mut st = sample_state(&lock);
        let mut facts = LifecycleFacts {
            layout: layout.clone(),
            instance: main(),
            state: None,
            server_running: true,
            service_files: BTreeMap::new(),
        };
        assert!(uninstall(&facts, true).unwrap().steps.is_empty());
        facts.state = Some(st.clone());
        facts.state = Some(st.clone());
        assert_eq!(
            uninstall(&facts, false)
                .unwrap()
                .steps
                .iter()
                .map(Step::kind)
                .collect::<Vec<_>>(),
            ["stop", "remove_instance"]
        );
        // Purge only what pgoci created and completed.
        st.data_dir_created = false;
        facts.state = Some(st.clone());
        assert!(uninstall(&facts, true).is_err());
        st.data_dir_created = true;
        facts.state = Some(st.clone());
        let steps = uninstall(&facts, true).unwrap().steps;
        assert_eq!(
            steps.iter().map(Step::kind).collect::<Vec<_>>(),
            ["stop", "purge_data", "remove_instance"]
        );
        // Rollback needs an earlier generation.
        assert_eq!(rollback(&facts).unwrap_err().kind, crate::Kind::Usage);
        let mut older = st.generations[0].clone();
        older.name = "0-older".into();
        st.generations.insert(0, older);
        facts.state = Some(st);
        let plan = rollback(&facts).unwrap();
        assert_eq!(
            plan.steps.iter().map(Step::kind).collect::<Vec<_>>(),
            ["write_config", "switch", "restart"]
        );
        assert_eq!(plan.instance.generation, "0-older");
    }

    fn sample_state(lock: &Lock) -> InstanceState {
        let digest = lock.digest().unwrap();
        let name = format!("1-{}", &digest.hex()[..12]);
        InstanceState {
            instance: main(),
            major: lock.major(),
            port: 5432,
            data_dir: "/r/var/lib/pgoci/main/data".into(),
            data_dir_created: true,
            data_dir_complete: true,
            user: "postgres".into(),
            service: ServiceKind::None,
            socket_dir: "/r/run/pgoci/main".into(),
            settings: BTreeMap::new(),
            generations: vec![GenerationState {
                name: name.clone(),
                lock_digest: digest,
                server_version: lock.server.version.clone(),
                server_digest: lock.server.pinned.digest.clone(),
                extensions: Vec::new(),
                dirs: crate::install::generation::ServerDirs {
                    bin: "bin".into(),
                    sharedir: "share".into(),
                    pkglibdir: "lib".into(),
                },
                store: Vec::new(),
                major: None,
                collation: None,
            }],
            current: name,
            collation: None,
            major_upgrade: None,
        }
    }
}
