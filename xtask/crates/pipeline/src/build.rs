//! Building projects: build ids, the output cache under
//! `out/<project>/<build-id>/`, and the inputs a step may see. What a step
//! does is not known here: it is looked up by name in the [`Steps`] registry.

use crate::container;
use crate::project::{load_project, InputKind, Project};
use crate::sandbox::{self, Sandbox};
use crate::step::{StepCtx, Steps};
use crate::util::{self, sha256_bytes, sha256_file};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the pipeline needs to know to build anything.
pub struct Ctx {
    pub root: PathBuf,
    pub out: PathBuf,
    pub sandbox: Sandbox,
    pub source_date_epoch: u64,
    /// Where pinned source archives are cached after their hash is checked.
    pub sources: PathBuf,
    /// The steps definitions may name.
    pub steps: Steps,
    built: BTreeMap<(String, String), Built>,
}

#[derive(Debug, Clone)]
pub struct Built {
    pub id: String,
    pub dir: PathBuf,
}

impl Ctx {
    pub fn new(root: PathBuf, out: PathBuf, sandbox: Sandbox, steps: Steps) -> Result<Ctx> {
        let source_date_epoch = util::source_date_epoch(&root)?;
        let sources = util::sources_dir(&root);
        Ok(Ctx {
            root,
            out,
            sandbox,
            source_date_epoch,
            sources,
            steps,
            built: BTreeMap::new(),
        })
    }

    /// The context every command builds with: the sandbox over the pinned container
    /// (unless `TIMB_HOST_ROOTFS=1`), `TIMB_SANDBOX_FAKETIME` and `TIMB_OUT_DIR` honoured.
    pub fn from_env(root: &Path, steps: Steps) -> Result<Ctx> {
        let target_dir = util::cargo_target_dir(root).join("sandbox");
        let mut sandbox = Sandbox::new(target_dir)?;
        // The pinned container unless the builder opts out; see containers/README.md.
        if std::env::var_os("TIMB_HOST_ROOTFS").is_some_and(|v| v == "1") {
            eprintln!("\x1b[1;33m!!! TIMB_HOST_ROOTFS=1: building with this machine's /usr and /etc, not the pinned container.\n!!! The output is not a release build.\x1b[0m");
        } else {
            let cache = util::cargo_target_dir(root).join("containers");
            let rootfs = container::ensure_rootfs(root, &cache)?;
            // Cargo's fingerprints know nothing of the rootfs: a target directory shared with
            // another rootfs would keep build-script results (pkg-config probes) made there.
            sandbox.target_dir =
                util::cargo_target_dir(root).join(format!("sandbox-{}", &rootfs.id[..16]));
            sandbox.rootfs = Some(rootfs);
        }
        // Lets the reproducibility test move the sandbox's wall clock.
        if let Ok(offset) = std::env::var("TIMB_SANDBOX_FAKETIME") {
            if !Path::new(sandbox::FAKETIME_LIB).is_file() {
                bail!("TIMB_SANDBOX_FAKETIME is set but libfaketime is not installed (apt-get install faketime)");
            }
            sandbox.faketime = Some(offset);
        }
        // The output cache; the build benchmark points it at a fresh folder.
        let out = std::env::var_os("TIMB_OUT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("out"));
        Ctx::new(root.to_path_buf(), out, sandbox, steps)
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

    /// Builds `name` for `target` (and, first, every project it takes as input).
    pub fn build(&mut self, name: &str, target: &str) -> Result<Built> {
        if let Some(b) = self.built.get(&(name.to_string(), target.to_string())) {
            return Ok(b.clone());
        }
        let project = self.load(name)?;
        let vars = project
            .def
            .target
            .get(target)
            .with_context(|| format!("project {name} has no [target.{target}] table"))?;
        let version = self.version(&project)?;

        let mut deps = BTreeMap::new();
        for input in &project.def.input {
            if let InputKind::Project(p) = input.kind()? {
                deps.insert(p.to_string(), self.build(p, target)?);
            }
        }
        let id = self.build_id(&project, target, vars, &version, &deps)?;
        let dir = self.out.join(name).join(&id);
        if dir.join("BUILD-ID").is_file() {
            eprintln!(
                "    {name}: reusing out/{name}/{} (inputs unchanged)",
                &id[..16]
            );
            let b = Built { id, dir };
            self.built.insert((name.into(), target.into()), b.clone());
            return Ok(b);
        }
        eprintln!("    {name}: building, id {}", &id[..16]);
        util::remove_dir(&dir)?;
        let tmp = self.out.join(name).join(format!(".tmp-{}", &id[..16]));
        util::remove_dir(&tmp)?;
        std::fs::create_dir_all(&tmp)?;
        let step = StepCtx {
            project: &project,
            target,
            vars,
            version: &version,
            deps: &deps,
            out_dir: &tmp,
        };
        self.steps
            .get(name, &project.def.build.step)?
            .run(self, &step)?;
        std::fs::write(tmp.join("BUILD-ID"), format!("{id}\n"))?;
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("moving the output into {}", dir.display()))?;
        let b = Built { id, dir };
        self.built.insert((name.into(), target.into()), b.clone());
        Ok(b)
    }

    fn build_id(
        &self,
        project: &Project,
        target: &str,
        vars: &BTreeMap<String, String>,
        version: &str,
        deps: &BTreeMap<String, Built>,
    ) -> Result<String> {
        let mut h = Sha256::new();
        let mut add = |s: &str| {
            h.update(s.as_bytes());
            h.update(b"\n");
        };
        add("timb-rbm build id v1");
        add(&format!("definition {}", sha256_bytes(&project.raw)));
        add(&format!("target {target}"));
        for (k, v) in vars {
            add(&format!("var {k}={v}"));
        }
        add(&format!("version {version}"));
        add(&format!("source_date_epoch {}", self.source_date_epoch));
        add(&format!("sandbox {}", self.sandbox.identity()?));
        for input in &project.def.input {
            match input.kind()? {
                InputKind::Path(p) => {
                    for (rel, mode, sha) in self.path_files(p)? {
                        add(&format!("path {rel} {mode:o} {sha}"));
                    }
                }
                InputKind::Project(p) => add(&format!("project {p} {}", deps[p].id)),
                InputKind::SourcesOf(p) => {
                    add(&format!("sources_of {p}"));
                    for pin in pins::sources(&self.root, p)?.pins {
                        add(&format!("file {} {}", pin.file, pin.sha256));
                    }
                }
                InputKind::File(pin) => add(&format!("file {} {}", pin.file, pin.sha256)),
            }
        }
        Ok(hex::encode(h.finalize()))
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

    /// Copies a pinned archive from the sources cache into `inputs`, its hash checked.
    pub fn stage_pinned(
        &self,
        project: &str,
        name: &str,
        sha256: &str,
        inputs: &Path,
    ) -> Result<()> {
        let src = self.sources.join(name);
        if !src.is_file() || sha256_file(&src)? != sha256 {
            bail!(
                "{project}: pinned source {name} is missing or does not match its sha256; run `cargo xtask fetch`"
            );
        }
        std::fs::create_dir_all(inputs)?;
        std::fs::copy(&src, inputs.join(name))?;
        Ok(())
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

pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &to)?;
        } else {
            std::fs::copy(e.path(), &to)?;
        }
    }
    Ok(())
}
