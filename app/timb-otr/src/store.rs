//! Owner-only files for keys, instance tags and verified fingerprints.
//!
//! timb opens the files libotr reads and writes (libotr's `*_FILEp` functions; see [`CFile`]
//! for why), each created 0600 before it is opened (fopen "w" keeps an existing mode).
//!
//! On Windows there are no modes: the files inherit the profile folder's access list, which
//! timb sets to the user alone (app/timb/src/profile.rs); a FAT-formatted USB stick has no
//! access lists at all. The bundle's README says so.

use std::fs::{self, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::OtrError;
use libotr_sys as sys;

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

    /// Replaces `path` with what `write` (a libotr `*_FILEp` writer, which writes the whole
    /// file: every key or instance tag) puts in a stream opened for reading and writing
    /// (libotr reads the key file back): a 0600 temp file, closed, synced and
    /// renamed over `path`, so a full disk or a crash leaves the old file, never an empty one.
    /// `write` is not called when the temp file cannot be created; its return value (libotr's
    /// error code) is handed back. A store in memory is rewritten in place.
    pub(crate) fn replace(
        &self,
        path: &Path,
        write: impl FnOnce(*mut sys::FILE) -> sys::gcry_error_t,
    ) -> Result<sys::gcry_error_t, OtrError> {
        if self.in_memory_store() {
            // An anonymous memory file: rewritten in place, nothing reaches a disk.
            let f = CFile::open(path, true)?;
            let err = write(f.as_ptr());
            f.close()?;
            return Ok(err);
        }
        let (tmp, _) = new_private_tmp(path)?;
        let f = CFile::open(&tmp, true)?;
        let err = write(f.as_ptr());
        f.close()?;
        if err != 0 {
            let _ = fs::remove_file(&tmp);
            return Ok(err);
        }
        // Opened for writing: Windows flushes a file only through a writable handle.
        OpenOptions::new()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(storage)?;
        fs::rename(&tmp, path).map_err(storage)?;
        Ok(0)
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

/// Opens `path` for libotr to read, having created it 0600 if missing and forced 0600 if
/// present.
pub(crate) fn open_private_file(path: &Path) -> Result<CFile, OtrError> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path).map_err(storage)?;
    #[cfg(unix)]
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(storage)?;
    CFile::open(path, false)
}

/// A C stdio stream over one of the profile's files, for libotr's `*_FILEp` functions,
/// closed when dropped. timb opens it, not libotr: libotr's path functions call `fopen`,
/// which on Windows reads the path in the ANSI code page, so a profile in a folder named in
/// Arabic or Persian could not be opened there; `_wfopen` takes the path as UTF-16.
pub(crate) struct CFile(*mut sys::FILE);

extern "C" {
    #[cfg(unix)]
    fn fopen(path: *const std::ffi::c_char, mode: *const std::ffi::c_char) -> *mut sys::FILE;
    #[cfg(windows)]
    fn _wfopen(path: *const u16, mode: *const u16) -> *mut sys::FILE;
    fn fclose(f: *mut sys::FILE) -> std::ffi::c_int;
}

impl CFile {
    fn open(path: &Path, write: bool) -> Result<CFile, OtrError> {
        let mode = if write { "w+b" } else { "rb" };
        #[cfg(unix)]
        let f = {
            use std::ffi::CString;
            use std::os::unix::ffi::OsStrExt;
            let c = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| OtrError::Storage("path".into()))?;
            let m = CString::new(mode).map_err(|_| OtrError::Storage("mode".into()))?;
            // SAFETY: two NUL-terminated strings; fopen returns a stream or null.
            unsafe { fopen(c.as_ptr(), m.as_ptr()) }
        };
        #[cfg(windows)]
        let f = {
            use std::os::windows::ffi::OsStrExt;
            let wide = |s: &std::ffi::OsStr| -> Result<Vec<u16>, OtrError> {
                let w: Vec<u16> = s.encode_wide().collect();
                if w.contains(&0) {
                    return Err(OtrError::Storage("path".into()));
                }
                Ok(w.into_iter().chain([0]).collect())
            };
            let (p, m) = (wide(path.as_os_str())?, wide(mode.as_ref())?);
            // SAFETY: two NUL-terminated UTF-16 strings; _wfopen returns a stream or null.
            unsafe { _wfopen(p.as_ptr(), m.as_ptr()) }
        };
        if f.is_null() {
            return Err(storage(std::io::Error::last_os_error()));
        }
        Ok(CFile(f))
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::FILE {
        self.0
    }

    /// Closes a stream that was written, reporting what `fclose` could not flush (a full disk).
    pub(crate) fn close(self) -> Result<(), OtrError> {
        let f = self.0;
        std::mem::forget(self);
        // SAFETY: the stream this CFile opened; forgotten above, so closed once.
        if unsafe { fclose(f) } != 0 {
            return Err(storage(std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for CFile {
    fn drop(&mut self) {
        // SAFETY: a stream this CFile opened and nothing else closes.
        unsafe {
            fclose(self.0);
        }
    }
}

/// `otr.private_key.tmp` for `otr.private_key`: the three files share the stem `otr`, so
/// `with_extension` would give them one temp name.
fn tmp_beside(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A new, empty, owner-only temp file beside `path` (a stale one from a crash is removed).
fn new_private_tmp(path: &Path) -> Result<(std::path::PathBuf, fs::File), OtrError> {
    let tmp = tmp_beside(path);
    let _ = fs::remove_file(&tmp);
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let f = o.open(&tmp).map_err(storage)?;
    Ok((tmp, f))
}

/// Replaces `path` atomically with `contents`, owner-only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), OtrError> {
    let (tmp, mut f) = new_private_tmp(path)?;
    f.write_all(contents).map_err(storage)?;
    f.sync_all().map_err(storage)?;
    fs::rename(&tmp, path).map_err(storage)
}
