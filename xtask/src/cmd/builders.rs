//! The builder quorum in a release folder (timb_release::builders): the published sums a
//! release carries, builders' signatures over its two sums files, and checking them.

use anyhow::{bail, Context, Result};
use pipeline::util;
use sign::Signer;
use std::path::{Path, PathBuf};
use timb_release::builders::{
    check_listed, check_quorum, is_builder_name, signature_file, BuilderComment, Vouched,
    PUBLISHED_SUMS_FILE,
};
use timb_release::{
    Keyring, Policy, Role, Sha256, SourceCommit, Subject, Sums, Unverified, Version,
};

/// The folder a file given on the command line is in (`.` for a bare name).
pub fn folder_of(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `dir/sha256sums.txt`: the sha256 of each archive as it is published.
pub fn write_published_sums(dir: &Path, archives: &[&Path]) -> Result<PathBuf> {
    let mut sums = Sums::new();
    for a in archives {
        let name = a
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: no file name", a.display()))?;
        sums.add(name, util::sha256_file(a)?.parse()?)?;
    }
    let path = dir.join(PUBLISHED_SUMS_FILE);
    std::fs::write(&path, sums.to_string())?;
    Ok(path)
}

/// Signs `files` (the two sums files of a release as the builder read and checked them:
/// name and bytes) as builder `builder`, writing the signatures into `out`; returns their
/// paths. Every comment is made before anything is written.
pub fn vouch(
    files: &[(&str, &[u8])],
    signer: &Signer,
    builder: &str,
    version: &Version,
    commit: &SourceCommit,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    if !is_builder_name(builder) {
        bail!("--builder {builder:?}: a builder name is 1 to 64 of A-Z a-z 0-9 . _ - (it becomes part of a file name)");
    }
    let mut comments = Vec::new();
    for (file, data) in files {
        let comment = BuilderComment::new(builder, version.clone(), commit, file, Sha256::of(data))
            .with_context(|| format!("a builder vouches for a clean commit only, not {commit}"))?;
        comments.push((comment, *data, out.join(signature_file(file, builder))));
    }
    std::fs::create_dir_all(out)?;
    let mut written = Vec::new();
    for (comment, data, sig) in comments {
        signer.sign_as_builder(data, &comment, &sig)?;
        written.push(sig);
    }
    Ok(written)
}

/// The builders' signature files over `file` in `dir` (`FILE.builder-NAME.minisig`), by name.
pub fn signature_files(dir: &Path, file: &str) -> Result<Vec<PathBuf>> {
    let prefix = format!("{file}.builder-");
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".minisig") {
            found.push(e.path());
        }
    }
    found.sort();
    Ok(found)
}

fn read_signatures(paths: &[PathBuf]) -> Result<Vec<String>> {
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .collect()
}

/// Enough distinct builders `policy` lists vouched for the published sums in `dir`, and it
/// lists each of `archives` with its own sha256: what `release add` requires and the
/// updater checks again.
pub fn check_vouched(
    dir: &Path,
    archives: &[&Path],
    keys: &Keyring,
    policy: &Policy,
) -> Result<Vouched> {
    let sums_path = dir.join(PUBLISHED_SUMS_FILE);
    let sums = std::fs::read(&sums_path).with_context(|| {
        format!(
            "{} is missing: a release carries the sums of its archives, signed by its builders (cargo xtask rebuild)",
            sums_path.display()
        )
    })?;
    let sigs = read_signatures(&signature_files(dir, PUBLISHED_SUMS_FILE)?)?;
    let subject = Subject {
        name: PUBLISHED_SUMS_FILE,
        data: &sums,
    };
    let vouched = check_quorum(&sigs, keys, policy, &subject)
        .with_context(|| format!("the builders of {}", dir.display()))?;
    for a in archives {
        let name = a
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: no file name", a.display()))?;
        let actual: Sha256 = util::sha256_file(a)?.parse()?;
        check_listed(PUBLISHED_SUMS_FILE, &sums, name, &actual)?;
    }
    Ok(vouched)
}

/// For `verify`: who vouched for the published sums beside an archive, each signature
/// checked on its own, and whether the updater's rule holds (the quorum, and the archive
/// listed with its own sha256). Says so and returns when the folder holds no published sums.
pub fn report(dir: &Path, archive_name: &str, keys: &Keyring, policy: &Policy) -> Result<()> {
    let sums_path = dir.join(PUBLISHED_SUMS_FILE);
    let sums = match std::fs::read(&sums_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("builders: no {PUBLISHED_SUMS_FILE} beside the archive, so no builder vouched for it here");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", sums_path.display())),
    };
    let subject = Subject {
        name: PUBLISHED_SUMS_FILE,
        data: &sums,
    };
    let mut texts = Vec::new();
    for f in signature_files(dir, PUBLISHED_SUMS_FILE)? {
        let shown = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // A file that is not a signature is not counted; it does not stop the report.
        let text = match std::fs::read(&f).map(String::from_utf8) {
            Ok(Ok(t)) => t,
            _ => {
                eprintln!("builders: {shown} is not counted: not a readable signature");
                continue;
            }
        };
        match Unverified::<BuilderComment>::parse(&text)
            .and_then(|u| u.check_one_of_many(keys, policy, Role::Builders, &subject))
        {
            Ok(c) => eprintln!(
                "builders: {} (key {}) vouched for {} {} at commit {}",
                c.body().builder(),
                c.signer(),
                PUBLISHED_SUMS_FILE,
                c.body().version(),
                c.body().commit()
            ),
            Err(e) => eprintln!("builders: {shown} is not counted: {e}"),
        }
        texts.push(text);
    }
    let actual: Sha256 = util::sha256_file(&dir.join(archive_name))?.parse()?;
    let rule = check_quorum(&texts, keys, policy, &subject)
        .and_then(|v| check_listed(PUBLISHED_SUMS_FILE, &sums, archive_name, &actual).map(|()| v));
    match rule {
        Ok(v) => eprintln!(
            "builders: {} distinct, signing/policy.toml's [builders] needs {}: met",
            v.builders.len(),
            policy.role(Role::Builders).threshold()
        ),
        Err(e) => eprintln!("builders: NOT met, the updater would refuse this archive: {e}"),
    }
    Ok(())
}
