//! The platforms a bundle is made for, release versions, and archive names.

use crate::sha::clip;
use std::fmt;
use std::str::FromStr;

/// A platform timb ships a bundle for. Its name is part of every archive name, every trusted
/// comment and every build id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    LinuxX86_64,
    /// The portable Windows bundle, cross-built with mingw-w64.
    WindowsX86_64,
    /// Declared for the macOS bundles; not built yet.
    MacosAarch64,
    /// Declared for the macOS bundles; not built yet.
    MacosX86_64,
}

/// How a target's bundle is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// Deterministic `.tar.xz`: sorted entries, fixed owner and mtime.
    TarXz,
    /// Windows and macOS: Explorer and macOS's Archive Utility open it, and it keeps Unix
    /// modes. No `.dmg`: Tor Browser writes one with libdmg-hfsplus, which Debian does not
    /// package and the pipeline has no pinned source of; a zip needs no tool.
    Zip,
}

impl ArchiveFormat {
    /// The file name extension, without the leading dot.
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::TarXz => "tar.xz",
            ArchiveFormat::Zip => "zip",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "unknown target {0:?} (known: linux-x86_64, windows-x86_64, macos-aarch64, macos-x86_64)"
    )]
    Unknown(String),
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::LinuxX86_64,
        Target::WindowsX86_64,
        Target::MacosAarch64,
        Target::MacosX86_64,
    ];

    /// The name used in archive names, comments, `rbm-projects/` `[target.*]` tables.
    pub fn name(self) -> &'static str {
        match self {
            Target::LinuxX86_64 => "linux-x86_64",
            Target::WindowsX86_64 => "windows-x86_64",
            Target::MacosAarch64 => "macos-aarch64",
            Target::MacosX86_64 => "macos-x86_64",
        }
    }

    /// The Rust target triple the binary is compiled for.
    pub fn rust_triple(self) -> &'static str {
        match self {
            Target::LinuxX86_64 => "x86_64-unknown-linux-gnu",
            Target::WindowsX86_64 => "x86_64-pc-windows-gnu",
            Target::MacosAarch64 => "aarch64-apple-darwin",
            Target::MacosX86_64 => "x86_64-apple-darwin",
        }
    }

    pub fn archive_format(self) -> ArchiveFormat {
        match self {
            Target::LinuxX86_64 => ArchiveFormat::TarXz,
            Target::WindowsX86_64 | Target::MacosAarch64 | Target::MacosX86_64 => {
                ArchiveFormat::Zip
            }
        }
    }

    /// `.exe` on Windows, nothing elsewhere.
    pub fn exe_suffix(self) -> &'static str {
        match self {
            Target::WindowsX86_64 => ".exe",
            _ => "",
        }
    }

    /// Whether its programs are `.app`s.
    pub fn is_macos(self) -> bool {
        matches!(self, Target::MacosAarch64 | Target::MacosX86_64)
    }

    /// Whether the pipeline builds this target today.
    pub fn is_built(self) -> bool {
        matches!(self, Target::LinuxX86_64 | Target::WindowsX86_64)
    }

    /// `timb-<version>-<target>`: the top folder inside the archive.
    pub fn bundle_folder(self, version: &Version) -> String {
        format!("timb-{version}-{}", self.name())
    }

    /// `timb-<version>-<target>.<ext>`, e.g. `timb-0.1.0-linux-x86_64.tar.xz`.
    pub fn archive_name(self, version: &Version) -> String {
        format!(
            "{}.{}",
            self.bundle_folder(version),
            self.archive_format().extension()
        )
    }

    /// The version and target an archive name gives, if it is one.
    pub fn parse_archive_name(name: &str) -> Option<(Version, Target)> {
        let rest = name.strip_prefix("timb-")?;
        Target::ALL.into_iter().find_map(|t| {
            let suffix = format!("-{}.{}", t.name(), t.archive_format().extension());
            let v: Version = rest.strip_suffix(&suffix)?.parse().ok()?;
            (t.archive_name(&v) == name).then_some((v, t))
        })
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Target, TargetError> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| TargetError::Unknown(clip(s)))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A release version such as `0.1.0` or `1.2.0-rc.1`: it starts with a digit and holds only
/// ASCII letters, digits and `.+-`, so it can stand in a file name and a comment word.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "{0:?} is not a version (a digit first, then only letters, digits and .+-, at most 64)"
    )]
    Malformed(String),
}

