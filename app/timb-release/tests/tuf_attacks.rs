//! The attacks TUF defends against, one test each, on repositories built and signed in
//! Rust: each is refused with its own error, and the trusted set is left as it was.

#[path = "common/tuf_repo.rs"]
mod tuf_repo;

use serde_json::{json, Value};
use timb_release::tuf::{
    names, Channel, RoleName, TimbFields, TimestampUpdate, TrustedSet, TufError, MAX_TIMESTAMP_SIZE,
};
use timb_release::Target;
use tuf_repo::*;

/// A set holding root, timestamp and snapshot, ready for targets.
fn up_to_snapshot(f: &Files) -> TrustedSet {
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    set.update_timestamp(&f.timestamp).unwrap();
    set.update_snapshot(&f.snapshot).unwrap();
    set
}

/// Applies `update`, expects `want`, and checks nothing trusted changed.
fn refused<T: std::fmt::Debug>(
    set: &mut TrustedSet,
    update: impl FnOnce(&mut TrustedSet) -> Result<T, TufError>,
    want: impl Fn(&TufError) -> bool,
) -> TufError {
    let before = state(set);
    let e = update(set).expect_err("the update must be refused");
    assert!(want(&e), "unexpected error: {e:?}");
    assert!(!e.to_string().is_empty());
    assert_eq!(
        state(set),
        before,
        "a refused update changed the trusted set"
    );
    e
}

#[test]
fn a_good_repository_is_accepted_and_its_target_found() {
    let f = Repo::new().files();
    let set = f.trusted();
    let info = set.target(BUNDLE).unwrap();
    assert_eq!(info.length, BUNDLE_DATA.len() as u64);
    let mut v = info.verifier().unwrap();
    for chunk in BUNDLE_DATA.chunks(3) {
        v.update(chunk).unwrap();
    }
    v.finish().unwrap();
    let fields = TimbFields::check_update(
        &info,
        &"0.1.0".parse().unwrap(),
        Target::LinuxX86_64,
        &Channel::new("stable").unwrap(),
    )
    .unwrap();
    assert_eq!(fields.version.as_str(), "0.2.0");
    assert!(matches!(
        set.target("nothing"),
        Err(TufError::UnknownTarget { .. })
    ));
}

#[test]
fn arbitrary_software_a_target_with_a_bad_hash_is_refused() {
    let set = Repo::new().files().trusted();
    let info = set.target(BUNDLE).unwrap();
    let mut evil = BUNDLE_DATA.to_vec();
    evil[0] ^= 1;
    let mut v = info.verifier().unwrap();
    v.update(&evil).unwrap();
    let e = v.finish().unwrap_err();
    assert!(matches!(e, TufError::TargetHash { .. }), "{e}");
    assert!(e.to_string().contains("arbitrary software"), "{e}");
}

#[test]
fn endless_data_a_target_past_its_length_is_refused_while_streaming() {
    let set = Repo::new().files().trusted();
    let info = set.target(BUNDLE).unwrap();
    let mut v = info.verifier().unwrap();
    v.update(BUNDLE_DATA).unwrap();
    assert_eq!(v.remaining(), 0);
    let e = v.update(b"x").unwrap_err();
    assert!(matches!(e, TufError::TargetTooLong { .. }), "{e}");

    let mut v = info.verifier().unwrap();
    v.update(&BUNDLE_DATA[..4]).unwrap();
    let e = v.finish().unwrap_err();
    assert!(matches!(e, TufError::TargetTooShort { .. }), "{e}");
}

#[test]
fn endless_data_oversized_metadata_is_refused_unread() {
    let r = Repo::new();
    let f = r.files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    // Valid JSON, validly signed, only too long: padded with whitespace.
    let mut big = f.timestamp.clone();
    big.extend(std::iter::repeat_n(b' ', MAX_TIMESTAMP_SIZE));
    refused(
        &mut set,
        |s| s.update_timestamp(&big),
        |e| {
            matches!(
                e,
                TufError::TooLarge {
                    role: RoleName::Timestamp,
                    ..
                }
            )
        },
    );
    let huge_root = vec![b' '; timb_release::tuf::MAX_ROOT_SIZE + 1];
    assert!(matches!(
        TrustedSet::new(&huge_root, now()),
        Err(TufError::TooLarge {
            role: RoleName::Root,
            ..
        })
    ));
}

