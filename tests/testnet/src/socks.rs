//! Test-side helpers: a blocking SOCKS5 client for the c-tor client's SOCKS
//! port and a loopback echo server.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// c-tor gives up on a stream after its own SocksTimeout (120 s); wait a little
/// longer so its answer, not ours, decides.
const SOCKS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(130);

/// Opens a TCP connection to 127.0.0.1:`port`.
#[allow(clippy::disallowed_methods)] // Harness only: reaches daemons and servers it started on 127.0.0.1 itself.
pub(crate) fn loopback_connect(port: u16) -> io::Result<TcpStream> {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port))
}

/// Connects to `host:port` through the SOCKS5 proxy at 127.0.0.1:`socks_port`
/// (the test network's c-tor client). `host` may be an IPv4 literal or a
/// name such as `xxxx.onion`; it is never resolved locally. Blocking; for
/// tests, baselines and benchmarks only.
pub fn socks5_connect(socks_port: u16, host: &str, port: u16) -> io::Result<TcpStream> {
    socks5_connect_within(socks_port, host, port, SOCKS_HANDSHAKE_TIMEOUT)
}

/// [`socks5_connect`] giving up after `timeout` without a SOCKS reply.
pub(crate) fn socks5_connect_within(
    socks_port: u16,
    host: &str,
    port: u16,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let mut s = loopback_connect(socks_port)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;

    s.write_all(&[5, 1, 0])?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method)?;
    if method != [5, 0] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("SOCKS5 proxy refused no-auth method: {method:?}"),
        ));
    }

    let mut req = vec![5, 1, 0];
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        req.push(1);
        req.extend_from_slice(&ip.octets());
    } else {
        let name = host.as_bytes();
        let len = u8::try_from(name.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "host name too long"))?;
        req.push(3);
        req.push(len);
        req.extend_from_slice(name);
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req)?;

    let mut head = [0u8; 4];
    s.read_exact(&mut head)?;
    if head[0] != 5 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a SOCKS5 reply: version {}", head[0]),
        ));
    }
    if head[1] != 0 {
        return Err(io::Error::new(
            reply_kind(head[1]),
            format!(
                "SOCKS5 connect to {host}:{port} failed: {:#04x} ({})",
                head[1],
                reply_meaning(head[1])
            ),
        ));
    }
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l)?;
            usize::from(l[0])
        }
        t => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("SOCKS5 reply with unknown address type {t}"),
            ))
        }
    };
    let mut rest = vec![0u8; addr_len + 2];
    s.read_exact(&mut rest)?;
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok(s)
}

fn reply_kind(code: u8) -> io::ErrorKind {
    match code {
        5 => io::ErrorKind::ConnectionRefused,
        6 | 0xf7 => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    }
}

/// RFC 1928 codes plus Tor's extended onion-service codes (`ExtendedErrors`).
fn reply_meaning(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired / timed out",
        7 => "command not supported",
        8 => "address type not supported",
        0xf0 => "onion service descriptor not found",
        0xf1 => "onion service descriptor invalid",
        0xf2 => "onion service introduction failed",
        0xf3 => "onion service rendezvous failed",
        0xf4 => "onion service client authorization missing",
        0xf5 => "onion service client authorization wrong",
        0xf6 => "invalid onion address",
        0xf7 => "onion service introduction timed out",
        _ => "unknown",
    }
}

/// A loopback TCP echo server (for exit-port and onion-service checks).
/// Stops accepting when dropped.
pub struct EchoServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

/// Bounded so a misbehaving test cannot make the helper spawn without limit.
const ECHO_MAX_CONNECTIONS: usize = 64;
const ECHO_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl EchoServer {
    /// Binds 127.0.0.1:`port` (0 picks a free port).
    pub fn bind(port: u16) -> io::Result<EchoServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let active = Arc::new(AtomicUsize::new(0));
        let accept_thread = std::thread::Builder::new()
            .name(format!("echo-{port}"))
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if active.load(Ordering::Relaxed) >= ECHO_MAX_CONNECTIONS {
                                continue;
                            }
                            active.fetch_add(1, Ordering::Relaxed);
                            let active2 = Arc::clone(&active);
                            let spawned = std::thread::Builder::new()
                                .name(format!("echo-{port}-conn"))
                                .spawn(move || {
                                    let _ = echo(conn);
                                    active2.fetch_sub(1, Ordering::Relaxed);
                                });
                            if spawned.is_err() {
                                // The closure (and its decrement) was dropped unrun.
                                active.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(EchoServer {
            port,
            stop,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

fn echo(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(ECHO_IDLE_TIMEOUT))?;
    conn.set_write_timeout(Some(ECHO_IDLE_TIMEOUT))?;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a probe through `stream` and expects it echoed back.
pub fn echo_roundtrip(stream: &mut TcpStream, probe: &[u8], timeout: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(probe)?;
    let mut back = vec![0u8; probe.len()];
    stream.read_exact(&mut back)?;
    if back != probe {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "echo returned different bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot fake SOCKS5 proxy answering a CONNECT with `reply`.
    fn fake_proxy(reply: Vec<u8>) -> (u16, JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut greet = [0u8; 3];
            c.read_exact(&mut greet).unwrap();
            c.write_all(&[5, 0]).unwrap();
            let mut head = [0u8; 5];
            c.read_exact(&mut head).unwrap();
            let rest_len = match head[3] {
                1 => 4 - 1 + 2,
                3 => usize::from(head[4]) + 2,
                _ => panic!("unexpected address type"),
            };
            let mut rest = vec![0u8; rest_len];
            c.read_exact(&mut rest).unwrap();
            c.write_all(&reply).unwrap();
            let mut req = head.to_vec();
            req.extend(rest);
            req
        });
        (port, h)
    }

    #[test]
    fn connect_sends_domain_names_unresolved() {
        let (port, h) = fake_proxy(vec![5, 0, 0, 1, 127, 0, 0, 1, 0, 80]);
        socks5_connect(port, "abc.onion", 80).unwrap();
        let req = h.join().unwrap();
        assert_eq!(req[..5], [5, 1, 0, 3, 9]);
        assert_eq!(&req[5..14], b"abc.onion");
        assert_eq!(req[14..], [0, 80]);
    }

    #[test]
    fn connect_sends_ipv4_literals_as_addresses() {
        let (port, h) = fake_proxy(vec![5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        socks5_connect(port, "127.0.0.1", 4242).unwrap();
        let req = h.join().unwrap();
        assert_eq!(req, [5, 1, 0, 1, 127, 0, 0, 1, 0x10, 0x92]);
    }

    #[test]
    fn tor_extended_errors_are_explained() {
        let (port, h) = fake_proxy(vec![5, 0xf0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let err = socks5_connect(port, "abc.onion", 80).unwrap_err();
        h.join().unwrap();
        assert!(err.to_string().contains("descriptor not found"), "{err}");
        let (port, h) = fake_proxy(vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
        let err = socks5_connect(port, "127.0.0.1", 1).unwrap_err();
        h.join().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn echo_server_echoes() {
        let server = EchoServer::bind(0).unwrap();
        let mut s = loopback_connect(server.port()).unwrap();
        echo_roundtrip(&mut s, b"hello", Duration::from_secs(5)).unwrap();
    }
}
