//! `cargo xtask rebuild RELEASE_DIR --builder-key FILE --builder NAME`: an independent
//! builder's part of a release. It checks the release's signatures, rebuilds every archive
//! with `verify`'s rules (a fresh folder, another zone, locale and umask), and only when
//! every archive and the unsigned-build sums file match byte for byte signs the release's
//! two sums files with the builder's own key. On a mismatch it signs nothing; `verify`
//! has written what differs and the diffoscope report.

use super::verify::{self, RebuildArgs};
use anyhow::{bail, Context, Result};
use pipeline::util;
use std::path::{Path, PathBuf};
use timb_release::builders::PUBLISHED_SUMS_FILE;
use timb_release::{Target, SUMS_FILE};

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
    // The key and the name are checked before a rebuild of many minutes.
    let signer = sign::builder_signer(root, &o.builder_key)?;
    if !timb_release::builders::is_builder_name(&o.builder) {
        bail!(
            "--builder {:?}: a builder name is 1 to 64 of A-Z a-z 0-9 . _ -",
            o.builder
        );
    }
    let dir = &o.release;
    let archives = release_archives(dir)?;
    // The release as its release key signed it: the archives and both sums files.
    let target_dir = util::cargo_target_dir(root);
    let (policy, keys) = sign::trusted_keys(root, &target_dir)?;
    let mut first = None;
    for f in archives
        .iter()
        .cloned()
        .chain([dir.join(SUMS_FILE), dir.join(PUBLISHED_SUMS_FILE)])
    {
        let checked = sign::check_signature(&f, &keys, &policy)?;
        first.get_or_insert(checked.into_body());
    }
    let first = first.context("no archive")?;
    // sha256sums.txt lists exactly these archives, as they are.
    let published = std::fs::read_to_string(dir.join(PUBLISHED_SUMS_FILE))?;
    let sums: timb_release::Sums = published.parse()?;
    if sums.iter().count() != archives.len() {
        bail!(
            "{PUBLISHED_SUMS_FILE} lists {} files, the folder holds {} archives",
            sums.iter().count(),
            archives.len()
        );
    }
    for a in &archives {
        let name = a.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let actual: timb_release::Sha256 = util::sha256_file(a)?.parse()?;
        timb_release::builders::check_listed(
            PUBLISHED_SUMS_FILE,
            published.as_bytes(),
            name,
            &actual,
        )?;
    }

    let work = o.rebuild.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("timb-rebuild-{}", std::process::id()))
    });
    let opts = verify::Opts {
        archives: archives.clone(),
        pubkey: None,
        no_rebuild: false,
        signing: None,
        rebuild: RebuildArgs {
            work: Some(work.clone()),
            ..o.rebuild
        },
    };
    if let Err(e) = verify::verify(root, &opts) {
        eprintln!("MISMATCH or no rebuild: nothing was signed");
        return Err(e.context(format!("builder {} signed nothing", o.builder)));
    }
    // The unsigned build's sums, which every builder reproduces, byte for byte.
    let mine = std::fs::read(work.join("out").join(SUMS_FILE))
        .context("the rebuild wrote no sums file")?;
    let theirs = std::fs::read(dir.join(SUMS_FILE))?;
    if mine != theirs {
        println!("MISMATCH: {SUMS_FILE}");
        bail!(
            "the rebuild's {SUMS_FILE} differs from the release's ({}); builder {} signed nothing",
            work.join("out").join(SUMS_FILE).display(),
            o.builder
        );
    }
    let out = o.out.clone().unwrap_or_else(|| dir.clone());
    let written = super::builders::vouch(
        dir,
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
