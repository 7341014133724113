//! Building projects: build ids and the output cache under `out/<project>/<build-id>/`.
//! What a step does is not known here: it is looked up by name in the [`Steps`] registry.

use crate::container;
use crate::env::BuildEnv;
use crate::project::{InputKind, Project};
use crate::sandbox::{self, Sandbox};
use crate::step::{Built, StepCtx, Steps};
use crate::util::{self, sha256_bytes};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the pipeline needs to know to build anything.
pub struct Ctx {
    /// What steps see.
    pub env: BuildEnv,
    pub out: PathBuf,
    /// The steps definitions may name.
    pub steps: Steps,
    built: BTreeMap<(String, String), Built>,
}

impl Ctx {
    pub fn new(root: PathBuf, out: PathBuf, sandbox: Sandbox, steps: Steps) -> Result<Ctx> {
        Ok(Ctx {
            env: BuildEnv::new(root, sandbox)?,
            out,
            steps,
            built: BTreeMap::new(),
        })
    }

    /// The context every command builds with: the sandbox over the pinned container
    /// (unless `TIMB_HOST_ROOTFS=1`), `TIMB_SANDBOX_FAKETIME` and `TIMB_OUT_DIR` honoured.
    pub fn from_env(root: &Path, steps: Steps) -> Result<Ctx> {
        let target_dir = util::cargo_target_dir(root).join("sandbox");
        let mut sandbox = Sandbox::new(root, target_dir)?;
        // The pinned container unless the builder opts out; see containers/README.md. A Mac
        // has neither bubblewrap nor mmdebstrap: its builds are native steps
        // (package::native), whose tools the sandbox identity names instead.
        if cfg!(target_os = "macos") {
        } else if std::env::var_os("TIMB_HOST_ROOTFS").is_some_and(|v| v == "1") {
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
        self.env.load(name)
    }

    pub fn version(&self, p: &Project) -> Result<String> {
        self.env.version(p)
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
        for input in project.inputs_for(target) {
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
            .run(&self.env, &step)?;
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
        add(&format!("source_date_epoch {}", self.env.source_date_epoch));
        add(&format!("sandbox {}", self.env.sandbox.identity()?));
        for input in project.inputs_for(target) {
            match input.kind()? {
                InputKind::Path(p) => {
                    for (rel, mode, sha) in self.env.path_files(p)? {
                        add(&format!("path {rel} {mode:o} {sha}"));
                    }
                }
                InputKind::Project(p) => add(&format!("project {p} {}", deps[p].id)),
                InputKind::SourcesOf(p) => {
                    add(&format!("sources_of {p}"));
                    for pin in pins::sources(&self.env.root, p)?.pins {
                        add(&format!("file {} {}", pin.file, pin.sha256));
                    }
                }
                InputKind::File(pin) => add(&format!("file {} {}", pin.file, pin.sha256)),
            }
        }
        Ok(hex::encode(h.finalize()))
    }
}
