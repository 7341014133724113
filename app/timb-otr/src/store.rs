//! Owner-only files for keys, instance tags and verified fingerprints.
//!
//! libotr opens its files with `fopen`, whose mode depends on the process umask; each file
//! is therefore created 0600 before libotr writes it (fopen "w" keeps an existing mode) and
//! re-checked afterwards.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::OtrError;

pub(crate) struct Paths {
    pub dir: PathBuf,
    pub privkey: PathBuf,
    pub instags: PathBuf,
    pub fingerprints: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Result<Paths, OtrError> {
        fs::create_dir_all(dir).map_err(storage)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(storage)?;
        Ok(Paths {
            dir: dir.to_path_buf(),
            privkey: dir.join("otr.private_key"),
            instags: dir.join("otr.instance_tags"),
            fingerprints: dir.join("otr.fingerprints"),
        })
    }
}

pub(crate) fn storage(e: std::io::Error) -> OtrError {
    OtrError::Storage(e.kind().to_string())
}

/// Creates `path` 0600 if missing and forces 0600 if present, so libotr's write keeps it.
pub(crate) fn prepare_private_file(path: &Path) -> Result<CString, OtrError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(storage)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(storage)?;
    path_cstring(path)
}

pub(crate) fn path_cstring(path: &Path) -> Result<CString, OtrError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| OtrError::Storage("path".into()))
}

/// Replaces `path` atomically with `contents`, owner-only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), OtrError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(storage)?;
    f.write_all(contents).map_err(storage)?;
    f.sync_all().map_err(storage)?;
    fs::rename(&tmp, path).map_err(storage)
}
