//! The pinned build container: a Debian root file system made by `mmdebstrap` from
//! `containers/bookworm-build.toml`, which the sandbox binds instead of the host's `/usr` and
//! `/etc`, so a build depends on a declared package list and not on the builder's machine.
//!
//! The definition names packages; the lock beside it (`bookworm-build.lock`, see [`crate::lock`])
//! names every file installed, by sha256. A build downloads exactly those from whichever
//! mirror the builder's apt uses (or `TIMB_CONTAINER_SOURCES`), and bootstraps from a local
//! repository holding nothing else. The rootfs id is derived from the lock, so it is known
//! before building and the same for every builder with the same lock.

use crate::apt::{self, AptRepo, Format};
use crate::lock::{self, Lock};
use crate::util::{self, sha256_bytes, sha256_file};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The definition every build uses.
pub const DEFINITION: &str = "containers/bookworm-build.toml";

/// Its lock: what the definition resolved to, file by file.
pub const LOCK: &str = "containers/bookworm-build.lock";

/// mmdebstrap's hook that makes a `file://` mirror readable inside the chroot (dpkg runs
/// inside and is given the mirror's paths).
const FILE_MIRROR_HOOKS: &str = "/usr/share/mmdebstrap/hooks/file-mirror-automount";

/// An extracted root file system and what identifies it in build ids.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub dir: PathBuf,
    /// The lock's id ([`Lock::rootfs_id`]).
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

/// The definition and the sha256 of its bytes.
fn read_definition(root: &Path) -> Result<(ContainerDef, String)> {
    let def_path = root.join(DEFINITION);
    let raw =
        std::fs::read(&def_path).with_context(|| format!("reading {}", def_path.display()))?;
    let def = parse_definition(&raw).with_context(|| format!("in {}", def_path.display()))?;
    Ok((def, sha256_bytes(&raw)))
}

/// The definition and its lock, checked to be the lock of these definition bytes.
fn definition_and_lock(root: &Path) -> Result<(ContainerDef, Lock)> {
    let (def, def_sha) = read_definition(root)?;
    let lock_path = root.join(LOCK);
    let text = std::fs::read_to_string(&lock_path).with_context(|| {
        format!(
            "reading {} (make it with `cargo xtask container lock`)",
            lock_path.display()
        )
    })?;
    let lock = Lock::parse(&text).with_context(|| format!("in {}", lock_path.display()))?;
    if lock.definition_sha256 != def_sha {
        bail!(
            "{LOCK} was made for another version of {DEFINITION} (its sha256 is {def_sha}, the \
             lock names {}): run `cargo xtask container lock` and commit both",
            lock.definition_sha256
        );
    }
    Ok((def, lock))
}

/// The mirror lines for the definition's suites: `TIMB_CONTAINER_SOURCES`, else the machine's apt.
fn builder_mirror_lines(def: &ContainerDef) -> Result<Vec<String>> {
    let mirrors = match std::env::var_os("TIMB_CONTAINER_SOURCES") {
        Some(f) => {
            let f = PathBuf::from(f);
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("reading TIMB_CONTAINER_SOURCES={}", f.display()))?;
            apt::parse(&text, Format::of(&f).unwrap_or(Format::OneLine))
        }
        None => apt::read_config(Path::new("/etc/apt"))?,
    };
    mirror_lines(def, &mirrors)
}

fn ensure_tools() -> Result<()> {
    if !util::have_command("mmdebstrap") {
        crate::provision::ensure(&["mmdebstrap"])?;
    }
    if !util::have_command("bwrap") {
        crate::provision::ensure(&["bubblewrap"])?;
    }
    Ok(())
}

