//! `cargo xtask fetch`: everything a build needs from the network, fetched before any
//! sandbox (which has none) runs.

use anyhow::{Context, Result};
use pipeline::util;
use std::path::Path;

/// Crates for every platform in Cargo.lock, then every pinned source archive.
pub fn run(root: &Path) -> Result<()> {
    util::run(
        util::cargo()
            .current_dir(root)
            .args(["fetch", "--locked", "--quiet"]),
    )
    .context("downloading crates")?;
    pipeline::sources::fetch_pinned_sources(root)
}