#[test]
fn extraneous_data_metadata_longer_than_listed_is_refused() {
    let f = Repo::new().files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    set.update_timestamp(&f.timestamp).unwrap();
    let mut longer = f.snapshot.clone();
    longer.push(b'\n');
    refused(
        &mut set,
        |s| s.update_snapshot(&longer),
        |e| {
            matches!(
                e,
                TufError::MetaLength {
                    role: RoleName::Snapshot,
                    ..
                }
            )
        },
    );
}

#[test]
fn freeze_an_expired_timestamp_is_refused() {
    let mut r = Repo::new();
    r.timestamp_expires = PAST.into();
    let f = r.files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_timestamp(&f.timestamp),
        |e| {
            matches!(
                e,
                TufError::Expired {
                    role: RoleName::Timestamp,
                    ..
                }
            )
        },
    );
}

#[test]
fn freeze_an_expired_snapshot_is_refused() {
    let mut r = Repo::new();
    r.snapshot_expires = PAST.into();
    let f = r.files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    set.update_timestamp(&f.timestamp).unwrap();
    refused(
        &mut set,
        |s| s.update_snapshot(&f.snapshot),
        |e| {
            matches!(
                e,
                TufError::Expired {
                    role: RoleName::Snapshot,
                    ..
                }
            )
        },
    );
}

#[test]
fn freeze_expired_targets_are_refused() {
    let mut r = Repo::new();
    r.targets_expires = PAST.into();
    let f = r.files();
    let mut set = up_to_snapshot(&f);
    refused(
        &mut set,
        |s| s.update_targets(&f.targets),
        |e| {
            matches!(
                e,
                TufError::Expired {
                    role: RoleName::Targets,
                    ..
                }
            )
        },
    );
}

#[test]
fn freeze_an_expired_root_is_refused_once_the_chain_is_walked() {
    let mut r = Repo::new();
    r.root_expires = PAST.into();
    let f = r.files();
    // An expired root is fine as a start (a newer one may follow) …
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    // … but not as the final one.
    let e = set.check_root_current().unwrap_err();
    assert!(
        matches!(
            e,
            TufError::Expired {
                role: RoleName::Root,
                ..
            }
        ),
        "{e}"
    );
    refused(
        &mut set,
        |s| s.update_timestamp(&f.timestamp),
        |e| {
            matches!(
                e,
                TufError::Expired {
                    role: RoleName::Root,
                    ..
                }
            )
        },
    );
}

#[test]
fn freeze_the_reference_time_is_fixed_when_the_refresh_starts() {
    let mut r = Repo::new();
    r.timestamp_expires = "2026-12-01T00:00:01Z".into();
    let f = r.files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    set.update_timestamp(&f.timestamp).unwrap();
    let mut later = TrustedSet::new(&f.root, now() + 1).unwrap();
    assert!(matches!(
        later.update_timestamp(&f.timestamp),
        Err(TufError::Expired { .. })
    ));
}

#[test]
fn rollback_of_the_timestamp_version_is_refused() {
    let mut r = Repo::new();
    let old = r.files();
    r.timestamp_version = 2;
    let new = r.files();
    let mut set = TrustedSet::new(&new.root, now()).unwrap();
    set.update_timestamp(&new.timestamp).unwrap();
    refused(
        &mut set,
        |s| s.update_timestamp(&old.timestamp),
        |e| {
            matches!(
                e,
                TufError::Rollback {
                    role: RoleName::Timestamp,
                    trusted: 2,
                    offered: 1
                }
            )
        },
    );
    // The same version again is not an attack: nothing to do.
    assert_eq!(
        set.update_timestamp(&new.timestamp).unwrap(),
        TimestampUpdate::AlreadyCurrent
    );
}

