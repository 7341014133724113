//! Trust on first use: the first key a server shows is remembered, and any
//! later change is a hard error the user must resolve deliberately.
//!
//! The file holds only `host:port spki-sha256` lines (server identities the
//! user chose to connect to, never contacts or messages), is owner-only, and
//! is rewritten atomically so a crash cannot leave a half-written pin.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{SpkiSha256, TlsError};

/// More than this is not a pin file we wrote; refuse rather than buffer it.
const MAX_FILE: u64 = 1 << 20;

/// One lock for all stores in the process: two accounts may share a file.
static FILE_LOCK: Mutex<()> = Mutex::new(());

type Pins = BTreeMap<String, SpkiSha256>;

#[derive(Debug, Clone)]
pub struct TofuStore {
    path: Arc<PathBuf>,
    /// Pins kept in this process only (an account the user did not ask to remember):
    /// nothing is read from or written to disk.
    memory: Option<Arc<Mutex<Pins>>>,
}

impl TofuStore {
    /// Uses (and creates on first write) the pin file at `path`, normally
    /// `<profile>/tls-tofu.txt`. Tightens permissions of an existing file.
    pub fn open(path: impl Into<PathBuf>) -> Result<TofuStore, TlsError> {
        let path = path.into();
        if path.exists() {
            restrict(&path)?;
            read(&path)?;
        }
        Ok(TofuStore {
            path: Arc::new(path),
            memory: None,
        })
    }

    /// A store that lives in memory only and is gone when the last clone is dropped.
    pub fn in_memory() -> TofuStore {
        TofuStore {
            path: Arc::new(PathBuf::new()),
            memory: Some(Arc::new(Mutex::new(BTreeMap::new()))),
        }
    }

    /// The pin file (empty for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Pins, TlsError> {
        match &self.memory {
            Some(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            None => read(&self.path),
        }
    }

    fn save(&self, map: &Pins) -> Result<(), TlsError> {
        match &self.memory {
            Some(m) => {
                *m.lock().unwrap_or_else(|p| p.into_inner()) = map.clone();
                Ok(())
            }
            None => write(&self.path, map),
        }
    }

    /// The remembered pin for `key` (`host:port`).
    pub fn get(&self, key: &str) -> Result<Option<SpkiSha256>, TlsError> {
        let _guard = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.load()?.get(key).copied())
    }

    /// Records `pin` unless a different one is already there.
    pub(crate) fn record(&self, key: &str, pin: SpkiSha256) -> Result<(), TlsError> {
        let _guard = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.load()?;
        match map.get(key) {
            Some(old) if *old == pin => return Ok(()),
            Some(old) => {
                return Err(TlsError::TofuChanged {
                    host: key.to_owned(),
                    old: old.hex(),
                    new: pin.hex(),
                });
            }
            None => {}
        }
        map.insert(key.to_owned(), pin);
        self.save(&map)
    }

    /// Forgets a server's key. Only for an explicit user decision after
    /// checking the new fingerprint out of band; never called on a mismatch.
    pub fn forget(&self, key: &str) -> Result<bool, TlsError> {
        let _guard = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.load()?;
        let had = map.remove(key).is_some();
        if had {
            self.save(&map)?;
        }
        Ok(had)
    }
}

fn store_err(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::TofuStore(format!("{}: {what}", path.display()))
}

fn read(path: &Path) -> Result<BTreeMap<String, SpkiSha256>, TlsError> {
    let mut map = BTreeMap::new();
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
        Err(e) => return Err(store_err(path, e)),
    };
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| store_err(path, e))?;
    if text.len() as u64 > MAX_FILE {
        return Err(store_err(path, "file is too large"));
    }
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line
            .split_once(' ')
            .and_then(|(k, v)| Some((k, SpkiSha256::from_hex(v.trim())?)));
        let Some((key, pin)) = parsed else {
            // A damaged file must not turn into "first use" for everyone.
            return Err(store_err(path, format!("line {} is damaged", i + 1)));
        };
        map.insert(key.to_owned(), pin);
    }
    Ok(map)
}

fn write(path: &Path, map: &BTreeMap<String, SpkiSha256>) -> Result<(), TlsError> {
    let mut text = String::from("# timb TLS trust-on-first-use pins: host:port spki-sha256\n");
    for (k, v) in map {
        text.push_str(&format!("{k} {v}\n"));
    }
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| store_err(&tmp, e))?;
    restrict(&tmp)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| store_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| store_err(path, e))
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| store_err(path, e))
}

/// Windows has no modes: the file takes the ACL of the profile's folder.
#[cfg(not(unix))]
fn restrict(_: &Path) -> Result<(), TlsError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_refuses_change_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = TofuStore::open(dir.path().join("tofu.txt")).unwrap();
        let (a, b) = (SpkiSha256([1; 32]), SpkiSha256([2; 32]));
        assert_eq!(store.get("h:1").unwrap(), None);
        store.record("h:1", a).unwrap();
        store.record("h:1", a).unwrap();
        match store.record("h:1", b) {
            Err(TlsError::TofuChanged { host, old, new }) => {
                assert_eq!((host.as_str(), old, new), ("h:1", a.hex(), b.hex()));
            }
            other => panic!("{other:?}"),
        }
        store.record("h:2", b).unwrap();
        let reopened = TofuStore::open(store.path()).unwrap();
        assert_eq!(reopened.get("h:1").unwrap(), Some(a));
        assert_eq!(reopened.get("h:2").unwrap(), Some(b));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(reopened.forget("h:1").unwrap());
        assert_eq!(store.get("h:1").unwrap(), None);
    }

    #[test]
    fn in_memory_store_pins_like_a_file_and_writes_nothing() {
        let store = TofuStore::in_memory();
        let (a, b) = (SpkiSha256([1; 32]), SpkiSha256([2; 32]));
        store.record("h:1", a).unwrap();
        let clone = store.clone();
        assert_eq!(clone.get("h:1").unwrap(), Some(a));
        assert!(matches!(
            clone.record("h:1", b),
            Err(TlsError::TofuChanged { .. })
        ));
        assert_eq!(store.path(), Path::new(""));
        assert!(TofuStore::in_memory().get("h:1").unwrap().is_none());
    }

    #[test]
    fn damaged_file_is_an_error_not_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tofu.txt");
        fs::write(&path, "h:1 nothex\n").unwrap();
        assert!(matches!(
            TofuStore::open(&path),
            Err(TlsError::TofuStore(_))
        ));
    }
}
