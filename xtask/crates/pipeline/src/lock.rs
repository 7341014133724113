//! The build container's lock: every package the root file system holds, its exact version,
//! architecture, the sha256 of its `.deb` and where in a Debian mirror's pool it lives.
//!
//! Without it the container was whatever the mirror served on the day of the build, so a point
//! release or a security update silently changed the build environment (and every build id).
//! With it a build downloads exactly the locked files (any mirror of the archive will do: the
//! pool path is the same everywhere, and the sha256 is checked here, not taken from the
//! mirror), makes a local repository of only those files and bootstraps from that alone, so
//! nothing else can be installed. The rootfs id is derived from the lock's bytes: two builders
//! with the same lock know their id before building. `cargo xtask container lock` writes the
//! lock on purpose, from what the mirror resolves the definition to today.

use crate::util::{self, sha256_bytes, sha256_file};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// apt's own downloader: the builder's proxy and transport settings apply, as for apt.
const APT_HELPER: &str = "/usr/lib/apt/apt-helper";

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Locked {
    pub package: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
    /// The path below a mirror's base URI (`pool/main/g/gcc-12/…deb`).
    pub filename: String,
}

/// The parsed lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The sha256 of the definition it was made from: a lock of another definition is refused.
    pub definition_sha256: String,
    pub packages: Vec<Locked>,
}

const HEADER: &str = "\
# The build container's exact contents: the definition beside this file, resolved against the
# Debian mirror by `cargo xtask container lock`. Do not edit by hand. Every build downloads
# exactly these files, checks each sha256, installs them from a local repository holding
# nothing else, and derives the rootfs id from this file (containers/README.md).
# package version architecture sha256 pool-path
";

impl Lock {
    /// Parses a lock file; any malformed line is an error naming it.
    pub fn parse(text: &str) -> Result<Lock> {
        let mut definition = None;
        let mut packages = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["definition", sha] if is_sha256(sha) => {
                    if definition.replace((*sha).to_string()).is_some() {
                        bail!("line {n}: a second `definition` line");
                    }
                }
                [package, version, arch, sha, filename] => {
                    let l = Locked {
                        package: (*package).to_string(),
                        version: (*version).to_string(),
                        arch: (*arch).to_string(),
                        sha256: (*sha).to_string(),
                        filename: (*filename).to_string(),
                    };
                    l.check().with_context(|| format!("line {n}"))?;
                    packages.push(l);
                }
                _ => bail!(
                    "line {n}: expected `package version architecture sha256 pool-path` or \
                     `definition SHA256`, got {line:?}"
                ),
            }
        }
        let definition_sha256 =
            definition.context("no `definition SHA256` line (run `cargo xtask container lock`)")?;
        if packages.is_empty() {
            bail!("no packages");
        }
        let mut names: Vec<(&str, &str)> = packages
            .iter()
            .map(|p| (p.package.as_str(), p.arch.as_str()))
            .collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("{} {} is locked twice", w[0].0, w[0].1);
        }
        Ok(Lock {
            definition_sha256,
            packages,
        })
    }

    /// The file's text: sorted, so the same resolution always gives the same bytes.
    pub fn render(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        let mut s = format!("{HEADER}definition {}\n", self.definition_sha256);
        for p in &packages {
            s.push_str(&format!(
                "{} {} {} {} {}\n",
                p.package, p.version, p.arch, p.sha256, p.filename
            ));
        }
        s
    }

    /// The rootfs id: what the lock pins, known before anything is downloaded or built.
    pub fn rootfs_id(&self) -> String {
        sha256_bytes(format!("timb-container v2\n{}", self.render()).as_bytes())
    }

    /// `package version` per line, sorted: the form `dpkg-query` gives of a built rootfs.
    pub fn package_list(&self) -> String {
        let mut lines: Vec<String> = self
            .packages
            .iter()
            .map(|p| format!("{} {}\n", p.package, p.version))
            .collect();
        lines.sort();
        lines.concat()
    }
}

