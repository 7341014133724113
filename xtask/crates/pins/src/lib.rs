//! The `[[input]]` entries of `rbm-projects/<name>.toml`, in one place.
//!
//! Every pinned file (file name, sha256, and where it comes from: the Debian source package,
//! or for the few tools Debian lacks, the PyPI project) is written once, in the definition of the project that builds from it. Whoever needs the pins
//! reads them here: xtask (build ids, staging, fetching, licence texts) and
//! `app/libotr-sys/build.rs` (a build dependency), which verifies the archives again before
//! compiling them.
//!
//! A definition can take another project's pins without building that project:
//! `[[input]] sources_of = "libotr"` stands for the `file` inputs of `libotr.toml` and, in turn,
//! of every project it takes as input (the timb binary compiles libotr and libgcrypt itself,
//! in libotr-sys, from the same archives).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One `[[input]]` table, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub path: Option<String>,
    pub project: Option<String>,
    pub sources_of: Option<String>,
    pub file: Option<String>,
    pub sha256: Option<String>,
    pub debian_source: Option<String>,
    pub debian_version: Option<String>,
    /// A wheel from the Python Package Index instead of Debian: its project and version
    /// (zig, the macOS C compiler and linker, is packaged there and not in Debian).
    pub pypi_project: Option<String>,
    pub pypi_version: Option<String>,
    /// Only for these targets (`[target.NAME]` names); every target when absent. The
    /// standard library's source, for example, is an input only where std is built from it.
    pub targets: Option<Vec<String>>,
}

/// What an input is, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind<'a> {
    /// A file or folder of the repository.
    Path(&'a str),
    /// Another project's output.
    Project(&'a str),
    /// Another project's pinned archives (see the crate documentation), not its output.
    SourcesOf(&'a str),
    /// A pinned file: a Debian source archive or package, or a PyPI wheel.
    File(Pin<'a>),
}

/// Where a pinned file is fetched from. The sha256 is the trust; this only says which of the
/// builder's own configured package sources to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Registry {
    /// A file of a Debian source package, or a binary `.deb`, through apt's mirror.
    Debian,
    /// A wheel of a PyPI project, through pip's index.
    PyPI,
}

/// A pinned file: a Debian source archive or `.deb`, or a PyPI wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin<'a> {
    pub file: &'a str,
    /// 64 lowercase hex digits.
    pub sha256: &'a str,
    pub registry: Registry,
    /// The Debian source package or the PyPI project.
    pub package: &'a str,
    pub version: &'a str,
}

/// An owned [`Pin`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pinned {
    pub file: String,
    pub sha256: String,
    pub registry: Registry,
    pub package: String,
    pub version: String,
}

impl Pin<'_> {
    pub fn to_owned(&self) -> Pinned {
        Pinned {
            file: self.file.into(),
            sha256: self.sha256.into(),
            registry: self.registry,
            package: self.package.into(),
            version: self.version.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("an input must have exactly one of path, project, sources_of or file")]
    Kind,
    #[error("file input {0} has no sha256")]
    NoSha256(String),
    #[error("file input {0}: sha256 must be 64 lowercase hex digits")]
    BadSha256(String),
    #[error("file input {0}: say where it comes from (debian_source and debian_version, or pypi_project and pypi_version)")]
    NoOrigin(String),
    #[error("input {0:?}: only letters, digits and ._+~:- are allowed, not starting with - or holding ..")]
    BadName(String),
    #[error("input {0}: sha256, debian_* and pypi_* belong to file inputs only")]
    Stray(String),
    #[error("'{0}' is not a project name")]
    ProjectName(String),
    #[error("in {path}: {source}")]
    In { path: PathBuf, source: Box<Error> },
    #[error("project inputs form a cycle through {0}")]
    Cycle(String),
    #[error("{file} is pinned twice with different hashes or origins")]
    Conflict { file: String },
}

/// Names go onto apt command lines and into paths: nothing that could be an option, a path
/// or shell syntax.
fn check_name(s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && !s.starts_with('-')
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(s.to_string()))
    }
}

/// Project names are file names under `rbm-projects/`.
pub fn check_project_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::ProjectName(name.to_string()))
    }
}

