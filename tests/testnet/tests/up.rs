//! The `timb-testnet up` binary as `cargo xtask test` drives it: the first
//! stdout line is the network file, and the daemons die with the binary even
//! when it is SIGKILLed (PR_SET_PDEATHSIG), so nothing outlives a crash.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use timb_testnet::NetInfo;

fn daemon_pids(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(e.path().join("pid")) {
            pids.push(s.trim().parse().unwrap());
        }
    }
    pids
}

/// Running and not a zombie (a zombie is dead; whether it is reaped depends on
/// the machine's init, not on us).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[test]
fn up_prints_the_network_file_and_its_daemons_die_with_it() {
    let dir = std::env::temp_dir().join(format!(
        "timb-testnet-uptest-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_timb-testnet"))
        .args(["up", "--dir"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn timb-testnet up");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let path = PathBuf::from(line.trim());
    assert_eq!(path, dir.join("network.toml"), "first stdout line");
    let info = NetInfo::load(&path).expect("network file parses");
    assert_eq!(info.harness.data_dir, dir);

    let pids = daemon_pids(&dir);
    assert_eq!(
        pids.len(),
        info.relays.len() + 2,
        "relays + client + onions"
    );
    assert!(pids.iter().all(|&p| alive(p)));

    // No teardown by the binary at all: the kernel must kill the daemons.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        left.is_empty(),
        "daemons outlived a SIGKILLed parent: {left:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
