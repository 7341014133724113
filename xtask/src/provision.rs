//! Installing what builds and tests need from Debian, and fetching pinned
//! source archives.

use crate::rbm;
use crate::util;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", pkg])
        .output()
        .map(|o| o.status.success() && o.stdout == b"installed")
        .unwrap_or(false)
}

/// Installs the Debian packages that are missing, saying which, as root or
/// through `sudo -n`.
pub fn ensure(packages: &[&str]) -> Result<()> {
    if !util::have_command("dpkg-query") {
        bail!(
            "this is not a Debian-based system; install by hand: {}",
            packages.join(" ")
        );
    }
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing missing Debian packages: {}", missing.join(" "));
    let is_root = util::output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| -> Result<()> {
        let mut c = if is_root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        util::run(&mut c)
    };
    apt(&["update", "-qq"]).context("apt-get update (as root, or with password-less sudo)")?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args).with_context(|| format!("installing {}", missing.join(" ")))
}

/// Makes every `file` input of every project available in the sources
/// folder, its sha256 checked; one private apt update serves them all.
pub fn fetch_pinned_sources(root: &Path) -> Result<()> {
    let dir = std::env::var_os("TIMB_SOURCES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("out").join("sources"));
    let mut all = Vec::new();
    for name in rbm::list_projects(root)? {
        // Parsed strictly first, so a malformed definition is reported as such.
        let project = rbm::load_project(root, &name)?;
        for input in &project.def.input {
            if let pins::InputKind::File(pin) = input.kind()? {
                all.push(pin.to_owned());
            }
        }
    }
    all.sort();
    all.dedup();
    crate::sources::fetch_many(&all, &dir)?;
    Ok(())
}
