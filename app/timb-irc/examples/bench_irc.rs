//! `cargo xtask bench irc`: message rate and one-way latency between two
//! accounts through a real ngircd, timb's client against a bare line client
//! as the baseline. Prints a Markdown table.
//!
//! Loopback rows isolate the clients' own cost. With `TIMB_TESTNET` set (as
//! `cargo xtask bench` does) or `--tor`, the same runs go through the private
//! Tor network to an exit (exit_ports[8] TLS, [9] plain): timb through its
//! own embedded arti (timb-tor), as in the app, and both timb and the
//! baseline through the c-tor client's SOCKS port for comparison.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use timb_core::{AccountHandle, AccountId, Command, Event, MessageKind, Target};
use timb_irc::{IrcConfig, IrcServer};
use timb_tls::{PinSet, TlsPolicy};
use tokio::net::TcpStream;

/// How a client's byte stream reaches 127.0.0.1:port.
#[derive(Clone)]
enum Via {
    Loopback,
    CtorSocks(u16),
    Arti(timb_tor::Transport),
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A byte stream for a timb account; `id` is also arti's isolation key.
async fn open(via: &Via, id: AccountId, port: u16) -> Box<dyn Stream> {
    match via {
        Via::Arti(t) => Box::new(t.connect(id, "127.0.0.1", port).await.expect("arti stream")),
        other => Box::new(open_tcp(other, port).await),
    }
}

/// The connector a timb account gets, as in the app: 127.0.0.1:`port` by `via`.
fn connector(via: &Via, id: AccountId, port: u16) -> Arc<dyn timb_irc::Connector> {
    let inner: Arc<dyn timb_irc::Connector> = match via {
        Via::Loopback => Arc::new(LoopConnector { port }),
        Via::CtorSocks(socks) => Arc::new(SocksConnector { socks_port: *socks }),
        Via::Arti(t) => Arc::new(timb_tor::TorConnector::new(t, id)),
    };
    Redirect::new(inner, "127.0.0.1", port)
}

/// A TCP stream for the baseline client (loopback or c-tor SOCKS).
async fn open_tcp(via: &Via, port: u16) -> TcpStream {
    match via {
        Via::Loopback => connect_loopback(port).await,
        Via::CtorSocks(socks) => SocksConnector::stream(*socks, "127.0.0.1", port)
            .await
            .expect("SOCKS5 connect through the test network"),
        Via::Arti(_) => unreachable!("the baseline never uses arti"),
    }
}

const LATENCY_SAMPLES: usize = 30;
const RATE_MESSAGES: usize = 60;
static ROW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Row {
    path: &'static str,
    client: &'static str,
    rate: f64,
    median_ms: f64,
    p90_ms: f64,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Bench accounts switch timb's own flood control off so that what is
/// measured is the path; ngircd's flood control still applies to both rows.
fn bench_config(nick: &str) -> IrcConfig {
    let mut c = IrcConfig::new(nick);
    c.send_burst = 100_000;
    c.send_interval = Duration::from_millis(1);
    c
}

async fn send(h: &AccountHandle, to: &str, body: String) {
    h.commands
        .send(Command::Send {
            to: Target::Direct(to.into()),
            body,
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
}

async fn recv_body(h: &mut AccountHandle) -> String {
    match wait_for(h, "bench message", |e| matches!(e, Event::Message { .. })).await {
        Event::Message { body, .. } => body,
        _ => unreachable!(),
    }
}

/// Two timb accounts: over TLS pinned to the test CA (as a user would be)
/// when `ca_pem` is given, else plain text (as to an onion service).
async fn timb_row(path: &'static str, via: &Via, port: u16, ca_pem: Option<&str>) -> Row {
    // Fresh nicks per row: the previous row's QUIT may still be in flight.
    let row = ROW.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (nick_a, nick_b) = (format!("benchA{row}"), format!("benchB{row}"));
    let (mut a, mut b) = match ca_pem {
        Some(ca) => {
            let server = IrcServer {
                host: "irc.test".into(),
                port,
                tls: TlsPolicy::Pinned(PinSet::parse("bench-ca", ca).unwrap()),
                allow_plaintext: false,
                client_identity: None,
            };
            let mut handles = Vec::new();
            for (n, nick) in [(1, &nick_a), (2, &nick_b)] {
                let id = AccountId(n);
                let c = connector(via, id, port);
                let h = timb_irc::spawn_account(id, server.clone(), bench_config(nick), c);
                h.commands.send(Command::Connect).await.unwrap();
                handles.push(h);
            }
            let b = handles.pop().unwrap();
            (handles.pop().unwrap(), b)
        }
        None => (
            timb_irc::spawn(
                AccountId(1),
                open(via, AccountId(1), port).await,
                bench_config(&nick_a),
            ),
            timb_irc::spawn(
                AccountId(2),
                open(via, AccountId(2), port).await,
                bench_config(&nick_b),
            ),
        ),
    };
    let client = if ca_pem.is_some() {
        "timb (TLS)"
    } else {
        "timb (plain)"
    };
    wait_connected(&mut a).await;
    wait_connected(&mut b).await;
    let mut lat = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        send(&a, &nick_b, format!("lat {i}")).await;
        assert_eq!(recv_body(&mut b).await, format!("lat {i}"));
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    for i in 0..RATE_MESSAGES {
        send(&a, &nick_b, format!("rate {i}")).await;
    }
    for i in 0..RATE_MESSAGES {
        assert_eq!(recv_body(&mut b).await, format!("rate {i}"));
    }
    let rate = RATE_MESSAGES as f64 / t.elapsed().as_secs_f64();
    Row {
        path,
        client,
        rate,
        median_ms: percentile(&mut lat, 0.5),
        p90_ms: percentile(&mut lat, 0.9),
    }
}

/// Two bare clients writing raw lines over plain text: the floor.
async fn baseline_row(path: &'static str, via: &Via, port: u16) -> Row {
    let row = ROW.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (nick_a, nick_b) = (format!("baseA{row}"), format!("baseB{row}"));
    let mut a = RawClient::register_on(open_tcp(via, port).await, &nick_a).await;
    let mut b = RawClient::register_on(open_tcp(via, port).await, &nick_b).await;
    let mut lat = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        a.send(&format!("PRIVMSG {nick_b} :lat {i}")).await;
        let want = format!(":lat {i}");
        b.expect(|l| l.ends_with(&want)).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    for i in 0..RATE_MESSAGES {
        a.send(&format!("PRIVMSG {nick_b} :rate {i}")).await;
    }
    let last = format!(":rate {}", RATE_MESSAGES - 1);
    b.expect(|l| l.ends_with(&last)).await;
    let rate = RATE_MESSAGES as f64 / t.elapsed().as_secs_f64();
    Row {
        path,
        client: "baseline (plain, raw lines)",
        rate,
        median_ms: percentile(&mut lat, 0.5),
        p90_ms: percentile(&mut lat, 0.9),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tor = std::env::var_os(timb_testnet::ENV_NETWORK_FILE).is_some()
        || std::env::args().any(|a| a == "--tor");
    let mut rows = Vec::new();
    {
        let server = Ngircd::start();
        let ca = server.pki.ca_pem.clone();
        let lo = Via::Loopback;
        rows.push(timb_row("loopback TCP", &lo, server.tls_port, Some(&ca)).await);
        rows.push(timb_row("loopback TCP", &lo, server.port, None).await);
        rows.push(baseline_row("loopback TCP", &lo, server.port).await);
    }
    if tor {
        let (net, network_file) = tokio::task::spawn_blocking(|| {
            let n = timb_testnet::TestNet::shared();
            (n.info().clone(), n.config_path().to_owned())
        })
        .await
        .unwrap();
        let idx = timb_testnet::exit_port_index::IRC.start;
        let (tls_port, plain_port) = (net.exit_port(idx).unwrap(), net.exit_port(idx + 1).unwrap());
        let server = Ngircd::start_on(&[plain_port], tls_port);
        let ca = server.pki.ca_pem.clone();

        let state = tempfile::tempdir().unwrap();
        let config = timb_tor::TorConfig::private_network(&network_file, state.path()).unwrap();
        let (progress, _watch) = tokio::sync::watch::channel(Default::default());
        let transport = timb_tor::Transport::bootstrap(config, progress)
            .await
            .unwrap();
        let arti = Via::Arti(transport);
        let path = "private Tor network, timb's arti → exit";
        rows.push(timb_row(path, &arti, tls_port, Some(&ca)).await);
        rows.push(timb_row(path, &arti, plain_port, None).await);

        let ctor = Via::CtorSocks(net.harness.socks_port);
        let path = "private Tor network, c-tor SOCKS → exit";
        rows.push(timb_row(path, &ctor, tls_port, Some(&ca)).await);
        rows.push(timb_row(path, &ctor, plain_port, None).await);
        rows.push(baseline_row(path, &ctor, plain_port).await);
    }
    println!(
        "| path | client | msgs/s ({RATE_MESSAGES} back to back) | latency median ({LATENCY_SAMPLES} sequential) | latency p90 |"
    );
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.2} ms | {:.2} ms |",
            r.path, r.client, r.rate, r.median_ms, r.p90_ms
        );
    }
    println!(
        "\nmsgs/s is ngircd 26's flood control, not the path: about 3/s per client \
         on its plain port for every client, more on its TLS port (measured, \
         not configured). Latency is what the path costs.{}",
        if tor {
            ""
        } else {
            " Tor rows: run with TIMB_TESTNET set or `--tor`."
        }
    );
}
