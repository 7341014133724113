//! The test client against repositories that the reference implementation (Python `tuf`)
//! wrote and signed (`app/timb-release/tests/tuf-interop/make_repos.py`), served over
//! loopback HTTP: ed25519, ECDSA/RSA roles, a root rotated twice, and a frozen timestamp.
//! The interpreter is `$TIMB_TUF_PYTHON` (see `tuf_repo::python`); without it the tests are
//! skipped loudly, or fail when `TIMB_REQUIRE_INTEROP=1`.

mod support;

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{client, run, Server};

fn python() -> Option<PathBuf> {
    support::tuf_repo::python("the updater against Python tuf repositories")
}

/// The repositories, served; their manifest.
fn repos() -> Option<(tempfile::TempDir, Server, serde_json::Value)> {
    let py = python()?;
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../app/timb-release/tests/tuf-interop/make_repos.py");
    let out = Command::new(py).arg(script).arg(&www).output().unwrap();
    assert!(
        out.status.success(),
        "make_repos.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest =
        serde_json::from_slice(&std::fs::read(www.join("manifest.json")).unwrap()).unwrap();
    let server = Server::start(&www);
    Some((dir, server, manifest))
}

fn init(dir: &Path, server_root: &Path, name: &str) -> PathBuf {
    let store = dir.join(format!("store-{name}"));
    let r = run(client()
        .arg("--metadata-dir")
        .arg(&store)
        .arg("init")
        .arg(server_root.join(name).join("metadata/1.root.json")));
    assert!(r.ok, "{}", r.stderr);
    store
}

#[test]
fn python_tuf_repositories_refresh_and_every_target_downloads() {
    let Some((dir, server, manifest)) = repos() else {
        return;
    };
    for name in ["ed25519", "ecdsa-rsa", "rotated"] {
        let store = init(dir.path(), &server.root, name);
        let out = dir.path().join(format!("out-{name}"));
        let r = run(client()
            .arg("--metadata-dir")
            .arg(&store)
            .arg("--metadata-url")
            .arg(server.url(&format!("{name}/metadata")))
            .arg("refresh"));
        assert!(r.ok, "{name}: {}", r.stderr);
        let root: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.join("root.json")).unwrap()).unwrap();
        assert_eq!(
            root["signed"]["version"], manifest[name]["root_version"],
            "{name}"
        );
        for (target, want) in manifest[name]["targets"].as_object().unwrap() {
            let r = run(client()
                .arg("--metadata-dir")
                .arg(&store)
                .arg("--target-name")
                .arg(target)
                .arg("--target-base-url")
                .arg(server.url(&format!("{name}/targets")))
                .arg("--target-dir")
                .arg(&out)
                .arg("download"));
            assert!(r.ok, "{name} {target}: {}", r.stderr);
            let data = std::fs::read(out.join(target)).unwrap();
            assert_eq!(data.len() as u64, want["length"].as_u64().unwrap());
            assert_eq!(
                hex::encode(sha2::Sha256::digest(&data)),
                want["hashes"]["sha256"].as_str().unwrap(),
                "{name} {target}"
            );
        }
    }
}

#[test]
fn a_python_tuf_repository_with_an_expired_timestamp_is_refused() {
    let Some((dir, server, _)) = repos() else {
        return;
    };
    let store = init(dir.path(), &server.root, "expired-timestamp");
    let r = run(client()
        .arg("--metadata-dir")
        .arg(&store)
        .arg("--metadata-url")
        .arg(server.url("expired-timestamp/metadata"))
        .arg("refresh"));
    assert!(!r.ok);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
    assert!(!store.join("timestamp.json").exists());
}
