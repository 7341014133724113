//! The bundle's pluggable transport (lyrebird, for obfs4 bridges), started outside the
//! sandbox.
//!
//! The confined messenger cannot start a program (seccomp refuses `execve`) and what it
//! started could not listen (Landlock refuses TCP `bind`; both are inherited). So, as for
//! "Restart to update" (restart.rs), a helper is forked first, while the process has one
//! thread, sharing only a Unix socket with the messenger. Asked ("obfs4"), it starts the
//! bundle's lyrebird with the protocol's environment and nothing of timb's, reads the
//! SOCKS address lyrebird listens on (`timb_tor::pt`), and answers with it; arti then
//! uses it as an unmanaged transport. When the messenger goes (the socket closes) the
//! helper closes lyrebird's stdin, which ends it (`TOR_PT_EXIT_ON_STDIN_CLOSE`), and
//! exits. It can start that one program, once, and do nothing else.

#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;

#[cfg(unix)]
static HELPER: std::sync::OnceLock<std::sync::Mutex<std::os::unix::net::UnixStream>> =
    std::sync::OnceLock::new();

/// What the messenger asks for.
#[cfg(unix)]
const ASK_OBFS4: &[u8] = b"obfs4\n";

/// Forks the helper that starts `lyrebird` (keeping its state in `state_dir`) on request.
/// Call it in `main` while the process has one thread, before the sandbox.
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
            helper(theirs, &lyrebird, &state_dir)
        }
        pid if pid > 0 => {
            drop(theirs);
            let _ = HELPER.set(std::sync::Mutex::new(mine));
        }
        _ => {}
    }
}

#[cfg(unix)]
fn helper(mut socket: std::os::unix::net::UnixStream, lyrebird: &Path, state: &Path) -> ! {
    use std::io::{Read, Write};
    let mut asked = [0u8; ASK_OBFS4.len()];
    if socket.read_exact(&mut asked).is_ok() && asked == ASK_OBFS4 {
        match timb_tor::pt::launch(lyrebird, timb_tor::bridges::OBFS4, state) {
            Ok((mut child, addr)) => {
                if socket.write_all(format!("ok {addr}\n").as_bytes()).is_ok() {
                    // Until the messenger goes: then lyrebird's stdin closes with ours.
                    let mut rest = [0u8; 64];
                    while matches!(socket.read(&mut rest), Ok(n) if n > 0) {}
                }
                drop(child.stdin.take());
                let _ = child.kill();
                let _ = child.wait();
            }
            Err(e) => {
                let _ = socket.write_all(format!("error {e}\n").as_bytes());
            }
        }
    }
    // SAFETY: _exit ends this forked copy without running the messenger's exit handlers.
    unsafe { libc::_exit(0) }
}

/// The address the helper answered: it starts lyrebird once, for the whole session.
#[cfg(unix)]
static RUNNING: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();

/// Why the helper could not start it: it tries once per session, and says the same after.
#[cfg(unix)]
static FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Asks the helper for the obfs4 transport: its SOCKS address, or why not. Blocks until
/// lyrebird is ready (at most a minute).
#[cfg(unix)]
pub fn obfs4() -> Result<std::net::SocketAddr, String> {
    use std::io::{BufRead, Read, Write};
    let Some(helper) = HELPER.get() else {
        return Err("this timb has no obfs4 transport (lyrebird) in its bundle".into());
    };
    let mut socket = helper
        .lock()
        .map_err(|_| "the transport helper is unusable".to_string())?;
    // Under the lock: a second caller waits for the first answer, then reads it here.
    if let Some(addr) = RUNNING.get() {
        return Ok(*addr);
    }
    if let Some(e) = FAILED.get() {
        return Err(e.clone());
    }
    // lyrebird answers in well under a second; a helper that hangs must not hang Tor.
    let _ = socket.set_read_timeout(Some(std::time::Duration::from_secs(60)));
    let mut line = String::new();
    let asked = socket
        .write_all(ASK_OBFS4)
        .and_then(|()| {
            std::io::BufReader::new(&mut *socket)
                .take(1024)
                .read_line(&mut line)
        })
        .map_err(|e| format!("the transport helper did not answer: {e}"));
    let answer = asked.and_then(|_| match line.trim_end().split_once(' ') {
        Some(("ok", addr)) => addr
            .parse::<std::net::SocketAddr>()
            .map_err(|_| "the transport helper gave no address".to_string()),
        Some(("error", e)) => Err(e.to_string()),
        _ => Err("the transport helper ended without an answer".into()),
    });
    match answer {
        Ok(addr) => Ok(*RUNNING.get_or_init(|| addr)),
        Err(e) => Err(FAILED.get_or_init(|| e).clone()),
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
