//! `cargo xtask bundle [--key FILE] [--out DIR] [--target T]…`: the signed bundles.

use anyhow::{bail, Context, Result};
use pipeline::util;
use std::path::{Path, PathBuf};
use timb_release::builders::PUBLISHED_SUMS_FILE;
use timb_release::{SignatureKind, SourceCommit, Target, TrustedComment, SUMS_FILE};

/// What to build and how to sign it.
pub struct Opts<'a> {
    pub key: Option<&'a Path>,
    pub out: Option<PathBuf>,
    /// None: every target this machine builds.
    pub targets: Vec<Target>,
    /// A release code-signing certificate and key (PEM) for the Windows exes.
    pub authenticode: Option<(PathBuf, PathBuf)>,
    /// A Developer ID identity (PKCS#12, password in TIMB_MACOS_P12_PASSWORD) for the macOS
    /// `.app`s [default: ad hoc], and an App Store Connect API key to notarize with.
    pub macos_p12: Option<PathBuf>,
    pub macos_notarize_key: Option<PathBuf>,
    /// This machine is also one of the release's builders: sign its sums as `NAME` with
    /// this key (cmd::builders), as `rebuild` does after a rebuild matched.
    pub builder: Option<(PathBuf, String)>,
}

/// Builds, signs, then checks the signatures as `verify` and the updater will.
pub fn run(root: &Path, o: Opts) -> Result<()> {
    let out = o.out.unwrap_or_else(|| root.join("out").join("bundle"));
    let target_dir = util::cargo_target_dir(root);
    // A release key the policy does not list is refused here, before the build.
    let signer = match o.key {
        Some(k) => sign::release_signer(root, k)?,
        None => sign::dev_signer(&target_dir)?,
    };
    // The release machine as a builder: its key, name and a commit it can vouch for are
    // checked before the build, and the commit again after.
    let builder = match &o.builder {
        Some((key, name)) => {
            if !timb_release::builders::is_builder_name(name) {
                bail!("--builder {name:?}: a builder name is 1 to 64 of A-Z a-z 0-9 . _ -");
            }
            let commit = util::git_vouchable_commit(root)?;
            Some((sign::builder_signer(root, key)?, name.as_str(), commit))
        }
        None => None,
    };
    let targets = if o.targets.is_empty() {
        super::build_unsigned::default_targets()
    } else {
        o.targets
    };
    let code_signer = if targets.contains(&Target::WindowsX86_64) {
        pipeline::provision::ensure(&["osslsigncode", "openssl"])?;
        Some(match &o.authenticode {
            Some((cert, key)) => sign::authenticode::release_code_signer(cert, key)?,
            None => sign::authenticode::dev_code_signer(&target_dir)?,
        })
    } else {
        None
    };
    let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
    eprintln!(
        "building the bundles for {} (what this machine can build)",
        names.join(", ")
    );
    let u = super::build_unsigned::run(root, &out, 1, 4, &targets)?;
    util::stage(4, 4, &format!("signing with key {}", signer.key_id()));
    if let Some(cs) = &code_signer {
        for (target, archive) in u
            .bundles
            .iter()
            .filter(|(t, _)| *t == Target::WindowsX86_64)
        {
            authenticode_sign_zip(cs, archive, *target)?;
        }
    }
    // macOS (built on a Mac only): the .apps signed with rcodesign, as `macos-sign` does.
    for (_, archive) in u.bundles.iter().filter(|(t, _)| t.is_macos()) {
        let signed = archive.with_extension("signed");
        super::macos_sign::run(
            root,
            &super::macos_sign::Opts {
                zip: archive.clone(),
                out: signed.clone(),
                pem_cert: None,
                pem_key: None,
                p12: o.macos_p12.clone(),
                notarize_api_key: o.macos_notarize_key.clone(),
                no_timestamp: false,
            },
        )?;
        std::fs::rename(&signed, archive)
            .with_context(|| format!("replacing {}", archive.display()))?;
    }
    let commit = match util::git_commit(root) {
        Some((c, false)) => c.parse()?,
        Some((c, true)) => format!("{c}-modified").parse()?,
        None => SourceCommit::Unknown,
    };
    // The sums of the archives as published (code-signed), which builders vouch for and
    // the updater checks an archive against.
    let archives: Vec<&Path> = u.bundles.iter().map(|(_, a)| a.as_path()).collect();
    let published = super::builders::write_published_sums(&out, &archives)?;
    // The sums files cover every target; their comments name the first one built.
    let mut files: Vec<(Target, &PathBuf)> = u.bundles.iter().map(|(t, a)| (*t, a)).collect();
    files.push((targets[0], &u.sums));
    files.push((targets[0], &published));
    for (target, file) in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let comment = TrustedComment::new(
            name,
            u.version.clone(),
            *target,
            util::sha256_file(file)?.parse()?,
            commit.clone(),
            signer.dev,
        )?;
        let sig = signer.sign_file(file, &comment)?;
        eprintln!("    {}", sig.display());
    }
    // What `verify` and the updater will check, checked now: a release key's bundle must pass
    // as a release, the development key's as a development bundle.
    let (policy, mut keys) = sign::repository_trust(root)?;
    if signer.dev {
        keys.add(
            sign::read_checking_key(&sign::dev_public_key_path(&target_dir))?,
            "LOCAL DEVELOPMENT key",
        );
    }
    for (_, file) in &files {
        let checked = sign::check_signature(file, &keys, &policy)?;
        let want = if signer.dev {
            SignatureKind::Development
        } else {
            SignatureKind::Release
        };
        if checked.kind() != want {
            bail!("{} did not check as a {want:?} signature", file.display());
        }
    }
    if let Some((signer, name, before)) = &builder {
        let after = util::git_vouchable_commit(root)?;
        if &after != before {
            bail!(
                "the source changed during the build ({before} then {after}): nothing vouched for"
            );
        }
        let files = [SUMS_FILE, PUBLISHED_SUMS_FILE].map(|f| (f, std::fs::read(out.join(f))));
        let mut read = Vec::new();
        for (f, data) in files {
            read.push((f, data.with_context(|| format!("reading {f}"))?));
        }
        let files: Vec<(&str, &[u8])> = read.iter().map(|(f, d)| (*f, d.as_slice())).collect();
        let commit: SourceCommit = after.parse()?;
        for sig in super::builders::vouch(&files, signer, name, &u.version, &commit, &out)? {
            eprintln!("    {}", sig.display());
        }
    }
    for (_, archive) in &u.bundles {
        println!("{}", archive.display());
    }
    if signer.dev {
        let pubkey = sign::dev_public_key_path(&target_dir);
        eprintln!(
            "\n\x1b[1;31m!!! These bundles are signed with a LOCAL DEVELOPMENT KEY ({}), not a release key.\n!!! Public key: {}\n!!! Do not publish them. Release builds pass --key.\x1b[0m",
            signer.key_id(),
            pubkey.display()
        );
    }
    if code_signer.as_ref().is_some_and(|c| c.dev) {
        eprintln!(
            "\x1b[1;31m!!! The Windows exes carry a LOCAL DEVELOPMENT Authenticode certificate ({}).\n!!! Release builds pass --authenticode-cert and --authenticode-key.\x1b[0m",
            sign::authenticode::DEV_SUBJECT
        );
    }
    Ok(())
}

