//! Talking to a running cluster with its own client tools, as the service
//! user over the instance's socket: catalog queries (databases, their
//! extensions and collations, the initdb options a new cluster must share),
//! statements (`ALTER EXTENSION … UPDATE`, `REINDEX`, collation refreshes),
//! and the offline tools of a major upgrade (`pg_upgrade`, `vacuumdb`).

use super::postgres::{as_user, last_lines, run};
use super::runtime::RuntimeEnv;
use super::users::Account;
use crate::error::{Classify, Kind, Result};
use crate::render::{pg_ident, pg_literal};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A client tool or `pg_upgrade` failed against a cluster, or a catalog
/// answered what pgoci cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("psql in database {database} failed: {output}")]
    Psql { database: String, output: String },
    #[error("{sql}: no result in database {database}")]
    NoResult { sql: String, database: String },
    #[error("template0 is missing from pg_database")]
    NoTemplate0,
    #[error("unexpected catalog row: {row:?}")]
    UnexpectedRow { row: Vec<String> },
    #[error("vacuumdb failed: {output}")]
    Vacuumdb { output: String },
    #[error("library paths cannot be joined: {0}")]
    LibraryPaths(#[source] std::env::JoinPathsError),
    #[error("pg_upgrade{} failed: {output}", if *check { " --check" } else { "" })]
    PgUpgrade {
        check: bool,
        output: String,
        new_data: PathBuf,
    },
}

impl Classify for ClusterError {
    fn kind(&self) -> Kind {
        match self {
            ClusterError::LibraryPaths(_) => Kind::Internal,
            // What pg_upgrade refuses is the data's or the host's.
            ClusterError::PgUpgrade { .. } => Kind::Host,
            _ => Kind::Service,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ClusterError::PgUpgrade { new_data, .. } => Some(format!(
                "its reports are under {}/pg_upgrade_output.d",
                new_data.display()
            )),
            _ => None,
        }
    }
}

/// Field and record separators of query output (never in catalog names
/// pgoci asks for, unlike tabs and newlines).
const FIELD: char = '\u{1f}';
const RECORD: char = '\u{1e}';

/// A running server: where its tools are and how to reach it.
#[derive(Debug, Clone)]
pub struct Server {
    pub bin: PathBuf,
    /// Where to find client tools (`psql`, `vacuumdb`) the server's own
    /// `bin` lacks: a server image need not carry them (Debian puts them
    /// in another package); any recent client speaks to any server.
    pub client_dirs: Vec<PathBuf>,
    pub env: RuntimeEnv,
    pub account: Account,
    pub socket_dir: PathBuf,
    pub port: u16,
}

