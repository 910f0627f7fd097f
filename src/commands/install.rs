//! `pgoci install` and `pgoci upgrade`: pick the source (bundle, lock, or
//! resolve now; asking on a terminal for what is missing), plan, show the
//! plan (`--check`, or a confirmation at a terminal), then apply it.

use super::{
    output::{say, Outcome},
    prompt,
    pull::pull_lock,
    Context,
};
use crate::cli::{ChangeArgs, InstallArgs, UpgradeArgs};
use indicatif::HumanBytes;
use pgoci::blobs::{BlobSource, NoBlobs};
use pgoci::bundle::Bundle;
use pgoci::error::{Error, Result};
use pgoci::install::facts::HostFacts;
use pgoci::install::locale::LocaleProvider;
use pgoci::install::plan::{self, Plan, Step};
use pgoci::install::postgres::InitdbSettings;
use pgoci::install::{apply, InstallOptions, InstallReport};
use pgoci::lock::Lock;
use pgoci::names::LocaleName;
use serde_json::json;
use std::collections::BTreeMap;

/// Where the blobs of the lock will come from.
enum Source {
    Bundle(Box<Bundle>),
    /// Pulled into the cache (after confirmation, and only if needed).
    Registry,
}

pub fn run(ctx: &Context, args: &InstallArgs) -> Result<Outcome> {
    let interactive = prompt::interactive(args.change.yes || args.change.check, ctx.global.json);
    let settings = parse_settings(&args.set)?;
    // A host path, placed under --root: relative to what would be a guess.
    if let Some(d) = args.data_dir.as_ref().filter(|d| d.is_relative()) {
        return Err(Error::usage(format!(
            "--data-dir {} is relative",
            d.display()
        ))
        .hint("give the data directory as an absolute host path (under --root it is placed in the root)"));
    }
    let initdb = initdb_settings(args)?;
    let mut args = args.clone();
    let (lock, source) = if let Some(path) = &args.bundle {
        let bundle = open_bundle(path, &args.source.lock, args.source.request.major)?;
        (bundle.lock.clone(), Source::Bundle(Box::new(bundle)))
    } else {
        if args.source.lock.is_empty() && args.source.request.major.is_none() {
            if !interactive {
                return Err(Error::usage("install needs a source and none was given")
                    .hint("pass --bundle PATH, --lock FILE or --major N [--ext NAME,…]"));
            }
            let profile = ctx.profile()?;
            let major = prompt::major(&profile)?;
            args.source.request.major = Some(major);
            args.source.request.ext = prompt::extensions(&profile, major)?;
        }
        (ctx.lock(&args.source)?, Source::Registry)
    };
    // What this major's initdb lacks is refused before anything else.
    initdb.args(lock.major())?;
    let layout = ctx.layout();
    let instance = match &args.instance {
        Some(i) => i.clone(),
        None if interactive => prompt::text("Instance name", format!("pg{}", lock.major()))?,
        None => format!("pg{}", lock.major()),
    };
    let instance = parse_instance_name(&instance)?;
    let existing = pgoci::install::state::InstanceState::read(&layout.instance(&instance))?;
    // An existing instance keeps its user and service manager: changing
    // them in passing would leave the old unit (or owner) behind.
    let user = match (&args.user, &existing) {
        (Some(u), Some(st)) if *u != st.user => {
            return Err(Error::usage(format!(
                "instance {instance} runs as user {}; --user {u} differs",
                st.user
            ))
            .hint("leave --user out, or uninstall the instance and install it anew"))
        }
        (Some(u), _) => u.clone(),
        (None, Some(st)) => st.user.clone(),
        (None, None) => "postgres".to_string(),
    };
    let service = args.service.map(pgoci::install::service::ServiceKind::from);
    if let (Some(s), Some(st)) = (service, &existing) {
        if s != st.service {
            return Err(Error::usage(format!(
                "instance {instance} runs under {}; --service {} differs",
                st.service.describe(),
                s.describe()
            ))
            .hint("leave --service out, or uninstall the instance and install it anew"));
        }
    }
    pgoci::install::users::check_name(&user)?;
    let mut opts = InstallOptions {
        port: args.port,
        data_dir: args.data_dir.clone(),
        user,
        service,
        no_start: args.no_start,
        settings,
        initdb,
        libraries: args.libraries.into(),
        ..InstallOptions::new(layout.clone(), &instance)
    };
    if interactive && existing.is_none() {
        let provider_chosen = args.locale_provider.is_some()
            || args.icu_locale.is_some()
            || args.builtin_locale.is_some();
        if !provider_chosen {
            prompt::locale_provider(&mut opts.initdb, lock.major())?;
        }
        if opts.port.is_none() {
            opts.port = Some(prompt::port(pgoci::install::suggested_port(
                &layout, &instance,
            )?)?);
        }
        if opts.data_dir.is_none() {
            let default = std::path::Path::new("/var/lib/pgoci")
                .join(&instance)
                .join("data");
            opts.data_dir = Some(prompt::data_dir(default)?);
        }
    }
    execute(
        ctx,
        "install",
        &lock,
        source,
        &opts,
        &args.change,
        interactive,
    )
}