impl Version {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Release order, as semantic versioning orders versions (the derived `Ord` is only the
    /// strings' order, in which `0.10.0` comes before `0.9.0`): dot-separated numbers compare
    /// as numbers (missing ones count as 0), a pre-release (`-rc.1`) comes before its release,
    /// and build metadata (`+…`) is ignored. The updater's "newer" is this order.
    pub fn cmp_release(&self, other: &Version) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn split(v: &str) -> (&str, Option<&str>) {
            let v = v.split_once('+').map_or(v, |(v, _)| v);
            match v.split_once('-') {
                Some((core, pre)) => (core, Some(pre)),
                None => (v, None),
            }
        }
        fn numeric(s: &str) -> bool {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
        }
        fn ident(a: &str, b: &str) -> Ordering {
            match (numeric(a), numeric(b)) {
                (true, true) => {
                    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
                    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
                }
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => a.cmp(b),
            }
        }
        let ((ca, pa), (cb, pb)) = (split(&self.0), split(&other.0));
        let (mut ia, mut ib) = (ca.split('.'), cb.split('.'));
        loop {
            match (ia.next(), ib.next()) {
                (None, None) => break,
                (a, b) => match ident(a.unwrap_or("0"), b.unwrap_or("0")) {
                    Ordering::Equal => {}
                    o => return o,
                },
            }
        }
        match (pa, pb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => {
                let (mut ia, mut ib) = (a.split('.'), b.split('.'));
                loop {
                    match (ia.next(), ib.next()) {
                        (None, None) => return Ordering::Equal,
                        (None, Some(_)) => return Ordering::Less,
                        (Some(_), None) => return Ordering::Greater,
                        (Some(a), Some(b)) => match ident(a, b) {
                            Ordering::Equal => {}
                            o => return o,
                        },
                    }
                }
            }
        }
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Version, VersionError> {
        let ok = s.len() <= 64
            && s.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b));
        if ok {
            Ok(Version(s.to_string()))
        } else {
            Err(VersionError::Malformed(clip(s)))
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn names_round_trip() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>().unwrap(), t);
            let name = t.archive_name(&v("1.2.0-rc.1"));
            assert_eq!(
                Target::parse_archive_name(&name),
                Some((v("1.2.0-rc.1"), t))
            );
        }
        assert_eq!(
            Target::LinuxX86_64.archive_name(&v("0.1.0")),
            "timb-0.1.0-linux-x86_64.tar.xz"
        );
        assert_eq!(
            Target::WindowsX86_64.archive_name(&v("0.1.0")),
            "timb-0.1.0-windows-x86_64.zip"
        );
        assert_eq!(
            Target::LinuxX86_64.rust_triple(),
            "x86_64-unknown-linux-gnu"
        );
        assert!(Target::LinuxX86_64.is_built() && Target::WindowsX86_64.is_built());
        assert!(!Target::MacosAarch64.is_built());
        assert_eq!(
            Target::MacosAarch64.archive_name(&v("0.1.0")),
            "timb-0.1.0-macos-aarch64.zip"
        );
    }

    #[test]
    fn release_order_is_numeric_with_pre_releases_first() {
        use std::cmp::Ordering::*;
        for (a, b, o) in [
            ("0.10.0", "0.9.0", Greater),
            ("1.0.0", "1.0", Equal),
            ("1.0.0+build.2", "1.0.0+build.1", Equal),
            ("1.0.0-rc.1", "1.0.0", Less),
            ("1.0.0-rc.2", "1.0.0-rc.10", Less),
            ("1.0.0-alpha", "1.0.0-alpha.1", Less),
            ("1.0.0-alpha.beta", "1.0.0-alpha.1", Greater),
            ("1.0.1", "1.0.0", Greater),
            ("2", "10", Less),
            ("007", "7", Equal),
        ] {
            assert_eq!(v(a).cmp_release(&v(b)), o, "{a} vs {b}");
            assert_eq!(v(b).cmp_release(&v(a)), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn bad_names_and_versions_are_refused() {
        assert!("linux".parse::<Target>().is_err());
        assert!("Linux-x86_64".parse::<Target>().is_err());
        for bad in [
            "",
            "v1",
            "1 0",
            "1/0",
            "1:0",
            "1\n",
            &"1".repeat(65),
            "1.0é",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
        for bad in [
            "timb-0.1.0-linux-x86_64.zip",
            "timb--linux-x86_64.tar.xz",
            "timb-0.1.0-linux-x86_64.tar.xz.minisig",
            "other-0.1.0-linux-x86_64.tar.xz",
            "timb-0.1.0-linux-x86_64",
            "",
        ] {
            assert_eq!(Target::parse_archive_name(bad), None, "{bad}");
        }
    }
}
