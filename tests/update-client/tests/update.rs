//! The updater end to end through the test client `timb-update`, against a real HTTP server
//! on loopback: a repository from timb-release's test builder refreshes and downloads; each
//! attack is refused with its own error and leaves the trusted store's bytes as they were;
//! a crash at any step of any write leaves a store the next refresh succeeds from.

mod support;

use std::path::{Path, PathBuf};
use support::tuf_repo::{self, Repo, BUNDLE, BUNDLE_DATA, PAST};
use support::{client, publish, run, store_bytes, BundleKey, Run, Server};
use tempfile::TempDir;

/// A repository served on loopback, a store initialised with its root, and a bundle key.
struct World {
    tmp: TempDir,
    repo: Repo,
    server: Server,
    key: BundleKey,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let www = tmp.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        let repo = Repo::new();
        let key = BundleKey::new(tmp.path(), "bundle");
        let server = Server::start(&www);
        let w = World {
            tmp,
            repo,
            server,
            key,
        };
        w.publish("m1");
        std::fs::write(w.tmp.path().join("root.json"), w.repo.root_bytes()).unwrap();
        let r = run(w.cmd().arg("init").arg(w.tmp.path().join("root.json")));
        assert!(r.ok, "{}", r.stderr);
        w
    }

    /// Writes the repository's current state under `www/<mirror>/`.
    fn publish(&self, mirror: &str) {
        self.publish_with(mirror, &[(BUNDLE, BUNDLE_DATA)]);
    }

    fn publish_with(&self, mirror: &str, bundles: &[(&str, &[u8])]) {
        let files = self.repo.files();
        publish(
            &self.www().join(mirror),
            &self.repo,
            &files,
            bundles,
            &self.key,
        );
    }

    fn www(&self) -> PathBuf {
        self.tmp.path().join("www")
    }

    fn store(&self) -> PathBuf {
        self.tmp.path().join("store")
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    fn cmd(&self) -> std::process::Command {
        let mut c = client();
        c.arg("--metadata-dir").arg(self.store());
        c
    }

    fn refresh_from(&self, mirrors: &[&str]) -> Run {
        let mut c = self.cmd();
        for m in mirrors {
            c.arg("--metadata-url")
                .arg(self.server.url(&format!("{m}/metadata")));
        }
        run(c.arg("refresh"))
    }

    fn refresh(&self) -> Run {
        self.refresh_from(&["m1"])
    }

    /// Downloads `name` as an update of 0.1.0 linux-x86_64 stable, from the trusted store.
    fn download(&self, name: &str, mirrors: &[&str]) -> Run {
        let mut c = self.cmd();
        for m in mirrors {
            c.arg("--target-base-url")
                .arg(self.server.url(&format!("{m}/targets")));
        }
        run(c
            .arg("--target-name")
            .arg(name)
            .arg("--target-dir")
            .arg(self.out())
            .args([
                "--running-version",
                "0.1.0",
                "--running-target",
                "linux-x86_64",
            ])
            .args(["--channel", "stable"])
            .arg("--bundle-key")
            .arg(&self.key.pub_file)
            .arg("--signing-policy")
            .arg(&self.key.policy_file)
            .arg("download"))
    }

    fn target_file(&self, mirror: &str, name: &str) -> PathBuf {
        let set = self.repo.files().trusted();
        let info = set.target(name).unwrap();
        let p = timb_release::tuf::names::target(true, &info).remove(0);
        self.www().join(mirror).join("targets").join(p)
    }

    fn nothing_downloaded(&self) -> bool {
        !self.out().exists() || std::fs::read_dir(self.out()).unwrap().next().is_none()
    }
}

/// Runs `attack` (which must fail with `words` in its error) and checks the store is
/// byte for byte what it was.
fn refused_unchanged(w: &World, attack: impl FnOnce() -> Run, words: &str) {
    let before = store_bytes(&w.store());
    let r = attack();
    assert!(!r.ok, "the attack was not refused");
    assert!(
        r.stderr.contains(words),
        "expected {words:?} in the error, got: {}",
        r.stderr
    );
    assert_eq!(store_bytes(&w.store()), before, "the trusted store changed");
}

