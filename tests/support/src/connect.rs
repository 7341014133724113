//! The ways tests reach servers: loopback sockets for test peers (only the code under test
//! uses Tor), timb-tor's arti for the code under test, and the test network's c-tor SOCKS
//! port as a baseline and a second Tor path.

use std::path::Path;
use std::sync::Arc;

use timb_core::AccountId;
use timb_xmpp::{BoxFuture, BoxStream, Connector, XmppError};
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

/// Connects to 127.0.0.1:`port` whatever port the account names (a proxy or server the
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
fn loopback(host: String, port: u16) -> BoxFuture<Result<BoxStream, XmppError>> {
    Box::pin(async move {
        assert_eq!(host, "127.0.0.1", "test peers only ever use loopback");
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| XmppError::Io(e.to_string()))?;
        Ok(Box::new(s) as BoxStream)
    })
}

impl Connector for LoopConnector {
    fn connect(&self, host: String, _port: u16) -> BoxFuture<Result<BoxStream, XmppError>> {
        loopback(host, self.port)
    }
}

impl Connector for Loopback {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, XmppError>> {
        loopback(host, port)
    }
}

/// timb's own path onto the network, as in the app: arti streams from timb-tor, isolated
/// per account.
pub struct ArtiConnector {
    pub tor: timb_tor::Transport,
    pub account: AccountId,
}

impl ArtiConnector {
    pub fn new(tor: &timb_tor::Transport, account: AccountId) -> Arc<ArtiConnector> {
        Arc::new(ArtiConnector {
            tor: tor.clone(),
            account,
        })
    }
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
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, XmppError>> {
        let socks = self.socks_port;
        Box::pin(async move {
            let s = SocksConnector::stream(socks, &host, port)
                .await
                .map_err(|e| XmppError::Io(e.to_string()))?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}
