//! Applying rollback and uninstall plans.

use super::files::{write_config, write_service_files};
use super::{undo, ApplyError, LifecycleReport, Runner};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::install::facts::spec_of;
use crate::install::generation::{self};
use crate::install::layout::HostLayout;
use crate::install::plan::{Plan, Step};
use crate::install::privilege;
use crate::install::service;
use crate::install::state::InstanceState;
use crate::install::transaction::{self, Transaction};
use crate::install::users::{self, UserError};
use crate::lock::Lock;
use crate::names::InstanceName;
use crate::progress::Reporter;
use std::path::PathBuf;

/// Applies a rollback plan: config and service files of the older
/// generation, switch, restart; undone if the older server fails.
pub fn rollback(
    plan: &Plan,
    layout: &HostLayout,
    collation: Option<crate::install::collation::Choice>,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    let instance = &plan.instance.name;
    let instance_dir = layout.instance(instance);
    let mut st = InstanceState::read(&instance_dir)?.ok_or_else(|| ApplyError::NoInstance {
        instance: instance.clone(),
    })?;
    privilege::require("rollback", layout, &st.user)?;
    let target = st
        .generations
        .iter()
        .find(|g| g.name == plan.instance.generation)
        .cloned()
        .ok_or_else(|| Error::internal("rollback target vanished from the state"))?;
    let gen_dir = layout.generation(instance, &target.name);
    let lock = Lock::read(&gen_dir.join(generation::GENERATION_LOCK))?;
    let account = users::lookup(&st.user).ok_or_else(|| UserError::MissingOfInstance {
        user: st.user.clone(),
        instance: instance.clone(),
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
    let gate = crate::install::datacare::gate(
        &st,
        crate::install::datacare::data_libs(layout, &st),
        &crate::install::datacare::generation_libs(layout, &st, &target),
        crate::install::datacare::current_server(layout, &st, running).as_ref(),
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
                    tx.switch_link(&link, &PathBuf::from("generations").join(to))?;
                    failpoint::hit("after-switch");
                    Ok(((), true))
                })?,
                Step::Start { .. } | Step::Restart { .. } => runner.run(step, || {
                    if gate.is_some() {
                        // Recorded before the start: the unit's gate agrees.
                        let state = InstanceState {
                            collation: Some(crate::install::datacare::generation_libs(
                                layout, &st, &target,
                            )),
                            ..st.clone()
                        };
                        tx.write_file(
                            &InstanceState::path(&instance_dir),
                            &state.to_bytes()?,
                            0o644,
                        )?;
                    }
                    tx.restart(st.service, &spec, old_spec.as_ref())?;
                    Ok(((), true))
                })?,
                other => {
                    return Err(ApplyError::UnexpectedStep {
                        plan: "rollback",
                        step: other.kind(),
                    }
                    .into())
                }
            }
        }
        if let Some(g) = &gate {
            let server = crate::install::datacare::current_server(
                layout,
                &InstanceState {
                    current: target.name.clone(),
                    ..st.clone()
                },
                true,
            )
            .ok_or_else(|| Error::internal("rollback: no server to refresh collations on"))?;
            data = crate::install::datacare::after_switch(&server, st.major, Some(g), &[])?;
        }
        // The state last: a rollback killed before this is repeated whole.
        st.current = target.name.clone();
        st.collation = Some(crate::install::datacare::generation_libs(
            layout, &st, &target,
        ));
        tx.write_file(&InstanceState::path(&instance_dir), &st.to_bytes()?, 0o644)?;
        tx.write_file(
            &instance_dir.join("pgoci.lock"),
            lock.to_yaml()?.as_bytes(),
            0o644,
        )?;
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

/// Applies an uninstall plan in one transaction: the server stopped, its
/// service disabled and its files removed, the instance's trees (and with
/// `--purge` the data) moved aside; any failure puts all of it back and
/// starts the server again if it ran. The trees are deleted at commit.
/// A run killed midway is finished by running it again: the state file
/// goes with the instance directory, last.
pub fn uninstall(
    plan: &Plan,
    layout: &HostLayout,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    let mut runner = Runner {
        reporter,
        done: Vec::new(),
    };
    let instance = &plan.instance.name;
    finish_removal(layout, instance)?;
    if plan.steps.is_empty() {
        return Ok(LifecycleReport {
            changed: false,
            actions: Vec::new(),
            data: Vec::new(),
        });
    }
    let st =
        InstanceState::read(&layout.instance(instance))?.ok_or_else(|| ApplyError::NoInstance {
            instance: instance.clone(),
        })?;
    privilege::require("uninstall", layout, &st.user)?;
    let mut tx = Transaction::new(layout);
    match uninstall_steps(plan, layout, &st, &mut runner, &mut tx) {
        Ok(()) => tx.commit(),
        Err(e) => return Err(undo(tx, e)),
    }
    Ok(LifecycleReport {
        changed: !runner.done.is_empty(),
        actions: runner.done,
        data: Vec::new(),
    })
}

/// Deletes what an uninstall killed before its commit left moved aside
/// (the instance directory with its state, and from that state the data
/// directory's place, the socket and log directories): that run meant to
/// remove them, and a re-run finishes it. Nothing else is touched.
fn finish_removal(layout: &HostLayout, instance: &InstanceName) -> Result<()> {
    let dir = layout.instance(instance);
    if let Some(aside) = transaction::left_aside(&dir)? {
        if let Ok(Some(st)) = InstanceState::read(&aside) {
            transaction::finish_removal(&st.data_dir)?;
        }
    }
    for dir in [layout.socket_dir(instance), layout.log_dir(instance), dir] {
        transaction::finish_removal(&dir)?;
    }
    Ok(())
}

fn uninstall_steps(
    plan: &Plan,
    layout: &HostLayout,
    st: &InstanceState,
    runner: &mut Runner,
    tx: &mut Transaction,
) -> Result<()> {
    let instance = &plan.instance.name;
    for step in &plan.steps {
        match step {
            Step::Stop { .. } => runner.run(step, || {
                let Some(gen) = st.current_generation() else {
                    return Ok(((), false));
                };
                let account =
                    users::lookup(&st.user).ok_or_else(|| UserError::MissingOfInstance {
                        user: st.user.clone(),
                        instance: instance.clone(),
                    })?;
                let env = generation::read_runtime_env(&layout.generation(instance, &gen.name));
                let stopped = tx.stop(st.service, &spec_of(layout, st, gen, &account, &env))?;
                failpoint::hit("uninstall-after-stop");
                Ok(((), stopped))
            })?,
            Step::RemoveServiceFiles { files } => runner.run(step, || {
                tx.disable(st.service, instance)?;
                let mut removed = false;
                for f in files {
                    removed |= tx.remove_file(f)?;
                }
                if removed {
                    tx.reload(st.service)?;
                }
                Ok(((), removed))
            })?,
            Step::PurgeData { data_dir } => runner.run(step, || {
                let removed = tx.remove_tree(data_dir)?;
                failpoint::hit("uninstall-after-purge");
                Ok(((), removed))
            })?,
            Step::RemoveInstance { dir } => runner.run(step, || {
                for d in [layout.socket_dir(instance), layout.log_dir(instance)] {
                    tx.remove_tree(&d)?;
                }
                let removed = tx.remove_tree(dir)?;
                failpoint::hit("uninstall-after-remove");
                Ok(((), removed))
            })?,
            other => {
                return Err(ApplyError::UnexpectedStep {
                    plan: "uninstall",
                    step: other.kind(),
                }
                .into())
            }
        }
    }
    Ok(())
}
