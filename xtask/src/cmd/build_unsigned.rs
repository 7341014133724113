//! `cargo xtask build-unsigned --out DIR [--target T]…`: the bundles without signatures,
//! which `verify`'s rebuild compares and `bundle` then signs.

use anyhow::{Context, Result};
use pipeline::{provision, util};
use std::path::{Path, PathBuf};
use timb_release::{Sums, Target, Version, SUMS_FILE};

/// What was built, for the signing stage.
pub struct Unsigned {
    /// One archive per target, in the order asked for.
    pub bundles: Vec<(Target, PathBuf)>,
    /// One sums file for the whole build, as Tor's `sha256sums-unsigned-build.txt`: every
    /// archive and, for Windows, its unsigned exes.
    pub sums: PathBuf,
    pub version: Version,
}

/// The targets this machine builds when none is named: on Linux every one the pipeline
/// builds there (Linux, Windows); on a Mac its own macOS target (the only one it builds:
/// no sandbox there).
pub fn default_targets() -> Vec<Target> {
    if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        return vec![Target::MacosAarch64];
    }
    if cfg!(target_os = "macos") {
        return vec![Target::MacosX86_64];
    }
    Target::ALL.into_iter().filter(|t| t.is_built()).collect()
}

/// The rbm project that makes `target`'s bundle.
fn bundle_project(target: Target) -> Result<&'static str> {
    match target {
        Target::LinuxX86_64 | Target::WindowsX86_64 if cfg!(target_os = "macos") => {
            anyhow::bail!(
                "{target}: built on Linux, in the sandbox (bubblewrap and the pinned build \
                 container); a Mac builds the macOS bundle only"
            )
        }
        Target::LinuxX86_64 => Ok("linux-bundle"),
        Target::WindowsX86_64 => Ok("windows-bundle"),
        // Compiled natively (package::native), packaged by the same step as the others.
        Target::MacosAarch64 | Target::MacosX86_64 if cfg!(target_os = "macos") => {
            Ok("macos-bundle")
        }
        Target::MacosAarch64 | Target::MacosX86_64 => {
            anyhow::bail!("{}", package::native::needs_a_mac(target))
        }
    }
}

/// Builds into `out`, printing stages `first_stage..first_stage+2` of `total`.
pub fn run(
    root: &Path,
    out: &Path,
    first_stage: usize,
    total: usize,
    targets: &[Target],
) -> Result<Unsigned> {
    // A target this machine cannot build is said before anything is fetched or built.
    for &target in targets {
        bundle_project(target)?;
    }
    util::stage(
        first_stage,
        total,
        "fetching crates and pinned sources (the only step with network)",
    );
    // A Mac has no sandbox: its build is native (package::native).
    if !cfg!(target_os = "macos") {
        provision::ensure(&["bubblewrap", "mmdebstrap"])?;
    }
    let projects = targets
        .iter()
        .map(|t| bundle_project(*t))
        .collect::<Result<Vec<_>>>()?;
    super::fetch::run_for(root, &projects)?;
    let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
    util::stage(
        first_stage + 1,
        total,
        &format!(
            "building timb for {} {} (no network; ~20 min per target on 2 cores when nothing is cached)",
            names.join(" and "),
            if cfg!(target_os = "macos") {
                "natively, in a clean folder"
            } else {
                "in the sandbox"
            }
        ),
    );
    // The targets build at the same time, each in a context and sandbox target folder of
    // its own: a release build spends minutes on one core (thin LTO, codegen-units = 1, the
    // C libraries' configure scripts), and the other target fills the second. The first
    // context makes the build container; the others find it made.
    let mut ctxs = Vec::new();
    for &target in targets {
        let project = bundle_project(target)?;
        ctxs.push((
            target,
            project,
            pipeline::Ctx::from_env(root, package::all_steps()?)?,
        ));
    }
    let results: Vec<Result<(Target, pipeline::Built, Version)>> = std::thread::scope(|s| {
        let handles: Vec<_> = ctxs
            .into_iter()
            .map(|(target, project, mut ctx)| {
                s.spawn(move || -> Result<_> {
                    let b = ctx
                        .build(project, target.name())
                        .with_context(|| format!("building the {target} bundle"))?;
                    let v: Version = ctx.version(&ctx.load(project)?)?.parse()?;
                    Ok((target, b, v))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a target's build panicked")))
            })
            .collect()
    });
    let mut built = Vec::new();
    let mut version = None;
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok((target, b, v)) => {
                built.push((target, b));
                version = Some(v);
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    // Both targets' failures, when both fail: the second is often a different cause.
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("\n"));
    }
    let version = version.context("no target to build")?;
    util::stage(first_stage + 2, total, "collecting the bundles");
    std::fs::create_dir_all(out)?;
    let mut sums = Sums::new();
    let mut bundles = Vec::new();
    for (target, b) in built {
        let name = target.archive_name(&version);
        let archive = out.join(&name);
        std::fs::copy(b.dir.join(&name), &archive).with_context(|| format!("copying {name}"))?;
        let _ = std::fs::remove_file(sign::sig_path(&archive));
        let text = std::fs::read_to_string(b.dir.join(SUMS_FILE))?;
        for (file, sha) in text.parse::<Sums>()?.iter() {
            sums.add(file, *sha)?;
        }
        eprintln!(
            "    {}  {}",
            util::sha256_file(&archive)?,
            archive.display()
        );
        bundles.push((target, archive));
    }
    let sums_path = out.join(SUMS_FILE);
    std::fs::write(&sums_path, sums.to_string())?;
    let _ = std::fs::remove_file(sign::sig_path(&sums_path));
    Ok(Unsigned {
        bundles,
        sums: sums_path,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asked for a macOS bundle, this machine says what it lacks and what it can build,
    /// before fetching or building anything.
    #[test]
    #[cfg(not(target_os = "macos"))]
    fn a_macos_bundle_is_refused_naming_what_is_missing() {
        for t in [Target::MacosAarch64, Target::MacosX86_64] {
            let e = bundle_project(t).unwrap_err().to_string();
            for want in [
                "AppKit",
                "Apple's SDK",
                "on a Mac",
                "build macos-app --target",
            ] {
                assert!(e.contains(want), "{want} in {e}");
            }
            assert!(!default_targets().contains(&t));
        }
        let e = run(
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            1,
            3,
            &[Target::MacosAarch64],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("AppKit"), "{e}");
    }
}
