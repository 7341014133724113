//! timb-tor against the private Tor network on 127.0.0.1 (timb-testnet).
//!
//! Exit ports 0..4 of the network file are this binary's: 0 exit echo,
//! 1 TLS, 2 isolation, 3 leak probe; the onion service "echo" is ours too.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use timb_core::AccountId;
use timb_testnet::{EchoServer, TestNet};
use timb_tls::test_ca::TestCa;
use timb_tor::{
    BootstrapProgress, ConnectError, PinSet, TlsError, TlsPolicy, TorConfig, TorError, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tor_proto::client::stream::ClientStreamCtrl;

const LEAK_ENV: &str = "TIMB_TOR_LEAKPROBE_PORT";

fn net() -> &'static TestNet {
    TestNet::shared()
}

fn exit_port(i: usize) -> u16 {
    net().info().exit_port(i).expect("exit port")
}

async fn transport(dir: &tempfile::TempDir) -> Transport {
    let config = TorConfig::private_network(net().config_path(), dir.path()).unwrap();
    let (tx, _rx) = watch::channel(BootstrapProgress::default());
    Transport::bootstrap(config, tx).await.expect("bootstrap")
}

async fn roundtrip<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    probe: &[u8],
) {
    s.write_all(probe).await.unwrap();
    s.flush().await.unwrap();
    let mut back = vec![0u8; probe.len()];
    tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut back))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(back, probe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_reports_progress_to_ready() {
    let dir = tempfile::tempdir().unwrap();
    let config = TorConfig::private_network(net().config_path(), dir.path()).unwrap();
    let (tx, mut rx) = watch::channel(BootstrapProgress::default());
    let seen = tokio::spawn(async move {
        let mut all = Vec::new();
        while rx.changed().await.is_ok() {
            all.push(rx.borrow_and_update().clone());
        }
        all
    });
    let t = Transport::bootstrap(config, tx).await.unwrap();
    // State stays in the profile folder we gave it.
    assert!(dir.path().join("state").is_dir() && dir.path().join("cache").is_dir());
    drop(t);
    let seen = tokio::time::timeout(Duration::from_secs(30), seen)
        .await
        .expect("progress channel closes after bootstrap")
        .unwrap();
    let last = seen.last().expect("at least one progress report");
    assert!(
        last.ready && last.percent == 100 && last.blocked.is_none(),
        "{last:?}"
    );
    assert_eq!(last.phase, timb_tor::TorPhase::Finishing);
    assert!(seen.iter().all(|p| p.percent <= 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_roundtrip_and_refused_port() {
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&dir).await;
    let port = exit_port(0);
    // Nothing listens yet: a typed error, not a hang. (c-tor exits often
    // hide the reason behind END_REASON_MISC.)
    let err = t
        .connect(AccountId(1), "127.0.0.1", port)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Refused | ConnectError::Circuit | ConnectError::Other
        ),
        "{err:?}"
    );

    let _echo = EchoServer::bind(port).unwrap();
    let mut s = t.connect(AccountId(1), "127.0.0.1", port).await.unwrap();
    roundtrip(&mut s, b"through the exit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_is_resolved_by_the_exit_not_locally() {
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&dir).await;
    // The relays' resolver is 127.0.0.1 with no DNS server: the exit fails
    // to resolve and says so; nothing here ever calls a resolver.
    let err = t
        .connect(AccountId(1), "no-such-host.invalid", exit_port(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::HostNotFound
                | ConnectError::Circuit
                | ConnectError::Timeout
                | ConnectError::Other
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onion_service_roundtrip() {
    let svc = net().info().onion_service("echo").unwrap().clone();
    let _echo = EchoServer::bind(svc.target_port).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&dir).await;
    let mut s = tokio::time::timeout(
        Duration::from_secs(120),
        t.connect(AccountId(7), &svc.onion, svc.port),
    )
    .await
    .expect("onion connect timed out")
    .unwrap();
    roundtrip(&mut s, b"through the onion service").await;
}

fn circuit_of(s: &timb_tor::TorStream) -> String {
    let tunnel = s
        .client_stream_ctrl()
        .expect("client stream")
        .tunnel()
        .expect("circuit alive");
    format!("{}", tunnel.unique_id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_never_share_a_circuit() {
    let port = exit_port(2);
    let _echo = EchoServer::bind(port).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&dir).await;
    // Account 1's streams, kept open so their circuits stay alive. arti may
    // build more than one circuit for the first request and hand a later
    // stream of the same account another of them (a cold CI run saw
    // "Circ 5.0" then "Circ 5.1"), so every circuit account 1 used is
    // collected over four streams, and one reuse among them is required.
    let mut streams = Vec::new();
    let mut account1 = std::collections::BTreeSet::new();
    let mut reused = false;
    for i in 0..4 {
        let mut s = t.connect(AccountId(1), "127.0.0.1", port).await.unwrap();
        roundtrip(&mut s, format!("a{i}").as_bytes()).await;
        reused |= !account1.insert(circuit_of(&s));
        streams.push(s);
    }
    // Same account: circuits are reused, so without per-account tokens B
    // would most likely get one of these (not certainly: arti may also hand
    // it a built circuit no stream used yet; the check cannot see that case).
    assert!(reused, "account 1 never reused a circuit: {account1:?}");
    let mut b = t.connect(AccountId(2), "127.0.0.1", port).await.unwrap();
    roundtrip(&mut b, b"b").await;
    let cb = circuit_of(&b);
    assert!(!account1.contains(&cb), "two accounts shared circuit {cb}");

    // A fresh identity for account 1 gives it a new circuit.
    t.new_circuits_for(AccountId(1));
    let mut a3 = t.connect(AccountId(1), "127.0.0.1", port).await.unwrap();
    roundtrip(&mut a3, b"a3").await;
    let c3 = circuit_of(&a3);
    assert!(!account1.contains(&c3), "a new identity kept circuit {c3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_tor_pin_accepted_and_mismatch_refused() {
    timb_tls::install_crypto_provider();
    let port = exit_port(1);
    let ca = TestCa::new("timb test CA");
    let leaf = ca.issue(&["127.0.0.1"]);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(leaf.server_config(&[]));
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let t = transport(&dir).await;

    let good = TlsPolicy::Pinned(PinSet::leaf("test", [leaf.spki_sha256()]));
    let mut s = t
        .connect_tls(AccountId(3), "127.0.0.1", port, &good)
        .await
        .unwrap();
    assert_eq!(
        timb_tls::peer_spki_sha256(&s).unwrap(),
        leaf.spki_sha256().hex()
    );
    roundtrip(&mut s, b"tls over tor").await;

    let other = ca.issue(&["127.0.0.1"]);
    let bad = TlsPolicy::Pinned(PinSet::leaf("test", [other.spki_sha256()]));
    match t.connect_tls(AccountId(3), "127.0.0.1", port, &bad).await {
        Err(TorError::Tls(TlsError::PinMismatch { got, .. })) => {
            assert_eq!(got, leaf.spki_sha256().hex())
        }
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    server.abort();
}

// The leak test: run a whole session in a child process under strace and
// check every socket it opens.

/// Runs only when re-executed by `no_connection_bypasses_tor` (ignored, so a
/// plain run lists it as ignored instead of counting an empty pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of no_connection_bypasses_tor"]
async fn leak_probe_child() {
    let port = std::env::var(LEAK_ENV).expect("run by no_connection_bypasses_tor");
    let port: u16 = port.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = PathBuf::from(std::env::var(timb_testnet::ENV_NETWORK_FILE).unwrap());
    let config = TorConfig::private_network(&path, dir.path()).unwrap();
    let (tx, _rx) = watch::channel(BootstrapProgress::default());
    let t = Transport::bootstrap(config, tx).await.unwrap();
    let mut s = t.connect(AccountId(1), "127.0.0.1", port).await.unwrap();
    roundtrip(&mut s, b"leak probe").await;
    // Names a resolver would be asked about if anything resolved locally.
    let _ = t.connect(AccountId(2), "leakcheck.example.com", port).await;
    let onion = std::env::var("TIMB_TOR_LEAKPROBE_ONION").unwrap();
    let _ =
        tokio::time::timeout(Duration::from_secs(60), t.connect(AccountId(3), &onion, 80)).await;
    println!("LEAKPROBE-DONE");
}

/// Runs only when re-executed by `leak_checker_catches_a_bypass`: does on
/// purpose what the checker must catch (loopback only, so harmless).
#[test]
#[ignore = "child process of leak_checker_catches_a_bypass"]
fn leak_canary_child() {
    let port = std::env::var(CANARY_ENV).expect("run by leak_checker_catches_a_bypass");
    let port: u16 = port.parse().unwrap();
    #[allow(clippy::disallowed_methods)] // deliberate bypass, to a server the parent started
    let direct = std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    drop(direct);
    #[allow(clippy::disallowed_types, clippy::disallowed_methods)]
    // deliberate UDP "DNS" to loopback
    {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = udp.send_to(b"\0", SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    let _ = std::fs::read("/etc/resolv.conf");
    println!("CANARY-DONE");
}

const CANARY_ENV: &str = "TIMB_TOR_LEAKCANARY_PORT";
const FAKE_HOME: &str = "/nonexistent/timb-leakprobe-home";

fn relay_orports() -> HashSet<u16> {
    let info = net().info();
    info.relays
        .iter()
        .map(|r| r.or_port)
        .chain(info.authorities.iter().map(|a| a.or_port))
        .collect()
}

/// Runs one child test of this binary under strace; returns the trace.
fn strace_child(test: &str, envs: &[(&str, String)], done: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    let trace = out.path().join("strace.txt");
    let me = std::env::current_exe().unwrap();
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-s",
        "256",
        "-e",
        "trace=network,openat,open,mkdir,mkdirat,stat,newfstatat,statx",
        "-o",
    ])
    .arg(&trace)
    .arg(&me)
    .args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "--color=never",
    ]);
    // Without TERM, libtest does not look for terminfo under $HOME.
    cmd.env_remove("TERM");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let status = cmd.output().expect("run strace");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && stdout.contains(done),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read_to_string(&trace).unwrap()
}

/// Every way the trace shows traffic or name resolution outside Tor, and
/// the number of IPv4 connects seen.
fn leaks(trace: &str, orports: &HashSet<u16>) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut inet_connects = 0;
    for line in trace.lines() {
        for banned in [
            "/etc/resolv.conf",
            "/etc/hosts\"",
            "/etc/gai.conf",
            "io.systemd.Resolve",
        ] {
            if line.contains(banned) {
                found.push(format!("name-resolution file: {line}"));
            }
        }
        if line.contains("htons(53)") {
            found.push(format!("DNS port: {line}"));
        }
        if line.contains("socket(AF_INET") && line.contains("SOCK_DGRAM") {
            found.push(format!("UDP socket: {line}"));
        }
        if !(line.contains("connect(") || line.contains("sendto(") || line.contains("sendmsg(")) {
            continue;
        }
        if line.contains("sa_family=AF_INET6") {
            found.push(format!("IPv6: {line}"));
        } else if line.contains("sa_family=AF_INET") {
            inet_connects += 1;
            let port = line
                .split("htons(")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(|p| p.parse::<u16>().ok());
            let to_relay = line.contains("inet_addr(\"127.0.0.1\")")
                && port.is_some_and(|p| orports.contains(&p));
            if !to_relay {
                found.push(format!("not a relay ORPort: {line}"));
            }
        }
    }
    (found, inet_connects)
}

#[test]
fn no_connection_bypasses_tor() {
    let port = exit_port(3);
    let _echo = EchoServer::bind(port).unwrap();
    let onion = net().info().onion_service("echo").unwrap().onion.clone();
    let trace = strace_child(
        "leak_probe_child",
        &[
            (LEAK_ENV, port.to_string()),
            ("TIMB_TOR_LEAKPROBE_ONION", onion),
            (
                timb_testnet::ENV_NETWORK_FILE,
                net().config_path().display().to_string(),
            ),
            // arti must keep everything in the profile, never $HOME or XDG.
            ("HOME", FAKE_HOME.to_owned()),
            ("XDG_CONFIG_HOME", format!("{FAKE_HOME}/.config")),
            ("XDG_CACHE_HOME", format!("{FAKE_HOME}/.cache")),
            ("XDG_DATA_HOME", format!("{FAKE_HOME}/.local/share")),
            ("XDG_STATE_HOME", format!("{FAKE_HOME}/.local/state")),
        ],
        "LEAKPROBE-DONE",
    );
    let home_use: Vec<&str> = trace.lines().filter(|l| l.contains(FAKE_HOME)).collect();
    assert!(
        home_use.is_empty(),
        "touched $HOME:\n{}",
        home_use.join("\n")
    );
    let (found, inet_connects) = leaks(&trace, &relay_orports());
    assert!(
        found.is_empty(),
        "traffic outside Tor:\n{}",
        found.join("\n")
    );
    assert!(
        inet_connects > 0,
        "strace saw no connections at all:\n{trace}"
    );
    eprintln!("leak test: {inet_connects} IPv4 connects, all to relay ORPorts on 127.0.0.1");
}

/// The checker above is only worth something if it fails on a real bypass.
#[test]
fn leak_checker_catches_a_bypass() {
    let echo = EchoServer::bind(0).unwrap();
    let trace = strace_child(
        "leak_canary_child",
        &[(CANARY_ENV, echo.port().to_string())],
        "CANARY-DONE",
    );
    let (found, _) = leaks(&trace, &relay_orports());
    let all = found.join("\n");
    assert!(all.contains("not a relay ORPort"), "{all}");
    assert!(all.contains("DNS port"), "{all}");
    assert!(all.contains("UDP socket"), "{all}");
    assert!(all.contains("name-resolution file"), "{all}");
}

#[test]
fn config_errors_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("net.toml");
    std::fs::write(
        &file,
        "[network]\nvoting_interval_secs = 20\nhsdir_interval_minutes = 8\n",
    )
    .unwrap();
    assert!(matches!(
        TorConfig::private_network(&file, dir.path()),
        Err(TorError::Config(_))
    ));
    let bad = std::fs::read_to_string(net().config_path())
        .unwrap()
        .replacen("v3ident = \"", "v3ident = \"ZZ", 1);
    std::fs::write(&file, bad).unwrap();
    match TorConfig::private_network(&file, dir.path()) {
        Err(TorError::Config(msg)) => assert!(msg.contains("v3ident"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(TorConfig::default_network(dir.path()).is_ok());
    let _ = Arc::new(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_network_gives_a_readable_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut file = timb_tor::NetworkFile::load(net().config_path()).unwrap();
    for r in &mut file.relays {
        r.or_port = closed;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = TorConfig::from_network_file(&file, dir.path())
        .unwrap()
        .with_bootstrap_timeout(Duration::from_secs(8));
    let (tx, rx) = watch::channel(BootstrapProgress::default());
    let err = Transport::bootstrap(config, tx).await.unwrap_err();
    assert!(
        matches!(
            err,
            TorError::NoNetwork(_) | TorError::Blocked(_) | TorError::Bootstrap(_)
        ),
        "{err:?}"
    );
    let shown = rx.borrow().clone();
    assert!(!shown.ready && shown.blocked.is_some(), "{shown:?}");
    eprintln!("unreachable network: {err}");
}
