//! The client side of Tor's pluggable-transport launch protocol (pt-spec, "managed proxy",
//! version 1), for a transport program timb starts itself.
//!
//! Why not arti's own launcher (tor-ptmgr's managed transports): timb confines itself
//! before Tor starts, and its sandbox refuses `execve` and TCP `bind`, both inherited by
//! children. So the program (lyrebird) is started by a helper forked before confinement
//! (app/timb's `transports.rs`), which uses this module to set the program's environment
//! and read back the SOCKS address it listens on; arti is then given that address as an
//! unmanaged transport ([`crate::Transports::obfs4_running`]).

use std::ffi::OsString;
use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::Path;

/// At most this many lines before `CMETHODS DONE`: a transport that says more is not one.
const MAX_LINES: usize = 64;
/// At most this many bytes in a line.
const MAX_LINE: usize = 1024;

/// The environment a managed client transport is started with (and nothing else of
/// timb's): the protocol version, where it may keep state, which transports to offer,
/// and that it must exit when its stdin closes (so it never outlives timb).
pub fn client_env(transports: &[&str], state_dir: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("TOR_PT_MANAGED_TRANSPORT_VER", "1".into()),
        ("TOR_PT_STATE_LOCATION", state_dir.as_os_str().to_owned()),
        ("TOR_PT_CLIENT_TRANSPORTS", transports.join(",").into()),
        ("TOR_PT_EXIT_ON_STDIN_CLOSE", "1".into()),
    ]
}

/// One line a transport prints on its stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtLine {
    Version,
    VersionError(String),
    EnvError(String),
    /// `CMETHOD NAME socks5 ADDR`: the transport NAME listens on ADDR.
    Cmethod {
        name: String,
        addr: SocketAddr,
    },
    CmethodError {
        name: String,
        message: String,
    },
    CmethodsDone,
    /// LOG, STATUS, PROXY lines and anything newer: not ours to act on.
    Other,
}

/// Why a transport did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PtError {
    #[error("the transport program refused the protocol version: {0}")]
    Version(String),
    #[error("the transport program found its environment wrong: {0}")]
    Env(String),
    #[error("the {name} transport could not start: {message}")]
    Method { name: String, message: String },
    #[error("the transport program gave no {0} address")]
    NoMethod(String),
    #[error("the transport program said something that is not the protocol: {0:?}")]
    Garbled(String),
    #[error("the transport program ended before it was ready")]
    Ended,
    #[error("the transport program was not ready after {0} s")]
    Timeout(u64),
    #[error("reading from the transport program: {0}")]
    Io(String),
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Reads one line of the protocol.
pub fn parse_line(line: &str) -> Result<PtLine, PtError> {
    let mut words = line.split_whitespace();
    let rest = |words: std::str::SplitWhitespace<'_>| clip(&words.collect::<Vec<_>>().join(" "));
    Ok(match words.next() {
        Some("VERSION") => match words.next() {
            Some("1") => PtLine::Version,
            other => PtLine::VersionError(clip(other.unwrap_or_default())),
        },
        Some("VERSION-ERROR") => PtLine::VersionError(rest(words)),
        Some("ENV-ERROR") => PtLine::EnvError(rest(words)),
        Some("CMETHOD") => {
            let (Some(name), Some(proto), Some(addr)) = (words.next(), words.next(), words.next())
            else {
                return Err(PtError::Garbled(clip(line)));
            };
            // timb speaks SOCKS5 to the transport: arti's transports do.
            if proto != "socks5" {
                return Err(PtError::Garbled(clip(line)));
            }
            let addr: SocketAddr = addr.parse().map_err(|_| PtError::Garbled(clip(line)))?;
            // A transport listens on this machine only; anything else is not a transport's
            // address, and arti would connect to it outside Tor.
            if !addr.ip().is_loopback() {
                return Err(PtError::Garbled(clip(line)));
            }
            PtLine::Cmethod {
                name: name.to_string(),
                addr,
            }
        }
        Some("CMETHOD-ERROR") => {
            let name = words.next().unwrap_or_default().to_string();
            PtLine::CmethodError {
                name: clip(&name),
                message: rest(words),
            }
        }
        Some("CMETHODS") if words.next() == Some("DONE") => PtLine::CmethodsDone,
        _ => PtLine::Other,
    })
}

/// Starts `program` as a managed client transport offering `transport`, with the
/// protocol's environment and nothing of the caller's, and waits until it is ready, at
/// most `deadline`. Returns the running program (its stdin held open: closing it ends the
/// program) and the SOCKS address it listens on. A program that fails to start, or says
/// nothing usable in time, is killed.
pub fn launch(
    program: &Path,
    transport: &str,
    state_dir: &Path,
    deadline: std::time::Duration,
) -> Result<(std::process::Child, SocketAddr), PtError> {
    use std::process::{Command, Stdio};
    std::fs::create_dir_all(state_dir)
        .map_err(|e| PtError::Io(format!("making the transport's state folder: {e}")))?;
    let mut child = Command::new(program)
        .env_clear()
        .envs(client_env(&[transport], state_dir))
        .current_dir(state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| PtError::Io(format!("starting {}: {e}", program.display())))?;
    let Some(out) = child.stdout.take() else {
        stop(child);
        return Err(PtError::Ended);
    };
    // Read on a thread of its own, so a program that says nothing cannot hold the caller.
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = transport.to_owned();
    std::thread::spawn(move || {
        let mut out = std::io::BufReader::new(out);
        let said = read_socks_addr(&mut out, &wanted);
        let ok = said.is_ok();
        let _ = tx.send(said);
        if ok {
            // Keep reading what it says later (LOG and STATUS lines): a Go program whose
            // stdout is closed dies of SIGPIPE at its next line.
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        }
    });
    let said = rx
        .recv_timeout(deadline)
        .unwrap_or(Err(PtError::Timeout(deadline.as_secs())));
    match said {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            stop(child);
            Err(e)
        }
    }
}

