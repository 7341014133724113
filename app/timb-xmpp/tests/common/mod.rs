//! XMPP test support on top of timb-test-support (servers, recording, connectors): account
//! configurations and a client handle with event waits.
#![allow(dead_code)] // each test binary uses a subset

use std::sync::Arc;
use std::time::Duration;

use timb_core::{AccountHandle, AccountId, Command, Event};
use timb_xmpp::{Connector, PolicyTls, ServerAddr, TlsMode, XmppConfig};

#[allow(
    unused_imports,
    reason = "each test binary and the bench take a subset"
)]
pub use timb_test_support::{
    arti, free_port, LoopConnector, Prosody, Proxy, Recording, RecordingTls, Scripted,
    SocksConnector, DOMAIN, MUC,
};

pub fn config(user: &str, pw: &str, port: u16, tls: TlsMode) -> XmppConfig {
    let mut c = XmppConfig::new(&format!("{user}@{DOMAIN}"), pw);
    c.server = Some(ServerAddr {
        host: "127.0.0.1".into(),
        port,
        tls,
    });
    c.timeout = Duration::from_secs(10);
    c.ping_interval = Duration::from_secs(30);
    c.reconnect.attempts = 3;
    c
}

pub struct Client {
    pub h: AccountHandle,
    pub rec: Recording,
}

/// Spawns an account on `port` (direct TLS or STARTTLS) and connects it.
pub fn spawn(pr: &Prosody, user: &str, pw: &str, port: u16, mode: TlsMode) -> Client {
    let rec = Recording::default();
    let tls = RecordingTls {
        inner: PolicyTls::new(pr.policy(), Some(port), mode == TlsMode::Direct),
        rec: rec.clone(),
    };
    let cfg = config(user, pw, port, mode);
    let h = timb_xmpp::spawn_account(
        AccountId(port as u32),
        cfg,
        Arc::new(LoopConnector { port }),
        Arc::new(tls),
    );
    Client { h, rec }
}

impl Client {
    pub async fn cmd(&self, c: Command) {
        self.h.commands.send(c).await.expect("account task alive");
    }

    /// Waits up to 30 s for an event matching `pred`, returning it; other events are skipped.
    pub async fn wait<F: FnMut(&Event) -> bool>(&mut self, what: &str, pred: F) -> Event {
        timb_test_support::wait_event(&mut self.h, what, Duration::from_secs(30), pred).await
    }

    /// Collects events for `d`.
    pub async fn drain(&mut self, d: Duration) -> Vec<Event> {
        timb_test_support::drain(&mut self.h, d).await
    }
}

/// Spawns an account with an explicit connector and server address.
pub fn spawn_with(
    pr: &Prosody,
    user: &str,
    pw: &str,
    server: ServerAddr,
    connector: Arc<dyn Connector>,
) -> Client {
    spawn_with_sm(pr, user, pw, server, connector, true)
}

/// [`spawn_with`], with stream management asked for or not.
pub fn spawn_with_sm(
    pr: &Prosody,
    user: &str,
    pw: &str,
    server: ServerAddr,
    connector: Arc<dyn Connector>,
    stream_management: bool,
) -> Client {
    let rec = Recording::default();
    let tls = RecordingTls {
        inner: PolicyTls::new(
            pr.policy(),
            Some(server.port),
            server.tls == TlsMode::Direct,
        ),
        rec: rec.clone(),
    };
    let mut cfg = config(user, pw, server.port, server.tls);
    cfg.server = Some(server);
    cfg.timeout = Duration::from_secs(30);
    cfg.stream_management = stream_management;
    let h = timb_xmpp::spawn_account(AccountId(1), cfg, connector, Arc::new(tls));
    Client { h, rec }
}
