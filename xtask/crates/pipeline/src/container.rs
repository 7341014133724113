//! The pinned build container: a Debian root file system made by `mmdebstrap` from
//! `containers/bookworm-build.toml`, which the sandbox binds instead of the host's `/usr` and
//! `/etc`, so a build depends on a declared package list and not on the builder's machine.
//!
//! The definition names no mirror: the packages come from the mirror (or proxy, or snapshot)
//! the builder's apt is configured with, or from the sources file `TIMB_CONTAINER_SOURCES`
//! names. Because a mirror moves with point releases, the identity of a rootfs is not the
//! definition but what was actually installed: the sha256 of the tarball together with the
//! `dpkg-query -W` list (package and version) read inside it.

use crate::apt::{self, AptRepo, Format};
use crate::util::{self, sha256_bytes, sha256_file};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The definition every build uses.
pub const DEFINITION: &str = "containers/bookworm-build.toml";

/// An extracted root file system and what identifies it in build ids.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub dir: PathBuf,
    /// sha256 over the tarball's sha256 and the installed package list.
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerDef {
    name: String,
    suite: String,
    components: Vec<String>,
    architecture: String,
    variant: String,
    source_date_epoch: u64,
    packages: Vec<String>,
}

/// Returns the rootfs `containers/bookworm-build.toml` describes, building it with mmdebstrap
/// into `cache_dir` unless a build of the same definition bytes is already there.
pub fn ensure_rootfs(root: &Path, cache_dir: &Path) -> Result<Rootfs> {
    let def_path = root.join(DEFINITION);
    let raw =
        std::fs::read(&def_path).with_context(|| format!("reading {}", def_path.display()))?;
    let def = parse_definition(&raw).with_context(|| format!("in {}", def_path.display()))?;
    let key = &sha256_bytes(&raw)[..16];
    let entry = format!("{}-{key}", def.name);
    let base = cache_dir.join(&entry);
    if let Ok(id) = std::fs::read_to_string(base.join("ID")) {
        let id = id.trim();
        let well_formed = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if well_formed && base.join("rootfs/usr").is_dir() {
            return Ok(Rootfs {
                dir: base.join("rootfs"),
                id: id.to_string(),
            });
        }
    }

    if !util::have_command("mmdebstrap") {
        crate::provision::ensure(&["mmdebstrap"])?;
    }
    if !util::have_command("bwrap") {
        crate::provision::ensure(&["bubblewrap"])?;
    }
    let mirrors = match std::env::var_os("TIMB_CONTAINER_SOURCES") {
        Some(f) => {
            let f = PathBuf::from(f);
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("reading TIMB_CONTAINER_SOURCES={}", f.display()))?;
            apt::parse(&text, Format::of(&f).unwrap_or(Format::OneLine))
        }
        None => apt::read_config(Path::new("/etc/apt"))?,
    };
    let lines = mirror_lines(&def, &mirrors)?;

    std::fs::create_dir_all(cache_dir)?;
    let tmp = cache_dir.join(format!(".tmp-{entry}-{}", std::process::id()));
    remove_tree(&tmp)?;
    std::fs::create_dir_all(&tmp)?;
    let started = std::time::Instant::now();
    eprintln!(
        "    container {}: building the root file system with mmdebstrap (a few minutes, once per definition)",
        def.name
    );
    let (tar_sha, packages, id) = match build_into(&def, &lines, &tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
    };
    remove_tree(&base)?;
    std::fs::rename(&tmp, &base)
        .with_context(|| format!("moving the rootfs into {}", base.display()))?;
    remove_stale(cache_dir, &def.name, &entry);
    eprintln!(
        "    container {}: {} packages, tarball sha256 {}, id {} ({:.0} s)",
        def.name,
        packages.lines().count(),
        &tar_sha[..16],
        &id[..16],
        started.elapsed().as_secs_f64()
    );
    Ok(Rootfs {
        dir: base.join("rootfs"),
        id,
    })
}

