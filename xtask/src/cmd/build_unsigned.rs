//! `cargo xtask build-unsigned --out DIR`: the bundle without signatures, which `verify`'s
//! rebuild compares and `bundle` then signs.

use anyhow::{Context, Result};
use pipeline::{provision, util};
use std::path::{Path, PathBuf};
use timb_release::{Target, Version, SUMS_FILE};

/// What was built, for the signing stage.
pub struct Unsigned {
    pub archive: PathBuf,
    pub sums: PathBuf,
    pub version: Version,
    pub target: Target,
}

/// Builds into `out`, printing stages `first_stage..first_stage+2` of `total`.
pub fn run(root: &Path, out: &Path, first_stage: usize, total: usize) -> Result<Unsigned> {
    provision::ensure(&["bubblewrap", "mmdebstrap"])?;
    util::stage(
        first_stage,
        total,
        "fetching crates and pinned sources (the only step with network)",
    );
    super::fetch::run(root, false)?;
    util::stage(
        first_stage + 1,
        total,
        "building timb in the sandbox (no network; ~9 min on 2 cores when nothing is cached)",
    );
    let mut ctx = pipeline::Ctx::from_env(root, package::all_steps()?)?;
    let target = Target::LinuxX86_64;
    let built = ctx.build("linux-bundle", target.name())?;
    let version: Version = ctx.version(&ctx.load("linux-bundle")?)?.parse()?;
    util::stage(first_stage + 2, total, "collecting the bundle");
    std::fs::create_dir_all(out)?;
    let name = target.archive_name(&version);
    let archive = out.join(&name);
    let sums = out.join(SUMS_FILE);
    for (from, to) in [
        (built.dir.join(&name), &archive),
        (built.dir.join(SUMS_FILE), &sums),
    ] {
        std::fs::copy(&from, to).with_context(|| format!("copying {}", from.display()))?;
        let _ = std::fs::remove_file(sign::sig_path(to));
    }
    eprintln!(
        "    {}  {}",
        util::sha256_file(&archive)?,
        archive.display()
    );
    Ok(Unsigned {
        archive,
        sums,
        version,
        target,
    })
}
