//! `cargo xtask verify`: check a published bundle's signature, then rebuild it
//! from source somewhere else and compare the bytes.

use anyhow::{bail, Context, Result};
use package::archive::{read_tar_xz, read_zip};
use pipeline::util;
use std::path::{Path, PathBuf};
use std::process::Command;
use timb_release::{ArchiveFormat, Keyring, SignatureKind};

/// `cargo xtask verify`'s flags.
#[derive(Debug, clap::Args)]
pub struct Opts {
    /// The bundle archives (each with its `.minisig` beside it); several from one release
    /// are rebuilt together, their targets at the same time
    #[arg(value_name = "ARCHIVE", required = true)]
    pub archives: Vec<PathBuf>,
    /// Check with this public key only (the policy still decides what is a release)
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Check the signature only
    #[arg(long)]
    pub no_rebuild: bool,
    /// Check signatures and builders with this signing folder (laid out as signing/: its
    /// policy.toml and keys/) instead of the repository's
    #[arg(long, value_name = "DIR")]
    pub signing: Option<PathBuf>,
    #[command(flatten)]
    pub rebuild: RebuildArgs,
    /// Rebuild with this very xtask rather than one compiled from the source tree: only
    /// `rebuild --test-shortcuts`, and only when the release's commit is this clean
    /// checkout's (so the two xtasks are one source). Never on the command line.
    #[arg(skip)]
    pub this_xtask: bool,
}

/// Where and how `verify` and `rebuild` rebuild.
#[derive(Debug, Default, clap::Args)]
pub struct RebuildArgs {
    /// Rebuild from this source tree instead of the signed commit
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// The rebuild's cargo target directory
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Where the rebuild's source and output go
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Keep third-party crates compiled in TARGET_DIR (a quicker, weaker check used by the tests)
    // A cargo target directory whose sandbox builds of third-party crates
    // seed the rebuild (the CI test's shortcut; see `seed_dependencies`).
    #[arg(long, value_name = "TARGET_DIR")]
    pub reuse_deps_from: Option<PathBuf>,
}

/// Copies the sandbox target directories of an earlier build into `to`, minus
/// everything cargo built for this workspace's own packages.
///
/// What is then rebuilt is every workspace crate, libotr and libgcrypt (built
/// by libotr-sys), the LTO and the link: all the code that changes between
/// commits. Third-party crates keep their earlier compilation, so this checks
/// less than a rebuild from nothing (plain `verify`), and it is used only where
/// time is short (the CI test, which says so).
pub fn seed_dependencies(from: &Path, to: &Path, src: &Path) -> Result<()> {
    let names = workspace_packages(src)?;
    std::fs::create_dir_all(to)?;
    let mut seeded = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("sandbox-") || !entry.path().is_dir() {
            continue;
        }
        let dest = to.join(&name);
        util::remove_dir(&dest)?;
        // -a keeps mtimes, which cargo's freshness checks compare.
        util::run(
            Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(entry.path())
                .arg(&dest),
        )?;
        forget_packages(&dest, &names)?;
        seeded += 1;
    }
    if seeded == 0 {
        bail!("{} holds no sandbox build to reuse", from.display());
    }
    eprintln!(
        "reusing third-party crates compiled in {} (workspace crates, C libraries and the link are rebuilt)",
        from.display()
    );
    Ok(())
}

/// The names of the packages under `app/`, `tests/`, `xtask/` and `xtask/crates/` of `src`.
fn workspace_packages(src: &Path) -> Result<Vec<String>> {
    let mut manifests = vec![src.join("xtask/Cargo.toml")];
    for group in ["app", "tests", "xtask/crates"] {
        let Ok(rd) = std::fs::read_dir(src.join(group)) else {
            continue;
        };
        for e in rd {
            manifests.push(e?.path().join("Cargo.toml"));
        }
    }
    let mut names = Vec::new();
    for m in manifests.iter().filter(|m| m.is_file()) {
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(m)?)
            .with_context(|| format!("parsing {}", m.display()))?;
        if let Some(n) = v
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
        {
            names.push(n.to_string());
        }
    }
    if names.is_empty() {
        bail!("no workspace packages found under {}", src.display());
    }
    Ok(names)
}

