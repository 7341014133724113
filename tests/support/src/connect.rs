//! The ways tests reach servers, all in timb-tor's one [`Connector`] shape: loopback sockets
//! for test peers (only the code under test uses Tor), timb-tor's own [`timb_tor::TorConnector`]
//! for the code under test, the test network's c-tor SOCKS port as a baseline and a second Tor
//! path, and [`Scripted`], which counts attempts and fails on demand with a chosen kind.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use timb_tor::{BoxFuture, BoxStream, ConnectError, Connector};
use tokio::net::TcpStream;

/// A socket to a loopback server the test started.
#[allow(
    clippy::disallowed_methods,
    reason = "tests connect only to loopback servers they started themselves"
)]
pub async fn connect_loopback(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the loopback test server")
}

/// Connects to 127.0.0.1:`port` whatever host and port the account names (a proxy or server the
/// test started; the app's connector goes through arti instead).
pub struct LoopConnector {
    pub port: u16,
}

/// Connects to 127.0.0.1 on the port the account names: a test peer's way to its server.
pub struct Loopback;

#[allow(
    clippy::disallowed_methods,
    reason = "tests connect only to loopback servers they started themselves"
)]
fn loopback(port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
    Box::pin(async move {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|_| ConnectError::Refused)?;
        Ok(Box::new(s) as BoxStream)
    })
}

impl Connector for LoopConnector {
    fn connect(&self, _host: String, _port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        loopback(self.port)
    }
}

impl Connector for Loopback {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        assert_eq!(host, "127.0.0.1", "test peers only ever use loopback");
        loopback(port)
    }
}

/// Bootstraps timb-tor's arti on the private test network described by `network_file`,
/// keeping its state in `state`.
pub async fn arti(network_file: &Path, state: &Path) -> timb_tor::Transport {
    let config = timb_tor::TorConfig::private_network(network_file, state).expect("network file");
    let (progress, _watch) = tokio::sync::watch::channel(Default::default());
    timb_tor::Transport::bootstrap(config, progress)
        .await
        .expect("arti bootstraps on the private network")
}

/// Streams through the test network's c-tor SOCKS port: the baseline clients' path.
pub struct SocksConnector {
    pub socks_port: u16,
}

impl SocksConnector {
    /// A stream to `host:port` through c-tor on 127.0.0.1:`socks_port`.
    pub async fn stream(socks_port: u16, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let host = host.to_owned();
        let s = tokio::task::spawn_blocking(move || {
            timb_testnet::socks5_connect(socks_port, &host, port)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::other(format!("through Tor: {e}")))?;
        s.set_read_timeout(None)?;
        s.set_write_timeout(None)?;
        s.set_nonblocking(true)?;
        // A real local socket to c-tor (arti in the app has none): without this, Nagle meets
        // the peer's delayed ACK whenever data flows both ways, as XEP-0198 acks make it do.
        s.set_nodelay(true)?;
        TcpStream::from_std(s)
    }
}

impl Connector for SocksConnector {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        let socks = self.socks_port;
        Box::pin(async move {
            let s = SocksConnector::stream(socks, &host, port)
                .await
                .map_err(|_| ConnectError::Circuit)?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

/// Wraps another connector: counts every attempt, and while a failure is set answers with
/// it instead of connecting, so a test can tell a retried error from one shown once.
pub struct Scripted {
    inner: Arc<dyn Connector>,
    attempts: AtomicU32,
    failure: Mutex<Option<ConnectError>>,
}

impl Scripted {
    pub fn new(inner: Arc<dyn Connector>) -> Arc<Scripted> {
        Arc::new(Scripted {
            inner,
            attempts: AtomicU32::new(0),
            failure: Mutex::new(None),
        })
    }

    /// Every later attempt fails with `e` (or connects again, with `None`).
    pub fn fail_with(&self, e: Option<ConnectError>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// Attempts so far, failed ones included.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl Connector for Scripted {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match *self.failure.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Box::pin(async move { Err(e) }),
            None => self.inner.connect(host, port),
        }
    }
}

/// Connects `inner` to one fixed address whatever the account names: lets an account keep
/// the server name its certificate is for (`irc.test`) while the stream goes to the port
/// the test started.
pub struct Redirect {
    inner: Arc<dyn Connector>,
    host: String,
    port: u16,
}

impl Redirect {
    pub fn new(inner: Arc<dyn Connector>, host: &str, port: u16) -> Arc<Redirect> {
        Arc::new(Redirect {
            inner,
            host: host.to_owned(),
            port,
        })
    }
}

impl Connector for Redirect {
    fn connect(&self, _host: String, _port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        self.inner.connect(self.host.clone(), self.port)
    }
}
