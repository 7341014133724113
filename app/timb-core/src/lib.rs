//! The one interface every protocol speaks and the GUI listens to.
//!
//! XMPP and IRC each turn their wire protocol into [`Event`]s and carry out
//! [`Command`]s; OTR sits between a protocol and the GUI, rewriting message
//! bodies. Keeping this crate free of I/O means the GUI and the tests can drive
//! any protocol the same way, and nothing here can touch disk or network (the portable
//! profile folder lives in app/timb). The one exception is [`panic`]: the process's panic
//! hook, which writes a fixed line to stderr.
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod panic;

use std::fmt;

/// Identifies one configured account for the lifetime of the process.
///
/// Also the stream-isolation key: two accounts never share a Tor circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub u32);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "account#{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Xmpp,
    Irc,
}

/// Where a message goes or came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A one-to-one conversation: a bare or full JID, or an IRC nick.
    Direct(String),
    /// A group conversation: a MUC room JID or an IRC channel. Never OTR.
    Group(String),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Direct(n) | Target::Group(n) => n,
        }
    }
    pub fn is_group(&self) -> bool {
        matches!(self, Target::Group(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageKind {
    #[default]
    Normal,
    /// `/me` actions (IRC ACTION, XMPP body starting with "/me ").
    Action,
    /// IRC NOTICE; XMPP has none and sends these as normal messages.
    Notice,
}

/// What the GUI (or OTR on its behalf) asks a protocol to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Connect,
    Disconnect,
    Send {
        to: Target,
        body: String,
        kind: MessageKind,
    },
    JoinGroup {
        room: String,
        nick: Option<String>,
    },
    LeaveGroup {
        room: String,
    },
    /// Ask a contact for a presence subscription (XMPP) — IRC ignores it.
    AddContact {
        id: String,
    },
    RemoveContact {
        id: String,
    },
    /// Answer a subscription request.
    AnswerSubscription {
        from: String,
        approve: bool,
    },
}

/// Our own presence and a contact's: timb never reports idle, away or typing,
/// so available/offline is all there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Available,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    Disconnected,
    Connecting,
    /// TLS is up and authenticated; `server` is the peer certificate's SPKI
    /// fingerprint so the GUI can show what was trusted.
    Connected {
        spki_sha256: Option<String>,
    },
    /// The stream dropped and the protocol is trying to resume it.
    Reconnecting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    pub id: String,
    pub name: Option<String>,
    pub subscribed_to: bool,
    pub subscribed_from: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    State(ConnectionState),
    Message {
        /// For a direct message, the sender; for a group, the room.
        from: Target,
        /// Sender's nick inside a group; `None` for direct messages.
        sender: Option<String>,
        body: String,
        kind: MessageKind,
        /// Seconds since the Unix epoch, taken when we received it (never the
        /// sender's claimed time, which can fingerprint them).
        received_at: u64,
    },
    Presence {
        contact: String,
        presence: Presence,
    },
    RosterSet(RosterItem),
    RosterRemoved(String),
    SubscriptionRequest {
        from: String,
    },
    GroupJoined {
        room: String,
        nick: String,
    },
    GroupLeft {
        room: String,
    },
    GroupMembers {
        room: String,
        members: Vec<String>,
    },
    MemberJoined {
        room: String,
        nick: String,
    },
    MemberLeft {
        room: String,
        nick: String,
    },
    Topic {
        room: String,
        topic: String,
    },
    /// The account was created on the server (XEP-0077 in-band registration) and
    /// logged in; later connections log in without creating it again.
    AccountCreated,
    Error(AccountError),
}

/// Why a stream to a server could not be opened, in arti's classes of failure.
///
/// It is defined here, not in timb-tor, so that it can travel inside
/// [`AccountError`] to the window still typed: the retry decision
/// ([`ConnectError::is_transient`]) is made on the kind, never by matching
/// text. The words say what happened and never name the host, so they are
/// safe wherever an error ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The circuit or the remote end did not answer in time.
    #[error("connecting through Tor timed out")]
    Timeout,
    /// Tor could not build or keep a circuit (no usable path or exit, a relay
    /// closed it, directory information missing).
    #[error("Tor could not build a circuit to the server")]
    Circuit,
    /// This computer's network is down.
    #[error("this computer seems to be offline")]
    NoNetwork,
    /// The server's host refused the connection (it may be restarting).
    #[error("the server refused the connection")]
    Refused,
    /// The onion service did not answer (not running, or not published yet).
    #[error("the onion service could not be reached")]
    OnionUnreachable,
    /// The exit relay could not resolve the name.
    #[error("the exit relay could not find the server's host name")]
    HostNotFound,
    /// Exit policy or Tor's own rules forbid this destination.
    #[error("Tor will not connect to that address and port")]
    Forbidden,
    /// Not something Tor can connect to (a malformed name or onion address).
    #[error("the server address is not one Tor can connect to")]
    BadAddress,
    /// The onion service wants client authorization we do not have.
    #[error("the onion service requires authorization")]
    OnionAuth,
    /// The clock is too far off for Tor to trust the network's documents.
    #[error("this computer's clock is wrong, so Tor cannot connect")]
    ClockSkew,
    /// Tor itself is not running (it could not start).
    #[error("Tor is not running")]
    NoTor,
    /// Anything else arti reports; not retried, since nothing says waiting helps.
    #[error("Tor could not connect to the server")]
    Other,
}

