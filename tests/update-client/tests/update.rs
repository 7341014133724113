//! The updater end to end through the test client `timb-update`, against a real HTTP server
//! on loopback: a repository from timb-release's test builder refreshes and downloads; each
//! attack is refused with its own error and leaves the trusted store's bytes as they were;
//! a crash at any step of any write leaves a store the next refresh succeeds from.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::tuf_repo::{self, Repo, BUNDLE, BUNDLE_DATA, PAST};
use support::{
    assert_killed, bundle_archive, bundle_zip, client, ent, noise, publish, run, script,
    store_bytes, BundleKey, Ent, Run, Server,
};
use tempfile::TempDir;

/// Held by a [`World`] behind the onion service or the exit port: each has one backend
/// port, so those worlds take turns.
static ONION: std::sync::Mutex<()> = std::sync::Mutex::new(());
static EXIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How the client reaches the repository's server.
enum Reach {
    /// Plain HTTP to 127.0.0.1 (the test client only).
    Loopback,
    /// Through arti: `base` (`http://ONION` or `https://127.0.0.1:PORT` via an exit), the
    /// network's file, and for HTTPS the server key's SPKI SHA-256 the client pins.
    Tor {
        base: String,
        network: PathBuf,
        pin: Option<String>,
    },
}

/// A repository served on loopback, a store initialised with its root, and a bundle key.
struct World {
    tmp: TempDir,
    repo: Repo,
    server: Server,
    key: BundleKey,
    /// How the client reaches the server.
    path: Reach,
    /// The onion service's turn, released after the server (fields drop in order).
    _turn: Option<std::sync::MutexGuard<'static, ()>>,
}

impl World {
    fn new() -> World {
        World::build(Reach::Loopback, Server::start, BUNDLE_DATA)
    }

    /// The repository behind the private Tor network's "update" onion service, its bundle
    /// `bundle` (what a release publishes as timb-0.2.0-linux-x86_64.tar.xz).
    fn over_tor(bundle: &[u8]) -> World {
        let turn = ONION.lock().unwrap_or_else(|e| e.into_inner());
        let net = timb_testnet::TestNet::shared();
        let svc = net
            .info()
            .onion_service("update")
            .expect("the network's update onion service")
            .clone();
        let path = Reach::Tor {
            base: format!("http://{}", svc.onion),
            network: net.config_path().to_path_buf(),
            pin: None,
        };
        let server = |www: &Path| Server::start_on(www, svc.target_port);
        let mut w = World::build(path, server, bundle);
        w._turn = Some(turn);
        w
    }

    /// The repository on an HTTPS server on 127.0.0.1, reached through the private Tor
    /// network's exit (as a clearnet HTTPS mirror is); its key is pinned by the client.
    fn through_exit() -> World {
        let turn = EXIT.lock().unwrap_or_else(|e| e.into_inner());
        let net = timb_testnet::TestNet::shared();
        let port = net
            .info()
            .exit_port(timb_testnet::exit_port_index::UPDATE.start)
            .expect("an exit port for the updater");
        let leaf = timb_tls::test_ca::TestCa::new("timb update mirror CA").issue(&["127.0.0.1"]);
        let path = Reach::Tor {
            base: format!("https://127.0.0.1:{port}"),
            network: net.config_path().to_path_buf(),
            pin: Some(leaf.spki_sha256().to_string()),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(leaf.server_config(&[]));
        let server = move |www: &Path| {
            Server::start_wrapped(www, port, move |sock| {
                let acceptor = acceptor.clone();
                async move { acceptor.accept(sock).await.ok() }
            })
        };
        let mut w = World::build(path, server, BUNDLE_DATA);
        w._turn = Some(turn);
        w
    }

    fn build(path: Reach, server: impl FnOnce(&Path) -> Server, bundle: &[u8]) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let www = tmp.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        let mut repo = Repo::new();
        repo.add_target(
            BUNDLE,
            bundle,
            tuf_repo::timb("0.2.0", "linux-x86_64", "stable"),
        );
        let key = BundleKey::new(tmp.path(), "bundle");
        let server = server(&www);
        let w = World {
            tmp,
            repo,
            server,
            key,
            path,
            _turn: None,
        };
        w.publish_with("m1", &[(BUNDLE, bundle)]);
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
        if let Reach::Tor { network, pin, .. } = &self.path {
            c.arg("--tor-network")
                .arg(network)
                .arg("--tor-state")
                .arg(self.tmp.path().join("arti"));
            if let Some(pin) = pin {
                c.arg("--exit-tls-pin").arg(pin);
            }
        }
        c
    }

    /// A path on the repository's server, as the client reaches it.
    fn url(&self, path: &str) -> String {
        match &self.path {
            Reach::Tor { base, .. } => format!("{base}/{}", path.trim_start_matches('/')),
            Reach::Loopback => self.server.url(path),
        }
    }

    fn refresh_from(&self, mirrors: &[&str]) -> Run {
        let mut c = self.cmd();
        for m in mirrors {
            c.arg("--metadata-url")
                .arg(self.url(&format!("{m}/metadata")));
        }
        run(c.arg("refresh"))
    }

    fn refresh(&self) -> Run {
        self.refresh_from(&["m1"])
    }

    /// Downloads `name` as an update of 0.1.0 linux-x86_64 stable, from the trusted store.
    fn download(&self, name: &str, mirrors: &[&str]) -> Run {
        self.download_with(self.cmd(), name, mirrors)
    }

