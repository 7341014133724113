//! The rbm-projects format: `rbm-projects/<name>.toml` (and a script step's
//! `rbm-projects/<name>/build`), read strictly so a mistake in a definition is
//! reported before anything is built. Format in rbm-projects/README.md.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub use pins::{Input, InputKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDef {
    pub name: String,
    pub version: Option<String>,
    pub version_from: Option<String>,
    /// Documentation for humans, kept so unknown fields stay an error.
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
    /// The definition file's bytes and, for a script step, its build file's.
    pub(crate) raw: Vec<u8>,
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
        for t in i.targets.iter().flatten() {
            if !def.target.contains_key(t) {
                bail!(
                    "{}: an input is for target {t}, which has no [target.{t}] table",
                    path.display()
                );
            }
        }
    }
    Ok(Project { def, raw })
}

impl Project {
    /// The inputs that are inputs when building for `target`.
    pub fn inputs_for<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a Input> + 'a {
        self.def.input.iter().filter(move |i| i.applies_to(target))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{self, sha256_bytes};
    use std::process::Command;

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
    fn an_input_for_an_undeclared_target_is_refused() {
        let tmp = std::env::temp_dir().join(format!("timb-rbm-targets-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("rbm-projects")).unwrap();
        let def = |t: &str| {
            format!("name='x'\nversion='1'\n[[input]]\npath='a'\ntargets=['{t}']\n[target.linux-x86_64]\n[build]\nstep='portable-bundle'\n")
        };
        std::fs::write(tmp.join("rbm-projects/x.toml"), def("linux-x86_64")).unwrap();
        let p = load_project(&tmp, "x").unwrap();
        assert_eq!(p.inputs_for("linux-x86_64").count(), 1);
        assert_eq!(p.inputs_for("windows-x86_64").count(), 0);
        std::fs::write(tmp.join("rbm-projects/x.toml"), def("windows-x86_64")).unwrap();
        let e = format!(
            "{:#}",
            load_project(&tmp, "x").err().expect("undeclared target")
        );
        assert!(e.contains("no [target.windows-x86_64] table"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
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
}
