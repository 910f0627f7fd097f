//! `pgoci install`: pick the source (bundle, lock, or resolve now), then
//! hand over to the library's install.

use super::{output::Outcome, pull::pull_lock, Context};
use crate::cli::InstallArgs;
use pgoci::blobs::BlobSource;
use pgoci::bundle::Bundle;
use pgoci::error::{Error, Result};
use pgoci::install::{self, state::ServiceKind, InstallOptions};
use pgoci::lock::Lock;
use serde_json::json;
use std::collections::BTreeMap;

pub async fn run(ctx: &Context, args: &InstallArgs) -> Result<Outcome> {
    let settings = parse_settings(&args.set)?;
    let (lock, source): (Lock, Box<dyn BlobSource>) = if let Some(path) = &args.bundle {
        let bundle = Bundle::open(path)?;
        (bundle.lock.clone(), Box::new(bundle))
    } else {
        if args.source.lock.is_none() && args.source.request.major.is_none() {
            return Err(Error::usage("install needs a source and none was given")
                .hint("pass --bundle PATH, --lock FILE or --major N [--ext NAME,…]"));
        }
        let lock = ctx.lock(&args.source).await?;
        let (cache, _) = pull_lock(ctx, &lock).await?;
        (lock, Box::new(cache))
    };
    let opts = InstallOptions {
        layout: ctx.layout(),
        instance: args
            .instance
            .clone()
            .unwrap_or_else(|| format!("pg{}", lock.major())),
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
        check: args.check,
    };
    let report = tokio::task::block_in_place(|| {
        install::install(&lock, source.as_ref(), &opts, ctx.reporter.as_ref())
    })?;
    let extensions: Vec<_> = lock
        .extensions
        .iter()
        .map(|e| json!({"name": e.name, "version": e.version, "digest": e.pinned.digest}))
        .collect();
    let i = &report.instance;
    let mut outcome = Outcome::new("install", report.changed)
        .field("check", args.check)
        .field("instance", &report.instance)
        .field("server", json!({"major": lock.major(), "version": i.version, "digest": lock.server.pinned.digest}))
        .field("extensions", extensions)
        .field("actions", &report.actions)
        .field("warnings", &report.warnings);
    for w in &report.warnings {
        outcome = outcome.note(format!("warning: {w}"));
    }
    outcome = if args.check {
        outcome.note(format!("plan for instance {} (nothing changed):", i.name))
    } else if report.changed {
        outcome.note(format!(
            "instance {} ready: PostgreSQL {} on port {}, generation {}",
            i.name, i.version, i.port, i.generation
        ))
    } else {
        outcome.note(format!("instance {} is up to date (no change)", i.name))
    };
    if args.check {
        for a in &report.actions {
            outcome = outcome.note(format!("  {a}"));
        }
    } else {
        outcome = outcome.note(format!(
            "connect: sudo -u {} psql -h {} -p {}",
            i.user,
            i.socket_dir.display(),
            i.port
        ));
    }
    Ok(outcome)
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
