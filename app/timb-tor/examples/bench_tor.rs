//! Tor transport benchmark on the private network: arti (timb-tor) next to
//! a c-tor client started with the same authorities. Prints a Markdown table.
//!
//! `cargo run -p timb-tor --example bench_tor` (uses `TIMB_TESTNET` if set,
//! else starts a private network). Uses exit port index 15 and the "bench"
//! onion service.

use std::time::{Duration, Instant};

use timb_core::AccountId;
use timb_testnet::{echo_roundtrip, socks5_connect, CtorClient, EchoServer, TestNet};
use timb_tor::{BootstrapProgress, TorConfig, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXIT_INDEX: usize = 15;

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn arti_first_byte(t: &Transport, host: &str, port: u16) -> Result<Duration, String> {
    let start = Instant::now();
    let mut s = t
        .connect(AccountId(1), host, port)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"x").await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    Ok(start.elapsed())
}

fn ctor_first_byte(socks: u16, host: &str, port: u16) -> Result<Duration, String> {
    let start = Instant::now();
    let mut s = socks5_connect(socks, host, port).map_err(|e| e.to_string())?;
    echo_roundtrip(&mut s, b"x", Duration::from_secs(120)).map_err(|e| e.to_string())?;
    Ok(start.elapsed())
}

fn main() {
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
    let dir = tempfile::tempdir().expect("tempdir");

    let (boot, exit_ttfb, onion_ttfb) = rt.block_on(async {
        let config = TorConfig::private_network(net.config_path(), &dir.path().join("arti"))
            .expect("config");
        let (tx, _rx) = tokio::sync::watch::channel(BootstrapProgress::default());
        let start = Instant::now();
        let t = Transport::bootstrap(config, tx)
            .await
            .expect("arti bootstrap");
        let boot = start.elapsed();
        let exit = arti_first_byte(&t, "127.0.0.1", exit_port).await;
        let onion = arti_first_byte(&t, &svc.onion, svc.port).await;
        (boot, exit, onion)
    });

    let ctor = CtorClient::start(net, &dir.path().join("ctor"));
    let (ctor_boot, ctor_exit, ctor_onion) = match &ctor {
        Ok(c) => (
            ms(c.bootstrap),
            ctor_first_byte(c.socks_port, "127.0.0.1", exit_port),
            ctor_first_byte(c.socks_port, &svc.onion, svc.port),
        ),
        Err(e) => (format!("failed: {e}"), Err(e.clone()), Err(e.clone())),
    };
    let show = |r: &Result<Duration, String>| match r {
        Ok(d) => ms(*d),
        Err(e) => format!("failed: {e}"),
    };

    println!("| Tor transport (private network on 127.0.0.1) | arti (timb-tor) | c-tor client |");
    println!("|---|---|---|");
    println!(
        "| network ready (harness `ready_secs`) | {:.1} s | {:.1} s |",
        info.harness.ready_secs, info.harness.ready_secs
    );
    println!(
        "| client bootstrap, empty state | {} | {} |",
        ms(boot),
        ctor_boot
    );
    println!(
        "| first byte through an exit (echo, new circuit) | {} | {} |",
        show(&exit_ttfb),
        show(&ctor_exit)
    );
    println!(
        "| first byte from an onion service (echo, cold descriptor) | {} | {} |",
        show(&onion_ttfb),
        show(&ctor_onion)
    );
    drop(ctor);
}
