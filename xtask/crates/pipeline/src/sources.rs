//! Fetching pinned upstream source archives through the machine's own Debian mirror (and the
//! few pinned PyPI wheels through its own pip index).
//!
//! No mirror address is written into the repository: builders in different places use the
//! mirror (or proxy, or snapshot) their apt is already configured with, and trust comes only
//! from the sha256 pinned in `rbm-projects/*.toml` (read by the pins crate), never from the transport.
//!
//! Flow: read the configured `deb` URIs/suites/components from `/etc/apt/sources.list` and
//! `/etc/apt/sources.list.d/*.{list,sources}`, write them as `deb-src` lines into a private
//! sources list, run `apt-get update` against a private lists directory (the system's apt
//! state is never touched), ask `apt-get source --print-uris` for the archive's URI, and
//! download just that one file with `apt-helper` (the Debian patch tarball is not needed and
//! is not always served). A source package those suites do not carry (lyrebird is in sid
//! only), and every binary package (`.deb`), comes from the pool by Debian's layout instead,
//! which holds a file while any suite names it: once none does, a snapshot mirror does
//! (`TIMB_DEBIAN_MIRROR`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::apt::{self, AptRepo};

const APT_ETC: &str = "/etc/apt";
const APT_HELPER: &str = "/usr/lib/apt/apt-helper";

pub use pins::Pinned;

/// Fetches (or finds, verified) every pinned file into `dest_dir`; one private `apt-get update`
/// serves them all and is skipped when everything is already there.
pub fn fetch_many(pins: &[Pinned], dest_dir: &Path) -> Result<Vec<PathBuf>> {
    fetch_many_via(pins, dest_dir, std::env::var(MIRROR_ENV).ok())
}

/// [`fetch_many`], with `mirror` the value of [`MIRROR_ENV`].
fn fetch_many_via(
    pins: &[Pinned],
    dest_dir: &Path,
    mirror: Option<String>,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dest_dir).with_context(|| format!("creating {}", dest_dir.display()))?;
    let mut paths = Vec::new();
    let mut missing = Vec::new();
    for p in pins {
        check_name(&p.package, "package")?;
        check_name(&p.version, "version")?;
        check_name(&p.file, "file")?;
        let want = normalize_sha256(&p.sha256)?;
        let dest = dest_dir.join(&p.file);
        if dest.exists() {
            if sha256_file(&dest)? == want {
                paths.push(dest);
                continue;
            }
            fs::remove_file(&dest).with_context(|| format!("removing stale {}", dest.display()))?;
        }
        missing.push((p, want, dest.clone()));
        paths.push(dest);
    }
    // Wheels come from the Python Package Index, through pip's own configuration.
    let (wheels, missing): (Vec<_>, Vec<_>) = missing
        .into_iter()
        .partition(|(p, _, _)| p.registry == pins::Registry::PyPI);
    for (p, want, dest) in wheels {
        fetch_wheel(p, &want, &dest)?;
    }
    if missing.is_empty() {
        return Ok(paths);
    }
    // Without apt (a Mac), or when the builder names a mirror: straight from the pool,
    // source archives and binary packages alike.
    if let Some(mirror) = http_mirror(mirror)? {
        for (p, want, dest) in missing {
            let partial = dest_dir.join(format!(".{}.partial", p.file));
            download_http(&mirror, &pool_path(p), &partial)
                .with_context(|| format!("downloading {} ({} {})", p.file, p.package, p.version))?;
            verify_and_place(&partial, &dest, &want)?;
        }
        return Ok(paths);
    }
    // Binary packages (the standard library's source, `rust-src_….deb`) are not files of a
    // source package: they come from the pool by Debian's fixed layout, from each configured
    // mirror in turn. As for the rest, the pinned sha256 is the trust, not the mirror.
    let (debs, missing): (Vec<_>, Vec<_>) = missing
        .into_iter()
        .partition(|(p, _, _)| p.file.ends_with(".deb"));
    // The configured mirrors, read once for every file fetched from a pool.
    let bases: Vec<String> = debian_repos(Path::new(APT_ETC))?
        .into_iter()
        .map(|r| r.uri.trim_end_matches('/').to_string())
        .collect();
    for (p, want, dest) in debs {
        from_pool(p, &want, &dest, &bases)?;
    }
    if missing.is_empty() {
        return Ok(paths);
    }
    let work = TempDir::new(dest_dir)?;
    let opts = write_src_sources(&work.0, &debian_repos(Path::new(APT_ETC))?)?;
    for (p, want, dest) in missing {
        let uri = match find_uri(&opts, &p.package, &p.version, &p.file, &want) {
            Ok(uri) => uri,
            // A source package the configured suites do not carry (lyrebird is in sid
            // only): the pool keeps its files by the same layout as binary packages'.
            Err(e) => {
                from_pool(p, &want, &dest, &bases)
                    .with_context(|| format!("{e:#}; nor from the pool by Debian's layout"))?;
                continue;
            }
        };
        let partial = dest_dir.join(format!(".{}.partial", p.file));
        let _ = fs::remove_file(&partial);
        let status = Command::new(APT_HELPER)
            .args(["-o", "APT::Sandbox::User=root", "download-file"])
            .arg(&uri)
            .arg(&partial)
            .arg(format!("SHA256:{want}"))
            // stdout carries results (`bundle` prints the archive path); apt's chatter goes to stderr.
            .stdout(std::io::stderr())
            .status()
            .with_context(|| format!("running {APT_HELPER}"))?;
        if !status.success() {
            let _ = fs::remove_file(&partial);
            bail!(
                "downloading {} ({} {}) through apt failed: {status}",
                p.file,
                p.package,
                p.version
            );
        }
        verify_and_place(&partial, &dest, &want)?;
    }
    Ok(paths)
}