/// Ends a transport [`launch`] started: its stdin closed (what the protocol asks it to
/// exit on), then killed and waited for, so nothing is left behind.
pub fn stop(mut child: std::process::Child) {
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads the transport's stdout until it is ready: the SOCKS address of `transport`.
pub fn read_socks_addr(mut out: impl BufRead, transport: &str) -> Result<SocketAddr, PtError> {
    let mut found = None;
    let mut line = Vec::new();
    for _ in 0..MAX_LINES {
        line.clear();
        let n = (&mut out)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| PtError::Io(e.to_string()))?;
        if n == 0 {
            return Err(PtError::Ended);
        }
        if line.len() > MAX_LINE {
            return Err(PtError::Garbled("a line too long".into()));
        }
        let text = String::from_utf8_lossy(&line);
        // Another transport's lines are not ours to judge (a program may offer several).
        let mut words = text.split_whitespace();
        if matches!(words.next(), Some("CMETHOD" | "CMETHOD-ERROR"))
            && words.next() != Some(transport)
        {
            continue;
        }
        match parse_line(text.trim_end())? {
            PtLine::VersionError(e) => return Err(PtError::Version(e)),
            PtLine::EnvError(e) => return Err(PtError::Env(e)),
            PtLine::CmethodError { name, message } => {
                return Err(PtError::Method { name, message })
            }
            PtLine::Cmethod { name, addr } if name == transport => found = Some(addr),
            PtLine::CmethodsDone => {
                return found.ok_or_else(|| PtError::NoMethod(transport.to_string()))
            }
            _ => {}
        }
    }
    Err(PtError::Garbled(format!(
        "no CMETHODS DONE in {MAX_LINES} lines"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_that_starts_gives_its_address() {
        let out = "VERSION 1\nLOG SEVERITY=notice MESSAGE=\"hello\"\nCMETHOD obfs4 socks5 127.0.0.1:40123\nCMETHOD meek_lite socks4 192.0.2.1:40124\nCMETHOD-ERROR webtunnel no\nCMETHODS DONE\n";
        assert_eq!(
            read_socks_addr(out.as_bytes(), "obfs4"),
            Ok("127.0.0.1:40123".parse().unwrap())
        );
    }

    #[test]
    fn every_way_of_not_starting_is_said() {
        for (out, want) in [
            ("", PtError::Ended),
            ("VERSION 1\n", PtError::Ended),
            (
                "VERSION-ERROR no-version\n",
                PtError::Version("no-version".into()),
            ),
            (
                "ENV-ERROR No TOR_PT_STATE_LOCATION\n",
                PtError::Env("No TOR_PT_STATE_LOCATION".into()),
            ),
            (
                "VERSION 1\nCMETHOD-ERROR obfs4 no such thing\n",
                PtError::Method {
                    name: "obfs4".into(),
                    message: "no such thing".into(),
                },
            ),
            (
                "VERSION 1\nCMETHOD meek_lite socks5 127.0.0.1:1\nCMETHODS DONE\n",
                PtError::NoMethod("obfs4".into()),
            ),
            (
                "CMETHOD obfs4 socks4 127.0.0.1:1\n",
                PtError::Garbled("CMETHOD obfs4 socks4 127.0.0.1:1".into()),
            ),
            (
                "CMETHOD obfs4 socks5 192.0.2.1:1\n",
                PtError::Garbled("CMETHOD obfs4 socks5 192.0.2.1:1".into()),
            ),
            (
                "CMETHOD obfs4 socks5 localhost:1\n",
                PtError::Garbled("CMETHOD obfs4 socks5 localhost:1".into()),
            ),
        ] {
            assert_eq!(
                read_socks_addr(out.as_bytes(), "obfs4"),
                Err(want),
                "{out:?}"
            );
        }
        let chatter = "LOG x\n".repeat(MAX_LINES + 1);
        assert!(matches!(
            read_socks_addr(chatter.as_bytes(), "obfs4"),
            Err(PtError::Garbled(_))
        ));
        let long = format!("LOG {}\n", "x".repeat(5000));
        assert!(matches!(
            read_socks_addr(long.as_bytes(), "obfs4"),
            Err(PtError::Garbled(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_program_that_says_nothing_is_stopped_at_the_deadline() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("silent");
        std::fs::write(&program, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = std::time::Instant::now();
        let r = launch(
            &program,
            "obfs4",
            &dir.path().join("state"),
            std::time::Duration::from_secs(1),
        );
        assert_eq!(r.map(|(_, a)| a), Err(PtError::Timeout(1)));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_environment_is_the_protocols_only() {
        let env = client_env(&["obfs4"], Path::new("/p/tor/pt_state"));
        let keys: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "TOR_PT_MANAGED_TRANSPORT_VER",
                "TOR_PT_STATE_LOCATION",
                "TOR_PT_CLIENT_TRANSPORTS",
                "TOR_PT_EXIT_ON_STDIN_CLOSE"
            ]
        );
        assert_eq!(env[1].1, "/p/tor/pt_state");
        assert_eq!(env[2].1, "obfs4");
    }
}