impl ConnectError {
    /// Whether waiting and trying again can help. Permanent failures (a name
    /// that does not exist, a forbidden port, a bad address, a wrong clock)
    /// would fail the same way forever, so they are shown once instead.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ConnectError::Timeout
                | ConnectError::Circuit
                | ConnectError::NoNetwork
                | ConnectError::Refused
                | ConnectError::OnionUnreachable
        )
    }
}

/// Errors a user can act on; the text never contains message bodies and is
/// safe to show, but is still never written to a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The stream to the server could not be opened.
    #[error("could not reach the server through Tor: {0}")]
    Connect(ConnectError),
    /// An open stream failed (it dropped, or stopped answering).
    #[error("could not reach the server through Tor: {0}")]
    Transport(String),
    #[error("the server's certificate was refused: {0}")]
    Certificate(CertProblem),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("the server closed the connection: {0}")]
    Closed(String),
    #[error("{0}")]
    Refused(String),
    /// This computer could not set the account up (its pin, its profile
    /// folder, its OTR key): nothing was sent, and the server said nothing.
    #[error("timb could not prepare the connection: {0}")]
    Local(String),
    /// Creating the account on the server did not work.
    #[error("the account could not be created: {0}")]
    Registration(RegistrationProblem),
    /// timb's own answer to a request it could not carry out (never the
    /// server's words, which travel in [`AccountError::Refused`]); typed so
    /// that the window says it in the user's language.
    #[error("{0}")]
    Notice(Notice),
    /// A group could not be joined (or opened): the group, and the server's words.
    #[error("could not join {room}: {why}")]
    GroupRefused { room: String, why: String },
    /// The server bounced a message: to whom, and the server's words.
    #[error("a message to {to} was not delivered: {why}")]
    NotDelivered { to: String, why: String },
}

/// Why in-band registration (XEP-0077) did not create the account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationProblem {
    /// The server does not let clients create accounts.
    #[error("the server does not allow creating accounts from a client")]
    NotOffered,
    /// Someone already has that name.
    #[error("that name is already taken on this server")]
    Taken,
    /// The server asks for more than a name and a password (a CAPTCHA, an
    /// e-mail address, ...): timb shows its instructions and the fields it
    /// asks for, and creates nothing.
    #[error("the server asks for more than a name and password: {instructions} [{fields}]")]
    NeedsMore {
        /// The server's own instructions, clipped.
        instructions: String,
        /// The labels of the fields it requires beyond name and password.
        fields: String,
        /// The form is a CAPTCHA (XEP-0158).
        captcha: bool,
    },
    /// The server refused the name or password; its own words, clipped.
    #[error("the server refused: {0}")]
    Refused(String),
}

/// timb's own sentences about a request it did not carry out. Numbers are
/// counts, never content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Notice {
    #[error("not connected")]
    NotConnected,
    /// Too many requests arrived while (re)connecting; this one was dropped.
    #[error("too many requests waiting for the connection; this one was dropped")]
    TooManyWaiting,
    /// Messages the server may not have received when the connection ended.
    #[error("{0} message(s) may not have reached the server")]
    MaybeUndelivered(usize),
    /// Messages never sent when the connection ended.
    #[error("{0} message(s) were not sent")]
    NotSent(usize),
    /// Too much is waiting for the server already; the message was not sent.
    #[error("too many messages waiting for the server; not sent")]
    Backlog,
    #[error("not in that group")]
    NotInGroup,
    #[error("that is not a valid nick or channel name")]
    InvalidTarget,
    #[error("that is not a valid channel name")]
    InvalidChannel,
    /// A group address needs a room part: room@conference.example.org.
    #[error("a group address looks like room@conference.example.org")]
    NotAGroupAddress,
    #[error("that is your own address, not a group")]
    OwnAddress,
    /// A contact's address, or one seen online: a person, not a group.
    #[error("that is a contact's address, not a group")]
    ContactAddress,
    /// The server accepted none of the nicknames timb tried.
    #[error("the server accepted none of the nicknames tried")]
    NickUnavailable,
    #[error("that nickname cannot be used")]
    InvalidNick,
    /// The server offers no TLS: timb does not continue in plain text.
    #[error("the server does not offer TLS; refusing to continue in plaintext")]
    NoTls,
}

