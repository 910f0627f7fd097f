//! The lifecycle planners: rollback to the previous generation, uninstall.

use super::{InstanceSummary, Plan, PlanError, Step};
use crate::error::{Error, Result};
use crate::install::facts::LifecycleFacts;
use crate::install::service::{self, ServiceKind};
use crate::install::state::{GenerationState, InstanceState};
use crate::names::InstanceName;
use std::path::PathBuf;

/// Plans a rollback to the generation before the current one.
pub fn rollback(facts: &LifecycleFacts) -> Result<Plan> {
    let st = facts.state.as_ref().ok_or_else(|| no_instance(facts))?;
    let pos = st
        .generations
        .iter()
        .position(|g| g.name == st.current)
        .ok_or_else(|| PlanError::CurrentNotRecorded {
            instance: st.instance.clone(),
        })?;
    if pos == 0 {
        return Err(PlanError::NoEarlierGeneration {
            instance: st.instance.clone(),
            current: st.current.clone(),
        }
        .into());
    }
    let target = &st.generations[pos - 1];
    if target.major().is_some_and(|m| m != st.major) {
        return Err(PlanError::MajorFinalized {
            instance: st.instance.clone(),
            generation: target.name.clone(),
            generation_major: target.major().unwrap_or(0),
            data_major: st.major,
        }
        .into());
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
        return Err(PlanError::PurgeNotPgocis {
            path: st.data_dir.clone(),
        }
        .into());
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
pub fn unknown_instance(
    layout: &crate::install::layout::HostLayout,
    instance: &InstanceName,
) -> Error {
    PlanError::UnknownInstance {
        instance: instance.clone(),
        prefix: layout.prefix.clone(),
    }
    .into()
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