    /// [`download`](Self::download) with the client command `c` (extra environment).
    fn download_with(&self, mut c: std::process::Command, name: &str, mirrors: &[&str]) -> Run {
        for m in mirrors {
            c.arg("--target-base-url")
                .arg(self.url(&format!("{m}/targets")));
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
            .args(
                self.key
                    .pub_files
                    .iter()
                    .flat_map(|f| ["--bundle-key".as_ref(), f.as_os_str()]),
            )
            .arg("--signing-policy")
            .arg(&self.key.policy_file)
            .arg("download"))
    }

    /// The freeze attack: `mirror` serves a newer timestamp that has already expired.
    fn serve_expired_timestamp(&mut self, mirror: &str) {
        self.repo.timestamp_version = 2;
        self.repo.timestamp_expires = PAST.into();
        std::fs::write(
            self.www().join(mirror).join("metadata/timestamp.json"),
            self.repo.files().timestamp,
        )
        .unwrap();
    }

    fn target_file(&self, mirror: &str, name: &str) -> PathBuf {
        let set = self.repo.files().trusted();
        let info = set.target(name).unwrap();
        let p = timb_release::tuf::names::target(true, &info).remove(0);
        self.www().join(mirror).join("targets").join(p)
    }

    /// The server path of `name`'s file on `mirror` (what the server's switches and log use).
    fn target_path(&self, mirror: &str, name: &str) -> String {
        let f = self.target_file(mirror, name);
        format!("/{}", f.strip_prefix(self.www()).unwrap().display())
    }

    /// The `.part` file a download of `name` writes into.
    fn part(&self, name: &str) -> PathBuf {
        self.out().join(format!(".{name}.part"))
    }

    /// Moves targets, snapshot and timestamp to version `v` (the next release's metadata).
    fn next_release(&mut self, v: u64) {
        self.repo.targets_version = v;
        self.repo.snapshot_version = v;
        self.repo.timestamp_version = v;
    }

    fn nothing_downloaded(&self) -> bool {
        !self.out().exists() || std::fs::read_dir(self.out()).unwrap().next().is_none()
    }
}

/// Runs `attack` (which must fail with `words` in its error) and checks that the trusted
/// store's files `kept` are byte for byte what they were (the files the refused step
/// would have written; earlier steps of a refresh may rightly persist what they verified).
fn refused_keeping(w: &World, attack: impl FnOnce() -> Run, words: &str, kept: &[&str]) {
    let (before, after) = refused_store(w, attack, words);
    for f in kept {
        assert_eq!(after.get(*f), before.get(*f), "the trusted {f} changed");
    }
}

/// Runs `attack` (which must fail with `words` in its error) and checks the store is
/// byte for byte what it was.
fn refused_unchanged(w: &World, attack: impl FnOnce() -> Run, words: &str) {
    let (before, after) = refused_store(w, attack, words);
    assert_eq!(after, before, "the trusted store changed");
}

/// Runs `attack`, which must fail with `words` in its error: the store before and after.
fn refused_store(
    w: &World,
    attack: impl FnOnce() -> Run,
    words: &str,
) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    let before = store_bytes(&w.store());
    let r = attack();
    assert!(!r.ok, "the attack was not refused");
    assert!(
        r.stderr.contains(words),
        "expected {words:?} in the error, got: {}",
        r.stderr
    );
    (before, store_bytes(&w.store()))
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

/// Each attack of the suite, run against a fresh [`World`]: over loopback HTTP by one test
/// each below, and all of them through the private Tor network, to its onion service
/// (`the_attack_suite_over_an_onion_service`) and to an HTTPS mirror through its exit
/// (`the_attack_suite_through_a_tor_exit_to_an_https_mirror`).
type Attack = fn(&mut World);

const ATTACKS: &[(&str, Attack)] = &[
    ("arbitrary software", arbitrary_software),
    ("endless metadata", endless_metadata),
    ("endless target", endless_target),
    ("slow retrieval", slow_retrieval),
    ("freeze", freeze),
    ("malicious mirror", malicious_mirror),
    ("rollback", rollback),
    ("fast-forward", fast_forward),
    ("wrong software", wrong_software),
    ("bad minisign signature", bad_minisign_signature),
    ("too few builders", too_few_builders),
    ("mix-and-match", mix_and_match),
    ("key compromise below threshold", below_threshold),
    ("one key under two key ids", one_key_two_ids),
    ("root rotation chain N to N+3", rotation_chain),
    (
        "rotation signed only by new keys",
        rotation_by_new_keys_only,
    ),
];

fn arbitrary_software(w: &mut World) {
    assert!(w.refresh().ok);
    let f = w.target_file("m1", BUNDLE);
    let mut bad = BUNDLE_DATA.to_vec();
    bad[0] ^= 1;
    std::fs::write(&f, &bad).unwrap();
    refused_unchanged(w, || w.download(BUNDLE, &["m1"]), "arbitrary software");
    assert!(w.nothing_downloaded());
}

fn endless_metadata(w: &mut World) {
    assert!(w.refresh().ok);
    w.server
        .endless
        .lock()
        .unwrap()
        .insert("/m1/metadata/timestamp.json".into());
    refused_unchanged(w, || w.refresh(), "endless data");
    // A root that never ends, too.
    w.server
        .endless
        .lock()
        .unwrap()
        .insert("/m1/metadata/2.root.json".into());
    refused_unchanged(w, || w.refresh(), "endless data");
}

fn endless_target(w: &mut World) {
    assert!(w.refresh().ok);
    let url = w.target_path("m1", BUNDLE);
    w.server.endless.lock().unwrap().insert(url);
    refused_unchanged(w, || w.download(BUNDLE, &["m1"]), "endless data");
    assert!(w.nothing_downloaded());
}

