//! The planners against made-up facts.

use super::*;
use crate::install::config;
use crate::install::facts::{DataDirState, HostFacts, LifecycleFacts};
use crate::install::runtime::RuntimeEnv;
use crate::install::state::InstanceState;
use crate::install::users::Account;
use crate::install::InstallOptions;
use crate::lock::Lock;
use crate::names::ConfigParam;
use std::collections::BTreeMap;

fn main() -> InstanceName {
    InstanceName::parse("main").unwrap()
}
use crate::install::facts::DataDirFacts;
use crate::install::layout::HostLayout;
use std::collections::BTreeSet;
use std::path::Path;

fn opts() -> InstallOptions {
    InstallOptions::new(
        HostLayout::new(Path::new("/r"), Path::new("/opt/pgoci")),
        &main(),
    )
}

/// A host with nothing of pgoci on it, port 5432 free.
fn bare_host() -> HostFacts {
    HostFacts {
        is_root: false,
        default_service: ServiceKind::None,
        previous: None,
        others: Vec::new(),
        data_dir: DataDirFacts {
            path: "/r/var/lib/pgoci/main/data".into(),
            state: DataDirState::Absent,
        },
        requested_port_free: true,
        first_free_port: Some(5432),
        account: None,
        store_has: BTreeSet::new(),
        current_generation_dir_exists: false,
        generation_env: RuntimeEnv::default(),
        config: None,
        config_unreadable: false,
        include_line_present: false,
        service_files: BTreeMap::new(),
        current_link: None,
        server_running: false,
        running_generation: None,
        preflight: crate::install::preflight::PreflightFacts {
            host_platform: "linux/amd64".parse().unwrap(),
            free_bytes: Some(10 << 30),
            useradd: true,
            user_exists: true,
        },
        locales: Default::default(),
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.steps.iter().map(Step::kind).collect()
}

#[test]
fn first_install_on_a_bare_host_does_everything_without_root() {
    let lock = crate::lock::tests::sample();
    let plan = install(&lock, &opts(), &bare_host()).unwrap();
    assert_eq!(
        kinds(&plan),
        [
            "unpack",
            "unpack",
            "compose",
            "create_user",
            "init_data_dir",
            "write_config",
            "switch",
            "start"
        ]
    );
    assert_eq!(plan.instance.port, 5432);
    assert!(plan.instance.generation.starts_with("1-"));
    assert!(plan.warnings.is_empty());
}

#[test]
fn systemd_adds_the_unit_and_store_hits_skip_unpacking() {
    let lock = crate::lock::tests::sample();
    let mut facts = bare_host();
    facts.default_service = ServiceKind::Systemd;
    facts
        .store_has
        .insert(lock.server.pinned.digest.hex().to_string());
    let plan = install(&lock, &opts(), &facts).unwrap();
    assert_eq!(
        kinds(&plan),
        [
            "unpack",
            "compose",
            "create_user",
            "init_data_dir",
            "write_config",
            "write_service_files",
            "switch",
            "start"
        ]
    );
    let Step::WriteServiceFiles { files, .. } = &plan.steps[5] else {
        panic!()
    };
    assert_eq!(
        files,
        &[PathBuf::from("/r/etc/systemd/system/pgoci-main.service")]
    );
}

#[test]
fn a_taken_port_moves_with_a_warning_or_refuses_when_asked_for() {
    let lock = crate::lock::tests::sample();
    let mut facts = bare_host();
    facts.first_free_port = Some(5433);
    let plan = install(&lock, &opts(), &facts).unwrap();
    assert_eq!(plan.instance.port, 5433);
    assert_eq!(plan.warnings, ["port 5432 is taken; using 5433"]);
    facts.requested_port_free = false;
    let mut o = opts();
    o.port = Some(5432);
    let e = install(&lock, &o, &facts).unwrap_err();
    assert_eq!(e.kind, crate::Kind::Host);
}

#[test]
fn data_dirs_that_are_not_ours_stop_the_plan() {
    let lock = crate::lock::tests::sample();
    for state in [
        DataDirState::NotADirectory,
        DataDirState::NonEmpty,
        DataDirState::Initialised { major: Some(15) },
    ] {
        let mut facts = bare_host();
        facts.data_dir.state = state.clone();
        let e = install(&lock, &opts(), &facts).unwrap_err();
        assert_eq!(e.kind, crate::Kind::Host, "{state:?}: {}", e.message);
        assert!(e.hint.is_some());
    }
}

#[test]
fn an_initialised_instance_whose_data_vanished_is_never_initialised_again() {
    let lock = crate::lock::tests::sample();
    let mut facts = bare_host();
    let mut prev = sample_state(&lock);
    prev.data_dir_complete = true;
    facts.previous = Some(prev);
    facts.data_dir.state = DataDirState::Empty;
    let e = install(&lock, &opts(), &facts).unwrap_err();
    assert_eq!(e.kind, crate::Kind::Host);
    assert!(e.message.contains("gone or empty"), "{}", e.message);
}

#[test]
fn a_rerun_of_the_same_lock_with_everything_in_place_is_empty() {
    let lock = crate::lock::tests::sample();
    let o = opts();
    let prev = sample_state(&lock);
    let gen = prev.current_generation().unwrap().clone();
    let mut facts = bare_host();
    facts.account = Some(Account {
        name: "postgres".into(),
        uid: 1,
        gid: 1,
        group: "postgres".into(),
    });
    facts.data_dir.state = DataDirState::Initialised { major: Some(15) };
    facts.current_generation_dir_exists = true;
    facts.current_link = Some(gen.name.clone());
    facts.server_running = true;
    facts.include_line_present = true;
    facts.config = Some(
        config::render(
            &lock,
            &config::ConfigInput {
                instance: "main",
                generation: &o.layout.generation(&main(), &gen.name),
                port: 5432,
                socket_dir: &o.layout.socket_dir(&main()),
                user_settings: &BTreeMap::new(),
            },
        )
        .unwrap(),
    );
    facts.previous = Some(prev);
    let plan = install(&lock, &o, &facts).unwrap();
    assert_eq!(kinds(&plan), Vec::<&str>::new());
    assert!(!plan.changes_anything());
    // A changed setting rewrites the config and restarts.
    let mut o2 = o.clone();
    o2.settings
        .insert(ConfigParam::parse("work_mem").unwrap(), "64MB".into());
    let plan = install(&lock, &o2, &facts).unwrap();
    assert_eq!(kinds(&plan), ["write_config", "restart"]);
    // A server still on an older generation is moved over.
    facts.running_generation = Some("0-older".into());
    let plan = install(&lock, &o, &facts).unwrap();
    assert_eq!(kinds(&plan), ["restart"]);
    facts.running_generation = None;
    // A stopped server is started.
    facts.server_running = false;
    let plan = install(&lock, &o, &facts).unwrap();
    assert_eq!(kinds(&plan), ["start"]);
}

#[test]
fn another_major_is_refused() {
    let lock = crate::lock::tests::sample();
    let mut facts = bare_host();
    let mut prev = sample_state(&lock);
    prev.major = 14;
    facts.previous = Some(prev);
    let e = install(&lock, &opts(), &facts).unwrap_err();
    assert!(e.message.contains("pg_upgrade"));
}

#[test]
fn uninstall_and_rollback_plans() {
    let lock = crate::lock::tests::sample();
    let layout = opts().layout;
    let mut st = sample_state(&lock);
    let mut facts = LifecycleFacts {
        layout: layout.clone(),
        instance: main(),
        state: None,
        server_running: true,
        service_files: BTreeMap::new(),
    };
    assert!(uninstall(&facts, true).unwrap().steps.is_empty());
    facts.state = Some(st.clone());
    facts.state = Some(st.clone());
    assert_eq!(
        uninstall(&facts, false)
            .unwrap()
            .steps
            .iter()
            .map(Step::kind)
            .collect::<Vec<_>>(),
        ["stop", "remove_instance"]
    );
    // Purge only what pgoci created and completed.
    st.data_dir_created = false;
    facts.state = Some(st.clone());
    assert!(uninstall(&facts, true).is_err());
    st.data_dir_created = true;
    facts.state = Some(st.clone());
    let steps = uninstall(&facts, true).unwrap().steps;
    assert_eq!(
        steps.iter().map(Step::kind).collect::<Vec<_>>(),
        ["stop", "purge_data", "remove_instance"]
    );
    // Rollback needs an earlier generation.
    assert_eq!(rollback(&facts).unwrap_err().kind, crate::Kind::Usage);
    let mut older = st.generations[0].clone();
    older.name = "0-older".into();
    st.generations.insert(0, older);
    facts.state = Some(st);
    let plan = rollback(&facts).unwrap();
    assert_eq!(
        plan.steps.iter().map(Step::kind).collect::<Vec<_>>(),
        ["write_config", "switch", "restart"]
    );
    assert_eq!(plan.instance.generation, "0-older");
}

fn sample_state(lock: &Lock) -> InstanceState {
    let digest = lock.digest().unwrap();
    let name = format!("1-{}", &digest.hex()[..12]);
    InstanceState {
        instance: main(),
        major: lock.major(),
        port: 5432,
        data_dir: "/r/var/lib/pgoci/main/data".into(),
        data_dir_created: true,
        data_dir_complete: true,
        user: "postgres".into(),
        service: ServiceKind::None,
        socket_dir: "/r/run/pgoci/main".into(),
        settings: BTreeMap::new(),
        generations: vec![GenerationState {
            name: name.clone(),
            lock_digest: digest,
            server_version: lock.server.version.clone(),
            server_digest: lock.server.pinned.digest.clone(),
            extensions: Vec::new(),
            dirs: crate::install::generation::ServerDirs {
                bin: "bin".into(),
                sharedir: "share".into(),
                pkglibdir: "lib".into(),
            },
            store: Vec::new(),
            major: None,
            collation: None,
        }],
        current: name,
        collation: None,
        major_upgrade: None,
    }
}

#[test]
fn a_taken_port_is_a_typed_refusal_with_its_hint() {
    let lock = crate::lock::tests::sample();
    let mut facts = bare_host();
    facts.requested_port_free = false;
    let mut o = opts();
    o.port = Some(5432);
    let e = install(&lock, &o, &facts).unwrap_err();
    assert!(
        matches!(
            e.typed::<PlanError>(),
            Some(PlanError::PortTaken { port: 5432 })
        ),
        "{e:?}"
    );
    assert_eq!(e.kind, crate::Kind::Host);
    assert_eq!(e.to_string(), "port 5432 is taken by another program");
    assert_eq!(e.hint.as_deref(), Some("pass another --port"));

    // The port of another pgoci instance names that instance.
    let mut other = sample_state(&lock);
    other.instance = InstanceName::parse("other").unwrap();
    other.port = 5432;
    other.data_dir = "/r/var/lib/pgoci/other/data".into();
    facts.others.push(other);
    let e = install(&lock, &o, &facts).unwrap_err();
    match e.typed::<PlanError>() {
        Some(PlanError::PortOfInstance { port, owner }) => {
            assert_eq!(*port, 5432);
            assert_eq!(owner.as_str(), "other");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.kind, crate::Kind::Host);
    assert_eq!(e.to_string(), "port 5432 is used by instance other");
    assert_eq!(e.hint.as_deref(), Some("pass another --port"));
}

#[test]
fn a_data_dir_that_is_not_pgocis_is_a_typed_refusal_naming_it() {
    let lock = crate::lock::tests::sample();
    let mut facts = bare_host();
    facts.data_dir.state = DataDirState::NonEmpty;
    let e = install(&lock, &opts(), &facts).unwrap_err();
    match e.typed::<PlanError>() {
        Some(PlanError::DataDirNotPgocis { path }) => {
            assert_eq!(path, Path::new("/r/var/lib/pgoci/main/data"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.kind, crate::Kind::Host);
    assert_eq!(
        e.to_string(),
        "data dir /r/var/lib/pgoci/main/data is not empty and was not created by pgoci; refusing to touch it"
    );
    assert_eq!(e.hint.as_deref(), Some("pass an empty or new --data-dir"));

    facts.data_dir.state = DataDirState::Initialised {
        major: Some(lock.major()),
    };
    let e = install(&lock, &opts(), &facts).unwrap_err();
    assert!(matches!(
        e.typed::<PlanError>(),
        Some(PlanError::DataDirForeignCluster { .. })
    ));
    assert_eq!(e.kind, crate::Kind::Host);
    assert_eq!(
        e.hint.as_deref(),
        Some("pass an empty or new --data-dir (pgoci never adopts existing data)")
    );

    facts.data_dir.state = DataDirState::Initialised { major: None };
    let e = install(&lock, &opts(), &facts).unwrap_err();
    assert!(matches!(
        e.typed::<PlanError>(),
        Some(PlanError::DataDirOtherMajor { found: None, .. })
    ));
    assert_eq!(
        e.to_string(),
        format!(
            "data dir /r/var/lib/pgoci/main/data holds PostgreSQL unknown data; this lock is for {}",
            lock.major()
        )
    );
}

#[test]
fn another_major_and_unknown_instances_are_typed() {
    let lock = crate::lock::tests::sample();
    let mut facts = bare_host();
    let mut prev = sample_state(&lock);
    prev.major = 14;
    facts.previous = Some(prev);
    let e = install(&lock, &opts(), &facts).unwrap_err();
    match e.typed::<PlanError>() {
        Some(PlanError::OtherMajor {
            running, lock: l, ..
        }) => {
            assert_eq!((*running, *l), (14, lock.major()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.kind, crate::Kind::Host);

    let facts = LifecycleFacts {
        layout: opts().layout,
        instance: main(),
        state: None,
        server_running: false,
        service_files: BTreeMap::new(),
    };
    let e = rollback(&facts).unwrap_err();
    assert!(matches!(
        e.typed::<PlanError>(),
        Some(PlanError::UnknownInstance { .. })
    ));
    assert_eq!(e.kind, crate::Kind::Usage);
    assert_eq!(e.to_string(), "no instance named main under /r/opt/pgoci");
    assert_eq!(
        e.hint.as_deref(),
        Some("`pgoci status` lists the instances")
    );
}
