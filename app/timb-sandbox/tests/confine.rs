//! The sandbox applied for real: this test binary runs itself again as a child that
//! confines itself and then tries what an exploit would (`timb_sandbox::probe`).
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use timb_sandbox::{Allowed, Status};

const CHILD: &str = "TIMB_SANDBOX_TEST_CHILD";

/// The child's side: confine to `profile`, probe, print the report.
#[test]
fn child() {
    let Some(root) = std::env::var_os(CHILD) else {
        return;
    };
    let root = Path::new(&root);
    let status = timb_sandbox::confine(&Allowed::desktop(vec![root.join("profile")]));
    println!("sandbox-status: {status:?}");
    let outcomes = timb_sandbox::probe::run(
        &root.join("home/secret"),
        &root.join("outside"),
        &root.join("profile"),
    );
    println!("{}", timb_sandbox::probe::report(&outcomes));
}

fn run_child(root: &Path, disable: bool) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, root)
        .env("HOME", root.join("home"));
    if disable {
        cmd.env(timb_sandbox::DISABLE_ENV, "1");
    } else {
        cmd.env_remove(timb_sandbox::DISABLE_ENV);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        // libtest prints "test child ... " before the child's first line.
        .find_map(|l| l.find(prefix).map(|i| &l[i + prefix.len()..]))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .trim()
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for d in ["home", "outside", "profile"] {
        std::fs::create_dir(t.path().join(d)).unwrap();
    }
    std::fs::write(t.path().join("home/secret"), b"private key").unwrap();
    t
}

#[test]
fn confined_the_process_cannot_read_home_write_outside_run_a_shell_or_open_udp() {
    if timb_sandbox::landlock_abi() < 1 {
        eprintln!("skipped: this kernel has no Landlock");
        return;
    }
    let t = tree();
    let text = run_child(t.path(), false);
    assert_eq!(
        line(&text, "sandbox-status:"),
        format!("{:?}", Status::Confined)
    );
    let eacces = libc::EACCES;
    let eperm = libc::EPERM;
    assert_eq!(
        line(&text, "sandbox-probe:"),
        format!(
            "read_home_secret=refused({eacces}) write_outside=refused({eacces}) \
             write_profile=allowed exec_shell=refused({eperm}) udp_socket=refused({eperm}) \
             tcp_socket=allowed"
        )
    );
    assert!(!t.path().join("outside/timb-probe-outside").exists());
    assert!(t.path().join("profile/timb-probe-inside").exists());
}

#[test]
fn turned_off_everything_is_allowed_and_the_status_says_so() {
    let t = tree();
    let text = run_child(t.path(), true);
    assert_eq!(line(&text, "sandbox-status:"), "Disabled");
    assert_eq!(
        line(&text, "sandbox-probe:"),
        "read_home_secret=allowed write_outside=allowed write_profile=allowed \
         exec_shell=allowed udp_socket=allowed tcp_socket=allowed"
    );
}
