//! The `linux-bundle` step: the portable folder, written straight into a
//! deterministic `.tar.xz`, and the sums file.

use crate::rbm::{Ctx, InputKind, StepCtx};
use crate::util;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use timb_release::{Sha256, Sums, Target, Version, SUMS_FILE};

/// One file or folder in the archive.
pub struct Entry {
    pub path: String,
    pub mode: u32,
    /// `None` for a folder.
    pub data: Option<Vec<u8>>,
}

pub fn linux_bundle_step(ctx: &Ctx, s: &StepCtx) -> Result<()> {
    let target: Target = s
        .vars
        .get("bundle_target")
        .context("linux-bundle needs the bundle_target variable")?
        .parse()?;
    let version: Version = s.version.parse()?;
    let top = target.bundle_folder(&version);
    let timb = s
        .deps
        .get("timb")
        .context("linux-bundle needs the timb project")?;
    let mut entries = vec![
        Entry {
            path: format!("{top}/"),
            mode: 0o755,
            data: None,
        },
        // The portable profile: the app keeps its state here, never in $HOME.
        Entry {
            path: format!("{top}/profile/"),
            mode: 0o700,
            data: None,
        },
        Entry {
            path: format!("{top}/timb"),
            mode: 0o755,
            data: Some(std::fs::read(timb.dir.join("timb")).context("reading the timb binary")?),
        },
    ];
    // Files from the repository: LICENSE and bundle/ (README, .desktop).
    for input in &s.project.def.input {
        if let InputKind::Path(p) = input.kind()? {
            for (rel, mode, _) in ctx.path_files(p)? {
                let inside = rel.strip_prefix("bundle/").unwrap_or(&rel);
                entries.push(Entry {
                    path: format!("{top}/{inside}"),
                    mode,
                    data: Some(std::fs::read(ctx.root.join(&rel))?),
                });
            }
        }
    }
    entries.push(Entry {
        path: format!("{top}/LICENSES/"),
        mode: 0o755,
        data: None,
    });
    entries.push(Entry {
        path: format!("{top}/LICENSES/THIRD-PARTY.txt"),
        mode: 0o644,
        data: Some(
            (third_party_licences(&ctx.root, "timb", target.rust_triple())?
                + &c_library_licences(&ctx.root)?)
                .into_bytes(),
        ),
    });
    let buildinfo = format!(
        "name = \"timb\"\nversion = \"{}\"\ntarget = \"{target}\"\nsource_date_epoch = {}\ntimb_build_id = \"{}\"\n",
        s.version, ctx.source_date_epoch, timb.id
    );
    entries.push(Entry {
        path: format!("{top}/BUILDINFO"),
        mode: 0o644,
        data: Some(buildinfo.into_bytes()),
    });

    let name = target.archive_name(&version);
    let archive = s.out_dir.join(&name);
    write_tar_xz(entries, &archive, ctx.source_date_epoch)?;
    let mut sums = Sums::new();
    sums.add(&name, util::sha256_file(&archive)?.parse::<Sha256>()?)?;
    std::fs::write(s.out_dir.join(SUMS_FILE), sums.to_string())?;
    Ok(())
}

/// Sorted entries, fixed owner/mtime/modes, xz preset 9 single-threaded with
/// CRC64: the same entries always give the same bytes.
pub fn write_tar_xz(mut entries: Vec<Entry>, out: &Path, mtime: u64) -> Result<()> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for w in entries.windows(2) {
        if w[0].path == w[1].path {
            bail!("two bundle entries named {}", w[0].path);
        }
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let xz = xz2::write::XzEncoder::new(std::io::BufWriter::new(file), 9);
    let mut tar = tar::Builder::new(xz);
    for e in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        h.set_mtime(mtime);
        match &e.data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, &e.path, std::io::empty())?;
            }
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                tar.append_data(&mut h, &e.path, d.as_slice())?;
            }
        }
    }
    let xz = tar.into_inner()?;
    let mut w = xz.finish()?;
    w.flush()?;
    Ok(())
}

