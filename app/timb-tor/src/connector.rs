//! The one shape every protocol gets its byte stream in.
//!
//! XMPP and IRC both take an `Arc<dyn Connector>`: arti ([`TorConnector`]) in
//! the app, a loopback socket or a scripted failure in tests. Failures are a
//! typed [`ConnectError`], so whoever decides to retry reads the kind, never a
//! string.

use std::future::Future;
use std::pin::Pin;

use timb_core::{AccountId, ConnectError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::Transport;

/// Any byte stream a protocol can speak over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// An arti `DataStream`, a TLS stream over it, a test socket.
pub type BoxStream = Box<dyn AsyncStream>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Boxes a concrete stream.
pub fn boxed<S: AsyncStream + 'static>(s: S) -> BoxStream {
    Box::new(s)
}

/// Opens the byte stream to `host:port` for one account. In the app the name
/// is resolved by the Tor exit (or is an onion address), never locally.
pub trait Connector: Send + Sync {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, ConnectError>>;
}

/// The app's connector: arti streams for one account, on its own circuits.
#[derive(Clone, Debug)]
pub struct TorConnector {
    tor: Transport,
    account: AccountId,
}

impl TorConnector {
    pub fn new(tor: &Transport, account: AccountId) -> TorConnector {
        TorConnector {
            tor: tor.clone(),
            account,
        }
    }
}

impl Connector for TorConnector {
    fn connect(&self, host: String, port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        let (tor, account) = (self.tor.clone(), self.account);
        Box::pin(async move { Ok(boxed(tor.connect(account, &host, port).await?)) })
    }
}