impl Locked {
    /// Every field ends up in a file name, a URL or a Packages index: nothing that could
    /// leave the pool or break a line.
    fn check(&self) -> Result<()> {
        let word = |s: &str, extra: &str| {
            !s.is_empty()
                && s.as_bytes()[0].is_ascii_alphanumeric()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        };
        if !word(&self.package, "+-.") {
            bail!("bad package name {:?}", self.package);
        }
        if !word(&self.version, "+-.~:") {
            bail!("bad version {:?} of {}", self.version, self.package);
        }
        if !word(&self.arch, "-") {
            bail!("bad architecture {:?} of {}", self.arch, self.package);
        }
        if !is_sha256(&self.sha256) {
            bail!("bad sha256 {:?} of {}", self.sha256, self.package);
        }
        let f = &self.filename;
        if !f.starts_with("pool/")
            || !f.ends_with(".deb")
            || f.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-._~/%".contains(c))
        {
            bail!("bad pool path {f:?} of {}", self.package);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} {} ({})", self.package, self.version, self.arch)
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The stanzas of a deb822 file (a Packages index, dpkg's status file) as field maps;
/// continuation lines are kept in their field.
pub fn stanzas(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| cur.get_mut(k)) {
                v.push('\n');
                v.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.insert(k.to_string(), v.trim().to_string());
            last = Some(k.to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a lock records of a package, from a mirror's (signed, apt-checked) Packages indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub sha256: String,
    pub filename: String,
}

/// `(package, version, arch) -> entry` over Packages index texts.
pub fn index(texts: &[String]) -> BTreeMap<(String, String, String), IndexEntry> {
    let mut map = BTreeMap::new();
    for t in texts {
        for s in stanzas(t) {
            let get = |k: &str| s.get(k).cloned().unwrap_or_default();
            map.insert(
                (get("Package"), get("Version"), get("Architecture")),
                IndexEntry {
                    sha256: get("SHA256"),
                    filename: get("Filename"),
                },
            );
        }
    }
    map
}

/// `(package, version, architecture)` of every package a dpkg status file says is installed.
pub fn installed(status: &str) -> Vec<(String, String, String)> {
    stanzas(status)
        .into_iter()
        .filter(|s| s.get("Status").is_some_and(|v| v.ends_with(" installed")))
        .map(|s| {
            let get = |k: &str| s.get(k).cloned().unwrap_or_default();
            (get("Package"), get("Version"), get("Architecture"))
        })
        .collect()
}

/// The lock of a resolved rootfs: its dpkg status (what was installed) looked up in the
/// Packages indexes it was installed from.
pub fn lock_from(
    definition_sha256: &str,
    status: &str,
    index: &BTreeMap<(String, String, String), IndexEntry>,
) -> Result<Lock> {
    let mut packages = Vec::new();
    for key in installed(status) {
        let e = index.get(&key).with_context(|| {
            format!(
                "{} {} ({}) is installed but in no Packages index the bootstrap used",
                key.0, key.1, key.2
            )
        })?;
        let l = Locked {
            package: key.0,
            version: key.1,
            arch: key.2,
            sha256: e.sha256.clone(),
            filename: e.filename.clone(),
        };
        l.check()?;
        packages.push(l);
    }
    packages.sort();
    let lock = Lock {
        definition_sha256: definition_sha256.to_string(),
        packages,
    };
    // What was rendered must read back as the same lock.
    Lock::parse(&lock.render()).context("the resolved lock does not read back")?;
    Ok(lock)
}

/// The base URIs of mirror lines (`deb [opts] URI SUITE COMPONENTS`), each once, in order.
pub fn mirror_bases(lines: &[String]) -> Vec<String> {
    let mut bases: Vec<String> = Vec::new();
    for l in lines {
        let rest = l.strip_prefix("deb ").unwrap_or(l);
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once("] ").map_or("", |(_, after)| after),
            None => rest,
        };
        if let Some(uri) = rest.split_whitespace().next() {
            let uri = uri.trim_end_matches('/').to_string();
            if !bases.contains(&uri) {
                bases.push(uri);
            }
        }
    }
    bases
}

/// Makes every locked `.deb` available in `debs/` (named by its sha256, so a cache shared
/// between builds can only ever hold the locked bytes), downloading what is missing from the
/// first mirror base that has it. A file whose sha256 is not the lock's is refused and
/// deleted; a package no mirror serves is an error that says how to rebuild from a snapshot.
pub fn fetch_debs(lock: &Lock, bases: &[String], debs: &Path) -> Result<Vec<(Locked, PathBuf)>> {
    std::fs::create_dir_all(debs).with_context(|| format!("creating {}", debs.display()))?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for p in &lock.packages {
        let dest = debs.join(format!("{}.deb", p.sha256));
        if dest.is_file() && sha256_file(&dest)? == p.sha256 {
            out.push((p.clone(), dest));
        } else {
            missing.push((p.clone(), dest));
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "    container: downloading {} locked packages ({} already here)",
            missing.len(),
            out.len()
        );
    }
    // A few at a time: one request each, mostly waiting on the mirror.
    let results: Vec<Result<(Locked, PathBuf)>> = std::thread::scope(|scope| {
        let chunks: Vec<_> = missing.chunks(missing.len().div_ceil(4).max(1)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(p, dest)| {
                            download_one(p, bases, dest).map(|()| (p.clone(), dest.clone()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("a download thread panicked"))])
            })
            .collect()
    });
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!(
            "{}\n(the lock is {}; a rebuilder of an older release uses a snapshot of the archive \
             from when it was made: TIMB_CONTAINER_SOURCES=snapshot.sources, see \
             containers/README.md; `cargo xtask container lock` makes a new lock on purpose)",
            errors.join("\n"),
            crate::container::LOCK
        );
    }
    out.sort();
    Ok(out)
}

/// Downloads `p` from the first base that serves it, checked against its sha256.
pub(crate) fn download_one(p: &Locked, bases: &[String], dest: &Path) -> Result<()> {
    let partial = dest.with_extension("partial");
    let mut tried = Vec::new();
    for base in bases {
        let _ = std::fs::remove_file(&partial);
        let uri = format!("{base}/{}", p.filename);
        let out = Command::new(APT_HELPER)
            .args(["-o", "APT::Sandbox::User=root", "download-file"])
            .arg(&uri)
            .arg(&partial)
            .output()
            .with_context(|| format!("running {APT_HELPER}"))?;
        if !out.status.success() {
            tried.push(base.as_str());
            continue;
        }
        // apt's file: method links to the mirror's file instead of copying it; the cache
        // keeps its own copy.
        if std::fs::symlink_metadata(&partial).is_ok_and(|m| m.file_type().is_symlink()) {
            let data = std::fs::read(&partial)?;
            std::fs::remove_file(&partial)?;
            std::fs::write(&partial, data)?;
        }
        let got = sha256_file(&partial)?;
        let _ = std::fs::remove_file(dest);
        if got != p.sha256 {
            let _ = std::fs::remove_file(&partial);
            bail!(
                "{} from {base} is not the locked file: its sha256 is {got}, the lock says {}; \
                 it was deleted",
                p.describe(),
                p.sha256
            );
        }
        std::fs::rename(&partial, dest)
            .with_context(|| format!("moving {} into place", dest.display()))?;
        return Ok(());
    }
    let _ = std::fs::remove_file(&partial);
    bail!(
        "the mirror no longer serves {} ({}; tried {})",
        p.describe(),
        p.filename,
        if tried.is_empty() {
            "no mirror".to_string()
        } else {
            tried.join(", ")
        }
    )
}

/// A repository holding exactly `debs` (`dists/SUITE/main/binary-ARCH/Packages` and an
/// unsigned `Release`: the files were checked against the lock, which is the trust here),
/// for a `deb [trusted=yes] file:…` line. Each stanza is the package's own control file as
/// `dpkg-deb` prints it, plus where the file is and its size and hash.
pub fn local_repo(debs: &[(Locked, PathBuf)], suite: &str, arch: &str, dir: &Path) -> Result<()> {
    let pool = dir.join("pool");
    let lists = dir.join(format!("dists/{suite}/main/binary-{arch}"));
    std::fs::create_dir_all(&pool)?;
    std::fs::create_dir_all(&lists)?;
    let mut index = String::new();
    for (p, path) in debs {
        let name = format!("{}.deb", p.sha256);
        let to = pool.join(&name);
        if std::fs::hard_link(path, &to).is_err() {
            std::fs::copy(path, &to).with_context(|| format!("copying {}", path.display()))?;
        }
        let control = util::output(Command::new("dpkg-deb").arg("-f").arg(path))
            .with_context(|| format!("reading the control file of {}", p.describe()))?;
        let fields = stanzas(&control);
        let [f] = fields.as_slice() else {
            bail!("{} has no single control stanza", p.describe());
        };
        let same = |k: &str, v: &str| f.get(k).map(String::as_str) == Some(v);
        if !same("Package", &p.package) || !same("Version", &p.version) {
            bail!(
                "{} is locked as {}, but its control file says {:?} {:?}",
                name,
                p.describe(),
                f.get("Package"),
                f.get("Version")
            );
        }
        let size = std::fs::metadata(path)?.len();
        index.push_str(control.trim_end());
        index.push_str(&format!(
            "\nFilename: pool/{name}\nSize: {size}\nSHA256: {}\n\n",
            p.sha256
        ));
    }
    std::fs::write(lists.join("Packages"), &index)?;
    let release = format!(
        "Suite: {suite}\nCodename: {suite}\nComponents: main\nArchitectures: {arch}\nSHA256:\n {} {} main/binary-{arch}/Packages\n",
        sha256_bytes(index.as_bytes()),
        index.len()
    );
    std::fs::write(dir.join(format!("dists/{suite}/Release")), release)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn text(version: &str) -> String {
        format!(
            "# comment\ndefinition {SHA_A}\n\
             gcc-12 {version} amd64 {SHA_B} pool/main/g/gcc-12/gcc-12_{version}_amd64.deb\n\
             base-files 12.4+deb12u5 amd64 {SHA_A} pool/main/b/base-files/base-files_12.4+deb12u5_amd64.deb\n"
        )
    }

    #[test]
    fn a_lock_reads_back_the_same_and_renders_sorted() {
        let lock = Lock::parse(&text("12.2.0-14")).unwrap();
        assert_eq!(lock.packages.len(), 2);
        let rendered = lock.render();
        assert_eq!(Lock::parse(&rendered).unwrap().render(), rendered);
        let base = rendered.find("base-files").unwrap();
        assert!(base < rendered.find("gcc-12 ").unwrap(), "{rendered}");
    }

    #[test]
    fn a_changed_version_changes_the_rootfs_id() {
        let a = Lock::parse(&text("12.2.0-14")).unwrap();
        let b = Lock::parse(&text("12.2.0-14+deb12u1")).unwrap();
        assert_ne!(a.rootfs_id(), b.rootfs_id());
        assert_eq!(
            a.rootfs_id(),
            Lock::parse(&text("12.2.0-14")).unwrap().rootfs_id()
        );
        // Comments do not count; the rendered form does.
        let c = Lock::parse(&text("12.2.0-14").replace("# comment\n", "")).unwrap();
        assert_eq!(a.rootfs_id(), c.rootfs_id());
    }

    #[test]
    fn hostile_or_broken_locks_are_refused() {
        let ok = text("1.0");
        for (bad, why) in [
            (
                ok.replace(&format!("definition {SHA_A}\n"), ""),
                "definition",
            ),
            (ok.replace("pool/main/g", "/etc/g"), "pool path"),
            (ok.replace("pool/main/g", "pool/../../g"), "pool path"),
            (ok.replace(SHA_B, "xyz"), "sha256"),
            (ok.replace("gcc-12 1.0", "gcc-12 1.0 extra"), "expected"),
            (ok.replace("gcc-12 1.0", "gcc;rm 1.0"), "package name"),
            (
                format!("{ok}{}", ok.lines().nth(2).unwrap()),
                "locked twice",
            ),
        ] {
            let err = format!("{:#}", Lock::parse(&bad).unwrap_err());
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn the_lock_comes_from_what_was_installed_and_the_index() {
        let status = "Package: gcc-12\nStatus: install ok installed\nVersion: 12.2.0-14\nArchitecture: amd64\nDescription: x\n more\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n";
        let packages = format!(
            "Package: gcc-12\nVersion: 12.2.0-14\nArchitecture: amd64\nFilename: pool/main/g/gcc-12/g.deb\nSHA256: {SHA_B}\n\n\
             Package: gcc-12\nVersion: 12.2.0-13\nArchitecture: amd64\nFilename: pool/main/g/gcc-12/old.deb\nSHA256: {SHA_A}\n"
        );
        let idx = index(&[packages]);
        let lock = lock_from(SHA_A, status, &idx).unwrap();
        assert_eq!(lock.packages.len(), 1);
        assert_eq!(lock.packages[0].filename, "pool/main/g/gcc-12/g.deb");
        assert_eq!(lock.package_list(), "gcc-12 12.2.0-14\n");
        let err = lock_from(SHA_A, &status.replace("12.2.0-14", "12.2.0-15"), &idx).unwrap_err();
        assert!(
            format!("{err:#}").contains("in no Packages index"),
            "{err:#}"
        );
    }

    #[test]
    fn mirror_bases_are_the_uris_once_each() {
        let lines = [
            "deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm main"
                .to_string(),
            "deb [arch=amd64] http://deb.debian.org/debian/ bookworm-updates main".to_string(),
            "deb http://deb.debian.org/debian-security bookworm-security main".to_string(),
        ];
        assert_eq!(
            mirror_bases(&lines),
            [
                "http://deb.debian.org/debian",
                "http://deb.debian.org/debian-security"
            ]
        );
    }

    /// A tiny real `.deb`, built with dpkg-deb (always there on Debian).
    fn deb(dir: &Path, name: &str, version: &str) -> PathBuf {
        let tree = dir.join(format!("tree-{name}"));
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        std::fs::write(
            tree.join("DEBIAN/control"),
            format!("Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n"),
        )
        .unwrap();
        let out = dir.join(format!("{name}.deb"));
        let st = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&tree)
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        out
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("timb-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A file:// mirror with one package in its pool, and the lock entry for it.
    fn mirror(dir: &Path) -> (String, Locked) {
        let built = deb(dir, "hello", "1.0");
        let pool = dir.join("mirror/pool/main/h/hello");
        std::fs::create_dir_all(&pool).unwrap();
        std::fs::copy(&built, pool.join("hello_1.0_all.deb")).unwrap();
        let locked = Locked {
            package: "hello".into(),
            version: "1.0".into(),
            arch: "all".into(),
            sha256: sha256_file(&built).unwrap(),
            filename: "pool/main/h/hello/hello_1.0_all.deb".into(),
        };
        (format!("file://{}", dir.join("mirror").display()), locked)
    }

    fn lock_of(p: &Locked) -> Lock {
        Lock {
            definition_sha256: SHA_A.into(),
            packages: vec![p.clone()],
        }
    }

    #[test]
    fn locked_debs_are_fetched_checked_and_made_a_repository() {
        let dir = scratch("fetch");
        let (base, locked) = mirror(&dir);
        let debs = dir.join("debs");
        // A mirror that does not have it first: the next one is asked.
        let missing = format!("file://{}", dir.join("empty").display());
        let got = fetch_debs(&lock_of(&locked), &[missing, base], &debs).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(sha256_file(&got[0].1).unwrap(), locked.sha256);
        // Cached by hash: no mirror needed the second time.
        fetch_debs(&lock_of(&locked), &[], &debs).unwrap();

        let repo = dir.join("repo");
        local_repo(&got, "bookworm", "amd64", &repo).unwrap();
        let packages =
            std::fs::read_to_string(repo.join("dists/bookworm/main/binary-amd64/Packages"))
                .unwrap();
        let idx = index(&[packages]);
        let e = &idx[&("hello".into(), "1.0".into(), "all".into())];
        assert_eq!(e.sha256, locked.sha256);
        assert!(repo.join(&e.filename).is_file());
        let release = std::fs::read_to_string(repo.join("dists/bookworm/Release")).unwrap();
        assert!(release.contains("main/binary-amd64/Packages"), "{release}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_deb_that_is_not_the_locked_one_is_refused_and_deleted() {
        let dir = scratch("mismatch");
        let (base, mut locked) = mirror(&dir);
        locked.sha256 = SHA_B.into();
        let debs = dir.join("debs");
        let err = format!(
            "{:#}",
            fetch_debs(&lock_of(&locked), &[base], &debs).unwrap_err()
        );
        assert!(
            err.contains("hello 1.0 (all)") && err.contains("is not the locked file"),
            "{err}"
        );
        assert!(err.contains(SHA_B), "{err}");
        assert_eq!(std::fs::read_dir(&debs).unwrap().count(), 0, "nothing kept");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_version_the_mirror_no_longer_serves_says_how_to_rebuild() {
        let dir = scratch("gone");
        let (base, mut locked) = mirror(&dir);
        locked.version = "0.9".into();
        locked.filename = "pool/main/h/hello/hello_0.9_all.deb".into();
        let err = format!(
            "{:#}",
            fetch_debs(&lock_of(&locked), &[base], &dir.join("debs")).unwrap_err()
        );
        assert!(
            err.contains("the mirror no longer serves hello 0.9 (all)"),
            "{err}"
        );
        assert!(err.contains("TIMB_CONTAINER_SOURCES="), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_repository_refuses_a_file_whose_control_is_another_package() {
        let dir = scratch("control");
        let (base, mut locked) = mirror(&dir);
        let got = fetch_debs(&lock_of(&locked), &[base], &dir.join("debs")).unwrap();
        locked.package = "other".into();
        let err = local_repo(
            &[(locked, got[0].1.clone())],
            "bookworm",
            "amd64",
            &dir.join("r"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("control file says"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