/// Reads every regular file of a `.tar.xz` into memory (bundles are small).
pub fn read_tar_xz(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ar = tar::Archive::new(xz2::read::XzDecoder::new(std::io::BufReader::new(f)));
    let mut files = BTreeMap::new();
    for e in ar.entries().context("reading the archive")? {
        let mut e = e.context("reading an archive entry")?;
        let p = e.path()?.to_string_lossy().into_owned();
        if e.header().entry_type().is_file() {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf)
                .with_context(|| format!("reading {p} from the archive"))?;
            files.insert(p, buf);
        }
    }
    Ok(files)
}

/// The C libraries libotr-sys links statically into timb: a heading, the
/// pinned archive (see rbm-projects/libotr.toml and the definitions it takes
/// as input) and the files to quote from it.
const C_LIBRARIES: &[(&str, &str, &[&str])] = &[
    (
        "libotr 4.1.1 (LGPL-2.1-or-later)",
        "libotr_4.1.1.orig.tar.gz",
        &["libotr-4.1.1/COPYING.LIB", "libotr-4.1.1/AUTHORS"],
    ),
    (
        "libgcrypt 1.10.1 with Debian's 1.10.1-3+deb12u1 patches (LGPL-2.1-or-later)",
        "libgcrypt20_1.10.1.orig.tar.bz2",
        &[
            "libgcrypt-1.10.1/COPYING.LIB",
            "libgcrypt-1.10.1/LICENSES",
            "libgcrypt-1.10.1/AUTHORS",
        ],
    ),
    (
        "libgpg-error 1.46 (LGPL-2.1-or-later)",
        "libgpg-error_1.46.orig.tar.bz2",
        &["libgpg-error-1.46/COPYING.LIB", "libgpg-error-1.46/AUTHORS"],
    ),
];

