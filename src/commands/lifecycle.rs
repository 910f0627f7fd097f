//! `pgoci rollback`, `uninstall` and `gc`: plan, show (`--check`, or a
//! question at a terminal), apply — the same shape as install.

use super::{
    output::{say, Outcome},
    prompt,
    settings::parse_instance_name,
    Context,
};
use crate::cli::ChangeArgs;
use indicatif::HumanBytes;
use pgoci::error::{Error, Result};
use pgoci::install::apply::{self, LifecycleReport};
use pgoci::install::facts::LifecycleFacts;
use pgoci::install::plan::{self, Plan, Step};
use pgoci::lock::Lock;
use pgoci::names::InstanceName;
use std::path::PathBuf;

/// The actions of a report or plan for `--json`.
fn actions(steps: &[Step], done: bool) -> Vec<serde_json::Value> {
    steps.iter().map(|s| s.to_json(done)).collect()
}

/// The `--check` answer, or the confirmation at a terminal. `Some` ends
/// the command with that outcome.
fn show_plan(
    ctx: &Context,
    command: &str,
    steps: &[Step],
    change: &ChangeArgs,
) -> Result<Option<Outcome>> {
    if change.check {
        let mut outcome = Outcome::new(command, !steps.is_empty())
            .field("check", true)
            .field("actions", actions(steps, false))
            .note(format!("plan for {command} (nothing changed):"));
        for s in steps {
            outcome = outcome.note(format!("  {}", s.describe(false)));
        }
        return Ok(Some(outcome));
    }
    if !steps.is_empty() && prompt::interactive(change.yes, ctx.settings.json) {
        say(format_args!("Plan for {command}:"));
        for s in steps {
            say(format_args!("  - {}", s.describe(false)));
        }
        if !prompt::confirm("Go ahead?")? {
            return Ok(Some(
                Outcome::new(command, false).note("cancelled: nothing changed"),
            ));
        }
    }
    Ok(None)
}

fn done(command: &str, report: &LifecycleReport) -> Outcome {
    let mut outcome = Outcome::new(command, report.changed)
        .field("check", false)
        .field("actions", actions(&report.actions, true));
    if !report.data.is_empty() {
        outcome = outcome.field("data", &report.data);
    }
    for line in &report.data {
        outcome = outcome.note(line.clone());
    }
    outcome
}

pub fn rollback(
    ctx: &Context,
    instance: &str,
    collation: Option<pgoci::install::collation::Choice>,
    change: &ChangeArgs,
) -> Result<Outcome> {
    let instance = &parse_instance_name(instance)?;
    let _guard = ctx.exclusive(change)?;
    let layout = ctx.layout();
    // Across a major upgrade: the old major on the old data directory.
    if change.check || !prompt::interactive(change.yes, ctx.settings.json) {
        if let Some(report) =
            pgoci::install::major::rollback(&layout, instance, collation, change.check)?
        {
            return Ok(super::upgrade::major_outcome(
                "rollback",
                instance,
                &report,
                change.check,
            ));
        }
    } else if let Some(plan) = pgoci::install::major::rollback(&layout, instance, collation, true)?
    {
        say(format_args!("Plan for rollback:"));
        for a in &plan.actions {
            say(format_args!("  - {a}"));
        }
        if !prompt::confirm("Go ahead?")? {
            return Ok(Outcome::new("rollback", false).note("cancelled: nothing changed"));
        }
        if let Some(report) = pgoci::install::major::rollback(&layout, instance, collation, false)?
        {
            return Ok(super::upgrade::major_outcome(
                "rollback", instance, &report, false,
            ));
        }
    }
    let facts = LifecycleFacts::gather(&layout, instance)?;
    let plan: Plan = plan::rollback(&facts)?;
    if let Some(o) = show_plan(ctx, "rollback", &plan.steps, change)? {
        return Ok(o.field("instance", instance));
    }
    let report = apply::rollback(&plan, &layout, collation, ctx.reporter.as_ref())?;
    Ok(done("rollback", &report)
        .field("instance", instance)
        .note(format!(
            "instance {instance} rolled back to generation {}",
            plan.instance.generation
        )))
}

pub fn uninstall(
    ctx: &Context,
    instance: &str,
    purge: bool,
    change: &ChangeArgs,
) -> Result<Outcome> {
    let instance = &parse_instance_name(instance)?;
    let _guard = ctx.exclusive(change)?;
    let layout = ctx.layout();
    let plan = plan::uninstall(&LifecycleFacts::gather(&layout, instance)?, purge)?;
    if purge && !change.check && !plan.steps.is_empty() {
        confirm_purge(ctx, instance, &plan, change)?;
    }
    let purge_change = ChangeArgs {
        // The purge question above is the confirmation.
        yes: change.yes || purge,
        ..change.clone()
    };
    if let Some(o) = show_plan(ctx, "uninstall", &plan.steps, &purge_change)? {
        return Ok(o.field("instance", instance).field("purged", false));
    }
    let report = apply::uninstall(&plan, &layout, ctx.reporter.as_ref())?;
    let mut outcome = done("uninstall", &report)
        .field("instance", instance)
        .field("purged", purge && report.changed);
    outcome = if report.changed {
        if !purge {
            outcome = outcome.note(format!(
                "kept data dir {}",
                plan.instance.data_dir.display()
            ));
        }
        outcome.note(format!("instance {instance} uninstalled"))
    } else {
        outcome.note(format!(
            "instance {instance} is not installed: nothing to do"
        ))
    };
    Ok(outcome)
}

