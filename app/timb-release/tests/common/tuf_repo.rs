//! Test-only TUF repositories built in Rust, signed with ed25519 keys made for each test, so
//! that every attack variant can be written and re-signed. (The crate holds no secret key;
//! ring signs here only.) Canonical JSON comes from the crate itself, which
//! `tuf_interop.rs` checks against the reference implementation.
// Included by several test binaries (`#[path]`), each using part of it.
#![allow(dead_code)]

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Map, Value};
use sha2::Digest;
use timb_release::tuf::{canonical_json, parse_time, TrustedSet};

pub const FAR: &str = "2100-01-01T00:00:00Z";
pub const PAST: &str = "2020-01-01T00:00:00Z";

/// The fixed reference time of the tests.
pub fn now() -> i64 {
    parse_time("2026-12-01T00:00:00Z").unwrap()
}

pub struct Key {
    pair: Ed25519KeyPair,
    pub id: String,
}

impl Key {
    pub fn new(id: &str) -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key {
            pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
            id: id.to_string(),
        }
    }

    /// The same key under another key id.
    pub fn alias(&self, id: &str) -> KeyRef<'_> {
        KeyRef {
            key: self,
            id: id.to_string(),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "keytype": "ed25519",
            "scheme": "ed25519",
            "keyval": {"public": hex::encode(self.pair.public_key().as_ref())},
        })
    }

    pub fn sign(&self, signed: &Value) -> Value {
        self.alias(&self.id).sign(signed)
    }
}

pub struct KeyRef<'a> {
    key: &'a Key,
    pub id: String,
}

impl KeyRef<'_> {
    pub fn sign(&self, signed: &Value) -> Value {
        let canonical = canonical_json(signed).unwrap();
        json!({"keyid": self.id, "sig": hex::encode(self.key.pair.sign(&canonical).as_ref())})
    }
}

/// `{"signed": signed, "signatures": sigs}` as compact JSON bytes.
pub fn envelope(signed: &Value, sigs: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"signed": signed, "signatures": sigs})).unwrap()
}

pub fn sign_all(signed: &Value, keys: &[&Key]) -> Vec<u8> {
    envelope(signed, keys.iter().map(|k| k.sign(signed)).collect())
}

pub fn hashes(data: &[u8]) -> Value {
    json!({
        "sha256": hex::encode(sha2::Sha256::digest(data)),
        "sha512": hex::encode(sha2::Sha512::digest(data)),
    })
}

pub fn timb(version: &str, target: &str, channel: &str) -> Value {
    json!({"timb": {"version": version, "target": target, "channel": channel}})
}

/// One role's keys and threshold.
pub struct RoleKeys {
    pub keys: Vec<Key>,
    pub threshold: u64,
}

impl RoleKeys {
    pub fn one(name: &str) -> RoleKeys {
        RoleKeys {
            keys: vec![Key::new(&format!("{name}-1"))],
            threshold: 1,
        }
    }

    pub fn refs(&self) -> Vec<&Key> {
        self.keys.iter().collect()
    }
}

/// A repository's state: keys, versions, expiries, targets. Each `*_bytes` signs with all
/// of the role's keys.
pub struct Repo {
    pub root: RoleKeys,
    pub timestamp: RoleKeys,
    pub snapshot: RoleKeys,
    pub targets: RoleKeys,
    pub root_version: u64,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    pub targets_version: u64,
    pub root_expires: String,
    pub timestamp_expires: String,
    pub snapshot_expires: String,
    pub targets_expires: String,
    pub target_files: Map<String, Value>,
    pub delegations: Option<Value>,
    /// Whether timestamp and snapshot list lengths and hashes.
    pub list_hashes: bool,
}

pub const BUNDLE: &str = "timb-0.2.0-linux-x86_64.tar.xz";
pub const BUNDLE_DATA: &[u8] = b"the 0.2.0 bundle";

impl Repo {
    pub fn new() -> Repo {
        let mut r = Repo {
            root: RoleKeys::one("root"),
            timestamp: RoleKeys::one("timestamp"),
            snapshot: RoleKeys::one("snapshot"),
            targets: RoleKeys::one("targets"),
            root_version: 1,
            timestamp_version: 1,
            snapshot_version: 1,
            targets_version: 1,
            root_expires: FAR.into(),
            timestamp_expires: FAR.into(),
            snapshot_expires: FAR.into(),
            targets_expires: FAR.into(),
            target_files: Map::new(),
            delegations: None,
            list_hashes: true,
        };
        r.add_target(BUNDLE, BUNDLE_DATA, timb("0.2.0", "linux-x86_64", "stable"));
        r
    }

    pub fn add_target(&mut self, name: &str, data: &[u8], custom: Value) {
        self.target_files.insert(
            name.into(),
            json!({"length": data.len(), "hashes": hashes(data), "custom": custom}),
        );
    }

