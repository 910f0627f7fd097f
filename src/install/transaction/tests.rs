//! Each kind of change is undone, newest first; undo never touches what
//! the transaction did not create; failures are reported with their path.

use super::*;
use crate::install::runtime::RuntimeEnv;
use crate::install::users::Account;
use std::cell::RefCell;
use std::rc::Rc;

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Every path under `d` with its content (`/` for a directory), sorted.
fn listing(d: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push((p.clone(), "/".into()));
            out.extend(listing(&p));
        } else {
            out.push((p.clone(), fs::read_to_string(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A service manager in memory: which server runs (its `bin`), whether the
/// service is enabled, and every call in order. A `unit` file stands for
/// the manager's files: its content is logged when a server starts.
#[derive(Default)]
struct Fake {
    running: Option<PathBuf>,
    enabled: bool,
    log: Vec<String>,
    unit: Option<PathBuf>,
    fail_stop: bool,
}

type Shared = Rc<RefCell<Fake>>;

struct FakeManager(Shared);

impl FakeManager {
    fn started(&self, spec: &ServiceSpec, how: &str) {
        let mut f = self.0.borrow_mut();
        let unit = f
            .unit
            .as_ref()
            .map(|u| fs::read_to_string(u).unwrap_or_default())
            .unwrap_or_default();
        f.log
            .push(format!("{how} {} unit={unit}", spec.bin.display()));
        f.running = Some(spec.bin.clone());
    }
}

impl ServiceManager for FakeManager {
    fn kind(&self) -> ServiceKind {
        ServiceKind::None
    }
    fn render(&self, _spec: &ServiceSpec) -> Result<Vec<(PathBuf, String)>> {
        Ok(Vec::new())
    }
    fn files(&self, _instance: &InstanceName) -> Vec<PathBuf> {
        Vec::new()
    }
    fn reload(&self) -> Result<()> {
        let mut f = self.0.borrow_mut();
        let unit = f
            .unit
            .as_ref()
            .map(|u| fs::read_to_string(u).unwrap_or_default())
            .unwrap_or_default();
        f.log.push(format!("reload unit={unit}"));
        Ok(())
    }
    fn start(&self, spec: &ServiceSpec) -> Result<()> {
        self.0.borrow_mut().enabled = true;
        if self.is_active(spec) {
            return Ok(());
        }
        self.started(spec, "start");
        Ok(())
    }
    fn stop(&self, spec: &ServiceSpec) -> Result<bool> {
        let mut f = self.0.borrow_mut();
        if f.fail_stop {
            return Err(Error::service("the fake refuses to stop"));
        }
        let ran = f.running.take().is_some();
        if ran {
            f.log.push(format!("stop {}", spec.bin.display()));
        }
        Ok(ran)
    }
    fn restart(&self, spec: &ServiceSpec) -> Result<()> {
        self.0.borrow_mut().enabled = true;
        self.0.borrow_mut().running = None;
        self.started(spec, "restart");
        Ok(())
    }
    fn is_active(&self, _spec: &ServiceSpec) -> bool {
        // One server per instance, whichever generation it runs.
        self.0.borrow().running.is_some()
    }
    fn is_enabled(&self, _instance: &InstanceName) -> Option<bool> {
        Some(self.0.borrow().enabled)
    }
    fn enable(&self, _instance: &InstanceName) -> Result<()> {
        self.0.borrow_mut().enabled = true;
        Ok(())
    }
    fn disable(&self, _instance: &InstanceName) -> Result<()> {
        self.0.borrow_mut().enabled = false;
        Ok(())
    }
}

fn fake_tx(fake: &Shared) -> Transaction {
    let fake = fake.clone();
    Transaction::with_managers(Box::new(move |_| Box::new(FakeManager(fake.clone()))))
}

fn spec(gen: &str) -> ServiceSpec {
    ServiceSpec {
        instance: InstanceName::parse("main").unwrap(),
        account: Account {
            name: "postgres".into(),
            uid: 1,
            gid: 1,
            group: "postgres".into(),
        },
        bin: PathBuf::from(format!("/opt/pgoci/instances/main/generations/{gen}/bin")),
        data_dir: "/var/lib/pgoci/main/data".into(),
        port: 5432,
        env: RuntimeEnv::default(),
        notify: false,
        log_file: "/var/log/pgoci/main/postgresql.log".into(),
        gate: None,
    }
}

fn tx_in(d: &Path) -> Transaction {
    Transaction::new(&HostLayout::new(d, Path::new("/p")))
}

#[test]
fn written_modified_and_removed_files_are_put_back_with_their_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("conf"), "old").unwrap();
    fs::set_permissions(d.join("conf"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(d.join("gone"), "keep me").unwrap();
    fs::set_permissions(d.join("gone"), fs::Permissions::from_mode(0o640)).unwrap();
    let mut tx = tx_in(d);
    assert!(tx.write_file(&d.join("conf"), b"new", 0o644).unwrap());
    assert!(
        !tx.write_file(&d.join("conf"), b"new", 0o644).unwrap(),
        "unchanged"
    );
    assert!(tx
        .write_file(&d.join("made/deeper/state"), b"x", 0o644)
        .unwrap());
    assert!(tx.remove_file(&d.join("gone")).unwrap());
    assert!(!tx.remove_file(&d.join("never")).unwrap());
    assert_eq!(fs::read_to_string(d.join("conf")).unwrap(), "new");
    assert_eq!(mode(&d.join("conf")), 0o644);
    if root() {
        // A modified file keeps its owner (a postgresql.conf initdb made).
        chown(&d.join("conf"), 4242, 4343).unwrap();
        assert!(tx.write_file(&d.join("conf"), b"newer", 0o600).unwrap());
        assert_eq!(fs::metadata(d.join("conf")).unwrap().uid(), 4242);
    }
    let undone = tx.rollback();
    assert!(undone.failures.is_empty(), "{:?}", undone.failures);
    assert_eq!(fs::read_to_string(d.join("conf")).unwrap(), "old");
    assert_eq!(mode(&d.join("conf")), 0o600);
    assert_eq!(fs::read_to_string(d.join("gone")).unwrap(), "keep me");
    assert_eq!(mode(&d.join("gone")), 0o640);
    assert!(!d.join("made").exists(), "parents made for a file go too");
    assert!(!d.join("never").exists());
}

#[test]
fn links_point_back_and_new_links_go() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::os::unix::fs::symlink("gen1", d.join("current")).unwrap();
    let mut tx = tx_in(d);
    assert!(tx
        .switch_link(&d.join("current"), Path::new("gen2"))
        .unwrap());
    assert!(!tx
        .switch_link(&d.join("current"), Path::new("gen2"))
        .unwrap());
    assert!(tx.switch_link(&d.join("other"), Path::new("gen3")).unwrap());
    drop(tx); // an early return or a panic
    assert_eq!(fs::read_link(d.join("current")).unwrap(), Path::new("gen1"));
    assert!(fs::symlink_metadata(d.join("other")).is_err());
    // A file where a link is expected is not replaced.
    fs::write(d.join("file"), "mine").unwrap();
    let mut tx = tx_in(d);
    assert!(tx.switch_link(&d.join("file"), Path::new("gen1")).is_err());
    drop(tx);
    assert_eq!(fs::read_to_string(d.join("file")).unwrap(), "mine");
    // A file that is a symlink (an admin's unit) comes back as the
    // symlink, written over or removed; a dangling one too.
    fs::write(d.join("real.service"), "admin's").unwrap();
    std::os::unix::fs::symlink("real.service", d.join("a.service")).unwrap();
    std::os::unix::fs::symlink("nowhere", d.join("b.service")).unwrap();
    let mut tx = tx_in(d);
    assert!(tx.write_file(&d.join("a.service"), b"ours", 0o644).unwrap());
    assert!(tx.remove_file(&d.join("b.service")).unwrap());
    assert!(fs::symlink_metadata(d.join("b.service")).is_err());
    drop(tx);
    assert_eq!(
        fs::read_link(d.join("a.service")).unwrap(),
        Path::new("real.service")
    );
    assert_eq!(
        fs::read_to_string(d.join("real.service")).unwrap(),
        "admin's"
    );
    assert_eq!(
        fs::read_link(d.join("b.service")).unwrap(),
        Path::new("nowhere")
    );
}

#[test]
fn created_directories_go_innermost_first_and_only_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("there")).unwrap();
    let mut tx = tx_in(d);
    assert!(!tx.create_dir(&d.join("there")).unwrap(), "existed");
    assert!(tx.create_dir(&d.join("there/a/b/c")).unwrap());
    assert!(tx.create_dir(&d.join("x/y")).unwrap());
    // Someone else puts a file into a directory this transaction made.
    fs::write(d.join("there/a/theirs"), "not ours").unwrap();
    let undone = tx.rollback();
    assert!(undone.failures.is_empty(), "{:?}", undone.failures);
    assert!(!d.join("there/a/b").exists(), "ours, empty: removed");
    assert_eq!(
        fs::read_to_string(d.join("there/a/theirs")).unwrap(),
        "not ours",
        "never removed"
    );
    assert_eq!(undone.kept, vec![d.join("there/a")]);
    assert!(undone.warnings()[0].contains(&d.join("there/a").display().to_string()));
    assert!(d.join("there").is_dir(), "existed before: stays");
    assert!(!d.join("x").exists());
}

#[test]
fn a_filled_directory_loses_only_what_appeared_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A mount point with something of its owner's in it, and a directory
    // the transaction makes (a data directory initdb fills).
    fs::create_dir(d.join("mount")).unwrap();
    fs::write(d.join("mount/lost+found"), "").unwrap();
    fs::set_permissions(d.join("mount"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut tx = tx_in(d);
    tx.create_dir(&d.join("mount")).unwrap();
    tx.fill_dir(&d.join("mount")).unwrap();
    tx.chmod(&d.join("mount"), 0o700).unwrap();
    tx.create_dir(&d.join("data")).unwrap();
    tx.fill_dir(&d.join("data")).unwrap();
    for base in ["mount", "data"] {
        fs::create_dir_all(d.join(base).join("base/1")).unwrap();
        fs::write(d.join(base).join("base/1/rel"), "x").unwrap();
        fs::write(d.join(base).join("PG_VERSION"), "18").unwrap();
        std::os::unix::fs::symlink("/", d.join(base).join("link")).unwrap();
    }
    let undone = tx.rollback();
    assert!(undone.failures.is_empty(), "{:?}", undone.failures);
    let names: Vec<_> = fs::read_dir(d.join("mount"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsString::from("lost+found")]);
    assert_eq!(mode(&d.join("mount")), 0o755, "its mode back");
    assert!(!d.join("data").exists(), "emptied, then removed");
}

#[test]
fn a_removed_empty_directory_comes_back_with_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("empty")).unwrap();
    fs::set_permissions(d.join("empty"), fs::Permissions::from_mode(0o710)).unwrap();
    fs::create_dir(d.join("full")).unwrap();
    fs::write(d.join("full/f"), "").unwrap();
    let mut tx = tx_in(d);
    assert!(tx.remove_dir(&d.join("empty")).unwrap());
    assert!(!tx.remove_dir(&d.join("absent")).unwrap());
    assert!(tx.remove_dir(&d.join("full")).is_err(), "never recursively");
    assert!(!d.join("empty").exists());
    drop(tx);
    assert!(d.join("empty").is_dir());
    assert_eq!(mode(&d.join("empty")), 0o710);
    assert!(d.join("full/f").exists());
}

