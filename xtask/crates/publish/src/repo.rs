//! A TUF repository in a folder, laid out for consistent snapshots (what the updater and
//! any standard TUF client fetch):
//!
//! ```text
//! metadata/1.root.json 2.root.json …  every root version (root.json: the newest)
//! metadata/timestamp.json              the only file without a version in its name
//! metadata/N.snapshot.json N.targets.json   each version kept (clients fetch by version)
//! targets/HASH.NAME                    each bundle under each of its hashes
//! targets/NAME.minisig                 its minisign signature, which the updater checks too
//! ```
//!
//! A client's metadata URL is the mirror's `metadata/`, its target base URL `targets/`.
//!
//! Files are only ever added, never changed, except `root.json` and `timestamp.json`, and
//! those are replaced whole (temp file, then rename), so a mirror syncing mid-release serves
//! old or new metadata, never half of each.

use crate::keyfile::RoleKey;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use sha2::Digest;
use std::path::{Path, PathBuf};
use timb_release::tuf::{names, TrustedSet};

const SPEC_VERSION: &str = "1.0.31";
const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// One role's keys (key id and public key as metadata lists them) and threshold.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    pub keys: Vec<(String, Value)>,
    pub threshold: u64,
}

/// The keys of the four top-level roles.
#[derive(Debug, Clone)]
pub struct Roles {
    pub root: RoleSpec,
    pub targets: RoleSpec,
    pub snapshot: RoleSpec,
    pub timestamp: RoleSpec,
}

impl Roles {
    fn get(&self, role: &str) -> &RoleSpec {
        match role {
            "root" => &self.root,
            "targets" => &self.targets,
            "snapshot" => &self.snapshot,
            _ => &self.timestamp,
        }
    }
}

/// How long each role's metadata is valid, in seconds from the moment it is signed. The
/// timestamp is short-lived (its key is the online one and it is re-signed often), so a
/// mirror that stops updating is noticed within a day.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub root: i64,
    pub targets: i64,
    pub snapshot: i64,
    pub timestamp: i64,
}

const DAY: i64 = 86_400;

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            root: 365 * DAY,
            targets: 90 * DAY,
            snapshot: 30 * DAY,
            timestamp: DAY,
        }
    }
}

/// The opened keys that sign targets, snapshot and timestamp in one command.
pub struct Signers<'a> {
    pub targets: Vec<&'a RoleKey>,
    pub snapshot: Vec<&'a RoleKey>,
    pub timestamp: Vec<&'a RoleKey>,
}