/// Deletes cargo's artifacts, build-script outputs and fingerprints of the
/// named packages from every profile directory under `target`.
fn forget_packages(target: &Path, names: &[String]) -> Result<()> {
    let prefixes: Vec<String> = names
        .iter()
        .flat_map(|n| [format!("{n}-"), format!("{}-", n.replace('-', "_"))])
        .collect();
    let matches = |file: &str| {
        let f = file.strip_prefix("lib").unwrap_or(file);
        prefixes
            .iter()
            .any(|p| f.starts_with(p.as_str()) || file.starts_with(p.as_str()))
            || names
                .iter()
                .any(|n| file == n || file.strip_suffix(".d") == Some(n))
    };
    let mut stack = vec![target.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let file = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let is_dir = e.file_type()?.is_dir();
            let parent = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let profile_dir = dir.join("deps").is_dir() || dir.join(".fingerprint").is_dir();
            if (matches!(parent, "deps" | "build" | ".fingerprint") || profile_dir)
                && matches(&file)
            {
                if is_dir {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
                continue;
            }
            if is_dir && !matches!(parent, "deps" | "build" | ".fingerprint") {
                stack.push(path);
            }
        }
    }
    Ok(())
}

pub fn verify(root: &Path, o: &Opts) -> Result<()> {
    let target_dir = util::cargo_target_dir(root);
    let signing = o.signing.clone().unwrap_or_else(|| root.join("signing"));
    let (policy, keys) = match &o.pubkey {
        // Only that key; the policy still decides whether its signature is a release one.
        Some(p) => {
            let (policy, _) = sign::signing_trust(&signing)?;
            let mut keys = Keyring::new();
            keys.add(
                sign::read_checking_key(p)?,
                format!("key given on the command line {}", p.display()),
            );
            (policy, keys)
        }
        None => sign::trusted_keys_in(&signing, &target_dir)?,
    };
    let mut bundles = Vec::new();
    for archive in &o.archives {
        if !archive.is_file() {
            bail!("{} does not exist", archive.display());
        }
        let checked = sign::check_signature(archive, &keys, &policy)?;
        let signed = checked.body().clone();
        eprintln!(
            "signature: GOOD ({} {} for {}, key {})",
            signed.file(),
            signed.version(),
            signed.target(),
            checked.signer()
        );
        match checked.kind() {
            SignatureKind::Development => {
                eprintln!("WARNING: signed with a LOCAL DEVELOPMENT KEY. This is not a release.")
            }
            SignatureKind::Release => eprintln!(
                "release signature by {} (signing/policy.toml [bundle])",
                keys.label(checked.signer()).unwrap_or("a listed key")
            ),
        }
        // Who else rebuilt it and said so (cargo xtask rebuild).
        let name = archive
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        super::builders::report(super::builders::folder_of(archive), name, &keys, &policy)?;
        bundles.push((archive.as_path(), signed));
    }
    if o.no_rebuild {
        return Ok(());
    }

    // What each archive says about its build; one rebuild makes them all, so they must come
    // from the same commit and SOURCE_DATE_EPOCH (the bundles of one release do).
    let mut published = Vec::new();
    for (archive, signed) in &bundles {
        let zip = signed.target().archive_format() == ArchiveFormat::Zip;
        let files = if zip {
            read_zip(archive).context("the archive is not a readable .zip")?
        } else {
            read_tar_xz(archive).context("the archive is not a readable .tar.xz")?
        };
        let top = signed.target().bundle_folder(signed.version());
        let info_text = files.get(&format!("{top}/BUILDINFO")).with_context(|| {
            format!(
                "{} has no BUILDINFO: cannot know how to rebuild it",
                archive.display()
            )
        })?;
        let info: toml::Value =
            toml::from_str(std::str::from_utf8(info_text)?).context("parsing BUILDINFO")?;
        // The programs it ships, each rebuilt below and compared with the rest (#16: the
        // transports are built from source like timb itself).
        let programs: Vec<String> = info
            .as_table()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some(format!("{} {}", k.strip_suffix("_build_id")?, v.as_str()?)))
            .collect();
        eprintln!("programs (name, build id): {}", programs.join(", "));
        // Said before a rebuild of many minutes, not after.
        if signed.target().is_macos() {
            check_adhoc(archive, &files)?;
        }
        let sde = info
            .get("source_date_epoch")
            .and_then(|v| v.as_integer())
            .context("BUILDINFO has no source_date_epoch")?;
        published.push((*archive, signed, zip, files, sde));
    }
    let (_, first, _, _, sde) = &published[0];
    for (archive, signed, _, _, their_sde) in &published[1..] {
        if their_sde != sde || signed.commit() != first.commit() {
            bail!(
                "{} is from another build than {} (commit or SOURCE_DATE_EPOCH differ): verify them one at a time",
                archive.display(),
                published[0].0.display()
            );
        }
    }
    let sde = *sde;

    let work = match &o.rebuild.work {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("timb-verify-{}", std::process::id())),
    };
    util::remove_dir(&work.join("out"))?;
    std::fs::create_dir_all(&work)?;
    let src = match &o.rebuild.source {
        Some(s) => s.clone(),
        None => {
            let commit = first.commit().exact().with_context(|| {
                format!(
                    "the signature names no clean source commit ({}); give the source with --source DIR",
                    first.commit()
                )
            })?;
            let src = work.join("src");
            util::remove_dir(&src)?;
            std::fs::create_dir_all(&src)?;
            let tar = util::output_bytes(Command::new("git").arg("-C").arg(root).args([
                "archive",
                "--format=tar",
                commit,
            ]))
            .with_context(|| {
                format!("commit {commit} is not in this repository; fetch it or give --source")
            })?;
            tar::Archive::new(tar.as_slice()).unpack(&src)?;
            src
        }
    };
    let rebuilt_out = work.join("out");
    let target_dir = o
        .rebuild
        .target_dir
        .clone()
        .unwrap_or_else(|| work.join("target"));
    if let Some(from) = &o.rebuild.reuse_deps_from {
        seed_dependencies(from, &target_dir, &src)?;
    }
    let targets: Vec<&str> = published.iter().map(|p| p.1.target().name()).collect();
    eprintln!(
        "rebuilding {} from {} (target dir {}); a clean rebuild takes ~10-20 minutes on 2 cores",
        targets.join(" and "),
        src.display(),
        target_dir.display()
    );
    // A different zone, locale and umask than any builder would use: the
    // pipeline must neutralise them, so the rebuild proves that it does.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 077; exec \"$@\"", "sh"]);
    if o.this_xtask {
        eprintln!("(tests' shortcut: rebuilding with this xtask, compiled from the same commit)");
        cmd.arg(std::env::current_exe()?)
            .args(["build-unsigned", "--source"])
            .arg(&src)
            .env_remove("CARGO_MANIFEST_DIR");
    } else {
        cmd.arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "run",
                "--locked",
                "--quiet",
                "--package",
                "xtask",
                "--",
                "build-unsigned",
            ]);
    }
    for t in &targets {
        cmd.args(["--target", t]);
    }
    cmd.arg("--out")
        .arg(&rebuilt_out)
        .current_dir(&src)
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        // Pinned archives are checked by sha256 wherever they come from, so
        // the rebuild may take them from this checkout's cache.
        .env("TIMB_SOURCES_DIR", util::sources_dir(root))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("TZ", "Pacific/Kiritimati")
        .env("LC_ALL", "fr_FR.UTF-8")
        .env("LANG", "fr_FR.UTF-8");
    util::run(&mut cmd).context("the rebuild failed")?;

    let mut differ = Vec::new();
    for (archive, signed, _, files, _) in published {
        let rebuilt_out = if signed.target().is_macos() {
            adhoc_signed_rebuild(root, archive, &rebuilt_out, &work)?
        } else {
            rebuilt_out.clone()
        };
        if !compare(archive, signed.target(), files, &rebuilt_out, &work)? {
            differ.push(signed.target().archive_name(signed.version()));
        }
    }
    if !differ.is_empty() {
        bail!("the rebuild differs from {}", differ.join(" and "));
    }
    Ok(())
}

