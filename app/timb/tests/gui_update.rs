//! The updater as a person uses it: the real window (slint's testing platform), "Check for
//! updates now" in About, arti bootstrapping against the private Tor network, and a TUF
//! repository served on the network's "app-update" onion service — the app's own update
//! check (`timb::update::check`, `TorFetcher`), not the test client's.
//!
//! The previous issue's attacks are replayed through it first (a tampered bundle, a frozen
//! timestamp, endless metadata, a bundle signed by a key outside the policy, a snapshot from
//! another release, a root rotated by new keys only): each is told in its own words and
//! installs nothing. Then the
//! real release is served: the window offers it, downloads it over Tor and installs it beside
//! 0.1.0, a rollback afterwards is refused, a later check finds it ready, and "Restart to
//! update" starts the bundle's launcher.

#[path = "../../../tests/update-client/tests/support/repo.rs"]
mod repo;
mod support;

use std::path::Path;

use i_slint_backend_testing::{AccessibleRole, ElementRoot};
use repo::tuf_repo::{self, Repo, BUNDLE, PAST};
use repo::{bundle_archive, publish, BundleKey, Server};
use slint::ComponentHandle;
use support::*;
use timb::{MainWindow, UpdateState};
use timb_launcher::Layout;
use timb_update::{BundleTrust, Url};

