//! The `unpack-wheel` step: a tool PyPI ships as a wheel (zig, the macOS C compiler and
//! linker), unpacked once into the project's output so build scripts run it from a project
//! input, with no Python in the build container. A wheel is a zip: the step extracts its one
//! top folder (`wheel_folder`), keeping only the executable bit of each file's mode.

use anyhow::{bail, Context, Result};
use pipeline::{BuildEnv, InputKind, Step, StepCtx};
use std::path::Path;

/// The step named `unpack-wheel` in rbm-projects/.
pub struct UnpackWheel;

impl Step for UnpackWheel {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()> {
        let name = &s.project.def.name;
        let folder = s
            .vars
            .get("wheel_folder")
            .with_context(|| format!("{name}: unpack-wheel needs the wheel_folder variable"))?;
        let mut wheels = Vec::new();
        for input in s.project.inputs_for(s.target) {
            if let InputKind::File(pin) = input.kind()? {
                wheels.push(pin.to_owned());
            }
        }
        let [wheel] = &wheels[..] else {
            bail!(
                "{name}: unpack-wheel takes exactly one pinned wheel, not {}",
                wheels.len()
            );
        };
        unpack(
            &env.pinned(name, &wheel.file, &wheel.sha256)?,
            folder,
            s.out_dir,
        )
    }
}

/// Extracts the entries under `folder/` of the zip `wheel` into `out/folder/`; returns an
/// error, having written nothing outside `out`, for an entry whose name leaves the folder.
fn unpack(wheel: &Path, folder: &str, out: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .with_context(|| format!("{} is not a zip", wheel.display()))?;
    let mut files = 0;
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).context("reading a wheel entry")?;
        let Some(rel) = e.enclosed_name() else {
            bail!("{}: an entry's name leaves the wheel", wheel.display());
        };
        if !rel.starts_with(folder) {
            continue; // the .dist-info metadata
        }
        let dest = out.join(&rel);
        if e.is_dir() {
            std::fs::create_dir_all(&dest)?;
            continue;
        }
        if !e.is_file() {
            bail!(
                "{}: {} is neither a file nor a folder",
                wheel.display(),
                rel.display()
            );
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut w =
            std::fs::File::create(&dest).with_context(|| format!("creating {}", dest.display()))?;
        std::io::copy(&mut e, &mut w).with_context(|| format!("unpacking {}", rel.display()))?;
        let exec = e.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mode = if exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        files += 1;
    }
    if files == 0 {
        bail!("{} holds no {folder}/ folder", wheel.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(dir: &Path, entries: &[(&str, u32)]) -> std::path::PathBuf {
        let path = dir.join("t-1-py3-none-any.whl");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, mode) in entries {
            let o = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            z.start_file(*name, o).unwrap();
            z.write_all(name.as_bytes()).unwrap();
        }
        z.finish().unwrap();
        path
    }

    #[test]
    fn only_the_folder_is_unpacked_with_its_executables() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let w = wheel(
            d.path(),
            &[
                ("tool/bin", 0o755),
                ("tool/lib/a.h", 0o600),
                ("tool-1.dist-info/RECORD", 0o644),
            ],
        );
        let out = d.path().join("out");
        unpack(&w, "tool", &out).unwrap();
        let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("tool/bin"), 0o755);
        assert_eq!(mode("tool/lib/a.h"), 0o644);
        assert_eq!(std::fs::read(out.join("tool/bin")).unwrap(), b"tool/bin");
        assert!(!out.join("tool-1.dist-info").exists());
        let e = unpack(&w, "other", &d.path().join("o2")).unwrap_err();
        assert!(e.to_string().contains("holds no other/ folder"), "{e}");
    }

    #[test]
    fn an_entry_leaving_the_folder_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let w = wheel(d.path(), &[("tool/../../evil", 0o644)]);
        let out = d.path().join("out");
        let e = unpack(&w, "tool", &out).unwrap_err();
        assert!(e.to_string().contains("leaves the wheel"), "{e}");
        assert!(!d.path().join("evil").exists());
    }
}