impl Server {
    fn tool(&self, name: &str) -> Command {
        let program = std::iter::once(&self.bin)
            .chain(&self.client_dirs)
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.bin.join(name));
        let mut cmd = as_user(&program, &self.account);
        if let Some(p) = &self.env.ld_library_path {
            cmd.env("LD_LIBRARY_PATH", p);
        }
        cmd.envs(&self.env.vars);
        cmd.env("PGHOST", &self.socket_dir)
            .env("PGPORT", self.port.to_string());
        cmd
    }

    /// Runs `sql` in `database`; rows of fields.
    pub fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        let mut cmd = self.tool("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(format!("--field-separator={FIELD}"))
            .arg(format!("--record-separator={RECORD}"))
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql);
        let out = run(cmd, "psql")?;
        if !out.status.success() {
            return Err(ClusterError::Psql {
                database: database.to_string(),
                output: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            }
            .into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .split(RECORD)
            .map(|r| r.trim_matches('\n'))
            .filter(|r| !r.is_empty())
            .map(|r| r.split(FIELD).map(str::to_string).collect())
            .collect())
    }

    /// One value.
    pub fn value(&self, database: &str, sql: &str) -> Result<String> {
        self.query(database, sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .ok_or_else(|| {
                ClusterError::NoResult {
                    sql: sql.to_string(),
                    database: database.to_string(),
                }
                .into()
            })
    }

    /// The databases that accept connections.
    pub fn databases(&self) -> Result<Vec<String>> {
        Ok(self
            .query(
                "postgres",
                "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname",
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// Every extension installed in every database.
    pub fn installed_extensions(&self) -> Result<Vec<super::extensions::Installed>> {
        let mut out = Vec::new();
        for db in self.databases()? {
            for row in self.query(
                &db,
                "SELECT extname, extversion FROM pg_extension ORDER BY 1",
            )? {
                if let [name, version] = row.as_slice() {
                    out.push(super::extensions::Installed {
                        database: db.clone(),
                        name: name.clone(),
                        version: version.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The initdb options of this cluster: a new cluster must be made with
    /// the same for `pg_upgrade` (template0 holds what initdb was given).
    pub fn initdb_options(&self, major: u32) -> Result<ClusterOptions> {
        let provider_col = if major >= 15 {
            "datlocprovider::text"
        } else {
            "'c'"
        };
        let icu_col = match major {
            17.. => "coalesce(datlocale, '')",
            15 | 16 => "coalesce(daticulocale, '')",
            _ => "''",
        };
        let sql = format!(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype, {provider_col}, {icu_col}, \
             current_setting('data_checksums'), current_setting('wal_segment_size') \
             FROM pg_database WHERE datname = 'template0'"
        );
        let row = self
            .query("postgres", &sql)?
            .into_iter()
            .next()
            .ok_or(ClusterError::NoTemplate0)?;
        let [encoding, collate, ctype, provider, locale, checksums, segsize] = row.as_slice()
        else {
            return Err(ClusterError::UnexpectedRow { row }.into());
        };
        Ok(ClusterOptions {
            encoding: encoding.clone(),
            lc_collate: collate.clone(),
            lc_ctype: ctype.clone(),
            provider: provider.clone(),
            provider_locale: (!locale.is_empty()).then(|| locale.clone()),
            data_checksums: checksums == "on",
            wal_segsize_mb: parse_size_mb(segsize),
        })
    }

    /// Runs one statement in `database`.
    pub fn execute(&self, database: &str, sql: &str) -> Result<()> {
        self.query(database, sql).map(drop)
    }

    /// `vacuumdb --all --analyze-in-stages` (with `--missing-stats-only`
    /// where the major has it, 18+: statistics pg_upgrade carried over stay).
    pub fn analyze_all(&self, major: u32, jobs: usize) -> Result<()> {
        let mut cmd = self.tool("vacuumdb");
        cmd.args(["--all", "--analyze-in-stages"])
            .arg(format!("--jobs={}", jobs.max(1)));
        if major >= 18 {
            cmd.arg("--missing-stats-only");
        }
        let out = run(cmd, "vacuumdb")?;
        if !out.status.success() {
            return Err(ClusterError::Vacuumdb {
                output: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            }
            .into());
        }
        Ok(())
    }

    /// `ALTER DATABASE … REFRESH COLLATION VERSION` for every database and
    /// `ALTER COLLATION … REFRESH VERSION` for every collation whose
    /// recorded version differs from the library's (15+; before 15 only
    /// collations record a version).
    pub fn refresh_collation_versions(&self, major: u32) -> Result<()> {
        // One session per database: an ICU change makes every ICU
        // collation stale (thousands), each refreshed by the server itself.
        const STALE: &str = "DO $pgoci$ DECLARE c record; BEGIN \
             FOR c IN SELECT oid::regcollation AS name FROM pg_collation \
               WHERE collversion IS NOT NULL \
               AND collversion IS DISTINCT FROM pg_collation_actual_version(oid) LOOP \
               EXECUTE format('ALTER COLLATION %s REFRESH VERSION', c.name); \
             END LOOP; END $pgoci$";
        for db in self.databases()? {
            let mut sql = String::new();
            if major >= 15 {
                sql.push_str(&format!(
                    "ALTER DATABASE {} REFRESH COLLATION VERSION; ",
                    pg_ident(&db)
                ));
            }
            sql.push_str(STALE);
            self.execute(&db, &sql)?;
        }
        Ok(())
    }
}

/// Where client tools are looked for after a server's own `bin`: the
/// host's (under `--root`, then this machine's).
pub fn host_client_dirs(layout: &super::layout::HostLayout) -> Vec<PathBuf> {
    let mut dirs = vec![layout.host("usr/bin")];
    if layout.root != Path::new("/") {
        dirs.push(PathBuf::from("/usr/bin"));
    }
    dirs
}

/// A literal for `database` in a query.
pub fn literal(value: &str) -> String {
    pg_literal(value)
}

/// `16MB` / `1GB` (as `SHOW wal_segment_size` prints) in MiB.
fn parse_size_mb(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let n: u32 = digits.parse().ok()?;
    match &text[digits.len()..] {
        "MB" => Some(n),
        "GB" => n.checked_mul(1024),
        "kB" => Some(n / 1024).filter(|m| *m > 0),
        _ => None,
    }
}

/// The options a cluster was initialised with, as its catalog says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterOptions {
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    /// `c` (libc), `i` (ICU), `b` (builtin).
    pub provider: String,
    /// The ICU or builtin locale.
    pub provider_locale: Option<String>,
    pub data_checksums: bool,
    pub wal_segsize_mb: Option<u32>,
}

/// How `pg_upgrade` moves the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Reflinks (copy-on-write): fast, and the old directory stays intact.
    Clone,
    /// Full copies: the old directory stays intact; needs the space.
    Copy,
    /// Hard links: fastest, but the old cluster is unusable once the new
    /// server has started.
    Link,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Clone => "clone",
            Method::Copy => "copy",
            Method::Link => "link",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two clusters `pg_upgrade` works on.
#[derive(Debug, Clone)]
pub struct Upgrade<'a> {
    pub old: &'a Server,
    pub old_data: &'a Path,
    pub new_bin: &'a Path,
    pub new_env: &'a RuntimeEnv,
    pub new_data: &'a Path,
    /// A port for the new cluster while pg_upgrade runs it.
    pub new_port: u16,
    pub method: Method,
    pub new_major: u32,
    pub jobs: usize,
}

impl Upgrade<'_> {
    /// Runs `pg_upgrade` (`check`: `--check`, against the running old
    /// server). Its logs go into the new data directory.
    pub fn run(&self, check: bool) -> Result<()> {
        let mut cmd = as_user(&self.new_bin.join("pg_upgrade"), &self.old.account);
        // Both servers run under pg_upgrade, so both library paths: the
        // new one's first (a library both carry is then the newer build,
        // which the old server's binaries take too; executables patched to
        // an image's loader search their RPATH before either), and the
        // variables of both.
        let paths: Vec<&std::path::Path> =
            [&self.new_env.ld_library_path, &self.old.env.ld_library_path]
                .into_iter()
                .flatten()
                .map(|p| p.as_path())
                .collect();
        if !paths.is_empty() {
            let joined = std::env::join_paths(paths).map_err(ClusterError::LibraryPaths)?;
            cmd.env("LD_LIBRARY_PATH", joined);
        }
        cmd.envs(&self.old.env.vars).envs(&self.new_env.vars);
        cmd.current_dir(self.new_data)
            .arg("--old-bindir")
            .arg(&self.old.bin)
            .arg("--new-bindir")
            .arg(self.new_bin)
            .arg("--old-datadir")
            .arg(self.old_data)
            .arg("--new-datadir")
            .arg(self.new_data)
            .arg(format!("--old-port={}", self.old.port))
            .arg(format!("--new-port={}", self.new_port))
            .arg(format!("--username={}", self.old.account.name))
            .arg(format!("--jobs={}", self.jobs.max(1)))
            .arg("--socketdir")
            .arg(self.new_data);
        match self.method {
            Method::Clone => drop(cmd.arg("--clone")),
            Method::Link => drop(cmd.arg("--link")),
            Method::Copy if self.new_major >= 17 => drop(cmd.arg("--copy")),
            Method::Copy => {}
        }
        if check {
            cmd.arg("--check");
        }
        let out = run(cmd, "pg_upgrade")?;
        if !out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            // pg_upgrade says what failed on stdout, and where its report is.
            let failing: Vec<&str> = stdout
                .lines()
                .filter(|l| {
                    let l = l.trim();
                    !l.is_empty() && !l.ends_with("ok") && !l.starts_with("Performing")
                })
                .collect();
            return Err(ClusterError::PgUpgrade {
                check,
                output: last_lines(&failing.join("\n"), 6),
                new_data: self.new_data.to_path_buf(),
            }
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_segment_sizes_read_as_show_prints_them() {
        assert_eq!(parse_size_mb("16MB"), Some(16));
        assert_eq!(parse_size_mb("1GB"), Some(1024));
        assert_eq!(parse_size_mb("x"), None);
    }
}
