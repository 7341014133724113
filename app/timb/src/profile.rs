//! The portable profile: everything timb keeps lives in one folder beside the
//! binary, never in the home directory, so a bundle on a USB stick leaves
//! nothing behind on the host.

use std::io;
use std::path::{Path, PathBuf};

/// Name of the profile folder inside an extracted bundle.
pub const PROFILE_DIR: &str = "profile";
/// Overrides the profile location (tests, and users who keep it elsewhere).
pub const PROFILE_ENV: &str = "TIMB_PROFILE";

#[derive(Debug, Clone)]
pub struct Profile {
    root: PathBuf,
}

impl Profile {
    /// `$TIMB_PROFILE`, else the bundle's `profile/` (beside `app/`, where the launcher
    /// starts `app/VERSION/timb`), else `profile/` beside the executable.
    pub fn locate() -> io::Result<Profile> {
        if let Some(p) = std::env::var_os(PROFILE_ENV) {
            return Profile::open(PathBuf::from(p));
        }
        let exe = std::env::current_exe()?;
        if let Some(bundle) = timb_launcher::Layout::of_exe(&exe) {
            return Profile::open(bundle.profile_dir());
        }
        let dir = exe
            .parent()
            .ok_or_else(|| io::Error::other("the executable has no parent folder"))?;
        Profile::open(dir.join(PROFILE_DIR))
    }