#[test]
fn rollback_of_the_timestamp_across_restarts_is_refused() {
    let mut r = Repo::new();
    let old = r.files();
    r.timestamp_version = 5;
    let persisted = r.files();
    // Next run: the persisted timestamp is the baseline.
    let mut set = TrustedSet::new(&persisted.root, now()).unwrap();
    set.load_local_timestamp(&persisted.timestamp).unwrap();
    refused(
        &mut set,
        |s| s.update_timestamp(&old.timestamp),
        |e| {
            matches!(
                e,
                TufError::Rollback {
                    role: RoleName::Timestamp,
                    ..
                }
            )
        },
    );
}

#[test]
fn rollback_of_the_snapshot_version_is_refused() {
    let mut r = Repo::new();
    r.snapshot_version = 2;
    r.timestamp_version = 2;
    let trusted = r.files();
    // A newer timestamp that lists an older snapshot.
    r.snapshot_version = 1;
    r.timestamp_version = 3;
    let attack = r.files();
    let mut set = TrustedSet::new(&trusted.root, now()).unwrap();
    set.load_local_timestamp(&trusted.timestamp).unwrap();
    refused(
        &mut set,
        |s| s.update_timestamp(&attack.timestamp),
        |e| {
            matches!(
                e,
                TufError::SnapshotMetaRollback {
                    trusted: 2,
                    offered: 1
                }
            )
        },
    );
}

#[test]
fn rollback_of_the_targets_version_in_the_snapshot_is_refused() {
    let mut r = Repo::new();
    r.targets_version = 3;
    let trusted = r.files();
    r.targets_version = 2;
    r.snapshot_version = 2;
    r.timestamp_version = 2;
    let attack = r.files();
    let mut set = TrustedSet::new(&trusted.root, now()).unwrap();
    set.load_local_timestamp(&trusted.timestamp).unwrap();
    set.update_timestamp(&attack.timestamp).unwrap();
    set.load_local_snapshot(&trusted.snapshot).unwrap();
    assert!(!set.snapshot_is_current());
    refused(
        &mut set,
        |s| s.update_snapshot(&attack.snapshot),
        |e| {
            matches!(
                e,
                TufError::TargetsMetaRollback {
                    trusted: 3,
                    offered: 2,
                    ..
                }
            )
        },
    );
}

#[test]
fn a_snapshot_that_drops_a_listed_file_is_refused() {
    // Without hashes in the timestamp, so the removal check itself is reached.
    let mut r = Repo::new();
    r.list_hashes = false;
    let f = r.files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    set.update_timestamp(&f.timestamp).unwrap();
    set.load_local_snapshot(&f.snapshot).unwrap();
    let mut snap = r.snapshot_signed(&f.targets);
    snap["meta"] = json!({"other.json": {"version": 1}});
    let snap = sign_all(&snap, &r.snapshot.refs());
    refused(
        &mut set,
        |s| s.update_snapshot(&snap),
        |e| matches!(e, TufError::MetaRemoved { .. }),
    );
}

