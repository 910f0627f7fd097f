//! Quoting for the files pgoci writes, each in its format's own rules, so
//! a value can never end its line or its literal. Values are checked when
//! documents are parsed (see [`crate::names`]); these refuse again what
//! cannot be quoted (control characters), as the last line of defence.

use crate::names::{check_text, EnvKey, Invalid};
use std::path::Path;

/// A PostgreSQL configuration string literal. The config-file lexer
/// (guc-file.l `STRING`: `'([^'\\\n]|\\.|'')*'`) ends a literal at `'`
/// and reads `\` as an escape, so both are doubled; a newline cannot be
/// inside a literal at all, so control characters are refused.
pub fn pg_quote(value: &str) -> Result<String, Invalid> {
    check_text("configuration value", value)?;
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// An SQL identifier (`"name"`, `"` doubled), for names read from a
/// catalog and sent back in a statement (`ALTER EXTENSION "x" UPDATE`).
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal (`'value'`, `'` doubled; standard strings, so a
/// backslash is itself).
pub fn pg_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// One double-quoted systemd word (systemd.syntax(7)): `\` and `"` are
/// backslash-escaped, `%` is doubled (specifiers are expanded inside
/// quotes too), control characters are refused (a newline ends the
/// directive). `$` stays as is: right for `Environment=` and path lists,
/// not for `ExecStart=` (see [`systemd_exec_arg`]).
pub fn systemd_quote(value: &str) -> Result<String, Invalid> {
    check_text("unit value", value)?;
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The word for `Environment=`: `"KEY=value"`, quoted as one word.
pub fn systemd_env(key: &EnvKey, value: &str) -> Result<String, Invalid> {
    systemd_quote(&format!("{key}={value}"))
}

/// One argument of `ExecStart=`/`ExecReload=`: quoted as
/// [`systemd_quote`], and `$` doubled, since systemd.service(5) expands
/// `$VAR`/`${VAR}` in command lines.
pub fn systemd_exec_arg(value: &str) -> Result<String, Invalid> {
    Ok(systemd_quote(value)?.replace('$', "$$"))
}

/// An absolute path for `ExecStart=`, `ReadWritePaths=` and the like, as
/// one quoted word. `$` is refused rather than escaped: `ExecStart=` needs
/// `$$` where `ReadWritePaths=` takes it literally, so no single form is
/// right for both.
pub fn systemd_path(path: &Path) -> Result<String, Invalid> {
    const RULE: &str =
        "a path in a systemd unit must be absolute UTF-8 without `$` or control characters";
    let text = path.to_str().ok_or_else(|| Invalid {
        what: "unit path".into(),
        value: path.to_string_lossy().into_owned(),
        rule: RULE,
    })?;
    if !path.is_absolute() || text.contains('$') || text.chars().any(char::is_control) {
        return Err(Invalid {
            what: "unit path".into(),
            value: text.to_string(),
            rule: RULE,
        });
    }
    systemd_quote(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_literals() {
        assert_eq!(pg_quote("postgres").unwrap(), "'postgres'");
        assert_eq!(pg_quote("it's").unwrap(), "'it''s'");
        assert_eq!(pg_quote(r"C:\x").unwrap(), r"'C:\\x'");
        assert_eq!(pg_quote(r"\'").unwrap(), r"'\\'''");
        for bad in ["a'\narchive_command = 'rm -rf /'", "a\rb", "a\0", "x\u{7f}"] {
            let err = pg_quote(bad).unwrap_err();
            assert!(err.to_string().contains("control characters"), "{err}");
        }
    }

    #[test]
    fn systemd_words() {
        assert_eq!(systemd_quote("a b").unwrap(), r#""a b""#);
        assert_eq!(systemd_quote(r#"a"b\c%i"#).unwrap(), r#""a\"b\\c%%i""#);
        assert_eq!(systemd_quote("$HOME").unwrap(), r#""$HOME""#);
        assert_eq!(systemd_exec_arg("$HOME %h").unwrap(), r#""$$HOME %%h""#);
        let key = EnvKey::parse("PROJ_DATA").unwrap();
        assert_eq!(
            systemd_env(&key, "/g/share proj").unwrap(),
            r#""PROJ_DATA=/g/share proj""#
        );
        // The injection found: a value ending the quote and adding lines.
        for bad in [
            "x\"\nUser=root\nExecStartPre=+/bin/sh -c id\n",
            "a\rb",
            "a\0b",
        ] {
            assert!(systemd_quote(bad).is_err(), "{bad:?}");
            assert!(systemd_env(&key, bad).is_err(), "{bad:?}");
        }
        // A trailing backslash cannot continue the line: it is escaped.
        assert_eq!(systemd_quote("a\\").unwrap(), r#""a\\""#);
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            systemd_path(Path::new("/var/lib/pgoci/pg 17/data")).unwrap(),
            r#""/var/lib/pgoci/pg 17/data""#
        );
        assert_eq!(
            systemd_path(Path::new("/srv/100%")).unwrap(),
            r#""/srv/100%%""#
        );
        for bad in ["relative/x", "/a/$HOME", "/a\nUser=root", ""] {
            assert!(systemd_path(Path::new(bad)).is_err(), "{bad:?}");
        }
    }
}
