//! Test harness: a real ngircd started per test binary from a temporary
//! config, scripted fake servers for hostile and SASL cases, and a raw line
//! client standing in for "someone else's IRC client". Loopback only.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use timb_core::{AccountHandle, AccountId, ConnectionState, Event};
use timb_irc::IrcConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

pub const WAIT: Duration = Duration::from_secs(20);

/// The only way tests open connections: to a loopback server they started.
#[allow(clippy::disallowed_methods)] // loopback server started by this test itself
pub async fn connect_loopback(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to loopback test server")
}

pub async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Test CA and a server certificate for "irc.test" and 127.0.0.1.
pub struct TestPki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub server_cert_pem: String,
    pub server_cert_der: Vec<u8>,
    pub server_key_pem: String,
}

pub fn make_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "timb test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["irc.test".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .distinguished_name
        .push(DnType::CommonName, "irc.test");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        server_cert_pem: cert.pem(),
        server_cert_der: cert.der().to_vec(),
        server_key_pem: key.serialize_pem(),
    }
}

/// A real ngircd as a child process; killed on drop.
pub struct Ngircd {
    child: tokio::process::Child,
    pub port: u16,
    pub tls_port: u16,
    pub pki: TestPki,
    _dir: tempfile::TempDir,
}

impl Ngircd {
    pub async fn start() -> Ngircd {
        let port = free_port().await;
        let tls_port = free_port().await;
        Ngircd::start_on(&[port], tls_port).await
    }

    /// Plain text on every port in `plain` (the first is `self.port`), TLS
    /// on `tls_port`: lets tests bind the ports the Tor test network routes.
    pub async fn start_on(plain: &[u16], tls_port: u16) -> Ngircd {
        let port = plain[0];
        let plain_list = plain
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki();
        let d = dir.path();
        std::fs::write(d.join("cert.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &pki.server_key_pem).unwrap();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        // ngircd may drop to "nobody" when started as root.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let conf = format!(
            "[Global]\nName = irc.test\nInfo = timb test server\nListen = 127.0.0.1\n\
             Ports = {plain_list}\nMotdPhrase = test\nAdminInfo1 = test\nAdminInfo2 = test\nAdminEMail = t@irc.test\n\
             [Limits]\nMaxNickLength = 30\nPingTimeout = 120\nPongTimeout = 60\nMaxConnectionsIP = 0\n\
             [Options]\nDNS = no\nIdent = no\nPAM = no\nIncludeDir = {inc}\n\
             [SSL]\nCertFile = {cert}\nKeyFile = {key}\nPorts = {tls_port}\n",
            inc = d.join("conf.d").display(),
            cert = d.join("cert.pem").display(),
            key = d.join("key.pem").display(),
        );
        let conf_path: PathBuf = d.join("ngircd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = tokio::process::Command::new("/usr/sbin/ngircd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start /usr/sbin/ngircd");
        let server = Ngircd {
            child,
            port,
            tls_port,
            pki,
            _dir: dir,
        };
        // Ready when every port accepts.
        for &p in plain.iter().chain([&tls_port]) {
            let mut ok = false;
            for _ in 0..200 {
                #[allow(clippy::disallowed_methods)] // probing our own loopback ngircd
                if TcpStream::connect(("127.0.0.1", p)).await.is_ok() {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(ok, "ngircd did not start listening on {p}");
        }
        server
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Waits for the first event matching `pred`, skipping others.
pub async fn wait_for<F>(h: &mut AccountHandle, what: &str, mut pred: F) -> Event
where
    F: FnMut(&Event) -> bool,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, h.events.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// All events that arrive within `d`.
pub async fn drain_for(h: &mut AccountHandle, d: Duration) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, h.events.recv()).await {
        out.push(e);
    }
    out
}

pub async fn wait_connected(h: &mut AccountHandle) {
    wait_for(h, "Connected", |e| {
        matches!(e, Event::State(ConnectionState::Connected { .. }))
    })
    .await;
}

/// A plain-TCP timb account against `port`.
pub async fn account(id: u32, port: u16, cfg: IrcConfig) -> AccountHandle {
    let s = connect_loopback(port).await;
    timb_irc::spawn(AccountId(id), s, cfg)
}

/// A stream to `host:port` through the test network's c-tor SOCKS port.
/// Stands in for timb-tor's arti stream until that crate lands.
pub async fn via_ctor(socks_port: u16, host: &str, port: u16) -> TcpStream {
    let host = host.to_owned();
    let s =
        tokio::task::spawn_blocking(move || timb_testnet::socks5_connect(socks_port, &host, port))
            .await
            .unwrap()
            .expect("SOCKS5 connect through the test network");
    s.set_read_timeout(None).unwrap();
    s.set_write_timeout(None).unwrap();
    s.set_nonblocking(true).unwrap();
    TcpStream::from_std(s).unwrap()
}

/// A raw IRC client: what another person's (non-timb) client sends.
pub struct RawClient {
    r: BufReader<tokio::io::ReadHalf<TcpStream>>,
    w: tokio::io::WriteHalf<TcpStream>,
    pub nick: String,
}

impl RawClient {
    pub async fn register(port: u16, nick: &str) -> RawClient {
        RawClient::register_on(connect_loopback(port).await, nick).await
    }

    /// Registers over an already open stream (e.g. through a SOCKS proxy).
    pub async fn register_on(s: TcpStream, nick: &str) -> RawClient {
        let (r, w) = tokio::io::split(s);
        let mut c = RawClient {
            r: BufReader::new(r),
            w,
            nick: nick.to_owned(),
        };
        c.send(&format!("NICK {nick}")).await;
        c.send(&format!("USER {nick} 0 * :raw test client")).await;
        c.expect(|l| l.contains(" 001 ")).await;
        c
    }

    pub async fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        self.w.write_all(b).await.unwrap();
    }

    /// Next line (lossy), answering server PINGs; `None` on timeout or EOF.
    pub async fn next_line(&mut self, d: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let mut buf = Vec::new();
            match tokio::time::timeout_at(deadline, self.r.read_until(b'\n', &mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    let l = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if let Some(tok) = l.strip_prefix("PING ") {
                        let pong = format!("PONG {tok}");
                        self.send(&pong).await;
                        continue;
                    }
                    return Some(l);
                }
                _ => return None,
            }
        }
    }

    pub async fn expect<F: Fn(&str) -> bool>(&mut self, pred: F) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_line(left).await {
                Some(l) if pred(&l) => return l,
                Some(_) => {}
                None => panic!("raw client: expected line did not arrive"),
            }
        }
    }

