//! Recording points: what a client wrote inside TLS (what the server reads after
//! decryption), and what crossed a relay in front of a server (what arrives from a Tor exit).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use timb_xmpp::{BoxFuture, BoxStream, PolicyTls, TlsInfo, TlsUpgrade, XmppError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Bytes {
    /// Both directions, appended in the order they passed.
    both: Vec<u8>,
    /// Only what the recorded side wrote.
    sent: Vec<u8>,
}

/// Bytes seen at one recording point.
#[derive(Clone, Default)]
pub struct Recording(Arc<Mutex<Bytes>>);

impl Recording {
    fn lock(&self) -> MutexGuard<'_, Bytes> {
        // A test that panicked while holding it has failed already; its bytes are still good.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Both directions, in order, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().both).into_owned()
    }

    /// Only what the client wrote (for a [`Proxy`]: what its clients sent to the server).
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.lock().sent).into_owned()
    }

    /// Bytes recorded in both directions.
    pub fn len(&self) -> usize {
        self.lock().both.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn wrote(&self, b: &[u8]) {
        let mut g = self.lock();
        g.both.extend_from_slice(b);
        g.sent.extend_from_slice(b);
    }

    fn read(&self, b: &[u8]) {
        self.lock().both.extend_from_slice(b);
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
            self.rec.read(&new);
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
            self.rec.wrote(&buf[..*n]);
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

/// timb-tls's pinned TLS, recording the XMPP stream inside it: exactly what the server reads
/// from and writes to this client after decryption.
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

/// A TCP relay on 127.0.0.1 in front of a loopback server that records every byte both ways
/// and that a test can black-hole, refuse or cut, to play a Tor circuit dying.
pub struct Proxy {
    pub port: u16,
    pub rec: Recording,
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
    /// On any free port, in front of 127.0.0.1:`target`.
    pub async fn start(target: u16) -> Proxy {
        Proxy::start_on(0, target).await
    }

    /// Listens on 127.0.0.1:`listen` (0: any free port).
    pub async fn start_on(listen: u16, target: u16) -> Proxy {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", listen))
            .await
            .expect("bind the proxy on loopback");
        let port = l.local_addr().expect("proxy address").port();
        let rec = Recording::default();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let blackhole = Arc::new(AtomicBool::new(false));
        let refuse = Arc::new(AtomicBool::new(false));
        let (c2, b2, r2, rec2) = (
            conns.clone(),
            blackhole.clone(),
            refuse.clone(),
            rec.clone(),
        );
        let accept = tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                if r2.load(Ordering::SeqCst) {
                    drop(c);
                    continue;
                }
                let relay = tokio::spawn(relay(c, target, b2.clone(), rec2.clone()));
                c2.lock().unwrap_or_else(|p| p.into_inner()).push(relay);
            }
        });
        Proxy {
            port,
            rec,
            conns,
            blackhole,
            refuse,
            accept,
        }
    }

    /// Stops forwarding in both directions but keeps the sockets open: what the client
    /// writes now is lost, like data in a dying circuit.
    pub fn blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }

    /// Drops new connections at once while set (the server is unreachable).
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Drops every current connection.
    pub fn cut(&self) {
        for h in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            h.abort();
        }
        self.blackhole(false);
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "relays to the loopback server the test started itself"
)]
async fn relay(client: tokio::net::TcpStream, target: u16, bh: Arc<AtomicBool>, rec: Recording) {
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = pump(cr, sw, bh.clone(), rec.clone(), true) => {}
        _ = pump(sr, cw, bh, rec, false) => {}
    }
}

async fn pump(
    mut r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    bh: Arc<AtomicBool>,
    rec: Recording,
    from_client: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if bh.load(Ordering::SeqCst) {
            continue;
        }
        if from_client {
            rec.wrote(&buf[..n]);
        } else {
            rec.read(&buf[..n]);
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
