//! Going back across a major upgrade (the old generation on the old data
//! directory) and finalizing one (the old data deleted for good).

use super::*;

/// `pgoci rollback` on an instance with a major upgrade record: back to
/// the old major on the old data directory (clone/copy), refused after a
/// link upgrade whose new server started.
pub fn rollback(
    layout: &HostLayout,
    instance: &InstanceName,
    choice: Option<Choice>,
    check: bool,
) -> Result<Option<MajorReport>> {
    let dir = layout.instance(instance);
    let Some(st) = InstanceState::read(&dir)? else {
        return Ok(None);
    };
    let Some(rec) = st.major_upgrade.clone() else {
        return Ok(None);
    };
    if rec.phase >= Phase::Upgraded
        && st.current != rec.to_generation
        && rec.phase >= Phase::Switched
    {
        // A later same-major generation is current: an ordinary rollback.
        return Ok(None);
    }
    refuse_link_rollback(instance, &rec)?;
    let lines = vec![
        format!("stop PostgreSQL {}", rec.to_major),
        format!(
            "switch back to generation {} (PostgreSQL {}) on {} as it was at the upgrade; writes made since are lost",
            rec.from_generation,
            rec.from_major,
            rec.old_data_dir.display()
        ),
        format!(
            "set {} aside (kept, renamed .rolled-back-…)",
            rec.new_data_dir.display()
        ),
        format!("start PostgreSQL {}", rec.from_major),
    ];
    if check {
        return Ok(Some(MajorReport {
            changed: true,
            plan: None,
            actions: lines,
            downtime_ms: None,
            analyze_ms: None,
        }));
    }
    let (inst, mut st) = Instance::open(layout, instance)?;
    privilege::require("rollback", layout, &st.user)?;
    let actions = rollback_major(&inst, &mut st, choice)?;
    Ok(Some(MajorReport {
        changed: true,
        plan: None,
        actions,
        downtime_ms: None,
        analyze_ms: None,
    }))
}

pub(super) fn refuse_link_rollback(instance: &InstanceName, rec: &MajorRecord) -> Result<()> {
    if rec.method == Method::Link && rec.phase >= Phase::Started {
        return Err(MajorUpgradeError::LinkUpgradeStarted {
            instance: instance.clone(),
            to_major: rec.to_major,
            old_data: rec.old_data_dir.clone(),
        }
        .into());
    }
    Ok(())
}

pub(super) fn rollback_major(
    inst: &Instance,
    st: &mut InstanceState,
    choice: Option<Choice>,
) -> Result<Vec<String>> {
    let rec = st
        .major_upgrade
        .clone()
        .ok_or_else(|| Error::internal("major rollback without a record"))?;
    let mut actions = Vec::new();
    if rec.phase < Phase::Upgraded {
        undo_unfinished(inst, st)?;
        actions.push(format!(
            "undid the unfinished upgrade to PostgreSQL {}; PostgreSQL {} runs on {}",
            rec.to_major,
            rec.from_major,
            rec.old_data_dir.display()
        ));
        return Ok(actions);
    }
    refuse_link_rollback(inst.name, &rec)?;
    let old_gen = inst.gen(st, &rec.from_generation)?.clone();
    let old_gen_dir = inst.layout.generation(inst.name, &old_gen.name);
    // The gate: the old data goes back to the old generation's libraries,
    // as they are now (the host may have changed since).
    let env = generation::read_runtime_env(&old_gen_dir);
    let now = collation::of_generation(&old_gen_dir, &old_gen.dirs, &env);
    let data_libs = rec.old_collation.clone().unwrap_or_else(|| now.clone());
    if let Some(change) = Change::between(&data_libs, &now) {
        Gate {
            change,
            affected: None,
            choice,
        }
        .refuse_unchosen(&format!("the rollback to PostgreSQL {}", rec.from_major))?;
    }
    let new_gen = inst.gen(st, &rec.to_generation)?.clone();
    let new_spec = inst.spec(st, &new_gen, &rec.new_data_dir);
    if inst.manager.is_active(&new_spec) {
        inst.manager.stop(&new_spec)?;
        actions.push(format!("stopped PostgreSQL {}", rec.to_major));
    }
    restore_pg_control(&rec.old_data_dir)?;
    let mut back = st.clone();
    back.major = rec.from_major;
    back.data_dir = rec.old_data_dir.clone();
    back.current = old_gen.name.clone();
    back.collation = Some(data_libs);
    let spec = inst.spec(&back, &old_gen, &rec.old_data_dir);
    inst.switch_to(&back, &old_gen, &rec.old_data_dir)?;
    back.major_upgrade = Some(MajorRecord {
        phase: Phase::Prepared,
        ..rec.clone()
    });
    inst.save(&back)?;
    *st = back;
    actions.push(format!(
        "switched back to generation {} (PostgreSQL {}) on {}",
        old_gen.name,
        rec.from_major,
        rec.old_data_dir.display()
    ));
    // The new cluster stays, set aside: it holds the writes made since.
    if let Some(to) = set_aside(&rec.new_data_dir, "rolled-back")? {
        actions.push(format!(
            "set {} aside as {}",
            rec.new_data_dir.display(),
            to.display()
        ));
    }
    forget_generation(inst, st, &rec.to_generation)?;
    st.major_upgrade = None;
    inst.save(st)?;
    inst.ensure_runtime_dirs(st)?;
    inst.manager.start(&spec)?;
    actions.push(format!("started PostgreSQL {}", rec.from_major));
    Ok(actions)
}

/// `pgoci upgrade --instance NAME --finalize`: removes the old data
/// directory a finished major upgrade kept, and the old major's
/// generations (after which rollback cannot cross the upgrade).
pub fn finalize(layout: &HostLayout, instance: &InstanceName, check: bool) -> Result<MajorReport> {
    let dir = layout.instance(instance);
    let st = InstanceState::read(&dir)?
        .ok_or_else(|| crate::install::plan::unknown_instance(layout, instance))?;
    let Some(rec) = st.major_upgrade.clone() else {
        return Ok(MajorReport::unchanged(format!(
            "instance {instance} keeps no old data directory: nothing to finalize"
        )));
    };
    if rec.phase != Phase::Done {
        return Err(MajorUpgradeError::NotFinished {
            instance: instance.clone(),
            to_major: rec.to_major,
        }
        .into());
    }
    let old_gens: Vec<String> = st
        .generations
        .iter()
        .filter(|g| g.major() != Some(st.major))
        .map(|g| g.name.clone())
        .collect();
    let mut actions = vec![format!(
        "delete {} (PostgreSQL {} data kept since the upgrade)",
        rec.old_data_dir.display(),
        rec.from_major
    )];
    actions.extend(old_gens.iter().map(|g| format!("remove generation {g}")));
    if check {
        return Ok(MajorReport {
            changed: true,
            plan: None,
            actions,
            downtime_ms: None,
            analyze_ms: None,
        });
    }
    let (inst, mut st) = Instance::open(layout, instance)?;
    privilege::require("upgrade --finalize", layout, &st.user)?;
    fsutil::remove_dir_if_exists(&rec.old_data_dir)?;
    failpoint::hit("finalize-after-remove");
    for g in &old_gens {
        forget_generation(&inst, &mut st, g)?;
    }
    st.major_upgrade = None;
    inst.save(&st)?;
    Ok(MajorReport {
        changed: true,
        plan: None,
        actions: actions
            .into_iter()
            .map(|a| {
                a.replacen("delete", "deleted", 1)
                    .replacen("remove", "removed", 1)
            })
            .collect(),
        downtime_ms: None,
        analyze_ms: None,
    })
}
