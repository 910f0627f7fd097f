//! The phases of a major upgrade after the checks: the new cluster, the
//! switch and start, extension updates and statistics; the undo of an
//! upgrade that did not reach pg_upgrade's end.

use super::*;

/// initdb of a new cluster as the service user, and its `pgoci.conf`.
pub(super) fn init_cluster(
    inst: &Instance,
    st: &InstanceState,
    lock: &Lock,
    gen: &GenerationState,
    initdb: &InitdbSettings,
    data: &Path,
) -> Result<()> {
    // Never over something there: the checks refused an existing new data
    // directory, and undoing a killed run set its attempt aside.
    fs::create_dir(data).with_path(data, "create")?;
    chown_mode(data, &inst.account, 0o700)?;
    let gen_dir = inst.layout.generation(inst.name, &gen.name);
    let env = generation::read_runtime_env(&gen_dir);
    crate::install::postgres::initdb(
        &gen_dir.join(&gen.dirs.bin),
        data,
        &inst.account,
        initdb,
        &env,
    )?;
    write_config(inst, st, lock, gen, data)
}

pub(super) fn write_config(
    inst: &Instance,
    st: &InstanceState,
    lock: &Lock,
    gen: &GenerationState,
    data: &Path,
) -> Result<()> {
    let mut tx = Transaction::new(inst.layout);
    crate::install::apply::write_config(
        lock,
        inst.name,
        &inst.layout.generation(inst.name, &gen.name),
        st.port,
        &st.socket_dir,
        &st.settings,
        data,
        &mut tx,
    )?;
    tx.commit();
    Ok(())
}

/// Switches to the upgraded cluster, starts it, updates extensions,
/// applies the collation choice and rebuilds statistics: each phase
/// journaled, so a killed run resumes here.
pub(super) fn finish(
    inst: &Instance,
    st: &mut InstanceState,
    actions: &mut Vec<String>,
    stopped_at: Option<std::time::Instant>,
    _reporter: &dyn Reporter,
) -> Result<(Option<u64>, Option<u64>)> {
    let rec = st
        .major_upgrade
        .clone()
        .ok_or_else(|| Error::internal("finish without a major upgrade record"))?;
    let gen = inst.gen(st, &rec.to_generation)?.clone();
    let gen_dir = inst.layout.generation(inst.name, &gen.name);
    let lock = Lock::read(&gen_dir.join(GENERATION_LOCK))?;
    let set_phase = |st: &mut InstanceState, phase: Phase| -> Result<()> {
        if let Some(r) = st.major_upgrade.as_mut() {
            r.phase = phase;
        }
        inst.save(st)
    };
    if rec.phase < Phase::Switched {
        // The state names the new cluster; the config (written at initdb)
        // and the service files follow it, then `current`.
        write_config(inst, st, &lock, &gen, &rec.new_data_dir)?;
        let mut next = st.clone();
        next.major = rec.to_major;
        next.data_dir = rec.new_data_dir.clone();
        next.data_dir_created = true;
        next.data_dir_complete = true;
        next.current = gen.name.clone();
        // The gate was passed (nothing affected, or a choice made): the
        // data is used with the new libraries from this start on, and the
        // unit's start gate must agree.
        next.collation = gen.collation.clone();
        inst.switch_to(&next, &gen, &rec.new_data_dir)?;
        *st = next;
        set_phase(st, Phase::Switched)?;
        actions.push(format!(
            "switched instance {} to generation {}",
            inst.name, gen.name
        ));
        failpoint::hit("major-after-switch");
    }
    let spec = inst.spec(st, &gen, &rec.new_data_dir);
    if rec.phase < Phase::Started {
        // Recorded first: after --method link a started new server makes
        // the old data unusable, so rollback must know even if we die now.
        set_phase(st, Phase::Started)?;
    }
    inst.ensure_runtime_dirs(st)?;
    if !inst.manager.is_active(&spec) {
        if let Err(e) = inst.manager.start(&spec) {
            if rec.method == Method::Link {
                return Err(e.hint(format!(
                    "the new server did not start; after --method link the old data cannot be used again: fix the cause (see {}) and run the same command again",
                    spec.log_file.display()
                )));
            }
            let rollback = match rollback_major(inst, st, None) {
                Ok(_) => RolledBack::To {
                    major: rec.from_major,
                    data: rec.old_data_dir.clone(),
                },
                Err(e2) => RolledBack::Failed(Box::new(e2)),
            };
            return Err(MajorUpgradeError::NewServerNotStarted {
                to_major: rec.to_major,
                source: Box::new(e),
                rollback,
            }
            .into());
        }
    }
    let downtime_ms = stopped_at.map(|t| t.elapsed().as_millis() as u64);
    actions.push(format!("started PostgreSQL {}", rec.to_major));
    failpoint::hit("major-after-start");

    // Extensions, as the new server sees them now (the checks refused
    // what has no update path before the old server stopped).
    let server = inst.server(st, &gen);
    // (An extension created since the checks without a path is left as it
    // is: the server runs already, and `status` shows it.)
    let updates: Vec<_> =
        crate::install::datacare::planned_updates(&gen_dir, &gen.dirs.sharedir, &server)?
            .into_iter()
            .filter(|u| u.needed() && u.possible())
            .collect();
    // The collation choice (reindex), then every recorded version refreshed.
    let gate = rec.collation_change.as_ref().and_then(|c| {
        Change::between(&c.from, &c.to).map(|change| Gate {
            change,
            affected: None,
            choice: Some(if c.reindex {
                Choice::Reindex
            } else {
                Choice::Accept
            }),
        })
    });
    // Versions are refreshed even without a gate (after_switch always
    // does): pg_upgrade carries the old ones over, and C.UTF-8 is refreshed
    // without asking.
    actions.extend(crate::install::datacare::after_switch(
        &server,
        rec.to_major,
        gate.as_ref(),
        &updates,
    )?);
    let analyze_started = std::time::Instant::now();
    server.analyze_all(rec.to_major, jobs())?;
    let analyze_ms = analyze_started.elapsed().as_millis() as u64;
    actions.push("rebuilt statistics (vacuumdb --analyze-in-stages)".into());
    st.collation = gen.collation.clone();
    set_phase(st, Phase::Done)?;
    Ok((downtime_ms, Some(analyze_ms)))
}

