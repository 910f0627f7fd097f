//! `pgoci install` and `pgoci upgrade`: pick the source (bundle, lock, or
//! resolve now; asking on a terminal for what is missing), show the plan,
//! then hand over to the library's install.

use super::{
    output::{human_bytes, Outcome},
    prompt,
    pull::pull_lock,
    Context,
};
use crate::cli::InstallArgs;
use pgoci::blobs::BlobSource;
use pgoci::bundle::Bundle;
use pgoci::error::{Error, Result};
use pgoci::install::{self, state::ServiceKind, InstallOptions, InstallReport};
use pgoci::lock::Lock;
use serde_json::json;
use std::collections::BTreeMap;

/// Where the blobs of the lock will come from.
enum Source {
    Bundle(Box<Bundle>),
    /// Pulled into the cache (after confirmation).
    Registry,
}

pub async fn run(ctx: &Context, args: &InstallArgs) -> Result<Outcome> {
    let interactive = prompt::interactive(args.yes || args.check, ctx.global.json);
    let settings = parse_settings(&args.set)?;
    let mut args = args.clone();
    let (lock, source) = if let Some(path) = &args.bundle {
        let bundle = match &args.source.lock {
            Some(lock) => Bundle::open_with_lock(path, Lock::read(lock)?)?,
            None => Bundle::open(path)?,
        };
        (bundle.lock.clone(), Source::Bundle(Box::new(bundle)))
    } else {
        if args.source.lock.is_none() && args.source.request.major.is_none() {
            if !interactive {
                return Err(Error::usage("install needs a source and none was given")
                    .hint("pass --bundle PATH, --lock FILE or --major N [--ext NAME,…]"));
            }
            let profile = ctx.profile()?;
            let major = prompt::major(&profile)?;
            args.source.request.major = Some(major);
            args.source.request.ext = prompt::extensions(&profile, major)?;
        }
        (ctx.lock(&args.source).await?, Source::Registry)
    };
    let layout = ctx.layout();
    let instance = match &args.instance {
        Some(i) => i.clone(),
        None if interactive => prompt::text("Instance name", format!("pg{}", lock.major()))?,
        None => format!("pg{}", lock.major()),
    };
    let mut opts = InstallOptions {
        layout: layout.clone(),
        port: args.port,
        data_dir: args.data_dir.clone(),
        user: args.user.clone(),
        service: args.service.as_deref().map(|s| match s {
            "systemd" => ServiceKind::Systemd,
            _ => ServiceKind::None,
        }),
        no_start: args.no_start,
        settings,
        locale: args.locale.clone(),
        encoding: args.encoding.clone(),
        auth: args.auth.clone(),
        check: true,
        instance,
    };
    let existing = install::state::InstanceState::read(&layout.instance(&opts.instance))?;
    if interactive && existing.is_none() {
        if opts.port.is_none() {
            opts.port = Some(prompt::port(install::suggested_port(
                &layout,
                &opts.instance,
            )?)?);
        }
        if opts.data_dir.is_none() {
            let default = std::path::Path::new("/var/lib/pgoci")
                .join(&opts.instance)
                .join("data");
            opts.data_dir = Some(prompt::data_dir(default)?);
        }
    }
    // The plan first: with --check it is the answer; on a terminal it is
    // shown before anything is downloaded or changed.
    let plan = tokio::task::block_in_place(|| {
        install::install(&lock, &pgoci::blobs::NoBlobs, &opts, ctx.reporter.as_ref())
    })?;
    if args.check {
        return Ok(outcome(&lock, &plan, true));
    }
    if interactive {
        eprintln!(
            "{}",
            plan_text(&lock, &plan, matches!(source, Source::Registry))
        );
        if !prompt::confirm("Go ahead?")? {
            return Ok(Outcome::new("install", false).note("cancelled: nothing changed"));
        }
    }
    opts.check = false;
    let blobs: Box<dyn BlobSource> = match source {
        Source::Bundle(b) => b,
        Source::Registry => Box::new(pull_lock(ctx, &lock).await?.0),
    };
    let report = tokio::task::block_in_place(|| {
        install::install(&lock, blobs.as_ref(), &opts, ctx.reporter.as_ref())
    })?;
    Ok(outcome(&lock, &report, false))
}

