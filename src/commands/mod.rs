//! One module per subcommand: orchestration and printing only. The work
//! is in the library; these turn flags into library calls and results into
//! [`output::Outcome`]s.

pub mod bundle;
pub mod catalog;
pub mod docs;
pub mod doctor;
pub mod install;
pub mod lifecycle;
pub mod output;
mod prompt;
pub mod pull;
mod reporter;
pub mod resolve;
pub mod serve;
pub mod settings;
pub mod status;
pub mod upgrade;

use crate::cli::{ChangeArgs, Cli, Command, LockSource};
use output::{say, Outcome};
use pgoci::blobs::BlobSource;
use pgoci::cache::Cache;
use pgoci::error::{Error, Result};
use pgoci::install::layout::HostLayout;
use pgoci::lock::Lock;
use pgoci::platform::Platform;
use pgoci::profile::{Profile, DEFAULT_PROFILE};
use pgoci::progress::Reporter;
use pgoci::registry::Registry;
use pgoci::resolve::ExtRequest;
use pgoci::signature::{policy::Policies, Policy};
use settings::Settings;
use std::sync::Arc;

/// What every command may need: the checked global flags, and what is
/// built from them when a command asks (profile, cache, registry client).
pub struct Context {
    pub settings: Settings,
    pub reporter: Arc<dyn Reporter>,
}

impl Context {
    pub fn new(settings: Settings) -> Self {
        let reporter: Arc<dyn Reporter> = if settings.quiet {
            Arc::new(pgoci::progress::Silent)
        } else if settings.progress_bars {
            Arc::new(reporter::Bars::new())
        } else {
            Arc::new(reporter::Lines::default())
        };
        Context { settings, reporter }
    }

    pub fn profile(&self) -> Result<Profile> {
        let name = self.settings.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
        Profile::load(name, &self.settings.layout.root)
    }

    pub fn platform(&self) -> Platform {
        self.settings.platform.clone()
    }

    pub fn cache(&self) -> Result<Cache> {
        Cache::open(&self.settings.cache_dir)
    }

    pub fn registry(&self) -> Result<Arc<Registry>> {
        Ok(Arc::new(Registry::new(self.settings.registry.clone())?))
    }

    pub fn layout(&self) -> HostLayout {
        self.settings.layout.clone()
    }

    /// Runs network work to completion. The async runtime exists only
    /// around resolve, pull and push: local commands never start it.
    pub fn block_on<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::host(format!("cannot start the async runtime: {e}")).caused_by(e)
            })?;
        runtime.block_on(work)
    }

    /// The locks from `--lock` (one or more), or one resolved now from
    /// `--major/--ext`.
    pub fn locks(&self, source: &LockSource) -> Result<Vec<Lock>> {
        match source.lock.is_empty() {
            true => Ok(vec![self.lock(source)?]),
            false => source.lock.iter().map(|p| Lock::read(p)).collect(),
        }
    }

    /// One lock from `--lock`, or resolved now from `--major/--ext`.
    pub fn lock(&self, source: &LockSource) -> Result<Lock> {
        match source.lock.as_slice() {
            [] => {}
            [path] => return Lock::read(path),
            _ => {
                return Err(Error::usage("this command takes one --lock")
                    .hint("several locks go into one bundle with `pgoci bundle export`"))
            }
        }
        let major = source.request.major.ok_or_else(|| {
            Error::usage("no lock and no major given").hint("pass --lock FILE or --major N")
        })?;
        let exts = ExtRequest::parse_list(&source.request.ext);
        let registry = self.registry()?;
        let (profile, platform) = (self.profile()?, self.platform());
        let _span = tracing::info_span!("resolve", major).entered();
        let policies = self.policies()?;
        self.block_on(pgoci::resolve::resolve_signed(
            &profile, major, &exts, &platform, &registry, &policies,
        ))
    }

    /// Who must have signed which image: `--require-signature-key` for
    /// every image, else the `signatures:` of a profile named with
    /// `--profile` (the embedded default requires none).
    pub fn policies(&self) -> Result<Policies> {
        if let Some(key) = &self.settings.signature_key {
            return Ok(Policies::every(Policy::key_file(key)?));
        }
        match &self.settings.profile {
            Some(_) => Policies::from_profile(&self.profile()?),
            None => Ok(Policies::default()),
        }
    }

    /// Checks the signatures `policies` require on the locks' artifacts,
    /// offline, from local blobs (cache or bundle): the ones a lock
    /// records, else the ones `carried` finds beside the images (asked
    /// only when a policy is in force); returns how many.
    pub fn check_signatures(
        &self,
        locks: &[&Lock],
        carried: impl FnOnce() -> Result<Vec<pgoci::companions::Companion>>,
        source: &dyn BlobSource,
    ) -> Result<usize> {
        let policies = self.policies()?;
        if policies.is_empty() {
            return Ok(0);
        }
        let _span = tracing::info_span!("signatures").entered();
        let carried = carried()?;
        let mut count = 0;
        for lock in locks {
            let checked = pgoci::signature::record::verify_lock(lock, &carried, source, &policies)?;
            for (image, v) in &checked {
                tracing::info!("{image}: signed by {} ({})", v.signer, v.signature);
            }
            count += checked.len();
        }
        Ok(count)
    }

    /// Holds the prefix for a command that changes it (not for `--check`,
    /// which only reads).
    pub fn exclusive(
        &self,
        change: &ChangeArgs,
    ) -> Result<Option<pgoci::install::exclusive::PrefixGuard>> {
        if change.check {
            return Ok(None);
        }
        let layout = self.layout();
        let quiet = self.settings.quiet;
        pgoci::install::exclusive::PrefixGuard::acquire(&layout, change.no_wait, || {
            if !quiet {
                say(format_args!(
                    "waiting for another pgoci to finish with {}",
                    layout.prefix.display()
                ));
            }
        })
        .map(Some)
    }
}