fn slow_retrieval(w: &mut World) {
    w.server
        .stall
        .lock()
        .unwrap()
        .insert("/m1/metadata/timestamp.json".into());
    let mut c = w.cmd();
    c.args(["--read-timeout", "2"])
        .arg("--metadata-url")
        .arg(w.url("m1/metadata"));
    refused_unchanged(w, || run(c.arg("refresh")), "slow retrieval");
}

fn freeze(w: &mut World) {
    assert!(w.refresh().ok);
    w.serve_expired_timestamp("m1");
    refused_unchanged(w, || w.refresh(), "expired");
}

fn malicious_mirror(w: &mut World) {
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
    refused_unchanged(w, || w.download(BUNDLE, &["m1"]), "arbitrary software");
    std::fs::remove_dir_all(w.out()).unwrap();
    let before = store_bytes(&w.store());
    let r = w.refresh_from(&["m1"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("valid signature"), "{}", r.stderr);
    assert!(r.stderr.contains("mirror 1"), "{}", r.stderr);
    assert_eq!(store_bytes(&w.store()), before);
}

fn rollback(w: &mut World) {
    w.repo.timestamp_version = 5;
    w.repo.snapshot_version = 5;
    w.publish("m1");
    assert!(w.refresh().ok);
    // A later run (a new process) is offered the older, validly signed release.
    w.repo.timestamp_version = 4;
    w.repo.snapshot_version = 4;
    w.publish("m1");
    refused_unchanged(w, || w.refresh(), "rollback refused");
}

fn fast_forward(w: &mut World) {
    // The timestamp key leaks; the attacker pushes version 1000 (valid with that key).
    w.repo.timestamp_version = 1000;
    w.publish("m1");
    assert!(w.refresh().ok);
    // The honest repository continues at 2: refused as a rollback, as it must be ...
    w.repo.timestamp_version = 2;
    w.publish("m1");
    refused_unchanged(w, || w.refresh(), "rollback refused");
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

fn wrong_software(w: &mut World) {
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
    w.next_release(2);
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
    refused_unchanged(w, || w.download(win, &["m1"]), "wrong software");
    refused_unchanged(w, || w.download(alpha, &["m1"]), "wrong software");
    refused_unchanged(w, || w.download(old, &["m1"]), "downgrades are refused");
    assert!(w.nothing_downloaded());
}

fn bad_minisign_signature(w: &mut World) {
    assert!(w.refresh().ok);
    let other = BundleKey::new(w.tmp.path(), "other");
    let sig = w.www().join(format!("m1/targets/{BUNDLE}.minisig"));
    std::fs::write(&sig, other.sign(BUNDLE, BUNDLE_DATA)).unwrap();
    refused_unchanged(w, || w.download(BUNDLE, &["m1"]), "minisign signature");
    assert!(w.nothing_downloaded());
    std::fs::remove_file(&sig).unwrap();
    refused_unchanged(w, || w.download(BUNDLE, &["m1"]), "minisign signature");
}

/// The release machine alone (or with one builder, or one builder twice) cannot make an
/// update: the bundle passes TUF and its minisign signature, and is refused until two
/// distinct builders the policy lists vouch for it.
fn too_few_builders(w: &mut World) {
    assert!(w.refresh().ok);
    let targets = w.www().join("m1/targets");
    let builders = targets.join(format!("{BUNDLE}.builders"));
    let sums = targets.join(format!("{BUNDLE}.sha256sums"));
    let file = BUNDLE.rsplit('/').next().unwrap();
    for (by, why) in [
        (&[0][..], "vouched for by 1 distinct builder(s)"),
        (&[1, 1][..], "same key, counted once"),
        (&[][..], "vouched for by 0 distinct builder(s)"),
    ] {
        let (s, b) = w.key.vouch(&[(file, BUNDLE_DATA)], by);
        std::fs::write(&sums, s).unwrap();
        std::fs::write(&builders, b).unwrap();
        refused_unchanged(w, || w.download(BUNDLE, &["m1"]), why);
    }
    // Two builders vouching for other bytes under the bundle's name.
    let (s, b) = w.key.vouch(&[(file, b"another build")], &[0, 1]);
    std::fs::write(&sums, s).unwrap();
    std::fs::write(&builders, b).unwrap();
    refused_unchanged(
        w,
        || w.download(BUNDLE, &["m1"]),
        "not the archive the builders rebuilt",
    );
    std::fs::remove_file(&builders).unwrap();
    refused_unchanged(
        w,
        || w.download(BUNDLE, &["m1"]),
        "builders' signatures could not be fetched",
    );
    assert!(w.nothing_downloaded());
    // Two distinct builders: taken.
    let (s, b) = w.key.vouch(&[(file, BUNDLE_DATA)], &[2, 0]);
    std::fs::write(&sums, s).unwrap();
    std::fs::write(&builders, b).unwrap();
    let r = w.download(BUNDLE, &["m1"]);
    assert!(r.ok, "{}", r.stderr);
}

/// The mirror serves, under the names release 2's timestamp and snapshot list, the
/// snapshot and then the targets of release 1: validly signed, from another release.
fn mix_and_match(w: &mut World) {
    assert!(w.refresh().ok);
    let release1 = w.repo.files();
    w.next_release(2);
    w.publish("m1");
    let meta = w.www().join("m1/metadata");
    std::fs::write(meta.join("2.snapshot.json"), &release1.snapshot).unwrap();
    refused_keeping(
        w,
        || w.refresh(),
        "mix-and-match",
        &["snapshot.json", "targets.json"],
    );
    w.publish("m1");
    std::fs::write(meta.join("2.targets.json"), &release1.targets).unwrap();
    refused_keeping(w, || w.refresh(), "mix-and-match", &["targets.json"]);
    // The honest files are taken.
    w.publish("m1");
    let r = w.refresh();
    assert!(r.ok, "{}", r.stderr);
}

/// Targets needs 3 of its 3 keys: two valid signatures are not enough, and neither is one
/// key's signature given twice.
fn below_threshold(w: &mut World) {
    w.repo.targets = tuf_repo::RoleKeys {
        keys: vec![
            tuf_repo::Key::new("t1"),
            tuf_repo::Key::new("t2"),
            tuf_repo::Key::new("t3"),
        ],
        threshold: 3,
    };
    // No hashes in the snapshot, so the signature check itself is what refuses.
    w.repo.list_hashes = false;
    w.repo.root_version = 2;
    w.next_release(2);
    w.publish("m1");
    let r = w.refresh();
    assert!(r.ok, "{}", r.stderr);
    w.next_release(3);
    w.publish("m1");
    let signed = w.repo.targets_signed();
    let keys = &w.repo.targets.keys;
    let file = w.www().join("m1/metadata/3.targets.json");
    std::fs::write(&file, tuf_repo::sign_all(&signed, &[&keys[0], &keys[1]])).unwrap();
    refused_keeping(
        w,
        || w.refresh(),
        "2 valid signature(s) by distinct keys; the trusted root requires 3",
        &["targets.json"],
    );
    let one = keys[0].sign(&signed);
    let twice = tuf_repo::envelope(&signed, vec![one.clone(), one, keys[1].sign(&signed)]);
    std::fs::write(&file, twice).unwrap();
    refused_keeping(
        w,
        || w.refresh(),
        "two signatures with key id",
        &["targets.json"],
    );
}

/// A root that lists the timestamp key under two ids and asks for two signatures: the
/// one key signing under both ids counts once.
fn one_key_two_ids(w: &mut World) {
    assert!(w.refresh().ok);
    w.next_release(2);
    w.publish("m1");
    let mut root = w.repo.root_signed();
    let k = &w.repo.timestamp.keys[0];
    root["version"] = 2.into();
    root["keys"]["alias"] = k.json();
    root["roles"]["timestamp"] = serde_json::json!({"keyids": [k.id, "alias"], "threshold": 2});
    let root2 = tuf_repo::sign_all(&root, &w.repo.root.refs());
    let meta = w.www().join("m1/metadata");
    std::fs::write(meta.join("2.root.json"), &root2).unwrap();
    let snapshot = w.repo.files().snapshot;
    let signed = w.repo.timestamp_signed(&snapshot);
    let both = tuf_repo::envelope(
        &signed,
        vec![k.sign(&signed), k.alias("alias").sign(&signed)],
    );
    std::fs::write(meta.join("timestamp.json"), &both).unwrap();
    // Root 2 is validly signed and is taken (its new timestamp threshold drops the trusted
    // timestamp and snapshot: fast-forward recovery); the timestamp is not.
    refused_keeping(
        w,
        || w.refresh(),
        "only by counting one key under several key ids",
        &[],
    );
    let store = store_bytes(&w.store());
    assert_eq!(store["root.json"], root2);
    assert_ne!(store.get("timestamp.json"), Some(&both));
}

/// Root 1 → 4, each new root signed by the old and the new keys, with new keys each time:
/// the client walks the chain in one refresh and trusts the last.
fn rotation_chain(w: &mut World) {
    assert!(w.refresh().ok);
    let meta = w.www().join("m1/metadata");
    for v in 2..=4 {
        let old = std::mem::replace(
            &mut w.repo.root,
            tuf_repo::RoleKeys {
                keys: vec![
                    tuf_repo::Key::new(&format!("root-v{v}-a")),
                    tuf_repo::Key::new(&format!("root-v{v}-b")),
                ],
                threshold: 2,
            },
        );
        w.repo.root_version = v;
        let signed = w.repo.root_signed();
        let mut signers = old.refs();
        signers.extend(w.repo.root.refs());
        std::fs::write(
            meta.join(timb_release::tuf::names::root(v)),
            tuf_repo::sign_all(&signed, &signers),
        )
        .unwrap();
    }
    let last = std::fs::read(meta.join("4.root.json")).unwrap();
    w.next_release(2);
    let files = w.repo.files();
    publish(&w.www().join("m1"), &w.repo, &files, &[], &w.key);
    std::fs::write(meta.join("4.root.json"), &last).unwrap();
    let r = w.refresh();
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(store_bytes(&w.store())["root.json"], last);
}

/// A root 2 signed only by keys the trusted root does not know is refused, and nothing
/// trusted changes.
fn rotation_by_new_keys_only(w: &mut World) {
    assert!(w.refresh().ok);
    w.repo.root = tuf_repo::RoleKeys::one("attacker-root");
    w.repo.root_version = 2;
    w.publish("m1");
    refused_unchanged(
        w,
        || w.refresh(),
        "a rotation signed only by new keys is refused",
    );
}

#[test]
fn attack_arbitrary_software_a_target_with_a_bad_hash_is_refused() {
    arbitrary_software(&mut World::new());
}

#[test]
fn attack_endless_metadata_is_cut_at_the_cap() {
    endless_metadata(&mut World::new());
}

#[test]
fn attack_endless_target_is_cut_at_its_listed_length() {
    endless_target(&mut World::new());
}

#[test]
fn attack_slow_retrieval_is_given_up() {
    slow_retrieval(&mut World::new());
}

#[test]
fn attack_freeze_an_expired_timestamp_is_refused() {
    freeze(&mut World::new());
}

#[test]
fn attack_malicious_mirror_then_good_mirror_succeeds_from_the_good_one() {
    malicious_mirror(&mut World::new());
}

#[test]
fn attack_rollback_across_client_restarts_is_refused() {
    rollback(&mut World::new());
}

#[test]
fn attack_fast_forward_is_recovered_from_by_a_key_rotation() {
    fast_forward(&mut World::new());
}

#[test]
fn attack_wrong_software_another_platform_channel_or_an_older_release_is_refused() {
    wrong_software(&mut World::new());
}

#[test]
fn a_target_that_passes_tuf_but_not_its_minisign_signature_is_refused() {
    bad_minisign_signature(&mut World::new());
}

#[test]
fn a_target_not_vouched_for_by_enough_builders_is_refused() {
    too_few_builders(&mut World::new());
}

#[test]
fn attack_mix_and_match_another_releases_snapshot_or_targets_is_refused() {
    mix_and_match(&mut World::new());
}

#[test]
fn attack_key_compromise_below_threshold_or_one_signature_twice_is_refused() {
    below_threshold(&mut World::new());
}

#[test]
fn attack_one_key_under_two_key_ids_counts_once() {
    one_key_two_ids(&mut World::new());
}

#[test]
fn a_root_rotation_chain_of_three_is_walked_over_http() {
    rotation_chain(&mut World::new());
}

#[test]
fn attack_a_rotation_signed_only_by_new_keys_is_refused() {
    rotation_by_new_keys_only(&mut World::new());
}

/// The whole suite again, each attack on a fresh repository behind the private Tor
/// network's `update` onion service, fetched through arti (the app's transport): one
/// test, because the onion service has one backend port.
#[test]
fn the_attack_suite_over_an_onion_service() {
    for (name, attack) in ATTACKS {
        let started = std::time::Instant::now();
        attack(&mut World::over_tor(BUNDLE_DATA));
        eprintln!("onion: {name} ({:.1} s)", started.elapsed().as_secs_f64());
    }
}

/// The whole suite once more against an HTTPS mirror reached through the private
/// network's exit, as a clearnet mirror is.
#[test]
fn the_attack_suite_through_a_tor_exit_to_an_https_mirror() {
    for (name, attack) in ATTACKS {
        let started = std::time::Instant::now();
        attack(&mut World::through_exit());
        eprintln!("exit: {name} ({:.1} s)", started.elapsed().as_secs_f64());
    }
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

// ---- Applying an update to a bundle (timb-launcher's layout) ----------------------------

/// An unpacked 0.1.0 bundle in the new layout, with a profile the updater must not touch.
fn old_bundle(at: &Path) -> PathBuf {
    let root = at.join("timb-0.1.0-linux-x86_64");
    std::fs::create_dir_all(root.join("app/0.1.0")).unwrap();
    std::fs::create_dir_all(root.join("profile/otr")).unwrap();
    let exe = root.join("app/0.1.0/timb");
    std::fs::write(&exe, script("0.1.0")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("app/current"), "0.1.0\n").unwrap();
    std::fs::write(root.join("profile/accounts.toml"), "remembered").unwrap();
    std::fs::write(root.join("profile/otr/keys"), "otr key").unwrap();
    root
}

fn apply_cmd(root: &Path, archive: &Path, version: &str) -> std::process::Command {
    let mut c = client();
    c.arg("apply")
        .arg("--bundle")
        .arg(root)
        .arg("--archive")
        .arg(archive)
        .arg("--version")
        .arg(version);
    c
}

/// What the bundle's launcher starts (`--version`, so no start is counted).
fn launched(root: &Path) -> String {
    let r = run(client()
        .arg("launch")
        .arg("--bundle")
        .arg(root)
        .arg("--")
        .arg("--version"));
    assert!(r.ok, "the bundle does not start: {}", r.stderr);
    String::from_utf8_lossy(&r.out.stdout).trim().to_string()
}

/// Everything under `root` except the profile, as (path, bytes).
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                todo.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn profile_intact(root: &Path) {
    assert_eq!(
        std::fs::read(root.join("profile/accounts.toml")).unwrap(),
        b"remembered"
    );
    assert_eq!(
        std::fs::read(root.join("profile/otr/keys")).unwrap(),
        b"otr key"
    );
}

#[test]
fn an_update_is_applied_beside_the_old_version_and_the_launcher_starts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = old_bundle(tmp.path());
    let archive = tmp.path().join("timb-0.2.0-linux-x86_64.tar.xz");
    std::fs::write(&archive, bundle_archive("0.2.0", &[])).unwrap();
    assert_eq!(launched(&root), "timb 0.1.0 --version");
    let r = run(&mut apply_cmd(&root, &archive, "0.2.0"));
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(launched(&root), "timb 0.2.0 --version");
    assert_eq!(
        std::fs::read_to_string(root.join("app/previous")).unwrap(),
        "0.1.0\n"
    );
    assert!(
        root.join("app/0.1.0/timb").is_file(),
        "the fallback was removed"
    );
    assert_eq!(
        std::fs::read(root.join("app/0.2.0/LICENSES/THIRD-PARTY.txt")).unwrap(),
        b"licences"
    );
    // Only app/0.2.0/ came from the archive: not its launcher, pointer or profile.
    assert!(!root.join("timb").exists());
    profile_intact(&root);
    // Applying again is a no-op; a version the archive does not hold is an error.
    assert!(run(&mut apply_cmd(&root, &archive, "0.2.0")).ok);
    let r = run(&mut apply_cmd(&root, &archive, "0.3.0"));
    assert!(
        !r.ok && r.stderr.contains("holds no app/0.3.0/timb"),
        "{}",
        r.stderr
    );
    assert_eq!(launched(&root), "timb 0.2.0 --version");
}

#[test]
fn kill_9_at_every_write_rename_and_fsync_of_an_apply_leaves_old_or_new_and_a_retry_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let initial = old_bundle(&tmp.path().join("initial"));
    let archive = tmp.path().join("timb-0.2.0-linux-x86_64.tar.xz");
    std::fs::write(&archive, bundle_archive("0.2.0", &[])).unwrap();
    let root = tmp.path().join("b");
    let fresh = || {
        let _ = std::fs::remove_dir_all(&root);
        let r = run(std::process::Command::new("cp")
            .arg("-a")
            .arg(&initial)
            .arg(&root));
        assert!(r.ok, "{}", r.stderr);
    };
    fresh();
    let r = run(apply_cmd(&root, &archive, "0.2.0").env("TIMB_APPLY_STOPS", "1"));
    assert!(r.ok, "{}", r.stderr);
    let steps: Vec<String> = r.stderr.lines().map(str::to_string).collect();
    // staging (4), folder rename and sync (2), previous and current pointers (5 each).
    assert_eq!(steps.len(), 16, "{steps:#?}");
    let commit = steps
        .iter()
        .position(|s| s.ends_with("current: renamed"))
        .unwrap()
        + 1;
    for n in 1..=steps.len() {
        fresh();
        let r = run(apply_cmd(&root, &archive, "0.2.0").env("TIMB_APPLY_STOP_AT", n.to_string()));
        assert_killed(&r, &steps[n - 1]);
        let expect = if n >= commit { "0.2.0" } else { "0.1.0" };
        assert_eq!(
            launched(&root),
            format!("timb {expect} --version"),
            "after kill -9 at {}",
            steps[n - 1]
        );
        profile_intact(&root);
        let r = run(&mut apply_cmd(&root, &archive, "0.2.0"));
        assert!(
            r.ok,
            "the retry after {} failed: {}",
            steps[n - 1],
            r.stderr
        );
        assert_eq!(
            launched(&root),
            "timb 0.2.0 --version",
            "after {}",
            steps[n - 1]
        );
        assert!(
            std::fs::read_dir(root.join("app"))
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().starts_with(".staging")),
            "a staging folder outlived the retry after {}",
            steps[n - 1]
        );
    }
}

