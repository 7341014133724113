//! "Restart to update" in a process that may not run programs: the sandbox's seccomp
//! filter refuses `execve`, so the confined messenger cannot start the launcher itself.
//!
//! Before confining itself, the messenger forks a small helper that shares only a pipe
//! with it. "Restart to update" writes one byte; the helper then waits until the pipe
//! closes and the messenger has gone (so the new version's Tor state is not locked; the
//! kernel closes an exiting process's files before it re-parents its children, so end of
//! file alone came too early in CI) and replaces itself with the bundle's launcher, which starts the
//! version `app/current` now names. Without the byte (a plain quit, a crash, a kill) the
//! helper exits. It can be told nothing but "restart", and it runs the launcher only.
//!
//! Chosen over making the launcher wait for the messenger and restart it on an exit
//! code: the launcher would stay as a parent for the whole session, and it can neither
//! forward signals nor notice its child's death without more than the standard library.

use std::path::PathBuf;

#[cfg(unix)]
static HELPER: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// The byte that asks for a restart.
#[cfg(unix)]
const RESTART: u8 = b'R';

/// Forks the helper that will start `launcher` on request. Call it first in `main`,
/// while the process has one thread (forking later would copy locks other threads hold).
#[cfg(unix)]
pub fn start_helper(launcher: PathBuf) {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (read_end, write_end) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: called while the process has a single thread (see above), so the child
    // is a complete copy that may run ordinary Rust code.
    match unsafe { libc::fork() } {
        0 => {
            drop(write_end);
            // SAFETY: getppid has no arguments and cannot fail.
            let messenger = unsafe { libc::getppid() };
            helper(read_end, launcher, messenger)
        }
        pid if pid > 0 => {
            drop(read_end);
            let _ = HELPER.set(write_end);
        }
        _ => {}
    }
}

#[cfg(unix)]
fn helper(mut pipe: std::fs::File, launcher: PathBuf, messenger: libc::pid_t) -> ! {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut byte = [0u8; 1];
    let asked = matches!(pipe.read(&mut byte), Ok(1)) && byte[0] == RESTART;
    if asked {
        // Until end of file: the messenger is exiting (its files are closed)...
        let mut rest = [0u8; 64];
        while matches!(pipe.read(&mut rest), Ok(n) if n > 0) {}
        drop(pipe);
        // ...and until it has gone: the kernel closes a process's files before it hands
        // its children to another parent, so wait for that too (at most 10 s).
        for _ in 0..500 {
            // SAFETY: as above.
            if unsafe { libc::getppid() } != messenger {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let e = std::process::Command::new(&launcher)
            .stdin(std::process::Stdio::null())
            .exec();
        eprintln!("timb: could not start the new version: {e}");
    }
    // SAFETY: _exit ends this forked copy without running the messenger's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Asks the helper to start the launcher once this process has exited. False when
/// there is no helper (not in a bundle, not Unix, or it is gone).
pub fn request() -> bool {
    #[cfg(unix)]
    {
        use std::io::Write;
        if let Some(mut pipe) = HELPER.get() {
            return pipe.write_all(&[RESTART]).is_ok();
        }
    }
    false
}

#[cfg(not(unix))]
pub fn start_helper(_: PathBuf) {}
