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
    /// `$TIMB_PROFILE`, else `profile/` beside the executable.
    pub fn locate() -> io::Result<Profile> {
        if let Some(p) = std::env::var_os(PROFILE_ENV) {
            return Profile::open(PathBuf::from(p));
        }
        let exe = std::env::current_exe()?;
        let dir = exe
            .parent()
            .ok_or_else(|| io::Error::other("the executable has no parent folder"))?;
        Profile::open(dir.join(PROFILE_DIR))
    }

    /// Opens (creating if needed) a profile folder readable only by its owner.
    pub fn open(root: PathBuf) -> io::Result<Profile> {
        create_private_dir(&root)?;
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
}
