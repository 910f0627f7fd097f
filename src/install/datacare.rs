//! What switching an instance's generation owes its data, for the
//! same-major paths (upgrade, rollback; the major upgrade has its own in
//! [`super::major`]): the collation gate before anything changes, and
//! after the switch the chosen reindex, the refreshed collation versions
//! and the extension updates.

use super::cluster::Server;
use super::collation::{self, Change, Choice, CollationLibs, Gate};
use super::extensions::{self, Update};
use super::generation;
use super::layout::HostLayout;
use super::state::{GenerationState, InstanceState};
use super::users;
use crate::error::Result;

/// The libraries the instance's data was last used with: the record, or
/// (for states from before the record) the current generation's.
pub fn data_libs(layout: &HostLayout, st: &InstanceState) -> Option<CollationLibs> {
    st.collation.clone().or_else(|| {
        let gen = st.current_generation()?;
        Some(
            gen.collation
                .clone()
                .unwrap_or_else(|| generation_libs(layout, st, gen)),
        )
    })
}

/// The libraries a composed generation of the instance runs on now.
pub fn generation_libs(
    layout: &HostLayout,
    st: &InstanceState,
    gen: &GenerationState,
) -> CollationLibs {
    let dir = layout.generation(&st.instance, &gen.name);
    let env = generation::read_runtime_env(&dir);
    collation::of_generation(&dir, &gen.dirs, &env)
}

/// The running server of the instance's current generation, if it runs.
pub fn current_server(layout: &HostLayout, st: &InstanceState, running: bool) -> Option<Server> {
    if !running {
        return None;
    }
    let gen = st.current_generation()?;
    let dir = layout.generation(&st.instance, &gen.name);
    Some(Server {
        bin: dir.join(&gen.dirs.bin),
        client_dirs: super::cluster::host_client_dirs(layout),
        env: generation::read_runtime_env(&dir),
        account: users::lookup(&st.user)?,
        socket_dir: st.socket_dir.clone(),
        port: st.port,
    })
}

/// The gate for running the data on `to`: `None` when nothing changes;
/// exit 6 when the data is affected and nothing was chosen. A running
/// server is asked what is affected; without one, everything counts.
pub fn gate(
    st: &InstanceState,
    from: Option<CollationLibs>,
    to: &CollationLibs,
    server: Option<&Server>,
    choice: Option<Choice>,
    what: &str,
) -> Result<Option<Gate>> {
    let Some(change) = from.as_ref().and_then(|f| Change::between(f, to)) else {
        return Ok(None);
    };
    let affected = match server {
        Some(s) => Some(collation::affected(s, st.major, &change)?),
        None => None,
    };
    let gate = Gate {
        change,
        affected,
        choice,
    };
    gate.refuse_unchosen(what)?;
    Ok(Some(gate))
}

/// Every database × extension of the running server against a
/// generation's files, as planned (see [`extensions::plan`]).
pub fn planned_updates(
    gen_dir: &std::path::Path,
    sharedir: &std::path::Path,
    server: &Server,
) -> Result<Vec<Update>> {
    let installed: Vec<extensions::Installed> = server
        .installed_extensions()?
        .into_iter()
        .filter(|e| !extensions::built_in(&e.name))
        .collect();
    Ok(extensions::plan(
        &installed,
        &extensions::control_dirs(gen_dir, sharedir),
    ))
}

/// The extension updates a generation's files call for, refused (exit 6)
/// where no update path exists.
pub fn extension_updates(
    st: &InstanceState,
    gen_dir: &std::path::Path,
    sharedir: &std::path::Path,
    server: &Server,
) -> Result<Vec<Update>> {
    let updates = planned_updates(gen_dir, sharedir, server)?;
    extensions::refuse_impossible(
        &updates,
        &format!("the new files of instance {}", st.instance),
    )?;
    Ok(updates.into_iter().filter(Update::needed).collect())
}

/// After the switch, on the running new server: the chosen reindex, the
/// refreshed versions, and (when asked) the extension updates. Lines say
/// what was done.
pub fn after_switch(
    server: &Server,
    major: u32,
    gate: Option<&Gate>,
    updates: &[Update],
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for r in collation::apply(server, major, gate, &mut |_, _| {})? {
        done.push(format!("reindexed {r}"));
    }
    if let Some(g) = gate {
        done.push(format!(
            "refreshed the collation versions ({} → {})",
            g.change.from, g.change.to
        ));
    }
    for u in updates {
        server.execute(&u.database, &extensions::alter_statement(u))?;
        done.push(format!(
            "updated extension {} {} → {} in database {}",
            u.name,
            u.installed,
            u.target.as_deref().unwrap_or("?"),
            u.database
        ));
    }
    Ok(done)
}

