//! Scaffolding for timb's end-to-end tests: a real prosody on 127.0.0.1, arti streams
//! from timb-tor as the XMPP [`Connector`], and recording points for what the server sees.
//!
//! Everything binds and connects to 127.0.0.1 only; the Tor network is timb-testnet's.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use timb_core::AccountId;
use timb_tls::test_ca::{Leaf, TestCa};
use timb_tls::{PinSet, TlsPolicy};
use timb_tor::Transport;
use timb_xmpp::{BoxFuture, BoxStream, Connector, PolicyTls, TlsInfo, TlsUpgrade, XmppError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

pub const DOMAIN: &str = "timb.test";

/// A prosody with direct TLS on `tls_port`, TLS required, the given users registered.
pub struct Prosody {
    child: Child,
    pub dir: tempfile::TempDir,
    pub tls_port: u16,
    /// The STARTTLS port (TLS still required before authentication).
    pub c2s_port: u16,
    pub leaf: Leaf,
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Prosody {
    pub fn start(users: &[(&str, &str)], tls_port: u16) -> Prosody {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let leaf = TestCa::new("timb e2e CA").issue(&[DOMAIN]);
        std::fs::write(d.join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &leaf.key_pem).unwrap();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::create_dir_all(d.join("certs")).unwrap();
        let p = |n: &str| d.join(n).display().to_string();
        let c2s_port = free_port();
        let cfg = format!(
            r#"
run_as_root = true
pidfile = "{pid}"
data_path = "{data}"
certificates = "{certs}"
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{log}" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ {tls_port} }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "smacks", "posix" }}
modules_disabled = {{ "s2s" }}
ssl = {{ certificate = "{cert}", key = "{key}" }}
VirtualHost "{DOMAIN}"
"#,
            pid = p("prosody.pid"),
            data = p("data"),
            certs = p("certs"),
            log = p("prosody.log"),
            cert = p("cert.pem"),
            key = p("key.pem"),
            c2s = c2s_port,
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
            tls_port,
            c2s_port,
            leaf,
        };
        pr.wait_ready();
        pr
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "probes the loopback prosody this test started"
    )]
    fn wait_ready(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prosody did not start; log: {}", self.log());
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn policy(&self) -> TlsPolicy {
        TlsPolicy::Pinned(PinSet::leaf(DOMAIN, [self.leaf.spki_sha256()]))
    }
}

/// timb's real path onto the network: arti streams from timb-tor, isolated per account.
pub struct ArtiConnector {
    pub tor: Transport,
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

/// Bytes seen at one recording point, both directions appended in order.
#[derive(Clone, Default)]
pub struct Recording(pub Arc<Mutex<Vec<u8>>>);

impl Recording {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn push(&self, b: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(b);
    }
}

/// A stream that records what passes through it in both directions.
struct Recorded {
    inner: BoxStream,
    rec: Recording,
}

impl AsyncRead for Recorded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = buf.filled()[before..].to_vec();
            self.rec.push(&new);
        }
        r
    }
}

impl AsyncWrite for Recorded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.rec.push(&buf[..*n]);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// timb-tls's pinned TLS; records the XMPP stream inside it, which is exactly what prosody
/// reads from and writes to this client after decryption.
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
            Ok((Box::new(Recorded { inner: s, rec }) as BoxStream, info))
        })
    }
}

/// A TCP relay on 127.0.0.1:`listen` in front of the server on 127.0.0.1:`target`,
/// recording every byte both ways (what arrives from the Tor exit and what goes back).
pub struct RecordingProxy {
    pub rec: Recording,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl RecordingProxy {
    pub async fn start(listen: u16, target: u16) -> RecordingProxy {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", listen))
            .await
            .expect("bind proxy");
        let rec = Recording::default();
        let r2 = rec.clone();
        let accept = tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                tokio::spawn(relay(c, target, r2.clone()));
            }
        });
        RecordingProxy { rec, accept }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "relays to the loopback server this test started"
)]
async fn relay(client: tokio::net::TcpStream, target: u16, rec: Recording) {
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = pump(cr, sw, rec.clone()) => {}
        _ = pump(sr, cw, rec) => {}
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, mut w: impl AsyncWrite + Unpin, rec: Recording) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        rec.push(&buf[..n]);
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A fresh owner-only scratch folder.
pub fn scratch(parent: &Path, name: &str) -> PathBuf {
    let p = parent.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A real ngircd: plain text on `plain_port`, TLS on `tls_port` with a leaf for `irc.test`.
pub struct Ngircd {
    child: Child,
    pub plain_port: u16,
    pub tls_port: u16,
    pub leaf: Leaf,
    _dir: tempfile::TempDir,
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const IRC_HOST: &str = "irc.test";

impl Ngircd {
    pub fn start(plain_port: u16, tls_port: u16) -> Ngircd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let leaf = TestCa::new("timb e2e CA").issue(&[IRC_HOST]);
        std::fs::write(d.join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &leaf.key_pem).unwrap();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        // ngircd may drop to "nobody" when started as root.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let conf = format!(
            "[Global]\nName = {IRC_HOST}\nInfo = timb e2e\nListen = 127.0.0.1\n\
             Ports = {plain_port}\nMotdPhrase = test\nAdminInfo1 = t\nAdminInfo2 = t\nAdminEMail = t@irc.test\n\
             [Limits]\nMaxNickLength = 30\nPingTimeout = 120\nPongTimeout = 60\nMaxConnectionsIP = 0\n\
             [Options]\nDNS = no\nIdent = no\nPAM = no\nIncludeDir = {inc}\n\
             [SSL]\nCertFile = {cert}\nKeyFile = {key}\nPorts = {tls_port}\n",
            inc = d.join("conf.d").display(),
            cert = d.join("cert.pem").display(),
            key = d.join("key.pem").display(),
        );
        let conf_path = d.join("ngircd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = StdCommand::new("/usr/sbin/ngircd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/sbin/ngircd");
        let ng = Ngircd {
            child,
            plain_port,
            tls_port,
            leaf,
            _dir: dir,
        };
        ng.wait_ready();
        ng
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "probes the loopback ngircd this test started"
    )]
    fn wait_ready(&self) {
        for p in [self.plain_port, self.tls_port] {
            let mut ok = false;
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", p)).is_ok() {
                    ok = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(ok, "ngircd did not listen on {p}");
        }
    }

    pub fn policy(&self) -> TlsPolicy {
        TlsPolicy::Pinned(PinSet::leaf(IRC_HOST, [self.leaf.spki_sha256()]))
    }
}
