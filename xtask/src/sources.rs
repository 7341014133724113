//! Fetching pinned upstream source archives through the machine's own Debian mirror.
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
//! is not always served).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

const APT_ETC: &str = "/etc/apt";
const APT_HELPER: &str = "/usr/lib/apt/apt-helper";

pub use pins::Pinned;

/// Fetches (or finds, verified) every pinned file into `dest_dir`; one private `apt-get update`
/// serves them all and is skipped when everything is already there.
pub fn fetch_many(pins: &[Pinned], dest_dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dest_dir).with_context(|| format!("creating {}", dest_dir.display()))?;
    let mut paths = Vec::new();
    let mut missing = Vec::new();
    for p in pins {
        check_name(&p.debian_source, "package")?;
        check_name(&p.debian_version, "version")?;
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
    if missing.is_empty() {
        return Ok(paths);
    }
    let work = TempDir::new(dest_dir)?;
    let opts = write_src_sources(&work.0, &read_apt_sources(Path::new(APT_ETC))?)?;
    for (p, want, dest) in missing {
        let uri = find_uri(&opts, &p.debian_source, &p.debian_version, &p.file, &want)?;
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
                p.debian_source,
                p.debian_version
            );
        }
        verify_and_place(&partial, &dest, &want)?;
    }
    Ok(paths)
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

/// One configured Debian repository: what apt already uses for binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AptRepo {
    uri: String,
    suite: String,
    components: Vec<String>,
    signed_by: Option<String>,
}

/// Reads the `deb` entries of the system apt configuration (one-line and deb822 formats).
/// Entries that are disabled (`Enabled: no`, files not ending in `.list`/`.sources`) are skipped.
fn read_apt_sources(etc: &Path) -> Result<Vec<AptRepo>> {
    let mut repos = Vec::new();
    let main = etc.join("sources.list");
    if main.exists() {
        repos.extend(parse_one_line(&fs::read_to_string(&main)?));
    }
    let dir = etc.join("sources.list.d");
    if dir.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let text = match p.extension().and_then(|e| e.to_str()) {
                Some("list") => parse_one_line(&fs::read_to_string(&p)?),
                Some("sources") => parse_deb822(&fs::read_to_string(&p)?),
                _ => continue,
            };
            repos.extend(text);
        }
    }
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

fn parse_one_line(text: &str) -> Vec<AptRepo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        let mut signed_by = None;
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                let opt = w.trim_start_matches('[').trim_end_matches(']');
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptRepo {
            uri: uri.to_string(),
            suite: suite.to_string(),
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    out
}

fn parse_deb822(text: &str) -> Vec<AptRepo> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // Continuation line (for example an inline key); appended to the last field.
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        if !get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb")) {
            continue;
        }
        let components: Vec<String> = get("components")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let signed_by = get("signed-by")
            .filter(|s| s.starts_with('/'))
            .map(str::to_string);
        for uri in get("uris").unwrap_or("").split_whitespace() {
            for suite in get("suites").unwrap_or("").split_whitespace() {
                out.push(AptRepo {
                    uri: uri.to_string(),
                    suite: suite.to_string(),
                    components: components.clone(),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    out
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
            debian_source: "no-such-pkg".into(),
            debian_version: "0-0".into(),
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
    fn bad_pins_and_names_are_refused() {
        assert!(normalize_sha256("abc").is_err());
        assert!(check_name("--config-file", "package").is_err());
        assert!(check_name("../x", "file").is_err());
        assert!(check_name("libgcrypt20_1.10.1.orig.tar.bz2", "file").is_ok());
    }

    #[test]
    fn parses_both_apt_formats_and_print_uris() {
        let deb822 = "Types: deb\n# comment\nURIs: http://mirror.invalid/debian\n\
                      Suites: bookworm bookworm-updates\nComponents: main\n\
                      Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb-src\nURIs: http://x.invalid\nSuites: s\nComponents: c\n";
        let r = parse_deb822(deb822);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].suite, "bookworm-updates");
        let one = parse_one_line(
            "deb [arch=amd64 signed-by=/k.gpg] http://m.invalid/d bookworm main contrib\n",
        );
        assert_eq!(one[0].components, vec!["main", "contrib"]);
        assert_eq!(one[0].signed_by.as_deref(), Some("/k.gpg"));
        let out = "'http://m.invalid/p/libotr_4.1.1.orig.tar.gz' libotr_4.1.1.orig.tar.gz 655791 SHA256:AB\n";
        let (u, h) = parse_print_uris(out, "libotr_4.1.1.orig.tar.gz").unwrap();
        assert_eq!(u, "http://m.invalid/p/libotr_4.1.1.orig.tar.gz");
        assert_eq!(h.as_deref(), Some("ab"));
    }
}
