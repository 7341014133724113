//! The committed screenshots (docs/screenshots/, made by `cargo xtask
//! screenshots`) show something, and the Arabic ones are the English layout
//! mirrored.

use std::path::{Path, PathBuf};

const SCREENS: &[&str] = &[
    "start",
    "add-account",
    "chat-unverified",
    "verify",
    "chat-verified",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

/// RGB pixels, width, height.
fn load(name: &str) -> (Vec<u8>, usize, usize) {
    let path = dir().join(name);
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
    for screen in SCREENS {
        for lang in ["en", "ar"] {
            let name = format!("{screen}-{lang}.png");
            let (px, w, h) = load(&name);
            assert!(w >= 800 && h >= 500, "{name}: {w}x{h}");
            let mut colours = std::collections::HashSet::new();
            for p in px.chunks(3) {
                colours.insert((p[0], p[1], p[2]));
            }
            // Text, buttons and panels give hundreds of shades; a blank or
            // single-colour frame gives one or two.
            assert!(colours.len() > 50, "{name}: only {} colours", colours.len());
        }
    }
}

#[test]
fn arabic_screenshots_are_the_english_layout_mirrored() {
    for screen in SCREENS {
        let (en, w, h) = load(&format!("{screen}-en.png"));
        let (ar, w2, h2) = load(&format!("{screen}-ar.png"));
        assert_eq!((w, h), (w2, h2), "{screen}: sizes differ");
        let pe = column_profile(&en, w, h);
        let pa = column_profile(&ar, w, h);
        let mirrored: Vec<f64> = pa.iter().rev().copied().collect();
        let (same, flipped) = (correlation(&pe, &pa), correlation(&pe, &mirrored));
        assert!(
            flipped > 0.8 && flipped > same,
            "{screen}: the Arabic layout is not the English one mirrored (as is {same:.2}, mirrored {flipped:.2})"
        );
    }
}
