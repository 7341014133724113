//! The `portable-bundle` step (of `linux-bundle`, `windows-bundle` and, on a Mac,
//! `macos-bundle`): the portable folder, written straight into a deterministic archive
//! (`.tar.xz`, `.zip`), and the sums file. The folder is timb-launcher's layout: the launcher
//! `timb` (`timb.exe`, `Timb.app`) at the top, the version's files in `app/VERSION/` (what an
//! update installs; on macOS its messenger is `app/VERSION/Timb.app`), `app/current` naming
//! it, an empty `profile/`. They differ only in file names, the `.app`s, the archive format
//! and the menu entry (Linux only), all decided by the target.

use crate::archive::{write_tar_xz, write_zip, Entry};
use crate::licences::{c_library_licences, third_party_licences};
use anyhow::{Context, Result};
use pipeline::util;
use pipeline::{BuildEnv, InputKind, Step, StepCtx};
use timb_release::{ArchiveFormat, Sha256, Sums, Target, Version, SUMS_FILE};

/// The step named `portable-bundle` in rbm-projects/.
pub struct PortableBundle;

impl Step for PortableBundle {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()> {
        portable_bundle_step(env, s)
    }
}

/// A folder's files as (name, bytes), in no particular order: the archive writers sort
/// every entry by path.
pub(crate) fn files_in(dir: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        files.push((
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path())?,
        ));
    }
    Ok(files)
}