/// macOS: only ad-hoc signatures can be made again by a rebuilder (see
/// [`adhoc_signed_rebuild`]); a Developer ID signature (a certificate, a time) cannot: that
/// is said, not guessed at.
fn check_adhoc(archive: &Path, files: &std::collections::BTreeMap<String, Vec<u8>>) -> Result<()> {
    for (path, data) in files {
        if !path.contains(".app/Contents/MacOS/") {
            continue;
        }
        let sig = package::macho::parse(data)
            .with_context(|| path.clone())?
            .signature;
        if !sig.as_ref().is_some_and(|s| s.is_adhoc()) {
            bail!(
                "{path} in {} is not signed ad hoc (Developer ID or none): its signature cannot \
                 be made again here, so compare your rebuild (cargo xtask build-unsigned) with \
                 the release's sha256sums-unsigned-build.txt instead",
                archive.display()
            );
        }
    }
    Ok(())
}

/// macOS: the published `.app`s carry rcodesign's ad-hoc signatures ([`check_adhoc`]), a
/// deterministic function of the code they seal, so the rebuild is signed ad hoc by the
/// same code and the two zips must be the same bytes. Returns the folder holding the signed
/// rebuild under the published archive's name.
fn adhoc_signed_rebuild(
    root: &Path,
    archive: &Path,
    rebuilt_out: &Path,
    work: &Path,
) -> Result<std::path::PathBuf> {
    let name = archive.file_name().context("an archive name")?;
    let out = work.join("adhoc-signed-rebuild");
    std::fs::create_dir_all(&out)?;
    let signer = sign::macos::MacSigner {
        rcodesign: super::macos_sign::rcodesign(root, false)?,
        identity: sign::macos::Identity::AdHoc,
        timestamp: false,
    };
    super::macos_sign::sign_zip(
        &signer,
        &rebuilt_out.join(name),
        &out.join(name),
        &work.join("adhoc-signing"),
        None,
    )
    .context("signing the rebuild ad hoc, as the published bundle is")?;
    eprintln!("the rebuild signed ad hoc, as the published .apps are");
    Ok(out)
}

