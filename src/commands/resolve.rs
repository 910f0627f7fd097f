//! `pgoci resolve`: request → lock file.

use super::{output::Outcome, Context};
use crate::cli::{LockSource, RequestArgs};
use pgoci::error::{IoContext, Result};
use std::path::Path;

pub fn run(ctx: &Context, request: &RequestArgs, output: &Path) -> Result<Outcome> {
    let lock = ctx.lock(&LockSource {
        lock: Vec::new(),
        request: request.clone(),
    })?;
    let text = lock.to_yaml()?;
    let digest = lock.digest()?;
    let mut outcome = Outcome::new("resolve", true)
        .field("lock_digest", digest.to_string())
        .field("lock", &lock);
    if output == Path::new("-") {
        outcome = outcome.stdout(text);
    } else {
        let unchanged = std::fs::read_to_string(output).ok().as_deref() == Some(text.as_str());
        if !unchanged {
            pgoci::fsutil::write_atomic(output, text.as_bytes())?;
        }
        std::fs::metadata(output).with_path(output, "stat")?;
        outcome.json["changed"] = (!unchanged).into();
        outcome = outcome.field("path", output).note(format!(
            "wrote {} (PostgreSQL {} {}, {} extension(s), lock {})",
            output.display(),
            lock.major(),
            lock.server.version,
            lock.extensions.len(),
            digest
        ));
    }
    Ok(outcome)
}