fn portable_bundle_step(env: &BuildEnv, s: &StepCtx) -> Result<()> {
    let target: Target = s
        .vars
        .get("bundle_target")
        .context("a bundle step needs the bundle_target variable")?
        .parse()?;
    // On macOS the launcher and each version's messenger are `.app`s (crate::macos).
    let exe = target.exe_suffix();
    let mac = target.is_macos();
    let version: Version = s.version.parse()?;
    let top = target.bundle_folder(&version);
    // Licences travel with the code they describe, so an update brings its own.
    let vdir = format!("{top}/app/{version}");
    // The project whose output holds `timb` and `timb-launcher` (macOS: compiled on a Mac).
    let binaries = s
        .vars
        .get("binaries_project")
        .map_or("timb", String::as_str);
    let timb = s
        .deps
        .get(binaries)
        .with_context(|| format!("a bundle needs the {binaries} project"))?;
    // A Windows exe goes in as it will be after its Authenticode signature is stripped
    // (crate::pe), so the unsigned build is what `verify` compares a signed bundle against.
    let mut exes = Vec::new();
    let mut read = |name: &str| -> Result<Vec<u8>> {
        let file = format!("{name}{exe}");
        let data = std::fs::read(timb.dir.join(&file))
            .with_context(|| format!("reading the {file} binary"))?;
        if mac {
            crate::macos::check_macho(&data, target).with_context(|| file.clone())?;
        }
        check_glibc_baseline(s, &data, &file)?;
        if target != Target::WindowsX86_64 {
            return Ok(data);
        }
        let data = crate::pe::canonical_unsigned(data).with_context(|| file.clone())?;
        exes.push((format!("{top}-{name}{exe}"), util::sha256_bytes(&data)));
        Ok(data)
    };
    let mut entries = vec![
        Entry::dir(format!("{top}/"), 0o755),
        // The portable profile: the app keeps its state here, never in $HOME.
        Entry::dir(format!("{top}/profile/"), 0o700),
        Entry::dir(format!("{top}/app/"), 0o755),
        Entry::file(
            format!("{top}/app/current"),
            0o644,
            format!("{version}\n").into_bytes(),
        ),
        Entry::dir(format!("{vdir}/"), 0o755),
    ];
    // Files from the repository: LICENSE, bundle/ (README, .desktop), release/ (the
    // update channel, if one has been written) and signing/ (the bundle keys and policy the
    // updater checks a new version's signature with).
    let channel = s
        .vars
        .get("update_channel")
        .map_or("stable", String::as_str);
    let mut release = Vec::new();
    let mut signing = Vec::new();
    let mut icns = None;
    for input in s.project.inputs_for(s.target) {
        if let InputKind::Path(p) = input.kind()? {
            for (rel, mode, _) in env.path_files(p)? {
                let data = std::fs::read(env.root.join(&rel))?;
                if let Some(inside) = rel.strip_prefix("release/") {
                    release.push((inside.to_string(), data));
                    continue;
                }
                if let Some(inside) = rel.strip_prefix("signing/") {
                    signing.push((inside.to_string(), data));
                    continue;
                }
                // The menu entry and its SVG icon are the Linux desktop's (Windows keeps the
                // SVG as the bundle's picture); a Mac's icon is inside each Timb.app.
                if rel == crate::macos::ICON_SOURCE {
                    icns = Some(data);
                    continue;
                }
                if (rel.ends_with(".desktop") && target != Target::LinuxX86_64)
                    || (rel.ends_with(".svg") && mac)
                {
                    continue;
                }
                let inside = rel.strip_prefix("bundle/").unwrap_or(&rel);
                entries.push(Entry {
                    path: format!("{top}/{inside}"),
                    mode,
                    data: Some(data),
                });
            }
        }
    }
    let icon = match (mac, icns) {
        (false, _) => Vec::new(),
        (true, None) => anyhow::bail!("a macOS bundle needs {}", crate::macos::ICON_SOURCE),
        (true, Some(icon)) => {
            crate::macos::icns_entries(&icon).context(crate::macos::ICON_SOURCE)?;
            icon
        }
    };
    let launcher = read("timb-launcher")?;
    entries.extend(binary_entries(
        target,
        &top,
        &vdir,
        &version,
        [launcher, read("timb")?],
        &icon,
    ));
    let shipped = update_channel_entries(&release, channel, &vdir, env.source_date_epoch)?;
    if shipped.is_empty() {
        eprintln!(
            "note: release/{channel}/ holds no update channel, so this bundle cannot check for updates (see release/README.md)"
        );
    }
    entries.extend(shipped);
    entries.extend(signing_entries(&signing, &vdir)?);
    // The fonts timb loads (app/timb/src/fonts.rs), and their licence beside the others.
    let fonts = s
        .deps
        .get("fonts")
        .context("a bundle needs the fonts project")?;
    entries.push(Entry::dir(format!("{vdir}/fonts/"), 0o755));
    let mut font_licence = None;
    for (name, data) in files_in(&fonts.dir.join("fonts"))? {
        if name.ends_with(".ttf") {
            entries.push(Entry::file(format!("{vdir}/fonts/{name}"), 0o644, data));
        } else if name == "LICENSE-fonts-noto.txt" {
            font_licence = Some(data);
        }
    }
    entries.push(Entry::dir(format!("{vdir}/LICENSES/"), 0o755));
    entries.push(Entry::file(
        format!("{vdir}/LICENSES/fonts-noto.txt"),
        0o644,
        font_licence.context("the fonts come without their licence")?,
    ));
    // The obfs4 transport (#16, rbm-projects/lyrebird.toml) beside the messenger, where it
    // looks for it (timb_tor::Transports::lyrebird_in), with its and its libraries' licences.
    let mut buildinfo_extra = String::new();
    if let Some(pt) = s.deps.get("lyrebird") {
        let file = format!("lyrebird{exe}");
        let data = std::fs::read(pt.dir.join("out").join(&file))
            .with_context(|| format!("reading the {file} the lyrebird project built"))?;
        check_glibc_baseline(s, &data, &file)?;
        entries.push(Entry::file(format!("{vdir}/{file}"), 0o755, data));
        for (name, data) in files_in(&pt.dir.join("out/licences"))? {
            entries.push(Entry::file(format!("{vdir}/LICENSES/{name}"), 0o644, data));
        }
        buildinfo_extra = format!("lyrebird_build_id = \"{}\"\n", pt.id);
    }
    // What the toolchain compiled in (rbm-projects/timb/build): the standard library's
    // notices, and on Windows the C runtime's.
    for (name, data) in files_in(&timb.dir.join("licences"))? {
        entries.push(Entry::file(format!("{vdir}/LICENSES/{name}"), 0o644, data));
    }
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
        "name = \"timb\"\nversion = \"{}\"\ntarget = \"{target}\"\nsource_date_epoch = {}\ntimb_build_id = \"{}\"\n{buildinfo_extra}",
        s.version, env.source_date_epoch, timb.id
    );
    entries.push(Entry {
        path: format!("{top}/BUILDINFO"),
        mode: 0o644,
        data: Some(buildinfo.into_bytes()),
    });

    let name = target.archive_name(&version);
    let archive = s.out_dir.join(&name);
    match target.archive_format() {
        ArchiveFormat::TarXz => write_tar_xz(entries, &archive, env.source_date_epoch)?,
        ArchiveFormat::Zip => write_zip(entries, &archive, env.source_date_epoch)?,
    }
    let mut sums = Sums::new();
    sums.add(&name, util::sha256_file(&archive)?.parse::<Sha256>()?)?;
    // The unsigned exes too, so a rebuilder can compare one stripped by hand.
    for (exe_name, sha) in exes {
        sums.add(&exe_name, sha.parse::<Sha256>()?)?;
    }
    std::fs::write(s.out_dir.join(SUMS_FILE), sums.to_string())?;
    Ok(())
}