impl Input {
    /// Whether this input is one when building for `target`.
    pub fn applies_to(&self, target: &str) -> bool {
        self.targets
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == target))
    }

    pub fn kind(&self) -> Result<InputKind<'_>, Error> {
        let origin = self.sha256.is_some()
            || self.debian_source.is_some()
            || self.debian_version.is_some()
            || self.pypi_project.is_some()
            || self.pypi_version.is_some();
        let kind = match (&self.path, &self.project, &self.sources_of, &self.file) {
            (Some(p), None, None, None) => InputKind::Path(p),
            (None, Some(p), None, None) => {
                check_project_name(p)?;
                InputKind::Project(p)
            }
            (None, None, Some(p), None) => {
                check_project_name(p)?;
                InputKind::SourcesOf(p)
            }
            (None, None, None, Some(f)) => {
                check_name(f)?;
                let sha = self
                    .sha256
                    .as_deref()
                    .ok_or_else(|| Error::NoSha256(f.clone()))?;
                if sha.len() != 64
                    || !sha
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(Error::BadSha256(f.clone()));
                }
                let (registry, package, version) = match (
                    &self.debian_source,
                    &self.debian_version,
                    &self.pypi_project,
                    &self.pypi_version,
                ) {
                    (Some(p), Some(v), None, None) => (Registry::Debian, p, v),
                    (None, None, Some(p), Some(v)) => (Registry::PyPI, p, v),
                    _ => return Err(Error::NoOrigin(f.clone())),
                };
                check_name(package)?;
                check_name(version)?;
                return Ok(InputKind::File(Pin {
                    file: f,
                    sha256: sha,
                    registry,
                    package,
                    version,
                }));
            }
            _ => return Err(Error::Kind),
        };
        if origin {
            let name = self
                .path
                .as_deref()
                .or(self.project.as_deref())
                .or(self.sources_of.as_deref())
                .unwrap_or_default();
            return Err(Error::Stray(name.to_string()));
        }
        Ok(kind)
    }
}

/// Only the inputs of a definition (the rest of the file is the pipeline's business).
#[derive(Deserialize)]
struct InputsOnly {
    #[serde(default)]
    input: Vec<Input>,
}

/// The checked inputs of a definition's text.
pub fn parse_inputs(text: &str) -> Result<Vec<Input>, String> {
    let def: InputsOnly = toml::from_str(text).map_err(|e| e.to_string())?;
    for i in &def.input {
        i.kind().map_err(|e| e.to_string())?;
    }
    Ok(def.input)
}

/// `<root>/rbm-projects/<name>.toml`.
pub fn definition_path(root: &Path, name: &str) -> Result<PathBuf, Error> {
    check_project_name(name)?;
    Ok(root.join("rbm-projects").join(format!("{name}.toml")))
}

/// The inputs of project `name`.
pub fn read_inputs(root: &Path, name: &str) -> Result<Vec<Input>, Error> {
    let path = definition_path(root, name)?;
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    parse_inputs(&text).map_err(|message| Error::Parse { path, message })
}

/// The pinned archives a project builds from: its `file` inputs, then those its
/// `sources_of` and `project` inputs stand for, in input order, each file once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub pins: Vec<Pinned>,
    /// Every definition read on the way (for `cargo:rerun-if-changed`).
    pub definitions: Vec<PathBuf>,
}

impl Sources {
    pub fn get(&self, file: &str) -> Option<&Pinned> {
        self.pins.iter().find(|p| p.file == file)
    }

    fn add(&mut self, p: Pinned) -> Result<(), Error> {
        match self.get(&p.file) {
            Some(q) if *q == p => Ok(()),
            Some(_) => Err(Error::Conflict { file: p.file }),
            None => {
                self.pins.push(p);
                Ok(())
            }
        }
    }
}

