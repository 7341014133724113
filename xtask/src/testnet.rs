//! The shared private Tor network (tests/testnet) that the test suite, the benchmarks and the
//! screenshots run against, started once per command.

use anyhow::{bail, Context, Result};
use pipeline::util;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct TestNetProcess {
    child: Child,
    pub config: PathBuf,
}

impl Drop for TestNetProcess {
    fn drop(&mut self) {
        // Closing stdin asks it to tear the network down; then make sure.
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the shared private Tor network once for the whole run.
pub fn start_testnet(root: &Path) -> Result<Option<TestNetProcess>> {
    if !root.join("tests/testnet/Cargo.toml").is_file() {
        return Ok(None);
    }
    util::run(util::cargo().current_dir(root).args([
        "build",
        "--locked",
        "--quiet",
        "--package",
        "timb-testnet",
    ]))?;
    let bin = util::cargo_target_dir(root).join("debug/timb-testnet");
    let dir = std::env::temp_dir().join(format!("timb-testnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("    starting the private Tor network (typically 30-60 s)");
    let mut child = Command::new(&bin)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let config = PathBuf::from(line.trim());
    if !config.is_file() {
        let _ = child.kill();
        bail!(
            "the private Tor network did not come up (logs in {})",
            dir.display()
        );
    }
    eprintln!("    private Tor network ready: {}", config.display());
    Ok(Some(TestNetProcess { child, config }))
}
