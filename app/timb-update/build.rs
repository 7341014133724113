//! Ships the bundle release keys: every `signing/keys/*.pub`, sorted by name, becomes an entry
//! of `SHIPPED_KEYS` (`$OUT_DIR/shipped_keys.rs`). Adding a release key is then adding its
//! file and listing it in `signing/policy.toml`, with no code to forget, and a tree with other
//! keys (the update test's copies, tests/bundle) builds an app that trusts exactly those.

use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = run() {
        eprintln!("timb-update: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let env = |name: &str| std::env::var(name).map_err(|e| format!("{name}: {e}"));
    let dir = Path::new(&env("CARGO_MANIFEST_DIR")?).join("../../signing/keys");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut keys: Vec<(String, String)> = Vec::new();
    // No folder is no key (a source tree without release keys).
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".pub") else {
                continue;
            };
            println!("cargo:rerun-if-changed={}", e.path().display());
            let text = std::fs::read_to_string(e.path())
                .map_err(|err| format!("signing/keys/{name}: {err}"))?;
            keys.push((stem.to_string(), text));
        }
    }
    keys.sort();
    let mut out = String::from("&[\n");
    for (name, text) in &keys {
        out.push_str(&format!("    ({name:?}, {text:?}),\n"));
    }
    out.push(']');
    let dest = PathBuf::from(env("OUT_DIR")?).join("shipped_keys.rs");
    std::fs::write(&dest, out).map_err(|err| format!("{}: {err}", dest.display()))
}
