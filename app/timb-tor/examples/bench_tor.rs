//! Tor transport benchmark on the private network: arti (timb-tor) next to
//! a c-tor client started with the same authorities, **in the same run**, over
//! several rounds (`TIMB_BENCH_ROUNDS`, default 5), each from an empty state.
//! Prints medians and the arti/c-tor ratio as a Markdown table (#20).
//!
//! `cargo xtask bench tor`, or `cargo run -p timb-tor --example bench_tor` (uses
//! `TIMB_TESTNET` if set, else starts a private network). Uses exit port index 15
//! and the "bench" onion service.
//!
//! Per round and client: bootstrap; the first byte through an exit right after it
//! (with the stream's opening apart: circuit plus BEGIN/CONNECTED); the first byte
//! from the onion service (cold descriptor); then warm: a second stream to each on
//! the same client (WARM of each, alternating). arti also gets one more row: the first byte through an exit
//! from a new isolation group 3 s after bootstrap, when its preemptive circuits
//! had time to be built — the difference to the row right after bootstrap is the
//! circuit the first stream waits for.

use std::time::{Duration, Instant};

use timb_core::AccountId;
use timb_testnet::{echo_roundtrip, socks5_connect, CtorClient, EchoServer, TestNet};
use timb_tor::{BootstrapProgress, TorConfig, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXIT_INDEX: usize = 15;
/// Warm streams per round and destination (the loopback network stalls now and then
/// for about 40 ms, for both clients: more samples make the medians steady).
const WARM: usize = 5;

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// One first-byte measurement: the stream open, then the echoed byte.
#[derive(Clone, Copy)]
struct FirstByte {
    open: Duration,
    byte: Duration,
}

async fn arti_first_byte(
    t: &Transport,
    account: u32,
    host: &str,
    port: u16,
) -> Result<FirstByte, String> {
    let start = Instant::now();
    let mut s = t
        .connect(AccountId(account), host, port)
        .await
        .map_err(|e| e.to_string())?;
    let open = start.elapsed();
    s.write_all(b"x").await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    Ok(FirstByte {
        open,
        byte: start.elapsed(),
    })
}

fn ctor_first_byte(socks: u16, host: &str, port: u16) -> Result<FirstByte, String> {
    let start = Instant::now();
    let mut s = socks5_connect(socks, host, port).map_err(|e| e.to_string())?;
    let open = start.elapsed();
    echo_roundtrip(&mut s, b"x", Duration::from_secs(120)).map_err(|e| e.to_string())?;
    Ok(FirstByte {
        open,
        byte: start.elapsed(),
    })
}

/// What one client measured in one round.
#[derive(Default)]
struct Round {
    bootstrap: Option<Duration>,
    exit: Option<FirstByte>,
    onion: Option<FirstByte>,
    /// `WARM` streams each, one after the other.
    exit_warm: Vec<FirstByte>,
    onion_warm: Vec<FirstByte>,
    exit_settled: Option<FirstByte>,
}

fn keep(r: Result<FirstByte, String>, what: &str, errors: &mut Vec<String>) -> Option<FirstByte> {
    r.map_err(|e| errors.push(format!("{what}: {e}"))).ok()
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    (!v.is_empty()).then(|| v[v.len() / 2])
}

fn main() {
    let rounds: usize = std::env::var("TIMB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let net = TestNet::shared();
    let info = net.info();
    let exit_port = info.exit_port(EXIT_INDEX).expect("exit port 15");
    let svc = info
        .onion_service("bench")
        .expect("bench onion service")
        .clone();
    let _exit_echo = EchoServer::bind(exit_port).expect("bind exit echo");
    let _onion_echo = EchoServer::bind(svc.target_port).expect("bind onion echo");

    let mut errors = Vec::new();
    let (mut arti, mut ctor) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        // Alternate which client goes first, so neither always meets a quieter network.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            if which == 0 {
                arti.push(rt.block_on(arti_round(
                    net,
                    &dir.path().join("arti"),
                    exit_port,
                    &svc,
                    &mut errors,
                )));
            } else {
                ctor.push(ctor_round(
                    net,
                    &dir.path().join("ctor"),
                    exit_port,
                    &svc,
                    &mut errors,
                ));
            }
        }
        eprintln!("bench_tor: round {} of {rounds} done", round + 1);
    }

    println!(
        "| Tor transport, private network on 127.0.0.1, median of {rounds} rounds | arti (timb-tor) | c-tor client | ratio |"
    );
    println!("|---|---|---|---|");
    println!(
        "| network ready (harness `ready_secs`) | {:.1} s | {:.1} s | |",
        info.harness.ready_secs, info.harness.ready_secs
    );
    let row = |name: &str, get: &dyn Fn(&Round) -> Vec<Duration>| {
        let a = median(arti.iter().flat_map(get).collect());
        let c = median(ctor.iter().flat_map(get).collect());
        let show = |d: Option<Duration>| d.map(ms).unwrap_or_else(|| "—".into());
        let ratio = match (a, c) {
            (Some(a), Some(c)) if !c.is_zero() => {
                format!("{:.2}", a.as_secs_f64() / c.as_secs_f64())
            }
            _ => String::new(),
        };
        println!("| {name} | {} | {} | {ratio} |", show(a), show(c));
    };
    let one = |d: Option<Duration>| d.into_iter().collect::<Vec<_>>();
    row("client bootstrap, empty state", &|r| one(r.bootstrap));
    row("first byte through an exit, right after bootstrap", &|r| {
        one(r.exit.map(|f| f.byte))
    });
    row("… of which opening the stream", &|r| {
        one(r.exit.map(|f| f.open))
    });
    row("first byte from an onion service, cold descriptor", &|r| {
        one(r.onion.map(|f| f.byte))
    });
    row("… of which opening the stream", &|r| {
        one(r.onion.map(|f| f.open))
    });
    row(
        &format!("first byte through an exit, warm (next {WARM} streams)"),
        &|r| r.exit_warm.iter().map(|f| f.byte).collect(),
    );
    row(
        &format!("first byte from the onion service, warm (next {WARM} streams)"),
        &|r| r.onion_warm.iter().map(|f| f.byte).collect(),
    );
    row("… of which opening the stream", &|r| {
        r.onion_warm.iter().map(|f| f.open).collect()
    });
    row(
        "first byte through an exit, new isolation 3 s after bootstrap (arti only)",
        &|r| one(r.exit_settled.map(|f| f.byte)),
    );
    for e in &errors {
        println!("\nfailed: {e}");
    }
}

