//! Test support: a real prosody on loopback with a test CA, a loopback
//! connector, timb-tor's arti and c-tor SOCKS connectors, a recording TLS
//! layer and a cuttable TCP proxy.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timb_core::{AccountHandle, AccountId, Command, Event};
use timb_tls::test_ca::{Leaf, TestCa};
use timb_tls::{PinSet, TlsPolicy};
use timb_xmpp::{
    BoxFuture, BoxStream, Connector, PolicyTls, ServerAddr, TlsInfo, TlsMode, TlsUpgrade,
    XmppConfig, XmppError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const DOMAIN: &str = "timb.test";
pub const MUC: &str = "muc.timb.test";

pub struct Prosody {
    child: Child,
    pub dir: tempfile::TempDir,
    pub c2s_port: u16,
    pub tls_port: u16,
    pub leaf: Leaf,
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Debugging aid: keep the server log when asked.
        if let Some(dst) = std::env::var_os("TIMB_XMPP_KEEP_LOG") {
            let _ = std::fs::copy(self.log_path(), dst);
        }
    }
}

/// A free loopback port (bound then released; prosody binds it right after).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Prosody {
    /// Starts prosody with `c2s_require_encryption`, STARTTLS and direct TLS
    /// ports, a MUC component, and the given users registered.
    pub fn start(users: &[(&str, &str)]) -> Prosody {
        Prosody::start_on(users, free_port(), &[free_port()])
    }

    /// Like [`Prosody::start`] on given ports: STARTTLS on `c2s_port`,
    /// direct TLS on every port of `tls_ports` (the first is `tls_port`).
    pub fn start_on(users: &[(&str, &str)], c2s_port: u16, tls_ports: &[u16]) -> Prosody {
        Prosody::start_custom(users, c2s_port, tls_ports, "smacks_hibernation_time = 120")
    }

    /// With extra global config lines.
    pub fn start_custom(
        users: &[(&str, &str)],
        c2s_port: u16,
        tls_ports: &[u16],
        extra: &str,
    ) -> Prosody {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let ca = TestCa::new("timb test CA");
        let leaf = ca.issue(&[DOMAIN, MUC]);
        std::fs::write(d.join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &leaf.key_pem).unwrap();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::create_dir_all(d.join("certs")).unwrap();
        let tls_port = tls_ports[0];
        let tls_list = tls_ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let p = |n: &str| d.join(n).display().to_string();
        let cfg = format!(
            r#"
run_as_root = true
pidfile = "{pid}"
data_path = "{data}"
certificates = "{certs}"
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{log}" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{ {tls_list} }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
{extra}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "smacks", "posix", "version", "time", "uptime" }}
modules_disabled = {{ "s2s" }}
ssl = {{ certificate = "{cert}", key = "{key}" }}
VirtualHost "{DOMAIN}"
Component "{MUC}" "muc"
"#,
            pid = p("prosody.pid"),
            data = p("data"),
            certs = p("certs"),
            log = p("prosody.log"),
            cert = p("cert.pem"),
            key = p("key.pem"),
        );
        let cfg_path = d.join("prosody.cfg.lua");
        std::fs::write(&cfg_path, cfg).unwrap();
        for (u, pw) in users {
            let st = StdCommand::new("prosodyctl")
                .arg("--config")
                .arg(&cfg_path)
                .args(["register", u, DOMAIN, pw])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("prosodyctl");
            assert!(st.success(), "prosodyctl register failed");
        }
        let child = StdCommand::new("prosody")
            .arg("--config")
            .arg(&cfg_path)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody");
        let pr = Prosody {
            child,
            dir,
            c2s_port,
            tls_port,
            leaf,
        };
        pr.wait_ready();
        pr
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "test probes the loopback prosody it started itself"
    )]
    fn wait_ready(&self) {
        for _ in 0..200 {
            // Direct TLS ports come up with the c2s ones.
            let a = std::net::TcpStream::connect(("127.0.0.1", self.c2s_port)).is_ok();
            let b = std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_ok();
            if a && b {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prosody did not start; log: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prosody.log")).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    pub fn policy(&self) -> TlsPolicy {
        TlsPolicy::Pinned(PinSet::leaf(DOMAIN, [self.leaf.spki_sha256()]))
    }
}

/// Connects to 127.0.0.1:`port` whatever host the account names (the app's
/// connector goes through arti instead).
pub struct LoopConnector {
    pub port: u16,
}

impl Connector for LoopConnector {
    #[allow(
        clippy::disallowed_methods,
        reason = "test connects to the loopback server it started itself"
    )]
    fn connect(&self, host: String, _port: u16) -> BoxFuture<Result<BoxStream, XmppError>> {
        let port = self.port;
        Box::pin(async move {
            assert_eq!(host, "127.0.0.1", "tests only ever use loopback");
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| XmppError::Io(e.to_string()))?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

/// Everything the client wrote inside TLS, i.e. what the server sees.
#[derive(Clone, Default)]
pub struct Recording(pub Arc<Mutex<Vec<u8>>>);

impl Recording {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct RecordingStream {
    inner: BoxStream,
    rec: Recording,
}

impl AsyncRead for RecordingStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for RecordingStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.rec.0.lock().unwrap().extend_from_slice(&buf[..*n]);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// timb-tls's pinned TLS, recording the plaintext the client sends.
pub struct RecordingTls {
    pub inner: PolicyTls,
    pub rec: Recording,
}

impl TlsUpgrade for RecordingTls {
    fn upgrade(
        &self,
        stream: BoxStream,
        server_name: String,
    ) -> BoxFuture<Result<(BoxStream, TlsInfo), XmppError>> {
        let fut = self.inner.upgrade(stream, server_name);
        let rec = self.rec.clone();
        Box::pin(async move {
            let (s, info) = fut.await?;
            Ok((
                Box::new(RecordingStream { inner: s, rec }) as BoxStream,
                info,
            ))
        })
    }
}

/// A TCP proxy in front of prosody that the test can black-hole and cut,
/// to simulate a Tor circuit dying.
pub struct Proxy {
    pub port: u16,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    blackhole: Arc<AtomicBool>,
    refuse: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl Proxy {
    pub async fn start(target: u16) -> Proxy {
        Proxy::start_on(0, target).await
    }

    /// Listens on 127.0.0.1:`listen` (0: any free port).
    pub async fn start_on(listen: u16, target: u16) -> Proxy {
        let l = TcpListener::bind(("127.0.0.1", listen)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let blackhole = Arc::new(AtomicBool::new(false));
        let refuse = Arc::new(AtomicBool::new(false));
        let (c2, b2, r2) = (conns.clone(), blackhole.clone(), refuse.clone());
        let accept = tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                if r2.load(Ordering::SeqCst) {
                    drop(c);
                    continue;
                }
                let bh = b2.clone();
                c2.lock()
                    .unwrap()
                    .push(tokio::spawn(pump_pair(c, target, bh)));
            }
        });
        Proxy {
            port,
            conns,
            blackhole,
            refuse,
            accept,
        }
    }

    /// Stops forwarding in both directions but keeps the sockets open: what
    /// the client writes now is lost, like data in a dying circuit.
    pub fn blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }

    /// Drops new connections at once while set (the server is unreachable).
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Drops every current connection.
    pub fn cut(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
        self.blackhole(false);
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "test proxy connects to the loopback prosody it started itself"
)]
async fn pump_pair(client: tokio::net::TcpStream, target: u16, bh: Arc<AtomicBool>) {
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let b1 = bh.clone();
    tokio::select! {
        _ = pump(cr, sw, b1) => {}
        _ = pump(sr, cw, bh) => {}
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, mut w: impl AsyncWrite + Unpin, bh: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if bh.load(Ordering::SeqCst) {
            continue;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

pub fn config(user: &str, pw: &str, port: u16, tls: TlsMode) -> XmppConfig {
    let mut c = XmppConfig::new(&format!("{user}@{DOMAIN}"), pw);
    c.server = Some(ServerAddr {
        host: "127.0.0.1".into(),
        port,
        tls,
    });
    c.timeout = Duration::from_secs(10);
    c.ping_interval = Duration::from_secs(30);
    c.reconnect_attempts = 3;
    c
}

pub struct Client {
    pub h: AccountHandle,
    pub rec: Recording,
}

/// Spawns an account on `port` (direct TLS or STARTTLS) and connects it.
pub fn spawn(pr: &Prosody, user: &str, pw: &str, port: u16, mode: TlsMode) -> Client {
    let rec = Recording::default();
    let tls = RecordingTls {
        inner: PolicyTls::new(pr.policy(), Some(port), mode == TlsMode::Direct),
        rec: rec.clone(),
    };
    let cfg = config(user, pw, port, mode);
    let h = timb_xmpp::spawn_account(
        AccountId(port as u32),
        cfg,
        Arc::new(LoopConnector { port }),
        Arc::new(tls),
    );
    Client { h, rec }
}

impl Client {
    pub async fn cmd(&self, c: Command) {
        self.h.commands.send(c).await.expect("account task alive");
    }

    /// Waits for an event matching `pred`, returning it; other events are
    /// skipped (and kept in `seen` for diagnostics).
    pub async fn wait<F: FnMut(&Event) -> bool>(&mut self, what: &str, mut pred: F) -> Event {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.h.events.recv()).await {
                Ok(Some(e)) => {
                    if pred(&e) {
                        return e;
                    }
                    seen.push(e);
                }
                Ok(None) => panic!("account task ended waiting for {what}; seen {seen:?}"),
                Err(_) => panic!("timed out waiting for {what}; seen {seen:?}"),
            }
        }
    }

    /// Collects events for `d`.
    pub async fn drain(&mut self, d: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.h.events.recv()).await {
            out.push(e);
        }
        out
    }
}

/// timb's own path onto the network, as in the app: arti streams from
/// timb-tor, isolated per account.
pub struct ArtiConnector {
    pub tor: timb_tor::Transport,
    pub account: AccountId,
}

impl Connector for ArtiConnector {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, XmppError>> {
        let (tor, account) = (self.tor.clone(), self.account);
        Box::pin(async move {
            let s = tor
                .connect(account, &host, port)
                .await
                .map_err(|e| XmppError::Io(format!("through Tor: {e}")))?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

/// Bootstraps timb-tor's arti on the private test network described by
/// `network_file`, keeping its state in `state`.
pub async fn arti(network_file: &std::path::Path, state: &std::path::Path) -> timb_tor::Transport {
    let config = timb_tor::TorConfig::private_network(network_file, state).expect("network file");
    let (progress, _watch) = tokio::sync::watch::channel(Default::default());
    timb_tor::Transport::bootstrap(config, progress)
        .await
        .expect("arti bootstraps on the private network")
}

/// Streams through the test network's c-tor SOCKS port: the baseline
/// clients' path, and a second Tor path to compare timb's arti against.
pub struct SocksConnector {
    pub socks_port: u16,
}

impl Connector for SocksConnector {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, XmppError>> {
        let socks = self.socks_port;
        Box::pin(async move {
            let s = tokio::task::spawn_blocking(move || {
                timb_testnet::socks5_connect(socks, &host, port)
            })
            .await
            .map_err(|e| XmppError::Io(e.to_string()))?
            .map_err(|e| XmppError::Io(format!("through Tor: {e}")))?;
            s.set_read_timeout(None)
                .map_err(|e| XmppError::Io(e.to_string()))?;
            s.set_write_timeout(None)
                .map_err(|e| XmppError::Io(e.to_string()))?;
            s.set_nonblocking(true)
                .map_err(|e| XmppError::Io(e.to_string()))?;
            // A real local socket to c-tor (arti in the app has none):
            // without this, Nagle meets the peer's delayed ACK whenever
            // data flows both ways, as XEP-0198 acks make it do.
            s.set_nodelay(true)
                .map_err(|e| XmppError::Io(e.to_string()))?;
            let s = tokio::net::TcpStream::from_std(s).map_err(|e| XmppError::Io(e.to_string()))?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

/// Spawns an account with an explicit connector and server address.
pub fn spawn_with(
    pr: &Prosody,
    user: &str,
    pw: &str,
    server: ServerAddr,
    connector: Arc<dyn Connector>,
) -> Client {
    let rec = Recording::default();
    let tls = RecordingTls {
        inner: PolicyTls::new(
            pr.policy(),
            Some(server.port),
            server.tls == TlsMode::Direct,
        ),
        rec: rec.clone(),
    };
    let mut cfg = config(user, pw, server.port, server.tls);
    cfg.server = Some(server);
    cfg.timeout = Duration::from_secs(30);
    let h = timb_xmpp::spawn_account(AccountId(1), cfg, connector, Arc::new(tls));
    Client { h, rec }
}
