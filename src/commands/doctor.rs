//! `pgoci doctor`: host checks before an install; exit 6 if one fails.

use super::{output::Outcome, Context};
use pgoci::bundle::Bundle;
use pgoci::error::{Error, Result};
use std::path::Path;

pub fn run(ctx: &Context, bundle: Option<&Path>, port: Option<u16>) -> Result<Outcome> {
    let opened = bundle.map(Bundle::open).transpose()?;
    let lock = opened
        .as_ref()
        .map(|b| (&b.lock, b as &dyn pgoci::blobs::BlobSource));
    let checks = pgoci::host::doctor(&ctx.layout(), lock, port, ctx.reporter.as_ref())?;
    let mut text = String::new();
    for c in &checks {
        text.push_str(&format!(
            "{} {:<10} {}\n",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        eprint!("{text}");
        return Err(
            Error::host(format!("an install would fail here: {}", failed.join(", ")))
                .hint("fix the checks marked FAIL above"),
        );
    }
    Ok(Outcome::new("doctor", false)
        .field("checks", &checks)
        .stdout(text))
}