/// Opens a bundle and picks its lock: `--lock FILE` takes any layout
/// holding that lock's blobs; `--lock DIGEST` or `--major N` picks one of
/// the bundle's own locks; with neither, the bundle must hold only one.
fn open_bundle(
    path: &std::path::Path,
    lock: &[std::path::PathBuf],
    major: Option<u32>,
) -> Result<Bundle> {
    use pgoci::bundle::LockChoice;
    let choice = match (lock, major) {
        ([file], _) if file.is_file() => return Bundle::open_with_lock(path, Lock::read(file)?),
        ([digest], _) => LockChoice::Digest(digest.to_string_lossy().into_owned()),
        ([], Some(m)) => LockChoice::Major(m),
        ([], None) => LockChoice::Only,
        _ => return Err(Error::usage("install takes one --lock")),
    };
    let mut bundle = Bundle::open(path)?;
    bundle.choose(&choice)?;
    // Every manifest must be one, matching the lock, before anything is written.
    bundle.verify_manifests()?;
    Ok(bundle)
}

/// Plans, shows, confirms and applies an install or upgrade.
fn execute(
    ctx: &Context,
    command: &str,
    lock: &Lock,
    source: Source,
    opts: &InstallOptions,
    change: &ChangeArgs,
    interactive: bool,
) -> Result<Outcome> {
    let _guard = ctx.exclusive(change)?;
    let plan = {
        let _span = tracing::info_span!("plan", instance = %opts.instance).entered();
        let facts = HostFacts::gather(lock, opts)?;
        plan::install(lock, opts, &facts)?
    };
    if change.check {
        let mut report = planned(&plan);
        let bundle = match &source {
            Source::Bundle(b) => Some(b.as_ref() as &dyn pgoci::blobs::BlobSource),
            Source::Registry => None,
        };
        report.libraries = pgoci::install::apply::check_libraries(
            &plan,
            lock,
            opts,
            bundle,
            ctx.reporter.as_ref(),
        )?;
        // What a new generation brings to existing data: refused here as
        // the apply would refuse it.
        let gate = match &report.libraries {
            Some(libs) => pgoci::install::apply::check_collation(opts, libs)?,
            None => None,
        };
        let mut out = outcome(command, lock, &report, true);
        if let Some(g) = gate {
            out = out
                .note(format!(
                    "collation libraries change: {} → {} (chosen: {})",
                    g.change.from,
                    g.change.to,
                    match g.choice {
                        Some(pgoci::install::collation::Choice::Reindex) => "reindex",
                        Some(pgoci::install::collation::Choice::Accept) => "accept",
                        None => "nothing affected",
                    }
                ))
                .field("collation", g);
        }
        return Ok(out);
    }
    // Refused before a question is asked or a byte downloaded.
    if plan.changes_anything() {
        pgoci::install::privilege::require(command, &opts.layout, Some(&opts.user))?;
    }
    if interactive && plan.changes_anything() {
        say(format_args!(
            "{}",
            plan_text(lock, &plan, matches!(source, Source::Registry))
        ));
        if !prompt::confirm("Go ahead?")? {
            return Ok(Outcome::new(command, false).note("cancelled: nothing changed"));
        }
    }
    // Blobs are read only if something must be unpacked: a no-op re-run
    // touches neither the registry nor the bundle's blobs.
    let unpacks = plan.steps.iter().any(|s| matches!(s, Step::Unpack { .. }));
    let blobs: Box<dyn BlobSource> = match source {
        Source::Bundle(b) => {
            // Offline: the signatures the bundle carries, checked against
            // this host's policy (a carrier cannot re-sign what it swapped).
            ctx.check_signatures(&[lock], || b.companions(), b.as_ref())?;
            b
        }
        // pull_lock checks the signatures.
        Source::Registry if unpacks => Box::new(pull_lock(ctx, lock)?.0),
        Source::Registry => Box::new(NoBlobs),
    };
    let _span = tracing::info_span!("apply", steps = plan.steps.len()).entered();
    let report = apply::install(&plan, lock, blobs.as_ref(), opts, ctx.reporter.as_ref())?;
    Ok(outcome(command, lock, &report, false))
}

