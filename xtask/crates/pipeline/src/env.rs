//! What a build step may see: the repository's files as the build id hashes them, the
//! pinned archives, the sandbox and `SOURCE_DATE_EPOCH`. Kept apart from the builder
//! ([`crate::build`]) so that steps depend on this and the builder on steps, never round.

use crate::project::{load_project, Project};
use crate::sandbox::Sandbox;
use crate::util::{self, sha256_file};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository, the sandbox and the fixed build time every step shares.
pub struct BuildEnv {
    pub root: PathBuf,
    pub sandbox: Sandbox,
    pub source_date_epoch: u64,
    /// Where pinned source archives are cached after their hash is checked.
    pub sources: PathBuf,
}

impl BuildEnv {
    pub fn new(root: PathBuf, sandbox: Sandbox) -> Result<BuildEnv> {
        let source_date_epoch = util::source_date_epoch(&root)?;
        let sources = util::sources_dir(&root);
        Ok(BuildEnv {
            root,
            sandbox,
            source_date_epoch,
            sources,
        })
    }

    pub fn load(&self, name: &str) -> Result<Project> {
        load_project(&self.root, name)
    }

    pub fn version(&self, p: &Project) -> Result<String> {
        match (&p.def.version, &p.def.version_from) {
            (Some(v), None) => Ok(v.clone()),
            (None, Some(f)) if f == "Cargo.toml" => util::workspace_version(&self.root),
            _ => bail!(
                "{}: give exactly one of version or version_from = \"Cargo.toml\"",
                p.def.name
            ),
        }
    }

    /// Files of a path input: tracked and untracked-but-not-ignored, sorted.
    pub fn path_files(&self, p: &str) -> Result<Vec<(String, u32, String)>> {
        let list = if self.root.join(".git").exists() {
            util::output(
                Command::new("git")
                    .arg("-C")
                    .arg(&self.root)
                    .args([
                        "ls-files",
                        "-z",
                        "--cached",
                        "--others",
                        "--exclude-standard",
                        "--",
                    ])
                    .arg(p),
            )?
        } else {
            // A source tree without git (a `git archive` export, a tarball):
            // every file, less what this repository's .gitignore files name.
            let mut out = String::new();
            walk_source(&self.root, Path::new(p), &mut out)?;
            out
        };
        let mut files: Vec<&str> = list.split('\0').filter(|s| !s.is_empty()).collect();
        files.sort_unstable();
        files.dedup();
        if files.is_empty() {
            bail!("input path '{p}' names no files in the repository");
        }
        let mut out = Vec::new();
        for rel in files {
            let abs = self.root.join(rel);
            // A tracked file deleted in the working tree is simply not an input.
            let Ok(meta) = std::fs::symlink_metadata(&abs) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let mode = if is_executable(&meta) { 0o755 } else { 0o644 };
            out.push((rel.to_string(), mode, sha256_file(&abs)?));
        }
        Ok(out)
    }

    /// Copies the repository files `project`'s `path` inputs name for `target` (exactly the
    /// hashed ones, with their modes) into `into`: the sandbox's `/build/src`, and the native
    /// build's clean folder.
    pub fn stage_repository_inputs(
        &self,
        project: &Project,
        target: &str,
        into: &Path,
    ) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for input in project.inputs_for(target) {
            if let crate::project::InputKind::Path(p) = input.kind()? {
                for (rel, mode, _) in self.path_files(p)? {
                    let dst = into.join(&rel);
                    if let Some(parent) = dst.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::copy(self.root.join(&rel), &dst)
                        .with_context(|| format!("copying {rel} into {}", into.display()))?;
                    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
                }
            }
        }
        Ok(())
    }

    /// Copies a pinned archive from the sources cache into `inputs`, its hash checked.
    pub fn stage_pinned(
        &self,
        project: &str,
        name: &str,
        sha256: &str,
        inputs: &Path,
    ) -> Result<()> {
        let src = self.pinned(project, name, sha256)?;
        std::fs::create_dir_all(inputs)?;
        std::fs::copy(&src, inputs.join(name))?;
        Ok(())
    }

    /// The fetched copy of a pinned file, once its sha256 is checked; for steps that only
    /// read it.
    pub fn pinned(&self, project: &str, name: &str, sha256: &str) -> Result<PathBuf> {
        let src = self.sources.join(name);
        if !src.is_file() || sha256_file(&src)? != sha256 {
            bail!(
                "{project}: pinned source {name} is missing or does not match its sha256; run `cargo xtask fetch`"
            );
        }
        Ok(src)
    }
}

/// Folders the repository's .gitignore files exclude (and `*.swp`); kept in
/// step with them so a tree without git hashes exactly what a checkout does.
const IGNORED_DIRS: &[&str] = &["target", "out", "node_modules", ".git"];

fn walk_source(root: &Path, rel: &Path, out: &mut String) -> Result<()> {
    let abs = root.join(rel);
    let meta = match std::fs::symlink_metadata(&abs) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", abs.display())),
    };
    if meta.is_file() {
        let name = rel.to_string_lossy();
        if !name.ends_with(".swp") {
            out.push_str(&name);
            out.push('\0');
        }
    } else if meta.is_dir() {
        for e in std::fs::read_dir(&abs)? {
            let e = e?;
            let name = e.file_name();
            if IGNORED_DIRS.iter().any(|d| name == *d) && e.file_type()?.is_dir() {
                continue;
            }
            walk_source(root, &rel.join(name), out)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}