/// mmdebstrap into `tmp/rootfs.tar`, extraction into `tmp/rootfs`, and the files beside it;
/// returns the tarball's sha256, the package list and the rootfs id.
fn build_into(
    def: &ContainerDef,
    lines: &[String],
    tmp: &Path,
) -> Result<(String, String, String)> {
    let tarball = tmp.join("rootfs.tar");
    util::run(&mut mmdebstrap(def, lines, &tarball)?)
        .context("building the container root file system")?;
    let tar_sha = sha256_file(&tarball)?;

    // /dev is left out: the sandbox makes its own, and a non-root user cannot create nodes.
    let dir = tmp.join("rootfs");
    std::fs::create_dir_all(&dir)?;
    util::run(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["-xpf"])
            .arg(&tarball)
            .args(["--numeric-owner", "--exclude=./dev/*"]),
    )
    .context("extracting the container root file system")?;

    let packages = installed_packages(&dir)?;
    std::fs::write(tmp.join("packages.txt"), &packages)?;
    std::fs::write(
        tmp.join("rootfs.tar.sha256"),
        format!("{tar_sha}  rootfs.tar\n"),
    )?;
    // Not part of the id: what a rebuilder needs to pick the matching snapshot archive.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::fs::write(
        tmp.join("sources.txt"),
        format!("# built at unix time {now}\n{}\n", lines.join("\n")),
    )?;
    let id = rootfs_id(&tar_sha, &packages);
    std::fs::write(tmp.join("ID"), format!("{id}\n"))?;
    Ok((tar_sha, packages, id))
}

fn rootfs_id(tarball_sha256: &str, packages: &str) -> String {
    sha256_bytes(
        format!("timb-container v1\ntarball {tarball_sha256}\npackages\n{packages}").as_bytes(),
    )
}

fn parse_definition(raw: &[u8]) -> Result<ContainerDef> {
    let text = std::str::from_utf8(raw).context("not UTF-8")?;
    let def: ContainerDef = toml::from_str(text)?;
    // Every value ends up on mmdebstrap's command line or in a sources line.
    let word = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
    };
    if !word(&def.name, b"-") {
        bail!("bad name {:?}", def.name);
    }
    if !word(&def.suite, b"") || !word(&def.architecture, b"") {
        bail!("bad suite or architecture");
    }
    if def.components.is_empty() || !def.components.iter().all(|c| word(c, b"-")) {
        bail!("bad components {:?}", def.components);
    }
    if !["essential", "apt", "required", "minbase", "buildd"].contains(&def.variant.as_str()) {
        bail!(
            "variant {:?} is not one this pipeline supports",
            def.variant
        );
    }
    if let Some(p) = def.packages.iter().find(|p| !word(p, b"+-.")) {
        bail!("bad package name {p:?}");
    }
    Ok(def)
}

fn mmdebstrap(def: &ContainerDef, mirror_lines: &[String], tarball: &Path) -> Result<Command> {
    let is_root = util::output(Command::new("id").arg("-u"))?.trim() == "0";
    let mut cmd = Command::new("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", def.source_date_epoch.to_string())
        .arg(format!("--variant={}", def.variant))
        // unshare: a user namespace, so non-root builders need subordinate ids (/etc/subuid).
        .arg(format!("--mode={}", if is_root { "root" } else { "unshare" }))
        .arg(format!("--architectures={}", def.architecture))
        .arg(format!("--include={}", def.packages.join(",")))
        // The builder's mirror, host name and resolver must not reach the tarball.
        .arg(
            "--customize-hook=rm -f \"$1\"/etc/apt/sources.list \"$1\"/etc/resolv.conf \"$1\"/etc/hostname \
             && printf 'timb-build\\n' > \"$1\"/etc/hostname && : > \"$1\"/etc/resolv.conf",
        );
    if mirror_lines
        .iter()
        .any(|l| l.contains("snapshot.debian.org"))
    {
        // Snapshot Release files are old by design.
        cmd.arg("--aptopt=Acquire::Check-Valid-Until \"false\"");
    }
    cmd.arg(&def.suite).arg(tarball).args(mirror_lines);
    Ok(cmd)
}

/// `dpkg-query -W` run inside the rootfs: the installed packages and their exact versions.
fn installed_packages(rootfs: &Path) -> Result<String> {
    let out = util::output(
        Command::new("bwrap")
            .args(["--unshare-all", "--die-with-parent", "--ro-bind"])
            .arg(rootfs)
            .args(["/", "--dev", "/dev", "--proc", "/proc", "--clearenv"])
            .args([
                "--setenv",
                "PATH",
                "/usr/bin:/bin",
                "--setenv",
                "LC_ALL",
                "C",
            ])
            .args(["dpkg-query", "-W", "-f", "${binary:Package} ${Version}\\n"]),
    )
    .context("listing the packages installed in the container")?;
    let mut lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    if lines.is_empty() {
        bail!("the container has no packages installed");
    }
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// Removes rootfs builds of older definitions (each is several hundred MB).
fn remove_stale(cache_dir: &Path, name: &str, keep: &str) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    let prefix = format!("{name}-");
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n != keep && n.starts_with(&prefix) {
            let _ = remove_tree(&e.path());
        }
    }
}

