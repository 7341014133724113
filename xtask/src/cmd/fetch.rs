//! `cargo xtask fetch`: everything a build needs from the network, fetched before any
//! sandbox (which has none) runs. `--check` also fetches the build container's locked
//! packages and says, per kind of input, how it is pinned; anything unpinned is an error.

use anyhow::{bail, Context, Result};
use pipeline::util;
use std::path::Path;

/// Crates for every platform in Cargo.lock, then every pinned source archive.
pub fn run(root: &Path, check: bool) -> Result<()> {
    fetch_crates(root)?;
    pipeline::sources::fetch_pinned_sources(root)?;
    if !check {
        return Ok(());
    }
    let crates = crates_pinned(root)?;
    let files = pipeline::sources::pinned_sources(root)?.len();
    let cache = util::cargo_target_dir(root).join("containers");
    let (debs, id) = pipeline::container::fetch_locked(root, &cache)?;
    let rust = toolchain_pinned(root)?;
    println!("every input a release build takes is pinned and was fetched and checked:");
    println!("  crates           {crates:>4}  Cargo.lock checksums (cargo fetch --locked)");
    println!("  pinned files     {files:>4}  sha256 in rbm-projects/*.toml (Debian sources and packages, PyPI wheels)");
    println!(
        "  build container  {debs:>4}  .deb files by sha256 in {} (rootfs id {})",
        pipeline::container::LOCK,
        &id[..16]
    );
    println!("  Rust toolchain   {rust}  (rust-toolchain.toml; rustup checks its downloads, and the build id records rustc's sha256)");
    Ok(())
}

/// What building `projects` takes: the crates, the pinned files of those projects and of
/// the projects they take (not every definition's: a Linux bundle needs no zig wheel), and
/// the crates of a pinned standard library source among them. Without apt (a Mac) the
/// files come from the mirror `TIMB_DEBIAN_MIRROR` names.
pub fn run_for(root: &Path, projects: &[&str]) -> Result<()> {
    fetch_crates(root)?;
    let mut pins = Vec::new();
    for p in projects {
        pins.extend(pins::sources(root, p)?.pins);
    }
    pins.sort();
    pins.dedup();
    let dir = util::sources_dir(root);
    pipeline::sources::fetch_many(&pins, &dir)?;
    pipeline::std_src::fetch_crates(&pins, &dir)
}

/// Every crate Cargo.lock names, for every platform.
fn fetch_crates(root: &Path) -> Result<()> {
    util::run(
        util::cargo()
            .current_dir(root)
            .args(["fetch", "--locked", "--quiet"]),
    )
    .context("downloading crates")
}

/// Every third-party crate in Cargo.lock comes from a registry with a checksum (or from git
/// at a fixed commit); returns how many.
fn crates_pinned(root: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let lock: toml::Value = toml::from_str(&text).context("parsing Cargo.lock")?;
    let mut n = 0;
    let packages = lock
        .get("package")
        .and_then(|p| p.as_array())
        .context("Cargo.lock lists no packages")?;
    for p in packages {
        let Some(source) = p.get("source").and_then(|s| s.as_str()) else {
            continue; // ours or third_party/'s: in the repository itself
        };
        let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("?");
        let pinned = if source.starts_with("registry+") {
            p.get("checksum").and_then(|c| c.as_str()).is_some()
        } else {
            source.starts_with("git+") && source.contains('#')
        };
        if !pinned {
            bail!("crate {name} from {source} is not pinned by a checksum or a commit");
        }
        n += 1;
    }
    Ok(n)
}

/// The toolchain channel is an exact version, never `stable` or a date-less nightly.
fn toolchain_pinned(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("rust-toolchain.toml"))
        .context("reading rust-toolchain.toml")?;
    let v: toml::Value = toml::from_str(&text).context("parsing rust-toolchain.toml")?;
    let channel = v
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(|c| c.as_str())
        .context("rust-toolchain.toml names no channel")?;
    let exact = channel.split('.').count() == 3
        && channel
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !exact {
        bail!("rust-toolchain.toml's channel {channel:?} is not an exact version");
    }
    Ok(channel.to_string())
}

#[cfg(test)]
mod tests {
    /// A bundle build fetches what its projects take: the macOS launcher's zig wheel (101 MB)
    /// only for the macOS builds, the Mac's files without the Windows std source.
    #[test]
    fn each_build_fetches_only_what_its_projects_take() {
        let root = pipeline::util::repo_root();
        let files = |p: &str| -> Vec<String> {
            pins::sources(&root, p)
                .unwrap()
                .pins
                .into_iter()
                .map(|p| p.file)
                .collect()
        };
        let wheel = |f: &Vec<String>| f.iter().any(|f| f.ends_with(".whl"));
        for p in ["linux-bundle", "windows-bundle", "macos-bundle"] {
            let f = files(p);
            assert!(!wheel(&f), "{p} fetches a wheel: {f:?}");
            assert!(f.iter().any(|f| f.starts_with("libotr_")), "{p}: {f:?}");
            assert!(f.iter().any(|f| f.starts_with("fonts-noto")), "{p}: {f:?}");
        }
        assert!(wheel(&files("macos-app")));
        assert!(!files("macos-bundle")
            .iter()
            .any(|f| f.starts_with("rust-src")));
    }
}
