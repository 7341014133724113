//! Installing what builds and tests need from Debian.

use crate::util;
use anyhow::{bail, Context, Result};
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