/// Like `remove_dir_all`, but also for trees a non-root extraction left without write bits.
fn remove_tree(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if util::remove_dir(path).is_ok() {
        return Ok(());
    }
    util::run(Command::new("chmod").args(["-R", "u+rwX"]).arg(path))?;
    util::remove_dir(path)
}

/// The suites of `def.suite` the builder's apt uses (the release, its updates and its
/// security suite), as one-line `deb` entries with the definition's components.
fn mirror_lines(def: &ContainerDef, repos: &[AptRepo]) -> Result<Vec<String>> {
    let wanted = [
        def.suite.clone(),
        format!("{}-updates", def.suite),
        format!("{}-security", def.suite),
    ];
    let mut lines = Vec::new();
    for r in repos {
        if !wanted.contains(&r.suite) {
            continue;
        }
        // Each becomes one sources.list line: nothing that could end or extend it.
        let plain = |s: &str| !s.chars().any(|c| c.is_whitespace() || "\"'[]".contains(c));
        if !r.uri.contains("://") || !plain(&r.uri) || !r.signed_by.as_deref().is_none_or(plain) {
            continue;
        }
        let opts = match &r.signed_by {
            Some(k) => format!("[arch={} signed-by={k}] ", def.architecture),
            None => format!("[arch={}] ", def.architecture),
        };
        let line = format!(
            "deb {opts}{} {} {}",
            r.uri,
            r.suite,
            def.components.join(" ")
        );
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    if !lines
        .iter()
        .any(|l| l.contains(&format!(" {} ", def.suite)))
    {
        bail!(
            "no Debian `{}` repository in the apt configuration; add one to /etc/apt/sources.list.d/ \
             or name a sources file with TIMB_CONTAINER_SOURCES",
            def.suite
        );
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ContainerDef {
        parse_definition(&std::fs::read(util::repo_root().join(DEFINITION)).unwrap()).unwrap()
    }

    #[test]
    fn the_definition_parses_and_names_no_mirror() {
        let raw = std::fs::read_to_string(util::repo_root().join(DEFINITION)).unwrap();
        let d = def();
        assert_eq!(d.name, "bookworm-build");
        assert!(d.packages.iter().any(|p| p == "gcc"));
        assert!(
            !raw.contains("://"),
            "a mirror must come from the builder's apt, not the repository"
        );
    }

    #[test]
    fn hostile_definitions_are_refused() {
        let base = "name='x'\nsuite='bookworm'\ncomponents=['main']\narchitecture='amd64'\nvariant='essential'\nsource_date_epoch=1\n";
        assert!(parse_definition(format!("{base}packages=['gcc']").as_bytes()).is_ok());
        for bad in ["'-oFoo'", "'gcc,make'", "'a b'", "''", "'$(id)'"] {
            let t = format!("{base}packages=[{bad}]");
            assert!(parse_definition(t.as_bytes()).is_err(), "{bad}");
        }
        let t = base.replace("essential", "custom") + "packages=[]";
        assert!(parse_definition(t.as_bytes()).is_err());
        assert!(parse_definition(format!("{base}packages=[]\nmirror='x'").as_bytes()).is_err());
    }

    #[test]
    fn mirrors_come_from_both_apt_formats_and_only_the_wanted_suites() {
        let d822 = "Types: deb deb-src\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates bookworm-backports\n\
                    Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                    Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n";
        let one = "# comment\ndeb [signed-by=/k.gpg] http://s.example/debian-security bookworm-security main\n\
                   deb http://t.example/debian trixie main\ndeb-src http://m.example/debian bookworm main\n";
        let mut repos = apt::parse(d822, Format::Deb822);
        repos.extend(apt::parse(one, Format::OneLine));
        let lines = mirror_lines(&def(), &repos).unwrap();
        assert_eq!(
            lines,
            vec![
                "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian bookworm main",
                "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian bookworm-updates main",
                "deb [arch=amd64 signed-by=/k.gpg] http://s.example/debian-security bookworm-security main",
            ]
        );
        let only_trixie = apt::parse("deb http://t.example/debian trixie main\n", Format::OneLine);
        assert!(mirror_lines(&def(), &only_trixie).is_err());
    }

    #[test]
    fn the_id_covers_tarball_and_package_versions() {
        let a = rootfs_id("00", "gcc 4:12.2.0-3\n");
        assert_ne!(a, rootfs_id("01", "gcc 4:12.2.0-3\n"));
        assert_ne!(a, rootfs_id("00", "gcc 4:12.2.0-4\n"));
        assert_eq!(a.len(), 64);
    }
}