async fn arti_round(
    net: &TestNet,
    dir: &std::path::Path,
    exit_port: u16,
    svc: &timb_testnet::OnionServiceInfo,
    errors: &mut Vec<String>,
) -> Round {
    let mut r = Round::default();
    let config = TorConfig::private_network(net.config_path(), dir).expect("config");
    let (tx, _rx) = tokio::sync::watch::channel(BootstrapProgress::default());
    let start = Instant::now();
    let t = match Transport::bootstrap(config, tx).await {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("arti bootstrap: {e}"));
            return r;
        }
    };
    r.bootstrap = Some(start.elapsed());
    let ready = Instant::now();
    r.exit = keep(
        arti_first_byte(&t, 1, "127.0.0.1", exit_port).await,
        "arti exit",
        errors,
    );
    r.onion = keep(
        arti_first_byte(&t, 1, &svc.onion, svc.port).await,
        "arti onion",
        errors,
    );
    for _ in 0..WARM {
        let e = arti_first_byte(&t, 1, "127.0.0.1", exit_port).await;
        r.exit_warm.extend(keep(e, "arti exit warm", errors));
        let o = arti_first_byte(&t, 1, &svc.onion, svc.port).await;
        r.onion_warm.extend(keep(o, "arti onion warm", errors));
    }
    tokio::time::sleep_until((ready + Duration::from_secs(3)).into()).await;
    r.exit_settled = keep(
        arti_first_byte(&t, 2, "127.0.0.1", exit_port).await,
        "arti exit settled",
        errors,
    );
    r
}

fn ctor_round(
    net: &TestNet,
    dir: &std::path::Path,
    exit_port: u16,
    svc: &timb_testnet::OnionServiceInfo,
    errors: &mut Vec<String>,
) -> Round {
    let mut r = Round::default();
    let c = match CtorClient::start(net, dir) {
        Ok(c) => c,
        Err(e) => {
            errors.push(format!("c-tor start: {e}"));
            return r;
        }
    };
    r.bootstrap = Some(c.bootstrap);
    r.exit = keep(
        ctor_first_byte(c.socks_port, "127.0.0.1", exit_port),
        "c-tor exit",
        errors,
    );
    r.onion = keep(
        ctor_first_byte(c.socks_port, &svc.onion, svc.port),
        "c-tor onion",
        errors,
    );
    for _ in 0..WARM {
        let e = ctor_first_byte(c.socks_port, "127.0.0.1", exit_port);
        r.exit_warm.extend(keep(e, "c-tor exit warm", errors));
        let o = ctor_first_byte(c.socks_port, &svc.onion, svc.port);
        r.onion_warm.extend(keep(o, "c-tor onion warm", errors));
    }
    r
}
