//! IRC for timb, on `irc-proto`'s message codec and our own connection task.
//!
//! The `irc` crate's client is not used: its connection type cannot carry an
//! arti stream with our TLS verifier, and its built-in CTCP answers leak the
//! local time zone and identity. Here streams come from timb-tor's
//! [`Connector`], the shape XMPP takes too (arti in timb, loopback in tests),
//! and [`ctcp`] holds Tor Messenger's reply policy.
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod connect;
pub mod ctcp;
pub mod format;
pub mod line;
pub mod sasl;
pub mod session;
pub mod split;
pub mod transport;

pub use connect::{spawn_account, IrcServer};
pub use session::{run, spawn, IrcAuth, IrcConfig, IrcError};
pub use timb_tor::{ConnectError, Connector};
pub use transport::{choose_security, Security};
