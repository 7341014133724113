//! `cargo xtask container lock`: resolves the build container's definition against the mirror
//! as it is today and writes the lock every build then installs exactly (see
//! `pipeline::lock`). Run on purpose (a Debian point release, a changed package list), and
//! committed with the definition; the same mirror gives the same bytes again.

use anyhow::{Context, Result};
use clap::Subcommand;
use pipeline::container::{ensure_rootfs, resolve_lock, LOCK};
use pipeline::lock::Lock;
use pipeline::util;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Container {
    /// Resolve containers/bookworm-build.toml against the mirror and write its lock
    Lock {
        /// Where to write it [default: containers/bookworm-build.lock]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Build (or find) the locked root file system and print its id and tarball sha256
    Build,
}

pub fn run(root: &Path, c: Container) -> Result<()> {
    match c {
        Container::Build => {
            let rootfs = ensure_rootfs(root, &util::cargo_target_dir(root).join("containers"))?;
            let sum = rootfs
                .dir
                .parent()
                .map(|d| d.join("rootfs.tar.sha256"))
                .and_then(|f| std::fs::read_to_string(f).ok())
                .unwrap_or_default();
            println!("id {}", rootfs.id);
            println!("{}", sum.trim());
            Ok(())
        }
        Container::Lock { out } => {
            let out = out.unwrap_or_else(|| root.join(LOCK));
            let work = util::cargo_target_dir(root);
            std::fs::create_dir_all(&work)?;
            let lock = resolve_lock(root, &work)?;
            let text = lock.render();
            let before = std::fs::read_to_string(&out).ok();
            let changed = before
                .as_deref()
                .and_then(|b| Lock::parse(b).ok())
                .map(|old| {
                    let was: Vec<_> = old.packages.iter().collect();
                    lock.packages
                        .iter()
                        .filter(|p| !was.contains(p))
                        .map(|p| format!("{} {}", p.package, p.version))
                        .collect::<Vec<_>>()
                });
            std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "    {} packages locked into {} (rootfs id {})",
                lock.packages.len(),
                out.display(),
                &lock.rootfs_id()[..16]
            );
            match (before.as_deref() == Some(text.as_str()), changed) {
                (true, _) => eprintln!("    unchanged"),
                (false, Some(new)) if !new.is_empty() => {
                    eprintln!("    new or changed: {}", new.join(", "));
                }
                _ => {}
            }
            Ok(())
        }
    }
}
