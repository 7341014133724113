//! Installing a verified bundle archive as a new version of the running bundle
//! (timb-launcher's layout): extract `app/VERSION/` from the archive into a staging folder
//! beside the versions (same file system), fsync, rename it into place, switch the pointer.
//!
//! Call it only with an archive [`Updater::download_update`](crate::Updater::download_update)
//! returned: TUF and minisign vouched for its bytes. The checks here are against archives
//! that are signed but still wrong (a release tool's bug, a compromised build) or damaged on
//! disk: nothing outside the staging folder is written until the archive has been read to
//! its end and every entry passed.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use timb_launcher::{sync_dir, valid_version, Layout, LayoutError, StopHook, APP_DIR, APP_EXE};

/// What an update archive may hold at most. A bundle today is ~30 files and ~60 MB.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_files: u64,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_files: 10_000,
            max_bytes: 1 << 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the update is damaged ({0}); nothing was installed, this version is unchanged")]
    Damaged(String),
    #[error("the update contains {0}, which an update may never contain; nothing was installed")]
    Refused(String),
    #[error("the update unpacks to more than an update may ({0}); nothing was installed")]
    TooBig(String),
    #[error("there is not enough free space to unpack the update; this version is unchanged")]
    DiskFull,
    #[error("the update could not be written ({0}); this version is unchanged")]
    Disk(String),
    #[error("version {0} did not start on this computer before, so it is not installed again; a later version will be")]
    FailedBefore(String),
    #[error("{0}")]
    Layout(#[from] LayoutError),
}

fn disk(e: io::Error) -> ApplyError {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        ApplyError::DiskFull
    } else {
        ApplyError::Disk(e.to_string())
    }
}

fn stop_at(stop: StopHook, what: &str) {
    if let Some(h) = stop {
        h(what);
    }
}

/// Installs `version` from `archive` into `layout` and makes it the one that starts (the old
/// one stays as the fallback). Already installed (a crash after the rename): only the
/// switch. Any failure removes the staging folder and leaves the pointer as it was.
pub fn install(
    layout: &Layout,
    archive: &Path,
    version: &str,
    limits: Limits,
    stop: StopHook,
) -> Result<(), ApplyError> {
    if !valid_version(version) {
        return Err(ApplyError::Refused(format!(
            "a version name that is not one ({:?})",
            version.chars().take(40).collect::<String>()
        )));
    }
    if layout.failed_version().as_deref() == Some(version) {
        return Err(ApplyError::FailedBefore(version.to_string()));
    }
    if !layout.installed(version) {
        let app = layout.app_dir();
        let staging = app.join(format!("{}{version}", timb_launcher::STAGING_PREFIX));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(disk)?;
        }
        stop_at(stop, "staging: creating");
        std::fs::create_dir(&staging).map_err(disk)?;
        if let Err(e) = extract(archive, version, &staging, limits, stop) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        stop_at(stop, "staging: complete, renaming into place");
        let dest = layout.version_dir(version);
        if let Err(e) = std::fs::rename(&staging, &dest) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(disk(e));
        }
        stop_at(stop, "version folder: renamed");
        sync_dir(&app).map_err(disk)?;
        stop_at(stop, "app folder: synced");
    }
    layout.switch_to(version, stop)?;
    Ok(())
}

/// One archive entry as its header describes it, before its bytes are read.
struct Header {
    kind: Kind,
    path: Vec<u8>,
    size: u64,
    exec: bool,
}

/// The kinds an update may hold; the readers refuse every other kind before it gets here.
enum Kind {
    Dir,
    File,
}

/// The format an archive's first bytes name. The running build's target decided which
/// one TUF and minisign vouched for (a `.tar.xz` on Linux, a `.zip` on Windows); the
/// bytes, not the file name, decide how it is read.
enum Format {
    TarXz,
    Zip,
}

