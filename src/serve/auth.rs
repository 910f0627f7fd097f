//! Basic auth for `pgoci serve --creds-file`: a file of `user:password`
//! lines (`#` comments and blank lines skipped). Only a sha256 of each
//! line is kept, and a request's credentials are compared with every one
//! of them in constant time, so neither a user name nor a password leaks
//! through timing.

use super::error::ServeError;
use crate::error::Result;
use base64::Engine;
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// The users a server lets in.
pub struct Users {
    /// sha256 of each `user:password`.
    hashes: Vec<[u8; 32]>,
}

fn hash(credential: &[u8]) -> [u8; 32] {
    Sha256::digest(credential).into()
}

/// Equal in time that depends on neither value.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Users {
    /// Reads a credentials file (exit 2 when it cannot be used).
    pub fn load(path: &Path) -> Result<Users> {
        let path_buf = || path.to_path_buf();
        let bytes = std::fs::read(path).map_err(|source| ServeError::CredsFileUnreadable {
            path: path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ServeError::CredsFileNotUtf8 { path: path_buf() })?;
        let mut hashes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    hashes.push(hash(line.as_bytes()))
                }
                // The line itself is a secret: only its number is shown.
                _ => {
                    return Err(ServeError::CredsFileBadLine {
                        path: path_buf(),
                        line: n + 1,
                    }
                    .into())
                }
            }
        }
        if hashes.is_empty() {
            return Err(ServeError::CredsFileEmpty { path: path_buf() }.into());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o004 != 0 {
                    tracing::warn!(
                        "--creds-file {} is readable by every user (chmod o-r it)",
                        path.display()
                    );
                }
            }
        }
        Ok(Users { hashes })
    }

    /// Whether an `Authorization` header value carries the credentials of
    /// one of the users. Every user is compared, whatever matched.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, encoded)) = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().split_once(' '))
        else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let given = hash(&decoded);
        let mut found = false;
        for h in &self.hashes {
            found |= same(h, &given);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user_pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
        .into_bytes()
    }

    #[test]
    fn only_listed_credentials_are_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(&file, "# site\nalice:s3cret:with:colons\n\nbob:pw\r\n").unwrap();
        let users = Users::load(&file).unwrap();
        assert!(users.admits(Some(&header("alice:s3cret:with:colons"))));
        assert!(users.admits(Some(&header("bob:pw"))));
        assert!(users.admits(Some(
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode("bob:pw")
            )
            .as_bytes()
        )));
        for no in ["bob:pw2", "bob:", "alice:s3cret", ":pw", ""] {
            assert!(!users.admits(Some(&header(no))), "{no}");
        }
        assert!(!users.admits(None));
        assert!(!users.admits(Some(b"Bearer abc")));
        assert!(!users.admits(Some(b"Basic !!!")));

        std::fs::write(&file, "alice\n").unwrap();
        let err = Users::load(&file).err().unwrap();
        assert_eq!(err.kind, crate::Kind::Usage);
        assert!(!err.message.contains("alice"), "{}", err.message);
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(Users::load(&file).is_err());
    }
    #[test]
    fn an_unusable_creds_file_is_typed_without_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(&file, "# site\nalice\n").unwrap();
        let err = Users::load(&file).err().unwrap();
        assert!(matches!(
            err.typed::<ServeError>(),
            Some(ServeError::CredsFileBadLine { line: 2, .. })
        ));
        assert_eq!(
            err.hint.as_deref(),
            Some("write one `user:password` per line")
        );
        assert!(!format!("{err:?}").contains("alice"));
        let err = Users::load(&dir.path().join("missing")).err().unwrap();
        assert_eq!(err.kind, crate::Kind::Usage);
        assert!(matches!(
            err.typed::<ServeError>(),
            Some(ServeError::CredsFileUnreadable { .. })
        ));
        assert_eq!(err.causes().count(), 1);
    }
}