/// Resolves the definition against the builder's mirror as it is today and returns the lock
/// of what was installed (`cargo xtask container lock`). Nothing is cached or kept: mmdebstrap
/// runs with the `null` format, and its hooks copy out only the dpkg status and the Packages
/// indexes apt checked against the archive's signature.
pub fn resolve_lock(root: &Path, work: &Path) -> Result<Lock> {
    let (def, def_sha) = read_definition(root)?;
    ensure_tools()?;
    let lines = builder_mirror_lines(&def)?;
    let tmp = work.join(format!(".lock-{}", std::process::id()));
    remove_tree(&tmp)?;
    std::fs::create_dir_all(tmp.join("lists"))?;
    let tmp = tmp.canonicalize()?;
    let mut cmd = mmdebstrap(&def, &lines, Path::new("/dev/null"))?;
    cmd.arg("--format=null")
        .arg(format!(
            "--customize-hook=sync-out /var/lib/apt/lists {}",
            tmp.join("lists").display()
        ))
        .arg(format!(
            "--customize-hook=copy-out /var/lib/dpkg/status {}",
            tmp.display()
        ));
    let result = (|| {
        util::run(&mut cmd).context("resolving the container with mmdebstrap")?;
        let status = std::fs::read_to_string(tmp.join("status"))
            .context("reading the resolved dpkg status")?;
        let mut indexes = Vec::new();
        for e in std::fs::read_dir(tmp.join("lists"))? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with("_Packages") {
                indexes.push(std::fs::read_to_string(e.path())?);
            }
        }
        if indexes.is_empty() {
            bail!("mmdebstrap left no (uncompressed) Packages index to look the files up in");
        }
        lock::lock_from(&def_sha, &status, &lock::index(&indexes))
    })();
    let _ = remove_tree(&tmp);
    result
}

/// Downloads (or finds) every file of the lock into `cache_dir/debs`, checked by sha256, so
/// a later build needs no mirror (`cargo xtask fetch --check`); returns how many and the id.
pub fn fetch_locked(root: &Path, cache_dir: &Path) -> Result<(usize, String)> {
    let (def, lock) = definition_and_lock(root)?;
    let lines = builder_mirror_lines(&def)?;
    let debs = lock::fetch_debs(&lock, &lock::mirror_bases(&lines), &cache_dir.join("debs"))?;
    Ok((debs.len(), lock.rootfs_id()))
}

/// Returns the rootfs the lock describes, building it into `cache_dir` unless a build of the
/// same lock is already there.
pub fn ensure_rootfs(root: &Path, cache_dir: &Path) -> Result<Rootfs> {
    let (def, lock) = definition_and_lock(root)?;
    let id = lock.rootfs_id();
    let entry = format!("{}-{}", def.name, &id[..16]);
    let base = cache_dir.join(&entry);
    if let Ok(have) = std::fs::read_to_string(base.join("ID")) {
        if have.trim() == id && base.join("rootfs/usr").is_dir() {
            return Ok(Rootfs {
                dir: base.join("rootfs"),
                id,
            });
        }
    }

    ensure_tools()?;
    let lines = builder_mirror_lines(&def)?;
    std::fs::create_dir_all(cache_dir)?;
    let cache_dir = cache_dir.canonicalize()?;
    let started = std::time::Instant::now();
    // By sha256, so kept across lock changes and only ever the locked bytes.
    let debs = lock::fetch_debs(&lock, &lock::mirror_bases(&lines), &cache_dir.join("debs"))?;
    let tmp = cache_dir.join(format!(".tmp-{entry}-{}", std::process::id()));
    remove_tree(&tmp)?;
    std::fs::create_dir_all(&tmp)?;
    eprintln!(
        "    container {}: building the root file system from the {} locked packages with mmdebstrap",
        def.name,
        debs.len()
    );
    let tar_sha = match build_into(&def, &lock, &debs, &tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
    };
    std::fs::write(
        tmp.join("sources.txt"),
        format!("# the locked files came from\n{}\n", lines.join("\n")),
    )?;
    std::fs::write(tmp.join("ID"), format!("{id}\n"))?;
    remove_tree(&base)?;
    std::fs::rename(&tmp, &base)
        .with_context(|| format!("moving the rootfs into {}", base.display()))?;
    remove_stale(&cache_dir, &def.name, &entry);
    eprintln!(
        "    container {}: {} packages, tarball sha256 {}, id {} ({:.0} s)",
        def.name,
        debs.len(),
        &tar_sha[..16],
        &id[..16],
        started.elapsed().as_secs_f64()
    );
    Ok(Rootfs {
        dir: base.join("rootfs"),
        id,
    })
}