/// The command's name for JSON documents.
pub fn name(command: &Command) -> &'static str {
    match command {
        Command::Catalog { .. } => "catalog",
        Command::Resolve { .. } => "resolve",
        Command::Pull { .. } => "pull",
        Command::Bundle(crate::cli::BundleCommand::Export { .. }) => "bundle export",
        Command::Bundle(crate::cli::BundleCommand::Verify { .. }) => "bundle verify",
        Command::Bundle(crate::cli::BundleCommand::Inspect { .. }) => "bundle inspect",
        Command::Bundle(crate::cli::BundleCommand::Push { .. }) => "bundle push",
        Command::Install(_) => "install",
        Command::Status { .. } => "status",
        Command::Upgrade(_) => "upgrade",
        Command::Rollback { .. } => "rollback",
        Command::Uninstall { .. } => "uninstall",
        Command::Collation { .. } => "collation",
        Command::StartGate { .. } => "start-gate",
        Command::Gc { .. } => "gc",
        Command::Completions { .. } => "completions",
        Command::Doctor { .. } => "doctor",
        Command::Serve { .. } => "serve",
        Command::GenerateMan { .. } => "generate-man",
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    let ctx = Context::new(Settings::from_flags(cli.global)?);
    match cli.command {
        Command::Catalog { major } => catalog::run(&ctx, major),
        Command::Resolve { request, output } => resolve::run(&ctx, &request, &output),
        Command::Pull { source } => pull::run(&ctx, &source),
        Command::Bundle(cmd) => bundle::run(&ctx, cmd),
        Command::Install(args) => install::run(&ctx, &args),
        Command::Status { instance, verify } => status::run(&ctx, instance.as_deref(), verify),
        Command::Upgrade(args) => upgrade::run(&ctx, &args),
        Command::Rollback {
            instance,
            collation_change,
            change,
        } => lifecycle::rollback(&ctx, &instance, collation_change.map(Into::into), &change),
        Command::Uninstall {
            instance,
            purge,
            change,
        } => lifecycle::uninstall(&ctx, &instance, purge, &change),
        Command::Gc { keep, change } => lifecycle::gc(&ctx, &keep, &change),
        Command::Collation {
            instance,
            collation_change,
            change,
        } => lifecycle::collation(&ctx, &instance, collation_change.map(Into::into), &change),
        Command::StartGate { instance } => lifecycle::start_gate(&ctx, &instance),
        Command::Completions { shell } => docs::completions(shell),
        Command::Doctor {
            bundle,
            port,
            libraries,
        } => doctor::run(&ctx, bundle.as_deref(), port, libraries.into()),
        Command::Serve {
            bundle,
            listen,
            tls_cert,
            tls_key,
            creds_file,
        } => serve::run(&ctx, bundle, listen, tls_cert.zip(tls_key), creds_file),
        Command::GenerateMan { dir } => docs::man_pages(&dir),
    }
}
