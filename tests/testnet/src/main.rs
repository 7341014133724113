//! `timb-testnet up --dir DIR`: starts a private Tor network, prints the path
//! of its network file as the first line on stdout once it is usable, and
//! keeps it up until SIGTERM/SIGINT/SIGHUP or until its stdin (a pipe or a
//! terminal) closes; then stops every daemon. `cargo xtask test` runs one for
//! the whole suite and exports the path as `TIMB_TESTNET`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;
use timb_testnet::{Options, TestNet};

const USAGE: &str = "usage: timb-testnet up --dir DIR [--relays N] [--exits N] [--timeout SECS]

Starts a private Tor network on 127.0.0.1 (Debian's tor), prints the network
file's path once the network is usable, and stops it on SIGTERM/SIGINT or when
stdin (a pipe or terminal) closes. DIR must be new or empty; logs stay there.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("timb-testnet: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Block the stop signals before any thread exists, so every thread
    // inherits the mask and only the sigwait thread below receives them.
    let stop_signals = signal_set();
    // SAFETY: a valid, initialised sigset; no old mask is requested.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &stop_signals, std::ptr::null_mut()) };

    let (tx, rx) = mpsc::channel::<String>();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: valid set and out pointer.
            if unsafe { libc::sigwait(&stop_signals, &mut sig) } == 0 {
                let _ = tx.send(format!("signal {sig}"));
            }
        });
    }

    let net = match TestNet::start(opts) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("timb-testnet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", net.config_path().display());
    let _ = out.flush();
    drop(out);
    eprintln!(
        "timb-testnet: ready in {:.1} s ({:.1} CPU-s for the daemons so far), socks 127.0.0.1:{}",
        net.info().harness.ready_secs,
        net.daemons_cpu_secs(),
        net.info().harness.socks_port
    );

    if stdin_is_watchable() {
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send("stdin closed".into());
        });
    }

    let code = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(why) => {
                eprintln!("timb-testnet: {why}; stopping");
                break ExitCode::SUCCESS;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = net.check_alive() {
                    eprintln!("timb-testnet: network broke: {e}");
                    break ExitCode::FAILURE;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break ExitCode::SUCCESS,
        }
    };
    net.stop();
    code
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("up") => {}
        Some("-h" | "--help") => return Err("help".into()),
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command".into()),
    }
    let mut opts = Options::default();
    let mut dir = None;
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--relays" => opts.relays = value()?.parse().map_err(|e| format!("--relays: {e}"))?,
            "--exits" => opts.exits = value()?.parse().map_err(|e| format!("--exits: {e}"))?,
            "--timeout" => {
                let secs: u64 = value()?.parse().map_err(|e| format!("--timeout: {e}"))?;
                opts.ready_timeout = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    opts.dir = Some(dir.ok_or("--dir DIR is required")?);
    Ok(opts)
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset with valid signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// EOF on a pipe or terminal means our owner went away; /dev/null or a file
/// (e.g. a CI job without stdin) is at EOF from the start and means nothing.
fn stdin_is_watchable() -> bool {
    // SAFETY: fstat/isatty on fd 0 with a valid out pointer.
    unsafe {
        if libc::isatty(0) == 1 {
            return true;
        }
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut st) != 0 {
            return false;
        }
        let kind = st.st_mode & libc::S_IFMT;
        kind == libc::S_IFIFO || kind == libc::S_IFSOCK
    }
}
