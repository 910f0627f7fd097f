//! Questions for a person at a terminal (dialoguer). Only used when stdin
//! and stdout are terminals and neither `--yes` nor `--json` was given;
//! otherwise a missing choice is a usage error naming the flag.

use dialoguer::{theme::ColorfulTheme, Confirm, Input, MultiSelect, Select};
use pgoci::error::{Error, Result};
use pgoci::install::locale::LocaleProvider;
use pgoci::install::postgres::InitdbSettings;
use pgoci::names::LocaleName;
use pgoci::profile::Profile;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Whether pgoci may ask questions.
pub fn interactive(yes: bool, json: bool) -> bool {
    !yes && !json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

fn failed(e: dialoguer::Error) -> Error {
    Error::usage(format!("prompt failed: {e}"))
}

/// Asks for the major (select) from the profile.
pub fn major(profile: &Profile) -> Result<u32> {
    let items: Vec<String> = profile
        .server
        .majors
        .iter()
        .map(|m| format!("PostgreSQL {m}"))
        .collect();
    let pick = Select::with_theme(&ColorfulTheme::default())
        .with_prompt("PostgreSQL major")
        .items(&items)
        .default(items.len().saturating_sub(1))
        .interact()
        .map_err(failed)?;
    Ok(profile.server.majors[pick])
}

/// Asks for extensions (multi-select of those built for `major`).
pub fn extensions(profile: &Profile, major: u32) -> Result<Vec<String>> {
    let offered: Vec<(&pgoci::names::ExtensionName, String)> = profile
        .extensions_for(major)
        .map(|(name, e)| (name, format!("{name} {}", e.versions(major)[0])))
        .collect();
    if offered.is_empty() {
        return Ok(Vec::new());
    }
    let labels: Vec<&str> = offered.iter().map(|(_, l)| l.as_str()).collect();
    let picks = MultiSelect::with_theme(&ColorfulTheme::default())
        .with_prompt("Extensions (space to select, enter to accept)")
        .items(&labels)
        .interact()
        .map_err(failed)?;
    Ok(picks
        .into_iter()
        .map(|i| offered[i].0.to_string())
        .collect())
}

/// Asks for the locale provider the major offers (nothing to ask before
/// PostgreSQL 15, where libc is the only one); icu asks for its locale.
pub fn locale_provider(initdb: &mut InitdbSettings, major: u32) -> Result<()> {
    let mut offered = vec![(
        LocaleProvider::Libc,
        format!("libc: the C library's locale {}", initdb.locale),
    )];
    if major >= LocaleProvider::Builtin.since() {
        offered.push((
            LocaleProvider::Builtin,
            "builtin C.UTF-8: no collation version to track (safe across glibc upgrades)".into(),
        ));
    }
    if major >= LocaleProvider::Icu.since() {
        offered.push((LocaleProvider::Icu, "icu: ICU collations".into()));
    }
    if offered.len() == 1 {
        return Ok(());
    }
    let labels: Vec<&str> = offered.iter().map(|(_, l)| l.as_str()).collect();
    let pick = Select::with_theme(&ColorfulTheme::default())
        .with_prompt("Locale provider")
        .items(&labels)
        .default(0)
        .interact()
        .map_err(failed)?;
    initdb.provider = offered[pick].0;
    match initdb.provider {
        LocaleProvider::Libc => {}
        LocaleProvider::Builtin => {
            initdb.builtin_locale = Some(LocaleName::parse("C.UTF-8").expect("a locale name"));
        }
        LocaleProvider::Icu => {
            let name = text("ICU locale", "und".into())?;
            initdb.icu_locale = Some(LocaleName::parse(&name).map_err(|e| {
                Error::usage(format!("ICU locale: {e}")).hint("e.g. und, en-US, de-DE")
            })?);
        }
    }
    Ok(())
}

/// Asks for a text value with a default.
pub fn text(prompt: &str, default: String) -> Result<String> {
    Input::with_theme(&ColorfulTheme::default())
        .with_prompt(prompt)
        .default(default)
        .interact_text()
        .map_err(failed)
}

/// Asks for the port with a default.
pub fn port(default: u16) -> Result<u16> {
    Input::with_theme(&ColorfulTheme::default())
        .with_prompt("Port")
        .default(default)
        .interact_text()
        .map_err(failed)
}

/// Asks for the data directory with a default.
pub fn data_dir(default: PathBuf) -> Result<PathBuf> {
    Ok(PathBuf::from(text(
        "Data directory",
        default.display().to_string(),
    )?))
}

/// Shows nothing itself; asks to go ahead.
pub fn confirm(prompt: &str) -> Result<bool> {
    Confirm::with_theme(&ColorfulTheme::default())
        .with_prompt(prompt)
        .default(true)
        .interact()
        .map_err(failed)
}
