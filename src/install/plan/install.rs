//! The install planner (install, re-run, same-major upgrade): a lock, the
//! options and the host's facts to the steps of an apply.

use super::{InstallTarget, InstanceSummary, Plan, PlanError, Role, Step};
use crate::digest::Digest;
use crate::error::Result;
use crate::install::config;
use crate::install::facts::{DataDirState, HostFacts, DEFAULT_PORT};
use crate::install::runtime::RuntimeEnv;
use crate::install::service::{self, ServiceSpec};
use crate::install::state::{GenerationState, InstanceState};
use crate::install::users::Account;
use crate::install::InstallOptions;
use crate::lock::Lock;
use crate::names::InstanceName;

/// Plans an install (or re-apply, or upgrade) of `lock` as an instance.
pub fn install(lock: &Lock, opts: &InstallOptions, facts: &HostFacts) -> Result<Plan> {
    let lock_digest = lock.digest()?;
    let layout = &opts.layout;
    let instance = &opts.instance;
    let previous = facts.previous.as_ref();
    if let Some(prev) = previous {
        if prev.major != lock.major() {
            return Err(PlanError::OtherMajor {
                instance: instance.clone(),
                running: prev.major,
                lock: lock.major(),
            }
            .into());
        }
    }
    crate::install::preflight::refuse_failed(&crate::install::preflight::checks(
        lock,
        &facts.preflight,
    ))?;
    let data_dir = facts.data_dir.path.clone();
    if let (Some(asked), Some(prev)) = (&opts.data_dir, previous) {
        if layout.host(asked) != prev.data_dir {
            return Err(PlanError::DataDirChanged {
                instance: instance.clone(),
                recorded: prev.data_dir.clone(),
                asked: asked.clone(),
            }
            .into());
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
    crate::install::facts::spec_on_generation(
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
    let path = || dd.path.clone();
    let instance = || instance.clone();
    if let Some(o) = facts.others.iter().find(|o| o.data_dir == dd.path) {
        return Err(PlanError::DataDirOfAnother {
            path: path(),
            owner: o.instance.clone(),
        }
        .into());
    }
    let ours = facts.previous.as_ref();
    match (&dd.state, ours) {
        (DataDirState::NotADirectory, _) => {
            Err(PlanError::DataDirNotADirectory { path: path() }.into())
        }
        (DataDirState::Initialised { major }, _) if *major != Some(lock.major()) => {
            Err(PlanError::DataDirOtherMajor {
                path: path(),
                found: *major,
                lock: lock.major(),
            }
            .into())
        }
        (DataDirState::Initialised { .. }, Some(_)) => Ok(false),
        // Without root the data directory cannot be looked into: what the
        // instance recorded stands (an apply, as root, looks again).
        (DataDirState::Unreadable, Some(prev)) if prev.data_dir_complete => Ok(false),
        (DataDirState::Unreadable, _) => Err(PlanError::DataDirUnreadable { path: path() }.into()),
        (DataDirState::Initialised { .. }, None) => {
            Err(PlanError::DataDirForeignCluster { path: path() }.into())
        }
        (DataDirState::NonEmpty, None) => Err(PlanError::DataDirNotPgocis { path: path() }.into()),
        (DataDirState::NonEmpty, Some(_)) => Err(PlanError::DataDirWithoutVersion {
            path: path(),
            instance: instance(),
        }
        .into()),
        (DataDirState::Absent | DataDirState::Empty, Some(prev)) if prev.data_dir_complete => {
            Err(PlanError::DataDirGone {
                path: path(),
                instance: instance(),
            }
            .into())
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
            return Err(PlanError::PortOfInstance {
                port: p,
                owner: o.instance.clone(),
            }
            .into());
        }
        let ours = previous.is_some_and(|s| s.port == p);
        if !ours && !facts.requested_port_free {
            return Err(PlanError::PortTaken { port: p }.into());
        }
        return Ok(p);
    }
    let p = facts.first_free_port.ok_or(PlanError::NoFreePort)?;
    if p != DEFAULT_PORT {
        warnings.push(format!("port {DEFAULT_PORT} is taken; using {p}"));
    }
    Ok(p)
}
