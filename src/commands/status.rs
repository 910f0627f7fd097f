//! `pgoci status`: installed instances and whether their servers run.

use super::{output::Outcome, Context};
use pgoci::error::{Error, Result};
use pgoci::install::state::InstanceState;
use serde_json::json;

/// Whether the instance's server runs: the postmaster recorded in
/// `postmaster.pid` is alive (EPERM from `kill(pid, 0)` means alive and
/// someone else's); where the 0700 data directory cannot be read (status
/// as an unprivileged user), whether its socket accepts a connection.
fn server_running(state: &InstanceState) -> bool {
    match std::fs::read_to_string(state.data_dir.join("postmaster.pid")) {
        Ok(text) => text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|pid| {
                // EPERM: alive, owned by another user.
                matches!(
                    rustix::process::test_kill_process(pid),
                    Ok(()) | Err(rustix::io::Errno::PERM)
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            pgoci::install::facts::socket_accepts(&state.socket_dir, state.port)
        }
        Err(_) => false,
    }
}

pub fn run(ctx: &Context, only: Option<&str>, verify: bool) -> Result<Outcome> {
    let layout = ctx.layout();
    let mut states = pgoci::install::other_instances(&layout, "")?;
    if let Some(name) = only {
        states.retain(|s| s.instance == name);
        if states.is_empty() {
            return Err(Error::usage(format!(
                "no instance named {name} under {}",
                layout.prefix.display()
            ))
            .hint("`pgoci status` lists them all"));
        }
    }
    let mut text = String::new();
    let mut list = Vec::new();
    let mut drifted = Vec::new();
    for s in &states {
        let gen = s.current_generation();
        let running = server_running(s);
        let exts: Vec<_> = gen
            .map(|g| {
                g.extensions
                    .iter()
                    .map(|e| json!({"name": e.name, "version": e.version, "digest": e.digest}))
                    .collect()
            })
            .unwrap_or_default();
        text.push_str(&format!(
            "{}  PostgreSQL {} ({})  port {}  generation {}  {}  data {}\n",
            s.instance,
            s.major,
            gen.map(|g| g.server_version.as_str()).unwrap_or("?"),
            s.port,
            s.current,
            if running { "running" } else { "stopped" },
            s.data_dir.display()
        ));
        if let Some(g) = gen {
            for e in &g.extensions {
                text.push_str(&format!("    {} {}\n", e.name, e.version));
            }
        }
        // The collation gate: the data's libraries against the server's now.
        let gate = pgoci::install::datacare::gate_state(&layout, s);
        if let Some(g) = &gate {
            text.push_str(&match &g.change {
                None => format!("    collation: {} (as the data was last used)\n", g.now),
                Some(c) => format!(
                    "    collation: CHANGED: data last used with {}, the server now runs on {}; starts are refused until `pgoci collation --instance {}` resolves it\n",
                    c.from, c.to, s.instance
                ),
            });
        }
        if let Some(r) = &s.major_upgrade {
            text.push_str(&format!(
                "    major upgrade {} → {} ({:?}, --method {}): the data of PostgreSQL {} is kept at {} until `pgoci upgrade --instance {} --finalize`\n",
                r.from_major,
                r.to_major,
                r.phase,
                r.method,
                r.from_major,
                r.old_data_dir.display(),
                s.instance
            ));
        }
        // Extension updates the files offer (root and a running server:
        // the catalog of each database is asked).
        let mut updates = Vec::new();
        if running && rustix::process::geteuid().is_root() {
            if let (Some(server), Some(g)) = (
                pgoci::install::datacare::current_server(&layout, s, true),
                gen,
            ) {
                updates = pgoci::install::datacare::planned_updates(
                    &layout.generation(&s.instance, &g.name),
                    &g.dirs.sharedir,
                    &server,
                )
                .unwrap_or_default()
                .into_iter()
                .filter(|u| u.needed())
                .collect();
                for u in &updates {
                    text.push_str(&format!(
                        "    update available: extension {} {} → {} in database {}{}\n",
                        u.name,
                        u.installed,
                        u.target.as_deref().unwrap_or("?"),
                        u.database,
                        if u.update_path.is_some() {
                            ""
                        } else {
                            " (no update path!)"
                        }
                    ));
                }
            }
        }
        // The licence texts the images carried, gathered in the generation.
        let gen_dir = layout.generation(&s.instance, &s.current);
        let licenses = pgoci::install::licenses::list(&gen_dir);
        for l in &licenses {
            text.push_str(&format!(
                "    licenses of {}: {}\n",
                l.extension,
                l.files
                    .iter()
                    .map(|f| gen_dir.join(f).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let drift = if verify {
            let d = pgoci::install::apply::verify(&layout, s)?;
            text.push_str(&format!(
                "    verify: {} files checked, {} modified, {} missing\n",
                d.checked,
                d.modified.len(),
                d.missing.len()
            ));
            for p in d.modified.iter().chain(&d.missing) {
                text.push_str(&format!("      drift: {}\n", p.display()));
            }
            if !d.modified.is_empty() || !d.missing.is_empty() {
                drifted.push(s.instance.clone());
            }
            Some(d)
        } else {
            None
        };
        list.push(json!({
            "verify": drift,
            "name": s.instance, "major": s.major,
            "version": gen.map(|g| g.server_version.clone()),
            "port": s.port, "generation": s.current, "generations": s.generations.iter().map(|g| &g.name).collect::<Vec<_>>(),
            "data_dir": s.data_dir, "service": s.service, "running": running, "extensions": exts,
            "licenses": licenses,
            "collation": gate, "major_upgrade": s.major_upgrade, "extension_updates": updates,
        }));
    }
    if states.is_empty() {
        text.push_str(&format!("no instances under {}\n", layout.prefix.display()));
    }
    if !drifted.is_empty() {
        // The report is the error: name what drifted; exit 5.
        return Err(Error::integrity(format!(
            "files of instance(s) {} do not match their recorded digests: {}",
            drifted.join(", "),
            text.lines()
                .filter(|l| l.contains("drift:"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .hint("run the same install again to restore the generation, or rollback"));
    }
    Ok(Outcome::new("status", false)
        .field("instances", list)
        .stdout(text))
}