/// `apply` fails mentioning `words`, and the bundle is byte for byte what it was.
fn refused(name: &str, archive: Vec<u8>, words: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = old_bundle(&tmp.path().join("in"));
    let before = tree(tmp.path());
    let file = tmp.path().join("in/update.tar.xz");
    std::fs::write(&file, archive).unwrap();
    let r = run(&mut apply_cmd(&root, &file, "0.2.0"));
    assert!(!r.ok, "{name}: applied");
    assert!(
        r.out.status.code() == Some(1),
        "{name}: crashed: {}",
        r.stderr
    );
    assert!(r.stderr.contains(words), "{name}: {}", r.stderr);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(tree(tmp.path()), before, "{name}: files changed");
    assert_eq!(launched(&root), "timb 0.1.0 --version", "{name}");
}

/// A bundle of `version` with extra entries, as one archive format.
type Packer = fn(&str, &[Ent]) -> Vec<u8>;

#[test]
fn hostile_archives_are_refused_before_anything_outside_staging_changes() {
    let top = "timb-0.2.0-linux-x86_64";
    let p = |s: &str| format!("{top}/{s}");
    let (esc, abs, dotdot, lnk, hard, dev) = (
        "timb-0.2.0-linux-x86_64/app/0.2.0/../../../../evil".to_string(),
        "/tmp/timb-evil-absolute".to_string(),
        p("app/0.2.0/a/../../../../evil"),
        p("app/0.2.0/lib"),
        p("app/0.2.0/hard"),
        p("app/0.2.0/tty"),
    );
    // What both formats can carry: refused alike from a .tar.xz and from a .zip.
    let link_then_write = p("app/0.2.0/lib/evil");
    let formats: [(&str, Packer); 2] = [("tar.xz", bundle_archive), ("zip", bundle_zip)];
    for (format, pack) in formats {
        let case = |what: &str| format!("{format}: {what}");
        refused(&case("escape"), pack("0.2.0", &[ent(&esc, b"x")]), "(..)");
        refused(
            &case("absolute"),
            pack("0.2.0", &[ent(&abs, b"x")]),
            "an absolute path",
        );
        refused(
            &case("dotdot"),
            pack("0.2.0", &[ent(&dotdot, b"x")]),
            "(..)",
        );
        refused(
            &case("symlink"),
            pack(
                "0.2.0",
                &[
                    Ent {
                        kind: tar::EntryType::Symlink,
                        link: "/tmp",
                        ..ent(&lnk, b"")
                    },
                    ent(&link_then_write, b"x"),
                ],
            ),
            "a symbolic link",
        );
        refused(
            &case("two folders"),
            pack("0.2.0", &[ent("another-folder/timb", b"x")]),
            "outside the bundle's folder",
        );
    }
    refused(
        "hard link",
        bundle_archive(
            "0.2.0",
            &[Ent {
                kind: tar::EntryType::Link,
                link: "/etc/passwd",
                ..ent(&hard, b"")
            }],
        ),
        "a hard link",
    );
    refused(
        "device",
        bundle_archive(
            "0.2.0",
            &[Ent {
                kind: tar::EntryType::Char,
                ..ent(&dev, b"")
            }],
        ),
        "a device file",
    );
    let sparse = p("app/0.2.0/sparse");
    refused(
        "sparse 10 GB announced as 10 MB",
        bundle_archive(
            "0.2.0",
            &[Ent {
                kind: tar::EntryType::GNUSparse,
                ..ent(&sparse, b"x")
            }],
        ),
        "a sparse file",
    );
    let big = p("app/0.2.0/big");
    refused(
        "a 10 GB file in a small archive",
        bundle_archive(
            "0.2.0",
            &[Ent {
                size: Some(10 << 30),
                ..ent(&big, b"")
            }],
        ),
        "more than 1024 MB",
    );
    let names: Vec<String> = (0..100_000)
        .map(|i| p(&format!("app/0.2.0/f/{i}")))
        .collect();
    let many: Vec<Ent> = names.iter().map(|n| ent(n, b"")).collect();
    refused(
        "100,000 tiny files",
        bundle_archive("0.2.0", &many),
        "more than 10000 files",
    );
    refused("not an archive", b"not xz".to_vec(), "damaged");
    assert!(!Path::new("/tmp/timb-evil-absolute").exists());
}

