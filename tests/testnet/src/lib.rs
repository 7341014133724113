//! A private Tor network on 127.0.0.1 built from Debian's `tor` and
//! `tor-gencert`: three directory authorities, relays (two of them exits),
//! a c-tor client with a SOCKS port and a c-tor instance hosting the
//! well-known onion services. Tests reach it through [`TestNet::shared`];
//! `timb-tor` reads the network file it writes (see README.md).
//!
//! Every daemon is killed when the process that started it dies, even on
//! abort (PR_SET_PDEATHSIG), so a crashed test never leaves tor running.

pub mod bridge;
mod ctor;
pub mod info;
mod keys;
mod ports;
mod procs;
mod socks;
mod torrc;

pub use bridge::Bridge;
pub use ctor::{ControlEvents, CtorClient};
pub use info::{
    exit_port_index, AuthorityInfo, HarnessInfo, NetInfo, NetworkParams, OnionServiceInfo,
    RelayInfo, ONION_SERVICE_NAMES,
};
pub use socks::{echo_roundtrip, socks5_connect, EchoServer};

use ports::PortBlock;
use procs::{spawn_tied, Daemon};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable naming the network file of a network that is already
/// running (set by `cargo xtask test`).
pub const ENV_NETWORK_FILE: &str = "TIMB_TESTNET";
/// Set to keep a private network's directory (logs) after the process exits.
pub const ENV_KEEP: &str = "TIMB_TESTNET_KEEP";
/// Set to make every daemon also write an info-level log (`info.log`).
pub const ENV_INFO_LOGS: &str = "TIMB_TESTNET_INFO_LOGS";
/// Overrides how long to wait for the network to become usable.
pub const ENV_READY_TIMEOUT: &str = "TIMB_TESTNET_READY_TIMEOUT_SECS";

const N_AUTHORITIES: usize = 3;
const LOG_TAIL_LINES: usize = 20;

// Offsets inside the network's port block.
const OFF_AUTH_OR: u16 = 0;
const OFF_AUTH_DIR: u16 = 3;
const OFF_RELAY_OR: u16 = 6;
const MAX_RELAYS: usize = 14;
const OFF_SOCKS: u16 = 20;
/// An exit port only the harness's own readiness check uses.
const OFF_CHECK: u16 = 21;
const OFF_EXIT_PORTS: u16 = 30;
const N_EXIT_PORTS: u16 = 30;
const OFF_ONION_TARGETS: u16 = 60;

// The layout must fit the block and the exit ports must cover every reserved index.
const _: () = assert!(OFF_RELAY_OR + MAX_RELAYS as u16 <= OFF_SOCKS);
const _: () = assert!(OFF_EXIT_PORTS + N_EXIT_PORTS <= OFF_ONION_TARGETS);
const _: () = assert!(OFF_ONION_TARGETS + ONION_SERVICE_NAMES.len() as u16 <= ports::BLOCK_SIZE);
const _: () = assert!(N_EXIT_PORTS as usize >= exit_port_index::REAL_WINDOW.end);

/// Virtual ports of the well-known onion services, in [`ONION_SERVICE_NAMES`] order.
/// "update" is the updater's repository mirror (tests/update-client), "app-update" the one
/// the window's update check reaches (app/timb/tests/gui_update.rs).
const ONION_VIRTUAL_PORTS: [u16; 8] = [80, 5222, 6667, 5222, 9000, 80, 80, 80];

/// A harness failure, with the relevant daemons' log tails when there are any.
#[derive(Debug, Clone)]
pub struct Error(String);

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub(crate) fn nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// How to start a network.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where data, logs and the network file go. `None`: a private temporary
    /// directory, removed when the network stops (unless `TIMB_TESTNET_KEEP`).
    pub dir: Option<PathBuf>,
    /// Relays besides the authorities; onion circuits need about five usable
    /// relays, so the default gives eight in all.
    pub relays: usize,
    /// How many of `relays` are exits.
    pub exits: usize,
    pub ready_timeout: Duration,
    pub tor: PathBuf,
    pub tor_gencert: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        let ready_timeout = std::env::var(ENV_READY_TIMEOUT)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(300));
        Options {
            dir: None,
            relays: 5,
            exits: 2,
            ready_timeout,
            tor: PathBuf::from("/usr/bin/tor"),
            tor_gencert: PathBuf::from("/usr/bin/tor-gencert"),
        }
    }
}