    /// Lines that arrive within `d`.
    pub async fn collect(&mut self, d: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + d;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next_line(left).await {
                Some(l) => out.push(l),
                None => return out,
            }
        }
    }
}

/// One accepted connection on a scripted fake server.
pub struct FakeConn {
    r: BufReader<tokio::io::ReadHalf<TcpStream>>,
    pub w: tokio::io::WriteHalf<TcpStream>,
}

impl FakeConn {
    pub async fn send(&mut self, line: &str) {
        let _ = self.w.write_all(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b).await
    }

    /// Next line from the client, `None` on EOF or after `WAIT`.
    pub async fn line(&mut self) -> Option<String> {
        self.line_within(WAIT).await
    }

    pub async fn line_within(&mut self, d: Duration) -> Option<String> {
        let mut buf = Vec::new();
        match timeout(d, self.r.read_until(b'\n', &mut buf)).await {
            Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf).trim_end().to_owned()),
            _ => None,
        }
    }

    /// Reads until a line starting with `prefix`.
    pub async fn expect(&mut self, prefix: &str) -> String {
        loop {
            match self.line().await {
                Some(l) if l.starts_with(prefix) => return l,
                Some(_) => {}
                None => panic!("fake server: client never sent {prefix:?}"),
            }
        }
    }

    /// The ordinary no-CAP registration: reply to CAP LS with nothing, wait
    /// for CAP END and USER, then welcome `nick`.
    pub async fn register_plain(&mut self, nick: &str) {
        self.expect("CAP LS 302").await;
        self.send(":fake.test CAP * LS :").await;
        let mut got_end = false;
        let mut got_user = false;
        while !(got_end && got_user) {
            let l = self.line().await.expect("registration lines");
            got_end |= l == "CAP END";
            got_user |= l.starts_with("USER ");
        }
        self.send(&format!(":fake.test 001 {nick} :Welcome {nick}"))
            .await;
    }
}

/// Listens on a free loopback port; the script runs on the first connection.
pub async fn fake_server<F, Fut>(script: F) -> (u16, tokio::task::JoinHandle<()>)
where
    F: FnOnce(FakeConn) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let (r, w) = tokio::io::split(s);
        script(FakeConn {
            r: BufReader::new(r),
            w,
        })
        .await;
    });
    (port, task)
}