/// Reads the first bytes of `f` and rewinds it.
fn format_of(f: &mut std::fs::File) -> Result<Format, ApplyError> {
    use std::io::Seek;
    let mut magic = [0u8; 6];
    f.read_exact(&mut magic)
        .map_err(|_| ApplyError::Damaged("too short to be an archive".into()))?;
    f.rewind().map_err(damaged)?;
    match magic {
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Ok(Format::TarXz),
        [b'P', b'K', 3, 4, ..] => Ok(Format::Zip),
        _ => Err(ApplyError::Damaged("neither a .tar.xz nor a .zip".into())),
    }
}

/// Reads the whole archive: entries under `TOP/app/VERSION/` are written below `staging`,
/// the others (launcher, README, empty profile) only checked.
fn extract(
    archive: &Path,
    version: &str,
    staging: &Path,
    limits: Limits,
    stop: StopHook,
) -> Result<(), ApplyError> {
    let mut u = Unpacker {
        version,
        staging,
        limits,
        stop,
        top: None,
        files: 0,
        bytes: 0,
        dirs: vec![staging.to_path_buf()],
        wrote_any: false,
    };
    let mut f = std::fs::File::open(archive).map_err(damaged)?;
    match format_of(&mut f)? {
        Format::TarXz => each_tar_entry(f, |h, r| u.entry(h, r))?,
        Format::Zip => each_zip_entry(f, |h, r| u.entry(h, r))?,
    }
    u.finish()
}

fn damaged(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Damaged(e.to_string())
}

/// Hands `f` each entry of a `.tar.xz`, in order; links, devices, pipes and sparse files
/// are refused here.
fn each_tar_entry(
    file: std::fs::File,
    mut f: impl FnMut(Header, &mut dyn Read) -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    let mut ar = tar::Archive::new(xz2::read::XzDecoder::new(io::BufReader::new(file)));
    for entry in ar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => return Err(ApplyError::Refused("a symbolic link".into())),
            tar::EntryType::Link => return Err(ApplyError::Refused("a hard link".into())),
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(ApplyError::Refused("a device file".into()))
            }
            tar::EntryType::Fifo => return Err(ApplyError::Refused("a named pipe".into())),
            tar::EntryType::GNUSparse => return Err(ApplyError::Refused("a sparse file".into())),
            other => {
                return Err(ApplyError::Refused(format!(
                    "an entry of an unknown type ({other:?})"
                )))
            }
        };
        let header = Header {
            kind,
            path: entry.path_bytes().into_owned(),
            size: entry.header().size().map_err(damaged)?,
            exec: entry.header().mode().unwrap_or(0) & 0o111 != 0,
        };
        f(header, &mut entry)?;
    }
    Ok(())
}

/// Hands `f` each entry of a `.zip`, in central-directory order; symbolic links (a Unix
/// mode inside the zip) and encrypted entries are refused, and only stored or deflated
/// data is read (the crate's reader checks each file's CRC-32 at its end).
fn each_zip_entry(
    file: std::fs::File,
    mut f: impl FnMut(Header, &mut dyn Read) -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    let mut ar = zip::ZipArchive::new(io::BufReader::new(file)).map_err(damaged)?;
    for i in 0..ar.len() {
        let meta = ar.by_index_raw(i).map_err(damaged)?;
        if meta.encrypted() {
            return Err(ApplyError::Refused("an encrypted file".into()));
        }
        if meta.is_symlink() {
            return Err(ApplyError::Refused("a symbolic link".into()));
        }
        if !matches!(
            meta.compression(),
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
        ) {
            return Err(ApplyError::Damaged(format!(
                "a file compressed with {}",
                meta.compression()
            )));
        }
        drop(meta);
        let mut entry = ar.by_index(i).map_err(damaged)?;
        let header = Header {
            kind: if entry.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            },
            path: entry.name_raw().to_vec(),
            size: entry.size(),
            exec: entry.unix_mode().unwrap_or(0) & 0o111 != 0,
        };
        f(header, &mut entry)?;
    }
    Ok(())
}