#[test]
fn owners_and_modes_are_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("dir")).unwrap();
    fs::set_permissions(d.join("dir"), fs::Permissions::from_mode(0o755)).unwrap();
    let before = fs::metadata(d.join("dir")).unwrap();
    let mut tx = tx_in(d);
    if root() {
        tx.chown(&d.join("dir"), 4242, 4343).unwrap();
        let m = fs::metadata(d.join("dir")).unwrap();
        assert_eq!((m.uid(), m.gid()), (4242, 4343));
    }
    tx.chmod(&d.join("dir"), 0o700).unwrap();
    assert_eq!(mode(&d.join("dir")), 0o700);
    drop(tx);
    let after = fs::metadata(d.join("dir")).unwrap();
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(mode(&d.join("dir")), 0o755);
}

#[test]
fn a_placed_file_is_put_back_or_removed_and_its_backup_goes_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("new-pgoci"), "v2").unwrap();
    fs::create_dir(d.join("bin")).unwrap();
    fs::write(d.join("bin/pgoci"), "v1").unwrap();
    let mut tx = tx_in(d);
    tx.place_file(&d.join("bin/pgoci"), &d.join("new-pgoci"), 0o755)
        .unwrap();
    tx.place_file(&d.join("bin2/pgoci"), &d.join("new-pgoci"), 0o755)
        .unwrap();
    assert_eq!(fs::read_to_string(d.join("bin/pgoci")).unwrap(), "v2");
    drop(tx);
    assert_eq!(fs::read_to_string(d.join("bin/pgoci")).unwrap(), "v1");
    assert!(!d.join("bin2").exists());
    // A backup a killed run left goes with the next placement.
    fs::write(d.join("bin/.pgoci.undo-1"), "v0").unwrap();
    let mut tx = tx_in(d);
    tx.place_file(&d.join("bin/pgoci"), &d.join("new-pgoci"), 0o755)
        .unwrap();
    tx.commit();
    assert_eq!(fs::read_to_string(d.join("bin/pgoci")).unwrap(), "v2");
    let names: Vec<_> = fs::read_dir(d.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsString::from("pgoci")], "no backup left");
}

