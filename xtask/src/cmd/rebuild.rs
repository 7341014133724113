//! `cargo xtask rebuild RELEASE_DIR --builder-key FILE --builder NAME`: an independent
//! builder's part of a release. It checks the release's signatures, rebuilds every archive
//! with `verify`'s rules (a fresh folder, another zone, locale and umask), and only when
//! every archive and the unsigned-build sums file match byte for byte signs the release's
//! two sums files with the builder's own key. On a mismatch it signs nothing; `verify`
//! has written what differs and the diffoscope report.
//!
//! What is checked, rebuilt against and signed is one copy of the release, read once into a
//! folder of the builder's own: a release machine that can write the release folder cannot
//! swap a file between the check and the signature. The rebuild is of the commit the
//! release names, from this repository's history, with nothing shared.

use super::verify::{self, RebuildArgs};
use anyhow::{bail, Context, Result};
use pipeline::util;
use std::path::{Path, PathBuf};
use timb_release::builders::{check_listed, PUBLISHED_SUMS_FILE};
use timb_release::{Sha256, SignatureKind, Sums, Target, SUMS_FILE};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// The published release: its archives (each with .minisig), sha256sums-unsigned-build.txt
    /// and sha256sums.txt (each with .minisig)
    #[arg(value_name = "RELEASE_DIR")]
    pub release: PathBuf,
    /// This builder's minisign secret key (its .pub beside it; password in TIMB_BUILDER_PASSWORD)
    #[arg(long, value_name = "FILE")]
    pub builder_key: PathBuf,
    /// The name this builder signs as (A-Z a-z 0-9 . _ -)
    #[arg(long, value_name = "NAME")]
    pub builder: String,
    /// Where the signatures go [default: RELEASE_DIR]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Tests only: vouch for a development-signed release, and for a rebuild that shares
    /// third-party crates (--reuse-deps-from), another tree (--source) or another build's
    /// outputs (TIMB_OUT_DIR), rebuilt with this xtask when the release is this checkout's
    /// commit. Said loudly; a builder never uses it.
    #[arg(long, hide = true)]
    pub test_shortcuts: bool,
    #[command(flatten)]
    pub rebuild: RebuildArgs,
}

/// The archives of a release folder: every file named like a bundle archive.
pub fn release_archives(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if Target::parse_archive_name(name).is_some() && p.is_file() {
            found.push(p);
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("{} holds no bundle archive", dir.display());
    }
    Ok(found)
}