/// The checks and writes of one extraction, whatever the archive's format.
struct Unpacker<'a> {
    version: &'a str,
    staging: &'a Path,
    limits: Limits,
    stop: StopHook<'a>,
    /// The bundle's folder, named by the first entry; every other entry must be in it.
    top: Option<String>,
    files: u64,
    bytes: u64,
    dirs: Vec<PathBuf>,
    wrote_any: bool,
}

impl Unpacker<'_> {
    fn entry(&mut self, h: Header, data: &mut dyn Read) -> Result<(), ApplyError> {
        let parts = plain_parts(&h.path)?;
        match &self.top {
            None => self.top = Some(parts[0].clone()),
            Some(t) if *t != parts[0] => {
                return Err(ApplyError::Refused(
                    "files outside the bundle's folder".into(),
                ))
            }
            Some(_) => {}
        }
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(ApplyError::TooBig(format!(
                "more than {} files",
                self.limits.max_files
            )));
        }
        self.bytes = self.bytes.saturating_add(h.size);
        if self.bytes > self.limits.max_bytes {
            return Err(ApplyError::TooBig(format!(
                "more than {} MB",
                self.limits.max_bytes >> 20
            )));
        }
        // TOP/app/VERSION/rest…: the only part that is installed.
        let rest = match parts.get(1..3) {
            Some([a, v]) if a == APP_DIR && v == self.version => &parts[3..],
            _ => return Ok(()),
        };
        let mut out = self.staging.to_path_buf();
        out.extend(rest);
        match h.kind {
            Kind::Dir => {
                if !rest.is_empty() {
                    std::fs::create_dir_all(&out).map_err(disk)?;
                    self.dirs.push(out);
                }
            }
            Kind::File => {
                if rest.is_empty() {
                    return Err(ApplyError::Damaged("a file named like a version".into()));
                }
                if let Some(p) = out.parent() {
                    std::fs::create_dir_all(p).map_err(disk)?;
                }
                let mut file = create_new(&out, h.exec).map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        ApplyError::Damaged("a file listed twice".into())
                    } else {
                        disk(e)
                    }
                })?;
                if !self.wrote_any {
                    stop_at(self.stop, "staging: first file created");
                    self.wrote_any = true;
                }
                let copied = copy_exact(data, &mut file, h.size)?;
                if copied != h.size {
                    return Err(ApplyError::Damaged(
                        "a file is shorter than its header".into(),
                    ));
                }
                // Reading on to the end is what lets a zip reader check the CRC-32.
                if data.read(&mut [0u8; 1]).map_err(damaged)? != 0 {
                    return Err(ApplyError::Damaged(
                        "a file is longer than its header".into(),
                    ));
                }
                file.sync_all().map_err(disk)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), ApplyError> {
        if !self.staging.join(APP_EXE).is_file() {
            return Err(ApplyError::Damaged(format!(
                "it holds no app/{}/{APP_EXE}",
                self.version
            )));
        }
        stop_at(self.stop, "staging: files synced");
        self.dirs.sort();
        self.dirs.dedup();
        for d in self.dirs.iter().rev() {
            sync_dir(d).map_err(disk)?;
        }
        Ok(())
    }
}

/// Never more than the header's size; a write error is reported as the disk's.
fn copy_exact(from: &mut dyn Read, to: &mut std::fs::File, size: u64) -> Result<u64, ApplyError> {
    let mut limited = from.take(size);
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = limited
            .read(&mut buf)
            .map_err(|e| ApplyError::Damaged(e.to_string()))?;
        if k == 0 {
            return Ok(n);
        }
        to.write_all(&buf[..k]).map_err(disk)?;
        n += k as u64;
    }
}

fn create_new(path: &Path, exec: bool) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, if exec { 0o755 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = exec;
    o.open(path)
}

