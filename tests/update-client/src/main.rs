//! `timb-update`: the updater's command-line test client, for tests and conformance suites.
//!
//! ```text
//! timb-update --metadata-dir D init ROOT
//! timb-update --metadata-dir D --metadata-url U [--metadata-url U2 …] refresh
//! timb-update --metadata-dir D [--metadata-url U …] --target-name T --target-base-url B
//!             --target-dir O [--running-version V --running-target T --channel C
//!             --bundle-key PUB … --signing-policy TOML] download
//! ```
//!
//! Exit 0 on success, 1 with the reason on stderr. Unlike the app, it speaks plain HTTP to
//! `127.0.0.1` (a loopback test server); anything else goes through arti (`--tor-network`,
//! the private test network's file) under the app's own rules, or is refused.
//! `TIMB_UPDATE_CRASH_AT=N` aborts the process at the Nth step of the store's writes (the
//! crash-safety tests); `TIMB_APPLY_STOP_AT=N` kills it (SIGKILL; TerminateProcess on
//! Windows) at the Nth write, rename
//! or fsync of `apply`, and `TIMB_APPLY_STOPS=1` prints each such step (`TIMB_DOWNLOAD_…`
//! the same for `download`); the app has no such hooks. `launch` is the bundle launcher's code, on a test bundle.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use timb_release::tuf::{Channel, TrustedSet};
use timb_release::{Keyring, Policy, PublicKey};
use timb_tor::http;
use timb_update::{
    BundleTrust, Fetch, FetchError, HttpBody, Running, Scheme, Store, Timeouts, TorFetcher,
    Updater, Url,
};

#[derive(Parser)]
#[command(name = "timb-update", about = "timb's updater test client")]
struct Cli {
    /// The trusted metadata folder.
    #[arg(long)]
    metadata_dir: Option<PathBuf>,
    /// A metadata mirror (repeat: tried in order).
    #[arg(long)]
    metadata_url: Vec<String>,
    #[arg(long)]
    target_name: Option<String>,
    /// A target mirror (repeat: tried in order).
    #[arg(long)]
    target_base_url: Vec<String>,
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// With --running-target and --channel: download as this bundle's update (timb fields
    /// and minisign checked too); without, TUF's checks alone.
    #[arg(long)]
    running_version: Option<String>,
    #[arg(long)]
    running_target: Option<String>,
    #[arg(long)]
    channel: Option<String>,
    /// A bundle key (minisign .pub) (repeat); with --signing-policy.
    #[arg(long)]
    bundle_key: Vec<PathBuf>,
    /// The signing policy; without it and --bundle-key, the repository's signing/.
    #[arg(long)]
    signing_policy: Option<PathBuf>,
    /// The private Tor network's file: non-loopback URLs go through arti.
    #[arg(long)]
    tor_network: Option<PathBuf>,
    /// arti's state folder (with --tor-network).
    #[arg(long)]
    tor_state: Option<PathBuf>,
    /// With --tor-network: an `https://127.0.0.1:PORT` mirror reached through the private
    /// network's exit presents the key with this SPKI SHA-256 (hex), pinned instead of web
    /// PKI (a test server has no certificate a web authority signed). Only in this client.
    #[arg(long)]
    exit_tls_pin: Option<String>,
    /// Per-read timeout in seconds.
    #[arg(long, default_value_t = 60)]
    read_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust ROOT (a root.json, checked to be self-signed) as the initial root.
    Init { root: PathBuf },
    /// Refresh the trusted metadata from the metadata mirrors.
    Refresh,
    /// Download --target-name into --target-dir.
    Download,
    /// Install ARCHIVE (already verified) as version V of the bundle at ROOT.
    Apply {
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        archive: PathBuf,
        #[arg(long)]
        version: String,
        /// At most this many files (the default is the app's).
        #[arg(long)]
        max_files: Option<u64>,
    },
    /// Measures `apply` of ARCHIVE (a real bundle) into fresh bundles: a Markdown table.
    BenchApply {
        #[arg(long)]
        archive: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Start the bundle at ROOT as its launcher does.
    Launch {
        #[arg(long)]
        bundle: PathBuf,
        args: Vec<std::ffi::OsString>,
    },
}

/// Loopback plain HTTP, else arti under the app's rules.
struct TestFetcher {
    tor: Option<TorFetcher>,
    /// `https://127.0.0.1` through the exit with a pinned key (`--exit-tls-pin`): the same
    /// timb-tor call the app's [`TorFetcher`] makes, with a pin where the app has web PKI.
    exit: Option<(
        timb_tor::Transport,
        timb_tor::Isolation,
        timb_tor::TlsPolicy,
    )>,
}

/// `GET url` from byte `from` over a stream already open to its server.
async fn get<S>(s: S, url: &Url, from: u64) -> Result<(HttpBody, u64), FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let r = http::get(s, &url.authority(), &url.path, from)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    HttpBody::from_response(r, from)
}

