//! `pgoci serve`.

use super::output::{say, Outcome};
use super::Context;
use pgoci::error::Result;
use pgoci::serve::{Options, Ready};
use std::net::SocketAddr;
use std::path::PathBuf;

pub fn run(
    ctx: &Context,
    bundle: PathBuf,
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    creds_file: Option<PathBuf>,
) -> Result<Outcome> {
    let quiet = ctx.settings.quiet;
    let options = Options {
        bundle,
        listen,
        tls,
        creds_file,
    };
    let summary = pgoci::serve::run(&options, |ready: &Ready| {
        if quiet {
            return;
        }
        let c = ready.counts;
        say(format_args!(
            "serving {} at {}://{}/v2/ ({} repositories, {} tags, {} manifests, {} blobs{}); stop with SIGTERM or Ctrl-C",
            options.bundle.display(),
            if ready.tls { "https" } else { "http" },
            ready.address,
            c.repositories,
            c.tags,
            c.manifests,
            c.blobs,
            if ready.auth { ", basic auth" } else { "" }
        ));
    })?;
    Ok(Outcome::new("serve", false)
        .field("bundle", &options.bundle)
        .field("address", summary.address.to_string())
        .field("requests", summary.requests)
        .field("forced", summary.forced)
        .note(format!(
            "stopped serving {} after {} request(s){}",
            options.bundle.display(),
            summary.requests,
            if summary.forced {
                " (stopped before every request had finished)"
            } else {
                ""
            }
        )))
}
