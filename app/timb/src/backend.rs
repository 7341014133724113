//! The seam between the window and the network stack.
//!
//! The window only speaks [`Request`] (what the user asked for) and
//! [`UiEvent`] (what happened). A backend carries requests out — Tor, TLS,
//! XMPP/IRC, and OTR for every one-to-one message — and reports back through
//! a [`Sink`]. The program uses [`crate::net::Net`]; the UI tests plug in a
//! recording backend and feed events by hand.

use timb_core::{AccountId, Command, Event};
pub use timb_otr::SmpEvent;

use crate::accounts::Account;

/// Why Tor could not start, in the terms the user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorFailureKind {
    NoNetwork,
    ClockSkew,
    Blocked,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TorStatus {
    /// Bootstrapping: fraction done (0..=1) and what Tor is doing.
    Starting {
        fraction: f32,
        phase: timb_tor::TorPhase,
    },
    Ready,
    Failed {
        kind: TorFailureKind,
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyGen {
    Working,
    Done,
    Failed,
}

/// What the OTR layer tells the window, in the window's terms (one note per
/// thing the window shows); the SMP step is timb-otr's own [`SmpEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtrNote {
    KeyGen {
        account: AccountId,
        state: KeyGen,
    },
    OurFingerprint {
        account: AccountId,
        fingerprint: String,
    },
    /// A message is held until the conversation is encrypted.
    Waiting {
        account: AccountId,
        peer: String,
        held: usize,
    },
    Secure {
        account: AccountId,
        peer: String,
        fingerprint: String,
        verified: bool,
    },
    Insecure {
        account: AccountId,
        peer: String,
    },
    Ended {
        account: AccountId,
        peer: String,
    },
    Smp {
        account: AccountId,
        peer: String,
        event: SmpEvent,
    },
    /// Held messages given up on (the encryption did not come up in time).
    Undelivered {
        account: AccountId,
        peer: String,
        count: usize,
    },
    /// The peer sent a message without encryption; shown with a warning.
    Unencrypted {
        account: AccountId,
        peer: String,
        body: String,
    },
    /// Anything else worth a line in the conversation (text is ours, not the peer's).
    Problem {
        account: AccountId,
        peer: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    Tor(TorStatus),
    Account(AccountId, Event),
    Otr(OtrNote),
}

/// What the user asked for.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// Start Tor if needed, then connect. The password is for this attempt only.
    Connect {
        id: AccountId,
        account: Account,
        password: Option<String>,
    },
    /// Protocol commands (disconnect, groups, roster). Never a one-to-one message.
    Command {
        id: AccountId,
        command: Command,
    },
    /// A one-to-one message: only ever sent through OTR, held until encrypted.
    SendPrivate {
        id: AccountId,
        peer: String,
        body: String,
    },
    StartPrivate {
        id: AccountId,
        peer: String,
    },
    EndPrivate {
        id: AccountId,
        peer: String,
    },
    SetVerified {
        id: AccountId,
        peer: String,
        fingerprint: String,
        verified: bool,
    },
    StartSmp {
        id: AccountId,
        peer: String,
        question: Option<String>,
        secret: String,
    },
    RespondSmp {
        id: AccountId,
        peer: String,
        secret: String,
    },
    AbortSmp {
        id: AccountId,
        peer: String,
    },
    /// The account was removed: drop its connection and session state.
    Forget {
        id: AccountId,
    },
    RetryTor,
}

impl std::fmt::Debug for Request {
    // Message bodies, passwords and secrets stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Connect { id, .. } => write!(f, "Connect({id})"),
            Request::Command { id, command } => match command {
                Command::Send { to, .. } => write!(f, "Command({id}, Send to {})", to.name()),
                c => write!(f, "Command({id}, {c:?})"),
            },
            Request::SendPrivate { id, peer, .. } => write!(f, "SendPrivate({id}, {peer})"),
            Request::StartPrivate { id, peer } => write!(f, "StartPrivate({id}, {peer})"),
            Request::EndPrivate { id, peer } => write!(f, "EndPrivate({id}, {peer})"),
            Request::SetVerified {
                id, peer, verified, ..
            } => {
                write!(f, "SetVerified({id}, {peer}, {verified})")
            }
            Request::StartSmp { id, peer, .. } => write!(f, "StartSmp({id}, {peer})"),
            Request::RespondSmp { id, peer, .. } => write!(f, "RespondSmp({id}, {peer})"),
            Request::AbortSmp { id, peer } => write!(f, "AbortSmp({id}, {peer})"),
            Request::Forget { id } => write!(f, "Forget({id})"),
            Request::RetryTor => write!(f, "RetryTor"),
        }
    }
}

/// Delivers events to the window from any thread.
#[derive(Clone)]
pub struct Sink(std::sync::Arc<dyn Fn(UiEvent) + Send + Sync>);

impl Sink {
    pub fn new(f: impl Fn(UiEvent) + Send + Sync + 'static) -> Self {
        Sink(std::sync::Arc::new(f))
    }
    pub fn send(&self, e: UiEvent) {
        (self.0)(e)
    }
}

pub trait Backend {
    fn request(&mut self, r: Request);
}