/// The plan as a person reads it.
fn plan_text(lock: &Lock, plan: &InstallReport, download: bool) -> String {
    let i = &plan.instance;
    let mut text = format!(
        "Plan for instance {}: PostgreSQL {} ({}){}\n",
        i.name,
        lock.server.version,
        lock.platform,
        if download {
            format!(", download up to {}", human_bytes(lock.download_size()))
        } else {
            format!(", {} from the bundle", human_bytes(lock.download_size()))
        }
    );
    for e in &lock.extensions {
        text.push_str(&format!("  extension {} {}\n", e.name, e.version));
    }
    text.push_str(&format!(
        "  port {}, data dir {}, user {}, service {}\n",
        i.port,
        i.data_dir.display(),
        i.user,
        match i.service {
            ServiceKind::Systemd => "systemd",
            ServiceKind::None => "none (pg_ctl)",
        }
    ));
    for a in &plan.actions {
        text.push_str(&format!("  - {a}\n"));
    }
    text
}

fn outcome(lock: &Lock, report: &InstallReport, check: bool) -> Outcome {
    let extensions: Vec<_> = lock
        .extensions
        .iter()
        .map(|e| json!({"name": e.name, "version": e.version, "digest": e.pinned.digest}))
        .collect();
    let i = &report.instance;
    let mut outcome = Outcome::new("install", report.changed)
        .field("check", check)
        .field("instance", &report.instance)
        .field(
            "server",
            json!({"major": lock.major(), "version": i.version, "digest": lock.server.pinned.digest}),
        )
        .field("extensions", extensions)
        .field("actions", &report.actions)
        .field("warnings", &report.warnings);
    for w in &report.warnings {
        outcome = outcome.note(format!("warning: {w}"));
    }
    if check {
        outcome = outcome.note(format!("plan for instance {} (nothing changed):", i.name));
        for a in &report.actions {
            outcome = outcome.note(format!("  {a}"));
        }
        return outcome;
    }
    outcome = if report.changed {
        outcome.note(format!(
            "instance {} ready: PostgreSQL {} on port {}, generation {}",
            i.name, i.version, i.port, i.generation
        ))
    } else {
        outcome.note(format!("instance {} is up to date (no change)", i.name))
    };
    outcome.note(format!(
        "connect: sudo -u {} psql -h {} -p {}",
        i.user,
        i.socket_dir.display(),
        i.port
    ))
}

fn parse_settings(values: &[String]) -> Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| Error::usage(format!("--set `{v}` is not KEY=VALUE")))
        })
        .collect()
}

/// `pgoci upgrade`: the install of a new lock onto an existing instance.
pub async fn upgrade(ctx: &Context, args: &crate::cli::UpgradeArgs) -> Result<Outcome> {
    let state = pgoci::install::lifecycle::load(&ctx.layout(), &args.instance)?;
    if args.bundle.is_none() && args.lock.is_none() && args.ext.is_empty() {
        return Err(Error::usage("upgrade needs a new lock")
            .hint("pass --bundle PATH, --lock FILE or --ext NAME,… (the complete new set)"));
    }
    let install_args = InstallArgs {
        bundle: args.bundle.clone(),
        source: crate::cli::LockSource {
            lock: args.lock.clone(),
            request: crate::cli::RequestArgs {
                major: (args.lock.is_none() && args.bundle.is_none()).then_some(state.major),
                ext: args.ext.clone(),
            },
        },
        instance: Some(args.instance.clone()),
        port: None,
        data_dir: None,
        user: state.user.clone(),
        service: Some(match state.service {
            ServiceKind::Systemd => "systemd".into(),
            ServiceKind::None => "none".into(),
        }),
        no_start: false,
        set: state
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        locale: "C.UTF-8".into(),
        encoding: "UTF8".into(),
        auth: "scram-sha-256".into(),
        check: args.check,
        yes: args.yes,
    };
    let mut outcome = run(ctx, &install_args).await?;
    outcome.json["command"] = "upgrade".into();
    Ok(outcome)
}