#[test]
fn committed_changes_stay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fake = Shared::default();
    let mut tx = fake_tx(&fake);
    tx.write_file(&d.join("f"), b"new", 0o644).unwrap();
    tx.create_dir(&d.join("made")).unwrap();
    tx.start(ServiceKind::None, &spec("1-a")).unwrap();
    tx.commit();
    assert_eq!(fs::read_to_string(d.join("f")).unwrap(), "new");
    assert!(d.join("made").is_dir());
    assert!(fake.borrow().running.is_some());
}

#[test]
fn a_server_this_run_started_is_stopped_and_disabled_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fake = Shared::default();
    let mut tx = fake_tx(&fake);
    tx.create_dir(&d.join("data")).unwrap();
    tx.fill_dir(&d.join("data")).unwrap();
    fs::write(d.join("data/postmaster.pid"), "1").unwrap();
    tx.start(ServiceKind::None, &spec("1-a")).unwrap();
    assert!(fake.borrow().enabled);
    let undone = tx.rollback();
    assert!(undone.failures.is_empty(), "{:?}", undone.failures);
    assert_eq!(undone.restarted, None);
    let f = fake.borrow();
    assert_eq!(f.running, None);
    assert!(!f.enabled, "was disabled before");
    assert!(!d.join("data").exists());
}

