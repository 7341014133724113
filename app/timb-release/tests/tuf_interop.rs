//! timb's TUF client against the reference implementation: canonical JSON vectors made by
//! securesystemslib (committed in `data/`), and repositories that Python `tuf` writes and
//! signs at test time (`tuf-interop/make_repos.py`): ed25519, ECDSA and RSA roles, and a root
//! rotated twice.
//!
//! The interpreter is `$TIMB_TUF_PYTHON` (see `tuf_repo::python`). Without one the repository
//! tests are skipped loudly, or fail when `TIMB_REQUIRE_INTEROP=1`.

#[path = "common/tuf_repo.rs"]
mod tuf_repo;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use timb_release::tuf::{canonical_json, names, TrustedSet, MAX_ROOT_ROTATIONS};
use timb_release::{Target, Version};

#[test]
fn canonical_json_matches_securesystemslib_byte_for_byte() {
    let text = include_str!("data/tuf-canonical-vectors.json");
    let vectors: Vec<Value> = serde_json::from_str(text).unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let input = v["json"].as_str().unwrap();
        let parsed: Value = serde_json::from_str(input).unwrap();
        let ours = canonical_json(&parsed).map(|b| String::from_utf8(b).unwrap());
        match v["canonical"].as_str() {
            // The one known difference, on the strict side: serde_json reads `-0` as a
            // float, so it is refused where the reference writes `0`. The reference never
            // writes `-0`, so no metadata it signs is affected.
            Some(_) if input == "[-0]" => assert!(ours.is_err()),
            Some(want) => assert_eq!(ours.as_deref(), Ok(want), "{input}"),
            None => assert!(ours.is_err(), "the reference refuses {input}"),
        }
    }
}

fn python() -> Option<PathBuf> {
    tuf_repo::python("interoperability with Python tuf")
}

/// The repositories Python `tuf` wrote, made once per test run.
fn repos() -> Option<&'static (tempfile::TempDir, Value)> {
    static REPOS: OnceLock<Option<(tempfile::TempDir, Value)>> = OnceLock::new();
    REPOS
        .get_or_init(|| {
            let py = python()?;
            let dir = tempfile::tempdir().unwrap();
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tuf-interop/make_repos.py");
            let out = Command::new(py)
                .arg(script)
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "make_repos.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let manifest = std::fs::read(dir.path().join("manifest.json")).unwrap();
            Some((dir, serde_json::from_slice(&manifest).unwrap()))
        })
        .as_ref()
}

fn now() -> i64 {
    tuf_repo::now()
}

/// A refresh as the fetcher will do it, from files on disk: the root chain from version 1,
/// timestamp, snapshot, targets by their consistent names; then every target the manifest
/// lists is looked up, and its file streamed through the verifier.
fn refresh_and_check(name: &str) -> TrustedSet {
    let (dir, manifest) = repos().expect("the caller checked Python is there");
    let repo = dir.path().join(name);
    let meta = |f: &str| std::fs::read(repo.join("metadata").join(f));
    let mut set = TrustedSet::new(&meta(&names::root(1)).unwrap(), now()).unwrap();
    for _ in 0..MAX_ROOT_ROTATIONS {
        let Ok(next) = meta(&names::root(set.root().version + 1)) else {
            break;
        };
        set.update_root(&next).unwrap();
    }
    set.check_root_current().unwrap();
    let expected = &manifest[name];
    assert_eq!(
        set.root().version,
        expected["root_version"].as_u64().unwrap()
    );
    set.update_timestamp(&meta(names::TIMESTAMP).unwrap())
        .unwrap();
    let consistent = set.consistent_snapshot();
    assert!(consistent);
    let v = set.timestamp().unwrap().snapshot_meta().unwrap().version;
    set.update_snapshot(&meta(&names::snapshot(consistent, v)).unwrap())
        .unwrap();
    let v = set.snapshot().unwrap().meta["targets.json"].version;
    set.update_targets(&meta(&names::targets(consistent, v)).unwrap())
        .unwrap();

    let listed = expected["targets"].as_object().unwrap();
    assert_eq!(set.targets().unwrap().targets.len(), listed.len());
    for (target, want) in listed {
        let info = set.target(target).unwrap();
        assert_eq!(info.length, want["length"].as_u64().unwrap());
        for (alg, digest) in want["hashes"].as_object().unwrap() {
            assert_eq!(info.hashes[alg], digest.as_str().unwrap(), "{target} {alg}");
        }
        assert_eq!(info.custom.as_ref(), Some(&want["custom"]));
        for path in names::target(consistent, &info) {
            let data = std::fs::read(repo.join("targets").join(&path)).unwrap();
            let mut v = info.verifier().unwrap();
            for chunk in data.chunks(4096) {
                v.update(chunk).unwrap();
            }
            v.finish().unwrap();
            // One changed byte is caught.
            let mut bad = data.clone();
            bad[0] ^= 0x20;
            let mut v = info.verifier().unwrap();
            v.update(&bad).unwrap();
            assert!(v.finish().is_err());
        }
    }
    set
}