/// Why the server's identity was refused, typed so that the window can say it
/// in the user's language and show the keys a user compares out of band.
/// Keys are SHA-256 fingerprints of the server's public key, in hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("the server's key {got} matches none of the pinned keys")]
    PinMismatch { got: String },
    #[error("the server's key changed from {old} to {new}; this can mean an attack")]
    KeyChanged { old: String, new: String },
    #[error("the server's certificate has expired")]
    Expired,
    #[error("the server's certificate is not valid yet (check the computer's clock)")]
    NotYetValid,
    #[error("the server's certificate is not valid for its name")]
    WrongName,
    #[error("the server's certificate is not signed by a trusted authority")]
    UntrustedIssuer,
    #[error("the server's certificate could not be used")]
    Unusable,
}

impl AccountError {
    /// Whether a protocol should reconnect (with backoff) after this. Only
    /// failures of the path are; what the server or the user's settings
    /// decided (certificate, credentials, protocol, a deliberate close, a
    /// refusal) would repeat, so it is shown once instead.
    pub fn is_transient(&self) -> bool {
        match self {
            AccountError::Connect(e) => e.is_transient(),
            AccountError::Transport(_) => true,
            AccountError::Certificate(_)
            | AccountError::Auth(_)
            | AccountError::Protocol(_)
            | AccountError::Closed(_)
            | AccountError::Refused(_)
            | AccountError::Local(_)
            | AccountError::Registration(_)
            | AccountError::Notice(_)
            | AccountError::GroupRefused { .. }
            | AccountError::NotDelivered { .. } => false,
        }
    }
}

/// How long to wait before each reconnect attempt, and how many to make:
/// the first attempt is immediate, then the delay doubles up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempts: u32,
    pub first: std::time::Duration,
    pub max: std::time::Duration,
}

impl Backoff {
    /// Five attempts over about half a minute: long enough for a new circuit
    /// or a restarting server, short enough that a dead one is reported.
    pub const DEFAULT: Backoff = Backoff {
        attempts: 5,
        first: std::time::Duration::from_secs(2),
        max: std::time::Duration::from_secs(32),
    };

    /// No reconnecting at all.
    pub const NEVER: Backoff = Backoff {
        attempts: 0,
        first: std::time::Duration::ZERO,
        max: std::time::Duration::ZERO,
    };

    /// The pause before attempt `n` (0-based): none before the first.
    pub fn delay(&self, n: u32) -> std::time::Duration {
        if n == 0 {
            return std::time::Duration::ZERO;
        }
        self.first
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::DEFAULT
    }
}

/// A running account: commands go in, events come out.
pub struct AccountHandle {
    pub id: AccountId,
    pub protocol: Protocol,
    pub commands: tokio::sync::mpsc::Sender<Command>,
    pub events: tokio::sync::mpsc::Receiver<Event>,
}

/// Seconds since the Unix epoch, or 0 if the clock is before 1970.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_path_failures_are_retried() {
        for e in [
            ConnectError::Timeout,
            ConnectError::Circuit,
            ConnectError::NoNetwork,
            ConnectError::Refused,
            ConnectError::OnionUnreachable,
        ] {
            assert!(AccountError::Connect(e).is_transient(), "{e:?}");
        }
        for e in [
            ConnectError::HostNotFound,
            ConnectError::Forbidden,
            ConnectError::BadAddress,
            ConnectError::OnionAuth,
            ConnectError::ClockSkew,
            ConnectError::NoTor,
            ConnectError::Other,
        ] {
            assert!(!AccountError::Connect(e).is_transient(), "{e:?}");
        }
        assert!(!AccountError::Certificate(CertProblem::Expired).is_transient());
        assert!(!AccountError::Auth("no".into()).is_transient());
        assert!(!AccountError::Closed("banned".into()).is_transient());
        assert!(AccountError::Transport("dropped".into()).is_transient());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            attempts: 9,
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let d: Vec<u64> = (0..6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(d, [0, 1, 2, 4, 8, 10]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
    }
}
