//! What the updater's tests share: the repository and its server ([`repo`], shared with the
//! window's update test), the test client, and store snapshots.
// Shared by several test binaries, each using part of it.
#![allow(dead_code)]

pub mod repo;
pub use repo::*;

use std::collections::BTreeMap;
use std::path::Path;
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

/// Every file of the store folder and its bytes.
pub fn store_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}
