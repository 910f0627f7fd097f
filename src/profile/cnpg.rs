//! CloudNativePG image catalogs as profiles: `spec.images[].major/.image`
//! are the servers (full OS images, so `layout: rootfs` with Debian's
//! PostgreSQL paths); where an image lists `extensions` (CloudNativePG
//! 1.29+ catalogs), those become the profile's extensions for that major.

use super::*;

#[derive(Deserialize)]
struct Catalog {
    metadata: Metadata,
    spec: Spec,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Deserialize)]
struct Spec {
    images: Vec<Image>,
}

#[derive(Deserialize)]
struct Image {
    major: u32,
    image: String,
    #[serde(default)]
    extensions: Vec<Extension>,
}

#[derive(Deserialize)]
struct Extension {
    name: ExtensionName,
    image: ImageRef,
    #[serde(default)]
    ld_library_path: Vec<ImagePath>,
    #[serde(default)]
    env: Vec<EnvVar>,
    #[serde(default)]
    bin_path: Vec<ImagePath>,
}

/// `image: {reference: …}` (the Kubernetes ImageVolumeSource) or a plain string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ImageRef {
    Volume { reference: String },
    Plain(String),
}

#[derive(Deserialize)]
struct EnvVar {
    name: EnvKey,
    value: String,
}

/// Sets a per-major field's value for `major`.
fn set_for<T>(field: &mut PerMajor<T>, major: u32, value: T) {
    if let PerMajor::PerMajor(map) = field {
        map.insert(major, value);
    }
}

/// The extension version in a CloudNativePG tag `<extver>-<pgmajor>-<distro>`.
fn version_of(reference: &str) -> String {
    let tag = reference
        .split('@')
        .next()
        .and_then(|r| r.rsplit_once(':'))
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/'))
        .unwrap_or("latest");
    tag.split('-').next().unwrap_or(tag).to_string()
}

pub(super) fn parse(text: &str, origin: &str) -> Result<Profile> {
    let catalog: Catalog =
        serde_saphyr::from_str(text).map_err(|source| ProfileError::CatalogMalformed {
            origin: origin.to_string(),
            source: Box::new(source),
        })?;
    let mut images = BTreeMap::new();
    let mut extensions: BTreeMap<ExtensionName, ExtensionSpec> = BTreeMap::new();
    for image in &catalog.spec.images {
        images.insert(image.major, image.image.clone());
        for ext in &image.extensions {
            let reference = match &ext.image {
                ImageRef::Volume { reference } | ImageRef::Plain(reference) => reference.clone(),
            };
            // Each major's entry says its own version, library path
            // and environment: CloudNativePG builds one image per major.
            let spec = extensions
                .entry(ext.name.clone())
                .or_insert_with(|| ExtensionSpec {
                    image: PerMajor::PerMajor(BTreeMap::new()),
                    versions: PerMajor::PerMajor(BTreeMap::new()),
                    majors: Vec::new(),
                    preload: None,
                    settings: BTreeMap::new(),
                    requires: Vec::new(),
                    ld_library_path: PerMajor::PerMajor(BTreeMap::new()),
                    env: PerMajor::PerMajor(BTreeMap::new()),
                    bin_path: PerMajor::PerMajor(BTreeMap::new()),
                    signatures: None,
                });
            let major = image.major;
            set_for(&mut spec.versions, major, vec![version_of(&reference)]);
            set_for(
                &mut spec.ld_library_path,
                major,
                ext.ld_library_path.clone(),
            );
            let env = ext.env.iter().map(|e| (e.name.clone(), e.value.clone()));
            set_for(&mut spec.env, major, env.collect());
            set_for(&mut spec.bin_path, major, ext.bin_path.clone());
            set_for(&mut spec.image, major, reference);
            spec.majors.push(major);
        }
    }
    let mut profile = Profile {
        name: catalog.metadata.name,
        description: format!("CloudNativePG image catalog {origin}"),
        platforms: default_platforms(),
        server: ServerSpec {
            majors: images.keys().copied().collect(),
            image: PerMajor::PerMajor(images),
            layout: PerMajor::All(Layout::Rootfs),
            paths: Some(PerMajor::All(RootfsPaths {
                bin: ImagePath::parse("/usr/lib/postgresql/{major}/bin").expect("valid"),
                lib: ImagePath::parse("/usr/lib/postgresql/{major}/lib").expect("valid"),
                share: ImagePath::parse("/usr/share/postgresql/{major}").expect("valid"),
            })),
            signatures: None,
        },
        extensions,
        signatures: None,
        digest: Some(Digest::of_bytes(text.as_bytes())),
        dir: None,
    };
    // Majors in ascending order, as in hand-written profiles.
    for spec in profile.extensions.values_mut() {
        spec.majors.sort();
    }
    profile.validate(origin)?;
    Ok(profile)
}
