//! What the updater's tests share: the repository and its server ([`repo`], shared with the
//! window's update test), the test client, and store snapshots.
// Shared by several test binaries, each using part of it.
#![allow(dead_code)]

pub mod repo;
pub use repo::*;

use std::process::{Command, Output};

pub fn client() -> Command {
    Command::new(env!("CARGO_BIN_EXE_timb-update"))
}

pub struct Run {
    pub ok: bool,
    pub stderr: String,
    pub out: Output,
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        out,
    }
}

/// `r` ended by SIGKILL (the test client's stop point), at step `step`.
pub fn assert_killed(r: &Run, step: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        r.out.status.signal(),
        Some(9),
        "{step}: not killed: {}",
        r.stderr
    );
}
