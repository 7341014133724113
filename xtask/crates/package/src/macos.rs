//! The macOS bundle: the portable folder with `Timb.app`, written into a deterministic zip.
//!
//! Layout (timb-launcher's, adapted to macOS, where a signed `.app` must be replaced whole):
//! `Timb.app/` at the top is the launcher, the app a user opens; each version's messenger is
//! an `.app` of its own in `app/VERSION/Timb.app/`, which an update adds beside the running
//! one and never changes; `profile/` is beside them, in the portable folder.
//!
//! On Linux only the launcher can be built for macOS (the messenger links Apple's frameworks;
//! see `cargo xtask bundle --target macos-aarch64`), so the `macos-app` step here writes the
//! folder with the launcher's `Timb.app` and no version yet, named `…-launcher-only.zip`: the
//! whole macOS path from source to a checked Mach-O, minus the GUI link.

use crate::archive::{write_zip, Entry};
use crate::licences::third_party_licences;
use anyhow::{Context, Result};
use pipeline::{util, BuildEnv, InputKind, Step, StepCtx};
use timb_release::{Sha256, Sums, Target, Version, SUMS_FILE};

/// The bundle identifier, the same for every version and architecture.
pub const BUNDLE_ID: &str = "org.timb.messenger";
/// The oldest macOS timb supports; `rbm-projects/macos-launcher.toml` builds for the same
/// (its `zig_target`), which a test keeps equal.
pub const MINIMUM_MACOS: &str = "11.0";
/// The icon every `Timb.app` holds in `Contents/Resources/` (Info.plist's `CFBundleIconFile`):
/// `bundle/timb.icns`, the rendering of `bundle/timb.svg` a test keeps in step with it.
pub const ICON_FILE: &str = "timb.icns";
/// Where the icon is in the repository.
pub const ICON_SOURCE: &str = "bundle/timb.icns";