#[test]
fn mix_and_match_a_snapshot_from_another_release_is_refused() {
    let mut r = Repo::new();
    let release1 = r.files();
    r.snapshot_version = 2;
    r.timestamp_version = 2;
    r.targets_version = 2;
    let release2 = r.files();
    // Hashes listed: the other release's snapshot has another hash.
    let mut set = TrustedSet::new(&release2.root, now()).unwrap();
    set.update_timestamp(&release2.timestamp).unwrap();
    refused(
        &mut set,
        |s| s.update_snapshot(&release1.snapshot),
        |e| matches!(e, TufError::MetaLength { .. } | TufError::MetaHash { .. }),
    );
    // Only versions listed: the version must be the listed one.
    r.list_hashes = false;
    let release2 = r.files();
    r.snapshot_version = 1;
    r.targets_version = 1;
    let release1 = r.files();
    let mut set = TrustedSet::new(&release2.root, now()).unwrap();
    set.update_timestamp(&release2.timestamp).unwrap();
    refused(
        &mut set,
        |s| s.update_snapshot(&release1.snapshot),
        |e| {
            matches!(
                e,
                TufError::VersionMismatch {
                    role: RoleName::Snapshot,
                    expected: 2,
                    found: 1,
                    ..
                }
            )
        },
    );
    // And targets from another release than the snapshot lists.
    set.update_snapshot(&release2.snapshot).unwrap();
    refused(
        &mut set,
        |s| s.update_targets(&release1.targets),
        |e| {
            matches!(
                e,
                TufError::VersionMismatch {
                    role: RoleName::Targets,
                    ..
                }
            )
        },
    );
}

#[test]
fn mix_and_match_targets_with_another_hash_are_refused() {
    let mut r = Repo::new();
    let f = r.files();
    r.add_target("extra", b"x", timb("0.2.0", "linux-x86_64", "stable"));
    let other = r.targets_bytes();
    let mut set = up_to_snapshot(&f);
    refused(
        &mut set,
        |s| s.update_targets(&other),
        |e| matches!(e, TufError::MetaLength { .. } | TufError::MetaHash { .. }),
    );
}

#[test]
fn key_compromise_threshold_minus_one_signatures_is_refused() {
    let mut r = Repo::new();
    r.targets = RoleKeys {
        keys: vec![Key::new("t1"), Key::new("t2"), Key::new("t3")],
        threshold: 3,
    };
    // No hashes in the snapshot, so the signature check itself is reached.
    r.list_hashes = false;
    let f = r.files();
    let two = sign_all(
        &r.targets_signed(),
        &[&r.targets.keys[0], &r.targets.keys[1]],
    );
    let mut set = up_to_snapshot(&f);
    refused(
        &mut set,
        |s| s.update_targets(&two),
        |e| {
            matches!(
                e,
                TufError::Threshold {
                    role: RoleName::Targets,
                    valid: 2,
                    threshold: 3
                }
            )
        },
    );
    set.update_targets(&f.targets).unwrap();
}

#[test]
fn key_compromise_the_same_signature_twice_is_refused() {
    let mut r = Repo::new();
    r.timestamp = RoleKeys {
        keys: vec![Key::new("ts1"), Key::new("ts2")],
        threshold: 2,
    };
    let f = r.files();
    let snap = f.snapshot.clone();
    let signed = r.timestamp_signed(&snap);
    let s = r.timestamp.keys[0].sign(&signed);
    let twice = envelope(&signed, vec![s.clone(), s]);
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    refused(
        &mut set,
        |st| st.update_timestamp(&twice),
        |e| {
            matches!(
                e,
                TufError::DuplicateSignature {
                    role: RoleName::Timestamp,
                    ..
                }
            )
        },
    );
}

#[test]
fn key_compromise_two_key_ids_for_one_key_count_once() {
    let r = Repo::new();
    let f = r.files();
    // Root lists one timestamp key under two ids and asks for two signatures.
    let mut root = r.root_signed();
    let k = &r.timestamp.keys[0];
    root["keys"]["alias"] = k.json();
    root["roles"]["timestamp"] = json!({"keyids": [k.id, "alias"], "threshold": 2});
    let root = sign_all(&root, &r.root.refs());
    let signed = r.timestamp_signed(&f.snapshot);
    let both = envelope(
        &signed,
        vec![k.sign(&signed), k.alias("alias").sign(&signed)],
    );
    let mut set = TrustedSet::new(&root, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_timestamp(&both),
        |e| {
            matches!(
                e,
                TufError::SameKeyTwice {
                    role: RoleName::Timestamp,
                    threshold: 2,
                    ..
                }
            )
        },
    );
}

