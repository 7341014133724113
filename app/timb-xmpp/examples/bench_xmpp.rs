//! `cargo xtask bench xmpp`: message rate and one-way latency between two
//! accounts through a real prosody, timb's client against a bare XMPP
//! client (same rustls TLS, PLAIN login, no parsing: it scans bytes) as the
//! baseline. Prints a Markdown table.
//!
//! Loopback rows isolate the clients' own cost. With `TIMB_TESTNET` set (as
//! `cargo xtask bench` does) or `--tor`, the same runs go through the private
//! Tor network to an exit (exit_ports[7]): timb through its own embedded
//! arti (timb-tor), as in the app, and both timb and the baseline through
//! the c-tor client's SOCKS port for comparison. Each path also gets timb with
//! stream management off (what XEP-0198's acks cost) and the baseline over the
//! same path, and every timb row its ratio to that baseline.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use timb_core::{AccountId, Command, ConnectionState, Event, MessageKind, Target};
use timb_tor::TorConnector;
use timb_xmpp::{BoxStream, Connector, ServerAddr, TlsMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LATENCY_SAMPLES: usize = 50;
const RATE_MESSAGES: usize = 300;

struct Row {
    path: &'static str,
    client: &'static str,
    baseline: bool,
    rate: f64,
    median_ms: f64,
    p90_ms: f64,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn send(c: &Client, to: &str, body: String) {
    c.cmd(Command::Send {
        to: Target::Direct(to.into()),
        body,
        kind: MessageKind::Normal,
    })
    .await;
}

async fn recv_body(c: &mut Client) -> String {
    match c
        .wait("bench message", |e| matches!(e, Event::Message { .. }))
        .await
    {
        Event::Message { body, .. } => body,
        _ => unreachable!(),
    }
}

/// Two timb accounts, `users` (sender, receiver), each with its own
/// connector (so arti can isolate them); `sm`: with stream management.
async fn timb_row(
    path: &'static str,
    pr: &Prosody,
    host: &str,
    port: u16,
    users: (&str, &str),
    connectors: (Arc<dyn Connector>, Arc<dyn Connector>),
    sm: bool,
) -> Row {
    let server = || ServerAddr {
        host: host.into(),
        port,
        tls: TlsMode::Direct,
    };
    let mut a = spawn_with_sm(pr, users.0, "pw", server(), connectors.0, sm);
    let mut b = spawn_with_sm(pr, users.1, "pw", server(), connectors.1, sm);
    let to = format!("{}@{DOMAIN}", users.1);
    for c in [&mut a, &mut b] {
        c.cmd(Command::Connect).await;
        c.wait("connected", |e| {
            matches!(e, Event::State(ConnectionState::Connected { .. }))
        })
        .await;
    }
    let mut lat = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        send(&a, &to, format!("lat {i}")).await;
        assert_eq!(recv_body(&mut b).await, format!("lat {i}"));
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    for i in 0..RATE_MESSAGES {
        send(&a, &to, format!("rate {i}")).await;
    }
    for i in 0..RATE_MESSAGES {
        assert_eq!(recv_body(&mut b).await, format!("rate {i}"));
    }
    let rate = RATE_MESSAGES as f64 / t.elapsed().as_secs_f64();
    for c in [&a, &b] {
        c.cmd(Command::Disconnect).await;
    }
    Row {
        path,
        client: if sm {
            "timb (timb-xmpp session, XEP-0198 acks)"
        } else {
            "timb, stream management off"
        },
        baseline: false,
        rate,
        median_ms: percentile(&mut lat, 0.5),
        p90_ms: percentile(&mut lat, 0.9),
    }
}

/// A bare XMPP client: TLS, PLAIN, bind, then raw writes and byte scans.
struct Raw {
    s: timb_tls::TlsStream<BoxStream>,
    buf: Vec<u8>,
}

impl Raw {
    async fn login(stream: BoxStream, pr: &Prosody, user: &str) -> Raw {
        let s = timb_tls::connect(stream, DOMAIN, &pr.policy())
            .await
            .unwrap();
        let mut r = Raw { s, buf: Vec::new() };
        let header = format!("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>");
        r.write(&header).await;
        r.expect("</stream:features>").await;
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0pw"));
        r.write(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>"
        ))
        .await;
        r.expect("<success").await;
        r.write(&header).await;
        r.expect("</stream:features>").await;
        r.write("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>").await;
        r.expect("</iq>").await;
        r.write("<presence/>").await;
        r
    }

    async fn write(&mut self, s: &str) {
        self.s.write_all(s.as_bytes()).await.unwrap();
        self.s.flush().await.unwrap();
    }

    async fn expect(&mut self, needle: &str) {
        let n = needle.as_bytes();
        loop {
            if let Some(i) = self.buf.windows(n.len()).position(|w| w == n) {
                self.buf.drain(..i + n.len());
                return;
            }
            let mut tmp = [0u8; 16 * 1024];
            let k = tokio::time::timeout(Duration::from_secs(60), self.s.read(&mut tmp))
                .await
                .expect("baseline read timed out")
                .unwrap();
            assert!(k > 0, "baseline stream closed");
            self.buf.extend_from_slice(&tmp[..k]);
        }
    }

    async fn message(&mut self, to: &str, body: &str) {
        self.write(&format!(
            "<message to='{to}' type='chat'><body>{body}</body></message>"
        ))
        .await;
    }
}

async fn baseline_row(
    path: &'static str,
    pr: &Prosody,
    host: &str,
    port: u16,
    users: (&str, &str),
    connectors: (Arc<dyn Connector>, Arc<dyn Connector>),
) -> Row {
    let mut a = Raw::login(
        connectors.0.connect(host.into(), port).await.unwrap(),
        pr,
        users.0,
    )
    .await;
    let mut b = Raw::login(
        connectors.1.connect(host.into(), port).await.unwrap(),
        pr,
        users.1,
    )
    .await;
    let to = format!("{}@{DOMAIN}", users.1);
    let mut lat = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        a.message(&to, &format!("lat {i}")).await;
        b.expect(&format!("<body>lat {i}</body>")).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    for i in 0..RATE_MESSAGES {
        a.message(&to, &format!("rate {i}")).await;
    }
    b.expect(&format!("<body>rate {}</body>", RATE_MESSAGES - 1))
        .await;
    let rate = RATE_MESSAGES as f64 / t.elapsed().as_secs_f64();
    Row {
        path,
        client: "baseline (raw XMPP over the same TLS)",
        baseline: true,
        rate,
        median_ms: percentile(&mut lat, 0.5),
        p90_ms: percentile(&mut lat, 0.9),
    }
}

/// A fresh pair for every row, so a previous row's session can never be
/// resumed or replaced: timb1/2 timb's rows, timb3/4 timb over c-tor, timb5/6
/// timb without stream management, base1/2 and base3/4 the baseline over
/// c-tor and over arti.
const USERS: [(&str, &str); 12] = [
    ("timb1", "pw"),
    ("timb2", "pw"),
    ("timb3", "pw"),
    ("timb4", "pw"),
    ("timb5", "pw"),
    ("timb6", "pw"),
    ("base1", "pw"),
    ("base2", "pw"),
    ("base3", "pw"),
    ("base4", "pw"),
    ("base5", "pw"),
    ("base6", "pw"),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    timb_tls::install_crypto_provider();
    let tor = std::env::var_os("TIMB_TESTNET").is_some() || std::env::args().any(|a| a == "--tor");
    let mut rows = Vec::new();
    {
        let pr = Prosody::start_on(&USERS, free_port(), &[free_port()]);
        let port = pr.tls_port;
        let lo: Arc<dyn Connector> = Arc::new(LoopConnector { port });
        let path = "loopback TCP";
        let pair = || (lo.clone(), lo.clone());
        let users = ("timb1", "timb2");
        rows.push(timb_row(path, &pr, "127.0.0.1", port, users, pair(), true).await);
        let users = ("timb5", "timb6");
        rows.push(timb_row(path, &pr, "127.0.0.1", port, users, pair(), false).await);
        let users = ("base1", "base2");
        rows.push(baseline_row(path, &pr, "127.0.0.1", port, users, pair()).await);
    }
    if tor {
        let (net, network_file) = tokio::task::spawn_blocking(|| {
            let n = timb_testnet::TestNet::shared();
            (n.info().clone(), n.config_path().to_owned())
        })
        .await
        .unwrap();
        // Index 7: the last of the XMPP block, so the tor test can run beside.
        let port = net
            .exit_port(timb_testnet::exit_port_index::XMPP.end - 1)
            .unwrap();
        let pr = Prosody::start_on(&USERS, free_port(), &[port]);

        let state = tempfile::tempdir().unwrap();
        let tor = arti(&network_file, state.path()).await;
        let via =
            |n: u32| -> Arc<dyn Connector> { Arc::new(TorConnector::new(&tor, AccountId(n))) };
        let path = "private Tor network, timb's arti → exit";
        let users = ("timb1", "timb2");
        rows.push(timb_row(path, &pr, "127.0.0.1", port, users, (via(1), via(2)), true).await);
        let users = ("timb5", "timb6");
        rows.push(timb_row(path, &pr, "127.0.0.1", port, users, (via(3), via(4)), false).await);
        let users = ("base3", "base4");
        rows.push(baseline_row(path, &pr, "127.0.0.1", port, users, (via(5), via(6))).await);

        let socks: Arc<dyn Connector> = Arc::new(SocksConnector {
            socks_port: net.harness.socks_port,
        });
        let path = "private Tor network, c-tor SOCKS → exit";
        let pair = || (socks.clone(), socks.clone());
        let users = ("timb3", "timb4");
        rows.push(timb_row(path, &pr, "127.0.0.1", port, users, pair(), true).await);
        let users = ("base5", "base6");
        rows.push(baseline_row(path, &pr, "127.0.0.1", port, users, pair()).await);
    }
    println!(
        "| path | client | msgs/s ({RATE_MESSAGES} back to back) | latency median ({LATENCY_SAMPLES} sequential) | latency p90 | median / baseline's on the same path |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let ratio = rows
            .iter()
            .find(|b| b.baseline && b.path == r.path)
            .filter(|b| !r.baseline && b.median_ms > 0.0)
            .map(|b| format!("{:.2}", r.median_ms / b.median_ms))
            .unwrap_or_default();
        println!(
            "| {} | {} | {:.1} | {:.2} ms | {:.2} ms | {ratio} |",
            r.path, r.client, r.rate, r.median_ms, r.p90_ms
        );
    }
    if !tor {
        println!("\nTor rows: run with TIMB_TESTNET set or `--tor`.");
    }
}