/// mmdebstrap from a local repository of exactly the locked files into `tmp/rootfs.tar`,
/// extraction into `tmp/rootfs`, a check that what got installed is the lock, and the files
/// beside it; returns the tarball's sha256.
fn build_into(
    def: &ContainerDef,
    lock: &Lock,
    debs: &[(lock::Locked, PathBuf)],
    tmp: &Path,
) -> Result<String> {
    let repo = tmp.join("repo");
    lock::local_repo(debs, &def.suite, &def.architecture, &repo)?;
    let line = format!(
        "deb [trusted=yes] file://{} {} main",
        repo.display(),
        def.suite
    );
    let tarball = tmp.join("rootfs.tar");
    let mut cmd = mmdebstrap(def, &[line], &tarball)?;
    // The hook bind-mounts the repository at its own path inside the chroot and unmounts
    // it at the end, but leaves the folders it made for the mount point, which would put
    // this builder's cache path into the tarball. After it (hooks run in command-line
    // order), they are removed from the deepest up, stopping at the first folder a package
    // owns or that holds anything else.
    cmd.arg(format!("--hook-dir={FILE_MIRROR_HOOKS}"))
        .arg(format!(
            "--customize-hook=p={}; while [ \"$p\" != / ] && ! grep -qxF \"$p\" \"$1\"/var/lib/dpkg/info/*.list \
             && rmdir \"$1$p\" 2>/dev/null; do p=$(dirname \"$p\"); done",
            shell_quote(&repo.to_string_lossy())
        ));
    util::run(&mut cmd).context("building the container root file system")?;
    remove_tree(&repo)?;
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

    let status = std::fs::read_to_string(dir.join("var/lib/dpkg/status"))
        .context("reading the container's dpkg status")?;
    let installed = installed_list(&status);
    let locked = lock.package_list();
    if installed != locked {
        let (a, b): (Vec<&str>, Vec<&str>) =
            (installed.lines().collect(), locked.lines().collect());
        let extra: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
        let absent: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
        bail!(
            "the container is not its lock: installed but not locked {extra:?}, locked but not \
             installed {absent:?}; {LOCK} does not match {DEFINITION}: run `cargo xtask container lock`"
        );
    }
    std::fs::write(tmp.join("packages.txt"), installed_packages(&dir)?)?;
    std::fs::write(
        tmp.join("rootfs.tar.sha256"),
        format!("{tar_sha}  rootfs.tar\n"),
    )?;
    Ok(tar_sha)
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `package version` per installed package in a dpkg status file, sorted.
fn installed_list(status: &str) -> String {
    let mut lines: Vec<String> = lock::installed(status)
        .into_iter()
        .map(|(package, version, _)| format!("{package} {version}\n"))
        .collect();
    lines.sort();
    lines.concat()
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
    fn shell_quoting_survives_quotes_and_spaces() {
        let word = shell_quote("/a b/it's/$x");
        let out = Command::new("sh")
            .args(["-c", &format!("printf %s {word}")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "/a b/it's/$x");
    }

    #[test]
    fn the_installed_list_is_what_dpkg_says_is_installed() {
        let status = "Package: b\nStatus: install ok installed\nVersion: 2\n\n\
                      Package: a\nStatus: install ok installed\nVersion: 1:1.0\n\n\
                      Package: c\nStatus: deinstall ok config-files\nVersion: 3\n";
        assert_eq!(installed_list(status), "a 1:1.0\nb 2\n");
    }
}
