//! `cargo xtask release` end to end, through the real command line: keys made and sealed,
//! a repository started, a release's bundles published, the timestamp re-signed, every
//! role's keys rotated; after each step the reference implementation's client (Python
//! `tuf` ngclient) refreshes from the folder and downloads every bundle.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSWORD: &str = "test password";

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["release"])
        .args(args)
        .env("TIMB_RELEASE_KEY_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = xtask(args);
    assert!(
        out.status.success(),
        "release {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str], expect: &str) {
    let out = xtask(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "release {args:?} succeeded");
    assert!(err.contains(expect), "expected {expect:?} in:\n{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `sha256sums.txt` over the archives in `rel` and the signatures over it of the
/// builders numbered `by` (of three made once, in `signing/keys/`, which a policy with
/// threshold 2 lists); any earlier builder signatures are removed. Returns `signing`.
fn vouch(rel: &Path, signing: &Path, by: &[usize]) -> PathBuf {
    use timb_release::builders::{signature_file, BuilderComment, PUBLISHED_SUMS_FILE};
    let mut sums = timb_release::Sums::new();
    let mut archives: Vec<PathBuf> = std::fs::read_dir(rel)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    archives.sort();
    for a in &archives {
        let name = a.file_name().unwrap().to_str().unwrap();
        if name.starts_with("timb-") && !name.ends_with(".minisig") {
            sums.add(name, timb_release::Sha256::of(&std::fs::read(a).unwrap()))
                .unwrap();
        }
        if name.contains(".builder-") {
            std::fs::remove_file(a).unwrap();
        }
    }
    let sums = sums.to_string();
    std::fs::write(rel.join(PUBLISHED_SUMS_FILE), &sums).unwrap();
    let keys = signing.join("keys");
    if !keys.is_dir() {
        std::fs::create_dir_all(&keys).unwrap();
        let mut ids = Vec::new();
        for i in 0..3 {
            let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
            let text = kp.pk.to_box().unwrap().to_string();
            ids.push(format!(
                "\"{}\"",
                timb_release::PublicKey::parse(&text).unwrap().id()
            ));
            std::fs::write(keys.join(format!("builder-{i}.pub")), text).unwrap();
            // Raw (a test's key; not a format timb reads).
            std::fs::write(keys.join(format!("builder-{i}.secret")), kp.sk.to_bytes()).unwrap();
        }
        std::fs::write(
            signing.join("policy.toml"),
            format!(
                "[bundle]\nkeys = []\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = [{}]\nthreshold = 2\n",
                ids.join(", ")
            ),
        )
        .unwrap();
    }
    for &i in by {
        let raw = std::fs::read(keys.join(format!("builder-{i}.secret"))).unwrap();
        let sk = minisign::SecretKey::from_bytes(&raw).unwrap();
        let name = format!("builder-{i}");
        let comment = BuilderComment::new(
            &name,
            "0.2.0".parse().unwrap(),
            &timb_release::SourceCommit::Exact("ab".repeat(20)),
            PUBLISHED_SUMS_FILE,
            timb_release::Sha256::of(sums.as_bytes()),
        )
        .unwrap();
        let sig =
            minisign::sign(None, &sk, sums.as_bytes(), Some(&comment.to_string()), None).unwrap();
        std::fs::write(
            rel.join(signature_file(PUBLISHED_SUMS_FILE, &name)),
            sig.to_string(),
        )
        .unwrap();
    }
    signing.to_path_buf()
}

/// A role key made by `release keygen` (a low scrypt cost: tests only).
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let id = ok(&["keygen", "--out", s(&key), "--kdf-log-n", "10"]);
    assert_eq!(id.trim().len(), 64, "a key id: {id}");
    key
}

fn roles_file(dir: &Path, file: &str, roles: &[(&str, &[&str], u64)]) -> PathBuf {
    let mut text = String::new();
    for (role, keys, threshold) in roles {
        let list: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{k}.key.pub.json\""))
            .collect();
        text += &format!(
            "[{role}]\nthreshold = {threshold}\nkeys = [{}]\n\n",
            list.join(", ")
        );
    }
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

fn python() -> Option<PathBuf> {
    match std::env::var_os("TIMB_TUF_PYTHON").map(PathBuf::from) {
        Some(p) if p.exists() => Some(p),
        _ if std::env::var("TIMB_REQUIRE_INTEROP").as_deref() == Ok("1") => {
            panic!("TIMB_REQUIRE_INTEROP=1 but TIMB_TUF_PYTHON names no Python")
        }
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: Python tuf ngclient against an xtask-published repository \
                 (TIMB_TUF_PYTHON is not set; cargo xtask test sets it)"
            );
            None
        }
    }
}

