//! Build steps behind one trait, found by the name a definition gives in
//! `[build] step`. The core registers only its own `script` step; packaging
//! steps (the `package` crate's) are registered by whoever assembles the
//! pipeline, so the core never names them.

use crate::env::BuildEnv;
use crate::project::{InputKind, Project};
use crate::util::{self, copy_tree};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a project's build produced: its build id and the folder in the cache.
#[derive(Debug, Clone)]
pub struct Built {
    pub id: String,
    pub dir: PathBuf,
}

/// What a step is given: its project, the target and its variables, the
/// outputs of the projects it takes as input, and the folder to write into
/// (moved into the cache only when the step succeeds).
pub struct StepCtx<'a> {
    pub project: &'a Project,
    /// The target name: for steps that differ per target (Windows, macOS).
    pub target: &'a str,
    pub vars: &'a BTreeMap<String, String>,
    pub version: &'a str,
    pub deps: &'a BTreeMap<String, Built>,
    pub out_dir: &'a Path,
}

/// One kind of build step. A step writes its outputs into `s.out_dir`; it reads only what
/// the build id covers (the project's inputs through `env`, `s.deps`, `s.vars`), or the
/// cache would reuse an output its inputs no longer describe. `Send`: a bundle's targets
/// build in threads of their own.
pub trait Step: Send {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()>;
}

/// The steps a pipeline knows, by the name `[build] step` gives.
pub struct Steps {
    steps: BTreeMap<String, Box<dyn Step>>,
}

impl Steps {
    /// A registry holding only the core's `script` step.
    pub fn new() -> Steps {
        let mut steps: BTreeMap<String, Box<dyn Step>> = BTreeMap::new();
        steps.insert("script".into(), Box::new(Script));
        Steps { steps }
    }

    /// Adds a step. A name already taken is refused, never replaced: two crates claiming one
    /// name would otherwise build with whichever registered last.
    pub fn register(&mut self, name: &str, step: Box<dyn Step>) -> Result<()> {
        if self.steps.contains_key(name) {
            bail!("a build step named {name} is already registered");
        }
        self.steps.insert(name.to_string(), step);
        Ok(())
    }

    /// The step a definition names, or an error that lists the known ones.
    pub fn get(&self, project: &str, name: &str) -> Result<&dyn Step> {
        match self.steps.get(name) {
            Some(s) => Ok(s.as_ref()),
            None => bail!(
                "{project}: unknown build step '{name}' (known: {})",
                self.steps.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl Default for Steps {
    fn default() -> Steps {
        Steps::new()
    }
}

/// `step = "script"`: `rbm-projects/<name>/build` run in the sandbox, over exactly the
/// project's hashed inputs, its declared outputs collected afterwards.
pub struct Script;

impl Step for Script {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()> {
        run_script(env, s)
    }
}

fn run_script(env: &BuildEnv, s: &StepCtx) -> Result<()> {
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
    env.stage_repository_inputs(s.project, s.target, &staging)?;
    for input in s.project.inputs_for(s.target) {
        match input.kind()? {
            InputKind::Path(_) => {}
            InputKind::Project(p) => copy_tree(&s.deps[p].dir, &inputs.join(p))?,
            InputKind::SourcesOf(p) => {
                for pin in pins::sources(&env.root, p)?.pins {
                    env.stage_pinned(&def.name, &pin.file, &pin.sha256, &inputs)?;
                }
            }
            InputKind::File(pin) => env.stage_pinned(&def.name, pin.file, pin.sha256, &inputs)?,
        }
    }
    let mut vars: Vec<(String, String)> =
        s.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.push(("version".into(), s.version.to_string()));
    // `rust_std_source = "rust-src_….deb"`: a pinned input of this target, unpacked beside
    // the build (not inside /build, which the step can write) and mounted for -Zbuild-std.
    let std_tree = match s.vars.get("rust_std_source") {
        Some(file) => {
            let deb = inputs.join(file);
            if !crate::std_src::is_std_source(file) || !deb.is_file() {
                bail!(
                    "{}: rust_std_source = {file:?} must name a rust-src_…_all.deb input of target {}",
                    def.name,
                    s.target
                );
            }
            Some(crate::std_src::unpack(&deb, &s.out_dir.join(".std-src"))?)
        }
        None => None,
    };
    let sandbox = env.sandbox.for_target(s.target);
    sandbox
        .run_script(
            &build_root,
            script,
            &vars,
            env.source_date_epoch,
            std_tree.as_deref(),
        )
        .with_context(|| format!("building {}", def.name))?;
    for o in &def.build.outputs {
        let rel = expand_vars(o, &vars);
        let host = sandbox.host_path(&build_root, &rel)?;
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
    util::remove_dir(&s.out_dir.join(".std-src"))?;
    util::remove_dir(&build_root)
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
#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl Step for Nothing {
        fn run(&self, _: &BuildEnv, _: &StepCtx) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_core_knows_only_its_script_step_and_names_are_taken_once() {
        let mut steps = Steps::new();
        assert!(steps.get("p", "script").is_ok());
        let e = steps.get("p", "linux-bundle").err().unwrap().to_string();
        assert!(
            e.contains("p: unknown build step 'linux-bundle'") && e.contains("script"),
            "{e}"
        );
        steps.register("other", Box::new(Nothing)).unwrap();
        assert!(steps.register("other", Box::new(Nothing)).is_err());
        assert!(steps.register("script", Box::new(Nothing)).is_err());
        assert!(steps.get("p", "other").is_ok());
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