/// An entry's path as plain names: relative, no `.`/`..`/empty parts, no `\` or `:`, no
/// control characters, UTF-8, and nothing Windows would read as something else (below):
/// one rule for every target, so the Linux tests exercise Windows' too. A trailing `/` (a
/// folder) is dropped.
fn plain_parts(raw: &[u8]) -> Result<Vec<String>, ApplyError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| ApplyError::Refused("a file name that is not UTF-8".into()))?;
    if text.starts_with('/') {
        return Err(ApplyError::Refused("an absolute path".into()));
    }
    let text = text.strip_suffix('/').unwrap_or(text);
    let parts: Vec<String> = text.split('/').map(str::to_string).collect();
    for p in &parts {
        if p == ".." {
            return Err(ApplyError::Refused(
                "a path that leaves its folder (..)".into(),
            ));
        }
        if p.is_empty()
            || p == "."
            || p.contains('\\')
            || p.contains(':')
            || p.bytes().any(|b| b < 0x20 || b == 0x7f)
            || not_a_windows_file_name(p)
        {
            return Err(ApplyError::Refused(format!(
                "a file name timb does not accept ({:?})",
                text.chars().take(60).collect::<String>()
            )));
        }
    }
    Ok(parts)
}

/// Names Windows cannot hold as given, or opens a device for: `<>"|?*`, a trailing dot or
/// space (silently dropped, so two names become one), and CON, PRN, AUX, NUL, CONIN$,
/// CONOUT$, COM0–9, LPT0–9 (also with ¹²³, and with any extension: `NUL.txt` is the null
/// device).
fn not_a_windows_file_name(name: &str) -> bool {
    if name.contains(['<', '>', '"', '|', '?', '*']) || name.ends_with(['.', ' ']) {
        return true;
    }
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches(' ');
    let stem = stem.to_ascii_uppercase();
    if ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"].contains(&stem.as_str()) {
        return true;
    }
    let port = stem
        .strip_prefix("COM")
        .or_else(|| stem.strip_prefix("LPT"))
        .unwrap_or_default();
    let mut digit = port.chars();
    matches!(
        (digit.next(), digit.next()),
        (Some('0'..='9' | '¹' | '²' | '³'), None)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_windows_reads_otherwise_are_refused_everywhere() {
        for bad in [
            "NUL",
            "nul.txt",
            "Con",
            "aux.tar.xz",
            "nul .txt",
            "COM0",
            "COM1",
            "LPT0",
            "lpt9.log",
            "COM¹",
            "lpt²",
            "CONIN$",
            "CONOUT$",
            "a?b",
            "a*",
            "a|b",
            "<a>",
            "\"q\"",
            "trailing.",
            "trailing ",
        ] {
            assert!(not_a_windows_file_name(bad), "{bad:?}");
            assert!(plain_parts(format!("t/app/0.2.0/{bad}").as_bytes()).is_err());
        }
        for good in [
            "timb.exe",
            "0.2.0",
            "CONTRIBUTING",
            "nullable",
            "COM10",
            "LPT",
            "comms.txt",
            "NotoSans-Regular.ttf",
            ".hidden",
        ] {
            assert!(!not_a_windows_file_name(good), "{good:?}");
            assert!(plain_parts(format!("t/app/0.2.0/{good}").as_bytes()).is_ok());
        }
    }

    #[test]
    fn entry_paths_are_plain() {
        assert_eq!(plain_parts(b"t/app/0.2.0/").unwrap(), ["t", "app", "0.2.0"]);
        for bad in [
            &b"/etc/passwd"[..],
            b"t/../x",
            b"t//x",
            b"t/./x",
            b"t/a\\b",
            b"c:x",
            b"t/\x01",
            b"\xff",
        ] {
            assert!(plain_parts(bad).is_err(), "{bad:?}");
        }
    }
}