/// A 0.1.0 bundle in the update layout whose launcher records that it was started.
fn old_bundle(at: &Path) -> std::path::PathBuf {
    let root = at.join("timb-0.1.0-linux-x86_64");
    std::fs::create_dir_all(root.join("app/0.1.0")).unwrap();
    std::fs::create_dir_all(root.join("profile/otr")).unwrap();
    std::fs::write(root.join("app/current"), "0.1.0\n").unwrap();
    std::fs::write(root.join("app/0.1.0/timb"), "0.1.0").unwrap();
    std::fs::write(root.join("profile/otr/keys"), "otr key").unwrap();
    let launcher = root.join("timb");
    std::fs::write(
        &launcher,
        "#!/bin/sh\necho started > \"$(dirname \"$0\")/launcher-started\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

fn bundle_trust(key: &BundleKey) -> BundleTrust {
    let policy =
        timb_release::Policy::parse(&std::fs::read_to_string(&key.policy_file).unwrap()).unwrap();
    BundleTrust::new(key.keyring(), policy).unwrap()
}

/// Whether the window shows a text containing `words`.
fn shows(w: &MainWindow, words: &str) -> bool {
    let words = words.to_owned();
    w.root_element()
        .query_descendants()
        .match_predicate(move |e| e.accessible_label().is_some_and(|l| l.contains(&words)))
        .find_first()
        .is_some()
}

/// Clicks "Check for updates now" in About and waits until the check has ended in `state`
/// with a sentence containing `words`.
fn check_now(w: &slint::Weak<MainWindow>, want: UpdateState, words: &'static str) {
    on_ui(w, |w| {
        click(w, "About timb");
        click(w, "Check for updates now");
    });
    wait_ui(
        w,
        words,
        move |w| w.get_update_state() == want && shows(w, words),
        |w| {
            format!(
                "{:?} {:?}; {}",
                w.get_update_state(),
                w.get_update_problem(),
                support::state(w)
            )
        },
    );
}

#[test]
fn from_the_window_attacks_are_told_in_words_then_an_update_installs_and_restarts() {
    let net = timb_testnet::TestNet::shared();
    let svc = net
        .info()
        .onion_service("app-update")
        .expect("the network's app-update onion service")
        .clone();
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let server = Server::start_on(&www, svc.target_port);
    let key = BundleKey::new(tmp.path(), "bundle");
    let archive = bundle_archive("0.2.0", &[]);
    let mut repo = Repo::new();
    repo.add_target(
        BUNDLE,
        &archive,
        tuf_repo::timb("0.2.0", "linux-x86_64", "stable"),
    );
    let mirror = www.join("m1");
    let root = old_bundle(tmp.path());
    let layout = Layout::at(&root);
    let setup = timb::update::UpdateSetup {
        layout: Some(layout.clone()),
        channel: Some(timb::update::ChannelConfig {
            root: repo.root_bytes(),
            mirrors: vec![Url::parse(&format!("http://{}/m1/", svc.onion)).unwrap()],
            channel: timb_release::tuf::Channel::new("stable").unwrap(),
            trust: bundle_trust(&key),
        }),
        running: Some("0.1.0".parse().unwrap()),
    };

    // Arbitrary software: the served bundle is not the signed one.
    publish(&mirror, &repo, &repo.files(), &[(BUNDLE, &archive)], &key);
    let target = {
        let info = repo.files().trusted().target(BUNDLE).unwrap();
        mirror
            .join("targets")
            .join(timb_release::tuf::names::target(true, &info).remove(0))
    };
    let mut bad = archive.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&target, &bad).unwrap();

    std::env::set_var(timb::net::PRIVATE_NETWORK_ENV, net.config_path());
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MainWindow::new().expect("window");
    window.show().expect("show");
    let app = timb::attach_with_update(&window, &root.join("profile"), Default::default(), setup)
        .expect("attach the backend");
    app.borrow_mut().set_language("en");
    let w = window.as_weak();
    let store = root.join("update/metadata");
    let (mirror2, archive2) = (mirror.clone(), archive.clone());

    let installed = run_driven(move || {
        check_now(
            &w,
            UpdateState::Failed,
            "someone may have tampered with them",
        );
        assert!(
            !layout.installed("0.2.0"),
            "a tampered bundle was installed"
        );
        std::fs::write(&target, &archive2).unwrap();

        // Freeze: a newer timestamp that has already expired.
        let before = repo::store_bytes(&store);
        repo.timestamp_version = 2;
        repo.timestamp_expires = PAST.into();
        std::fs::write(
            mirror2.join("metadata/timestamp.json"),
            repo.files().timestamp,
        )
        .unwrap();
        repo.timestamp_expires = tuf_repo::FAR.into();
        check_now(
            &w,
            UpdateState::Failed,
            "someone may be holding updates back",
        );
        assert_eq!(
            repo::store_bytes(&store),
            before,
            "a frozen timestamp changed the store"
        );

        // Endless data: the timestamp never ends; reading stops at its cap.
        server
            .endless
            .lock()
            .unwrap()
            .insert("/m1/metadata/timestamp.json".into());
        check_now(&w, UpdateState::Failed, "did not match the signed size");
        server.endless.lock().unwrap().clear();
        assert_eq!(
            repo::store_bytes(&store),
            before,
            "endless data changed the store"
        );
        assert!(!layout.installed("0.2.0"));

        // The honest release 1 again, but its bundle signed by a key the policy does not
        // list: TUF passes, minisign refuses.
        repo.timestamp_version = 1;
        publish(&mirror2, &repo, &repo.files(), &[(BUNDLE, &archive2)], &key);
        let sig = mirror2.join(format!("targets/{BUNDLE}.minisig"));
        let honest_sig = std::fs::read(&sig).unwrap();
        let stranger = BundleKey::new(&mirror2, "stranger");
        std::fs::write(&sig, stranger.sign(BUNDLE, &archive2)).unwrap();
        check_now(
            &w,
            UpdateState::Failed,
            "someone may have tampered with them",
        );
        assert!(
            !layout.installed("0.2.0"),
            "a bundle with a bad signature was installed"
        );
        std::fs::write(&sig, honest_sig).unwrap();

        // Mix-and-match: release 2's timestamp, but under its snapshot's name the mirror
        // serves release 1's snapshot (validly signed, from another release).
        let release1 = repo.files();
        repo.timestamp_version = 2;
        repo.snapshot_version = 2;
        repo.targets_version = 2;
        publish(&mirror2, &repo, &repo.files(), &[(BUNDLE, &archive2)], &key);
        std::fs::write(mirror2.join("metadata/2.snapshot.json"), &release1.snapshot).unwrap();
        let snapshot_before = repo::store_bytes(&store).get("snapshot.json").cloned();
        check_now(
            &w,
            UpdateState::Failed,
            "someone may have tampered with them",
        );
        assert_eq!(
            repo::store_bytes(&store).get("snapshot.json").cloned(),
            snapshot_before,
            "a snapshot from another release was trusted"
        );

        // A new root signed only by keys the trusted root does not know.
        let honest_root = std::mem::replace(&mut repo.root, tuf_repo::RoleKeys::one("attacker"));
        repo.root_version = 2;
        std::fs::write(mirror2.join("metadata/2.root.json"), repo.root_bytes()).unwrap();
        repo.root = honest_root;
        repo.root_version = 1;
        let before = repo::store_bytes(&store);
        check_now(
            &w,
            UpdateState::Failed,
            "someone may have tampered with them",
        );
        assert_eq!(
            repo::store_bytes(&store),
            before,
            "a root signed by new keys only changed the store"
        );
        std::fs::remove_file(mirror2.join("metadata/2.root.json")).unwrap();

        // The real release, version 3 of the timestamp: offered, downloaded, installed.
        repo.timestamp_version = 3;
        repo.snapshot_version = 3;
        let good = repo.files();
        publish(&mirror2, &repo, &good, &[(BUNDLE, &archive2)], &key);
        check_now(&w, UpdateState::Ready, "timb 0.2.0 is ready");

        // Rollback: the validly signed version 2 again is refused.
        repo.timestamp_version = 2;
        repo.snapshot_version = 2;
        publish(&mirror2, &repo, &repo.files(), &[(BUNDLE, &archive2)], &key);
        let before = repo::store_bytes(&store);
        check_now(
            &w,
            UpdateState::Failed,
            "offered older files than timb already has",
        );
        assert_eq!(
            repo::store_bytes(&store),
            before,
            "a rollback changed the store"
        );

        // Served right again: a later check finds the update ready, and the user restarts.
        repo.timestamp_version = 3;
        repo.snapshot_version = 3;
        publish(&mirror2, &repo, &good, &[(BUNDLE, &archive2)], &key);
        check_now(&w, UpdateState::Ready, "timb 0.2.0 is ready");
        let installed = (
            layout.installed("0.2.0"),
            layout.current().unwrap(),
            layout.previous().unwrap(),
        );
        on_ui(&w, |w| {
            find(w, "Restart to update", AccessibleRole::Button).invoke_accessible_default_action()
        });
        installed
    });
    assert_eq!(
        installed,
        (true, Some("0.2.0".to_string()), Some("0.1.0".to_string()))
    );
    // "Restart to update" started the bundle's launcher and ended the window's loop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !root.join("launcher-started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the launcher was not started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read(root.join("profile/otr/keys")).unwrap(),
        b"otr key",
        "the profile changed"
    );
    drop(app);
    drop(window);
}