#[test]
fn a_zip_the_windows_bundles_format_is_applied_alike_and_a_damaged_one_is_refused() {
    // The same apply code reads both formats; a Windows timb is offered only .zip targets.
    let tmp = tempfile::tempdir().unwrap();
    let root = old_bundle(tmp.path());
    let archive = tmp.path().join("timb-0.2.0-windows-x86_64.zip");
    std::fs::write(&archive, bundle_zip("0.2.0", &[])).unwrap();
    let r = run(&mut apply_cmd(&root, &archive, "0.2.0"));
    assert!(r.ok, "{}", r.stderr);
    // The launcher runs it: the zip's Unix mode made it executable.
    assert_eq!(launched(&root), "timb 0.2.0 --version");
    assert_eq!(
        std::fs::read(root.join("app/0.2.0/LICENSES/THIRD-PARTY.txt")).unwrap(),
        b"licences"
    );
    assert!(!root.join("timb").exists());
    profile_intact(&root);

    // What a zip alone can carry wrong; what both formats can is in the test above.
    let data = "timb-0.2.0-linux-x86_64/app/0.2.0/data";
    // One flipped byte inside a file's data (noise deflates to stored blocks, so its
    // bytes are in the zip as they are): the CRC-32 at the file's end catches it.
    let payload = noise(4096);
    let mut bad = bundle_zip("0.2.0", &[ent(data, &payload)]);
    let at = bad
        .windows(64)
        .position(|w| w == &payload[1000..1064])
        .expect("the noise is stored as it is");
    bad[at + 10] ^= 1;
    refused("zip: a flipped byte", bad, "damaged (Invalid checksum)");
    refused(
        "zip: not one",
        b"PK\x03\x04 but nothing more".to_vec(),
        "damaged",
    );
}

