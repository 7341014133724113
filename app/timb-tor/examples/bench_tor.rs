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
//!
//! A long-lived port (one whose streams need a circuit of Stable relays, as timb's 5222
//! and 6697 do): each client fresh, the bench's exit port made long-lived in both (arti's
//! `long_lived_ports`, c-tor's `LongLivedPorts`), the first byte right after bootstrap with
//! arti predicting that port (what timb does for its ports, `TorConfig::default_network`)
//! and with arti's default predictions (80, 443).
//!
//! Then a second table: arti through a bridge (plain, and obfs4 with the transport started
//! as the messenger starts it) against arti direct (#16).
//!
//! The cold onion connection as a timeline: when the descriptor was in hand, the
//! rendezvous point established, INTRODUCE1 sent, the introduction acknowledged and
//! RENDEZVOUS2 received, from arti's debug events (tor-hsclient) and from c-tor's
//! control-port events (HS_DESC, and the circuits' HS_STATE).

use std::sync::Mutex;
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

/// The milestones of a cold onion connection, in order of the table's rows.
const ONION_PHASES: [&str; 5] = [
    "descriptor in hand",
    "rendezvous point established",
    "INTRODUCE1 sent",
    "introduction acknowledged",
    "RENDEZVOUS2 received (joined)",
];

/// arti's debug messages (tor-hsclient connect.rs) that mark each of [`ONION_PHASES`].
const ARTI_MARKS: [&str; 5] = [
    ": setting up rendezvous point",
    ": got RENDEZVOUS_ESTABLISHED",
    ": making introduction - sending INTRODUCE1",
    ": making introduction - success",
    ": received RENDEZVOUS2",
];

/// c-tor's control-port events that mark each of [`ONION_PHASES`] (control-spec: HS_DESC,
/// and the HS_STATE of the client's introduction and rendezvous circuits; the space keeps
/// `OLD_HS_STATE=`, which the next change carries, from matching).
const CTOR_MARKS: [&str; 5] = [
    "HS_DESC RECEIVED",
    " HS_STATE=HSCR_ESTABLISHED_IDLE",
    " HS_STATE=HSCI_INTRO_SENT",
    " HS_STATE=HSCI_DONE",
    " HS_STATE=HSCR_JOINED",
];

/// arti's tor-hsclient events as they happen (the only ones this bench subscribes to).
static ARTI_EVENTS: Mutex<Vec<(Instant, String)>> = Mutex::new(Vec::new());

/// A tracing subscriber that keeps the message of every event from tor-hsclient and
/// turns every other callsite off, so arti runs as it does in timb (which installs none).
struct HsEvents;

