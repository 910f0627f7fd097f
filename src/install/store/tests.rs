use super::*;
use crate::progress::Event;

/// An uncompressed layer of regular files (a `.wh.` name whites out).
fn layer_blob(cache: &crate::cache::Cache, files: &[(&str, &[u8])]) -> Blob {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    let digest = Digest::of_bytes(&bytes);
    fs::write(cache.path(&digest), &bytes).unwrap();
    Blob {
        digest,
        size: bytes.len() as u64,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
    }
}

fn pinned(name: &str, layers: Vec<Blob>) -> Pinned {
    Pinned {
        reference: format!("example.test/{name}:1"),
        digest: Digest::of_bytes(name.as_bytes()),
        size: 1,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        index: None,
        config: Blob {
            digest: Digest::of_bytes(b"config"),
            size: 6,
            media_type: "application/vnd.oci.image.config.v1+json".into(),
        },
        layers,
        signature: None,
    }
}

/// Counts the layers read for unpacking, by digest.
#[derive(Default)]
struct Reads(Mutex<HashMap<String, usize>>);

impl Reporter for Reads {
    fn event(&self, event: &Event) {
        if let Event::BlobStarted {
            phase: Phase::Unpack,
            digest,
            ..
        } = event
        {
            *self
                .0
                .lock()
                .unwrap()
                .entry(digest.hex().into())
                .or_default() += 1;
        }
    }
}

/// Two artifacts on one base, unpacked at once as an install does:
/// the base is read once, stored once, and both entries link its file.
#[test]
fn artifacts_sharing_a_layer_unpacked_together_read_and_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = crate::cache::Cache::open(&dir.path().join("cache")).unwrap();
    let layout = HostLayout::new(&dir.path().join("root"), Path::new("/opt/pgoci"));
    let base = layer_blob(&cache, &[("bin/postgres", b"server"), ("share/x", b"x")]);
    let one = layer_blob(&cache, &[("share/one", b"1")]);
    let two = layer_blob(&cache, &[("share/.wh.x", b"")]);
    let a = pinned("a", vec![base.clone(), one.clone()]);
    let b = pinned("b", vec![base.clone(), two.clone(), base.clone()]);
    let reads = Reads::default();
    let keep = &crate::unpack::keep_all;
    let (ea, eb) = std::thread::scope(|s| {
        let ta = s.spawn(|| ensure(&layout, &a, &cache, keep, &reads).unwrap());
        let tb = s.spawn(|| ensure(&layout, &b, &cache, keep, &reads).unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert!(ea.1 && eb.1, "both created now");
    let reads_now = reads.0.lock().unwrap().clone();
    assert_eq!(reads_now[base.digest.hex()], 1, "{reads_now:?}");
    assert_eq!(reads_now.len(), 3, "{reads_now:?}");
    let mut stored: Vec<String> = fs::read_dir(layers_dir(&layout))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    let mut want: Vec<String> = [&base, &one, &two]
        .iter()
        .map(|b| b.digest.hex().to_string())
        .collect();
    want.sort();
    assert_eq!(stored, want);
    let ino = |p: PathBuf| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(ea.0.join("bin/postgres")),
        ino(eb.0.join("bin/postgres"))
    );
    // Each entry is its own image: b's base again after its whiteout.
    assert!(ea.0.join("share/one").is_file() && !eb.0.join("share/one").exists());
    assert_eq!(fs::read(eb.0.join("share/x")).unwrap(), b"x");
    assert_eq!(layers_of(&eb.0).len(), 3);
    let manifest =
        super::super::manifest::read(&super::super::manifest::store_manifest_path(&ea.0)).unwrap();
    assert_eq!(
        manifest[Path::new("bin/postgres")],
        Digest::of_bytes(b"server")
    );
    // Again: nothing to do, nothing read.
    let again = ensure(&layout, &a, &cache, keep, &reads).unwrap();
    assert!(!again.1);
    assert_eq!(reads.0.lock().unwrap().values().sum::<usize>(), 3);
    assert!(!fs::read_dir(layout.store())
        .unwrap()
        .chain(fs::read_dir(layers_dir(&layout)).unwrap())
        .any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-")));
}

/// A store by hand: artifact `a` composed from layer `l1` (one file
/// hard-linked), layer `l2` used by nothing.
fn store() -> (tempfile::TempDir, HostLayout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = HostLayout::new(dir.path(), Path::new("/p"));
    let l1 = layers_dir(&layout).join("l1");
    let l2 = layers_dir(&layout).join("l2");
    for l in [&l1, &l2] {
        fs::create_dir_all(l.join(layer::FILES)).unwrap();
        fs::write(l.join(layer::OPS), "pgoci-layer 1 0\n").unwrap();
    }
    fs::write(l1.join("files/0"), vec![1u8; 1000]).unwrap();
    fs::write(l2.join("files/0"), vec![2u8; 300]).unwrap();
    let a = layout.store().join("a");
    fs::create_dir_all(a.join("bin")).unwrap();
    fs::hard_link(l1.join("files/0"), a.join("bin/x")).unwrap();
    fs::write(a.join("own"), vec![3u8; 50]).unwrap();
    fs::write(layers_list_path(&a), "l1\n").unwrap();
    fs::write(super::super::manifest::store_manifest_path(&a), "{}").unwrap();
    (dir, layout)
}

#[test]
fn gc_keeps_the_layers_of_used_entries_and_counts_each_inode_once() {
    let (_dir, layout) = store();
    let used: BTreeSet<String> = ["a".to_string()].into();
    let unused_now = unused(&layout, &used);
    // Its file and its 16-byte `ops`.
    assert_eq!(unused_now, BTreeMap::from([("layers/l2".into(), 316)]));
    // Nothing used: the shared bytes are freed once, with the last link.
    let all = unused(&layout, &BTreeSet::new());
    assert_eq!(
        all.values().sum::<u64>(),
        1000 + 300 + 50 + 2 * 16,
        "{all:?}"
    );
    assert_eq!(all["layers/l2"], 316);
    // Removing `a` alone would free only its own file.
    let a_only = freed_bytes(&[("a".into(), layout.store().join("a"))]);
    assert_eq!(a_only["a"], 50);
    for entry in all.keys() {
        assert!(remove(&layout, entry).unwrap(), "{entry}");
    }
    assert!(!layers_dir(&layout).exists(), "emptied, then removed");
    assert_eq!(
        fs::read_dir(layout.store()).unwrap().count(),
        0,
        "the manifests and layer lists went with their entry"
    );
    assert!(remove(&layout, "../x").is_err());
    assert!(remove(&layout, "layers/").is_err());
}
