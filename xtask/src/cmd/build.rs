//! `cargo xtask build PROJECT [--target T]`: one rbm project into out/PROJECT/<build-id>/.

use anyhow::Result;
use std::path::Path;

/// The folder the output is in goes to stdout.
pub fn run(root: &Path, project: &str, target: &str) -> Result<()> {
    super::fetch::run_for(root, &[project])?;
    let mut ctx = pipeline::Ctx::from_env(root, package::all_steps()?)?;
    let b = ctx.build(project, target)?;
    println!("{}", b.dir.display());
    Ok(())
}
