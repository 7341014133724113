//! What an exploit inside timb would try first, tried for real: the tests run it inside
//! the confined process (the crate's own test, and the app's debug-only hook) and check
//! every answer. Each probe reports "allowed" or the error the system gave.

use std::path::Path;

/// One attempt and what the system answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub what: &'static str,
    /// `None` when it worked; else the OS error number.
    pub refused: Option<i32>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.refused {
            None => write!(f, "{}=allowed", self.what),
            Some(e) => write!(f, "{}=refused({e})", self.what),
        }
    }
}

fn outcome(what: &'static str, r: std::io::Result<()>) -> Outcome {
    Outcome {
        what,
        refused: r.err().map(|e| e.raw_os_error().unwrap_or(-1)),
    }
}

/// Tries: reading `secret` (a file in the home folder), creating a file in `outside`,
/// creating one in `inside` (the profile: must work), running `/bin/sh`, opening a UDP
/// socket, opening a TCP socket (arti's kind: must work).
pub fn run(secret: &Path, outside: &Path, inside: &Path) -> Vec<Outcome> {
    vec![
        outcome("read_home_secret", std::fs::read(secret).map(drop)),
        outcome(
            "write_outside",
            std::fs::write(outside.join("timb-probe-outside"), b"x"),
        ),
        outcome(
            "write_profile",
            std::fs::write(inside.join("timb-probe-inside"), b"x"),
        ),
        outcome("exec_shell", exec_shell()),
        outcome("udp_socket", socket(libc_consts::SOCK_DGRAM)),
        outcome("tcp_socket", socket(libc_consts::SOCK_STREAM)),
    ]
}

/// One line for a test to parse: `sandbox-probe: a=allowed b=refused(13) ...`.
pub fn report(outcomes: &[Outcome]) -> String {
    let parts: Vec<String> = outcomes.iter().map(|o| o.to_string()).collect();
    format!("sandbox-probe: {}", parts.join(" "))
}

/// `std::process::Command` forks first, so the refused `execve` happens in the child and
/// comes back as the spawn's error.
fn exec_shell() -> std::io::Result<()> {
    std::process::Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .status()
        .map(drop)
}

#[cfg(unix)]
mod libc_consts {
    pub const SOCK_STREAM: i32 = libc::SOCK_STREAM;
    pub const SOCK_DGRAM: i32 = libc::SOCK_DGRAM;
}
#[cfg(not(unix))]
mod libc_consts {
    pub const SOCK_STREAM: i32 = 1;
    pub const SOCK_DGRAM: i32 = 2;
}

/// Creates (and closes) an IPv4 socket of `kind`; connects nowhere.
#[cfg(target_os = "linux")]
#[allow(
    clippy::disallowed_methods,
    reason = "the probe checks that the sandbox refuses a UDP socket; it connects nowhere"
)]
fn socket(kind: i32) -> std::io::Result<()> {
    // SAFETY: socket(2) takes plain integers; the descriptor it returns is closed at once.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is ours, open, and not used again.
    unsafe { libc::close(fd) };
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn socket(_: i32) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