/// A plan as the report `--check` gives.
fn planned(plan: &Plan) -> InstallReport {
    InstallReport {
        changed: plan.changes_anything(),
        instance: plan.instance.clone(),
        actions: plan.steps.clone(),
        warnings: plan.warnings.clone(),
        libraries: None,
        data: Vec::new(),
        extension_updates: Vec::new(),
    }
}

/// The plan as a person reads it.
fn plan_text(lock: &Lock, plan: &Plan, download: bool) -> String {
    let i = &plan.instance;
    let mut text = format!(
        "Plan for instance {}: PostgreSQL {} ({}){}\n",
        i.name,
        lock.server.version,
        lock.platform,
        if download {
            format!(", download up to {}", HumanBytes(lock.download_size()))
        } else {
            format!(", {} from the bundle", HumanBytes(lock.download_size()))
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
        i.service.describe()
    ));
    for step in &plan.steps {
        text.push_str(&format!("  - {}\n", step.describe(false)));
    }
    text
}

fn outcome(command: &str, lock: &Lock, report: &InstallReport, check: bool) -> Outcome {
    let extensions: Vec<_> = lock
        .extensions
        .iter()
        .map(|e| json!({"name": e.name, "version": e.version, "digest": e.pinned.digest}))
        .collect();
    let i = &report.instance;
    let actions: Vec<_> = report.actions.iter().map(|s| s.to_json(!check)).collect();
    let mut outcome = Outcome::new(command, report.changed)
        .field("check", check)
        .field("instance", &report.instance)
        .field(
            "server",
            json!({"major": lock.major(), "version": i.version, "digest": lock.server.pinned.digest}),
        )
        .field("extensions", extensions)
        .field("actions", actions)
        .field("warnings", &report.warnings);
    if let Some(libs) = &report.libraries {
        outcome = outcome.field("libraries", libs);
    }
    if !report.extension_updates.is_empty() {
        outcome = outcome.field("extension_updates", &report.extension_updates);
    }
    if !report.data.is_empty() {
        outcome = outcome.field("data", &report.data);
    }
    for line in &report.data {
        outcome = outcome.note(line.clone());
    }
    for u in &report.extension_updates {
        if !report
            .data
            .iter()
            .any(|l| l.starts_with(&format!("updated extension {}", u.name)))
        {
            outcome = outcome.note(format!(
                "update available: extension {} {} → {} in database {} (pgoci upgrade --update-extensions, or ALTER EXTENSION … UPDATE)",
                u.name,
                u.installed,
                u.target.as_deref().unwrap_or("?"),
                u.database
            ));
        }
    }
    for w in &report.warnings {
        outcome = outcome.note(format!("warning: {w}"));
    }
    if check {
        outcome = outcome.note(format!("plan for instance {} (nothing changed):", i.name));
        for a in &report.actions {
            outcome = outcome.note(format!("  {}", a.describe(false)));
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

/// `--set KEY=VALUE` flags, checked as PostgreSQL reads them.
fn parse_settings(values: &[String]) -> Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| {
            let (k, val) = v
                .split_once('=')
                .map(|(k, val)| (k.trim(), val))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| Error::usage(format!("--set `{v}` is not KEY=VALUE")))?;
            let key = pgoci::names::ConfigParam::parse(k).map_err(|e| {
                Error::usage(format!("--set {e}"))
                    .hint("names are letters, digits and _, dotted for extension settings")
            })?;
            pgoci::names::check_text(&format!("--set {k}"), val)
                .map_err(|e| Error::usage(format!("--set: {e}")))?;
            Ok((key.to_string(), val.to_string()))
        })
        .collect()
}

