//! Registry credentials, looked up in the documented order: `--creds`,
//! `PGOCI_REGISTRY_USER`/`PGOCI_REGISTRY_PASSWORD`, `REGISTRY_AUTH_FILE`,
//! then `~/.docker/config.json` (`credHelpers`/`credsStore`, then `auths`). Each credential remembers where it came
//! from so an auth failure can say which source to fix — never the secret.

use crate::error::{Classify, Kind, Result};
use base64::Engine as _;
use std::path::{Path, PathBuf};

/// A credential source that cannot be used: a bad `--creds`, an auth file
/// that is not what it should be (exit 2), or a credential helper that
/// fails (exit 4). Never holds the secret, nor a helper's answer.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("--creds must be USER:PASSWORD")]
    Flag,
    #[error("auth file {} is not valid JSON: {source}", path.display())]
    AuthFileJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("auth file {}: the entry for {registry} is not base64 user:password", path.display())]
    EntryNotBase64 { path: PathBuf, registry: String },
    #[error("auth file {}: the entry for {registry} is not user:password", path.display())]
    EntryNotUserPassword { path: PathBuf, registry: String },
    /// The auth file names a helper that cannot be started.
    #[error("{} names credential helper {program}, which cannot run: {source}", file.display())]
    HelperMissing {
        file: PathBuf,
        program: String,
        source: std::io::Error,
    },
    /// The helper started but could not be waited for.
    #[error("{program} failed: {source}")]
    HelperFailed {
        program: String,
        source: std::io::Error,
    },
    /// The helper's answer is not `{"Username", "Secret"}` (not shown: it
    /// may hold the secret).
    #[error("{program} answered something that is not a credential")]
    HelperAnswer { program: String },
}

impl Classify for CredentialError {
    fn kind(&self) -> Kind {
        match self {
            CredentialError::HelperMissing { .. }
            | CredentialError::HelperFailed { .. }
            | CredentialError::HelperAnswer { .. } => Kind::Registry,
            _ => Kind::Usage,
        }
    }
}

/// Where a credential was found (for messages; never holds the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    AuthFile(PathBuf),
    /// A docker credential helper (`docker-credential-<name>`), named in a file.
    Helper(String, PathBuf),
    Anonymous,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("--creds"),
            Source::Env => f.write_str("PGOCI_REGISTRY_USER/PGOCI_REGISTRY_PASSWORD"),
            Source::AuthFile(p) => write!(f, "{}", p.display()),
            Source::Helper(h, p) => write!(
                f,
                "credential helper docker-credential-{h} (from {})",
                p.display()
            ),
            Source::Anonymous => f.write_str("no credentials (anonymous)"),
        }
    }
}

/// A username/password pair with its source. `Debug` hides the password.
#[derive(Clone)]
pub struct Credential {
    pub user: String,
    pub password: String,
    pub source: Source,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({} from {})", self.user, self.source)
    }
}

/// Finds the credential for `registry` (host[:port]), if any source has one.
pub fn lookup(registry: &str, creds_flag: Option<&str>) -> Result<Option<Credential>> {
    if let Some(flag) = creds_flag {
        let (user, password) = flag.split_once(':').ok_or(CredentialError::Flag)?;
        return Ok(Some(Credential {
            user: user.into(),
            password: password.into(),
            source: Source::Flag,
        }));
    }
    if let (Ok(user), Ok(password)) = (
        std::env::var("PGOCI_REGISTRY_USER"),
        std::env::var("PGOCI_REGISTRY_PASSWORD"),
    ) {
        return Ok(Some(Credential {
            user,
            password,
            source: Source::Env,
        }));
    }
    for file in auth_files() {
        if let Some(cred) = from_auth_file(&file, registry)? {
            return Ok(Some(cred));
        }
    }
    Ok(None)
}

/// Candidate auth files, in order.
fn auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(path) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(path));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        files.push(PathBuf::from(dir).join("config.json"));
    } else if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".docker/config.json"));
    }
    files
}

/// Reads `auths.<registry>.auth` (base64 `user:password`) from a
/// docker/containers auth file.
fn from_auth_file(path: &PathBuf, registry: &str) -> Result<Option<Credential>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| CredentialError::AuthFileJson {
            path: path.clone(),
            source,
        })?;
    if let Some(helper) = doc
        .get("credHelpers")
        .and_then(|h| h.get(registry))
        .or_else(|| doc.get("credsStore"))
        .and_then(|h| h.as_str())
    {
        if let Some(cred) = from_helper(helper, registry, path)? {
            return Ok(Some(cred));
        }
    }
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let entry = auths.iter().find(|(key, _)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        key.trim_end_matches('/') == registry || key.split('/').next() == Some(registry)
    });
    let Some((_, entry)) = entry else {
        return Ok(None);
    };
    let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| CredentialError::EntryNotBase64 {
            path: path.clone(),
            registry: registry.to_string(),
        })?;
    let (user, password) =
        decoded
            .split_once(':')
            .ok_or_else(|| CredentialError::EntryNotUserPassword {
                path: path.clone(),
                registry: registry.to_string(),
            })?;
    Ok(Some(Credential {
        user: user.into(),
        password: password.into(),
        source: Source::AuthFile(path.clone()),
    }))
}

/// Asks `docker-credential-<helper> get` for a registry's credential
/// (the docker credential-helper protocol: host on stdin, JSON out).
fn from_helper(helper: &str, registry: &str, file: &Path) -> Result<Option<Credential>> {
    use std::io::Write;
    let program = format!("docker-credential-{helper}");
    let mut child = match std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(source) => {
            return Err(CredentialError::HelperMissing {
                file: file.to_path_buf(),
                program,
                source,
            }
            .into())
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| CredentialError::HelperFailed {
            program: program.clone(),
            source,
        })?;
    if !out.status.success() {
        // "credentials not found" is a normal answer: fall through to other sources.
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperAnswer {
        username: String,
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| CredentialError::HelperAnswer { program })?;
    if answer.username == "<token>" {
        return Ok(None); // an identity token, not usable as basic auth
    }
    Ok(Some(Credential {
        user: answer.username,
        password: answer.secret,
        source: Source::Helper(helper.to_string(), file.to_path_buf()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_credential_sources_are_typed() {
        let err = lookup("r:5000", Some("no-colon")).unwrap_err();
        assert_eq!(err.kind, Kind::Usage);
        assert!(matches!(
            err.typed::<CredentialError>(),
            Some(CredentialError::Flag)
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, "{not json").unwrap();
        let err = from_auth_file(&file, "r:5000").unwrap_err();
        assert_eq!(err.kind, Kind::Usage);
        assert!(matches!(
            err.typed::<CredentialError>(),
            Some(CredentialError::AuthFileJson { .. })
        ));
        std::fs::write(&file, r#"{"auths":{"r:5000":{"auth":"%%%"}}}"#).unwrap();
        let err = from_auth_file(&file, "r:5000").unwrap_err();
        assert!(matches!(
            err.typed::<CredentialError>(),
            Some(CredentialError::EntryNotBase64 { registry, .. }) if registry == "r:5000"
        ));
        // A helper that is not there is a registry error naming the file.
        std::fs::write(&file, r#"{"credsStore":"pgoci-test-none"}"#).unwrap();
        let err = from_auth_file(&file, "r:5000").unwrap_err();
        assert_eq!(err.kind, Kind::Registry);
        assert!(matches!(
            err.typed::<CredentialError>(),
            Some(CredentialError::HelperMissing { program, .. })
                if program == "docker-credential-pgoci-test-none"
        ));
    }
}
