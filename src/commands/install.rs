//! `pgoci install`: pick the source (bundle, lock, or resolve now; asking
//! on a terminal for what is missing), plan, show the plan (`--check`, or
//! a confirmation at a terminal), then apply it. `upgrade.rs` reuses the
//! planning and applying for a same-major upgrade.

use super::{
    output::{say, Outcome},
    prompt,
    pull::pull_lock,
    settings::{self, initdb_settings, install_settings, parse_instance_name, FlagError},
    Context,
};
use crate::cli::{ChangeArgs, InstallArgs};
use indicatif::HumanBytes;
use pgoci::blobs::{BlobSource, NoBlobs};
use pgoci::bundle::Bundle;
use pgoci::error::{Error, Result};
use pgoci::install::facts::HostFacts;
use pgoci::install::plan::{self, Plan, Step};
use pgoci::install::{apply, InstallOptions, InstallReport};
use pgoci::lock::Lock;
use serde_json::json;

/// Where the blobs of the lock will come from.
pub(super) enum Source {
    Bundle(Box<Bundle>),
    /// Pulled into the cache (after confirmation, and only if needed).
    Registry,
}

pub fn run(ctx: &Context, args: &InstallArgs) -> Result<Outcome> {
    let interactive = prompt::interactive(args.change.yes || args.change.check, ctx.settings.json);
    let settings = install_settings(&args.set)?;
    settings::data_dir(args.data_dir.as_ref())?;
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
            return Err(FlagError::OtherUser {
                instance: instance.clone(),
                recorded: st.user.clone(),
                given: u.clone(),
            }
            .into())
        }
        (Some(u), _) => u.clone(),
        (None, Some(st)) => st.user.clone(),
        (None, None) => "postgres".to_string(),
    };
    let service = args.service.map(pgoci::install::service::ServiceKind::from);
    if let (Some(s), Some(st)) = (service, &existing) {
        if s != st.service {
            return Err(FlagError::OtherService {
                instance: instance.clone(),
                recorded: st.service.describe(),
                given: s.describe(),
            }
            .into());
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
pub(super) fn open_bundle(
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
pub(super) fn execute(
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
        pgoci::install::privilege::require(command, &opts.layout, &opts.user)?;
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
pub(super) fn planned(plan: &Plan) -> InstallReport {
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

pub(super) fn outcome(command: &str, lock: &Lock, report: &InstallReport, check: bool) -> Outcome {
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
