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
    Error(AccountError),
}

/// Errors a user can act on; the text never contains message bodies and is
/// safe to show, but is still never written to a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("could not reach the server through Tor: {0}")]
    Transport(String),
    #[error("the server's certificate was refused: {0}")]
    Certificate(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("the server closed the connection: {0}")]
    Closed(String),
    #[error("{0}")]
    Refused(String),
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
