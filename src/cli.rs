//! Command-line definitions, nothing else. The doc comments here are the
//! `--help` text (and, later, the man pages and completions).

use clap::{Args, Parser, Subcommand};
use pgoci::install::postgres::InitdbSettings;
use std::path::PathBuf;

/// Install PostgreSQL and its extensions from OCI registries onto hosts that run no containers.
#[derive(Debug, Parser)]
#[command(name = "pgoci", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags valid on every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Catalog to resolve against: an embedded name, a name in /etc/pgoci/profiles, or a path.
    #[arg(long, global = true, env = "PGOCI_PROFILE", value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Blob cache directory [default: ~/.cache/pgoci, /var/cache/pgoci for root].
    #[arg(long, global = true, env = "PGOCI_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Platform to resolve for, OS/ARCH [default: the host's].
    #[arg(long, global = true, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Print one JSON document on stdout; no progress, no prompts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Less output on stderr (repeat for less).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// More output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Use plain HTTP for this registry, HOST[:PORT] (repeatable).
    #[arg(long, global = true, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Extra CA certificate (PEM) to trust for registries.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Registry credentials USER:PASSWORD (else env, REGISTRY_AUTH_FILE, ~/.docker/config.json).
    #[arg(long, global = true, value_name = "USER:PASS", hide_env_values = true)]
    pub creds: Option<String>,
    /// Require a cosign signature by this public key (PEM) on every image:
    /// checked at resolve, pull, export, bundle verify and install (overrides
    /// the profile's `signatures:`).
    #[arg(long, global = true, value_name = "PEM")]
    pub require_signature_key: Option<PathBuf>,
    /// Parallel downloads [default: twice the CPUs, between 4 and 8].
    #[arg(long, global = true, value_name = "N")]
    pub jobs: Option<usize>,
    /// No progress bars, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Where instances live (absolute; no `:` or `;`, which would split
    /// the path lists it goes into).
    #[arg(long, global = true, value_name = "DIR", default_value = "/opt/pgoci",
          value_parser = pgoci::names::host_prefix)]
    pub prefix: PathBuf,
    /// Put every host path pgoci writes under DIR; the server still runs
    /// on this machine (trying pgoci, side-by-side trees; for an image, run
    /// pgoci inside it with chroot).
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the majors and extensions the profile offers.
    Catalog {
        /// Only this major.
        #[arg(long)]
        major: Option<u32>,
    },
    /// Resolve a major and extensions to digests and write a lock.
    Resolve {
        #[command(flatten)]
        request: RequestArgs,
        /// Where to write the lock (`-` for stdout).
        #[arg(short, long, default_value = "pgoci.lock")]
        output: PathBuf,
    },
    /// Fetch every blob of a lock into the cache.
    Pull {
        #[command(flatten)]
        source: LockSource,
    },
    /// Portable bundles (OCI image layouts) for air-gapped hosts.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Install (or re-apply) PostgreSQL and extensions as an instance.
    Install(Box<InstallArgs>),
    /// Move an instance to a new lock (newer minor, other extensions), or
    /// to a new major with pg_upgrade (--major N).
    ///
    /// Same major: a new generation, switch, restart; extension updates are
    /// listed (applied with --update-extensions), an extension without an
    /// update path is refused before the switch (exit 6).
    ///
    /// Major upgrade (--major N): every check runs while the old server is
    /// up — a build of every extension in use in any database and its
    /// update path, the old cluster's initdb options (encoding, collate,
    /// ctype, provider and ICU/builtin locale, checksums, WAL segment
    /// size), the collation gate, the method's file-system and space needs,
    /// and pg_upgrade --check against the running cluster; a refusal is
    /// exit 6 naming what and where. Then the new cluster is initialised
    /// beside the old one (data-N), the old server stopped, pg_upgrade run
    /// (clone, copy or link), the new generation switched to and started,
    /// extensions updated and statistics rebuilt (vacuumdb
    /// --analyze-in-stages). Every phase is journaled: a killed run is
    /// finished or undone by running the same command again.
    ///
    /// Methods: clone (default where the file system reflinks) and copy
    /// (default elsewhere) keep the old data directory intact, and
    /// `pgoci rollback` returns to the old major on it (writes made since
    /// are lost) until `--finalize` deletes it; link is fastest, but
    /// rollback is refused once the new server has started.
    ///
    /// Collation gate: a change of glibc or ICU version under existing data
    /// is refused unless --collation-change reindex (rebuild the affected
    /// indexes, then refresh the versions) or accept (refresh only). C,
    /// POSIX, C.UTF-8 and the builtin provider are not affected.
    Upgrade(UpgradeArgs),
    /// Switch an instance back to its previous generation and restart it
    /// (after a major upgrade: the old major on the old data directory).
    Rollback {
        /// The instance.
        #[arg(long)]
        instance: String,
        /// Go back across a change of collation library (glibc or ICU
        /// version): reindex what it affects, or accept it as is.
        #[arg(long, value_enum, value_name = "CHOICE")]
        collation_change: Option<CollationChangeArg>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// The collation gate of an instance: what its data was last used
    /// with against what its server runs on now; resolves a change (after
    /// a host OS upgrade, say) with --collation-change.
    Collation {
        /// The instance.
        #[arg(long)]
        instance: String,
        /// Reindex what the change affects, or accept it (refresh only).
        #[arg(long, value_enum, value_name = "CHOICE")]
        collation_change: Option<CollationChangeArg>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// The collation gate before a server starts (the unit's ExecStartPre).
    #[command(hide = true)]
    StartGate {
        /// The instance.
        #[arg(long)]
        instance: String,
    },
    /// Show installed instances.
    Status {
        /// Only this instance.
        #[arg(long)]
        instance: Option<String>,
        /// Re-hash the files of each current generation and report drift.
        #[arg(long)]
        verify: bool,
    },
    /// Stop and remove an instance; its data stays unless --purge.
    Uninstall {
        /// The instance.
        #[arg(long)]
        instance: String,
        /// Also delete the data directory (only one pgoci created and
        /// initialised). At a terminal pgoci asks for the instance name to
        /// be typed; without one it needs --yes.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Check whether an install would work on this host (exit 6 if not).
    Doctor {
        /// Also check a bundle: integrity, platform, shared libraries.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Also check that this port is free.
        #[arg(long)]
        port: Option<u16>,
        /// Check the bundle's libraries for this --libraries mode.
        #[arg(long, value_enum, default_value_t)]
        libraries: LibraryMode,
    },
    /// Serve a bundle read-only as an OCI registry (the pull side of the
    /// distribution spec), straight from the layout without copying it.
    ///
    /// Each image is served under the repository it came from, without
    /// the registry (`reg.example/pgoci/postgresql:17` as
    /// `pgoci/postgresql:17`), so a profile naming ADDR instead resolves the
    /// same references; indexes, signatures, attestations and SBOMs beside
    /// them too, with the referrers API. Manifests by tag and digest, blobs
    /// with Range; every write is refused (405). SIGTERM or SIGINT stops
    /// accepting and lets requests in flight finish (a second one stops at
    /// once). -v logs one line per request.
    Serve {
        /// Bundle directory or .tar (any OCI image layout).
        bundle: PathBuf,
        /// Address to listen on, IP:PORT (port 0: any free port, printed).
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Serve HTTPS with this certificate chain (PEM).
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require basic auth from the users of this file, one
        /// `user:password` per line.
        #[arg(long, value_name = "FILE")]
        creds_file: Option<PathBuf>,
    },
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages from these definitions (for maintainers).
    #[command(hide = true)]
    GenerateMan {
        /// Output directory (the repository keeps them in man/).
        dir: PathBuf,
    },
    /// Remove store entries and cache blobs nothing uses; print what was freed.
    Gc {
        /// A lock whose blobs must stay in the cache (repeatable).
        #[arg(long, value_name = "FILE")]
        keep: Vec<PathBuf>,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// The flags every command that changes the host takes.
#[derive(Debug, Args, Clone, Default)]
pub struct ChangeArgs {
    /// Print the plan and change nothing (needs no root).
    #[arg(long)]
    pub check: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// If another pgoci is changing the same prefix, fail (exit 6) instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args, Clone)]
pub struct UpgradeArgs {
    /// The instance to upgrade.
    #[arg(long)]
    pub instance: String,
    /// Upgrade from a bundle.
    #[arg(long, conflicts_with_all = ["lock", "ext"])]
    pub bundle: Option<PathBuf>,
    /// Upgrade to this lock.
    #[arg(long, conflicts_with = "ext")]
    pub lock: Option<PathBuf>,
    /// Resolve anew with this (complete) extension set, NAME[@VERSION].
    #[arg(long = "ext", value_name = "NAME[@VERSION]")]
    pub ext: Vec<String>,
    /// A major upgrade to PostgreSQL N with pg_upgrade: every check runs
    /// while the old server is up, the old data directory is kept until
    /// --finalize.
    #[arg(long, value_name = "N")]
    pub major: Option<u32>,
    /// How pg_upgrade moves the data files [default: clone where the file
    /// system reflinks, else copy]. With link, rollback is impossible once
    /// the new server has started.
    #[arg(long, value_enum, requires = "major")]
    pub method: Option<MethodArg>,
    /// Remove the old data directory a finished major upgrade kept (and the
    /// old major's generations): rollback cannot cross the upgrade after it.
    #[arg(long, conflicts_with_all = ["bundle", "lock", "ext", "major", "method"])]
    pub finalize: bool,
    /// Run `ALTER EXTENSION … UPDATE` after the switch where the new files'
    /// default version differs (a major upgrade always does).
    #[arg(long)]
    pub update_extensions: bool,
    /// The data would run on another collation library (glibc or ICU
    /// version): reindex what uses an affected collation, then refresh the
    /// recorded versions; or accept (refresh only, your responsibility).
    #[arg(long, value_enum, value_name = "CHOICE")]
    pub collation_change: Option<CollationChangeArg>,
    /// Where the server's shared libraries may come from.
    #[arg(long, value_enum, default_value_t)]
    pub libraries: LibraryMode,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `--method` of a major upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Clone,
    Copy,
    Link,
}

impl From<MethodArg> for pgoci::install::cluster::Method {
    fn from(m: MethodArg) -> Self {
        use pgoci::install::cluster::Method;
        match m {
            MethodArg::Clone => Method::Clone,
            MethodArg::Copy => Method::Copy,
            MethodArg::Link => Method::Link,
        }
    }
}

/// `--collation-change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CollationChangeArg {
    Reindex,
    Accept,
}

impl From<CollationChangeArg> for pgoci::install::collation::Choice {
    fn from(c: CollationChangeArg) -> Self {
        use pgoci::install::collation::Choice;
        match c {
            CollationChangeArg::Reindex => Choice::Reindex,
            CollationChangeArg::Accept => Choice::Accept,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Pull a lock and write it with its blobs as a bundle (directory, or .tar).
    Export {
        #[command(flatten)]
        source: LockSource,
        /// Bundle path; ending in .tar writes one tar file.
        #[arg(short, long)]
        output: PathBuf,
        /// Carry only the locked images, not what is published beside them
        /// (the index a tag names, signatures, attestations, SBOMs); asks
        /// no registry when the cache holds the images.
        #[arg(long)]
        images_only: bool,
    },
    /// Check a bundle's layout, lock and every blob's digest and size.
    Verify {
        /// Bundle directory or .tar.
        path: PathBuf,
    },
    /// Show what a bundle holds.
    Inspect {
        /// Bundle directory or .tar.
        path: PathBuf,
    },
    /// Re-publish every artifact of a bundle to another registry, keeping digests.
    Push {
        /// Bundle directory or .tar.
        path: PathBuf,
        /// Target registry, REGISTRY[/NAMESPACE]; repository paths are kept under it.
        #[arg(long)]
        to: String,
    },
}

/// A request to resolve: a major and extensions.
#[derive(Debug, Args, Clone, Default)]
pub struct RequestArgs {
    /// PostgreSQL major version.
    #[arg(long)]
    pub major: Option<u32>,
    /// Extensions, NAME[@VERSION], comma-separated or repeated.
    #[arg(long = "ext", value_name = "NAME[@VERSION]")]
    pub ext: Vec<String>,
}

/// Where a lock comes from: a file, or a request resolved now.
#[derive(Debug, Args, Clone)]
pub struct LockSource {
    /// A lock file written by `pgoci resolve` (`bundle export` and `pull`
    /// take several: one bundle for a whole site). With `install --bundle`,
    /// the digest (or its start) of one of the bundle's locks.
    #[arg(long, conflicts_with_all = ["major", "ext"], value_name = "FILE|DIGEST")]
    pub lock: Vec<PathBuf>,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args, Clone)]
pub struct InstallArgs {
    /// Install from a bundle (directory or .tar); needs no network. A
    /// bundle holding several locks needs --major N or --lock DIGEST to
    /// pick one. With --lock FILE, any OCI image layout holding that lock's
    /// blobs will do.
    #[arg(long, conflicts_with = "ext")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub source: LockSource,
    /// Instance name [default: pg<major>].
    #[arg(long)]
    pub instance: Option<String>,
    /// Port [default: 5432, or the next free one].
    #[arg(long)]
    pub port: Option<u16>,
    /// Data directory [default: /var/lib/pgoci/<instance>/data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Service user (created as a system user if missing) [default: the
    /// instance's own, else postgres]. An existing instance keeps its user:
    /// another one is refused.
    #[arg(long)]
    pub user: Option<String>,
    /// How the server is run [default: systemd when it is running, else none].
    #[arg(long, value_enum)]
    pub service: Option<ServiceKind>,
    /// Install and configure, but do not start.
    #[arg(long)]
    pub no_start: bool,
    /// Extra setting for pgoci.conf, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// initdb locale (every LC_* category). Checked before any change: it
    /// must be a locale name (exit 2), compiled on the host (exit 6; C,
    /// POSIX and C.UTF-8 always are).
    #[arg(long, default_value = InitdbSettings::DEFAULT_LOCALE, value_name = "NAME")]
    pub locale: String,
    /// initdb LC_COLLATE, when it differs from --locale (checked as --locale).
    #[arg(long, value_name = "NAME")]
    pub lc_collate: Option<String>,
    /// initdb LC_CTYPE, when it differs from --locale (checked as --locale).
    #[arg(long, value_name = "NAME")]
    pub lc_ctype: Option<String>,
    /// Locale provider of the cluster: libc, icu (PostgreSQL 15+, needs
    /// --icu-locale) or builtin (17+; C.UTF-8 has no collation version to
    /// track) [default: libc, or what --icu-locale/--builtin-locale implies].
    #[arg(long, value_enum, value_name = "PROVIDER")]
    pub locale_provider: Option<LocaleProvider>,
    /// ICU locale for --locale-provider icu (PostgreSQL 15+), e.g. und, de-DE.
    #[arg(long, value_name = "NAME")]
    pub icu_locale: Option<String>,
    /// Builtin locale for --locale-provider builtin (PostgreSQL 17+): C or
    /// C.UTF-8 (PG_UNICODE_FAST on 18+) [default: --locale].
    #[arg(long, value_name = "NAME")]
    pub builtin_locale: Option<String>,
    /// initdb encoding.
    #[arg(long, default_value = InitdbSettings::DEFAULT_ENCODING)]
    pub encoding: String,
    /// initdb host authentication method (local is peer).
    #[arg(long, default_value = InitdbSettings::DEFAULT_AUTH_HOST)]
    pub auth: String,
    /// Where the server's shared libraries may come from: the host's where
    /// they satisfy every need and the image's otherwise (auto), the host's
    /// only (host), or the image's own (image). Checked from the ELF files
    /// before anything changes.
    #[arg(long, value_enum, default_value_t)]
    pub libraries: LibraryMode,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// A clap value enum standing for a library enum: the library does not
/// know clap; flags become its types here, at the edge.
macro_rules! flag_enum {
    ($(#[$meta:meta])* $name:ident => $target:path { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$name> for $target {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => <$target>::$variant),+
                }
            }
        }
    };
}

flag_enum! {
    /// `--libraries`.
    LibraryMode => pgoci::install::libraries::LibraryMode {
        /// The host's where they satisfy every need, the image's where not.
        Auto,
        /// The host's only: anything missing is refused before install.
        Host,
        /// The image's own, its dynamic loader included.
        Image,
    }
}

// flag_enum! writes the enum, so `#[default]` cannot be put on a variant.
#[allow(clippy::derivable_impls)]
impl Default for LibraryMode {
    fn default() -> Self {
        LibraryMode::Auto
    }
}

flag_enum! {
    /// `--service`.
    ServiceKind => pgoci::install::service::ServiceKind {
        /// A systemd unit, `pgoci-<instance>.service`.
        Systemd,
        /// No service manager: pgoci starts and stops the server with pg_ctl.
        None,
    }
}

flag_enum! {
    /// `--locale-provider`.
    LocaleProvider => pgoci::install::locale::LocaleProvider {
        /// The C library's locales (every major).
        Libc,
        /// ICU collations (PostgreSQL 15+; needs --icu-locale).
        Icu,
        /// PostgreSQL's own C and C.UTF-8 (17+): no collation version to track.
        Builtin,
    }
}