/// A running (or attached-to) private Tor network.
pub struct TestNet {
    path: PathBuf,
    info: NetInfo,
    owned: Mutex<Option<Owned>>,
}

/// What a network started by this process owns; dropping it stops the network.
struct Owned {
    daemons: Vec<Daemon>,
    ports: PortBlock,
    /// A private directory and the lock that marks it as in use.
    private_dir: Option<(PathBuf, File)>,
    /// Remove the private directory on drop (kept after failures, for logs).
    remove_dir: bool,
    grace: Duration,
}

impl Drop for Owned {
    fn drop(&mut self) {
        procs::shutdown(&mut self.daemons, self.grace);
        if let Some((dir, _lock)) = &self.private_dir {
            if self.remove_dir && std::env::var_os(ENV_KEEP).is_none() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

static SHARED: OnceLock<Result<TestNet, String>> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    if let Some(Ok(net)) = SHARED.get() {
        // try_lock: never block process exit on a thread that holds the lock.
        if let Ok(mut owned) = net.owned.try_lock() {
            if let Some(mut o) = owned.take() {
                o.grace = Duration::ZERO;
                drop(o);
            }
        }
    }
}

impl TestNet {
    /// The network for this test process: the one named by `TIMB_TESTNET` if
    /// set, otherwise a private one started on first use and stopped when the
    /// process exits. Panics (in every caller) if it cannot be had.
    pub fn shared() -> &'static TestNet {
        let result = SHARED.get_or_init(|| match std::env::var_os(ENV_NETWORK_FILE) {
            Some(path) => TestNet::attach(Path::new(&path)).map_err(|e| e.to_string()),
            None => {
                let net = TestNet::start(Options::default()).map_err(|e| e.to_string());
                if net.is_ok() {
                    // SAFETY: registers a plain extern "C" fn with no arguments.
                    unsafe { libc::atexit(stop_shared_at_exit) };
                }
                net
            }
        });
        match result {
            Ok(net) => net,
            Err(e) => panic!("timb-testnet: no test network: {e}"),
        }
    }

    /// Uses a network someone else runs, described by its network file.
    pub fn attach(path: &Path) -> Result<TestNet, Error> {
        let info = NetInfo::load(path)?;
        Ok(TestNet {
            path: path.to_path_buf(),
            info,
            owned: Mutex::new(None),
        })
    }

    /// Starts a network and waits until it is usable: the consensus lists
    /// every relay, the c-tor client reaches a loopback server through an
    /// exit, and every onion service answers through the c-tor client.
    pub fn start(opts: Options) -> Result<TestNet, Error> {
        let t0 = Instant::now();
        if opts.relays > MAX_RELAYS || opts.exits == 0 || opts.exits > opts.relays {
            return Err(Error::new(format!(
                "need 1 <= exits <= relays <= {MAX_RELAYS} (got {} exits, {} relays)",
                opts.exits, opts.relays
            )));
        }
        let (dir, private_dir) = match &opts.dir {
            Some(d) => (prepare_dir(d)?, None),
            None => {
                sweep_stale_private_dirs();
                let (d, lock) = make_private_dir()?;
                (d.clone(), Some((d, lock)))
            }
        };
        let ports = PortBlock::reserve()?;
        let mut owned = Owned {
            daemons: Vec::new(),
            ports,
            private_dir,
            remove_dir: false,
            grace: Duration::from_secs(5),
        };
        let info = launch(&opts, &dir, &mut owned, t0)?;
        owned.remove_dir = true;
        let path = dir.join("network.toml");
        let tmp = dir.join("network.toml.tmp");
        std::fs::write(&tmp, info.to_toml())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::new(format!("writing {}: {e}", path.display())))?;
        Ok(TestNet {
            path,
            info,
            owned: Mutex::new(Some(owned)),
        })
    }

    /// The network file (pass it to `TorConfig::private_network`).
    pub fn config_path(&self) -> &Path {
        &self.path
    }