/// One bundle to publish: its archive (a `.minisig` beside it is published too) and the
/// `custom` fields its target carries (`{"timb": {version, target, channel}}`).
pub struct Bundle {
    pub archive: PathBuf,
    pub custom: Value,
    /// The release's published sums and its builders' signatures over them (a `.builders`
    /// file), published as `NAME.sha256sums` and `NAME.builders` for the updater's check.
    pub vouched: Option<(Vec<u8>, Vec<u8>)>,
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (TUF's `expires`), by the civil-from-days
/// algorithm; times before 1970 are not needed.
pub fn format_time(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(DAY), unix.rem_euclid(DAY));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn hashes(data: &[u8]) -> Value {
    json!({
        "sha256": hex::encode(sha2::Sha256::digest(data)),
        "sha512": hex::encode(sha2::Sha512::digest(data)),
    })
}

/// `{"signed", "signatures"}`, each signer once, in canonical-JSON-independent pretty form
/// (signatures cover the canonical form of `signed`, not the file's bytes).
fn envelope(signed: &Value, signers: &[&RoleKey]) -> Result<Vec<u8>> {
    let mut sigs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for k in signers {
        if seen.insert(k.keyid.clone()) {
            sigs.push(k.sign(signed)?);
        }
    }
    Ok(serde_json::to_vec_pretty(
        &json!({"signed": signed, "signatures": sigs}),
    )?)
}

/// Checks before signing that `signers` reach `spec`'s threshold, so a command fails with a
/// clear error instead of publishing metadata no client accepts.
fn enough(role: &str, spec: &RoleSpec, signers: &[&RoleKey]) -> Result<()> {
    let n = spec
        .keys
        .iter()
        .filter(|(id, _)| signers.iter().any(|s| &s.keyid == id))
        .count() as u64;
    if n < spec.threshold {
        bail!(
            "{role}: {n} of the given keys are {role} keys, the threshold is {}",
            spec.threshold
        );
    }
    Ok(())
}

/// Writes `data` to `dir/name` through a temp file, fsynced and renamed.
fn write_file(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = dir.join(format!(".{}.tmp", name.replace('/', "_")));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Adds a file that must never change: refuses to overwrite different bytes.
fn add_file(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    match std::fs::read(dir.join(name)) {
        Ok(old) if old == data => Ok(()),
        Ok(_) => bail!("{name} already exists with other contents; published files never change"),
        Err(_) => write_file(dir, name, data),
    }
}

/// Where the metadata lives in a repository folder.
fn meta(dir: &Path) -> PathBuf {
    dir.join("metadata")
}

fn read_json(dir: &Path, name: &str) -> Result<Value> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

fn signed_of(v: &Value, name: &str) -> Result<Value> {
    v.get("signed")
        .cloned()
        .with_context(|| format!("{name} has no \"signed\" part"))
}

fn version_of(signed: &Value) -> Result<u64> {
    signed["version"]
        .as_u64()
        .context("metadata without a version")
}

fn role_json(spec: &RoleSpec) -> Value {
    let ids: Vec<&str> = spec.keys.iter().map(|(id, _)| id.as_str()).collect();
    json!({"keyids": ids, "threshold": spec.threshold})
}

fn root_signed(roles: &Roles, version: u64, expires: i64) -> Value {
    let mut keys = Map::new();
    let mut role_map = Map::new();
    for role in ROLES {
        let spec = roles.get(role);
        for (id, public) in &spec.keys {
            keys.insert(id.clone(), public.clone());
        }
        role_map.insert(role.into(), role_json(spec));
    }
    json!({
        "_type": "root", "spec_version": SPEC_VERSION, "version": version,
        "expires": format_time(expires), "consistent_snapshot": true,
        "keys": keys, "roles": role_map,
    })
}

/// The repository's current root (`root.json`), as the roles it names.
pub fn current_roles(dir: &Path) -> Result<(u64, Roles)> {
    let signed = signed_of(&read_json(&meta(dir), "root.json")?, "root.json")?;
    let version = version_of(&signed)?;
    let spec = |role: &str| -> Result<RoleSpec> {
        let r = &signed["roles"][role];
        let ids = r["keyids"].as_array().context("root: keyids")?;
        let keys = ids
            .iter()
            .map(|id| {
                let id = id.as_str().context("root: a key id")?;
                Ok((id.to_owned(), signed["keys"][id].clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RoleSpec {
            keys,
            threshold: r["threshold"].as_u64().context("root: threshold")?,
        })
    };
    Ok((
        version,
        Roles {
            root: spec("root")?,
            targets: spec("targets")?,
            snapshot: spec("snapshot")?,
            timestamp: spec("timestamp")?,
        },
    ))
}

/// A new repository in `dir` (which must not hold one): root version 1, no targets yet.
pub fn init(
    dir: &Path,
    roles: &Roles,
    root_keys: &[&RoleKey],
    signers: &Signers,
    now: i64,
    expiry: Expiry,
) -> Result<()> {
    let m = meta(dir);
    if m.join("root.json").exists() {
        bail!("{} already holds a repository", dir.display());
    }
    for role in ROLES {
        let spec = roles.get(role);
        if spec.threshold == 0 || (spec.keys.len() as u64) < spec.threshold {
            bail!(
                "{role}: threshold {} with {} keys cannot be met",
                spec.threshold,
                spec.keys.len()
            );
        }
    }
    enough("root", &roles.root, root_keys)?;
    std::fs::create_dir_all(&m)?;
    let root = envelope(&root_signed(roles, 1, now + expiry.root), root_keys)?;
    add_file(&m, &names::root(1), &root)?;
    write_file(&m, "root.json", &root)?;
    publish_targets(dir, roles, Map::new(), 1, signers, now, expiry)?;
    check(dir, now)
}

/// Signs targets version `targets_version` listing `files`, then a snapshot naming it and a
/// timestamp naming that, each one version up from the repository's current one.
fn publish_targets(
    dir: &Path,
    roles: &Roles,
    files: Map<String, Value>,
    targets_version: u64,
    signers: &Signers,
    now: i64,
    expiry: Expiry,
) -> Result<()> {
    enough("targets", &roles.targets, &signers.targets)?;
    enough("snapshot", &roles.snapshot, &signers.snapshot)?;
    enough("timestamp", &roles.timestamp, &signers.timestamp)?;
    let targets = envelope(
        &json!({
            "_type": "targets", "spec_version": SPEC_VERSION, "version": targets_version,
            "expires": format_time(now + expiry.targets), "targets": files,
        }),
        &signers.targets,
    )?;
    let m = meta(dir);
    add_file(&m, &names::targets(true, targets_version), &targets)?;
    let snapshot_version = match read_json(&m, "timestamp.json") {
        Ok(ts) => version_of(&signed_of(&ts, "timestamp.json")?["meta"]["snapshot.json"])? + 1,
        Err(_) => 1,
    };
    let snapshot = envelope(
        &json!({
            "_type": "snapshot", "spec_version": SPEC_VERSION, "version": snapshot_version,
            "expires": format_time(now + expiry.snapshot),
            "meta": {"targets.json": {
                "version": targets_version, "length": targets.len(), "hashes": hashes(&targets),
            }},
        }),
        &signers.snapshot,
    )?;
    add_file(&m, &names::snapshot(true, snapshot_version), &snapshot)?;
    sign_timestamp(
        dir,
        roles,
        snapshot_version,
        &snapshot,
        &signers.timestamp,
        now,
        expiry,
    )
}

fn sign_timestamp(
    dir: &Path,
    roles: &Roles,
    snapshot_version: u64,
    snapshot: &[u8],
    keys: &[&RoleKey],
    now: i64,
    expiry: Expiry,
) -> Result<()> {
    enough("timestamp", &roles.timestamp, keys)?;
    let m = meta(dir);
    let version = match read_json(&m, "timestamp.json") {
        Ok(ts) => version_of(&signed_of(&ts, "timestamp.json")?)? + 1,
        Err(_) => 1,
    };
    let timestamp = envelope(
        &json!({
            "_type": "timestamp", "spec_version": SPEC_VERSION, "version": version,
            "expires": format_time(now + expiry.timestamp),
            "meta": {"snapshot.json": {
                "version": snapshot_version, "length": snapshot.len(), "hashes": hashes(snapshot),
            }},
        }),
        keys,
    )?;
    write_file(&m, "timestamp.json", &timestamp)
}

/// What the timestamp currently names: the snapshot (version, bytes) and the targets
/// (version, list) it names.
struct Current {
    snapshot_version: u64,
    snapshot: Vec<u8>,
    targets_version: u64,
    files: Map<String, Value>,
}

fn current(dir: &Path) -> Result<Current> {
    let m = meta(dir);
    let ts = signed_of(&read_json(&m, "timestamp.json")?, "timestamp.json")?;
    let snapshot_version = version_of(&ts["meta"]["snapshot.json"])?;
    let snapshot_name = names::snapshot(true, snapshot_version);
    let snapshot = std::fs::read(m.join(&snapshot_name))
        .with_context(|| format!("reading {snapshot_name}"))?;
    let sv: Value = serde_json::from_slice(&snapshot)?;
    let targets_version = version_of(&signed_of(&sv, &snapshot_name)?["meta"]["targets.json"])?;
    let targets_name = names::targets(true, targets_version);
    let targets = signed_of(&read_json(&m, &targets_name)?, &targets_name)?;
    let files = targets["targets"]
        .as_object()
        .cloned()
        .context("targets: no target list")?;
    Ok(Current {
        snapshot_version,
        snapshot,
        targets_version,
        files,
    })
}

/// Adds (or replaces, by name) a release's bundles: copies each archive under each of its
/// hashes and its `.minisig` beside, then signs targets, snapshot and timestamp.
pub fn add(
    dir: &Path,
    bundles: &[Bundle],
    signers: &Signers,
    now: i64,
    expiry: Expiry,
) -> Result<()> {
    let (_, roles) = current_roles(dir)?;
    let Current {
        targets_version,
        mut files,
        ..
    } = current(dir)?;
    // Everything read and checked before anything is written.
    let mut staged = Vec::new();
    for b in bundles {
        let name = b
            .archive
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| timb_release::is_plain_file_name(n))
            .with_context(|| format!("{}: not a plain file name", b.archive.display()))?
            .to_owned();
        let data = std::fs::read(&b.archive)
            .with_context(|| format!("reading {}", b.archive.display()))?;
        let mut sig = b.archive.clone().into_os_string();
        sig.push(".minisig");
        let Ok(sig) = std::fs::read(&sig) else {
            bail!(
                "{}: no minisign signature beside it; the updater checks one",
                b.archive.display()
            );
        };
        staged.push((name, data, sig, &b.custom, &b.vouched));
    }
    for (name, data, sig, custom, vouched) in staged {
        let h = hashes(&data);
        for alg in ["sha256", "sha512"] {
            let digest = h[alg].as_str().context("a hash")?;
            add_file(dir, &format!("targets/{digest}.{name}"), &data)?;
        }
        write_file(dir, &format!("targets/{name}.minisig"), &sig)?;
        // The builder quorum the updater checks beside the signature.
        if let Some((sums, builders)) = vouched {
            write_file(dir, &format!("targets/{name}.sha256sums"), sums)?;
            write_file(dir, &format!("targets/{name}.builders"), builders)?;
        }
        files.insert(
            name,
            json!({"length": data.len(), "hashes": h, "custom": custom}),
        );
    }
    publish_targets(
        dir,
        &roles,
        files,
        targets_version + 1,
        signers,
        now,
        expiry,
    )?;
    check(dir, now)
}

/// A new timestamp over the current snapshot (the online key's routine job).
pub fn resign_timestamp(dir: &Path, keys: &[&RoleKey], now: i64, expiry: Expiry) -> Result<()> {
    let (_, roles) = current_roles(dir)?;
    let Current {
        snapshot_version,
        snapshot,
        ..
    } = current(dir)?;
    sign_timestamp(dir, &roles, snapshot_version, &snapshot, keys, now, expiry)?;
    check(dir, now)
}

/// A new root (version N+1) naming `new` roles, signed by a threshold of the old root keys
/// and of the new ones (the spec's rotation rule), then targets, snapshot and timestamp
/// signed again under it, so that rotating any role's keys is this one command.
pub fn rotate(
    dir: &Path,
    new: &Roles,
    root_keys: &[&RoleKey],
    signers: &Signers,
    now: i64,
    expiry: Expiry,
) -> Result<()> {
    let (version, old) = current_roles(dir)?;
    enough("root (old keys)", &old.root, root_keys)?;
    enough("root (new keys)", &new.root, root_keys)?;
    let root = envelope(&root_signed(new, version + 1, now + expiry.root), root_keys)?;
    let Current {
        targets_version,
        files,
        ..
    } = current(dir)?;
    add_file(&meta(dir), &names::root(version + 1), &root)?;
    write_file(&meta(dir), "root.json", &root)?;
    publish_targets(dir, new, files, targets_version + 1, signers, now, expiry)?;
    check(dir, now)
}

/// Reads the repository back as a client would, from `1.root.json` through every root to
/// the newest, then timestamp, snapshot and targets, and every target's files.
pub fn check(dir: &Path, now: i64) -> Result<()> {
    let m = meta(dir);
    let first = std::fs::read(m.join(names::root(1))).context("reading 1.root.json")?;
    let mut set = TrustedSet::new(&first, now).context("1.root.json")?;
    let mut v = 2;
    while let Ok(next) = std::fs::read(m.join(names::root(v))) {
        set.update_root(&next).with_context(|| names::root(v))?;
        v += 1;
    }
    set.check_root_current().context("the newest root")?;
    let read = |name: &str| std::fs::read(m.join(name)).with_context(|| format!("reading {name}"));
    set.update_timestamp(&read("timestamp.json")?)
        .context("timestamp.json")?;
    let snapshot_version = set
        .timestamp()
        .and_then(|t| t.snapshot_meta())
        .map(|m| m.version);
    let name = names::snapshot(true, snapshot_version.context("no snapshot version")?);
    set.update_snapshot(&read(&name)?)
        .with_context(|| name.clone())?;
    let targets_version = set
        .snapshot()
        .and_then(|s| s.meta.get("targets.json").map(|m| m.version))
        .context("snapshot names no targets.json")?;
    let name = names::targets(true, targets_version);
    set.update_targets(&read(&name)?)
        .with_context(|| name.clone())?;
    let listed: Vec<String> = set
        .targets()
        .map(|t| t.targets.keys().cloned().collect())
        .unwrap_or_default();
    for target in listed {
        let info = set.target(&target)?;
        for path in names::target(true, &info) {
            let mut verifier = info.verifier()?;
            let file = dir.join("targets").join(&path);
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            verifier.update(&data)?;
            verifier.finish().with_context(|| path.clone())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_tuf_expiry_strings() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_796_083_199), "2026-11-30T23:59:59Z");
        assert_eq!(format_time(1_796_083_200), "2026-12-01T00:00:00Z");
        for t in [0, 951_782_400, 1_796_083_199, 4_102_444_800] {
            assert_eq!(timb_release::tuf::parse_time(&format_time(t)), Some(t));
        }
    }
}