/// The oldest glibc the Linux bundle starts on (`glibc_baseline`, a number in
/// linux-bundle.toml): every executable it ships asks for none newer.
fn check_glibc_baseline(s: &StepCtx, data: &[u8], file: &str) -> Result<()> {
    if let Some(baseline) = s.vars.get("glibc_baseline") {
        let v = crate::elf::parse_version(baseline)
            .with_context(|| format!("glibc_baseline {baseline:?} is not like \"2.31\""))?;
        crate::elf::check_baseline(data, v).with_context(|| file.to_string())?;
    }
    Ok(())
}

/// The update channel the bundle ships, from `release/CHANNEL/` (`files`: paths inside
/// `release/` and their bytes): `VDIR/update-channel/{root.json, channel.toml}`, checked as
/// the app will read them (a root valid at `now`, the channel's own name, onion mirrors
/// first). None when the folder holds neither file; an error when it holds one, or a bad one.
fn update_channel_entries(
    files: &[(String, Vec<u8>)],
    channel: &str,
    vdir: &str,
    now: u64,
) -> Result<Vec<Entry>> {
    use timb_release::tuf::{check_shipped_root, ShippedChannel, CHANNEL_FILE, ROOT_FILE};
    let get = |name: &str| {
        files
            .iter()
            .find(|(p, _)| *p == format!("{channel}/{name}"))
            .map(|(_, d)| d)
    };
    let (root, toml) = match (get(ROOT_FILE), get(CHANNEL_FILE)) {
        (None, None) => return Ok(Vec::new()),
        (Some(r), Some(t)) => (r, t),
        _ => anyhow::bail!(
            "release/{channel}/ must hold both {ROOT_FILE} and {CHANNEL_FILE} (write them with `cargo xtask release channel`)"
        ),
    };
    let text = std::str::from_utf8(toml).context("release channel.toml is not UTF-8")?;
    let parsed = ShippedChannel::parse(text).with_context(|| format!("release/{channel}/"))?;
    if parsed.channel.as_str() != channel {
        anyhow::bail!(
            "release/{channel}/{CHANNEL_FILE} names the channel {:?}",
            parsed.channel.as_str()
        );
    }
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    check_shipped_root(root, now).with_context(|| format!("release/{channel}/{ROOT_FILE}"))?;
    let dir = format!("{vdir}/update-channel");
    Ok(vec![
        Entry::dir(format!("{dir}/"), 0o755),
        Entry::file(format!("{dir}/{CHANNEL_FILE}"), 0o644, toml.clone()),
        Entry::file(format!("{dir}/{ROOT_FILE}"), 0o644, root.clone()),
    ])
}

/// The launcher at the top and the version's messenger: `TOP/timb` and `VDIR/timb` (`.exe`
/// on Windows), or on macOS `TOP/Timb.app` and `VDIR/Timb.app`, where timb-launcher's
/// layout looks for them.
fn binary_entries(
    target: Target,
    top: &str,
    vdir: &str,
    version: &Version,
    [launcher, messenger]: [Vec<u8>; 2],
    icns: &[u8],
) -> Vec<Entry> {
    if target.is_macos() {
        let mut e = crate::macos::app_entries(top, version, launcher, icns);
        e.extend(crate::macos::app_entries(vdir, version, messenger, icns));
        return e;
    }
    let exe = target.exe_suffix();
    vec![
        Entry::file(format!("{top}/timb{exe}"), 0o755, launcher),
        Entry::file(format!("{vdir}/timb{exe}"), 0o755, messenger),
    ]
}

