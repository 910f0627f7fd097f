//! Flags become typed configuration here, in one place (ripgrep's
//! `HiArgs`). The global flags are checked once, before any command runs:
//! a bad value is exit 2 whatever the command, and commands read types,
//! never the flags' strings. The install and upgrade flags that name
//! settings, locales and instances are parsed here too.

use crate::cli::{Global, InstallArgs};
use pgoci::cache::Cache;
use pgoci::error::{Classify, Kind, Result};
use pgoci::install::layout::HostLayout;
use pgoci::install::locale::LocaleProvider;
use pgoci::install::postgres::InitdbSettings;
use pgoci::names::{ConfigParam, LocaleName};
use pgoci::platform::Platform;
use pgoci::registry::RegistryOptions;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Downloads at once, at most (`--jobs`).
const MAX_JOBS: usize = 64;

/// A flag whose value cannot be used: exit 2, naming the flag.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("--jobs {0} is out of range")]
    Jobs(usize),
    #[error("--root {path}: {source}", path = .path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--data-dir {} is relative", .0.display())]
    RelativeDataDir(PathBuf),
    #[error("--set `{0}` is not KEY=VALUE")]
    SetNotKeyValue(String),
    #[error("--set {0}")]
    SetName(#[source] pgoci::names::Invalid),
    #[error("--set: {0}")]
    SetValue(#[source] pgoci::names::Invalid),
    #[error("{flag}: {source}")]
    Locale {
        flag: &'static str,
        #[source]
        source: pgoci::names::Invalid,
    },
    #[error("--icu-locale and --builtin-locale are for different providers")]
    TwoProviders,
    #[error("instance name: {0}")]
    InstanceName(#[source] pgoci::names::Invalid),
    #[error("instance {instance} runs as user {recorded}; --user {given} differs")]
    OtherUser {
        instance: pgoci::names::InstanceName,
        recorded: String,
        given: String,
    },
    #[error("instance {instance} runs under {recorded}; --service {given} differs")]
    OtherService {
        instance: pgoci::names::InstanceName,
        recorded: &'static str,
        given: &'static str,
    },
    #[error("--major {major}, but the lock is for PostgreSQL {lock_major}")]
    MajorOfLock { major: u32, lock_major: u32 },
}

impl Classify for FlagError {
    fn kind(&self) -> Kind {
        Kind::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            FlagError::Jobs(_) => format!("pass 1 to {MAX_JOBS} downloads at once"),
            FlagError::Root { .. } => "give --root as a directory path".into(),
            FlagError::RelativeDataDir(_) => "give the data directory as an absolute host path (under --root it is placed in the root)".into(),
            FlagError::SetName(_) => "names are letters, digits and _, dotted for extension settings".into(),
            FlagError::Locale { .. } => "`locale -a` lists the host's locales; names look like de_DE.UTF-8, sr_RS@latin or C.UTF-8".into(),
            FlagError::TwoProviders => "pass one of them, with --locale-provider icu or builtin".into(),
            FlagError::InstanceName(_) => "use 1-63 of a-z, 0-9, _ and -, starting with a letter or digit".into(),
            FlagError::OtherUser { .. } => {
                "leave --user out, or uninstall the instance and install it anew".into()
            }
            FlagError::OtherService { .. } => {
                "leave --service out, or uninstall the instance and install it anew".into()
            }
            FlagError::SetNotKeyValue(_) | FlagError::SetValue(_) | FlagError::MajorOfLock { .. } => {
                return None
            }
        })
    }
}

/// What the global flags ask for, checked.
pub struct Settings {
    /// One JSON document on stdout; no prompts, no progress.
    pub json: bool,
    /// Less on stderr.
    pub quiet: bool,
    /// Progress bars where stderr is a terminal.
    pub progress_bars: bool,
    /// `--profile` as given (a name or a path; loaded when a command needs it).
    pub profile: Option<String>,
    pub cache_dir: PathBuf,
    pub platform: Platform,
    pub registry: RegistryOptions,
    /// `--require-signature-key`.
    pub signature_key: Option<PathBuf>,
    pub jobs: usize,
    /// `--root` (made absolute) and `--prefix` under it.
    pub layout: HostLayout,
}

impl Settings {
    pub fn from_flags(global: Global) -> Result<Self> {
        let platform = match &global.platform {
            Some(p) => p.parse()?,
            None => Platform::host(),
        };
        let jobs = match global.jobs {
            None => pgoci::fetch::default_jobs(),
            Some(n @ 1..=MAX_JOBS) => n,
            Some(n) => return Err(FlagError::Jobs(n).into()),
        };
        // A relative --root is taken from here, once: every path under it
        // (and the privilege check on its ancestors) is then absolute.
        let root = std::path::absolute(&global.root).map_err(|source| FlagError::Root {
            path: global.root.clone(),
            source,
        })?;
        Ok(Settings {
            json: global.json,
            quiet: global.json || global.quiet > 0,
            progress_bars: !global.no_progress
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            profile: global.profile,
            cache_dir: global.cache_dir.unwrap_or_else(Cache::default_dir),
            platform,
            registry: RegistryOptions {
                insecure: global.insecure_registry,
                ca_file: global.ca_file,
                creds: global.creds,
            },
            signature_key: global.require_signature_key,
            jobs,
            layout: HostLayout::new(&root, &global.prefix),
        })
    }
}

// ---- the flags of install and upgrade ------------------------------------

/// A host path given as `--data-dir`: relative would be a guess.
pub fn data_dir(path: Option<&PathBuf>) -> Result<()> {
    match path {
        Some(d) if d.is_relative() => Err(FlagError::RelativeDataDir(d.clone()).into()),
        _ => Ok(()),
    }
}

/// `--set KEY=VALUE` flags, checked as PostgreSQL reads them.
pub fn install_settings(values: &[String]) -> Result<BTreeMap<ConfigParam, String>> {
    values
        .iter()
        .map(|v| {
            let (k, val) = v
                .split_once('=')
                .map(|(k, val)| (k.trim(), val))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| FlagError::SetNotKeyValue(v.clone()))?;
            let key = ConfigParam::parse(k).map_err(FlagError::SetName)?;
            pgoci::names::check_text(&format!("--set {k}"), val).map_err(FlagError::SetValue)?;
            Ok((key, val.to_string()))
        })
        .collect()
}

/// The initdb flags, locale names parsed ([`LocaleName`]: a bad one is
/// exit 2 naming the flag). Without --locale-provider, --icu-locale means
/// icu and --builtin-locale builtin.
pub fn initdb_settings(args: &InstallArgs) -> Result<InitdbSettings> {
    let parse = |flag: &'static str, value: &str| {
        LocaleName::parse(value).map_err(|source| FlagError::Locale { flag, source })
    };
    let optional = |flag: &'static str, value: &Option<String>| {
        value.as_deref().map(|v| parse(flag, v)).transpose()
    };
    let icu_locale = optional("--icu-locale", &args.icu_locale)?;
    let builtin_locale = optional("--builtin-locale", &args.builtin_locale)?;
    let provider = match (
        args.locale_provider.map(LocaleProvider::from),
        &icu_locale,
        &builtin_locale,
    ) {
        (Some(p), _, _) => p,
        (None, Some(_), Some(_)) => return Err(FlagError::TwoProviders.into()),
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
    Ok(pgoci::names::InstanceName::parse(name).map_err(FlagError::InstanceName)?)
}