    /// Opens (creating if needed) a profile folder readable only by its owner, and makes
    /// everything already in it owner-only (folders 0700, files 0600): older versions and
    /// Tor's cache left some readable by others.
    pub fn open(root: PathBuf) -> io::Result<Profile> {
        create_private_dir(&root)?;
        restrict_tree(&root, 0)?;
        Ok(Profile { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A private sub-folder (Tor state, OTR keys, ...), created owner-only.
    pub fn subdir(&self, name: &str) -> io::Result<PathBuf> {
        let p = self.root.join(name);
        create_private_dir(&p)?;
        Ok(p)
    }
}

/// Writes a settings file in the profile whole or not at all: `header` then `body` into a
/// temporary owner-only file beside it, synced, then renamed over `path`.
pub fn write_settings(path: &Path, header: &str, body: &str) -> io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("a settings file needs a name"))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(header.as_bytes())?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// From now on, files and folders this process creates are owner-only (umask 077), so
/// what libraries write into the profile (arti's state and cache, libotr's files) is never
/// readable by other users, whatever the user's umask. Call once at startup.
pub fn owner_only_files() {
    #[cfg(unix)]
    {
        #[cfg(target_os = "macos")]
        type Mode = u16;
        #[cfg(not(target_os = "macos"))]
        type Mode = u32;
        extern "C" {
            fn umask(mask: Mode) -> Mode;
        }
        // SAFETY: umask only sets the process's file creation mask; it cannot fail.
        unsafe {
            umask(0o077);
        }
    }
}

/// Folders deeper than this are not ours; they are left alone rather than walked forever.
#[cfg(unix)]
const MAX_DEPTH: usize = 8;

#[cfg(unix)]
fn restrict_tree(dir: &Path, depth: usize) -> io::Result<()> {
    {
        use std::os::unix::fs::PermissionsExt;
        if depth > MAX_DEPTH {
            return Ok(());
        }
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // symlink_metadata: a link is not followed out of the profile.
            let meta = std::fs::symlink_metadata(entry.path())?;
            let want = if meta.is_dir() {
                0o700
            } else if meta.is_file() {
                0o600
            } else {
                continue;
            };
            if meta.permissions().mode() & 0o777 != want {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(want))?;
            }
            if meta.is_dir() {
                restrict_tree(&entry.path(), depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Windows has no modes: the profile folder gets an access list of its own instead
/// ([`acl::owner_only`]), which everything inside inherits.
#[cfg(windows)]
fn restrict_tree(dir: &Path, _: usize) -> io::Result<()> {
    acl::owner_only(dir)
}

#[cfg(not(any(unix, windows)))]
fn restrict_tree(_: &Path, _: usize) -> io::Result<()> {
    Ok(())
}

#[cfg(windows)]
mod acl {
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::{null, null_mut};

    use windows_sys::Win32::Foundation::{
        CloseHandle, LocalFree, ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED, ERROR_SUCCESS,
        GENERIC_ALL, HANDLE,
    };
    use windows_sys::Win32::Security::Authorization::{
        SetEntriesInAclW, SetNamedSecurityInfoW, EXPLICIT_ACCESS_W, NO_MULTIPLE_TRUSTEE,
        SET_ACCESS, SE_FILE_OBJECT, TRUSTEE_IS_SID, TRUSTEE_IS_USER, TRUSTEE_W,
    };
    use windows_sys::Win32::Security::{
        GetTokenInformation, TokenUser, ACL, DACL_SECURITY_INFORMATION,
        PROTECTED_DACL_SECURITY_INFORMATION, SUB_CONTAINERS_AND_OBJECTS_INHERIT, TOKEN_QUERY,
        TOKEN_USER,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    /// Replaces `dir`'s access list with a single entry, full access for the user running
    /// timb, inherited by everything inside and protected from the folders above: the
    /// administrators and other users the bundle's folder may grant lose access to the
    /// profile, as with mode 0700 on Linux. A file system without access lists (a FAT USB
    /// stick) cannot protect it at all; README says so, and timb runs anyway.
    pub fn owner_only(dir: &Path) -> io::Result<()> {
        let mut token: HANDLE = null_mut();
        // SAFETY: the current-process pseudo handle and an out pointer.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // TOKEN_USER and the SID it points to; 8-aligned, larger than any SID needs.
        let mut buf = [0u64; 64];
        let mut len = 0u32;
        // SAFETY: the token opened above and a writable buffer of the stated size.
        let ok = unsafe {
            GetTokenInformation(
                token,
                TokenUser,
                buf.as_mut_ptr().cast(),
                std::mem::size_of_val(&buf) as u32,
                &mut len,
            )
        };
        let err = io::Error::last_os_error();
        // SAFETY: the token opened above, closed once.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            return Err(err);
        }
        // SAFETY: GetTokenInformation(TokenUser) filled the buffer with a TOKEN_USER.
        let user = unsafe { &*(buf.as_ptr() as *const TOKEN_USER) };
        let entry = EXPLICIT_ACCESS_W {
            grfAccessPermissions: GENERIC_ALL,
            grfAccessMode: SET_ACCESS,
            grfInheritance: SUB_CONTAINERS_AND_OBJECTS_INHERIT,
            Trustee: TRUSTEE_W {
                pMultipleTrustee: null_mut(),
                MultipleTrusteeOperation: NO_MULTIPLE_TRUSTEE,
                TrusteeForm: TRUSTEE_IS_SID,
                TrusteeType: TRUSTEE_IS_USER,
                ptstrName: user.User.Sid.cast(),
            },
        };
        let mut acl: *mut ACL = null_mut();
        // SAFETY: one entry whose SID lives in `buf`; the new list is freed below.
        let e = unsafe { SetEntriesInAclW(1, &entry, null(), &mut acl) };
        if e != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(e as i32));
        }
        let wide: Vec<u16> = dir.as_os_str().encode_wide().chain([0]).collect();
        // SAFETY: a NUL-terminated path and the list made above; only the DACL is set.
        let e = unsafe {
            SetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                acl,
                null(),
            )
        };
        // SAFETY: allocated by SetEntriesInAclW with LocalAlloc, freed once.
        unsafe { LocalFree(acl.cast()) };
        match e {
            ERROR_SUCCESS | ERROR_NOT_SUPPORTED | ERROR_INVALID_FUNCTION => Ok(()),
            e => Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
}

fn create_private_dir(p: &Path) -> io::Result<()> {
    std::fs::create_dir_all(p)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdirs_are_owner_only() {
        let base = std::env::temp_dir().join(format!("timb-profile-test-{}", std::process::id()));
        let prof = Profile::open(base.join("p")).unwrap();
        let d = prof.subdir("otr").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        std::fs::remove_dir_all(base).unwrap();
    }

    /// Bug 18.8: whatever is already in the profile (Tor's cache, old `otr/`, `tls/`) is
    /// made owner-only when it is opened.
    #[cfg(unix)]
    #[test]
    fn opening_makes_everything_inside_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("timb-profile-tree-{}", std::process::id()));
        let root = base.join("p");
        let cache = root.join("tor").join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(root.join("tls")).unwrap();
        std::fs::write(cache.join("consensus"), "x").unwrap();
        std::fs::write(root.join("tls").join("tofu.txt"), "x").unwrap();
        for p in [&root, &root.join("tor"), &cache, &root.join("tls")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(
            cache.join("consensus"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        Profile::open(root.clone()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for d in [&root, &root.join("tor"), &cache, &root.join("tls")] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
        assert_eq!(mode(&cache.join("consensus")), 0o600);
        assert_eq!(mode(&root.join("tls").join("tofu.txt")), 0o600);
        std::fs::remove_dir_all(base).unwrap();
    }
}