    pub fn info(&self) -> &NetInfo {
        &self.info
    }

    /// Whether this process started (and will stop) the network.
    pub fn is_owned(&self) -> bool {
        self.owned.lock().map(|o| o.is_some()).unwrap_or(false)
    }

    /// Checks that every daemon this process started still runs; the error
    /// carries the dead daemon's log tail.
    pub fn check_alive(&self) -> Result<(), Error> {
        let mut guard = self.owned.lock().map_err(|_| Error::new("lock poisoned"))?;
        match guard.as_mut() {
            Some(o) => check_daemons(&mut o.daemons),
            None => Ok(()),
        }
    }

    /// CPU seconds (user + system) the daemons this process started have used
    /// so far; 0 for an attached network.
    pub fn daemons_cpu_secs(&self) -> f64 {
        let guard = match self.owned.lock() {
            Ok(g) => g,
            Err(_) => return 0.0,
        };
        guard
            .as_ref()
            .map(|o| o.daemons.iter().map(|d| cpu_secs(d.child.id())).sum())
            .unwrap_or(0.0)
    }

    /// Starts a bridge for this network (see [`bridge`]), its obfs4 listener on `listen`
    /// (127.0.0.1, or an address a censored namespace can reach).
    pub fn start_bridge(&self, listen: std::net::IpAddr) -> Result<Bridge, Error> {
        let opts = Options::default();
        Bridge::start(&self.info, &opts.tor, listen, opts.ready_timeout)
    }

    /// Stops the daemons (TERM, then KILL after a grace period). Also done on drop.
    pub fn stop(&self) {
        let owned = self.owned.lock().ok().and_then(|mut o| o.take());
        drop(owned);
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// utime + stime of a process from /proc, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks / if hz > 0 { hz as f64 } else { 100.0 }
}

fn prepare_dir(d: &Path) -> Result<PathBuf, Error> {
    let d = std::path::absolute(d).map_err(|e| Error::new(format!("{}: {e}", d.display())))?;
    if d.exists() {
        let mut entries =
            std::fs::read_dir(&d).map_err(|e| Error::new(format!("{}: {e}", d.display())))?;
        if entries.next().is_some() {
            return Err(Error::new(format!(
                "{} is not empty; give a new or empty directory",
                d.display()
            )));
        }
    }
    check_utf8(&d)?;
    mkdir(&d)?;
    Ok(d)
}

fn check_utf8(d: &Path) -> Result<(), Error> {
    // The network file stores the path as a TOML string; torrc lines must not break.
    match d.to_str() {
        // torrc values such as `Log notice file PATH` end at whitespace.
        Some(s) if !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') => Ok(()),
        _ => Err(Error::new(format!(
            "{} must be valid UTF-8 without whitespace, quotes or backslashes",
            d.display()
        ))),
    }
}

fn mkdir(d: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|e| Error::new(format!("creating {}: {e}", d.display())))
}

const PRIVATE_PREFIX: &str = "timb-testnet-net-";
const OWNER_LOCK: &str = "owner.lock";

fn lock_file(path: &Path, create: bool) -> Option<File> {
    let file = std::fs::OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    (r == 0).then_some(file)
}

fn make_private_dir() -> Result<(PathBuf, File), Error> {
    let d = std::env::temp_dir().join(format!(
        "{PRIVATE_PREFIX}{}-{:x}",
        std::process::id(),
        nanos()
    ));
    mkdir(&d)?;
    check_utf8(&d)?;
    let lock = lock_file(&d.join(OWNER_LOCK), true)
        .ok_or_else(|| Error::new(format!("cannot lock {}", d.display())))?;
    Ok((d, lock))
}

/// Removes private directories whose owner died without cleaning up (killed,
/// aborted): their owner lock is free.
fn sweep_stale_private_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(PRIVATE_PREFIX) {
            continue;
        }
        let path = e.path();
        if lock_file(&path.join(OWNER_LOCK), false).is_some() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Timestamped progress notes in `DIR/harness.log`, for slow or failed starts.
#[derive(Clone)]
struct Progress {
    t0: Instant,
    file: Arc<Mutex<Option<File>>>,
}