#[test]
fn a_root_listing_a_key_id_twice_for_a_role_is_refused() {
    let r = Repo::new();
    let mut root = r.root_signed();
    let id = r.timestamp.keys[0].id.clone();
    root["roles"]["timestamp"] = json!({"keyids": [id, id], "threshold": 2});
    let e = TrustedSet::new(&sign_all(&root, &r.root.refs()), now()).unwrap_err();
    assert!(
        matches!(
            e,
            TufError::Malformed {
                role: RoleName::Root,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("twice"), "{e}");
}

#[test]
fn a_signature_by_a_key_not_listed_for_the_role_does_not_count() {
    let r = Repo::new();
    let f = r.files();
    // Signed by the snapshot key instead of the timestamp key.
    let forged = sign_all(&r.timestamp_signed(&f.snapshot), &r.snapshot.refs());
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_timestamp(&forged),
        |e| matches!(e, TufError::Threshold { valid: 0, .. }),
    );
}

#[test]
fn a_rotation_signed_only_by_the_new_keys_is_refused() {
    let mut r = Repo::new();
    let v1 = r.root_bytes();
    r.root = RoleKeys::one("attacker-root");
    r.root_version = 2;
    let v2 = r.root_bytes();
    let mut set = TrustedSet::new(&v1, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_root(&v2),
        |e| {
            matches!(
                e,
                TufError::RootNotSignedByTrusted {
                    version: 2,
                    valid: 0,
                    threshold: 1
                }
            )
        },
    );
}

#[test]
fn a_rotation_not_signed_by_its_own_keys_is_refused() {
    let mut r = Repo::new();
    let v1 = r.root_bytes();
    let old = std::mem::replace(&mut r.root, RoleKeys::one("new-root"));
    r.root_version = 2;
    let v2 = sign_all(&r.root_signed(), &old.refs());
    let mut set = TrustedSet::new(&v1, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_root(&v2),
        |e| matches!(e, TufError::RootNotSelfSigned { version: 2, .. }),
    );
}

#[test]
fn a_rotation_that_skips_a_version_is_refused() {
    let mut r = Repo::new();
    let v1 = r.root_bytes();
    r.root_version = 3;
    let v3 = r.root_bytes();
    let mut set = TrustedSet::new(&v1, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_root(&v3),
        |e| {
            matches!(
                e,
                TufError::RootVersion {
                    expected: 2,
                    found: 3
                }
            )
        },
    );
    // Replaying the trusted version is refused the same way.
    refused(
        &mut set,
        |s| s.update_root(&v1),
        |e| {
            matches!(
                e,
                TufError::RootVersion {
                    expected: 2,
                    found: 1
                }
            )
        },
    );
}

/// Root N→N+3, each signed by the old and the new root keys, with new keys each time.
#[test]
fn a_rotation_chain_of_three_is_walked() {
    let mut r = Repo::new();
    let v1 = r.root_bytes();
    let mut set = TrustedSet::new(&v1, now()).unwrap();
    for v in 2..=4 {
        let old = std::mem::replace(
            &mut r.root,
            RoleKeys {
                keys: vec![
                    Key::new(&format!("root-v{v}-a")),
                    Key::new(&format!("root-v{v}-b")),
                ],
                threshold: 2,
            },
        );
        r.root_version = v;
        let signed = r.root_signed();
        let mut signers: Vec<&Key> = old.refs();
        signers.extend(r.root.refs());
        set.update_root(&sign_all(&signed, &signers)).unwrap();
    }
    set.check_root_current().unwrap();
    assert_eq!(set.root().version, 4);
    let f = r.files();
    set.update_timestamp(&f.timestamp).unwrap();
    set.update_snapshot(&f.snapshot).unwrap();
    set.update_targets(&f.targets).unwrap();
    assert!(set.target(BUNDLE).is_ok());
}

#[test]
fn fast_forward_recovery_drops_the_timestamp_after_its_keys_rotate() {
    let mut r = Repo::new();
    // An attacker with the old timestamp key pushed version 1000.
    r.timestamp_version = 1000;
    let pushed = r.files();
    // The repository rotates the timestamp key (root v2) and starts again at 1.
    let old_root = std::mem::replace(&mut r.root, RoleKeys::one("root-v2"));
    r.timestamp = RoleKeys::one("timestamp-v2");
    r.root_version = 2;
    r.timestamp_version = 1;
    let mut signers = old_root.refs();
    signers.extend(r.root.refs());
    let v2 = sign_all(&r.root_signed(), &signers);
    let fresh = r.files();

    let mut set = TrustedSet::new(&pushed.root, now()).unwrap();
    set.load_local_timestamp(&pushed.timestamp).unwrap();
    assert!(matches!(
        set.clone().update_timestamp(&fresh.timestamp),
        Err(TufError::Threshold { .. })
    ));
    let u = set.update_root(&v2).unwrap();
    assert!(u.dropped_timestamp_and_snapshot);
    assert_eq!(set.timestamp().map(|t| t.version), None);
    assert_eq!(
        set.update_timestamp(&fresh.timestamp).unwrap(),
        TimestampUpdate::Updated
    );
}

#[test]
fn without_a_key_rotation_the_pushed_timestamp_stays_the_baseline() {
    let mut r = Repo::new();
    r.timestamp_version = 1000;
    let pushed = r.files();
    let old_root = std::mem::replace(&mut r.root, RoleKeys::one("root-v2"));
    r.root_version = 2;
    r.timestamp_version = 1;
    let mut signers = old_root.refs();
    signers.extend(r.root.refs());
    let v2 = sign_all(&r.root_signed(), &signers);
    let fresh = r.files();
    let mut set = TrustedSet::new(&pushed.root, now()).unwrap();
    set.load_local_timestamp(&pushed.timestamp).unwrap();
    assert!(!set.update_root(&v2).unwrap().dropped_timestamp_and_snapshot);
    refused(
        &mut set,
        |s| s.update_timestamp(&fresh.timestamp),
        |e| matches!(e, TufError::Rollback { .. }),
    );
}

#[test]
fn delegations_are_refused() {
    let mut r = Repo::new();
    r.delegations = Some(json!({
        "keys": {},
        "roles": [{"name": "bins", "keyids": [], "threshold": 1, "paths": ["*"], "terminating": true}],
    }));
    let f = r.files();
    let mut set = up_to_snapshot(&f);
    let e = refused(
        &mut set,
        |s| s.update_targets(&f.targets),
        |e| matches!(e, TufError::DelegationsRefused { .. }),
    );
    assert!(e.to_string().contains("bins"), "{e}");
    // An empty delegations object delegates nothing and is accepted.
    r.delegations = Some(json!({"keys": {}, "roles": []}));
    r.files().trusted();
}

fn running() -> (timb_release::Version, Target, Channel) {
    (
        "0.1.0".parse().unwrap(),
        Target::LinuxX86_64,
        Channel::new("stable").unwrap(),
    )
}

/// A target named after its fields, as xtask will publish it.
fn offered(custom: Value) -> Result<TimbFields, TufError> {
    let f = &custom["timb"];
    let name = match (f["version"].as_str(), f["target"].as_str()) {
        (Some(v), Some(t)) => match (v.parse(), t.parse::<Target>()) {
            (Ok(v), Ok(t)) => t.archive_name(&v),
            _ => "t".into(),
        },
        _ => "t".into(),
    };
    offered_as(&name, custom)
}

fn offered_as(name: &str, custom: Value) -> Result<TimbFields, TufError> {
    let mut r = Repo::new();
    r.add_target(name, b"t", custom);
    let set = r.files().trusted();
    let (v, t, c) = running();
    TimbFields::check_update(&set.target(name).unwrap(), &v, t, &c)
}

#[test]
fn a_target_not_named_after_its_fields_is_refused() {
    let fields = timb("0.2.0", "linux-x86_64", "stable");
    offered_as(
        "linux/stable/timb-0.2.0-linux-x86_64.tar.xz",
        fields.clone(),
    )
    .unwrap();
    for name in [
        "timb-0.3.0-linux-x86_64.tar.xz",
        "timb-0.2.0-linux-x86_64.zip",
        "../timb-0.2.0-linux-x86_64.tar.xz",
        "a/../timb-0.2.0-linux-x86_64.tar.xz",
        "/timb-0.2.0-linux-x86_64.tar.xz",
        "a//timb-0.2.0-linux-x86_64.tar.xz",
        "x timb-0.2.0-linux-x86_64.tar.xz",
    ] {
        let e = offered_as(name, fields.clone()).unwrap_err();
        assert!(matches!(e, TufError::TargetName { .. }), "{name}: {e}");
    }
}

#[test]
fn wrong_software_a_target_for_another_platform_is_refused() {
    let e = offered(timb("0.2.0", "windows-x86_64", "stable")).unwrap_err();
    assert!(matches!(e, TufError::WrongTarget { .. }), "{e}");
}

#[test]
fn wrong_software_a_target_on_another_channel_is_refused() {
    let e = offered(timb("0.2.0", "linux-x86_64", "alpha")).unwrap_err();
    assert!(matches!(e, TufError::WrongChannel { .. }), "{e}");
}

#[test]
fn an_older_or_equal_release_offered_as_new_is_refused() {
    for v in ["0.1.0", "0.0.9", "0.1.0-rc.1", "0.1.0+rebuild"] {
        let e = offered(timb(v, "linux-x86_64", "stable")).unwrap_err();
        assert!(matches!(e, TufError::NotNewer { .. }), "{v}: {e}");
    }
    offered(timb("0.10.0", "linux-x86_64", "stable")).unwrap();
}

#[test]
fn missing_or_unknown_custom_fields_are_refused() {
    for custom in [
        json!({}),
        json!({"timb": "0.2.0"}),
        json!({"timb": {"version": "0.2.0", "target": "linux-x86_64"}}),
        json!({"timb": {"version": "v2", "target": "linux-x86_64", "channel": "stable"}}),
        json!({"timb": {"version": "0.2.0", "target": "linux", "channel": "stable"}}),
        json!({"timb": {"version": "0.2.0", "target": "linux-x86_64", "channel": "Stable"}}),
        json!({"timb": {"version": "0.2.0", "target": "linux-x86_64", "channel": "stable", "min": "0.1"}}),
    ] {
        let e = offered(custom.clone()).unwrap_err();
        assert!(matches!(e, TufError::CustomFields { .. }), "{custom}: {e}");
    }
}

#[test]
fn another_spec_major_and_another_role_are_refused_clearly() {
    let r = Repo::new();
    let mut root = r.root_signed();
    root["spec_version"] = json!("2.0.0");
    let e = TrustedSet::new(&sign_all(&root, &r.root.refs()), now()).unwrap_err();
    assert!(matches!(e, TufError::SpecVersion { .. }), "{e}");
    assert!(e.to_string().contains("only 1.x"), "{e}");

    let f = r.files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_timestamp(&f.snapshot),
        |e| {
            matches!(
                e,
                TufError::WrongType {
                    expected: RoleName::Timestamp,
                    ..
                }
            )
        },
    );
    let mut float = r.timestamp_signed(&f.snapshot);
    float["version"] = json!(1.5);
    refused(
        &mut set,
        // (no signature: there is no canonical form to sign)
        |s| s.update_timestamp(&envelope(&float, vec![])),
        |e| matches!(e, TufError::NotCanonical { .. }),
    );
}