/// The licence texts of the C libraries, read from their pinned archives
/// (hash-checked again here), for the LGPL's notice requirement.
fn c_library_licences(root: &Path) -> Result<String> {
    let pins = pins::sources(root, "timb")?;
    let dir = std::env::var_os("TIMB_SOURCES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("out").join("sources"));
    let mut text = String::from(
        "\n==============================================================================\nC libraries compiled statically into timb from source (app/libotr-sys).\nTheir source archives are pinned by sha256 in rbm-projects/libotr.toml,\nlibgcrypt.toml and libgpg-error.toml.\n",
    );
    let allow = crate::licences::allowlist(root)?;
    for (title, archive, members) in C_LIBRARIES {
        let spdx = title
            .rsplit_once('(')
            .and_then(|(_, r)| r.strip_suffix(')'))
            .with_context(|| format!("{title}: no (licence) in its title"))?;
        crate::licences::check(title, spdx, &allow)?;
        let pin = pins.get(archive).with_context(|| {
            format!("{archive} is not among the sources of rbm-projects/timb.toml")
        })?;
        let path = dir.join(archive);
        if util::sha256_file(&path)? != pin.sha256 {
            bail!("{} does not match its pinned sha256", path.display());
        }
        text.push_str(&format!(
            "\n==============================================================================\n{title}\n"
        ));
        for m in *members {
            let body = util::output(Command::new("tar").arg("-xOf").arg(&path).arg(m))
                .with_context(|| format!("reading {m} from {archive}"))?;
            text.push_str(&format!("\n--- {m}\n\n{body}"));
            if !body.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// The licence texts of every crate compiled into `package` for `triple`,
/// identical texts printed once with the list of crates they cover.
fn third_party_licences(root: &Path, package: &str, triple: &str) -> Result<String> {
    let json = util::output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--locked",
                "--offline",
                "--filter-platform",
                triple,
            ]),
    )?;
    let meta: serde_json::Value = serde_json::from_str(&json).context("parsing cargo metadata")?;
    let packages: BTreeMap<&str, &serde_json::Value> = meta["packages"]
        .as_array()
        .context("cargo metadata has no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: BTreeMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata has no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let start = packages
        .iter()
        .find(|(_, p)| p["name"] == package && p["source"].is_null())
        .map(|(id, _)| *id)
        .with_context(|| format!("package {package} not found"))?;
    // Walk normal (not build or dev) dependencies: what ends up in the binary.
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for d in nodes[id]["deps"].as_array().into_iter().flatten() {
            let normal = d["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if normal {
                if let Some(pkg) = d["pkg"].as_str() {
                    todo.push(pkg);
                }
            }
        }
    }
    let allow = crate::licences::allowlist(root)?;
    let mut by_text: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut summary = String::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    for id in &seen {
        let p = packages[id];
        if p["source"].is_null() {
            continue; // our own crates: GPL-3.0-or-later, LICENSE at the top
        }
        let name = format!(
            "{} {}",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?")
        );
        // No expression, or one outside deny.toml's allowlist, fails the bundle.
        let expr = p["license"]
            .as_str()
            .with_context(|| format!("{name}: no licence expression in its Cargo.toml"))?
            .to_string();
        crate::licences::check(&name, &expr, &allow)?;
        rows.push((name.clone(), expr));
        let dir = Path::new(p["manifest_path"].as_str().unwrap_or(""))
            .parent()
            .map(Path::to_path_buf);
        let mut texts = Vec::new();
        if let Some(dir) = dir {
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                let fname = f
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if ["LICENSE", "LICENCE", "COPYING", "NOTICE", "UNLICENSE"]
                    .iter()
                    .any(|pre| fname.starts_with(pre))
                    && f.is_file()
                {
                    if let Ok(t) = std::fs::read_to_string(&f) {
                        texts.push(t);
                    }
                }
            }
        }
        for t in texts {
            by_text.entry(t).or_default().push(name.clone());
        }
    }
    rows.sort();
    summary.push_str("Third-party software compiled into timb, with its licence expression.\n");
    summary.push_str("timb itself is GPL-3.0-or-later (see LICENSE). The full licence texts\n");
    summary.push_str("shipped by these packages follow the list.\n\n");
    for (n, e) in &rows {
        summary.push_str(&format!("{n}: {e}\n"));
    }
    let mut texts: Vec<_> = by_text.into_iter().collect();
    texts.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    for (text, users) in texts {
        summary.push_str(
            "\n==============================================================================\n",
        );
        summary.push_str(&format!("Used by: {}\n\n", users.join(", ")));
        summary.push_str(&text);
        if !text.ends_with('\n') {
            summary.push('\n');
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs the pinned archives (`cargo xtask fetch`, which `cargo xtask test` runs first).
    #[test]
    fn bundle_carries_the_c_libraries_licences() {
        let text = c_library_licences(&util::repo_root()).unwrap();
        assert!(
            text.matches("GNU LESSER GENERAL PUBLIC LICENSE").count() >= 3,
            "{}",
            &text[..text.len().min(2000)]
        );
        for lib in ["libotr 4.1.1", "libgcrypt 1.10.1", "libgpg-error 1.46"] {
            assert!(text.contains(lib), "{lib} missing");
        }
    }

    fn sample() -> Vec<Entry> {
        vec![
            Entry {
                path: "t/b".into(),
                mode: 0o644,
                data: Some(b"bee".to_vec()),
            },
            Entry {
                path: "t/".into(),
                mode: 0o755,
                data: None,
            },
            Entry {
                path: "t/a".into(),
                mode: 0o755,
                data: Some(vec![0u8; 70_000]),
            },
        ]
    }

    #[test]
    fn the_same_entries_give_the_same_bytes_in_any_order() {
        let dir = std::env::temp_dir().join(format!("timb-tar-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.tar.xz");
        let b = dir.join("b.tar.xz");
        write_tar_xz(sample(), &a, 1_700_000_000).unwrap();
        let mut rev = sample();
        rev.reverse();
        write_tar_xz(rev, &b, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let files = read_tar_xz(&a).unwrap();
        assert_eq!(files["t/b"], b"bee");
        assert_eq!(files["t/a"].len(), 70_000);
        // A different mtime must change the bytes: the test above is not vacuous.
        write_tar_xz(sample(), &b, 1_700_000_001).unwrap();
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn duplicate_entries_are_refused() {
        let dir = std::env::temp_dir().join(format!("timb-tar-dup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = sample();
        e.push(Entry {
            path: "t/b".into(),
            mode: 0o644,
            data: Some(vec![]),
        });
        assert!(write_tar_xz(e, &dir.join("x.tar.xz"), 0).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
