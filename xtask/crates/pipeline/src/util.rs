//! Small helpers shared by the pipeline's commands.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root this crate was compiled from: it lives in
/// `<root>/xtask/crates/pipeline`. (`verify` rebuilds by compiling xtask inside the
/// source tree it checks, so this is that tree's root there.)
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or(manifest)
}

/// Where pinned source archives are kept once their hash is checked
/// (`TIMB_SOURCES_DIR`, else `out/sources`).
pub fn sources_dir(root: &Path) -> PathBuf {
    std::env::var_os("TIMB_SOURCES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("out").join("sources"))
}

/// The cargo that runs us (`$CARGO`), for the commands xtask hands to cargo.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Cargo's target directory as the user configured it (CI keeps it outside the clone).
pub fn cargo_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Runs a command, failing with its name and exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let desc = describe(cmd);
    // xtask's own stdout carries only results (`bundle` prints the archive
    // path); whatever the children print goes to stderr.
    let status = cmd
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("could not start `{desc}`"))?;
    if !status.success() {
        bail!("`{desc}` failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its stdout as text.
pub fn output(cmd: &mut Command) -> Result<String> {
    let desc = describe(cmd);
    String::from_utf8(output_bytes(cmd)?).with_context(|| format!("`{desc}` printed non-UTF-8"))
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn have_command(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Seconds since the epoch of the last commit: every timestamp in a bundle.
/// Without git history (a source tarball), `SOURCE_DATE_EPOCH` must be given.
pub fn source_date_epoch(root: &Path) -> Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v
            .trim()
            .parse()
            .context("SOURCE_DATE_EPOCH is not a whole number");
    }
    let out = output(
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["log", "-1", "--format=%ct"]),
    )
    .context("no SOURCE_DATE_EPOCH and no git history to take it from")?;
    out.trim()
        .parse()
        .context("git printed an unexpected commit time")
}

/// The commit the tree is at, and whether it has uncommitted changes.
pub fn git_commit(root: &Path) -> Option<(String, bool)> {
    let head = output(
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["rev-parse", "HEAD"]),
    )
    .ok()?;
    let dirty = output(Command::new("git").arg("-C").arg(root).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]))
    .map(|s| !s.trim().is_empty())
    .unwrap_or(true);
    Some((head.trim().to_string(), dirty))
}

/// The commit a builder may vouch for a build of `root` as: HEAD, when nothing tracked is
/// changed and no untracked file that is not ignored exists (the build takes those too).
pub fn git_vouchable_commit(root: &Path) -> Result<String> {
    let Some((head, false)) = git_commit(root) else {
        bail!(
            "{} is not a clean git checkout: a builder vouches for a commit anyone can check out",
            root.display()
        );
    };
    let untracked = output(Command::new("git").arg("-C").arg(root).args([
        "status",
        "--porcelain",
        "--untracked-files=normal",
    ]))?;
    if !untracked.trim().is_empty() {
        bail!(
            "{} holds files the commit does not (the build would take them), so a builder cannot vouch for it:\n{}",
            root.display(),
            untracked.trim_end()
        );
    }
    Ok(head)
}

/// The workspace version from the root manifest's `[workspace.package]`.
pub fn workspace_version(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let v: toml::Value = toml::from_str(&text).context("parsing Cargo.toml")?;
    v.get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .context("Cargo.toml has no [workspace.package] version")
}

/// A staged progress line, with the minutes since the first one (so a log shows where
/// the time went); the long build steps print their own progress below it.
pub fn stage(n: usize, total: usize, what: &str) {
    static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let minutes = FIRST
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        / 60.0;
    eprintln!("\x1b[1m[{n}/{total}]\x1b[0m {what} (at {minutes:.1} min)");
}

/// Removes a directory tree if it exists.
pub fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Runs a command and returns its raw stdout.
pub fn output_bytes(cmd: &mut Command) -> Result<Vec<u8>> {
    let desc = describe(cmd);
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{desc}`"))?;
    if !out.status.success() {
        bail!("`{desc}` failed ({})", out.status);
    }
    Ok(out.stdout)
}

/// Copies a folder tree (regular files and folders).
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