#[test]
fn a_repository_refreshes_and_its_bundle_downloads() {
    let w = World::new();
    let r = w.refresh();
    assert!(r.ok, "{}", r.stderr);
    let files = w.repo.files();
    let store = store_bytes(&w.store());
    assert_eq!(store["timestamp.json"], files.timestamp);
    assert_eq!(store["snapshot.json"], files.snapshot);
    assert_eq!(store["targets.json"], files.targets);
    let r = w.download(BUNDLE, &["m1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(std::fs::read(w.out().join(BUNDLE)).unwrap(), BUNDLE_DATA);
    // Nothing but the bundle (no temp file left).
    assert_eq!(std::fs::read_dir(w.out()).unwrap().count(), 1);
    // A second refresh with nothing new fetches and changes nothing.
    let before = store_bytes(&w.store());
    assert!(w.refresh().ok);
    assert_eq!(store_bytes(&w.store()), before);
}

#[test]
fn attack_arbitrary_software_a_target_with_a_bad_hash_is_refused() {
    let w = World::new();
    assert!(w.refresh().ok);
    let f = w.target_file("m1", BUNDLE);
    let mut bad = BUNDLE_DATA.to_vec();
    bad[0] ^= 1;
    std::fs::write(&f, &bad).unwrap();
    refused_unchanged(&w, || w.download(BUNDLE, &["m1"]), "arbitrary software");
    assert!(w.nothing_downloaded());
}

#[test]
fn attack_endless_metadata_is_cut_at_the_cap() {
    let w = World::new();
    assert!(w.refresh().ok);
    w.server
        .endless
        .lock()
        .unwrap()
        .insert("/m1/metadata/timestamp.json".into());
    refused_unchanged(&w, || w.refresh(), "endless data");
    // A root that never ends, too.
    w.server
        .endless
        .lock()
        .unwrap()
        .insert("/m1/metadata/2.root.json".into());
    refused_unchanged(&w, || w.refresh(), "endless data");
}

#[test]
fn attack_endless_target_is_cut_at_its_listed_length() {
    let w = World::new();
    assert!(w.refresh().ok);
    let f = w.target_file("m1", BUNDLE);
    let url = format!("/{}", f.strip_prefix(w.www()).unwrap().display());
    w.server.endless.lock().unwrap().insert(url);
    refused_unchanged(&w, || w.download(BUNDLE, &["m1"]), "endless data");
    assert!(w.nothing_downloaded());
}

#[test]
fn attack_slow_retrieval_is_given_up() {
    let w = World::new();
    w.server
        .stall
        .lock()
        .unwrap()
        .insert("/m1/metadata/timestamp.json".into());
    let mut c = w.cmd();
    c.args(["--read-timeout", "2"])
        .arg("--metadata-url")
        .arg(w.server.url("m1/metadata"));
    refused_unchanged(&w, || run(c.arg("refresh")), "slow retrieval");
}

#[test]
fn attack_freeze_an_expired_timestamp_is_refused() {
    let mut w = World::new();
    assert!(w.refresh().ok);
    w.repo.timestamp_version = 2;
    w.repo.timestamp_expires = PAST.into();
    std::fs::write(
        w.www().join("m1/metadata/timestamp.json"),
        w.repo.files().timestamp,
    )
    .unwrap();
    refused_unchanged(&w, || w.refresh(), "expired");
}

#[test]
fn attack_malicious_mirror_then_good_mirror_succeeds_from_the_good_one() {
    let mut w = World::new();
    // m1 serves a timestamp signed by a key the root does not trust, and a bundle with a
    // bad hash; m2 is honest.
    w.publish("m2");
    let honest = w.repo.files();
    let real = std::mem::replace(&mut w.repo.timestamp, tuf_repo::RoleKeys::one("evil"));
    w.repo.timestamp_version = 9;
    w.publish("m1");
    w.repo.timestamp = real;
    let f = w.target_file("m1", BUNDLE);
    std::fs::write(&f, b"the 0.2.0 bundlX").unwrap();

    let r = w.refresh_from(&["m1", "m2"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(store_bytes(&w.store())["timestamp.json"], honest.timestamp);
    let r = w.download(BUNDLE, &["m1", "m2"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(std::fs::read(w.out().join(BUNDLE)).unwrap(), BUNDLE_DATA);
    // With the malicious mirror alone, each is refused with its own check.
    refused_unchanged(&w, || w.download(BUNDLE, &["m1"]), "arbitrary software");
    std::fs::remove_dir_all(w.out()).unwrap();
    let before = store_bytes(&w.store());
    let r = w.refresh_from(&["m1"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("valid signature"), "{}", r.stderr);
    assert!(r.stderr.contains("mirror 1"), "{}", r.stderr);
    assert_eq!(store_bytes(&w.store()), before);
}

#[test]
fn attack_rollback_across_client_restarts_is_refused() {
    let mut w = World::new();
    w.repo.timestamp_version = 5;
    w.repo.snapshot_version = 5;
    w.publish("m1");
    assert!(w.refresh().ok);
    // A later run (a new process) is offered the older, validly signed release.
    w.repo.timestamp_version = 4;
    w.repo.snapshot_version = 4;
    w.publish("m1");
    refused_unchanged(&w, || w.refresh(), "rollback refused");
}

#[test]
fn attack_fast_forward_is_recovered_from_by_a_key_rotation() {
    let mut w = World::new();
    // The timestamp key leaks; the attacker pushes version 1000 (valid with that key).
    w.repo.timestamp_version = 1000;
    w.publish("m1");
    assert!(w.refresh().ok);
    // The honest repository continues at 2: refused as a rollback, as it must be ...
    w.repo.timestamp_version = 2;
    w.publish("m1");
    refused_unchanged(&w, || w.refresh(), "rollback refused");
    // ... until the root rotates the timestamp key: the client drops the trusted
    // timestamp and snapshot (fast-forward recovery) and takes version 2.
    w.repo.timestamp = tuf_repo::RoleKeys::one("timestamp-new");
    w.repo.root_version = 2;
    w.publish("m1");
    let r = w.refresh();
    assert!(r.ok, "{}", r.stderr);
    let store = store_bytes(&w.store());
    assert_eq!(store["root.json"], w.repo.root_bytes());
    assert_eq!(store["timestamp.json"], w.repo.files().timestamp);
}

#[test]
fn attack_wrong_software_another_platform_channel_or_an_older_release_is_refused() {
    let mut w = World::new();
    let win = "timb-0.2.0-windows-x86_64.zip";
    let alpha = "alpha/timb-0.3.0-linux-x86_64.tar.xz";
    let old = "timb-0.1.0-linux-x86_64.tar.xz";
    w.repo.add_target(
        win,
        b"windows",
        tuf_repo::timb("0.2.0", "windows-x86_64", "stable"),
    );
    w.repo.add_target(
        alpha,
        b"alpha",
        tuf_repo::timb("0.3.0", "linux-x86_64", "alpha"),
    );
    w.repo.add_target(
        old,
        b"old",
        tuf_repo::timb("0.1.0", "linux-x86_64", "stable"),
    );
    w.repo.targets_version = 2;
    w.repo.snapshot_version = 2;
    w.repo.timestamp_version = 2;
    std::fs::create_dir_all(w.www().join("m1/targets/alpha")).unwrap();
    w.publish_with(
        "m1",
        &[
            (BUNDLE, BUNDLE_DATA),
            (win, &b"windows"[..]),
            (alpha, &b"alpha"[..]),
            (old, &b"old"[..]),
        ],
    );
    assert!(w.refresh().ok);
    refused_unchanged(&w, || w.download(win, &["m1"]), "wrong software");
    refused_unchanged(&w, || w.download(alpha, &["m1"]), "wrong software");
    refused_unchanged(&w, || w.download(old, &["m1"]), "downgrades are refused");
    assert!(w.nothing_downloaded());
}

#[test]
fn a_target_that_passes_tuf_but_not_its_minisign_signature_is_refused() {
    let w = World::new();
    assert!(w.refresh().ok);
    let other = BundleKey::new(w.tmp.path(), "other");
    let sig = w.www().join(format!("m1/targets/{BUNDLE}.minisig"));
    std::fs::write(&sig, other.sign(BUNDLE, BUNDLE_DATA)).unwrap();
    refused_unchanged(&w, || w.download(BUNDLE, &["m1"]), "minisign signature");
    assert!(w.nothing_downloaded());
    std::fs::remove_file(&sig).unwrap();
    refused_unchanged(&w, || w.download(BUNDLE, &["m1"]), "minisign signature");
}

/// Copies a folder's files (the store before a crash test run).
fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_crash_at_any_step_of_any_write_leaves_a_store_the_next_refresh_succeeds_from() {
    let mut w = World::new();
    assert!(w.refresh().ok);
    // The next release rotates the timestamp key (root 2: a root write and two deletes)
    // and updates the three other roles.
    w.repo.timestamp = tuf_repo::RoleKeys::one("timestamp-new");
    w.repo.root_version = 2;
    w.repo.timestamp_version = 2;
    w.repo.snapshot_version = 2;
    w.repo.targets_version = 2;
    w.publish("m1");
    let initial = w.tmp.path().join("initial");
    copy_dir(&w.store(), &initial);
    let mut crashed = 0;
    for n in 1.. {
        copy_dir(&initial, &w.store());
        let mut c = w.cmd();
        c.env("TIMB_UPDATE_CRASH_AT", n.to_string())
            .arg("--metadata-url")
            .arg(w.server.url("m1/metadata"));
        let r = run(c.arg("refresh"));
        if r.ok {
            break;
        }
        assert!(
            r.out.status.code().is_none(),
            "step {n}: not a crash: {}",
            r.stderr
        );
        crashed += 1;
        let r = w.refresh();
        assert!(r.ok, "after a crash at step {n}: {}", r.stderr);
        let files = w.repo.files();
        let store = store_bytes(&w.store());
        assert_eq!(store["root.json"], files.root, "step {n}");
        assert_eq!(store["timestamp.json"], files.timestamp, "step {n}");
        assert_eq!(store["targets.json"], files.targets, "step {n}");
        assert!(store.keys().all(|k| !k.ends_with(".tmp")), "step {n}");
    }
    // root (3 steps) + 2 deletes + timestamp, snapshot, targets (3 steps each).
    assert_eq!(crashed, 14);
}
