//! The `linux-bundle` step: the portable folder, written straight into a
//! deterministic `.tar.xz`, and the sums file. The folder is timb-launcher's layout: the
//! launcher `timb` at the top, the version's files in `app/VERSION/` (what an update
//! installs), `app/current` naming it, an empty `profile/`.

use crate::archive::{write_tar_xz, Entry};
use crate::licences::{c_library_licences, third_party_licences};
use anyhow::{Context, Result};
use pipeline::util;
use pipeline::{BuildEnv, InputKind, Step, StepCtx};
use timb_release::{Sha256, Sums, Target, Version, SUMS_FILE};

/// The step named `linux-bundle` in rbm-projects/linux-bundle.toml.
pub struct LinuxBundle;

impl Step for LinuxBundle {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()> {
        linux_bundle_step(env, s)
    }
}

fn linux_bundle_step(env: &BuildEnv, s: &StepCtx) -> Result<()> {
    let target: Target = s
        .vars
        .get("bundle_target")
        .context("linux-bundle needs the bundle_target variable")?
        .parse()?;
    let version: Version = s.version.parse()?;
    let top = target.bundle_folder(&version);
    // Licences travel with the code they describe, so an update brings its own.
    let vdir = format!("{top}/app/{version}");
    let timb = s
        .deps
        .get("timb")
        .context("linux-bundle needs the timb project")?;
    let read = |name: &str| {
        std::fs::read(timb.dir.join(name)).with_context(|| format!("reading the {name} binary"))
    };
    let mut entries = vec![
        Entry::dir(format!("{top}/"), 0o755),
        // The portable profile: the app keeps its state here, never in $HOME.
        Entry::dir(format!("{top}/profile/"), 0o700),
        Entry::file(format!("{top}/timb"), 0o755, read("timb-launcher")?),
        Entry::dir(format!("{top}/app/"), 0o755),
        Entry::file(
            format!("{top}/app/current"),
            0o644,
            format!("{version}\n").into_bytes(),
        ),
        Entry::dir(format!("{vdir}/"), 0o755),
        Entry::file(format!("{vdir}/timb"), 0o755, read("timb")?),
    ];
    // Files from the repository: LICENSE and bundle/ (README, .desktop).
    for input in &s.project.def.input {
        if let InputKind::Path(p) = input.kind()? {
            for (rel, mode, _) in env.path_files(p)? {
                let inside = rel.strip_prefix("bundle/").unwrap_or(&rel);
                entries.push(Entry {
                    path: format!("{top}/{inside}"),
                    mode,
                    data: Some(std::fs::read(env.root.join(&rel))?),
                });
            }
        }
    }
    entries.push(Entry::dir(format!("{vdir}/LICENSES/"), 0o755));
    entries.push(Entry {
        path: format!("{vdir}/LICENSES/THIRD-PARTY.txt"),
        mode: 0o644,
        data: Some(
            (third_party_licences(&env.root, "timb", target.rust_triple())?
                + &c_library_licences(&env.root)?)
                .into_bytes(),
        ),
    });
    let buildinfo = format!(
        "name = \"timb\"\nversion = \"{}\"\ntarget = \"{target}\"\nsource_date_epoch = {}\ntimb_build_id = \"{}\"\n",
        s.version, env.source_date_epoch, timb.id
    );
    entries.push(Entry {
        path: format!("{top}/BUILDINFO"),
        mode: 0o644,
        data: Some(buildinfo.into_bytes()),
    });

    let name = target.archive_name(&version);
    let archive = s.out_dir.join(&name);
    write_tar_xz(entries, &archive, env.source_date_epoch)?;
    let mut sums = Sums::new();
    sums.add(&name, util::sha256_file(&archive)?.parse::<Sha256>()?)?;
    std::fs::write(s.out_dir.join(SUMS_FILE), sums.to_string())?;
    Ok(())
}