/// Makes every `file` input of every project available in the sources
/// folder, its sha256 checked; one private apt update serves them all.
pub fn fetch_pinned_sources(root: &Path) -> Result<()> {
    let pins = pinned_sources(root)?;
    let dir = crate::util::sources_dir(root);
    fetch_many(&pins, &dir)?;
    // The crates a pinned standard library source builds from, before the offline sandbox.
    crate::std_src::fetch_crates(&pins, &dir)
}

/// Every `file` input of every project, each once.
pub fn pinned_sources(root: &Path) -> Result<Vec<Pinned>> {
    let mut all = Vec::new();
    for name in crate::project::list_projects(root)? {
        // Parsed strictly first, so a malformed definition is reported as such.
        let project = crate::project::load_project(root, &name)?;
        for input in &project.def.input {
            if let pins::InputKind::File(pin) = input.kind()? {
                all.push(pin.to_owned());
            }
        }
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// Downloads the pinned wheel `p` with `pip download` (the machine's index and proxy
/// settings, as apt's for the rest) into `dest`, only if its sha256 is `want`. pip is told the
/// exact version and the platform the file name carries, so it can pick no other file.
fn fetch_wheel(p: &Pinned, want: &str, dest: &Path) -> Result<()> {
    // NAME-VERSION-PYTHON-ABI-PLATFORM.whl; a platform may be several, joined by dots.
    let parts: Vec<&str> = p
        .file
        .strip_suffix(".whl")
        .map(|f| f.split('-').collect())
        .unwrap_or_default();
    let [_, version, _, _, platforms] = parts[..] else {
        bail!(
            "{} is not a wheel's file name (NAME-VERSION-PY-ABI-PLATFORM.whl)",
            p.file
        );
    };
    if version != p.version {
        bail!(
            "{} does not hold version {} of {}",
            p.file,
            p.version,
            p.package
        );
    }
    crate::provision::ensure(&["python3-pip"])?;
    let dir = dest
        .parent()
        .context("a wheel's destination has a folder")?
        .join(format!(".pip-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
    ])
    .arg("--dest")
    .arg(&dir);
    for platform in platforms.split('.') {
        pip.arg("--platform").arg(platform);
    }
    pip.arg(format!("{}=={}", p.package, p.version));
    let got = crate::util::run(&mut pip)
        .with_context(|| format!("downloading {} {} from PyPI with pip", p.package, p.version));
    let r = got.and_then(|()| {
        let file = dir.join(&p.file);
        if !file.is_file() {
            bail!(
                "pip downloaded {} {} but not {} (is the index serving another build of it?)",
                p.package,
                p.version,
                p.file
            );
        }
        verify_and_place(&file, dest, want)
    });
    let _ = fs::remove_dir_all(&dir);
    r
}

/// The variable naming a Debian mirror to fetch pinned files from over HTTP, by the pool's
/// layout, instead of through apt: a Mac has no apt, and a rebuild years later names a
/// snapshot (`https://snapshot.debian.org/archive/debian/20261201T000000Z`).
pub const MIRROR_ENV: &str = "TIMB_DEBIAN_MIRROR";

/// The mirror [`MIRROR_ENV`] names; none when it is unset and apt is here; an error saying
/// what to set when neither is.
fn http_mirror(named: Option<String>) -> Result<Option<String>> {
    match named {
        Some(m) if !m.trim().is_empty() => {
            let m = m.trim().trim_end_matches('/').to_string();
            if !(m.starts_with("https://") || m.starts_with("http://")) {
                bail!("{MIRROR_ENV}={m}: an http:// or https:// Debian mirror, e.g. https://deb.debian.org/debian");
            }
            Ok(Some(m))
        }
        _ if Path::new(APT_HELPER).exists() => Ok(None),
        _ => bail!(
            "this machine has no apt to fetch the pinned Debian source archives with: set \
             {MIRROR_ENV} to a Debian mirror, e.g. {MIRROR_ENV}=https://deb.debian.org/debian \
             (or a snapshot of it); the files are trusted by their pinned sha256 only"
        ),
    }
}

/// `mirror/path` into `partial` with curl (on every Mac and Debian; the transport is not
/// trusted: the caller checks the pinned sha256). Redirects are followed only to HTTP(S).
fn download_http(mirror: &str, path: &str, partial: &Path) -> Result<()> {
    let url = format!("{mirror}/{path}");
    let _ = fs::remove_file(partial);
    let out = Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--location"])
        .args(["--proto", "=https,http", "--proto-redir", "=https,http"])
        .args(["--retry", "3", "--max-time", "1800", "--output"])
        .arg(partial)
        .arg(&url)
        .output()
        .context("running curl")?;
    if !out.status.success() {
        let _ = fs::remove_file(partial);
        bail!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// `p` downloaded from the pool of each mirror of `bases` in turn (Debian's layout,
/// [`pool_path`]), kept only if its sha256 is `want`.
fn from_pool(p: &Pinned, want: &str, dest: &Path, bases: &[String]) -> Result<()> {
    let arch = match p.file.rsplit_once('_') {
        Some((_, a)) if p.file.ends_with(".deb") => a.trim_end_matches(".deb"),
        _ => "source",
    };
    let locked = crate::lock::Locked {
        package: p.package.clone(),
        version: p.version.clone(),
        arch: arch.into(),
        sha256: want.to_string(),
        filename: pool_path(p),
    };
    crate::lock::download_one(&locked, bases, dest).with_context(|| {
        format!(
            "{} could not be fetched; if no suite of this mirror names it any more, fetch it \
             from a snapshot of the day it was pinned: {MIRROR_ENV}=https://snapshot.debian.org/archive/debian/YYYYMMDDTHHMMSSZ/",
            p.file
        )
    })
}

/// Where the pool keeps a file of source package `package` (a binary package, or the
/// source's own archives): Debian's layout, `pool/main/<l or libl>/<source>/<file>`.
fn pool_path(p: &Pinned) -> String {
    let src = p.package.as_str();
    let prefix = match src.strip_prefix("lib") {
        Some(rest) if !rest.is_empty() => &src[..4],
        _ => &src[..1],
    };
    format!("pool/main/{prefix}/{src}/{}", p.file)
}

/// Moves `partial` to `dest` only if its hash matches; otherwise deletes it and errors.
fn verify_and_place(partial: &Path, dest: &Path, want: &str) -> Result<()> {
    let got = sha256_file(partial)?;
    if got != want {
        let _ = fs::remove_file(partial);
        bail!(
            "sha256 mismatch for {}: expected {want}, got {got}; the file was deleted",
            dest.display()
        );
    }
    fs::rename(partial, dest).with_context(|| format!("placing {}", dest.display()))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn normalize_sha256(s: &str) -> Result<String> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("pinned sha256 must be 64 hex digits, got {s:?}");
    }
    Ok(s)
}

/// Names go onto apt command lines and into paths; refuse anything that could be an option,
/// a path or shell syntax.
fn check_name(s: &str, what: &str) -> Result<()> {
    let ok = !s.is_empty()
        && !s.starts_with('-')
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~:-".contains(&b));
    if !ok {
        bail!("invalid {what} name {s:?}");
    }
    Ok(())
}

/// The machine's `deb` repositories (crate::apt) that can serve the source packages we pin.
fn debian_repos(etc: &Path) -> Result<Vec<AptRepo>> {
    let mut repos = apt::read_config(etc)?;
    // Only Debian archives carry the source packages we pin; third-party repositories
    // (for example a vendor's tool repository) are left out so their failures do not matter.
    repos.retain(|r| {
        r.signed_by
            .as_deref()
            .is_none_or(|s| s.contains("debian-archive"))
    });
    if repos.is_empty() {
        bail!("no Debian `deb` repository found in {}", etc.display());
    }
    Ok(repos)
}

/// Writes the private apt tree and runs `apt-get update` in it; returns the apt options to reuse.
fn write_src_sources(work: &Path, repos: &[AptRepo]) -> Result<Vec<String>> {
    let mut list = String::new();
    for r in repos {
        let opt = r
            .signed_by
            .as_ref()
            .map(|s| format!("[signed-by={s}] "))
            .unwrap_or_default();
        list.push_str(&format!(
            "deb-src {opt}{} {} {}\n",
            r.uri,
            r.suite,
            r.components.join(" ")
        ));
    }
    let src = work.join("sources.list");
    fs::write(&src, list)?;
    for d in ["parts", "lists/partial", "cache/archives/partial", "prefs"] {
        fs::create_dir_all(work.join(d))?;
    }
    let opts = vec![
        format!("Dir::Etc::SourceList={}", src.display()),
        format!("Dir::Etc::SourceParts={}", work.join("parts").display()),
        format!(
            "Dir::Etc::PreferencesParts={}",
            work.join("prefs").display()
        ),
        format!("Dir::State::Lists={}", work.join("lists").display()),
        format!("Dir::Cache={}", work.join("cache").display()),
        "Debug::NoLocking=1".to_string(),
        // Our private directories are owned by the caller, not by `_apt`.
        "APT::Sandbox::User=root".to_string(),
    ];
    let status = apt_get(&opts)
        .args(["-q", "update"])
        .stdout(std::io::stderr())
        .status()
        .context("running apt-get update for deb-src indexes")?;
    if !status.success() {
        bail!("apt-get update (deb-src, private lists) failed: {status}");
    }
    Ok(opts)
}

fn apt_get(opts: &[String]) -> Command {
    let mut c = Command::new("apt-get");
    for o in opts {
        c.arg("-o").arg(o);
    }
    c.env("LC_ALL", "C");
    c
}

/// Asks apt where `file` of `package=version` is and checks apt's index agrees with our pin.
fn find_uri(
    opts: &[String],
    package: &str,
    version: &str,
    file: &str,
    want: &str,
) -> Result<String> {
    let out = apt_get(opts)
        .args(["-q", "source", "--print-uris"])
        .arg(format!("{package}={version}"))
        .output()
        .context("running apt-get source --print-uris")?;
    if !out.status.success() {
        bail!(
            "apt does not know source package {package} {version}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (uri, indexed) = parse_print_uris(&stdout, file).with_context(|| {
        format!("{file} is not part of source package {package} {version} on the configured mirror")
    })?;
    if let Some(h) = indexed {
        if h != want {
            bail!("the mirror's index lists {file} with sha256 {h}, but the pin is {want}");
        }
    }
    Ok(uri)
}

/// Finds `'URI' NAME SIZE SHA256:HEX` for `file` in `apt-get source --print-uris` output.
fn parse_print_uris(out: &str, file: &str) -> Option<(String, Option<String>)> {
    for line in out.lines() {
        let Some(rest) = line.strip_prefix('\'') else {
            continue;
        };
        let Some((uri, tail)) = rest.split_once('\'') else {
            continue;
        };
        let mut words = tail.split_whitespace();
        if words.next() != Some(file) {
            continue;
        }
        let hash = words
            .find_map(|w| w.strip_prefix("SHA256:"))
            .map(|h| h.to_ascii_lowercase());
        return Some((uri.to_string(), hash));
    }
    None
}

/// A scratch directory next to the destination, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path) -> Result<Self> {
        let p = parent.join(format!(".apt-src-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("xtask-sources-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn cached_file_with_matching_hash_is_returned_without_fetching() {
        let dir = scratch("cached");
        fs::write(dir.join("x_1.orig.tar.gz"), b"hello").unwrap();
        // sha256("hello")
        let h = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        // A package name apt cannot know: any attempt to fetch would fail the test.
        let pin = Pinned {
            registry: pins::Registry::Debian,
            package: "no-such-pkg".into(),
            version: "0-0".into(),
            file: "x_1.orig.tar.gz".into(),
            sha256: h.into(),
        };
        let p = fetch_many(&[pin], &dir).unwrap().remove(0);
        assert_eq!(p, dir.join("x_1.orig.tar.gz"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mismatching_download_is_deleted_and_errors() {
        let dir = scratch("mismatch");
        let partial = dir.join(".f.partial");
        fs::write(&partial, b"tampered").unwrap();
        let want = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let err = verify_and_place(&partial, &dir.join("f"), want).unwrap_err();
        assert!(err.to_string().contains("sha256 mismatch"), "{err}");
        assert!(!partial.exists() && !dir.join("f").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wheel_pin_must_be_a_wheel_of_its_version() {
        let dir = scratch("wheel");
        let pin = |file: &str| Pinned {
            registry: pins::Registry::PyPI,
            package: "ziglang".into(),
            version: "0.17.1".into(),
            file: file.into(),
            sha256: "ab".repeat(32),
        };
        // Refused before pip runs: nothing is downloaded.
        let e = fetch_many(&[pin("ziglang-0.17.1.tar.gz")], &dir).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a wheel's file name"),
            "{e:#}"
        );
        let e = fetch_many(&[pin("ziglang-0.16.0-py3-none-any.whl")], &dir).unwrap_err();
        assert!(
            format!("{e:#}").contains("does not hold version 0.17.1"),
            "{e:#}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The Mac's path, on this machine: the C library archive libotr.toml pins (fetched
    /// by `cargo xtask fetch` beforehand), served by a mirror on loopback in the pool's
    /// layout and downloaded with curl. Then a mirror that serves other bytes (the pin
    /// with another sha256) leaves nothing behind.
    #[test]
    fn a_named_mirror_serves_pinned_sources_without_apt() {
        let root = crate::util::repo_root();
        let pin = pins::sources(&root, "libotr")
            .unwrap()
            .pins
            .into_iter()
            .find(|p| p.file.starts_with("libotr_"))
            .unwrap();
        let fetched = crate::util::sources_dir(&root).join(&pin.file);
        assert!(fetched.is_file(), "run `cargo xtask fetch` first");
        let served = scratch("mirror");
        let in_pool = served.join(pool_path(&pin));
        fs::create_dir_all(in_pool.parent().unwrap()).unwrap();
        fs::copy(&fetched, &in_pool).unwrap();
        let mut server = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&served)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(server.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|r| r.split(' ').next());
        let mirror = format!(
            "http://127.0.0.1:{}/",
            port.unwrap_or_else(|| panic!("{line}"))
        );
        let dir = scratch("http");
        let got = fetch_many_via(std::slice::from_ref(&pin), &dir, Some(mirror.clone()));
        let mut wrong = pin.clone();
        wrong.sha256 = "ab".repeat(32);
        let _ = got.as_ref().map(|g| fs::remove_file(&g[0]));
        let refused = fetch_many_via(&[wrong], &dir, Some(mirror.clone()));
        let missing = fetch_many_via(
            &[Pinned {
                file: "libotr_9.9.9.orig.tar.gz".into(),
                ..pin.clone()
            }],
            &dir,
            Some(mirror),
        );
        let _ = server.kill();
        let _ = server.wait();
        assert_eq!(got.unwrap()[0], dir.join(&pin.file));
        let e = refused.unwrap_err();
        assert!(format!("{e:#}").contains("sha256 mismatch"), "{e:#}");
        let e = missing.unwrap_err();
        assert!(format!("{e:#}").contains("404"), "{e:#}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "a file was left");
        assert!(http_mirror(Some("ftp://x".into())).is_err());
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&served).unwrap();
    }

    #[test]
    fn bad_pins_and_names_are_refused() {
        assert!(normalize_sha256("abc").is_err());
        assert!(check_name("--config-file", "package").is_err());
        assert!(check_name("../x", "file").is_err());
        assert!(check_name("libgcrypt20_1.10.1.orig.tar.bz2", "file").is_ok());
    }

    #[test]
    fn binary_packages_come_from_the_pool_by_debians_layout() {
        let pin = |src: &str, file: &str| Pinned {
            registry: pins::Registry::Debian,
            package: src.into(),
            version: "1".into(),
            file: file.into(),
            sha256: String::new(),
        };
        assert_eq!(
            pool_path(&pin("rustc", "rust-src_1.95.0+dfsg1-2~bpo13+1_all.deb")),
            "pool/main/r/rustc/rust-src_1.95.0+dfsg1-2~bpo13+1_all.deb"
        );
        assert_eq!(
            pool_path(&pin("libotr", "libotr5_4.1.1-5_amd64.deb")),
            "pool/main/libo/libotr/libotr5_4.1.1-5_amd64.deb"
        );
        assert_eq!(pool_path(&pin("lib", "x.deb")), "pool/main/l/lib/x.deb");
    }

    #[test]
    fn parses_print_uris() {
        let out = "'http://m.invalid/p/libotr_4.1.1.orig.tar.gz' libotr_4.1.1.orig.tar.gz 655791 SHA256:AB\n";
        let (u, h) = parse_print_uris(out, "libotr_4.1.1.orig.tar.gz").unwrap();
        assert_eq!(u, "http://m.invalid/p/libotr_4.1.1.orig.tar.gz");
        assert_eq!(h.as_deref(), Some("ab"));
        assert!(parse_print_uris(out, "other.tar.gz").is_none());
    }

    #[test]
    fn only_debian_archives_serve_pinned_sources() {
        let etc = scratch("etc");
        fs::write(
            etc.join("sources.list"),
            "deb [signed-by=/usr/share/keyrings/vendor.gpg] http://vendor.invalid/apt stable main\n\
             deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.invalid/debian bookworm main\n\
             deb http://unsigned.invalid/debian bookworm main\n",
        )
        .unwrap();
        let uris: Vec<String> = debian_repos(&etc)
            .unwrap()
            .into_iter()
            .map(|r| r.uri)
            .collect();
        assert_eq!(
            uris,
            [
                "http://deb.invalid/debian",
                "http://unsigned.invalid/debian"
            ]
        );
        fs::write(
            etc.join("sources.list"),
            "deb [signed-by=/usr/share/keyrings/vendor.gpg] http://vendor.invalid/apt stable main\n",
        )
        .unwrap();
        assert!(debian_repos(&etc).is_err());
        fs::remove_dir_all(&etc).unwrap();
    }
}
