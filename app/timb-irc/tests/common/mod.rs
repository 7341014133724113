//! IRC test support on top of timb-test-support (ngircd, the test PKI, connectors): scripted
//! fake servers for hostile and SASL cases, and a raw line client standing in for "someone
//! else's IRC client". Loopback only.

#![allow(dead_code)]

use std::time::Duration;

use std::sync::Arc;

use timb_core::{AccountError, AccountHandle, AccountId, Command, ConnectionState, Event};
use timb_irc::{Connector, IrcConfig, IrcServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

#[allow(
    unused_imports,
    reason = "each test binary and the bench take a subset"
)]
pub use timb_test_support::{
    connect_loopback, LoopConnector, Ngircd, Proxy, Redirect, Scripted, SocksConnector, TestPki,
};

pub const WAIT: Duration = Duration::from_secs(20);

/// Waits for the first event matching `pred`, skipping others.
pub async fn wait_for<F>(h: &mut AccountHandle, what: &str, pred: F) -> Event
where
    F: FnMut(&Event) -> bool,
{
    timb_test_support::wait_event(h, what, WAIT, pred).await
}

/// All events that arrive within `d`.
pub async fn drain_for(h: &mut AccountHandle, d: Duration) -> Vec<Event> {
    timb_test_support::drain(h, d).await
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

/// An account as the app runs it (`spawn_account`), told to connect through `connector`.
pub async fn start_via(
    id: AccountId,
    server: &IrcServer,
    cfg: IrcConfig,
    connector: Arc<dyn Connector>,
) -> AccountHandle {
    let h = timb_irc::spawn_account(id, server.clone(), cfg, connector);
    h.commands.send(Command::Connect).await.unwrap();
    h
}

/// [`start_via`] to 127.0.0.1:`port`, whatever host `server` names (its TLS name).
pub async fn start(id: AccountId, port: u16, server: &IrcServer, cfg: IrcConfig) -> AccountHandle {
    start_via(id, server, cfg, Arc::new(LoopConnector { port })).await
}

/// The error an account reports, then its Disconnected.
pub async fn start_error(h: &mut AccountHandle) -> AccountError {
    let e = match wait_for(h, "error", |e| matches!(e, Event::Error(_))).await {
        Event::Error(e) => e,
        _ => unreachable!(),
    };
    wait_for(h, "Disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;
    e
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
