//! `pgoci upgrade`: a new lock onto an existing instance (same major:
//! through the install planner), or a major upgrade with pg_upgrade, and
//! `--finalize`.

use super::install::{execute, open_bundle, Source};
use super::settings::{parse_instance_name, FlagError};
use super::{
    output::{say, Outcome},
    prompt,
    pull::pull_lock,
    Context,
};
use crate::cli::{ChangeArgs, UpgradeArgs};
use pgoci::blobs::{BlobSource, NoBlobs};
use pgoci::error::{Error, Result};
use pgoci::install::InstallOptions;
use pgoci::lock::Lock;

/// `pgoci upgrade`: the install of a new lock onto an existing instance,
/// keeping everything the instance recorded.
pub fn run(ctx: &Context, args: &UpgradeArgs) -> Result<Outcome> {
    let instance = parse_instance_name(&args.instance)?;
    let layout = ctx.layout();
    if args.finalize {
        return finalize(ctx, &instance, &args.change);
    }
    let state = pgoci::install::state::InstanceState::read(&layout.instance(&instance))?
        .ok_or_else(|| pgoci::install::plan::unknown_instance(&layout, &instance))?;
    if let Some(major) = args.major.filter(|m| {
        *m != state.major
            || state
                .major_upgrade
                .as_ref()
                .is_some_and(|r| r.to_major == *m)
    }) {
        return major_upgrade(ctx, args, major);
    }
    let (lock, source) = match (&args.bundle, &args.lock) {
        (Some(path), _) => {
            // A site bundle holds a lock per major: the instance's is meant.
            let bundle = open_bundle(path, &[], Some(state.major))?;
            (bundle.lock.clone(), Source::Bundle(Box::new(bundle)))
        }
        (None, Some(lock)) => (Lock::read(lock)?, Source::Registry),
        (None, None) if !args.ext.is_empty() => {
            let request = crate::cli::LockSource {
                lock: Vec::new(),
                request: crate::cli::RequestArgs {
                    major: Some(state.major),
                    ext: args.ext.clone(),
                },
            };
            (ctx.lock(&request)?, Source::Registry)
        }
        (None, None) => {
            return Err(Error::usage("upgrade needs a new lock")
                .hint("pass --bundle PATH, --lock FILE or --ext NAME,… (the complete new set)"))
        }
    };
    let interactive = prompt::interactive(args.change.yes || args.change.check, ctx.settings.json);
    if state
        .major_upgrade
        .as_ref()
        .is_some_and(|r| r.phase != pgoci::install::major::Phase::Done)
    {
        return Err(Error::host(format!(
            "instance {instance} has an unfinished major upgrade"
        ))
        .hint(
            "run the same `upgrade --major N` again to finish it, or `pgoci rollback` to undo it",
        ));
    }
    let opts = InstallOptions {
        libraries: args.libraries.into(),
        collation: args.collation_change.map(Into::into),
        update_extensions: args.update_extensions,
        ..InstallOptions::for_upgrade(layout, &state)
    };
    execute(
        ctx,
        "upgrade",
        &lock,
        source,
        &opts,
        &args.change,
        interactive,
    )
}