/// The reference client refreshes from `repo` (a fresh client trusting only 1.root.json)
/// and downloads `targets`; returns their sha256 as it computed them.
fn ngclient(repo: &Path, work: &Path, targets: &[&str]) -> Option<Value> {
    let py = python()?;
    let _ = std::fs::remove_dir_all(work);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../app/timb-release/tests/tuf-interop/ngclient_refresh.py");
    let out = Command::new(py)
        .arg(script)
        .arg(repo)
        .arg(work)
        .args(targets)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ngclient refused the published repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn publish_resign_rotate_and_the_reference_client_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for k in ["root-1", "root-2", "targets-1", "snapshot-1", "timestamp-1"] {
        keygen(&keys, k);
    }
    // Sealed, and owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(keys.join("root-1.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let roles = roles_file(
        &keys,
        "roles.toml",
        &[
            ("root", &["root-1", "root-2"], 2),
            ("targets", &["targets-1"], 1),
            ("snapshot", &["snapshot-1"], 1),
            ("timestamp", &["timestamp-1"], 1),
        ],
    );
    let repo = d.join("repo");
    let key = |k: &str| keys.join(format!("{k}.key")).to_str().unwrap().to_owned();
    let mut all: Vec<String> = Vec::new();
    for k in ["root-1", "root-2", "targets-1", "snapshot-1", "timestamp-1"] {
        all.extend(["--key".to_owned(), key(k)]);
    }
    let with = |cmd: &[&str], ks: &[String]| -> Vec<String> {
        cmd.iter()
            .map(|s| s.to_string())
            .chain(ks.iter().cloned())
            .collect()
    };
    let run = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Below the root threshold (one of two root keys): refused, nothing written.
    let one_root: Vec<String> = ["root-1", "targets-1", "snapshot-1", "timestamp-1"]
        .iter()
        .flat_map(|k| ["--key".to_owned(), key(k)])
        .collect();
    let args = with(
        &["init", "--repo", s(&repo), "--roles", s(&roles)],
        &one_root,
    );
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "the threshold is 2",
    );
    assert!(!repo.join("metadata/root.json").exists());
    run(with(
        &["init", "--repo", s(&repo), "--roles", s(&roles)],
        &all,
    ));
    if let Some(got) = ngclient(&repo, &d.join("c0"), &[]) {
        assert_eq!(got, serde_json::json!({}));
    }

    // The channel bundles ship: the current root and the mirrors, onion first.
    let onion = "http://timbupdatexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion/";
    let clearnet = "https://updates.example.org/timb/";
    let ch = d.join("channel");
    fails(
        &[
            "channel",
            "--repo",
            s(&repo),
            "--out",
            s(&ch),
            "--mirror",
            clearnet,
            "--mirror",
            onion,
        ],
        "onion mirrors go first",
    );
    assert!(!ch.exists());
    ok(&[
        "channel",
        "--repo",
        s(&repo),
        "--out",
        s(&ch),
        "--mirror",
        onion,
        "--mirror",
        clearnet,
    ]);
    assert_eq!(
        std::fs::read(ch.join("root.json")).unwrap(),
        std::fs::read(repo.join("metadata/root.json")).unwrap()
    );
    let shipped = timb_release::tuf::ShippedChannel::parse(
        &std::fs::read_to_string(ch.join("channel.toml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (shipped.channel.as_str(), &shipped.mirrors[..]),
        ("stable", &[onion.to_string(), clearnet.to_string()][..])
    );
    fails(
        &[
            "channel",
            "--repo",
            s(&d.join("nothing")),
            "--out",
            s(&ch),
            "--mirror",
            onion,
        ],
        "is it a repository?",
    );

    // A release: two bundles with their signatures.
    let rel = d.join("release");
    std::fs::create_dir_all(&rel).unwrap();
    let mut names = Vec::new();
    for (name, data) in [
        ("timb-0.2.0-linux-x86_64.tar.xz", b"linux bundle".as_slice()),
        (
            "timb-0.2.0-windows-x86_64.zip",
            b"windows bundle".as_slice(),
        ),
    ] {
        std::fs::write(rel.join(name), data).unwrap();
        std::fs::write(rel.join(format!("{name}.minisig")), b"sig").unwrap();
        names.push((name, sha256(data)));
    }
    let nosig = d.join("nosig/timb-0.2.0-linux-x86_64.tar.xz");
    std::fs::create_dir_all(nosig.parent().unwrap()).unwrap();
    std::fs::write(&nosig, b"x").unwrap();
    let args = with(&["add", "--repo", s(&repo), s(&nosig)], &all);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "no minisign signature",
    );
    let archives: Vec<String> = names
        .iter()
        .map(|(n, _)| rel.join(n).to_str().unwrap().to_owned())
        .collect();
    // Its builders (#15): two of three vouch for its sums; one alone is not enough.
    let signing = vouch(&rel, &d.join("signing"), &[0]);
    let mut args = with(
        &[
            "add",
            "--repo",
            s(&repo),
            "--channel",
            "stable",
            "--signing",
            s(&signing),
        ],
        &all,
    );
    args.extend(archives.iter().cloned());
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "vouched for by 1 distinct builder(s)",
    );
    vouch(&rel, &d.join("signing"), &[0, 2]);
    run(args);
    for (n, _) in &names {
        assert!(repo.join(format!("targets/{n}.builders")).is_file());
        assert_eq!(
            std::fs::read(repo.join(format!("targets/{n}.sha256sums"))).unwrap(),
            std::fs::read(rel.join("sha256sums.txt")).unwrap()
        );
    }
    let expected: serde_json::Map<String, Value> = names
        .iter()
        .map(|(n, h)| (n.to_string(), Value::String(h.clone())))
        .collect();
    let targets: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    if let Some(got) = ngclient(&repo, &d.join("c1"), &targets) {
        assert_eq!(got, Value::Object(expected.clone()));
    }
    let published: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/2.targets.json")).unwrap())
            .unwrap();
    assert_eq!(
        published["signed"]["targets"]["timb-0.2.0-windows-x86_64.zip"]["custom"],
        serde_json::json!({"timb": {"version": "0.2.0", "target": "windows-x86_64", "channel": "stable"}})
    );

    // The timestamp alone, with the timestamp key alone; a wrong password is refused.
    let ts = vec!["--key".to_owned(), key("timestamp-1")];
    let before = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "release",
            "timestamp",
            "--repo",
            s(&repo),
            "--key",
            &key("timestamp-1"),
        ])
        .env("TIMB_RELEASE_KEY_PASSWORD", "not it")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    assert_eq!(
        std::fs::read(repo.join("metadata/timestamp.json")).unwrap(),
        before
    );
    run(with(&["timestamp", "--repo", s(&repo)], &ts));
    assert_ne!(
        std::fs::read(repo.join("metadata/timestamp.json")).unwrap(),
        before
    );

    // Rotate every role: new root keys (threshold 1) and new online keys; the new root is
    // signed by both old root keys and the new one.
    for k in ["root-3", "targets-2", "snapshot-2", "timestamp-2"] {
        keygen(&keys, k);
    }
    let new_roles = roles_file(
        &keys,
        "roles-2.toml",
        &[
            ("root", &["root-3"], 1),
            ("targets", &["targets-2"], 1),
            ("snapshot", &["snapshot-2"], 1),
            ("timestamp", &["timestamp-2"], 1),
        ],
    );
    let mut rot = Vec::new();
    for k in [
        "root-1",
        "root-2",
        "root-3",
        "targets-2",
        "snapshot-2",
        "timestamp-2",
    ] {
        rot.extend(["--key".to_owned(), key(k)]);
    }
    run(with(
        &["rotate", "--repo", s(&repo), "--roles", s(&new_roles)],
        &rot,
    ));
    assert!(repo.join("metadata/2.root.json").is_file());
    ok(&["check", "--repo", s(&repo)]);
    if let Some(got) = ngclient(&repo, &d.join("c2"), &targets) {
        assert_eq!(got, Value::Object(expected));
    }
    // The old timestamp key no longer signs anything a client accepts.
    let args = with(&["timestamp", "--repo", s(&repo)], &ts);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "threshold is 1",
    );
}
