//! What timb's tests share, written once: real servers on 127.0.0.1 (prosody, ngircd) with
//! certificates from a throwaway CA, recording points for what a server sees, the connectors
//! tests reach servers through (loopback for test peers, c-tor's SOCKS port for baselines, a
//! scripted one that counts attempts and fails on demand; the code under test uses timb-tor's
//! own `TorConnector`), and event waits with a deadline.
//!
//! Everything binds and connects to 127.0.0.1 only; the Tor network is timb-testnet's. Used by
//! the tests and benches of timb-xmpp, timb-irc, timb and the end-to-end tests (`tests/e2e`).

mod connect;
mod events;
mod ngircd;
mod prosody;
mod record;

pub use connect::{
    arti, connect_loopback, LoopConnector, Loopback, Redirect, Scripted, SocksConnector,
};
pub use events::{drain, wait_event};
pub use ngircd::{Ngircd, TestPki, IRC_HOST};
pub use prosody::{Prosody, DOMAIN, MUC};
pub use record::{Proxy, Recording, RecordingTls};

use std::path::{Path, PathBuf};

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

/// A fresh scratch folder under `parent`.
pub fn scratch(parent: &Path, name: &str) -> PathBuf {
    let p = parent.join(name);
    std::fs::create_dir_all(&p).expect("create scratch folder");
    p
}

/// Polls 127.0.0.1:`port` until something accepts, for up to `tries` × `every`.
#[allow(
    clippy::disallowed_methods,
    reason = "probes a loopback server the test started itself"
)]
pub(crate) fn wait_listening(port: u16, tries: u32, every: std::time::Duration) -> bool {
    for _ in 0..tries {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}
