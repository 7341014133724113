//! arti's runtime with one change: the TCP connections to relays are opened with
//! `TCP_NODELAY` (arti 0.47 leaves Nagle's algorithm on).
//!
//! Why (#20, measured with `cargo xtask bench xmpp`): an XMPP client with stream
//! management writes small things back to back — a message, then an `<a/>` — and
//! both go out as cells over the same channel to the guard. With Nagle on, the second
//! cell waits for the guard's ACK of the first, which a delayed ACK holds for up to
//! 40 ms: timb's message round trip over the private Tor network sat at ~45 ms where
//! a client writing once per message took 4 ms. Tor cells are fixed-size, so sending
//! each flush at once costs no extra tiny packets beyond one per cell batch.
//!
//! Only `connect` differs from tokio's provider; timb never listens.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead as _, AsyncWrite as _, ReadBuf};
use tor_rtcompat::{
    CompoundRuntime, NetStreamListener, NetStreamProvider, PreferredRuntime, RuntimeSubstExt,
    StreamOps, TcpConnectOptions, TcpListenOptions,
};

/// The runtime timb's arti client runs on.
pub type TimbRuntime = CompoundRuntime<
    PreferredRuntime,
    PreferredRuntime,
    PreferredRuntime,
    NoDelayTcp,
    PreferredRuntime,
    PreferredRuntime,
    PreferredRuntime,
>;

/// The current tokio runtime, with [`NoDelayTcp`] for TCP. Must be called inside tokio.
pub fn current() -> io::Result<TimbRuntime> {
    Ok(PreferredRuntime::current()?.with_tcp_provider(NoDelayTcp))
}

/// Opens TCP connections with `TCP_NODELAY` set before the first byte is sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDelayTcp;

/// A TCP stream for arti (futures' I/O traits over tokio's stream).
#[derive(Debug)]
pub struct NoDelayStream(tokio::net::TcpStream);

impl StreamOps for NoDelayStream {}

impl futures::AsyncRead for NoDelayStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures::AsyncWrite for NoDelayStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// timb never listens: there is nothing to accept.
pub struct NoListener;

impl NetStreamListener for NoListener {
    type Stream = NoDelayStream;
    type Incoming = futures::stream::Empty<io::Result<(NoDelayStream, SocketAddr)>>;

    fn incoming(self) -> Self::Incoming {
        futures::stream::empty()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[async_trait::async_trait]
impl NetStreamProvider for NoDelayTcp {
    type Stream = NoDelayStream;
    type Listener = NoListener;
    type ConnectOptions = TcpConnectOptions;
    type ListenOptions = TcpListenOptions;

    async fn connect(
        &self,
        addr: &SocketAddr,
        _options: &TcpConnectOptions,
    ) -> io::Result<NoDelayStream> {
        // The options only carry socket buffer sizes, which timb never configures.
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_nodelay(true)?;
        // The one connect arti makes to the Tor network (relays, bridges later): this
        // provider is how every byte leaves, as tokio's own provider was before.
        #[allow(clippy::disallowed_methods)]
        let stream = socket.connect(*addr).await?;
        Ok(NoDelayStream(stream))
    }

    async fn listen(
        &self,
        _addr: &SocketAddr,
        _options: &TcpListenOptions,
    ) -> io::Result<NoListener> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "timb does not listen for connections",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_opened_without_nagle() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let s = NoDelayTcp
            .connect(&addr, &TcpConnectOptions::default())
            .await
            .unwrap();
        assert!(s.0.nodelay().unwrap(), "TCP_NODELAY must be set");
        assert!(NoDelayTcp
            .listen(&addr, &TcpListenOptions::default())
            .await
            .is_err());
    }
}
