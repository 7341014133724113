//! A minimal HTTP/1.1 client for the updater: one `GET` over a stream the caller made (a Tor
//! stream, or TLS over one), with hyper doing the protocol. Nothing here opens a socket or
//! resolves a name — hyper is used without hyper-util, whose connectors would — so what
//! reaches the network is only what [`crate::Transport`] connected.
//!
//! Bodies come chunk by chunk, so the caller caps and hashes while reading and an endless
//! response is never buffered.

use bytes::Bytes;
use hyper::body::{Body, Frame};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the request is not valid HTTP: {0}")]
    Request(String),
    #[error("the server's HTTP is broken: {0}")]
    Protocol(String),
}

/// A response: its status, and its body to read chunk by chunk. Dropping it closes the
/// connection.
pub struct Response {
    status: u16,
    /// Where a `206 Partial Content` body starts (its `Content-Range`), if it is one.
    range_start: Option<u64>,
    body: hyper::body::Incoming,
    connection: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response({})", self.status)
    }
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// For a `206` answer: the offset its `Content-Range: bytes START-END/LEN` names.
    pub fn range_start(&self) -> Option<u64> {
        self.range_start
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(HttpError::Protocol(e.to_string())),
                // Trailers carry nothing the updater needs.
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) if !d.is_empty() => return Ok(Some(d)),
                    _ => continue,
                },
            }
        }
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// `GET path` on `io` with `Host: authority` (`host` or `host:port`), from byte `from` on
/// (`Range: bytes=FROM-` when it is not 0: a resumed download). Asks for the bytes as they
/// are (`Accept-Encoding: identity`, so lengths and hashes are of what is sent) and for the
/// connection to close after. Must run inside a tokio runtime.
pub async fn get<S>(io: S, authority: &str, path: &str, from: u64) -> Result<Response, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT_ENCODING, "identity")
        .header(hyper::header::CONNECTION, "close");
    if from > 0 {
        request = request.header(hyper::header::RANGE, format!("bytes={from}-"));
    }
    let request = request
        .body(Empty)
        .map_err(|e| HttpError::Request(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(Io(io))
        .await
        .map_err(|e| HttpError::Protocol(e.to_string()))?;
    let connection = tokio::spawn(async move {
        // Its error, if any, reaches the body reader.
        let _ = conn.await;
    });
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => {
            connection.abort();
            return Err(HttpError::Protocol(e.to_string()));
        }
    };
    let range_start = response
        .headers()
        .get(hyper::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(content_range_start);
    Ok(Response {
        status: response.status().as_u16(),
        range_start,
        body: response.into_body(),
        connection,
    })
}

/// `START` of `bytes START-END/LEN` (or `…/*`); anything else is no range.
fn content_range_start(v: &str) -> Option<u64> {
    let (start, rest) = v.trim().strip_prefix("bytes ")?.split_once('-')?;
    let (end, _) = rest.split_once('/')?;
    let (start, end) = (start.parse::<u64>().ok()?, end.parse::<u64>().ok()?);
    (start <= end).then_some(start)
}

/// A request body with nothing in it.
struct Empty;

impl Body for Empty {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }
}

/// tokio's I/O traits as hyper's, in safe code: reads go through a small buffer and are
/// copied into hyper's (a copy is cheap next to Tor's latency; no `unsafe` needed).
struct Io<S>(S);

impl<S: AsyncRead + Unpin> hyper::rt::Read for Io<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut tmp = [0u8; 16 * 1024];
        let n = buf.remaining().min(tmp.len());
        let mut rb = ReadBuf::new(&mut tmp[..n]);
        match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(rb.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> hyper::rt::Write for Io<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_ranges_are_read_strictly() {
        use super::content_range_start as start;
        assert_eq!(start("bytes 100-199/200"), Some(100));
        assert_eq!(start("bytes 0-0/*"), Some(0));
        for bad in [
            "bytes */200",
            "bytes 5-1/9",
            "items 1-2/3",
            "bytes -2/3",
            "bytes 1-2",
        ] {
            assert_eq!(start(bad), None, "{bad}");
        }
    }
}
