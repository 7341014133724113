//! The bundle's pluggable transport (lyrebird, for obfs4 bridges), started outside the
//! sandbox.
//!
//! The confined messenger cannot start a program (seccomp refuses `execve`) and what it
//! started could not listen (Landlock refuses TCP `bind`; both are inherited). So, as for
//! "Restart to update" (restart.rs), a helper is forked first, while the process has one
//! thread, sharing only a Unix socket with the messenger (every other inherited file is
//! closed in it). Asked ("obfs4", at each Tor start through an obfs4 bridge), it answers
//! the SOCKS address of its lyrebird, starting it first if none runs (a lyrebird that died
//! is started again), with the protocol's environment and nothing of timb's
//! (`timb_tor::pt::launch`, with a deadline); arti then uses that address as a running
//! transport. When the messenger goes (the socket closes) the helper closes lyrebird's
//! stdin, which ends it (`TOR_PT_EXIT_ON_STDIN_CLOSE`), kills it, and exits. It can start
//! that one program and do nothing else.

#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;

#[cfg(unix)]
static HELPER: std::sync::OnceLock<std::sync::Mutex<std::os::unix::net::UnixStream>> =
    std::sync::OnceLock::new();

/// What the messenger asks for.
#[cfg(unix)]
const ASK_OBFS4: &[u8] = b"obfs4\n";

/// How long lyrebird may take to say where it listens (it takes well under a second).
#[cfg(unix)]
const LAUNCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Forks the helper that starts `lyrebird` (keeping its state in `state_dir`) on request.
/// Call it while the process has one thread, before the sandbox.
#[cfg(unix)]
pub fn start_helper(lyrebird: PathBuf, state_dir: PathBuf) {
    let Ok((mine, theirs)) = std::os::unix::net::UnixStream::pair() else {
        return;
    };
    // SAFETY: called while the process has a single thread (see above), so the child
    // is a complete copy that may run ordinary Rust code.
    match unsafe { libc::fork() } {
        0 => {
            drop(mine);
            close_others(&theirs);
            helper(theirs, &lyrebird, &state_dir)
        }
        pid if pid > 0 => {
            drop(theirs);
            let _ = HELPER.set(std::sync::Mutex::new(mine));
        }
        _ => {}
    }
}

/// In the helper: closes every inherited file but stdio and `keep` (the restart helper's
/// pipe among them, which must close when the messenger exits, not when this helper does).
#[cfg(unix)]
fn close_others(keep: &std::os::unix::net::UnixStream) {
    use std::os::fd::AsRawFd;
    let keep = keep.as_raw_fd();
    // Listed first, then closed: the listing's own descriptor is among them.
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        if fd > 2 && fd != keep {
            // SAFETY: closing a descriptor this forked copy inherited and never uses.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(unix)]
fn helper(mut socket: std::os::unix::net::UnixStream, lyrebird: &Path, state: &Path) -> ! {
    use std::io::{Read, Write};
    let mut running: Option<(std::process::Child, std::net::SocketAddr)> = None;
    let mut asked = [0u8; ASK_OBFS4.len()];
    // Until the messenger goes (end of file) or asks something else.
    while socket.read_exact(&mut asked).is_ok() && asked == ASK_OBFS4 {
        // One that died is started again.
        if let Some((child, _)) = &mut running {
            if !matches!(child.try_wait(), Ok(None)) {
                running = None;
            }
        }
        if running.is_none() {
            match timb_tor::pt::launch(lyrebird, timb_tor::bridges::OBFS4, state, LAUNCH_DEADLINE) {
                Ok(started) => running = Some(started),
                Err(e) => {
                    let _ = socket.write_all(format!("error {e}\n").as_bytes());
                    continue;
                }
            }
        }
        if let Some((_, addr)) = &running {
            if socket.write_all(format!("ok {addr}\n").as_bytes()).is_err() {
                break;
            }
        }
    }
    if let Some((child, _)) = running {
        timb_tor::pt::stop(child);
    }
    // SAFETY: _exit ends this forked copy without running the messenger's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Asks the helper for the obfs4 transport: its SOCKS address, or why not (in words that
/// are the helper's or the transport's, cleaned for the window). Blocks until lyrebird is
/// ready (at most [`LAUNCH_DEADLINE`] and a little more).
#[cfg(unix)]
pub fn obfs4() -> Result<std::net::SocketAddr, String> {
    use std::io::{BufRead, Read, Write};
    let Some(helper) = HELPER.get() else {
        return Err("this timb has no obfs4 transport (lyrebird) in its bundle".into());
    };
    let mut socket = helper
        .lock()
        .map_err(|_| "the transport helper is unusable".to_string())?;
    // A helper that hangs must not hang Tor.
    let _ = socket.set_read_timeout(Some(LAUNCH_DEADLINE + std::time::Duration::from_secs(10)));
    let mut line = String::new();
    socket
        .write_all(ASK_OBFS4)
        .and_then(|()| {
            std::io::BufReader::new(&mut *socket)
                .take(1024)
                .read_line(&mut line)
        })
        .map_err(|e| format!("the transport helper did not answer ({})", e.kind()))?;
    match line.trim_end().split_once(' ') {
        Some(("ok", addr)) => addr
            .parse::<std::net::SocketAddr>()
            .ok()
            .filter(|a| a.ip().is_loopback())
            .ok_or_else(|| "the transport helper gave no loopback address".to_string()),
        // The transport's own words may be anything: no control or direction characters.
        Some(("error", e)) => Err(crate::state::sanitize(e).chars().take(300).collect()),
        _ => Err("the transport helper ended without an answer".into()),
    }
}

/// How arti reaches obfs4 for this timb. Where timb confines itself (Unix), through the
/// helper's running lyrebird; elsewhere timb is not confined, and arti starts the
/// lyrebird beside timb itself, as a managed transport.
pub fn obfs4_for_arti() -> Result<timb_tor::Transports, String> {
    #[cfg(unix)]
    {
        obfs4().map(timb_tor::Transports::obfs4_running)
    }
    #[cfg(not(unix))]
    {
        let t = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(timb_tor::Transports::in_dir))
            .filter(timb_tor::Transports::has_obfs4);
        t.ok_or_else(|| "this timb has no obfs4 transport (lyrebird) in its bundle".into())
    }
}

#[cfg(not(unix))]
pub fn start_helper(_: PathBuf, _: PathBuf) {}