/// `Info.plist` of a `Timb.app`: sorted keys, nothing from the build machine (no Xcode,
/// SDK or OS build numbers, no dates), so the same version gives the same bytes.
pub fn info_plist(version: &Version, executable: &str) -> String {
    let v = xml_escape(&version.to_string());
    let keys = [
        (
            "CFBundleDevelopmentRegion",
            "<string>en</string>".to_string(),
        ),
        ("CFBundleDisplayName", "<string>timb</string>".into()),
        (
            "CFBundleExecutable",
            format!("<string>{}</string>", xml_escape(executable)),
        ),
        ("CFBundleIconFile", format!("<string>{ICON_FILE}</string>")),
        (
            "CFBundleIdentifier",
            format!("<string>{BUNDLE_ID}</string>"),
        ),
        (
            "CFBundleInfoDictionaryVersion",
            "<string>6.0</string>".into(),
        ),
        ("CFBundleName", "<string>timb</string>".into()),
        ("CFBundlePackageType", "<string>APPL</string>".into()),
        (
            "CFBundleShortVersionString",
            format!("<string>{v}</string>"),
        ),
        ("CFBundleVersion", format!("<string>{v}</string>")),
        (
            "LSApplicationCategoryType",
            "<string>public.app-category.social-networking</string>".into(),
        ),
        (
            "LSMinimumSystemVersion",
            format!("<string>{MINIMUM_MACOS}</string>"),
        ),
        ("NSHighResolutionCapable", "<true/>".into()),
    ];
    let mut s = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
        "<plist version=\"1.0\">\n<dict>\n"
    ));
    for (k, v) in keys {
        s.push_str(&format!("\t<key>{k}</key>\n\t{v}\n"));
    }
    s.push_str("</dict>\n</plist>\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The entries of `PREFIX/Timb.app/` holding `exe` as its executable `timb` and `icon`
/// (an `.icns`, [`check_icns`]) as its icon.
pub fn app_entries(prefix: &str, version: &Version, exe: Vec<u8>, icon: &[u8]) -> Vec<Entry> {
    let app = format!("{prefix}/Timb.app");
    vec![
        Entry::dir(format!("{app}/"), 0o755),
        Entry::dir(format!("{app}/Contents/"), 0o755),
        Entry::file(
            format!("{app}/Contents/Info.plist"),
            0o644,
            info_plist(version, "timb").into_bytes(),
        ),
        Entry::dir(format!("{app}/Contents/MacOS/"), 0o755),
        Entry::file(format!("{app}/Contents/MacOS/timb"), 0o755, exe),
        Entry::dir(format!("{app}/Contents/Resources/"), 0o755),
        Entry::file(
            format!("{app}/Contents/Resources/{ICON_FILE}"),
            0o644,
            icon.to_vec(),
        ),
    ]
}

/// The entries of an Apple icon file: `icns`, the file's length, then entries of a type and
/// a length that counts its 8-byte header, to the end. Read by the bundle step so a truncated
/// or mistaken icon is refused at build time, not shown as a blank square on the user's Mac.
pub fn icns_entries(data: &[u8]) -> Result<Vec<([u8; 4], &[u8])>> {
    let be32 = |at: usize| -> Option<usize> {
        let b = data.get(at..at + 4)?;
        Some(u32::from_be_bytes(b.try_into().ok()?) as usize)
    };
    anyhow::ensure!(
        data.get(..4) == Some(b"icns".as_slice()),
        "not an .icns file (no 'icns' magic)"
    );
    anyhow::ensure!(
        be32(4) == Some(data.len()),
        "the .icns header says {:?} bytes, the file has {}",
        be32(4),
        data.len()
    );
    let mut out = Vec::new();
    let mut at = 8;
    while at < data.len() {
        let kind: [u8; 4] = data
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .context("a truncated .icns entry")?;
        let len = be32(at + 4).context("a truncated .icns entry")?;
        anyhow::ensure!(
            len >= 8 && at + len <= data.len(),
            "the .icns entry {} at {at} has a bad length {len}",
            String::from_utf8_lossy(&kind)
        );
        out.push((kind, &data[at + 8..at + len]));
        at += len;
    }
    anyhow::ensure!(!out.is_empty(), "an .icns file with no image");
    Ok(out)
}

/// `exe` is a Mach-O for `target`'s architecture and [`MINIMUM_MACOS`].
pub fn check_macho(exe: &[u8], target: Target) -> Result<()> {
    let m = crate::macho::parse(exe).context("not a usable Mach-O")?;
    let want_arch = match target {
        Target::MacosAarch64 => "arm64",
        Target::MacosX86_64 => "x86_64",
        other => anyhow::bail!("{other} is not a macOS target"),
    };
    anyhow::ensure!(
        m.arch == want_arch && m.min_macos == MINIMUM_MACOS,
        "a Mach-O {} for macOS {}, not {want_arch} for {MINIMUM_MACOS}",
        m.arch,
        m.min_macos
    );
    Ok(())
}

/// What the launcher-only folder is, for whoever opens it.
const README_TXT: &str = "timb - the Tor Instant Messaging Bundle, macOS (launcher only)
==========================================================

This folder is not a usable timb: it is what a Linux machine can build of the
macOS bundle, for rebuilders and developers. Timb.app here is timb's launcher,
cross-built and checked; the messenger it starts (app/VERSION/Timb.app) links
Apple's frameworks and is built on a Mac. Opened as it is, Timb.app says that
this is not a complete timb bundle.

Rebuild it and compare the bytes: in a clone of the same commit, run
`cargo xtask build macos-app --target macos-aarch64` (or macos-x86_64) and
compare the zip's sha256.

Licence: GPL-3.0-or-later (LICENSE); the launcher's parts in LICENSES/.
";

/// The step named `macos-app` in rbm-projects/.
pub struct MacosApp;

impl Step for MacosApp {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()> {
        let target: Target = s
            .vars
            .get("bundle_target")
            .context("the macos-app step needs the bundle_target variable")?
            .parse()?;
        let version: Version = s.version.parse()?;
        let launcher = s
            .deps
            .get("macos-launcher")
            .context("the macos-app step needs the macos-launcher project")?;
        let exe = std::fs::read(launcher.dir.join("timb-launcher"))
            .context("reading the launcher's Mach-O")?;
        check_macho(&exe, target).context("the launcher")?;
        let icon = std::fs::read(env.root.join(ICON_SOURCE))
            .with_context(|| format!("reading {ICON_SOURCE}"))?;
        icns_entries(&icon).context(ICON_SOURCE)?;
        let top = format!("{}-launcher-only", target.bundle_folder(&version));
        let mut entries = vec![
            Entry::dir(format!("{top}/"), 0o755),
            Entry::dir(format!("{top}/profile/"), 0o700),
            Entry::dir(format!("{top}/app/"), 0o755),
        ];
        entries.extend(app_entries(&top, &version, exe, &icon));
        let lic = format!("{top}/LICENSES");
        entries.push(Entry::dir(format!("{lic}/"), 0o755));
        for (name, data) in crate::portable::files_in(&launcher.dir.join("licences"))? {
            entries.push(Entry::file(format!("{lic}/{name}"), 0o644, data));
        }
        entries.push(Entry::file(
            format!("{lic}/THIRD-PARTY.txt"),
            0o644,
            third_party_licences(&env.root, "timb-launcher", target.rust_triple())?.into_bytes(),
        ));
        for input in s.project.inputs_for(s.target) {
            if let InputKind::Path(p) = input.kind()? {
                // LICENSE; not bundle/, whose README, menu entry and icon are the
                // portable bundles' (this folder has its own README_TXT).
                for (rel, mode, _) in env.path_files(p)? {
                    if rel == ICON_SOURCE {
                        continue; // in Timb.app, above
                    }
                    let inside = rel.strip_prefix("bundle/").unwrap_or(&rel);
                    entries.push(Entry::file(
                        format!("{top}/{inside}"),
                        mode,
                        std::fs::read(env.root.join(&rel))?,
                    ));
                }
            }
        }
        entries.push(Entry::file(
            format!("{top}/README.txt"),
            0o644,
            README_TXT.as_bytes().to_vec(),
        ));
        entries.push(Entry::file(
            format!("{top}/BUILDINFO"),
            0o644,
            format!(
                "name = \"timb\"\nversion = \"{version}\"\ntarget = \"{target}\"\nsource_date_epoch = {}\nlauncher_build_id = \"{}\"\nmessenger = \"not built: the macOS GUI links Apple's frameworks and is built on a Mac\"\n",
                env.source_date_epoch, launcher.id
            )
            .into_bytes(),
        ));
        let name = format!("{top}.zip");
        let archive = s.out_dir.join(&name);
        write_zip(entries, &archive, env.source_date_epoch)?;
        let mut sums = Sums::new();
        sums.add(&name, util::sha256_file(&archive)?.parse::<Sha256>()?)?;
        std::fs::write(s.out_dir.join(SUMS_FILE), sums.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use resvg::tiny_skia::{Pixmap, Transform};

    /// The images of `bundle/timb.icns`: the types and pixel sizes Xcode's iconutil writes for
    /// an iconset (16 to 512 points, each at 1x and 2x), all PNG.
    const ICNS_IMAGES: [(&[u8; 4], u32); 10] = [
        (b"icp4", 16),
        (b"ic11", 32),
        (b"icp5", 32),
        (b"ic12", 64),
        (b"ic07", 128),
        (b"ic13", 256),
        (b"ic08", 256),
        (b"ic14", 512),
        (b"ic09", 512),
        (b"ic10", 1024),
    ];

    fn write_icns(images: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
        let len = 8 + images.iter().map(|(_, d)| 8 + d.len()).sum::<usize>();
        let mut out = b"icns".to_vec();
        out.extend(u32::try_from(len).unwrap().to_be_bytes());
        for (kind, data) in images {
            out.extend(kind);
            out.extend(u32::try_from(8 + data.len()).unwrap().to_be_bytes());
            out.extend(data);
        }
        out
    }

    /// The committed icon is `bundle/timb.svg` rendered at each size (by resvg, which slint
    /// already brings), compared as pixels so a PNG encoder's update does not matter. The
    /// file is committed rather than rendered by the build so that a rebuilder's result does
    /// not hang on a rasteriser's floating point on their CPU. After changing the SVG:
    /// `TIMB_WRITE_ICON=1 cargo test -p package the_icon`.
    #[test]
    fn the_icon_is_the_rendering_of_the_svg() {
        let root = util::repo_root();
        let svg = std::fs::read(root.join("bundle/timb.svg")).unwrap();
        let tree = resvg::usvg::Tree::from_data(&svg, &Default::default()).unwrap();
        let rendered: Vec<([u8; 4], Vec<u8>)> = ICNS_IMAGES
            .iter()
            .map(|&(kind, px)| {
                let mut p = Pixmap::new(px, px).unwrap();
                let s = px as f32 / tree.size().width();
                resvg::render(&tree, Transform::from_scale(s, s), &mut p.as_mut());
                (*kind, p.encode_png().unwrap())
            })
            .collect();
        let path = root.join(ICON_SOURCE);
        if std::env::var_os("TIMB_WRITE_ICON").is_some() {
            std::fs::write(&path, write_icns(&rendered)).unwrap();
        }
        let committed = std::fs::read(&path).unwrap();
        let entries = icns_entries(&committed).unwrap();
        assert_eq!(entries.len(), rendered.len());
        let pixels = |png: &[u8]| Pixmap::decode_png(png).unwrap();
        for ((kind, data), (want_kind, want)) in entries.iter().zip(&rendered) {
            assert_eq!(kind, want_kind);
            assert!(
                pixels(data) == pixels(want),
                "{ICON_SOURCE}'s {} is not timb.svg's rendering: TIMB_WRITE_ICON=1 cargo test -p package the_icon",
                String::from_utf8_lossy(kind)
            );
        }
    }

    #[test]
    fn a_broken_icon_is_refused() {
        let good = write_icns(&[(*b"ic07", b"png".to_vec())]);
        assert_eq!(
            icns_entries(&good).unwrap(),
            [(*b"ic07", b"png".as_slice())]
        );
        let mut bad_magic = good.clone();
        bad_magic[0] = b'x';
        let mut truncated = good.clone();
        truncated.pop();
        let mut long_entry = good.clone();
        long_entry[15] += 1;
        for (bad, why) in [
            (bad_magic, "no 'icns' magic"),
            (truncated, "the file has 18"),
            (long_entry, "bad length 12"),
            (write_icns(&[]), "no image"),
            (b"icns".to_vec(), "header says None"),
        ] {
            let e = icns_entries(&bad).unwrap_err();
            assert!(format!("{e:#}").contains(why), "{e:#}");
        }
    }

    #[test]
    fn the_info_plist_is_fixed_by_the_version_alone() {
        let v: Version = "0.1.0".parse().unwrap();
        let p = info_plist(&v, "timb");
        assert_eq!(p, info_plist(&v, "timb"));
        for want in [
            "<key>CFBundleIdentifier</key>\n\t<string>org.timb.messenger</string>",
            "<key>CFBundleShortVersionString</key>\n\t<string>0.1.0</string>",
            "<key>LSMinimumSystemVersion</key>\n\t<string>11.0</string>",
            "<key>CFBundleExecutable</key>\n\t<string>timb</string>",
        ] {
            assert!(p.contains(want), "{want}");
        }
        // Keys in order, so the same data is always the same bytes.
        let keys: Vec<&str> = p
            .lines()
            .filter_map(|l| l.trim().strip_prefix("<key>")?.strip_suffix("</key>"))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert!(!p.contains("DTXcode") && !p.contains("BuildMachine"));
        assert_eq!(xml_escape("a<&\">"), "a&lt;&amp;&quot;&gt;");
    }

    /// The launcher's build targets the minimum version the Info.plist states.
    #[test]
    fn the_launcher_is_built_for_the_minimum_the_plist_states() {
        let def =
            std::fs::read_to_string(util::repo_root().join("rbm-projects/macos-launcher.toml"))
                .unwrap();
        let targets: Vec<&str> = def
            .lines()
            .filter_map(|l| l.strip_prefix("zig_target = "))
            .collect();
        assert_eq!(targets.len(), 2, "{def}");
        for t in targets {
            assert!(
                t.ends_with(&format!("-macos.{MINIMUM_MACOS}\"")),
                "{t} is not for macOS {MINIMUM_MACOS}"
            );
        }
    }

    #[test]
    fn the_app_holds_its_plist_and_executable() {
        let v: Version = "0.2.0".parse().unwrap();
        let e = app_entries("top", &v, b"exe".to_vec(), b"icon");
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "top/Timb.app/",
                "top/Timb.app/Contents/",
                "top/Timb.app/Contents/Info.plist",
                "top/Timb.app/Contents/MacOS/",
                "top/Timb.app/Contents/MacOS/timb",
                "top/Timb.app/Contents/Resources/",
                "top/Timb.app/Contents/Resources/timb.icns",
            ]
        );
        assert_eq!(e[4].mode, 0o755);
        assert_eq!(e[6].data.as_deref(), Some(b"icon".as_slice()));
    }
}