#[test]
fn a_full_disk_during_extraction_is_a_clear_error_and_the_old_version_still_starts() {
    let tmp = tempfile::tempdir().unwrap();
    old_bundle(&tmp.path().join("src"));
    let big = vec![7u8; 6 << 20];
    let name = "timb-0.2.0-linux-x86_64/app/0.2.0/big.dat";
    let archive = tmp.path().join("update.tar.xz");
    std::fs::write(&archive, bundle_archive("0.2.0", &[ent(name, &big)])).unwrap();
    let small = tmp.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    // A 4 MB tmpfs in a mount namespace of our own: the bundle fits, the update does not.
    let script = r#"set -e
mount -t tmpfs -o size=4m tmpfs "$1"
cp -a "$2/timb-0.1.0-linux-x86_64" "$1/b"
if "$3" apply --bundle "$1/b" --archive "$4" --version 0.2.0 2>"$1/err"; then echo applied; fi
cat "$1/err"
ls -a "$1/b/app"
"$3" launch --bundle "$1/b" -- --version
"#;
    let r = run(std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(&small)
        .arg(tmp.path().join("src"))
        .arg(client().get_program())
        .arg(&archive));
    assert!(r.ok, "{}", r.stderr);
    let out = String::from_utf8_lossy(&r.out.stdout).into_owned();
    assert!(!out.contains("applied"), "{out}");
    assert!(out.contains("not enough free space"), "{out}");
    assert!(
        !out.contains(".staging") && !out.contains("0.2.0\n"),
        "a half version left: {out}"
    );
    assert!(out.trim_end().ends_with("timb 0.1.0 --version"), "{out}");
}