impl Fetch for TestFetcher {
    type Body = HttpBody;

    async fn open(&self, url: &Url, from: u64) -> Result<(HttpBody, u64), FetchError> {
        if url.scheme == Scheme::Http && url.host == "127.0.0.1" {
            // Only loopback, only in this test client (never in the app).
            #[allow(clippy::disallowed_methods)]
            let s = tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, url.port))
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))?;
            return get(s, url, from).await;
        }
        if let (Scheme::Https, "127.0.0.1", Some((transport, isolation, policy))) =
            (url.scheme, url.host.as_str(), &self.exit)
        {
            let s = transport
                .connect_tls_isolated(isolation, &url.host, url.port, policy)
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))?;
            return get(s, url, from).await;
        }
        match &self.tor {
            Some(t) => t.open(url, from).await,
            None => Err(FetchError::Refused(
                "only http://127.0.0.1 without --tor-network".into(),
            )),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Launch { bundle, args } => return timb_launcher::launch(bundle, args.clone()),
        Command::BenchApply { archive, runs } => {
            return match bench_apply(archive, *runs) {
                Ok(table) => {
                    println!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("timb-update: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Apply {
            bundle,
            archive,
            version,
            max_files,
        } => {
            let mut limits = timb_update::Limits::default();
            if let Some(n) = max_files {
                limits.max_files = *n;
            }
            return match apply(bundle, archive, version, limits) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("timb-update: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("timb-update: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timb-update: {e}");
            ExitCode::FAILURE
        }
    }
}

fn urls(list: &[String]) -> Result<Vec<Url>, String> {
    list.iter()
        .map(|u| Url::parse(u).map_err(|e| e.to_string()))
        .collect()
}

/// Installs `archive` (named `timb-VERSION-TARGET.tar.xz`) into `runs` fresh bundles that
/// hold only an older version, timing each `install` (unpack, fsync every file, rename,
/// pointer switch).
fn bench_apply(archive: &std::path::Path, runs: usize) -> Result<String, String> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the archive has no file name")?;
    let (version, target) =
        timb_release::Target::parse_archive_name(name).ok_or("not a bundle archive name")?;
    let version = version.to_string();
    let scratch = std::env::temp_dir().join(format!("timb-bench-apply-{}", std::process::id()));
    let mut times = Vec::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    for i in 0..runs.max(1) {
        let root = scratch.join(i.to_string());
        let _ = std::fs::remove_dir_all(&root);
        let old = root.join("app/0.0.1");
        std::fs::create_dir_all(&old).map_err(|e| e.to_string())?;
        std::fs::write(old.join(timb_launcher::APP_EXE), b"").map_err(|e| e.to_string())?;
        std::fs::write(root.join("app/current"), "0.0.1\n").map_err(|e| e.to_string())?;
        let layout = timb_launcher::Layout::at(&root);
        let t = std::time::Instant::now();
        timb_update::install(
            &layout,
            archive,
            &version,
            timb_update::Limits::default(),
            None,
        )
        .map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64());
        if i == 0 {
            let mut todo = vec![layout.version_dir(&version)];
            while let Some(d) = todo.pop() {
                for e in std::fs::read_dir(&d).map_err(|e| e.to_string())?.flatten() {
                    let m = e.metadata().map_err(|e| e.to_string())?;
                    if m.is_dir() {
                        todo.push(e.path());
                    } else {
                        files += 1;
                        bytes += m.len();
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let archive_len = std::fs::metadata(archive).map_err(|e| e.to_string())?.len();
    Ok(format!(
        "| measurement ({target} {version}, {} runs) | value |\n|---|---|\n| bytes downloaded per update (the whole signed archive; no deltas) | {archive_len} ({:.2} MiB) |\n| unpacked into app/{version}/ | {files} files, {:.2} MiB |\n| apply (unpack + fsync each file + rename + pointer switch), median | {:.0} ms |\n| apply, slowest | {:.0} ms |\n",
        times.len(),
        archive_len as f64 / 1048576.0,
        bytes as f64 / 1048576.0,
        median * 1000.0,
        times[times.len() - 1] * 1000.0,
    ))
}

/// `PREFIX_STOP_AT=N` kills this process (`kill_self`) at the Nth stop point, `PREFIX_STOPS=1`
/// prints each; `None` when neither is set.
fn stop_points(prefix: &str) -> Option<timb_update::StopPoint> {
    let stop_at = std::env::var(format!("{prefix}_STOP_AT"))
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let print = std::env::var_os(format!("{prefix}_STOPS")).is_some();
    if stop_at.is_none() && !print {
        return None;
    }
    let count = Arc::new(AtomicUsize::new(0));
    Some(Arc::new(move |what: &str| {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        if print {
            eprintln!("stop {n}: {what}");
        }
        if stop_at == Some(n) {
            kill_self();
        }
    }))
}

/// The exit code of a process `kill_self` ended on Windows.
#[cfg(windows)]
const KILLED_EXIT_CODE: u32 = 137;

/// kill -9 of ourselves: no destructor, no flush, like a power cut for the files. On
/// Windows (the wine test) TerminateProcess, as Task Manager's "End task" does, with exit
/// code 137 (128 + SIGKILL) so the test can tell.
fn kill_self() {
    #[cfg(unix)]
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    #[cfg(windows)]
    {
        #[link(name = "kernel32")]
        extern "system" {
            fn GetCurrentProcess() -> *mut std::ffi::c_void;
            fn TerminateProcess(process: *mut std::ffi::c_void, exit_code: u32) -> i32;
        }
        // SAFETY: the current-process pseudo handle, by value; on success nothing returns.
        unsafe {
            TerminateProcess(GetCurrentProcess(), KILLED_EXIT_CODE);
        }
    }
    std::process::abort();
}

/// `apply`, with the test-only stop points.
fn apply(
    bundle: &std::path::Path,
    archive: &std::path::Path,
    version: &str,
    limits: timb_update::Limits,
) -> Result<(), String> {
    let hook = stop_points("TIMB_APPLY");
    let hook: Option<&(dyn Fn(&str) + Sync)> = match &hook {
        Some(h) => Some(h.as_ref()),
        None => None,
    };
    let layout = timb_launcher::Layout::at(bundle);
    timb_update::install(&layout, archive, version, limits, hook).map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    let metadata_dir = cli.metadata_dir.clone().ok_or("--metadata-dir is needed")?;
    let mut store = Store::open(&metadata_dir).map_err(|e| e.to_string())?;
    if let Some(n) = std::env::var("TIMB_UPDATE_CRASH_AT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let count = Arc::new(AtomicUsize::new(0));
        store.set_write_hook(Box::new(move |_step| {
            if count.fetch_add(1, Ordering::SeqCst) + 1 == n {
                std::process::abort();
            }
        }));
    }
    if let Command::Init { root } = &cli.command {
        let bytes = std::fs::read(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        TrustedSet::new(&bytes, now).map_err(|e| format!("the root is not valid: {e}"))?;
        return store
            .write(timb_release::tuf::RoleName::Root, &bytes)
            .map_err(|e| e.to_string());
    }
    let tor = match &cli.tor_network {
        Some(file) => {
            let state = cli
                .tor_state
                .clone()
                .unwrap_or_else(|| metadata_dir.join("arti"));
            let config =
                timb_tor::TorConfig::private_network(file, &state).map_err(|e| e.to_string())?;
            let (tx, _rx) = tokio::sync::watch::channel(Default::default());
            let t = timb_tor::Transport::bootstrap(config, tx)
                .await
                .map_err(|e| e.to_string())?;
            Some(t)
        }
        None => None,
    };
    let exit = match (&tor, &cli.exit_tls_pin) {
        (Some(t), Some(pin)) => {
            let pin = timb_tls::SpkiSha256::from_hex(pin)
                .ok_or_else(|| format!("--exit-tls-pin {pin:?} is not 64 hex digits"))?;
            let policy = timb_tor::TlsPolicy::Pinned(timb_tor::PinSet::leaf("127.0.0.1", [pin]));
            Some((t.clone(), timb_tor::Isolation::new(), policy))
        }
        (None, Some(_)) => return Err("--exit-tls-pin needs --tor-network".into()),
        _ => None,
    };
    let tor = tor.map(TorFetcher::new);
    let mirrors = urls(&cli.metadata_url)?;
    let refresh = !mirrors.is_empty();
    let updater = Updater::new(store, TestFetcher { tor, exit }, mirrors).with_timeouts(Timeouts {
        per_read: std::time::Duration::from_secs(cli.read_timeout),
        ..Timeouts::default()
    });
    let updater = match stop_points("TIMB_DOWNLOAD") {
        Some(p) => updater.with_stop_points(p),
        None => updater,
    };
    let set = if refresh {
        updater.refresh().await.map_err(|e| e.to_string())?
    } else if matches!(cli.command, Command::Refresh) {
        return Err("refresh needs --metadata-url".into());
    } else {
        updater.trusted().map_err(|e| e.to_string())?
    };
    if !matches!(cli.command, Command::Download) {
        return Ok(());
    }
    let name = cli
        .target_name
        .as_deref()
        .ok_or("download needs --target-name")?;
    let dir = cli
        .target_dir
        .as_deref()
        .ok_or("download needs --target-dir")?;
    let target_mirrors = urls(&cli.target_base_url)?;
    let running = match (&cli.running_version, &cli.running_target, &cli.channel) {
        (None, None, None) => None,
        (Some(v), Some(t), Some(c)) => Some(Running {
            version: v.parse().map_err(|e| format!("--running-version: {e}"))?,
            target: t.parse().map_err(|e| format!("--running-target: {e}"))?,
            channel: Channel::new(c).ok_or("--channel: 1 to 32 of a-z 0-9 -")?,
        }),
        _ => return Err("--running-version, --running-target and --channel go together".into()),
    };
    let path = match running {
        None => updater.download(&set, name, &target_mirrors, dir).await,
        Some(r) => {
            let trust = bundle_trust(&cli)?;
            updater
                .download_update(&set, name, &r, &trust, &target_mirrors, dir)
                .await
        }
    }
    .map_err(|e| e.to_string())?;
    println!("{}", path.display());
    Ok(())
}

fn bundle_trust(cli: &Cli) -> Result<BundleTrust, String> {
    if cli.bundle_key.is_empty() && cli.signing_policy.is_none() {
        return BundleTrust::read(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../signing"),
        );
    }
    let mut keys = Keyring::new();
    for p in &cli.bundle_key {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        keys.add(
            PublicKey::parse(&text).map_err(|e| format!("{}: {e}", p.display()))?,
            p.display().to_string(),
        );
    }
    let p = cli
        .signing_policy
        .as_ref()
        .ok_or("--bundle-key needs --signing-policy")?;
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let policy = Policy::parse(&text).map_err(|e| e.to_string())?;
    BundleTrust::new(keys, policy)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