#[test]
fn a_server_that_ran_runs_again_on_the_restored_files_after_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unit = d.join("pgoci-main.service");
    fs::write(&unit, "old unit").unwrap();
    let fake = Shared::new(RefCell::new(Fake {
        running: Some(spec("1-old").bin),
        enabled: true,
        unit: Some(unit.clone()),
        ..Fake::default()
    }));
    let mut tx = fake_tx(&fake);
    tx.write_file(&unit, b"new unit", 0o644).unwrap();
    tx.reload(ServiceKind::None).unwrap();
    tx.restart(ServiceKind::None, &spec("2-new"), Some(&spec("1-old")))
        .unwrap();
    let undone = tx.rollback();
    assert!(undone.failures.is_empty(), "{:?}", undone.failures);
    assert_eq!(undone.restarted.as_deref(), Some("1-old"));
    let f = fake.borrow();
    assert_eq!(f.running, Some(spec("1-old").bin));
    assert!(f.enabled, "was enabled: stays");
    let old_bin = spec("1-old").bin.display().to_string();
    let new_bin = spec("2-new").bin.display().to_string();
    assert_eq!(
        f.log,
        vec![
            "reload unit=new unit".to_string(),
            format!("restart {new_bin} unit=new unit"),
            format!("stop {new_bin}"),
            "reload unit=old unit".to_string(),
            format!("restart {old_bin} unit=old unit"),
        ]
    );
}