/// Replaces the unsigned Windows zip with one whose exes carry an Authenticode signature,
/// after checking that stripping the signatures gives the unsigned zip back byte for byte
/// (what `verify` will do with the published one).
fn authenticode_sign_zip(
    cs: &sign::authenticode::CodeSigner,
    zip: &Path,
    target: Target,
) -> Result<()> {
    let work = zip.with_extension("signing");
    util::remove_dir(&work)?;
    std::fs::create_dir_all(&work)?;
    let signed = work.join("signed.zip");
    let n = map_exes(zip, &signed, &work, |unsigned, out| {
        cs.sign(unsigned, out)?;
        sign::authenticode::verify(out, &cs.cert)
    })?;
    if n == 0 {
        bail!("the {target} bundle holds no .exe to sign");
    }
    let stripped = work.join("stripped.zip");
    strip_zip(&signed, &stripped, &work)?;
    if util::sha256_file(&stripped)? != util::sha256_file(zip)? {
        bail!("stripping the Authenticode signatures does not give the unsigned build back; `verify` could not compare this bundle");
    }
    std::fs::rename(&signed, zip).with_context(|| format!("replacing {}", zip.display()))?;
    util::remove_dir(&work)
}

/// `zip` with every exe's Authenticode signature removed: the unsigned build's zip.
pub fn strip_zip(zip: &Path, out: &Path, work: &Path) -> Result<()> {
    map_exes(zip, out, work, sign::authenticode::strip).map(drop)
}

/// Writes `zip` again into `out` with each `.exe` replaced by what `f(exe, into)` writes
/// (through files in `work`, for osslsigncode); returns how many exes there were.
fn map_exes(
    zip: &Path,
    out: &Path,
    work: &Path,
    f: impl Fn(&Path, &Path) -> Result<()>,
) -> Result<usize> {
    let mut n = 0;
    package::archive::rewrite_zip(zip, out, |path, data| {
        if !path.ends_with(".exe") {
            return Ok(data);
        }
        n += 1;
        let (from, to) = (
            work.join(format!("{n}.exe")),
            work.join(format!("{n}.out.exe")),
        );
        std::fs::write(&from, &data)?;
        f(&from, &to).with_context(|| path.to_string())?;
        Ok(std::fs::read(&to)?)
    })?;
    Ok(n)
}