#[test]
fn a_python_tuf_ed25519_repository_is_refreshed() {
    if repos().is_none() {
        return;
    }
    let set = refresh_and_check("ed25519");
    let info = set.target("timb-0.2.0-linux-x86_64.tar.xz").unwrap();
    let fields = timb_release::tuf::TimbFields::check_update(
        &info,
        &"0.1.0".parse::<Version>().unwrap(),
        Target::LinuxX86_64,
        &timb_release::tuf::Channel::new("stable").unwrap(),
    )
    .unwrap();
    assert_eq!(fields.version.as_str(), "0.2.0");
}

#[test]
fn a_python_tuf_repository_with_ecdsa_and_rsa_roles_is_refreshed() {
    if repos().is_none() {
        return;
    }
    let set = refresh_and_check("ecdsa-rsa");
    let root = set.root();
    let types: std::collections::BTreeSet<&str> =
        root.keys.values().map(|k| k.keytype.as_str()).collect();
    assert!(
        types.contains("ecdsa") && types.contains("rsa"),
        "{types:?}"
    );
    // Key ids the repository chose, not hashes of the keys, are used as they are.
    assert!(root.keys.contains_key("root-ecdsa") && root.keys.contains_key("root-rsa"));
}

#[test]
fn a_python_tuf_repository_whose_root_was_rotated_twice_is_refreshed() {
    if repos().is_none() {
        return;
    }
    let set = refresh_and_check("rotated");
    assert_eq!(set.root().version, 3);
}

#[test]
fn a_python_tuf_repository_with_an_expired_timestamp_is_refused() {
    let Some((dir, _)) = repos() else {
        return;
    };
    let m = dir.path().join("expired-timestamp/metadata");
    let mut set = TrustedSet::new(&std::fs::read(m.join("1.root.json")).unwrap(), now()).unwrap();
    let e = set
        .update_timestamp(&std::fs::read(m.join("timestamp.json")).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            e,
            timb_release::tuf::TufError::Expired {
                role: timb_release::tuf::RoleName::Timestamp,
                ..
            }
        ),
        "{e}"
    );
    assert!(set.timestamp().is_none());
}

