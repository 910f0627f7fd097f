//! `pgoci bundle export|verify|inspect`.

use super::{output::Outcome, pull::pull_all, Context};
use crate::cli::BundleCommand;
use indicatif::HumanBytes;
use pgoci::bundle::{self, Bundle};
use pgoci::error::Result;
use serde_json::json;

pub fn run(ctx: &Context, cmd: BundleCommand) -> Result<Outcome> {
    match cmd {
        BundleCommand::Export {
            source,
            output,
            images_only,
        } => {
            // Nothing is fetched for a target that would be refused.
            bundle::check_target(&output)?;
            let locks = ctx.locks(&source)?;
            let (cache, _, companions) = pull_all(ctx, &locks, !images_only)?;
            let report = bundle::export_with(&locks, &companions, &cache, &output)?;
            Ok(Outcome::new("bundle export", true)
                .field("path", &report.path)
                .field("companions", report.companions)
                .field("format", report.format)
                .field("size", report.size)
                .field("blobs", report.blobs)
                .field("lock_digest", report.lock_digest.to_string())
                .field(
                    "locks",
                    report
                        .locks
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>(),
                )
                .note(format!(
                    "wrote bundle {} ({}, {}, {} blobs, {} manifest(s) beside the images, {})",
                    report.path.display(),
                    report.format,
                    HumanBytes(report.size),
                    report.blobs,
                    report.companions,
                    match report.locks.as_slice() {
                        [one] => format!("lock {one}"),
                        all => format!("{} locks", all.len()),
                    }
                )))
        }
        BundleCommand::Verify { path } => {
            let bundle = Bundle::open(&path)?;
            let blobs = bundle.verify(ctx.reporter.as_ref())?;
            let locks: Vec<&pgoci::lock::Lock> = bundle.locks.iter().map(|(l, _)| l).collect();
            let signatures = ctx.check_signatures(&locks, || bundle.companions(), &bundle)?;
            let mut outcome = Outcome::new("bundle verify", false);
            if signatures > 0 {
                // Only when a policy asked: the document's shape is unchanged otherwise.
                outcome = outcome.field("signatures", signatures);
            }
            Ok(outcome
                .field("path", &path)
                .field("blobs", blobs)
                .field("lock_digest", bundle.lock_digest.to_string())
                .note(format!(
                    "bundle {} is intact: {blobs} blobs verified{}",
                    path.display(),
                    match signatures {
                        0 => String::new(),
                        n => format!(", {n} signature(s) checked"),
                    }
                )))
        }
        BundleCommand::Push { path, to } => {
            pgoci::publish::check_target(&to)?;
            let bundle = Bundle::open(&path)?;
            let registry = ctx.registry()?;
            let report = ctx.block_on(pgoci::publish::push(
                std::sync::Arc::new(bundle),
                &registry,
                &to,
            ))?;
            let mut outcome = Outcome::new("bundle push", report.blobs_pushed > 0)
                .field("to", &to)
                .field("artifacts", &report.artifacts)
                .field("companions", &report.companions)
                .field("blobs_pushed", report.blobs_pushed)
                .field("blobs_present", report.blobs_present);
            let mut text = String::new();
            for a in &report.artifacts {
                text.push_str(&format!("{}@{}\n", a.to, a.digest));
            }
            for c in &report.companions {
                text.push_str(&format!("{} {}\n", c.role, c.to));
            }
            outcome = outcome.stdout(text).note(format!(
                "pushed {} artifact(s) and {} manifest(s) beside them to {to}: {} blob(s) uploaded, {} already there",
                report.artifacts.len(),
                report.companions.len(),
                report.blobs_pushed,
                report.blobs_present
            ));
            Ok(outcome)
        }
        BundleCommand::Inspect { path } => {
            let bundle = Bundle::open(&path)?;
            let mut text = format!("bundle {}\n", path.display());
            let mut locks = Vec::new();
            for (lock, digest) in &bundle.locks {
                text.push_str(&format!(
                    "  lock {}\n  platform {}\n  PostgreSQL {} ({}) {}\n",
                    digest,
                    lock.platform,
                    lock.major(),
                    lock.server.version,
                    HumanBytes(lock.server.pinned.download_size())
                ));
                for e in &lock.extensions {
                    text.push_str(&format!(
                        "  extension {} {} {}\n",
                        e.name,
                        e.version,
                        HumanBytes(e.pinned.download_size())
                    ));
                }
                let mut signatures = Vec::new();
                for p in lock.artifacts() {
                    if let Some(sig) = &p.signature {
                        text.push_str(&format!(
                            "  signature {} of {} by {}\n",
                            sig.manifest.digest, p.reference, sig.signer
                        ));
                        signatures.push(json!({"image": p.reference, "manifest": sig.manifest.digest, "signs": sig.signed, "signer": sig.signer}));
                    }
                }
                let extensions: Vec<_> = lock
                    .extensions
                    .iter()
                    .map(|e| json!({"name": e.name, "version": e.version, "digest": e.pinned.digest, "size": e.pinned.download_size()}))
                    .collect();
                let mut entry = json!({
                    "lock_digest": digest.to_string(),
                    "platform": lock.platform,
                    "server": {"major": lock.major(), "version": lock.server.version, "digest": lock.server.pinned.digest, "size": lock.server.pinned.download_size()},
                    "extensions": extensions,
                });
                if !signatures.is_empty() {
                    entry["signatures"] = signatures.into();
                }
                locks.push(entry);
            }
            let beside = bundle.companions()?;
            let mut listed = Vec::new();
            for c in &beside {
                let size = c.manifest.size + c.blobs.iter().map(|b| b.size).sum::<u64>();
                text.push_str(&format!(
                    "  {} {}{}{} {}\n",
                    c.role.as_str(),
                    c.reference(),
                    c.artifact_type
                        .as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default(),
                    c.subject
                        .as_ref()
                        .map(|s| format!(" of {}", s.short()))
                        .unwrap_or_default(),
                    HumanBytes(size)
                ));
                listed.push(json!({
                    "role": c.role.as_str(),
                    "reference": c.reference(),
                    "digest": c.manifest.digest,
                    "media_type": c.manifest.media_type,
                    "artifact_type": c.artifact_type,
                    "refers": c.subject,
                    "size": size,
                }));
            }
            text.push_str(&format!("  total {}\n", HumanBytes(bundle.blob_bytes())));
            // The first lock's fields at the top, as for one-lock bundles.
            let first = locks[0].clone();
            let mut outcome = Outcome::new("bundle inspect", false)
                .field("path", &path)
                .field("lock_digest", &first["lock_digest"])
                .field("platform", &first["platform"])
                .field("server", &first["server"])
                .field("extensions", &first["extensions"])
                .field("size", bundle.blob_bytes())
                .field("companions", listed);
            if let Some(signatures) = first.get("signatures") {
                outcome = outcome.field("signatures", signatures);
            }
            if locks.len() > 1 {
                outcome = outcome.field("locks", locks);
            }
            Ok(outcome.stdout(text))
        }
    }
}
