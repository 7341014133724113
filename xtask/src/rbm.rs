//! Reads `rbm-projects/*.toml`, derives build ids and runs build steps with
//! an output cache under `out/<project>/<build-id>/`.

use crate::sandbox::Sandbox;
use crate::util::{self, sha256_bytes, sha256_file};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use pins::{Input, InputKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDef {
    pub name: String,
    pub version: Option<String>,
    pub version_from: Option<String>,
    #[allow(dead_code)] // documentation for humans, kept so unknown fields stay an error
    pub description: Option<String>,
    /// The inputs' format is the pins crate's (shared with app/libotr-sys/build.rs).
    #[serde(default)]
    pub input: Vec<Input>,
    #[serde(default)]
    pub target: BTreeMap<String, BTreeMap<String, String>>,
    pub build: BuildDef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDef {
    pub step: String,
    pub script: Option<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
}

/// A definition together with its raw bytes (hashed into the build id).
pub struct Project {
    pub def: ProjectDef,
    raw: Vec<u8>,
}

/// What the pipeline needs to know to build anything.
pub struct Ctx {
    pub root: PathBuf,
    pub out: PathBuf,
    pub sandbox: Sandbox,
    pub source_date_epoch: u64,
    /// Where pinned source archives are cached after their hash is checked.
    pub sources: PathBuf,
    built: BTreeMap<(String, String), Built>,
}

#[derive(Debug, Clone)]
pub struct Built {
    pub id: String,
    pub dir: PathBuf,
}

impl Ctx {
    pub fn new(root: PathBuf, out: PathBuf, sandbox: Sandbox) -> Result<Ctx> {
        let source_date_epoch = util::source_date_epoch(&root)?;
        let sources = std::env::var_os("TIMB_SOURCES_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("out").join("sources"));
        Ok(Ctx {
            root,
            out,
            sandbox,
            source_date_epoch,
            sources,
            built: BTreeMap::new(),
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
        match project.def.build.step.as_str() {
            "script" => self.run_script(&step)?,
            "linux-bundle" => crate::bundle::linux_bundle_step(self, &step)?,
            other => bail!("{name}: unknown build step '{other}'"),
        }
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
    fn stage_pinned(&self, project: &str, name: &str, sha256: &str, inputs: &Path) -> Result<()> {
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

    fn run_script(&self, s: &StepCtx) -> Result<()> {
        let def = &s.project.def;
        let script = def
            .build
            .script
            .as_deref()
            .with_context(|| format!("{}: step = \"script\" needs a script", def.name))?;
        // Stage exactly the hashed inputs, so the step cannot see anything
        // else: the repository's at /build/src, the others at /build/inputs.
        let build_root = s.out_dir.join(".build");
        let staging = build_root.join("src");
        let inputs = build_root.join("inputs");
        for input in &def.input {
            match input.kind()? {
                InputKind::Path(p) => {
                    for (rel, mode, _) in self.path_files(p)? {
                        let dst = staging.join(&rel);
                        if let Some(parent) = dst.parent() {
                            std::fs::create_dir_all(parent)?;
                        }
                        std::fs::copy(self.root.join(&rel), &dst)?;
                        set_mode(&dst, mode)?;
                    }
                }
                InputKind::Project(p) => copy_tree(&s.deps[p].dir, &inputs.join(p))?,
                InputKind::SourcesOf(p) => {
                    for pin in pins::sources(&self.root, p)?.pins {
                        self.stage_pinned(&def.name, &pin.file, &pin.sha256, &inputs)?;
                    }
                }
                InputKind::File(pin) => {
                    self.stage_pinned(&def.name, pin.file, pin.sha256, &inputs)?
                }
            }
        }
        let mut env: Vec<(String, String)> =
            s.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.push(("version".into(), s.version.to_string()));
        self.sandbox
            .run_script(&build_root, script, &env, self.source_date_epoch)
            .with_context(|| format!("building {}", def.name))?;
        for o in &def.build.outputs {
            let rel = expand_vars(o, &env);
            let host = self.sandbox.host_path(&build_root, &rel)?;
            let name = Path::new(&rel)
                .file_name()
                .with_context(|| format!("output {rel} has no file name"))?;
            let to = s.out_dir.join(name);
            if host.is_dir() {
                copy_tree(&host, &to)
            } else {
                std::fs::copy(&host, &to).map(drop).map_err(Into::into)
            }
            .with_context(|| format!("collecting output {rel}"))?;
        }
        util::remove_dir(&build_root)
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

pub struct StepCtx<'a> {
    pub project: &'a Project,
    #[allow(dead_code)] // kept for steps that differ per target (Windows, macOS)
    pub target: &'a str,
    pub vars: &'a BTreeMap<String, String>,
    pub version: &'a str,
    pub deps: &'a BTreeMap<String, Built>,
    pub out_dir: &'a Path,
}

pub fn load_project(root: &Path, name: &str) -> Result<Project> {
    let path = pins::definition_path(root, name)?;
    let mut raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&raw).context("project file is not UTF-8")?;
    let mut def: ProjectDef =
        toml::from_str(text).with_context(|| format!("parsing {}", path.display()))?;
    // A script step's commands live in `<name>/build`, a real shell file that shellcheck
    // reads (as tor-browser-build keeps `config` and `build` apart); its bytes are part of
    // the definition, so they are hashed into the build id with it.
    if def.build.step == "script" {
        let file = root.join("rbm-projects").join(name).join("build");
        match (&def.build.script, file.is_file()) {
            (Some(_), true) => bail!(
                "{}: give the script inline or in {}, not both",
                path.display(),
                file.display()
            ),
            (Some(_), false) => {}
            (None, true) => {
                let script =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                raw.extend_from_slice(b"\0build script\0");
                raw.extend_from_slice(&script);
                def.build.script = Some(
                    String::from_utf8(script)
                        .with_context(|| format!("{} is not UTF-8", file.display()))?,
                );
            }
            (None, false) => bail!(
                "{}: step = \"script\" needs its commands in {}",
                path.display(),
                file.display()
            ),
        }
    }
    if def.name != name {
        bail!(
            "{}: name = \"{}\" does not match the file name",
            path.display(),
            def.name
        );
    }
    for i in &def.input {
        i.kind().with_context(|| format!("in {}", path.display()))?;
    }
    Ok(Project { def, raw })
}

/// All project names, sorted.
pub fn list_projects(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(root.join("rbm-projects"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "toml") {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

fn expand_vars(s: &str, env: &[(String, String)]) -> String {
    let mut out = s.to_string();
    // Longest names first so `$ab` is not broken by `$a`.
    let mut vars: Vec<_> = env.iter().collect();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (k, v) in vars {
        out = out.replace(&format!("${k}"), v);
    }
    out
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_project_definition_parses() {
        let root = util::repo_root();
        let names = list_projects(&root).unwrap();
        assert!(names.contains(&"timb".to_string()));
        assert!(names.contains(&"linux-bundle".to_string()));
        for n in names {
            load_project(&root, &n).unwrap_or_else(|e| panic!("{n}: {e:#}"));
        }
    }

    #[test]
    fn a_script_lives_in_its_build_file_and_is_part_of_the_definition() {
        let tmp = std::env::temp_dir().join(format!("timb-rbm-script-{}", std::process::id()));
        let dir = tmp.join("rbm-projects");
        std::fs::create_dir_all(dir.join("x")).unwrap();
        std::fs::write(
            dir.join("x.toml"),
            "name='x'\nversion='1'\n[build]\nstep='script'\n",
        )
        .unwrap();
        let err = load_project(&tmp, "x").err().expect("no build file");
        assert!(format!("{err:#}").contains("x/build"), "{err:#}");
        std::fs::write(dir.join("x/build"), "#!/bin/sh\necho one\n").unwrap();
        let one = load_project(&tmp, "x").unwrap();
        assert_eq!(
            one.def.build.script.as_deref(),
            Some("#!/bin/sh\necho one\n")
        );
        std::fs::write(dir.join("x/build"), "#!/bin/sh\necho two\n").unwrap();
        let two = load_project(&tmp, "x").unwrap();
        assert_ne!(
            sha256_bytes(&one.raw),
            sha256_bytes(&two.raw),
            "the script is hashed"
        );
        std::fs::write(
            dir.join("x.toml"),
            "name='x'\nversion='1'\n[build]\nstep='script'\nscript='echo'\n",
        )
        .unwrap();
        assert!(load_project(&tmp, "x").is_err(), "inline and file together");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    /// Every build file is a real shell script that shellcheck passes.
    #[test]
    fn build_scripts_pass_shellcheck() {
        let root = util::repo_root();
        let mut files = Vec::new();
        for n in list_projects(&root).unwrap() {
            let f = root.join("rbm-projects").join(&n).join("build");
            if f.is_file() {
                files.push(f);
            }
        }
        assert!(files.len() >= 4, "found {files:?}");
        let out = Command::new("shellcheck")
            .arg("--shell=sh")
            .args(&files)
            .output()
            .expect("shellcheck (Debian package shellcheck; `cargo xtask test` installs it)");
        assert!(
            out.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    #[test]
    fn an_input_needs_exactly_one_kind() {
        let bad: ProjectDef = toml::from_str(
            "name='x'\nversion='1'\n[[input]]\npath='a'\nproject='b'\n[build]\nstep='script'\n",
        )
        .unwrap();
        assert!(bad.input[0].kind().is_err());
        let no_hash: ProjectDef = toml::from_str(
            "name='x'\nversion='1'\n[[input]]\nfile='a.tar'\n[build]\nstep='script'\n",
        )
        .unwrap();
        assert!(no_hash.input[0].kind().is_err());
    }

    #[test]
    fn variables_expand_longest_first() {
        let env = vec![
            ("a".to_string(), "1".to_string()),
            ("ab".to_string(), "2".to_string()),
        ];
        assert_eq!(expand_vars("x/$ab/$a", &env), "x/2/1");
    }
}