/// Deleting data asks for the instance name at a terminal, and needs
/// `--yes` without one.
fn confirm_purge(
    ctx: &Context,
    instance: &InstanceName,
    plan: &Plan,
    change: &ChangeArgs,
) -> Result<()> {
    let data = plan.instance.data_dir.display();
    if prompt::interactive(change.yes, ctx.settings.json) {
        say(format_args!(
            "--purge deletes the data directory {data} of instance {instance}."
        ));
        let typed = prompt::text("Type the instance name to delete its data", String::new())?;
        if typed != instance.as_str() {
            return Err(Error::usage(format!(
                "typed {typed:?}, not {instance:?}: nothing changed"
            )));
        }
        return Ok(());
    }
    if !change.yes {
        return Err(Error::usage(format!(
            "uninstall --purge deletes {data}; confirm with --yes"
        ))
        .hint("or run it at a terminal to be asked"));
    }
    Ok(())
}

pub fn gc(ctx: &Context, keep: &[PathBuf], change: &ChangeArgs) -> Result<Outcome> {
    let keep: Vec<Lock> = keep.iter().map(|p| Lock::read(p)).collect::<Result<_>>()?;
    let cache = ctx.cache()?;
    let _guard = ctx.exclusive(change)?;
    let layout = ctx.layout();
    let steps = apply::plan_gc(&layout, Some(&cache), &keep)?;
    let (entries, blobs, bytes) = totals(&steps);
    if let Some(o) = show_plan(ctx, "gc", &steps, change)? {
        return Ok(o
            .field("store_entries", entries)
            .field("cache_blobs", blobs)
            .field("bytes_freed", 0)
            .note(format!(
                "would free {} ({entries} store entries, {blobs} cache blobs)",
                HumanBytes(bytes)
            )));
    }
    let report = apply::gc(&steps, &layout, Some(&cache), ctx.reporter.as_ref())?;
    let (entries, blobs, bytes) = totals(&report.actions);
    Ok(Outcome::new("gc", report.changed)
        .field("store_entries", entries)
        .field("cache_blobs", blobs)
        .field("bytes_freed", bytes)
        .note(format!(
            "freed {} ({entries} store entries, {blobs} cache blobs)",
            HumanBytes(bytes)
        )))
}

/// Store entries, cache blobs and bytes of gc steps.
fn totals(steps: &[Step]) -> (usize, usize, u64) {
    steps.iter().fold((0, 0, 0), |(e, b, n), s| match s {
        Step::RemoveStoreEntry { bytes, .. } => (e + 1, b, n + bytes),
        Step::RemoveCacheBlob { bytes, .. } => (e, b + 1, n + bytes),
        _ => (e, b, n),
    })
}

/// `pgoci collation --instance NAME`: the gate's state, resolved with a choice.
pub fn collation(
    ctx: &Context,
    instance: &str,
    choice: Option<pgoci::install::collation::Choice>,
    change: &ChangeArgs,
) -> Result<Outcome> {
    let instance = &parse_instance_name(instance)?;
    let _guard = ctx.exclusive(change)?;
    let layout = ctx.layout();
    let mut st = pgoci::install::state::InstanceState::read(&layout.instance(instance))?
        .ok_or_else(|| plan::unknown_instance(&layout, instance))?;
    let state = pgoci::install::datacare::gate_state(&layout, &st);
    let done = pgoci::install::datacare::resolve(&layout, &mut st, choice, change.check)?;
    let changed = !change.check && state.as_ref().is_some_and(|s| s.change.is_some());
    let mut outcome = Outcome::new("collation", changed)
        .field("check", change.check)
        .field("instance", instance)
        .field("gate", &state)
        .field("actions", &done);
    for line in &done {
        outcome = outcome.note(line.clone());
    }
    Ok(outcome)
}

/// `pgoci start-gate --instance NAME` (the unit's `ExecStartPre=`): exit 6
/// when the collation libraries changed under the data.
pub fn start_gate(ctx: &Context, instance: &str) -> Result<Outcome> {
    let instance = &parse_instance_name(instance)?;
    let layout = ctx.layout();
    let st = pgoci::install::state::InstanceState::read(&layout.instance(instance))?
        .ok_or_else(|| plan::unknown_instance(&layout, instance))?;
    pgoci::install::datacare::start_gate(&layout, &st)?;
    Ok(Outcome::new("start-gate", false).field("instance", instance))
}