    pub fn root_signed(&self) -> Value {
        let mut keys = Map::new();
        let mut roles = Map::new();
        for (name, role) in [
            ("root", &self.root),
            ("timestamp", &self.timestamp),
            ("snapshot", &self.snapshot),
            ("targets", &self.targets),
        ] {
            for k in &role.keys {
                keys.insert(k.id.clone(), k.json());
            }
            let ids: Vec<&str> = role.keys.iter().map(|k| k.id.as_str()).collect();
            roles.insert(
                name.into(),
                json!({"keyids": ids, "threshold": role.threshold}),
            );
        }
        json!({
            "_type": "root", "spec_version": "1.0.31", "version": self.root_version,
            "expires": self.root_expires, "consistent_snapshot": true,
            "keys": keys, "roles": roles,
        })
    }

    pub fn root_bytes(&self) -> Vec<u8> {
        sign_all(&self.root_signed(), &self.root.refs())
    }

    pub fn targets_signed(&self) -> Value {
        let mut t = json!({
            "_type": "targets", "spec_version": "1.0.31", "version": self.targets_version,
            "expires": self.targets_expires, "targets": self.target_files,
        });
        if let Some(d) = &self.delegations {
            t["delegations"] = d.clone();
        }
        t
    }

    pub fn targets_bytes(&self) -> Vec<u8> {
        sign_all(&self.targets_signed(), &self.targets.refs())
    }

    fn meta(&self, version: u64, data: &[u8]) -> Value {
        if self.list_hashes {
            json!({"version": version, "length": data.len(), "hashes": hashes(data)})
        } else {
            json!({"version": version})
        }
    }

    pub fn snapshot_signed(&self, targets: &[u8]) -> Value {
        json!({
            "_type": "snapshot", "spec_version": "1.0.31", "version": self.snapshot_version,
            "expires": self.snapshot_expires,
            "meta": {"targets.json": self.meta(self.targets_version, targets)},
        })
    }

    pub fn snapshot_bytes(&self, targets: &[u8]) -> Vec<u8> {
        sign_all(&self.snapshot_signed(targets), &self.snapshot.refs())
    }

    pub fn timestamp_signed(&self, snapshot: &[u8]) -> Value {
        json!({
            "_type": "timestamp", "spec_version": "1.0.31", "version": self.timestamp_version,
            "expires": self.timestamp_expires,
            "meta": {"snapshot.json": self.meta(self.snapshot_version, snapshot)},
        })
    }

    pub fn timestamp_bytes(&self, snapshot: &[u8]) -> Vec<u8> {
        sign_all(&self.timestamp_signed(snapshot), &self.timestamp.refs())
    }

    /// The four files of the current state.
    pub fn files(&self) -> Files {
        let targets = self.targets_bytes();
        let snapshot = self.snapshot_bytes(&targets);
        let timestamp = self.timestamp_bytes(&snapshot);
        Files {
            root: self.root_bytes(),
            timestamp,
            snapshot,
            targets,
        }
    }
}

#[derive(Clone)]
pub struct Files {
    pub root: Vec<u8>,
    pub timestamp: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub targets: Vec<u8>,
}

impl Files {
    /// A trusted set that took root, timestamp, snapshot and targets.
    pub fn trusted(&self) -> TrustedSet {
        let mut set = TrustedSet::new(&self.root, now()).unwrap();
        set.check_root_current().unwrap();
        set.update_timestamp(&self.timestamp).unwrap();
        set.update_snapshot(&self.snapshot).unwrap();
        set.update_targets(&self.targets).unwrap();
        set
    }
}

/// What a trusted set holds, to show a refused update changed nothing.
pub fn state(set: &TrustedSet) -> (u64, Option<u64>, Option<u64>, Option<u64>) {
    (
        set.root().version,
        set.timestamp().map(|t| t.version),
        set.snapshot().map(|s| s.version),
        set.targets().map(|t| t.version),
    )
}

/// The Python that has the reference implementation: `$TIMB_TUF_PYTHON`, which
/// `cargo xtask test` sets to the venv it provisions from
/// `tuf-interop/requirements.txt`. Without it, `None` and a loud skip, or a failure
/// when `TIMB_REQUIRE_INTEROP=1`. `what` names what goes untested.
pub fn python(what: &str) -> Option<std::path::PathBuf> {
    let why = match std::env::var_os("TIMB_TUF_PYTHON").map(std::path::PathBuf::from) {
        Some(p) if p.exists() => return Some(p),
        Some(p) => format!("no Python at TIMB_TUF_PYTHON={}", p.display()),
        None => "TIMB_TUF_PYTHON is not set (cargo xtask test provisions Python tuf from \
                 app/timb-release/tests/tuf-interop/requirements.txt and sets it)"
            .to_string(),
    };
    if std::env::var("TIMB_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("TIMB_REQUIRE_INTEROP=1 and {why}");
    }
    // Straight to stderr: the test harness captures `eprintln!` of passing tests.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what} not tested: {why}");
    None
}
