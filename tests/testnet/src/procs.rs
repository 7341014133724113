//! Child processes that cannot outlive us.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
//! the process. Test harnesses run each test on its own short-lived thread, so
//! every child is forked from one dedicated thread that never exits: the
//! daemons then die exactly when this process dies, however it dies.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();

fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("timb-testnet-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop never ends and the
                // thread (the children's "parent" for PDEATHSIG) never exits.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("spawning the timb-testnet spawner thread");
        tx
    })
}

/// Spawns `cmd` so that it receives SIGKILL when this process dies.
pub(crate) fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (sigemptyset, pthread_sigmask, prctl, setpgid,
    // getppid).
    unsafe {
        cmd.pre_exec(move || {
            // A signal mask is inherited across exec; the `up` binary blocks
            // TERM/INT to sigwait for them, and tor must still see them.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Own process group: a terminal's Ctrl-C reaches only us, and we
            // stop the daemons in order (PDEATHSIG covers our own death).
            libc::setpgid(0, 0);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// One running tor process and where its log is.
pub(crate) struct Daemon {
    pub name: String,
    pub dir: PathBuf,
    pub child: Child,
}

impl Daemon {
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("notice.log")
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// The last lines of this daemon's log and of its stderr, for error reports.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for path in [self.log_path(), self.dir.join("stderr.log")] {
            let tail = tail_lines(&path, lines);
            if !tail.trim().is_empty() {
                out.push_str(&format!(
                    "--- {} ({}) ---\n{tail}",
                    self.name,
                    path.display()
                ));
                if !tail.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out
    }
}

pub(crate) fn tail_lines(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut buf = Vec::new();
    let _ = f.take(MAX).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut s = all[start..].join("\n");
    s.push('\n');
    s
}

/// SIGTERM everyone, wait up to `grace`, then SIGKILL whoever is left (tor
/// authorities sometimes hang on SIGTERM).
pub(crate) fn shutdown(daemons: &mut [Daemon], grace: Duration) {
    if !grace.is_zero() {
        for d in daemons.iter_mut() {
            if d.child.try_wait().ok().flatten().is_none() {
                // SAFETY: signalling our own un-reaped child; its pid cannot
                // have been reused because we have not waited for it yet.
                unsafe { libc::kill(d.child.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && daemons
                .iter_mut()
                .any(|d| d.child.try_wait().ok().flatten().is_none())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for d in daemons.iter_mut() {
        if d.child.try_wait().ok().flatten().is_none() {
            let _ = d.child.kill();
        }
        let _ = d.child.wait();
    }
}
