//! The plan of a major upgrade in words and as `--json` shows it.

use super::*;

impl MajorPlan {
    /// The plan of an upgrade a killed run left after pg_upgrade, from
    /// its journal (the extensions are those the resumed run updates).
    pub(super) fn resumed(st: &InstanceState, rec: &MajorRecord) -> Option<MajorPlan> {
        let version = |name: &str| {
            st.generations
                .iter()
                .find(|g| g.name == name)
                .map(|g| g.server_version.clone())
                .unwrap_or_default()
        };
        Some(MajorPlan {
            from: rec.from_major,
            to: rec.to_major,
            from_version: version(&rec.from_generation),
            to_version: version(&rec.to_generation),
            method: rec.method,
            old_data_dir: rec.old_data_dir.clone(),
            new_data_dir: rec.new_data_dir.clone(),
            generation: rec.to_generation.clone(),
            options: None,
            resumed: true,
            extensions: Vec::new(),
            collation: None,
            copy_bytes: None,
            rollback: rollback_rule(rec.method, rec.from_major, &rec.old_data_dir, &st.instance),
        })
    }
}

/// What rollback can do after an upgrade by `method`, in words.
pub(super) fn rollback_rule(
    method: Method,
    from: u32,
    old_data: &Path,
    instance: &InstanceName,
) -> String {
    match method {
        Method::Link => format!(
            "--method link: `pgoci rollback` works only until the new server has started; after that the old data directory {} cannot be used",
            old_data.display()
        ),
        _ => format!(
            "`pgoci rollback` brings back PostgreSQL {from} on {} as it was at the upgrade (writes made after it are lost) until `pgoci upgrade --instance {instance} --finalize` removes it",
            old_data.display()
        ),
    }
}

/// The plan in words.
pub fn plan_lines(plan: &MajorPlan) -> Vec<String> {
    let mut lines = vec![
        format!(
            "compose generation {} (PostgreSQL {})",
            plan.generation, plan.to_version
        ),
        match &plan.options {
            Some(o) => format!(
                "initialise {} ({}, collate {}, ctype {}, provider {}{}, checksums {}, WAL segments {} MB)",
                plan.new_data_dir.display(),
                o.encoding,
                o.lc_collate,
                o.lc_ctype,
                o.provider,
                o.provider_locale
                    .as_deref()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default(),
                if o.data_checksums { "on" } else { "off" },
                o.wal_segsize_mb.unwrap_or(16)
            ),
            None => format!("initialise {}", plan.new_data_dir.display()),
        },
        format!("stop PostgreSQL {}", plan.from),
        format!("pg_upgrade --{}", plan.method),
        format!("switch to generation {} and start PostgreSQL {}", plan.generation, plan.to),
    ];
    for u in plan.extensions.iter().filter(|u| u.needed()) {
        lines.push(format!(
            "update extension {} {} → {} in database {}{}",
            u.name,
            u.installed,
            u.target.as_deref().unwrap_or("?"),
            u.database,
            u.update_path
                .as_ref()
                .map(|p| format!(" (via {})", p.join(" → ")))
                .unwrap_or_default()
        ));
    }
    if let Some(g) = &plan.collation {
        let n: usize = g.affected.iter().flatten().map(|a| a.indexes.len()).sum();
        let bytes: u64 = g
            .affected
            .iter()
            .flatten()
            .flat_map(|a| &a.indexes)
            .map(|i| i.bytes)
            .sum();
        lines.push(match g.choice {
            Some(Choice::Reindex) => format!(
                "reindex {n} index(es) ({} KiB) using collations of {} (was {}), then refresh the versions",
                bytes / 1024,
                g.change.to,
                g.change.from
            ),
            _ => format!(
                "refresh the recorded collation versions ({} → {})",
                g.change.from, g.change.to
            ),
        });
    }
    lines.push("rebuild statistics (vacuumdb --all --analyze-in-stages)".into());
    lines.push(plan.rollback.clone());
    lines
}