impl Progress {
    fn new(dir: &Path, t0: Instant) -> Progress {
        Progress {
            t0,
            file: Arc::new(Mutex::new(File::create(dir.join("harness.log")).ok())),
        }
    }

    fn note(&self, msg: &str) {
        if let Ok(mut f) = self.file.lock() {
            if let Some(f) = f.as_mut() {
                let _ = writeln!(f, "[{:7.1}s] {msg}", self.t0.elapsed().as_secs_f64());
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Authority,
    Exit,
    Middle,
}

struct RelayNode {
    nickname: String,
    dir: PathBuf,
    role: Role,
    or_port: u16,
    dir_port: u16,
}

struct Identity {
    rsa: String,
    ed: String,
}

fn run_to_completion(
    mut cmd: Command,
    what: &str,
    log: &Path,
) -> Result<std::process::Child, Error> {
    let out = File::create(log).map_err(|e| Error::new(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::new(format!("{}: {e}", log.display())))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    spawn_tied(cmd).map_err(|e| Error::new(format!("starting {what}: {e}")))
}

fn wait_ok(mut child: std::process::Child, what: &str, log: &Path) -> Result<(), Error> {
    let status = child
        .wait()
        .map_err(|e| Error::new(format!("waiting for {what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{what} failed ({status}):\n{}",
            procs::tail_lines(log, LOG_TAIL_LINES)
        )))
    }
}

fn read_file(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("reading {}: {e}", path.display())))
}

/// Second field of a `nickname FINGERPRINT` file, spaces removed.
fn fingerprint_file(path: &Path) -> Result<String, Error> {
    let text = read_file(path)?;
    let fp: String = text
        .split_once(' ')
        .map(|(_, fp)| fp.split_whitespace().collect())
        .unwrap_or_default();
    if fp.is_empty() {
        return Err(Error::new(format!("no fingerprint in {}", path.display())));
    }
    Ok(fp)
}

/// Generates keys, writes torrcs, starts every daemon and waits until usable.
fn launch(opts: &Options, dir: &Path, owned: &mut Owned, t0: Instant) -> Result<NetInfo, Error> {
    let port = |off: u16| owned.ports.port(off);
    let progress = Progress::new(dir, t0);
    progress.note(&format!(
        "port block {}..{}",
        owned.ports.base,
        owned.ports.base + ports::BLOCK_SIZE
    ));
    let empty = dir.join("empty.torrc");
    let resolv = dir.join("resolv.conf");
    std::fs::write(&empty, "")
        .and_then(|()| std::fs::write(&resolv, "nameserver 127.0.0.1\n"))
        .map_err(|e| Error::new(format!("writing into {}: {e}", dir.display())))?;

    let mut relays = Vec::new();
    for i in 0..N_AUTHORITIES {
        relays.push(RelayNode {
            nickname: format!("auth{i}"),
            dir: dir.join(format!("auth{i}")),
            role: Role::Authority,
            or_port: port(OFF_AUTH_OR + i as u16),
            dir_port: port(OFF_AUTH_DIR + i as u16),
        });
    }
    for i in 0..opts.relays {
        let exit = i < opts.exits;
        let nickname = if exit {
            format!("exit{i}")
        } else {
            format!("relay{}", i - opts.exits)
        };
        relays.push(RelayNode {
            dir: dir.join(&nickname),
            nickname,
            role: if exit { Role::Exit } else { Role::Middle },
            or_port: port(OFF_RELAY_OR + i as u16),
            dir_port: 0,
        });
    }

    // Keys: cached ones, else authority certificates and relay identities
    // generated in parallel.
    let cache = keys::cache_root();
    let mut jobs = Vec::new();
    let mut generated = Vec::new();
    for r in &relays {
        mkdir(&r.dir.join("keys"))?;
        if let Some(root) = &cache {
            if keys::restore(root, &r.nickname, &r.dir) {
                continue;
            }
        }
        generated.push(r);
        if r.role == Role::Authority {
            let keys = r.dir.join("keys");
            let mut cmd = Command::new(&opts.tor_gencert);
            cmd.current_dir(&keys)
                // No -a: the certificate must not name ports, so it can be cached.
                .args(["--create-identity-key", "-m", "12"])
                .arg("-i")
                .arg(keys.join("authority_identity_key"))
                .arg("-s")
                .arg(keys.join("authority_signing_key"))
                .arg("-c")
                .arg(keys.join("authority_certificate"))
                // An empty passphrase read from /dev/null.
                .args(["--passphrase-fd", "0"]);
            let log = r.dir.join("gencert.log");
            let what = format!("tor-gencert for {}", r.nickname);
            jobs.push((run_to_completion(cmd, &what, &log)?, what, log));
        }
        let mut cmd = Command::new(&opts.tor);
        cmd.arg("--list-fingerprint")
            .arg("-f")
            .arg(&empty)
            .arg("--defaults-torrc")
            .arg(&empty)
            .arg("--DataDirectory")
            .arg(&r.dir)
            .args(["--Nickname", &r.nickname])
            .args(["--Address", "127.0.0.1"])
            .arg("--ORPort")
            .arg(format!("127.0.0.1:{}", r.or_port))
            .args(["--Log", "notice stdout"]);
        let log = r.dir.join("keygen.log");
        let what = format!("tor --list-fingerprint for {}", r.nickname);
        jobs.push((run_to_completion(cmd, &what, &log)?, what, log));
    }
    for (child, what, log) in jobs {
        wait_ok(child, &what, &log)?;
    }
    if let Some(root) = &cache {
        for r in &generated {
            keys::store(root, &r.nickname, &r.dir);
        }
    }
    progress.note(&format!(
        "keys ready ({} of {} generated)",
        generated.len(),
        relays.len()
    ));
    let mut ids = Vec::new();
    let mut auth_lines = Vec::new();
    for r in &relays {
        let id = Identity {
            rsa: fingerprint_file(&r.dir.join("fingerprint"))?,
            ed: fingerprint_file(&r.dir.join("fingerprint-ed25519"))?,
        };
        if r.role == Role::Authority {
            let cert = read_file(&r.dir.join("keys/authority_certificate"))?;
            let v3ident = cert
                .lines()
                .find_map(|l| l.strip_prefix("fingerprint "))
                .map(|s| s.trim().to_string())
                .ok_or_else(|| {
                    Error::new(format!("no fingerprint in {}'s certificate", r.nickname))
                })?;
            auth_lines.push(torrc::AuthorityLine {
                nickname: r.nickname.clone(),
                or_port: r.or_port,
                dir_port: r.dir_port,
                v3ident,
                rsa_identity: id.rsa.clone(),
            });
        }
        ids.push(id);
    }

    // torrcs.
    let check_port = port(OFF_CHECK);
    let exit_ports: Vec<u16> = (0..N_EXIT_PORTS)
        .map(|i| port(OFF_EXIT_PORTS + i))
        .collect();
    let mut policy_ports = vec![check_port];
    policy_ports.extend(&exit_ports);
    let exit_fingerprints: Vec<&str> = relays
        .iter()
        .zip(&ids)
        .filter(|(r, _)| r.role == Role::Exit)
        .map(|(_, id)| id.rsa.as_str())
        .collect();
    let mut torrcs = Vec::new();
    for r in &relays {
        let mut t = torrc::common(&r.dir, &r.nickname, &auth_lines);
        t.push_str(&torrc::relay(r.or_port, &r.nickname, &resolv));
        t.push_str(&match r.role {
            Role::Authority => torrc::authority(r.dir_port, &exit_fingerprints),
            Role::Exit => torrc::exit(&policy_ports),
            Role::Middle => torrc::middle(),
        });
        torrcs.push((r.nickname.clone(), r.dir.clone(), t));
    }
    let socks_port = port(OFF_SOCKS);
    let client_dir = dir.join("client");
    let mut t = torrc::common(&client_dir, "client", &auth_lines);
    t.push_str(&torrc::client(socks_port));
    torrcs.push(("client".into(), client_dir, t));

    let onions_dir = dir.join("onions");
    let mut t = torrc::common(&onions_dir, "onions", &auth_lines);
    t.push_str(&torrc::onion_host());
    let mut services = Vec::new();
    for (i, name) in ONION_SERVICE_NAMES.iter().enumerate() {
        let hs_dir = onions_dir.join(format!("hs-{name}"));
        let target_port = port(OFF_ONION_TARGETS + i as u16);
        t.push_str(&torrc::onion_service(
            &hs_dir,
            ONION_VIRTUAL_PORTS[i],
            target_port,
        ));
        services.push((
            name.to_string(),
            hs_dir,
            ONION_VIRTUAL_PORTS[i],
            target_port,
        ));
    }
    torrcs.push(("onions".into(), onions_dir.clone(), t));

    // Relays first, clients once the consensus lists every relay: an onion
    // service that publishes against a partial consensus puts its descriptor
    // on the wrong HSDirs and takes about a minute to notice.
    owned.ports.release_ports();
    let client_torrcs = torrcs.split_off(relays.len());
    spawn_daemons(opts, &empty, torrcs, &mut owned.daemons)?;
    progress.note("relays started");
    let deadline = t0 + opts.ready_timeout;
    let nicknames: Vec<(String, bool)> = relays
        .iter()
        .map(|r| (r.nickname.clone(), r.role == Role::Exit))
        .collect();
    let auth_dir_port = relays[0].dir_port;
    wait_for_consensus(
        &mut owned.daemons,
        auth_dir_port,
        &nicknames,
        &[],
        deadline,
        &progress,
    )?;
    spawn_daemons(opts, &empty, client_torrcs, &mut owned.daemons)?;
    progress.note("consensus lists every relay; client and onion services started");
    let onions = wait_for_consensus(
        &mut owned.daemons,
        auth_dir_port,
        &nicknames,
        &services,
        deadline,
        &progress,
    )?;
    progress.note("checking streams");
    let onion_checks: Vec<(String, String, u16, u16)> = services
        .iter()
        .zip(&onions)
        .map(|((name, _, vport, target), onion)| (name.clone(), onion.clone(), *vport, *target))
        .collect();
    wait_for_streams(
        &mut owned.daemons,
        socks_port,
        check_port,
        &onion_checks,
        deadline,
        &progress,
    )?;
    progress.note("ready");
    let ready_secs = (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0;

    let authorities = relays
        .iter()
        .zip(&ids)
        .zip(&auth_lines)
        .map(|((r, id), a)| AuthorityInfo {
            nickname: r.nickname.clone(),
            address: "127.0.0.1".into(),
            or_port: r.or_port,
            dir_port: r.dir_port,
            v3ident: a.v3ident.clone(),
            rsa_identity: id.rsa.clone(),
            ed_identity: id.ed.clone(),
        })
        .collect();
    let relay_infos = relays
        .iter()
        .zip(&ids)
        .map(|(r, id)| RelayInfo {
            nickname: r.nickname.clone(),
            address: "127.0.0.1".into(),
            or_port: r.or_port,
            rsa_identity: id.rsa.clone(),
            ed_identity: id.ed.clone(),
        })
        .collect();
    Ok(NetInfo {
        network: NetworkParams {
            voting_interval_secs: torrc::VOTING_INTERVAL_SECS,
            hsdir_interval_minutes: 24 * torrc::VOTING_INTERVAL_SECS / 60,
        },
        authorities,
        relays: relay_infos,
        harness: HarnessInfo {
            socks_port,
            exit_ports,
            data_dir: dir.to_path_buf(),
            ready_secs,
            onion_services: onion_checks
                .into_iter()
                .map(|(name, onion, port, target_port)| OnionServiceInfo {
                    name,
                    onion,
                    port,
                    target_port,
                })
                .collect(),
        },
    })
}

fn spawn_daemons(
    opts: &Options,
    defaults: &Path,
    torrcs: Vec<(String, PathBuf, String)>,
    daemons: &mut Vec<Daemon>,
) -> Result<(), Error> {
    for (name, ddir, text) in torrcs {
        mkdir(&ddir)?;
        let torrc_path = ddir.join("torrc");
        std::fs::write(&torrc_path, text)
            .map_err(|e| Error::new(format!("writing {}: {e}", torrc_path.display())))?;
        let log = ddir.join("stderr.log");
        let mut cmd = Command::new(&opts.tor);
        cmd.arg("-f")
            .arg(&torrc_path)
            .arg("--defaults-torrc")
            .arg(defaults);
        let child = run_to_completion(cmd, &format!("tor ({name})"), &log)?;
        daemons.push(Daemon {
            name,
            dir: ddir,
            child,
        });
    }
    Ok(())
}

fn check_daemons(daemons: &mut [Daemon]) -> Result<(), Error> {
    for d in daemons.iter_mut() {
        if let Some(status) = d.exited() {
            return Err(Error::new(format!(
                "tor ({}) exited: {status}\n{}",
                d.name,
                d.log_tail(LOG_TAIL_LINES)
            )));
        }
    }
    Ok(())
}

fn tails(daemons: &[Daemon], names: &[&str]) -> String {
    daemons
        .iter()
        .filter(|d| names.iter().any(|n| d.name.starts_with(n)))
        .map(|d| d.log_tail(LOG_TAIL_LINES))
        .collect()
}

/// Fetches a document from an authority's DirPort (HTTP/1.0 on loopback).
fn dir_fetch(dir_port: u16, resource: &str) -> Result<String, String> {
    let mut s = socks::loopback_connect(dir_port).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(10))))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {resource} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    s.take(16 * 1024 * 1024)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("truncated HTTP reply")?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(format!("HTTP: {status}"));
    }
    Ok(body.to_string())
}

