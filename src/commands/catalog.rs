//! `pgoci catalog`: what the profile offers.

use super::{output::Outcome, Context};
use pgoci::error::{Error, Result};
use serde_json::json;

pub fn run(ctx: &Context, only: Option<u32>) -> Result<Outcome> {
    let profile = ctx.profile()?;
    if let Some(m) = only {
        if !profile.server.majors.contains(&m) {
            return Err(Error::resolve(format!(
                "major {m} is not in profile {}; it offers: {:?}",
                profile.name, profile.server.majors
            )));
        }
    }
    let mut majors = Vec::new();
    let mut text = format!("profile {} — {}\n", profile.name, profile.description);
    for &major in profile
        .server
        .majors
        .iter()
        .filter(|m| only.is_none_or(|o| o == **m))
    {
        let exts: Vec<_> = profile
            .extensions_for(major)
            .map(|(name, e)| json!({"name": name, "versions": e.versions(major), "preload": e.preload}))
            .collect();
        text.push_str(&format!("PostgreSQL {major}\n"));
        for (name, e) in profile.extensions_for(major) {
            text.push_str(&format!("  {name} {}\n", e.versions(major).join(", ")));
        }
        majors.push(json!({"major": major, "extensions": exts}));
    }
    Ok(Outcome::new("catalog", false)
        .field("profile", &profile.name)
        .field("platforms", &profile.platforms)
        .field("majors", majors)
        .stdout(text))
}
