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
    collation::of_generation(&layout.root, &dir, &gen.dirs, &env)
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
        client_dirs: vec![layout.host("usr/bin")],
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

/// The extension updates a generation's files call for (every database
/// of the running server), refused (exit 6) where no update path exists.
pub fn extension_updates(
    layout: &HostLayout,
    st: &InstanceState,
    gen_dir: &std::path::Path,
    sharedir: &std::path::Path,
    server: &Server,
) -> Result<Vec<Update>> {
    let _ = layout;
    let installed: Vec<extensions::Installed> = server
        .installed_extensions()?
        .into_iter()
        .filter(|e| !extensions::built_in(&e.name))
        .collect();
    let updates = extensions::plan(&installed, &extensions::control_dirs(gen_dir, sharedir));
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