/// `pgoci upgrade --major N`: the lock of the new major (bundle, lock
/// file, or resolved now), then the checked, journaled major upgrade.
fn major_upgrade(ctx: &Context, args: &UpgradeArgs, major: u32) -> Result<Outcome> {
    let instance = parse_instance_name(&args.instance)?;
    let layout = ctx.layout();
    let _guard = ctx.exclusive(&args.change)?;
    let (lock, source): (Lock, Box<dyn BlobSource>) = match (&args.bundle, &args.lock) {
        (Some(path), _) => {
            let bundle = open_bundle(path, &[], Some(major))?;
            ctx.check_signatures(&[&bundle.lock], || bundle.companions(), &bundle)?;
            (bundle.lock.clone(), Box::new(bundle))
        }
        (None, lock) => {
            let lock = match lock {
                Some(file) => Lock::read(file)?,
                None => ctx.lock(&crate::cli::LockSource {
                    lock: Vec::new(),
                    request: crate::cli::RequestArgs {
                        major: Some(major),
                        ext: args.ext.clone(),
                    },
                })?,
            };
            if lock.major() != major {
                return Err(FlagError::MajorOfLock {
                    major,
                    lock_major: lock.major(),
                }
                .into());
            }
            let stored = lock
                .artifacts()
                .all(|a| pgoci::install::store::has(&layout, &a.digest));
            let source: Box<dyn BlobSource> = if stored {
                Box::new(NoBlobs)
            } else {
                Box::new(pull_lock(ctx, &lock)?.0)
            };
            (lock, source)
        }
    };
    let request = |check: bool| pgoci::install::major::Request {
        layout: &layout,
        instance: &instance,
        lock: &lock,
        source: source.as_ref(),
        method: args.method.map(Into::into),
        collation: args.collation_change.map(Into::into),
        libraries: args.libraries.into(),
        check,
    };
    let interactive = prompt::interactive(args.change.yes || args.change.check, ctx.settings.json);
    if interactive {
        let plan = pgoci::install::major::upgrade(&request(true), ctx.reporter.as_ref())?;
        say(format_args!("Plan for instance {instance}:"));
        for a in &plan.actions {
            say(format_args!("  - {a}"));
        }
        if !prompt::confirm("Go ahead?")? {
            return Ok(Outcome::new("upgrade", false).note("cancelled: nothing changed"));
        }
    }
    let report =
        pgoci::install::major::upgrade(&request(args.change.check), ctx.reporter.as_ref())?;
    Ok(major_outcome(
        "upgrade",
        &instance,
        &report,
        args.change.check,
    ))
}

/// `pgoci upgrade --finalize`.
fn finalize(
    ctx: &Context,
    instance: &pgoci::names::InstanceName,
    change: &ChangeArgs,
) -> Result<Outcome> {
    let _guard = ctx.exclusive(change)?;
    let layout = ctx.layout();
    let plan = pgoci::install::major::finalize(&layout, instance, true)?;
    if change.check || !plan.changed {
        return Ok(major_outcome("upgrade", instance, &plan, true));
    }
    if prompt::interactive(change.yes, ctx.settings.json) {
        say(format_args!("Plan for instance {instance}:"));
        for a in &plan.actions {
            say(format_args!("  - {a}"));
        }
        if !prompt::confirm("Delete the old data for good?")? {
            return Ok(Outcome::new("upgrade", false).note("cancelled: nothing changed"));
        }
    } else if !change.yes {
        return Err(Error::usage(
            "--finalize deletes the old data directory: it needs --yes without a terminal",
        )
        .hint("add --yes, or run it at a terminal to confirm"));
    }
    let report = pgoci::install::major::finalize(&layout, instance, false)?;
    Ok(major_outcome("upgrade", instance, &report, false))
}

/// A major upgrade's (or its rollback's, or finalize's) outcome.
pub fn major_outcome(
    command: &str,
    instance: &pgoci::names::InstanceName,
    report: &pgoci::install::major::MajorReport,
    check: bool,
) -> Outcome {
    let mut outcome = Outcome::new(command, report.changed)
        .field("check", check)
        .field("instance", instance)
        .field("actions", &report.actions);
    if let Some(plan) = &report.plan {
        outcome = outcome.field("major_upgrade", plan);
    }
    if let Some(ms) = report.downtime_ms {
        outcome = outcome.field("downtime_ms", ms);
    }
    if let Some(ms) = report.analyze_ms {
        outcome = outcome.field("analyze_ms", ms);
    }
    outcome = outcome.note(if check {
        format!("plan for instance {instance} (nothing changed):")
    } else {
        format!("instance {instance}:")
    });
    for a in &report.actions {
        outcome = outcome.note(format!("  {a}"));
    }
    outcome
}
