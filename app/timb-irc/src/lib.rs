//! IRC for timb, on `irc-proto`'s message codec and our own connection task.
//!
//! The `irc` crate's client is not used: its connection type cannot carry an
//! arti stream with our TLS verifier, and its built-in CTCP answers leak the
//! local time zone and identity. Here the session is generic over the byte
//! stream, so the caller decides how it reaches the server (always through
//! Tor in timb), and [`ctcp`] holds Tor Messenger's reply policy.
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

pub use connect::{start, IrcServer, StartError};
pub use session::{run, spawn, IrcAuth, IrcConfig, IrcError};
pub use transport::{choose_security, Security};