/// Unknown fields are part of what was signed: kept for verification, changing one breaks
/// the signature.
#[test]
fn unknown_fields_are_covered_by_the_signature() {
    let r = Repo::new();
    let f = r.files();
    let mut ts = r.timestamp_signed(&f.snapshot);
    ts["x-extension"] = json!({"é": [1, 2], "e\u{301}": "z"});
    let bytes = sign_all(&ts, &r.timestamp.refs());
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    set.clone().update_timestamp(&bytes).unwrap();
    let tampered = String::from_utf8(bytes).unwrap().replace("\"z\"", "\"y\"");
    refused(
        &mut set,
        |s| s.update_timestamp(tampered.as_bytes()),
        |e| matches!(e, TufError::Threshold { valid: 0, .. }),
    );
}

#[test]
fn updates_out_of_order_are_refused() {
    let f = Repo::new().files();
    let mut set = TrustedSet::new(&f.root, now()).unwrap();
    refused(
        &mut set,
        |s| s.update_snapshot(&f.snapshot),
        |e| matches!(e, TufError::Order { .. }),
    );
    refused(
        &mut set,
        |s| s.update_targets(&f.targets),
        |e| matches!(e, TufError::Order { .. }),
    );
    let mut full = f.trusted();
    refused(
        &mut full,
        |s| s.update_root(&f.root),
        |e| matches!(e, TufError::Order { .. }),
    );
}

