//! The `unpack-deb` step: named files out of a pinned Debian package (the fonts), read by the
//! pipeline itself. As a sandbox script this needed `dpkg-deb` inside the build container; as
//! a step it runs wherever xtask does, a Mac included, and gives the same bytes.
//!
//! A `.deb` is an `ar` archive whose `data.tar.xz` holds the files; `[build] outputs` names
//! each one as `PATH-IN-PACKAGE -> PATH-IN-OUTPUT`.

use anyhow::{bail, Context, Result};
use pipeline::{BuildEnv, InputKind, Step, StepCtx};
use std::collections::BTreeMap;
use std::io::Read;

/// The step named `unpack-deb` in rbm-projects/.
pub struct UnpackDeb;

impl Step for UnpackDeb {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()> {
        let mut debs = Vec::new();
        for input in s.project.inputs_for(s.target) {
            if let InputKind::File(pin) = input.kind()? {
                if pin.file.ends_with(".deb") {
                    debs.push(pin.to_owned());
                }
            }
        }
        let [pin] = debs.as_slice() else {
            bail!("the unpack-deb step takes exactly one pinned .deb input");
        };
        // Checked again here, as the sandbox checks the files it is given.
        let path = env.pinned(&s.project.def.name, &pin.file, &pin.sha256)?;
        let deb = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let wanted = wanted_files(&s.project.def.build.outputs)?;
        for (to, data) in unpack(&deb, &wanted).with_context(|| pin.file.clone())? {
            let dest = s.out_dir.join(&to);
            std::fs::create_dir_all(dest.parent().context("an output has a folder")?)?;
            std::fs::write(&dest, data)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(())
    }
}

/// `FROM -> TO` lines: package path to output path, both relative and without `..`.
fn wanted_files(outputs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for o in outputs {
        let Some((from, to)) = o.split_once(" -> ") else {
            bail!("unpack-deb output {o:?} is not `PATH-IN-PACKAGE -> PATH-IN-OUTPUT`");
        };
        for p in [from, to] {
            if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == ".." || c.is_empty())
            {
                bail!("unpack-deb output {o:?}: {p:?} is not a plain relative path");
            }
        }
        if map.values().any(|t| t == to) {
            bail!("unpack-deb output {to:?} is written twice");
        }
        if map.insert(from.to_string(), to.to_string()).is_some() {
            bail!("unpack-deb output {from:?} is named twice");
        }
    }
    Ok(map)
}

/// The wanted files' bytes, by output path; an error if one is missing.
fn unpack(deb: &[u8], wanted: &BTreeMap<String, String>) -> Result<BTreeMap<String, Vec<u8>>> {
    let data = ar_member(deb, "data.tar.xz")?;
    let mut tar = tar::Archive::new(xz2::read::XzDecoder::new(data));
    let mut found = BTreeMap::new();
    for entry in tar.entries().context("reading data.tar.xz")? {
        let mut entry = entry.context("reading data.tar.xz")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./");
        if let Some(to) = wanted.get(path) {
            if entry.header().entry_type() != tar::EntryType::Regular {
                bail!("{path} is not a plain file in the package");
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            found.insert(to.clone(), bytes);
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, to)| !found.contains_key(*to))
        .map(|(from, _)| from.as_str())
        .collect();
    if !missing.is_empty() {
        bail!("not in the package: {}", missing.join(", "));
    }
    Ok(found)
}

/// The bytes of member `name` of an `ar` archive (the common format `dpkg` writes: a
/// 60-byte header per member, its size in decimal, data padded to an even length).
fn ar_member<'a>(ar: &'a [u8], name: &str) -> Result<&'a [u8]> {
    let mut rest = ar
        .strip_prefix(b"!<arch>\n")
        .context("not a Debian package (no ar header)")?;
    while !rest.is_empty() {
        if rest.len() < 60 || &rest[58..60] != b"`\n" {
            bail!("a damaged ar member header");
        }
        let member = std::str::from_utf8(&rest[..16])
            .context("an ar member name is not text")?
            .trim_end()
            .trim_end_matches('/');
        let size: usize = std::str::from_utf8(&rest[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .context("an ar member size is not a number")?;
        let body = rest
            .get(60..60 + size)
            .context("an ar member runs past the end")?;
        if member == name {
            return Ok(body);
        }
        rest = rest.get(60 + size + size % 2..).unwrap_or_default();
    }
    bail!("no {name} in the package")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package made by the stock `dpkg-deb --build` (the format Debian's are in): the
    /// named file comes out, a missing one and a path leaving the folder are errors.
    #[test]
    fn files_come_out_of_a_package_dpkg_built() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(pkg.join("usr/share/x")).unwrap();
        std::fs::write(
            pkg.join("DEBIAN/control"),
            "Package: x\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n",
        )
        .unwrap();
        std::fs::write(pkg.join("usr/share/x/font.ttf"), b"glyphs").unwrap();
        std::fs::write(pkg.join("usr/share/x/odd"), b"odd length").unwrap();
        let deb = tmp.path().join("x.deb");
        let st = std::process::Command::new("dpkg-deb")
            .args(["--build", "-Zxz", "--root-owner-group"])
            .arg(&pkg)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(st.status.success(), "{st:?}");
        let deb = std::fs::read(&deb).unwrap();
        let wanted = wanted_files(&["usr/share/x/font.ttf -> fonts/a.ttf".to_string()]).unwrap();
        let got = unpack(&deb, &wanted).unwrap();
        assert_eq!(got["fonts/a.ttf"], b"glyphs");
        let wanted = wanted_files(&["usr/share/x/none -> y".to_string()]).unwrap();
        let e = unpack(&deb, &wanted).unwrap_err();
        assert!(format!("{e:#}").contains("not in the package"), "{e:#}");
        assert!(wanted_files(&["a -> ../b".to_string()]).is_err());
        assert!(wanted_files(&["a b".to_string()]).is_err());
        assert!(wanted_files(&["a -> c".to_string(), "b -> c".to_string()]).is_err());
        assert!(unpack(b"!<arch>\nshort", &wanted).is_err());
        assert!(unpack(b"not a deb", &wanted).is_err());
    }
}
