//! The fonts the bundle ships in `app/VERSION/fonts/` (rbm-projects/fonts.toml: Noto Sans and
//! Noto Sans Arabic, regular and bold), loaded explicitly so the window never depends on the
//! fonts a system has: a Windows without them (wine, some fresh installs) made slint's
//! software renderer panic, and a Linux desktop may lack the Arabic and Persian letters the
//! translations need. Nothing else is looked up by name.

use std::path::Path;

/// Points slint at the bundle's fonts through the two settings it reads when it builds its
/// font collection: `SLINT_DEFAULT_FONT`, the primary face, and `SLINT_FONT_PATH`, a folder
/// whose faces join the fallback chain and stand for the generic sans-serif families (so
/// Arabic text finds Noto Sans Arabic). Called by `main` while the process has one thread,
/// before the window exists; does nothing when the folder is missing (a development build run
/// from cargo, which uses the system's fonts).
pub fn use_bundled(version_dir: &Path) {
    let dir = version_dir.join("fonts");
    let primary = dir.join("NotoSans-Regular.ttf");
    if primary.is_file() {
        std::env::set_var("SLINT_DEFAULT_FONT", primary);
        std::env::set_var("SLINT_FONT_PATH", dir);
    }
}