impl tracing::Subscriber for HsEvents {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.is_event() && meta.target().starts_with("tor_hsclient") {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.is_event() && meta.target().starts_with("tor_hsclient")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        ARTI_EVENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Instant::now(), m.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// For each mark, how long after `start` the first event containing it came.
fn timeline(
    start: Instant,
    events: &[(Instant, String)],
    marks: &[&str; 5],
) -> [Option<Duration>; 5] {
    marks.map(|mark| {
        events
            .iter()
            .find(|(at, text)| *at >= start && text.contains(mark))
            .map(|(at, _)| at.duration_since(start))
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
    /// The cold onion connection's milestones ([`ONION_PHASES`]).
    onion_phases: [Option<Duration>; 5],
    /// First byte to a long-lived port right after bootstrap (arti: predicting it).
    long_lived: Option<FirstByte>,
    /// The same, arti with its default predictions.
    long_lived_unpredicted: Option<FirstByte>,
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
    if let Err(e) = tracing::subscriber::set_global_default(HsEvents) {
        eprintln!("bench_tor: no onion timeline for arti: {e}");
    }
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
                let mut r = rt.block_on(arti_round(
                    net,
                    &dir.path().join("arti"),
                    exit_port,
                    &svc,
                    &mut errors,
                ));
                for predicted in [true, false] {
                    let name = format!("arti-long-lived-{predicted}");
                    let f = keep(
                        rt.block_on(arti_long_lived(
                            net,
                            &dir.path().join(name),
                            exit_port,
                            predicted,
                        )),
                        &format!("arti long-lived port (predicted: {predicted})"),
                        &mut errors,
                    );
                    if predicted {
                        r.long_lived = f;
                    } else {
                        r.long_lived_unpredicted = f;
                    }
                }
                arti.push(r);
            } else {
                let mut r = ctor_round(net, &dir.path().join("ctor"), exit_port, &svc, &mut errors);
                r.long_lived = keep(
                    ctor_long_lived(net, &dir.path().join("ctor-long-lived"), exit_port),
                    "c-tor long-lived port",
                    &mut errors,
                );
                // c-tor has the one configuration: the same value on both rows.
                r.long_lived_unpredicted = r.long_lived;
                ctor.push(r);
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
    for (i, phase) in ONION_PHASES.iter().enumerate() {
        row(&format!("… {phase}"), &|r| one(r.onion_phases[i]));
    }
    row("… stream open", &|r| one(r.onion.map(|f| f.open)));
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
    row(
        "first byte to a long-lived port (Stable circuit), right after bootstrap; arti predicting the port (timb's setting)",
        &|r| one(r.long_lived.map(|f| f.byte)),
    );
    row(
        "… arti with its default predictions (80, 443); c-tor the same client as above",
        &|r| one(r.long_lived_unpredicted.map(|f| f.byte)),
    );
    bridge_table(&rt, net, exit_port, rounds, &mut errors);
    for e in &errors {
        println!("\nfailed: {e}");
    }
}

/// One client's bootstrap, and its first byte through the exit (if it came).
type BridgeSample = (Duration, Option<Duration>);

/// How arti reaches Tor in [`bridge_table`]'s columns.
#[derive(Clone, Copy)]
enum Via {
    Direct,
    /// The bridge's own ORPort, no transport.
    PlainBridge,
    /// The bridge's obfs4 port, through obfs4proxy started as the messenger starts lyrebird.
    Obfs4,
}

/// arti through a bridge of the private network against arti direct, in the same run
/// and alternating order: bootstrap from an empty state, and the first byte through an
/// exit right after it. The bridge is a c-tor bridge relay behind Debian's obfs4proxy on
/// 127.0.0.1; the client side of obfs4 is obfs4proxy too, started with
/// `timb_tor::pt::launch` (what the bundle's helper does with lyrebird).
fn bridge_table(
    rt: &tokio::runtime::Runtime,
    net: &TestNet,
    exit_port: u16,
    rounds: usize,
    errors: &mut Vec<String>,
) {
    let bridge = match net.start_bridge(std::net::Ipv4Addr::LOCALHOST.into()) {
        Ok(b) => b,
        Err(e) => {
            errors.push(format!("bridge start: {e}"));
            return;
        }
    };
    // `obfs4 IP:PORT FINGERPRINT cert=… iat-mode=…`: the plain line is the fingerprint
    // at the bridge's ORPort.
    let fingerprint = bridge.line.split_whitespace().nth(2).unwrap_or_default();
    let plain = format!("127.0.0.1:{} {fingerprint}", bridge.or_port);
    let vias = [Via::Direct, Via::PlainBridge, Via::Obfs4];
    let mut results: Vec<Vec<BridgeSample>> = vec![Vec::new(); vias.len()];
    for round in 0..rounds {
        for k in 0..vias.len() {
            let i = (k + round) % vias.len();
            let dir = match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => {
                    errors.push(format!("a scratch folder: {e}"));
                    continue;
                }
            };
            let line = match vias[i] {
                Via::Direct => None,
                Via::PlainBridge => Some(plain.as_str()),
                Via::Obfs4 => Some(bridge.line.as_str()),
            };
            match rt.block_on(bridge_round(net, dir.path(), exit_port, line)) {
                Ok(r) => results[i].push(r),
                Err(e) => errors.push(format!("{}: {e}", line.map_or("direct", |_| "bridge"))),
            }
        }
        eprintln!("bench_tor: bridge round {} of {rounds} done", round + 1);
    }
    println!(
        "\n| arti through a bridge (c-tor bridge relay, obfs4proxy both sides, 127.0.0.1), median of {rounds} rounds | direct | plain bridge | obfs4 bridge | obfs4 / direct |"
    );
    println!("|---|---|---|---|---|");
    let row = |name: &str, get: &dyn Fn(&BridgeSample) -> Option<Duration>| {
        let m: Vec<Option<Duration>> = results
            .iter()
            .map(|v| median(v.iter().filter_map(get).collect()))
            .collect();
        let show = |d: Option<Duration>| d.map(ms).unwrap_or_else(|| "—".into());
        let ratio = match (m[0], m[2]) {
            (Some(d), Some(o)) if !d.is_zero() => {
                format!("{:.2}", o.as_secs_f64() / d.as_secs_f64())
            }
            _ => String::new(),
        };
        println!(
            "| {name} | {} | {} | {} | {ratio} |",
            show(m[0]),
            show(m[1]),
            show(m[2])
        );
    };
    row("client bootstrap, empty state", &|r| Some(r.0));
    row("first byte through an exit, right after bootstrap", &|r| {
        r.1
    });
}

/// One client: bootstrap (through `bridge` when given), then the first byte through the exit.
async fn bridge_round(
    net: &TestNet,
    dir: &std::path::Path,
    exit_port: u16,
    bridge: Option<&str>,
) -> Result<BridgeSample, String> {
    let mut config =
        TorConfig::private_network(net.config_path(), dir).map_err(|e| e.to_string())?;
    // Held for the round: dropping it ends obfs4proxy.
    let mut transport_program = None;
    if let Some(line) = bridge {
        let b = timb_tor::Bridge::parse(line).map_err(|e| e.to_string())?;
        let transports = if b.transport().is_some() {
            let (child, addr) = timb_tor::pt::launch(
                std::path::Path::new(timb_testnet::bridge::OBFS4PROXY),
                timb_tor::bridges::OBFS4,
                &dir.join("pt_state"),
                Duration::from_secs(30),
            )
            .map_err(|e| e.to_string())?;
            transport_program = Some(child);
            timb_tor::Transports::obfs4_running(addr)
        } else {
            timb_tor::Transports::none()
        };
        config = config
            .with_bridges(&[b], &transports)
            .map_err(|e| e.to_string())?;
    }
    let (tx, _rx) = tokio::sync::watch::channel(BootstrapProgress::default());
    let start = Instant::now();
    let measured = match Transport::bootstrap(config, tx).await {
        Ok(t) => {
            let bootstrap = start.elapsed();
            let first = arti_first_byte(&t, 1, "127.0.0.1", exit_port)
                .await
                .ok()
                .map(|f| f.byte);
            Ok((bootstrap, first))
        }
        Err(e) => Err(e.to_string()),
    };
    // Stopped and waited for, whatever happened.
    if let Some(c) = transport_program {
        timb_tor::pt::stop(c);
    }
    measured
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
    let onion_start = Instant::now();
    r.onion = keep(
        arti_first_byte(&t, 1, &svc.onion, svc.port).await,
        "arti onion",
        errors,
    );
    let events = std::mem::take(&mut *ARTI_EVENTS.lock().unwrap_or_else(|p| p.into_inner()));
    r.onion_phases = timeline(onion_start, &events, &ARTI_MARKS);
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
    let watch = c.watch("HS_DESC CIRC CIRC_MINOR");
    if let Err(e) = &watch {
        errors.push(format!("c-tor control port: {e}"));
    }
    let onion_start = Instant::now();
    r.onion = keep(
        ctor_first_byte(c.socks_port, &svc.onion, svc.port),
        "c-tor onion",
        errors,
    );
    if let Ok(w) = watch {
        r.onion_phases = timeline(onion_start, &w.take(), &CTOR_MARKS);
    }
    for _ in 0..WARM {
        let e = ctor_first_byte(c.socks_port, "127.0.0.1", exit_port);
        r.exit_warm.extend(keep(e, "c-tor exit warm", errors));
        let o = ctor_first_byte(c.socks_port, &svc.onion, svc.port);
        r.onion_warm.extend(keep(o, "c-tor onion warm", errors));
    }
    r
}

/// A fresh arti client for which `port` is long-lived; the first byte to it right after
/// bootstrap, with the port predicted (timb's way for its own ports) or not.
async fn arti_long_lived(
    net: &TestNet,
    dir: &std::path::Path,
    port: u16,
    predicted: bool,
) -> Result<FirstByte, String> {
    let mut config = TorConfig::private_network(net.config_path(), dir)
        .and_then(|c| c.with_long_lived_ports(&[port]))
        .map_err(|e| e.to_string())?;
    if predicted {
        config = config
            .with_predicted_ports(&[port])
            .map_err(|e| e.to_string())?;
    }
    let (tx, _rx) = tokio::sync::watch::channel(BootstrapProgress::default());
    let t = Transport::bootstrap(config, tx)
        .await
        .map_err(|e| format!("bootstrap: {e}"))?;
    arti_first_byte(&t, 1, "127.0.0.1", port).await
}

/// The same for a fresh c-tor client told the port is long-lived (c-tor has no setting
/// for the ports it predicts at start).
fn ctor_long_lived(net: &TestNet, dir: &std::path::Path, port: u16) -> Result<FirstByte, String> {
    let c = CtorClient::start_with(net, dir, &format!("LongLivedPorts {port}"))
        .map_err(|e| format!("start: {e}"))?;
    ctor_first_byte(c.socks_port, "127.0.0.1", port)
}