/// Compares one published archive with its rebuild in `rebuilt_out`, printing MATCH or
/// MISMATCH and what differs; whether they match.
fn compare(
    archive: &Path,
    target: timb_release::Target,
    files: std::collections::BTreeMap<String, Vec<u8>>,
    rebuilt_out: &Path,
    work: &Path,
) -> Result<bool> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let rebuilt = rebuilt_out.join(name);
    // Windows: the published exes are Authenticode-signed; the build is judged unsigned, as
    // Tor does: strip the signatures (the zip is rewritten the same way the build wrote it).
    let zip = target.archive_format() == ArchiveFormat::Zip;
    // (macOS: the rebuild was signed as the published one, adhoc_signed_rebuild.)
    let published = if zip && !target.is_macos() {
        // Stripping writes the zip again from its entries, so first: the published zip is
        // nothing but its entries, laid out as the build writes them (no bytes between or
        // after them, no comment): written again unchanged, it is the same bytes.
        let again = work.join(format!("again-{name}"));
        package::archive::rewrite_zip(archive, &again, |_, data| Ok(data))
            .context("reading the published zip")?;
        if util::sha256_file(&again)? != util::sha256_file(archive)? {
            println!("MISMATCH");
            println!("  the published zip holds more than its entries, or is not laid out as the build writes it");
            return Ok(false);
        }
        let stripped = work.join(format!("stripped-{name}"));
        let scratch = work.join("strip");
        std::fs::create_dir_all(&scratch)?;
        super::bundle::strip_zip(archive, &stripped, &scratch)
            .context("removing the Authenticode signatures")?;
        eprintln!(
            "published exes' Authenticode signatures removed: {}",
            stripped.display()
        );
        stripped
    } else {
        archive.to_path_buf()
    };
    let archive = published.as_path();
    let want = util::sha256_file(archive)?;
    let got =
        util::sha256_file(&rebuilt).context("the rebuild produced no archive of that name")?;
    println!("published: {want}  {}", archive.display());
    println!("rebuilt:   {got}  {}", rebuilt.display());
    if want == got {
        println!("MATCH");
        return Ok(true);
    }
    println!("MISMATCH");
    let (files, theirs) = if zip {
        (read_zip(archive)?, read_zip(&rebuilt)?)
    } else {
        (files, read_tar_xz(&rebuilt)?)
    };
    for (path, data) in &files {
        match theirs.get(path) {
            None => println!("  only in the published bundle: {path}"),
            Some(d) if d != data => println!(
                "  differs: {path} (published {}, rebuilt {})",
                util::sha256_bytes(data),
                util::sha256_bytes(d)
            ),
            _ => {}
        }
    }
    for path in theirs.keys().filter(|p| !files.contains_key(*p)) {
        println!("  only in the rebuild: {path}");
    }
    if util::have_command("diffoscope") {
        let report = work.join(format!("diffoscope-{name}.txt"));
        let _ = Command::new("diffoscope")
            .arg("--text")
            .arg(&report)
            .arg(archive)
            .arg(&rebuilt)
            .status();
        println!("diffoscope report: {}", report.display());
    } else {
        println!("(install diffoscope for a detailed report)");
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeding_drops_workspace_artifacts_and_keeps_the_rest() {
        let t = std::env::temp_dir().join(format!("timb-seed-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let src = t.join("src");
        for (dir, name) in [
            ("xtask", "xtask"),
            ("app/timb", "timb"),
            ("app/timb-core", "timb-core"),
            ("app/libotr-sys", "libotr-sys"),
        ] {
            std::fs::create_dir_all(src.join(dir)).unwrap();
            std::fs::write(
                src.join(dir).join("Cargo.toml"),
                format!("[package]\nname = \"{name}\"\n"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(src.join("tests")).unwrap();
        let from = t.join("first");
        let rel = from.join("sandbox-0123/x86_64-unknown-linux-gnu/release");
        let host = from.join("sandbox-0123/release");
        let files = [
            rel.join("timb"),
            rel.join("timb.d"),
            rel.join("deps/timb-0a1b.d"),
            rel.join("deps/libtimb_core-99.rlib"),
            rel.join("deps/liblibotr_sys-77.rlib"),
            rel.join("deps/libserde-12.rlib"),
            rel.join("deps/libtimber-12.rlib"),
            rel.join(".fingerprint/timb-0a1b/bin-timb"),
            rel.join(".fingerprint/serde-12/lib-serde"),
            rel.join("build/libotr-sys-55/out/lib/libotr.a"),
            host.join("build/timb-66/build-script-build"),
            host.join("build/slint-build-1/build-script-build"),
        ];
        for f in &files {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"x").unwrap();
        }
        std::fs::create_dir_all(from.join("debug/deps")).unwrap();
        let to = t.join("second");
        seed_dependencies(&from, &to, &src).unwrap();
        let kept = |p: &Path| to.join(p.strip_prefix(&from).unwrap()).exists();
        let gone = [0, 1, 2, 3, 4, 7, 9, 10];
        for (i, f) in files.iter().enumerate() {
            assert_eq!(kept(f), !gone.contains(&i), "{}", f.display());
        }
        // Only sandbox builds are copied, never the host's debug tree.
        assert!(!to.join("debug").exists());
        // Nothing to seed from is an error, not a silent full rebuild.
        assert!(seed_dependencies(&t.join("nowhere"), &to, &src).is_err());
        assert!(seed_dependencies(&src, &to, &src).is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }
}