/// The bundle keys and policy the updater reads (`timb_update::BundleTrust::read`), from
/// `signing/` (`files`: paths inside it and their bytes): `VDIR/signing/{policy.toml,
/// keys/NAME.pub}`, checked as the app will read them. Only those: the folder's README and
/// the TUF roles file are for release engineers. Without a policy there is no bundle.
fn signing_entries(files: &[(String, Vec<u8>)], vdir: &str) -> Result<Vec<Entry>> {
    use timb_release::{Keyring, Policy, PublicKey, MAX_SHIPPED_FILE, MAX_SHIPPED_KEYS};
    // The updater's limits (BundleTrust::read): a bundle past them would package and then
    // never update.
    for (path, data) in files {
        if data.len() as u64 > MAX_SHIPPED_FILE {
            anyhow::bail!("signing/{path} is larger than {MAX_SHIPPED_FILE} bytes");
        }
    }
    let key_files = files
        .iter()
        .filter(|(p, _)| p.starts_with("keys/") && p.ends_with(".pub"))
        .count();
    if key_files > MAX_SHIPPED_KEYS {
        anyhow::bail!(
            "signing/keys/ holds {key_files} keys; the updater reads {MAX_SHIPPED_KEYS} at most"
        );
    }
    let policy = files
        .iter()
        .find(|(p, _)| p == "policy.toml")
        .map(|(_, d)| d)
        .context("signing/policy.toml is missing: a bundle ships its signing policy")?;
    let text = std::str::from_utf8(policy).context("signing/policy.toml is not UTF-8")?;
    let parsed = Policy::parse(text).context("signing/policy.toml")?;
    let dir = format!("{vdir}/signing");
    let mut entries = vec![
        Entry::dir(format!("{dir}/"), 0o755),
        Entry::file(format!("{dir}/policy.toml"), 0o644, policy.clone()),
        Entry::dir(format!("{dir}/keys/"), 0o755),
    ];
    let mut keys = Keyring::new();
    for (path, data) in files {
        let Some(name) = path.strip_prefix("keys/") else {
            continue;
        };
        if !name.ends_with(".pub") || name.contains('/') {
            continue;
        }
        let text = std::str::from_utf8(data).with_context(|| format!("signing/{path}"))?;
        keys.add(
            PublicKey::parse(text).with_context(|| format!("signing/{path}"))?,
            name.to_string(),
        );
        entries.push(Entry::file(format!("{dir}/{path}"), 0o644, data.clone()));
    }
    parsed
        .check_keys(&keys)
        .context("signing/policy.toml names a key signing/keys/ does not hold")?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = "channel = \"stable\"\nmirrors = [\"http://abc.onion/\"]\n";

    #[test]
    fn no_channel_ships_nothing_and_half_or_bad_ones_are_refused() {
        let none = update_channel_entries(&[("README.md".into(), vec![])], "stable", "v", 0);
        assert!(none.unwrap().is_empty());
        let half = [("stable/channel.toml".to_string(), TOML.as_bytes().to_vec())];
        let e = update_channel_entries(&half, "stable", "v", 0).unwrap_err();
        assert!(format!("{e:#}").contains("must hold both"), "{e:#}");
        let bad_root = [
            half[0].clone(),
            ("stable/root.json".to_string(), b"{}".to_vec()),
        ];
        let e = update_channel_entries(&bad_root, "stable", "v", 0).unwrap_err();
        assert!(format!("{e:#}").contains("not a valid TUF root"), "{e:#}");
        let other = [
            (
                "stable/channel.toml".to_string(),
                TOML.replace("stable", "alpha").into_bytes(),
            ),
            ("stable/root.json".to_string(), b"{}".to_vec()),
        ];
        let e = update_channel_entries(&other, "stable", "v", 0).unwrap_err();
        assert!(format!("{e:#}").contains("names the channel"), "{e:#}");
    }

    /// Where the two programs go, per target: the paths timb-launcher's layout finds
    /// (`APP_EXE` below each version folder; the launcher at the top).
    #[test]
    fn the_launcher_and_the_messenger_go_where_the_layout_looks() {
        let v: Version = "1.2.3".parse().unwrap();
        let files = |t: Target| -> Vec<String> {
            let top = t.bundle_folder(&v);
            let vdir = format!("{top}/app/{v}");
            binary_entries(t, &top, &vdir, &v, [b"L".to_vec(), b"M".to_vec()], b"I")
                .into_iter()
                .filter(|e| e.data.as_deref().is_some_and(|d| d == b"L" || d == b"M"))
                .map(|e| e.path)
                .collect()
        };
        assert_eq!(
            files(Target::LinuxX86_64),
            [
                "timb-1.2.3-linux-x86_64/timb",
                "timb-1.2.3-linux-x86_64/app/1.2.3/timb"
            ]
        );
        assert_eq!(
            files(Target::WindowsX86_64),
            [
                "timb-1.2.3-windows-x86_64/timb.exe",
                "timb-1.2.3-windows-x86_64/app/1.2.3/timb.exe"
            ]
        );
        assert_eq!(
            files(Target::MacosAarch64),
            [
                "timb-1.2.3-macos-aarch64/Timb.app/Contents/MacOS/timb",
                "timb-1.2.3-macos-aarch64/app/1.2.3/Timb.app/Contents/MacOS/timb"
            ]
        );
        // Each .app has the icon; nothing else does.
        let icons: Vec<String> = binary_entries(
            Target::MacosAarch64,
            "t",
            "t/app/1",
            &v,
            [b"L".to_vec(), b"M".to_vec()],
            b"I",
        )
        .into_iter()
        .filter(|e| e.data.as_deref() == Some(b"I".as_slice()))
        .map(|e| e.path)
        .collect();
        assert_eq!(
            icons,
            [
                "t/Timb.app/Contents/Resources/timb.icns",
                "t/app/1/Timb.app/Contents/Resources/timb.icns"
            ]
        );
    }

    #[test]
    fn the_signing_policy_and_its_keys_are_shipped_and_checked() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../signing");
        let policy = std::fs::read(root.join("policy.toml")).unwrap();
        let mut files = vec![
            ("policy.toml".to_string(), policy),
            ("README.md".to_string(), b"for people".to_vec()),
            ("tuf-roles.toml".to_string(), b"for release".to_vec()),
        ];
        // With the repository's keys (none yet, or the release keys the policy lists).
        let mut want = vec![
            "v/signing/".to_string(),
            "v/signing/keys/".to_string(),
            "v/signing/policy.toml".to_string(),
        ];
        for e in std::fs::read_dir(root.join("keys")).into_iter().flatten() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let data = std::fs::read(root.join("keys").join(&name)).unwrap();
            if name.ends_with(".pub") {
                want.push(format!("v/signing/keys/{name}"));
            }
            files.push((format!("keys/{name}"), data));
        }
        let e = signing_entries(&files, "v").unwrap();
        let mut paths: Vec<String> = e.iter().map(|e| e.path.clone()).collect();
        paths.sort();
        want.sort();
        assert_eq!(paths, want);
        let mut big = files.clone();
        big.push(("keys/big.pub".to_string(), vec![b'x'; 70_000]));
        let e = signing_entries(&big, "v").unwrap_err();
        assert!(format!("{e:#}").contains("larger than"), "{e:#}");
        let e = signing_entries(&files[1..], "v").unwrap_err();
        assert!(format!("{e:#}").contains("policy.toml is missing"), "{e:#}");
        let mut bad = files.clone();
        bad.push(("keys/x.pub".to_string(), b"not a key".to_vec()));
        let e = signing_entries(&bad, "v").unwrap_err();
        assert!(format!("{e:#}").contains("signing/keys/x.pub"), "{e:#}");
        let listed = "[bundle]\nkeys = [\"0123456789ABCDEF\"]\n\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = []\nthreshold = 2\n".to_string();
        let e =
            signing_entries(&[("policy.toml".to_string(), listed.into_bytes())], "v").unwrap_err();
        assert!(format!("{e:#}").contains("does not hold"), "{e:#}");
    }
}