/// The gate's state for an instance: the libraries its data was last
/// used with against those its current generation runs on now (a host
/// OS upgrade changes the host's glibc under a generation).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GateState {
    pub data: Option<CollationLibs>,
    pub now: CollationLibs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// See [`GateState`]; `None` for an instance without a current generation.
pub fn gate_state(layout: &HostLayout, st: &InstanceState) -> Option<GateState> {
    let gen = st.current_generation()?;
    let now = generation_libs(layout, st, gen);
    let data = st.collation.clone().or_else(|| gen.collation.clone());
    let change = data.as_ref().and_then(|d| Change::between(d, &now));
    Some(GateState { data, now, change })
}

/// Before a server starts on its current generation (systemd's
/// `ExecStartPre=`, pgoci's own pg_ctl path): exit 6 when the collation
/// libraries changed under the data since it was last used. Without a
/// running server nothing tells which databases are affected, so any
/// change counts until `pgoci collation` resolves it.
pub fn start_gate(layout: &HostLayout, st: &InstanceState) -> Result<()> {
    let Some(GateState {
        change: Some(change),
        ..
    }) = gate_state(layout, st)
    else {
        return Ok(());
    };
    Err(collation::CollationError::Changed {
        instance: st.instance.clone(),
        from: change.from,
        to: change.to,
    }
    .into())
}

/// `pgoci collation --instance NAME`: resolves a changed collation
/// library under existing data. A running server is used as it is; a
/// stopped one is started privately (no TCP, another port) for the
/// reindex and stopped again. Without a choice it lists what is affected
/// and refuses (exit 6). Returns what was done.
pub fn resolve(
    layout: &HostLayout,
    st: &mut InstanceState,
    choice: Option<Choice>,
    check: bool,
) -> Result<Vec<String>> {
    let Some(state) = gate_state(layout, st) else {
        return Ok(vec![format!(
            "instance {} has no current generation",
            st.instance
        )]);
    };
    let Some(change) = state.change else {
        return Ok(vec![format!(
            "instance {}: the data runs on the libraries it was last used with ({})",
            st.instance, state.now
        )]);
    };
    let gen = st
        .current_generation()
        .cloned()
        .ok_or_else(|| crate::error::Error::internal("no current generation"))?;
    let dir = layout.generation(&st.instance, &gen.name);
    let account = users::lookup(&st.user).ok_or_else(|| users::UserError::Missing {
        user: st.user.clone(),
    })?;
    let env = generation::read_runtime_env(&dir);
    let spec = super::facts::spec_of(layout, st, &gen, &account, &env);
    let manager = super::service::manager(st.service, layout);
    let running = manager.is_active(&spec);
    if check && !running {
        return Ok(vec![format!(
            "instance {}: data last used with {}, the server now runs on {}; start-up is refused until resolved (the server is stopped: run without --check to list what is affected)",
            st.instance, change.from, change.to
        )]);
    }
    super::privilege::require("collation", layout, &st.user)?;
    let private_port = if st.port == 50431 { 50430 } else { 50431 };
    let server = Server {
        bin: dir.join(&gen.dirs.bin),
        client_dirs: super::cluster::host_client_dirs(layout),
        env: env.clone(),
        account: account.clone(),
        socket_dir: st.socket_dir.clone(),
        port: if running { st.port } else { private_port },
    };
    if !running {
        std::fs::create_dir_all(&st.socket_dir)
            .map_err(|e| crate::error::Error::io(&st.socket_dir, "create", e))?;
        rustix::fs::chown(
            &st.socket_dir,
            Some(rustix::fs::Uid::from_raw(account.uid)),
            Some(rustix::fs::Gid::from_raw(account.gid)),
        )
        .map_err(|e| crate::error::Error::io(&st.socket_dir, "chown", e.into()))?;
        super::postgres::start_private(
            &server.bin,
            &spec.data_dir,
            &spec.log_file,
            &account,
            &env,
            &st.socket_dir,
            private_port,
        )?;
    }
    let outcome = (|| -> Result<Vec<String>> {
        let affected = collation::affected(&server, st.major, &change)?;
        let gate = Gate {
            change: change.clone(),
            affected: Some(affected),
            choice,
        };
        gate.refuse_unchosen(&format!("starting instance {}", st.instance))?;
        if check {
            return Ok(vec![format!(
                "would {} and refresh",
                match choice {
                    Some(Choice::Reindex) => "reindex the affected indexes",
                    _ => "refresh the recorded versions",
                }
            )]);
        }
        after_switch(&server, st.major, Some(&gate), &[])
    })();
    if !running {
        super::postgres::stop(&server.bin, &spec.data_dir, &account)?;
    }
    let done = outcome?;
    if !check {
        st.collation = Some(state.now);
        st.write(&layout.instance(&st.instance))?;
        manager.clear_failed(&st.instance);
    }
    Ok(done)
}