pub fn run(root: &Path, o: Opts) -> Result<()> {
    // The key, the name and the rules are checked before a rebuild of many minutes.
    let signer = sign::builder_signer(root, &o.builder_key)?;
    if !timb_release::builders::is_builder_name(&o.builder) {
        bail!(
            "--builder {:?}: a builder name is 1 to 64 of A-Z a-z 0-9 . _ -",
            o.builder
        );
    }
    let shortcuts = [
        (
            o.rebuild.source.is_some(),
            "--source (another tree than the release's commit)",
        ),
        (
            o.rebuild.reuse_deps_from.is_some(),
            "--reuse-deps-from (third-party crates compiled by another build)",
        ),
        (
            std::env::var_os("TIMB_OUT_DIR").is_some(),
            "TIMB_OUT_DIR (another build's outputs)",
        ),
    ];
    for (used, what) in shortcuts {
        if used && !o.test_shortcuts {
            bail!("{what}: a builder vouches only for a rebuild of the release's commit from nothing shared");
        }
    }
    if o.test_shortcuts {
        eprintln!("\x1b[1;31m!!! --test-shortcuts: this rebuild may share builds and take a development-signed release. Its signatures are a test's.\x1b[0m");
    }
    let work = o.rebuild.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("timb-rebuild-{}", std::process::id()))
    });
    // The release, copied once into the builder's own folder.
    let copy = work.join("release");
    util::remove_dir(&copy)?;
    std::fs::create_dir_all(&copy)?;
    let mut archives = Vec::new();
    for a in release_archives(&o.release)? {
        let name = a.file_name().context("an archive's name")?;
        for from in [a.clone(), sign::sig_path(&a)] {
            let to = copy.join(from.file_name().context("a file name")?);
            std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
        archives.push(copy.join(name));
    }
    let read = |file: &str| -> Result<Vec<u8>> {
        let from = o.release.join(file);
        let data = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        std::fs::write(copy.join(file), &data)?;
        std::fs::copy(sign::sig_path(&from), sign::sig_path(&copy.join(file)))
            .with_context(|| format!("{} has no signature beside it", from.display()))?;
        Ok(data)
    };
    let unsigned_sums = read(SUMS_FILE)?;
    let published = read(PUBLISHED_SUMS_FILE)?;
    // The release as its release key signed it: the archives and both sums files.
    let target_dir = util::cargo_target_dir(root);
    let (policy, keys) = sign::trusted_keys(root, &target_dir)?;
    let mut first = None;
    for f in archives
        .iter()
        .cloned()
        .chain([copy.join(SUMS_FILE), copy.join(PUBLISHED_SUMS_FILE)])
    {
        let checked = sign::check_signature(&f, &keys, &policy)?;
        if checked.kind() == SignatureKind::Development && !o.test_shortcuts {
            bail!(
                "{} is signed with a development key: not a release a builder vouches for",
                f.display()
            );
        }
        first.get_or_insert(checked.into_body());
    }
    let first = first.context("no archive")?;
    if first.commit().exact().is_none() {
        bail!(
            "the release names commit {}, not a clean one: no builder can vouch for it",
            first.commit()
        );
    }
    // sha256sums.txt lists exactly these archives, as they are.
    let sums: Sums = std::str::from_utf8(&published)
        .context("sha256sums.txt is not text")?
        .parse()?;
    if sums.iter().count() != archives.len() {
        bail!(
            "{PUBLISHED_SUMS_FILE} lists {} files, the folder holds {} archives",
            sums.iter().count(),
            archives.len()
        );
    }
    for a in &archives {
        let name = a.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let actual: Sha256 = util::sha256_file(a)?.parse()?;
        check_listed(PUBLISHED_SUMS_FILE, &published, name, &actual)?;
    }

    // The tests' CI rebuilds the commit it runs: its xtask is compiled from that commit
    // already, and compiling it again took minutes of CI's budget.
    let this_xtask = o.test_shortcuts
        && o.rebuild.source.is_none()
        && util::git_vouchable_commit(root).ok().as_deref() == first.commit().exact();
    let opts = verify::Opts {
        archives: archives.clone(),
        pubkey: None,
        no_rebuild: false,
        signing: None,
        rebuild: RebuildArgs {
            work: Some(work.clone()),
            ..o.rebuild
        },
        this_xtask,
    };
    if let Err(e) = verify::verify(root, &opts) {
        eprintln!("MISMATCH or no rebuild: nothing was signed");
        return Err(e.context(format!("builder {} signed nothing", o.builder)));
    }
    // The unsigned build's sums, which every builder reproduces, byte for byte.
    let mine = std::fs::read(work.join("out").join(SUMS_FILE))
        .context("the rebuild wrote no sums file")?;
    if mine != unsigned_sums {
        println!("MISMATCH: {SUMS_FILE}");
        bail!(
            "the rebuild's {SUMS_FILE} differs from the release's ({}); builder {} signed nothing",
            work.join("out").join(SUMS_FILE).display(),
            o.builder
        );
    }
    let out = o.out.clone().unwrap_or_else(|| o.release.clone());
    let written = super::builders::vouch(
        &[
            (SUMS_FILE, &unsigned_sums),
            (PUBLISHED_SUMS_FILE, &published),
        ],
        &signer,
        &o.builder,
        first.version(),
        first.commit(),
        &out,
    )?;
    eprintln!(
        "every archive matched: signed as builder {} (key {})",
        o.builder,
        signer.key_id()
    );
    for w in written {
        println!("{}", w.display());
    }
    Ok(())
}