/// The archives project `name` builds from, through its `project` and `sources_of` inputs.
pub fn sources(root: &Path, name: &str) -> Result<Sources, Error> {
    let mut out = Sources::default();
    collect(root, name, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn collect(
    root: &Path,
    name: &str,
    stack: &mut Vec<String>,
    out: &mut Sources,
) -> Result<(), Error> {
    if stack.iter().any(|s| s == name) {
        return Err(Error::Cycle(name.to_string()));
    }
    let path = definition_path(root, name)?;
    let inputs = read_inputs(root, name)?;
    if !out.definitions.contains(&path) {
        out.definitions.push(path.clone());
    }
    stack.push(name.to_string());
    for i in &inputs {
        let within = |e: Error| Error::In {
            path: path.clone(),
            source: Box::new(e),
        };
        match i.kind().map_err(within)? {
            InputKind::File(p) => out.add(p.to_owned()).map_err(within)?,
            InputKind::Project(p) | InputKind::SourcesOf(p) => collect(root, p, stack, out)?,
            InputKind::Path(_) => {}
        }
    }
    stack.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
    }

    #[test]
    fn the_c_libraries_are_pinned_once_and_reach_timb() {
        let otr = sources(&repo(), "libotr").unwrap();
        let files: Vec<&str> = otr.pins.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "libotr_4.1.1.orig.tar.gz",
                "libgcrypt20_1.10.1.orig.tar.bz2",
                "libgcrypt20_1.10.1-3+deb12u1.debian.tar.xz",
                "libgpg-error_1.46.orig.tar.bz2",
            ]
        );
        assert_eq!(otr.definitions.len(), 3);
        // timb builds from the same archives, and for Windows from std's source too.
        let timb = sources(&repo(), "timb").unwrap().pins;
        assert_eq!(timb[..otr.pins.len()], otr.pins);
        let rest: Vec<&str> = timb[otr.pins.len()..]
            .iter()
            .map(|p| p.file.as_str())
            .collect();
        assert_eq!(rest, ["rust-src_1.95.0+dfsg1-2~bpo13+1_all.deb"]);
        // Written in exactly one definition each.
        for p in &otr.pins {
            let mut holders = 0;
            for e in std::fs::read_dir(repo().join("rbm-projects")).unwrap() {
                let path = e.unwrap().path();
                if !path.is_file() {
                    continue; // a project's build script folder
                }
                let text = std::fs::read_to_string(path).unwrap();
                holders += usize::from(text.contains(&p.sha256));
            }
            assert_eq!(holders, 1, "{} is pinned in {holders} files", p.file);
        }
    }

    #[test]
    fn an_input_for_some_targets_is_an_input_only_there() {
        let all: Vec<Input> = parse_inputs("[[input]]\npath = 'a'\n").unwrap();
        assert!(all[0].applies_to("linux-x86_64") && all[0].applies_to("windows-x86_64"));
        let some = parse_inputs("[[input]]\npath = 'a'\ntargets = ['windows-x86_64']\n").unwrap();
        assert!(some[0].applies_to("windows-x86_64"));
        assert!(!some[0].applies_to("linux-x86_64"));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let sha = "ab".repeat(32);
        let cases = [
            ("path='a'\nproject='b'", "exactly one"),
            ("file='a.tar'", "no sha256"),
            (
                &format!(
                    "file='a.tar'\nsha256='{}'\ndebian_source='a'\ndebian_version='1'",
                    sha.to_uppercase()
                ) as &str,
                "64 lowercase",
            ),
            (
                &format!("file='a.tar'\nsha256='{sha}'"),
                "where it comes from",
            ),
            (
                &format!("file='--x'\nsha256='{sha}'\ndebian_source='a'\ndebian_version='1'"),
                "allowed",
            ),
            (
                &format!("file='a.tar'\nsha256='{sha}'\ndebian_source='../a'\ndebian_version='1'"),
                "allowed",
            ),
            (&format!("project='a'\nsha256='{sha}'"), "file inputs only"),
            ("path='a'\npypi_project='z'", "file inputs only"),
            (
                &format!("file='z.whl'\nsha256='{sha}'\npypi_project='z'\ndebian_version='1'"),
                "where it comes from",
            ),
            (
                &format!("file='z.whl'\nsha256='{sha}'\npypi_project='z'\npypi_version='1 2'"),
                "allowed",
            ),
            ("sources_of='../x'", "not a project name"),
            ("url='http://x'", "unknown field"),
        ];
        for (input, want) in cases {
            let e = parse_inputs(&format!("name='x'\n[[input]]\n{input}\n")).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
        }
        let ok = format!("[[input]]\nfile='a_1.orig.tar.gz'\nsha256='{sha}'\ndebian_source='a'\ndebian_version='1-1'\n[build]\nstep='script'\n");
        assert_eq!(parse_inputs(&ok).unwrap().len(), 1);
        let wheel = format!("[[input]]\nfile='z-1-py3-none-any.whl'\nsha256='{sha}'\npypi_project='z'\npypi_version='1'\n");
        let w = parse_inputs(&wheel).unwrap();
        let InputKind::File(pin) = w[0].kind().unwrap() else {
            panic!("a file input")
        };
        assert_eq!(
            (pin.registry, pin.package, pin.version),
            (Registry::PyPI, "z", "1")
        );
    }

    #[test]
    fn cycles_and_conflicts_are_errors() {
        let d = std::env::temp_dir().join(format!("pins-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("rbm-projects")).unwrap();
        let w =
            |n: &str, t: &str| std::fs::write(d.join(format!("rbm-projects/{n}.toml")), t).unwrap();
        w("a", "[[input]]\nproject='b'\n");
        w("b", "[[input]]\nsources_of='a'\n");
        assert!(matches!(sources(&d, "a"), Err(Error::Cycle(_))));
        let pin = |sha: &str| {
            format!(
                "[[input]]\nfile='f.tar'\nsha256='{sha}'\ndebian_source='f'\ndebian_version='1'\n"
            )
        };
        w(
            "c",
            &format!("{}[[input]]\nproject='d'\n", pin(&"ab".repeat(32))),
        );
        w("d", &pin(&"cd".repeat(32)));
        let e = sources(&d, "c").unwrap_err().to_string();
        assert!(
            e.contains("f.tar is pinned twice") && e.contains("d.toml"),
            "{e}"
        );
        w("d", &pin(&"ab".repeat(32)));
        assert_eq!(sources(&d, "c").unwrap().pins.len(), 1);
        assert!(matches!(sources(&d, "missing"), Err(Error::Read { .. })));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
