//! `cargo xtask screenshots`.

use anyhow::Result;
use pipeline::{provision, util};
use std::path::Path;

/// The real window and network backend against the private Tor network and
/// prosody (app/timb/examples/screenshots.rs), pictures into docs/screenshots/.
pub fn run(root: &Path) -> Result<()> {
    provision::ensure(&["tor", "prosody"])?;
    let net = crate::testnet::start_testnet(root)?;
    let mut c = util::cargo();
    c.current_dir(root)
        .args([
            "run",
            "--locked",
            "--quiet",
            "--package",
            "timb",
            "--example",
            "screenshots",
            "--",
        ])
        .arg(root.join("docs/screenshots"));
    if let Some(n) = &net {
        c.env("TIMB_TESTNET", &n.config);
    }
    let r = util::run(&mut c);
    drop(net);
    r
}
