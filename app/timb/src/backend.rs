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

/// Where the update check is, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateStatus {
    Checking,
    UpToDate,
    /// A newer bundle, being downloaded: bytes so far of the signed length.
    Downloading {
        version: String,
        done: u64,
        total: u64,
    },
    /// Installed beside this version; starts at the next start ("Restart to update").
    Ready {
        version: String,
    },
    Failed(UpdateProblem),
}

/// Why an update did not happen, in the terms the user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateProblem {
    /// The bundle ships no update channel (a local build).
    NotConfigured,
    /// Not running from a bundle's folders (a build tree, a 0.1.0 bundle).
    NotInPlace,
    /// Version V is installed, but timb could not start it for the user (no restart
    /// helper, and the sandbox refuses to run programs): they restart it by hand.
    RestartByHand(String),
    Check(timb_update::Problem),
}

#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    Tor(TorStatus),
    Update(UpdateStatus),
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
    /// "Check now": starts Tor if needed (with its progress), then checks.
    CheckUpdate,
    /// The "Check for updates" setting: when on, the first time Tor runs because the user
    /// connected, an update check follows.
    AutoUpdateCheck(bool),
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
            Request::CheckUpdate => write!(f, "CheckUpdate"),
            Request::AutoUpdateCheck(on) => write!(f, "AutoUpdateCheck({on})"),
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