/// The repositories Python wrote are refused when changed, as ours are: a sanity check that
/// the positive tests above verify something, for each key type.
#[test]
fn changed_python_tuf_metadata_is_refused_for_every_key_type() {
    let Some((dir, _)) = repos() else {
        return;
    };
    // ed25519 timestamps, an ECDSA timestamp, an RSA snapshot.
    for (repo, root, role) in [
        ("ed25519", 1, "timestamp"),
        ("ecdsa-rsa", 1, "timestamp"),
        ("ecdsa-rsa", 1, "snapshot"),
        ("rotated", 3, "timestamp"),
    ] {
        let m = dir.path().join(repo).join("metadata");
        let file = if role == "timestamp" {
            "timestamp.json"
        } else {
            "1.snapshot.json"
        };
        let good = std::fs::read_to_string(m.join(file)).unwrap();
        let changed = good.replace("\"expires\": \"2100", "\"expires\": \"2101");
        assert_ne!(changed, good);
        let mut set =
            TrustedSet::new(&std::fs::read(m.join("1.root.json")).unwrap(), now()).unwrap();
        for v in 2..=root {
            set.update_root(&std::fs::read(m.join(names::root(v))).unwrap())
                .unwrap();
        }
        let e = if role == "timestamp" {
            set.update_timestamp(changed.as_bytes()).unwrap_err()
        } else {
            set.update_timestamp(&std::fs::read(m.join("timestamp.json")).unwrap())
                .unwrap();
            // Loaded as the persisted one, so that no listed hash is checked first.
            set.load_local_snapshot(changed.as_bytes()).unwrap_err()
        };
        assert!(
            matches!(e, timb_release::tuf::TufError::Threshold { valid: 0, .. }),
            "{repo} {role}: {e}"
        );
    }
}

/// The other direction: the reference client (ngclient) refreshes from a repository timb's
/// code wrote and signed (canonical JSON, a root rotation, non-ASCII names and custom
/// fields), and downloads its targets.
#[test]
fn python_tuf_ngclient_refreshes_from_a_repository_timb_signed() {
    let Some(py) = python() else {
        return;
    };
    use tuf_repo::{sign_all, Key, Repo, RoleKeys};
    let mut r = Repo::new();
    r.add_target(
        "linux/notes-\u{e9}.txt",
        "r\u{e9}sum\u{e9} e\u{301}\n".as_bytes(),
        json!({"caf\u{e9}": {"e\u{301}": "\u{e9}", "\u{1f600}": ["\\\""]}}),
    );
    let v1 = r.root_bytes();
    let old = std::mem::replace(
        &mut r.root,
        RoleKeys {
            keys: vec![Key::new("new-root-a"), Key::new("new-root-b")],
            threshold: 2,
        },
    );
    r.timestamp = RoleKeys::one("new-timestamp");
    r.root_version = 2;
    let mut signers = old.refs();
    signers.extend(r.root.refs());
    let v2 = sign_all(&r.root_signed(), &signers);
    r.snapshot_version = 3;
    r.targets_version = 4;
    r.timestamp_version = 5;
    let f = r.files();

    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let meta = repo.join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    for (name, data) in [
        (names::root(1), &v1),
        (names::root(2), &v2),
        (names::TIMESTAMP.to_string(), &f.timestamp),
        (names::snapshot(true, 3), &f.snapshot),
        (names::targets(true, 4), &f.targets),
    ] {
        std::fs::write(meta.join(name), data).unwrap();
    }
    // Our own client takes it too.
    let mut set = TrustedSet::new(&v1, now()).unwrap();
    set.update_root(&v2).unwrap();
    set.update_timestamp(&f.timestamp).unwrap();
    set.update_snapshot(&f.snapshot).unwrap();
    set.update_targets(&f.targets).unwrap();
    let mut expected = serde_json::Map::new();
    for (name, file) in &r.target_files {
        let data: &[u8] = if name == tuf_repo::BUNDLE {
            tuf_repo::BUNDLE_DATA
        } else {
            "r\u{e9}sum\u{e9} e\u{301}\n".as_bytes()
        };
        let info = set.target(name).unwrap();
        for path in names::target(true, &info) {
            let p = repo.join("targets").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        expected.insert(name.clone(), file["hashes"]["sha256"].clone());
    }

    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tuf-interop/ngclient_refresh.py");
    let out = Command::new(py)
        .arg(script)
        .arg(&repo)
        .arg(dir.path().join("client"))
        .args(expected.keys())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ngclient refused timb's repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, Value::Object(expected));
}
