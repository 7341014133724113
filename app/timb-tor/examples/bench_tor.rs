//! Tor transport benchmark on the private network: arti (timb-tor) next to
//! a c-tor client started with the same authorities. Prints a Markdown table.
//!
//! `cargo run -p timb-tor --example bench_tor` (uses `TIMB_TESTNET` if set,
//! else starts a private network). Uses exit port index 15 and the "bench"
//! onion service.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use timb_core::AccountId;
use timb_testnet::{echo_roundtrip, socks5_connect, EchoServer, TestNet};
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

struct Ctor(Child);
impl Drop for Ctor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a fresh c-tor client on the network and times it to
/// "Bootstrapped 100%".
fn start_ctor(net: &TestNet, dir: &std::path::Path) -> Result<(Ctor, u16, Duration), String> {
    let info = net.info();
    let socks = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut torrc = format!(
        "TestingTorNetwork 1\nDataDirectory {d}\nSocksPort 127.0.0.1:{socks}\nLog notice stdout\n\
         UseDefaultFallbackDirs 0\nAddressDisableIPv6 1\nClientUseIPv6 0\n\
         OutboundBindAddress 127.0.0.1\nLearnCircuitBuildTimeout 0\nCircuitBuildTimeout 60\n\
         PathsNeededToBuildCircuits 0.67\nShutdownWaitLength 0\n",
        d = dir.display()
    );
    for a in &info.authorities {
        torrc.push_str(&format!(
            "DirAuthority {} orport={} no-v2 v3ident={} {}:{} {}\n",
            a.nickname, a.or_port, a.v3ident, a.address, a.dir_port, a.rsa_identity
        ));
    }
    let rc = dir.join("torrc");
    std::fs::write(&rc, torrc).map_err(|e| e.to_string())?;
    let tor = ["/usr/bin/tor", "/usr/sbin/tor"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or("tor is not installed")?;
    let start = Instant::now();
    let mut child = Command::new(tor)
        .arg("-f")
        .arg(&rc)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let guard = Ctor(child);
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.contains("Bootstrapped 100%") {
            return Ok((guard, socks, start.elapsed()));
        }
        if start.elapsed() > Duration::from_secs(180) {
            break;
        }
    }
    Err("c-tor did not bootstrap".into())
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

    let ctor_dir = dir.path().join("ctor");
    std::fs::create_dir_all(&ctor_dir).expect("mkdir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&ctor_dir, std::fs::Permissions::from_mode(0o700));
    }
    let ctor = start_ctor(net, &ctor_dir);
    let (ctor_boot, ctor_exit, ctor_onion) = match &ctor {
        Ok((_, socks, boot)) => (
            ms(*boot),
            ctor_first_byte(*socks, "127.0.0.1", exit_port),
            ctor_first_byte(*socks, &svc.onion, svc.port),
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
