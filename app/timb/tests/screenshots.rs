//! The screenshots show something, and the Arabic ones are the English layout
//! mirrored: both the committed ones (docs/screenshots/, made by `cargo xtask
//! screenshots`) and ones made now from the current UI, by running the same
//! example into a temporary folder (real window, backend, prosody and the
//! private Tor network), so a UI that broke since the last commit of the
//! pictures fails here too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SCREENS: &[&str] = &[
    "start",
    "add-account",
    "chat-unverified",
    "verify",
    "chat-verified",
];

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

/// Runs examples/screenshots.rs into a temporary folder, once per test
/// binary. `cargo test` builds the examples with the tests (`cargo test
/// --workspace` or `-p timb`); a run of this test target alone does not, and
/// then says so.
fn fresh() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/<this test> -> target/<profile>/examples/screenshots
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let example = profile_dir.join("examples/screenshots");
        assert!(
            example.is_file(),
            "{} missing: run `cargo test -p timb` (which builds the examples) or \
             `cargo build -p timb --example screenshots` first",
            example.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(&example).arg(dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "the screenshots example failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

/// Both sets: the committed pictures, and the ones made now.
fn sets() -> [(&'static str, PathBuf); 2] {
    [
        ("committed", committed()),
        ("current", fresh().to_path_buf()),
    ]
}

/// RGB pixels, width, height.
fn load(dir: &Path, name: &str) -> (Vec<u8>, usize, usize) {
    let path = dir.join(name);
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask screenshots`)", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{name}");
    buf.truncate(info.buffer_size());
    (buf, info.width as usize, info.height as usize)
}

/// Mean brightness of each pixel column.
fn column_profile(px: &[u8], w: usize, h: usize) -> Vec<f64> {
    (0..w)
        .map(|x| {
            (0..h)
                .map(|y| {
                    let i = (y * w + x) * 3;
                    f64::from(px[i]) + f64::from(px[i + 1]) + f64::from(px[i + 2])
                })
                .sum::<f64>()
                / h as f64
        })
        .collect()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt())
}

#[test]
fn screenshots_are_not_blank() {
    for (set, dir) in sets() {
        for screen in SCREENS {
            for lang in ["en", "ar"] {
                let name = format!("{screen}-{lang}.png");
                let (px, w, h) = load(&dir, &name);
                assert!(w >= 800 && h >= 500, "{set} {name}: {w}x{h}");
                let mut colours = std::collections::HashSet::new();
                for p in px.chunks(3) {
                    colours.insert((p[0], p[1], p[2]));
                }
                // Text, buttons and panels give hundreds of shades; a blank or
                // single-colour frame gives one or two.
                assert!(
                    colours.len() > 50,
                    "{set} {name}: only {} colours",
                    colours.len()
                );
            }
        }
    }
}

#[test]
fn arabic_screenshots_are_the_english_layout_mirrored() {
    for (set, dir) in sets() {
        for screen in SCREENS {
            let (en, w, h) = load(&dir, &format!("{screen}-en.png"));
            let (ar, w2, h2) = load(&dir, &format!("{screen}-ar.png"));
            assert_eq!((w, h), (w2, h2), "{set} {screen}: sizes differ");
            let pe = column_profile(&en, w, h);
            let pa = column_profile(&ar, w, h);
            let mirrored: Vec<f64> = pa.iter().rev().copied().collect();
            let (same, flipped) = (correlation(&pe, &pa), correlation(&pe, &mirrored));
            assert!(
                flipped > 0.8 && flipped > same,
                "{set} {screen}: the Arabic layout is not the English one mirrored (as is {same:.2}, mirrored {flipped:.2})"
            );
        }
    }
}

/// The committed pictures are of the window as it is now: same size.
#[test]
fn committed_screenshots_have_the_current_size() {
    for screen in SCREENS {
        let name = format!("{screen}-en.png");
        let (_, w, h) = load(&committed(), &name);
        let (_, w2, h2) = load(fresh(), &name);
        assert_eq!(
            (w, h),
            (w2, h2),
            "{name}: docs/screenshots/ is stale (run `cargo xtask screenshots`)"
        );
    }
}
