//! `cargo xtask verify`: check a published bundle's signature, then rebuild it
//! from source somewhere else and compare the bytes.

use crate::bundle::{self, read_tar_xz};
use crate::sign;
use crate::util;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Default)]
pub struct Opts {
    pub pubkey: Option<PathBuf>,
    pub source: Option<PathBuf>,
    pub target_dir: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub no_rebuild: bool,
}

fn sources_dir(root: &Path) -> PathBuf {
    std::env::var_os("TIMB_SOURCES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("out").join("sources"))
}

pub fn verify(root: &Path, archive: &Path, o: &Opts) -> Result<()> {
    if !archive.is_file() {
        bail!("{} does not exist", archive.display());
    }
    let target_dir = util::cargo_target_dir(root);
    let keys = match &o.pubkey {
        Some(p) => vec![sign::TrustedKey {
            pk: sign::read_public_key(p)?,
            label: format!("key given on the command line {}", p.display()),
            dev: false,
        }],
        None => sign::trusted_keys(root, &target_dir)?,
    };
    let (dev, fields) = sign::check_bundle_signature(archive, &keys)?;
    eprintln!(
        "signature: GOOD ({} {} for {})",
        fields["file"], fields["version"], fields["target"]
    );
    if dev || fields.contains_key("key") {
        eprintln!("WARNING: signed with a LOCAL DEVELOPMENT KEY. This is not a release.");
    }
    if o.no_rebuild {
        return Ok(());
    }

    let files = read_tar_xz(archive).context("the archive is not a readable .tar.xz")?;
    let top = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.xz"))
        .context("archive name must end in .tar.xz")?;
    let info_text = files
        .get(&format!("{top}/BUILDINFO"))
        .context("the bundle has no BUILDINFO: cannot know how to rebuild it")?;
    let info: toml::Value =
        toml::from_str(std::str::from_utf8(info_text)?).context("parsing BUILDINFO")?;
    let sde = info
        .get("source_date_epoch")
        .and_then(|v| v.as_integer())
        .context("BUILDINFO has no source_date_epoch")?;

    let work = match &o.work {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("timb-verify-{}", std::process::id())),
    };
    util::remove_dir(&work.join("out"))?;
    std::fs::create_dir_all(&work)?;
    let src = match &o.source {
        Some(s) => s.clone(),
        None => {
            let commit = fields
                .get("commit")
                .filter(|c| c.len() == 40)
                .with_context(|| {
                    "the signature names no source commit; give the source with --source DIR"
                })?;
            let src = work.join("src");
            util::remove_dir(&src)?;
            std::fs::create_dir_all(&src)?;
            let tar = util::output_bytes(Command::new("git").arg("-C").arg(root).args([
                "archive",
                "--format=tar",
                commit,
            ]))
            .with_context(|| {
                format!("commit {commit} is not in this repository; fetch it or give --source")
            })?;
            tar::Archive::new(tar.as_slice()).unpack(&src)?;
            src
        }
    };
    let rebuilt_out = work.join("out");
    let target = o.target_dir.clone().unwrap_or_else(|| work.join("target"));
    eprintln!(
        "rebuilding from {} (target dir {}); a clean rebuild takes ~10 minutes on 2 cores",
        src.display(),
        target.display()
    );
    // A different zone, locale and umask than any builder would use: the
    // pipeline must neutralise them, so the rebuild proves that it does.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 077; exec \"$@\"", "sh"])
        .arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "run",
            "--locked",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "build-unsigned",
            "--out",
        ])
        .arg(&rebuilt_out)
        .current_dir(&src)
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        // Pinned archives are checked by sha256 wherever they come from, so
        // the rebuild may take them from this checkout's cache.
        .env("TIMB_SOURCES_DIR", sources_dir(root))
        .env("CARGO_TARGET_DIR", &target)
        .env("TZ", "Pacific/Kiritimati")
        .env("LC_ALL", "fr_FR.UTF-8")
        .env("LANG", "fr_FR.UTF-8");
    util::run(&mut cmd).context("the rebuild failed")?;

    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let rebuilt = rebuilt_out.join(name);
    let want = util::sha256_file(archive)?;
    let got =
        util::sha256_file(&rebuilt).context("the rebuild produced no archive of that name")?;
    println!("published: {want}  {}", archive.display());
    println!("rebuilt:   {got}  {}", rebuilt.display());
    if want == got {
        println!("MATCH");
        return Ok(());
    }
    println!("MISMATCH");
    let theirs = read_tar_xz(&rebuilt)?;
    for (path, data) in &files {
        match theirs.get(path) {
            None => println!("  only in the published bundle: {path}"),
            Some(d) if d != data => println!(
                "  differs: {path} (published {}, rebuilt {})",
                util::sha256_bytes(data),
                util::sha256_bytes(d)
            ),
            _ => {}
        }
    }
    for path in theirs.keys().filter(|p| !files.contains_key(*p)) {
        println!("  only in the rebuild: {path}");
    }
    if util::have_command("diffoscope") {
        let report = work.join("diffoscope.txt");
        let _ = Command::new("diffoscope")
            .arg("--text")
            .arg(&report)
            .arg(archive)
            .arg(&rebuilt)
            .status();
        println!("diffoscope report: {}", report.display());
    } else {
        println!("(install diffoscope for a detailed report)");
    }
    bail!(
        "the rebuilt bundle differs from {}",
        bundle::archive_name(&fields["version"], &fields["target"])
    )
}