/// The whole update over the private Tor network: the repository on an onion service, the
/// client through arti (the app's `TorFetcher`, its own isolation), then applied to a bundle
/// that starts the new version with its profile; and the attacks that matter most over a
/// real network path (freeze, tampered target), refused with the store unchanged.
#[test]
fn over_an_onion_service_an_update_downloads_applies_and_starts() {
    let archive = bundle_archive("0.2.0", &[]);
    let w = World::over_tor(&archive);
    let r = w.refresh();
    assert!(r.ok, "refresh over Tor: {}", r.stderr);
    let r = w.download(BUNDLE, &["m1"]);
    assert!(r.ok, "download over Tor: {}", r.stderr);
    let got = w.out().join(BUNDLE);
    assert_eq!(std::fs::read(&got).unwrap(), archive);
    let root = old_bundle(&w.tmp.path().join("bundle"));
    let r = run(&mut apply_cmd(&root, &got, "0.2.0"));
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(launched(&root), "timb 0.2.0 --version");
    profile_intact(&root);
}

/// kill -9 before each write, fsync and rename of a download: the bundle's final name is
/// either absent or the whole verified file, and the next download completes.
#[test]
fn kill_9_at_every_step_of_a_download_leaves_nothing_or_the_whole_file_and_a_retry_completes() {
    let w = World::new();
    assert!(w.refresh().ok);
    let mut c = w.cmd();
    c.env("TIMB_DOWNLOAD_STOPS", "1");
    let listed = w.download_with(c, BUNDLE, &["m1"]);
    assert!(listed.ok, "{}", listed.stderr);
    let steps: Vec<String> = listed.stderr.lines().map(str::to_string).collect();
    // create, first bytes, sync, rename, renamed, folder synced.
    assert_eq!(steps.len(), 6, "{steps:#?}");
    for n in 1..=steps.len() {
        std::fs::remove_dir_all(w.out()).unwrap();
        let mut c = w.cmd();
        c.env("TIMB_DOWNLOAD_STOP_AT", n.to_string());
        let r = w.download_with(c, BUNDLE, &["m1"]);
        assert_killed(&r, &steps[n - 1]);
        let got = w.out().join(BUNDLE);
        if got.exists() {
            assert_eq!(
                std::fs::read(&got).unwrap(),
                BUNDLE_DATA,
                "after {}",
                steps[n - 1]
            );
        }
        w.server.take_log(BUNDLE);
        let r = w.download(BUNDLE, &["m1"]);
        assert!(
            r.ok,
            "the retry after {} failed: {}",
            steps[n - 1],
            r.stderr
        );
        assert_eq!(std::fs::read(&got).unwrap(), BUNDLE_DATA);
        if steps[n - 1].contains("renaming into place") {
            // The whole .part was kept: the retry checks it and fetches nothing.
            assert_eq!(target_requests(&w), Vec::<usize>::new());
        }
    }
}