#[test]
fn consistent_snapshot_names() {
    let set = Repo::new().files().trusted();
    assert!(set.consistent_snapshot());
    assert_eq!(names::root(3), "3.root.json");
    assert_eq!(names::snapshot(true, 7), "7.snapshot.json");
    assert_eq!(names::targets(false, 7), "targets.json");
    assert_eq!(names::TIMESTAMP, "timestamp.json");
    let mut info = set.target(BUNDLE).unwrap();
    let paths = names::target(true, &info);
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[0], format!("{}.{BUNDLE}", info.hashes["sha256"]));
    info.name = format!("linux/{BUNDLE}");
    assert_eq!(
        names::target(true, &info)[0],
        format!("linux/{}.{BUNDLE}", info.hashes["sha256"])
    );
    assert_eq!(names::target(false, &info), vec![info.name.clone()]);
}

/// No input makes the checks panic: every truncation of every file, and byte flips.
#[test]
fn truncated_garbage_and_mutated_metadata_are_errors_not_panics() {
    let r = Repo::new();
    let f = r.files();
    let base = up_to_snapshot(&f);
    let files: [(&str, &Vec<u8>); 4] = [
        ("root", &f.root),
        ("timestamp", &f.timestamp),
        ("snapshot", &f.snapshot),
        ("targets", &f.targets),
    ];
    let try_all = |data: &[u8]| {
        let _ = TrustedSet::new(data, now());
        let mut s = TrustedSet::new(&f.root, now()).unwrap();
        let _ = s.update_root(data);
        let _ = s.load_local_timestamp(data);
        let mut s = TrustedSet::new(&f.root, now()).unwrap();
        let ts = s.update_timestamp(data);
        let mut s = base.clone();
        let tg = s.update_targets(data);
        let mut s = TrustedSet::new(&f.root, now()).unwrap();
        s.update_timestamp(&f.timestamp).unwrap();
        let sn = s.update_snapshot(data);
        (ts, sn, tg)
    };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, data) in files {
        for cut in 0..data.len() {
            let (ts, sn, tg) = try_all(&data[..cut]);
            assert!(
                ts.is_err() && sn.is_err() && tg.is_err(),
                "{name} cut at {cut}"
            );
        }
        for _ in 0..300 {
            let mut m = data.to_vec();
            let i = (rand() as usize) % m.len();
            m[i] = (rand() & 0xff) as u8;
            // Only no panic: some flips are harmless (hex digits in upper case).
            let _ = try_all(&m);
        }
    }
    for garbage in [
        &b""[..],
        b"null",
        b"[]",
        b"{}",
        b"{\"signed\":{},\"signatures\":[]}",
        b"\xff\xfe",
        &[b'['; 10_000],
    ] {
        let (ts, sn, tg) = try_all(garbage);
        assert!(ts.is_err() && sn.is_err() && tg.is_err());
    }
}
