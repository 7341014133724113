//! The Rust standard library built from source, for targets rustup has no std for here.
//!
//! rustup cannot download the Windows std on this machine (and a rebuilder should not depend
//! on one more download anyway). The same pinned compiler builds it with `-Zbuild-std` from
//! the matching `rust-src`: Debian's `rust-src_<version>_all.deb` of the same rustc version,
//! pinned by sha256 as a `file` input of the project that needs it (for that target only).
//! Its `library/Cargo.lock` pins std's own crates by checksum; they are fetched here with the
//! workspace's, before the offline sandbox, which mounts the unpacked source where cargo
//! looks for it (`/toolchain/lib/rustlib/src/rust`, see [`crate::sandbox`]).

use crate::util;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether a pinned file is a standard library source package.
pub fn is_std_source(file: &str) -> bool {
    file.starts_with("rust-src_") && file.ends_with("_all.deb")
}

/// Unpacks `deb` into `dest` (emptied first) and returns the source tree in it
/// (`usr/src/rustc-VERSION`, holding `library/`).
pub fn unpack(deb: &Path, dest: &Path) -> Result<PathBuf> {
    util::remove_dir(dest)?;
    std::fs::create_dir_all(dest)?;
    util::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest))
        .with_context(|| format!("unpacking {}", deb.display()))?;
    let src = dest.join("usr/src");
    let mut trees = Vec::new();
    for e in std::fs::read_dir(&src).with_context(|| format!("{} has no usr/src", deb.display()))? {
        let p = e?.path();
        if p.join("library/Cargo.lock").is_file() {
            trees.push(p);
        }
    }
    match trees.len() {
        1 => Ok(trees.remove(0)),
        n => bail!(
            "{} should hold one rustc source tree with library/Cargo.lock, found {n}",
            deb.display()
        ),
    }
}

/// Fetches the crates std depends on (by `library/Cargo.lock`, checksums checked by cargo)
/// for every pinned standard library source in `sources_dir`.
pub fn fetch_crates(pins: &[pins::Pinned], sources_dir: &Path) -> Result<()> {
    for p in pins.iter().filter(|p| is_std_source(&p.file)) {
        let scratch = sources_dir.join(format!(".unpack-{}", std::process::id()));
        let tree = unpack(&sources_dir.join(&p.file), &scratch)?;
        let r = util::run(
            util::cargo()
                .arg("fetch")
                .arg("--locked")
                .arg("--quiet")
                .arg("--manifest-path")
                .arg(tree.join("library/Cargo.toml"))
                // std's manifest asks for unstable cargo features, as when cargo builds it.
                .env("RUSTC_BOOTSTRAP", "1"),
        )
        .with_context(|| format!("downloading the crates of {}", p.file));
        util::remove_dir(&scratch)?;
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rust_src_packages_are_std_sources() {
        assert!(is_std_source("rust-src_1.95.0+dfsg1-2~bpo13+1_all.deb"));
        assert!(!is_std_source("libotr_4.1.1.orig.tar.gz"));
        assert!(!is_std_source("rust-src_1.95.0.tar.xz"));
    }
}