/// Relay nickname → flags, from a consensus document.
fn consensus_flags(doc: &str) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(rest) = line.strip_prefix("r ") {
            current = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix("s ") {
            if let Some(nick) = current.take() {
                out.insert(nick, rest.split_whitespace().map(str::to_string).collect());
            }
        }
    }
    out
}

/// Waits for a consensus listing every relay as Running, Valid, Fast (arti
/// builds paths only through Fast relays) and Stable (long-lived ports need it),
/// exits with Exit, all with HSDir, and for the onion services' hostnames.
fn wait_for_consensus(
    daemons: &mut [Daemon],
    dir_port: u16,
    relays: &[(String, bool)],
    services: &[(String, PathBuf, u16, u16)],
    deadline: Instant,
    progress: &Progress,
) -> Result<Vec<String>, Error> {
    let t0 = progress.t0;
    let mut noted = String::new();
    loop {
        check_daemons(daemons)?;
        let last;
        match dir_fetch(dir_port, "/tor/status-vote/current/consensus-microdesc") {
            Ok(doc) => {
                let flags = consensus_flags(&doc);
                let missing: Vec<String> = relays
                    .iter()
                    .filter(|(nick, exit)| {
                        let Some(f) = flags.get(nick) else {
                            return true;
                        };
                        let has = |flag: &str| f.iter().any(|x| x == flag);
                        !(has("Running")
                            && has("Valid")
                            && has("Fast")
                            && has("Stable")
                            && has("HSDir")
                            && (!exit || has("Exit")))
                    })
                    .map(|(n, _)| n.clone())
                    .collect();
                if missing.is_empty() {
                    let mut onions = Vec::new();
                    for (_, hs_dir, _, _) in services {
                        match std::fs::read_to_string(hs_dir.join("hostname")) {
                            Ok(h) if h.trim().ends_with(".onion") => {
                                onions.push(h.trim().to_string())
                            }
                            _ => break,
                        }
                    }
                    if onions.len() == services.len() {
                        return Ok(onions);
                    }
                    last = "onion service hostnames not written yet".into();
                } else {
                    last = format!("consensus lacks usable {}", missing.join(", "));
                }
            }
            Err(e) => last = format!("no consensus from auth0: {e}"),
        }
        if last != noted {
            progress.note(&last);
            noted = last.clone();
        }
        if Instant::now() >= deadline {
            return Err(Error::new(format!(
                "test network not ready after {:.0} s: {last}\n{}",
                t0.elapsed().as_secs_f64(),
                tails(daemons, &["auth", "onions"])
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the c-tor client carries an echo round trip to a loopback
/// server through an exit and to every onion service.
fn wait_for_streams(
    daemons: &mut [Daemon],
    socks_port: u16,
    check_port: u16,
    onions: &[(String, String, u16, u16)],
    deadline: Instant,
    progress: &Progress,
) -> Result<(), Error> {
    let t0 = progress.t0;
    let mut servers = Vec::new();
    for port in std::iter::once(check_port).chain(onions.iter().map(|o| o.3)) {
        servers
            .push(EchoServer::bind(port).map_err(|e| {
                Error::new(format!("binding echo server on 127.0.0.1:{port}: {e}"))
            })?);
    }
    let abort = Arc::new(AtomicBool::new(false));
    let mut targets = vec![("exit".to_string(), "127.0.0.1".to_string(), check_port)];
    targets.extend(
        onions
            .iter()
            .map(|(name, onion, vport, _)| (format!("onion {name}"), onion.clone(), *vport)),
    );
    let mut handles = Vec::new();
    for (label, host, port) in targets {
        let abort = Arc::clone(&abort);
        let progress = progress.clone();
        let h = std::thread::Builder::new()
            .name(format!("ready-{label}"))
            .spawn(move || -> Result<(), String> {
                let mut last = String::from("no attempt");
                let mut attempt = 0u32;
                while Instant::now() < deadline && !abort.load(Ordering::Relaxed) {
                    attempt += 1;
                    let probe = format!("timb-testnet probe {attempt}\n");
                    // Never wait on one attempt past the deadline.
                    let left = deadline.saturating_duration_since(Instant::now());
                    let within = left.clamp(Duration::from_secs(1), Duration::from_secs(30));
                    let r = socks::socks5_connect_within(socks_port, &host, port, within).and_then(
                        |mut s| echo_roundtrip(&mut s, probe.as_bytes(), Duration::from_secs(30)),
                    );
                    match r {
                        Ok(()) => {
                            progress.note(&format!("{label}: echo ok"));
                            return Ok(());
                        }
                        Err(e) => {
                            last = e.to_string();
                            progress.note(&format!("{label}: {last}"));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(format!("{label}: {last} (after {attempt} attempts)"))
            })
            .map_err(|e| Error::new(format!("spawning a check thread: {e}")))?;
        handles.push(h);
    }
    let mut failure = None;
    while handles.iter().any(|h| !h.is_finished()) {
        if let Err(e) = check_daemons(daemons) {
            failure = Some(e);
            abort.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a check thread panicked".into()),
        }
    }
    drop(servers);
    if let Some(e) = failure {
        return Err(e);
    }
    if !errors.is_empty() {
        return Err(Error::new(format!(
            "test network not usable after {:.0} s: {}\n{}",
            t0.elapsed().as_secs_f64(),
            errors.join("; "),
            tails(daemons, &["client", "onions", "exit"])
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_flags_pairs_r_and_s_lines() {
        let doc = "network-status-version 3 microdesc\n\
                   r relay0 C2cX 2038-01-01 00:00:00 127.0.0.1 22808 0\n\
                   m pgDt\n\
                   s Exit Fast Running Valid\n\
                   r auth0 LZrZ 2038-01-01 00:00:00 127.0.0.1 22802 22805\n\
                   m 9deL\n\
                   s Authority HSDir Running\n\
                   directory-footer\n";
        let f = consensus_flags(doc);
        assert_eq!(f.len(), 2);
        assert_eq!(f["relay0"], ["Exit", "Fast", "Running", "Valid"]);
        assert_eq!(f["auth0"], ["Authority", "HSDir", "Running"]);
    }

    #[test]
    fn fingerprint_files_are_read_without_spaces() {
        let dir = std::env::temp_dir().join(format!("timb-testnet-unit-{}", nanos()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("fingerprint");
        std::fs::write(
            &p,
            "test1 4B68 790E CA28 8586 F4F5 D24B A55A A5C6 7CA3 19E5\n",
        )
        .unwrap();
        assert_eq!(
            fingerprint_file(&p).unwrap(),
            "4B68790ECA288586F4F5D24BA55AA5C67CA319E5"
        );
        std::fs::write(&p, "garbage").unwrap();
        assert!(fingerprint_file(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn options_are_validated() {
        let opts = Options {
            exits: 0,
            ..Options::default()
        };
        assert!(TestNet::start(opts).is_err());
        let opts = Options {
            relays: MAX_RELAYS + 1,
            ..Options::default()
        };
        assert!(TestNet::start(opts).is_err());
    }
}