#[test]
fn a_server_that_was_stopped_stays_stopped() {
    let fake = Shared::default();
    // Restarted onto a new generation while nothing ran: undo stops it
    // and starts nothing.
    let mut tx = fake_tx(&fake);
    tx.restart(ServiceKind::None, &spec("2-new"), Some(&spec("1-old")))
        .unwrap();
    let undone = tx.rollback();
    assert!(undone.failures.is_empty(), "{:?}", undone.failures);
    assert_eq!(undone.restarted, None);
    assert_eq!(fake.borrow().running, None);
    assert!(!fake.borrow().enabled);
    // Started while it ran already: nothing to undo, it keeps running.
    fake.borrow_mut().running = Some(spec("1-old").bin);
    let mut tx = fake_tx(&fake);
    tx.start(ServiceKind::None, &spec("1-old")).unwrap();
    drop(tx);
    assert_eq!(fake.borrow().running, Some(spec("1-old").bin));
}

#[test]
fn a_stopped_server_and_the_enablement_come_back() {
    let fake = Shared::new(RefCell::new(Fake {
        running: Some(spec("1-a").bin),
        enabled: true,
        ..Fake::default()
    }));
    let mut tx = fake_tx(&fake);
    assert!(tx.stop(ServiceKind::None, &spec("1-a")).unwrap());
    tx.disable(ServiceKind::None, &spec("1-a").instance)
        .unwrap();
    assert!(fake.borrow().running.is_none() && !fake.borrow().enabled);
    drop(tx);
    assert_eq!(fake.borrow().running, Some(spec("1-a").bin));
    assert!(fake.borrow().enabled);
    // And enabling a disabled service is undone by disabling it.
    fake.borrow_mut().enabled = false;
    let mut tx = fake_tx(&fake);
    tx.enable(ServiceKind::None, &spec("1-a").instance).unwrap();
    drop(tx);
    assert!(!fake.borrow().enabled);
}

#[test]
fn every_failed_undo_is_reported_with_its_path_and_the_rest_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("conf"), "old").unwrap();
    let fake = Shared::default();
    let mut tx = fake_tx(&fake);
    tx.write_file(&d.join("conf"), b"new", 0o644).unwrap();
    tx.write_file(&d.join("made"), b"x", 0o644).unwrap();
    tx.start(ServiceKind::None, &spec("1-a")).unwrap();
    // Someone else puts a non-empty directory where this run made a file,
    // and the server refuses to stop.
    fs::remove_file(d.join("made")).unwrap();
    fs::create_dir(d.join("made")).unwrap();
    fs::write(d.join("made/theirs"), "").unwrap();
    fake.borrow_mut().fail_stop = true;
    let undone = tx.rollback();
    assert_eq!(undone.failures.len(), 2, "{:?}", undone.failures);
    let warnings = undone.warnings();
    assert!(warnings[0].contains("instance main"), "{warnings:?}");
    assert!(
        warnings[1].contains(&d.join("made").display().to_string()),
        "{warnings:?}"
    );
    assert!(d.join("made/theirs").exists());
    assert_eq!(fs::read_to_string(d.join("conf")).unwrap(), "old");
    assert!(!fake.borrow().enabled, "undone after the failures too");
}

