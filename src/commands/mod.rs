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
pub mod status;

use crate::cli::{Cli, Command, Global, LockSource};
use output::Outcome;
use pgoci::cache::Cache;
use pgoci::error::{Error, Result};
use pgoci::install::layout::HostLayout;
use pgoci::lock::Lock;
use pgoci::platform::Platform;
use pgoci::profile::{Profile, DEFAULT_PROFILE};
use pgoci::progress::Reporter;
use pgoci::registry::{Registry, RegistryOptions};
use pgoci::resolve::ExtRequest;
use std::sync::Arc;

/// What every command may need, built lazily from the global flags.
pub struct Context {
    pub global: Global,
    pub reporter: Arc<dyn Reporter>,
}

impl Context {
    pub fn new(global: Global) -> Self {
        let quiet = global.json || global.quiet > 0;
        let bars = !global.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let reporter: Arc<dyn Reporter> = if quiet {
            Arc::new(pgoci::progress::Silent)
        } else if bars {
            Arc::new(reporter::Bars::new())
        } else {
            Arc::new(reporter::Lines::default())
        };
        Context { global, reporter }
    }

    pub fn profile(&self) -> Result<Profile> {
        let name = self.global.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
        Profile::load(name, &self.global.root)
    }

    pub fn platform(&self) -> Result<Platform> {
        match &self.global.platform {
            Some(p) => p.parse(),
            None => Ok(Platform::host()),
        }
    }

    pub fn cache(&self) -> Result<Cache> {
        let dir = self
            .global
            .cache_dir
            .clone()
            .unwrap_or_else(Cache::default_dir);
        Cache::open(&dir)
    }

    pub fn registry(&self) -> Result<Arc<Registry>> {
        Ok(Arc::new(Registry::new(RegistryOptions {
            insecure: self.global.insecure_registry.clone(),
            ca_file: self.global.ca_file.clone(),
            creds: self.global.creds.clone(),
        })?))
    }

    pub fn layout(&self) -> HostLayout {
        HostLayout::new(&self.global.root, &self.global.prefix)
    }

    /// A lock from `--lock`, or resolved now from `--major/--ext`.
    pub async fn lock(&self, source: &LockSource) -> Result<Lock> {
        if let Some(path) = &source.lock {
            return Lock::read(path);
        }
        let major = source.request.major.ok_or_else(|| {
            Error::usage("no lock and no major given").hint("pass --lock FILE or --major N")
        })?;
        let exts = ExtRequest::parse_list(&source.request.ext);
        let registry = self.registry()?;
        pgoci::resolve::resolve(&self.profile()?, major, &exts, &self.platform()?, &registry).await
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
        Command::Gc { .. } => "gc",
        Command::Completions { .. } => "completions",
        Command::Doctor { .. } => "doctor",
        Command::GenerateMan { .. } => "generate-man",
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<Outcome> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Catalog { major } => catalog::run(&ctx, major),
        Command::Resolve { request, output } => resolve::run(&ctx, &request, &output).await,
        Command::Pull { source } => pull::run(&ctx, &source).await,
        Command::Bundle(cmd) => bundle::run(&ctx, cmd).await,
        Command::Install(args) => install::run(&ctx, &args).await,
        Command::Status { instance, verify } => status::run(&ctx, instance.as_deref(), verify),
        Command::Upgrade(args) => install::upgrade(&ctx, &args).await,
        Command::Rollback { instance } => lifecycle::rollback(&ctx, &instance),
        Command::Uninstall { instance, purge } => lifecycle::uninstall(&ctx, &instance, purge),
        Command::Gc { keep } => lifecycle::gc(&ctx, &keep),
        Command::Completions { shell } => docs::completions(shell),
        Command::Doctor { bundle, port } => doctor::run(&ctx, bundle.as_deref(), port),
        Command::GenerateMan { dir } => docs::man_pages(&dir),
    }
}
