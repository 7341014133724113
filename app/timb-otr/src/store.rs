//! Owner-only files for keys, instance tags and verified fingerprints.
//!
//! libotr opens its files with `fopen`, whose mode depends on the process umask; each file
//! is therefore created 0600 before libotr writes it (fopen "w" keeps an existing mode) and
//! re-checked afterwards.
//!
//! On Windows there are no modes: files take the ACL of the folder they are in (the user's
//! own folder where the bundle was unpacked grants only that user, SYSTEM and the
//! administrators; a FAT-formatted USB stick has no ACLs at all). README says so.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::OtrError;

pub(crate) struct Paths {
    pub dir: PathBuf,
    pub privkey: PathBuf,
    pub instags: PathBuf,
    pub fingerprints: PathBuf,
    /// For a store in memory: the anonymous in-memory files the paths name
    /// (`/proc/self/fd/N`); they vanish with the process and are never on a disk.
    memory: Vec<fs::File>,
}

impl Paths {
    pub fn new(dir: &Path) -> Result<Paths, OtrError> {
        fs::create_dir_all(dir).map_err(storage)?;
        #[cfg(unix)]
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(storage)?;
        Ok(Paths {
            dir: dir.to_path_buf(),
            privkey: dir.join("otr.private_key"),
            instags: dir.join("otr.instance_tags"),
            fingerprints: dir.join("otr.fingerprints"),
            memory: Vec::new(),
        })
    }

    /// Keys, instance tags and fingerprints in anonymous memory files (Linux `memfd`):
    /// libotr reads and writes them by path like any file, but nothing reaches a disk and
    /// everything is gone when the session (or the process) ends.
    #[cfg(target_os = "linux")]
    pub fn in_memory() -> Result<Paths, OtrError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        extern "C" {
            fn memfd_create(name: *const std::os::raw::c_char, flags: std::os::raw::c_uint) -> i32;
        }
        const MFD_CLOEXEC: std::os::raw::c_uint = 1;
        let mut memory = Vec::new();
        let mut paths = Vec::new();
        for name in [c"otr-key", c"otr-instags", c"otr-fingerprints"] {
            // SAFETY: a valid C string; the returned descriptor is owned by the File below.
            let fd = unsafe { memfd_create(name.as_ptr(), MFD_CLOEXEC) };
            if fd < 0 {
                return Err(storage(std::io::Error::last_os_error()));
            }
            // SAFETY: a fresh descriptor nothing else owns.
            let f = unsafe { fs::File::from_raw_fd(fd) };
            paths.push(PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())));
            memory.push(f);
        }
        let fingerprints = paths.pop().unwrap_or_default();
        let instags = paths.pop().unwrap_or_default();
        let privkey = paths.pop().unwrap_or_default();
        Ok(Paths {
            dir: PathBuf::new(),
            privkey,
            instags,
            fingerprints,
            memory,
        })
    }

    /// Elsewhere there is no anonymous file libotr could open by path, and a temporary
    /// file would reach the disk: keys kept only in memory are refused rather than faked.
    #[cfg(not(target_os = "linux"))]
    pub fn in_memory() -> Result<Paths, OtrError> {
        Err(OtrError::Storage(
            "keeping OTR keys only in memory is available on Linux only".into(),
        ))
    }

    pub fn in_memory_store(&self) -> bool {
        !self.memory.is_empty()
    }

    /// Replaces the verified-fingerprints file with `contents`.
    pub fn write_fingerprints(&self, contents: &[u8]) -> Result<(), OtrError> {
        match self.memory.last() {
            Some(mut f) => {
                use std::io::{Seek, SeekFrom};
                f.set_len(0).map_err(storage)?;
                f.seek(SeekFrom::Start(0)).map_err(storage)?;
                f.write_all(contents).map_err(storage)
            }
            None => write_private(&self.fingerprints, contents),
        }
    }
}

pub(crate) fn storage(e: std::io::Error) -> OtrError {
    OtrError::Storage(e.kind().to_string())
}

/// Creates `path` 0600 if missing and forces 0600 if present, so libotr's write keeps it.
pub(crate) fn prepare_private_file(path: &Path) -> Result<CString, OtrError> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path).map_err(storage)?;
    #[cfg(unix)]
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(storage)?;
    path_cstring(path)
}

#[cfg(unix)]
pub(crate) fn path_cstring(path: &Path) -> Result<CString, OtrError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| OtrError::Storage("path".into()))
}

/// libotr's `fopen` takes the path in the process's ANSI code page, which the Windows
/// build's manifest sets to UTF-8 (`activeCodePage`), so any Unicode profile path works; a
/// path that is not Unicode is refused here.
#[cfg(windows)]
pub(crate) fn path_cstring(path: &Path) -> Result<CString, OtrError> {
    let text = path
        .to_str()
        .ok_or_else(|| OtrError::Storage("the profile path is not valid Unicode".into()))?;
    CString::new(text).map_err(|_| OtrError::Storage("path".into()))
}

/// Replaces `path` atomically with `contents`, owner-only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), OtrError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(&tmp).map_err(storage)?;
    f.write_all(contents).map_err(storage)?;
    f.sync_all().map_err(storage)?;
    fs::rename(&tmp, path).map_err(storage)
}