/// The guard that keeps it so: the applier changes the host only through
/// its transaction. Outside, as the module says: the service user, and
/// gc's removal of store entries and cache blobs nothing references (each
/// one rename then a delete; a re-run finishes a killed gc, and undoing
/// it would only bring the garbage back).
#[test]
fn the_applier_writes_nothing_but_through_the_transaction() {
    let sources = [
        ("apply/mod.rs", include_str!("../apply/mod.rs")),
        ("apply/install.rs", include_str!("../apply/install.rs")),
        ("apply/compose.rs", include_str!("../apply/compose.rs")),
        ("apply/files.rs", include_str!("../apply/files.rs")),
        ("apply/lifecycle.rs", include_str!("../apply/lifecycle.rs")),
        ("apply/gc.rs", include_str!("../apply/gc.rs")),
        ("apply/verify.rs", include_str!("../apply/verify.rs")),
    ];
    let forbidden = [
        "fsutil::write",
        "write_atomic",
        "write_if_changed",
        "fs::write",
        "File::create",
        "OpenOptions",
        "set_permissions",
        "unistd::chown",
        "fs::chown",
        "switch_symlink",
        "symlink(",
        "fs::create_dir",
        "hard_link",
        "fs::rename",
        "fs::copy",
        ".write(&",
        "manager.start(",
        "manager.restart(",
        "manager.reload(",
        "manager.enable(",
        "manager.disable(",
        "manager.stop(",
        "remove_dir_if_exists",
        "remove_dir_all",
    ];
    let mut found = Vec::new();
    for (file, text) in sources {
        // A file's own tests (last in it) make their scene directly.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in forbidden {
                if code.contains(f) {
                    found.push(format!("src/install/{file}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "host changes outside the transaction:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_removed_tree_comes_back_whole_or_goes_at_commit_and_nothing_beside_it_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("inst/generations/1-abc/bin")).unwrap();
    fs::write(d.join("inst/state.json"), "{}").unwrap();
    fs::write(d.join("inst/generations/1-abc/bin/postgres"), "elf").unwrap();
    fs::create_dir(d.join("other")).unwrap();
    fs::write(d.join("other/keep"), "theirs").unwrap();
    let before = listing(d);

    // Undone: back where it was, with every file.
    let mut tx = tx_in(d);
    assert!(tx.remove_tree(&d.join("inst")).unwrap());
    assert!(!d.join("inst").exists());
    assert!(!tx.remove_tree(&d.join("absent")).unwrap());
    drop(tx);
    assert_eq!(listing(d), before);

    // A file is not a tree: refused, untouched.
    let mut tx = tx_in(d);
    assert!(tx.remove_tree(&d.join("other/keep")).is_err());
    tx.commit();
    assert_eq!(listing(d), before);

    // Committed: gone, nothing left aside; the sibling stays.
    let mut tx = tx_in(d);
    tx.remove_tree(&d.join("inst")).unwrap();
    tx.commit();
    let names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsString::from("other")]);
    assert_eq!(fs::read_to_string(d.join("other/keep")).unwrap(), "theirs");

    // What a killed run left aside goes with the next removal of the same
    // path, even when the path itself is gone already.
    fs::create_dir_all(d.join(".tmp-removed-inst/generations")).unwrap();
    let mut tx = tx_in(d);
    assert!(!tx.remove_tree(&d.join("inst")).unwrap());
    tx.commit();
    assert!(!d.join(".tmp-removed-inst").exists());

    // A killed uninstall's leftover is finished by finish_removal; a file
    // or a link of that name is not one, and stays.
    fs::create_dir_all(d.join(".tmp-removed-inst/generations")).unwrap();
    assert!(finish_removal(&d.join("inst")).unwrap());
    assert!(!d.join(".tmp-removed-inst").exists());
    fs::write(d.join(".tmp-removed-inst"), "someone's").unwrap();
    assert!(!finish_removal(&d.join("inst")).unwrap());
    std::os::unix::fs::symlink(d.join("other"), d.join(".tmp-removed-x")).unwrap();
    assert!(!finish_removal(&d.join("x")).unwrap());
    assert_eq!(
        fs::read_to_string(d.join(".tmp-removed-inst")).unwrap(),
        "someone's"
    );
    assert_eq!(fs::read_to_string(d.join("other/keep")).unwrap(), "theirs");
}
