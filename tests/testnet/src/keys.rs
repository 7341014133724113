//! A cache of relay and authority keys, so starting a network does not spend
//! ~6 CPU-seconds on RSA key generation every time (on a loaded 2-core machine
//! that is 10-20 s of wall time). Keys are bound to a nickname, not to ports,
//! so any number of networks may use the same cached identities at once: each
//! network's daemons only ever talk to that network's ports.
//!
//! These are throwaway test keys. `TIMB_TESTNET_NO_KEY_CACHE` disables the
//! cache; `TIMB_TESTNET_KEY_CACHE` moves it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const COMPLETE: &str = "complete";
/// Well inside the authority certificates' 12 months; tor renews the
/// ed25519 signing certificate itself from the cached master key.
const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
const FILES: [&str; 2] = ["fingerprint", "fingerprint-ed25519"];

pub(crate) fn cache_root() -> Option<PathBuf> {
    if std::env::var_os("TIMB_TESTNET_NO_KEY_CACHE").is_some() {
        return None;
    }
    Some(match std::env::var_os("TIMB_TESTNET_KEY_CACHE") {
        Some(p) => PathBuf::from(p),
        None => std::env::temp_dir().join("timb-testnet-keys-v1"),
    })
}

fn fresh(entry: &Path) -> bool {
    std::fs::metadata(entry.join(COMPLETE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < MAX_AGE)
}

fn copy_dir_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Copies the cached keys of `nickname` into the data directory `dest`
/// (whose `keys/` exists). False if there are none or copying failed.
pub(crate) fn restore(root: &Path, nickname: &str, dest: &Path) -> bool {
    let entry = root.join(nickname);
    if !fresh(&entry) {
        return false;
    }
    let copied = copy_dir_files(&entry.join("keys"), &dest.join("keys")).and_then(|()| {
        for f in FILES {
            std::fs::copy(entry.join(f), dest.join(f))?;
        }
        Ok(())
    });
    if copied.is_err() {
        // Half a key set is worse than none: let the caller generate afresh.
        let _ = std::fs::remove_dir_all(dest.join("keys"));
        let _ = std::fs::create_dir_all(dest.join("keys"));
        return false;
    }
    true
}

/// Stores freshly generated keys from the data directory `src`. Best effort:
/// a failure only means the next start generates keys again.
pub(crate) fn store(root: &Path, nickname: &str, src: &Path) {
    let tmp = root.join(format!(
        ".tmp-{nickname}-{}-{:x}",
        std::process::id(),
        crate::nanos()
    ));
    let result = (|| -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(tmp.join("keys"))?;
        copy_dir_files(&src.join("keys"), &tmp.join("keys"))?;
        for f in FILES {
            std::fs::copy(src.join(f), tmp.join(f))?;
        }
        std::fs::write(tmp.join(COMPLETE), "")?;
        let entry = root.join(nickname);
        if entry.exists() && !fresh(&entry) {
            let old = root.join(format!(".old-{nickname}-{:x}", crate::nanos()));
            std::fs::rename(&entry, &old)?;
            let _ = std::fs::remove_dir_all(&old);
        }
        // Fails if another process stored this nickname meanwhile; fine.
        std::fs::rename(&tmp, &entry)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_restore_round_trips() {
        let base = std::env::temp_dir().join(format!("timb-testnet-keys-unit-{}", crate::nanos()));
        let src = base.join("src");
        std::fs::create_dir_all(src.join("keys")).unwrap();
        std::fs::write(src.join("keys/secret_id_key"), "k").unwrap();
        std::fs::write(src.join("fingerprint"), "n AAAA").unwrap();
        std::fs::write(src.join("fingerprint-ed25519"), "n bbbb").unwrap();
        let root = base.join("cache");
        let dest = base.join("dest");
        std::fs::create_dir_all(dest.join("keys")).unwrap();
        assert!(!restore(&root, "relay0", &dest), "empty cache");
        store(&root, "relay0", &src);
        assert!(restore(&root, "relay0", &dest));
        assert_eq!(
            std::fs::read_to_string(dest.join("keys/secret_id_key")).unwrap(),
            "k"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("fingerprint")).unwrap(),
            "n AAAA"
        );
        // An incomplete entry is not used.
        std::fs::remove_file(root.join("relay0").join(COMPLETE)).unwrap();
        assert!(!restore(&root, "relay0", &dest));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
