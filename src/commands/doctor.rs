//! `pgoci doctor`: host checks before an install; exit 6 if one fails.

use super::{output::Outcome, Context};
use pgoci::bundle::Bundle;
use pgoci::error::{Error, Result};
use pgoci::install::preflight::Check;
use std::path::Path;

pub fn run(
    ctx: &Context,
    bundle: Option<&Path>,
    port: Option<u16>,
    libraries: pgoci::install::libraries::LibraryMode,
) -> Result<Outcome> {
    let opened = bundle.map(Bundle::open).transpose()?;
    let lock = opened
        .as_ref()
        .map(|b| (&b.lock, b as &dyn pgoci::blobs::BlobSource));
    let mut report =
        pgoci::doctor::run(&ctx.layout(), lock, port, libraries, ctx.reporter.as_ref())?;
    // Signatures as `bundle verify` checks them, offline; only once the
    // blobs are known good (the integrity check passed).
    let signatures = match &opened {
        Some(b) if report.checks.iter().all(|c| c.name != "integrity" || c.ok) => {
            let statuses = signature_statuses(ctx, b)?;
            report.checks.push(signature_check(&statuses));
            Some(statuses)
        }
        _ => None,
    };
    // The collation gate of each instance already here: a C library that
    // changed under its data (a host OS upgrade) refuses its next start.
    let layout = ctx.layout();
    let mut gates = Vec::new();
    for st in pgoci::install::other_instances(&layout, "")? {
        if let Some(g) = pgoci::install::datacare::gate_state(&layout, &st) {
            gates.push((st.instance.clone(), g));
        }
    }
    if !gates.is_empty() {
        let changed: Vec<String> = gates
            .iter()
            .filter_map(|(name, g)| {
                g.change
                    .as_ref()
                    .map(|c| format!("{name}: data last used with {}, now {}", c.from, c.to))
            })
            .collect();
        report.checks.push(match changed.is_empty() {
            true => Check::new(
                "collation",
                true,
                format!(
                    "{} instance(s) run on the collation libraries their data was last used with",
                    gates.len()
                ),
            ),
            false => Check::new(
                "collation",
                false,
                format!(
                    "{}; starts are refused until `pgoci collation --instance NAME --collation-change reindex|accept`",
                    changed.join("; ")
                ),
            ),
        });
    }
    let checks = &report.checks;
    let mut text = String::new();
    for c in checks {
        text.push_str(&format!(
            "{} {:<10} {}\n",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    if let Some(libs) = &report.libraries {
        text.push_str(&format!(
            "\nlibraries (--libraries {}):\n",
            serde_json::to_value(libs.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ));
        // The host's own libraries are the usual case: counted; the table
        // lists what comes from elsewhere or is missing.
        let shown: Vec<_> = libs
            .rows
            .iter()
            .filter(|r| !r.found.starts_with("host "))
            .collect();
        let width = shown
            .iter()
            .map(|r| r.needed_by.len())
            .max()
            .unwrap_or(0)
            .min(40);
        for r in &shown {
            text.push_str(&format!(
                "  {:<width$}  {:<32}  {}\n",
                r.needed_by, r.need, r.found
            ));
        }
        text.push_str(&format!(
            "  {} needs met by the host; {} ELF files read\n",
            libs.rows.len() - shown.len(),
            libs.files_checked
        ));
        for m in &libs.optional_missing {
            text.push_str(&format!("  optional module: {m}\n"));
        }
    }
    if let Some(rows) = &signatures {
        text.push_str("\nsignatures:\n");
        let width = rows
            .iter()
            .map(|r| r.image.len())
            .max()
            .unwrap_or(0)
            .min(60);
        for r in rows {
            text.push_str(&format!(
                "  {:<8}  {:<width$}  {}{}\n",
                r.status,
                r.image,
                r.signer
                    .as_deref()
                    .map(|s| format!("by {s}: "))
                    .unwrap_or_default(),
                r.detail
            ));
        }
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    // Every check is in the document, on success and on failure alike.
    let mut outcome = Outcome::new("doctor", false)
        .field(
            "instances",
            gates
                .iter()
                .map(|(name, g)| serde_json::json!({"name": name, "collation": g}))
                .collect::<Vec<_>>(),
        )
        .field("checks", checks)
        .field("libraries", &report.libraries)
        .field("signatures", &signatures)
        .stdout(text);
    if !failed.is_empty() {
        outcome = outcome.failed(
            Error::host(format!("an install would fail here: {}", failed.join(", ")))
                .hint("fix the checks marked FAIL above"),
        );
    }
    Ok(outcome)
}

/// Every image of every lock of the bundle with its signature status
/// under the policies in force (`--require-signature-key`, the profile's).
fn signature_statuses(
    ctx: &Context,
    bundle: &Bundle,
) -> Result<Vec<pgoci::signature::record::SignatureStatus>> {
    let policies = ctx.policies()?;
    let locks: Vec<&pgoci::lock::Lock> = bundle.locks.iter().map(|(l, _)| l).collect();
    let carried = bundle.companions()?;
    Ok(pgoci::signature::record::statuses(
        &locks, &carried, bundle, &policies,
    ))
}

/// One table row for them: failed when a required signature is missing
/// or one does not verify.
fn signature_check(rows: &[pgoci::signature::record::SignatureStatus]) -> Check {
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    let bad: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.image.as_str())
        .collect();
    if !bad.is_empty() {
        return Check::new(
            "signatures",
            false,
            format!("not validly signed as required: {}", bad.join(", ")),
        );
    }
    Check::new(
        "signatures",
        true,
        format!(
            "{} signed, {} recorded (unchecked), {} unsigned",
            count("signed"),
            count("recorded"),
            count("unsigned")
        ),
    )
}
