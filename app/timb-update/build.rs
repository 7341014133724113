//! Ships the bundle release keys: every `signing/keys/*.pub`, sorted by name, becomes an entry
//! of `SHIPPED_KEYS` (`$OUT_DIR/shipped_keys.rs`). Adding a release key is then adding its
//! file and listing it in `signing/policy.toml`, with no code to forget, and a tree with other
//! keys (the update test's copies, tests/bundle) builds an app that trusts exactly those.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../../signing/keys");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut keys: Vec<(String, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".pub") else {
                continue;
            };
            println!("cargo:rerun-if-changed={}", e.path().display());
            let text = std::fs::read_to_string(e.path())
                .unwrap_or_else(|err| panic!("signing/keys/{name}: {err}"));
            keys.push((stem.to_string(), text));
        }
    }
    keys.sort();
    let mut out = String::from("&[\n");
    for (name, text) in &keys {
        out.push_str(&format!("    ({name:?}, {text:?}),\n"));
    }
    out.push(']');
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("shipped_keys.rs");
    std::fs::write(&dest, out).unwrap_or_else(|err| panic!("{}: {err}", dest.display()));
}