/// 1 MiB of noise: a prefix from the wrong place cannot pass.
fn big_bundle() -> Vec<u8> {
    support::noise(1 << 20)
}

/// The target requests the server saw, as `from N` offsets (0 for a whole-file request).
fn target_requests(w: &World) -> Vec<usize> {
    w.server
        .take_log(BUNDLE)
        .iter()
        .map(|l| {
            l.split_once(" from ")
                .map_or(0, |(_, n)| n.parse().unwrap())
        })
        .collect()
}

/// A connection that breaks halfway keeps what arrived; the next download asks only for
/// the rest (`Range`), and the whole still passes TUF's hashes and the minisign signature.
#[test]
fn a_download_cut_off_halfway_resumes_from_where_it_stopped() {
    let data = big_bundle();
    let w = World::build(Reach::Loopback, Server::start, &data);
    assert!(w.refresh().ok);
    let half = data.len() / 2;
    w.server
        .switches
        .cut
        .lock()
        .unwrap()
        .insert(w.target_path("m1", BUNDLE), half);
    let r = w.download(BUNDLE, &["m1"]);
    assert!(!r.ok, "a cut download was accepted");
    assert!(r.stderr.contains("download failed"), "{}", r.stderr);
    assert!(!w.out().join(BUNDLE).exists());
    let kept = std::fs::read(w.part(BUNDLE)).unwrap();
    assert!(!kept.is_empty() && kept.len() <= half, "{}", kept.len());
    assert_eq!(kept[..], data[..kept.len()]);
    assert_eq!(target_requests(&w), [0]);

    let r = w.download(BUNDLE, &["m1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(target_requests(&w), [kept.len()], "not resumed");
    assert_eq!(std::fs::read(w.out().join(BUNDLE)).unwrap(), data);
    assert!(!w.part(BUNDLE).exists());
}

/// Kept bytes that are not the signed file's (another mirror's, or damaged) fail the hash
/// once the rest arrives: they are dropped and the file fetched whole, once. A server that
/// ignores the range and sends everything is written from its first byte.
#[test]
fn a_kept_part_that_is_not_the_signed_file_is_dropped_and_a_server_without_ranges_still_works() {
    let data = big_bundle();
    let w = World::build(Reach::Loopback, Server::start, &data);
    assert!(w.refresh().ok);
    let half = data.len() / 2;
    std::fs::create_dir_all(w.out()).unwrap();
    std::fs::write(w.part(BUNDLE), vec![0x55; half]).unwrap();
    let r = w.download(BUNDLE, &["m1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(target_requests(&w), [half, 0]);
    assert_eq!(std::fs::read(w.out().join(BUNDLE)).unwrap(), data);

    std::fs::remove_dir_all(w.out()).unwrap();
    std::fs::create_dir_all(w.out()).unwrap();
    std::fs::write(w.part(BUNDLE), &data[..half]).unwrap();
    w.server
        .switches
        .ignore_ranges
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = w.download(BUNDLE, &["m1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(target_requests(&w), [half]);
    assert_eq!(std::fs::read(w.out().join(BUNDLE)).unwrap(), data);

    // A kept file longer than the signed length is never resumed.
    std::fs::remove_dir_all(w.out()).unwrap();
    std::fs::create_dir_all(w.out()).unwrap();
    let mut long = data.clone();
    long.push(0);
    std::fs::write(w.part(BUNDLE), &long).unwrap();
    let r = w.download(BUNDLE, &["m1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(target_requests(&w), [0]);
    assert_eq!(std::fs::read(w.out().join(BUNDLE)).unwrap(), data);
}
