//! The trusted metadata between runs (rollback protection needs it): `root.json`,
//! `timestamp.json`, `snapshot.json` and `targets.json` in the bundle's state folder.
//!
//! Every write is temp file → fsync(file) → rename → fsync(folder), so after a crash each
//! file is either the old bytes or the new ones, never a truncated mix: rename is atomic on
//! the file systems timb runs on, and the folder's fsync makes the rename itself durable.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use timb_release::tuf::RoleName;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the update state folder cannot be used ({action}): {source}")]
    Io {
        action: &'static str,
        source: std::io::Error,
    },
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { action, source }
}

/// Where a write is, for the test client's crash hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Half of the new bytes are in the temp file.
    HalfWritten(RoleName),
    /// The temp file is complete and synced, not yet renamed.
    BeforeRename(RoleName),
    /// Renamed, the folder not yet synced.
    BeforeFolderSync(RoleName),
    /// A trusted file is about to be deleted.
    BeforeDelete(RoleName),
}

/// Called at each [`WriteStep`]; only the test client sets one (to crash there).
pub type WriteHook = Box<dyn Fn(WriteStep) + Send + Sync>;

pub struct Store {
    dir: PathBuf,
    hook: Option<WriteHook>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn file_name(role: RoleName) -> String {
    format!("{}.json", role.as_str())
}

impl Store {
    /// Opens (creating it owner-only if needed) the state folder; temp files a crash left
    /// are removed, they were never trusted.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        timb_launcher::create_private_dir(dir).map_err(io("creating the folder"))?;
        for role in RoleName::ALL {
            let tmp = dir.join(format!(".{}.tmp", file_name(role)));
            if let Err(e) = std::fs::remove_file(&tmp) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(io("removing a temp file")(e));
                }
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            hook: None,
        })
    }

    /// Sets the hook called at each write step (the test client's crash injection).
    pub fn set_write_hook(&mut self, hook: WriteHook) {
        self.hook = Some(hook);
    }

    fn step(&self, s: WriteStep) {
        if let Some(h) = &self.hook {
            h(s);
        }
    }

    pub fn path(&self, role: RoleName) -> PathBuf {
        self.dir.join(file_name(role))
    }

    /// The trusted bytes of `role`, if any. Larger than the role's cap reads as too large
    /// (TUF refuses it) without reading it all.
    pub fn read(&self, role: RoleName) -> Result<Option<Vec<u8>>, StoreError> {
        let f = match File::open(self.path(role)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading")(e)),
        };
        let cap = u64::try_from(role.max_size()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, cap + 1), &mut out)
            .map_err(io("reading"))?;
        Ok(Some(out))
    }

    /// Replaces `role`'s trusted bytes, crash-safely (see the module doc).
    pub fn write(&self, role: RoleName, bytes: &[u8]) -> Result<(), StoreError> {
        if self.read(role)?.as_deref() == Some(bytes) {
            return Ok(());
        }
        let tmp = self.dir.join(format!(".{}.tmp", file_name(role)));
        let mut f = create_private_file(&tmp).map_err(io("writing a temp file"))?;
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half])
            .map_err(io("writing a temp file"))?;
        self.step(WriteStep::HalfWritten(role));
        f.write_all(&bytes[half..])
            .and_then(|()| f.sync_all())
            .map_err(io("writing a temp file"))?;
        drop(f);
        self.step(WriteStep::BeforeRename(role));
        std::fs::rename(&tmp, self.path(role)).map_err(io("renaming a temp file"))?;
        self.step(WriteStep::BeforeFolderSync(role));
        sync_dir(&self.dir)
    }

    /// Deletes `role`'s trusted file (fast-forward recovery, or a local file that no longer
    /// verifies).
    pub fn delete(&self, role: RoleName) -> Result<(), StoreError> {
        self.step(WriteStep::BeforeDelete(role));
        match std::fs::remove_file(self.path(role)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting")(e)),
        }
    }
}

/// Makes a rename or delete in `dir` durable (timb-launcher's, which the bundle layout
/// uses too; a no-op on Windows, whose renames are durable once they return).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    timb_launcher::sync_dir(dir).map_err(io("syncing the folder"))
}

pub(crate) fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_leave_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.read(RoleName::Root).unwrap(), None);
        s.write(RoleName::Root, b"one").unwrap();
        s.write(RoleName::Root, b"two").unwrap();
        assert_eq!(s.read(RoleName::Root).unwrap().unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["root.json"]);
        s.delete(RoleName::Root).unwrap();
        s.delete(RoleName::Root).unwrap();
        assert_eq!(s.read(RoleName::Root).unwrap(), None);
    }

    #[test]
    fn a_leftover_temp_file_is_removed_on_open() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".snapshot.json.tmp"), b"half").unwrap();
        Store::open(d.path()).unwrap();
        assert!(!d.path().join(".snapshot.json.tmp").exists());
    }
}