/// Puts the old cluster back after a failure before the switch: the new
/// data directory set aside, the generation forgotten, the old server
/// started again. The error says how that went.
pub(super) fn undo_after_error(inst: &Instance, st: &mut InstanceState, err: Error) -> Error {
    let message = match undo_unfinished(inst, st) {
        Ok(()) => format!(
            "{}; the upgrade was undone: PostgreSQL {} runs on the unchanged data",
            err.message, st.major
        ),
        Err(e2) => format!("{}; undoing it also failed: {}", err.message, e2.message),
    };
    reworded(err, message)
}

/// The same error with another message (kind, hint and source kept).
pub(super) fn reworded(mut err: Error, message: String) -> Error {
    err.message = message;
    err
}

/// Undoes a major upgrade that did not reach [`Phase::Upgraded`].
pub(super) fn undo_unfinished(inst: &Instance, st: &mut InstanceState) -> Result<()> {
    let Some(rec) = st.major_upgrade.clone() else {
        return Ok(());
    };
    restore_pg_control(&rec.old_data_dir)?;
    set_aside(&rec.new_data_dir, "failed")?;
    forget_generation(inst, st, &rec.to_generation)?;
    st.major_upgrade = None;
    inst.save(st)?;
    let gen = inst.gen(st, &st.current)?.clone();
    let spec = inst.spec(st, &gen, &st.data_dir);
    inst.ensure_runtime_dirs(st)?;
    if !inst.manager.is_active(&spec) {
        inst.manager.start(&spec)?;
    }
    Ok(())
}

/// After `--method link`, pg_upgrade renames the old `global/pg_control`
/// to `pg_control.old` so the old cluster cannot start; as long as the new
/// server never started, renaming it back restores the old cluster.
pub(super) fn restore_pg_control(old_data: &Path) -> Result<()> {
    let global = old_data.join("global");
    let old = global.join("pg_control.old");
    if old.exists() && !global.join("pg_control").exists() {
        fs::rename(&old, global.join("pg_control")).with_path(&old, "rename")?;
    }
    Ok(())
}

/// Moves a data directory pgoci made out of the way (never deleted: it
/// may hold pg_upgrade's reports, or writes made after the upgrade).
pub(super) fn set_aside(dir: &Path, why: &str) -> Result<Option<PathBuf>> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(None);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{why}-{stamp}"));
    let to = PathBuf::from(name);
    fs::rename(dir, &to).with_path(dir, "rename")?;
    Ok(Some(to))
}

/// Drops a generation from the state and removes its directory.
pub(super) fn forget_generation(inst: &Instance, st: &mut InstanceState, name: &str) -> Result<()> {
    if st.current == name {
        return Ok(());
    }
    st.generations.retain(|g| g.name != name);
    inst.save(st)?;
    fsutil::remove_dir_if_exists(&inst.layout.generation(inst.name, name))?;
    Ok(())
}