/// The initdb flags, locale names parsed ([`LocaleName`]: a bad one is
/// exit 2 naming the flag). Without --locale-provider, --icu-locale means
/// icu and --builtin-locale builtin.
fn initdb_settings(args: &InstallArgs) -> Result<InitdbSettings> {
    let parse = |flag: &str, value: &str| {
        LocaleName::parse(value).map_err(|e| {
            Error::usage(format!("{flag}: {e}"))
                .hint("`locale -a` lists the host's locales; names look like de_DE.UTF-8, sr_RS@latin or C.UTF-8")
        })
    };
    let optional =
        |flag: &str, value: &Option<String>| value.as_deref().map(|v| parse(flag, v)).transpose();
    let icu_locale = optional("--icu-locale", &args.icu_locale)?;
    let builtin_locale = optional("--builtin-locale", &args.builtin_locale)?;
    let provider = match (
        args.locale_provider.map(LocaleProvider::from),
        &icu_locale,
        &builtin_locale,
    ) {
        (Some(p), _, _) => p,
        (None, Some(_), Some(_)) => {
            return Err(Error::usage(
                "--icu-locale and --builtin-locale are for different providers",
            )
            .hint("pass one of them, with --locale-provider icu or builtin"))
        }
        (None, Some(_), None) => LocaleProvider::Icu,
        (None, None, Some(_)) => LocaleProvider::Builtin,
        (None, None, None) => LocaleProvider::Libc,
    };
    Ok(InitdbSettings {
        locale: parse("--locale", &args.locale)?,
        lc_collate: optional("--lc-collate", &args.lc_collate)?,
        lc_ctype: optional("--lc-ctype", &args.lc_ctype)?,
        encoding: args.encoding.clone(),
        provider,
        icu_locale,
        builtin_locale,
        auth_host: args.auth.clone(),
        ..InitdbSettings::default()
    })
}

/// Instance names become paths, unit names and service names: parsed as
/// [`pgoci::names::InstanceName`] (`[a-z0-9][a-z0-9_-]{0,62}`).
pub fn parse_instance_name(name: &str) -> Result<pgoci::names::InstanceName> {
    pgoci::names::InstanceName::parse(name).map_err(|e| {
        Error::usage(format!("instance name: {e}"))
            .hint("use 1-63 of a-z, 0-9, _ and -, starting with a letter or digit")
    })
}

/// `pgoci upgrade`: the install of a new lock onto an existing instance,
/// keeping everything the instance recorded.
pub fn upgrade(ctx: &Context, args: &UpgradeArgs) -> Result<Outcome> {
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
    let interactive = prompt::interactive(args.change.yes || args.change.check, ctx.global.json);
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
                return Err(Error::usage(format!(
                    "--major {major}, but the lock is for PostgreSQL {}",
                    lock.major()
                )));
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
    let interactive = prompt::interactive(args.change.yes || args.change.check, ctx.global.json);
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
    if prompt::interactive(change.yes, ctx.global.json) {
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
